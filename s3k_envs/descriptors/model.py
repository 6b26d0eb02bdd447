"""The dense descriptor network and its checkpoints.

The network is the S3K U-Net (:class:`s3k_envs.keypoints.model.KeypointUNet`, the same
backbone, stride and skips) with a D-channel head: it maps an image ``(3, H, W)`` to a
descriptor map ``(D, H/stride, W/stride)``. Descriptor cell ``(i, j)`` describes image pixel
``((j + 0.5) * stride, (i + 0.5) * stride)`` (the heatmap convention of
:mod:`s3k_envs.keypoints.heatmaps`). Every camera goes through the same weights.

A checkpoint is a dict ``{"format": "s3k-descriptor-model", "format_version": 1, "config":
{...plain values...}, "state_dict": ..., "references": {...} or None, "train_state": ...}``,
saved atomically and loaded with ``torch.load(weights_only=True)``. ``references`` (after
:func:`s3k_envs.descriptors.keypoints.select_references`) holds the K reference descriptors
that define the keypoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s3k_envs.keypoints.model import (
    KeypointUNet,
    ModelConfig,
    atomic_torch_save,
    preprocess,
    read_torch_file,
)

CHECKPOINT_FORMAT = "s3k-descriptor-model"
CHECKPOINT_VERSION = 1
#: Keys every descriptor checkpoint config has.
REQUIRED_CONFIG_KEYS = ("descriptor_dim", "stride", "channels", "image_size", "kernel_width")


class DescriptorCheckpointError(ValueError):
    """A file is not a usable descriptor checkpoint (the message names the file)."""


def model_config(config: dict[str, Any]) -> ModelConfig:
    """The U-Net configuration of a descriptor config dict (``descriptor_dim`` output
    channels instead of keypoint logit maps)."""
    dim = int(config["descriptor_dim"])
    if not 1 <= dim <= 64:
        raise ValueError(f"descriptor_dim: expected 1..64, got {dim}")
    fields = {k: v for k, v in config.items() if k in ModelConfig.__dataclass_fields__}
    fields["num_keypoints"] = dim
    return ModelConfig(**fields)


class DescriptorNet(nn.Module):
    """Images -> dense descriptor maps (the S3K U-Net with a D-channel head).

    Args:
        config: plain dict with ``descriptor_dim`` (D), ``stride``, ``channels`` and the other
            :class:`~s3k_envs.keypoints.model.ModelConfig` fields.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.unet = KeypointUNet(model_config(config))
        self.descriptor_dim = int(config["descriptor_dim"])
        self.stride = int(self.unet.config.stride)

    @property
    def divisor(self) -> int:
        """Image height and width must be multiples of this."""
        return self.unet.config.divisor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Descriptor maps of camera images.

        Args:
            images: ``(N, H, W, 3)`` uint8 (or float in [0, 255]); H and W multiples of
                :attr:`divisor`.

        Returns:
            ``(N, D, H/stride, W/stride)`` float32 descriptors.
        """
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected (N, H, W, 3), got {tuple(images.shape)}")
        h, w = images.shape[1:3]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"image size {h}x{w} is not a multiple of {self.divisor} "
                             f"(stride {self.stride}, {len(self.unet.config.channels)} levels)")
        return self.unet(preprocess(images))


def sample_descriptors(maps: torch.Tensor, uv: torch.Tensor, image_size: tuple[int, int]
                       ) -> torch.Tensor:
    """Bilinear descriptors at pixel positions.

    Args:
        maps: ``(N, D, h, w)`` descriptor maps of images of ``image_size = (H, W)`` px.
        uv: ``(N, M, 2)`` positions (u, v), px (top-left corner origin).

    Returns:
        ``(N, M, D)``; positions between cell centres are interpolated, positions outside
        the outermost centres take the border value.
    """
    height, width = image_size
    grid = torch.stack([uv[..., 0] * (2.0 / width) - 1.0, uv[..., 1] * (2.0 / height) - 1.0],
                       dim=-1)[:, :, None, :]  # (N, M, 1, 2)
    out = F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)  # (N, D, M, 1)
    return out[..., 0].transpose(1, 2)


def descriptor_logits(maps: torch.Tensor, queries: torch.Tensor, kernel_width: float
                      ) -> torch.Tensor:
    """Heatmap logits of query descriptors: ``-|D(cell) - q|^2 / kernel_width^2``.

    Args:
        maps: ``(N, D, h, w)`` descriptor maps.
        queries: ``(N, M, D)`` descriptors to look for, M per map.
        kernel_width: descriptor-space width of the kernel ``exp(-|d - q|^2 / width^2)``.

    Returns:
        ``(N, M, h, w)`` logits (their spatial softmax is the match distribution).
    """
    n, d, h, w = maps.shape
    flat = maps.reshape(n, d, h * w)
    # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, one batched matmul
    dist = ((flat * flat).sum(1)[:, None, :] - 2.0 * queries @ flat
            + (queries * queries).sum(-1)[..., None]).clamp_min(0.0)
    return (-dist / kernel_width**2).reshape(n, -1, h, w)


# ------------------------------------------------------------------------------ checkpoints


def save_checkpoint(path: str | os.PathLike[str], model: DescriptorNet, config: dict[str, Any],
                    references: dict[str, Any] | None = None,
                    train_state: dict[str, Any] | None = None) -> Path:
    """Write a descriptor checkpoint atomically (see the module docstring).

    Args:
        references: ``{"descriptors": (K, D) tensor, "names": [...], "object_points": (K, 3)
            tensor or None, ...}`` or None.
        train_state: optimizer state, step and CPU seconds for resuming, or None.
    """
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"descriptor checkpoint config lacks {missing}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": dict(config),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "references": references,
        "train_state": train_state,
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a descriptor checkpoint (``torch.load(weights_only=True)``: no code runs).

    Returns:
        The payload with an extra ``"model"``: the :class:`DescriptorNet` (eval mode, CPU).

    Raises:
        FileNotFoundError: no such file. DescriptorCheckpointError: not a descriptor
            checkpoint, another format version, or weights that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such descriptor checkpoint")
    payload = read_torch_file(path, "descriptor checkpoint", DescriptorCheckpointError)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise DescriptorCheckpointError(
            f"{path}: format {found!r}, expected {CHECKPOINT_FORMAT!r} (an S3K keypoint "
            "checkpoint is read by s3k_envs.keypoints, not here)")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise DescriptorCheckpointError(
            f"{path}: format_version {payload.get('format_version')!r} is not supported "
            f"(this s3k reads version {CHECKPOINT_VERSION})")
    config = payload.get("config")
    if not isinstance(config, dict) or any(k not in config for k in REQUIRED_CONFIG_KEYS):
        raise DescriptorCheckpointError(f"{path}: config missing or lacks one of "
                                        f"{list(REQUIRED_CONFIG_KEYS)}")
    try:
        model = DescriptorNet(config)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise DescriptorCheckpointError(
            f"{path}: weights do not match the config "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    payload["model"] = model.eval()
    return payload
