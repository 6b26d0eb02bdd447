"""The test run guards itself against hangs: pytest-timeout is configured, and a hung test
fails (with every thread's stack) instead of stalling ``make test`` forever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_timeout_is_configured(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed"
    assert 0 < float(pytestconfig.getini("timeout")) <= 3600
    assert pytestconfig.getini("timeout_method") == "thread"


def test_a_hung_test_is_ended_by_the_project_config(tmp_path: Path) -> None:
    """The repository's pytest configuration (only the timeout shortened) ends a test that
    blocks, reports the timeout and dumps the stacks."""
    (tmp_path / "test_hang.py").write_text(
        "import threading\n\n"
        "def test_hangs():\n"
        "    threading.Event().wait(120)\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
         str(tmp_path), "-o", "timeout=2", "-q", str(tmp_path / "test_hang.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=100)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Timeout" in out and "test_hangs" in out, out
    assert "Stack of" in out, out  # the thread method's dump of every thread
