"""Training the dense descriptor network without labels, on same-instant view pairs.

Each step draws ``pairs_per_step`` scenes, in each an ordered pair of distinct cameras
(A, B), and up to ``matches_per_pair`` correspondences from A's object pixels to B
(:func:`~s3k_envs.descriptors.correspondences.find_correspondences`: depth + calibration +
occlusion check), runs all 2 x pairs images through the network in one batch and minimises
:func:`~s3k_envs.descriptors.losses.correspondence_loss` with Adam.

The run stops when the process's **CPU time** spent in training (summed over resumed runs)
reaches ``budget_s``, or after ``max_steps``. A checkpoint with the optimizer state is
written atomically every ``checkpoint_every`` steps and at the end; calling :func:`train`
again with the same path resumes from it (same config required). Step ``i`` draws its pairs
from ``numpy.random.default_rng([seed, i])``, so a resumed run sees the same data as an
uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s3k_envs.descriptors.correspondences import find_correspondences
from s3k_envs.descriptors.losses import LossWeights, correspondence_loss
from s3k_envs.descriptors.model import DescriptorNet, load_checkpoint, save_checkpoint
from s3k_envs.descriptors.scenes import SceneSet


@dataclass
class TrainConfig:
    """Hyper-parameters of a descriptor run (stored in the checkpoint as plain values).

    Attributes:
        descriptor_dim: D, descriptor channels (the original uses 3).
        channels, stride, res_blocks: U-Net shape (see :class:`~s3k_envs.keypoints.model.
            ModelConfig`).
        kernel_width: ``tau`` of the match kernel ``exp(-|d - q|^2 / tau^2)``.
        sigma: heatmap target width, px. w_heatmap, w_spatial (per px), w_depth (per m):
            loss weights.
        lr, weight_decay: Adam.
        pairs_per_step: view pairs per step; matches_per_pair: correspondences per pair.
        budget_s: CPU seconds of training (over all resumed runs). max_steps: step limit.
        checkpoint_every: steps between checkpoints.
        seed: initialisation and data draw.
        occlusion_tolerance: m, of the correspondence occlusion check.
    """

    descriptor_dim: int = 6
    channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32])
    stride: int = 2
    res_blocks: int = 1
    kernel_width: float = 1.0
    sigma: float = 2.0
    w_heatmap: float = 1.0
    w_spatial: float = 0.05
    w_depth: float = 5.0
    lr: float = 2e-3
    weight_decay: float = 0.0
    pairs_per_step: int = 4
    matches_per_pair: int = 64
    budget_s: float = 300.0
    max_steps: int = 100_000
    checkpoint_every: int = 100
    seed: int = 0
    occlusion_tolerance: float = 0.004

    def __post_init__(self) -> None:
        if not 1 <= self.descriptor_dim <= 64:
            raise ValueError(f"descriptor_dim: expected 1..64, got {self.descriptor_dim}")
        for name in ("kernel_width", "sigma", "lr", "budget_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("pairs_per_step", "matches_per_pair", "max_steps", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def model_config(self, image_size: tuple[int, int]) -> dict[str, Any]:
        """The plain config dict stored in checkpoints."""
        return {**asdict(self), "image_size": list(image_size)}

    def loss_weights(self) -> LossWeights:
        return LossWeights(sigma=self.sigma, heatmap=self.w_heatmap, spatial=self.w_spatial,
                           depth=self.w_depth)


#: Config keys that must agree between a checkpoint and the run that resumes it.
_ARCH_KEYS = ("descriptor_dim", "channels", "stride", "res_blocks", "image_size")


@dataclass
class PairBatch:
    """Tensors of one step: ``images_a/images_b (N, H, W, 3)`` uint8, ``uv_a/uv_b (N, M, 2)``
    px, ``z_b (N, M)`` m, ``valid (N, M)`` bool, ``depth_b (N, H, W)`` m."""

    images_a: torch.Tensor
    images_b: torch.Tensor
    uv_a: torch.Tensor
    uv_b: torch.Tensor
    z_b: torch.Tensor
    valid: torch.Tensor
    depth_b: torch.Tensor


def sample_pairs(scenes: SceneSet, num_pairs: int, matches: int, rng: np.random.Generator,
                 occlusion_tolerance: float = 0.004, min_matches: int = 4) -> PairBatch:
    """Draw ``num_pairs`` (scene, camera A, camera B) pairs with at least ``min_matches``
    correspondences each and up to ``matches`` of them (padded, see ``valid``).

    Raises:
        ValueError: fewer than 2 cameras, or no pair with enough matches in 50 draws per
            requested pair (the object is not seen by two cameras in these scenes).
    """
    if scenes.num_cameras < 2:
        raise ValueError(f"descriptor training needs >= 2 cameras per scene, got "
                         f"{scenes.num_cameras}")
    h, w = scenes.image_size
    rows: list[tuple[int, int, int, Any]] = []
    tries = 0
    while len(rows) < num_pairs:
        tries += 1
        if tries > 50 * num_pairs:
            raise ValueError(f"found only {len(rows)} of {num_pairs} view pairs with >= "
                             f"{min_matches} object correspondences in {tries - 1} draws; do "
                             "the scenes show the object in at least two cameras?")
        s = int(rng.integers(len(scenes)))
        a, b = (int(v) for v in rng.choice(scenes.num_cameras, size=2, replace=False))
        corr = find_correspondences(
            scenes.depth[s, a], scenes.masks[s, a], scenes.intrinsics[s, a],
            scenes.extrinsics[s, a], scenes.depth[s, b], scenes.intrinsics[s, b],
            scenes.extrinsics[s, b], num=matches, rng=rng, tolerance=occlusion_tolerance)
        if len(corr) >= min_matches:
            rows.append((s, a, b, corr))
    uv_a = np.zeros((num_pairs, matches, 2), np.float32)
    uv_b = np.zeros((num_pairs, matches, 2), np.float32)
    z_b = np.zeros((num_pairs, matches), np.float32)
    valid = np.zeros((num_pairs, matches), bool)
    for i, (_, _, _, corr) in enumerate(rows):
        n = len(corr)
        uv_a[i, :n], uv_b[i, :n], z_b[i, :n], valid[i, :n] = corr.uv_a, corr.uv_b, \
            corr.depth_b, True
    s_idx = np.array([r[0] for r in rows])
    a_idx = np.array([r[1] for r in rows])
    b_idx = np.array([r[2] for r in rows])
    return PairBatch(
        torch.from_numpy(scenes.images[s_idx, a_idx]),
        torch.from_numpy(scenes.images[s_idx, b_idx]),
        torch.from_numpy(uv_a), torch.from_numpy(uv_b), torch.from_numpy(z_b),
        torch.from_numpy(valid), torch.from_numpy(scenes.depth[s_idx, b_idx].reshape(-1, h, w)))


def pair_loss(model: DescriptorNet, batch: PairBatch, config: TrainConfig,
              image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The loss terms of one batch (one forward pass over both views of every pair)."""
    n = batch.images_a.shape[0]
    maps = model(torch.cat([batch.images_a, batch.images_b]))
    return correspondence_loss(maps[:n], maps[n:], batch.uv_a, batch.uv_b, batch.z_b,
                               batch.depth_b, batch.valid, image_size, config.stride,
                               config.kernel_width, config.loss_weights())


@torch.no_grad()
def matching_error(model: DescriptorNet, scenes: SceneSet, num_pairs: int = 16,
                   matches: int = 64, seed: int = 12345, kernel_width: float = 1.0
                   ) -> dict[str, float]:
    """How well descriptors find their match in the other view (held-out scenes).

    For ``num_pairs`` random view pairs, each A-descriptor's best match in B is taken as the
    highest cell of its heatmap (argmax, refined by nothing) and as the spatial expectation;
    errors are distances to the true match, px.

    Returns:
        ``{"median_px": argmax median, "within_3px": fraction of argmax errors <= 3 px,
        "expectation_median_px": median of the spatial-expectation error}``.
    """
    from s3k_envs.descriptors.model import descriptor_logits, sample_descriptors
    from s3k_envs.keypoints.heatmaps import heatmap_moments, peak_cell_centre, spatial_softmax

    was_training = model.training
    model.eval()
    try:
        batch = sample_pairs(scenes, num_pairs, matches, np.random.default_rng(seed))
        n = batch.images_a.shape[0]
        maps = model(torch.cat([batch.images_a, batch.images_b]))
        queries = sample_descriptors(maps[:n], batch.uv_a, scenes.image_size)
        logits = descriptor_logits(maps[n:], queries, kernel_width)
        probs = spatial_softmax(logits)
        peak = peak_cell_centre(probs, model.stride)
        mean, _ = heatmap_moments(probs, model.stride)
        valid = batch.valid
        err_peak = (peak - batch.uv_b).norm(dim=-1)[valid].numpy()
        err_mean = (mean - batch.uv_b).norm(dim=-1)[valid].numpy()
    finally:
        model.train(was_training)
    return {"median_px": float(np.median(err_peak)),
            "within_3px": float(np.mean(err_peak <= 3.0)),
            "expectation_median_px": float(np.median(err_mean))}


def train(scenes: SceneSet, config: TrainConfig, checkpoint: str | os.PathLike[str],
          resume: bool = True, log: Callable[[str], None] | None = print,
          log_every: int = 50) -> dict[str, Any]:
    """Train (or resume training) a descriptor network on ``scenes``.

    Args:
        scenes: training scenes (depth + masks + calibration).
        config: hyper-parameters; ``budget_s`` CPU seconds over all runs of this checkpoint.
        checkpoint: where the checkpoint is written (and resumed from if it exists and
            ``resume``).
        resume: continue an existing checkpoint (its architecture must match ``config``).
        log: callable for progress lines (None: silent). log_every: steps between lines.

    Returns:
        ``{"steps": total steps, "cpu_s": total CPU seconds, "history": [(step, cpu_s,
        total, heatmap, spatial_px, depth_m), ...] of this run, "checkpoint": path}``.

    Raises:
        ValueError: image size not a multiple of the network's divisor, or a checkpoint
            to resume whose architecture differs from ``config``.
    """
    checkpoint = Path(checkpoint)
    image_size = scenes.image_size
    model_cfg = config.model_config(image_size)
    torch.manual_seed(config.seed)
    model = DescriptorNet(model_cfg)
    if image_size[0] % model.divisor or image_size[1] % model.divisor:
        raise ValueError(f"scene images are {image_size[0]}x{image_size[1]} px; the network "
                         f"needs multiples of {model.divisor}")
    optim = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, cpu_total = 0, 0.0
    if resume and checkpoint.is_file():
        payload = load_checkpoint(checkpoint)
        old = payload["config"]
        diff = {k: (old.get(k), model_cfg[k]) for k in _ARCH_KEYS if old.get(k) != model_cfg[k]}
        if diff:
            raise ValueError(f"{checkpoint}: cannot resume, its architecture differs from the "
                             f"config (key: (checkpoint, config)) {diff}; pass resume=False or "
                             "another path")
        model.load_state_dict(payload["model"].state_dict())
        state = payload.get("train_state") or {}
        if "optimizer" in state:
            optim.load_state_dict(state["optimizer"])
        step, cpu_total = int(state.get("step", 0)), float(state.get("cpu_s", 0.0))
        if log:
            log(f"resuming {checkpoint} at step {step} ({cpu_total:.0f} CPU s)")
    model.train()
    history: list[tuple[float, ...]] = []
    start_cpu = time.process_time()

    def save() -> None:
        state = {"optimizer": optim.state_dict(), "step": step,
                 "cpu_s": cpu_total + time.process_time() - start_cpu}
        save_checkpoint(checkpoint, model, model_cfg, references=None, train_state=state)

    while step < config.max_steps and cpu_total + time.process_time() - start_cpu < config.budget_s:
        rng = np.random.default_rng([config.seed, step])
        batch = sample_pairs(scenes, config.pairs_per_step, config.matches_per_pair, rng,
                             config.occlusion_tolerance)
        terms = pair_loss(model, batch, config, image_size)
        loss = terms["total"]
        values = [float(terms[k].detach()) for k in ("total", "heatmap", "spatial", "depth")]
        if not math.isfinite(values[0]):
            raise FloatingPointError(f"descriptor loss is {values[0]} at step {step}; lower lr "
                                     "or check the scenes")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        step += 1
        cpu = cpu_total + time.process_time() - start_cpu
        history.append((step, cpu, *values))
        if log and (step % log_every == 0 or step == 1):
            log(f"step {step:6d}  cpu {cpu:7.1f} s  loss {values[0]:.4f}  heatmap "
                f"{values[1]:.4f}  spatial {values[2]:.2f} px  depth {values[3] * 1000:.1f} mm")
        if step % config.checkpoint_every == 0:
            save()
    save()
    model.eval()
    return {"steps": step, "cpu_s": cpu_total + time.process_time() - start_cpu,
            "history": history, "checkpoint": str(checkpoint), "model": model}
