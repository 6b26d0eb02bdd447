"""KeypointObservation, KeypointReward, obs_mode="keypoints" and the checkpoint resolver.

The models here are randomly initialised (accuracy does not matter for behaviour), written to
temporary checkpoints for 4 cameras at 64 px.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from s3k_envs import checkpoints
from s3k_envs.envs.cable import (
    PLUG_EXPOSED,
    insertion_error,
    insertion_reward,
    insertion_success,
)
from s3k_envs.experts import CableInsertExpert
from s3k_envs.keypoints.model import build_model, save_checkpoint
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.keypoints.train import TrainConfig
from s3k_envs.wrappers import KeypointObservation, KeypointReward, KeypointTerm
from s3k_envs.wrappers.rewards import cable_insert_reward

ENV_IDS = ("S3K-Box-v0", "S3K-BoxDistractors-v0", "S3K-Shoes-v0", "S3K-CableInsert-v0")
NAMES = {
    "S3K-Box-v0": ["corner_0", "corner_1", "corner_2"],
    "S3K-BoxDistractors-v0": ["corner_0", "corner_1", "corner_2"],
    "S3K-Shoes-v0": ["front", "tongue", "heel"],
    "S3K-CableInsert-v0": ["plug_tip", "plug_base", "socket"],
}
SIZE = 64
CABLE = "S3K-CableInsert-v0"
_ALLOWED_CHECKER_WARNINGS = ("infinity", "different from the unwrapped")


def write_checkpoint(path: Path, names: list[str], cameras: int = 4, size: int = SIZE) -> Path:
    """A randomly initialised S3K model for ``names``, ``cameras`` views of ``size`` px."""
    d = TrainConfig()
    config = {"keypoint_names": list(names), "num_cameras": cameras, "image_size": [size, size],
              "sigma": d.sigma, "stride": d.stride, "channels": d.channels,
              "res_blocks": d.res_blocks, "res_channels": d.res_channels, "skip": d.skip,
              "stem_convs": d.stem_convs, "window_px": d.window_px}
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(config), config)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP spin contention
    (measured 250 ms instead of 10 ms per 4-view prediction under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``ckpt(env_id, cameras=4, size=64, names=None)`` -> path of a cached random checkpoint."""
    root = tmp_path_factory.mktemp("ckpt")
    made: dict[tuple[Any, ...], Path] = {}

    def get(env_id: str, cameras: int = 4, size: int = SIZE,
            names: list[str] | None = None) -> Path:
        names = list(names or NAMES[env_id])
        key = (tuple(names), cameras, size)
        if key not in made:
            made[key] = write_checkpoint(root / f"{'-'.join(names)}-{cameras}-{size}.pt", names,
                                         cameras, size)
        return made[key]

    return get


@pytest.fixture
def closing() -> Any:
    """``closing(env)`` -> env, closed after the test."""
    envs: list[gym.Env] = []

    def add(env: gym.Env) -> gym.Env:
        envs.append(env)
        return env

    yield add
    for env in envs:
        env.close()


def _check_env_quietly(env: gym.Env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught
                  if not any(s in str(w.message) for s in _ALLOWED_CHECKER_WARNINGS)]
    assert not unexpected, unexpected


# --------------------------------------------------------------------------- KeypointObservation
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_keypoint_wrappers(env_id: str, ckpt, closing) -> None:
    env = closing(KeypointObservation(gym.make(env_id, image_size=SIZE), ckpt(env_id)))
    if env_id == CABLE:
        env = KeypointReward.cable_insert(env)
    else:
        env = KeypointReward(env, [KeypointTerm(NAMES[env_id][0], obs_key="gripper_pos")],
                             success_threshold=0.01)
    _check_env_quietly(env)


def test_observation_and_info_layout(ckpt, closing) -> None:
    env = closing(KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE),
                                      ckpt("S3K-Box-v0")))
    space = env.observation_space
    assert set(space.spaces) == {"keypoints", "keypoint_confidence", "gripper_pos",
                                 "gripper_quat", "gripper_linvel", "gripper_angvel"}
    assert space["keypoints"].shape == (3, 3) and space["keypoints"].dtype == np.float32
    assert np.all(np.isfinite(space["keypoints"].low)) and np.all(space["keypoints"].low <= -1)
    assert space["keypoint_confidence"].shape == (3,)
    conf = space["keypoint_confidence"]
    assert conf.low.min() == 0 and conf.high.max() == 1
    assert env.keypoint_names == NAMES["S3K-Box-v0"]
    for obs, info in (env.reset(seed=0), env.step(env.action_space.sample())[::4]):
        assert obs in space
        assert obs["keypoints"].dtype == np.float32 and obs["keypoints"].shape == (3, 3)
        assert obs["keypoint_confidence"].dtype == np.float32
        assert np.all((obs["keypoint_confidence"] > 0) & (obs["keypoint_confidence"] < 1))
        assert info["predicted_keypoints"].shape == (3, 3)
        assert info["predicted_keypoints"].dtype == np.float32
        assert info["predicted_keypoints_2d"].shape == (4, 3, 2)
        assert info["predicted_confidence"].shape == (4, 3)
        np.testing.assert_allclose(obs["keypoint_confidence"],
                                   info["predicted_confidence"].mean(axis=0), rtol=1e-6)
        assert info["keypoints"].shape == (3, 3)  # ground truth stays in info
        # The observation is the raw prediction wherever that lies inside the bounds.
        inside = np.all((info["predicted_keypoints"] >= space["keypoints"].low)
                        & (info["predicted_keypoints"] <= space["keypoints"].high), axis=1)
        np.testing.assert_array_equal(obs["keypoints"][inside],
                                      info["predicted_keypoints"][inside])
    # The same model on the same images, directly:
    raw, _ = env.env.reset(seed=3)
    pred = env.predictor.predict(raw["images"], raw["intrinsics"], raw["extrinsics"])
    obs, info = env.reset(seed=3)
    np.testing.assert_allclose(info["predicted_keypoints"], pred.points_3d, atol=1e-6)


def test_keep_options_and_clipping(ckpt, closing) -> None:
    path = ckpt("S3K-Box-v0")
    env = closing(KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE), path,
                                      keep=["gripper_pos"], confidence=False, keep_images=True,
                                      keypoint_bounds=(-0.01, 0.01)))
    assert set(env.observation_space.spaces) == {"gripper_pos", "images", "keypoints"}
    obs, info = env.reset(seed=1)
    assert obs["images"].shape == (4, SIZE, SIZE, 3) and obs in env.observation_space
    np.testing.assert_array_equal(obs["keypoints"],
                                  np.clip(info["predicted_keypoints"], -0.01, 0.01))
    with pytest.raises(ValueError, match="no observation key"):
        KeypointObservation(env.env, path, keep=["gripper_pos", "joint_angles"])
    # NaN and inf predictions become finite observations inside the space.
    real = env.predictor.predict

    def broken(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        out.points_3d[0] = [np.nan, np.inf, -np.inf]
        return out

    env.predictor.predict = broken  # type: ignore[method-assign]
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs["keypoints"][0], np.float32([0.0, 0.01, -0.01]))
    assert obs in env.observation_space


def test_predictor_object_and_path_agree(ckpt, closing) -> None:
    path = ckpt("S3K-Box-v0")
    a = closing(KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE), path))
    b = closing(KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE),
                                    KeypointPredictor.load(path)))
    (oa, _), (ob, _) = a.reset(seed=5), b.reset(seed=5)
    np.testing.assert_allclose(oa["keypoints"], ob["keypoints"], atol=1e-6)


class _NoCameraEnv(gym.Env):
    """A Dict-observation env without images (like a plain MuJoCo env)."""

    observation_space = spaces.Dict({"qpos": spaces.Box(-1, 1, (3,), np.float32)})
    action_space = spaces.Box(-1, 1, (1,), np.float32)


def test_error_without_cameras(ckpt) -> None:
    with pytest.raises(ValueError, match="MultiViewCameras") as exc:
        KeypointObservation(_NoCameraEnv(), ckpt("S3K-Box-v0"))
    assert "images" in str(exc.value) and "qpos" in str(exc.value)
    flat = _NoCameraEnv()
    flat.observation_space = spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(ValueError, match="MultiViewCameras"):
        KeypointObservation(flat, ckpt("S3K-Box-v0"))


def test_errors_for_mismatched_models(ckpt, closing) -> None:
    env = closing(gym.make("S3K-Box-v0", image_size=SIZE))
    with pytest.raises(ValueError, match=r"keypoints \['plug_tip'.*corner_0"):
        KeypointObservation(env, ckpt(CABLE))
    with pytest.raises(ValueError, match=r"trained for 3 cameras, but .* has 4"):
        KeypointObservation(env, ckpt("S3K-Box-v0", cameras=3))
    with pytest.raises(ValueError, match=r"trained on 32x32 images, but .* renders 64x64"):
        KeypointObservation(env, ckpt("S3K-Box-v0", size=32))
    with pytest.raises(TypeError, match="KeypointPredictor or a checkpoint path"):
        KeypointObservation(env, object())  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        KeypointObservation(env, "/nonexistent/nothing.pt")


# --------------------------------------------------------------------------- KeypointReward
class _StubKeypointEnv(gym.Env):
    """Fixed keypoints, no MuJoCo: ``info["keypoints"]`` is whatever ``self.kp`` holds."""

    keypoint_names = ("a", "b", "c")
    observation_space = spaces.Dict({"gripper_pos": spaces.Box(-1, 1, (3,), np.float32)})
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self) -> None:
        self.kp = np.array([[0.0, 0.0, 0.0], [0.3, 0.4, 0.0], [0.0, 0.0, 1.0]])
        self.gripper = np.array([0.0, 0.0, 0.5], np.float32)
        self.flags: dict[str, Any] = {}

    def _info(self) -> dict[str, Any]:
        return {"keypoints": self.kp.astype(np.float32), "is_success": False, **self.flags}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return {"gripper_pos": self.gripper.copy()}, self._info()

    def step(self, action: Any) -> Any:
        return {"gripper_pos": self.gripper.copy()}, 123.0, False, False, self._info()


def test_reward_by_hand() -> None:
    stub = _StubKeypointEnv()
    terms = [KeypointTerm("a", "b"),                                    # |a - b| = 0.5
             KeypointTerm("c", target=(0.0, 0.0, 0.0), weight=2.0),    # 2 * 1.0
             KeypointTerm("a", "c", offset=(0.0, 0.0, -1.0)),           # |a - (c - z)| = 0
             KeypointTerm("c", obs_key="gripper_pos", weight=0.5)]      # 0.5 * 0.5
    env = KeypointReward(stub, terms, success_threshold=3.0, scale=2.0)
    assert env.keypoint_source == "true"
    _, info = env.reset(seed=0)
    assert info["keypoint_distance"] == pytest.approx(2.75)
    np.testing.assert_allclose(info["keypoint_distances"], [0.5, 1.0, 0.0, 0.5], atol=1e-7)
    assert info["is_success"] is True and info["is_success_true"] is False
    _, reward, terminated, _, info = env.step(np.zeros(1))
    assert reward == pytest.approx(-2.0 * 2.75) and not terminated
    # Success from a callable on the (K, 3) keypoints, termination and penalties.
    seen: list[np.ndarray] = []

    def far_apart(kp: np.ndarray) -> bool:
        seen.append(kp)
        return bool(np.linalg.norm(kp[0] - kp[2]) > 0.9)

    stub.flags = {"left_safety_box": True}
    env = KeypointReward(stub, terms[:1], success=far_apart, terminate_on_success=True,
                         penalties={"left_safety_box": 10.0})
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(1))
    assert reward == pytest.approx(-(0.5 + 10.0)) and terminated and info["is_success"]
    assert seen[-1].shape == (3, 3)
    # Bounded shaping with a success bonus: scale * (1 - tanh(D / length) + bonus - penalty).
    env = KeypointReward(stub, terms[:1], success=far_apart, penalties={"left_safety_box": 0.25},
                         shaping="tanh", length=0.2, success_bonus=100.0, scale=0.5)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(1))
    expected = 0.5 * (1.0 - np.tanh(0.5 / 0.2) + 100.0 - 0.25)
    assert reward == pytest.approx(expected)
    assert env.reward_for(0.5, True, {"left_safety_box": True}) == pytest.approx(expected)
    assert env.reward_for(0.5, False, {}) == pytest.approx(0.5 * (1.0 - np.tanh(2.5)))
    for kwargs, match in (({"shaping": "exp"}, "shaping"), ({"shaping": "tanh"}, "length"),
                          ({"shaping": "tanh", "length": -1.0}, "length"),
                          ({"success_bonus": -1.0, "success_threshold": 1.0}, "success_bonus"),
                          ({"success_bonus": 1.0}, "success rule")):
        with pytest.raises(ValueError, match=match):
            KeypointReward(stub, terms[:1], **kwargs)
    # Without a success rule the env's own is_success is untouched.
    env = KeypointReward(stub, terms[:1])
    _, info = env.reset(seed=0)
    assert info["is_success"] is False and "is_success_true" not in info
    assert env.keypoint_distance(stub.kp) == pytest.approx(0.5)


def test_reward_argument_errors() -> None:
    stub = _StubKeypointEnv()
    with pytest.raises(ValueError, match="exactly one of b"):
        KeypointTerm("a")
    with pytest.raises(ValueError, match="exactly one of b"):
        KeypointTerm("a", "b", target=(0, 0, 0))
    with pytest.raises(ValueError, match="3 finite numbers"):
        KeypointTerm("a", target=(0, 0))
    with pytest.raises(ValueError, match="weight"):
        KeypointTerm("a", "b", weight=-1)
    with pytest.raises(ValueError, match=r"unknown keypoint 'tip'.*\['a', 'b', 'c'\]"):
        KeypointReward(stub, [KeypointTerm("tip", "a")])
    with pytest.raises(ValueError, match=r"obs_key 'qpos'.*\['gripper_pos'\]"):
        KeypointReward(stub, [KeypointTerm("a", obs_key="qpos")])
    with pytest.raises(ValueError, match="exactly one of b"):
        KeypointTerm("a", target=(0, 0, 0), obs_key="gripper_pos")
    with pytest.raises(ValueError, match="not both"):
        KeypointReward(stub, [KeypointTerm("a", "b")], success_threshold=0.1,
                       success=lambda kp: True)
    with pytest.raises(ValueError, match="needs a success rule"):
        KeypointReward(stub, [KeypointTerm("a", "b")], terminate_on_success=True)
    with pytest.raises(ValueError, match="needs a KeypointObservation"):
        KeypointReward(stub, [KeypointTerm("a", "b")], keypoint_source="predicted")


def test_reward_from_predictions_vs_ground_truth(ckpt, closing) -> None:
    terms = [KeypointTerm("corner_0", "corner_1"), KeypointTerm("corner_2", target=(0, 0, 0))]
    obs_env = closing(KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE),
                                          ckpt("S3K-Box-v0")))
    predicted = KeypointReward(obs_env, terms, success_threshold=0.05)
    privileged = KeypointReward(obs_env, terms, keypoint_source="true")
    truth = KeypointReward(closing(gym.make("S3K-Box-v0", image_size=SIZE)), terms)
    assert predicted.keypoint_source == "predicted" and privileged.keypoint_source == "true"
    assert truth.keypoint_source == "true"

    def expected(kp: np.ndarray) -> float:
        kp = kp.astype(np.float64)
        return float(np.linalg.norm(kp[0] - kp[1]) + np.linalg.norm(kp[2]))

    action = np.zeros(6, np.float32)
    for env in (predicted, privileged, truth):
        env.reset(seed=4)
        _, reward, _, _, info = env.step(action)
        source = "predicted_keypoints" if env is predicted else "keypoints"
        assert reward == pytest.approx(-expected(info[source]), abs=1e-9)
        assert info["keypoint_distance"] == pytest.approx(expected(info[source]), abs=1e-9)
    # corner_0 (+x, +y) to corner_1 (+x, -y) on the true box: its width, 10.5 cm.
    assert info["keypoint_distances"][0] == pytest.approx(0.105, abs=2e-3)


def test_cable_rule_matches_env_on_ground_truth(closing) -> None:
    env = cable_insert_reward(closing(gym.make(CABLE, image_size=16)))
    assert env.success_threshold == 0.025
    assert [t.offset for t in env.terms] == [(0.0, 0.0, 0.0), (0.0, 0.0, PLUG_EXPOSED)]
    expert = CableInsertExpert(env)
    obs, info = env.reset(seed=2)
    successes = 0
    for _ in range(40):
        kp = info["keypoints"]
        assert info["keypoint_distance"] == pytest.approx(insertion_error(kp), abs=1e-12)
        assert info["is_success"] == insertion_success(kp)
        assert info["is_success"] == info["is_success_true"]
        assert info["keypoint_distance"] == pytest.approx(info["insertion_error"], abs=1e-6)
        obs, reward, terminated, truncated, info = env.step(expert(obs, info))
        env_reward = insertion_reward(info["insertion_error"], info["is_success_true"],
                                      info["left_safety_box"])
        assert reward == pytest.approx(env_reward, abs=1e-5)
        successes += info["is_success"]
        if terminated or truncated:
            break
    assert successes == 1 and info["is_success"] and terminated  # the env ends on success
    # Random and near-inserted keypoint sets: the rule is insertion_error / _success exactly.
    rng = np.random.default_rng(0)
    socket = np.array([0.01, -0.02, 0.04])
    for i in range(200):
        scale = 0.02 if i % 2 else 0.2
        tip = socket + rng.normal(0, scale, 3)
        base = socket + np.array([0, 0, PLUG_EXPOSED]) + rng.normal(0, scale, 3)
        kp = np.stack([tip, base, socket])
        assert env.keypoint_distance(kp) == insertion_error(kp)
        assert (env.keypoint_distance(kp) < env.success_threshold) == insertion_success(kp)


def test_cable_reward_under_keypoint_observation(ckpt, closing) -> None:
    env = KeypointReward.cable_insert(
        closing(KeypointObservation(gym.make(CABLE, image_size=SIZE), ckpt(CABLE))),
        terminate_on_success=True)
    _, info = env.reset(seed=0)
    assert env.keypoint_source == "predicted"
    _, reward, _, _, info = env.step(np.zeros(6, np.float32))
    pred = info["predicted_keypoints"]
    assert reward == pytest.approx(insertion_reward(insertion_error(pred),
                                                    insertion_success(pred),
                                                    info["left_safety_box"]), abs=1e-9)
    assert info["is_success"] == insertion_success(info["predicted_keypoints"])
    assert "is_success_true" in info


# --------------------------------------------------------------------------- vector envs, SB3
def test_async_vector_env(ckpt) -> None:
    path = ckpt("S3K-Box-v0")
    predictor = KeypointPredictor.load(path)  # pickled into the worker with the closure

    def make_from_path() -> gym.Env:
        env = KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE), path,
                                  torch_threads=1)
        return KeypointReward(env, [KeypointTerm("corner_0", obs_key="gripper_pos")])

    def make_from_object() -> gym.Env:
        env = KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE), predictor,
                                  torch_threads=1)
        return KeypointReward(env, [KeypointTerm("corner_0", obs_key="gripper_pos")])

    # Not "fork": this process has rendered already, and Mesa's llvmpipe threads do not
    # survive a fork (the child would hang in its first render). The fork server imports
    # torch and the env once, then forks both workers (like s3k_envs.keypoints.data does).
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["s3k_envs.wrappers.keypoints", "s3k_envs.wrappers.rewards", "s3k_envs.envs.box"])
    venv = gym.vector.AsyncVectorEnv([make_from_path, make_from_object], context="forkserver")
    try:
        obs, info = venv.reset(seed=[0, 0])
        assert obs["keypoints"].shape == (2, 3, 3)
        assert info["predicted_keypoints_2d"].shape == (2, 4, 3, 2)
        np.testing.assert_allclose(obs["keypoints"][0], obs["keypoints"][1], atol=1e-5)
        for _ in range(3):
            obs, reward, _, _, info = venv.step(venv.action_space.sample())
            assert obs["keypoint_confidence"].shape == (2, 3) and reward.shape == (2,)
            assert np.all(np.isfinite(reward)) and info["predicted_keypoints"].shape == (2, 3, 3)
    finally:
        venv.close()


def test_sb3_td3_runs_on_keypoint_cable(ckpt) -> None:
    from stable_baselines3 import TD3
    from stable_baselines3.common.env_util import make_vec_env

    path = ckpt(CABLE, size=32)  # 32 px: the cheapest size the model allows

    def wrap(env: gym.Env) -> gym.Env:
        return KeypointReward.cable_insert(KeypointObservation(env, path))

    venv = make_vec_env(CABLE, n_envs=1, seed=0, env_kwargs={"image_size": 32},
                        wrapper_class=wrap)
    try:
        model = TD3("MultiInputPolicy", venv, learning_starts=50, batch_size=32,
                    policy_kwargs={"net_arch": [32, 32]}, seed=0, device="cpu")
        model.learn(total_timesteps=200)
        assert model.num_timesteps == 200
        obs = venv.reset()
        action, _ = model.predict(obs, deterministic=True)
        assert action.shape == (1, 6) and np.all(np.abs(action) <= 1)
    finally:
        venv.close()


# --------------------------------------------------------------------------- gymnasium.make
def test_make_obs_mode_keypoints(ckpt, closing) -> None:
    path = ckpt(CABLE)
    env = closing(gym.make(CABLE, image_size=SIZE, obs_mode="keypoints",
                           keypoint_checkpoint=path, render_mode="rgb_array"))
    assert env.spec.id == CABLE and env.spec.max_episode_steps == 40
    assert isinstance(env, gym.wrappers.TimeLimit)
    assert isinstance(env.env.env, gym.wrappers.PassiveEnvChecker)
    assert isinstance(env.env.env.env, KeypointObservation)
    assert env.render_mode == "rgb_array"
    obs, info = env.reset(seed=0)
    assert obs["keypoints"].shape == (3, 3) and "images" not in obs
    assert info["predicted_confidence"].shape == (4, 3)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[0] >= 2 * SIZE and frame.std() > 1
    # The spec re-creates the same wrapped env.
    again = closing(gym.make(env.spec))
    assert isinstance(again.unwrapped, type(env.unwrapped))
    assert again.observation_space == env.observation_space
    # Images (the default) still give the multi-view env.
    plain = closing(gym.make(CABLE, image_size=SIZE, obs_mode="images"))
    assert "images" in plain.observation_space.spaces


def test_make_option_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"obs_mode must be one of \['images', 'keypoints'\]"):
        gym.make("S3K-Box-v0", obs_mode="pixels")
    with pytest.raises(ValueError, match="only used with obs_mode='keypoints'"):
        gym.make("S3K-Box-v0", keypoint_checkpoint="x.pt")
    with pytest.raises(ValueError, match=r"unknown option.*obs_mode"):
        gym.make("S3K-Box-v0", imagesize=32)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIRS", (tmp_path / "wheel", tmp_path / "repo"))
    with pytest.raises(FileNotFoundError, match=r"S3K-Shoes-v0(.|\n)*s3k train"):
        gym.make("S3K-Shoes-v0", obs_mode="keypoints")


def test_default_checkpoint_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, repo = tmp_path / "wheel", tmp_path / "repo"
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIRS", (wheel, repo))
    with pytest.raises(FileNotFoundError) as exc:
        checkpoints.default_checkpoint("S3K-Box-v0")
    assert str(wheel / "S3K-Box-v0.pt") in str(exc.value)
    assert str(repo / "S3K-Box-v0.pt") in str(exc.value)
    repo.mkdir()
    (repo / "S3K-Box-v0.pt").write_bytes(b"x")
    assert checkpoints.default_checkpoint("S3K-Box-v0") == repo / "S3K-Box-v0.pt"
    # BoxDistractors falls back to the Box model, but prefers its own anywhere.
    assert checkpoints.default_checkpoint("S3K-BoxDistractors-v0") == repo / "S3K-Box-v0.pt"
    wheel.mkdir()
    (wheel / "S3K-BoxDistractors-v0.pt").write_bytes(b"x")
    assert (checkpoints.default_checkpoint("S3K-BoxDistractors-v0")
            == wheel / "S3K-BoxDistractors-v0.pt")
    # The real search path: the package's assets (wheel) and the repository's.
    root = Path(checkpoints.__file__).resolve().parent
    real = [root / "assets" / "checkpoints", root.parent / "assets" / "checkpoints"]
    monkeypatch.undo()
    assert list(checkpoints.CHECKPOINT_DIRS) == real


def test_registration_stays_lazy() -> None:
    code = ("import sys, gymnasium as gym\n"
            "spec = gym.spec('S3K-CableInsert-v0')\n"
            "assert spec.entry_point == 's3k_envs.registration:make_cable_insert', spec\n"
            "bad = [m for m in ('mujoco', 'torch', 's3k_envs.envs') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr

