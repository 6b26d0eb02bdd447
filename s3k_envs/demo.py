"""The main job (``make demo``): every env, a scripted policy, 4-view videos under ``runs/``.

For each registered S3K env: run its privileged scripted expert (``agents.demos.make_expert``:
reach each keypoint in turn, or insert the cable plug) until success or the time limit, draw
the true keypoints on every view (filled = visible, ring = occluded or outside the image),
and write ``runs/demo/<env>.mp4`` plus a PNG of the first frame. Prints a summary table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import s3k_envs
from agents.demos import make_expert
from s3k_envs.viz import draw_points, mosaic, write_png, write_video


def annotated_mosaic(obs: dict[str, np.ndarray], info: dict) -> np.ndarray:
    """2x2 mosaic of the views with the true keypoints drawn, ``(H', W', 3)`` uint8."""
    views = [
        draw_points(img, uv, vis)
        for img, uv, vis in zip(
            obs["images"], info["keypoints_2d"], info["keypoints_visible"], strict=True
        )
    ]
    return mosaic(np.stack(views))


def run_env(
    env_id: str, seed: int, image_size: int, out_dir: Path, episodes: int = 3
) -> dict[str, object]:
    """Run the env's scripted expert for a few episodes and write one video of them all plus
    a PNG of the first frame.

    Reach tasks (Box, Shoes, ...) target each keypoint in turn; the cable task runs
    ``episodes`` insertions. Seeds are ``seed, seed + 1, ...``.

    Returns:
        A summary row: env id, episodes, successes, mean steps, env steps/s (rendering
        included) and the paths written.
    """
    probe = gym.make(env_id, image_size=16)
    targets: list[str | None] = [None] * episodes
    if "target_keypoint" in probe.unwrapped.default_options():
        targets = list(probe.unwrapped.keypoint_names)
    probe.close()
    frames: list[np.ndarray] = []
    steps, successes, step_time = [], 0, 0.0
    for i, target in enumerate(targets):
        kwargs = {} if target is None else {"target_keypoint": target}
        env = gym.make(env_id, image_size=image_size, **kwargs)
        expert = make_expert(env)
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        frames.append(annotated_mosaic(obs, info))
        terminated = truncated = False
        n = 0
        while not (terminated or truncated):
            action = expert(obs, info)
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            step_time += time.perf_counter() - start
            frames.append(annotated_mosaic(obs, info))
            n += 1
        frames.extend([frames[-1]] * 3)  # hold the final pose for a moment
        env.close()
        steps.append(n)
        successes += bool(info["is_success"])
    name = env_id.replace("/", "_")
    video = write_video(frames, out_dir / f"{name}.mp4", fps=4)
    png = write_png(frames[0], out_dir / f"{name}.png")
    return {
        "env": env_id,
        "episodes": len(targets),
        "successes": successes,
        "mean_steps": float(np.mean(steps)),
        "steps_per_s": sum(steps) / step_time,
        "video": str(video),
        "png": str(png),
    }


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Command-line entry: ``python -m s3k_envs.demo [--out runs/demo] [--seed 0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--envs", nargs="*", default=list(s3k_envs.ENV_SPECS))
    args = parser.parse_args(argv)
    rows = [run_env(env_id, args.seed, args.image_size, args.out) for env_id in args.envs]
    print(f"\n{'env':24s} {'success':>8s} {'steps':>6s} {'steps/s':>8s}  video")
    for row in rows:
        print(
            f"{row['env']:24s} {row['successes']:>4d}/{row['episodes']:<3d} "
            f"{row['mean_steps']:6.1f} {row['steps_per_s']:8.1f}  {row['video']}"
        )
    return rows


if __name__ == "__main__":
    main()
