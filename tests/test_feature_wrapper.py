"""FeatureObservation, the base of KeypointObservation and VAEObservation, with a toy
feature (the mean colour of every view) on a toy env."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from s3k_envs.wrappers.features import FeatureObservation, check_camera_space


class _Cameras(gym.Env):
    """Two 4x5 views, calibration and a proprioceptive entry."""

    def __init__(self, calibration: bool = True) -> None:
        entries: dict[str, spaces.Space] = {
            "images": spaces.Box(0, 255, (2, 4, 5, 3), np.uint8),
            "gripper_pos": spaces.Box(-1, 1, (3,), np.float32)}
        if calibration:
            entries["intrinsics"] = spaces.Box(-np.inf, np.inf, (2, 3, 3), np.float32)
            entries["extrinsics"] = spaces.Box(-np.inf, np.inf, (2, 4, 4), np.float32)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {"truth": 1}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool,
                                         dict[str, Any]]:
        return self.observation_space.sample(), 0.5, False, False, {"truth": 2}


class _MeanColour(FeatureObservation):
    FEATURE_KEYS: ClassVar[tuple[str, ...]] = ("colour",)
    NEEDS_CALIBRATION: ClassVar[bool] = False

    def __init__(self, env: gym.Env, keep: list[str] | None = None,
                 keep_images: bool = False) -> None:
        super().__init__(env)
        c = self.camera_shape[0]
        self._init_observation(keep, keep_images,
                               {"colour": spaces.Box(0, 255, (c, 3), np.float32)})

    def features(self, obs: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        colour = obs["images"].reshape(obs["images"].shape[0], -1, 3).mean(axis=1)
        return {"colour": colour.astype(np.float32)}, {"colour_max": float(colour.max())}


def test_keys_spaces_and_info() -> None:
    env = _MeanColour(_Cameras())
    assert env.camera_shape == (2, 4, 5) and env.kept_keys == ("gripper_pos",)
    assert set(env.observation_space.spaces) == {"gripper_pos", "colour"}
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info["truth"] == 1 and "colour_max" in info
    obs, reward, _, _, info = env.step(env.action_space.sample())
    assert obs in env.observation_space and reward == 0.5 and info["truth"] == 2
    raw = env.env.observation_space.sample()
    np.testing.assert_allclose(env.observation(raw)["colour"],
                               raw["images"].reshape(2, -1, 3).mean(axis=1), rtol=1e-6)
    with_images = _MeanColour(_Cameras(calibration=False), keep=[], keep_images=True)
    assert set(with_images.observation_space.spaces) == {"images", "colour"}


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"has no observation key\(s\) \['nope'\]"):
        _MeanColour(_Cameras(), keep=["nope"])
    inner = _Cameras()
    inner.observation_space = spaces.Dict({**inner.observation_space.spaces,
                                           "colour": spaces.Box(0, 1, (1,))})
    with pytest.raises(ValueError, match=r"already observes \['colour'\]; _MeanColour"):
        _MeanColour(inner)
    with pytest.raises(ValueError, match=r"_MeanColour needs a Dict.*MultiViewCameras"):
        _MeanColour(gym.make("Pendulum-v1"))


def test_check_camera_space() -> None:
    space = _Cameras().observation_space
    assert check_camera_space(space, "toy") == (2, 4, 5)
    bare = _Cameras(calibration=False).observation_space
    assert check_camera_space(bare, "toy", calibration=False) == (2, 4, 5)
    with pytest.raises(ValueError, match=r"toy lacks \['intrinsics', 'extrinsics'\]"):
        check_camera_space(bare, "toy")
    wrong = spaces.Dict({**space.spaces,
                         "extrinsics": spaces.Box(-1, 1, (3, 4, 4), np.float32)})
    with pytest.raises(ValueError, match=r"'extrinsics' of toy must be a Box of shape"):
        check_camera_space(wrong, "toy")
