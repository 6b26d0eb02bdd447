"""Tests of s3k_envs/demos.py: recording expert demonstrations, the .npz layout, loading, and
atomic writes."""

from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest

from s3k_envs import demos
from s3k_envs.envs.cable import MAX_EPISODE_STEPS

ENV_ID = "S3K-CableInsert-v0"
if ENV_ID not in gym.registry:  # until s3k_envs/registration.py lists it
    gym.register(ENV_ID, entry_point="s3k_envs.envs.cable:CableInsertEnv",
                 max_episode_steps=MAX_EPISODE_STEPS)


@pytest.fixture(scope="module")
def recorded() -> tuple[list[dict], dict]:
    return demos.record_demonstrations(ENV_ID, episodes=2, seed=0, image_size=16, progress=False)


def test_record_save_load_round_trip(recorded, tmp_path):
    episodes, metadata = recorded
    assert len(episodes) == 2 and metadata["episodes"] == 2
    assert metadata["attempts"] == 2 + metadata["failures"]
    assert metadata["expert"] == "CableInsertExpert"
    assert metadata["keypoint_names"] == ["plug_tip", "plug_base", "socket"]
    path = demos.save_demonstrations(tmp_path / "demos" / "cable.npz", episodes, metadata)
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name != "cable.npz"]
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        files = set(data.files)
        assert data["obs/images"].dtype == np.uint8
        assert data["episode_index"][0] == 0 and len(data["episode_index"]) == 3
    assert {"obs/images", "obs/gripper_pos", "actions", "rewards", "terminated", "truncated",
            "info/keypoints", "info/is_success", "episode_index", "episode_obs_index", "seeds",
            "metadata"} <= files
    loaded = demos.load_demonstrations(path)
    assert demos.load_metadata(path)["env_id"] == ENV_ID
    assert len(loaded) == 2
    for ep, orig in zip(loaded, episodes, strict=True):
        t = len(ep["actions"])
        assert 1 <= t <= MAX_EPISODE_STEPS
        assert ep["actions"].shape == (t, 6) and ep["actions"].dtype == np.float32
        assert np.abs(ep["actions"]).max() <= 1.0
        for key in ("rewards", "terminated", "truncated"):
            assert ep[key].shape == (t,), key
        assert ep["observations"]["images"].shape == (t + 1, 4, 16, 16, 3)
        assert ep["observations"]["gripper_pos"].shape == (t + 1, 3)
        assert ep["infos"]["keypoints"].shape == (t + 1, 3, 3)
        assert ep["infos"]["keypoints_2d"].shape == (t + 1, 4, 3, 2)
        assert ep["infos"]["is_success"].shape == (t + 1,)
        # Successful episodes end on success (terminated), never earlier.
        assert ep["infos"]["is_success"][-1] and not ep["infos"]["is_success"][:-1].any()
        assert ep["terminated"][-1] and not ep["terminated"][:-1].any()
        assert not ep["truncated"].any()
        assert ep["seed"] == orig["seed"]
        for key, value in orig["observations"].items():
            np.testing.assert_array_equal(ep["observations"][key], value, err_msg=key)
        np.testing.assert_array_equal(ep["rewards"], orig["rewards"])


def test_demonstrations_replay(recorded):
    """The stored actions, replayed from the stored seed, reproduce the episode."""
    episodes, _ = recorded
    env = gym.make(ENV_ID, image_size=16)
    try:
        ep = episodes[0]
        obs, _ = env.reset(seed=ep["seed"])
        np.testing.assert_array_equal(obs["images"], ep["observations"]["images"][0])
        for t, action in enumerate(ep["actions"]):
            obs, reward, *_ = env.step(action)
            assert reward == ep["rewards"][t]
        np.testing.assert_array_equal(obs["gripper_pos"], ep["observations"]["gripper_pos"][-1])
    finally:
        env.close()


def test_interrupted_write_leaves_old_file_intact(recorded, tmp_path, monkeypatch):
    episodes, metadata = recorded
    target = tmp_path / "cable.npz"
    demos.save_demonstrations(target, episodes[:1], metadata)
    before = target.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of compressing

    monkeypatch.setattr(demos.np, "savez_compressed", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        demos.save_demonstrations(target, episodes, metadata)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["cable.npz"]  # no temporary file left behind
    # And with no previous file, nothing at all appears.
    fresh = tmp_path / "new" / "cable.npz"
    with pytest.raises(KeyboardInterrupt):
        demos.save_demonstrations(fresh, episodes, metadata)
    assert not fresh.exists() and os.listdir(fresh.parent) == []


def test_load_rejects_other_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a demonstrations file"):
        demos.load_demonstrations(other)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, metadata=np.array(json.dumps({"format_version": 99})))
    with pytest.raises(ValueError, match="version"):
        demos.load_demonstrations(wrong)


def test_cli_without_images(tmp_path, capsys):
    out = tmp_path / "d.npz"
    demos.main(["--env", ENV_ID, "--episodes", "1", "--image-size", "16", "--no-images",
                "--seed", "3", "--no-progress", "--out", str(out)])
    assert "1 successful episodes" in capsys.readouterr().out
    (ep,) = demos.load_demonstrations(out)
    assert "images" not in ep["observations"]
    assert ep["seed"] == 3 and ep["observations"]["intrinsics"].shape[1:] == (4, 3, 3)
    assert demos.load_metadata(out)["store_images"] is False
