"""``matcher watch``: each delta dropped into an inbox is applied once, in name order, as a new
generation of the run; refused deltas are set aside with their reason; a stopped watcher resumes
without applying a file twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

CONFIG = REPO / "configs" / "fake_1000.yaml"


def delta(rows: slice, offset: int) -> pd.DataFrame:
    """fake_1000's ``rows`` again under new primary keys: new records for existing people."""
    frame = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv").iloc[rows].copy()
    frame["unique_id"] += offset
    return frame


def generations(output: Path) -> list[str]:
    return sorted(p.name for p in output.iterdir() if p.is_dir())


def ledger(generation: Path) -> dict:
    return json.loads((generation / "watch.json").read_text(encoding="utf-8"))


def rows(generation: Path) -> int:
    return len(pd.read_parquet(generation / "matches", columns=["unique_id"]))


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    delta(slice(0, 10), 100_000).to_csv(folder / "001.csv", index=False)
    delta(slice(10, 20), 200_000).to_csv(folder / "002.csv", index=False)
    delta(slice(20, 25), 300_000).drop(columns=["surname"]).to_csv(folder / "003.csv", index=False)
    (folder / ".partial-upload").write_text("ignored", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_watch_applies_each_delta_once_in_order_and_resumes_after_a_stop(cli, fake_1000_run, inbox, tmp_path):
    output = tmp_path / "generations"

    def watch():
        result = cli("watch", "--config", CONFIG, "--run", fake_1000_run.root, "--inbox", inbox, "--output", output, "--once")
        assert result.code == 0, result.err
        return result.out

    out = watch()
    assert "inbox: 2 applied, 1 rejected, 0 applied before a stop" in out
    assert f"latest run: {output / '000002'}" in out
    assert generations(output) == ["000001", "000002"]
    assert ledger(output / "000001") == {"delta": "001.csv", "previous": str(fake_1000_run.root)}
    assert ledger(output / "000002") == {"delta": "002.csv", "previous": str(output / "000001")}
    assert rows(output / "000002") == 1020, "the second generation holds both deltas"
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["001.csv", "002.csv"]
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == ["003.csv", "003.csv.reason.txt"]
    assert "surname" in (inbox / "rejected" / "003.csv.reason.txt").read_text(encoding="utf-8")
    assert sorted(p.name for p in inbox.iterdir()) == [".partial-upload", "processed", "rejected"]

    # killed after generation 2 was complete but before 002.csv moved: moved now, not applied again
    shutil.move(inbox / "processed" / "002.csv", inbox / "002.csv")
    assert "0 applied, 0 rejected, 1 applied before a stop" in watch()
    assert generations(output) == ["000001", "000002"] and (inbox / "processed" / "002.csv").exists()

    # killed while writing generation 3: the incomplete folder is removed and the delta applied anew
    shutil.copytree(output / "000002", output / "000003")
    (output / "000003" / "summary.json").unlink()
    delta(slice(30, 33), 400_000).to_csv(inbox / "004.csv", index=False)
    assert "1 applied, 0 rejected, 0 applied before a stop" in watch()
    assert generations(output) == ["000001", "000002", "000003"]
    assert ledger(output / "000003") == {"delta": "004.csv", "previous": str(output / "000002")}
    assert rows(output / "000003") == 1023


def test_watch_needs_a_completed_run(cli, tmp_path):
    result = cli("watch", "--config", CONFIG, "--run", tmp_path / "absent", "--inbox", tmp_path, "--once")
    assert result.code == 2
    assert result.err_lines == [f"matcher: error: {tmp_path / 'absent'}: no completed run here (summary.json missing); run 'matcher run' first"]


def test_the_watch_job_takes_glue_style_arguments(spark, fake_1000_run, tmp_path, capsys):
    from matcher.glue_job import run_job

    inbox, output = tmp_path / "inbox", tmp_path / "generations"
    inbox.mkdir()
    delta(slice(0, 3), 500_000).to_csv(inbox / "a.csv", index=False)
    result = run_job("watch", ["jobs/watch.py", "--JOB_NAME", "w", "--config", str(CONFIG), "--run", str(fake_1000_run.root),
                               "--inbox", str(inbox), "--output", str(output), "--once", "true"])
    assert result.startswith("inbox: 1 applied, 0 rejected")
    assert capsys.readouterr().out.strip().startswith("w: watch done: inbox: 1 applied")
    assert rows(output / "000001") == 1003 and (inbox / "processed" / "a.csv").exists()


def test_a_config_that_does_not_fit_the_run_stops_the_watcher_and_rejects_no_file(cli, fake_1000_run, inbox, tmp_path):
    import yaml

    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["precision_recall_tradeoff"] = 0.9  # another threshold than the run's: every delta would fail alike
    config["inputs"][0]["path"] = str(REPO / config["inputs"][0]["path"])
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    output = tmp_path / "generations"
    result = cli("watch", "--config", path, "--run", fake_1000_run.root, "--inbox", inbox, "--output", output, "--once")
    assert result.code == 2 and "existing run used threshold" in result.err and len(result.err_lines) == 1
    assert sorted(p.name for p in inbox.iterdir()) == [".partial-upload", "001.csv", "002.csv", "003.csv"]
    assert generations(output) == []
