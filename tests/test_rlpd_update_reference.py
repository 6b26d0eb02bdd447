"""RLPD's update against a plain re-implementation of its math: the CPU fast paths of
agents/rlpd.py and agents/rlpd_networks.py (one row array per replay buffer, the Q head's
custom autograd function, LayerNorm with an identity affine + ``addcmul``, one backward pass
for the actor and temperature losses, ``_foreach_lerp_``, fused Adam) must compute what the
textbook formulas compute. Also: the head's gradients (``gradcheck``) and an interrupted
run (agent file + replay-buffer file) continuing bit for bit."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.nn import functional as F

from agents.rlpd import RLPD, RLPDConfig
from agents.rlpd_networks import EnsembleLinear, _SingleOutputBaddbmm

torch.set_num_threads(1)

OBS_DIM, ACT_DIM = 5, 2


def random_demos(episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        steps = 12
        out.append({"observations": rng.normal(size=(steps + 1, OBS_DIM)).astype(np.float32),
                    "actions": rng.uniform(-2, 2, (steps, ACT_DIM)).astype(np.float32),
                    "rewards": rng.normal(size=steps).astype(np.float32),
                    "terminated": np.r_[np.zeros(steps - 1, bool), True]})
    return out


def make_agent(seed: int = 0, online: int = 50, **kwargs: Any) -> RLPD:
    """An agent on a Box(5) -> Box(2, [-2, 2]) task with demonstrations and ``online`` random
    transitions stored."""
    config = RLPDConfig(**{"hidden": (16, 16), "batch_size": 12, "num_critics": 3,
                           "num_min_critics": 2, "utd": 2, "lr": 1e-2, "gamma": 0.9,
                           "init_temperature": 0.5, "reward_scale": 2.0, **kwargs})
    agent = RLPD(spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
                 spaces.Box(-2.0, 2.0, (ACT_DIM,), np.float32), random_demos(4, seed),
                 config, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for _ in range(online):
        agent.observe(rng.normal(size=OBS_DIM), rng.uniform(-2, 2, ACT_DIM),
                      float(rng.normal()), rng.normal(size=OBS_DIM), bool(rng.random() < 0.1))
    return agent


# --------------------------------------------------------------------------- reference
def ref_actor(p: dict[str, torch.Tensor], obs: torch.Tensor, layers: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC's tanh-Gaussian policy, written out: ``(B, D)`` -> action ``(B, A)``, log pi
    ``(B,)``. The noise is ``torch.randn`` of the global generator, as the agent's."""
    x = obs
    for i in range(layers):
        x = torch.relu(x @ p[f"trunk.{2 * i}.weight"].T + p[f"trunk.{2 * i}.bias"])
    out = x @ p["head.weight"].T + p["head.bias"]
    mean, log_std = out[:, :ACT_DIM], out[:, ACT_DIM:]
    log_std = log_std.clamp(-5.0, 2.0)
    u = mean + log_std.exp() * torch.randn(mean.shape)
    normal = torch.distributions.Normal(mean, log_std.exp())
    # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
    logp = normal.log_prob(u).sum(-1) - (2 * (math.log(2.0) - u - F.softplus(-2 * u))).sum(-1)
    return torch.tanh(u), logp


def ref_q(p: dict[str, torch.Tensor], obs: torch.Tensor, act: torch.Tensor, member: int,
          layers: int, layer_norm: bool) -> torch.Tensor:
    """One critic member, one layer at a time with F.linear and F.layer_norm: ``(B,)``."""
    x = torch.cat([obs, act], dim=-1)
    for i in range(layers):
        x = F.linear(x, p[f"linears.{i}.weight"][member].T, p[f"linears.{i}.bias"][member, 0])
        if layer_norm:
            x = F.layer_norm(x, x.shape[-1:], p[f"norms.{i}.weight"][member, 0],
                             p[f"norms.{i}.bias"][member, 0])
        x = torch.relu(x)
    return F.linear(x, p["head.weight"][member].T, p["head.bias"][member, 0])[:, 0]


def reference_rounds(agent: RLPD, rounds: int) -> dict[str, Any]:
    """``rounds`` update rounds of ``agent``'s config from its current state, on copies,
    with plain tensor ops, textbook Polyak averaging and torch's for-loop Adam. Uses (and
    advances) torch's global generator like the agent; the batch and REDQ draws come from
    copies of the agent's generators."""
    cfg = agent.config
    layers = len(cfg.hidden)
    actor = {k: v.detach().clone().requires_grad_(True)
             for k, v in agent.actor.named_parameters()}
    critic = {k: v.detach().clone().requires_grad_(True)
              for k, v in agent.critic.named_parameters()}
    target = {k: v.detach().clone() for k, v in agent.critic_target.named_parameters()}
    log_alpha = agent.log_alpha.detach().clone().requires_grad_(True)
    opts = {name: torch.optim.Adam(list(ps), lr=cfg.lr, foreach=False)
            for name, ps in (("actor", actor.values()), ("critic", critic.values()),
                             ("alpha", [log_alpha]))}
    for name, opt in opts.items():  # the agent's Adam moments and step counts
        opt.load_state_dict(copy.deepcopy(getattr(agent, f"{name}_opt").state_dict()))
        for group in opt.param_groups:
            group.update(fused=None, foreach=False)
    rng = copy.deepcopy(agent._rng)
    generator = torch.Generator().manual_seed(0)
    generator.set_state(agent._generator.get_state())
    mean = torch.as_tensor(agent.obs_rms.mean.numpy().copy())
    std = torch.sqrt(torch.as_tensor(agent.obs_rms.var.numpy().copy()) + 1e-8)
    target_entropy = -0.5 * ACT_DIM if cfg.target_entropy is None else cfg.target_entropy
    n_demo = round(cfg.demo_ratio * cfg.batch_size)

    def draw(buf: Any, n: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, buf.size, size=n)
        return {k: np.asarray(getattr(buf, k))[idx] for k in
                ("obs", "next_obs", "actions", "rewards", "terminated")}

    def norm(x: np.ndarray) -> torch.Tensor:
        z = ((torch.as_tensor(x, dtype=torch.float64) - mean) / std).clamp(-10, 10)
        return z.float()

    diag: dict[str, float] = {}
    for _ in range(rounds):
        alpha = log_alpha.detach().exp()
        for _ in range(cfg.utd):
            d, o = draw(agent.demos, n_demo), draw(agent.online, cfg.batch_size - n_demo)
            b = {k: np.concatenate([d[k], o[k]]) for k in d}
            obs, next_obs = norm(b["obs"]), norm(b["next_obs"])
            acts = torch.as_tensor(b["actions"])
            rew = torch.as_tensor(b["rewards"]) * cfg.reward_scale
            term = torch.as_tensor(b["terminated"])
            with torch.no_grad():
                next_act, next_logp = ref_actor(actor, next_obs, layers)
                members = torch.randperm(cfg.num_critics, generator=generator)[
                    : cfg.num_min_critics].tolist()
                next_q = torch.stack([ref_q(target, next_obs, next_act, m, layers,
                                            cfg.layer_norm) for m in members]).amin(0)
                if cfg.backup_entropy:
                    next_q = next_q - alpha * next_logp
                y = rew + cfg.gamma * (1 - term) * next_q
            qs = torch.stack([ref_q(critic, obs, acts, m, layers, cfg.layer_norm)
                              for m in range(cfg.num_critics)])
            critic_loss = ((qs - y) ** 2).mean()
            opts["critic"].zero_grad()
            critic_loss.backward()
            opts["critic"].step()
            with torch.no_grad():
                for k in target:
                    target[k] = target[k] + cfg.tau * (critic[k] - target[k])
        act, logp = ref_actor(actor, obs, layers)
        frozen = {k: v.detach() for k, v in critic.items()}
        q_pi = torch.stack([ref_q(frozen, obs, act, m, layers, cfg.layer_norm)
                            for m in range(cfg.num_critics)]).mean(0)
        actor_loss = (alpha * logp - q_pi).mean()
        opts["actor"].zero_grad()
        actor_loss.backward()
        opts["actor"].step()
        if cfg.learn_temperature:
            alpha_loss = (log_alpha.exp() * (-logp.detach() - target_entropy)).mean()
            opts["alpha"].zero_grad()
            alpha_loss.backward()
            opts["alpha"].step()
        diag = {"critic_loss": float(critic_loss.detach()),
                "actor_loss": float(actor_loss.detach()),
                "q_mean": float(qs.detach().mean()), "target_mean": float(y.mean())}
    return {"actor": actor, "critic": critic, "critic_target": target,
            "log_alpha": log_alpha.detach(), "diag": diag}


@pytest.mark.parametrize("kwargs", [
    {},  # REDQ subset (2 of 3), LayerNorm, learned temperature, entropy backup
    {"num_critics": 2, "num_min_critics": 2, "utd": 1, "learn_temperature": False,
     "backup_entropy": False},  # the CPU setting: the subset is every member
    {"layer_norm": False, "num_critics": 1, "num_min_critics": 1},
])
def test_update_matches_the_reference_implementation(kwargs: dict[str, Any]) -> None:
    agent = make_agent(**kwargs)
    agent.update()  # Adam past its first (sign-like) step, so gradient scales matter
    torch.manual_seed(123)
    ref = reference_rounds(agent, rounds=3)
    torch.manual_seed(123)
    for _ in range(3):
        diag = agent.update()
    for module in ("actor", "critic", "critic_target"):
        for name, p in getattr(agent, module).named_parameters():
            torch.testing.assert_close(p.detach(), ref[module][name].detach(), rtol=1e-4,
                                       atol=2e-5, msg=lambda m, n=f"{module}.{name}": f"{n}: {m}")
    torch.testing.assert_close(agent.log_alpha.detach(), ref["log_alpha"], rtol=1e-5, atol=1e-6)
    for key, value in ref["diag"].items():
        assert diag[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    # the parameters moved (the comparison is not between two unchanged copies)
    before = make_agent(**kwargs)
    assert not torch.allclose(before.critic.head.weight, agent.critic.head.weight, atol=1e-3)


def test_single_output_head_gradients_and_values() -> None:
    gen = torch.Generator().manual_seed(0)
    b = torch.randn(3, 1, 1, dtype=torch.float64, generator=gen, requires_grad=True)
    x = torch.randn(3, 7, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(3, 5, 1, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(_SingleOutputBaddbmm.apply, (b, x, w))
    torch.testing.assert_close(_SingleOutputBaddbmm.apply(b, x, w), torch.baddbmm(b, x, w))
    head = EnsembleLinear(4, 6, 1)
    xs = torch.randn(2, 9, 6)
    members = torch.tensor([3, 0])
    torch.testing.assert_close(head(xs, members),
                               torch.baddbmm(head.bias[members], xs, head.weight[members]))


def test_interrupted_run_continues_bit_for_bit(tmp_path: Any) -> None:
    """Agent file + replay-buffer file at some point, then more observations and updates:
    the reloaded agent ends with exactly the parameters of the uninterrupted one."""
    agent = make_agent(online=30)
    for _ in range(3):
        agent.update()
    agent.save(tmp_path / "agent.pt")
    agent.save_replay_buffer(tmp_path / "buffer.npz")
    with np.load(tmp_path / "buffer.npz", allow_pickle=False) as data:
        assert data["obs"].shape == (30, OBS_DIM) and data["actions"].shape == (30, ACT_DIM)
        np.testing.assert_array_equal(data["rewards"], agent.online.rewards[:30])
    resumed = RLPD.load(tmp_path / "agent.pt", demonstrations=random_demos(4, 0))
    resumed.load_replay_buffer(tmp_path / "buffer.npz")
    for run in (agent, resumed):
        rng = np.random.default_rng(7)
        torch.manual_seed(11)
        for _ in range(5):
            run.observe(rng.normal(size=OBS_DIM), rng.uniform(-2, 2, ACT_DIM),
                        float(rng.normal()), rng.normal(size=OBS_DIM), False)
            run.update()
    for module in ("actor", "critic", "critic_target"):
        for p, q in zip(getattr(agent, module).parameters(),
                        getattr(resumed, module).parameters(), strict=True):
            assert torch.equal(p, q)
    np.testing.assert_array_equal(agent.online.rows[:35], resumed.online.rows[:35])


def test_normalisation_cache_follows_the_statistics() -> None:
    agent = make_agent()
    x = torch.randn(4, OBS_DIM)
    first = agent.obs_rms.normalize(x)
    agent.obs_rms.update(np.full((3, OBS_DIM), 5.0))
    moved = agent.obs_rms.normalize(x)
    assert not torch.allclose(first, moved)
    other = make_agent(seed=3)
    agent.obs_rms.load_state_dict(other.obs_rms.state_dict())
    torch.testing.assert_close(agent.obs_rms.normalize(x), other.obs_rms.normalize(x),
                               rtol=0, atol=0)
