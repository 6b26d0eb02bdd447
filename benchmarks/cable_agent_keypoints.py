"""The cable keypoint model on the states an RL agent visits (issue 15).

``benchmarks.cable_socket_keypoints`` measures the keypoint model on scripted-expert, noisy,
random and wandering episodes. A trained agent spends its time elsewhere: the RLPD agents of
``benchmarks.cable_rl`` sit with the plug on the socket's rim and push it through the
insertion threshold, and there the keypoint model decides both the reward and when the episode
ends. This benchmark runs a saved ``kp``-arm agent (``--agent``, deterministic actions,
observing through the first ``--checkpoint`` exactly as in its training env: same fixed
camera rig, same reward and termination on the keypoint rule) on development reset seeds
``--seed + i`` (neither training nor held-out seeds of ``cable_rl``), records every frame, and
then feeds the identical frames to every ``--checkpoint``.

Phases of a frame, from the true tip relative to the socket opening:

* ``inside``: the tip is in the hole (its keypoint is snapped to the opening);
* ``rim``: not inside, tip within 1 cm of the opening's height and 0.6-5 cm from the socket
  axis (the plug resting or sliding on the socket's top face);
* ``above``: within 2 cm of the axis and 0-5 cm above the opening
  (``benchmarks.cable_socket_keypoints``);
* ``free``: the rest.

Measured per checkpoint (on the same frames):

* keypoint error (mm) per phase and keypoint;
* ``predicted - true`` insertion error (mm) per phase, and near the success threshold (true
  error within ``--band`` of it), where a few mm decide the outcome;
* rule errors: frames where the keypoint rule (with the reward's confidence gate) fires while
  the true error is at or above the threshold (``false fires``), and true-success frames where
  it does not fire (``misses``); episodes whose first firing comes before the first true
  success (for the observing checkpoint these are the episodes that ended as keypoint-only
  "successes"; for the others it is what the same frames would have said).

Outputs (atomic) in ``--out``: ``cable_agent_keypoints{--tag}.csv`` (one row per checkpoint,
phase and keypoint), ``.json`` (everything, settings, machine info, command) and ``.png``.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_agent_keypoints --env-id S3K-CableInsertShort-v0 \\
        --agent runs/cable_rl/full_short_10k/runs/rlpd/kp/seed_0/agent.pt --episodes 30 \\
        --checkpoint shipped=assets/checkpoints/S3K-CableInsertShort-v0.pt \\
        [--checkpoint other=PATH] [--tag _short]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import torch

from benchmarks import common
from benchmarks.cable_socket_keypoints import (
    ABOVE_HEIGHT,
    ABOVE_RADIUS,
    KEYPOINTS,
    gate_confidences,
    parse_checkpoints,
    predict_all,
    predicted_errors,
    sha256_file,
)

PHASES = ("inside", "rim", "above", "free")
#: ``rim``: the true tip within this height (m) of the opening ...
RIM_HEIGHT = 0.01
#: ... and at most this far (m) from the socket axis (and outside the hole's footprint).
RIM_RADIUS = 0.05
#: Episode ends recorded per episode.
ENDS = ("true_success", "keypoint_only", "time_limit", "left_safety_box", "other")
CSV_COLUMNS = ("checkpoint", "phase", "keypoint", "frames", "median_mm", "p90_mm",
               "insertion_error_bias_median_mm", "insertion_error_bias_p10_mm",
               "insertion_error_bias_p90_mm")


def phase_of(true_keypoints: np.ndarray, tip: np.ndarray) -> str:
    """Phase of a frame (see the module docstring).

    Args:
        true_keypoints: ``(3, 3)`` m, ``plug_tip`` (snapped), ``plug_base``, ``socket``.
        tip: ``(3,)`` m, the physical tip (``info["plug_tip_true"]``, never snapped).

    Returns:
        One of :data:`PHASES`.
    """
    from s3k_envs.envs.cable import HOLE_HALF_WIDTH

    kp = np.asarray(true_keypoints, dtype=np.float64)
    socket = kp[2]
    if np.allclose(kp[0], socket, atol=1e-6):
        return "inside"
    rel = np.asarray(tip, dtype=np.float64) - socket
    horizontal, height = float(np.linalg.norm(rel[:2])), float(rel[2])
    if abs(height) <= RIM_HEIGHT and HOLE_HALF_WIDTH < horizontal <= RIM_RADIUS:
        return "rim"
    if horizontal < ABOVE_RADIUS and 0.0 <= height <= ABOVE_HEIGHT:
        return "above"
    return "free"


class RecordingPredictor:
    """A keypoint predictor that keeps every view batch it is asked about.

    Wraps a :class:`~s3k_envs.keypoints.predictor.KeypointPredictor`; ``predict`` stores
    ``(images, intrinsics, extrinsics)`` (``(C, H, W, 3)`` uint8, ``(C, 3, 3)`` px,
    ``(C, 4, 4)``) in :attr:`frames` and then answers as the wrapped predictor does; every
    other attribute is the wrapped predictor's (so ``KeypointObservation`` checks it as usual).
    """

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def predict(self, images: Any, intrinsics: Any, extrinsics: Any, **kwargs: Any) -> Any:
        """Record the views, then :meth:`KeypointPredictor.predict` on them."""
        self.frames.append((np.array(images), np.array(intrinsics), np.array(extrinsics)))
        return self.predictor.predict(images, intrinsics, extrinsics, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on self; "predictor" is missing while copy/pickle
        # build a new instance, and forwarding it would recurse.
        if name == "predictor" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.predictor, name)


def collect(env_id: str, agent_path: Path, predictor: Any, episodes: int, seed: int
            ) -> tuple[dict[str, np.ndarray], list[str], dict[str, float]]:
    """Run the agent and record every post-step frame.

    Args:
        env_id: ``S3K-CableInsert-v0`` or ``S3K-CableInsertShort-v0``.
        agent_path: a ``kp``-arm RLPD agent file of ``benchmarks.cable_rl``.
        predictor: the keypoint model the agent observes through.
        episodes: episodes, reset seeds ``seed + i``.
        seed: first reset seed.

    Returns:
        ``(frames, ends, rule)``: per-frame arrays (N frames) ``episode``, ``step``, ``true``
        ``(N, 3, 3)`` m, ``tip`` ``(N, 3)`` m (physical), ``error_m`` (true insertion error),
        ``success`` (true rule), ``phase`` (index into :data:`PHASES`), ``fired`` (the
        observing env's keypoint rule), ``images`` ``(N, C, H, W, 3)``, ``intrinsics``,
        ``extrinsics``; one of :data:`ENDS` per episode; the rule's ``success_threshold``
        (m) and ``min_confidence``.
    """
    from agents.rlpd import RLPD
    from benchmarks.cable_rl.cli import parse_args
    from benchmarks.cable_rl.envs import make_arm_env
    from benchmarks.cable_rl.rlpd_training import RLPDFeatureObservation
    from s3k_envs.envs.cable import insertion_error

    cfg = parse_args(["--full", "--env-id", env_id, "--no-progress"])
    recorder = RecordingPredictor(predictor)
    arm = make_arm_env("kp", cfg.camera_seed, recorder, None, env_id)
    env = RLPDFeatureObservation(arm.env, "kp", arm.keypoints.keypoint_names)
    agent = RLPD.load(agent_path)
    rule = {"success_threshold": float(arm.reward.success_threshold),
            "min_confidence": float(arm.reward.min_confidence)}
    rec: dict[str, list[Any]] = {k: [] for k in ("episode", "step", "true", "tip", "error_m",
                                                 "success", "phase", "fired")}
    views: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ends: list[str] = []
    try:
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            for step in range(1, 10_000):
                obs, _, terminated, truncated, info = env.step(
                    agent.act(obs, deterministic=True))
                kp = np.asarray(info["keypoints"], dtype=np.float64)
                tip = np.asarray(info["plug_tip_true"], dtype=np.float64)
                rec["episode"].append(ep)
                rec["step"].append(step)
                rec["true"].append(kp)
                rec["tip"].append(tip)
                rec["error_m"].append(insertion_error(kp))
                rec["success"].append(bool(info["is_success_true"]))
                rec["phase"].append(PHASES.index(phase_of(kp, tip)))
                rec["fired"].append(bool(info["is_success"]))
                views.append(recorder.frames[-1])
                if terminated or truncated:
                    break
            if info["is_success_true"]:
                end = "true_success"
            elif info["is_success"]:
                end = "keypoint_only"
            elif info.get("left_safety_box"):
                end = "left_safety_box"
            elif truncated:
                end = "time_limit"
            else:
                end = "other"
            ends.append(end)
            print(f"  episode {ep + 1}/{episodes}: {step} steps, {end}", file=sys.stderr,
                  flush=True)
    finally:
        env.close()
    frames = {k: np.asarray(v) for k, v in rec.items()}
    for i, key in enumerate(("images", "intrinsics", "extrinsics")):
        frames[key] = np.stack([v[i] for v in views])
    return frames, ends, rule


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if not v.size:
        return {"median": None, "p10": None, "p90": None}
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90))}


def summarise(frames: Mapping[str, np.ndarray], name: str, rule: Mapping[str, float],
              band: float) -> dict[str, Any]:
    """One checkpoint's errors on the recorded frames.

    Args:
        frames: :func:`collect`'s frames with ``pred/NAME`` and ``conf/NAME``
            (:func:`~benchmarks.cable_socket_keypoints.predict_all`).
        name: the checkpoint's name.
        rule: ``success_threshold`` (m) and ``min_confidence`` of the keypoint rule.
        band: m; the near-threshold frames have ``|true error - threshold| <= band``.

    Returns:
        ``rows`` (CSV rows per phase and keypoint, mm), ``bias_near_threshold_mm``
        (quantiles of predicted - true insertion error there), ``false_fires``,
        ``misses``, ``early_episodes`` (first firing before the first true success, or
        firing in an episode without one).
    """
    threshold = rule["success_threshold"]
    pred_err = predicted_errors(frames, name)
    fires = (pred_err < threshold) & (gate_confidences(frames, name) >= rule["min_confidence"])
    bias = (pred_err - frames["error_m"]) * 1e3
    err = np.linalg.norm(frames[f"pred/{name}"] - frames["true"], axis=-1) * 1e3  # (N, 3)
    rows = []
    for phase in (*PHASES, "all"):
        mask = (np.ones(len(err), bool) if phase == "all"
                else frames["phase"] == PHASES.index(phase))
        b = _quantiles(bias[mask])
        for k, key in enumerate(KEYPOINTS):
            e = err[mask, k]
            e = e[np.isfinite(e)]
            rows.append({"checkpoint": name, "phase": phase, "keypoint": key,
                         "frames": int(mask.sum()),
                         "median_mm": float(np.median(e)) if e.size else None,
                         "p90_mm": float(np.percentile(e, 90)) if e.size else None,
                         "insertion_error_bias_median_mm": b["median"],
                         "insertion_error_bias_p10_mm": b["p10"],
                         "insertion_error_bias_p90_mm": b["p90"]})
    near = np.abs(frames["error_m"] - threshold) <= band
    early = 0
    for ep in np.unique(frames["episode"]):
        m = frames["episode"] == ep
        fired, true = np.flatnonzero(fires[m]), np.flatnonzero(frames["success"][m])
        if fired.size and (not true.size or fired[0] < true[0]):
            early += 1
    return {
        "rows": rows,
        "bias_near_threshold_mm": {**_quantiles(bias[near]), "frames": int(near.sum()),
                                   "std": float(np.std(bias[near])) if near.any() else None},
        "false_fires": int((fires & ~frames["success"]).sum()),
        "misses": int((frames["success"] & ~fires).sum()),
        "true_success_frames": int(frames["success"].sum()),
        "early_episodes": early,
    }


def plot(frames: Mapping[str, np.ndarray], names: Sequence[str], threshold: float,
         path: Path) -> Path:
    """Predicted vs true insertion error near the threshold, one panel per checkpoint."""
    plt = common.use_agg()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    true = frames["error_m"] * 100
    near = true < 8
    for ax, name in zip(axes[0], names, strict=True):
        pred = predicted_errors(frames, name) * 100
        for p, phase in enumerate(PHASES):
            m = near & (frames["phase"] == p)
            ax.scatter(true[m], pred[m], s=6, alpha=0.6, label=phase)
        ax.plot([0, 8], [0, 8], color="k", lw=0.8)
        ax.axvline(threshold * 100, color="r", lw=0.8, ls="--")
        ax.axhline(threshold * 100, color="r", lw=0.8, ls="--")
        ax.set_xlim(0, 8)
        ax.set_ylim(0, 8)
        ax.set_xlabel("true insertion error (cm)")
        ax.set_ylabel("from predicted keypoints (cm)")
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.suptitle("the agent's own frames: keypoint rule vs truth (dashed: 2.5 cm threshold)")
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cable_agent_keypoints",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="S3K-CableInsertShort-v0", choices=common.CABLE_ENV_IDS)
    p.add_argument("--agent", type=Path, required=True, help="kp-arm RLPD agent file")
    p.add_argument("--checkpoint", action="append", default=None, metavar="NAME=PATH",
                   help="keypoint checkpoint (repeatable); the first is the one the agent "
                        "observes through (default the env's shipped one)")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=500_000,
                   help="first reset seed (development seeds: not cable_rl's training or "
                        "held-out ones)")
    p.add_argument("--band", type=float, default=0.01,
                   help="m; near-threshold frames: |true error - threshold| <= band")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    from s3k_envs.checkpoints import default_checkpoint
    from s3k_envs.keypoints.predictor import KeypointPredictor

    if args.episodes < 1 or args.threads < 1 or not args.band > 0:
        p.error(f"expected --episodes >= 1, --threads >= 1 and --band > 0, got "
                f"{args.episodes}, {args.threads}, {args.band}")
    if not args.agent.is_file():
        p.error(f"--agent: expected an RLPD agent file, got {args.agent} (no such file)")
    checkpoints = parse_checkpoints(p, args.checkpoint
                                    or [f"shipped={default_checkpoint(args.env_id)}"])
    torch.set_num_threads(args.threads)
    predictors = {n: KeypointPredictor.load(path) for n, path in checkpoints.items()}
    names = list(checkpoints)
    t0 = time.perf_counter()
    frames, ends, rule = collect(args.env_id, args.agent, predictors[names[0]], args.episodes,
                                 args.seed)
    predict_all(frames, predictors)
    results = {n: summarise(frames, n, rule, args.band) for n in names}
    # The observing checkpoint's rule, recomputed on the stored frames, must be the env's own.
    recomputed = (predicted_errors(frames, names[0]) < rule["success_threshold"]) & (
        gate_confidences(frames, names[0]) >= rule["min_confidence"])
    if not np.array_equal(recomputed, frames["fired"]):
        raise RuntimeError("the recomputed keypoint rule disagrees with the env's on "
                           f"{int((recomputed != frames['fired']).sum())} frames")
    elapsed = time.perf_counter() - t0
    rows = [row for n in names for row in results[n]["rows"]]
    stem = f"cable_agent_keypoints{args.tag}"
    doc = {
        "benchmark": "cable_agent_keypoints", "env_id": args.env_id,
        "agent": common.repo_relative(str(args.agent)),
        "checkpoints": {n: {"path": common.repo_relative(str(path)),
                            "sha256": sha256_file(path)}
                        for n, path in checkpoints.items()},
        "observed_through": names[0], "rule": rule, "frames": len(frames["step"]),
        "episode_ends": {e: ends.count(e) for e in ENDS},
        "phase_frames": {ph: int((frames["phase"] == i).sum()) for i, ph in enumerate(PHASES)},
        "results": {n: {k: v for k, v in r.items() if k != "rows"} for n, r in results.items()},
        "elapsed_s": elapsed,
        "settings": common.repo_relative({k: (str(v) if isinstance(v, Path) else v)
                                          for k, v in vars(args).items()}),
        "machine": common.machine_info(),
    }
    out = [common.write_csv(args.out / f"{stem}.csv", rows, CSV_COLUMNS),
           common.write_json(args.out / f"{stem}.json", doc),
           plot(frames, names, rule["success_threshold"], args.out / f"{stem}.png")]
    print(common.markdown_table(
        [r for r in rows if r["keypoint"] == "plug_tip"],
        [("checkpoint", "checkpoint", "s"), ("phase", "phase", "s"), ("frames", "frames", "d"),
         ("median_mm", "plug_tip median mm", ".1f"),
         ("insertion_error_bias_median_mm", "pred - true error, median mm", ".1f"),
         ("insertion_error_bias_p10_mm", "p10", ".1f"),
         ("insertion_error_bias_p90_mm", "p90", ".1f")]))
    print(f"episode ends (observed through {names[0]}): {doc['episode_ends']}")
    for n in names:
        r = doc["results"][n]
        print(f"{n}: near threshold {r['bias_near_threshold_mm']}; false fires "
              f"{r['false_fires']}, misses {r['misses']} of {r['true_success_frames']}, "
              f"early episodes {r['early_episodes']}")
    print("Wrote " + ", ".join(str(x) for x in out), file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
