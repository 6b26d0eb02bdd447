"""One unit of the push MPC benchmark -- a state source's dynamics for one seed and its
goal episodes, or a baseline's episodes -- and what it needs: the per-episode row files
(resumable), the dynamics cache, the planner and the evaluation loop (see
:mod:`benchmarks.push_mpc` for the method). The local runner and the Ray tasks
(:mod:`benchmarks.push_mpc.ray_tasks`) both call :func:`run_unit`."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.dynamics import DynamicsConfig, KeypointDynamics, TrainConfig, train_dynamics
from agents.mpc import MPPIConfig, MPPIPlanner
from benchmarks.push_mpc import sources as S
from benchmarks.push_mpc import variants as V
from s3k_envs.experts import BoxPushExpert

BASELINES = ("expert", "random")


class LatentGoalPlanner(MPPIPlanner):
    """MPPI on a flat ``(D + 3,)`` state (latent + pusher) whose cost is the Euclidean
    distance of the first ``latent_dim`` entries (the latent) to a ``(D,)`` goal latent."""

    def __init__(self, model: KeypointDynamics, low: Sequence[float], high: Sequence[float],
                 config: MPPIConfig, latent_dim: int) -> None:
        self.latent_dim = int(latent_dim)
        super().__init__(model, low, high, config)

    @property
    def goal_shape(self) -> tuple[int, ...]:
        """``(D,)``: a latent."""
        return (self.latent_dim,)

    def distance(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """``(..., D + 3)`` -> ``(...)`` latent distance to the goal."""
        return (states[..., :self.latent_dim] - goal).norm(dim=-1)


# ---------------------------------------------------------------------------- row files
def read_rows(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of a row file (a line cut by an interruption is dropped and
    removed from the file, so the next append starts on a clean line)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
        with open(path, "r+", encoding="utf-8") as f:
            f.truncate(len(text.encode()))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row as a JSON line in a single write, flushed and fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------- dynamics
def dynamics(method: str, src: S.Source, seed: int, data: dict[str, np.ndarray],
             args: argparse.Namespace, path: Path, log: Callable[[str], None]
             ) -> tuple[KeypointDynamics, dict[str, Any]]:
    """The method's dynamics model for ``seed`` (initial weights, batch order): loaded from
    ``path`` or trained on the method's states of the shared transitions and saved there."""
    if path.is_file():
        model = KeypointDynamics.load(path, device=args.device)
        return model, dict(model.extra)
    episodes = [{"states": data[method][i], "actions": data["actions"][i]}
                for i in range(data["actions"].shape[0])]
    torch.manual_seed(seed)  # the model's initial weights
    model = KeypointDynamics(DynamicsConfig(src.state_shape, 2, hidden=(256, 256),
                                            planar=bool(args.planar and src.points)))
    log(f"{method} seed {seed}: training dynamics on {src.state_shape} states")
    stats = train_dynamics(model, episodes, TrainConfig(
        steps=args.train_steps, batch_size=256, rollout_steps=5, lr=1e-3, seed=seed,
        max_seconds=args.train_seconds, device=args.device),
        log=lambda s: log(f"  {method} seed {seed}: {s}"))
    model.save(path, extra=stats)
    return model, stats


def make_planner(src: S.Source, model: KeypointDynamics, seed: int, args: argparse.Namespace
                 ) -> MPPIPlanner:
    """MPPI with the benchmark's settings; keypoint cost on the object rows (point states,
    with the reach tie-breaker) or the latent distance (VAE, no tie-breaker: its state has
    no box position)."""
    reach = args.reach_cost if src.points else 0.0
    cfg = MPPIConfig(horizon=args.horizon, samples=args.samples, iterations=args.iterations,
                     reach_cost=reach, seed=seed)
    if src.points:
        k = src.num_object
        return MPPIPlanner(model, [-1, -1], [1, 1], cfg, cost_rows=list(range(k)),
                           reach_rows=(k, list(range(k))))
    return LatentGoalPlanner(model, [-1, -1], [1, 1], cfg, src.num_object)


# ---------------------------------------------------------------------------- evaluation
def pose_errors(env: gym.Env) -> tuple[float, float]:
    """Current ``(position m, angle rad)`` error of the box to the goal."""
    pose, goal = env.unwrapped.object_pose(), env.unwrapped.goal_pose
    return (float(np.hypot(*(pose[:2] - goal[:2]))),
            float(abs((pose[2] - goal[2] + math.pi) % (2 * math.pi) - math.pi)))


def evaluate(method: str, seed: int, n: int, rows_path: Path, args: argparse.Namespace,
             src: S.Source | None = None, planner: MPPIPlanner | None = None,
             log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Goal episodes ``0..n-1`` (reset seeds ``10000 + i``) of ``method`` (a state source
    with ``planner``, or ``"expert"`` / ``"random"``); rows already in ``rows_path`` are
    kept, the others run and are appended one by one."""
    rows = [r for r in read_rows(rows_path) if r["episode"] < n]
    done = {r["episode"] for r in rows}
    if len(done) == n:
        return sorted(rows, key=lambda r: r["episode"])
    images = src is not None and src.images
    extra = {"instances": args.instances} if args.instances else {}
    env = V.make_env(args.env, occluder=bool(args.occluder and images), images=images,
                     goal_images=images, goal_mode="pushes", terminate_on_success=False,
                     max_episode_steps=args.eval_steps, **extra)
    expert = BoxPushExpert(env)
    for i in range(n):
        if i in done:
            continue
        obs, info = env.reset(seed=10000 + i)
        start = pose_errors(env)
        rng = np.random.default_rng([seed, i])
        goal = None
        if planner is not None and src is not None:
            planner.reset()
            planner.gen = torch.Generator(device=planner.device).manual_seed(
                1_000_003 * seed + i)
            goal = src.goal(obs)
        plan_s: list[float] = []
        perceive_s: list[float] = []
        steps, ever = 0, False
        while True:
            if planner is not None and src is not None:
                t0 = time.perf_counter()
                state = src.state(obs, info)
                perceive_s.append(time.perf_counter() - t0)
                a = planner.act(state, goal)
                plan_s.append(planner.plan_seconds[-1])
            elif method == "expert":
                a = np.asarray(expert(obs, info))[:2]
            else:
                a = rng.uniform(-1, 1, 2)
            obs, _, term, trunc, info = env.step(S.env_action(a))
            steps += 1
            ever = ever or bool(info["is_success"])
            if term or trunc:
                break
        row = {
            "method": method, "seed": seed, "episode": i, "steps": steps,
            "start_position_cm": 100 * start[0], "start_angle_deg": math.degrees(start[1]),
            "position_cm": 100 * float(info["position_error"]),
            "angle_deg": math.degrees(float(info["angle_error"])),
            "keypoint_distance_cm": 100 * float(info["keypoint_distance"]),
            "success": bool(info["is_success"]), "success_any_step": ever,
            "plan_ms_median": 1000 * float(np.median(plan_s)) if plan_s else math.nan,
            "plan_ms_max": 1000 * float(np.max(plan_s)) if plan_s else math.nan,
            "perceive_ms_median": 1000 * float(np.median(perceive_s)) if perceive_s
            else math.nan,
            **({"instance_id": int(info["instance_id"])} if "instance_id" in info else {}),
        }
        append_row(rows_path, row)
        rows.append(row)
        log(f"{method} seed {seed} ep {i}: pos {row['position_cm']:.2f} cm, angle "
            f"{row['angle_deg']:.1f} deg, success {row['success']}")
    env.close()
    return sorted(rows, key=lambda r: r["episode"])


# ---------------------------------------------------------------------------- units
@dataclass
class UnitContext:
    """What every (method, seed) unit needs: the options, the sources, the shared data and
    the cache layout (picklable: it is one Ray object with ``--ray``)."""

    args: argparse.Namespace
    sources: dict[str, S.Source]
    digests: dict[str, str]
    data: dict[str, np.ndarray]
    cache: Path
    data_dir: Path
    dyn_key: str
    eval_key: str
    eval_only_key: str
    #: eval key of the sources that read images (the variant's perception options added).
    eval_key_images: str = ""


def run_unit(ctx: UnitContext, method: str, seed: int, log: Callable[[str], None] = print
             ) -> dict[str, Any]:
    """One unit of work: a state source's dynamics for ``seed`` (cached) and its goal
    episodes (resumable), or a baseline's episodes (``method`` in :data:`BASELINES`).

    Returns:
        ``{"method", "seed", "training": the dynamics' stats or None (baselines), "rows":
        the episode rows in episode order}``.
    """
    args = ctx.args
    if method in BASELINES:
        rows = evaluate(method, seed, args.eval_episodes,
                        ctx.cache / "baselines" / f"{method}_{ctx.eval_only_key}.jsonl", args,
                        log=log)
        return {"method": method, "seed": seed, "training": None, "rows": rows}
    src = ctx.sources[method]
    name = f"{method}_{ctx.digests[method]}_seed{seed}"
    model, stats = dynamics(method, src, seed, ctx.data, args,
                            ctx.data_dir / "dynamics" / f"{name}_{ctx.dyn_key}.pt", log)
    planner = make_planner(src, model, seed, args)
    key = ctx.eval_key_images if src.images and ctx.eval_key_images else ctx.eval_key
    rows = evaluate(method, seed, args.eval_episodes,
                    ctx.data_dir / "episodes" / f"{name}_{key}.jsonl", args, src, planner, log)
    return {"method": method, "seed": seed, "training": stats, "rows": rows}
