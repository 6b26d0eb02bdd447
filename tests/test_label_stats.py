"""Keypoints without labels do not train silently: ``s3k generate`` reports labels per
keypoint and warns, ``s3k train`` refuses a keypoint with no labelled view unless told,
``s3k evaluate`` keeps such keypoints out of the overall numbers and says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s3k_envs.keypoints.data import label_report
from s3k_envs.keypoints.dataset import load_arrays, read_manifest
from s3k_envs.keypoints.evaluate import keypoint_metrics
from s3k_envs.keypoints.train import TrainConfig, train


@pytest.fixture
def box_data(tiny_box_data: Path) -> Path:
    return tiny_box_data


def test_generate_reports_labels_per_keypoint(box_data: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    manifest = read_manifest(box_data)
    per_kp = manifest["label_stats"]["per_keypoint"]
    arrays = load_arrays(box_data)
    counts = np.asarray(arrays["label_mask"]).sum(axis=(0, 1))
    assert [per_kp[n]["labelled_views"] for n in manifest["keypoint_names"]] == counts.tolist()
    lines = label_report(manifest)
    assert lines[0].startswith("labels per keypoint (4 labelled samples x 4 cameras = 16")
    assert all(any(line.startswith(f"  {n}:") for line in lines)
               for n in manifest["keypoint_names"])


def test_report_warns_about_a_keypoint_nobody_sees() -> None:
    manifest = {"num_labelled": 50, "num_cameras": 4, "label_stats": {"per_keypoint": {
        "fingertip": {"labelled_views": 150, "samples_with_2plus_cameras": 48},
        "elbow": {"labelled_views": 0, "samples_with_2plus_cameras": 0},
        "base": {"labelled_views": 6, "samples_with_2plus_cameras": 1}}}}
    lines = label_report(manifest)
    warning = [line for line in lines if line.startswith("warning")]
    assert len(warning) == 1
    assert "elbow (0 views)" in warning[0] and "base (6 views)" in warning[0]
    assert "fingertip" not in warning[0] and "com:NAME" in warning[0]
    assert label_report({"num_labelled": 0, "num_cameras": 4}) == []


def test_train_refuses_a_keypoint_without_labels(box_data: Path, tmp_path: Path) -> None:
    arrays = dict(load_arrays(box_data))
    mask = np.array(arrays["label_mask"])
    mask[..., 1] = False  # nobody ever labelled corner_1
    arrays["label_mask"] = mask
    names = read_manifest(box_data)["keypoint_names"]
    cfg = TrainConfig(steps=2, threads=1, checkpoint_every=1000, log_every=1)
    with pytest.raises(ValueError, match=r"\['corner_1'\].*--allow-unlabelled-keypoints"):
        train(cfg, arrays, tmp_path / "refused", keypoint_names=names, progress_bar=False)
    cfg = TrainConfig(steps=2, threads=1, checkpoint_every=1000, log_every=1,
                      allow_unlabelled_keypoints=True)
    train(cfg, arrays, tmp_path / "allowed", keypoint_names=names, progress_bar=False)
    import torch

    payload = torch.load(tmp_path / "allowed" / "model.pt", weights_only=True)
    assert payload["config"]["unlabelled_keypoints"] == ["corner_1"]


def test_evaluate_keeps_untrained_keypoints_out_of_overall_numbers() -> None:
    # 2 samples, 1 camera, 2 keypoints: keypoint "bad" is 1 m off, "good" 1 mm / 1 px off
    truth3 = np.zeros((2, 2, 3))
    pred3 = truth3.copy()
    pred3[:, 0, 0] = 0.001
    pred3[:, 1, 0] = 1.0
    truth2 = np.zeros((2, 1, 2, 2))
    pred2 = truth2.copy()
    pred2[..., 0, 0] = 1.0
    mask = np.array([[[True, False]], [[True, False]]])
    data = {"label_mask": mask, "keypoints_2d": truth2, "keypoints_3d": truth3}
    pred = {"keypoints_2d": pred2, "points_3d": pred3}
    every = keypoint_metrics(pred, data, ["good", "bad"])
    assert every["mm"]["median"] == pytest.approx(500.5) and every["rms_px"] == pytest.approx(1)
    assert every["no_labelled_views"] == ["bad"] and every["excluded_from_overall"] == []
    trained = keypoint_metrics(pred, data, ["good", "bad"], exclude_from_overall=["bad"])
    assert trained["mm"]["median"] == pytest.approx(1.0)
    assert trained["excluded_from_overall"] == ["bad"]
    assert np.isnan(trained["per_keypoint"]["bad"]["rms_px"])
    with pytest.raises(ValueError, match="not keypoints"):
        keypoint_metrics(pred, data, ["good", "bad"], exclude_from_overall=["elbow"])
    json.dumps(trained)  # the metrics stay JSON-serialisable
