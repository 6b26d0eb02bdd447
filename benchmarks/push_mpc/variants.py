"""Variants of the push MPC benchmark (issue 13, step 4): options that change only the
evaluation scene or what perception sees, never the planner.

* ``--cameras top|low``: the image methods localise and triangulate with **2 of the 4**
  calibrated views, chosen per observation from the calibration: the 2 views that look down
  most steeply (``top``, the most top-down-like) or least steeply (``low``, the most
  oblique). The rig is the env's usual random one (elevations 30-65 deg), so which two
  cameras these are changes every episode. The data and the dynamics models are the base
  run's (4-view states); the goal is read from the same 2 goal views. The beta-VAE embeds a
  fixed number of views (4, :class:`~agents.beta_vae.model.BetaVAE`) and cannot take 2: it
  is left out of this variant.
* ``--occluder``: :func:`make_env` adds a textured card (7 x 7 cm, 4 mm thick, a distractor
  texture of ``S3K-BoxDistractors-v0``'s pool 5) in front of each of cameras 0 and 1 (two
  adjacent views of the rig), 40 % of the way from the scene centre to the camera and facing
  it, in the current views and in the goal views. The cards are mocap bodies without
  collision (``contype = conaffinity = 0``): the physics, hence every transition, is that of
  the plain env (tested), only the images change.
* ``--env S3K-ShoePush-v0 [--instances test]``: push a shoe; the data are collected on the
  training shoes (ids 0-11) and the goal episodes use ``--instances`` (``test``: the
  held-out shoes 12-15). The S3K arm uses the shipped Shoes model, the descriptor arm a shoe
  descriptor checkpoint (``--descriptor-checkpoint``, else one trained under the cache with
  the shoe recipe of docs/keypoints-into-the-future.md; none is shipped).

Result stems carry the variant: ``push_mpc_<tag>_cameras-low``, ``..._occluder``,
``..._shoepush-test``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from s3k_envs.envs.box import add_textured_material
from s3k_envs.envs.distractors import distractor_pool
from s3k_envs.registration import ENV_SPECS

CAMERA_SUBSETS = ("all", "top", "low")
#: Views kept by ``--cameras top`` / ``low``.
SUBSET_VIEWS = 2
#: Cameras (rig indices) that get an occluder card with ``--occluder``.
OCCLUDED_CAMERAS = (0, 1)
#: Card half extents (width, thickness, height), m; fraction of the way to the camera.
CARD_HALF = (0.035, 0.002, 0.035)
CARD_FRACTION = 0.4
#: Parking place of the cards while not placed (under the table, seen by no camera), m.
_PARKED = (0.0, 0.0, -0.5)


def choose_views(extrinsics: np.ndarray, which: str) -> np.ndarray:
    """Indices of the views of ``which`` (``"all"``, ``"top"``, ``"low"``), in camera order.

    Args:
        extrinsics: ``(C, 4, 4)`` world->camera (OpenCV axes: the optical axis is the
            camera's +z, i.e. the third row of the rotation in world coordinates).
        which: ``"all"``: every view; ``"top"`` / ``"low"``: the :data:`SUBSET_VIEWS` views
            whose optical axis points down most / least steeply.

    Returns:
        ``(n,)`` int64 sorted indices.
    """
    extrinsics = np.asarray(extrinsics)
    if extrinsics.ndim != 3 or extrinsics.shape[1:] != (4, 4):
        raise ValueError(f"extrinsics: expected (C, 4, 4), got {extrinsics.shape}")
    if which not in CAMERA_SUBSETS:
        raise ValueError(f"cameras: expected one of {list(CAMERA_SUBSETS)}, got {which!r}")
    c = extrinsics.shape[0]
    if which == "all":
        return np.arange(c)
    if c < SUBSET_VIEWS + 1:
        raise ValueError(f"cameras={which!r} keeps {SUBSET_VIEWS} of the views, but there are "
                         f"only {c}")
    down = -extrinsics[:, 2, 2]  # world z of the optical axis, negated: sin(depression)
    order = np.argsort(-down if which == "top" else down, kind="stable")
    return np.sort(order[:SUBSET_VIEWS]).astype(np.int64)


def depression_deg(extrinsics: np.ndarray) -> np.ndarray:
    """``(C, 4, 4)`` world->camera -> ``(C,)`` angle of each optical axis below the
    horizontal, deg."""
    return np.degrees(np.arcsin(np.clip(-np.asarray(extrinsics)[:, 2, 2], -1, 1)))


class OccluderMixin:
    """Adds :data:`OCCLUDED_CAMERAS` cards (see the module docstring) to a push env: mix in
    before the env class (:func:`occluded_class`)."""

    def _build_task(self, spec: mujoco.MjSpec) -> None:
        super()._build_task(spec)  # type: ignore[misc]
        pool = distractor_pool(5)
        for j in range(len(OCCLUDED_CAMERAS)):
            name = f"occluder_{j}"
            add_textured_material(spec, name, pool[j].texture)
            body = spec.worldbody.add_body(name=name, mocap=True, pos=list(_PARKED))
            geom = body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
                                 size=list(CARD_HALF))
            geom.material = name
            geom.contype = 0
            geom.conaffinity = 0

    def _reset_task(self, rng: np.random.Generator) -> None:
        # The rig of this episode is already in the model; placing the cards first puts
        # them into the goal views too (rendered by the task's reset). No rng is used.
        self.place_occluders()
        super()._reset_task(rng)  # type: ignore[misc]

    def place_occluders(self) -> np.ndarray:
        """Put each card between the scene centre and its camera, facing the camera.

        Returns:
            ``(len(OCCLUDED_CAMERAS), 3)`` card centres, m.
        """
        m, d = self.model, self.data  # type: ignore[attr-defined]
        cam_ids = self._cam_ids  # type: ignore[attr-defined]
        target = np.asarray(self.options["camera_target"], float)  # type: ignore[attr-defined]
        centres = []
        for j, cam in enumerate(OCCLUDED_CAMERAS):
            pos = np.asarray(m.cam_pos[cam_ids[cam]], float)
            n = (pos - target) / np.linalg.norm(pos - target)
            x = np.cross([0.0, 0.0, 1.0], n)
            x /= np.linalg.norm(x)
            rot = np.stack([x, n, np.cross(x, n)], axis=1)  # card y axis along the sight line
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, rot.reshape(-1))
            mocap = int(m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY,
                                                         f"occluder_{j}")])
            centre = target + CARD_FRACTION * (pos - target)
            d.mocap_pos[mocap], d.mocap_quat[mocap] = centre, quat
            centres.append(centre)
        mujoco.mj_kinematics(m, d)
        return np.array(centres)


_CLASSES: dict[type, type] = {}


def occluded_class(base: type) -> type:
    """``base`` with :class:`OccluderMixin` (one class per base)."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Occluded{base.__name__}", (OccluderMixin, base), {})
    return _CLASSES[base]


def make_env(env_id: str, occluder: bool = False, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)``, or with ``occluder`` the same env (same time limit and
    wrappers) with the occluder cards."""
    if not occluder:
        return gym.make(env_id, **kwargs)
    if env_id not in ENV_SPECS:
        raise ValueError(f"--occluder: expected a push env of the suite, got {env_id!r}")
    module, name = ENV_SPECS[env_id][0].split(":")
    cls = occluded_class(getattr(importlib.import_module(module), name))
    base_spec = gym.spec(env_id)
    stem = env_id.rsplit("-v", 1)[0]
    spec = dataclasses.replace(base_spec, id=f"{stem}Occluded-v0", entry_point=cls,
                               kwargs={})
    return gym.make(spec, **kwargs)


def env_slug(env_id: str) -> str:
    """``"S3K-ShoePush-v0"`` -> ``"shoepush"``."""
    return env_id.lower().removeprefix("s3k-").removesuffix("-v0")


def variant_parts(env_id: str, instances: str | None, cameras: str, occluder: bool,
                  base_env: str) -> list[str]:
    """The parts that name a variant in result stems (empty for the base benchmark)."""
    parts = []
    if env_id != base_env:
        parts.append(env_slug(env_id) + (f"-{instances}" if instances else ""))
    if cameras != "all":
        parts.append(f"cameras-{cameras}")
    if occluder:
        parts.append("occluder")
    return parts


def card_angle_deg(extrinsics: np.ndarray, target: np.ndarray, centres: np.ndarray
                   ) -> np.ndarray:
    """Angle (deg) between each occluded camera's ray to ``target`` and its ray to its card's
    centre: ~0 when the card sits on the line of sight (a check for the tests)."""
    out = []
    for j, cam in enumerate(OCCLUDED_CAMERAS):
        r, t = extrinsics[cam, :3, :3], extrinsics[cam, :3, 3]
        a, b = r @ target + t, r @ centres[j] + t
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        out.append(math.degrees(math.acos(min(1.0, cos))))
    return np.array(out)
