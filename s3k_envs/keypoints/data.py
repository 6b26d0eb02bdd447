"""Multi-view keypoint datasets: generation (``s3k generate``), on-disk format and loading.

A dataset is a directory (full description in ``docs/datasets.md``)::

    DIR/manifest.json      written last: a directory without it is an incomplete dataset
    DIR/shard_00000.npz    samples [0, shard_size)
    DIR/shard_00001.npz    samples [shard_size, 2 * shard_size), ...
    DIR/progress.json      only while generating: the parameters, so that a rerun resumes

Sample ``i`` is one ``env.reset(seed=sample_seed(seed, i))``: a random scene seen by a
random camera rig. Samples ``0 .. num_labelled - 1`` are labelled (the first M indices, so
the labelled subsets of datasets that differ only in M are nested); the others carry no
keypoints on disk at all. Every shard holds, for its ``n`` samples (``C`` cameras, ``K``
keypoints, ``H x W`` images)::

    images        uint8   (n, C, H, W, 3)  RGB, row 0 = top
    intrinsics    float32 (n, C, 3, 3)     K per camera, pixels
    extrinsics    float32 (n, C, 4, 4)     world->camera [R|t], OpenCV axes, metres
    sample_index  int64   (n,)             global sample index (start .. start + n - 1)
    labelled      bool    (n,)

and for its ``m`` labelled samples only (rows ``label_rows``)::

    label_rows         int64   (m,)        row within the shard
    keypoints_2d       float32 (m, C, K, 2) labels (u, v) in pixels (+ Gaussian noise); 0
                                            where label_mask is False
    label_mask         bool    (m, C, K)   camera c labels keypoint k (c is a labelling
                                            camera and k is visible in it)
    labelling_cameras  bool    (m, C)      the cameras chosen to label this sample
    keypoints_3d       float32 (m, K, 3)   ground-truth world points, metres: for
                                            EVALUATION ONLY, training uses the 2D labels

Shards are ``.npz`` archives (uncompressed unless ``--compress``) written byte-for-byte
deterministically (fixed zip timestamps), loaded with ``allow_pickle=False``; the loader
memory-maps uncompressed members.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import itertools
import json
import math
import mmap
import multiprocessing as mp
import os
import platform
import re
import shlex
import signal
import struct
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from s3k_envs.atomic import TMP_SUFFIX, atomic_open, atomic_write_text, is_temporary
from s3k_envs.progress import Progress

FORMAT = "s3k-dataset"
FORMAT_VERSION = 1
#: Format versions this module reads.
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
PROGRESS_NAME = "progress.json"
LOCK_NAME = ".lock"
DEFAULT_SHARD_SIZE = 256
DEFAULT_IMAGE_SIZE = 128
#: SeedSequence key of the labelling randomness (camera choice, label noise) of a sample.
_LABEL_STREAM = 1
_FLAT_LIST = re.compile(r"\[(?:\n\s*[^\[\]{}\n]+)+\n\s*\]")
_FLAT_DICT = re.compile(r"\{(?:\n\s*[^\[\]{}\n]+)+\n\s*\}")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: identical runs, identical bytes

#: Arrays of every shard: name -> (shape given n, C, H, W, K; dtype).
_SAMPLE_ARRAYS: dict[str, tuple[Any, np.dtype]] = {
    "images": (lambda n, c, h, w, k: (n, c, h, w, 3), np.dtype(np.uint8)),
    "intrinsics": (lambda n, c, h, w, k: (n, c, 3, 3), np.dtype(np.float32)),
    "extrinsics": (lambda n, c, h, w, k: (n, c, 4, 4), np.dtype(np.float32)),
    "sample_index": (lambda n, c, h, w, k: (n,), np.dtype(np.int64)),
    "labelled": (lambda n, c, h, w, k: (n,), np.dtype(np.bool_)),
}
#: Arrays of the labelled rows of a shard: name -> (shape given m, C, H, W, K; dtype).
_LABEL_ARRAYS: dict[str, tuple[Any, np.dtype]] = {
    "label_rows": (lambda m, c, h, w, k: (m,), np.dtype(np.int64)),
    "keypoints_2d": (lambda m, c, h, w, k: (m, c, k, 2), np.dtype(np.float32)),
    "label_mask": (lambda m, c, h, w, k: (m, c, k), np.dtype(np.bool_)),
    "keypoints_3d": (lambda m, c, h, w, k: (m, k, 3), np.dtype(np.float32)),
    "labelling_cameras": (lambda m, c, h, w, k: (m, c), np.dtype(np.bool_)),
}
#: Label arrays a reader can do without (derived when absent).
_OPTIONAL_ARRAYS = frozenset({"labelling_cameras"})


class DatasetError(ValueError):
    """A dataset directory or file is missing, incomplete, inconsistent or implausible.

    The message names the file and what is wrong with it.
    """


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard_00000.npz``, ..."""
    return f"shard_{index:05d}.npz"


def shard_layout(num_samples: int, shard_size: int) -> list[dict[str, Any]]:
    """Shards of a dataset: ``[{"file", "start", "count"}, ...]`` covering ``0..N-1`` in order."""
    return [
        {"file": shard_name(i), "start": start, "count": min(shard_size, num_samples - start)}
        for i, start in enumerate(range(0, num_samples, shard_size))
    ]


# ---------------------------------------------------------------------------- seeds
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def sample_seed(seed: int, index: int) -> int:
    """Seed of ``env.reset`` for sample ``index`` of a dataset generated with ``seed``.

    64 bits of ``np.random.SeedSequence([seed, index])``: every sample can be regenerated
    alone, whatever process or order generated the others.
    """
    seq = np.random.SeedSequence([_check_seed(seed), _check_seed(index)])
    return int(seq.generate_state(1, np.uint64)[0])


def label_rng(seed: int, index: int) -> np.random.Generator:
    """Random generator of the labelling of sample ``index`` (camera choice, then noise).

    Independent of the env's own randomness (``SeedSequence([seed, index, 1])``).
    """
    return np.random.default_rng(
        np.random.SeedSequence([_check_seed(seed), _check_seed(index), _LABEL_STREAM])
    )


# ---------------------------------------------------------------------------- parameters
@dataclass
class GenerationParams:
    """Everything that determines a dataset's content (and nothing that does not).

    Attributes:
        env_id: Gymnasium id of a multi-view env (``S3K-Box-v0``, ...).
        env_options: keyword arguments of ``gymnasium.make`` (JSON values; includes
            ``image_size``).
        seed: dataset seed (non-negative int).
        num_samples: N samples (env resets).
        num_labelled: M; samples ``0..M-1`` are labelled.
        label_cameras: cameras chosen at random to label each labelled sample (>= 2), or
            None for all cameras.
        label_noise_px: standard deviation of the Gaussian noise added to each label
            coordinate, pixels.
        shard_size: samples per shard.
        rollout_steps: if > 0, each sample runs the env's scripted expert
            (``s3k_envs.experts.make_expert``) for a number of steps drawn uniformly from
            ``0..rollout_steps`` after the reset, so the data covers the states a task passes
            through (gripper near the object, plug in the socket), not only initial states.
            Envs without a scripted expert (e.g. wrapped with ``MultiViewCameras``) take
            uniformly random actions instead.
        rollout_noise: std of Gaussian noise added to the expert's actions (in [-1, 1]
            action units) during the rollout, for states off the expert's path.
    """

    env_id: str
    env_options: dict[str, Any]
    seed: int
    num_samples: int
    num_labelled: int
    label_cameras: int | None
    label_noise_px: float
    shard_size: int
    rollout_steps: int = 0
    rollout_noise: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (the keys of the manifest they fill)."""
        return asdict(self)


def _json_normalise(name: str, value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples -> lists); clear error otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name}: expected JSON-serialisable values, got {value!r} ({e})"
        ) from None


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def make_params(
    env_id: str,
    num_samples: int,
    num_labelled: int = 0,
    *,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    env_options: Mapping[str, Any] | None = None,
    label_cameras: int | None = None,
    label_noise_px: float = 0.0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    rollout_steps: int = 0,
    rollout_noise: float = 0.0,
) -> GenerationParams:
    """Validate generation arguments (see :func:`generate_dataset`) into parameters.

    Raises:
        ValueError: a value out of range, ``label_cameras < 2``, conflicting image sizes or
            options that are not JSON values.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id: expected a Gymnasium env id string, got {env_id!r}")
    num_samples = _check_int("num_samples", num_samples, 1)
    num_labelled = _check_int("num_labelled", num_labelled, 0)
    if num_labelled > num_samples:
        raise ValueError(
            f"num_labelled: expected at most num_samples={num_samples}, got {num_labelled}"
        )
    if label_cameras is not None:
        label_cameras = _check_int("label_cameras", label_cameras, 0)
        if label_cameras < 2:
            raise ValueError(
                f"label_cameras: expected >= 2 cameras per labelled sample (triangulating a "
                f"label needs two views), got {label_cameras}"
            )
    try:
        noise = float(label_noise_px)
    except (TypeError, ValueError):
        noise = math.nan
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"label_noise_px: expected a finite value >= 0, got {label_noise_px!r}")
    rollout_steps = _check_int("rollout_steps", rollout_steps, 0)
    try:
        rnoise = float(rollout_noise)
    except (TypeError, ValueError):
        rnoise = math.nan
    if not (math.isfinite(rnoise) and rnoise >= 0):
        raise ValueError(f"rollout_noise: expected a finite value >= 0, got {rollout_noise!r}")
    options = dict(env_options or {})
    for key in options:
        if not isinstance(key, str):
            raise ValueError(f"env_options: keys must be strings, got {key!r}")
    if "render_mode" in options:
        raise ValueError("env_options: render_mode is not an option of dataset generation")
    if image_size is not None:
        if "image_size" in options and _json_normalise("image_size", options["image_size"]) != (
            _json_normalise("image_size", image_size)
        ):
            raise ValueError(
                f"image_size {image_size!r} conflicts with env option image_size="
                f"{options['image_size']!r}; give it once"
            )
        options["image_size"] = image_size
    options.setdefault("image_size", DEFAULT_IMAGE_SIZE)
    return GenerationParams(
        env_id=env_id,
        env_options=_json_normalise("env_options", options),
        seed=_check_seed(seed),
        num_samples=num_samples,
        num_labelled=num_labelled,
        label_cameras=label_cameras,
        label_noise_px=noise,
        shard_size=_check_int("shard_size", shard_size, 1),
        rollout_steps=rollout_steps,
        rollout_noise=rnoise,
    )


# ---------------------------------------------------------------------------- sampling
def _multiview_hint(env_id: str) -> str:
    """How to turn a MuJoCo env without cameras into one ``s3k generate`` takes."""
    return ("For a MuJoCo env without cameras, attach a calibrated camera rig with "
            "s3k_envs.wrappers.MultiViewCameras, registered as an id by "
            "s3k_envs.wrappers.multiview.register_multiview('MyEnv-MultiView-v0', "
            f"{env_id!r}, keypoints=[...]) (docs/plugging-into-your-env.md)")


def make_env(env_id: str, env_options: Mapping[str, Any]) -> Any:
    """``gymnasium.make(env_id, **env_options)`` without the passive checker.

    Raises:
        ValueError: unknown env id, an env that does not take the options (e.g. not a
            multi-view env: it has no ``image_size``), or the env's own error for bad options.
    """
    import gymnasium as gym

    import s3k_envs  # registers the S3K-* ids

    try:
        return gym.make(env_id, disable_env_checker=True, **dict(env_options))
    except gym.error.Error as e:  # unknown id / namespace / version
        raise ValueError(
            f"env_id {env_id!r}: {e} (S3K envs: {sorted(s3k_envs.ENV_SPECS)}; MuJoCo envs "
            f"with a camera rig: {sorted(s3k_envs.wrappers.multiview.EXAMPLES)})"
        ) from None
    except TypeError as e:  # e.g. "unexpected keyword argument 'image_size'"
        raise ValueError(
            f"{env_id}: gymnasium.make({env_id!r}, **{dict(env_options)!r}) failed ({e}); "
            "`s3k generate` expects a multi-view env (observation dict with 'images', "
            f"'intrinsics' and 'extrinsics') that takes these options. {_multiview_hint(env_id)}"
        ) from e


#: Rollout policy of envs without a scripted expert: uniform random actions.
_RANDOM_ACTIONS = "random actions"


def _rollout_policy(env: Any) -> Any:
    """The scripted expert of an S3K env (``s3k_envs.experts.make_expert``), or
    ``_RANDOM_ACTIONS`` for any other env with a bounded ``Box`` action space.

    Raises:
        ValueError: an env without an expert whose action space is not a bounded ``Box``.
    """
    from gymnasium import spaces

    from s3k_envs.envs.base import MultiViewEnv

    if isinstance(env.unwrapped, MultiViewEnv):
        from s3k_envs.experts import make_expert

        return make_expert(env)
    space = env.action_space
    if not (isinstance(space, spaces.Box) and space.is_bounded("both")):
        raise ValueError(
            f"rollout_steps: {type(env.unwrapped).__name__} has no scripted expert, and "
            f"random actions need a bounded Box action space, got {space}"
        )
    return _RANDOM_ACTIONS


class SampleGenerator:
    """One env that turns sample indices into sample dicts (used in-process and by workers).

    Attributes:
        num_cameras: C. image_size: ``(H, W)`` pixels. keypoint_names: K names.
    """

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self._expert: Any = None
        self.env = make_env(params.env_id, params.env_options)
        try:
            space = self.env.observation_space
            shapes = {key: tuple(space[key].shape) for key in ("images", "intrinsics",
                                                                 "extrinsics")}
        except (KeyError, TypeError):
            self.env.close()
            raise ValueError(
                f"{params.env_id}: expected a multi-view env whose observation dict has "
                f"'images', 'intrinsics' and 'extrinsics', got {self.env.observation_space}. "
                f"{_multiview_hint(params.env_id)}"
            ) from None
        c, h, w, _ = shapes["images"]
        self.num_cameras, self.image_size = int(c), (int(h), int(w))
        try:
            names = self.env.get_wrapper_attr("keypoint_names")
        except AttributeError:
            names = ()
        self.keypoint_names: tuple[str, ...] = tuple(str(n) for n in names)
        if params.num_labelled > 0 and not self.keypoint_names:
            self.env.close()
            raise ValueError(f"{params.env_id}: the env defines no keypoints to label")
        if params.label_cameras is not None and params.label_cameras > self.num_cameras:
            self.env.close()
            raise ValueError(
                f"label_cameras: expected at most the env's {self.num_cameras} cameras, got "
                f"{params.label_cameras}"
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> SampleGenerator:
        """A generator that reproduces the samples of an existing dataset."""
        keys = GenerationParams.__dataclass_fields__
        # Entries added in later versions (rollout_*) default when an older manifest lacks them.
        return cls(GenerationParams(**{k: manifest[k] for k in keys if k in manifest}))

    def sample(self, index: int) -> dict[str, Any]:
        """Sample ``index``: images and calibration, plus labels if ``index < num_labelled``.

        Returns:
            ``images (C, H, W, 3)`` uint8, ``intrinsics (C, 3, 3)`` / ``extrinsics (C, 4, 4)``
            float32 and, for labelled samples, ``keypoints_2d (C, K, 2)`` px float32,
            ``label_mask (C, K)``, ``labelling_cameras (C,)`` bool, ``keypoints_3d (K, 3)``
            m float32.
        """
        p = self.params
        obs, info = self.env.reset(seed=sample_seed(p.seed, index))
        if p.rollout_steps > 0:
            obs, info = self._rollout(index, obs, info)
        out: dict[str, Any] = {
            "images": np.array(obs["images"], dtype=np.uint8),
            "intrinsics": np.array(obs["intrinsics"], dtype=np.float32),
            "extrinsics": np.array(obs["extrinsics"], dtype=np.float32),
        }
        if index < p.num_labelled:
            out.update(self._labels(index, info))
        return out

    def _rollout(self, index: int, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Run the scripted expert (plus action noise) for a random number of steps; envs
        without one (e.g. other people's envs wrapped with ``MultiViewCameras``) take
        uniformly random actions instead."""
        p = self.params
        if self._expert is None:
            self._expert = _rollout_policy(self.env)
        if self._expert is not _RANDOM_ACTIONS:
            self._expert.reset()
        # Its own stream (not the label stream), fixed by (seed, index): same bytes anywhere.
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, index, 0x5EED]))
        steps = int(rng.integers(0, p.rollout_steps + 1))
        for _ in range(steps):
            low, high = self.env.action_space.low, self.env.action_space.high
            if self._expert is _RANDOM_ACTIONS:
                action = rng.uniform(low, high)
            else:
                action = np.asarray(self._expert(obs, info), dtype=np.float64)
                action = action + p.rollout_noise * rng.standard_normal(action.shape)
            obs, _, terminated, truncated, info = self.env.step(
                np.clip(action, low, high).astype(self.env.action_space.dtype))
            if terminated or truncated:
                break
        return obs, info

    def _labels(self, index: int, info: Mapping[str, Any]) -> dict[str, np.ndarray]:
        p = self.params
        c, k = self.num_cameras, len(self.keypoint_names)
        rng = label_rng(p.seed, index)
        chosen = np.zeros(c, dtype=bool)
        if p.label_cameras is None:
            chosen[:] = True
        else:
            chosen[rng.choice(c, size=p.label_cameras, replace=False)] = True
        noise = rng.standard_normal((c, k, 2)) * p.label_noise_px
        uv = np.asarray(info["keypoints_2d"], dtype=np.float64).reshape(c, k, 2) + noise
        mask = np.asarray(info["keypoints_visible"], dtype=bool).reshape(c, k) & chosen[:, None]
        return {
            "keypoints_2d": np.where(mask[..., None], uv, 0.0).astype(np.float32),
            "label_mask": mask,
            "labelling_cameras": chosen,
            "keypoints_3d": np.asarray(info["keypoints"], dtype=np.float32).reshape(k, 3),
        }

    def samples(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Samples ``start .. stop - 1``."""
        return [self.sample(i) for i in range(start, stop)]

    def close(self) -> None:
        """Close the env (frees its renderer)."""
        self.env.close()


def assemble_shard(samples: Sequence[Mapping[str, Any]], start: int, num_labelled: int,
                   num_cameras: int, num_keypoints: int) -> dict[str, np.ndarray]:
    """Stack the sample dicts of samples ``start, start + 1, ...`` into shard arrays."""
    n = len(samples)
    index = np.arange(start, start + n, dtype=np.int64)
    labelled = index < num_labelled
    rows = np.flatnonzero(labelled).astype(np.int64)
    arrays = {
        "images": np.stack([s["images"] for s in samples]),
        "intrinsics": np.stack([s["intrinsics"] for s in samples]).astype(np.float32),
        "extrinsics": np.stack([s["extrinsics"] for s in samples]).astype(np.float32),
        "sample_index": index,
        "labelled": labelled,
        "label_rows": rows,
    }
    c, k = num_cameras, num_keypoints
    empty = {"keypoints_2d": (c, k, 2), "label_mask": (c, k), "labelling_cameras": (c,),
             "keypoints_3d": (k, 3)}
    for key, shape in empty.items():
        dtype = _LABEL_ARRAYS[key][1]
        if rows.size:
            arrays[key] = np.stack([samples[r][key] for r in rows]).astype(dtype)
        else:
            arrays[key] = np.zeros((0, *shape), dtype=dtype)
    return arrays


# ---------------------------------------------------------------------------- file I/O
def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], *,
              compress: bool = False) -> Path:
    """Write ``arrays`` as an ``.npz`` atomically and deterministically.

    The archive is written to a temporary name next to ``path``, synced, then renamed over
    ``path``: a reader sees either no file or a complete one. Member timestamps are fixed,
    so the same arrays give the same bytes.

    Args:
        compress: deflate the members (level 1). Default: stored uncompressed, which
            :func:`read_npz` memory-maps.
    """
    path = Path(path)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    with atomic_open(path, "wb") as f, zipfile.ZipFile(
            f, "w", compression=method, compresslevel=1, allowZip64=True) as zf:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, on every platform: same bytes everywhere
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array),
                                          allow_pickle=False)
    return path


def _one_line(match: re.Match[str]) -> str:
    """Lists of scalars, and small dicts of scalars, on one line (JSON strings hold no raw
    newlines, so only layout changes)."""
    text = match.group(0)
    flat = re.sub(r"\n\s*", " ", text)
    flat = flat[0] + flat[2:-2] + flat[-1]  # no blank inside the brackets
    return flat if text[0] == "[" or len(flat) <= 72 else text


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (temporary file + rename)."""
    path = Path(path)
    text = json.dumps(obj, indent=2, allow_nan=False)
    text = _FLAT_LIST.sub(_one_line, _FLAT_DICT.sub(_one_line, text)) + "\n"
    return atomic_write_text(path, text)


def _member_array(path: Path, buf: mmap.mmap, info: zipfile.ZipInfo,
                  verify: bool) -> np.ndarray:
    """Zero-copy view of a stored (uncompressed) ``.npy`` member of a zip in ``buf``."""
    name = f"{path}: member {info.filename!r}"
    off = info.header_offset
    if off + 30 > len(buf) or buf[off:off + 4] != b"PK\x03\x04":
        raise DatasetError(f"{name}: bad zip local header (truncated or corrupt file)")
    name_len, extra_len = struct.unpack("<HH", buf[off + 26:off + 30])
    start = off + 30 + name_len + extra_len
    end = start + info.file_size
    if end > len(buf):
        raise DatasetError(f"{name}: data runs past the end of the file (truncated)")
    if verify and zlib.crc32(memoryview(buf)[start:end]) != info.CRC:
        raise DatasetError(f"{name}: checksum mismatch (corrupt file)")
    head = io.BytesIO(buf[start:min(end, start + 65536 + 16)])
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as e:
        raise DatasetError(f"{name}: not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise DatasetError(f"{name}: object arrays are not allowed (allow_pickle=False)")
    count = math.prod(shape)
    data = start + head.tell()
    if data + count * dtype.itemsize > end:
        raise DatasetError(
            f"{name}: holds {end - data} data bytes, shape {shape} {dtype} needs "
            f"{count * dtype.itemsize} (truncated)"
        )
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=data)
    return flat.reshape(shape, order="F" if fortran else "C")


def read_npz(path: str | os.PathLike[str], *, verify_checksums: bool = False
             ) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file; uncompressed members are read-only memory-mapped views.

    Compressed members (``np.savez_compressed``) are read into memory. Pickled (object)
    arrays are refused.

    Raises:
        DatasetError: the file is missing, truncated, corrupt or not an ``.npz``.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DatasetError(f"{path}: cannot open shard ({e.strerror or e})") from None
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"{path}: not a readable .npz archive, truncated or corrupt "
                               f"({e})") from None
        with zf:
            members = zf.infolist()
            buf = None
            if any(m.compress_type == zipfile.ZIP_STORED for m in members):
                buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            arrays: dict[str, np.ndarray] = {}
            for info in members:
                if not info.filename.endswith(".npy"):
                    raise DatasetError(f"{path}: unexpected member {info.filename!r}")
                key = info.filename[:-4]
                if info.compress_type == zipfile.ZIP_STORED:
                    arrays[key] = _member_array(path, buf, info, verify_checksums)
                else:
                    try:
                        with zf.open(info) as member:
                            arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
                    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
                        raise DatasetError(f"{path}: member {info.filename!r} unreadable "
                                           f"({e})") from None
    return arrays


# ---------------------------------------------------------------------------- validation
def _require(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise DatasetError(f"{where}: {what}")


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``root/manifest.json`` (not the shards).

    Raises:
        DatasetError: no directory or manifest (an incomplete dataset), unknown format or
            version, missing or inconsistent entries.
    """
    root = Path(root)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if not path.is_file():
        hint = ""
        if (root / PROGRESS_NAME).is_file():
            hint = (": generation did not finish; rerun the same `s3k generate` command to "
                    "resume it")
        raise DatasetError(f"{path}: missing, so {root} is not a complete s3k dataset{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable JSON ({e})") from None
    _require(isinstance(manifest, dict) and manifest.get("format") == FORMAT, path,
             f"not an s3k dataset manifest (expected \"format\": \"{FORMAT}\")")
    version = manifest.get("format_version")
    _require(version in SUPPORTED_FORMAT_VERSIONS, path,
             f"format_version {version!r} is not supported (this s3k reads "
             f"{list(SUPPORTED_FORMAT_VERSIONS)}); regenerate the dataset or update s3k")
    required = ("env_id", "env_options", "seed", "num_samples", "num_labelled", "image_size",
                "num_cameras", "keypoint_names", "label_cameras", "label_noise_px",
                "shard_size", "shards", "labelled_indices")
    missing = [k for k in required if k not in manifest]
    _require(not missing, path, f"missing entries {missing}")

    def is_int(x: Any, minimum: int) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= minimum

    n, m = manifest["num_samples"], manifest["num_labelled"]
    _require(is_int(n, 0), path, f"num_samples: expected an int >= 0, got {n!r}")
    _require(is_int(m, 0) and m <= n, path, f"num_labelled: expected 0..{n}, got {m!r}")
    size = manifest["image_size"]
    _require(isinstance(size, list) and len(size) == 2 and all(is_int(s, 1) for s in size),
             path, f"image_size: expected [H, W], got {size!r}")
    c = manifest["num_cameras"]
    _require(is_int(c, 1), path, f"num_cameras: expected an int >= 1, got {c!r}")
    names = manifest["keypoint_names"]
    _require(isinstance(names, list) and all(isinstance(s, str) for s in names), path,
             f"keypoint_names: expected a list of strings, got {names!r}")
    lc = manifest["label_cameras"]
    _require(lc is None or (is_int(lc, 2) and lc <= c), path,
             f"label_cameras: expected null or 2..{c}, got {lc!r}")
    noise = manifest["label_noise_px"]
    _require(isinstance(noise, (int, float)) and noise >= 0, path,
             f"label_noise_px: expected a number >= 0, got {noise!r}")
    li = manifest["labelled_indices"]
    _require(isinstance(li, list) and len(li) == m and all(is_int(i, 0) and i < n for i in li)
             and all(a < b for a, b in itertools.pairwise(li)), path,
             f"labelled_indices: expected {m} sorted distinct indices in 0..{n - 1}")
    shards = manifest["shards"]
    _require(isinstance(shards, list), path, "shards: expected a list")
    expected_start = 0
    for j, entry in enumerate(shards):
        ok = (isinstance(entry, dict) and isinstance(entry.get("file"), str)
              and is_int(entry.get("start"), 0) and is_int(entry.get("count"), 1))
        _require(ok, path, f"shards[{j}]: expected {{file, start, count}}, got {entry!r}")
        name = entry["file"]
        _require(Path(name).name == name and name not in ("", ".", ".."), path,
                 f"shards[{j}]: file {name!r} must be a plain file name in the dataset dir")
        _require(entry["start"] == expected_start, path,
                 f"shards[{j}] ({name}): starts at {entry['start']}, expected {expected_start}")
        expected_start += entry["count"]
    _require(expected_start == n, path,
             f"shards cover {expected_start} samples, num_samples is {n}")
    return manifest


def _check_rows(bad: np.ndarray, path: Path, samples: np.ndarray, what: str) -> None:
    """Raise naming the first True of ``bad`` (``(rows,)`` or ``(rows, C)``), if any.

    ``samples[row]`` is the global sample index of a row; ``what`` describes the problem.
    """
    if not bad.any():
        return
    where = np.argwhere(bad)[0]
    place = f"sample {int(samples[where[0]])}"
    if len(where) > 1:
        place += f" camera {int(where[1])}"
    raise DatasetError(f"{path}: {place}: {what}")


def check_calibration(path: Path, intrinsics: np.ndarray, extrinsics: np.ndarray,
                      image_size: Sequence[int], start: int = 0) -> None:
    """Check ``(n, C, 3, 3)`` intrinsics and ``(n, C, 4, 4)`` extrinsics for plausibility.

    Finite; ``K[2] = [0, 0, 1]``, focal lengths > 0, principal point inside the image;
    ``T[3] = [0, 0, 0, 1]``, ``R`` orthonormal within 1e-3 with ``det(R) > 0``.

    Raises:
        DatasetError: naming ``path``, the sample (``start`` + row), camera and problem.
    """
    h, w = image_size
    k = np.asarray(intrinsics, dtype=np.float64)
    t = np.asarray(extrinsics, dtype=np.float64)
    samples = start + np.arange(k.shape[0])
    for name, arr in (("intrinsics", k), ("extrinsics", t)):
        _check_rows(~np.isfinite(arr).all(axis=(-1, -2)), path, samples,
                    f"{name} are not finite (NaN or inf)")
    _check_rows(np.abs(k[..., 2, :] - [0.0, 0.0, 1.0]).max(axis=-1) > 1e-6, path, samples,
                "intrinsics: last row is not [0, 0, 1]")
    _check_rows((k[..., 0, 0] <= 0) | (k[..., 1, 1] <= 0), path, samples,
                "intrinsics: focal length is not positive")
    _check_rows((k[..., 0, 2] <= 0) | (k[..., 0, 2] >= w) | (k[..., 1, 2] <= 0)
                | (k[..., 1, 2] >= h), path, samples,
                f"intrinsics: principal point outside the {w}x{h} image")
    _check_rows(np.abs(t[..., 3, :] - [0.0, 0.0, 0.0, 1.0]).max(axis=-1) > 1e-6, path, samples,
                "extrinsics: last row is not [0, 0, 0, 1]")
    rot = t[..., :3, :3]
    err = np.abs(rot @ np.swapaxes(rot, -1, -2) - np.eye(3)).max(axis=(-1, -2))
    _check_rows((err > 1e-3) | (np.linalg.det(rot) <= 0), path, samples,
                "extrinsics: rotation is not orthonormal with det +1 (within 1e-3)")


def validate_shard(path: Path, arrays: Mapping[str, np.ndarray], entry: Mapping[str, Any],
                   manifest: Mapping[str, Any]) -> None:
    """Check one shard's arrays against its manifest entry.

    Raises:
        DatasetError: naming the shard file and what is wrong (missing array, shape, dtype,
            sample indices, labelled rows, non-finite values, implausible calibration,
            labels outside the labelling cameras).
    """
    start, n = int(entry["start"]), int(entry["count"])
    c = int(manifest["num_cameras"])
    h, w = (int(s) for s in manifest["image_size"])
    k = len(manifest["keypoint_names"])
    labelled_set = np.asarray(manifest["labelled_indices"], dtype=np.int64)
    index = np.arange(start, start + n, dtype=np.int64)
    labelled = np.isin(index, labelled_set)
    m = int(labelled.sum())
    for specs, count in ((_SAMPLE_ARRAYS, n), (_LABEL_ARRAYS, m)):
        for key, (shape_fn, dtype) in specs.items():
            if key not in arrays:
                _require(key in _OPTIONAL_ARRAYS, path, f"missing array {key!r}")
                continue
            arr, shape = arrays[key], shape_fn(count, c, h, w, k)
            _require(arr.shape == shape and arr.dtype == dtype, path,
                     f"array {key!r}: expected {dtype} {shape}, got {arr.dtype} {arr.shape}")
    _require(np.array_equal(arrays["sample_index"], index), path,
             f"sample_index: expected {start}..{start + n - 1} in order")
    _require(np.array_equal(arrays["labelled"], labelled), path,
             "labelled flags do not match the manifest's labelled_indices")
    _require(np.array_equal(arrays["label_rows"], np.flatnonzero(labelled)), path,
             "label_rows do not match the labelled flags")
    check_calibration(path, arrays["intrinsics"], arrays["extrinsics"], (h, w), start)
    rows = index[labelled]
    for key in ("keypoints_2d", "keypoints_3d"):
        finite = np.isfinite(arrays[key]).reshape(m, -1).all(axis=1) if m else labelled[:0]
        _check_rows(~finite, path, rows,
                    f"{key} are not finite (NaN or inf)")
    if "labelling_cameras" in arrays:
        cams = arrays["labelling_cameras"]
        _check_rows((arrays["label_mask"] & ~cams[:, :, None]).any(axis=2), path, rows,
                    "label_mask labels a camera that is not a labelling camera")
        wanted = manifest["label_cameras"]
        _check_rows(cams.sum(axis=1) != (c if wanted is None else wanted), path, rows,
                    "number of labelling cameras differs from the manifest's label_cameras="
                    f"{wanted} ({'all ' + str(c) if wanted is None else wanted} expected)")


def _open_dataset(root: Path, verify_checksums: bool
                  ) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:
    manifest = read_manifest(root)
    shards = []
    for entry in manifest["shards"]:
        path = root / entry["file"]
        if not path.is_file():
            raise DatasetError(f"{path}: shard missing (listed in {root / MANIFEST_NAME})")
        arrays = read_npz(path, verify_checksums=verify_checksums)
        validate_shard(path, arrays, entry, manifest)
        shards.append(arrays)
    return manifest, shards


# ---------------------------------------------------------------------------- loading
class KeypointDataset(Dataset):
    """A generated dataset as a ``torch.utils.data.Dataset`` (validated on open).

    Shards are memory-mapped, so opening is cheap and only the samples read are paged in;
    the object pickles without its maps (``DataLoader`` workers reopen them).

    Item ``i`` is a dict of tensors (``C`` cameras, ``K`` keypoints)::

        images             uint8   (C, H, W, 3)  unnormalised RGB
        intrinsics         float32 (C, 3, 3)     pixels
        extrinsics         float32 (C, 4, 4)     world->camera
        labelled           bool    ()
        sample_index       int64   ()
        keypoints_2d       float32 (C, K, 2)     pixel labels where label_mask
        label_mask         bool    (C, K)
        labelling_cameras  bool    (C,)
        keypoints_3d       float32 (K, 3)        ground truth, metres, evaluation only

    For unlabelled samples the last four are zeros / all False (nothing is stored for them),
    so labelled and unlabelled items batch together with the default collate function;
    select with ``labelled`` or ``label_mask``.

    Args:
        path: dataset directory.
        verify_checksums: also check every shard's CRC32 (reads all data once).

    Raises:
        DatasetError: missing/incomplete dataset, unknown format version, a missing,
            truncated or inconsistent shard, implausible calibration — naming the file.
    """

    def __init__(self, path: str | os.PathLike[str], *, verify_checksums: bool = False) -> None:
        self.path = Path(path)
        self.manifest, shards = _open_dataset(self.path, verify_checksums)
        self._shards: list[dict[str, np.ndarray]] | None = shards
        n = int(self.manifest["num_samples"])
        self._shard_of = np.zeros(n, dtype=np.int64)
        self._row = np.zeros(n, dtype=np.int64)
        self._label_pos = np.full(n, -1, dtype=np.int64)
        for s, (entry, arrays) in enumerate(zip(self.manifest["shards"], shards, strict=True)):
            start, count = entry["start"], entry["count"]
            self._shard_of[start:start + count] = s
            self._row[start:start + count] = np.arange(count)
            rows = np.asarray(arrays["label_rows"])
            self._label_pos[start + rows] = np.arange(len(rows))
        #: Sorted indices of the labelled / unlabelled samples, int64.
        self.labelled_indices = np.asarray(self.manifest["labelled_indices"], dtype=np.int64)
        self.unlabelled_indices = np.flatnonzero(self._label_pos < 0).astype(np.int64)
        self.keypoint_names: tuple[str, ...] = tuple(self.manifest["keypoint_names"])
        self.num_cameras = int(self.manifest["num_cameras"])
        self.image_size: tuple[int, int] = tuple(self.manifest["image_size"])  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.manifest["num_samples"])

    def _shard(self, s: int) -> dict[str, np.ndarray]:
        if self._shards is None:  # after unpickling: reopen lazily, already validated
            self._shards = [None] * len(self.manifest["shards"])  # type: ignore[list-item]
        if self._shards[s] is None:
            self._shards[s] = read_npz(self.path / self.manifest["shards"][s]["file"])
        return self._shards[s]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"sample index {index} out of range for {n} samples")
        index %= n
        arrays = self._shard(int(self._shard_of[index]))
        row = int(self._row[index])
        pos = int(self._label_pos[index])
        c, k = self.num_cameras, len(self.keypoint_names)
        item = {
            "images": torch.from_numpy(np.array(arrays["images"][row])),
            "intrinsics": torch.from_numpy(np.array(arrays["intrinsics"][row])),
            "extrinsics": torch.from_numpy(np.array(arrays["extrinsics"][row])),
            "labelled": torch.tensor(pos >= 0),
            "sample_index": torch.tensor(index, dtype=torch.int64),
        }
        if pos >= 0:
            mask = np.array(arrays["label_mask"][pos])
            cams = (np.array(arrays["labelling_cameras"][pos]) if "labelling_cameras" in arrays
                    else mask.any(axis=1))
            item.update(
                keypoints_2d=torch.from_numpy(np.array(arrays["keypoints_2d"][pos])),
                label_mask=torch.from_numpy(mask),
                labelling_cameras=torch.from_numpy(cams),
                keypoints_3d=torch.from_numpy(np.array(arrays["keypoints_3d"][pos])),
            )
        else:
            item.update(
                keypoints_2d=torch.zeros((c, k, 2), dtype=torch.float32),
                label_mask=torch.zeros((c, k), dtype=torch.bool),
                labelling_cameras=torch.zeros((c,), dtype=torch.bool),
                keypoints_3d=torch.zeros((k, 3), dtype=torch.float32),
            )
        return item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = None  # memory maps do not pickle; reopened on first access
        return state

    def __repr__(self) -> str:
        m = self.manifest
        h, w = self.image_size
        return (f"KeypointDataset({str(self.path)!r}: {m['env_id']}, {len(self)} samples, "
                f"{m['num_labelled']} labelled, {self.num_cameras} cameras {h}x{w}, "
                f"keypoints {list(self.keypoint_names)})")


def load_arrays(path: str | os.PathLike[str], *, verify_checksums: bool = False
                ) -> dict[str, np.ndarray]:
    """Validate a dataset and load all of it into memory as concatenated arrays.

    Returns (N samples, M labelled; ``label_rows`` index the N rows)::

        images (N, C, H, W, 3) uint8, intrinsics (N, C, 3, 3) float32,
        extrinsics (N, C, 4, 4) float32, sample_index (N,) int64, labelled (N,) bool,
        label_rows (M,) int64, keypoints_2d (M, C, K, 2) float32, label_mask (M, C, K) bool,
        labelling_cameras (M, C) bool, keypoints_3d (M, K, 3) float32

    Raises:
        DatasetError: as :class:`KeypointDataset`.
    """
    root = Path(path)
    manifest, shards = _open_dataset(root, verify_checksums)
    n, m = manifest["num_samples"], manifest["num_labelled"]
    c, k = manifest["num_cameras"], len(manifest["keypoint_names"])
    h, w = manifest["image_size"]
    out: dict[str, np.ndarray] = {}
    for key, (shape_fn, dtype) in _SAMPLE_ARRAYS.items():
        out[key] = np.empty(shape_fn(n, c, h, w, k), dtype=dtype)
    for key, (shape_fn, dtype) in _LABEL_ARRAYS.items():
        out[key] = np.empty(shape_fn(m, c, h, w, k), dtype=dtype)
    pos = 0
    for entry, arrays in zip(manifest["shards"], shards, strict=True):
        start, count = entry["start"], entry["count"]
        for key in _SAMPLE_ARRAYS:
            out[key][start:start + count] = arrays[key]
        rows = arrays["label_rows"]
        end = pos + len(rows)
        out["label_rows"][pos:end] = start + rows
        for key in ("keypoints_2d", "label_mask", "keypoints_3d"):
            out[key][pos:end] = arrays[key]
        out["labelling_cameras"][pos:end] = (
            arrays["labelling_cameras"] if "labelling_cameras" in arrays
            else arrays["label_mask"].any(axis=2)
        )
        pos = end
    return out


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
        workers = _check_int("workers", workers, 1)
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
                                 compress)
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
              workers: int | None, progress: bool, command: str | None, compress: bool
              ) -> Path:
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
    for entry in manifest["shards"]:
        path = root / entry["file"]
        if not path.is_file():
            raise DatasetError(f"{path}: shard missing after generation")
        arrays = read_npz(path, verify_checksums=True)
        validate_shard(path, arrays, entry, manifest)
        counts = arrays["label_mask"].sum(axis=1)  # (m, K) cameras per keypoint
        labels += int(counts.sum())
        triangulable += int((counts >= 2).sum())
        del arrays
    k = len(manifest["keypoint_names"])
    manifest["label_stats"] = {
        "labels": labels,
        "keypoint_instances": manifest["num_labelled"] * k,
        "keypoint_instances_with_2plus_cameras": triangulable,
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
    )
    manifest = read_manifest(out)
    print(f"{out}: {manifest['num_samples']} samples of {manifest['env_id']} "
          f"({manifest['num_labelled']} labelled), {manifest['num_cameras']} cameras "
          f"{manifest['image_size'][0]}x{manifest['image_size'][1]}, "
          f"{time.perf_counter() - start:.1f} s")
    return out


if __name__ == "__main__":
    main()
