"""The main job (``make demo`` / ``s3k demo``): the whole S3K pipeline on one env, end to end.

1. **Generate** a small multi-view dataset (a few labelled samples, the rest unlabelled;
   states along the scripted expert's path, ``--rollout-steps``) and a labelled test set.
2. **Train** an S3K keypoint model for ``--minutes`` (progress bar; self-supervised term on
   the unlabelled frames, gated as in ``s3k train``).
3. **Evaluate** it on the held-out test set: RMS px and 3D error in mm, plus an overlay PNG.
4. **Act on keypoints**: wrap the env in :class:`~s3k_envs.wrappers.KeypointObservation`
   (pixels -> predicted 3D keypoints) and :class:`~s3k_envs.wrappers.KeypointReward`
   (reward and success from predicted keypoint distances), run the scripted expert on the
   *predicted* keypoints, and write a video of the 4 views with true keypoints (filled) and
   predicted ones (rings).
5. Print a one-screen summary (also saved as ``summary.json``).

Everything goes to ``--out`` (default ``runs/demo/<env>``); rerunning resumes (datasets and
training continue where they stopped). ``--tour`` instead runs every env's scripted expert
on ground-truth keypoints and writes one video per env (no training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import s3k_envs
from s3k_envs.atomic import atomic_write_text
from s3k_envs.experts import make_expert
from s3k_envs.viz import (
    PREDICTION_MARKER,
    TRUTH_MARKERS,
    draw_points,
    mosaic,
    with_legend,
    write_png,
    write_video,
)

#: The demo's default env: fast to render and to learn, a 1 cm reach task.
DEFAULT_ENV = "S3K-Box-v0"


def annotated_mosaic(obs: dict[str, np.ndarray], info: dict[str, Any],
                     predicted_2d: np.ndarray | None = None,
                     names: Sequence[str] | None = None) -> np.ndarray:
    """2x2 mosaic of the views with keypoints drawn, ``(H', W', 3)`` uint8.

    Args:
        obs: observation with ``images (C, H, W, 3)`` uint8.
        info: env info with ``keypoints_2d (C, K, 2)`` px and ``keypoints_visible (C, K)``;
            true keypoints are drawn filled (visible) or as rings (occluded / outside).
        predicted_2d: optional ``(C, K, 2)`` px predictions, drawn as larger rings.
        names: K keypoint names: adds a legend strip (colours and markers) below.
    """
    views = []
    for c, img in enumerate(obs["images"]):
        view = draw_points(img, info["keypoints_2d"][c], info["keypoints_visible"][c])
        if predicted_2d is not None:
            view = draw_points(view, predicted_2d[c], radius=4, hollow=True)
        views.append(view)
    figure = mosaic(np.stack(views))
    if names is None:
        return figure
    notes = TRUTH_MARKERS if predicted_2d is None else (*TRUTH_MARKERS, PREDICTION_MARKER)
    return with_legend(figure, names, notes)


# ------------------------------------------------------------------------------ tour


def run_env(
    env_id: str, seed: int, image_size: int, out_dir: Path, episodes: int = 3
) -> dict[str, object]:
    """Run the env's scripted expert (on ground-truth keypoints) for a few episodes and write
    one video of them all plus a PNG of the first frame.

    Reach tasks (Box, Shoes, ...) target each keypoint in turn; the cable task runs
    ``episodes`` insertions. Seeds are ``seed, seed + 1, ...``.

    Returns:
        A summary row: env id, episodes, successes, mean steps, env steps/s (rendering
        included) and the paths written.
    """
    probe = gym.make(env_id, image_size=16)
    targets: list[str | None] = [None] * episodes
    if "target_keypoint" in probe.unwrapped.default_options():
        targets = list(probe.unwrapped.keypoint_names)
    probe.close()
    frames: list[np.ndarray] = []
    steps, successes, step_time = [], 0, 0.0
    for i, target in enumerate(targets):
        kwargs = {} if target is None else {"target_keypoint": target}
        env = gym.make(env_id, image_size=image_size, **kwargs)
        expert = make_expert(env)
        names = env.get_wrapper_attr("keypoint_names")
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        frames.append(annotated_mosaic(obs, info, names=names))
        terminated = truncated = False
        n = 0
        while not (terminated or truncated):
            action = expert(obs, info)
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            step_time += time.perf_counter() - start
            frames.append(annotated_mosaic(obs, info, names=names))
            n += 1
        frames.extend([frames[-1]] * 3)  # hold the final pose for a moment
        env.close()
        steps.append(n)
        successes += bool(info["is_success"])
    name = env_id.replace("/", "_")
    video = write_video(frames, out_dir / f"{name}.mp4", fps=4)
    png = write_png(frames[0], out_dir / f"{name}.png")
    return {
        "env": env_id,
        "episodes": len(targets),
        "successes": successes,
        "mean_steps": float(np.mean(steps)),
        "steps_per_s": sum(steps) / step_time,
        "video": str(video),
        "png": str(png),
    }


def tour(envs: Sequence[str], seed: int, image_size: int, out: Path) -> list[dict[str, object]]:
    """:func:`run_env` on every env in ``envs``; prints a table and returns its rows."""
    rows = [run_env(env_id, seed, image_size, out) for env_id in envs]
    print(f"\n{'env':24s} {'success':>8s} {'steps':>6s} {'steps/s':>8s}  video")
    for row in rows:
        print(
            f"{row['env']:24s} {row['successes']:>4d}/{row['episodes']:<3d} "
            f"{row['mean_steps']:6.1f} {row['steps_per_s']:8.1f}  {row['video']}"
        )
    return rows


# ------------------------------------------------------------------------------ pipeline


def reward_wrapper(env: gym.Env) -> gym.Env:
    """The keypoint reward of the env's task: the cable insertion rule for CableInsert,
    otherwise the distance from the gripper to the target keypoint (1 cm success)."""
    from s3k_envs.wrappers.rewards import KeypointReward, KeypointTerm, cable_insert_reward

    names = tuple(env.get_wrapper_attr("keypoint_names"))
    if {"plug_tip", "plug_base", "socket"} <= set(names):
        return cable_insert_reward(env)
    base = env.unwrapped
    target = getattr(base, "options", {}).get("target_keypoint", names[0])
    return KeypointReward(env, [KeypointTerm(a=target, obs_key="gripper_pos")],
                          success_threshold=float(base.options.get("success_distance", 0.01)))


def act_on_keypoints(env_id: str, checkpoint: Path, episodes: int, seed: int,
                     image_size: int, out: Path) -> dict[str, Any]:
    """Run the scripted expert on *predicted* keypoints through the keypoint wrappers.

    Returns:
        ``episodes``, ``success_true`` (the env's ground-truth rule), ``success_keypoints``
        (the :class:`KeypointReward` rule on predictions), ``mean_steps``, the per-step 3D
        keypoint error during the episodes (``error_mm_median`` / ``_p90``), the wrapped
        env's ``steps_per_s`` and the ``video`` path.
    """
    from s3k_envs.wrappers.keypoints import KeypointObservation

    frames: list[np.ndarray] = []
    errors: list[np.ndarray] = []
    steps, ok_true, ok_kp, step_time = [], 0, 0, 0.0
    for i in range(episodes):
        env = gym.make(env_id, image_size=image_size)
        env = reward_wrapper(KeypointObservation(env, checkpoint, keep_images=True))
        expert = make_expert(env)
        names = env.get_wrapper_attr("keypoint_names")
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        frames.append(annotated_mosaic(obs, info, info["predicted_keypoints_2d"], names))
        terminated = truncated = False
        n = 0
        while not (terminated or truncated):
            # The expert sees the model's keypoints instead of the privileged ones.
            action = expert(obs, {**info, "keypoints": obs["keypoints"]})
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            step_time += time.perf_counter() - start
            errors.append(np.linalg.norm(info["predicted_keypoints"] - info["keypoints"], axis=-1))
            frames.append(annotated_mosaic(obs, info, info["predicted_keypoints_2d"], names))
            n += 1
        frames.extend([frames[-1]] * 3)
        env.close()
        steps.append(n)
        ok_true += bool(info.get("is_success_true", info["is_success"]))
        ok_kp += bool(info["is_success"])
    err = np.concatenate(errors) * 1000.0
    video = write_video(frames, out / "keypoint_policy.mp4", fps=4)
    return {
        "episodes": episodes, "success_true": ok_true, "success_keypoints": ok_kp,
        "mean_steps": float(np.mean(steps)),
        "error_mm_median": float(np.median(err)), "error_mm_p90": float(np.percentile(err, 90)),
        "steps_per_s": sum(steps) / max(step_time, 1e-9), "video": str(video),
        "first_frame": str(write_png(frames[0], out / "keypoint_policy.png")),
    }


def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """Generate -> train -> evaluate -> act (see the module docstring); returns the summary."""
    import torch

    from s3k_envs.keypoints import evaluate as evaluate_mod
    from s3k_envs.keypoints.data import generate_dataset
    from s3k_envs.keypoints.dataset import load_arrays, read_manifest
    from s3k_envs.keypoints.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    out: Path = args.out or Path("runs/demo") / args.env
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"env": args.env, "out": str(out)}
    t0 = time.perf_counter()

    print(f"[1/4] datasets for {args.env}: {args.samples} samples ({args.labelled} labelled) "
          f"+ {args.test_samples} labelled test samples", flush=True)
    common = dict(image_size=args.image_size, rollout_steps=args.rollout_steps,
                  rollout_noise=args.rollout_noise, workers=args.workers)
    train_dir = generate_dataset(out / "data_train", args.env, args.samples, args.labelled,
                                 seed=args.seed, **common)
    test_dir = generate_dataset(out / "data_test", args.env, args.test_samples,
                                args.test_samples, seed=args.seed + 1000, **common)
    summary["data_s"] = time.perf_counter() - t0

    print(f"[2/4] training for {args.minutes:g} min ({args.threads} threads)", flush=True)
    t1 = time.perf_counter()
    names = list(read_manifest(train_dir)["keypoint_names"])
    cfg = TrainConfig(minutes=args.minutes, steps=10**9, alpha=args.alpha, seed=args.seed,
                      threads=args.threads, val_every=10**9)
    trained = train(cfg, load_arrays(train_dir), out / "model", keypoint_names=names,
                    env_id=args.env, sources={"labelled": str(train_dir)})
    summary["train"] = {"steps": trained["steps"], "minutes": trained["elapsed_s"] / 60,
                        "self_supervised_on_at": trained["unsup_on_at_progress"],
                        "labelled": trained["num_labelled"],
                        "unlabelled": trained["num_unlabelled"]}
    summary["train_s"] = time.perf_counter() - t1
    checkpoint = out / "model" / "model.pt"

    print("[3/4] evaluating on the held-out test set", flush=True)
    t2 = time.perf_counter()
    metrics = evaluate_mod.main([str(checkpoint), str(test_dir), "--out", str(out / "eval"),
                                 "--threads", str(args.threads)])
    summary["test"] = {"rms_px": metrics["rms_px"], "median_mm": metrics["mm"]["median"],
                       "p90_mm": metrics["mm"]["p90"], "samples": metrics["num_samples"],
                       "overlays": str(out / "eval" / "overlays.png")}
    summary["eval_s"] = time.perf_counter() - t2

    print(f"[4/4] scripted expert on predicted keypoints, {args.episodes} episodes", flush=True)
    t3 = time.perf_counter()
    summary["policy"] = act_on_keypoints(args.env, checkpoint, args.episodes, args.seed + 2000,
                                         args.image_size, out)
    summary["policy_s"] = time.perf_counter() - t3
    summary["total_s"] = time.perf_counter() - t0
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    return summary


def print_summary(s: dict[str, Any]) -> None:
    """The one-screen summary of :func:`pipeline`."""
    tr, te, po = s["train"], s["test"], s["policy"]
    lines = [
        "",
        f"S3K demo on {s['env']}  ({s['total_s'] / 60:.1f} min in all)",
        f"  data      {s['data_s']:6.0f} s   {tr['labelled']} labelled + {tr['unlabelled']} "
        "unlabelled training samples, 4 views each",
        f"  training  {s['train_s']:6.0f} s   {tr['steps']} steps; self-supervised term "
        + ("off (gate not reached)" if tr["self_supervised_on_at"] is None
           else f"on from {100 * tr['self_supervised_on_at']:.0f} % of the run"),
        f"  test      {s['eval_s']:6.0f} s   {te['samples']} held-out samples: 3D error median "
        f"{te['median_mm']:.1f} mm, p90 {te['p90_mm']:.1f} mm; RMS {te['rms_px']:.2f} px",
        f"  policy    {s['policy_s']:6.0f} s   expert on predicted keypoints: "
        f"{po['success_true']}/{po['episodes']} true successes, "
        f"{po['success_keypoints']}/{po['episodes']} by the keypoint rule; keypoint error "
        f"during the episodes median {po['error_mm_median']:.1f} mm, p90 "
        f"{po['error_mm_p90']:.1f} mm; {po['steps_per_s']:.0f} wrapped steps/s",
        f"  files     {po['video']}  {te['overlays']}  {s['out']}/summary.json",
    ]
    print("\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``s3k demo``."""
    p = argparse.ArgumentParser(prog="s3k demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", default=DEFAULT_ENV, help="env id of the pipeline")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (None: runs/demo/<env>, --tour: runs/demo)")
    p.add_argument("--samples", type=int, default=1000, help="training samples")
    p.add_argument("--labelled", type=int, default=30, help="of which labelled")
    p.add_argument("--test-samples", type=int, default=100,
                   help="held-out labelled samples for the evaluation")
    p.add_argument("--rollout-steps", type=int, default=10,
                   help="expert steps (0..T at random) before each sample is recorded")
    p.add_argument("--rollout-noise", type=float, default=0.3,
                   help="std of Gaussian noise added to the expert's actions in those steps")
    p.add_argument("--minutes", type=float, default=5.0, help="training time (wall clock)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the self-supervised term")
    p.add_argument("--episodes", type=int, default=3,
                   help="episodes of the expert driven by predicted keypoints")
    p.add_argument("--image-size", type=int, default=128, help="pixels per view side")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch CPU threads for training and inference")
    p.add_argument("--workers", type=int, default=None, help="dataset generation processes")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the training data and training; the test data use seed + 1000, "
                        "the policy episodes seed + 2000")
    p.add_argument("--tour", action="store_true",
                   help="instead: every env's scripted expert on true keypoints, one video each")
    p.add_argument("--envs", nargs="*", default=list(s3k_envs.ENV_SPECS),
                   help="envs of --tour")
    return p


def main(argv: list[str] | None = None) -> Any:
    """Command-line entry: ``python -m s3k_envs.demo [--env ID] [--minutes M] ...``."""
    args = build_parser().parse_args(argv)
    if args.tour:
        return tour(args.envs, args.seed, args.image_size, args.out or Path("runs/demo"))
    return pipeline(args)


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
