"""The run report: one self-contained HTML file with the metrics and the charts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from conftest import REPO

from matcher.evaluation.report import explained_pairs, precision_recall_points


def _specs(document: str) -> dict:
    return json.loads(re.search(r"const specs = (.*);\n", document).group(1))


def test_precision_recall_points_rank_pairs_by_weight_with_end_to_end_recall(spark):
    pairs = spark.createDataFrame(
        [(5.0, "a", "a"), (5.0, "b", "c"), (2.0, "d", "d"), (-3.0, "e", "f")],
        ["match_weight", "truth_l", "truth_r"],
    )
    points = precision_recall_points(pairs, "truth", true_pairs=4)  # 2 true pairs scored, 2 never blocked
    assert [(p["match_weight"], p["precision"], p["recall"]) for p in points] == [
        (5.0, 0.5, 0.25), (2.0, 2 / 3, 0.5), (-3.0, 0.5, 0.5),
    ]


def test_explained_pairs_are_the_strongest_the_weakest_and_the_nearest_the_threshold_read_whole(spark, tmp_path):
    weights = [9.0, 4.0, 1.5, 0.5, -0.2, -6.0, -12.0]
    rows = [(f"s:{i}", f"t:{i % 3}", w, f"name{i}") for i, w in enumerate(weights)]
    rows.append(("s:0", "t:1", 3.9, "other"))  # its ids are both in chosen pairs; it is not one
    spark.createDataFrame(rows, ["record_id_l", "record_id_r", "match_weight", "first_name_l"]).write.parquet(str(tmp_path / "p"))
    chosen = explained_pairs(spark.read.parquet(str(tmp_path / "p")), threshold_weight=0.4, n=4)
    assert [(p["record_id_l"], p["match_weight"], p["first_name_l"]) for p in chosen] == [
        ("s:0", 9.0, "name0"), ("s:6", -12.0, "name6"), ("s:3", 0.5, "name3"), ("s:4", -0.2, "name4"),
    ]
    assert explained_pairs(spark.read.parquet(str(tmp_path / "p")).limit(0), 0.0) == []


@pytest.mark.slow
def test_run_writes_a_self_contained_report_with_the_metrics_and_every_chart(fake_1000_run):
    document = fake_1000_run.report.read_text(encoding="utf-8")
    metrics = json.loads(fake_1000_run.metrics.read_text(encoding="utf-8"))

    assert not re.search(r"<script[^>]+src=", document), "scripts must be inline"
    assert not re.search(r"""(src|href)=["']?https?:""", document)
    for value in (metrics["pairwise"]["precision"], metrics["clusters"]["f1"], metrics["blocking_recall"]):
        assert f"{value:.4f}" in document
    assert f"<td>{metrics['n_clusters']}</td>" in document

    specs = _specs(document)
    assert {"match-weights", "m-u-parameters", "precision-recall"} <= specs.keys()
    assert len([name for name in specs if name.startswith("waterfall-")]) == 4
    chosen = specs["precision-recall"]["layer"][1]["data"]["values"][0]
    assert (chosen["precision"], chosen["recall"]) == (metrics["pairwise"]["precision"], metrics["pairwise"]["recall"])
    curve = specs["precision-recall"]["layer"][0]["data"]["values"]
    assert curve[-1]["recall"] == pytest.approx(metrics["blocking_recall"])
    levels = {r["comparison_name"] for r in specs["match-weights"]["data"]["values"]}
    assert {"first_name", "surname", "dob", "city", "email"} <= levels


@pytest.mark.slow
def test_report_leaves_record_values_out(fake_1000_run):
    document = fake_1000_run.report.read_text(encoding="utf-8")
    people = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv")
    emails = people["email"].dropna().unique()
    assert [e for e in emails if e in document] == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the report's own vega offline")
def test_every_report_chart_renders_to_svg_with_the_inlined_libraries(fake_1000_run):
    completed = subprocess.run(
        ["node", str(REPO / "tests" / "js" / "render_report_charts.js"), str(fake_1000_run.report)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rendered = dict(line.split() for line in completed.stdout.splitlines())
    assert len(rendered) == 7 and all(int(size) > 1000 for size in rendered.values()), rendered


@pytest.mark.slow
def test_evaluate_writes_the_report_again(fake_1000_run, cli, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(fake_1000_run.root, folder)
    (folder / "report.html").unlink()
    result = cli("evaluate", "--config", REPO / "configs" / "fake_1000.yaml", "--output", folder)
    assert result.code == 0, result.err
    assert "precision-recall" in _specs((folder / "report.html").read_text(encoding="utf-8"))


def test_the_model_setup_section_shows_what_training_decided_and_its_warnings():
    from matcher.evaluation.report import model_setup_section

    metadata = {
        "setup": {"automatic": ["blocking_rules"], "blocking": {
            "budget_pairs": 316227, "chosen": [{"rule": ["surname", "dob"], "pairs": 1234, "recall": 0.91, "new_pairs": 1000, "adds_recall": 0.0123}]}},
        "em_sessions": [{"blocking_rule": "l.dob = r.dob", "pairs": 99, "iterations": 7, "estimated": ["surname"],
                         "checks": {"findings": [{"comparison": "surname", "problem": "m of exact below u <b>", "detail": "m 0.01"}],
                                    "recovery": "restarts"}}],
        "lambda": {"deterministic": 0.001, "mixture": 0.003, "used": "mixture"},
        "estimated_threshold": {"match_weight": 1.5, "expected_precision": 0.97},
    }
    section = model_setup_section(metadata)
    for fragment in ("Chosen from the data: blocking_rules", "[&quot;surname&quot;, &quot;dob&quot;]", "0.9100", "adds_recall", "0.0123",
                     "l.dob = r.dob",
                     "mixture", "expected_precision", "surname: m of exact below u &lt;b&gt;", "recovery: restarts"):
        assert fragment in section, fragment
    assert model_setup_section({}) == ""
