"""How much does the plug of S3K-CableInsert swing? Pendulum period and amplitude per variant.

The default cable (12 segments of 1.5 cm, joint stiffness 3e-3 N m/rad) hangs the plug ~20 cm
below the gripper; a gripper move sets it swinging, and the agent sees it at 4 Hz. This
benchmark measures, for the default and candidate variants (``cable_segments``,
``joint_stiffness``, ``joint_damping``: see :class:`s3k_envs.envs.cable.CableInsertEnv`):

* at rest after reset (``--episodes`` seeds): the plug tip's depth below the gripper (m), its
  horizontal offset from the gripper's vertical (m) and the plug's tilt from vertical (deg);
* after a 1-step gripper jerk (one control step of the action ``+1`` along world x: the
  gripper target moves 5 cm in 0.25 s and then holds still for ``--hold-steps`` steps), from
  the plug tip's position relative to the gripper at every 2 ms physics substep (read in
  MuJoCo's control callback): ``jerk_lag_m`` (largest horizontal deviation of the tip from its
  rest offset during the jerk), the swing ``period_s`` (mean spacing of the upward crossings of
  its rest offset along x after the jerk; NaN when it crosses fewer than twice: no swing, the
  plug creeps back), ``peak_amplitude_m`` (largest horizontal deviation from the rest
  offset after the jerk has ended), ``decay_per_period`` (ratio of successive peaks),
  ``settle_s`` (time after the jerk until the deviation stays below 1.5 mm, the expert's
  settle threshold; NaN if never within the hold) and, as a 4 Hz agent sees it,
  ``tip_motion_per_step_m`` (the tip's displacement between consecutive control steps,
  maximum over the first 4 steps after the jerk).

Outputs (``--out``, default ``benchmarks/results/``): ``cable_pendulum.csv`` (one row per
variant and seed), ``cable_pendulum.json`` (per-variant medians, options, machine info,
command) and ``cable_pendulum.png`` (the tip's deviation vs time after the jerk, seed 0 of
each variant, with the 4 Hz samples marked).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_pendulum [--episodes 10] [--hold-steps 16]
        [--variants default short short3 stiff10 stiff30]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import mujoco
import numpy as np

from benchmarks import common
from s3k_envs.envs.cable import JOINT_STIFFNESS, CableInsertEnv, CableInsertShortEnv

#: variant name -> (env class, options on top of its defaults). ``default``:
#: S3K-CableInsert-v0; ``short``: S3K-CableInsertShort-v0 (4 segments, bend capped at 1.2 rad,
#: gripper starting 12 cm lower); ``short3``: the same with 3 segments (4.5 cm of cable);
#: ``stiff10`` / ``stiff30``: the default cable with 10x / 30x the joint stiffness.
VARIANTS: dict[str, tuple[type[CableInsertEnv], dict[str, Any]]] = {
    "default": (CableInsertEnv, {}),
    "short": (CableInsertShortEnv, {}),
    "short3": (CableInsertShortEnv, {"cable_segments": 3}),
    "stiff10": (CableInsertEnv, {"joint_stiffness": 10 * JOINT_STIFFNESS}),
    "stiff30": (CableInsertEnv, {"joint_stiffness": 30 * JOINT_STIFFNESS}),
}
#: Deviation (m) below which the swing counts as settled: the expert's ``settle_motion``.
SETTLE_M = 0.0015
CSV_COLUMNS = ("variant", "seed", "tip_depth_m", "tip_offset_m", "plug_tilt_deg", "jerk_lag_m",
               "period_s", "peak_amplitude_m", "decay_per_period", "settle_s",
               "tip_motion_per_step_m")


class TipRecorder:
    """MuJoCo control callback: the plug tip minus the gripper origin ``(3,)`` m at every
    physics substep while installed (``trace``), and the simulated time (s)."""

    def __init__(self, tip_site: int, gripper_body: int) -> None:
        self.tip_site, self.gripper_body = tip_site, gripper_body
        self.trace: list[np.ndarray] = []
        self.times: list[float] = []

    def __call__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.trace.append(data.site_xpos[self.tip_site] - data.xpos[self.gripper_body])
        self.times.append(float(data.time))


def rest_geometry(env: CableInsertEnv) -> dict[str, float]:
    """Where the plug hangs at rest: tip depth below the gripper (m), horizontal offset of the
    tip from the gripper's vertical (m) and the plug's tilt from vertical (deg)."""
    d = env.data
    grip = d.xpos[env.model.body("gripper").id]
    tip = d.site_xpos[env.model.site("plug_tip").id]
    base = d.site_xpos[env.model.site("plug_base").id]
    axis = base - tip
    tilt = math.degrees(math.acos(float(np.clip(axis[2] / np.linalg.norm(axis), -1.0, 1.0))))
    return {"tip_depth_m": float(grip[2] - tip[2]),
            "tip_offset_m": float(np.linalg.norm((tip - grip)[:2])),
            "plug_tilt_deg": tilt}


def swing_stats(times: np.ndarray, deviation: np.ndarray, step_s: float) -> dict[str, float]:
    """Period, peak, decay and settling of a swing.

    Args:
        times: ``(T,)`` s since the end of the jerk, increasing.
        deviation: ``(T, 3)`` tip position relative to the gripper minus its rest value, m.
        step_s: control period, s (the 4 Hz samples are taken every ``step_s``).

    Returns:
        ``period_s`` (mean spacing of upward zero crossings of the x deviation; NaN with
        fewer than 2), ``peak_amplitude_m`` (max horizontal deviation), ``decay_per_period``
        (median ratio of successive positive x peaks; NaN with fewer than 2), ``settle_s``
        (first time after which the horizontal deviation stays below :data:`SETTLE_M`; NaN
        if it never does), ``tip_motion_per_step_m`` (max tip displacement between
        consecutive control-step samples over the first 4 steps).
    """
    x = deviation[:, 0]
    horiz = np.linalg.norm(deviation[:, :2], axis=1)
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    # linear interpolation of the crossing times
    cross = times[up] - x[up] * (times[up + 1] - times[up]) / (x[up + 1] - x[up])
    period = float(np.mean(np.diff(cross))) if len(cross) >= 2 else math.nan
    peaks = []
    for lo, hi in itertools.pairwise(up):  # one positive lobe per crossing pair
        peaks.append(float(x[lo:hi].max()))
    ratios = [b / a for a, b in itertools.pairwise(peaks) if a > 1e-6]
    above = np.flatnonzero(horiz >= SETTLE_M)
    if len(above) == 0:
        settle = 0.0
    elif above[-1] == len(horiz) - 1:
        settle = math.nan
    else:
        settle = float(times[above[-1] + 1])
    samples = np.flatnonzero(np.isclose(np.mod(times + 1e-9, step_s), 0.0, atol=1e-6)
                             | (np.arange(len(times)) == 0))
    sampled = deviation[samples[:5]]
    motion = float(np.linalg.norm(np.diff(sampled, axis=0), axis=1).max()) if len(sampled) > 1 \
        else math.nan
    return {"period_s": period, "peak_amplitude_m": float(horiz.max()),
            "decay_per_period": float(np.median(ratios)) if ratios else math.nan,
            "settle_s": settle, "tip_motion_per_step_m": motion}


def measure(variant: str, seed: int, hold_steps: int
            ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """One jerk on one seeded episode of one variant (a key of :data:`VARIANTS`).

    Returns:
        ``(row, times, deviation)``: the CSV row (rest geometry, ``jerk_lag_m``: the largest
        horizontal deviation during the jerk, and :func:`swing_stats` of what follows), times
        ``(T,)`` s since the end of the jerk (negative during it) and the tip deviation
        ``(T, 3)`` m from its rest offset.
    """
    cls, options = VARIANTS[variant]
    env = cls(images=False, **options)
    try:
        env.reset(seed=seed)
        row: dict[str, Any] = {"variant": variant, "seed": seed, **rest_geometry(env)}
        rec = TipRecorder(env.model.site("plug_tip").id, env.model.body("gripper").id)
        rest = env.data.site_xpos[rec.tip_site] - env.data.xpos[rec.gripper_body]
        jerk = np.array([1.0, 0, 0, 0, 0, 0])
        mujoco.set_mjcb_control(rec)
        try:
            env.step(jerk)
            n_jerk = len(rec.trace)
            env.step(np.zeros(6))  # the sample at the end of the jerk is the hold's first
            for _ in range(hold_steps - 1):
                _, _, terminated, _, info = env.step(np.zeros(6))
                if terminated:
                    why = {k: info[k] for k in ("left_safety_box", "sim_unstable")}
                    raise RuntimeError(f"{variant} seed {seed}: the episode ended during the "
                                       f"hold ({why})")
        finally:
            mujoco.set_mjcb_control(None)
        step_s = 1.0 / float(env.options["control_hz"])
        # The callback runs before each substep's integration: sample i is the state at
        # time times[i]; the jerk ends at the first sample of the hold (times 0).
        times = np.asarray(rec.times) - rec.times[n_jerk]
        deviation = np.asarray(rec.trace) - rest
        row["jerk_lag_m"] = float(np.linalg.norm(deviation[: n_jerk + 1, :2], axis=1).max())
        row.update(swing_stats(times[n_jerk:], deviation[n_jerk:], step_s))
        return row, times, deviation
    finally:
        env.close()


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Median of every numeric column per variant (NaN-aware)."""
    out: dict[str, dict[str, float]] = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == variant]
        out[variant] = {"episodes": len(sel)}
        for col in CSV_COLUMNS[2:]:
            vals = np.array([r[col] for r in sel], dtype=np.float64)
            out[variant][f"median_{col}"] = (float(np.nanmedian(vals)) if np.isfinite(vals).any()
                                             else math.nan)
            out[variant][f"max_{col}"] = (float(np.nanmax(vals)) if np.isfinite(vals).any()
                                          else math.nan)
        out[variant]["settled_episodes"] = int(sum(np.isfinite(r["settle_s"]) for r in sel))
    return out


def plot(traces: Mapping[str, tuple[np.ndarray, np.ndarray]], step_s: float, path: Path) -> None:
    """x deviation of the tip vs time after the jerk, one line per variant, with the 4 Hz
    control-step samples marked."""
    plt = common.use_agg()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, (times, dev) in traces.items():
        (line,) = ax.plot(times, 1000 * dev[:, 0], label=name, lw=1.2)
        idx = [int(np.argmin(np.abs(times - t)))
               for t in np.arange(-step_s, times[-1] + 1e-9, step_s)]
        ax.plot(times[idx], 1000 * dev[idx, 0], "o", color=line.get_color(), ms=4)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvspan(-step_s, 0, color="0.9", zorder=0)
    ax.set_xlabel("time after the 1-step jerk (s; shaded: the jerk); dots: what a 4 Hz agent "
                  "sees")
    ax.set_ylabel("plug tip x - rest, relative to gripper (mm)")
    ax.set_title("Plug swing after a 5 cm / 0.25 s gripper jerk (seed 0)")
    ax.legend()
    common.save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line entry; returns the JSON document written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="seeds per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold-steps", type=int, default=16,
                        help="control steps of zero action after the jerk (4 s at 4 Hz)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.hold_steps < 2:
        parser.error(f"--episodes >= 1 and --hold-steps >= 2 expected, got {args.episodes}, "
                     f"{args.hold_steps}")
    rows: list[dict[str, Any]] = []
    traces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in args.variants:
        for i in range(args.episodes):
            row, times, dev = measure(name, args.seed + i, args.hold_steps)
            rows.append(row)
            if i == 0:
                traces[name] = (times, dev)
    summary = summarize(rows)
    step_s = 1.0 / CableInsertEnv.default_options()["control_hz"]
    doc = {
        "benchmark": "cable_pendulum",
        "config": vars(args) | {"out": str(args.out)},
        "variants": {name: {"env": VARIANTS[name][0].__name__,
                            "options": {k: VARIANTS[name][0].default_options()[k] for k in
                                        ("cable_segments", "joint_stiffness", "joint_damping",
                                         "max_total_bend", "gripper_height_range")}
                            | VARIANTS[name][1]}
                     for name in args.variants},
        "settle_threshold_m": SETTLE_M,
        "jerk": "one control step of action +1 along world x (0.2 m/s for 0.25 s = 5 cm), "
                "then zero actions",
        "summary": summary,
        "rows": rows,
        "machine": common.machine_info(),
    }
    common.write_csv(args.out / "cable_pendulum.csv", rows, CSV_COLUMNS)
    common.write_json(args.out / "cable_pendulum.json", doc)
    plot(traces, step_s, args.out / "cable_pendulum.png")
    print(f"{'variant':10s} {'depth m':>8s} {'tilt deg':>8s} {'lag mm':>7s} {'period s':>8s} "
          f"{'peak mm':>8s} "
          f"{'decay':>6s} {'settle s':>8s} {'mm/step':>8s}  (medians over {args.episodes} seeds)")
    for name, s in summary.items():
        print(f"{name:10s} {s['median_tip_depth_m']:8.3f} {s['median_plug_tilt_deg']:8.1f} "
              f"{1000 * s['median_jerk_lag_m']:7.1f} "
              f"{s['median_period_s']:8.2f} {1000 * s['median_peak_amplitude_m']:8.1f} "
              f"{s['median_decay_per_period']:6.2f} {s['median_settle_s']:8.2f} "
              f"{1000 * s['median_tip_motion_per_step_m']:8.1f}  "
              f"(settled {s['settled_episodes']}/{s['episodes']})")
    print(f"wrote {args.out / 'cable_pendulum.json'} / .csv / .png")
    return doc


if __name__ == "__main__":
    main()
