"""Keypoints from dense descriptors: automatic reference descriptors, localisation in every
view, and weighted triangulation across the calibrated cameras.

A keypoint is a **reference descriptor** ``r_k`` (D,). In a view with descriptor map ``D``
its heatmap is ``P = softmax(-|D - r_k|^2 / tau^2)`` (``tau`` = the training kernel width);
its 2D position is the mean of ``P`` in a window around the peak, and its confidence the
S3K Appendix-B weight of the heatmap's spread (:func:`s3k_envs.geometry.confidence_weight`,
scale = the training target width ``sigma``). The 3D keypoint is the weighted triangulation
of the C views (:func:`s3k_envs.keypoints.predictor.decode_for_inference`, exactly S3K's
decoder): the original method used one camera's depth instead, which fails wherever that
camera does not see the point.

Selection (:func:`select_references`), without labels: ``num_candidates`` pixels are drawn
on the object in a reference image (the view with the largest object mask of the first
scene); each candidate's descriptor is localised in every view of ``scoring`` scenes and
scored by

    score = mean confidence * exp(-multi-view residual / (2 sigma)) * exp(-self error / (2 sigma))

(residual: confidence-weighted distance, px, between each view's 2D estimate and the
reprojection of the triangulated point; self error: px between the candidate pixel and its
own localisation in the reference image). Two ways to keep K of them
(:func:`choose_references`):

* ``spread="score"`` (the default): best first, skipping any closer than ``min_separation``
  (m, by depth in the reference scene) to one already kept, until K are kept. The best
  scores cluster where the descriptors are most distinctive (on the BoxPush lid: all 5 within
  ~40 mm of their centroid in xy, against ~100 mm for the box corners).
* ``spread="farthest"``: farthest-point selection among the *confident* candidates (score at
  least ``confident_fraction`` x the best): the best one first, then repeatedly the one
  farthest (3D) from all kept, so the K keypoints cover the object's extent. A cost on the
  mean keypoint distance then weighs a rotation error more (the keypoints move
  ``angle x radius``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from s3k_envs.descriptors.correspondences import lift_pixels
from s3k_envs.descriptors.model import (
    DescriptorCheckpointError,
    DescriptorNet,
    descriptor_logits,
    load_checkpoint,
    sample_descriptors,
    save_checkpoint,
)
from s3k_envs.descriptors.scenes import SceneSet
from s3k_envs.geometry import project
from s3k_envs.keypoints.model import fuse_batchnorm
from s3k_envs.keypoints.predictor import Prediction, decode_for_inference

#: How :func:`select_references` keeps K of its scored candidates.
SPREADS = ("score", "farthest")


@dataclass
class References:
    """The K reference descriptors that define the keypoints.

    Attributes:
        descriptors: ``(K, D)`` float32.
        names: K keypoint names (``descriptor_0`` ...).
        scores: ``(K,)`` selection scores (higher is better).
        object_points: ``(K, 3)`` float32 m, the object-frame point each reference was taken
            from (from the reference scene's depth and object pose) — used only to measure
            errors, never by the keypoints themselves; None when unknown.
        object_bounds: ``(2, 3)`` float32 m, the reference object's bounding box in its own
            frame (to map the points onto other instances of a category); None if unknown.
    """

    descriptors: np.ndarray
    names: list[str]
    scores: np.ndarray
    object_points: np.ndarray | None = None
    object_bounds: np.ndarray | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain/tensor dict for a checkpoint (``torch.load(weights_only=True)``-safe)."""
        return {"descriptors": torch.as_tensor(self.descriptors, dtype=torch.float32),
                "names": list(self.names),
                "scores": torch.as_tensor(self.scores, dtype=torch.float32),
                "object_points": None if self.object_points is None
                else torch.as_tensor(self.object_points, dtype=torch.float32),
                "object_bounds": None if self.object_bounds is None
                else torch.as_tensor(self.object_bounds, dtype=torch.float32)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> References:
        pts, bounds = payload.get("object_points"), payload.get("object_bounds")
        return cls(np.asarray(payload["descriptors"], dtype=np.float32), list(payload["names"]),
                   np.asarray(payload["scores"], dtype=np.float32),
                   None if pts is None else np.asarray(pts, dtype=np.float32),
                   None if bounds is None else np.asarray(bounds, dtype=np.float32))


@torch.no_grad()
def descriptor_maps(model: DescriptorNet, images: np.ndarray | torch.Tensor,
                    chunk: int = 32) -> torch.Tensor:
    """Descriptor maps of multi-view frames.

    Args:
        images: ``(B, C, H, W, 3)`` uint8.
        chunk: images per forward pass.

    Returns:
        ``(B, C, D, h, w)`` float32.
    """
    imgs = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if imgs.ndim != 5 or imgs.shape[-1] != 3:
        raise ValueError(f"images: expected (B, C, H, W, 3) uint8, got {tuple(imgs.shape)}")
    b, c = imgs.shape[:2]
    flat = imgs.reshape(b * c, *imgs.shape[2:])
    out = torch.cat([model(flat[i : i + chunk]) for i in range(0, b * c, chunk)])
    return out.reshape(b, c, *out.shape[1:])


def localize(maps: torch.Tensor, references: np.ndarray | torch.Tensor,
             intrinsics: np.ndarray, extrinsics: np.ndarray, kernel_width: float,
             sigma: float, stride: int, window_px: float | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Localise reference descriptors in every view and triangulate them.

    Args:
        maps: ``(B, C, D, h, w)`` descriptor maps.
        references: ``(K, D)`` reference descriptors.
        intrinsics: ``(B, C, 3, 3)``; extrinsics: ``(B, C, 4, 4)``.
        kernel_width: ``tau``. sigma: confidence scale, px. stride: px per cell.
        window_px: half-width of the peak window, px (None: the whole-heatmap mean).

    Returns:
        points ``(B, K, 3)`` m, uv ``(B, C, K, 2)`` px, confidence ``(B, C, K)``, float32.
    """
    b, c, d, h, w = maps.shape
    refs = torch.as_tensor(np.asarray(references, dtype=np.float32)
                           if not isinstance(references, torch.Tensor) else references)
    if refs.ndim != 2 or refs.shape[1] != d:
        raise ValueError(f"references: expected (K, {d}), got {tuple(refs.shape)}")
    queries = refs[None].expand(b * c, -1, -1)
    logits = descriptor_logits(maps.reshape(b * c, d, h, w), queries, kernel_width)
    logits = logits.reshape(b, c, refs.shape[0], h, w)
    points, uv, conf, _ = decode_for_inference(logits, np.asarray(intrinsics),
                                               np.asarray(extrinsics), sigma, stride, window_px)
    return points, uv, conf


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion by one pixel (``(H, W)`` bool)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0], out[-1], out[:, 0], out[:, -1] = False, False, False, False
    return out


def choose_references(points: np.ndarray, scores: np.ndarray, num_keypoints: int,
                      min_separation: float = 0.03, spread: str = "score",
                      confident_fraction: float = 0.9) -> list[int]:
    """Which K of N scored candidates to keep (see the module docstring).

    Args:
        points: ``(N, 3)`` m, the candidates' 3D positions.
        scores: ``(N,)`` selection scores (higher is better, >= 0).
        num_keypoints: K.
        min_separation: m, smallest 3D distance between two kept candidates (both spreads).
        spread: ``"score"`` (best first) or ``"farthest"`` (farthest-point among the
            confident candidates).
        confident_fraction: ``"farthest"`` only: candidates scoring at least this fraction
            of the best score are eligible, in (0, 1].

    Returns:
        K candidate indices; the first is the best-scoring candidate.

    Raises:
        ValueError: bad shapes or arguments, or fewer than K eligible candidates at least
            ``min_separation`` apart.
    """
    points = np.asarray(points, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or scores.shape != (len(points),):
        raise ValueError(f"points, scores: expected (N, 3) and (N,), got {points.shape} and "
                         f"{scores.shape}")
    if spread not in SPREADS:
        raise ValueError(f"spread: expected one of {SPREADS}, got {spread!r}")
    if not 0.0 < confident_fraction <= 1.0:
        raise ValueError(f"confident_fraction: expected a value in (0, 1], got "
                         f"{confident_fraction}")
    if num_keypoints < 1:
        raise ValueError(f"num_keypoints: expected >= 1, got {num_keypoints}")
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    if spread == "score":
        for i in order:
            if all(np.linalg.norm(points[i] - points[j]) >= min_separation for j in kept):
                kept.append(int(i))
            if len(kept) == num_keypoints:
                break
        eligible = len(points)
    else:
        pool = order[scores[order] >= confident_fraction * scores[order[0]]]
        eligible = len(pool)
        kept.append(int(pool[0]))
        nearest = np.linalg.norm(points[pool] - points[pool[0]], axis=-1)  # (M,)
        while len(kept) < num_keypoints:
            j = int(np.argmax(nearest))  # ties: the better score (pool is sorted)
            if nearest[j] < min_separation:
                break
            kept.append(int(pool[j]))
            nearest = np.minimum(nearest, np.linalg.norm(points[pool] - points[pool[j]],
                                                         axis=-1))
    if len(kept) < num_keypoints:
        what = ("" if spread == "score" else
                f" confident (score >= {confident_fraction} x the best: {eligible})")
        raise ValueError(f"only {len(kept)} of {len(points)}{what} candidates are at least "
                         f"{min_separation} m apart; lower min_separation or num_keypoints"
                         + ("" if spread == "score" else " or confident_fraction"))
    return kept


def select_references(model: DescriptorNet, scenes: SceneSet, config: dict[str, Any],
                      num_keypoints: int = 5, num_candidates: int = 50,
                      min_separation: float = 0.03, scoring_scenes: int = 8, seed: int = 0,
                      spread: Literal["score", "farthest"] = "score",
                      confident_fraction: float = 0.9) -> References:
    """Choose K reference descriptors automatically (see the module docstring).

    Args:
        model: trained descriptor network (eval mode).
        scenes: scenes to select on (scene 0 gives the reference image; the first
            ``scoring_scenes`` score the candidates). Use scenes the network was not
            trained on when there are some.
        config: the checkpoint config (``kernel_width``, ``sigma``, ``stride``).
        num_keypoints: K. num_candidates: candidates drawn on the object.
        min_separation: m, smallest 3D distance between two kept references.
        scoring_scenes: scenes used for scoring.
        seed: candidate draw.
        spread, confident_fraction: how K candidates are kept (:func:`choose_references`).

    Raises:
        ValueError: fewer object pixels than candidates asked for, or fewer than K
            (confident) candidates at least ``min_separation`` apart.
    """
    if num_keypoints < 1 or num_candidates < num_keypoints:
        raise ValueError(f"need 1 <= num_keypoints <= num_candidates, got {num_keypoints}, "
                         f"{num_candidates}")
    if spread not in SPREADS:
        raise ValueError(f"spread: expected one of {SPREADS}, got {spread!r}")
    model.eval()
    tau, sigma, stride = (float(config["kernel_width"]), float(config["sigma"]),
                          int(config["stride"]))
    window = 3.0 * sigma
    ref_cam = int(np.argmax(scenes.masks[0].sum((1, 2))))
    mask = _erode(scenes.masks[0, ref_cam])
    rows, cols = np.nonzero(mask)
    if len(rows) < num_candidates:
        raise ValueError(f"the reference image (scene 0, camera {ref_cam}) has {len(rows)} "
                         f"interior object pixels, fewer than num_candidates={num_candidates}")
    pick = np.random.default_rng(seed).choice(len(rows), size=num_candidates, replace=False)
    uv = np.stack([cols[pick] + 0.5, rows[pick] + 0.5], axis=-1).astype(np.float32)
    score_set = scenes.subset(slice(0, max(1, min(scoring_scenes, len(scenes)))))
    maps = descriptor_maps(model, score_set.images)  # (S, C, D, h, w)
    cands = sample_descriptors(maps[0, ref_cam][None], torch.from_numpy(uv)[None],
                               scenes.image_size)[0]  # (N, D)
    points, uv_views, conf = localize(maps, cands, score_set.intrinsics, score_set.extrinsics,
                                      tau, sigma, stride, window)
    reproj, _ = project(points.astype(np.float64)[:, None],  # (S, 1, N, 3) -> (S, C, N, 2)
                        score_set.intrinsics.astype(np.float64),
                        score_set.extrinsics.astype(np.float64))
    resid = np.linalg.norm(reproj - uv_views, axis=-1)  # (S, C, N)
    resid = (conf * resid).sum(1) / np.maximum(conf.sum(1), 1e-9)  # (S, N)
    self_err = np.linalg.norm(uv_views[0, ref_cam] - uv, axis=-1)  # (N,)
    score = (conf.mean((0, 1)) * np.exp(-resid.mean(0) / (2 * sigma))
             * np.exp(-self_err / (2 * sigma)))
    world = lift_pixels(uv, scenes.depth[0, ref_cam], scenes.intrinsics[0, ref_cam],
                        scenes.extrinsics[0, ref_cam])  # (N, 3)
    kept = choose_references(world, score, num_keypoints, min_separation, spread,
                             confident_fraction)
    pose = scenes.object_pose[0].astype(np.float64)
    local = (world[kept] - pose[:3, 3]) @ pose[:3, :3]
    bounds = None if scenes.object_bounds is None else scenes.object_bounds[0]
    return References(cands[kept].numpy().astype(np.float32),
                      [f"descriptor_{k}" for k in range(num_keypoints)],
                      score[kept].astype(np.float32), local.astype(np.float32), bounds)


def attach_references(path: str | os.PathLike[str], references: References,
                      out: str | os.PathLike[str] | None = None) -> Path:
    """Rewrite a descriptor checkpoint (atomically) with ``references`` added, or write the
    checkpoint with them to ``out`` instead (``path`` stays as it is)."""
    payload = load_checkpoint(path)
    dim = int(payload["config"]["descriptor_dim"])
    if references.descriptors.shape[1:] != (dim,):
        raise ValueError(f"references have dimension {references.descriptors.shape[1:]}, the "
                         f"checkpoint's descriptors {dim}")
    return save_checkpoint(path if out is None else out, payload["model"], payload["config"],
                           references=references.to_payload(),
                           train_state=payload.get("train_state"))


class DescriptorPredictor:
    """Images + calibration -> 3D keypoints from a descriptor checkpoint with references;
    the same interface and :class:`~s3k_envs.keypoints.predictor.Prediction` output as
    :class:`~s3k_envs.keypoints.predictor.KeypointPredictor`.

    Args:
        model: the descriptor network (copied; BatchNorm is folded into the copy).
            config: its checkpoint config.
        references: the keypoints' reference descriptors.
        window_px: peak window half-width, px (default ``3 sigma``).
    """

    def __init__(self, model: DescriptorNet, config: dict[str, Any], references: References,
                 window_px: float | None = None) -> None:
        dim = int(config["descriptor_dim"])
        if references.descriptors.ndim != 2 or references.descriptors.shape[1] != dim:
            raise ValueError(f"references: expected (K, {dim}) descriptors, got "
                             f"{references.descriptors.shape}")
        # A copy: folding BatchNorm changes the modules, the caller's model stays trainable.
        self.model = fuse_batchnorm_descriptor(copy.deepcopy(model))
        self.config = dict(config)
        self.references = references
        self.keypoint_names: list[str] = list(references.names)
        self.image_size = (int(config["image_size"][0]), int(config["image_size"][1]))
        self.kernel_width = float(config["kernel_width"])
        self.sigma = float(config["sigma"])
        self.stride = int(config["stride"])
        self.window_px = 3.0 * self.sigma if window_px is None else window_px

    @classmethod
    def load(cls, path: str | os.PathLike[str], num_keypoints: int | None = None,
             **kwargs: Any) -> DescriptorPredictor:
        """Load a checkpoint that has references.

        Args:
            num_keypoints: if given, the K the caller expects; another K is an error.

        Raises:
            DescriptorCheckpointError: no references in the checkpoint (run
                ``s3k descriptors select`` first) or another K than ``num_keypoints``.
        """
        payload = load_checkpoint(path)
        refs = payload.get("references")
        if not refs:
            raise DescriptorCheckpointError(
                f"{path}: has no reference descriptors; choose them with `s3k descriptors "
                "select` (or select_references + attach_references) first")
        references = References.from_payload(refs)
        k = len(references.names)
        if num_keypoints is not None and k != num_keypoints:
            raise DescriptorCheckpointError(
                f"{path}: has {k} reference descriptors (keypoints), expected {num_keypoints}")
        return cls(payload["model"], payload["config"], references, **kwargs)

    @torch.inference_mode()
    def predict(self, images: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray,
                return_heatmaps: bool = False) -> Prediction:
        """3D keypoints from C calibrated views (optionally batched over B frames).

        Args:
            images: ``(C, H, W, 3)`` or ``(B, C, H, W, 3)`` uint8, at the training size.
            intrinsics: ``(…, C, 3, 3)``; extrinsics: ``(…, C, 4, 4)`` world->camera.
            return_heatmaps: not supported (descriptor heatmaps are per reference; use
                :func:`localize`); must be False.

        Returns:
            :class:`Prediction`: ``points_3d (…, K, 3)`` m, ``keypoints_2d (…, C, K, 2)``
            px, ``confidence (…, C, K)``.
        """
        if return_heatmaps:
            raise ValueError("DescriptorPredictor.predict does not return heatmaps")
        images = np.asarray(images)
        if images.ndim not in (4, 5) or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images: expected (C, H, W, 3) or (B, C, H, W, 3) uint8, got "
                             f"{images.dtype} {images.shape}")
        if tuple(images.shape[-3:-1]) != self.image_size:
            raise ValueError(f"images: the descriptor model was trained on "
                             f"{self.image_size[0]}x{self.image_size[1]} images, got "
                             f"{images.shape[-3]}x{images.shape[-2]}")
        batched = images.ndim == 5
        lead = images.shape[:-3]
        intr = np.asarray(intrinsics, dtype=np.float64)
        extr = np.asarray(extrinsics, dtype=np.float64)
        for name, arr, tail in (("intrinsics", intr, (3, 3)), ("extrinsics", extr, (4, 4))):
            if arr.shape != (*lead, *tail):
                raise ValueError(f"{name}: expected shape {(*lead, *tail)} to match images "
                                 f"{images.shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: contains NaN or inf")
        if not batched:
            images, intr, extr = images[None], intr[None], extr[None]
        maps = descriptor_maps(self.model, images)
        points, uv, conf = localize(maps, self.references.descriptors, intr, extr,
                                    self.kernel_width, self.sigma, self.stride, self.window_px)
        if not batched:
            return Prediction(points[0], uv[0], conf[0])
        return Prediction(points, uv, conf)


def fuse_batchnorm_descriptor(model: DescriptorNet) -> DescriptorNet:
    """Fold the BatchNorms of a descriptor network into its convs (eval, in place)."""
    model.eval()
    fuse_batchnorm(model.unet)
    return model


def tracked_points(references: References, scenes: SceneSet) -> np.ndarray:
    """World positions of the physical points the reference descriptors were taken from.

    The position of keypoint k in scene s is ``object_pose[s] @ p_sk``. For the object the
    references were chosen on (or any object of the same size, e.g. the box) ``p_sk`` is the
    reference point ``object_points[k]``; for another instance of a category (a shoe of
    another size) it is that point in **box-normalised coordinates**: the same fraction of
    the way across the instance's bounding box (``object_bounds``) as across the reference
    object's — an approximate correspondence (shoes differ in more than their boxes).

    Returns:
        ``(S, K, 3)`` float64 world points, m.

    Raises:
        ValueError: the references carry no object points.
    """
    if references.object_points is None:
        raise ValueError("the references have no object_points to compare against")
    pts = np.broadcast_to(references.object_points.astype(np.float64),
                          (len(scenes), *references.object_points.shape))
    if references.object_bounds is not None and scenes.object_bounds is not None:
        ref_lo, ref_hi = references.object_bounds.astype(np.float64)
        lo = scenes.object_bounds[:, None, 0].astype(np.float64)
        hi = scenes.object_bounds[:, None, 1].astype(np.float64)
        frac = (pts - ref_lo) / np.maximum(ref_hi - ref_lo, 1e-9)
        pts = lo + frac * (hi - lo)
    pose = scenes.object_pose.astype(np.float64)
    return pose[:, None, :3, 3] + np.einsum("sij,skj->ski", pose[:, :3, :3], pts)


def keypoint_errors(predictor: DescriptorPredictor, scenes: SceneSet) -> np.ndarray:
    """3D errors of descriptor keypoints against the physical points they track
    (:func:`tracked_points`).

    Returns:
        ``(S, K)`` float64 errors, m.

    Raises:
        ValueError: the references carry no object points.
    """
    truth = tracked_points(predictor.references, scenes)
    pred = predictor.predict(scenes.images, scenes.intrinsics, scenes.extrinsics)
    return np.linalg.norm(pred.points_3d - truth, axis=-1)
