"""Configuration of the cable RL experiment: constants, the DDPGfD settings
(:class:`AgentParams`), the RLPD settings (:class:`RLPDParams`), the profiles
(``--smoke/--quick/--full``, :data:`PROFILES` and the RLPD scale :data:`RLPD_PROFILES`),
:class:`Config`, and
small shared helpers (hashes, JSON, CSV rows, seed statistics, the rolling success rate,
stage timing).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

ENV_ID = common.CABLE_ENV_IDS[0]
#: The cable tasks of ``--env-id`` (the first is the default) and the short name each adds to
#: result stems and work directories (none for the default: its files keep their names).
ENV_IDS = {e: common.cable_task_name(e) for e in common.CABLE_ENV_IDS}
#: Camera resolution of the ``kp`` and ``vae`` arms, px (the shipped checkpoint's).
IMAGE_SIZE = 128
#: Camera resolution of the ``gt`` arm, px: it never looks at its images.
GT_IMAGE_SIZE = 32
#: The agents' proprioception, kept by every arm.
GRIPPER_KEYS = ("gripper_pos", "gripper_quat", "gripper_linvel", "gripper_angvel")
ARMS = ("kp", "vae", "gt")
#: The learners of ``--agent`` (the first is the default).
AGENTS = ("rlpd", "ddpgfd")
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
    "first_50_true_steps_mean", "first_50_true_steps_min", "first_50_true_steps_max",
    "first_50_true_seeds",
    "first_80_true_steps_mean", "first_80_true_steps_min", "first_80_true_steps_max",
    "first_80_true_seeds",
)
#: Rolling true-success levels whose first crossing (env steps) the summary reports.
PASS_LEVELS = (0.5, 0.8)


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
class RLPDParams:
    """RLPD settings shared by every arm (``--agent rlpd``; see :class:`agents.rlpd.RLPD`).
    The defaults are the best configuration of ``benchmarks/cable_rlpd.py`` on true keypoints
    (``--relative --no-backup-entropy --time-limit --velocity --init-temperature 0.01``);
    the critic target never includes the entropy term and never bootstraps at the 40-step
    time limit (time left is part of the observation), see
    :func:`benchmarks.cable_rl.rlpd_training.rlpd_config`.

    Attributes:
        utd: critic updates per env step.
        critics: critic ensemble size (the target is the minimum over 2 of them).
        batch_size: transitions per critic update (half demonstrations, half online); updates
            start once this many transitions are stored.
        init_temperature: initial SAC temperature.
        learn_temperature: tune the temperature towards SAC's target entropy. Off by default:
            on this task the tuned temperature grew x300 in 16,000 steps (the policy's
            entropy stays below RLPD's target of -3 while the success bonus makes Q ~ 100)
            and the true-keypoint agent collapsed from ~55 % success into leaving the safety
            box in every episode (``benchmarks/cable_rlpd.py``, README "RLPD").
        hidden: hidden layer widths of actor and critics.
        actor_every: update the actor and temperature every this many update rounds (TD3's
            delayed policy update; 1 = every round, as RLPD). With ``batch_size`` 128 and 2 it
            is the cheapest update of ``benchmarks/rl_throughput.py``.
    """

    utd: int = 4
    critics: int = 2
    batch_size: int = 256
    init_temperature: float = 0.01
    learn_temperature: bool = False
    hidden: tuple[int, ...] = (256, 256)
    actor_every: int = 1


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


#: What ``--agent rlpd`` changes in a profile (RLPD learns within thousands of steps, so the
#: quick profile runs longer than DDPGfD's; ``smoke`` keeps its 100 steps with small networks
#: and batches so that updates happen in the test). Keys: :class:`Profile` fields, and
#: ``rlpd`` (:class:`RLPDParams` fields).
RLPD_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"rlpd": {"batch_size": 16, "hidden": (32, 32)}},
    "quick": {"steps": 3_000, "window": 500, "checkpoint_every": 500},
    "full": {"checkpoint_every": 2_000},
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
    # the cable task (ENV_IDS); its short name goes into the work directory
    env_id: str = ENV_ID
    # run the (arm, seed) runs as Ray tasks: "local" or a cluster address (docs/scaling.md)
    ray: str | None = None
    # the learner: "rlpd" or "ddpgfd" (AGENTS); Config's default keeps older callers on DDPGfD
    agent_kind: str = "ddpgfd"
    rlpd: RLPDParams = RLPDParams()
    # train nothing: summarise the (arm, seed) runs that have finished in the work directory
    aggregate_only: bool = False

    @property
    def work(self) -> Path:
        """The cache directory of this profile (env and tag):
        ``work_dir/<profile>[_<env short name>][_<tag>]``."""
        parts = [self.profile, ENV_IDS.get(self.env_id, self.env_id), self.tag]
        return self.work_dir / "_".join(p for p in parts if p)

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
