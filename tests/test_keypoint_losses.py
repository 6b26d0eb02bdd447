"""S3K heatmaps and losses against hand-computed values (s3k_envs.keypoints.heatmaps/losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from s3k_envs import geometry as geo
from s3k_envs.keypoints import heatmaps as hm
from s3k_envs.keypoints import losses as ls

FAST = settings(max_examples=40, deadline=None)


def _rig(n_cams: int = 3, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, 3, 3) intrinsics and (C, 4, 4) extrinsics of look-at cameras around the origin."""
    rng = np.random.default_rng(seed)
    intr, extr = [], []
    for c in range(n_cams):
        azim = 2 * math.pi * c / n_cams + rng.uniform(-0.3, 0.3)
        elev = rng.uniform(0.5, 1.0)
        pos = 0.6 * np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim),
                              math.sin(elev)])
        xmat = np.zeros(9)
        import mujoco

        mujoco.mju_quat2Mat(xmat, geo.look_at_quat(pos, np.zeros(3)))
        intr.append(geo.intrinsics_from_fovy(math.radians(45), size, size))
        extr.append(geo.extrinsics_from_mujoco(pos, xmat))
    return torch.tensor(np.stack(intr)), torch.tensor(np.stack(extr))


# ------------------------------------------------------------------------------ KL


def test_kl_of_known_target_and_prediction_2x2() -> None:
    target = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    pred = torch.full((2, 2), 0.25)
    kl = ls.kl_divergence(target.log(), pred.log())  # log 0 = -inf in the target is fine
    assert kl.item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_kl_of_known_target_and_prediction_3x3() -> None:
    t = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64)
    t /= t.sum()
    p = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
    p /= p.sum()
    expected = sum(t.flat[i] * math.log(t.flat[i] / p.flat[i]) for i in range(9))
    kl = ls.kl_divergence(torch.tensor(t).log(), torch.tensor(p).log())
    assert kl.item() == pytest.approx(expected, rel=1e-9)
    assert ls.kl_divergence(torch.tensor(t).log(), torch.tensor(t).log()).item() == (
        pytest.approx(0.0, abs=1e-12))


def test_kl_is_per_camera_and_keypoint() -> None:
    logits = torch.randn(2, 3, 4, 5, 5)
    target = hm.log_spatial_softmax(torch.randn(2, 3, 4, 5, 5))
    kl = ls.kl_divergence(target, hm.log_spatial_softmax(logits))
    assert kl.shape == (2, 3, 4) and (kl >= 0).all()


# ------------------------------------------------------------------------------ heatmaps


def test_spatial_softmax_normalises_each_map() -> None:
    p = hm.spatial_softmax(torch.randn(2, 3, 4, 6))
    torch.testing.assert_close(p.sum((-2, -1)), torch.ones(2, 3))


def test_gaussian_target_normalised_and_peak_with_stride() -> None:
    # 4x4 cells of stride 2: centres at 1, 3, 5, 7 px. A point at (u, v) = (5, 3) px lies on
    # the centre of cell (row 1, column 2).
    uv = torch.tensor([5.0, 3.0], dtype=torch.float64)
    h = hm.gaussian_heatmaps(uv, 4, 4, stride=2, sigma=1.0)
    assert h.shape == (4, 4)
    assert h.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert divmod(int(h.argmax()), 4) == (1, 2)
    centres = [1.0, 3.0, 5.0, 7.0]
    gu = [math.exp(-((c - 5.0) ** 2) / 2) for c in centres]
    gv = [math.exp(-((c - 3.0) ** 2) / 2) for c in centres]
    expected = np.outer(gv, gu) / (sum(gu) * sum(gv))
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12)


def test_gaussian_target_far_outside_is_finite() -> None:
    h = hm.log_gaussian_heatmaps(torch.tensor([1e4, -1e4]), 8, 8, stride=1, sigma=1.0)
    assert torch.isfinite(h).all()
    assert h.exp().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_moments_of_a_delta_with_stride() -> None:
    p = torch.zeros(4, 4)
    p[1, 2] = 1.0  # cell (row 1, col 2), stride 2 -> centre (5, 3) px
    mean, var = hm.heatmap_moments(p, stride=2)
    assert mean.tolist() == [5.0, 3.0]
    assert var.item() == 0.0


def test_moments_of_two_deltas() -> None:
    p = torch.zeros(3, 3, dtype=torch.float64)
    p[0, 0] = 0.5  # centre (0.5, 0.5)
    p[0, 2] = 0.5  # centre (2.5, 0.5)
    mean, var = hm.heatmap_moments(p, stride=1)
    assert mean.tolist() == [1.5, 0.5]
    # var_u = 1, var_v = 0 -> per-axis variance (1 + 0) / 2
    assert var.item() == pytest.approx(0.5)


@FAST
@given(
    u=st.floats(0.3, 0.7), v=st.floats(0.3, 0.7), stride=st.sampled_from([1, 2, 4]),
    sigma_cells=st.floats(0.8, 2.0),
)
def test_moments_of_shifted_gaussians(u: float, v: float, stride: int, sigma_cells: float
                                      ) -> None:
    h = w = 40  # the Gaussian stays >= 6 sigma away from the border
    sigma = sigma_cells * stride
    uv = torch.tensor([u * w * stride, v * h * stride], dtype=torch.float64)
    p = hm.gaussian_heatmaps(uv, h, w, stride, sigma)
    mean, var = hm.heatmap_moments(p, stride)
    torch.testing.assert_close(mean, uv, atol=1e-4 * stride, rtol=0)
    assert var.item() == pytest.approx(sigma**2, rel=1e-3)
    wmean, _, mass = hm.windowed_moments(p, stride, radius=4 * sigma)
    torch.testing.assert_close(wmean, uv, atol=2e-2 * stride, rtol=0)
    assert mass.item() > 0.999


def test_windowed_mean_picks_the_stronger_mode() -> None:
    a = hm.gaussian_heatmaps(torch.tensor([10.0, 20.0]), 32, 32, 1, 1.5)
    b = hm.gaussian_heatmaps(torch.tensor([25.0, 8.0]), 32, 32, 1, 1.5)
    p = 0.6 * a + 0.4 * b
    mean, _ = hm.heatmap_moments(p, 1)
    torch.testing.assert_close(mean, torch.tensor([16.0, 15.2]), atol=1e-4, rtol=0)
    wmean, wvar, mass = hm.windowed_moments(p, 1, radius=5.0)
    torch.testing.assert_close(wmean, torch.tensor([10.0, 20.0]), atol=1e-3, rtol=0)
    assert mass.item() == pytest.approx(0.6, abs=1e-3)
    assert wvar.item() == pytest.approx(1.5**2, rel=0.05)


def test_windowed_moments_on_rectangular_heatmaps_match_square_ones() -> None:
    uv = torch.tensor([[21.3, 30.7], [40.0, 12.2]], dtype=torch.float64)
    square = hm.gaussian_heatmaps(uv, 32, 32, 2, 2.5)
    wide = hm.gaussian_heatmaps(uv, 32, 40, 2, 2.5)
    a = hm.windowed_moments(square, 2, 7.5)
    b = hm.windowed_moments(wide, 2, 7.5)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(a[0], uv, atol=2e-2, rtol=0)


# ------------------------------------------------------------------------------ supervised


def test_supervised_target_is_reprojection_of_triangulated_label() -> None:
    intr, extr = _rig(3)
    point = torch.tensor([0.02, -0.03, 0.05], dtype=torch.float64)
    uv_true, _ = geo.project(point[None], intr, extr)  # (C, 1, 2)
    # keypoint 0: labelled in cameras 0 and 1 only; keypoint 1: in camera 0 only (skipped).
    kp2d = torch.zeros(1, 3, 2, 2)
    kp2d[0, :, 0] = uv_true[:, 0].float()
    kp2d[0, :, 1] = uv_true[:, 0].float()
    mask = torch.tensor([[[True, True], [True, False], [False, False]]])
    uv, weight = ls.supervised_targets(kp2d, mask, intr[None].float(), extr[None].float(),
                                       (64, 64))
    torch.testing.assert_close(uv[0, :, 0].double(), uv_true[:, 0], atol=2e-3, rtol=0)
    assert weight[0, :, 0].all(), "target goes to every camera, also the unlabelled one"
    assert not weight[0, :, 1].any(), "a keypoint labelled in < 2 cameras is skipped"
    points, valid = ls.label_points(kp2d, mask, intr[None], extr[None])
    torch.testing.assert_close(points[0, 0], point, atol=1e-5, rtol=0)
    assert valid.tolist() == [[True, False]]


def test_supervised_loss_hand_computed() -> None:
    intr, extr = _rig(3)
    point = torch.tensor([0.0, 0.01, 0.02], dtype=torch.float64)
    uv_true, _ = geo.project(point[None], intr, extr)
    kp2d = uv_true.float()[None]  # (1, C, K=1, 2)
    mask = torch.ones(1, 3, 1, dtype=torch.bool)
    stride, sigma, h = 2, 2.0, 32
    # Uniform prediction: KL(H || U) = log(h*w) - entropy(H), summed over 3 cameras / 3 slots.
    logits = torch.zeros(1, 3, 1, h, h)
    loss = ls.supervised_loss(hm.log_spatial_softmax(logits), kp2d, mask, intr[None].float(),
                              extr[None].float(), sigma, stride)
    expected = []
    for c in range(3):
        t = hm.gaussian_heatmaps(uv_true[c, 0], h, h, stride, sigma).numpy()
        expected.append(math.log(h * h) + float((t * np.log(np.maximum(t, 1e-300))).sum()))
    assert loss.item() == pytest.approx(sum(expected) / 3, rel=1e-4)
    # Predicting the target exactly gives 0.
    exact = hm.log_gaussian_heatmaps(uv_true.float()[None], h, h, stride, sigma)
    loss0 = ls.supervised_loss(exact, kp2d, mask, intr[None].float(), extr[None].float(),
                               sigma, stride)
    assert loss0.item() == pytest.approx(0.0, abs=1e-4)


def test_heatmap_kl_loss_averages_over_all_slots() -> None:
    pred = hm.log_spatial_softmax(torch.zeros(2, 1, 1, 4, 4))
    uv = torch.full((2, 1, 1, 2), 2.0)
    one = ls.heatmap_kl_loss(pred[:1], uv[:1], torch.ones(1, 1, 1), 1, 1.0)
    both = ls.heatmap_kl_loss(pred, uv, torch.tensor([[[1.0]], [[0.0]]]), 1, 1.0)
    assert both.item() == pytest.approx(one.item() / 2)


# ------------------------------------------------------------------------------ self-supervised


def _views_of(point: torch.Tensor, intr: torch.Tensor, extr: torch.Tensor, size: int = 64,
              stride: int = 2, sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-heatmaps (1, C, 1, h, w) with Gaussians at the projections of ``point``."""
    uv, _ = geo.project(point[None], intr, extr)
    h = size // stride
    return hm.log_gaussian_heatmaps(uv.float()[None], h, h, stride, sigma), uv


def test_self_supervised_target_is_the_consensus_point() -> None:
    intr, extr = _rig(4)
    point = torch.tensor([0.03, 0.01, 0.02], dtype=torch.float64)
    logp, uv_true = _views_of(point, intr, extr)
    loss, tg = ls.self_supervised_loss(logp, intr[None].float(), extr[None].float(), 2.0, 2)
    torch.testing.assert_close(tg.points[0, 0].double(), point, atol=2e-4, rtol=0)
    torch.testing.assert_close(tg.uv[0, :, 0].double(), uv_true[:, 0], atol=0.05, rtol=0)
    assert loss.item() == pytest.approx(0.0, abs=1e-3)
    assert (tg.confidence > 0.9).all()


def test_self_supervised_target_is_detached() -> None:
    intr, extr = _rig(3)
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    logp = hm.log_spatial_softmax(logits)
    loss, tg = ls.self_supervised_loss(logp, intr[None].expand(2, -1, -1, -1),
                                       extr[None].expand(2, -1, -1, -1), 2.0, 2)
    assert not tg.uv.requires_grad and not tg.weight.requires_grad
    (grad,) = torch.autograd.grad(loss, logits)
    # The same loss with the targets as plain constants has the same gradient ...
    const = ls.heatmap_kl_loss(hm.log_spatial_softmax(logits), tg.uv.clone(), tg.weight.clone(),
                               2, 2.0)
    (grad_const,) = torch.autograd.grad(const, logits)
    torch.testing.assert_close(grad, grad_const)
    # ... and differs from letting the gradient flow through the target (what must not happen).
    p = hm.log_spatial_softmax(logits).exp()
    mean, var = hm.heatmap_moments(p, 2)
    w = geo.confidence_weight(var, 2.0)
    pts = ls.triangulate_views(mean, w, intr[None].expand(2, -1, -1, -1),
                               extr[None].expand(2, -1, -1, -1))
    uv, _ = ls.reproject(pts, intr[None].expand(2, -1, -1, -1),
                         extr[None].expand(2, -1, -1, -1), (32, 32))
    target = hm.log_gaussian_heatmaps(uv, 16, 16, 2, 2.0)
    through = (ls.kl_divergence(target, hm.log_spatial_softmax(logits)) * tg.weight).sum() / (
        tg.weight.numel())
    torch.testing.assert_close(through, loss)
    (grad_through,) = torch.autograd.grad(through, logits)
    assert not torch.allclose(grad, grad_through)


def test_gate_drops_multimodal_and_inconsistent_views() -> None:
    intr, extr = _rig(4)
    point = torch.tensor([0.0, 0.0, 0.03], dtype=torch.float64)
    logp, uv_true = _views_of(point, intr, extr)
    # Camera 3: bimodal heatmap (60 % at the right place, 40 % far away).
    far = uv_true[3, 0].float() + torch.tensor([20.0, 0.0])
    bimodal = (0.6 * logp[0, 3, 0].exp()
               + 0.4 * hm.gaussian_heatmaps(far, 32, 32, 2, 2.0)).log()
    logp = logp.clone()
    logp[0, 3, 0] = bimodal
    gate = ls.UnsupGate(window_px=6.0, min_confidence=0.0, min_peak_mass=0.8)
    tg = ls.self_supervised_targets(logp, intr[None].float(), extr[None].float(), 2.0, 2, gate)
    assert tg.passed[0, :, 0].tolist() == [True, True, True, False]
    assert tg.weight[0, :, 0].tolist() == [1.0, 1.0, 1.0, 1.0]  # target still goes to cam 3
    torch.testing.assert_close(tg.points[0, 0].double(), point, atol=5e-4, rtol=0)
    only = ls.UnsupGate(window_px=6.0, min_peak_mass=0.8, target_views="confident")
    tg = ls.self_supervised_targets(logp, intr[None].float(), extr[None].float(), 2.0, 2, only)
    assert tg.weight[0, :, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    strict = ls.UnsupGate(window_px=6.0, min_peak_mass=0.8, min_views=4)
    tg = ls.self_supervised_targets(logp, intr[None].float(), extr[None].float(), 2.0, 2, strict)
    assert not tg.weight.any(), "fewer than min_views views passed: no target at all"
    # A view whose (unimodal) peak disagrees with the others fails the residual test.
    shifted = logp.clone()
    shifted[0, 3, 0] = hm.log_gaussian_heatmaps(far, 32, 32, 2, 2.0)
    gate = ls.UnsupGate(max_residual_px=4.0)
    tg = ls.self_supervised_targets(shifted, intr[None].float(), extr[None].float(), 2.0, 2,
                                    gate)
    assert tg.passed[0, :, 0].tolist() == [True, True, True, False]
    torch.testing.assert_close(tg.points[0, 0].double(), point, atol=5e-4, rtol=0)


# ------------------------------------------------------------------------------ L2 and total


def test_l2_counts_non_bias_parameters_only() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=True), nn.BatchNorm2d(2), nn.Conv2d(2, 1, 1))
    with torch.no_grad():
        model[0].weight.fill_(0.5)  # 18 weights
        model[0].bias.fill_(10.0)
        model[1].weight.fill_(3.0)
        model[1].bias.fill_(4.0)
        model[2].weight.fill_(2.0)  # 2 weights
        model[2].bias.fill_(7.0)
    assert ls.l2_nonbias(model).item() == pytest.approx(18 * 0.25 + 2 * 4.0)


def test_total_loss() -> None:
    total = ls.total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(100.0), alpha=0.5,
                          weight_decay=1e-3)
    assert total.item() == pytest.approx(1.0 + 0.5 * 2.0 + 0.1)
