"""Atomic file writes: the one way the project writes a file a reader or a crash may see.

Every helper writes to a fresh temporary name in the target's directory (``.<name>.<random>``
ending in :data:`TMP_SUFFIX` unless told otherwise), flushes and fsyncs it, then renames it
over the target with :func:`os.replace` and fsyncs the directory. A reader therefore sees the
old file or the complete new one, never a partial file; on any exception (including
``KeyboardInterrupt``) the temporary file is removed and the old file is left untouched.

* :func:`atomic_open`: a file object to write into (``"w"`` or ``"wb"``).
* :func:`atomic_path`: a temporary path, for APIs that insist on writing to a path
  themselves (e.g. a model's ``save(path)``).
* :func:`atomic_directory`: the same for a directory filled by the caller.
* :func:`atomic_write_text`, :func:`atomic_write_bytes`: one-liners on top.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Suffix of the temporary files (``.<name>.<random>.tmp``); see :func:`is_temporary`.
TMP_SUFFIX = ".tmp"
#: Permissions of a written file (``mkstemp`` would leave ``0o600``).
FILE_MODE = 0o644


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a temporary file of this module (``.*.tmp``), e.g.
    one left behind by a killed process."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def _fsync_path(path: Path) -> None:
    """fsync a file given by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories can't be
    opened)."""
    with contextlib.suppress(OSError, AttributeError):
        _fsync_path(directory)


def _new_temp(path: Path, suffix: str) -> Path:
    """Create an empty temporary file next to ``path`` (creating the parent directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def _commit(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the usual permissions and rename it over ``path``."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = TMP_SUFFIX) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit rename it over ``path``.

    For writers that take a file *name*. The temporary file exists (empty) when the body
    starts and may be overwritten by it; it is fsynced before the rename. On an exception it
    is removed and ``path`` keeps its previous content.

    Args:
        path: the target file; its parent directory is created if needed.
        suffix: suffix of the temporary name, for writers that look at it (e.g. ``".tmp.zip"``
            for one that would otherwise append ``.zip``).
    """
    path = Path(path)
    tmp = _new_temp(path, suffix)
    try:
        yield tmp
        _fsync_path(tmp)
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w",
                **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on normal exit rename it over
    ``path``.

    Args:
        path: the target file; its parent directory is created if needed.
        mode: ``"w"`` (text; ``kwargs`` such as ``encoding``/``newline`` go to :func:`open`)
            or ``"wb"``.

    On an exception in the body the temporary file is removed and ``path`` keeps its previous
    content.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = _new_temp(path, TMP_SUFFIX)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a :class:`~pathlib.Path`."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str,
                      encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, newlines as given (no ``\\r\\n`` translation);
    returns ``path`` as a :class:`~pathlib.Path`."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty temporary directory next to ``path``; on normal exit it replaces
    ``path`` (an existing directory there is deleted first, so the swap itself is not atomic
    when ``path`` already exists; a fresh ``path`` appears complete or not at all).

    On an exception the temporary directory is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
