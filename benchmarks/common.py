"""Shared helpers of the benchmark scripts: machine info, timing statistics, atomic result
files (CSV / JSON / PNG) and Markdown tables.

Every result file is written with :mod:`s3k_envs.atomic` (a temporary file in the same
directory renamed over the target), so an interrupted benchmark never leaves a half-written
file and never destroys the previous results.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from s3k_envs.atomic import atomic_open, atomic_write_text

#: Default output directory of every benchmark: ``benchmarks/results/`` next to this file.
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Packages whose versions go into every result file (missing ones are recorded as None).
VERSION_PACKAGES = ("mujoco", "numpy", "torch", "gymnasium", "dm_control", "matplotlib")
#: Environment variables that change rendering or threading behaviour.
ENV_VARS = (
    "MUJOCO_GL",
    "PYOPENGL_PLATFORM",
    "LP_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GALLIUM_DRIVER",
)


# ---------------------------------------------------------------------------- machine info
#: The cable tasks the cable benchmarks accept (``--env-id``); the first is the default.
CABLE_ENV_IDS = ("S3K-CableInsert-v0", "S3K-CableInsertShort-v0")


def cable_task_name(env_id: str) -> str:
    """Short name of a cable task id for result stems and work directories: ``""`` for
    ``S3K-CableInsert-v0``, ``"short"`` for ``S3K-CableInsertShort-v0`` (any
    ``S3K-CableInsert<Name>-v0``: ``"<name>"``)."""
    return env_id.removeprefix("S3K-CableInsert").removesuffix("-v0").lower()


def cpu_model() -> str:
    """CPU model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None; does not import the package."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_info(repo: Path = REPO_ROOT) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout, or None outside git.

    Uses read-only git commands only (``--no-optional-locks`` keeps ``git status`` from
    refreshing the index).
    """

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def repo_relative(obj: Any, root: str | os.PathLike[str] = REPO_ROOT) -> Any:
    """``obj`` (nested dicts, lists, tuples, strings, paths) with every absolute path inside
    the repository ``root`` written relative to it, so that committed result files carry no
    path of the machine that made them.

    Path objects become strings; in strings, each occurrence of ``root/`` that starts a path
    is dropped (also inside text such as ``"shipped checkpoint /repo/assets/x.pt"`` or
    ``"--out=/repo/runs"``) and ``root`` itself becomes ``"."``. A top-level entry of ``root``
    that is a symbolic link to a folder elsewhere (``runs -> /data/runs``, as in a git worktree
    that shares another checkout's runs) counts as inside: a resolved ``/data/runs/x`` is
    written ``runs/x``. Paths outside ``root`` and other values are kept as they are.
    """
    root = str(root).rstrip(os.sep)
    prefixes = [(target + os.sep, name + os.sep) for target, name in _linked_folders(root)]
    return _relative(obj, [*prefixes, (root + os.sep, "")])


def _linked_folders(root: str) -> list[tuple[str, str]]:
    """(resolved target, entry name) of each top-level symlink to a folder in ``root``,
    longest target first (so that a nested target wins over the folder around it)."""
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.is_symlink() and entry.is_dir():
                found.append((os.path.realpath(entry.path), entry.name))
        except OSError:
            continue
    return sorted(found, key=lambda item: -len(item[0]))


def _relative(obj: Any, prefixes: Sequence[tuple[str, str]]) -> Any:
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    if isinstance(obj, str):
        for prefix, replacement in prefixes:
            if obj + os.sep == prefix:  # the folder itself
                return replacement.rstrip(os.sep) or "."
            # Not preceded by a path or word character: "/x/repo/..." is another path.
            obj = re.sub(r"(?<![\w.~/-])" + re.escape(prefix), replacement, obj)
        return obj
    if isinstance(obj, Mapping):
        return {k: _relative(v, prefixes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_relative(v, prefixes) for v in obj]
    return obj


def command_line() -> str:
    """The command line that started this process, shell-quoted, without absolute paths of
    this machine: paths inside the repository relative to its root (:func:`repo_relative`),
    an interpreter outside it by its name (``/usr/bin/python3`` -> ``python3``)."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    if argv and os.path.isabs(argv[0]) and repo_relative(argv[0]) == argv[0]:
        argv[0] = os.path.basename(argv[0])
    return shlex.join(repo_relative(argv))


def machine_info() -> dict[str, Any]:
    """Machine, software and environment description for result files (no hostname)."""
    total = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": total,
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {name: package_version(name) for name in VERSION_PACKAGES},
        "env": {name: os.environ.get(name) for name in ENV_VARS if name in os.environ},
        "git": git_info(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
    }


def gl_renderer_info() -> dict[str, str] | None:
    """Vendor / renderer / version strings of the *current* OpenGL context, or None.

    Call it while an env's renderer context is current (right after it rendered); it tells
    software rendering (``llvmpipe``) from a GPU.
    """
    try:
        from OpenGL import GL

        info = {
            "vendor": GL.glGetString(GL.GL_VENDOR),
            "renderer": GL.glGetString(GL.GL_RENDERER),
            "version": GL.glGetString(GL.GL_VERSION),
        }
    except Exception:
        return None
    if any(v is None for v in info.values()):
        return None
    return {k: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for k, v in info.items()}


# ---------------------------------------------------------------------------- statistics
def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (NaN when empty)."""
    return float(statistics.median(values)) if values else math.nan


def spread(values: Sequence[float]) -> dict[str, float]:
    """``min`` / ``median`` / ``max`` of per-repeat values, for result files."""
    if not values:
        return {"min": math.nan, "median": math.nan, "max": math.nan}
    return {"min": float(min(values)), "median": median(values), "max": float(max(values))}


# ---------------------------------------------------------------------------- atomic files
def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; returns the path."""
    return atomic_write_text(path, text)


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths, without importing numpy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path: str | os.PathLike[str], obj: Any, *,
               relative_paths: bool | None = None) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN is written as null).

    Args:
        relative_paths: store paths inside the repository relative to its root
            (:func:`repo_relative`). Default: on for result documents, i.e. mappings with a
            ``"machine"`` entry (:func:`machine_info`, which every benchmark result records),
            off otherwise, so that caches and stamps keep the paths they are compared with.
    """
    if relative_paths is None:
        relative_paths = isinstance(obj, Mapping) and "machine" in obj
    if relative_paths:
        obj = repo_relative(obj)
    text = json.dumps(_nan_to_none(obj), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
              columns: Sequence[str], float_digits: int = 6) -> Path:
    """Write ``rows`` (only ``columns``, in that order) as CSV atomically; floats get
    ``float_digits`` significant digits, NaN/None an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format_cell(row.get(c), float_digits) for c in columns])
    return write_text(path, buf.getvalue())


def _format_cell(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else ""
    return "" if value is None else value


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def use_agg() -> Any:
    """Select matplotlib's non-interactive Agg backend and return ``pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- Markdown
def markdown_table(rows: Sequence[Mapping[str, Any]],
                   columns: Sequence[tuple[str, str, str | Callable[[Any], str]]]) -> str:
    """GitHub Markdown table.

    Args:
        rows: dicts of values.
        columns: ``(key, header, format)`` where format is a ``format()`` spec such as
            ``".1f"`` (right-aligned) or ``"s"`` / a callable returning the cell text
            (left-aligned). None or NaN values print as "–".
    """
    header = "| " + " | ".join(h for _, h, _ in columns) + " |"
    # Text (callable or "s"/"" formats) left-aligned, numbers right-aligned.
    align = "|" + "|".join(
        ":---" if callable(f) or f in ("", "s") else "---:" for _, _, f in columns
    ) + "|"
    lines = [header, align]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            if callable(fmt):
                cells.append(fmt(value))
            elif value is None or (isinstance(value, float) and not math.isfinite(value)):
                cells.append("–")
            else:
                cells.append(format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
