"""The beta-VAE baseline (agents/beta_vae/): model, loss, training, checkpoints, probe, wrapper.

Everything runs on tiny models (32 px, a few channels) and one tiny generated dataset (8
labelled S3K-Box-v0 samples at 32 px) with one torch thread.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from agents.beta_vae.cli import main
from agents.beta_vae.frames import evaluate_frames, load_frames
from agents.beta_vae.model import (
    BetaVAE,
    VAECheckpointError,
    VAEConfig,
    active_units,
    load_vae,
    resize_views,
    save_vae,
    vae_loss,
)
from agents.beta_vae.observation import VAEObservation
from agents.beta_vae.probe import fit_ridge, linear_probe
from agents.beta_vae.training import train_vae
from s3k_envs.keypoints.data import generate_dataset

SIZE = 32
TINY = {"channels": [8, 8, 16], "view_features": 16, "hidden": 32}
# The env's own velocity entries are unbounded; the wrapper's space differs by design.
_ALLOWED_CHECKER_WARNINGS = ("infinity", "different from the unwrapped")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """Tiny models on a shared 2-core machine: one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 labelled S3K-Box-v0 samples, 4 cameras at 32 px."""
    out = tmp_path_factory.mktemp("vae_data") / "box"
    return generate_dataset(out, "S3K-Box-v0", 8, 8, image_size=SIZE, seed=3, workers=1,
                            progress=False)


def tiny_vae(seed: int = 0, **overrides: Any) -> BetaVAE:
    torch.manual_seed(seed)
    options = {"num_cameras": 4, "source_size": [SIZE, SIZE], "image_size": SIZE, **TINY,
               **overrides}
    return BetaVAE(VAEConfig(**options))


def _check_env_quietly(env: gym.Env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught
                  if not any(s in str(w.message) for s in _ALLOWED_CHECKER_WARNINGS)]
    assert not unexpected, unexpected


# ------------------------------------------------------------------------------ model
def test_encode_decode_shapes() -> None:
    vae = tiny_vae(source_size=[64, 64])
    images = torch.randint(0, 256, (3, 4, SIZE, SIZE, 3), dtype=torch.uint8)
    mu, logvar = vae.encode(images)
    assert mu.shape == logvar.shape == (3, 10)
    assert vae.decode(mu).shape == (3, 4, SIZE, SIZE, 3)
    out = vae(images, sample=True, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (3, 4, SIZE, SIZE, 3) and out.z.shape == (3, 10)
    assert torch.equal(vae(images, sample=False).z, mu)
    # Source-size images (64 px) are resized to the network's 32 px first.
    big = images.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(vae.encode(big.numpy())[0], mu)
    assert vae.reconstruct(big).dtype == torch.uint8
    with pytest.raises(ValueError, match="4 views, got 3"):
        vae.encode(images[:, :3])
    with pytest.raises(ValueError, match=r"trained on 64x64 images .* got 48x48"):
        vae.encode(torch.zeros((1, 4, 48, 48, 3), dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        vae.encode(images.float())
    with pytest.raises(ValueError, match=r"z: expected \(B, 10\)"):
        vae.decode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="multiple of"):
        VAEConfig(image_size=60)


def test_resize_views_averages_blocks() -> None:
    img = np.zeros((1, 2, 4, 4, 3), np.uint8)
    img[0, 0, :2, :2] = 200  # top-left 2x2 block of view 0
    img[0, 1, 0, 0] = 101  # one pixel of view 1: mean 25.25 -> 25
    out = resize_views(img, 2)
    assert out.shape == (1, 2, 2, 2, 3) and out.dtype == torch.uint8
    assert out[0, 0, 0, 0].tolist() == [200] * 3 and out[0, 0, 1, 1].tolist() == [0] * 3
    assert out[0, 1, 0, 0].tolist() == [25] * 3
    assert resize_views(img, 3).shape == (1, 2, 3, 3, 3)  # non-integer factor: bilinear


def test_loss_by_hand() -> None:
    # Bernoulli: logits 0 -> every intensity costs ln 2 whatever the target.
    logits = torch.zeros(2, 4, 2, 2, 3)
    target = torch.randint(0, 256, (2, 4, 2, 2, 3), dtype=torch.uint8)
    mu = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, math.log(2.0)]])
    kl_dims = [0.5, 0.5 * (1.0 - math.log(2.0))]  # 0.5 (mu^2 + var - 1 - log var)
    terms = vae_loss(logits, target, mu, logvar, beta=2.0, likelihood="bernoulli")
    assert terms.recon.item() == pytest.approx(48 * math.log(2.0), rel=1e-6)  # per frame
    assert terms.kl_per_dim.tolist() == pytest.approx(kl_dims, rel=1e-6)
    assert terms.kl.item() == pytest.approx(sum(kl_dims), rel=1e-6)
    assert terms.total.item() == pytest.approx(48 * math.log(2.0) + 2.0 * sum(kl_dims), rel=1e-6)
    # Bernoulli with a known target and logit.
    t = torch.full((1, 1), 0.25)
    one = vae_loss(torch.full((1, 1), 2.0), t, torch.zeros(1, 1), torch.zeros(1, 1),
                   likelihood="bernoulli")
    p = 1.0 / (1.0 + math.exp(-2.0))
    assert one.recon.item() == pytest.approx(-(0.25 * math.log(p) + 0.75 * math.log(1 - p)))
    assert one.kl.item() == 0.0
    # Gaussian: sum of squared errors / (2 sigma^2) + n log(sigma sqrt(2 pi)).
    g = vae_loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.7]]), torch.zeros(1, 1),
                 torch.zeros(1, 1), likelihood="gaussian", gaussian_sigma=0.1)
    expected = (0.0 + 0.2 ** 2) / (2 * 0.01) + 2 * math.log(0.1 * math.sqrt(2 * math.pi))
    assert g.recon.item() == pytest.approx(expected, rel=1e-5)
    # Capacity annealing: recon + beta |KL - C|.
    c = vae_loss(logits, target, mu, logvar, beta=3.0, capacity=2.0, likelihood="bernoulli")
    assert c.total.item() == pytest.approx(48 * math.log(2.0) + 3.0 * abs(sum(kl_dims) - 2.0))
    assert active_units(torch.tensor([0.0, 0.01, 0.2, 3.0])) == 2
    with pytest.raises(ValueError, match="shape of the logits"):
        vae_loss(logits, target[:1], mu, logvar)


# ------------------------------------------------------------------------------ training
def test_training_reduces_loss(dataset: Path, tmp_path: Path) -> None:
    frames = load_frames(dataset, SIZE)
    assert frames.images.shape == (8, 4, SIZE, SIZE, 3) and frames.num_cameras == 4
    # The Gaussian reconstruction term is SSE / (2 sigma^2) + n log(sigma sqrt(2 pi)) (the
    # default likelihood, sigma = 0.1): compare the squared-error part plus the KL.
    const = frames.images[0].numel() * math.log(0.1 * math.sqrt(2 * math.pi))
    before = evaluate_frames(tiny_vae(seed=0), frames.images)["loss"] - const
    summary = train_vae(dataset, tmp_path / "run", steps=40, batch=8, lr=3e-3, seed=0,
                        val_fraction=0.0, checkpoint_every=20, log_every=10, val_every=40,
                        image_size=SIZE, progress_bar=False, **TINY)
    after = evaluate_frames(load_vae(tmp_path / "run" / "model.pt"), frames.images)
    assert after["loss"] - const < 0.8 * before, (before, after["loss"] - const)
    assert summary["steps"] == 40 and len(after["kl_per_dim"]) == 10
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,elapsed_s,lr,loss,recon,kl") and "kl_9" in rows[0]
    assert len(rows) == 1 + 4
    png = imageio.imread(tmp_path / "run" / "recon.png")
    assert png.ndim == 3 and png.shape[0] > 4 * 2 * SIZE  # 4 frames x (inputs + recons)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 40


def test_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    vae = tiny_vae(seed=1)
    path = save_vae(tmp_path / "vae.pt", vae)
    loaded = load_vae(path)
    assert loaded.config == vae.config and not loaded.training
    images = torch.randint(0, 256, (2, 4, SIZE, SIZE, 3), dtype=torch.uint8)
    for a, b in zip(vae.eval().encode(images), loaded.encode(images), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(FileNotFoundError, match="no such"):
        load_vae(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VAECheckpointError, match=r"junk\.pt: not a readable"):
        load_vae(tmp_path / "junk.pt")
    torch.save({"format": "s3k-keypoint-model", "format_version": 1}, tmp_path / "kp.pt")
    with pytest.raises(VAECheckpointError, match=r"kp\.pt: .*keypoint model"):
        load_vae(tmp_path / "kp.pt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(VAECheckpointError, match="format_version 99"):
        load_vae(tmp_path / "v99.pt")
    torch.save({**payload, "config": {**payload["config"], "latent_dim": 5}}, tmp_path / "b.pt")
    with pytest.raises(VAECheckpointError, match=r"b\.pt: config or weights"):
        load_vae(tmp_path / "b.pt")


def test_resume_matches_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    options = {"steps": 8, "batch": 4, "lr": 2e-3, "seed": 5, "checkpoint_every": 3,
               "val_fraction": 0.25, "val_every": 4, "log_every": 2, "image_size": SIZE,
               "progress_bar": False, "recon_samples": 0, **TINY}
    train_vae(dataset, tmp_path / "whole", **options)
    first = train_vae(dataset, tmp_path / "split", stop_at_step=5, **options)
    assert first["steps"] == 5 and (tmp_path / "split" / "best.pt").exists()
    second = train_vae(dataset, tmp_path / "split", **options)
    assert second["steps"] == 8
    a = load_vae(tmp_path / "whole" / "model.pt").state_dict()
    b = load_vae(tmp_path / "split" / "model.pt").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    steps = [int(r.split(",")[0]) for r in
             (tmp_path / "split" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 8  # no duplicated rows after resuming
    with pytest.raises(TypeError, match="unknown option"):
        train_vae(dataset, tmp_path / "bad", stepz=3)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(VAECheckpointError, match=r"train_state\.pt: not a readable"):
        train_vae(dataset, tmp_path / "broken", **options)


# ------------------------------------------------------------------------------ probe, CLI
def test_fit_ridge_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]) + np.array([0.1, -0.2])
    fit = fit_ridge(x, y, alphas=(1e-6, 1.0, 100.0))
    assert fit.alpha == 1e-6
    np.testing.assert_allclose(fit.predict(x), y, atol=1e-4)


def test_probe_and_cli(dataset: Path, tmp_path: Path) -> None:
    from s3k_envs.keypoints.model import build_model, save_checkpoint
    from s3k_envs.keypoints.train import TrainConfig, model_config

    vae = tiny_vae(seed=2)
    result = linear_probe(vae, dataset, test_fraction=0.4)
    assert result["num_train"] == 5 and result["num_test"] == 3
    for part in ("test", "train", "mean_baseline"):
        assert math.isfinite(result[part]["median"]) and result[part]["n"] == 3 * (
            5 if part == "train" else 3)
    assert set(result["test"]["per_keypoint"]) == {"corner_0", "corner_1", "corner_2"}
    # The CLI: a few training steps, the reconstruction PNG, the probe next to a keypoint
    # model (randomly initialised: only the plumbing is tested).
    run = tmp_path / "run"
    main(["train", "--data", str(dataset), "--out", str(run), "--steps", "3", "--batch", "4",
          "--image-size", str(SIZE), "--channels", "8", "8", "16", "--view-features", "16",
          "--hidden", "32", "--no-progress", "--val-fraction", "0"])
    main(["recon", str(run / "model.pt"), "--data", str(dataset), "--out",
          str(tmp_path / "r.png"), "--samples", "2"])
    assert imageio.imread(tmp_path / "r.png").shape[1] == 4 * 2 * SIZE + 3 * 2
    names = ["corner_0", "corner_1", "corner_2"]
    kp_cfg = model_config(TrainConfig(), names, 4, (SIZE, SIZE), "S3K-Box-v0")
    save_checkpoint(tmp_path / "kp.pt", build_model(kp_cfg), kp_cfg)
    out = main(["probe", str(run / "model.pt"), "--labelled", str(dataset), "--test-fraction",
                "0.4", "--keypoint-model", str(tmp_path / "kp.pt"), "--out",
                str(tmp_path / "probe.json")])
    assert math.isfinite(out["keypoint_model"]["median"]) and out["keypoint_model"]["n"] == 9
    assert json.loads((tmp_path / "probe.json").read_text())["num_test"] == 3


# ------------------------------------------------------------------------------ wrapper
def test_check_env_vae_observation_cable() -> None:
    env = VAEObservation(gym.make("S3K-CableInsert-v0", image_size=SIZE), tiny_vae())
    try:
        _check_env_quietly(env)
        obs, info = env.reset(seed=0)
        assert set(obs) == {"latent", "gripper_pos", "gripper_quat", "gripper_linvel",
                            "gripper_angvel"}
        assert obs["latent"].shape == (10,) and obs["latent"].dtype == np.float32
        assert env.observation_space.contains(obs)
        assert info["latent_logvar"].shape == (10,) and "keypoints" in info
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_vector_env_and_keep(tmp_path: Path) -> None:
    path = save_vae(tmp_path / "vae.pt", tiny_vae())

    def make() -> gym.Env:
        return VAEObservation(gym.make("S3K-Box-v0", image_size=SIZE, max_episode_steps=3),
                              path, keep=["gripper_pos"], keep_images=True)

    venv = gym.vector.SyncVectorEnv([make, make])
    try:
        obs, _ = venv.reset(seed=[0, 1])
        assert set(obs) == {"latent", "gripper_pos", "images"}
        assert obs["latent"].shape == (2, 10) and obs["images"].shape == (2, 4, SIZE, SIZE, 3)
        assert not np.allclose(obs["latent"][0], obs["latent"][1])  # different scenes
        for _ in range(4):  # through an episode end (3 steps) and the autoreset
            obs, *_ = venv.step(venv.action_space.sample())
            assert obs["latent"].shape == (2, 10) and np.all(np.isfinite(obs["latent"]))
    finally:
        venv.close()


def test_wrapper_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs a Dict observation with 'images'.*"
                       r"MultiViewCameras"):
        VAEObservation(gym.make("Pendulum-v1"), tiny_vae())
    env = gym.make("S3K-Box-v0", image_size=64)
    try:
        with pytest.raises(ValueError, match=r"trained on 32x32 images, but S3K-Box-v0 renders "
                           r"64x64; make the env with image_size=\(32, 32\)"):
            VAEObservation(env, tiny_vae())
    finally:
        env.close()
    env = gym.make("S3K-Box-v0", image_size=SIZE, num_cameras=2)
    try:
        with pytest.raises(ValueError, match="embeds 4 views, but S3K-Box-v0 has 2 cameras"):
            VAEObservation(env, tiny_vae())
        with pytest.raises(TypeError, match="expected a BetaVAE or a checkpoint path"):
            VAEObservation(env, object())  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError):
            VAEObservation(env, tmp_path / "none.pt")
    finally:
        env.close()
    env = gym.make("S3K-Box-v0", image_size=SIZE)
    try:
        with pytest.raises(ValueError, match="has no observation key"):
            VAEObservation(env, tiny_vae(), keep=["nope"])
    finally:
        env.close()


@pytest.mark.slow
def test_async_vector_env(tmp_path: Path) -> None:
    import multiprocessing

    path = save_vae(tmp_path / "vae.pt", tiny_vae())
    vae = load_vae(path)  # pickled into the worker with the closure

    def make_from_path() -> gym.Env:
        return VAEObservation(gym.make("S3K-Box-v0", image_size=SIZE), path, torch_threads=1)

    def make_from_object() -> gym.Env:
        return VAEObservation(gym.make("S3K-Box-v0", image_size=SIZE), vae, torch_threads=1)

    # Not "fork": llvmpipe's threads do not survive it (see KeypointObservation).
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["agents.beta_vae.observation", "s3k_envs.envs.box"])
    venv = gym.vector.AsyncVectorEnv([make_from_path, make_from_object], context="forkserver")
    try:
        obs, info = venv.reset(seed=[0, 0])
        assert obs["latent"].shape == (2, 10) and info["latent_logvar"].shape == (2, 10)
        np.testing.assert_allclose(obs["latent"][0], obs["latent"][1], atol=1e-5)
        for _ in range(3):
            obs, reward, *_ = venv.step(venv.action_space.sample())
            assert obs["latent"].shape == (2, 10) and reward.shape == (2,)
    finally:
        venv.close()
