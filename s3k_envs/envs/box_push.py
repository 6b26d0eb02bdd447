"""S3K-BoxPush-v0: push the board-game box to a goal pose (the task of "Keypoints into the
Future", Manuelli et al. 2020) with a planar pusher, seen by the usual C randomized
calibrated cameras.

The box of :mod:`s3k_envs.envs.box` (19.9 x 10.5 x 1.7 cm, lid art that makes its yaw
unambiguous) lies flat on the table. Everything else — the pusher and how the 6-D action
maps to it (x, y velocity used; z and rotation ignored), goals (``goal_keypoints``, goal
images, sampled or simulated-push goals, :meth:`~s3k_envs.envs.push.PushEnv.set_goal`),
reward, success and the depth/segmentation rendering for descriptor training — is
:class:`~s3k_envs.envs.push.PushEnv`; see :mod:`s3k_envs.envs.push`.

Keypoints (the three top corners of :class:`~s3k_envs.envs.box.BoxEnv`, so an S3K model
trained on S3K-Box-v0 applies unchanged): ``corner_0`` (+x, +y), ``corner_1`` (+x, -y),
``corner_2`` (-x, -y), world metres. The planar pose is the box centre and yaw.
"""

from __future__ import annotations

import mujoco
import numpy as np

from s3k_envs.envs.box import BOX_MASS, BOX_SIZE, add_textured_material, lid_texture
from s3k_envs.envs.push import PushEnv, yaw_rotation

_CORNER_SIGNS = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
_CORNER_LOCAL = _CORNER_SIGNS * (np.asarray(BOX_SIZE) / 2)


def box_corners(x: float, y: float, yaw: float) -> np.ndarray:
    """The task keypoints of a flat-lying box at planar pose ``(x, y, yaw)`` (m, m, rad):
    ``(3, 3)`` world points, m."""
    return np.array([x, y, BOX_SIZE[2] / 2]) + _CORNER_LOCAL @ yaw_rotation(yaw).T


class BoxPushEnv(PushEnv):
    """Push the board-game box to a goal pose (see :mod:`s3k_envs.envs.push` for the options,
    observation, reward and success)."""

    keypoint_names = ("corner_0", "corner_1", "corner_2")

    def _build_task(self, spec: mujoco.MjSpec) -> None:
        add_textured_material(spec, "box_lid", lid_texture())
        body = spec.worldbody.add_body(name="box", pos=[0, 0, BOX_SIZE[2] / 2])
        body.add_freejoint(name="box_free")
        geom = body.add_geom(name="box_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
                             size=[s / 2 for s in BOX_SIZE])
        geom.material = "box_lid"
        geom.mass = BOX_MASS
        geom.friction = [0.8, 0.01, 0.001]

    def _bind_task(self) -> None:
        self._box_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "box")
        self.footprint_centre = np.zeros(2)
        self.footprint_half = np.asarray(BOX_SIZE[:2]) / 2
        self._bind_push()

    def _object_body(self) -> int:
        return self._box_id

    def _object_keypoints_local(self) -> np.ndarray:
        return _CORNER_LOCAL

    def _rest_height(self) -> float:
        return BOX_SIZE[2] / 2

    def object_bounds(self) -> np.ndarray:
        half = np.asarray(BOX_SIZE) / 2
        return np.stack([-half, half])

