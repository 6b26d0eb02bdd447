"""Multi-view keypoint datasets on disk: the format, reading and writing it, its checks, and
loading (:class:`KeypointDataset`, :func:`load_arrays`). Generation (``s3k generate``) is
:mod:`s3k_envs.keypoints.data`; what one sample is, :mod:`s3k_envs.keypoints.sampling`.

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

import io
import itertools
import json
import math
import mmap
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from s3k_envs.atomic import atomic_open, atomic_write_text

FORMAT = "s3k-dataset"
FORMAT_VERSION = 1
#: Format versions this module reads.
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
PROGRESS_NAME = "progress.json"
LOCK_NAME = ".lock"
_FLAT_LIST = re.compile(r"\[(?:\n\s*[^\[\]{}\n]+)+\n\s*\]")
_FLAT_DICT = re.compile(r"\{(?:\n\s*[^\[\]{}\n]+)+\n\s*\}")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: identical runs, identical bytes
#: Arrays of every shard: name -> (shape given n, C, H, W, K; dtype).
SAMPLE_ARRAYS: dict[str, tuple[Any, np.dtype]] = {
    "images": (lambda n, c, h, w, k: (n, c, h, w, 3), np.dtype(np.uint8)),
    "intrinsics": (lambda n, c, h, w, k: (n, c, 3, 3), np.dtype(np.float32)),
    "extrinsics": (lambda n, c, h, w, k: (n, c, 4, 4), np.dtype(np.float32)),
    "sample_index": (lambda n, c, h, w, k: (n,), np.dtype(np.int64)),
    "labelled": (lambda n, c, h, w, k: (n,), np.dtype(np.bool_)),
}
#: Arrays of the labelled rows of a shard: name -> (shape given m, C, H, W, K; dtype).
LABEL_ARRAYS: dict[str, tuple[Any, np.dtype]] = {
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
    for specs, count in ((SAMPLE_ARRAYS, n), (LABEL_ARRAYS, m)):
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
    for key, (shape_fn, dtype) in SAMPLE_ARRAYS.items():
        out[key] = np.empty(shape_fn(n, c, h, w, k), dtype=dtype)
    for key, (shape_fn, dtype) in LABEL_ARRAYS.items():
        out[key] = np.empty(shape_fn(m, c, h, w, k), dtype=dtype)
    pos = 0
    for entry, arrays in zip(manifest["shards"], shards, strict=True):
        start, count = entry["start"], entry["count"]
        for key in SAMPLE_ARRAYS:
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
