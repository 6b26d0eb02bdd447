"""Smoke tests of benchmarks/label_scaling.py and benchmarks/alpha_sweep.py: the ``--smoke``
profiles write CSV / JSON / PNG with the expected rows, columns and finite numbers, and the
alpha sweep reuses the runs it shares with label_scaling. Plus the grids of the quick and
full profiles (no training)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from benchmarks import alpha_sweep, label_scaling


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _check_outputs(out: Path, stem: str, columns: tuple[str, ...], n_rows: int) -> dict:
    header, rows = _read_csv(out / f"{stem}.csv")
    assert header == list(columns) and len(rows) == n_rows
    for r in rows:
        for key in ("test_rms_px", "test_median_mm", "test_p90_mm", "test_mean_mm",
                    "steps_per_s"):
            assert math.isfinite(float(r[key])) and float(r[key]) > 0, (key, r)
        assert int(r["steps"]) == 6
    doc = json.loads((out / f"{stem}.json").read_text())
    assert len(doc["rows"]) == n_rows and doc["settings"]["profile"] == "smoke"
    assert doc["machine"]["cpu_count"] and doc["command"]
    png = (out / f"{stem}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    return doc


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paper_a")
    return {"runs": root / "runs", "data": root / "data", "out": root / "out"}


def _argv(dirs: dict[str, Path]) -> list[str]:
    return ["--smoke", "--jobs", "1", "--runs-dir", str(dirs["runs"]), "--data-dir",
            str(dirs["data"]), "--out", str(dirs["out"])]


def test_label_scaling_smoke(smoke_dirs: dict[str, Path],
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert label_scaling.main(_argv(smoke_dirs)) == 0
    doc = _check_outputs(smoke_dirs["out"], "label_scaling_smoke", label_scaling.CSV_COLUMNS,
                         4)
    got = {(r["labels"], r["unlabelled"], r["alpha"]) for r in doc["rows"]}
    assert got == {(3, 0, 0.0), (6, 0, 0.0), (3, 12, 0.5), (6, 12, 0.5)}
    for r in doc["rows"]:
        assert r["total"] == r["labels"] + r["unlabelled"]
        assert r["labelled_fraction"] == pytest.approx(r["labels"] / r["total"])
    assert len(doc["means"]) == 4 and doc["settings"]["alpha_with_unlabelled"] == 0.5
    assert "| labels \\ unlabelled | 0 | 12 |" in capsys.readouterr().out


def test_alpha_sweep_smoke_reuses_shared_runs(smoke_dirs: dict[str, Path]) -> None:
    if not (smoke_dirs["runs"] / "l3_u12_a0.5_s0" / "eval.json").exists():
        label_scaling.main(_argv(smoke_dirs))  # run alone: make the shared runs first
    shared = ["l3_u0_a0_s0", "l6_u0_a0_s0", "l3_u12_a0.5_s0", "l6_u12_a0.5_s0"]
    before = {n: (smoke_dirs["runs"] / n / "eval.json").stat().st_mtime_ns for n in shared}
    assert alpha_sweep.main(_argv(smoke_dirs)) == 0
    doc = _check_outputs(smoke_dirs["out"], "alpha_sweep_smoke", alpha_sweep.CSV_COLUMNS, 7)
    after = {n: (smoke_dirs["runs"] / n / "eval.json").stat().st_mtime_ns for n in shared}
    assert before == after  # neither retrained nor re-evaluated
    gated = {(r["labels"], r["alpha"]) for r in doc["rows"] if r["gate"] == "gated"}
    assert gated == {(lab, a) for lab in (3, 6) for a in (0.0, 0.5, 2.0)}
    ungated = [r for r in doc["rows"] if r["gate"] == "ungated"]
    assert [(r["labels"], r["alpha"], r["name"]) for r in ungated] == [
        (6, 2.0, "l6_u12_a2_s0_ungated")]
    cfg = json.loads((Path(ungated[0]["run"]) / "train_config.json").read_text())
    assert cfg["unsup_min_confidence"] == 0.0 and cfg["unsup_start"] == 0.0
    assert all(r["unlabelled"] == (0 if r["alpha"] == 0 else 12) for r in doc["rows"])


def test_quick_and_full_grids_share_runs_and_data() -> None:
    ls_quick = label_scaling.build_runs(label_scaling.PROFILES["quick"])
    assert len(ls_quick) == 12 and len({r.name for r in ls_quick}) == 12
    assert all(r.minutes == 2.0 and r.clock == "cpu" and r.threads == 1 for r in ls_quick)
    assert all((r.alpha > 0) == (r.num_unlabelled > 0) for r in ls_quick)
    a_quick = alpha_sweep.build_runs(alpha_sweep.PROFILES["quick"], "quick")
    assert len(a_quick) == 19
    by_name = {r.name: r for r in ls_quick}
    shared = [r for r in a_quick if r.name in by_name]
    assert len(shared) == 6 and all(r == by_name[r.name] for r in shared)
    assert {s.spec for r in a_quick for s in r.labelled} == {
        label_scaling.box_data("quick")["labelled"]}
    ls_full = label_scaling.build_runs(label_scaling.PROFILES["full"])
    a_full = alpha_sweep.build_runs(alpha_sweep.PROFILES["full"], "full")
    assert len(ls_full) == 72 and len(a_full) == 210
    assert len({r.name for r in ls_full} & {r.name for r in a_full}) == 45
    with pytest.raises(ValueError, match="labels"):
        label_scaling.box_run("quick", 101, 0, 0.0, 0)
    with pytest.raises(ValueError, match="unlabelled"):
        label_scaling.box_run("quick", 10, 1001, 0.5, 0)
