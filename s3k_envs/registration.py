"""Gymnasium registration of every S3K env (idempotent), and the factory behind each id.

Each id's entry point is an :class:`EnvFactory` in this module (e.g.
``"s3k_envs.registration:make_cable_insert"``), so that ``gymnasium.make`` accepts two options
on top of the env's own:

* ``obs_mode``: ``"images"`` (default: the multi-view env itself) or ``"keypoints"``: the env
  wrapped in :class:`~s3k_envs.wrappers.keypoints.KeypointObservation` with the shipped S3K
  checkpoint of that env (:func:`s3k_envs.checkpoints.default_checkpoint`);
* ``keypoint_checkpoint``: path of another checkpoint (``obs_mode="keypoints"`` only).

>>> env = gymnasium.make("S3K-CableInsert-v0", obs_mode="keypoints")
>>> obs, info = env.reset(seed=0)   # obs["keypoints"] (3, 3) m, obs["keypoint_confidence"] (3,)

This module imports nothing but Gymnasium (it runs when Gymnasium is imported, see
``_autoregister.py``); the env classes, MuJoCo and torch load on the first ``make``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import gymnasium as gym

#: env id -> (env class entry point, max episode steps at 4 Hz)
ENV_SPECS: dict[str, tuple[str, int]] = {
    "S3K-Box-v0": ("s3k_envs.envs.box:BoxEnv", 50),
    "S3K-BoxDistractors-v0": ("s3k_envs.envs.distractors:BoxDistractorsEnv", 50),
    "S3K-CableInsert-v0": ("s3k_envs.envs.cable:CableInsertEnv", 40),
    "S3K-CableInsertShort-v0": ("s3k_envs.envs.cable:CableInsertShortEnv", 40),
    "S3K-Shoes-v0": ("s3k_envs.envs.shoes:ShoesEnv", 50),
    "S3K-BoxPush-v0": ("s3k_envs.envs.box_push:BoxPushEnv", 60),
    "S3K-ShoePush-v0": ("s3k_envs.envs.shoe_push:ShoePushEnv", 80),
}

#: Values of the ``obs_mode`` option.
OBS_MODES = ("images", "keypoints")


def env_class(env_id: str) -> type[gym.Env]:
    """The env class registered for an S3K id (imports MuJoCo)."""
    try:
        module, name = ENV_SPECS[env_id][0].split(":")
    except KeyError:
        raise ValueError(f"unknown S3K env id {env_id!r}; known: {sorted(ENV_SPECS)}") from None
    return getattr(importlib.import_module(module), name)


class EnvFactory:
    """The ``gymnasium.make`` entry point of one S3K id: the env, or the env wrapped in
    :class:`~s3k_envs.wrappers.keypoints.KeypointObservation` (``obs_mode="keypoints"``).

    Args:
        env_id: the id it makes, a key of :data:`ENV_SPECS`.
    """

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id

    @property
    def metadata(self) -> dict[str, Any]:
        """The env class's metadata (render modes), read by ``gymnasium.make``."""
        return env_class(self.env_id).metadata

    def __call__(self, obs_mode: str = "images", keypoint_checkpoint: str | os.PathLike[str]
                 | None = None, **options: Any) -> gym.Env:
        """Make the env.

        Args:
            obs_mode: ``"images"`` (C calibrated images + proprioception) or ``"keypoints"``
                (predicted 3D keypoints ``(K, 3)`` m + confidences ``(K,)`` + proprioception;
                ground truth stays in ``info``).
            keypoint_checkpoint: checkpoint for ``obs_mode="keypoints"``; default the shipped
                one (:func:`s3k_envs.checkpoints.default_checkpoint`).
            **options: the env's options (``image_size``, ``num_cameras``, ...).

        Raises:
            ValueError: unknown ``obs_mode`` or env option (the message lists the valid
                ones), or ``keypoint_checkpoint`` without ``obs_mode="keypoints"``.
            FileNotFoundError: ``obs_mode="keypoints"`` and no checkpoint for this env.
        """
        if obs_mode not in OBS_MODES:
            raise ValueError(f"{self.env_id}: obs_mode must be one of {list(OBS_MODES)}, got "
                             f"{obs_mode!r}")
        if keypoint_checkpoint is not None and obs_mode != "keypoints":
            raise ValueError(f"{self.env_id}: keypoint_checkpoint={keypoint_checkpoint!r} is only "
                             f"used with obs_mode='keypoints' (got obs_mode={obs_mode!r})")
        cls = env_class(self.env_id)
        defaults = cls.default_options()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(
                f"{self.env_id}: unknown option(s) {unknown}; valid options are "
                f"{sorted(defaults)}, plus obs_mode {list(OBS_MODES)} and keypoint_checkpoint")
        checkpoint = None
        if obs_mode == "keypoints":  # resolve before building the scene: fail fast
            from s3k_envs.checkpoints import default_checkpoint

            checkpoint = (default_checkpoint(self.env_id) if keypoint_checkpoint is None
                          else keypoint_checkpoint)
        env = cls(**options)
        if checkpoint is None:
            return env
        from s3k_envs.wrappers.keypoints import KeypointObservation

        try:
            return KeypointObservation(env, os.fspath(checkpoint))
        except BaseException:
            env.close()
            raise

    def __repr__(self) -> str:
        return f"EnvFactory({self.env_id!r})"


#: Module attribute of each id's factory (the entry point is ``s3k_envs.registration:<name>``).
FACTORY_NAMES: dict[str, str] = {
    "S3K-Box-v0": "make_box",
    "S3K-BoxDistractors-v0": "make_box_distractors",
    "S3K-CableInsert-v0": "make_cable_insert",
    "S3K-CableInsertShort-v0": "make_cable_insert_short",
    "S3K-Shoes-v0": "make_shoes",
    "S3K-BoxPush-v0": "make_box_push",
    "S3K-ShoePush-v0": "make_shoe_push",
}

make_box = EnvFactory("S3K-Box-v0")
make_box_distractors = EnvFactory("S3K-BoxDistractors-v0")
make_cable_insert = EnvFactory("S3K-CableInsert-v0")
make_cable_insert_short = EnvFactory("S3K-CableInsertShort-v0")
make_shoes = EnvFactory("S3K-Shoes-v0")
make_box_push = EnvFactory("S3K-BoxPush-v0")
make_shoe_push = EnvFactory("S3K-ShoePush-v0")


def register_envs() -> None:
    """Register all S3K envs with Gymnasium; called on ``import s3k_envs`` and by the
    ``gymnasium.envs`` entry point, so ``gymnasium.make("S3K-Box-v0")`` works either way."""
    for env_id, (_, max_steps) in ENV_SPECS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=f"{__name__}:{FACTORY_NAMES[env_id]}",
            max_episode_steps=max_steps,
            disable_env_checker=False,
        )
