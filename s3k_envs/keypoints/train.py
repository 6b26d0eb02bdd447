"""``s3k train``: train the S3K keypoint model from few labelled and many unlabelled frames.

Usage::

    s3k train --labelled DIR --out RUN [--unlabelled DIR] [--val DIR] [--steps N]
              [--minutes M] [--batch B] [--alpha A] [--sigma S] [--lr LR] [--seed S]
              [--checkpoint-every N] ...   (``s3k train --help`` lists everything)

Every step draws ``--batch`` labelled frames (all C views of each) and, once the
self-supervised term is on, ``--unlabelled-batch`` unlabelled frames; both go through the
network in one pass. The loss is ``L_sup + alpha_t L_unsup + lambda ||theta_nonbias||^2``
(:mod:`s3k_envs.keypoints.losses`), optimised with Adam and a warm-up + cosine learning-rate
schedule over the run's progress (``max(step / steps, elapsed / budget)``, so a wall-clock
budget still ends at a low learning rate).

What we learnt about generalisation (see ``benchmarks/keypoint_accuracy.py`` and the
issue) is built into the defaults:

* calibration-consistent augmentation (:mod:`s3k_envs.keypoints.augment`): colour jitter
  and per-view zoom / shift / camera roll with the intrinsics and extrinsics updated;
* the 2D estimate of a view is the heatmap mean in a window around its peak
  (``--window-px``, default 3 sigma), which keeps a split heatmap from averaging two
  candidate corners;
* the self-supervised term is **gated**: it is off until ``--unsup-start`` of the run and
  until the running RMS error of the training labels is below ``--unsup-max-px``, then
  ramps up over ``--unsup-ramp``; and per keypoint it only uses estimates that at least
  ``--unsup-min-views`` confident (Appendix-B weight >= ``--unsup-min-confidence``),
  unimodal (``--unsup-min-peak-mass`` in the peak window) and mutually consistent
  (reprojection within ``--unsup-max-residual-px``) views agree on. This avoids the
  collapse of every view onto a point inside the object that all views trivially agree
  on (S3K Appendix E).

Outputs in ``RUN/``: ``model.pt`` (latest weights, the checkpoint format of
:mod:`s3k_envs.keypoints.model`), ``best.pt`` (best validation median 3D error, with
``--val``), ``train_state.pt`` (weights + optimizer + step + RNG states, for resuming),
``log.csv`` (losses, learning rate, validation error), ``train_config.json``,
``summary.json``, and TensorBoard events in ``RUN/tb`` when ``tensorboard`` is installed.
Checkpoints are written atomically every ``--checkpoint-every`` steps; re-running the same
command resumes from the last one (so a ``kill -9`` loses at most that many steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s3k_envs.atomic import atomic_write_text
from s3k_envs.device import resolve_device, torch_threads
from s3k_envs.keypoints.augment import AugmentConfig, augment_views
from s3k_envs.keypoints.evaluate import evaluate, model_predict_fn
from s3k_envs.keypoints.heatmaps import log_spatial_softmax, windowed_moments
from s3k_envs.keypoints.losses import (
    UnsupGate,
    heatmap_kl_loss,
    l2_nonbias,
    self_supervised_loss,
    supervised_targets,
    total_loss,
)
from s3k_envs.keypoints.model import (
    atomic_torch_save,
    build_model,
    checkpoint_dict,
    save_checkpoint,
    validate_checkpoint,
)
from s3k_envs.training import RunLog, TrainingLoop, resume_config

STATE_FORMAT = "s3k-train-state"
STATE_VERSION = 1
#: Settings that may differ when a run resumes (budget and bookkeeping, not the method).
_RESUME_MAY_CHANGE = ("steps", "minutes", "checkpoint_every", "val_every", "log_every",
                      "threads", "val_samples", "device")
LOG_COLUMNS = (
    "step", "elapsed_s", "lr", "loss", "sup", "unsup", "l2", "alpha", "train_px",
    "unsup_frac", "val_median_mm", "val_p90_mm", "val_mean_mm", "val_rms_px",
)


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in ``train_config.json`` and the state)."""

    steps: int = 20000
    minutes: float | None = None
    clock: str = "wall"
    batch: int = 4
    unlabelled_batch: int | None = None
    lr: float = 2e-3
    warmup: float = 0.02
    final_lr_fraction: float = 0.02
    weight_decay: float = 1e-5
    grad_clip: float = 5.0
    alpha: float = 0.5
    sigma: float = 2.5
    window_px: float | None = 7.5
    seed: int = 0
    # torch CPU threads during the run (restored afterwards); None: leave torch's setting
    threads: int | None = None
    # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps"
    device: str = "auto"
    checkpoint_every: int = 200
    val_every: int = 500
    val_samples: int = 200
    log_every: int = 20
    # model
    stride: int = 2
    channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32])
    res_blocks: int = 1
    res_channels: int = 32
    skip: str = "add"
    stem_convs: int = 1
    # augmentation
    aug_color: float = 0.2
    aug_rotate_deg: float = 10.0
    aug_scale: float = 0.15
    aug_shift_px: float = 8.0
    # self-supervised gating
    unsup_start: float = 0.25
    unsup_ramp: float = 0.1
    unsup_max_px: float = 2.0
    unsup_min_confidence: float = 0.5
    unsup_min_peak_mass: float = 0.8
    unsup_max_residual_px: float = 5.0
    unsup_min_views: int = 2
    unsup_target_views: str = "all"
    # train keypoints that no labelled view shows (their heatmaps learn nothing supervised)
    allow_unlabelled_keypoints: bool = False

    def __post_init__(self) -> None:
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"clock: expected 'wall' or 'cpu', got {self.clock!r}")

    def augment(self) -> AugmentConfig:
        return AugmentConfig(self.aug_color, self.aug_rotate_deg, self.aug_scale,
                             self.aug_shift_px)

    def gate(self) -> UnsupGate:
        return UnsupGate(
            window_px=self.window_px,
            min_confidence=self.unsup_min_confidence,
            min_peak_mass=self.unsup_min_peak_mass,
            max_residual_px=self.unsup_max_residual_px,
            min_views=self.unsup_min_views,
            target_views=self.unsup_target_views,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ data


@dataclass
class Frames:
    """Multi-view frames as torch tensors (labels only for labelled frames).

    images ``(N, C, H, W, 3)`` uint8; intrinsics ``(N, C, 3, 3)``; extrinsics
    ``(N, C, 4, 4)``; keypoints_2d ``(N, C, K, 2)`` px and label_mask ``(N, C, K)`` or None.
    """

    images: torch.Tensor
    intrinsics: torch.Tensor
    extrinsics: torch.Tensor
    keypoints_2d: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, idx: np.ndarray) -> Frames:
        t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return Frames(
            self.images[t], self.intrinsics[t], self.extrinsics[t],
            None if self.keypoints_2d is None else self.keypoints_2d[t],
            None if self.label_mask is None else self.label_mask[t],
        )


def labelled_frames(arrays: Mapping[str, np.ndarray], source: str = "labelled data") -> Frames:
    """The labelled samples of a ``load_arrays`` dict, checked for usable labels.

    Raises:
        ValueError: (naming ``source``) no labelled samples, or no keypoint of any sample
            labelled in at least 2 cameras (nothing can be triangulated).
    """
    rows = np.asarray(arrays.get("label_rows", np.zeros(0, np.int64)), dtype=np.int64)
    if rows.size == 0:
        raise ValueError(f"{source}: has no labelled samples")
    mask = np.asarray(arrays["label_mask"], dtype=bool)
    kp = np.asarray(arrays["keypoints_2d"], dtype=np.float32)
    usable = mask.sum(1) >= 2  # (M, K)
    if not usable.any():
        raise ValueError(
            f"{source}: no keypoint is labelled in >= 2 cameras of any sample; the supervised "
            "loss needs 2D labels from at least 2 cameras to triangulate"
        )
    kp = np.where(mask[..., None], kp, 0.0).astype(np.float32)  # no NaN where unlabelled
    return Frames(
        torch.from_numpy(np.ascontiguousarray(arrays["images"][rows])),
        torch.from_numpy(np.asarray(arrays["intrinsics"][rows], dtype=np.float32)),
        torch.from_numpy(np.asarray(arrays["extrinsics"][rows], dtype=np.float32)),
        torch.from_numpy(kp),
        torch.from_numpy(mask),
    )


def unlabelled_frames(*arrays_list: Mapping[str, np.ndarray] | None,
                      only_unlabelled: Sequence[bool] | None = None) -> Frames | None:
    """Frames for the self-supervised path from several ``load_arrays`` dicts.

    ``only_unlabelled[i]`` keeps only the samples of dict i that carry no labels (used for
    the labelled dataset, whose labelled samples already feed the supervised path).
    """
    imgs, intr, extr = [], [], []
    for i, arrays in enumerate(arrays_list):
        if arrays is None:
            continue
        sel = np.arange(len(arrays["images"]))
        if only_unlabelled is not None and only_unlabelled[i]:
            sel = sel[~np.asarray(arrays["labelled"], dtype=bool)]
        if sel.size == 0:
            continue
        imgs.append(np.asarray(arrays["images"][sel]))
        intr.append(np.asarray(arrays["intrinsics"][sel], dtype=np.float32))
        extr.append(np.asarray(arrays["extrinsics"][sel], dtype=np.float32))
    if not imgs:
        return None
    return Frames(torch.from_numpy(np.concatenate(imgs)), torch.from_numpy(np.concatenate(intr)),
                  torch.from_numpy(np.concatenate(extr)))


# ------------------------------------------------------------------------------ helpers


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """Linear warm-up over ``cfg.warmup`` then cosine decay to ``final_lr_fraction * lr``."""
    if progress < cfg.warmup:
        return cfg.lr * max(progress / cfg.warmup, 0.02)
    t = min(1.0, (progress - cfg.warmup) / max(1e-9, 1.0 - cfg.warmup))
    lo = cfg.final_lr_fraction
    return cfg.lr * (lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t)))


def model_config(cfg: TrainConfig, keypoint_names: Sequence[str], num_cameras: int,
                 image_size: Sequence[int], env_id: str | None) -> dict[str, Any]:
    """The plain config dict stored in checkpoints."""
    return {
        "keypoint_names": list(keypoint_names),
        "num_cameras": int(num_cameras),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "sigma": float(cfg.sigma),
        "stride": int(cfg.stride),
        "channels": list(cfg.channels),
        "res_blocks": int(cfg.res_blocks),
        "res_channels": int(cfg.res_channels),
        "skip": cfg.skip,
        "stem_convs": int(cfg.stem_convs),
        "window_px": cfg.window_px,
        "env_id": env_id,
    }


def _rng_state(np_rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    return {
        "numpy": json.dumps(np_rng.bit_generator.state),
        "torch_aug": gen.get_state(),
        "torch_global": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
    }


def _set_rng_state(state: Mapping[str, Any], np_rng: np.random.Generator,
                   gen: torch.Generator) -> None:
    np_rng.bit_generator.state = json.loads(state["numpy"])
    gen.set_state(state["torch_aug"])
    torch.set_rng_state(state["torch_global"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


# ------------------------------------------------------------------------------ training


def train(
    cfg: TrainConfig,
    labelled: Mapping[str, np.ndarray],
    out: str | os.PathLike[str],
    unlabelled: Mapping[str, np.ndarray] | None = None,
    val: Mapping[str, np.ndarray] | None = None,
    keypoint_names: Sequence[str] | None = None,
    env_id: str | None = None,
    progress_bar: bool = True,
    sources: Mapping[str, str] | None = None,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Train (or resume training) and return a summary dict.

    Args:
        cfg: hyper-parameters.
        labelled: ``load_arrays`` dict with labelled samples (its unlabelled samples join
            the self-supervised pool).
        out: run directory; if it holds ``train_state.pt`` the run resumes from it.
        unlabelled: optional ``load_arrays`` dict for the self-supervised path.
        val: optional ``load_arrays`` dict with labelled samples for validation.
        keypoint_names: K names (default ``kp0..``).
        env_id: stored in the checkpoint config.
        progress_bar: show progress on stderr (a bar in a terminal, else a line a minute).
        sources: names of the datasets for error messages / the summary.
        stop_at_step: stop (and checkpoint) at this step as if interrupted; a later call
            resumes (the learning-rate schedule still follows ``cfg.steps``).
    """
    with torch_threads(cfg.threads):
        return _train(cfg, labelled, out, unlabelled, val, keypoint_names, env_id,
                      progress_bar, sources, stop_at_step)


def _train(cfg: TrainConfig, labelled: Mapping[str, np.ndarray], out: str | os.PathLike[str],
           unlabelled: Mapping[str, np.ndarray] | None, val: Mapping[str, np.ndarray] | None,
           keypoint_names: Sequence[str] | None, env_id: str | None, progress_bar: bool,
           sources: Mapping[str, str] | None, stop_at_step: int | None) -> dict[str, Any]:
    sources = dict(sources or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pt"
    state = None
    if state_path.exists():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"{state_path}: cannot be read to resume from ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); move it away to start the run afresh"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{state_path}: not an s3k training state")
        if state.get("format_version") != STATE_VERSION:
            raise ValueError(f"{state_path}: format_version {state.get('format_version')!r} "
                             f"is not supported (expected {STATE_VERSION})")
        # Budget and bookkeeping may change on resume; the method may not.
        cfg = resume_config(TrainConfig(**json.loads(state["train_config"])), cfg,
                            _RESUME_MAY_CHANGE, out)

    lab = labelled_frames(labelled, sources.get("labelled", "labelled data"))
    unl = unlabelled_frames(labelled, unlabelled, only_unlabelled=[True, False])
    num_cameras, height, width = lab.images.shape[1:4]
    num_kp = lab.keypoints_2d.shape[2]
    names = list(keypoint_names) if keypoint_names else [f"kp{k}" for k in range(num_kp)]
    if len(names) != num_kp:
        raise ValueError(f"keypoint_names has {len(names)} names but the labels have {num_kp}")
    if unl is not None and tuple(unl.images.shape[1:4]) != (num_cameras, height, width):
        raise ValueError(
            f"{sources.get('unlabelled', 'unlabelled data')}: frames are "
            f"{tuple(unl.images.shape[1:4])} (cameras, H, W), the labelled ones "
            f"{(num_cameras, height, width)}"
        )
    mcfg = model_config(cfg, names, num_cameras, (height, width), env_id)
    views = np.asarray(lab.label_mask).reshape(-1, num_kp).sum(axis=0)
    never = [name for name, n in zip(names, views, strict=True) if n == 0]
    if never and not cfg.allow_unlabelled_keypoints:
        raise ValueError(
            f"{sources.get('labelled', 'labelled data')}: keypoint(s) {never} have no labelled "
            f"view in {len(lab)} labelled samples, so nothing would teach the model where they "
            "are (s3k generate warns about this, and names likely causes). Fix the keypoint "
            "(e.g. 'com:NAME' instead of a body origin inside a geom) or pass "
            "--allow-unlabelled-keypoints to train them anyway")
    # Recorded in the checkpoint, so that `s3k evaluate` keeps them out of overall numbers.
    mcfg["unlabelled_keypoints"] = never
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    model = build_model(mcfg)
    div = model.config.divisor
    if height % div or width % div:
        raise ValueError(f"image size {height}x{width} must be a multiple of {div}")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed0 = 0, 0.0
    sup_px_ema: float | None = None
    unsup_on_at: float | None = None
    best = math.inf
    if state is not None:
        payload = validate_checkpoint(state["checkpoint"], state_path)
        for key in ("keypoint_names", "num_cameras", "image_size"):
            if payload["config"][key] != mcfg[key]:
                raise ValueError(
                    f"{state_path}: the run was trained with {key}={payload['config'][key]!r} "
                    f"but the data now has {mcfg[key]!r}; use another --out"
                )
        model.load_state_dict(payload["state_dict"])
        model.to(device)  # before the optimizer state, which follows its parameters
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], np_rng, gen)
        step = int(state["step"])
        elapsed0 = float(state["elapsed_s"])
        sup_px_ema = state["sup_px_ema"]
        unsup_on_at = state["unsup_on_at"]
        best = float(state["best_val_mm"])
        print(f"resuming {out} from step {step} ({elapsed0 / 60:.1f} min done)",
              file=sys.stderr)
    model.to(device)
    atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = RunLog(out, LOG_COLUMNS, step if state is not None else None)
    model.train()
    aug = cfg.augment()
    gate = cfg.gate()
    ubatch = cfg.unlabelled_batch or cfg.batch
    image_size = (height, width)
    sums: dict[str, float] = {}
    last_val: dict[str, Any] = {}
    # The progress display counts whichever limit ends the run first: steps, or seconds.
    loop = TrainingLoop(cfg.steps, cfg.minutes, cfg.clock, step=step, elapsed_s=elapsed0,
                        stop_at_step=stop_at_step, log_every=cfg.log_every,
                        checkpoint_every=cfg.checkpoint_every,
                        val_every=cfg.val_every if val is not None else None,
                        progress_bar=progress_bar, desc="s3k train",
                        time_bar_steps_per_minute=600)

    def save_state() -> None:
        ckpt = checkpoint_dict(model, mcfg)
        atomic_torch_save(
            {
                "format": STATE_FORMAT,
                "format_version": STATE_VERSION,
                "checkpoint": ckpt,
                "optimizer": optimizer.state_dict(),
                "step": loop.step,
                "elapsed_s": loop.elapsed(),
                "rng": _rng_state(np_rng, gen),
                "train_config": json.dumps(cfg.to_dict()),
                "sup_px_ema": sup_px_ema,
                "unsup_on_at": unsup_on_at,
                "best_val_mm": best,
            },
            state_path,
        )
        atomic_torch_save(ckpt, out / "model.pt")

    def validate() -> dict[str, Any]:
        nonlocal best
        if val is None:
            return {}
        metrics, _ = evaluate(model_predict_fn(model, mcfg), val, names, batch=16,
                              max_samples=cfg.val_samples)
        row = {"val_median_mm": metrics["mm"]["median"], "val_p90_mm": metrics["mm"]["p90"],
               "val_mean_mm": metrics["mm"]["mean"], "val_rms_px": metrics["rms_px"]}
        if row["val_median_mm"] < best:
            best = row["val_median_mm"]
            save_checkpoint(out / "best.pt", model, mcfg)
        return row

    with loop:
        while loop.running():
            prog = loop.progress()
            lr = learning_rate(cfg, prog)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # Self-supervised gate (latched once on).
            if (unsup_on_at is None and cfg.alpha > 0 and unl is not None
                    and prog >= cfg.unsup_start and sup_px_ema is not None
                    and sup_px_ema <= cfg.unsup_max_px):
                unsup_on_at = prog
            alpha_t = 0.0
            if unsup_on_at is not None:
                alpha_t = cfg.alpha * min(1.0, (prog - unsup_on_at) / max(cfg.unsup_ramp, 1e-9)
                                          + 1e-3)
            idx = np_rng.choice(len(lab), size=min(cfg.batch, len(lab)), replace=False)
            b = lab.take(idx)
            # Images go to the device before augmentation (the warp is the costly part);
            # random draws and calibration math stay on the CPU (augment.py).
            imgs, intr, extr, kp = augment_views(b.images.to(device), b.intrinsics,
                                                 b.extrinsics, aug, b.keypoints_2d, gen)
            intr, extr, kp = intr.to(device), extr.to(device), kp.to(device)
            label_mask = b.label_mask.to(device)
            n_lab = imgs.shape[0]
            if alpha_t > 0:
                uidx = np_rng.choice(len(unl), size=min(ubatch, len(unl)), replace=False)
                u = unl.take(uidx)
                uimgs, uintr, uextr, _ = augment_views(u.images.to(device), u.intrinsics,
                                                       u.extrinsics, aug, None, gen)
                uintr, uextr = uintr.to(device), uextr.to(device)
                imgs = torch.cat([imgs, uimgs])
            logits = model.forward_views(imgs)
            log_probs = log_spatial_softmax(logits)
            uv_t, w_t = supervised_targets(kp, label_mask, intr, extr, image_size)
            l_sup = heatmap_kl_loss(log_probs[:n_lab], uv_t, w_t, cfg.stride, cfg.sigma)
            l_unsup = torch.zeros((), device=device)
            unsup_frac = float("nan")
            if alpha_t > 0:
                l_unsup, targets = self_supervised_loss(log_probs[n_lab:], uintr, uextr,
                                                        cfg.sigma, cfg.stride, gate)
                unsup_frac = float(targets.weight.mean())
            l2 = l2_nonbias(model)
            loss = total_loss(l_sup, l_unsup, l2, alpha_t, cfg.weight_decay)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            with torch.no_grad():
                probs = log_probs[:n_lab].detach().exp()
                mean, _, _ = windowed_moments(probs, cfg.stride, cfg.window_px or 3 * cfg.sigma)
                err2 = ((mean - uv_t) ** 2).sum(-1)[w_t]
                px = float(err2.mean().sqrt()) if err2.numel() else float("nan")
            if math.isfinite(px):
                sup_px_ema = px if sup_px_ema is None else 0.95 * sup_px_ema + 0.05 * px
            for k, v in (("loss", loss.item()), ("sup", l_sup.item()),
                         ("unsup", l_unsup.item()), ("l2", l2.item()), ("train_px", px),
                         ("unsup_frac", unsup_frac)):
                if math.isfinite(v):
                    sums[k] = sums.get(k, 0.0) + v
                    sums[k + "#"] = sums.get(k + "#", 0.0) + 1
            due = loop.advance()
            if due.validate:
                last_val = validate()
            if due.log or due.validate:
                row: dict[str, Any] = {"step": loop.step, "elapsed_s": loop.elapsed(),
                                       "lr": lr, "alpha": alpha_t}
                for k in ("loss", "sup", "unsup", "l2", "train_px", "unsup_frac"):
                    n = sums.get(k + "#", 0.0)
                    row[k] = sums.get(k, 0.0) / n if n else None
                sums = {}
                if due.validate:
                    row.update(last_val)
                log.write(row)
                val_mm = last_val.get("val_median_mm")
                loop.show(step=loop.step,
                          loss=f"{row['loss']:.3f}" if row["loss"] is not None else "-",
                          px=f"{sup_px_ema:.2f}" if sup_px_ema is not None else "-",
                          val_mm=f"{val_mm:.1f}" if val_mm is not None else None)
            if due.checkpoint:
                save_state()
    if loop.needs_final_validation():
        last_val = validate()
        log.write({"step": loop.step, "elapsed_s": loop.elapsed(), **last_val})
    save_state()
    log.close()
    summary = {
        "steps": loop.step,
        "elapsed_s": loop.elapsed(),
        "steps_per_s": loop.steps_per_s(),
        "clock": cfg.clock,
        "wall_s_this_call": loop.wall_s_this_call(),
        "unsup_on_at_progress": unsup_on_at,
        "train_px_ema": sup_px_ema,
        "num_labelled": len(lab),
        "num_unlabelled": 0 if unl is None else len(unl),
        "best_val_median_mm": best if math.isfinite(best) else None,
        "final_val": last_val,
        "interrupted": loop.interrupted,
        "sources": sources,
        "config": cfg.to_dict(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


# ------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="s3k train",
        description="Train the S3K keypoint model (few labelled + many unlabelled frames).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--labelled", type=Path, required=True, help="dataset dir with labels")
    p.add_argument("--unlabelled", type=Path, default=None, help="dataset dir (labels unused)")
    p.add_argument("--val", type=Path, default=None, help="labelled dataset for validation")
    p.add_argument("--out", type=Path, required=True, help="run directory (resumes if present)")
    p.add_argument("--steps", type=int, default=d.steps,
                   help="maximum optimiser steps (training also stops at --minutes)")
    p.add_argument("--minutes", type=float, default=d.minutes,
                   help="time budget (see --clock); training stops at --steps or after this")
    p.add_argument("--clock", choices=("wall", "cpu"), default=d.clock,
                   help="what --minutes counts: wall-clock time, or this process's CPU time "
                        "summed over its threads (robust to other load on the machine)")
    p.add_argument("--batch", type=int, default=d.batch, help="labelled frames per step")
    p.add_argument("--unlabelled-batch", type=int, default=None,
                   help="unlabelled frames per step (default: --batch)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="weight of L_unsup")
    p.add_argument("--sigma", type=float, default=d.sigma, help="target width, px")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="lambda of the L2 term on non-bias weights")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of initialisation, batch sampling and augmentation")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch CPU threads during the run")
    p.add_argument("--device", default=d.device, choices=None, metavar="DEVICE",
                   help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps; "
                        "checkpoints load on any device")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="steps between checkpoints (a stopped run resumes from the last one)")
    p.add_argument("--val-every", type=int, default=d.val_every,
                   help="steps between evaluations on --val")
    p.add_argument("--val-samples", type=int, default=d.val_samples,
                   help="samples of --val used per evaluation")
    p.add_argument("--log-every", type=int, default=d.log_every,
                   help="steps between rows of RUN/log.csv")
    p.add_argument("--window-px", type=float, default=d.window_px,
                   help="peak window half-width for 2D estimates, px (<= 0: plain mean)")
    g = p.add_argument_group("model")
    g.add_argument("--stride", type=int, default=d.stride, choices=(1, 2, 4),
                   help="image pixels per heatmap pixel")
    g.add_argument("--channels", type=int, nargs="+", default=d.channels,
                   help="U-Net channels per level")
    g.add_argument("--res-blocks", type=int, default=d.res_blocks,
                   help="ResNet blocks at the bottleneck")
    g.add_argument("--skip", choices=("add", "concat"), default=d.skip,
                   help="how U-Net skip connections are merged")
    g.add_argument("--stem-convs", type=int, choices=(1, 2), default=d.stem_convs,
                   help="convolutions of the first (strided) stage")
    g.add_argument("--res-channels", type=int, default=d.res_channels,
                   help="channels inside the ResNet blocks")
    g = p.add_argument_group("augmentation (calibration-consistent)")
    g.add_argument("--aug-color", type=float, default=d.aug_color,
                   help="colour jitter strength (0: off)")
    g.add_argument("--aug-rotate-deg", type=float, default=d.aug_rotate_deg,
                   help="max in-plane roll per view, degrees (intrinsics/extrinsics updated)")
    g.add_argument("--aug-scale", type=float, default=d.aug_scale,
                   help="max relative zoom per view (intrinsics updated)")
    g.add_argument("--aug-shift-px", type=float, default=d.aug_shift_px,
                   help="max image shift per view, px (intrinsics updated)")
    g = p.add_argument_group("self-supervised gating")
    g.add_argument("--unsup-start", type=float, default=d.unsup_start,
                   help="fraction of the run before L_unsup may switch on")
    g.add_argument("--unsup-ramp", type=float, default=d.unsup_ramp,
                   help="fraction of the run over which L_unsup ramps up to --alpha")
    g.add_argument("--unsup-max-px", type=float, default=d.unsup_max_px,
                   help="switch on only once the training-label RMS error (px) is below this")
    g.add_argument("--unsup-min-confidence", type=float, default=d.unsup_min_confidence,
                   help="minimum Appendix-B confidence of a view to count as confident")
    g.add_argument("--unsup-min-peak-mass", type=float, default=d.unsup_min_peak_mass,
                   help="minimum heatmap mass in the peak window (unimodal view)")
    g.add_argument("--unsup-max-residual-px", type=float, default=d.unsup_max_residual_px,
                   help="maximum reprojection residual of agreeing views, px")
    g.add_argument("--unsup-min-views", type=int, default=d.unsup_min_views,
                   help="confident, consistent views a keypoint needs for L_unsup")
    g.add_argument("--unsup-target-views", choices=("all", "confident"),
                   default=d.unsup_target_views,
                   help="views that receive the self-supervised target")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--allow-unlabelled-keypoints", action="store_true",
                   help="train even if a keypoint has no labelled view (it is recorded in the "
                        "checkpoint and left out of `s3k evaluate`'s overall numbers)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``s3k train`` arguments."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if values.get("window_px") is not None and values["window_px"] <= 0:
        values["window_px"] = None
    return TrainConfig(**values)


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``s3k train`` entry point; returns the run summary."""
    args = build_parser().parse_args(argv)
    from s3k_envs.keypoints.dataset import load_arrays

    cfg = config_from_args(args)
    labelled = load_arrays(args.labelled)
    unlabelled = load_arrays(args.unlabelled) if args.unlabelled else None
    val = load_arrays(args.val) if args.val else None
    man = _manifest(args.labelled)
    if args.val is not None:
        names, val_names = man.get("keypoint_names"), _manifest(args.val).get("keypoint_names")
        if names and val_names and list(names) != list(val_names):
            raise ValueError(f"{args.val}: keypoints {val_names} differ from those of "
                             f"{args.labelled}: {names}")
    summary = train(
        cfg, labelled, args.out, unlabelled=unlabelled, val=val,
        keypoint_names=man.get("keypoint_names"), env_id=man.get("env_id"),
        progress_bar=not args.no_progress,
        sources={"labelled": str(args.labelled), "unlabelled": str(args.unlabelled or ""),
                 "val": str(args.val or "")},
    )
    print(f"{summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} min "
          f"({summary['steps_per_s']:.2f} steps/s); weights in {args.out / 'model.pt'}")
    if summary["final_val"]:
        print(f"validation: median {summary['final_val']['val_median_mm']:.1f} mm, "
              f"RMS {summary['final_val']['val_rms_px']:.2f} px")
    return summary


if __name__ == "__main__":
    main()
