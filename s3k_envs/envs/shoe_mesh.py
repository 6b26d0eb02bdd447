"""Procedural sneakers: 16 deterministic shoe instances as triangle meshes (pure numpy).

Every instance is generated from its id alone (no downloads, no randomness outside a
``numpy`` generator seeded with the id), so the same id gives bitwise the same shoe in every
process. :func:`generate_shoe` is cached per id (~0.05 s per shoe).

Shoe frame (the body frame of ``shoe_<id>`` in S3K-Shoes-v0): **x from heel to toe, y to the
shoe's left, z up, origin on the ground plane (sole bottom) at mid-length**. All lengths are
in metres. Left shoes are mirror images (y -> -y) of right ones.

Construction:

* **Sole**: a foot outline (heel, waist, ball and toe widths; elliptic heel and toe caps; the
  toe tip shifted towards the big-toe side, the waist towards the outer side), extruded
  between a bottom with heel bevel and toe spring and a top that is thicker under the heel
  (heel drop). Two parts: outsole (bottom layer) and midsole.
* **Upper**: lofted from superellipse cross-sections ``|y/w|^n + |z/h|^n = 1`` (tapered
  towards the top) over the sole's outline inset by a welt. It is a closed shell with a wall
  thickness: textured outer skin, lining, a rim around the collar opening, and an insole.
  The opening runs from the heel to the throat; its rim follows a collar line (dipping at
  the ankle; as high as the throat for high-tops) cut where the section already curves in,
  so the collar hugs the ankle. The skin's texture paints the regions on the surface: main
  colour, heel counter, eyestays along the lacing, a foxing band and a side decoration
  (three stripes, a swoosh or a wavy panel).
* **Tongue**: a curved slab lying on the instep under the laces and rising out of the throat.
* **Laces**: tubes across the tongue. **Heel tab**: a small box behind the collar.

Keypoints (:data:`KEYPOINT_NAMES`), in the shoe frame:

* ``front``: the toe tip of the sole, on its top edge (where the upper meets the sole);
* ``tongue``: the top of the tongue (centre of its top end, mid-thickness);
* ``heel``: the back of the heel at collar height: the centre of the heel tab's back face,
  level with the top of the collar at the back. (At sole level the spot is under the collar
  and heel tab, out of reach of a gripper coming from above.)

``front`` and ``heel`` are at the two ends of the shoe: their horizontal distance is the
shoe length to within a few millimetres; ``heel`` is 5-12 cm higher.

Physics: collision shapes are the convex hulls of two point sets (sole; a coarse grid of the
upper plus tongue and heel tab) and a box under the flat part of the sole (plane-box contacts
rest without jitter). Mass properties: the sole as a solid, the upper and tongue as a shell
(55 % / 45 % of the mass). :attr:`ShoeModel.rest_poses` lists the poses in which the shoe
rests on a plane: upright, and lying on one or both sides.
"""

from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from s3k_envs.envs.rigid_body import (
    RestPose,
    rest_poses,
    second_moment_to_inertia,
    shell_properties,
    signed_volume,
    solid_properties,
)

NUM_INSTANCES = 16
#: Instance ids of the training and held-out test shoes.
TRAIN_INSTANCES: tuple[int, ...] = tuple(range(12))
TEST_INSTANCES: tuple[int, ...] = tuple(range(12, 16))
#: Keypoint order of :attr:`ShoeModel.keypoints` (and of the env's ``info["keypoints"]``).
KEYPOINT_NAMES: tuple[str, ...] = ("front", "tongue", "heel")
#: Range of shoe lengths (sole length, heel to toe), m.
LENGTH_RANGE = (0.24, 0.31)

_SEED = 0x5E0E5
_WALL = 0.004  # upper wall thickness, m
_KINDS = {  # instance id -> style
    **dict.fromkeys((0, 2, 5, 7, 9, 12, 15), "runner"),
    **dict.fromkeys((1, 3, 6, 8, 11, 13), "court"),
    **dict.fromkeys((4, 10, 14), "high"),
}


# --------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class MeshPart:
    """One coloured triangle mesh of a shoe.

    Attributes:
        name: ``"outsole"``, ``"sole"``, ``"upper"`` (textured), ``"lining"``, ``"insole"``,
            ``"tongue"``, ``"laces"`` or ``"heel_tab"``.
        vertices: ``(V, 3)`` float64 positions in the shoe frame, m.
        faces: ``(F, 3)`` int32 vertex indices, counter-clockwise seen from outside.
        rgba: ``(4,)`` colour in [0, 1] (white for a textured part).
        texture: ``(H, W, 3)`` uint8 image or None; row 0 is texture coordinate v = 0.
        texcoords: ``(T, 2)`` float (u, v) in [0, 1], or None.
        face_texcoords: ``(F, 3)`` int32 indices into ``texcoords`` per face corner, or None.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    rgba: tuple[float, float, float, float]
    texture: np.ndarray | None = None
    texcoords: np.ndarray | None = None
    face_texcoords: np.ndarray | None = None


@dataclass(frozen=True)
class ShoeParams:
    """Shape and colour parameters of one instance (lengths in m, colours RGB in [0, 1]).

    Main attributes: ``kind`` ("runner", "court" or "high"-top); ``length`` (sole, heel tip
    to toe tip); ``ball_width``, ``waist_width``, ``heel_width`` (full sole widths);
    ``left`` (mirrored); ``sole_heel``, ``sole_fore`` (sole thickness under heel and ball);
    ``toe_spring``; ``welt`` (sole rim around the upper); ``toe_height``,
    ``throat_height`` (upper height above the sole top at the toe box and at the front of
    the opening); ``collar_back``, ``collar_front``, ``collar_dip`` (collar line);
    ``opening_end``, ``lacing_end`` (fractions of the length where the opening ends and how
    far the lacing runs on); ``exponent``, ``taper`` (superellipse sections); tongue and
    lace sizes; ``decoration`` ("stripes", "swoosh", "panel", "plain"); ``colors`` (by
    role: main, accent, sole, outsole, lace, tongue, lining, insole, eyestay).
    """

    instance_id: int
    kind: str
    length: float
    ball_width: float
    waist_width: float
    heel_width: float
    left: bool
    sole_heel: float
    sole_fore: float
    toe_spring: float
    heel_bevel: float
    welt: float
    toe_height: float
    throat_height: float
    collar_back: float
    collar_front: float
    collar_dip: float
    collar_cut: float
    opening_end: float
    lacing_end: float
    exponent: float
    taper: float
    toe_cap: float
    tongue_width: float
    tongue_thickness: float
    tongue_rise: float
    tongue_lean: float
    num_laces: int
    lace_radius: float
    heel_counter: float
    foxing: float
    decoration: str
    colors: dict[str, tuple[float, float, float]] = field(hash=False, compare=False)


@dataclass(frozen=True)
class ShoeModel:
    """A generated shoe instance.

    Attributes:
        params: the :class:`ShoeParams` it was built from.
        parts: visual meshes (closed surfaces except the insole).
        collision_points: point sets whose convex hulls are collision shapes, each
            ``(N_i, 3)`` m in the shoe frame: the sole (its bottom lifted by 1 mm) and the
            upper with tongue and heel tab.
        collision_box: ``(2, 3)`` centre and half-sizes (m) of a box under the flat part of
            the sole, the shoe's contact with the table when upright.
        keypoints: ``(3, 3)`` local keypoints in :data:`KEYPOINT_NAMES` order, m.
        mass: kg. com: ``(3,)`` centre of mass, m. inertia: ``(3, 3)`` inertia tensor about
            the centre of mass in shoe-frame axes, kg m^2.
        rest_poses: upright first, then the stable side poses.
    """

    params: ShoeParams
    parts: tuple[MeshPart, ...]
    collision_points: tuple[np.ndarray, ...]
    collision_box: np.ndarray
    keypoints: np.ndarray
    mass: float
    com: np.ndarray
    inertia: np.ndarray
    rest_poses: tuple[RestPose, ...]

    @property
    def instance_id(self) -> int:
        """Instance id, 0..15."""
        return self.params.instance_id

    @property
    def length(self) -> float:
        """Sole length, heel tip to toe tip, m."""
        return self.params.length

    @property
    def vertices(self) -> np.ndarray:
        """``(V, 3)`` all visual mesh vertices in the shoe frame, m."""
        return np.concatenate([p.vertices for p in self.parts])


# --------------------------------------------------------------------------- parameters
def _check_id(instance_id: int) -> int:
    if isinstance(instance_id, bool) or not isinstance(instance_id, (int, np.integer)) or not (
        0 <= instance_id < NUM_INSTANCES
    ):
        raise ValueError(f"shoe instance id: expected an int 0..{NUM_INSTANCES - 1}, "
                         f"got {instance_id!r}")
    return int(instance_id)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (r, g, b)


def _palette(rng: np.random.Generator, kind: str, instance_id: int
             ) -> dict[str, tuple[float, float, float]]:
    style = rng.choice(["dark", "light", "colour"], p=[0.3, 0.25, 0.45])
    # Golden-ratio hue steps keep the 16 instances' hues apart.
    hue = (0.618034 * instance_id + rng.uniform(-0.06, 0.06)) % 1.0
    if style == "dark":
        main = _hsv(hue, rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.25))
    elif style == "light":
        main = _hsv(hue, rng.uniform(0.0, 0.12), rng.uniform(0.82, 0.95))
    else:
        if abs(((hue - 0.07) + 0.5) % 1.0 - 0.5) < 0.06:  # too close to the wooden table
            hue += 0.5
        main = _hsv(hue, rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.85))
    if style == "colour" and rng.uniform() < 0.4:
        accent = (0.95, 0.95, 0.93) if rng.uniform() < 0.5 else (0.1, 0.1, 0.11)
    else:
        accent = _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
    sole_choice = rng.uniform()
    if kind == "court" and sole_choice < 0.3:
        sole = (0.62, 0.43, 0.24)  # gum
    elif sole_choice < 0.72 or style == "dark":
        sole = _hsv(0.1, rng.uniform(0.0, 0.08), rng.uniform(0.88, 0.97))  # white / off-white
    elif sole_choice < 0.88:
        sole = (0.12, 0.12, 0.13)
    else:
        sole = _hsv(hue + 0.5, rng.uniform(0.3, 0.6), rng.uniform(0.7, 0.9))
    outsole = tuple(0.55 * c for c in sole) if sum(sole) > 1.0 else (0.22, 0.2, 0.19)
    if style == "light":
        lace = accent if rng.uniform() < 0.5 else (0.2, 0.2, 0.22)
    else:
        lace = (0.96, 0.96, 0.94) if rng.uniform() < 0.7 else accent
    tongue = main if rng.uniform() < 0.65 else tuple(min(1.0, 0.25 + 0.85 * c) for c in main)
    lining = _hsv(hue, rng.uniform(0.0, 0.4), rng.uniform(0.1, 0.2))
    insole = _hsv(hue, rng.uniform(0.0, 0.3), rng.uniform(0.28, 0.42))
    eyestay = accent if rng.uniform() < 0.5 else tuple(0.6 * c for c in main)
    return {"main": main, "accent": accent, "sole": sole, "outsole": outsole, "lace": lace,
            "tongue": tongue, "lining": lining, "insole": insole, "eyestay": eyestay}


def shoe_params(instance_id: int) -> ShoeParams:
    """The deterministic parameters of instance ``instance_id`` (0..15).

    Lengths are stratified over 24.4..30.6 cm (a fixed permutation of 16 strata, jittered
    inside each), so every instance has its own size, at least 2 mm from any other.
    """
    iid = _check_id(instance_id)
    rng = np.random.default_rng([_SEED, iid])
    stratum = np.random.default_rng(_SEED).permutation(NUM_INSTANCES)[iid]
    length = 0.243 + 0.064 * (stratum + rng.uniform(0.25, 0.75)) / NUM_INSTANCES
    kind = _KINDS[iid]
    k = length / 0.27  # heights scale with the shoe
    ball = length * rng.uniform(0.35, 0.39)
    throat = k * (rng.uniform(0.1, 0.115) if kind == "high" else rng.uniform(0.06, 0.072))
    if kind == "high":  # the collar wraps the ankle: as high at the back as at the throat
        collar_back = throat + k * rng.uniform(-0.005, 0.008)
        dip = k * rng.uniform(0.004, 0.01)
    else:
        collar_back = k * rng.uniform(0.05, 0.062)
        dip = k * rng.uniform(0.008, 0.015)
    collar_front = throat - k * rng.uniform(0.008, 0.014)
    sole_heel = rng.uniform(0.026, 0.038) if kind == "runner" else rng.uniform(0.02, 0.027)
    sole_fore = sole_heel - (rng.uniform(0.008, 0.014) if kind == "runner"
                             else rng.uniform(0.002, 0.006))
    rise = k * rng.uniform(0.014, 0.028)
    decorations = ["stripes", "swoosh", "panel", "plain"]
    return ShoeParams(
        instance_id=iid,
        kind=kind,
        length=float(length),
        ball_width=float(ball),
        waist_width=float(length * rng.uniform(0.27, 0.3)),
        heel_width=float(length * rng.uniform(0.25, 0.28)),
        left=bool(rng.uniform() < 0.5),
        sole_heel=float(sole_heel),
        sole_fore=float(sole_fore),
        toe_spring=float(rng.uniform(0.01, 0.018) if kind == "runner"
                         else rng.uniform(0.004, 0.009)),
        heel_bevel=float(rng.uniform(0.002, 0.005)),
        welt=float(rng.uniform(0.003, 0.006)),
        toe_height=float(k * rng.uniform(0.034, 0.042)),
        throat_height=float(throat),
        collar_back=float(collar_back),
        collar_front=float(collar_front),
        collar_dip=float(dip),
        collar_cut=float(rng.uniform(0.82, 0.9)),
        opening_end=float(rng.uniform(0.3, 0.34) if kind == "high" else rng.uniform(0.38, 0.44)),
        lacing_end=float(rng.uniform(0.26, 0.3) if kind == "high" else rng.uniform(0.2, 0.25)),
        exponent=float(rng.uniform(2.4, 3.2)),
        taper=float(rng.uniform(0.12, 0.22)),
        toe_cap=float(rng.uniform(0.15, 0.2)),
        tongue_width=float(rng.uniform(0.4, 0.5)),
        tongue_thickness=float(rng.uniform(0.005, 0.008)),
        tongue_rise=float(rise),
        tongue_lean=float(k * (rng.uniform(0.0, 0.01) if kind == "high"
                               else rng.uniform(0.008, 0.022))),
        num_laces=int(rng.integers(6, 8) if kind == "high" else rng.integers(4, 7)),
        lace_radius=float(rng.uniform(0.0022, 0.003)),
        heel_counter=float(rng.uniform(0.12, 0.2) if rng.uniform() < 0.75 else 0.0),
        foxing=float(rng.uniform(0.008, 0.014) if kind != "runner" else 0.0),
        decoration=str(decorations[rng.integers(len(decorations))]),
        colors=_palette(rng, kind, iid),
    )


# --------------------------------------------------------------------------- profiles
def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _profile(knots_s: list[float], knots_v: list[float], s: np.ndarray,
             sigma: float = 0.04) -> np.ndarray:
    """Piecewise-linear profile through the knots, Gaussian-smoothed (sigma in units of s)."""
    fine = np.linspace(0.0, 1.0, 801)
    values = np.interp(fine, knots_s, knots_v)
    half = int(3 * sigma * 800)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / (sigma * 800)) ** 2)
    padded = np.pad(values, half, mode="edge")
    smooth = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    return np.interp(s, fine, smooth)


def _end_caps(s: np.ndarray, head: float, tail: float) -> np.ndarray:
    """Elliptic rounding factor: 0 at s = 0 and s = 1 with vertical tangents, 1 between
    ``head`` and ``1 - tail`` (``head = 0``: no rounding at s = 0)."""
    out = np.ones_like(s)
    a = np.clip((head - s) / head, 0.0, 1.0) if head > 0 else np.zeros_like(s)
    b = np.clip((s - 1 + tail) / tail, 0.0, 1.0)
    out = out * np.sqrt(1 - a**2) * np.sqrt(1 - b**2)
    return out


def _raw_width(p: ShoeParams, s: np.ndarray) -> np.ndarray:
    hw, ww, bw = p.heel_width, p.waist_width, p.ball_width
    return _profile([0.0, 0.1, 0.2, 0.44, 0.6, 0.72, 0.84, 1.0],
                    [0.96 * hw, hw, 0.99 * hw, ww, 0.5 * (ww + bw) + 0.05 * (bw - ww), bw,
                     0.97 * bw, 0.88 * bw], s)


def _centre(p: ShoeParams, s: np.ndarray) -> np.ndarray:
    """Outline centre line, y (m): big-toe side is +y for a right shoe."""
    bw = p.ball_width
    return bw * (0.07 * _smoothstep(0.6, 1.0, s) - 0.035 * np.exp(-(((s - 0.45) / 0.13) ** 2)))


def _sole_bottom(p: ShoeParams, s: np.ndarray) -> np.ndarray:
    return (p.heel_bevel * np.clip((0.07 - s) / 0.07, 0, 1) ** 2
            + p.toe_spring * np.clip((s - 0.7) / 0.3, 0, 1) ** 2)


def _sole_thickness(p: ShoeParams, s: np.ndarray) -> np.ndarray:
    thick = p.sole_fore + (p.sole_heel - p.sole_fore) * (1 - _smoothstep(0.28, 0.62, s))
    return thick * (1 - 0.2 * _smoothstep(0.85, 1.0, s))


def _section(r: float, n: float, taper: float, j_wall: int, j_top: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Unit cross-section of the upper, from the +y bottom over the top to the -y bottom.

    The wall columns (``j_wall + 1`` points per side) are uniform in height up to the rim
    height ratio ``r``; the top (``j_top`` points per side) is uniform in the superellipse
    angle. Returns ``(N,)`` y coefficients (times the half-width) and ``(N,)`` height
    coefficients (times the height), exactly mirror-symmetric, N = 2 (j_wall + j_top) + 1.
    """
    zn_wall = r * np.linspace(0.0, 1.0, j_wall + 1)
    y_wall = (1 - zn_wall**n) ** (1 / n)
    theta_c = math.asin(r ** (n / 2))
    theta = np.linspace(theta_c, math.pi / 2, j_top + 1)[1:]
    y_top = np.cos(theta) ** (2 / n)
    z_top = np.sin(theta) ** (2 / n)
    y_top[-1], z_top[-1] = 0.0, 1.0
    yh = np.concatenate([y_wall, y_top])
    zh = np.concatenate([zn_wall, z_top])
    yh = yh * (1 - taper * zh)
    return np.concatenate([yh, -yh[-2::-1]]), np.concatenate([zh, zh[-2::-1]])


# --------------------------------------------------------------------------- mesh building
class _Builder:
    """Accumulates vertices and labelled triangles; ``finish`` welds and cleans."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.count = 0

    def add(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.reshape(-1, 3)
        self.vertices.append(flat)
        idx = np.arange(self.count, self.count + len(flat)).reshape(pts.shape[:-1])
        self.count += len(flat)
        return idx

    def tris(self, faces: np.ndarray, label: int | np.ndarray) -> None:
        faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        self.faces.append(faces)
        self.labels.append(np.broadcast_to(np.asarray(label), (len(faces),)).astype(np.int64))

    def grid(self, idx: np.ndarray, labels: int | np.ndarray, mask: np.ndarray | None = None
             ) -> None:
        """Two triangles per cell (i, j) of a vertex grid ``idx (I, J)``, where ``mask``."""
        a, b = idx[:-1, :-1], idx[1:, :-1]
        c, d = idx[1:, 1:], idx[:-1, 1:]
        lab = np.broadcast_to(np.asarray(labels), a.shape)
        keep = np.ones(a.shape, dtype=bool) if mask is None else mask
        t1 = np.stack([a, d, c], axis=-1)[keep]
        t2 = np.stack([a, c, b], axis=-1)[keep]
        self.tris(np.concatenate([t1, t2]), np.concatenate([lab[keep], lab[keep]]))

    def strip(self, a: np.ndarray, b: np.ndarray, label: int) -> None:
        """Quads between two index polylines of the same length."""
        self.grid(np.stack([a, b], axis=1), label)

    def finish(self, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weld coincident vertices, drop degenerate faces and unused vertices.

        Returns ``(V, 3)`` vertices, ``(F, 3)`` faces and ``(F,)`` labels; the kept faces in
        the indices given to ``add`` are left in ``self.original_faces``.
        """
        verts = np.concatenate(self.vertices)
        faces = np.concatenate(self.faces)
        original = faces
        labels = np.concatenate(self.labels)
        keys = np.round(verts / tol).astype(np.int64)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        verts, faces = verts[first], inverse[faces]
        ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (
            faces[:, 0] != faces[:, 2])
        area = 0.5 * np.linalg.norm(np.cross(verts[faces[:, 1]] - verts[faces[:, 0]],
                                             verts[faces[:, 2]] - verts[faces[:, 0]]), axis=1)
        ok &= area > 1e-12
        faces, labels = faces[ok], labels[ok]
        self.original_faces = original[ok]
        used, compact = np.unique(faces, return_inverse=True)
        return verts[used], compact.reshape(-1, 3), labels


def _oriented(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return faces if signed_volume(verts, faces) >= 0 else faces[:, ::-1].copy()


def _compact(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Used indices ``(U,)`` and the faces renumbered into them ``(F, 3)`` int32."""
    used, compact = np.unique(faces, return_inverse=True)
    return used, compact.reshape(-1, 3).astype(np.int32)


def _split(name_of: dict[int, str], verts: np.ndarray, faces: np.ndarray, labels: np.ndarray,
           colors: dict[int, tuple[float, float, float]]) -> list[MeshPart]:
    parts = []
    for label, name in name_of.items():
        sel = faces[labels == label]
        if len(sel) == 0:
            continue
        used, compact = np.unique(sel, return_inverse=True)
        parts.append(MeshPart(name, verts[used], compact.reshape(-1, 3).astype(np.int32),
                              (*colors[label], 1.0)))
    return parts


# --------------------------------------------------------------------------- geometry
def _sole(p: ShoeParams, ns: int = 56) -> tuple[list[MeshPart], dict[str, np.ndarray]]:
    L = p.length
    s = 0.5 * (1 - np.cos(np.pi * np.linspace(0.0, 1.0, ns)))
    x = -L / 2 + s * L
    head = 0.5 * p.heel_width / L * 1.05
    tail = 0.6 * p.ball_width / L
    w = 0.5 * _raw_width(p, s) * _end_caps(s, head, tail)
    c = _centre(p, s)
    zb = _sole_bottom(p, s)
    thick = _sole_thickness(p, s)
    zo = zb + np.minimum(0.3 * thick, 0.005)
    zt = zb + thick
    b = _Builder()

    def level(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plus = b.add(np.stack([x, c + w, z], axis=1))
        minus = b.add(np.stack([x, c - w, z], axis=1))
        return plus, minus

    rings = [level(z) for z in (zb, zo, zt)]
    # Caps: ladder between the +y and -y polylines. Bands: around the closed outline.
    b.grid(np.stack([rings[0][1], rings[0][0]], axis=1), 0)
    b.grid(np.stack([rings[2][0], rings[2][1]], axis=1), 1)
    for k, label in ((0, 0), (1, 1)):
        lo = np.concatenate([rings[k][0], rings[k][1][::-1]])
        hi = np.concatenate([rings[k + 1][0], rings[k + 1][1][::-1]])
        b.strip(np.append(lo, lo[0]), np.append(hi, hi[0]), label)
    verts, faces, labels = b.finish()
    faces = _oriented(verts, faces)
    colors = {0: p.colors["outsole"], 1: p.colors["sole"]}
    parts = _split({0: "outsole", 1: "sole"}, verts, faces, labels, colors)
    # Contact with the table when upright: a box under the flat part of the sole, inside
    # the outline (a plane-box contact rests without the jitter that many coplanar hull
    # vertices cause). The sole's hull is lifted by 1 mm there so that it does not compete.
    flat = zb <= 1e-12
    lo = np.array([x[flat].min() + 0.002, (c - w)[flat].max() + 0.002, 0.0])
    hi = np.array([x[flat].max() - 0.002, (c + w)[flat].min() - 0.002, 0.5 * zt.min()])
    hull = verts.copy()
    hull[:, 2] = np.maximum(hull[:, 2], 0.001)
    keys = {
        "front": np.array([x[-1], c[-1], zt[-1]]),
        "points": hull,
        "box": np.stack([0.5 * (lo + hi), 0.5 * (hi - lo)]),
    }
    return parts, keys


_TEXTURE_SIZE = (256, 512)  # rows (v: around the section), columns (u: heel to toe)


def _upper(p: ShoeParams) -> tuple[list[MeshPart], dict[str, np.ndarray]]:
    L, m, e = p.length, p.welt, _WALL
    s_o = p.opening_end
    s_a = s_o * (1 - np.cos(0.5 * np.pi * np.linspace(0.0, 1.0, 17)))
    s_b = s_o + (1 - s_o) * np.sin(0.5 * np.pi * np.linspace(0.0, 1.0, 28)[1:])
    su = np.concatenate([s_a, s_b])
    i_o = len(s_a) - 1
    lu = L - 2 * m
    xu = -L / 2 + m + su * lu
    sp = (xu + L / 2) / L  # sole parameter under each station
    head = (0.5 * p.heel_width - m) / lu * 1.05
    tail = (0.6 * p.ball_width) / lu
    wu = np.maximum(0.5 * _raw_width(p, sp) - m, 1e-3) * _end_caps(su, head, tail)
    cu = _centre(p, sp)
    z0 = _sole_bottom(p, sp) + _sole_thickness(p, sp)

    # Collar line (height above the sole top) over the opening, and the upper's height. Over
    # the opening the section is cut at a fraction collar_cut of its (virtual) height, where
    # the superellipse already curves inwards: the collar hugs the ankle.
    u = np.clip(su / s_o, 0.0, 1.0)
    collar = (p.collar_back + (p.collar_front - p.collar_back) * u**2
              - p.collar_dip * np.sin(np.pi * u) ** 1.5)
    thr, toe = p.throat_height, p.toe_height
    s_lace = s_o + p.lacing_end
    height = _profile([0.0, s_o, s_lace, 0.84, 1.0],
                      [thr, thr, 0.55 * thr + 0.45 * toe, toe, toe], su, sigma=0.03)
    opening = su <= s_o + 1e-12
    height = np.where(opening, np.maximum(height, collar / p.collar_cut), height)
    height = height * _end_caps(su, 0.0, p.toe_cap)
    ratio = np.full_like(su, collar[i_o] / height[i_o])
    ratio[opening] = collar[opening] / height[opening]

    # Inner skin: shrunk copy of the outer one; its rim sits at the same collar height.
    x_mid = 0.5 * (xu[0] + xu[-1])
    x_in = x_mid + (xu - x_mid) * (lu - 2 * e) / lu
    w_in = wu * (1 - 2 * e / (2 * wu.max()))
    h_in = height - e * np.minimum(1.0, height / 0.02)
    ratio_in = np.full_like(su, collar[i_o] / h_in[i_o])
    ratio_in[opening] = collar[opening] / h_in[opening]

    j_wall, j_top = 8, 6
    n = p.exponent
    # Taper (narrower towards the top) at the ankle, fuller walls over the forefoot.
    taper = p.taper * (1 - 0.6 * _smoothstep(s_o, s_o + 0.2, su))
    outer_y, outer_z, inner_y, inner_z = [], [], [], []
    for i in range(len(su)):
        yc, zc = _section(float(ratio[i]), n, float(taper[i]), j_wall, j_top)
        outer_y.append(cu[i] + wu[i] * yc)
        outer_z.append(z0[i] + height[i] * zc)
        yc, zc = _section(float(ratio_in[i]), n, float(taper[i]), j_wall, j_top)
        inner_y.append(cu[i] + w_in[i] * yc)
        inner_z.append(z0[i] + h_in[i] * zc)
    ncol = len(outer_y[0])
    oy, oz = np.array(outer_y), np.array(outer_z)
    iy, iz = np.array(inner_y), np.array(inner_z)
    ox = np.repeat(xu[:, None], ncol, axis=1)
    ix = np.repeat(x_in[:, None], ncol, axis=1)
    j0, j1 = j_wall, ncol - 1 - j_wall

    b = _Builder()
    outer = b.add(np.stack([ox, oy, oz], axis=-1))
    inner = b.add(np.stack([ix, iy, iz], axis=-1))
    cells = np.ones((len(su) - 1, ncol - 1), dtype=bool)
    cells[:i_o, j0:j1] = False  # the collar opening
    b.grid(outer, 0, cells)
    b.grid(inner[:, ::-1], 1, cells[:, ::-1])
    # Rim around the opening: +y rim back to the heel, -y rim forward, throat edge.
    loop = ([(i, j0) for i in range(i_o, -1, -1)] + [(i, j1) for i in range(1, i_o + 1)]
            + [(i_o, j) for j in range(j1 - 1, j0 - 1, -1)])
    rows, cols = np.array(loop).T
    b.strip(inner[rows, cols], outer[rows, cols], 1)
    # Bottom strip (on the sole, closes the shell).
    bottom = np.concatenate([outer[:, 0], outer[::-1, -1]])
    bottom_in = np.concatenate([inner[:, 0], inner[::-1, -1]])
    b.strip(bottom_in, bottom, 1)
    verts, faces, labels = b.finish()
    original = b.original_faces
    if signed_volume(verts, faces) < 0:
        faces, original = faces[:, ::-1].copy(), original[:, ::-1].copy()

    # The outer skin is textured: u = station parameter s, v = column / (ncol - 1).
    uv = np.zeros((b.count, 2))
    uv[outer.ravel()] = np.stack(np.broadcast_arrays(
        su[:, None], np.arange(ncol)[None, :] / (ncol - 1)), axis=-1).reshape(-1, 2)
    sel = labels == 0
    used, skin_faces = _compact(faces[sel])
    tex_used, skin_tex = _compact(original[sel])
    texture = _upper_texture(p, su, oz - z0[:, None], np.abs(oy - cu[:, None]), wu, j0, j1)
    parts = [MeshPart("upper", verts[used], skin_faces, (1.0, 1.0, 1.0, 1.0), texture,
                      uv[tex_used], skin_tex)]
    used, lining_faces = _compact(faces[~sel])
    parts.append(MeshPart("lining", verts[used], lining_faces, (*p.colors["lining"], 1.0)))

    # Insole: a floor just above the sole top, inside the lining (faces up).
    ins = _Builder()
    lift = np.array([0.0, 0.0, 0.0015])
    plus = ins.add(np.stack([ix[:, 0], iy[:, 0], iz[:, 0]], axis=1) + lift)
    minus = ins.add(np.stack([ix[:, -1], iy[:, -1], iz[:, -1]], axis=1) + lift)
    ins.grid(np.stack([minus, plus], axis=1), 0)
    iv, if_, _ = ins.finish()
    normal_z = np.cross(iv[if_[:, 1]] - iv[if_[:, 0]], iv[if_[:, 2]] - iv[if_[:, 0]])[:, 2]
    if normal_z.sum() < 0:
        if_ = if_[:, ::-1].copy()
    parts.append(MeshPart("insole", iv, if_.astype(np.int32), (*p.colors["insole"], 1.0)))
    info = {
        "stations": su, "x": xu, "centre": cu, "half_width": wu, "z0": z0, "height": height,
        "outer_y": oy, "outer_z": oz, "j0": np.array(j0), "j1": np.array(j1),
        "i_o": np.array(i_o), "points": _coarse_grid(np.stack([ox, oy, oz], axis=-1), i_o, j0, j1),
    }
    return parts, info


def _coarse_grid(grid: np.ndarray, i_o: int, j0: int, j1: int) -> np.ndarray:
    """Every other station and column of the outer skin's vertex grid ``(I, J, 3)`` (plus
    the rim columns), without the virtual top over the opening: ``(P, 3)`` points whose
    convex hull is the upper's collision shape (fewer, coarser faces rest more calmly on
    the table than the full mesh's)."""
    rows = np.unique(np.r_[np.arange(0, grid.shape[0], 2), grid.shape[0] - 1, i_o])
    cols = np.unique(np.r_[np.arange(0, grid.shape[1], 2), grid.shape[1] - 1, j0, j1])
    ii, jj = np.meshgrid(rows, cols, indexing="ij")
    keep = ~((ii < i_o) & (jj > j0) & (jj < j1))
    return grid[ii[keep], jj[keep]]


def _upper_texture(p: ShoeParams, su: np.ndarray, h: np.ndarray, dy: np.ndarray,
                   wu: np.ndarray, j0: int, j1: int) -> np.ndarray:
    """Paint the outer skin's texture ``(256, 512, 3)`` uint8.

    Regions are defined on the shoe's surface: station parameter s, height above the sole
    top ``h (I, J)`` and distance from the centre line ``dy (I, J)`` (both m, per grid
    vertex, interpolated bilinearly to every texel): foxing band, heel counter, eyestays
    along the lacing, and a side decoration (three stripes, a swoosh or a wavy panel).
    """
    rows, cols = _TEXTURE_SIZE
    ncol = h.shape[1]
    uu = (np.arange(cols) + 0.5) / cols
    vv = (np.arange(rows) + 0.5) / rows
    fi = np.interp(uu, su, np.arange(len(su)))  # fractional station per texel column
    fj = vv * (ncol - 1)  # fractional grid column per texel row
    i0 = np.minimum(fi.astype(int), len(su) - 2)
    k0 = np.minimum(fj.astype(int), ncol - 2)
    a, c = (fi - i0)[None, :], (fj - k0)[:, None]

    def interp(grid: np.ndarray) -> np.ndarray:  # -> (rows, cols)
        g00, g10 = grid[i0][:, k0].T, grid[i0 + 1][:, k0].T
        g01, g11 = grid[i0][:, k0 + 1].T, grid[i0 + 1][:, k0 + 1].T
        return (1 - a) * (1 - c) * g00 + a * (1 - c) * g10 + (1 - a) * c * g01 + a * c * g11

    hh, yy = interp(h), interp(dy)
    s = np.broadcast_to(uu[None, :], hh.shape)
    top = np.broadcast_to(((fj >= j0) & (fj <= j1))[:, None], hh.shape)
    walls = ~top & (hh > p.foxing + 0.004)
    rng = np.random.default_rng([_SEED, p.instance_id, 1])
    L = p.length
    s_o, s_lace = p.opening_end, p.opening_end + p.lacing_end
    col = {k: np.asarray(v) for k, v in p.colors.items()}
    img = np.empty((*hh.shape, 3))
    img[:] = col["main"]
    if p.decoration == "stripes":
        start = rng.uniform(s_o - 0.05, s_o + 0.05)
        slope = rng.uniform(0.5, 0.9)
        q = (s - start) * L + slope * hh
        pitch, width = 0.017, rng.uniform(0.006, 0.009)
        img[walls & (q > 0) & (q < 3 * pitch) & (np.mod(q, pitch) < width)
            & (hh < 0.8 * p.throat_height)] = col["accent"]
    elif p.decoration == "swoosh":
        s0, s1 = rng.uniform(0.12, 0.2), rng.uniform(0.72, 0.8)
        t = np.clip((s - s0) / (s1 - s0), 0, 1)
        mid = p.foxing + 0.008 + (0.55 * p.collar_back) * (1 - t) ** 1.3
        thick = rng.uniform(0.012, 0.018) * np.sin(np.pi * t) ** 0.7
        img[walls & (s > s0) & (s < s1) & (np.abs(hh - mid) < 0.5 * thick)] = col["accent"]
    elif p.decoration == "panel":
        s0, s1 = rng.uniform(0.25, 0.35), rng.uniform(0.62, 0.72)
        wave = p.foxing + rng.uniform(0.018, 0.028) * (
            1 + 0.4 * np.sin(2 * np.pi * (s - s0) / (s1 - s0)))
        img[walls & (s > s0) & (s < s1) & (hh < wave)] = col["accent"]
    if p.heel_counter > 0:
        img[(s < p.heel_counter * (1 - 0.5 * hh / p.collar_back)) & ~top] = col["accent"]
    tongue_half = p.tongue_width * np.interp(s_o, su, wu)
    img[top & (s > s_o - 0.005) & (s < s_lace + 0.02) & (yy > 0.85 * tongue_half)
        & (yy < tongue_half + 0.012)] = col["eyestay"]
    if p.foxing > 0:
        img[hh < p.foxing] = col["sole"]
    return (img * 255).round().astype(np.uint8)


def _tongue_and_laces(p: ShoeParams, up: dict[str, np.ndarray]
                      ) -> tuple[list[MeshPart], np.ndarray, np.ndarray]:
    """Tongue slab and laces. Returns the parts, the tongue keypoint (3,) and the tongue's
    vertices (for the collision hull)."""
    su, xu, cu, wu = up["stations"], up["x"], up["centre"], up["half_width"]
    oy, oz = up["outer_y"], up["outer_z"]
    j0, j1, i_o = int(up["j0"]), int(up["j1"]), int(up["i_o"])
    s_lace = p.opening_end + p.lacing_end
    i_end = int(np.searchsorted(su, s_lace))
    tw = p.tongue_width * wu[i_o]
    th = p.tongue_thickness
    gap = 0.0025
    nu = 9
    uu = np.linspace(-1.0, 1.0, nu)

    def top_z(i: int, y_off: np.ndarray) -> np.ndarray:
        ys, zs = oy[i, j0 : j1 + 1] - cu[i], oz[i, j0 : j1 + 1]
        return np.interp(y_off, ys[::-1], zs[::-1])

    # Stations on the instep (from the lacing end back to the throat) ...
    centres, dips = [], []
    for i in range(i_end, i_o - 1, -1):
        zc = top_z(i, np.zeros(1))[0]
        centres.append([xu[i], cu[i], zc + gap])
        dips.append(zc - top_z(i, np.array([tw]))[0])
    centres = np.array(centres)
    dips = np.array(dips)
    # ... then out of the throat along a quadratic Bezier to the tip.
    p0 = centres[-1]
    t0 = p0 - centres[-2]
    t0 /= np.linalg.norm(t0)
    t0 = t0 + np.array([0.0, 0.0, p.tongue_rise / 0.02])  # leave the throat rising
    t0 /= np.linalg.norm(t0)
    p2 = p0 + np.array([-p.tongue_lean, 0.0, p.tongue_rise])
    p1 = p0 + t0 * 0.5 * np.linalg.norm(p2 - p0)
    tt = np.linspace(0.0, 1.0, 9)[1:, None]
    free = (1 - tt) ** 2 * p0 + 2 * (1 - tt) * tt * p1 + tt**2 * p2
    centres = np.concatenate([centres, free])
    dips = np.concatenate([dips, dips[-1] * (1 - 0.5 * tt[:, 0])])
    n_on = len(centres) - len(free)
    width = np.full(len(centres), tw)
    width[n_on:] = tw * np.sqrt(1 - 0.75 * tt[:, 0] ** 4)  # rounded top end
    tangent = np.gradient(centres, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([tangent[:, 2], np.zeros(len(centres)), -tangent[:, 0]], axis=1)
    normal *= np.sign(normal[:, 2:3] + 1e-9)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    y_hat = np.array([0.0, 1.0, 0.0])
    bottom = (centres[:, None] + width[:, None, None] * uu[None, :, None] * y_hat
              - (dips[:, None] * uu[None, :] ** 2)[..., None] * normal[:, None])
    top = bottom + th * normal[:, None]

    b = _Builder()
    tb, bb = b.add(top), b.add(bottom)
    b.grid(tb, 0)
    b.grid(bb[:, ::-1], 0)
    b.strip(bb[:, 0], tb[:, 0], 0)
    b.strip(tb[:, -1], bb[:, -1], 0)
    b.strip(tb[0], bb[0], 0)
    b.strip(bb[-1], tb[-1], 0)
    tv, tf, tl = b.finish()
    tf = _oriented(tv, tf)
    keypoint = centres[-1] + 0.5 * th * normal[-1]
    parts = _split({0: "tongue"}, tv, tf, tl, {0: p.colors["tongue"]})

    # Laces: tubes across the tongue at evenly spaced stations on the instep.
    r = p.lace_radius
    lace_s = np.linspace(p.opening_end + 0.03, s_lace - 0.025, p.num_laces)
    on_s = su[i_end : i_o - 1 : -1] if i_o > 0 else su[i_end::-1]
    lv, lf = [], []
    offset = 0
    for s_k in lace_s:
        pos = np.interp(s_k, on_s[::-1], np.arange(n_on)[::-1])
        k0 = int(min(math.floor(pos), n_on - 2))
        f = pos - k0
        c_k = (1 - f) * centres[k0] + f * centres[k0 + 1]
        n_k = (1 - f) * normal[k0] + f * normal[k0 + 1]
        n_k /= np.linalg.norm(n_k)
        dip_k = (1 - f) * dips[k0] + f * dips[k0 + 1]
        ul = np.linspace(-1.3, 1.3, 9)
        path = (c_k + (tw * ul)[:, None] * y_hat
                + ((th + r + 0.0005) - dip_k * ul**2)[:, None] * n_k)
        verts, faces = _tube(path, r, sides=6)
        lv.append(verts)
        lf.append(faces + offset)
        offset += len(verts)
    parts.append(MeshPart("laces", np.concatenate(lv), np.concatenate(lf).astype(np.int32),
                          (*p.colors["lace"], 1.0)))
    return parts, keypoint, tv


def _tube(path: np.ndarray, radius: float, sides: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Closed tube of a polygonal cross-section along ``path (P, 3)``; returns vertices
    ``(V, 3)`` and outward faces ``(F, 3)``."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    ref = np.array([0.0, 0.0, 1.0])
    n1 = np.cross(tangent, ref)
    n1 /= np.linalg.norm(n1, axis=1, keepdims=True)
    n2 = np.cross(tangent, n1)
    ang = 2 * np.pi * np.arange(sides + 1) / sides
    ring = (path[:, None] + radius * (np.cos(ang)[None, :, None] * n1[:, None]
                                      + np.sin(ang)[None, :, None] * n2[:, None]))
    ring[:, -1] = ring[:, 0]
    b = _Builder()
    idx = b.add(ring)
    b.grid(idx, 0)
    ends = b.add(path[[0, -1]])
    k = np.arange(sides)
    b.tris(np.stack([np.full(sides, ends[0]), idx[0, k + 1], idx[0, k]], axis=1), 0)
    b.tris(np.stack([np.full(sides, ends[1]), idx[-1, k], idx[-1, k + 1]], axis=1), 0)
    verts, faces, _ = b.finish()
    return verts, _oriented(verts, faces)


def _heel_tab(p: ShoeParams, up: dict[str, np.ndarray]
              ) -> tuple[MeshPart, np.ndarray, np.ndarray]:
    """Heel tab box behind the collar; returns the part, its corners ``(8, 3)`` and the
    ``heel`` keypoint ``(3,)``: the centre of its back face at the collar's height."""
    x_back = float(up["x"][0])
    c0 = float(up["centre"][0])
    z_top = float(up["z0"][0]) + p.collar_back
    k = p.length / 0.27
    half_w, tall, thick = k * 0.012, k * 0.011, 0.0045
    lo = np.array([x_back - thick, c0 - half_w, z_top - 0.016])
    hi = np.array([x_back + 0.002, c0 + half_w, z_top + tall])
    corners = np.array([[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1],
                         hi[2] if i & 4 else lo[2]] for i in range(8)])
    faces = np.array([[0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6], [0, 1, 5], [0, 5, 4],
                      [2, 6, 7], [2, 7, 3], [0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5]])
    faces = _oriented(corners, faces)
    part = MeshPart("heel_tab", corners, faces.astype(np.int32), (*p.colors["accent"], 1.0))
    return part, corners, np.array([x_back - thick, c0, z_top])


# --------------------------------------------------------------------------- assembly
def _merge(parts: list[MeshPart]) -> tuple[np.ndarray, np.ndarray]:
    verts, faces, offset = [], [], 0
    for part in parts:
        verts.append(part.vertices)
        faces.append(part.faces + offset)
        offset += len(part.vertices)
    return np.concatenate(verts), np.concatenate(faces)


def _mirror(part: MeshPart) -> MeshPart:
    verts = part.vertices * np.array([1.0, -1.0, 1.0])
    tex_faces = None if part.face_texcoords is None else part.face_texcoords[:, ::-1].copy()
    return MeshPart(part.name, verts, part.faces[:, ::-1].copy(), part.rgba, part.texture,
                    part.texcoords, tex_faces)


@functools.cache
def generate_shoe(instance_id: int) -> ShoeModel:
    """Build shoe instance ``instance_id`` (0..15), cached per process.

    Returns:
        A :class:`ShoeModel` (meshes, collision point sets, keypoints ``(3, 3)`` m, mass
        properties and rest poses), all in the shoe frame.
    """
    p = shoe_params(_check_id(instance_id))
    sole_parts, sole_info = _sole(p)
    upper_parts, up = _upper(p)
    tongue_parts, tongue_kp, tongue_pts = _tongue_and_laces(p, up)
    tab, tab_pts, heel = _heel_tab(p, up)
    parts = [*sole_parts, *upper_parts, *tongue_parts, tab]
    keypoints = np.stack([sole_info["front"], tongue_kp, heel])
    collision = [sole_info["points"], np.concatenate([up["points"], tongue_pts, tab_pts])]
    box = sole_info["box"]
    if p.left:
        flip = np.array([1.0, -1.0, 1.0])
        parts = [_mirror(part) for part in parts]
        keypoints = keypoints * flip
        collision = [pts * flip for pts in collision]
        box = np.stack([box[0] * flip, box[1]])
    corners = box[0] + box[1] * np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                                          for sz in (-1, 1)])

    mass = 0.22 + 0.25 * (p.length - LENGTH_RANGE[0]) / (LENGTH_RANGE[1] - LENGTH_RANGE[0])
    by_name = {part.name: part for part in parts}
    sole_v, sole_f = _merge([by_name["outsole"], by_name["sole"]])
    shell_v, shell_f = _merge([by_name["upper"], by_name["tongue"]])
    vol, c_sole, mom_sole = solid_properties(sole_v, sole_f)
    area, c_shell, mom_shell = shell_properties(shell_v, shell_f)
    m_sole, m_shell = 0.55 * mass, 0.45 * mass
    com = (m_sole * c_sole + m_shell * c_shell) / mass
    inertia = second_moment_to_inertia(mass, com, m_sole / vol * mom_sole
                                        + m_shell / area * mom_shell)
    poses = rest_poses(np.concatenate([*collision, corners]), com)
    for arr in (keypoints, com, inertia, box, *collision):
        arr.setflags(write=False)
    for part in parts:
        part.vertices.setflags(write=False)
        part.faces.setflags(write=False)
    return ShoeModel(p, tuple(parts), tuple(collision), box, keypoints, float(mass), com,
                     inertia, poses)
