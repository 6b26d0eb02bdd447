"""``s3k generate --ray``: shards as Ray tasks on a local Ray instance give the same bytes as
the local generator, also when a worker process dies mid-task (Ray retries it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s3k_envs.keypoints import ray_backend
from s3k_envs.keypoints.data import generate_dataset
from s3k_envs.keypoints.dataset import read_manifest, read_npz

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

ARGS = {"env_id": "S3K-Box-v0", "num_samples": 6, "num_labelled": 3, "image_size": 16,
        "seed": 5, "shard_size": 3, "rollout_steps": 2, "progress": False}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "data"
    generate_dataset(out, workers=1, **ARGS)
    return out


def _same_shards(a: Path, b: Path) -> None:
    ma, mb = read_manifest(a), read_manifest(b)
    assert [s["file"] for s in ma["shards"]] == [s["file"] for s in mb["shards"]]
    assert len(ma["shards"]) == 2
    for entry in ma["shards"]:
        xa, xb = read_npz(a / entry["file"]), read_npz(b / entry["file"])
        assert sorted(xa) == sorted(xb)
        for key in xa:
            np.testing.assert_array_equal(xa[key], xb[key], err_msg=key)
        assert (a / entry["file"]).read_bytes() == (b / entry["file"]).read_bytes()


def test_ray_generates_the_same_bytes(local_ray, reference: Path, tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "ray", ray=True, **ARGS)
    _same_shards(reference, out)


def test_a_killed_worker_is_retried_with_the_same_result(local_ray, reference: Path,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setattr(ray_backend, "FAULT_DIR", str(faults))
    out = generate_dataset(tmp_path / "ray", ray=True, **ARGS)
    assert sorted(p.name for p in faults.iterdir()) == ["shard_0", "shard_3"]  # both died once
    _same_shards(reference, out)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ModuleNotFoundError, match=r"s3k-envs\[ray\]"):
        ray_backend.import_ray()


def test_generate_command_takes_ray(local_ray, reference: Path, tmp_path: Path) -> None:
    from s3k_envs import cli

    out = tmp_path / "cli"
    cli.main(["generate", "S3K-Box-v0", "--samples", "6", "--labelled", "3", "--image-size",
              "16", "--seed", "5", "--shard-size", "3", "--rollout-steps", "2", "--out",
              str(out), "--no-progress", "--ray"])
    _same_shards(reference, out)


def test_experiment_grid_on_ray_matches_the_local_runner(local_ray, tmp_path: Path) -> None:
    """A §4-style grid (2 runs, step-limited so that the result is deterministic) gives the
    same rows on Ray as locally; its datasets are generated on Ray too."""
    from benchmarks import keypoint_experiments as kx

    train = kx.DatasetSpec("S3K-Box-v0", 4, 4, 0, 32)
    test = kx.DatasetSpec("S3K-Box-v0", 3, 3, 1, 32)
    runs = [kx.RunSpec(f"s{seed}", (kx.Subset(train),), (("test", test),), alpha=0.0,
                       seed=seed, minutes=10.0, train_overrides={"steps": 3})
            for seed in (0, 1)]
    on_ray = kx.run_grid(runs, tmp_path / "ray_runs", tmp_path / "data", ray="local")
    local = kx.run_grid(runs, tmp_path / "local_runs", tmp_path / "data", jobs=1)
    keys = [k for k in local[0] if k.startswith("test_") or k in ("name", "seed", "steps")]
    assert [r["steps"] for r in on_ray] == [3, 3]
    assert [{k: r[k] for k in keys} for r in on_ray] == [{k: r[k] for k in keys} for r in local]
    assert (tmp_path / "ray_runs" / "s1" / "model.pt").exists()


def test_cable_rl_runs_its_arms_as_ray_tasks(local_ray, tmp_path: Path) -> None:
    """``benchmarks.cable_rl --smoke --ray``: every (arm, seed) run is a Ray task, results
    land where the local runner puts them, and a rerun reuses them."""
    from benchmarks.cable_rl.cli import main

    argv = ["--smoke", "--arms", "gt", "--work-dir", str(tmp_path), "--no-progress", "--ray",
            "--agent", "ddpgfd"]
    assert main(argv) == 0
    runs = tmp_path / "smoke" / "runs" / "gt"
    results = sorted(runs.glob("seed_*/result.json"))
    assert results, list(runs.rglob("*"))
    stamps = [p.stat().st_mtime_ns for p in results]
    assert main(argv) == 0  # finished runs are reused, not redone
    assert [p.stat().st_mtime_ns for p in results] == stamps
