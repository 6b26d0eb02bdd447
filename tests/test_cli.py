"""The `s3k` command and the main job (demo) run end to end on small settings."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from s3k_envs import cli


def test_envs_lists_every_env(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["envs"])
    out = capsys.readouterr().out
    for env_id in ("S3K-Box-v0", "S3K-BoxDistractors-v0", "S3K-CableInsert-v0", "S3K-Shoes-v0"):
        assert env_id in out
    assert "image_size = 128" in out


def test_snapshot_writes_mosaic(tmp_path: Path) -> None:
    out = tmp_path / "snap.png"
    cli.main(["snapshot", "S3K-Box-v0", "--image-size", "32", "--out", str(out)])
    image = imageio.imread(out)
    side = 2 * 32 + 2  # 2x2 views, then a legend strip below
    assert image.shape[1:] == (side, 3) and image.shape[0] > side and image[:side].std() > 5


def test_legend_names_every_keypoint_colour() -> None:
    from s3k_envs.viz import KEYPOINT_COLORS, legend

    strip = legend(["corner_0", "corner_1", "corner_2"], 300, notes=("dot: true",))
    assert strip.shape[1:] == (300, 3) and strip.shape[0] >= 2 * 13
    for colour in KEYPOINT_COLORS[:3]:
        assert (strip == colour).all(-1).sum() >= 50  # a filled swatch per keypoint
    narrow = legend(["corner_0", "corner_1", "corner_2"], 60, notes=())
    assert narrow.shape[0] > legend(["corner_0", "corner_1", "corner_2"], 600,
                                    notes=()).shape[0]  # wraps onto more lines


def test_demo_tour_succeeds_and_writes_video(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Every env's scripted expert (true keypoints) succeeds in every tour episode."""
    import s3k_envs

    rows = cli.main(["demo", "--tour", "--image-size", "32", "--out", str(tmp_path)])
    assert [row["env"] for row in rows] == list(s3k_envs.ENV_SPECS)
    out = capsys.readouterr().out
    for row in rows:
        env_id = row["env"]
        assert row["episodes"] == 3, row
        assert row["successes"] == row["episodes"], f"expert failed in the tour: {row}"
        assert f"{row['successes']}/{row['episodes']}" in out.split(env_id, 1)[1].split("\n")[0]
        frames = imageio.mimread(tmp_path / f"{env_id}.mp4")
        # first frame of each episode, one per step, 3 held at the end of each
        assert len(frames) >= row["episodes"] * (row["mean_steps"] + 4), row
        assert np.asarray(frames[0]).std() > 5
        assert row["video"] == str(tmp_path / f"{env_id}.mp4")
        assert (tmp_path / f"{env_id}.png").exists()


def test_demo_pipeline_end_to_end_train_wrap_step(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The main job on tiny settings: generate -> train -> evaluate -> keypoint wrappers ->
    expert on predicted keypoints -> video + summary (accuracy is not the point here)."""
    summary = cli.main(["demo", "--env", "S3K-Box-v0", "--image-size", "32", "--samples", "12",
                        "--labelled", "6", "--test-samples", "4", "--minutes", "0.05",
                        "--episodes", "1", "--rollout-steps", "2", "--workers", "1",
                        "--threads", "1", "--out", str(tmp_path)])
    assert summary["train"]["steps"] > 0
    assert summary["train"]["labelled"] == 6 and summary["train"]["unlabelled"] == 6
    assert summary["test"]["samples"] == 4 and np.isfinite(summary["test"]["median_mm"])
    policy = summary["policy"]
    assert policy["episodes"] == 1 and policy["mean_steps"] >= 1
    assert np.isfinite(policy["error_mm_median"])
    frames = imageio.mimread(policy["video"])
    side = 2 * 32 + 2  # the 2x2 mosaic, then its legend strip
    assert len(frames) >= 2 and np.asarray(frames[0]).shape[1:] == (side, 3)
    assert np.asarray(frames[0]).shape[0] > side
    assert (tmp_path / "summary.json").exists() and (tmp_path / "eval" / "overlays.png").exists()
    assert "S3K demo on S3K-Box-v0" in capsys.readouterr().out


def test_demos_forwards_options(tmp_path: Path) -> None:
    out = tmp_path / "demos.npz"
    cli.main(["demos", "--episodes", "1", "--image-size", "16", "--out", str(out)])
    assert out.exists()
