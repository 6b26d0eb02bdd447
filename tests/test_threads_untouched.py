"""No library call changes torch's process-wide thread count behind the caller's back: the
keypoint wrappers (built, reset, stepped, with and without ``torch_threads``), keypoint
training, dynamics training and RLPD updates leave ``torch.get_num_threads()`` as they found
it; and a source check that ``set_num_threads`` appears in the library only in command-line
entry points and in the helpers that restore it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import s3k_envs  # noqa: F401  (registers the envs)
from agents.dynamics import TrainConfig as DynTrainConfig
from agents.dynamics import train_dynamics
from agents.mpc import MPPIConfig, MPPIPlanner
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.wrappers.keypoints import KeypointObservation
from tests.test_agent_device import small_agent, small_dynamics, toy_episodes, train_rlpd

ROOT = Path(__file__).resolve().parents[1]
#: A thread count nobody sets by accident (the tests set it first and check it survives).
MARK = 3


@pytest.fixture
def marked_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    torch.set_num_threads(MARK)
    yield MARK
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def box_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_keypoint_wrappers import NAMES, SIZE, write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "box.pt", NAMES["S3K-Box-v0"],
                            size=SIZE)


class _CountingPredictor:
    """Wraps a KeypointPredictor and records the torch thread count inside each predict."""

    def __init__(self, inner: KeypointPredictor) -> None:
        self.inner = inner
        self.seen: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(torch.get_num_threads())
        return self.inner.predict(*args, **kwargs)


@pytest.mark.parametrize("threads", [None, 1])
def test_keypoint_wrapper_leaves_the_thread_count_alone(box_checkpoint: Path,
                                                        marked_threads: int,
                                                        threads: int | None) -> None:
    from tests.test_keypoint_wrappers import SIZE

    predictor = _CountingPredictor(KeypointPredictor.load(box_checkpoint))
    env = KeypointObservation(gym.make("S3K-Box-v0", image_size=SIZE), predictor,
                              torch_threads=threads)
    try:
        assert torch.get_num_threads() == marked_threads  # building it
        env.reset(seed=0)
        assert torch.get_num_threads() == marked_threads
        for _ in range(2):
            env.step(env.action_space.sample())
            assert torch.get_num_threads() == marked_threads
    finally:
        env.close()
    # inside the predictions: the wrapper's count when given, else the caller's
    assert predictor.seen == [marked_threads if threads is None else threads] * 3
    base = gym.make("S3K-Box-v0", image_size=SIZE)
    with pytest.raises(ValueError, match="torch_threads: expected an int >= 1"):
        KeypointObservation(base, box_checkpoint, torch_threads=0)
    base.close()


def test_keypoint_training_leaves_the_thread_count_alone(tiny_box_data: Path, tmp_path: Path,
                                                         marked_threads: int) -> None:
    from s3k_envs.keypoints.dataset import load_arrays
    from s3k_envs.keypoints.train import TrainConfig, train

    arrays = load_arrays(tiny_box_data)
    train(TrainConfig(steps=1, threads=1, device="cpu"), arrays, tmp_path / "a",
          progress_bar=False)
    assert torch.get_num_threads() == marked_threads
    train(TrainConfig(steps=1, device="cpu"), arrays, tmp_path / "b", progress_bar=False)
    assert torch.get_num_threads() == marked_threads


def test_agents_leave_the_thread_count_alone(marked_threads: int) -> None:
    agent = small_agent("cpu")
    train_rlpd(agent, 2)
    agent.act(np.zeros(3, np.float32))
    model = small_dynamics()
    train_dynamics(model, toy_episodes(), DynTrainConfig(steps=2, batch_size=8,
                                                         rollout_steps=2))
    MPPIPlanner(model, [-1, -1], [1, 1], MPPIConfig(horizon=2, samples=4)).act(
        np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    assert torch.get_num_threads() == marked_threads


#: Functions that may call ``set_num_threads``: command-line entry points (they own the
#: process) and the two helpers that set it on request (``torch_threads`` restores it).
ALLOWED = {
    ("s3k_envs/device.py", "torch_threads"),
    ("s3k_envs/wrappers/features.py", "set_torch_threads"),
    ("s3k_envs/keypoints/evaluate.py", "main"),
    ("s3k_envs/demo.py", "pipeline"),
    ("s3k_envs/descriptors/cli.py", "_threads"),
    ("agents/beta_vae/cli.py", "main"),
}
#: Known library callers of the process-wide ``set_torch_threads`` still to be converted to
#: ``self.torch_threads = torch_threads`` (FeatureObservation restores it per call).
KNOWN_SET_TORCH_THREADS: set[tuple[str, str]] = set()


def _thread_setters(path: Path) -> list[tuple[str, int]]:
    """``("callee:enclosing function", line)`` of every ``set_num_threads(...)`` or
    ``set_torch_threads(...)`` call in a file."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = func
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.Call):
                callee = child.func
                called = (callee.attr if isinstance(callee, ast.Attribute)
                          else callee.id if isinstance(callee, ast.Name) else "")
                if called in ("set_num_threads", "set_torch_threads"):
                    found.append((f"{called}:{func}", child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_library_sets_threads_only_in_entry_points_and_restoring_helpers() -> None:
    offenders = []
    for package in ("s3k_envs", "agents"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for where, line in _thread_setters(path):
                callee, func = where.split(":")
                allowed = (ALLOWED if callee == "set_num_threads"
                           else KNOWN_SET_TORCH_THREADS)
                if (rel, func) not in allowed:
                    offenders.append(f"{rel}:{line}: {callee}() in {func}()")
    assert not offenders, ("library code sets torch's process-wide thread count (use "
                           f"s3k_envs.device.torch_threads around the work): {offenders}")
