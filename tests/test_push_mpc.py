"""The push MPC benchmark (``benchmarks/push_mpc``): a tiny run of all four state sources,
their states and goals, resuming from the cache, and bad input.

Tiny sizes (3 data episodes of 6 steps, 5 training steps, 1 goal episode of 3 steps, a
2-step beta-VAE, 16 MPPI samples): seconds on one thread. The numbers the benchmark reports
are not checked here, only that every method runs end to end on its own states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.dynamics import DynamicsConfig, KeypointDynamics
from agents.mpc import MPPIConfig
from benchmarks.push_mpc import main
from benchmarks.push_mpc import sources as S
from benchmarks.push_mpc.run import LatentGoalPlanner, append_row, parse_methods, read_rows
from s3k_envs.descriptors.model import DescriptorCheckpointError

TINY = ["--episodes", "3", "--steps", "6", "--train-steps", "5", "--eval-episodes", "1",
        "--eval-steps", "3", "--vae-steps", "2", "--samples", "16", "--horizon", "3",
        "--iterations", "1", "--seeds", "0", "--tag", "tiny"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str], Path]:
    root = tmp_path_factory.mktemp("push_mpc")
    argv = [*TINY, "--cache", str(root / "cache"), "--out", str(root / "out")]
    return main(argv), argv, root


def test_every_method_runs_on_its_own_states(tiny_run: tuple[dict[str, Any], list[str], Path]
                                             ) -> None:
    doc, _, root = tiny_run
    assert doc["methods"] == list(S.METHODS)
    shapes = {m: tuple(v["shape"]) for m, v in doc["states"].items()}
    assert shapes == {"true": (4, 3), "s3k": (4, 3), "descriptor": (6, 3), "vae": (13,)}
    for m in [*S.METHODS, "expert", "random"]:
        s = doc["summary"][m]
        assert s["seeds"] == [0] and s["pooled"]["episodes"] == 1, m
        assert set(s["over_seeds"]["success_rate"]) == {"mean", "std", "per_seed"}
    for m in S.METHODS:  # the planners ran and were timed
        assert doc["summary"][m]["pooled"]["plan_ms_median"] > 0
        assert doc["training"][f"{m}_seed0"]["steps"] == 5
    assert doc["data"]["vae"]["steps"] == 2
    for ext in ("csv", "json", "png"):
        assert (root / "out" / f"push_mpc_tiny.{ext}").is_file()
    rows = (root / "out" / "push_mpc_tiny.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # header + 4 methods + 2 baselines


def test_methods_share_the_transitions(tiny_run: tuple[dict[str, Any], list[str], Path]
                                       ) -> None:
    """Every method's states come from the same episodes: the pusher rows are identical and
    the S3K corners are the true corners up to the model's error."""
    _, _, root = tiny_run
    (data_dir,) = (root / "cache").glob("e3_t6_*")
    true = np.load(data_dir / "true.npz")["states"]
    assert true.shape == (3, 7, 4, 3)
    (s3k_file,) = data_dir.glob("s3k_*.npz")
    (desc_file,) = data_dir.glob("descriptor_*.npz")
    (vae_file,) = data_dir.glob("vae_*.npz")
    s3k, desc = np.load(s3k_file)["states"], np.load(desc_file)["states"]
    vae = np.load(vae_file)["states"]
    assert desc.shape == (3, 7, 6, 3) and vae.shape == (3, 7, 13)
    np.testing.assert_array_equal(s3k[:, :, 3], true[:, :, 3])
    np.testing.assert_array_equal(desc[:, :, 5], true[:, :, 3])
    np.testing.assert_array_equal(vae[:, :, 10:], true[:, :, 3])
    err_mm = 1000 * np.linalg.norm(s3k[:, :, :3] - true[:, :, :3], axis=-1)
    assert np.median(err_mm) < 5.0, err_mm


def test_a_rerun_resumes_from_the_cache(tiny_run: tuple[dict[str, Any], list[str], Path]
                                        ) -> None:
    doc, argv, root = tiny_run
    row_files = sorted((root / "cache").rglob("*.jsonl"))
    assert len(row_files) == 6
    before = {p: p.read_text() for p in row_files}
    again = main(argv)
    assert {p: p.read_text() for p in row_files} == before  # nothing evaluated twice
    for m in S.METHODS:
        assert again["summary"][m]["pooled"] == doc["summary"][m]["pooled"]
        assert again["training"][f"{m}_seed0"] == doc["training"][f"{m}_seed0"]


def test_image_goals_come_from_the_goal_images() -> None:
    """The S3K goal is the model's prediction on the goal images: near the true goal
    corners, and not the current corners."""
    src = S.point_source("s3k", S.KeypointPredictor.load(
        S.checkpoints.default_checkpoint(S.ENV_ID)))
    env = gym.make(S.ENV_ID, goal_images=True, goal_mode="pushes")
    try:
        obs, info = env.reset(seed=10000)
        goal = src.goal(obs)
        state = src.state(obs, info)
    finally:
        env.close()
    assert goal.shape == (3, 3) and state.shape == (4, 3)
    assert np.linalg.norm(goal - obs["goal_keypoints"], axis=-1).max() < 0.01
    moved = np.linalg.norm(obs["goal_keypoints"] - info["keypoints"], axis=-1).mean()
    assert np.linalg.norm(goal - state[:3], axis=-1).mean() > 0.5 * moved


def test_row_file_drops_a_line_cut_by_an_interruption(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    append_row(path, {"episode": 0})
    append_row(path, {"episode": 1})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"episode": 2, "pos')  # killed mid-write
    assert read_rows(path) == [{"episode": 0}, {"episode": 1}]
    append_row(path, {"episode": 2})
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"episode": e} for e in range(3)]


def test_descriptor_checkpoint_with_another_k_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DescriptorCheckpointError, match=r"has 5 reference descriptors.*expected 4"):
        main([*TINY, "--methods", "descriptor", "--descriptor-keypoints", "4",
              "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.npz"))


def test_bad_methods_and_seeds() -> None:
    with pytest.raises(ValueError, match="--methods: expected a comma-separated subset"):
        parse_methods("true,transporter")
    with pytest.raises(ValueError, match="--seeds: expected distinct non-negative"):
        main([*TINY[:-4], "--seeds", "0,0"])


def test_goal_episodes_default_to_the_env_time_limit() -> None:
    """Without ``--eval-steps`` a goal episode is as long as the env's own episodes."""
    from benchmarks.push_mpc.run import default_eval_steps

    assert default_eval_steps(S.ENV_ID) == 60
    assert default_eval_steps(S.SHOE_ENV_ID) == 80
    with pytest.raises(ValueError, match="unknown push env 'S3K-Nope-v0'"):
        default_eval_steps("S3K-Nope-v0")


def test_latent_planner_goal_shape() -> None:
    model = KeypointDynamics(DynamicsConfig((13,), 2, hidden=(8,)))
    planner = LatentGoalPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=2, samples=4,
                                                                    iterations=1), 10)
    assert planner.act(np.zeros(13, np.float32), np.zeros(10, np.float32)).shape == (2,)
    with pytest.raises(ValueError, match=r"goal: expected shape \(10,\).*got \(13,\)"):
        planner.act(np.zeros(13, np.float32), np.zeros(13, np.float32))


def test_descriptor_fallback_trains_with_the_documented_commands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a shipped or given checkpoint the benchmark trains one under its cache, with
    argument lists that the ``s3k descriptors`` parser accepts (not run here: 10 min)."""
    from benchmarks.push_mpc import run
    from s3k_envs.descriptors.cli import build_parser

    commands = S.descriptor_commands(tmp_path / "d", 5)
    assert [c[0] for c in commands] == ["generate", "generate", "train", "select"]
    for argv in commands:
        build_parser().parse_args(argv)
    assert "300" in commands[0] and "300" in commands[2] and commands[3][-3] == "5"
    calls: list[tuple[Path, int, str]] = []
    monkeypatch.setattr(S, "shipped_descriptor_checkpoint", lambda env_id: None)
    monkeypatch.setattr(S, "train_descriptor_checkpoint", lambda cache, k, log, env_id:
                        calls.append((cache, k, env_id)) or cache / "model.pt")
    assert run.resolve_descriptor(None, 5, tmp_path, print) == tmp_path / "descriptors/model.pt"
    assert calls == [(tmp_path / "descriptors", 5, S.ENV_ID)]
    assert run.resolve_descriptor("x.pt", 5, tmp_path, print) == Path("x.pt")
    assert len(calls) == 1


def test_shoe_descriptors_fall_back_to_the_shoe_recipe(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No shoe descriptor checkpoint is shipped (the BoxPush one is never used for shoes):
    the fallback trains one on scenes of the training shoes, with the shoe recipe's budget,
    in its own cache folder."""
    from benchmarks.push_mpc import run
    from s3k_envs.descriptors.cli import build_parser

    assert S.shipped_descriptor_checkpoint(S.SHOE_ENV_ID) is None
    assert S.shipped_descriptor_checkpoint() is not None
    commands = S.descriptor_commands(tmp_path / "d", 5, S.SHOE_ENV_ID)
    for argv in commands:
        build_parser().parse_args(argv)
    for gen in commands[:2]:
        assert gen[1:5] == ["--env", S.SHOE_ENV_ID, "--env-option", "instances=train"]
    assert commands[2][commands[2].index("--cpu-seconds") + 1] == "900"
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(S, "train_descriptor_checkpoint", lambda cache, k, log, env_id:
                        calls.append((cache, env_id)) or cache / "model.pt")
    got = run.resolve_descriptor(None, 5, tmp_path, print, S.SHOE_ENV_ID)
    assert got == tmp_path / "descriptors_shoepush" / "model.pt"
    assert calls == [(tmp_path / "descriptors_shoepush", S.SHOE_ENV_ID)]


TIMING = ("plan_ms_median", "plan_ms_max", "perceive_ms_median")


def _untimed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.timeout(180)
def test_ray_runs_the_same_rows_as_the_local_runner(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``--ray`` on a local Ray instance (2 CPUs): every (method, seed) and baseline is a
    task; the rows equal the local runner's (all but the timings), and a unit whose worker
    dies after its work is retried from the cache without evaluating an episode twice."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from s3k_envs.keypoints import ray_backend

    argv = [*TINY, "--methods", "true,s3k"]
    local = main([*argv, "--cache", str(tmp_path / "local"), "--out", str(tmp_path / "o1")])
    faults = tmp_path / "faults"
    faults.mkdir()
    for unit in ("true_0", "expert_0", "random_0"):  # only s3k seed 0's worker dies
        (faults / f"push_{unit}").touch()
    monkeypatch.setattr(ray_backend, "FAULT_DIR", str(faults))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = main([*argv, "--ray", "--cache", str(tmp_path / "ray"),
                       "--out", str(tmp_path / "o2")])
    finally:
        ray.shutdown()
    assert (faults / "push_s3k_0").read_text().strip().isdigit()  # that attempt ran and died
    (s3k_rows,) = (tmp_path / "ray").rglob("s3k_*.jsonl")
    assert len(s3k_rows.read_text().splitlines()) == 1  # the retry evaluated nothing again
    for m in ("true", "s3k", "expert", "random"):
        assert on_ray["summary"][m]["pooled"]["episodes"] == 1
    csv_local = common_rows(tmp_path / "o1" / "push_mpc_tiny.csv")
    csv_ray = common_rows(tmp_path / "o2" / "push_mpc_tiny.csv")
    assert _untimed(csv_ray) == _untimed(csv_local) and len(csv_local) == 4
    for key, stats in local["training"].items():
        same = {k: v for k, v in stats.items() if "seconds" not in k}
        assert {k: v for k, v in on_ray["training"][key].items() if "seconds" not in k} == same


def common_rows(path: Path) -> list[dict[str, Any]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_device_option(tmp_path: Path) -> None:
    """``--device auto`` trains and plans where resolve_device says (the CPU here unless a
    GPU is present); a device this machine lacks is refused before any work."""
    from s3k_envs.device import resolve_device

    doc = main([*TINY, "--methods", "true", "--device", "auto", "--cache", str(tmp_path / "c"),
                "--out", str(tmp_path / "o")])
    assert doc["training"]["true_seed0"]["device"] == str(resolve_device("auto"))
    with pytest.raises(ValueError, match="device: expected one of"):
        main([*TINY, "--device", "tpu", "--cache", str(tmp_path / "c2")])
    assert not (tmp_path / "c2").exists()


# ---------------------------------------------------------------------------- variants
def _variant_run(tiny_run: tuple[dict[str, Any], list[str], Path], tmp_path: Path,
                 *extra: str) -> tuple[dict[str, Any], Path, set[Path]]:
    """The tiny run again with ``extra`` options, on a copy of its cache; returns the result,
    the cache and the episode files that were not in the base cache."""
    import shutil

    _, argv, root = tiny_run
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    before = set(cache.rglob("*.jsonl"))
    doc = main([*argv, *extra, "--cache", str(cache), "--out", str(tmp_path / "out")])
    return doc, cache, set(cache.rglob("*.jsonl")) - before


def test_camera_subsets_are_chosen_from_the_calibration() -> None:
    """``top`` / ``low`` are the 2 views whose optical axes point down most / least steeply
    (the cameras' elevations above the scene agree), and S3K triangulates the corners from
    either pair."""
    from benchmarks.push_mpc.variants import choose_views, depression_deg

    src = S.point_source("s3k", S.KeypointPredictor.load(
        S.checkpoints.default_checkpoint(S.ENV_ID)))
    env = gym.make(S.ENV_ID)
    try:
        for seed in (0, 1, 2):
            obs, info = env.reset(seed=seed)
            extr = obs["extrinsics"]
            top, low = choose_views(extr, "top"), choose_views(extr, "low")
            assert len(top) == len(low) == 2 and not set(top) & set(low)
            dep = depression_deg(extr)
            assert dep[top].min() >= dep[low].max()
            u = env.unwrapped
            cams = u.model.cam_pos[u._cam_ids]
            target = np.asarray(u.options["camera_target"])
            elev = np.arctan2(cams[:, 2] - target[2], np.linalg.norm(cams[:, :2] - target[:2],
                                                                     axis=1))
            assert elev[top].mean() > elev[low].mean()
            for which in ("top", "low"):
                src.views = which
                err = np.linalg.norm(src.state(obs, info)[:3] - info["keypoints"], axis=1)
                assert np.median(err) < 0.01, (seed, which, err)
    finally:
        env.close()
    with pytest.raises(ValueError, match=r"cameras: expected one of \['all', 'top', 'low'\]"):
        choose_views(extr, "side")


def test_cameras_variant_reuses_data_and_dynamics(
        tiny_run: tuple[dict[str, Any], list[str], Path], tmp_path: Path) -> None:
    """``--cameras low``: only the image methods are evaluated again (the beta-VAE is left
    out); data, dynamics, the true arm and the baselines come from the base cache."""
    base = tiny_run[0]
    doc, _, new = _variant_run(tiny_run, tmp_path, "--cameras", "low")
    assert doc["methods"] == ["true", "s3k", "descriptor"]
    assert doc["variant"]["name"] == ["cameras-low"]
    assert sorted(p.name.split("_")[0] for p in new) == ["descriptor", "s3k"]
    assert doc["summary"]["true"]["pooled"] == base["summary"]["true"]["pooled"]
    assert doc["training"]["s3k_seed0"] == base["training"]["s3k_seed0"]
    for ext in ("csv", "json", "png"):
        assert (tmp_path / "out" / f"push_mpc_tiny_cameras-low.{ext}").is_file()
    with pytest.raises(ValueError, match="beta-VAE embeds a fixed 4 views"):
        main([*TINY, "--cameras", "top", "--methods", "true,vae"])


def test_occluder_changes_the_images_not_the_physics() -> None:
    """The cards sit on cameras 0 and 1's line of sight to the scene centre, change those
    views (and the goal views), and every transition equals the plain env's."""
    from benchmarks.push_mpc.variants import OCCLUDED_CAMERAS, card_angle_deg, make_env

    kw = {"goal_images": True, "goal_mode": "pushes"}
    occluded, plain = make_env(S.ENV_ID, occluder=True, **kw), gym.make(S.ENV_ID, **kw)
    try:
        assert occluded.spec.max_episode_steps == plain.spec.max_episode_steps
        (o1, i1), (o0, i0) = occluded.reset(seed=10000), plain.reset(seed=10000)
        u = occluded.unwrapped
        angles = card_angle_deg(o1["extrinsics"].astype(float),
                                np.asarray(u.options["camera_target"]), u.place_occluders())
        assert np.all(angles < 0.01), angles
        for key in ("images", "goal_images"):
            diff = np.abs(o1[key].astype(int) - o0[key]).max(axis=-1) > 30  # (C, H, W)
            assert diff[list(OCCLUDED_CAMERAS)].mean(axis=(1, 2)).min() > 0.03, key
        rng = np.random.default_rng(0)
        for _ in range(10):
            a = S.env_action(rng.uniform(-1, 1, 2))
            _, r1, _, _, i1 = occluded.step(a)
            _, r0, _, _, i0 = plain.step(a)
            np.testing.assert_array_equal(i1["keypoints"], i0["keypoints"])
            assert r1 == r0
    finally:
        occluded.close()
        plain.close()


def test_occluder_variant_runs(tiny_run: tuple[dict[str, Any], list[str], Path],
                               tmp_path: Path) -> None:
    doc, _, new = _variant_run(tiny_run, tmp_path, "--occluder", "--methods", "true,s3k")
    assert doc["variant"]["name"] == ["occluder"]
    assert [p.name.split("_")[0] for p in new] == ["s3k"]  # the true arm is not re-run
    assert (tmp_path / "out" / "push_mpc_tiny_occluder.csv").is_file()


def test_held_out_shoes_variant(tmp_path: Path) -> None:
    """``--env S3K-ShoePush-v0 --instances test``: data on shoes, the shipped Shoes model
    for the S3K arm, goal episodes on the held-out shoes 12-15."""
    doc = main([*TINY, "--env", S.SHOE_ENV_ID, "--instances", "test", "--methods", "true,s3k",
                "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")])
    assert doc["variant"]["name"] == ["shoepush-test"]
    assert doc["states"]["s3k"]["digest"] == S.file_digest(
        S.checkpoints.default_checkpoint("S3K-Shoes-v0"))
    assert {tuple(v["shape"]) for v in doc["states"].values()} == {(4, 3)}
    (data_dir,) = (tmp_path / "c").glob(f"e3_t6_*_{S.SHOE_ENV_ID}")
    assert np.load(data_dir / "true.npz")["states"].shape == (3, 7, 4, 3)
    rows = common_rows(tmp_path / "o" / "push_mpc_tiny_shoepush-test.csv")
    assert len(rows) == 4 and all(12 <= int(r["instance_id"]) <= 15 for r in rows)
    with pytest.raises(ValueError, match="--instances: only for --env S3K-ShoePush-v0"):
        main([*TINY, "--instances", "test"])


def test_subset_triangulation_equals_the_predictor_on_the_subset() -> None:
    """Triangulating the per-view estimates of a view subset gives what the descriptor
    predictor (which accepts any number of views) returns when given only those views."""
    from benchmarks.push_mpc.variants import choose_views

    predictor = S.DescriptorPredictor.load(S.shipped_descriptor_checkpoint(), num_keypoints=5)
    src = S.point_source("descriptor", predictor)
    env = gym.make(S.ENV_ID)
    try:
        obs, _ = env.reset(seed=3)
    finally:
        env.close()
    for which in ("top", "low"):
        idx = choose_views(obs["extrinsics"], which)
        direct = predictor.predict(obs["images"][idx], obs["intrinsics"][idx],
                                   obs["extrinsics"][idx]).points_3d
        direct = np.clip(direct, src.encoder.low, src.encoder.high)
        got = src.object_part(obs["images"][None], obs["intrinsics"][None],
                              obs["extrinsics"][None], idx)[0]
        np.testing.assert_allclose(got, direct, atol=1e-5)
        full = src.object_part(obs["images"][None], obs["intrinsics"][None],
                               obs["extrinsics"][None])[0]
        assert np.abs(got - full).max() > 1e-6  # the subset really changes the estimate
