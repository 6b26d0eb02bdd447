"""The correspondence loss of "Keypoints into the Future" (heatmap + spatial expectation +
expected depth), for descriptor maps of two views of the same instant.

For a match ``(uv_a -> uv_b)`` with B-depth ``z_b`` and the descriptor ``q = D_A(uv_a)``
(bilinear), the match distribution in view B is ``P = softmax(-|D_B - q|^2 / tau^2)`` over
B's descriptor cells (``tau`` = ``kernel_width``). Three terms, averaged over matches:

* heatmap L2: ``sum_cells (exp(-|D_B - q|^2 / tau^2) - T)^2 / n_T``, the unnormalised kernel
  against the Gaussian target ``T = exp(-|c - uv_b|^2 / (2 sigma^2))`` at the cell centres
  ``c`` (``sigma`` in px); ``n_T = sum_cells T`` (the target's area in cells) makes the term
  O(1) whatever the resolution. It pushes every other cell's descriptor at least ``tau``
  away from ``q``: this is what makes descriptors distinctive.
* spatial expectation L1: ``|E_P[c] - uv_b|_1`` in px.
* expected depth L1: ``|E_P[depth_B] - z_b|`` in m, with ``depth_B`` the rendered depth at
  the cell centres (it penalises mass on the wrong surface even where it is close in the
  image, e.g. across an occluding edge).

``total = w_heatmap * heatmap + w_spatial * spatial + w_depth * depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s3k_envs.descriptors.model import descriptor_logits, sample_descriptors
from s3k_envs.keypoints.heatmaps import cell_centres, heatmap_moments, spatial_softmax


@dataclass
class LossWeights:
    """Weights and widths of :func:`correspondence_loss`.

    Attributes:
        sigma: width of the Gaussian heatmap target, px.
        heatmap: weight of the heatmap L2 term.
        spatial: weight of the spatial-expectation L1 term, per px.
        depth: weight of the expected-depth L1 term, per m.
    """

    sigma: float = 2.0
    heatmap: float = 1.0
    spatial: float = 0.05
    depth: float = 5.0


def cell_depth(depth: torch.Tensor, stride: int) -> torch.Tensor:
    """Depth at descriptor-cell resolution: ``(N, H, W)`` -> ``(N, H/stride, W/stride)``
    (the mean over the pixels of each cell), m."""
    if stride == 1:
        return depth
    return F.avg_pool2d(depth[:, None], stride)[:, 0]


def correspondence_loss(
    maps_a: torch.Tensor, maps_b: torch.Tensor, uv_a: torch.Tensor, uv_b: torch.Tensor,
    z_b: torch.Tensor, depth_b: torch.Tensor, valid: torch.Tensor, image_size: tuple[int, int],
    stride: int, kernel_width: float, weights: LossWeights | None = None,
) -> dict[str, torch.Tensor]:
    """The KitF correspondence loss (see the module docstring).

    Args:
        maps_a, maps_b: ``(N, D, h, w)`` descriptor maps of N view pairs.
        uv_a, uv_b: ``(N, M, 2)`` matched positions, px. z_b: ``(N, M)`` the matched point's
            depth in B, m. valid: ``(N, M)`` bool (pairs with fewer than M matches are
            padded; padded entries are ignored).
        depth_b: ``(N, H, W)`` B's rendered depth, m.
        image_size: (H, W) px. stride: px per descriptor cell.
        kernel_width: ``tau``, the descriptor-space kernel width.
        weights: term weights and the target width (default :class:`LossWeights`).

    Returns:
        dict of scalars: ``total``, ``heatmap``, ``spatial`` (px), ``depth`` (m).
    """
    w = weights if weights is not None else LossWeights()
    if uv_a.shape != uv_b.shape or uv_a.shape[:2] != z_b.shape or valid.shape != z_b.shape:
        raise ValueError(f"uv_a {tuple(uv_a.shape)}, uv_b {tuple(uv_b.shape)}, z_b "
                         f"{tuple(z_b.shape)} and valid {tuple(valid.shape)} must agree as "
                         "(N, M, 2), (N, M, 2), (N, M), (N, M)")
    queries = sample_descriptors(maps_a, uv_a, image_size)  # (N, M, D)
    logits = descriptor_logits(maps_b, queries, kernel_width)  # (N, M, h, w)
    h, wd = logits.shape[-2:]
    kernel = torch.exp(logits)
    us = cell_centres(wd, stride, dtype=logits.dtype, device=logits.device)
    vs = cell_centres(h, stride, dtype=logits.dtype, device=logits.device)
    du = (us[None, None, :] - uv_b[..., 0:1]) ** 2  # (N, M, w)
    dv = (vs[None, None, :] - uv_b[..., 1:2]) ** 2  # (N, M, h)
    target = torch.exp(-(dv[..., :, None] + du[..., None, :]) / (2.0 * w.sigma**2))
    area = target.sum((-2, -1)).clamp_min(1e-6)
    heat = ((kernel - target) ** 2).sum((-2, -1)) / area  # (N, M)
    probs = spatial_softmax(logits)
    mean, _ = heatmap_moments(probs, stride)  # (N, M, 2)
    spatial = (mean - uv_b).abs().sum(-1)
    dcell = cell_depth(depth_b, stride)  # (N, h, w)
    exp_depth = (probs * dcell[:, None]).sum((-2, -1))
    depth = (exp_depth - z_b).abs()
    weight = valid.to(logits.dtype)
    count = weight.sum().clamp_min(1.0)
    terms = {name: (value * weight).sum() / count
             for name, value in (("heatmap", heat), ("spatial", spatial), ("depth", depth))}
    terms["total"] = (w.heatmap * terms["heatmap"] + w.spatial * terms["spatial"]
                      + w.depth * terms["depth"])
    return terms
