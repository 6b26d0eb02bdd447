"""S3K-Box-v0 and S3K-BoxDistractors-v0: the board-game box of the paper's §4 experiments.

The box is 19.9 x 10.5 cm with a height of 1.7 cm, lying flat on the table with a random
position and yaw every reset. Its lid art (red title band at the +x end, a yellow disc in the
+x/+y quadrant) makes its orientation unambiguous. Keypoints are three top corners:

* ``corner_0``: (+x, +y) — band end, disc side
* ``corner_1``: (+x, -y) — band end
* ``corner_2``: (-x, -y) — far end

Task: bring the gripper's tool centre point to ``target_keypoint``; reward is the negative
distance in metres, success when it is within ``success_distance`` (1 cm).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import mujoco
import numpy as np

from s3k_envs.envs.base import MultiViewEnv

BOX_SIZE = (0.199, 0.105, 0.017)  # x (length), y (width), z (height) in metres
BOX_MASS = 0.35  # kg


def lid_texture(height: int = 128, width: int = 256) -> np.ndarray:
    """Procedural lid art of the game box, ``(height, width, 3)`` uint8.

    Column index grows with the box's +x axis, row index with -y (image up = +y), so the
    title band sits at the +x end and the disc in the +x/+y quadrant.
    """
    rows, cols = np.mgrid[0:height, 0:width]
    u, v = (cols + 0.5) / width, (rows + 0.5) / height
    img = np.empty((height, width, 3), dtype=np.float64)
    img[:] = (0.13, 0.22, 0.55)  # deep blue cover
    img[(u > 0.05) & (u < 0.95) & (np.abs(v - 0.5) < 0.42) & ((cols // 8 + rows // 8) % 2 == 0)] = (
        0.18, 0.3, 0.65)  # board pattern
    img[u > 0.8] = (0.85, 0.12, 0.1)  # title band
    img[(u > 0.83) & (u < 0.97) & (np.abs(v - 0.5) < 0.28) & (rows % 12 < 5)] = (0.97, 0.95, 0.9)
    disc = (u - 0.62) ** 2 * 4 + (v - 0.27) ** 2 < 0.015
    img[disc] = (0.98, 0.82, 0.1)
    tri = (u > 0.12) & (u < 0.32) & (v > 0.62) & (v - 0.62 < (u - 0.12) * 1.5)
    img[tri] = (0.2, 0.75, 0.3)
    edge = (u < 0.015) | (u > 0.985) | (v < 0.03) | (v > 0.97)
    img[edge] = (0.95, 0.95, 0.92)
    return (img * 255).round().astype(np.uint8)


def add_textured_material(spec: mujoco.MjSpec, name: str, image: np.ndarray) -> str:
    """Add a 2D texture from an ``(H, W, 3)`` uint8 array and a material using it."""
    height, width = image.shape[:2]
    tex = spec.add_texture(name=f"{name}_tex", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           width=width, height=height, nchannel=3)
    # On a box's top face, texture column grows with the box's +x and row 0 is its +y edge
    # (checked by projecting lid features in tests/test_envs.py).
    tex.data = np.ascontiguousarray(image).tobytes()
    mat = spec.add_material(name=name)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    mat.texuniform = False
    mat.texrepeat = [1, 1]
    return name


class BoxEnv(MultiViewEnv):
    """Board-game box on a table, seen by C randomized calibrated cameras.

    Extra options: ``target_keypoint`` (name, default "corner_0"), ``success_distance`` (m,
    default 0.01), ``box_xy_range`` (m, half-width of the square the box centre is drawn
    from), plus every option of :class:`~s3k_envs.envs.base.MultiViewEnv`.
    """

    keypoint_names = ("corner_0", "corner_1", "corner_2")
    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        "target_keypoint": "corner_0",
        "success_distance": 0.01,
        "box_xy_range": 0.07,
    }
    _CORNER_SIGNS = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])

    def _validate_task_options(self) -> None:
        if self.options["target_keypoint"] not in self.keypoint_names:
            raise ValueError(
                f"target_keypoint: expected one of {list(self.keypoint_names)}, got "
                f"{self.options['target_keypoint']!r}"
            )
        if not self.options["success_distance"] > 0:
            raise ValueError(
                f"success_distance must be > 0 m, got {self.options['success_distance']}"
            )
        if not 0 <= self.options["box_xy_range"] <= 0.2:
            raise ValueError(f"box_xy_range: expected 0..0.2 m, got {self.options['box_xy_range']}")

    def _build_task(self, spec: mujoco.MjSpec) -> None:
        add_textured_material(spec, "box_lid", lid_texture())
        body = spec.worldbody.add_body(name="box", pos=[0, 0, BOX_SIZE[2] / 2])
        body.add_freejoint(name="box_free")
        half = [s / 2 for s in BOX_SIZE]
        geom = body.add_geom(name="box_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=half)
        geom.material = "box_lid"
        geom.mass = BOX_MASS
        geom.friction = [0.8, 0.01, 0.001]
        self._build_distractors(spec)

    def _build_distractors(self, spec: mujoco.MjSpec) -> None:
        """Hook for BoxDistractors."""

    def _bind_task(self) -> None:
        m = self.model
        self._box_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "box")
        self._box_qadr = int(m.jnt_qposadr[m.body_jntadr[self._box_id]])
        self._corner_local = self._CORNER_SIGNS * (np.asarray(BOX_SIZE) / 2)
        self._target_index = self.keypoint_names.index(self.options["target_keypoint"])

    def _place_box(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        r = self.options["box_xy_range"]
        xy = rng.uniform(-r, r, size=2)
        yaw = rng.uniform(-math.pi, math.pi)
        adr = self._box_qadr
        self.data.qpos[adr : adr + 3] = [xy[0], xy[1], BOX_SIZE[2] / 2]
        self.data.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        return xy, yaw

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._place_box(rng)

    def _keypoints_world(self) -> np.ndarray:
        d = self.data
        rot = d.xmat[self._box_id].reshape(3, 3)
        return d.xpos[self._box_id] + self._corner_local @ rot.T

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        tcp = self.data.xpos[self._gripper_id]
        dist = float(np.linalg.norm(keypoints[self._target_index] - tcp))
        success = dist < self.options["success_distance"]
        return -dist, success, {"target_distance": dist}
