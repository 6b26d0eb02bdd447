"""RLPD: a lean demo-driven off-policy learner for any Gymnasium env.

``RLPD`` learns a continuous-control policy from environment interaction and a list of
demonstration episodes (the episode format of :mod:`agents.ddpgfd` and :mod:`s3k_envs.demos`).
It is SAC with the ingredients that make recent demo-driven agents sample-efficient on
insertion tasks (SERL: Luo et al. 2024, "SERL: A Software Suite for Sample-Efficient Robotic
Reinforcement Learning", uses the same recipe on real cable routing and PCB insertion):

=================================  ==========================================  ===============
ingredient                         paper                                       setting
=================================  ==========================================  ===============
SAC losses: tanh-Gaussian actor,   Haarnoja et al. 2018, "Soft Actor-Critic    always
soft Bellman backup, learned       Algorithms and Applications"
temperature
symmetric sampling: half of every  Ball et al. 2023, "Efficient Online         ``demo_ratio``
batch from the demonstrations,     Reinforcement Learning with Offline Data"   (0.5)
half from the agent's own data     (RLPD)
LayerNorm after every hidden       Ball et al. 2023 (RLPD); after Hiraoka et   ``layer_norm``
layer of the critics               al. 2022, "Dropout Q-Functions for
                                   Doubly Efficient RL" (DroQ)
ensemble of ``num_critics`` (10)   Chen et al. 2021, "Randomized Ensembled     ``num_critics``
critics; target = min over a       Double Q-Learning: Learning Fast Without    ``num_min_critics``
random subset of                   a Model" (REDQ)
``num_min_critics`` (2) of them
update-to-data ratio > 1 (several  REDQ; RLPD                                  ``utd`` (default
critic updates per env step, one                                               4; RLPD uses
actor update)                                                                  20 on GPUs)
target entropy ``-|A| / 2``        RLPD                                        ``target_entropy``
observation normalisation          running mean / std as in SB3's              ``normalize_``
(running mean / std, clipped)      ``VecNormalize``; Andrychowicz et al.       ``observations``
                                   2021, "What Matters in On-Policy RL"
=================================  ==========================================  ===============

Written in plain torch (no SB3; the networks are in :mod:`agents.rlpd_networks`): the
ensemble is one batched module (``(E, in, out)`` weights,
``torch.baddbmm``), so 10 critics cost one kernel per layer; the REDQ target evaluates only
the sampled subset. The library never changes ``torch.set_num_threads``; on a small shared
CPU call ``torch.set_num_threads(1)`` yourself (``benchmarks/rl_throughput.py`` measures
updates/s). ``RLPD(..., device="cuda")`` (or ``"auto"``: CUDA, then MPS, then the CPU; see
:func:`s3k_envs.device.resolve_device`) puts the networks, batches, observation statistics
and temperature on that device; the default is the CPU (small MLPs and one env step per
update round leave a GPU mostly kernel launches and copies; not measured here).
Observations are a ``Box`` or a ``Dict`` of ``Box`` es (flattened in the space's key order,
like :func:`gymnasium.spaces.flatten`); actions a bounded ``Box`` (the agent acts in
``[-1, 1]`` and scales to the space).

Demonstration episode (``T >= 1`` steps; extra keys are ignored):

=================  ========================  ==================================================
key                shape                     meaning
=================  ========================  ==================================================
``observations``   ``(T+1, *obs_shape)``     observation ``t`` is the one action ``t`` was
                   or dict of ``(T+1, ...)``  chosen from; the last is the final state
``actions``        ``(T, *action_shape)``    in the env's units (as passed to ``env.step``)
``rewards``        ``(T,)``                  rewards
``terminated``     ``(T,)`` bool             the last step may be True: no bootstrap there
``truncated``      ``(T,)`` bool             optional; truncation bootstraps (ignored)
=================  ========================  ==================================================

Use::

    agent = RLPD(env.observation_space, env.action_space, demonstrations=demos,
                 config=RLPDConfig(utd=4), seed=0)
    episodes = agent.learn(env, total_steps=20_000)   # one dict per finished episode
    agent.save("runs/rlpd/agent.pt")                   # weights + JSON config, no pickle
    agent = RLPD.load("runs/rlpd/agent.pt", demonstrations=demos)
    action = agent.act(obs, deterministic=True)

Saved file: one ``torch.save`` of plain CPU tensors, numbers and strings (the config and
spaces as a JSON string), read back with ``torch.load(weights_only=True)``: loading never
unpickles arbitrary objects, and a file saved on a GPU loads anywhere
(``RLPD.load(path, device="cpu")``; the device is not part of the file). The replay buffer
and the demonstrations are not saved.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch.nn import functional as F

from agents.rlpd_networks import (  # noqa: F401  (re-exported: part of this module's API)
    Actor,
    CriticEnsemble,
    EnsembleLayerNorm,
    EnsembleLinear,
    RunningMeanStd,
)
from s3k_envs.device import resolve_device

FORMAT = "s3k-rlpd"
FORMAT_VERSION = 1
_BUFFER_KEYS = ("obs", "next_obs", "actions", "rewards", "terminated")


@dataclasses.dataclass
class RLPDConfig:
    """Hyper-parameters of :class:`RLPD` (defaults: RLPD's, except ``utd``: 4 instead of 20,
    for a CPU; on this project's 2-core box ``num_critics=2`` is 3x cheaper per update, see
    ``benchmarks/rl_throughput.py``).

    Attributes:
        gamma: discount.
        tau: Polyak rate of the target critics.
        lr: Adam learning rate of actor, critics and temperature.
        batch_size: transitions per critic update (half demos, half online: ``demo_ratio``).
        hidden: hidden layer widths of actor and critics.
        num_critics: critic ensemble size E (REDQ: 10).
        num_min_critics: size M of the random subset whose minimum is the target (REDQ: 2).
        utd: critic updates per env step (update-to-data ratio); the actor and temperature
            are updated once per env step (per :meth:`RLPD.update` round).
        actor_every: update the actor and temperature only every this many rounds (1 =
            every round, RLPD; 2 = TD3's delayed policy updates, Fujimoto et al. 2018, which
            saves about a third of an update at UTD 1 on a CPU).
        layer_norm: LayerNorm after every hidden layer of the critics.
        demo_ratio: fraction of every batch drawn from the demonstrations (RLPD: 0.5) when
            both buffers hold data.
        init_temperature: initial SAC temperature alpha.
        target_entropy: None for ``-|A| / 2`` (RLPD), else the value.
        learn_temperature: tune alpha towards ``target_entropy`` (SAC). False keeps alpha at
            ``init_temperature``: on CableInsert (Q ~ 100 from the success bonus) the policy
            stays below the target entropy, alpha grows at Adam's full rate (x300 in 16,000
            steps) until the entropy bonus drowns the reward and the policy leaves the safety
            box in every episode (README "RLPD").
        backup_entropy: subtract ``alpha * log pi`` in the critic target (SAC). On tasks
            whose episodes can end early on failure, prefer False: once the temperature has
            grown (the policy's entropy below its target), ``-alpha * log pi`` per step can
            outweigh a bounded reward and make ending the episode look good (seen on
            CableInsert, README "RLPD").
        normalize_observations: running mean / std normalisation (from the demonstrations and
            every observed transition), clipped to +-10.
        reward_scale: rewards are multiplied by this before learning.
        buffer_size: capacity of the online replay buffer (FIFO beyond it).
        random_steps: env steps with uniform random actions at the start of :meth:`learn`.
        learning_starts: updates begin once both buffers together hold this many transitions.
        bootstrap_truncation: bootstrap from the next state when an episode is truncated
            (time limit), the usual choice for a time limit that is not part of the task.
            False stores truncations as terminal: right for a task whose time limit *is*
            part of it, when the observation says how much time is left (Pardo et al. 2018,
            "Time Limits in Reinforcement Learning"); without that input the target is not a
            function of the state. On CableInsert (40 steps) the bootstrapped critic values
            hovering near the socket as hovering forever (``0.75 / (1 - 0.99) = 75`` against
            100 for succeeding), README "RLPD".
    """

    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    num_critics: int = 10
    num_min_critics: int = 2
    utd: int = 4
    actor_every: int = 1
    layer_norm: bool = True
    demo_ratio: float = 0.5
    init_temperature: float = 1.0
    target_entropy: float | None = None
    learn_temperature: bool = True
    backup_entropy: bool = True
    normalize_observations: bool = True
    reward_scale: float = 1.0
    buffer_size: int = 1_000_000
    random_steps: int = 0
    learning_starts: int = 256
    bootstrap_truncation: bool = True

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        checks = [
            ("gamma", 0.0 <= self.gamma < 1.0, "0 <= gamma < 1"),
            ("tau", 0.0 < self.tau <= 1.0, "0 < tau <= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("batch_size", self.batch_size >= 2, ">= 2"),
            ("hidden", len(self.hidden) >= 1 and min(self.hidden) >= 1, "widths >= 1"),
            ("num_critics", self.num_critics >= 1, ">= 1"),
            ("num_min_critics", 1 <= self.num_min_critics <= self.num_critics,
             "1 <= num_min_critics <= num_critics"),
            ("utd", self.utd >= 1, ">= 1"),
            ("actor_every", self.actor_every >= 1, ">= 1"),
            ("demo_ratio", 0.0 <= self.demo_ratio <= 1.0, "0..1"),
            ("init_temperature", self.init_temperature > 0, "> 0"),
            ("reward_scale", math.isfinite(self.reward_scale), "finite"),
            ("buffer_size", self.buffer_size >= 1, ">= 1"),
            ("random_steps", self.random_steps >= 0, ">= 0"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"RLPDConfig.{name}: expected {expected}, got "
                                 f"{getattr(self, name)!r}")

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict of the fields."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RLPDConfig:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"RLPDConfig: unknown field(s) {unknown}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- spaces, demos
def _space_json(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape),
                "low": np.asarray(space.low, np.float64).ravel().tolist(),
                "high": np.asarray(space.high, np.float64).ravel().tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "entries": [[k, _space_json(s)] for k, s in space.spaces.items()]}
    raise TypeError(f"RLPD: expected a Box or a Dict of Box observation space, got {space}")


def _space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    if data["type"] == "Box":
        shape = tuple(data["shape"])
        low = np.asarray(data["low"], np.float64).reshape(shape)
        high = np.asarray(data["high"], np.float64).reshape(shape)
        return spaces.Box(low.astype(np.float32), high.astype(np.float32), shape, np.float32)
    return spaces.Dict({k: _space_from_json(v) for k, v in data["entries"]})


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    if isinstance(observation_space, spaces.Dict):
        bad = [k for k, s in observation_space.spaces.items() if not isinstance(s, spaces.Box)]
        if bad:
            raise TypeError(f"RLPD: Dict observation entries must be Box spaces; {bad} are not "
                            f"({observation_space})")
    elif not isinstance(observation_space, spaces.Box):
        raise TypeError(f"RLPD: expected a Box or a Dict of Box observation space, got "
                        f"{observation_space}")
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"RLPD: expected a Box action space, got {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"RLPD: the action space must be bounded, got {action_space}")


def _flat_dim(space: spaces.Space) -> int:
    if isinstance(space, spaces.Dict):
        return sum(int(np.prod(s.shape)) for s in space.spaces.values())
    return int(np.prod(space.shape))


def flatten_observations(space: spaces.Space, obs: Any, steps: int | None = None) -> np.ndarray:
    """Flatten observations of ``space`` to float32 vectors (:func:`gymnasium.spaces.flatten`
    order: the ``Dict`` space's keys in order, each entry raveled).

    Args:
        space: a ``Box`` or a ``Dict`` of ``Box`` es.
        obs: one observation, or with ``steps`` a batch with a leading axis of that length.
        steps: None for one observation, else the batch length.

    Returns:
        ``(D,)`` or ``(steps, D)`` float32.
    """
    if isinstance(space, spaces.Dict):
        if steps is None:
            return np.concatenate([np.asarray(obs[k], np.float32).reshape(-1)
                                   for k in space.spaces])
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(steps, -1)
                               for k in space.spaces], axis=1)
    arr = np.asarray(obs, np.float32)
    return arr.reshape(-1) if steps is None else arr.reshape(steps, -1)


def validate_demonstrations(episodes: Sequence[Mapping[str, Any]],
                            observation_space: spaces.Space, action_space: spaces.Space,
                            tolerance: float = 1e-3) -> dict[str, np.ndarray]:
    """Check demonstration episodes against the env's spaces and pack their transitions.

    Args:
        episodes: episodes in the format of the module docstring.
        observation_space: the env's ``Box`` or ``Dict`` of ``Box`` observation space.
        action_space: the env's bounded ``Box`` action space.
        tolerance: actions may lie outside the action space by this fraction of its range
            (they are clipped into it); further out raises.

    Returns:
        ``obs`` ``(N, D)`` float32 (flattened), ``actions`` ``(N, A)`` float32 in the env's
        units, ``rewards`` ``(N,)`` float32, ``terminated`` ``(N,)`` bool, ``next_obs``
        ``(N, D)``; ``N`` = total steps.

    Raises:
        ValueError: an empty list, a missing key, a shape that does not match the spaces (the
            message names the episode, the field, what was expected and what came), NaN or
            inf (with the first bad step), actions outside the action space, a ``terminated``
            flag before the last step.
    """
    if episodes is None or len(episodes) == 0:
        raise ValueError("demonstrations: expected a non-empty list of episodes, got none "
                         "(pass demonstrations=None to learn without them)")
    act_shape = tuple(action_space.shape)
    low = np.broadcast_to(np.asarray(action_space.low, np.float64), act_shape)
    high = np.broadcast_to(np.asarray(action_space.high, np.float64), act_shape)
    slack = tolerance * (high - low)
    packed: dict[str, list[np.ndarray]] = {k: [] for k in
                                           ("obs", "actions", "rewards", "terminated", "next_obs")}
    for i, ep in enumerate(episodes):
        who = f"demonstration episode {i}"
        if not isinstance(ep, Mapping):
            raise ValueError(f"{who}: expected a mapping with observations, actions, rewards, "
                             f"terminated; got {type(ep).__name__}")
        missing = [k for k in ("observations", "actions", "rewards", "terminated") if k not in ep]
        if missing:
            raise ValueError(f"{who}: missing field(s) {missing} (has {sorted(ep)})")
        actions = np.asarray(ep["actions"], dtype=np.float64)
        if actions.ndim < 1 or actions.shape[0] < 1 or actions.shape[1:] != act_shape:
            dims = ", ".join(map(str, act_shape))
            raise ValueError(f"{who}: field 'actions': expected shape (T, {dims}) with T >= 1 "
                             f"(the env's action space {act_shape}), got {actions.shape}")
        steps = actions.shape[0]
        obs = ep["observations"]
        if isinstance(observation_space, spaces.Dict):
            if not isinstance(obs, Mapping):
                raise ValueError(f"{who}: field 'observations': expected a dict with keys "
                                 f"{list(observation_space.spaces)} (a Dict observation space), "
                                 f"got {type(obs).__name__}")
            for key, sub in observation_space.spaces.items():
                if key not in obs:
                    raise ValueError(f"{who}: field 'observations' has no key {key!r} (has "
                                     f"{sorted(obs)})")
                shape = np.shape(obs[key])
                if shape != (steps + 1, *sub.shape):
                    raise ValueError(f"{who}: field 'observations[{key!r}]': expected shape "
                                     f"{(steps + 1, *sub.shape)} = (T+1, *space {sub.shape}) for "
                                     f"T = {steps} actions, got {shape}")
        else:
            if isinstance(obs, Mapping):
                raise ValueError(f"{who}: field 'observations' is a dict (keys {sorted(obs)}) but "
                                 f"the observation space is a Box {observation_space.shape}")
            shape = np.shape(obs)
            if shape != (steps + 1, *observation_space.shape):
                raise ValueError(f"{who}: field 'observations': expected shape "
                                 f"{(steps + 1, *observation_space.shape)} = (T+1, *space "
                                 f"{observation_space.shape}) for T = {steps} actions, got "
                                 f"{shape}")
        flat = flatten_observations(observation_space, obs, steps + 1)
        rewards = np.asarray(ep["rewards"], dtype=np.float64)
        terminated = np.asarray(ep["terminated"])
        for name, arr in (("rewards", rewards), ("terminated", terminated)):
            if arr.shape != (steps,):
                raise ValueError(f"{who}: field {name!r}: expected shape ({steps},) = (T,), got "
                                 f"{arr.shape}")
        for name, arr in (("observations", flat), ("actions", actions), ("rewards", rewards)):
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                raise ValueError(f"{who}: field {name!r} contains NaN or inf (first at step "
                                 f"{int(np.argmax(bad))} of {len(arr)})")
        out = ((actions < low - slack) | (actions > high + slack)).reshape(steps, -1).any(axis=1)
        if out.any():
            t = int(np.argmax(out))
            raise ValueError(f"{who}: field 'actions' lies outside the action space [{low.min()}, "
                             f"{high.max()}] at step {t} ({actions[t].tolist()}); are the actions "
                             "in the env's units?")
        if terminated.dtype != bool and not np.all((terminated == 0) | (terminated == 1)):
            raise ValueError(f"{who}: field 'terminated': expected booleans, got "
                             f"{np.unique(terminated)[:5]}")
        terminated = terminated.astype(bool)
        if terminated[:-1].any():
            raise ValueError(f"{who}: field 'terminated' is True at step "
                             f"{int(np.argmax(terminated[:-1]))} of {steps}; only the last step "
                             "may end an episode")
        packed["obs"].append(flat[:-1])
        packed["next_obs"].append(flat[1:])
        packed["actions"].append(np.clip(actions, low, high).reshape(steps, -1).astype(np.float32))
        packed["rewards"].append(rewards.astype(np.float32))
        packed["terminated"].append(terminated)
    return {k: np.concatenate(v) for k, v in packed.items()}


# --------------------------------------------------------------------------- buffers, stats
class ReplayBuffer:
    """Transitions ``(obs, action, reward, next_obs, terminated)`` in a growing numpy array,
    FIFO beyond ``capacity``; actions stored in ``[-1, 1]`` (the agent's units).

    One float32 row per transition, ``[obs (D) | next_obs (D) | action (A) | reward |
    terminated]`` (``rows``, ``(n, 2 D + A + 2)``), so that a batch is one gather; the fields
    are column views of it: ``obs`` / ``next_obs`` ``(n, D)``, ``actions`` ``(n, A)``,
    ``rewards`` / ``terminated`` ``(n,)`` (``n`` >= ``size`` allocated slots; read and write
    them like arrays).

    Args:
        obs_dim: flattened observation size D.
        action_dim: A.
        capacity: most transitions kept.
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int) -> None:
        self.capacity = int(capacity)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.size = 0
        self._next = 0
        self.rows = np.zeros((0, 2 * obs_dim + action_dim + 2), np.float32)
        self._alloc(min(self.capacity, 4096))

    def _alloc(self, n: int) -> None:
        rows = np.zeros((n, self.rows.shape[1]), np.float32)
        rows[: self.size] = self.rows[: self.size]
        d, a = self.obs_dim, self.action_dim
        self.rows = rows
        self.obs, self.next_obs = rows[:, :d], rows[:, d: 2 * d]
        self.actions = rows[:, 2 * d: 2 * d + a]
        self.rewards, self.terminated = rows[:, 2 * d + a], rows[:, 2 * d + a + 1]

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        """Append one transition (obs ``(D,)``, action ``(A,)`` in [-1, 1])."""
        if self.size == len(self.rows) and self.size < self.capacity:
            self._alloc(min(2 * self.size, self.capacity))
        i = self._next
        self.obs[i], self.next_obs[i], self.actions[i] = obs, next_obs, action
        self.rewards[i], self.terminated[i] = reward, float(terminated)
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, data: Mapping[str, np.ndarray]) -> None:
        """Append packed transitions (keys as :func:`validate_demonstrations` returns)."""
        for t in range(len(data["actions"])):
            self.add(data["obs"][t], data["actions"][t], float(data["rewards"][t]),
                     data["next_obs"][t], bool(data["terminated"][t]))

    def sample_rows(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows (``(n, 2 D + A + 2)``, the layout of ``rows``) drawn uniformly with
        replacement."""
        return self.rows[rng.integers(0, self.size, size=n)]

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement (the draws of
        :meth:`sample_rows`), as ``obs``, ``next_obs``, ``actions``, ``rewards``,
        ``terminated`` arrays."""
        return self.split(self.sample_rows(n, rng))

    def split(self, rows: Any) -> dict[str, Any]:
        """Rows ``(n, 2 D + A + 2)`` (numpy or torch) -> views of their fields."""
        d, a = self.obs_dim, self.action_dim
        return {"obs": rows[:, :d], "next_obs": rows[:, d: 2 * d],
                "actions": rows[:, 2 * d: 2 * d + a], "rewards": rows[:, 2 * d + a],
                "terminated": rows[:, 2 * d + a + 1]}


# --------------------------------------------------------------------------- agent
class RLPD:
    """SAC + symmetric demo sampling + LayerNorm critic ensemble + REDQ target + UTD > 1.

    Args:
        observation_space: a ``Box`` or a ``Dict`` of ``Box`` es.
        action_space: a bounded ``Box``.
        demonstrations: episodes (module docstring), or None to learn from scratch.
        config: hyper-parameters (:class:`RLPDConfig`).
        seed: seeds the batch sampling and the REDQ subsets (own generators) and, through
            ``torch.manual_seed(seed)``, the networks' initialisation and the policy's
            sampling noise (torch's global generator).
        device: torch device of the networks, batches, observation statistics and
            temperature: ``"cpu"`` (default, see the module docstring), ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` or ``"auto"`` (:func:`s3k_envs.device.resolve_device`).
            The networks are initialised on the CPU and moved, so a seed gives the same
            initial weights on every device. Not saved with the agent.

    Raises:
        ValueError / TypeError: bad spaces, bad demonstrations (the message names the episode
            and field), bad config values, a device this machine does not have.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 demonstrations: Sequence[Mapping[str, Any]] | None = None,
                 config: RLPDConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        _check_spaces(observation_space, action_space)
        #: Torch device of the networks, batches, statistics and temperature.
        self.device: torch.device = resolve_device(device)
        self.config = config if config is not None else RLPDConfig()
        self.observation_space, self.action_space = observation_space, action_space
        self.seed = int(seed)
        cfg = self.config
        self.obs_dim = _flat_dim(observation_space)
        self.action_dim = int(np.prod(action_space.shape))
        self._low = np.asarray(action_space.low, np.float64).reshape(-1)
        self._high = np.asarray(action_space.high, np.float64).reshape(-1)
        self._rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self.actor = Actor(self.obs_dim, self.action_dim, cfg.hidden)
        self.critic = CriticEnsemble(self.obs_dim, self.action_dim, cfg.hidden, cfg.num_critics,
                                     cfg.layer_norm)
        self.critic_target = CriticEnsemble(self.obs_dim, self.action_dim, cfg.hidden,
                                            cfg.num_critics, cfg.layer_norm)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        for module in (self.actor, self.critic, self.critic_target):
            module.to(self.device)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device,
                                      requires_grad=True)
        self.target_entropy = (-0.5 * self.action_dim if cfg.target_entropy is None
                               else float(cfg.target_entropy))
        self.obs_rms = RunningMeanStd(self.obs_dim)  # float64 on the CPU (MPS has no float64)
        self.actor_opt = _adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = _adam(self.critic.parameters(), cfg.lr)
        self.alpha_opt = _adam([self.log_alpha], cfg.lr)
        self.online = ReplayBuffer(self.obs_dim, self.action_dim, cfg.buffer_size)
        self.demos: ReplayBuffer | None = None
        self.num_updates = 0
        self.env_steps = 0
        self.set_demonstrations(demonstrations)

    # ------------------------------------------------------------------ data
    def set_demonstrations(self, demonstrations: Sequence[Mapping[str, Any]] | None) -> None:
        """Validate and load demonstrations (replacing earlier ones); None removes them. The
        observation statistics take them in (on a fresh agent)."""
        if demonstrations is None:
            self.demos = None
            return
        data = validate_demonstrations(demonstrations, self.observation_space, self.action_space)
        data["actions"] = self._to_unit(data["actions"]).astype(np.float32)
        buf = ReplayBuffer(self.obs_dim, self.action_dim, len(data["actions"]))
        buf.extend(data)
        self.demos = buf
        if float(self.obs_rms.count) == 0:
            self.obs_rms.update(np.concatenate([data["obs"], data["next_obs"][-1:]]))

    def _to_unit(self, action: np.ndarray) -> np.ndarray:
        return 2.0 * (np.asarray(action, np.float64) - self._low) / (self._high - self._low) - 1.0

    def _from_unit(self, action: np.ndarray) -> np.ndarray:
        return self._low + 0.5 * (np.asarray(action, np.float64) + 1.0) * (self._high - self._low)

    def flatten(self, obs: Any) -> np.ndarray:
        """One env observation as the ``(D,)`` float32 vector the networks read."""
        return flatten_observations(self.observation_space, obs)

    def observe(self, obs: Any, action: np.ndarray, reward: float, next_obs: Any,
                terminated: bool) -> None:
        """Store one env transition (``action`` in the env's units; ``terminated`` means no
        bootstrap: pass False on a time-limit truncation) and update the observation
        statistics."""
        o, o2 = self.flatten(obs), self.flatten(next_obs)
        self.online.add(o, self._to_unit(action).reshape(-1), float(reward), o2, terminated)
        if self.config.normalize_observations:
            self.obs_rms.update(o2[None])
        self.env_steps += 1

    def _norm(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        return self.obs_rms.normalize(t) if self.config.normalize_observations else t

    def sample_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A batch: ``demo_ratio`` of it from the demonstrations, the rest online (all from
        whichever buffer is non-empty when the other is empty). Observations normalised."""
        n_demo = 0
        if self.demos is not None and self.demos.size:
            n_demo = batch_size if self.online.size == 0 else round(self.config.demo_ratio
                                                                    * batch_size)
        parts = []
        if n_demo:
            parts.append(self.demos.sample_rows(n_demo, self._rng))  # type: ignore[union-attr]
        if batch_size - n_demo:
            if self.online.size == 0:
                raise RuntimeError("sample_batch: no transitions to sample from")
            parts.append(self.online.sample_rows(batch_size - n_demo, self._rng))
        rows = torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts)).to(
            self.device)
        batch = self.online.split(rows)
        # obs and next_obs normalised in one pass: (B, 2, D), then views of it
        both = self._norm(rows[:, : 2 * self.obs_dim].view(batch_size, 2, self.obs_dim))
        return {"obs": both[:, 0], "next_obs": both[:, 1], "actions": batch["actions"],
                "rewards": batch["rewards"] * self.config.reward_scale,
                "terminated": batch["terminated"]}

    # ------------------------------------------------------------------ learning
    @property
    def alpha(self) -> float:
        """Current SAC temperature."""
        return float(self.log_alpha.detach().exp())

    def ready(self) -> bool:
        """Whether enough transitions are stored to start updating."""
        stored = self.online.size + (self.demos.size if self.demos is not None else 0)
        return stored >= max(self.config.learning_starts, 1)

    def update(self) -> dict[str, float]:
        """One round: ``utd`` critic updates (each on a fresh batch, REDQ target), then one
        actor and temperature update on the last batch (every ``actor_every``-th round).

        Returns:
            Losses and diagnostics of the round: ``critic_loss``, ``alpha``, ``q_mean``
            (ensemble mean on the batch), ``target_mean``; with an actor update also
            ``actor_loss`` and ``entropy`` (of the sampled actions, nats).
        """
        cfg = self.config
        alpha = self.log_alpha.exp().detach()
        for _ in range(cfg.utd):
            batch = self.sample_batch(cfg.batch_size)
            with torch.no_grad():
                next_action, next_logp = self.actor(batch["next_obs"])
                members = torch.randperm(cfg.num_critics, generator=self._generator)[
                    : cfg.num_min_critics].to(self.device)
                # a subset of all members is all of them (in another order): the same minimum
                # without copying the weights (the permutation is still drawn, for the stream)
                next_q = self.critic_target(
                    batch["next_obs"], next_action,
                    None if cfg.num_min_critics == cfg.num_critics else members).min(0).values
                if cfg.backup_entropy:
                    next_q = next_q - alpha * next_logp
                target = batch["rewards"] + cfg.gamma * (1.0 - batch["terminated"]) * next_q
            q = self.critic(batch["obs"], batch["actions"])
            critic_loss = F.mse_loss(q, target.unsqueeze(0).expand_as(q))
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(list(self.critic_target.parameters()),
                                     list(self.critic.parameters()), cfg.tau)
        self.num_updates += 1
        diagnostics = {"critic_loss": float(critic_loss.detach()), "alpha": float(alpha),
                       "q_mean": float(q.detach().mean()), "target_mean": float(target.mean())}
        if (self.num_updates - 1) % cfg.actor_every:
            return diagnostics
        self.critic.requires_grad_(False)
        action, logp = self.actor(batch["obs"])
        q_pi = self.critic(batch["obs"], action).mean(0)
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        if cfg.learn_temperature:
            # one backward pass for both losses: they share no parameters (alpha and log pi
            # enter each other's loss detached), so the gradients are those of two passes
            alpha_loss = (self.log_alpha.exp() * (-logp.detach() - self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            (actor_loss + alpha_loss).backward()
            self.alpha_opt.step()
        else:
            actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)
        return {**diagnostics, "actor_loss": float(actor_loss.detach()),
                "entropy": float(-logp.detach().mean())}

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray:
        """Action for one observation, in the env's units (``action_space.shape``, float32)."""
        o = self._norm(self.flatten(obs)[None])
        action, _ = self.actor(o, deterministic=deterministic)
        return self._from_unit(action[0].cpu().numpy()).reshape(self.action_space.shape).astype(
            np.float32)

    @torch.no_grad()
    def q_values(self, obs: Any, action: np.ndarray) -> np.ndarray:
        """``(E,)`` Q-values of every critic for one observation and action (env units)."""
        o = self._norm(self.flatten(obs)[None])
        a = torch.as_tensor(self._to_unit(action).reshape(1, -1), dtype=torch.float32,
                            device=self.device)
        return self.critic(o, a)[:, 0].cpu().numpy()

    def learn(self, env: gym.Env, total_steps: int, seed: int | None = None,
              info_keys: Sequence[str] = (),
              callback: Callable[[RLPD, dict[str, Any]], bool | None] | None = None
              ) -> list[dict[str, Any]]:
        """Interact with ``env`` for ``total_steps`` steps, one update round per step.

        Args:
            env: the env (its ``TimeLimit`` ends episodes; ``truncated`` bootstraps unless
                ``config.bootstrap_truncation`` is False).
            total_steps: env steps.
            seed: seed of the first reset (later resets continue the env's stream).
            info_keys: ``info`` entries to copy into each episode's record (last step).
            callback: called after every finished episode with ``(agent, record)``;
                returning False stops learning.

        Returns:
            One record per finished episode: ``env_steps`` (total so far), ``length``,
            ``return``, ``discounted_return`` (with ``config.gamma``; compare with ``q0``),
            ``success`` (``info["is_success"]``, False when absent),
            ``terminated``, ``truncated``, ``q0`` (ensemble-mean Q of the first state and
            action), ``wall_s``, plus ``info_keys``.
        """
        if total_steps < 0:
            raise ValueError(f"total_steps: expected >= 0, got {total_steps}")
        records: list[dict[str, Any]] = []
        obs, info = env.reset(seed=seed)
        ep_return, ep_disc, ep_len, q0 = 0.0, 0.0, 0, None
        start = time.perf_counter()
        for step in range(total_steps):
            if step < self.config.random_steps:
                action = self._from_unit(self._rng.uniform(-1, 1, self.action_dim)).reshape(
                    self.action_space.shape).astype(np.float32)
            else:
                action = self.act(obs)
            if q0 is None:
                q0 = float(self.q_values(obs, action).mean())
            next_obs, reward, terminated, truncated, info = env.step(action)
            self.observe(obs, action, float(reward), next_obs,
                         bool(terminated) or (bool(truncated)
                                              and not self.config.bootstrap_truncation))
            ep_return += float(reward)
            ep_disc += self.config.gamma ** ep_len * float(reward)
            ep_len += 1
            if self.ready():
                self.update()
            obs = next_obs
            if terminated or truncated:
                record = {"env_steps": self.env_steps, "length": ep_len, "return": ep_return,
                          "discounted_return": ep_disc,
                          "success": bool(info.get("is_success", False)),
                          "terminated": bool(terminated), "truncated": bool(truncated),
                          "q0": q0, "wall_s": time.perf_counter() - start,
                          **{k: _plain(info.get(k)) for k in info_keys}}
                records.append(record)
                if callback is not None and callback(self, record) is False:
                    break
                obs, info = env.reset()
                ep_return, ep_disc, ep_len, q0 = 0.0, 0.0, 0, None
        return records

    # ------------------------------------------------------------------ save / load
    def state(self) -> dict[str, Any]:
        """Everything :meth:`save` writes: tensors, numbers and strings only."""
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.config.to_json(),
                "observation_space": _space_json(self.observation_space),
                "action_space": _space_json(self.action_space), "seed": self.seed,
                "num_updates": self.num_updates, "env_steps": self.env_steps}
        return {"format": FORMAT, "version": FORMAT_VERSION, "meta_json": json.dumps(meta),
                "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "obs_rms": self.obs_rms.state_dict(), "log_alpha": self.log_alpha.detach(),
                "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the agent (networks, optimisers, observation statistics, config and spaces as
        JSON) to one file, atomically, as CPU tensors (loadable without the device it was
        trained on). The replay buffer and demonstrations are not saved."""
        from s3k_envs.atomic import atomic_open

        path = Path(path)
        with atomic_open(path, "wb") as f:
            torch.save(_to_cpu(self.state()), f)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             demonstrations: Sequence[Mapping[str, Any]] | None = None,
             device: str | torch.device = "cpu") -> RLPD:
        """Read an agent written by :meth:`save` (``torch.load(weights_only=True)``: nothing
        but tensors and plain data is unpickled) onto ``device`` (as in :class:`RLPD`; any
        device, whichever one the file was saved from).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not an RLPD agent file, another format version, or a corrupt file
                (the message names the file).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no RLPD agent file there")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises various types for foreign / corrupt files
            raise ValueError(f"{path}: not an RLPD agent file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an RLPD agent file (format "
                             f"{data.get('format') if isinstance(data, dict) else type(data)!r})")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: RLPD agent format version {data.get('version')!r}, this "
                             f"code reads {FORMAT_VERSION}")
        meta = json.loads(data["meta_json"])
        agent = cls(_space_from_json(meta["observation_space"]),
                    _space_from_json(meta["action_space"]), None,
                    RLPDConfig.from_json(meta["config"]), seed=int(meta["seed"]), device=device)
        agent.actor.load_state_dict(data["actor"])
        agent.critic.load_state_dict(data["critic"])
        agent.critic_target.load_state_dict(data["critic_target"])
        agent.obs_rms.load_state_dict(data["obs_rms"])
        with torch.no_grad():
            agent.log_alpha.copy_(data["log_alpha"])
        agent.actor_opt.load_state_dict(data["actor_opt"])
        agent.critic_opt.load_state_dict(data["critic_opt"])
        agent.alpha_opt.load_state_dict(data["alpha_opt"])
        agent.num_updates, agent.env_steps = int(meta["num_updates"]), int(meta["env_steps"])
        if demonstrations is not None:
            agent.set_demonstrations(demonstrations)
        return agent

    # ------------------------------------------------------------------ replay buffer file
    def save_replay_buffer(self, path: str | os.PathLike[str]) -> Path:
        """Write the online replay buffer and the agent's random-stream states to one ``.npz``
        (numpy arrays and a JSON string only: :meth:`load_replay_buffer` reads it with
        ``allow_pickle=False``), atomically. With :meth:`save` this is a resumable checkpoint:
        the batch sampler's numpy generator, the REDQ subset generator and torch's global
        generator (policy noise) continue where they were.

        Arrays: ``obs`` / ``next_obs`` ``(N, D)`` float32, ``actions`` ``(N, A)`` float32 in
        ``[-1, 1]``, ``rewards`` / ``terminated`` ``(N,)`` float32 (N = stored transitions, in
        slot order), ``torch_rng`` / ``redq_rng`` uint8 generator states, ``meta_json``.
        """
        from s3k_envs.atomic import atomic_open

        buf = self.online
        n = buf.size
        meta = {"format": FORMAT + "-buffer", "version": FORMAT_VERSION,
                "obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "capacity": buf.capacity, "size": n, "next": buf._next,
                "env_steps": self.env_steps, "num_updates": self.num_updates,
                "numpy_rng": self._rng.bit_generator.state}
        arrays = {k: np.ascontiguousarray(getattr(buf, k)[:n]) for k in _BUFFER_KEYS}
        arrays["torch_rng"] = torch.get_rng_state().numpy()
        arrays["redq_rng"] = self._generator.get_state().cpu().numpy()
        path = Path(path)
        with atomic_open(path, "wb") as f:
            np.savez(f, meta_json=np.array(json.dumps(meta)), **arrays)
        return path

    def load_replay_buffer(self, path: str | os.PathLike[str]) -> None:
        """Restore what :meth:`save_replay_buffer` wrote into this agent (load the agent with
        :meth:`load` first: the file must come from the same point of training).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not an RLPD buffer file, other dimensions or capacity, or written at
                another env step / update count than this agent's (the message names both).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no RLPD replay buffer file there")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta_json"]))
                arrays = {k: np.array(data[k]) for k in (*_BUFFER_KEYS, "torch_rng",
                                                           "redq_rng")}
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not an RLPD replay buffer file ({exc})") from exc
        if meta.get("format") != FORMAT + "-buffer" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: expected an RLPD replay buffer file version "
                             f"{FORMAT_VERSION}, got format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}")
        want = {"obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "capacity": self.online.capacity, "env_steps": self.env_steps,
                "num_updates": self.num_updates}
        diff = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
        if diff:
            raise ValueError(f"{path}: buffer does not fit this agent (file vs agent: "
                             f"{diff})")
        n = int(meta["size"])
        if any(len(arrays[k]) != n for k in _BUFFER_KEYS) or not 0 <= meta["next"] < max(
                self.online.capacity, 1):
            raise ValueError(f"{path}: inconsistent buffer arrays for size {n}")
        buf = ReplayBuffer(self.obs_dim, self.action_dim, self.online.capacity)
        buf._alloc(max(n, min(buf.capacity, 4096)))
        for k in _BUFFER_KEYS:
            getattr(buf, k)[:n] = arrays[k]
        buf.size, buf._next = n, int(meta["next"])
        self.online = buf
        self._rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(torch.from_numpy(arrays["torch_rng"]))
        self._generator.set_state(torch.from_numpy(arrays["redq_rng"]))


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam, fused where this torch supports it on CPU (~0.2 ms less per critic step)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def _to_cpu(tree: Any) -> Any:
    """A nest of dicts / lists / tuples with every tensor detached and on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, Mapping):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree


def _plain(value: Any) -> Any:
    """An info value as plain JSON/CSV data."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    return value
