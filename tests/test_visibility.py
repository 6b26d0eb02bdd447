"""s3k_envs.visibility.keypoint_visibility: the one visibility function of the S3K envs and
the MultiViewCameras wrapper, on a hand-built scene."""

from __future__ import annotations

import mujoco
import numpy as np

from s3k_envs.geometry import project
from s3k_envs.visibility import keypoint_visibility

# A wall (body "wall") between the camera at z=2 and the points near z=0; a small body
# "part" around the first point.
_XML = """
<mujoco>
  <worldbody>
    <body name="wall" pos="0.25 0 1"><geom type="box" size="0.2 0.2 0.01"/></body>
    <body name="part" pos="-0.5 0 0"><geom type="sphere" size="0.05"/></body>
  </worldbody>
</mujoco>
"""


def _camera() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A camera at (0, 0, 2) looking down (-z), 64x64 px: intrinsics, extrinsics, centre."""
    f = 32.0
    intrinsics = np.array([[f, 0, 32], [0, f, 32], [0, 0, 1]])
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = np.diag([1.0, -1.0, -1.0])  # OpenCV: z forward = world -z
    centre = np.array([0.0, 0.0, 2.0])
    extrinsics[:3, 3] = -extrinsics[:3, :3] @ centre
    return intrinsics[None], extrinsics[None], centre[None]


def test_occlusion_own_body_image_bounds_and_tolerance() -> None:
    model = mujoco.MjModel.from_xml_string(_XML)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    part = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "part")
    points = np.array([
        [-0.5, 0.0, 0.0],   # inside "part": hidden unless it owns "part"
        [0.5, 0.0, 0.0],    # behind the wall
        [0.0, 0.5, 0.0],    # free line of sight
        [5.0, 0.0, 0.0],    # outside the image
        [0.0, 0.0, 3.0],    # behind the camera
    ])
    intrinsics, extrinsics, centres = _camera()
    uv, depth = project(points, intrinsics, extrinsics)
    nobody: list[frozenset[int]] = [frozenset()] * len(points)
    vis = keypoint_visibility(model, data, points, uv, depth, centres, (64, 64), nobody)
    assert vis.shape == (1, 5) and vis.dtype == bool
    assert vis[0].tolist() == [False, False, True, False, False]
    owned = [frozenset({part}), *nobody[1:]]
    vis = keypoint_visibility(model, data, points, uv, depth, centres, (64, 64), owned)
    assert vis[0].tolist() == [True, False, True, False, False]
    # A point just under a surface counts as visible within the tolerance.
    top = np.array([[-0.5, 0.0, 0.049]])
    uv, depth = project(top, intrinsics, extrinsics)
    assert keypoint_visibility(model, data, top, uv, depth, centres, (64, 64), [frozenset()],
                               tolerance=0.01)[0, 0]
    assert not keypoint_visibility(model, data, top, uv, depth, centres, (64, 64),
                                   [frozenset()], tolerance=0.0)[0, 0]
