"""s3k_envs.atomic: the one helper for atomic file writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from s3k_envs.atomic import (
    atomic_directory,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    is_temporary,
)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_write_text_and_bytes_create_parent_and_replace(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    assert atomic_write_text(target, "one\r\ntwo\n") == target
    assert target.read_bytes() == b"one\r\ntwo\n"  # no newline translation
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _leftovers(target.parent) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_mid_write_keeps_old_file_and_removes_temp(tmp_path: Path,
                                                             error: type) -> None:
    target = tmp_path / "data.npz"
    atomic_write_bytes(target, b"old")
    with pytest.raises(error), atomic_open(target, "wb") as f:
        f.write(b"new, half written")
        assert any(is_temporary(p) for p in tmp_path.iterdir())
        raise error
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_atomic_open_numpy_and_text_kwargs(tmp_path: Path) -> None:
    target = tmp_path / "x.npz"
    with atomic_open(target, "wb") as f:
        np.savez(f, a=np.arange(3))
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    with atomic_open(tmp_path / "t.csv", "w", newline="") as f:
        f.write("a,b\n")
    assert (tmp_path / "t.csv").read_text() == "a,b\n"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(target, "ab"):
            pass
    assert _leftovers(tmp_path) == []


def test_atomic_path_for_writers_that_take_a_name(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    with atomic_path(target, suffix=".tmp.zip") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.zip")
        tmp.write_bytes(b"zip")
    assert target.read_bytes() == b"zip"
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")
    assert target.read_bytes() == b"zip"
    assert _leftovers(tmp_path) == []


def test_atomic_directory(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with atomic_directory(target) as tmp:  # an existing directory is replaced
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(target)) == ["b"]
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError
    assert sorted(os.listdir(target)) == ["b"]
    assert _leftovers(tmp_path) == []


def test_is_temporary() -> None:
    assert is_temporary(".shard_000.npz.abc123.tmp")
    assert not is_temporary("shard_000.npz") and not is_temporary("x.tmp")
