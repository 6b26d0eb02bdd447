"""FeatureObservation: the base of the wrappers that replace a multi-view env's images (and
calibration) by features computed from them, e.g. 3D keypoints
(:class:`~s3k_envs.wrappers.keypoints.KeypointObservation`) or a beta-VAE latent
(``agents.beta_vae.observation.VAEObservation``).

The base checks the wrapped env's observation space (a ``Dict`` with ``images (C, H, W, 3)``
uint8, and ``intrinsics``/``extrinsics`` when the features need them), chooses the
observation keys passed through (proprioception such as ``gripper_pos``), builds the new
``Dict`` observation space, and runs the subclass's :meth:`FeatureObservation.features` on
every ``reset`` and ``step`` (inside the env, so vector envs' final observations are
converted too). A subclass sets :attr:`FeatureObservation.FEATURE_KEYS`, loads its model, and
implements :meth:`FeatureObservation.features`.

Threads: a wrapper never changes torch's process-wide thread count; with
:attr:`FeatureObservation.torch_threads` set (the ``torch_threads`` argument of the
wrappers) each :meth:`FeatureObservation.features` call runs with that many threads and the
caller's count is restored afterwards (:func:`s3k_envs.device.torch_threads`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from s3k_envs.device import torch_threads as _torch_threads
from s3k_envs.wrappers.multiview import CAMERA_KEYS

_HINT = ("To give a MuJoCo env a calibrated camera rig, wrap it first: "
         "env = s3k_envs.wrappers.MultiViewCameras(env).")


def env_name(env: gym.Env) -> str:
    """The env's registered id (``"S3K-Box-v0"``), else its class name; for messages."""
    spec = getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _describe_space(space: gym.Space) -> str:
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(
            f"{k}: {getattr(s, 'shape', None)} {getattr(s, 'dtype', '')}"
            for k, s in space.spaces.items()) + ")"
    return repr(space)


def check_camera_space(space: gym.Space, who: str, wrapper: str = "KeypointObservation",
                       calibration: bool = True) -> tuple[int, int, int]:
    """Check that an observation space carries multi-view images (and their calibration).

    Args:
        space: the observation space of the env to wrap.
        who: env name for the messages.
        wrapper: name of the wrapper that needs them, for the messages.
        calibration: also require ``intrinsics (C, 3, 3)`` and ``extrinsics (C, 4, 4)``.

    Returns:
        ``(C, H, W)``: cameras and image size in pixels.

    Raises:
        ValueError: the space is not a ``Dict`` with ``images (C, H, W, 3)`` uint8 (and, with
            ``calibration``, ``intrinsics (C, 3, 3)`` and ``extrinsics (C, 4, 4)``); the
            message says what is missing or wrong and points to
            :class:`s3k_envs.wrappers.MultiViewCameras`.
    """
    required = CAMERA_KEYS if calibration else ("images",)
    expected = ("a Dict observation with 'images' (C, H, W, 3) uint8"
                + (", 'intrinsics' (C, 3, 3) and 'extrinsics' (C, 4, 4)" if calibration else ""))
    if not isinstance(space, spaces.Dict):
        raise ValueError(f"{wrapper} needs {expected}; {who} has observation space "
                         f"{_describe_space(space)}. {_HINT}")
    missing = [k for k in required if k not in space.spaces]
    if missing:
        raise ValueError(f"{wrapper} needs {expected}; {who} lacks {missing} (its observation "
                         f"space is {_describe_space(space)}). {_HINT}")
    images = space["images"]
    shape = getattr(images, "shape", None)
    if (not isinstance(images, spaces.Box) or shape is None or len(shape) != 4
            or shape[-1] != 3 or images.dtype != np.uint8):
        raise ValueError(f"{wrapper}: 'images' of {who} must be a Box of shape (C, H, W, 3) "
                         f"uint8, got {images!r}. {_HINT}")
    c, h, w = (int(v) for v in shape[:3])
    if calibration:
        for name, tail in (("intrinsics", (3, 3)), ("extrinsics", (4, 4))):
            sub = space[name]
            if not isinstance(sub, spaces.Box) or tuple(sub.shape) != (c, *tail):
                raise ValueError(f"{wrapper}: '{name}' of {who} must be a Box of shape "
                                 f"{(c, *tail)} (one per camera), got {sub!r}. {_HINT}")
    return c, h, w


def set_torch_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` (process-wide) unless ``threads`` is None: for a
    process's own set-up (a script, a vector-env worker function), not for library code —
    the wrappers take ``torch_threads`` instead (:attr:`FeatureObservation.torch_threads`,
    restored after every call)."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


class FeatureObservation(gym.Wrapper, abc.ABC):
    """Base wrapper: replace the images and calibration of a multi-view env by features.

    A subclass calls ``FeatureObservation.__init__(self, env)`` (which checks the env's
    observation space and sets :attr:`env_name` and :attr:`camera_shape`), checks its model
    against ``camera_shape``, then calls :meth:`_init_observation` with the spaces of its
    features; it implements :meth:`features`.

    Observation (``spaces.Dict``): the kept keys of the env's observation unchanged, then the
    features. Info: the env's own, plus what :meth:`features` returns for it.
    """

    #: Observation keys the subclass adds (the env must not observe them under ``keep``).
    FEATURE_KEYS: ClassVar[tuple[str, ...]] = ()
    #: Whether the features need ``intrinsics`` and ``extrinsics`` besides ``images``.
    NEEDS_CALIBRATION: ClassVar[bool] = True
    #: Torch threads for every :meth:`features` call (restored afterwards); None: the
    #: caller's setting.
    torch_threads: int | None = None

    def __init__(self, env: gym.Env) -> None:
        gym.Wrapper.__init__(self, env)
        #: Name of the wrapped env, for messages.
        self.env_name: str = env_name(env)
        #: ``(C, H, W)``: cameras and image size (px) of the wrapped env.
        self.camera_shape: tuple[int, int, int] = check_camera_space(
            env.observation_space, self.env_name, type(self).__name__, self.NEEDS_CALIBRATION)
        #: The env's observation keys passed through, in order.
        self.kept_keys: tuple[str, ...] = ()

    def _init_observation(self, keep: Sequence[str] | None, keep_images: bool,
                          features: Mapping[str, spaces.Space]) -> None:
        """Choose the kept keys and set ``observation_space``.

        Args:
            keep: the env's observation keys to keep; None: every key except ``images``,
                ``intrinsics`` and ``extrinsics``.
            keep_images: also keep ``images``.
            features: the spaces of the feature keys, in observation order.

        Raises:
            ValueError: ``keep`` names keys the env does not observe, or a kept key is a
                feature key (it would be overwritten).
        """
        space = self.env.observation_space
        who = self.env_name
        if keep is None:
            kept = [k for k in space.spaces if k not in CAMERA_KEYS]
        else:
            kept = list(dict.fromkeys(keep))
            unknown = [k for k in kept if k not in space.spaces]
            if unknown:
                raise ValueError(f"keep: {who} has no observation key(s) {unknown}; its keys are "
                                 f"{list(space.spaces)}")
        if keep_images and "images" not in kept:
            kept.append("images")
        taken = [k for k in kept if k in self.FEATURE_KEYS]
        if taken:
            raise ValueError(f"{who} already observes {taken}; {type(self).__name__} would "
                             "overwrite them (leave them out of keep)")
        self.kept_keys = tuple(kept)
        obs_spaces: dict[str, spaces.Space] = {key: space[key] for key in self.kept_keys}
        obs_spaces.update(features)
        self.observation_space = spaces.Dict(obs_spaces)

    @abc.abstractmethod
    def features(self, obs: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The features of one observation of the wrapped env (``images (C, H, W, 3)`` uint8,
        ...): ``(observation entries, info entries)``. Implemented by subclasses."""

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the env and observe the features of its first frame."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._convert(obs, info)

    def step(self, action: Any
             ) -> tuple[dict[str, np.ndarray], Any, bool, bool, dict[str, Any]]:
        """Step the env and observe the features of the new frame."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._convert(obs, info)
        return obs, reward, terminated, truncated, info

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feature observation of one multi-view observation of the wrapped env."""
        return self._convert(obs, {})[0]

    def _convert(self, obs: dict[str, np.ndarray], info: dict[str, Any]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        with _torch_threads(self.torch_threads):
            feats, extra = self.features(obs)
        out = {key: obs[key] for key in self.kept_keys}
        out.update(feats)
        info = dict(info)
        info.update(extra)
        return out, info
