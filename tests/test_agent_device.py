"""Devices of the RL agents and the dynamics model (agents/rlpd.py, agents/dynamics.py,
agents/mpc.py, agents/ddpgfd.py): explicit ``"cpu"`` and ``"auto"`` (which resolves to the CPU
on a machine without a GPU), files that load on the CPU whatever device wrote them, and a GPU
test (``-m gpu``, skipped without CUDA) that trains on CUDA and checks where the tensors live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

import s3k_envs.device as dev
from agents.dynamics import DynamicsConfig, KeypointDynamics, TrainConfig, train_dynamics
from agents.mpc import MPPIConfig, MPPIPlanner
from agents.rlpd import RLPD, RLPDConfig
from s3k_envs.device import resolve_device

torch.set_num_threads(1)

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = spaces.Box(-2.0, 2.0, (2,), np.float32)


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``"auto"`` see a machine without CUDA or MPS (the CI machine), also on a GPU box."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)


def demos(episodes: int = 3, steps: int = 10, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random episodes in OBS x ACT (the device logic needs data, not a solvable task)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        out.append({"observations": rng.uniform(-1, 1, (steps + 1, 3)).astype(np.float32),
                    "actions": rng.uniform(-2, 2, (steps, 2)).astype(np.float32),
                    "rewards": rng.normal(size=steps).astype(np.float32),
                    "terminated": np.zeros(steps, bool)})
    return out


def small_agent(device: str | torch.device, seed: int = 0) -> RLPD:
    cfg = RLPDConfig(hidden=(32, 32), batch_size=16, num_critics=3, utd=2, learning_starts=1)
    return RLPD(OBS, ACT, demos(), cfg, seed=seed, device=device)


def train_rlpd(agent: RLPD, rounds: int = 5) -> None:
    rng = np.random.default_rng(1)
    for _ in range(rounds):
        agent.observe(rng.uniform(-1, 1, 3), rng.uniform(-2, 2, 2), float(rng.normal()),
                      rng.uniform(-1, 1, 3), False)
        agent.update()


def tensors_of(agent: RLPD) -> list[torch.Tensor]:
    return [*agent.actor.parameters(), *agent.critic.parameters(),
            *agent.critic_target.parameters(), agent.log_alpha]


def flat_tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in flat_tensors(v)]
    if isinstance(tree, (list, tuple)):
        return [t for v in tree for t in flat_tensors(v)]
    return []


# --------------------------------------------------------------------------- RLPD
def test_rlpd_cpu_and_auto_give_the_same_agent_on_a_cpu_machine(cpu_only: None) -> None:
    explicit = small_agent("cpu")  # (the seed seeds torch's global generator: one at a time)
    train_rlpd(explicit)
    auto = small_agent("auto")
    train_rlpd(auto)
    assert explicit.device == auto.device == torch.device("cpu")
    for a, b in zip(tensors_of(explicit), tensors_of(auto), strict=True):
        assert a.device.type == "cpu"
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    action = explicit.act(obs, deterministic=True)
    assert isinstance(action, np.ndarray) and action.dtype == np.float32
    assert action.shape == (2,) and np.all(np.abs(action) <= 2.0)
    q = explicit.q_values(obs, action)
    assert isinstance(q, np.ndarray) and q.shape == (3,)
    np.testing.assert_array_equal(action, auto.act(obs, deterministic=True))


def test_rlpd_rejects_a_device_it_does_not_have(cpu_only: None) -> None:
    with pytest.raises(ValueError, match="0 CUDA device"):
        small_agent("cuda")
    with pytest.raises(ValueError, match="expected one of"):
        small_agent("tpu")


def test_rlpd_file_holds_cpu_tensors_and_loads_on_the_cpu(cpu_only: None,
                                                          tmp_path: Path) -> None:
    agent = small_agent("auto")
    train_rlpd(agent)
    path = agent.save(tmp_path / "agent.pt")
    raw = flat_tensors(torch.load(path, weights_only=True))  # no map_location
    assert len(raw) > 10 and all(t.device.type == "cpu" for t in raw)
    loaded = RLPD.load(path, demonstrations=demos(), device="cpu")
    assert loaded.device == torch.device("cpu")
    for a, b in zip(tensors_of(agent), tensors_of(loaded), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    obs = np.array([0.4, 0.0, -0.4], np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True),
                                  loaded.act(obs, deterministic=True))
    train_rlpd(loaded, 2)  # the optimisers' state came back on the agent's device
    assert loaded.num_updates == agent.num_updates + 2


# --------------------------------------------------------------------------- dynamics + MPC
def toy_episodes(n: int = 20, steps: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Two points in the plane; the action moves point 0 (m per step)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = [rng.uniform(-0.1, 0.1, (2, 2))]
        a = rng.uniform(-1, 1, (steps, 2)) * 0.02
        for t in range(steps):
            nxt = s[-1].copy()
            nxt[0] += a[t]
            s.append(nxt)
        out.append({"states": np.array(s, np.float32), "actions": a.astype(np.float32)})
    return out


def small_dynamics(seed: int = 0) -> KeypointDynamics:
    torch.manual_seed(seed)
    return KeypointDynamics(DynamicsConfig((2, 2), 2, hidden=(32, 32), planar=True))


def test_dynamics_cpu_and_auto_train_the_same_model(cpu_only: None, tmp_path: Path) -> None:
    eps = toy_episodes()
    cfg = {"steps": 5, "batch_size": 16, "rollout_steps": 2, "val_fraction": 0.2}
    a, b, c = small_dynamics(), small_dynamics(), small_dynamics()
    stats_a = train_dynamics(a, eps, TrainConfig(**cfg, device="cpu"))
    stats_b = train_dynamics(b, eps, TrainConfig(**cfg, device="auto"))
    stats_c = train_dynamics(c, eps, TrainConfig(**cfg))  # None: where the model is
    assert stats_a["device"] == stats_b["device"] == stats_c["device"] == "cpu"
    assert a.device == b.device == torch.device("cpu")
    for x, y, z in zip(a.state_dict().values(), b.state_dict().values(),
                       c.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
        torch.testing.assert_close(x, z, rtol=0, atol=0)
    assert stats_a["val_rmse_per_step"] == stats_b["val_rmse_per_step"]
    loaded = KeypointDynamics.load(a.save(tmp_path / "dyn.pt"), device="auto")
    assert loaded.device == torch.device("cpu")
    with pytest.raises(ValueError, match="0 CUDA device"):
        KeypointDynamics.load(tmp_path / "dyn.pt", device="cuda")
    with pytest.raises(ValueError, match="0 CUDA device"):
        train_dynamics(small_dynamics(), eps, TrainConfig(**cfg, device="cuda"))


def test_planner_runs_on_the_models_device_and_returns_numpy() -> None:
    model = small_dynamics()
    train_dynamics(model, toy_episodes(), TrainConfig(steps=3, batch_size=16, rollout_steps=2))
    planner = MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=3, samples=8,
                                                              iterations=1))
    assert planner.device == model.device == planner.plan_actions.device
    state = np.array([[0.0, 0.0], [0.05, 0.0]], np.float32)
    action = planner.act(state, goal=state)
    assert isinstance(action, np.ndarray) and action.shape == (2,)
    # tensors are accepted as inputs too (e.g. states already on the device)
    again = planner.act(torch.as_tensor(state), goal=torch.as_tensor(state))
    assert isinstance(again, np.ndarray) and again.shape == (2,)
    with pytest.raises(ValueError, match="goal: expected shape"):
        planner.act(state, goal=np.zeros(3))


# --------------------------------------------------------------------------- DDPGfD (SB3)
def test_ddpgfd_passes_the_device_to_sb3_and_loads_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from agents.ddpgfd import DDPGfD
    from tests.test_ddpgfd import PointGoalEnv, record

    env = PointGoalEnv()
    model = DDPGfD("MlpPolicy", env, demonstrations=record(PointGoalEnv(), 2, seed=0),
                   batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    assert model.device == torch.device("cpu")
    assert model.demo_buffer is not None and model.demo_buffer.device == torch.device("cpu")
    model.learn(20)
    model.save(tmp_path / "ddpgfd.zip")
    loaded = DDPGfD.load(tmp_path / "ddpgfd.zip", env=PointGoalEnv(), device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.policy.parameters())
    obs = np.array([0.5, -0.5], np.float32)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0],
                               model.predict(obs, deterministic=True)[0], atol=1e-6)


# --------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rlpd_dynamics_and_planner_train_on_cuda_and_load_on_the_cpu(tmp_path: Path) -> None:
    agent = small_agent("cuda")
    assert resolve_device("auto").type == "cuda"
    before = [t.detach().clone() for t in tensors_of(agent)]
    train_rlpd(agent, 5)
    assert all(t.device.type == "cuda" for t in tensors_of(agent))
    assert any(not torch.equal(a, b) for a, b in zip(before, tensors_of(agent), strict=True))
    batch = agent.sample_batch(8)
    assert all(t.device.type == "cuda" for t in batch.values())
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    action = agent.act(obs, deterministic=True)
    assert isinstance(action, np.ndarray) and action.shape == (2,)
    path = agent.save(tmp_path / "agent.pt")
    assert all(t.device.type == "cpu"
               for t in flat_tensors(torch.load(path, weights_only=True)))
    on_cpu = RLPD.load(path, device="cpu")
    assert all(t.device.type == "cpu" for t in tensors_of(on_cpu))
    np.testing.assert_allclose(on_cpu.act(obs, deterministic=True), action, atol=1e-4)
    train_rlpd(RLPD.load(path, demonstrations=demos(), device="cuda"), 2)  # resumes on CUDA

    model = small_dynamics()
    stats = train_dynamics(model, toy_episodes(),
                           TrainConfig(steps=5, batch_size=16, rollout_steps=2, device="cuda"))
    assert stats["device"].startswith("cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(b.device.type == "cuda" for b in model.buffers())
    planner = MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=3, samples=8))
    state = np.array([[0.0, 0.0], [0.05, 0.0]], np.float32)
    assert planner.act(state, goal=state).shape == (2,)
    assert planner.plan_actions.device.type == "cuda"
    cpu_model = KeypointDynamics.load(model.save(tmp_path / "dyn.pt"), device="cpu")
    assert cpu_model.device.type == "cpu"
