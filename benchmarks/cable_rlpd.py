"""RLPD on S3K-CableInsert-v0 from true keypoints (state-based, no images): a short trial.

What does the modern demo-driven agent (:class:`agents.rlpd.RLPD`) do on the cable task when
its observation is the ground truth (the ``gt`` arm of ``benchmarks/cable_rl.py``: true
keypoints + gripper pose and velocity), with the env's reward (``1 - tanh(error / 0.2 m)`` per
step, +100 on success; leaving the safety box ends the episode) and 51 expert
demonstrations? The env is made with ``images=False``: nothing is rendered.

Observation (:class:`CableStateObservation`, ``(22,)`` float32): ``plug_tip``, ``plug_base``,
``socket`` keypoints (m, world) + ``gripper_pos`` (m), ``gripper_quat``, ``gripper_linvel``
(m/s), ``gripper_angvel`` (rad/s). With ``--relative`` (``(19,)``): ``tip - socket``,
``base - socket``, ``gripper - socket`` (m) + quaternion and velocities: invariant to where the
socket stands (SERL's relative frames, Luo et al. 2024). ``--velocity`` appends the plug's
motion since the previous step (``plug_tip``, ``plug_base``: 6 entries, m per step; the swing a
single frame does not show); ``--time-limit`` appends the fraction of the 40 steps still to
come and stores time-limit ends as terminal (``RLPDConfig(bootstrap_truncation=False)``: the
critic values a state by what is left of *this* episode, not by hovering forever).

Seeds: demonstrations from env seeds ``--demo-seed`` + i (expert episodes, all successful);
training resets from ``TRAIN_SEED_BASE + 1000 * seed``; the final deterministic policy is
evaluated on ``--eval-episodes`` held-out seeds ``EVAL_SEED_BASE + i`` (never used for any
choice).

Outputs (atomic; ``benchmarks/results/`` by default, stem ``cable_rlpd_<tag>``):
``<stem>_episodes.csv`` (every training episode: env steps, length, how it ended, final
insertion error, return, discounted return, the critic's Q of the first state-action),
``<stem>_eval.csv`` (held-out episodes), ``<stem>.json`` (config, machine, command, summary
per block of steps, evaluation), ``<stem>.png`` (how episodes end vs env steps; Q0 vs the
discounted return). Where the physical plug tip ended (:func:`tip_state`: in the hole, over
it, or away) is logged per episode. The trained agent goes to ``--save-dir``
(``runs/cable_rlpd/<stem>.pt``, not committed).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rlpd --steps 3000 [--relative] [--utd 4]
        [--critics 2] [--seed 0] [--no-backup-entropy] [--time-limit] [--velocity] [--tag name]
        [--no-layer-norm]
        [--env-id S3K-CableInsertShort-v0]

Where a trained agent fails: ``python -m benchmarks.cable_rlpd_diagnose <agent.pt> --relative``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from agents.rlpd import RLPD, RLPDConfig
from benchmarks import common

ENV_ID = "S3K-CableInsert-v0"
GRIPPER_KEYS = ("gripper_pos", "gripper_quat", "gripper_linvel", "gripper_angvel")
TRAIN_SEED_BASE = 10_000
EVAL_SEED_BASE = 100_000
RESULTS = Path(__file__).resolve().parent / "results"
INFO_KEYS = ("insertion_error", "left_safety_box", "sim_unstable", "is_success",
             "plug_tip_true", "keypoints")


def tip_state(record: dict[str, Any]) -> None:
    """Replace the raw ``plug_tip_true`` / ``keypoints`` of an episode's last step by where
    the physical tip ended relative to the socket opening: ``tip_height_mm`` (above the
    opening, negative inside), ``tip_offset_mm`` (horizontal distance from the hole's axis)
    and ``tip_where``: ``in_hole`` (below the opening, within the hole's square footprint),
    ``over_hole`` (above the opening, within 1 cm of the axis) or ``away``."""
    from s3k_envs.envs.cable import HOLE_HALF_WIDTH

    tip = np.asarray(record.pop("plug_tip_true"), np.float64)
    socket = np.asarray(record.pop("keypoints"), np.float64)[2]
    rel = tip - socket
    record["tip_height_mm"] = 1000 * float(rel[2])
    record["tip_offset_mm"] = 1000 * float(np.linalg.norm(rel[:2]))
    if rel[2] < 0 and np.all(np.abs(rel[:2]) <= HOLE_HALF_WIDTH):
        record["tip_where"] = "in_hole"
    elif rel[2] >= 0 and record["tip_offset_mm"] <= 10.0:
        record["tip_where"] = "over_hole"
    else:
        record["tip_where"] = "away"


def state_vector(obs: Mapping[str, np.ndarray], keypoints: np.ndarray,
                 relative: bool, time_left: float | None = None,
                 prev_keypoints: np.ndarray | None = None) -> np.ndarray:
    """The agent's observation of one step.

    Args:
        obs: the env's observation dict (``gripper_pos`` (3,) m, ``gripper_quat`` (4,),
            ``gripper_linvel`` (3,) m/s, ``gripper_angvel`` (3,) rad/s).
        keypoints: ``(3, 3)`` m, ``plug_tip``, ``plug_base``, ``socket`` (world).
        relative: positions relative to the socket (``(19,)``) instead of world (``(22,)``).
        time_left: if given, appended as the last entry (fraction of the episode's steps
            still to come, 1 at reset, 0 at the time limit).
        prev_keypoints: if given, the previous control step's ``(3, 3)`` keypoints (at reset:
            the same as ``keypoints``); ``plug_tip`` and ``plug_base`` motion since then (m per
            step, 6 entries) is appended before ``time_left``: the swing of the plug, which
            one frame does not show.

    Returns:
        float32 vector: keypoints (world, 9) or ``tip - socket, base - socket, gripper -
        socket`` (9), then the gripper entries (world: ``gripper_pos`` first; relative: it is
        already in the 9), then the plug's motion and ``time_left`` if given.
    """
    kp = np.asarray(keypoints, np.float64)
    grip = np.asarray(obs["gripper_pos"], np.float64)
    rest = [np.asarray(obs[k], np.float64).ravel() for k in GRIPPER_KEYS[1:]]
    if relative:
        socket = kp[2]
        head = [kp[0] - socket, kp[1] - socket, grip - socket]
    else:
        head = [kp.ravel(), grip]
    tail = [] if prev_keypoints is None else [
        (kp[:2] - np.asarray(prev_keypoints, np.float64)[:2]).ravel()]
    if time_left is not None:
        tail.append(np.array([time_left], np.float64))
    return np.concatenate([*head, *rest, *tail]).astype(np.float32)


class CableStateObservation(gym.Wrapper):
    """Box observation of the true keypoints + gripper state (:func:`state_vector`).

    Args:
        env: a CableInsert env (its ``info["keypoints"]`` are read; make it with
            ``images=False`` so that nothing renders).
        relative: socket-relative positions.
        time_feature: append the fraction of the episode still to come (``1 - t / T``, T the
            env's ``max_episode_steps``): the time limit is part of the task, and a critic
            that does not bootstrap at the time limit needs it (Pardo et al. 2018).
        velocity: append the plug's motion since the previous step (:func:`state_vector`).
    """

    def __init__(self, env: gym.Env, relative: bool = False, time_feature: bool = False,
                 velocity: bool = False) -> None:
        super().__init__(env)
        self.relative = bool(relative)
        self.time_feature = bool(time_feature)
        self.velocity = bool(velocity)
        self._prev: np.ndarray | None = None
        spec = env.spec
        self.max_steps = int(spec.max_episode_steps) if spec and spec.max_episode_steps else 40
        self.t = 0
        dim = (19 if relative else 22) + 6 * self.velocity + self.time_feature
        self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def _vector(self, obs: Mapping[str, np.ndarray], keypoints: np.ndarray) -> np.ndarray:
        kp = np.asarray(keypoints, np.float64)
        prev = (kp if self._prev is None else self._prev) if self.velocity else None
        self._prev = kp.copy()
        return state_vector(obs, kp, self.relative,
                            1.0 - self.t / self.max_steps if self.time_feature else None, prev)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; observation from the first frame's keypoints."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.t, self._prev = 0, None
        return self._vector(obs, info["keypoints"]), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step; observation from this step's keypoints."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return self._vector(obs, info["keypoints"]), reward, terminated, truncated, info


def make_env(relative: bool = False, time_feature: bool = False, velocity: bool = False,
             env_id: str = ENV_ID, **options: Any) -> CableStateObservation:
    """The state-based cable env ``env_id``: ``images=False`` (no rendering), the env's
    reward."""
    options = {"images": False, "disable_env_checker": True, **options}
    return CableStateObservation(gym.make(env_id, **options), relative, time_feature, velocity)


def record_demos(episodes: int, seed: int, relative: bool, time_feature: bool = False,
                 velocity: bool = False, env_id: str = ENV_ID
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Expert episodes on the state env (:class:`s3k_envs.experts.CableInsertExpert`), in the
    agents' episode format with :func:`state_vector` observations; failures skipped.

    Returns:
        ``(episodes, stats)`` with attempts, failures, steps, median length.
    """
    from s3k_envs.demos import run_episode
    from s3k_envs.experts import CableInsertExpert

    env = gym.make(env_id, images=False, disable_env_checker=True)
    expert = CableInsertExpert(env)
    out, attempts, failed = [], 0, []
    try:
        while len(out) < episodes and attempts < 3 * episodes + 10:
            ep = run_episode(env, expert, seed + attempts, store_images=False)
            attempts += 1
            if not ep["success"]:
                failed.append(seed + attempts - 1)
                continue
            kps = ep["infos"]["keypoints"]
            limit = env.spec.max_episode_steps if env.spec else 40
            obs = [state_vector({k: v[t] for k, v in ep["observations"].items()}, kps[t],
                                relative, 1.0 - t / limit if time_feature else None,
                                kps[max(t - 1, 0)] if velocity else None)
                   for t in range(len(kps))]
            out.append({"observations": np.stack(obs), "actions": ep["actions"],
                        "rewards": ep["rewards"], "terminated": ep["terminated"],
                        "truncated": ep["truncated"]})
    finally:
        env.close()
    lengths = [len(e["actions"]) for e in out]
    return out, {"episodes": len(out), "attempts": attempts, "failed_seeds": failed,
                 "steps": int(sum(lengths)), "median_length": float(np.median(lengths))}


def end_reason(record: Mapping[str, Any]) -> str:
    """``success``, ``left_box``, ``unstable``, ``time_limit`` or ``other``."""
    if record.get("is_success"):
        return "success"
    if record.get("left_safety_box"):
        return "left_box"
    if record.get("sim_unstable"):
        return "unstable"
    if record.get("truncated"):
        return "time_limit"
    return "other"


def evaluate(agent: RLPD, relative: bool, episodes: int, time_feature: bool = False,
             velocity: bool = False, env_id: str = ENV_ID) -> list[dict[str, Any]]:
    """The deterministic policy on held-out seeds ``EVAL_SEED_BASE + i``."""
    env = make_env(relative, time_feature, velocity, env_id)
    rows = []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=EVAL_SEED_BASE + i)
            q0 = float(agent.q_values(obs, agent.act(obs, deterministic=True)).mean())
            ret, disc, n, done = 0.0, 0.0, 0, False
            while not done:
                obs, r, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
                ret += r
                disc += agent.config.gamma ** n * r
                n += 1
                done = terminated or truncated
            row = {"seed": EVAL_SEED_BASE + i, "length": n, "return": ret,
                   "discounted_return": disc, "q0": q0, "truncated": truncated,
                   **{k: info[k] for k in INFO_KEYS}}
            row["end"] = end_reason(row)
            tip_state(row)
            rows.append(row)
    finally:
        env.close()
    return rows


def block_summary(rows: Sequence[Mapping[str, Any]], block: int, total: int
                  ) -> list[dict[str, Any]]:
    """Per block of ``block`` env steps: episodes, how they ended (fractions), median length
    and final insertion error, mean Q0 and discounted return."""
    out = []
    for lo in range(0, total, block):
        sel = [r for r in rows if lo < r["env_steps"] <= lo + block]
        if not sel:
            continue
        ends = [r["end"] for r in sel]
        out.append({
            "steps": f"{lo}-{lo + block}", "episodes": len(sel),
            **{f"frac_{e}": ends.count(e) / len(sel)
               for e in ("success", "left_box", "time_limit", "unstable")},
            "median_length": float(np.median([r["length"] for r in sel])),
            "median_final_error_m": float(np.median([r["insertion_error"] for r in sel])),
            **{f"frac_tip_{w}": sum(r["tip_where"] == w for r in sel) / len(sel)
               for w in ("in_hole", "over_hole", "away")},
            "mean_q0": float(np.mean([r["q0"] for r in sel])),
            "mean_discounted_return": float(np.mean([r["discounted_return"] for r in sel])),
        })
    return out


def plot(rows: Sequence[Mapping[str, Any]], blocks: Sequence[Mapping[str, Any]], path: Path,
         title: str) -> None:
    """Left: fraction of episodes per end reason per block; right: Q0 vs discounted return."""
    plt = common.use_agg()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    centres = [int(b["steps"].split("-")[1]) for b in blocks]
    for end, color in (("success", "#55a868"), ("left_box", "#c44e52"),
                       ("time_limit", "#8172b2"), ("unstable", "#937860")):
        ax1.plot(centres, [b[f"frac_{end}"] for b in blocks], marker="o", label=end, color=color)
    ax1.set_xlabel("env steps")
    ax1.set_ylabel("fraction of training episodes")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend()
    ax1.set_title("how training episodes end")
    steps = [r["env_steps"] for r in rows]
    ax2.scatter(steps, [r["q0"] for r in rows], s=6, label="Q(s0, a0) (ensemble mean)")
    ax2.scatter(steps, [r["discounted_return"] for r in rows], s=6,
                label="discounted return (gamma 0.99)")
    ax2.set_xlabel("env steps")
    ax2.legend()
    ax2.set_title("critic vs what the episode paid")
    fig.suptitle(title)
    common.save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line; returns the JSON document written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="env steps of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demos", type=int, default=51, help="expert demonstrations")
    parser.add_argument("--demo-seed", type=int, default=0)
    parser.add_argument("--relative", action="store_true", help="socket-relative observation")
    parser.add_argument("--utd", type=int, default=4, help="critic updates per env step")
    parser.add_argument("--critics", type=int, default=2, help="critic ensemble size")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--actor-every", type=int, default=1,
                        help="update the actor and temperature every this many update rounds "
                             "(TD3's delayed policy update; 1: every round, as RLPD)")
    parser.add_argument("--init-temperature", type=float, default=1.0,
                        help="initial SAC temperature (RLPD: 1.0)")
    parser.add_argument("--target-entropy", type=float, default=None,
                        help="SAC target entropy (default: RLPD's -|A|/2 = -3 for the 6-D "
                             "action)")
    parser.add_argument("--fixed-temperature", action="store_true",
                        help="keep alpha at --init-temperature (no SAC temperature tuning)")
    parser.add_argument("--no-demos", action="store_true", help="learn without demonstrations")
    parser.add_argument("--no-layer-norm", action="store_true",
                        help="critics without LayerNorm (RLPDConfig(layer_norm=False))")
    parser.add_argument("--no-backup-entropy", action="store_true",
                        help="no -alpha log pi term in the critic target")
    parser.add_argument("--time-limit", action="store_true",
                        help="the 40-step time limit as part of the task: time left in the "
                             "observation, no bootstrap at truncation")
    parser.add_argument("--velocity", action="store_true",
                        help="the plug's motion since the previous step in the observation")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--block", type=int, default=500, help="summary block, env steps")
    parser.add_argument("--tag", default=None, help="result stem suffix")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--save-dir", type=Path, default=Path("runs/cable_rlpd"),
                        help="where the trained agent is saved (agents.rlpd format)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the agent: cpu (default: small MLPs, batch 256, "
                             "one env step per update round: on a GPU kernel launches and "
                             "copies dominate; the GPU's speed is not measured here), cuda, "
                             "cuda:N, mps or auto (cuda, then mps, then cpu)")
    parser.add_argument("--env-id", default=ENV_ID,
                        help="cable env id, e.g. S3K-CableInsertShort-v0 (the result stem "
                             "then names it: ..._short_s0_...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    name = common.cable_task_name(args.env_id)
    env_tag = f"_{name}" if name else ""
    tag = args.tag or (f"{'rel' if args.relative else 'world'}_e{args.critics}_utd{args.utd}"
                       f"_t{args.init_temperature:g}{'_nodemos' if args.no_demos else ''}"
                       f"{'_nobackupent' if args.no_backup_entropy else ''}"
                       f"{'_tl' if args.time_limit else ''}{'_vel' if args.velocity else ''}"
                       f"{'' if args.target_entropy is None else f'_ent{args.target_entropy:g}'}"
                       f"{'_fixedt' if args.fixed_temperature else ''}"
                       f"{'_noln' if args.no_layer_norm else ''}"
                       f"{'' if args.batch_size == 256 else f'_b{args.batch_size}'}"
                       f"{'' if args.actor_every == 1 else f'_d{args.actor_every}'}"
                       f"{env_tag}_s{args.seed}_{args.steps}")
    stem = args.out / f"cable_rlpd_{tag}"
    t0 = time.perf_counter()
    demos, demo_stats = record_demos(args.demos, args.demo_seed, args.relative,
                                     args.time_limit, args.velocity, args.env_id)
    demo_s = time.perf_counter() - t0
    print(f"demos: {demo_stats['episodes']} episodes, {demo_stats['steps']} steps "
          f"({demo_s:.1f} s)", flush=True)
    env = make_env(args.relative, args.time_limit, args.velocity, args.env_id)
    config = RLPDConfig(utd=args.utd, num_critics=args.critics,
                        num_min_critics=min(2, args.critics), batch_size=args.batch_size,
                        actor_every=args.actor_every, init_temperature=args.init_temperature,
                        target_entropy=args.target_entropy,
                        learn_temperature=not args.fixed_temperature,
                        backup_entropy=not args.no_backup_entropy,
                        bootstrap_truncation=not args.time_limit,
                        layer_norm=not args.no_layer_norm)
    agent = RLPD(env.observation_space, env.action_space, None if args.no_demos else demos,
                 config, seed=args.seed, device=args.device)
    rows: list[dict[str, Any]] = []

    def log(a: RLPD, record: dict[str, Any]) -> None:
        record["end"] = end_reason(record)
        tip_state(record)
        record["alpha"] = a.alpha
        rows.append(record)
        if len(rows) % 25 == 0:
            last = rows[-25:]
            ends = [r["end"] for r in last]
            print(f"{record['env_steps']:6d} steps {len(rows):4d} eps | last 25: success "
                  f"{ends.count('success')}, left box {ends.count('left_box')}, time limit "
                  f"{ends.count('time_limit')} | median len "
                  f"{np.median([r['length'] for r in last]):.0f}, final err "
                  f"{np.median([r['insertion_error'] for r in last]):.3f} m | Q0 "
                  f"{np.mean([r['q0'] for r in last]):.1f} vs disc. return "
                  f"{np.mean([r['discounted_return'] for r in last]):.1f} | alpha {a.alpha:.3g}"
                  f" | {record['wall_s']:.0f} s", flush=True)

    t1 = time.perf_counter()
    agent.learn(env, args.steps, seed=TRAIN_SEED_BASE + 1000 * args.seed, info_keys=INFO_KEYS,
                callback=log)
    train_s = time.perf_counter() - t1
    env.close()
    if args.save_dir is not None:
        agent.save(args.save_dir / f"cable_rlpd_{tag}.pt")
    eval_rows = evaluate(agent, args.relative, args.eval_episodes, args.time_limit,
                          args.velocity, args.env_id)
    ends = [r["end"] for r in eval_rows]
    blocks = block_summary(rows, args.block, args.steps)
    doc = {
        "benchmark": "cable_rlpd", "tag": tag,
        "args": vars(args) | {"out": str(args.out), "save_dir": str(args.save_dir)},
        "config": config.to_json(), "device": str(agent.device), "demos": demo_stats,
        "demo_s": demo_s,
        "train_s": train_s, "agent_steps_per_s": args.steps / train_s,
        "training_episodes": len(rows),
        "training_success_rate": float(np.mean([r["end"] == "success" for r in rows]))
        if rows else math.nan,
        "blocks": blocks,
        "eval": {"episodes": len(eval_rows), "success_rate": ends.count("success") / len(ends),
                 "ends": {e: ends.count(e) for e in sorted(set(ends))},
                 "median_length": float(np.median([r["length"] for r in eval_rows])),
                 "median_final_error_m": float(np.median([r["insertion_error"]
                                                          for r in eval_rows])),
                 "tip_where": {w: sum(r["tip_where"] == w for r in eval_rows)
                               for w in ("in_hole", "over_hole", "away")}},
        "machine": common.machine_info(),
    }
    columns = ["env_steps", "length", "end", "insertion_error", "tip_where", "tip_height_mm",
               "tip_offset_mm", "return", "discounted_return", "q0", "alpha", "wall_s"]
    common.write_csv(f"{stem}_episodes.csv", rows, columns)
    common.write_csv(f"{stem}_eval.csv", eval_rows,
                     ["seed", "length", "end", "insertion_error", "tip_where", "tip_height_mm",
                      "tip_offset_mm", "return", "discounted_return", "q0"])
    common.write_json(f"{stem}.json", doc)
    plot(rows, blocks, Path(f"{stem}.png"),
         f"RLPD on CableInsert, true keypoints ({tag}); held-out success "
         f"{doc['eval']['success_rate']:.2f}")
    print(f"eval on {len(eval_rows)} held-out seeds: {doc['eval']}", file=sys.stderr)
    print(f"wrote {stem}.json / _episodes.csv / _eval.csv / .png", file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
