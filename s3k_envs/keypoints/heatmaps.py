"""Heatmaps of the S3K model: spatial softmax, moments, Gaussian targets, peak-windowed means.

The model outputs one logit map per camera and keypoint at a lower resolution than the
image, with a **stride** ``s`` (image pixels per heatmap cell, 1, 2 or 4). Heatmap cell
``(i, j)`` (row, column) covers image pixels ``[j*s, (j+1)*s) x [i*s, (i+1)*s)`` and its
centre is at image pixel coordinates ``((j + 0.5) * s, (i + 0.5) * s)``; with ``s = 1`` this
is exactly the pixel-centre convention of ``docs/conventions.md``. Every position, mean, width
and variance in this module is in **image pixels** (u = column, v = row, origin at the
top-left image corner), whatever the stride, so heatmaps of different strides compare
directly and feed :func:`s3k_envs.geometry.pixel_rays` unchanged.

Moments are taken over cell centres (``var`` is the per-axis variance, the mean of the u-
and v-variances, so a target Gaussian of width ``sigma`` has ``var ~ sigma**2``).

All functions work on torch tensors with any leading dimensions ``(...)``, e.g.
``(B, C, K)`` for B samples, C cameras and K keypoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cell_centres(
    size: int,
    stride: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Image-pixel coordinates of the centres of ``size`` heatmap cells along one axis.

    Returns:
        ``(size,)`` ``(arange(size) + 0.5) * stride``.
    """
    return (torch.arange(size, dtype=dtype, device=device) + 0.5) * stride


def log_spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``log P``: log-softmax over the two last (spatial) dimensions.

    Args:
        logits: ``(..., h, w)`` unnormalised log-probabilities.

    Returns:
        ``(..., h, w)`` log-probabilities, ``logsumexp`` over ``(h, w)`` = 0.
    """
    if logits.ndim < 2:
        raise ValueError(f"logits: expected shape (..., h, w), got {tuple(logits.shape)}")
    shape = logits.shape
    flat = logits.reshape(*shape[:-2], shape[-2] * shape[-1])
    return F.log_softmax(flat, dim=-1).reshape(shape)


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``P = softmax`` over the two last (spatial) dimensions: ``(..., h, w)`` -> same shape."""
    if logits.ndim < 2:
        raise ValueError(f"logits: expected shape (..., h, w), got {tuple(logits.shape)}")
    shape = logits.shape
    return torch.softmax(logits.reshape(*shape[:-2], shape[-2] * shape[-1]), -1).reshape(shape)


def heatmap_moments(
    probs: torch.Tensor, stride: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-axis variance of normalised heatmaps, in image pixels.

    Args:
        probs: ``(..., h, w)`` non-negative, summing to 1 over ``(h, w)``.
        stride: image pixels per heatmap cell.

    Returns:
        mean: ``(..., 2)`` ``(u, v)`` = sum of ``P`` times the cell-centre coordinates, px.
        var: ``(...)`` ``(var_u + var_v) / 2`` in px², about the mean.
    """
    if probs.ndim < 2:
        raise ValueError(f"probs: expected shape (..., h, w), got {tuple(probs.shape)}")
    h, w = probs.shape[-2:]
    us = cell_centres(w, stride, dtype=probs.dtype, device=probs.device)
    vs = cell_centres(h, stride, dtype=probs.dtype, device=probs.device)
    pu = probs.sum(-2)  # (..., w) marginal over rows
    pv = probs.sum(-1)  # (..., h)
    mean_u = (pu * us).sum(-1)
    mean_v = (pv * vs).sum(-1)
    var_u = (pu * (us - mean_u[..., None]) ** 2).sum(-1)
    var_v = (pv * (vs - mean_v[..., None]) ** 2).sum(-1)
    return torch.stack([mean_u, mean_v], dim=-1), 0.5 * (var_u + var_v)


def peak_cell_centre(probs: torch.Tensor, stride: float) -> torch.Tensor:
    """Image-pixel centre ``(u, v)`` of each heatmap's highest cell: ``(..., h, w) -> (..., 2)``.

    No gradient (argmax).
    """
    p = probs.detach()
    w = p.shape[-1]
    row = p.amax(-1).argmax(-1)  # two small argmaxes: much faster than one over h*w on CPU
    index = row[..., None, None].expand(*row.shape, 1, w)
    col = torch.gather(p, -2, index).squeeze(-2).argmax(-1)
    return (torch.stack([col, row], dim=-1).to(probs.dtype) + 0.5) * stride


def _coverage(size: int, stride: float, centre: torch.Tensor, radius: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell overlap of ``[centre - radius, centre + radius]`` along one axis.

    Args:
        size: cells along the axis. centre: ``(...)`` px. radius: px.

    Returns:
        fraction ``(..., size)`` of each cell inside the interval (0..1) and the centre
        ``(..., size)`` of the covered part of each cell, px (any value where the fraction
        is 0).
    """
    edges = torch.arange(size, dtype=centre.dtype, device=centre.device) * stride
    lo = torch.maximum(edges, (centre - radius)[..., None])
    hi = torch.minimum(edges + stride, (centre + radius)[..., None])
    return (hi - lo).clamp_(0.0, stride) * (1.0 / stride), (lo + hi) * 0.5


def _window_mean(probs: torch.Tensor, stride: float, centre: torch.Tensor, radius: float,
                 with_var: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Moments of ``probs`` inside the window ``centre ± radius`` (``centre (..., 2)`` px)."""
    h, w = probs.shape[-2:]
    if h == w:  # both axes at once: fewer (small) ops
        frac, mid = _coverage(w, stride, centre, radius)  # (..., 2, w): u then v
        fu, fv = frac[..., 0, :], frac[..., 1, :]
    else:
        fu, mu = _coverage(w, stride, centre[..., 0], radius)
        fv, mv = _coverage(h, stride, centre[..., 1], radius)
    pu = (probs * fv[..., :, None]).sum(-2) * fu  # (..., w) window mass per column
    pv = (probs * fu[..., None, :]).sum(-1) * fv  # (..., h) window mass per row
    mass = pu.sum(-1)
    inv = (1.0 / mass.clamp_min(1e-12))[..., None]
    if h == w:
        marg = torch.stack([pu, pv], dim=-2)  # (..., 2, w)
        mean = (marg * mid).sum(-1) * inv
        var = ((marg * (mid - mean[..., None]) ** 2).sum(-1) * inv).mean(-1) if with_var else None
        return mean, var, mass
    mean = torch.stack([(pu * mu).sum(-1), (pv * mv).sum(-1)], dim=-1) * inv
    if not with_var:
        return mean, None, mass
    var_u = (pu * (mu - mean[..., 0:1]) ** 2).sum(-1)
    var_v = (pv * (mv - mean[..., 1:2]) ** 2).sum(-1)
    return mean, 0.5 * (var_u + var_v) * inv[..., 0], mass


def windowed_moments(
    probs: torch.Tensor, stride: float, radius: float, iterations: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean around each heatmap's peak ("windowed soft-argmax").

    The plain soft-argmax mean of a bimodal heatmap lands between its modes; here only the
    mass inside a square window of half-width ``radius`` around the peak counts. The window
    is placed first around the highest cell (``3 x 3`` cells), then ``iterations`` times
    around the mean found in the previous window, so it ends centred on the mode to sub-cell
    precision and truncates it symmetrically. Cells cut by the window edge count with the
    fraction of their area inside (mass taken as uniform over a cell, at the centre of the
    covered part), which keeps the estimate continuous in the heatmap and free of the bias
    of a window snapped to whole cells (residual bias on a sampled Gaussian: < 0.01 px at
    stride 2, sigma 2.5 px). Gradients flow through the probabilities (and the window position).

    Args:
        probs: ``(..., h, w)`` normalised heatmaps.
        stride: image pixels per cell.
        radius: window half-width in image pixels (e.g. ``3 * sigma``).
        iterations: re-centrings of the ``radius`` window (>= 1).

    Returns:
        mean: ``(..., 2)`` px, the mean of the renormalised window.
        var: ``(...)`` px², the per-axis variance inside the window.
        peak_mass: ``(...)`` the probability mass inside the window, in (0, 1]: close to 1
            for a unimodal heatmap, smaller when mass sits elsewhere (a second candidate or
            a wide spread).
    """
    centre, _, _ = _window_mean(probs, stride, peak_cell_centre(probs, stride), 1.5 * stride,
                                with_var=False)
    for _ in range(iterations - 1):
        centre, _, _ = _window_mean(probs, stride, centre, radius, with_var=False)
    mean, var, mass = _window_mean(probs, stride, centre, radius)
    assert var is not None
    return mean, var, mass


def log_gaussian_heatmaps(
    uv: torch.Tensor, height: int, width: int, stride: float, sigma: float
) -> torch.Tensor:
    """Log of normalised Gaussian target heatmaps centred at image points.

    ``H(i, j) ∝ exp(-((u_j - u)^2 + (v_i - v)^2) / (2 sigma^2))`` at the cell centres
    ``(u_j, v_i)``, normalised to sum to 1 over the ``height x width`` cells. Computed as the
    sum of two 1-D log-softmaxes, so it stays finite (and normalised: the mass then sits at
    the border nearest to the point) even for points far outside the image.

    Args:
        uv: ``(..., 2)`` centres ``(u, v)`` in image pixels.
        height: heatmap rows h.
        width: heatmap columns w.
        stride: image pixels per cell.
        sigma: Gaussian width in image pixels.

    Returns:
        ``(..., h, w)`` ``log H``; ``logsumexp`` over ``(h, w)`` = 0.
    """
    if uv.shape[-1:] != (2,):
        raise ValueError(f"uv: expected shape (..., 2), got {tuple(uv.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (pixels), got {sigma!r}")
    us = cell_centres(width, stride, dtype=uv.dtype, device=uv.device)
    vs = cell_centres(height, stride, dtype=uv.dtype, device=uv.device)
    log_u = F.log_softmax(-((us - uv[..., 0:1]) ** 2) / (2.0 * sigma**2), dim=-1)  # (..., w)
    log_v = F.log_softmax(-((vs - uv[..., 1:2]) ** 2) / (2.0 * sigma**2), dim=-1)  # (..., h)
    return log_v[..., :, None] + log_u[..., None, :]


def gaussian_heatmaps(
    uv: torch.Tensor, height: int, width: int, stride: float, sigma: float
) -> torch.Tensor:
    """Normalised Gaussian target heatmaps ``(..., h, w)``; see :func:`log_gaussian_heatmaps`."""
    return log_gaussian_heatmaps(uv, height, width, stride, sigma).exp()
