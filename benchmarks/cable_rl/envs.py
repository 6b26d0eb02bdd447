"""The arms' envs: the cable env with the true keypoints (``gt``), S3K keypoints (``kp``) or
the beta-VAE latent (``vae``) as observation, and the keypoint reward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import s3k_envs  # noqa: F401  (registers the S3K envs)
from agents.beta_vae.model import BetaVAE
from agents.beta_vae.observation import VAEObservation
from benchmarks.cable_rl.config import (
    ARMS,
    ENV_ID,
    GRIPPER_KEYS,
    GT_IMAGE_SIZE,
    IMAGE_SIZE,
)
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.wrappers.keypoints import KeypointObservation, keypoint_bounds_for
from s3k_envs.wrappers.rewards import KeypointReward, cable_insert_reward


# ---------------------------------------------------------------------------- envs
class TrueKeypointObservation(gym.Wrapper):
    """Privileged observation for the ``gt`` arm: the env's kept entries plus the
    ground-truth keypoints of ``info["keypoints"]``.

    Observation: the ``keep`` entries unchanged and ``keypoints`` ``(K, 3)`` float32, m,
    world frame (clipped into :func:`~s3k_envs.wrappers.keypoints.keypoint_bounds_for`, like
    :class:`~s3k_envs.wrappers.keypoints.KeypointObservation`'s predictions).

    Args:
        env: an S3K env (its info carries ``keypoints``).
        keep: observation keys to keep.
    """

    def __init__(self, env: gym.Env, keep: Sequence[str]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or any(k not in space.spaces for k in keep):
            raise ValueError(f"TrueKeypointObservation: keep {list(keep)} must name entries of "
                             f"a Dict observation space, got {space}")
        names = list(env.unwrapped.keypoint_names)
        low, high = keypoint_bounds_for(env)
        self._low = np.tile(low.astype(np.float32), (len(names), 1))
        self._high = np.tile(high.astype(np.float32), (len(names), 1))
        self.keep = tuple(keep)
        self.observation_space = spaces.Dict({
            **{k: space[k] for k in self.keep},
            "keypoints": spaces.Box(self._low, self._high, (len(names), 3), np.float32)})

    def observation_from(self, obs: Mapping[str, np.ndarray],
                         info: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The observation of one step's ``(obs, info)`` of the wrapped env."""
        out = {k: obs[k] for k in self.keep}
        kp = np.asarray(info["keypoints"], dtype=np.float32)
        out["keypoints"] = np.clip(kp, self._low, self._high).astype(np.float32)
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset and observe the true keypoints."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observation_from(obs, info), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], Any, bool, bool, dict[str, Any]]:
        """Step and observe the true keypoints."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observation_from(obs, info), reward, terminated, truncated, info


@dataclass
class ArmEnv:
    """One arm's env (``Dict`` observations) and the wrappers it is made of.

    Attributes:
        env: the outermost wrapper (``Dict`` observation; flatten it for DDPGfD).
        reward: the arm's :class:`KeypointReward` (reward, success and termination rule).
        keypoints: the ``KeypointObservation`` (``kp``, ``vae``) or
            :class:`TrueKeypointObservation` (``gt``).
        vae: the ``VAEObservation`` (``vae`` arm only).
    """

    env: gym.Env
    reward: KeypointReward
    keypoints: KeypointObservation | TrueKeypointObservation
    vae: VAEObservation | None = None

    def observation_fn(self, collected: list[np.ndarray]
                       ) -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]],
                                     dict[str, np.ndarray]]:
        """``(obs, info) -> observation`` of a recorded step through this arm's stack; it
        appends the ``(K, 3)`` keypoints the arm's reward reads (raw predictions, or the true
        keypoints) to ``collected``."""

        def fn(obs: dict[str, np.ndarray], info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if isinstance(self.keypoints, TrueKeypointObservation):
                collected.append(np.asarray(info["keypoints"], dtype=np.float64))
                return self.keypoints.observation_from(obs, info)
            out = self.keypoints.observation(obs)
            pred = self.keypoints.last_prediction
            assert pred is not None
            collected.append(np.asarray(pred.points_3d, dtype=np.float64))
            return out if self.vae is None else self.vae.observation(out)

        return fn


def make_arm_env(arm: str, camera_seed: int, predictor: KeypointPredictor | None,
                 vae: BetaVAE | None, env_id: str = ENV_ID) -> ArmEnv:
    """The env of one arm (see the module docstring), ``Dict`` observations.

    Args:
        arm: ``"kp"``, ``"vae"`` or ``"gt"``.
        camera_seed: the fixed rig's seed.
        predictor: the S3K model (``kp`` and ``vae`` arms).
        vae: the beta-VAE (``vae`` arm).
        env_id: the cable task (``S3K-CableInsert-v0`` or ``S3K-CableInsertShort-v0``).
    """
    if arm not in ARMS:
        raise ValueError(f"arm: expected one of {ARMS}, got {arm!r}")
    size = GT_IMAGE_SIZE if arm == "gt" else IMAGE_SIZE
    base = gym.make(env_id, image_size=size, camera_seed=camera_seed,
                    terminate_on_success=False, disable_env_checker=True)
    try:
        if arm == "gt":
            kp_gt = TrueKeypointObservation(base, GRIPPER_KEYS)
            reward = cable_insert_reward(kp_gt, terminate_on_success=True)
            return ArmEnv(reward, reward, kp_gt)
        if predictor is None:
            raise ValueError(f"arm {arm!r} needs the keypoint predictor")
        kp = KeypointObservation(base, predictor, keep=GRIPPER_KEYS, confidence=False,
                                 keep_images=arm == "vae")
        reward = cable_insert_reward(kp, terminate_on_success=True)
        if reward.keypoint_source != "predicted":
            raise RuntimeError("the keypoint reward does not read the predicted keypoints")
        if arm == "kp":
            return ArmEnv(reward, reward, kp)
        if vae is None:
            raise ValueError("arm 'vae' needs the beta-VAE")
        vae_obs = VAEObservation(reward, vae, keep=GRIPPER_KEYS)
        return ArmEnv(vae_obs, reward, kp, vae_obs)
    except BaseException:
        base.close()
        raise
