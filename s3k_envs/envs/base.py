"""MultiViewEnv: a MuJoCo manipulation scene seen through a randomized calibrated camera rig.

Subclasses add their objects to the scene (``_build_task``), place them on reset
(``_reset_task``), say where their keypoints are (``_keypoints_world``) and define reward and
success (``_task_reward``). Everything else — the floating gripper and its velocity control,
the camera rig, rendering, the observation dict, input validation and instability handling —
lives here.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from s3k_envs.cameras import CameraRig, camera_calibration
from s3k_envs.geometry import project
from s3k_envs.rendering import MultiViewRenderer, tile_layout
from s3k_envs.visibility import keypoint_visibility
from s3k_envs.viz import mosaic

# MuJoCo's own threshold for "huge" state values (mjMAXVAL) is 1e10; we stop far earlier
# because nothing in these scenes legitimately moves at km/s.
_MAX_QVEL = 1e3
_BAD_STATE_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
)
_SITE_GROUP = 5  # sites are annotations, never rendered


class MultiViewEnv(gym.Env):
    """Base class of the S3K envs: floating gripper + task objects + C calibrated cameras.

    Observation (``spaces.Dict``):
        images ``(C, H, W, 3)`` uint8; intrinsics ``(C, 3, 3)`` float32 (pixels);
        extrinsics ``(C, 4, 4)`` float32 world→camera (OpenCV axes); gripper_pos ``(3,)`` m;
        gripper_quat ``(4,)`` w-first; gripper_linvel ``(3,)`` m/s; gripper_angvel ``(3,)``
        rad/s (world frame).
    Action: ``(6,)`` float32 in [-1, 1]: linear (x, y, z) and angular (x, y, z) velocity of the
        gripper in the world frame, scaled by ``max_linear_speed`` (m/s) and
        ``max_angular_speed`` (rad/s) and held for one control period (``1/control_hz`` s).
    Info: ``keypoints (K, 3)`` world m, ``keypoints_2d (C, K, 2)`` px, ``keypoints_visible
        (C, K)`` bool (in front of the camera, inside the image and not occluded, by ray
        casting), ``is_success``, ``sim_unstable``.

    Options (keyword arguments of ``gymnasium.make``; unknown ones raise ``ValueError``):
        render_mode: None or "rgb_array" (``render()`` returns a mosaic of the C views).
        image_size: int or (height, width) in pixels, default 128.
        num_cameras: C, default 4.
        camera_distance, camera_elevation, camera_fovy: (min, max) in m / rad / rad.
        camera_azimuth_jitter (rad), camera_lookat_jitter (m), camera_target (3,) m.
        camera_seed: None (default: a new rig every reset, drawn from the episode's seed) or
            an int: the rig is drawn once from this seed and kept for every episode, like the
            fixed calibrated cameras of a robot cell (what RL comparisons usually want).
        control_hz: control frequency, default 4 Hz.
        timestep: physics timestep in s.
        max_linear_speed (m/s), max_angular_speed (rad/s): action scale.
        gripper_bounds: ((xmin, ymin, zmin), (xmax, ymax, zmax)) box the gripper target is
            kept in, m.
        terminate_on_success: end the episode when the task succeeds.
        images: True (default) or False: no ``images`` entry in the observation and no
            rendering on ``step``/``reset`` (state-based agents; ``render()`` still renders on
            demand). ``info`` is unchanged.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    #: Default options of every env; subclasses extend this with ``TASK_OPTIONS``.
    BASE_OPTIONS: ClassVar[dict[str, Any]] = {
        "render_mode": None,
        "image_size": 128,
        "num_cameras": 4,
        "camera_target": (0.0, 0.0, 0.04),
        "camera_distance": (0.38, 0.52),
        "camera_elevation": (math.radians(30), math.radians(65)),
        "camera_azimuth_jitter": math.radians(20),
        "camera_lookat_jitter": 0.03,
        "camera_fovy": (math.radians(40), math.radians(50)),
        "camera_seed": None,
        "control_hz": 4.0,
        "timestep": 0.005,
        "max_linear_speed": 0.2,
        "max_angular_speed": 1.0,
        "gripper_bounds": ((-0.3, -0.3, 0.0), (0.3, 0.3, 0.4)),
        "terminate_on_success": True,
        "images": True,
    }
    TASK_OPTIONS: ClassVar[dict[str, Any]] = {}

    #: Names of the task's keypoints, in the order of ``info["keypoints"]``.
    keypoint_names: tuple[str, ...] = ()

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """All options this env accepts, with their defaults."""
        return {**cls.BASE_OPTIONS, **cls.TASK_OPTIONS}

    def __init__(self, **options: Any) -> None:
        defaults = self.default_options()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown option(s) {unknown}; "
                f"valid options are {sorted(defaults)}"
            )
        self.options: dict[str, Any] = {**defaults, **options}
        opts = self.options
        if opts["render_mode"] not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode: expected None or one of {self.metadata['render_modes']}, "
                f"got {opts['render_mode']!r}"
            )
        self.render_mode = opts["render_mode"]
        self.height, self.width = self._parse_image_size(opts["image_size"])
        self.rig = CameraRig(
            target=tuple(opts["camera_target"]),
            num_cameras=opts["num_cameras"],
            distance=opts["camera_distance"],
            elevation=opts["camera_elevation"],
            azimuth_jitter=opts["camera_azimuth_jitter"],
            lookat_jitter=opts["camera_lookat_jitter"],
            fovy=opts["camera_fovy"],
        )
        self.num_cameras = int(opts["num_cameras"])
        seed = opts["camera_seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"camera_seed: expected None or an int >= 0, got {seed!r}")
        if not isinstance(opts["images"], (bool, np.bool_)):
            raise ValueError(f"images: expected True or False, got {opts['images']!r}")
        self._fixed_camera_poses: list[Any] | None = None
        if not opts["control_hz"] > 0 or not opts["timestep"] > 0:
            raise ValueError(
                f"control_hz and timestep must be positive, got {opts['control_hz']!r}, "
                f"{opts['timestep']!r}"
            )
        period = 1.0 / opts["control_hz"]
        self.n_substeps = max(1, round(period / opts["timestep"]))
        if abs(self.n_substeps * opts["timestep"] - period) > 1e-9 * period + 1e-12:
            raise ValueError(
                f"timestep {opts['timestep']} s must divide the control period {period} s "
                f"(control_hz={opts['control_hz']}) into a whole number of physics steps"
            )
        bounds = np.asarray(opts["gripper_bounds"], dtype=np.float64)
        if bounds.shape != (2, 3) or np.any(bounds[0] > bounds[1]):
            raise ValueError(
                f"gripper_bounds: expected ((xmin, ymin, zmin), (xmax, ymax, zmax)), got "
                f"{opts['gripper_bounds']!r}"
            )
        self.gripper_bounds = bounds
        self._validate_task_options()

        spec = self._build_spec()
        self.model: mujoco.MjModel = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._cam_ids = self.rig.camera_ids(self.model)
        self._gripper_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "gripper")
        self._mocap_id = int(
            self.model.body_mocapid[
                mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "gripper_target")
            ]
        )
        self._bind_task()
        self._renderer: MultiViewRenderer | None = None
        self._intrinsics = np.zeros((self.num_cameras, 3, 3))
        self._extrinsics = np.zeros((self.num_cameras, 4, 4))
        self._last_images: np.ndarray | None = None
        self._needs_reset = True

        c, h, w = self.num_cameras, self.height, self.width
        inf = np.inf
        self.observation_space = spaces.Dict(
            {
                **({"images": spaces.Box(0, 255, (c, h, w, 3), np.uint8)}
                   if self.options["images"] else {}),
                "intrinsics": spaces.Box(-inf, inf, (c, 3, 3), np.float32),
                "extrinsics": spaces.Box(-inf, inf, (c, 4, 4), np.float32),
                "gripper_pos": spaces.Box(-inf, inf, (3,), np.float32),
                "gripper_quat": spaces.Box(-1.0, 1.0, (4,), np.float32),
                "gripper_linvel": spaces.Box(-inf, inf, (3,), np.float32),
                "gripper_angvel": spaces.Box(-inf, inf, (3,), np.float32),
                **self._extra_observation_space(),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (6,), np.float32)

    # ------------------------------------------------------------------ scene assembly
    @staticmethod
    def _parse_image_size(size: Any) -> tuple[int, int]:
        if isinstance(size, (int, np.integer)):
            height = width = int(size)
        else:
            try:
                height, width = (int(s) for s in size)
            except (TypeError, ValueError):
                raise ValueError(
                    f"image_size: expected an int or (height, width), got {size!r}"
                ) from None
        if not (8 <= height <= 4096 and 8 <= width <= 4096):
            raise ValueError(f"image_size: expected 8..4096 pixels, got {(height, width)}")
        return height, width

    def _build_spec(self) -> mujoco.MjSpec:
        spec = mujoco.MjSpec()
        spec.modelname = type(self).__name__
        opt = spec.option
        opt.timestep = float(self.options["timestep"])
        opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        opt.impratio = 10.0
        # Rendering cost is dominated by shadows and MSAA, not resolution (DESIGN.md).
        q = spec.visual.quality
        q.shadowsize, q.offsamples, q.numslices, q.numstacks, q.numquads = 0, 0, 12, 6, 1
        rows, cols = tile_layout(self.num_cameras)
        spec.visual.global_.offwidth = max(cols * self.width, 64)
        spec.visual.global_.offheight = max(rows * self.height, 64)
        spec.visual.map.znear = 0.01
        spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
        spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
        spec.visual.headlight.specular = [0.1, 0.1, 0.1]

        light = spec.worldbody.add_light(name="sun")
        light.pos = [0.3, -0.3, 1.5]
        light.dir = [-0.2, 0.2, -1.0]
        light.diffuse = [0.5, 0.5, 0.5]
        light.castshadow = False

        self._add_table(spec)
        self._add_gripper(spec)
        self.rig.add_to_spec(spec)
        self._build_task(spec)
        return spec

    def _add_table(self, spec: mujoco.MjSpec) -> None:
        tex = spec.add_texture(name="table_tex", type=mujoco.mjtTexture.mjTEXTURE_2D)
        tex.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
        tex.width = tex.height = 256
        tex.rgb1 = [0.52, 0.45, 0.38]
        tex.rgb2 = [0.47, 0.40, 0.34]
        mat = spec.add_material(name="table_mat")
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "table_tex"
        mat.texrepeat = [8, 8]
        mat.texuniform = True
        table = spec.worldbody.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_PLANE)
        table.size = [3.0, 3.0, 0.05]  # large enough that no camera sees its edge
        table.material = "table_mat"

    def _add_gripper(self, spec: mujoco.MjSpec) -> None:
        """Floating two-finger gripper: free body with gravity compensation, welded to a mocap
        target that the velocity actions move. Its frame origin is the tool centre point
        between the fingertips; with identity orientation the fingers point down (-z)."""
        target = spec.worldbody.add_body(name="gripper_target", mocap=True)
        target.pos = [0.0, 0.0, 0.2]
        body = spec.worldbody.add_body(name="gripper", gravcomp=1.0)
        body.pos = [0.0, 0.0, 0.2]
        body.add_freejoint(name="gripper_free")
        grey = [0.25, 0.27, 0.3, 1.0]
        dark = [0.12, 0.12, 0.14, 1.0]
        parts = [
            ("gripper_palm", mujoco.mjtGeom.mjGEOM_BOX, [0.012, 0.035, 0.008], [0, 0, 0.053], grey),
            ("gripper_wrist", mujoco.mjtGeom.mjGEOM_CYLINDER, [0.018, 0.02, 0], [0, 0, 0.08], dark),
            ("gripper_finger_l", mujoco.mjtGeom.mjGEOM_BOX, [0.008, 0.005, 0.025],
             [0, 0.022, 0.02], grey),
            ("gripper_finger_r", mujoco.mjtGeom.mjGEOM_BOX, [0.008, 0.005, 0.025],
             [0, -0.022, 0.02], grey),
        ]
        for name, gtype, size, pos, rgba in parts:
            geom = body.add_geom(name=name, type=gtype, size=size, pos=pos, rgba=rgba)
            geom.density = 500.0
            geom.friction = [1.0, 0.01, 0.001]
        body.add_site(name="tcp", pos=[0, 0, 0], size=[0.004, 0, 0], group=_SITE_GROUP)
        weld = spec.add_equality(name="gripper_weld", type=mujoco.mjtEq.mjEQ_WELD)
        weld.objtype = mujoco.mjtObj.mjOBJ_BODY
        weld.name1 = "gripper"
        weld.name2 = "gripper_target"
        weld.solref = [0.02, 1.0]
        # Explicit weld data: anchor at the gripper origin, identity relative pose, torque
        # scale 1. (MjSpec's default data is the "unspecified" sentinel, which left a 1 m
        # lever arm in the constraint and made the gripper lag and overshoot.)
        data = np.zeros(len(weld.data))
        data[6] = 1.0  # relpose quaternion w
        data[10] = 1.0  # torquescale
        weld.data = data

    # ------------------------------------------------------------------ subclass hooks
    def _validate_task_options(self) -> None:
        """Check ``self.options`` entries of the task; raise ``ValueError`` on bad values."""

    def _build_task(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies to the spec (called once, before compiling)."""

    def _bind_task(self) -> None:
        """Look up ids in the compiled ``self.model`` (called once after compiling)."""

    def _reset_task(self, rng: np.random.Generator) -> None:
        """Place the task's objects for a new episode (qpos etc.; ``mj_forward`` follows)."""

    def _keypoints_world(self) -> np.ndarray:
        """``(K, 3)`` world positions of the task's keypoints in metres."""
        return np.zeros((0, 3))

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        """Reward, success flag and extra info for the current state."""
        return 0.0, False, {}

    def _keypoint_own_bodies(self) -> list[frozenset[int]]:
        """Per keypoint, the bodies whose geoms do not occlude it (default: none).

        Keypoints on an object's surface (box corners) own nothing, so the object hides its
        own far side. A keypoint *inside* a thin part (e.g. on a plug's axis, where a cable
        joins it) names those parts, so it counts as visible unless something else is in
        the way.
        """
        return [frozenset() for _ in self.keypoint_names]

    def _extra_observation_space(self) -> dict[str, spaces.Space]:
        return {}

    def _extra_observation(self) -> dict[str, np.ndarray]:
        return {}

    def _initial_gripper_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Gripper start: ``(3,)`` position m and ``(4,)`` w-first quaternion."""
        pos = rng.uniform([-0.1, -0.1, 0.1], [0.1, 0.1, 0.18])
        yaw = rng.uniform(-math.pi / 2, math.pi / 2)
        return pos, np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: new camera rig (unless ``camera_seed`` fixes it), gripper pose and
        task layout from ``np_random``."""
        super().reset(seed=seed)
        if options:
            raise ValueError(
                f"reset options are not supported (got {sorted(options)}); pass options to "
                "gymnasium.make instead"
            )
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        rng = self.np_random
        if self.options["camera_seed"] is None:
            poses = self.rig.sample(rng)
        else:  # fixed cameras: drawn once, from their own seed (the episode rng is not used)
            if self._fixed_camera_poses is None:
                cam_rng = np.random.default_rng(int(self.options["camera_seed"]))
                self._fixed_camera_poses = self.rig.sample(cam_rng)
            poses = self._fixed_camera_poses
        self.rig.apply(m, poses)
        pos, quat = self._initial_gripper_pose(rng)
        pos = np.clip(pos, *self.gripper_bounds)
        adr = m.jnt_qposadr[m.body_jntadr[self._gripper_id]]
        d.qpos[adr : adr + 3] = pos
        d.qpos[adr + 3 : adr + 7] = quat
        d.mocap_pos[self._mocap_id] = pos
        d.mocap_quat[self._mocap_id] = quat
        self._reset_task(rng)
        mujoco.mj_forward(m, d)
        self._warning_counts = self._bad_warning_count()
        self._needs_reset = False
        intr, extr = camera_calibration(m, d, self._cam_ids, self.width, self.height)
        # Keep the float32-rounded calibration the user observes, so that projecting
        # info["keypoints"] with the observed matrices reproduces info["keypoints_2d"].
        self._intrinsics = intr.astype(np.float32).astype(np.float64)
        self._extrinsics = extr.astype(np.float32).astype(np.float64)
        obs = self._observation()
        keypoints = self._keypoints_world()
        _, success, extra = self._task_reward(keypoints)
        return obs, self._info(keypoints, success, extra, unstable=False)

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a 6-D velocity command for one control period (``n_substeps`` physics steps)."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        m, d = self.model, self.data
        saved = self._save_state()
        lin = action[:3] * self.options["max_linear_speed"]
        ang = action[3:] * self.options["max_angular_speed"]
        positions, quats = self._mocap_trajectory(lin, ang)
        mpos = d.mocap_pos[self._mocap_id]
        mquat = d.mocap_quat[self._mocap_id]
        for i in range(self.n_substeps):
            mpos[:] = positions[i]
            if quats is not None:
                mquat[:] = quats[i]
            mujoco.mj_step(m, d)
        unstable = self._is_unstable()
        if unstable:
            self._restore_state(saved)
        keypoints = self._keypoints_world()
        reward, success, extra = self._task_reward(keypoints)
        obs = self._observation()
        terminated = unstable or (success and bool(self.options["terminate_on_success"]))
        if unstable:
            self._needs_reset = True
        return obs, float(reward), bool(terminated), False, self._info(
            keypoints, success, extra, unstable
        )

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: mosaic of the latest C camera images (uint8)."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if not self.options["images"]:  # nothing rendered on step: render now
            if self._needs_reset:
                raise RuntimeError("call reset() before render()")
            return mosaic(self._render_images())
        if self._last_images is None:
            raise RuntimeError("call reset() before render()")
        return mosaic(self._last_images)

    def close(self) -> None:
        """Free the renderer (its GL context is made current first, see ``rendering.py``)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ internals
    def _check_action(self, action: Any) -> np.ndarray:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected 6 numbers, got {action!r}") from None
        if arr.shape != (6,):
            raise ValueError(
                f"action: expected shape (6,) (linear xyz, angular xyz), got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action: expected finite values, got {arr.tolist()}")
        return np.clip(arr, -1.0, 1.0)

    def _mocap_trajectory(
        self, lin: np.ndarray, ang: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mocap target after each substep for a constant world-frame velocity command.

        Args:
            lin: ``(3,)`` linear velocity, m/s. ang: ``(3,)`` angular velocity, rad/s.

        Returns:
            positions ``(n_substeps, 3)`` clipped to ``gripper_bounds``, and quaternions
            ``(n_substeps, 4)`` (``exp(w t) * q0``, world frame) or None when not rotating.
        """
        d = self.data
        dt = self.model.opt.timestep
        steps = np.arange(1, self.n_substeps + 1)[:, None] * dt
        positions = np.clip(d.mocap_pos[self._mocap_id] + steps * lin, *self.gripper_bounds)
        speed = float(np.linalg.norm(ang))
        if speed == 0.0:
            return positions, None
        half = 0.5 * speed * steps  # (n, 1)
        dq = np.concatenate([np.cos(half), np.sin(half) * (ang / speed)], axis=1)  # (n, 4)
        # dq * q0 is linear in dq: one (n,4)x(4,4) product instead of n quaternion products.
        w, x, y, z = d.mocap_quat[self._mocap_id]
        right_mult = np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])
        return positions, dq @ right_mult.T

    def _bad_warning_count(self) -> int:
        return int(sum(self.data.warning[w].number for w in _BAD_STATE_WARNINGS))

    def _is_unstable(self) -> bool:
        d = self.data
        if self._bad_warning_count() != self._warning_counts:
            self._warning_counts = self._bad_warning_count()
            return True
        # Written so that NaN fails the comparisons: one reduction per array.
        if not np.isfinite(d.qpos.sum()):
            return True
        return not bool(np.abs(d.qvel).max(initial=0.0) <= _MAX_QVEL)

    def _save_state(self) -> tuple[np.ndarray, ...]:
        d = self.data
        return (d.time, d.qpos.copy(), d.qvel.copy(), d.act.copy(), d.mocap_pos.copy(),
                d.mocap_quat.copy(), d.qacc_warmstart.copy())

    def _restore_state(self, saved: tuple[np.ndarray, ...]) -> None:
        d = self.data
        d.time = saved[0]
        d.qpos[:], d.qvel[:], d.act[:] = saved[1], saved[2], saved[3]
        d.mocap_pos[:], d.mocap_quat[:], d.qacc_warmstart[:] = saved[4], saved[5], saved[6]
        mujoco.mj_forward(self.model, d)

    def _render_images(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = MultiViewRenderer(
                self.model, self.height, self.width, self.num_cameras
            )
        out = np.empty((self.num_cameras, self.height, self.width, 3), dtype=np.uint8)
        return self._renderer.render(self.data, self._cam_ids, out)

    def _gripper_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(
            self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, self._gripper_id, vel, 0
        )
        return vel[3:], vel[:3]

    def _observation(self) -> dict[str, np.ndarray]:
        images = None
        if self.options["images"]:
            images = self._render_images()
            self._last_images = images
        linvel, angvel = self._gripper_velocity()
        d = self.data
        return {
            **({"images": images} if images is not None else {}),
            "intrinsics": self._intrinsics.astype(np.float32),
            "extrinsics": self._extrinsics.astype(np.float32),
            "gripper_pos": d.xpos[self._gripper_id].astype(np.float32),
            "gripper_quat": d.xquat[self._gripper_id].astype(np.float32),
            "gripper_linvel": linvel.astype(np.float32),
            "gripper_angvel": angvel.astype(np.float32),
            **self._extra_observation(),
        }

    def keypoint_visibility(self, keypoints: np.ndarray, uv: np.ndarray, depth: np.ndarray,
                            tolerance: float = 3e-3) -> np.ndarray:
        """Which keypoints each camera sees.

        Args:
            keypoints: ``(K, 3)`` world points, m.
            uv: ``(C, K, 2)`` their projections, px; depth ``(C, K)`` m.
            tolerance: a ray hit closer than ``distance - tolerance`` (m) counts as occlusion.

        Returns:
            ``(C, K)`` bool: in front of the camera, inside the image, and the first surface a
            ray from the camera centre towards the point meets is not in front of it.
        """
        return keypoint_visibility(
            self.model, self.data, keypoints, uv, depth, self.data.cam_xpos[self._cam_ids],
            (self.width, self.height), self._keypoint_own_bodies(), tolerance)

    def _info(self, keypoints: np.ndarray, success: bool, extra: dict[str, Any],
              unstable: bool) -> dict[str, Any]:
        uv, depth = project(keypoints, self._intrinsics, self._extrinsics)
        visible = self.keypoint_visibility(keypoints, uv, depth)
        return {
            "keypoints": keypoints.astype(np.float32),
            "keypoints_2d": uv.astype(np.float32),
            "keypoints_visible": visible,
            "is_success": bool(success),
            "sim_unstable": bool(unstable),
            **extra,
        }
