"""Every number the README quotes from ``benchmarks/results/`` matches the committed file.

Each entry of :data:`CLAIMS` is one README table row or sentence written as a template: the
README's text with each number replaced by a ``str.format`` field that reads the value from a
result file, with the README's rounding as the format spec (``{median_mm:.1f}``). The test
formats the template from the file and checks that the README contains the result
(whitespace-normalised, so a sentence may wrap). When a benchmark is rerun, the README
sentences whose numbers changed fail here with the text they should now read.

Adding a claim: copy the README text into a :class:`Claim`, replace each number with a field,
and give the values in ``values`` (a function of the loaded files; helpers :func:`doc`,
:func:`one`, :func:`rows`). Claims without committed data must say so in the README
(:data:`UNBACKED`).
"""

from __future__ import annotations

import csv
import functools
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
import readme_claims
import readme_claims_push_mpc
from readme_claims import README, RESULTS, Claim, doc, hundreds, minus, one, rows, span, table
from readme_claims_push_mpc import PUSH_MPC_CLAIMS

ABLATION_SHORT_LABELS = (
    ("base", "base: 51 demos, UTD 4, 2 LayerNorm critics, socket-relative, plug motion + time "
             "left"),
    ("no_demos", "no demonstrations"), ("utd1", "UTD 1"),
    ("no_layer_norm", "no LayerNorm in the critics"),
    ("critics10", "10 critics (REDQ ensemble), min over 2"),
    ("world", "world-frame positions"), ("no_velocity_time", "no plug motion, no time left"))
SHORT_STEM = "cable_rl_rlpd_full_short_10k"
SHORT40_STEM = "cable_rl_rlpd_full_short"


def _first_pass_text(row: dict[str, Any], pct: int, seeds_word: bool = False) -> str:
    """``5,518 steps [4,934–6,159] (5/5 seeds)`` or ``never (0/5)`` for a cable_rl row
    (``seeds_word``: "seeds" also after a partial count, ``(4/5 seeds)``)."""
    n, seeds = row[f"first_{pct}_true_seeds"], row["seeds"]
    if not n:
        return f"never (0/{seeds})"
    lo, hi = row[f"first_{pct}_true_steps_min"], row[f"first_{pct}_true_steps_max"]
    return (f"{row[f'first_{pct}_true_steps_mean']:,.0f} steps [{lo:,.0f}–{hi:,.0f}] "
            f"({n}/{seeds}{' seeds' if n == seeds or seeds_word else ''})")


AGENT_KP = "cable_agent_keypoints_short"


def _mm(x: float) -> str:
    """``-1.9`` as the README writes it (one decimal, typographic minus)."""
    return minus(f"{x:.1f}")


@functools.cache
def _agent_kp_csv(model: str, phase: str) -> dict[str, float]:
    """``plug_tip`` error (mm) and the insertion-error bias quantiles of one model and phase
    of AGENT_KP's CSV."""
    with open(RESULTS / f"{AGENT_KP}.csv", newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["checkpoint"] == model
                   and r["phase"] == phase and r["keypoint"] == "plug_tip")
    return {"n": int(row["frames"]), "tip": float(row["median_mm"]),
            "tip90": float(row["p90_mm"]), "b": float(row["insertion_error_bias_median_mm"]),
            "b10": float(row["insertion_error_bias_p10_mm"]),
            "b90": float(row["insertion_error_bias_p90_mm"])}


def _agent_kp_row(model: str, phase: str, label: str) -> dict[str, Any]:
    """A row of the README's agent-frames table."""
    r = _agent_kp_csv(model, phase)
    return {"model": model, "label": label, "n": r["n"], "tip": r["tip"], "tip90": r["tip90"],
            "b": _mm(r["b"]), "b10": _mm(r["b10"]), "b90": _mm(r["b90"])}


def _agent_kp_near(model: str) -> dict[str, Any]:
    """AGENT_KP's near-threshold bias quantiles (mm) of one model."""
    return doc(AGENT_KP)["results"][model]["bias_near_threshold_mm"]


def _cable_rl_row(stem: str, arm: str, label: str, seeds_word: bool, **extra: Any
                  ) -> dict[str, Any]:
    """A row of a README cable_rl table: the arm's result row and its first-pass texts."""
    r = one(stem, arm=arm)
    return {"label": label, "r": r, "p50": _first_pass_text(r, 50, seeds_word),
            "p80": _first_pass_text(r, 80, seeds_word), **extra}


def _finished_seeds(stem: str, arm: str) -> list[int]:
    """The seeds of ``arm`` in a cable_rl result (its config's seeds less its missing runs)."""
    missing = {m["seed"] for m in doc(stem).get("missing_runs", []) if m["arm"] == arm}
    return [s for s in doc(stem)["config"]["seeds"] if s not in missing]


def _common_seed_count(stem: str, *arms: str) -> int:
    """The number of seeds of ``arms`` in a cable_rl result, which must be the same seeds
    (a README sentence saying "all N seeds of both arms")."""
    seeds = {arm: _finished_seeds(stem, arm) for arm in arms}
    assert len({tuple(s) for s in seeds.values()}) == 1, f"{stem}: different seeds {seeds}"
    return len(seeds[arms[0]])


@functools.cache
def _short_ends(arm: str, stem: str = SHORT_STEM) -> dict[str, int]:
    """How the held-out episodes of one arm of a cable_rl result (its _eval.csv) ended."""
    with open(RESULTS / f"{stem}_eval.csv", newline="", encoding="utf-8") as f:
        eps = [r for r in csv.DictReader(f) if r["arm"] == arm]
    rule_only = [r for r in eps if r["success_true"] == "0" and r["success_keypoint"] == "1"]
    return {"episodes": len(eps), "rule_only": len(rule_only),
            "rule_only_below_3cm": sum(float(r["final_insertion_error_m"]) < 0.03
                                       for r in rule_only),
            "time": sum(r["success_keypoint"] == "0" and r["left_safety_box"] == "0"
                        and int(r["length"]) == 40 for r in eps)}


def _rolling_true_max(stem: str, arm: str, window: int = 2000) -> dict[str, float]:
    """Largest rolling true training success of ``arm`` (episodes ending in the last
    ``window`` env steps, at every episode end from ``window`` on): on any one seed, and of
    the mean over seeds on a 500-step grid."""
    with open(RESULTS / f"{stem}_episodes.csv", newline="", encoding="utf-8") as f:
        eps = [r for r in csv.DictReader(f) if r["arm"] == arm]
    runs = {}
    for r in eps:
        runs.setdefault(r["seed"], []).append((int(r["steps"]), int(r["success_true"])))

    def rate(run: list[tuple[int, int]], at: int) -> float | None:
        inside = [ok for end, ok in run if at - window < end <= at]
        return sum(inside) / len(inside) if inside else None

    per_seed = max(v for run in runs.values() for end, _ in run if end >= window
                   if (v := rate(run, end)) is not None)
    grid = range(window, max(end for run in runs.values() for end, _ in run) + 1, 500)
    means = [sum(vals) / len(vals) for at in grid
             if (vals := [v for run in runs.values() if (v := rate(run, at)) is not None])]
    return {"seed": per_seed, "mean": max(means)}


def _single_call_cpu(stem: str, arm: str) -> tuple[float, int]:
    """Mean training CPU seconds of ``arm``'s runs that ran in one call (a resumed run
    records only its last call's CPU time) and how many there are."""
    cpu = [r["train_cpu_s_this_call"] for r in doc(stem)["runs"]
           if r["arm"] == arm and r["resumed_from_step"] is None]
    return sum(cpu) / len(cpu), len(cpu)


def _ka(labels: int, alpha: float) -> dict[str, Any]:
    return one("keypoint_accuracy", labels=labels, alpha=alpha)


def _ls(labels: int, unlabelled: int) -> dict[str, Any]:
    return one("label_scaling_quick", labels=labels, unlabelled=unlabelled)


def _as(labels: int, alpha: float, gate: str = "gated") -> float:
    return one("alpha_sweep_quick", labels=labels, alpha=alpha, gate=gate)["test_rms_px"]


def _ds(labels: int, unlabelled: int) -> dict[str, Any]:
    return one("domain_shift_quick", "summary", labels=labels, unlabelled=unlabelled)


def _mean_gap(unlabelled: str) -> float:
    return doc("domain_shift_quick")["mean_gap_px_by_unlabelled"][unlabelled]


def _sh(shoes: int) -> dict[str, Any]:
    return one("shoe_generalization_quick", "summary", shoes=shoes)


def _probe() -> dict[str, Any]:
    return doc("cable_rl_quick")["linear_probe"]


ALPHAS = (0.0, 0.1, 0.5, 1.0, 2.0)

#: README rows of the RL throughput table: (arm cell, agent cell, arm, agent, per-CPU-s bold)
RL_THROUGHPUT_ROWS = [
    ("`gt` (no rendering)", "`rlpd_e2` (2 critics, batch 256)", "gt", "rlpd_e2", False),
    ("`gt`", "`rlpd_e2_b128` (batch 128)", "gt", "rlpd_e2_b128", False),
    ("`gt`", "`rlpd_e2_b128_d2` (+ actor every 2nd step)", "gt", "rlpd_e2_b128_d2", True),
    ("`gt`", "`rlpd_e10` (10 critics)", "gt", "rlpd_e10", False),
    ("`gt_render` (4 x 32 px rendered)", "`rlpd_e2`", "gt_render", "rlpd_e2", False),
    ("`gt_render`", "`rlpd_e2_b128_d2`", "gt_render", "rlpd_e2_b128_d2", False),
    ("`kp` (4 x 128 px + S3K model)", "`rlpd_e2`", "kp", "rlpd_e2", False),
    ("`kp`", "`rlpd_e2_b128_d2`", "kp", "rlpd_e2_b128_d2", True),
    ("`kp`", "`rlpd_e10`", "kp", "rlpd_e10", False),
]


def _updates(prefix: str) -> float:
    """Updates/s of the learner whose name starts with ``prefix`` (rl_throughput.json)."""
    (found,) = [u["updates_per_s"] for u in doc("rl_throughput")["updates"]
                if u["learner"].startswith(prefix)]
    return found


def _alpha_row(labels: int) -> dict[str, Any]:
    gated = {a: _as(labels, a) for a in ALPHAS}
    best = min(v for a, v in gated.items() if a > 0)
    cells = [f"**{v:.2f}**" if a > 0 and v == best else f"{v:.2f}" for a, v in gated.items()]
    for a in (0.5, 2.0):
        found = rows("alpha_sweep_quick", labels=labels, alpha=a, gate="ungated")
        cells.append(f"{found[0]['test_rms_px']:.2f}" if found else "\u2013")
    return {"labels": labels, "cells": " | ".join(cells)}


def _cable_rl(stem: str, arm: str) -> dict[str, Any]:
    return one(stem, arm=arm)


SHIPPED_LABELS = {
    "Box": "Box",
    "BoxDistractors (pool 0)": "BoxDistractors (pool 0, as trained)",
    "BoxDistractors (pool 3, unseen)": "BoxDistractors (pool 3, distractors never seen)",
    "Shoes (training shoes)": "Shoes (training shoes)",
    "Shoes (4 held-out shoes)": "Shoes (4 held-out shoes)",
    "CableInsert": "CableInsert",
    "CableInsertShort": "CableInsertShort",
}
INFERENCE_LABELS = {  # keypoint_inference variant -> README row text
    "stride2-add-fused-nhwc": "**default**: stride 2, additive skips, BatchNorm folded, "
                              "channels-last | **{predict_ms:.2f}**",
    "stride2-add-bn-nchw": "same, BatchNorm not folded, NCHW | {predict_ms:.2f}",
    "stride2-concat-fused-nhwc": "concatenated skips (classic U-Net) | {predict_ms:.2f}",
    "stride1-add-fused-nhwc": "heatmaps at full resolution (stride 1) | {predict_ms:.2f}",
    "stride4-add-fused-nhwc": "heatmaps at 1/4 resolution (stride 4) | {predict_ms:.2f}",
}
ABLATION_LABELS = {
    "ddpgfd": "DDPGfD defaults (demos 25 % of batches, 5-step, BC weight 1 + Q-filter) | {m}",
    "no_qfilter": "no Q-filter | {m}",
    "bc10_no_qfilter": "BC weight 10, no Q-filter | {m}",
    "bc100_no_qfilter": "BC weight 100, no Q-filter | {m}",
    "pretrain": "3,000 pre-training steps on the demos (DQfD), then defaults | {m}",
    "pretrain_bc100": "**pre-training + BC weight 100, no Q-filter** | **{m}**",
    "no_demos": "no demonstrations (TD3, 5-step) | {m}",
}
BC_BOLD = {"kp": True, "vae": True, "gt": False}


def _inference(variant: str) -> dict[str, Any]:
    single = one("keypoint_inference", variant=variant, batch=1)
    batched = one("keypoint_inference", variant=variant, batch=8)
    return {"label": INFERENCE_LABELS[variant].format(**single), **single,
            "batched_ms": batched["ms_per_frame"]}


def _ablation(variant: str) -> dict[str, Any]:
    r = one("cable_rl_ablation_quick", variant=variant)
    return {**r, "label": ABLATION_LABELS[variant].format(m=f"{r['eval_success_true_mean']:.2f}")}


def _bc(arm: str) -> dict[str, Any]:
    r = one("cable_bc_quick", arm=arm)
    mean = f"{r['success_true_mean']:.2f}"
    return {**r, "mean": f"**{mean}**" if BC_BOLD[arm] else mean}


def _throughput(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "overhead_ms": r["step_ms"] - r["floor_ms"]}


def _slower_steps() -> dict[str, Any]:
    """How much slower a training step is with the self-supervised term (label scaling)."""
    slower = [100 * (1 - _ls(lab, u)["steps_per_s"] / _ls(lab, 0)["steps_per_s"])
              for lab in (3, 10, 30, 100) for u in (100, 1000)]
    return dict(zip(("lo", "hi"), span(slower), strict=True))


def _rlpd_diag() -> dict[str, Any]:
    """cable_rlpd_diagnose: summary + the rim failures' offsets."""
    d = doc("cable_rlpd_diagnose_nobackupent_s0")
    rim = [e["agent_final_tip_offset_mm"] for e in d["episodes"] if not e["agent_success"]
           and abs(e["agent_final_tip_height_mm"]) < 3 and 6 < e["agent_final_tip_offset_mm"] < 17]
    return {"s": d["summary"], "rim": len(rim), "lo": min(rim), "hi": max(rim),
            "pct": 100 * d["summary"]["frac_agent_action_rated_higher"]}


def _rlpd_run(stem: str, label: str, seed: int) -> dict[str, Any]:
    """One cable_rlpd run: training success, Q0 and paid return over its last 2,000 steps,
    held-out successes and box exits."""
    d = doc(f"cable_rlpd_{stem}")
    last = [b for b in d["blocks"] if int(b["steps"].split("-")[1]) > d["args"]["steps"] - 2000]
    n = sum(b["episodes"] for b in last)
    return {"label": label, "seed": seed, "n": n,
            "s": sum(round(b["frac_success"] * b["episodes"]) for b in last),
            "q0": sum(b["mean_q0"] * b["episodes"] for b in last) / n,
            "paid": sum(b["mean_discounted_return"] * b["episodes"] for b in last) / n,
            "held": d["eval"]["ends"].get("success", 0), "he": d["eval"]["episodes"],
            "left": d["eval"]["ends"].get("left_box", 0)}


def _cable_task(variant: str, expert_stem: str, env_id: str, runs: tuple[str, str]
                ) -> dict[str, Any]:
    """One row of the README's two-cable-tasks table: pendulum medians, expert, RLPD and
    state-BC results."""
    p = doc("cable_pendulum")["summary"][variant]
    e = doc(expert_stem)["summary"]
    period = p["median_period_s"]
    return {"depth": p["median_tip_depth_m"],
            "period": "no swing" if period is None else f"{period:.2f} s",
            "peak": 1000 * p["median_peak_amplitude_m"], "settle": p["median_settle_s"],
            "motion": 1000 * p["median_tip_motion_per_step_m"],
            "es": e["successes"], "ee": e["episodes"], "em": e["median_steps_to_success"],
            "r0": _rlpd_run(runs[0], "", 0), "r1": _rlpd_run(runs[1], "", 1),
            "bc": doc("cable_state_bc")["summary"][env_id]}


def _alpha_rise() -> dict[str, float]:
    """SAC temperature of the 20,000-step learned-temperature cable_rlpd run at 10k and 16k
    steps (last finished episode before), its maximum and max / initial (rounded to 100s)."""
    import csv

    path = RESULTS / "cable_rlpd_rel_e2_utd4_t0.01_nobackupent_tl_vel_s0_20000_episodes.csv"
    with path.open(encoding="utf-8") as f:
        episodes = [(int(r["env_steps"]), float(r["alpha"])) for r in csv.DictReader(f)]

    def at(step: int) -> float:
        return [a for s, a in episodes if s <= step][-1]

    amax = max(a for _, a in episodes)
    return {"a10": at(10_000), "a16": at(16_000), "amax": amax,
            "ratio": round(amax / 0.01, -2)}


#: README rows of the cable RLPD change table: (row id, result stem, setting label, seed)
RLPD_RUNS = [
    ("plain s0", "rel_e2_utd4_t0.01_nobackupent_s0_10000", "plain", 0),
    ("tl s0", "rel_e2_utd4_t0.01_nobackupent_tl_s0_10000", "`--time-limit`", 0),
    ("tl s1", "rel_e2_utd4_t0.01_nobackupent_tl_s1_10000", "`--time-limit`", 1),
    ("vel s0", "rel_e2_utd4_t0.01_nobackupent_vel_s0_10000", "`--velocity`", 0),
    ("tl vel s0", "rel_e2_utd4_t0.01_nobackupent_tl_vel_s0_10000",
     "`--time-limit --velocity`", 0),
    ("tl vel s1", "rel_e2_utd4_t0.01_nobackupent_tl_vel_s1_10000",
     "`--time-limit --velocity`", 1),
]

RLPD_DIAG_TEMPLATE = (
    "The agent inserted on {s[agent_successes]} of {s[episodes]} (the expert on "
    "{s[expert_successes]} of {s[episodes]}, median {s[expert_median_steps]:.1f} steps). In "
    "{s[failures_frozen]} of its {s[failures]} failures the policy freezes (every linear action "
    "component below 0.1 for at least 15 of the last 20 steps) while the critic values the "
    "state at {s[failures_q_last_min]:.0f}–{s[failures_q_last_max]:.0f}: {rim} with the tip on "
    "the hole's rim ({lo:.1f}–{hi:.1f} mm off the axis, at the opening's height; the hole's "
    "edge is at 6 mm), the others hovering 1–3 cm above or beside the socket. On the expert's "
    "{s[expert_states]} states the critic rates the agent's action higher than the expert's in "
    "{pct:.0f} % of them (mean Q {s[mean_q_agent_action]:.1f} vs "
    "{s[mean_q_expert_action]:.1f}).")
RLPD_ROW_TEMPLATE = ("| {label} | {seed} | {s} / {n} | **{held} / {he}** | {left} | "
                     "{q0:.0f} vs {paid:.0f} |")


CLAIMS: list[Claim] = [
    # ---- keypoint accuracy (keypoint_accuracy.json)
    *table("keypoint_accuracy",
           "| {labels} | {unlabelled} | {alpha:g} | {steps:,} | {test_median_mm:.2f} | "
           "{test_p90_mm:.2f} | {test_mean_mm:.2f} | {test_rms_px:.2f} |",
           [(f"L{lab}_a{a:g}", functools.partial(_ka, lab, a))
            for lab in (10, 30, 100) for a in (0.5, 0.0)]),
    Claim("keypoint_accuracy budget", "**{m:.0f} CPU-minutes per run**",
          lambda: {"m": one("keypoint_accuracy", labels=10, alpha=0.5)["minutes"]}),
    Claim("keypoint_accuracy 10 labels",
          "with 10 labels it lowers the median from {b[test_median_mm]:.2f} to "
          "{a[test_median_mm]:.2f} mm, the mean from {b[test_mean_mm]:.2f} to "
          "{a[test_mean_mm]:.2f} mm and the RMS from {b[test_rms_px]:.2f} to "
          "{a[test_rms_px]:.2f} px (fewer gross errors), at {fewer:.0f} % fewer steps",
          lambda: {"a": _ka(10, 0.5), "b": _ka(10, 0.0),
                   "fewer": 100 * (1 - _ka(10, 0.5)["steps"] / _ka(10, 0.0)["steps"])}),
    Claim("keypoint_accuracy 100 labels",
          "with 100 it is gone ({a[test_median_mm]:.2f} vs {b[test_median_mm]:.2f} mm)",
          lambda: {"a": _ka(100, 0.5), "b": _ka(100, 0.0)}),
    # ---- inference (keypoint_inference.json)
    *table("keypoint_inference", "| {label} | {network_ms:.2f} | {batched_ms:.2f} |",
           [(v, functools.partial(_inference, v)) for v in INFERENCE_LABELS]),
    # ---- label scaling (label_scaling_quick.json)
    *table("label_scaling",
           "| {lab} | {c[0][test_rms_px]:.2f} ({c[0][test_median_mm]:.2f}) | "
           "{c[1][test_rms_px]:.2f} ({c[1][test_median_mm]:.2f}) | "
           "{c[2][test_rms_px]:.2f} ({c[2][test_median_mm]:.2f}) |",
           [(f"L{lab}", functools.partial(
               lambda lab: {"lab": lab, "c": [_ls(lab, u) for u in (0, 100, 1000)]}, lab))
            for lab in (3, 10, 30, 100)]),
    Claim("label_scaling steps", "1 thread, {lo:,}–{hi:,} steps of batch 4",
          lambda: dict(zip(("lo", "hi"), span(r["steps"] for r in rows("label_scaling_quick")),
                            strict=True))),
    Claim("label_scaling slower", "(and alpha > 0 steps being {lo:.0f}–{hi:.0f} % slower)",
          _slower_steps),
    Claim("label_scaling 3 labels",
          "the error is {r0:.1f}x that of 10 labelled samples without unlabelled data and "
          "{r1000:.1f}x with 1,000",
          lambda: {"r0": _ls(3, 0)["test_rms_px"] / _ls(10, 0)["test_rms_px"],
                   "r1000": _ls(3, 1000)["test_rms_px"] / _ls(10, 1000)["test_rms_px"]}),
    Claim("label_scaling 3 labels range", "{px[0]:.1f}–{px[1]:.1f} px at 64 px, median "
          "{mm[0]:.0f}–{mm[1]:.0f} mm",
          lambda: {"px": span(r["test_rms_px"] for r in rows("label_scaling_quick", labels=3)),
                   "mm": span(r["test_median_mm"]
                              for r in rows("label_scaling_quick", labels=3))}),
    Claim("label_scaling 10 labels",
          "10 labelled + 1,000 unlabelled samples give {a:.2f} px, against {b:.2f} px for 10 "
          "labelled alone and {c:.2f} px for 100 labelled",
          lambda: {"a": _ls(10, 1000)["test_rms_px"], "b": _ls(10, 0)["test_rms_px"],
                   "c": _ls(100, 0)["test_rms_px"]}),
    Claim("label_scaling few labels",
          "{a[0]:.2f} → {a[1]:.2f} → {a[2]:.2f} px at L = 3 and {b[0]:.2f} → {b[1]:.2f} → "
          "{b[2]:.2f} at L = 10",
          lambda: {"a": [_ls(3, u)["test_rms_px"] for u in (0, 100, 1000)],
                   "b": [_ls(10, u)["test_rms_px"] for u in (0, 100, 1000)]}),
    Claim("label_scaling 30 labels", "At L = 30 the gain ({a[0]:.2f} → {a[1]:.2f} → {a[2]:.2f})",
          lambda: {"a": [_ls(30, u)["test_rms_px"] for u in (0, 100, 1000)]}),
    Claim("label_scaling equal totals",
          "100 + 0 gives {a:.2f} px, while 10 + 100 gives {b:.2f} px and 3 + 100 gives {c:.2f} px",
          lambda: {"a": _ls(100, 0)["test_rms_px"], "b": _ls(10, 100)["test_rms_px"],
                   "c": _ls(3, 100)["test_rms_px"]}),
    Claim("label_scaling CPU", "({m:.0f} CPU-min, while two other benchmarks",
          lambda: {"m": sum(r["minutes"] for r in rows("label_scaling_quick"))}),
    # ---- alpha sweep (alpha_sweep_quick.json)
    *table("alpha_sweep", "| {labels} | {cells} |",
           [(f"L{lab}", functools.partial(_alpha_row, lab)) for lab in (3, 10, 30)]),
    Claim("alpha_sweep 3 labels",
          "from {lo:.2f}–{hi:.2f} px at alpha 0.1–0.5 through {a1:.2f} px at 1 to {a2:.2f} px "
          "at 2 (median {m01:.1f} → {m2:.1f} mm from alpha 0.1 to 2)",
          lambda: {**dict(zip(("lo", "hi"), span([_as(3, 0.1), _as(3, 0.5)]), strict=True)),
                   "a1": _as(3, 1.0), "a2": _as(3, 2.0),
                   "m01": one("alpha_sweep_quick", labels=3, alpha=0.1)["test_median_mm"],
                   "m2": one("alpha_sweep_quick", labels=3, alpha=2.0)["test_median_mm"]}),
    Claim("alpha_sweep ungated",
          "alpha = 2 it gives {u2[0]:.2f} / {u2[1]:.2f} px at L = 10 / 30, against "
          "{u05[0]:.2f} / {u05[1]:.2f} px at alpha = 0.5, and no better than alpha = 0 "
          "({g0[0]:.2f} / {g0[1]:.2f} px). The gated alpha = 2 gives {g2[0]:.2f} / {g2[1]:.2f} px",
          lambda: {"u2": [_as(lab, 2.0, "ungated") for lab in (10, 30)],
                   "u05": [_as(lab, 0.5, "ungated") for lab in (10, 30)],
                   "g0": [_as(lab, 0.0) for lab in (10, 30)],
                   "g2": [_as(lab, 2.0) for lab in (10, 30)]}),
    Claim("alpha_sweep wide range", "every alpha in 0.1–2 is within ±{d:.2f} px of the best",
          lambda: {"d": max(_as(lab, a) - min(_as(lab, b) for b in ALPHAS[1:])
                            for lab in (10, 30) for a in ALPHAS[1:])}),
    Claim("alpha_sweep best",
          "{a[0]:.2f} / {a[1]:.2f} px at L = 10, {b[0]:.2f} / {b[1]:.2f} px at L = 30",
          lambda: {"a": [_as(10, 0.5), _as(10, 1.0)], "b": [_as(30, 0.5), _as(30, 1.0)]}),
    # ---- domain shift (domain_shift_quick.json, summary = one row per table row)
    *table("domain_shift",
           "| {unlabelled} | {labels} | {start_unseen_rms_px:.2f} | {full_unseen_rms_px:.2f} | "
           "{gap} | {start_unseen_rms_px_400:.1f} | {full_unseen_rms_px_400:.1f} | "
           "{start_unseen_median_mm:.1f} / {full_unseen_median_mm:.1f} |",
           [(f"U{u}_L{lab}", functools.partial(
               lambda lab, u: {**_ds(lab, u), "gap": minus(f"{_ds(lab, u)['gap_px']:+.2f}")},
               lab, u)) for u in (0, 1000) for lab in (10, 30, 100)]),
    Claim("domain_shift steps", "~{lo}-{hi} steps), one seed",
          lambda: dict(zip(("lo", "hi"), map(hundreds, span(
              r["steps"] for r in rows("domain_shift_quick"))), strict=True))),
    Claim("domain_shift cost", "The profile's training costs {m:.1f} CPU-minutes: {w:.0f} min wall",
          lambda: {"m": sum(r["minutes"] for r in rows("domain_shift_quick")),
                   "w": doc("domain_shift_quick")["wall_s"] / 60}),
    Claim("domain_shift start fails",
          "({px[0]:.0f}-{px[1]:.0f} px, median {mm[0]:.0f}-{mm[1]:.0f} mm: it locks onto "
          "distractors) while full mode gets {f[0]:.1f}-{f[1]:.1f} px",
          lambda: {"px": span(_ds(lab, 0)["start_unseen_rms_px"] for lab in (10, 30, 100)),
                   "mm": span(_ds(lab, 0)["start_unseen_median_mm"] for lab in (10, 30, 100)),
                   "f": span(_ds(lab, 0)["full_unseen_rms_px"] for lab in (10, 30, 100))}),
    Claim("domain_shift gap", "gap falls from {a} px to {b} px",
          lambda: {"a": minus(f"{_mean_gap('0'):+.1f}"), "b": minus(f"{_mean_gap('1000'):+.2f}")}),
    Claim("domain_shift pool 0",
          "({s[0]:.2f}-{s[1]:.2f} vs {f[0]:.2f}-{f[1]:.2f} px)",
          lambda: {m[0]: span(r["initial_rms_px"] for r in rows("domain_shift_quick", mode=m))
                   for m in ("start", "full")}),
    Claim("domain_shift plateau", "10 labelled samples already reach the plateau "
          "({p[0]:.1f}-{p[1]:.1f} px)",
          lambda: {"p": span([_ds(10, 0)["full_unseen_rms_px"], _ds(10, 1000)["full_unseen_rms_px"],
                              _ds(10, 1000)["start_unseen_rms_px"]])}),
    Claim("domain_shift more labels", "({a:.1f} → {b:.1f} px from 10 to 100)",
          lambda: {"a": _ds(10, 0)["start_unseen_rms_px"],
                   "b": _ds(100, 0)["start_unseen_rms_px"]}),
    Claim("domain_shift new pool harder", "(≥ {a:.1f} px vs ≤ {b:.1f} px)",
          lambda: {"a": min(r["unseen_rms_px"] for r in rows("domain_shift_quick")),
                   "b": max(r["initial_rms_px"] for r in rows("domain_shift_quick"))}),
    # ---- shoe generalization (shoe_generalization_quick.json, summary per table row)
    *table("shoe_generalization",
           "| {shoes} | {labelled_shoes_rms_px:.2f} | {train_shoes_rms_px:.2f} | "
           "{heldout_rms_px:.2f} | {train_shoes_rms_px_400:.1f} | {heldout_rms_px_400:.1f} | "
           "{paper_train_px_400:.2f} | {paper_test_px_400:.2f} | "
           "{train_shoes_median_mm:.1f} / {heldout_median_mm:.1f} |",
           [(f"{k}shoes", functools.partial(_sh, k)) for k in (1, 2, 3, 6, 12)]),
    Claim("shoe_generalization steps", "(~{lo}-{hi} steps)",
          lambda: dict(zip(("lo", "hi"), map(hundreds, span(
              r["steps"] for r in rows("shoe_generalization_quick"))), strict=True))),
    Claim("shoe_generalization cost",
          "The profile's training costs {m:.1f} CPU-minutes: {w:.1f} min wall",
          lambda: {"m": sum(r["minutes"] for r in rows("shoe_generalization_quick")),
                   "w": doc("shoe_generalization_quick")["wall_s"] / 60}),
    Claim("shoe_generalization paper", "from {a:.2f} px (1 shoe) to {b:.2f} px (12) at 400 px",
          lambda: {"a": _sh(1)["paper_test_px_400"], "b": _sh(12)["paper_test_px_400"]}),
    Claim("shoe_generalization trend",
          "ours falls from {a[heldout_rms_px]:.1f} to {b[heldout_rms_px]:.1f} px at 64 px "
          "(≈ {a[heldout_rms_px_400]:.0f} → {b[heldout_rms_px_400]:.0f} px rescaled; a "
          "{ours:.1f}x drop vs the paper's {paper:.1f}x), the median 3D error from "
          "{a[heldout_median_mm]:.0f} to {b[heldout_median_mm]:.0f} mm. Our absolute held-out "
          "errors, rescaled, are {r[0]:.0f}-{r[1]:.0f}x the paper's",
          lambda: {"a": _sh(1), "b": _sh(12),
                   "ours": _sh(1)["heldout_rms_px"] / _sh(12)["heldout_rms_px"],
                   "paper": _sh(1)["paper_test_px_400"] / _sh(12)["paper_test_px_400"],
                   "r": span(s["heldout_rms_px_400"] / s["paper_test_px_400"]
                             for s in doc("shoe_generalization_quick")["summary"])}),
    Claim("shoe_generalization 2 shoes", "already **2 shoes generalize reasonably** ({p:.2f} px)",
          lambda: {"p": _sh(2)["paper_test_px_400"]}),
    Claim("shoe_generalization swaps",
          "held-out RMS stays at ~{px:.0f} px because the `front` keypoint is often put at the "
          "heel (held-out `front` median {f[0]:.0f}-{f[1]:.0f} mm",
          lambda: {"px": next(iter({round(_sh(k)["heldout_rms_px"]) for k in (1, 2, 3)})),
                   "f": span(r["per_keypoint_median_mm"]["heldout"]["front"]
                             for r in rows("shoe_generalization_quick") if r["shoes"] <= 3)}),
    Claim("shoe_generalization no swaps", "(`front` median {f[0]:.1f}-{f[1]:.1f} mm)",
          lambda: {"f": span(r["per_keypoint_median_mm"]["heldout"]["front"]
                             for r in rows("shoe_generalization_quick") if r["shoes"] >= 6)}),
    Claim("shoe_generalization labelled shoes",
          "{px[0]:.1f}-{px[1]:.1f} px at 64 px (≈ {r[0]:.0f}-{r[1]:.0f} px rescaled; median "
          "{mm[0]:.1f}-{mm[1]:.1f} mm)",
          lambda: {k: span(s[f] for s in doc("shoe_generalization_quick")["summary"])
                   for k, f in (("px", "labelled_shoes_rms_px"),
                                ("r", "labelled_shoes_rms_px_400"),
                                ("mm", "labelled_shoes_median_mm"))}),
    Claim("shoe_generalization train shoes", "({a:.1f} → {b:.1f} px)",
          lambda: {"a": _sh(1)["train_shoes_rms_px"], "b": _sh(12)["train_shoes_rms_px"]}),
    # ---- shipped checkpoints (shipped_checkpoints.json)
    *table("shipped_checkpoints", "| {label} | {median_mm:.1f} | {p90_mm:.1f} | {rms_px:.2f} |",
           [(label, functools.partial(
               lambda label: {**one("shipped_checkpoints", evaluation=label),
                              "label": SHIPPED_LABELS[label]}, label))
            for label in SHIPPED_LABELS]),
    Claim("shipped_checkpoints size", "{kb:.0f} KiB each",
          lambda: {"kb": next(iter({round(r["checkpoint_kb"])
                                    for r in rows("shipped_checkpoints")}))}),
    Claim("shipped_checkpoints samples", "on {n} held-out samples per row",
          lambda: {"n": next(iter({r["samples"] for r in rows("shipped_checkpoints")}))}),
    # ---- wrapped step (wrapped_step.json)
    *table("wrapped_step",
           "| {torch_threads} | {steps_per_s:.1f} | {step_ms:.1f} | {env_ms:.1f} | "
           "{inference_ms:.1f} | {wrappers_ms:.2f} |",
           [(f"threads{t}", functools.partial(one, "wrapped_step", torch_threads=t))
            for t in (1, 2)]),
    # ---- RL training-loop throughput (rl_throughput.json)
    *[Claim(f"rl_throughput[{arm},{agent}]",
            f"| {arm_cell} | {agent_cell} | {{agent_steps_per_s:.0f}} | "
            + ("**{agent_steps_per_cpu_s:.0f}**" if bold else "{agent_steps_per_cpu_s:.0f}")
            + " | {env_ms:.1f} | {update_ms:.1f} |",
            functools.partial(one, "rl_throughput", arm=arm, agent=agent))
      for arm_cell, agent_cell, arm, agent, bold in RL_THROUGHPUT_ROWS],
    *[Claim(f"rl_throughput_short[{arm},{agent}]",
            f"| {arm_cell} | {agent_cell} | {{agent_steps_per_s:.0f}} | "
            "{agent_steps_per_cpu_s:.0f} | {env_ms:.1f} | {update_ms:.1f} |",
            functools.partial(one, "rl_throughput_short", arm=arm, agent=agent))
      for arm_cell, agent_cell, arm, agent in (
          ("`gt` (no rendering)", "`rlpd_e2` (2 critics, batch 256)", "gt", "rlpd_e2"),
          ("`gt`", "`rlpd_e2_b128_d2` (batch 128, actor every 2nd step)", "gt",
           "rlpd_e2_b128_d2"),
          ("`kp` (4 x 128 px + S3K model)", "`rlpd_e2`", "kp", "rlpd_e2"),
          ("`kp`", "`rlpd_e2_b128_d2`", "kp", "rlpd_e2_b128_d2"))],
    Claim("rl_throughput updates",
          "`RLPD` {e2:.0f} (with LayerNorm,\nactor every update), Stable-Baselines3 SAC "
          "{sac:.0f}, SB3 TD3 {td3:.0f} (actor every 2nd update);\n`RLPD` batch 128 {b128:.0f}, "
          "with the actor every 2nd update {d2:.0f}; 10 critics {e10:.0f}.",
          lambda: {"e2": _updates("rlpd_e2 "), "sac": _updates("stable_baselines3 SAC"),
                   "td3": _updates("stable_baselines3 TD3"), "b128": _updates("rlpd_e2_b128 "),
                   "d2": _updates("rlpd_e2_b128_d2 "), "e10": _updates("rlpd_e10 ")}),
    Claim("rl_throughput load",
          "(load average {b:.1f} before, {a:.1f}\nafter, on 2 cores)",
          lambda: {"b": doc("rl_throughput")["loadavg_before"][0],
                   "a": doc("rl_throughput")["loadavg_after"][0]}),
    Claim("rl_throughput cable trials",
          "The 40,000-step cable runs above used `rlpd_e2` with UTD 4 ({lo:.0f}-{hi:.0f} "
          "agent\nsteps/s",
          lambda: dict(zip(("lo", "hi"), span(r["train_steps_per_s"]
                                               for r in doc(SHORT40_STEM)["runs"]), strict=True))),
    # ---- cable RLPD diagnosis and changes (cable_rlpd_*.json)
    Claim("cable_rlpd diagnosis", RLPD_DIAG_TEMPLATE, _rlpd_diag),
    *table("cable_rlpd changes", RLPD_ROW_TEMPLATE,
           [(rid, functools.partial(_rlpd_run, stem, label, seed))
            for rid, stem, label, seed in RLPD_RUNS]),
    *table("cable_rlpd temperature",
           "| {label} | 20,000 | {seed} | {s} / {n} | **{held} / {he}** | {left} | "
           "{q0:.0f} vs {paid:.0f} |",
           [("learned", functools.partial(
               _rlpd_run, "rel_e2_utd4_t0.01_nobackupent_tl_vel_s0_20000",
               "learned temperature", 0)),
            ("fixed", functools.partial(
                _rlpd_run, "rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s0_20000",
                "fixed temperature 0.01", 0)),
            ("fixed s1", functools.partial(
                _rlpd_run, "rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s1_20000",
                "fixed temperature 0.01", 1)),
            ("fixed s2", functools.partial(
                _rlpd_run, "rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s2_20000",
                "fixed temperature 0.01", 2))]),
    Claim("cable_rlpd fixed 3 seeds",
          "Over the three fixed-temperature seeds: {held}/{n} held-out successes at 20,000 steps",
          lambda: {k: sum(_rlpd_run(f"rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s{i}_20000",
                                    "", i)[f] for i in range(3))
                   for k, f in (("held", "held"), ("n", "he"))}),
    Claim("cable_rlpd fixed s1",
          "(seed 1: {pct:.0f} % of its training episodes succeed over the last 2,000 steps, "
          "but the deterministic policy waits out the time limit in {tl} of {n} held-out "
          "episodes)",
          lambda: {"pct": 100 * _rlpd_run("rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s1_20000",
                                          "", 1)["s"]
                   / _rlpd_run("rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s1_20000", "", 1)["n"],
                   "tl": doc("cable_rlpd_rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s1_20000")
                   ["eval"]["ends"].get("time_limit", 0),
                   "n": doc("cable_rlpd_rel_e2_utd4_t0.01_nobackupent_tl_vel_fixedt_s1_20000")
                   ["eval"]["episodes"]}),
    *table("cable_rl rlpd quick",
           "| {label} | {r[eval_success_true_mean]:.2f} [{r[eval_success_true_min]:.2f}–"
           "{r[eval_success_true_max]:.2f}] | {r[eval_success_keypoint_mean]:.2f} | "
           "{r[final_train_success_true_mean]:.2f} | {r[train_steps_per_s]:.1f} |",
           [(arm, functools.partial(lambda arm, label: {
               "label": label, "r": one("cable_rl_rlpd_quick", arm=arm)}, arm, label))
            for arm, label in (("kp", "S3K keypoints"), ("vae", "beta-VAE latent"),
                               ("gt", "true keypoints"))]),
    Claim("cable_rl rlpd quick setup",
          "`--quick`, {r[seeds]} seeds x {r[steps]:,} steps, {r[eval_episodes]} held-out "
          "episodes per seed", lambda: {"r": one("cable_rl_rlpd_quick", arm="kp")}),
    Claim("cable_rlpd temperature rise",
          "(0.01 at the start, {a10:.2f} at 10,000 steps, {a16:.1f} at 16,000, at most "
          "{amax:.1f}: x{ratio:.0f})", _alpha_rise),
    *table("cable_rlpd ablation",
           "| {label} | {r[eval_success_mean]:.2f} [{r[eval_success_min]:.2f}–"
           "{r[eval_success_max]:.2f}] | {r[train_success_last1k_mean]:.2f} |",
           [(v, functools.partial(lambda v, label: {
               "label": label, "r": one("cable_rlpd_ablation_quick", variant=v)}, v, label))
            for v, label in (
                ("base", "base: 51 demos, UTD 4, 2 LayerNorm critics, socket-relative, plug "
                         "motion + time left"),
                ("no_demos", "no demonstrations"), ("utd1", "UTD 1"),
                ("no_layer_norm", "no LayerNorm in the critics"),
                ("critics10", "10 critics (REDQ ensemble), min over 2"),
                ("world", "world-frame positions"),
                ("no_velocity_time", "no plug motion, no time left"))]),
    *table("cable_rlpd ablation short",
           "| {label} | {r[eval_success_mean]:.2f} | {r[train_success_last1k_mean]:.2f} | "
           "{r[agent_steps_per_s_mean]:.1f} |",
           [(v, functools.partial(lambda v, label: {
               "label": label, "r": one("cable_rlpd_ablation_quick_short", variant=v)}, v,
               label))
            for v, label in ABLATION_SHORT_LABELS]),
    Claim("cable_rlpd ablation short setup",
          "true keypoints, {n} seed x {steps:,} steps, where the base\nagent is about to pass "
          "80 %; {e} held-out episodes each",
          lambda: {"n": len(one("cable_rlpd_ablation_quick_short", variant="base")["seeds_done"]
                            .split()),
                   "steps": one("cable_rlpd_ablation_quick_short", variant="base")["steps"],
                   "e": one("cable_rlpd_ablation_quick_short", variant="base")["eval_episodes"]}),
    Claim("cable_rlpd ablation short reading",
          "(world-frame positions: {w:.2f}\nheld-out), then the demonstrations ({d:.2f} "
          "without), LayerNorm ({ln:.2f} without) and an update-to-\ndata ratio above 1 "
          "({u:.2f} at UTD 1, in the same number of env steps). The 10-critic ensemble\nis "
          "ahead ({c:.2f}) at {x:.0f}x the CPU per step",
          lambda: {**{k: one("cable_rlpd_ablation_quick_short", variant=v)["eval_success_mean"]
                      for k, v in (("w", "world"), ("d", "no_demos"), ("ln", "no_layer_norm"),
                                   ("u", "utd1"), ("c", "critics10"))},
                   "x": one("cable_rlpd_ablation_quick_short", variant="base")[
                       "agent_steps_per_s_mean"] / one("cable_rlpd_ablation_quick_short",
                                                       variant="critics10")[
                       "agent_steps_per_s_mean"]}),
    Claim("cable_rlpd ablation setup",
          "true keypoints, {n} seeds x {steps:,} steps, {e} held-out episodes each",
          lambda: {"n": len(one("cable_rlpd_ablation_quick", variant="base")["seeds_done"]
                            .split()),
                   "steps": one("cable_rlpd_ablation_quick", variant="base")["steps"],
                   "e": one("cable_rlpd_ablation_quick", variant="base")["eval_episodes"]}),
    # ---- two cable tasks (cable_pendulum.json, expert_cable*.json, cable_rlpd_*short*)
    *table("two cable tasks",
           "| {task} | {depth:.2f} m | {period} | {peak:.0f} mm | {settle:.2f} s | "
           "{motion:.0f} mm | {es}/{ee} (median {em:.0f} steps) | {r0[held]}/{r0[he]} / "
           "{r1[held]}/{r1[he]} | {bc[successes]}/{bc[episodes]} |",
           [("default", lambda: {"task": "`S3K-CableInsert-v0`", **_cable_task(
               "default", "expert_cable", "S3K-CableInsert-v0",
               ("rel_e2_utd4_t0.01_nobackupent_tl_vel_s0_10000",
                "rel_e2_utd4_t0.01_nobackupent_tl_vel_s1_10000"))}),
            ("short", lambda: {"task": "`S3K-CableInsertShort-v0`", **_cable_task(
                "short", "expert_cable_short", "S3K-CableInsertShort-v0",
                ("rel_e2_utd4_t0.01_nobackupent_tl_vel_short_s0_10000",
                 "rel_e2_utd4_t0.01_nobackupent_tl_vel_short_s1_10000"))})]),
    Claim("two cable tasks stiff",
          "Stiffer long cables (10x and 30x the joint stiffness) still swing ({a:.2f} s, "
          "{b:.2f} s) and keep their random bend, so the plug sticks out sideways (median tilt "
          "{ta:.0f} deg and {tb:.0f} deg)",
          lambda: {"a": doc("cable_pendulum")["summary"]["stiff10"]["median_period_s"],
                   "b": doc("cable_pendulum")["summary"]["stiff30"]["median_period_s"],
                   "ta": doc("cable_pendulum")["summary"]["stiff10"]["median_plug_tilt_deg"],
                   "tb": doc("cable_pendulum")["summary"]["stiff30"]["median_plug_tilt_deg"]}),
    Claim("two cable tasks training",
          "(training successes over the last 2,000 steps: {c[0][s]}/{c[0][n]} and "
          "{c[1][s]}/{c[1][n]} against {c[2][s]}/{c[2][n]} and {c[3][s]}/{c[3][n]})",
          lambda: {"c": [_rlpd_run(f"rel_e2_utd4_t0.01_nobackupent_tl_vel_{x}_10000", "", 0)
                         for x in ("short_s0", "short_s1", "s0", "s1")]}),
    # ---- cable_rl on the short task at 40k (cable_rl_rlpd_full_short.*; gt partial)
    *table("cable_rl short 40k",
           "| {label} | {r[seeds]} | {bold}{r[eval_success_true_mean]:.2f} ± "
           "{r[eval_success_true_sd]:.2f}{bold} [{r[eval_success_true_min]:.2f}–"
           "{r[eval_success_true_max]:.2f}] | {r[eval_success_keypoint_mean]:.2f} | "
           "{r[final_train_success_true_mean]:.2f} | {r[final_train_success_keypoint_mean]:.2f} | "
           "{p50} | {p80} |",
           [(arm, functools.partial(_cable_rl_row, SHORT40_STEM, arm, label, True, bold=bold))
            for arm, label, bold in (("kp", "S3K keypoints", "**"),
                                     ("vae", "beta-VAE latent", ""),
                                     ("gt", "true keypoints", ""))]),
    Claim("cable_rl short 40k seeds",
          "(all {n} seeds of every arm, the same seeds, demonstrations and budget;",
          lambda: {"n": _common_seed_count(SHORT40_STEM, "kp", "vae", "gt")}),
    Claim("cable_rl short 40k VAE",
          "({n} seeds:\n{e:.2f} held-out [{lo:.2f}–{hi:.2f}], {tr:.2f} training success at "
          "the end, no seed reaches 50 %; {e10:.2f} at\n10,000 steps; over all 40,000 steps "
          "its rolling true success never exceeds {mx[seed]:.2f} on any seed,\n{mx[mean]:.2f} "
          "as the mean of the {n})",
          lambda: {"n": one(SHORT40_STEM, arm="vae")["seeds"],
                   "e": one(SHORT40_STEM, arm="vae")["eval_success_true_mean"],
                   "lo": one(SHORT40_STEM, arm="vae")["eval_success_true_min"],
                   "hi": one(SHORT40_STEM, arm="vae")["eval_success_true_max"],
                   "tr": one(SHORT40_STEM, arm="vae")["final_train_success_true_mean"],
                   "e10": one(SHORT_STEM, arm="vae")["eval_success_true_mean"],
                   "mx": _rolling_true_max(SHORT40_STEM, "vae")}
          if one(SHORT40_STEM, arm="vae")["first_50_true_seeds"] == 0 else {}),
    Claim("cable_rl short 40k cost",
          "a seed that ran in one call took {kp[0]:,.0f} CPU-s on the `kp`\narm (mean of "
          "{kp[1]} such seeds), {vae[0]:,.0f} on the beta-VAE arm ({vae[1]}) and {gt[0]:,.0f} "
          "on the true-keypoint arm\n({gt[1]}; the other seeds were resumed",
          lambda: {a: _single_call_cpu(SHORT40_STEM, a) for a in ("kp", "vae", "gt")}),
    Claim("cable_rl short 40k cost total",
          "The 15 runs therefore cost about {h:.1f} CPU-hours, above\nthe issue's target of 6",
          lambda: {"h": len(doc(SHORT40_STEM)["config"]["seeds"]) * sum(
              _single_call_cpu(SHORT40_STEM, a)[0] for a in ("kp", "vae", "gt")) / 3600}),
    Claim("cable_rl short 40k VAE probe",
          "a linear probe\nfrom its latent to the true keypoints is off by {m:.1f} mm (median)",
          lambda: {"m": doc(SHORT40_STEM)["linear_probe"]["test"]["median"]}
          if doc(SHORT40_STEM)["vae"]["given_checkpoint"]
          == "runs/cable_rl/full_short_10k/vae/model.pt" else {}),
    Claim("cable_rl short 40k held-out episodes",
          "{e} held-out episodes per seed;\n[CSV](benchmarks/results/cable_rl_rlpd_full_short.csv)",
          lambda: {"e": doc(SHORT40_STEM)["config"]["eval_episodes"]}),
    Claim("cable_rl short 40k headline",
          "the S3K agent reaches {m:.2f} held-out true success within the paper's 40,000 steps"
          "**\n(every seed >= {lo:.2f})",
          lambda: {"m": one(SHORT40_STEM, arm="kp")["eval_success_true_mean"],
                   "lo": one(SHORT40_STEM, arm="kp")["eval_success_true_min"]}),
    Claim("cable_rl short 40k keypoint-rule curves",
          "(left panel; {kp:.2f} against {gt:.2f} at 40,000 steps)",
          lambda: {"kp": one(SHORT40_STEM, arm="kp")["final_train_success_keypoint_mean"],
                   "gt": one(SHORT40_STEM, arm="gt")["final_train_success_keypoint_mean"]}),
    Claim("cable_rl short 40k failures",
          "of the S3K agent's {n}\nheld-out episodes, {rule} end \"inserted\" by the rule but "
          "not by the truth ({near} of them with a true\nerror below 3.0 cm), and {time} run "
          "out of time at the rim (true keypoints, {ngt} episodes: {gt_rule} and\n{gt_time})",
          lambda: {"n": _short_ends("kp", SHORT40_STEM)["episodes"],
                   "rule": _short_ends("kp", SHORT40_STEM)["rule_only"],
                   "near": _short_ends("kp", SHORT40_STEM)["rule_only_below_3cm"],
                   "time": _short_ends("kp", SHORT40_STEM)["time"],
                   "ngt": _short_ends("gt", SHORT40_STEM)["episodes"],
                   "gt_rule": _short_ends("gt", SHORT40_STEM)["rule_only"],
                   "gt_time": _short_ends("gt", SHORT40_STEM)["time"]}),
    Claim("cable_rl short 40k stretch goal",
          "the S3K agent's rolling true success first reaches 80 % at {s:,.0f} steps on\n"
          "average",
          lambda: {"s": one(SHORT40_STEM, arm="kp")["first_80_true_steps_mean"]}),
    # ---- cable_rl on the short task (cable_rl_rlpd_full_short_10k.*)
    *table("cable_rl short 10k",
           "| {label} | {r[eval_success_true_mean]:.2f} ± {r[eval_success_true_sd]:.2f} "
           "[{r[eval_success_true_min]:.2f}–{r[eval_success_true_max]:.2f}] | "
           "{r[eval_success_keypoint_mean]:.2f} | {r[final_train_success_true_mean]:.2f} | "
           "{p50} | {p80} |",
           [(arm, functools.partial(_cable_rl_row, SHORT_STEM, arm, label, False))
            for arm, label in (("kp", "S3K keypoints"), ("vae", "beta-VAE latent"),
                               ("gt", "true keypoints"))]),
    Claim("cable_rl short 10k VAE probe",
          "Its latent ({v[num_frames]:,} unlabelled frames of the rig, {m:.0f}\nCPU-min of "
          "training, {p[active_units_variance]}/{p[latent_dim]} latents active) carries the "
          "geometry too coarsely: a linear probe\nfrom it to the true keypoints on "
          "{p[num_test]} held-out frames is off by **{p[test][median]:.1f} mm** (median; "
          "predicting\nthe mean position: {p[mean_baseline][median]:.1f} mm), the S3K model by "
          "**{p[keypoint_model][median]:.1f} mm**",
          lambda: {"v": doc(SHORT_STEM)["vae"], "m": doc(SHORT_STEM)["vae"]["elapsed_s"] / 60,
                   "p": doc(SHORT_STEM)["linear_probe"]}),
    Claim("cable_rl short 10k setup",
          "5 seeds x 10,000 steps** (RLPD, the paper's\n`S3K-CableInsertShort-v0` with the "
          "task's first keypoint model (since retrained, below), {e} held-out episodes per "
          "seed,\nrolling success over "
          "{w:,} steps",
          lambda: {"e": doc(SHORT_STEM)["config"]["eval_episodes"],
                   "w": doc(SHORT_STEM)["config"]["window"]}),
    Claim("cable_rl short 10k keypoint-rule curves",
          "(left panel: {kp:.2f} against {gt:.2f} at 10,000\nsteps)",
          lambda: {"kp": one(SHORT_STEM, arm="kp")["final_train_success_keypoint_mean"],
                   "gt": one(SHORT_STEM, arm="gt")["final_train_success_keypoint_mean"]}),
    Claim("cable_rl short 10k failures",
          "Of its {n} held-out episodes, {rule} were\n\"inserted\" by the keypoint rule but not "
          "by the truth, {near} of them with a true insertion\nerror below 3.0 cm",
          lambda: {"n": _short_ends("kp")["episodes"], "rule": _short_ends("kp")["rule_only"],
                   "near": _short_ends("kp")["rule_only_below_3cm"]}),
    Claim("cable_rl short 10k time limits",
          "fumbles at the socket rim until the time limit ({kp} of {n} for S3K keypoints, {gt} "
          "for true\nkeypoints)",
          lambda: {"kp": _short_ends("kp")["time"], "gt": _short_ends("gt")["time"],
                   "n": _short_ends("kp")["episodes"]}),
    # ---- the cable keypoint model on a kp agent's frames (cable_agent_keypoints_short.*)
    *table("cable_agent_keypoints",
           "| {model} | {label} ({n}) | {tip:.1f} / {tip90:.1f} mm | {b} [{b10}, {b90}] mm |",
           [(f"{model} {phase}", functools.partial(_agent_kp_row, model, phase, label))
            for model in ("first", "shipped")
            for phase, label in (("rim", "plug on the socket's rim"),
                                 ("inside", "tip inside the socket"))]),
    Claim("cable_agent_keypoints threshold",
          "(true error within {band:.0f} cm of {thr:.1f} cm, {n} frames) the first model's "
          "reading is\nunbiased but scattered (p10 {p10} mm, p90 {p90} mm)",
          lambda: {"band": doc(AGENT_KP)["settings"]["band"] * 100,
                   "thr": doc(AGENT_KP)["rule"]["success_threshold"] * 100,
                   "n": _agent_kp_near("first")["frames"],
                   "p10": _mm(_agent_kp_near("first")["p10"]),
                   "p90": _mm(_agent_kp_near("first")["p90"])}),
    Claim("cable_agent_keypoints early ends",
          "{ko} of the {n} episodes ended \"inserted\" with the\nplug not in",
          lambda: {"ko": doc(AGENT_KP)["episode_ends"]["keypoint_only"],
                   "n": doc(AGENT_KP)["settings"]["episodes"]}),
    Claim("cable_agent_keypoints rim",
          "The agent spends a third of its frames ({rim} of {n}) with the plug on the\nrim",
          lambda: {"rim": doc(AGENT_KP)["phase_frames"]["rim"], "n": doc(AGENT_KP)["frames"]}),
    Claim("cable_agent_keypoints rim tail",
          "by {p10} mm or more in a tenth of those frames",
          lambda: {"p10": f"{-_agent_kp_csv('first', 'rim')['b10']:.1f}"}),
    Claim("cable_agent_keypoints shipped",
          "it reads the plug inside {b} mm high, so\nthe rule fires after the true insertion "
          "rather than before (on the same frames {e1} episode\nwould have ended early "
          "instead of {e0})",
          lambda: {"b": f"{_agent_kp_csv('shipped', 'inside')['b']:.1f}",
                   "e1": doc(AGENT_KP)["results"]["shipped"]["early_episodes"],
                   "e0": doc(AGENT_KP)["results"]["first"]["early_episodes"]}),
    *PUSH_MPC_CLAIMS,
    # ---- cable expert (expert_cable.json)
    Claim("expert_cable",
          "Cable expert over {episodes} seeded episodes (`python -m benchmarks.expert_cable`, "
          "[CSV](benchmarks/results/expert_cable.csv), "
          "[JSON](benchmarks/results/expert_cable.json)): "
          "**{successes}/{episodes} successes**, median {median_steps_to_success:.0f} steps to "
          "success (max {max_steps_to_success} of 40), largest contact penetration {mm:.2f} mm",
          lambda: {**doc("expert_cable")["summary"],
                   "mm": doc("expert_cable")["summary"]["max_penetration_m"] * 1000}),
    # ---- cable RL comparison (cable_rl_quick.json, cable_bc_quick.json, ...)
    Claim("linear probe",
          "A linear probe from the VAE latent ({vae[num_frames]} frames, {minutes:.0f} CPU-min, "
          "{vae[final_eval][active_units]}/{latents} latents active) to the true keypoints on "
          "{p[num_test]} held-out frames: median **{p[test][median]:.1f} mm** (plug tip "
          "{t[plug_tip][median]:.1f}, plug base {t[plug_base][median]:.1f}, socket "
          "{t[socket][median]:.1f} mm; predicting the mean position: "
          "{p[mean_baseline][median]:.1f} mm); the S3K model on the same frames: "
          "**{k[median]:.1f} mm** ({k[per_keypoint][plug_tip][median]:.1f} / "
          "{k[per_keypoint][plug_base][median]:.1f} / {k[per_keypoint][socket][median]:.1f} mm)",
          lambda: {"vae": doc("cable_rl_quick")["vae"], "p": _probe(),
                   "t": _probe()["test"]["per_keypoint"], "k": _probe()["keypoint_model"],
                   "minutes": doc("cable_rl_quick")["vae"]["elapsed_s"] / 60,
                   "latents": len(doc("cable_rl_quick")["vae"]["final_eval"]["kl_per_dim"])}),
    Claim("behaviour cloning setup",
          "**Behaviour cloning** from the {demos} demonstrations (MLP, {r[fit_steps]:,} steps, "
          "{r[seeds]} seeds x {r[episodes]} held-out episodes",
          lambda: {"demos": doc("cable_rl_quick")["demonstrations"]["metadata"]["episodes"],
                   "r": one("cable_bc_quick", arm="kp")}),
    *table("cable_bc",
           "| {observation} | {mean} [{success_true_min:.2f}–{success_true_max:.2f}] | "
           "{cm:.1f} cm |",
           [(arm, functools.partial(
               lambda arm: {**_bc(arm),
                            "cm": _bc(arm)["final_insertion_error_median_m"] * 100}, arm))
            for arm in BC_BOLD]),
    Claim("ddpgfd quick",
          "**DDPGfD** (`--quick`, {r[seeds]} seeds x {r[steps]:,} env steps; "
          "[CSV](benchmarks/results/cable_rl_quick.csv), "
          "[plot](benchmarks/results/cable_rl_quick.png)): **{best:.0f} %** held-out success for "
          "every arm, including the ground-truth one (final training success "
          "{t[0]:.0f} / {t[1]:.0f} / {t[2]:.0f} %). The quick profile took {minutes:.1f} min here",
          lambda: {"r": _cable_rl("cable_rl_quick", "kp"),
                   "best": 100 * max(max(r["eval_success_true_mean"],
                                         r["eval_success_keypoint_mean"])
                                     for r in rows("cable_rl_quick")),
                   "t": [100 * _cable_rl("cable_rl_quick", a)["final_train_success_true_mean"]
                         for a in ("kp", "vae", "gt")],
                   "minutes": doc("cable_rl_quick")["stages_wall_s"] / 60}),
    Claim("ddpgfd bc100 6k",
          "with BC weight 100 and no Q-filter for {steps:,} steps (`cable_rl --quick --tag "
          "bc100_6k --seeds 0 --steps {steps} --bc-weight 100 --no-q-filter --eval-episodes "
          "{eps}`, [CSV](benchmarks/results/cable_rl_quick_bc100_6k.csv)) held-out true success "
          "is {s[0]:.2f} (`kp`), {s[1]:.2f} (`vae`), {s[2]:.2f} (`gt`)",
          lambda: {"steps": _cable_rl("cable_rl_quick_bc100_6k", "kp")["steps"],
                   "eps": _cable_rl("cable_rl_quick_bc100_6k", "kp")["eval_episodes"],
                   "s": [_cable_rl("cable_rl_quick_bc100_6k", a)["eval_success_true_mean"]
                         for a in ("kp", "vae", "gt")]}),
    *table("cable_rl_ablation",
           "| {label} [{eval_success_true_min:.2f}–{eval_success_true_max:.2f}] | "
           "{final_train_success_true_mean:.2f} |",
           [(v, functools.partial(_ablation, v)) for v in ABLATION_LABELS]),
    Claim("ablation vs BC", "beats plain behaviour cloning on true keypoints ({a:.2f} vs {b:.2f}",
          lambda: {"a": one("cable_rl_ablation_quick",
                            variant="pretrain_bc100")["eval_success_true_mean"],
                   "b": one("cable_bc_quick", arm="gt")["success_true_mean"]}),
    # ---- throughput (throughput.json)
    *table("throughput",
           "| `{env_id}` | {image_size} | {num_cameras} | {steps_per_s:.0f} | {step_ms:.2f} | "
           "{physics_ms:.2f} | {render_ms:.2f} | {overhead_ms:.2f} | {floor_ms:.2f} | "
           "{ratio_to_floor:.2f} |",
           [(f"{r['env_id']}@{r['image_size']}", functools.partial(_throughput, r))
            for r in doc("throughput")["rows"]]),
    Claim("throughput repeats", "median of {repeats} x {n_steps} steps:",
          lambda: doc("throughput")["rows"][0]),
]

#: README claims with no committed data behind them: each must be labelled as such in the
#: sentence that makes it (within the same paragraph).
UNBACKED = ("66–82 mm", "2–6 %", "153 training episodes")
UNBACKED_LABEL = re.compile(r"not committed|not reproduced here")


def readme_text() -> str:
    return re.sub(r"\s+", " ", README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_readme_quotes_the_result_files(claim: Claim) -> None:
    expected = re.sub(r"\s+", " ", claim.text())
    if expected not in readme_text():
        pytest.fail(f"README.md should contain (from benchmarks/results/):\n  {expected}",
                    pytrace=False)


def test_every_linked_result_file_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each result file the README links is read by at least one claim (a new table or
    benchmark in the README without claims here shows up)."""
    text = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"benchmarks/results/(\w+)\.(?:csv|json|png|md|\*)", text))
    read: set[str] = set()

    def recording_doc(stem: str) -> dict[str, Any]:
        read.add(stem)
        return _real_doc(stem)

    _patch_doc(monkeypatch, recording_doc)
    for claim in CLAIMS:
        claim.text()
    assert linked, "no links to benchmarks/results/ found in README.md"
    assert not linked - read, f"README links results no claim checks: {sorted(linked - read)}"


@pytest.mark.parametrize("claim", UNBACKED)
def test_claims_without_data_are_labelled(claim: str) -> None:
    text = README.read_text(encoding="utf-8")
    assert claim in text, f"{claim!r} is no longer in README.md: remove it from UNBACKED"
    for paragraph in re.split(r"\n\s*\n", text):
        if claim in paragraph:
            assert UNBACKED_LABEL.search(paragraph), (
                f"README.md quotes {claim!r}, which has no data in benchmarks/results/: say "
                f"it is from an earlier run that is not committed / not reproduced here")


def test_a_changed_number_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check compares values: a result file that differs from the README fails it."""
    claim = next(c for c in CLAIMS if c.name == "shipped_checkpoints[CableInsert]")
    assert claim.text() in readme_text()
    real = _real_doc("shipped_checkpoints")
    changed = {**real, "rows": [{**r, "median_mm": r["median_mm"] + 0.1} for r in real["rows"]]}
    _patch_doc(monkeypatch,
               lambda stem: changed if stem == "shipped_checkpoints" else _real_doc(stem))
    assert claim.text() not in readme_text()


def _patch_doc(monkeypatch: pytest.MonkeyPatch, replacement: Callable[[str], Any]) -> None:
    """Swap ``doc`` where the claims look it up: this module, ``readme_claims`` and
    ``readme_claims_push_mpc``."""
    for module in (sys.modules[__name__], readme_claims, readme_claims_push_mpc):
        monkeypatch.setattr(module, "doc", replacement)


_real_doc = doc
