"""The Neptune bulk-loader CSV describes exactly the graph the Gremlin writer produces."""

from __future__ import annotations

import csv

from gremlin_python.process.anonymous_traversal import traversal
from test_graph_writer import MATCHES, PAIR_ROWS, PAIRS, ROWS, make_config

from matcher.graph.bulk_csv import export_bulk_csv, read_bulk_csv
from matcher.graph.connection import connect
from matcher.graph.queries import snapshot
from matcher.graph.server import clear_graph
from matcher.graph.writer import cluster_table, load_graph


def test_bulk_csv_and_gremlin_writer_produce_the_same_graph(spark, gremlin_server, tmp_path):
    clear_graph(gremlin_server.endpoint)
    config = make_config(gremlin_server.endpoint)
    matches, pairs = spark.createDataFrame(ROWS, MATCHES), spark.createDataFrame(PAIR_ROWS, PAIRS)
    load_graph(matches, config, pairs=pairs, threshold=0.5)
    counts = export_bulk_csv(cluster_table(matches, config, pairs=pairs, threshold=0.5), tmp_path / "csv")

    from_csv = read_bulk_csv(tmp_path / "csv")
    from_server = snapshot(traversal().with_remote(connect(config.graph)))
    assert from_csv == from_server
    assert counts["vertices-SourceRecord.csv"] == 4 and counts["edges-same_as.csv"] == 1
    assert sum(counts.values()) == 13 + 14


def test_bulk_csv_headers_follow_the_neptune_format(spark, tmp_path):
    config = make_config("ws://unused:8182/gremlin")
    matches, pairs = spark.createDataFrame(ROWS, MATCHES), spark.createDataFrame(PAIR_ROWS, PAIRS)
    export_bulk_csv(cluster_table(matches, config, pairs=pairs, threshold=0.5), tmp_path / "csv")

    def header(name):
        with open(tmp_path / "csv" / name, newline="", encoding="utf-8") as f:
            return next(csv.reader(f))

    assert header("vertices-Customer.csv") == ["~id", "~label", "confidence:Double", "match_id:String", "size:Long"]
    assert header("vertices-SourceRecord.csv") == ["~id", "~label", "match_confidence_score:Double", "match_id:String", "record_id:String", "source:String"]
    assert header("edges-member_of.csv") == ["~id", "~from", "~to", "~label", "confidence:Double"]
    assert header("edges-has_email.csv") == ["~id", "~from", "~to", "~label"]


def test_bulk_csv_cells_are_written_verbatim_for_neptune_not_escaped_for_spreadsheets(spark, tmp_path):
    # Neptune stores a cell as it is: a formula escape ('-5) would change the loaded id and value
    config = make_config("ws://unused:8182/gremlin")
    rows = [(-5, "=cmd@x.com", None, None, "ann", -5, 0.9), (6, "=cmd@x.com", None, None, "anne", -5, 0.9)]
    matches = spark.createDataFrame(rows, MATCHES)
    pairs = spark.createDataFrame([(-5, 6, 0.9)], PAIRS)
    export_bulk_csv(cluster_table(matches, config, pairs=pairs, threshold=0.5), tmp_path / "csv")

    with open(tmp_path / "csv" / "vertices-SourceRecord.csv", newline="", encoding="utf-8") as f:
        assert ["-5", "SourceRecord", "0.9", "-5", "-5", "people"] in list(csv.reader(f))
    vertices, edges = read_bulk_csv(tmp_path / "csv")
    assert vertices["email:=cmd@x.com"] == {"label": "Email", "properties": {"value": "=cmd@x.com"}}
    assert edges["-5|same_as|6"]["from"] == "-5"
