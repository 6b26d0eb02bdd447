"""Device choice (auto -> CUDA, MPS, CPU), thread counts that do not leak out of library
calls, and training that honours the device; a GPU test runs where CUDA exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s3k_envs import cli
from s3k_envs.device import resolve_device, torch_threads
from s3k_envs.keypoints.predictor import KeypointPredictor


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import s3k_envs.device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None)
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_explicit_devices_and_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import s3k_envs.device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="0 CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_device("cpu:1")


def test_torch_threads_is_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=">= 1"), torch_threads(0):
        pass


@pytest.fixture
def tiny_data(tiny_box_data: Path) -> Path:
    return tiny_box_data


def _train(data: Path, run: Path, device: str) -> None:
    cli.main(["train", "--labelled", str(data), "--out", str(run), "--steps", "3",
              "--threads", "1", "--device", device, "--no-progress"])


def test_training_leaves_the_thread_count_alone(tiny_data: Path, tmp_path: Path) -> None:
    from s3k_envs.keypoints.dataset import load_arrays
    from s3k_envs.keypoints.train import TrainConfig, train

    torch.set_num_threads(2)
    train(TrainConfig(steps=2, threads=1, device="cpu"), load_arrays(tiny_data),
          tmp_path / "run", progress_bar=False)
    assert torch.get_num_threads() == 2


def test_train_on_cpu_and_load_anywhere(tiny_data: Path, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", "cpu")
    predictor = KeypointPredictor.load(tmp_path / "run" / "model.pt", device="auto")
    assert predictor.device == resolve_device("auto")
    with pytest.raises(SystemExit):  # a device this machine does not have: one-line error
        raise SystemExit(cli.console_main(["train", "--labelled", str(tiny_data), "--out",
                                           str(tmp_path / "bad"), "--device", "tpu"]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_on_cuda_then_load_on_cpu(tiny_data: Path, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", "cuda")
    payload = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    predictor = KeypointPredictor.load(tmp_path / "run" / "model.pt", device="cpu")
    assert predictor.device.type == "cpu"
    # resume the same run on the CPU
    cli.main(["train", "--labelled", str(tiny_data), "--out", str(tmp_path / "run"),
              "--steps", "5", "--threads", "1", "--device", "cpu", "--no-progress"])
