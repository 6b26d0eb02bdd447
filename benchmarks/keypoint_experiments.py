"""Shared runner of the paper's data-efficiency experiments (S3K §4, Fig. 4-6, Table 1, App. E).

The benchmark scripts ``label_scaling``, ``domain_shift``, ``shoe_generalization`` and
``alpha_sweep`` describe their experiment as a list of :class:`RunSpec` (which labelled /
unlabelled samples of which :class:`DatasetSpec`, the self-supervised weight alpha, the seed
and the training budget) and hand it to :func:`run_grid`, which

1. generates every dataset the runs need (:func:`ensure_dataset`: one directory per
   :class:`DatasetSpec` under ``data_dir``, named by :meth:`DatasetSpec.dirname`, so scripts
   whose specs coincide share the data; generation is resumable and locked),
2. trains each run with :func:`s3k_envs.keypoints.train.train` (``--jobs`` side by side in a
   forkserver process pool; budget in CPU-minutes of the training process by default, so
   the result does not depend on what else runs on the machine) into
   ``runs_dir/<run name>``; a finished run is not trained again, an interrupted one resumes
   from its last checkpoint,
3. evaluates the **final** weights (``model.pt``, not the checkpoint with the best
   validation error) on every named held-out test set: RMS 2D error (px) and the median /
   90th percentile / mean 3D error (mm) of the triangulated keypoints; the metrics are cached
   in ``runs_dir/<run name>/eval.json`` and reused while the run and the test sets are the
   same,

and returns one flat row per run. :func:`write_results` writes ``<stem>.csv``, ``.json``
(rows, settings, machine info, command) and ``.png`` atomically.

A run directory remembers its spec (``run_spec.json``); reusing a name for a different
method (other data, alpha, seed, overrides) raises instead of silently mixing two runs. Only
the budget (``minutes``) may grow: the run then resumes and trains on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from benchmarks import common

DEFAULT_DATA_DIR = Path("runs/paper_data")
DEFAULT_RUNS_DIR = Path("runs/paper_runs")
#: Validation samples (of the first test set) evaluated during training, for the log only.
VAL_SAMPLES = 50
#: Metric suffixes of every test set ``T`` in a result row: ``f"{T}_{suffix}"``.
METRIC_SUFFIXES = ("rms_px", "median_mm", "p90_mm", "mean_mm")
#: Fields of a :class:`RunSpec` that define the method; a run directory refuses a change.
_FIXED_FIELDS = ("labelled", "unlabelled", "alpha", "seed", "clock", "train_overrides")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


# ---------------------------------------------------------------------------- specs
def _json_value(where: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: expected a JSON value, got {value!r} ({e})") from None


def _pairs(where: str, items: Any) -> tuple[tuple[str, Any], ...]:
    """``items`` (a mapping or pairs) as a hashable tuple of ``(str, value)`` pairs."""
    if isinstance(items, Mapping):
        items = tuple(items.items())
    try:
        pairs = tuple((k, v) for k, v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected (name, value) pairs or a dict, got {items!r}"
                         ) from None
    keys = [k for k, _ in pairs]
    for k in keys:
        if not isinstance(k, str) or not k:
            raise ValueError(f"{where}: names must be non-empty strings, got {k!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{where}: a name appears twice in {keys}")
    # Lists (JSON) would make the dataclass unhashable: store them as tuples.
    return tuple((k, _freeze(v)) for k, v in pairs)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class DatasetSpec:
    """One generated dataset (the arguments of ``generate_dataset``).

    Attributes:
        env_id: Gymnasium id of a multi-view env (``S3K-Box-v0``, ...).
        samples: N samples (env resets).
        labelled: samples ``0..labelled-1`` carry labels (0..N).
        seed: dataset seed; different seeds share no scenes (use one per role).
        image_size: square images of this many pixels.
        env_options: further ``gymnasium.make`` options as ``(name, value)`` pairs (a dict
            is accepted and converted); not ``image_size`` (give it above).
        rollout_steps, rollout_noise: see ``generate_dataset``.
    """

    env_id: str
    samples: int
    labelled: int
    seed: int
    image_size: int
    env_options: tuple[tuple[str, Any], ...] = ()
    rollout_steps: int = 0
    rollout_noise: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"DatasetSpec.env_id: expected an env id string, got "
                             f"{self.env_id!r}")
        for name, minimum in (("samples", 1), ("labelled", 0), ("seed", 0),
                              ("image_size", 8), ("rollout_steps", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise ValueError(f"DatasetSpec.{name}: expected an int >= {minimum}, got "
                                 f"{value!r}")
        if self.labelled > self.samples:
            raise ValueError(f"DatasetSpec.labelled: expected at most samples={self.samples},"
                             f" got {self.labelled}")
        noise = self.rollout_noise
        if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
            raise ValueError(f"DatasetSpec.rollout_noise: expected a finite value >= 0, got "
                             f"{noise!r}")
        options = _pairs("DatasetSpec.env_options", self.env_options)
        if any(k == "image_size" for k, _ in options):
            raise ValueError("DatasetSpec.env_options: give image_size as the image_size "
                             "field, not as an env option")
        for k, v in options:
            _json_value(f"DatasetSpec.env_options[{k!r}]", v)
        object.__setattr__(self, "env_options", options)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON dict of every field (env_options as a dict with sorted keys)."""
        return {
            "env_id": self.env_id, "samples": int(self.samples),
            "labelled": int(self.labelled), "seed": int(self.seed),
            "image_size": int(self.image_size),
            "env_options": _json_value("env_options", dict(sorted(self.env_options))),
            "rollout_steps": int(self.rollout_steps),
            "rollout_noise": float(self.rollout_noise),
        }

    def dirname(self) -> str:
        """Readable, unique directory name, e.g. ``box_64px_n1000_l0_s12_3f9a1c2e``.

        The readable part names the env, size, sample / label counts, seed and short env
        options; the 8-hex-digit hash covers all fields, so two different specs never share
        a name (and equal specs always do).
        """
        env = self.env_id.lower()
        env = re.sub(r"^s3k-", "", env)
        env = re.sub(r"-v\d+$", "", env)
        env = re.sub(r"[^a-z0-9]+", "-", env).strip("-") or "env"
        parts = [env, f"{self.image_size}px", f"n{self.samples}", f"l{self.labelled}",
                 f"s{self.seed}"]
        for k, v in sorted(self.env_options):
            value = "-".join(map(str, v)) if isinstance(v, tuple) else str(v)
            text = re.sub(r"[^A-Za-z0-9.]+", "-", f"{k}{value}").strip("-")
            if len(text) <= 24:  # long options only go into the hash
                parts.append(text)
        if self.rollout_steps:
            parts.append(f"roll{self.rollout_steps}")
        key = json.dumps(self.to_json(), sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        return "_".join([*parts, digest])


def ensure_dataset(spec: DatasetSpec, data_dir: Path = DEFAULT_DATA_DIR,
                   workers: int | None = None, ray: str | None = None) -> Path:
    """Generate (or resume, or find complete) the dataset of ``spec``.

    Args:
        spec: what to generate.
        data_dir: parent directory; the dataset goes to ``data_dir / spec.dirname()``.
        workers: generation processes (None: ``generate_dataset``'s default).
        ray: generate on Ray (``"local"`` or a cluster address), one task per shard.

    Returns:
        The dataset directory.
    """
    from s3k_envs.keypoints.data import generate_dataset

    path = Path(data_dir) / spec.dirname()
    generate_dataset(path, spec.env_id, spec.samples, spec.labelled,
                     image_size=spec.image_size, seed=spec.seed,
                     env_options=dict(spec.env_options), rollout_steps=spec.rollout_steps,
                     rollout_noise=spec.rollout_noise, workers=workers, progress=False,
                     ray=ray)
    return path


@dataclass(frozen=True)
class Subset:
    """The part of one dataset a run uses.

    Attributes:
        spec: the dataset.
        count: as labelled data, its first ``count`` labelled samples (<= spec.labelled); as
            unlabelled data, its first ``count`` samples (<= spec.samples; their labels, if
            any, are not used). None: all of them.
    """

    spec: DatasetSpec
    count: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, DatasetSpec):
            raise ValueError(f"Subset.spec: expected a DatasetSpec, got {self.spec!r}")
        if self.count is not None and (not _is_int(self.count) or self.count < 1):
            raise ValueError(f"Subset.count: expected None or an int >= 1, got "
                             f"{self.count!r}")
        if self.count is not None and self.count > self.spec.samples:
            raise ValueError(f"Subset.count: {self.count} but the dataset "
                             f"{self.spec.dirname()} has only {self.spec.samples} samples")

    def labelled_count(self) -> int:
        """Labelled samples this subset contributes as labelled data.

        Raises:
            ValueError: ``count`` exceeds the dataset's labelled samples, or it has none.
        """
        n = self.spec.labelled if self.count is None else self.count
        if n > self.spec.labelled or n == 0:
            raise ValueError(f"Subset: {n} labelled samples requested but the dataset "
                             f"{self.spec.dirname()} has {self.spec.labelled}")
        return n

    def unlabelled_count(self) -> int:
        """Samples this subset contributes as unlabelled data."""
        return self.spec.samples if self.count is None else self.count

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.spec.dirname(), "count": self.count}


@dataclass(frozen=True)
class RunSpec:
    """One training run and its evaluation.

    Attributes:
        name: run directory name (unique within ``runs_dir``; letters, digits, ``._+=-``).
        labelled: labelled data, concatenated in this order.
        test: ``(name, dataset)`` held-out sets (labelled); the first also serves as the
            validation set during training (its first 50 samples, for the log only).
        unlabelled: unlabelled data (concatenated); only used when ``alpha > 0``.
        alpha: weight of the self-supervised loss (0: supervised only).
        seed: training seed.
        minutes: budget in minutes of ``clock`` (``"cpu"``: CPU time of the training
            process, ``"wall"``: elapsed time).
        threads: torch threads of the training process.
        train_overrides: other ``TrainConfig`` fields as ``(name, value)`` pairs.
        meta: copied into the result row first (e.g. the grid coordinates).
    """

    name: str
    labelled: tuple[Subset, ...]
    test: tuple[tuple[str, DatasetSpec], ...]
    unlabelled: tuple[Subset, ...] = ()
    alpha: float = 0.5
    seed: int = 0
    minutes: float = 2.0
    clock: str = "cpu"
    threads: int = 1
    train_overrides: tuple[tuple[str, Any], ...] = ()
    meta: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        from s3k_envs.keypoints.train import TrainConfig

        if not isinstance(self.name, str) or not _NAME_OK.match(self.name):
            raise ValueError(f"RunSpec.name: expected a directory name of letters, digits and"
                             f" ._+=- , got {self.name!r}")
        for attr in ("labelled", "unlabelled"):
            value = getattr(self, attr)
            if isinstance(value, Subset):
                value = (value,)
            value = tuple(value)
            for s in value:
                if not isinstance(s, Subset):
                    raise ValueError(f"RunSpec.{attr} of {self.name}: expected Subset items,"
                                     f" got {s!r}")
            object.__setattr__(self, attr, value)
        if not self.labelled:
            raise ValueError(f"RunSpec.labelled of {self.name}: needs at least one Subset")
        for s in self.labelled:
            s.labelled_count()  # raises on too few labels
        tests = tuple(self.test)
        if not tests:
            raise ValueError(f"RunSpec.test of {self.name}: needs at least one test set")
        for item in tests:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str)
                    or not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", item[0])
                    or not isinstance(item[1], DatasetSpec)):
                raise ValueError(f"RunSpec.test of {self.name}: expected (identifier, "
                                 f"DatasetSpec) pairs, got {item!r}")
            if item[1].labelled == 0:
                raise ValueError(f"RunSpec.test {item[0]!r} of {self.name}: the dataset has "
                                 "no labelled samples to evaluate on")
        names = [t for t, _ in tests]
        if len(set(names)) != len(names):
            raise ValueError(f"RunSpec.test of {self.name}: duplicate names {names}")
        object.__setattr__(self, "test", tests)
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
                math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"RunSpec.alpha of {self.name}: expected a finite value >= 0, "
                             f"got {alpha!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"RunSpec.seed of {self.name}: expected an int >= 0, got "
                             f"{self.seed!r}")
        if isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float)) or not (
                math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"RunSpec.minutes of {self.name}: expected a finite value > 0, "
                             f"got {self.minutes!r}")
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"RunSpec.clock of {self.name}: expected 'cpu' or 'wall', got "
                             f"{self.clock!r}")
        if not _is_int(self.threads) or self.threads < 1:
            raise ValueError(f"RunSpec.threads of {self.name}: expected an int >= 1, got "
                             f"{self.threads!r}")
        overrides = _pairs(f"RunSpec.train_overrides of {self.name}", self.train_overrides)
        fields = TrainConfig.__dataclass_fields__
        for k, _ in overrides:
            if k not in fields:
                raise ValueError(f"RunSpec.train_overrides of {self.name}: unknown TrainConfig"
                                 f" field {k!r}")
            if k in ("alpha", "seed", "minutes", "clock", "threads", "val_samples"):
                raise ValueError(f"RunSpec.train_overrides of {self.name}: {k!r} is a RunSpec"
                                 " field (or fixed by the runner); set it there")
        object.__setattr__(self, "train_overrides", overrides)
        object.__setattr__(self, "meta", _pairs(f"RunSpec.meta of {self.name}", self.meta))

    @property
    def num_labelled(self) -> int:
        """Labelled samples used (sum over ``labelled``)."""
        return sum(s.labelled_count() for s in self.labelled)

    @property
    def num_unlabelled(self) -> int:
        """Unlabelled samples used (0 when ``alpha == 0``)."""
        return sum(s.unlabelled_count() for s in self.unlabelled) if self.alpha > 0 else 0

    def datasets(self) -> list[DatasetSpec]:
        """Every dataset the run reads (unlabelled ones only when alpha > 0), in order."""
        specs = [s.spec for s in self.labelled]
        if self.alpha > 0:
            specs += [s.spec for s in self.unlabelled]
        specs += [spec for _, spec in self.test]
        out: list[DatasetSpec] = []
        for spec in specs:
            if spec not in out:
                out.append(spec)
        return out

    def train_config(self) -> Any:
        """The :class:`~s3k_envs.keypoints.train.TrainConfig` of this run."""
        from s3k_envs.keypoints.train import TrainConfig

        kwargs: dict[str, Any] = {"steps": 10**9, "val_samples": VAL_SAMPLES}
        kwargs.update({k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in self.train_overrides})
        return TrainConfig(minutes=float(self.minutes), clock=self.clock,
                           alpha=float(self.alpha), seed=int(self.seed),
                           threads=int(self.threads), **kwargs)

    def fingerprint(self) -> dict[str, Any]:
        """JSON of the fields that define the method (what ``run_spec.json`` stores)."""
        return {
            "labelled": [s.to_json() for s in self.labelled],
            "unlabelled": [s.to_json() for s in self.unlabelled] if self.alpha > 0 else [],
            "alpha": float(self.alpha), "seed": int(self.seed), "clock": self.clock,
            "train_overrides": _json_value("train_overrides", dict(self.train_overrides)),
        }


# ---------------------------------------------------------------------------- arrays
_LABEL_KEYS = ("keypoints_2d", "label_mask", "keypoints_3d", "labelling_cameras")


def first_labelled(arrays: Mapping[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
    """The first ``m`` labelled samples of a ``load_arrays`` dict, as a dict of the same
    layout holding only them (``N = M = m``).

    Raises:
        ValueError: fewer than ``m`` labelled samples, or ``m < 1``.
    """
    rows = np.asarray(arrays["label_rows"], dtype=np.int64)
    if not _is_int(m) or m < 1 or m > len(rows):
        raise ValueError(f"first_labelled: expected 1..{len(rows)} labelled samples, got {m!r}")
    rows = rows[:m]
    out = {k: np.asarray(arrays[k])[rows] for k in ("images", "intrinsics", "extrinsics",
                                                      "sample_index")}
    out["labelled"] = np.ones(m, dtype=bool)
    out["label_rows"] = np.arange(m, dtype=np.int64)
    for k in _LABEL_KEYS:
        out[k] = np.asarray(arrays[k])[:m]
    return out


def first_samples(arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first ``n`` samples of a ``load_arrays`` dict as unlabelled data: images,
    intrinsics, extrinsics, sample_index ``(n, ...)``, ``labelled`` all False and empty
    (``M = 0``) label arrays.

    Raises:
        ValueError: fewer than ``n`` samples, or ``n < 1``.
    """
    total = len(arrays["images"])
    if not _is_int(n) or n < 1 or n > total:
        raise ValueError(f"first_samples: expected 1..{total} samples, got {n!r}")
    out = {k: np.asarray(arrays[k])[:n] for k in ("images", "intrinsics", "extrinsics",
                                                    "sample_index")}
    out["labelled"] = np.zeros(n, dtype=bool)
    out["label_rows"] = np.zeros(0, dtype=np.int64)
    for k in _LABEL_KEYS:
        a = np.asarray(arrays[k])
        out[k] = np.zeros((0, *a.shape[1:]), dtype=a.dtype)
    return out


def concat_arrays(parts: Sequence[Mapping[str, np.ndarray]],
                  sources: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Concatenate ``load_arrays``-style dicts (``label_rows`` re-indexed).

    Raises:
        ValueError: no parts, or parts whose cameras / image size / keypoints differ
            (naming the ``sources``).
    """
    if not parts:
        raise ValueError("concat_arrays: nothing to concatenate")
    sources = list(sources or [f"part {i}" for i in range(len(parts))])
    ref = tuple(parts[0]["images"].shape[1:])
    ref_k = parts[0]["keypoints_2d"].shape[2]
    for p, src in zip(parts, sources, strict=True):
        if tuple(p["images"].shape[1:]) != ref or p["keypoints_2d"].shape[2] != ref_k:
            raise ValueError(
                f"concat_arrays: {src} has images {tuple(p['images'].shape[1:])} and "
                f"{p['keypoints_2d'].shape[2]} keypoints, {sources[0]} has {ref} and {ref_k}")
    if len(parts) == 1:
        return dict(parts[0])
    out: dict[str, np.ndarray] = {}
    for k in parts[0]:
        if k == "label_rows":
            offsets = np.cumsum([0] + [len(p["images"]) for p in parts[:-1]])
            out[k] = np.concatenate([np.asarray(p[k]) + o for p, o in zip(parts, offsets,
                                                                          strict=True)])
        else:
            out[k] = np.concatenate([np.asarray(p[k]) for p in parts])
    return out


class _DataCache:
    """``load_arrays`` results by dataset directory, kept for the life of the process."""

    def __init__(self) -> None:
        self.arrays: dict[str, dict[str, np.ndarray]] = {}

    def get(self, path: Path) -> dict[str, np.ndarray]:
        from s3k_envs.keypoints.dataset import load_arrays

        key = str(Path(path).resolve())
        if key not in self.arrays:
            self.arrays[key] = load_arrays(path)
        return self.arrays[key]


_CACHE = _DataCache()


def labelled_arrays(subsets: Sequence[Subset], data_dir: Path = DEFAULT_DATA_DIR,
                    cache: _DataCache | None = None) -> dict[str, np.ndarray]:
    """The labelled samples of ``subsets`` (each its first ``count`` labelled samples),
    concatenated in order: a ``load_arrays``-style dict with ``N = M`` = the total count.

    The datasets must exist (:func:`ensure_dataset`).
    """
    cache = cache or _CACHE
    parts = [first_labelled(cache.get(Path(data_dir) / s.spec.dirname()), s.labelled_count())
             for s in subsets]
    return concat_arrays(parts, [s.spec.dirname() for s in subsets])


def unlabelled_arrays(subsets: Sequence[Subset], data_dir: Path = DEFAULT_DATA_DIR,
                      cache: _DataCache | None = None) -> dict[str, np.ndarray] | None:
    """The first ``count`` samples of each subset as unlabelled data, concatenated (None
    for no subsets)."""
    if not subsets:
        return None
    cache = cache or _CACHE
    parts = [first_samples(cache.get(Path(data_dir) / s.spec.dirname()), s.unlabelled_count())
             for s in subsets]
    return concat_arrays(parts, [s.spec.dirname() for s in subsets])


# ---------------------------------------------------------------------------- running
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished(summary: Mapping[str, Any] | None, run: RunSpec, cfg: Any) -> bool:
    """A summary of a run that reached this spec's budget (or its step limit)."""
    if not summary or summary.get("interrupted"):
        return False
    if summary.get("steps", 0) >= cfg.steps:
        return True
    return float(summary.get("elapsed_s", 0.0)) >= 60.0 * float(run.minutes) - 1.0


def _check_run_dir(run: RunSpec, run_dir: Path) -> None:
    """Write ``run_spec.json``, or check that an existing one describes the same method."""
    path = run_dir / "run_spec.json"
    mine = run.fingerprint()
    old = _read_json(path)
    if old is not None:
        diff = [k for k in _FIXED_FIELDS if old.get(k) != mine.get(k)]
        if diff:
            raise ValueError(
                f"{run_dir}: holds a run with other {diff} than the spec named {run.name!r} "
                f"(old {[old.get(k) for k in diff]}, new {[mine.get(k) for k in diff]}); "
                "use another --runs-dir or delete that directory")
        return
    if (run_dir / "train_state.pt").exists():
        raise ValueError(f"{run_dir}: holds a training state but no run_spec.json; it was not"
                         " written by this runner; use another --runs-dir or delete it")
    run_dir.mkdir(parents=True, exist_ok=True)
    common.write_json(path, mine)


def run_one(run: RunSpec, runs_dir: Path, data_dir: Path = DEFAULT_DATA_DIR,
            keypoint_names: Sequence[str] | None = None, progress: bool = False,
            stop_at_step: int | None = None) -> dict[str, Any]:
    """Train (or resume, or reuse) one run and evaluate it; returns its result row.

    The datasets must exist (:func:`run_grid` generates them first). ``stop_at_step``: stop
    training there (checkpointed, as if interrupted; a later call resumes), for tests.
    """
    import torch

    from s3k_envs.keypoints.dataset import read_manifest
    from s3k_envs.keypoints.evaluate import evaluate, model_predict_fn
    from s3k_envs.keypoints.model import load_checkpoint
    from s3k_envs.keypoints.train import train

    torch.set_num_threads(int(run.threads))
    data_dir = Path(data_dir)
    run_dir = Path(runs_dir) / run.name
    _check_run_dir(run, run_dir)
    cfg = run.train_config()
    first = data_dir / run.labelled[0].spec.dirname()
    names = list(keypoint_names or read_manifest(first)["keypoint_names"])
    summary = _read_json(run_dir / "summary.json")
    t0 = time.monotonic()
    test_arrays: dict[str, dict[str, np.ndarray]] = {}

    def test(name: str) -> dict[str, np.ndarray]:
        if name not in test_arrays:
            spec = dict(run.test)[name]
            test_arrays[name] = _CACHE.get(data_dir / spec.dirname())
        return test_arrays[name]

    trained = False
    if not _finished(summary, run, cfg):
        print(f"[{run.name}] training: {run.num_labelled} labelled, {run.num_unlabelled} "
              f"unlabelled, alpha {run.alpha:g}, seed {run.seed}, {run.minutes:g} {run.clock}"
              "-min", file=sys.stderr, flush=True)
        lab = labelled_arrays(run.labelled, data_dir)
        unl = unlabelled_arrays(run.unlabelled, data_dir) if run.alpha > 0 else None
        val_name = run.test[0][0]
        sources = {"labelled": "+".join(s.spec.dirname() for s in run.labelled),
                   "val": run.test[0][1].dirname()}
        if unl is not None:
            sources["unlabelled"] = "+".join(s.spec.dirname() for s in run.unlabelled)
        summary = train(cfg, lab, run_dir, unlabelled=unl, val=test(val_name),
                        keypoint_names=names, env_id=run.labelled[0].spec.env_id,
                        progress_bar=progress, sources=sources, stop_at_step=stop_at_step)
        trained = True
    assert summary is not None
    eval_key = {"steps": summary["steps"],
                "tests": {t: spec.dirname() for t, spec in run.test}}
    cached = _read_json(run_dir / "eval.json")
    if not trained and cached and cached.get("key") == eval_key:
        metrics = cached["metrics"]
    else:
        model, config = load_checkpoint(run_dir / "model.pt")
        metrics = {}
        for t, _ in run.test:
            m, _ = evaluate(model_predict_fn(model, config), test(t), names)
            metrics[t] = {"rms_px": m["rms_px"], "median_mm": m["mm"]["median"],
                          "p90_mm": m["mm"]["p90"], "mean_mm": m["mm"]["mean"],
                          "samples": len(test(t)["label_rows"]),
                          "per_keypoint_median_mm": {k: v["mm"]["median"] for k, v in
                                                     m["per_keypoint"].items()}}
        common.write_json(run_dir / "eval.json", {"key": eval_key, "metrics": metrics})
    row: dict[str, Any] = dict(run.meta)
    row.update({
        "name": run.name, "alpha": float(run.alpha), "seed": int(run.seed),
        "labels": int(summary["num_labelled"]),
        "unlabelled": int(summary["num_unlabelled"]) if run.alpha > 0 else 0,
        "minutes": float(summary["elapsed_s"]) / 60.0,
        "clock": summary.get("clock", run.clock), "steps": int(summary["steps"]),
        "steps_per_s": float(summary["steps_per_s"]),
        "unsup_on_at": summary.get("unsup_on_at_progress"),
        "run": str(run_dir),
    })
    for t, _ in run.test:
        for suffix in METRIC_SUFFIXES:
            row[f"{t}_{suffix}"] = float(metrics[t][suffix])
    row["per_keypoint_median_mm"] = {t: metrics[t]["per_keypoint_median_mm"]
                                     for t, _ in run.test}
    first_test = run.test[0][0]
    print(f"[{run.name}] {'trained' if trained else 'cached'} in {time.monotonic() - t0:.0f} s"
          f" wall: {row['steps']} steps, {first_test} RMS {row[f'{first_test}_rms_px']:.2f} "
          f"px, median {row[f'{first_test}_median_mm']:.2f} mm", file=sys.stderr, flush=True)
    return row


def _run_in_worker(run: RunSpec, runs_dir: str, data_dir: str,
                   keypoint_names: list[str], fault_dir: str | None = None,
                   fault_step: int | None = None) -> dict[str, Any]:
    """:func:`run_one` in a pool process or Ray task (its dataset cache lives as long as the
    worker). ``fault_dir`` / ``fault_step``: the test seam of
    ``s3k_envs.keypoints.ray_backend.FAULT_DIR`` (the first attempt trains to
    ``fault_step``, then its process dies)."""
    if fault_dir is not None:
        from s3k_envs.keypoints import ray_backend

        if ray_backend.claim_fault(fault_dir, f"run_{run.name}"):
            row = run_one(run, Path(runs_dir), Path(data_dir), keypoint_names,
                          stop_at_step=fault_step)
            with open(Path(fault_dir) / f"run_{run.name}", "a") as f:
                f.write(f"steps {row['steps']}\n")
            os._exit(1)  # a dead worker after a checkpoint: Ray retries the run
    return run_one(run, Path(runs_dir), Path(data_dir), keypoint_names)


def run_grid(runs: Sequence[RunSpec], runs_dir: Path, data_dir: Path = DEFAULT_DATA_DIR,
             jobs: int = 2, workers: int | None = None,
             progress: bool = False, ray: str | None = None) -> list[dict[str, Any]]:
    """Generate the data of, train and evaluate every run; one result row per run, in order.

    Args:
        runs: the runs (unique names).
        runs_dir: parent of the run directories.
        data_dir: parent of the dataset directories.
        jobs: runs trained side by side (processes; 1 = in this process).
        workers: dataset generation processes (None: ``generate_dataset``'s default).
        progress: progress bars (only with ``jobs == 1``).
        ray: run on Ray instead of local processes (``"local"`` or a cluster address): the
            datasets' shards and then every run are Ray tasks (1 CPU each; ``jobs`` is then
            Ray's business). Run and data directories must be on a file system every node
            sees; a run whose worker died is retried by Ray and resumes from its last
            checkpoint, and rerunning an interrupted grid skips finished runs, as locally.

    Returns:
        Rows: ``dict(run.meta)`` then ``name, alpha, seed, labels, unlabelled, minutes,
        clock, steps, steps_per_s, unsup_on_at, run`` and, for every test set ``T``,
        ``T_rms_px`` (px), ``T_median_mm``, ``T_p90_mm``, ``T_mean_mm`` (mm), plus
        ``per_keypoint_median_mm`` (nested; JSON only).

    Raises:
        ValueError: no runs, duplicate names, ``jobs < 1``, datasets with different
            keypoints, a run directory holding another method.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("run_grid: no runs")
    for r in runs:
        if not isinstance(r, RunSpec):
            raise ValueError(f"run_grid: expected RunSpec items, got {r!r}")
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"run_grid: duplicate run names {dup}")
    if not _is_int(jobs) or jobs < 1:
        raise ValueError(f"run_grid: jobs must be an int >= 1, got {jobs!r}")
    from s3k_envs.keypoints.dataset import read_manifest

    data_dir, runs_dir = Path(data_dir), Path(runs_dir)
    specs: list[DatasetSpec] = []
    for r in runs:
        for spec in r.datasets():
            if spec not in specs:
                specs.append(spec)
    t0 = time.monotonic()
    for spec in specs:
        print(f"dataset {data_dir / spec.dirname()} ...", file=sys.stderr, flush=True)
        ensure_dataset(spec, data_dir, workers, ray)
    print(f"{len(specs)} datasets ready in {time.monotonic() - t0:.0f} s", file=sys.stderr,
          flush=True)
    keypoints = {spec.dirname(): list(read_manifest(data_dir / spec.dirname())
                                      ["keypoint_names"]) for spec in specs}
    ref_name, ref = next(iter(keypoints.items()))
    for name, kp in keypoints.items():
        if kp != ref:
            raise ValueError(f"run_grid: dataset {name} has keypoints {kp}, {ref_name} has "
                             f"{ref}; one grid needs one set of keypoints")
    runs_dir.mkdir(parents=True, exist_ok=True)
    if ray:
        from s3k_envs.keypoints import ray_backend

        ray_module = ray_backend.connect(ray)
        # max_retries: a run whose worker process dies is run again (it resumes from the run
        # directory's checkpoint); the driver collects exactly one row per run.
        task = ray_module.remote(num_cpus=1, max_retries=ray_backend.MAX_RETRIES)(
            _run_in_worker)
        refs = [task.remote(r, str(runs_dir), str(data_dir), ref, ray_backend.FAULT_DIR,
                            ray_backend.FAULT_STEP) for r in runs]
        return list(ray_module.get(refs))
    if jobs == 1 or len(runs) == 1:
        return [run_one(r, runs_dir, data_dir, ref, progress) for r in runs]
    with ProcessPoolExecutor(min(jobs, len(runs)),
                             mp_context=mp.get_context("forkserver")) as pool:
        futures = [pool.submit(_run_in_worker, r, str(runs_dir), str(data_dir), ref)
                   for r in runs]
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------- results
def mean_over_seeds(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                    values: Sequence[str]) -> list[dict[str, Any]]:
    """Group ``rows`` by ``keys`` (first-seen order) and average ``values`` over each group.

    Returns rows with ``keys``, ``n`` (rows in the group) and for each value ``v``: ``v``
    (mean), ``v_std`` (population std), ``v_min``, ``v_max``. Missing / non-finite values
    are skipped (NaN when none is left).
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["n"] = len(members)
        for v in values:
            xs = [float(m[v]) for m in members
                  if isinstance(m.get(v), (int, float)) and math.isfinite(float(m[v]))]
            a = np.asarray(xs, dtype=float)
            row[v] = float(a.mean()) if xs else math.nan
            row[f"{v}_std"] = float(a.std()) if xs else math.nan
            row[f"{v}_min"] = float(a.min()) if xs else math.nan
            row[f"{v}_max"] = float(a.max()) if xs else math.nan
        out.append(row)
    return out


def write_results(out_dir: Path, stem: str, rows: Sequence[Mapping[str, Any]],
                  columns: Sequence[str], settings: Mapping[str, Any],
                  plot: Callable[[Sequence[Mapping[str, Any]], Path], Path],
                  extra: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``<stem>.csv`` (``columns`` of ``rows``), ``<stem>.json`` (all of ``rows``,
    ``settings``, machine info and the command line, plus ``extra``) and ``<stem>.png``
    (``plot(rows, path)``), each atomically, into ``out_dir``; returns the three paths."""
    if not rows:
        raise ValueError("write_results: no rows")
    out_dir = Path(out_dir)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()}
    doc = {"benchmark": stem, "rows": list(rows), "settings": settings,
           "machine": common.machine_info(), "command": common.command_line(),
           **dict(extra or {})}
    return [
        common.write_csv(out_dir / f"{stem}.csv", rows, columns),
        common.write_json(out_dir / f"{stem}.json", doc),
        plot(rows, out_dir / f"{stem}.png"),
    ]


# ---------------------------------------------------------------------------- command line
PROFILE_NAMES = ("smoke", "quick", "full")


def add_common_args(p: argparse.ArgumentParser, runs_dir_help: str) -> None:
    """The options every paper benchmark shares: the profile (one of ``--smoke``,
    ``--quick``, ``--full``, required), ``--jobs``, ``--workers``, ``--out``,
    ``--runs-dir`` (described by ``runs_dir_help``), ``--data-dir``, ``--seeds``,
    ``--minutes`` (CPU-minutes per run). Check them with :func:`check_common_args`."""
    g = p.add_mutually_exclusive_group(required=True)
    for name in PROFILE_NAMES:
        g.add_argument(f"--{name}", action="store_const", dest="profile", const=name,
                       help=f"the {name} profile (see the module docstring)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    p.add_argument("--workers", type=int, default=None, help="dataset generation processes")
    p.add_argument("--out", type=Path, default=None,
                   help="result directory (default benchmarks/results; --smoke: the runs dir)")
    p.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="generated datasets (shared by the paper benchmarks)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="training seeds (default: the profile's)")
    p.add_argument("--minutes", type=float, default=None,
                   help="CPU-minutes per run (default: the profile's)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the datasets' shards and every run as Ray tasks: without "
                        "ADDRESS on a local Ray instance, else on the cluster at ADDRESS "
                        "(docs/scaling.md); needs pip install 's3k-envs[ray]'")


def check_common_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject (``p.error``) bad values of the options of :func:`add_common_args`."""
    if args.jobs < 1:
        p.error(f"--jobs: expected >= 1, got {args.jobs}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        p.error(f"--minutes: expected a value > 0, got {args.minutes}")
    if args.seeds is not None and min(args.seeds) < 0:
        p.error("--seeds: expected values >= 0")


def result_stem(name: str, profile: str) -> str:
    """Result file stem: ``name`` (full), ``name_quick`` or ``name_smoke``."""
    return name if profile == "full" else f"{name}_{profile}"
