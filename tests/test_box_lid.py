"""The game box's lid art is where box.py says it is (orientation must be visible)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from s3k_envs.envs.box import BOX_SIZE
from s3k_envs.geometry import project

DISC_YELLOW = np.array([250, 209, 26])


@pytest.mark.parametrize("seed", [0, 1])
def test_disc_is_in_plus_x_plus_y_quadrant(seed: int) -> None:
    env = gym.make("S3K-Box-v0", image_size=192)
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    rot = base.data.xmat[base._box_id].reshape(3, 3)
    centre = base.data.xpos[base._box_id]
    half = np.asarray(BOX_SIZE) / 2
    intr = obs["intrinsics"].astype(np.float64)
    extr = obs["extrinsics"].astype(np.float64)
    colours = {}
    for sx in (1, -1):
        for sy in (1, -1):
            # disc centre of lid_texture(): u = 0.62, v = 0.27 (v measured from the +y edge)
            local = np.array([sx * 0.12 * 2 * half[0], sy * 0.23 * 2 * half[1], half[2]])
            uv, _ = project((centre + rot @ local)[None], intr, extr)
            colours[sx, sy] = np.stack(
                [obs["images"][c][int(uv[c, 0, 1]), int(uv[c, 0, 0])] for c in range(4)]
            )
    env.close()
    assert np.abs(colours[1, 1].astype(int) - DISC_YELLOW).max() < 40
    for key in [(1, -1), (-1, 1), (-1, -1)]:
        assert np.abs(colours[key].astype(int) - DISC_YELLOW).max(axis=1).min() > 40
