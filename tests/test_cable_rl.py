"""Tests of benchmarks/cable_rl/: the rolling success rate, the seed statistics, the
relabelling of demonstrations with an arm's own keypoint reward, and the whole ``--smoke``
pipeline end to end (all three arms), interrupted in the middle of a run, resumed from its
checkpoint, rerun from the caches, and refused when the settings change."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from benchmarks.cable_rl.cli import main, parse_args
from benchmarks.cable_rl.config import (
    ENV_ID,
    EPISODE_COLUMNS,
    GRIPPER_KEYS,
    SUMMARY_COLUMNS,
    file_sha256,
    rolling_success,
    seed_stats,
)
from benchmarks.cable_rl.envs import TrueKeypointObservation
from benchmarks.cable_rl.stages import relabel_episode
from benchmarks.cable_rl.training import EpisodeLogger, run_directory
from s3k_envs.envs.cable import PLUG_EXPOSED
from s3k_envs.wrappers.rewards import KeypointReward, cable_insert_reward


# --------------------------------------------------------------------------- pure helpers
def test_rolling_success_counts_episodes_ending_in_the_window() -> None:
    end = np.array([10, 20, 30, 45])
    success = np.array([1, 0, 1, 1])
    got = rolling_success(end, success, np.array([5, 10, 25, 50, 100]), 20)
    # (-15, 5]: none; (-10, 10]: {10}; (5, 25]: {10, 20}; (30, 50]: {45}; (80, 100]: none
    assert np.isnan(got[0]) and np.isnan(got[4])
    np.testing.assert_allclose(got[1:4], [1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="window"):
        rolling_success(end, success, np.array([10]), 0)
    with pytest.raises(ValueError, match="shapes"):
        rolling_success(end, success[:2], np.array([10]), 5)


def test_seed_stats() -> None:
    st = seed_stats([0.2, 0.6, math.nan])
    assert st["mean"] == pytest.approx(0.4) and st["min"] == 0.2 and st["max"] == 0.6
    assert st["sd"] == pytest.approx(np.std([0.2, 0.6], ddof=1))
    assert math.isnan(seed_stats([0.5])["sd"])
    assert math.isnan(seed_stats([])["mean"])


# --------------------------------------------------------------------------- relabelling
@pytest.fixture
def true_reward() -> Iterator[KeypointReward]:
    """The ``gt`` arm's reward wrapper (true keypoints, the cable rule), 16 px images."""
    base = gym.make(ENV_ID, image_size=16, terminate_on_success=False,
                    disable_env_checker=True)
    reward = cable_insert_reward(TrueKeypointObservation(base, GRIPPER_KEYS),
                                 terminate_on_success=True)
    yield reward
    reward.close()


def _synthetic(steps: int, inserted_from: int | None, left_at: int | None = None
               ) -> tuple[dict[str, Any], np.ndarray, dict[str, Any]]:
    """An episode of ``steps`` steps: the plug 10 cm above the socket until observation
    ``inserted_from`` (fully inserted from then on); the gripper leaves the safety box
    at observation ``left_at``."""
    socket, up = np.array([0.01, -0.02, 0.04]), np.array([0.0, 0.0, 1.0])
    far = np.stack([socket + 0.10 * up, socket + 0.15 * up, socket])
    inserted = np.stack([socket, socket + PLUG_EXPOSED * up, socket])
    kp = np.stack([inserted if inserted_from is not None and t >= inserted_from else far
                   for t in range(steps + 1)])
    grip = np.tile([0.01, -0.02, 0.30], (steps + 1, 1))
    if left_at is not None:
        grip[left_at:, 2] = 0.5  # above the box's 0.40 m ceiling
    obs = {"gripper_pos": grip, "x": np.arange(steps + 1)}
    episode = {"observations": obs, "actions": np.zeros((steps, 6), np.float32)}
    recorded = {"observations": {"gripper_pos": grip}, "infos": {"keypoints": kp}}
    return episode, kp, recorded


def test_relabel_cuts_at_the_first_keypoint_success(true_reward: KeypointReward) -> None:
    box = true_reward.unwrapped.options["safety_box"]
    episode, kp, recorded = _synthetic(8, inserted_from=4)
    out, outcome = relabel_episode(episode, kp, recorded, true_reward, box)
    assert outcome == "rule"
    assert len(out["actions"]) == 4 and len(out["observations"]["x"]) == 5
    np.testing.assert_array_equal(out["terminated"], [False, False, False, True])
    assert not out["truncated"].any()
    far_error = 0.10 + np.linalg.norm([0, 0, 0.15 - PLUG_EXPOSED])
    # the env's reward: 1 - tanh(D / 0.2 m) per step, + 100 on the step that succeeds (D = 0)
    far = 1.0 - math.tanh(far_error / 0.2)
    np.testing.assert_allclose(out["rewards"], [far] * 3 + [1.0 + 100.0], atol=1e-9)


def test_relabel_never_and_left_box(true_reward: KeypointReward) -> None:
    box = true_reward.unwrapped.options["safety_box"]
    episode, kp, recorded = _synthetic(5, inserted_from=None)
    out, outcome = relabel_episode(episode, kp, recorded, true_reward, box)
    assert outcome == "never" and len(out["actions"]) == 5
    assert out["truncated"][-1] and not out["terminated"].any()
    episode, kp, recorded = _synthetic(5, inserted_from=None, left_at=3)
    out, outcome = relabel_episode(episode, kp, recorded, true_reward, box)
    assert outcome == "left_box" and len(out["actions"]) == 3 and out["terminated"][-1]
    # no penalty by default: leaving forfeits the reward still to come
    assert "left_safety_box" not in true_reward.penalties
    assert out["rewards"][-1] == pytest.approx(out["rewards"][0])
    # with a safety penalty, the step that leaves pays it
    penalised = cable_insert_reward(true_reward.env, terminate_on_success=True,
                                    safety_penalty=10.0)
    out, outcome = relabel_episode(episode, kp, recorded, penalised, box)
    assert outcome == "left_box"
    assert out["rewards"][-1] == pytest.approx(out["rewards"][0] - 10.0)
    kp_bad = kp.copy()
    kp_bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        relabel_episode(episode, kp_bad, recorded, true_reward, box)


# --------------------------------------------------------------------------- end to end
def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_smoke_pipeline_interrupted_resumed_and_cached(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--smoke", "--arms", "kp", "vae", "gt", "--work-dir", str(tmp_path),
            "--no-progress", "--agent", "ddpgfd"]
    work = tmp_path / "smoke"
    run_dir = work / "runs" / "kp" / "seed_0"
    original = EpisodeLogger._on_step

    def interrupt_after_first_checkpoint(self: EpisodeLogger) -> bool:
        out = original(self)
        if self.last_checkpoint > 0:
            raise KeyboardInterrupt
        return out

    # 1. Interrupted in the first run (kp, seed 0) right after its first checkpoint.
    monkeypatch.setattr(EpisodeLogger, "_on_step", interrupt_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    state = json.loads((run_dir / "state.json").read_text())
    assert 40 <= state["steps"] < 100
    assert (run_dir / state["checkpoint"] / "buffer.pkl").is_file()
    assert not (run_dir / "result.json").exists()
    before = _rows(run_dir / state["checkpoint"] / "episodes.csv")
    monkeypatch.setattr(EpisodeLogger, "_on_step", original)

    # 2. Rerun: resumes that run from its checkpoint, does the others, writes the results.
    assert main(argv) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["resumed_from_step"] == state["steps"]
    assert not (run_dir / "state.json").exists() and not list(run_dir.glob("ckpt_*"))
    episodes = _rows(run_dir / "episodes.csv")
    assert episodes[:len(before)] == before and len(episodes) > len(before)
    steps = [int(r["steps"]) for r in episodes]
    assert steps == sorted(steps) and steps[-1] <= 100
    assert list(episodes[0]) == list(EPISODE_COLUMNS)
    assert any((run_dir / "tb").rglob("events.out.tfevents.*"))

    summary = json.loads((work / "cable_rl_smoke.json").read_text())
    assert [r["arm"] for r in summary["rows"]] == ["kp", "vae", "gt"]
    for row in summary["rows"]:
        assert 0.0 <= row["eval_success_keypoint_mean"] <= 1.0
        assert 0.0 <= row["eval_success_true_mean"] <= 1.0
    assert summary["machine"]["command"] and summary["config"]["profile"] == "smoke"
    assert summary["keypoint_checkpoint_sha256"] == file_sha256(
        summary["config"]["keypoint_checkpoint"])
    probe = summary["linear_probe"]
    assert probe["keypoint_model"]["median"] >= 0 and probe["test"]["median"] >= 0
    per_arm = summary["demonstrations"]["per_arm"]
    assert per_arm["gt"]["outcomes"] == {"rule": 2, "never": 0, "left_box": 0}
    assert per_arm["gt"]["rule_steps_after_true_success"]["max"] == 0
    assert per_arm["gt"]["max_abs_reward_diff_vs_recorded"] < 1e-5
    table = _rows(work / "cable_rl_smoke.csv")
    assert list(table[0]) == list(SUMMARY_COLUMNS) and len(table) == 3
    assert len(_rows(work / "cable_rl_smoke_eval.csv")) == 3
    assert {r["arm"] for r in _rows(work / "cable_rl_smoke_episodes.csv")} == {"kp", "vae", "gt"}
    assert (work / "cable_rl_smoke.png").read_bytes()[:4] == b"\x89PNG"

    # 3. Rerun: everything comes from the caches, nothing is trained again, and the stage
    #    timings of the calls that did the work are kept.
    results = sorted((work / "runs").rglob("result.json"))
    mtimes = [p.stat().st_mtime_ns for p in results]
    timed = summary["stages"]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in results] == mtimes
    stages = json.loads((work / "cable_rl_smoke.json").read_text())["stages"]
    assert all(r["reused_in_last_call"] for r in stages.values())
    assert {k: r["wall_s"] for k, r in stages.items()} == {k: r["wall_s"] for k, r in
                                                           timed.items()}
    assert stages["4. training and evaluation"]["wall_s"] > 1.0

    # 4. Other settings in the same work directory: refused with the reason, exit status 2.
    assert main([*argv, "--steps", "120"]) == 2

    # 5. --aggregate-only with a seed that never ran and an arm without a finished run:
    #    nothing is trained, the finished runs are summarised and the others listed.
    (work / "runs" / "gt" / "seed_0" / "result.json").rename(tmp_path / "gt_result.json")
    assert main([*argv, "--seeds", "0", "1", "--aggregate-only"]) == 0
    summary = json.loads((work / "cable_rl_smoke.json").read_text())
    assert [(r["arm"], r["seeds"]) for r in summary["rows"]] == [("kp", 1), ("vae", 1)]
    assert {(m["arm"], m["seed"]) for m in summary["missing_runs"]} == {
        ("kp", 1), ("vae", 1), ("gt", 0), ("gt", 1)}
    assert not (work / "runs" / "kp" / "seed_1").exists()
    assert {r["arm"] for r in _rows(work / "cable_rl_smoke_eval.csv")} == {"kp", "vae"}
    assert main([*argv, "--seeds", "7", "--aggregate-only"]) == 2  # nothing has finished


def test_ablation_training_curve_averages_seeds(tmp_path: Path) -> None:
    from benchmarks import cable_rl_ablation

    path = tmp_path / "episodes.csv"
    rows = [("0", 50, 0), ("0", 150, 1), ("1", 100, 1), ("1", 180, 1)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "seed", "steps", "success_true"])
        for seed, steps, ok in rows:
            w.writerow(["gt", seed, steps, ok])
    xs, ys = cable_rl_ablation._training_curve(path, window=100, steps=200)
    # x=100: seed 0 -> [0] (0.0), seed 1 -> [1] (1.0); x=200: seed 0 -> [1], seed 1 -> [1].
    assert xs == [100, 200]
    assert ys == pytest.approx([0.5, 1.0])


def test_ablation_copies_demonstrations_once(tmp_path: Path) -> None:
    from benchmarks import cable_rl_ablation

    src, dst = tmp_path / "a", tmp_path / "b"
    (src / "demos").mkdir(parents=True)
    (src / "demos" / "cable.npz").write_bytes(b"demo")
    dst.mkdir()
    cable_rl_ablation._copy_demos(src, dst)
    assert (dst / "demos" / "cable.npz").read_bytes() == b"demo"
    (src / "demos" / "cable.npz").write_bytes(b"other")
    cable_rl_ablation._copy_demos(src, dst)  # the target's copy is kept
    assert (dst / "demos" / "cable.npz").read_bytes() == b"demo"


def test_tag_gives_its_own_work_directory_and_stem(tmp_path: Path) -> None:
    plain = parse_args(["--smoke", "--work-dir", str(tmp_path), "--agent", "ddpgfd"])
    tagged = parse_args(["--smoke", "--work-dir", str(tmp_path), "--tag", "long",
                         "--agent", "ddpgfd"])
    assert plain.work == tmp_path / "smoke" and tagged.work == tmp_path / "smoke_long"
    assert run_directory(tagged, "kp", 0).is_relative_to(tagged.work)
    assert not run_directory(tagged, "kp", 0).is_relative_to(plain.work)
    assert tagged.stem == "cable_rl_smoke_long"
    with pytest.raises(SystemExit):
        parse_args(["--smoke", "--tag", "a/b"])


def test_behaviour_cloning_fits_a_linear_map() -> None:
    from benchmarks import cable_bc

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 5)).astype(np.float32)
    actions = np.tanh(obs @ rng.normal(size=(5, 3)) * 0.3).astype(np.float32)
    episodes = [{"observations": np.vstack([obs[i:i + 20], obs[i + 19:i + 20]]),
                 "actions": actions[i:i + 20]} for i in range(0, 200, 20)]
    o, a = cable_bc.demo_arrays(episodes)
    assert o.shape == (200, 5) and a.shape == (200, 3)
    np.testing.assert_array_equal(o, obs)
    _, mse = cable_bc.fit_policy(o, a, steps=1500, seed=0)
    assert mse < 0.1 * float(np.mean(a ** 2))
    with pytest.raises(ValueError, match="as many observations"):
        cable_bc.fit_policy(o, a[:10], steps=1, seed=0)


def test_ablation_variants_are_valid_ddpgfd_command_lines(tmp_path: Path) -> None:
    """Every ablation variant is a DDPGfD variant: its cable_rl command line (with the
    ablation's common flags) parses, with DDPGfD as the agent."""
    from benchmarks import cable_rl_ablation
    from benchmarks.cable_rl.cli import parse_args

    for name, flags in cable_rl_ablation.VARIANTS.items():
        cfg = parse_args([*cable_rl_ablation.cable_rl_flags("quick"), *flags,
                          "--work-dir", str(tmp_path / name)])
        assert cfg.agent_kind == "ddpgfd", name


def test_probe_cache_names_checkpoints_relative_to_the_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """probe.json must not keep the absolute path of the checkout (or git worktree) that ran
    the probe: results aggregated from another checkout would carry it into committed files."""
    from benchmarks import common
    from benchmarks.cable_rl import stages

    ckpt = common.REPO_ROOT / "assets" / "checkpoints" / "S3K-CableInsert-v0.pt"
    vae = tmp_path / "vae.pt"
    vae.write_bytes(b"vae")
    monkeypatch.setattr(stages, "_dataset_params", lambda root: {"seed": 1})
    monkeypatch.setattr(stages, "linear_probe", lambda *a, keypoint_model, **k: {
        "num_test": 1, "test": {"median": 1.0, "p90": 2.0}, "mean_baseline": {"median": 3.0},
        "keypoint_model": {"checkpoint": str(keypoint_model), "median": 0.5, "p90": 0.9}})
    cfg = SimpleNamespace(keypoint_checkpoint=ckpt)
    result, reused = stages.stage_probe(cfg, tmp_path, vae, tmp_path)
    assert not reused
    assert result["keypoint_model"]["checkpoint"] == "assets/checkpoints/S3K-CableInsert-v0.pt"
    cached = json.loads((tmp_path / "probe.json").read_text())["result"]
    assert cached["keypoint_model"]["checkpoint"] == result["keypoint_model"]["checkpoint"]
    assert stages.stage_probe(cfg, tmp_path, vae, tmp_path) == (result, True)
