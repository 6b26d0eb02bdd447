"""S3K-CableInsert-v0 / S3K-CableInsertShort-v0: insert the plug of a flexible audio cable
into a vertical socket.

The RL task of the S3K paper (§6). The floating gripper holds a flexible cable near one end;
the other end carries a rigid plug, and a square socket stands on the table. The cable bends
under gravity and keeps a random bend: every reset writes a new rest shape into
``model.qpos_spring`` of the cable's ball joints (no recompilation) and puts the cable at rest
in its new equilibrium (potential-energy minimisation, no simulated waiting), so the plug hangs
at a different place and angle in every episode (1-3 cm off the gripper's vertical, tilted
3-30 deg with the default options) and starts still.

Model (units: m, kg, s, rad)
    * Cable: ``cable_segments`` (default ``CABLE_SEGMENTS`` = 12) capsules of
      ``SEGMENT_LENGTH`` = 1.5 cm, radius 2 mm, 0.3 g each, chained by ball joints (options
      ``joint_stiffness``, default 3e-3 N m/rad, and ``joint_damping``, default 2e-3
      N m s/rad).
      The first segment hangs from the gripper body (a free body with gravity compensation
      welded to the mocap target, never the mocap body itself: children of mocap bodies do not
      swing).
    * Plug: a rigid child of the last segment, ``PLUG_LENGTH`` = 5 cm long, radius 4.5 mm
      (a black housing and a metal pin; one capsule for contacts), 3 g.
    * Socket: a square tube of four box walls on the table, ``SOCKET_HEIGHT`` = 4 cm high, with
      a ``2 * HOLE_HALF_WIDTH`` = 12 mm square hole (1.5 mm clearance around the plug) that
      runs down to the table. Fully inserted, the plug's tip rests on the table and
      ``PLUG_EXPOSED`` = 1 cm of it sticks out of the opening.
    * Contacts: only cable/plug against socket/table (and gripper against socket/table); cable
      segments never collide with each other or with the gripper (contype/conaffinity).
      Physics: timestep 2 ms (125 substeps per 4 Hz control step), implicitfast, elliptic
      cones, impratio 10; penetration stays below 0.3 mm during insertions.

Keypoints (``info["keypoints"]``, world frame)
    * ``plug_tip``: the free end of the plug's pin. As in the paper, once the tip is inside the
      socket (below the opening and within the hole) it is *defined* to sit at the socket
      opening: the keypoint then coincides with ``socket`` (a keypoint need not be a surface
      point; the labels define it).
    * ``plug_base``: where the cable enters the plug housing.
    * ``socket``: centre of the socket's opening, at its top.

Success and reward (from the three keypoints only, see :func:`insertion_error`)
    ``error = |tip - socket| + |base - (socket + PLUG_EXPOSED * up)|`` is 0 for a fully
    inserted plug; success is ``error < success_threshold`` (2.5 cm), which needs the plug
    upright and at least 1.5 cm deep in the socket. The reward (:func:`insertion_reward`) is

        ``r = 1 - tanh(error / reward_length)`` in ``[0, 1]`` every step (``reward_length``
        0.2 m: 0.24 at a typical start error of 0.2 m, 0.80 with the tip at the opening,
        0.88 at the success threshold), plus ``success_bonus`` (100) on the step that succeeds,
        minus ``safety_penalty`` (default 0) on the step the gripper leaves the safety box.

    Why this shape (measured, issue 15): the earlier ``-error`` per step with a one-off -10 for
    leaving the safety box taught agents to leave after ~7 steps: with gamma 0.99 and
    bootstrapping at the time limit, hovering at a 0.2 m error is worth about
    ``-0.2 / (1 - 0.99) = -20``, worse than the penalty. With a non-negative per-step reward
    every early end (leaving the box, an unstable simulation) forfeits the reward still to
    come, so it never pays; and the success bonus is ``1 / (1 - 0.99)``, the value of staying
    at the best per-step reward forever, so ending the episode by succeeding is worth at least
    as much as any way of going on (success is an absorbing state with the maximum reward).

Episode end
    * terminated on success;
    * terminated when the gripper leaves the safety box around the socket (``safety_box``:
      ``|x - sx|, |y - sy| <= 0.15`` m, ``0.08 <= z <= 0.40`` m), as in the paper ("episodes
      are also terminated if the agent moves far away from the socket"); it forfeits the
      reward of the remaining steps. ``info["left_safety_box"]`` says why the episode ended;
    * truncated after 10 s (40 control steps at 4 Hz, by the registration's
      ``max_episode_steps``).

Observations without images: ``images=False`` (a base-env option) drops ``images`` from the
observation and never renders (agents on true keypoints or other state; the keypoints and
their projections stay in ``info``).

Two registered tasks (issue 15: is our task the paper's task?)
    The paper's robot "is holding a connector by the cable" (§6.1): the fingers grip the cable
    close to the plug. ``S3K-CableInsert-v0`` grips it 18 cm above the plug, so the plug hangs
    on a long, soft pendulum; ``S3K-CableInsertShort-v0`` (:class:`CableInsertShortEnv`) grips
    it 6 cm above (``cable_segments`` = 4), caps the random bend (``max_total_bend`` 1.2 rad,
    so the plug's rest tilt spans about the default's 3-30 deg instead of up to ~55 deg) and
    starts the gripper 12 cm lower (so the plug starts as high above the socket as in the
    default). Cameras, keypoints, success rule, reward, safety box, 4 Hz control, 6-D velocity
    actions and the 40-step limit are the same. Measured (``benchmarks/cable_pendulum.py``,
    one control step at full speed along x = a 5 cm gripper jerk, medians of 20 seeds;
    ``benchmarks/results/cable_pendulum.json``):

    ==========================  =========  ==========  ========  =========  =========
    env                         tip below  lag in the  swing     peak       settled
                                gripper    jerk        period    swing      (< 1.5 mm)
    ==========================  =========  ==========  ========  =========  =========
    S3K-CableInsert-v0          0.23 m     24.5 mm     0.80 s    32.4 mm    2.39 s
    S3K-CableInsertShort-v0     0.11 m     4.4 mm      none      3.6 mm     0.35 s
    ==========================  =========  ==========  ========  =========  =========

    The default plug swings for ~10 control steps after every move, 55 mm between two 4 Hz
    frames; the short one is dragged along and creeps back without crossing its rest point
    (no period: overdamped). A 10x / 30x stiffer default cable shortens the period (0.64 /
    0.48 s) but still swings (peaks 25 / 18 mm) and, worse, no longer hangs under gravity: it
    keeps its random bend, so the plug sticks out 51 / 78 deg from vertical (the paper's cable
    "has sufficient flex to easily bend under gravity alone"), and the scripted expert
    (:class:`s3k_envs.experts.CableInsertExpert`) inserts in only 23/50 and 9/50 episodes.
    The expert, 50+ seeded episodes each (``benchmarks/expert_cable.py``, results
    ``expert_cable.json`` and ``expert_cable_short.json``): ``S3K-CableInsert-v0`` 100/100,
    median 14 steps to success; ``S3K-CableInsertShort-v0`` 50/50, median 11 steps.
    RLPD on true keypoints (``benchmarks/cable_rlpd.py --relative --no-backup-entropy
    --time-limit --velocity --init-temperature 0.01``, 51 demos, 10,000 steps, seeds 0 and 1;
    results ``cable_rlpd_rel_e2_utd4_t0.01_nobackupent_tl_vel[_short]_s{0,1}_10000.json``):
    held-out 17/20 and 20/20 on the short env vs 14/20 and 16/20 on the default; training
    episodes successful over the last 2,000 steps 84/113 and 106/127 vs 40/76 and 38/74; half
    of the last 20 training episodes first succeed after 3,117 and 3,613 steps vs 4,710 and
    6,435. Without the pendulum the same agent learns faster and ends better; it still fails
    17-26 % of its training episodes at 10,000 steps (the paper reports > 95 % after 40,000).
    Behaviour cloning on the same state and demos (``benchmarks/cable_state_bc.py``, 3 seeds x
    50 held-out episodes, ``cable_state_bc.json``) gains nothing: 32/150 on the short env vs
    36/150 on the default; its episodes end by leaving the safety box, pendulum or not.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import mujoco
import numpy as np

from s3k_envs.envs.base import MultiViewEnv

CABLE_SEGMENTS = 12
SEGMENT_LENGTH = 0.015  # m
CABLE_RADIUS = 0.002  # m
SEGMENT_MASS = 0.0003  # kg
JOINT_STIFFNESS = 3e-3  # N m / rad
JOINT_DAMPING = 2e-3  # N m s / rad
#: Range of the ``cable_segments`` option. With a straight cable and the plug fully inserted
#: the gripper is ``PLUG_EXPOSED + SOCKET_HEIGHT + n * SEGMENT_LENGTH`` above the table: 0.08 m,
#: the floor of the default safety box, for 2 segments.
MIN_CABLE_SEGMENTS, MAX_CABLE_SEGMENTS = 2, 30

PLUG_LENGTH = 0.05  # m, plug_base to plug_tip
PLUG_RADIUS = 0.0045  # m, collision capsule
PLUG_MASS = 0.003  # kg

SOCKET_HEIGHT = 0.04  # m, also the depth of the hole (it runs down to the table)
HOLE_HALF_WIDTH = 0.006  # m
SOCKET_HALF_WIDTH = 0.016  # m, outer
PLUG_EXPOSED = PLUG_LENGTH - SOCKET_HEIGHT  # m of plug above the opening when fully inserted

UP = np.array([0.0, 0.0, 1.0])
#: Discount the reward's success bonus is sized for (the agents' gamma).
REWARD_GAMMA = 0.99
#: Episode length of the registered env: 10 s at the 4 Hz control rate.
MAX_EPISODE_STEPS = 40

# Collision filtering: bit 1 = static scene (table, socket) and gripper, bit 2 = cable.
# A pair collides if (contype1 & conaffinity2) or (contype2 & conaffinity1).
_CABLE_CONTYPE, _CABLE_CONAFFINITY = 2, 4
_SCENE_CONTYPE, _SCENE_CONAFFINITY = 1, 3
_COLLISION_GROUP = 3  # collision-only geoms (not rendered)

_KEYPOINTS = ("plug_tip", "plug_base", "socket")
_TIP, _BASE, _SOCKET = range(3)


def insertion_error(keypoints: np.ndarray, plug_length: float = PLUG_EXPOSED) -> float:
    """Keypoint distance of the plug from its fully inserted pose, in metres.

    Args:
        keypoints: ``(3, 3)`` world positions (m) of ``plug_tip``, ``plug_base``, ``socket``
            (the env's keypoint order), with the tip already snapped to the socket opening
            when inside (as ``info["keypoints"]`` has it).
        plug_length: height of ``plug_base`` above the socket opening when the plug is fully
            inserted, i.e. the length of plug that stays out of the socket (m). Default: the
            env's ``PLUG_EXPOSED`` (1 cm).

    Returns:
        ``|tip - socket| + |base - (socket + plug_length * up)|`` (m, z up): 0 when fully
        inserted; for an upright plug whose tip is ``d`` above the opening it is
        ``2 d + SOCKET_HEIGHT``; once the tip is inside, it is how far the base still has to
        go down.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (3, 3):
        raise ValueError(f"keypoints: expected shape (3, 3) (tip, base, socket), got {kp.shape}")
    tip, base, socket = kp
    return float(
        np.linalg.norm(tip - socket) + np.linalg.norm(base - (socket + plug_length * UP))
    )


def insertion_success(
    keypoints: np.ndarray, plug_length: float = PLUG_EXPOSED, threshold: float = 0.025
) -> bool:
    """Whether the plug counts as inserted: ``insertion_error(keypoints, plug_length) <
    threshold``.

    Args:
        keypoints: ``(3, 3)`` world positions (m) of ``plug_tip``, ``plug_base``, ``socket``.
        plug_length: height of ``plug_base`` above the opening when fully inserted (m).
        threshold: success distance (m); 2.5 cm as in the paper.

    Returns:
        True if the error is below ``threshold``.
    """
    return insertion_error(keypoints, plug_length) < threshold


def insertion_reward(error: float, success: bool, left_safety_box: bool = False,
                     reward_length: float = 0.2, success_bonus: float = 1.0 / (1.0 - REWARD_GAMMA),
                     safety_penalty: float = 0.0) -> float:
    """Per-step reward of ``S3K-CableInsert-v0`` (see the module docstring for why this shape).

    Args:
        error: insertion error (m), :func:`insertion_error` of the step's keypoints.
        success: whether the step succeeded (the error is below the success threshold).
        left_safety_box: whether the gripper left the safety box on this step.
        reward_length: length scale of the shaping, m (> 0).
        success_bonus: added on a successful step (default ``1 / (1 - 0.99)`` = 100).
        safety_penalty: subtracted on the step that leaves the safety box (>= 0).

    Returns:
        ``1 - tanh(error / reward_length) + success_bonus * success - safety_penalty *
        left_safety_box``; the first term lies in ``[0, 1]``.
    """
    reward = 1.0 - math.tanh(max(float(error), 0.0) / float(reward_length))
    if success:
        reward += float(success_bonus)
    if left_safety_box:
        reward -= float(safety_penalty)
    return reward


def tip_keypoint(tip: np.ndarray, socket: np.ndarray,
                 hole_half_width: float = HOLE_HALF_WIDTH) -> np.ndarray:
    """The ``plug_tip`` keypoint: the true tip, or the socket opening once the tip is inside.

    Args:
        tip: ``(3,)`` true position of the plug's tip (m).
        socket: ``(3,)`` centre of the socket opening (m).
        hole_half_width: half-width of the square hole (m).

    Returns:
        ``(3,)``: ``socket`` if the tip is below the opening and inside the hole's square
        footprint, else ``tip`` (a copy).
    """
    tip = np.asarray(tip, dtype=np.float64)
    socket = np.asarray(socket, dtype=np.float64)
    inside = tip[2] < socket[2] and bool(np.all(np.abs(tip[:2] - socket[:2]) <= hole_half_width))
    return socket.copy() if inside else tip.copy()


def _axis_angle_quat(axis: np.ndarray, angle: float) -> np.ndarray:
    """w-first quaternion of a rotation by ``angle`` (rad) about unit ``axis`` (3,)."""
    return np.array([math.cos(angle / 2), *(math.sin(angle / 2) * np.asarray(axis))])


class CableInsertEnv(MultiViewEnv):
    """Floating gripper holding a flexible audio cable; insert its plug into a socket.

    See the module docstring for the model, keypoints, success and termination rules.

    Reward: :func:`insertion_reward` of the step's keypoints (dense, from the three keypoints
    only): ``1 - tanh(error / reward_length)`` plus ``success_bonus`` on success, minus
    ``safety_penalty`` on the step the gripper leaves the safety box.
    Info (besides the base env's): ``insertion_error`` (m), ``left_safety_box`` (bool),
    ``plug_tip_true`` ``(3,)`` (the physical tip, never snapped), ``is_success``.

    Extra options (besides :class:`~s3k_envs.envs.base.MultiViewEnv`'s):
        success_threshold: m, default 0.025.
        socket_xy_range: half-width (m) of the square the socket centre is drawn from.
        gripper_offset_range: (min, max) horizontal distance (m) of the gripper start from
            the socket.
        gripper_height_range: (min, max) start height (m) of the gripper.
        bend_scale: rad, scale of the random rest-shape bend per joint (0 = straight cable).
        max_total_bend: rad, cap on the summed rest bend of all joints (larger values let the
            cable curl up into loops that lift the plug towards the gripper).
        safety_box: ((dx, dy), (zmin, zmax)): the gripper must stay within ``|x - sx| <= dx``,
            ``|y - sy| <= dy`` of the socket centre and ``zmin <= z <= zmax`` (m).
        safety_penalty: reward subtracted when the gripper leaves the safety box (>= 0,
            default 0: leaving already forfeits the non-negative reward still to come).
        reward_length: m, length scale of the per-step reward ``1 - tanh(error / length)``.
        success_bonus: reward added on the step that succeeds (>= 0, default
            ``1 / (1 - 0.99)`` = 100, see the module docstring).
        cable_segments: number of 1.5 cm cable segments between the fingers and the plug (an
            int in 2..30, default 12: the plug's base hangs 18 cm below the gripper).
        joint_stiffness: N m/rad, rotational stiffness of each cable joint towards its random
            rest bend (in (0, 1], default 3e-3).
        joint_damping: N m s/rad, rotational damping of each cable joint (in (0, 1], default
            2e-3).
    """

    keypoint_names = _KEYPOINTS
    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        "timestep": 0.002,
        "camera_target": (0.0, 0.0, 0.09),
        "camera_distance": (0.32, 0.42),
        "camera_elevation": (math.radians(28), math.radians(55)),
        "gripper_bounds": ((-0.25, -0.25, 0.06), (0.25, 0.25, 0.42)),
        "success_threshold": 0.025,
        "socket_xy_range": 0.06,
        "gripper_offset_range": (0.02, 0.08),
        "gripper_height_range": (0.30, 0.34),
        "bend_scale": 0.3,
        "max_total_bend": 2.5,
        "safety_box": ((0.15, 0.15), (0.08, 0.40)),
        "safety_penalty": 0.0,
        "reward_length": 0.2,
        "success_bonus": 1.0 / (1.0 - REWARD_GAMMA),
        "cable_segments": CABLE_SEGMENTS,
        "joint_stiffness": JOINT_STIFFNESS,
        "joint_damping": JOINT_DAMPING,
    }

    # ------------------------------------------------------------------ options
    def _validate_task_options(self) -> None:
        o = self.options
        if not 0 < o["success_threshold"] <= 0.2:
            raise ValueError(
                f"success_threshold: expected 0 < m <= 0.2, got {o['success_threshold']!r}"
            )
        if not 0 <= o["socket_xy_range"] <= 0.15:
            raise ValueError(f"socket_xy_range: expected 0..0.15 m, got {o['socket_xy_range']!r}")
        for name, low, high in (("gripper_offset_range", 0.0, 0.15),
                                ("gripper_height_range", 0.1, 0.42)):
            try:
                lo, hi = (float(v) for v in o[name])
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected a (min, max) pair, got {o[name]!r}") from None
            if not low <= lo <= hi <= high:
                raise ValueError(f"{name}: expected {low} <= min <= max <= {high}, got {o[name]}")
        if not 0 <= o["bend_scale"] <= 0.6:
            raise ValueError(f"bend_scale: expected 0..0.6 rad, got {o['bend_scale']!r}")
        if not 0 <= o["max_total_bend"] <= 2 * math.pi:
            raise ValueError(
                f"max_total_bend: expected 0..2 pi rad, got {o['max_total_bend']!r}"
            )
        try:
            (dx, dy), (zmin, zmax) = o["safety_box"]
        except (TypeError, ValueError):
            raise ValueError(
                f"safety_box: expected ((dx, dy), (zmin, zmax)) in m, got {o['safety_box']!r}"
            ) from None
        if not (dx > 0 and dy > 0 and zmin < zmax):
            raise ValueError(f"safety_box: expected dx, dy > 0 and zmin < zmax, got "
                             f"{o['safety_box']!r}")
        if not o["safety_penalty"] >= 0:
            raise ValueError(f"safety_penalty: expected >= 0, got {o['safety_penalty']!r}")
        if not (isinstance(o["reward_length"], (int, float)) and 0 < o["reward_length"] < 10):
            raise ValueError(f"reward_length: expected 0 < m < 10, got {o['reward_length']!r}")
        if not (isinstance(o["success_bonus"], (int, float)) and 0 <= o["success_bonus"] < 1e6):
            raise ValueError(f"success_bonus: expected 0 <= bonus < 1e6, got "
                             f"{o['success_bonus']!r}")
        segments = o["cable_segments"]
        if (isinstance(segments, (bool, np.bool_)) or not isinstance(segments, (int, np.integer))
                or not MIN_CABLE_SEGMENTS <= segments <= MAX_CABLE_SEGMENTS):
            raise ValueError(f"cable_segments: expected an int in {MIN_CABLE_SEGMENTS}.."
                             f"{MAX_CABLE_SEGMENTS} (segments of {SEGMENT_LENGTH * 100:g} cm), "
                             f"got {segments!r}")
        for name, unit, high in (("joint_stiffness", "N m/rad", 1.0),
                                 ("joint_damping", "N m s/rad", 1.0)):
            value = o[name]
            if (isinstance(value, (bool, np.bool_))
                    or not isinstance(value, (int, float, np.number)) or not 0 < value <= high):
                raise ValueError(f"{name}: expected a number in (0, {high:g}] {unit}, got "
                                 f"{value!r}")

    # ------------------------------------------------------------------ scene
    def _build_task(self, spec: mujoco.MjSpec) -> None:
        table = spec.geom("table")
        table.contype, table.conaffinity = _SCENE_CONTYPE, _SCENE_CONAFFINITY
        self._build_socket(spec)
        self._build_cable(spec)

    def _build_socket(self, spec: mujoco.MjSpec) -> None:
        # A mocap body: placed per episode through data.mocap_pos, static for the physics.
        socket = spec.worldbody.add_body(name="socket", mocap=True)
        wall_rgba = [0.82, 0.82, 0.78, 1.0]
        h, hole, outer = SOCKET_HEIGHT / 2, HOLE_HALF_WIDTH, SOCKET_HALF_WIDTH
        t = (outer - hole) / 2  # wall half-thickness
        walls = [  # name, half sizes, centre: +x/-x walls span the full width, +y/-y fill in
            ("socket_wall_px", [t, outer, h], [hole + t, 0.0, h]),
            ("socket_wall_nx", [t, outer, h], [-hole - t, 0.0, h]),
            ("socket_wall_py", [hole, t, h], [0.0, hole + t, h]),
            ("socket_wall_ny", [hole, t, h], [0.0, -hole - t, h]),
        ]
        for name, size, pos in walls:
            geom = socket.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos,
                                   rgba=wall_rgba)
            geom.contype, geom.conaffinity = _SCENE_CONTYPE, _SCENE_CONAFFINITY
            geom.friction = [0.3, 0.005, 0.0001]
        # Dark floor of the hole (visual only) so the opening reads as a hole in the images.
        floor = socket.add_geom(name="socket_hole_floor", type=mujoco.mjtGeom.mjGEOM_BOX,
                                size=[hole, hole, 0.0005], pos=[0, 0, 0.0005],
                                rgba=[0.05, 0.05, 0.05, 1.0])
        floor.contype = floor.conaffinity = 0
        socket.add_site(name="socket_opening", pos=[0, 0, SOCKET_HEIGHT], size=[0.003, 0, 0],
                        group=5)

    def _build_cable(self, spec: mujoco.MjSpec) -> None:
        gripper = spec.body("gripper")
        if gripper is None:
            raise RuntimeError("base scene has no body named 'gripper'")
        cable_rgba = [0.08, 0.08, 0.09, 1.0]
        parent = gripper
        n_segments = int(self.options["cable_segments"])
        stiffness = float(self.options["joint_stiffness"])
        damping = float(self.options["joint_damping"])
        for i in range(n_segments):
            body = parent.add_body(name=f"cable_{i}", pos=[0, 0, 0 if i == 0 else -SEGMENT_LENGTH])
            joint = body.add_joint(name=f"cable_joint_{i}", type=mujoco.mjtJoint.mjJNT_BALL)
            joint.stiffness = [stiffness, 0.0, 0.0]
            joint.damping = [damping, 0.0, 0.0]
            geom = body.add_geom(name=f"cable_seg_{i}", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                                 fromto=[0, 0, 0, 0, 0, -SEGMENT_LENGTH],
                                 size=[CABLE_RADIUS, 0, 0], rgba=cable_rgba)
            geom.mass = SEGMENT_MASS
            geom.contype, geom.conaffinity = _CABLE_CONTYPE, _CABLE_CONAFFINITY
            geom.friction = [0.5, 0.005, 0.0001]
            parent = body
        plug = parent.add_body(name="plug", pos=[0, 0, -SEGMENT_LENGTH])
        # One capsule spanning exactly [base, tip] carries the contacts and the mass.
        col = plug.add_geom(name="plug_collision", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                            fromto=[0, 0, -PLUG_RADIUS, 0, 0, -(PLUG_LENGTH - PLUG_RADIUS)],
                            size=[PLUG_RADIUS, 0, 0], group=_COLLISION_GROUP,
                            rgba=[1, 0, 0, 0.3])
        col.mass = PLUG_MASS
        col.contype, col.conaffinity = _CABLE_CONTYPE, _CABLE_CONAFFINITY
        col.friction = [0.3, 0.005, 0.0001]
        col.solref = [0.01, 1.0]
        pin = 0.8 * PLUG_RADIUS
        visuals = [  # black plastic housing, metal pin with a rounded tip (2 geoms: each
            # rendered geom costs ~20 us per view with software GL)
            ("plug_housing", mujoco.mjtGeom.mjGEOM_CYLINDER, [PLUG_RADIUS, 0.0125, 0],
             [0, 0, -0.0125], [0.1, 0.1, 0.11, 1]),
            ("plug_pin", mujoco.mjtGeom.mjGEOM_CAPSULE, [pin, 0.5 * (PLUG_LENGTH - 0.025 - pin), 0],
             [0, 0, -0.5 * (0.025 + PLUG_LENGTH - pin)], [0.8, 0.78, 0.72, 1]),
        ]
        for name, gtype, size, pos, rgba in visuals:
            geom = plug.add_geom(name=name, type=gtype, size=size, pos=pos, rgba=rgba)
            geom.contype = geom.conaffinity = 0
            geom.mass = 0.0
            geom.group = 1
        plug.add_site(name="plug_base", pos=[0, 0, 0], size=[0.003, 0, 0], group=5)
        plug.add_site(name="plug_tip", pos=[0, 0, -PLUG_LENGTH], size=[0.003, 0, 0], group=5)

    def _bind_task(self) -> None:
        m = self.model
        self._socket_mocap = int(m.body_mocapid[m.body("socket").id])
        self._plug_id = m.body("plug").id
        n_segments = int(self.options["cable_segments"])
        self._last_segment_id = m.body(f"cable_{n_segments - 1}").id
        self._tip_site = m.site("plug_tip").id
        self._base_site = m.site("plug_base").id
        self._opening_site = m.site("socket_opening").id
        joints = [m.joint(f"cable_joint_{i}") for i in range(n_segments)]
        self._cable_qadr = np.array([int(j.qposadr[0]) for j in joints])
        self._cable_dofadr = np.array([int(j.dofadr[0]) for j in joints])
        self._cable_dofs = (self._cable_dofadr[:, None] + np.arange(3)).ravel()
        self._socket_xy = np.zeros(2)
        self._bias = np.zeros(m.nv)

    # ------------------------------------------------------------------ reset
    def _initial_gripper_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Socket position (stored, placed by ``_reset_task``) and the gripper start: upright,
        random yaw, ``gripper_offset_range`` m horizontally from the socket."""
        # The socket is drawn here because the base env asks for the gripper pose before it
        # calls _reset_task, and the gripper must start at a set distance from the socket.
        r = self.options["socket_xy_range"]
        self._socket_xy = rng.uniform(-r, r, size=2)
        dist = rng.uniform(*self.options["gripper_offset_range"])
        angle = rng.uniform(-math.pi, math.pi)
        height = rng.uniform(*self.options["gripper_height_range"])
        pos = np.array([*(self._socket_xy + dist * np.array([math.cos(angle), math.sin(angle)])),
                        height])
        yaw = rng.uniform(-math.pi, math.pi)
        return pos, np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])

    def sample_bend(self, rng: np.random.Generator) -> np.ndarray:
        """Random rest shape of the cable: ``(cable_segments, 4)`` w-first joint quaternions.

        Each joint bends about a horizontal axis of its segment by a bend vector that varies
        smoothly along the cable (a random constant plus a random linear trend plus a little
        noise, ``bend_scale`` rad per joint), so the cable takes a random C- or S-like curl.
        """
        s = float(self.options["bend_scale"])
        n = int(self.options["cable_segments"])
        along = np.linspace(-1.0, 1.0, n)[:, None]
        const = rng.normal(0.0, s, size=2)
        trend = rng.normal(0.0, s, size=2)
        noise = rng.normal(0.0, 0.25 * s, size=(n, 2))
        bend = const + along * trend + noise  # (n, 2) rotation vector in the segment's xy
        total = float(np.linalg.norm(bend, axis=1).sum())
        if total > self.options["max_total_bend"]:  # no loops: they curl the plug upwards
            bend *= self.options["max_total_bend"] / total
        quats = np.zeros((n, 4))
        for i, (bx, by) in enumerate(bend):
            angle = math.hypot(bx, by)
            axis = np.array([bx, by, 0.0]) / angle if angle > 1e-12 else np.array([1.0, 0, 0])
            quats[i] = _axis_angle_quat(axis, angle)
        return quats

    def _reset_task(self, rng: np.random.Generator) -> None:
        m, d = self.model, self.data
        d.mocap_pos[self._socket_mocap] = [*self._socket_xy, 0.0]
        rest = self.sample_bend(rng)
        for adr, quat in zip(self._cable_qadr, rest, strict=True):
            m.qpos_spring[adr : adr + 4] = quat
            d.qpos[adr : adr + 4] = quat
        self._settle()

    def _settle(self, max_iters: int = 40, tol: float = 1e-8) -> None:
        """Put the cable at rest: minimise its potential energy (gravity + joint springs) over
        the cable's joint angles with the gripper held, by Levenberg-Marquardt steps on a
        finite-difference Hessian (~10 ms; simulating until the swing dies out takes seconds
        of simulated time). Leaves every velocity at zero."""
        m, d = self.model, self.data
        dofs = self._cable_dofs
        n = len(dofs)
        d.qvel[:] = 0.0
        energy, grad = self._cable_energy()
        lam = 1e-3
        eye = np.eye(n)
        hess = np.empty((n, n))
        step = np.zeros(m.nv)
        for _ in range(max_iters):
            if np.abs(grad).max() < tol:
                break
            q0 = d.qpos.copy()
            eps = 1e-6
            for j, dof in enumerate(dofs):
                step[:] = 0.0
                step[dof] = eps
                mujoco.mj_integratePos(m, d.qpos, step, 1.0)
                hess[:, j] = (self._cable_energy()[1] - grad) / eps
                d.qpos[:] = q0
            hess = 0.5 * (hess + hess.T)
            while lam < 1e6:
                step[:] = 0.0
                step[dofs] = np.linalg.solve(hess + lam * eye, -grad)
                mujoco.mj_integratePos(m, d.qpos, step, 1.0)
                new_energy, new_grad = self._cable_energy()
                if new_energy <= energy:
                    energy, grad, lam = new_energy, new_grad, max(lam / 3.0, 1e-9)
                    break
                d.qpos[:] = q0
                lam *= 4.0
            else:
                break

    def _cable_energy(self) -> tuple[float, np.ndarray]:
        """Potential energy (J) at ``data.qpos`` and its gradient over the cable dofs
        ``(3 * cable_segments,)`` (N m), with all velocities zero."""
        m, d = self.model, self.data
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_energyPos(m, d)
        mujoco.mj_rne(m, d, 0, self._bias)
        mujoco.mj_passive(m, d)
        return float(d.energy[0]), (self._bias - d.qfrc_passive)[self._cable_dofs]

    # ------------------------------------------------------------------ keypoints, reward
    def _keypoints_world(self) -> np.ndarray:
        d = self.data
        socket = d.site_xpos[self._opening_site].copy()
        tip = tip_keypoint(d.site_xpos[self._tip_site], socket)
        return np.stack([tip, d.site_xpos[self._base_site].copy(), socket])

    def _keypoint_own_bodies(self) -> list[frozenset[int]]:
        # plug_tip / plug_base lie on the plug's axis, inside its housing (and the base inside
        # the last cable segment): those parts must not hide them. The socket keypoint is a
        # surface point and owns nothing.
        plug_parts = frozenset({self._plug_id, self._last_segment_id})
        return [plug_parts, plug_parts, frozenset()]

    def gripper_in_safety_box(self) -> bool:
        """Whether the gripper is inside the safety box around the socket."""
        (dx, dy), (zmin, zmax) = self.options["safety_box"]
        pos = self.data.xpos[self._gripper_id]
        sock = self.data.mocap_pos[self._socket_mocap]
        return bool(abs(pos[0] - sock[0]) <= dx and abs(pos[1] - sock[1]) <= dy
                    and zmin <= pos[2] <= zmax)

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        error = insertion_error(keypoints)
        success = insertion_success(keypoints, threshold=self.options["success_threshold"])
        left = not self.gripper_in_safety_box()
        o = self.options
        reward = insertion_reward(error, success, left, reward_length=o["reward_length"],
                                  success_bonus=o["success_bonus"],
                                  safety_penalty=o["safety_penalty"])
        extra = {
            "insertion_error": error,
            "left_safety_box": left,
            "plug_tip_true": self.data.site_xpos[self._tip_site].astype(np.float32),
        }
        return reward, success, extra

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Base step, plus termination when the gripper has left the safety box."""
        obs, reward, terminated, truncated, info = super().step(action)
        if info["left_safety_box"]:
            terminated = True
        return obs, reward, terminated, truncated, info


class CableInsertShortEnv(CableInsertEnv):
    """``S3K-CableInsertShort-v0``: the cable task with the plug held close, as in the paper.

    :class:`CableInsertEnv` with ``cable_segments`` = 4 (6 cm of cable between the fingers and
    the plug instead of 18 cm), ``max_total_bend`` = 1.2 rad (the short cable holds its bend
    against gravity better; the cap keeps the plug's rest tilt within about the default's
    range) and the gripper starting 12 cm lower (``gripper_height_range`` (0.18, 0.22) m), so
    that the plug starts about as high above the socket as in the default env. Everything
    else (cameras, keypoints, success rule, reward, safety box, 4 Hz control, 6-D velocity
    actions, 40-step limit) is the default env's; every option can still be overridden. See
    the module docstring for why and for both envs' numbers.
    """

    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        **CableInsertEnv.TASK_OPTIONS,
        "cable_segments": 4,
        "gripper_height_range": (0.18, 0.22),
        "max_total_bend": 1.2,
    }
