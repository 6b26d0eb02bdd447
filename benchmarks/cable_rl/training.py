"""Stage 4: one resumable DDPGfD run per arm and seed (episode log, checkpoints, TensorBoard),
and the deterministic evaluation episodes.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise

from agents.beta_vae.model import BetaVAE
from agents.ddpgfd import DDPGfD, flatten_dict_observations
from benchmarks import common
from benchmarks.cable_rl.config import (
    _EPISODE_TYPES,
    CACHE_VERSION,
    EPISODE_COLUMNS,
    EVAL_COLUMNS,
    EVAL_SEED_BASE,
    TRAIN_SEED_BASE,
    AgentParams,
    CacheMismatchError,
    Config,
    json_normalise,
    log,
    read_json,
    read_rows,
    rolling_success,
    stamp_diff,
)
from benchmarks.cable_rl.envs import (
    ArmEnv,
    make_arm_env,
)
from benchmarks.cable_rl.stages import (
    load_episodes,
)
from s3k_envs.atomic import atomic_directory, atomic_path
from s3k_envs.keypoints.predictor import KeypointPredictor


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
    arm_env = make_arm_env(arm, ctx.cfg.camera_seed, ctx.predictor, ctx.vae,
                           ctx.cfg.env_id)
    flat, _ = flatten_dict_observations(arm_env.env)
    return flat, arm_env


def _save_model(model: DDPGfD, path: Path) -> None:
    with atomic_path(path, suffix=".tmp.zip") as tmp:  # save() would append .zip otherwise
        model.save(tmp)


def evaluate(model: DDPGfD, env: gym.Env, episodes: int) -> list[dict[str, Any]]:
    """Deterministic episodes of ``model`` on seeds ``EVAL_SEED_BASE + i``; one row each."""
    return evaluate_policy(lambda obs: model.predict(obs, deterministic=True)[0], env, episodes)


def evaluate_policy(policy: Callable[[Any], np.ndarray], env: gym.Env, episodes: int
                    ) -> list[dict[str, Any]]:
    """Episodes of ``policy`` (observation -> action in the env's units) on seeds
    ``EVAL_SEED_BASE + i``; one :data:`EVAL_COLUMNS` row each."""
    rows = []
    for i in range(episodes):
        seed = EVAL_SEED_BASE + i
        obs, info = env.reset(seed=seed)
        ret, length, done = 0.0, 0, False
        while not done:
            action = policy(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            length += 1
            done = terminated or truncated
        rows.append({"eval_seed": seed, **episode_row(info, ret, length)})
    return rows


def write_checkpoint(run_dir: Path, state_path: Path, stamp: Mapping[str, Any], steps: int,
                     elapsed_s: float, episode_rows: Sequence[Mapping[str, Any]],
                     save: Callable[[Path], None]) -> Path:
    """One resumable checkpoint of a training run (DDPGfD or RLPD): ``save(tmp)`` writes the
    agent's files into a directory that appears atomically as ``run_dir/ckpt_<steps>``, next
    to the episode log; then ``state_path`` names it (with the run's stamp, steps and elapsed
    seconds) and older checkpoints are removed. An interruption at any point leaves the
    previous complete checkpoint named by ``state_path``."""
    ck = run_dir / f"ckpt_{steps:08d}"
    with atomic_directory(ck) as tmp:
        save(tmp)
        common.write_csv(tmp / "episodes.csv", episode_rows, EPISODE_COLUMNS)
    common.write_json(state_path, {"stamp": stamp, "checkpoint": ck.name, "steps": steps,
                                   "elapsed_s": elapsed_s})
    for old in run_dir.glob("ckpt_*"):
        if old != ck:
            shutil.rmtree(old)
    return ck


def run_directory(cfg: Config, arm: str, seed: int) -> Path:
    """The files of one run: ``WORK/runs/<arm>/seed_<seed>`` (DDPGfD, where its runs have
    always been) or ``WORK/runs/<agent>/<arm>/seed_<seed>`` (any other ``--agent``)."""
    runs = cfg.work / "runs"
    if cfg.agent_kind != "ddpgfd":
        runs = runs / cfg.agent_kind
    return runs / arm / f"seed_{seed}"


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
            def save(tmp: Path) -> None:
                m.save(tmp / "model.zip")
                m.save_replay_buffer(tmp / "buffer.pkl")

            write_checkpoint(run_dir, state_path, stamp, steps, recorder.elapsed(),
                             episode_rows, save)

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
