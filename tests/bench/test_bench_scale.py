"""bench.scale: the accuracy it reports, the process-tree memory sampler, the cap, the cost growth (no Spark)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import scale


@pytest.fixture
def truth(tmp_path: Path) -> pd.Series:
    # persons: 1 = {crm:a, crm:b, shop:1}, 2 = {shop:2, loyalty:x}, 3 = {loyalty:y}
    frame = pd.DataFrame({"source": ["crm", "crm", "shop", "shop", "loyalty", "loyalty"],
                          "record_id": ["a", "b", "1", "2", "x", "y"], "person_id": [1, 1, 1, 2, 2, 3]})
    frame.to_parquet(tmp_path / "truth.parquet")
    return scale.read_truth(tmp_path / "truth.parquet")


def test_evaluate_counts_pairs_within_clusters_and_matched_pairs(truth: pd.Series) -> None:
    ids = pd.Series(["crm:a", "crm:b", "shop:1", "shop:2", "loyalty:x", "loyalty:y"])
    clusters = pd.Series(["c1", "c1", "c2", "c3", "c3", "c3"])  # splits person 1, glues person 3 to 2
    result = scale.evaluate(ids, clusters, pd.Series(["crm:a", "shop:2", "crm:a"]),
                            pd.Series(["crm:b", "loyalty:y", "unknown:z"]), truth)
    assert result["true_pairs"] == 4  # 3 within person 1, 1 within person 2
    # predicted cluster pairs: c1 1 (true), c3 3 (1 true)
    assert result["clusters"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    # matched pairs: a-b true, 2-y false, a-unknown false
    assert result["pairwise"]["precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert result["pairwise"]["recall"] == 0.25
    assert result["largest_cluster"] == 3 and result["largest_true_entity"] == 3


def test_evaluate_perfect_run(truth: pd.Series) -> None:
    ids = pd.Series(truth.index)
    pairs_l, pairs_r = pd.Series(["crm:a", "crm:a", "crm:b", "shop:2"]), pd.Series(["crm:b", "shop:1", "shop:1", "loyalty:x"])
    result = scale.evaluate(ids, pd.Series(truth.to_numpy()), pairs_l, pairs_r, truth)
    assert result["pairwise_f1"] == 1.0 and result["cluster_f1"] == 1.0


def test_evaluate_ours_reads_a_run_folder_at_its_threshold(tmp_path: Path, truth: pd.Series) -> None:
    run = tmp_path / "run"
    (run / "matches").mkdir(parents=True)
    (run / "pairs").mkdir()
    pd.DataFrame({"record_id": list(truth.index), "match_id": ["m1", "m1", "m1", "m2", "m2", "m3"]}) \
        .to_parquet(run / "matches" / "part-0.parquet")
    pd.DataFrame({"record_id_l": ["crm:a", "shop:2"], "record_id_r": ["crm:b", "loyalty:y"],
                  "match_probability": [0.9, 0.2]}).to_parquet(run / "pairs" / "part-0.parquet")
    (run / "summary.json").write_text(json.dumps({"threshold_match_probability": 0.5, "n_pairs": 2}))
    result = scale.evaluate_ours(run, truth)
    assert result["matched_pairs"] == 1 and result["pairwise"]["precision"] == 1.0
    assert result["cluster_f1"] == 1.0


CHILD = """
import subprocess, sys, time
block = bytearray(200 * 1024 * 1024)  # 200 MB in this process
child = subprocess.Popen([sys.executable, "-c", "b = bytearray(150 * 1024 * 1024); import time; time.sleep(3)"])
child.wait()
"""


def test_run_measured_sums_the_process_tree(tmp_path: Path) -> None:
    measured = scale.run_measured([sys.executable, "-c", CHILD], tmp_path / "log", interval_s=0.2)
    assert measured.returncode == 0 and not measured.capped
    assert measured.peak_rss_gb > 0.33  # both processes' blocks, not just the parent's 0.2 GB


SPAWNING_JVM = """
public class Spawn {
    public static void main(String[] args) throws Exception {
        byte[] held = new byte[400 * 1024 * 1024];
        for (int i = 0; i < held.length; i += 4096) held[i] = 1;  // 400 MB resident
        long end = System.currentTimeMillis() + 4000;
        while (System.currentTimeMillis() < end) new ProcessBuilder("true").start().waitFor();
        System.out.println(held[4096]);
    }
}
"""


def test_a_jvm_starting_programs_is_not_counted_twice(tmp_path: Path) -> None:
    # between spawn and exec a JVM's child reads as a copy of the JVM's memory (seen as 7.8
    # and 10.3 GB peaks of 1M runs whose JVM held 3.4 and 5.2 GB); the JVM spawns ~1,000 times here
    source = tmp_path / "Spawn.java"
    source.write_text(SPAWNING_JVM, encoding="utf-8")
    measured = scale.run_measured(["java", "-Xmx600m", str(source)], tmp_path / "log", interval_s=0.002)
    assert measured.returncode == 0, (tmp_path / "log").read_text()
    assert 0.4 < measured.peak_rss_gb < 0.75  # the JVM once: 400 MB held plus its own footprint


def test_run_measured_stops_the_tree_at_the_cap(tmp_path: Path) -> None:
    measured = scale.run_measured([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log", cap_s=1,
                                  interval_s=0.2)
    assert measured.capped and measured.wall_s < 30
    fields = scale._measured_fields(measured, 1)
    assert fields["wall_s"] is None and fields["capped_s"] == 1


def test_cost_growth_and_markdown() -> None:
    sizes = {"1000": {"ours_cli": {"wall_s": 10.0, "peak_rss_gb": 1.0}},
             "5000": {"ours_cli": {"wall_s": 20.0, "peak_rss_gb": 1.5},
                      "splink_spark_stock": {"wall_s": None, "capped_s": 900}}}
    growth = scale.cost_growth(sizes)
    assert growth["ours_cli"]["5000/1000"] == {"rows_ratio": 5.0, "time_ratio": 2.0, "memory_ratio": 1.5}
    assert growth["splink_spark_stock"]["5000/1000"]["time_ratio"] is None
    sizes["1000"]["splink_spark_stock"] = {"wall_s": 3.0, "peak_rss_gb": 1.0}
    sizes["5000"]["splink_spark_stock"]["peak_rss_gb"] = 2.0  # a capped run's memory is no growth figure
    assert scale.cost_growth(sizes)["splink_spark_stock"]["5000/1000"]["memory_ratio"] is None
    table = scale.markdown({"sizes": sizes, "cost_growth": growth})
    assert "capped at 900" in table and "| ours_cli | 5000/1000 | 5.0 | 2.0 | 1.5 |" in table


def test_append_keeps_earlier_sizes(tmp_path: Path) -> None:
    earlier = tmp_path / "scale.json"
    assert scale._start_report(earlier)["sizes"] == {}  # nothing there yet: a new report
    earlier.write_text(json.dumps({"sizes": {"1000": {"ours_cli": {"wall_s": 1.0}}}, "calls": [{}]}))
    report = scale._start_report(earlier)
    assert report["sizes"] == {"1000": {"ours_cli": {"wall_s": 1.0}}} and len(report["calls"]) == 2
    assert "load_average" in report["calls"][-1]
