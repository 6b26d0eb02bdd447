"""Tests of agents/ddpgfd.py: the demonstration buffer's n-step returns, batch mixing, the
Q-filter and behaviour-cloning loss, L2, Dict flattening, the s3k_envs.demos adapter, save/load,
and that demonstrations make a toy sparse-reward task learnable within a few hundred steps."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.ddpgfd import (
    DDPGfD,
    DemoReplayBuffer,
    bc_loss,
    episodes_from_recording,
    flatten_dict_observations,
    flatten_observations,
    l2_penalty,
    q_filter_mask,
    validate_episodes,
)
from s3k_envs import demos as demos_io

torch.set_num_threads(1)


# --------------------------------------------------------------------------- toy task
class PointGoalEnv(gym.Env):
    """A point in the square [-1, 1]^2 that must reach a ball of radius ``goal_radius`` around
    the origin; sparse reward 1 on arrival (which terminates), 0 otherwise; ``max_steps``
    steps. Observation ``(2,)`` float32: the position; action ``(2,)`` in [-1, 1]: the
    displacement in units of ``step_size``. Starts 0.6..0.9 from the goal, so it takes >= 5
    well-aimed steps: random exploration rarely gets there."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, max_steps: int = 20, step_size: float = 0.1,
                 goal_radius: float = 0.1) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.max_steps, self.step_size, self.goal_radius = max_steps, step_size, goal_radius
        self.pos = np.zeros(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        radius = self.np_random.uniform(0.6, 0.9)
        self.pos, self.t = radius * np.array([np.cos(angle), np.sin(angle)]), 0
        return self.pos.astype(np.float32), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.pos = np.clip(self.pos + self.step_size * action, -1.0, 1.0)
        self.t += 1
        success = bool(np.linalg.norm(self.pos) < self.goal_radius)
        truncated = self.t >= self.max_steps and not success
        return self.pos.astype(np.float32), float(success), success, truncated, \
            {"is_success": success}


def expert(obs: np.ndarray) -> np.ndarray:
    """Scripted demonstrator of PointGoalEnv: head for the origin, saturated."""
    return np.clip(-np.asarray(obs) / 0.1, -1.0, 1.0).astype(np.float32)


def record(env: gym.Env, episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Expert episodes of ``env`` in the DemoEpisode format."""
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        observations, actions, rewards, terminated, truncated = [obs], [], [], [], []
        done = False
        while not done:
            action = expert(obs)
            obs, reward, term, trunc, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            done = term or trunc
        out.append({"observations": np.array(observations), "actions": np.array(actions),
                    "rewards": np.array(rewards), "terminated": np.array(terminated),
                    "truncated": np.array(truncated)})
    return out


def success_rate(model: DDPGfD, episodes: int = 20, seed: int = 10_000) -> float:
    env, successes = PointGoalEnv(), 0
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, term, trunc, info = env.step(action)
            done = term or trunc
        successes += info["is_success"]
    return successes / episodes


def make_model(env: Any = None, demonstrations: Any = None, **kwargs: Any) -> DDPGfD:
    kwargs = {"batch_size": 64, "gamma": 0.95, "learning_rate": 3e-3, "seed": 0,
              "policy_kwargs": {"net_arch": [64, 64]}, "device": "cpu",
              "action_noise": NormalActionNoise(np.zeros(2), 0.1 * np.ones(2)), **kwargs}
    return DDPGfD("MlpPolicy", env if env is not None else PointGoalEnv(),
                  demonstrations=demonstrations, **kwargs)


def test_toy_env_passes_the_env_checkers():
    env = PointGoalEnv()
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(PointGoalEnv(), warn=True)
    episode = record(env, 1, seed=0)[0]
    assert episode["terminated"][-1] and len(episode["actions"]) <= 10


# --------------------------------------------------------------------------- n-step returns
OBS_1D = spaces.Box(-100.0, 100.0, (1,), np.float32)
ACT_1D = spaces.Box(-2.0, 2.0, (1,), np.float32)


def episode_1d(obs: list[float], rewards: list[float], end: str) -> dict[str, np.ndarray]:
    """A 1-D episode whose last step ends it by ``end`` ("terminated", "truncated", "none")."""
    steps = len(rewards)
    flags = {k: np.zeros(steps, bool) for k in ("terminated", "truncated")}
    if end != "none":
        flags[end][-1] = True
    return {"observations": np.array(obs, np.float32)[:, None],
            "actions": np.linspace(-2.0, 2.0, steps)[:, None], "rewards": np.array(rewards),
            **flags}


def columns(samples: Any) -> dict[str, np.ndarray]:
    return {k: getattr(samples, k).numpy().reshape(len(samples.rewards), -1)[:, 0]
            for k in ("observations", "next_observations", "rewards", "dones", "discounts")}


def test_n_step_returns_of_a_terminated_episode():
    buffer = DemoReplayBuffer([episode_1d([0, 1, 2, 3, 4], [1, 2, 3, 4], "terminated")],
                              OBS_1D, ACT_1D, device="cpu", n_steps=3, gamma=0.5)
    got = columns(buffer.samples_at([0, 1, 2, 3]))
    np.testing.assert_allclose(got["rewards"], [1 + 0.5 * 2 + 0.25 * 3,   # 2.75
                                                2 + 0.5 * 3 + 0.25 * 4,   # 4.5
                                                3 + 0.5 * 4,              # 5 (stops at the end)
                                                4])
    np.testing.assert_array_equal(got["observations"], [0, 1, 2, 3])
    np.testing.assert_array_equal(got["next_observations"], [3, 4, 4, 4])
    # The returns that reach the termination are not bootstrapped.
    np.testing.assert_array_equal(got["dones"], [0, 1, 1, 1])
    np.testing.assert_allclose(got["discounts"], [0.125, 0.125, 0.25, 0.5])


@pytest.mark.parametrize("end", ["truncated", "none"])
def test_n_step_returns_of_a_truncated_episode_bootstrap(end):
    buffer = DemoReplayBuffer([episode_1d([0, 1, 2, 3, 4], [1, 2, 3, 4], end)],
                              OBS_1D, ACT_1D, device="cpu", n_steps=3, gamma=0.5)
    got = columns(buffer.samples_at([0, 1, 2, 3]))
    np.testing.assert_allclose(got["rewards"], [2.75, 4.5, 5.0, 4.0])
    np.testing.assert_array_equal(got["next_observations"], [3, 4, 4, 4])
    # Truncated (or simply ended): bootstrap from the final observation with gamma ** k.
    np.testing.assert_array_equal(got["dones"], [0, 0, 0, 0])
    np.testing.assert_allclose(got["discounts"], [0.125, 0.125, 0.25, 0.5])


def test_n_step_returns_never_cross_episodes():
    a = episode_1d([10, 11, 12], [1, 1], "truncated")
    b = episode_1d([20, 21, 22, 23], [5, 5, 5], "terminated")
    buffer = DemoReplayBuffer([a, b], OBS_1D, ACT_1D, device="cpu", n_steps=3, gamma=0.5)
    assert buffer.num_episodes == 2 and buffer.size() == 5
    np.testing.assert_array_equal(buffer.episode_starts, [0, 2, 5])
    got = columns(buffer.samples_at(np.arange(5)))
    np.testing.assert_allclose(got["rewards"], [1.5, 1.0, 8.75, 7.5, 5.0])
    np.testing.assert_array_equal(got["next_observations"], [12, 12, 23, 23, 23])
    np.testing.assert_array_equal(got["dones"], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(got["discounts"], [0.25, 0.5, 0.125, 0.25, 0.5])
    # n_steps = 1 is the ordinary one-step target.
    one = DemoReplayBuffer([a, b], OBS_1D, ACT_1D, device="cpu", n_steps=1, gamma=0.5)
    got = columns(one.samples_at(np.arange(5)))
    np.testing.assert_allclose(got["rewards"], [1, 1, 5, 5, 5])
    np.testing.assert_array_equal(got["next_observations"], [11, 12, 21, 22, 23])
    np.testing.assert_array_equal(got["dones"], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(got["discounts"], [0.5] * 5)


def test_demo_buffer_scales_actions_and_is_read_only():
    episode = episode_1d([0, 1, 2, 3, 4], [0, 0, 0, 1], "terminated")
    episode["actions"] = np.array([[-2.0], [0.0], [1.0], [2.0]])
    buffer = DemoReplayBuffer([episode], OBS_1D, ACT_1D, device="cpu")
    # SB3 stores actions scaled from [low, high] to [-1, 1].
    np.testing.assert_allclose(buffer.actions[:, 0, 0], [-1.0, 0.0, 0.5, 1.0])
    assert buffer.sample(7).observations.shape == (7, 1)
    with pytest.raises(TypeError, match="read-only"):
        buffer.add(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), [{}])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        buffer.samples_at([4])


def test_validation_names_what_was_expected_and_what_came():
    good = episode_1d([0, 1, 2], [0, 1], "terminated")
    with pytest.raises(ValueError, match=r"episode 0: observations: expected shape \(3, 2\).*"
                                         r"got \(3, 1\)"):
        validate_episodes([good], spaces.Box(-1, 1, (2,)), ACT_1D)
    with pytest.raises(ValueError, match=r"actions: expected shape \(T, 3\).*got \(2, 1\)"):
        validate_episodes([good], OBS_1D, spaces.Box(-1, 1, (3,)))
    bad = {**good, "terminated": np.array([True, False])}
    with pytest.raises(ValueError, match="terminated is True at step 0 of 2"):
        validate_episodes([bad], OBS_1D, ACT_1D)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['rewards'\]"):
        validate_episodes([{k: v for k, v in good.items() if k != "rewards"}], OBS_1D, ACT_1D)
    with pytest.raises(ValueError, match="rewards contain NaN"):
        validate_episodes([{**good, "rewards": np.array([0.0, np.nan])}], OBS_1D, ACT_1D)
    with pytest.raises(ValueError, match=r"rewards: expected shape \(2,\)"):
        validate_episodes([{**good, "rewards": np.zeros(3)}], OBS_1D, ACT_1D)
    with pytest.raises(ValueError, match="flatten_dict_observations"):
        validate_episodes([{**good, "observations": {"x": good["observations"]}}], OBS_1D,
                          ACT_1D)
    with pytest.raises(TypeError, match="flatten_dict_observations"):
        validate_episodes([good], spaces.Dict({"x": OBS_1D}), ACT_1D)
    with pytest.raises(ValueError, match="bounded action space"):
        validate_episodes([good], OBS_1D, spaces.Box(-np.inf, np.inf, (1,)))
    with pytest.raises(ValueError, match="at least one episode"):
        validate_episodes([], OBS_1D, ACT_1D)
    with pytest.warns(UserWarning, match="1 of 2 demonstration actions lay outside"):
        (clean,) = validate_episodes([{**good, "actions": np.array([[0.5], [7.0]])}], OBS_1D,
                                     ACT_1D)
    np.testing.assert_allclose(clean["actions"][:, 0], [0.5, 2.0])


# --------------------------------------------------------------------------- losses
def test_q_filter_mask_keeps_demo_actions_the_critic_rates_higher():
    q_demo = torch.tensor([[1.0], [2.0], [3.0], [-1.0]])
    q_policy = torch.tensor([[2.0], [2.0], [1.0], [-1.5]])
    assert q_filter_mask(q_demo, q_policy).tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="differ in shape"):
        q_filter_mask(q_demo, q_policy[:, 0])


def test_bc_loss_value_and_gradient():
    policy = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0]], requires_grad=True)
    demo = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([True, False, True])
    # Squared errors summed over the action dims: 1, 2, 0.25; averaged over all 3 samples.
    assert bc_loss(policy, demo).item() == pytest.approx((1 + 2 + 0.25) / 3)
    loss = bc_loss(policy, demo, mask)
    assert loss.item() == pytest.approx((1 + 0.25) / 3)
    loss.backward()
    expected = 2 * (policy - demo).detach() * mask[:, None] / 3
    torch.testing.assert_close(policy.grad, expected)
    assert bc_loss(policy[:0], demo[:0]).item() == 0.0


def test_l2_penalty_counts_weights_not_biases():
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -3.0]]))
        layer.bias.fill_(100.0)
    assert l2_penalty(layer).item() == pytest.approx(14.0)
    assert l2_penalty(torch.nn.ReLU()).item() == 0.0


# --------------------------------------------------------------------------- agent
def marked_demos(value: float = 0.777, episodes: int = 2) -> list[dict[str, np.ndarray]]:
    """Toy demonstrations whose every observation equals ``value`` (to spot them in a batch)."""
    out = record(PointGoalEnv(), episodes, seed=0)
    for episode in out:
        episode["observations"] = np.full_like(episode["observations"], value)
    return out


def fill_agent_buffer(model: DDPGfD, n: int = 50, value: float = -0.3) -> None:
    obs = np.full((1, 2), value, np.float32)
    for _ in range(n):
        model.replay_buffer.add(obs, obs, np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])


@pytest.mark.parametrize("n_steps", [1, 3])
def test_batches_hold_the_demo_fraction(n_steps):
    model = make_model(demonstrations=marked_demos(), n_steps=n_steps, demo_fraction=0.25)
    fill_agent_buffer(model)
    samples, is_demo = model.sample_batch(64)
    assert samples.observations.shape == (64, 2) and is_demo.shape == (64,)
    assert int(is_demo.sum()) == 16 and not bool(is_demo[:48].any())
    from_demos = torch.isclose(samples.observations[:, 0], torch.tensor(0.777))
    assert torch.equal(from_demos, is_demo)
    # Every row has its bootstrap factor, gamma ** k with 1 <= k <= n_steps.
    discounts = samples.discounts[:, 0]
    assert bool(((discounts <= 0.95 + 1e-6) & (discounts >= 0.95 ** n_steps - 1e-6)).all())

    model.demo_fraction = 0.0
    assert int(model.sample_batch(64)[1].sum()) == 0
    model.demo_fraction = 1.0
    assert int(model.sample_batch(64)[1].sum()) == 64


def test_batches_without_demonstrations_or_without_agent_data():
    model = make_model(demonstrations=None, n_steps=1)
    assert model.demo_buffer is None and model.demo_batch_size(64) == 0
    fill_agent_buffer(model)
    samples, is_demo = model.sample_batch(32)
    assert not bool(is_demo.any())
    torch.testing.assert_close(samples.discounts, torch.full((32, 1), 0.95))
    # While the agent has stored nothing, the batch comes from the demonstrations alone.
    model = make_model(demonstrations=marked_demos())
    assert model.demo_batch_size(64) == 64
    assert bool(model.sample_batch(64)[1].all())


def test_learning_starts_default_and_argument_checks():
    assert make_model(demonstrations=marked_demos()).learning_starts == 0
    assert make_model(demonstrations=None).learning_starts == 100
    assert make_model(demonstrations=marked_demos(), learning_starts=7).learning_starts == 7
    for kwargs, match in (({"demo_fraction": 1.5}, "demo_fraction"),
                          ({"n_steps": 0}, "n_steps"), ({"bc_weight": -1.0}, "bc_weight"),
                          ({"critic_l2": float("nan")}, "critic_l2")):
        with pytest.raises(ValueError, match=match):
            make_model(**kwargs)
    with pytest.raises(ValueError, match=r"expected shape \(\d+, 2\).*got \(\d+, 3\)"):
        make_model(demonstrations=[{**marked_demos()[0],
                                    "observations": np.zeros((len(marked_demos()[0]["actions"])
                                                              + 1, 3))}])


def test_training_logs_each_ingredient_and_switches_them_off():
    model = make_model(demonstrations=marked_demos(0.5, episodes=3), batch_size=32)
    model.learn(40)
    model.train(gradient_steps=2, batch_size=32)
    logged = model.logger.name_to_value
    for key in ("critic_td_loss", "critic_l2_loss", "actor_q_loss", "bc_loss", "q_filter_pass",
                "actor_l2_loss"):
        assert np.isfinite(logged[f"train/{key}"]), key
    assert logged["train/demo_samples"] == 8
    assert 0.0 <= logged["train/q_filter_pass"] <= 1.0
    assert logged["train/critic_l2_loss"] > 0 and logged["train/actor_l2_loss"] > 0

    model = make_model(demonstrations=marked_demos(0.5), batch_size=32, bc_weight=0.0,
                       actor_l2=0.0, critic_l2=0.0)
    model.learn(10)
    model.train(gradient_steps=2, batch_size=32)
    logged = model.logger.name_to_value
    assert "train/actor_q_loss" in logged
    for key in ("bc_loss", "q_filter_pass", "actor_l2_loss", "critic_l2_loss"):
        assert f"train/{key}" not in logged, key

    model = make_model(demonstrations=marked_demos(0.5), batch_size=32, q_filter=False)
    model.learn(10)
    model.train(gradient_steps=2, batch_size=32)
    assert "train/bc_loss" in model.logger.name_to_value
    assert "train/q_filter_pass" not in model.logger.name_to_value


def test_vectorised_envs_and_save_load(tmp_path):
    demos = record(PointGoalEnv(), 3, seed=0)
    venv = DummyVecEnv([PointGoalEnv, PointGoalEnv])
    model = make_model(venv, demonstrations=demos, batch_size=32,
                       action_noise=NormalActionNoise(np.zeros(2), 0.1 * np.ones(2)))
    model.learn(30)
    path = tmp_path / "ddpgfd.zip"
    model.save(path)
    data, _, _ = load_from_zip_file(path)
    assert "demonstrations" not in data and "demo_buffer" not in data
    assert data["bc_weight"] == 1.0 and data["learning_starts"] == 0

    obs = np.array([[0.5, -0.5], [-0.2, 0.7]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no "n_steps is ignored" from SB3
        loaded = DDPGfD.load(path, env=DummyVecEnv([PointGoalEnv, PointGoalEnv]), device="cpu")
    assert loaded.n_steps == 5 and loaded.replay_buffer.n_steps == 5
    assert loaded.demo_buffer is None and loaded.demonstrations is None
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0],
                               model.predict(obs, deterministic=True)[0], atol=1e-6)
    loaded = DDPGfD.load(path, env=DummyVecEnv([PointGoalEnv, PointGoalEnv]), device="cpu",
                         demonstrations=demos)
    assert loaded.demo_buffer is not None and loaded.demo_buffer.num_episodes == 3
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 40
    loaded.set_demonstrations(None)
    assert loaded.demo_buffer is None


# --------------------------------------------------------------------------- Dict observations
class DictPointGoalEnv(gym.ObservationWrapper):
    """PointGoalEnv with a Dict observation: ``pos`` (2,) and ``tag`` (1, 2) (a constant)."""

    def __init__(self) -> None:
        super().__init__(PointGoalEnv())
        self.observation_space = spaces.Dict({
            "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "tag": spaces.Box(-5.0, 5.0, (1, 2), np.float32)})

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return {"pos": observation, "tag": np.array([[3.0, -3.0]], np.float32)}


def dict_demos(episodes: int) -> list[dict[str, Any]]:
    out = record(PointGoalEnv(), episodes, seed=0)
    for episode in out:
        n = len(episode["observations"])
        episode["observations"] = {
            "pos": episode["observations"], "tag": np.tile([[[3.0, -3.0]]], (n, 1, 1)),
            "images": np.zeros((n, 4, 4, 3), np.uint8)}  # extra keys are ignored
    return out


def test_flatten_dict_observations_matches_the_env():
    env = DictPointGoalEnv()
    for policy in ("MlpPolicy", "MultiInputPolicy"):
        with pytest.raises(ValueError, match="flatten_dict_observations"):
            DDPGfD(policy, env, demonstrations=dict_demos(1))
        with pytest.raises(ValueError, match="flatten_dict_observations"):
            DDPGfD(policy, env, n_steps=3)
    flat_env, flat_demos = flatten_dict_observations(env, dict_demos(2))
    assert flat_env.observation_space.shape == (4,)
    obs, _ = flat_env.reset(seed=0)
    # The env's flat observation and the flattened demonstration agree key by key.
    raw, _ = PointGoalEnv().reset(seed=0)
    np.testing.assert_allclose(obs, [*raw, 3.0, -3.0])
    np.testing.assert_allclose(flat_demos[0]["observations"][0], obs)
    np.testing.assert_allclose(
        flatten_observations({"pos": raw[None], "tag": np.array([[[3.0, -3.0]]])},
                             env.observation_space), obs[None])
    model = make_model(flat_env, demonstrations=flat_demos, batch_size=16)
    model.learn(10)
    with pytest.raises(ValueError, match=r"episode 0: observations lack key\(s\) \['tag'\]"):
        flatten_dict_observations(env, [{**dict_demos(1)[0],
                                         "observations": {"pos": np.zeros((3, 2))}}])
    with pytest.raises(ValueError, match=r"observations\['tag'\]: expected shape \(N, 1, 2\)"):
        flatten_observations({"pos": np.zeros((3, 2)), "tag": np.zeros((3, 2))},
                             env.observation_space)
    same_env, same = flatten_dict_observations(PointGoalEnv(), record(PointGoalEnv(), 1, 0))
    assert isinstance(same_env, PointGoalEnv) and same[0]["observations"].shape[1:] == (2,)


def test_dict_observations_without_demonstrations_run_as_td3(tmp_path):
    model = DDPGfD("MultiInputPolicy", DictPointGoalEnv(), n_steps=1, learning_starts=5,
                   batch_size=8, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    model.learn(12)
    assert model.demo_buffer is None and "train/actor_q_loss" in model.logger.name_to_value
    model.save(tmp_path / "dict.zip")
    loaded = DDPGfD.load(tmp_path / "dict.zip", env=DictPointGoalEnv(), device="cpu")
    assert loaded.n_steps == 1


# --------------------------------------------------------------------------- s3k_envs.demos adapter
def recorded_episode(seed: int, steps: int) -> dict[str, Any]:
    """An episode as s3k_envs.demos.run_episode returns it (random numbers, right layout)."""
    rng = np.random.default_rng(seed)
    n = steps + 1
    return {
        "observations": {"gripper_pos": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
                         "images": rng.integers(0, 255, (n, 2, 4, 4, 3), dtype=np.uint8)},
        "actions": rng.uniform(-1, 1, (steps, 6)).astype(np.float32),
        "rewards": -rng.uniform(0, 1, steps), "terminated": np.arange(steps) == steps - 1,
        "truncated": np.zeros(steps, bool),
        "infos": {"keypoints": rng.uniform(-1, 1, (n, 3, 3)).astype(np.float32),
                  "keypoints_2d": rng.uniform(0, 4, (n, 2, 3, 2)).astype(np.float32),
                  "keypoints_visible": np.ones((n, 2, 3), bool), "is_success": np.zeros(n, bool)},
        "seed": seed, "success": True,
    }


def test_episodes_from_recording_reads_the_agents_demos_format(tmp_path):
    path = demos_io.save_demonstrations(
        tmp_path / "demos.npz", [recorded_episode(0, 4), recorded_episode(1, 6)],
        {"format_version": demos_io.FORMAT_VERSION, "env_id": "test"})
    with pytest.raises(ValueError, match="holds 2 episodes, 51 requested"):
        episodes_from_recording(path)
    episodes = episodes_from_recording(path, keys=["gripper_pos"], num_episodes=None)
    assert [len(e["actions"]) for e in episodes] == [4, 6] and episodes[1]["seed"] == 1
    assert list(episodes[0]["observations"]) == ["gripper_pos"]
    assert episodes[0]["terminated"][-1] and not episodes[0]["truncated"].any()

    # Privileged keypoints from info, as a keypoint-observation agent would see them.
    loaded = demos_io.load_demonstrations(path)
    with_keypoints = episodes_from_recording(
        loaded, num_episodes=1, keys=["gripper_pos", "keypoints"],
        observation_fn=lambda obs, info: {**obs, "keypoints": info["keypoints"]})
    assert len(with_keypoints) == 1
    np.testing.assert_allclose(with_keypoints[0]["observations"]["keypoints"],
                               loaded[0]["infos"]["keypoints"])
    space = spaces.Dict({"gripper_pos": spaces.Box(-1, 1, (3,), np.float32),
                         "keypoints": spaces.Box(-1, 1, (3, 3), np.float32)})
    flat = flatten_observations(with_keypoints[0]["observations"], space)
    assert flat.shape == (5, 12)
    np.testing.assert_allclose(flat[:, 3:], loaded[0]["infos"]["keypoints"].reshape(5, 9))
    (clean,) = validate_episodes([{**with_keypoints[0], "observations": flat}],
                                 spaces.flatten_space(space), spaces.Box(-1, 1, (6,)))
    assert clean["observations"].shape == (5, 12)
    with pytest.raises(ValueError, match=r"no observation key\(s\) \['socket'\]"):
        episodes_from_recording(loaded, keys=["socket"], num_episodes=1)


# --------------------------------------------------------------------------- learning
def test_demonstrations_make_the_toy_task_learnable_faster():
    """Same budget (150 env steps, one gradient step each), 3 seeds: with 10 expert episodes
    the agent reaches the goal nearly always; without, almost never (measured on 20 held-out
    starts: 1.0, 1.0, 1.0 with demonstrations; 0.0, 0.0, 0.2 without)."""
    with_demos, without = [], []
    for seed in range(3):
        demos = record(PointGoalEnv(), 10, seed=1000 + 100 * seed)
        for demonstrations, results in ((demos, with_demos), (None, without)):
            model = make_model(demonstrations=demonstrations, seed=seed)
            model.learn(150)
            results.append(success_rate(model))
    print(f"success after 150 steps, seeds 0-2: with demonstrations {with_demos}, "
          f"without {without}")
    assert min(with_demos) >= 0.6, (with_demos, without)
    assert np.mean(with_demos) - np.mean(without) >= 0.5, (with_demos, without)


def test_pretraining_runs_on_demonstrations_alone_once(tmp_path):
    demos = record(PointGoalEnv(), 5, seed=0)
    model = make_model(demonstrations=demos, pretrain_steps=40)
    seen: list[int] = []
    sample = model.sample_batch

    def spy(batch_size: int) -> Any:
        samples, is_demo = sample(batch_size)
        seen.append(int(is_demo.sum()))
        return samples, is_demo

    model.sample_batch = spy  # type: ignore[method-assign]
    fill_agent_buffer(model)  # even with agent data stored, pre-training uses demos only
    model.learn(1)
    assert seen[:40] == [64] * 40 and model.pretrained_steps == 40
    assert seen[40:] == [round(0.25 * 64)] * (len(seen) - 40)
    model.save(tmp_path / "m.zip")
    loaded = DDPGfD.load(tmp_path / "m.zip", env=PointGoalEnv(), demonstrations=demos)
    assert loaded.pretrained_steps == 40
    n_before = loaded._n_updates
    loaded.learn(1, reset_num_timesteps=False)
    assert loaded._n_updates - n_before <= 1  # not pre-trained again
    with pytest.raises(ValueError, match="pretrain_steps"):
        make_model(demonstrations=demos, pretrain_steps=-1)
