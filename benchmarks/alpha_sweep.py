"""Weight alpha of the self-supervised loss vs the number of labels (S3K Appendix E, Fig. 12).

For every labelled count L, unlabelled count U and weight alpha of the self-supervised
term (``L = L_sup + alpha L_unsup + ...``), and every seed, the S3K model is trained for a
fixed CPU-minute budget on S3K-Box-v0 and its final weights are evaluated on the withheld
test set of ``benchmarks/label_scaling.py`` (RMS px and 3D mm). alpha = 0 is the supervised
baseline (the unlabelled data is unused).

Two variants of the self-supervised term:

* ``gated`` (the ``s3k train`` default): off for the first 25 % of the run and until the
  training labels are fit to 2 px, then ramped in; targets only from confident, unimodal,
  mutually consistent views. Built to avoid the collapse of Appendix E.
* ``ungated`` (the paper's plain loss): on from the first step at full weight alpha,
  targets from every view. Only for the alphas / label counts listed in the profile.

The paper ran this sweep on the domain-shift data (BoxDistractors, *full* mode, 10k
unlabelled); we run it on S3K-Box-v0 so that it shares datasets and runs with
``label_scaling`` (a deviation, stated in the README).

Profiles (reference 2-core CPU machine; CPU-min = CPU time of each training process)::

    profile  px   labelled L           alpha                 U         seeds
    smoke    32   3, 6                 0, 0.5, 2             12        1
    quick    64   3, 10, 30            0, 0.1, 0.5, 1, 2     1000      1
    full     128  3, 10, 30, 100, 300  0, .1, .25, .5, 1, 2  1k, 10k   3

Ungated runs: smoke alpha 2 at L=6; quick alpha 0.5, 2 at L=10, 30; full alpha 0.5, 1, 2
at every L with U=10k. Budget per run: smoke 6 steps, quick 2 CPU-min, full 30 CPU-min.

* quick: 19 runs; the 6 with alpha in {0, 0.5} are the same runs as in
  ``label_scaling --quick`` (same directory, reused when that ran first), so 13 new runs =
  26 CPU-min of training + evaluation. Measured: 42.1 min wall for 26.2 CPU-min with
  ``--jobs 1`` right after label_scaling, while other benchmarks shared the 2 cores for
  most of it; on an idle 2-core machine ~15 min with ``--jobs 2`` (~20 min for all 19 runs
  without label_scaling's; estimates from the CPU time).
* full: 210 runs (45 shared with ``label_scaling --full``): 165 x 30 CPU-min = 82 CPU-hours;
  use a many-core machine (``--jobs`` = cores; the trainer is CPU-only).

Outputs (atomic) in ``--out`` (default ``benchmarks/results``; ``--smoke``: the runs dir):
``alpha_sweep_quick.{csv,json,png}`` (``--full``: ``alpha_sweep.*``). The PNG mirrors
Fig. 12: test RMS px vs alpha, one curve per labelled count (and unlabelled size), gated and
ungated side by side.

Usage::

    MUJOCO_GL=egl python -m benchmarks.alpha_sweep --quick [--jobs 2]
    MUJOCO_GL=egl python -m benchmarks.alpha_sweep --full --jobs 16
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.keypoint_experiments import (
    RunSpec,
    add_common_args,
    check_common_args,
    mean_over_seeds,
    result_stem,
    run_grid,
    write_results,
)
from benchmarks.label_scaling import (
    ENV_ID,
    RUNS_DIR_HELP,
    box_data,
    box_run,
    pivot_table,
    resolve_dirs,
)
from benchmarks.label_scaling import PROFILES as DATA_PROFILES

CSV_COLUMNS = (
    "gate", "labels", "unlabelled_available", "unlabelled", "alpha", "seed", "test_rms_px",
    "test_median_mm", "test_p90_mm", "test_mean_mm", "steps", "steps_per_s", "minutes",
    "clock", "unsup_on_at", "name", "run",
)
METRICS = ("test_rms_px", "test_median_mm", "test_p90_mm")


@dataclass(frozen=True)
class Profile:
    """Labelled counts x alphas x unlabelled sizes x seeds, plus the ungated runs."""

    name: str
    labelled: tuple[int, ...]
    alphas: tuple[float, ...]
    unlabelled: tuple[int, ...]
    seeds: tuple[int, ...]
    ungated_alphas: tuple[float, ...]
    ungated_labelled: tuple[int, ...]
    ungated_unlabelled: tuple[int, ...]


PROFILES = {
    "smoke": Profile("smoke", (3, 6), (0.0, 0.5, 2.0), (12,), (0,), (2.0,), (6,), (12,)),
    "quick": Profile("quick", (3, 10, 30), (0.0, 0.1, 0.5, 1.0, 2.0), (1000,), (0,),
                     (0.5, 2.0), (10, 30), (1000,)),
    "full": Profile("full", (3, 10, 30, 100, 300), (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
                    (1000, 10000), (0, 1, 2), (0.5, 1.0, 2.0), (3, 10, 30, 100, 300),
                    (10000,)),
}


def build_runs(profile: Profile, data_profile: str, minutes: float | None = None
               ) -> list[RunSpec]:
    """The sweep (alpha = 0 once per L and seed: it ignores the unlabelled data)."""
    runs: list[RunSpec] = []
    seen: set[str] = set()

    def add(lab: int, u: int, alpha: float, seed: int, ungated: bool) -> None:
        meta = {"gate": "ungated" if ungated and alpha > 0 else "gated",
                "unlabelled_available": u}
        run = box_run(data_profile, lab, u, alpha, seed, minutes, ungated, meta)
        if run.name not in seen:
            seen.add(run.name)
            runs.append(run)

    for u in profile.unlabelled:
        for lab in profile.labelled:
            for alpha in profile.alphas:
                for seed in profile.seeds:
                    add(lab, u, alpha, seed, False)
    for u in profile.ungated_unlabelled:
        for lab in profile.ungated_labelled:
            for alpha in profile.ungated_alphas:
                for seed in profile.seeds:
                    add(lab, u, alpha, seed, True)
    return runs


def _curves(means: Sequence[Mapping[str, Any]], gate: str
            ) -> dict[tuple[int, int], list[Mapping[str, Any]]]:
    """(L, U) -> points sorted by alpha; the alpha = 0 point joins every U of its L."""
    us = sorted({m["unlabelled_available"] for m in means if m["alpha"] > 0})
    out: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for m in means:
        if m["alpha"] > 0 and m["gate"] != gate:
            continue
        for u in ([m["unlabelled_available"]] if m["alpha"] > 0 else us):
            out.setdefault((m["labels"], u), []).append(m)
    return {k: sorted(v, key=lambda m: m["alpha"]) for k, v in sorted(out.items())
            if any(m["alpha"] > 0 for m in v)}


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Test RMS px vs alpha (alpha on an evenly spaced axis: 0 cannot sit on a log scale),
    one curve per labelled count (line style per unlabelled size); gated and ungated
    panels. Means over seeds, bars = min..max."""
    from benchmarks.label_scaling import plain_log_axes

    plt = common.use_agg()
    means = mean_over_seeds(rows, ("gate", "labels", "unlabelled_available", "alpha"),
                            ("test_rms_px",))
    # alpha 0 runs ignore U: one point per L, shown on every U's curve
    zero = mean_over_seeds([r for r in rows if r["alpha"] == 0], ("labels",),
                           ("test_rms_px",))
    for z in zero:
        z.update(gate="gated", unlabelled_available=None, alpha=0.0)
    means = [m for m in means if m["alpha"] > 0] + zero
    alphas = sorted({m["alpha"] for m in means})
    pos = {a: i for i, a in enumerate(alphas)}
    gates = [g for g in ("gated", "ungated") if any(m["gate"] == g and m["alpha"] > 0
                                                     for m in means)]
    fig, axes = plt.subplots(1, len(gates), figsize=(6.2 * len(gates), 4.6), squeeze=False,
                             sharey=True)
    labels_all = sorted({m["labels"] for m in means})
    cmap = plt.get_cmap("viridis")
    color = {lab: cmap(i / max(1, len(labels_all) - 1)) for i, lab in enumerate(labels_all)}
    us = sorted({m["unlabelled_available"] for m in means if m["alpha"] > 0})
    styles = dict(zip(us, ("-", "--", ":", "-."), strict=False))
    for ax, gate in zip(axes[0], gates, strict=True):
        for (lab, u), pts in _curves(means, gate).items():
            x = [pos[m["alpha"]] for m in pts]
            y = [m["test_rms_px"] for m in pts]
            err = [[m["test_rms_px"] - m["test_rms_px_min"] for m in pts],
                   [m["test_rms_px_max"] - m["test_rms_px"] for m in pts]]
            ax.errorbar(x, y, yerr=err, fmt="o", ls=styles.get(u, "-"), color=color[lab],
                        capsize=3, label=f"{lab} labelled, {u:,} unlabelled")
        plain_log_axes(ax)
        ax.set_xscale("linear")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_xlabel("self-supervised weight α (0 = supervised only)")
        ax.set_title(f"{gate} self-supervised term"
                     + (" (s3k train default)" if gate == "gated" else " (paper's plain loss)"),
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test RMS error (px)")
    budgets = sorted({f"{r['minutes']:.3g} {r['clock'].upper()}-min" for r in rows})
    fig.suptitle(f"{ENV_ID}: S3K α sweep (cf. App. E, Fig. 12), final weights after "
                 f"{budgets[0] if len(budgets) == 1 else 'the budget'} per run, mean over "
                 f"{max(m['n'] for m in means)} seed(s)", fontsize=10)
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.alpha_sweep",
                                description=(__doc__ or "").split("\n\n")[0])
    add_common_args(p, RUNS_DIR_HELP)
    p.add_argument("--alphas", type=float, nargs="+", default=None,
                   help="alphas of the gated sweep (default: the profile's)")
    p.add_argument("--labelled", type=int, nargs="+", default=None,
                   help="labelled counts (default: the profile's)")
    p.add_argument("--no-ungated", action="store_true", help="skip the ungated runs")
    args = p.parse_args(argv)
    check_common_args(p, args)
    resolve_dirs(args)
    t0 = time.monotonic()
    profile = PROFILES[args.profile]
    changes: dict[str, Any] = {}
    if args.seeds:
        changes["seeds"] = tuple(args.seeds)
    if args.alphas:
        changes["alphas"] = tuple(args.alphas)
    if args.labelled:
        changes["labelled"] = tuple(args.labelled)
    if args.no_ungated:
        changes["ungated_alphas"] = ()
    sweep = replace(profile, **changes)
    data_profile = DATA_PROFILES[args.profile]
    minutes = args.minutes or data_profile.minutes
    runs = build_runs(sweep, args.profile, minutes)
    rows = run_grid(runs, args.runs_dir, args.data_dir, jobs=args.jobs, ray=args.ray,
                    workers=args.workers)
    wall = time.monotonic() - t0
    means = mean_over_seeds(rows, ("gate", "unlabelled_available", "labels", "alpha"),
                            METRICS)
    settings = {"profile": args.profile, "env_id": ENV_ID,
                "image_size": data_profile.image_size, "labelled": sweep.labelled,
                "alphas": sweep.alphas, "unlabelled": sweep.unlabelled, "seeds": sweep.seeds,
                "ungated_alphas": sweep.ungated_alphas,
                "ungated_labelled": sweep.ungated_labelled,
                "ungated_unlabelled": sweep.ungated_unlabelled,
                "minutes_per_run": minutes, "clock": "cpu", "threads_per_run": 1,
                "test_samples": data_profile.test,
                "datasets": {k: v.dirname() for k, v in box_data(args.profile).items()},
                "jobs": args.jobs, "runs_dir": args.runs_dir, "data_dir": args.data_dir,
                "wall_s": wall}
    out = write_results(args.out, result_stem("alpha_sweep", args.profile), rows, CSV_COLUMNS,
                        settings, plot, extra={"means": means})
    zero = [m for m in means if m["alpha"] == 0]
    for gate in ("gated", "ungated"):
        for u in sorted({m["unlabelled_available"] for m in means}):
            sel = [m for m in means if m["gate"] == gate and m["unlabelled_available"] == u
                   and m["alpha"] > 0]
            if not sel:
                continue
            print(f"\nTest RMS error (px), {gate}, {u} unlabelled; rows: labelled, columns: "
                  f"alpha (mean over {len(sweep.seeds)} seed(s))\n")
            print(pivot_table(sel + zero,
                              "test_rms_px", "labels", "alpha"))
    print(f"\nwall time {wall / 60:.1f} min; wrote " + ", ".join(str(x) for x in out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
