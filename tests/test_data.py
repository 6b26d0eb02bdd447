"""Multi-view keypoint datasets: generation, on-disk format, determinism across processes,
resuming after an interruption, and the loader's validation (``s3k_envs.keypoints.data``)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from s3k_envs.geometry import project
from s3k_envs.keypoints import data, sampling
from s3k_envs.keypoints.data import generate_dataset
from s3k_envs.keypoints.dataset import (
    DatasetError,
    KeypointDataset,
    load_arrays,
    read_npz,
    write_npz,
)
from s3k_envs.keypoints.sampling import SampleGenerator

ENV = "S3K-Box-v0"
#: The reference dataset: 10 samples (6 labelled) at 32 px in shards of 4 (4 + 4 + 2).
REF = dict(num_samples=10, num_labelled=6, image_size=32, seed=7, shard_size=4)


def _generate(out: Path, **kwargs) -> Path:
    args = {**REF, "workers": 1, "progress": False, **kwargs}
    return generate_dataset(out, ENV, **args)


def _shard_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("shard_*.npz"))}


@pytest.fixture(scope="module")
def ref_dataset(tmp_path_factory) -> Path:
    """The reference dataset, generated once (do not modify: copy it)."""
    return _generate(tmp_path_factory.mktemp("ref") / "ds")


@pytest.fixture
def ref_copy(ref_dataset, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(ref_dataset, dst)
    return dst


# --------------------------------------------------------------------------- format


def test_round_trip_and_manifest(ref_dataset):
    manifest = json.loads((ref_dataset / "manifest.json").read_text())
    assert manifest["format"] == "s3k-dataset" and manifest["format_version"] == 1
    assert manifest["env_id"] == ENV and manifest["env_options"] == {"image_size": 32}
    assert manifest["num_samples"] == 10 and manifest["num_labelled"] == 6
    assert manifest["image_size"] == [32, 32] and manifest["num_cameras"] == 4
    assert manifest["keypoint_names"] == ["corner_0", "corner_1", "corner_2"]
    assert manifest["label_cameras"] is None and manifest["label_noise_px"] == 0.0
    assert manifest["labelled_indices"] == list(range(6))
    assert [(s["file"], s["start"], s["count"]) for s in manifest["shards"]] == [
        ("shard_00000.npz", 0, 4), ("shard_00001.npz", 4, 4), ("shard_00002.npz", 8, 2)]
    assert manifest["created_with"]["package"] == "s3k-envs"
    assert not (ref_dataset / "progress.json").exists()

    ds = KeypointDataset(ref_dataset)
    arrays = load_arrays(ref_dataset)
    assert len(ds) == 10
    assert ds.labelled_indices.tolist() == list(range(6))
    assert ds.unlabelled_indices.tolist() == [6, 7, 8, 9]
    assert ds.keypoint_names == ("corner_0", "corner_1", "corner_2")
    assert ds.manifest["num_samples"] == 10
    c, h, w, k = 4, 32, 32, 3
    assert arrays["images"].shape == (10, c, h, w, 3) and arrays["images"].dtype == np.uint8
    assert arrays["label_rows"].tolist() == list(range(6))
    assert arrays["keypoints_2d"].shape == (6, c, k, 2)
    assert arrays["images"].std() > 10  # real pictures, not black frames
    for i in range(10):
        item = ds[i]
        assert item["images"].dtype == torch.uint8 and item["images"].shape == (c, h, w, 3)
        assert item["intrinsics"].dtype == torch.float32 and item["intrinsics"].shape == (c, 3, 3)
        assert item["extrinsics"].shape == (c, 4, 4)
        assert item["keypoints_2d"].shape == (c, k, 2) and item["label_mask"].shape == (c, k)
        assert item["keypoints_3d"].shape == (k, 3)
        assert item["labelled"].dtype == torch.bool and item["labelled"].shape == ()
        assert bool(item["labelled"]) == (i < 6) and int(item["sample_index"]) == i
        assert np.array_equal(item["images"].numpy(), arrays["images"][i])
        assert np.array_equal(item["extrinsics"].numpy(), arrays["extrinsics"][i])
        if i < 6:
            assert np.array_equal(item["keypoints_2d"].numpy(), arrays["keypoints_2d"][i])
            assert np.array_equal(item["label_mask"].numpy(), arrays["label_mask"][i])
            assert item["label_mask"].any()
        else:  # unlabelled samples: zero-filled label arrays, as docs/datasets.md says
            assert not item["label_mask"].any() and not item["labelling_cameras"].any()
            assert not item["keypoints_2d"].any() and not item["keypoints_3d"].any()
    assert ds[-1]["sample_index"] == 9
    with pytest.raises(IndexError):
        ds[10]
    # Labelled and unlabelled items batch together with the default collate function.
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=10)))
    assert batch["images"].shape == (10, c, h, w, 3)
    assert batch["labelled"].tolist() == [True] * 6 + [False] * 4
    # Pickles without its memory maps (DataLoader workers under spawn) and reopens them.
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[7]["images"].numpy(), arrays["images"][7])


def test_unlabelled_samples_carry_no_keypoints_on_disk(ref_dataset):
    label_keys = {"label_rows", "keypoints_2d", "label_mask", "labelling_cameras",
                  "keypoints_3d"}
    expected_rows = {"shard_00000.npz": [0, 1, 2, 3], "shard_00001.npz": [0, 1],
                     "shard_00002.npz": []}
    for name, rows in expected_rows.items():
        with np.load(ref_dataset / name, allow_pickle=False) as npz:
            assert set(npz.files) == label_keys | {"images", "intrinsics", "extrinsics",
                                                  "sample_index", "labelled"}
            assert npz["label_rows"].tolist() == rows
            assert npz["labelled"].sum() == len(rows)
            for key in label_keys:  # one entry per labelled row, nothing for the others
                assert npz[key].shape[0] == len(rows), (name, key)
        # The standard reader and the memory-mapping one agree.
        with np.load(ref_dataset / name, allow_pickle=False) as npz:
            mapped = read_npz(ref_dataset / name)
            for key in npz.files:
                assert np.array_equal(npz[key], mapped[key]) and npz[key].dtype == mapped[
                    key].dtype
    with zipfile.ZipFile(ref_dataset / "shard_00002.npz") as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_labels_are_projections_of_the_truth(ref_dataset):
    a = load_arrays(ref_dataset)
    rows = a["label_rows"]
    uv, depth = project(a["keypoints_3d"][:, None].astype(np.float64),
                        a["intrinsics"][rows].astype(np.float64),
                        a["extrinsics"][rows].astype(np.float64))
    mask = a["label_mask"]
    assert mask.sum() > 0.6 * mask.size  # most corners are visible in most cameras
    np.testing.assert_allclose(a["keypoints_2d"][mask], uv[mask], atol=1e-3)
    assert np.all(depth[mask] > 0)
    assert not a["keypoints_2d"][~mask].any()  # no label where nothing was labelled
    assert a["labelling_cameras"].all()  # label_cameras=None: every camera labels
    # Regenerating one sample alone reproduces it exactly, labels and visibility included.
    manifest = json.loads((ref_dataset / "manifest.json").read_text())
    gen = SampleGenerator.from_manifest(manifest)
    try:
        for i in (3, 8):
            sample = gen.sample(i)
            assert sample["images"].tobytes() == a["images"][i].tobytes()
            assert sample["extrinsics"].tobytes() == a["extrinsics"][i].tobytes()
        _, info = gen.env.reset(seed=sampling.sample_seed(7, 2))
        assert np.array_equal(a["label_mask"][2], info["keypoints_visible"])
        assert np.array_equal(a["keypoints_3d"][2], info["keypoints"])
    finally:
        gen.close()


def test_label_noise_statistics(tmp_path, ref_dataset):
    sigma = 2.0
    noisy = load_arrays(_generate(tmp_path / "noisy", num_samples=40, num_labelled=40,
                                  label_noise_px=sigma, shard_size=64))
    rows = noisy["label_rows"]
    uv, _ = project(noisy["keypoints_3d"][:, None].astype(np.float64),
                    noisy["intrinsics"][rows].astype(np.float64),
                    noisy["extrinsics"][rows].astype(np.float64))
    err = (noisy["keypoints_2d"] - uv)[noisy["label_mask"]]  # (labels, 2)
    assert err.shape[0] > 200
    assert abs(err.std() - sigma) < 0.15 * sigma
    assert np.all(np.abs(err.mean(axis=0)) < 0.4)
    assert np.abs(err).max() < 6 * sigma
    # Noise changes only the labels: same scenes and cameras as without noise.
    clean = load_arrays(ref_dataset)
    assert np.array_equal(noisy["images"][:10], clean["images"])


def test_label_cameras_subset(tmp_path):
    a = load_arrays(_generate(tmp_path / "two", num_samples=12, num_labelled=12,
                              label_cameras=2))
    cams = a["labelling_cameras"]
    assert cams.shape == (12, 4) and np.all(cams.sum(axis=1) == 2)
    assert len({tuple(row) for row in cams}) > 1  # chosen at random per sample
    mask = a["label_mask"]
    assert not np.any(mask & ~cams[:, :, None])  # only the labelling cameras label
    assert np.all(mask.any(axis=2).sum(axis=1) <= 2)
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["label_cameras"] == 2
    with pytest.raises(ValueError, match=r"label_cameras.*>= 2"):
        _generate(tmp_path / "one", label_cameras=1)
    with pytest.raises(ValueError, match="at most the env's 4 cameras"):
        _generate(tmp_path / "five", label_cameras=5)


def test_seeds():
    seeds = {sampling.sample_seed(s, i) for s in range(3) for i in range(100)}
    assert len(seeds) == 300 and max(seeds) > 2**32
    assert sampling.sample_seed(5, 17) == sampling.sample_seed(5, 17)
    with pytest.raises(ValueError, match="seed"):
        sampling.sample_seed(-1, 0)


def test_default_workers():
    assert data._default_workers(100) == 1  # starting workers costs more than it saves
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert data._default_workers(10**6) == cores


# --------------------------------------------------------------------------- generation


@pytest.mark.parametrize("env_id", ["S3K-Box-v0", "S3K-BoxDistractors-v0", "S3K-Shoes-v0",
                                    "S3K-CableInsert-v0"])
def test_samples_do_not_depend_on_generation_order(tmp_path, env_id):
    """What makes multi-process generation byte-identical: a sample depends only on its
    index, not on which samples the same env produced before it."""
    out = generate_dataset(tmp_path / "ds", env_id, 4, 2, image_size=24, workers=1,
                           progress=False)
    a = load_arrays(out)
    gen = SampleGenerator.from_manifest(json.loads((out / "manifest.json").read_text()))
    try:
        for i in (3, 1, 2, 0):
            sample = gen.sample(i)
            assert sample["images"].tobytes() == a["images"][i].tobytes(), (env_id, i)
            assert sample["extrinsics"].tobytes() == a["extrinsics"][i].tobytes()
            if i < 2:
                assert sample["keypoints_2d"].tobytes() == a["keypoints_2d"][i].tobytes()
                assert np.array_equal(sample["label_mask"], a["label_mask"][i])
    finally:
        gen.close()


def test_workers_give_identical_bytes(tmp_path):
    kwargs = dict(num_samples=9, num_labelled=5, shard_size=3, label_cameras=3,
                  label_noise_px=0.5)
    one = _generate(tmp_path / "w1", workers=1, **kwargs)
    two = _generate(tmp_path / "w2", workers=2, **kwargs)
    bytes_one, bytes_two = _shard_bytes(one), _shard_bytes(two)
    assert list(bytes_one) == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    assert bytes_one == bytes_two  # whole files, not just arrays
    a, b = load_arrays(one), load_arrays(two)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


def test_expert_rollouts_move_the_scene_and_stay_deterministic(tmp_path, ref_dataset):
    """--rollout-steps records states along the expert's path; same bytes with 1 or 2
    workers; older manifests without the rollout entries still read as rollout_steps=0."""
    kwargs = dict(num_samples=6, num_labelled=6, shard_size=3, rollout_steps=8,
                  rollout_noise=0.3)
    one = _generate(tmp_path / "r1", workers=1, **kwargs)
    two = _generate(tmp_path / "r2", workers=2, **kwargs)
    assert _shard_bytes(one) == _shard_bytes(two)
    moved = load_arrays(one)
    still = load_arrays(ref_dataset)
    # Same reset seeds as the first 6 reference samples; the expert moves the gripper, so
    # the images differ for every sample whose drawn step count was not 0.
    differ = [not np.array_equal(moved["images"][i], still["images"][i]) for i in range(6)]
    assert sum(differ) >= 4
    man = json.loads((one / "manifest.json").read_text())
    assert man["rollout_steps"] == 8 and man["rollout_noise"] == 0.3
    # A manifest from before the rollout options existed still means "no rollout".
    old = json.loads((ref_dataset / "manifest.json").read_text())
    old.pop("rollout_steps", None)
    old.pop("rollout_noise", None)
    assert sampling.SampleGenerator.from_manifest(old).params.rollout_steps == 0
    with pytest.raises(ValueError, match="rollout_steps"):
        _generate(tmp_path / "bad", rollout_steps=-1)


def test_compressed_shards_hold_the_same_arrays(tmp_path, ref_dataset):
    out = _generate(tmp_path / "z", compress=True)
    with zipfile.ZipFile(out / "shard_00000.npz") as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    a, b = load_arrays(out, verify_checksums=True), load_arrays(ref_dataset)
    for key in b:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
    assert torch.equal(KeypointDataset(out)[5]["images"], KeypointDataset(ref_dataset)[5]["images"])

    def size(root: Path) -> int:
        return sum(p.stat().st_size for p in root.glob("shard_*.npz"))

    assert size(out) < 0.6 * size(ref_dataset)


def test_resume_after_interruption(tmp_path, ref_dataset, monkeypatch):
    out = tmp_path / "ds"
    real_write = data._write_shard
    written: list[str] = []

    def write_then_crash(path, arrays, *args):
        if written:
            raise KeyboardInterrupt("simulated interruption")
        real_write(path, arrays, *args)
        written.append(path.name)

    monkeypatch.setattr(data, "_write_shard", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _generate(out)
    assert written == ["shard_00000.npz"]
    assert not (out / "manifest.json").exists() and (out / "progress.json").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "progress.json", "shard_00000.npz"]
    with pytest.raises(DatasetError, match=r"manifest\.json.*resume"):
        KeypointDataset(out)
    # Other parameters on top of an incomplete dataset: refused.
    monkeypatch.setattr(data, "_write_shard", real_write)
    with pytest.raises(FileExistsError, match="seed: 7 on disk vs 8 requested"):
        _generate(out, seed=8)
    # Same parameters: only the missing samples are generated.
    generated: list[int] = []
    real_samples = SampleGenerator.samples

    def counting(self, start, stop):
        generated.extend(range(start, stop))
        return real_samples(self, start, stop)

    monkeypatch.setattr(SampleGenerator, "samples", counting)
    _generate(out)
    assert generated == list(range(4, 10))
    assert _shard_bytes(out) == _shard_bytes(ref_dataset)
    assert not (out / "progress.json").exists()
    KeypointDataset(out)
    # A complete dataset with the same parameters is left alone.
    generated.clear()
    _generate(out)
    assert generated == []


def test_kill_9_leaves_nothing_a_loader_accepts_and_resumes(tmp_path, ref_dataset):
    out = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import time
        from s3k_envs.keypoints import data
        real = data._write_shard
        def slow(path, arrays, *args):
            real(path, arrays, *args)
            time.sleep(60)  # killed here, after the first shard
        data._write_shard = slow
        data.generate_dataset({str(out)!r}, {ENV!r}, workers=1, progress=False, **{REF!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ,
                            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    try:
        deadline = time.monotonic() + 60
        while not (out / "shard_00000.npz").exists():
            assert proc.poll() is None, "generator exited early"
            assert time.monotonic() < deadline, "no shard written within 60 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(DatasetError, match=r"manifest\.json"):
        KeypointDataset(out)
    with pytest.raises(DatasetError, match=r"manifest\.json"):
        load_arrays(out)
    _generate(out)
    assert _shard_bytes(out) == _shard_bytes(ref_dataset)
    assert not list(out.glob(".*.tmp"))


def test_existing_dataset_is_not_overwritten(tmp_path, ref_copy):
    before = {p.name: p.stat().st_mtime_ns for p in ref_copy.iterdir()}
    _generate(ref_copy)  # same parameters: nothing to do
    assert {p.name: p.stat().st_mtime_ns for p in ref_copy.iterdir()} == before
    with pytest.raises(FileExistsError, match="num_labelled: 6 on disk vs 3 requested"):
        _generate(ref_copy, num_labelled=3)
    KeypointDataset(ref_copy)  # still intact
    _generate(ref_copy, num_labelled=3, overwrite=True)
    assert KeypointDataset(ref_copy).labelled_indices.tolist() == [0, 1, 2]
    # A lost shard of a complete dataset is regenerated, the rest kept.
    (ref_copy / "shard_00001.npz").unlink()
    _generate(ref_copy, num_labelled=3)
    assert len(KeypointDataset(ref_copy)) == 10
    # A directory with other files is not a dataset.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        _generate(other)
    assert (other / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- loader errors


def _rewrite_shard(path: Path, **changes) -> None:
    arrays = {k: np.array(v) for k, v in read_npz(path).items()}
    for key, fn in changes.items():
        arrays[key] = fn(arrays[key])
    write_npz(path, arrays)


def _nan_intrinsics(x: np.ndarray) -> np.ndarray:
    x[1, 2, 0, 0] = np.nan
    return x


def _skewed_rotation(x: np.ndarray) -> np.ndarray:
    x[0, 1, 0, 1] += 0.05
    return x


def _one_labelling_camera(x: np.ndarray) -> np.ndarray:
    x[0, 1:] = False
    return x


@pytest.mark.parametrize(
    ("corrupt", "file", "message"),
    [
        ("missing_shard", "shard_00001.npz", "shard missing"),
        ("truncated_shard", "shard_00001.npz", "truncated or corrupt"),
        ("wrong_version", "manifest.json", "format_version 99 is not supported"),
        ("no_manifest", "manifest.json", "missing"),
        ("bad_json", "manifest.json", "unreadable JSON"),
        ("wrong_count", "manifest.json", "shards cover 11 samples"),
        ("nan_intrinsics", "shard_00002.npz", "sample 9 camera 2: intrinsics are not finite"),
        ("skewed_rotation", "shard_00000.npz", "sample 0 camera 1: extrinsics: rotation"),
        ("wrong_image_shape", "shard_00001.npz", "array 'images': expected uint8 (4, 4, 32"),
        ("too_few_cameras", "shard_00001.npz", "number of labelling cameras"),
    ],
)
def test_loader_names_the_bad_file(ref_copy, corrupt, file, message):
    root = ref_copy
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if corrupt == "missing_shard":
        (root / file).unlink()
    elif corrupt == "truncated_shard":
        blob = (root / file).read_bytes()
        (root / file).write_bytes(blob[: len(blob) // 2])
    elif corrupt == "wrong_version":
        manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    elif corrupt == "no_manifest":
        manifest_path.unlink()
    elif corrupt == "bad_json":
        manifest_path.write_text("{not json")
    elif corrupt == "wrong_count":
        manifest["shards"][-1]["count"] = 3
        manifest_path.write_text(json.dumps(manifest))
    elif corrupt == "nan_intrinsics":
        _rewrite_shard(root / file, intrinsics=_nan_intrinsics)
    elif corrupt == "skewed_rotation":
        _rewrite_shard(root / file, extrinsics=_skewed_rotation)
    elif corrupt == "wrong_image_shape":
        _rewrite_shard(root / file, images=lambda x: x[:, :, :16])
    elif corrupt == "too_few_cameras":
        _rewrite_shard(root / file, labelling_cameras=_one_labelling_camera,
                       label_mask=lambda x: x & np.array([True, False, False, False])[:, None])
    for loader in (KeypointDataset, load_arrays):
        with pytest.raises(DatasetError) as excinfo:
            loader(root)
        text = str(excinfo.value)
        assert str(root / file) in text and message in text, text


def test_checksums_catch_flipped_bits(ref_copy):
    path = ref_copy / "shard_00000.npz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 3] ^= 0xFF  # inside the image data
    path.write_bytes(bytes(blob))
    KeypointDataset(ref_copy)  # structure intact: opens
    with pytest.raises(DatasetError, match=r"shard_00000\.npz.*checksum"):
        KeypointDataset(ref_copy, verify_checksums=True)


# --------------------------------------------------------------------------- command line


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    data.main([ENV, "--samples", "3", "--labelled", "all", "--out", str(out),
               "--image-size", "24x40", "--seed", "3", "--env-option", "num_cameras=3",
               "--env-option", "camera_distance=(0.4, 0.5)", "--label-cameras", "2",
               "--label-noise", "0.5", "--workers", "1", "--shard-size", "2",
               "--no-progress"])
    assert "3 samples of S3K-Box-v0 (3 labelled), 3 cameras 24x40" in capsys.readouterr().out
    ds = KeypointDataset(out)
    m = ds.manifest
    assert m["env_options"] == {"num_cameras": 3, "camera_distance": [0.4, 0.5],
                                "image_size": [24, 40]}
    assert m["image_size"] == [24, 40] and m["num_cameras"] == 3 and m["seed"] == 3
    assert m["label_cameras"] == 2 and m["label_noise_px"] == 0.5 and m["num_labelled"] == 3
    assert m["created_with"]["command"].startswith("s3k generate S3K-Box-v0 --samples 3")
    assert ds[0]["images"].shape == (3, 24, 40, 3)


def test_cli_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option.*no_such_option"):
        data.main([ENV, "--samples", "2", "--out", str(tmp_path / "a"),
                   "--env-option", "no_such_option=1", "--workers", "1", "--no-progress"])
    with pytest.raises(ValueError, match="NoSuchEnv"):
        data.main(["NoSuchEnv-v0", "--samples", "2", "--out", str(tmp_path / "b"),
                   "--no-progress"])
    with pytest.raises(ValueError, match="num_labelled"):
        data.main([ENV, "--samples", "2", "--labelled", "3", "--out", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="conflicts"):
        generate_dataset(tmp_path / "d", ENV, 2, image_size=32, env_options={"image_size": 48})
    with pytest.raises(SystemExit):
        data.main([ENV, "--samples", "2", "--out", str(tmp_path / "e"), "--image-size", "big"])
    assert not any((tmp_path / name).exists() for name in "abcde")  # nothing created


def test_option_parsing():
    assert data.parse_env_option("num_cameras=3") == ("num_cameras", 3)
    assert data.parse_env_option("camera_distance=(0.3, 0.5)") == ("camera_distance",
                                                                   (0.3, 0.5))
    assert data.parse_env_option("instances=[0, 1]") == ("instances", [0, 1])
    assert data.parse_env_option("terminate_on_success=False") == ("terminate_on_success",
                                                                   False)
    assert data.parse_env_option("name=hello world") == ("name", "hello world")
    assert data.parse_env_option("expr=a=b") == ("expr", "a=b")
    assert data.parse_image_size("64") == 64
    assert data.parse_image_size("48x64") == (48, 64)
    for bad in ("no_equals", "=3", "1x=2"):
        with pytest.raises(Exception, match="KEY=VALUE"):
            data.parse_env_option(bad)
