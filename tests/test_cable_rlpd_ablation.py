"""Tests of benchmarks/cable_rlpd_ablation.py: the smoke profile writes the table, a rerun
resumes (no run repeated), a run made with other arguments is not counted, and every
variant's command line is one cable_rlpd accepts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from benchmarks import cable_rlpd
from benchmarks import cable_rlpd_ablation as abl

torch.set_num_threads(1)


class _Parsed(Exception):
    """Raised instead of recording demonstrations: the command line parsed."""


@pytest.mark.parametrize("variant", list(abl.VARIANTS))
def test_every_variant_command_line_parses(variant, monkeypatch, tmp_path):
    def stop(*args, **kwargs):
        raise _Parsed

    monkeypatch.setattr(cable_rlpd, "record_demos", stop)
    with pytest.raises(_Parsed):
        cable_rlpd.main(abl.run_argv(variant, 0, abl.PROFILES["smoke"], tmp_path))


def test_matches_compares_flags_and_switches():
    argv = abl.run_argv("base", 0, abl.PROFILES["quick"], Path("w"))
    args = {"steps": 3000, "seed": 0, "demos": 51, "eval_episodes": 20, "relative": True,
            "no_backup_entropy": True, "time_limit": True, "velocity": True,
            "init_temperature": 0.01, "fixed_temperature": True, "no_demos": False,
            "no_layer_norm": False, "utd": 4, "critics": 2, "tag": "base_s0_3000",
            "out": "elsewhere", "save_dir": "elsewhere/agents"}
    assert abl.matches({"args": args}, argv)
    assert not abl.matches({"args": args | {"no_demos": True}}, argv)
    assert not abl.matches({"args": args | {"steps": 2000}}, argv)
    assert not abl.matches({"args": args | {"velocity": False}}, argv)
    assert not abl.matches({}, argv)


def test_short_task_runs_name_it_and_default_runs_do_not():
    short = abl.run_argv("base", 0, abl.PROFILES["quick"] | {"env_id": "S3K-CableInsertShort-v0"},
                         Path("w"))
    assert short[short.index("--env-id") + 1] == "S3K-CableInsertShort-v0"
    default = abl.run_argv("base", 0, abl.PROFILES["quick"], Path("w"))
    assert "--env-id" not in default  # runs made before --env-id existed still match
    args = {"steps": 3000, "seed": 0, "demos": 51, "eval_episodes": 20, "relative": True,
            "no_backup_entropy": True, "time_limit": True, "velocity": True,
            "init_temperature": 0.01, "fixed_temperature": True, "utd": 4, "critics": 2,
            "tag": "base_s0_3000", "env_id": "S3K-CableInsertShort-v0"}
    assert abl.matches({"args": args}, short)
    assert not abl.matches({"args": args | {"env_id": "S3K-CableInsert-v0"}}, short)


def test_run_command_drops_an_absolute_table_directory():
    cmd = "python -m benchmarks.cable_rlpd_ablation --quick --out /tmp/x --steps 6"
    assert abl.run_command(cmd) == "python -m benchmarks.cable_rlpd_ablation --quick --steps 6"
    assert abl.run_command("python -m x --out=/abs/dir") == "python -m x"
    assert abl.run_command("python -m x --out benchmarks/results") == \
        "python -m x --out benchmarks/results"  # relative: kept
    assert abl.run_command(None) is None


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_smoke_table_and_resume(tmp_path, monkeypatch):
    work = tmp_path / "work"
    argv = ["--smoke", "--variants", "base", "no_layer_norm", "--work-dir", str(work)]
    assert abl.main(argv) == 0
    out = work / "smoke"
    rows = _read(out / "cable_rlpd_ablation_smoke.csv")
    assert [r["variant"] for r in rows] == ["base", "no_layer_norm"]
    assert list(rows[0]) == abl.CSV_COLUMNS
    for row in rows:
        assert row["seeds_done"] == "0" and row["seeds_missing"] == ""
        assert row["eval_episodes"] == "2" and row["steps"] == "60"
        assert 0.0 <= float(row["eval_success_mean"]) <= 1.0
        assert 0.0 <= float(row["train_success_last1k_mean"]) <= 1.0
        assert int(row["train_episodes_last1k"]) >= 1
        assert float(row["agent_steps_per_s_mean"]) > 0
    doc = json.loads((out / "cable_rlpd_ablation_smoke.json").read_text())
    assert doc["complete"] and doc["missing"] == [] and doc["missing_variants"] == []
    assert doc["machine"]["command"]
    assert doc["run_commands"] == [doc["runs"][0]["command"]]  # both runs: one command
    layer_norm = {r["variant"]: r["config"]["layer_norm"] for r in doc["runs"]}
    assert layer_norm == {"base": True, "no_layer_norm": False}
    md = (out / "cable_rlpd_ablation_smoke.md").read_text()
    assert "| base |" in md and "| no_layer_norm |" in md
    assert (out / "cable_rlpd_ablation_smoke.png").stat().st_size > 0

    # Resume: the finished runs are not repeated.
    def fail(argv):
        raise AssertionError(f"run repeated: {argv}")

    monkeypatch.setattr(cable_rlpd, "main", fail)
    assert abl.main(argv) == 0
    assert _read(out / "cable_rlpd_ablation_smoke.csv") == rows

    # A run made with other arguments does not count; the table says which runs are missing.
    json_path = out / "cable_rlpd_no_layer_norm_s0_60.json"
    run = json.loads(json_path.read_text())
    run["args"]["no_demos"] = True
    json_path.write_text(json.dumps(run))
    assert abl.main([*argv, "--aggregate-only"]) == 0
    assert [r["variant"] for r in _read(out / "cable_rlpd_ablation_smoke.csv")] == ["base"]
    doc = json.loads((out / "cable_rlpd_ablation_smoke.json").read_text())
    assert not doc["complete"]
    assert doc["missing"] == [{"variant": "no_layer_norm", "seed": 0}]
    assert doc["missing_variants"] == ["no_layer_norm"]
