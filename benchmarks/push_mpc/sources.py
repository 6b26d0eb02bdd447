"""State sources of the push MPC benchmark: what a method sees of the scene, as a dynamics
state, and how it reads the goal.

Every source turns env observations into one state per control step and the env's goal
into a goal for the planner's cost:

* ``true``: the 3 true box corners (``info["keypoints"]``) + the pusher position
  (``obs["gripper_pos"]``): ``(4, 3)`` m; goal = ``obs["goal_keypoints"]`` ``(3, 3)`` m
  (privileged, the reference arm). Images off.
* ``s3k``: the 3 corners predicted by the shipped S3K Box model from the 4 calibrated views +
  the pusher position: ``(4, 3)`` m; goal = the same model's prediction on the env's goal
  images (``goal_images=True``), ``(3, 3)`` m.
* ``descriptor``: the K = 5 label-free descriptor keypoints (triangulated from the 4 views) +
  the pusher position: ``(6, 3)`` m; goal = the same references localised in the goal images.
* ``vae``: the beta-VAE's latent mean of the 4 views (``D = 10``) + the pusher position:
  ``(D + 3,)`` flat; goal = the latent mean of the goal images, ``(D,)``.

Image sources call the predictors that the observation wrappers use
(:class:`~s3k_envs.keypoints.predictor.KeypointPredictor` inside ``KeypointObservation``,
:class:`~s3k_envs.descriptors.keypoints.DescriptorPredictor` inside
``DescriptorKeypointObservation``, :meth:`~agents.beta_vae.model.BetaVAE.encode` inside
``VAEObservation``) directly on the raw observation, with the wrappers' NaN handling and
clipping, so that the goal images go through exactly the same model as the current views.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import s3k_envs  # noqa: F401  (registers S3K-BoxPush-v0)
from agents.beta_vae.model import BetaVAE, active_units, load_vae, resize_views, save_vae
from agents.beta_vae.training import VAETrainConfig
from s3k_envs import checkpoints
from s3k_envs.descriptors.keypoints import DescriptorPredictor
from s3k_envs.experts import BoxPushExpert
from s3k_envs.geometry import pixel_rays, triangulate
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.wrappers.keypoints import keypoint_bounds_for

ENV_ID = "S3K-BoxPush-v0"
METHODS = ("true", "s3k", "descriptor", "vae")
IMAGE_METHODS = ("s3k", "descriptor", "vae")
#: File name of the shipped BoxPush descriptor checkpoint (in ``assets/checkpoints/``).
DESCRIPTOR_CHECKPOINT = "S3K-BoxPush-descriptors-v0.pt"


def env_action(a2: np.ndarray) -> np.ndarray:
    """Planar ``(2,)`` in [-1, 1] -> the env's ``(6,)`` action (x, y pusher velocity)."""
    out = np.zeros(6, np.float32)
    out[:2] = a2
    return out


def file_digest(path: str | os.PathLike[str]) -> str:
    """First 10 hex digits of the SHA-256 of a file (cache keys of checkpoints)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def shipped_descriptor_checkpoint(env_id: str = ENV_ID) -> Path | None:
    """The shipped BoxPush descriptor checkpoint (K = 5), or None when it is not installed
    or ``env_id`` is another env (no other descriptor checkpoint is shipped)."""
    if env_id != ENV_ID:
        return None
    for directory in checkpoints.CHECKPOINT_DIRS:
        if (directory / DESCRIPTOR_CHECKPOINT).is_file():
            return directory / DESCRIPTOR_CHECKPOINT
    return None


#: The shoe env of the ``--env`` variant (docs/keypoints-into-the-future.md's shoe recipe).
SHOE_ENV_ID = "S3K-ShoePush-v0"


def descriptor_commands(cache: Path, keypoints: int, env_id: str = ENV_ID) -> list[list[str]]:
    """The ``s3k descriptors`` argument lists of :func:`train_descriptor_checkpoint`: the
    documented commands, with their files in ``cache``. BoxPush: 300 training scenes, 8
    selection scenes, 300 CPU-s on 1 thread, K references. ShoePush: the same scenes of the
    training shoes (``instances=train``) and 900 CPU-s (the shoe recipe)."""
    env = [] if env_id == ENV_ID else ["--env", env_id, "--env-option", "instances=train"]
    cpu = "300" if env_id == ENV_ID else "900"
    return [
        ["generate", *env, "--scenes", "300", "--seed", "0", "--out", str(cache / "train.npz")],
        ["generate", *env, "--scenes", "8", "--seed", "200000", "--out",
         str(cache / "select.npz")],
        ["train", "--scenes", str(cache / "train.npz"), "--out", str(cache / "model.pt"),
         "--cpu-seconds", cpu, "--threads", "1"],
        ["select", str(cache / "model.pt"), "--scenes", str(cache / "select.npz"),
         "--keypoints", str(keypoints), "--threads", "1"],
    ]


def train_descriptor_checkpoint(cache: Path, keypoints: int, log: Callable[[str], None] = print,
                                env_id: str = ENV_ID) -> Path:
    """Train a descriptor checkpoint for ``env_id`` with :func:`descriptor_commands`, cached and
    resumable under ``cache`` (scenes already generated are kept, training resumes from its
    checkpoint); used when no checkpoint is shipped or given.

    Returns:
        Path of ``cache/model.pt`` with K reference descriptors.
    """
    from s3k_envs.descriptors.cli import main as descriptors

    cache.mkdir(parents=True, exist_ok=True)
    model = cache / "model.pt"
    done = cache / f"selected_k{keypoints}"
    if model.is_file() and done.is_file():
        return model
    for argv in descriptor_commands(cache, keypoints, env_id):
        if argv[0] == "generate" and Path(argv[-1]).is_file():
            continue
        log(f"s3k descriptors {' '.join(argv)}")
        descriptors(argv)
    done.write_text("ok\n", encoding="utf-8")
    return model


# ---------------------------------------------------------------------------- encoders
class PointEncoder:
    """Images -> ``(K, 3)`` m keypoints with a keypoint or descriptor predictor, as the
    observation wrappers compute them (NaN -> 0, clipped into the env's keypoint bounds).

    Args:
        predictor: a :class:`KeypointPredictor` or :class:`DescriptorPredictor`.
        bounds: ``(low, high)`` each ``(3,)`` m (:func:`keypoint_bounds_for` of the env).
    """

    def __init__(self, predictor: KeypointPredictor | DescriptorPredictor,
                 bounds: tuple[np.ndarray, np.ndarray]) -> None:
        self.predictor = predictor
        self.num_keypoints = len(predictor.keypoint_names)
        self.low, self.high = (np.asarray(b, np.float32) for b in bounds)

    def __call__(self, images: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray,
                 views: np.ndarray | None = None) -> np.ndarray:
        """``images (B, C, H, W, 3)`` uint8, ``intrinsics (B, C, 3, 3)``, ``extrinsics
        (B, C, 4, 4)`` -> ``(B, K, 3)`` float32 m.

        ``views``: triangulate from these views only (indices into C). Both predictors
        localise every keypoint in each view on its own (one network, shared by the views,
        then a per-view heatmap and its Appendix-B confidence), so the subset's 2D estimates
        and confidences are those the predictor returns for all views; the 3D point is their
        confidence-weighted triangulation, as inside the predictor. (The S3K predictor
        refuses another number of views than it was trained with, hence this route.)"""
        pred = self.predictor.predict(images, intrinsics, extrinsics)
        if views is None:
            points = np.asarray(pred.points_3d)
        else:
            idx = np.asarray(views)
            uv = np.asarray(pred.keypoints_2d, np.float64)[:, idx]  # (B, C', K, 2)
            conf = np.asarray(pred.confidence, np.float64)[:, idx]  # (B, C', K)
            origins, dirs = pixel_rays(uv, np.asarray(intrinsics, np.float64)[:, idx],
                                       np.asarray(extrinsics, np.float64)[:, idx])
            points = triangulate(np.swapaxes(origins, -3, -2), np.swapaxes(dirs, -3, -2),
                                 np.swapaxes(conf, -2, -1))
        return np.clip(np.nan_to_num(points, nan=0.0), self.low, self.high).astype(np.float32)


class Source:
    """One method's state and goal (see the module docstring).

    Attributes:
        name: the method. images: whether the env must render images.
        state_shape: shape of one state. points: point state ``(K + 1, 3)`` (else flat).
        num_object: K, object keypoints (point states) or D, latent dims (flat states).
        views: which calibrated views :meth:`state` and :meth:`goal` read (``"all"``,
            ``"top"``, ``"low"``: :func:`~benchmarks.push_mpc.variants.choose_views`).
    """

    def __init__(self, name: str, state_shape: tuple[int, ...], num_object: int,
                 encoder: PointEncoder | None = None, vae: BetaVAE | None = None) -> None:
        self.name = name
        self.state_shape = state_shape
        self.num_object = num_object
        self.points = len(state_shape) == 2
        self.images = name in IMAGE_METHODS
        self.encoder = encoder
        self.vae = vae
        self.views = "all"

    def _views(self, extrinsics: np.ndarray) -> np.ndarray | None:
        """``(C, 4, 4)`` extrinsics of one observation -> the indices of :attr:`views`
        (None: all)."""
        from benchmarks.push_mpc.variants import choose_views

        return None if self.views == "all" else choose_views(extrinsics, self.views)

    @torch.no_grad()
    def object_part(self, images: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray,
                    views: np.ndarray | None = None) -> np.ndarray:
        """Batched images ``(B, C, H, W, 3)`` -> ``(B, K, 3)`` keypoints (triangulated from
        ``views``, default all) or ``(B, D)`` latent means (all views)."""
        if self.encoder is not None:
            return self.encoder(images, intrinsics, extrinsics, views)
        if views is not None:
            raise ValueError(f"source {self.name!r} reads all views, got a subset {views}")
        if self.vae is not None:
            mu, _ = self.vae.encode(np.asarray(images))
            return mu.numpy().astype(np.float32)
        raise ValueError(f"source {self.name!r} does not read images")

    def state(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        """One state of shape :attr:`state_shape` from an env observation."""
        pusher = np.asarray(obs["gripper_pos"], np.float32)
        if self.name == "true":
            obj = np.asarray(info["keypoints"], np.float32)
        else:
            obj = self.object_part(obs["images"][None], obs["intrinsics"][None],
                                   obs["extrinsics"][None], self._views(obs["extrinsics"]))[0]
        return join_state(obj, pusher, self.points)

    def goal(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The planner's goal: ``(K, 3)`` m keypoints or ``(D,)`` latent (see module doc)."""
        if self.name == "true":
            goal = np.asarray(obs["goal_keypoints"], np.float32)
        else:
            goal = self.object_part(obs["goal_images"][None], obs["intrinsics"][None],
                                    obs["extrinsics"][None], self._views(obs["extrinsics"]))[0]
        expected = (self.num_object, 3) if self.points else (self.num_object,)
        if goal.shape != expected:
            raise ValueError(f"{self.name}: goal of shape {goal.shape}, expected {expected}")
        return goal


def join_state(obj: np.ndarray, pusher: np.ndarray, points: bool) -> np.ndarray:
    """Object part ``(K, 3)`` or ``(D,)`` + pusher ``(3,)`` -> ``(K + 1, 3)`` or ``(D + 3,)``."""
    if points:
        return np.concatenate([obj, pusher[None]]).astype(np.float32)
    return np.concatenate([obj, pusher]).astype(np.float32)


def point_source(name: str, predictor: KeypointPredictor | DescriptorPredictor,
                 env_id: str = ENV_ID) -> Source:
    """An S3K or descriptor :class:`Source` with the env's keypoint bounds."""
    env = gym.make(env_id, images=False)
    try:
        bounds = keypoint_bounds_for(env)
    finally:
        env.close()
    enc = PointEncoder(predictor, bounds)
    return Source(name, (enc.num_keypoints + 1, 3), enc.num_keypoints, encoder=enc)


def true_source() -> Source:
    """The privileged reference: true box corners + pusher."""
    return Source("true", (4, 3), 3)


def vae_source(vae: BetaVAE) -> Source:
    """A beta-VAE latent :class:`Source` (latent mean + pusher, flat)."""
    d = int(vae.config.latent_dim)
    return Source("vae", (d + 3,), d, vae=vae.eval())


# ---------------------------------------------------------------------------- data
def collect(n_episodes: int, steps: int, seed: int, noise: float, random_prob: float,
            sources: Mapping[str, Source], vae_frames: int | None = None,
            log: Callable[[str], None] = print, env_id: str = ENV_ID,
            env_kwargs: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Record episodes of the data-collection policy and every requested method's states.

    The policy, per step: with probability ``random_prob`` a uniform random planar action held
    for 2-4 steps, otherwise :class:`BoxPushExpert`'s action + Gaussian noise (std
    ``noise``), clipped to [-1, 1]; episode i starts from ``reset(seed=seed + i)``. Rendering
    does not change the physics, so every method sees the same transitions whatever is
    rendered; images are rendered only when a point source or ``vae_frames`` needs them.

    Args:
        sources: image point sources (``s3k``, ``descriptor``) whose states to compute.
        vae_frames: if given, also keep the views resized to this many pixels for the VAE.
        env_id, env_kwargs: the env (default BoxPush) and its options (e.g. ``instances``).

    Returns:
        ``{"actions": (E, T, 2), "true": (E, T + 1, 4, 3) m, <source>: (E, T + 1, K + 1,
        3) m, ["frames": (E, T + 1, C, S, S, 3) uint8]}``.
    """
    render = bool(sources) or vae_frames is not None
    env = gym.make(env_id, images=render, max_episode_steps=steps, terminate_on_success=False,
                   **dict(env_kwargs or {}))
    expert = BoxPushExpert(env)
    rng = np.random.default_rng(seed)
    true_src = true_source()
    out: dict[str, list[np.ndarray]] = {"actions": [], "true": [],
                                        **{name: [] for name in sources}}
    if vae_frames is not None:
        out["frames"] = []
    t0 = time.perf_counter()
    for i in range(n_episodes):
        obs, info = env.reset(seed=seed + i)
        trues, actions, views = [true_src.state(obs, info)], [], [obs] if render else []
        hold, rand_a = 0, np.zeros(2)
        for _ in range(steps):
            if hold == 0 and rng.random() < random_prob:
                hold, rand_a = int(rng.integers(2, 5)), rng.uniform(-1, 1, 2)
            if hold > 0:
                a = rand_a
                hold -= 1
            else:
                a = np.asarray(expert(obs, info))[:2] + rng.normal(0, noise, 2)
            a = np.clip(a, -1, 1).astype(np.float32)
            obs, _, term, trunc, info = env.step(env_action(a))
            actions.append(a)
            trues.append(true_src.state(obs, info))
            if render:
                views.append(obs)
            if term or trunc:
                break
        if len(actions) != steps:
            raise RuntimeError(f"episode {i} ended after {len(actions)} of {steps} steps")
        out["actions"].append(np.array(actions))
        out["true"].append(np.array(trues))
        if render:
            images = np.stack([o["images"] for o in views])
            intr = np.stack([o["intrinsics"] for o in views])
            extr = np.stack([o["extrinsics"] for o in views])
            pusher = np.stack([o["gripper_pos"] for o in views]).astype(np.float32)
            for name, src in sources.items():
                obj = src.object_part(images, intr, extr)
                out[name].append(np.concatenate([obj, pusher[:, None]], axis=1))
            if vae_frames is not None:
                out["frames"].append(resize_views(images, vae_frames).numpy())
        if (i + 1) % 50 == 0 or i + 1 == n_episodes:
            log(f"collected {i + 1}/{n_episodes} episodes ({time.perf_counter() - t0:.0f} s)")
    env.close()
    return {k: np.stack(v) for k, v in out.items()}


# ---------------------------------------------------------------------------- beta-VAE
def env_image_size(env_id: str = ENV_ID) -> tuple[int, int]:
    """``(H, W)`` of the env's rendered views, px."""
    env = gym.make(env_id, images=False)
    try:
        return int(env.unwrapped.height), int(env.unwrapped.width)
    finally:
        env.close()


def train_push_vae(frames: np.ndarray, steps: int, seed: int, latent_dim: int = 10,
                   batch: int = 32, log: Callable[[str], None] = print, env_id: str = ENV_ID
                   ) -> tuple[BetaVAE, dict[str, Any]]:
    """Train the suite's beta-VAE (:class:`~agents.beta_vae.model.BetaVAE`, the cable
    benchmark's baseline) on BoxPush frames, with the schedule of ``python -m agents.beta_vae
    train`` (:class:`~agents.beta_vae.training.VAETrainConfig` defaults: Gaussian likelihood
    sigma 0.1, beta 1 reached after 10 % of the run, Adam 1e-3 with warm-up and cosine decay,
    batch 32).

    Args:
        frames: ``(N, C, S, S, 3)`` uint8 views at the VAE's input size S, resized from the
            env's images with :func:`~agents.beta_vae.model.resize_views` (the model resizes
            the env's full-size views the same way when it encodes them).
        steps: optimizer steps.

    Returns:
        ``(vae, stats)``: the model (eval mode) and the last 100 steps' mean loss terms
        (nats per frame), seconds and active latent units.
    """
    n, c, s = frames.shape[0], frames.shape[1], frames.shape[2]
    cfg = VAETrainConfig(steps=steps, batch=batch, seed=seed, image_size=s,
                         latent_dim=latent_dim)
    torch.manual_seed(seed)
    vae = BetaVAE(cfg.model_config(c, list(env_image_size(env_id)), env_id))
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(frames)
    t0 = time.perf_counter()
    recent: list[tuple[float, float, float]] = []
    kl_dims = torch.zeros(latent_dim)
    vae.train()
    for step in range(steps):
        prog = step / max(1, steps)
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate(prog)
        idx = torch.randint(0, n, (min(batch, n),), generator=gen)
        x = data[idx]
        outp = vae(x, generator=gen)
        loss = vae.loss(x, outp, beta=cfg.beta_at(prog))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        recent = [*recent[-99:], (loss.total.item(), loss.recon.item(), loss.kl.item())]
        kl_dims = 0.99 * kl_dims + 0.01 * loss.kl_per_dim.detach() if step else \
            loss.kl_per_dim.detach()
        if not math.isfinite(recent[-1][0]):
            raise FloatingPointError(f"beta-VAE loss became {recent[-1][0]} at step {step}")
        if (step + 1) % 200 == 0 or step + 1 == steps:
            log(f"beta-VAE step {step + 1}/{steps}: loss {np.mean([r[0] for r in recent]):.0f},"
                f" KL {np.mean([r[2] for r in recent]):.1f} nats")
    vae.eval()
    arr = np.array(recent)
    return vae, {"steps": steps, "seconds": time.perf_counter() - t0, "frames": int(n),
                 "loss": float(arr[:, 0].mean()), "recon": float(arr[:, 1].mean()),
                 "kl": float(arr[:, 2].mean()),
                 "active_units": int(active_units(kl_dims))}


def cached_vae(path: Path, frames: Callable[[], np.ndarray], steps: int, seed: int,
               latent_dim: int, log: Callable[[str], None] = print, env_id: str = ENV_ID
               ) -> tuple[BetaVAE, dict[str, Any]]:
    """The beta-VAE at ``path``, trained (:func:`train_push_vae`) and saved there first when
    it does not exist yet; ``frames`` is called only then."""
    import json

    stats_path = path.with_suffix(".json")
    if path.is_file() and stats_path.is_file():
        return load_vae(path), json.loads(stats_path.read_text(encoding="utf-8"))
    vae, stats = train_push_vae(frames(), steps, seed, latent_dim, log=log, env_id=env_id)
    save_vae(path, vae)
    from s3k_envs.atomic import atomic_write_text
    atomic_write_text(stats_path, json.dumps(stats, indent=1) + "\n")
    return vae, stats
