"""Automatic framing of a camera rig: where to look and from how far, so that the keypoints
fill a good part of every view.

A MuJoCo model's own statistics (``model.stat.center`` / ``extent``) describe the whole
scene, floor and all: on Reacher-v5 a rig placed from them drew the arm ~15 px long in a
128 px image. :func:`frame_keypoints` instead plays a few resets of the env with random
actions, collects where the keypoints go, and sizes the rig on that: the look-at point is the
centre of the keypoints' bounding box, and the distance makes the sphere around it that
holds (nearly) all sampled keypoints span :data:`FILL` of the narrower image side at the
middle of the field-of-view range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Fraction of the narrower image side the keypoints' bounding sphere spans.
FILL = 0.8
#: The sphere holds this quantile of the keypoints' distances from the centre (robust to a
#: rare far-flung sample, e.g. a body knocked off the table).
RADIUS_QUANTILE = 0.98


@dataclass(frozen=True)
class Framing:
    """A rig placement. ``target`` (3,) m, ``distance`` (min, max) m, ``lookat_jitter`` m,
    ``radius`` m: the sphere around ``target`` that the keypoints stay in."""

    target: tuple[float, float, float]
    distance: tuple[float, float]
    lookat_jitter: float
    radius: float


def sample_keypoints(env: Any, positions: Callable[[], np.ndarray], resets: int = 8,
                     steps: int = 20, seed: int = 0) -> np.ndarray:
    """Keypoint positions over a few resets of ``env`` with uniformly random actions.

    Args:
        env: a Gymnasium env (the one the rig will watch); it is reset with seeds
            ``seed .. seed + resets - 1`` (so the caller should reset it again afterwards).
        positions: returns the ``(K, 3)`` keypoint positions (m) of the env's current state.
        resets: episodes sampled.
        steps: random actions per episode (fewer if the episode ends).
        seed: first reset seed; also seeds the action sampler (the env's ``action_space``
            RNG is not touched).

    Returns:
        ``(N, K, 3)`` float64 positions, m (N = all sampled states).
    """
    rng = np.random.default_rng(seed)
    space = env.action_space
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), space.shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), space.shape)
    low, high = np.maximum(low, -1e3), np.minimum(high, 1e3)  # unbounded spaces: stay finite
    out = []
    for episode in range(resets):
        env.reset(seed=seed + episode)
        out.append(np.array(positions(), dtype=np.float64))
        for _ in range(steps):
            action = rng.uniform(low, high).astype(space.dtype)
            _, _, terminated, truncated, _ = env.step(action)
            out.append(np.array(positions(), dtype=np.float64))
            if terminated or truncated:
                break
    return np.stack(out)


def frame_keypoints(points: np.ndarray, fovy: tuple[float, float], aspect: float,
                    min_radius: float, fill: float = FILL) -> Framing:
    """Place a rig so that ``points`` fill ``fill`` of the narrower image side.

    Args:
        points: ``(..., 3)`` sampled keypoint positions, m.
        fovy: (min, max) vertical field of view of the rig, rad.
        aspect: image width / height.
        min_radius: m, the smallest subject radius used (a single still keypoint has none).
        fill: fraction of the narrower image side the bounding sphere spans.

    Returns:
        :class:`Framing`: distance range +-10 % around the nominal distance, look-at jitter
        10 % of the radius.

    Raises:
        ValueError: no points, non-finite points, or a bad ``fill`` / ``aspect``.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"frame_keypoints: expected finite (N, 3) points with N >= 1, got "
                         f"{len(pts)} points ({int((~np.isfinite(pts)).any(-1).sum())} "
                         "non-finite)")
    if not (0 < fill <= 1) or not aspect > 0:
        raise ValueError(f"frame_keypoints: expected 0 < fill <= 1 and aspect > 0, got "
                         f"fill={fill!r}, aspect={aspect!r}")
    centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    radius = max(float(np.quantile(np.linalg.norm(pts - centre, axis=1), RADIUS_QUANTILE)),
                 float(min_radius))
    half_fovy = 0.5 * 0.5 * (fovy[0] + fovy[1])
    # The narrower side's half-angle: vertical for landscape images, horizontal otherwise.
    half_tan = math.tan(half_fovy) * min(1.0, aspect)
    nominal = radius / (fill * half_tan)
    return Framing(target=(float(centre[0]), float(centre[1]), float(centre[2])),
                   distance=(0.9 * nominal, 1.1 * nominal), lookat_jitter=0.1 * radius,
                   radius=radius)
