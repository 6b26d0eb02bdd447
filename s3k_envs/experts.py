"""Scripted controllers that use privileged state (the true keypoints in ``info``).

They are the demonstrators and sanity baselines of the suite: the same observation/action
interface as a learned policy, but they read ``info["keypoints"]`` instead of pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


class CableInsertExpert:
    """Scripted expert of ``S3K-CableInsert-v0``: insert a plug that dangles on a flexible cable.

    Reads the privileged true keypoints (``info["keypoints"]``: ``plug_tip``, ``plug_base``,
    ``socket``) and the gripper position (``obs["gripper_pos"]``), and commands gripper
    translation only (angular velocity 0). In ``S3K-CableInsert-v0`` the plug hangs ~0.2 m below
    the gripper and swings like a pendulum (period ~0.8 s, about 3 control steps), so the
    expert never servos the plug directly while it hangs free; it moves the gripper to where
    the plug's *rest* position lies over the socket and waits for the swing to die out. The
    rest offset comes from the keypoints, so the same expert works for any cable length (in
    ``S3K-CableInsertShort-v0`` the plug hangs ~0.1 m below and barely swings):

    1. ``approach``: move the gripper (speed <= ``max_speed``) so that the tip's rest position
       (gripper + the tip's rest offset, estimated from the at-rest first frame and refined by
       a moving average that averages the swing out) is ``hover_height`` above the opening.
    2. ``align``: hold there until the tip is within ``align_tolerance`` of the socket axis and
       moved less than ``settle_motion`` since the last step (swing settled).
    3. ``enter``: descend at ``descent_speed``, correcting the tip's horizontal error, until the
       tip is inside the hole (its keypoint snaps to the socket opening). A tip that ends up
       beside the socket sends the expert back to ``align``.
    4. ``upright``: the cable's bend leaves the plug tilted (up to ~30 deg); with the tip held in
       the hole, move the gripper horizontally until ``plug_base`` is within
       ``upright_tolerance`` of the socket axis, so the plug stands up.
    5. ``insert``: descend while keeping the base over the socket until the env reports
       success. A jam (gripper ``max_plunge`` below the entry height without success) lifts
       back to the entry height and re-uprights.

    Args:
        env: the (wrapped) CableInsert env; reads ``unwrapped.options`` and keypoint names.
        hover_height: tip height above the opening while aligning, m.
        max_speed: gripper speed limit while moving, m/s (slow moves swing the plug less).
        descent_speed: gripper descent speed while entering and inserting, m/s.
        gain: fraction of the gripper's position error closed per control step.
        align_tolerance: horizontal tip error that allows the descent, m.
        settle_motion: tip motion per control step below which the swing counts as settled, m.
        upright_tolerance: horizontal base error that allows the final insertion, m.
        upright_gain: gripper displacement per metre of base error per step while uprighting.
        entry_depth: how far the gripper goes down after the tip entered, before uprighting, m.
        max_plunge: how far below the entry height the gripper may go while inserting, m.
        patience: control steps after which ``align`` / ``upright`` proceed anyway.
    """

    def __init__(
        self,
        env: gym.Env,
        hover_height: float = 0.02,
        max_speed: float = 0.1,
        descent_speed: float = 0.06,
        gain: float = 0.8,
        align_tolerance: float = 0.0015,
        settle_motion: float = 0.0015,
        upright_tolerance: float = 0.005,
        upright_gain: float = 1.5,
        entry_depth: float = 0.006,
        max_plunge: float = 0.06,
        patience: int = 8,
    ) -> None:
        base = env.unwrapped
        names = list(base.keypoint_names)
        required = ("plug_tip", "plug_base", "socket")
        if any(k not in names for k in required):
            raise ValueError(f"CableInsertExpert needs keypoints {list(required)}, env has {names}")
        self.tip_index, self.base_index, self.socket_index = (names.index(k) for k in required)
        self.hz = float(base.options["control_hz"])
        self.max_lin = float(base.options["max_linear_speed"])
        self.hover_height = hover_height
        self.max_speed = max_speed
        self.descent_speed = descent_speed
        self.gain = gain
        self.align_tolerance = align_tolerance
        self.settle_motion = settle_motion
        self.upright_tolerance = upright_tolerance
        self.upright_gain = upright_gain
        self.entry_depth = entry_depth
        self.max_plunge = max_plunge
        self.patience = patience
        self.reset()

    def reset(self) -> None:
        """Start a new episode (forget the rest offset and the phase)."""
        self.phase = "approach"
        self.phase_steps = 0
        self.offset: np.ndarray | None = None  # (3,) rest position of the tip - gripper, m
        self.prev_tip: np.ndarray | None = None
        self.entry_z = 0.0

    def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase, self.phase_steps = phase, 0

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Action ``(6,)`` float32 in [-1, 1] (linear velocity only) for this step."""
        keypoints = np.asarray(info["keypoints"], dtype=np.float64)
        tip, base, socket = (keypoints[i] for i in
                             (self.tip_index, self.base_index, self.socket_index))
        pos = np.asarray(obs["gripper_pos"], dtype=np.float64)
        inside = bool(np.allclose(tip, socket, atol=1e-6))  # the tip keypoint snapped
        motion = np.inf if self.prev_tip is None else float(np.linalg.norm(tip - self.prev_tip))
        self.prev_tip = tip.copy()
        if self.offset is None:
            self.offset = tip - pos
        elif not inside and self.phase in ("approach", "align"):
            self.offset += 0.3 * (tip - pos - self.offset)  # averages the swing out
        self.phase_steps += 1
        hover = socket + np.array([0.0, 0.0, self.hover_height])
        tip_err = (socket - tip)[:2]
        base_err = (socket - base)[:2]
        step_down = self.descent_speed / self.hz

        if self.phase == "approach":
            goal = hover - self.offset
            if np.linalg.norm(goal - pos) < 0.004:
                self._set_phase("align")
        if self.phase == "align":
            goal = hover - self.offset
            settled = np.linalg.norm(tip_err) < self.align_tolerance and (
                motion < self.settle_motion)
            late = self.phase_steps > self.patience and np.linalg.norm(tip_err) < 0.004
            if settled or late:
                self._set_phase("enter")
        if self.phase == "enter":
            if inside:
                self.entry_z = pos[2] - self.entry_depth
                self._set_phase("upright")
            elif tip[2] < socket[2] - 0.005:  # went down beside the socket: start over
                self._set_phase("align")
                goal = hover - self.offset
            else:
                goal = pos.copy()
                goal[:2] += 0.7 * tip_err
                goal[2] -= step_down
        if self.phase == "upright":
            if not inside:  # popped out
                self._set_phase("align")
                goal = hover - self.offset
            else:
                goal = pos.copy()
                goal[:2] += self.upright_gain * base_err
                goal[2] = self.entry_z
                if (np.linalg.norm(base_err) < self.upright_tolerance
                        or self.phase_steps > self.patience):
                    self._set_phase("insert")
        if self.phase == "insert":
            if not inside:  # popped out
                self._set_phase("align")
                goal = hover - self.offset
            else:
                goal = pos.copy()
                goal[:2] += 0.6 * base_err
                goal[2] -= step_down
                if goal[2] < self.entry_z - self.max_plunge:  # jammed: lift, stand it up again
                    goal[2] = self.entry_z
                    self._set_phase("upright")

        vel = self.gain * self.hz * (goal - pos)
        speed = float(np.linalg.norm(vel))
        if speed > self.max_speed:
            vel *= self.max_speed / speed
        action = np.zeros(6)
        action[:3] = vel / self.max_lin
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def make_expert(env: gym.Env) -> Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray]:
    """The scripted expert for ``env``: ``CableInsertExpert`` for the cable task (keypoints
    ``plug_tip``, ``plug_base``, ``socket``), ``ReachKeypointController`` otherwise. The
    returned object has ``reset()`` and maps ``(obs, info)`` to a ``(6,)`` action."""
    names = set(env.unwrapped.keypoint_names)
    if hasattr(env.unwrapped, "goal_pose"):  # S3K-BoxPush-v0
        return BoxPushExpert(env)
    if {"plug_tip", "plug_base", "socket"} <= names:
        return CableInsertExpert(env)
    return ReachKeypointController(env)


class BoxPushExpert:
    """Scripted pusher for the push envs (S3K-BoxPush-v0, S3K-ShoePush-v0) from the true
    object and goal poses in ``info`` (``object_pose``, ``goal_pose``: x m, y m, yaw rad of
    the footprint centre), the env's footprint (``footprint_half``, m) and
    ``obs["gripper_pos"]``.

    Each step it picks a push direction ``n``: towards the goal centre while the centre is
    more than ``position_tolerance`` away, else across the box's long side (to turn it).
    The contact point is behind the box along ``n``, offset sideways by an amount that grows
    with the yaw error, so pushing also turns the box towards the goal yaw (a force ``n``
    applied ``b`` to the left of the centre line turns the box by ``-b``). The pusher
    goes to a pre-push point behind the box — around the box, on a circle that keeps it
    clear, when the straight path would hit it — then pushes along ``n`` by a fraction
    ``gain`` of the remaining distance per step, correcting sideways drift.

    Args:
        env: a (wrapped) push env; reads its speed, control rate, success tolerances and the
            current object's footprint.
        gain: fraction of the remaining centre error pushed per control step.
    """

    _PUSHER_RADIUS = 0.03  # m: finger reach 27 mm + margin
    _PUSHER_HALF = np.array([0.008, 0.027])  # m: pusher extent along world x and y

    def __init__(self, env: gym.Env, gain: float = 0.6) -> None:
        base = env.unwrapped
        if not hasattr(base, "goal_pose") or not hasattr(base, "footprint_half"):
            raise ValueError(f"BoxPushExpert needs a push env (goal pose and footprint), got "
                             f"{type(base).__name__}")
        self.base = base
        self.gain = gain
        self.hz = float(base.options["control_hz"])
        self.max_lin = float(base.options["max_linear_speed"])
        self.position_tolerance = 0.5 * float(base.options["success_position"])
        self.angle_tolerance = 0.5 * float(base.options["success_angle"])

    def reset(self) -> None:
        """No internal state (kept for the common expert interface)."""

    def _support(self, yaw: float, n: np.ndarray) -> float:
        """Extent (m) of the box from its centre along the unit direction ``n`` (2,)."""
        c, s = math.cos(yaw), math.sin(yaw)
        ax, ay = np.array([c, s]), np.array([-s, c])
        half = self._half
        return float(abs(n @ ax) * half[0] + abs(n @ ay) * half[1])

    def _face_distance(self, box: np.ndarray, point: np.ndarray, direction: np.ndarray
                       ) -> float:
        """Distance (m) from ``point`` (2,), inside the box, along the unit ``direction`` (2,)
        to the box's boundary."""
        c, s = math.cos(box[2]), math.sin(box[2])
        rot = np.array([[c, s], [-s, c]])  # world -> box frame
        p, d = rot @ (point - box[:2]), rot @ direction
        with np.errstate(divide="ignore"):
            t = np.where(np.abs(d) > 1e-9, (np.sign(d) * self._half - p) / d, np.inf)
        return float(max(0.0, t.min()))

    def _hits_box(self, box: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
        """Whether the straight path ``start -> end`` (2,) m brings the pusher (a disk of
        radius ``_PUSHER_RADIUS``) into the box at pose ``box`` (3,)."""
        c, s = math.cos(box[2]), math.sin(box[2])
        rot = np.array([[c, s], [-s, c]])  # world -> box frame
        pts = start + np.linspace(0.0, 1.0, 25)[:, None] * (end - start)
        local = np.abs((pts - box[:2]) @ rot.T)
        inside = np.all(local < self._half + self._PUSHER_RADIUS, axis=1)
        return bool(inside.any())

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        self._half = np.asarray(self.base.footprint_half, dtype=np.float64)
        box = np.asarray(info["object_pose"], dtype=np.float64)
        goal = np.asarray(info["goal_pose"], dtype=np.float64)
        pos = np.asarray(obs["gripper_pos"], dtype=np.float64)[:2]
        err = goal[:2] - box[:2]
        dist = float(np.linalg.norm(err))
        yaw_err = _wrap(float(goal[2] - box[2]))
        if dist > self.position_tolerance:
            n = err / dist
            travel = dist
        elif abs(yaw_err) > self.angle_tolerance:
            # Turn: push across the long side nearest the pusher, well off-centre.
            c, s = math.cos(box[2]), math.sin(box[2])
            ay = np.array([-s, c])
            n = -ay if (pos - box[:2]) @ ay > 0 else ay
            travel = 0.03
        else:
            return np.zeros(6, dtype=np.float32)
        perp = np.array([-n[1], n[0]])  # n turned 90 deg counter-clockwise
        # Off-centre contact turns the box: b to the left of the line turns it by -b.
        lever = 0.12 if dist > self.position_tolerance else 1.0
        offset = float(np.clip(-lever * yaw_err, -0.06, 0.06))
        reach = self._support(box[2], n)
        line_point = box[:2] + offset * perp
        rel = pos - line_point
        along, lateral = float(rel @ n), float(rel @ perp)
        if -(reach + 0.07) < along < -0.02 and abs(lateral) < 0.015:  # behind it: push
            # Close the gap to the box face on the push line, then push gain * travel.
            face = self._face_distance(box, line_point, -n)
            finger = abs(n[0]) * self._PUSHER_HALF[0] + abs(n[1]) * self._PUSHER_HALF[1]
            gap = max(0.0, -along - face - finger)
            target = pos + n * min(gap + self.gain * travel, 0.05) - perp * lateral
        elif self._hits_box(box, pos, pos):  # touching it but not behind it: back off
            away = pos - box[:2]
            target = pos + 0.04 * away / max(float(np.linalg.norm(away)), 1e-9)
        else:  # go to the pre-push point, around the box if the straight path hits it
            target = line_point - n * (reach + 0.045)
            if self._hits_box(box, pos, target):
                rel_box = pos - box[:2]
                ang_now = math.atan2(rel_box[1], rel_box[0])
                rel_pre = target - box[:2]
                turn = _wrap(math.atan2(rel_pre[1], rel_pre[0]) - ang_now)
                ang = ang_now + math.copysign(min(abs(turn), 0.8), turn)
                clear = float(np.hypot(*self._half)) + self._PUSHER_RADIUS + 0.02
                radius = max(clear, float(np.linalg.norm(rel_box)))
                target = box[:2] + radius * np.array([math.cos(ang), math.sin(ang)])
        vel = (target - pos) * self.hz
        speed = float(np.linalg.norm(vel))
        if speed > self.max_lin:
            vel *= self.max_lin / speed
        action = np.zeros(6)
        action[:2] = vel / self.max_lin
        return np.clip(action, -1.0, 1.0).astype(np.float32)
