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

import functools
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
import readme_claims
import readme_claims_cable_rl
import readme_claims_push_mpc
from readme_claims import README, Claim, doc, hundreds, minus, one, rows, span, table
from readme_claims_cable_rl import CABLE_RL_CLAIMS, SHORT40_STEM
from readme_claims_push_mpc import PUSH_MPC_CLAIMS


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










#: README rows of the cable RLPD change table: (row id, result stem, setting label, seed)



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
    *CABLE_RL_CLAIMS,
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
    """Swap ``doc`` where the claims look it up: this module, ``readme_claims`` and the
    section modules ``readme_claims_cable_rl`` and ``readme_claims_push_mpc``."""
    for module in (sys.modules[__name__], readme_claims, readme_claims_cable_rl,
                   readme_claims_push_mpc):
        monkeypatch.setattr(module, "doc", replacement)


_real_doc = doc
