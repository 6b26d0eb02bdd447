"""MultiViewCameras on other people's MuJoCo envs: ``keypoints_visible`` agrees with what
MuJoCo's segmentation render shows (keypoints at body origins: joints that sit inside the
parent link's end cap), the visibility rule's parts on hand-made cases, and automatic framing
fills the views."""

from __future__ import annotations

import copy

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from s3k_test_utils import close_mujoco_renderer

from s3k_envs.visibility import attached_bodies, point_in_geom, same_object_bodies
from s3k_envs.wrappers.multiview import MultiViewCameras

#: env id -> keypoints at body origins (the case that went wrong before the rule). Reacher's
#: base joint (``body:body0``) is left out: it lies where the world's base cylinder and the
#: first link are drawn at exactly the same depth (z-fighting), so the render itself flips
#: between the two (measured 63 of 72 views agree).
ENVS = {
    "Reacher-v5": ["body:body1", "body:fingertip"],
    "HalfCheetah-v5": ["body:bthigh", "body:bshin", "body:fthigh", "body:fshin"],
    "Ant-v5": ["body:aux_1", "body:aux_2", "body:front_left_leg", "body:back_leg"],
}


def _shows_keypoint(model: mujoco.MjModel, data: mujoco.MjData, geom: int, body: int,
                    point: np.ndarray) -> bool:
    """Reference: the segmentation pixel shows the keypoint's part — a geom of its own,
    parent or child body, or a geom of the same robot that contains the point."""
    if geom < 0:
        return False
    owner = int(model.geom_bodyid[geom])
    if owner in attached_bodies(model.body_parentid, body):
        return True
    return owner in same_object_bodies(model.body_rootid, body) and point_in_geom(
        model, data, geom, point, 3e-3)


def agreement(env_id: str, size: int = 96) -> tuple[int, int, int]:
    """(agreeing, total, flagged visible) over the (camera, keypoint) cases that project
    into the image, 4 seeds x 2 steps x 4 views. A visible flag agrees when the 3x3 pixels
    around the projection show the keypoint's part (pixel discretisation); a hidden flag when
    the pixel itself does not."""
    env = MultiViewCameras(gym.make(env_id), keypoints=ENVS[env_id], image_size=size)
    model, data = env.unwrapped.model, env.unwrapped.data
    twin = copy.deepcopy(model)  # renders like the rig: no shadows, no multisampling
    twin.vis.quality.shadowsize = 0
    twin.vis.quality.offsamples = 0
    twin.vis.global_.offwidth = max(size, twin.vis.global_.offwidth)
    twin.vis.global_.offheight = max(size, twin.vis.global_.offheight)
    renderer = mujoco.Renderer(twin, size, size)
    renderer.enable_segmentation_rendering()
    env.action_space.seed(0)
    agree = total = visible = 0
    try:
        for seed in range(4):
            _, info = env.reset(seed=seed)
            for step in range(2):
                if step:
                    _, _, _, _, info = env.step(env.action_space.sample())
                for c, (cam, fovy) in enumerate(env.mjv_cameras()):
                    twin.vis.global_.fovy = fovy
                    renderer.update_scene(data, camera=cam)
                    seg = renderer.render()
                    ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
                    for k, source in enumerate(env.keypoint_sources):
                        col, row = np.floor(info["keypoints_2d"][c, k]).astype(int)
                        if not (0 <= row < size and 0 <= col < size):
                            continue
                        point = info["keypoints"][k].astype(np.float64)
                        flag = bool(info["keypoints_visible"][c, k])
                        near = ids[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2].ravel()
                        seen = [_shows_keypoint(model, data, int(g), source.own_body, point)
                                for g in (near if flag else [ids[row, col]])]
                        agree += any(seen) == flag
                        total += 1
                        visible += flag
    finally:
        close_mujoco_renderer(renderer)
        env.close()
    return agree, total, visible


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_visibility_agrees_with_segmentation(env_id: str) -> None:
    """>= 95 % agreement with the segmentation render (see :func:`agreement`)."""
    agree, total, visible = agreement(env_id)
    assert total >= 60, total
    assert visible >= total // 2, (visible, total)  # the joints are seen, not all hidden
    # Measured here: Reacher 1.000, HalfCheetah 1.000, Ant 0.984; with the old rule (own body
    # only, no containment): 0.281, 0.047, 0.109.
    assert agree / total >= 0.95, (agree, total)


def test_attached_and_same_object_bodies() -> None:
    # world 0; robot: 1 -> 2 -> 3 and 1 -> 4; a free object 5
    parents = np.array([0, 0, 1, 2, 1, 0])
    roots = np.array([0, 1, 1, 1, 1, 5])
    assert attached_bodies(parents, 2) == {1, 2, 3}
    assert attached_bodies(parents, 1) == {1, 2, 4}  # never the world body
    assert attached_bodies(parents, -1) == frozenset()
    assert same_object_bodies(roots, 3) == {1, 2, 3, 4}
    assert same_object_bodies(roots, 5) == {5}
    assert same_object_bodies(roots, 0) == frozenset()


def test_point_in_geom_primitives() -> None:
    model = mujoco.MjModel.from_xml_string("""
    <mujoco><worldbody>
      <geom name="sphere" type="sphere" size="0.1" pos="0 0 0"/>
      <geom name="capsule" type="capsule" fromto="1 0 0 1 0 0.4" size="0.05"/>
      <geom name="box" type="box" size="0.1 0.2 0.3" pos="2 0 0" euler="0 0 90"/>
      <geom name="cylinder" type="cylinder" size="0.1 0.2" pos="3 0 0"/>
      <geom name="ellipsoid" type="ellipsoid" size="0.1 0.2 0.3" pos="4 0 0"/>
      <geom name="plane" type="plane" size="1 1 0.1" pos="0 0 -1"/>
    </worldbody></mujoco>""")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)

    def inside(name: str, point: tuple[float, float, float], margin: float = 0.0) -> bool:
        return point_in_geom(model, data, model.geom(name).id, np.array(point), margin)

    assert inside("sphere", (0.09, 0, 0)) and not inside("sphere", (0.11, 0, 0))
    assert inside("sphere", (0.11, 0, 0), margin=0.02)
    assert inside("capsule", (1, 0, 0.44)) and not inside("capsule", (1, 0, 0.46))
    assert inside("capsule", (1.04, 0, 0.2)) and not inside("capsule", (1.06, 0, 0.2))
    # the box is turned 90 deg about z: its 0.2 half-size now lies along world x
    assert inside("box", (2.19, 0.09, 0.29)) and not inside("box", (2.0, 0.15, 0.0))
    assert inside("cylinder", (3.09, 0, 0.19)) and not inside("cylinder", (3, 0, 0.21))
    assert inside("ellipsoid", (4, 0, 0.29)) and not inside("ellipsoid", (4.095, 0.0, 0.15))
    assert not inside("plane", (0, 0, -2))  # planes contain nothing


# --------------------------------------------------------------------------- auto-framing
FRAMED = {
    "Reacher-v5": ["body:body0", "body:body1", "body:fingertip"],
    "Pusher-v5": ["com:tips_arm", "body:object", "body:goal"],
    "Hopper-v5": ["body:torso", "body:thigh", "body:leg", "body:foot"],
}


def framed_extent(env_id: str, framing: str, size: int = 64) -> tuple[float, float]:
    """Mean over views and states of the keypoints' 2D bounding box's larger side as a
    fraction of the image side, and the fraction of keypoints inside the image (6 resets
    with seeds 100.. and up to 5 random actions each, no camera options)."""
    env = MultiViewCameras(gym.make(env_id), keypoints=FRAMED[env_id], image_size=size,
                           framing=framing)
    env.action_space.seed(123)
    extent, inside = [], []
    try:
        for seed in range(100, 106):
            _, info = env.reset(seed=seed)
            for step in range(6):
                if step:
                    _, _, terminated, truncated, info = env.step(env.action_space.sample())
                    if terminated or truncated:
                        break
                uv = info["keypoints_2d"]
                side = np.maximum(np.ptp(uv[..., 0], axis=1), np.ptp(uv[..., 1], axis=1))
                extent.extend(side / size)
                inside.extend(((uv >= 0) & (uv < size)).all(-1).ravel())
    finally:
        env.close()
    return float(np.mean(extent)), float(np.mean(inside))


@pytest.mark.parametrize("env_id", sorted(FRAMED))
def test_auto_framing_fills_the_views(env_id: str) -> None:
    """With no camera options the keypoints span >= 30 % of the image on average and stay in
    it. Measured (128 px, 10 resets x 10 steps): Reacher 0.34, Pusher 0.48, Hopper 0.60
    (``framing="model"``: 0.13, 0.41, 0.28)."""
    extent, inside = framed_extent(env_id, "auto")
    assert extent >= 0.30, extent
    assert inside >= 0.98, inside


def test_framing_is_deterministic_and_explicit_options_win() -> None:
    a = MultiViewCameras(gym.make("Reacher-v5"), keypoints=["body:fingertip"], image_size=16)
    b = MultiViewCameras(gym.make("Reacher-v5"), keypoints=["body:fingertip"], image_size=16,
                         target=(0.0, 0.0, 0.0))
    c = MultiViewCameras(gym.make("Reacher-v5"), keypoints=["body:fingertip"], image_size=16,
                         framing="model")
    try:
        again = MultiViewCameras(gym.make("Reacher-v5"), keypoints=["body:fingertip"],
                                 image_size=16)
        assert again.framing == a.framing and a.framing is not None
        again.close()
        assert b.rig.target == (0.0, 0.0, 0.0) and b.rig.distance == a.framing.distance
        assert c.framing is None
        with pytest.raises(ValueError, match="framing"):
            MultiViewCameras(gym.make("Reacher-v5"), framing="tight")
    finally:
        for env in (a, b, c):
            env.close()
