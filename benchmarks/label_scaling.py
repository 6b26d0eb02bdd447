"""Value of labelled vs unlabelled data (S3K §4.1, Fig. 4 and Fig. 5) on S3K-Box-v0.

For every number of labelled samples L (4 views each) and unlabelled samples U, and every
seed, the S3K model is trained for a fixed budget of CPU-minutes (1 torch thread) on the
first L samples of one labelled Box dataset and the first U samples of one unlabelled Box
dataset, and its final weights are evaluated on a withheld test set of 200 labelled
samples (no scene shared with the training data): RMS 2D error in pixels (the paper's
metric) and the median / p90 / mean 3D error of the triangulated keypoints in mm.

Runs with U > 0 use the self-supervised weight alpha = 0.5 (the paper's value); runs with
U = 0 have nothing to self-supervise on and are trained with alpha = 0 (supervised only).
The self-supervised term is gated as in ``s3k train`` (on after 25 % of the run once the
training labels are fit to 2 px, confident unimodal views only; see
``benchmarks/alpha_sweep.py`` for the ungated paper variant).

Profiles (wall times measured on the reference 2-core CPU machine; CPU-min = CPU time of
each training process, so a budget buys the same training whatever else runs)::

    profile  px   labelled L                    unlabelled U         seeds  budget/run
    smoke    32   3, 6                          0, 12                1      6 steps
    quick    64   3, 10, 30, 100                0, 100, 1000         1      2 CPU-min
    full     128  3, 10, 30, 100, 300, 1000     0, 100, 1k, 10k      3      30 CPU-min

* smoke: ~20 s (the test).
* quick: 12 runs = 24 CPU-min of training + <1 CPU-min of data (100 labelled + 1,000
  unlabelled + 200 test samples at 64 px, ~3 s per 200) and evaluation. Measured: 46.4 min
  wall for 24.3 CPU-min with ``--jobs 1`` while two other benchmarks kept both cores busy
  (load ~4); on an idle 2-core machine ~13 min with ``--jobs 2`` (estimate from the CPU
  time).
* full: 72 runs x 30 CPU-min = 36 CPU-hours (+ ~3 min for 10k samples of data): ~18 h
  with ``--jobs 2`` here, or ~2.5 h on a 16-core machine with ``--jobs 16``. The trainer
  runs on the CPU (``s3k_envs.keypoints.train`` has no GPU path); a GPU box helps through
  its cores only. Each worker holds the 10k unlabelled samples in memory (~2 GB at
  128 px). The paper trained 150k batches at 400 px per run; 30 CPU-minutes at 128 px are
  ~7k batches, so only the trends are comparable.

Datasets are shared with ``benchmarks/alpha_sweep.py`` (same :class:`DatasetSpec` -> same
directory under ``--data-dir``, default ``runs/paper_data``) and so are the runs (same run
name and spec -> same directory under ``--runs-dir``, default ``runs/paper_runs/box_<profile>``):
a run one script finished is only re-evaluated (or its cached metrics reused) by the other.

Outputs (atomic) in ``--out`` (default ``benchmarks/results``; ``--smoke``: the runs dir):
``label_scaling_quick.{csv,json,png}`` (``--full``: ``label_scaling.*``), one CSV row per
run; the JSON adds the means over seeds, settings and machine info. The PNG mirrors the
paper: (a) RMS px vs labelled samples per unlabelled size (log-log, Fig. 4), (b) RMS px vs
total samples coloured by the labelled fraction L / (L + U) (Fig. 5).

Usage::

    MUJOCO_GL=egl python -m benchmarks.label_scaling --quick [--jobs 2]
    MUJOCO_GL=egl python -m benchmarks.label_scaling --full --jobs 16
    MUJOCO_GL=egl python -m benchmarks.label_scaling --smoke --runs-dir /tmp/ls --data-dir /tmp/ls
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.keypoint_experiments import (
    DEFAULT_RUNS_DIR,
    DatasetSpec,
    RunSpec,
    Subset,
    add_common_args,
    check_common_args,
    mean_over_seeds,
    result_stem,
    run_grid,
    write_results,
)

ENV_ID = "S3K-Box-v0"
#: Dataset seeds (one per role: no scene is shared between them).
DATA_SEEDS = {"labelled": 31, "unlabelled": 32, "test": 33}
#: The paper's self-supervised weight, used whenever U > 0.
ALPHA = 0.5
#: TrainConfig fields of the paper-style (ungated) self-supervised term: on from the first
#: step at full weight, targets from every view (no confidence / unimodality / agreement
#: filter).
UNGATED = (("unsup_start", 0.0), ("unsup_ramp", 0.0), ("unsup_max_px", 1e9),
           ("unsup_min_confidence", 0.0), ("unsup_min_peak_mass", 0.0),
           ("unsup_max_residual_px", 1e9))
_SMOKE_OVERRIDES = (("steps", 6), ("checkpoint_every", 3), ("val_every", 3),
                    ("unsup_start", 0.0), ("unsup_max_px", 1e9))
CSV_COLUMNS = (
    "labels", "unlabelled", "alpha", "seed", "total", "labelled_fraction", "test_rms_px",
    "test_median_mm", "test_p90_mm", "test_mean_mm", "steps", "steps_per_s", "minutes",
    "clock", "unsup_on_at", "name", "run",
)
METRICS = ("test_rms_px", "test_median_mm", "test_p90_mm")


@dataclass(frozen=True)
class Profile:
    """One grid: image size, labelled / unlabelled sizes, seeds and the budget per run."""

    name: str
    image_size: int
    labelled: tuple[int, ...]
    unlabelled: tuple[int, ...]
    seeds: tuple[int, ...]
    minutes: float
    test: int
    train_overrides: tuple[tuple[str, Any], ...] = ()


PROFILES = {
    "smoke": Profile("smoke", 32, (3, 6), (0, 12), (0,), 1.0, 8, _SMOKE_OVERRIDES),
    "quick": Profile("quick", 64, (3, 10, 30, 100), (0, 100, 1000), (0,), 2.0, 200),
    "full": Profile("full", 128, (3, 10, 30, 100, 300, 1000), (0, 100, 1000, 10000),
                    (0, 1, 2), 30.0, 200),
}


def box_data(profile: str) -> dict[str, DatasetSpec]:
    """The Box datasets of a profile (shared by label_scaling and alpha_sweep).

    Returns ``{"labelled": L_max labelled samples, "unlabelled": U_max samples without
    labels, "test": the withheld labelled set}`` at the profile's image size, where L_max /
    U_max are the largest sizes of this profile's label_scaling grid.
    """
    p = PROFILES[profile]
    size = p.image_size
    return {
        "labelled": DatasetSpec(ENV_ID, max(p.labelled), max(p.labelled),
                                DATA_SEEDS["labelled"], size),
        "unlabelled": DatasetSpec(ENV_ID, max(max(p.unlabelled), 1), 0,
                                  DATA_SEEDS["unlabelled"], size),
        "test": DatasetSpec(ENV_ID, p.test, p.test, DATA_SEEDS["test"], size),
    }


def box_run(profile: str, labels: int, unlabelled: int, alpha: float, seed: int,
            minutes: float | None = None, ungated: bool = False,
            meta: Mapping[str, Any] | None = None) -> RunSpec:
    """One Box run of ``profile``: the first ``labels`` labelled samples, the first
    ``unlabelled`` unlabelled ones (ignored, and named ``u0``, when ``alpha == 0``), the
    profile's test set; named ``l{L}_u{U}_a{alpha}_s{seed}[_ungated]`` so that equal runs of
    label_scaling and alpha_sweep share one directory."""
    p = PROFILES[profile]
    data = box_data(profile)
    if not 1 <= labels <= data["labelled"].labelled:
        raise ValueError(f"labels: expected 1..{data['labelled'].labelled} for profile "
                         f"{profile!r}, got {labels}")
    if not 0 <= unlabelled <= data["unlabelled"].samples:
        raise ValueError(f"unlabelled: expected 0..{data['unlabelled'].samples} for profile "
                         f"{profile!r}, got {unlabelled}")
    used = unlabelled if alpha > 0 else 0
    overrides = dict(p.train_overrides)
    if ungated and alpha > 0:
        overrides.update(UNGATED)
    name = f"l{labels}_u{used}_a{alpha:g}_s{seed}" + ("_ungated" if ungated and alpha > 0
                                                       else "")
    return RunSpec(
        name=name,
        labelled=(Subset(data["labelled"], labels),),
        unlabelled=(Subset(data["unlabelled"], used),) if used else (),
        test=(("test", data["test"]),),
        alpha=alpha, seed=seed, minutes=p.minutes if minutes is None else minutes,
        train_overrides=tuple(overrides.items()), meta=tuple((meta or {}).items()),
    )


def build_runs(profile: Profile) -> list[RunSpec]:
    """The grid: every (L, U, seed); alpha 0.5 when U > 0, else 0."""
    runs = []
    for u in profile.unlabelled:
        for lab in profile.labelled:
            for seed in profile.seeds:
                alpha = ALPHA if u > 0 else 0.0
                runs.append(box_run(profile.name, lab, u, alpha, seed, profile.minutes))
    return runs


def _with_totals(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        row = dict(r)
        row["total"] = row["labels"] + row["unlabelled"]
        row["labelled_fraction"] = row["labels"] / row["total"]
        out.append(row)
    return out


def pivot_table(means: Sequence[Mapping[str, Any]], value: str, rows_key: str,
                cols_key: str, fmt: str = ".2f") -> str:
    """Markdown table of ``value`` with one row per ``rows_key`` and one column per
    ``cols_key`` value (``mean ± std`` when the std is known and > 0)."""
    rk = sorted({m[rows_key] for m in means})
    ck = sorted({m[cols_key] for m in means})
    cell = {(m[rows_key], m[cols_key]): m for m in means}
    lines = [f"| {rows_key} \\ {cols_key} | " + " | ".join(f"{c:g}" for c in ck) + " |",
             "|---:|" + "---:|" * len(ck)]
    for r in rk:
        cells = []
        for c in ck:
            m = cell.get((r, c))
            if m is None or not math.isfinite(m.get(value, math.nan)):
                cells.append("–")
                continue
            text = format(m[value], fmt)
            std = m.get(f"{value}_std", math.nan)
            if m.get("n", 1) > 1 and math.isfinite(std):
                text += f" ± {format(std, fmt)}"
            cells.append(text)
        lines.append(f"| {r:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plain_log_axes(ax: Any) -> None:
    """Log-log axes with plain numbers (1, 10, 100 / 0.5, 2) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """(a) RMS px vs labelled samples, one curve per unlabelled size (Fig. 4); (b) RMS px vs
    total samples coloured by the labelled fraction (Fig. 5). Means over seeds, bars =
    min..max over seeds, individual seeds as small dots."""
    from matplotlib.colors import LogNorm

    plt = common.use_agg()
    rows = _with_totals(rows)
    means = mean_over_seeds(rows, ("labels", "unlabelled"), ("test_rms_px",))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    us = sorted({m["unlabelled"] for m in means})
    cmap = plt.get_cmap("viridis")
    for i, u in enumerate(us):
        sel = sorted((m for m in means if m["unlabelled"] == u), key=lambda m: m["labels"])
        x = [m["labels"] for m in sel]
        y = [m["test_rms_px"] for m in sel]
        err = [[m["test_rms_px"] - m["test_rms_px_min"] for m in sel],
               [m["test_rms_px_max"] - m["test_rms_px"] for m in sel]]
        color = cmap(i / max(1, len(us) - 1))
        ax1.errorbar(x, y, yerr=err, fmt="o-", color=color, capsize=3,
                     label=f"{u:,} unlabelled" + (" (α=0)" if u == 0 else f" (α={ALPHA:g})"))
        seeds = [r for r in rows if r["unlabelled"] == u]
        ax1.plot([r["labels"] for r in seeds], [r["test_rms_px"] for r in seeds], ".",
                 color=color, alpha=0.4, ms=4)
    plain_log_axes(ax1)
    ax1.set_xticks(sorted({m["labels"] for m in means}))
    ax1.set_xlabel("labelled samples (4 views each)")
    ax1.set_ylabel("test RMS error (px)")
    ax1.set_title("(a) error vs labelled data, per unlabelled size (cf. Fig. 4)")
    ax1.legend(fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    fracs = [m["labels"] / (m["labels"] + m["unlabelled"]) for m in means]
    norm = LogNorm(vmin=min(fracs), vmax=1.0) if min(fracs) < 1.0 else None
    sc = ax2.scatter([m["labels"] + m["unlabelled"] for m in means],
                     [m["test_rms_px"] for m in means], c=fracs, cmap="plasma", norm=norm,
                     s=45, edgecolors="k", linewidths=0.5)
    for m in means:
        ax2.annotate(f"{m['labels']}+{m['unlabelled']}",
                     (m["labels"] + m["unlabelled"], m["test_rms_px"]), fontsize=6,
                     xytext=(3, 3), textcoords="offset points")
    fig.colorbar(sc, ax=ax2, label="labelled fraction L / (L + U)")
    plain_log_axes(ax2)
    ax2.set_xlabel("total samples L + U")
    ax2.set_ylabel("test RMS error (px)")
    ax2.set_title("(b) error vs total data (cf. Fig. 5)")
    ax2.grid(True, which="both", alpha=0.3)
    budgets = sorted({f"{r['minutes']:.3g} {r['clock'].upper()}-min" for r in rows})
    fig.suptitle(f"{ENV_ID}: S3K label scaling, final weights after "
                 f"{budgets[0] if len(budgets) == 1 else 'the budget'} per run, "
                 f"mean over {max(m['n'] for m in means)} seed(s)", fontsize=10)
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


#: ``--runs-dir`` help of the Box benchmarks (label_scaling and alpha_sweep share runs).
RUNS_DIR_HELP = f"run directories (default {DEFAULT_RUNS_DIR}/box_<profile>)"


def resolve_dirs(args: argparse.Namespace) -> None:
    """Fill the default ``runs_dir`` / ``out`` of a parsed command line."""
    args.runs_dir = args.runs_dir or DEFAULT_RUNS_DIR / f"box_{args.profile}"
    args.out = args.out or (args.runs_dir if args.profile == "smoke" else common.RESULTS_DIR)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.label_scaling",
                                description=(__doc__ or "").split("\n\n")[0])
    add_common_args(p, RUNS_DIR_HELP)
    p.add_argument("--labelled", type=int, nargs="+", default=None,
                   help="labelled sizes (default: the profile's; at most its largest)")
    p.add_argument("--unlabelled", type=int, nargs="+", default=None,
                   help="unlabelled sizes (default: the profile's; at most its largest)")
    args = p.parse_args(argv)
    check_common_args(p, args)
    resolve_dirs(args)
    t0 = time.monotonic()
    profile = PROFILES[args.profile]
    changes: dict[str, Any] = {}
    if args.seeds:
        changes["seeds"] = tuple(args.seeds)
    if args.minutes:
        changes["minutes"] = args.minutes
    if args.labelled:
        changes["labelled"] = tuple(args.labelled)
    if args.unlabelled:
        changes["unlabelled"] = tuple(args.unlabelled)
    grid = replace(profile, **changes)
    runs = build_runs(grid)  # the datasets stay the profile's (box_data), so they are shared
    rows = _with_totals(run_grid(runs, args.runs_dir, args.data_dir, jobs=args.jobs,
                                 ray=args.ray, workers=args.workers))
    wall = time.monotonic() - t0
    means = mean_over_seeds(rows, ("labels", "unlabelled"), METRICS)
    settings = {"profile": args.profile, "env_id": ENV_ID, "image_size": grid.image_size,
                "labelled": grid.labelled, "unlabelled": grid.unlabelled,
                "seeds": grid.seeds, "minutes_per_run": grid.minutes, "clock": "cpu",
                "threads_per_run": 1, "alpha_with_unlabelled": ALPHA,
                "alpha_without_unlabelled": 0.0, "test_samples": grid.test,
                "datasets": {k: v.dirname() for k, v in box_data(args.profile).items()},
                "jobs": args.jobs, "runs_dir": args.runs_dir, "data_dir": args.data_dir,
                "wall_s": wall}
    out = write_results(args.out, result_stem("label_scaling", args.profile), rows, CSV_COLUMNS,
                        settings, plot, extra={"means": means})
    print(f"\nTest RMS error (px), mean over {len(grid.seeds)} seed(s); rows: labelled, "
          "columns: unlabelled (alpha 0.5 where > 0, 0 where 0)\n")
    print(pivot_table(means, "test_rms_px", "labels", "unlabelled"))
    print("\nTest median 3D error (mm)\n")
    print(pivot_table(means, "test_median_mm", "labels", "unlabelled"))
    print(f"\nwall time {wall / 60:.1f} min; wrote " + ", ".join(str(x) for x in out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
