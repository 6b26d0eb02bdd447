"""S3K-BoxPush-v0: API, determinism, calibration, the planar pusher, goals, reward/success,
depth + segmentation rendering, and the scripted pusher."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from s3k_test_utils import assert_env_checker_passes, place_gripper

from s3k_envs import geometry as geo
from s3k_envs.envs.box import BOX_SIZE
from s3k_envs.envs.box_push import box_corners
from s3k_envs.experts import make_expert

ENV_ID = "S3K-BoxPush-v0"


def _checked(env: gym.Env) -> None:
    assert_env_checker_passes(env)


@pytest.mark.parametrize("options", [{}, {"goal_images": True, "goal_mode": "pushes"}])
def test_check_env_passes(options, make_env):
    _checked(make_env(ENV_ID, image_size=24, **options))


def test_observation_layout_and_goal(make_env):
    env = make_env(ENV_ID, image_size=(24, 32), goal_images=True)
    obs, info = env.reset(seed=1)
    assert obs["images"].shape == (4, 24, 32, 3)
    assert obs["goal_images"].shape == (4, 24, 32, 3) and obs["goal_images"].dtype == np.uint8
    assert obs["goal_keypoints"].shape == (3, 3) and obs["goal_keypoints"].dtype == np.float32
    np.testing.assert_allclose(obs["goal_keypoints"], info["goal_keypoints"])
    np.testing.assert_allclose(obs["goal_keypoints"], box_corners(*info["goal_pose"]), atol=1e-6)
    assert not np.array_equal(obs["goal_images"], obs["images"])  # the box is elsewhere
    assert env.observation_space.contains(obs)
    # goal within the documented range
    start, goal = info["object_pose"], info["goal_pose"]
    dist = float(np.hypot(*(goal[:2] - start[:2])))
    assert 0.04 - 1e-6 <= dist <= 0.10 + 1e-6
    assert np.all(np.abs(goal[:2]) <= 0.10 + 1e-6)
    assert abs((goal[2] - start[2] + math.pi) % (2 * math.pi) - math.pi) <= math.radians(45) + 1e-6


@pytest.mark.parametrize("goal_mode", ["sampled", "pushes"])
def test_same_seed_gives_identical_episodes(goal_mode, make_env):
    runs = []
    for _ in range(2):
        env = make_env(ENV_ID, goal_mode=goal_mode, goal_images=True)
        obs, info = env.reset(seed=7)
        seq = [(obs, info)]
        for a in ([1, 0.5, 0, 0, 0, 0], [-0.3, 1, 0, 0, 0, 0]):
            obs, r, *_, info = env.step(np.array(a, dtype=np.float32))
            seq.append((obs, {**info, "reward": r}))
        runs.append(seq)
    for (o1, i1), (o2, i2) in zip(*runs, strict=True):
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key], err_msg=key)
        for key in ("keypoints", "goal_keypoints", "object_pose", "goal_pose"):
            np.testing.assert_array_equal(i1[key], i2[key], err_msg=key)
    other = make_env(ENV_ID, goal_mode=goal_mode)
    _, info = other.reset(seed=8)
    assert not np.allclose(info["goal_pose"], runs[0][0][1]["goal_pose"])


def test_pushes_goal_leaves_the_start_state_untouched(make_env):
    env = make_env(ENV_ID, goal_mode="pushes")
    _, info = env.reset(seed=3)
    u = env.unwrapped
    assert np.allclose(info["object_pose"], u.object_pose())
    assert np.hypot(*(info["goal_pose"][:2] - info["object_pose"][:2])) > 1e-3
    assert np.all(np.abs(info["goal_pose"][:2]) <= u.options["goal_xy_range"] + 1e-9)
    assert u.data.time == 0.0


def test_calibration_is_consistent(make_env):
    env = make_env(ENV_ID, image_size=48, camera_seed=5)
    obs, info = env.reset(seed=2)
    uv, depth = geo.project(info["keypoints"], obs["intrinsics"], obs["extrinsics"])
    np.testing.assert_allclose(uv, info["keypoints_2d"], atol=1e-3)
    assert np.all(depth > 0)
    origins, dirs = geo.pixel_rays(info["keypoints_2d"].astype(np.float64),
                                   obs["intrinsics"].astype(np.float64),
                                   obs["extrinsics"].astype(np.float64))  # (C, K, 3)
    pts = geo.triangulate(origins.transpose(1, 0, 2), dirs.transpose(1, 0, 2))
    np.testing.assert_allclose(pts, info["keypoints"], atol=1e-4)
    # camera_seed keeps the rig across episodes
    obs2, _ = env.reset(seed=9)
    np.testing.assert_array_equal(obs["extrinsics"], obs2["extrinsics"])


def test_depth_and_segmentation_match_the_calibration(make_env):
    """Every box pixel, lifted to 3D with the rendered depth and the observed calibration,
    lies on the box surface (< 0.5 mm), and the mask is where the box projects."""
    env = make_env(ENV_ID, image_size=48)
    obs, _ = env.reset(seed=4)
    u = env.unwrapped
    depth, seg = u.render_depth_and_segmentation()
    assert depth.shape == seg.shape == (4, 48, 48)
    assert depth.dtype == np.float32 and seg.dtype == np.int32
    assert "depth" not in obs and "segmentation" not in obs
    pose = u.object_pose_matrix()
    half = np.asarray(BOX_SIZE) / 2
    for c in range(4):
        rows, cols = np.nonzero(np.isin(seg[c], u.object_body_ids))
        assert len(rows) > 20
        uv = np.stack([cols + 0.5, rows + 0.5], -1)
        k, t = obs["intrinsics"][c].astype(np.float64), obs["extrinsics"][c].astype(np.float64)
        origin, dirs = geo.pixel_rays(uv, k, t)
        cos = dirs @ t[2, :3]
        points = origin + dirs * (depth[c, rows, cols] / cos)[:, None]
        local = (points - pose[:3, 3]) @ pose[:3, :3]
        excess = np.abs(local) - half
        outside = np.linalg.norm(np.maximum(excess, 0.0), axis=1)
        on_surface = np.where(excess.max(1) > 0, outside, -excess.max(1))
        assert np.max(on_surface) < 5e-4, c
        # the projection of the box centre falls inside the mask's bounding box
        (centre_uv,), _ = geo.project(pose[None, :3, 3], k, t)
        assert cols.min() <= centre_uv[0] <= cols.max() + 1
        assert rows.min() <= centre_uv[1] <= rows.max() + 1


def test_action_is_planar(make_env):
    env = make_env(ENV_ID, images=False)
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    place_gripper(env, [0.2, 0.2, u.options["push_height"]])
    start = u.data.xpos[u._gripper_id].copy()
    obs, *_ = env.step(np.array([0, 0, 1, 1, -1, 1], dtype=np.float32))  # z, rotation: ignored
    np.testing.assert_allclose(obs["gripper_pos"], start, atol=2e-3)
    np.testing.assert_allclose(np.abs(obs["gripper_quat"]), [1, 0, 0, 0], atol=1e-2)
    obs, *_ = env.step(np.array([-1, 0, 0, 0, 0, 0], dtype=np.float32))
    moved = obs["gripper_pos"] - start
    assert moved[0] < -0.03 and abs(moved[1]) < 5e-3 and abs(moved[2]) < 2e-3


def test_scripted_push_moves_the_box(make_env):
    env = make_env(ENV_ID, images=False)
    _, info = env.reset(seed=0)
    u = env.unwrapped
    x, y, yaw = info["object_pose"]
    # pusher 5 cm outside the -x side of the box, pushing along the box's +x axis
    ax = np.array([math.cos(yaw), math.sin(yaw)])
    start = np.array([x, y]) - ax * (BOX_SIZE[0] / 2 + 0.05)
    place_gripper(env, [*start, u.options["push_height"]])
    for _ in range(4):
        _, _, _, _, info = env.step(np.array([*(ax * 0.5), 0, 0, 0, 0], dtype=np.float32))
    moved = info["object_pose"][:2] - np.array([x, y])
    assert moved @ ax > 0.03, moved
    assert abs(moved @ np.array([-ax[1], ax[0]])) < 0.02


def test_reward_and_success_at_the_goal(make_env):
    env = make_env(ENV_ID, images=False)
    _, info = env.reset(seed=5)
    assert not info["is_success"] and info["keypoint_distance"] > 0.02
    u = env.unwrapped
    u._set_object_pose(*u.goal_pose)
    place_gripper(env, [0.24, 0.24, u.options["push_height"]])
    _, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["is_success"] and terminated
    assert info["position_error"] < 1e-3 and info["angle_error"] < 1e-2
    assert -2e-3 < reward <= 0.0


def test_tanh_reward_is_bounded_with_bonus(make_env):
    env = make_env(ENV_ID, images=False, reward="tanh", success_bonus=10.0,
                   terminate_on_success=False)
    _, _ = env.reset(seed=5)
    _, reward, *_ , info = env.step(np.zeros(6, dtype=np.float32))
    assert 0.0 < reward < 1.0
    np.testing.assert_allclose(reward, 1 - math.tanh(info["keypoint_distance"] / 0.1), rtol=1e-6)
    u = env.unwrapped
    u._set_object_pose(*u.goal_pose)
    place_gripper(env, [0.24, 0.24, u.options["push_height"]])
    _, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["is_success"] and not terminated and reward > 10.9


def test_expert_pushes_to_the_goal():
    env = gym.make(ENV_ID, images=False)
    try:
        successes = 0
        for seed in range(3):
            expert = make_expert(env)
            obs, info = env.reset(seed=seed)
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert(obs, info))
                done = terminated or truncated
            successes += info["is_success"]
        assert successes == 3
    finally:
        env.close()


@pytest.mark.parametrize("options, name", [
    ({"goal_mode": "teleport"}, "goal_mode"),
    ({"goal_distance": (0.2, 0.1)}, "goal_distance"),
    ({"push_height": 0.5}, "push_height"),
    ({"success_position": -1.0}, "success_position"),
    ({"reward": "sparse"}, "reward"),
    ({"goal_images": "yes"}, "goal_images"),
    ({"goal_pushes": (0, 2)}, "goal_pushes"),
])
def test_bad_options_raise(options, name):
    with pytest.raises(ValueError, match=name):
        gym.make(ENV_ID, **options)


def test_depth_before_reset_raises():
    env = gym.make(ENV_ID, image_size=16)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.unwrapped.render_depth_and_segmentation()
    finally:
        env.close()


def test_keypoint_observation_with_the_box_checkpoint():
    """obs_mode="keypoints" falls back to the shipped S3K Box model (same box and corners)."""
    env = gym.make(ENV_ID, obs_mode="keypoints")
    try:
        obs, info = env.reset(seed=0)
        assert obs["keypoints"].shape == (3, 3) and "goal_keypoints" in obs
        err = np.linalg.norm(obs["keypoints"] - info["keypoints"], axis=1)
        assert np.median(err) < 0.02, err
    finally:
        env.close()


def test_set_goal(make_env):
    env = make_env(ENV_ID, goal_images=True)
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    goal = u.set_goal([0.05, -0.02, 0.3])
    np.testing.assert_allclose(goal, box_corners(0.05, -0.02, 0.3), atol=1e-6)
    obs2, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    np.testing.assert_allclose(obs2["goal_keypoints"], goal)
    np.testing.assert_allclose(info["goal_pose"], [0.05, -0.02, 0.3], atol=1e-6)
    assert not np.array_equal(obs2["goal_images"], obs["goal_images"])
    for bad in ([0.0, 0.0], [[0.0, 0.0, 0.0]], [0.0, np.nan, 0.0], "far"):
        with pytest.raises(ValueError, match="goal_pose"):
            u.set_goal(bad)


# --------------------------------------------------------------------------- S3K-ShoePush-v0

SHOE_ID = "S3K-ShoePush-v0"


def test_shoe_push_check_env_and_determinism(make_env):
    _checked(make_env(SHOE_ID, image_size=24, goal_images=True))
    infos = []
    for _ in range(2):
        env = make_env(SHOE_ID, image_size=24)
        obs, info = env.reset(seed=4)
        obs, *_, info = env.step(np.array([0.5, -0.5, 0, 0, 0, 0], dtype=np.float32))
        infos.append((obs, info))
    (o1, i1), (o2, i2) = infos
    for key in o1:
        np.testing.assert_array_equal(o1[key], o2[key], err_msg=key)
    assert i1["instance_id"] == i2["instance_id"]
    np.testing.assert_array_equal(i1["object_pose"], i2["object_pose"])


@pytest.mark.parametrize("instances, allowed", [("train", range(12)), ("test", range(12, 16))])
def test_shoe_push_instance_split(instances, allowed, make_env):
    env = make_env(SHOE_ID, images=False, instances=instances)
    seen = set()
    for seed in range(6):
        _, info = env.reset(seed=seed)
        seen.add(info["instance_id"])
        # goal keypoints are the shoe's keypoints at the goal pose
        u = env.unwrapped
        np.testing.assert_allclose(info["goal_keypoints"], u.keypoints_at(info["goal_pose"]),
                                   atol=1e-6)
        np.testing.assert_allclose(info["keypoints"], u.keypoints_at(info["object_pose"]),
                                   atol=2e-3)
    assert seen <= set(allowed) and len(seen) > 1


def test_shoe_push_object_mask_and_expert(make_env):
    env = make_env(SHOE_ID, image_size=32, instances="test")
    obs, info = env.reset(seed=1)
    u = env.unwrapped
    _, seg = u.render_depth_and_segmentation()
    mask = np.isin(seg, u.object_body_ids)
    assert mask.any(axis=(1, 2)).all()  # the shoe is in every view
    # the keypoints that are visible project onto (or right next to) the shoe's pixels
    uv = info["keypoints_2d"]
    for c, k in zip(*np.nonzero(info["keypoints_visible"]), strict=True):
        col, row = np.clip(uv[c, k].astype(int), 0, 31)
        assert mask[c, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2].any(), (c, k)
    expert = make_expert(env)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert(obs, info))
        done = terminated or truncated
    assert info["is_success"]


@pytest.mark.parametrize("env_id", [ENV_ID, SHOE_ID])
def test_random_and_extreme_actions_stay_stable(env_id, make_env):
    env = make_env(env_id, images=False, terminate_on_success=False)
    obs, _ = env.reset(seed=11)
    rng = np.random.default_rng(0)
    u = env.unwrapped
    for i in range(150):
        action = rng.choice([-1.0, 1.0], size=6) if i % 3 else rng.uniform(-5, 5, size=6)
        obs, reward, _, _, info = env.step(action.astype(np.float32))
        assert not info["sim_unstable"] and np.isfinite(reward)
        assert env.observation_space.contains(obs)
        assert abs(obs["gripper_pos"][2] - u.options["push_height"]) < 5e-3
        assert np.all(np.abs(obs["gripper_pos"][:2]) <= 0.25 + 5e-3)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0], dtype=np.float32))
