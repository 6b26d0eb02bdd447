"""``s3k descriptors``: data, training, reference selection and evaluation of the dense
descriptor keypoints ("Keypoints into the Future").

    s3k descriptors generate --env S3K-BoxPush-v0 --scenes 300 --seed 0 --out runs/desc/train.npz
    s3k descriptors generate --env S3K-ShoePush-v0 --env-option instances=test ...
    s3k descriptors train --scenes runs/desc/train.npz --out runs/desc/model.pt --cpu-seconds 300
    s3k descriptors select runs/desc/model.pt --scenes runs/desc/select.npz --keypoints 5
    s3k descriptors select CKPT --scenes ... --spread farthest --out runs/desc/spread.pt
    s3k descriptors evaluate runs/desc/model.pt --scenes runs/desc/test.npz [--s3k CKPT]

``train`` resumes an existing ``--out`` checkpoint (``--fresh`` starts over). ``evaluate``
prints the matching error (px) on held-out view pairs and, when the checkpoint has
references, the 3D error (mm) of the descriptor keypoints against the physical points they
track; with ``--s3k`` also the 3D error of an S3K checkpoint's keypoints against the env's
true keypoints (e.g. the box corners) on the same scenes.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from s3k_envs.atomic import atomic_write_text


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(int(n))


def _cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from s3k_envs.descriptors.scenes import generate_scenes

    options: dict[str, Any] = {}
    for item in args.env_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-option: expected KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a plain string, e.g. instances=test
    if args.camera_seed is not None:
        options["camera_seed"] = args.camera_seed
    scenes = generate_scenes(args.env, args.scenes, args.seed, args.image_size,
                             args.random_steps, **options)
    path = scenes.save(args.out)
    print(f"{path}: {len(scenes)} scenes x {scenes.num_cameras} cameras at "
          f"{scenes.image_size[0]}x{scenes.image_size[1]} px; object pixels "
          f"{scenes.masks.mean() * 100:.1f} %")
    return {"path": str(path), "scenes": len(scenes)}


def _cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from s3k_envs.descriptors.scenes import SceneSet
    from s3k_envs.descriptors.train import TrainConfig, train

    _threads(args.threads)
    scenes = SceneSet.load(args.scenes)
    config = TrainConfig(descriptor_dim=args.descriptor_dim, budget_s=args.cpu_seconds,
                         max_steps=args.steps, lr=args.lr, seed=args.seed,
                         pairs_per_step=args.pairs, matches_per_pair=args.matches,
                         checkpoint_every=args.checkpoint_every)
    result = train(scenes, config, args.out, resume=not args.fresh)
    print(f"{result['checkpoint']}: {result['steps']} steps, {result['cpu_s']:.0f} CPU s")
    return {k: v for k, v in result.items() if k in ("steps", "cpu_s", "checkpoint")}


def _cmd_select(args: argparse.Namespace) -> dict[str, Any]:
    from s3k_envs.descriptors.keypoints import attach_references, select_references
    from s3k_envs.descriptors.model import load_checkpoint
    from s3k_envs.descriptors.scenes import SceneSet

    _threads(args.threads)
    payload = load_checkpoint(args.checkpoint)
    scenes = SceneSet.load(args.scenes)
    refs = select_references(payload["model"], scenes, payload["config"], args.keypoints,
                             args.candidates, args.min_separation, args.scoring_scenes,
                             args.seed, spread=args.spread,
                             confident_fraction=args.confident_fraction)
    written = attach_references(args.checkpoint, refs, out=args.out)
    spread_mm = xy_spread_mm(refs)
    print(f"{written}: {len(refs.names)} reference descriptors, scores "
          f"{[round(float(x), 3) for x in refs.scores]}"
          + ("" if spread_mm is None else f", {spread_mm:.1f} mm from their centroid in the "
             "object's xy (mean)"))
    return {"scores": refs.scores.tolist(), "checkpoint": str(written),
            "xy_spread_mm": spread_mm}


def xy_spread_mm(references: Any) -> float | None:
    """Mean distance (mm) of the references' object points from their centroid in the
    object's xy plane — how far a yaw error moves the keypoints, per radian; None when the
    references carry no object points."""
    if references.object_points is None:
        return None
    xy = np.asarray(references.object_points, dtype=np.float64)[:, :2]
    return 1000.0 * float(np.linalg.norm(xy - xy.mean(0), axis=-1).mean())


def s3k_keypoint_errors(checkpoint: str | Path, scenes: Any) -> np.ndarray:
    """3D errors (m, ``(S, K)``) of an S3K checkpoint's keypoints on scenes that carry the
    env's true keypoints (``scenes.keypoints``, same names as the checkpoint's)."""
    from s3k_envs.keypoints.predictor import KeypointPredictor

    if scenes.keypoints is None:
        raise ValueError("these scenes carry no true keypoints (generated before they were "
                         "stored?); regenerate them with `s3k descriptors generate`")
    predictor = KeypointPredictor.load(checkpoint)
    names = scenes.meta.get("keypoint_names")
    if names is not None and list(predictor.keypoint_names) != list(names):
        raise ValueError(f"{checkpoint}: keypoints {predictor.keypoint_names}, but the scenes' "
                         f"env has {names}")
    pred = predictor.predict(scenes.images, scenes.intrinsics, scenes.extrinsics)
    return np.linalg.norm(pred.points_3d - scenes.keypoints, axis=-1)


def write_figure(predictor: Any, scenes: Any, path: str | Path, num_scenes: int = 2) -> Path:
    """PNG of the first ``num_scenes`` scenes (one row of C views each): the descriptor
    keypoints' per-view 2D estimates as rings, the reprojection of the tracked physical
    points (:func:`~s3k_envs.descriptors.keypoints.tracked_points`) as dots."""
    from s3k_envs.descriptors.keypoints import tracked_points
    from s3k_envs.geometry import project
    from s3k_envs.viz import draw_points, mosaic, write_png

    sub = scenes.subset(slice(0, num_scenes))
    pred = predictor.predict(sub.images, sub.intrinsics, sub.extrinsics)
    truth = tracked_points(predictor.references, sub)  # (S, K, 3)
    views = []
    for s in range(len(sub)):
        uv_true, _ = project(truth[s], sub.intrinsics[s].astype(np.float64),
                             sub.extrinsics[s].astype(np.float64))
        for c in range(sub.num_cameras):
            view = draw_points(sub.images[s, c], uv_true[c], radius=2)
            views.append(draw_points(view, pred.keypoints_2d[s, c], radius=4, hollow=True))
    return write_png(mosaic(np.stack(views), cols=sub.num_cameras), path)


def _summary(err: np.ndarray) -> dict[str, Any]:
    return {"median_mm": float(np.median(err) * 1000),
            "mean_mm": float(np.mean(err) * 1000),
            "p90_mm": float(np.percentile(err, 90) * 1000),
            "per_keypoint_median_mm": (np.median(err, axis=0) * 1000).round(2).tolist()}


def _cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from s3k_envs.descriptors.keypoints import DescriptorPredictor, keypoint_errors
    from s3k_envs.descriptors.model import load_checkpoint
    from s3k_envs.descriptors.scenes import SceneSet
    from s3k_envs.descriptors.train import matching_error

    _threads(args.threads)
    payload = load_checkpoint(args.checkpoint)
    scenes = SceneSet.load(args.scenes)
    config = payload["config"]
    state = payload.get("train_state") or {}
    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint), "scenes": str(args.scenes),
        "num_scenes": len(scenes), "train_steps": state.get("step"),
        "train_cpu_s": state.get("cpu_s"), "descriptor_dim": config["descriptor_dim"],
        "image_size": config["image_size"],
        "matching": matching_error(payload["model"], scenes, num_pairs=args.pairs,
                                   kernel_width=float(config["kernel_width"])),
    }
    print(f"matching on {args.pairs} held-out view pairs: {result['matching']}")
    if payload.get("references"):
        predictor = DescriptorPredictor.load(args.checkpoint)
        refs = predictor.references
        result["references"] = {
            "scores": [round(float(x), 4) for x in refs.scores],
            "xy_spread_mm": xy_spread_mm(refs),
            "object_points_mm": None if refs.object_points is None
            else (1000.0 * refs.object_points).round(1).tolist()}
        err = keypoint_errors(predictor, scenes)
        result["descriptor_keypoints"] = _summary(err)
        print(f"descriptor keypoints (K={err.shape[1]}, no labels) 3D error vs tracked points: "
              f"{result['descriptor_keypoints']}")
        if args.figure:
            print(write_figure(predictor, scenes, args.figure, args.figure_scenes))
    if args.s3k:
        err = s3k_keypoint_errors(args.s3k, scenes)
        result["s3k_keypoints"] = {"checkpoint": str(args.s3k), **_summary(err)}
        print(f"S3K keypoints ({args.s3k}) 3D error vs the env's true keypoints: "
              f"{result['s3k_keypoints']}")
    result["command"] = "s3k descriptors " + " ".join(
        sys.argv[1:] if args.argv is None else args.argv)
    result["machine"] = {"python": platform.python_version(), "processor": platform.machine()}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(args.out)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The ``s3k descriptors`` argument parser."""
    p = argparse.ArgumentParser(prog="s3k descriptors", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    g = sub.add_parser("generate", help="render scenes with depth + object masks",
                       formatter_class=fmt)
    g.add_argument("--env", default="S3K-BoxPush-v0", help="env id that renders depth")
    g.add_argument("--scenes", type=int, default=300, help="number of scenes")
    g.add_argument("--seed", type=int, default=0, help="reset seed of the first scene")
    g.add_argument("--image-size", type=int, default=128, help="pixels per view side")
    g.add_argument("--random-steps", type=int, default=2, help="random actions per scene")
    g.add_argument("--camera-seed", type=int, default=None,
                   help="fix the camera rig (default: a new rig every scene)")
    g.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE",
                   help="env option (repeatable), VALUE as JSON or a plain string, e.g. "
                   "instances=test")
    g.add_argument("--out", type=Path, required=True, help=".npz file to write")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("train", help="train a descriptor network (resumable)",
                       formatter_class=fmt)
    t.add_argument("--scenes", type=Path, required=True, help="scenes from `generate`")
    t.add_argument("--out", type=Path, required=True, help="checkpoint to write / resume")
    t.add_argument("--cpu-seconds", type=float, default=300.0,
                   help="CPU-time budget over all runs of this checkpoint")
    t.add_argument("--steps", type=int, default=100_000, help="step limit")
    t.add_argument("--descriptor-dim", type=int, default=6, help="descriptor dimension D")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    t.add_argument("--pairs", type=int, default=4, help="view pairs per step")
    t.add_argument("--matches", type=int, default=64, help="correspondences per pair")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between saves")
    t.add_argument("--seed", type=int, default=0, help="initialisation and data draw")
    t.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    t.add_argument("--threads", type=int, default=None, help="torch threads (1 is best on a "
                   "small shared CPU)")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("select", help="choose K reference descriptors (the keypoints)",
                       formatter_class=fmt)
    s.add_argument("checkpoint", type=Path,
                   help="descriptor checkpoint (rewritten with them unless --out is given)")
    s.add_argument("--out", type=Path, default=None,
                   help="write the checkpoint with the new references here instead")
    s.add_argument("--scenes", type=Path, required=True,
                   help="scenes to select on (preferably not the training scenes)")
    s.add_argument("--keypoints", type=int, default=5, help="K")
    s.add_argument("--candidates", type=int, default=50, help="candidates on the object")
    s.add_argument("--min-separation", type=float, default=0.03, help="m between keypoints")
    s.add_argument("--scoring-scenes", type=int, default=8, help="scenes used for scoring")
    s.add_argument("--seed", type=int, default=0, help="candidate draw")
    s.add_argument("--spread", default="score", choices=("score", "farthest"),
                   help="keep the best-scoring candidates (score) or farthest-point among the "
                   "confident ones, so the keypoints cover the object (farthest)")
    s.add_argument("--confident-fraction", type=float, default=0.9,
                   help="--spread farthest: eligible candidates score >= this x the best")
    s.add_argument("--threads", type=int, default=None, help="torch threads")
    s.set_defaults(func=_cmd_select)

    e = sub.add_parser("evaluate", help="matching px and keypoint 3D mm on held-out scenes",
                       formatter_class=fmt)
    e.add_argument("checkpoint", type=Path, help="descriptor checkpoint")
    e.add_argument("--scenes", type=Path, required=True, help="held-out scenes")
    e.add_argument("--pairs", type=int, default=32, help="view pairs for the matching error")
    e.add_argument("--s3k", type=Path, default=None,
                   help="also evaluate this S3K checkpoint (trained for the scenes' env "
                   "keypoints) on the same scenes")
    e.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    e.add_argument("--figure", type=Path, default=None,
                   help="PNG: keypoint estimates (rings) and tracked points (dots)")
    e.add_argument("--figure-scenes", type=int, default=2, help="scenes in the figure")
    e.add_argument("--threads", type=int, default=None, help="torch threads")
    e.set_defaults(func=_cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``s3k descriptors``; returns the sub-command's summary dict."""
    args = build_parser().parse_args(argv)
    args.argv = argv
    result = args.func(args)
    for value in result.values() if isinstance(result, dict) else ():
        if isinstance(value, float) and not math.isfinite(value):
            raise FloatingPointError(f"non-finite result {result}")
    return result


if __name__ == "__main__":
    main()
