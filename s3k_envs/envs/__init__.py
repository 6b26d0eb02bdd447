"""The S3K environments (registered with Gymnasium on ``import s3k_envs``)."""

from s3k_envs.envs.base import MultiViewEnv
from s3k_envs.envs.box import BoxEnv
from s3k_envs.envs.cable import CableInsertEnv, insertion_error, insertion_success
from s3k_envs.envs.distractors import BoxDistractorsEnv
from s3k_envs.envs.shoes import ShoesEnv

__all__ = [
    "BoxDistractorsEnv",
    "BoxEnv",
    "CableInsertEnv",
    "MultiViewEnv",
    "ShoesEnv",
    "insertion_error",
    "insertion_success",
]
