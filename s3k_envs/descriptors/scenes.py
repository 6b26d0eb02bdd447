"""Multi-view scenes with depth and object masks: the training data of the dense
descriptors (no labels: correspondences come from depth and calibration).

A scene is one instant seen by C calibrated cameras. A :class:`SceneSet` of S scenes holds

* ``images`` ``(S, C, H, W, 3)`` uint8,
* ``depth`` ``(S, C, H, W)`` float32 m (z in each camera's frame, clipped to ``MAX_DEPTH``),
* ``masks`` ``(S, C, H, W)`` bool (pixels of the object whose descriptors are learnt),
* ``intrinsics`` ``(S, C, 3, 3)`` and ``extrinsics`` ``(S, C, 4, 4)`` float32,
* ``object_pose`` ``(S, 4, 4)`` float32 object->world, **for evaluation only** (to follow
  physical points on the object; training never reads it),

and, also for evaluation only and None when the env does not provide them,

* ``keypoints`` ``(S, K, 3)`` float32 m: the env's own (named) keypoints, to compare S3K
  models on the same scenes;
* ``object_bounds`` ``(S, 2, 3)`` float32 m: min and max corner of the object's bounding box
  in its own frame (a shoe's size differs per instance: points are compared across
  instances in box-normalised coordinates, see
  :func:`s3k_envs.descriptors.keypoints.keypoint_errors`);
* ``instance_ids`` ``(S,)`` int32 (-1 for an env with a single object),

saved as one ``.npz`` (written atomically, read with ``allow_pickle=False``) with a JSON
metadata string (env id, seeds, options).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from s3k_envs.atomic import atomic_open

#: Depth values beyond this (nothing hit) are clipped to it, m.
MAX_DEPTH = 5.0
SCENE_FORMAT = "s3k-descriptor-scenes"
SCENE_VERSION = 1
_ARRAYS = ("images", "depth", "masks", "intrinsics", "extrinsics", "object_pose")
_OPTIONAL = ("keypoints", "object_bounds", "instance_ids")


@dataclass
class SceneSet:
    """S scenes of C views each (see the module docstring for the arrays)."""

    images: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    object_pose: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    keypoints: np.ndarray | None = None
    object_bounds: np.ndarray | None = None
    instance_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        s, c, h, w, _ = self.images.shape if self.images.ndim == 5 else (0, 0, 0, 0, 0)
        expected = {"images": (s, c, h, w, 3), "depth": (s, c, h, w), "masks": (s, c, h, w),
                    "intrinsics": (s, c, 3, 3), "extrinsics": (s, c, 4, 4),
                    "object_pose": (s, 4, 4)}
        for name, shape in expected.items():
            arr = getattr(self, name)
            if tuple(arr.shape) != shape:
                raise ValueError(f"SceneSet.{name}: expected shape {shape}, got "
                                 f"{tuple(arr.shape)}")
        optional = {"object_bounds": (s, 2, 3), "instance_ids": (s,)}
        for name, shape in optional.items():
            arr = getattr(self, name)
            if arr is not None and tuple(arr.shape) != shape:
                raise ValueError(f"SceneSet.{name}: expected shape {shape}, got "
                                 f"{tuple(arr.shape)}")
        if self.keypoints is not None and (self.keypoints.ndim != 3
                                           or self.keypoints.shape[::2] != (s, 3)):
            raise ValueError(f"SceneSet.keypoints: expected shape ({s}, K, 3), got "
                             f"{tuple(self.keypoints.shape)}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"SceneSet.images: expected uint8, got {self.images.dtype}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_cameras(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: Any) -> SceneSet:
        """The scenes ``index`` selects (a slice or an index array)."""
        extras = {n: None if getattr(self, n) is None else getattr(self, n)[index]
                  for n in _OPTIONAL}
        return SceneSet(*(getattr(self, n)[index] for n in _ARRAYS), meta=dict(self.meta),
                        **extras)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the set as one ``.npz`` file, atomically."""
        path = Path(path)
        meta = {"format": SCENE_FORMAT, "format_version": SCENE_VERSION, **self.meta}
        with atomic_open(path, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)),
                     **{n: getattr(self, n) for n in _ARRAYS},
                     **{n: getattr(self, n) for n in _OPTIONAL if getattr(self, n) is not None})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SceneSet:
        """Read a file written by :meth:`save` (no pickles).

        Raises:
            FileNotFoundError: no such file. ValueError: not a scene file, another format
                version, or arrays of the wrong shape (the message names the file).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such scene file")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {n: z[n] for n in _ARRAYS}
                arrays.update({n: z[n] for n in _OPTIONAL if n in z.files})
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a descriptor scene file ({exc})") from exc
        if meta.get("format") != SCENE_FORMAT or meta.get("format_version") != SCENE_VERSION:
            raise ValueError(f"{path}: format {meta.get('format')!r} version "
                             f"{meta.get('format_version')!r}, expected {SCENE_FORMAT!r} "
                             f"version {SCENE_VERSION}")
        try:
            return cls(**arrays, meta=meta)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


def check_depth_env(env: gym.Env) -> Any:
    """The unwrapped env if it can render depth and object masks, else a clear error."""
    base = env.unwrapped
    needed = ("render_depth_and_segmentation", "object_body_ids", "object_pose_matrix")
    missing = [a for a in needed
               if not hasattr(base, a)]
    if missing:
        spec = getattr(base, "spec", None)
        name = spec.id if spec is not None else type(base).__name__
        raise ValueError(
            f"{name} cannot render depth and object masks (it lacks {missing}); descriptor "
            "training data needs an env with render_depth_and_segmentation() and "
            "object_body_ids, e.g. S3K-BoxPush-v0")
    return base


def generate_scenes(env_id: str = "S3K-BoxPush-v0", num_scenes: int = 100, seed: int = 0,
                    image_size: int = 128, random_steps: int = 2,
                    **options: Any) -> SceneSet:
    """Render ``num_scenes`` scenes of an env with depth and object masks.

    Scene ``i`` is ``env.reset(seed=seed + i)`` (a new camera rig and object pose unless
    ``camera_seed`` is given) followed by ``random_steps`` uniformly random actions (the
    pusher moves about and sometimes touches or occludes the object).

    Args:
        env_id: a Gymnasium id whose env renders depth (``render_depth_and_segmentation``).
        num_scenes: S >= 1. seed: seed of the first scene. image_size: px per view side.
        random_steps: random actions after each reset.
        **options: further env options (``num_cameras``, ``camera_seed``, ...).

    Raises:
        ValueError: the env cannot render depth and object masks, or bad counts.
    """
    if num_scenes < 1 or random_steps < 0:
        raise ValueError(f"num_scenes must be >= 1 and random_steps >= 0, got {num_scenes}, "
                         f"{random_steps}")
    env = gym.make(env_id, image_size=image_size, **options)
    try:
        base = check_depth_env(env)
        rng = np.random.default_rng(seed)
        out: dict[str, list[np.ndarray]] = {n: [] for n in (*_ARRAYS, *_OPTIONAL)}
        for i in range(num_scenes):
            obs, info = env.reset(seed=seed + i)
            for _ in range(random_steps):
                obs, _, terminated, truncated, info = env.step(
                    rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32))
                if terminated or truncated:
                    break
            depth, seg = base.render_depth_and_segmentation()
            out["images"].append(obs["images"])
            out["depth"].append(np.minimum(depth, MAX_DEPTH).astype(np.float32))
            out["masks"].append(np.isin(seg, base.object_body_ids))
            out["intrinsics"].append(obs["intrinsics"].astype(np.float32))
            out["extrinsics"].append(obs["extrinsics"].astype(np.float32))
            out["object_pose"].append(base.object_pose_matrix().astype(np.float32))
            out["keypoints"].append(np.asarray(info["keypoints"], dtype=np.float32))
            bounds = getattr(base, "object_bounds", None)
            if bounds is not None:
                out["object_bounds"].append(np.asarray(bounds(), dtype=np.float32))
            out["instance_ids"].append(int(info.get("instance_id", -1)))
    finally:
        env.close()
    meta = {"env_id": env_id, "seed": seed, "num_scenes": num_scenes,
            "image_size": image_size, "random_steps": random_steps,
            "options": {k: v for k, v in options.items()
                        if isinstance(v, (int, float, str, bool, type(None)))}}
    meta["keypoint_names"] = list(base.keypoint_names)
    extras = {"keypoints": np.stack(out["keypoints"]),
              "object_bounds": np.stack(out["object_bounds"]) if out["object_bounds"] else None,
              "instance_ids": np.asarray(out["instance_ids"], dtype=np.int32)}
    return SceneSet(*(np.stack(out[n]) for n in _ARRAYS), meta=meta, **extras)
