"""S3K-ShoePush-v0: push one of the 16 procedural shoes to a goal pose — the category
variant of :mod:`s3k_envs.envs.box_push` (train on shoes 0-11, test on the held-out 12-15).

Every reset picks one shoe of ``instances`` (``"train"`` = ids 0-11, ``"test"`` = 12-15,
``"all"`` or a list, as in :class:`~s3k_envs.envs.shoes.ShoesEnv`; ``info["instance_id"]``)
and stands it upright at a random position and yaw. The pusher, action mapping, goals,
reward, success and depth/segmentation rendering are those of
:class:`~s3k_envs.envs.push.PushEnv` (see :mod:`s3k_envs.envs.push`); the camera framing is
the Shoes env's (the shoes are up to 18 cm tall).

Keypoints: the Shoes env's ``front``, ``tongue``, ``heel``. Footprint (what the planar pose
refers to): the bounding rectangle of the sole outline, 25-30 cm x 9-12 cm depending on the
instance, centred on the shoe frame (the sole's middle); yaw is that of the shoe's length
(toe = +x).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from s3k_envs.envs.push import PushEnv
from s3k_envs.envs.shoe_mesh import KEYPOINT_NAMES, generate_shoe
from s3k_envs.envs.shoes import ShoesEnv, resolve_instances


class ShoePushEnv(PushEnv, ShoesEnv):
    """Push a procedural shoe to a goal pose (see the module docstring).

    Scene assembly, instance bookkeeping and :meth:`activate` come from
    :class:`~s3k_envs.envs.shoes.ShoesEnv`; everything about the task from
    :class:`~s3k_envs.envs.push.PushEnv` (first in the method resolution order).

    Extra options: ``instances`` (default ``"train"``) and every option of
    :class:`~s3k_envs.envs.push.PushEnv`.
    """

    keypoint_names = KEYPOINT_NAMES
    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        **PushEnv.TASK_OPTIONS,
        # The Shoes env's framing: the shoe covers a good part of every view.
        "camera_target": (0.0, 0.0, 0.045),
        "camera_distance": (0.4, 0.5),
        "camera_lookat_jitter": 0.01,
        "camera_fovy": (0.7, 0.82),
        "object_xy_range": 0.04,
        "goal_xy_range": 0.08,
        "instances": "train",
    }

    def _validate_object_options(self) -> None:
        self.instance_ids: tuple[int, ...] = resolve_instances(self.options["instances"])

    def _bind_task(self) -> None:
        self._bind_shoes()
        self._set_footprint(self.instance_ids[0])
        self._bind_push()

    def _set_footprint(self, instance_id: int) -> None:
        sole = generate_shoe(instance_id).collision_points[0]
        lo, hi = sole[:, :2].min(0), sole[:, :2].max(0)
        self.footprint_centre = (lo + hi) / 2
        self.footprint_half = (hi - lo) / 2

    def _choose_object(self, rng: np.random.Generator) -> None:
        iid = self.instance_ids[int(rng.integers(len(self.instance_ids)))]
        rest = generate_shoe(iid).rest_poses[0]
        if rest.kind != "upright" or not np.allclose(rest.quat, [1.0, 0.0, 0.0, 0.0]):
            raise RuntimeError(f"shoe {iid}: expected an upright rest pose with identity "
                               f"orientation, got {rest.kind} {rest.quat}")
        self.activate(iid, [0.0, 0.0, rest.height], rest.quat)  # parks the others
        self._set_footprint(iid)
        self.on_side = False

    def _object_body(self) -> int:
        return self._shoe_body[self.instance_id]

    def _object_keypoints_local(self) -> np.ndarray:
        return generate_shoe(self.instance_id).keypoints

    def _rest_height(self) -> float:
        return float(generate_shoe(self.instance_id).rest_poses[0].height) + 2e-4

    def object_bounds(self) -> np.ndarray:
        vertices = generate_shoe(self.instance_id).vertices
        return np.stack([vertices.min(0), vertices.max(0)])

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        reward, success, extra = super()._task_reward(keypoints)
        return reward, success, {**extra, "instance_id": int(self.instance_id)}
