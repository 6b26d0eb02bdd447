"""Pixel correspondences between two calibrated views of the same instant, from depth.

A pixel ``(u, v)`` of view A with rendered depth ``z`` (the z of the surface point in A's
camera frame, metres) is the world point ``a + d * z / (d . r3)``, where ``a`` is A's centre,
``d`` the unit ray through the pixel and ``r3`` A's optical axis (third row of ``R``).
Projected into view B it lands at ``uv_b`` with depth ``z_b``; it is *seen* there only if
``uv_b`` is inside the image and B's own depth at that pixel is not in front of it
(``depth_b[uv_b] >= z_b - tolerance``): otherwise another surface (the gripper, another part
of the object) occludes it. Pixel conventions are those of :mod:`s3k_envs.geometry`
(``(u, v)`` = (column, row), pixel ``(r, c)`` centred at ``(c + 0.5, r + 0.5)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s3k_envs.geometry import pixel_rays, project


def _check_view(name: str, depth: np.ndarray, intrinsics: np.ndarray,
                extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype.kind != "f":
        raise ValueError(f"{name} depth: expected a float (H, W) map in metres, got "
                         f"{depth.dtype} {depth.shape}")
    k = np.asarray(intrinsics, dtype=np.float64)
    t = np.asarray(extrinsics, dtype=np.float64)
    if k.shape != (3, 3) or t.shape != (4, 4):
        raise ValueError(f"{name}: expected intrinsics (3, 3) and extrinsics (4, 4), got "
                         f"{k.shape} and {t.shape}")
    return depth, k, t


def lift_pixels(uv: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray,
                extrinsics: np.ndarray) -> np.ndarray:
    """World points seen at pixels of one view.

    Args:
        uv: ``(N, 2)`` pixel positions (u, v), px; the depth is read at the pixel that
            contains each position (exact at pixel centres).
        depth: ``(H, W)`` z in the camera frame, m.
        intrinsics: ``(3, 3)``; extrinsics: ``(4, 4)`` world->camera.

    Returns:
        ``(N, 3)`` float64 world points, m.
    """
    depth, k, t = _check_view("view", depth, intrinsics, extrinsics)
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv: expected (N, 2) pixel positions, got {uv.shape}")
    h, w = depth.shape
    cols = np.clip(np.floor(uv[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.floor(uv[:, 1]).astype(int), 0, h - 1)
    origin, dirs = pixel_rays(uv, k, t)
    cos = dirs @ t[2, :3]
    return origin + dirs * (depth[rows, cols] / cos)[:, None]


@dataclass
class Correspondences:
    """Matches from view A to view B (N of them).

    Attributes:
        uv_a: ``(N, 2)`` float32 px in A (pixel centres). uv_b: ``(N, 2)`` float32 px in B
            (continuous: where the point projects). depth_b: ``(N,)`` float32 m, the point's
            z in B's camera frame. points: ``(N, 3)`` float32 world points, m.
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    depth_b: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.uv_a)


def find_correspondences(
    depth_a: np.ndarray, mask_a: np.ndarray, intrinsics_a: np.ndarray, extrinsics_a: np.ndarray,
    depth_b: np.ndarray, intrinsics_b: np.ndarray, extrinsics_b: np.ndarray,
    num: int | None = None, rng: np.random.Generator | None = None,
    mask_b: np.ndarray | None = None, tolerance: float = 0.004, border: float = 1.0,
) -> Correspondences:
    """Matches for pixels on the object in view A that are visible in view B.

    Args:
        depth_a, depth_b: ``(H, W)`` depth maps, m (z in each camera's frame).
        mask_a: ``(H, W)`` bool, the object's pixels in A (where matches start).
        intrinsics_*: ``(3, 3)``; extrinsics_*: ``(4, 4)`` world->camera.
        num: at most this many matches, drawn uniformly without replacement from the
            valid ones (None: all).
        rng: generator for the draw (default: a fresh unseeded one).
        mask_b: optional ``(H, W)`` bool: also require the match to land on the object in B.
        tolerance: occlusion check, m: B's depth at the landing pixel must be at least
            ``depth_b - tolerance``.
        border: matches landing closer than this to B's image edge (px) are dropped.

    Returns:
        :class:`Correspondences` (possibly empty).
    """
    depth_a, ka, ta = _check_view("view A", depth_a, intrinsics_a, extrinsics_a)
    depth_b, kb, tb = _check_view("view B", depth_b, intrinsics_b, extrinsics_b)
    mask_a = np.asarray(mask_a, dtype=bool)
    if mask_a.shape != depth_a.shape:
        raise ValueError(f"mask_a: expected shape {depth_a.shape}, got {mask_a.shape}")
    if mask_b is not None and np.asarray(mask_b).shape != depth_b.shape:
        raise ValueError(f"mask_b: expected shape {depth_b.shape}, got {np.shape(mask_b)}")
    rows, cols = np.nonzero(mask_a)
    uv_a = np.stack([cols + 0.5, rows + 0.5], axis=-1).astype(np.float64)
    points = lift_pixels(uv_a, depth_a, ka, ta)
    uv_b, z_b = project(points, kb, tb)
    h, w = depth_b.shape
    ok = ((z_b > 0) & (uv_b[:, 0] >= border) & (uv_b[:, 0] < w - border)
          & (uv_b[:, 1] >= border) & (uv_b[:, 1] < h - border))
    rb = np.clip(np.floor(uv_b[:, 1]).astype(int), 0, h - 1)
    cb = np.clip(np.floor(uv_b[:, 0]).astype(int), 0, w - 1)
    ok &= depth_b[rb, cb] >= z_b - tolerance
    if mask_b is not None:
        ok &= np.asarray(mask_b, dtype=bool)[rb, cb]
    index = np.flatnonzero(ok)
    if num is not None and len(index) > num:
        rng = rng if rng is not None else np.random.default_rng()
        index = np.sort(rng.choice(index, size=num, replace=False))
    return Correspondences(uv_a[index].astype(np.float32), uv_b[index].astype(np.float32),
                           z_b[index].astype(np.float32), points[index].astype(np.float32))
