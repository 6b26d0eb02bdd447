"""Dataset generation on a Ray cluster: every shard of ``s3k generate`` is one Ray task.

A task builds the env, renders its shard's samples (per-sample seeds, so the bytes are the
ones the local worker pool writes) and returns the shard's arrays to the driver, which
writes them: workers need no shared file system. Ray retries a task whose worker process
died (up to :data:`MAX_RETRIES` times, set explicitly on every task), and a retried shard
comes out the same. The experiment runners (``benchmarks/keypoint_experiments.py --ray``)
submit their runs with the same retries: a run whose worker dies is retried and resumes
from the run directory's last checkpoint, and the grid returns one row per run. Ray is an
optional dependency (``pip install 's3k-envs[ray]'``) and is imported only when ``--ray``
is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Test seam: when set (a directory), the first attempt of every shard task ends its worker
#: process abruptly, as a killed machine would; Ray then retries the task. The first attempt
#: is recognised by a marker file in this directory (``shard_<start>``, ``run_<name>`` for
#: the runs of ``benchmarks/keypoint_experiments.py``): a task whose marker exists is not
#: killed.
FAULT_DIR: str | None = None
#: With :data:`FAULT_DIR`, a run task's first attempt trains to this step (checkpointing it,
#: as a run preempted after a checkpoint has), then its worker process dies.
FAULT_STEP = 2
#: Retries of a shard or run task whose worker died (Ray's ``max_retries``, given on every
#: task; application errors are not retried).
MAX_RETRIES = 3


def claim_fault(fault_dir: str | None, name: str) -> bool:
    """Whether this attempt of the task ``name`` is the one :data:`FAULT_DIR` kills: True
    once per name (it creates the marker), False without a fault directory."""
    if fault_dir is None:
        return False
    marker = Path(fault_dir) / name
    try:
        with open(marker, "x") as f:
            f.write(f"{os.getpid()}\n")
    except FileExistsError:
        return False
    return True


def import_ray() -> Any:
    """``import ray`` with a message that names the extra when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ModuleNotFoundError("--ray needs Ray, which is not installed: pip install "
                                  "'s3k-envs[ray]' (or pip install 'ray>=2.9')") from exc
    return ray


def connect(address: str | None) -> Any:
    """Connect to the Ray cluster at ``address`` (``"auto"``, ``"ray://HOST:10001"``, ...), or
    start a local one when ``address`` is None or ``"local"``; reuses a connection this
    process already has. Returns the ``ray`` module."""
    ray = import_ray()
    if not ray.is_initialized():
        if address in (None, "local"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def _shard_task(params: Mapping[str, Any], env_spec: Any, start: int, count: int,
                fault_dir: str | None) -> dict[str, np.ndarray]:
    """Body of the Ray task: samples ``start .. start + count - 1`` as shard arrays."""
    if claim_fault(fault_dir, f"shard_{start}"):
        os._exit(1)  # a dead worker: Ray retries the task elsewhere
    import gymnasium as gym

    import s3k_envs  # noqa: F401  (registers the S3K ids)
    from s3k_envs.keypoints.sampling import GenerationParams, SampleGenerator, assemble_shard

    if env_spec is not None:
        gym.registry.setdefault(env_spec.id, env_spec)
    generator = SampleGenerator(GenerationParams(**params))
    try:
        samples = generator.samples(start, start + count)
        return assemble_shard(samples, start, int(params["num_labelled"]),
                              generator.num_cameras, len(generator.keypoint_names))
    finally:
        generator.close()


def shard_results(ray: Any, params: Mapping[str, Any], env_spec: Any,
                  shards: Sequence[Mapping[str, Any]]
                  ) -> Iterator[tuple[Mapping[str, Any], dict[str, np.ndarray]]]:
    """Submit one task per shard and yield ``(shard entry, arrays)`` as tasks finish.

    Args:
        ray: the connected ``ray`` module (:func:`connect`).
        params: ``GenerationParams.to_json()``.
        env_spec: the driver's registration of the env id (for ids registered outside
            ``s3k_envs``), or None.
        shards: manifest entries (``start``, ``count``, ``file``) still to generate.
    """
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_shard_task)
    refs = {task.remote(dict(params), env_spec, int(s["start"]), int(s["count"]), FAULT_DIR): s
            for s in shards}
    waiting = list(refs)
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            yield refs[done[0]], ray.get(done[0])
    finally:
        for ref in waiting:  # interrupted: do not leave the cluster busy
            ray.cancel(ref, force=True)
