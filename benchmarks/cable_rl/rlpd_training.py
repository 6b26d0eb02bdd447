"""Stage 4 with ``--agent rlpd``: one resumable :class:`agents.rlpd.RLPD` run per arm and seed.

Observation (:class:`RLPDFeatureObservation` on the arm's ``Dict`` env of
:func:`~benchmarks.cable_rl.envs.make_arm_env`, so ``kp`` and ``vae`` see exactly what the
DDPGfD arms see; :func:`arm_features`), float32:

=======  ===================================================================================
arm      vector
=======  ===================================================================================
``kp``   :func:`benchmarks.cable_rlpd.state_vector` of the arm's keypoints (the S3K model's
         predictions for ``kp``, the true ones for ``gt``), socket-relative: ``tip - socket``,
``gt``   ``base - socket``, ``gripper - socket`` (m; relative to the *predicted* socket for
         ``kp``), ``gripper_quat``, ``gripper_linvel`` (m/s), ``gripper_angvel`` (rad/s), the
         plug's keypoint motion since the previous step (``tip``, ``base``; m per step, 0 at
         reset), time left ``1 - t / T`` -> 26 numbers
``vae``  the beta-VAE latent ``(L,)``, ``gripper_pos`` (m, world), ``gripper_quat``,
         ``gripper_linvel``, ``gripper_angvel``, the latent's change since the previous
         step ``(L,)`` (0 at reset), time left -> ``2 L + 14`` numbers (34 for L = 10)
=======  ===================================================================================

The agent: :func:`rlpd_config` (``benchmarks/cable_rlpd.py``'s best configuration on true
keypoints: UTD 4, 2 LayerNorm critics, batch 256 half demonstrations, initial temperature 0.01,
no entropy term in the critic target, the 40-step time limit stored as terminal, i.e.
``bootstrap_truncation=False``, with time left in the observation).

Demonstrations: the arm's converted episodes (``WORK/demos/<arm>.npz``: observations through
the arm's own wrappers, rewards and ends relabelled with its keypoint rule; see
:func:`~benchmarks.cable_rl.stages.convert_demos`) unflattened back into the arm's ``Dict``
observations and put through the same :func:`arm_features` (:func:`rlpd_demonstrations`); an
episode that reaches the time limit ends there as terminal, like the env's.

Files of a run (``WORK/runs/rlpd/<arm>/seed_<s>/``): ``episodes.csv``, ``eval.csv``,
``agent.pt`` (:meth:`RLPD.save`), ``result.json``; while training, ``state.json`` and one
``ckpt_<steps>/`` (``agent.pt``, ``buffer.npz`` from :meth:`RLPD.save_replay_buffer`: the
online transitions and the random-stream states, ``episodes.csv``), written atomically at the
first episode end after every ``checkpoint_every`` env steps. A rerun resumes from it: the
agent, its buffer and its random streams continue; the training env is reset with seed
``TRAIN_SEED_BASE + 1000 * seed + steps_done`` (an uninterrupted run would have continued the
env's stream instead, so a resumed run is not bit-identical to an uninterrupted one).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.rlpd import RLPD, RLPDConfig
from benchmarks import common
from benchmarks.cable_rl.config import (
    _EPISODE_TYPES,
    ARMS,
    CACHE_VERSION,
    EPISODE_COLUMNS,
    EVAL_COLUMNS,
    EVAL_SEED_BASE,
    GRIPPER_KEYS,
    TRAIN_SEED_BASE,
    CacheMismatchError,
    Config,
    json_normalise,
    log,
    read_json,
    read_rows,
    stamp_diff,
)
from benchmarks.cable_rl.envs import make_arm_env
from benchmarks.cable_rl.stages import load_episodes
from benchmarks.cable_rl.training import (
    RunContext,
    episode_row,
    evaluate_policy,
    final_train_success,
    run_directory,
    write_checkpoint,
)
from benchmarks.cable_rlpd import state_vector

#: Version of the RLPD observation layout (:func:`arm_features`), part of every run's stamp.
FEATURE_VERSION = 1
#: ``info`` entries copied into every training episode's record (:func:`episode_row` reads them).
INFO_KEYS = ("is_success", "is_success_true", "left_safety_box", "keypoint_distance",
             "insertion_error")
KEYPOINT_NAMES = ("plug_tip", "plug_base", "socket")


# ---------------------------------------------------------------------------- observation
def arm_features(arm: str, obs: Mapping[str, np.ndarray], prev: Mapping[str, np.ndarray],
                 time_left: float) -> np.ndarray:
    """The RLPD observation of one step of an arm (module docstring's table).

    Args:
        arm: ``"kp"``, ``"vae"`` or ``"gt"``.
        obs: the arm's ``Dict`` observation of this step (``keypoints`` ``(3, 3)`` m for
            ``kp``/``gt``, ``latent`` ``(L,)`` for ``vae``; the gripper entries).
        prev: the previous step's observation (at reset: ``obs`` itself).
        time_left: fraction of the episode's steps still to come (1 at reset, 0 at the limit).

    Returns:
        ``(26,)`` float32 (``kp``, ``gt``) or ``(2 L + 14,)`` float32 (``vae``).
    """
    if arm in ("kp", "gt"):
        return state_vector(obs, obs["keypoints"], True, time_left, prev["keypoints"])
    if arm != "vae":
        raise ValueError(f"arm: expected one of {ARMS}, got {arm!r}")
    latent = np.asarray(obs["latent"], np.float64)
    grip = [np.asarray(obs[k], np.float64).ravel() for k in GRIPPER_KEYS]
    return np.concatenate([latent, *grip, latent - np.asarray(prev["latent"], np.float64),
                           [time_left]]).astype(np.float32)


def feature_dim(arm: str, space: spaces.Dict) -> int:
    """Length of :func:`arm_features`' vector for an arm's ``Dict`` observation space."""
    if arm == "vae":
        return 2 * int(np.prod(space["latent"].shape)) + 14
    return 26


def episode_limit(env: gym.Env) -> int:
    """The env's ``max_episode_steps`` (its ``TimeLimit``); ``ValueError`` if it has none."""
    spec = env.spec
    if spec is None or not spec.max_episode_steps:
        raise ValueError(f"expected an env with a time limit (spec.max_episode_steps), got "
                         f"spec {spec}")
    return int(spec.max_episode_steps)


class RLPDFeatureObservation(gym.Wrapper):
    """The arm's ``Dict`` observations as the RLPD vector of :func:`arm_features`
    (``Box`` ``(D,)`` float32), keeping the previous step's observation and the step count.

    Args:
        env: the arm's env (:attr:`ArmEnv.env`, ``Dict`` observations, a ``TimeLimit``).
        arm: ``"kp"``, ``"vae"`` or ``"gt"``.
        keypoint_names: the order of ``obs["keypoints"]`` (``kp``, ``gt``; default the
            env's); must be ``plug_tip, plug_base, socket``.
    """

    def __init__(self, env: gym.Env, arm: str,
                 keypoint_names: Sequence[str] | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        need = ("latent",) if arm == "vae" else ("keypoints",)
        if arm not in ARMS or not isinstance(space, spaces.Dict) or any(
                k not in space.spaces for k in (*need, *GRIPPER_KEYS)):
            raise ValueError(f"RLPDFeatureObservation: expected arm in {ARMS} and a Dict space "
                             f"with {[*need, *GRIPPER_KEYS]}, got arm {arm!r}, space {space}")
        names = tuple(env.unwrapped.keypoint_names if keypoint_names is None
                      else keypoint_names)
        if arm != "vae" and names != KEYPOINT_NAMES:
            raise ValueError(f"RLPDFeatureObservation: expected keypoints {KEYPOINT_NAMES}, "
                             f"got {names}")
        self.arm = arm
        self.max_steps = episode_limit(env)
        self.t = 0
        self._prev: dict[str, np.ndarray] | None = None
        self.observation_space = spaces.Box(-np.inf, np.inf, (feature_dim(arm, space),),
                                            np.float32)

    def _vector(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        current = {k: np.array(v, copy=True) for k, v in obs.items()}
        prev = current if self._prev is None else self._prev
        self._prev = current
        return arm_features(self.arm, current, prev, 1.0 - self.t / self.max_steps)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; time left 1, no motion."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.t, self._prev = 0, None
        return self._vector(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        """Step; motion since the previous observation, one step less left."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return self._vector(obs), reward, terminated, truncated, info


def rlpd_demonstrations(episodes: Sequence[Mapping[str, Any]], arm: str, space: spaces.Dict,
                        max_steps: int) -> list[dict[str, np.ndarray]]:
    """The arm's converted (flat) demonstration episodes as RLPD episodes.

    Args:
        episodes: flat episodes of :func:`~benchmarks.cable_rl.stages.load_episodes`
            (``observations`` ``(T+1, flatdim)``: ``gymnasium.spaces.flatten`` of ``space``).
        arm: the arm.
        space: the arm's ``Dict`` observation space (what was flattened).
        max_steps: the env's time limit T.

    Returns:
        Episodes with ``observations`` ``(T+1, D)`` float32 (:func:`arm_features`, step ``t``
        with time left ``1 - t / max_steps``), the same actions and rewards; ``terminated``
        also set at the last step of an episode of ``max_steps`` steps (the env's time limit,
        stored as terminal like the agent's own episodes).
    """
    out = []
    for i, ep in enumerate(episodes):
        flat = np.asarray(ep["observations"])
        n = len(ep["actions"])
        if n > max_steps:
            raise ValueError(f"demonstration {i}: {n} steps, longer than the time limit "
                             f"{max_steps}")
        dicts = [spaces.unflatten(space, o) for o in flat]
        obs = np.stack([arm_features(arm, dicts[t], dicts[max(t - 1, 0)], 1.0 - t / max_steps)
                        for t in range(len(dicts))])
        terminated = np.asarray(ep["terminated"], bool).copy()
        truncated = np.asarray(ep["truncated"], bool).copy()
        if n == max_steps and not terminated[-1]:
            terminated[-1], truncated[-1] = True, False
        out.append({"observations": obs, "actions": np.asarray(ep["actions"]),
                    "rewards": np.asarray(ep["rewards"]), "terminated": terminated,
                    "truncated": truncated})
    return out


# ---------------------------------------------------------------------------- agent
def rlpd_config(cfg: Config) -> RLPDConfig:
    """The :class:`RLPDConfig` of every run of ``cfg`` (:class:`RLPDParams` + the fixed
    choices: no entropy backup, no bootstrap at the time limit, buffer of all the run's steps,
    updates from ``batch_size`` stored transitions on)."""
    p = cfg.rlpd
    return RLPDConfig(utd=p.utd, num_critics=p.critics, num_min_critics=min(2, p.critics),
                      batch_size=p.batch_size, actor_every=p.actor_every,
                      init_temperature=p.init_temperature,
                      learn_temperature=p.learn_temperature,
                      hidden=tuple(p.hidden), backup_entropy=False,
                      bootstrap_truncation=False, buffer_size=max(cfg.steps, 1),
                      learning_starts=p.batch_size)


def rlpd_run_stamp(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """Everything that determines the result of one RLPD (arm, seed) run."""
    cfg = ctx.cfg
    return json_normalise({
        "cache_version": CACHE_VERSION, "agent_kind": "rlpd", "arm": arm, "seed": seed,
        "steps": cfg.steps, "eval_episodes": cfg.eval_episodes,
        "eval_seed_base": EVAL_SEED_BASE, "train_seed_base": TRAIN_SEED_BASE,
        "camera_seed": cfg.camera_seed, "rlpd": rlpd_config(cfg).to_json(),
        "feature_version": FEATURE_VERSION, "demos_sha256": ctx.demos[arm]["content_sha256"],
        "keypoint_checkpoint_sha256": ctx.kp_sha if arm != "gt" else None,
        "vae_sha256": ctx.vae_sha if arm == "vae" else None})


def make_rlpd_env(ctx: RunContext, arm: str) -> RLPDFeatureObservation:
    """The arm's env (:func:`make_arm_env`) with the RLPD observation."""
    arm_env = make_arm_env(arm, ctx.cfg.camera_seed, ctx.predictor, ctx.vae,
                           ctx.cfg.env_id)
    try:
        return RLPDFeatureObservation(arm_env.env, arm,
                                      getattr(arm_env.keypoints, "keypoint_names", None))
    except BaseException:
        arm_env.env.close()
        raise


class RLPDEpisodeLogger:
    """The :meth:`RLPD.learn` callback: logs every finished training episode (one
    :data:`~benchmarks.cable_rl.config.EPISODE_COLUMNS` row) and writes a checkpoint at the
    first episode end after every ``every`` env steps.

    Args:
        rows: the episode rows so far (appended to).
        checkpoint: ``checkpoint(agent, rows, env_steps)``.
        every: env steps between checkpoints.
        elapsed0: wall seconds of the run before this call (resumed runs).
        last_checkpoint: env steps of the latest checkpoint.
        label: prefix of the progress lines.
    """

    def __init__(self, rows: list[dict[str, Any]],
                 checkpoint: Callable[[RLPD, list[dict[str, Any]], int], None], every: int,
                 elapsed0: float = 0.0, last_checkpoint: int = 0, label: str = "") -> None:
        self.rows = rows
        self.checkpoint = checkpoint
        self.every = every
        self.elapsed0 = elapsed0
        self.t0 = time.monotonic()
        self.last_checkpoint = last_checkpoint
        self.label = label

    def elapsed(self) -> float:
        """Wall seconds of the run so far."""
        return self.elapsed0 + time.monotonic() - self.t0

    def __call__(self, agent: RLPD, record: Mapping[str, Any]) -> bool:
        """Log one episode record of :meth:`RLPD.learn`; checkpoint when due."""
        info = {k: record[k] for k in INFO_KEYS if record.get(k) is not None}
        row = {"episode": len(self.rows), "steps": int(record["env_steps"]),
               **episode_row(info, float(record["return"]), int(record["length"])),
               "wall_s": self.elapsed()}
        self.rows.append(row)
        if len(self.rows) % 25 == 0:
            last = self.rows[-25:]
            log(f"{self.label}{row['steps']} steps, {len(self.rows)} episodes; last 25: "
                f"success {sum(r['success_keypoint'] for r in last)} (keypoint rule), "
                f"{sum(r['success_true'] for r in last)} (true), left box "
                f"{sum(r['left_safety_box'] for r in last)}; alpha {agent.alpha:.3g}; "
                f"{row['wall_s']:.0f} s")
        if row["steps"] - self.last_checkpoint >= self.every:
            self.checkpoint(agent, self.rows, row["steps"])
            self.last_checkpoint = row["steps"]
        return True


def run_one_rlpd(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """Train (or resume, or reuse) one RLPD (arm, seed) run, then evaluate it (module
    docstring).

    Returns:
        The run's result (also ``result.json``): stamp, seconds, steps/s, evaluation success
        rates, final rolling training success rates, the agent's env steps.

    Raises:
        CacheMismatchError: the run directory holds a run made with other settings.
    """
    cfg = ctx.cfg
    run_dir = run_directory(cfg, arm, seed)
    stamp = rlpd_run_stamp(ctx, arm, seed)
    result_path, state_path = run_dir / "result.json", run_dir / "state.json"
    for path in (result_path, state_path):
        if path.exists():
            diff = stamp_diff(read_json(path).get("stamp", {}), stamp)
            if diff:
                raise CacheMismatchError(
                    f"{path}: a run with other settings ({'; '.join(diff)}); delete {run_dir} "
                    "or use another --work-dir")
    if result_path.exists():
        log(f"rlpd {arm} seed {seed}: done before, reusing {result_path}")
        return read_json(result_path)

    flat_demos, _ = load_episodes(Path(ctx.demos[arm]["path"]))
    env = make_rlpd_env(ctx, arm)
    demos = rlpd_demonstrations(flat_demos, arm, env.env.observation_space, env.max_steps)
    state = read_json(state_path) if state_path.exists() else None
    if state is not None and not all((run_dir / state["checkpoint"] / f).is_file()
                                     for f in ("agent.pt", "buffer.npz", "episodes.csv")):
        log(f"rlpd {arm} seed {seed}: checkpoint {state['checkpoint']} is missing, starting "
            "afresh")
        state = None
    rows: list[dict[str, Any]] = []
    try:
        if state is not None:
            ck = run_dir / state["checkpoint"]
            agent = RLPD.load(ck / "agent.pt", demonstrations=demos)
            agent.load_replay_buffer(ck / "buffer.npz")
            rows = read_rows(ck / "episodes.csv", _EPISODE_TYPES)
            done_steps, elapsed0 = int(state["steps"]), float(state["elapsed_s"])
            if agent.env_steps != done_steps:
                raise RuntimeError(f"{ck}: agent at {agent.env_steps} env steps, state.json "
                                   f"says {done_steps}")
            log(f"rlpd {arm} seed {seed}: resuming at step {done_steps} from {ck}")
        else:
            if run_dir.exists():  # partial leftovers without a checkpoint: start afresh
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            agent = RLPD(env.observation_space, env.action_space, demos, rlpd_config(cfg),
                         seed=seed)
            done_steps, elapsed0 = 0, 0.0
            log(f"rlpd {arm} seed {seed}: training {cfg.steps} steps ({len(demos)} "
                f"demonstration episodes, {sum(len(d['actions']) for d in demos)} transitions)")

        def checkpoint(a: RLPD, episode_rows: list[dict[str, Any]], steps: int) -> None:
            def save(tmp: Path) -> None:
                a.save(tmp / "agent.pt")
                a.save_replay_buffer(tmp / "buffer.npz")

            write_checkpoint(run_dir, state_path, stamp, steps, recorder.elapsed(),
                             episode_rows, save)

        recorder = RLPDEpisodeLogger(rows, checkpoint, cfg.checkpoint_every, elapsed0,
                                     done_steps, label=f"rlpd {arm} seed {seed}: ")
        cpu0 = time.process_time()
        if done_steps < cfg.steps:
            agent.learn(env, cfg.steps - done_steps,
                        seed=TRAIN_SEED_BASE + 1000 * seed + done_steps, info_keys=INFO_KEYS,
                        callback=recorder)
            if recorder.last_checkpoint != agent.env_steps:
                checkpoint(agent, rows, agent.env_steps)
        train_s, train_cpu_s = recorder.elapsed(), time.process_time() - cpu0
        agent.save(run_dir / "agent.pt")
        common.write_csv(run_dir / "episodes.csv", rows, EPISODE_COLUMNS)
        t0 = time.monotonic()
        eval_env = make_rlpd_env(ctx, arm)
        try:
            eval_rows = evaluate_policy(lambda o: agent.act(o, deterministic=True), eval_env,
                                        cfg.eval_episodes)
        finally:
            eval_env.close()
        eval_s = time.monotonic() - t0
    finally:
        env.close()
    common.write_csv(run_dir / "eval.csv", eval_rows, EVAL_COLUMNS)
    final = final_train_success(rows, cfg.steps, cfg.window)
    result = {
        "stamp": stamp, "agent_kind": "rlpd", "arm": arm, "seed": seed, "steps": cfg.steps,
        "agent_env_steps": agent.env_steps, "agent_updates": agent.num_updates,
        "final_alpha": agent.alpha,
        "train_wall_s": train_s, "train_cpu_s_this_call": train_cpu_s,
        "train_steps_per_s": cfg.steps / train_s if train_s > 0 else math.nan,
        "resumed_from_step": done_steps if state is not None else None,
        "eval_wall_s": eval_s, "train_episodes": len(rows),
        "demo_episodes": len(demos),
        "eval_success_keypoint": float(np.mean([r["success_keypoint"] for r in eval_rows])),
        "eval_success_true": float(np.mean([r["success_true"] for r in eval_rows])),
        "eval_return": float(np.mean([r["return"] for r in eval_rows])),
        "final_train_success_keypoint": final["success_keypoint"],
        "final_train_success_true": final["success_true"],
        "files": {"episodes": str(run_dir / "episodes.csv"), "eval": str(run_dir / "eval.csv"),
                  "model": str(run_dir / "agent.pt")},
    }
    common.write_json(result_path, result)
    state_path.unlink(missing_ok=True)
    for old in run_dir.glob("ckpt_*"):
        shutil.rmtree(old)
    log(f"rlpd {arm} seed {seed}: {len(rows)} training episodes, "
        f"{result['train_steps_per_s']:.1f} steps/s; evaluation on {cfg.eval_episodes} held-out "
        f"seeds: success {result['eval_success_keypoint']:.2f} (keypoint rule), "
        f"{result['eval_success_true']:.2f} (true)")
    return result
