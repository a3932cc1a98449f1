"""``python -m bench standalone``'s parts: the cluster it starts is gone when its block fails, and the
comparison of two runs' match_ids. (That a cluster run gives a local run's match_ids is
tests/test_cluster.py's; the bench measures it at any size, a suite cannot afford two runs more.)"""

from __future__ import annotations

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
