"""A Ray worker killed in the middle of a training run loses no run and duplicates none: a
tiny §4 grid (``benchmarks/keypoint_experiments.py`` on a local Ray instance) whose first
run's worker dies after a checkpoint finishes, with one row per run, one set of run files,
and the same result as the local runner for the same spec."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from s3k_envs.keypoints import ray_backend

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

STEPS, KILL_AT = 4, 2


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _runs() -> list:
    from benchmarks import keypoint_experiments as kx

    train = kx.DatasetSpec("S3K-Box-v0", 4, 4, 0, 32)
    test = kx.DatasetSpec("S3K-Box-v0", 3, 3, 1, 32)
    return [kx.RunSpec(f"s{seed}", (kx.Subset(train),), (("test", test),), alpha=0.0,
                       seed=seed, minutes=10.0, train_overrides={"steps": STEPS})
            for seed in (0, 1)]


@pytest.mark.timeout(240)
def test_a_run_whose_worker_dies_mid_run_is_retried_once_with_the_local_result(
        local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import keypoint_experiments as kx

    runs, data = _runs(), tmp_path / "data"
    local = kx.run_grid(runs, tmp_path / "local_runs", data, jobs=1)  # also makes the data
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "run_s1").touch()  # s1's marker exists: only s0's worker dies
    monkeypatch.setattr(ray_backend, "FAULT_DIR", str(faults))
    monkeypatch.setattr(ray_backend, "FAULT_STEP", KILL_AT)
    runs_dir = tmp_path / "ray_runs"
    on_ray = kx.run_grid(runs, runs_dir, data, ray="local")

    # s0's first attempt (its marker: that worker's pid, then the step it reached) died
    # mid-run; no shard task ran (the data existed), so that was the only kill
    assert sorted(p.name for p in faults.iterdir()) == ["run_s0", "run_s1"]
    pid, reached = (faults / "run_s0").read_text().split("\n")[:2]
    assert pid.isdigit() and reached == f"steps {KILL_AT}"
    # the grid finished with exactly one row per run, in order
    assert [r["name"] for r in on_ray] == ["s0", "s1"]
    assert [r["steps"] for r in on_ray] == [STEPS, STEPS]
    # the killed run resumed from its checkpoint: its log has every step once
    run_dir = runs_dir / "s0"
    with open(run_dir / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == STEPS and not summary.get("interrupted")
    assert json.loads((run_dir / "eval.json").read_text())["key"]["steps"] == STEPS
    # one set of run files, nothing half-written left behind, same files as the local run
    names = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in names if ".tmp" in n or n.endswith("~")], names
    assert names == sorted(p.name for p in (tmp_path / "local_runs" / "s0").iterdir())
    # the same result as the local runner (resuming matches a straight run to float noise)
    keys = [k for k in local[0] if k.startswith("test_")]
    for ray_row, local_row in zip(on_ray, local, strict=True):
        assert ray_row["labels"] == local_row["labels"]
        for k in keys:
            assert ray_row[k] == pytest.approx(local_row[k], rel=1e-3, abs=1e-3), k
    # a rerun of the finished grid on Ray reuses both runs: no run is trained twice
    stamp = (run_dir / "model.pt").stat().st_mtime_ns
    again = kx.run_grid(runs, runs_dir, data, ray="local")
    assert [r["name"] for r in again] == ["s0", "s1"]
    assert (run_dir / "model.pt").stat().st_mtime_ns == stamp
