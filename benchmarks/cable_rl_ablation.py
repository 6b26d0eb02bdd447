"""Which DDPGfD ingredients matter on cable insertion? An ablation on ground-truth keypoints.

Issue 6 asks to repeat, on our task, the ablation that scoped DDPGfD on a toy sparse
insertion task (there, demonstrations helped only together with n-step returns or the
Q-filtered behaviour-cloning term). Each *variant* is one :mod:`benchmarks.cable_rl` run of
the ``gt`` arm (ground-truth keypoints + gripper pose and velocity: the cheapest arm, no
keypoint inference, so differences come from the learner, not from the representation) with
some ingredients switched off:

===================  =======================================================================
variant              DDPGfD settings (the rest: :class:`~benchmarks.cable_rl.config.AgentParams`)
===================  =======================================================================
``ddpgfd``           demonstrations 25 % of every batch, 5-step returns, BC + Q-filter
                     (the defaults)
``no_bc``            demonstrations in the batches and 5-step returns, no BC term
``n1``               demonstrations + BC + Q-filter, 1-step returns
``no_bc_n1``         demonstrations in the batches only (1-step returns, no BC)
``no_demos``         no demonstration samples in the batches and no BC (TD3 with 5-step
                     returns and L2; exploration starts from scratch)
``no_qfilter``       BC on every demonstration sample (no Q-filter)
``bc10_no_qfilter``  BC weight 10, no Q-filter
``bc100_no_qfilter`` BC weight 100, no Q-filter (BC then outweighs ``-mean Q``, ~4 here)
``pretrain``         the defaults after 3,000 DQfD pre-training steps on the demonstrations
``pretrain_bc100``   pre-training + BC weight 100, no Q-filter
===================  =======================================================================

Every variant uses its own work directory ``--work-dir/<variant>`` (cable_rl refuses to mix
runs made with other settings); the 51 demonstrations are recorded once (in the first
variant's directory) and copied to the others -- they depend only on the env, rig and seed,
not on the learner. Resumable like cable_rl: rerun the same command.

Outputs (atomic) in ``--out`` (default ``benchmarks/results``), stem ``cable_rl_ablation``
(``--full``) or ``cable_rl_ablation_<profile>``: ``.csv`` (one row per variant: held-out
success mean / min / max over seeds, final training success), ``.json`` (the same, every
variant's cable_rl summary, machine info, command) and ``.png`` (training success vs env
steps per variant, final held-out success as bars).

Cost: one variant of ``--quick`` = 2 seeds x 2,000 steps at ~25 agent steps/s on an idle
core (measured 10 min per variant with the machine shared by four benchmarks, ~6-8 steps/s),
all seven variants ~20 min on idle cores (+ ~0.5 min demonstrations); ``--full`` = 7 x 5 x
40,000 steps ~15 h on that CPU.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rl_ablation --quick [--variants ddpgfd no_bc]
    MUJOCO_GL=egl python -m benchmarks.cable_rl_ablation --full
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks import common
from s3k_envs.atomic import atomic_directory

#: Variant name -> cable_rl command-line flags.
VARIANTS: dict[str, list[str]] = {
    "ddpgfd": [],
    "no_bc": ["--bc-weight", "0"],
    "n1": ["--n-steps", "1"],
    "no_bc_n1": ["--bc-weight", "0", "--n-steps", "1"],
    "no_demos": ["--demo-fraction", "0", "--bc-weight", "0"],
    "no_qfilter": ["--no-q-filter"],
    "bc10_no_qfilter": ["--bc-weight", "10", "--no-q-filter"],
    "bc100_no_qfilter": ["--bc-weight", "100", "--no-q-filter"],
    "pretrain": ["--pretrain-steps", "3000"],
    "pretrain_bc100": ["--pretrain-steps", "3000", "--bc-weight", "100", "--no-q-filter"],
}
CSV_COLUMNS = (
    "variant", "flags", "seeds", "steps",
    "eval_success_true_mean", "eval_success_true_min", "eval_success_true_max",
    "final_train_success_true_mean", "final_train_success_true_min",
    "final_train_success_true_max", "eval_return_mean", "train_steps_per_s",
)


def _copy_demos(source: Path, target: Path) -> None:
    """Copy ``source/demos`` to ``target/demos`` unless the target has them already."""
    src, dst = source / "demos", target / "demos"
    if not (src / "cable.npz").is_file() or (dst / "cable.npz").exists():
        return
    with atomic_directory(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def _training_curve(episodes_csv: Path, window: int, steps: int) -> tuple[list[int], list[float]]:
    """Rolling true-success rate (over the last ``window`` env steps) of every seed, averaged.

    Returns ``(x, y)``: env steps (every 100) and the mean over seeds of
    :func:`benchmarks.cable_rl.config.rolling_success` (grid points where no seed has an episode in
    the window are skipped).
    """
    import numpy as np

    from benchmarks.cable_rl.config import rolling_success

    by_seed: dict[str, list[tuple[int, int]]] = {}
    with open(episodes_csv, newline="") as f:
        for r in csv.DictReader(f):
            by_seed.setdefault(r["seed"], []).append((int(r["steps"]),
                                                      int(float(r["success_true"]))))
    grid = np.arange(window, steps + 1, 100)
    rates = np.array([rolling_success(np.array([t for t, _ in eps]),
                                      np.array([ok for _, ok in eps]), grid, window)
                      for eps in by_seed.values()])
    keep = ~np.all(np.isnan(rates), axis=0)
    return grid[keep].tolist(), np.nanmean(rates[:, keep], axis=0).tolist()


def plot(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, tuple[list[int], list[float]]],
         path: Path, window: int) -> Path:
    """Training curves (left) and held-out success with the min-max range (right)."""
    plt = common.use_agg()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, (xs, ys) in curves.items():
        ax1.plot(xs, ys, label=name)
    ax1.set_xlabel("env steps")
    ax1.set_ylabel(f"true success, rolling {window} steps (mean over seeds)")
    ax1.set_ylim(-0.03, 1.03)
    ax1.legend(fontsize=8)
    names = [r["variant"] for r in rows]
    means = [r["eval_success_true_mean"] for r in rows]
    lo = [r["eval_success_true_mean"] - r["eval_success_true_min"] for r in rows]
    hi = [r["eval_success_true_max"] - r["eval_success_true_mean"] for r in rows]
    ax2.bar(names, means, yerr=[lo, hi], capsize=4, color="tab:blue", alpha=0.8)
    ax2.tick_params(axis="x", labelrotation=25, labelsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("held-out true success (mean, min-max over seeds)")
    ax2.set_title("S3K-CableInsert-v0, ground-truth keypoints (gt arm)")
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def cable_rl_flags(profile: str) -> list[str]:
    """The ``benchmarks.cable_rl`` flags every variant shares: the profile, DDPGfD (this is
    the DDPGfD ablation; ``cable_rl``'s default agent is RLPD) and the ``gt`` arm."""
    return [f"--{profile}", "--agent", "ddpgfd", "--arms", "gt", "--no-progress"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ablation; returns the exit status."""
    from benchmarks.cable_rl.cli import main

    p = argparse.ArgumentParser(prog="python -m benchmarks.cable_rl_ablation",
                                description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    for prof in ("smoke", "quick", "full"):
        g.add_argument(f"--{prof}", action="store_const", dest="profile", const=prof)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--work-dir", type=Path, default=Path("runs/cable_rl_ablation"))
    p.add_argument("--out", type=Path, default=None,
                   help="result directory (default benchmarks/results; the work dir for "
                        "--smoke)")
    a = p.parse_args(argv)
    stem = "cable_rl_ablation" if a.profile == "full" else f"cable_rl_ablation_{a.profile}"
    out_dir = a.out or (a.work_dir if a.profile == "smoke" else common.RESULTS_DIR)
    common_flags = cable_rl_flags(a.profile)
    if a.seeds is not None:
        common_flags += ["--seeds", *map(str, a.seeds)]
    if a.steps is not None:
        common_flags += ["--steps", str(a.steps)]
    rows, summaries, curves = [], {}, {}
    first_work: Path | None = None
    for name in a.variants:
        work = a.work_dir / name
        vout = work / "results"
        if first_work is not None:
            _copy_demos(first_work / a.profile, work / a.profile)
            (work / a.profile).mkdir(parents=True, exist_ok=True)
        argv_v = [*common_flags, *VARIANTS[name], "--work-dir", str(work), "--out", str(vout)]
        print(f"[ablation] {name}: cable_rl {' '.join(argv_v)}", file=sys.stderr, flush=True)
        status = main(argv_v)
        if status != 0:
            return status
        first_work = first_work or work
        vstem = "cable_rl" if a.profile == "full" else f"cable_rl_{a.profile}"
        summary = json.loads((vout / f"{vstem}.json").read_text())
        (row,) = [r for r in summary["rows"] if r["arm"] == "gt"]
        rows.append({"variant": name, "flags": " ".join(VARIANTS[name]) or "(defaults)",
                     **{k: row[k] for k in CSV_COLUMNS if k in row}})
        summaries[name] = summary
        window = int(summary["config"]["window"])
        curves[name] = _training_curve(vout / f"{vstem}_episodes.csv", window,
                                       int(summary["config"]["steps"]))
    window = int(next(iter(summaries.values()))["config"]["window"])
    files = [
        common.write_csv(out_dir / f"{stem}.csv", rows, CSV_COLUMNS),
        common.write_json(out_dir / f"{stem}.json", {
            "benchmark": stem, "rows": rows, "variants": {k: VARIANTS[k] for k in a.variants},
            "summaries": summaries, "machine": common.machine_info(),
            "command": common.command_line()}),
        plot(rows, curves, out_dir / f"{stem}.png", window),
    ]
    print(common.markdown_table(rows, [
        ("variant", "variant", "s"), ("flags", "flags", "s"),
        ("eval_success_true_mean", "held-out success", ".2f"),
        ("eval_success_true_min", "min", ".2f"), ("eval_success_true_max", "max", ".2f"),
        ("final_train_success_true_mean", "final training success", ".2f")]))
    print("Wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
