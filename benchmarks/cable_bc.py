"""Behaviour cloning on cable insertion: keypoints vs beta-VAE latents vs ground truth.

The cheapest way to compare the representations of :mod:`benchmarks.cable_rl` without RL:
an MLP policy (``22`` or ``23`` inputs -> 256 -> 256 -> 6, tanh) is fitted by mean squared
error to the 51 expert demonstrations of each arm, exactly as the DDPGfD agents see them
(``WORK/demos/<arm>.npz`` written by ``cable_rl``: the ``kp`` arm's predicted keypoints, the
``vae`` arm's latent means, the ``gt`` arm's true keypoints, each with gripper pose and
velocity), and run deterministically in the arm's env (the same fixed camera rig, reward,
success rule and held-out env seeds as ``cable_rl``'s evaluation). It answers "does the
observation carry what the expert's actions depend on, in a form an MLP can use from 51
demonstrations?", which RL then has to build on.

Needs a finished (or at least converted) ``cable_rl`` work directory of the same profile:
run ``python -m benchmarks.cable_rl --quick`` first (``--work-dir`` must match).

Outputs (atomic) in ``--out`` (default ``benchmarks/results``), stem ``cable_bc_<profile>``
(``cable_bc`` for ``--full``): ``.csv`` (one row per arm: held-out success, keypoint rule and
true, mean / min / max over seeds, final insertion error), ``.json`` (plus every episode,
settings, machine info, command) and ``.png`` (success per arm).

Cost: fitting is seconds; evaluation is ``--episodes`` x up to 40 env steps per arm and seed
(~15 steps/s for ``kp`` / ``vae`` with S3K inference at 128 px on one core): ``--quick``
defaults (3 seeds x 20 episodes x 3 arms) ~10 min on the 2-core reference machine.

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_bc --quick [--arms kp vae gt] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from benchmarks import common

CSV_COLUMNS = (
    "arm", "observation", "seeds", "episodes", "fit_steps", "demo_transitions", "fit_mse",
    "success_true_mean", "success_true_min", "success_true_max",
    "success_keypoint_mean", "success_keypoint_min", "success_keypoint_max",
    "final_insertion_error_median_m", "left_safety_box_rate",
)


def demo_arrays(episodes: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """``(observations (N, D), actions (N, A))`` of all demonstration steps (flat obs)."""
    obs = [np.asarray(e["observations"], dtype=np.float32)[: len(e["actions"])]
           for e in episodes]
    act = [np.asarray(e["actions"], dtype=np.float32) for e in episodes]
    if not obs or any(o.ndim != 2 for o in obs):
        raise ValueError("expected flat demonstration observations (T+1, D) per episode")
    return np.concatenate(obs), np.concatenate(act)


def fit_policy(obs: np.ndarray, actions: np.ndarray, steps: int, seed: int,
               batch: int = 64, lr: float = 1e-3) -> tuple[torch.nn.Module, float]:
    """Fit an MLP ``obs (N, D) -> action (N, A)`` in ``[-1, 1]`` by mean squared error.

    Returns:
        ``(policy, final mse)``: the mse over all N samples after ``steps`` Adam steps.
    """
    if len(obs) != len(actions) or len(obs) == 0:
        raise ValueError(f"expected as many observations as actions (> 0), got {len(obs)} "
                         f"and {len(actions)}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(obs.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
        torch.nn.ReLU(), torch.nn.Linear(256, actions.shape[1]), torch.nn.Tanh())
    opt = torch.optim.Adam(net.parameters(), lr)
    x, y = torch.from_numpy(obs), torch.from_numpy(actions)
    for _ in range(steps):
        i = torch.randint(0, len(x), (batch,), generator=gen)
        loss = ((net(x[i]) - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = float(((net(x) - y) ** 2).mean())
    return net.eval(), mse


class _Deterministic:
    """A torch policy with the ``predict(obs, deterministic)`` of an SB3 model, so that
    :func:`benchmarks.cable_rl.training.evaluate` runs it."""

    def __init__(self, policy: torch.nn.Module) -> None:
        self.policy = policy

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        with torch.no_grad():
            return self.policy(torch.as_tensor(obs, dtype=torch.float32)).numpy(), None


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Held-out success per arm (mean over seeds, min-max bars), true and keypoint rule."""
    plt = common.use_agg()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(rows))
    for off, key, color in ((-0.18, "success_true", "tab:blue"),
                            (0.18, "success_keypoint", "tab:orange")):
        mean = np.array([r[f"{key}_mean"] for r in rows])
        lo = mean - np.array([r[f"{key}_min"] for r in rows])
        hi = np.array([r[f"{key}_max"] for r in rows]) - mean
        ax.bar(x + off, mean, 0.36, yerr=[lo, hi], capsize=4, color=color,
               label="true success" if key == "success_true" else "keypoint rule")
    ax.set_xticks(x, [r["observation"] for r in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out success (mean, min-max over seeds)")
    ax.set_title("Behaviour cloning from 51 demonstrations, S3K-CableInsert-v0", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = common.save_figure(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Fit and evaluate BC per arm and seed; returns the exit status."""
    from agents.beta_vae.model import load_vae
    from agents.ddpgfd import flatten_dict_observations
    from benchmarks.cable_rl.config import ARM_LABELS, ARMS, ENV_ID
    from benchmarks.cable_rl.envs import make_arm_env
    from benchmarks.cable_rl.stages import load_episodes
    from benchmarks.cable_rl.training import evaluate
    from s3k_envs.checkpoints import default_checkpoint
    from s3k_envs.keypoints.predictor import KeypointPredictor

    p = argparse.ArgumentParser(prog="python -m benchmarks.cable_bc",
                                description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    for prof in ("smoke", "quick", "full"):
        g.add_argument(f"--{prof}", action="store_const", dest="profile", const=prof)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=20, help="held-out episodes per seed")
    p.add_argument("--fit-steps", type=int, default=3000, help="Adam steps of batch 64")
    p.add_argument("--camera-seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=Path("runs/cable_rl"),
                   help="cable_rl's work directory (its <profile>/demos are used)")
    p.add_argument("--keypoint-checkpoint", type=Path, default=None)
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    a = p.parse_args(argv)
    if a.episodes < 1 or a.fit_steps < 1:
        p.error("--episodes and --fit-steps: expected >= 1")
    torch.set_num_threads(1)
    work = a.work_dir / a.profile
    missing = [arm for arm in a.arms if not (work / "demos" / f"{arm}.npz").is_file()]
    if missing:
        p.error(f"no converted demonstrations for {missing} under {work / 'demos'}: run "
                f"`python -m benchmarks.cable_rl --{a.profile} --arms {' '.join(a.arms)} "
                f"--work-dir {a.work_dir}` first")
    vae_path = work / "vae" / "model.pt"
    if "vae" in a.arms and not vae_path.is_file():
        p.error(f"no beta-VAE at {vae_path}: run cable_rl --{a.profile} with the vae arm first")
    kp_ckpt = a.keypoint_checkpoint or default_checkpoint(ENV_ID)
    predictor = KeypointPredictor.load(kp_ckpt)
    vae = load_vae(vae_path) if "vae" in a.arms else None
    rows, episodes_out = [], []
    for arm in a.arms:
        demos, _ = load_episodes(work / "demos" / f"{arm}.npz")
        obs, actions = demo_arrays(demos)
        arm_env = make_arm_env(arm, a.camera_seed, predictor, vae)
        env, _ = flatten_dict_observations(arm_env.env)
        per_seed, mses = [], []
        try:
            for seed in a.seeds:
                t0 = time.monotonic()
                policy, mse = fit_policy(obs, actions, a.fit_steps, seed)
                eps = evaluate(_Deterministic(policy), env, a.episodes)
                mses.append(mse)
                per_seed.append(eps)
                episodes_out += [{"arm": arm, "seed": seed, **e} for e in eps]
                print(f"[cable_bc] {arm} seed {seed}: fit mse {mse:.4f}, true success "
                      f"{np.mean([e['success_true'] for e in eps]):.2f}, keypoint rule "
                      f"{np.mean([e['success_keypoint'] for e in eps]):.2f} "
                      f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        finally:
            env.close()
        row: dict[str, Any] = {
            "arm": arm, "observation": ARM_LABELS[arm], "seeds": len(a.seeds),
            "episodes": a.episodes, "fit_steps": a.fit_steps, "demo_transitions": len(obs),
            "fit_mse": float(np.mean(mses))}
        for key in ("success_true", "success_keypoint"):
            rates = [float(np.mean([e[key] for e in eps])) for eps in per_seed]
            row |= {f"{key}_mean": float(np.mean(rates)), f"{key}_min": min(rates),
                    f"{key}_max": max(rates)}
        flat = [e for eps in per_seed for e in eps]
        row["final_insertion_error_median_m"] = float(np.median(
            [e["final_insertion_error_m"] for e in flat]))
        row["left_safety_box_rate"] = float(np.mean([e["left_safety_box"] for e in flat]))
        rows.append(row)
    stem = "cable_bc" if a.profile == "full" else f"cable_bc_{a.profile}"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    files = [
        common.write_csv(a.out / f"{stem}.csv", rows, CSV_COLUMNS),
        common.write_json(a.out / f"{stem}.json", {
            "benchmark": stem, "rows": rows, "episodes": episodes_out, "settings": settings,
            "keypoint_checkpoint": str(kp_ckpt), "vae": str(vae_path) if vae else None,
            "machine": common.machine_info(), "command": common.command_line()}),
        plot(rows, a.out / f"{stem}.png"),
    ]
    print(common.markdown_table(rows, [
        ("observation", "policy observes", "s"), ("demo_transitions", "demo steps", "d"),
        ("fit_mse", "fit MSE", ".4f"), ("success_true_mean", "true success", ".2f"),
        ("success_true_min", "min", ".2f"), ("success_true_max", "max", ".2f"),
        ("success_keypoint_mean", "keypoint rule", ".2f"),
        ("final_insertion_error_median_m", "final error m (median)", ".3f")]))
    print("Wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
