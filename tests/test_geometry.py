"""Tests for s3k_envs.geometry: intrinsics, extrinsics, projection, rays, triangulation."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3k_envs import geometry as geo

FAST = settings(max_examples=60, deadline=None)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _mujoco_cam(position, target) -> tuple[np.ndarray, np.ndarray]:
    """cam_xpos and cam_xmat (9,) of a MuJoCo camera at ``position`` looking at ``target``."""
    quat = geo.look_at_quat(position, target)
    xmat = np.zeros(9)
    mujoco.mju_quat2Mat(xmat, quat)
    return np.asarray(position, dtype=np.float64), xmat


def _rig(rng: np.random.Generator, n_cams: int = 4, width: int = 128, height: int = 96):
    """Random look-at cameras around the origin: (C,3,3) intrinsics, (C,4,4) extrinsics."""
    intr, extr = [], []
    for _ in range(n_cams):
        azim = rng.uniform(0.0, 2.0 * math.pi)
        elev = rng.uniform(math.radians(10.0), math.radians(80.0))
        radius = rng.uniform(0.5, 1.5)
        pos = radius * np.array(
            [math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)]
        )
        target = rng.uniform(-0.05, 0.05, size=3)
        cam_xpos, cam_xmat = _mujoco_cam(pos, target)
        intr.append(geo.intrinsics_from_fovy(math.radians(rng.uniform(40.0, 70.0)), width, height))
        extr.append(geo.extrinsics_from_mujoco(cam_xpos, cam_xmat))
    return np.stack(intr), np.stack(extr)


vec3 = st.tuples(*[st.floats(-2.0, 2.0)] * 3).map(np.array)
small3 = st.tuples(*[st.floats(-0.5, 0.5)] * 3).map(np.array)


# --------------------------------------------------------------------------- intrinsics


def test_intrinsics_hand_computed():
    k = geo.intrinsics_from_fovy(math.radians(90.0), 160, 120)
    expected = np.array([[60.0, 0.0, 80.0], [0.0, 60.0, 60.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(k, expected, rtol=0, atol=1e-12)
    assert k.shape == (3, 3) and k.dtype == np.float64


def test_intrinsics_fov_edge_maps_to_image_edge():
    fovy, w, h = math.radians(45.0), 64, 48
    k = geo.intrinsics_from_fovy(fovy, w, h)
    # A camera-frame point at half the vertical field of view above the axis lies on row 0.
    p = np.array([0.0, -math.tan(fovy / 2.0), 1.0])
    uv = (k @ p)[:2] / p[2]
    np.testing.assert_allclose(uv, [w / 2.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("fovy", [0.0, -0.1, math.pi, 4.0, float("nan")])
def test_intrinsics_rejects_bad_fovy(fovy):
    with pytest.raises(ValueError, match="fovy"):
        geo.intrinsics_from_fovy(fovy, 64, 48)


@pytest.mark.parametrize("size", [(0, 48), (64, 0), (-1, 48), (64, -5)])
def test_intrinsics_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        geo.intrinsics_from_fovy(1.0, *size)


# --------------------------------------------------------------------------- extrinsics


def test_extrinsics_formula_and_mujoco_model():
    """extrinsics_from_mujoco on a compiled model's cam_xpos/cam_xmat matches DESIGN.md."""
    model = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><camera name="c" mode="fixed" fovy="50"/></worldbody></mujoco>'
    )
    data = mujoco.MjData(model)
    pos, target = np.array([0.8, -0.6, 0.7]), np.array([0.1, 0.05, 0.02])
    model.cam_pos[0] = pos
    model.cam_quat[0] = geo.look_at_quat(pos, target)
    mujoco.mj_forward(model, data)
    t = geo.extrinsics_from_mujoco(data.cam_xpos[0], data.cam_xmat[0])
    r_expected = np.diag([1.0, -1.0, -1.0]) @ data.cam_xmat[0].reshape(3, 3).T
    np.testing.assert_allclose(t[:3, :3], r_expected, atol=1e-12)
    np.testing.assert_allclose(t[:3, 3], -r_expected @ data.cam_xpos[0], atol=1e-12)
    np.testing.assert_array_equal(t[3], [0.0, 0.0, 0.0, 1.0])
    k = geo.intrinsics_from_fovy(math.radians(model.cam_fovy[0]), 64, 48)
    uv, depth = geo.project(target[None], k, t)
    np.testing.assert_allclose(uv[0], [32.0, 24.0], atol=1e-9)
    assert depth[0] == pytest.approx(np.linalg.norm(target - pos))


@FAST
@given(pos=vec3, target=small3, height=st.floats(0.01, 0.3))
def test_look_at_target_projects_to_centre_and_up_is_up(pos, target, height):
    assume(np.linalg.norm(pos - target) > 0.3)
    forward = (target - pos) / np.linalg.norm(pos - target)
    assume(abs(forward[2]) < 0.99)  # a camera looking straight down has no "up" in the image
    cam_xpos, cam_xmat = _mujoco_cam(pos, target)
    t = geo.extrinsics_from_mujoco(cam_xpos, cam_xmat)
    k = geo.intrinsics_from_fovy(1.0, 160, 120)
    above = target + np.array([0.0, 0.0, height])
    uv, depth = geo.project(np.stack([target, above]), k, t)
    np.testing.assert_allclose(uv[0], [80.0, 60.0], atol=1e-9)
    assert depth[0] == pytest.approx(np.linalg.norm(target - pos), rel=1e-9)
    if depth[1] > 0:
        assert uv[1, 1] < uv[0, 1], "a point above the target must appear higher (smaller v)"


@FAST
@given(pos=vec3, target=small3)
def test_extrinsics_rotation_is_proper(pos, target):
    assume(np.linalg.norm(pos - target) > 0.1)
    t = geo.extrinsics_from_mujoco(*_mujoco_cam(pos, target))
    r = t[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    # The camera centre recovered from T is the MuJoCo camera position.
    np.testing.assert_allclose(geo.camera_centers(t), pos, atol=1e-12)
    # The optical axis (OpenCV +z) points from the camera to the target.
    axis = r.T @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(axis, (target - pos) / np.linalg.norm(target - pos), atol=1e-12)


def test_extrinsics_batch_shapes():
    rng = np.random.default_rng(0)
    _, extr = _rig(rng, n_cams=3)
    pos = geo.camera_centers(extr)  # (3, 3)
    # Recover cam_xmat from R = diag(1,-1,-1) xmat^T.
    xmat = np.swapaxes(np.diag([1.0, -1.0, -1.0]) @ extr[:, :3, :3], -1, -2)
    assert geo.extrinsics_from_mujoco(pos[0], xmat[0]).shape == (4, 4)
    assert geo.extrinsics_from_mujoco(pos[0], xmat[0].reshape(9)).shape == (4, 4)
    np.testing.assert_allclose(
        geo.extrinsics_from_mujoco(pos, xmat.reshape(3, 9)), extr, atol=1e-12
    )
    batched = geo.extrinsics_from_mujoco(np.stack([pos, pos]), np.stack([xmat, xmat]))
    assert batched.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(batched[1], extr, atol=1e-12)
    with pytest.raises(ValueError, match="cam_xpos"):
        geo.extrinsics_from_mujoco(np.zeros(4), np.eye(3))
    with pytest.raises(ValueError, match="cam_xmat"):
        geo.extrinsics_from_mujoco(np.zeros(3), np.zeros((3, 4)))


# --------------------------------------------------------------------------- project / rays


@FAST
@given(
    pos=vec3,
    target=small3,
    cam_pt=st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(0.05, 5.0)),
    fovy_deg=st.floats(20.0, 120.0),
)
def test_project_pixel_rays_round_trip(pos, target, cam_pt, fovy_deg):
    assume(np.linalg.norm(pos - target) > 0.1)
    t = geo.extrinsics_from_mujoco(*_mujoco_cam(pos, target))
    k = geo.intrinsics_from_fovy(math.radians(fovy_deg), 128, 96)
    x, y, z = cam_pt
    p_cam = np.array([x * z, y * z, z])
    point = t[:3, :3].T @ (p_cam - t[:3, 3])  # a world point in front of the camera
    uv, depth = geo.project(point[None], k, t)
    assert uv.shape == (1, 2) and depth.shape == (1,)
    assert depth[0] == pytest.approx(z, rel=1e-9)
    origins, dirs = geo.pixel_rays(uv, k, t)
    assert origins.shape == dirs.shape == (1, 3)
    np.testing.assert_allclose(origins[0], pos, atol=1e-12)
    assert np.linalg.norm(dirs[0]) == pytest.approx(1.0, abs=1e-12)
    rel = point - origins[0]
    along = rel @ dirs[0]
    assert along > 0, "rays point away from the camera, towards positive depth"
    assert np.linalg.norm(rel - along * dirs[0]) < 1e-9


def test_pixel_ray_through_principal_point_is_optical_axis():
    pos, target = np.array([1.0, 0.5, 0.8]), np.zeros(3)
    t = geo.extrinsics_from_mujoco(*_mujoco_cam(pos, target))
    k = geo.intrinsics_from_fovy(0.8, 64, 48)
    _, dirs = geo.pixel_rays(np.array([[32.0, 24.0]]), k, t)
    np.testing.assert_allclose(dirs[0], -pos / np.linalg.norm(pos), atol=1e-12)


def test_project_broadcasting_shapes_numpy_and_torch():
    rng = np.random.default_rng(1)
    intr, extr = _rig(rng, n_cams=4)
    points = rng.uniform(-0.1, 0.1, size=(5, 3))
    uv, depth = geo.project(points, intr, extr)
    assert uv.shape == (4, 5, 2) and depth.shape == (4, 5)
    for c in range(4):
        uv_c, depth_c = geo.project(points, intr[c], extr[c])
        np.testing.assert_allclose(uv[c], uv_c, atol=1e-9)
        np.testing.assert_allclose(depth[c], depth_c, atol=1e-12)
    assert np.all(depth > 0)
    # Batch of 2 frames: points (B,1,K,3), cameras (C,...) -> (B,C,K,2).
    pts_b = np.stack([points, points + 0.01])[:, None]
    uv_b, depth_b = geo.project(pts_b, intr, extr)
    assert uv_b.shape == (2, 4, 5, 2) and depth_b.shape == (2, 4, 5)
    np.testing.assert_allclose(uv_b[0], uv, atol=1e-9)
    uv_t, depth_t = geo.project(
        torch.from_numpy(points), torch.from_numpy(intr), torch.from_numpy(extr)
    )
    assert isinstance(uv_t, torch.Tensor) and tuple(uv_t.shape) == (4, 5, 2)
    np.testing.assert_allclose(uv_t.numpy(), uv, atol=1e-9)
    np.testing.assert_allclose(depth_t.numpy(), depth, atol=1e-12)
    # Rays: uv (C,K,2) -> origins/dirs (C,K,3), also in torch.
    origins, dirs = geo.pixel_rays(uv, intr, extr)
    assert origins.shape == dirs.shape == (4, 5, 3)
    origins_t, dirs_t = geo.pixel_rays(uv_t, torch.from_numpy(intr), torch.from_numpy(extr))
    np.testing.assert_allclose(dirs_t.numpy(), dirs, atol=1e-12)
    np.testing.assert_allclose(origins_t.numpy(), origins, atol=1e-12)


def test_project_point_on_camera_plane_is_finite():
    t = geo.extrinsics_from_mujoco(*_mujoco_cam(np.array([1.0, 0.0, 0.5]), np.zeros(3)))
    k = geo.intrinsics_from_fovy(1.0, 64, 48)
    uv, depth = geo.project(np.array([[1.0, 0.0, 0.5]]), k, t)  # the camera centre itself
    assert np.all(np.isfinite(uv)) and depth[0] == pytest.approx(0.0, abs=1e-12)


def test_project_rejects_bad_shapes():
    k, t = np.eye(3), np.eye(4)
    with pytest.raises(ValueError, match="points"):
        geo.project(np.zeros((5, 2)), k, t)
    with pytest.raises(ValueError, match="intrinsics"):
        geo.project(np.zeros((5, 3)), np.eye(4), t)
    with pytest.raises(ValueError, match="extrinsics"):
        geo.pixel_rays(np.zeros((5, 2)), k, np.eye(3))


# --------------------------------------------------------------------------- triangulate


def test_triangulate_two_intersecting_rays():
    # Line along x through (0,1,0) and line along y through (1,0,0) meet at (1,1,0).
    origins = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    dirs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(geo.triangulate(origins, dirs), [1.0, 1.0, 0.0], atol=1e-9)


def test_triangulate_weighted_skew_rays_closed_form():
    # Three axis-parallel lines, so every (I - d d^T) is diagonal and the weighted least squares
    # problem splits per coordinate:
    #   line 1 along x through (., 0, 1), weight w1: penalises w1 * (y^2 + (z - 1)^2)
    #   line 2 along y through (0, ., -1), weight w2: penalises w2 * (x^2 + (z + 1)^2)
    #   line 3 along z through (2, 4, .), weight w3: penalises w3 * ((x - 2)^2 + (y - 4)^2)
    # Setting the derivatives to zero:
    #   x = (w2 * 0 + w3 * 2) / (w2 + w3),  y = (w1 * 0 + w3 * 4) / (w1 + w3),
    #   z = (w1 * 1 + w2 * (-1)) / (w1 + w2).
    # With w = (1, 2, 3): x = 6/5, y = 12/4 = 3, z = -1/3. The lines do not intersect.
    # Origins are arbitrary points on the lines and directions are neither unit nor same-signed.
    origins = np.array([[5.0, 0.0, 1.0], [0.0, -3.0, -1.0], [2.0, 4.0, 7.0]])
    dirs = np.array([[2.0, 0.0, 0.0], [0.0, -3.0, 0.0], [0.0, 0.0, 0.5]])
    weights = np.array([1.0, 2.0, 3.0])
    expected = [6.0 / 5.0, 3.0, -1.0 / 3.0]
    np.testing.assert_allclose(geo.triangulate(origins, dirs, weights), expected, atol=1e-8)
    x_t = geo.triangulate(
        torch.from_numpy(origins), torch.from_numpy(dirs), torch.from_numpy(weights)
    )
    np.testing.assert_allclose(x_t.numpy(), expected, atol=1e-8)
    # Scaling all weights changes nothing; unit weights give the unweighted answer.
    np.testing.assert_allclose(geo.triangulate(origins, dirs, 7.0 * weights), expected, atol=1e-8)
    np.testing.assert_allclose(
        geo.triangulate(origins, dirs), [1.0, 2.0, 0.0], atol=1e-8
    )  # x = 2/2, y = 4/2, z = 0/2


@pytest.mark.parametrize("seed", range(5))
def test_triangulate_noiseless_rig_recovers_points(seed):
    rng = np.random.default_rng(seed)
    intr, extr = _rig(rng, n_cams=4)
    points = rng.uniform(-0.2, 0.2, size=(6, 3))
    uv, depth = geo.project(points, intr, extr)  # (C,K,2)
    assert np.all(depth > 0)
    origins, dirs = geo.pixel_rays(uv, intr, extr)  # (C,K,3)
    # triangulate wants the cameras next to last: (K,C,3).
    x = geo.triangulate(np.swapaxes(origins, 0, 1), np.swapaxes(dirs, 0, 1))
    assert x.shape == (6, 3)
    assert np.max(np.linalg.norm(x - points, axis=-1)) < 1e-6

    f32 = {"dtype": torch.float32}
    uv_t = torch.tensor(uv, **f32)
    o_t, d_t = geo.pixel_rays(uv_t, torch.tensor(intr, **f32), torch.tensor(extr, **f32))
    x_t = geo.triangulate(o_t.transpose(0, 1), d_t.transpose(0, 1))
    assert x_t.dtype == torch.float32 and tuple(x_t.shape) == (6, 3)
    assert np.max(np.linalg.norm(x_t.double().numpy() - points, axis=-1)) < 1e-4


def test_triangulate_numpy_and_torch_agree_and_batch_dims():
    rng = np.random.default_rng(42)
    b, k, c = 2, 3, 4
    origins = rng.normal(size=(b, k, c, 3))
    dirs = rng.normal(size=(b, k, c, 3))
    weights = rng.uniform(0.0, 1.0, size=(b, k, c))
    x = geo.triangulate(origins, dirs, weights)
    assert x.shape == (b, k, 3)
    x_t = geo.triangulate(
        torch.from_numpy(origins), torch.from_numpy(dirs), torch.from_numpy(weights)
    )
    assert isinstance(x_t, torch.Tensor) and tuple(x_t.shape) == (b, k, 3)
    np.testing.assert_allclose(x_t.numpy(), x, rtol=1e-9, atol=1e-9)
    for i in range(b):
        for j in range(k):
            np.testing.assert_allclose(
                geo.triangulate(origins[i, j], dirs[i, j], weights[i, j]), x[i, j], atol=1e-9
            )
    # Shared camera centres (C,3) broadcast against per-keypoint directions (B,K,C,3).
    shared = origins[0, 0]
    x_shared = geo.triangulate(shared, dirs, weights)
    assert x_shared.shape == (b, k, 3)
    np.testing.assert_allclose(
        x_shared[1, 2], geo.triangulate(shared, dirs[1, 2], weights[1, 2]), atol=1e-9
    )
    # It minimises the weighted squared distance: the gradient of the cost vanishes there.
    d = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    rel = x[..., None, :] - origins
    perp = rel - (rel * d).sum(-1, keepdims=True) * d
    grad = (weights[..., None] * perp).sum(-2)
    assert np.max(np.abs(grad)) < 1e-8


@pytest.mark.parametrize("backend", ["numpy", "torch64", "torch32"])
def test_triangulate_degenerate_inputs_are_finite(backend):
    origins = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    parallel = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    skew = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, -1.0]])
    zero_w = np.zeros(3)

    def run(o, d, w=None):
        if backend == "numpy":
            return np.asarray(geo.triangulate(o, d, w))
        dtype = torch.float64 if backend == "torch64" else torch.float32

        def conv(a):
            return None if a is None else torch.tensor(a, dtype=dtype)

        out = geo.triangulate(conv(o), conv(d), conv(w))
        assert isinstance(out, torch.Tensor) and out.dtype == dtype
        return out.double().numpy()

    # Parallel lines x = a_c + s e_z: any point on the vertical line through the mean of the
    # origins' xy minimises the cost; the ridge picks the one at the mean origin height.
    x_par = run(origins, parallel)
    assert np.all(np.isfinite(x_par))
    np.testing.assert_allclose(x_par, [1.0 / 3.0, 1.0 / 3.0, 0.0], atol=1e-4)
    # All-zero weights: no information, so the answer is the mean origin, and finite.
    for d in (parallel, skew):
        x_zero = run(origins, d, zero_w)
        assert np.all(np.isfinite(x_zero))
        np.testing.assert_allclose(x_zero, origins.mean(0), atol=1e-5)
    # A single ray and a zero-length direction are degenerate too.
    assert np.all(np.isfinite(run(origins[:1], skew[:1])))
    assert np.all(np.isfinite(run(origins, np.zeros((3, 3)))))


def test_triangulate_torch_gradients_flow():
    rng = np.random.default_rng(3)
    intr, extr = _rig(rng, n_cams=4)
    point = np.array([[0.05, -0.02, 0.1]])
    uv, _ = geo.project(point, intr, extr)
    uv_t = torch.tensor(uv, requires_grad=True)
    origins, dirs = geo.pixel_rays(uv_t, torch.from_numpy(intr), torch.from_numpy(extr))
    dirs = dirs[:, 0].detach().requires_grad_(True)  # (C,3)
    weights = torch.full((4,), 0.7, dtype=torch.float64, requires_grad=True)
    x = geo.triangulate(origins[:, 0], dirs, weights)
    np.testing.assert_allclose(x.detach().numpy(), point[0], atol=1e-8)
    (x - torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64)).square().sum().backward()
    assert dirs.grad is not None and torch.isfinite(dirs.grad).all()
    assert dirs.grad.abs().sum() > 0
    assert weights.grad is not None and torch.isfinite(weights.grad).all()
    # Gradient all the way back to pixel coordinates.
    origins, dirs_full = geo.pixel_rays(uv_t, torch.from_numpy(intr), torch.from_numpy(extr))
    x = geo.triangulate(origins.transpose(0, 1), dirs_full.transpose(0, 1))
    x.sum().backward()
    assert uv_t.grad is not None and torch.isfinite(uv_t.grad).all() and uv_t.grad.abs().sum() > 0


def test_triangulate_torch_gradients_finite_for_degenerate_rays():
    origins = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for weights in (None, torch.zeros(3)):
        dirs = torch.tensor([[0.0, 0.0, 1.0]] * 3, requires_grad=True)
        x = geo.triangulate(origins, dirs, weights)
        x.sum().backward()
        assert torch.isfinite(x).all() and torch.isfinite(dirs.grad).all()


# --------------------------------------------------------------------------- confidence weight


def test_confidence_weight_hand_computed():
    sigma = 2.0
    w = geo.confidence_weight(np.array([sigma**2, (2.0 * sigma) ** 2, 1e12]), sigma)
    # sqrt(var) = sigma: 5 * (1 - 1/2) = 2.5; sqrt(var) = 2 sigma: tanh(0) = 0 -> 0.5;
    # huge var: tanh(-inf) = -1 -> sigmoid(-3).
    np.testing.assert_allclose(
        w, [_sigmoid(3.0 * math.tanh(2.5)), 0.5, _sigmoid(-3.0)], rtol=0, atol=1e-12
    )
    assert geo.confidence_weight(0.0, sigma) == pytest.approx(_sigmoid(3.0 * math.tanh(5.0)))


@FAST
@given(
    a=st.floats(0.0, 1e4),
    b=st.floats(0.0, 1e4),
    sigma=st.floats(0.3, 10.0),
)
def test_confidence_weight_monotone_decreasing(a, b, sigma):
    lo, hi = sorted((a, b))
    w_lo, w_hi = geo.confidence_weight(np.array([lo, hi]), sigma)
    assert w_lo >= w_hi
    assert _sigmoid(-3.0) - 1e-12 <= w_hi <= w_lo <= _sigmoid(3.0) + 1e-12
    if hi - lo > 1e-6 and math.sqrt(hi) < 3.0 * sigma:  # not yet saturated: strictly smaller
        assert w_lo > w_hi


def test_confidence_weight_numpy_torch_agree():
    var = np.array([[0.0, 0.25, 1.0, 4.0], [9.0, 16.0, 100.0, 1e6]])
    w = geo.confidence_weight(var, 1.5)
    w_t = geo.confidence_weight(torch.from_numpy(var), 1.5)
    assert isinstance(w_t, torch.Tensor) and tuple(w_t.shape) == var.shape
    np.testing.assert_allclose(w_t.numpy(), w, atol=1e-12)
    w_32 = geo.confidence_weight(torch.tensor(var, dtype=torch.float32), 1.5)
    np.testing.assert_allclose(w_32.double().numpy(), w, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_confidence_weight_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        geo.confidence_weight(np.ones(3), sigma)


# --------------------------------------------------------------------------- quaternions


def _same_up_to_sign(q1: np.ndarray, q2: np.ndarray, atol: float = 1e-9) -> bool:
    return bool(np.allclose(q1, q2, atol=atol) or np.allclose(q1, -q2, atol=atol))


@pytest.mark.parametrize(
    "quat",
    [
        [1.0, 0.0, 0.0, 0.0],  # identity (trace branch)
        [0.0, 1.0, 0.0, 0.0],  # 180 deg about x
        [0.0, 0.0, 1.0, 0.0],  # 180 deg about y
        [0.0, 0.0, 0.0, 1.0],  # 180 deg about z
        [0.1, 0.7, -0.7, 0.1],
        [0.05, -0.1, 0.2, 0.97],
    ],
)
def test_rotation_matrix_to_quat_branches(quat):
    q = np.asarray(quat) / np.linalg.norm(quat)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, q)
    ours = geo.rotation_matrix_to_quat(mat.reshape(3, 3))
    assert _same_up_to_sign(ours, q)
    assert ours[0] >= 0 and np.linalg.norm(ours) == pytest.approx(1.0)


@FAST
@given(st.tuples(*[st.floats(-1.0, 1.0)] * 4))
def test_rotation_matrix_to_quat_matches_mujoco(raw):
    q = np.asarray(raw)
    assume(np.linalg.norm(q) > 0.1)
    q /= np.linalg.norm(q)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, q)
    ours = geo.rotation_matrix_to_quat(mat.reshape(3, 3))
    theirs = np.zeros(4)
    mujoco.mju_mat2Quat(theirs, mat)
    assert _same_up_to_sign(ours, theirs)
    assert _same_up_to_sign(ours, q)


@FAST
@given(pos=vec3, target=small3)
def test_look_at_quat_matches_mujoco(pos, target):
    assume(np.linalg.norm(pos - target) > 0.1)
    q = geo.look_at_quat(pos, target)
    assert q.shape == (4,) and np.linalg.norm(q) == pytest.approx(1.0) and q[0] >= 0
    forward = (target - pos) / np.linalg.norm(target - pos)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, q)
    m = mat.reshape(3, 3)  # columns: camera x (right), y (image up), z (backwards) in world
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(-m[:, 2], forward, atol=1e-9)
    if abs(forward[2]) < 0.999:
        assert abs(m[2, 0]) < 1e-9, "image x axis is horizontal"
        assert m[2, 1] > 0, "image up has a world +z component"
    expected = np.zeros(4)
    mujoco.mju_mat2Quat(expected, mat)
    assert _same_up_to_sign(q, expected)


def test_look_at_quat_straight_down_and_errors():
    q = geo.look_at_quat([0.0, 0.0, 2.0], [0.0, 0.0, 0.0])
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, q)
    np.testing.assert_allclose(-mat.reshape(3, 3)[:, 2], [0.0, 0.0, -1.0], atol=1e-12)
    assert np.all(np.isfinite(q))
    with pytest.raises(ValueError, match="coincide"):
        geo.look_at_quat([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
