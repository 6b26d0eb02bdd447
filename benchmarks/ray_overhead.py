"""What Ray costs on one machine: the same dataset and the same small experiment grid with
the local process pool and with ``--ray`` on a local Ray instance (``ray.init`` with this
machine's cores).

    python -m benchmarks.ray_overhead [--samples 120] [--runs 4] [--steps 40]

Writes ``benchmarks/results/ray_overhead.{csv,json,png}`` (machine info, command, load
average). The grid's runs are step-limited, so both back ends do the same work; times are
wall-clock seconds and include Ray's start-up (measured separately as ``ray_init_s``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks import keypoint_experiments as kx

RESULTS = common.REPO_ROOT / "benchmarks" / "results"
STEM = "ray_overhead"


def measure(samples: int, runs: int, steps: int, work: Path) -> list[dict[str, Any]]:
    """Rows: ``task`` (``generate`` / ``grid``), ``backend`` (``pool`` / ``ray``), ``wall_s``."""
    import ray

    from s3k_envs.keypoints.data import generate_dataset

    cores = common.usable_cores()
    data = {"env_id": "S3K-Box-v0", "num_samples": samples, "num_labelled": samples,
            "image_size": 64, "seed": 3, "shard_size": max(1, samples // (2 * cores)),
            "progress": False}
    train = kx.DatasetSpec("S3K-Box-v0", 24, 24, 0, 64)
    test = kx.DatasetSpec("S3K-Box-v0", 12, 12, 1, 64)
    grid = [kx.RunSpec(f"s{seed}", (kx.Subset(train),), (("test", test),), alpha=0.0,
                       seed=seed, minutes=60.0, train_overrides={"steps": steps})
            for seed in range(runs)]
    rows = []
    t0 = time.monotonic()
    generate_dataset(work / "pool", workers=cores, **data)
    rows.append({"task": f"generate {samples} samples", "backend": "pool",
                 "wall_s": time.monotonic() - t0})
    t0 = time.monotonic()
    kx.run_grid(grid, work / "pool_runs", work / "grid_data", jobs=cores)
    rows.append({"task": f"grid of {runs} runs x {steps} steps", "backend": "pool",
                 "wall_s": time.monotonic() - t0})
    t0 = time.monotonic()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    init_s = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        generate_dataset(work / "ray", ray=True, **data)
        rows.append({"task": f"generate {samples} samples", "backend": "ray",
                     "wall_s": time.monotonic() - t0})
        t0 = time.monotonic()
        kx.run_grid(grid, work / "ray_runs", work / "grid_data", ray="local")
        rows.append({"task": f"grid of {runs} runs x {steps} steps", "backend": "ray",
                     "wall_s": time.monotonic() - t0})
    finally:
        ray.shutdown()
    for row in rows:
        row["ray_init_s"] = init_s if row["backend"] == "ray" else 0.0
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bars: wall seconds per task and back end."""
    plt = common.use_agg()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, backend in enumerate(("pool", "ray")):
        values = [next(r["wall_s"] for r in rows if r["task"] == t and r["backend"] == backend)
                  for t in tasks]
        ax.bar([j + 0.38 * i for j in range(len(tasks))], values, width=0.38, label=backend)
    ax.set_xticks([j + 0.19 for j in range(len(tasks))], tasks)
    ax.set_ylabel("wall s")
    ax.legend()
    fig.tight_layout()
    return common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_overhead",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--samples", type=int, default=120, help="dataset samples (64 px)")
    p.add_argument("--runs", type=int, default=4, help="runs in the grid")
    p.add_argument("--steps", type=int, default=40, help="training steps per run")
    p.add_argument("--out", type=Path, default=RESULTS, help="result directory")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="s3k_ray_overhead_"))
    try:
        rows = measure(args.samples, args.runs, args.steps, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"benchmark": STEM, "rows": rows, "settings": vars(args) | {"out": str(args.out)},
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "machine": common.machine_info(), "command": common.command_line()}
    common.write_csv(args.out / f"{STEM}.csv", rows, ["task", "backend", "wall_s", "ray_init_s"])
    common.write_json(args.out / f"{STEM}.json", doc)
    plot(rows, args.out / f"{STEM}.png")
    for r in rows:
        print(f"{r['task']:32s} {r['backend']:5s} {r['wall_s']:7.1f} s", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
