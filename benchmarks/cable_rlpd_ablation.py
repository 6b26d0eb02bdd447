"""Which ingredients of the RLPD agent matter on cable insertion? An ablation on true keypoints.

Issue 15 asks which parts of :class:`agents.rlpd.RLPD` (SAC + symmetric demonstration sampling
+ LayerNorm critic ensemble + UTD > 1 + observation normalisation) carry its result on the
``gt`` arm (true keypoints + gripper state, no images). Each *variant* is one
:mod:`benchmarks.cable_rlpd` run per seed (demonstrations, training, held-out evaluation on
20 seeds never used for any choice), with one ingredient changed from the best configuration
so far (``base``):

====================  ====================================================================
variant               cable_rlpd flags
====================  ====================================================================
``base``              ``--relative --no-backup-entropy --time-limit --velocity
                      --init-temperature 0.01 --fixed-temperature`` (UTD 4, 2 critics,
                      LayerNorm, batch 256, 51 demonstrations 50 % of every batch)
``no_demos``          base + ``--no-demos`` (no demonstrations in the batches)
``utd1``              base + ``--utd 1`` (one critic update per env step)
``no_layer_norm``     base + ``--no-layer-norm`` (critics without LayerNorm)
``critics10``         base + ``--critics 10`` (REDQ-style ensemble of 10, target: min over a
                      random 2)
``world``             base without ``--relative`` (world-frame positions)
``no_velocity_time``  base without ``--velocity`` and ``--time-limit`` (no plug motion, no
                      time left in the observation; time-limit ends bootstrapped)
``cheap_update``      base + ``--batch-size 128 --actor-every 2`` (the cheapest update of
                      ``benchmarks.rl_throughput``: half the batch, the actor and
                      temperature updated every 2nd round, TD3-style; not an ablation of
                      an ingredient but the price of a cheaper CPU budget)
====================  ====================================================================

Runs are made in-process (``benchmarks.cable_rlpd.main``) into a work directory
``--work-dir/<profile>[_<task>]/`` (default ``runs/cable_rlpd_ablation``; ``_short`` for
``--env-id S3K-CableInsertShort-v0``; the committed single-run
files in ``benchmarks/results`` are not touched), tag ``<variant>_s<seed>_<steps>``. A run
whose JSON exists there with the same arguments is not repeated: rerun the same command to
resume. After every run, and with ``--aggregate-only``, the table is rewritten from the runs
present; the JSON names the (variant, seed) runs that are missing.

Outputs (atomic) in ``--out`` (default ``benchmarks/results``; the work directory for
``--smoke``), stem ``cable_rlpd_ablation_<profile>[_<task>]``: ``.csv`` (one row per
variant: held-out success mean / min / max over seeds, training success over the last 1,000
env steps, agent steps/s), ``.json`` (rows, every run's arguments and summary, missing runs,
machine info and the command that wrote it, plus ``run_commands``: the distinct commands
that made the runs, which with ``--aggregate-only`` differ from it), ``.png`` (rolling
training success vs env steps per variant; held-out success bars with the min--max over
seeds) and ``.md`` (the table).

Profiles: ``--smoke`` (60 steps, 1 seed, 2 demonstrations, 2 evaluation episodes: for the
test), ``--quick`` (1 seed x 3,000 steps), ``--full`` (3 seeds x 10,000 steps).

Cost (measured, one thread under ``nice``, the 2-core machine shared with another
benchmark): ``--quick`` took 28 min for the seven variants, agent steps/s 9.8 (``base``),
35 (``utd1``), 5.9 (``critics10``), 15--22 (the others), + ~10 s of demonstrations and
~20 s of evaluation per run; ``--full`` is ~10x that (~5 h).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rlpd_ablation --quick [--variants base utd1]
    MUJOCO_GL=egl python -m benchmarks.cable_rlpd_ablation --full [--seeds 0 1 2]
    MUJOCO_GL=egl python -m benchmarks.cable_rlpd_ablation --quick --aggregate-only
    MUJOCO_GL=egl python -m benchmarks.cable_rlpd_ablation --full --env-id S3K-CableInsertShort-v0
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks import common

#: The best configuration so far (issue 15), cable_rlpd flags.
BASE_FLAGS: tuple[str, ...] = ("--relative", "--no-backup-entropy", "--time-limit",
                               "--velocity", "--init-temperature", "0.01",
                               "--fixed-temperature")


def _without(flags: Sequence[str], *drop: str) -> list[str]:
    """``flags`` without the switches ``drop`` (only flags without a value)."""
    return [f for f in flags if f not in drop]


#: Variant name -> cable_rlpd command-line flags.
VARIANTS: dict[str, list[str]] = {
    "base": list(BASE_FLAGS),
    "no_demos": [*BASE_FLAGS, "--no-demos"],
    "utd1": [*BASE_FLAGS, "--utd", "1"],
    "no_layer_norm": [*BASE_FLAGS, "--no-layer-norm"],
    "critics10": [*BASE_FLAGS, "--critics", "10"],
    "world": _without(BASE_FLAGS, "--relative"),
    "no_velocity_time": _without(BASE_FLAGS, "--velocity", "--time-limit"),
    "cheap_update": [*BASE_FLAGS, "--batch-size", "128", "--actor-every", "2"],
}

#: Profile -> steps, seeds, demonstrations, held-out evaluation episodes.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 60, "seeds": [0], "demos": 2, "eval_episodes": 2},
    "quick": {"steps": 3000, "seeds": [0], "demos": 51, "eval_episodes": 20},
    "full": {"steps": 10_000, "seeds": [0, 1, 2], "demos": 51, "eval_episodes": 20},
}

#: Training success is measured over the episodes that ended in the last this many env steps.
TRAIN_WINDOW = 1000
#: Rolling window of the training-success curves, env steps.
CURVE_WINDOW = 500

CSV_COLUMNS = ["variant", "flags", "seeds_done", "seeds_missing", "eval_episodes",
               "eval_success_mean", "eval_success_min", "eval_success_max",
               "train_success_last1k_mean", "train_success_last1k_min",
               "train_success_last1k_max", "train_episodes_last1k", "steps",
               "agent_steps_per_s_mean", "train_s_mean"]


def run_argv(variant: str, seed: int, settings: Mapping[str, Any], work: Path) -> list[str]:
    """cable_rlpd's command line of one (variant, seed) run writing into ``work``."""
    steps = int(settings["steps"])
    env_id = settings.get("env_id", common.CABLE_ENV_IDS[0])
    # The default task is not named, so runs made before --env-id existed still match.
    env = [] if env_id == common.CABLE_ENV_IDS[0] else ["--env-id", env_id]
    return [*VARIANTS[variant], *env, "--steps", str(steps), "--seed", str(seed),
            "--demos", str(settings["demos"]), "--eval-episodes",
            str(settings["eval_episodes"]), "--tag", f"{variant}_s{seed}_{steps}",
            "--out", str(work), "--save-dir", str(work / "agents")]


def run_stem(variant: str, seed: int, steps: int, work: Path) -> Path:
    """Path stem (no suffix) of a run's cable_rlpd result files."""
    return work / f"cable_rlpd_{variant}_s{seed}_{steps}"


def _expected_args(argv: Sequence[str]) -> dict[str, Any]:
    """``--flag value`` / ``--flag`` pairs of ``argv`` as cable_rlpd's argparse names them
    (``--no-demos`` -> ``no_demos: True``); values stay strings."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        key = argv[i].removeprefix("--").replace("-", "_")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[key] = argv[i + 1]
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def _same_value(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or wanted is True:
        return stored is True and wanted is True
    if isinstance(stored, (int, float)):
        try:
            return math.isclose(float(stored), float(wanted))
        except (TypeError, ValueError):
            return False
    return str(stored) == str(wanted)


def matches(doc: Mapping[str, Any], argv: Sequence[str]) -> bool:
    """Whether a cable_rlpd result ``doc`` was made with the command line ``argv``: every
    flag given has the stored value, every switch not given is stored off (paths are not
    compared: result files store them relative to the repository)."""
    stored = doc.get("args")
    if not isinstance(stored, Mapping):
        return False
    wanted = _expected_args(argv)
    for key, value in wanted.items():
        if key in ("out", "save_dir"):
            continue
        if key not in stored or not _same_value(stored[key], value):
            return False
    return all(not (isinstance(v, bool) and v) or k in wanted for k, v in stored.items())


def load_run(stem: Path, argv: Sequence[str]) -> dict[str, Any] | None:
    """A finished run's JSON document if it exists and was made with ``argv``, else None."""
    path = Path(f"{stem}.json")
    if not path.is_file() or not Path(f"{stem}_episodes.csv").is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if matches(doc, argv) else None


def read_episodes(path: Path) -> list[dict[str, Any]]:
    """A run's ``_episodes.csv``: ``env_steps`` (int, env steps when the episode ended) and
    ``end`` (``success``, ``left_box``, ...) of every training episode."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{"env_steps": int(r["env_steps"]), "end": r["end"]} for r in csv.DictReader(f)]


def training_success(episodes: Sequence[Mapping[str, Any]], steps: int,
                     window: int = TRAIN_WINDOW) -> tuple[float, int]:
    """Fraction of the training episodes ending in the last ``min(window, steps)`` env steps
    that succeeded, and their number (NaN, 0 when none ended there)."""
    lo = steps - min(window, steps)
    sel = [e for e in episodes if e["env_steps"] > lo]
    if not sel:
        return math.nan, 0
    return sum(e["end"] == "success" for e in sel) / len(sel), len(sel)


def rolling_success(episodes: Sequence[Mapping[str, Any]], steps: int,
                    window: int = CURVE_WINDOW, every: int = 50
                    ) -> tuple[list[int], list[float]]:
    """Training success rate over the episodes ending in ``(x - window, x]`` env steps, at
    ``x = window, window + every, ..., steps`` (``window`` capped at ``steps``); NaN where
    no episode ended."""
    window = min(window, steps)
    xs = list(range(window, steps + 1, max(1, every)))
    ys = []
    for x in xs:
        sel = [e["end"] == "success" for e in episodes if x - window < e["env_steps"] <= x]
        ys.append(sum(sel) / len(sel) if sel else math.nan)
    return xs, ys


def run_command(command: str | None) -> str | None:
    """A run's recorded command line without an absolute ``--out DIR``: that is where the
    ablation that started the run wrote its table (a machine-specific path outside the
    repository), which does not change the run."""
    return None if command is None else re.sub(r"\s--out[ =]/\S+", "", command)


def _stats(values: Sequence[float], prefix: str) -> dict[str, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {f"{prefix}_mean": math.nan, f"{prefix}_min": math.nan, f"{prefix}_max": math.nan}
    return {f"{prefix}_mean": float(sum(vals) / len(vals)), f"{prefix}_min": float(min(vals)),
            f"{prefix}_max": float(max(vals))}


def aggregate(variants: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any],
              work: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                   list[dict[str, Any]], dict[str, tuple[list[int], list[float]]]]:
    """The table from the runs present in ``work``.

    Returns:
        ``(rows, runs, missing, curves)``: one row per variant with at least one finished
        run (:data:`CSV_COLUMNS`), each finished run's arguments and summary, the missing
        (variant, seed) pairs, and per variant the seed-mean rolling training success
        (env steps, rate).
    """
    steps = int(settings["steps"])
    rows, runs, missing, curves = [], [], [], {}
    for name in variants:
        done, evals, trains, n_train, speeds, train_s, per_seed_curves = [], [], [], 0, [], [], []
        for seed in seeds:
            argv = run_argv(name, seed, settings, work)
            stem = run_stem(name, seed, steps, work)
            doc = load_run(stem, argv)
            if doc is None:
                missing.append({"variant": name, "seed": seed})
                continue
            eps = read_episodes(Path(f"{stem}_episodes.csv"))
            train, n = training_success(eps, steps)
            done.append(seed)
            evals.append(float(doc["eval"]["success_rate"]))
            trains.append(train)
            n_train += n
            speeds.append(float(doc["agent_steps_per_s"]))
            train_s.append(float(doc["train_s"]))
            per_seed_curves.append(rolling_success(eps, steps))
            machine = doc.get("machine", {})
            runs.append({"variant": name, "seed": seed, "tag": doc["tag"],
                         "command": run_command(machine.get("command")),
                         "date_utc": machine.get("date_utc"),
                         "args": doc["args"], "config": doc["config"],
                         "summary": {"eval": doc["eval"], "train_success_last1k": train,
                                     "train_episodes_last1k": n,
                                     "training_episodes": doc["training_episodes"],
                                     "training_success_rate": doc["training_success_rate"],
                                     "agent_steps_per_s": doc["agent_steps_per_s"],
                                     "train_s": doc["train_s"], "demo_s": doc["demo_s"],
                                     "demos": doc["demos"], "blocks": doc["blocks"]}})
        if not done:
            continue
        xs = per_seed_curves[0][0]
        ys = []
        for i in range(len(xs)):
            vals = [c[1][i] for c in per_seed_curves if not math.isnan(c[1][i])]
            ys.append(sum(vals) / len(vals) if vals else math.nan)
        curves[name] = (xs, ys)
        rows.append({
            "variant": name, "flags": " ".join(VARIANTS[name]),
            "seeds_done": " ".join(map(str, done)),
            "seeds_missing": " ".join(str(s) for s in seeds if s not in done),
            "eval_episodes": int(settings["eval_episodes"]),
            **_stats(evals, "eval_success"), **_stats(trains, "train_success_last1k"),
            "train_episodes_last1k": n_train, "steps": steps,
            "agent_steps_per_s_mean": sum(speeds) / len(speeds),
            "train_s_mean": sum(train_s) / len(train_s)})
    return rows, runs, missing, curves


def plot(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, tuple[list[int], list[float]]],
         path: Path, title: str) -> Path:
    """Left: rolling training success vs env steps per variant (mean over seeds); right:
    held-out success per variant (bar: mean over seeds, whisker: min--max)."""
    plt = common.use_agg()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, (xs, ys) in curves.items():
        ax1.plot(xs, ys, label=name, lw=1.5)
    ax1.set_xlabel("env steps")
    ax1.set_ylabel(f"training success (episodes ending in the last {CURVE_WINDOW} steps)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=8)
    ax1.set_title("training success (mean over seeds)")
    names = [r["variant"] for r in rows]
    mean = [r["eval_success_mean"] for r in rows]
    lo = [r["eval_success_mean"] - r["eval_success_min"] for r in rows]
    hi = [r["eval_success_max"] - r["eval_success_mean"] for r in rows]
    ax2.bar(range(len(rows)), mean, yerr=[lo, hi], capsize=4, color="#4c72b0")
    ax2.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("held-out success (min-max over seeds)")
    ax2.set_title("held-out evaluation (deterministic policy)")
    fig.suptitle(title)
    common.save_figure(fig, path)
    plt.close(fig)
    return path


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the rows."""
    return common.markdown_table(rows, [
        ("variant", "variant", "s"), ("seeds_done", "seeds", "s"),
        ("eval_success_mean", "held-out success", ".2f"),
        ("eval_success_min", "min", ".2f"), ("eval_success_max", "max", ".2f"),
        ("train_success_last1k_mean", "training success, last 1k steps", ".2f"),
        ("agent_steps_per_s_mean", "agent steps/s", ".1f")])


def write_results(a: argparse.Namespace, settings: Mapping[str, Any], work: Path,
                  out_dir: Path, stem: str) -> list[dict[str, Any]]:
    """Aggregate the runs present and write ``stem``.{csv,json,png,md}; returns the rows."""
    rows, runs, missing, curves = aggregate(a.variants, settings["seeds"], settings, work)
    if not rows:
        print("[ablation] no finished run to aggregate", file=sys.stderr)
        return rows
    failed = getattr(a, "failed", [])
    common.write_csv(out_dir / f"{stem}.csv", rows, CSV_COLUMNS)
    common.write_json(out_dir / f"{stem}.json", {
        "benchmark": stem, "profile": a.profile,
        "settings": {**settings, "work_dir": str(work), "train_window_steps": TRAIN_WINDOW,
                     "curve_window_steps": CURVE_WINDOW},
        "variants": {k: VARIANTS[k] for k in a.variants}, "rows": rows,
        "complete": not missing, "missing": missing, "failed": failed,
        "missing_variants": [v for v in a.variants if v not in {r["variant"] for r in rows}],
        # machine.command is what wrote this file (with --aggregate-only, not what ran the
        # runs); the commands that made the runs, in order, reproduce it.
        "run_commands": list(dict.fromkeys(r["command"] for r in runs if r["command"])),
        "runs": runs, "machine": common.machine_info()})
    n_runs = len(runs)
    task = settings.get("env_id", common.CABLE_ENV_IDS[0]).removeprefix("S3K-").removesuffix("-v0")
    title = (f"RLPD ablation on {task}, true keypoints ({a.profile}: "
             f"{settings['steps']} steps, {n_runs} run{'s' * (n_runs != 1)}"
             f"{', incomplete' if missing else ''})")
    plot(rows, curves, out_dir / f"{stem}.png", title)
    md = (f"# {title}\n\nHeld-out success: deterministic policy on {settings['eval_episodes']} "
          f"held-out seeds; training success: episodes ending in the last "
          f"{min(TRAIN_WINDOW, int(settings['steps']))} env steps. Source: `{stem}.json`.\n\n"
          + table(rows) + "\n")
    if missing:
        md += "\nMissing runs: " + ", ".join(f"{m['variant']} seed {m['seed']}"
                                            for m in missing) + "\n"
    common.write_text(out_dir / f"{stem}.md", md)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ablation (or only aggregate it); returns the exit status (1 if a run
    failed)."""
    from benchmarks import cable_rlpd

    p = argparse.ArgumentParser(prog="python -m benchmarks.cable_rlpd_ablation",
                                description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    for prof in PROFILES:
        g.add_argument(f"--{prof}", action="store_const", dest="profile", const=prof)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--env-id", choices=common.CABLE_ENV_IDS, default=common.CABLE_ENV_IDS[0],
                   help="cable task; other than the default, its short name is added to the "
                        "work directory and the result stem (..._full_short)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the profile's")
    p.add_argument("--steps", type=int, default=None, help="override the profile's env steps")
    p.add_argument("--demos", type=int, default=None,
                   help="override the profile's number of demonstrations")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="override the profile's held-out episodes")
    p.add_argument("--work-dir", type=Path, default=Path("runs/cable_rlpd_ablation"),
                   help="runs go to <work-dir>/<profile>/")
    p.add_argument("--out", type=Path, default=None,
                   help="result directory (default benchmarks/results; the work dir for "
                        "--smoke)")
    p.add_argument("--aggregate-only", action="store_true",
                   help="run nothing; write the table from the runs present")
    a = p.parse_args(argv)
    settings = dict(PROFILES[a.profile])
    for key in ("seeds", "steps", "demos", "eval_episodes"):
        if getattr(a, key) is not None:
            settings[key] = getattr(a, key)
    for key in ("steps", "demos", "eval_episodes"):
        if int(settings[key]) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {settings[key]}")
    settings["env_id"] = a.env_id
    name = common.cable_task_name(a.env_id)
    suffix = f"_{name}" if name else ""
    work = a.work_dir / f"{a.profile}{suffix}"
    out_dir = a.out or (work if a.profile == "smoke" else common.RESULTS_DIR)
    stem = f"cable_rlpd_ablation_{a.profile}{suffix}"
    a.failed = []
    if not a.aggregate_only:
        work.mkdir(parents=True, exist_ok=True)
        for name in a.variants:
            for seed in settings["seeds"]:
                argv_r = run_argv(name, seed, settings, work)
                if load_run(run_stem(name, seed, int(settings["steps"]), work), argv_r):
                    print(f"[ablation] {name} seed {seed}: done already", file=sys.stderr)
                    continue
                print(f"[ablation] {name} seed {seed}: cable_rlpd {' '.join(argv_r)}",
                      file=sys.stderr, flush=True)
                try:
                    cable_rlpd.main(argv_r)
                except Exception as exc:  # keep going: the other variants still count
                    traceback.print_exc()
                    a.failed.append({"variant": name, "seed": seed, "error": repr(exc)})
                    continue
                write_results(a, settings, work, out_dir, stem)
    rows = write_results(a, settings, work, out_dir, stem)
    print(table(rows))
    print(f"Wrote {out_dir / stem}.{{csv,json,png,md}}", file=sys.stderr)
    return 1 if a.failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
