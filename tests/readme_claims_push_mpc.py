"""README claims of the *Keypoints into the Future* section (``benchmarks/push_mpc`` and the
descriptor reference sets), checked by ``tests/test_readme_results.py`` with all the others;
see that file's docstring for how a claim works."""

from __future__ import annotations

import functools
from typing import Any

from readme_claims import Claim, doc, table


def _spread_row(refs: str, method: str, label: str) -> dict[str, Any]:
    """A row of the README's spread-reference table: push_mpc_quick4_spread-<refs> (MPC)
    and descriptor_refs_<refs> (the reference set's xy spread and 3D error)."""
    summary = doc(f"push_mpc_quick4_spread-{refs}")["summary"][method]
    pooled = summary["pooled"]
    out = {"label": label, "o": summary["over_seeds"], "n": pooled["episodes"],
           "ok": round(pooled["success_rate"] * pooled["episodes"]), "spread": "–", "err": "–"}
    if method == "descriptor":
        r = doc(f"descriptor_refs_{refs}")
        out["spread"] = f"{r['references']['xy_spread_mm']:.1f} mm"
        out["err"] = f"{r['descriptor_keypoints']['median_mm']:.2f} mm"
    return out


PUSH_FULL = "push_mpc_full"
METHODS4 = ("true", "s3k", "descriptor", "vae")


def _push_over(method: str, stem: str = PUSH_FULL) -> dict[str, Any]:
    """Over-seed statistics of one method of a push_mpc result."""
    return doc(stem)["summary"][method]["over_seeds"]


def _push_ratio(key: str, method: str = "descriptor", to: str = "true") -> float:
    """``method``'s mean-over-seeds ``key`` divided by ``to``'s (push_mpc --full)."""
    return _push_over(method)[key]["mean"] / _push_over(to)[key]["mean"]


def _push_full_row(method: str, label: str) -> dict[str, Any]:
    """A row of the README's push_mpc --full table."""
    o = _push_over(method)
    pooled = doc(PUSH_FULL)["summary"][method]["pooled"]
    return {"label": label, "o": o, "max": pooled["plan_ms_max"],
            "seeds": " / ".join(f"{100 * r:.0f}" for r in o["success_rate"]["per_seed"])}


PUSH_SHOES = "push_mpc_quick_shoepush-test"


def _push_shoe_row(method: str, label: str, error_key: str | None) -> dict[str, Any]:
    """A row of the README's held-out-shoe table: MPC (push_mpc_quick_shoepush-test) and
    the keypoint 3D error on held-out-shoe scenes (descriptor_shoes_heldout)."""
    o = _push_over(method, PUSH_SHOES)
    err = ("–" if error_key is None
           else f"{doc('descriptor_shoes_heldout')[error_key]['median_mm']:.1f} mm")
    return {"label": label, "o": o, "err": err,
            "seeds": " / ".join(f"{100 * r:.0f}" for r in o["success_rate"]["per_seed"])}


def _push_variant(stem: str, label: str) -> dict[str, Any]:
    """One row of the push_mpc variants table: success (%, mean over seeds) per method;
    ``vae`` is ``–`` when the variant leaves it out."""
    summary = doc(stem)["summary"]
    pct = {m: 100 * summary[m]["over_seeds"]["success_rate"]["mean"]
           for m in ("true", "s3k", "descriptor", "vae") if m in summary}
    return {"label": label, "v": pct,
            "vae": f"{pct['vae']:.0f} %" if "vae" in pct else "–"}


PUSH_MPC_CLAIMS: list[Claim] = [
    # ---- push_mpc (push_mpc_quick.json)
    *table("push_mpc quick",
           "| {label} | {s0:.0f} / {s1:.0f} % | "
           "{o[position_cm_median][mean]:.2f} ± {o[position_cm_median][std]:.2f} cm | "
           "{o[angle_deg_median][mean]:.1f} ± {o[angle_deg_median][std]:.1f} deg | "
           "{o[plan_ms_median][mean]:.0f} ms |",
           [(m, functools.partial(lambda m, label: {
               "label": label, "o": doc("push_mpc_quick")["summary"][m]["over_seeds"],
               **{f"s{i}": 100 * r for i, r in enumerate(
                   doc("push_mpc_quick")["summary"][m]["over_seeds"]["success_rate"]["per_seed"])}},
               m, label))
            for m, label in (("true", "true keypoints (3 box corners + pusher)"),
                             ("s3k", "S3K keypoints (shipped Box model)"),
                             ("descriptor", "descriptor keypoints (no labels, K = 5)"),
                             ("vae", "beta-VAE latent (600 training steps)"))]),
    *table("push_mpc full",
           "| {label} | {seeds} % | "
           "{o[position_cm_median][mean]:.2f} ± {o[position_cm_median][std]:.2f} cm | "
           "{o[angle_deg_median][mean]:.1f} ± {o[angle_deg_median][std]:.1f} deg | "
           "{o[position_cm_mean][mean]:.2f} cm / {o[angle_deg_mean][mean]:.1f} deg | "
           "{o[plan_ms_median][mean]:.0f} ms ({max:.0f} ms) |",
           [(m, functools.partial(_push_full_row, m, label))
            for m, label in (("true", "true keypoints (3 box corners + pusher)"),
                             ("s3k", "S3K keypoints (shipped Box model)"),
                             ("descriptor", "descriptor keypoints (no labels, K = 5)"),
                             ("vae", "beta-VAE latent (6,000 training steps)"))]),
    *table("push_mpc full baselines",
           "| {label}, for reference | {pct:.0f} % | "
           "{o[position_cm_median][mean]:.2f} cm | {o[angle_deg_median][mean]:.1f} deg | | |",
           [(m, functools.partial(lambda m, label: {
               "label": label, "o": _push_over(m),
               "pct": 100 * _push_over(m)["success_rate"]["mean"]}, m, label))
            for m, label in (("expert", "scripted expert (privileged)"),
                             ("random", "uniformly random pushes"))]),
    Claim("push_mpc full sizes",
          "({e} data episodes, {d:,} dynamics\nsteps, a {v:,}-step VAE, {g} pushed goals x "
          "dynamics/planner seeds 0-2 per method",
          lambda: {"e": doc(PUSH_FULL)["args"]["episodes"],
                   "d": doc(PUSH_FULL)["args"]["train_steps"],
                   "v": doc(PUSH_FULL)["args"]["vae_steps"],
                   "g": doc(PUSH_FULL)["args"]["eval_episodes"]}
          if doc(PUSH_FULL)["seeds"] == [0, 1, 2] else {}),
    Claim("push_mpc full ratios",
          "final position median {p:.2f}x, final angle median {a:.2f}x (the issue asks for <= "
          "1.5x); by\nthe means, which the failed episodes dominate, {pm:.2f}x and {am:.2f}x",
          lambda: {"p": _push_ratio("position_cm_median"), "a": _push_ratio("angle_deg_median"),
                   "pm": _push_ratio("position_cm_mean"), "am": _push_ratio("angle_deg_mean")}),
    Claim("push_mpc full level with S3K",
          "they are level: {dp:.0f} against {sp:.0f} % "
          "success, position {d[position_cm_median][mean]:.2f} against\n"
          "{s[position_cm_median][mean]:.2f} cm, angle {d[angle_deg_median][mean]:.1f} against "
          "{s[angle_deg_median][mean]:.1f} deg. The beta-VAE latent",
          lambda: {"d": _push_over("descriptor"), "s": _push_over("s3k"),
                   "dp": 100 * _push_over("descriptor")["success_rate"]["mean"],
                   "sp": 100 * _push_over("s3k")["success_rate"]["mean"]}),
    Claim("push_mpc full vae vs random",
          "planned with the same MPPI, reaches {v:.0f} %, about what random pushes reach "
          "({r:.0f} %)",
          lambda: {"v": 100 * _push_over("vae")["success_rate"]["mean"],
                   "r": 100 * _push_over("random")["success_rate"]["mean"]}),
    Claim("push_mpc full planning",
          "**Planning: {lo:.0f}-{hi:.0f} ms median per control step on one core** (1 torch "
          "thread; MPPI with\n{n} samples x {h} steps, random shooting + {i} rounds), the "
          "slowest step {mx:.0f} ms",
          lambda: {"lo": min(_push_over(m)["plan_ms_median"]["mean"] for m in METHODS4),
                   "hi": max(_push_over(m)["plan_ms_median"]["mean"] for m in METHODS4),
                   "mx": max(doc(PUSH_FULL)["summary"][m]["pooled"]["plan_ms_max"]
                             for m in METHODS4),
                   "n": doc(PUSH_FULL)["args"]["samples"], "h": doc(PUSH_FULL)["args"]["horizon"],
                   "i": doc(PUSH_FULL)["args"]["iterations"]}
          if doc(PUSH_FULL)["args"]["threads"] == 1 else {}),
    Claim("push_mpc full perception",
          "perception (images -> keypoints) adds {lo:.0f}-{hi:.0f} ms for S3K and\n"
          "descriptors, {v:.0f} ms for the VAE",
          lambda: {"lo": min(doc(PUSH_FULL)["summary"][m]["pooled"]["perceive_ms_median"]
                             for m in ("s3k", "descriptor")),
                   "hi": max(doc(PUSH_FULL)["summary"][m]["pooled"]["perceive_ms_median"]
                             for m in ("s3k", "descriptor")),
                   "v": doc(PUSH_FULL)["summary"]["vae"]["pooled"]["perceive_ms_median"]}),
    Claim("push_mpc full cost",
          "The JSON has the VAE's {v:.0f} min and each dynamics model's {lo:.1f}-{hi:.1f} min",
          lambda: {"v": doc(PUSH_FULL)["data"]["vae"]["seconds"] / 60,
                   "lo": min(r["seconds"] for r in doc(PUSH_FULL)["training"].values()) / 60,
                   "hi": max(r["seconds"] for r in doc(PUSH_FULL)["training"].values()) / 60}),
    *table("push_mpc held-out shoes",
           "| {label} | {err} | {seeds} % | "
           "{o[position_cm_median][mean]:.2f} ± {o[position_cm_median][std]:.2f} cm | "
           "{o[angle_deg_median][mean]:.1f} ± {o[angle_deg_median][std]:.1f} deg |",
           [(m, functools.partial(_push_shoe_row, m, label, err))
            for m, label, err in (
                ("true", "true keypoints (front, tongue, heel + pusher)", None),
                ("s3k", "S3K keypoints (shipped Shoes model)", "s3k_keypoints"),
                ("descriptor", "descriptor keypoints (no labels, K = 5)", "descriptor_keypoints"),
                ("vae", "beta-VAE latent (600 training steps)", None))]),
    Claim("push_mpc held-out shoes reading",
          "succeeds a little more often\n({d:.0f} against {s:.0f} % over {n} goals) and ends "
          "with a better angle ({da:.1f} against {sa:.1f} deg)",
          lambda: {"d": 100 * _push_over("descriptor", PUSH_SHOES)["success_rate"]["mean"],
                   "s": 100 * _push_over("s3k", PUSH_SHOES)["success_rate"]["mean"],
                   "n": doc(PUSH_SHOES)["summary"]["s3k"]["pooled"]["episodes"],
                   "da": _push_over("descriptor", PUSH_SHOES)["angle_deg_median"]["mean"],
                   "sa": _push_over("s3k", PUSH_SHOES)["angle_deg_median"]["mean"]}),
    Claim("push_mpc held-out shoes true",
          "Both are far from true keypoints ({t:.0f} %) at these sizes",
          lambda: {"t": 100 * _push_over("true", PUSH_SHOES)["success_rate"]["mean"]}),
    Claim("push_mpc held-out shoes goals",
          "the difference between the two keypoint methods is {d} goals of {n}",
          lambda: {"n": doc(PUSH_SHOES)["summary"]["s3k"]["pooled"]["episodes"],
                   "d": round((_push_over("descriptor", PUSH_SHOES)["success_rate"]["mean"]
                               - _push_over("s3k", PUSH_SHOES)["success_rate"]["mean"])
                              * doc(PUSH_SHOES)["summary"]["s3k"]["pooled"]["episodes"])}),
    Claim("push_mpc full vs quick",
          "(true {tq:.0f} -> {tf:.0f} %, descriptor {dq:.0f} -> {df:.0f} %, S3K {sq:.0f} -> "
          "{sf:.0f} %)",
          lambda: {f"{k}{w}": 100 * _push_over(m, stem)["success_rate"]["mean"]
                   for k, m in (("t", "true"), ("d", "descriptor"), ("s", "s3k"))
                   for w, stem in (("q", "push_mpc_quick"), ("f", PUSH_FULL))}),
    *table("push_mpc variants",
           "| {label} | {v[true]:.0f} % | {v[s3k]:.0f} % | {v[descriptor]:.0f} % | {vae} |",
           [(stem, functools.partial(_push_variant, stem, label))
            for stem, label in (("push_mpc_quick", "all 4 views"),
                                ("push_mpc_quick_cameras-top", "2 top-down views"),
                                ("push_mpc_quick_cameras-low", "2 low views (seed 0)"),
                                ("push_mpc_quick_occluder", "card in front of 2 cameras"))]),
    *table("push_mpc spread references",
           "| {label} | {spread} | {err} | {ok}/{n} | "
           "{o[position_cm_median][mean]:.2f} ± {o[position_cm_median][std]:.2f} cm | "
           "{o[angle_deg_median][mean]:.1f} ± {o[angle_deg_median][std]:.1f} deg |",
           [(rid, functools.partial(_spread_row, *args)) for rid, args in (
               ("true", ("shipped", "true", "true keypoints (3 corners), for reference")),
               ("shipped", ("shipped", "descriptor",
                            "best score first, >= 3 cm apart (shipped until 2026-12-05)")),
               ("farthest", ("farthest_c200_f0.8", "descriptor",
                             "farthest point, 200 candidates, score >= 0.8 x best "
                             "(shipped now)")))]),
]
