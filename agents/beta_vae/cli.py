"""``python -m agents.beta_vae {train, probe, recon}``: the command line of the beta-VAE
baseline (see :mod:`agents.beta_vae` for the options and outputs)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from agents.beta_vae.frames import load_frames, save_reconstructions
from agents.beta_vae.model import load_vae
from agents.beta_vae.probe import linear_probe
from agents.beta_vae.training import VAETrainConfig, train_vae
from s3k_envs.atomic import atomic_write_text


# ------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m agents.beta_vae {train, probe, recon}``."""
    d = VAETrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m agents.beta_vae",
        description="beta-VAE baseline of the S3K paper: all camera views in one latent.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", formatter_class=fmt,
                       help="train (or resume) on dataset directories' images")
    t.add_argument("--data", type=Path, nargs="+", required=True,
                   help="s3k dataset directories (labels unused)")
    t.add_argument("--out", type=Path, required=True, help="run directory (resumes if present)")
    t.add_argument("--steps", type=int, default=d.steps)
    t.add_argument("--minutes", type=float, default=d.minutes, help="time budget on --clock")
    t.add_argument("--clock", choices=("cpu", "wall"), default=d.clock,
                   help="what --minutes counts: this process's CPU time, or wall-clock time")
    t.add_argument("--batch", type=int, default=d.batch, help="frames per step")
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--beta", type=float, default=d.beta, help="KL weight")
    t.add_argument("--capacity", type=float, default=d.capacity,
                   help="capacity annealing: final target KL in nats (default: plain beta-VAE)")
    t.add_argument("--capacity-fraction", type=float, default=d.capacity_fraction,
                   help="fraction of the run over which the capacity ramps up")
    t.add_argument("--beta-warmup", type=float, default=d.beta_warmup,
                   help="fraction of the run over which the KL weight ramps from 0 to --beta")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    t.add_argument("--device", default=d.device,
                   help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps")
    t.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    t.add_argument("--log-every", type=int, default=d.log_every)
    t.add_argument("--val-every", type=int, default=d.val_every)
    t.add_argument("--val-fraction", type=float, default=d.val_fraction)
    t.add_argument("--recon-samples", type=int, default=d.recon_samples)
    g = t.add_argument_group("model")
    g.add_argument("--image-size", type=int, default=d.image_size,
                   help="side S in px the views are resized to")
    g.add_argument("--latent-dim", type=int, default=d.latent_dim)
    g.add_argument("--channels", type=int, nargs="+", default=d.channels)
    g.add_argument("--view-features", type=int, default=d.view_features)
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default=d.likelihood)
    g.add_argument("--gaussian-sigma", type=float, default=d.gaussian_sigma)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    q = sub.add_parser("probe", formatter_class=fmt,
                       help="linear probe: latent mean -> true 3D keypoints (mm)")
    q.add_argument("checkpoint", type=Path, help="beta-VAE checkpoint (RUN/model.pt)")
    q.add_argument("--labelled", type=Path, nargs="+", required=True,
                   help="labelled dataset directories (not used to train the VAE)")
    q.add_argument("--test", type=Path, nargs="+", default=None,
                   help="labelled datasets for the test split (default: --test-fraction of "
                   "--labelled)")
    q.add_argument("--test-fraction", type=float, default=0.3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--keypoint-model", type=Path, default=None,
                   help="S3K keypoint checkpoint to evaluate on the same test samples")
    q.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    q.add_argument("--out", type=Path, default=None, help="write the result as JSON here")

    r = sub.add_parser("recon", formatter_class=fmt,
                       help="PNG of input views (rows) above their reconstructions")
    r.add_argument("checkpoint", type=Path)
    r.add_argument("--data", type=Path, required=True, help="dataset directory")
    r.add_argument("--out", type=Path, required=True, help="PNG path")
    r.add_argument("--samples", type=int, default=4, help="frames shown")
    r.add_argument("--first", type=int, default=0, help="index of the first frame shown")
    r.add_argument("--scale", type=int, default=2, help="tile enlargement")
    r.add_argument("--threads", type=int, default=1)
    return p


def _print_probe(result: Mapping[str, Any]) -> None:
    t, base = result["test"], result["mean_baseline"]
    print(f"linear probe on {result['num_test']} test samples (ridge alpha {result['alpha']:g},"
          f" fit on {result['num_train']}): median {t['median']:.1f} mm, mean {t['mean']:.1f} "
          f"mm, p90 {t['p90']:.1f} mm; R2 {result['r2']:.3f}; "
          f"{result['active_units_variance']}/{result['latent_dim']} active latents")
    for name, s in t["per_keypoint"].items():
        print(f"  {name}: median {s['median']:.1f} mm")
    print(f"predicting the mean train position: median {base['median']:.1f} mm")
    kp = result.get("keypoint_model")
    if kp:
        print(f"keypoint model {kp['checkpoint']} on the same samples: median "
              f"{kp['median']:.1f} mm, p90 {kp['p90']:.1f} mm")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m agents.beta_vae train|probe|recon ...``; returns the result dict
    (training summary, probe result, or ``{"png": path}``)."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        names = {f.name for f in dataclasses.fields(VAETrainConfig)}
        values = {k: v for k, v in vars(args).items() if k in names}
        summary = train_vae(args.data, args.out, progress_bar=not args.no_progress, **values)
        ev = summary["final_eval"]
        print(f"{summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} {summary['clock']} "
              f"min ({summary['steps_per_s']:.2f} steps/s); {summary['final_eval_on']}: recon "
              f"{ev['recon']:.1f} nats, KL {ev['kl']:.1f} nats, {ev['active_units']}/"
              f"{len(ev['kl_per_dim'])} active latents; weights in {args.out / 'model.pt'}")
        return summary
    torch.set_num_threads(max(1, args.threads))
    if args.command == "probe":
        result = linear_probe(args.checkpoint, args.labelled, test_dir=args.test,
                              test_fraction=args.test_fraction, seed=args.seed,
                              keypoint_model=args.keypoint_model)
        _print_probe(result)
        if args.out is not None:
            atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
            print(f"wrote {args.out}")
        return result
    vae = load_vae(args.checkpoint)
    frames = load_frames(args.data, vae.config.image_size)
    if [frames.num_cameras, *frames.source_size] != [vae.config.num_cameras,
                                                     *vae.config.source_size]:
        raise ValueError(f"{args.data}: {frames.num_cameras} cameras of {frames.source_size} "
                         f"px, the VAE was trained on {vae.config.num_cameras} of "
                         f"{vae.config.source_size}")
    shown = frames.images[args.first:args.first + args.samples]
    if len(shown) == 0:
        raise ValueError(f"{args.data}: no frames from index {args.first} "
                         f"({len(frames.images)} frames)")
    path = save_reconstructions(vae, shown, args.out, args.scale)
    print(f"wrote {path}")
    return {"png": str(path)}
