"""``s3k evaluate CKPT DATA [--out DIR]``: accuracy of a trained S3K model on a dataset.

Metrics (over the dataset's labelled samples; ground truth only used here, never in
training):

* ``rms_px`` — RMS distance between the predicted 2D keypoint (peak-windowed heatmap mean)
  and the 2D label, over the cameras where the keypoint is labelled (visible); overall and
  per keypoint.
* ``mm`` — distance between the weighted-triangulated 3D prediction and ``keypoints_3d``,
  in millimetres: mean, median and 90th percentile, overall (all keypoints of all samples)
  and per keypoint. ``mm_plain_mean`` is the same with the plain (whole-heatmap) mean, for
  comparison.

Writes ``DIR/metrics.json`` and ``DIR/overlays.png`` (a few samples: the C views with truth
as filled dots and predictions as rings, and the heatmaps of all keypoints in their
colours). ``DIR`` defaults to ``eval_<dataset name>`` next to the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s3k_envs.atomic import atomic_write_text
from s3k_envs.keypoints.model import KeypointUNet
from s3k_envs.keypoints.predictor import Decoded, KeypointPredictor, decode_heatmaps
from s3k_envs.viz import KEYPOINT_COLORS, draw_points, mosaic, with_legend, write_png

#: ``predict(images (b, C, H, W, 3) uint8, intrinsics (b, C, 3, 3), extrinsics (b, C, 4, 4))``
PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Decoded]


def model_predict_fn(model: KeypointUNet, config: Mapping[str, Any],
                     window_px: float | str | None = "config") -> PredictFn:
    """A :data:`PredictFn` running ``model`` in eval mode (restores its train/eval mode).

    Args:
        window_px: peak-window half-width (px); ``"config"`` takes the config's
            ``window_px`` (default ``3 sigma``), None = plain mean.
    """
    sigma = float(config["sigma"])
    stride = int(config["stride"])
    if window_px == "config":
        window_px = config.get("window_px", 3.0 * sigma)

    def predict(images: torch.Tensor, intr: torch.Tensor, extr: torch.Tensor) -> Decoded:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            with torch.inference_mode():
                # the network on its device, decoding and triangulation on the CPU
                logits = model.forward_views(images.to(device)).cpu()
                return decode_heatmaps(logits, intr, extr, sigma, stride, window_px)
        finally:
            model.train(was_training)

    return predict


def predictor_fn(predictor: KeypointPredictor) -> PredictFn:
    """A :data:`PredictFn` using a (BatchNorm-fused) :class:`KeypointPredictor`."""

    def predict(images: torch.Tensor, intr: torch.Tensor, extr: torch.Tensor) -> Decoded:
        with torch.inference_mode():
            logits = predictor.model.forward_views(images)
            return decode_heatmaps(logits, intr, extr, predictor.sigma, predictor.stride,
                                   predictor.window_px)

    return predict


def labelled_view(arrays: Mapping[str, np.ndarray], max_samples: int | None = None
                  ) -> dict[str, np.ndarray]:
    """The labelled samples of a ``load_arrays`` dict, aligned: images ``(M, C, H, W, 3)``,
    intrinsics, extrinsics, keypoints_2d ``(M, C, K, 2)``, label_mask ``(M, C, K)``,
    keypoints_3d ``(M, K, 3)`` (first ``max_samples`` only, if given)."""
    rows = np.asarray(arrays["label_rows"], dtype=np.int64)
    if rows.size == 0:
        raise ValueError("the dataset has no labelled samples to evaluate against")
    n = rows.size if max_samples is None else min(rows.size, max_samples)
    sel = rows[:n]
    return {
        "images": arrays["images"][sel],
        "intrinsics": arrays["intrinsics"][sel],
        "extrinsics": arrays["extrinsics"][sel],
        "keypoints_2d": arrays["keypoints_2d"][:n],
        "label_mask": arrays["label_mask"][:n],
        "keypoints_3d": arrays["keypoints_3d"][:n],
    }


def run_predictions(predict: PredictFn, data: Mapping[str, np.ndarray], batch: int = 16,
                    keep_heatmaps: int = 0) -> dict[str, np.ndarray]:
    """Predict every sample of a :func:`labelled_view` dict in batches.

    Returns:
        points_3d ``(M, K, 3)``, keypoints_2d ``(M, C, K, 2)``, confidence ``(M, C, K)``,
        and heatmaps ``(keep_heatmaps, C, K, h, w)`` of the first samples.
    """
    pts, uvs, confs, heat = [], [], [], []
    m = len(data["images"])
    for i in range(0, m, batch):
        dec = predict(
            torch.from_numpy(np.ascontiguousarray(data["images"][i : i + batch])),
            torch.from_numpy(np.asarray(data["intrinsics"][i : i + batch])),
            torch.from_numpy(np.asarray(data["extrinsics"][i : i + batch])),
        )
        pts.append(dec.points_3d.numpy())
        uvs.append(dec.keypoints_2d.numpy())
        confs.append(dec.confidence.numpy())
        if sum(len(h) for h in heat) < keep_heatmaps:
            heat.append(dec.probs.numpy())
    out = {
        "points_3d": np.concatenate(pts),
        "keypoints_2d": np.concatenate(uvs),
        "confidence": np.concatenate(confs),
    }
    if keep_heatmaps:
        out["heatmaps"] = np.concatenate(heat)[:keep_heatmaps]
    return out


def _stats_mm(err_m: np.ndarray) -> dict[str, float]:
    e = np.asarray(err_m, dtype=np.float64).ravel() * 1000.0
    if e.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "p90": float("nan"), "n": 0}
    return {"mean": float(e.mean()), "median": float(np.median(e)),
            "p90": float(np.percentile(e, 90)), "n": int(e.size)}


def keypoint_metrics(pred: Mapping[str, np.ndarray], data: Mapping[str, np.ndarray],
                     keypoint_names: Sequence[str],
                     exclude_from_overall: Sequence[str] = ()) -> dict[str, Any]:
    """RMS pixel and 3D (mm) errors; see the module docstring.

    Args:
        pred: :func:`run_predictions` output.
        data: :func:`labelled_view` dict with the ground truth.
        keypoint_names: K names, for the per-keypoint entries.
        exclude_from_overall: names kept out of the overall ``rms_px`` / ``mm`` (e.g.
            keypoints the model was trained without labels for); listed in the result as
            ``excluded_from_overall``. Keypoints without a labelled view in ``data`` have no
            RMS and are listed as ``no_labelled_views`` (the overall RMS is over the others).
    """
    mask = np.asarray(data["label_mask"], dtype=bool)
    gt2 = np.where(mask[..., None], np.asarray(data["keypoints_2d"], dtype=np.float64), 0.0)
    d2 = ((pred["keypoints_2d"].astype(np.float64) - gt2) ** 2).sum(-1)  # (M, C, K)
    err3 = np.linalg.norm(pred["points_3d"].astype(np.float64) - data["keypoints_3d"], axis=-1)
    per_kp = {}
    for k, name in enumerate(keypoint_names):
        mk = mask[..., k]
        per_kp[name] = {
            "rms_px": float(np.sqrt(d2[..., k][mk].mean())) if mk.any() else float("nan"),
            "mm": _stats_mm(err3[:, k]),
        }
    unknown = sorted(set(exclude_from_overall) - set(keypoint_names))
    if unknown:
        raise ValueError(f"exclude_from_overall: {unknown} are not keypoints "
                         f"({list(keypoint_names)})")
    keep = np.array([name not in exclude_from_overall for name in keypoint_names], dtype=bool)
    overall_mask = mask & keep
    return {
        "num_samples": len(err3),
        "rms_px": (float(np.sqrt(d2[overall_mask].mean())) if overall_mask.any()
                   else float("nan")),
        "mm": _stats_mm(err3[:, keep]),
        "per_keypoint": per_kp,
        "excluded_from_overall": [n for n, k in zip(keypoint_names, keep, strict=True) if not k],
        "no_labelled_views": [n for k, n in enumerate(keypoint_names) if not mask[..., k].any()],
    }


def _heat_overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Image dimmed to grey with each keypoint's heatmap ``(K, h, w)`` in its colour."""
    h, w = image.shape[:2]
    grey = image.astype(np.float64).mean(-1, keepdims=True) * 0.35
    out = np.repeat(grey, 3, axis=-1)
    for k, hm in enumerate(heat):
        rep = (h // hm.shape[0], w // hm.shape[1])
        up = np.kron(hm / max(hm.max(), 1e-12), np.ones(rep))[..., None]
        out = out * (1 - up) + up * KEYPOINT_COLORS[k % len(KEYPOINT_COLORS)]
    return np.clip(out, 0, 255).astype(np.uint8)


def overlay_figure(data: Mapping[str, np.ndarray], pred: Mapping[str, np.ndarray],
                   num: int = 4) -> np.ndarray:
    """``(rows, cols, 3)`` uint8: per sample, a row of the C views (truth = dots, prediction
    = rings) above a row of their heatmaps."""
    rows = []
    for i in range(min(num, len(pred["points_3d"]))):
        views = [
            draw_points(draw_points(img, data["keypoints_2d"][i, c], data["label_mask"][i, c]),
                        pred["keypoints_2d"][i, c], hollow=True, radius=3)
            for c, img in enumerate(data["images"][i])
        ]
        rows.append(mosaic(np.stack(views), cols=len(views)))
        if "heatmaps" in pred and i < len(pred["heatmaps"]):
            heats = [_heat_overlay(img, pred["heatmaps"][i, c])
                     for c, img in enumerate(data["images"][i])]
            rows.append(mosaic(np.stack(heats), cols=len(heats)))
    return mosaic(np.stack(rows), cols=1, border=4) if rows else np.zeros((1, 1, 3), np.uint8)


def evaluate(predict: PredictFn, arrays: Mapping[str, np.ndarray],
             keypoint_names: Sequence[str], batch: int = 16, max_samples: int | None = None,
             figure_samples: int = 0, plain_predict: PredictFn | None = None,
             exclude_from_overall: Sequence[str] = ()
             ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Metrics (and optionally the overlay figure) of ``predict`` on a dataset.

    Args:
        predict: :data:`PredictFn`.
        arrays: a ``load_arrays`` dict (needs labelled samples).
        keypoint_names: K names.
        batch: frames per forward pass.
        max_samples: evaluate only the first labelled samples.
        figure_samples: samples in the overlay figure (0: no figure).
        plain_predict: optional second predictor (e.g. plain mean) reported as
            ``mm_plain_mean``.
        exclude_from_overall: keypoint names kept out of the overall numbers
            (:func:`keypoint_metrics`).
    """
    data = labelled_view(arrays, max_samples)
    pred = run_predictions(predict, data, batch, keep_heatmaps=figure_samples)
    metrics = keypoint_metrics(pred, data, keypoint_names, exclude_from_overall)
    if plain_predict is not None:
        plain = keypoint_metrics(run_predictions(plain_predict, data, batch), data,
                                 keypoint_names, exclude_from_overall)
        metrics["mm_plain_mean"] = plain["mm"]
        metrics["rms_px_plain_mean"] = plain["rms_px"]
    figure = None
    if figure_samples:
        notes = ("dot: labelled keypoint, small ring: label hidden/outside, "
                 "large ring: predicted", "lower row: heatmaps")
        figure = with_legend(overlay_figure(data, pred, figure_samples), keypoint_names, notes)
    return metrics, figure


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``s3k evaluate`` entry point; returns the metrics dict."""
    parser = argparse.ArgumentParser(
        prog="s3k evaluate", description="RMS pixel and 3D (mm) error of an S3K checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="model checkpoint (model.pt / best.pt)")
    parser.add_argument("data", type=Path, help="dataset directory with labelled samples")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (None: eval_<data name> beside the checkpoint)")
    parser.add_argument("--batch", type=int, default=16, help="frames per forward pass")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="evaluate the first N samples only (None: all)")
    parser.add_argument("--figure-samples", type=int, default=4,
                        help="samples drawn in overlays.png")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (None: min(2, CPU count))")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or min(2, os.cpu_count() or 1))

    from s3k_envs.keypoints.dataset import load_arrays

    predictor = KeypointPredictor.load(args.checkpoint)
    arrays = load_arrays(args.data)
    _check_compatible(predictor, arrays, args.data)
    plain = KeypointPredictor.load(args.checkpoint)
    plain.window_px = None
    metrics, figure = evaluate(
        predictor_fn(predictor), arrays, predictor.keypoint_names, batch=args.batch,
        max_samples=args.max_samples, figure_samples=args.figure_samples,
        plain_predict=predictor_fn(plain),
        exclude_from_overall=predictor.config.get("unlabelled_keypoints", []),
    )
    metrics = {"checkpoint": str(args.checkpoint), "data": str(args.data),
               "window_px": predictor.window_px, **metrics}
    out = args.out or args.checkpoint.parent / f"eval_{args.data.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if figure is not None:
        write_png(figure, out / "overlays.png")
    mm = metrics["mm"]
    print(f"{metrics['num_samples']} samples: 3D error median {mm['median']:.1f} mm, mean "
          f"{mm['mean']:.1f} mm, p90 {mm['p90']:.1f} mm; RMS {metrics['rms_px']:.2f} px")
    if metrics["excluded_from_overall"]:
        print(f"  (overall numbers leave out {metrics['excluded_from_overall']}: the model was "
              "trained without labels for them)")
    if metrics["no_labelled_views"]:
        print(f"  (no labelled view of {metrics['no_labelled_views']} in this dataset: the "
              "overall RMS px is over the other keypoints)")
    for name, m in metrics["per_keypoint"].items():
        rms = (f"RMS {m['rms_px']:.2f} px" if math.isfinite(m["rms_px"])
               else "RMS n/a (no labelled view of it in this dataset)")
        print(f"  {name}: median {m['mm']['median']:.1f} mm, mean {m['mm']['mean']:.1f} mm, "
              f"p90 {m['mm']['p90']:.1f} mm; {rms}")
    print(f"wrote {out / 'metrics.json'}")
    return metrics


def _check_compatible(predictor: KeypointPredictor, arrays: Mapping[str, Any],
                      path: Path) -> None:
    images = arrays["images"]
    if tuple(images.shape[1:4]) != (predictor.num_cameras, *predictor.image_size):
        raise ValueError(
            f"{path}: images are {tuple(images.shape[1:4])} (cameras, H, W) but the model "
            f"expects ({predictor.num_cameras}, {predictor.image_size[0]}, "
            f"{predictor.image_size[1]})"
        )
    try:
        names = json.loads((path / "manifest.json").read_text()).get("keypoint_names")
    except (OSError, ValueError):
        names = None
    k = arrays["keypoints_2d"].shape[2] if "keypoints_2d" in arrays else None
    if (names is not None and list(names) != predictor.keypoint_names) or (
            k is not None and k != len(predictor.keypoint_names)):
        raise ValueError(
            f"{path}: has keypoints {names if names is not None else k} but the model was "
            f"trained for {predictor.keypoint_names}"
        )
