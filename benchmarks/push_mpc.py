"""MPC with a learned keypoint dynamics model on S3K-BoxPush-v0 ("Keypoints into the Future",
issue 13 step 3/4): first measurement, with the TRUE keypoints.

1. Data: ``--episodes`` episodes of ``--steps`` control steps (images off) with noisy-expert
   and random pushes: each step, with probability ``--random-prob`` a random planar action
   held for 2-4 steps, otherwise :class:`~s3k_envs.experts.BoxPushExpert`'s action plus
   Gaussian noise (std ``--noise``). State = the 3 box corners (``info["keypoints"]``) + the
   pusher position (``obs["gripper_pos"]``): ``(4, 3)`` m; action = ``a[0], a[1]``.
2. Dynamics: :class:`agents.dynamics.KeypointDynamics` (H = 2, residual MLP, rollout loss),
   trained for ``--train-steps`` Adam steps (batch 256, 5-step rollout loss) on 1 thread.
3. Evaluation on ``--eval-episodes`` goal episodes (``goal_mode="pushes"``: the goal is where
   1-3 simulated random pushes leave the box, as in the paper; seeds 10000+i, never used for
   data): MPPI on the model (:class:`agents.mpc.MPPIPlanner`, replanning every step; 256
   samples x 10 steps, random shooting + 3 MPPI rounds; cost = terminal + 0.1 x running
   keypoint distance + ``--reach-cost`` x mean pusher-to-box-centre distance, a tie-breaker
   for plans that do not touch the box yet, not in the paper), the
   privileged expert, and uniformly random actions. Episodes run their full 60 steps
   (``terminate_on_success=False``, so the final error measures precision rather than
   stopping just inside the tolerance). Final position (cm) and angle (deg) error of the box,
   success at the end (2 cm and 10 deg) and at any step, planning time per control step.

``--quick``: 200 data episodes x 30 steps, 6000 training steps (1.5-3 min here), 10 goal
episodes (about 6 min in all on this shared 2-core machine). ``--full`` (the default
sizes): 600 episodes, 20000 steps, 100 goal episodes (not run yet).
Results (CSV per episode, JSON summary with machine info and the command, PNG) go to
``benchmarks/results/push_mpc_<tag>.*``.

    MUJOCO_GL=egl python -m benchmarks.push_mpc --quick
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import s3k_envs  # noqa: F401  (registers S3K-BoxPush-v0)
from agents.dynamics import DynamicsConfig, KeypointDynamics, TrainConfig, train_dynamics
from agents.mpc import MPPIConfig, MPPIPlanner
from benchmarks import common
from s3k_envs.experts import BoxPushExpert

ENV_ID = "S3K-BoxPush-v0"


def push_state(obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
    """``(4, 3)`` m: the 3 true box keypoints + the pusher position."""
    return np.concatenate([np.asarray(info["keypoints"], np.float32),
                           np.asarray(obs["gripper_pos"], np.float32)[None]])


def env_action(a2: np.ndarray) -> np.ndarray:
    """Planar ``(2,)`` -> the env's ``(6,)`` action."""
    out = np.zeros(6, np.float32)
    out[:2] = a2
    return out


def collect(n_episodes: int, steps: int, seed: int, noise: float, random_prob: float
            ) -> list[dict[str, np.ndarray]]:
    """Recorded episodes ``{"states": (T+1, 4, 3), "actions": (T, 2)}``."""
    env = gym.make(ENV_ID, images=False, max_episode_steps=steps, terminate_on_success=False)
    expert = BoxPushExpert(env)
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n_episodes):
        obs, info = env.reset(seed=seed + i)
        states, actions = [push_state(obs, info)], []
        hold, rand_a = 0, np.zeros(2)
        for _ in range(steps):
            if hold == 0 and rng.random() < random_prob:
                hold, rand_a = int(rng.integers(2, 5)), rng.uniform(-1, 1, 2)
            if hold > 0:
                a = rand_a
                hold -= 1
            else:
                a = np.asarray(expert(obs, info))[:2] + rng.normal(0, noise, 2)
            a = np.clip(a, -1, 1).astype(np.float32)
            obs, _, term, trunc, info = env.step(env_action(a))
            actions.append(a)
            states.append(push_state(obs, info))
            if term or trunc:
                break
        episodes.append({"states": np.array(states), "actions": np.array(actions)})
    env.close()
    return episodes


def evaluate(method: str, n: int, planner: MPPIPlanner | None, seed: int
             ) -> list[dict[str, Any]]:
    """Run ``n`` goal episodes with ``method`` in {"mpc", "expert", "random"}."""
    env = gym.make(ENV_ID, images=False, goal_mode="pushes", terminate_on_success=False)
    expert = BoxPushExpert(env)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        obs, info = env.reset(seed=10000 + i)
        start_err = None
        if planner is not None:
            planner.reset()
        plan_s: list[float] = []
        steps, ever = 0, False
        while True:
            if start_err is None:
                # info of reset() has no errors yet: measure from the poses
                pose, goal = env.unwrapped.object_pose(), env.unwrapped.goal_pose
                start_err = (float(np.hypot(*(pose[:2] - goal[:2]))),
                             float(abs((pose[2] - goal[2] + math.pi) % (2 * math.pi) - math.pi)))
            if method == "mpc":
                assert planner is not None
                a = planner.act(push_state(obs, info), obs["goal_keypoints"])
                plan_s.append(planner.plan_seconds[-1])
            elif method == "expert":
                a = np.asarray(expert(obs, info))[:2]
            else:
                a = rng.uniform(-1, 1, 2)
            obs, _, term, trunc, info = env.step(env_action(a))
            steps += 1
            ever = ever or bool(info["is_success"])
            if term or trunc:
                break
        rows.append({
            "method": method, "episode": i, "steps": steps,
            "start_position_cm": 100 * start_err[0],
            "start_angle_deg": math.degrees(start_err[1]),
            "position_cm": 100 * float(info["position_error"]),
            "angle_deg": math.degrees(float(info["angle_error"])),
            "keypoint_distance_cm": 100 * float(info["keypoint_distance"]),
            "success": bool(info["is_success"]),
            "success_any_step": ever,
            "plan_ms_median": 1000 * float(np.median(plan_s)) if plan_s else math.nan,
        })
        print(f"{method} ep {i}: pos {rows[-1]['position_cm']:.2f} cm, angle "
              f"{rows[-1]['angle_deg']:.1f} deg, success {rows[-1]['success']}", flush=True)
    env.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (~6 min)")
    size.add_argument("--full", action="store_true", help="full sizes (the default)")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--noise", type=float, default=0.4)
    p.add_argument("--random-prob", type=float, default=0.15)
    p.add_argument("--train-steps", type=int, default=None,
                   help="optimizer steps (quick 6000, full 20000)")
    p.add_argument("--train-seconds", type=float, default=None,
                   help="wall-clock cap on training, s (default: none)")
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--planar", action="store_true",
                   help="SE(2) augmentation (the pusher is not round: approximate)")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--reach-cost", type=float, default=0.02,
                   help="MPPI tie-breaker: weight of the mean pusher-to-box-centre distance "
                   "(0 = the paper's terminal + running keypoint cost only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None)
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    n_eps = args.episodes or (200 if args.quick else 600)
    train_steps = args.train_steps or (6000 if args.quick else 20000)
    n_eval = args.eval_episodes or (10 if args.quick else 100)
    tag = args.tag or ("quick" if args.quick else "full")
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    episodes = collect(n_eps, args.steps, args.seed, args.noise, args.random_prob)
    collect_s = time.perf_counter() - t0
    n_trans = sum(len(e["actions"]) for e in episodes)
    print(f"collected {n_trans} transitions in {collect_s:.1f} s", flush=True)

    torch.manual_seed(args.seed)  # the model's initial weights
    model = KeypointDynamics(DynamicsConfig((4, 3), 2, hidden=(256, 256), planar=args.planar))
    stats = train_dynamics(model, episodes, TrainConfig(
        steps=train_steps, batch_size=256, rollout_steps=5, lr=1e-3, seed=args.seed,
        max_seconds=args.train_seconds), log=print)
    print({k: v for k, v in stats.items()}, flush=True)

    planner = MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(
        horizon=args.horizon, samples=args.samples, iterations=args.iterations,
        reach_cost=args.reach_cost, seed=args.seed), cost_rows=[0, 1, 2],
        reach_rows=(3, [0, 1, 2]))
    rows = []
    for method in ("mpc", "expert", "random"):
        rows += evaluate(method, n_eval, planner if method == "mpc" else None, args.seed)

    summary: dict[str, Any] = {}
    for method in ("mpc", "expert", "random"):
        r = [x for x in rows if x["method"] == method]
        summary[method] = {
            "position_cm_median": common.median([x["position_cm"] for x in r]),
            "position_cm_mean": float(np.mean([x["position_cm"] for x in r])),
            "angle_deg_median": common.median([x["angle_deg"] for x in r]),
            "angle_deg_mean": float(np.mean([x["angle_deg"] for x in r])),
            "success_rate": float(np.mean([x["success"] for x in r])),
            "success_any_step_rate": float(np.mean([x["success_any_step"] for x in r])),
            "start_position_cm_median": common.median([x["start_position_cm"] for x in r]),
            "start_angle_deg_median": common.median([x["start_angle_deg"] for x in r]),
        }
    ps = np.asarray(planner.plan_seconds)
    summary["mpc"]["plan_ms_median"] = 1000 * float(np.median(ps))
    summary["mpc"]["plan_ms_p95"] = 1000 * float(np.percentile(ps, 95))
    for m, s in summary.items():
        print(m, {k: round(v, 3) for k, v in s.items()})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common.write_csv(out / f"push_mpc_{tag}.csv", rows, list(rows[0].keys()))
    common.write_json(out / f"push_mpc_{tag}.json", {
        "machine": common.machine_info(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "keypoints": "true (info['keypoints']: 3 box corners) + pusher position",
        "data": {"episodes": n_eps, "transitions": n_trans, "seconds": collect_s},
        "training": stats,
        "summary": summary,
    })
    plt = common.use_agg()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    methods = ["mpc", "expert", "random"]
    for ax, key, label in ((axes[0], "position_cm", "final position error (cm)"),
                           (axes[1], "angle_deg", "final angle error (deg)")):
        data = [[x[key] for x in rows if x["method"] == m] for m in methods]
        ax.boxplot(data)
        ax.set_xticks(range(1, 4), ["MPC (true kp)", "expert", "random"])
        for j, d in enumerate(data):
            ax.scatter(np.full(len(d), j + 1.0), d, s=10, alpha=0.6)
        ax.set_ylabel(label)
        ax.set_yscale("log")
    fig.suptitle(f"{ENV_ID}, {n_eval} pushed goals: MPPI on learned keypoint dynamics")
    common.save_figure(fig, out / f"push_mpc_{tag}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
