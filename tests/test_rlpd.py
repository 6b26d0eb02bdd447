"""Tests of agents/rlpd.py: demonstrations make a toy task learnable faster, save/load without
unpickling foreign objects, clear errors for bad demonstrations, the batch mix and the
batched critic ensemble."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.rlpd import RLPD, CriticEnsemble, RLPDConfig, validate_demonstrations

torch.set_num_threads(1)


class PointGoalEnv(gym.Env):
    """A point in [-1, 1]^2 that must reach the ball of radius 0.1 around the origin; sparse
    reward 1 on arrival (terminates), 20 steps. Observation ``(2,)`` float32 position; action
    ``(2,)`` in [-1, 1], displacement in units of 0.1. Starts 0.6..0.9 from the goal, so it
    takes >= 5 well-aimed steps: random exploration rarely gets there."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.pos, self.t = np.zeros(2), 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        self.pos = self.np_random.uniform(0.6, 0.9) * np.array([np.cos(angle), np.sin(angle)])
        self.t = 0
        return self.pos.astype(np.float32), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.pos = np.clip(self.pos + 0.1 * np.clip(action, -1, 1), -1.0, 1.0)
        self.t += 1
        success = bool(np.linalg.norm(self.pos) < 0.1)
        return (self.pos.astype(np.float32), float(success), success,
                self.t >= 20 and not success, {"is_success": success})


def expert(obs: np.ndarray) -> np.ndarray:
    return np.clip(-np.asarray(obs) / 0.1, -1.0, 1.0).astype(np.float32)


def record(episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    env, out = PointGoalEnv(), []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        ep: dict[str, list[Any]] = {"observations": [obs], "actions": [], "rewards": [],
                                    "terminated": [], "truncated": []}
        done = False
        while not done:
            action = expert(obs)
            obs, reward, term, trunc, _ = env.step(action)
            for key, value in zip(("observations", "actions", "rewards", "terminated",
                                   "truncated"), (obs, action, reward, term, trunc), strict=True):
                ep[key].append(value)
            done = term or trunc
        out.append({k: np.array(v) for k, v in ep.items()})
    return out


def success_rate(agent: RLPD, episodes: int = 20, seed: int = 10_000) -> float:
    env, successes = PointGoalEnv(), 0
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(agent.act(obs, deterministic=True))
            done = term or trunc
        successes += info["is_success"]
    return successes / episodes


def small_config(**kwargs: Any) -> RLPDConfig:
    return RLPDConfig(**{"hidden": (64, 64), "batch_size": 64, "num_critics": 5, "utd": 4,
                         "gamma": 0.9, "lr": 3e-3, "learning_starts": 64,
                         "init_temperature": 0.01, **kwargs})


def make_agent(demos: Any = None, seed: int = 0, **kwargs: Any) -> RLPD:
    env = PointGoalEnv()
    return RLPD(env.observation_space, env.action_space, demos, small_config(**kwargs), seed)


def test_demonstrations_make_the_toy_task_learnable_faster():
    """Same budget (300 env steps, UTD 4), 3 seeds, 20 held-out starts. Measured: with 10 expert
    episodes 1.0 / 1.0 / 1.0; without 0.0 / 0.45 / 0.05 (~3 s per run)."""
    with_demos, without = [], []
    for seed in range(3):
        demos = record(10, seed=1000 + 100 * seed)
        for demonstrations, results in ((demos, with_demos), (None, without)):
            agent = make_agent(demonstrations, seed=seed)
            agent.learn(PointGoalEnv(), 300, seed=seed)
            results.append(success_rate(agent))
    print(f"success after 300 steps: with demonstrations {with_demos}, without {without}")
    assert min(with_demos) >= 0.8, (with_demos, without)
    assert np.mean(with_demos) - np.mean(without) >= 0.5, (with_demos, without)


def test_learn_records_episodes_and_stops_on_callback():
    agent = make_agent(record(2, seed=0), learning_starts=16)
    seen: list[dict[str, Any]] = []
    records = agent.learn(PointGoalEnv(), 100, seed=0, info_keys=["is_success"],
                          callback=lambda a, r: seen.append(r) or len(seen) < 2)
    assert len(records) == 2 == len(seen)
    first = records[0]
    assert set(first) >= {"env_steps", "length", "return", "success", "terminated",
                          "truncated", "q0", "wall_s", "is_success"}
    assert first["terminated"] or first["truncated"]
    assert agent.env_steps == records[-1]["env_steps"] and agent.num_updates > 0


def test_save_and_load_round_trip(tmp_path):
    demos = record(3, seed=0)
    agent = make_agent(demos)
    agent.learn(PointGoalEnv(), 80, seed=0)
    path = agent.save(tmp_path / "agent.pt")
    # Only plain data inside: the weights_only unpickler reads it.
    torch.load(path, weights_only=True)
    loaded = RLPD.load(path, demonstrations=demos)
    obs = np.array([0.3, -0.5], np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True),
                                  loaded.act(obs, deterministic=True))
    np.testing.assert_allclose(agent.q_values(obs, expert(obs)),
                               loaded.q_values(obs, expert(obs)), rtol=1e-6)
    assert loaded.config == agent.config and loaded.alpha == pytest.approx(agent.alpha)
    assert loaded.env_steps == agent.env_steps and loaded.num_updates == agent.num_updates
    loaded.learn(PointGoalEnv(), 10, seed=1)  # optimisers restored: it trains on
    # Dict observation spaces survive the JSON round trip too.
    dict_space = spaces.Dict({"b": spaces.Box(-1, 1, (2,)), "a": spaces.Box(-1, 1, (3, 1))})
    dict_agent = RLPD(dict_space, spaces.Box(-2.0, 2.0, (1,)), None, small_config())
    reloaded = RLPD.load(dict_agent.save(tmp_path / "dict.pt"))
    assert list(reloaded.observation_space.spaces) == list(dict_space.spaces)
    sample = dict_space.sample()
    np.testing.assert_array_equal(dict_agent.act(sample, True), reloaded.act(sample, True))


def test_load_refuses_foreign_and_other_version_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        RLPD.load(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match=r"foreign\.pt: not an RLPD agent file"):
        RLPD.load(foreign)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.pt: not an RLPD agent file"):
        RLPD.load(text)

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "s3k-rlpd", "payload": Evil()}, evil)
    with pytest.raises(ValueError, match=r"evil\.pt: not an RLPD agent file"):
        RLPD.load(evil)
    agent = make_agent()
    state = agent.state()
    state["version"] = 99
    old = tmp_path / "old.pt"
    torch.save(state, old)
    with pytest.raises(ValueError, match=r"old\.pt: RLPD agent format version 99"):
        RLPD.load(old)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda e: e[1].update(observations=e[1]["observations"][:, :1]),
     r"episode 1: field 'observations': expected shape \(\d+, 2\)"),
    (lambda e: e[0].update(observations=e[0]["observations"][:-1]),
     r"episode 0: field 'observations': expected shape"),
    (lambda e: e[2].update(actions=np.zeros((len(e[2]["actions"]), 3))),
     r"episode 2: field 'actions': expected shape \(T, 2\)"),
    (lambda e: e[1]["observations"].__setitem__((2, 0), np.nan),
     r"episode 1: field 'observations' contains NaN or inf \(first at step 2"),
    (lambda e: e[0]["actions"].__setitem__((1, 1), np.inf),
     r"episode 0: field 'actions' contains NaN or inf \(first at step 1"),
    (lambda e: e[2]["rewards"].__setitem__(0, np.nan),
     r"episode 2: field 'rewards' contains NaN"),
    (lambda e: e[1].update(rewards=e[1]["rewards"][:-1]),
     r"episode 1: field 'rewards': expected shape"),
    (lambda e: e[0].pop("terminated"), r"episode 0: missing field\(s\) \['terminated'\]"),
    (lambda e: e[2]["actions"].__setitem__((0, 0), 5.0),
     r"episode 2: field 'actions' lies outside the action space"),
    (lambda e: e[1]["terminated"].__setitem__(0, True),
     r"episode 1: field 'terminated' is True at step 0"),
    (lambda e: e[0].update(observations={"pos": e[0]["observations"]}),
     r"episode 0: field 'observations' is a dict"),
])
def test_bad_demonstrations_name_episode_and_field(mutate, match):
    episodes = record(3, seed=0)
    for ep in episodes:
        ep["observations"] = ep["observations"].astype(np.float64)
        ep["actions"] = ep["actions"].astype(np.float64)
        ep["rewards"] = ep["rewards"].astype(np.float64)
    mutate(episodes)
    with pytest.raises(ValueError, match=match):
        make_agent(episodes)


def test_empty_demonstrations_and_dict_spaces_raise_clearly():
    with pytest.raises(ValueError, match="non-empty list of episodes"):
        make_agent([])
    space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "vel": spaces.Box(-1, 1, (2,))})
    episode = {"observations": {"pos": np.zeros((3, 2))}, "actions": np.zeros((2, 2)),
               "rewards": np.zeros(2), "terminated": np.zeros(2, bool)}
    with pytest.raises(ValueError, match="episode 0: field 'observations' has no key 'vel'"):
        validate_demonstrations([episode], space, spaces.Box(-1, 1, (2,)))
    episode["observations"]["vel"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"observations\['vel'\]': expected shape \(3, 2\)"):
        validate_demonstrations([episode], space, spaces.Box(-1, 1, (2,)))
    episode["observations"]["vel"] = np.ones((3, 2))
    packed = validate_demonstrations([episode], space, spaces.Box(-1, 1, (2,)))
    np.testing.assert_array_equal(packed["obs"][0], [0, 0, 1, 1])  # gymnasium flatten order
    with pytest.raises(TypeError, match="Box action space"):
        RLPD(space, spaces.Discrete(3))


def test_batches_are_half_demonstrations_half_online():
    agent = make_agent(record(3, seed=0), batch_size=64)
    batch = agent.sample_batch(64)  # no online data yet: all demonstrations
    assert batch["obs"].shape == (64, 2)
    for _ in range(10):
        agent.observe(np.array([0.9, 0.9]), np.array([0.5, 0.5]), -7.0, np.array([0.9, 0.9]),
                      False)
    batch = agent.sample_batch(64)
    online = (batch["rewards"] == -7.0).numpy()
    assert online.sum() == 32 and np.all(online[32:])
    np.testing.assert_allclose(batch["actions"][32:], 0.5)  # stored in [-1, 1] units


def test_ensemble_member_subset_matches_full_evaluation():
    critic = CriticEnsemble(4, 2, (8, 8), members=5, layer_norm=True)
    obs, act = torch.randn(7, 4), torch.randn(7, 2)
    full = critic(obs, act)
    members = torch.tensor([3, 1])
    torch.testing.assert_close(critic(obs, act, members), full[members])
    assert full.shape == (5, 7) and not torch.allclose(full[0], full[1])


def test_actor_every_delays_actor_updates():
    agent = make_agent(record(3, seed=0), actor_every=2, utd=1)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    first = agent.update()  # round 1: critic and actor
    assert "actor_loss" in first
    after_first = [p.detach().clone() for p in agent.actor.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after_first, strict=True))
    second = agent.update()  # round 2: critic only
    assert "actor_loss" not in second and "critic_loss" in second
    assert all(torch.equal(a, p) for a, p in zip(after_first, agent.actor.parameters(),
                                                  strict=True))
    with pytest.raises(ValueError, match="actor_every"):
        RLPDConfig(actor_every=0)


@pytest.mark.parametrize("bootstrap", [True, False])
def test_truncation_is_stored_terminal_only_without_bootstrap(bootstrap):
    """``bootstrap_truncation=False`` stores time-limit ends as terminal (no bootstrap);
    the default keeps bootstrapping them. A policy that never reaches the goal: every episode
    is truncated at 20 steps."""
    agent = make_agent(None, learning_starts=10_000, bootstrap_truncation=bootstrap)

    class Still(PointGoalEnv):
        def step(self, action):
            return super().step(np.zeros(2, np.float32))

    records = agent.learn(Still(), 40, seed=0)
    assert [r["truncated"] for r in records] == [True, True]
    stored = agent.online.terminated[: agent.online.size]
    assert int(stored.sum()) == (0 if bootstrap else 2)
    if not bootstrap:
        assert stored[19] == 1.0 and stored[39] == 1.0


@pytest.mark.parametrize("learn", [True, False])
def test_temperature_is_tuned_only_when_asked(learn):
    """``learn_temperature=False`` keeps alpha at ``init_temperature`` while the actor and
    critics still learn; the default moves it towards the target entropy."""
    agent = make_agent(record(3, seed=0), utd=1, learn_temperature=learn)
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    for _ in range(5):
        out = agent.update()
        assert "actor_loss" in out and "entropy" in out
    assert any(not torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters(),
                                                      strict=True))
    if learn:
        assert agent.alpha != pytest.approx(0.01, rel=1e-6)
    else:
        assert agent.alpha == pytest.approx(0.01, rel=1e-6)
