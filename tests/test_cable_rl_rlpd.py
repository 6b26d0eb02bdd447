"""Tests of ``benchmarks.cable_rl --agent rlpd`` (the default agent): the RLPD observation of
every arm, the demonstrations converted through it matching what the env returns when their
actions are replayed, the command line, the first-pass statistics, and the ``--smoke``
pipeline end to end, interrupted after a checkpoint and resumed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cable_rl.cli import main, parse_args
from benchmarks.cable_rl.config import SUMMARY_COLUMNS
from benchmarks.cable_rl.report import first_pass
from benchmarks.cable_rl.rlpd_training import (
    RLPDEpisodeLogger,
    arm_features,
    make_rlpd_env,
    rlpd_config,
    rlpd_demonstrations,
)
from benchmarks.cable_rl.stages import load_episodes, stage_convert, stage_demos
from benchmarks.cable_rl.training import RunContext, run_directory
from benchmarks.cable_rlpd import state_vector
from s3k_envs.demos import load_demonstrations
from s3k_envs.keypoints.predictor import KeypointPredictor


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _grip(offset: float) -> dict[str, np.ndarray]:
    return {"gripper_pos": np.array([0.1, 0.2, 0.3]) + offset,
            "gripper_quat": np.array([1.0, 0, 0, 0]), "gripper_linvel": np.full(3, 0.5),
            "gripper_angvel": np.full(3, -0.5)}


# --------------------------------------------------------------------------- features
def test_arm_features_kp_is_the_cable_rlpd_vector() -> None:
    kp = np.array([[0.1, 0.0, 0.2], [0.1, 0.0, 0.3], [0.5, 0.1, 0.0]], np.float32)
    prev = {"keypoints": kp - 0.01, **_grip(0.0)}
    obs = {"keypoints": kp, **_grip(0.0)}
    v = arm_features("kp", obs, prev, 0.25)
    assert v.shape == (26,) and v.dtype == np.float32
    np.testing.assert_array_equal(v, state_vector(obs, kp, True, 0.25, prev["keypoints"]))
    np.testing.assert_allclose(v[:3], kp[0] - kp[2], atol=1e-7)  # tip relative to the socket
    np.testing.assert_allclose(v[19:25], 0.01, atol=1e-6)  # plug motion since the last step
    assert v[-1] == 0.25


def test_arm_features_vae_latent_change_and_time_left() -> None:
    obs = {"latent": np.arange(10, dtype=np.float32), **_grip(0.0)}
    prev = {"latent": np.arange(10, dtype=np.float32) - 2.0, **_grip(0.0)}
    v = arm_features("vae", obs, prev, 0.5)
    assert v.shape == (34,)
    np.testing.assert_array_equal(v[:10], np.arange(10))
    np.testing.assert_allclose(v[10:13], [0.1, 0.2, 0.3], rtol=1e-6)  # gripper_pos, world
    np.testing.assert_array_equal(v[23:33], np.full(10, 2.0))
    assert v[-1] == 0.5
    with pytest.raises(ValueError, match="arm"):
        arm_features("xyz", obs, prev, 0.5)


def test_first_pass_needs_a_full_window() -> None:
    end = np.array([10, 20, 60, 110, 150, 200])
    ok = np.array([1, 0, 1, 1, 1, 1], float)
    # at 10 the window (-90, 10] holds one success, but a full window first exists at 110
    assert first_pass(end, ok, 100, 0.5) == 110
    assert first_pass(end, ok, 100, 0.8) == 150
    assert first_pass(end, np.zeros(6), 100, 0.5) is None


# --------------------------------------------------------------------------- command line
def test_agent_flag_stems_directories_and_profiles(tmp_path: Path) -> None:
    rlpd = parse_args(["--smoke", "--work-dir", str(tmp_path)])
    ddpg = parse_args(["--smoke", "--work-dir", str(tmp_path), "--agent", "ddpgfd"])
    assert rlpd.agent_kind == "rlpd" and ddpg.agent_kind == "ddpgfd"
    assert rlpd.stem == "cable_rl_rlpd_smoke" and ddpg.stem == "cable_rl_smoke"
    assert run_directory(rlpd, "kp", 0) == tmp_path / "smoke" / "runs" / "rlpd" / "kp" / "seed_0"
    assert run_directory(ddpg, "kp", 0) == tmp_path / "smoke" / "runs" / "kp" / "seed_0"
    quick = parse_args(["--quick", "--work-dir", str(tmp_path)])
    assert quick.steps == 3000 and quick.seeds == (0, 1)
    assert parse_args(["--quick", "--agent", "ddpgfd"]).steps == 2000
    full = parse_args(["--full", "--agent", "rlpd"])
    assert full.stem == "cable_rl_rlpd_full" and full.steps == 40_000 and len(full.seeds) == 5
    c = rlpd_config(quick)
    assert (c.utd, c.num_critics, c.batch_size, c.init_temperature) == (4, 2, 256, 0.01)
    assert not c.backup_entropy and not c.bootstrap_truncation and not c.learn_temperature
    assert rlpd_config(parse_args(["--quick", "--utd", "2"])).utd == 2
    cheap = rlpd_config(parse_args(["--quick", "--rlpd-batch-size", "128", "--actor-every", "2"]))
    assert (cheap.batch_size, cheap.actor_every, cheap.learning_starts) == (128, 2, 128)
    assert c.actor_every == 1
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--actor-every", "0"])
    assert rlpd_config(parse_args(["--quick", "--learn-temperature"])).learn_temperature
    with pytest.raises(SystemExit):
        parse_args(["--smoke", "--agent", "ddpgfd", "--learn-temperature"])
    with pytest.raises(SystemExit):
        parse_args(["--smoke", "--bc-weight", "100"])  # a DDPGfD setting without --agent ddpgfd
    with pytest.raises(SystemExit):
        parse_args(["--smoke", "--agent", "ddpgfd", "--utd", "2"])
    with pytest.raises(SystemExit):
        parse_args(["--smoke", "--agent", "ddpgfd", "--actor-every", "2"])


def test_env_id_flag_names_stem_work_directory_and_checkpoint(tmp_path: Path) -> None:
    plain = parse_args(["--quick", "--work-dir", str(tmp_path), "--tag", "x"])
    assert plain.env_id == "S3K-CableInsert-v0" and plain.stem == "cable_rl_rlpd_quick_x"
    assert plain.work == tmp_path / "quick_x"
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")  # parse_args only checks that the file exists
    short = parse_args(["--quick", "--work-dir", str(tmp_path), "--tag", "x", "--env-id",
                        "S3K-CableInsertShort-v0", "--keypoint-checkpoint", str(ckpt)])
    assert short.env_id == "S3K-CableInsertShort-v0"
    assert short.stem == "cable_rl_rlpd_quick_short_x" and short.work == tmp_path / "quick_short_x"
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--env-id", "S3K-Box-v0"])


# --------------------------------------------------------------------------- demonstrations
def test_converted_demos_match_the_env_replaying_their_actions(tmp_path: Path) -> None:
    """The RLPD observation of demonstration step t equals what the arm's wrapped env returns
    at step t when the demonstration's actions are replayed from its reset seed."""
    cfg = parse_args(["--smoke", "--arms", "gt", "kp", "--demos", "1", "--work-dir",
                      str(tmp_path), "--no-progress"])
    demo_path, _ = stage_demos(cfg, cfg.work)
    predictor = KeypointPredictor.load(cfg.keypoint_checkpoint)
    converted = stage_convert(cfg, cfg.work, demo_path, predictor, None, None)
    (recorded,) = load_demonstrations(demo_path)
    ctx = RunContext(cfg, predictor, None, converted, "", None)
    for arm in ("gt", "kp"):
        flat, _ = load_episodes(Path(converted[arm]["path"]))
        env = make_rlpd_env(ctx, arm)
        try:
            (demo,) = rlpd_demonstrations(flat, arm, env.env.observation_space, env.max_steps)
            assert demo["observations"].shape == (len(demo["actions"]) + 1, 26)
            obs, _ = env.reset(seed=recorded["seed"])
            got = [obs]
            for t, action in enumerate(demo["actions"]):
                obs, reward, terminated, _, _ = env.step(action)
                got.append(obs)
                assert reward == pytest.approx(demo["rewards"][t], abs=1e-6)
                assert terminated == bool(demo["terminated"][t])
        finally:
            env.close()
        np.testing.assert_array_equal(np.stack(got), demo["observations"], err_msg=arm)
        assert demo["terminated"][-1]  # the keypoint rule fired, the episode ended there


# --------------------------------------------------------------------------- end to end
def test_rlpd_smoke_pipeline_interrupted_resumed_and_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--smoke", "--arms", "kp", "vae", "gt", "--work-dir", str(tmp_path),
            "--no-progress"]
    work = tmp_path / "smoke"
    run_dir = work / "runs" / "rlpd" / "kp" / "seed_0"
    original = RLPDEpisodeLogger.__call__
    seen: dict[str, int] = {}

    def interrupt_after_first_checkpoint(self: RLPDEpisodeLogger, agent, record) -> bool:
        out = original(self, agent, record)
        if self.last_checkpoint > 0 and "rows" not in seen:
            seen["rows"] = len(self.rows)  # the checkpoint holds these episodes
        elif "rows" in seen:  # killed one episode later: that episode is not in the checkpoint
            raise KeyboardInterrupt
        return out

    # 1. Interrupted in the first run (kp, seed 0) one episode after its first checkpoint.
    monkeypatch.setattr(RLPDEpisodeLogger, "__call__", interrupt_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    state = json.loads((run_dir / "state.json").read_text())
    assert 40 <= state["steps"] < 100
    ck = run_dir / state["checkpoint"]
    assert {p.name for p in ck.iterdir()} == {"agent.pt", "buffer.npz", "episodes.csv"}
    with np.load(ck / "buffer.npz", allow_pickle=False) as buf:  # no pickled objects in it
        assert len(buf["obs"]) == state["steps"]
    assert not (run_dir / "result.json").exists()
    before = _rows(ck / "episodes.csv")
    assert len(before) == seen["rows"]
    monkeypatch.setattr(RLPDEpisodeLogger, "__call__", original)

    # 2. Rerun: resumes that run from its checkpoint, does the others, writes the results.
    assert main(argv) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["resumed_from_step"] == state["steps"]
    assert result["agent_env_steps"] == 100 and result["agent_updates"] > 0
    assert not (run_dir / "state.json").exists() and not list(run_dir.glob("ckpt_*"))
    episodes = _rows(run_dir / "episodes.csv")
    assert episodes[:len(before)] == before and len(episodes) > len(before)
    assert [int(r["episode"]) for r in episodes] == list(range(len(episodes)))
    steps = [int(r["steps"]) for r in episodes]
    assert steps == sorted(set(steps)) and steps[-1] <= 100  # no episode twice
    assert not (work / "runs" / "kp").exists()  # DDPGfD's run directories untouched

    summary = json.loads((work / "cable_rl_rlpd_smoke.json").read_text())
    assert summary["agent"] == "rlpd" and [r["arm"] for r in summary["rows"]] == [
        "kp", "vae", "gt"]
    for row in summary["rows"]:
        assert 0.0 <= row["eval_success_true_mean"] <= 1.0
        assert row["first_50_true_seeds"] in (0, 1) and len(row["first_50_true_per_seed"]) == 1
    table = _rows(work / "cable_rl_rlpd_smoke.csv")
    assert list(table[0]) == list(SUMMARY_COLUMNS) and len(table) == 3
    assert (work / "cable_rl_rlpd_smoke.png").read_bytes()[:4] == b"\x89PNG"
    assert not (work / "cable_rl_smoke.json").exists()

    # 3. Rerun: every run comes from its result.json, nothing is trained again.
    results = sorted((work / "runs" / "rlpd").rglob("result.json"))
    assert len(results) == 3
    mtimes = [p.stat().st_mtime_ns for p in results]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in results] == mtimes

    # 4. Other RLPD settings in the same work directory: refused, exit status 2.
    assert main([*argv, "--utd", "2"]) == 2
