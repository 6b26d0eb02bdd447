"""CameraRig: C randomized look-at cameras on a shell around a workspace target.

The rig lives in the MuJoCo model as fixed world-body cameras; each reset samples new poses
from the env's ``np_random`` and writes them into ``model.cam_pos / cam_quat / cam_fovy``
(no recompilation). Calibration is then read back from MuJoCo's own camera state, so what
the user gets is exactly what the renderer used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from s3k_envs.geometry import extrinsics_from_mujoco, intrinsics_from_fovy, look_at_quat


def _range(name: str, value: Sequence[float], low: float, high: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (min, max) pair, got {value!r}") from None
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name}: expected {low} <= min <= max <= {high}, got ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True)
class CameraPose:
    """One sampled camera: ``position`` (3,) m, ``lookat`` (3,) m, ``fovy`` rad, ``quat`` (4,)
    w-first MuJoCo camera orientation."""

    position: np.ndarray
    lookat: np.ndarray
    fovy: float
    quat: np.ndarray


@dataclass(frozen=True)
class CameraRig:
    """A rig of ``num_cameras`` look-at cameras sampled on a spherical shell.

    Camera ``c`` sits at azimuth ``phi0 + 2 pi c / C + jitter`` (``phi0`` uniform in
    ``[0, 2 pi)``, so views surround the scene and triangulate well), elevation uniform in
    ``elevation`` and distance uniform in ``distance`` from ``target``; it looks at ``target``
    plus a uniform jitter of up to ``lookat_jitter`` metres per axis, with a vertical field of
    view uniform in ``fovy``.

    Attributes:
        target: ``(3,)`` workspace centre in metres.
        num_cameras: C >= 1.
        distance: (min, max) camera-to-target distance, m.
        elevation: (min, max) elevation above the horizontal, rad.
        azimuth_jitter: max deviation from the even azimuth spacing, rad.
        lookat_jitter: max per-axis offset of the look-at point, m.
        fovy: (min, max) vertical field of view, rad.
    """

    target: tuple[float, float, float] = (0.0, 0.0, 0.05)
    num_cameras: int = 4
    distance: tuple[float, float] = (0.45, 0.6)
    elevation: tuple[float, float] = (math.radians(25), math.radians(65))
    azimuth_jitter: float = math.radians(20)
    lookat_jitter: float = 0.03
    fovy: tuple[float, float] = (math.radians(40), math.radians(50))
    name_prefix: str = field(default="rig_cam_")

    def __post_init__(self) -> None:
        if int(self.num_cameras) != self.num_cameras or self.num_cameras < 1:
            raise ValueError(f"num_cameras: expected an integer >= 1, got {self.num_cameras!r}")
        if len(tuple(self.target)) != 3:
            raise ValueError(f"target: expected 3 coordinates (m), got {self.target!r}")
        object.__setattr__(self, "target", tuple(float(v) for v in self.target))
        object.__setattr__(self, "distance", _range("distance", self.distance, 1e-3, 1e3))
        object.__setattr__(
            self, "elevation", _range("elevation", self.elevation, -math.pi / 2, math.pi / 2)
        )
        object.__setattr__(self, "fovy", _range("fovy", self.fovy, 1e-3, math.pi - 1e-3))
        if not 0 <= self.azimuth_jitter <= math.pi:
            raise ValueError(f"azimuth_jitter: expected 0..pi rad, got {self.azimuth_jitter!r}")
        if not 0 <= self.lookat_jitter:
            raise ValueError(f"lookat_jitter: expected >= 0 m, got {self.lookat_jitter!r}")

    @property
    def camera_names(self) -> list[str]:
        """Names of the rig's cameras in the MuJoCo model."""
        return [f"{self.name_prefix}{c}" for c in range(self.num_cameras)]

    def add_to_spec(self, spec: mujoco.MjSpec) -> None:
        """Add the rig's cameras (fixed, world body) to a model spec before compiling."""
        for name in self.camera_names:
            cam = spec.worldbody.add_camera(name=name)
            cam.pos = [0.0, 0.0, 1.0]
            cam.fovy = math.degrees(sum(self.fovy) / 2)

    def camera_ids(self, model: mujoco.MjModel) -> np.ndarray:
        """``(C,)`` int MuJoCo ids of the rig's cameras in a compiled model."""
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, n) for n in self.camera_names]
        missing = [n for n, i in zip(self.camera_names, ids, strict=True) if i < 0]
        if missing:
            raise ValueError(f"model has no cameras named {missing}; call add_to_spec first")
        return np.asarray(ids, dtype=np.int64)

    def sample(self, rng: np.random.Generator) -> list[CameraPose]:
        """Draw C camera poses (one call consumes a fixed amount of ``rng``)."""
        num = self.num_cameras
        target = np.asarray(self.target)
        phi0 = rng.uniform(0.0, 2 * math.pi)
        jitter = rng.uniform(-self.azimuth_jitter, self.azimuth_jitter, size=num)
        elev = rng.uniform(*self.elevation, size=num)
        dist = rng.uniform(*self.distance, size=num)
        fovy = rng.uniform(*self.fovy, size=num)
        look = target + rng.uniform(-self.lookat_jitter, self.lookat_jitter, size=(num, 3))
        poses = []
        for c in range(num):
            azim = phi0 + 2 * math.pi * c / num + jitter[c]
            offset = dist[c] * np.array(
                [math.cos(elev[c]) * math.cos(azim), math.cos(elev[c]) * math.sin(azim),
                 math.sin(elev[c])]
            )
            pos = look[c] + offset
            poses.append(CameraPose(pos, look[c], float(fovy[c]), look_at_quat(pos, look[c])))
        return poses

    def apply(self, model: mujoco.MjModel, poses: Sequence[CameraPose]) -> None:
        """Write sampled poses into the model's cameras (call ``mj_forward`` afterwards)."""
        ids = self.camera_ids(model)
        if len(poses) != len(ids):
            raise ValueError(f"expected {len(ids)} camera poses, got {len(poses)}")
        for cam_id, pose in zip(ids, poses, strict=True):
            model.cam_pos[cam_id] = pose.position
            model.cam_quat[cam_id] = pose.quat
            model.cam_fovy[cam_id] = math.degrees(pose.fovy)


def camera_calibration(
    model: mujoco.MjModel, data: mujoco.MjData, cam_ids: Sequence[int], width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration of MuJoCo cameras as rendered at ``width x height``.

    Args:
        model, data: a model and its data after ``mj_forward`` (camera poses are read from
            ``data.cam_xpos / cam_xmat``).
        cam_ids: C camera ids.
        width, height: image size in pixels.

    Returns:
        intrinsics ``(C, 3, 3)`` and extrinsics ``(C, 4, 4)`` (world→camera, OpenCV), float64.
    """
    ids = np.asarray(cam_ids, dtype=np.int64)
    intr = np.stack(
        [intrinsics_from_fovy(math.radians(model.cam_fovy[i]), width, height) for i in ids]
    )
    extr = extrinsics_from_mujoco(data.cam_xpos[ids], data.cam_xmat[ids])
    return intr, extr
