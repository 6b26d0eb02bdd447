"""The shipped keypoint checkpoints (``assets/checkpoints/``) are present and accurate.

Each evaluation of ``benchmarks/shipped_checkpoints.py`` (env, checkpoint, env options) is
replayed on a few seeded scenes that the benchmark did not use: a reset plus 0..T noisy
scripted-expert steps, as in the benchmark's test sets. The predicted keypoints
(``obs_mode="keypoints"``, the env's default options) are compared with the true ones in
``info["keypoints"]``; the thresholds are the committed benchmark numbers
(``benchmarks/results/shipped_checkpoints.json``, 200 samples each) with a margin for the
small sample, so a checkpoint that got worse, a broken wrapper or a broken triangulation fails
(a randomly initialised model is off by decimetres).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from benchmarks.shipped_checkpoints import EVALUATIONS
from s3k_envs import checkpoints
from s3k_envs.experts import make_expert

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "shipped_checkpoints.json"
#: Scenes per evaluation (x 3 keypoints); seeds far from the benchmark's (7103) and training's.
SCENES = 10
SEED = 40_000
#: Margins on the committed 200-sample numbers, for 10 scenes: the median may be this many
#: times the benchmark's median, the 90th percentile this many times its p90.
MEDIAN_FACTOR = 2.5
P90_FACTOR = 3.0
IN_CHECKOUT = (REPO / ".git").exists()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def benchmark_row(label: str) -> dict[str, Any]:
    rows = json.loads(RESULTS.read_text(encoding="utf-8"))["rows"]
    matches = [r for r in rows if r["evaluation"] == label]
    assert len(matches) == 1, f"{RESULTS.name} has no single row {label!r}"
    return matches[0]


def shipped_checkpoint(env_id: str) -> Path:
    """The env's shipped checkpoint; in a git checkout a missing one is a failure (it is a
    tracked file of the repository), elsewhere (an sdist without assets) a skip."""
    try:
        return checkpoints.default_checkpoint(env_id)
    except FileNotFoundError as exc:
        if IN_CHECKOUT:
            pytest.fail(f"the shipped checkpoint of {env_id} is missing from this checkout:\n"
                        f"{exc}")
        pytest.skip(f"no shipped checkpoint for {env_id} outside a git checkout")


def scene_errors_mm(env: gym.Env, rollout_steps: int, noise: float) -> np.ndarray:
    """``(SCENES, K)`` 3D error (mm) of the raw prediction against the true keypoints, on
    scene i after a reset with seed ``SEED + i`` and ``i % (rollout_steps + 1)`` noisy
    expert steps."""
    expert = make_expert(env)
    rng = np.random.default_rng(SEED)
    low, high = env.action_space.low, env.action_space.high
    errors = []
    for i in range(SCENES):
        obs, info = env.reset(seed=SEED + i)
        expert.reset()
        assert obs in env.observation_space
        for _ in range(i % (rollout_steps + 1)):
            action = expert(obs, info) + noise * rng.standard_normal(low.shape)
            obs, _, terminated, truncated, info = env.step(
                np.clip(action, low, high).astype(np.float32))
            if terminated or truncated:
                break
        assert obs in env.observation_space
        # The observation is the (finite, clipped) prediction; the raw one is in info.
        raw = info["predicted_keypoints"]
        assert np.all(np.isfinite(raw)), raw
        np.testing.assert_allclose(obs["keypoints"], raw, atol=1e-6)
        errors.append(np.linalg.norm(raw - info["keypoints"], axis=-1) * 1000.0)
    return np.asarray(errors)


@pytest.mark.parametrize("label, env_id, ckpt_env, options, rollout_steps, noise", EVALUATIONS,
                         ids=[e[0] for e in EVALUATIONS])
def test_shipped_checkpoint_accuracy(label: str, env_id: str, ckpt_env: str,
                                     options: dict[str, Any], rollout_steps: int,
                                     noise: float) -> None:
    path = shipped_checkpoint(env_id)
    assert path.name == f"{ckpt_env}.pt"
    row = benchmark_row(label)
    assert row["checkpoint"] == path.name and row["env_id"] == env_id
    env = gym.make(env_id, obs_mode="keypoints", **options)
    try:
        assert env.spec.additional_wrappers[0].kwargs["predictor"] == str(path)
        names = list(env.unwrapped.keypoint_names)
        assert env.observation_space["keypoints"].shape == (len(names), 3)
        errors = scene_errors_mm(env, rollout_steps, noise)
    finally:
        env.close()
    median, p90 = float(np.median(errors)), float(np.percentile(errors, 90))
    detail = (f"{label}: median {median:.2f} mm, p90 {p90:.2f} mm over {errors.size} keypoints "
              f"(benchmark: median {row['median_mm']:.2f}, p90 {row['p90_mm']:.2f}); "
              f"per scene: {np.round(errors, 1).tolist()}")
    assert median <= MEDIAN_FACTOR * row["median_mm"], detail
    assert p90 <= P90_FACTOR * row["p90_mm"], detail


def test_a_missing_checkpoint_fails_in_a_checkout(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules[__name__]
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIRS", (tmp_path,))
    monkeypatch.setattr(module, "IN_CHECKOUT", True)
    with pytest.raises(pytest.fail.Exception, match="S3K-Box-v0 is missing from this checkout"):
        shipped_checkpoint("S3K-Box-v0")
    monkeypatch.setattr(module, "IN_CHECKOUT", False)  # e.g. an sdist without the assets
    with pytest.raises(pytest.skip.Exception):
        shipped_checkpoint("S3K-Box-v0")
