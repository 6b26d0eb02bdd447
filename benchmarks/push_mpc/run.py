"""The push MPC benchmark's pipeline: cached data, per-method dynamics, resumable
evaluation, summary, result files (see :mod:`benchmarks.push_mpc` for the method)."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from benchmarks.push_mpc import sources as S
from benchmarks.push_mpc import variants as V
from benchmarks.push_mpc.report import plot, summarize
from benchmarks.push_mpc.units import (  # noqa: F401  (re-exported: the tests use them)
    BASELINES,
    LatentGoalPlanner,
    UnitContext,
    append_row,
    read_rows,
    run_unit,
)
from s3k_envs import checkpoints
from s3k_envs.atomic import atomic_open
from s3k_envs.descriptors.keypoints import DescriptorPredictor
from s3k_envs.device import resolve_device
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.registration import ENV_SPECS

#: Sizes of ``--quick`` and ``--full`` (each can be overridden by its own option).
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"episodes": 150, "train_steps": 3000, "eval_episodes": 20, "vae_steps": 600,
              "seeds": "0,1"},
    "full": {"episodes": 600, "train_steps": 20000, "eval_episodes": 100, "vae_steps": 6000,
             "seeds": "0,1,2"},
}
DEFAULT_CACHE = common.REPO_ROOT / "runs" / "push_mpc"


# ---------------------------------------------------------------------------- small helpers
def parse_methods(text: str | None, cameras: str = "all") -> list[str]:
    """``"true,s3k"`` -> ``["true", "s3k"]``; unknown names are an error naming the valid.
    None: every method the variant allows (``--cameras top|low`` leaves out the beta-VAE,
    which embeds all 4 views; naming it then is an error)."""
    if text is None:
        return [m for m in S.METHODS if not (m == "vae" and cameras != "all")]
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in S.METHODS]
    if not methods or bad:
        raise ValueError(f"--methods: expected a comma-separated subset of {list(S.METHODS)}, "
                         f"got {text!r}")
    if cameras != "all" and "vae" in methods:
        raise ValueError(f"--methods vae with --cameras {cameras}: the beta-VAE embeds a fixed "
                         f"4 views and cannot read {V.SUBSET_VIEWS}; leave it out")
    return list(dict.fromkeys(methods))


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (non-negative integers, no repeats)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct non-negative integers like 0,1,2, got "
                         f"{text!r}")
    return seeds


def key_of(obj: Any) -> str:
    """Short stable hash of a JSON-able object (cache names)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` written atomically."""
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}




# ---------------------------------------------------------------------------- sources
def default_eval_steps(env_id: str) -> int:
    """Control steps of a goal episode when ``--eval-steps`` is not given: the env's
    registered time limit (BoxPush 60; ShoePush 80, since going around a 25-30 cm shoe takes
    longer), so the benchmark's episodes are the env's own."""
    if env_id not in ENV_SPECS:
        raise ValueError(f"unknown push env {env_id!r}; expected one of {sorted(ENV_SPECS)}")
    return int(ENV_SPECS[env_id][1])


def data_env_kwargs(env_id: str) -> dict[str, Any]:
    """Options of the data-collection env: ShoePush collects on the training shoes."""
    return {} if env_id == S.ENV_ID else {"instances": "train"}


def resolve_descriptor(arg: str | None, keypoints: int, cache: Path,
                       log: Callable[[str], None], env_id: str = S.ENV_ID) -> Path:
    """The descriptor checkpoint: ``arg``, else the shipped one (BoxPush only), else one
    trained under ``cache/descriptors`` (other envs: ``cache/descriptors_<env>``;
    :func:`~benchmarks.push_mpc.sources.train_descriptor_checkpoint`)."""
    if arg:
        return Path(arg)
    shipped = S.shipped_descriptor_checkpoint(env_id)
    if shipped is not None:
        return shipped
    sub = "descriptors" if env_id == S.ENV_ID else f"descriptors_{V.env_slug(env_id)}"
    log(f"no shipped descriptor checkpoint for {env_id}: training one under {cache / sub} "
        "(BoxPush about 10 min, ShoePush about 25 min)")
    return S.train_descriptor_checkpoint(cache / sub, keypoints, log, env_id)


def build_point_sources(methods: Sequence[str], args: argparse.Namespace, cache: Path,
                        log: Callable[[str], None]) -> tuple[dict[str, S.Source], dict[str, str]]:
    """The ``true``, ``s3k`` and ``descriptor`` sources requested, and a digest per source
    (cache keys). Checkpoints are loaded (and checked: K) before anything is collected."""
    out: dict[str, S.Source] = {}
    digests: dict[str, str] = {}
    if "true" in methods:
        out["true"], digests["true"] = S.true_source(), "true"
    if "s3k" in methods:
        path = Path(args.s3k_checkpoint) if args.s3k_checkpoint else \
            checkpoints.default_checkpoint(args.env)
        predictor = KeypointPredictor.load(path)
        if len(predictor.keypoint_names) != 3:
            raise ValueError(f"--s3k-checkpoint {path}: {len(predictor.keypoint_names)} "
                             f"keypoints, expected the 3 keypoints of {args.env}")
        out["s3k"] = S.point_source("s3k", predictor, args.env)
        digests["s3k"] = S.file_digest(path)
    if "descriptor" in methods:
        path = resolve_descriptor(args.descriptor_checkpoint, args.descriptor_keypoints,
                                  cache, log, args.env)
        predictor = DescriptorPredictor.load(path, num_keypoints=args.descriptor_keypoints)
        out["descriptor"] = S.point_source("descriptor", predictor, args.env)
        digests["descriptor"] = S.file_digest(path)
    return out, digests


def dataset(args: argparse.Namespace, methods: Sequence[str], data_dir: Path,
            point_sources: dict[str, S.Source], digests: dict[str, str],
            log: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Actions and every method's states, collected once and cached in ``data_dir``
    (a method whose states are cached is not recomputed; images are rendered only if an
    image method's states are missing).

    Returns:
        ``({"actions": (E, T, 2), <method>: (E, T + 1, *state)}, info)``; the VAE (when
        requested) is trained here and its stats are in ``info["vae"]``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    files = {"true": data_dir / "true.npz"}
    for m in ("s3k", "descriptor"):
        if m in methods:
            files[m] = data_dir / f"{m}_{digests[m]}.npz"
    vae_path = data_dir / (f"vae_s{args.vae_size}_d{args.vae_latent}_k{args.vae_steps}"
                           f"_seed{args.data_seed}.pt")
    frames_path = data_dir / f"frames_s{args.vae_size}.npy"
    vae_states_path: Path | None = None
    if "vae" in methods and vae_path.is_file():
        vae_states_path = data_dir / f"vae_{S.file_digest(vae_path)}.npz"
    need_vae_frames = "vae" in methods and not frames_path.is_file() and not (
        vae_states_path is not None and vae_states_path.is_file())
    missing = {m: p for m, p in files.items() if not p.is_file()}
    info: dict[str, Any] = {"dir": str(data_dir)}
    if missing or need_vae_frames:
        perceived = {m: point_sources[m] for m in missing if m in ("s3k", "descriptor")}
        log(f"collecting {args.episodes} episodes x {args.steps} steps for "
            f"{sorted([*missing, *(['vae frames'] if need_vae_frames else [])])}")
        t0 = time.perf_counter()
        got = S.collect(args.episodes, args.steps, args.data_seed, args.noise, args.random_prob,
                        perceived, args.vae_size if need_vae_frames else None, log=log,
                        env_id=args.env, env_kwargs=data_env_kwargs(args.env))
        info["collect_seconds"] = time.perf_counter() - t0
        for m, path in missing.items():
            arrays = {"states": got[m]}
            if m == "true":
                arrays["actions"] = got["actions"]
            save_arrays(path, arrays)
        if need_vae_frames:
            with atomic_open(frames_path, "wb") as f:
                np.save(f, got["frames"])
    base = load_arrays(files["true"])
    data = {"actions": base["actions"], "true": base["states"]}
    for m in ("s3k", "descriptor"):
        if m in methods:
            data[m] = load_arrays(files[m])["states"]
    if "vae" in methods:
        def frames() -> np.ndarray:
            f = np.load(frames_path, mmap_mode="r")
            return np.array(f.reshape(-1, *f.shape[2:]))  # a writable copy in memory

        log(f"beta-VAE: {vae_path.name}")
        vae, info["vae"] = S.cached_vae(vae_path, frames, args.vae_steps, args.data_seed,
                                        args.vae_latent, log=log, env_id=args.env)
        vae_states_path = data_dir / f"vae_{S.file_digest(vae_path)}.npz"
        if not vae_states_path.is_file():
            f = np.load(frames_path, mmap_mode="r")
            mus = []
            with torch.no_grad():
                for e in range(f.shape[0]):
                    mus.append(vae.encode(np.ascontiguousarray(f[e]))[0].numpy())
            pusher = data["true"][:, :, 3]
            save_arrays(vae_states_path, {"states": np.concatenate(
                [np.stack(mus), pusher], axis=-1).astype(np.float32)})
        data["vae"] = load_arrays(vae_states_path)["states"]
        info["vae"]["checkpoint"] = str(vae_path)
        point_sources["vae"] = S.vae_source(vae)
        digests["vae"] = S.file_digest(vae_path)
    n_eps, n_steps = data["actions"].shape[:2]
    info.update(episodes=int(n_eps), transitions=int(n_eps * n_steps))
    for m in methods:
        if data[m].shape[:2] != (n_eps, n_steps + 1):
            raise ValueError(f"cached {m} states {data[m].shape} do not match the actions "
                             f"{data['actions'].shape}; delete {data_dir}")
    return data, info




# ---------------------------------------------------------------------------- main
def build_parser(doc: str) -> argparse.ArgumentParser:
    """The command line (see the package docstring)."""
    p = argparse.ArgumentParser(description=doc)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (~20-25 min here)")
    size.add_argument("--full", action="store_true", help="full sizes (the default)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {','.join(S.METHODS)} (default: all the "
                   "variant allows)")
    p.add_argument("--env", default=S.ENV_ID, choices=(S.ENV_ID, S.SHOE_ENV_ID),
                   help="variant: the push env (ShoePush: data on the training shoes)")
    p.add_argument("--instances", default=None, choices=("train", "test"),
                   help="variant, ShoePush only: the shoes of the goal episodes (test: 12-15)")
    p.add_argument("--cameras", default="all", choices=V.CAMERA_SUBSETS,
                   help="variant: image methods see all 4 views, the 2 most top-down or the 2 "
                   "lowest (per observation; the beta-VAE is left out)")
    p.add_argument("--occluder", action="store_true",
                   help="variant: a card in front of cameras 0 and 1 in the goal episodes")
    p.add_argument("--seeds", default=None, help="dynamics / planner seeds (quick 0,1, full 0,1,2)")
    p.add_argument("--episodes", type=int, default=None, help="data episodes (150 / 600)")
    p.add_argument("--steps", type=int, default=30, help="steps per data episode")
    p.add_argument("--noise", type=float, default=0.4, help="expert action noise std")
    p.add_argument("--random-prob", type=float, default=0.15,
                   help="chance per step of a random held action in the data")
    p.add_argument("--data-seed", type=int, default=0,
                   help="data episodes' reset seeds and policy noise; the VAE's seed")
    p.add_argument("--train-steps", type=int, default=None,
                   help="dynamics optimizer steps (3000 / 20000)")
    p.add_argument("--train-seconds", type=float, default=None,
                   help="wall-clock cap on each dynamics training, s (default: none)")
    p.add_argument("--eval-episodes", type=int, default=None, help="goal episodes (20 / 100)")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="control steps per goal episode (default: the env's time limit, "
                        "BoxPush 60, ShoePush 80)")
    p.add_argument("--planar", action="store_true", help="SE(2) augmentation (point states)")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--reach-cost", type=float, default=0.02,
                   help="MPPI tie-breaker weight, point states (0 = the paper's cost only)")
    p.add_argument("--s3k-checkpoint", default=None,
                   help="S3K Box keypoint model (default: the shipped one)")
    p.add_argument("--descriptor-checkpoint", default=None,
                   help="descriptor checkpoint with references (default: the shipped "
                   f"{S.DESCRIPTOR_CHECKPOINT}, else one trained under the cache)")
    p.add_argument("--descriptor-keypoints", type=int, default=5, help="K the checkpoint has")
    p.add_argument("--vae-steps", type=int, default=None, help="beta-VAE steps (600 / 6000)")
    p.add_argument("--vae-latent", type=int, default=10, help="beta-VAE latent dimension")
    p.add_argument("--vae-size", type=int, default=64, help="beta-VAE input pixels per side")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu",
                   help="where the dynamics train and the planner rolls out: cpu (default), "
                   "auto (cuda, then mps, then cpu), cuda, cuda:N, mps; perception stays on "
                   "the CPU; a cached model is reused whatever device trained it")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run every (method, seed) and baseline as a Ray task: without ADDRESS "
                   "on a local Ray instance, else on the cluster at ADDRESS (the cache must be "
                   "on a file system every node sees; docs/scaling.md)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="cache of data, models and episode rows (resumable)")
    p.add_argument("--tag", default=None)
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    return p


def main(argv: list[str] | None = None, doc: str = "push MPC benchmark") -> dict[str, Any]:
    """Run the benchmark; returns the result document written to ``push_mpc_<tag>.json``."""
    args = build_parser(doc).parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    for k, v in sizes.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.eval_steps is None:
        args.eval_steps = default_eval_steps(args.env)
    methods = parse_methods(args.methods, args.cameras)
    if args.instances and args.env == S.ENV_ID:
        raise ValueError(f"--instances: only for --env {S.SHOE_ENV_ID} (BoxPush has one box), "
                         f"got --env {args.env}")
    seeds = parse_seeds(args.seeds)
    for name in ("episodes", "steps", "train_steps", "eval_episodes", "eval_steps", "vae_steps",
                 "threads", "descriptor_keypoints"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, got "
                             f"{getattr(args, name)}")
    resolve_device(args.device)  # a bad or absent device fails here, not in a worker
    tag = args.tag or ("quick" if args.quick else "full")
    variant = V.variant_parts(args.env, args.instances, args.cameras, args.occluder, S.ENV_ID)
    stem = "push_mpc_" + "_".join([tag, *variant])
    torch.set_num_threads(args.threads)
    log: Callable[[str], None] = lambda s: print(s, flush=True)  # noqa: E731
    cache = Path(args.cache).resolve()  # Ray workers may run elsewhere than the cwd
    t_start, cpu_start = time.perf_counter(), time.process_time()

    srcs, digests = build_point_sources(methods, args, cache, log)
    data_key = (f"e{args.episodes}_t{args.steps}_n{args.noise}_r{args.random_prob}"
                f"_s{args.data_seed}" + ("" if args.env == S.ENV_ID else f"_{args.env}"))
    data, data_info = dataset(args, methods, cache / data_key, srcs, digests, log)
    dyn_key = key_of({"train_steps": args.train_steps, "train_seconds": args.train_seconds,
                      "planar": args.planar, "v": 1})
    # The base benchmark's keys are unchanged; a variant adds its scene options (every
    # method and the baselines) and its perception options (image methods only).
    scene = {"env": args.env, "instances": args.instances} if args.env != S.ENV_ID else {}
    seen = {k: v for k, v in (("cameras", args.cameras), ("occluder", args.occluder))
            if v not in ("all", False)}
    plan = {"dyn": dyn_key, "samples": args.samples, "horizon": args.horizon,
            "iterations": args.iterations, "reach": args.reach_cost,
            "eval_steps": args.eval_steps, "v": 1, **scene}
    eval_key = key_of(plan)
    eval_only_key = key_of({"eval_steps": args.eval_steps, "v": 1, **scene})
    ctx = UnitContext(args, srcs, digests, data, cache, cache / data_key, dyn_key, eval_key,
                      eval_only_key, key_of({**plan, **seen}) if seen else "")
    for src in srcs.values():
        if src.images and src.encoder is not None:
            src.views = args.cameras
    units = [*[(m, seed) for m in methods for seed in seeds], *[(b, 0) for b in BASELINES]]
    if args.ray:
        from benchmarks.push_mpc.ray_tasks import run_on_ray

        outs = run_on_ray(ctx, units, args.ray)
    else:
        outs = [run_unit(ctx, m, seed, log) for m, seed in units]
    rows: list[dict[str, Any]] = [r for o in outs for r in o["rows"]]
    training = {f"{o['method']}_seed{o['seed']}": o["training"] for o in outs
                if o["training"] is not None}
    names = [*methods, *BASELINES]
    summary = summarize(rows, names)
    for m in names:
        o = summary[m]["over_seeds"]
        log(f"{m:>10}: success {100 * o['success_rate']['mean']:.0f}% "
            f"(+- {100 * o['success_rate']['std']:.0f}), position median "
            f"{o['position_cm_median']['mean']:.2f} cm, angle median "
            f"{o['angle_deg_median']['mean']:.1f} deg, plan {o['plan_ms_median']['mean']:.0f} ms")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common.write_csv(out / f"{stem}.csv", rows, list(rows[0].keys()))
    doc_out = {
        "machine": common.machine_info(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "methods": methods, "seeds": seeds,
        "variant": {"name": variant, "env": args.env, "instances": args.instances,
                    "cameras": args.cameras, "occluder": args.occluder},
        "states": {m: {"shape": list(srcs[m].state_shape), "digest": digests[m]}
                   for m in methods},
        "data": data_info, "training": training, "summary": summary,
        "wall_seconds": time.perf_counter() - t_start,
        "cpu_seconds": time.process_time() - cpu_start,  # this process, all its threads
    }
    common.write_json(out / f"{stem}.json", doc_out)
    plot(summary, names, out / f"{stem}.png",
         f"{args.env}{' (' + ', '.join(variant) + ')' if variant else ''}, "
         f"{args.eval_episodes} pushed goals x {len(seeds)} seed(s): MPPI on learned dynamics "
         "of each state source")
    return doc_out
