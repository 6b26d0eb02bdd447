"""The S3K environments (registered with Gymnasium on ``import s3k_envs``)."""

from s3k_envs.envs.base import MultiViewEnv
from s3k_envs.envs.box import BoxEnv
from s3k_envs.envs.distractors import BoxDistractorsEnv

__all__ = ["BoxDistractorsEnv", "BoxEnv", "MultiViewEnv"]
