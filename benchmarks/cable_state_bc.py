"""Behaviour cloning on true keypoints: S3K-CableInsert-v0 vs S3K-CableInsertShort-v0.

Does the plug's pendulum (see ``benchmarks/cable_pendulum.py``) make the cable task hard for
a plain imitation learner? For each env id, the scripted expert records ``--demos``
successful episodes (:func:`benchmarks.cable_rlpd.record_demos`: the same demonstrations and
observation as the RLPD runs: socket-relative keypoints, gripper state, the plug's motion
since the previous step and the time left, ``(26,)``); an MLP (2 x 256, ReLU, tanh output)
is fitted to the expert's actions (inputs standardised with a floor of 0.01 on each entry's
std, mean squared error, Adam 1e-3, ``--fit-steps`` batches of 256) and its deterministic
policy is run on ``--episodes`` held-out seeds
(``benchmarks.cable_rlpd.EVAL_SEED_BASE + i``), per training seed.

Outputs (``--out``, default ``benchmarks/results/``): ``cable_state_bc.csv`` (one row per
env, seed and episode: end, length, final insertion error) and ``cable_state_bc.json``
(success per env and seed, configuration, machine info, command).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_state_bc [--seeds 0 1 2] [--episodes 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import cable_rlpd, common

ENV_IDS = ("S3K-CableInsert-v0", "S3K-CableInsertShort-v0")
CSV_COLUMNS = ("env_id", "seed", "episode_seed", "end", "length", "insertion_error")


def fit_policy(demos: list[dict[str, Any]], seed: int, fit_steps: int) -> nn.Module:
    """MLP ``obs (D,) -> action (6,)`` in [-1, 1] fitted to the demonstrations' actions.

    Args:
        demos: episodes with ``observations`` ``(T + 1, D)`` and ``actions`` ``(T, 6)``.
        seed: torch seed of the initialisation and the batches.
        fit_steps: Adam steps of batch 256.
    """
    obs = torch.as_tensor(np.concatenate([d["observations"][:-1] for d in demos]),
                          dtype=torch.float32)
    act = torch.as_tensor(np.concatenate([d["actions"] for d in demos]), dtype=torch.float32)
    if len(obs) != len(act):
        raise ValueError(f"demos: {len(obs)} observations vs {len(act)} actions")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # Floor of 1 cm (or 0.01 of a unit): entries the expert never varies (gripper tilt, angular
    # velocity: std < 1e-3) would otherwise turn the learner's own tiny rotations into huge
    # inputs.
    mean, std = obs.mean(0), obs.std(0).clamp_min(1e-2)
    net = nn.Sequential(nn.Linear(obs.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, act.shape[1]), nn.Tanh())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(fit_steps):
        idx = torch.randint(0, len(obs), (256,), generator=gen)
        loss = ((net((obs[idx] - mean) / std) - act[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return nn.Sequential(_Normalise(mean, std), net)


class _Normalise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def run_policy(policy: nn.Module, env_id: str, episodes: int) -> list[dict[str, Any]]:
    """The policy on held-out seeds ``EVAL_SEED_BASE + i``; one row per episode."""
    env = cable_rlpd.make_env(True, True, True, env_id)
    rows = []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=cable_rlpd.EVAL_SEED_BASE + i)
            n, done = 0, False
            while not done:
                with torch.no_grad():
                    action = policy(torch.as_tensor(obs)[None])[0].numpy()
                obs, _, terminated, truncated, info = env.step(action)
                n += 1
                done = terminated or truncated
            row = {"episode_seed": cable_rlpd.EVAL_SEED_BASE + i, "length": n,
                   "truncated": truncated, "insertion_error": float(info["insertion_error"]),
                   **{k: info[k] for k in ("is_success", "left_safety_box", "sim_unstable")}}
            row["end"] = cable_rlpd.end_reason(row)
            rows.append(row)
    finally:
        env.close()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line entry; returns the JSON document written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-ids", nargs="+", default=list(ENV_IDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demos", type=int, default=51)
    parser.add_argument("--demo-seed", type=int, default=0)
    parser.add_argument("--fit-steps", type=int, default=3000)
    parser.add_argument("--episodes", type=int, default=50, help="held-out episodes per seed")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for env_id in args.env_ids:
        t0 = time.perf_counter()
        demos, stats = cable_rlpd.record_demos(args.demos, args.demo_seed, True, True, True,
                                               env_id)
        per_seed = {}
        for seed in args.seeds:
            policy = fit_policy(demos, seed, args.fit_steps)
            ep_rows = [{"env_id": env_id, "seed": seed, **r}
                       for r in run_policy(policy, env_id, args.episodes)]
            rows.extend(ep_rows)
            ends = [r["end"] for r in ep_rows]
            per_seed[seed] = {"successes": ends.count("success"), "episodes": len(ends),
                              "ends": {e: ends.count(e) for e in sorted(set(ends))}}
            print(f"{env_id} seed {seed}: {ends.count('success')}/{len(ends)} {per_seed[seed]}",
                  flush=True)
        total = sum(s["successes"] for s in per_seed.values())
        summary[env_id] = {"demos": stats, "per_seed": per_seed, "successes": total,
                           "episodes": args.episodes * len(args.seeds),
                           "success_rate": total / (args.episodes * len(args.seeds)),
                           "wall_s": time.perf_counter() - t0}
    doc = {"benchmark": "cable_state_bc", "config": vars(args) | {"out": str(args.out)},
           "observation": "cable_rlpd state: relative keypoints, gripper, plug motion, time "
                          "left (26,)",
           "summary": summary, "machine": common.machine_info()}
    common.write_csv(args.out / "cable_state_bc.csv", rows, CSV_COLUMNS)
    common.write_json(args.out / "cable_state_bc.json", doc)
    for env_id, s in summary.items():
        print(f"{env_id}: BC {s['successes']}/{s['episodes']} held-out successes")
    print(f"wrote {args.out / 'cable_state_bc.json'} / .csv")
    return doc


if __name__ == "__main__":
    main()
