"""Committed benchmark result files carry no absolute path of the machine that made them, and
the result writer (``benchmarks.common``) stores paths relative to the repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import common

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
TEXT_SUFFIXES = (".json", ".csv", ".md")
#: An absolute POSIX path of two or more components ("/work/main/x", "/home/u/y", "/tmp/z/")
#: starting a token, or a Windows drive path.
ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s\"'=(,:;]))/[\w.~-]+/[\w.~/-]*|\b[A-Za-z]:\\\w")


def result_files() -> list[Path]:
    """The committed text files of ``benchmarks/results/`` (all of them outside git)."""
    try:
        out = subprocess.run(["git", "--no-optional-locks", "ls-files", "-z", "--", "."],
                             cwd=RESULTS, capture_output=True, text=True, check=True,
                             timeout=30).stdout
        files = [RESULTS / name for name in out.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        files = list(RESULTS.iterdir())
    return sorted(p for p in files if p.suffix in TEXT_SUFFIXES and p.is_file())


def strings(obj: Any) -> list[str]:
    """Every string (keys and values) of a JSON document."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*strings(k), *strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def absolute_paths(path: Path) -> list[str]:
    """The absolute paths in a result file (in every string of a JSON document)."""
    text = path.read_text(encoding="utf-8")
    texts = strings(json.loads(text)) if path.suffix == ".json" else [text]
    return [m.group(0) for t in texts for m in ABSOLUTE_PATH.finditer(t)]


def test_detector_finds_absolute_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"out": "/home/me/s3k/benchmarks/results", "cmd": "python x.py",
                               "model": "shipped checkpoint /work/main/assets/a.pt",
                               "win": "C:\\Users\\me", "/tmp/key": 1}))
    assert set(absolute_paths(bad)) == {"/home/me/s3k/benchmarks/results",
                                        "/work/main/assets/a.pt", "C:\\U", "/tmp/key"}
    good = tmp_path / "good.csv"
    good.write_text("env,steps/s,path\nS3K-Box-v0,12.5,runs/x/model.pt\nmm / px,1/2,a/b\n")
    assert absolute_paths(good) == []


def test_committed_results_have_no_absolute_paths() -> None:
    files = result_files()
    assert any(p.name == "shipped_checkpoints.json" for p in files), files
    bad = {p.name: found[:3] for p in files if (found := absolute_paths(p))}
    assert not bad, f"absolute paths in committed results (store them relative): {bad}"


def test_repo_relative() -> None:
    root = Path("/srv/repo")
    doc = {"out": root / "benchmarks" / "results", "root": "/srv/repo",
           "model": "shipped checkpoint /srv/repo/assets/x.pt",
           "args": ("--out=/srv/repo/runs/a", "/srv/repository/x", "/x/srv/repo/y", 3),
           "outside": "/tmp/data", "n": 1.5}
    assert common.repo_relative(doc, root) == {
        "out": "benchmarks/results", "root": ".", "model": "shipped checkpoint assets/x.pt",
        "args": ["--out=runs/a", "/srv/repository/x", "/x/srv/repo/y", 3],
        "outside": "/tmp/data", "n": 1.5}


def test_repo_relative_follows_linked_top_level_folders(tmp_path: Path) -> None:
    # A worktree whose runs/ links to another checkout's: paths resolved through the link
    # still come out repository-relative.
    shared = tmp_path / "main" / "runs"
    (shared / "x").mkdir(parents=True)
    repo = tmp_path / "worktree"
    repo.mkdir()
    (repo / "runs").symlink_to(shared, target_is_directory=True)
    (repo / "notes.txt").symlink_to(tmp_path / "elsewhere.txt")  # not a folder: ignored
    doc = {"cache": str(shared / "x" / "frames.npz"), "out": f"--out={repo}/benchmarks",
           "other": str(tmp_path / "main" / "assets" / "a.pt"), "runs": str(shared)}
    assert common.repo_relative(doc, repo) == {
        "cache": "runs/x/frames.npz", "out": "--out=benchmarks",
        "other": str(tmp_path / "main" / "assets" / "a.pt"), "runs": "runs"}


def test_write_json_stores_result_paths_relative(tmp_path: Path) -> None:
    inside = common.REPO_ROOT / "runs" / "x" / "model.pt"
    result = common.write_json(tmp_path / "result.json", {
        "machine": {"command": "python -m benchmarks.x"},
        "settings": {"out": common.RESULTS_DIR, "checkpoint": str(inside)},
        "note": f"model {inside}", "elsewhere": str(tmp_path)})
    doc = json.loads(result.read_text())
    assert doc["settings"] == {"out": "benchmarks/results", "checkpoint": "runs/x/model.pt"}
    assert doc["note"] == "model runs/x/model.pt"
    assert doc["elsewhere"] == str(tmp_path)  # outside the repository: kept
    # Caches and stamps (no machine info) keep their paths: they are compared as written.
    cache = json.loads(common.write_json(tmp_path / "stamp.json", {"frames": inside}).read_text())
    assert cache == {"frames": str(inside)}
    forced = common.write_json(tmp_path / "f.json", {"frames": inside}, relative_paths=True)
    assert json.loads(forced.read_text()) == {"frames": "runs/x/model.pt"}


@pytest.mark.parametrize("interpreter, shown", [
    (str(common.REPO_ROOT / ".venv" / "bin" / "python"), ".venv/bin/python"),
    ("/usr/local/bin/python3.11", "python3.11"),
    ("python", "python"),
])
def test_command_line_has_no_absolute_paths(monkeypatch: pytest.MonkeyPatch, interpreter: str,
                                            shown: str) -> None:
    argv = [interpreter, "-m", "benchmarks.throughput", "--out",
            str(common.RESULTS_DIR), f"--data-dir={common.REPO_ROOT / 'runs' / 'd'}"]
    monkeypatch.setattr(sys, "orig_argv", argv, raising=False)
    expected = f"{shown} -m benchmarks.throughput --out benchmarks/results --data-dir=runs/d"
    assert common.command_line() == expected
    assert common.machine_info()["command"] == expected
