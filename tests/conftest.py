"""Shared fixtures for the env tests: headless GL and an env factory that cleans up."""

from __future__ import annotations

import os

# Must happen before mujoco creates any GL context (import s3k_envs would also set it).
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Callable, Iterator

import gymnasium as gym
import pytest

import s3k_envs  # noqa: F401  (registers the S3K-* ids)


@pytest.fixture
def make_env() -> Iterator[Callable[..., gym.Env]]:
    """``make_env(env_id, **options)`` -> a ``gym.make`` env (32 px unless told), closed
    after the test."""
    envs: list[gym.Env] = []

    def factory(env_id: str = "S3K-Box-v0", **options) -> gym.Env:
        options.setdefault("image_size", 32)
        env = gym.make(env_id, **options)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


@pytest.fixture(scope="session")
def tiny_box_data(tmp_path_factory: pytest.TempPathFactory):
    """A 4-sample, fully labelled S3K-Box-v0 dataset at 32 px (``s3k generate``), shared by
    the tests that only need some real data to train or read."""
    from s3k_envs import cli

    out = tmp_path_factory.mktemp("tiny_box") / "data"
    cli.main(["generate", "S3K-Box-v0", "--samples", "4", "--labelled", "all",
              "--image-size", "32", "--out", str(out), "--no-progress"])
    return out
