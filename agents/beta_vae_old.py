"""The beta-VAE baseline of the S3K paper (§6): all C camera views of a frame in one latent.

The paper compares its keypoint agent with "an equivalent agent with a beta-VAE as the vision
model. It embedded all 4 camera views into a single 10 dimensional latent embedding. Both
models were trained on the same unlabelled data". This module is that baseline:

* :class:`BetaVAE`: every view (resized to ``S x S``, default 64 px) goes through the same
  strided-conv encoder; the C per-view feature vectors are concatenated and an MLP gives the
  mean and log-variance of one ``D``-dimensional Gaussian posterior (default ``D = 10``).
  The decoder maps ``z`` through an MLP and one linear head per camera to a small feature map
  per view, then through a shared transposed-conv stack to the C images. The likelihood is
  Gaussian with a fixed standard deviation (default 0.1 of the intensity range) or
  Bernoulli, summed over every pixel, colour channel and view; the loss is
  ``recon + beta KL`` or, with capacity annealing (Burgess et al. 2018),
  ``recon + beta |KL - C(t)|`` with ``C`` ramped from 0 to ``capacity`` nats.
* :func:`train_vae`: trains on the images of one or more ``s3k generate`` dataset
  directories (labels unused), with atomic checkpoints every ``checkpoint_every`` steps, resume
  after interruption, a CSV log (+ TensorBoard), a time budget in wall or CPU seconds, and a
  PNG of input views vs reconstructions at the end.
* :func:`linear_probe`: how much of the true 3D keypoint positions is *linearly* readable from
  the latent mean: ridge regression (penalty chosen by leave-one-out) on a train split of
  labelled samples, 3D error in mm on a test split, next to the error of an S3K keypoint model
  on the same test samples when one is given.
* :class:`VAEObservation`: a wrapper that replaces the images (and calibration) of a
  multi-view env by the latent mean of a frozen encoder, like
  :class:`s3k_envs.wrappers.KeypointObservation`.

Usage::

    python -m agents.beta_vae train --data DIR [DIR ...] --out RUN [--minutes M --clock cpu]
        [--beta 1] [--capacity NATS] [--image-size 64] [--batch 32] [--lr 1e-3] [--seed 0]
    python -m agents.beta_vae probe RUN/model.pt --labelled DIR [DIR ...] [--test DIR]
        [--keypoint-model CKPT] [--out RUN/probe.json]
    python -m agents.beta_vae recon RUN/model.pt --data DIR --out RUN/recon.png [--samples 4]

Outputs of ``train`` in ``RUN/``: ``model.pt`` (latest weights), ``best.pt`` (lowest
validation loss, when a validation split exists), ``train_state.pt`` (weights + optimizer +
step + RNG states; rerunning the same command resumes from it), ``log.csv``,
``train_config.json``, ``summary.json``, ``recon.png`` and ``tb/`` (TensorBoard events, when
``tensorboard`` is installed).

Why these defaults give the baseline a fair chance (measured on the 600 cable frames of
``runs/ckpt/cable/train``, 4 views resized to 64 px): the frames differ little pixel by pixel
(intensity std over frames 0.053), so under a **Bernoulli** likelihood everything beyond the
mean image is worth only ~390 nats per frame (binary-entropy floor 32,526 nats, mean image
32,919) and ``beta = 1`` runs collapsed within 30 steps (all latents at the prior, KL 0.007
nats after 200 steps, with or without a KL warm-up). Under a **Gaussian** likelihood with
``sigma = 0.1`` the same variation is worth ~6,900 nats per frame, and with ``beta = 1``
(reached after a 10 % warm-up) the latents became informative after ~250 steps of 16 frames
(KL 9 nats and rising). Both terms are sums over the ``4 x 64 x 64 x 3 = 49152`` intensities
of a frame. The per-dimension KL is logged (``kl_0 ..``), with the number of dimensions above
:data:`ACTIVE_KL_NATS` (``active_units``); validation also counts the dimensions whose mean
varies over frames (``val_active_units``, Burda et al.'s test, which a narrow but
uninformative posterior cannot pass). ``--capacity`` switches to capacity annealing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from s3k_envs.atomic import atomic_write_text
from s3k_envs.keypoints.model import atomic_torch_save
from s3k_envs.training import RunLog, TrainingLoop, resume_config
from s3k_envs.wrappers.features import FeatureObservation, set_torch_threads

PathLike = str | os.PathLike[str]

CHECKPOINT_FORMAT = "s3k-beta-vae"
CHECKPOINT_VERSION = 1
STATE_FORMAT = "s3k-beta-vae-train-state"
STATE_VERSION = 1
#: A latent dimension whose KL to the prior (nats, mean over frames) exceeds this is active.
ACTIVE_KL_NATS = 0.05
#: Burda et al.'s activity test: the variance over frames of a latent mean exceeds this.
ACTIVE_VARIANCE = 0.01
#: Bounds of ``obs["latent"]`` in :class:`VAEObservation` (the prior is N(0, 1)).
LATENT_BOUND = 10.0
#: Ridge penalties tried by :func:`linear_probe` (on standardised latents).
DEFAULT_ALPHAS = tuple(float(a) for a in 10.0 ** np.arange(-4, 4))
#: Settings that may differ when a run resumes (budget and bookkeeping, not the method).
_RESUME_MAY_CHANGE = ("steps", "minutes", "clock", "checkpoint_every", "log_every",
                      "val_every", "threads", "recon_samples")
_LOG_BASE = ("step", "elapsed_s", "lr", "loss", "recon", "kl", "beta", "capacity",
             "active_units",
             "val_loss", "val_recon", "val_kl", "val_active_units")


class VAECheckpointError(ValueError):
    """A file is not a usable beta-VAE checkpoint or training state (the message names it)."""


# ------------------------------------------------------------------------------ config
@dataclass
class VAEConfig:
    """Architecture of a :class:`BetaVAE` (plain values: stored in checkpoints as a dict).

    Attributes:
        num_cameras: C, the views embedded together.
        source_size: ``[H, W]`` pixels of the env's / dataset's images; they are resized to
            ``image_size`` (area averaging for integer factors, antialiased bilinear
            otherwise) before encoding.
        image_size: S, the square side in pixels the network sees and reconstructs; a
            multiple of ``2 ** len(channels)``.
        latent_dim: D, the size of the latent (10 in the paper).
        channels: output channels of the strided 4x4 convs of the per-view encoder (each
            halves the resolution); the decoder mirrors them.
        view_features: size of the feature vector of one view.
        hidden: width of the encoder and decoder MLPs.
        likelihood: ``"gaussian"`` (fixed standard deviation ``gaussian_sigma``, intensities
            in [0, 1]) or ``"bernoulli"`` (binary cross-entropy on the intensities; much
            weaker on low-contrast scenes, see the module docstring).
        gaussian_sigma: standard deviation of the Gaussian likelihood, intensity in [0, 1].
        env_id: the env the data came from (informative).
    """

    num_cameras: int = 4
    source_size: list[int] = field(default_factory=lambda: [128, 128])
    image_size: int = 64
    latent_dim: int = 10
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    view_features: int = 128
    hidden: int = 256
    likelihood: str = "gaussian"
    gaussian_sigma: float = 0.1
    env_id: str | None = None

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        size = self.source_size
        if isinstance(size, (int, np.integer)):
            size = [int(size), int(size)]
        self.source_size = [int(s) for s in size]
        for name in ("num_cameras", "image_size", "latent_dim", "view_features", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
            setattr(self, name, int(value))
        if len(self.source_size) != 2 or min(self.source_size) < 1:
            raise ValueError(f"source_size: expected [H, W] > 0 pixels, got {size!r}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels: expected >= 1 positive entries, got {self.channels}")
        div = 2 ** len(self.channels)
        if self.image_size % div:
            raise ValueError(
                f"image_size: expected a multiple of 2**len(channels) = {div} "
                f"(channels {self.channels}), got {self.image_size}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood: expected 'bernoulli' or 'gaussian', got "
                             f"{self.likelihood!r}")
        if not (math.isfinite(self.gaussian_sigma) and self.gaussian_sigma > 0):
            raise ValueError(f"gaussian_sigma: expected a finite value > 0, got "
                             f"{self.gaussian_sigma!r}")

    @property
    def bottleneck(self) -> int:
        """Side in pixels of the smallest encoder feature map (``S / 2**len(channels)``)."""
        return self.image_size // 2 ** len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VAEConfig:
        """The config of a checkpoint dict (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ------------------------------------------------------------------------------ images
def resize_views(images: np.ndarray | torch.Tensor, size: int, chunk: int = 256
                 ) -> torch.Tensor:
    """Resize multi-view RGB images to ``size x size`` pixels, keeping uint8.

    The same function prepares the training frames and the wrapper's observations, so both
    see exactly the same pixels. Integer down-scaling factors average pixel blocks (area);
    other sizes use antialiased bilinear interpolation. Values are rounded back to uint8.

    Args:
        images: ``(..., H, W, 3)`` uint8 RGB (numpy or torch).
        size: output side S in pixels.
        chunk: images resized at a time (bounds the float32 working memory).

    Returns:
        ``(..., S, S, 3)`` uint8 torch tensor, contiguous (the input itself when it already
        has that size).
    """
    x = images if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype not in (torch.uint8, np.uint8) or x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"images: expected (..., H, W, 3) uint8, got shape {tuple(x.shape)} "
                         f"dtype {x.dtype}")
    lead, (h, w) = tuple(x.shape[:-3]), tuple(x.shape[-3:-1])
    if (h, w) == (size, size):
        # A copy of numpy input: it may be a read-only memory map of a dataset shard.
        return x.contiguous() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    flat = x.reshape(-1, h, w, 3)
    out = torch.empty((flat.shape[0], size, size, 3), dtype=torch.uint8)
    for i in range(0, flat.shape[0], chunk):
        part = flat[i:i + chunk]
        if not isinstance(part, torch.Tensor):  # copies only this chunk of a memory map
            part = torch.from_numpy(np.array(part))
        part = part.permute(0, 3, 1, 2).float()  # channels-last strides
        if h % size == 0 and w % size == 0:
            part = F.avg_pool2d(part, (h // size, w // size))
        else:
            part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out.reshape(*lead, size, size, 3)


def _targets(images: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` uint8 (or float in [0, 255]) -> float32 intensities in [0, 1]."""
    return images.float() * (1.0 / 255.0)


# ------------------------------------------------------------------------------ model
class VAEOutput(NamedTuple):
    """What :meth:`BetaVAE.forward` returns (B frames, C views, S px, D latents).

    Attributes:
        logits: ``(B, C, S, S, 3)`` float32 decoder outputs; the reconstruction (mean of the
            likelihood) is ``sigmoid(logits)``, intensities in [0, 1].
        mu: ``(B, D)`` posterior means.
        logvar: ``(B, D)`` posterior log-variances.
        z: ``(B, D)`` the latent that was decoded (a sample, or ``mu``).
    """

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class VAELoss(NamedTuple):
    """Terms of the beta-VAE loss, each averaged over the B frames of a batch.

    Attributes:
        total: ``()`` the optimised loss, ``recon + beta KL`` or ``recon + beta |KL - C|``.
        recon: ``()`` negative log-likelihood, nats, summed over every pixel, colour channel
            and view of a frame.
        kl: ``()`` KL(q(z|x) || N(0, I)), nats per frame.
        kl_per_dim: ``(D,)`` the KL of each latent dimension, nats (they sum to ``kl``).
    """

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor


def vae_loss(logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor,
             logvar: torch.Tensor, beta: float = 1.0, capacity: float | None = None,
             likelihood: str = "gaussian", gaussian_sigma: float = 0.1) -> VAELoss:
    """The beta-VAE loss of a batch.

    Args:
        logits: ``(B, ...)`` decoder outputs (reconstruction = ``sigmoid(logits)``).
        target: same shape, intensities in [0, 1] (float) or uint8 in [0, 255].
        mu: ``(B, D)`` posterior means. logvar: ``(B, D)`` posterior log-variances.
        beta: weight of the KL term (or of ``|KL - capacity|``).
        capacity: ``None`` for ``recon + beta KL``; a number C (nats) for
            ``recon + beta |KL - C|`` (capacity annealing, Burgess et al. 2018).
        likelihood: ``"bernoulli"``: ``sum BCE(sigmoid(logits), target)``; ``"gaussian"``:
            ``sum (target - sigmoid(logits))**2 / (2 sigma**2) + log(sigma sqrt(2 pi))``.
        gaussian_sigma: sigma of the Gaussian likelihood (intensity units).

    Returns:
        :class:`VAELoss` (every term averaged over the batch).
    """
    if logits.shape != target.shape:
        raise ValueError(f"target: expected the shape of the logits {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    if mu.shape != logvar.shape or mu.ndim != 2 or mu.shape[0] != logits.shape[0]:
        raise ValueError(f"mu, logvar: expected (B, D) with B = {logits.shape[0]}, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")
    t = _targets(target) if target.dtype == torch.uint8 else target.float()
    b = logits.shape[0]
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits.float(), t, reduction="sum") / b
    elif likelihood == "gaussian":
        sigma = float(gaussian_sigma)
        sq = ((t - torch.sigmoid(logits.float())) ** 2).sum() / b
        nll = sq / (2.0 * sigma ** 2) + t[0].numel() * math.log(sigma * math.sqrt(2 * math.pi))
    else:
        raise ValueError(f"likelihood: expected 'bernoulli' or 'gaussian', got {likelihood!r}")
    kl_per_dim = (0.5 * (mu.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float())).mean(0)
    kl = kl_per_dim.sum()
    if capacity is None:
        total = nll + beta * kl
    else:
        total = nll + beta * (kl - float(capacity)).abs()
    return VAELoss(total, nll, kl, kl_per_dim)


def active_units(kl_per_dim: np.ndarray | torch.Tensor, threshold: float = ACTIVE_KL_NATS
                 ) -> int:
    """Number of latent dimensions whose mean KL ``(D,)`` (nats) exceeds ``threshold``."""
    kl = np.asarray(kl_per_dim.detach().cpu() if isinstance(kl_per_dim, torch.Tensor)
                    else kl_per_dim, dtype=np.float64)
    return int((kl > threshold).sum())


class BetaVAE(nn.Module):
    """A beta-VAE embedding the C views of a frame into one D-dimensional latent.

    Per view (shared weights): ``len(channels)`` 4x4 stride-2 convs + ReLU, flatten, linear to
    ``view_features`` + ReLU. The C feature vectors are concatenated, then
    ``Linear(C * view_features, hidden) - ReLU - Linear(hidden, 2 D)`` gives ``mu`` and
    ``logvar``. Decoder: ``Linear(D, hidden) - ReLU - Linear(hidden, hidden) - ReLU``, one linear
    head per camera (one slice of a ``Linear(hidden, C * channels[-1] * b * b)``, ``b = S /
    2**len(channels)``) to a ``channels[-1] x b x b`` map per view, then shared 4x4 stride-2
    transposed convs (mirroring the encoder) to ``3 x S x S`` logits per view.

    Images enter as ``(B, C, H, W, 3)`` uint8 (channels-last, as envs and datasets hold them;
    the permutation to ``(N, 3, H, W)`` copies nothing and gives channels-last strides);
    ``(H, W)`` is either ``config.source_size`` (resized with :func:`resize_views`) or
    ``(S, S)``.

    Args:
        config: a :class:`VAEConfig` or its dict.
    """

    def __init__(self, config: VAEConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, VAEConfig) else VAEConfig.from_dict(config)
        self.config = cfg
        ch, b, c = cfg.channels, cfg.bottleneck, cfg.num_cameras
        enc: list[nn.Module] = []
        prev = 3
        for out in ch:
            enc += [nn.Conv2d(prev, out, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
            prev = out
        self.view_encoder = nn.Sequential(
            *enc, nn.Flatten(), nn.Linear(ch[-1] * b * b, cfg.view_features), nn.ReLU(inplace=True))
        self.encoder_mlp = nn.Sequential(
            nn.Linear(c * cfg.view_features, cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, 2 * cfg.latent_dim))
        self.decoder_mlp = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(inplace=True))
        self.view_heads = nn.Linear(cfg.hidden, c * ch[-1] * b * b)
        dec: list[nn.Module] = []
        rev = [*ch[::-1][1:], 3]
        prev = ch[-1]
        for i, out in enumerate(rev):
            dec.append(nn.ConvTranspose2d(prev, out, 4, stride=2, padding=1))
            if i < len(rev) - 1:
                dec.append(nn.ReLU(inplace=True))
            prev = out
        self.view_decoder = nn.Sequential(*dec)
        # Conv weights in channels-last layout, like the permuted (N, H, W, 3) inputs: ~10 %
        # faster on CPU (no effect on the Linear layers or on the saved values).
        self.to(memory_format=torch.channels_last)

    # ---------------------------------------------------------------- helpers
    def prepare(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Check multi-view images and bring them to the network's size.

        Args:
            images: ``(B, C, H, W, 3)`` uint8 with ``(H, W)`` = ``source_size`` or ``(S, S)``.

        Returns:
            ``(B, C, S, S, 3)`` uint8 on the model's device.

        Raises:
            ValueError: wrong rank, dtype, camera count or image size (the message says what
                was expected).
        """
        cfg = self.config
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
        if x.ndim != 5 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"images: expected (B, C, H, W, 3) uint8, got shape "
                             f"{tuple(x.shape)} dtype {x.dtype}")
        c, h, w = (int(v) for v in x.shape[1:4])
        if c != cfg.num_cameras:
            raise ValueError(f"images: the beta-VAE embeds {cfg.num_cameras} views, got {c}")
        s = cfg.image_size
        if (h, w) != (s, s):
            if [h, w] != cfg.source_size:
                raise ValueError(
                    f"images: the beta-VAE was trained on {cfg.source_size[0]}x"
                    f"{cfg.source_size[1]} images (resized to {s}x{s}), got {h}x{w}")
            x = resize_views(x.cpu(), s)
        return x.to(self._device())

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # ---------------------------------------------------------------- API
    def encode(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of a batch of frames.

        Args:
            images: ``(B, C, H, W, 3)`` uint8 (see :meth:`prepare`).

        Returns:
            ``(mu, logvar)``, each ``(B, D)`` float32.
        """
        x = self.prepare(images)
        bsz, c, s = x.shape[0], x.shape[1], x.shape[2]
        v = x.reshape(bsz * c, s, s, 3).permute(0, 3, 1, 2).float().mul_(1.0 / 255.0).sub_(0.5)
        feats = self.view_encoder(v).reshape(bsz, c * self.config.view_features)
        mu, logvar = self.encoder_mlp(feats).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the C views of latents ``z``.

        Args:
            z: ``(B, D)`` latents.

        Returns:
            ``(B, C, S, S, 3)`` float32 logits; the reconstruction is ``sigmoid`` of them.
        """
        cfg = self.config
        if z.ndim != 2 or z.shape[1] != cfg.latent_dim:
            raise ValueError(f"z: expected (B, {cfg.latent_dim}), got {tuple(z.shape)}")
        bsz, c, b = z.shape[0], cfg.num_cameras, cfg.bottleneck
        h = F.relu(self.view_heads(self.decoder_mlp(z)))
        h = h.reshape(bsz * c, cfg.channels[-1], b, b)
        out = self.view_decoder(h)  # (B*C, 3, S, S)
        s = cfg.image_size
        return out.reshape(bsz, c, 3, s, s).permute(0, 1, 3, 4, 2)

    def forward(self, images: np.ndarray | torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw ``z = mu + exp(logvar / 2) eps`` (or ``z = mu``), decode.

        Args:
            images: ``(B, C, H, W, 3)`` uint8.
            sample: draw ``z`` from the posterior (training); False decodes the mean.
            generator: torch generator of ``eps`` (CPU), for reproducible runs.

        Returns:
            :class:`VAEOutput` with logits ``(B, C, S, S, 3)``, mu, logvar, z ``(B, D)``.
        """
        mu, logvar = self.encode(images)
        if sample:
            eps = torch.randn(mu.shape, generator=generator).to(mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        return VAEOutput(self.decode(z), mu, logvar, z)

    def loss(self, images: np.ndarray | torch.Tensor, output: VAEOutput, beta: float = 1.0,
             capacity: float | None = None) -> VAELoss:
        """The loss of a forward pass (see :func:`vae_loss`; likelihood from the config).

        Args:
            images: the ``(B, C, H, W, 3)`` uint8 frames that were encoded.
            output: :meth:`forward` of them.
            beta: KL weight. capacity: target KL in nats (capacity annealing) or None.

        Returns:
            :class:`VAELoss` (recon and KL in nats per frame, ``kl_per_dim`` ``(D,)``).
        """
        return vae_loss(output.logits, self.prepare(images), output.mu, output.logvar, beta,
                        capacity, self.config.likelihood, self.config.gaussian_sigma)

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Reconstructions decoded from the posterior mean.

        Args:
            images: ``(B, C, H, W, 3)`` uint8.

        Returns:
            ``(B, C, S, S, 3)`` uint8 (CPU).
        """
        mu, _ = self.encode(images)
        rec = torch.sigmoid(self.decode(mu)).mul(255.0).round().clamp(0, 255)
        return rec.to(torch.uint8).cpu()


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_payload(vae: BetaVAE) -> dict[str, Any]:
    """The checkpoint dict: format, version, plain config and the CPU ``state_dict``."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": vae.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in vae.state_dict().items()},
    }


def save_vae(path: PathLike, vae: BetaVAE) -> Path:
    """Write a beta-VAE checkpoint atomically (temporary file, fsync, rename).

    Returns:
        The path written.
    """
    return atomic_torch_save(checkpoint_payload(vae), path)


def vae_from_payload(payload: Any, path: PathLike) -> BetaVAE:
    """A :class:`BetaVAE` (eval mode, CPU) from a loaded checkpoint dict.

    Raises:
        VAECheckpointError: not a beta-VAE checkpoint, another format version, a bad config,
            or weights that do not fit the config; the message names ``path``.
    """
    if not isinstance(payload, dict) or "format" not in payload:
        raise VAECheckpointError(
            f"{path}: not an s3k beta-VAE checkpoint (expected a dict with format="
            f"{CHECKPOINT_FORMAT!r}, got {type(payload).__name__})")
    if payload["format"] != CHECKPOINT_FORMAT:
        hint = ""
        if payload["format"] == "s3k-keypoint-model":
            hint = " (an S3K keypoint model: use s3k_envs.wrappers.KeypointObservation)"
        elif payload["format"] == STATE_FORMAT:
            hint = " (a training state: load model.pt from the same run directory)"
        raise VAECheckpointError(
            f"{path}: format is {payload['format']!r}, expected {CHECKPOINT_FORMAT!r}{hint}")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise VAECheckpointError(
            f"{path}: format_version {version!r} is not supported (this s3k reads version "
            f"{CHECKPOINT_VERSION})")
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict):
        raise VAECheckpointError(f"{path}: config is missing or not a dict")
    if not isinstance(state, dict):
        raise VAECheckpointError(f"{path}: state_dict is missing or not a dict")
    try:
        vae = BetaVAE(VAEConfig.from_dict(config))
        vae.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise VAECheckpointError(
            f"{path}: config or weights are not those of a beta-VAE "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    return vae.eval()


def _torch_load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise VAECheckpointError(
            f"{path}: not a readable {what} (torch.load with weights_only=True failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc


def load_vae(path: PathLike, device: str | torch.device = "cpu") -> BetaVAE:
    """Load a checkpoint written by :func:`save_vae` / ``train`` (``weights_only=True``).

    Returns:
        The :class:`BetaVAE` in eval mode on ``device``.

    Raises:
        FileNotFoundError: no such file.
        VAECheckpointError: see :func:`vae_from_payload` (also for unreadable files).
    """
    path = Path(path)
    return vae_from_payload(_torch_load(path, "beta-VAE checkpoint"), path).to(device)


# ------------------------------------------------------------------------------ data
@dataclass
class FrameSet:
    """Frames of one or more datasets, resized for a VAE.

    Attributes:
        images: ``(N, C, S, S, 3)`` uint8.
        num_cameras: C. source_size: ``[H, W]`` of the stored images.
        env_id: the datasets' env. keypoint_names: their K keypoint names.
    """

    images: torch.Tensor
    num_cameras: int
    source_size: list[int]
    env_id: str | None
    keypoint_names: list[str]


def _as_dirs(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    dirs = [Path(p) for p in paths]
    if not dirs:
        raise ValueError("expected at least one dataset directory, got none")
    return dirs


def _check_same(manifests: Sequence[tuple[Path, Mapping[str, Any]]]) -> None:
    first_dir, first = manifests[0]
    for d, m in manifests[1:]:
        for key in ("env_id", "num_cameras", "image_size", "keypoint_names"):
            if m[key] != first[key]:
                raise ValueError(f"{d}: {key} is {m[key]!r} but {first_dir} has "
                                 f"{first[key]!r}; give datasets of one env and camera setup")


def load_frames(paths: PathLike | Sequence[PathLike], image_size: int) -> FrameSet:
    """Every frame (labelled or not) of ``s3k generate`` datasets, resized to ``image_size``.

    Shards are read one at a time (memory-mapped) and resized in chunks, so only the resized
    frames are held in memory: ``N x C x S x S x 3`` bytes.

    Args:
        paths: one dataset directory or several (same env, cameras and image size).
        image_size: S in pixels.

    Raises:
        DatasetError: a missing, incomplete or inconsistent dataset (naming the file).
        ValueError: datasets of different envs / camera setups.
    """
    from s3k_envs.keypoints.data import read_manifest, read_npz, validate_shard

    dirs = _as_dirs(paths)
    manifests = [(d, read_manifest(d)) for d in dirs]
    _check_same(manifests)
    parts = []
    for d, manifest in manifests:
        for entry in manifest["shards"]:
            path = d / entry["file"]
            arrays = read_npz(path)
            validate_shard(path, arrays, entry, manifest)
            parts.append(resize_views(arrays["images"], image_size))
            del arrays
    first = manifests[0][1]
    return FrameSet(torch.cat(parts), int(first["num_cameras"]),
                    [int(v) for v in first["image_size"]], first.get("env_id"),
                    list(first["keypoint_names"]))


@torch.no_grad()
def evaluate_frames(vae: BetaVAE, images: np.ndarray | torch.Tensor, batch: int = 64
                    ) -> dict[str, Any]:
    """Loss terms of frames with ``z = mu`` (deterministic), in eval mode.

    Args:
        vae: the model (its train/eval mode is restored).
        images: ``(N, C, H, W, 3)`` uint8.
        batch: frames per forward pass.

    Returns:
        ``recon`` and ``kl`` (nats per frame), ``loss = recon + kl``, ``kl_per_dim`` (D floats),
        ``mu_variance`` (D floats: variance of each latent mean over the frames),
        ``active_units`` (dims with KL > :data:`ACTIVE_KL_NATS`) and ``active_units_variance``
        (dims with ``mu_variance`` > :data:`ACTIVE_VARIANCE`).
    """
    was_training = vae.training
    vae.eval()
    try:
        n = len(images)
        if n == 0:
            raise ValueError("images: expected at least one frame, got none")
        recon = kl = 0.0
        kl_dim = torch.zeros(vae.config.latent_dim, dtype=torch.float64)
        mus = []
        for i in range(0, n, batch):
            x = images[i:i + batch]
            out = vae(x, sample=False)
            terms = vae.loss(x, out)
            m = out.mu.shape[0]
            recon += float(terms.recon) * m
            kl += float(terms.kl) * m
            kl_dim += terms.kl_per_dim.double().cpu() * m
            mus.append(out.mu.double().cpu())
        mu = torch.cat(mus)
        var = mu.var(0, unbiased=False).numpy()
        kl_dim = (kl_dim / n).numpy()
        return {"recon": recon / n, "kl": kl / n, "loss": (recon + kl) / n,
                "kl_per_dim": kl_dim.tolist(), "mu_variance": var.tolist(),
                "active_units": active_units(kl_dim),
                "active_units_variance": int((var > ACTIVE_VARIANCE).sum())}
    finally:
        vae.train(was_training)


def reconstruction_grid(vae: BetaVAE, images: np.ndarray | torch.Tensor, scale: int = 2
                        ) -> np.ndarray:
    """An image of input views above their reconstructions.

    For each of the n frames: one row with its C input views (resized to S), then one row
    with the C views decoded from the posterior mean; tiles are enlarged ``scale`` times
    (nearest neighbour), frames separated by a wider white border.

    Args:
        vae: the model.
        images: ``(n, C, H, W, 3)`` uint8.
        scale: integer enlargement of every tile.

    Returns:
        ``(rows, cols, 3)`` uint8 RGB.
    """
    from s3k_envs.viz import mosaic

    was_training = vae.training
    vae.eval()
    try:
        inputs = vae.prepare(images).cpu().numpy()
        recs = vae.reconstruct(images).numpy()
    finally:
        vae.train(was_training)
    if scale > 1:
        inputs = inputs.repeat(scale, axis=2).repeat(scale, axis=3)
        recs = recs.repeat(scale, axis=2).repeat(scale, axis=3)
    c = inputs.shape[1]
    blocks = [mosaic(np.concatenate([inp, rec]), cols=c) for inp, rec in zip(inputs, recs,
                                                                              strict=True)]
    return mosaic(np.stack(blocks), cols=1, border=6)


def save_reconstructions(vae: BetaVAE, images: np.ndarray | torch.Tensor, path: PathLike,
                         scale: int = 2) -> Path:
    """Write :func:`reconstruction_grid` of ``(n, C, H, W, 3)`` uint8 frames as a PNG."""
    from s3k_envs.viz import write_png

    return write_png(reconstruction_grid(vae, images, scale), path)


# ------------------------------------------------------------------------------ training
@dataclass
class VAETrainConfig:
    """Hyper-parameters of a beta-VAE run (stored in ``train_config.json`` and the state).

    Attributes:
        steps: maximum optimizer steps. minutes: time budget (None: none), counted on
            ``clock``: ``"cpu"`` (this process's CPU seconds over all threads, robust to
            other load) or ``"wall"``.
        batch: frames (of C views each) per step. lr: Adam learning rate, with a linear
            warm-up over ``warmup`` of the run and a cosine decay to ``final_lr_fraction``.
        beta: KL weight. capacity: None, or the final target KL C in nats for capacity
            annealing (``recon + beta |KL - C(t)|``), reached linearly at
            ``capacity_fraction`` of the run.
        beta_warmup: fraction of the run over which the KL weight ramps linearly from 0 to
            ``beta`` (KL annealing, Bowman et al. 2016); 0 = ``beta`` from the start. It
            gives the encoder a head start before the decoder has learnt the mean image.
        seed: initialisation, batch order and ``eps``. threads: torch CPU threads.
        checkpoint_every, log_every, val_every: steps between checkpoints / log rows /
            validation. val_fraction: frames held out for validation (none if that leaves
            fewer than 1). recon_samples: frames in ``recon.png``.
        image_size, latent_dim, channels, view_features, hidden, likelihood, gaussian_sigma:
            the architecture (:class:`VAEConfig`).
    """

    steps: int = 1_000_000
    minutes: float | None = None
    clock: str = "cpu"
    batch: int = 32
    lr: float = 1e-3
    warmup: float = 0.01
    final_lr_fraction: float = 0.1
    beta: float = 1.0
    capacity: float | None = None
    capacity_fraction: float = 0.5
    beta_warmup: float = 0.1
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 200
    log_every: int = 20
    val_every: int = 200
    val_fraction: float = 0.05
    recon_samples: int = 4
    image_size: int = 64
    latent_dim: int = 10
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    view_features: int = 128
    hidden: int = 256
    likelihood: str = "gaussian"
    gaussian_sigma: float = 0.1

    def __post_init__(self) -> None:
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"clock: expected 'wall' or 'cpu', got {self.clock!r}")
        for name in ("steps", "batch", "threads", "checkpoint_every", "log_every", "val_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes: expected > 0 or None, got {self.minutes!r}")
        for name in ("lr", "beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")
        if self.capacity is not None and not (math.isfinite(self.capacity)
                                              and self.capacity >= 0):
            raise ValueError(f"capacity: expected None or nats >= 0, got {self.capacity!r}")
        if not 0 < self.capacity_fraction <= 1:
            raise ValueError(f"capacity_fraction: expected in (0, 1], got "
                             f"{self.capacity_fraction!r}")
        if not 0 <= self.beta_warmup <= 1:
            raise ValueError(f"beta_warmup: expected in [0, 1], got {self.beta_warmup!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction: expected in [0, 1), got {self.val_fraction!r}")
        self.channels = [int(c) for c in self.channels]

    def model_config(self, num_cameras: int, source_size: Sequence[int],
                     env_id: str | None) -> VAEConfig:
        """The :class:`VAEConfig` of this run for data of the given layout."""
        return VAEConfig(num_cameras=num_cameras, source_size=list(source_size),
                         image_size=self.image_size, latent_dim=self.latent_dim,
                         channels=list(self.channels), view_features=self.view_features,
                         hidden=self.hidden, likelihood=self.likelihood,
                         gaussian_sigma=self.gaussian_sigma, env_id=env_id)

    def learning_rate(self, progress: float) -> float:
        """Learning rate at ``progress`` in [0, 1] of the run."""
        if progress < self.warmup:
            return self.lr * max(progress / self.warmup, 0.02)
        t = min(1.0, (progress - self.warmup) / max(1e-9, 1.0 - self.warmup))
        lo = self.final_lr_fraction
        return self.lr * (lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t)))

    def beta_at(self, progress: float) -> float:
        """KL weight at ``progress`` in [0, 1] of the run (see ``beta_warmup``)."""
        if self.beta_warmup <= 0:
            return self.beta
        return self.beta * min(1.0, progress / self.beta_warmup)

    def capacity_at(self, progress: float) -> float | None:
        """Target KL (nats) at ``progress``; None without capacity annealing."""
        if self.capacity is None:
            return None
        return self.capacity * min(1.0, progress / self.capacity_fraction)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` frame indices: a seeded shuffle, ``floor(n * val_fraction)`` held out
    (none when that is 0 or would leave fewer than 2 training frames)."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    n_val = int(n * val_fraction)
    if n - n_val < 2:
        n_val = 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _load_state(path: Path) -> dict[str, Any]:
    state = _torch_load(path, "beta-VAE training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise VAECheckpointError(f"{path}: not a beta-VAE training state (expected format "
                                 f"{STATE_FORMAT!r}); move it away to start afresh")
    if state.get("format_version") != STATE_VERSION:
        raise VAECheckpointError(f"{path}: format_version {state.get('format_version')!r} is "
                                 f"not supported (expected {STATE_VERSION})")
    return state


def train_vae(
    train_dir: PathLike | Sequence[PathLike],
    out: PathLike,
    minutes: float | None = None,
    clock: str = "cpu",
    beta: float = 1.0,
    capacity: float | None = None,
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    image_size: int = 64,
    *,
    progress_bar: bool = True,
    stop_at_step: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train (or resume) a beta-VAE on the images of dataset directories; see
    :class:`VAETrainConfig` for every option.

    Args:
        train_dir: one ``s3k generate`` dataset directory or several (all frames are used,
            labels are ignored).
        out: run directory; if it holds ``train_state.pt`` the run resumes from it (budget
            and bookkeeping options may change, the method may not: the saved values win).
        minutes: time budget on ``clock`` (``"cpu"`` or ``"wall"``); None = ``steps`` only.
        beta: KL weight. capacity: final target KL (nats) for capacity annealing, or None.
        batch: frames per step. lr: Adam learning rate. seed: run seed.
        threads: torch CPU threads (set process-wide). image_size: S, pixels.
        progress_bar: show progress on stderr (a bar in a terminal, else a line a minute).
        stop_at_step: stop (and checkpoint) at this step as if interrupted; a later call
            resumes it.
        **options: further :class:`VAETrainConfig` fields (``steps``, ``latent_dim``,
            ``checkpoint_every``, ``capacity_fraction``, ``likelihood``, ...).

    Returns:
        The summary dict also written to ``out/summary.json``: steps, elapsed seconds,
        steps/s, the final training and validation terms (nats per frame), per-dimension KL,
        active units, the files written.

    Raises:
        TypeError: an unknown option. ValueError: bad values, datasets that disagree, or a
        run directory whose model does not fit the data. VAECheckpointError: an unreadable
        ``train_state.pt``. FloatingPointError: the loss became NaN or infinite.
    """
    names = {f.name for f in dataclasses.fields(VAETrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"train_vae: unknown option(s) {unknown}; valid: {sorted(names)}")
    cfg = VAETrainConfig(minutes=minutes, clock=clock, beta=beta, capacity=capacity,
                         batch=batch, lr=lr, seed=seed, threads=threads,
                         image_size=image_size, **options)
    return _train(cfg, train_dir, Path(out), progress_bar, stop_at_step)


def _train(cfg: VAETrainConfig, train_dir: PathLike | Sequence[PathLike], out: Path,
           progress_bar: bool, stop_at_step: int | None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pt"
    state = _load_state(state_path) if state_path.exists() else None
    if state is not None:
        cfg = resume_config(VAETrainConfig(**json.loads(state["train_config"])), cfg,
                            _RESUME_MAY_CHANGE, out)
    torch.set_num_threads(max(1, int(cfg.threads)))
    dirs = _as_dirs(train_dir)
    frames = load_frames(dirs, cfg.image_size)
    n = len(frames.images)
    train_idx, val_idx = split_indices(n, cfg.val_fraction, cfg.seed)
    mcfg = cfg.model_config(frames.num_cameras, frames.source_size, frames.env_id)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    vae = BetaVAE(mcfg)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed0, best = 0, 0.0, math.inf
    if state is not None:
        payload = state["checkpoint"]
        old = payload.get("config", {}) if isinstance(payload, dict) else {}
        for key in ("num_cameras", "source_size", "image_size"):
            if old.get(key) != mcfg.to_dict()[key]:
                raise ValueError(f"{state_path}: the run was trained with {key}="
                                 f"{old.get(key)!r} but the data now gives "
                                 f"{mcfg.to_dict()[key]!r}; use another --out")
        if int(state["num_frames"]) != n:
            raise ValueError(f"{state_path}: the run was trained on {state['num_frames']} "
                             f"frames, the data now has {n}; use the same datasets or "
                             "another --out")
        vae.load_state_dict(vae_from_payload(payload, state_path).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        np_rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        gen.set_state(state["rng"]["torch"])
        torch.set_rng_state(state["rng"]["torch_global"])
        step, elapsed0 = int(state["step"]), float(state["elapsed_s"])
        best = float(state["best_val_loss"])
        print(f"resuming {out} from step {step} ({elapsed0 / 60:.1f} min done)",
              file=sys.stderr)
    atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    columns = [*_LOG_BASE, *(f"kl_{d}" for d in range(cfg.latent_dim))]
    log = RunLog(out, columns, step if state is not None else None)
    vae.train()
    train_images, val_images = frames.images[train_idx], frames.images[val_idx]
    sums: dict[str, float] = {}
    kl_sum = np.zeros(cfg.latent_dim)
    count = 0
    last: dict[str, Any] = {}
    last_val: dict[str, Any] = {}

    loop = TrainingLoop(cfg.steps, cfg.minutes, cfg.clock, step=step, elapsed_s=elapsed0,
                        stop_at_step=stop_at_step, log_every=cfg.log_every,
                        checkpoint_every=cfg.checkpoint_every, val_every=cfg.val_every,
                        progress_bar=progress_bar, desc="beta-VAE",
                        time_bar_steps_per_minute=300)

    def save_state() -> None:
        payload = checkpoint_payload(vae)
        atomic_torch_save({
            "format": STATE_FORMAT, "format_version": STATE_VERSION,
            "checkpoint": payload, "optimizer": optimizer.state_dict(), "step": loop.step,
            "elapsed_s": loop.elapsed(), "num_frames": n, "best_val_loss": best,
            "rng": {"numpy": json.dumps(np_rng.bit_generator.state), "torch": gen.get_state(),
                    "torch_global": torch.get_rng_state()},
            "train_config": json.dumps(cfg.to_dict()),
        }, state_path)
        atomic_torch_save(payload, out / "model.pt")

    def validate() -> dict[str, Any]:
        nonlocal best
        if len(val_images) == 0:
            return {}
        m = evaluate_frames(vae, val_images)
        if m["loss"] < best:
            best = m["loss"]
            save_vae(out / "best.pt", vae)
        return {"val_loss": m["loss"], "val_recon": m["recon"], "val_kl": m["kl"],
                "val_active_units": m["active_units"]}

    with loop:
        while loop.running():
            prog = loop.progress()
            lr = cfg.learning_rate(prog)
            for group in optimizer.param_groups:
                group["lr"] = lr
            cap = cfg.capacity_at(prog)
            beta_t = cfg.beta_at(prog)
            idx = np_rng.choice(len(train_images), size=min(cfg.batch, len(train_images)),
                                replace=False)
            x = train_images[torch.from_numpy(np.sort(idx))]
            output = vae(x, sample=True, generator=gen)
            terms = vae.loss(x, output, beta_t, cap)
            if not torch.isfinite(terms.total.detach()):
                raise FloatingPointError(
                    f"beta-VAE loss is {float(terms.total.detach())} at step {loop.step} (recon "
                    f"{float(terms.recon.detach())}, KL {float(terms.kl.detach())}); lower "
                    f"--lr, or resume from the last checkpoint in {out}")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            for k, v in (("loss", terms.total), ("recon", terms.recon), ("kl", terms.kl)):
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            kl_sum += terms.kl_per_dim.detach().double().numpy()
            count += 1
            due = loop.advance()
            if due.validate:
                last_val = validate()
            if due.log or due.validate:
                kl_dims = kl_sum / max(count, 1)
                last = {"step": loop.step, "elapsed_s": loop.elapsed(), "lr": lr, "beta": beta_t,
                        "capacity": cap,
                        **{k: v / max(count, 1) for k, v in sums.items()},
                        "active_units": active_units(kl_dims),
                        **{f"kl_{d}": float(v) for d, v in enumerate(kl_dims)}}
                if due.validate:
                    last.update(last_val)
                log.write(last)
                sums, kl_sum, count = {}, np.zeros(cfg.latent_dim), 0
                loop.show(loss=f"{last['loss']:.1f}", kl=f"{last['kl']:.1f}",
                          au=last["active_units"])
            if due.checkpoint:
                save_state()
    finished = not loop.interrupted and (stop_at_step is None or loop.step < stop_at_step)
    if loop.needs_final_validation():
        last_val = validate()
        log.write({"step": loop.step, "elapsed_s": loop.elapsed(), **last_val})
    save_state()
    log.close()
    files = {"model": str(out / "model.pt"), "state": str(state_path),
             "log": str(out / "log.csv")}
    if (out / "best.pt").exists():
        files["best"] = str(out / "best.pt")
    if finished and cfg.recon_samples > 0:
        shown = val_images if len(val_images) else train_images
        files["recon"] = str(save_reconstructions(vae, shown[:cfg.recon_samples],
                                                  out / "recon.png"))
    final = evaluate_frames(vae, val_images if len(val_images) else train_images[:256])
    summary = {
        "steps": loop.step,
        "elapsed_s": loop.elapsed(),
        "clock": cfg.clock,
        "steps_per_s": loop.steps_per_s(),
        "wall_s_this_call": loop.wall_s_this_call(),
        "num_frames": n,
        "num_train_frames": len(train_images),
        "num_val_frames": len(val_images),
        "last_log": last,
        "final_eval_on": "val" if len(val_images) else "train (first 256)",
        "final_eval": final,
        "best_val_loss": best if math.isfinite(best) else None,
        "interrupted": loop.interrupted,
        "sources": [str(d) for d in dirs],
        "files": files,
        "config": cfg.to_dict(),
        "model_config": mcfg.to_dict(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


# ------------------------------------------------------------------------------ linear probe
def _labelled_samples(paths: PathLike | Sequence[PathLike]) -> dict[str, Any]:
    """Images, calibration and true 3D keypoints of the labelled samples of datasets."""
    from s3k_envs.keypoints.data import load_arrays, read_manifest

    dirs = _as_dirs(paths)
    manifests = [(d, read_manifest(d)) for d in dirs]
    _check_same(manifests)
    parts: dict[str, list[np.ndarray]] = {"images": [], "intrinsics": [], "extrinsics": [],
                                          "keypoints_3d": []}
    for d, _ in manifests:
        arrays = load_arrays(d)
        rows = np.asarray(arrays["label_rows"], dtype=np.int64)
        if rows.size == 0:
            continue
        for key in ("images", "intrinsics", "extrinsics"):
            parts[key].append(np.asarray(arrays[key][rows]))
        parts["keypoints_3d"].append(np.asarray(arrays["keypoints_3d"], dtype=np.float64))
    if not parts["images"]:
        raise ValueError(f"{[str(d) for d in dirs]}: no labelled samples; the probe needs "
                         "datasets generated with --labelled M > 0")
    out: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    out["keypoint_names"] = list(manifests[0][1]["keypoint_names"])
    out["env_id"] = manifests[0][1].get("env_id")
    return out


@torch.no_grad()
def encode_means(vae: BetaVAE, images: np.ndarray | torch.Tensor, batch: int = 64
                 ) -> np.ndarray:
    """Posterior means of frames.

    Args:
        vae: the model (its train/eval mode is restored).
        images: ``(N, C, H, W, 3)`` uint8.
        batch: frames per forward pass.

    Returns:
        ``(N, D)`` float64.
    """
    was_training = vae.training
    vae.eval()
    try:
        mus = [vae.encode(images[i:i + batch])[0].double().cpu().numpy()
               for i in range(0, len(images), batch)]
    finally:
        vae.train(was_training)
    return np.concatenate(mus) if mus else np.zeros((0, vae.config.latent_dim))


class RidgeFit(NamedTuple):
    """A fitted ridge regression on standardised inputs.

    Attributes:
        x_mean, x_scale: ``(D,)`` input standardisation. weights: ``(D, T)``.
        y_mean: ``(T,)`` intercept. alpha: the chosen penalty. loo_mse: ``(A,)`` mean squared
        leave-one-out residual of every penalty tried.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    weights: np.ndarray
    y_mean: np.ndarray
    alpha: float
    loo_mse: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(N, D)`` inputs -> ``(N, T)`` predictions."""
        return (np.asarray(x, np.float64) - self.x_mean) / self.x_scale @ self.weights + self.y_mean


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
              ) -> RidgeFit:
    """Ridge regression with intercept, penalty chosen by exact leave-one-out error.

    Args:
        x: ``(N, D)`` inputs (standardised inside; constant columns get scale 1).
        y: ``(N, T)`` targets.
        alphas: penalties to try (on the standardised inputs).

    Returns:
        :class:`RidgeFit` with the penalty of least mean squared LOO residual.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"fit_ridge: expected x (N, D) and y (N, T) with N >= 2, got "
                         f"{x.shape} and {y.shape}")
    if not alphas or min(alphas) < 0:
        raise ValueError(f"alphas: expected penalties >= 0, got {list(alphas)}")
    n, d = x.shape
    x_mean, y_mean = x.mean(0), y.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    xs, yc = (x - x_mean) / scale, y - y_mean
    gram, xty = xs.T @ xs, xs.T @ yc
    losses, fits = [], []
    for alpha in alphas:
        inv = np.linalg.pinv(gram + float(alpha) * np.eye(d))
        w = inv @ xty
        hat = np.einsum("nd,de,ne->n", xs, inv, xs) + 1.0 / n  # leverage, intercept included
        resid = (yc - xs @ w) / np.maximum(1.0 - hat, 1e-6)[:, None]
        losses.append(float((resid ** 2).sum(1).mean()))
        fits.append(w)
    best = int(np.argmin(losses))
    return RidgeFit(x_mean, scale, fits[best], y_mean, float(alphas[best]), np.asarray(losses))


def _errors_mm(pred: np.ndarray, true: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """3D error statistics, mm, of ``(N, K, 3)`` predictions against truth (metres)."""
    err = np.linalg.norm(np.asarray(pred, np.float64) - true, axis=-1) * 1000.0  # (N, K)

    def stats(e: np.ndarray) -> dict[str, float]:
        e = e.ravel()
        return {"median": float(np.median(e)), "mean": float(e.mean()),
                "p90": float(np.percentile(e, 90)), "rms": float(np.sqrt((e ** 2).mean())),
                "n": int(e.size)}

    return {**stats(err), "per_keypoint": {n: stats(err[:, k]) for k, n in enumerate(names)}}


def linear_probe(
    vae: BetaVAE | PathLike,
    labelled_dir: PathLike | Sequence[PathLike],
    *,
    test_dir: PathLike | Sequence[PathLike] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    keypoint_model: PathLike | None = None,
    batch: int = 64,
) -> dict[str, Any]:
    """Linear read-out of true 3D keypoint positions from the VAE's latent mean.

    The latent means of the labelled samples are regressed onto the ``K x 3`` true keypoint
    coordinates (metres, world frame) with ridge regression (:func:`fit_ridge`, penalty by
    leave-one-out on the train split); the error is the Euclidean distance per keypoint on the
    test split, in mm. For reference the same statistics are given for predicting the mean
    train position ("mean_baseline") and, with ``keypoint_model``, for an S3K keypoint model
    (triangulated predictions) on exactly the same test samples.

    Args:
        vae: a :class:`BetaVAE` or the path of its checkpoint.
        labelled_dir: dataset directory (or several) with labelled samples (``keypoints_3d``).
            Use data the VAE was not trained on.
        test_dir: datasets for the test split; default: a seeded ``test_fraction`` of
            ``labelled_dir``'s samples.
        test_fraction: share of the samples held out when ``test_dir`` is None.
        seed: seed of that split.
        alphas: ridge penalties to choose from.
        keypoint_model: optional S3K keypoint checkpoint evaluated on the test split.
        batch: frames per forward pass.

    Returns:
        JSON-able dict: ``test`` (median, mean, p90, rms in mm over every keypoint of every
        test sample, ``n``, ``per_keypoint``), ``train`` (the fit's own error), ``mean_baseline``,
        ``keypoint_model`` (or None), ``r2`` (test R² averaged over the ``3K`` coordinates),
        ``alpha``, ``num_train``, ``num_test``, ``latent_dim``, ``active_units_variance``
        (dims whose latent mean varies by more than :data:`ACTIVE_VARIANCE` over the
        samples), ``keypoint_names``.

    Raises:
        ValueError: no labelled samples, fewer than 2 train or 1 test samples, datasets of
            another camera count / image size than the VAE.
    """
    if not isinstance(vae, BetaVAE):
        vae = load_vae(vae)
    data = _labelled_samples(labelled_dir)
    names = data["keypoint_names"]
    if test_dir is not None:
        test = _labelled_samples(test_dir)
        if test["keypoint_names"] != names:
            raise ValueError(f"{test_dir}: keypoints {test['keypoint_names']} differ from "
                             f"those of {labelled_dir}: {names}")
        train = data
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction: expected in (0, 1), got {test_fraction!r}")
        m = len(data["images"])
        perm = np.random.default_rng(seed).permutation(m)
        n_test = max(1, round(m * test_fraction))
        if m - n_test < 2:
            raise ValueError(f"{labelled_dir}: {m} labelled samples are too few for a train "
                             f"split of >= 2 and a test split of >= 1")
        pick = {"test": np.sort(perm[:n_test]), "train": np.sort(perm[n_test:])}
        train, test = ({k: (v[pick[part]] if isinstance(v, np.ndarray) else v)
                        for k, v in data.items()} for part in ("train", "test"))
    if len(train["images"]) < 2:
        raise ValueError(f"{labelled_dir}: the probe needs >= 2 labelled train samples, got "
                         f"{len(train['images'])}")
    k = len(names)
    z_train = encode_means(vae, train["images"], batch)
    z_test = encode_means(vae, test["images"], batch)
    y_train = train["keypoints_3d"].reshape(len(z_train), 3 * k)
    y_test = test["keypoints_3d"].reshape(len(z_test), 3 * k)
    fit = fit_ridge(z_train, y_train, alphas)
    pred_test = fit.predict(z_test)
    ss_res = ((y_test - pred_test) ** 2).sum(0)
    ss_tot = ((y_test - y_train.mean(0)) ** 2).sum(0)
    r2 = float(np.mean(1.0 - ss_res / np.maximum(ss_tot, 1e-18)))
    z_all = np.concatenate([z_train, z_test])
    result: dict[str, Any] = {
        "test": _errors_mm(pred_test.reshape(-1, k, 3), test["keypoints_3d"], names),
        "train": _errors_mm(fit.predict(z_train).reshape(-1, k, 3), train["keypoints_3d"],
                            names),
        "mean_baseline": _errors_mm(np.broadcast_to(y_train.mean(0).reshape(1, k, 3),
                                                    test["keypoints_3d"].shape),
                                    test["keypoints_3d"], names),
        "keypoint_model": None,
        "r2": r2,
        "alpha": fit.alpha,
        "num_train": len(z_train),
        "num_test": len(z_test),
        "latent_dim": vae.config.latent_dim,
        "active_units_variance": int((z_all.var(0) > ACTIVE_VARIANCE).sum()),
        "keypoint_names": list(names),
    }
    if keypoint_model is not None:
        from s3k_envs.keypoints.predictor import KeypointPredictor

        predictor = KeypointPredictor.load(keypoint_model)
        if list(predictor.keypoint_names) != list(names):
            raise ValueError(f"{keypoint_model}: predicts {predictor.keypoint_names}, the data "
                             f"has keypoints {names}")
        points = np.concatenate([
            predictor.predict(test["images"][i:i + batch], test["intrinsics"][i:i + batch],
                              test["extrinsics"][i:i + batch]).points_3d
            for i in range(0, len(test["images"]), batch)])
        result["keypoint_model"] = {"checkpoint": str(keypoint_model),
                                    **_errors_mm(points, test["keypoints_3d"], names)}
    return result


# ------------------------------------------------------------------------------ wrapper
class VAEObservation(FeatureObservation, gym.utils.RecordConstructorArgs):
    """Replace the images and calibration of a multi-view env by a frozen beta-VAE's latent
    (a :class:`~s3k_envs.wrappers.features.FeatureObservation`).

    Every ``reset`` and ``step`` encodes the C views of the new frame in one forward pass
    (``torch.inference_mode``), inside the env, so vector envs' final observations are
    encoded too.

    Args:
        env: an env whose observation is a ``Dict`` with ``images (C, H, W, 3)`` uint8 (every
            S3K env, or a MuJoCo env wrapped in ``MultiViewCameras``), with the C and
            ``(H, W)`` the VAE was trained on.
        vae: a :class:`BetaVAE` (used as it is, in eval mode; not copied) or the path of a
            checkpoint (loaded on ``device``; keeps the wrapper cheap to re-create in vector
            env workers).
        keep: the env's other observation keys to keep; default every key except
            ``images``, ``intrinsics`` and ``extrinsics`` (``gripper_pos``, ``gripper_quat``,
            ``gripper_linvel``, ``gripper_angvel``, ...).
        keep_images: also keep ``images`` (for videos of the observations).
        latent_bound: ``obs["latent"]`` lies in ``[-latent_bound, latent_bound]`` (clipped).
        device: torch device when ``vae`` is a path.
        torch_threads: if given, ``torch.set_num_threads`` (process-wide) when built; 1 is
            best in vector-env worker processes on a small CPU.

    Observation (``spaces.Dict``): the kept keys unchanged, plus ``latent`` ``(D,)`` float32,
    the posterior mean (NaN -> 0, clipped into the bounds).

    Info, besides the env's own: ``latent_mean`` ``(D,)`` float32 (unclipped) and
    ``latent_logvar`` ``(D,)`` float32.

    Vector envs: ``SyncVectorEnv`` needs nothing special; for ``AsyncVectorEnv`` build the
    wrapper in the env function (a path, or a VAE captured by it: it pickles), pass
    ``torch_threads=1`` and use the ``"forkserver"`` or ``"spawn"`` context (llvmpipe's
    threads do not survive ``fork``).

    Raises:
        ValueError: the env has no multi-view images (the message points to
            ``MultiViewCameras``), another camera count or image size than the VAE, or
            ``keep`` names keys the env does not observe or would be overwritten.
        TypeError: ``vae`` is neither a BetaVAE nor a path.
    """

    FEATURE_KEYS: ClassVar[tuple[str, ...]] = ("latent",)
    NEEDS_CALIBRATION: ClassVar[bool] = False

    def __init__(
        self,
        env: gym.Env,
        vae: BetaVAE | PathLike,
        keep: Sequence[str] | None = None,
        keep_images: bool = False,
        latent_bound: float = LATENT_BOUND,
        device: str = "cpu",
        torch_threads: int | None = None,
    ) -> None:
        recorded = os.fspath(vae) if isinstance(vae, (str, os.PathLike)) else vae
        gym.utils.RecordConstructorArgs.__init__(
            self, _disable_deepcopy=True, vae=recorded, keep=None if keep is None else list(keep),
            keep_images=keep_images, latent_bound=latent_bound, device=device,
            torch_threads=torch_threads)
        FeatureObservation.__init__(self, env)
        who = self.env_name
        c, h, w = self.camera_shape
        set_torch_threads(torch_threads)
        if isinstance(vae, (str, os.PathLike)):
            vae = load_vae(vae, device=device)
        elif not isinstance(vae, BetaVAE):
            raise TypeError(f"vae: expected a BetaVAE or a checkpoint path, got "
                            f"{type(vae).__name__}")
        self.vae: BetaVAE = vae.eval()
        cfg = vae.config
        if c != cfg.num_cameras:
            raise ValueError(f"the beta-VAE embeds {cfg.num_cameras} views, but {who} has {c} "
                             f"cameras; make the env with num_cameras={cfg.num_cameras}")
        if [h, w] != cfg.source_size:
            sh, sw = cfg.source_size
            raise ValueError(f"the beta-VAE was trained on {sh}x{sw} images, but {who} renders "
                             f"{h}x{w}; make the env with image_size=({sh}, {sw})")
        bound = float(latent_bound)
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"latent_bound: expected a finite value > 0, got {latent_bound!r}")
        self.latent_bound = bound
        self._init_observation(keep, keep_images, {
            "latent": spaces.Box(-bound, bound, (cfg.latent_dim,), np.float32)})

    def features(self, obs: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Encode the C views of one observation in one forward pass.

        Args:
            obs: the wrapped env's observation, with ``images (C, H, W, 3)`` uint8.

        Returns:
            ``({"latent": (D,) float32}, {"latent_mean": (D,) float32,
            "latent_logvar": (D,) float32})``: the posterior mean clipped into the bounds
            (NaN -> 0), and the unclipped posterior.
        """
        with torch.inference_mode():
            mu, logvar = self.vae.encode(np.asarray(obs["images"])[None])
        mean = mu[0].float().cpu().numpy()
        out = {"latent": np.clip(np.nan_to_num(mean, nan=0.0), -self.latent_bound,
                                 self.latent_bound).astype(np.float32)}
        info = {"latent_mean": mean.astype(np.float32),
                "latent_logvar": logvar[0].float().cpu().numpy()}
        return out, info


# ------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m agents.beta_vae {train, probe, recon}``."""
    d = VAETrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m agents.beta_vae",
        description="beta-VAE baseline of the S3K paper: all camera views in one latent.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", formatter_class=fmt,
                       help="train (or resume) on dataset directories' images")
    t.add_argument("--data", type=Path, nargs="+", required=True,
                   help="s3k dataset directories (labels unused)")
    t.add_argument("--out", type=Path, required=True, help="run directory (resumes if present)")
    t.add_argument("--steps", type=int, default=d.steps)
    t.add_argument("--minutes", type=float, default=d.minutes, help="time budget on --clock")
    t.add_argument("--clock", choices=("cpu", "wall"), default=d.clock,
                   help="what --minutes counts: this process's CPU time, or wall-clock time")
    t.add_argument("--batch", type=int, default=d.batch, help="frames per step")
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--beta", type=float, default=d.beta, help="KL weight")
    t.add_argument("--capacity", type=float, default=d.capacity,
                   help="capacity annealing: final target KL in nats (default: plain beta-VAE)")
    t.add_argument("--capacity-fraction", type=float, default=d.capacity_fraction,
                   help="fraction of the run over which the capacity ramps up")
    t.add_argument("--beta-warmup", type=float, default=d.beta_warmup,
                   help="fraction of the run over which the KL weight ramps from 0 to --beta")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    t.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    t.add_argument("--log-every", type=int, default=d.log_every)
    t.add_argument("--val-every", type=int, default=d.val_every)
    t.add_argument("--val-fraction", type=float, default=d.val_fraction)
    t.add_argument("--recon-samples", type=int, default=d.recon_samples)
    g = t.add_argument_group("model")
    g.add_argument("--image-size", type=int, default=d.image_size,
                   help="side S in px the views are resized to")
    g.add_argument("--latent-dim", type=int, default=d.latent_dim)
    g.add_argument("--channels", type=int, nargs="+", default=d.channels)
    g.add_argument("--view-features", type=int, default=d.view_features)
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default=d.likelihood)
    g.add_argument("--gaussian-sigma", type=float, default=d.gaussian_sigma)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    q = sub.add_parser("probe", formatter_class=fmt,
                       help="linear probe: latent mean -> true 3D keypoints (mm)")
    q.add_argument("checkpoint", type=Path, help="beta-VAE checkpoint (RUN/model.pt)")
    q.add_argument("--labelled", type=Path, nargs="+", required=True,
                   help="labelled dataset directories (not used to train the VAE)")
    q.add_argument("--test", type=Path, nargs="+", default=None,
                   help="labelled datasets for the test split (default: --test-fraction of "
                   "--labelled)")
    q.add_argument("--test-fraction", type=float, default=0.3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--keypoint-model", type=Path, default=None,
                   help="S3K keypoint checkpoint to evaluate on the same test samples")
    q.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    q.add_argument("--out", type=Path, default=None, help="write the result as JSON here")

    r = sub.add_parser("recon", formatter_class=fmt,
                       help="PNG of input views (rows) above their reconstructions")
    r.add_argument("checkpoint", type=Path)
    r.add_argument("--data", type=Path, required=True, help="dataset directory")
    r.add_argument("--out", type=Path, required=True, help="PNG path")
    r.add_argument("--samples", type=int, default=4, help="frames shown")
    r.add_argument("--first", type=int, default=0, help="index of the first frame shown")
    r.add_argument("--scale", type=int, default=2, help="tile enlargement")
    r.add_argument("--threads", type=int, default=1)
    return p


def _print_probe(result: Mapping[str, Any]) -> None:
    t, base = result["test"], result["mean_baseline"]
    print(f"linear probe on {result['num_test']} test samples (ridge alpha {result['alpha']:g},"
          f" fit on {result['num_train']}): median {t['median']:.1f} mm, mean {t['mean']:.1f} "
          f"mm, p90 {t['p90']:.1f} mm; R2 {result['r2']:.3f}; "
          f"{result['active_units_variance']}/{result['latent_dim']} active latents")
    for name, s in t["per_keypoint"].items():
        print(f"  {name}: median {s['median']:.1f} mm")
    print(f"predicting the mean train position: median {base['median']:.1f} mm")
    kp = result.get("keypoint_model")
    if kp:
        print(f"keypoint model {kp['checkpoint']} on the same samples: median "
              f"{kp['median']:.1f} mm, p90 {kp['p90']:.1f} mm")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m agents.beta_vae train|probe|recon ...``; returns the result dict
    (training summary, probe result, or ``{"png": path}``)."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        names = {f.name for f in dataclasses.fields(VAETrainConfig)}
        values = {k: v for k, v in vars(args).items() if k in names}
        summary = train_vae(args.data, args.out, progress_bar=not args.no_progress, **values)
        ev = summary["final_eval"]
        print(f"{summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} {summary['clock']} "
              f"min ({summary['steps_per_s']:.2f} steps/s); {summary['final_eval_on']}: recon "
              f"{ev['recon']:.1f} nats, KL {ev['kl']:.1f} nats, {ev['active_units']}/"
              f"{len(ev['kl_per_dim'])} active latents; weights in {args.out / 'model.pt'}")
        return summary
    torch.set_num_threads(max(1, args.threads))
    if args.command == "probe":
        result = linear_probe(args.checkpoint, args.labelled, test_dir=args.test,
                              test_fraction=args.test_fraction, seed=args.seed,
                              keypoint_model=args.keypoint_model)
        _print_probe(result)
        if args.out is not None:
            atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
            print(f"wrote {args.out}")
        return result
    vae = load_vae(args.checkpoint)
    frames = load_frames(args.data, vae.config.image_size)
    if [frames.num_cameras, *frames.source_size] != [vae.config.num_cameras,
                                                     *vae.config.source_size]:
        raise ValueError(f"{args.data}: {frames.num_cameras} cameras of {frames.source_size} "
                         f"px, the VAE was trained on {vae.config.num_cameras} of "
                         f"{vae.config.source_size}")
    shown = frames.images[args.first:args.first + args.samples]
    if len(shown) == 0:
        raise ValueError(f"{args.data}: no frames from index {args.first} "
                         f"({len(frames.images)} frames)")
    path = save_reconstructions(vae, shown, args.out, args.scale)
    print(f"wrote {path}")
    return {"png": str(path)}


if __name__ == "__main__":
    main()
