"""Inference: images + calibration -> 3D keypoints, with a trained S3K checkpoint.

>>> predictor = KeypointPredictor.load("runs/box/model.pt")
>>> pred = predictor.predict(obs["images"], obs["intrinsics"], obs["extrinsics"])
>>> pred.points_3d            # (K, 3) metres, world frame
>>> pred.keypoints_2d         # (C, K, 2) pixels, per camera
>>> pred.confidence           # (C, K) Appendix-B weights in (0.047, 0.953)

Inputs may carry a leading batch dimension (several envs at once): ``images (B, C, H, W, 3)``
gives ``points_3d (B, K, 3)`` and so on. Inference runs under ``torch.inference_mode`` with
BatchNorm folded into the convolutions and channels-last tensors (both measured faster on
CPU, see ``benchmarks/keypoint_inference.py``).

The 2D estimate of a view is the mean of its heatmap inside a window of ``window_px``
pixels around the peak (the checkpoint's choice, by default ``3 sigma``; ``None`` = the plain
soft-argmax mean over the whole heatmap); its weight in the triangulation is the
Appendix-B confidence computed from the variance of the *whole* heatmap, so a view whose
mass is split between candidates counts less.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from s3k_envs.geometry import confidence_weight, pixel_rays, triangulate
from s3k_envs.keypoints.heatmaps import heatmap_moments, spatial_softmax, windowed_moments
from s3k_envs.keypoints.losses import triangulate_views
from s3k_envs.keypoints.model import KeypointUNet, fuse_batchnorm, load_checkpoint


@dataclass
class Decoded:
    """Torch outputs of :func:`decode_heatmaps` (leading dims ``(B,)``).

    Attributes:
        points_3d: ``(B, K, 3)`` m. keypoints_2d: ``(B, C, K, 2)`` px.
        confidence: ``(B, C, K)``. variance: ``(B, C, K)`` px² of the whole heatmap.
        probs: ``(B, C, K, h, w)`` heatmaps.
    """

    points_3d: torch.Tensor
    keypoints_2d: torch.Tensor
    confidence: torch.Tensor
    variance: torch.Tensor
    probs: torch.Tensor


def decode_heatmaps(
    logits: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    sigma: float,
    stride: float,
    window_px: float | None,
) -> Decoded:
    """Heatmap logits -> 2D means, confidences and weighted-triangulated 3D points.

    Args:
        logits: ``(B, C, K, h, w)``.
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        sigma: the training target width (px), scale of the confidence weights.
        stride: px per heatmap cell.
        window_px: half-width of the peak window (px), or None for the plain mean.
    """
    probs = spatial_softmax(logits.float())
    mean, var = heatmap_moments(probs, stride)
    if window_px is not None:
        mean, _, _ = windowed_moments(probs, stride, window_px)
    conf = confidence_weight(var, sigma)
    points = triangulate_views(
        mean.double(), conf.double(), intrinsics.double(), extrinsics.double()
    ).float()
    return Decoded(points, mean, conf, var, probs)


# ------------------------------------------------------------------------------ fast decode
# The same decoding as :func:`decode_heatmaps`, organised for inference speed: the few
# full-size operations (softmax, marginals, peak search) run in torch (multi-threaded), the
# peak windows are cut out as small patches and everything after that runs in numpy, where
# the many tiny operations cost ~1 us each instead of ~5-10 us of torch dispatch.
# tests/test_keypoint_model.py checks that both decoders agree.


def _np_window(patch: np.ndarray, edges_u: np.ndarray, edges_v: np.ndarray, stride: float,
               centre: np.ndarray, radius: float) -> np.ndarray:
    """Window mean (see :func:`heatmaps.windowed_moments`) on patches.

    Args:
        patch: ``(n, P, P)`` heatmap patches. edges_u / edges_v: ``(n, P)`` left / top edges
            of the patch cells in image pixels. centre: ``(n, 2)`` window centres, px.
    """
    lo_u = np.maximum(edges_u, centre[:, :1] - radius)
    hi_u = np.minimum(edges_u + stride, centre[:, :1] + radius)
    lo_v = np.maximum(edges_v, centre[:, 1:] - radius)
    hi_v = np.minimum(edges_v + stride, centre[:, 1:] + radius)
    fu = np.maximum(hi_u - lo_u, 0.0)
    fv = np.maximum(hi_v - lo_v, 0.0)
    pu = np.einsum("nij,ni->nj", patch, fv) * fu
    pv = np.einsum("nij,nj->ni", patch, fu) * fv
    inv = 1.0 / np.maximum(pu.sum(-1), 1e-30)
    return np.stack([(pu * (lo_u + hi_u)).sum(-1) * inv,
                     (pv * (lo_v + hi_v)).sum(-1) * inv], axis=-1) * 0.5


def fast_windowed_mean(probs: torch.Tensor, stride: float, radius: float, iterations: int = 2
                       ) -> np.ndarray:
    """:func:`heatmaps.windowed_moments` (mean only) on ``(..., h, w)`` heatmaps, as numpy
    ``(..., 2)``. Only a patch of ``radius / stride + 2`` cells around each peak is read, so
    a window that drifts further than 2 cells from the highest cell (only possible for flat
    or multimodal heatmaps) is truncated there."""
    lead, (h, w) = probs.shape[:-2], probs.shape[-2:]
    flat = probs.reshape(-1, h, w)
    n = flat.shape[0]
    row = flat.amax(-1).argmax(-1)
    col = torch.gather(flat, 1, row[:, None, None].expand(n, 1, w))[:, 0].argmax(-1)
    row, col = row.numpy(), col.numpy()
    half = int(np.ceil(radius / stride)) + 2
    size = 2 * half + 1
    padded = np.pad(flat.numpy(), ((0, 0), (half, half), (half, half)))
    offs = np.arange(size)
    patch = padded[np.arange(n)[:, None, None], (row[:, None] + offs)[:, :, None],
                   (col[:, None] + offs)[:, None, :]].astype(np.float64)
    edges_v = (row[:, None] - half + offs) * float(stride)
    edges_u = (col[:, None] - half + offs) * float(stride)
    centre = (np.stack([col, row], axis=-1) + 0.5) * float(stride)
    centre = _np_window(patch, edges_u, edges_v, stride, centre, 1.5 * stride)
    for _ in range(iterations):
        centre = _np_window(patch, edges_u, edges_v, stride, centre, radius)
    return centre.reshape(*lead, 2)


def decode_for_inference(
    logits: torch.Tensor,
    intrinsics: np.ndarray,
    extrinsics: np.ndarray,
    sigma: float,
    stride: float,
    window_px: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """:func:`decode_heatmaps` for inference (same results, faster on CPU).

    Args:
        logits: ``(B, C, K, h, w)`` torch. intrinsics ``(B, C, 3, 3)``, extrinsics
            ``(B, C, 4, 4)`` numpy.

    Returns:
        points ``(B, K, 3)``, means ``(B, C, K, 2)``, confidences ``(B, C, K)`` as float32
        numpy, and the heatmaps ``(B, C, K, h, w)`` (torch).
    """
    probs = spatial_softmax(logits.float())
    h, w = probs.shape[-2:]
    pu = probs.sum(-2).double().numpy()  # (..., w)
    pv = probs.sum(-1).double().numpy()  # (..., h)
    us = (np.arange(w) + 0.5) * stride
    vs = (np.arange(h) + 0.5) * stride
    mean_u, mean_v = pu @ us, pv @ vs
    var = 0.5 * ((pu * (us - mean_u[..., None]) ** 2).sum(-1)
                 + (pv * (vs - mean_v[..., None]) ** 2).sum(-1))
    mean = (np.stack([mean_u, mean_v], axis=-1) if window_px is None
            else fast_windowed_mean(probs, stride, window_px))
    conf = confidence_weight(var, sigma)
    origins, dirs = pixel_rays(mean, np.asarray(intrinsics, np.float64),
                               np.asarray(extrinsics, np.float64))  # (B, C, K, 3)
    points = triangulate(np.swapaxes(origins, -3, -2), np.swapaxes(dirs, -3, -2),
                         np.swapaxes(conf, -2, -1))
    return (points.astype(np.float32), mean.astype(np.float32), conf.astype(np.float32),
            probs)


@dataclass
class Prediction:
    """Numpy outputs of :meth:`KeypointPredictor.predict` (no batch dim if none came in).

    Attributes:
        points_3d: ``(B, K, 3)`` float32, m, world frame.
        keypoints_2d: ``(B, C, K, 2)`` float32, px.
        confidence: ``(B, C, K)`` float32, Appendix-B weights.
        heatmaps: ``(B, C, K, h, w)`` float32 probabilities, when asked for.
    """

    points_3d: np.ndarray
    keypoints_2d: np.ndarray
    confidence: np.ndarray
    heatmaps: np.ndarray | None = None


class KeypointPredictor:
    """A trained S3K model ready for inference (CPU by default)."""

    def __init__(
        self,
        model: KeypointUNet,
        config: dict[str, Any],
        device: str | torch.device = "cpu",
        fuse: bool = True,
        channels_last: bool = True,
    ) -> None:
        self.config = dict(config)
        from s3k_envs.device import resolve_device

        self.device = resolve_device(device)
        model = model.eval()
        if fuse:
            fuse_batchnorm(model)
        model = model.to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.keypoint_names: list[str] = list(config["keypoint_names"])
        self.num_cameras = int(config["num_cameras"])
        self.image_size = (int(config["image_size"][0]), int(config["image_size"][1]))
        self.sigma = float(config["sigma"])
        self.stride = int(config["stride"])
        self.window_px: float | None = config.get("window_px", 3.0 * self.sigma)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
             **kwargs: Any) -> KeypointPredictor:
        """Load a checkpoint written by ``s3k train`` (see :func:`model.load_checkpoint`)."""
        model, config = load_checkpoint(path)
        return cls(model, config, device=device, **kwargs)

    def _check(self, images: Any, intrinsics: Any, extrinsics: Any) -> tuple[Any, Any, Any, bool]:
        images = np.asarray(images) if not isinstance(images, torch.Tensor) else images
        batched = images.ndim == 5
        if images.ndim not in (4, 5) or images.shape[-1] != 3:
            raise ValueError(
                f"images: expected (C, H, W, 3) or (B, C, H, W, 3) uint8, got shape "
                f"{tuple(images.shape)}"
            )
        if images.dtype not in (np.uint8, torch.uint8):
            raise ValueError(f"images: expected dtype uint8, got {images.dtype}")
        c, h, w = images.shape[-4:-1]
        if c != self.num_cameras:
            raise ValueError(
                f"images: the model was trained for {self.num_cameras} cameras, got {c}"
            )
        if (h, w) != self.image_size:
            raise ValueError(
                f"images: the model was trained on {self.image_size[0]}x{self.image_size[1]} "
                f"images, got {h}x{w}"
            )
        lead = tuple(images.shape[:-3])
        intrinsics = torch.as_tensor(np.asarray(intrinsics, dtype=np.float64))
        extrinsics = torch.as_tensor(np.asarray(extrinsics, dtype=np.float64))
        for name, arr, tail in (("intrinsics", intrinsics, (3, 3)),
                                ("extrinsics", extrinsics, (4, 4))):
            if tuple(arr.shape) != (*lead, *tail):
                raise ValueError(
                    f"{name}: expected shape {(*lead, *tail)} to match images "
                    f"{tuple(images.shape)}, got {tuple(arr.shape)}"
                )
            if not torch.isfinite(arr).all():
                raise ValueError(f"{name}: contains NaN or inf")
        return images, intrinsics, extrinsics, batched

    @torch.inference_mode()
    def predict(
        self,
        images: np.ndarray | torch.Tensor,
        intrinsics: np.ndarray | torch.Tensor,
        extrinsics: np.ndarray | torch.Tensor,
        return_heatmaps: bool = False,
    ) -> Prediction:
        """3D keypoints from C calibrated views (optionally batched over B frames).

        Args:
            images: ``(C, H, W, 3)`` or ``(B, C, H, W, 3)`` uint8 RGB.
            intrinsics: ``(C, 3, 3)`` / ``(B, C, 3, 3)``, px.
            extrinsics: ``(C, 4, 4)`` / ``(B, C, 4, 4)`` world->camera (OpenCV axes).
            return_heatmaps: also return the ``(…, C, K, h, w)`` heatmaps.

        Returns:
            :class:`Prediction` with ``points_3d (…, K, 3)``, ``keypoints_2d (…, C, K, 2)``,
            ``confidence (…, C, K)``.
        """
        images, intrinsics, extrinsics, batched = self._check(images, intrinsics, extrinsics)
        imgs = torch.as_tensor(images)
        if not batched:
            imgs, intrinsics, extrinsics = imgs[None], intrinsics[None], extrinsics[None]
        logits = self.model.forward_views(imgs.to(self.device)).cpu()
        points, uv, conf, probs = decode_for_inference(
            logits, intrinsics.numpy(), extrinsics.numpy(), self.sigma, self.stride,
            self.window_px)
        out = Prediction(points_3d=points, keypoints_2d=uv, confidence=conf,
                         heatmaps=probs.numpy() if return_heatmaps else None)
        if not batched:
            out = Prediction(
                out.points_3d[0], out.keypoints_2d[0], out.confidence[0],
                None if out.heatmaps is None else out.heatmaps[0],
            )
        return out
