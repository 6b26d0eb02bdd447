"""Stage 5: the summary over seeds, the learning-curve figure and the Markdown table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.cable_rl.config import (
    _EPISODE_TYPES,
    ARM_COLORS,
    ARM_LABELS,
    ARMS,
    PASS_LEVELS,
    Config,
    read_rows,
    rolling_success,
    seed_stats,
)


# ---------------------------------------------------------------------------- 5. report
def first_pass(end_steps: np.ndarray, success: np.ndarray, window: int, level: float
               ) -> int | None:
    """Env steps at which a run's rolling success first reaches ``level``.

    Args:
        end_steps: ``(E,)`` env steps at which each episode ended (non-decreasing).
        success: ``(E,)`` 0/1 success of each episode.
        window: rolling window, env steps (:func:`rolling_success`).
        level: success rate to reach (0..1).

    Returns:
        The first episode end ``g >= window`` (a full window behind it) whose rolling rate
        over ``(g - window, g]`` is ``>= level``; None if there is none.
    """
    end_steps = np.asarray(end_steps, dtype=np.int64)
    grid = np.unique(end_steps[end_steps >= window])
    if grid.size == 0:
        return None
    rate = rolling_success(end_steps, success, grid, window)
    hit = np.flatnonzero(rate >= level)
    return int(grid[hit[0]]) if hit.size else None


def arm_seeds(cfg: Config, episodes: Sequence[Mapping[str, Any]], arm: str) -> list[int]:
    """The seeds of ``cfg`` with episodes of ``arm`` (all of them, except after
    ``--aggregate-only`` with unfinished runs)."""
    present = {r["seed"] for r in episodes if r["arm"] == arm}
    return [s for s in cfg.seeds if s in present]


def pass_steps(cfg: Config, episodes: Sequence[Mapping[str, Any]], arm: str
               ) -> dict[str, Any]:
    """Per :data:`PASS_LEVELS` level: the seeds' first-pass steps of the rolling *true*
    success (:func:`first_pass`), as ``first_<pct>_true_steps_{mean,min,max}`` over the seeds
    that got there, ``first_<pct>_true_seeds`` (how many) and ``..._per_seed`` (None where a
    seed never got there)."""
    out: dict[str, Any] = {}
    for level in PASS_LEVELS:
        key = f"first_{round(100 * level)}_true"
        per_seed = []
        for seed in arm_seeds(cfg, episodes, arm):
            rows = [r for r in episodes if r["arm"] == arm and r["seed"] == seed]
            per_seed.append(first_pass(np.array([r["steps"] for r in rows], dtype=np.int64),
                                       np.array([r["success_true"] for r in rows], float),
                                       cfg.window, level))
        got = [float(v) for v in per_seed if v is not None]
        st = seed_stats(got)
        out.update({f"{key}_steps_{k}": st[k] for k in ("mean", "min", "max")})
        out[f"{key}_seeds"] = len(got)
        out[f"{key}_per_seed"] = per_seed
    return out


def summarise(cfg: Config, results: Mapping[tuple[str, int], Mapping[str, Any]],
              probe: Mapping[str, Any] | None,
              episodes: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One summary row per arm (see ``SUMMARY_COLUMNS``; with ``episodes``, the rows of
    :func:`load_run_rows`, also the first-pass steps of :func:`pass_steps`)."""
    rows = []
    for arm in cfg.arms:
        res = [results[(arm, s)] for s in cfg.seeds if (arm, s) in results]
        row: dict[str, Any] = {"arm": arm, "observation": ARM_LABELS[arm],
                               "seeds": len(res), "steps": cfg.steps,
                               "eval_episodes": cfg.eval_episodes}
        for key in ("eval_success_keypoint", "eval_success_true"):
            st = seed_stats([r[key] for r in res])
            row.update({f"{key}_{k}": v for k, v in st.items()})
        for key in ("final_train_success_keypoint", "final_train_success_true"):
            st = seed_stats([r[key] for r in res])
            row.update({f"{key}_{k}": st[k] for k in ("mean", "min", "max")})
        row["eval_return_mean"] = seed_stats([r["eval_return"] for r in res])["mean"]
        row["train_steps_per_s"] = common.median([r["train_steps_per_s"] for r in res])
        row["run_wall_s"] = common.median([r["train_wall_s"] + r["eval_wall_s"] for r in res])
        med = p90 = math.nan
        if arm == "gt":
            med = p90 = 0.0
        elif probe is not None:
            src = probe["keypoint_model"] if arm == "kp" else probe["test"]
            med, p90 = src["median"], src["p90"]
        row["repr_error_median_mm"], row["repr_error_p90_mm"] = med, p90
        if episodes is not None:
            row.update(pass_steps(cfg, episodes, arm))
        rows.append(row)
    return rows


def load_run_rows(cfg: Config, results: Mapping[tuple[str, int], Mapping[str, Any]],
                  which: str) -> list[dict[str, Any]]:
    """All runs' ``episodes`` or ``eval`` rows, with ``arm`` and ``seed`` columns."""
    out = []
    for (arm, seed), res in results.items():
        for row in read_rows(Path(res["files"][which]), _EPISODE_TYPES):
            out.append({"arm": arm, "seed": seed, **row})
    return out


def plot(cfg: Config, episodes: Sequence[Mapping[str, Any]],
         results: Mapping[tuple[str, int], Mapping[str, Any]], path: Path) -> Path:
    """Success rate vs env steps (rolling window, mean over seeds, min-max band), keypoint
    rule (left) and ground truth (right), evaluation at the right edge."""
    plt = common.use_agg()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), sharey=True)
    start = min(cfg.window, cfg.steps)
    grid = np.unique(np.linspace(start, cfg.steps, 200).round().astype(np.int64))
    for ax, key, title in ((axes[0], "success_keypoint", "keypoint rule (S3K prediction)"),
                           (axes[1], "success_true", "ground truth (env's own rule)")):
        for arm in cfg.arms:
            curves = []
            seeds = [s for s in cfg.seeds if (arm, s) in results]
            for seed in seeds:
                rows = [r for r in episodes if r["arm"] == arm and r["seed"] == seed]
                end = np.array([r["steps"] for r in rows], dtype=np.int64)
                s = np.array([r[key] for r in rows], dtype=np.float64)
                curves.append(rolling_success(end, s, grid, cfg.window))
            c = np.array(curves)
            color = ARM_COLORS[arm]
            with warnings.catch_warnings():  # all-NaN columns (no episode in a window)
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, lo, hi = np.nanmean(c, 0), np.nanmin(c, 0), np.nanmax(c, 0)
            ax.plot(grid, mean, color=color, lw=1.8,
                    label=f"{ARM_LABELS[arm]} (mean of {len(seeds)})")
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
            ev = [results[(arm, s)][f"eval_{key}"] for s in seeds]
            x = cfg.steps * 1.02 + 0.01 * cfg.steps * ARMS.index(arm)
            ax.errorbar([x], [np.mean(ev)], yerr=[[np.mean(ev) - min(ev)], [max(ev) - np.mean(ev)]],
                        fmt="D", color=color, ms=5, capsize=3)
        ax.set_title(f"success by the {title}", fontsize=10)
        ax.set_xlabel("env steps (diamonds: final evaluation, held-out seeds)")
        ax.set_xlim(0, cfg.steps * 1.06)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"training success rate (rolling {cfg.window} steps)")
    axes[0].legend(fontsize=8, loc="upper left")
    agent = {"ddpgfd": "DDPGfD", "rlpd": "RLPD"}.get(cfg.agent_kind, cfg.agent_kind)
    fig.suptitle(f"{cfg.env_id}, fixed rig (camera_seed={cfg.camera_seed}): {agent} with "
                 f"{cfg.demos} demonstrations; bands: min-max over seeds", fontsize=10)
    try:
        return common.save_figure(fig, path)
    finally:
        plt.close(fig)


TABLE_COLUMNS: list[tuple[str, str, Any]] = [
    ("observation", "agent observes", "s"),
    ("seeds", "seeds", "d"),
    ("steps", "steps", "d"),
    ("eval_kp", "eval success, keypoint rule: mean ± sd [min–max]", "s"),
    ("eval_true", "eval success, true", "s"),
    ("train_kp", "final training success (rolling), keypoint rule", "s"),
    ("train_true", "final training success, true", "s"),
    ("repr_error_median_mm", "keypoint error of the representation, median mm", ".1f"),
    ("first_50", "first step at rolling true success >= 0.5: mean [min–max] (seeds)", "s"),
    ("first_80", "first step at rolling true success >= 0.8", "s"),
]


def _first(row: Mapping[str, Any], key: str) -> str:
    n = row.get(f"{key}_seeds")
    if n is None:
        return "–"
    total = row["seeds"]
    if not n:
        return f"never (0/{total})"
    mean, lo, hi = (row[f"{key}_steps_{k}"] for k in ("mean", "min", "max"))
    return f"{mean:,.0f} [{lo:,.0f}–{hi:,.0f}] ({n}/{total})"


def _pm(row: Mapping[str, Any], key: str, sd: bool = True) -> str:
    mean, lo, hi = row[f"{key}_mean"], row[f"{key}_min"], row[f"{key}_max"]
    if not math.isfinite(mean):
        return "–"
    s = f"{mean:.2f}"
    if sd and math.isfinite(row.get(f"{key}_sd", math.nan)):
        s += f" ± {row[f'{key}_sd']:.2f}"
    return s + f" [{lo:.2f}–{hi:.2f}]"


def markdown_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary rows as a Markdown table."""
    table = [{**r, "eval_kp": _pm(r, "eval_success_keypoint"),
              "eval_true": _pm(r, "eval_success_true"),
              "train_kp": _pm(r, "final_train_success_keypoint", sd=False),
              "train_true": _pm(r, "final_train_success_true", sd=False),
              "first_50": _first(r, "first_50_true"), "first_80": _first(r, "first_80_true")}
             for r in rows]
    return common.markdown_table(table, TABLE_COLUMNS)
