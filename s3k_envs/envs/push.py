"""PushEnv: push an object on the table to a goal pose with a planar pusher (the task of
"Keypoints into the Future", Manuelli et al. 2020), seen by the usual C randomized calibrated
cameras. Subclasses: :class:`~s3k_envs.envs.box_push.BoxPushEnv` (``S3K-BoxPush-v0``, the
board-game box) and :class:`~s3k_envs.envs.shoe_push.ShoePushEnv` (``S3K-ShoePush-v0``, one
of the 16 procedural shoes).

The object stands upright on the table; the gripper is a **pusher** held at a fixed height
(``push_height``, default 9 mm for the tool centre point, so the fingertips clear the table by
4 mm and hit the object low, e.g. the box's 17 mm high sides) with a fixed orientation
(fingers down, yaw 0).

Action ``(6,)`` in [-1, 1] (the shape of every S3K env, so agents and wrappers need nothing
special): ``a[0], a[1]`` are the pusher's x and y velocity in the world frame, times
``max_linear_speed`` m/s, held for one control period; ``a[2]`` (z velocity) and ``a[3:]``
(angular velocity) are **ignored**: the pusher's height and orientation are held (by the
weld to its mocap target; contact with the object can tilt or turn it briefly).

Planar pose of the object (``info["object_pose"]``, ``info["goal_pose"]``, ``(3,)``: x m,
y m, yaw rad): the world xy of the centre of its **footprint** (a rectangle of half extents
:attr:`PushEnv.footprint_half` around :attr:`PushEnv.footprint_centre` in the object frame:
the box itself; a shoe's sole outline) and the yaw of the object's x axis.

Goal: an object pose on the table, given as the object's keypoints at that pose,
``obs["goal_keypoints"]`` ``(K, 3)`` float32 m (also ``info["goal_keypoints"]``); with
``goal_images=True`` also ``obs["goal_images"]`` ``(C, H, W, 3)`` uint8, the C views of the
object at its goal pose (rendered once per reset, pusher hidden). ``goal_mode``:

* ``"sampled"`` (default): the goal centre is the start centre moved by a distance drawn
  uniformly from ``goal_distance`` (m) in a uniformly random direction, the goal yaw the
  start yaw plus a uniform draw from ``[-goal_yaw, goal_yaw]`` (rad); draws whose centre
  falls outside the square ``|x|, |y| <= goal_xy_range`` are redrawn. Every planar pose of an
  object standing on a table is reachable by pushing.
* ``"pushes"``: the goal is where the object ends after ``goal_pushes`` (min, max) simulated
  random pushes from its start pose (the pusher pushes a random side of the footprint at a
  random offset for a random 3-8 cm), as in the paper; the simulation is then restored to
  the start state.

:meth:`PushEnv.set_goal` replaces the drawn goal (e.g. a benchmark's fixed goals).

Reward (option ``reward``), from the mean keypoint distance
``d = mean_k |keypoint_k - goal_keypoint_k|`` (m, ``info["keypoint_distance"]``):

* ``"distance"`` (default): ``-d``. The only way an episode ends early is success
  (no workspace-exit termination: the pusher is clipped into ``gripper_bounds``, the object
  can go anywhere on the table), so a negative per-step reward cannot teach an agent to end
  the episode to escape it (DESIGN.md, "Rewards that RL can use"): it only pays to succeed
  fast.
* ``"tanh"``: ``1 - tanh(d / reward_scale)`` per step, in (0, 1], plus ``success_bonus`` on
  the step that succeeds (bounded and non-negative, for agents with ``terminate_on_success``
  switched off or other time-limit handling).

Success (``info["is_success"]``): the footprint centre within ``success_position`` (m,
default 2 cm) of the goal centre **and** the yaw within ``success_angle`` (rad, default
10 deg) of the goal yaw (``info["position_error"]`` m, ``info["angle_error"]`` rad in
[0, pi]).

Depth and segmentation for label-free descriptor training (never in the observation):
:meth:`PushEnv.render_depth_and_segmentation`, with the pushed object's body ids in
:attr:`PushEnv.object_body_ids` and its pose in :meth:`PushEnv.object_pose_matrix`.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from s3k_envs.envs.base import MultiViewEnv
from s3k_envs.rendering import MultiViewRenderer

#: Gap (m) between the pusher's tool centre point and the footprint side where a simulated
#: goal push starts (the fingers reach 27 mm from the tool centre point along y).
_PUSH_CLEARANCE = 0.04
#: Speed of the simulated goal pushes, m/s.
_PUSH_SPEED = 0.1
#: Reach of the pusher's fingers from its tool centre point, m (+ margin).
PUSHER_REACH = 0.03
REWARD_TYPES = ("distance", "tanh")
GOAL_MODES = ("sampled", "pushes")


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Angle(s) wrapped into [-pi, pi), rad."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def yaw_of(rotation: np.ndarray) -> float:
    """Yaw (rotation about world z) of a ``(3, 3)`` rotation matrix, rad in (-pi, pi]."""
    return math.atan2(float(rotation[1, 0]), float(rotation[0, 0]))


def yaw_rotation(yaw: float) -> np.ndarray:
    """``(3, 3)`` rotation about world z by ``yaw`` rad."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class PushEnv(MultiViewEnv, abc.ABC):
    """Push an object to a goal pose with a planar pusher (see the module docstring).

    Subclasses build the object (``_build_task``), say which body it is
    (:meth:`_object_body`), its keypoints in its own frame (:meth:`_object_keypoints_local`),
    the z of its frame origin when it stands on the table (:meth:`_rest_height`), its
    footprint (:attr:`footprint_centre`, :attr:`footprint_half`) and may pick an object per
    episode (:meth:`_choose_object`).

    Extra options (besides every option of :class:`~s3k_envs.envs.base.MultiViewEnv`):
        push_height: z of the pusher's tool centre point, m (0.004..0.03, default 0.009).
        object_xy_range: half-width of the square the start footprint centre is drawn from.
        goal_mode: ``"sampled"`` or ``"pushes"``.
        goal_distance: (min, max) start-to-goal centre distance, m (``"sampled"``).
        goal_yaw: largest start-to-goal yaw change, rad (``"sampled"``).
        goal_xy_range: goal centres stay in ``|x|, |y| <= goal_xy_range``, m.
        goal_pushes: (min, max) number of simulated pushes (``"pushes"``).
        goal_images: also observe the C views of the goal pose.
        success_position (m), success_angle (rad): success tolerances.
        reward: ``"distance"`` or ``"tanh"``; reward_scale (m, ``"tanh"``); success_bonus
            (added on success, ``"tanh"``).
    """

    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        "gripper_bounds": ((-0.25, -0.25, 0.0), (0.25, 0.25, 0.4)),
        "push_height": 0.009,
        "object_xy_range": 0.06,
        "goal_mode": "sampled",
        "goal_distance": (0.04, 0.10),
        "goal_yaw": math.radians(45),
        "goal_xy_range": 0.10,
        "goal_pushes": (1, 3),
        "goal_images": False,
        "success_position": 0.02,
        "success_angle": math.radians(10),
        "reward": "distance",
        "reward_scale": 0.1,
        "success_bonus": 0.0,
    }
    #: Footprint of the current object: centre (2,) in the object frame and half extents (2,)
    #: along its x and y axes, m (subclasses set them; they may change per episode).
    footprint_centre: np.ndarray = np.zeros(2)
    footprint_half: np.ndarray = np.zeros(2)

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _object_body(self) -> int:
        """Body id of the pushed object (this episode's)."""

    @abc.abstractmethod
    def _object_keypoints_local(self) -> np.ndarray:
        """``(K, 3)`` keypoints of the current object in its own frame, m."""

    @abc.abstractmethod
    def _rest_height(self) -> float:
        """z of the object frame's origin when it stands upright on the table, m."""

    @abc.abstractmethod
    def object_bounds(self) -> np.ndarray:
        """``(2, 3)`` min and max corner of the current object's bounding box in its own
        frame, m (for comparing points across object instances of different sizes)."""

    def _choose_object(self, rng: np.random.Generator) -> None:
        """Pick this episode's object (e.g. a shoe instance); default: nothing to pick."""

    def _validate_object_options(self) -> None:
        """Check the subclass's own options (``ValueError`` on bad values)."""

    # ------------------------------------------------------------------ options
    def _validate_task_options(self) -> None:
        o = self.options

        def positive(name: str, high: float) -> None:
            v = o[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= high:
                raise ValueError(f"{name}: expected a number in (0, {high}], got {v!r}")

        if not 0.004 <= o["push_height"] <= 0.03:
            raise ValueError(f"push_height: expected 0.004..0.03 m (the pusher acts low, on "
                             f"the object's side), got {o['push_height']!r}")
        if not 0 <= o["object_xy_range"] <= 0.15:
            raise ValueError(f"object_xy_range: expected 0..0.15 m, got "
                             f"{o['object_xy_range']!r}")
        if o["goal_mode"] not in GOAL_MODES:
            raise ValueError(f"goal_mode: expected one of {list(GOAL_MODES)}, got "
                             f"{o['goal_mode']!r}")
        try:
            lo, hi = (float(v) for v in o["goal_distance"])
        except (TypeError, ValueError):
            raise ValueError(f"goal_distance: expected (min, max) in m, got "
                             f"{o['goal_distance']!r}") from None
        if not 0 <= lo <= hi <= 0.3:
            raise ValueError(f"goal_distance: expected 0 <= min <= max <= 0.3 m, got "
                             f"{o['goal_distance']!r}")
        if not 0 <= o["goal_yaw"] <= math.pi:
            raise ValueError(f"goal_yaw: expected 0..pi rad, got {o['goal_yaw']!r}")
        positive("goal_xy_range", 0.2)
        try:
            plo, phi = (int(v) for v in o["goal_pushes"])
        except (TypeError, ValueError):
            raise ValueError(f"goal_pushes: expected (min, max) counts, got "
                             f"{o['goal_pushes']!r}") from None
        if not 1 <= plo <= phi <= 20:
            raise ValueError(f"goal_pushes: expected 1 <= min <= max <= 20, got "
                             f"{o['goal_pushes']!r}")
        if not isinstance(o["goal_images"], (bool, np.bool_)):
            raise ValueError(f"goal_images: expected True or False, got {o['goal_images']!r}")
        positive("success_position", 0.2)
        positive("success_angle", math.pi)
        if o["reward"] not in REWARD_TYPES:
            raise ValueError(f"reward: expected one of {list(REWARD_TYPES)}, got {o['reward']!r}")
        positive("reward_scale", 10.0)
        if not 0 <= o["success_bonus"] < math.inf:
            raise ValueError(f"success_bonus: expected a finite number >= 0, got "
                             f"{o['success_bonus']!r}")
        zlo, zhi = self.gripper_bounds[:, 2]
        if not zlo <= o["push_height"] <= zhi:
            raise ValueError(f"push_height {o['push_height']} m is outside gripper_bounds z "
                             f"[{zlo}, {zhi}]")
        self._validate_object_options()

    # ------------------------------------------------------------------ observation
    def _bind_push(self) -> None:
        """Common bindings; subclasses call it from ``_bind_task``."""
        self._gripper_geoms = np.flatnonzero(self.model.geom_bodyid == self._gripper_id)
        self._goal_pose = np.zeros(3)
        self._goal_keypoints = np.zeros((len(self.keypoint_names), 3))
        self._goal_images: np.ndarray | None = None

    def _extra_observation_space(self) -> dict[str, spaces.Space]:
        k = len(self.keypoint_names)
        out: dict[str, spaces.Space] = {
            "goal_keypoints": spaces.Box(-np.inf, np.inf, (k, 3), np.float32)}
        if self.options["goal_images"]:
            out["goal_images"] = spaces.Box(0, 255, (self.num_cameras, self.height,
                                                     self.width, 3), np.uint8)
        return out

    def _extra_observation(self) -> dict[str, np.ndarray]:
        out = {"goal_keypoints": self._goal_keypoints.astype(np.float32)}
        if self.options["goal_images"]:
            out["goal_images"] = self._goal_images.copy()
        return out

    # ------------------------------------------------------------------ poses
    @property
    def object_body_ids(self) -> tuple[int, ...]:
        """Body ids of the pushed object (pixels of these bodies form the object mask)."""
        return (int(self._object_body()),)

    def object_pose(self) -> np.ndarray:
        """Current planar pose of the object: ``(3,)`` (x m, y m, yaw rad) of its footprint
        centre."""
        d, bid = self.data, self._object_body()
        rot = d.xmat[bid].reshape(3, 3)
        centre = d.xpos[bid] + rot @ np.array([*self.footprint_centre, 0.0])
        return np.array([centre[0], centre[1], yaw_of(rot)])

    @property
    def goal_pose(self) -> np.ndarray:
        """Planar goal pose of the object: ``(3,)`` (x m, y m, yaw rad)."""
        return self._goal_pose.copy()

    def keypoints_at(self, pose: np.ndarray) -> np.ndarray:
        """``(K, 3)`` world keypoints of the current object standing at planar ``pose``."""
        x, y, yaw = (float(v) for v in pose)
        rot = yaw_rotation(yaw)
        origin = (np.array([x, y, self._rest_height()])
                  - rot @ np.array([*self.footprint_centre, 0.0]))
        return origin + self._object_keypoints_local() @ rot.T

    def _set_object_pose(self, x: float, y: float, yaw: float) -> None:
        """Stand the object at planar pose ``(x, y, yaw)`` at rest (``mj_forward`` follows)."""
        m, d, bid = self.model, self.data, self._object_body()
        adr = int(m.jnt_qposadr[m.body_jntadr[bid]])
        dadr = int(m.jnt_dofadr[m.body_jntadr[bid]])
        rot = yaw_rotation(yaw)
        origin = np.array([x, y, self._rest_height()]) - rot @ np.array(
            [*self.footprint_centre, 0.0])
        d.qpos[adr : adr + 3] = origin
        d.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        d.qvel[dadr : dadr + 6] = 0.0

    def set_goal(self, goal_pose: Any) -> np.ndarray:
        """Replace this episode's goal (e.g. a fixed list of goals for a benchmark).

        Call it after ``reset``; the next ``step`` observes and rewards the new goal (the
        observation ``reset`` returned still shows the drawn one).

        Args:
            goal_pose: ``(3,)`` planar object pose (x m, y m, yaw rad).

        Returns:
            ``(K, 3)`` float32 goal keypoints, m.

        Raises:
            ValueError: not 3 finite numbers. RuntimeError: before ``reset``.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before set_goal()")
        try:
            goal = np.asarray(goal_pose, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"goal_pose: expected (x, y, yaw) numbers, got {goal_pose!r}"
                             ) from None
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal_pose: expected 3 finite numbers (x m, y m, yaw rad), got "
                             f"shape {goal.shape}: {goal.tolist()}")
        goal[2] = float(wrap_angle(goal[2]))
        self._apply_goal(goal)
        return self._goal_keypoints.astype(np.float32)

    def _apply_goal(self, goal: np.ndarray) -> None:
        self._goal_pose = goal
        self._goal_keypoints = self.keypoints_at(goal)
        if self.options["goal_images"]:
            self._goal_images = self._render_goal_images()

    def _set_pusher(self, xy: np.ndarray) -> None:
        m, d = self.model, self.data
        pos = np.array([xy[0], xy[1], self.options["push_height"]])
        adr = m.jnt_qposadr[m.body_jntadr[self._gripper_id]]
        dadr = m.jnt_dofadr[m.body_jntadr[self._gripper_id]]
        d.qpos[adr : adr + 3] = pos
        d.qpos[adr + 3 : adr + 7] = [1.0, 0.0, 0.0, 0.0]
        d.qvel[dadr : dadr + 6] = 0.0
        d.mocap_pos[self._mocap_id] = pos
        d.mocap_quat[self._mocap_id] = [1.0, 0.0, 0.0, 0.0]

    # ------------------------------------------------------------------ episode
    def _initial_gripper_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # Placed clear of the object in _reset_task (which knows the object pose).
        return (np.array([0.0, 0.0, self.options["push_height"]]),
                np.array([1.0, 0.0, 0.0, 0.0]))

    def _reset_task(self, rng: np.random.Generator) -> None:
        o = self.options
        self._choose_object(rng)
        r = o["object_xy_range"]
        x, y = rng.uniform(-r, r, size=2)
        yaw = rng.uniform(-math.pi, math.pi)
        self._set_object_pose(x, y, yaw)
        # Pusher: uniformly in the workspace (at most 24 cm out), clear of the object: further
        # from its centre than its half-diagonal + the finger reach + 1 cm.
        clear = float(np.hypot(*self.footprint_half)) + PUSHER_REACH + 0.01
        lo = np.maximum(self.gripper_bounds[0, :2], -0.24)
        hi = np.minimum(self.gripper_bounds[1, :2], 0.24)
        for _ in range(1000):
            xy = rng.uniform(lo, hi)
            if np.hypot(xy[0] - x, xy[1] - y) > clear:
                break
        self._set_pusher(xy)
        mujoco.mj_forward(self.model, self.data)
        if o["goal_mode"] == "sampled":
            goal = self._sample_goal(rng, np.array([x, y, yaw]))
        else:
            goal = self._push_goal(rng)
        self._apply_goal(goal)

    def _sample_goal(self, rng: np.random.Generator, start: np.ndarray) -> np.ndarray:
        o = self.options
        lim = o["goal_xy_range"]
        for _ in range(1000):
            dist = rng.uniform(*o["goal_distance"])
            heading = rng.uniform(-math.pi, math.pi)
            gx = start[0] + dist * math.cos(heading)
            gy = start[1] + dist * math.sin(heading)
            if abs(gx) <= lim and abs(gy) <= lim:
                break
        else:  # only with a goal_distance far larger than the workspace
            gx, gy = np.clip([gx, gy], -lim, lim)
        gyaw = float(wrap_angle(start[2] + rng.uniform(-o["goal_yaw"], o["goal_yaw"])))
        return np.array([gx, gy, gyaw])

    def _push_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Goal = object pose after random simulated pushes; the state is restored after."""
        o = self.options
        saved = self._save_state()
        lim = o["goal_xy_range"]
        bid = self._object_body()
        try:
            for _ in range(20):
                for _ in range(int(rng.integers(o["goal_pushes"][0], o["goal_pushes"][1] + 1))):
                    self._simulate_random_push(rng)
                pose = self.object_pose()
                upright = self.data.xmat[bid].reshape(3, 3)[2, 2] > math.cos(math.radians(5))
                if upright and abs(pose[0]) <= lim and abs(pose[1]) <= lim:
                    return pose
                self._restore_state(saved)
            gym.logger.warn(f"{type(self).__name__}: no random push kept the object inside "
                            "goal_xy_range in 20 tries; sampling this goal instead "
                            "(goal_mode='sampled')")
            return self._sample_goal(rng, self.object_pose())
        finally:
            self._restore_state(saved)

    def _simulate_random_push(self, rng: np.random.Generator) -> None:
        """One push: the pusher starts ``_PUSH_CLEARANCE`` outside a random side of the
        footprint at a random offset along it and moves along the side's inward normal for the
        clearance plus 3-8 cm, then the object settles for 0.2 s."""
        m, d = self.model, self.data
        x, y, yaw = self.object_pose()
        half = self.footprint_half
        axis = int(rng.integers(2))  # push the +-x or the +-y side
        sign = float(rng.choice([-1.0, 1.0]))
        local = np.zeros(2)
        local[axis] = sign * (half[axis] + _PUSH_CLEARANCE)
        local[1 - axis] = rng.uniform(-0.7, 0.7) * half[1 - axis]
        rot = yaw_rotation(yaw)[:2, :2]
        start = np.array([x, y]) + rot @ local
        normal = -rot[:, axis] * sign  # inward
        self._set_pusher(start)
        mujoco.mj_forward(m, d)
        travel = _PUSH_CLEARANCE + rng.uniform(0.03, 0.08)
        n = math.ceil(travel / (_PUSH_SPEED * m.opt.timestep))
        mpos = d.mocap_pos[self._mocap_id]
        for i in range(1, n + 1):
            mpos[:2] = start + normal * travel * i / n
            mujoco.mj_step(m, d)
        for _ in range(int(0.2 / m.opt.timestep)):
            mujoco.mj_step(m, d)

    def _render_goal_images(self) -> np.ndarray:
        """C views of the object at the goal pose with the pusher hidden: ``(C, H, W, 3)``."""
        m, d = self.model, self.data
        saved = self._save_state()
        rgba = m.geom_rgba[self._gripper_geoms].copy()
        try:
            self._set_object_pose(*self._goal_pose)
            m.geom_rgba[self._gripper_geoms, 3] = 0.0
            mujoco.mj_forward(m, d)
            return self._render_images().copy()
        finally:
            m.geom_rgba[self._gripper_geoms] = rgba
            self._restore_state(saved)

    def _mocap_trajectory(self, lin: np.ndarray, ang: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray | None]:
        """Planar pusher: only the x, y velocity is used; z and rotation are held."""
        planar = np.array([lin[0], lin[1], 0.0])
        positions, _ = super()._mocap_trajectory(planar, np.zeros(3))
        positions[:, 2] = self.options["push_height"]
        return positions, None

    # ------------------------------------------------------------------ keypoints, reward
    def _keypoints_world(self) -> np.ndarray:
        d, bid = self.data, self._object_body()
        rot = d.xmat[bid].reshape(3, 3)
        return d.xpos[bid] + self._object_keypoints_local() @ rot.T

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        o = self.options
        dist = float(np.linalg.norm(keypoints - self._goal_keypoints, axis=1).mean())
        pose = self.object_pose()
        pos_err = float(np.hypot(*(pose[:2] - self._goal_pose[:2])))
        ang_err = float(abs(wrap_angle(pose[2] - self._goal_pose[2])))
        success = pos_err <= o["success_position"] and ang_err <= o["success_angle"]
        if o["reward"] == "distance":
            reward = -dist
        else:
            reward = 1.0 - math.tanh(dist / o["reward_scale"])
            if success:
                reward += float(o["success_bonus"])
        return reward, bool(success), {
            "goal_keypoints": self._goal_keypoints.astype(np.float32),
            "keypoint_distance": dist,
            "position_error": pos_err,
            "angle_error": ang_err,
            "object_pose": pose.astype(np.float32),
            "goal_pose": self._goal_pose.astype(np.float32),
        }

    # ------------------------------------------------------------------ descriptor data
    def render_depth_and_segmentation(self) -> tuple[np.ndarray, np.ndarray]:
        """Depth and body segmentation of the current state in every camera (for descriptor
        training data; not part of the observation).

        Returns:
            depth: ``(C, H, W)`` float32 m, z of the first surface along each pixel centre's
                ray in the camera frame (the ``depth`` of :func:`s3k_envs.geometry.project`;
                very large where nothing is hit).
            segmentation: ``(C, H, W)`` int32, the MuJoCo body id seen at each pixel, -1
                where no geom is seen. Pixels of the pushed object: those whose id is in
                :attr:`object_body_ids`.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before render_depth_and_segmentation()")
        if self._renderer is None:
            self._renderer = MultiViewRenderer(self.model, self.height, self.width,
                                               self.num_cameras)
        depth, geoms = self._renderer.render_depth_segmentation(self.data, self._cam_ids)
        bodies = np.where(geoms >= 0, self.model.geom_bodyid[np.maximum(geoms, 0)], -1)
        return depth, bodies.astype(np.int32)

    def object_pose_matrix(self) -> np.ndarray:
        """``(4, 4)`` object-frame-to-world transform of the pushed object (m), for evaluating
        label-free keypoints against the physical points they track."""
        bid = self._object_body()
        out = np.eye(4)
        out[:3, :3] = self.data.xmat[bid].reshape(3, 3)
        out[:3, 3] = self.data.xpos[bid]
        return out
