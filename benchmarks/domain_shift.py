"""Domain shift (S3K paper §4.2, Fig. 6): labels from the initial scene vs spread over time.

Scenario: the scene around the annotated object drifts after deployment. In
``S3K-BoxDistractors-v0`` the game box (keypoints: three top corners) sits among 4 distractor
objects from one of 6 disjoint pools (env option ``distractor_set``): pool 0 is the scene that
was annotated, pools 1-4 are the later scenes (the distractors were swapped four times),
pool 5 is a **new** scene that no training sample shows.

* ``start`` mode: all L labelled samples come from pool 0 (the paper's *start mode*
  annotation: only the initial scene was labelled).
* ``full`` mode: the L labelled samples are spread evenly over pools 0-4 (the baseline with
  labels from the whole timeline; pool ``p`` gets ``L // 5``, the first ``L % 5`` pools one
  more).
* Unlabelled data (both modes): U samples spread evenly over pools 1-4 (the frames recorded
  while the distractors changed, without labels); U = 0 runs train supervised only (α = 0),
  the others with the self-supervised term (α = 0.5).
* Evaluation: RMS 2D error (px) and 3D error (mm) of the final weights on 200 samples of
  pool 5 (``unseen``, the figure's metric) and on 100 new samples of pool 0 (``initial``, to
  show over-fitting to the annotated scene). ``unseen`` also serves as the (log-only)
  validation set during training; no checkpoint is picked on it.

Every dataset has its own seed (no scene is shared between datasets); the training seed
varies over ``--seeds`` with fixed data (the paper averages over 3 seeds). The runs go through
the shared runner :mod:`benchmarks.keypoint_experiments` (datasets cached under
``runs/paper_data``, runs resumable under ``runs/paper_runs/domain_shift[_quick]``).

Profiles (``--smoke`` / ``--quick`` / ``--full``, one required):

======  ====  =====================  ===================  =====  ==========  ============
profile px    labelled L             unlabelled U         seeds  per run     runs
======  ====  =====================  ===================  =====  ==========  ============
smoke   32    5                      0, 8                 1      6 steps     4
quick   64    10, 30, 100            0, 1000              1      2 CPU-min   12
full    128   10, 30, 50, 100, 300   0, 100, 1000, 10000  3      30 CPU-min  120
======  ====  =====================  ===================  =====  ==========  ============

Cost on the 2-core reference machine: ``--smoke`` ~15 s (the test); ``--quick`` 24.5
CPU-minutes in all (datasets 17 s, 12 runs x 2 CPU-min, evaluation); measured: 46 min wall
with ``--jobs 1`` while other benchmarks shared the 2 cores (the process got 53 % of a
core), i.e. ~25 min on an idle machine with ``--jobs 1`` and ~13 min with ``--jobs 2``;
``--full`` ~60 CPU-hours of training (120 runs x 30 CPU-min).

Budgets count the CPU time of the training process (1 torch thread), so results do not
depend on what else runs on the machine; wall times are for the 2-core reference machine
(``--jobs 2`` runs two trainings side by side). The paper trained 150k batches at 400 px;
``s3k_envs.keypoints.train`` runs on the CPU only, so ``--full`` is a CPU-cluster job
(e.g. ``--jobs 16`` on 16 cores: ~4 h), not a GPU one.

Outputs (atomic) in ``--out`` (default ``benchmarks/results/``): ``domain_shift_quick`` /
``domain_shift`` (``--smoke`` writes ``domain_shift_smoke`` into its runs dir unless
``--out`` is given) ``.csv`` (one row per run), ``.json`` (rows, the seed-averaged summary,
settings, machine info), ``.md`` (the summary table) and ``.png``: RMS px on the unseen pool
vs labelled samples, one colour per unlabelled size, solid = full mode, dashed = start mode
(as Fig. 6), and the same for the initial pool.

Usage::

    MUJOCO_GL=egl python -m benchmarks.domain_shift --quick            # 12 runs x 2 CPU-min
    MUJOCO_GL=egl python -m benchmarks.domain_shift --full --jobs 16   # the paper's scale
    MUJOCO_GL=egl python -m benchmarks.domain_shift --quick --labels 10 50 --minutes 4
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

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

ENV_ID = "S3K-BoxDistractors-v0"
#: Pools whose samples may carry labels (pool 0 = the annotated initial scene).
LABEL_POOLS = (0, 1, 2, 3, 4)
#: Pools of the unlabelled frames (the scene after each distractor swap).
UNLABELLED_POOLS = (1, 2, 3, 4)
#: The new scene of the evaluation: never seen in training.
TEST_POOL = 5
MODES = ("start", "full")
#: Dataset seeds: labelled pool p -> 7100 + p, unlabelled pool p -> 7110 + p, tests 7120/7121.
SEED_LABELLED, SEED_UNLABELLED, SEED_UNSEEN, SEED_INITIAL = 7100, 7110, 7120, 7121
#: The paper's image width (px); errors are also given rescaled to it.
PAPER_WIDTH = 400

CSV_COLUMNS = (
    "mode", "labels", "unlabelled", "alpha", "seed", "image_size", "minutes", "clock",
    "steps", "steps_per_s", "unsup_on_at",
    "unseen_rms_px", "unseen_rms_px_400", "unseen_median_mm", "unseen_p90_mm",
    "unseen_mean_mm", "initial_rms_px", "initial_median_mm", "initial_p90_mm",
    "initial_mean_mm", "name", "run",
)


@dataclass(frozen=True)
class Profile:
    """Grid and budget of one profile (see the module docstring's table)."""

    name: str
    image_size: int
    labels: tuple[int, ...]
    unlabelled: tuple[int, ...]
    seeds: tuple[int, ...]
    minutes: float
    unseen_samples: int = 200
    initial_samples: int = 100
    train_overrides: tuple[tuple[str, Any], ...] = ()


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 32, (5,), (0, 8), (0,), 5.0, unseen_samples=6,
                     initial_samples=4,
                     train_overrides=(("steps", 6), ("checkpoint_every", 1000),
                                      ("val_every", 1000), ("log_every", 2))),
    "quick": Profile("quick", 64, (10, 30, 100), (0, 1000), (0,), 2.0),
    "full": Profile("full", 128, (10, 30, 50, 100, 300), (0, 100, 1000, 10000), (0, 1, 2),
                    30.0),
}


def spread_evenly(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` bins as evenly as possible (the first bins get the
    remainder), e.g. ``spread_evenly(12, 5) == [3, 3, 2, 2, 2]``.

    Raises:
        ValueError: ``total < 0`` or ``parts < 1``.
    """
    if total < 0 or parts < 1:
        raise ValueError(f"spread_evenly: expected total >= 0 and parts >= 1, got {total}, "
                         f"{parts}")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def labels_per_pool(mode: str, labels: int) -> dict[int, int]:
    """Labelled samples taken from each pool: ``{pool: count}`` (pools with 0 left out).

    Raises:
        ValueError: unknown mode or ``labels < 1``.
    """
    if labels < 1:
        raise ValueError(f"labels: expected >= 1, got {labels}")
    if mode == "start":
        return {LABEL_POOLS[0]: labels}
    if mode == "full":
        counts = spread_evenly(labels, len(LABEL_POOLS))
        return {p: n for p, n in zip(LABEL_POOLS, counts, strict=True) if n}
    raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


def unlabelled_per_pool(unlabelled: int) -> dict[int, int]:
    """Unlabelled samples taken from each pool of :data:`UNLABELLED_POOLS` (0s left out)."""
    counts = spread_evenly(unlabelled, len(UNLABELLED_POOLS))
    return {p: n for p, n in zip(UNLABELLED_POOLS, counts, strict=True) if n}


def _pool_spec(pool: int, samples: int, labelled: int, seed: int, size: int) -> DatasetSpec:
    return DatasetSpec(ENV_ID, samples=samples, labelled=labelled, seed=seed, image_size=size,
                       env_options=(("distractor_set", pool),))


def datasets(profile: Profile) -> dict[str, Any]:
    """The profile's datasets: ``{"labelled": {pool: spec}, "unlabelled": {pool: spec},
    "unseen": spec, "initial": spec}``; each labelled / unlabelled pool dataset is as large
    as the largest share any run takes from it (runs use its first samples)."""
    size = profile.image_size
    need_l: dict[int, int] = {}
    for mode in MODES:
        for n in profile.labels:
            for p, k in labels_per_pool(mode, n).items():
                need_l[p] = max(need_l.get(p, 0), k)
    need_u: dict[int, int] = {}
    for n in profile.unlabelled:
        for p, k in unlabelled_per_pool(n).items():
            need_u[p] = max(need_u.get(p, 0), k)
    return {
        "labelled": {p: _pool_spec(p, k, k, SEED_LABELLED + p, size)
                     for p, k in sorted(need_l.items())},
        "unlabelled": {p: _pool_spec(p, k, 0, SEED_UNLABELLED + p, size)
                       for p, k in sorted(need_u.items())},
        "unseen": _pool_spec(TEST_POOL, profile.unseen_samples, profile.unseen_samples,
                             SEED_UNSEEN, size),
        "initial": _pool_spec(LABEL_POOLS[0], profile.initial_samples,
                              profile.initial_samples, SEED_INITIAL, size),
    }


def build_runs(profile: Profile) -> list[RunSpec]:
    """One :class:`RunSpec` per (seed, unlabelled U, labelled L, mode), in that nesting."""
    data = datasets(profile)
    tests = (("unseen", data["unseen"]), ("initial", data["initial"]))
    runs = []
    for seed in profile.seeds:
        for u in profile.unlabelled:
            unl = tuple(Subset(data["unlabelled"][p], k)
                        for p, k in unlabelled_per_pool(u).items())
            for n in profile.labels:
                for mode in MODES:
                    lab = tuple(Subset(data["labelled"][p], k)
                                for p, k in labels_per_pool(mode, n).items())
                    runs.append(RunSpec(
                        name=f"{mode}_l{n}_u{u}_s{seed}", labelled=lab, test=tests,
                        unlabelled=unl, alpha=0.5 if u else 0.0, seed=seed,
                        minutes=profile.minutes, train_overrides=profile.train_overrides,
                        meta=(("mode", mode), ("image_size", profile.image_size))))
    return runs


def add_derived(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``unseen_rms_px_400`` = unseen RMS px x 400 / image width (a rescaling to
    the paper's image width, not a measurement at 400 px)."""
    out = []
    for r in rows:
        r = dict(r)
        r["unseen_rms_px_400"] = r["unseen_rms_px"] * PAPER_WIDTH / r["image_size"]
        out.append(r)
    return out


SUMMARY_VALUES = ("unseen_rms_px", "unseen_rms_px_400", "unseen_median_mm",
                  "initial_rms_px", "steps")


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Seed means per (unlabelled, labels): start and full side by side, and the gap.

    Returns rows with ``unlabelled``, ``labels``, ``n`` (seeds), ``start_*`` / ``full_*``
    means of :data:`SUMMARY_VALUES`, ``gap_px`` = start - full unseen RMS px and
    ``gap_ratio`` = start / full.
    """
    means = mean_over_seeds(rows, ("unlabelled", "labels", "mode"), SUMMARY_VALUES)
    by_key = {(m["unlabelled"], m["labels"], m["mode"]): m for m in means}
    keys = sorted({(m["unlabelled"], m["labels"]) for m in means})
    out = []
    for u, n in keys:
        row: dict[str, Any] = {"unlabelled": u, "labels": n}
        for mode in MODES:
            m = by_key.get((u, n, mode), {})
            row["n"] = max(row.get("n", 0), m.get("n", 0))
            for v in SUMMARY_VALUES:
                row[f"{mode}_{v}"] = m.get(v, math.nan)
        row["gap_px"] = row["start_unseen_rms_px"] - row["full_unseen_rms_px"]
        row["gap_ratio"] = (row["start_unseen_rms_px"] / row["full_unseen_rms_px"]
                            if row["full_unseen_rms_px"] > 0 else math.nan)
        out.append(row)
    return out


def mean_gap_by_unlabelled(summary: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean over labelled counts of the start - full gap (px) for every unlabelled size."""
    out: dict[str, float] = {}
    for u in sorted({r["unlabelled"] for r in summary}):
        gaps = [r["gap_px"] for r in summary
                if r["unlabelled"] == u and math.isfinite(r["gap_px"])]
        out[str(u)] = float(sum(gaps) / len(gaps)) if gaps else math.nan
    return out


SUMMARY_TABLE = [
    ("unlabelled", "unlabelled", "d"), ("labels", "labelled", "d"),
    ("start_unseen_rms_px", "start: unseen px", ".2f"),
    ("full_unseen_rms_px", "full: unseen px", ".2f"),
    ("gap_px", "gap px", "+.2f"),
    ("start_unseen_rms_px_400", "start: ≈ px @400", ".1f"),
    ("full_unseen_rms_px_400", "full: ≈ px @400", ".1f"),
    ("start_unseen_median_mm", "start: median mm", ".1f"),
    ("full_unseen_median_mm", "full: median mm", ".1f"),
    ("start_initial_rms_px", "start: initial px", ".2f"),
    ("full_initial_rms_px", "full: initial px", ".2f"),
]


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Fig. 6: seed-mean RMS px vs labelled samples per unlabelled size (colour), full
    (solid) vs start (dashed), on the unseen pool (left) and the initial pool (right);
    bars span the seeds' min..max."""
    plt = common.use_agg()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), sharey=True)
    sizes = sorted({r["image_size"] for r in rows})
    us = sorted({r["unlabelled"] for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, test, title in ((axes[0], "unseen", f"new distractors (pool {TEST_POOL})"),
                            (axes[1], "initial", "initial distractors (pool 0)")):
        means = mean_over_seeds(rows, ("unlabelled", "mode", "labels"), (f"{test}_rms_px",))
        for i, u in enumerate(us):
            for mode, style in (("full", "o-"), ("start", "s--")):
                sel = sorted((m for m in means if m["unlabelled"] == u and m["mode"] == mode),
                             key=lambda m: m["labels"])
                if not sel:
                    continue
                x = [m["labels"] for m in sel]
                y = [m[f"{test}_rms_px"] for m in sel]
                lo = [m[f"{test}_rms_px"] - m[f"{test}_rms_px_min"] for m in sel]
                hi = [m[f"{test}_rms_px_max"] - m[f"{test}_rms_px"] for m in sel]
                ax.errorbar(x, y, yerr=[lo, hi], fmt=style, color=colors[i % len(colors)],
                            capsize=3, label=f"{u} unlabelled, {mode}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("labelled samples (4 views each)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(f"RMS error (px at {'/'.join(map(str, sizes))} px)")
    axes[0].legend(fontsize=7)
    seeds = max(m["n"] for m in mean_over_seeds(rows, ("unlabelled", "mode", "labels"), ()))
    fig.suptitle(f"{ENV_ID}: labels from the initial scene (start) vs spread over pools "
                 f"0-4 (full); unlabelled from pools 1-4; mean of {seeds} seed(s)",
                 fontsize=10)
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.domain_shift",
                                description=__doc__.split("\n\n")[0])
    add_common_args(p, "default runs/paper_runs/domain_shift[_quick|_smoke]")
    p.add_argument("--labels", type=int, nargs="+", help="override the labelled counts")
    p.add_argument("--unlabelled", type=int, nargs="+", help="override the unlabelled sizes")
    args = p.parse_args(argv)
    check_common_args(p, args)
    for name in ("labels", "unlabelled"):
        values = getattr(args, name)
        if values is not None and min(values) < (1 if name == "labels" else 0):
            p.error(f"--{name}: expected values >= {1 if name == 'labels' else 0}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.profile]
    changes: dict[str, Any] = {}
    for name in ("labels", "unlabelled", "seeds"):
        if getattr(args, name) is not None:
            changes[name] = tuple(sorted(set(getattr(args, name))))
    if args.minutes is not None:
        changes["minutes"] = args.minutes
    profile = replace(profile, **changes)
    stem = result_stem("domain_shift", profile.name)
    runs_dir = args.runs_dir or DEFAULT_RUNS_DIR / stem
    out_dir = args.out or (runs_dir if profile.name == "smoke" else common.RESULTS_DIR)
    runs = build_runs(profile)
    print(f"{stem}: {len(runs)} runs of {profile.minutes:g} CPU-min, jobs {args.jobs}",
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    rows = add_derived(run_grid(runs, runs_dir, args.data_dir, jobs=args.jobs, ray=args.ray,
                                workers=args.workers))
    wall = time.monotonic() - t0
    summary = summarize(rows)
    gaps = mean_gap_by_unlabelled(summary)
    settings = {"profile": profile.name, "env_id": ENV_ID, "label_pools": LABEL_POOLS,
                "unlabelled_pools": UNLABELLED_POOLS, "test_pool": TEST_POOL,
                **{k: v for k, v in vars(profile).items() if k != "name"},
                "jobs": args.jobs, "runs_dir": str(runs_dir), "data_dir": str(args.data_dir),
                "wall_s": wall}
    table = common.markdown_table(summary, SUMMARY_TABLE)
    paths = write_results(out_dir, stem, rows, CSV_COLUMNS, settings, plot,
                          extra={"summary": summary, "mean_gap_px_by_unlabelled": gaps,
                                 "wall_s": wall})
    paths.append(common.write_text(out_dir / f"{stem}.md", table + "\n"))
    print(table)
    print("\nmean start - full gap on the unseen pool (px) by unlabelled size: "
          + ", ".join(f"{u}: {g:+.2f}" for u, g in gaps.items()))
    print(f"\n{len(rows)} runs in {wall / 60:.1f} min wall; wrote "
          + ", ".join(str(x) for x in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
