"""``s3k generate``: generate a multi-view keypoint dataset directory.

:func:`generate_dataset` plans the shards (:mod:`s3k_envs.keypoints.sampling`), renders the
samples in worker processes, writes each shard atomically as soon as it is complete, writes
the manifest last (:mod:`s3k_envs.keypoints.dataset` is the format), and resumes an
interrupted run from the shards already on disk. :func:`main` is the command line.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import numpy as np

from s3k_envs.atomic import TMP_SUFFIX, is_temporary
from s3k_envs.keypoints.dataset import (
    FORMAT,
    FORMAT_VERSION,
    LOCK_NAME,
    MANIFEST_NAME,
    PROGRESS_NAME,
    DatasetError,
    read_manifest,
    read_npz,
    shard_layout,
    validate_shard,
    write_json,
    write_npz,
)
from s3k_envs.keypoints.sampling import (
    DEFAULT_SHARD_SIZE,
    GenerationParams,
    SampleGenerator,
    assemble_shard,
    check_int,
    make_params,
)
from s3k_envs.progress import Progress


# ---------------------------------------------------------------------------- generation
def _created_with(command: str | None) -> dict[str, Any]:
    import mujoco

    import s3k_envs

    return {
        "package": "s3k-envs",
        "version": s3k_envs.__version__,
        "command": command,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mujoco": mujoco.__version__,
    }


def _plan_manifest(params: GenerationParams, generator: SampleGenerator,
                   command: str | None) -> dict[str, Any]:
    p = params.to_json()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "env_id": p["env_id"],
        "env_options": p["env_options"],
        "seed": p["seed"],
        "num_samples": p["num_samples"],
        "num_labelled": p["num_labelled"],
        "image_size": list(generator.image_size),
        "num_cameras": generator.num_cameras,
        "keypoint_names": list(generator.keypoint_names),
        "label_cameras": p["label_cameras"],
        "label_noise_px": p["label_noise_px"],
        "shard_size": p["shard_size"],
        "rollout_steps": p["rollout_steps"],
        "rollout_noise": p["rollout_noise"],
        "shards": shard_layout(params.num_samples, params.shard_size),
        "labelled_indices": list(range(params.num_labelled)),
        "created_with": _created_with(command),
    }


def _params_key(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a manifest / progress file that determine the content."""
    fields = GenerationParams.__dataclass_fields__
    defaults = {k: f.default for k, f in fields.items() if f.default is not MISSING}
    keys = ("format", "format_version", *fields)
    return {k: doc.get(k, defaults.get(k)) for k in keys}


def _params_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    a, b = _params_key(old), _params_key(new)
    return "; ".join(f"{k}: {a[k]!r} on disk vs {b[k]!r} requested" for k in a if a[k] != b[k])


def _our_files(root: Path) -> list[Path]:
    names = (MANIFEST_NAME, PROGRESS_NAME)
    return [p for p in root.iterdir()
            if p.name in names or (p.name.startswith("shard_") and p.suffix == ".npz")
            or is_temporary(p)]


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock of a dataset directory (two generators must not write one dataset)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(root / LOCK_NAME, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"{root}: another `s3k generate` is writing this dataset") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: Default workers: at most one per this many samples to generate. Starting the worker
#: processes costs ~3 s (imports, env creation), so on 2 cores a second worker only pays
#: off beyond ~1,000 samples (docs/datasets.md, "Generation speed").
SAMPLES_PER_DEFAULT_WORKER = 500


def _cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _default_workers(num_samples: int) -> int:
    """Usable cores, but at most one worker per ``SAMPLES_PER_DEFAULT_WORKER`` samples."""
    return max(1, min(_cores(), num_samples // SAMPLES_PER_DEFAULT_WORKER))


# Worker state of a generation process (one env per process: EGL contexts and fork don't mix).
_WORKER: SampleGenerator | None = None
_WORKER_ERROR: BaseException | None = None


def _exit_with_parent(parent: int) -> None:
    """Exit the worker once its parent is gone (e.g. after ``kill -9`` of the generator)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _env_spec_for_workers(env_id: str) -> Any:
    """The parent's Gymnasium registration of ``env_id`` (an ``EnvSpec``), for workers: a
    fresh worker process has not run the code that registered an id outside ``s3k_envs``
    (e.g. ``register_multiview`` in a user's script). None if it cannot be pickled."""
    import pickle

    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
        pickle.dumps(spec)
    except Exception:
        return None
    return spec


def _worker_init(params: dict[str, Any], render_threads: int, env_spec: Any = None) -> None:
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    # Mesa's llvmpipe starts one rasteriser thread per core in every process; with several
    # workers that oversubscribes the cores (2 workers on 2 cores, 2,000 Box samples: 13 s
    # with one thread each, 15 s without). Read when the env creates its GL context.
    os.environ.setdefault("LP_NUM_THREADS", str(render_threads))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        if env_spec is not None:
            import gymnasium as gym

            import s3k_envs  # noqa: F401  (registers the S3K ids first)

            gym.registry.setdefault(env_spec.id, env_spec)
        _WORKER = SampleGenerator(GenerationParams(**params))
    except BaseException as e:  # reported by the first task (Pool would respawn forever)
        _WORKER_ERROR = e


def _worker_samples(task: tuple[int, int]) -> list[dict[str, Any]]:
    if _WORKER is None:
        raise RuntimeError(f"generation worker failed to start: {_WORKER_ERROR!r}")
    return _WORKER.samples(*task)


def _mp_context() -> mp.context.BaseContext:
    """``forkserver`` (one import of this module, then cheap forks) or ``spawn``; never a
    plain fork of a process that may hold GL contexts."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["s3k_envs.keypoints.data", "mujoco"])
        return ctx
    return mp.get_context("spawn")


def _tasks(shards: Sequence[Mapping[str, Any]], workers: int) -> list[tuple[int, int]]:
    """Chunks of samples (never across shards), a few per worker for load balance."""
    total = sum(s["count"] for s in shards)
    size = max(1, min(16, math.ceil(total / (4 * workers))))
    return [(a, min(a + size, s["start"] + s["count"]))
            for s in shards for a in range(s["start"], s["start"] + s["count"], size)]


def _shard_ok(path: Path, entry: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    try:
        validate_shard(path, read_npz(path, verify_checksums=True), entry, manifest)
    except DatasetError as e:
        print(f"s3k generate: regenerating {path.name}: {e}", file=sys.stderr)
        return False
    return True


def _write_shard(path: Path, arrays: Mapping[str, np.ndarray], compress: bool = False) -> None:
    """Write one shard atomically (a seam for tests that simulate an interruption)."""
    write_npz(path, arrays, compress=compress)


def generate_dataset(
    out: str | os.PathLike[str],
    env_id: str,
    num_samples: int,
    num_labelled: int = 0,
    *,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    env_options: Mapping[str, Any] | None = None,
    label_cameras: int | None = None,
    label_noise_px: float = 0.0,
    rollout_steps: int = 0,
    rollout_noise: float = 0.0,
    workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    compress: bool = False,
    ray: str | bool | None = None,
) -> Path:
    """Generate (or resume, or confirm) a dataset in directory ``out``.

    Args:
        out: dataset directory (created if needed).
        env_id: Gymnasium id of a multi-view env.
        num_samples: N, one env reset each.
        num_labelled: M; samples ``0..M-1`` get labels.
        image_size: pixels, ``S`` or ``(H, W)`` (default: ``env_options["image_size"]``,
            else 128).
        seed: dataset seed; sample ``i`` resets the env with ``sample_seed(seed, i)``.
            Use different seeds for datasets that must not share scenes (train / test).
        env_options: further ``gymnasium.make`` keyword arguments (JSON values).
        label_cameras: label each labelled sample in this many random cameras (>= 2);
            None labels every camera.
        label_noise_px: std of Gaussian noise added to each label coordinate, pixels.
        rollout_steps: run the env's scripted expert for ``0..rollout_steps`` random steps
            after each reset before recording (0: record reset states); envs without an
            expert take uniformly random actions.
        rollout_noise: std of Gaussian noise on the expert's actions during the rollout.
        workers: processes (default: the usable cores, but at most one per 500 samples to
            generate, since starting a worker costs ~3 s); the bytes do not depend on it.
        shard_size: samples per shard file.
        overwrite: replace an existing dataset (complete or not) with other parameters.
        progress: show progress on stderr (a bar in a terminal, else a line a minute).
        command: command line recorded in the manifest's ``created_with``.
        compress: deflate the shards (about 5x smaller at 128 px, but ~10x slower to load
            and not memory-mapped); not a content parameter, the arrays are the same.
        ray: generate on Ray instead of local processes, one task per shard: True or
            ``"local"`` starts a local Ray instance (or reuses this process's connection),
            a string is a cluster address (``"auto"``, ``"ray://HOST:10001"``). The bytes
            are the same as with the local pool; ``workers`` is then ignored.

    Returns:
        ``out`` as a Path. Existing complete datasets with the same parameters are left as
        they are; incomplete ones with the same parameters are resumed (complete shards
        kept, missing ones generated).

    Raises:
        ValueError: bad arguments, unknown env id, the env's own error for bad options.
        FileExistsError: ``out`` holds another dataset (or other files) and not
            ``overwrite``.
    """
    params = make_params(env_id, num_samples, num_labelled, image_size=image_size, seed=seed,
                         env_options=env_options, label_cameras=label_cameras,
                         label_noise_px=label_noise_px, shard_size=shard_size,
                         rollout_steps=rollout_steps, rollout_noise=rollout_noise)
    if workers is not None:
        workers = check_int("workers", workers, 1)
    if command is None:
        command = f"s3k_envs.keypoints.data.generate_dataset({params.to_json()!r})"
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a directory")
    # Creating the env first checks the env id and options before the directory is touched.
    generator = SampleGenerator(params)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            if _prepare_directory(root, params, overwrite, progress):
                return _generate(root, params, generator, workers, progress, command,
                                 compress, ray)
            return root
    finally:
        generator.close()


def _prepare_directory(root: Path, params: GenerationParams, overwrite: bool,
                       progress: bool) -> bool:
    """Decide what to do with ``root`` (locked); False when a complete dataset with these
    parameters is already there. Clears it for a fresh start, or keeps its shards to resume.

    Raises:
        FileExistsError: ``root`` holds another dataset or other files and not ``overwrite``.
    """
    manifest_path, progress_path = root / MANIFEST_NAME, root / PROGRESS_NAME
    wanted = {"format": FORMAT, "format_version": FORMAT_VERSION, **params.to_json()}
    resume = False
    if overwrite:
        pass
    elif manifest_path.exists():
        try:
            old = read_manifest(root)
        except DatasetError as e:
            raise FileExistsError(f"{e}; pass --overwrite to replace it") from None
        diff = _params_diff(old, wanted)
        if diff:
            raise FileExistsError(
                f"{root}: holds a complete dataset generated with other parameters "
                f"({diff}); pass --overwrite to replace it, or choose another --out"
            )
        if all((root / s["file"]).is_file() for s in old["shards"]):
            if progress:
                print(f"{root}: a complete dataset with these parameters is already there",
                      file=sys.stderr)
            return False
        resume = True  # same parameters, shards lost: regenerate the missing ones
    elif progress_path.exists():
        try:
            old = json.loads(progress_path.read_text(encoding="utf-8"))
            diff = _params_diff(old, wanted)
        except (OSError, ValueError, AttributeError) as e:
            raise FileExistsError(f"{progress_path}: unreadable ({e}); pass --overwrite "
                                  "to start again") from None
        if diff:
            raise FileExistsError(
                f"{root}: holds an incomplete dataset with other parameters ({diff}); "
                "rerun with the same parameters to resume it, or pass --overwrite"
            )
        import s3k_envs

        if old.get("s3k_version") != s3k_envs.__version__:
            raise FileExistsError(
                f"{root}: the incomplete dataset there was started by s3k "
                f"{old.get('s3k_version')}, this is s3k {s3k_envs.__version__}; pass "
                "--overwrite to start again"
            )
        resume = True
    else:
        others = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME
                        and not is_temporary(p))
        if others:
            raise FileExistsError(
                f"{root}: not empty ({others[:5]}) and not an s3k dataset; pass "
                "--overwrite to write into it anyway"
            )
    if resume:
        for p in root.glob(f".*{TMP_SUFFIX}"):  # left by an interrupted run
            p.unlink()
    else:
        for p in _our_files(root):
            p.unlink()
    return True


def _generate(root: Path, params: GenerationParams, generator: SampleGenerator,
              workers: int | None, progress: bool, command: str | None, compress: bool,
              ray: str | bool | None = None) -> Path:
    import s3k_envs

    manifest = _plan_manifest(params, generator, command)
    write_json(root / PROGRESS_NAME, {
        "format": FORMAT, "format_version": FORMAT_VERSION, **params.to_json(),
        "s3k_version": s3k_envs.__version__,
    })
    # From here on the directory is an incomplete dataset until the manifest is rewritten.
    with contextlib.suppress(FileNotFoundError):
        (root / MANIFEST_NAME).unlink()
    pending = [s for s in manifest["shards"]
            if not ((root / s["file"]).is_file() and _shard_ok(root / s["file"], s, manifest))]
    done = params.num_samples - sum(s["count"] for s in pending)
    c, k = generator.num_cameras, len(generator.keypoint_names)
    bar = Progress(params.num_samples, f"{params.env_id} -> {root.name}", unit="sample",
                   initial=done, enabled=progress, smoothing=0.1)
    missing = params.num_samples - done
    if ray:
        from s3k_envs.keypoints import ray_backend

        ray_module = ray_backend.connect(None if ray is True else str(ray))
        with contextlib.ExitStack() as stack:
            stack.callback(bar.close)
            for shard, arrays in ray_backend.shard_results(
                    ray_module, params.to_json(), _env_spec_for_workers(params.env_id),
                    pending):
                _write_shard(root / shard["file"], arrays, compress)
                bar.update(int(shard["count"]))
        return _finalise(root, manifest)
    workers = _default_workers(missing) if workers is None else workers
    tasks = _tasks(pending, workers)
    workers = min(workers, len(tasks))
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if workers <= 1:
            results: Iterator[list[dict[str, Any]]] = (generator.samples(*t) for t in tasks)
        else:
            pool = stack.enter_context(
                _mp_context().Pool(workers, initializer=_worker_init,
                                   initargs=(params.to_json(), max(1, _cores() // workers),
                                             _env_spec_for_workers(params.env_id)))
            )
            results = pool.imap(_worker_samples, tasks)
        shard_iter = iter(pending)
        shard = next(shard_iter, None)
        pending: list[dict[str, Any]] = []
        for chunk in results:
            pending.extend(chunk)
            bar.update(len(chunk))
            if shard is not None and len(pending) == shard["count"]:
                arrays = assemble_shard(pending, shard["start"], params.num_labelled, c, k)
                _write_shard(root / shard["file"], arrays, compress)
                pending = []
                shard = next(shard_iter, None)
    return _finalise(root, manifest)


def _finalise(root: Path, manifest: dict[str, Any]) -> Path:
    """Validate every shard (checksums included), add label statistics, write the manifest
    (atomically, last) and remove the progress file."""
    labels = triangulable = 0
    k = len(manifest["keypoint_names"])
    views_per_kp = np.zeros(k, dtype=np.int64)
    triangulable_per_kp = np.zeros(k, dtype=np.int64)
    for entry in manifest["shards"]:
        path = root / entry["file"]
        if not path.is_file():
            raise DatasetError(f"{path}: shard missing after generation")
        arrays = read_npz(path, verify_checksums=True)
        validate_shard(path, arrays, entry, manifest)
        counts = arrays["label_mask"].sum(axis=1)  # (m, K) cameras per keypoint
        labels += int(counts.sum())
        triangulable += int((counts >= 2).sum())
        views_per_kp += counts.sum(axis=0)
        triangulable_per_kp += (counts >= 2).sum(axis=0)
        del arrays
    manifest["label_stats"] = {
        "labels": labels,
        "keypoint_instances": manifest["num_labelled"] * k,
        "keypoint_instances_with_2plus_cameras": triangulable,
        # per keypoint: labelled views, and labelled samples it is seen in by >= 2 cameras
        "per_keypoint": {
            name: {"labelled_views": int(views_per_kp[i]),
                   "samples_with_2plus_cameras": int(triangulable_per_kp[i])}
            for i, name in enumerate(manifest["keypoint_names"])
        },
    }
    write_json(root / MANIFEST_NAME, manifest)
    with contextlib.suppress(FileNotFoundError):
        (root / PROGRESS_NAME).unlink()
    return root


# ---------------------------------------------------------------------------- command line
def parse_image_size(text: str) -> int | tuple[int, int]:
    """``"128"`` -> 128, ``"96x128"`` (H x W) -> (96, 128)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and min(parts) > 0:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"expected S or HxW in pixels, got {text!r}")


def parse_env_option(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value); value by ``ast.literal_eval``, else the string."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return key, value


def _labelled_arg(text: str) -> int | str:
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``s3k generate``."""
    parser = argparse.ArgumentParser(
        prog="s3k generate",
        description="Generate a multi-view keypoint dataset (one env reset per sample): "
        "images, calibration and, for the first M samples, 2D keypoint labels. Rerunning an "
        "interrupted command resumes it.",
    )
    parser.add_argument("env_id", help="Gymnasium env id, e.g. S3K-Box-v0")
    parser.add_argument("--samples", type=int, required=True, help="number of samples N")
    parser.add_argument("--labelled", type=_labelled_arg, default=0,
                        help="label the first M samples (a count or 'all'; default 0)")
    parser.add_argument("--out", type=Path, required=True, help="dataset directory")
    parser.add_argument("--image-size", type=parse_image_size, default=None,
                        help="S or HxW pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0,
                        help="dataset seed (use different seeds for train and test)")
    parser.add_argument("--env-option", action="append", type=parse_env_option, default=[],
                        metavar="KEY=VALUE",
                        help="gymnasium.make option, value as a Python literal (repeatable)")
    parser.add_argument("--label-cameras", type=int, default=None, metavar="N",
                        help="label each labelled sample in N random cameras (>= 2; default all)")
    parser.add_argument("--label-noise", type=float, default=0.0, metavar="PX",
                        help="std of Gaussian pixel noise added to the labels (default 0)")
    parser.add_argument("--rollout-steps", type=int, default=0, metavar="T",
                        help="run the env's scripted expert for 0..T random steps after each "
                        "reset before recording, to cover the states of the task (default 0);"
                        " envs without an expert take uniformly random actions")
    parser.add_argument("--rollout-noise", type=float, default=0.0, metavar="STD",
                        help="Gaussian noise on the expert's actions during the rollout")
    parser.add_argument("--workers", type=int, default=None,
                        help="generation processes (default: the number of cores, but at "
                        f"most one per {SAMPLES_PER_DEFAULT_WORKER} samples)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                        help=f"samples per shard file (default {DEFAULT_SHARD_SIZE})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset generated with other parameters")
    parser.add_argument("--compress", action="store_true",
                        help="deflate the shards (smaller, slower to load, not memory-mapped)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="generate on Ray, one task per shard: without ADDRESS a local "
                             "Ray instance, else the cluster at ADDRESS ('auto', "
                             "'ray://HOST:10001'); needs pip install 's3k-envs[ray]'")
    return parser


def main(argv: list[str] | None = None) -> Path:
    """``s3k generate ENV_ID --samples N --labelled M --out DIR [...]``; returns DIR.

    Raises:
        ValueError: bad values (including the env's own error for unknown options).
        FileExistsError: DIR holds a dataset with other parameters and no ``--overwrite``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    options = dict(args.env_option)
    labelled = args.samples if args.labelled == "all" else args.labelled
    start = time.perf_counter()
    out = generate_dataset(
        args.out, args.env_id, args.samples, labelled, image_size=args.image_size,
        seed=args.seed, env_options=options, label_cameras=args.label_cameras,
        label_noise_px=args.label_noise, rollout_steps=args.rollout_steps,
        rollout_noise=args.rollout_noise, workers=args.workers, shard_size=args.shard_size,
        overwrite=args.overwrite, progress=not args.no_progress,
        command=shlex.join(["s3k", "generate", *argv]), compress=args.compress,
        ray=args.ray,
    )
    manifest = read_manifest(out)
    print(f"{out}: {manifest['num_samples']} samples of {manifest['env_id']} "
          f"({manifest['num_labelled']} labelled), {manifest['num_cameras']} cameras "
          f"{manifest['image_size'][0]}x{manifest['image_size'][1]}, "
          f"{time.perf_counter() - start:.1f} s")
    for line in label_report(manifest):
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
    return out


#: A keypoint labelled in fewer than this fraction of the labelled views (or in fewer than
#: :data:`MIN_LABELLED_VIEWS`) gets a warning from ``s3k generate``.
MIN_VIEW_FRACTION = 0.05
MIN_LABELLED_VIEWS = 10


def label_report(manifest: Mapping[str, Any]) -> list[str]:
    """Lines for ``s3k generate``: per keypoint, in how many labelled views it is labelled
    (visible) and in how many labelled samples >= 2 cameras see it; then a warning that
    names every keypoint with too few labels to train and the likely causes.

    Args:
        manifest: a finished dataset's manifest (``label_stats.per_keypoint`` present).

    Returns:
        Lines of text (warnings start with ``"warning"``); empty without labelled samples.
    """
    stats = manifest.get("label_stats", {}).get("per_keypoint")
    num_labelled = int(manifest.get("num_labelled", 0))
    if not stats or num_labelled == 0:
        return []
    views = num_labelled * int(manifest["num_cameras"])
    lines = [f"labels per keypoint ({num_labelled} labelled samples x "
             f"{manifest['num_cameras']} cameras = {views} views):"]
    scarce = []
    for name, st in stats.items():
        n = st["labelled_views"]
        lines.append(f"  {name}: {n} views ({100 * n / views:.0f} %), seen by >= 2 cameras in "
                     f"{st['samples_with_2plus_cameras']} samples")
        if n < max(MIN_LABELLED_VIEWS, MIN_VIEW_FRACTION * views):
            scarce.append(f"{name} ({n} views)")
    if scarce:
        lines.append(
            f"warning: too few labels to train {', '.join(scarce)}. A keypoint that is never "
            "labelled is never visible: it may sit inside a geom (a body's frame origin inside "
            "a link: try 'com:NAME' or a site on the surface), lie outside every camera's view "
            "(look at the rig with `s3k snapshot ENV_ID`), or be hidden by something in front. "
            "`s3k train` refuses keypoints without labels unless given "
            "--allow-unlabelled-keypoints.")
    return lines


if __name__ == "__main__":
    main()
