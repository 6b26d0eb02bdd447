"""Which keypoints each camera sees: one ray-casting function for the S3K envs
(:class:`~s3k_envs.envs.base.MultiViewEnv`) and the camera rig on any MuJoCo env
(:class:`~s3k_envs.wrappers.multiview.MultiViewCameras`).

A keypoint is visible in a camera when it is in front of the camera (beyond MuJoCo's near
plane), projects inside the image, and the first rendered geom that a ray from the camera
centre towards it meets is not more than ``tolerance`` in front of it. Geoms of the bodies a
keypoint *owns* (the part it lies on or inside of) never hide it.

Which bodies a keypoint owns, for keypoints on an arbitrary model: its own body, the body it
hangs from and the bodies that hang from it (:func:`attached_bodies`); besides, a geom of the
same articulated object that *contains* the keypoint does not hide it either
(:func:`same_object_bodies`, :func:`point_in_geom`: Ant's legs all start inside each other's
end caps). A keypoint at a body's frame origin usually sits on a joint, inside the end cap of
the parent link's geom (Reacher's elbow, Hopper's knee): counting only the own body's geoms
called such a point hidden in every view, while a person (and MuJoCo's segmentation render)
sees the arm right there. Agreement of the flag with the segmentation render on Gymnasium
MuJoCo envs with keypoints at body origins rose from 7–47 % (own body only) to >= 95 %
(``tests/test_other_mujoco_envs.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

#: Geom groups MuJoCo renders by default (``mjvOption().geomgroup``): the occluders.
VISIBLE_GEOM_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)
#: How many owned parts a ray may pass through before the next hit counts as an occluder.
MAX_PASS_THROUGH = 8
#: m a passed-through ray restarts beyond the surface it hit.
PASS_STEP = 1e-5


def attached_bodies(body_parentid: np.ndarray, body: int) -> frozenset[int]:
    """The bodies whose geoms never hide a keypoint that belongs to ``body``: the body, its
    parent and its children — never the world body (0), whose floor and walls do hide.

    Args:
        body_parentid: ``(nbody,)`` int, ``model.body_parentid``.
        body: body id, or -1 for a keypoint on the world body (nothing is owned).

    Returns:
        frozenset of body ids (empty for ``body <= 0``).
    """
    if body <= 0:
        return frozenset()
    parents = np.asarray(body_parentid)
    children = np.nonzero(parents == body)[0]
    owned = {int(body), int(parents[body]), *(int(c) for c in children)}
    owned.discard(0)
    return frozenset(owned)


def same_object_bodies(body_rootid: np.ndarray, body: int) -> frozenset[int]:
    """The bodies of the articulated object ``body`` belongs to: those with the same root
    body (the child of the world body they hang from); empty for the world body (-1 or 0).

    Args:
        body_rootid: ``(nbody,)`` int, ``model.body_rootid``.
        body: body id.
    """
    if body <= 0:
        return frozenset()
    roots = np.asarray(body_rootid)
    return frozenset(int(b) for b in np.nonzero(roots == roots[body])[0])


def point_in_geom(model: Any, data: Any, geom: int, point: np.ndarray,
                  margin: float = 0.0) -> bool:
    """Whether a world point lies inside a primitive geom (sphere, capsule, ellipsoid,
    cylinder, box), or within ``margin`` of it. Planes, height fields and meshes never
    contain a point here (no cheap exact test).

    Args:
        model, data: ``mujoco.MjModel`` / ``mujoco.MjData`` with current geom poses.
        geom: geom id.
        point: ``(3,)`` world point, m.
        margin: m added to the geom's size.
    """
    import mujoco

    kind = int(model.geom_type[geom])
    size = np.asarray(model.geom_size[geom], dtype=np.float64)
    local = data.geom_xmat[geom].reshape(3, 3).T @ (np.asarray(point, float) - data.geom_xpos[geom])
    t = mujoco.mjtGeom
    if kind == t.mjGEOM_SPHERE:
        return bool(np.linalg.norm(local) <= size[0] + margin)
    if kind == t.mjGEOM_CAPSULE:  # size: radius, half-length along z
        axial = np.clip(local[2], -size[1], size[1])
        return bool(np.linalg.norm(local - [0.0, 0.0, axial]) <= size[0] + margin)
    if kind == t.mjGEOM_ELLIPSOID:
        return bool(np.sum((local / (size + margin)) ** 2) <= 1.0)
    if kind == t.mjGEOM_CYLINDER:
        return bool(np.hypot(local[0], local[1]) <= size[0] + margin
                    and abs(local[2]) <= size[1] + margin)
    if kind == t.mjGEOM_BOX:
        return bool(np.all(np.abs(local) <= size + margin))
    return False


def keypoint_visibility(model: Any, data: Any, keypoints: np.ndarray, uv: np.ndarray,
                        depth: np.ndarray, centres: np.ndarray, image_size: tuple[int, int],
                        own_bodies: Sequence[Collection[int]], tolerance: float = 3e-3,
                        geomgroup: np.ndarray = VISIBLE_GEOM_GROUPS,
                        containing_bodies: Sequence[Collection[int]] | None = None,
                        own_geoms: Sequence[Collection[int]] | None = None) -> np.ndarray:
    """Which keypoints each camera sees (pure: reads ``model``/``data``, changes nothing).

    Args:
        model, data: the ``mujoco.MjModel`` / ``mujoco.MjData`` the rays are cast in (after
            ``mj_forward``/``mj_step``, so geom poses are current).
        keypoints: ``(K, 3)`` world points, m.
        uv: ``(C, K, 2)`` their projections, px (column, row).
        depth: ``(C, K)`` their depth along each camera's optical axis, m.
        centres: ``(C, 3)`` camera centres in the world frame, m.
        image_size: ``(width, height)`` of the images, px.
        own_bodies: per keypoint, the body ids whose geoms never hide it (may be empty).
        tolerance: a hit closer than ``distance - tolerance`` (m) counts as occlusion.
        geomgroup: ``(6,)`` uint8, the geom groups that can occlude.
        containing_bodies: per keypoint, bodies whose geoms do not hide it when they
            contain it (within ``tolerance``, :func:`point_in_geom`): the point is then part
            of what a person sees there (e.g. a leg's origin inside the end caps of the
            other legs of the same robot, which all start at one point). None: none.
        own_geoms: per keypoint, geom ids that never hide it (a ``geom:NAME`` keypoint's own
            geom, whatever body it is on). None: none.

    Returns:
        ``(C, K)`` bool.
    """
    import mujoco  # here, so that importing this module stays light

    width, height = image_size
    znear = model.vis.map.znear * model.stat.extent
    inside = ((depth > znear) & (uv[..., 0] >= 0) & (uv[..., 0] < width)
              & (uv[..., 1] >= 0) & (uv[..., 1] < height))
    visible = inside.copy()
    body_of_geom = model.geom_bodyid
    # Rendered planes (vectorised: this runs on every env step).
    group = np.asarray(geomgroup)[np.minimum(model.geom_group, len(geomgroup) - 1)]
    planes = np.nonzero((model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE) & (group > 0)
                        & (model.geom_rgba[:, 3] > 0))[0].tolist()
    for c in np.nonzero(inside.any(axis=1))[0]:
        ks = np.nonzero(inside[c])[0]
        vec = keypoints[ks] - centres[c]
        dist = np.linalg.norm(vec, axis=1)
        ks, vec, dist = ks[dist > 0], vec[dist > 0], dist[dist > 0]  # a point at the centre
        if len(ks) == 0:
            continue
        unit = vec / dist[:, None]
        hit = np.empty(len(ks))
        geomid = np.empty(len(ks), dtype=np.int32)
        centre = np.array(centres[c], dtype=np.float64)
        # One call for all rays from this camera centre.
        mujoco.mj_multiRay(model, data, centre, np.ascontiguousarray(unit.reshape(-1)),
                           geomgroup, 1, -1, geomid, hit, None, len(ks),
                           float(dist.max()) + 1.0)
        for i, k in enumerate(ks):
            travelled, gid = hit[i], int(geomid[i])
            # Parts the keypoint lies on or inside of do not hide it: continue the ray past
            # them (a few times at most).
            for _ in range(MAX_PASS_THROUGH):
                if not (0 <= travelled < dist[i] - tolerance and gid >= 0):
                    break
                body = int(body_of_geom[gid])
                if own_geoms is not None and gid in own_geoms[k]:
                    pass  # the keypoint's own geom (mj_ray then skips its whole body, fine
                    # this close to the keypoint: a geom on the world body is never a floor)
                elif body not in own_bodies[k] and not (
                        containing_bodies is not None and body in containing_bodies[k]
                        and point_in_geom(model, data, gid, keypoints[k], tolerance)):
                    break
                # Restart just past the hit: coincident surfaces (e.g. the end caps of several
                # capsules around one joint) would otherwise be hit again at distance 0.
                travelled += PASS_STEP
                start = centre + unit[i] * travelled
                gid_out = np.zeros(1, dtype=np.int32)
                step = mujoco.mj_ray(model, data, start, unit[i], geomgroup, 1, body, gid_out)
                travelled = travelled + step if step >= 0 else -1.0
                gid = int(gid_out[0])
            if 0 <= travelled < dist[i] - tolerance:
                visible[c, k] = False
        # mj_ray sees planes from their front only, the renderer from both sides (a camera
        # behind a wall sees the wall): test the back sides here.
        for plane in planes:
            blocked = plane_blocks(model, data, plane, centre, unit, dist - tolerance)
            for i in np.nonzero(blocked)[0]:
                if own_geoms is None or plane not in own_geoms[ks[i]]:
                    visible[c, ks[i]] = False
    return visible


def plane_blocks(model: Any, data: Any, plane: int, centre: np.ndarray, unit: np.ndarray,
                 before: np.ndarray) -> np.ndarray:
    """Which rays from ``centre`` cross the plane geom ``plane`` (either side, within its
    rendered extent: ``geom_size[:2]`` half-sizes, 0 = unbounded) before ``before``.

    Args:
        model, data: ``mujoco.MjModel`` / ``mujoco.MjData``.
        plane: geom id of a plane.
        centre: ``(3,)`` ray origin, m.
        unit: ``(R, 3)`` unit ray directions.
        before: ``(R,)`` m, the distance along each ray that a crossing must come before.

    Returns:
        ``(R,)`` bool.
    """
    rot = data.geom_xmat[plane].reshape(3, 3)
    normal, origin = rot[:, 2], data.geom_xpos[plane]
    along = unit @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((origin - centre) @ normal) / along
    hit = centre + t[:, None] * unit
    local = (hit - origin) @ rot
    half = model.geom_size[plane][:2]
    inside = np.all((half <= 0) | (np.abs(local[:, :2]) <= half), axis=1)
    return (np.abs(along) > 1e-12) & (t > 0) & (t < before) & inside
