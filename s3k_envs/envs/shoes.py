"""S3K-Shoes-v0: category-level keypoints on 16 procedural shoes.

Every reset picks one shoe instance (option ``instances``: ``"train"`` = ids 0-11,
``"test"`` = the held-out ids 12-15, ``"all"``, or an explicit list of ids), places it on the
table at a random position and yaw — usually upright, with probability ``side_probability``
lying on one of its sides in a stable rest pose — and re-randomizes the camera rig. The
instance id is ``info["instance_id"]``.

Keypoints (``keypoint_names``), from :mod:`s3k_envs.envs.shoe_mesh`:

* ``front``: toe tip of the sole, on its top edge;
* ``tongue``: top of the tongue (centre of its top end);
* ``heel``: back of the heel at collar height (centre of the heel tab's back face, level with
  the top of the collar).

Task: bring the gripper's tool centre point (``data.xpos`` of body ``gripper``) to
``target_keypoint``; reward is minus that distance in metres (``info["target_distance"]``),
success within ``success_distance``.

Design: all selected instances live in one compiled model (one body ``shoe_<id>`` each,
meshes generated once per process by :func:`~s3k_envs.envs.shoe_mesh.generate_shoe`), so
a reset never recompiles and one renderer serves every instance. The shoe of the episode is
*activated*; the others are parked 1 m under the table with collisions off
(``geom_contype/conaffinity = 0``), rendering and ray casting off (``geom_group = 5``) and
gravity compensated (``body_gravcomp = 1``), so they never move.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import numpy as np

from s3k_envs.envs.base import MultiViewEnv
from s3k_envs.envs.shoe_mesh import (
    KEYPOINT_NAMES,
    NUM_INSTANCES,
    TEST_INSTANCES,
    TRAIN_INSTANCES,
    ShoeModel,
    generate_shoe,
)
from s3k_envs.geometry import look_at_quat
from s3k_envs.viz import draw_points, mosaic, write_png

_HIDDEN_GROUP = 5  # not drawn by the renderer, ignored by keypoint ray casting
_COLLISION_GROUP = 3  # collision hulls: never drawn
_PARK_DEPTH = -1.0  # z of parked shoes, m (under the table, out of every view)
_INSTANCE_SETS = {"train": TRAIN_INSTANCES, "test": TEST_INSTANCES,
                  "all": tuple(range(NUM_INSTANCES))}


def resolve_instances(value: Any) -> tuple[int, ...]:
    """Instance ids selected by the ``instances`` option.

    Args:
        value: ``"train"`` (ids 0-11), ``"test"`` (12-15), ``"all"`` (0-15), one id, or a
            non-empty sequence of distinct ids in 0..15.

    Returns:
        The ids, sorted.

    Raises:
        ValueError: anything else, with the valid choices in the message.
    """
    valid = (f"expected 'train' (ids {TRAIN_INSTANCES[0]}-{TRAIN_INSTANCES[-1]}), 'test' "
             f"(ids {TEST_INSTANCES[0]}-{TEST_INSTANCES[-1]}), 'all', or a non-empty list of "
             f"distinct ids in 0..{NUM_INSTANCES - 1}")
    if isinstance(value, str):
        if value not in _INSTANCE_SETS:
            raise ValueError(f"instances: {valid}; got {value!r}")
        return _INSTANCE_SETS[value]
    items = [value] if isinstance(value, (int, np.integer)) else value
    try:
        ids = list(items)
    except TypeError:
        raise ValueError(f"instances: {valid}; got {value!r}") from None
    bad = [i for i in ids if isinstance(i, (bool, np.bool_))
           or not isinstance(i, (int, np.integer)) or not 0 <= i < NUM_INSTANCES]
    if not ids or bad or len(set(ids)) != len(ids):
        raise ValueError(f"instances: {valid}; got {value!r}")
    return tuple(sorted(int(i) for i in ids))


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, v1 = a[0], np.asarray(a[1:])
    w2, v2 = b[0], np.asarray(b[1:])
    return np.concatenate([[w1 * w2 - v1 @ v2], w1 * v2 + w2 * v1 + np.cross(v1, v2)])


class ShoesEnv(MultiViewEnv):
    """A procedural shoe on the table, seen by C randomized calibrated cameras.

    Extra options: ``instances`` ("train", "test", "all" or a list of ids; default "train"),
    ``target_keypoint`` (default "front"), ``success_distance`` (m, default 0.01),
    ``shoe_xy_range`` (m, half-width of the square the shoe's centre of mass is drawn from),
    ``side_probability`` (chance that a reset lays the shoe on its side, default 0.15), plus
    every option of :class:`~s3k_envs.envs.base.MultiViewEnv` (the camera defaults are
    tighter than the base's so that the shoe fills a good part of each view).

    Info adds ``instance_id`` (int) and ``target_distance`` (m). Attributes:
    ``instance_ids`` (the selected ids, sorted), ``instance_id`` and ``on_side`` (current
    episode), ``shoe`` (its :class:`~s3k_envs.envs.shoe_mesh.ShoeModel`).
    """

    keypoint_names = KEYPOINT_NAMES
    TASK_OPTIONS: ClassVar[dict[str, Any]] = {
        # Framed so that the shoe covers ~19 % of a view on average (9-31 %) and ~98 % of the
        # keypoints are inside the images (measured over 96 views).
        "camera_target": (0.0, 0.0, 0.045),
        "camera_distance": (0.4, 0.5),
        "camera_elevation": (math.radians(30), math.radians(65)),
        "camera_lookat_jitter": 0.01,
        "camera_fovy": (0.7, 0.82),
        "target_keypoint": "front",
        "success_distance": 0.01,
        "instances": "train",
        "shoe_xy_range": 0.02,
        "side_probability": 0.15,
    }

    # ------------------------------------------------------------------ options
    def _validate_task_options(self) -> None:
        opts = self.options
        if opts["target_keypoint"] not in self.keypoint_names:
            raise ValueError(
                f"target_keypoint: expected one of {list(self.keypoint_names)}, got "
                f"{opts['target_keypoint']!r}"
            )
        if not opts["success_distance"] > 0:
            raise ValueError(f"success_distance must be > 0 m, got {opts['success_distance']}")
        if not 0 <= opts["shoe_xy_range"] <= 0.15:
            raise ValueError(f"shoe_xy_range: expected 0..0.15 m, got {opts['shoe_xy_range']}")
        if not 0 <= opts["side_probability"] <= 1:
            raise ValueError(
                f"side_probability: expected 0..1, got {opts['side_probability']!r}")
        self.instance_ids: tuple[int, ...] = resolve_instances(opts["instances"])

    # ------------------------------------------------------------------ scene
    def _build_task(self, spec: mujoco.MjSpec) -> None:
        for iid in self.instance_ids:
            self._add_shoe(spec, generate_shoe(iid))

    @staticmethod
    def _add_shoe(spec: mujoco.MjSpec, shoe: ShoeModel) -> None:
        name = f"shoe_{shoe.instance_id}"
        # gravcomp=1 at compile time so the model counts these bodies in ngravcomp; the
        # active shoe gets 0 on reset.
        body = spec.worldbody.add_body(name=name, gravcomp=1.0)
        body.add_freejoint(name=f"{name}_free")
        body.explicitinertial = True
        body.mass = shoe.mass
        body.ipos = shoe.com.tolist()
        inertia = shoe.inertia
        body.fullinertia = [inertia[0, 0], inertia[1, 1], inertia[2, 2], inertia[0, 1],
                            inertia[0, 2], inertia[1, 2]]
        for part in shoe.parts:
            mesh = spec.add_mesh(name=f"{name}_{part.name}")
            mesh.uservert = part.vertices.ravel().tolist()
            mesh.userface = part.faces.ravel().tolist()
            mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
            mat = spec.add_material(name=f"{name}_{part.name}")
            mat.rgba = list(part.rgba)
            if part.texture is not None:
                mesh.usertexcoord = part.texcoords.ravel().tolist()
                mesh.userfacetexcoord = part.face_texcoords.ravel().tolist()
                height, width = part.texture.shape[:2]
                tex = spec.add_texture(name=f"{name}_{part.name}",
                                       type=mujoco.mjtTexture.mjTEXTURE_2D,
                                       width=width, height=height, nchannel=3)
                tex.data = np.ascontiguousarray(part.texture).tobytes()
                mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
            mat.specular = 0.15
            mat.shininess = 0.2
            geom = body.add_geom(name=f"{name}_{part.name}", type=mujoco.mjtGeom.mjGEOM_MESH,
                                 meshname=mesh.name, material=mat.name)
            geom.contype = geom.conaffinity = 0
            geom.group = 0
        for k, points in enumerate(shoe.collision_points):
            mesh = spec.add_mesh(name=f"{name}_hull_{k}")
            mesh.uservert = points.ravel().tolist()  # no faces: MuJoCo uses the convex hull
            mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_CONVEX
            geom = body.add_geom(name=f"{name}_hull_{k}", type=mujoco.mjtGeom.mjGEOM_MESH,
                                 meshname=mesh.name)
            geom.group = _COLLISION_GROUP
            geom.rgba = [0.5, 0.5, 0.5, 0.0]
            geom.friction = [0.9, 0.005, 0.0001]
        centre, half = shoe.collision_box
        geom = body.add_geom(name=f"{name}_sole_box", type=mujoco.mjtGeom.mjGEOM_BOX,
                             pos=centre.tolist(), size=half.tolist())
        geom.group = _COLLISION_GROUP
        geom.rgba = [0.5, 0.5, 0.5, 0.0]
        geom.friction = [0.9, 0.005, 0.0001]

    def _bind_task(self) -> None:
        self._bind_shoes()
        self._target_index = self.keypoint_names.index(self.options["target_keypoint"])

    def _bind_shoes(self) -> None:
        """Ids and addresses of every instance's body, joint and geoms (used by
        :meth:`activate`; shared with :class:`~s3k_envs.envs.shoe_push.ShoePushEnv`)."""
        m = self.model
        self._shoe_body: dict[int, int] = {}
        self._shoe_qadr: dict[int, int] = {}
        self._shoe_dadr: dict[int, int] = {}
        self._shoe_geoms: dict[int, np.ndarray] = {}
        for iid in self.instance_ids:
            bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"shoe_{iid}")
            self._shoe_body[iid] = bid
            self._shoe_qadr[iid] = int(m.jnt_qposadr[m.body_jntadr[bid]])
            self._shoe_dadr[iid] = int(m.jnt_dofadr[m.body_jntadr[bid]])
            self._shoe_geoms[iid] = np.nonzero(m.geom_bodyid == bid)[0]
        self._geom_contype = m.geom_contype.copy()
        self._geom_conaffinity = m.geom_conaffinity.copy()
        self._geom_group = m.geom_group.copy()
        self.instance_id: int = self.instance_ids[0]
        self.on_side = False

    @property
    def shoe(self) -> ShoeModel:
        """The :class:`~s3k_envs.envs.shoe_mesh.ShoeModel` of the current episode."""
        return generate_shoe(self.instance_id)

    def activate(self, instance_id: int, pos: Sequence[float], quat: Sequence[float]) -> None:
        """Make ``instance_id`` the shoe of the scene at pose ``pos (3,)`` m, ``quat (4,)``
        w-first, and park all others (call ``mj_forward`` afterwards).

        Only model fields (geom collision masks, groups, gravity compensation) and qpos/qvel
        change: nothing is recompiled.
        """
        if instance_id not in self._shoe_body:
            raise ValueError(f"instance {instance_id!r} is not in this env's instances "
                             f"{list(self.instance_ids)}")
        m, d = self.model, self.data
        for k, iid in enumerate(self.instance_ids):
            geoms, bid = self._shoe_geoms[iid], self._shoe_body[iid]
            qadr, dadr = self._shoe_qadr[iid], self._shoe_dadr[iid]
            d.qvel[dadr : dadr + 6] = 0.0
            if iid == instance_id:
                m.geom_contype[geoms] = self._geom_contype[geoms]
                m.geom_conaffinity[geoms] = self._geom_conaffinity[geoms]
                m.geom_group[geoms] = self._geom_group[geoms]
                m.body_gravcomp[bid] = 0.0
                d.qpos[qadr : qadr + 3] = pos
                d.qpos[qadr + 3 : qadr + 7] = np.asarray(quat) / np.linalg.norm(quat)
            else:
                m.geom_contype[geoms] = 0
                m.geom_conaffinity[geoms] = 0
                m.geom_group[geoms] = _HIDDEN_GROUP
                m.body_gravcomp[bid] = 1.0
                d.qpos[qadr : qadr + 3] = [0.0, 0.0, _PARK_DEPTH - 0.4 * k]
                d.qpos[qadr + 3 : qadr + 7] = [1.0, 0.0, 0.0, 0.0]
        self.instance_id = int(instance_id)

    def _reset_task(self, rng: np.random.Generator) -> None:
        iid = self.instance_ids[int(rng.integers(len(self.instance_ids)))]
        shoe = generate_shoe(iid)
        sides = [p for p in shoe.rest_poses if p.kind == "side"]
        on_side = bool(rng.uniform() < self.options["side_probability"]) and bool(sides)
        rest = sides[int(rng.integers(len(sides)))] if on_side else shoe.rest_poses[0]
        yaw = rng.uniform(-math.pi, math.pi)
        quat = _quat_mul(np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]), rest.quat)
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, quat)
        com_xy = (rot.reshape(3, 3) @ shoe.com)[:2]
        r = self.options["shoe_xy_range"]
        xy = rng.uniform(-r, r, size=2) - com_xy  # the centre of mass lands in the square
        self.activate(iid, [xy[0], xy[1], rest.height + 2e-4], quat)
        self.on_side = on_side

    def _initial_gripper_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # Start above the tallest shoe (a high-top with its tongue is up to 17.7 cm tall).
        pos = rng.uniform([-0.1, -0.1, 0.2], [0.1, 0.1, 0.26])
        yaw = rng.uniform(-math.pi / 2, math.pi / 2)
        return pos, np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])

    # ------------------------------------------------------------------ keypoints, reward
    def _keypoints_world(self) -> np.ndarray:
        d = self.data
        bid = self._shoe_body[self.instance_id]
        rot = d.xmat[bid].reshape(3, 3)
        return d.xpos[bid] + generate_shoe(self.instance_id).keypoints @ rot.T

    def _task_reward(self, keypoints: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        tcp = self.data.xpos[self._gripper_id]
        dist = float(np.linalg.norm(keypoints[self._target_index] - tcp))
        success = dist < self.options["success_distance"]
        return -dist, success, {"target_distance": dist, "instance_id": int(self.instance_id)}

    # ------------------------------------------------------------------ pictures
    def render_instance(self, instance_id: int, yaw: float = math.radians(30),
                        elevation: float = math.radians(40), distance: float = 0.62,
                        fovy: float = math.radians(30)) -> np.ndarray:
        """Render one instance upright at the origin from a fixed 3/4 view (by default from
        above and behind one side: toe to the right and away from the camera, collar
        opening in view), with the gripper out of view; for galleries.

        Args:
            instance_id: one of this env's instances.
            yaw: shoe yaw, rad. elevation: camera elevation, rad. distance: camera distance
                to the look-at point, m. fovy: vertical field of view, rad.

        Returns:
            ``(H, W, 3)`` uint8 image of camera 0. Call ``reset`` before stepping again.
        """
        self.reset(seed=0)
        m, d = self.model, self.data
        quat = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
        self.activate(instance_id, [0.0, 0.0, 0.0], quat)
        adr = m.jnt_qposadr[m.body_jntadr[self._gripper_id]]
        d.qpos[adr : adr + 3] = [0.0, 0.0, 2.0]
        d.mocap_pos[self._mocap_id] = [0.0, 0.0, 2.0]
        target = np.array([0.0, 0.0, 0.05])
        cam_pos = target + distance * np.array([0.0, -math.cos(elevation), math.sin(elevation)])
        cam = self._cam_ids[0]
        m.cam_pos[cam] = cam_pos
        m.cam_quat[cam] = look_at_quat(cam_pos, target)
        m.cam_fovy[cam] = math.degrees(fovy)
        mujoco.mj_forward(m, d)
        image = self._render_images()[0].copy()
        self._needs_reset = True
        return image


def shoe_gallery(image_size: int = 128, cols: int = 4,
                 instances: Sequence[int] = tuple(range(NUM_INSTANCES))) -> np.ndarray:
    """All instances side by side, each rendered at ``image_size`` px from the same 3/4 view.

    Returns:
        ``(rows*H + gaps, cols*W + gaps, 3)`` uint8 (see :func:`s3k_envs.viz.mosaic`).
    """
    env = ShoesEnv(instances=list(instances), image_size=image_size, num_cameras=1)
    try:
        images = np.stack([env.render_instance(i) for i in instances])
    finally:
        env.close()
    return mosaic(images, cols=cols)


def annotated_sample(seed: int = 0, image_size: int = 128, **options: Any) -> np.ndarray:
    """2x2 mosaic of the four views after ``reset(seed)`` with the true keypoints drawn
    (filled: visible, ring: occluded or outside), ``(H', W', 3)`` uint8."""
    env = ShoesEnv(image_size=image_size, **options)
    try:
        obs, info = env.reset(seed=seed)
    finally:
        env.close()
    views = [draw_points(img, uv, vis) for img, uv, vis in
             zip(obs["images"], info["keypoints_2d"], info["keypoints_visible"], strict=True)]
    return mosaic(np.stack(views))


def main(argv: list[str] | None = None) -> None:
    """``python -m s3k_envs.envs.shoes [--out docs/images]``: write the instance gallery
    ``shoes_grid.png`` and an annotated 4-view sample ``S3K-Shoes-v0.png``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_png(shoe_gallery(), args.out / "shoes_grid.png"))
    print(write_png(annotated_sample(args.seed), args.out / "S3K-Shoes-v0.png"))


if __name__ == "__main__":
    main()
