"""Tests of benchmarks/keypoint_experiments.py, the runner of the paper's data-efficiency
benchmarks: dataset names, assembling labelled / unlabelled data from several datasets,
run-directory bookkeeping and the errors bad specs get."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import keypoint_experiments as kx
from benchmarks.keypoint_experiments import DatasetSpec, RunSpec, Subset

BOX = "S3K-Box-v0"


# --------------------------------------------------------------------------- DatasetSpec
def test_dirname_is_readable_unique_and_stable() -> None:
    base = DatasetSpec(BOX, 100, 10, 3, 64)
    name = base.dirname()
    assert name.startswith("box_64px_n100_l10_s3_")
    assert name == DatasetSpec(BOX, 100, 10, 3, 64).dirname()
    variants = [
        DatasetSpec(BOX, 101, 10, 3, 64), DatasetSpec(BOX, 100, 11, 3, 64),
        DatasetSpec(BOX, 100, 10, 4, 64), DatasetSpec(BOX, 100, 10, 3, 32),
        DatasetSpec("S3K-BoxDistractors-v0", 100, 10, 3, 64),
        DatasetSpec(BOX, 100, 10, 3, 64, (("num_distractors", 2),)),
        DatasetSpec(BOX, 100, 10, 3, 64, rollout_steps=5),
        DatasetSpec(BOX, 100, 10, 3, 64, rollout_noise=0.1),
        DatasetSpec(BOX, 100, 10, 3, 64, (("long_option_" * 4, 1),)),
    ]
    names = {v.dirname() for v in variants} | {name}
    assert len(names) == len(variants) + 1
    d = DatasetSpec("S3K-BoxDistractors-v0", 50, 5, 1, 64,
                    {"distractor_set": 2, "num_distractors": 4})
    assert "distractor-set2" in d.dirname() and "boxdistractors" in d.dirname()
    # Option order and dict vs pairs do not matter to the name; the spec stays hashable.
    same = DatasetSpec("S3K-BoxDistractors-v0", 50, 5, 1, 64,
                       (("num_distractors", 4), ("distractor_set", 2)))
    assert same.dirname() == d.dirname()
    assert len({d, d}) == 1
    lst = DatasetSpec("S3K-Shoes-v0", 10, 0, 1, 64, {"instances": [0, 1, 2]})
    assert hash(lst) and lst.to_json()["env_options"] == {"instances": [0, 1, 2]}


@pytest.mark.parametrize("kwargs, match", [
    ({"samples": 0}, "samples"),
    ({"labelled": 11, "samples": 10}, "labelled"),
    ({"seed": -1}, "seed"),
    ({"image_size": 4}, "image_size"),
    ({"env_id": ""}, "env_id"),
    ({"env_options": {"image_size": 64}}, "image_size"),
    ({"env_options": {"x": float("nan")}}, "JSON"),
    ({"env_options": {"x": 1, 2: 3}}, "strings"),
    ({"rollout_noise": -1.0}, "rollout_noise"),
    ({"samples": 2.5}, "samples"),
])
def test_dataset_spec_bad_input(kwargs: dict, match: str) -> None:
    args = {"env_id": BOX, "samples": 10, "labelled": 2, "seed": 0, "image_size": 32}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DatasetSpec(**args)


# --------------------------------------------------------------------------- specs
def _test_set() -> tuple[tuple[str, DatasetSpec], ...]:
    return (("test", DatasetSpec(BOX, 5, 5, 9, 32)),)


def test_subset_and_run_spec_bad_input() -> None:
    lab = DatasetSpec(BOX, 10, 4, 0, 32)
    with pytest.raises(ValueError, match="count"):
        Subset(lab, 0)
    with pytest.raises(ValueError, match="only 10 samples"):
        Subset(lab, 11)
    with pytest.raises(ValueError, match="5 labelled samples requested"):
        Subset(lab, 5).labelled_count()
    assert Subset(lab, 5).unlabelled_count() == 5 and Subset(lab).unlabelled_count() == 10
    ok = {"name": "r", "labelled": (Subset(lab, 2),), "test": _test_set()}
    bad = [
        ({"name": "a/b"}, "name"),
        ({"labelled": ()}, "at least one"),
        ({"labelled": (Subset(lab, 5),)}, "labelled samples requested"),
        ({"test": ()}, "test set"),
        ({"test": (("1x", lab),)}, "identifier"),
        ({"test": _test_set() * 2}, "duplicate"),
        ({"test": (("test", DatasetSpec(BOX, 5, 0, 9, 32)),)}, "no labelled"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"minutes": 0}, "minutes"),
        ({"clock": "gpu"}, "clock"),
        ({"threads": 0}, "threads"),
        ({"train_overrides": {"no_such_field": 1}}, "unknown TrainConfig"),
        ({"train_overrides": {"alpha": 1.0}}, "RunSpec field"),
        ({"labelled": (lab,)}, "Subset"),
    ]
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            RunSpec(**{**ok, **change})
    run = RunSpec(**ok, unlabelled=Subset(lab, 7), train_overrides={"channels": [8, 8]})
    assert run.num_labelled == 2 and run.num_unlabelled == 7
    assert run.train_config().channels == [8, 8] and run.train_config().val_samples == 50
    assert RunSpec(**ok, unlabelled=(Subset(lab),), alpha=0).num_unlabelled == 0
    assert RunSpec(**ok, alpha=0).datasets() == [lab, _test_set()[0][1]]


def test_run_grid_rejects_bad_grids(tmp_path: Path) -> None:
    run = RunSpec("r", (Subset(DatasetSpec(BOX, 3, 3, 0, 32)),), _test_set())
    with pytest.raises(ValueError, match="no runs"):
        kx.run_grid([], tmp_path)
    with pytest.raises(ValueError, match="duplicate run names"):
        kx.run_grid([run, run], tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        kx.run_grid([run], tmp_path, jobs=0)
    assert not list(tmp_path.iterdir())  # nothing generated before the checks


def test_run_directory_refuses_another_method(tmp_path: Path) -> None:
    lab = DatasetSpec(BOX, 10, 10, 0, 32)
    run = RunSpec("r", (Subset(lab, 3),), _test_set(), alpha=0.5)
    kx._check_run_dir(run, tmp_path / "r")
    assert (tmp_path / "r" / "run_spec.json").is_file()
    kx._check_run_dir(RunSpec("r", (Subset(lab, 3),), _test_set(), alpha=0.5, minutes=9,
                              meta={"x": 1}), tmp_path / "r")  # budget / meta may change
    for other in (RunSpec("r", (Subset(lab, 4),), _test_set(), alpha=0.5),
                  RunSpec("r", (Subset(lab, 3),), _test_set(), alpha=1.0),
                  RunSpec("r", (Subset(lab, 3),), _test_set(), alpha=0.5, seed=1)):
        with pytest.raises(ValueError, match="holds a run with other"):
            kx._check_run_dir(other, tmp_path / "r")


# --------------------------------------------------------------------------- arrays
def _fake(n: int, label_rows: list[int], k: int = 3, c: int = 4, size: int = 8,
          offset: float = 0.0) -> dict[str, np.ndarray]:
    m = len(label_rows)
    return {
        "images": (np.arange(n)[:, None, None, None, None] + np.zeros((n, c, size, size, 3))
                   ).astype(np.uint8),
        "intrinsics": np.zeros((n, c, 3, 3), np.float32) + offset,
        "extrinsics": np.zeros((n, c, 4, 4), np.float32),
        "sample_index": np.arange(n, dtype=np.int64),
        "labelled": np.isin(np.arange(n), label_rows),
        "label_rows": np.asarray(label_rows, dtype=np.int64),
        "keypoints_2d": (np.arange(m, dtype=np.float32)[:, None, None, None]
                         + np.zeros((m, c, k, 2), np.float32) + offset),
        "label_mask": np.ones((m, c, k), bool),
        "keypoints_3d": np.zeros((m, k, 3), np.float32) + offset,
        "labelling_cameras": np.ones((m, c), bool),
    }


def test_first_labelled_first_samples_and_concat_on_fake_arrays() -> None:
    a = _fake(6, [1, 3, 4])
    sel = kx.first_labelled(a, 2)
    assert [int(x) for x in sel["images"][:, 0, 0, 0, 0]] == [1, 3]
    assert sel["label_rows"].tolist() == [0, 1] and sel["labelled"].all()
    np.testing.assert_array_equal(sel["keypoints_2d"], a["keypoints_2d"][:2])
    u = kx.first_samples(a, 5)
    assert len(u["images"]) == 5 and not u["labelled"].any()
    assert u["label_rows"].shape == (0,) and u["keypoints_2d"].shape == (0, 4, 3, 2)
    b = _fake(4, [0, 2], offset=100.0)
    cat = kx.concat_arrays([a, b])
    assert len(cat["images"]) == 10 and cat["label_rows"].tolist() == [1, 3, 4, 6, 8]
    np.testing.assert_array_equal(cat["images"][cat["label_rows"], 0, 0, 0, 0],
                                  [1, 3, 4, 0, 2])
    assert cat["keypoints_2d"][3:, 0, 0, 0].tolist() == [100.0, 101.0]
    for bad in (lambda: kx.first_labelled(a, 4), lambda: kx.first_labelled(a, 0),
                lambda: kx.first_samples(a, 7), lambda: kx.concat_arrays([])):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="has images"):
        kx.concat_arrays([a, _fake(3, [0], size=16)], ["a", "b"])
    with pytest.raises(ValueError, match="keypoints"):
        kx.concat_arrays([a, _fake(3, [0], k=2)])


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetSpec,
                                                                     DatasetSpec]:
    data = tmp_path_factory.mktemp("kx_data")
    a = DatasetSpec(BOX, 6, 4, 1, 32)
    b = DatasetSpec(BOX, 5, 5, 2, 32)
    for spec in (a, b):
        path = kx.ensure_dataset(spec, data, workers=1)
        assert path == data / spec.dirname() and (path / "manifest.json").is_file()
    return data, a, b


def test_subsets_of_two_real_datasets_concatenate(two_datasets: tuple[Path, DatasetSpec,
                                                                      DatasetSpec]) -> None:
    from s3k_envs.keypoints.dataset import load_arrays

    data, a, b = two_datasets
    arr_a, arr_b = load_arrays(data / a.dirname()), load_arrays(data / b.dirname())
    lab = kx.labelled_arrays([Subset(a, 2), Subset(b, 3)], data)
    assert lab["images"].shape == (5, 4, 32, 32, 3)
    assert lab["labelled"].all() and lab["label_rows"].tolist() == [0, 1, 2, 3, 4]
    for key in ("images", "intrinsics", "extrinsics"):
        np.testing.assert_array_equal(lab[key][:2], arr_a[key][arr_a["label_rows"][:2]])
        np.testing.assert_array_equal(lab[key][2:], arr_b[key][arr_b["label_rows"][:3]])
    for key in ("keypoints_2d", "label_mask", "keypoints_3d"):
        np.testing.assert_array_equal(lab[key], np.concatenate([arr_a[key][:2],
                                                                arr_b[key][:3]]))
    # All labelled samples of a (Subset count None) is 4, not its 6 samples.
    assert len(kx.labelled_arrays([Subset(a)], data)["images"]) == 4
    unl = kx.unlabelled_arrays([Subset(a), Subset(b, 2)], data)
    assert unl is not None and unl["images"].shape[0] == 8 and not unl["labelled"].any()
    np.testing.assert_array_equal(unl["images"][6:], arr_b["images"][:2])
    assert kx.unlabelled_arrays([], data) is None
    # train() accepts the assembled data (labels of both datasets usable).
    from s3k_envs.keypoints.train import labelled_frames, unlabelled_frames

    assert len(labelled_frames(lab)) == 5
    frames = unlabelled_frames(lab, unl, only_unlabelled=[True, False])
    assert frames is not None and len(frames) == 8


def test_mean_over_seeds() -> None:
    rows = [{"L": 3, "seed": 0, "e": 1.0}, {"L": 3, "seed": 1, "e": 3.0},
            {"L": 10, "seed": 0, "e": float("nan")}, {"L": 10, "seed": 1, "e": None}]
    m = kx.mean_over_seeds(rows, ("L",), ("e",))
    assert [r["L"] for r in m] == [3, 10] and [r["n"] for r in m] == [2, 2]
    assert m[0]["e"] == 2.0 and m[0]["e_std"] == 1.0 and m[0]["e_min"] == 1.0
    assert math.isnan(m[1]["e"])
