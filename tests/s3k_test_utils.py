"""Helpers shared by the env/rendering tests (not tests themselves)."""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

ENV_IDS = ("S3K-Box-v0", "S3K-BoxDistractors-v0")

OBS_LAYOUT = {  # key -> (shape given C, H, W; dtype)
    "images": (lambda c, h, w: (c, h, w, 3), np.uint8),
    "intrinsics": (lambda c, h, w: (c, 3, 3), np.float32),
    "extrinsics": (lambda c, h, w: (c, 4, 4), np.float32),
    "gripper_pos": (lambda c, h, w: (3,), np.float32),
    "gripper_quat": (lambda c, h, w: (4,), np.float32),
    "gripper_linvel": (lambda c, h, w: (3,), np.float32),
    "gripper_angvel": (lambda c, h, w: (3,), np.float32),
}


def close_mujoco_renderer(renderer: mujoco.Renderer) -> None:
    """Close a ``mujoco.Renderer`` with its own GL context current.

    ``mujoco.Renderer.close`` frees its ``MjrContext`` in whatever GL context is current; if
    that were an env's, the env's GL objects would be deleted (DESIGN.md) and later tests
    would see black frames.
    """
    gl = getattr(renderer, "_gl_context", None)
    if gl is not None:
        gl.make_current()
    renderer.close()


def segmentation(model: mujoco.MjModel, data: mujoco.MjData, cam_ids: Sequence[int],
                 height: int, width: int) -> np.ndarray:
    """``(C, H, W)`` int: id of the geom seen at every pixel (-1 where none), rendered by
    MuJoCo's own ``mujoco.Renderer`` with segmentation rendering."""
    renderer = mujoco.Renderer(model, height, width)
    try:
        renderer.enable_segmentation_rendering()
        out = []
        for cam in cam_ids:
            renderer.update_scene(data, camera=int(cam))
            seg = renderer.render()
            out.append(np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1))
        return np.stack(out)
    finally:
        close_mujoco_renderer(renderer)


def body_geoms(model: mujoco.MjModel, body_name: str) -> set[int]:
    """Ids of the geoms of one body."""
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
    assert bid >= 0, f"model has no body {body_name!r}"
    return {g for g in range(model.ngeom) if model.geom_bodyid[g] == bid}


def free_qpos_adr(model: mujoco.MjModel, body_name: str) -> int:
    """qpos address of a body's free joint."""
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
    assert bid >= 0, f"model has no body {body_name!r}"
    return int(model.jnt_qposadr[model.body_jntadr[bid]])


def place_gripper(env, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
    """Teleport the gripper and its mocap target (at rest) and run ``mj_forward``."""
    u = env.unwrapped
    m, d = u.model, u.data
    adr = free_qpos_adr(m, "gripper")
    bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "gripper")
    dof = int(m.jnt_dofadr[m.body_jntadr[bid]])
    d.qpos[adr : adr + 3] = pos
    d.qpos[adr + 3 : adr + 7] = quat
    d.qvel[dof : dof + 6] = 0.0
    mocap = int(m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "gripper_target")])
    d.mocap_pos[mocap] = pos
    d.mocap_quat[mocap] = quat
    mujoco.mj_forward(m, d)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of w-first quaternions."""
    w1, v1 = a[0], np.asarray(a[1:])
    w2, v2 = b[0], np.asarray(b[1:])
    return np.concatenate([[w1 * w2 - v1 @ v2], w1 * v2 + w2 * v1 + np.cross(v1, v2)])


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


#: Env-checker warnings our envs trigger by design (unbounded Box spaces, wrapper spaces).
ALLOWED_CHECKER_WARNINGS = ("infinity", "different from the unwrapped")


def assert_env_checker_passes(env) -> None:
    """Gymnasium's ``check_env`` on the env and on its unwrapped env, with no warning other
    than :data:`ALLOWED_CHECKER_WARNINGS`."""
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        check_env(env)
    bad = [str(w.message) for w in caught
           if not any(s in str(w.message) for s in ALLOWED_CHECKER_WARNINGS)]
    assert not bad, bad
