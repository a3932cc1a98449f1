"""``python -m bench standalone`` end to end on 1,000 records: a local standalone cluster (master + two
workers) and a local run give the same match_ids, and the cluster is gone afterwards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench import standalone

pytestmark = pytest.mark.slow


def processes_mentioning(*markers: str) -> list[str]:
    """Command lines of running processes that contain any of ``markers``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in text for marker in markers):
            found.append(text)
    return found


def test_cluster_and_local_runs_give_the_same_match_ids_and_the_cluster_stops(tmp_path):
    out = tmp_path / "standalone.json"
    code = standalone.main(["--rows", "1000", "--seed", "3", "--workdir", str(tmp_path / "work"), "--out", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0
    assert report["same_match_ids"] is True and report["differing_records"] == 0 and report["records"] == 1000
    assert report["max_parameter_diff"] is not None and report["max_parameter_diff"] < 1e-6
    assert set(report["wall_s"]) == {"cluster", "local"} and report["workers"] == 2
    master = report["runs"]["cluster"]["master"]
    port = master.rsplit(":", 1)[1]
    assert not processes_mentioning(master, f"--port {port}", str(tmp_path))
    assert list((tmp_path / "work").glob("worker-*/app-*/*/stderr")), "no executor ran on the workers"


def test_the_cluster_is_stopped_when_the_block_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with standalone.standalone_cluster(tmp_path, workers=1, memory="1g") as cluster:
            assert cluster.alive_workers() == 1
            raise KeyboardInterrupt
    assert all(p.poll() is not None for p in cluster.processes)
    assert not processes_mentioning(cluster.master, str(tmp_path))


def test_compare_matches_counts_records_with_another_match_id(tmp_path):
    import pandas as pd

    for name, ids in {"a": ["r1", "r1", "r3"], "b": ["r1", "r2", "r3"]}.items():
        (tmp_path / name / "matches").mkdir(parents=True)
        pd.DataFrame({"record_id": ["r1", "r2", "r3"], "match_id": ids}).to_parquet(tmp_path / name / "matches" / "p.parquet")
    result = standalone.compare_matches(tmp_path / "a", tmp_path / "b")
    assert result["same_match_ids"] is False and result["differing_records"] == 1 and result["clusters"] == [2, 3]
