"""The main job (``make demo``): every env, a scripted policy, 4-view videos under ``runs/``.

For each registered S3K env and each of its keypoints: reset with a seed, run the privileged
scripted reach controller (``agents.scripted``) to that keypoint until success or the time
limit, draw the true keypoints on every view (filled = visible, ring = occluded or outside
the image), and write ``runs/demo/<env>.mp4`` plus a PNG of the first frame. Prints a
summary table at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import s3k_envs
from agents.scripted import ReachKeypointController
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


def run_env(env_id: str, seed: int, image_size: int, out_dir: Path) -> dict[str, object]:
    """Reach every keypoint of ``env_id`` in turn (one episode each, seeds ``seed, seed+1,
    ...``) and write one video of all episodes plus a PNG of the first frame.

    Returns:
        A summary row: env id, episodes, successes, mean steps, mean final distance to the
        target (m), env steps/s (rendering included) and the paths written.
    """
    frames: list[np.ndarray] = []
    steps, successes, distances, step_time = [], 0, [], 0.0
    keypoints = gym.make(env_id, image_size=16).unwrapped.keypoint_names
    for i, keypoint in enumerate(keypoints):
        env = gym.make(env_id, image_size=image_size, target_keypoint=keypoint)
        controller = ReachKeypointController(env)
        obs, info = env.reset(seed=seed + i)
        controller.reset()
        frames.append(annotated_mosaic(obs, info))
        terminated = truncated = False
        n = 0
        while not (terminated or truncated):
            action = controller(obs, info)
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            step_time += time.perf_counter() - start
            frames.append(annotated_mosaic(obs, info))
            n += 1
        frames.extend([frames[-1]] * 3)  # hold the final pose for a moment
        env.close()
        steps.append(n)
        successes += bool(info["is_success"])
        distances.append(float(info.get("target_distance", float("nan"))))
    name = env_id.replace("/", "_")
    video = write_video(frames, out_dir / f"{name}.mp4", fps=4)
    png = write_png(frames[0], out_dir / f"{name}.png")
    return {
        "env": env_id,
        "episodes": len(keypoints),
        "successes": successes,
        "mean_steps": float(np.mean(steps)),
        "final_distance_m": float(np.mean(distances)),
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
    print(f"\n{'env':24s} {'success':>8s} {'steps':>6s} {'dist mm':>8s} {'steps/s':>8s}  video")
    for row in rows:
        print(
            f"{row['env']:24s} {row['successes']:>4d}/{row['episodes']:<3d} "
            f"{row['mean_steps']:6.1f} {1000 * row['final_distance_m']:8.1f} "
            f"{row['steps_per_s']:8.1f}  {row['video']}"
        )
    return rows


if __name__ == "__main__":
    main()
