"""``python -m bench auto`` on the smallest data set (fake_1000, 1,000 rows): the JSON's shape,
and an ``auto`` run that fails (``matcher init`` not there yet) or succeeds (a stand-in for it)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from bench import auto

pytestmark = pytest.mark.slow

HEADLINE = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "cluster_precision", "cluster_recall", "cluster_f1",
            "blocking_recall", "pairs", "wall_s")


def _run(tmp_path: Path, runs: str) -> tuple[int, dict]:
    out = tmp_path / "auto.json"
    code = auto.main(["--datasets", "fake_1000", "--runs", runs, "--out", str(out), "--log-level", "WARNING"])
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_hand_and_duckdb_on_fake_1000(spark, tmp_path, capsys):
    code, report = _run(tmp_path, "hand,splink_duckdb")

    assert code == 0
    assert report["command"] == "auto" and report["runs"] == ["hand", "splink_duckdb"] and report["rounds"] == 1
    assert {"cores", "spark", "splink", "duckdb"} <= set(report["machine"]) and "commit" in report["source"]
    assert list(report["datasets"]) == ["fake_1000"]
    fake = report["datasets"]["fake_1000"]
    assert fake["about"]["files"] == ["data/demo/fake_1000.csv"] and fake["about"]["truth_column"] == "cluster"
    for run in ("hand", "splink_duckdb"):
        assert "error" not in fake[run], fake[run]
        assert all(isinstance(fake[run][k], (int, float)) for k in HEADLINE), fake[run]
        assert 0.5 < fake[run]["cluster_f1"] <= 1 and fake[run]["pairs"] > 0
    assert "auto" not in fake
    printed = capsys.readouterr().out
    assert "fake_1000  hand" in printed and "splink_duckdb" in printed


def test_auto_failure_is_one_line_and_does_not_fail_the_command(spark, tmp_path, monkeypatch):
    stand_in = types.ModuleType("matcher.profiling")

    def write_starting_config(paths, *, output, truth_column, name):
        raise RuntimeError("cannot profile\nthis")

    stand_in.write_starting_config = write_starting_config
    monkeypatch.setitem(sys.modules, "matcher.profiling", stand_in)

    code, report = _run(tmp_path, "auto")

    assert code == 0
    result = report["datasets"]["fake_1000"]["auto"]
    assert result["error"] == "RuntimeError: cannot profile this" and result["stage"] == "init"


def test_auto_runs_the_written_config(spark, tmp_path, monkeypatch):
    seen = {}

    def write_starting_config(paths, *, output, truth_column, name):  # stand-in: the hand config, copied
        seen.update(paths=paths, truth_column=truth_column, name=name)
        text = (auto.ROOT / "configs" / "fake_1000.yaml").read_text(encoding="utf-8")
        Path(output).write_text(text.replace("data/demo/fake_1000.csv", str(paths[0])), encoding="utf-8")

    stand_in = types.ModuleType("matcher.profiling")
    stand_in.write_starting_config = write_starting_config
    monkeypatch.setitem(sys.modules, "matcher.profiling", stand_in)

    code, report = _run(tmp_path, "auto")

    assert code == 0
    assert seen == {"paths": [str(auto.ROOT / "data" / "demo" / "fake_1000.csv")], "truth_column": "cluster", "name": "fake_1000"}
    result = report["datasets"]["fake_1000"]["auto"]
    assert "error" not in result, result
    assert result["cluster_f1"] > 0.5 and result["init_s"] >= 0
    assert result["config_summary"]["columns"][0] == {"name": "first_name", "kind": "name"}


def test_unknown_dataset_or_run_is_refused(tmp_path, capsys):
    assert auto.main(["--datasets", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown data set(s) nope" in capsys.readouterr().err
    assert auto.main(["--runs", "hand,ours_spark", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown run(s) ours_spark" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()  # refused before any Spark work
