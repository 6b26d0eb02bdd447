"""Frames for the beta-VAE: the images of ``s3k generate`` datasets, resized; evaluation
of a VAE on them (loss terms, active latents) and reconstruction grids."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.beta_vae.model import ACTIVE_VARIANCE, BetaVAE, PathLike, active_units, resize_views


# ------------------------------------------------------------------------------ data
@dataclass
class FrameSet:
    """Frames of one or more datasets, resized for a VAE.

    Attributes:
        images: ``(N, C, S, S, 3)`` uint8.
        num_cameras: C. source_size: ``[H, W]`` of the stored images.
        env_id: the datasets' env. keypoint_names: their K keypoint names.
    """

    images: torch.Tensor
    num_cameras: int
    source_size: list[int]
    env_id: str | None
    keypoint_names: list[str]


def dataset_dirs(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """One dataset directory or several, as a non-empty list of paths."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    dirs = [Path(p) for p in paths]
    if not dirs:
        raise ValueError("expected at least one dataset directory, got none")
    return dirs


def check_same_setup(manifests: Sequence[tuple[Path, Mapping[str, Any]]]) -> None:
    """Raise ValueError unless the ``(directory, manifest)`` pairs share env, camera count,
    image size and keypoint names."""
    first_dir, first = manifests[0]
    for d, m in manifests[1:]:
        for key in ("env_id", "num_cameras", "image_size", "keypoint_names"):
            if m[key] != first[key]:
                raise ValueError(f"{d}: {key} is {m[key]!r} but {first_dir} has "
                                 f"{first[key]!r}; give datasets of one env and camera setup")


def load_frames(paths: PathLike | Sequence[PathLike], image_size: int) -> FrameSet:
    """Every frame (labelled or not) of ``s3k generate`` datasets, resized to ``image_size``.

    Shards are read one at a time (memory-mapped) and resized in chunks, so only the resized
    frames are held in memory: ``N x C x S x S x 3`` bytes.

    Args:
        paths: one dataset directory or several (same env, cameras and image size).
        image_size: S in pixels.

    Raises:
        DatasetError: a missing, incomplete or inconsistent dataset (naming the file).
        ValueError: datasets of different envs / camera setups.
    """
    from s3k_envs.keypoints.dataset import read_manifest, read_npz, validate_shard

    dirs = dataset_dirs(paths)
    manifests = [(d, read_manifest(d)) for d in dirs]
    check_same_setup(manifests)
    parts = []
    for d, manifest in manifests:
        for entry in manifest["shards"]:
            path = d / entry["file"]
            arrays = read_npz(path)
            validate_shard(path, arrays, entry, manifest)
            parts.append(resize_views(arrays["images"], image_size))
            del arrays
    first = manifests[0][1]
    return FrameSet(torch.cat(parts), int(first["num_cameras"]),
                    [int(v) for v in first["image_size"]], first.get("env_id"),
                    list(first["keypoint_names"]))


@torch.no_grad()
def evaluate_frames(vae: BetaVAE, images: np.ndarray | torch.Tensor, batch: int = 64
                    ) -> dict[str, Any]:
    """Loss terms of frames with ``z = mu`` (deterministic), in eval mode.

    Args:
        vae: the model (its train/eval mode is restored).
        images: ``(N, C, H, W, 3)`` uint8.
        batch: frames per forward pass.

    Returns:
        ``recon`` and ``kl`` (nats per frame), ``loss = recon + kl``, ``kl_per_dim`` (D floats),
        ``mu_variance`` (D floats: variance of each latent mean over the frames),
        ``active_units`` (dims with KL > :data:`ACTIVE_KL_NATS`) and ``active_units_variance``
        (dims with ``mu_variance`` > :data:`ACTIVE_VARIANCE`).
    """
    was_training = vae.training
    vae.eval()
    try:
        n = len(images)
        if n == 0:
            raise ValueError("images: expected at least one frame, got none")
        recon = kl = 0.0
        kl_dim = torch.zeros(vae.config.latent_dim, dtype=torch.float64)
        mus = []
        for i in range(0, n, batch):
            x = images[i:i + batch]
            out = vae(x, sample=False)
            terms = vae.loss(x, out)
            m = out.mu.shape[0]
            recon += float(terms.recon) * m
            kl += float(terms.kl) * m
            kl_dim += terms.kl_per_dim.double().cpu() * m
            mus.append(out.mu.double().cpu())
        mu = torch.cat(mus)
        var = mu.var(0, unbiased=False).numpy()
        kl_dim = (kl_dim / n).numpy()
        return {"recon": recon / n, "kl": kl / n, "loss": (recon + kl) / n,
                "kl_per_dim": kl_dim.tolist(), "mu_variance": var.tolist(),
                "active_units": active_units(kl_dim),
                "active_units_variance": int((var > ACTIVE_VARIANCE).sum())}
    finally:
        vae.train(was_training)


def reconstruction_grid(vae: BetaVAE, images: np.ndarray | torch.Tensor, scale: int = 2
                        ) -> np.ndarray:
    """An image of input views above their reconstructions.

    For each of the n frames: one row with its C input views (resized to S), then one row
    with the C views decoded from the posterior mean; tiles are enlarged ``scale`` times
    (nearest neighbour), frames separated by a wider white border.

    Args:
        vae: the model.
        images: ``(n, C, H, W, 3)`` uint8.
        scale: integer enlargement of every tile.

    Returns:
        ``(rows, cols, 3)`` uint8 RGB.
    """
    from s3k_envs.viz import mosaic

    was_training = vae.training
    vae.eval()
    try:
        inputs = vae.prepare(images).cpu().numpy()
        recs = vae.reconstruct(images).numpy()
    finally:
        vae.train(was_training)
    if scale > 1:
        inputs = inputs.repeat(scale, axis=2).repeat(scale, axis=3)
        recs = recs.repeat(scale, axis=2).repeat(scale, axis=3)
    c = inputs.shape[1]
    blocks = [mosaic(np.concatenate([inp, rec]), cols=c) for inp, rec in zip(inputs, recs,
                                                                              strict=True)]
    return mosaic(np.stack(blocks), cols=1, border=6)


def save_reconstructions(vae: BetaVAE, images: np.ndarray | torch.Tensor, path: PathLike,
                         scale: int = 2) -> Path:
    """Write :func:`reconstruction_grid` of ``(n, C, H, W, 3)`` uint8 frames as a PNG."""
    from s3k_envs.viz import write_png

    return write_png(reconstruction_grid(vae, images, scale), path)
