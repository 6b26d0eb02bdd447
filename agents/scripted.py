"""Scripted controllers that use privileged state (the true keypoints in ``info``).

They are the demonstrators and sanity baselines of the suite: the same observation/action
interface as a learned policy, but they read ``info["keypoints"]`` instead of pixels.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np


def _yaw_of(quat: np.ndarray) -> float:
    """Yaw (rad) of the body x-axis projected on the world xy-plane, from a w-first quat."""
    w, x, y, z = (float(v) for v in quat)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _wrap(angle: float, period: float = 2 * math.pi) -> float:
    return (angle + period / 2) % period - period / 2


class ReachKeypointController:
    """Bring the gripper's tool centre point to a keypoint, fingers straddling it.

    The gripper first aligns above the keypoint (``approach_height`` m higher) with its
    fingers across ``inward`` (the direction from the keypoint into the object, so both
    fingers stay outside the object — a grasp-at-keypoint pose), then descends onto it.
    Proportional control in position and yaw, saturated to the action range.

    Args:
        env: the (wrapped) env; reads ``unwrapped.options`` for speeds and control rate.
        keypoint: name of the target keypoint (default: the env's ``target_keypoint``).
        approach_height: height above the keypoint of the pre-grasp pose, m.
        gain: fraction of the remaining error closed per control step.
    """

    def __init__(
        self,
        env: gym.Env,
        keypoint: str | None = None,
        approach_height: float = 0.05,
        gain: float = 0.8,
    ) -> None:
        base = env.unwrapped
        names = list(base.keypoint_names)
        keypoint = keypoint or base.options.get("target_keypoint") or names[0]
        if keypoint not in names:
            raise ValueError(f"keypoint: expected one of {names}, got {keypoint!r}")
        self.index = names.index(keypoint)
        self.approach_height = approach_height
        self.gain = gain
        self.hz = float(base.options["control_hz"])
        self.max_lin = float(base.options["max_linear_speed"])
        self.max_ang = float(base.options["max_angular_speed"])
        self.descending = False

    def reset(self) -> None:
        """Start a new episode."""
        self.descending = False

    def inward_direction(self, keypoints: np.ndarray) -> np.ndarray:
        """``(2,)`` unit xy direction from the target keypoint towards the keypoints' centroid
        (for the box: towards its centre, since corner_0 and corner_2 are diagonal)."""
        centre = keypoints.mean(axis=0) if len(keypoints) < 3 else (keypoints[0] + keypoints[2]) / 2
        vec = (centre - keypoints[self.index])[:2]
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 1e-6 else np.array([1.0, 0.0])

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Action ``(6,)`` float32 in [-1, 1] for the current observation and info."""
        keypoints = np.asarray(info["keypoints"], dtype=np.float64)
        target = keypoints[self.index]
        pos = np.asarray(obs["gripper_pos"], dtype=np.float64)
        inward = self.inward_direction(keypoints)
        # Fingers lie along the gripper's y-axis: point its x-axis along `inward`.
        yaw_err = _wrap(math.atan2(inward[1], inward[0]) - _yaw_of(obs["gripper_quat"]), math.pi)
        xy_err = np.linalg.norm(target[:2] - pos[:2])
        if not self.descending and xy_err < 0.006 and abs(yaw_err) < 0.1:
            self.descending = True
        goal = target.copy()
        if not self.descending:
            goal[2] = max(target[2] + self.approach_height, pos[2] if xy_err > 0.03 else 0.0)
        lin = self.gain * self.hz * (goal - pos) / self.max_lin
        ang_z = self.gain * self.hz * yaw_err / self.max_ang
        action = np.array([*lin, 0.0, 0.0, ang_z])
        return np.clip(action, -1.0, 1.0).astype(np.float32)
