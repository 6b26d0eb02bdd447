"""Random and extreme actions never crash an env or leak NaN (the cable env has its own)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

ENVS = ("S3K-Box-v0", "S3K-BoxDistractors-v0", "S3K-Shoes-v0")


def fuzz(env: gym.Env, steps: int, seed: int) -> dict[str, int]:
    """Uniform, saturated, alternating and spin-heavy actions; reset when an episode ends."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    counts = {"episodes": 0, "unstable": 0}
    for t in range(steps):
        mode = (t // 25) % 4
        if mode == 0:
            action = rng.uniform(-1, 1, 6)
        elif mode == 1:
            action = rng.choice([-1.0, 1.0], 6)
        elif mode == 2:
            action = np.full(6, 1.0 if t % 2 else -1.0)
        else:  # dive into the table / objects while spinning, far beyond the action range
            action = np.array([*rng.uniform(-5, 5, 2), -5.0, *rng.choice([-3.0, 3.0], 3)])
        obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
        for key, value in obs.items():
            assert np.all(np.isfinite(value)), (t, key)
        assert math.isfinite(reward)
        assert np.all(np.isfinite(info["keypoints"])) and np.all(np.isfinite(info["keypoints_2d"]))
        if info["sim_unstable"]:
            assert terminated
            counts["unstable"] += 1
        if terminated or truncated:
            counts["episodes"] += 1
            env.reset()
    return counts


# One small camera: the fuzz targets physics and bookkeeping, not rendering.
@pytest.mark.parametrize("env_id", ENVS)
def test_fuzz_2000_steps(env_id: str, make_env) -> None:
    counts = fuzz(make_env(env_id, image_size=16, num_cameras=1), 2000, seed=0)
    assert counts["episodes"] >= 2000 // 50  # time limits (and successes) end episodes


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 10,000 steps: minutes on a loaded 2-core machine
@pytest.mark.parametrize("env_id", ENVS)
def test_fuzz_10000_steps(env_id: str, make_env) -> None:
    counts = fuzz(make_env(env_id, image_size=16, num_cameras=1), 10_000, seed=1)
    assert counts["episodes"] >= 10_000 // 50
