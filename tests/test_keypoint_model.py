"""S3K network, augmentation, checkpoints, predictor and a tiny end-to-end training run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from s3k_envs import geometry as geo
from s3k_envs.keypoints import model as mdl
from s3k_envs.keypoints.augment import AugmentConfig, augment_views, warp_views
from s3k_envs.keypoints.losses import label_points
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.keypoints.train import TrainConfig, labelled_frames, train

SIZE = 64
CONFIG = {
    "keypoint_names": ["a", "b", "c"],
    "num_cameras": 4,
    "image_size": [SIZE, SIZE],
    "sigma": 2.5,
    "stride": 2,
    "channels": [8, 16, 16],
    "res_blocks": 1,
    "res_channels": 16,
    "skip": "add",
    "window_px": 7.5,
    "env_id": "S3K-Box-v0",
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of 8 labelled Box samples at 64 px, generated once for this module."""
    from s3k_envs.keypoints.data import generate_dataset

    root = tmp_path_factory.mktemp("kp") / "box8"
    generate_dataset(root, "S3K-Box-v0", 8, 8, image_size=SIZE, seed=5, workers=1,
                     progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_data(tiny_dir: Path) -> dict[str, np.ndarray]:
    from s3k_envs.keypoints.dataset import load_arrays

    return load_arrays(tiny_dir)


def _model(**overrides) -> mdl.KeypointUNet:
    torch.manual_seed(0)
    return mdl.build_model({**CONFIG, **overrides})


# ------------------------------------------------------------------------------ network


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("skip", ["add", "concat"])
def test_output_shapes(stride: int, skip: str) -> None:
    model = _model(stride=stride, skip=skip).eval()
    images = torch.randint(0, 255, (2, 4, SIZE, 48, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = model.forward_views(images)
    assert out.shape == (2, 4, 3, SIZE // stride, 48 // stride)


def test_same_weights_for_every_camera() -> None:
    model = _model().eval()
    images = torch.randint(0, 255, (2, 4, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = model.forward_views(images)
        single = model(mdl.preprocess(images[1, 2][None]))[0]
        swapped = model.forward_views(images[:, [3, 2, 1, 0]])
    torch.testing.assert_close(out[1, 2], single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped, out[:, [3, 2, 1, 0]], atol=1e-5, rtol=1e-5)


def test_fused_batchnorm_matches_eval_mode() -> None:
    model = _model()
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            model.forward_views(torch.randint(0, 255, (2, 4, SIZE, SIZE, 3), dtype=torch.uint8))
    model.eval()
    images = torch.randint(0, 255, (1, 4, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref = model.forward_views(images)
        fused = mdl.fuse_batchnorm(model).forward_views(images)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-4)


def test_bad_image_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        _model().forward_views(torch.zeros(1, 4, 60, 64, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W, 3\)"):
        _model().forward_views(torch.zeros(4, 64, 64, 3, dtype=torch.uint8))


# ------------------------------------------------------------------------------ augmentation


def test_warp_keeps_labels_and_calibration_consistent(tiny_data: dict[str, np.ndarray]) -> None:
    frames = labelled_frames(tiny_data)
    n = 3
    imgs, intr, extr = frames.images[:n], frames.intrinsics[:n], frames.extrinsics[:n]
    kp, mask = frames.keypoints_2d[:n], frames.label_mask[:n]
    gen = torch.Generator().manual_seed(1)
    cfg = AugmentConfig(color=0.3, rotate_deg=30, scale=0.3, shift_px=10)
    a_imgs, a_intr, a_extr, a_kp = augment_views(imgs, intr, extr, cfg, kp, gen)
    assert a_imgs.shape == imgs.shape and not torch.equal(a_intr, intr)
    # Labels moved with the images triangulate to the same 3D point with the new calibration.
    before, valid = label_points(kp, mask, intr, extr)
    after, _ = label_points(a_kp, mask, a_intr, a_extr)
    torch.testing.assert_close(after[valid], before[valid], atol=1e-4, rtol=0)
    # ... and the ground-truth 3D keypoints project onto the moved labels.
    uv, _ = geo.project(torch.from_numpy(tiny_data["keypoints_3d"][:n]).double()[:, None],
                        a_intr.double(), a_extr.double())
    err = (uv - a_kp.double()).norm(dim=-1)[mask]
    assert err.max() < 1e-3


def test_warp_moves_image_content_like_the_points() -> None:
    img = torch.zeros(1, 32, 48, 3)
    img[0, 10, 20] = 255.0  # pixel centre (20.5, 10.5)
    intr = torch.tensor([[[40.0, 0, 24], [0, 40, 16], [0, 0, 1]]])
    out, _, _, pts = warp_views(img, intr, torch.eye(4)[None], torch.tensor([0.4]),
                                torch.tensor([1.2]), torch.tensor([[2.0, -1.0]]),
                                torch.tensor([[[20.5, 10.5]]]))
    m = out[0, ..., 0]
    rows, cols = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    centroid = torch.stack([(m * cols).sum(), (m * rows).sum()]) / m.sum()
    torch.testing.assert_close(centroid, pts[0, 0], atol=0.1, rtol=0)


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _model().eval()
    path = mdl.save_checkpoint(tmp_path / "m.pt", model, CONFIG)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "s3k-keypoint-model" and raw["format_version"] == 1
    assert raw["config"] == CONFIG
    loaded, config = mdl.load_checkpoint(path)
    assert config == CONFIG
    images = torch.randint(0, 255, (1, 4, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_views(images), model.forward_views(images))
    assert not list(tmp_path.glob(".*tmp")), "no temporary files left behind"


def test_bad_checkpoints_get_clear_errors(tmp_path: Path) -> None:
    model = _model()
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        mdl.load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(mdl.CheckpointError, match=r"junk\.pt.*not a readable"):
        mdl.load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else", "format_version": 1}, other)
    with pytest.raises(mdl.CheckpointError, match=r"other\.pt.*format is 'something-else'"):
        mdl.load_checkpoint(other)
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    with pytest.raises(mdl.CheckpointError, match=r"plain\.pt.*not an s3k keypoint checkpoint"):
        mdl.load_checkpoint(plain)
    future = tmp_path / "future.pt"
    payload = mdl.checkpoint_dict(model, CONFIG)
    torch.save({**payload, "format_version": 2}, future)
    with pytest.raises(mdl.CheckpointError, match=r"future\.pt.*format_version 2"):
        mdl.load_checkpoint(future)
    mismatch = tmp_path / "mismatch.pt"
    torch.save({**payload, "config": {**CONFIG, "channels": [8, 16, 32]}}, mismatch)
    with pytest.raises(mdl.CheckpointError, match=r"mismatch\.pt.*do not match"):
        mdl.load_checkpoint(mismatch)
    no_names = tmp_path / "no_names.pt"
    torch.save({**payload, "config": {k: v for k, v in CONFIG.items()
                                      if k != "keypoint_names"}}, no_names)
    with pytest.raises(mdl.CheckpointError, match=r"no_names\.pt.*keypoint_names"):
        mdl.load_checkpoint(no_names)


# ------------------------------------------------------------------------------ predictor


def test_predictor_shapes_and_input_checks(tmp_path: Path,
                                           tiny_data: dict[str, np.ndarray]) -> None:
    path = mdl.save_checkpoint(tmp_path / "m.pt", _model(), CONFIG)
    pred = KeypointPredictor.load(path)
    imgs, intr, extr = (tiny_data[k][:2] for k in ("images", "intrinsics", "extrinsics"))
    batched = pred.predict(imgs, intr, extr, return_heatmaps=True)
    assert batched.points_3d.shape == (2, 3, 3)
    assert batched.keypoints_2d.shape == (2, 4, 3, 2)
    assert batched.confidence.shape == (2, 4, 3)
    assert batched.heatmaps.shape == (2, 4, 3, SIZE // 2, SIZE // 2)
    assert np.isfinite(batched.points_3d).all()
    single = pred.predict(imgs[1], intr[1], extr[1])
    assert single.points_3d.shape == (3, 3) and single.heatmaps is None
    np.testing.assert_allclose(single.points_3d, batched.points_3d[1], atol=1e-5)
    with pytest.raises(ValueError, match="trained for 4 cameras, got 3"):
        pred.predict(imgs[:, :3], intr[:, :3], extr[:, :3])
    with pytest.raises(ValueError, match="trained on 64x64 images, got 32x32"):
        pred.predict(imgs[:, :, :32, :32], intr, extr)
    with pytest.raises(ValueError, match="uint8"):
        pred.predict(imgs.astype(np.float32), intr, extr)
    with pytest.raises(ValueError, match="extrinsics"):
        pred.predict(imgs, intr, extr[:1])


def test_fast_decode_matches_torch_decode(tiny_data: dict[str, np.ndarray]) -> None:
    from s3k_envs.keypoints.predictor import decode_for_inference, decode_heatmaps

    torch.manual_seed(0)
    logits = torch.randn(3, 4, 3, SIZE // 2, SIZE // 2) * 0.5
    logits[..., 10:13, 20:23] += 6.0  # a peak and a weaker second mode
    logits[..., 25, 5] += 5.0
    intr = torch.from_numpy(tiny_data["intrinsics"][:3]).double()
    extr = torch.from_numpy(tiny_data["extrinsics"][:3]).double()
    for window in (7.5, None):
        ref = decode_heatmaps(logits, intr, extr, 2.5, 2, window)
        points, uv, conf, probs = decode_for_inference(logits, intr.numpy(), extr.numpy(),
                                                       2.5, 2, window)
        probs = probs.numpy()
        np.testing.assert_allclose(uv, ref.keypoints_2d.numpy(), atol=1e-3)
        np.testing.assert_allclose(conf, ref.confidence.numpy(), atol=1e-5)
        np.testing.assert_allclose(points, ref.points_3d.numpy(), atol=1e-5)
        np.testing.assert_allclose(probs, ref.probs.numpy(), atol=1e-6)


# ------------------------------------------------------------------------------ training


def _tiny_cfg(**kw) -> TrainConfig:
    base = dict(steps=60, batch=4, lr=5e-3, channels=[8, 16, 16], res_blocks=1,
                res_channels=16, checkpoint_every=10, val_every=1000, log_every=5,
                aug_rotate_deg=0.0, aug_scale=0.0, aug_shift_px=0.0, aug_color=0.0,
                alpha=0.0, warmup=0.0)
    base.update(kw)
    return TrainConfig(**base)


def _train_error_px(path: Path, data: dict[str, np.ndarray]) -> float:
    pred = KeypointPredictor.load(path, fuse=False)
    out = pred.predict(data["images"], data["intrinsics"], data["extrinsics"])
    mask = data["label_mask"]
    return float(np.sqrt(((out.keypoints_2d - data["keypoints_2d"]) ** 2).sum(-1)[mask].mean()))


def test_tiny_training_run_learns(tmp_path: Path, tiny_data: dict[str, np.ndarray]) -> None:
    before_dir = tmp_path / "before"
    train(_tiny_cfg(steps=0), tiny_data, before_dir, progress_bar=False)
    run = tmp_path / "run"
    summary = train(_tiny_cfg(), tiny_data, run, val=tiny_data, progress_bar=False,
                    keypoint_names=["corner_0", "corner_1", "corner_2"], env_id="S3K-Box-v0")
    assert summary["steps"] == 60
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["sup"]) for r in rows if r["sup"]]
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
    err_before = _train_error_px(before_dir / "model.pt", tiny_data)
    err_after = _train_error_px(run / "model.pt", tiny_data)
    assert err_after < 0.7 * err_before, (err_before, err_after)
    assert math.isfinite(summary["final_val"]["val_median_mm"])
    config = torch.load(run / "model.pt", weights_only=True)["config"]
    assert config["keypoint_names"] == ["corner_0", "corner_1", "corner_2"]
    assert (run / "best.pt").exists() and (run / "summary.json").exists()


def test_resume_after_interruption_gives_the_same_weights(
        tmp_path: Path, tiny_data: dict[str, np.ndarray]) -> None:
    cfg = _tiny_cfg(steps=12, checkpoint_every=4, aug_color=0.2, aug_rotate_deg=10.0,
                    aug_shift_px=4.0, alpha=0.5, unsup_start=0.0, unsup_max_px=1e9,
                    unsup_min_confidence=0.0, unsup_min_peak_mass=0.0)
    straight = tmp_path / "straight"
    train(cfg, tiny_data, straight, unlabelled=tiny_data, progress_bar=False)
    broken = tmp_path / "broken"
    train(cfg, tiny_data, broken, unlabelled=tiny_data, progress_bar=False, stop_at_step=6)
    state = torch.load(broken / "train_state.pt", weights_only=True)
    assert state["step"] == 6
    # A kill -9 after step 6 (before the next checkpoint at 8) loses at most 4 steps: the
    # state on disk says 6 here because stop_at_step also checkpoints; resuming continues.
    summary = train(cfg, tiny_data, broken, unlabelled=tiny_data, progress_bar=False)
    assert summary["steps"] == 12
    a = torch.load(straight / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(broken / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)
    with open(broken / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)), "no duplicated log rows after resuming"
    assert json.loads((broken / "train_config.json").read_text())["steps"] == 12


def test_labels_in_fewer_than_two_cameras_are_rejected(tiny_data: dict[str, np.ndarray]
                                                       ) -> None:
    bad = dict(tiny_data)
    mask = tiny_data["label_mask"].copy()
    mask[:, 1:] = False  # only camera 0 labelled
    bad["label_mask"] = mask
    with pytest.raises(ValueError, match="labelled in >= 2 cameras"):
        labelled_frames(bad, "box8")


def test_cli_train_and_evaluate(tmp_path: Path, tiny_dir: Path) -> None:
    from s3k_envs.keypoints import evaluate as ev
    from s3k_envs.keypoints import train as tr

    run = tmp_path / "run"
    args = ["--labelled", str(tiny_dir), "--unlabelled", str(tiny_dir), "--val", str(tiny_dir),
            "--out", str(run), "--steps", "4", "--batch", "2", "--checkpoint-every", "2",
            "--channels", "8", "16", "16", "--res-blocks", "1", "--no-progress"]
    summary = tr.main(args)
    assert summary["steps"] == 4 and (run / "model.pt").exists()
    config = torch.load(run / "model.pt", weights_only=True)["config"]
    assert config["env_id"] == "S3K-Box-v0" and config["keypoint_names"][0] == "corner_0"
    summary = tr.main([*args[:-1], "--steps", "6", "--no-progress"])  # resumes
    assert summary["steps"] == 6
    metrics = ev.main([str(run / "model.pt"), str(tiny_dir), "--out", str(tmp_path / "ev")])
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["num_samples"] == 8 and saved["mm"]["median"] == metrics["mm"]["median"]
    assert set(saved["per_keypoint"]) == {"corner_0", "corner_1", "corner_2"}
    import imageio.v2 as imageio

    png = imageio.imread(tmp_path / "ev" / "overlays.png")
    assert png.ndim == 3 and png.shape[1] > 4 * SIZE
    with pytest.raises(SystemExit):
        tr.main(["--out", str(run)])  # --labelled is required
    with pytest.raises(FileNotFoundError):
        ev.main([str(run / "nope.pt"), str(tiny_dir)])
    other = mdl.save_checkpoint(tmp_path / "other.pt", _model(), {**CONFIG, "image_size": [64, 64]})
    with pytest.raises(ValueError, match=r"box8: has keypoints \['corner_0'.*trained for \['a'"):
        ev.main([str(other), str(tiny_dir)])


def test_training_progress_in_a_log_is_not_a_bar(tmp_path: Path, tiny_data: dict[str, np.ndarray],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # stderr is not a terminal here (as in `s3k train ... 2> log`): no tqdm redraws, and no
    # val_mm field without a validation set.
    train(_tiny_cfg(steps=8, log_every=1), tiny_data, tmp_path / "run", progress_bar=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "val_mm" not in err and len(err) < 300, err
