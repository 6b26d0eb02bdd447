"""Rigid bodies from triangle meshes (pure numpy): mass properties of solids and shells, and
the poses in which a convex contact shape rests on a plane.

Used by :mod:`s3k_envs.envs.shoe_mesh` for the procedural shoes (a solid sole, a shell upper;
upright and on-the-side rest poses), but nothing here is shoe-specific. Lengths in metres;
quaternions w-first; meshes as ``(V, 3)`` vertices and ``(F, 3)`` int faces wound
counter-clockwise seen from outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RestPose:
    """A pose in which a body (e.g. a shoe) rests on a horizontal plane (before any yaw).

    Attributes:
        kind: ``"upright"`` or ``"side"``.
        quat: ``(4,)`` w-first orientation of the shoe frame in the world.
        height: z of the shoe-frame origin above the plane, m.
        margin: distance from the centre of mass's projection to the nearest edge of the
            support polygon, m (how far it is from tipping over).
    """

    kind: str
    quat: np.ndarray
    height: float
    margin: float


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed triangle mesh, m^3 (positive when faces wind
    counter-clockwise seen from outside).

    Args:
        vertices: ``(V, 3)`` m. faces: ``(F, 3)`` int.
    """
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def second_moment_to_inertia(mass: float, com: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Inertia tensor about ``com`` from the second moment ``sum m x x^T`` about the origin."""
    cov = moment - mass * np.outer(com, com)
    return np.trace(cov) * np.eye(3) - cov


def solid_properties(verts: np.ndarray, faces: np.ndarray) -> tuple[float, np.ndarray,
                                                                      np.ndarray]:
    """Volume (m^3), centroid (3,) and second moment about the origin (3, 3) of the solid
    bounded by a closed, outward-oriented mesh, at unit density."""
    tri = verts[faces]  # (F, 3, 3)
    det = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    volume = float(det.sum() / 6.0)
    centroid = (det[:, None] * tri.sum(axis=1)).sum(axis=0) / (24.0 * volume)
    canonical = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]]) / 120.0
    moment = np.einsum("f,fki,kl,flj->ij", det, tri, canonical, tri)
    return volume, centroid, moment


def shell_properties(verts: np.ndarray, faces: np.ndarray) -> tuple[float, np.ndarray,
                                                                      np.ndarray]:
    """Area (m^2), centroid (3,) and second moment about the origin (3, 3) of a surface at
    unit area density."""
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = float(area.sum())
    centroid = (area[:, None] * tri.mean(axis=1)).sum(axis=0) / total
    s = tri.sum(axis=1)
    moment = (np.einsum("f,fki,fkj->ij", area, tri, tri)
              + np.einsum("f,fi,fj->ij", area, s, s)) / 12.0
    return total, centroid, moment


def _quat_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """w-first unit quaternion of the shortest rotation taking unit vector a to b."""
    cross = np.cross(a, b)
    dot = float(np.dot(a, b))
    if dot < -1 + 1e-12:  # opposite: rotate pi about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return np.array([0.0, *axis])
    q = np.array([1.0 + dot, *cross])
    return q / np.linalg.norm(q)


def _hull_2d(points: np.ndarray) -> np.ndarray:
    """Indices of the counter-clockwise convex hull of ``(N, 2)`` points (monotone chain;
    collinear points dropped)."""
    order = np.lexsort((points[:, 1], points[:, 0]))

    def half(seq: np.ndarray) -> list[int]:
        out: list[int] = []
        for k in seq:
            while len(out) >= 2:
                o, a, b = points[out[-2]], points[out[-1]], points[k]
                if (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]) > 1e-15:
                    break
                out.pop()
            out.append(int(k))
        return out

    lower, upper = half(order), half(order[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.int64)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (faster than ``np.cross`` for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])


def _plane_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = _cross(n, np.array([1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0]))
    u /= math.sqrt(u @ u)
    return u, _cross(n, u)


def _support_polygon(rel: np.ndarray, n: np.ndarray, tol: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Support points of ``rel`` (points minus the centre of mass) along down direction n:
    their indices on the counter-clockwise hull ``(H,)`` and 2D coordinates ``(H, 2)`` in the
    plane (the centre of mass projects to the origin)."""
    d = rel @ n
    idx = np.nonzero(d >= d.max() - tol)[0]
    u, w = _plane_basis(n)
    flat = np.stack([rel[idx] @ u, rel[idx] @ w], axis=1)
    if len(idx) < 3:
        return idx, flat
    ring = _hull_2d(flat)
    return idx[ring], flat[ring]


def _polygon_margin(flat: np.ndarray) -> float:
    """Signed distance from the origin to the boundary of a counter-clockwise polygon
    ``(H, 2)`` (positive inside; -inf for fewer than 3 vertices)."""
    if len(flat) < 3:
        return -math.inf
    edges = np.roll(flat, -1, axis=0) - flat
    cross = edges[:, 0] * (-flat[:, 1]) - edges[:, 1] * (-flat[:, 0])
    return float((cross / np.linalg.norm(edges, axis=1)).min())


def _topple(points: np.ndarray, com: np.ndarray, down: np.ndarray, tol: float = 1e-9,
            max_events: int = 400) -> tuple[np.ndarray, float]:
    """Quasi-static toppling of a rigid body onto a plane (no sliding, no momentum).

    The body is laid down with body-frame direction ``down`` pointing at the plane, so that
    it touches it at its support point(s) of ``points``; then it rolls, pivoting about a
    vertex, about an edge or tipping over the edge of its support polygon, always in the
    direction that lowers its centre of mass, each roll lasting until a further point
    touches the plane, until the centre of mass is above the support polygon.

    Args:
        points: ``(N, 3)`` contact points (the contact shape is their convex hull), m.
        com: ``(3,)`` centre of mass, m. down: ``(3,)`` initial down direction.

    Returns:
        The final down direction ``(3,)`` (unit, body frame) and the stability margin (m):
        distance from the centre of mass's projection to the support polygon's boundary
        (-1 if no rest was reached within ``max_events`` rolls).
    """
    rel = points - com
    n = down / np.linalg.norm(down)
    for _ in range(max_events):
        idx, flat = _support_polygon(rel, n, tol)
        if len(flat) >= 3:
            margin = _polygon_margin(flat)
            if margin >= 0:
                return n, margin
            # Roll over the polygon's feature nearest to the projection of the centre.
            a, b = flat, np.roll(flat, -1, axis=0)
            ab = b - a
            lam = np.clip(-(a * ab).sum(axis=1) / (ab * ab).sum(axis=1), 0.0, 1.0)
            k = int(np.argmin(np.linalg.norm(a + lam[:, None] * ab, axis=1)))
            if 0 < lam[k] < 1:
                pivots = (idx[k], idx[(k + 1) % len(idx)])
            else:
                pivots = (idx[k] if lam[k] == 0 else idx[(k + 1) % len(idx)],)
        elif len(flat) == 2:
            ab = flat[1] - flat[0]
            lam = -(flat[0] @ ab) / (ab @ ab)
            pivots = (idx[0], idx[1]) if 0 < lam < 1 else (idx[0] if lam <= 0 else idx[1],)
        else:
            pivots = (idx[0],)
        pivot = rel[pivots[0]]
        if len(pivots) == 2:  # rotate about the edge
            m = _cross(rel[pivots[1]] - pivot, n)
        else:  # pivot about the vertex, away from the centre of mass
            m = -(pivot - (pivot @ n) * n)
        norm = np.linalg.norm(m)
        if norm < 1e-12:  # balanced exactly above a vertex or edge: nudge
            m, norm = _plane_basis(n)[0], 1.0
        m = m / norm
        if pivot @ m > 0:
            m = -m
        dn = (rel - pivot) @ n
        dm = (rel - pivot) @ m
        rising = (dm > 1e-12) & (dn < -tol)
        if not rising.any():
            break
        theta = float(np.arctan2(-dn[rising], dm[rising]).min())
        n = np.cos(theta) * n + np.sin(theta) * m
        n /= np.linalg.norm(n)
    return n, -1.0


def _support_margin(points: np.ndarray, com: np.ndarray, n: np.ndarray,
                    tol: float = 2e-4) -> tuple[float, float]:
    """Height of the frame origin above the plane and the distance from the centre of mass's
    projection to the support polygon's boundary (negative: outside), for down direction n,
    counting points within ``tol`` (m) of the plane as touching."""
    height = float((points @ n).max())
    _, flat = _support_polygon(points - com, n, tol)
    return height, _polygon_margin(flat) if len(flat) >= 3 else -1.0


def rest_poses(points: np.ndarray, com: np.ndarray, min_margin: float = 0.001
               ) -> tuple[RestPose, ...]:
    """Poses in which a rigid body with contact shape ``conv(points)`` rests on a plane.

    Upright: the face below the sole (down direction -z). Side: the body is laid on its +y
    (and on its -y) side in 6 slightly different orientations (rolled by up to 30 degrees,
    yawed by 10) and each topples quasi-statically into a rest (:func:`_topple`). Per
    side, the rest whose support polygon holds the centre of mass's projection furthest
    inside (at least ``min_margin``) is kept, if its down direction is within 60 degrees of
    the side.

    Args:
        points: ``(N, 3)`` contact points (hull vertices or a superset), m, shoe frame.
        com: ``(3,)`` centre of mass, m.
        min_margin: m.

    Returns:
        The upright pose, then 0-2 side poses (+y side first).
    """
    points = np.asarray(points, dtype=np.float64)
    down = np.array([0.0, 0.0, -1.0])
    height, margin = _support_margin(points, com, down)
    poses = [RestPose("upright", np.array([1.0, 0.0, 0.0, 0.0]), height, margin)]
    rolls = np.radians([-30.0, 0.0, 30.0])
    yaws = np.radians([-10.0, 10.0])
    for sign in (1.0, -1.0):
        best: RestPose | None = None
        for r in rolls:
            for y in yaws:
                start = np.array([math.sin(y) * math.cos(r), sign * math.cos(y) * math.cos(r),
                                  math.sin(r)])
                n, margin = _topple(points, com, start)
                if sign * n[1] < math.cos(math.radians(60)) or margin < min_margin:
                    continue
                if best is None or margin > best.margin:
                    best = RestPose("side", _quat_between(n, down),
                                    float((points @ n).max()), margin)
        if best is not None:
            poses.append(best)
    return tuple(poses)
