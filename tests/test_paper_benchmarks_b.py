"""Tests of benchmarks/domain_shift.py (Fig. 6) and benchmarks/shoe_generalization.py
(Table 1): how the labels are spread over distractor pools / shoes, and each script's
``--smoke`` profile end to end (tiny datasets, 6 training steps) into ``tmp_path``: the CSV,
JSON, Markdown and PNG files exist with one row per run, the expected columns and finite
errors; a second call reuses the finished runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from benchmarks import domain_shift, shoe_generalization


# --------------------------------------------------------------------------- pure helpers
def test_spread_evenly() -> None:
    assert domain_shift.spread_evenly(12, 5) == [3, 3, 2, 2, 2]
    assert domain_shift.spread_evenly(0, 4) == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        domain_shift.spread_evenly(3, 0)


def test_domain_shift_label_and_unlabelled_pools() -> None:
    assert domain_shift.labels_per_pool("start", 30) == {0: 30}
    assert domain_shift.labels_per_pool("full", 30) == {p: 6 for p in range(5)}
    assert domain_shift.labels_per_pool("full", 3) == {0: 1, 1: 1, 2: 1}
    assert domain_shift.unlabelled_per_pool(1000) == {p: 250 for p in (1, 2, 3, 4)}
    assert domain_shift.unlabelled_per_pool(0) == {}
    with pytest.raises(ValueError, match="mode"):
        domain_shift.labels_per_pool("middle", 10)
    with pytest.raises(ValueError, match="labels"):
        domain_shift.labels_per_pool("start", 0)


def test_domain_shift_quick_grid() -> None:
    profile = domain_shift.PROFILES["quick"]
    runs = domain_shift.build_runs(profile)
    assert len(runs) == len(profile.labels) * len(profile.unlabelled) * 2 * len(profile.seeds)
    pools_seen = set()
    for run in runs:
        meta = dict(run.meta)
        assert run.num_labelled in profile.labels
        pools = {dict(s.spec.env_options)["distractor_set"] for s in run.labelled}
        assert pools == ({0} if meta["mode"] == "start" else {0, 1, 2, 3, 4})
        unl = {dict(s.spec.env_options)["distractor_set"] for s in run.unlabelled}
        assert unl <= {1, 2, 3, 4}
        assert run.alpha == (0.5 if run.num_unlabelled else 0.0)
        test_pools = [dict(spec.env_options)["distractor_set"] for _, spec in run.test]
        assert test_pools == [domain_shift.TEST_POOL, 0]
        pools_seen |= pools | unl
    assert domain_shift.TEST_POOL not in pools_seen  # the evaluation pool is never trained on
    # No two datasets share a seed (no scene shared between training and test data).
    specs = {spec for r in runs for spec in r.datasets()}
    assert len({s.seed for s in specs}) == len(specs)


def test_shoe_labels_per_shoe_and_grid() -> None:
    assert shoe_generalization.labels_per_shoe(60, 1) == {0: 60}
    assert shoe_generalization.labels_per_shoe(60, 12) == {i: 5 for i in range(12)}
    assert shoe_generalization.labels_per_shoe(120, 8) == {i: 15 for i in range(8)}
    assert shoe_generalization.labels_per_shoe(10, 3) == {0: 4, 1: 3, 2: 3}
    with pytest.raises(ValueError, match="at least one"):
        shoe_generalization.labels_per_shoe(2, 3)
    with pytest.raises(ValueError, match="shoes"):
        shoe_generalization.labels_per_shoe(60, 13)
    profile = shoe_generalization.PROFILES["quick"]
    runs = shoe_generalization.build_runs(profile)
    assert [dict(r.meta)["shoes"] for r in runs] == list(profile.shoes)
    for run in runs:
        k = dict(run.meta)["shoes"]
        assert run.num_labelled == profile.total_labels  # same label count for every row
        shoes = {dict(s.spec.env_options)["instances"] for s in run.labelled}
        assert shoes == {(i,) for i in range(k)}
        assert [dict(s.spec.env_options)["instances"] for s in run.unlabelled] == ["train"]
        tests = dict(run.test)
        assert dict(tests["heldout"].env_options)["instances"] == "test"
        assert dict(tests["train_shoes"].env_options)["instances"] == "train"


# --------------------------------------------------------------------------- smoke runs
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_outputs(out: Path, stem: str, columns: tuple[str, ...], n_rows: int,
                   finite: list[str]) -> list[dict[str, str]]:
    for ext in ("csv", "json", "png", "md"):
        assert (out / f"{stem}.{ext}").stat().st_size > 0, ext
    rows = _read_csv(out / f"{stem}.csv")
    assert len(rows) == n_rows
    assert tuple(rows[0]) == columns
    for row in rows:
        for key in finite:
            assert math.isfinite(float(row[key])), (key, row)
    doc = json.loads((out / f"{stem}.json").read_text())
    assert len(doc["rows"]) == n_rows and doc["summary"] and doc["machine"]
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return rows


def test_domain_shift_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--smoke", "--jobs", "1", "--out", str(tmp_path / "out"), "--runs-dir",
            str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    assert domain_shift.main(args) == 0
    rows = _check_outputs(tmp_path / "out", "domain_shift_smoke", domain_shift.CSV_COLUMNS,
                          4, ["unseen_rms_px", "unseen_rms_px_400", "unseen_median_mm",
                              "initial_rms_px", "steps"])
    assert {(r["mode"], r["unlabelled"]) for r in rows} == {
        ("start", "0"), ("full", "0"), ("start", "8"), ("full", "8")}
    assert {r["labels"] for r in rows} == {"5"}
    assert "gap px" in capsys.readouterr().out
    # Rerun: every run is finished, so the results come from the cache unchanged.
    assert domain_shift.main(args) == 0
    again = _read_csv(tmp_path / "out" / "domain_shift_smoke.csv")
    assert [r["unseen_rms_px"] for r in again] == [r["unseen_rms_px"] for r in rows]


def test_shoe_generalization_smoke(tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--smoke", "--jobs", "1", "--out", str(tmp_path / "out"), "--runs-dir",
            str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    assert shoe_generalization.main(args) == 0
    rows = _check_outputs(
        tmp_path / "out", "shoe_generalization_smoke", shoe_generalization.CSV_COLUMNS, 2,
        [f"{t}_{m}" for t in shoe_generalization.TESTS
         for m in ("rms_px", "rms_px_400", "median_mm")] + ["paper_test_px_400"])
    assert [r["shoes"] for r in rows] == ["1", "2"]
    assert all(r["labels"] == "2" for r in rows)
    assert [r["labels_per_shoe"] for r in rows] == ["2", "1/1"]
    assert "not a measurement" in capsys.readouterr().out
    md = (tmp_path / "out" / "shoe_generalization_smoke.md").read_text()
    assert "26.99" in md  # the paper's column next to ours


def test_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        domain_shift.main([])  # a profile is required
    with pytest.raises(SystemExit):
        domain_shift.main(["--quick", "--labels", "0"])
    with pytest.raises(SystemExit):
        shoe_generalization.main(["--quick", "--shoes", "13"])
    with pytest.raises(SystemExit):
        shoe_generalization.main(["--quick", "--shoes", "6", "--total-labels", "4"])
