"""``python -m benchmarks.cable_rl``: the whole pipeline (:func:`run`) and its command line
(see :mod:`benchmarks.cable_rl`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agents.beta_vae.model import load_vae
from benchmarks import common
from benchmarks.cable_rl.config import (
    AGENTS,
    ARMS,
    DEMO_EXTRA_STEPS,
    ENV_ID,
    ENV_IDS,
    EPISODE_COLUMNS,
    EVAL_COLUMNS,
    PROFILES,
    RLPD_PROFILES,
    SUMMARY_COLUMNS,
    AgentParams,
    CacheMismatchError,
    Config,
    RLPDParams,
    StageTimes,
    file_sha256,
    log,
)
from benchmarks.cable_rl.report import (
    load_run_rows,
    markdown_summary,
    plot,
    summarise,
)
from benchmarks.cable_rl.rlpd_training import run_one_rlpd
from benchmarks.cable_rl.stages import (
    stage_convert,
    stage_datasets,
    stage_demos,
    stage_probe,
    stage_vae,
)
from benchmarks.cable_rl.training import (
    RunContext,
    run_directory,
    run_one,
)
from s3k_envs.checkpoints import default_checkpoint
from s3k_envs.keypoints.predictor import KeypointPredictor


# ---------------------------------------------------------------------------- pipeline
def run_arm(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """One (arm, seed) run with the configured agent (``--agent``)."""
    if ctx.cfg.agent_kind == "rlpd":
        return run_one_rlpd(ctx, arm, seed)
    return run_one(ctx, arm, seed)


def run_task(ctx: RunContext, arm: str, seed: int) -> dict[str, Any]:
    """One (arm, seed) run in a Ray worker (its own torch thread setting)."""
    torch.set_num_threads(ctx.cfg.threads)
    return run_arm(ctx, arm, seed)


def finished_runs_only(cfg: Config) -> tuple[Config, list[dict[str, Any]]]:
    """For ``--aggregate-only``: the config without the arms that have no finished run, and
    the (arm, seed) runs of ``cfg`` without a ``result.json`` in the work directory.

    Raises:
        FileNotFoundError: no run of ``cfg`` has finished.
    """
    missing = [{"arm": arm, "seed": seed} for seed in cfg.seeds for arm in cfg.arms
               if not (run_directory(cfg, arm, seed) / "result.json").is_file()]
    arms = tuple(a for a in cfg.arms
                 if any({"arm": a, "seed": s} not in missing for s in cfg.seeds))
    if not arms:
        raise FileNotFoundError(f"--aggregate-only: no finished run of arms {cfg.arms}, seeds "
                                f"{cfg.seeds} in {cfg.work}")
    for m in missing:
        log(f"--aggregate-only: {m['arm']} seed {m['seed']} has not finished; left out")
    return dataclasses.replace(cfg, arms=arms), missing


def run(cfg: Config) -> dict[str, Any]:
    """The whole pipeline; returns the summary dict written to ``<stem>.json``."""
    torch.set_num_threads(cfg.threads)
    work = cfg.work
    work.mkdir(parents=True, exist_ok=True)
    missing: list[dict[str, Any]] = []
    if cfg.aggregate_only:
        cfg, missing = finished_runs_only(cfg)
    # DDPGfD keeps the file it always had; other agents time their own calls (stages 1-3
    # are shared through the caches of the work directory)
    stage = StageTimes(work / ("stage_timings.json" if cfg.agent_kind == "ddpgfd"
                               else f"stage_timings_{cfg.agent_kind}.json"))
    t_start = time.monotonic()
    with stage("1. demonstrations") as flags:
        flags["reused"] = (work / "demos" / "cable.npz").exists()
        demo_path, demo_meta = stage_demos(cfg, work)
    probe = vae_summary = None
    vae = vae_path = vae_sha = None
    if "vae" in cfg.arms:
        with stage("2a. VAE and probe datasets") as flags:
            names = ["probe_frames"] + (["vae_frames"] if cfg.vae_checkpoint is None else [])
            flags["reused"] = all((work / n / "manifest.json").exists() for n in names)
            frames, probe_dir = stage_datasets(cfg, work)
        with stage("2b. beta-VAE training") as flags:
            vae_path, vae_summary, flags["reused"] = stage_vae(cfg, work, frames)
        with stage("2c. linear probe") as flags:
            probe, flags["reused"] = stage_probe(cfg, work, vae_path, probe_dir)
        vae = load_vae(vae_path)
        vae_sha = file_sha256(vae_path)
    predictor = KeypointPredictor.load(cfg.keypoint_checkpoint)
    with stage("3. demonstration conversion") as flags:
        demos = stage_convert(cfg, work, demo_path, predictor, vae, vae_sha)
        flags["reused"] = all(d["reused"] for d in demos.values())
    ctx = RunContext(cfg, predictor, vae, demos, file_sha256(cfg.keypoint_checkpoint), vae_sha)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with stage("4. training and evaluation") as flags:
        flags["reused"] = all((run_directory(cfg, arm, seed) / "result.json").exists()
                              for arm in cfg.arms for seed in cfg.seeds)
        pairs = [(arm, seed) for seed in cfg.seeds for arm in cfg.arms  # seed-major
                 if {"arm": arm, "seed": seed} not in missing]
        if cfg.ray:
            # Every (arm, seed) run is a Ray task; runs write into the work directory as
            # locally (a file system all nodes see), and a retried run resumes.
            from s3k_envs.keypoints import ray_backend

            ray = ray_backend.connect(cfg.ray)
            task = ray.remote(num_cpus=1, max_retries=ray_backend.MAX_RETRIES)(run_task)
            shared = ray.put(ctx)
            outs = ray.get([task.remote(shared, arm, seed) for arm, seed in pairs])
            results.update(zip(pairs, outs, strict=True))
        else:
            for arm, seed in pairs:  # seed-major: a partial run still compares the arms
                results[(arm, seed)] = run_arm(ctx, arm, seed)
    episodes = load_run_rows(cfg, results, "episodes")
    summary_rows = summarise(cfg, results, probe, episodes)
    eval_rows = load_run_rows(cfg, results, "eval")
    machine = common.machine_info()
    machine["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    stem = cfg.out / cfg.stem
    summary = {
        "benchmark": "cable_rl", "profile": cfg.profile, "agent": cfg.agent_kind,
        "env_id": cfg.env_id,
        # Which keypoint model the kp / vae arms saw (the file at a path can be replaced).
        "keypoint_checkpoint_sha256": ctx.kp_sha,
        "machine": machine, "config": cfg.to_json(), "columns": list(SUMMARY_COLUMNS),
        "rows": summary_rows, "missing_runs": missing, "stages": stage.records,
        "stages_wall_s": sum(r["wall_s"] for r in stage.records.values()),
        "runs_wall_s": sum(r["train_wall_s"] + r["eval_wall_s"] for r in results.values()),
        "wall_s_this_call": time.monotonic() - t_start,
        "demonstrations": {"path": str(demo_path), "metadata": demo_meta,
                           "per_arm": {a: d["stats"] for a, d in demos.items()}},
        "vae": vae_summary, "linear_probe": probe,
        "runs": [{k: v for k, v in r.items() if k != "stamp"} for r in results.values()],
        "notes": [
            "success_keypoint: the env's insertion rule (< 2.5 cm) on the keypoints the arm's "
            "reward reads (predicted by the S3K model for kp and vae, true for gt); "
            "success_true: the same rule on the true keypoints (info['is_success_true']).",
            "final training success: the mean over the training episodes (with exploration "
            "noise) that ended in the last `window` env steps; evaluation: the deterministic "
            "final policy on held-out env seeds.",
            "first_50_true / first_80_true: per seed the first episode end (env steps, >= "
            "`window`) at which the rolling true success over the last `window` steps "
            "reaches 0.5 / 0.8; mean, min and max over the seeds that got there "
            "(first_*_seeds of them).",
            "repr_error: kp: the S3K model's 3D error on the probe's test samples; vae: the "
            "linear probe latent -> true keypoints on the same samples; gt: 0.",
        ],
    }
    common.write_csv(stem.with_suffix(".csv"), summary_rows, SUMMARY_COLUMNS)
    common.write_csv(stem.with_name(f"{cfg.stem}_episodes.csv"), episodes,
                     ("arm", "seed", *EPISODE_COLUMNS))
    common.write_csv(stem.with_name(f"{cfg.stem}_eval.csv"), eval_rows,
                     ("arm", "seed", *EVAL_COLUMNS))
    png = plot(cfg, episodes, results, stem.with_suffix(".png"))
    summary["files"] = {"csv": str(stem.with_suffix(".csv")),
                        "json": str(stem.with_suffix(".json")),
                        "episodes": str(stem.with_name(f"{cfg.stem}_episodes.csv")),
                        "eval": str(stem.with_name(f"{cfg.stem}_eval.csv")), "png": str(png)}
    common.write_json(stem.with_suffix(".json"), summary)
    return summary


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.cable_rl``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cable_rl",
        description="RLPD (default) or DDPGfD on S3K keypoints vs on beta-VAE features, "
                    "S3K-CableInsert-v0 (the S3K paper's Fig. 7). Resumable: rerun the same "
                    "command.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--smoke", action="store_const", dest="profile", const="smoke",
                   help="absurdly small end-to-end check (~1 CPU-min)")
    g.add_argument("--quick", action="store_const", dest="profile", const="quick",
                   help="2 seeds x 3,000 steps (RLPD) or 2,000 steps (DDPGfD)")
    g.add_argument("--full", action="store_const", dest="profile", const="full",
                   help="the paper's scale: 5 seeds x 40,000 steps (hours)")
    p.add_argument("--agent", choices=AGENTS, default=AGENTS[0],
                   help="the learner: rlpd (agents.rlpd, default) or ddpgfd (agents.ddpgfd, "
                        "the paper's)")
    p.add_argument("--env-id", choices=list(ENV_IDS), default=ENV_ID,
                   help="the cable task; S3K-CableInsertShort-v0 (cable held 6 cm above the "
                        "plug) adds '_short' to the result stem and the work directory")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["kp", "vae"],
                   help="agents to train (gt: ground-truth keypoints, an upper bound)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="agent seeds")
    p.add_argument("--steps", type=int, default=None, help="env steps per run")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="final evaluation episodes per run (held-out env seeds)")
    p.add_argument("--window", type=int, default=None,
                   help="rolling-average window of the training curves, env steps")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="env steps between resumable checkpoints of a run")
    p.add_argument("--demos", type=int, default=None, help="expert demonstrations")
    p.add_argument("--demo-seed", type=int, default=0,
                   help="reset seed of the first demonstration attempt")
    p.add_argument("--demo-extra-steps", type=int, default=DEMO_EXTRA_STEPS,
                   help="control steps the expert goes on after the first true success")
    p.add_argument("--camera-seed", type=int, default=0, help="seed of the fixed camera rig")
    p.add_argument("--vae-frames", type=int, default=None, help="unlabelled VAE frames")
    p.add_argument("--probe-samples", type=int, default=None,
                   help="labelled samples of the linear probe (30 %% test)")
    p.add_argument("--vae-minutes", type=float, default=None,
                   help="beta-VAE training budget, CPU minutes")
    p.add_argument("--vae-checkpoint", type=Path, default=None,
                   help="use this beta-VAE (trained on 128 px views of the same rig) instead "
                        "of training one")
    p.add_argument("--keypoint-checkpoint", type=Path, default=None,
                   help="S3K keypoint model (default: the shipped cable checkpoint)")
    r = RLPDParams()
    p.add_argument("--utd", type=int, default=None,
                   help=f"RLPD: critic updates per env step (default {r.utd})")
    p.add_argument("--critics", type=int, default=None,
                   help=f"RLPD: critic ensemble size (default {r.critics})")
    p.add_argument("--init-temperature", type=float, default=None,
                   help=f"RLPD: initial SAC temperature (default {r.init_temperature})")
    p.add_argument("--rlpd-batch-size", type=int, default=None,
                   help=f"RLPD: transitions per update (default {r.batch_size})")
    p.add_argument("--actor-every", type=int, default=None,
                   help=f"RLPD: actor and temperature updated every this many update rounds "
                        f"(default {r.actor_every}; --rlpd-batch-size 128 --actor-every 2 is "
                        f"the cheapest update of benchmarks.rl_throughput)")
    p.add_argument("--learn-temperature", action="store_true", default=None,
                   help="RLPD: tune the SAC temperature towards the target entropy (default: "
                        "fixed at --init-temperature)")
    a = AgentParams()
    p.add_argument("--demo-fraction", type=float, default=a.demo_fraction)
    p.add_argument("--bc-weight", type=float, default=a.bc_weight)
    p.add_argument("--pretrain-steps", type=int, default=a.pretrain_steps,
                   help="DQfD pre-training: gradient steps on the demonstrations alone first")
    p.add_argument("--no-q-filter", dest="q_filter", action="store_false",
                   help="clone every demonstrated action (no Q-filter on the BC loss)")
    p.add_argument("--n-steps", type=int, default=a.n_steps)
    p.add_argument("--action-noise", type=float, default=a.action_noise,
                   help="std of the Gaussian exploration noise, action units")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=None,
                   help="dataset generation processes (default: s3k generate's choice)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/cable_rl"),
                   help="cache directory; the profile's files go to WORK_DIR/<profile>/")
    p.add_argument("--out", type=Path, default=None,
                   help="result directory (default benchmarks/results; WORK_DIR/smoke for "
                        "--smoke)")
    p.add_argument("--tag", default="",
                   help="name of a variant of the profile (e.g. 10k): results <stem>_<tag>.*, "
                        "work directory WORK_DIR/<profile>_<tag>/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--aggregate-only", action="store_true",
                   help="train nothing: write the results from the (arm, seed) runs that have "
                        "finished in the work directory (the others are listed as missing)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run every (arm, seed) as a Ray task: without ADDRESS on a local Ray "
                        "instance, else on the cluster at ADDRESS (docs/scaling.md)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse the command line into a :class:`Config` (profile values + overrides)."""
    p = build_parser()
    a = p.parse_args(argv)
    prof = PROFILES[a.profile]
    rlpd = RLPDParams()
    if a.agent == "rlpd":
        over = dict(RLPD_PROFILES[a.profile])
        rlpd = dataclasses.replace(rlpd, **over.pop("rlpd", {}))
        prof = dataclasses.replace(prof, **over)
        given = {"utd": a.utd, "critics": a.critics, "init_temperature": a.init_temperature,
                 "learn_temperature": a.learn_temperature, "batch_size": a.rlpd_batch_size,
                 "actor_every": a.actor_every}
        rlpd = dataclasses.replace(rlpd, **{k: v for k, v in given.items() if v is not None})
        if (rlpd.utd < 1 or rlpd.critics < 1 or not rlpd.init_temperature > 0
                or rlpd.batch_size < 1 or rlpd.actor_every < 1):
            p.error(f"expected --utd >= 1, --critics >= 1, --init-temperature > 0, "
                    f"--rlpd-batch-size >= 1, --actor-every >= 1, got {rlpd.utd}, "
                    f"{rlpd.critics}, {rlpd.init_temperature}, {rlpd.batch_size}, "
                    f"{rlpd.actor_every}")
    elif any(v is not None for v in (a.utd, a.critics, a.init_temperature,
                                     a.learn_temperature, a.rlpd_batch_size, a.actor_every)):
        p.error("--utd, --critics, --init-temperature, --learn-temperature, --rlpd-batch-size "
                "and --actor-every are RLPD settings; they need --agent rlpd")

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    arms = tuple(dict.fromkeys(a.arms))
    seeds = tuple(dict.fromkeys(pick(a.seeds, prof.seeds)))
    cfg_values = {
        "steps": pick(a.steps, prof.steps), "eval_episodes": pick(a.eval_episodes,
                                                                  prof.eval_episodes),
        "window": pick(a.window, prof.window),
        "checkpoint_every": pick(a.checkpoint_every, prof.checkpoint_every),
        "demos": pick(a.demos, prof.demos), "vae_frames": pick(a.vae_frames, prof.vae_frames),
        "probe_samples": pick(a.probe_samples, prof.probe_samples),
    }
    for name, value in cfg_values.items():
        if value < 1:
            p.error(f"--{name.replace('_', '-')}: expected >= 1, got {value}")
    if cfg_values["probe_samples"] < 4:
        p.error("--probe-samples: expected >= 4 (the probe needs >= 2 train and 1 test sample)")
    if min(seeds) < 0 or min(a.demo_seed, a.demo_extra_steps, a.camera_seed) < 0:
        p.error("--seeds, --demo-seed, --demo-extra-steps and --camera-seed must be >= 0")
    if a.threads < 1:
        p.error(f"--threads: expected >= 1, got {a.threads}")
    if not 0.0 <= a.demo_fraction <= 1.0 or a.bc_weight < 0 or a.n_steps < 1 or (
            a.action_noise < 0 or a.pretrain_steps < 0):
        p.error("expected 0 <= --demo-fraction <= 1, --bc-weight >= 0, --n-steps >= 1, "
                "--action-noise >= 0, --pretrain-steps >= 0")
    vae_minutes = pick(a.vae_minutes, prof.vae_minutes)
    if vae_minutes is not None and not vae_minutes > 0:
        p.error(f"--vae-minutes: expected > 0, got {vae_minutes}")
    if a.vae_checkpoint is not None and not a.vae_checkpoint.is_file():
        p.error(f"--vae-checkpoint: no such file {a.vae_checkpoint}")
    try:
        kp_ckpt = a.keypoint_checkpoint or default_checkpoint(a.env_id)
    except (KeyError, FileNotFoundError, ValueError) as e:
        p.error(f"no shipped keypoint checkpoint for {a.env_id} ({e}); give "
                "--keypoint-checkpoint")
    if not Path(kp_ckpt).is_file():
        p.error(f"--keypoint-checkpoint: no such file {kp_ckpt}")
    agent = dataclasses.replace(AgentParams(), demo_fraction=a.demo_fraction,
                                bc_weight=a.bc_weight, n_steps=a.n_steps, q_filter=a.q_filter,
                                pretrain_steps=a.pretrain_steps,
                                action_noise=a.action_noise)
    if a.agent != "ddpgfd" and agent != AgentParams():
        changed = [f for f in AgentParams.__dataclass_fields__
                   if getattr(agent, f) != getattr(AgentParams(), f)]
        p.error(f"DDPGfD settings {changed} given with --agent {a.agent}; add --agent ddpgfd")
    if a.tag and not a.tag.replace("-", "").replace("_", "").isalnum():
        p.error(f"--tag: expected letters, digits, '-' or '_', got {a.tag!r}")
    if a.agent == "ddpgfd":  # DDPGfD's stems as they always were
        stem = "cable_rl" if a.profile == "full" else f"cable_rl_{a.profile}"
    else:
        stem = f"cable_rl_{a.agent}_{a.profile}"
    stem += f"_{ENV_IDS[a.env_id]}" if ENV_IDS[a.env_id] else ""
    stem += f"_{a.tag}" if a.tag else ""
    default_out = a.work_dir / "smoke" if a.profile == "smoke" else common.RESULTS_DIR
    return Config(
        profile=a.profile, arms=arms, seeds=seeds, demo_seed=a.demo_seed,
        demo_extra_steps=a.demo_extra_steps,
        camera_seed=a.camera_seed, rollout_steps=prof.rollout_steps,
        rollout_noise=prof.rollout_noise, vae_minutes=vae_minutes, vae_steps=prof.vae_steps,
        vae_batch=prof.vae_batch, vae_image_size=prof.vae_image_size,
        vae_arch=dict(prof.vae_arch), vae_checkpoint=a.vae_checkpoint,
        keypoint_checkpoint=Path(kp_ckpt), agent=agent, threads=a.threads, workers=a.workers,
        work_dir=a.work_dir, tag=a.tag, out=a.out or default_out, stem=stem,
        progress=not a.no_progress, ray=a.ray, agent_kind=a.agent, rlpd=rlpd, env_id=a.env_id,
        aggregate_only=a.aggregate_only,
        **cfg_values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    cfg = parse_args(argv)
    try:
        summary = run(cfg)
    except (CacheMismatchError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_summary(summary["rows"]))
    print()
    probe = summary["linear_probe"]
    if probe:
        kp = probe["keypoint_model"]
        print(f"Representation check on {probe['num_test']} held-out labelled frames of the "
              f"rig: beta-VAE latent -> keypoints (linear probe) median "
              f"{probe['test']['median']:.1f} mm, p90 {probe['test']['p90']:.1f} mm "
              f"({probe['active_units_variance']}/{probe['latent_dim']} active latents); S3K "
              f"keypoint model median {kp['median']:.1f} mm, p90 {kp['p90']:.1f} mm; predicting "
              f"the mean position {probe['mean_baseline']['median']:.1f} mm.")
    stages = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in summary["stages"].items())
    print(f"Profile {cfg.profile}: {summary['stages_wall_s'] / 60:.1f} min wall ({stages}; "
          f"this call {summary['wall_s_this_call'] / 60:.1f} min); "
          f"machine: {summary['machine']['cpu_model']}, {summary['machine']['usable_cores']} "
          f"cores, load average {summary['machine']['load_average']}.")
    sys.stdout.flush()
    print("Wrote " + ", ".join(summary["files"].values()), file=sys.stderr)
    return 0
