"""MultiViewCameras: a randomized, calibrated camera rig for any MuJoCo-based Gymnasium env.

Wrap an env that exposes ``env.unwrapped.model`` (``mujoco.MjModel``) and
``env.unwrapped.data`` (``mujoco.MjData``), e.g. Gymnasium's ``Pusher-v5`` or ``Reacher-v5``,
and it becomes a multi-view env in the S3K layout (``docs/conventions.md``): C images with
their intrinsics and extrinsics in the observation, ground-truth keypoints of chosen
bodies / sites / geoms in ``info``.

The wrapped model is not edited: the views are MuJoCo *free* cameras (``mjvCamera`` with
``lookat`` / ``distance`` / ``azimuth`` / ``elevation``), which live outside the model, and
the calibration is computed from the same parameters MuJoCo places them with. Every reset
draws a new rig from the reset seed (``randomize="reset"``), so a dataset sees a new set of
viewpoints per sample.

:func:`register_multiview` turns a wrapped env into a Gymnasium id (so that ``s3k generate``,
``gymnasium.make`` and dataset worker processes can build it); ``S3K-Pusher-v0`` is
registered this way on ``import s3k_envs``.

This module imports only Gymnasium and numpy at import time (registration must stay cheap);
MuJoCo, the renderer and the geometry helpers are imported when a wrapper is created.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from s3k_envs.visibility import attached_bodies, keypoint_visibility, same_object_bodies

if TYPE_CHECKING:
    import mujoco

    from s3k_envs.cameras import CameraPose

#: Keypoint kinds: ``kind:name`` -> a position in the world frame.
#: site: ``data.site_xpos``; body: the body frame origin ``data.xpos``; com: the body's centre
#: of mass ``data.xipos``; geom: the geom centre ``data.geom_xpos``.
KEYPOINT_KINDS = ("site", "body", "com", "geom")
#: Keys the wrapper adds to the observation.
CAMERA_KEYS = ("images", "intrinsics", "extrinsics")
RANDOMIZE_MODES = ("reset", "once")
#: ``framing``: ``"auto"`` sizes the rig on where the keypoints go (:mod:`s3k_envs.framing`),
#: ``"model"`` on the model's own statistics (``model.stat.center`` / ``extent``).
FRAMING_MODES = ("auto", "model")
#: Render modes the wrapper advertises in its ``metadata`` (it renders the camera mosaic).
RENDER_MODES = ("rgb_array",)
_RIG_STREAM = 0x5C3D  # SeedSequence key of the rig's random stream (independent of the env's)
_ENTRY_POINT = "s3k_envs.wrappers.multiview:make_multiview"
#: Ids of dm_control tasks as Shimmy registers them (``dm_control/reacher-hard-v0``).
DM_CONTROL_NAMESPACE = "dm_control/"


@dataclass(frozen=True)
class KeypointSource:
    """Where one keypoint comes from in the wrapped model.

    Attributes:
        name: the keypoint's name (``keypoint_names`` entry).
        kind: one of :data:`KEYPOINT_KINDS`.
        object_name: name of the site / body / geom in the model.
        object_id: its MuJoCo id.
        own_body: id of the body whose geoms never hide this keypoint (the body it belongs
            to), or -1 for keypoints on the world body (the floor may hide them).
    """

    name: str
    kind: str
    object_name: str
    object_id: int
    own_body: int


def mujoco_handles(env: gym.Env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """The ``mujoco.MjModel`` and ``mujoco.MjData`` an env simulates with.

    Gymnasium's MuJoCo envs keep them as ``env.unwrapped.model`` / ``.data``; dm_control
    tasks (e.g. through Shimmy's ``DmControlCompatibilityV0``, ids ``dm_control/...``) as
    ``physics.model.ptr`` / ``physics.data.ptr``.

    Raises:
        ValueError: the env has neither.
    """
    import mujoco

    base = env.unwrapped
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if not (isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData)):
        try:
            physics = base.physics
            model, data = physics.model.ptr, physics.data.ptr
        except AttributeError:
            pass
    if not (isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData)):
        raise ValueError(
            f"MultiViewCameras: expected a MuJoCo-based env whose unwrapped env has "
            f"`model` (mujoco.MjModel) and `data` (mujoco.MjData), or a dm_control `physics`, "
            f"got {type(base).__name__} with model={type(model).__name__}, "
            f"data={type(data).__name__}"
        )
    return model, data


def _named(model: mujoco.MjModel, obj: Any, count: int) -> list[str]:
    import mujoco

    names = [mujoco.mj_id2name(model, obj, i) for i in range(count)]
    return [n for n in names if n]


def resolve_keypoints(model: mujoco.MjModel,
                      keypoints: Sequence[str] | Mapping[str, str] | None) -> list[KeypointSource]:
    """Look up keypoint specifications in a compiled model.

    Args:
        model: the wrapped env's model.
        keypoints: ``"kind:name"`` strings (kind in :data:`KEYPOINT_KINDS`) or plain names,
            looked up as a site, else a body, else a geom; or a mapping ``{keypoint name:
            spec}`` to choose the keypoint names. With a sequence the names are the specs
            without their ``kind:`` prefix. None: no keypoints.

    Returns:
        K :class:`KeypointSource` in the given order.

    Raises:
        ValueError: an unknown kind or name (the message lists the valid names), or two
            keypoints with the same name.
    """
    import mujoco

    if keypoints is None:
        return []
    if isinstance(keypoints, str):
        raise ValueError(f"keypoints: expected a sequence of names or a mapping, got the "
                         f"string {keypoints!r} (write ({keypoints!r},) for one keypoint)")
    if isinstance(keypoints, Mapping):
        items = [(str(k), v) for k, v in keypoints.items()]
    else:
        items = [(None, v) for v in keypoints]
    objs = {
        "site": (mujoco.mjtObj.mjOBJ_SITE, model.nsite),
        "body": (mujoco.mjtObj.mjOBJ_BODY, model.nbody),
        "com": (mujoco.mjtObj.mjOBJ_BODY, model.nbody),
        "geom": (mujoco.mjtObj.mjOBJ_GEOM, model.ngeom),
    }

    def valid() -> str:
        parts = []
        for kind, plural in (("site", "sites"), ("body", "bodies"), ("geom", "geoms")):
            names = _named(model, objs[kind][0], objs[kind][1])
            shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)"
                                               if len(names) > 40 else "")
            parts.append(f"{plural}: [{shown}]")
        return "; ".join(parts)

    sources: list[KeypointSource] = []
    for given_name, spec in items:
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"keypoints: expected names like 'body:NAME', got {spec!r}")
        kind, sep, obj_name = spec.partition(":")
        if sep:
            if kind not in KEYPOINT_KINDS:
                raise ValueError(f"keypoint {spec!r}: unknown kind {kind!r}; expected one of "
                                 f"{list(KEYPOINT_KINDS)}")
            obj_id = mujoco.mj_name2id(model, objs[kind][0], obj_name)
        else:
            obj_name, obj_id, kind = spec, -1, ""
            for candidate in ("site", "body", "geom"):
                obj_id = mujoco.mj_name2id(model, objs[candidate][0], obj_name)
                if obj_id >= 0:
                    kind = candidate
                    break
        if obj_id < 0:
            what = f"{kind} " if sep else "site, body or geom "
            raise ValueError(f"keypoint {spec!r}: the model has no {what}named {obj_name!r}; "
                             f"valid names: {valid()} (prefix a name with site:, body:, com: or "
                             "geom: to choose the kind)")
        if kind == "site":
            body = int(model.site_bodyid[obj_id])
        elif kind == "geom":
            body = int(model.geom_bodyid[obj_id])
        else:
            body = int(obj_id)
        sources.append(KeypointSource(given_name or obj_name, kind, obj_name, int(obj_id),
                                      body if body > 0 else -1))
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"keypoints: names {duplicates} occur more than once; pass a mapping "
                         "{keypoint name: 'kind:name'} to name them apart")
    return sources


def keypoint_positions(data: mujoco.MjData, sources: Sequence[KeypointSource]) -> np.ndarray:
    """``(K, 3)`` float64 world positions (m) of the keypoints in the current ``data``."""
    out = np.zeros((len(sources), 3))
    for k, s in enumerate(sources):
        if s.kind == "site":
            out[k] = data.site_xpos[s.object_id]
        elif s.kind == "body":
            out[k] = data.xpos[s.object_id]
        elif s.kind == "com":
            out[k] = data.xipos[s.object_id]
        else:
            out[k] = data.geom_xpos[s.object_id]
    return out


def _image_size(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    else:
        try:
            height, width = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_size: expected an int or (height, width) in pixels, got {size!r}"
            ) from None
    if not (8 <= height <= 4096 and 8 <= width <= 4096):
        raise ValueError(f"image_size: expected 8..4096 pixels, got {(height, width)}")
    return height, width


def free_camera(pose: CameraPose) -> mujoco.MjvCamera:
    """The MuJoCo free camera (``mjCAMERA_FREE``) placed at a sampled look-at pose.

    MuJoCo puts a free camera at ``lookat - distance * f`` looking along
    ``f = (cos az cos el, sin az cos el, sin el)`` (azimuth ``az``, elevation ``el`` in
    degrees; image up = world +z projected), which is the pose ``look_at_quat`` gives.

    Args:
        pose: position (3,) m, lookat (3,) m (``fovy`` is not part of a free camera; pass it
            to the renderer).
    """
    import mujoco

    forward = np.asarray(pose.lookat, dtype=np.float64) - np.asarray(pose.position)
    distance = float(np.linalg.norm(forward))
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = pose.lookat
    cam.distance = distance
    cam.azimuth = math.degrees(math.atan2(forward[1], forward[0]))
    cam.elevation = math.degrees(math.asin(max(-1.0, min(1.0, forward[2] / distance))))
    cam.orthographic = 0
    return cam


def free_camera_extrinsics(cameras: Sequence[mujoco.MjvCamera]) -> np.ndarray:
    """World→camera extrinsics (OpenCV axes) of MuJoCo free cameras.

    Mirrors MuJoCo's placement of a free camera: forward ``f`` from azimuth/elevation, up
    ``(-cos az sin el, -sin az sin el, cos el)``, centre ``lookat - distance * f``.

    Args:
        cameras: C ``mjvCamera`` of type free.

    Returns:
        ``(C, 4, 4)`` float64 (see ``geometry.extrinsics_from_mujoco``).
    """
    from s3k_envs.geometry import extrinsics_from_mujoco

    pos, mats = [], []
    for cam in cameras:
        az, el = math.radians(cam.azimuth), math.radians(cam.elevation)
        forward = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el),
                            math.sin(el)])
        up = np.array([-math.cos(az) * math.sin(el), -math.sin(az) * math.sin(el),
                       math.cos(el)])
        right = np.cross(forward, up)
        pos.append(np.asarray(cam.lookat, dtype=np.float64) - cam.distance * forward)
        mats.append(np.stack([right, up, -forward], axis=1))  # columns: MuJoCo camera axes
    return extrinsics_from_mujoco(np.asarray(pos).reshape(-1, 3),
                                  np.asarray(mats).reshape(-1, 3, 3))


class MultiViewCameras(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A randomized calibrated rig of C cameras around any MuJoCo-based Gymnasium env.

    Observation (``spaces.Dict``):
        ``images`` ``(C, H, W, 3)`` uint8 (row 0 = top); ``intrinsics`` ``(C, 3, 3)`` float32
        (pixels); ``extrinsics`` ``(C, 4, 4)`` float32 world→camera (OpenCV axes, m); plus the
        wrapped env's observation: a ``Dict`` observation is merged in, any other space goes
        under ``state``.
    Info (added to the wrapped env's info, reset and step):
        ``keypoints`` ``(K, 3)`` float32 world m; ``keypoints_2d`` ``(C, K, 2)`` float32 px
        (``(u, v)``, top-left corner origin); ``keypoints_visible`` ``(C, K)`` bool: in front
        of the camera, inside the image and not occluded (a ray from the camera centre meets
        no rendered geom of another body more than ``occlusion_tolerance`` before it; the
        geoms of the keypoint's own body, its parent and its children, and geoms of the same
        articulated object that contain the point, never hide it: ``s3k_envs.visibility``).
        The keypoint order is :attr:`keypoint_names` (``env.get_wrapper_attr
        ("keypoint_names")``).

    Images and keypoints are read from the wrapped env's ``data`` as the env leaves it after
    ``reset`` / ``step`` (no extra ``mj_forward``: the wrapped env's dynamics are untouched).

    Camera ``c`` sits at azimuth ``phi0 + 2 pi c / C + jitter`` around ``target`` (``phi0``
    uniform), with elevation and distance uniform in their ranges, looking at ``target`` plus
    up to ``lookat_jitter`` per axis, with a vertical field of view uniform in ``fovy``
    (``s3k_envs.cameras.CameraRig``).

    Args:
        env: env with ``unwrapped.model`` (``mujoco.MjModel``) and ``unwrapped.data``.
        num_cameras: C >= 1.
        image_size: int or ``(height, width)`` pixels of each view.
        keypoints: keypoint specifications (see :func:`resolve_keypoints`): ``"body:NAME"``
            (frame origin), ``"com:NAME"`` (body centre of mass), ``"site:NAME"``,
            ``"geom:NAME"`` (geom centre), plain names (site, else body, else geom), or a
            mapping ``{keypoint name: spec}``. None: no keypoints (K = 0).
        target: ``(3,)`` look-at point, m; default: see ``framing``.
        distance: (min, max) camera-to-target distance, m; default: see ``framing``.
        elevation: (min, max) angle above the horizontal, rad, within (-pi/2, pi/2).
        azimuth_jitter: max deviation from the even azimuth spacing, rad.
        lookat_jitter: max per-axis offset of each camera's look-at point, m; default
            10 % of the framed radius (``framing="auto"``) or ``0.05 * model.stat.extent``.
        fovy: (min, max) vertical field of view, rad.
        randomize: ``"reset"``: a new rig at every reset; ``"once"``: the rig of the first
            reset is kept. Either way the rig is a function of the reset seed.
        fast_render: render the views without shadows and multisampling (their GL context
            is created with ``shadowsize = offsamples = 0``; the model's own values are
            restored at once): with software GL a Pusher-v5 step with 4 views of 128 px
            took 28 ms instead of 743 ms. False keeps the model's quality.
        occlusion_tolerance: m, see ``keypoints_visible``.
        framing: how ``target`` / ``distance`` / ``lookat_jitter`` are chosen when not given.
            ``"auto"`` (with keypoints): play 8 resets (seeds 0..7) of ``env`` with 20
            random actions each, and frame where the keypoints went so that they fill ~80 %
            of the narrower image side (:mod:`s3k_envs.framing`; the result is
            :attr:`framing`). It resets ``env`` at construction, so reset again before
            use. ``"model"``, or no keypoints: ``model.stat.center`` and ``(1.0, 1.4) *
            model.stat.extent`` (the whole scene, often far too wide).

    Raises:
        ValueError: an env without ``model`` / ``data``, unknown keypoint names, an
            observation ``Dict`` that already has ``images`` / ``intrinsics`` /
            ``extrinsics``, or out-of-range options.
    """

    #: Options of the constructor (besides ``env``), for :func:`make_multiview`.
    OPTIONS: ClassVar[tuple[str, ...]] = (
        "num_cameras", "image_size", "keypoints", "target", "distance", "elevation",
        "azimuth_jitter", "lookat_jitter", "fovy", "randomize", "fast_render", "framing",
        "occlusion_tolerance",
    )

    def __init__(
        self,
        env: gym.Env,
        num_cameras: int = 4,
        image_size: int | Sequence[int] = 128,
        keypoints: Sequence[str] | Mapping[str, str] | None = None,
        target: Sequence[float] | None = None,
        distance: Sequence[float] | None = None,
        elevation: Sequence[float] = (math.radians(20), math.radians(60)),
        azimuth_jitter: float = math.radians(20),
        lookat_jitter: float | None = None,
        fovy: Sequence[float] = (math.radians(40), math.radians(50)),
        randomize: str = "reset",
        fast_render: bool = True,
        occlusion_tolerance: float = 3e-3,
        framing: str = "auto",
    ) -> None:
        import mujoco

        from s3k_envs.cameras import CameraRig

        gym.utils.RecordConstructorArgs.__init__(
            self, num_cameras=num_cameras, image_size=image_size, keypoints=keypoints,
            target=target, distance=distance, elevation=elevation,
            azimuth_jitter=azimuth_jitter, lookat_jitter=lookat_jitter, fovy=fovy,
            randomize=randomize, fast_render=fast_render,
            occlusion_tolerance=occlusion_tolerance, framing=framing,
        )
        model, data = mujoco_handles(env)
        super().__init__(env)
        # dm_control tasks (Shimmy) seed a np.random.RandomState: seeds must be < 2**32.
        self._legacy_seeding = not isinstance(getattr(env.unwrapped, "model", None),
                                              mujoco.MjModel)
        # Advertise what this wrapper renders (the mosaic), not the wrapped env's "human".
        self.metadata = {**env.metadata, "render_modes": list(RENDER_MODES)}
        self.model: mujoco.MjModel = model
        self.data: mujoco.MjData = data
        if randomize not in RANDOMIZE_MODES:
            raise ValueError(f"randomize: expected one of {list(RANDOMIZE_MODES)}, got "
                             f"{randomize!r}")
        if not (isinstance(occlusion_tolerance, (int, float)) and occlusion_tolerance >= 0):
            raise ValueError(f"occlusion_tolerance: expected a number >= 0 (m), got "
                             f"{occlusion_tolerance!r}")
        try:
            elev = tuple(float(e) for e in elevation)
        except (TypeError, ValueError):
            elev = ()
        if len(elev) != 2 or not (-math.pi / 2 < elev[0] <= elev[1] < math.pi / 2):
            raise ValueError(f"elevation: expected (min, max) rad with -pi/2 < min <= max < "
                             f"pi/2, got {elevation!r}")
        if framing not in FRAMING_MODES:
            raise ValueError(f"framing: expected one of {list(FRAMING_MODES)}, got {framing!r}")
        self.height, self.width = _image_size(image_size)
        self.keypoint_sources = resolve_keypoints(model, keypoints)
        extent = float(model.stat.extent)
        self.framing = None
        if framing == "auto" and self.keypoint_sources and (target is None or distance is None):
            from s3k_envs.framing import frame_keypoints, sample_keypoints

            points = sample_keypoints(env, lambda: keypoint_positions(data,
                                                                      self.keypoint_sources))
            self.framing = frame_keypoints(points, tuple(fovy), self.width / self.height,
                                           min_radius=0.05 * extent)
            target = self.framing.target if target is None else target
            distance = self.framing.distance if distance is None else distance
            if lookat_jitter is None:
                lookat_jitter = self.framing.lookat_jitter
        if target is None:
            target = tuple(float(v) for v in model.stat.center)
        if distance is None:
            distance = (1.0 * extent, 1.4 * extent)
        if lookat_jitter is None:
            lookat_jitter = 0.05 * extent
        self.rig = CameraRig(target=tuple(target), num_cameras=num_cameras,
                             distance=tuple(distance), elevation=elev,
                             azimuth_jitter=azimuth_jitter, lookat_jitter=lookat_jitter,
                             fovy=tuple(fovy))
        self.num_cameras = int(num_cameras)
        self.randomize = randomize
        self.fast_render = bool(fast_render)
        self.occlusion_tolerance = float(occlusion_tolerance)
        # A body-origin keypoint usually sits on a joint inside the parent link's end cap:
        # the geoms of its body, parent and children never hide it (s3k_envs.visibility).
        self._own_bodies = [attached_bodies(model.body_parentid, s.own_body)
                            for s in self.keypoint_sources]
        self._containing_bodies = [same_object_bodies(model.body_rootid, s.own_body)
                                   for s in self.keypoint_sources]
        self._own_geoms = [frozenset((s.object_id,)) if s.kind == "geom" else frozenset()
                           for s in self.keypoint_sources]

        c, h, w = self.num_cameras, self.height, self.width
        inf = np.inf
        camera_spaces = {
            "images": spaces.Box(0, 255, (c, h, w, 3), np.uint8),
            "intrinsics": spaces.Box(-inf, inf, (c, 3, 3), np.float32),
            "extrinsics": spaces.Box(-inf, inf, (c, 4, 4), np.float32),
        }
        inner = env.observation_space
        if isinstance(inner, spaces.Dict):
            clash = sorted(set(inner.spaces) & set(CAMERA_KEYS))
            if clash:
                raise ValueError(
                    f"MultiViewCameras: the wrapped env's observation already has {clash}; "
                    "it is a multi-view env already (or rename its keys)"
                )
            self._merge = True
            self.observation_space = spaces.Dict({**camera_spaces, **inner.spaces})
        else:
            self._merge = False
            self.observation_space = spaces.Dict({**camera_spaces, "state": inner})

        self._renderer: Any = None
        self._rig_rng: np.random.Generator | None = None
        self._poses: list[CameraPose] = []
        self._cameras: list[mujoco.MjvCamera] = []
        self._intrinsics = np.zeros((c, 3, 3))
        self._extrinsics = np.zeros((c, 4, 4))
        self._centres = np.zeros((c, 3))
        self._last_images: np.ndarray | None = None
        self._geomgroup = np.array(mujoco.MjvOption().geomgroup, dtype=np.uint8)

    # ------------------------------------------------------------------ public attributes
    @property
    def keypoint_names(self) -> tuple[str, ...]:
        """Names of the K keypoints, in the order of ``info["keypoints"]``."""
        return tuple(s.name for s in self.keypoint_sources)

    @property
    def camera_poses(self) -> list[CameraPose]:
        """The current rig: C ``CameraPose`` (position (3,) m, lookat (3,) m, fovy rad,
        quat (4,) w-first MuJoCo camera orientation); empty before the first reset."""
        return list(self._poses)

    def mjv_cameras(self) -> list[tuple[mujoco.MjvCamera, float]]:
        """The current rig as MuJoCo free cameras, with their ``fovy`` in degrees.

        Rendering camera ``c`` with ``mujoco.Renderer`` (``update_scene(data, camera=cam)``)
        while ``model.vis.global_.fovy`` equals its fovy draws the same view as
        ``obs["images"][c]``.
        """
        return [(self._copy_camera(cam), math.degrees(p.fovy))
                for cam, p in zip(self._cameras, self._poses, strict=True)]

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the wrapped env, then draw the rig (from ``seed`` when given) and render.

        Seeds of any size work: the wrapped env gets seeds >= 2**32 folded to 32 bits when it
        only takes those (dm_control tasks seed a legacy ``RandomState``); the rig always
        draws from the full seed."""
        env_seed = seed
        if seed is not None and seed >= 2**32 and self._legacy_seeding:
            env_seed = int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint32)[0])
        obs, info = self.env.reset(seed=env_seed, options=options)
        if seed is not None:
            self._rig_rng = np.random.default_rng(
                np.random.SeedSequence([int(seed), _RIG_STREAM]))
        elif self._rig_rng is None:
            self._rig_rng = np.random.default_rng()
        if self.randomize == "reset" or not self._poses:
            self._set_rig(self.rig.sample(self._rig_rng))
        return self._observation(obs), self._info(info)

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict[str, Any]]:
        """Step the wrapped env and render the rig's views of the new state."""
        if not self._poses:
            raise RuntimeError("MultiViewCameras: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs), reward, terminated, truncated, self._info(info)

    def render(self) -> Any:
        """``render_mode="rgb_array"``: a mosaic (uint8 ``(rows*H + borders, cols*W + borders,
        3)``) of the latest C views; other modes are the wrapped env's own ``render()``."""
        if self.render_mode == "rgb_array":
            if self._last_images is None:
                raise RuntimeError("MultiViewCameras: call reset() before render()")
            from s3k_envs.viz import mosaic

            return mosaic(self._last_images)
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass "
                            "render_mode='rgb_array' to get the camera mosaic")
            return None
        return self.env.render()

    def close(self) -> None:
        """Free the rig's renderer (GL context), then close the wrapped env."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _copy_camera(cam: mujoco.MjvCamera) -> mujoco.MjvCamera:
        import mujoco

        out = mujoco.MjvCamera()
        out.type = cam.type
        out.lookat[:] = cam.lookat
        out.distance, out.azimuth, out.elevation = cam.distance, cam.azimuth, cam.elevation
        out.orthographic = cam.orthographic
        return out

    def _set_rig(self, poses: list[CameraPose]) -> None:
        from s3k_envs.geometry import camera_centers, intrinsics_from_fovy

        self._poses = poses
        self._cameras = [free_camera(p) for p in poses]
        intr = np.stack([intrinsics_from_fovy(p.fovy, self.width, self.height) for p in poses])
        extr = free_camera_extrinsics(self._cameras)
        # Keep the float32-rounded calibration the user observes, so that projecting
        # info["keypoints"] with the observed matrices reproduces info["keypoints_2d"].
        self._intrinsics = intr.astype(np.float32).astype(np.float64)
        self._extrinsics = extr.astype(np.float32).astype(np.float64)
        self._centres = camera_centers(self._extrinsics)

    def _ensure_renderer(self) -> Any:
        """Create the views' renderer: its GL context gets an offscreen buffer large enough
        for the tiling (and, with ``fast_render``, no shadow map or multisampling); the
        model's ``vis`` values are put back right after, so the model is left as it was."""
        if self._renderer is None:
            from s3k_envs.rendering import MultiViewRenderer, tile_layout

            rows, cols = tile_layout(self.num_cameras)
            vis = self.model.vis
            saved = (vis.global_.offwidth, vis.global_.offheight, vis.quality.shadowsize,
                     vis.quality.offsamples)
            try:
                vis.global_.offwidth = cols * self.width
                vis.global_.offheight = rows * self.height
                if self.fast_render:
                    vis.quality.shadowsize = 0
                    vis.quality.offsamples = 0
                self._renderer = MultiViewRenderer(self.model, self.height, self.width,
                                                   self.num_cameras)
            finally:
                (vis.global_.offwidth, vis.global_.offheight, vis.quality.shadowsize,
                 vis.quality.offsamples) = saved
        return self._renderer

    def _observation(self, inner_obs: Any) -> dict[str, Any]:
        renderer = self._ensure_renderer()
        images = renderer.render_free(self.data, self._cameras,
                                      [math.degrees(p.fovy) for p in self._poses])
        self._last_images = images
        obs: dict[str, Any] = {
            "images": images,
            "intrinsics": self._intrinsics.astype(np.float32),
            "extrinsics": self._extrinsics.astype(np.float32),
        }
        if self._merge:
            obs.update(inner_obs)
        else:
            obs["state"] = inner_obs
        return obs

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        from s3k_envs.geometry import project

        keypoints = keypoint_positions(self.data, self.keypoint_sources)
        uv, depth = project(keypoints, self._intrinsics, self._extrinsics)
        visible = self.keypoint_visibility(keypoints, uv, depth)
        return {
            **info,
            "keypoints": keypoints.astype(np.float32),
            "keypoints_2d": uv.astype(np.float32).reshape(self.num_cameras, -1, 2),
            "keypoints_visible": visible.reshape(self.num_cameras, -1),
        }

    def keypoint_visibility(self, keypoints: np.ndarray, uv: np.ndarray,
                            depth: np.ndarray) -> np.ndarray:
        """Which keypoints each camera of the current rig sees.

        Args:
            keypoints: ``(K, 3)`` world points, m.
            uv: ``(C, K, 2)`` their projections, px; depth: ``(C, K)`` m.

        Returns:
            ``(C, K)`` bool: in front of the camera (beyond the near plane), inside the image,
            and the first rendered geom a ray from the camera centre towards the point meets
            is not more than ``occlusion_tolerance`` before it — not counting geoms of the
            keypoint's own, parent and child bodies, nor geoms of the same articulated
            object that contain the point, nor a ``geom:`` keypoint's own geom.
        """
        return keypoint_visibility(self.model, self.data, keypoints, uv, depth, self._centres,
                                   (self.width, self.height), self._own_bodies,
                                   self.occlusion_tolerance, self._geomgroup,
                                   self._containing_bodies, self._own_geoms)


# ---------------------------------------------------------------------------- registration
def make_multiview(base_id: str, base_kwargs: Mapping[str, Any] | None = None,
                   render_mode: str | None = None, **options: Any) -> MultiViewCameras:
    """``MultiViewCameras(gymnasium.make(base_id, **base_kwargs), **options)``.

    The entry point of ids registered with :func:`register_multiview`; ``gymnasium.make``
    passes the registered keyword arguments merged with its own (e.g. ``image_size=96``).

    Args:
        base_id: Gymnasium id of the MuJoCo env to wrap (``"Pusher-v5"``).
        base_kwargs: keyword arguments of ``gymnasium.make(base_id, ...)``.
        render_mode: None or ``"rgb_array"`` (``render()`` returns the camera mosaic); passed
            to the wrapped env. Other modes (the wrapped env's ``"human"`` window) are refused:
            on a headless machine GLFW aborts the whole process instead of raising.
        **options: :class:`MultiViewCameras` options.

    Raises:
        ValueError: an unknown option (the message lists the valid ones), a render mode other
            than None / ``"rgb_array"``, or a bad value.
    """
    if render_mode not in (None, *RENDER_MODES):
        raise ValueError(f"{base_id} + MultiViewCameras: render_mode must be None or one of "
                         f"{list(RENDER_MODES)}, got {render_mode!r}")
    unknown = sorted(set(options) - set(MultiViewCameras.OPTIONS))
    if unknown:
        raise ValueError(f"{base_id} + MultiViewCameras: unknown option(s) {unknown}; valid "
                         f"options are {sorted(MultiViewCameras.OPTIONS)} and base_kwargs "
                         f"(keyword arguments of gymnasium.make({base_id!r}))")
    if base_id.startswith(DM_CONTROL_NAMESPACE):
        try:
            import shimmy  # noqa: F401  (registers the dm_control/... ids with Gymnasium)
        except ImportError as exc:
            raise ModuleNotFoundError(
                f"{base_id}: dm_control tasks are made through Shimmy, which is not installed; "
                "pip install 's3k-envs[dm_control]' (or pip install shimmy)") from exc
    env = gym.make(base_id, render_mode=render_mode, disable_env_checker=True,
                   **dict(base_kwargs or {}))
    try:
        return MultiViewCameras(env, **options)
    except BaseException:
        env.close()
        raise


def register_multiview(new_id: str, base_id: str, *,
                       keypoints: Sequence[str] | Mapping[str, str] | None = None,
                       base_kwargs: Mapping[str, Any] | None = None,
                       max_episode_steps: int | None = None, **options: Any) -> None:
    """Register ``MultiViewCameras(gymnasium.make(base_id))`` as the Gymnasium id ``new_id``.

    Afterwards ``gymnasium.make(new_id, image_size=96, ...)`` and ``s3k generate new_id``
    build the wrapped env. Registration is cheap (nothing is imported or built). Dataset
    worker processes receive the registration from the parent, so ids registered in a user
    script work with ``--workers`` too.

    Args:
        new_id: the new id, e.g. ``"S3K-Pusher-v0"``.
        base_id: id of the MuJoCo env to wrap.
        keypoints: keypoint specifications (:func:`resolve_keypoints`).
        base_kwargs: keyword arguments for ``gymnasium.make(base_id, ...)``.
        max_episode_steps: time limit of the new id; None keeps the base env's own.
        **options: other :class:`MultiViewCameras` options (``num_cameras``, ``target``,
            ``distance``, ...), defaults that ``gymnasium.make`` keyword arguments override.

    Raises:
        ValueError: an unknown option, or ``new_id`` already registered with other arguments.
    """
    unknown = sorted(set(options) - set(MultiViewCameras.OPTIONS) - {"keypoints"})
    if unknown:
        raise ValueError(f"register_multiview({new_id!r}): unknown option(s) {unknown}; "
                         f"valid options are {sorted(MultiViewCameras.OPTIONS)}")
    kwargs = {"base_id": base_id, "base_kwargs": dict(base_kwargs or {}),
              "keypoints": keypoints, **options}
    if new_id in gym.registry:
        old = gym.registry[new_id]
        if old.entry_point == _ENTRY_POINT and old.kwargs == kwargs:
            return  # same registration again (e.g. a re-import): nothing to do
        raise ValueError(f"register_multiview: {new_id!r} is already registered (entry point "
                         f"{old.entry_point!r}); choose another id")
    gym.register(id=new_id, entry_point=_ENTRY_POINT, kwargs=kwargs,
                 max_episode_steps=max_episode_steps)


#: The shipped example ids: id -> (base id, register_multiview keyword arguments).
#: ``S3K-Pusher-v0``: Gymnasium's Pusher-v5 seen by 4 cameras around the table; keypoints
#: the point between the two fingertips (centre of mass of body ``tips_arm``; the body's
#: frame origin, which Pusher's own observation reports, sits inside the wrist capsule),
#: the puck (``object``) and the goal disc (``goal``).
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "S3K-Pusher-v0": ("Pusher-v5", {
        "keypoints": {"fingertip": "com:tips_arm", "object": "body:object",
                      "goal": "body:goal"},
        "target": (0.4, -0.3, -0.2),
        "distance": (1.4, 1.8),
        "elevation": (math.radians(30), math.radians(65)),
        "lookat_jitter": 0.05,
    }),
    # dm_control suite tasks (through Shimmy: pip install 's3k-envs[dm_control]'), framed
    # automatically. Reacher: the elbow, the fingertip and the target sphere (the shoulder
    # sits inside the world's base cylinder: no camera sees it).
    "S3K-DMC-Reacher-v0": ("dm_control/reacher-hard-v0", {
        "keypoints": {"elbow": "body:hand", "fingertip": "geom:finger", "target": "geom:target"},
    }),
    # Manipulator: the arm's wrist, the ball it has to bring and the target ball.
    "S3K-DMC-Manipulator-v0": ("dm_control/manipulator-bring_ball-v0", {
        "keypoints": {"hand": "body:hand", "ball": "body:ball", "target": "body:target_ball"},
    }),
}


def register_examples() -> None:
    """Register the :data:`EXAMPLES` ids (idempotent; called on ``import s3k_envs``)."""
    for new_id, (base_id, kwargs) in EXAMPLES.items():
        if new_id not in gym.registry:
            register_multiview(new_id, base_id, **kwargs)


register_examples()
