"""Which keypoints each camera sees: one ray-casting function for the S3K envs
(:class:`~s3k_envs.envs.base.MultiViewEnv`) and the camera rig on any MuJoCo env
(:class:`~s3k_envs.wrappers.multiview.MultiViewCameras`).

A keypoint is visible in a camera when it is in front of the camera (beyond MuJoCo's near
plane), projects inside the image, and the first rendered geom that a ray from the camera
centre towards it meets is not more than ``tolerance`` in front of it. Geoms of the bodies a
keypoint *owns* (the part it lies on or inside of) never hide it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

#: Geom groups MuJoCo renders by default (``mjvOption().geomgroup``): the occluders.
VISIBLE_GEOM_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)
#: How many owned parts a ray may pass through before the next hit counts as an occluder.
MAX_PASS_THROUGH = 4


def keypoint_visibility(model: Any, data: Any, keypoints: np.ndarray, uv: np.ndarray,
                        depth: np.ndarray, centres: np.ndarray, image_size: tuple[int, int],
                        own_bodies: Sequence[Collection[int]], tolerance: float = 3e-3,
                        geomgroup: np.ndarray = VISIBLE_GEOM_GROUPS) -> np.ndarray:
    """Which keypoints each camera sees (pure: reads ``model``/``data``, changes nothing).

    Args:
        model, data: the ``mujoco.MjModel`` / ``mujoco.MjData`` the rays are cast in (after
            ``mj_forward``/``mj_step``, so geom poses are current).
        keypoints: ``(K, 3)`` world points, m.
        uv: ``(C, K, 2)`` their projections, px (column, row).
        depth: ``(C, K)`` their depth along each camera's optical axis, m.
        centres: ``(C, 3)`` camera centres in the world frame, m.
        image_size: ``(width, height)`` of the images, px.
        own_bodies: per keypoint, the body ids whose geoms never hide it (may be empty).
        tolerance: a hit closer than ``distance - tolerance`` (m) counts as occlusion.
        geomgroup: ``(6,)`` uint8, the geom groups that can occlude.

    Returns:
        ``(C, K)`` bool.
    """
    import mujoco  # here, so that importing this module stays light

    width, height = image_size
    znear = model.vis.map.znear * model.stat.extent
    inside = ((depth > znear) & (uv[..., 0] >= 0) & (uv[..., 0] < width)
              & (uv[..., 1] >= 0) & (uv[..., 1] < height))
    visible = inside.copy()
    body_of_geom = model.geom_bodyid
    for c in np.nonzero(inside.any(axis=1))[0]:
        ks = np.nonzero(inside[c])[0]
        vec = keypoints[ks] - centres[c]
        dist = np.linalg.norm(vec, axis=1)
        ks, vec, dist = ks[dist > 0], vec[dist > 0], dist[dist > 0]  # a point at the centre
        if len(ks) == 0:
            continue
        unit = vec / dist[:, None]
        hit = np.empty(len(ks))
        geomid = np.empty(len(ks), dtype=np.int32)
        centre = np.array(centres[c], dtype=np.float64)
        # One call for all rays from this camera centre.
        mujoco.mj_multiRay(model, data, centre, np.ascontiguousarray(unit.reshape(-1)),
                           geomgroup, 1, -1, geomid, hit, None, len(ks),
                           float(dist.max()) + 1.0)
        for i, k in enumerate(ks):
            travelled, gid = hit[i], int(geomid[i])
            # Parts the keypoint lies on or inside of do not hide it: continue the ray past
            # them (a few times at most).
            for _ in range(MAX_PASS_THROUGH):
                if not (0 <= travelled < dist[i] - tolerance and gid >= 0):
                    break
                body = int(body_of_geom[gid])
                if body not in own_bodies[k]:
                    break
                start = centre + unit[i] * travelled
                gid_out = np.zeros(1, dtype=np.int32)
                step = mujoco.mj_ray(model, data, start, unit[i], geomgroup, 1, body, gid_out)
                travelled = travelled + step if step >= 0 else -1.0
                gid = int(gid_out[0])
            if 0 <= travelled < dist[i] - tolerance:
                visible[c, k] = False
    return visible
