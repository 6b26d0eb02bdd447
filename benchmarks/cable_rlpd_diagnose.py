"""Diagnose a trained cable RLPD agent: where its episodes fail and what it does there.

Rolls the deterministic policy of a saved agent (``benchmarks/cable_rlpd.py --save-dir``) on
diagnostic seeds (``DIAG_SEED_BASE + i``: neither training nor held-out seeds), and the
scripted expert on the same seeds, and prints per step: the physical tip's height above the
socket opening and horizontal offset from the hole's axis (mm), the insertion error D (m),
the action (linear part, m/s units of the action space) and the critic's ensemble-mean Q.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rlpd_diagnose runs/cable_rlpd/<stem>.pt
        [--relative] [--time-limit] [--velocity] [--episodes 10] [--json out.json]

(the expert-side Q columns are only filled for the plain observation, without
``--time-limit`` / ``--velocity``).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from agents.rlpd import RLPD
from benchmarks import cable_rlpd

DIAG_SEED_BASE = 50_000


def rollout(env, policy, seed, agent):
    obs, info = env.reset(seed=seed)
    steps, done = [], False
    while not done:
        action = policy(obs, info)
        q = float(agent.q_values(obs, action).mean())
        tip = np.asarray(info["plug_tip_true"]) if "plug_tip_true" in info else None
        sock = np.asarray(info["keypoints"])[2]
        base = np.asarray(info["keypoints"])[1]
        row = {"err": float(info.get("insertion_error", math.nan)),
               "tip_h_mm": 1000 * float(tip[2] - sock[2]) if tip is not None else math.nan,
               "tip_off_mm": 1000 * float(np.linalg.norm((tip - sock)[:2]))
               if tip is not None else math.nan,
               "base_off_mm": 1000 * float(np.linalg.norm((base - sock)[:2])),
               "a": np.round(np.asarray(action, float), 2).tolist(), "q": q}
        obs, r, term, trunc, info = env.step(action)
        row["r"] = float(r)
        steps.append(row)
        done = term or trunc
    steps.append({"err": float(info["insertion_error"]),
                  "tip_h_mm": 1000 * float(info["plug_tip_true"][2] - info["keypoints"][2][2]),
                  "tip_off_mm": 1000 * float(np.linalg.norm(
                      (np.asarray(info["plug_tip_true"]) - info["keypoints"][2])[:2])),
                  "success": bool(info["is_success"]),
                  "left": bool(info["left_safety_box"])})
    return steps


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("agent")
    p.add_argument("--relative", action="store_true")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--time-limit", action="store_true")
    p.add_argument("--velocity", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    agent = RLPD.load(args.agent)
    env = cable_rlpd.make_env(args.relative, args.time_limit, args.velocity)
    plain = not (args.time_limit or args.velocity)
    import gymnasium as gym

    from s3k_envs.experts import CableInsertExpert
    raw = gym.make(cable_rlpd.ENV_ID, images=False, disable_env_checker=True)
    expert = CableInsertExpert(raw)
    out = []
    for i in range(args.episodes):
        seed = DIAG_SEED_BASE + i
        a_steps = rollout(env, lambda o, inf: agent.act(o, deterministic=True), seed, agent)
        # expert on the wrapped env: the expert reads dict observations, so drive the raw env
        # and feed the agent's observation for Q
        expert.reset()
        obs, info = raw.reset(seed=seed)
        e_steps, done = [], False
        while not done:
            act = expert(obs, info)
            vec = cable_rlpd.state_vector(obs, info["keypoints"], args.relative)
            q = float(agent.q_values(vec, act).mean()) if plain else math.nan
            qa = float(agent.q_values(vec, agent.act(vec, deterministic=True)).mean()) \
                if plain else math.nan
            sock = np.asarray(info["keypoints"])[2]
            tip = np.asarray(info.get("plug_tip_true", info["keypoints"][0]))
            e_steps.append({"err": float(info.get("insertion_error", math.nan)),
                            "tip_h_mm": 1000 * float(tip[2] - sock[2]),
                            "tip_off_mm": 1000 * float(np.linalg.norm((tip - sock)[:2])),
                            "a": np.round(np.asarray(act, float), 2).tolist(),
                            "a_agent": np.round(agent.act(vec, deterministic=True), 2).tolist()
                            if plain else None,
                            "q_expert_a": q, "q_agent_a": qa})
            obs, _r, term, trunc, info = raw.step(act)
            done = term or trunc
        e_steps.append({"success": bool(info["is_success"]), "err": float(info["insertion_error"])})
        out.append({"seed": seed, "agent": a_steps, "expert": e_steps})
        last = a_steps[-1]
        print(f"seed {seed}: agent {len(a_steps) - 1} steps success={last['success']} "
              f"left={last['left']} err={last['err']:.3f} tip h={last['tip_h_mm']:.0f} "
              f"off={last['tip_off_mm']:.0f} mm | expert {len(e_steps) - 1} steps "
              f"success={e_steps[-1]['success']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
    return out


if __name__ == "__main__":
    main()
