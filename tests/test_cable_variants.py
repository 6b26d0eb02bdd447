"""Tests of the cable env's cable options (``cable_segments``, ``joint_stiffness``,
``joint_damping``), the S3K-CableInsertShort-v0 variant (plug held close, as in the paper),
and the benchmark plumbing that runs variants (expert_cable ``--env-option``, cable_pendulum,
cable_rlpd ``--env-id``)."""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from s3k_test_utils import assert_env_checker_passes

import s3k_envs  # noqa: F401  (registers the ids)
from s3k_envs.envs.cable import (
    CABLE_SEGMENTS,
    JOINT_DAMPING,
    JOINT_STIFFNESS,
    MAX_EPISODE_STEPS,
    CableInsertEnv,
    CableInsertShortEnv,
)
from s3k_envs.experts import CableInsertExpert

DEFAULT_ID = "S3K-CableInsert-v0"
SHORT_ID = "S3K-CableInsertShort-v0"


def _cable_joints(env: CableInsertEnv) -> list[int]:
    m = env.model
    return [j for j in range(m.njnt) if mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
            .startswith("cable_joint_")]


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(("options", "expected"), [
    ({"cable_segments": 1}, "int in 2..30"),
    ({"cable_segments": 31}, "int in 2..30"),
    ({"cable_segments": 4.0}, "got 4.0"),
    ({"cable_segments": True}, "got True"),
    ({"cable_segments": "4"}, "got '4'"),
    ({"joint_stiffness": 0.0}, r"\(0, 1\] N m/rad"),
    ({"joint_stiffness": -1e-3}, "got -0.001"),
    ({"joint_stiffness": 2.0}, "got 2.0"),
    ({"joint_stiffness": "stiff"}, "got 'stiff'"),
    ({"joint_damping": 0.0}, r"\(0, 1\] N m s/rad"),
    ({"joint_damping": math.nan}, "got nan"),
    ({"joint_damping": False}, "got False"),
])
def test_bad_cable_options_raise_with_what_was_expected(options, expected):
    name = next(iter(options))
    with pytest.raises(ValueError, match=name) as err:
        CableInsertEnv(image_size=16, **options)
    assert err.match(expected)


def test_defaults_are_the_module_constants():
    opts = CableInsertEnv.default_options()
    assert (opts["cable_segments"], opts["joint_stiffness"], opts["joint_damping"]) == (
        CABLE_SEGMENTS, JOINT_STIFFNESS, JOINT_DAMPING) == (12, 3e-3, 2e-3)


def test_cable_options_build_the_cable_they_name():
    env = CableInsertEnv(images=False, cable_segments=5, joint_stiffness=0.02,
                         joint_damping=0.004)
    try:
        joints = _cable_joints(env)
        assert len(joints) == 5
        m = env.model
        np.testing.assert_allclose(m.jnt_stiffness[joints], 0.02)
        dofs = np.concatenate([m.jnt_dofadr[j] + np.arange(3) for j in joints])
        np.testing.assert_allclose(m.dof_damping[dofs], 0.004)
        env.reset(seed=0)
        # At rest the plug's tip hangs at most 5 segments + the plug below the gripper.
        depth = env.data.xpos[env.model.body("gripper").id][2] - \
            env.data.site_xpos[env.model.site("plug_tip").id][2]
        assert 0.05 < depth <= 5 * 0.015 + 0.05 + 1e-6
        assert env.sample_bend(np.random.default_rng(0)).shape == (5, 4)
    finally:
        env.close()


def test_default_options_given_explicitly_build_the_same_model():
    a = CableInsertEnv(images=False)
    b = CableInsertEnv(images=False, cable_segments=12, joint_stiffness=3e-3,
                       joint_damping=2e-3)
    try:
        for field in ("jnt_stiffness", "dof_damping", "body_mass", "body_pos", "geom_size"):
            assert np.array_equal(getattr(a.model, field), getattr(b.model, field)), field
        a.reset(seed=4)
        b.reset(seed=4)
        act = np.array([0.3, -0.2, -0.5, 0, 0, 0.1], np.float32)
        for _ in range(3):
            a.step(act)
            b.step(act)
        assert a.data.qpos.tobytes() == b.data.qpos.tobytes()
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- the variant


def test_short_variant_keeps_the_task_contract():
    """Same control rate, action space, keypoints, success rule, reward, safety box and time
    limit as the default id; only the cable and the start height differ."""
    assert gym.spec(SHORT_ID).max_episode_steps == gym.spec(DEFAULT_ID).max_episode_steps \
        == MAX_EPISODE_STEPS
    short, default = CableInsertShortEnv.default_options(), CableInsertEnv.default_options()
    differ = {k for k in default if short[k] != default[k]}
    assert differ == {"cable_segments", "gripper_height_range", "max_total_bend"}
    assert short["cable_segments"] == 4
    env = gym.make(SHORT_ID, image_size=16)
    try:
        base = gym.make(DEFAULT_ID, image_size=16)
        assert env.action_space == base.action_space
        assert env.observation_space == base.observation_space
        assert env.unwrapped.keypoint_names == base.unwrapped.keypoint_names
        base.close()
    finally:
        env.close()


def test_short_variant_passes_the_env_checker(make_env):
    assert_env_checker_passes(make_env(SHORT_ID, image_size=24))


def test_short_variant_same_seed_same_episode(make_env):
    env_a, env_b = make_env(SHORT_ID, image_size=16), make_env(SHORT_ID, image_size=16)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(4, 6)).astype(np.float32)
    outs = []
    for env in (env_a, env_b):
        obs, info = env.reset(seed=7)
        outs.append([(obs, 0.0, info)] + [(o, r, i) for o, r, _, _, i in
                                           (env.step(a) for a in actions)])
    for (oa, ra, ia), (ob, rb, ib) in zip(*outs, strict=True):
        for key in oa:
            assert oa[key].tobytes() == ob[key].tobytes(), key
        assert ra == rb
        assert ia["keypoints"].tobytes() == ib["keypoints"].tobytes()
    # a different seed gives a different episode
    _, info_c = env_a.reset(seed=8)
    assert info_c["keypoints"].tobytes() != outs[0][0][2]["keypoints"].tobytes()


def test_short_variant_plug_hangs_close_and_starts_over_the_socket_like_the_default():
    depths, heights = {}, {}
    for cls in (CableInsertEnv, CableInsertShortEnv):
        env = cls(images=False)
        d, h = [], []
        for seed in range(5):
            _, info = env.reset(seed=seed)
            tip = env.data.site_xpos[env.model.site("plug_tip").id]
            d.append(env.data.xpos[env.model.body("gripper").id][2] - tip[2])
            h.append(tip[2] - info["keypoints"][2, 2])
        env.close()
        depths[cls], heights[cls] = np.median(d), np.median(h)
    assert depths[CableInsertShortEnv] < 0.12 < 0.2 < depths[CableInsertEnv]
    assert abs(heights[CableInsertShortEnv] - heights[CableInsertEnv]) < 0.03


@pytest.mark.parametrize("seed", [0, 1])
def test_expert_inserts_in_the_short_variant(seed):
    env = gym.make(SHORT_ID, images=False)
    try:
        expert = CableInsertExpert(env)
        obs, info = env.reset(seed=seed)
        done, steps = False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(expert(obs, info))
            steps += 1
            done = terminated or truncated
        assert info["is_success"] and not info["left_safety_box"], (seed, steps, info)
        assert steps < MAX_EPISODE_STEPS
    finally:
        env.close()


# --------------------------------------------------------------------------- benchmarks


def test_pendulum_short_plug_barely_swings():
    """The default plug swings (period ~0.8 s, tens of mm); the short one is dragged along
    and settles within about a control step."""
    from benchmarks.cable_pendulum import measure

    default, _, dev = measure("default", 0, 12)
    short, _, _ = measure("short", 0, 12)
    assert 0.6 < default["period_s"] < 1.0
    assert default["peak_amplitude_m"] > 0.02
    assert short["peak_amplitude_m"] < default["peak_amplitude_m"] / 4
    assert short["jerk_lag_m"] < default["jerk_lag_m"] / 3
    assert short["settle_s"] < 0.5 < 1.5 < default["settle_s"]
    assert dev.shape[1] == 3


def test_swing_stats_of_a_known_damped_sine():
    from benchmarks.cable_pendulum import swing_stats

    t = np.arange(0, 4, 0.002)
    x = 0.02 * np.exp(-t / 1.0) * np.sin(2 * np.pi * t / 0.8)
    dev = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    s = swing_stats(t, dev, 0.25)
    assert s["period_s"] == pytest.approx(0.8, abs=2e-3)
    assert s["decay_per_period"] == pytest.approx(math.exp(-0.8), abs=0.01)
    assert 0.015 < s["peak_amplitude_m"] < 0.02
    # |x| < 1.5 mm for good once 0.02 e^-t < 1.5e-3 (t > 2.59 s) or a little earlier
    assert 2.0 < s["settle_s"] < 2.6


def test_expert_benchmark_env_options():
    from benchmarks.expert_cable import make_env, parse_env_options, result_name

    opts = parse_env_options(["cable_segments=4", "gripper_height_range=(0.18, 0.22)",
                              "joint_stiffness=0.03"])
    assert opts == {"cable_segments": 4, "gripper_height_range": (0.18, 0.22),
                    "joint_stiffness": 0.03}
    for bad in (["cable_segments"], ["=4"], ["a=1", "a=2"]):
        with pytest.raises(ValueError, match=r"KEY=VALUE|twice"):
            parse_env_options(bad)
    assert result_name(DEFAULT_ID, {}) == "expert_cable"
    assert result_name(SHORT_ID, {}) == "expert_cable_short"
    assert result_name(DEFAULT_ID, {"joint_stiffness": 0.03}) == \
        "expert_cable_joint_stiffness0.03"
    env = make_env(16, SHORT_ID, cable_segments=3)
    try:
        assert env.unwrapped.options["cable_segments"] == 3
        assert env.spec is None or env.spec.max_episode_steps in (None, MAX_EPISODE_STEPS)
    finally:
        env.close()
    with pytest.raises(ValueError, match="cable insertion env"):
        make_env(16, "S3K-Box-v0")


def test_rlpd_runner_makes_the_variant():
    from benchmarks import cable_rlpd

    env = cable_rlpd.make_env(True, True, True, SHORT_ID)
    try:
        assert env.unwrapped.options["cable_segments"] == 4
        obs, _ = env.reset(seed=0)
        assert obs.shape == (26,)
    finally:
        env.close()


def test_state_bc_fits_the_demonstrations():
    from benchmarks.cable_state_bc import fit_policy

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(21, 5)).astype(np.float32)
    obs[:, 4] = 0.0  # an entry the "expert" never varies
    act = np.tanh(obs[:-1, :3] @ rng.normal(size=(3, 6))).astype(np.float32)
    act[:, 3:] = 0.0
    demo = {"observations": obs, "actions": act}
    policy = fit_policy([demo], seed=0, fit_steps=400)
    import torch

    with torch.no_grad():
        pred = policy(torch.as_tensor(obs[:-1])).numpy()
        far = policy(torch.as_tensor(obs[:1] + np.array([[0, 0, 0, 0, 0.01]], np.float32)))
    assert np.mean((pred - act) ** 2) < 0.01
    # the constant entry's floor keeps a 0.01 change from throwing the output far off
    assert np.abs(far.numpy() - pred[:1]).max() < 0.5
    with pytest.raises(ValueError, match="observations vs"):
        fit_policy([{"observations": obs, "actions": act[:-2]}], seed=0, fit_steps=1)
