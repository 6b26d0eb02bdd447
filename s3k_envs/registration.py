"""Gymnasium registration of every S3K env (idempotent)."""

from __future__ import annotations

import gymnasium as gym

#: env id -> (entry point, max episode steps at 4 Hz)
ENV_SPECS: dict[str, tuple[str, int]] = {
    "S3K-Box-v0": ("s3k_envs.envs.box:BoxEnv", 50),
    "S3K-BoxDistractors-v0": ("s3k_envs.envs.distractors:BoxDistractorsEnv", 50),
    "S3K-CableInsert-v0": ("s3k_envs.envs.cable:CableInsertEnv", 40),
    "S3K-Shoes-v0": ("s3k_envs.envs.shoes:ShoesEnv", 50),
}


def register_envs() -> None:
    """Register all S3K envs with Gymnasium; called on ``import s3k_envs`` and by the
    ``gymnasium.envs`` entry point, so ``gymnasium.make("S3K-Box-v0")`` works either way."""
    for env_id, (entry_point, max_steps) in ENV_SPECS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry_point,
            max_episode_steps=max_steps,
            disable_env_checker=False,
        )
