"""Training-loop throughput on S3K-CableInsert-v0: agent steps/s per arm (env step + one update).

One *agent step* is what an RL training loop does per env step at update-to-data ratio 1:
the policy picks an action (:meth:`agents.rlpd.RLPD.act`), the env steps, the transition is
stored, and the agent does one update round (one critic update + one actor and temperature
update, batch 256, half demonstrations). One torch thread (``torch.set_num_threads(1)``), as
the project's benchmarks run on the 2-core CPU box.

Arms (observation the agent reads):

==============  ================================================================================
arm             env
==============  ================================================================================
``gt``          true keypoints + gripper state (``(22,)``,
                :class:`benchmarks.cable_rlpd.CableStateObservation`), env made with
                ``images=False``: nothing is rendered
``gt_render``   the same observation on an env that renders 4 x 32 px views every step (what the
                ``gt`` arm of ``benchmarks/cable_rl.py`` did: images nobody looks at)
``kp``          the shipped S3K model's predicted keypoints from 4 x 128 px views
                (:class:`~s3k_envs.wrappers.keypoints.KeypointObservation`, 1 torch thread) +
                gripper state (a ``Dict`` observation, flattened by the agent)
==============  ================================================================================

Agents (:class:`~agents.rlpd.RLPD`, MLPs 256 x 256): ``rlpd_e2`` (2 LayerNorm critics, batch
256: the CPU setting), ``rlpd_e2_b128`` (the same, batch 128), ``rlpd_e2_b128_d2`` (and the
actor updated every 2nd step, TD3-style) and ``rlpd_e10`` (RLPD's / REDQ's 10 critics, a
random pair for the target, batch 256).
Besides the loop, each component is timed on its own (env step, ``act``, ``update``), and the
update of Stable-Baselines3's SAC and TD3 (same batch 256, 256 x 256 MLPs, 2 critics) for
comparison. Every figure is the median of ``--repeats`` runs of ``--steps`` agent steps after
a warm-up; the load average of the machine before and after is recorded (the box is shared).
Besides wall-clock agent steps/s, ``agent_steps_per_cpu_s`` divides by the CPU time of this
process (all its threads): what one idle core would do, when other jobs share the machine
(for the rendering arms it also counts llvmpipe's worker threads, so it is a lower bound).

``--env-id S3K-CableInsertShort-v0`` measures the same on the short cable task (4 cable
segments instead of 12: a cheaper env step); its ``kp`` arm uses the CableInsert keypoint
model when the short env has none of its own (same cameras and keypoints; the throughput does
not depend on the predictions). The result stem then names the env: ``rl_throughput_short``.

``--updates-only``: no env loop and no SB3, only :meth:`agents.rlpd.RLPD.update` rounds of
each ``--agents`` config on the ``gt`` arm's spaces (10 expert demonstrations + 2,000 random
online transitions, so that batches are half and half as in training): per repeat, ``--steps``
rounds, each timed in wall-clock ms and in CPU ms of this process (``time.process_time``,
robust to other jobs on the machine); medians over all rounds. ``--baseline REV`` times the
``agents/rlpd.py`` (+ ``agents/rlpd_networks.py``) of git revision ``REV`` the same way,
alternating blocks of rounds with the current code (same data, seed and conditions), and
checks that both give the same parameters after the warm-up rounds (max abs difference
reported). Writes ``rl_throughput_update_rounds{_short}.csv`` / ``.json``.

Outputs (atomic) in ``--out`` (default ``benchmarks/results/``): ``rl_throughput.csv`` (one row
per arm x agent: agent steps/s median/min/max, ms per env step / act / update),
``rl_throughput_updates.csv`` (updates/s per learner incl. SB3), ``rl_throughput.json``
(everything + machine info + command), ``rl_throughput.png``.

Usage::

    MUJOCO_GL=egl python -m benchmarks.rl_throughput [--steps 200] [--repeats 3]
        [--arms gt gt_render kp] [--agents rlpd_e2 rlpd_e10]
        [--env-id S3K-CableInsertShort-v0]
    python -m benchmarks.rl_throughput --updates-only --agents rlpd_e2 --steps 100
        --repeats 10 [--baseline HEAD~1] [--out /tmp/rl]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.rlpd import RLPD, RLPDConfig
from benchmarks import common
from benchmarks.cable_rlpd import ENV_ID, GRIPPER_KEYS, make_env, record_demos

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("gt", "gt_render", "kp")
AGENTS = {"rlpd_e2": {"num_critics": 2, "num_min_critics": 2},
          "rlpd_e2_b128": {"num_critics": 2, "num_min_critics": 2, "batch_size": 128},
          "rlpd_e2_b128_d2": {"num_critics": 2, "num_min_critics": 2, "batch_size": 128,
                              "actor_every": 2},
          "rlpd_e10": {"num_critics": 10, "num_min_critics": 2}}
#: Targets of issue 15 (agent steps/s on the project's 2-core box).
TARGETS = {"gt": 80.0, "kp": 25.0}
#: Cable envs the arms can run on (``--env-id``).
ENV_IDS = common.CABLE_ENV_IDS


def env_tag(env_id: str) -> str:
    """Result-stem suffix of an env: ``""`` for the default CableInsert, ``"_short"`` for
    ``S3K-CableInsertShort-v0`` (as ``benchmarks/cable_rlpd.py`` names it)."""
    if env_id not in ENV_IDS:
        raise ValueError(f"env_id: expected one of {ENV_IDS}, got {env_id!r}")
    name = common.cable_task_name(env_id)
    return f"_{name}" if name else ""


def make_arm(arm: str, env_id: str = ENV_ID) -> gym.Env:
    """The env of one arm (see the module docstring) on cable env ``env_id``."""
    env_tag(env_id)  # validates
    if arm == "gt":
        return make_env(relative=False, env_id=env_id)
    if arm == "gt_render":
        return make_env(relative=False, images=True, image_size=32, env_id=env_id)
    if arm == "kp":
        from s3k_envs.checkpoints import default_checkpoint
        from s3k_envs.wrappers.keypoints import KeypointObservation

        try:
            checkpoint = default_checkpoint(env_id)
        except FileNotFoundError:  # the short env: same cameras and keypoints
            checkpoint = default_checkpoint(ENV_ID)
        base = gym.make(env_id, image_size=128, disable_env_checker=True)
        return KeypointObservation(base, checkpoint, keep=GRIPPER_KEYS, confidence=False,
                                   torch_threads=1)
    raise ValueError(f"arm: expected one of {ARMS}, got {arm!r}")


def demos_for(arm: str, env: gym.Env, world_demos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Demonstrations in the arm's observation format. ``kp`` gets the true keypoints in
    place of predictions (the throughput does not depend on their values)."""
    if arm != "kp":
        return world_demos
    out = []
    for ep in world_demos:
        flat = ep["observations"]  # (T+1, 22): kp (9), gripper pos (3), quat (4), vel (6)
        obs = {"keypoints": flat[:, :9].reshape(-1, 3, 3), "gripper_pos": flat[:, 9:12],
               "gripper_quat": flat[:, 12:16], "gripper_linvel": flat[:, 16:19],
               "gripper_angvel": flat[:, 19:22]}
        space = env.observation_space
        obs = {k: np.clip(obs[k], space[k].low, space[k].high).astype(np.float32)
               for k in space.spaces}
        out.append({**ep, "observations": obs})
    return out


def time_loop(env: gym.Env, agent: RLPD, steps: int, seed: int) -> dict[str, float]:
    """Run ``steps`` agent steps (act, env step, observe, one update round); returns agent
    steps/s and the mean ms of each part."""
    obs, _ = env.reset(seed=seed)
    parts = {"act": 0.0, "env": 0.0, "update": 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        action = agent.act(obs)
        t1 = time.perf_counter()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        t2 = time.perf_counter()
        agent.observe(obs, action, float(reward), next_obs, bool(terminated))
        agent.update()
        t3 = time.perf_counter()
        parts["act"] += t1 - t0
        parts["env"] += t2 - t1
        parts["update"] += t3 - t2
        obs = next_obs
        if terminated or truncated:
            t4 = time.perf_counter()
            obs, _ = env.reset()
            parts["env"] += time.perf_counter() - t4
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {"agent_steps_per_s": steps / total, "agent_steps_per_cpu_s": steps / cpu,
            **{f"{k}_ms": 1000 * v / steps for k, v in parts.items()}}


def time_updates(update: Callable[[], Any], n: int) -> float:
    """Updates per second of ``update`` (after 3 warm-up calls)."""
    for _ in range(3):
        update()
    t = time.perf_counter()
    for _ in range(n):
        update()
    return n / (time.perf_counter() - t)


def sb3_updates_per_s(algo: str, n: int, obs_dim: int = 22, action_dim: int = 6) -> float:
    """Stable-Baselines3 ``SAC`` / ``TD3`` gradient steps per second (batch 256, 256 x 256,
    2 critics; TD3 updates its actor every 2nd step, its default) on random transitions."""
    from gymnasium import spaces
    from stable_baselines3 import SAC, TD3

    class Dummy(gym.Env):
        observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

        def reset(self, *, seed: int | None = None, options: Any = None
                  ) -> tuple[np.ndarray, dict]:
            return np.zeros(obs_dim, np.float32), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            return np.zeros(obs_dim, np.float32), 0.0, False, False, {}

    cls = {"sac": SAC, "td3": TD3}[algo]
    model = cls("MlpPolicy", Dummy(), batch_size=256, device="cpu", seed=0,
                policy_kwargs={"net_arch": [256, 256]})
    rng = np.random.default_rng(0)
    for _ in range(1000):
        model.replay_buffer.add(rng.normal(size=(1, obs_dim)), rng.normal(size=(1, obs_dim)),
                                rng.uniform(-1, 1, (1, action_dim)), np.zeros(1),
                                np.zeros(1), [{}])
    model._setup_learn(1, progress_bar=False)  # logger etc.
    return time_updates(lambda: model.train(gradient_steps=1, batch_size=256), n)


def load_baseline(rev: str) -> types.ModuleType:
    """``agents/rlpd.py`` (and ``agents/rlpd_networks.py`` where the revision has it) of git
    revision ``rev``, imported as the separate module ``_rlpd_baseline.rlpd`` (to time the
    current code against it in one process).

    Raises:
        ValueError: ``git show`` cannot read the file at ``rev`` (the message has git's).
    """

    def show(path: str) -> tuple[str | None, str]:
        res = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=common.REPO_ROOT,
                             capture_output=True, text=True, check=False)
        return (res.stdout if res.returncode == 0 else None), res.stderr.strip()

    source, err = show("agents/rlpd.py")
    if source is None:
        raise ValueError(f"--baseline: expected a git revision with agents/rlpd.py, got "
                         f"{rev!r} ({err})")
    networks, _ = show("agents/rlpd_networks.py")
    with tempfile.TemporaryDirectory(prefix="rlpd_baseline_") as tmp:
        pkg = Path(tmp) / "_rlpd_baseline"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        if networks is not None:
            (pkg / "rlpd_networks.py").write_text(networks)
        (pkg / "rlpd.py").write_text(source.replace("from agents.rlpd_networks",
                                                    "from _rlpd_baseline.rlpd_networks"))
        for name in [m for m in sys.modules if m.split(".")[0] == "_rlpd_baseline"]:
            del sys.modules[name]  # another revision imported earlier in this process
        sys.path.insert(0, tmp)
        try:
            return importlib.import_module("_rlpd_baseline.rlpd")
        finally:
            sys.path.remove(tmp)


def update_agent(module: types.ModuleType, env: gym.Env, demos: list[dict[str, Any]],
                 name: str, online: int = 2000, seed: int = 0) -> Any:
    """An RLPD agent of ``module`` (``agents.rlpd`` or a baseline) with config ``name`` of
    :data:`AGENTS` (UTD 1) on ``env``'s spaces, holding ``demos`` and ``online`` random
    transitions (demonstration observations + N(0, 0.01) noise, uniform actions, N(0, 1)
    rewards, 2 % terminal): what a training run's buffers look like, for timing."""
    agent = module.RLPD(env.observation_space, env.action_space, demos,
                        module.RLPDConfig(utd=1, **AGENTS[name]), seed=seed)
    rng = np.random.default_rng(seed)
    pool = np.concatenate([np.asarray(ep["observations"], np.float32) for ep in demos])
    space = env.action_space
    for _ in range(online):
        obs, next_obs = (pool[rng.integers(len(pool))] + rng.normal(0, 0.01, pool.shape[1])
                         for _ in range(2))
        agent.observe(obs.astype(np.float32), rng.uniform(space.low, space.high),
                      float(rng.normal()), next_obs.astype(np.float32), bool(rng.random() < 0.02))
    return agent


def time_update_rounds(agents: dict[str, Any], rounds: int, repeats: int
                       ) -> dict[str, dict[str, list[float]]]:
    """Per agent, the wall-clock and process-CPU seconds of each of ``repeats`` x ``rounds``
    ``update()`` calls; the agents take turns, one block of ``rounds`` at a time, so that
    they see the same machine load."""
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in agents}
    for _ in range(repeats):
        for key, agent in agents.items():
            for _ in range(rounds):
                t, c = time.perf_counter(), time.process_time()
                agent.update()
                out[key]["wall"].append(time.perf_counter() - t)
                out[key]["cpu"].append(time.process_time() - c)
    return out


def updates_only(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--updates-only`` mode (module docstring); returns the JSON document written."""
    import agents.rlpd as current

    tag = env_tag(args.env_id)
    baseline = load_baseline(args.baseline) if args.baseline else None
    load_before = loadavg()
    env = make_env(relative=False, env_id=args.env_id)
    demos, _ = record_demos(10, seed=0, relative=False, env_id=args.env_id)
    warmup = 10
    rows: list[dict[str, Any]] = []
    for name in args.agents:
        agents: dict[str, Any] = {}
        for key, module in (("baseline", baseline), ("current", current)):
            if module is not None:
                agents[key] = update_agent(module, env, demos, name)  # reseeds torch
                for _ in range(warmup):
                    agents[key].update()
        diff = None
        if baseline is not None:
            diff = max(float((p.detach() - q.detach()).abs().max())
                       for m in ("actor", "critic", "critic_target")
                       for p, q in zip(getattr(agents["baseline"], m).parameters(),
                                       getattr(agents["current"], m).parameters(), strict=True))
        times = time_update_rounds(agents, args.steps, args.repeats)
        for key, t in times.items():
            row = {"agent": name, "code": key if key == "current" else f"baseline {args.baseline}",
                   "update_ms_wall_median": 1000 * common.median(t["wall"]),
                   "update_ms_cpu_median": 1000 * common.median(t["cpu"]),
                   "update_ms_cpu_mean": 1000 * float(np.mean(t["cpu"])),
                   "rounds": len(t["cpu"]),
                   "max_abs_param_diff_after_warmup": diff}
            rows.append(row)
            print(f"{name:16s} {row['code']:20s} update {row['update_ms_wall_median']:6.2f} ms "
                  f"wall (median), {row['update_ms_cpu_median']:6.2f} ms CPU (median), "
                  f"{row['update_ms_cpu_mean']:6.2f} ms CPU (mean), {row['rounds']} rounds",
                  flush=True)
        if diff is not None:
            print(f"{name:16s} max |param difference| after {warmup} warm-up rounds: {diff:.3g}",
                  flush=True)
    env.close()
    doc = {"benchmark": "rl_throughput_update_rounds", "env_id": args.env_id,
           "rounds_per_block": args.steps, "repeats": args.repeats,
           "warmup_rounds": warmup, "baseline": args.baseline, "rows": rows,
           "torch_threads": torch.get_num_threads(), "loadavg_before": load_before,
           "loadavg_after": loadavg(), "machine": common.machine_info()}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"rl_throughput_update_rounds{tag}"
    common.write_csv(args.out / f"{stem}.csv", rows,
                     ["agent", "code", "update_ms_wall_median", "update_ms_cpu_median",
                      "update_ms_cpu_mean", "rounds", "max_abs_param_diff_after_warmup"])
    common.write_json(args.out / f"{stem}.json", doc)
    return doc


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages (None where unavailable)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def plot(rows: Sequence[dict[str, Any]], path: Path, env_id: str = ENV_ID) -> None:
    """Bars: ms per agent step split into env / act / update, per arm x agent; the agent
    steps/s above each bar; the targets as dashed lines in steps/s."""
    plt = common.use_agg()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    # Agent names without their shared prefix, so that neighbouring labels do not overlap.
    labels = [f"{r['arm']}\n{r['agent'].removeprefix('rlpd_')}" for r in rows]
    bottom = np.zeros(len(rows))
    for part, color in (("env_ms", "#8172b2"), ("act_ms", "#ccb974"), ("update_ms", "#4c72b0")):
        vals = np.array([r[part] for r in rows])
        ax.bar(labels, vals, bottom=bottom, color=color, label=part.replace("_ms", ""))
        bottom += vals
    for i, r in enumerate(rows):
        ax.text(i, bottom[i], f"{r['agent_steps_per_s']:.0f}/s", ha="center", va="bottom")
    for arm, target in TARGETS.items():
        ax.axhline(1000 / target, ls="--", lw=0.8, color="grey")
        # Right of the axes, where no bar hides it.
        ax.text(1.005, 1000 / target, f"{arm} target\n{target:.0f}/s", ha="left",
                va="center", fontsize=8, color="grey", transform=ax.get_yaxis_transform())
    ax.set_ylabel("ms per agent step (UTD 1, 1 torch thread)")
    ax.set_xlabel("arm / agent (rlpd_...)")
    name = env_id.removeprefix("S3K-").removesuffix("-v0")
    ax.set_title(f"{name} training loop: env step + act + one update")
    ax.legend(loc="upper left")
    common.save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line; returns the JSON document written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed agent steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--no-sb3", action="store_true", help="skip the SB3 update timings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--env-id", default=ENV_ID, choices=ENV_IDS,
                        help="cable env of the arms (the result stem names a non-default one: "
                             "rl_throughput_short.*)")
    parser.add_argument("--updates-only", action="store_true",
                        help="time only RLPD update rounds (no env loop, no SB3): "
                             "rl_throughput_update_rounds.*")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="with --updates-only: also time agents/rlpd.py of this git "
                             "revision, alternating with the current code")
    args = parser.parse_args(argv)
    if args.baseline and not args.updates_only:
        parser.error("--baseline: expected together with --updates-only")
    torch.set_num_threads(1)
    if args.updates_only:
        return updates_only(args)
    tag = env_tag(args.env_id)
    load_before = loadavg()
    world_demos, _ = record_demos(10, seed=0, relative=False, env_id=args.env_id)
    rows: list[dict[str, Any]] = []
    for arm in args.arms:
        env = make_arm(arm, args.env_id)
        try:
            demos = demos_for(arm, env, world_demos)
            for name in args.agents:
                runs = []
                for rep in range(args.repeats):
                    agent = RLPD(env.observation_space, env.action_space, demos,
                                 RLPDConfig(utd=1, **AGENTS[name]), seed=rep)
                    time_loop(env, agent, 20, seed=rep)  # warm-up (buffers, renderer, model)
                    runs.append(time_loop(env, agent, args.steps, seed=100 + rep))
                sps = [r["agent_steps_per_s"] for r in runs]
                row = {"arm": arm, "agent": name,
                       "agent_steps_per_s": common.median(sps),
                       "agent_steps_per_s_min": min(sps), "agent_steps_per_s_max": max(sps),
                       "agent_steps_per_cpu_s": common.median(
                           [r["agent_steps_per_cpu_s"] for r in runs]),
                       **{k: common.median([r[k] for r in runs])
                          for k in ("env_ms", "act_ms", "update_ms")},
                       "target": TARGETS.get(arm)}
                rows.append(row)
                print(f"{arm:10s} {name:9s} {row['agent_steps_per_s']:6.1f} agent steps/s, "
                      f"{row['agent_steps_per_cpu_s']:6.1f} per CPU-s "
                      f"(env {row['env_ms']:.1f} ms, act {row['act_ms']:.2f} ms, update "
                      f"{row['update_ms']:.1f} ms)", flush=True)
        finally:
            env.close()
    updates: list[dict[str, Any]] = []
    space_env = make_env(relative=False, env_id=args.env_id)
    for name in args.agents:
        agent = RLPD(space_env.observation_space, space_env.action_space, world_demos,
                     RLPDConfig(utd=1, **AGENTS[name]))
        ups = [time_updates(agent.update, 50) for _ in range(args.repeats)]
        updates.append({"learner": f"{name} (agents.rlpd, torch)",
                        "updates_per_s": common.median(ups), "min": min(ups), "max": max(ups)})
    space_env.close()
    if not args.no_sb3:
        for algo in ("sac", "td3"):
            ups = [sb3_updates_per_s(algo, 50) for _ in range(args.repeats)]
            updates.append({"learner": f"stable_baselines3 {algo.upper()}",
                            "updates_per_s": common.median(ups), "min": min(ups),
                            "max": max(ups)})
    for u in updates:
        print(f"{u['learner']:32s} {u['updates_per_s']:6.1f} updates/s", flush=True)
    doc = {"benchmark": "rl_throughput", "env_id": args.env_id, "steps": args.steps,
           "repeats": args.repeats,
           "rows": rows, "updates": updates, "targets": TARGETS,
           "loadavg_before": load_before, "loadavg_after": loadavg(),
           "machine": common.machine_info()}
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_csv(args.out / f"rl_throughput{tag}.csv", rows,
                     ["arm", "agent", "agent_steps_per_s", "agent_steps_per_s_min",
                      "agent_steps_per_s_max", "agent_steps_per_cpu_s", "env_ms", "act_ms",
                      "update_ms", "target"])
    common.write_csv(args.out / f"rl_throughput{tag}_updates.csv", updates,
                     ["learner", "updates_per_s", "min", "max"])
    common.write_json(args.out / f"rl_throughput{tag}.json", doc)
    plot(rows, args.out / f"rl_throughput{tag}.png", args.env_id)
    return doc


if __name__ == "__main__":
    main()
