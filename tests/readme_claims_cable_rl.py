"""README claims of the cable-insertion RL sections (RLPD diagnosis and changes, its ablation,
the two cable tasks, ``benchmarks.cable_rl`` on the short task at 10,000 and 40,000 steps, the
cable keypoint model on an agent's frames), checked by ``tests/test_readme_results.py`` with
all the others; see that file's docstring for how a claim works."""

from __future__ import annotations

import csv
import functools
from typing import Any

import numpy as np
from readme_claims import RESULTS, Claim, doc, minus, one, table

from benchmarks.cable_rl.config import rolling_success

ABLATION_SHORT_LABELS = (
    ("base", "base: 51 demos, UTD 4, 2 LayerNorm critics, socket-relative, plug motion + time "
             "left"),
    ("no_demos", "no demonstrations"), ("utd1", "UTD 1"),
    ("no_layer_norm", "no LayerNorm in the critics"),
    ("critics10", "10 critics (REDQ ensemble), min over 2"),
    ("world", "world-frame positions"), ("no_velocity_time", "no plug motion, no time left"),
    ("cheap_update", "cheaper update: batch 128, actor every 2nd update"))
SHORT_STEM = "cable_rl_rlpd_full_short_10k"
SHORT40_STEM = "cable_rl_rlpd_full_short"
CHEAP40_STEM = "cable_rl_rlpd_full_short_cheap"


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
    return len(_common_seed_list(stem, *arms))


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
    runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for seed in sorted({r["seed"] for r in eps}):
        mine = [r for r in eps if r["seed"] == seed]
        runs[seed] = (np.array([int(r["steps"]) for r in mine]),
                      np.array([int(r["success_true"]) for r in mine]))
    # The benchmark's own rolling rate: at every episode end per seed, on a grid for the mean.
    per_seed = max(np.nanmax(rolling_success(end, ok, end[end >= window], window))
                   for end, ok in runs.values())
    grid = np.arange(window, max(end.max() for end, _ in runs.values()) + 1, 500)
    mean = np.nanmean([rolling_success(end, ok, grid, window) for end, ok in runs.values()],
                      axis=0)
    return {"seed": float(per_seed), "mean": float(np.nanmax(mean))}


def _single_call_cpu(stem: str, arm: str) -> tuple[float, int]:
    """Mean training CPU seconds of ``arm``'s runs that ran in one call (a resumed run
    records only its last call's CPU time) and how many there are."""
    cpu = [r["train_cpu_s_this_call"] for r in doc(stem)["runs"]
           if r["arm"] == arm and r["resumed_from_step"] is None]
    return sum(cpu) / len(cpu), len(cpu)


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


def _run_success(stem: str, arm: str, seed: int) -> float:
    """Held-out true success of one (arm, seed) run of a cable_rl result."""
    (found,) = [r["eval_success_true"] for r in doc(stem)["runs"]
                if r["arm"] == arm and r["seed"] == seed]
    return found


def _common_seed_list(stem: str, *arms: str) -> list[int]:
    """The seeds of ``arms`` in a cable_rl result, which must be the same."""
    seeds = {arm: _finished_seeds(stem, arm) for arm in arms}
    assert len({tuple(s) for s in seeds.values()}) == 1, f"{stem}: different seeds {seeds}"
    return seeds[arms[0]]


def _abl_short(variant: str) -> dict[str, Any]:
    """A variant's row of the short-task RLPD ablation."""
    return one("cable_rlpd_ablation_quick_short", variant=variant)


def _abl_short_runs(variant: str) -> dict[int, dict[str, Any]]:
    """Seed -> run summary of one variant of the short-task RLPD ablation."""
    return {r["seed"]: r["summary"] for r in doc("cable_rlpd_ablation_quick_short")["runs"]
            if r["variant"] == variant}


def _abl_short_speed(variant: str) -> list[float]:
    """Agent steps/s of one variant's runs, by seed."""
    runs = _abl_short_runs(variant)
    return [runs[s]["agent_steps_per_s"] for s in sorted(runs)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _abl_short_beats(variant: str, other: str) -> bool:
    """Whether ``variant``'s held-out success is above ``other``'s on every common seed."""
    a, b = _abl_short_runs(variant), _abl_short_runs(other)
    return all(a[s]["eval"]["success_rate"] > b[s]["eval"]["success_rate"] for s in a if s in b)


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



CABLE_RL_CLAIMS: list[Claim] = [
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
           "| {label} | {r[eval_success_mean]:.2f} [{r[eval_success_min]:.2f}–"
           "{r[eval_success_max]:.2f}] | {r[train_success_last1k_mean]:.2f} | "
           "{r[agent_steps_per_s_mean]:.1f} |",
           [(v, functools.partial(lambda v, label: {"label": label, "r": _abl_short(v)}, v,
                                  label))
            for v, label in ABLATION_SHORT_LABELS]),
    Claim("cable_rlpd ablation short setup",
          "--quick --env-id S3K-CableInsertShort-v0 --seeds {seeds} --steps {steps}`: the "
          "fixed-temperature\nbase setting with one ingredient changed, true keypoints, {n} "
          "seeds x {steps:,} steps, where the base\nagent is about to pass 80 %; {e} held-out "
          "episodes each",
          lambda: {"seeds": _abl_short("base")["seeds_done"],
                   "n": len(_abl_short("base")["seeds_done"].split()),
                   "steps": _abl_short("base")["steps"],
                   "e": _abl_short("base")["eval_episodes"]}),
    Claim("cable_rlpd ablation short reading",
          "The\ndemonstrations matter most ({d:.2f} held-out without them, 0.00 on {d0} of "
          "{n} seeds), then\nsocket-relative observations (world-frame positions: {w:.2f}), "
          "LayerNorm in the critics ({ln:.2f}\nwithout) and an update-to-data ratio above 1 "
          "({u:.2f} at UTD 1 in the same number of env steps,\nat about twice the agent "
          "steps/s). Without the plug's motion and the time left the agent\nreaches "
          "{nv[eval_success_mean]:.2f} [{nv[eval_success_min]:.2f}–"
          "{nv[eval_success_max]:.2f}], within the seed spread of the base "
          "({b[eval_success_mean]:.2f} [{b[eval_success_min]:.2f}–"
          "{b[eval_success_max]:.2f}])",
          lambda: {**{k: _abl_short(v)["eval_success_mean"]
                      for k, v in (("w", "world"), ("d", "no_demos"), ("ln", "no_layer_norm"),
                                   ("u", "utd1"))},
                   "n": len(_abl_short("base")["seeds_done"].split()),
                   "d0": sum(r["eval"]["success_rate"] == 0
                             for r in _abl_short_runs("no_demos").values()),
                   "nv": _abl_short("no_velocity_time"), "b": _abl_short("base")}
          if 1.5 < _abl_short("utd1")["agent_steps_per_s_mean"]
          / _abl_short("base")["agent_steps_per_s_mean"] < 2.5
          and _abl_short("no_velocity_time")["eval_success_max"]
          >= _abl_short("base")["eval_success_min"] else {}),
    Claim("cable_rlpd ablation short cheap update",
          "loses nothing at this budget: {c[eval_success_mean]:.2f} [{c[eval_success_min]:.2f}–"
          "{c[eval_success_max]:.2f}] held-out against the base's {b:.2f}, at\n{x:.1f}x the "
          "base's agent steps/s on the same seeds 1-3 ({cs:.1f} vs {bs:.1f})",
          lambda: {"c": _abl_short("cheap_update"), "b": _abl_short("base")["eval_success_mean"],
                   "cs": _mean(_abl_short_speed("cheap_update")[1:]),
                   "bs": _mean(_abl_short_speed("base")[1:]),
                   "x": _mean(_abl_short_speed("cheap_update")[1:])
                   / _mean(_abl_short_speed("base")[1:])}
          if _abl_short("cheap_update")["eval_success_mean"]
          >= _abl_short("base")["eval_success_mean"] else {}),
    Claim("cable_rlpd ablation short cheap update, 40k cost",
          "in the short-task ablation below it learns as\nwell as the batch-256 update at "
          "{x:.1f}x its speed",
          lambda: {"x": _mean(_abl_short_speed("cheap_update")[1:])
                   / _mean(_abl_short_speed("base")[1:])}),
    Claim("cable_rl short 40k cheap update",
          "held-out true success\nS3K keypoints {kp:.2f} ({k0:.2f}, {k1:.2f}; the batch-256 "
          "runs of the same seeds: {b0:.2f}, {b1:.2f}), beta-VAE\n{v:.2f}, true keypoints "
          "{g:.2f}. The S3K agent's rolling true success first passes 80 % at {p80:,.0f}\n"
          "steps (batch 256: {b80:,.0f} over 5 seeds). Each seed took {ck[0]:,.0f} CPU-s on the "
          "`kp` arm, {cv[0]:,.0f} on\nthe VAE arm and {cg[0]:,.0f} on the true-keypoint arm, "
          "so 5 seeds of the three arms come to about\n{h:.1f} CPU-hours, within the issue's 6",
          lambda: {"kp": one(CHEAP40_STEM, arm="kp")["eval_success_true_mean"],
                   "k0": _run_success(CHEAP40_STEM, "kp", 0),
                   "k1": _run_success(CHEAP40_STEM, "kp", 1),
                   "b0": _run_success(SHORT40_STEM, "kp", 0),
                   "b1": _run_success(SHORT40_STEM, "kp", 1),
                   "v": one(CHEAP40_STEM, arm="vae")["eval_success_true_mean"],
                   "g": one(CHEAP40_STEM, arm="gt")["eval_success_true_mean"],
                   "p80": one(CHEAP40_STEM, arm="kp")["first_80_true_steps_mean"],
                   "b80": one(SHORT40_STEM, arm="kp")["first_80_true_steps_mean"],
                   "ck": _single_call_cpu(CHEAP40_STEM, "kp"),
                   "cv": _single_call_cpu(CHEAP40_STEM, "vae"),
                   "cg": _single_call_cpu(CHEAP40_STEM, "gt"),
                   "h": len(doc(SHORT40_STEM)["config"]["seeds"])
                   * sum(_single_call_cpu(CHEAP40_STEM, a)[0]
                                for a in ("kp", "vae", "gt")) / 3600}),
    Claim("cable_rl short 40k cheap update seeds",
          "so far `kp` seeds {k}, the other arms seed {o};",
          lambda: {"k": "-".join(map(str, _finished_seeds(CHEAP40_STEM, "kp"))),
                   "o": " ".join(map(str, _common_seed_list(CHEAP40_STEM, "vae", "gt")))}),
    Claim("cable_rlpd ablation short ensemble",
          "The 10-critic ensemble is ahead on every\nseed ({c[eval_success_mean]:.2f} "
          "[{c[eval_success_min]:.2f}–{c[eval_success_max]:.2f}]) at {x:.0f}x the CPU per "
          "step. Agent steps/s are means over the seeds:\nseed 0 ran before the update was "
          "made cheaper and with more jobs on the 2 cores (base: {s0:.1f}\nagent steps/s "
          "there, {lo:.0f}-{hi:.0f} on seeds 1-3)",
          lambda: {"c": _abl_short("critics10"),
                   "x": _abl_short("base")["agent_steps_per_s_mean"]
                   / _abl_short("critics10")["agent_steps_per_s_mean"],
                   "s0": _abl_short_speed("base")[0],
                   "lo": min(_abl_short_speed("base")[1:]),
                   "hi": max(_abl_short_speed("base")[1:])}
          if _abl_short_beats("critics10", "base") else {}),
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
]
