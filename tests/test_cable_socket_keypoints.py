"""``benchmarks.cable_socket_keypoints`` on either cable task (a tiny run: one expert episode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import cable_socket_keypoints as sck
from s3k_envs.checkpoints import default_checkpoint

SHORT = "S3K-CableInsertShort-v0"
TINY = ["--episodes", "1", "--noisy-episodes", "0", "--random-episodes", "0",
        "--reach-episodes", "0", "--extra-steps", "1", "--gates", "0.2"]


def test_short_task_run_uses_its_env_and_its_shipped_model(tmp_path: Path) -> None:
    doc = sck.main([*TINY, "--env-id", SHORT, "--out", str(tmp_path)])
    assert doc["env_id"] == SHORT
    assert doc["checkpoints"]["shipped"]["sha256"] == sck.sha256_file(default_checkpoint(SHORT))
    assert list(doc["frames"]) == ["expert"] and doc["frames"]["expert"] > 1
    # One expert episode runs to its first true success and one step past it.
    assert len(doc["true_success_steps"]) == 1
    saved = json.loads((tmp_path / "cable_socket_keypoints.json").read_text())
    assert saved["env_id"] == SHORT
    assert (tmp_path / "cable_socket_keypoints.png").stat().st_size > 0


def test_unknown_env_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sck.main([*TINY, "--env-id", "S3K-Box-v0", "--out", str(tmp_path)])
    assert "invalid choice: 'S3K-Box-v0'" in capsys.readouterr().err
