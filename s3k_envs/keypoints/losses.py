"""The S3K losses: supervised and self-supervised multi-view KL terms, L2 on weights.

Shapes use B samples (multi-view frames), C cameras, K keypoints and ``h x w`` heatmap cells
of stride ``s`` image pixels (see :mod:`s3k_envs.keypoints.heatmaps`); pixel coordinates are
image pixels ``(u, v)``, 3D points metres in the world frame.

* :func:`kl_divergence` — ``KL(H || P)`` per camera and keypoint.
* :func:`supervised_loss` — triangulate the 2D labels of every keypoint from the cameras
  where ``label_mask`` is set, reproject into **every** camera (also those without a label)
  and compare a Gaussian of width ``sigma`` there with the prediction (S3K Eq. 1).
  A keypoint labelled in fewer than 2 cameras of a sample cannot be triangulated and is
  **skipped** (contributes no term); so is every camera where the reprojected point falls
  behind the camera or outside the image (a Gaussian there would pile its mass on the
  border).
* :func:`self_supervised_loss` — the same with the model's own confidence-weighted
  triangulation (Appendix B weights) as the 3D point, computed without gradient: the target
  is a constant (S3K Eq. 3). Optional gates (:class:`UnsupGate`) keep only keypoints that
  >= ``min_views`` confident, unimodal and mutually consistent views agree on.
* :func:`l2_nonbias` — ``||theta_nonbias||^2``; :func:`total_loss` — Eq. 4.

Normalisation: the KL terms are **averaged over all ``B * C * K`` slots of the batch**
(skipped slots count as 0), i.e. the paper's ``sum_c sum_k`` divided by the constant
``B * C * K``, so the loss scale does not depend on the batch size or on how many keypoints
a batch happens to have labels for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from s3k_envs.geometry import confidence_weight, pixel_rays, project, triangulate
from s3k_envs.keypoints.heatmaps import heatmap_moments, log_gaussian_heatmaps, windowed_moments

# ------------------------------------------------------------------------------ basic terms


def kl_divergence(target_log: torch.Tensor, pred_log: torch.Tensor) -> torch.Tensor:
    """``KL(T || P) = sum_ij T_ij (log T_ij - log P_ij)`` over the two last dimensions.

    Args:
        target_log: ``(..., h, w)`` log of the normalised target ``T`` (cells with
            ``T = 0`` may hold any finite value or ``-inf``; they contribute 0).
        pred_log: ``(..., h, w)`` log of the normalised prediction ``P``.

    Returns:
        ``(...)`` non-negative divergences (nats).
    """
    if target_log.shape != pred_log.shape:
        raise ValueError(
            f"target and prediction heatmaps differ in shape: {tuple(target_log.shape)} vs "
            f"{tuple(pred_log.shape)}"
        )
    target = target_log.exp()
    terms = target * (target_log - pred_log)
    return torch.where(target > 0, terms, torch.zeros((), dtype=terms.dtype)).sum((-2, -1))


def heatmap_kl_loss(
    pred_log: torch.Tensor, uv: torch.Tensor, weight: torch.Tensor, stride: float, sigma: float
) -> torch.Tensor:
    """Weighted mean over slots of ``KL(Gaussian(uv, sigma) || P)``.

    Args:
        pred_log: ``(..., h, w)`` predicted log-heatmaps (e.g. ``(B, C, K, h, w)``).
        uv: ``(..., 2)`` target centres in image pixels (treated as constants).
        weight: ``(...)`` per-slot weights (0 = no term; bool or float).
        stride: image pixels per heatmap cell.
        sigma: target width in image pixels.

    Returns:
        scalar ``sum(weight * KL) / weight.numel()``.
    """
    h, w = pred_log.shape[-2:]
    target_log = log_gaussian_heatmaps(uv.detach().to(pred_log.dtype), h, w, stride, sigma)
    kl = kl_divergence(target_log, pred_log)
    weight = weight.to(kl.dtype)
    return (weight * kl).sum() / max(weight.numel(), 1)


def l2_nonbias(model: torch.nn.Module) -> torch.Tensor:
    """``||theta_nonbias||^2``: sum of squares of the convolution / linear weights.

    Counted: every parameter with 2 or more dimensions (kernels). Not counted: biases and
    the 1-D scale/shift parameters of normalisation layers, which act like biases.
    """
    terms = [p.pow(2).sum() for p in model.parameters() if p.ndim > 1]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def total_loss(
    sup: torch.Tensor,
    unsup: torch.Tensor | float,
    l2: torch.Tensor | float,
    alpha: float = 0.5,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """S3K Eq. 4: ``L = L_sup + alpha * L_unsup + lambda * ||theta_nonbias||^2``."""
    return sup + alpha * unsup + weight_decay * l2


# ------------------------------------------------------------------------------ geometry


def triangulate_views(
    uv: torch.Tensor,
    weights: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
) -> torch.Tensor:
    """Weighted triangulation of K keypoints seen in C cameras.

    Args:
        uv: ``(..., C, K, 2)`` image points, px.
        weights: ``(..., C, K)`` non-negative ray weights (0 = ignore that view).
        intrinsics: ``(..., C, 3, 3)``.
        extrinsics: ``(..., C, 4, 4)`` world->camera.

    Returns:
        ``(..., K, 3)`` points in metres (finite even with fewer than 2 usable views: the
        ridge of :func:`s3k_envs.geometry.triangulate` then pulls them toward the cameras).
    """
    origins, dirs = pixel_rays(uv, intrinsics, extrinsics)  # (..., C, K, 3)
    return triangulate(
        origins.transpose(-3, -2), dirs.transpose(-3, -2), weights.transpose(-2, -1)
    )


def reproject(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    image_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project K points into C cameras.

    Args:
        points: ``(..., K, 3)`` world points, m.
        intrinsics: ``(..., C, 3, 3)``; extrinsics: ``(..., C, 4, 4)``.
        image_size: ``(H, W)`` in pixels.

    Returns:
        uv: ``(..., C, K, 2)`` px.
        in_image: ``(..., C, K)`` bool: in front of the camera and inside ``[0, W) x [0, H)``.
    """
    uv, depth = project(points[..., None, :, :], intrinsics, extrinsics)
    height, width = image_size
    in_image = (
        (depth > 0)
        & (uv[..., 0] >= 0)
        & (uv[..., 0] < width)
        & (uv[..., 1] >= 0)
        & (uv[..., 1] < height)
    )
    return uv, in_image


def label_points(
    keypoints_2d: torch.Tensor,
    label_mask: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """3D points triangulated (unweighted, float64) from 2D labels.

    Args:
        keypoints_2d: ``(..., C, K, 2)`` labels, px (ignored where not in ``label_mask``).
        label_mask: ``(..., C, K)`` bool, which labels exist.
        intrinsics: ``(..., C, 3, 3)``; extrinsics: ``(..., C, 4, 4)``.

    Returns:
        points: ``(..., K, 3)`` float64, m (meaningless where not ``valid``).
        valid: ``(..., K)`` bool, labelled in at least 2 cameras.
    """
    mask = label_mask.bool()
    uv = torch.where(mask[..., None], keypoints_2d.double(), torch.zeros((), dtype=torch.float64))
    points = triangulate_views(uv, mask.double(), intrinsics.double(), extrinsics.double())
    return points, mask.sum(-2) >= 2


def supervised_targets(
    keypoints_2d: torch.Tensor,
    label_mask: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    image_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target centres of the supervised path: triangulated labels reprojected to every camera.

    Args:
        keypoints_2d: ``(B, C, K, 2)`` px; label_mask: ``(B, C, K)`` bool.
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        image_size: ``(H, W)``.

    Returns:
        uv: ``(B, C, K, 2)`` target centres, px (float32).
        weight: ``(B, C, K)`` bool: the keypoint had >= 2 labelled cameras and its
        reprojection lies inside this camera's image.
    """
    points, valid = label_points(keypoints_2d, label_mask, intrinsics, extrinsics)
    uv, in_image = reproject(points, intrinsics.double(), extrinsics.double(), image_size)
    return uv.float(), in_image & valid[..., None, :]


def _image_size(pred_log: torch.Tensor, stride: float) -> tuple[int, int]:
    h, w = pred_log.shape[-2:]
    return round(h * stride), round(w * stride)


def supervised_loss(
    pred_log: torch.Tensor,
    keypoints_2d: torch.Tensor,
    label_mask: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    sigma: float,
    stride: float,
) -> torch.Tensor:
    """S3K Eq. 1 (mean over slots, see the module docstring).

    Args:
        pred_log: ``(B, C, K, h, w)`` predicted log-heatmaps.
        keypoints_2d: ``(B, C, K, 2)`` 2D labels, px.
        label_mask: ``(B, C, K)`` bool; keypoints with < 2 labelled cameras are skipped.
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        sigma: target width, px. stride: px per heatmap cell.

    Returns:
        scalar loss.
    """
    uv, weight = supervised_targets(
        keypoints_2d, label_mask, intrinsics, extrinsics, _image_size(pred_log, stride)
    )
    return heatmap_kl_loss(pred_log, uv, weight, stride, sigma)


# ------------------------------------------------------------------------------ self-supervised


@dataclass(frozen=True)
class UnsupGate:
    """Which of the model's own estimates become self-supervised targets.

    The defaults reproduce the paper (every view, Appendix-B weights, no gating).

    Attributes:
        window_px: if set, the 2D estimate of a view is the mean inside a square window of
            this half-width (px) around the heatmap's peak instead of the plain mean.
        min_confidence: a view is *confident* when its Appendix-B weight is at least this
            (0.5 <=> ``sqrt(var) <= 2 sigma``).
        min_peak_mass: ... and at least this fraction of its mass lies in the peak window
            (unimodal). Needs ``window_px`` (else the window is ``3 sigma``).
        max_residual_px: ... and the triangulated point reprojects within this many pixels
            of the view's estimate (the views agree). Views are dropped one at a time, the
            worst first, re-triangulating after each drop.
        min_views: a keypoint gets a target only when at least this many views pass.
        target_views: ``"all"`` — the target goes to every camera where the point is in the
            image (the paper: uncertain views learn from confident ones); ``"confident"`` —
            only to the views that passed.
    """

    window_px: float | None = None
    min_confidence: float = 0.0
    min_peak_mass: float = 0.0
    max_residual_px: float = math.inf
    min_views: int = 2
    target_views: str = "all"

    def __post_init__(self) -> None:
        if self.target_views not in ("all", "confident"):
            raise ValueError(
                f"target_views: expected 'all' or 'confident', got {self.target_views!r}"
            )


@dataclass
class UnsupTargets:
    """Constant targets of the self-supervised path (no gradient).

    Attributes:
        uv: ``(B, C, K, 2)`` target centres, px.
        weight: ``(B, C, K)`` float, 1 where a term is used.
        points: ``(B, K, 3)`` the triangulated estimates, m.
        confidence: ``(B, C, K)`` Appendix-B weights of the views.
        passed: ``(B, C, K)`` bool, views that passed the gate.
    """

    uv: torch.Tensor
    weight: torch.Tensor
    points: torch.Tensor
    confidence: torch.Tensor
    passed: torch.Tensor


@torch.no_grad()
def self_supervised_targets(
    pred_log: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    sigma: float,
    stride: float,
    gate: UnsupGate | None = None,
) -> UnsupTargets:
    """The model's own 3D estimate, reprojected: targets of S3K Eq. 3 (constants).

    Args:
        pred_log: ``(B, C, K, h, w)`` predicted log-heatmaps (only read, no gradient).
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        sigma: target width, px; also the scale of the confidence weights.
        stride: px per heatmap cell.
        gate: gating options; default: none (the paper).

    Returns:
        :class:`UnsupTargets`.
    """
    gate = gate or UnsupGate()
    probs = pred_log.detach().float().exp()
    mean, var = heatmap_moments(probs, stride)
    conf = confidence_weight(var, sigma)
    passed = conf >= gate.min_confidence
    if gate.window_px is not None or gate.min_peak_mass > 0:
        radius = gate.window_px if gate.window_px is not None else 3.0 * sigma
        win_mean, _, peak_mass = windowed_moments(probs, stride, radius)
        if gate.window_px is not None:
            mean = win_mean
        passed = passed & (peak_mass >= gate.min_peak_mass)
    intr, extr = intrinsics.double(), extrinsics.double()
    mean64 = mean.double()
    points = triangulate_views(mean64, conf.double() * passed, intr, extr)
    image_size = _image_size(pred_log, stride)
    if math.isfinite(gate.max_residual_px):
        # Outlier rejection: drop the worst view while its reprojection residual is too big.
        for _ in range(pred_log.shape[-4] - 1):
            uv, _ = reproject(points, intr, extr, image_size)
            residual = (uv - mean64).norm(dim=-1).masked_fill(~passed, -1.0)  # (B, C, K)
            worst, worst_cam = residual.max(dim=-2)  # (B, K)
            drop = worst > gate.max_residual_px
            if not drop.any():
                break
            cams = torch.arange(passed.shape[-2], device=passed.device)[:, None]
            passed = passed & ~((cams == worst_cam[..., None, :]) & drop[..., None, :])
            points = triangulate_views(mean64, conf.double() * passed, intr, extr)
    enough = passed.sum(-2) >= gate.min_views  # (B, K)
    uv, in_image = reproject(points, intr, extr, image_size)
    weight = in_image & enough[..., None, :]
    if gate.target_views == "confident":
        weight = weight & passed
    return UnsupTargets(
        uv=uv.float(),
        weight=weight.float(),
        points=points.float(),
        confidence=conf,
        passed=passed,
    )


def self_supervised_loss(
    pred_log: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    sigma: float,
    stride: float,
    gate: UnsupGate | None = None,
) -> tuple[torch.Tensor, UnsupTargets]:
    """S3K Eq. 3 (mean over slots): KL between the reprojected own estimate and ``P``.

    Args: as :func:`self_supervised_targets`; ``pred_log`` carries the gradient.

    Returns:
        loss: scalar; its gradient treats the targets as constants.
        targets: the :class:`UnsupTargets` used (for logging).
    """
    targets = self_supervised_targets(pred_log, intrinsics, extrinsics, sigma, stride, gate)
    return heatmap_kl_loss(pred_log, targets.uv, targets.weight, stride, sigma), targets
