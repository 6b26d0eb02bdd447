"""DDPG from demonstrations (DDPGfD) on top of Stable-Baselines3's TD3, for any Gymnasium env.

The S3K paper's RL agent (§6.2) is "a DPG agent with demonstrations" that starts from 51
successful episodes of the cable insertion task. :class:`DDPGfD` is that agent, built from
SB3 parts without forking them (it subclasses :class:`~stable_baselines3.TD3` and SB3's
:class:`~stable_baselines3.common.buffers.NStepReplayBuffer`). Its ingredients, each
switchable, and the paper each comes from:

==============================  ==================================  ===========================
ingredient                      source                              switch
==============================  ==================================  ===========================
twin critics, target policy     TD3: Fujimoto et al. 2018,          (always on: SB3's TD3)
smoothing, delayed actor        "Addressing Function Approximation
updates                         Error in Actor-Critic Methods"
demonstrations kept for good    DDPGfD: Vecerik et al. 2017,        ``demonstrations=None``,
in a buffer of their own and    "Leveraging Demonstrations for      ``demo_fraction=0``
mixed into every batch          Deep RL on Robotics Problems with
                                Sparse Rewards" (after DQfD: Hester
                                et al. 2018, "Deep Q-learning from
                                Demonstrations")
n-step returns in the critic    DQfD / DDPGfD                       ``n_steps=1``
target
L2 on the weights of actor and  DQfD / DDPGfD                       ``actor_l2=0``,
critic                                                              ``critic_l2=0``
behaviour-cloning loss on the   Nair et al. 2018, "Overcoming       ``bc_weight=0``
demonstration samples           Exploration in Reinforcement
                                Learning with Demonstrations"
Q-filter on that loss           Nair et al. 2018                    ``q_filter=False``
pre-training on the             DQfD: Hester et al. 2018            ``pretrain_steps=0``
demonstrations alone before                                         (the default)
any env interaction
==============================  ==================================  ===========================

Differences from the papers, all deliberate:

* DDPGfD samples demonstrations through prioritized replay with a priority bonus; SB3 (and
  sb3-contrib) have no prioritized replay, so here a fixed fraction ``demo_fraction`` of every
  batch comes from the demonstrations (as in Nair et al. 2018, who use a separate demo batch).
* DDPGfD (like DQfD) sums a 1-step and an n-step critic loss; here the critic is trained on the
  n-step target alone, the way SB3's ``NStepReplayBuffer`` defines it (cut at episode ends,
  bootstrapped after a truncation, not after a termination). ``n_steps=1`` is the 1-step loss.
* DDPGfD has one critic; TD3's twin critics are kept because, on a toy sparse insertion task
  tried while scoping this module, a single critic was not stable enough with demonstrations.

What each ingredient buys, measured on the toy sparse-reward task of ``tests/test_ddpgfd.py``
(2-D point to a goal, reward 1 on arrival; 10 expert episodes, 150 env steps, success rate on
20 held-out starts, seeds 0/1/2): everything on 1.0/1.0/1.0; no demonstrations 0.0/0.0/0.2;
demonstrations without the BC term 0.0/0.0/0.05 (n_steps=5) and 0.0/0.0/0.15 (n_steps=1);
BC with n_steps=1 0.7/0.7/1.0; BC without the Q-filter 1.0/1.0/1.0. At so small a budget the
BC term does the work and n-step returns help it; the Q-filter (Nair et al.'s guard against
cloning a worse-than-learned demonstrator) makes no difference here, the demonstrator being
optimal.

Episode format (:class:`DemoEpisode`, the minimal one; extra keys are ignored). ``T >= 1`` steps:

=================  ========================  ==================================================
key                shape                     meaning
=================  ========================  ==================================================
``observations``   ``(T+1, *obs_shape)``     observation ``t`` is the one action ``t`` was
                                             chosen from; the last is the final state. A dict
                                             of such arrays for a ``Dict`` observation space
                                             (flatten it with :func:`flatten_dict_observations`)
``actions``        ``(T, *action_shape)``    actions in the env's own units (as passed to
                                             ``env.step``); clipped into the action space
``rewards``        ``(T,)``                  rewards
``terminated``     ``(T,)`` bool             only the last step may be True
``truncated``      ``(T,)`` bool             only the last step may be True
=================  ========================  ==================================================

An episode whose last step is neither terminated nor truncated is treated as truncated (the
recording stopped; the final observation is bootstrapped from). A step both terminated and
truncated counts as terminated, as in SB3's vec envs. :func:`episodes_from_recording` converts
the files of :mod:`s3k_envs.demos` to this format.

Typical use on the keypoint-observation cable task::

    env = gym.make("S3K-CableInsert-v0", obs_mode="keypoints")        # Dict observations
    kp = env.get_wrapper_attr("observation")   # KeypointObservation.observation: images -> kps
    demos = episodes_from_recording("runs/demos/cable.npz",          # 51 episodes by default
                                    observation_fn=lambda obs, info: kp(obs))
    env, demos = flatten_dict_observations(env, demos)               # Box obs, same layout
    model = DDPGfD("MlpPolicy", env, demonstrations=demos,
                   action_noise=NormalActionNoise(np.zeros(6), 0.1 * np.ones(6)))
    model.learn(40_000)
    model.save("runs/ddpgfd/cable")            # the demonstrations are not saved:
    model = DDPGfD.load("runs/ddpgfd/cable", env=env, demonstrations=demos)
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import TD3
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.td3.policies import TD3Policy
from torch.nn import functional as F

#: Number of expert episodes the S3K paper's agent starts from (§6.2), the default of
#: :func:`episodes_from_recording` and of ``python -m s3k_envs.demos``.
DEFAULT_NUM_DEMONSTRATIONS = 51
#: ``learning_starts`` of :class:`DDPGfD` without demonstrations (TD3's default).
LEARNING_STARTS_WITHOUT_DEMOS = 100
_EPISODE_KEYS = ("observations", "actions", "rewards", "terminated", "truncated")


class DemoEpisode(TypedDict):
    """One demonstration episode of ``T >= 1`` steps (see the module docstring).

    Attributes:
        observations: ``(T+1, *obs_shape)`` array, or a dict of ``(T+1, ...)`` arrays for a
            ``Dict`` observation space.
        actions: ``(T, *action_shape)`` actions in the env's units.
        rewards: ``(T,)`` rewards.
        terminated: ``(T,)`` bool, only the last may be True.
        truncated: ``(T,)`` bool, only the last may be True.
    """

    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


# --------------------------------------------------------------------------- episodes
def validate_episodes(episodes: Sequence[Mapping[str, Any]], observation_space: spaces.Space,
                      action_space: spaces.Space) -> list[DemoEpisode]:
    """Check demonstration episodes against the spaces and return clean copies.

    Args:
        episodes: :class:`DemoEpisode` mappings (extra keys are ignored).
        observation_space: a ``Box`` (flatten ``Dict`` observations first, see
            :func:`flatten_dict_observations`).
        action_space: a ``Box``.

    Returns:
        New :class:`DemoEpisode` dicts: ``observations`` ``(T+1, *obs_shape)`` in the space's
        dtype, ``actions`` ``(T, *action_shape)`` float32 clipped into the action space (a
        ``UserWarning`` says how many lay outside it by more than 0.1 % of its range),
        ``rewards`` ``(T,)`` float32, ``terminated`` / ``truncated`` ``(T,)`` bool.

    Raises:
        ValueError: no episodes, a missing key, a wrong shape (the message gives the expected
            and the received shapes), non-finite values, a dict of observations for a ``Box``
            space, or a terminated/truncated flag before the last step.
        TypeError: a space that is not a ``Box``, or an episode that is not a mapping.
    """
    if not isinstance(observation_space, spaces.Box):
        raise TypeError(
            f"demonstrations need a Box observation space, got {observation_space}; for Dict "
            "observations wrap the env and the episodes with flatten_dict_observations(env, "
            "episodes)")
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"demonstrations need a Box action space, got {action_space}")
    if len(episodes) == 0:
        raise ValueError("demonstrations: expected at least one episode, got none")
    obs_shape, act_shape = tuple(observation_space.shape), tuple(action_space.shape)
    low = np.broadcast_to(action_space.low, act_shape).astype(np.float64)
    high = np.broadcast_to(action_space.high, act_shape).astype(np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"demonstrations need a bounded action space (TD3 scales actions to "
                         f"[-1, 1]), got {action_space}")
    tolerance = 1e-3 * (high - low)
    clean: list[DemoEpisode] = []
    outside = total = 0
    for i, episode in enumerate(episodes):
        who = f"demonstration episode {i}"
        if not isinstance(episode, Mapping):
            raise TypeError(f"{who}: expected a mapping with keys {list(_EPISODE_KEYS)}, got "
                            f"{type(episode).__name__}")
        missing = [k for k in _EPISODE_KEYS if k not in episode]
        if missing:
            raise ValueError(
                f"{who}: missing key(s) {missing}; expected observations (T+1, *obs_shape), "
                "actions (T, *action_shape), rewards (T,), terminated (T,), truncated (T,) "
                f"(got keys {sorted(episode)})")
        if isinstance(episode["observations"], Mapping):
            raise ValueError(
                f"{who}: observations is a dict (keys {sorted(episode['observations'])}) but the "
                f"observation space is a Box {obs_shape}; flatten both with "
                "flatten_dict_observations(env, episodes)")
        actions = np.asarray(episode["actions"], dtype=np.float64)
        steps = len(actions) if actions.ndim else 0
        if steps < 1 or actions.shape[1:] != act_shape:
            raise ValueError(f"{who}: actions: expected shape (T, {_shape(act_shape)}) with T >= "
                             f"1, got {actions.shape}")
        observations = np.asarray(episode["observations"])
        if observations.shape != (steps + 1, *obs_shape):
            raise ValueError(
                f"{who}: observations: expected shape ({steps + 1}, {_shape(obs_shape)}) = "
                f"(T+1, *observation_space.shape) for its T = {steps} actions, got "
                f"{observations.shape}")
        if observations.dtype.kind not in "biuf":
            raise ValueError(f"{who}: observations: expected numbers, got dtype "
                             f"{observations.dtype}")
        rewards = np.asarray(episode["rewards"], dtype=np.float64)
        flags = {k: np.asarray(episode[k]) for k in ("terminated", "truncated")}
        for name, arr in (("rewards", rewards), *flags.items()):
            if arr.shape != (steps,):
                raise ValueError(f"{who}: {name}: expected shape ({steps},) = (T,), got "
                                 f"{arr.shape}")
        for name, arr in (("observations", observations), ("actions", actions),
                          ("rewards", rewards)):
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"{who}: {name} contain NaN or inf")
        for name, arr in flags.items():
            if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"{who}: {name}: expected booleans, got values "
                                 f"{np.unique(arr)[:5]}")
            if np.any(arr[:-1].astype(bool)):
                raise ValueError(
                    f"{who}: {name} is True at step {int(np.argmax(arr[:-1].astype(bool)))} of "
                    f"{steps}; only the last step of an episode may end it (split the episode)")
        outside += int(np.sum(np.any((actions < low - tolerance) | (actions > high + tolerance),
                                     axis=tuple(range(1, actions.ndim)))))
        total += steps
        clean.append(DemoEpisode(
            observations=observations.astype(observation_space.dtype),
            actions=np.clip(actions, low, high).astype(np.float32),
            rewards=rewards.astype(np.float32),
            terminated=flags["terminated"].astype(bool),
            truncated=flags["truncated"].astype(bool),
        ))
    if outside:
        warnings.warn(f"{outside} of {total} demonstration actions lay outside the action space "
                      f"[{action_space.low.min()}, {action_space.high.max()}] and were clipped "
                      "into it; are they in the env's units?", stacklevel=2)
    return clean


def _shape(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape) if shape else ""


def flatten_observations(observations: Mapping[str, np.ndarray],
                         space: spaces.Dict) -> np.ndarray:
    """Flatten a dict of stacked observations the way ``gymnasium.wrappers.FlattenObservation``
    flattens one (``gymnasium.spaces.flatten``: the space's keys in its order, each entry
    raveled; keys the space does not have are ignored).

    Args:
        observations: ``{key: (N, *space[key].shape)}`` arrays.
        space: the ``Dict`` observation space.

    Returns:
        ``(N, flatdim(space))`` array in ``flatten_space(space).dtype``.

    Raises:
        ValueError: a key of the space is missing, or an entry has the wrong shape or length.
    """
    if not isinstance(space, spaces.Dict):
        raise TypeError(f"flatten_observations: expected a Dict space, got {space}")
    missing = [k for k in space.spaces if k not in observations]
    if missing:
        raise ValueError(f"observations lack key(s) {missing} of the observation space (its keys "
                         f"are {list(space.spaces)}, the observations have {sorted(observations)})")
    lengths = {k: len(observations[k]) for k in space.spaces}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"observation entries have different lengths: {lengths}")
    n = next(iter(lengths.values()))
    for key, sub in space.spaces.items():
        got = np.shape(observations[key])[1:]
        if got != tuple(sub.shape or ()):
            raise ValueError(f"observations[{key!r}]: expected shape (N, {_shape(sub.shape)}), "
                             f"got {np.shape(observations[key])}")
    flat_space = spaces.flatten_space(space)
    out = np.empty((n, *flat_space.shape), dtype=flat_space.dtype)
    for t in range(n):
        out[t] = spaces.flatten(space, {k: observations[k][t] for k in space.spaces})
    return out


def flatten_dict_observations(
    env: gym.Env, episodes: Sequence[Mapping[str, Any]] | None = None
) -> tuple[gym.Env, list[DemoEpisode] | None]:
    """Give a ``Dict``-observation env and its demonstrations the same flat ``Box`` layout.

    SB3's ``DictReplayBuffer`` has no n-step returns and :class:`DDPGfD` mixes flat batches,
    so ``Dict`` observations (e.g. ``keypoints`` ``(K, 3)`` m + ``gripper_pos`` ``(3,)`` m + ...)
    are flattened: the env with ``gymnasium.wrappers.FlattenObservation``, the episodes'
    observation dicts with :func:`flatten_observations`, which uses the same
    ``gymnasium.spaces.flatten`` and so the same order (the space's keys, each raveled).

    Args:
        env: a Gymnasium env (not an SB3 ``VecEnv``: flatten each env before vectorising,
            e.g. ``make_vec_env(..., wrapper_class=FlattenObservation)`` and this function
            with one un-vectorised env for the episodes).
        episodes: :class:`DemoEpisode` mappings whose ``observations`` are dicts of
            ``(T+1, ...)`` arrays with (at least) the space's keys; or None.

    Returns:
        ``(env, episodes)``: the wrapped env (unchanged if its space is already a ``Box``) and
        copies of the episodes with ``observations`` ``(T+1, flatdim)`` (None if none given;
        unchanged if already arrays for a ``Box`` env).

    Raises:
        TypeError: the observation space is neither ``Dict`` nor ``Box``.
        ValueError: an episode's observations lack a key of the space or have a wrong shape.
    """
    space = env.observation_space
    if isinstance(space, spaces.Box):
        return env, None if episodes is None else [dict(e) for e in episodes]  # type: ignore[misc]
    if not isinstance(space, spaces.Dict):
        raise TypeError(f"flatten_dict_observations: expected a Dict (or Box) observation space, "
                        f"got {space}")
    flat_env = gym.wrappers.FlattenObservation(env)
    if episodes is None:
        return flat_env, None
    flat: list[DemoEpisode] = []
    for i, episode in enumerate(episodes):
        observations = episode.get("observations") if isinstance(episode, Mapping) else None
        if not isinstance(observations, Mapping):
            raise ValueError(f"demonstration episode {i}: expected observations as a dict of "
                             f"(T+1, ...) arrays for the Dict space {list(space.spaces)}, got "
                             f"{type(observations).__name__}")
        try:
            flat_obs = flatten_observations(observations, space)
        except ValueError as err:
            raise ValueError(f"demonstration episode {i}: {err}") from None
        flat.append({**episode, "observations": flat_obs})  # type: ignore[typeddict-item]
    return flat_env, flat


def episodes_from_recording(
    recorded: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    observation_fn: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], Any] | None = None,
    keys: Sequence[str] | None = None,
    num_episodes: int | None = DEFAULT_NUM_DEMONSTRATIONS,
) -> list[DemoEpisode]:
    """Convert episodes recorded by :mod:`s3k_envs.demos` to :class:`DemoEpisode` dicts.

    Args:
        recorded: a demonstrations ``.npz`` (read with
            :func:`s3k_envs.demos.load_demonstrations`) or the episodes it returns.
        observation_fn: maps one recorded step ``(obs, info)`` (dicts of that step's arrays:
            ``obs["gripper_pos"]`` ``(3,)``, ``obs["images"]`` ``(C, H, W, 3)`` if recorded,
            ``info["keypoints"]`` ``(K, 3)`` m, ...) to the agent's observation (a dict or an
            array). Default: the recorded observation dict. Examples: the S3K model's keypoints
            from the stored images, ``lambda obs, info: kp_wrapper.observation(obs)`` with a
            :class:`~s3k_envs.wrappers.keypoints.KeypointObservation`; or the privileged true
            keypoints, ``lambda obs, info: {**obs, "keypoints": info["keypoints"],
            "keypoint_confidence": np.ones(3, np.float32)}``.
        keys: keep only these keys of dict observations (after ``observation_fn``).
        num_episodes: use the first this many episodes (default 51, the paper's count);
            None: all of them.

    Returns:
        One :class:`DemoEpisode` per episode: ``observations`` (dict of ``(T+1, ...)`` arrays,
        or a ``(T+1, ...)`` array if ``observation_fn`` returns arrays), ``actions`` ``(T, 6)``,
        ``rewards`` ``(T,)`` (the env's reward when recorded), ``terminated`` / ``truncated``
        ``(T,)`` bool, plus ``seed`` (the recorded reset seed) when present.

    Raises:
        ValueError: fewer than ``num_episodes`` episodes, or ``keys`` names a key the
            observations do not have.
    """
    if isinstance(recorded, (str, os.PathLike)):
        from s3k_envs.demos import load_demonstrations

        source = f"{os.fspath(recorded)}"
        recorded = load_demonstrations(recorded)
    else:
        source = "the recorded episodes"
    if num_episodes is not None:
        if num_episodes < 1:
            raise ValueError(f"num_episodes: expected >= 1 or None, got {num_episodes}")
        if len(recorded) < num_episodes:
            raise ValueError(f"{source} hold{'s' if source != 'the recorded episodes' else ''} "
                             f"{len(recorded)} episodes, {num_episodes} requested (pass "
                             "num_episodes=None to use all of them)")
        recorded = recorded[:num_episodes]
    out: list[DemoEpisode] = []
    for i, episode in enumerate(recorded):
        missing = [k for k in _EPISODE_KEYS if k not in episode]
        if missing:
            raise ValueError(f"recorded episode {i}: missing key(s) {missing}, not an episode of "
                             "s3k_envs.demos.load_demonstrations")
        observations = episode["observations"]
        if observation_fn is not None:
            infos = episode.get("infos", {})
            n_obs = len(next(iter(observations.values())))
            per_step = [observation_fn({k: v[t] for k, v in observations.items()},
                                       {k: v[t] for k, v in infos.items()})
                        for t in range(n_obs)]
            if isinstance(per_step[0], Mapping):
                observations = {k: np.stack([np.asarray(o[k]) for o in per_step])
                                for k in per_step[0]}
            else:
                observations = np.stack([np.asarray(o) for o in per_step])
        if keys is not None:
            if not isinstance(observations, Mapping):
                raise ValueError("keys: the observations are arrays, not dicts")
            unknown = [k for k in keys if k not in observations]
            if unknown:
                raise ValueError(f"keys: recorded episode {i} has no observation key(s) "
                                 f"{unknown}; its keys are {sorted(observations)}")
            observations = {k: observations[k] for k in keys}
        elif isinstance(observations, Mapping):
            observations = dict(observations)
        converted: dict[str, Any] = {"observations": observations,
                                     **{k: np.asarray(episode[k]) for k in _EPISODE_KEYS[1:]}}
        if "seed" in episode:
            converted["seed"] = int(episode["seed"])
        out.append(converted)  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- buffer
class DemoReplayBuffer(NStepReplayBuffer):
    """The demonstrations, stored once and for good, sampled with n-step returns.

    A subclass of SB3's ``NStepReplayBuffer`` (its ``_get_samples`` computes the n-step
    returns at sampling time; episode ends are never crossed: the returns stop at a
    termination, without bootstrapping, and at a truncation, bootstrapping from the final
    observation). It is sized to the demonstrations exactly and is read-only: ``add`` raises,
    nothing is ever overwritten. DQfD / DDPGfD (Hester et al. 2018; Vecerik et al. 2017) keep
    demonstrations permanently this way.

    Storage (as SB3's ``ReplayBuffer``, ``N = sum T_e`` transitions, one "env"):
    ``observations`` / ``next_observations`` ``(N, 1, *obs_shape)``, ``actions``
    ``(N, 1, action_dim)`` scaled to [-1, 1] (SB3 stores actions so), ``rewards``, ``dones``
    (1 at every episode's last step), ``timeouts`` (1 at a last step that is not terminated)
    ``(N, 1)`` float32.

    Args:
        episodes: :class:`DemoEpisode` mappings (checked with :func:`validate_episodes`).
        observation_space: ``Box`` observation space of the agent.
        action_space: ``Box`` action space of the agent.
        device: torch device of the sampled tensors.
        n_steps: steps of the n-step return (1 = the ordinary one-step target).
        gamma: discount factor per step.
    """

    def __init__(self, episodes: Sequence[Mapping[str, Any]], observation_space: spaces.Space,
                 action_space: spaces.Space, device: th.device | str = "auto",
                 n_steps: int = 1, gamma: float = 0.99) -> None:
        clean = validate_episodes(episodes, observation_space, action_space)
        lengths = np.array([len(e["actions"]) for e in clean], dtype=np.int64)
        super().__init__(int(lengths.sum()), observation_space, action_space, device=device,
                         n_envs=1, optimize_memory_usage=False, handle_timeout_termination=True,
                         n_steps=int(n_steps), gamma=float(gamma))
        #: ``(E + 1,)`` int64: episode ``e`` holds transitions ``[starts[e], starts[e+1])``.
        self.episode_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
        for e, episode in enumerate(clean):
            s0, s1 = self.episode_starts[e], self.episode_starts[e + 1]
            obs = episode["observations"]
            self.observations[s0:s1, 0] = obs[:-1]
            self.next_observations[s0:s1, 0] = obs[1:]
            actions = episode["actions"].reshape(s1 - s0, -1).astype(np.float64)
            self.actions[s0:s1, 0] = 2.0 * (actions - low) / (high - low) - 1.0
            self.rewards[s0:s1, 0] = episode["rewards"]
            self.dones[s1 - 1, 0] = 1.0
            self.timeouts[s1 - 1, 0] = float(not episode["terminated"][-1])
        self.pos, self.full = 0, True

    @property
    def num_episodes(self) -> int:
        """Number of demonstration episodes stored."""
        return len(self.episode_starts) - 1

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Refused: the demonstrations are fixed when the buffer is built."""
        raise TypeError("DemoReplayBuffer is read-only: build a new one (or call "
                        "DDPGfD.set_demonstrations) to change the demonstrations")

    def extend(self, *args: Any, **kwargs: Any) -> None:
        """Refused, like :meth:`add`."""
        self.add()

    def samples_at(self, indices: np.ndarray | Sequence[int],
                   env: VecNormalize | None = None) -> ReplayBufferSamples:
        """The n-step samples of the given transitions (``sample`` draws them at random).

        Args:
            indices: ``(B,)`` transition indices in ``[0, N)``.
            env: a ``VecNormalize`` to normalize observations and rewards with, or None.

        Returns:
            ``ReplayBufferSamples`` tensors: ``observations`` ``(B, *obs_shape)``, ``actions``
            ``(B, action_dim)`` scaled to [-1, 1], ``next_observations`` (the observation
            ``k`` steps later, ``k <= n_steps``, stopping at the episode's end), ``dones``
            ``(B, 1)`` (1 when the return ended with a termination: no bootstrap), ``rewards``
            ``(B, 1)`` (the discounted sum of the ``k`` rewards), ``discounts`` ``(B, 1)``
            (``gamma ** k``).
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or np.any(indices < 0) or np.any(indices >= self.buffer_size):
            raise ValueError(f"indices: expected a 1-D array of ints in [0, {self.buffer_size}), "
                             f"got {indices!r}")
        return self._get_samples(indices, env=env)


# --------------------------------------------------------------------------- losses
def q_filter_mask(q_demo: th.Tensor, q_policy: th.Tensor) -> th.Tensor:
    """Nair et al. 2018's Q-filter: clone a demonstrated action only where the critic rates it
    above the policy's own action.

    Args:
        q_demo: ``(B, 1)`` or ``(B,)`` Q(s, a_demo) of the demonstration samples.
        q_policy: the same shape, Q(s, pi(s)).

    Returns:
        ``(B,)`` bool tensor, True where ``q_demo > q_policy`` (strictly).
    """
    if q_demo.shape != q_policy.shape:
        raise ValueError(f"q_filter_mask: q_demo {tuple(q_demo.shape)} and q_policy "
                         f"{tuple(q_policy.shape)} differ in shape")
    return (q_demo > q_policy).reshape(-1)


def bc_loss(policy_actions: th.Tensor, demo_actions: th.Tensor,
            mask: th.Tensor | None = None) -> th.Tensor:
    """Behaviour-cloning loss of Nair et al. 2018 (with their ``1 / N_D`` normalisation).

    ``L_BC = (1 / B) * sum_i mask_i * ||pi(s_i) - a_i||^2``: the squared error is summed over the
    action dimensions and averaged over all ``B`` demonstration samples, those the Q-filter
    rejects counting as 0.

    Args:
        policy_actions: ``(B, action_dim)`` pi(s) in the scaled [-1, 1] action units.
        demo_actions: ``(B, action_dim)`` demonstrated actions, same units.
        mask: ``(B,)`` bool (e.g. :func:`q_filter_mask`), or None for all samples.

    Returns:
        0-d tensor (0 for ``B = 0``), differentiable in ``policy_actions``.
    """
    if policy_actions.shape != demo_actions.shape:
        raise ValueError(f"bc_loss: policy actions {tuple(policy_actions.shape)} and demo "
                         f"actions {tuple(demo_actions.shape)} differ in shape")
    if len(policy_actions) == 0:
        return policy_actions.sum() * 0.0
    squared = ((policy_actions - demo_actions) ** 2).reshape(len(policy_actions), -1).sum(dim=1)
    if mask is not None:
        if mask.shape != squared.shape:
            raise ValueError(f"bc_loss: mask {tuple(mask.shape)} does not match the "
                             f"{len(squared)} samples")
        squared = squared * mask.to(squared.dtype)
    return squared.mean()


def l2_penalty(module: th.nn.Module) -> th.Tensor:
    """Sum of squares of a module's weights (parameters with >= 2 dimensions; biases and
    normalisation scales are left out), the L2 term of DQfD / DDPGfD.

    Returns:
        0-d tensor, differentiable in the weights (0 for a module without weights).
    """
    terms = [p.pow(2).sum() for p in module.parameters() if p.dim() >= 2]
    if not terms:
        return th.zeros(())
    return th.stack(terms).sum()


# --------------------------------------------------------------------------- agent
class DDPGfD(TD3):
    """DDPG from demonstrations: SB3's TD3 plus demonstrations, n-step returns, L2 and a
    Q-filtered behaviour-cloning loss (sources: module docstring).

    Every gradient step draws ``round(demo_fraction * batch_size)`` transitions from the
    demonstrations (:class:`DemoReplayBuffer`) and the rest from the agent's replay buffer
    (SB3's ``NStepReplayBuffer`` when ``n_steps > 1``), and then:

    * critic: TD3's clipped double-Q target on n-step returns,
      ``y = R^(k) + (1 - done) * gamma^k * min_j Q'_j(s_{t+k}, pi'(s_{t+k}) + noise)`` on
      every sample, loss ``sum_j MSE(Q_j(s, a), y) + critic_l2 * sum ||W||^2``;
    * actor (every ``policy_delay`` steps): ``-mean Q_1(s, pi(s))`` on every sample
      ``+ bc_weight * L_BC`` on the demonstration samples (:func:`bc_loss`, masked by
      :func:`q_filter_mask` with ``Q_1`` when ``q_filter``) ``+ actor_l2 * sum ||W||^2``.

    Needs a ``Box`` observation space when given demonstrations or ``n_steps > 1`` (SB3's
    ``DictReplayBuffer`` has no n-step returns): flatten ``Dict`` observations with
    :func:`flatten_dict_observations`. Like SB3's TD3 it explores with ``action_noise`` only
    (None by default: pass e.g. ``NormalActionNoise``).

    Extra values logged under ``train/``: ``critic_td_loss``, ``critic_l2_loss``,
    ``actor_q_loss``, ``bc_loss`` (unweighted), ``q_filter_pass`` (fraction of demonstration
    samples cloned), ``actor_l2_loss``, ``demo_samples`` (per batch), besides TD3's
    ``critic_loss`` and ``actor_loss`` (the totals).

    Device: SB3's ``device`` argument, passed through (``"auto"``: CUDA when there is a GPU,
    else the CPU; pass ``"cpu"`` for these small MLPs on a shared machine); the
    demonstration buffer samples onto the same device. A model trained on a GPU loads on the
    CPU with ``DDPGfD.load(path, env, device="cpu")`` (SB3 maps the saved tensors).

    Saving: ``save`` / ``load`` work as for TD3; the demonstrations are **not** saved (like
    the replay buffer). Give them back with ``DDPGfD.load(path, env, demonstrations=...)`` or
    :meth:`set_demonstrations` before training on.

    Args:
        policy: ``"MlpPolicy"`` or a TD3 policy class.
        env: the env (Gymnasium env, SB3 ``VecEnv`` or registered id).
        demonstrations: :class:`DemoEpisode` list (the paper: 51 successful episodes), or None.
        demo_fraction: fraction in [0, 1] of every batch drawn from the demonstrations.
        n_steps: steps of the n-step return (1 switches it off), in both buffers.
        bc_weight: weight (>= 0) of the behaviour-cloning loss; 0 switches it off. Relative to
            ``-mean Q``: scale it with the size of the returns.
        q_filter: apply the Q-filter to the behaviour-cloning loss.
        pretrain_steps: gradient steps (>= 0) on demonstration-only batches at the start of
            the first ``learn`` (DQfD's pre-training phase; the same losses as later). 0: none.
        actor_l2: weight (>= 0) of the L2 term on the actor's weights (DQfD: 1e-5).
        critic_l2: weight (>= 0) of the L2 term on the critics' weights (DQfD: 1e-5).
        learning_starts: env steps before training starts; default 0 with demonstrations (the
            batches hold demonstrations from the first step), else 100 (TD3's default).
        learning_rate, buffer_size, batch_size, tau, gamma, train_freq, gradient_steps,
        action_noise, replay_buffer_class, replay_buffer_kwargs, optimize_memory_usage,
        policy_delay, target_policy_noise, target_noise_clip, stats_window_size,
        tensorboard_log, policy_kwargs, verbose, seed, device, _init_setup_model: as for
            :class:`~stable_baselines3.TD3`.

    Raises:
        ValueError: an argument out of range, a ``Dict`` observation space with
            demonstrations or ``n_steps > 1``, or demonstrations that do not fit the env's
            spaces (see :func:`validate_episodes`).
    """

    def __init__(
        self,
        policy: str | type[TD3Policy],
        env: GymEnv | str,
        demonstrations: Sequence[Mapping[str, Any]] | None = None,
        demo_fraction: float = 0.25,
        n_steps: int = 5,
        bc_weight: float = 1.0,
        q_filter: bool = True,
        pretrain_steps: int = 0,
        actor_l2: float = 1e-5,
        critic_l2: float = 1e-5,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int | None = None,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[Any] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if not (isinstance(demo_fraction, (int, float)) and 0.0 <= demo_fraction <= 1.0):
            raise ValueError(f"demo_fraction: expected a number in [0, 1], got {demo_fraction!r}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps: expected an integer >= 1, got {n_steps!r}")
        for name, value in (("bc_weight", bc_weight), ("actor_l2", actor_l2),
                            ("critic_l2", critic_l2)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        if (isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, (int, np.integer))
                or pretrain_steps < 0):
            raise ValueError(f"pretrain_steps: expected an integer >= 0, got {pretrain_steps!r}")
        if demonstrations is not None and not isinstance(demonstrations, Sequence):
            raise TypeError(f"demonstrations: expected a list of episodes, got "
                            f"{type(demonstrations).__name__}")
        self.demonstrations: list[Mapping[str, Any]] | None = (
            None if demonstrations is None else list(demonstrations))
        self.demo_fraction = float(demo_fraction)
        self.bc_weight = float(bc_weight)
        self.q_filter = bool(q_filter)
        self.pretrain_steps = int(pretrain_steps)
        #: Pre-training steps done so far (saved with the model: a resumed run does not redo them).
        self.pretrained_steps = 0
        self._demo_only = False
        self.actor_l2 = float(actor_l2)
        self.critic_l2 = float(critic_l2)
        self.demo_buffer: DemoReplayBuffer | None = None
        if learning_starts is None:
            learning_starts = 0 if self.demonstrations else LEARNING_STARTS_WITHOUT_DEMOS
        if _init_setup_model:  # (``load`` checks in _setup_model, with the saved n_steps)
            # Before TD3's own checks, which would only ask for MultiInputPolicy.
            self._check_observation_space(getattr(env, "observation_space", None), int(n_steps))
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size,
            learning_starts=learning_starts, batch_size=batch_size, tau=tau, gamma=gamma,
            train_freq=train_freq, gradient_steps=gradient_steps, action_noise=action_noise,
            replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage, n_steps=int(n_steps),
            policy_delay=policy_delay, target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip, stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs, verbose=verbose,
            seed=seed, device=device, _init_setup_model=_init_setup_model,
        )

    # ------------------------------------------------------------------ set-up
    def _check_observation_space(self, space: spaces.Space | None, n_steps: int) -> None:
        if isinstance(space, spaces.Dict) and (self.demonstrations or n_steps > 1):
            raise ValueError(
                f"DDPGfD with demonstrations or n_steps > 1 needs a Box observation space, got "
                f"a Dict with keys {list(space.spaces)}; wrap the env and the episodes with "
                "flatten_dict_observations(env, episodes)")

    def _setup_model(self) -> None:
        self._check_observation_space(self.observation_space, self.n_steps)
        with warnings.catch_warnings():
            if (self.replay_buffer_class is NStepReplayBuffer
                    and self.replay_buffer_kwargs.get("n_steps") == self.n_steps):
                # A loaded model: the saved buffer class and kwargs already configure the
                # n-step returns, SB3's warning that n_steps is ignored does not apply.
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because",
                                        category=UserWarning)
            super()._setup_model()
        self.demo_buffer = None
        if self.demonstrations:
            self.demo_buffer = DemoReplayBuffer(
                self.demonstrations, self.observation_space, self.action_space,
                device=self.device, n_steps=self.n_steps, gamma=self.gamma)

    def set_demonstrations(self, demonstrations: Sequence[Mapping[str, Any]] | None) -> None:
        """Replace the demonstrations (e.g. after ``load``, which does not restore them).

        Args:
            demonstrations: :class:`DemoEpisode` list, or None to train without.

        Raises:
            ValueError: as :func:`validate_episodes`, or a ``Dict`` observation space.
        """
        if demonstrations is not None and isinstance(self.observation_space, spaces.Dict):
            raise ValueError("set_demonstrations needs a Box observation space; wrap the env and "
                             "the episodes with flatten_dict_observations(env, episodes)")
        if not demonstrations:
            self.demonstrations, self.demo_buffer = None, None
            return
        buffer = DemoReplayBuffer(demonstrations, self.observation_space, self.action_space,
                                  device=self.device, n_steps=self.n_steps, gamma=self.gamma)
        self.demonstrations, self.demo_buffer = list(demonstrations), buffer

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "demonstrations", "demo_buffer", "_demo_only"]

    # ------------------------------------------------------------------ sampling
    def demo_batch_size(self, batch_size: int) -> int:
        """Demonstration samples in a batch of ``batch_size``: ``round(demo_fraction *
        batch_size)``, 0 without demonstrations, all of them while the agent's buffer is
        empty."""
        if self.demo_buffer is None:
            return 0
        if self._demo_only or self.replay_buffer is None or self.replay_buffer.size() == 0:
            return batch_size
        return round(self.demo_fraction * batch_size)

    def sample_batch(self, batch_size: int) -> tuple[Any, th.Tensor]:
        """One training batch: agent transitions first, then demonstration transitions.

        Args:
            batch_size: ``B``, samples in all.

        Returns:
            ``(samples, is_demo)``: SB3 replay samples with ``B`` rows (``observations``
            ``(B, *obs_shape)``, ``actions`` ``(B, action_dim)`` in [-1, 1], ``rewards``
            ``(B, 1)`` n-step returns, ``dones`` ``(B, 1)``, ``discounts`` ``(B, 1)``: the
            bootstrap factor, ``gamma ** k``, always set) and ``is_demo`` ``(B,)`` bool.
        """
        n_demo = self.demo_batch_size(batch_size)
        n_agent = batch_size - n_demo
        parts = []
        if n_agent > 0:
            assert self.replay_buffer is not None
            if self.replay_buffer.size() == 0:
                raise RuntimeError("the replay buffer is empty and there are no demonstrations: "
                                   "nothing to train on")
            parts.append(self._with_discounts(
                self.replay_buffer.sample(n_agent, env=self._vec_normalize_env)))
        if n_demo > 0:
            assert self.demo_buffer is not None
            parts.append(self.demo_buffer.sample(n_demo, env=self._vec_normalize_env))
        is_demo = th.arange(batch_size, device=self.device) >= n_agent
        if len(parts) == 1:
            return parts[0], is_demo
        agent, demo = parts
        samples = ReplayBufferSamples(*(th.cat([a, d.to(a.dtype)]) for a, d in
                                        zip(agent, demo, strict=True)))
        return samples, is_demo

    def _with_discounts(self, samples: Any) -> Any:
        if samples.discounts is not None:
            return samples
        return samples._replace(discounts=th.full_like(samples.rewards, self.gamma))

    # ------------------------------------------------------------------ training
    def _setup_learn(self, total_timesteps: int, callback: Any = None,
                     reset_num_timesteps: bool = True, tb_log_name: str = "run",
                     progress_bar: bool = False) -> tuple[int, BaseCallback]:
        out = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                   progress_bar)
        # Only the first learn pre-trains: pretrained_steps is saved with the model.
        remaining = self.pretrain_steps - self.pretrained_steps
        if remaining > 0 and self.demo_buffer is not None:
            self.pretrain(remaining)
        return out

    def pretrain(self, gradient_steps: int) -> None:
        """``gradient_steps`` DDPGfD updates on demonstration-only batches (DQfD's
        pre-training phase, Hester et al. 2018); run by the first ``learn`` when
        ``pretrain_steps > 0``. Needs demonstrations and a configured logger (``learn``
        sets one up)."""
        if self.demo_buffer is None:
            raise ValueError("pretrain needs demonstrations")
        self._demo_only = True
        try:
            self.train(gradient_steps=gradient_steps, batch_size=self.batch_size)
        finally:
            self._demo_only = False
        self.pretrained_steps += gradient_steps

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 4,
              tb_log_name: str = "DDPGfD", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> DDPGfD:
        """Train for ``total_timesteps`` env steps, as ``TD3.learn`` (logged as "DDPGfD")."""
        return super().learn(total_timesteps, callback=callback, log_interval=log_interval,
                             tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                             progress_bar=progress_bar)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """``gradient_steps`` DDPGfD updates on batches of ``batch_size`` (see the class)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        logs: dict[str, list[float]] = {k: [] for k in (
            "critic_loss", "critic_td_loss", "critic_l2_loss", "actor_loss", "actor_q_loss",
            "bc_loss", "q_filter_pass", "actor_l2_loss", "demo_samples")}
        for _ in range(gradient_steps):
            self._n_updates += 1
            data, is_demo = self.sample_batch(batch_size)
            logs["demo_samples"].append(float(is_demo.sum()))

            with th.no_grad():
                noise = data.actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(data.next_observations) + noise).clamp(-1, 1)
                next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q, _ = th.min(next_q, dim=1, keepdim=True)
                target_q = data.rewards + (1 - data.dones) * data.discounts * next_q

            current_q = self.critic(data.observations, data.actions)
            td_loss = sum(F.mse_loss(q, target_q) for q in current_q)
            assert isinstance(td_loss, th.Tensor)
            critic_loss = td_loss
            if self.critic_l2 > 0:
                critic_l2 = l2_penalty(self.critic)
                critic_loss = critic_loss + self.critic_l2 * critic_l2
                logs["critic_l2_loss"].append(critic_l2.item())
            logs["critic_td_loss"].append(td_loss.item())
            logs["critic_loss"].append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            if self._n_updates % self.policy_delay == 0:
                actions_pi = self.actor(data.observations)
                q_pi = self.critic.q1_forward(data.observations, actions_pi)
                q_loss = -q_pi.mean()
                actor_loss = q_loss
                logs["actor_q_loss"].append(q_loss.item())
                if self.bc_weight > 0 and bool(is_demo.any()):
                    demo_obs, demo_actions = data.observations[is_demo], data.actions[is_demo]
                    mask = None
                    if self.q_filter:
                        with th.no_grad():
                            q_demo = self.critic.q1_forward(demo_obs, demo_actions)
                        mask = q_filter_mask(q_demo, q_pi[is_demo].detach())
                        logs["q_filter_pass"].append(mask.float().mean().item())
                    bc = bc_loss(actions_pi[is_demo], demo_actions, mask)
                    actor_loss = actor_loss + self.bc_weight * bc
                    logs["bc_loss"].append(bc.item())
                if self.actor_l2 > 0:
                    actor_l2 = l2_penalty(self.actor)
                    actor_loss = actor_loss + self.actor_l2 * actor_l2
                    logs["actor_l2_loss"].append(actor_l2.item())
                logs["actor_loss"].append(actor_loss.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target,
                              1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(np.mean(values)))
