"""Dense descriptors (Keypoints into the Future): correspondences from depth, the loss on a
hand-made case, training that improves matching, resumable checkpoints, reference selection,
the predictor and the observation wrapper, and errors for bad input."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from s3k_envs.descriptors.correspondences import find_correspondences, lift_pixels
from s3k_envs.descriptors.keypoints import (
    DescriptorPredictor,
    References,
    attach_references,
    choose_references,
    keypoint_errors,
    localize,
    select_references,
)
from s3k_envs.descriptors.losses import LossWeights, correspondence_loss
from s3k_envs.descriptors.model import (
    DescriptorCheckpointError,
    DescriptorNet,
    load_checkpoint,
    sample_descriptors,
)
from s3k_envs.descriptors.scenes import SceneSet, check_depth_env, generate_scenes
from s3k_envs.descriptors.train import TrainConfig, matching_error, train
from s3k_envs.geometry import project

TINY = {"channels": [8, 16, 16], "descriptor_dim": 4}


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # two torch threads on this 2-core box are many times slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes64(one_thread) -> SceneSet:
    return generate_scenes("S3K-BoxPush-v0", num_scenes=12, seed=0, image_size=64)


@pytest.fixture(scope="module")
def trained(scenes64, tmp_path_factory):
    """A tiny network trained for a few CPU seconds (shared by several tests)."""
    path = tmp_path_factory.mktemp("desc") / "model.pt"
    config = TrainConfig(**TINY, budget_s=10.0, max_steps=150, checkpoint_every=1000)
    result = train(scenes64.subset(slice(0, 10)), config, path, resume=False, log=None)
    return path, result, config


# ------------------------------------------------------------------ correspondences


def test_correspondences_land_on_the_same_3d_point(scenes64):
    """A -> B by depth + calibration, then B's own depth back into A: < 1 px round trip, and
    the two lifted 3D points agree to within half a pixel's footprint."""
    s = scenes64
    checked = 0
    for i in range(4):
        for a, b in ((0, 1), (2, 3), (1, 3)):
            corr = find_correspondences(s.depth[i, a], s.masks[i, a], s.intrinsics[i, a],
                                        s.extrinsics[i, a], s.depth[i, b], s.intrinsics[i, b],
                                        s.extrinsics[i, b], mask_b=s.masks[i, b])
            if len(corr) < 10:
                continue
            back = lift_pixels(corr.uv_b, s.depth[i, b], s.intrinsics[i, b], s.extrinsics[i, b])
            uv_again, _ = project(back, s.intrinsics[i, a].astype(np.float64),
                                  s.extrinsics[i, a].astype(np.float64))
            err = np.linalg.norm(uv_again - corr.uv_a, axis=-1)
            assert np.percentile(err, 95) < 1.0, (i, a, b, np.percentile(err, 95))
            assert np.median(err) < 0.5
            # B's depth is read at the centre of the landing pixel: the lifted point is
            # within about half a pixel's footprint (z / f metres per pixel) of the true one
            footprint = corr.depth_b / s.intrinsics[i, b, 0, 0]
            dist = np.linalg.norm(back - corr.points, axis=-1)
            assert np.median(dist / footprint) < 0.5
            # the matched point is the lifted point, seen where it projects
            uv_b, z_b = project(corr.points.astype(np.float64),
                                s.intrinsics[i, b].astype(np.float64),
                                s.extrinsics[i, b].astype(np.float64))
            np.testing.assert_allclose(uv_b, corr.uv_b, atol=1e-3)
            np.testing.assert_allclose(z_b, corr.depth_b, atol=1e-5)
            checked += 1
    assert checked >= 6


def test_occluded_points_are_dropped(scenes64):
    s, i = scenes64, 0
    args = (s.depth[i, 0], s.masks[i, 0], s.intrinsics[i, 0], s.extrinsics[i, 0])
    full = find_correspondences(*args, s.depth[i, 1], s.intrinsics[i, 1], s.extrinsics[i, 1])
    assert len(full) > 10
    # something 5 cm in front of everything in the left half of view B
    occluded = s.depth[i, 1].copy()
    occluded[:, : occluded.shape[1] // 2] -= 0.05
    part = find_correspondences(*args, occluded, s.intrinsics[i, 1], s.extrinsics[i, 1])
    left = full.uv_b[:, 0] < occluded.shape[1] // 2
    assert left.any() and (~left).any()
    assert len(part) == int((~left).sum())
    assert np.all(part.uv_b[:, 0] >= occluded.shape[1] // 2)


def test_correspondences_bad_input():
    depth = np.ones((8, 8), np.float32)
    with pytest.raises(ValueError, match="mask_a"):
        find_correspondences(depth, np.ones((4, 4), bool), np.eye(3), np.eye(4), depth,
                             np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="depth"):
        find_correspondences(depth[0], np.ones(8, bool), np.eye(3), np.eye(4), depth,
                             np.eye(3), np.eye(4))


# ------------------------------------------------------------------ loss


def test_sample_descriptors_at_cell_centres():
    maps = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)  # D=2, h=3, w=4
    stride = 2
    cells = [(0, 0), (2, 1), (3, 2)]  # (col, row)
    uv = torch.tensor([[[(c + 0.5) * stride, (r + 0.5) * stride] for c, r in cells]])
    out = sample_descriptors(maps, uv, (3 * stride, 4 * stride))
    expected = torch.stack([maps[0, :, r, c] for c, r in cells])
    torch.testing.assert_close(out[0], expected)


def test_loss_on_a_hand_made_case():
    """One match into a 1 x 3 map (D = 1, stride 1): every term computed by hand."""
    maps_b = torch.tensor([[[[0.0, 1.0, 3.0]]]])  # (1, 1, 1, 3)
    maps_a = torch.full((1, 1, 1, 3), 1.0)  # query descriptor q = 1 everywhere in A
    uv_a = torch.tensor([[[1.5, 0.5]]])
    uv_b = torch.tensor([[[1.5, 0.5]]])  # true match: the middle cell
    z_b = torch.tensor([[0.40]])
    depth_b = torch.tensor([[[0.30, 0.40, 0.70]]])
    valid = torch.ones(1, 1, dtype=torch.bool)
    tau, sigma = 1.0, 1.0
    w = LossWeights(sigma=sigma, heatmap=1.0, spatial=0.5, depth=2.0)
    terms = correspondence_loss(maps_a, maps_b, uv_a, uv_b, z_b, depth_b, valid, (1, 3), 1,
                                tau, w)
    dist2 = np.array([1.0, 0.0, 4.0])  # |D_B - q|^2
    kernel = np.exp(-dist2 / tau**2)
    p = kernel / kernel.sum()
    centres = np.array([0.5, 1.5, 2.5])
    target = np.exp(-((centres - 1.5) ** 2) / (2 * sigma**2))
    heat = ((kernel - target) ** 2).sum() / target.sum()
    spatial = abs(p @ centres - 1.5) + abs(0.5 - 0.5)
    depth = abs(p @ np.array([0.30, 0.40, 0.70]) - 0.40)
    assert math.isclose(float(terms["heatmap"]), heat, rel_tol=1e-5)
    assert math.isclose(float(terms["spatial"]), spatial, rel_tol=1e-5)
    assert math.isclose(float(terms["depth"]), depth, rel_tol=1e-5)
    assert math.isclose(float(terms["total"]), heat + 0.5 * spatial + 2.0 * depth, rel_tol=1e-5)
    # the perfect descriptor map (a one-hot match far from every other cell) costs less
    sharp = torch.tensor([[[[-5.0, 1.0, 7.0]]]])
    better = correspondence_loss(maps_a, sharp, uv_a, uv_b, z_b, depth_b, valid, (1, 3), 1,
                                 tau, w)
    assert float(better["total"]) < float(terms["total"])
    assert float(better["spatial"]) < 1e-3 and float(better["depth"]) < 1e-3


def test_padded_matches_are_ignored():
    maps = torch.randn(1, 3, 4, 4)
    uv = torch.tensor([[[2.0, 2.0], [100.0, -50.0]]])
    valid = torch.tensor([[True, False]])
    z = torch.tensor([[0.5, 9.0]])
    depth = torch.full((1, 8, 8), 0.5)
    both = correspondence_loss(maps, maps, uv, uv, z, depth, valid, (8, 8), 2, 1.0)
    one = correspondence_loss(maps, maps, uv[:, :1], uv[:, :1], z[:, :1], depth,
                              valid[:, :1], (8, 8), 2, 1.0)
    torch.testing.assert_close(both["total"], one["total"])


# ------------------------------------------------------------------ training


def test_tiny_training_improves_matching(trained, scenes64):
    path, result, config = trained
    held_out = scenes64.subset(slice(10, 12))
    torch.manual_seed(config.seed)
    untrained = DescriptorNet(config.model_config(held_out.image_size)).eval()
    before = matching_error(untrained, held_out, num_pairs=8)
    after = matching_error(result["model"], held_out, num_pairs=8)
    assert result["steps"] > 20
    assert after["median_px"] < 0.6 * before["median_px"], (before, after)
    assert after["within_3px"] > before["within_3px"] + 0.2, (before, after)
    history = np.array(result["history"])
    assert history[-20:, 2].mean() < 0.5 * history[:5, 2].mean()
    assert path.is_file()


def test_training_resumes_from_its_checkpoint(scenes64, tmp_path):
    path = tmp_path / "m.pt"
    config = TrainConfig(**TINY, max_steps=3, checkpoint_every=2)
    first = train(scenes64, config, path, log=None)
    assert first["steps"] == 3
    state = load_checkpoint(path)["train_state"]
    assert state["step"] == 3 and state["cpu_s"] > 0 and "optimizer" in state
    config.max_steps = 5
    lines: list[str] = []
    second = train(scenes64, config, path, log=lines.append)
    assert second["steps"] == 5 and len(second["history"]) == 2
    assert any("resuming" in line for line in lines)
    # an uninterrupted run draws the same data: same final weights
    straight = train(scenes64, TrainConfig(**TINY, max_steps=5), tmp_path / "s.pt", log=None)
    for (k, v1), v2 in zip(second["model"].state_dict().items(),
                           straight["model"].state_dict().values(), strict=True):
        torch.testing.assert_close(v1, v2, msg=k, atol=1e-5, rtol=1e-4)
    other = TrainConfig(descriptor_dim=5, channels=[8, 16, 16], max_steps=6)
    with pytest.raises(ValueError, match="descriptor_dim"):
        train(scenes64, other, path, log=None)


def test_bad_checkpoints_are_named(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DescriptorCheckpointError, match=r"junk\.pt"):
        load_checkpoint(junk)
    s3k = "assets/checkpoints/S3K-Box-v0.pt"
    with pytest.raises(DescriptorCheckpointError, match="s3k-keypoint-model"):
        load_checkpoint(s3k)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


# ------------------------------------------------------------------ keypoints


def test_references_predictor_and_errors(trained, scenes64, tmp_path):
    path, _, _ = trained
    work = tmp_path / "refs.pt"
    work.write_bytes(path.read_bytes())
    with pytest.raises(DescriptorCheckpointError, match="select"):
        DescriptorPredictor.load(work)
    payload = load_checkpoint(work)
    refs = select_references(payload["model"], scenes64.subset(slice(10, 12)),
                             payload["config"], num_keypoints=3, num_candidates=20,
                             min_separation=0.03, scoring_scenes=2)
    assert refs.descriptors.shape == (3, 4) and len(refs.names) == 3
    assert np.all(np.diff(refs.scores) <= 1e-6)  # best first
    local = refs.object_points
    assert local is not None
    gaps = [np.linalg.norm(local[i] - local[j]) for i in range(3) for j in range(i)]
    assert min(gaps) >= 0.03 - 1e-6
    attach_references(work, refs)
    with pytest.raises(DescriptorCheckpointError, match="expected 5"):
        DescriptorPredictor.load(work, num_keypoints=5)
    predictor = DescriptorPredictor.load(work, num_keypoints=3)
    s = scenes64
    pred = predictor.predict(s.images[0], s.intrinsics[0], s.extrinsics[0])
    assert pred.points_3d.shape == (3, 3) and pred.keypoints_2d.shape == (4, 3, 2)
    assert pred.confidence.shape == (4, 3) and np.all(np.isfinite(pred.points_3d))
    batch = predictor.predict(s.images[:2], s.intrinsics[:2], s.extrinsics[:2])
    np.testing.assert_allclose(batch.points_3d[0], pred.points_3d, atol=1e-4)
    err = keypoint_errors(predictor, s.subset(slice(10, 12)))
    assert err.shape == (2, 3) and np.median(err) < 0.05  # a few seconds of training
    with pytest.raises(ValueError, match="64x64"):
        predictor.predict(s.images[0, :, :32, :32], s.intrinsics[0], s.extrinsics[0])
    with pytest.raises(ValueError, match="extrinsics"):
        predictor.predict(s.images[0], s.intrinsics[0], s.extrinsics[0, :2])


def _xy_spread(points: np.ndarray) -> float:
    xy = points[:, :2]
    return float(np.linalg.norm(xy - xy.mean(0), axis=1).mean())


def test_choose_references_farthest_covers_the_object():
    """A hand-made candidate set: the best scores cluster in the middle of a 0.2 x 0.1 m lid,
    good-enough ones sit at its corners, and one far point scores too low to be trusted."""
    cluster = [[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.0, 0.01, 0.0], [-0.01, 0.0, 0.0],
               [0.0, -0.01, 0.0], [0.01, 0.01, 0.0]]
    corners = [[0.1, 0.05, 0.0], [-0.1, 0.05, 0.0], [-0.1, -0.05, 0.0], [0.1, -0.05, 0.0]]
    points = np.array([*cluster, *corners, [0.5, 0.5, 0.0]])
    scores = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.9, 0.9, 0.9, 0.1])
    best = choose_references(points, scores, 5, min_separation=0.005)
    assert best == [0, 1, 2, 3, 4]  # the default is unchanged: best first
    spread = choose_references(points, scores, 5, min_separation=0.005, spread="farthest",
                               confident_fraction=0.8)
    assert spread[0] == 0 and sorted(spread[1:]) == [6, 7, 8, 9]  # the 4 corners, not point 10
    assert _xy_spread(points[spread]) > 5 * _xy_spread(points[best])
    from s3k_envs.descriptors.cli import xy_spread_mm

    corners_refs = References(np.zeros((4, 2), np.float32), list("abcd"), np.ones(4),
                              np.add(corners, [0.3, 0.2, 0.01]).astype(np.float32))
    assert xy_spread_mm(corners_refs) == pytest.approx(1000 * math.hypot(0.1, 0.05), rel=1e-5)
    gaps = [np.linalg.norm(points[i] - points[j]) for i in spread for j in spread if i < j]
    assert min(gaps) >= 0.005
    # a fraction above the corners' scores leaves only the cluster, still spread within it
    inner = choose_references(points, scores, 3, min_separation=0.005, spread="farthest",
                              confident_fraction=0.92)
    assert inner == [0, 5, 1]  # the farthest, then a tie (1-4: 0.01 m) to the better score
    # a low enough fraction lets the far, barely matching point in: it is the farthest
    assert choose_references(points, scores, 2, spread="farthest",
                             confident_fraction=0.05) == [0, 10]
    # the separation holds: no 5 confident candidates are 0.15 m apart
    with pytest.raises(ValueError, match="confident"):
        choose_references(points, scores, 5, min_separation=0.15, spread="farthest",
                          confident_fraction=0.8)
    with pytest.raises(ValueError, match="spread"):
        choose_references(points, scores, 3, spread="widest")
    with pytest.raises(ValueError, match="confident_fraction"):
        choose_references(points, scores, 3, spread="farthest", confident_fraction=0.0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        choose_references(points[:, :2], scores, 3)


def test_localize_triangulates_consistent_views():
    """Descriptor maps whose value at every cell is the reference exactly where a 3D point
    projects: localisation in 4 views triangulates back to that point."""
    env = gym.make("S3K-BoxPush-v0", image_size=64)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    intr, extr = obs["intrinsics"].astype(np.float64), obs["extrinsics"].astype(np.float64)
    point = np.array([[0.02, -0.03, 0.01]])
    uv, _ = project(point, intr, extr)  # (4, 1, 2)
    stride, h = 2, 32
    centres = (np.arange(h) + 0.5) * stride
    maps = np.zeros((1, 4, 2, h, h), np.float32)
    for c in range(4):  # descriptor = (u - u_c, v - v_c) / 4 px
        maps[0, c, 0] = (centres[None, :] - uv[c, 0, 0]) / 4.0
        maps[0, c, 1] = (centres[:, None] - uv[c, 0, 1]) / 4.0
    points, uv_est, conf = localize(torch.from_numpy(maps), np.zeros((1, 2), np.float32),
                                    intr[None], extr[None], kernel_width=1.0, sigma=2.0,
                                    stride=stride, window_px=6.0)
    np.testing.assert_allclose(uv_est[0, :, 0], uv[:, 0], atol=0.05)
    np.testing.assert_allclose(points[0, 0], point[0], atol=5e-4)
    assert np.all(conf > 0.9)


# ------------------------------------------------------------------ data and bad input


def test_scene_files_round_trip_and_reject_others(scenes64, tmp_path):
    path = scenes64.subset(slice(0, 2)).save(tmp_path / "s.npz")
    back = SceneSet.load(path)
    np.testing.assert_array_equal(back.images, scenes64.images[:2])
    np.testing.assert_array_equal(back.masks, scenes64.masks[:2])
    assert back.meta["env_id"] == "S3K-BoxPush-v0"
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz"):
        SceneSet.load(other)
    assert scenes64.masks.any(axis=(2, 3)).mean() > 0.9  # the box is in (almost) every view


def test_env_without_depth_is_refused():
    env = gym.make("S3K-Box-v0", image_size=16)
    try:
        with pytest.raises(ValueError, match="render_depth_and_segmentation"):
            check_depth_env(env)
    finally:
        env.close()


def test_too_few_cameras_is_refused(scenes64):
    from s3k_envs.descriptors.train import sample_pairs

    one = SceneSet(scenes64.images[:, :1], scenes64.depth[:, :1], scenes64.masks[:, :1],
                   scenes64.intrinsics[:, :1], scenes64.extrinsics[:, :1],
                   scenes64.object_pose)
    with pytest.raises(ValueError, match="2 cameras"):
        sample_pairs(one, 2, 8, np.random.default_rng(0))


# ------------------------------------------------------------------ wrapper


def test_descriptor_keypoint_observation(trained, scenes64, tmp_path):
    from s3k_envs.wrappers import DescriptorKeypointObservation

    path, _, _ = trained
    work = tmp_path / "refs.pt"
    work.write_bytes(path.read_bytes())
    payload = load_checkpoint(work)
    attach_references(work, select_references(
        payload["model"], scenes64.subset(slice(10, 12)), payload["config"], num_keypoints=3,
        num_candidates=20, scoring_scenes=2))
    env = DescriptorKeypointObservation(gym.make("S3K-BoxPush-v0", image_size=64), work)
    try:
        obs, info = env.reset(seed=0)
        assert obs["keypoints"].shape == (3, 3) and obs["keypoints"].dtype == np.float32
        assert obs["keypoint_confidence"].shape == (3,)
        assert "images" not in obs and "goal_keypoints" in obs and "gripper_pos" in obs
        assert env.observation_space.contains(obs)
        assert info["predicted_keypoints_2d"].shape == (4, 3, 2)
        assert info["keypoints"].shape == (3, 3)  # the env's ground truth stays in info
        # the predicted keypoints are on the box: within its half-diagonal of its centre
        centre = info["keypoints"][[0, 2]].mean(0)
        assert np.all(np.linalg.norm(obs["keypoints"] - centre, axis=1) < 0.2)
        obs, *_ = env.step(np.zeros(6, dtype=np.float32))
        assert env.observation_space.contains(obs)
        assert env.keypoint_names == ["descriptor_0", "descriptor_1", "descriptor_2"]
    finally:
        env.close()
    with pytest.raises(ValueError, match="64x64"):
        DescriptorKeypointObservation(gym.make("S3K-BoxPush-v0", image_size=32), work)
    with pytest.raises(DescriptorCheckpointError, match="expected 5"):
        DescriptorKeypointObservation(gym.make("S3K-BoxPush-v0", image_size=64), work,
                                      num_keypoints=5)


# ------------------------------------------------------------------ command line


def test_cli_generate_train_select_evaluate(tmp_path, capsys):
    """The whole `s3k descriptors` flow on a toy budget, with the S3K comparison."""
    import json

    from s3k_envs import cli

    scenes = tmp_path / "scenes.npz"
    cli.main(["descriptors", "generate", "--scenes", "3", "--image-size", "128",
              "--out", str(scenes)])
    loaded = SceneSet.load(scenes)
    assert loaded.keypoints.shape == (3, 3, 3) and loaded.object_bounds.shape == (3, 2, 3)
    np.testing.assert_array_equal(loaded.instance_ids, [-1, -1, -1])
    model = tmp_path / "model.pt"
    out = cli.main(["descriptors", "train", "--scenes", str(scenes), "--out", str(model),
                    "--steps", "3", "--pairs", "2", "--matches", "16"])
    assert out["steps"] == 3
    out = cli.main(["descriptors", "train", "--scenes", str(scenes), "--out", str(model),
                    "--steps", "4", "--pairs", "2", "--matches", "16"])
    assert out["steps"] == 4  # resumed
    before = model.read_bytes()
    spread = tmp_path / "spread.pt"
    out = cli.main(["descriptors", "select", str(model), "--scenes", str(scenes),
                    "--keypoints", "2", "--candidates", "10", "--scoring-scenes", "2",
                    "--min-separation", "0.01", "--spread", "farthest",
                    "--confident-fraction", "0.01", "--out", str(spread)])
    assert model.read_bytes() == before and out["checkpoint"] == str(spread)  # --out: a copy
    assert out["xy_spread_mm"] > 0
    cli.main(["descriptors", "select", str(model), "--scenes", str(scenes), "--keypoints", "2",
              "--candidates", "10", "--scoring-scenes", "2", "--min-separation", "0.01"])
    # the same 10 candidates: the farthest from the best is at least as far as the next best
    gap = {p: float(np.linalg.norm(np.subtract(*load_checkpoint(p)["references"][
        "object_points"].numpy()))) for p in (model, spread)}
    assert gap[spread] >= gap[model] - 1e-6
    report = tmp_path / "eval.json"
    result = cli.main(["descriptors", "evaluate", str(model), "--scenes", str(scenes),
                       "--pairs", "2", "--s3k", "assets/checkpoints/S3K-Box-v0.pt",
                       "--out", str(report), "--figure", str(tmp_path / "fig.png"),
                       "--figure-scenes", "1"])
    saved = json.loads(report.read_text())
    assert saved["descriptor_keypoints"]["median_mm"] == result["descriptor_keypoints"][
        "median_mm"]
    assert saved["s3k_keypoints"]["median_mm"] < 10.0  # the shipped model on the same box
    assert saved["train_steps"] == 4 and "command" in saved
    assert saved["references"]["xy_spread_mm"] > 0 and len(saved["references"]["scores"]) == 2
    assert "descriptor keypoints" in capsys.readouterr().out
    import imageio.v2 as imageio

    assert imageio.imread(tmp_path / "fig.png").shape[:2] == (128, 4 * 128 + 3 * 2)
