"""S3K-BoxDistractors-v0: the game box among distractor objects of similar size and look.

Distractors come in disjoint *pools* (option ``distractor_set``): pool 0 is the scene that
gets annotated, later pools model how the scene drifts over time (the paper's §4.2
start-vs-full domain-shift experiment). Each pool is a fixed, deterministic set of
``num_distractors`` objects — flat boxes (other games, books) and cans — with procedural
textures in the same style as the game box. Every reset places them at random
non-overlapping poses around the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np

from s3k_envs.envs.box import BOX_SIZE, BoxEnv, add_textured_material

NUM_DISTRACTOR_POOLS = 6
MAX_DISTRACTORS = 6


@dataclass(frozen=True)
class DistractorSpec:
    """One distractor: ``kind`` "box" (half sizes, m) or "can" (radius, half height, m)."""

    kind: str
    size: tuple[float, float, float]
    texture: np.ndarray
    mass: float

    @property
    def footprint_radius(self) -> float:
        """Radius of a disc covering the object's footprint, m."""
        if self.kind == "box":
            return math.hypot(self.size[0], self.size[1])
        return self.size[0]

    @property
    def rest_height(self) -> float:
        """Height of the object's centre when it rests on the table, m."""
        return self.size[2] if self.kind == "box" else self.size[1]


def _pattern_texture(rng: np.random.Generator, height: int = 64, width: int = 128) -> np.ndarray:
    """Random cover-like art: background, a band, stripes or checks and a disc, uint8."""
    palette = rng.uniform(0.05, 0.95, size=(4, 3))
    rows, cols = np.mgrid[0:height, 0:width]
    u, v = (cols + 0.5) / width, (rows + 0.5) / height
    img = np.empty((height, width, 3))
    img[:] = palette[0]
    style = rng.integers(3)
    period = int(rng.integers(4, 12))
    if style == 0:
        img[(cols // period) % 2 == 0] = palette[1]
    elif style == 1:
        img[((cols // period) + (rows // period)) % 2 == 0] = palette[1]
    else:
        img[(rows // period) % 2 == 0] = palette[1]
    lo = rng.uniform(0.0, 0.7)
    img[(u > lo) & (u < lo + rng.uniform(0.1, 0.3))] = palette[2]
    cu, cv, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.25)
    img[(u - cu) ** 2 * 4 + (v - cv) ** 2 < r**2] = palette[3]
    return (img * 255).round().astype(np.uint8)


def distractor_pool(pool: int, count: int = MAX_DISTRACTORS) -> list[DistractorSpec]:
    """The deterministic objects of pool ``pool`` (same ids give the same objects)."""
    if not 0 <= pool < NUM_DISTRACTOR_POOLS:
        raise ValueError(f"distractor_set: expected 0..{NUM_DISTRACTOR_POOLS - 1}, got {pool!r}")
    rng = np.random.default_rng([7919, pool])
    specs = []
    for _ in range(count):
        texture = _pattern_texture(rng)
        if rng.uniform() < 0.65:  # flat box of a size like the game box
            size = (rng.uniform(0.05, 0.11), rng.uniform(0.035, 0.065), rng.uniform(0.007, 0.025))
            specs.append(DistractorSpec("box", size, texture, float(rng.uniform(0.1, 0.4))))
        else:
            size = (rng.uniform(0.025, 0.045), rng.uniform(0.03, 0.07), 0.0)
            specs.append(DistractorSpec("can", size, texture, float(rng.uniform(0.1, 0.3))))
    return specs


class BoxDistractorsEnv(BoxEnv):
    """The game box plus ``num_distractors`` objects from pool ``distractor_set``.

    Extra options: ``distractor_set`` (pool id 0..5, default 0), ``num_distractors`` (1..6,
    default 4), ``distractor_xy_range`` (m, half-width of the placement square), plus every
    option of :class:`~s3k_envs.envs.box.BoxEnv`. ``info["distractor_set"]`` echoes the pool.
    """

    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        **BoxEnv.TASK_OPTIONS,
        "camera_distance": (0.5, 0.68),  # the scene is wider than the box alone
        "distractor_set": 0,
        "num_distractors": 4,
        "distractor_xy_range": 0.2,
    }

    def _validate_task_options(self) -> None:
        super()._validate_task_options()
        n = self.options["num_distractors"]
        if not (isinstance(n, (int, np.integer)) and 1 <= n <= MAX_DISTRACTORS):
            raise ValueError(f"num_distractors: expected an int 1..{MAX_DISTRACTORS}, got {n!r}")
        pool = self.options["distractor_set"]
        if not (isinstance(pool, (int, np.integer)) and 0 <= pool < NUM_DISTRACTOR_POOLS):
            raise ValueError(
                f"distractor_set: expected an int 0..{NUM_DISTRACTOR_POOLS - 1}, got {pool!r}"
            )
        if not 0.1 <= self.options["distractor_xy_range"] <= 0.4:
            raise ValueError(
                "distractor_xy_range: expected 0.1..0.4 m, got "
                f"{self.options['distractor_xy_range']}"
            )

    def _build_distractors(self, spec: mujoco.MjSpec) -> None:
        self.distractors = distractor_pool(self.options["distractor_set"])[
            : self.options["num_distractors"]
        ]
        for i, item in enumerate(self.distractors):
            name = f"distractor_{i}"
            add_textured_material(spec, f"{name}_mat", item.texture)
            body = spec.worldbody.add_body(name=name, pos=[0.5 + 0.3 * i, 0.5, 0.1])
            body.add_freejoint(name=f"{name}_free")
            if item.kind == "box":
                geom = body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
                                     size=list(item.size))
            else:
                geom = body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                                     size=[item.size[0], item.size[1], 0.0])
            geom.material = f"{name}_mat"
            geom.mass = item.mass
            geom.friction = [0.8, 0.01, 0.001]

    def _bind_task(self) -> None:
        super()._bind_task()
        m = self.model
        self._distractor_qadr = [
            int(m.jnt_qposadr[m.body_jntadr[
                mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"distractor_{i}")]])
            for i in range(len(self.distractors))
        ]

    def _reset_task(self, rng: np.random.Generator) -> None:
        box_xy, _ = self._place_box(rng)
        box_radius = math.hypot(BOX_SIZE[0], BOX_SIZE[1]) / 2
        placed: list[tuple[np.ndarray, float]] = [(box_xy, box_radius)]
        reach = self.options["distractor_xy_range"]
        for item, adr in zip(self.distractors, self._distractor_qadr, strict=True):
            radius = item.footprint_radius
            xy = rng.uniform(-reach, reach, size=2)
            for _ in range(100):  # rejection sampling; keep the last draw if the table is full
                if all(np.linalg.norm(xy - p) > radius + r + 0.005 for p, r in placed):
                    break
                xy = rng.uniform(-reach, reach, size=2)
            placed.append((xy, radius))
            yaw = rng.uniform(-math.pi, math.pi)
            self.data.qpos[adr : adr + 3] = [xy[0], xy[1], item.rest_height]
            self.data.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        reward, success, extra = super()._task_reward(keypoints)
        return reward, success, {**extra, "distractor_set": int(self.options["distractor_set"])}
