"""Training (and resuming) a beta-VAE on the images of dataset directories within a step
and time budget (:class:`s3k_envs.training.TrainingLoop`)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.beta_vae.frames import dataset_dirs, evaluate_frames, load_frames, save_reconstructions
from agents.beta_vae.model import (
    STATE_FORMAT,
    STATE_VERSION,
    BetaVAE,
    PathLike,
    VAECheckpointError,
    VAEConfig,
    active_units,
    checkpoint_payload,
    read_torch_file,
    save_vae,
    vae_from_payload,
)
from s3k_envs.atomic import atomic_write_text
from s3k_envs.device import resolve_device, torch_threads
from s3k_envs.keypoints.model import atomic_torch_save
from s3k_envs.training import RunLog, TrainingLoop, resume_config

#: Settings that may differ when a run resumes (budget and bookkeeping, not the method).
_RESUME_MAY_CHANGE = ("steps", "minutes", "clock", "checkpoint_every", "log_every",
                      "val_every", "threads", "recon_samples", "device")
_LOG_BASE = ("step", "elapsed_s", "lr", "loss", "recon", "kl", "beta", "capacity",
             "active_units",
             "val_loss", "val_recon", "val_kl", "val_active_units")


# ------------------------------------------------------------------------------ training
@dataclass
class VAETrainConfig:
    """Hyper-parameters of a beta-VAE run (stored in ``train_config.json`` and the state).

    Attributes:
        steps: maximum optimizer steps. minutes: time budget (None: none), counted on
            ``clock``: ``"cpu"`` (this process's CPU seconds over all threads, robust to
            other load) or ``"wall"``.
        batch: frames (of C views each) per step. lr: Adam learning rate, with a linear
            warm-up over ``warmup`` of the run and a cosine decay to ``final_lr_fraction``.
        beta: KL weight. capacity: None, or the final target KL C in nats for capacity
            annealing (``recon + beta |KL - C(t)|``), reached linearly at
            ``capacity_fraction`` of the run.
        beta_warmup: fraction of the run over which the KL weight ramps linearly from 0 to
            ``beta`` (KL annealing, Bowman et al. 2016); 0 = ``beta`` from the start. It
            gives the encoder a head start before the decoder has learnt the mean image.
        seed: initialisation, batch order and ``eps``. threads: torch CPU threads.
        checkpoint_every, log_every, val_every: steps between checkpoints / log rows /
            validation. val_fraction: frames held out for validation (none if that leaves
            fewer than 1). recon_samples: frames in ``recon.png``.
        image_size, latent_dim, channels, view_features, hidden, likelihood, gaussian_sigma:
            the architecture (:class:`VAEConfig`).
    """

    steps: int = 1_000_000
    minutes: float | None = None
    clock: str = "cpu"
    batch: int = 32
    lr: float = 1e-3
    warmup: float = 0.01
    final_lr_fraction: float = 0.1
    beta: float = 1.0
    capacity: float | None = None
    capacity_fraction: float = 0.5
    beta_warmup: float = 0.1
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 20
    val_every: int = 200
    val_fraction: float = 0.05
    recon_samples: int = 4
    image_size: int = 64
    latent_dim: int = 10
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    view_features: int = 128
    hidden: int = 256
    likelihood: str = "gaussian"
    gaussian_sigma: float = 0.1

    def __post_init__(self) -> None:
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"clock: expected 'wall' or 'cpu', got {self.clock!r}")
        for name in ("steps", "batch", "threads", "checkpoint_every", "log_every", "val_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes: expected > 0 or None, got {self.minutes!r}")
        for name in ("lr", "beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")
        if self.capacity is not None and not (math.isfinite(self.capacity)
                                              and self.capacity >= 0):
            raise ValueError(f"capacity: expected None or nats >= 0, got {self.capacity!r}")
        if not 0 < self.capacity_fraction <= 1:
            raise ValueError(f"capacity_fraction: expected in (0, 1], got "
                             f"{self.capacity_fraction!r}")
        if not 0 <= self.beta_warmup <= 1:
            raise ValueError(f"beta_warmup: expected in [0, 1], got {self.beta_warmup!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction: expected in [0, 1), got {self.val_fraction!r}")
        self.channels = [int(c) for c in self.channels]

    def model_config(self, num_cameras: int, source_size: Sequence[int],
                     env_id: str | None) -> VAEConfig:
        """The :class:`VAEConfig` of this run for data of the given layout."""
        return VAEConfig(num_cameras=num_cameras, source_size=list(source_size),
                         image_size=self.image_size, latent_dim=self.latent_dim,
                         channels=list(self.channels), view_features=self.view_features,
                         hidden=self.hidden, likelihood=self.likelihood,
                         gaussian_sigma=self.gaussian_sigma, env_id=env_id)

    def learning_rate(self, progress: float) -> float:
        """Learning rate at ``progress`` in [0, 1] of the run."""
        if progress < self.warmup:
            return self.lr * max(progress / self.warmup, 0.02)
        t = min(1.0, (progress - self.warmup) / max(1e-9, 1.0 - self.warmup))
        lo = self.final_lr_fraction
        return self.lr * (lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t)))

    def beta_at(self, progress: float) -> float:
        """KL weight at ``progress`` in [0, 1] of the run (see ``beta_warmup``)."""
        if self.beta_warmup <= 0:
            return self.beta
        return self.beta * min(1.0, progress / self.beta_warmup)

    def capacity_at(self, progress: float) -> float | None:
        """Target KL (nats) at ``progress``; None without capacity annealing."""
        if self.capacity is None:
            return None
        return self.capacity * min(1.0, progress / self.capacity_fraction)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` frame indices: a seeded shuffle, ``floor(n * val_fraction)`` held out
    (none when that is 0 or would leave fewer than 2 training frames)."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    n_val = int(n * val_fraction)
    if n - n_val < 2:
        n_val = 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _load_state(path: Path) -> dict[str, Any]:
    state = read_torch_file(path, "beta-VAE training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise VAECheckpointError(f"{path}: not a beta-VAE training state (expected format "
                                 f"{STATE_FORMAT!r}); move it away to start afresh")
    if state.get("format_version") != STATE_VERSION:
        raise VAECheckpointError(f"{path}: format_version {state.get('format_version')!r} is "
                                 f"not supported (expected {STATE_VERSION})")
    return state


def train_vae(
    train_dir: PathLike | Sequence[PathLike],
    out: PathLike,
    minutes: float | None = None,
    clock: str = "cpu",
    beta: float = 1.0,
    capacity: float | None = None,
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    image_size: int = 64,
    *,
    progress_bar: bool = True,
    stop_at_step: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train (or resume) a beta-VAE on the images of dataset directories; see
    :class:`VAETrainConfig` for every option.

    Args:
        train_dir: one ``s3k generate`` dataset directory or several (all frames are used,
            labels are ignored).
        out: run directory; if it holds ``train_state.pt`` the run resumes from it (budget
            and bookkeeping options may change, the method may not: the saved values win).
        minutes: time budget on ``clock`` (``"cpu"`` or ``"wall"``); None = ``steps`` only.
        beta: KL weight. capacity: final target KL (nats) for capacity annealing, or None.
        batch: frames per step. lr: Adam learning rate. seed: run seed.
        threads: torch CPU threads during the run (restored afterwards). image_size: S,
            pixels. (``device="auto"`` in ``options``: CUDA, then MPS, then CPU.)
        progress_bar: show progress on stderr (a bar in a terminal, else a line a minute).
        stop_at_step: stop (and checkpoint) at this step as if interrupted; a later call
            resumes it.
        **options: further :class:`VAETrainConfig` fields (``steps``, ``latent_dim``,
            ``checkpoint_every``, ``capacity_fraction``, ``likelihood``, ...).

    Returns:
        The summary dict also written to ``out/summary.json``: steps, elapsed seconds,
        steps/s, the final training and validation terms (nats per frame), per-dimension KL,
        active units, the files written.

    Raises:
        TypeError: an unknown option. ValueError: bad values, datasets that disagree, or a
        run directory whose model does not fit the data. VAECheckpointError: an unreadable
        ``train_state.pt``. FloatingPointError: the loss became NaN or infinite.
    """
    names = {f.name for f in dataclasses.fields(VAETrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"train_vae: unknown option(s) {unknown}; valid: {sorted(names)}")
    cfg = VAETrainConfig(minutes=minutes, clock=clock, beta=beta, capacity=capacity,
                         batch=batch, lr=lr, seed=seed, threads=threads,
                         image_size=image_size, **options)
    return _train(cfg, train_dir, Path(out), progress_bar, stop_at_step)


def _train(cfg: VAETrainConfig, train_dir: PathLike | Sequence[PathLike], out: Path,
           progress_bar: bool, stop_at_step: int | None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pt"
    state = _load_state(state_path) if state_path.exists() else None
    if state is not None:
        cfg = resume_config(VAETrainConfig(**json.loads(state["train_config"])), cfg,
                            _RESUME_MAY_CHANGE, out)
    with torch_threads(max(1, int(cfg.threads))):
        return _train_loop(cfg, train_dir, out, state, state_path, progress_bar, stop_at_step)


def _train_loop(cfg: VAETrainConfig, train_dir: PathLike | Sequence[PathLike], out: Path,
                state: dict[str, Any] | None, state_path: Path, progress_bar: bool,
                stop_at_step: int | None) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    dirs = dataset_dirs(train_dir)
    frames = load_frames(dirs, cfg.image_size)
    n = len(frames.images)
    train_idx, val_idx = split_indices(n, cfg.val_fraction, cfg.seed)
    mcfg = cfg.model_config(frames.num_cameras, frames.source_size, frames.env_id)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    vae = BetaVAE(mcfg)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed0, best = 0, 0.0, math.inf
    if state is not None:
        payload = state["checkpoint"]
        old = payload.get("config", {}) if isinstance(payload, dict) else {}
        for key in ("num_cameras", "source_size", "image_size"):
            if old.get(key) != mcfg.to_dict()[key]:
                raise ValueError(f"{state_path}: the run was trained with {key}="
                                 f"{old.get(key)!r} but the data now gives "
                                 f"{mcfg.to_dict()[key]!r}; use another --out")
        if int(state["num_frames"]) != n:
            raise ValueError(f"{state_path}: the run was trained on {state['num_frames']} "
                             f"frames, the data now has {n}; use the same datasets or "
                             "another --out")
        vae.load_state_dict(vae_from_payload(payload, state_path).state_dict())
        vae.to(device)  # before the optimizer state, which follows its parameters
        optimizer.load_state_dict(state["optimizer"])
        np_rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        gen.set_state(state["rng"]["torch"])
        torch.set_rng_state(state["rng"]["torch_global"])
        step, elapsed0 = int(state["step"]), float(state["elapsed_s"])
        best = float(state["best_val_loss"])
        print(f"resuming {out} from step {step} ({elapsed0 / 60:.1f} min done)",
              file=sys.stderr)
    vae.to(device)
    atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    columns = [*_LOG_BASE, *(f"kl_{d}" for d in range(cfg.latent_dim))]
    log = RunLog(out, columns, step if state is not None else None)
    vae.train()
    train_images, val_images = frames.images[train_idx], frames.images[val_idx]
    sums: dict[str, float] = {}
    kl_sum = np.zeros(cfg.latent_dim)
    count = 0
    last: dict[str, Any] = {}
    last_val: dict[str, Any] = {}

    loop = TrainingLoop(cfg.steps, cfg.minutes, cfg.clock, step=step, elapsed_s=elapsed0,
                        stop_at_step=stop_at_step, log_every=cfg.log_every,
                        checkpoint_every=cfg.checkpoint_every, val_every=cfg.val_every,
                        progress_bar=progress_bar, desc="beta-VAE",
                        time_bar_steps_per_minute=300)

    def save_state() -> None:
        payload = checkpoint_payload(vae)
        atomic_torch_save({
            "format": STATE_FORMAT, "format_version": STATE_VERSION,
            "checkpoint": payload, "optimizer": optimizer.state_dict(), "step": loop.step,
            "elapsed_s": loop.elapsed(), "num_frames": n, "best_val_loss": best,
            "rng": {"numpy": json.dumps(np_rng.bit_generator.state), "torch": gen.get_state(),
                    "torch_global": torch.get_rng_state()},
            "train_config": json.dumps(cfg.to_dict()),
        }, state_path)
        atomic_torch_save(payload, out / "model.pt")

    def validate() -> dict[str, Any]:
        nonlocal best
        if len(val_images) == 0:
            return {}
        m = evaluate_frames(vae, val_images)
        if m["loss"] < best:
            best = m["loss"]
            save_vae(out / "best.pt", vae)
        return {"val_loss": m["loss"], "val_recon": m["recon"], "val_kl": m["kl"],
                "val_active_units": m["active_units"]}

    with loop:
        while loop.running():
            prog = loop.progress()
            lr = cfg.learning_rate(prog)
            for group in optimizer.param_groups:
                group["lr"] = lr
            cap = cfg.capacity_at(prog)
            beta_t = cfg.beta_at(prog)
            idx = np_rng.choice(len(train_images), size=min(cfg.batch, len(train_images)),
                                replace=False)
            x = train_images[torch.from_numpy(np.sort(idx))]
            output = vae(x, sample=True, generator=gen)
            terms = vae.loss(x, output, beta_t, cap)
            if not torch.isfinite(terms.total.detach()):
                raise FloatingPointError(
                    f"beta-VAE loss is {float(terms.total.detach())} at step {loop.step} (recon "
                    f"{float(terms.recon.detach())}, KL {float(terms.kl.detach())}); lower "
                    f"--lr, or resume from the last checkpoint in {out}")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            for k, v in (("loss", terms.total), ("recon", terms.recon), ("kl", terms.kl)):
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            kl_sum += terms.kl_per_dim.detach().double().numpy()
            count += 1
            due = loop.advance()
            if due.validate:
                last_val = validate()
            if due.log or due.validate:
                kl_dims = kl_sum / max(count, 1)
                last = {"step": loop.step, "elapsed_s": loop.elapsed(), "lr": lr, "beta": beta_t,
                        "capacity": cap,
                        **{k: v / max(count, 1) for k, v in sums.items()},
                        "active_units": active_units(kl_dims),
                        **{f"kl_{d}": float(v) for d, v in enumerate(kl_dims)}}
                if due.validate:
                    last.update(last_val)
                log.write(last)
                sums, kl_sum, count = {}, np.zeros(cfg.latent_dim), 0
                loop.show(loss=f"{last['loss']:.1f}", kl=f"{last['kl']:.1f}",
                          au=last["active_units"])
            if due.checkpoint:
                save_state()
    finished = not loop.interrupted and (stop_at_step is None or loop.step < stop_at_step)
    if loop.needs_final_validation():
        last_val = validate()
        log.write({"step": loop.step, "elapsed_s": loop.elapsed(), **last_val})
    save_state()
    log.close()
    files = {"model": str(out / "model.pt"), "state": str(state_path),
             "log": str(out / "log.csv")}
    if (out / "best.pt").exists():
        files["best"] = str(out / "best.pt")
    if finished and cfg.recon_samples > 0:
        shown = val_images if len(val_images) else train_images
        files["recon"] = str(save_reconstructions(vae, shown[:cfg.recon_samples],
                                                  out / "recon.png"))
    final = evaluate_frames(vae, val_images if len(val_images) else train_images[:256])
    summary = {
        "steps": loop.step,
        "elapsed_s": loop.elapsed(),
        "clock": cfg.clock,
        "steps_per_s": loop.steps_per_s(),
        "wall_s_this_call": loop.wall_s_this_call(),
        "num_frames": n,
        "num_train_frames": len(train_images),
        "num_val_frames": len(val_images),
        "last_log": last,
        "final_eval_on": "val" if len(val_images) else "train (first 256)",
        "final_eval": final,
        "best_val_loss": best if math.isfinite(best) else None,
        "interrupted": loop.interrupted,
        "sources": [str(d) for d in dirs],
        "files": files,
        "config": cfg.to_dict(),
        "model_config": mcfg.to_dict(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
