"""Tests of S3K-CableInsert-v0 (s3k_envs/envs/cable.py) and its scripted expert: API,
determinism, the keypoint/success definitions, bend randomisation, contacts, episode ends and
robustness to arbitrary actions."""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from s3k_test_utils import assert_env_checker_passes, place_gripper

from s3k_envs.envs.cable import (
    HOLE_HALF_WIDTH,
    MAX_EPISODE_STEPS,
    PLUG_EXPOSED,
    PLUG_LENGTH,
    SOCKET_HALF_WIDTH,
    SOCKET_HEIGHT,
    CableInsertEnv,
    insertion_error,
    insertion_reward,
    insertion_success,
    tip_keypoint,
)
from s3k_envs.experts import CableInsertExpert

ENV_ID = "S3K-CableInsert-v0"
if ENV_ID not in gym.registry:  # until s3k_envs/registration.py lists it
    gym.register(ENV_ID, entry_point="s3k_envs.envs.cable:CableInsertEnv",
                 max_episode_steps=MAX_EPISODE_STEPS)

TIP, BASE, SOCKET = 0, 1, 2


class PenetrationProbe:
    """Deepest contact penetration (m) seen at any physics substep while installed (MuJoCo's
    control callback runs inside every ``mj_step``, after collision detection); ``extra`` is
    called there too."""

    def __init__(self, extra: Callable[[mujoco.MjModel, mujoco.MjData], None] | None = None,
                 ) -> None:
        self.max_penetration = 0.0
        self.extra = extra

    def __call__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        if self.extra is not None:
            self.extra(model, data)
        if data.ncon:
            self.max_penetration = max(self.max_penetration,
                                       -float(data.contact.dist[: data.ncon].min()))

    def __enter__(self) -> PenetrationProbe:
        mujoco.set_mjcb_control(self)
        return self

    def __exit__(self, *exc: object) -> None:
        mujoco.set_mjcb_control(None)


def _run_expert(env: gym.Env, seed: int) -> tuple[dict, int]:
    expert = CableInsertExpert(env)
    obs, info = env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert(obs, info))
        steps += 1
        done = terminated or truncated
    return info, steps


def _plug_hanging_offset(env: gym.Env) -> np.ndarray:
    """Tip minus gripper position (m) of the cable at rest after the last reset."""
    u = env.unwrapped
    return u.data.site_xpos[u._tip_site] - u.data.xpos[u._gripper_id]


# --------------------------------------------------------------------------- API


def test_registered_with_time_limit():
    assert gym.spec(ENV_ID).max_episode_steps == 40


def test_check_env_passes(make_env):
    env = make_env(ENV_ID, image_size=24)
    assert_env_checker_passes(env)


def test_same_seed_gives_byte_identical_episodes(make_env):
    env_a, env_b = make_env(ENV_ID), make_env(ENV_ID)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 6)).astype(np.float32)
    outs = []
    for env in (env_a, env_b):
        obs, info = env.reset(seed=11)
        steps = [env.step(a) for a in actions]
        outs.append((obs, info, steps))
    (obs_a, info_a, steps_a), (obs_b, info_b, steps_b) = outs
    for key in obs_a:
        assert obs_a[key].tobytes() == obs_b[key].tobytes(), key
    assert info_a["keypoints"].tobytes() == info_b["keypoints"].tobytes()
    for (oa, ra, ta, tra, ia), (ob, rb, tb, trb, ib) in zip(steps_a, steps_b, strict=True):
        for key in oa:
            assert oa[key].tobytes() == ob[key].tobytes(), key
        assert (ra, ta, tra) == (rb, tb, trb)
        assert ia["keypoints"].tobytes() == ib["keypoints"].tobytes()
    # Re-seeding reproduces the first reset (the bend lives in the model: it is rewritten).
    obs_c, _ = env_a.reset(seed=11)
    assert obs_c["images"].tobytes() == obs_a["images"].tobytes()


def test_observation_info_and_keypoint_names(make_env):
    env = make_env(ENV_ID)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.keypoint_names == ("plug_tip", "plug_base", "socket")
    assert info["keypoints"].shape == (3, 3)
    assert obs["images"].shape == (4, 32, 32, 3)
    assert obs["images"].std() > 5
    assert set(info) >= {"insertion_error", "left_safety_box", "plug_tip_true", "is_success",
                         "sim_unstable"}
    assert info["insertion_error"] == pytest.approx(insertion_error(info["keypoints"]),
                                                    abs=1e-6)
    # The socket keypoint is the centre of the opening, on top of the socket.
    assert info["keypoints"][SOCKET, 2] == pytest.approx(SOCKET_HEIGHT, abs=1e-6)


@pytest.mark.parametrize("options", [
    {"success_threshold": 0.0}, {"socket_xy_range": -0.1}, {"gripper_offset_range": (0.1, 0.0)},
    {"gripper_height_range": "high"}, {"bend_scale": 2.0}, {"max_total_bend": -1.0},
    {"safety_box": (0.1, 0.2)}, {"safety_penalty": -1.0}, {"reward_length": 0.0},
    {"success_bonus": -1.0}, {"images": "no"},
])
def test_bad_options_raise(options):
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        CableInsertEnv(image_size=16, **options)


# --------------------------------------------------------------------------- success (pure)


def test_insertion_error_hand_computed():
    s = np.array([0.1, -0.2, 0.04])
    up = np.array([0.0, 0.0, 1.0])
    # Fully inserted: tip keypoint at the opening, base PLUG_EXPOSED above it.
    assert insertion_error(np.stack([s, s + PLUG_EXPOSED * up, s])) == pytest.approx(0.0)
    # Upright plug, tip 3 cm above the opening: 0.03 + (0.03 + depth 0.04) = 0.10.
    tip = s + 0.03 * up
    kp = np.stack([tip, tip + PLUG_LENGTH * up, s])
    assert insertion_error(kp) == pytest.approx(0.03 + 0.03 + SOCKET_HEIGHT)
    # 3-4-5 triangles, explicit plug_length.
    kp = np.array([[0.03, 0.04, 0.0], [0.0, 0.0, 0.05 + 0.012], [0.0, 0.0, 0.0]])
    assert insertion_error(kp, plug_length=0.05) == pytest.approx(0.05 + 0.012)
    # Inserted 2 cm of the 4 cm: error is the 2 cm the base still has to go down.
    kp = np.stack([s, s + (PLUG_EXPOSED + 0.02) * up, s])
    assert insertion_error(kp) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="shape"):
        insertion_error(np.zeros((2, 3)))


def test_insertion_success_threshold():
    s = np.zeros(3)
    up = np.array([0.0, 0.0, 1.0])
    at = lambda depth_left: np.stack([s, s + (0.01 + depth_left) * up, s])  # noqa: E731
    assert insertion_success(at(0.024), plug_length=0.01)
    assert not insertion_success(at(0.026), plug_length=0.01)
    assert insertion_success(at(0.026), plug_length=0.01, threshold=0.03)
    assert not insertion_success(at(0.0), plug_length=0.05)  # wrong plug length: 4 cm off
    # An upright plug hovering right at the opening is not inserted.
    assert not insertion_success(np.stack([s, s + PLUG_LENGTH * up, s]))


def test_tip_keypoint_snaps_inside_hole_only():
    socket = np.array([0.02, 0.03, SOCKET_HEIGHT])
    inside = socket + np.array([0.004, -0.005, -0.01])
    np.testing.assert_array_equal(tip_keypoint(inside, socket), socket)
    above = socket + np.array([0.004, -0.005, 0.002])
    np.testing.assert_array_equal(tip_keypoint(above, socket), above)
    # Below the rim but outside the hole (beside the socket).
    beside = socket + np.array([HOLE_HALF_WIDTH + 0.003, 0.0, -0.01])
    np.testing.assert_array_equal(tip_keypoint(beside, socket), beside)


# --------------------------------------------------------------------------- keypoints in the env


def test_tip_keypoint_snaps_to_opening_when_inside(make_env):
    env = make_env(ENV_ID, bend_scale=0.0)  # straight cable: the plug hangs plumb
    _, info = env.reset(seed=0)
    u = env.unwrapped
    hang = _plug_hanging_offset(env)
    assert np.linalg.norm(hang[:2]) < 1e-3
    socket = info["keypoints"][SOCKET].astype(np.float64)
    quat = u.data.xquat[u._gripper_id].copy()
    # Lower the plug 1 cm into the hole (teleport; it fits with clearance, no contact).
    place_gripper(env, socket - hang - np.array([0.0, 0.0, 0.01]), quat)
    _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["plug_tip_true"][2] < socket[2] - 0.005
    np.testing.assert_array_equal(info["keypoints"][TIP], info["keypoints"][SOCKET])
    assert not info["is_success"]  # 1 cm deep is not enough
    # Fully inserted: the tip rests on the table, success ends the episode.
    place_gripper(env, socket - hang - np.array([0.0, 0.0, SOCKET_HEIGHT - 0.001]), quat)
    _, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["is_success"] and terminated
    assert info["insertion_error"] < 0.01
    assert reward == pytest.approx(1.0 - math.tanh(info["insertion_error"] / 0.2) + 100.0)
    # Above the opening the tip keypoint is the physical tip again.
    place_gripper(env, socket - hang + np.array([0.0, 0.0, 0.02]), quat)
    _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    np.testing.assert_allclose(info["keypoints"][TIP], info["plug_tip_true"], atol=1e-7)
    assert info["keypoints"][TIP][2] > socket[2] + 0.01


def test_bend_is_randomised_every_reset(make_env):
    env = make_env(ENV_ID)
    u = env.unwrapped
    springs, offsets = [], []
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        springs.append(u.model.qpos_spring[u._cable_qadr[:, None] + np.arange(4)].copy())
        offsets.append(_plug_hanging_offset(env).copy())
    for quats in springs:
        np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-9)
        assert np.abs(quats[:, 0]).min() < 0.999  # actually bent
    for i in range(3):
        for j in range(i):
            assert np.abs(springs[i] - springs[j]).max() > 0.01, (i, j)
            assert np.linalg.norm(offsets[i] - offsets[j]) > 0.003, (i, j)  # plug rests elsewhere


def test_cable_starts_at_rest(make_env):
    env = make_env(ENV_ID)
    _, info = env.reset(seed=3)
    assert np.abs(env.unwrapped.data.qvel).max() < 1e-6
    _, _, _, _, after = env.step(np.zeros(6, dtype=np.float32))
    assert np.linalg.norm(after["plug_tip_true"] - info["plug_tip_true"]) < 1e-3


# --------------------------------------------------------------------------- expert, contacts


def test_expert_inserts_without_penetration(make_env):
    env = make_env(ENV_ID, image_size=16)
    successes, steps = 0, []
    with PenetrationProbe() as probe:
        for seed in range(5):
            info, n = _run_expert(env, seed)
            successes += info["is_success"]
            steps.append(n)
            assert not info["sim_unstable"]
    assert successes >= 4, steps
    assert probe.max_penetration < 0.002, probe.max_penetration


def test_plug_does_not_tunnel_through_socket_wall(make_env):
    """Drive the plug sideways into the socket wall at full speed: at no physics substep is
    any point of the plug's axis inside the wall material (that would take a penetration of
    more than the plug's 4.5 mm radius), and contacts stay shallow."""
    env = make_env(ENV_ID, image_size=16, num_cameras=1, bend_scale=0.0)
    u = env.unwrapped
    _, info = env.reset(seed=1)
    hang = _plug_hanging_offset(env)
    socket = info["keypoints"][SOCKET].astype(np.float64)
    quat = u.data.xquat[u._gripper_id].copy()
    # Plug tip 3 cm below the rim, 4 cm beside the socket on -x; then push along +x.
    place_gripper(env, socket - hang + np.array([-0.04, 0.0, -0.03]), quat)
    in_wall = []

    def check(model: mujoco.MjModel, data: mujoco.MjData) -> None:
        tip, base = data.site_xpos[u._tip_site], data.site_xpos[u._base_site]
        for a in np.linspace(0.0, 1.0, 6):
            rel = tip + a * (base - tip) - socket
            ring = HOLE_HALF_WIDTH < np.abs(rel[:2]).max() < SOCKET_HALF_WIDTH
            in_wall.append(bool(ring and rel[2] < 0.0))

    action = np.array([1.0, 0, 0, 0, 0, 0], dtype=np.float32)
    with PenetrationProbe(check) as probe:
        for _ in range(3):
            *_, terminated, _, info = env.step(action)
            if terminated:
                break
    assert len(in_wall) > 100
    assert not any(in_wall)
    assert 0 < probe.max_penetration < 0.002, probe.max_penetration  # it did hit the wall


# --------------------------------------------------------------------------- episode ends


def test_leaving_safety_box_terminates_and_forfeits_the_reward(make_env):
    env = make_env(ENV_ID, image_size=16)
    u = env.unwrapped
    env.reset(seed=0)
    up = np.array([0, 0, 1.0, 0, 0, 0], dtype=np.float32)
    for _ in range(10):
        _, reward, terminated, truncated, info = env.step(up)
        if terminated:
            break
        assert not info["left_safety_box"]
        assert reward == pytest.approx(1.0 - math.tanh(info["insertion_error"] / 0.2))
    assert terminated and not truncated
    assert info["left_safety_box"] and not info["is_success"]
    assert not u.gripper_in_safety_box()
    assert u.options["safety_penalty"] == 0.0
    assert 0.0 <= reward == pytest.approx(1.0 - math.tanh(info["insertion_error"] / 0.2))
    env_p = make_env(ENV_ID, image_size=16, safety_penalty=2.0)
    env_p.reset(seed=0)
    for _ in range(10):
        _, reward_p, terminated, _, info_p = env_p.step(up)
        if terminated:
            break
    assert info_p["left_safety_box"]
    assert reward_p == pytest.approx(reward - 2.0)


def test_insertion_reward_is_bounded_and_success_is_worth_staying_forever():
    assert insertion_reward(0.0, False) == pytest.approx(1.0)
    assert insertion_reward(0.2, False) == pytest.approx(1.0 - math.tanh(1.0))
    errors = np.linspace(0.0, 2.0, 50)
    rewards = [insertion_reward(e, False) for e in errors]
    assert all(0.0 <= r <= 1.0 for r in rewards) and np.all(np.diff(rewards) < 0)
    # The success bonus is the value of the best per-step reward forever at gamma 0.99.
    assert insertion_reward(0.02, True) - insertion_reward(0.02, False) == pytest.approx(100.0)
    assert insertion_reward(0.1, False, left_safety_box=True, safety_penalty=3.0) == \
        pytest.approx(insertion_reward(0.1, False) - 3.0)


def _discounted_return(env: gym.Env, policy: Callable[[dict, dict], np.ndarray], seed: int,
                       gamma: float) -> tuple[float, dict, int]:
    obs, info = env.reset(seed=seed)
    ret, discount, steps, done = 0.0, 1.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        ret += discount * reward
        discount *= gamma
        steps += 1
        done = terminated or truncated
    return ret, info, steps


def test_hovering_earns_more_than_leaving_and_inserting_more_than_hovering(make_env):
    """Under the agents' discount (0.99): an agent that hovers in place for the whole episode
    earns more than one that leaves the safety box (the reward of issue 15: with the old
    ``-error`` reward and a -10 penalty leaving was the better deal), and the expert, which
    inserts, earns more than hovering even when hovering's bootstrapped future is counted."""
    gamma = 0.99
    env = make_env(ENV_ID, images=False)
    still = np.zeros(6, dtype=np.float32)
    for seed in range(3):
        hover, hover_info, hover_steps = _discounted_return(
            env, lambda o, i: still, seed, gamma)
        assert hover_steps == MAX_EPISODE_STEPS and not hover_info["left_safety_box"]
        for direction in ([1, 0, 0], [0, -1, 0], [0, 0, 1]):  # out sideways / upwards
            leave_action = np.array([*direction, 0, 0, 0], dtype=np.float32)
            leave, leave_info, leave_steps = _discounted_return(
                env, lambda o, i, a=leave_action: a, seed, gamma)
            assert leave_info["left_safety_box"] and leave_steps < MAX_EPISODE_STEPS
            assert hover > leave + 1.0, (seed, direction, hover, leave)
        expert = CableInsertExpert(env)
        expert.reset()
        insert, insert_info, _ = _discounted_return(env, expert, seed, gamma)
        assert insert_info["is_success"]
        # Hovering's value with the time limit bootstrapped: at most 1 per step forever after.
        assert insert > hover + gamma ** MAX_EPISODE_STEPS / (1 - gamma), (seed, insert, hover)


def test_images_false_never_renders(make_env):
    env = make_env(ENV_ID, images=False, render_mode="rgb_array")
    assert "images" not in env.observation_space.spaces
    obs, info = env.reset(seed=0)
    for _ in range(3):
        obs, *_, info = env.step(np.zeros(6, dtype=np.float32))
    assert "images" not in obs and env.observation_space.contains(obs)
    assert info["keypoints"].shape == (3, 3) and info["keypoints_2d"].shape == (4, 3, 2)
    assert env.unwrapped._renderer is None  # nothing rendered
    frame = env.render()  # on demand only
    assert frame is not None and frame.std() > 5


def test_time_limit_truncates_after_40_steps(make_env):
    env = make_env(ENV_ID, image_size=16)
    env.reset(seed=0)
    for t in range(1, 41):
        _, _, terminated, truncated, _ = env.step(np.zeros(6, dtype=np.float32))
        assert not terminated
        assert truncated == (t == 40)


@pytest.mark.parametrize("qvel", [1e6, 1e12])
def test_blow_up_ends_episode(qvel, make_env):
    env = make_env(ENV_ID, image_size=16)
    env.reset(seed=0)
    env.unwrapped.data.qvel[:] = qvel
    obs, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert terminated and info["sim_unstable"]
    assert math.isfinite(reward)
    assert all(np.all(np.isfinite(v)) for v in obs.values())


def _fuzz(env: gym.Env, steps: int, seed: int) -> dict[str, int]:
    """Random, saturated and alternating actions; resets whenever an episode ends."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    counts = {"episodes": 0, "unstable": 0}
    for t in range(steps):
        mode = (t // 50) % 4
        if mode == 0:
            action = rng.uniform(-1, 1, 6)
        elif mode == 1:
            action = rng.choice([-1.0, 1.0], 6)
        elif mode == 2:
            action = np.full(6, 1.0 if t % 2 else -1.0)
        else:  # whip the cable: saturated rotation, small translation
            action = np.concatenate([0.3 * rng.choice([-1.0, 1.0], 3), rng.choice([-1, 1], 3)])
        obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
        for key, value in obs.items():
            assert np.all(np.isfinite(value)), (t, key)
        assert math.isfinite(reward) and np.all(np.isfinite(info["keypoints"]))
        if info["sim_unstable"]:
            assert terminated
            counts["unstable"] += 1
        if terminated or truncated:
            counts["episodes"] += 1
            obs, info = env.reset()
    return counts


# One camera: the fuzz targets the physics; rendering 4 views would double its run time.
def test_fuzz_random_and_extreme_actions(make_env):
    counts = _fuzz(make_env(ENV_ID, image_size=16, num_cameras=1), 2000, seed=0)
    assert counts["episodes"] > 10


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 10,000 steps: minutes on a loaded 2-core machine
def test_fuzz_random_and_extreme_actions_long(make_env):
    counts = _fuzz(make_env(ENV_ID, image_size=16, num_cameras=1), 10_000, seed=1)
    assert counts["episodes"] > 50
