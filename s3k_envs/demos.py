"""Record successful scripted-expert episodes as demonstrations (``.npz``) and load them back.

The S3K paper's RL agent (DDPG from demonstrations) starts from 51 successful episodes of the
cable insertion task; ``python -m s3k_envs.demos`` records them::

    python -m s3k_envs.demos --env S3K-CableInsert-v0 --episodes 51 --out runs/demos/cable.npz \\
        [--image-size 128] [--seed 0] [--no-images] [--max-attempts N]

Episode ``i`` of the attempts is reset with seed ``seed + i``; failed episodes are skipped
(counted and reported). The expert is :class:`s3k_envs.experts.CableInsertExpert` for
``S3K-CableInsert-v0`` and :class:`s3k_envs.experts.ReachKeypointController` for the other envs.

File layout (one compressed ``.npz``, every array loadable with ``allow_pickle=False``; ``E``
episodes, ``N = sum T_e`` steps, ``N + E`` observations since each episode has ``T_e + 1``):

==========================  ==========================  ========================================
key                         shape / dtype               meaning
==========================  ==========================  ========================================
``obs/<key>``               ``(N + E, ...)``            every observation entry (``obs/images``
                                                        ``(N + E, C, H, W, 3)`` uint8 unless
                                                        recorded with ``--no-images``)
``actions``                 ``(N, 6)`` float32          actions in [-1, 1]
``rewards``                 ``(N,)`` float64            rewards
``terminated``              ``(N,)`` bool               ``terminated`` flags
``truncated``               ``(N,)`` bool               ``truncated`` flags
``info/keypoints``          ``(N + E, K, 3)`` float32   true keypoints, world m
``info/keypoints_2d``       ``(N + E, C, K, 2)``        their projections, px
``info/keypoints_visible``  ``(N + E, C, K)`` bool      visibility
``info/is_success``         ``(N + E,)`` bool           success flag
``episode_index``           ``(E + 1,)`` int64          episode e's steps: ``[idx[e], idx[e+1])``
``episode_obs_index``       ``(E + 1,)`` int64          its observations, likewise
``seeds``                   ``(E,)`` int64              reset seed of every episode
``metadata``                0-d str                     JSON: env id, options, keypoint names,
                                                        expert, attempts, failures, version
==========================  ==========================  ========================================

Observation ``t`` of an episode is the one the action ``t`` was chosen from; the last one is
the final state. The file is written to a temporary name next to ``--out`` and renamed over it
when complete, so an interrupted run never leaves a partial file nor destroys an older one.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from s3k_envs.atomic import atomic_open
from s3k_envs.experts import make_expert
from s3k_envs.progress import Progress

FORMAT_VERSION = 1
_INFO_KEYS = ("keypoints", "keypoints_2d", "keypoints_visible", "is_success")
_STEP_KEYS = ("actions", "rewards", "terminated", "truncated")


def run_episode(env: gym.Env, expert: Any, seed: int,
                store_images: bool = True) -> dict[str, Any]:
    """Run one expert episode to its end (terminated or truncated).

    Args:
        env: the env (with its ``TimeLimit``, so that episodes end).
        expert: callable ``(obs, info) -> action (6,)`` with ``reset()``.
        seed: reset seed.
        store_images: keep ``obs["images"]``; without it the images are dropped per step.

    Returns:
        Episode dict (the layout :func:`load_demonstrations` returns): ``observations`` (dict of
        ``(T+1, ...)`` arrays), ``actions`` ``(T, 6)`` float32, ``rewards`` ``(T,)``,
        ``terminated`` / ``truncated`` ``(T,)`` bool, ``infos`` (dict of ``(T+1, ...)`` arrays
        of ``keypoints`` m, ``keypoints_2d`` px, ``keypoints_visible``, ``is_success``),
        ``seed``, ``success`` (bool, the final ``is_success``).
    """
    expert.reset()
    obs, info = env.reset(seed=seed)
    observations, infos = [_obs_entry(obs, store_images)], [_info_entry(info)]
    actions, rewards, terminated, truncated = [], [], [], []
    done = False
    while not done:
        action = np.asarray(expert(obs, info), dtype=np.float32)
        obs, reward, term, trunc, info = env.step(action)
        observations.append(_obs_entry(obs, store_images))
        infos.append(_info_entry(info))
        actions.append(action)
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        done = term or trunc
    return {
        "observations": {k: np.stack([o[k] for o in observations]) for k in observations[0]},
        "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "terminated": np.asarray(terminated, dtype=bool),
        "truncated": np.asarray(truncated, dtype=bool),
        "infos": {k: np.stack([i[k] for i in infos]) for k in _INFO_KEYS},
        "seed": int(seed),
        "success": bool(info["is_success"]),
    }


def _obs_entry(obs: dict[str, np.ndarray], store_images: bool) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in obs.items()
            if store_images or k != "images"}


def _info_entry(info: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.array(info[k], copy=True) for k in _INFO_KEYS}


def record_demonstrations(
    env_id: str,
    episodes: int = 51,
    seed: int = 0,
    image_size: int = 128,
    store_images: bool = True,
    max_attempts: int | None = None,
    progress: bool = True,
    env_options: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Record ``episodes`` successful expert episodes of ``env_id``.

    Args:
        env_id: Gymnasium id (``S3K-*``).
        episodes: successful episodes to keep.
        seed: attempt ``i`` is reset with seed ``seed + i``.
        image_size: camera resolution (pixels) of the env.
        store_images: keep the camera images (else only the low-dimensional observations).
        max_attempts: give up after this many episodes (default ``3 * episodes + 10``).
        progress: show progress on stderr (a bar in a terminal, else a line a minute).
        env_options: extra ``gymnasium.make`` options.

    Returns:
        The kept episodes (see :func:`run_episode`) and a metadata dict (env id, options,
        keypoint names, expert, attempts, failures, failed seeds).

    Raises:
        RuntimeError: fewer than ``episodes`` successes within ``max_attempts``.
    """
    import s3k_envs  # noqa: F401  (registers the S3K envs)

    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    max_attempts = 3 * episodes + 10 if max_attempts is None else int(max_attempts)
    options = {"image_size": image_size, **(env_options or {})}
    env = gym.make(env_id, **options)
    kept: list[dict[str, Any]] = []
    failed_seeds: list[int] = []
    try:
        expert = make_expert(env)
        bar = Progress(episodes, f"demos {env_id}", unit="ep", enabled=progress)
        with bar:
            attempt = 0
            while len(kept) < episodes and attempt < max_attempts:
                episode = run_episode(env, expert, seed + attempt, store_images)
                attempt += 1
                if episode["success"]:
                    kept.append(episode)
                    bar.update(1)
                else:
                    failed_seeds.append(seed + attempt - 1)
                bar.set_postfix(failures=len(failed_seeds))
        metadata = {
            "format_version": FORMAT_VERSION,
            "env_id": env_id,
            "env_options": {k: v for k, v in options.items()},
            "keypoint_names": list(env.unwrapped.keypoint_names),
            "expert": type(expert).__name__,
            "store_images": bool(store_images),
            "seed": int(seed),
            "episodes": len(kept),
            "attempts": attempt,
            "failures": len(failed_seeds),
            "failed_seeds": failed_seeds,
        }
    finally:
        env.close()
    if len(kept) < episodes:
        raise RuntimeError(
            f"only {len(kept)} of {episodes} episodes of {env_id} succeeded in {max_attempts} "
            f"attempts (failed seeds: {failed_seeds[:20]})"
        )
    return kept, metadata


def pack_episodes(episodes: list[dict[str, Any]],
                  metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    """Flatten episodes into the ``.npz`` arrays of the module docstring."""
    if not episodes:
        raise ValueError("no episodes to pack")
    arrays: dict[str, np.ndarray] = {}
    for key in episodes[0]["observations"]:
        arrays[f"obs/{key}"] = np.concatenate([e["observations"][key] for e in episodes])
    for key in _INFO_KEYS:
        arrays[f"info/{key}"] = np.concatenate([e["infos"][key] for e in episodes])
    for key in _STEP_KEYS:
        arrays[key] = np.concatenate([e[key] for e in episodes])
    lengths = np.array([len(e["actions"]) for e in episodes], dtype=np.int64)
    arrays["episode_index"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays["episode_obs_index"] = np.concatenate([[0], np.cumsum(lengths + 1)]).astype(np.int64)
    arrays["seeds"] = np.array([e["seed"] for e in episodes], dtype=np.int64)
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    return arrays


def save_demonstrations(path: str | os.PathLike[str], episodes: list[dict[str, Any]],
                        metadata: dict[str, Any]) -> Path:
    """Write episodes to a compressed ``.npz`` atomically (temporary file + ``os.replace``).

    On any error (or interruption) the temporary file is removed and an existing file at
    ``path`` is left untouched. Returns the path.
    """
    path = Path(path)
    arrays = pack_episodes(episodes, metadata)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata dict of a demonstrations file."""
    with np.load(path, allow_pickle=False) as data:
        return _metadata(data, path)


def _metadata(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    if "metadata" not in data.files:
        raise ValueError(f"{path}: not a demonstrations file (no 'metadata' array)")
    metadata = json.loads(str(data["metadata"]))
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: demonstrations format version {version!r}, this code reads "
            f"{FORMAT_VERSION}"
        )
    return metadata


def load_demonstrations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Load a demonstrations file written by :func:`save_demonstrations`.

    Returns:
        One dict per episode: ``observations`` (dict of ``(T+1, ...)`` arrays, as the env's
        observation dict), ``actions`` ``(T, 6)`` float32, ``rewards`` ``(T,)`` float64,
        ``terminated`` / ``truncated`` ``(T,)`` bool, ``infos`` (dict of ``(T+1, ...)`` arrays:
        ``keypoints`` ``(T+1, K, 3)`` m, ``keypoints_2d`` ``(T+1, C, K, 2)`` px,
        ``keypoints_visible`` ``(T+1, C, K)``, ``is_success`` ``(T+1,)``), ``seed`` (int).

    Raises:
        ValueError: the file is not a demonstrations file of this format version, or its
            episode index does not match its arrays.
    """
    with np.load(path, allow_pickle=False) as data:
        _metadata(data, path)
        arrays = {k: data[k] for k in data.files}
    steps, obs_index = arrays["episode_index"], arrays["episode_obs_index"]
    n_steps, n_obs = len(arrays["actions"]), len(arrays["info/is_success"])
    if (len(steps) != len(obs_index) or steps[-1] != n_steps or obs_index[-1] != n_obs
            or not np.array_equal(np.diff(obs_index), np.diff(steps) + 1)):
        raise ValueError(f"{path}: episode index does not match the arrays "
                         f"({n_steps} steps, {n_obs} observations)")
    episodes = []
    for e in range(len(steps) - 1):
        s0, s1 = int(steps[e]), int(steps[e + 1])
        o0, o1 = int(obs_index[e]), int(obs_index[e + 1])
        episodes.append({
            "observations": {k[4:]: v[o0:o1] for k, v in arrays.items() if k.startswith("obs/")},
            **{k: arrays[k][s0:s1] for k in _STEP_KEYS},
            "infos": {k[5:]: v[o0:o1] for k, v in arrays.items() if k.startswith("info/")},
            "seed": int(arrays["seeds"][e]),
        })
    return episodes


def main(argv: list[str] | None = None) -> Path:
    """Command line: record, save, print a summary; returns the path written."""
    parser = argparse.ArgumentParser(prog="s3k demos", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="S3K-CableInsert-v0", help="Gymnasium env id")
    parser.add_argument("--episodes", type=int, default=51, help="successful episodes to keep")
    parser.add_argument("--out", type=Path, default=Path("runs/demos/cable.npz"),
                        help="output .npz (written atomically)")
    parser.add_argument("--image-size", type=int, default=128, help="camera resolution, px")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first attempt")
    parser.add_argument("--no-images", action="store_true", help="do not store camera images")
    parser.add_argument("--max-attempts", type=int, default=None,
                        help="give up after this many episodes (None: 3 * episodes + 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    episodes, metadata = record_demonstrations(
        args.env, args.episodes, seed=args.seed, image_size=args.image_size,
        store_images=not args.no_images, max_attempts=args.max_attempts,
        progress=not args.no_progress,
    )
    path = save_demonstrations(args.out, episodes, metadata)
    steps = [len(e["actions"]) for e in episodes]
    print(
        f"{path}: {len(episodes)} successful episodes of {args.env} "
        f"({metadata['attempts']} attempts, {metadata['failures']} failures skipped"
        f"{': seeds ' + str(metadata['failed_seeds']) if metadata['failures'] else ''}), "
        f"{sum(steps)} steps (median {int(np.median(steps))} per episode), "
        f"images {'stored' if not args.no_images else 'not stored'}, "
        f"{path.stat().st_size / 1e6:.1f} MB"
    )
    return path


if __name__ == "__main__":
    main()
