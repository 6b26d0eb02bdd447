"""Summary statistics over episodes and seeds, and the figure, of the push MPC benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

PER_SEED_KEYS = ("success_rate", "position_cm_median", "position_cm_mean", "angle_deg_median",
                 "angle_deg_mean", "plan_ms_median")


def seed_stats(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Statistics of one method and seed's episodes."""
    return {
        "episodes": len(rows),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "success_any_step_rate": float(np.mean([r["success_any_step"] for r in rows])),
        "position_cm_median": common.median([r["position_cm"] for r in rows]),
        "position_cm_mean": float(np.mean([r["position_cm"] for r in rows])),
        "angle_deg_median": common.median([r["angle_deg"] for r in rows]),
        "angle_deg_mean": float(np.mean([r["angle_deg"] for r in rows])),
        "plan_ms_median": common.median([r["plan_ms_median"] for r in rows]),
        "plan_ms_max": float(np.max([r["plan_ms_max"] for r in rows])),
        "perceive_ms_median": common.median([r["perceive_ms_median"] for r in rows]),
        "start_position_cm_median": common.median([r["start_position_cm"] for r in rows]),
        "start_angle_deg_median": common.median([r["start_angle_deg"] for r in rows]),
    }


def summarize(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Per method: per-seed statistics, and for each of :data:`PER_SEED_KEYS` the mean, std
    (over seeds, ddof 0) and per-seed values; plus the statistics pooled over all seeds."""
    out: dict[str, Any] = {}
    for m in names:
        mine = [r for r in rows if r["method"] == m]
        seeds = sorted({r["seed"] for r in mine})
        per_seed = {str(s): seed_stats([r for r in mine if r["seed"] == s]) for s in seeds}
        over = {}
        for k in PER_SEED_KEYS:
            vals = [per_seed[str(s)][k] for s in seeds]
            over[k] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                       "per_seed": vals}
        out[m] = {"seeds": seeds, "over_seeds": over, "pooled": seed_stats(mine),
                  "per_seed": per_seed}
    return out


LABELS = {"true": "true kp", "s3k": "S3K kp", "descriptor": "descriptor kp",
          "vae": "beta-VAE", "expert": "expert", "random": "random"}


def plot(summary: dict[str, Any], names: Sequence[str], path: Path, title: str) -> None:
    """Bars (mean over seeds) with per-seed points: success rate, median final position
    and angle error, median planning time."""
    plt = common.use_agg()
    panels = (("success_rate", "success rate (%)", 100.0),
              ("position_cm_median", "final position error, median (cm)", 1.0),
              ("angle_deg_median", "final angle error, median (deg)", 1.0),
              ("plan_ms_median", "planning per step, median (ms)", 1.0))
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    x = np.arange(len(names))
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        means = [scale * summary[m]["over_seeds"][key]["mean"] for m in names]
        ax.bar(x, np.nan_to_num(means), color="#9bb7d4")
        for j, m in enumerate(names):
            vals = scale * np.asarray(summary[m]["over_seeds"][key]["per_seed"], float)
            ax.scatter(np.full(len(vals), x[j]) + np.linspace(-0.15, 0.15, len(vals)), vals,
                       s=14, color="k", zorder=3)
        ax.set_xticks(x, [LABELS[m] for m in names], rotation=30, ha="right")
        ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    common.save_figure(fig, path)
