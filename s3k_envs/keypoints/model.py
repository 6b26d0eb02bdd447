"""The S3K keypoint network: a small U-Net (S3K Appendix A) shared by every camera.

Layout at a 128 px input (stride 2, channels 16/32/32/32; the defaults are
``stem_convs=1, res_blocks=1``: on this CPU they cost ~15 % less time than 2 and 2 at the
same held-out accuracy in our 8-minute runs)::

    image 3x128x128
      stem   conv3x3/2  -> 16 x 64 x 64   (early stride: heatmaps at 1/2 resolution)
             [conv3x3   -> 16 x 64 x 64   if stem_convs == 2] ----------------- skip 0
      down   conv3x3/2, conv3x3 -> 32 x 32 x 32 ------------------------ skip 1
      down   conv3x3/2, conv3x3 -> 32 x 16 x 16 -------------- skip 2
      down   conv3x3/2          -> 32 x 8 x 8
      ResNet blocks (3 convs, 32 channels, identity shortcut) x res_blocks
      up     1x1 to 32, x2, + skip 2, conv3x3 -> 32 x 16 x 16
      up     1x1 to 32, x2, + skip 1, conv3x3 -> 32 x 32 x 32
      up     1x1 to 16, x2, + skip 0, conv3x3 -> 16 x 64 x 64
      head   conv1x1            -> K x 64 x 64 logits

``skip="add"`` (default) adds the upsampled path (projected by a 1x1 conv to the skip's
channels at the low resolution, where it is cheap) to the skip; ``skip="concat"`` is the
classic U-Net concatenation, which costs ~30 % more inference time on this CPU
(``benchmarks/keypoint_inference.py``; its accuracy was not compared). Upsampling is
nearest-neighbour.

Every conv is followed by BatchNorm and ReLU (except the 1x1 projections and the head).
Each camera image goes through the same network (cameras are folded into the batch
dimension), so the weights are the same for every camera by construction.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s3k_envs.atomic import atomic_open


@dataclass
class ModelConfig:
    """Architecture hyper-parameters (all plain values: stored in checkpoints as a dict).

    Attributes:
        num_keypoints: K, the number of logit maps.
        stride: image pixels per heatmap cell, 1, 2 or 4 (the heatmaps are ``H/stride x
            W/stride``; H and W must be divisible by ``stride * 2**(levels-1)``).
        channels: channels per resolution level, level 0 at ``1/stride`` of the image, each
            next level halves the resolution (16-32 channels as in the paper).
        res_blocks: number of 3-conv ResNet blocks at the lowest resolution.
        res_channels: channels of the inner layers of the ResNet blocks.
        skip: ``"add"`` or ``"concat"`` skip connections (see the module docstring).
        stem_convs: 3x3 convs at the first (``1/stride``) resolution in the encoder, 1 or 2.
    """

    num_keypoints: int
    stride: int = 2
    channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32])
    res_blocks: int = 1
    res_channels: int = 32
    skip: str = "add"
    stem_convs: int = 1

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        if self.num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {self.num_keypoints}")
        if self.stride not in (1, 2, 4):
            raise ValueError(f"stride must be 1, 2 or 4, got {self.stride}")
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"channels: expected >= 2 positive entries, got {self.channels}")
        if self.skip not in ("concat", "add"):
            raise ValueError(f"skip: expected 'concat' or 'add', got {self.skip!r}")
        if self.stem_convs not in (1, 2):
            raise ValueError(f"stem_convs: expected 1 or 2, got {self.stem_convs}")

    @property
    def divisor(self) -> int:
        """Image height and width must be multiples of this."""
        return self.stride * 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """ResNet-style block: 3 convs (3x3, 3x3, 3x3) with an identity shortcut."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(channels, inner),
            _conv_bn_relu(inner, inner),
            nn.Conv2d(inner, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class KeypointUNet(nn.Module):
    """U-Net mapping camera images to K keypoint logit maps (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        stem: list[nn.Module] = []
        if config.stride == 4:
            stem.append(_conv_bn_relu(3, ch[0], stride=2))
            stem.append(_conv_bn_relu(ch[0], ch[0], stride=2))
        else:
            stem.append(_conv_bn_relu(3, ch[0], stride=config.stride))
        if config.stem_convs == 2:
            stem.append(_conv_bn_relu(ch[0], ch[0]))
        self.stem = nn.Sequential(*stem)
        levels = len(ch)
        self.down = nn.ModuleList()
        for lvl in range(1, levels):
            layers = [_conv_bn_relu(ch[lvl - 1], ch[lvl], stride=2)]
            if lvl < levels - 1:
                layers.append(_conv_bn_relu(ch[lvl], ch[lvl]))
            self.down.append(nn.Sequential(*layers))
        self.bottleneck = nn.Sequential(
            *[ResBlock(ch[-1], config.res_channels) for _ in range(config.res_blocks)]
        )
        order = range(levels - 2, -1, -1)
        if config.skip == "concat":
            self.up = nn.ModuleList(
                [_conv_bn_relu(ch[lvl + 1] + ch[lvl], ch[lvl]) for lvl in order]
            )
            self.reduce = nn.ModuleList([nn.Identity() for _ in order])
        else:
            self.up = nn.ModuleList([_conv_bn_relu(ch[lvl], ch[lvl]) for lvl in order])
            self.reduce = nn.ModuleList(
                [nn.Conv2d(ch[lvl + 1], ch[lvl], 1, bias=False) for lvl in order]
            )
        self.head = nn.Conv2d(ch[0], config.num_keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit maps of a batch of images.

        Args:
            x: ``(N, 3, H, W)`` float images (see :func:`preprocess`); H and W multiples of
                ``config.divisor``.

        Returns:
            ``(N, K, H/stride, W/stride)`` logits.
        """
        x = self.stem(x)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = self.bottleneck(skips.pop())
        for up, reduce in zip(self.up, self.reduce, strict=True):
            skip = skips.pop()
            x = F.interpolate(reduce(x), size=skip.shape[-2:], mode="nearest")
            x = up(torch.cat([x, skip], dim=1) if self.config.skip == "concat" else x + skip)
        return self.head(x)

    def forward_views(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for multi-view frames: every camera through the same weights.

        Args:
            images: ``(B, C, H, W, 3)`` uint8 (or float in [0, 255]).

        Returns:
            ``(B, C, K, H/stride, W/stride)`` logits.
        """
        if images.ndim != 5 or images.shape[-1] != 3:
            raise ValueError(f"images: expected shape (B, C, H, W, 3), got {tuple(images.shape)}")
        b, c, h, w, _ = images.shape
        div = self.config.divisor
        if h % div or w % div:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of {div} (stride {self.config.stride}, "
                f"{len(self.config.channels)} levels)"
            )
        logits = self(preprocess(images.reshape(b * c, h, w, 3)))
        return logits.reshape(b, c, *logits.shape[1:])


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3)`` RGB, uint8 or float in [0, 255] -> ``(N, 3, H, W)`` float32 in
    [-0.5, 0.5] (the input is never modified).

    The result has channels-last strides (the permutation copies no data), which is what
    ``torch.channels_last`` convolutions want.
    """
    x = images.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        return x.float().mul_(1.0 / 255.0).sub_(0.5)
    return x.float() * (1.0 / 255.0) - 0.5


@torch.no_grad()
def fuse_batchnorm(model: KeypointUNet) -> KeypointUNet:
    """Fold every eval-mode BatchNorm into the preceding conv (in place; for inference).

    Returns the model, whose BatchNorm layers are replaced by identities and whose convs
    gain biases; outputs equal the eval-mode outputs up to float rounding.
    """

    def fold(seq: nn.Module) -> None:
        for child in list(seq.children()):
            fold(child)
        children = list(seq.named_children())
        for (_, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale[:, None, None, None])
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                new_bias = (bias - bn.running_mean) * scale + bn.bias
                conv.bias = nn.Parameter(new_bias)
                setattr(seq, bn_name, nn.Identity())

    model.eval()
    fold(model)
    return model


# ------------------------------------------------------------------------------ checkpoints

CHECKPOINT_FORMAT = "s3k-keypoint-model"
CHECKPOINT_VERSION = 1
#: Keys every checkpoint config must have (plain JSON-like values).
REQUIRED_CONFIG_KEYS = ("keypoint_names", "num_cameras", "image_size", "sigma", "stride",
                        "channels")


class CheckpointError(ValueError):
    """A file is not a usable S3K keypoint checkpoint (the message names the file)."""


def model_config_from(config: dict[str, Any]) -> ModelConfig:
    """The :class:`ModelConfig` described by a checkpoint config dict."""
    fields = {k: v for k, v in config.items() if k in ModelConfig.__dataclass_fields__}
    fields["num_keypoints"] = len(config["keypoint_names"])
    return ModelConfig(**fields)


def build_model(config: dict[str, Any]) -> KeypointUNet:
    """A freshly initialised :class:`KeypointUNet` for a checkpoint config dict."""
    return KeypointUNet(model_config_from(config))


def checkpoint_dict(model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint payload: format, version, plain config and the model's state_dict."""
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"checkpoint config lacks {missing}")
    # CPU tensors: a checkpoint written on a GPU loads on a laptop without map_location.
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": dict(config),
        "state_dict": state,
    }


def read_torch_file(path: str | os.PathLike[str], what: str,
                    error: type[Exception] = ValueError) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` (no code in the file
    runs); an unreadable file raises ``error`` naming the file, ``what`` it should be and
    torch's reason (unpickling errors come in many types)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise error(f"{path}: not a readable {what} (torch.load with weights_only=True "
                    f"failed: {type(exc).__name__}: {reason})") from exc


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the same directory, fsync, then ``os.replace``:
    a crash at any point leaves either the old file or the new one, never a partial file."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return path


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    config: dict[str, Any]) -> Path:
    """Write a model checkpoint atomically (see :func:`checkpoint_dict`)."""
    return atomic_torch_save(checkpoint_dict(model, config), path)


def validate_checkpoint(payload: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check format, version and config of a loaded checkpoint payload; returns it."""
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(
            f"{path}: not an s3k keypoint checkpoint (expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}, got {type(payload).__name__})"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: format is {payload['format']!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this s3k reads version "
            f"{CHECKPOINT_VERSION})"
        )
    config = payload.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config is missing or not a dict")
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{path}: config lacks {missing}")
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: state_dict is missing or not a dict")
    return payload


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[KeypointUNet, dict[str, Any]]:
    """Load a model checkpoint with ``torch.load(weights_only=True)``.

    Returns:
        ``(model, config)``: the model (eval mode, CPU) and its plain config dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a checkpoint, has another format or version, or its
            weights do not fit its config; the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    payload = read_torch_file(path, "s3k keypoint checkpoint", CheckpointError)
    payload = validate_checkpoint(payload, path)
    config = payload["config"]
    try:
        model = build_model(config)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: weights do not match the config "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    return model.eval(), config
