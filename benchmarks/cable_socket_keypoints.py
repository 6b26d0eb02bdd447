"""Cable keypoints inside the socket: predicted vs true keypoints, when the keypoint success
rule fires, and its false positives (issue 15, step 4).

The same frames are fed to every ``--checkpoint`` (``NAME=PATH``, default the shipped
``S3K-CableInsert-v0`` model), so checkpoints are compared on identical scenes. Every
episode uses ``S3K-CableInsert-v0`` made with ``terminate_on_success=False``, a random camera
rig per reset (the default) and seeds ``--seed + i`` (held out: the shipped checkpoints were
trained on seeds 101/102 and tested on 103/7103 and 40,000+):

* ``expert``: ``--episodes`` scripted-expert episodes (no action noise), each continued
  ``--extra-steps`` control steps past the first true success (the env's rule on true
  keypoints), or until the 40-step time limit;
* ``noisy``: ``--noisy-episodes`` expert episodes with Gaussian action noise
  ``--noise`` (the plug goes to varied places: beside the socket, on the rim, swinging);
* ``random``: ``--random-episodes`` episodes of uniformly random actions;
* ``reach``: ``--reach-episodes`` episodes in which the gripper servos (with the action noise
  ``--reach-noise``) to a new random point of the safety box (up to 2 cm above its top) every
  10 steps, so it visits the box's far corners and top, where the hanging plug can leave
  the cameras' views (the states of an agent that wanders).

Noisy, random and reach episodes run to the time limit or until the gripper leaves the
safety box; that last frame is recorded too (a keypoint reward judges it: the false
"inserted" frames of the ``cable_rl`` runs were such frames, with the plug 43-57 cm away).

Measured per checkpoint:

* keypoint error (mm, ``|predicted - true|``) per keypoint and phase on the expert frames;
  phase ``inside``: the tip is in the socket (its true keypoint is snapped to the opening),
  ``above``: not inside and the true tip within 2 cm of the socket axis and 0-5 cm above the
  opening, ``free``: the rest;
* the lag of the keypoint rule (:func:`s3k_envs.envs.cable.insertion_success` on the
  predicted keypoints, 2.5 cm): first step it fires minus the first true success step, per
  expert episode (negative: it fired before the plug was in);
* false positives: frames of the noisy, random and reach episodes where the rule fires on the
  predictions while the true insertion error is above ``--fp-error`` (5 cm), and the
  episodes with at least one;
* all of the above with the confidence gate of
  :class:`s3k_envs.wrappers.rewards.KeypointReward` (``min_confidence``: the fused
  confidence of ``plug_tip`` and ``plug_base`` must be at least the threshold) for every
  threshold in ``--gates``.

Outputs (atomically) in ``--out`` (default ``benchmarks/results/``):
``cable_socket_keypoints{--tag}.csv`` (one row per checkpoint, phase and keypoint),
``.json`` (everything, per-episode lags, settings, machine info, command) and ``.png``.
``--cache DIR`` keeps the recorded frames (images included, one npz per episode kind) for
later runs with other checkpoints.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_socket_keypoints [--episodes 20] \\
        [--env-id S3K-CableInsertShort-v0] \\
        [--checkpoint shipped=assets/checkpoints/S3K-CableInsert-v0.pt] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import gymnasium as gym
import numpy as np
import torch

from benchmarks import common

ENV_ID = "S3K-CableInsert-v0"
KEYPOINTS = ("plug_tip", "plug_base", "socket")
PHASES = ("inside", "above", "free")
#: ``above``: the true tip within this horizontal distance (m) of the socket axis ...
ABOVE_RADIUS = 0.02
#: ... and between 0 and this height (m) above the opening.
ABOVE_HEIGHT = 0.05
CSV_COLUMNS = ("checkpoint", "phase", "keypoint", "frames", "median_mm", "mean_mm", "p90_mm",
               "max_mm")


def phase_of(keypoints: np.ndarray) -> str:
    """Phase of a frame from its true ``(3, 3)`` keypoints (m, tip/base/socket):
    ``"inside"``, ``"above"`` or ``"free"`` (see the module docstring)."""
    tip, _, socket = np.asarray(keypoints, dtype=np.float64)
    if np.allclose(tip, socket, atol=1e-6):
        return "inside"
    horizontal = float(np.linalg.norm((tip - socket)[:2]))
    height = float(tip[2] - socket[2])
    return "above" if horizontal < ABOVE_RADIUS and 0.0 <= height <= ABOVE_HEIGHT else "free"


def collect(kind: str, episodes: int, seed: int, extra_steps: int, noise: float,
            env_id: str = ENV_ID) -> dict[str, np.ndarray]:
    """Run the episodes of one kind and record every frame (predictions come later,
    :func:`predict_all`).

    Args:
        kind: ``"expert"``, ``"noisy"``, ``"random"`` or ``"reach"``.
        episodes: number of episodes (seeds ``seed + i``).
        seed: first reset seed; also seeds the action noise.
        extra_steps: ``expert``: control steps run after the first true success.
        noise: ``noisy``, ``reach``: std of the Gaussian noise on the actions.
        env_id: the cable task (``S3K-CableInsert-v0`` or ``S3K-CableInsertShort-v0``).

    Returns:
        Per-frame arrays (N frames, reset frames included): ``episode``, ``step``,
        ``since_success`` (step minus the episode's first true success step; -10,000 in
        episodes without one), ``true`` ``(N, 3, 3)`` m, ``error_m`` (true
        insertion error), ``success`` (true rule), ``phase`` (index into :data:`PHASES`),
        and the observation: ``images`` ``(N, C, H, W, 3)`` uint8, ``intrinsics``
        ``(N, C, 3, 3)``, ``extrinsics`` ``(N, C, 4, 4)``.
    """
    from s3k_envs.envs.cable import insertion_error
    from s3k_envs.experts import make_expert

    env = gym.make(env_id, terminate_on_success=False)
    if list(env.unwrapped.keypoint_names) != list(KEYPOINTS):
        raise RuntimeError(f"{env_id}: expected keypoints {KEYPOINTS}, got "
                           f"{env.unwrapped.keypoint_names}")
    expert = make_expert(env)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    options = env.unwrapped.options
    (box_x, box_y), (box_zmin, box_zmax) = options["safety_box"]
    max_lin, hz = float(options["max_linear_speed"]), float(options["control_hz"])
    rec: dict[str, list[Any]] = {k: [] for k in ("episode", "step", "since_success", "true",
                                                 "error_m", "success", "phase")}
    for key in ("images", "intrinsics", "extrinsics"):
        rec[key] = []
    never = -10_000

    def record(ep: int, step: int, first_success: int | None, obs: Mapping[str, Any],
               info: Mapping[str, Any]) -> None:
        kp = np.asarray(info["keypoints"], dtype=np.float64)
        rec["episode"].append(ep)
        rec["step"].append(step)
        rec["since_success"].append(never if first_success is None else step - first_success)
        rec["true"].append(kp)
        rec["error_m"].append(insertion_error(kp))
        rec["success"].append(bool(info["is_success"]))
        rec["phase"].append(PHASES.index(phase_of(kp)))
        for key in ("images", "intrinsics", "extrinsics"):
            rec[key].append(np.asarray(obs[key]))

    try:
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            expert.reset()
            step, first_success, last = 0, None, False
            goal = np.zeros(3)
            start = len(rec["step"])
            while True:
                if first_success is None and info["is_success"]:
                    first_success = step
                record(ep, step, first_success, obs, info)
                if last or (kind == "expert" and first_success is not None
                            and step - first_success >= extra_steps):
                    break
                if kind == "random":
                    action = rng.uniform(low, high)
                elif kind == "reach":
                    if step % 10 == 0:  # a new point of the safety box (1 cm inside it)
                        socket = np.asarray(info["keypoints"][2], dtype=np.float64)
                        goal = np.array([socket[0] + rng.uniform(-box_x, box_x) * 0.93,
                                         socket[1] + rng.uniform(-box_y, box_y) * 0.93,
                                         rng.uniform(box_zmin + 0.01, box_zmax + 0.02)])
                    action = np.zeros(low.shape)
                    vel = 0.8 * hz * (goal - np.asarray(obs["gripper_pos"], np.float64))
                    action[:3] = vel / max_lin
                    action = action + noise * rng.standard_normal(action.shape)
                else:
                    action = np.asarray(expert(obs, info), dtype=np.float64)
                    if kind == "noisy":
                        action = action + noise * rng.standard_normal(action.shape)
                obs, _, terminated, truncated, info = env.step(
                    np.clip(action, low, high).astype(np.float32))
                step += 1
                if info["sim_unstable"]:
                    break
                # The frame on which the gripper has left the safety box ends the episode, but
                # a keypoint reward still judges it (and the plug may be out of view there).
                last = terminated or truncated
            if first_success is not None:  # steps before the success count negative
                rec["since_success"][start:] = [s - first_success for s in rec["step"][start:]]
            print(f"  {kind} {ep + 1}/{episodes}: {step} steps, true success at "
                  f"{first_success}", file=sys.stderr, flush=True)
    finally:
        env.close()
    return {k: np.asarray(v) for k, v in rec.items()}


def predict_all(frames: dict[str, np.ndarray], predictors: Mapping[str, Any],
                batch: int = 16) -> None:
    """Add ``pred/NAME`` ``(N, 3, 3)`` m and ``conf/NAME`` ``(N, C, 3)`` to ``frames`` for
    every predictor (name -> :class:`~s3k_envs.keypoints.predictor.KeypointPredictor`),
    ``batch`` frames per forward pass."""
    n = len(frames["images"])
    for name, predictor in predictors.items():
        points, conf = [], []
        for i in range(0, n, batch):
            sl = slice(i, i + batch)
            pred = predictor.predict(frames["images"][sl], frames["intrinsics"][sl],
                                     frames["extrinsics"][sl])
            points.append(np.asarray(pred.points_3d, dtype=np.float64))
            conf.append(np.asarray(pred.confidence, dtype=np.float64))
        frames[f"pred/{name}"] = np.concatenate(points)
        frames[f"conf/{name}"] = np.concatenate(conf)


def predicted_errors(frames: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """``(N,)`` insertion error (m) of every frame on checkpoint ``name``'s predictions."""
    from s3k_envs.envs.cable import PLUG_EXPOSED

    pred = frames[f"pred/{name}"]
    tip, base, socket = pred[:, 0], pred[:, 1], pred[:, 2]
    up = np.array([0.0, 0.0, PLUG_EXPOSED])
    err = np.linalg.norm(tip - socket, axis=-1) + np.linalg.norm(base - (socket + up), axis=-1)
    return np.where(np.isfinite(err), err, np.inf)


def gate_confidences(frames: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """``(N,)`` the gate's confidence of every frame: the smallest fused confidence of
    ``plug_tip`` and ``plug_base`` (exactly what :class:`KeypointReward.cable_insert`
    compares with ``min_confidence``)."""
    from s3k_envs.wrappers.rewards import fused_confidence

    return fused_confidence(frames[f"conf/{name}"])[:, :2].min(axis=-1)


def error_table(frames: Mapping[str, np.ndarray], name: str) -> list[dict[str, Any]]:
    """Rows ``(phase, keypoint)`` (plus ``all`` phases) of the 3D error (mm)."""
    err = np.linalg.norm(frames[f"pred/{name}"] - frames["true"], axis=-1) * 1000.0  # (N, 3)
    rows = []
    for phase in (*PHASES, "all"):
        mask = (np.ones(len(err), bool) if phase == "all"
                else frames["phase"] == PHASES.index(phase))
        for k, key in enumerate(KEYPOINTS):
            e = err[mask, k]
            e = e[np.isfinite(e)]
            rows.append({"checkpoint": name, "phase": phase, "keypoint": key,
                         "frames": int(mask.sum()),
                         "median_mm": float(np.median(e)) if e.size else None,
                         "mean_mm": float(np.mean(e)) if e.size else None,
                         "p90_mm": float(np.percentile(e, 90)) if e.size else None,
                         "max_mm": float(np.max(e)) if e.size else None})
    return rows


def rule_fires(frames: Mapping[str, np.ndarray], name: str, gate: float,
               threshold: float) -> np.ndarray:
    """``(N,)`` whether the keypoint rule (with the gate ``gate``; 0: none) fires."""
    return (predicted_errors(frames, name) < threshold) & (
        gate_confidences(frames, name) >= gate)


def lags(frames: Mapping[str, np.ndarray], name: str, gate: float, threshold: float
         ) -> list[int | None]:
    """Per expert episode: first step the rule fires minus the first true success step
    (None: never fired in the recorded steps, or no true success)."""
    fires = rule_fires(frames, name, gate, threshold)
    out: list[int | None] = []
    for ep in np.unique(frames["episode"]):
        m = frames["episode"] == ep
        steps, since = frames["step"][m], frames["since_success"][m]
        success_steps = steps[since == 0]
        fired = steps[fires[m]]
        out.append(int(fired[0] - success_steps[0]) if fired.size and success_steps.size
                   else None)
    return out


def false_positives(frames: Mapping[str, np.ndarray], name: str, gate: float,
                    threshold: float, fp_error: float) -> dict[str, Any]:
    """Frames (and episodes) where the rule fires while the true error is above
    ``fp_error`` (m), the worst such true error (m), the frames whose gate confidence is
    below ``gate`` (success impossible there) and the true-success frames where the rule
    does not fire."""
    fires = rule_fires(frames, name, gate, threshold)
    bad = fires & (frames["error_m"] > fp_error)
    return {"frames": int(bad.sum()), "of_frames": len(bad),
            "episodes": len(np.unique(frames["episode"][bad])),
            "of_episodes": len(np.unique(frames["episode"])),
            "max_true_error_m": float(frames["error_m"][bad].max()) if bad.any() else None,
            "refused_frames": int((gate_confidences(frames, name) < gate).sum()),
            "missed_true_success_frames": int((frames["success"] & ~fires).sum()),
            "true_success_frames": int(frames["success"].sum())}


def summarise(data: Mapping[str, Mapping[str, np.ndarray]], names: Sequence[str],
              gates: Sequence[float], threshold: float, fp_error: float
              ) -> dict[str, Any]:
    """Everything per checkpoint: error rows, lags and false positives per gate, and the
    gate-confidence distributions on true-success and false-positive frames."""
    expert = data["expert"]
    other = {k: v for k, v in data.items() if k != "expert"}
    out: dict[str, Any] = {}
    for name in names:
        per_gate = []
        for gate in gates:
            lag = lags(expert, name, gate, threshold)
            valid = [x for x in lag if x is not None]
            per_gate.append({
                "min_confidence": gate,
                "lags": lag,
                "lag_median": float(np.median(valid)) if valid else None,
                "lag_max": max(valid) if valid else None,
                "fired_early": sum(x < 0 for x in valid),
                "never_fired": sum(x is None for x in lag),
                "false_positives": {kind: false_positives(f, name, gate, threshold, fp_error)
                                    for kind, f in {**other, "expert": expert}.items()},
            })
        conf_success = np.concatenate([gate_confidences(f, name)[f["success"]]
                                       for f in data.values()])
        fp_conf = np.concatenate([
            gate_confidences(f, name)[(predicted_errors(f, name) < threshold)
                                      & (f["error_m"] > fp_error)] for f in data.values()])
        out[name] = {
            "errors": error_table(expert, name),
            "gates": per_gate,
            "gate_confidence_true_success": {
                "frames": int(conf_success.size),
                "min": float(conf_success.min()) if conf_success.size else None,
                "p1": float(np.percentile(conf_success, 1)) if conf_success.size else None,
                "median": float(np.median(conf_success)) if conf_success.size else None},
            "gate_confidence_false_positives": sorted(float(c) for c in fp_conf),
        }
    return out


def plot(summary: Mapping[str, Any], frames: Mapping[str, np.ndarray], names: Sequence[str],
         path: Path, env_id: str = ENV_ID) -> Path:
    """Left: plug_tip error vs steps since the true success (expert episodes), per
    checkpoint. Right: false-positive frames vs ``min_confidence``."""
    plt = common.use_agg()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    since = frames["since_success"]
    steps = np.arange(-8, since.max() + 1)
    for name in names:
        err = np.linalg.norm(frames[f"pred/{name}"][:, 0] - frames["true"][:, 0], axis=-1) * 1e3
        med = [np.median(err[since == s]) if np.any(since == s) else np.nan for s in steps]
        ax.plot(steps, med, marker="o", label=name)
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("control steps since the true success (expert)")
    ax.set_ylabel("plug_tip error, median over episodes (mm)")
    ax.legend()
    for name in names:
        gates = summary[name]["gates"]
        fp = [sum(v["frames"] for k, v in g["false_positives"].items() if k != "expert")
              for g in gates]
        bx.plot([g["min_confidence"] for g in gates], fp, marker="o", label=name)
    bx.set_xlabel("min_confidence (gate on plug_tip, plug_base)")
    bx.set_ylabel("false-positive frames (true error > 5 cm)")
    bx.legend()
    fig.suptitle(f"{env_id}: keypoints in the socket and the keypoint success rule")
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (names the checkpoint a result was made with)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_checkpoints(parser: argparse.ArgumentParser, specs: Sequence[str]) -> dict[str, Path]:
    """``--checkpoint NAME=PATH`` values as ``{NAME: PATH}`` (in order); a malformed spec, a
    missing file or a repeated NAME is a ``parser.error``."""
    checkpoints: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file() or name in checkpoints:
            parser.error(f"--checkpoint: expected NAME=PATH of an existing file with a new "
                         f"NAME, got {spec!r}")
        checkpoints[name] = Path(path)
    return checkpoints


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write ``cable_socket_keypoints<tag>``
    ``.{csv,json,png}``; returns the JSON document."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.cable_socket_keypoints",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", choices=common.CABLE_ENV_IDS, default=ENV_ID,
                   help="cable task (default the long-cable one)")
    p.add_argument("--checkpoint", action="append", default=None, metavar="NAME=PATH",
                   help="checkpoint to evaluate (repeatable; default the shipped one)")
    p.add_argument("--episodes", type=int, default=20, help="expert episodes")
    p.add_argument("--noisy-episodes", type=int, default=20)
    p.add_argument("--random-episodes", type=int, default=20)
    p.add_argument("--reach-episodes", type=int, default=60)
    p.add_argument("--noise", type=float, default=0.5, help="action noise of noisy episodes")
    p.add_argument("--reach-noise", type=float, default=0.1,
                   help="action noise of reach episodes")
    p.add_argument("--extra-steps", type=int, default=6,
                   help="expert steps after the first true success")
    p.add_argument("--seed", type=int, default=500_000)
    p.add_argument("--gates", type=float, nargs="+",
                   default=[0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5])
    p.add_argument("--fp-error", type=float, default=0.05,
                   help="true insertion error (m) above which a firing is a false positive")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--cache", type=Path, default=None,
                   help="directory for the recorded frames (one npz per episode kind): written "
                        "after simulating, read back by a later run with the same settings of "
                        "that kind (then only the checkpoints run)")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    from s3k_envs.checkpoints import default_checkpoint
    from s3k_envs.keypoints.predictor import KeypointPredictor

    for key in ("episodes", "noisy_episodes", "random_episodes", "reach_episodes",
                "extra_steps", "threads"):
        if getattr(args, key) < (1 if key in ("episodes", "threads") else 0):
            p.error(f"--{key.replace('_', '-')}: expected a non-negative count, got "
                    f"{getattr(args, key)}")
    checkpoints = parse_checkpoints(p, args.checkpoint
                                    or [f"shipped={default_checkpoint(args.env_id)}"])
    torch.set_num_threads(args.threads)
    predictors = {n: KeypointPredictor.load(path) for n, path in checkpoints.items()}
    probe_env = gym.make(args.env_id)
    threshold = float(probe_env.unwrapped.options["success_threshold"])
    probe_env.close()
    t0 = time.perf_counter()
    plan = {"expert": (args.episodes, args.seed, args.extra_steps, 0.0),
            "noisy": (args.noisy_episodes, args.seed + 10_000, 0, args.noise),
            "random": (args.random_episodes, args.seed + 20_000, 0, 0.0),
            "reach": (args.reach_episodes, args.seed + 30_000, 0, args.reach_noise)}
    data: dict[str, dict[str, np.ndarray]] = {}
    for kind, (n, seed, extra, noise) in plan.items():
        key = json.dumps({"env_id": args.env_id, "kind": kind, "episodes": n, "seed": seed,
                          "extra_steps": extra, "noise": noise, "version": 1}, sort_keys=True)
        path = None if args.cache is None else args.cache / f"{kind}.npz"
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    data[kind] = {name: z[name] for name in z.files if name != "key"}
                    print(f"{kind}: frames from {path}", file=sys.stderr)
        if kind not in data:
            data[kind] = collect(kind, n, seed, extra, noise, args.env_id)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.stem + ".tmp.npz")
                np.savez(tmp, key=np.array(key), **data[kind])
                os.replace(tmp, path)
    data = {k: v for k, v in data.items() if len(v["step"])}
    for frames in data.values():
        predict_all(frames, predictors)
    elapsed = time.perf_counter() - t0
    names = list(checkpoints)
    summary = summarise(data, names, sorted(set([0.0, *args.gates])), threshold, args.fp_error)
    rows = [row for n in names for row in summary[n]["errors"]]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    stem = f"cable_socket_keypoints{args.tag}"
    doc = {
        "benchmark": "cable_socket_keypoints", "env_id": args.env_id,
        "checkpoints": {n: {"path": str(path), "sha256": sha256_file(path)}
                        for n, path in checkpoints.items()},
        "success_threshold_m": threshold, "frames": {k: len(v["step"]) for k, v in data.items()},
        "true_success_steps": [int(s) for s in
                               data["expert"]["step"][data["expert"]["since_success"] == 0]],
        "results": summary, "elapsed_s": elapsed, "settings": settings,
        "machine": common.machine_info(),
    }
    out = [common.write_csv(args.out / f"{stem}.csv", rows, CSV_COLUMNS),
           common.write_json(args.out / f"{stem}.json", doc),
           plot(summary, data["expert"], names, args.out / f"{stem}.png", args.env_id)]
    print(common.markdown_table(rows, [("checkpoint", "checkpoint", "s"), ("phase", "phase", "s"),
                                       ("keypoint", "keypoint", "s"), ("frames", "frames", "d"),
                                       ("median_mm", "median mm", ".1f"),
                                       ("p90_mm", "p90 mm", ".1f")]))
    for n in names:
        for g in summary[n]["gates"]:
            fp = {k: v["frames"] for k, v in g["false_positives"].items()}
            print(f"{n} gate {g['min_confidence']:.2f}: lags {g['lags']} false-positive frames "
                  f"{fp}")
        print(f"{n} gate confidence on true-success frames: "
              f"{summary[n]['gate_confidence_true_success']}; on false positives: "
              f"{np.round(summary[n]['gate_confidence_false_positives'], 3).tolist()}")
    print("Wrote " + ", ".join(str(x) for x in out), file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
