"""``python -m benchmarks.push_mpc --ray [ADDRESS]``: every (method, seed) unit -- the
dynamics training of that method and seed and its goal episodes -- and every baseline's
episodes is one Ray task (1 CPU, :data:`~s3k_envs.keypoints.ray_backend.MAX_RETRIES`
retries of a task whose worker died).

The driver collects the data and trains the VAE as locally, puts the shared
:class:`~benchmarks.push_mpc.units.UnitContext` (options, sources, data, cache layout) into
the object store once, and each task runs :func:`~benchmarks.push_mpc.units.run_unit`, which
reads and writes the same cache files as the local runner (the dynamics checkpoint, one
fsynced JSON line per episode). So the cache must be on a file system that every node sees;
a retried task (or a rerun of an interrupted cluster run) resumes from those files and
evaluates no episode twice. Ray is imported only here, i.e. only with ``--ray``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from benchmarks.push_mpc.units import UnitContext, run_unit


def _unit_task(ctx: UnitContext, method: str, seed: int, fault_dir: str | None
               ) -> dict[str, Any]:
    """Body of a Ray task: :func:`run_unit` with the run's torch thread count.

    ``fault_dir``: the test seam of :data:`s3k_envs.keypoints.ray_backend.FAULT_DIR` (the
    first attempt of the unit completes its work, then its worker process dies before
    returning; Ray retries it and the retry must find everything in the cache).
    """
    from s3k_envs.device import torch_threads
    from s3k_envs.keypoints import ray_backend

    def log(s: str) -> None:
        print(f"[{method} seed {seed}] {s}", flush=True)

    with torch_threads(ctx.args.threads):
        if ray_backend.claim_fault(fault_dir, f"push_{method}_{seed}"):
            run_unit(ctx, method, seed, log)
            os._exit(1)  # a dead worker after its work was cached: Ray retries the task
        return run_unit(ctx, method, seed, log)


def run_on_ray(ctx: UnitContext, units: Sequence[tuple[str, int]], address: str
               ) -> list[dict[str, Any]]:
    """Run ``units`` (``(method, seed)`` pairs) as Ray tasks on the cluster at ``address``
    (``"local"``: a local Ray instance; ``"auto"``, ``"ray://HOST:10001"``, ...).

    Returns:
        :func:`run_unit`'s results in the order of ``units``.
    """
    from s3k_envs.keypoints import ray_backend

    ray = ray_backend.connect(address)
    task = ray.remote(num_cpus=1, max_retries=ray_backend.MAX_RETRIES)(_unit_task)
    shared = ray.put(ctx)
    refs = [task.remote(shared, m, seed, ray_backend.FAULT_DIR) for m, seed in units]
    try:
        return list(ray.get(refs))
    except BaseException:
        for ref in refs:  # interrupted or failed: do not leave the cluster busy
            ray.cancel(ref, force=True)
        raise
