"""Env tests for S3K-Box-v0 / S3K-BoxDistractors-v0: API, layout, determinism, keypoint
ground truth, bad input, instability, registration, episode mechanics and control."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from s3k_test_utils import (
    ENV_IDS,
    OBS_LAYOUT,
    assert_env_checker_passes,
    body_geoms,
    place_gripper,
    quat_conj,
    quat_mul,
    segmentation,
)

from s3k_envs import geometry as geo

# gymnasium's checker warns about unbounded Box spaces (calibration and velocities are
# unbounded on purpose) and about checking a wrapped env; anything else is a failure.


def _assert_obs_layout(env: gym.Env, obs: dict, info: dict) -> None:
    u = env.unwrapped
    c, h, w = u.num_cameras, u.height, u.width
    k = len(u.keypoint_names)
    assert set(obs) == set(OBS_LAYOUT), sorted(obs)
    for key, (shape_fn, dtype) in OBS_LAYOUT.items():
        assert obs[key].shape == shape_fn(c, h, w), (key, obs[key].shape)
        assert obs[key].dtype == dtype, (key, obs[key].dtype)
    assert env.observation_space.contains(obs)
    assert k > 0
    assert info["keypoints"].shape == (k, 3)
    assert info["keypoints_2d"].shape == (c, k, 2)
    assert info["keypoints_visible"].shape == (c, k)
    assert info["keypoints_visible"].dtype == np.bool_
    assert np.issubdtype(info["keypoints"].dtype, np.floating)
    assert np.issubdtype(info["keypoints_2d"].dtype, np.floating)
    assert isinstance(info["is_success"], bool)
    assert isinstance(info["sim_unstable"], bool)
    for key in ("intrinsics", "extrinsics", "gripper_pos", "gripper_quat", "gripper_linvel",
                "gripper_angvel"):
        assert np.all(np.isfinite(obs[key])), key
    np.testing.assert_allclose(np.linalg.norm(obs["gripper_quat"]), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- API + layout


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id, make_env):
    env = make_env(env_id, image_size=24)
    assert_env_checker_passes(env)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observation_and_info_layout(env_id, make_env):
    env = make_env(env_id, image_size=(24, 40))
    obs, info = env.reset(seed=3)
    _assert_obs_layout(env, obs, info)
    assert len(env.unwrapped.keypoint_names) == info["keypoints"].shape[0]
    assert len(set(env.unwrapped.keypoint_names)) == len(env.unwrapped.keypoint_names)
    for _ in range(2):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        _assert_obs_layout(env, obs, info)
        assert isinstance(reward, float) and math.isfinite(reward)
    # Images are real renders, not blank buffers.
    assert obs["images"].std() > 5


# --------------------------------------------------------------------------- determinism


def _assert_same(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), f"{where} differs"
    else:
        assert a == b, where


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_identical_episodes(env_id, make_env):
    env_a, env_b = make_env(env_id), make_env(env_id)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(4, 6)).astype(np.float32)
    obs_a, info_a = env_a.reset(seed=123)
    obs_b, info_b = env_b.reset(seed=123)
    _assert_same(obs_a, obs_b, "reset obs")
    _assert_same(info_a, info_b, "reset info")
    for t, action in enumerate(actions):
        out_a, out_b = env_a.step(action), env_b.step(action)
        for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), out_a,
                              out_b, strict=True):
            _assert_same(x, y, f"step {t} {name}")
    # Re-seeding the same env reproduces the first reset too (no leftover state).
    obs_c, info_c = env_a.reset(seed=123)
    _assert_same(obs_a, obs_c, "re-reset obs")
    _assert_same(info_a, info_c, "re-reset info")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_give_different_rigs(env_id, make_env):
    env = make_env(env_id)
    rigs = []
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        rigs.append(obs["extrinsics"].astype(np.float64))
    obs_unseeded, _ = env.reset()  # continues the episode RNG: yet another rig
    rigs.append(obs_unseeded["extrinsics"].astype(np.float64))
    for i in range(len(rigs)):
        for j in range(i):
            assert np.abs(rigs[i] - rigs[j]).max() > 1e-3, (i, j)
    # Cameras sit around the scene: their centres are spread in azimuth.
    centres = geo.camera_centers(rigs[0])
    azim = np.sort(np.arctan2(centres[:, 1], centres[:, 0]))
    gaps = np.diff(np.concatenate([azim, azim[:1] + 2 * np.pi]))
    assert gaps.max() < np.pi, azim


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_camera_seed_fixes_the_rig_across_episodes(env_id, make_env):
    env = make_env(env_id, camera_seed=3)
    rigs, scenes = [], []
    for seed in (0, 1, None):
        obs, info = env.reset(seed=seed)
        rigs.append(np.concatenate([obs["extrinsics"].ravel(), obs["intrinsics"].ravel()]))
        scenes.append(info["keypoints"])
    assert all(np.array_equal(r, rigs[0]) for r in rigs)  # the same cameras every episode
    assert np.abs(scenes[0] - scenes[1]).max() > 1e-3  # ... while the scene changes
    other, _ = make_env(env_id, camera_seed=4).reset(seed=0)
    assert np.abs(other["extrinsics"] - obs["extrinsics"]).max() > 1e-3
    again, _ = make_env(env_id, camera_seed=3).reset(seed=7)  # a new env, same cameras
    assert np.array_equal(again["extrinsics"], obs["extrinsics"])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_scene_does_not_depend_on_resolution(env_id, make_env):
    """Same seed at two image sizes: same cameras and layout, intrinsics scaled to the
    image, so datasets rendered at different resolutions describe the same scenes."""
    small, large = make_env(env_id, image_size=32), make_env(env_id, image_size=(64, 96))
    obs_s, info_s = small.reset(seed=5)
    obs_l, info_l = large.reset(seed=5)
    assert np.array_equal(obs_s["extrinsics"], obs_l["extrinsics"])
    assert np.array_equal(info_s["keypoints"], info_l["keypoints"])
    np.testing.assert_allclose(obs_l["intrinsics"][:, :2, :2], 2 * obs_s["intrinsics"][:, :2, :2],
                               rtol=1e-6)
    # (u, v) scale with the focal length about the image centre.
    centre_s, centre_l = np.array([16.0, 16.0]), np.array([48.0, 32.0])
    np.testing.assert_allclose(info_l["keypoints_2d"] - centre_l,
                               2 * (info_s["keypoints_2d"] - centre_s), atol=1e-3)


# --------------------------------------------------------------------------- keypoints


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_keypoints_2d_is_projection_of_keypoints(env_id, make_env):
    env = make_env(env_id, image_size=(48, 64))
    rng = np.random.default_rng(1)
    for seed in (0, 1, 2):
        obs, info = env.reset(seed=seed)
        for _ in range(2):
            kp = info["keypoints"].astype(np.float64)
            uv, depth = geo.project(kp, obs["intrinsics"].astype(np.float64),
                                    obs["extrinsics"].astype(np.float64))
            assert info["keypoints_2d"].shape == uv.shape
            np.testing.assert_allclose(info["keypoints_2d"], uv, rtol=0, atol=1e-3)
            h, w = obs["images"].shape[1:3]
            inside = ((depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0)
                      & (uv[..., 1] < h))
            assert not np.any(info["keypoints_visible"] & ~inside)
            obs, *_, info = env.step(rng.uniform(-1, 1, 6).astype(np.float32))


def test_keypoints_outside_image_are_not_visible(make_env):
    # Narrow cameras aimed half a metre away from the box: no keypoint is in view.
    env = make_env("S3K-Box-v0", camera_target=(0.5, 0.5, 0.0), camera_lookat_jitter=0.0,
                   camera_fovy=(0.05, 0.06))
    obs, info = env.reset(seed=0)
    uv = info["keypoints_2d"]
    h, w = obs["images"].shape[1:3]
    outside = (uv[..., 0] < 0) | (uv[..., 0] >= w) | (uv[..., 1] < 0) | (uv[..., 1] >= h)
    assert outside.all()
    assert not info["keypoints_visible"].any()


def test_keypoints_behind_camera_are_not_visible(make_env):
    # Cameras under a raised target looking up: the box is behind every camera.
    env = make_env("S3K-Box-v0", camera_target=(0.0, 0.0, 0.35), camera_distance=(0.1, 0.12),
                   camera_elevation=(-1.5, -1.3), camera_lookat_jitter=0.0)
    obs, info = env.reset(seed=0)
    _, depth = geo.project(info["keypoints"], obs["intrinsics"], obs["extrinsics"])
    assert (depth < 0).all()
    assert not info["keypoints_visible"].any()


def test_keypoint_visibility_rejects_points_behind_camera(make_env):
    """A point mirrored through the camera centre projects to the same (inside) pixel with
    negative depth; it must not count as visible."""
    env = make_env("S3K-Box-v0", image_size=48)
    obs, info = env.reset(seed=4)
    u = env.unwrapped
    assert info["keypoints_visible"].all()  # nothing in the way in this layout
    intr = obs["intrinsics"].astype(np.float64)
    extr = obs["extrinsics"].astype(np.float64)
    centres = geo.camera_centers(extr)
    kp = info["keypoints"].astype(np.float64)
    for c in range(u.num_cameras):
        mirrored = 2 * centres[c] - kp
        uv, depth = geo.project(mirrored, intr, extr)
        np.testing.assert_allclose(uv[c], info["keypoints_2d"][c], atol=1e-3)
        assert (depth[c] < 0).all()
        vis = u.keypoint_visibility(mirrored, uv, depth)
        assert not vis[c].any(), c


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_visibility_agrees_with_segmentation(env_id, make_env):
    size = 96
    env = make_env(env_id, image_size=size)
    u = env.unwrapped
    box = body_geoms(u.model, "box")
    checked_visible = checked_hidden = 0
    for seed in range(4):
        _, info = env.reset(seed=seed)
        seg = segmentation(u.model, u.data, u._cam_ids, size, size)
        for c in range(u.num_cameras):
            for k in range(len(u.keypoint_names)):
                col, row = np.floor(info["keypoints_2d"][c, k]).astype(int)
                if not (0 <= row < size and 0 <= col < size):
                    assert not info["keypoints_visible"][c, k]
                    continue
                near = set(seg[c, max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].ravel())
                if info["keypoints_visible"][c, k]:
                    assert near & box, (seed, c, k, near)
                    checked_visible += 1
                else:  # occluded: something else is drawn on top of the corner
                    assert seg[c, row, col] not in box, (seed, c, k)
                    checked_hidden += 1
    assert checked_visible >= 20


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gripper_between_camera_and_keypoint_occludes_it(env_id, make_env):
    size = 64
    env = make_env(env_id, image_size=size, gripper_bounds=((-1, -1, -1), (1, 1, 1)))
    _, info = env.reset(seed=5)
    u = env.unwrapped
    cam, k = 1, 0
    assert info["keypoints_visible"][cam, k]
    kp = info["keypoints"][k].astype(np.float64)
    centre = u.data.cam_xpos[u._cam_ids[cam]].copy()
    ray = (centre - kp) / np.linalg.norm(centre - kp)
    # Put the gripper's wrist cylinder (local (0, 0, 0.08)) on the ray, 20 cm from the corner.
    wrist = kp + 0.2 * ray
    place_gripper(env, wrist - np.array([0.0, 0.0, 0.08]))
    _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    seg = segmentation(u.model, u.data, u._cam_ids, size, size)
    col, row = np.floor(info["keypoints_2d"][cam, k]).astype(int)
    assert seg[cam, row, col] in body_geoms(u.model, "gripper"), "gripper not in front"
    assert not info["keypoints_visible"][cam, k]
    # Cameras whose view of the corner the gripper does not block still see it.
    gripper = body_geoms(u.model, "gripper")
    for c in range(u.num_cameras):
        col, row = np.floor(info["keypoints_2d"][c, k]).astype(int)
        near = set(seg[c, max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3].ravel())
        if not near & gripper:
            assert info["keypoints_visible"][c, k], c


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_triangulating_keypoints_2d_recovers_keypoints(env_id, make_env):
    env = make_env(env_id, image_size=(48, 80))
    rng = np.random.default_rng(2)
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        for _ in range(2):
            intr = obs["intrinsics"].astype(np.float64)
            extr = obs["extrinsics"].astype(np.float64)
            uv = info["keypoints_2d"].astype(np.float64)  # (C, K, 2)
            origins, dirs = geo.pixel_rays(uv, intr, extr)  # (C, K, 3)
            points = geo.triangulate(np.swapaxes(origins, 0, 1), np.swapaxes(dirs, 0, 1))
            truth = info["keypoints"].astype(np.float64)
            assert np.abs(points - truth).max() < 1e-6, np.abs(points - truth).max()
            obs, *_, info = env.step(rng.uniform(-1, 1, 6).astype(np.float32))


# --------------------------------------------------------------------------- bad input


def _sim_state(env) -> tuple:
    d = env.unwrapped.data
    return d.time, d.qpos.copy(), d.qvel.copy(), d.mocap_pos.copy(), d.mocap_quat.copy()


def _assert_state_unchanged(before: tuple, after: tuple) -> None:
    assert before[0] == after[0], "data.time changed"
    for name, x, y in zip(("qpos", "qvel", "mocap_pos", "mocap_quat"), before[1:], after[1:],
                          strict=True):
        assert np.array_equal(x, y), f"data.{name} changed"


@pytest.mark.parametrize(
    ("action", "pattern"),
    [
        ([np.nan, 0, 0, 0, 0, 0], r"(?i)finite|nan"),
        ([0, 0, np.inf, 0, 0, 0], r"(?i)finite|inf"),
        ([0, 0, 0, 0, 0, -np.inf], r"(?i)finite|inf"),
        (np.zeros(5), r"(?i)shape.*\(6,\)|\(6,\).*shape"),
        (np.zeros(7), r"(?i)shape.*\(6,\)|\(6,\).*shape"),
        (np.zeros((2, 6)), r"(?i)shape"),
        (np.float32(0.5), r"(?i)shape"),
        ("fast", r"(?i)action"),
        (None, r"(?i)action"),
    ],
    ids=["nan", "inf", "-inf", "short", "long", "2d", "scalar", "string", "none"],
)
@pytest.mark.parametrize("wrapped", [True, False], ids=["gym.make", "unwrapped"])
def test_bad_action_raises_and_leaves_state(action, pattern, wrapped, make_env):
    env = make_env("S3K-Box-v0", image_size=16)
    env.reset(seed=0)
    target = env if wrapped else env.unwrapped
    target.step(np.zeros(6, dtype=np.float32))
    before = _sim_state(env)
    with pytest.raises(ValueError, match=pattern):
        target.step(action)
    _assert_state_unchanged(before, _sim_state(env))
    # The env is still usable afterwards.
    obs, *_ = target.step(np.zeros(6, dtype=np.float32))
    assert np.isfinite(obs["gripper_pos"]).all()


def test_out_of_range_actions_are_clipped(make_env):
    env_a, env_b = make_env(), make_env()
    env_a.reset(seed=7)
    env_b.reset(seed=7)
    big = np.array([5.0, -3.0, 0.5, 1e6, -2.0, 0.0], dtype=np.float32)
    out_a = env_a.step(big)
    out_b = env_b.step(np.clip(big, -1.0, 1.0))
    _assert_same(out_a[0], out_b[0], "obs")
    assert out_a[1] == out_b[1]


def test_unknown_make_option_lists_valid_options():
    with pytest.raises(ValueError, match="bogus") as err:
        gym.make("S3K-Box-v0", bogus=1)
    msg = str(err.value)
    for name in ("image_size", "num_cameras", "target_keypoint", "control_hz"):
        assert name in msg, msg
    with pytest.raises(ValueError, match="distractor_set"):
        gym.make("S3K-Box-v0", distractor_set=1)  # a BoxDistractors-only option


@pytest.mark.parametrize(
    ("env_id", "options", "name"),
    [
        ("S3K-Box-v0", {"image_size": 0}, "image_size"),
        ("S3K-Box-v0", {"image_size": (32, -5)}, "image_size"),
        ("S3K-Box-v0", {"image_size": "big"}, "image_size"),
        ("S3K-Box-v0", {"num_cameras": 0}, "num_cameras"),
        ("S3K-Box-v0", {"num_cameras": 2.5}, "num_cameras"),
        ("S3K-Box-v0", {"target_keypoint": "nope"}, "target_keypoint"),
        ("S3K-Box-v0", {"control_hz": 0}, "control_hz"),
        ("S3K-Box-v0", {"camera_fovy": (1.0, 0.5)}, "fovy"),
        ("S3K-Box-v0", {"camera_seed": -1}, "camera_seed"),
        ("S3K-Box-v0", {"camera_seed": 1.5}, "camera_seed"),
        ("S3K-BoxDistractors-v0", {"distractor_set": 99}, "distractor_set"),
        ("S3K-BoxDistractors-v0", {"num_distractors": 0}, "num_distractors"),
    ],
)
def test_bad_option_values_raise(env_id, options, name):
    with pytest.raises(ValueError, match=name):
        gym.make(env_id, **options)


def test_unsupported_render_mode_raises():
    # (gymnasium.make turns "human" into an rgb_array env + HumanRendering wrapper itself.)
    from s3k_envs.envs.box import BoxEnv

    with pytest.raises(ValueError, match="render_mode"):
        BoxEnv(render_mode="human", image_size=16)


def test_step_before_reset_raises(make_env):
    env = make_env()
    with pytest.raises((RuntimeError, gym.error.ResetNeeded)):
        env.step(np.zeros(6, dtype=np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(np.zeros(6, dtype=np.float32))


def test_reset_options_are_rejected(make_env):
    env = make_env()
    with pytest.raises(ValueError, match="image_size"):
        env.reset(seed=0, options={"image_size": 64})


# --------------------------------------------------------------------------- instability


@pytest.mark.parametrize("qvel", [1e6, 1e12], ids=["fast", "huge"])
def test_unstable_simulation_ends_episode(qvel, make_env):
    env = make_env("S3K-Box-v0", image_size=16)
    env.reset(seed=0)
    env.unwrapped.data.qvel[:] = qvel
    obs, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert terminated is True
    assert info["sim_unstable"] is True
    assert math.isfinite(reward)
    for key, value in obs.items():
        assert np.all(np.isfinite(value)), key
    for key in ("keypoints", "keypoints_2d"):
        assert np.all(np.isfinite(info[key])), key
    obs, info = env.reset(seed=1)
    assert info["sim_unstable"] is False
    obs, _, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert not terminated and info["sim_unstable"] is False
    assert np.abs(env.unwrapped.data.qvel).max() < 10
    assert obs["images"].std() > 5


# --------------------------------------------------------------------------- registration


def _run_fresh_python(code: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_gym_make_works_without_importing_s3k_envs(tmp_path):
    code = (
        "import sys; import gymnasium as gym\n"
        "assert 'S3K-Box-v0' in gym.registry\n"
        "assert 'mujoco' not in sys.modules and 's3k_envs.envs' not in sys.modules\n"
        "env = gym.make('S3K-Box-v0', image_size=32); obs, info = env.reset(seed=0)\n"
        "assert obs['images'].shape == (4, 32, 32, 3)\n"
        "env.close()\n"
        "# left open on purpose: exiting with live renderers must be quiet\n"
        "other = gym.make('S3K-BoxDistractors-v0', image_size=16); other.reset(seed=0)\n"
        "print('ok')\n"
    )
    proc = _run_fresh_python(code, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr
    assert "Exception ignored" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


def test_gym_make_with_module_prefix(tmp_path):
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('s3k_envs:S3K-BoxDistractors-v0', image_size=16); env.reset(seed=0)\n"
        "env.close(); print('ok')\n"
    )
    proc = _run_fresh_python(code, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr
    env = gym.make("s3k_envs:S3K-Box-v0", image_size=16)
    try:
        assert env.unwrapped.spec.id == "S3K-Box-v0"
    finally:
        env.close()


# --------------------------------------------------------------------------- episodes


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_time_limit(env_id, make_env):
    assert gym.spec(env_id).max_episode_steps == 50
    env = make_env(env_id, image_size=8)
    assert env.spec.max_episode_steps == 50
    env.reset(seed=0)
    zero = np.zeros(6, dtype=np.float32)
    for t in range(1, 51):
        _, _, terminated, truncated, info = env.step(zero)
        assert not terminated and not info["is_success"], t
        assert truncated == (t == 50), t


@pytest.mark.parametrize("target", ["corner_0", "corner_1", "corner_2"])
def test_box_reward_and_success(target, make_env):
    env = make_env("S3K-Box-v0", image_size=16, target_keypoint=target)
    u = env.unwrapped
    k = u.keypoint_names.index(target)
    zero = np.zeros(6, dtype=np.float32)
    _, info = env.reset(seed=11)
    assert not info["is_success"]
    _, reward, terminated, _, info = env.step(zero)
    tcp = u.data.xpos[mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_BODY, "gripper")]
    dist = np.linalg.norm(info["keypoints"][k] - tcp)
    assert reward == pytest.approx(-dist, abs=1e-6)
    assert reward == pytest.approx(-info["target_distance"], abs=1e-9)
    assert dist > 0.05 and not terminated and not info["is_success"]
    # TCP 7 mm above the target corner (fingertips clear the lid): success, episode ends.
    place_gripper(env, info["keypoints"][k].astype(np.float64) + np.array([0.0, 0.0, 0.007]))
    _, reward, terminated, truncated, info = env.step(zero)
    tcp = u.data.xpos[mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_BODY, "gripper")]
    dist = np.linalg.norm(info["keypoints"][k].astype(np.float64) - tcp)
    assert dist < 0.01
    assert reward == pytest.approx(-dist, abs=1e-6)
    assert info["is_success"] is True and terminated is True and truncated is False
    # 2 cm away: no success.
    place_gripper(env, info["keypoints"][k].astype(np.float64) + np.array([0.0, 0.0, 0.02]))
    _, reward, terminated, _, info = env.step(zero)
    assert reward == pytest.approx(-0.02, abs=2e-3)
    assert not info["is_success"] and not terminated


def test_success_without_termination(make_env):
    env = make_env("S3K-Box-v0", image_size=16, terminate_on_success=False)
    _, info = env.reset(seed=2)
    place_gripper(env, info["keypoints"][0].astype(np.float64) + np.array([0.0, 0.0, 0.006]))
    _, _, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["is_success"] is True and terminated is False


# --------------------------------------------------------------------------- control


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_linear_velocity_action_moves_gripper(axis, make_env):
    env = make_env("S3K-Box-v0", image_size=8)
    u = env.unwrapped
    expected = u.options["max_linear_speed"] / u.options["control_hz"]
    for sign, seed in ((1.0, 0), (-1.0, 1)):
        obs, _ = env.reset(seed=seed)
        start = obs["gripper_pos"].astype(np.float64)
        action = np.zeros(6, dtype=np.float32)
        action[axis] = sign
        obs, *_ = env.step(action)
        moved = obs["gripper_pos"].astype(np.float64) - start
        assert sign * moved[axis] == pytest.approx(expected, rel=0.3), moved
        others = np.delete(moved, axis)
        assert np.abs(others).max() < 0.1 * expected, moved


@pytest.mark.parametrize("axis", [0, 2])
def test_angular_velocity_action_rotates_gripper(axis, make_env):
    env = make_env("S3K-Box-v0", image_size=8)
    u = env.unwrapped
    expected = u.options["max_angular_speed"] / u.options["control_hz"]
    for sign, seed in ((1.0, 3), (-1.0, 4)):
        obs, _ = env.reset(seed=seed)
        q0 = obs["gripper_quat"].astype(np.float64)
        start = obs["gripper_pos"].astype(np.float64)
        action = np.zeros(6, dtype=np.float32)
        action[3 + axis] = sign
        obs, *_ = env.step(action)
        q1 = obs["gripper_quat"].astype(np.float64)
        rel = quat_mul(q1, quat_conj(q0))  # world-frame rotation q0 -> q1
        rel = rel if rel[0] >= 0 else -rel
        angle = 2 * math.atan2(np.linalg.norm(rel[1:]), rel[0])
        axis_world = rel[1:] / np.linalg.norm(rel[1:])
        assert angle == pytest.approx(expected, rel=0.3)
        assert sign * axis_world[axis] > 0.95, axis_world
        assert np.linalg.norm(obs["gripper_pos"] - start) < 0.01
