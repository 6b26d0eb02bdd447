"""Env throughput: ``env.step`` of the multi-view envs against its floor (physics + rendering).

For every env id and image size (C cameras, 4 by default) this measures, each as the median
over ``--repeats`` repeats of the mean time per control step over ``--steps`` steps, after a
warm-up of ``--warmup`` steps:

* **step**: ``env.step`` of the env made by ``gymnasium.make`` (with its standard wrappers),
  with seeded uniform random actions. When an episode ends the env is reset; resets are
  timed separately (``reset_ms`` in the JSON) and not counted in the step time.
* **physics**: the simulation floor, ``n_substeps`` calls of ``mujoco.mj_step`` per control
  step on the env's model/data, with the gripper's mocap target set before each substep to
  the pose ``env.step`` gives it for the same random command (the target is kinematic, so
  its path is precomputed untimed; the timed loop holds two array writes + ``mj_step``).
* **render**: the observation floor, ``env.unwrapped._render_images()`` (all C views in one
  offscreen framebuffer, one read-back) of the state the physics left.

The floor runs on a second instance of the env (same options and seed), so that the step
loop and the floor loop never disturb each other's state, and the two loops alternate in
chunks of ``--chunk`` steps so that both see the same machine load (this matters on a busy
machine: the ratio stays stable while absolute times drift). Each alternation switches GL
context once, which costs llvmpipe about 1–2 ms on the next render of each loop; with the
default chunk of 10 that adds ~0.1–0.2 ms per step to both sides (a larger ``--chunk``
lowers it, at the price of less even load sharing).

``floor = physics + render`` and ``ratio_to_floor = step / floor``; ``overhead = step - floor``
is what ``env.step`` spends on top (action checks, state save, mocap trajectory, instability
check, keypoints, visibility ray casts, observation/info dicts, wrappers).

Outputs (written atomically) in ``--out`` (default ``benchmarks/results/``):
``throughput.csv``, ``throughput.json`` (rows + machine info) and ``throughput.png``. A
Markdown table of the results goes to stdout; progress goes to stderr.

Usage::

    MUJOCO_GL=egl python -m benchmarks.throughput [--envs ...] [--sizes 64 128 256]
        [--steps N] [--repeats R] [--quick] [--out benchmarks/results]
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
import mujoco
import numpy as np

import s3k_envs  # noqa: F401  (registers the S3K envs)
from benchmarks import common

DEFAULT_ENVS = ("S3K-Box-v0", "S3K-BoxDistractors-v0", "S3K-CableInsert-v0", "S3K-Shoes-v0")
DEFAULT_SIZES = (64, 128, 256)
DEFAULT_STEPS, QUICK_STEPS = 200, 50
DEFAULT_REPEATS = 3
DEFAULT_WARMUP, QUICK_WARMUP = 10, 5
DEFAULT_CHUNK = 10

#: Columns of ``throughput.csv`` (the JSON rows hold these and a few more).
CSV_COLUMNS = (
    "env_id", "image_size", "num_cameras", "steps_per_s", "step_ms", "physics_ms",
    "render_ms", "floor_ms", "ratio_to_floor", "n_steps", "repeats",
)

#: Acceptance targets of the throughput issue: (env id, image size, cameras) -> limits.
TARGETS = {
    ("S3K-Box-v0", 128, 4): {"min_steps_per_s": 100.0, "max_ratio_to_floor": 1.3},
}


@dataclass(frozen=True)
class Config:
    """What to measure and how often."""

    envs: tuple[str, ...]
    sizes: tuple[int, ...]
    num_cameras: int
    steps: int
    repeats: int
    warmup: int
    chunk: int
    seed: int
    out: Path


# ---------------------------------------------------------------------------- measurements
def _random_actions(seed: int, count: int) -> np.ndarray:
    """``(count, 6)`` float32 uniform actions in [-1, 1], the same for step and floor."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(count, 6)).astype(np.float32)


class StepRunner:
    """Times ``env.step`` of a ``gymnasium.make`` env (with its wrappers), resets excluded.

    Each call of :meth:`run` continues the same episode stream; when an episode ends the
    env is reset (timed separately, in ``reset_s``).
    """

    def __init__(self, env: gym.Env, actions: np.ndarray, seed: int) -> None:
        self.env, self.actions = env, actions
        self.reset_s: list[float] = []
        self._idx = 0
        env.reset(seed=seed)

    def run(self, n: int) -> float:
        """Take ``n`` steps; returns the seconds spent in ``env.step``."""
        env, actions = self.env, self.actions
        total = 0.0
        for _ in range(n):
            action = actions[self._idx % len(actions)]
            self._idx += 1
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            total += time.perf_counter() - t0
            if terminated or truncated:
                t0 = time.perf_counter()
                env.reset()
                self.reset_s.append(time.perf_counter() - t0)
        return total


def mocap_plan(u: Any, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mocap target poses after every substep of the control steps ``actions`` ``(S, 6)``.

    The target is kinematic (physics never moves it), so its whole path follows from its
    current pose and the commands; it is computed like ``env.step`` does (constant
    world-frame velocity over a control period, position clipped to the gripper bounds).

    Returns:
        positions ``(S, n_substeps, 3)`` m and w-first quaternions ``(S, n_substeps, 4)``.
    """
    d, n_sub = u.data, int(u.n_substeps)
    lo, hi = (np.asarray(b, dtype=np.float64) for b in u.gripper_bounds)
    t = np.arange(1, n_sub + 1)[:, None] * u.model.opt.timestep  # (n, 1) s
    pos = d.mocap_pos[u._mocap_id].copy()
    quat = d.mocap_quat[u._mocap_id].copy()
    positions = np.empty((len(actions), n_sub, 3))
    quats = np.empty((len(actions), n_sub, 4))
    for j, action in enumerate(actions.astype(np.float64)):
        lin = action[:3] * u.options["max_linear_speed"]
        ang = action[3:] * u.options["max_angular_speed"]
        positions[j] = np.clip(pos + t * lin, lo, hi)
        speed = float(np.linalg.norm(ang))
        half = 0.5 * speed * t
        axis = ang / speed if speed > 0 else np.zeros(3)
        w1, v1 = np.cos(half), np.sin(half) * axis  # (n, 1), (n, 3): exp(ang t)
        w0, v0 = quat[0], quat[1:]
        q = np.concatenate([w1 * w0 - v1 @ v0[:, None], w1 * v0 + w0 * v1 + np.cross(v1, v0)],
                           axis=1)
        quats[j] = q / np.linalg.norm(q, axis=1, keepdims=True)
        pos, quat = positions[j, -1], quats[j, -1]
    return positions, quats


class FloorRunner:
    """Times the floor of a control step on a second instance of the env, phase by phase:

    * physics: ``n_substeps`` ``mj_step`` calls on the env's model/data, the gripper's mocap
      target set before each substep to the pose ``env.step`` would give it for the same
      command (precomputed per episode by :func:`mocap_plan`, untimed, so the timed loop
      holds only two array writes and ``mj_step`` per substep);
    * render: ``env.unwrapped._render_images()`` of the resulting state (all C views).

    The env is reset (untimed) every ``episode_len`` control steps, like the step loop's
    truncation, so the physics sees the same kind of states.
    """

    def __init__(self, env: gym.Env, actions: np.ndarray, seed: int) -> None:
        u = self.u = env.unwrapped
        self.actions = actions
        self.n_substeps = int(u.n_substeps)
        self.episode_len = (env.spec.max_episode_steps if env.spec else None) or 50
        self._idx = 0
        u.reset(seed=seed)
        self._plan()

    def _plan(self) -> None:
        """Plan the mocap path of the next episode from the current pose (untimed)."""
        idx = np.arange(self._idx, self._idx + self.episode_len) % len(self.actions)
        self._positions, self._quats = mocap_plan(self.u, self.actions[idx])
        self._step_in_episode = 0

    def run(self, n: int) -> tuple[float, float]:
        """Run ``n`` control steps; returns seconds of (physics, render)."""
        u = self.u
        m, d = u.model, u.data
        render, mj_step = u._render_images, mujoco.mj_step
        mpos = d.mocap_pos[u._mocap_id]
        mquat = d.mocap_quat[u._mocap_id]
        physics_s = render_s = 0.0
        for _ in range(n):
            positions = self._positions[self._step_in_episode]
            quats = self._quats[self._step_in_episode]
            t0 = time.perf_counter()
            for p, q in zip(positions, quats, strict=True):
                mpos[:] = p
                mquat[:] = q
                mj_step(m, d)
            t1 = time.perf_counter()
            render()
            t2 = time.perf_counter()
            physics_s += t1 - t0
            render_s += t2 - t1
            self._idx += 1
            self._step_in_episode += 1
            if self._step_in_episode == self.episode_len:
                u.reset()
                mpos = d.mocap_pos[u._mocap_id]
                mquat = d.mocap_quat[u._mocap_id]
                self._plan()
        return physics_s, render_s


def measure(step: StepRunner, floor: FloorRunner, cfg: Config) -> dict[str, list[float]]:
    """Per-repeat mean ms of step, physics and render.

    Within a repeat the step loop and the floor loop alternate in chunks of
    ``cfg.chunk`` control steps, so both see the same machine load (this machine may be
    busy with other work); each repeat takes ``cfg.steps`` steps of each.
    """
    step.run(cfg.warmup)
    floor.run(cfg.warmup)
    step.reset_s.clear()
    out: dict[str, list[float]] = {"step_ms": [], "physics_ms": [], "render_ms": []}
    for _ in range(cfg.repeats):
        gc.collect()
        step_s = physics_s = render_s = 0.0
        done = 0
        while done < cfg.steps:
            n = min(cfg.chunk, cfg.steps - done)
            step_s += step.run(n)
            p, r = floor.run(n)
            physics_s, render_s = physics_s + p, render_s + r
            done += n
        out["step_ms"].append(1e3 * step_s / cfg.steps)
        out["physics_ms"].append(1e3 * physics_s / cfg.steps)
        out["render_ms"].append(1e3 * render_s / cfg.steps)
    return out


def benchmark(env_id: str, size: int, cfg: Config) -> dict[str, Any]:
    """One result row: step, physics and render timings of ``env_id`` at ``size`` px.

    Two instances of the env are made with the same options and seed: one for the step
    loop, one for the floor, so that neither disturbs the other's state.
    """
    actions = _random_actions(cfg.seed, cfg.warmup + cfg.steps * cfg.repeats)
    kwargs = {"image_size": size, "num_cameras": cfg.num_cameras}
    env = gym.make(env_id, **kwargs)
    floor_env = gym.make(env_id, **kwargs)
    try:
        step = StepRunner(env, actions, cfg.seed)
        floor = FloorRunner(floor_env, actions, cfg.seed)
        times = measure(step, floor, cfg)
        floor_env.unwrapped._render_images()  # make its GL context current for the query
        gl = common.gl_renderer_info()
        u = env.unwrapped
        timestep, control_hz = float(u.model.opt.timestep), float(u.options["control_hz"])
    finally:
        floor_env.close()
        env.close()
    step_ms = common.median(times["step_ms"])
    physics_ms = common.median(times["physics_ms"])
    render_ms = common.median(times["render_ms"])
    floor_ms = physics_ms + render_ms
    ratios = [s / (p + r) for s, p, r in
              zip(times["step_ms"], times["physics_ms"], times["render_ms"], strict=True)]
    return {
        "env_id": env_id,
        "image_size": size,
        "num_cameras": cfg.num_cameras,
        "steps_per_s": 1e3 / step_ms,
        "step_ms": step_ms,
        "physics_ms": physics_ms,
        "render_ms": render_ms,
        "floor_ms": floor_ms,
        "ratio_to_floor": step_ms / floor_ms,
        "n_steps": cfg.steps,
        "repeats": cfg.repeats,
        # JSON-only details
        "overhead_ms": step_ms - floor_ms,
        "reset_ms": common.median([1e3 * s for s in step.reset_s]),
        "n_resets": len(step.reset_s),
        "n_substeps": floor.n_substeps,
        "timestep_s": timestep,
        "control_hz": control_hz,
        "warmup": cfg.warmup,
        "step_ms_repeats": times["step_ms"],
        "physics_ms_repeats": times["physics_ms"],
        "render_ms_repeats": times["render_ms"],
        "ratio_to_floor_repeats": ratios,
        "gl": gl,
    }


def check_targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compare rows against :data:`TARGETS`; one verdict per target that was measured."""
    verdicts = []
    for (env_id, size, cams), limits in TARGETS.items():
        for row in rows:
            if (row["env_id"], row["image_size"], row["num_cameras"]) != (env_id, size, cams):
                continue
            fast = row["steps_per_s"] >= limits["min_steps_per_s"]
            close = row["ratio_to_floor"] <= limits["max_ratio_to_floor"]
            verdicts.append({
                "env_id": env_id, "image_size": size, "num_cameras": cams, **limits,
                "steps_per_s": row["steps_per_s"], "ratio_to_floor": row["ratio_to_floor"],
                "passed": bool(fast and close),
            })
    return verdicts


# ---------------------------------------------------------------------------- reporting
TABLE_COLUMNS: list[tuple[str, str, Any]] = [
    ("env_id", "env", lambda v: f"`{v}`"),
    ("image_size", "px", "d"),
    ("num_cameras", "cams", "d"),
    ("steps_per_s", "steps/s", ".0f"),
    ("step_ms", "step ms", ".2f"),
    ("physics_ms", "physics ms", ".2f"),
    ("render_ms", "render ms", ".2f"),
    ("overhead_ms", "overhead ms", ".2f"),
    ("floor_ms", "floor ms", ".2f"),
    ("ratio_to_floor", "step / floor", ".2f"),
]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars per env: step time vs floor (physics + render stacked) per image size."""
    plt = common.use_agg()
    envs = list(dict.fromkeys(r["env_id"] for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(5.2 * len(envs), 4.2), squeeze=False,
                             sharey=True)
    width = 0.38
    for ax, env_id in zip(axes[0], envs, strict=True):
        env_rows = sorted((r for r in rows if r["env_id"] == env_id),
                          key=lambda r: r["image_size"])
        x = np.arange(len(env_rows))
        step = np.array([r["step_ms"] for r in env_rows])
        phys = np.array([r["physics_ms"] for r in env_rows])
        rend = np.array([r["render_ms"] for r in env_rows])
        bars = ax.bar(x - width / 2, step, width, label="env.step", color="#4c72b0")
        ax.bar(x + width / 2, phys, width, label="floor: physics", color="#55a868")
        ax.bar(x + width / 2, rend, width, bottom=phys, label="floor: render", color="#c4ad66")
        for bar, r in zip(bars, env_rows, strict=True):
            ax.annotate(f"{r['steps_per_s']:.0f}/s\n×{r['ratio_to_floor']:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
        ax.axhline(10.0, color="grey", lw=0.8, ls="--", label="10 ms (100 steps/s)")
        ax.set_xticks(x, [f"{r['image_size']} px" for r in env_rows])
        cams = env_rows[0]["num_cameras"]
        ax.set_title(f"{env_id} ({cams} cameras)", fontsize=10)
        ax.set_xlabel("image size per camera")
        ax.margins(y=0.18)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("ms per control step (median of repeats)")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("env.step vs floor (annotated: steps/s, step/floor)", fontsize=11)
    try:
        return common.save_figure(fig, path)
    finally:
        plt.close(fig)


def write_results(rows: list[dict[str, Any]], skipped: list[dict[str, str]], cfg: Config,
                  verdicts: list[dict[str, Any]], machine: dict[str, Any]) -> list[Path]:
    """Write ``throughput.{csv,json,png}`` into ``cfg.out``; returns the paths."""
    out = cfg.out
    paths = [common.write_csv(out / "throughput.csv", rows, CSV_COLUMNS)]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    paths.append(common.write_json(out / "throughput.json", {
        "benchmark": "throughput",
        "machine": machine,
        "config": config,
        "columns": list(CSV_COLUMNS),
        "rows": rows,
        "skipped": skipped,
        "targets": verdicts,
    }))
    paths.append(plot(rows, out / "throughput.png"))
    return paths


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse the command line into a :class:`Config`."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="env.step throughput of the S3K envs vs its physics + rendering floor.",
    )
    p.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), metavar="ENV_ID",
                   help="env ids (unregistered ones are skipped with a note); default: "
                        "%(default)s")
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES), metavar="PX",
                   help="image sizes in pixels (square); default: %(default)s")
    p.add_argument("--cameras", type=int, default=4, help="cameras per env (default 4)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"timed control steps per repeat (default {DEFAULT_STEPS}, "
                        f"--quick {QUICK_STEPS})")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="repeats; the median is reported (default %(default)s)")
    p.add_argument("--warmup", type=int, default=None,
                   help=f"untimed warm-up steps (default {DEFAULT_WARMUP}, "
                        f"--quick {QUICK_WARMUP})")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help="steps per alternation of the step and floor loops (default "
                        "%(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer steps: a smoke test")
    p.add_argument("--seed", type=int, default=0, help="seed of env resets and actions")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR,
                   help="output directory (default benchmarks/results)")
    a = p.parse_args(argv)
    steps = a.steps if a.steps is not None else (QUICK_STEPS if a.quick else DEFAULT_STEPS)
    warmup = a.warmup if a.warmup is not None else (QUICK_WARMUP if a.quick else DEFAULT_WARMUP)
    if min(steps, a.repeats, a.cameras, a.chunk) < 1 or warmup < 0:
        p.error("--steps, --repeats, --cameras and --chunk must be >= 1, --warmup >= 0")
    if any(s < 8 for s in a.sizes):
        p.error(f"--sizes must be >= 8 pixels, got {a.sizes}")
    return Config(envs=tuple(dict.fromkeys(a.envs)), sizes=tuple(dict.fromkeys(a.sizes)),
                  num_cameras=a.cameras, steps=steps, repeats=a.repeats, warmup=warmup,
                  chunk=a.chunk, seed=a.seed, out=a.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1, writing nothing, when no env id was
    registered)."""
    cfg = parse_args(argv)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for env_id in cfg.envs:
        if env_id not in gym.registry:
            note = "not registered (not implemented yet?)"
            print(f"note: skipping {env_id}: {note}", file=sys.stderr)
            skipped.append({"env_id": env_id, "reason": note})
            continue
        for size in cfg.sizes:
            print(f"{env_id} @ {size} px x {cfg.num_cameras} cams ...", end=" ",
                  file=sys.stderr, flush=True)
            row = benchmark(env_id, size, cfg)
            rows.append(row)
            print(f"{row['steps_per_s']:.0f} steps/s, step {row['step_ms']:.2f} ms, "
                  f"floor {row['floor_ms']:.2f} ms (x{row['ratio_to_floor']:.2f})",
                  file=sys.stderr, flush=True)
    if not rows:
        print("error: no env measured (nothing written); registered S3K envs: "
              + ", ".join(e for e in gym.registry if e.startswith("S3K-")), file=sys.stderr)
        return 1
    verdicts = check_targets(rows)
    machine = common.machine_info()
    gl = next((r["gl"] for r in rows if r.get("gl")), None)
    if gl:
        machine["gl"] = gl
    paths = write_results(rows, skipped, cfg, verdicts, machine)
    print(common.markdown_table(rows, TABLE_COLUMNS))
    print()
    print(f"Machine: {machine['cpu_model']}, {machine['usable_cores']} cores, "
          f"MuJoCo {machine['versions']['mujoco']}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
          f"{' (' + gl['renderer'] + ')' if gl else ''}; "
          f"{cfg.steps} steps x {cfg.repeats} repeats (median).")
    for v in verdicts:
        status = "PASS" if v["passed"] else "FAIL"
        print(f"Target {v['env_id']} @ {v['image_size']} px x {v['num_cameras']} cams: "
              f">= {v['min_steps_per_s']:.0f} steps/s and <= {v['max_ratio_to_floor']}x floor: "
              f"{v['steps_per_s']:.0f} steps/s, {v['ratio_to_floor']:.2f}x -> {status}")
    for s in skipped:
        print(f"Skipped {s['env_id']}: {s['reason']}")
    sys.stdout.flush()
    print("Wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
