"""benchmarks/rl_throughput.py: ``--env-id`` reaches the envs and names the result stem,
``--updates-only`` (with ``--baseline``) times update rounds; tiny runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import rl_throughput

SHORT = "S3K-CableInsertShort-v0"


@pytest.fixture
def few_demos(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """record_demos with 2 episodes; returns the env ids it was called with."""
    seen: list[str] = []
    real = rl_throughput.record_demos

    def record(episodes: int, seed: int, relative: bool, *args: Any, env_id: str,
               **kwargs: Any) -> Any:
        seen.append(env_id)
        return real(2, seed, relative, *args, env_id=env_id, **kwargs)

    monkeypatch.setattr(rl_throughput, "record_demos", record)
    return seen


def test_env_tag_and_arms_use_the_env_id() -> None:
    assert rl_throughput.env_tag(rl_throughput.ENV_ID) == ""
    assert rl_throughput.env_tag(SHORT) == "_short"
    with pytest.raises(ValueError, match="S3K-CableInsertShort-v0"):
        rl_throughput.env_tag("S3K-Box-v0")
    env = rl_throughput.make_arm("gt", SHORT)
    try:
        assert env.unwrapped.spec.id == SHORT
        assert env.unwrapped.options["cable_segments"] == 4
    finally:
        env.close()
    with pytest.raises(SystemExit):
        rl_throughput.main(["--env-id", "S3K-Box-v0"])


def test_short_env_loop_writes_short_stem(tmp_path: Path, few_demos: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_make_arm = rl_throughput.make_arm

    def make_arm(arm: str, env_id: str = rl_throughput.ENV_ID) -> Any:
        env = real_make_arm(arm, env_id)
        made.append(env.unwrapped.spec.id)
        return env

    monkeypatch.setattr(rl_throughput, "make_arm", make_arm)
    doc = rl_throughput.main(["--env-id", SHORT, "--arms", "gt", "--agents", "rlpd_e2",
                              "--steps", "2", "--repeats", "1", "--no-sb3",
                              "--out", str(tmp_path)])
    assert few_demos == [SHORT] and made == [SHORT]
    assert doc["env_id"] == SHORT and doc["rows"][0]["arm"] == "gt"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["rl_throughput_short.csv", "rl_throughput_short.json",
                     "rl_throughput_short.png", "rl_throughput_short_updates.csv"]


def test_updates_only_with_baseline(tmp_path: Path, few_demos: list[str]) -> None:
    doc = rl_throughput.main(["--updates-only", "--baseline", "HEAD", "--agents", "rlpd_e2",
                              "--steps", "2", "--repeats", "2", "--out", str(tmp_path)])
    assert few_demos == [rl_throughput.ENV_ID]
    codes = [r["code"] for r in doc["rows"]]
    assert codes == ["baseline HEAD", "current"]
    assert all(r["rounds"] == 4 and r["update_ms_cpu_median"] > 0 for r in doc["rows"])
    assert doc["rows"][0]["max_abs_param_diff_after_warmup"] < 1e-3
    saved = json.loads((tmp_path / "rl_throughput_update_rounds.json").read_text())
    assert saved["baseline"] == "HEAD" and len(saved["rows"]) == 2
    with pytest.raises(ValueError, match="no-such-revision"):
        rl_throughput.main(["--updates-only", "--baseline", "no-such-revision",
                            "--out", str(tmp_path)])
