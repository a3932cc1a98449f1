"""``matcher load-graph`` and ``matcher graph-server`` from the command line."""

from __future__ import annotations

import json

import yaml
from conftest import assert_one_line_error
from gremlin_python.process.anonymous_traversal import traversal
from test_graph_writer import MATCHES, PAIR_ROWS, PAIRS, ROWS, make_config

from matcher.graph.connection import connect
from matcher.graph.queries import snapshot
from matcher.graph.server import clear_graph


def write_run(spark, folder, *, customers: bool) -> None:
    spark.createDataFrame(ROWS, MATCHES).write.parquet(str(folder / "matches"))
    spark.createDataFrame(PAIR_ROWS, PAIRS).write.parquet(str(folder / "pairs"))
    if customers:
        spark.createDataFrame([(1, "ann", 2, "crm"), (3, "bob", 1, "crm"), (4, "zed", 1, "crm")],
                              "match_id long, first_name string, n_records int, source_systems string").write.parquet(str(folder / "customers"))
    (folder / "summary.json").write_text(json.dumps({"threshold_match_probability": 0.5}))


def config_file(tmp_path, endpoint: str):
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(make_config(endpoint).model_dump(mode="json", exclude_none=True)))
    return path


def test_load_graph_writes_the_run_with_golden_profiles_and_reports_counts(spark, cli, gremlin_server, tmp_path):
    clear_graph(gremlin_server.endpoint)
    run = tmp_path / "run"
    run.mkdir()
    write_run(spark, run, customers=True)
    result = cli("load-graph", "--config", config_file(tmp_path, gremlin_server.endpoint), "--output", run)
    assert result.code == 0, result.err
    assert "graph now: Address 2, Customer 3, Email 2, Phone 2, SourceRecord 4, has_address 3" in result.out
    report = json.loads((run / "graph.json").read_text())
    assert report["graph"]["edges"]["member_of"] == 4
    vertices, _ = snapshot(traversal().with_remote(connect(make_config(gremlin_server.endpoint).graph)))
    assert vertices["customer:1"]["properties"] == {"match_id": "1", "first_name": "ann", "n_records": 2, "source_systems": "crm"}


def test_load_graph_without_a_graph_section_is_a_one_line_config_error(spark, cli, tmp_path, write_config):
    config = make_config("ws://x:1/gremlin").model_dump(mode="json", exclude_none=True)
    del config["graph"]
    result = cli("load-graph", "--config", write_config(config), "--output", tmp_path)
    assert result.code == 2
    assert_one_line_error(result, "needs a 'graph:' section")


def test_load_graph_without_a_finished_run_says_so(cli, gremlin_server, tmp_path):
    result = cli("load-graph", "--config", config_file(tmp_path, gremlin_server.endpoint), "--output", tmp_path / "empty")
    assert_one_line_error(result, "summary.json missing")


def test_graph_server_status_needs_no_config(cli, gremlin_server):
    result = cli("graph-server", "status", "--port", str(gremlin_server.port))  # started from another folder
    assert result.code == 0
    assert result.out.strip().endswith(f"but a Gremlin server answers at {gremlin_server.endpoint}")
    result = cli("graph-server", "status", "--port", "9")
    assert result.out.startswith("Gremlin Server not running")



def test_load_graph_reads_a_remote_run_folder_and_its_change_log(spark, cli, gremlin_server, tmp_path):
    # a file:// run folder takes the remote path (staged small files, tables read through Hadoop) without S3
    clear_graph(gremlin_server.endpoint)
    run = tmp_path / "run"
    run.mkdir()
    write_run(spark, run, customers=True)
    config = config_file(tmp_path, gremlin_server.endpoint)
    result = cli("load-graph", "--config", config, "--output", run.as_uri())
    assert result.code == 0, result.err
    assert "SourceRecord 4" in result.out
    assert json.loads((run / "graph.json").read_text())["graph"]["edges"]["member_of"] == 4

    log = {"records": [{"record_id": 4, "change": "deleted", "old_match_id": 4, "new_match_id": None}]}
    (run / "changes.json").write_text(json.dumps(log))
    result = cli("load-graph", "--config", config, "--output", run.as_uri(), "--changes-only")
    assert result.code == 0, result.err
    report = json.loads((run / "graph.json").read_text())
    assert report["changes"] == {"clusters_written": 1, "records_removed": 1}
    assert report["graph"]["vertices"]["SourceRecord"] == 3


def test_load_graph_on_a_remote_folder_without_a_finished_run_names_the_uri(cli, gremlin_server, tmp_path):
    (tmp_path / "empty").mkdir()
    uri = (tmp_path / "empty").as_uri()
    result = cli("load-graph", "--config", config_file(tmp_path, gremlin_server.endpoint), "--output", uri)
    assert_one_line_error(result, f"{uri}: no completed match run here (summary.json missing)")
