"""Camera geometry shared by the envs and the keypoint model (numpy and torch, batched).

Conventions (see ``docs/conventions.md``):

* World frame: metres, z up.
* Camera frame: OpenCV — x right, y down, z forward (optical axis).
* Extrinsics ``T`` are world→camera, a 4x4 matrix ``[[R, t], [0, 0, 0, 1]]`` so that
  ``x_cam = R @ x_world + t``.
* Intrinsics ``K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]`` for a pinhole with vertical field
  of view ``fovy``: ``f = (H/2) / tan(fovy/2)`` (pixels).
* Pixels ``(u, v)`` = (column, row) with the origin at the top-left *corner* of the image:
  pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)`` and its centre is ``(c + 0.5, r + 0.5)``.

Every function accepts numpy arrays or torch tensors (the output has the input's type) and
broadcasts over leading batch dimensions, following numpy's matmul broadcasting rules.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

try:  # torch is a runtime dependency, but geometry must not need it to import
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]

Array = TypeVar("Array", np.ndarray, "torch.Tensor")

# MuJoCo cameras look along -z with y up; OpenCV cameras look along +z with y down.
_MUJOCO_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def _is_torch(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _transpose(x: Any) -> Any:
    return x.transpose(-1, -2) if _is_torch(x) else np.swapaxes(x, -1, -2)


def _check_last_dims(name: str, x: Any, dims: tuple[int, ...]) -> None:
    shape = tuple(x.shape)
    if len(shape) < len(dims) or shape[len(shape) - len(dims) :] != dims:
        want = "(..., " + ", ".join(str(d) for d in dims) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {shape}")


def _as_float_array(name: str, x: Any) -> Any:
    """Return ``x`` as a floating numpy array or torch tensor (keeps float32/float64)."""
    if _is_torch(x):
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _match(like: Any, x: Any) -> Any:
    """``x`` as the same kind of array as ``like`` (torch: same dtype and device)."""
    if _is_torch(like):
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if _is_torch(x):
        raise TypeError("mixing a numpy array with torch tensors; convert one of them")
    return np.asarray(x)


def intrinsics_from_fovy(fovy: float, width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics of a camera with vertical field of view ``fovy``.

    Args:
        fovy: vertical field of view in radians, in (0, pi).
        width: image width W in pixels.
        height: image height H in pixels.

    Returns:
        K: ``(3, 3)`` float64, ``[[f, 0, W/2], [0, f, H/2], [0, 0, 1]]`` with
        ``f = (H/2) / tan(fovy/2)`` in pixels (square pixels, principal point at the centre).
    """
    if not (0.0 < fovy < math.pi):
        raise ValueError(f"fovy must be in (0, pi) radians, got {fovy!r}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")
    f = (height / 2.0) / math.tan(fovy / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def extrinsics_from_mujoco(cam_xpos: np.ndarray, cam_xmat: np.ndarray) -> np.ndarray:
    """World→camera extrinsics (OpenCV axes) of MuJoCo cameras.

    Args:
        cam_xpos: ``(..., 3)`` camera positions in the world frame (``data.cam_xpos``), m.
        cam_xmat: ``(..., 9)`` or ``(..., 3, 3)`` camera orientations (``data.cam_xmat``,
            row-major, columns are the MuJoCo camera axes in world coordinates).

    Returns:
        T: ``(..., 4, 4)`` float64 with ``R = diag(1, -1, -1) @ xmat.T`` and
        ``t = -R @ cam_xpos``.
    """
    pos = np.asarray(cam_xpos, dtype=np.float64)
    mat = np.asarray(cam_xmat, dtype=np.float64)
    if mat.shape[-1] == 9:
        mat = mat.reshape(*mat.shape[:-1], 3, 3)
    _check_last_dims("cam_xpos", pos, (3,))
    _check_last_dims("cam_xmat", mat, (3, 3))
    rot = _MUJOCO_TO_OPENCV @ np.swapaxes(mat, -1, -2)
    trans = -(rot @ pos[..., None])[..., 0]
    batch = np.broadcast_shapes(rot.shape[:-2], trans.shape[:-1])
    out = np.zeros((*batch, 4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out


def camera_centers(extrinsics: Array) -> Array:
    """Camera centres in the world frame.

    Args:
        extrinsics: ``(..., 4, 4)`` world→camera matrices.

    Returns:
        ``(..., 3)`` camera centres ``a = -R^T t`` in metres.
    """
    _check_last_dims("extrinsics", extrinsics, (4, 4))
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., :3, 3]
    return -(_transpose(rot) @ trans[..., None])[..., 0]


def project(points: Array, intrinsics: Array, extrinsics: Array) -> tuple[Array, Array]:
    """Project world points into cameras.

    Args:
        points: ``(..., N, 3)`` world points in metres.
        intrinsics: ``(..., 3, 3)`` camera matrices K.
        extrinsics: ``(..., 4, 4)`` world→camera matrices T.
        Leading dimensions broadcast: ``points (K, 3)`` with ``intrinsics (C, 3, 3)`` gives
        ``uv (C, K, 2)``.

    Returns:
        uv: ``(..., N, 2)`` pixel coordinates (u = column, v = row, top-left corner origin).
        depth: ``(..., N)`` z in the camera frame in metres (<= 0 means behind the camera;
        ``uv`` is then meaningless but finite).
    """
    points = _as_float_array("points", points)
    _check_last_dims("points", points, (3,))
    intrinsics, extrinsics = _match(points, intrinsics), _match(points, extrinsics)
    _check_last_dims("intrinsics", intrinsics, (3, 3))
    _check_last_dims("extrinsics", extrinsics, (4, 4))
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., None, :3, 3]
    cam = points @ _transpose(rot) + trans
    pix = cam @ _transpose(intrinsics)
    depth = cam[..., 2]
    # Points on or behind the image plane: keep the result finite instead of dividing by 0.
    tiny = 1e-12
    if _is_torch(depth):
        safe = torch.where(depth.abs() < tiny, torch.full_like(depth, tiny), depth)
    else:
        safe = np.where(np.abs(depth) < tiny, tiny, depth)
    uv = pix[..., :2] / safe[..., None]
    return uv, depth


def pixel_rays(uv: Array, intrinsics: Array, extrinsics: Array) -> tuple[Array, Array]:
    """Back-project pixels to world rays.

    Args:
        uv: ``(..., N, 2)`` pixel coordinates (top-left corner origin).
        intrinsics: ``(..., 3, 3)`` camera matrices K.
        extrinsics: ``(..., 4, 4)`` world→camera matrices T.

    Returns:
        origins: ``(..., N, 3)`` camera centres in metres (the same for every pixel of a camera).
        dirs: ``(..., N, 3)`` unit ray directions in the world frame, pointing away from the
        camera (positive depth).
    """
    uv = _as_float_array("uv", uv)
    _check_last_dims("uv", uv, (2,))
    intrinsics, extrinsics = _match(uv, intrinsics), _match(uv, extrinsics)
    _check_last_dims("intrinsics", intrinsics, (3, 3))
    _check_last_dims("extrinsics", extrinsics, (4, 4))
    fx = intrinsics[..., None, 0, 0]
    fy = intrinsics[..., None, 1, 1]
    cx = intrinsics[..., None, 0, 2]
    cy = intrinsics[..., None, 1, 2]
    skew = intrinsics[..., None, 0, 1]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    if _is_torch(uv):
        d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    else:
        d_cam = np.stack([x, y, np.ones_like(x)], axis=-1)
    rot = extrinsics[..., :3, :3]
    d_world = d_cam @ rot  # row-vector form of R^T d
    norm = (d_world * d_world).sum(-1, keepdims=True) ** 0.5
    dirs = d_world / norm
    centre = camera_centers(extrinsics)[..., None, :]
    origins = centre + 0.0 * dirs  # broadcast to (..., N, 3)
    return origins, dirs


def triangulate(
    origins: Array,
    dirs: Array,
    weights: Array | None = None,
    ridge: float | None = None,
) -> Array:
    """Weighted least-squares intersection of rays (Eq. 2 of the S3K paper, corrected).

    Solves ``x = (sum_c w_c (I - d_c d_c^T) + eps I)^-1 (sum_c w_c (I - d_c d_c^T) a_c + eps p0)``
    where ``p0`` is the mean of the ray origins. The ridge ``eps`` is relative to the total
    weight, so well-posed problems are unaffected while parallel rays or all-zero weights give
    a finite answer near the cameras' consensus instead of NaN.

    Args:
        origins: ``(..., C, 3)`` ray origins ``a_c`` (camera centres), metres.
        dirs: ``(..., C, 3)`` ray directions ``d_c`` (normalised here).
        weights: ``(..., C)`` non-negative weights ``w_c``; ``None`` means all ones.
        ridge: relative ridge ``eps / (sum_c w_c + 1e-12)``; default ``1e-10`` for float64
            and ``1e-6`` for float32 inputs.

    Returns:
        ``(..., 3)`` the point minimising the weighted sum of squared distances to the rays.
    """
    origins = _as_float_array("origins", origins)
    dirs = _as_float_array("dirs", dirs)
    _check_last_dims("origins", origins, (3,))
    _check_last_dims("dirs", dirs, (3,))
    is_t = _is_torch(origins) or _is_torch(dirs)
    if is_t:
        origins = torch.as_tensor(origins)
        dirs = torch.as_tensor(dirs, dtype=origins.dtype, device=origins.device)
    if weights is None:
        weights = (dirs[..., 0] * 0.0) + 1.0
    else:
        weights = (
            torch.as_tensor(weights, dtype=dirs.dtype, device=dirs.device)
            if is_t
            else np.asarray(weights)
        )
        if tuple(weights.shape) != tuple(dirs.shape[:-1]):
            weights = weights + 0.0 * dirs[..., 0]  # broadcast, and fail loudly if impossible
    dtype = origins.dtype
    is64 = dtype in (np.float64, getattr(torch, "float64", None))
    if ridge is None:
        ridge = 1e-10 if is64 else 1e-6
    norm = (dirs * dirs).sum(-1, keepdims=True) ** 0.5
    d = dirs / (norm + 1e-30)
    eye = torch.eye(3, dtype=dtype, device=d.device) if is_t else np.eye(3, dtype=dtype)
    proj = eye - d[..., :, None] * d[..., None, :]  # (..., C, 3, 3)
    wproj = weights[..., None, None] * proj
    a_mat = wproj.sum(-3)
    b_vec = (wproj @ origins[..., None]).sum(-3)[..., 0]
    total_w = weights.sum(-1)
    eps = ridge * (total_w + 1e-12)
    anchor = origins.mean(-2)
    a_mat = a_mat + eps[..., None, None] * eye
    b_vec = b_vec + eps[..., None] * anchor
    if is_t:
        return torch.linalg.solve(a_mat, b_vec[..., None])[..., 0]
    return np.linalg.solve(a_mat, b_vec[..., None])[..., 0]


def confidence_weight(variance: Array, sigma: float) -> Array:
    """Appendix-B detection weight from a heatmap's spread.

    ``w = sigmoid(3 tanh(5 (1 - sqrt(var) / (2 sigma))))``. It is ~0.95 for a heatmap as
    sharp as the Gaussian target (``sqrt(var) = sigma``), 0.5 at ``sqrt(var) = 2 sigma`` and
    falls towards ``sigmoid(-3) ~ 0.047`` (never 0) for wide heatmaps.

    Args:
        variance: ``(...)`` per-axis variance of the heatmap in pixels², i.e. the mean of
            the u- and v-variances (a Gaussian of width sigma has variance sigma²).
        sigma: width of the target Gaussian in pixels.

    Returns:
        ``(...)`` weights in (0.047, 0.953).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (pixels), got {sigma!r}")
    if _is_torch(variance):
        std = variance.clamp_min(1e-12).sqrt()  # finite gradient at zero variance
        return torch.sigmoid(3.0 * torch.tanh(5.0 * (1.0 - std / (2.0 * sigma))))
    std = np.sqrt(np.maximum(np.asarray(variance, dtype=np.float64), 0.0))
    z = 3.0 * np.tanh(5.0 * (1.0 - std / (2.0 * sigma)))
    return 1.0 / (1.0 + np.exp(-z))


def look_at_quat(
    position: np.ndarray, target: np.ndarray, up: np.ndarray | None = None
) -> np.ndarray:
    """MuJoCo camera orientation (w-first quaternion) that looks from ``position`` at ``target``.

    Args:
        position: ``(3,)`` camera position in metres.
        target: ``(3,)`` point to look at in metres.
        up: ``(3,)`` world up hint (default +z); the image's up direction follows it.

    Returns:
        ``(4,)`` unit quaternion (w, x, y, z) of the camera frame (MuJoCo axes: the camera
        looks along its -z, image up is its +y).
    """
    position = np.asarray(position, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = target - position
    dist = np.linalg.norm(forward)
    if dist < 1e-9:
        raise ValueError("camera position and look-at target coincide")
    forward /= dist
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight along `up`: pick any right vector
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    mat = np.stack([right, cam_up, -forward], axis=1)  # columns = camera axes in world
    return rotation_matrix_to_quat(mat)


def rotation_matrix_to_quat(mat: np.ndarray) -> np.ndarray:
    """Convert a ``(3, 3)`` rotation matrix to a w-first unit quaternion ``(4,)`` (w >= 0)."""
    m = np.asarray(mat, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"mat: expected one rotation matrix of shape (3, 3), got {m.shape}")
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    quat = np.array(q)
    quat /= np.linalg.norm(quat)
    return quat if quat[0] >= 0 else -quat
