"""The ``s3k`` command.

Sub-commands so far:

* ``s3k envs`` — list the registered envs with their keypoints and default options.
* ``s3k demo [--env ID] [--minutes M]`` — the main job: generate -> train -> evaluate -> act
  on predicted keypoints, on one env (``--tour``: every env's scripted expert, no training).
* ``s3k snapshot ENV_ID [--seed N] [--out FILE.png]`` — one annotated 4-view mosaic.
* ``s3k demos [--env ID] [--episodes 51] [--out FILE.npz]`` — record expert demonstrations.
* ``s3k generate ENV_ID --samples N --labelled M --out DIR`` — a multi-view dataset.
* ``s3k train --labelled DIR [--unlabelled DIR] --out RUN`` — train an S3K keypoint model.
* ``s3k evaluate CKPT DATA`` — RMS px / 3D mm errors and an overlay PNG.

Sub-commands that own many options forward everything after their name to the module's
own ``main(argv)`` (``--help`` works there).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

import s3k_envs

#: Env options given in radians (the API's unit); ``s3k envs`` shows them in degrees too.
ANGLE_OPTIONS = frozenset({"camera_azimuth_jitter", "camera_elevation", "camera_fovy",
                           "bend_scale", "max_total_bend", "max_angular_speed", "goal_yaw",
                           "success_angle"})


def format_option(key: str, value: Any) -> str:
    """One ``key = value`` line of ``s3k envs``; angles (:data:`ANGLE_OPTIONS`, radians) get
    their value in degrees as a comment, e.g. ``camera_fovy = (0.6981, 0.8727)  # rad = (40,
    50) deg`` (``max_angular_speed`` in rad/s -> deg/s)."""
    if key not in ANGLE_OPTIONS or value is None:
        return f"{key} = {value!r}"
    values = value if isinstance(value, (tuple, list)) else (value,)
    rad = ", ".join(f"{v:.4g}" for v in values)
    deg = ", ".join(f"{math.degrees(v):.4g}" for v in values)
    if len(values) > 1:
        rad, deg = f"({rad})", f"({deg})"
    unit = "/s" if key.endswith("speed") else ""
    return f"{key} = {rad}  # rad{unit} = {deg} deg{unit}"


def _cmd_envs(_: argparse.Namespace) -> None:
    from s3k_envs.wrappers.multiview import EXAMPLES

    for env_id in s3k_envs.ENV_SPECS:
        env = gym.make(env_id, image_size=16)
        base = env.unwrapped
        print(f"{env_id}: keypoints {list(base.keypoint_names)}")
        for key, value in sorted(base.default_options().items()):
            print(f"    {format_option(key, value)}")
        env.close()
    for env_id, (base_id, options) in EXAMPLES.items():
        names = list(options.get("keypoints", {}))
        print(f"{env_id}: MultiViewCameras({base_id}), keypoints {names} "
              "(see docs/plugging-into-your-env.md)")


#: sub-command -> (module with ``main(argv)``, help)
FORWARDED: dict[str, tuple[str, str]] = {
    "demo": ("s3k_envs.demo", "end-to-end demo: data, training, evaluation, keypoint policy"),
    "demos": ("s3k_envs.demos", "record successful expert demonstrations"),
    "generate": ("s3k_envs.keypoints.data", "generate a labelled/unlabelled multi-view dataset"),
    "train": ("s3k_envs.keypoints.train", "train an S3K keypoint model"),
    "evaluate": ("s3k_envs.keypoints.evaluate", "evaluate a keypoint checkpoint on a dataset"),
    "descriptors": ("s3k_envs.descriptors.cli", "label-free descriptor keypoints: generate, "
                    "train, select, evaluate"),
}


def _cmd_snapshot(args: argparse.Namespace) -> None:
    from s3k_envs.demo import annotated_mosaic
    from s3k_envs.viz import write_png

    env = gym.make(args.env_id, image_size=args.image_size)
    obs, info = env.reset(seed=args.seed)
    path = write_png(annotated_mosaic(obs, info, names=env.get_wrapper_attr("keypoint_names")),
                     args.out)
    env.close()
    print(path)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``s3k`` console script; returns what a forwarded sub-command's
    ``main`` returns (e.g. the demo's summary dict), else None."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FORWARDED:
        # These sub-commands own their options: hand everything after the name over.
        return importlib.import_module(FORWARDED[argv[0]][0]).main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="s3k", description="S3K multi-view keypoint envs",
        epilog="Errors in what was asked (a bad option, a missing file, an unknown env id) are "
               "reported in one line with exit status 2; add --debug anywhere for the full "
               "traceback. Env ids may name the module that registers them "
               "(`s3k generate my_envs:MyEnv-v0`), looked up from the current directory too.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of errors (any position)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("envs", help="list envs, keypoints and options").set_defaults(func=_cmd_envs)
    for name, (_, help_text) in FORWARDED.items():
        sub.add_parser(name, help=help_text)  # listed in --help; dispatched before parsing
    snap = sub.add_parser(
        "snapshot", help="annotated 4-view PNG of one reset",
        description="Reset an env once and write its camera views as one PNG, with the true "
                    "keypoints projected (dots: visible, rings: not visible from that camera).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    snap.add_argument("env_id", help="Gymnasium id of a multi-view env, e.g. S3K-Box-v0")
    snap.add_argument("--seed", type=int, default=0, help="reset seed (scene and camera rig)")
    snap.add_argument("--image-size", type=int, default=128, help="pixels per view side")
    snap.add_argument("--out", type=Path, default=Path("runs/snapshot.png"), help="PNG to write")
    snap.set_defaults(func=_cmd_snapshot)
    args = parser.parse_args(argv)
    args.func(args)
    return None


#: Exceptions that report a problem with what the user asked for (the library raises them
#: with a message that says what was expected and what came): the console script prints the
#: message alone, without a traceback, and exits with status 2 (argparse's usage-error status).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError,
    PermissionError, ModuleNotFoundError, gym.error.Error,
)


def error_message(exc: BaseException) -> str:
    """One line for a user error: the exception's type (unless a plain ``ValueError``) and
    message; a chained cause is not repeated (our messages already name it)."""
    text = " ".join(str(exc).split()) or repr(exc)
    name = type(exc).__name__
    return text if name == "ValueError" else f"{name}: {text}"


def console_main(argv: list[str] | None = None) -> int:
    """The installed ``s3k`` script: :func:`main`, then an exit status: 0 on success, 2 with
    a one-line message on a user error (:data:`USER_ERRORS`; ``--debug`` shows the
    traceback), 130 on Ctrl-C. Other exceptions are bugs and keep their traceback.

    Like ``python`` in a directory, the script also looks for modules in the current
    directory (appended to ``sys.path``, so installed packages win), so that ``s3k generate
    my_envs:MyEnv-v0`` finds ``./my_envs.py`` as ``gymnasium.make("my_envs:MyEnv-v0")`` does
    in a script there."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        main(argv)  # its return value is for Python callers (sys.exit would print a dict)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"s3k: error: {error_message(exc)}", file=sys.stderr)
        print("(s3k --debug ... shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s3k: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(console_main())
