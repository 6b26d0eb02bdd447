"""S3K-Shoes-v0 and its procedural shoes: API, determinism, instance split, no recompiling,
shoe geometry and keypoints, resting physics, framing and the scripted reach."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from s3k_test_utils import segmentation

from s3k_envs import geometry as geo
from s3k_envs.envs import shoe_mesh
from s3k_envs.envs.shoe_mesh import (
    KEYPOINT_NAMES,
    LENGTH_RANGE,
    NUM_INSTANCES,
    generate_shoe,
    shoe_params,
)
from s3k_envs.envs.shoes import ShoesEnv, resolve_instances
from s3k_envs.experts import ReachKeypointController

ENV_ID = "S3K-Shoes-v0"
ALL = tuple(range(NUM_INSTANCES))
_ALLOWED_CHECKER_WARNINGS = ("infinity", "different from the unwrapped")


@pytest.fixture
def make_shoes():
    """``make_shoes(**options)`` -> a ShoesEnv (64 px unless told), closed after the test."""
    envs: list[ShoesEnv] = []

    def factory(**options) -> ShoesEnv:
        options.setdefault("image_size", 64)
        env = ShoesEnv(**options)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


def _make_registered(**options) -> gym.Env:
    """``gym.make("S3K-Shoes-v0")``, registering the id here if registration.py does not
    list it (yet)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="s3k_envs.envs.shoes:ShoesEnv",
                     max_episode_steps=50)
    return gym.make(ENV_ID, **options)


def _body_speed(env: ShoesEnv) -> tuple[float, float]:
    vel = np.zeros(6)
    mujoco.mj_objectVelocity(env.model, env.data, mujoco.mjtObj.mjOBJ_BODY,
                             env._shoe_body[env.instance_id], vel, 0)
    return float(np.linalg.norm(vel[3:])), float(np.linalg.norm(vel[:3]))


# --------------------------------------------------------------------------- API


def test_check_env_passes():
    env = _make_registered(image_size=24)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped)
    finally:
        env.close()
    bad = [str(w.message) for w in caught
           if not any(s in str(w.message) for s in _ALLOWED_CHECKER_WARNINGS)]
    assert not bad, bad


def test_gym_make_with_time_limit():
    env = _make_registered(image_size=16)
    try:
        assert env.spec.max_episode_steps == 50
        assert env.unwrapped.keypoint_names == KEYPOINT_NAMES == ("front", "tongue", "heel")
        obs, info = env.reset(seed=0)
        assert obs["images"].shape == (4, 16, 16, 3)
        assert info["keypoints"].shape == (3, 3)
    finally:
        env.close()


def test_same_seed_gives_identical_episodes(make_shoes):
    env_a, env_b = make_shoes(), make_shoes()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 6)).astype(np.float32)

    def run(env: ShoesEnv) -> list:
        out = [env.reset(seed=7)]
        out += [env.step(a) for a in actions]
        return out

    def flat(x) -> bytes:
        if isinstance(x, dict):
            return b"".join(k.encode() + flat(x[k]) for k in sorted(x))
        if isinstance(x, (tuple, list)):
            return b"".join(flat(v) for v in x)
        return np.asarray(x).tobytes()

    first = run(env_a)
    assert flat(first) == flat(run(env_b))
    assert flat(first) == flat(run(env_a))  # re-seeding the same env: no leftover state
    assert first[0][0]["images"].std() > 5  # real renders


# --------------------------------------------------------------------------- instances


@pytest.mark.parametrize(("value", "expected"), [
    ("train", set(range(12))), ("test", {12, 13, 14, 15}), ([3, 14], {3, 14}),
])
def test_instance_split(make_shoes, value, expected):
    env = make_shoes(instances=value, image_size=16, num_cameras=1)
    assert set(env.instance_ids) == expected
    seen = Counter()
    for seed in range(40 if len(expected) > 4 else 12):
        _, info = env.reset(seed=seed)
        iid = info["instance_id"]
        assert isinstance(iid, int) and iid == env.instance_id
        seen[iid] += 1
        # The active shoe is the only one drawn and colliding; it rests on the table.
        for other, geoms in env._shoe_geoms.items():
            drawn = env.model.geom_group[geoms] < 3
            assert drawn.any() == (other == iid)
            assert (env.model.geom_contype[geoms] > 0).any() == (other == iid)
        assert env.data.xpos[env._shoe_body[iid]][2] > -0.01
    assert set(seen) <= expected
    assert len(seen) >= min(len(expected), 4)
    _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["instance_id"] == iid


@pytest.mark.parametrize("bad", ["training", "", [], [16], [-1], [1, 1], 3.5, [2.0], [True],
                                 None, {"a": 1}])
def test_bad_instances_raise_with_valid_choices(bad):
    with pytest.raises(ValueError) as err:
        resolve_instances(bad)
    message = str(err.value)
    for word in ("instances", "'train'", "'test'", "'all'", "0..15"):
        assert word in message, message
    with pytest.raises(ValueError, match="instances"):
        ShoesEnv(instances=bad)


def test_resolve_instances_accepts_valid_values():
    assert resolve_instances("all") == ALL
    assert resolve_instances(np.array([15, 2])) == (2, 15)
    assert resolve_instances(5) == (5,)


@pytest.mark.parametrize("options", [{"target_keypoint": "toe"}, {"side_probability": 1.5},
                                     {"success_distance": 0.0}, {"shoe_xy_range": -1},
                                     {"no_such_option": 1}])
def test_bad_options_raise(options):
    with pytest.raises(ValueError):
        ShoesEnv(**options)


def test_reset_does_not_recompile(make_shoes):
    env = make_shoes(instances="all", image_size=16, num_cameras=1, side_probability=0.5)
    model, data = env.model, env.data
    misses = generate_shoe.cache_info().misses
    ids = set()
    for seed in range(12):
        _, info = env.reset(seed=seed)
        ids.add(info["instance_id"])
        assert env.model is model and env.data is data
    env.step(np.zeros(6, dtype=np.float32))
    assert len(ids) > 5  # several instances were swapped in
    assert generate_shoe.cache_info().misses == misses  # meshes generated once per process
    assert generate_shoe(3) is generate_shoe(3)


# --------------------------------------------------------------------------- shoe geometry


def test_lengths_in_range_and_distinct():
    lengths = np.array([generate_shoe(i).length for i in ALL])
    assert np.all((lengths >= LENGTH_RANGE[0]) & (lengths <= LENGTH_RANGE[1])), lengths
    gaps = np.abs(lengths[:, None] - lengths[None, :]) + np.eye(len(lengths))
    assert gaps.min() > 1e-3, lengths
    for i in ALL:  # the mesh has the stated length
        verts = generate_shoe(i).vertices
        extent = verts[:, 0].max() - verts[:, 0].min()
        assert abs(extent - lengths[i]) < 0.006, (i, extent, lengths[i])


def test_generation_is_deterministic():
    params = shoe_params(5)
    assert params == shoe_params(5)
    fresh = shoe_mesh._upper(params)[0][0]
    cached = next(p for p in generate_shoe(5).parts if p.name == "upper")
    if params.left:
        fresh = shoe_mesh._mirror(fresh)
    assert fresh.vertices.tobytes() == cached.vertices.tobytes()
    assert fresh.texture.tobytes() == cached.texture.tobytes()
    with pytest.raises(ValueError, match=r"0\.\.15"):
        generate_shoe(16)


def test_instances_differ():
    sizes = {round(generate_shoe(i).params.ball_width, 4) for i in ALL}
    colours = {tuple(np.round(generate_shoe(i).params.colors["main"], 2)) for i in ALL}
    kinds = Counter(generate_shoe(i).params.kind for i in ALL)
    assert len(sizes) == len(colours) == NUM_INSTANCES
    assert set(kinds) == {"runner", "court", "high"}
    assert {generate_shoe(i).params.left for i in ALL} == {True, False}


def test_meshes_are_closed_and_outward():
    for i in (0, 4, 13):
        shoe = generate_shoe(i)
        parts = {p.name: p for p in shoe.parts}
        shell = shoe_mesh._merge([parts["upper"], parts["lining"]])
        sole = shoe_mesh._merge([parts["outsole"], parts["sole"]])
        for name, (verts, faces) in [("shell", shell), ("sole", sole),
                                     *[(n, (parts[n].vertices, parts[n].faces))
                                       for n in ("tongue", "laces", "heel_tab")]]:
            if name in ("shell", "sole"):  # parts share positions, not indices: weld them
                verts, inverse = np.unique(np.round(verts, 9), axis=0, return_inverse=True)
                faces = inverse.reshape(-1)[faces]
            edges = Counter(map(tuple, np.concatenate(
                [faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])))
            assert max(edges.values()) == 1, (i, name, "edge used twice in one direction")
            assert all((b, a) in edges for a, b in edges), (i, name, "open edge")
            assert shoe_mesh.signed_volume(verts, faces) > 0, (i, name)
        textured = parts["upper"]
        assert textured.texture.dtype == np.uint8 and textured.texture.ndim == 3
        assert textured.face_texcoords.shape == textured.faces.shape
        assert textured.face_texcoords.max() < len(textured.texcoords)


def test_keypoints_are_on_the_surface_where_named():
    for i in ALL:
        shoe = generate_shoe(i)
        verts = shoe.vertices
        front, tongue, heel = shoe.keypoints
        for name, kp in zip(KEYPOINT_NAMES, shoe.keypoints, strict=True):
            nearest = np.linalg.norm(verts - kp, axis=1).min()
            assert nearest < 0.015, (i, name, nearest)
        # front: the toe tip; heel: the back of the shoe; tongue: above the instep.
        assert front[0] > verts[:, 0].max() - 0.002, i
        assert heel[0] < verts[:, 0].min() + 0.002, i
        assert abs(np.linalg.norm((front - heel)[:2]) - shoe.length) < 0.005, i
        assert 0 < np.linalg.norm(front - heel) - shoe.length < 0.03, i
        assert abs(tongue[1]) < 0.02 and -0.1 < tongue[0] < 0.05, i
        assert tongue[2] > 0.75 * verts[:, 2].max(), i
        assert front[2] < 0.04 and heel[2] > 0.06, i


def test_world_keypoints_follow_the_shoe_pose(make_shoes):
    env = make_shoes(instances=[2, 9], side_probability=0.5, num_cameras=1, image_size=16)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        shoe = generate_shoe(info["instance_id"])
        bid = env._shoe_body[info["instance_id"]]
        rot = env.data.xmat[bid].reshape(3, 3)
        expected = env.data.xpos[bid] + shoe.keypoints @ rot.T
        np.testing.assert_allclose(info["keypoints"], expected, atol=1e-6)
        # The three keypoints keep their shoe-frame distances in any pose.
        dist = np.linalg.norm(info["keypoints"][:, None] - info["keypoints"][None], axis=-1)
        local = np.linalg.norm(shoe.keypoints[:, None] - shoe.keypoints[None], axis=-1)
        np.testing.assert_allclose(dist, local, atol=1e-5)


def test_keypoints_2d_is_projection_of_keypoints(make_shoes):
    env = make_shoes(image_size=(48, 64), side_probability=0.5)
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        for _ in range(2):
            uv, _ = geo.project(info["keypoints"].astype(np.float64),
                                obs["intrinsics"].astype(np.float64),
                                obs["extrinsics"].astype(np.float64))
            np.testing.assert_allclose(info["keypoints_2d"], uv, rtol=0, atol=1e-3)
            obs, _, _, _, info = env.step(rng.uniform(-1, 1, 6).astype(np.float32))


# --------------------------------------------------------------------------- physics


@pytest.mark.parametrize("side", [False, True])
def test_shoe_rests(make_shoes, side):
    env = make_shoes(instances="all", side_probability=float(side), image_size=16,
                     num_cameras=1)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        assert env.on_side == side
        up = env.data.xmat[env._shoe_body[env.instance_id]].reshape(3, 3)[:, 2]
        assert (up[2] < math.cos(math.radians(30))) == side, up  # shoe z-axis tilted
        start = info["keypoints"].copy()
        for _ in range(20):
            _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
        speed, spin = _body_speed(env)
        assert speed < 2e-3 and spin < 5e-2, (seed, env.instance_id, speed, spin)
        assert np.abs(info["keypoints"] - start).max() < 0.003, (seed, env.instance_id)


def test_every_rest_pose_of_every_instance_is_at_rest(make_shoes):
    env = make_shoes(instances="all", image_size=16, num_cameras=1)
    env.reset(seed=0)
    for i in ALL:
        poses = generate_shoe(i).rest_poses
        assert [p.kind for p in poses] == ["upright", "side", "side"], (i, poses)
        for pose in poses:
            assert pose.margin > 0, (i, pose)
            env.reset(seed=0)
            env.activate(i, [0.0, 0.0, pose.height + 2e-4], pose.quat)
            mujoco.mj_forward(env.model, env.data)
            start = env._keypoints_world().copy()
            # 20 env steps of zero action = holding the gripper still (physics only here).
            mujoco.mj_step(env.model, env.data, nstep=20 * env.n_substeps)
            speed, spin = _body_speed(env)
            moved = np.abs(env._keypoints_world() - start).max()
            assert speed < 2e-3 and spin < 5e-2 and moved < 0.003, (i, pose.kind, speed, moved)


def test_parked_shoes_stay_parked(make_shoes):
    env = make_shoes(instances=[0, 1, 2], image_size=16, num_cameras=1)
    env.reset(seed=0)
    parked = [i for i in env.instance_ids if i != env.instance_id]
    before = {i: env.data.xpos[env._shoe_body[i]].copy() for i in parked}
    for _ in range(5):
        env.step(np.ones(6, dtype=np.float32))
    for i in parked:
        np.testing.assert_allclose(env.data.xpos[env._shoe_body[i]], before[i], atol=1e-9)
        assert before[i][2] < -0.5


# --------------------------------------------------------------------------- views


def test_shoe_fills_the_views_and_visibility_matches_pixels(make_shoes):
    size = 96
    env = make_shoes(instances="all", image_size=size)
    coverage, checked = [], 0
    for seed in range(3):
        _, info = env.reset(seed=seed)
        seg = segmentation(env.model, env.data, env._cam_ids, size, size)
        shoe = set(env._shoe_geoms[env.instance_id].tolist())
        coverage.extend(np.isin(seg, list(shoe)).mean(axis=(1, 2)))
        for c in range(env.num_cameras):
            for k in range(3):
                col, row = np.floor(info["keypoints_2d"][c, k]).astype(int)
                if info["keypoints_visible"][c, k]:
                    near = set(seg[c, max(row - 1, 0): row + 2, max(col - 1, 0): col + 2].ravel())
                    assert near & shoe, (seed, c, k)
                    checked += 1
    assert checked >= 18
    assert min(coverage) > 0.04 and np.mean(coverage) > 0.1, coverage


def test_reach_front_with_scripted_controller():
    env = gym.wrappers.TimeLimit(ShoesEnv(image_size=16, num_cameras=2), 50)
    controller = ReachKeypointController(env)
    successes = 0
    try:
        for seed in range(5):
            obs, info = env.reset(seed=seed)
            controller.reset()
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(controller(obs, info))
                done = terminated or truncated
            successes += bool(info["is_success"])
    finally:
        env.close()
    assert successes >= 4


def test_gallery_renders_distinct_shoes():
    from s3k_envs.envs.shoes import shoe_gallery

    grid = shoe_gallery(image_size=32, cols=2, instances=(0, 13))
    assert grid.shape == (32, 2 * 32 + 2, 3) and grid.dtype == np.uint8
    left, right = grid[:, :32].astype(int), grid[:, 34:].astype(int)
    assert left.std() > 10 and np.abs(left - right).mean() > 5
