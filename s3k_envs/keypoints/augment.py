"""Training augmentation that keeps images, labels and camera calibration consistent.

* **Colour** (photometric only, calibration unchanged): per-image brightness gain, contrast
  about the image mean, per-channel gains and an additive offset, then clipped to [0, 255].
* **Geometry**, per image, about the principal point ``p = (c_x, c_y)``: an in-plane
  rotation by ``theta`` (image content turns by ``theta`` counter-clockwise on screen), a
  zoom ``s`` and a shift ``d`` (pixels)::

      u' = p + s * R2(theta) @ (u - p) + d          (R2 acting on (u, v), v pointing down)

  The warped image is exactly what a different calibrated camera would see:

  - zoom and shift change the intrinsics: ``K' = A @ K`` with
    ``A = [[s, 0, (1-s) c_x + d_u], [0, s, (1-s) c_y + d_v], [0, 0, 1]]``;
  - the rotation is a roll of the camera about its optical axis: ``R' = Rz(theta) @ R``,
    ``t' = Rz(theta) @ t`` (exact for square pixels without skew; cameras with
    ``f_x != f_y`` or skew get no rotation).

  2D labels move with the same map, so triangulating them with the new calibration gives
  the same 3D point (tests check this). The image is resampled bilinearly
  (``grid_sample``, ``align_corners=False`` matches the pixel-centre convention); pixels
  coming from outside the image repeat the border.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Augmentation strengths (0 disables a part).

    Attributes:
        color: amplitude of the photometric jitter: brightness gain ``1 ± color``, contrast
            ``1 ± color``, per-channel gains ``1 ± color/2``, offset ``± 20 * color`` (0-255).
        rotate_deg: camera roll drawn uniformly from ``± rotate_deg`` degrees.
        scale: zoom ``s = exp(U(-scale, scale))``.
        shift_px: shift of the image content drawn uniformly from ``± shift_px`` pixels.
    """

    color: float = 0.0
    rotate_deg: float = 0.0
    scale: float = 0.0
    shift_px: float = 0.0

    @property
    def geometric(self) -> bool:
        return self.rotate_deg > 0 or self.scale > 0 or self.shift_px > 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _uniform(shape: tuple[int, ...], amp: float, gen: torch.Generator | None,
             device: torch.device | None = None) -> torch.Tensor:
    # Drawn on the CPU generator whatever the device: the same seed gives the same
    # augmentation on every device (and a resumed run may switch device).
    out = (torch.rand(shape, generator=gen) * 2.0 - 1.0) * amp
    return out if device is None else out.to(device)


def color_jitter(
    images: torch.Tensor, amount: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Photometric jitter of ``(N, H, W, 3)`` images (uint8 or float 0-255) -> float 0-255."""
    x = images.float()
    if amount <= 0:
        return x
    n, dev = x.shape[0], x.device
    gain = 1.0 + _uniform((n, 1, 1, 1), amount, generator, dev)
    contrast = 1.0 + _uniform((n, 1, 1, 1), amount, generator, dev)
    channel = 1.0 + _uniform((n, 1, 1, 3), amount / 2.0, generator, dev)
    offset = _uniform((n, 1, 1, 1), 20.0 * amount, generator, dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    return (x * gain * channel + offset).clamp_(0.0, 255.0)


def _rot_z(theta: torch.Tensor) -> torch.Tensor:
    """``(..., 4, 4)`` homogeneous rotations about z by ``theta`` (radians)."""
    c, s = torch.cos(theta), torch.sin(theta)
    out = torch.zeros((*theta.shape, 4, 4), dtype=theta.dtype)
    out[..., 0, 0], out[..., 0, 1] = c, -s
    out[..., 1, 0], out[..., 1, 1] = s, c
    out[..., 2, 2] = 1.0
    out[..., 3, 3] = 1.0
    return out


def warp_views(
    images: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    theta: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    points_2d: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Apply given similarity warps to images and update their calibration and 2D points.

    Args:
        images: ``(N, H, W, 3)`` uint8 or float 0-255.
        intrinsics: ``(N, 3, 3)``; extrinsics: ``(N, 4, 4)`` world->camera.
        theta: ``(N,)`` rotation angles, rad (forced to 0 where pixels are not square).
        scale: ``(N,)`` zoom factors (> 0).
        shift: ``(N, 2)`` shifts ``(d_u, d_v)``, px.
        points_2d: optional ``(N, K, 2)`` pixel points to move with the images.

    Returns:
        images ``(N, H, W, 3)`` float 0-255, intrinsics ``(N, 3, 3)``, extrinsics
        ``(N, 4, 4)`` (float32), and the moved points (or None).
    """
    n, h, w, _ = images.shape
    calib_device = intrinsics.device
    intr = intrinsics.detach().cpu().double()
    extr = extrinsics.detach().cpu().double()
    theta = theta.cpu().double()
    square = ((intr[:, 0, 0] - intr[:, 1, 1]).abs() <= 1e-6 * intr[:, 0, 0].abs()) & (
        intr[:, 0, 1].abs() <= 1e-9 * intr[:, 0, 0].abs()
    )
    theta = torch.where(square, theta, torch.zeros_like(theta))
    scale = scale.cpu().double()
    shift = shift.cpu().double()
    p = intr[:, :2, 2]  # principal points (N, 2)
    c, s = torch.cos(theta), torch.sin(theta)
    lin = scale[:, None, None] * torch.stack(
        [torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2
    )  # (N, 2, 2) u' = p + lin @ (u - p) + d
    offset = p + shift - (lin @ p[..., None])[..., 0]  # u' = lin @ u + offset
    # Inverse map (output pixel -> input pixel): u_in = inv @ u_out + inv_off. In
    # grid_sample's normalised coordinates x_n = D u - 1 with D = diag(2/W, 2/H):
    # x_in = (D inv D^-1) x_out + (D inv D^-1) 1 + D inv_off - 1.
    inv = torch.linalg.inv(lin)
    inv_off = -(inv @ offset[..., None])[..., 0]
    size = torch.tensor([w, h], dtype=torch.float64)
    dmat = torch.diag(2.0 / size)
    norm_lin = dmat @ inv @ torch.diag(size / 2.0)
    norm_off = norm_lin.sum(-1) + (dmat @ inv_off[..., None])[..., 0] - 1.0
    # The warp runs on the images' device; the calibration math stays in float64 on the
    # CPU (tiny, and MPS has no float64).
    affine = torch.cat([norm_lin, norm_off[..., None]], dim=-1).float().to(images.device)
    x = images.float().permute(0, 3, 1, 2)
    grid = F.affine_grid(affine, [n, 3, h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out_images = out.permute(0, 2, 3, 1)
    # Calibration: K' = A_zoom_shift @ K, extrinsics rolled by Rz(theta).
    a_mat = torch.zeros(n, 3, 3, dtype=torch.float64)
    a_mat[:, 0, 0] = scale
    a_mat[:, 1, 1] = scale
    a_mat[:, :2, 2] = (1.0 - scale)[:, None] * p + shift
    a_mat[:, 2, 2] = 1.0
    new_intr = (a_mat @ intr).float().to(calib_device)
    new_extr = (_rot_z(theta) @ extr).float().to(calib_device)
    new_points = None
    if points_2d is not None:
        pts = points_2d.detach().cpu().double()
        new_points = ((pts @ lin.transpose(-1, -2)) + offset[:, None, :]).to(
            device=points_2d.device, dtype=points_2d.dtype)
    return out_images, new_intr, new_extr, new_points


def augment_views(
    images: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    config: AugmentConfig,
    points_2d: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random colour and geometric augmentation of multi-view frames, calibration-consistent.

    Args:
        images: ``(B, C, H, W, 3)`` uint8 or float 0-255.
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        config: strengths.
        points_2d: optional ``(B, C, K, 2)`` 2D labels to move with the images.
        generator: torch RNG for reproducibility.

    Returns:
        images ``(B, C, H, W, 3)`` float 0-255, intrinsics, extrinsics, points (or None),
        each independently warped per camera image.
    """
    b, c, h, w, _ = images.shape
    n = b * c
    flat = images.reshape(n, h, w, 3)
    intr = intrinsics.reshape(n, 3, 3)
    extr = extrinsics.reshape(n, 4, 4)
    pts = None if points_2d is None else points_2d.reshape(n, *points_2d.shape[2:])
    if config.geometric:
        theta = _uniform((n,), math.radians(config.rotate_deg), generator)
        scale = torch.exp(_uniform((n,), config.scale, generator))
        shift = _uniform((n, 2), config.shift_px, generator)
        flat, intr, extr, pts = warp_views(flat, intr, extr, theta, scale, shift, pts)
    flat = color_jitter(flat, config.color, generator)
    return (
        flat.reshape(b, c, h, w, 3),
        intr.reshape(b, c, 3, 3).to(intrinsics.dtype),
        extr.reshape(b, c, 4, 4).to(extrinsics.dtype),
        None if pts is None else pts.reshape(points_2d.shape),
    )
