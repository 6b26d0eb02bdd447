"""The ``s3k`` command.

Sub-commands so far:

* ``s3k envs`` — list the registered envs with their keypoints and default options.
* ``s3k demo`` — the scripted demo of every env (videos under ``runs/demo``).
* ``s3k snapshot ENV_ID [--seed N] [--out FILE.png]`` — one annotated 4-view mosaic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym

import s3k_envs


def _cmd_envs(_: argparse.Namespace) -> None:
    for env_id in s3k_envs.ENV_SPECS:
        env = gym.make(env_id, image_size=16)
        base = env.unwrapped
        print(f"{env_id}: keypoints {list(base.keypoint_names)}")
        for key, value in sorted(base.default_options().items()):
            print(f"    {key} = {value!r}")
        env.close()


def _cmd_demo(args: argparse.Namespace) -> None:
    from s3k_envs.demo import main as demo_main

    demo_main(args.rest)


def _cmd_snapshot(args: argparse.Namespace) -> None:
    from s3k_envs.demo import annotated_mosaic
    from s3k_envs.viz import write_png

    env = gym.make(args.env_id, image_size=args.image_size)
    obs, info = env.reset(seed=args.seed)
    path = write_png(annotated_mosaic(obs, info), args.out)
    env.close()
    print(path)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``s3k`` console script."""
    parser = argparse.ArgumentParser(prog="s3k", description="S3K multi-view keypoint envs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("envs", help="list envs, keypoints and options").set_defaults(func=_cmd_envs)
    demo = sub.add_parser("demo", help="scripted demo of every env")
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    demo.set_defaults(func=_cmd_demo)
    snap = sub.add_parser("snapshot", help="annotated 4-view PNG of one reset")
    snap.add_argument("env_id")
    snap.add_argument("--seed", type=int, default=0)
    snap.add_argument("--image-size", type=int, default=128)
    snap.add_argument("--out", type=Path, default=Path("runs/snapshot.png"))
    snap.set_defaults(func=_cmd_snapshot)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
