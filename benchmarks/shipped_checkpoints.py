"""Keypoint error of the shipped checkpoints (``assets/checkpoints/``), per env.

For every evaluation below, a labelled held-out test set is generated (or found) under
``--data-dir`` with seeds the checkpoints were not trained on (training used 101, validation
102; the test sets use ``--seed``, default 7103) and the same sampling as training: one reset
plus 0..T scripted-expert steps with action noise (``--rollout-steps``/``--rollout-noise`` per
env below), so the states resemble those a policy visits. Metrics: median, mean and 90th
percentile of the 3D error (mm) of the triangulated keypoints and the RMS 2D error (px) over
the cameras where a keypoint is visible, per keypoint and overall.

Evaluations (env id, checkpoint, extra env options):

* S3K-Box-v0 and S3K-BoxDistractors-v0 with the Box checkpoint (trained on BoxDistractors
  frames, pool 0) — plus BoxDistractors pool 3 (distractors never seen in training);
* S3K-Shoes-v0 on the 12 training shoes and on the 4 held-out shoes (``instances="test"``);
* S3K-CableInsert-v0 and S3K-CableInsertShort-v0 (each with its own checkpoint).

Outputs (atomically) in ``--out`` (default ``benchmarks/results/``):
``shipped_checkpoints.csv`` / ``.json`` (rows, settings, machine info, command) and ``.png``.

Usage::

    MUJOCO_GL=egl python -m benchmarks.shipped_checkpoints [--samples 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import torch

from benchmarks import common

#: (label, env id, checkpoint env id, env options, rollout steps, rollout noise)
EVALUATIONS: list[tuple[str, str, str, dict[str, Any], int, float]] = [
    ("Box", "S3K-Box-v0", "S3K-Box-v0", {}, 10, 0.3),
    ("BoxDistractors (pool 0)", "S3K-BoxDistractors-v0", "S3K-Box-v0", {}, 10, 0.3),
    ("BoxDistractors (pool 3, unseen)", "S3K-BoxDistractors-v0", "S3K-Box-v0",
     {"distractor_set": 3}, 10, 0.3),
    ("Shoes (training shoes)", "S3K-Shoes-v0", "S3K-Shoes-v0", {}, 10, 0.3),
    ("Shoes (4 held-out shoes)", "S3K-Shoes-v0", "S3K-Shoes-v0", {"instances": "test"}, 10,
     0.3),
    ("CableInsert", "S3K-CableInsert-v0", "S3K-CableInsert-v0", {}, 25, 0.2),
    ("CableInsertShort", "S3K-CableInsertShort-v0", "S3K-CableInsertShort-v0", {}, 25, 0.2),
]
CSV_COLUMNS = ("evaluation", "env_id", "checkpoint", "samples", "median_mm", "mean_mm",
               "p90_mm", "rms_px", "per_keypoint_median_mm", "checkpoint_kb")
TABLE = [("evaluation", "evaluation", "s"), ("samples", "samples", "d"),
         ("median_mm", "median mm", ".1f"), ("p90_mm", "p90 mm", ".1f"),
         ("rms_px", "RMS px", ".2f")]


def run(samples: int, seed: int, data_dir: Path, threads: int,
        only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Evaluate every shipped checkpoint; returns one row per evaluation."""
    from s3k_envs.checkpoints import default_checkpoint
    from s3k_envs.keypoints.data import generate_dataset
    from s3k_envs.keypoints.dataset import load_arrays
    from s3k_envs.keypoints.evaluate import evaluate, predictor_fn
    from s3k_envs.keypoints.predictor import KeypointPredictor

    torch.set_num_threads(threads)
    rows = []
    for label, env_id, ckpt_env, options, roll, noise in EVALUATIONS:
        if only and not any(o.lower() in label.lower() for o in only):
            continue
        ckpt = default_checkpoint(ckpt_env)
        predictor = KeypointPredictor.load(ckpt)
        tag = "_".join(f"{k}{v}" for k, v in sorted(options.items()))
        path = data_dir / f"{env_id}{'_' + tag if tag else ''}_s{seed}_n{samples}"
        print(f"{label}: test set {path}", file=sys.stderr, flush=True)
        generate_dataset(path, env_id, samples, samples, seed=seed, env_options=options,
                         image_size=tuple(predictor.image_size), rollout_steps=roll,
                         rollout_noise=noise, progress=False)
        metrics, _ = evaluate(predictor_fn(predictor), load_arrays(path),
                              predictor.keypoint_names)
        rows.append({
            "evaluation": label, "env_id": env_id, "checkpoint": str(ckpt.name),
            "samples": metrics["num_samples"], "median_mm": metrics["mm"]["median"],
            "mean_mm": metrics["mm"]["mean"], "p90_mm": metrics["mm"]["p90"],
            "rms_px": metrics["rms_px"],
            "per_keypoint_median_mm": {k: round(v["mm"]["median"], 2)
                                       for k, v in metrics["per_keypoint"].items()},
            "checkpoint_kb": ckpt.stat().st_size / 1024, "env_options": options,
        })
        print(f"  median {rows[-1]['median_mm']:.1f} mm, p90 {rows[-1]['p90_mm']:.1f} mm, "
              f"RMS {rows[-1]['rms_px']:.2f} px", file=sys.stderr, flush=True)
    return rows


def merge_rows(new: Sequence[dict[str, Any]], previous: Path) -> list[dict[str, Any]]:
    """The rows of ``new`` plus, for the evaluations it lacks (a run with ``--only``), the
    rows of the ``previous`` result file (when there is one), in the order of
    :data:`EVALUATIONS`; so re-measuring one checkpoint keeps the others' numbers."""
    import json

    by_label = {}
    if previous.is_file():
        by_label = {r["evaluation"]: r for r in json.loads(previous.read_text("utf-8"))["rows"]}
    by_label.update({r["evaluation"]: r for r in new})
    return [by_label[label] for label, *_ in EVALUATIONS if label in by_label]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars of median and p90 3D error per evaluation."""
    plt = common.use_agg()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["median_mm"] for r in rows], 0.4, label="median")
    ax.bar([i + 0.2 for i in x], [r["p90_mm"] for r in rows], 0.4, label="90th percentile")
    ax.set_xticks(list(x), [r["evaluation"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("3D keypoint error (mm)")
    ax.set_title("Shipped checkpoints on held-out scenes (4 views @128 px)")
    ax.legend()
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shipped_checkpoints",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=200, help="test samples per evaluation")
    p.add_argument("--seed", type=int, default=7103)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--only", nargs="*", default=None,
                   help="substrings of evaluation labels; the other rows are kept from the "
                        "existing result file in --out")
    p.add_argument("--data-dir", type=Path, default=Path("runs/shipped_eval"))
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    rows = run(args.samples, args.seed, args.data_dir, args.threads, args.only)
    if args.only:
        rows = merge_rows(rows, args.out / "shipped_checkpoints.json")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = [
        common.write_csv(args.out / "shipped_checkpoints.csv", rows, CSV_COLUMNS),
        common.write_json(args.out / "shipped_checkpoints.json", {
            "benchmark": "shipped_checkpoints", "rows": rows, "settings": settings,
            "machine": common.machine_info()}),
        plot(rows, args.out / "shipped_checkpoints.png"),
    ]
    print(common.markdown_table(rows, TABLE))
    print("Wrote " + ", ".join(str(x) for x in out), file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
