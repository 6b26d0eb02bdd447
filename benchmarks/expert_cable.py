"""Scripted expert on S3K-CableInsert-v0: success rate, steps, contact penetration, throughput.

Runs :class:`s3k_envs.experts.CableInsertExpert` on ``--episodes`` seeded episodes (seeds
``seed, seed+1, ...``; 40-step time limit as registered) and records per episode: success,
control steps, final ``insertion_error`` (m) and the deepest contact penetration (m) seen at
any 2 ms physics substep (read in MuJoCo's control callback, which runs inside every
``mj_step`` after collision detection).

The expert reads privileged state (true keypoints), never pixels, so the episodes run at a
small ``--image-size`` (32 px by default) to save time; that does not change the physics.
Separately, ``--throughput-steps`` ``env.step`` calls of expert episodes are timed at
``--throughput-size`` (128 px) with 4 cameras (wall clock, resets excluded).

Other cable envs: ``--env-id`` (a registered cable id, e.g. ``S3K-CableInsertShort-v0``) and
``--env-option KEY=VALUE`` (repeatable; any option of
:class:`s3k_envs.envs.cable.CableInsertEnv`, the value read as a Python literal, e.g.
``--env-option cable_segments=4 --env-option joint_stiffness=0.03``).

Outputs (written atomically) in ``--out`` (default ``benchmarks/results/``):
``expert_cable.csv`` (one row per episode) and ``expert_cable.json`` (summary, per-episode
rows, configuration, machine info and the command line); for another env id or options the
stem is ``expert_cable_<name>`` (``--name``, default from the id and options, e.g.
``expert_cable_short`` or ``expert_cable_cable_segments4``). A summary goes to stdout.
``--media DIR`` also writes ``DIR/S3K-CableInsert-v0.png`` (annotated 4-view sample, 128 px
views) and ``DIR/cable_expert.gif`` (the expert's first ``--media-episodes`` episodes).

Usage::

    MUJOCO_GL=egl python -m benchmarks.expert_cable [--episodes 100] [--seed 0]
        [--image-size 32] [--throughput-steps 300] [--out benchmarks/results]
        [--media docs/images] [--env-id S3K-CableInsertShort-v0] [--env-option KEY=VALUE]
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import gymnasium as gym
import mujoco
import numpy as np

from benchmarks import common
from s3k_envs.envs.cable import MAX_EPISODE_STEPS, CableInsertEnv
from s3k_envs.experts import CableInsertExpert
from s3k_envs.registration import env_class

ENV_ID = "S3K-CableInsert-v0"
CSV_COLUMNS = ("seed", "success", "steps", "final_insertion_error_m", "max_penetration_m")
#: Acceptance targets of the issue.
TARGETS = {"min_success_rate": 0.9, "max_penetration_m": 0.002, "min_steps_per_s_128px": 50.0}


class PenetrationProbe:
    """MuJoCo control callback that tracks the deepest contact penetration (m) per substep."""

    def __init__(self) -> None:
        self.max_penetration = 0.0

    def __call__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        if data.ncon:
            self.max_penetration = max(self.max_penetration,
                                       -float(data.contact.dist[: data.ncon].min()))


def parse_env_options(items: list[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE}``, each value a Python literal (``4``,
    ``0.03``, ``(0.18, 0.22)``, ``True``) or else the string itself.

    Raises:
        ValueError: an item without ``=`` or with an empty key, or a key given twice.
    """
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"env option: expected KEY=VALUE, got {item!r}")
        if key in options:
            raise ValueError(f"env option {key!r} given twice")
        try:
            options[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            options[key] = raw.strip()
    return options


def result_name(env_id: str, options: dict[str, Any]) -> str:
    """Stem of the result files: ``expert_cable`` for the default env, else
    ``expert_cable_<short id>[_<key><value>...]`` (e.g. ``expert_cable_short``,
    ``expert_cable_cable_segments4``)."""
    parts = ["expert_cable"]
    if env_id != ENV_ID:
        parts.append(env_id.removeprefix("S3K-CableInsert").removesuffix("-v0").lower())
    for key, value in sorted(options.items()):
        text = "-".join(f"{v:g}" if isinstance(v, float) else str(v)
                        for v in (value if isinstance(value, (tuple, list)) else (value,)))
        parts.append(f"{key}{text}")
    return "_".join(p for p in parts if p)


def make_env(image_size: int, env_id: str = ENV_ID, **options: Any) -> gym.Env:
    """The cable env of ``env_id`` (its class, built directly with ``options``) with the
    registered 40-step time limit."""
    cls = env_class(env_id)
    if not issubclass(cls, CableInsertEnv):
        raise ValueError(f"env_id: expected a cable insertion env, got {env_id!r} ({cls})")
    return gym.wrappers.TimeLimit(cls(image_size=image_size, **options), MAX_EPISODE_STEPS)


def run_episodes(episodes: int, seed: int, image_size: int, env_id: str = ENV_ID,
                 **options: Any) -> list[dict[str, Any]]:
    """Expert episodes with seeds ``seed ... seed + episodes - 1``; one result row each."""
    env = make_env(image_size, env_id, **options)
    expert = CableInsertExpert(env)
    probe = PenetrationProbe()
    rows = []
    mujoco.set_mjcb_control(probe)
    try:
        for i in range(episodes):
            expert.reset()
            obs, info = env.reset(seed=seed + i)
            probe.max_penetration = 0.0
            steps, done = 0, False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert(obs, info))
                steps += 1
                done = terminated or truncated
            rows.append({
                "seed": seed + i,
                "success": bool(info["is_success"]),
                "steps": steps,
                "final_insertion_error_m": float(info["insertion_error"]),
                "max_penetration_m": probe.max_penetration,
                "left_safety_box": bool(info["left_safety_box"]),
                "sim_unstable": bool(info["sim_unstable"]),
            })
            print(f"\rseed {seed + i}: {'ok ' if rows[-1]['success'] else 'FAIL'} "
                  f"{steps:2d} steps ({i + 1}/{episodes})", end="", file=sys.stderr, flush=True)
    finally:
        mujoco.set_mjcb_control(None)
        env.close()
        print(file=sys.stderr)
    return rows


def measure_throughput(steps: int, image_size: int, seed: int, env_id: str = ENV_ID,
                       **options: Any) -> dict[str, Any]:
    """Time ``env.step`` (wall clock) over ``steps`` steps of expert episodes at
    ``image_size`` px with 4 cameras; resets and the expert are not timed.

    Returns:
        ``steps_per_s`` (overall), ``step_ms`` spread over chunks of 25 steps, ``reset_ms``
        median, the image size and the number of steps.
    """
    env = make_env(image_size, env_id, **options)
    expert = CableInsertExpert(env)
    step_times: list[float] = []
    reset_times: list[float] = []
    try:
        episode = 0
        while len(step_times) < steps:
            expert.reset()
            start = time.perf_counter()
            obs, info = env.reset(seed=seed + episode)
            reset_times.append(time.perf_counter() - start)
            episode += 1
            done = False
            while not done and len(step_times) < steps:
                action = expert(obs, info)
                start = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(action)
                step_times.append(time.perf_counter() - start)
                done = terminated or truncated
        gl = common.gl_renderer_info()
    finally:
        env.close()
    chunks = [1000 * float(np.mean(step_times[i : i + 25])) for i in range(0, steps, 25)]
    return {
        "image_size": image_size,
        "num_cameras": 4,
        "n_steps": steps,
        "steps_per_s": steps / sum(step_times),
        "step_ms": common.spread(chunks),
        "reset_ms": 1000 * common.median(reset_times),
        "gl_renderer": gl,
    }


def write_media(out_dir: Path, seed: int, episodes: int = 3, image_size: int = 128) -> list[Path]:
    """Annotated 4-view sample PNG and a GIF of expert episodes (true keypoints drawn: filled =
    visible, ring = occluded), ``image_size`` px views in a 2x2 mosaic, 4 frames/s."""
    from s3k_envs.demo import annotated_mosaic
    from s3k_envs.viz import write_png, write_video

    env = make_env(image_size)
    expert = CableInsertExpert(env)
    frames: list[np.ndarray] = []
    try:
        for i in range(episodes):
            expert.reset()
            obs, info = env.reset(seed=seed + i)
            frames.append(annotated_mosaic(obs, info))
            if i == 0:
                png = write_png(frames[0], out_dir / f"{ENV_ID}.png")
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert(obs, info))
                frames.append(annotated_mosaic(obs, info))
                done = terminated or truncated
            frames.extend([frames[-1]] * 3)  # hold the final pose for a moment
    finally:
        env.close()
    return [png, write_video(frames, out_dir / "cable_expert.gif", fps=4)]


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate, steps to success (median, max), penetration and failure reasons."""
    success = [r for r in rows if r["success"]]
    return {
        "episodes": len(rows),
        "successes": len(success),
        "success_rate": len(success) / len(rows) if rows else math.nan,
        "median_steps_to_success": common.median([r["steps"] for r in success]),
        "max_steps_to_success": max((r["steps"] for r in success), default=None),
        "max_penetration_m": max((r["max_penetration_m"] for r in rows), default=math.nan),
        "median_max_penetration_m": common.median([r["max_penetration_m"] for r in rows]),
        "failed_seeds": [r["seed"] for r in rows if not r["success"]],
        "left_safety_box": sum(r["left_safety_box"] for r in rows),
        "sim_unstable": sum(r["sim_unstable"] for r in rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line entry; returns the JSON document it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32,
                        help="camera resolution of the expert episodes (px)")
    parser.add_argument("--throughput-steps", type=int, default=300,
                        help="env.step calls timed at --throughput-size (0: skip)")
    parser.add_argument("--throughput-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--media", type=Path, default=None,
                        help="also write the sample PNG and expert GIF into this directory")
    parser.add_argument("--media-episodes", type=int, default=3)
    parser.add_argument("--env-id", default=ENV_ID, help="a registered cable insertion id")
    parser.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE",
                        help="env option (repeatable), value a Python literal")
    parser.add_argument("--name", default=None,
                        help="result file stem (default: from --env-id and --env-option)")
    args = parser.parse_args(argv)
    try:
        options = parse_env_options(args.env_option)
    except ValueError as e:
        parser.error(str(e))
    if args.media is not None and (options or args.env_id != ENV_ID):
        parser.error("--media writes the default env's figures; not with --env-id/--env-option")
    name = args.name or result_name(args.env_id, options)

    rows = run_episodes(args.episodes, args.seed, args.image_size, args.env_id, **options)
    summary = summarize(rows)
    throughput = (measure_throughput(args.throughput_steps, args.throughput_size, args.seed,
                                     args.env_id, **options)
                  if args.throughput_steps > 0 else None)
    env_options = {k: v for k, v in env_class(args.env_id).default_options().items()
                   if k in ("cable_segments", "joint_stiffness", "joint_damping",
                            "max_total_bend", "gripper_height_range")} | options
    doc = {
        "benchmark": "expert_cable",
        "env_id": args.env_id,
        "env_options": env_options,
        "config": vars(args) | {"out": str(args.out), "media": args.media and str(args.media)},
        "note": (f"expert episodes rendered at {args.image_size} px: the expert reads the "
                 "true keypoints, not pixels; physics and outcomes do not depend on the "
                 "image size"),
        "summary": summary,
        "throughput": throughput,
        "targets": TARGETS,
        "rows": rows,
        "machine": common.machine_info(),
    }
    common.write_csv(args.out / f"{name}.csv", rows, CSV_COLUMNS)
    common.write_json(args.out / f"{name}.json", doc)

    print(f"{args.env_id} {options or ''} scripted expert, {summary['episodes']} seeded episodes "
          f"(seeds {args.seed}..{args.seed + args.episodes - 1}), rendered at {args.image_size} px "
          "(the expert uses privileged state, not pixels)")
    print(f"  success rate            {summary['success_rate']:.1%} "
          f"({summary['successes']}/{summary['episodes']})")
    print(f"  steps to success        median {summary['median_steps_to_success']:.1f}, "
          f"max {summary['max_steps_to_success']} (limit {MAX_EPISODE_STEPS})")
    print(f"  max penetration         {1000 * summary['max_penetration_m']:.2f} mm "
          f"(median per episode {1000 * summary['median_max_penetration_m']:.2f} mm)")
    if summary["failed_seeds"]:
        print(f"  failed seeds            {summary['failed_seeds']}")
    if throughput:
        print(f"  env.step at {throughput['image_size']} px, 4 cameras: "
              f"{throughput['steps_per_s']:.1f} steps/s "
              f"(chunk median {throughput['step_ms']['median']:.1f} ms/step; "
              f"reset {throughput['reset_ms']:.1f} ms)")
    print(f"  wrote {args.out / f'{name}.csv'} and {args.out / f'{name}.json'}")
    if args.media is not None:
        for path in write_media(args.media, args.seed, args.media_episodes):
            print(f"  wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return doc


if __name__ == "__main__":
    main()
