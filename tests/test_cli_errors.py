"""The ``s3k`` console script: user errors in one line (exit status 2), tracebacks on
``--debug``, and env ids from modules in the current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3k_envs import cli

S3K = Path(sys.executable).with_name("s3k")


def test_user_error_is_one_line_with_status_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.console_main(["evaluate", str(tmp_path / "missing.pt"), str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("s3k: error: FileNotFoundError:") and "missing.pt" in err
    assert "Traceback" not in err and len(err.splitlines()) == 2  # message + --debug hint


def test_unknown_env_id_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.console_main(["snapshot", "NoSuchEnv-v0"]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        cli.console_main(["--debug", "evaluate", str(tmp_path / "missing.pt"), str(tmp_path)])


def test_error_message_is_one_line() -> None:
    assert cli.error_message(ValueError("bad\n  option")) == "bad option"
    assert cli.error_message(FileNotFoundError("x.pt")) == "FileNotFoundError: x.pt"


@pytest.mark.skipif(not S3K.exists(), reason="the s3k console script is not installed")
def test_generate_finds_an_env_module_in_the_current_directory(tmp_path: Path) -> None:
    """``s3k generate my_envs:MyBox-v0`` run where ``my_envs.py`` lives, as
    ``gymnasium.make("my_envs:MyBox-v0")`` would in a script there."""
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyBox-v0', entry_point='s3k_envs.registration:make_box',\n"
        "             max_episode_steps=50)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(S3K), "generate", "my_envs:MyBox-v0", "--samples", "2",
                           "--labelled", "1", "--image-size", "16", "--out", "data",
                           "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["env_id"] == "my_envs:MyBox-v0"
