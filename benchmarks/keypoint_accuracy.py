"""S3K keypoint accuracy on S3K-Box-v0 for a fixed CPU budget: labels vs unlabelled frames.

For each number of labelled samples (``--labels``, default 10 30 100) and each weight of the
self-supervised term (``--alphas``, default 0.5 and 0), this trains the S3K model with
``s3k_envs.keypoints.train`` for a fixed budget of **CPU-minutes on this machine**
(``--minutes``, default 30; ``--clock cpu`` counts the CPU time of the training process, so
the budget is the same whether or not other programs share the machine; ``--threads``
torch threads per run, default 1, and ``--jobs`` runs side by side, default 2 = the cores of
the reference machine), with ``--unlabelled`` (default 1,000) unlabelled samples available to the
α > 0 runs, and evaluates the final weights on a held-out test set: median, mean and
90th-percentile 3D error (mm) of the triangulated keypoints and the RMS 2D error (px).

Data (generated once with ``s3k_envs.keypoints.data.generate_dataset`` into ``--data-dir``,
different seeds so no scene is shared): ``labelled`` (max(--labels) labelled samples; the
runs with fewer labels use its first M samples), ``unlabelled``, ``val`` (100 labelled,
monitoring only: the learning curves in the plot; the reported numbers are of the final
weights, not of a checkpoint picked on validation labels) and ``test`` (200 labelled).

The issue's bar: median <= 10 mm with at most 100 labelled samples in 30 minutes; goal
beyond: <= 5 mm, then 3 mm, with 10 labelled samples.

Runs are resumable: a run directory with a finished ``summary.json`` is evaluated again
without retraining, an interrupted one resumes from its last checkpoint.

Outputs (atomically) in ``--out`` (default ``benchmarks/results/``):
``keypoint_accuracy[_quick].csv``, ``.json`` (rows, settings, machine info) and ``.png``
(test error vs labelled samples; validation median vs minutes).

Usage::

    MUJOCO_GL=egl python -m benchmarks.keypoint_accuracy            # 6 x 30 CPU-min
    MUJOCO_GL=egl python -m benchmarks.keypoint_accuracy --quick    # 6 x 5 CPU-min
    ... --labels 100 --alphas 0 --minutes 8 --train-arg aug_color=0  # one ablation
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from benchmarks import common

ENV_ID = "S3K-Box-v0"
CSV_COLUMNS = (
    "labels", "alpha", "unlabelled", "minutes", "clock", "threads", "steps", "steps_per_s",
    "unsup_on_at",
    "test_median_mm", "test_p90_mm", "test_mean_mm", "test_rms_px", "test_median_mm_plain",
    "passes_bar", "run",
)
TABLE = [
    ("labels", "labelled", "d"), ("alpha", "α", ".1f"), ("minutes", "min", ".0f"),
    ("steps", "steps", "d"), ("test_median_mm", "median mm", ".2f"),
    ("test_p90_mm", "p90 mm", ".2f"), ("test_rms_px", "RMS px", ".2f"),
    ("test_median_mm_plain", "median mm (plain mean)", ".2f"),
]
SEEDS = {"labelled": 11, "unlabelled": 12, "val": 13, "test": 14}


def ensure_data(data_dir: Path, image_size: int, labels: int, unlabelled: int, val: int,
                test: int, workers: int | None) -> dict[str, Path]:
    """Generate (or find, or resume) the four datasets; returns their directories."""
    from s3k_envs.keypoints.data import generate_dataset

    spec = {"labelled": (labels, labels), "unlabelled": (unlabelled, 0), "val": (val, val),
            "test": (test, test)}
    paths = {}
    for name, (n, m) in spec.items():
        if n == 0:
            continue
        path = data_dir / f"box{image_size}_{name}_{n}"
        print(f"dataset {path} ...", file=sys.stderr, flush=True)
        generate_dataset(path, ENV_ID, n, m, image_size=image_size, seed=SEEDS[name],
                         workers=workers, progress=False)
        paths[name] = path
    return paths


def first_labelled(arrays: Mapping[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
    """The first ``m`` labelled samples of a ``load_arrays`` dict (and nothing else)."""
    rows = np.asarray(arrays["label_rows"])[:m]
    out = {k: np.asarray(arrays[k])[rows] for k in ("images", "intrinsics", "extrinsics")}
    out["labelled"] = np.ones(len(rows), dtype=bool)
    out["label_rows"] = np.arange(len(rows), dtype=np.int64)
    for k in ("keypoints_2d", "label_mask", "keypoints_3d"):
        out[k] = np.asarray(arrays[k])[:m]
    return out


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    from s3k_envs.keypoints.train import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--train-arg {item}: unknown TrainConfig field {key!r}")
        out[key] = json.loads(value) if value not in ("None", "none") else None
    return out


def run_one(labels: int, alpha: float, data: Mapping[str, Any], args: argparse.Namespace,
            names: list[str]) -> dict[str, Any]:
    """Train one configuration (or reuse a finished run) and evaluate it on the test set."""
    from s3k_envs.keypoints.evaluate import evaluate, model_predict_fn
    from s3k_envs.keypoints.model import load_checkpoint
    from s3k_envs.keypoints.train import TrainConfig, train

    run = args.runs_dir / f"l{labels}_a{alpha:g}{args.tag}"
    summary_path = run / "summary.json"
    done = False
    if summary_path.exists():
        old = json.loads(summary_path.read_text())
        done = not old.get("interrupted") and (
            old["steps"] >= old["config"]["steps"]
            or old["elapsed_s"] >= 60 * (old["config"]["minutes"] or 0) - 1)
    cfg = TrainConfig(minutes=args.minutes, clock=args.clock, steps=10**9, alpha=alpha,
                      seed=args.seed, threads=args.threads, val_samples=50,
                      **_overrides(args.train_arg))
    if done:
        summary = json.loads(summary_path.read_text())
        print(f"{run}: finished earlier, evaluating", file=sys.stderr)
    else:
        print(f"{run}: training {labels} labelled, alpha {alpha}, {args.minutes} min",
              file=sys.stderr, flush=True)
        summary = train(cfg, first_labelled(data["labelled"], labels), run,
                        unlabelled=data["unlabelled"] if alpha > 0 else None,
                        val=data["val"], keypoint_names=names, env_id=ENV_ID,
                        progress_bar=not args.no_progress)
    model, config = load_checkpoint(run / "model.pt")
    metrics, _ = evaluate(model_predict_fn(model, config), data["test"], names,
                          plain_predict=model_predict_fn(model, config, None))
    return {
        "labels": labels, "alpha": alpha,
        "unlabelled": summary["num_unlabelled"] if alpha > 0 else 0,
        "minutes": summary["elapsed_s"] / 60, "clock": summary["config"].get("clock", "wall"),
        "threads": summary["config"]["threads"], "steps": summary["steps"],
        "steps_per_s": summary["steps_per_s"], "unsup_on_at": summary["unsup_on_at_progress"],
        "test_median_mm": metrics["mm"]["median"], "test_p90_mm": metrics["mm"]["p90"],
        "test_mean_mm": metrics["mm"]["mean"], "test_rms_px": metrics["rms_px"],
        "test_median_mm_plain": metrics["mm_plain_mean"]["median"],
        "passes_bar": labels <= 100 and metrics["mm"]["median"] <= 10.0,
        "per_keypoint_median_mm": {k: v["mm"]["median"]
                                   for k, v in metrics["per_keypoint"].items()},
        "run": str(run), "config": summary["config"],
    }


def _run_one_in_worker(labels: int, alpha: float, paths: Mapping[str, str],
                       args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """:func:`run_one` in a worker process (loads the datasets itself)."""
    from s3k_envs.keypoints.dataset import load_arrays

    torch.set_num_threads(args.threads)
    data: dict[str, Any] = {k: load_arrays(v) for k, v in paths.items()}
    data.setdefault("unlabelled", None)
    return run_one(labels, alpha, data, args, names)


def _val_curve(run: Path) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    with open(run / "log.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r.get("val_median_mm"):
                xs.append(float(r["elapsed_s"]) / 60)
                ys.append(float(r["val_median_mm"]))
    return xs, ys


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = common.use_agg()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for alpha, color in ((0.0, "tab:blue"), (0.5, "tab:orange")):
        sel = sorted((r for r in rows if abs(r["alpha"] - alpha) < 1e-9),
                     key=lambda r: r["labels"])
        if not sel:
            continue
        x = [r["labels"] for r in sel]
        ax1.plot(x, [r["test_median_mm"] for r in sel], "o-", color=color,
                 label=f"α={alpha:g} median")
        ax1.plot(x, [r["test_p90_mm"] for r in sel], "s--", color=color, alpha=0.6,
                 label=f"α={alpha:g} p90")
    others = sorted({r["alpha"] for r in rows} - {0.0, 0.5})
    for alpha in others:
        sel = sorted((r for r in rows if r["alpha"] == alpha), key=lambda r: r["labels"])
        ax1.plot([r["labels"] for r in sel], [r["test_median_mm"] for r in sel], "o-",
                 label=f"α={alpha:g} median")
    ax1.axhline(10, color="k", lw=0.8, ls=":", label="bar 10 mm")
    ax1.axhline(3, color="grey", lw=0.8, ls=":", label="goal 3 mm")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("labelled samples (4 views each)")
    ax1.set_ylabel("held-out 3D error (mm)")
    ax1.set_title(f"{ENV_ID}, final weights after the budget")
    ax1.legend(fontsize=7)
    for r in rows:
        xs, ys = _val_curve(Path(r["run"]))
        if xs:
            ax2.plot(xs, ys, label=f"{r['labels']} lab, α={r['alpha']:g}")
    ax2.set_yscale("log")
    clocks = sorted({f"{r.get('clock', 'wall')} minutes, {r.get('threads', '?')} thread(s)"
                     for r in rows})
    ax2.set_xlabel(" / ".join(clocks) or "minutes")
    ax2.set_ylabel("validation median 3D error (mm)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keypoint_accuracy",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.0])
    p.add_argument("--minutes", type=float, default=None,
                   help="budget per run in minutes of --clock (default 30, --quick 5)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="cpu: CPU time of the training process; wall: elapsed time")
    p.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    p.add_argument("--unlabelled", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="dataset generation processes")
    p.add_argument("--train-arg", action="append", default=[], metavar="FIELD=JSON",
                   help="override a TrainConfig field for every run (repeatable)")
    p.add_argument("--tag", default="", help="suffix of run directory names")
    p.add_argument("--quick", action="store_true", help="5-minute runs")
    p.add_argument("--data-dir", type=Path, default=Path("runs/keypoint_data"))
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="default runs/keypoint_accuracy[_quick]")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    args.minutes = args.minutes or (5.0 if args.quick else 30.0)
    args.runs_dir = args.runs_dir or Path(f"runs/keypoint_accuracy{suffix}")
    torch.set_num_threads(args.threads)

    from s3k_envs.keypoints.dataset import load_arrays, read_manifest

    paths = ensure_data(args.data_dir, args.image_size, max(args.labels),
                        args.unlabelled if any(a > 0 for a in args.alphas) else 0, 100, 200,
                        args.workers)
    names = list(read_manifest(paths["labelled"])["keypoint_names"])
    grid = [(labels, alpha) for labels in args.labels for alpha in args.alphas]
    if args.jobs > 1:
        args.no_progress = True  # bars of parallel runs would overwrite each other
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.jobs, len(grid)),
                                 mp_context=mp.get_context("forkserver")) as pool:
            futures = [pool.submit(_run_one_in_worker, labels, alpha,
                                   {k: str(v) for k, v in paths.items()}, args, names)
                       for labels, alpha in grid]
            rows = [f.result() for f in futures]
    else:
        data = {k: load_arrays(v) for k, v in paths.items()}
        data.setdefault("unlabelled", None)
        rows = [run_one(labels, alpha, data, args, names) for labels, alpha in grid]
    for row in rows:
        print(f"{row['labels']} labelled, alpha {row['alpha']:g}: median "
              f"{row['test_median_mm']:.2f} mm, p90 {row['test_p90_mm']:.2f} mm, "
              f"{row['steps']} steps", file=sys.stderr, flush=True)
    name = f"keypoint_accuracy{suffix}"
    machine = common.machine_info()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = [
        common.write_csv(args.out / f"{name}.csv", rows, CSV_COLUMNS),
        common.write_json(args.out / f"{name}.json", {
            "benchmark": name, "env_id": ENV_ID, "rows": rows, "settings": settings,
            "datasets": {k: str(v) for k, v in paths.items()}, "machine": machine}),
        plot(rows, args.out / f"{name}.png"),
    ]
    print(common.markdown_table(rows, TABLE))
    best100 = [r for r in rows if r["labels"] <= 100]
    if best100:
        ok = any(r["passes_bar"] for r in best100)
        print(f"\nBar (median <= 10 mm with <= 100 labelled, {args.minutes:g} min): "
              f"{'PASS' if ok else 'FAIL'}")
    print("Wrote " + ", ".join(str(x) for x in out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
