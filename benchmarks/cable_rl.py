"""RL on cable insertion: DDPG from demonstrations on S3K keypoints vs on beta-VAE features.

The S3K paper's headline experiment (§6, Fig. 7) on ``S3K-CableInsert-v0`` with one fixed,
calibrated camera rig for every episode (env option ``camera_seed``, like a robot cell).
Agents (:class:`agents.ddpgfd.DDPGfD`, SB3's TD3 + demonstrations, n-step returns, L2 and a
Q-filtered behaviour-cloning term), one per *arm*:

==========  ===========================================================================
arm         observation (flattened to a Box, ``gymnasium.spaces.flatten`` order)
==========  ===========================================================================
``kp``      the S3K model's predicted keypoints ``(3, 3)`` m
            (:class:`~s3k_envs.wrappers.keypoints.KeypointObservation`, the shipped
            checkpoint) + gripper pose and velocity: ``gripper_pos (3,)`` m,
            ``gripper_quat (4,)``, ``gripper_linvel (3,)`` m/s, ``gripper_angvel (3,)``
            rad/s -> 22 numbers
``vae``     the beta-VAE latent mean ``(10,)`` of the 4 views
            (:class:`~agents.beta_vae.observation.VAEObservation`, trained here on unlabelled
            frames of the same rig) + the same gripper pose and velocity -> 23 numbers
``gt``      (optional upper bound) the ground-truth keypoints ``(3, 3)`` m + gripper pose
            and velocity -> 22 numbers; privileged
==========  ===========================================================================

Reward and success. ``kp`` and ``vae`` get the *same* reward from the S3K model:
:func:`~s3k_envs.wrappers.rewards.cable_insert_reward` on the predicted keypoints
(``-(|tip - socket| + |base - (socket + 1 cm z)|)`` m per step, ``-10`` on leaving the safety
box), and an episode succeeds -- and ends -- by the keypoint rule (distance < 2.5 cm on the
predicted keypoints; the env itself is made with ``terminate_on_success=False``). The
ground-truth success (``info["is_success_true"]``, the env's own rule on true keypoints) is
logged beside it: the two disagree both ways -- the rule fires a step or two late once the
plug is in the socket (see 1. below), and it can fire far from the socket when the
prediction fails (the smoke run saw a training episode of the ``vae`` arm end "inserted" by
the keypoint rule, predicted distance 1.7 cm, with a true insertion error of 47.5 cm), which an
agent may learn to exploit; compare the two columns. The ``gt`` arm gets the same rule on
the true keypoints (then both successes coincide and the reward equals the env's own).

Pipeline, every step cached under ``WORK = --work-dir/<profile>`` (default
``runs/cable_rl/<profile>``) and resumed when the command is rerun:

1. **Demonstrations**: ``--demos`` (default 51, the paper's count) successful episodes of
   :class:`s3k_envs.experts.CableInsertExpert` with images, on the fixed rig
   (:func:`s3k_envs.demos.run_episode` / ``save_demonstrations``, ``WORK/demos/cable.npz``).
   They are recorded on the env with ``terminate_on_success=False``, as the arms' envs are
   made, and go on ``--demo-extra-steps`` (6) control steps after the first true success
   (:class:`ContinueAfterSuccess`): with the shipped checkpoint the predicted ``plug_tip`` is
   8-21 mm off once the tip is inside the socket (measured on 10 expert episodes, fixed and
   random rigs), so at the first true success (true insertion error ~2.0 cm) the predicted
   error is still 2.8-3.7 cm and the keypoint rule fires only ~2 steps later, deeper in the
   socket; demonstrations that stopped at the true success would never show the ``kp`` /
   ``vae`` agents a success. Converted per arm with
   :func:`agents.ddpgfd.episodes_from_recording` (``kp``: the arm's ``KeypointObservation``
   observation of the recorded images; ``vae``: that observation passed through the arm's
   ``VAEObservation``, exactly the env's stack; ``gt``: the recorded true keypoints). The
   rewards are **recomputed** with the arm's own ``KeypointReward`` on the same keypoints the
   arm's env uses (predicted for ``kp``/``vae``; the safety-box flag is recomputed from the
   recorded gripper position and socket), and an episode is cut where that keypoint rule
   first succeeds (terminated there, as the arm's env would end it); when the rule never
   fires the last step is marked truncated (the recording stopped, bootstrap). Cached as
   ``WORK/demos/<arm>.npz``; the counts (and how many steps after the true success each
   arm's rule fired) go into the summary.
2. **beta-VAE**: unlabelled frames of the same rig along the expert's path
   (``s3k_envs.keypoints.data.generate_dataset``, ``rollout_steps`` / ``rollout_noise`` as the
   shipped cable checkpoint's data: 25 / 0.2; the env made with
   ``terminate_on_success=False`` like the arms' envs), ``WORK/vae_frames``; training with
   :func:`agents.beta_vae.training.train_vae` for a CPU-time budget (``WORK/vae``,
   resumable), unless
   ``--vae-checkpoint`` is given; a linear probe (latent mean -> true keypoints, mm,
   :func:`agents.beta_vae.probe.linear_probe`) on a separate labelled set of the same rig
   (``WORK/probe_frames``), next to the S3K keypoint model's error on the same test samples.
3. **Training**: ``DDPGfD`` per arm and seed for ``--steps`` env steps
   (``WORK/runs/<arm>/seed_<s>/``): every finished training episode goes to
   ``episodes.csv`` (env steps so far, success by the keypoint rule, true success, return,
   ...), TensorBoard events to ``tb/`` (SB3's ``tensorboard_log``; ``rollout/success_rate``
   is the keypoint rule, ``rollout/success_true`` the ground truth). A checkpoint (model,
   replay buffer, episode log) is written atomically at the first episode end after every
   ``--checkpoint-every`` steps; an interrupted run resumes from it (the random streams are
   re-seeded then, so a resumed run is not bit-identical to an uninterrupted one).
4. **Evaluation**: the final deterministic policy on ``--eval-episodes`` held-out env seeds
   (``EVAL_SEED_BASE + i``; demonstrations use seeds from ``--demo-seed``, training resets
   start from ``TRAIN_SEED_BASE + 1000 * seed``), ``eval.csv``; then ``result.json`` marks the
   run done. A rerun skips finished (arm, seed) runs, resumes an interrupted one from its
   checkpoint, and refuses (with the reason) to reuse a run made with other settings.

Outputs (atomic) in ``--out`` (default ``benchmarks/results/`` for ``--quick`` / ``--full``,
``WORK`` for ``--smoke``), stem ``cable_rl`` (``--full``) or ``cable_rl_<profile>``:

* ``<stem>.csv``: one row per arm: evaluation success rates (keypoint rule and true) as mean,
  sd, min and max over seeds; the final training success (rolling average over the last
  ``--window`` steps) mean / min / max over seeds; the representation's keypoint error
  (``kp``: the S3K model, ``vae``: the linear probe, mm);
* ``<stem>.json``: the same plus the configuration, machine info and command, stage timings,
  demonstration conversion counts, the VAE training summary, the probe, every run's result;
* ``<stem>_episodes.csv`` (every training episode of every run) and ``<stem>_eval.csv``
  (every evaluation episode);
* ``<stem>.png``: success rate vs env steps like the paper's Fig. 7 (rolling average over
  ``--window`` steps, mean over seeds with a min-max band; left the keypoint rule, right the
  ground truth), final evaluation at the right edge.

Profiles (one is required; every value can be overridden, see ``--help``):

=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========
profile    demos   VAE    probe   VAE     VAE px /   seeds   steps  eval   window
                   frames frames  budget  arch                      eps.
=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========
smoke      2       20     8       10 st.  32 / tiny  1       100    1      50
quick      51      600    60      10 min  64 / def.  2       2000   10     500
full       51      2000   300     30 min  64 / def.  5       40000  50     2000
=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========

(VAE budget in CPU minutes of this process, ``clock="cpu"``; "def." = the
:class:`~agents.beta_vae.training.VAETrainConfig` defaults.) Every profile uses the same DDPGfD
settings: the module defaults of :class:`~agents.ddpgfd.DDPGfD` (demo fraction 0.25,
5-step returns, BC weight 1 with the Q-filter, L2 1e-5, lr 1e-3, batch 256, gamma 0.99),
MLPs of 256 x 256, Gaussian exploration noise 0.1, all stored transitions kept. Both arms run
at 128 px (the shipped keypoint checkpoint was trained at 128 px; the VAE resizes the views
to its own size); the ``gt`` arm renders 32 px images it never looks at.

Wall time on the project's 2-core CPU machine (1 torch thread). Measured ``--quick --arms kp
vae gt`` (2026-11-22, the machine shared with four other benchmarks, so each process got
about half a core): **53.5 min** -- demonstrations 26 s, VAE + probe datasets 172 s, VAE
10 CPU-min = 18.5 min wall, conversion 69 s, 6 runs x 2,000 steps + evaluation 30.5 min at
5.8-8.3 agent steps/s. On idle cores the agent steps (env step + S3K inference + VAE encoder
+ one DDPGfD update of batch 256) run at ~15 / s (``kp``, ``vae``) and ~25 / s (``gt``, no
inference, 32 px), so ``--quick`` should take ~25 min there (VAE 10 min, runs ~11 min).
``--full`` ~7.5 h for ``kp`` + ``vae`` (10 runs x 40,000 steps, evaluation ~12 min, VAE 30
CPU-min, 2,300 dataset samples ~8 min), ~9.5 h with ``gt`` (5 more runs at ~25 steps/s). Not
run yet: the quick profile's 2,000 steps are far too few for DDPGfD to learn this task (0 %
for every arm, also on true keypoints; see ``benchmarks/cable_rl_ablation.py`` and
``benchmarks/cable_bc.py``). The JSON records the measured stage timings of every run.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rl --quick [--arms kp vae gt]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --full [--seeds 0 1 2 3 4] [--steps 40000]
        [--work-dir runs/cable_rl] [--out benchmarks/results] [--vae-checkpoint PATH]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --smoke --work-dir /tmp/cable_rl  # ~0.5 min
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise

import s3k_envs  # noqa: F401  (registers the S3K envs)
from agents.beta_vae.model import BetaVAE, load_vae
from agents.beta_vae.observation import VAEObservation
from agents.beta_vae.probe import linear_probe
from agents.beta_vae.training import train_vae
from agents.ddpgfd import DDPGfD, DemoEpisode, episodes_from_recording, flatten_dict_observations
from benchmarks import common
from s3k_envs.atomic import atomic_directory, atomic_open, atomic_path
from s3k_envs.checkpoints import default_checkpoint
from s3k_envs.demos import (
    FORMAT_VERSION,
    load_demonstrations,
    load_metadata,
    make_expert,
    run_episode,
    save_demonstrations,
)
from s3k_envs.keypoints.data import generate_dataset
from s3k_envs.keypoints.dataset import read_manifest
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.progress import Progress
from s3k_envs.wrappers.keypoints import KeypointObservation, keypoint_bounds_for
from s3k_envs.wrappers.rewards import KeypointReward, cable_insert_reward

ENV_ID = "S3K-CableInsert-v0"
#: Camera resolution of the ``kp`` and ``vae`` arms, px (the shipped checkpoint's).
IMAGE_SIZE = 128
#: Camera resolution of the ``gt`` arm, px: it never looks at its images.
GT_IMAGE_SIZE = 32
#: The agents' proprioception, kept by every arm.
GRIPPER_KEYS = ("gripper_pos", "gripper_quat", "gripper_linvel", "gripper_angvel")
ARMS = ("kp", "vae", "gt")
ARM_LABELS = {"kp": "S3K keypoints", "vae": "beta-VAE latent", "gt": "true keypoints"}
ARM_COLORS = {"kp": "#4c72b0", "vae": "#dd8452", "gt": "#55a868"}
#: Evaluation episode ``i`` is reset with seed ``EVAL_SEED_BASE + i`` (held out: no
#: demonstration, dataset or first training reset uses these).
EVAL_SEED_BASE = 1_000_000
#: The training env of seed ``s`` is first reset with ``TRAIN_SEED_BASE + 1000 * s``.
TRAIN_SEED_BASE = 100_000
#: Dataset seeds of the VAE's unlabelled frames and of the probe's labelled samples.
FRAMES_SEED, PROBE_SEED = 201, 202
#: Version of the cached files' layout; bump to invalidate caches.
CACHE_VERSION = 1
#: Control steps the expert goes on after the first true success before a demonstration
#: ends (see :class:`ContinueAfterSuccess`).
DEMO_EXTRA_STEPS = 6

EPISODE_COLUMNS = ("episode", "steps", "length", "return", "success_keypoint", "success_true",
                   "left_safety_box", "final_keypoint_distance_m", "final_insertion_error_m",
                   "wall_s")
EVAL_COLUMNS = ("eval_seed", "length", "return", "success_keypoint", "success_true",
                "left_safety_box", "final_keypoint_distance_m", "final_insertion_error_m")
SUMMARY_COLUMNS = (
    "arm", "observation", "seeds", "steps", "eval_episodes",
    "eval_success_keypoint_mean", "eval_success_keypoint_sd", "eval_success_keypoint_min",
    "eval_success_keypoint_max",
    "eval_success_true_mean", "eval_success_true_sd", "eval_success_true_min",
    "eval_success_true_max",
    "final_train_success_keypoint_mean", "final_train_success_keypoint_min",
    "final_train_success_keypoint_max",
    "final_train_success_true_mean", "final_train_success_true_min",
    "final_train_success_true_max",
    "eval_return_mean", "repr_error_median_mm", "repr_error_p90_mm",
    "train_steps_per_s", "run_wall_s",
)


class CacheMismatchError(RuntimeError):
    """A cached file under the work directory was made with other settings."""


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class AgentParams:
    """DDPGfD settings shared by every arm (see :class:`agents.ddpgfd.DDPGfD`).

    Attributes:
        demo_fraction: share of every batch drawn from the demonstrations.
        n_steps: steps of the n-step return.
        bc_weight: weight of the behaviour-cloning loss (0 = off).
        q_filter: Q-filter on the BC loss.
        pretrain_steps: DQfD pre-training steps on the demonstrations before interaction.
        actor_l2, critic_l2: L2 weights on the networks' weights.
        learning_rate: Adam learning rate of actor and critics.
        batch_size: transitions per gradient step.
        gamma: discount per control step (0.25 s).
        tau: Polyak factor of the target networks.
        action_noise: std of the Gaussian exploration noise, action units ([-1, 1]).
        net_arch: hidden layer widths of actor and critics.
    """

    demo_fraction: float = 0.25
    n_steps: int = 5
    bc_weight: float = 1.0
    q_filter: bool = True
    pretrain_steps: int = 0
    actor_l2: float = 1e-5
    critic_l2: float = 1e-5
    learning_rate: float = 1e-3
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    action_noise: float = 0.1
    net_arch: tuple[int, ...] = (256, 256)


@dataclass(frozen=True)
class Profile:
    """Scale of one benchmark profile (see the module docstring's table)."""

    demos: int
    vae_frames: int
    probe_samples: int
    vae_minutes: float | None
    vae_steps: int
    vae_batch: int
    vae_image_size: int
    vae_arch: dict[str, Any]
    seeds: tuple[int, ...]
    steps: int
    eval_episodes: int
    window: int
    checkpoint_every: int
    rollout_steps: int = 25
    rollout_noise: float = 0.2


_TINY_VAE = {"channels": [8, 8, 16], "view_features": 16, "hidden": 32}
PROFILES: dict[str, Profile] = {
    "smoke": Profile(demos=2, vae_frames=20, probe_samples=8, vae_minutes=None, vae_steps=10,
                     vae_batch=4, vae_image_size=32, vae_arch=_TINY_VAE, seeds=(0,), steps=100,
                     eval_episodes=1, window=50, checkpoint_every=40, rollout_steps=10),
    "quick": Profile(demos=51, vae_frames=600, probe_samples=60, vae_minutes=10.0,
                     vae_steps=1_000_000, vae_batch=16, vae_image_size=64, vae_arch={},
                     seeds=(0, 1), steps=2_000, eval_episodes=10, window=500,
                     checkpoint_every=1_000),
    "full": Profile(demos=51, vae_frames=2_000, probe_samples=300, vae_minutes=30.0,
                    vae_steps=1_000_000, vae_batch=32, vae_image_size=64, vae_arch={},
                    seeds=(0, 1, 2, 3, 4), steps=40_000, eval_episodes=50, window=2_000,
                    checkpoint_every=5_000),
}


@dataclass(frozen=True)
class Config:
    """Everything one invocation does (a profile with the command line's overrides)."""

    profile: str
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    eval_episodes: int
    window: int
    checkpoint_every: int
    demos: int
    demo_seed: int
    demo_extra_steps: int
    camera_seed: int
    vae_frames: int
    probe_samples: int
    rollout_steps: int
    rollout_noise: float
    vae_minutes: float | None
    vae_steps: int
    vae_batch: int
    vae_image_size: int
    vae_arch: dict[str, Any]
    vae_checkpoint: Path | None
    keypoint_checkpoint: Path
    agent: AgentParams
    threads: int
    workers: int | None
    work_dir: Path
    out: Path
    stem: str
    tag: str = ""
    progress: bool = True

    @property
    def work(self) -> Path:
        """The cache directory of this profile (and tag): ``work_dir/<profile>[_<tag>]``."""
        return self.work_dir / (f"{self.profile}_{self.tag}" if self.tag else self.profile)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (paths as strings)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        return d


# ---------------------------------------------------------------------------- small helpers
def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[cable_rl] {message}", file=sys.stderr, flush=True)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex SHA-256 of named arrays' contents (names, dtypes, shapes and bytes, sorted by
    name): stable across rewrites of the same content, unlike a zip file's bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_json(path: Path) -> Any:
    """A JSON file's content."""
    return json.loads(path.read_text(encoding="utf-8"))


def json_normalise(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, numpy scalars -> numbers)."""
    return json.loads(json.dumps(obj, default=common._json_default))


def stamp_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two stamps, as ``key: old -> new`` strings."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def read_rows(path: Path, types: Mapping[str, Callable[[str], Any]]) -> list[dict[str, Any]]:
    """Rows of a CSV written by :func:`benchmarks.common.write_csv`, values converted with
    ``types`` (empty cells -> NaN for floats, None otherwise)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        conv: dict[str, Any] = {}
        for key, value in row.items():
            fn = types.get(key, str)
            if value == "":
                conv[key] = math.nan if fn is float else None
            else:
                conv[key] = fn(value)
        out.append(conv)
    return out


_EPISODE_TYPES: dict[str, Callable[[str], Any]] = {
    "episode": int, "steps": int, "length": int, "return": float, "success_keypoint": int,
    "success_true": int, "left_safety_box": int, "final_keypoint_distance_m": float,
    "final_insertion_error_m": float, "wall_s": float, "eval_seed": int, "seed": int,
}


def seed_stats(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``sd`` (sample standard deviation over seeds; NaN for one seed), ``min``,
    ``max`` of per-seed values (NaN entries ignored; all NaN for none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "sd": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max())}


def rolling_success(end_steps: np.ndarray, success: np.ndarray, grid: np.ndarray,
                    window: int) -> np.ndarray:
    """Rolling success rate of one run.

    Args:
        end_steps: ``(E,)`` env steps at which each episode ended (non-decreasing).
        success: ``(E,)`` 0/1 success of each episode.
        grid: ``(G,)`` env steps to evaluate at.
        window: width in env steps.

    Returns:
        ``(G,)`` float64: the mean success of the episodes that ended in
        ``(g - window, g]`` for each grid step ``g``; NaN where none did.
    """
    end_steps = np.asarray(end_steps, dtype=np.int64)
    success = np.asarray(success, dtype=np.float64)
    if end_steps.shape != success.shape or end_steps.ndim != 1:
        raise ValueError(f"end_steps and success: expected equal (E,) shapes, got "
                         f"{end_steps.shape} and {success.shape}")
    if window < 1:
        raise ValueError(f"window: expected >= 1 env steps, got {window}")
    grid = np.asarray(grid, dtype=np.int64)
    cum = np.concatenate([[0.0], np.cumsum(success)])
    hi = np.searchsorted(end_steps, grid, side="right")
    lo = np.searchsorted(end_steps, grid - window, side="right")
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (cum[hi] - cum[lo]) / count
    return np.where(count > 0, rate, np.nan)


class StageTimes:
    """Wall and CPU seconds of the pipeline's stages, kept in a JSON file across calls.

    A stage that a later call only reused from the caches keeps the timing of the call that
    computed it (flagged ``reused_in_last_call``), so a rerun's summary still reports what
    the work cost. A stage interrupted and completed by a later call records that call's
    part only (the runs' own ``train_wall_s`` include their earlier parts).

    Args:
        path: the JSON file (``WORK/stage_timings.json``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = read_json(path) if path.exists() else {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[dict[str, bool]]:
        """Time the body; it sets ``flags["reused"] = True`` when it computed nothing.
        Nothing is recorded when the body raises."""
        flags = {"reused": False}
        log(f"{name} ...")
        w0, c0 = time.monotonic(), time.process_time()
        yield flags
        wall, cpu = time.monotonic() - w0, time.process_time() - c0
        log(f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU"
            f"{' (reused from the work directory)' if flags['reused'] else ''}")
        old = self.records.get(name)
        if flags["reused"] and old is not None:
            old["reused_in_last_call"] = True
        else:
            self.records[name] = {"wall_s": wall, "cpu_s": cpu,
                                  "reused_in_last_call": flags["reused"]}
        common.write_json(self.path, self.records)


# ---------------------------------------------------------------------------- envs
class TrueKeypointObservation(gym.Wrapper):
    """Privileged observation for the ``gt`` arm: the env's kept entries plus the
    ground-truth keypoints of ``info["keypoints"]``.

    Observation: the ``keep`` entries unchanged and ``keypoints`` ``(K, 3)`` float32, m,
    world frame (clipped into :func:`~s3k_envs.wrappers.keypoints.keypoint_bounds_for`, like
    :class:`~s3k_envs.wrappers.keypoints.KeypointObservation`'s predictions).

    Args:
        env: an S3K env (its info carries ``keypoints``).
        keep: observation keys to keep.
    """

    def __init__(self, env: gym.Env, keep: Sequence[str]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or any(k not in space.spaces for k in keep):
            raise ValueError(f"TrueKeypointObservation: keep {list(keep)} must name entries of "
                             f"a Dict observation space, got {space}")
        names = list(env.unwrapped.keypoint_names)
        low, high = keypoint_bounds_for(env)
        self._low = np.tile(low.astype(np.float32), (len(names), 1))
        self._high = np.tile(high.astype(np.float32), (len(names), 1))
        self.keep = tuple(keep)
        self.observation_space = spaces.Dict({
            **{k: space[k] for k in self.keep},
            "keypoints": spaces.Box(self._low, self._high, (len(names), 3), np.float32)})

    def observation_from(self, obs: Mapping[str, np.ndarray],
                         info: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The observation of one step's ``(obs, info)`` of the wrapped env."""
        out = {k: obs[k] for k in self.keep}
        kp = np.asarray(info["keypoints"], dtype=np.float32)
        out["keypoints"] = np.clip(kp, self._low, self._high).astype(np.float32)
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset and observe the true keypoints."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observation_from(obs, info), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], Any, bool, bool, dict[str, Any]]:
        """Step and observe the true keypoints."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observation_from(obs, info), reward, terminated, truncated, info


@dataclass
class ArmEnv:
    """One arm's env (``Dict`` observations) and the wrappers it is made of.

    Attributes:
        env: the outermost wrapper (``Dict`` observation; flatten it for DDPGfD).
        reward: the arm's :class:`KeypointReward` (reward, success and termination rule).
        keypoints: the ``KeypointObservation`` (``kp``, ``vae``) or
            :class:`TrueKeypointObservation` (``gt``).
        vae: the ``VAEObservation`` (``vae`` arm only).
    """

    env: gym.Env
    reward: KeypointReward
    keypoints: KeypointObservation | TrueKeypointObservation
    vae: VAEObservation | None = None

    def observation_fn(self, collected: list[np.ndarray]
                       ) -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]],
                                     dict[str, np.ndarray]]:
        """``(obs, info) -> observation`` of a recorded step through this arm's stack; it
        appends the ``(K, 3)`` keypoints the arm's reward reads (raw predictions, or the true
        keypoints) to ``collected``."""

        def fn(obs: dict[str, np.ndarray], info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if isinstance(self.keypoints, TrueKeypointObservation):
                collected.append(np.asarray(info["keypoints"], dtype=np.float64))
                return self.keypoints.observation_from(obs, info)
            out = self.keypoints.observation(obs)
            pred = self.keypoints.last_prediction
            assert pred is not None
            collected.append(np.asarray(pred.points_3d, dtype=np.float64))
            return out if self.vae is None else self.vae.observation(out)

        return fn


def make_arm_env(arm: str, camera_seed: int, predictor: KeypointPredictor | None,
                 vae: BetaVAE | None) -> ArmEnv:
    """The env of one arm (see the module docstring), ``Dict`` observations.

    Args:
        arm: ``"kp"``, ``"vae"`` or ``"gt"``.
        camera_seed: the fixed rig's seed.
        predictor: the S3K model (``kp`` and ``vae`` arms).
        vae: the beta-VAE (``vae`` arm).
    """
    if arm not in ARMS:
        raise ValueError(f"arm: expected one of {ARMS}, got {arm!r}")
    size = GT_IMAGE_SIZE if arm == "gt" else IMAGE_SIZE
    base = gym.make(ENV_ID, image_size=size, camera_seed=camera_seed,
                    terminate_on_success=False, disable_env_checker=True)
    try:
        if arm == "gt":
            kp_gt = TrueKeypointObservation(base, GRIPPER_KEYS)
            reward = cable_insert_reward(kp_gt, terminate_on_success=True)
            return ArmEnv(reward, reward, kp_gt)
        if predictor is None:
            raise ValueError(f"arm {arm!r} needs the keypoint predictor")
        kp = KeypointObservation(base, predictor, keep=GRIPPER_KEYS, confidence=False,
                                 keep_images=arm == "vae")
        reward = cable_insert_reward(kp, terminate_on_success=True)
        if reward.keypoint_source != "predicted":
            raise RuntimeError("the keypoint reward does not read the predicted keypoints")
        if arm == "kp":
            return ArmEnv(reward, reward, kp)
        if vae is None:
            raise ValueError("arm 'vae' needs the beta-VAE")
        vae_obs = VAEObservation(reward, vae, keep=GRIPPER_KEYS)
        return ArmEnv(vae_obs, reward, kp, vae_obs)
    except BaseException:
        base.close()
        raise


# ---------------------------------------------------------------------------- 1. demos
class ContinueAfterSuccess(gym.Wrapper):
    """End an episode ``extra_steps`` control steps after the env first reports success.

    For recording demonstrations on an env made with ``terminate_on_success=False``: the
    ``kp`` and ``vae`` arms end an episode when the keypoint rule on the *predicted*
    keypoints succeeds, which can come a few steps after the true success (the shipped
    model's ``plug_tip`` is least accurate with the tip inside the socket), so the
    demonstrations go on a little past the true success and every arm's copy is cut where
    its own rule fires (:func:`relabel_episode`). ``extra_steps=0`` ends at the first true
    success, like the registered env.

    Args:
        env: the env (``info["is_success"]`` every step).
        extra_steps: control steps after the first success; the episode is then terminated.
    """

    def __init__(self, env: gym.Env, extra_steps: int) -> None:
        super().__init__(env)
        if extra_steps < 0:
            raise ValueError(f"extra_steps: expected >= 0, got {extra_steps}")
        self.extra_steps = int(extra_steps)
        self._since: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        """Reset (and forget the success)."""
        self._since = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step; terminated ``extra_steps`` steps after the first success."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._since is not None:
            self._since += 1
        elif info.get("is_success"):
            self._since = 0
        if self._since is not None and self._since >= self.extra_steps:
            terminated = True
        return obs, reward, terminated, truncated, info


def stage_demos(cfg: Config, work: Path) -> tuple[Path, dict[str, Any]]:
    """Record (or reuse) the expert demonstrations with images on the fixed rig.

    Episode ``i`` of the attempts is reset with seed ``demo_seed + i`` on
    ``S3K-CableInsert-v0`` made with ``terminate_on_success=False`` inside
    :class:`ContinueAfterSuccess` (``demo_extra_steps``), run with
    :func:`s3k_envs.demos.run_episode` (the scripted expert of :func:`s3k_envs.experts.make_expert`)
    and kept when the env reported success at some step; written with
    :func:`s3k_envs.demos.save_demonstrations` (its format; the metadata records the extra
    steps).

    Returns:
        ``(path, metadata)`` of ``WORK/demos/cable.npz``.

    Raises:
        CacheMismatchError: a recording with other settings is there.
        RuntimeError: fewer than ``demos`` successes in ``3 * demos + 10`` attempts.
    """
    path = work / "demos" / "cable.npz"
    options = {"image_size": IMAGE_SIZE, "camera_seed": cfg.camera_seed,
               "terminate_on_success": False}
    want = json_normalise({"env_id": ENV_ID, "episodes": cfg.demos, "seed": cfg.demo_seed,
                           "store_images": True, "env_options": options,
                           "extra_steps_after_success": cfg.demo_extra_steps})
    if path.exists():
        meta = load_metadata(path)
        diff = stamp_diff({k: meta.get(k) for k in want}, want)
        if diff:
            raise CacheMismatchError(f"{path}: recorded with other settings ({'; '.join(diff)});"
                                     " use another --work-dir or delete the file")
        log(f"demonstrations: reusing {path} ({meta['episodes']} episodes, "
            f"{meta['failures']} failed attempts)")
        return path, meta
    env = ContinueAfterSuccess(gym.make(ENV_ID, **options), cfg.demo_extra_steps)
    kept: list[dict[str, Any]] = []
    failed: list[int] = []
    max_attempts = 3 * cfg.demos + 10
    try:
        expert = make_expert(env)
        with Progress(cfg.demos, "demonstrations", unit="ep", enabled=cfg.progress) as bar:
            attempt = 0
            while len(kept) < cfg.demos and attempt < max_attempts:
                seed = cfg.demo_seed + attempt
                attempt += 1
                episode = run_episode(env, expert, seed, store_images=True)
                if bool(np.any(episode["infos"]["is_success"])):
                    episode["success"] = True
                    kept.append(episode)
                    bar.update(1)
                else:
                    failed.append(seed)
                bar.set_postfix(failures=len(failed))
    finally:
        env.close()
    if len(kept) < cfg.demos:
        raise RuntimeError(f"only {len(kept)} of {cfg.demos} expert episodes succeeded in "
                           f"{max_attempts} attempts (failed seeds {failed[:20]})")
    meta = {**want, "format_version": FORMAT_VERSION, "keypoint_names": list(
        env.unwrapped.keypoint_names), "expert": type(expert).__name__, "attempts": attempt,
        "failures": len(failed), "failed_seeds": failed, "recorded_by": "benchmarks.cable_rl"}
    save_demonstrations(path, kept, meta)
    log(f"demonstrations: {len(kept)} episodes in {attempt} attempts -> {path}")
    return path, meta


# ---------------------------------------------------------------------------- 2. VAE
def stage_datasets(cfg: Config, work: Path) -> tuple[Path | None, Path]:
    """Generate (or reuse) the VAE's unlabelled frames and the probe's labelled samples,
    both on the fixed rig, along the expert's path (env made with
    ``terminate_on_success=False`` like the arms' envs, so the rollouts also cover the
    states after a true success).

    Returns:
        ``(frames_dir or None when a VAE checkpoint is given, probe_dir)``.
    """
    options = {"camera_seed": cfg.camera_seed, "terminate_on_success": False}
    common_kw: dict[str, Any] = {
        "image_size": IMAGE_SIZE, "env_options": options, "rollout_steps": cfg.rollout_steps,
        "rollout_noise": cfg.rollout_noise, "workers": cfg.workers, "progress": cfg.progress}
    frames = None
    try:
        if cfg.vae_checkpoint is None:
            frames = generate_dataset(work / "vae_frames", ENV_ID, cfg.vae_frames, 0,
                                      seed=FRAMES_SEED, **common_kw)
        probe = generate_dataset(work / "probe_frames", ENV_ID, cfg.probe_samples,
                                 cfg.probe_samples, seed=PROBE_SEED, **common_kw)
    except FileExistsError as e:
        raise CacheMismatchError(f"{e} (use another --work-dir)") from None
    return frames, probe


def vae_train_options(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of :func:`agents.beta_vae.training.train_vae` for this configuration."""
    return {"minutes": cfg.vae_minutes, "clock": "cpu", "beta": 1.0, "batch": cfg.vae_batch,
            "seed": 0, "threads": cfg.threads, "image_size": cfg.vae_image_size,
            "steps": cfg.vae_steps, **cfg.vae_arch}


def stage_vae(cfg: Config, work: Path, frames: Path | None
              ) -> tuple[Path, dict[str, Any], bool]:
    """Train (or resume, or reuse) the beta-VAE, unless ``--vae-checkpoint`` is given.

    Returns:
        ``(checkpoint path, summary, reused)``: the summary of :func:`train_vae` (or of the
        given checkpoint); ``reused`` when nothing was trained.

    Raises:
        KeyboardInterrupt: training was interrupted (its state is saved; rerun to resume).
    """
    if cfg.vae_checkpoint is not None:
        return cfg.vae_checkpoint, {"given_checkpoint": str(cfg.vae_checkpoint)}, True
    assert frames is not None
    run = work / "vae"
    options = vae_train_options(cfg)
    want = json_normalise({"cache_version": CACHE_VERSION, "frames": str(frames),
                           "frames_params": _dataset_params(frames), "options": options})
    done = run / "done.json"
    if done.exists():
        old = read_json(done)
        if old.get("stamp") == want:
            log(f"beta-VAE: reusing {run / 'model.pt'} ({old['summary']['steps']} steps)")
            return run / "model.pt", old["summary"], True
        log(f"beta-VAE: settings changed ({'; '.join(stamp_diff(old.get('stamp', {}), want))})"
            "; resuming/continuing its training")
    summary = train_vae(frames, run, progress_bar=cfg.progress, **options)
    torch.set_num_threads(cfg.threads)
    if summary.get("interrupted"):
        raise KeyboardInterrupt(f"beta-VAE training interrupted at step {summary['steps']}; "
                                "rerun the same command to resume")
    keep = {k: summary[k] for k in ("steps", "elapsed_s", "clock", "steps_per_s", "num_frames",
                                    "final_eval_on", "final_eval", "files", "config",
                                    "model_config") if k in summary}
    common.write_json(done, {"stamp": want, "summary": keep})
    ev = summary["final_eval"]
    log(f"beta-VAE: {summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} CPU-min; "
        f"{summary['final_eval_on']}: recon {ev['recon']:.0f} nats, KL {ev['kl']:.1f} nats, "
        f"{ev['active_units']}/{len(ev['kl_per_dim'])} active latents")
    return run / "model.pt", keep, False


def _dataset_params(root: Path) -> dict[str, Any]:
    m = read_manifest(root)
    keys = ("env_id", "env_options", "seed", "num_samples", "num_labelled", "rollout_steps",
            "rollout_noise")
    return {k: m.get(k) for k in keys}


def stage_probe(cfg: Config, work: Path, vae_path: Path, probe_dir: Path
                ) -> tuple[dict[str, Any], bool]:
    """Linear probe latent -> true keypoints (mm) and the keypoint model's error on the same
    test samples (cached in ``WORK/probe.json``).

    Returns:
        ``(result of linear_probe, reused from the cache)``.
    """
    path = work / "probe.json"
    want = json_normalise({"cache_version": CACHE_VERSION, "vae_sha256": file_sha256(vae_path),
                           "keypoint_checkpoint_sha256": file_sha256(cfg.keypoint_checkpoint),
                           "probe": _dataset_params(probe_dir)})
    if path.exists():
        old = read_json(path)
        if old.get("stamp") == want:
            return old["result"], True
    result = linear_probe(vae_path, probe_dir, test_fraction=0.3, seed=0,
                          keypoint_model=cfg.keypoint_checkpoint)
    common.write_json(path, {"stamp": want, "result": result})
    kp = result["keypoint_model"]
    log(f"linear probe on {result['num_test']} test samples: VAE latent -> keypoints median "
        f"{result['test']['median']:.1f} mm (p90 {result['test']['p90']:.1f}); S3K model median "
        f"{kp['median']:.1f} mm (p90 {kp['p90']:.1f}); mean-position baseline "
        f"{result['mean_baseline']['median']:.1f} mm")
    return result, False


# ---------------------------------------------------------------------------- 3. conversion
def in_safety_box(gripper_pos: np.ndarray, socket: np.ndarray,
                  box: Sequence[Sequence[float]]) -> bool:
    """The env's safety-box test (:meth:`CableInsertEnv.gripper_in_safety_box`) from a
    recorded gripper position ``(3,)`` m and the socket keypoint ``(3,)`` m (its xy is the
    socket's; the box's heights are absolute)."""
    (dx, dy), (zmin, zmax) = box
    p = np.asarray(gripper_pos, dtype=np.float64)
    s = np.asarray(socket, dtype=np.float64)
    return bool(abs(p[0] - s[0]) <= dx and abs(p[1] - s[1]) <= dy and zmin <= p[2] <= zmax)


def relabel_episode(episode: Mapping[str, Any], keypoints: np.ndarray,
                    recorded: Mapping[str, Any], reward: KeypointReward,
                    safety_box: Sequence[Sequence[float]]) -> tuple[dict[str, Any], str]:
    """Give a converted demonstration the arm's own rewards and episode end.

    Step ``t`` (action ``t``, reaching observation ``t + 1``) gets the reward the arm's
    :class:`KeypointReward` would give: ``-scale * (D(k_{t+1}) + penalty * left_{t+1})``
    with ``D`` its keypoint distance on ``keypoints[t + 1]`` and ``left`` the recomputed
    safety-box flag. The episode is cut at the first step where the keypoint rule succeeds
    or the gripper left the safety box (terminated there, as the arm's env ends it); if
    neither happens the last step is marked truncated.

    Args:
        episode: the converted episode (``observations`` dict of ``(T+1, ...)``, ``actions``
            ``(T, 6)``, ...).
        keypoints: ``(T+1, K, 3)`` m, the keypoints the arm's reward reads at every
            recorded observation.
        recorded: the recorded episode (``observations["gripper_pos"]`` ``(T+1, 3)`` m,
            ``infos["keypoints"]`` ``(T+1, K, 3)`` m, ``terminated``).
        reward: the arm's reward wrapper.
        safety_box: the env's ``safety_box`` option.

    Returns:
        ``(episode, outcome)``: the relabelled episode (``T' <= T`` steps) and ``"rule"``
        (the keypoint rule fired: terminated there), ``"never"`` (it never fired: the last
        recorded step is marked truncated) or ``"left_box"`` (terminated there).

    Raises:
        ValueError: non-finite keypoints, or a penalty the cable reward does not define.
    """
    t_steps = len(episode["actions"])
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[0] != t_steps + 1 or not np.all(np.isfinite(kp)):
        raise ValueError(f"keypoints: expected finite (T+1={t_steps + 1}, K, 3), got "
                         f"{kp.shape} (finite: {bool(np.all(np.isfinite(kp)))})")
    unknown = sorted(set(reward.penalties) - {"left_safety_box"})
    if unknown:
        raise ValueError(f"relabel_episode: cannot recompute penalties {unknown}")
    penalty = reward.penalties.get("left_safety_box", 0.0)
    names = list(reward.keypoint_names)
    socket = np.asarray(recorded["infos"]["keypoints"], np.float64)[:, names.index("socket")]
    grip = np.asarray(recorded["observations"]["gripper_pos"], np.float64)
    rewards = np.empty(t_steps)
    end, outcome = t_steps - 1, "never"
    for t in range(t_steps):
        dist = reward.keypoint_distance(kp[t + 1])
        left = not in_safety_box(grip[t + 1], socket[t + 1], safety_box)
        rewards[t] = -reward.scale * (dist + (penalty if left else 0.0))
        assert reward.success_threshold is not None
        if dist < reward.success_threshold:
            end, outcome = t, "rule"
            break
        if left:
            end, outcome = t, "left_box"
            break
    n = end + 1
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    if outcome == "never":
        truncated[-1] = True
    else:
        terminated[-1] = True
    obs = episode["observations"]
    out = {"observations": {k: np.asarray(v)[:n + 1] for k, v in obs.items()},
           "actions": np.asarray(episode["actions"])[:n], "rewards": rewards[:n],
           "terminated": terminated, "truncated": truncated}
    return out, outcome


def convert_demos(arm: str, arm_env: ArmEnv, recorded: list[dict[str, Any]]
                  ) -> tuple[list[DemoEpisode], dict[str, Any]]:
    """Convert the recorded demonstrations for one arm.

    Observations through the arm's own wrappers (:func:`episodes_from_recording` with
    :meth:`ArmEnv.observation_fn`), rewards and episode ends from the arm's reward
    (:func:`relabel_episode`), flattened with :func:`flatten_dict_observations`.

    Returns:
        ``(flat episodes, stats)``: the :class:`DemoEpisode` list (``observations``
        ``(T+1, D)`` float32) and counts: episodes, steps, outcomes, mean return, the
        keypoints' error against the truth (mm, ``kp``/``vae``) and, for ``gt``, the largest
        difference between the recomputed and the recorded rewards.
    """
    collected: list[np.ndarray] = []
    converted = episodes_from_recording(recorded, observation_fn=arm_env.observation_fn(collected),
                                        num_episodes=None)
    box = arm_env.env.unwrapped.options["safety_box"]
    episodes, outcomes = [], {"rule": 0, "never": 0, "left_box": 0}
    start, errors, reward_diff, lags = 0, [], 0.0, []
    for conv, rec in zip(converted, recorded, strict=True):
        n_obs = len(rec["actions"]) + 1
        kp = np.stack(collected[start:start + n_obs])
        start += n_obs
        errors.append(np.linalg.norm(kp - np.asarray(rec["infos"]["keypoints"]), axis=-1))
        episode, outcome = relabel_episode(conv, kp, rec, arm_env.reward, box)
        outcomes[outcome] += 1
        true_success = np.flatnonzero(np.asarray(rec["infos"]["is_success"])[1:])
        if outcome == "rule" and true_success.size:
            lags.append(len(episode["actions"]) - 1 - int(true_success[0]))
        if arm == "gt":
            n = len(episode["rewards"])
            reward_diff = max(reward_diff, float(np.abs(
                episode["rewards"] - np.asarray(rec["rewards"][:n])).max()))
        episodes.append(episode)
    if start != len(collected):
        raise RuntimeError(f"demo conversion: {len(collected)} observations converted, "
                           f"{start} expected")
    _, flat = flatten_dict_observations(arm_env.env, episodes)
    assert flat is not None
    err_mm = 1000.0 * np.concatenate([e.ravel() for e in errors])
    stats: dict[str, Any] = {
        "episodes": len(flat), "steps": int(sum(len(e["actions"]) for e in flat)),
        "recorded_steps": int(sum(len(e["actions"]) for e in recorded)),
        "outcomes": outcomes,
        "rule_steps_after_true_success": (
            {"mean": float(np.mean(lags)), "min": int(min(lags)), "max": int(max(lags))}
            if lags else None),
        "mean_return": float(np.mean([np.sum(e["rewards"]) for e in flat])),
        "keypoint_error_mm": {"median": float(np.median(err_mm)),
                              "p90": float(np.percentile(err_mm, 90)),
                              "max": float(err_mm.max())},
    }
    if arm == "gt":
        stats["max_abs_reward_diff_vs_recorded"] = reward_diff
    return flat, stats


def save_episodes(path: Path, episodes: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
                  ) -> str:
    """Write flat demonstration episodes atomically to an ``.npz``; returns their content
    hash (:func:`arrays_sha256`), also stored in the file's metadata."""
    lengths = np.array([len(e["actions"]) for e in episodes], dtype=np.int64)
    arrays = {
        "observations": np.concatenate([e["observations"] for e in episodes]),
        "actions": np.concatenate([e["actions"] for e in episodes]),
        "rewards": np.concatenate([e["rewards"] for e in episodes]),
        "terminated": np.concatenate([e["terminated"] for e in episodes]),
        "truncated": np.concatenate([e["truncated"] for e in episodes]),
        "lengths": lengths,
    }
    digest = arrays_sha256(arrays)
    text = json.dumps({**meta, "content_sha256": digest}, default=common._json_default)
    with atomic_open(path, "wb") as f:
        np.savez(f, metadata=np.array(text), **arrays)
    return digest


def load_episodes(path: Path) -> tuple[list[DemoEpisode], dict[str, Any]]:
    """Read episodes written by :func:`save_episodes`; returns ``(episodes, metadata)``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        arrays = {k: data[k] for k in data.files if k != "metadata"}
    lengths = arrays["lengths"]
    episodes: list[DemoEpisode] = []
    s = o = 0
    for n in lengths:
        n = int(n)
        episodes.append(DemoEpisode(
            observations=arrays["observations"][o:o + n + 1], actions=arrays["actions"][s:s + n],
            rewards=arrays["rewards"][s:s + n], terminated=arrays["terminated"][s:s + n],
            truncated=arrays["truncated"][s:s + n]))
        s, o = s + n, o + n + 1
    return episodes, meta


def stage_convert(cfg: Config, work: Path, demo_path: Path, predictor: KeypointPredictor,
                  vae: BetaVAE | None, vae_sha: str | None) -> dict[str, dict[str, Any]]:
    """Convert (or reuse) the demonstrations of every arm (``WORK/demos/<arm>.npz``).

    Returns:
        ``{arm: {"path", "content_sha256", "stats", "reused"}}``.
    """
    demo_sha = file_sha256(demo_path)
    kp_sha = file_sha256(cfg.keypoint_checkpoint)
    recorded: list[dict[str, Any]] | None = None
    out: dict[str, dict[str, Any]] = {}
    for arm in cfg.arms:
        path = work / "demos" / f"{arm}.npz"
        want = json_normalise({
            "cache_version": CACHE_VERSION, "arm": arm, "demos_sha256": demo_sha,
            "keypoint_checkpoint_sha256": kp_sha if arm != "gt" else None,
            "vae_sha256": vae_sha if arm == "vae" else None, "camera_seed": cfg.camera_seed})
        if path.exists():
            _, meta = load_episodes(path)
            if meta.get("stamp") == want:
                out[arm] = {"path": str(path), "content_sha256": meta["content_sha256"],
                            "stats": meta["stats"], "reused": True}
                continue
            log(f"demos for {arm}: inputs changed, converting again")
        if recorded is None:
            recorded = load_demonstrations(demo_path)
        arm_env = make_arm_env(arm, cfg.camera_seed, predictor, vae)
        try:
            t0 = time.monotonic()
            episodes, stats = convert_demos(arm, arm_env, recorded)
            stats["seconds"] = time.monotonic() - t0
        finally:
            arm_env.env.close()
        digest = save_episodes(path, episodes, {"stamp": want, "stats": stats})
        out[arm] = {"path": str(path), "content_sha256": digest, "stats": stats,
                    "reused": False}
        o, lag = stats["outcomes"], stats["rule_steps_after_true_success"]
        lag_text = f" ({lag['mean']:.1f} steps after the true success)" if lag else ""
        log(f"demos for {arm}: {stats['episodes']} episodes, {stats['steps']} steps (recorded "
            f"{stats['recorded_steps']}); its keypoint rule fired in {o['rule']}{lag_text}, "
            f"never in {o['never']}; keypoint error median "
            f"{stats['keypoint_error_mm']['median']:.1f} mm; mean return "
            f"{stats['mean_return']:.2f}")
    return out


# ---------------------------------------------------------------------------- 4. training
def episode_row(info: Mapping[str, Any], ret: float, length: int) -> dict[str, Any]:
    """The logged outcome of an episode from its final ``info``."""
    success = bool(info.get("is_success", False))
    return {"length": int(length), "return": float(ret), "success_keypoint": int(success),
            "success_true": int(bool(info.get("is_success_true", success))),
            "left_safety_box": int(bool(info.get("left_safety_box", False))),
            "final_keypoint_distance_m": float(info.get("keypoint_distance", math.nan)),
            "final_insertion_error_m": float(info.get("insertion_error", math.nan))}


class EpisodeLogger(BaseCallback):
    """Logs every finished training episode and writes checkpoints at episode ends.

    Args:
        rows: the episode rows so far (appended to).
        checkpoint: called as ``checkpoint(model, rows, num_timesteps)`` at the first
            episode end after every ``every`` env steps.
        every: env steps between checkpoints.
        elapsed0: wall seconds of the run before this call (resumed runs).
        last_checkpoint: env steps of the latest checkpoint.
    """

    def __init__(self, rows: list[dict[str, Any]],
                 checkpoint: Callable[[DDPGfD, list[dict[str, Any]], int], None], every: int,
                 elapsed0: float = 0.0, last_checkpoint: int = 0) -> None:
        super().__init__()
        self.rows = rows
        self.checkpoint = checkpoint
        self.every = every
        self.elapsed0 = elapsed0
        self.t0 = time.monotonic()
        self.last_checkpoint = last_checkpoint
        self.ret = 0.0
        self.length = 0

    def elapsed(self) -> float:
        """Wall seconds of the run so far."""
        return self.elapsed0 + time.monotonic() - self.t0

    def _on_step(self) -> bool:
        rewards = self.locals["rewards"]
        self.ret += float(rewards[0])
        self.length += 1
        if not bool(self.locals["dones"][0]):
            return True
        row = {"episode": len(self.rows), "steps": int(self.num_timesteps),
               **episode_row(self.locals["infos"][0], self.ret, self.length),
               "wall_s": self.elapsed()}
        self.rows.append(row)
        self.ret, self.length = 0.0, 0
        self.logger.record_mean("rollout/success_true", row["success_true"])
        self.logger.record_mean("rollout/success_keypoint", row["success_keypoint"])
        if self.num_timesteps - self.last_checkpoint >= self.every:
            self.checkpoint(self.model, self.rows, int(self.num_timesteps))  # type: ignore[arg-type]
            self.last_checkpoint = int(self.num_timesteps)
        return True


@dataclass
class RunContext:
    """What every run of one invocation shares."""

    cfg: Config
    predictor: KeypointPredictor
    vae: BetaVAE | None
    demos: dict[str, dict[str, Any]]
    kp_sha: str
    vae_sha: str | None


def _agent_stamp(agent: AgentParams) -> dict[str, Any]:
    """The agent settings of a run's stamp (``pretrain_steps`` only when used, so runs made
    before it existed stay reusable)."""
    d = asdict(agent)
    if d["pretrain_steps"] == 0:
        del d["pretrain_steps"]
    return d


def run_stamp(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """Everything that determines the result of one (arm, seed) run."""
    cfg = ctx.cfg
    return json_normalise({
        "cache_version": CACHE_VERSION, "arm": arm, "seed": seed, "steps": cfg.steps,
        "eval_episodes": cfg.eval_episodes, "eval_seed_base": EVAL_SEED_BASE,
        "train_seed_base": TRAIN_SEED_BASE, "camera_seed": cfg.camera_seed,
        "agent": _agent_stamp(cfg.agent), "demos_sha256": ctx.demos[arm]["content_sha256"],
        "keypoint_checkpoint_sha256": ctx.kp_sha if arm != "gt" else None,
        "vae_sha256": ctx.vae_sha if arm == "vae" else None})


def make_flat_env(ctx: RunContext, arm: str) -> tuple[gym.Env, ArmEnv]:
    """The arm's env with flattened (``Box``) observations, and its parts."""
    arm_env = make_arm_env(arm, ctx.cfg.camera_seed, ctx.predictor, ctx.vae)
    flat, _ = flatten_dict_observations(arm_env.env)
    return flat, arm_env


def _save_model(model: DDPGfD, path: Path) -> None:
    with atomic_path(path, suffix=".tmp.zip") as tmp:  # save() would append .zip otherwise
        model.save(tmp)


def evaluate(model: DDPGfD, env: gym.Env, episodes: int) -> list[dict[str, Any]]:
    """Deterministic episodes of ``model`` on seeds ``EVAL_SEED_BASE + i``; one row each."""
    rows = []
    for i in range(episodes):
        seed = EVAL_SEED_BASE + i
        obs, info = env.reset(seed=seed)
        ret, length, done = 0.0, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            length += 1
            done = terminated or truncated
        rows.append({"eval_seed": seed, **episode_row(info, ret, length)})
    return rows


def run_directory(cfg: Config, arm: str, seed: int) -> Path:
    """``WORK/runs/<arm>/seed_<seed>``: the files of one run."""
    return cfg.work / "runs" / arm / f"seed_{seed}"


def run_one(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """Train (or resume, or reuse) one (arm, seed) run, then evaluate it.

    Files in ``WORK/runs/<arm>/seed_<seed>/``: ``episodes.csv``, ``eval.csv``, ``model.zip``,
    ``tb/`` and, once done, ``result.json``; while training, ``state.json`` and one
    ``ckpt_<steps>/`` directory (model, replay buffer, episode log).

    Returns:
        The run's result (also ``result.json``): stamp, seconds, steps/s, evaluation success
        rates, final rolling training success rates.

    Raises:
        CacheMismatchError: the run directory holds a run made with other settings.
    """
    cfg = ctx.cfg
    run_dir = run_directory(cfg, arm, seed)
    stamp = run_stamp(ctx, arm, seed)
    result_path, state_path = run_dir / "result.json", run_dir / "state.json"
    for path in (result_path, state_path):
        if path.exists():
            old = read_json(path).get("stamp", {})
            diff = stamp_diff(old, stamp)
            if diff:
                raise CacheMismatchError(
                    f"{path}: a run with other settings ({'; '.join(diff)}); delete {run_dir} "
                    "or use another --work-dir")
    if result_path.exists():
        log(f"{arm} seed {seed}: done before, reusing {result_path}")
        return read_json(result_path)

    demos, _ = load_episodes(Path(ctx.demos[arm]["path"]))
    env, _ = make_flat_env(ctx, arm)
    tb = str((run_dir / "tb").resolve())
    state = read_json(state_path) if state_path.exists() else None
    if state is not None and not (run_dir / state["checkpoint"] / "buffer.pkl").is_file():
        log(f"{arm} seed {seed}: checkpoint {state['checkpoint']} is missing, starting afresh")
        state = None
    rows: list[dict[str, Any]] = []
    try:
        if state is not None:
            ck = run_dir / state["checkpoint"]
            model = DDPGfD.load(ck / "model.zip", env=env, device="cpu", demonstrations=demos,
                                tensorboard_log=tb)
            model.load_replay_buffer(ck / "buffer.pkl")
            rows = read_rows(ck / "episodes.csv", _EPISODE_TYPES)
            done_steps, elapsed0 = int(state["steps"]), float(state["elapsed_s"])
            model.set_random_seed(TRAIN_SEED_BASE + 1000 * seed + done_steps)
            log(f"{arm} seed {seed}: resuming at step {done_steps} from {ck}")
        else:
            if run_dir.exists():  # partial leftovers without a checkpoint: start afresh
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            a = cfg.agent
            model = DDPGfD(
                "MlpPolicy", env, demonstrations=demos, demo_fraction=a.demo_fraction,
                n_steps=a.n_steps, bc_weight=a.bc_weight, q_filter=a.q_filter,
                pretrain_steps=a.pretrain_steps, actor_l2=a.actor_l2, critic_l2=a.critic_l2,
                learning_rate=a.learning_rate,
                buffer_size=max(cfg.steps, 1), batch_size=a.batch_size, gamma=a.gamma, tau=a.tau,
                action_noise=NormalActionNoise(np.zeros(6), a.action_noise * np.ones(6)),
                policy_kwargs={"net_arch": list(a.net_arch)}, tensorboard_log=tb, seed=seed,
                device="cpu", verbose=0)
            model.get_env().seed(TRAIN_SEED_BASE + 1000 * seed)
            done_steps, elapsed0 = 0, 0.0
            log(f"{arm} seed {seed}: training {cfg.steps} steps ({len(demos)} demonstration "
                f"episodes)")

        def checkpoint(m: DDPGfD, episode_rows: list[dict[str, Any]], steps: int) -> None:
            ck = run_dir / f"ckpt_{steps:08d}"
            with atomic_directory(ck) as tmp:
                m.save(tmp / "model.zip")
                m.save_replay_buffer(tmp / "buffer.pkl")
                common.write_csv(tmp / "episodes.csv", episode_rows, EPISODE_COLUMNS)
            common.write_json(state_path, {"stamp": stamp, "checkpoint": ck.name, "steps": steps,
                                           "elapsed_s": recorder.elapsed()})
            for old in run_dir.glob("ckpt_*"):
                if old != ck:
                    shutil.rmtree(old)

        recorder = EpisodeLogger(rows, checkpoint, cfg.checkpoint_every, elapsed0, done_steps)
        cpu0 = time.process_time()
        if done_steps < cfg.steps:
            model.learn(cfg.steps - done_steps, callback=recorder, log_interval=4,
                        tb_log_name=f"DDPGfD_{arm}", reset_num_timesteps=state is None)
            if recorder.last_checkpoint != model.num_timesteps:
                checkpoint(model, rows, int(model.num_timesteps))
        train_s, train_cpu_s = recorder.elapsed(), time.process_time() - cpu0
        _save_model(model, run_dir / "model.zip")
        common.write_csv(run_dir / "episodes.csv", rows, EPISODE_COLUMNS)
        t0 = time.monotonic()
        eval_env, _ = make_flat_env(ctx, arm)
        try:
            eval_rows = evaluate(model, eval_env, cfg.eval_episodes)
        finally:
            eval_env.close()
        eval_s = time.monotonic() - t0
    finally:
        env.close()
    common.write_csv(run_dir / "eval.csv", eval_rows, EVAL_COLUMNS)
    final = final_train_success(rows, cfg.steps, cfg.window)
    result = {
        "stamp": stamp, "arm": arm, "seed": seed, "steps": cfg.steps,
        "train_wall_s": train_s, "train_cpu_s_this_call": train_cpu_s,
        "train_steps_per_s": cfg.steps / train_s if train_s > 0 else math.nan,
        "resumed_from_step": done_steps if state is not None else None,
        "eval_wall_s": eval_s, "train_episodes": len(rows),
        "eval_success_keypoint": float(np.mean([r["success_keypoint"] for r in eval_rows])),
        "eval_success_true": float(np.mean([r["success_true"] for r in eval_rows])),
        "eval_return": float(np.mean([r["return"] for r in eval_rows])),
        "final_train_success_keypoint": final["success_keypoint"],
        "final_train_success_true": final["success_true"],
        "files": {"episodes": str(run_dir / "episodes.csv"), "eval": str(run_dir / "eval.csv"),
                  "model": str(run_dir / "model.zip"), "tensorboard": tb},
    }
    common.write_json(result_path, result)
    state_path.unlink(missing_ok=True)
    for old in run_dir.glob("ckpt_*"):
        shutil.rmtree(old)
    log(f"{arm} seed {seed}: {len(rows)} training episodes, {result['train_steps_per_s']:.1f} "
        f"steps/s; evaluation on {cfg.eval_episodes} held-out seeds: success "
        f"{result['eval_success_keypoint']:.2f} (keypoint rule), "
        f"{result['eval_success_true']:.2f} (true)")
    return result


def final_train_success(rows: Sequence[Mapping[str, Any]], steps: int,
                        window: int) -> dict[str, float]:
    """Rolling training success (keypoint rule and true) over the last ``window`` env steps
    of a run (NaN when no episode ended there)."""
    end = np.array([r["steps"] for r in rows], dtype=np.int64)
    out = {}
    for key in ("success_keypoint", "success_true"):
        s = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(rolling_success(end, s, np.array([steps]), window)[0])
    return out


# ---------------------------------------------------------------------------- 5. report
def summarise(cfg: Config, results: Mapping[tuple[str, int], Mapping[str, Any]],
              probe: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One summary row per arm (see ``SUMMARY_COLUMNS``)."""
    rows = []
    for arm in cfg.arms:
        res = [results[(arm, s)] for s in cfg.seeds]
        row: dict[str, Any] = {"arm": arm, "observation": ARM_LABELS[arm],
                               "seeds": len(res), "steps": cfg.steps,
                               "eval_episodes": cfg.eval_episodes}
        for key in ("eval_success_keypoint", "eval_success_true"):
            st = seed_stats([r[key] for r in res])
            row.update({f"{key}_{k}": v for k, v in st.items()})
        for key in ("final_train_success_keypoint", "final_train_success_true"):
            st = seed_stats([r[key] for r in res])
            row.update({f"{key}_{k}": st[k] for k in ("mean", "min", "max")})
        row["eval_return_mean"] = seed_stats([r["eval_return"] for r in res])["mean"]
        row["train_steps_per_s"] = common.median([r["train_steps_per_s"] for r in res])
        row["run_wall_s"] = common.median([r["train_wall_s"] + r["eval_wall_s"] for r in res])
        med = p90 = math.nan
        if arm == "gt":
            med = p90 = 0.0
        elif probe is not None:
            src = probe["keypoint_model"] if arm == "kp" else probe["test"]
            med, p90 = src["median"], src["p90"]
        row["repr_error_median_mm"], row["repr_error_p90_mm"] = med, p90
        rows.append(row)
    return rows


def load_run_rows(cfg: Config, results: Mapping[tuple[str, int], Mapping[str, Any]],
                  which: str) -> list[dict[str, Any]]:
    """All runs' ``episodes`` or ``eval`` rows, with ``arm`` and ``seed`` columns."""
    out = []
    for (arm, seed), res in results.items():
        for row in read_rows(Path(res["files"][which]), _EPISODE_TYPES):
            out.append({"arm": arm, "seed": seed, **row})
    return out


def plot(cfg: Config, episodes: Sequence[Mapping[str, Any]],
         results: Mapping[tuple[str, int], Mapping[str, Any]], path: Path) -> Path:
    """Success rate vs env steps (rolling window, mean over seeds, min-max band), keypoint
    rule (left) and ground truth (right), evaluation at the right edge."""
    plt = common.use_agg()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), sharey=True)
    start = min(cfg.window, cfg.steps)
    grid = np.unique(np.linspace(start, cfg.steps, 200).round().astype(np.int64))
    for ax, key, title in ((axes[0], "success_keypoint", "keypoint rule (S3K prediction)"),
                           (axes[1], "success_true", "ground truth (env's own rule)")):
        for arm in cfg.arms:
            curves = []
            for seed in cfg.seeds:
                rows = [r for r in episodes if r["arm"] == arm and r["seed"] == seed]
                end = np.array([r["steps"] for r in rows], dtype=np.int64)
                s = np.array([r[key] for r in rows], dtype=np.float64)
                curves.append(rolling_success(end, s, grid, cfg.window))
            c = np.array(curves)
            color = ARM_COLORS[arm]
            with warnings.catch_warnings():  # all-NaN columns (no episode in a window)
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, lo, hi = np.nanmean(c, 0), np.nanmin(c, 0), np.nanmax(c, 0)
            ax.plot(grid, mean, color=color, lw=1.8,
                    label=f"{ARM_LABELS[arm]} (mean of {len(cfg.seeds)})")
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
            ev = [results[(arm, s)][f"eval_{key}"] for s in cfg.seeds]
            x = cfg.steps * 1.02 + 0.01 * cfg.steps * ARMS.index(arm)
            ax.errorbar([x], [np.mean(ev)], yerr=[[np.mean(ev) - min(ev)], [max(ev) - np.mean(ev)]],
                        fmt="D", color=color, ms=5, capsize=3)
        ax.set_title(f"success by the {title}", fontsize=10)
        ax.set_xlabel("env steps (diamonds: final evaluation, held-out seeds)")
        ax.set_xlim(0, cfg.steps * 1.06)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"training success rate (rolling {cfg.window} steps)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{ENV_ID}, fixed rig (camera_seed={cfg.camera_seed}): DDPGfD with "
                 f"{cfg.demos} demonstrations; bands: min-max over seeds", fontsize=10)
    try:
        return common.save_figure(fig, path)
    finally:
        plt.close(fig)


TABLE_COLUMNS: list[tuple[str, str, Any]] = [
    ("observation", "agent observes", "s"),
    ("seeds", "seeds", "d"),
    ("steps", "steps", "d"),
    ("eval_kp", "eval success, keypoint rule: mean ± sd [min–max]", "s"),
    ("eval_true", "eval success, true", "s"),
    ("train_kp", "final training success (rolling), keypoint rule", "s"),
    ("train_true", "final training success, true", "s"),
    ("repr_error_median_mm", "keypoint error of the representation, median mm", ".1f"),
]


def _pm(row: Mapping[str, Any], key: str, sd: bool = True) -> str:
    mean, lo, hi = row[f"{key}_mean"], row[f"{key}_min"], row[f"{key}_max"]
    if not math.isfinite(mean):
        return "–"
    s = f"{mean:.2f}"
    if sd and math.isfinite(row.get(f"{key}_sd", math.nan)):
        s += f" ± {row[f'{key}_sd']:.2f}"
    return s + f" [{lo:.2f}–{hi:.2f}]"


def markdown_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary rows as a Markdown table."""
    table = [{**r, "eval_kp": _pm(r, "eval_success_keypoint"),
              "eval_true": _pm(r, "eval_success_true"),
              "train_kp": _pm(r, "final_train_success_keypoint", sd=False),
              "train_true": _pm(r, "final_train_success_true", sd=False)} for r in rows]
    return common.markdown_table(table, TABLE_COLUMNS)


# ---------------------------------------------------------------------------- pipeline
def run(cfg: Config) -> dict[str, Any]:
    """The whole pipeline; returns the summary dict written to ``<stem>.json``."""
    torch.set_num_threads(cfg.threads)
    work = cfg.work
    work.mkdir(parents=True, exist_ok=True)
    stage = StageTimes(work / "stage_timings.json")
    t_start = time.monotonic()
    with stage("1. demonstrations") as flags:
        flags["reused"] = (work / "demos" / "cable.npz").exists()
        demo_path, demo_meta = stage_demos(cfg, work)
    probe = vae_summary = None
    vae = vae_path = vae_sha = None
    if "vae" in cfg.arms:
        with stage("2a. VAE and probe datasets") as flags:
            names = ["probe_frames"] + (["vae_frames"] if cfg.vae_checkpoint is None else [])
            flags["reused"] = all((work / n / "manifest.json").exists() for n in names)
            frames, probe_dir = stage_datasets(cfg, work)
        with stage("2b. beta-VAE training") as flags:
            vae_path, vae_summary, flags["reused"] = stage_vae(cfg, work, frames)
        with stage("2c. linear probe") as flags:
            probe, flags["reused"] = stage_probe(cfg, work, vae_path, probe_dir)
        vae = load_vae(vae_path)
        vae_sha = file_sha256(vae_path)
    predictor = KeypointPredictor.load(cfg.keypoint_checkpoint)
    with stage("3. demonstration conversion") as flags:
        demos = stage_convert(cfg, work, demo_path, predictor, vae, vae_sha)
        flags["reused"] = all(d["reused"] for d in demos.values())
    ctx = RunContext(cfg, predictor, vae, demos, file_sha256(cfg.keypoint_checkpoint), vae_sha)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with stage("4. training and evaluation") as flags:
        flags["reused"] = all((run_directory(cfg, arm, seed) / "result.json").exists()
                              for arm in cfg.arms for seed in cfg.seeds)
        for seed in cfg.seeds:  # seed-major: a partial run still compares the arms
            for arm in cfg.arms:
                results[(arm, seed)] = run_one(ctx, arm, seed)
    summary_rows = summarise(cfg, results, probe)
    episodes = load_run_rows(cfg, results, "episodes")
    eval_rows = load_run_rows(cfg, results, "eval")
    machine = common.machine_info()
    machine["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    stem = cfg.out / cfg.stem
    summary = {
        "benchmark": "cable_rl", "profile": cfg.profile, "env_id": ENV_ID,
        "machine": machine, "config": cfg.to_json(), "columns": list(SUMMARY_COLUMNS),
        "rows": summary_rows, "stages": stage.records,
        "stages_wall_s": sum(r["wall_s"] for r in stage.records.values()),
        "runs_wall_s": sum(r["train_wall_s"] + r["eval_wall_s"] for r in results.values()),
        "wall_s_this_call": time.monotonic() - t_start,
        "demonstrations": {"path": str(demo_path), "metadata": demo_meta,
                           "per_arm": {a: d["stats"] for a, d in demos.items()}},
        "vae": vae_summary, "linear_probe": probe,
        "runs": [{k: v for k, v in r.items() if k != "stamp"} for r in results.values()],
        "notes": [
            "success_keypoint: the env's insertion rule (< 2.5 cm) on the keypoints the arm's "
            "reward reads (predicted by the S3K model for kp and vae, true for gt); "
            "success_true: the same rule on the true keypoints (info['is_success_true']).",
            "final training success: the mean over the training episodes (with exploration "
            "noise) that ended in the last `window` env steps; evaluation: the deterministic "
            "final policy on held-out env seeds.",
            "repr_error: kp: the S3K model's 3D error on the probe's test samples; vae: the "
            "linear probe latent -> true keypoints on the same samples; gt: 0.",
        ],
    }
    common.write_csv(stem.with_suffix(".csv"), summary_rows, SUMMARY_COLUMNS)
    common.write_csv(stem.with_name(f"{cfg.stem}_episodes.csv"), episodes,
                     ("arm", "seed", *EPISODE_COLUMNS))
    common.write_csv(stem.with_name(f"{cfg.stem}_eval.csv"), eval_rows,
                     ("arm", "seed", *EVAL_COLUMNS))
    png = plot(cfg, episodes, results, stem.with_suffix(".png"))
    summary["files"] = {"csv": str(stem.with_suffix(".csv")),
                        "json": str(stem.with_suffix(".json")),
                        "episodes": str(stem.with_name(f"{cfg.stem}_episodes.csv")),
                        "eval": str(stem.with_name(f"{cfg.stem}_eval.csv")), "png": str(png)}
    common.write_json(stem.with_suffix(".json"), summary)
    return summary


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.cable_rl``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cable_rl",
        description="DDPGfD on S3K keypoints vs on beta-VAE features, S3K-CableInsert-v0 "
                    "(the S3K paper's Fig. 7). Resumable: rerun the same command.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--smoke", action="store_const", dest="profile", const="smoke",
                   help="absurdly small end-to-end check (~1 CPU-min)")
    g.add_argument("--quick", action="store_const", dest="profile", const="quick",
                   help="~25 min on 2 idle cores: 2 seeds x 2,000 steps")
    g.add_argument("--full", action="store_const", dest="profile", const="full",
                   help="the paper's scale: 5 seeds x 40,000 steps (hours)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["kp", "vae"],
                   help="agents to train (gt: ground-truth keypoints, an upper bound)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="agent seeds")
    p.add_argument("--steps", type=int, default=None, help="env steps per run")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="final evaluation episodes per run (held-out env seeds)")
    p.add_argument("--window", type=int, default=None,
                   help="rolling-average window of the training curves, env steps")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="env steps between resumable checkpoints of a run")
    p.add_argument("--demos", type=int, default=None, help="expert demonstrations")
    p.add_argument("--demo-seed", type=int, default=0,
                   help="reset seed of the first demonstration attempt")
    p.add_argument("--demo-extra-steps", type=int, default=DEMO_EXTRA_STEPS,
                   help="control steps the expert goes on after the first true success")
    p.add_argument("--camera-seed", type=int, default=0, help="seed of the fixed camera rig")
    p.add_argument("--vae-frames", type=int, default=None, help="unlabelled VAE frames")
    p.add_argument("--probe-samples", type=int, default=None,
                   help="labelled samples of the linear probe (30 %% test)")
    p.add_argument("--vae-minutes", type=float, default=None,
                   help="beta-VAE training budget, CPU minutes")
    p.add_argument("--vae-checkpoint", type=Path, default=None,
                   help="use this beta-VAE (trained on 128 px views of the same rig) instead "
                        "of training one")
    p.add_argument("--keypoint-checkpoint", type=Path, default=None,
                   help="S3K keypoint model (default: the shipped cable checkpoint)")
    a = AgentParams()
    p.add_argument("--demo-fraction", type=float, default=a.demo_fraction)
    p.add_argument("--bc-weight", type=float, default=a.bc_weight)
    p.add_argument("--pretrain-steps", type=int, default=a.pretrain_steps,
                   help="DQfD pre-training: gradient steps on the demonstrations alone first")
    p.add_argument("--no-q-filter", dest="q_filter", action="store_false",
                   help="clone every demonstrated action (no Q-filter on the BC loss)")
    p.add_argument("--n-steps", type=int, default=a.n_steps)
    p.add_argument("--action-noise", type=float, default=a.action_noise,
                   help="std of the Gaussian exploration noise, action units")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=None,
                   help="dataset generation processes (default: s3k generate's choice)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/cable_rl"),
                   help="cache directory; the profile's files go to WORK_DIR/<profile>/")
    p.add_argument("--out", type=Path, default=None,
                   help="result directory (default benchmarks/results; WORK_DIR/smoke for "
                        "--smoke)")
    p.add_argument("--tag", default="",
                   help="name of a variant of the profile (e.g. 10k): results <stem>_<tag>.*, "
                        "work directory WORK_DIR/<profile>_<tag>/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse the command line into a :class:`Config` (profile values + overrides)."""
    p = build_parser()
    a = p.parse_args(argv)
    prof = PROFILES[a.profile]

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    arms = tuple(dict.fromkeys(a.arms))
    seeds = tuple(dict.fromkeys(pick(a.seeds, prof.seeds)))
    cfg_values = {
        "steps": pick(a.steps, prof.steps), "eval_episodes": pick(a.eval_episodes,
                                                                  prof.eval_episodes),
        "window": pick(a.window, prof.window),
        "checkpoint_every": pick(a.checkpoint_every, prof.checkpoint_every),
        "demos": pick(a.demos, prof.demos), "vae_frames": pick(a.vae_frames, prof.vae_frames),
        "probe_samples": pick(a.probe_samples, prof.probe_samples),
    }
    for name, value in cfg_values.items():
        if value < 1:
            p.error(f"--{name.replace('_', '-')}: expected >= 1, got {value}")
    if cfg_values["probe_samples"] < 4:
        p.error("--probe-samples: expected >= 4 (the probe needs >= 2 train and 1 test sample)")
    if min(seeds) < 0 or min(a.demo_seed, a.demo_extra_steps, a.camera_seed) < 0:
        p.error("--seeds, --demo-seed, --demo-extra-steps and --camera-seed must be >= 0")
    if a.threads < 1:
        p.error(f"--threads: expected >= 1, got {a.threads}")
    if not 0.0 <= a.demo_fraction <= 1.0 or a.bc_weight < 0 or a.n_steps < 1 or (
            a.action_noise < 0 or a.pretrain_steps < 0):
        p.error("expected 0 <= --demo-fraction <= 1, --bc-weight >= 0, --n-steps >= 1, "
                "--action-noise >= 0, --pretrain-steps >= 0")
    vae_minutes = pick(a.vae_minutes, prof.vae_minutes)
    if vae_minutes is not None and not vae_minutes > 0:
        p.error(f"--vae-minutes: expected > 0, got {vae_minutes}")
    if a.vae_checkpoint is not None and not a.vae_checkpoint.is_file():
        p.error(f"--vae-checkpoint: no such file {a.vae_checkpoint}")
    kp_ckpt = a.keypoint_checkpoint or default_checkpoint(ENV_ID)
    if not Path(kp_ckpt).is_file():
        p.error(f"--keypoint-checkpoint: no such file {kp_ckpt}")
    agent = dataclasses.replace(AgentParams(), demo_fraction=a.demo_fraction,
                                bc_weight=a.bc_weight, n_steps=a.n_steps, q_filter=a.q_filter,
                                pretrain_steps=a.pretrain_steps,
                                action_noise=a.action_noise)
    if a.tag and not a.tag.replace("-", "").replace("_", "").isalnum():
        p.error(f"--tag: expected letters, digits, '-' or '_', got {a.tag!r}")
    stem = "cable_rl" if a.profile == "full" else f"cable_rl_{a.profile}"
    stem += f"_{a.tag}" if a.tag else ""
    default_out = a.work_dir / "smoke" if a.profile == "smoke" else common.RESULTS_DIR
    return Config(
        profile=a.profile, arms=arms, seeds=seeds, demo_seed=a.demo_seed,
        demo_extra_steps=a.demo_extra_steps,
        camera_seed=a.camera_seed, rollout_steps=prof.rollout_steps,
        rollout_noise=prof.rollout_noise, vae_minutes=vae_minutes, vae_steps=prof.vae_steps,
        vae_batch=prof.vae_batch, vae_image_size=prof.vae_image_size,
        vae_arch=dict(prof.vae_arch), vae_checkpoint=a.vae_checkpoint,
        keypoint_checkpoint=Path(kp_ckpt), agent=agent, threads=a.threads, workers=a.workers,
        work_dir=a.work_dir, tag=a.tag, out=a.out or default_out, stem=stem,
        progress=not a.no_progress,
        **cfg_values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    cfg = parse_args(argv)
    try:
        summary = run(cfg)
    except CacheMismatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_summary(summary["rows"]))
    print()
    probe = summary["linear_probe"]
    if probe:
        kp = probe["keypoint_model"]
        print(f"Representation check on {probe['num_test']} held-out labelled frames of the "
              f"rig: beta-VAE latent -> keypoints (linear probe) median "
              f"{probe['test']['median']:.1f} mm, p90 {probe['test']['p90']:.1f} mm "
              f"({probe['active_units_variance']}/{probe['latent_dim']} active latents); S3K "
              f"keypoint model median {kp['median']:.1f} mm, p90 {kp['p90']:.1f} mm; predicting "
              f"the mean position {probe['mean_baseline']['median']:.1f} mm.")
    stages = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in summary["stages"].items())
    print(f"Profile {cfg.profile}: {summary['stages_wall_s'] / 60:.1f} min wall ({stages}; "
          f"this call {summary['wall_s_this_call'] / 60:.1f} min); "
          f"machine: {summary['machine']['cpu_model']}, {summary['machine']['usable_cores']} "
          f"cores, load average {summary['machine']['load_average']}.")
    sys.stdout.flush()
    print("Wrote " + ", ".join(summary["files"].values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
