"""Keypoint-wrapped env throughput: steps/s of ``KeypointReward(KeypointObservation(env))``.

The env an agent on keypoints sees: ``gymnasium.make(env_id)`` (with its standard wrappers)
inside :class:`~s3k_envs.wrappers.keypoints.KeypointObservation` (the S3K model on all C
views, one batch per step, + weighted triangulation) inside
:class:`~s3k_envs.wrappers.rewards.KeypointReward` (the env's success rule on the predicted
keypoints; ``KeypointReward.cable_insert`` for ``S3K-CableInsert-v0``). Default: the cable
task at its default settings, 4 cameras at 128 px.

For every torch thread count in ``--threads`` this measures, as the median over
``--repeats`` repeats of the mean per control step over ``--steps`` steps (after
``--warmup`` steps, seeded uniform random actions, resets excluded from the timing):

* **step**: ``step()`` of the outermost wrapper, everything included (``steps_per_s`` =
  1000 / step ms);
* **env**: the plain env's ``step()`` (physics + rendering of the C views + the env's own
  work: keypoints, visibility ray casts, info), timed by a thin wrapper right below
  ``KeypointObservation`` in the same loop;
* **inference**: ``KeypointPredictor.predict`` (network + decoding + triangulation), timed
  around the predictor in the same loop;
* **wrappers**: the rest (``step - env - inference``): observation/info dicts, clipping,
  the keypoint reward.

The model is the shipped checkpoint of the env when there is one (or ``--checkpoint``);
otherwise a randomly initialised model with ``s3k train``'s default architecture (inference
time does not depend on the weights). The acceptance bar is ``>= 25`` steps/s
(:data:`MIN_STEPS_PER_S`) for the cable env at 4 x 128 px.

Outputs (atomically) in ``--out`` (default ``benchmarks/results/``): ``wrapped_step.csv``,
``wrapped_step.json`` (rows, machine info, the command, the verdict) and
``wrapped_step.png``. A Markdown table goes to stdout, progress to stderr.

Usage::

    MUJOCO_GL=egl python -m benchmarks.wrapped_step [--quick] [--threads 1 2]
        [--env S3K-CableInsert-v0] [--size 128] [--checkpoint PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import gymnasium as gym
import numpy as np
import torch

import s3k_envs  # noqa: F401  (registers the S3K envs)
from benchmarks import common
from s3k_envs.checkpoints import default_checkpoint
from s3k_envs.keypoints.model import build_model
from s3k_envs.keypoints.predictor import KeypointPredictor, Prediction
from s3k_envs.keypoints.train import TrainConfig, model_config
from s3k_envs.wrappers.keypoints import KeypointObservation
from s3k_envs.wrappers.rewards import KeypointReward, KeypointTerm

DEFAULT_ENV = "S3K-CableInsert-v0"
DEFAULT_STEPS, QUICK_STEPS = 200, 30
DEFAULT_WARMUP, QUICK_WARMUP = 10, 3
DEFAULT_REPEATS, QUICK_REPEATS = 3, 1
#: Acceptance bar: wrapped steps per second on the cable env at 4 cameras x 128 px.
MIN_STEPS_PER_S = 25.0

CSV_COLUMNS = (
    "env_id", "image_size", "num_cameras", "torch_threads", "steps_per_s", "step_ms",
    "env_ms", "inference_ms", "wrappers_ms", "n_steps", "repeats",
)
TABLE_COLUMNS: list[tuple[str, str, Any]] = [
    ("env_id", "env", lambda v: f"`{v}`"),
    ("image_size", "px", "d"),
    ("num_cameras", "cams", "d"),
    ("torch_threads", "threads", "d"),
    ("steps_per_s", "steps/s", ".1f"),
    ("step_ms", "step ms", ".2f"),
    ("env_ms", "env (physics+render) ms", ".2f"),
    ("inference_ms", "inference ms", ".2f"),
    ("wrappers_ms", "wrappers ms", ".2f"),
]


@dataclass(frozen=True)
class Config:
    """What to measure and how often."""

    env_id: str
    image_size: int
    num_cameras: int
    threads: tuple[int, ...]
    steps: int
    repeats: int
    warmup: int
    seed: int
    checkpoint: Path | None
    out: Path


# ---------------------------------------------------------------------------- timing probes
class EnvTimer(gym.Wrapper):
    """Adds the seconds spent in the wrapped env's ``step`` to :attr:`seconds`."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seconds = 0.0

    def step(self, action: Any) -> Any:
        t0 = time.perf_counter()
        out = self.env.step(action)
        self.seconds += time.perf_counter() - t0
        return out


class TimedPredictor:
    """A :class:`KeypointPredictor` whose ``predict`` adds its seconds to :attr:`seconds`."""

    def __init__(self, predictor: KeypointPredictor) -> None:
        self.inner = predictor
        self.keypoint_names = predictor.keypoint_names
        self.num_cameras = predictor.num_cameras
        self.image_size = predictor.image_size
        self.seconds = 0.0

    def predict(self, images: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray
                ) -> Prediction:
        """:meth:`KeypointPredictor.predict`, timed."""
        t0 = time.perf_counter()
        out = self.inner.predict(images, intrinsics, extrinsics)
        self.seconds += time.perf_counter() - t0
        return out


# ---------------------------------------------------------------------------- setup
def load_predictor(cfg: Config, env: gym.Env) -> tuple[KeypointPredictor, str]:
    """The model to time and a description of where it came from.

    ``--checkpoint``, else the env's shipped checkpoint, else a randomly initialised model of
    the default ``s3k train`` architecture for the env's keypoints, cameras and image size.
    """
    if cfg.checkpoint is not None:
        return KeypointPredictor.load(cfg.checkpoint), f"checkpoint {cfg.checkpoint}"
    try:
        path = default_checkpoint(cfg.env_id)
        predictor = KeypointPredictor.load(path)
        if (predictor.num_cameras, predictor.image_size) == (
                cfg.num_cameras, (cfg.image_size, cfg.image_size)):
            return predictor, f"shipped checkpoint {path}"
    except FileNotFoundError:
        pass
    u = env.unwrapped
    config = model_config(TrainConfig(), u.keypoint_names, cfg.num_cameras,
                          (cfg.image_size, cfg.image_size), cfg.env_id)
    torch.manual_seed(0)
    return (KeypointPredictor(build_model(config), config),
            "random init, default s3k train architecture (timing does not depend on weights)")


def reward_wrapper(env: gym.Env) -> KeypointReward:
    """The env's success rule on the predicted keypoints (cable: the insertion rule; other
    envs: gripper to their target keypoint, success < ``success_distance``)."""
    u = env.unwrapped
    if "plug_tip" in getattr(u, "keypoint_names", ()):
        return KeypointReward.cable_insert(env)
    target = u.options.get("target_keypoint", u.keypoint_names[0])
    return KeypointReward(env, [KeypointTerm(target, obs_key="gripper_pos")],
                          success_threshold=u.options.get("success_distance", 0.01))


def _random_actions(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(count, 6)).astype(np.float32)


# ---------------------------------------------------------------------------- measurement
def measure(cfg: Config, threads: int) -> dict[str, Any]:
    """One result row: step / env / inference / wrapper ms at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    base = gym.make(cfg.env_id, image_size=cfg.image_size, num_cameras=cfg.num_cameras)
    timer = EnvTimer(base)
    predictor, model_source = load_predictor(cfg, base)
    timed = TimedPredictor(predictor)
    env = reward_wrapper(KeypointObservation(timer, timed))  # type: ignore[arg-type]
    actions = _random_actions(cfg.seed, cfg.warmup + cfg.steps * cfg.repeats)
    reset_s: list[float] = []
    times: dict[str, list[float]] = {"step_ms": [], "env_ms": [], "inference_ms": []}
    idx = 0
    try:
        env.reset(seed=cfg.seed)

        def run(n: int) -> float:
            """``n`` timed steps; resets are untimed and their prediction is not counted."""
            nonlocal idx
            total = 0.0
            for _ in range(n):
                action = actions[idx % len(actions)]
                idx += 1
                t0 = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                total += time.perf_counter() - t0
                if terminated or truncated:
                    inference_s = timed.seconds
                    t1 = time.perf_counter()
                    env.reset()
                    reset_s.append(time.perf_counter() - t1)
                    timed.seconds = inference_s
            return total

        run(cfg.warmup)
        for _ in range(cfg.repeats):
            gc.collect()
            timer.seconds = timed.seconds = 0.0
            step_s = run(cfg.steps)
            times["step_ms"].append(1e3 * step_s / cfg.steps)
            times["env_ms"].append(1e3 * timer.seconds / cfg.steps)
            times["inference_ms"].append(1e3 * timed.seconds / cfg.steps)
        env.unwrapped._render_images()  # make its GL context current for the query
        gl = common.gl_renderer_info()
    finally:
        env.close()
    step_ms = common.median(times["step_ms"])
    env_ms = common.median(times["env_ms"])
    inference_ms = common.median(times["inference_ms"])
    return {
        "env_id": cfg.env_id,
        "image_size": cfg.image_size,
        "num_cameras": cfg.num_cameras,
        "torch_threads": threads,
        "steps_per_s": 1e3 / step_ms,
        "step_ms": step_ms,
        "env_ms": env_ms,
        "inference_ms": inference_ms,
        "wrappers_ms": step_ms - env_ms - inference_ms,
        "n_steps": cfg.steps,
        "repeats": cfg.repeats,
        # JSON-only details
        "model": model_source,
        "keypoint_names": list(predictor.keypoint_names),
        "warmup": cfg.warmup,
        "reset_ms": common.median([1e3 * s for s in reset_s]),
        "n_resets": len(reset_s),
        "step_ms_repeats": times["step_ms"],
        "env_ms_repeats": times["env_ms"],
        "inference_ms_repeats": times["inference_ms"],
        "gl": gl,
    }


# ---------------------------------------------------------------------------- reporting
def check_target(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The acceptance verdict per row of the cable env at 4 cameras x 128 px."""
    return [{"env_id": r["env_id"], "image_size": r["image_size"],
             "num_cameras": r["num_cameras"], "torch_threads": r["torch_threads"],
             "min_steps_per_s": MIN_STEPS_PER_S, "steps_per_s": r["steps_per_s"],
             "passed": bool(r["steps_per_s"] >= MIN_STEPS_PER_S)}
            for r in rows
            if (r["env_id"], r["image_size"], r["num_cameras"]) == (DEFAULT_ENV, 128, 4)]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Stacked bars per thread count: env (physics + render), inference, wrappers (ms)."""
    plt = common.use_agg()
    fig, ax = plt.subplots(figsize=(1.9 * len(rows) + 3.0, 4.2))
    x = np.arange(len(rows))
    env_ms = np.array([r["env_ms"] for r in rows])
    inf_ms = np.array([r["inference_ms"] for r in rows])
    wrap_ms = np.array([max(r["wrappers_ms"], 0.0) for r in rows])
    ax.bar(x, env_ms, 0.55, label="env step (physics + render + env)", color="#55a868")
    ax.bar(x, inf_ms, 0.55, bottom=env_ms, label="keypoint inference", color="#4c72b0")
    ax.bar(x, wrap_ms, 0.55, bottom=env_ms + inf_ms, label="wrappers", color="#c4ad66")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['steps_per_s']:.0f} steps/s", (i, r["step_ms"]), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9)
    bar_ms = 1e3 / MIN_STEPS_PER_S
    ax.axhline(bar_ms, color="grey", lw=0.8, ls="--",
               label=f"{bar_ms:.0f} ms ({MIN_STEPS_PER_S:.0f} steps/s bar)")
    ax.set_xticks(x, [f"{r['torch_threads']} thread{'s' * (r['torch_threads'] > 1)}"
                      for r in rows])
    r0 = rows[0]
    ax.set_title(f"KeypointReward(KeypointObservation({r0['env_id']})), {r0['num_cameras']} x "
                 f"{r0['image_size']} px", fontsize=10)
    ax.set_ylabel("ms per control step (median of repeats)")
    ax.set_ylim(0, max(bar_ms, float(max(r["step_ms"] for r in rows))) * 1.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    try:
        return common.save_figure(fig, path)
    finally:
        plt.close(fig)


def write_results(rows: list[dict[str, Any]], cfg: Config, verdicts: list[dict[str, Any]],
                  machine: dict[str, Any]) -> list[Path]:
    """Write ``wrapped_step.{csv,json,png}`` into ``cfg.out``; returns the paths."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    return [
        common.write_csv(cfg.out / "wrapped_step.csv", rows, CSV_COLUMNS),
        common.write_json(cfg.out / "wrapped_step.json", {
            "benchmark": "wrapped_step", "machine": machine, "config": config,
            "columns": list(CSV_COLUMNS), "rows": rows, "targets": verdicts}),
        plot(rows, cfg.out / "wrapped_step.png"),
    ]


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse the command line into a :class:`Config`."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.wrapped_step",
        description="steps/s of a keypoint-wrapped env, split into env step and inference.")
    p.add_argument("--env", default=DEFAULT_ENV, help="env id (default %(default)s)")
    p.add_argument("--size", type=int, default=128, help="image size, px (default 128)")
    p.add_argument("--cameras", type=int, default=4, help="cameras (default 4)")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch thread counts to measure (default 1 2; --quick 1)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"timed steps per repeat (default {DEFAULT_STEPS}, --quick "
                        f"{QUICK_STEPS})")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"repeats, median reported (default {DEFAULT_REPEATS}, --quick "
                        f"{QUICK_REPEATS})")
    p.add_argument("--warmup", type=int, default=None,
                   help=f"untimed warm-up steps (default {DEFAULT_WARMUP}, --quick "
                        f"{QUICK_WARMUP})")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model to time (default: the env's shipped checkpoint, else a random "
                        "model of the default architecture)")
    p.add_argument("--seed", type=int, default=0, help="seed of resets and actions")
    p.add_argument("--quick", action="store_true", help="few steps, 1 thread: a smoke test")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR,
                   help="output directory (default benchmarks/results)")
    a = p.parse_args(argv)
    steps = a.steps if a.steps is not None else (QUICK_STEPS if a.quick else DEFAULT_STEPS)
    repeats = a.repeats if a.repeats is not None else (
        QUICK_REPEATS if a.quick else DEFAULT_REPEATS)
    warmup = a.warmup if a.warmup is not None else (QUICK_WARMUP if a.quick else DEFAULT_WARMUP)
    threads = tuple(a.threads) if a.threads else ((1,) if a.quick else (1, 2))
    if min(steps, repeats, a.cameras, *threads) < 1 or warmup < 0:
        p.error("--steps, --repeats, --cameras and --threads must be >= 1, --warmup >= 0")
    if a.env not in gym.registry:
        p.error(f"unknown env id {a.env!r}; S3K envs: "
                + ", ".join(e for e in gym.registry if e.startswith("S3K-")))
    return Config(env_id=a.env, image_size=a.size, num_cameras=a.cameras, threads=threads,
                  steps=steps, repeats=repeats, warmup=warmup, seed=a.seed,
                  checkpoint=a.checkpoint, out=a.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    cfg = parse_args(argv)
    rows = []
    for threads in cfg.threads:
        print(f"{cfg.env_id} @ {cfg.image_size} px x {cfg.num_cameras} cams, {threads} torch "
              "thread(s) ...", end=" ", file=sys.stderr, flush=True)
        row = measure(cfg, threads)
        rows.append(row)
        print(f"{row['steps_per_s']:.1f} steps/s (env {row['env_ms']:.1f} ms, inference "
              f"{row['inference_ms']:.1f} ms, wrappers {row['wrappers_ms']:.1f} ms)",
              file=sys.stderr, flush=True)
    verdicts = check_target(rows)
    machine = common.machine_info()
    gl = next((r["gl"] for r in rows if r.get("gl")), None)
    if gl:
        machine["gl"] = gl
    machine["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    paths = write_results(rows, cfg, verdicts, machine)
    print(common.markdown_table(rows, TABLE_COLUMNS))
    print()
    print(f"Machine: {machine['cpu_model']}, {machine['usable_cores']} cores, load average "
          f"{machine['load_average']}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
          f"{' (' + gl['renderer'] + ')' if gl else ''}; model: {rows[0]['model']}; "
          f"{cfg.steps} steps x {cfg.repeats} repeats (median).")
    for v in verdicts:
        status = "PASS" if v["passed"] else "FAIL"
        print(f"Bar {v['env_id']} @ {v['image_size']} px x {v['num_cameras']} cams, "
              f"{v['torch_threads']} thread(s): >= {v['min_steps_per_s']:.0f} steps/s: "
              f"{v['steps_per_s']:.1f} -> {status}")
    sys.stdout.flush()
    print("Wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
