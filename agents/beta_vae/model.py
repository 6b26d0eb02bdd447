"""The beta-VAE itself: configuration, image resizing, the network, its loss and its
checkpoints (``model.pt``; see the package docstring, :mod:`agents.beta_vae`)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s3k_envs.keypoints.model import atomic_torch_save
from s3k_envs.keypoints.model import read_torch_file as _read_torch

PathLike = str | os.PathLike[str]
CHECKPOINT_FORMAT = "s3k-beta-vae"
CHECKPOINT_VERSION = 1
STATE_FORMAT = "s3k-beta-vae-train-state"
STATE_VERSION = 1
#: A latent dimension whose KL to the prior (nats, mean over frames) exceeds this is active.
ACTIVE_KL_NATS = 0.05
#: Burda et al.'s activity test: the variance over frames of a latent mean exceeds this.
ACTIVE_VARIANCE = 0.01


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


def read_torch_file(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file:
    FileNotFoundError, or :class:`VAECheckpointError` for an unreadable ``what``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    return _read_torch(path, what, VAECheckpointError)


def load_vae(path: PathLike, device: str | torch.device = "cpu") -> BetaVAE:
    """Load a checkpoint written by :func:`save_vae` / ``train`` (``weights_only=True``).

    Returns:
        The :class:`BetaVAE` in eval mode on ``device``.

    Raises:
        FileNotFoundError: no such file.
        VAECheckpointError: see :func:`vae_from_payload` (also for unreadable files).
    """
    path = Path(path)
    return vae_from_payload(read_torch_file(path, "beta-VAE checkpoint"), path).to(device)
