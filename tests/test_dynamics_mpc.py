"""Keypoint dynamics + MPPI (agents/dynamics.py, agents/mpc.py) on a tiny numpy toy: a disc
pusher pushes a disc object in the plane. Seconds, not minutes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.dynamics import (
    DynamicsConfig,
    KeypointDynamics,
    TrainConfig,
    make_windows,
    se2_transform,
    train_dynamics,
)
from agents.mpc import MPPIConfig, MPPIPlanner

PUSHER_R, OBJECT_R, SPEED, SUBSTEPS = 0.02, 0.03, 0.04, 8


def toy_step(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """State ``(2, 2)`` m: row 0 pusher xy, row 1 object xy; action ``(2,)``: the pusher's
    velocity (``SPEED`` m per step), clipped to the unit disc. Overlap pushes the object out
    along the line of centres (quasi-static, no friction). Equivariant under planar rotations
    and translations (no walls, a round action limit)."""
    p, o = state[0].astype(np.float64), state[1].astype(np.float64)
    a = np.asarray(action, dtype=np.float64)
    a = a / max(1.0, float(np.linalg.norm(a)))
    for _ in range(SUBSTEPS):
        p = p + a * SPEED / SUBSTEPS
        d = o - p
        n = float(np.linalg.norm(d))
        if n < PUSHER_R + OBJECT_R:
            o = p + d / max(n, 1e-9) * (PUSHER_R + OBJECT_R)
    return np.stack([p, o])


def toy_start(rng: np.random.Generator) -> np.ndarray:
    o = rng.uniform(-0.1, 0.1, 2)
    ang = rng.uniform(-math.pi, math.pi)
    return np.stack([o + rng.uniform(0.06, 0.1) * np.array([math.cos(ang), math.sin(ang)]), o])


def toy_episodes(n: int, steps: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Random pushes: every 3 steps a new action, half the time uniform, half the time
    towards the object with noise."""
    out = []
    for _ in range(n):
        states, actions = [toy_start(rng)], []
        a = np.zeros(2)
        for t in range(steps):
            if t % 3 == 0:
                s = states[-1]
                if rng.random() < 0.5:
                    d = s[1] - s[0]
                    a = d / np.linalg.norm(d) + rng.normal(0, 0.5, 2)
                else:
                    a = rng.uniform(-1, 1, 2)
                a = np.clip(a, -1, 1)
            actions.append(a)
            states.append(toy_step(states[-1], a))
        out.append({"states": np.array(states), "actions": np.array(actions)})
    return out


@pytest.fixture(scope="module")
def toy_model() -> tuple[KeypointDynamics, dict]:
    torch.set_num_threads(1)
    eps = toy_episodes(300, 20, np.random.default_rng(0))
    torch.manual_seed(0)
    model = KeypointDynamics(DynamicsConfig((2, 2), 2, hidden=(64, 64), planar=True))
    stats = train_dynamics(model, eps, TrainConfig(steps=1000, batch_size=128,
                                                   rollout_steps=3, lr=3e-3))
    return model, stats


def test_dynamics_learns_the_toy(toy_model):
    _, stats = toy_model
    err, still = stats["val_rmse_per_step"], stats["val_rmse_no_motion"]
    assert len(err) == 3
    # open-loop 3-step rollout: a small fraction of the motion
    assert err[-1] < 0.2 * still[-1], stats
    assert err[-1] < 0.01


def test_mppi_pushes_the_object_to_the_goal(toy_model):
    model, _ = toy_model
    planner = MPPIPlanner(model, [-1, -1], [1, 1],
                          MPPIConfig(horizon=8, samples=128, iterations=2), cost_rows=[1])
    rng = np.random.default_rng(1)
    mpc_err, random_err = [], []
    for ep in range(6):
        s = toy_start(rng)
        goal = s[1] + 0.1 * np.array([math.cos(ep), math.sin(ep)])
        planner.reset()
        x, y = s.copy(), s.copy()
        for _ in range(20):
            a = planner.act(x, goal[None])
            assert np.all(np.abs(a) <= 1.0)
            x = toy_step(x, a)
            y = toy_step(y, rng.uniform(-1, 1, 2))
        mpc_err.append(np.linalg.norm(x[1] - goal))
        random_err.append(np.linalg.norm(y[1] - goal))
    assert np.mean(mpc_err) < 0.015, mpc_err  # 10 cm away at the start
    assert np.mean(mpc_err) < 0.2 * np.mean(random_err), (mpc_err, random_err)
    assert len(planner.plan_seconds) == 120
    assert np.median(planner.plan_seconds) < 0.25


def test_planning_time_with_default_settings(toy_model):
    model, _ = toy_model
    planner = MPPIPlanner(model, [-1, -1], [1, 1], cost_rows=[1])  # 256 x 10 steps x 4 rounds
    s = toy_start(np.random.default_rng(2))
    for _ in range(5):
        planner.act(s, s[1:] + 0.05)
    assert np.median(planner.plan_seconds) < 0.25


def test_se2_transform_is_consistent_with_equivariant_physics():
    rng = np.random.default_rng(3)
    ep = toy_episodes(1, 12, rng)[0]
    theta, shift = 0.9, np.array([0.05, -0.12])
    s, a = se2_transform(torch.tensor(ep["states"])[None], torch.tensor(ep["actions"])[None],
                         torch.tensor([theta], dtype=torch.float64),
                         torch.tensor(shift[None]), (0, 1))
    s, a = s[0].numpy(), a[0].numpy()
    # the transformed episode is the one the toy produces from the transformed start
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    np.testing.assert_allclose(s[0], ep["states"][0] @ rot.T + shift, atol=1e-12)
    np.testing.assert_allclose(a, ep["actions"] @ rot.T, atol=1e-12)
    x = s[0]
    for t in range(12):
        x = toy_step(x, a[t])
        np.testing.assert_allclose(x, s[t + 1], atol=1e-9)
    # z and non-planar action dimensions are untouched
    s3 = torch.randn(2, 4, 5, 3)
    a3 = torch.randn(2, 4, 6)
    s3t, a3t = se2_transform(s3, a3, torch.tensor([0.3, -2.0]), torch.zeros(2, 2), (0, 1))
    assert torch.equal(s3t[..., 2], s3[..., 2]) and torch.equal(a3t[..., 2:], a3[..., 2:])
    np.testing.assert_allclose(s3t[..., :2].norm(dim=-1), s3[..., :2].norm(dim=-1), rtol=1e-5)


def test_trained_model_is_nearly_equivariant(toy_model):
    """Trained with SE(2) augmentation: predicting from rotated inputs ~ rotating the
    prediction."""
    model, _ = toy_model
    eps = toy_episodes(40, 6, np.random.default_rng(4))
    s, a = make_windows(eps, 2, 1, (2, 2), 2)
    n = s.shape[0]
    theta = torch.rand(n, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    zero = torch.zeros(n, 2)
    with torch.no_grad():
        pred = model(s[:, :2], a)
        s_rot, a_rot = se2_transform(s, a, theta, zero)
        pred_rot = model(s_rot[:, :2], a_rot)
        rotated_pred, _ = se2_transform(pred[:, None], a[:, :1], theta, zero)
    motion = (s[:, 2] - s[:, 1]).norm(dim=-1).mean()
    gap = (pred_rot - rotated_pred[:, 0]).norm(dim=-1).mean()
    assert gap < 0.1 * motion, (float(gap), float(motion))


def test_save_load_round_trip(toy_model, tmp_path):
    model, _ = toy_model
    path = model.save(tmp_path / "dyn.pt", extra={"note": "toy"})
    loaded = KeypointDynamics.load(path)
    assert loaded.config == model.config and loaded.extra == {"note": "toy"}
    s = torch.randn(4, 2, 2, 2) * 0.05
    a = torch.rand(4, 2, 2) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(s, a), model(s, a))
    # weights_only: a plain torch.load with weights_only=True reads it too
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "KeypointDynamics"
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a KeypointDynamics checkpoint"):
        KeypointDynamics.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no dynamics checkpoint"):
        KeypointDynamics.load(tmp_path / "missing.pt")


def test_latent_state_model_trains_and_plans():
    """The same model and planner on a flat state (like a beta-VAE latent)."""
    torch.set_num_threads(1)
    eps = toy_episodes(100, 12, np.random.default_rng(5))
    flat = [{"states": e["states"].reshape(len(e["states"]), 4), "actions": e["actions"]}
            for e in eps]
    torch.manual_seed(0)
    model = KeypointDynamics(DynamicsConfig((4,), 2, hidden=(32, 32)))
    stats = train_dynamics(model, flat, TrainConfig(steps=150, batch_size=64, rollout_steps=2))
    assert stats["val_rmse_per_step"][0] < stats["val_rmse_no_motion"][0]
    planner = MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=4, samples=32,
                                                             iterations=1))
    a = planner.act(flat[0]["states"][0], flat[0]["states"][-1])
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    with pytest.raises(ValueError, match="planar augmentation needs a point state"):
        DynamicsConfig((4,), 2, planar=True)


def test_bad_inputs_get_clear_errors(toy_model):
    model, _ = toy_model
    planner = MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=3, samples=8,
                                                             iterations=1), cost_rows=[1])
    state = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"goal: expected shape \(1, 2\)"):
        planner.act(state, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"state: expected shape .*N=2 points.*got \(3, 2\)"):
        planner.act(np.zeros((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        planner.act(state, np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match="action_dim=2"):
        model(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 6))
    with pytest.raises(ValueError, match="low, high"):
        MPPIPlanner(model, [-1], [1])
    with pytest.raises(ValueError, match="cost_rows"):
        MPPIPlanner(model, [-1, -1], [1, 1], cost_rows=[2])
    with pytest.raises(ValueError, match="reach_cost needs reach_rows"):
        MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(reach_cost=0.1))
    with pytest.raises(ValueError, match="reach_rows"):
        MPPIPlanner(model, [-1, -1], [1, 1], reach_rows=(5, [1]))
    with pytest.raises(ValueError, match="state_shape"):
        DynamicsConfig((3, 4), 2)
    with pytest.raises(ValueError, match=r"episode 0: states should be \(T\+1, 2, 2\)"):
        make_windows([{"states": np.zeros((5, 3, 2)), "actions": np.zeros((4, 2))}],
                     2, 2, (2, 2), 2)
    with pytest.raises(ValueError, match="no episode has"):
        make_windows([{"states": np.zeros((2, 2, 2)), "actions": np.zeros((1, 2))}],
                     2, 2, (2, 2), 2)
