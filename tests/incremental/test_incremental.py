"""match-incremental: new, updated and deleted records against a matched run, with stable match_ids.

The model is hand-made (no training), so every expected id below follows from the data:
two records match when they share a ``name`` or an ``email`` (weight about +2.2 for one
agreement, +13 for two; threshold probability 0.5), and blocking is on each column.

The existing run (``matcher match`` with that model) holds these clusters::

    1: {1 ann a1, 2 ann a2}            3: {3 bob b3, 4 bob b4}        5: {5 cy c5, 6 dan c5}
    7: {7 eve e7}                      8: {8 fay f8, 9 fay g9, 10 gus g9}
    25: {25 max m25}                   30: {30 lu l30, 31 lu l31, 32 lu l32}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error

from matcher.config.transform import GraphSpec, config_from_dict
from matcher.harmonize.ingest import read_inputs
from matcher.incremental.task import match_incremental_task
from matcher.matching.stable_ids import stable_match_ids
from matcher.model.artifact import TrainedModel, make_linker
from matcher.model.comparisons import splink_settings
from matcher.pipeline import match_task
from matcher.runtime.run_folder import RunFolder

COLUMNS = ["id", "name", "email"]
EXISTING = [
    (1, "ann", "a1"), (2, "ann", "a2"), (3, "bob", "b3"), (4, "bob", "b4"), (5, "cy", "c5"), (6, "dan", "c5"),
    (7, "eve", "e7"), (8, "fay", "f8"), (9, "fay", "g9"), (10, "gus", "g9"), (25, "max", "m25"),
    (30, "lu", "l30"), (31, "lu", "l31"), (32, "lu", "l32"),
]
# run 1: a join (12), a tie bridge (13), a bridge won by the larger cluster (40), an update that
# moves a record (6), two new records matching each other (15, 16), a delete that splits cluster 8 (9)
NEW_1 = [(12, "eve", "e12"), (13, "ann", "b3"), (40, "max", "l31"), (6, "dan", "e7"), (15, "ivy", "i15"), (16, "ivy", "i16")]
DELETE_1 = [9]
# run 2, on top of run 1: an update that splits cluster 1 again (13), a join (17), a delete (16)
NEW_2 = [(13, "ann", "zz13"), (17, "gus", "g17")]
DELETE_2 = [16]


def write_csv(path: Path, rows, columns=COLUMNS) -> Path:
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def config_for(path: Path, *, term_frequency: bool = False):
    return config_from_dict({
        "name": "incremental",
        "inputs": [{"name": "people", "path": str(path), "format": "csv"}],
        "primary_key": "id",
        "columns": [{"name": "name", "kind": "exact", "term_frequency": term_frequency}, {"name": "email", "kind": "exact"}],
        "blocking_rules": [["name"], ["email"]],
        "training": {"deterministic_rules": [["name", "email"]], "em_blocking_rules": [["name"]]},
        "precision_recall_tradeoff": 0.5,
    })


def hand_made_model(spark, config) -> TrainedModel:
    """λ = 0.01; per column m/u = 0.9/0.001 when equal, 0.5/0.999 when not."""
    settings = splink_settings(config)
    comparisons = [c.configure(m_probabilities=[0.9, 0.5], u_probabilities=[0.001, 0.999]) for c in settings.comparisons]
    settings = dataclasses.replace(settings, comparisons=comparisons, probability_two_random_records_match=0.01)
    linker = make_linker(read_inputs(spark, config), config, TrainedModel(settings))
    return TrainedModel(linker.misc.save_model_to_json(), {"config_hash": config.model_hash()})


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """The existing run, run 1 on top of it (through the CLI's function) and run 2 on top of run 1."""
    base = tmp_path_factory.mktemp("incremental")
    config = config_for(write_csv(base / "existing.csv", EXISTING))
    existing = RunFolder(base / "existing")
    hand_made_model(spark, config).save(existing.model)
    match_task(config, existing, spark)
    first, second = RunFolder(base / "run1"), RunFolder(base / "run2")
    match_incremental_task(config, existing, str(write_csv(base / "new1.csv", NEW_1)), first, spark,
                           delete_path=str(write_csv(base / "delete1.csv", [(k,) for k in DELETE_1], ["id"])))
    match_incremental_task(config, first, str(write_csv(base / "new2.csv", NEW_2)), second, spark,
                           delete_path=str(write_csv(base / "delete2.csv", [(k,) for k in DELETE_2], ["id"])))
    return {"base": base, "config": config, "existing": existing, "first": first, "second": second}


def clusters(spark, folder: RunFolder) -> dict[int, list[int]]:
    rows = spark.read.parquet(str(folder.matches)).select("id", "match_id").collect()
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(row["match_id"], []).append(row["id"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def changes(folder: RunFolder) -> dict:
    return json.loads((folder.root / "changes.json").read_text(encoding="utf-8"))


def record_changes(folder: RunFolder) -> dict[int, tuple]:
    return {r["record_id"]: (r["change"], r["old_match_id"], r["new_match_id"]) for r in changes(folder)["records"]}


def test_the_existing_run_has_the_clusters_the_hand_made_model_implies(spark, runs):
    assert clusters(spark, runs["existing"]) == {
        1: [1, 2], 3: [3, 4], 5: [5, 6], 7: [7], 8: [8, 9, 10], 25: [25], 30: [30, 31, 32],
    }


def test_first_run_keeps_untouched_ids_and_applies_the_survival_rules(spark, runs):
    assert clusters(spark, runs["first"]) == {
        1: [1, 2, 3, 4, 13],  # bridge of two clusters of 2: tie, the smallest id (1) survives
        5: [5],  # lost record 6 to an update, keeps its id
        7: [6, 7, 12],  # joined by new 12 and by the new version of 6
        8: [8],  # split by deleting 9: the piece with the smallest record keeps the id
        10: [10],  # the other piece of the split: its own smallest record id
        15: [15, 16],  # new records matching each other: their smallest id
        30: [25, 30, 31, 32, 40],  # bridge of 3 records vs 1: the larger cluster's id survives
    }


def test_first_run_change_log_lists_each_changed_record_once_and_nothing_else(runs):
    assert record_changes(runs["first"]) == {
        15: ("new", None, 15), 16: ("new", None, 15),
        12: ("joined", None, 7), 13: ("joined", None, 1), 40: ("joined", None, 30),
        6: ("updated", 5, 7),
        3: ("moved", 3, 1), 4: ("moved", 3, 1), 10: ("moved", 8, 10), 25: ("moved", 25, 30),
        9: ("deleted", 8, None),
    }


def test_first_run_change_log_explains_merges_splits_and_retired_ids(runs):
    log = changes(runs["first"])
    assert log["merges"] == [
        {"surviving_id": 1, "retired_ids": [3], "sizes": [[1, 2], [3, 2]], "rule": "tie on surviving records: smallest id", "linked_by": [13]},
        {"surviving_id": 30, "retired_ids": [25], "sizes": [[30, 3], [25, 1]], "rule": "most surviving records", "linked_by": [40]},
    ]
    assert log["splits"] == [{"old_match_id": 8, "match_ids": [8, 10], "kept_by": 8, "caused_by": [9]}]
    assert log["retired_ids"] == [3, 25]


def test_change_log_parquet_holds_the_same_records_as_the_json(spark, runs):
    rows = spark.read.parquet(str(runs["first"].root / "changes")).collect()
    assert {r["record_id"]: (r["change"], r["old_match_id"], r["new_match_id"]) for r in rows} == record_changes(runs["first"])


def test_untouched_rows_are_byte_for_byte_the_existing_ones(spark, runs):
    before = spark.read.parquet(str(runs["existing"].matches)).where("id IN (30, 31, 32)")
    after = spark.read.parquet(str(runs["first"].matches)).where("id IN (30, 31, 32)")
    assert sorted(before.drop("match_confidence_score").collect()) == sorted(after.drop("match_confidence_score").collect())
    assert spark.read.parquet(str(runs["first"].matches)).where("id = 5").first()["match_id"] == 5


def test_pairs_lose_the_removed_versions_and_gain_the_new_pairs(spark, runs):
    pairs = spark.read.parquet(str(runs["first"].pairs)).select("record_id_l", "record_id_r", "gamma_email").collect()
    ends = {(p["record_id_l"], p["record_id_r"]) for p in pairs}
    assert not any(9 in e for e in ends)
    assert (5, 6) not in ends and (6, 7) in ends and (1, 13) in ends and (3, 13) in ends
    assert all(p["record_id_l"] < p["record_id_r"] for p in pairs)
    # 6's new version (email e7, was c5) is compared with 7 (e7), once: the emails agree as 3's and 13's (b3)
    email = {(p["record_id_l"], p["record_id_r"]): p["gamma_email"] for p in pairs}
    assert len(pairs) == len(ends)
    assert email[(6, 7)] == email[(3, 13)] > email[(1, 13)]


def test_a_full_rerun_finds_the_same_partition_and_ids_differ_only_by_the_survival_rule(spark, runs, cli):
    base = runs["base"]
    current = [r for r in EXISTING if r[0] not in DELETE_1 and r[0] not in {n[0] for n in NEW_1}] + NEW_1
    full_config = config_for(write_csv(base / "all1.csv", current))
    full = RunFolder(base / "full1")
    TrainedModel.load(runs["existing"].model).save(full.model)
    match_task(full_config, full, spark)
    full_clusters, incremental = clusters(spark, full), clusters(spark, runs["first"])
    assert sorted(full_clusters.values()) == sorted(incremental.values())
    # the full run names each cluster by its smallest record; the incremental run kept 7 (joined by 6) and 30 (merge)
    renamed = {k: v for k, v in incremental.items() if full_clusters.get(k) != v}
    assert renamed == {7: [6, 7, 12], 30: [25, 30, 31, 32, 40]}


@pytest.mark.parametrize("scoring", ["duckdb", "spark"])
def test_with_term_frequencies_pairs_and_clusters_equal_a_full_rerun(spark, tmp_path, scoring):
    """New records shift every name's frequency: existing pairs are re-weighed as a full run would score them.

    New records are scored in the driver (DuckDB) or on Spark; either way as the full run scores them."""
    config = config_for(write_csv(tmp_path / "existing.csv", EXISTING), term_frequency=True)
    config = config.model_copy(update={"incremental": config.incremental.model_copy(update={"scoring": scoring})})
    existing = RunFolder(tmp_path / "existing")
    hand_made_model(spark, config).save(existing.model)
    match_task(config, existing, spark)
    out = RunFolder(tmp_path / "incremental")
    match_incremental_task(config, existing, str(write_csv(tmp_path / "new.csv", NEW_1)), out, spark,
                           delete_path=str(write_csv(tmp_path / "delete.csv", [(k,) for k in DELETE_1], ["id"])))
    current = [r for r in EXISTING if r[0] not in DELETE_1 and r[0] not in {n[0] for n in NEW_1}] + NEW_1
    full = RunFolder(tmp_path / "full")
    TrainedModel.load(existing.model).save(full.model)
    match_task(config_for(write_csv(tmp_path / "all.csv", current), term_frequency=True), full, spark)

    def scores(folder):
        rows = spark.read.parquet(str(folder.pairs)).select("record_id_l", "record_id_r", "tf_name_l", "match_probability").collect()
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    before, incremental, rerun = scores(existing), scores(out), scores(full)
    assert incremental.keys() == rerun.keys()
    assert before[(1, 2)][1] != rerun[(1, 2)][1]  # the frequency of 'ann' changed, so did the old pair's score
    for pair, (tf, probability) in rerun.items():
        assert incremental[pair][0] == pytest.approx(tf, abs=1e-15)
        assert incremental[pair][1] == pytest.approx(probability, abs=1e-12)
    assert sorted(clusters(spark, out).values()) == sorted(clusters(spark, full).values())


def test_second_run_on_top_of_the_first(spark, runs):
    assert clusters(spark, runs["second"]) == {
        1: [1, 2, 13], 3: [3, 4], 5: [5], 7: [6, 7, 12], 8: [8], 10: [10, 17], 15: [15], 30: [25, 30, 31, 32, 40],
    }
    assert record_changes(runs["second"]) == {
        17: ("joined", None, 10), 13: ("updated", 1, 1), 3: ("moved", 1, 3), 4: ("moved", 1, 3), 16: ("deleted", 15, None),
    }
    log = changes(runs["second"])
    assert log["splits"] == [{"old_match_id": 1, "match_ids": [1, 3], "kept_by": 1, "caused_by": [13]}]
    assert log["merges"] == [] and log["retired_ids"] == []
    summary = json.loads(runs["second"].summary.read_text(encoding="utf-8"))
    assert (summary["rows_out"], summary["n_clusters"]) == (18, 8)  # 14 - 1 + 5 new, then - 1 + 1


def test_stable_ids_do_not_depend_on_row_order():
    nodes = pd.DataFrame({"record_id": [4, 3, 2, 1, 9], "old_match_id": [3, 3, 1, 1, None]})
    edges = pd.DataFrame({"id_l": [1, 3, 2], "id_r": [2, 4, 9]})
    forward = stable_match_ids(nodes, edges, set())
    backward = stable_match_ids(nodes.iloc[::-1], edges.iloc[::-1], set())
    ids = [dict(zip(r.ids["record_id"], r.ids["match_id"])) for r in (forward, backward)]
    assert ids[0] == ids[1] == {4: 3, 3: 3, 2: 1, 1: 1, 9: 1}


@pytest.mark.parametrize(
    ("ids", "in_use", "expected"),
    [(["a", "b", "c"], {"z"}, {"a": "a~2", "b": "a", "c": "a"}), ([1, 2, 3], {10}, {1: 11, 2: 1, 3: 1})],
    ids=["text", "whole-number"],
)
def test_an_updated_record_that_named_its_cluster_gets_an_unused_id_when_it_leaves(ids, in_use, expected):
    """The new version of record a/1 no longer links to b, c; their cluster keeps the old id a/1 (rule 1),
    so the record alone takes a/1 + '~2' (text ids) or one more than the largest id in use."""
    first, second, third = ids
    nodes = pd.DataFrame({"record_id": [first, second, third], "old_match_id": [None, first, first]})
    edges = pd.DataFrame({"id_l": [second], "id_r": [third]})
    result = stable_match_ids(nodes, edges, in_use)
    assert dict(zip(result.ids["record_id"], result.ids["match_id"])) == expected


def test_the_cli_prints_what_changed(runs, cli, write_config, tmp_path):
    config = write_config(runs["config"].model_dump(mode="json"))
    new = write_csv(tmp_path / "new.csv", NEW_2)
    result = cli("match-incremental", "--config", config, "--existing", runs["existing"].root, "--new", new, "--output", tmp_path / "out")
    assert result.code == 0
    changes = json.loads((tmp_path / "out" / "changes.json").read_text(encoding="utf-8"))["counts"]
    assert (f"changes: {changes['new']} new, {changes['joined']} joined, {changes['updated']} updated, "
            f"{changes['moved']} moved, {changes['deleted']} deleted;") in result.out
    assert changes["joined"] == 2  # on the existing run, 13 joins ann's cluster and 17 gus's


# --- bad input: one line naming what is wrong -------------------------------------------------


def test_new_records_missing_a_configured_column_are_refused(runs, cli, write_config, tmp_path):
    new = write_csv(tmp_path / "new.csv", [(50, "zed")], ["id", "name"])
    config = write_config(runs["config"].model_dump(mode="json"))
    result = cli("match-incremental", "--config", config, "--existing", runs["existing"].root, "--new", new, "--output", tmp_path / "out")
    assert_one_line_error(result, str(new), "email")
    assert result.code == 2
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        ([(50, "zed", "z50"), (50, "zed", "z51"), (51, "yo", "y51")], ["primary key 'id' repeats", "50 (x2)"]),
        ([(None, "zed", "z50"), (51, "yo", "y51")], ["primary key 'id' is null in 1 row(s)"]),
        ([("x50", "zed", "z50")], ["primary key 'id' must hold whole numbers"]),
        ([], ["has no rows"]),
    ],
    ids=["repeated", "null", "not-a-number", "empty"],
)
def test_new_records_with_bad_keys_are_refused(runs, cli, write_config, tmp_path, rows, fragments):
    new = write_csv(tmp_path / "new.csv", rows)
    config = write_config(runs["config"].model_dump(mode="json"))
    result = cli("match-incremental", "--config", config, "--existing", runs["existing"].root, "--new", new, "--output", tmp_path / "out")
    assert_one_line_error(result, str(new), *fragments)
    assert result.code == 2
    assert not (tmp_path / "out" / "summary.json").exists()


def test_an_existing_folder_without_a_model_is_refused(runs, cli, write_config, tmp_path):
    (tmp_path / "empty").mkdir()
    new = write_csv(tmp_path / "new.csv", NEW_1)
    config = write_config(runs["config"].model_dump(mode="json"))
    result = cli("match-incremental", "--config", config, "--existing", tmp_path / "empty", "--new", new, "--output", tmp_path / "out")
    assert_one_line_error(result, "empty", "no trained model")


def test_an_existing_folder_without_matches_is_refused(runs, cli, write_config, tmp_path):
    folder = RunFolder(tmp_path / "model_only")
    TrainedModel.load(runs["existing"].model).save(folder.model)
    (folder.root / "summary.json").write_text(runs["existing"].summary.read_text(encoding="utf-8"), encoding="utf-8")
    new = write_csv(tmp_path / "new.csv", NEW_1)
    config = write_config(runs["config"].model_dump(mode="json"))
    result = cli("match-incremental", "--config", config, "--existing", folder.root, "--new", new, "--output", tmp_path / "out")
    assert_one_line_error(result, "model_only", "no matches/ folder")
    assert result.code == 2


def test_deleting_a_key_the_existing_run_does_not_have_is_refused(runs, cli, write_config, tmp_path):
    new = write_csv(tmp_path / "new.csv", NEW_2)
    delete = write_csv(tmp_path / "delete.csv", [(99,)], ["id"])
    config = write_config(runs["config"].model_dump(mode="json"))
    result = cli("match-incremental", "--config", config, "--existing", runs["existing"].root, "--new", new,
                 "--delete", delete, "--output", tmp_path / "out")
    assert_one_line_error(result, str(delete), "not in the existing run", "99")


@pytest.mark.slow
def test_the_glue_style_job_runs_under_spark_submit(runs, tmp_path):
    import os
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(runs["config"].model_dump(mode="json")), encoding="utf-8")
    new = write_csv(tmp_path / "new.csv", [(12, "eve", "e12")])
    out = tmp_path / "run"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYSPARK_PYTHON": sys.executable}
    completed = subprocess.run(
        [str(bin_dir / "spark-submit"), "--driver-memory", "1g", str(REPO / "jobs" / "match_incremental.py"), "--JOB_NAME", "test",
         "--config", str(config), "--existing", str(runs["existing"].root), "--new", str(new), "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"test: match-incremental done: 15 rows, 7 clusters -> {out}" in completed.stdout
    assert record_changes(RunFolder(out)) == {12: ("joined", None, 7)}


def _structure(g) -> tuple[dict, dict]:
    """Vertex labels and edge endpoints by id: the shape of the graph, without its properties."""
    from matcher.graph.queries import snapshot

    vertices, edges = snapshot(g)
    return ({k: v["label"] for k, v in vertices.items()},
            {k: (e["label"], e["from"], e["to"]) for k, e in edges.items()})


@pytest.mark.slow
def test_applying_only_the_change_logs_gives_the_graph_of_a_full_load(spark, runs, gremlin_server):
    from gremlin_python.process.anonymous_traversal import traversal

    from matcher.graph.connection import connect
    from matcher.graph.server import clear_graph
    from matcher.graph.writer import load_graph_task

    config = runs["config"].model_copy(update={"graph": GraphSpec(endpoint=gremlin_server.endpoint, writers=1)})
    g = traversal().with_remote(connect(config.graph))
    clear_graph(gremlin_server.endpoint)
    load_graph_task(config, runs["existing"], spark)
    for run in ("first", "second"):
        result = load_graph_task(config, runs[run], spark, changes_only=True)
        assert result["changes"]["records_removed"] == 1
        applied = _structure(g)
        clear_graph(gremlin_server.endpoint)
        load_graph_task(config, runs[run], spark)
        assert applied == _structure(g), run
        member_of = [e for e in applied[1].values() if e[0] == "member_of"]
        assert len(member_of) == len({e[1] for e in member_of}) == len(clusters_of_records(spark, runs[run]))


def clusters_of_records(spark, folder: RunFolder) -> list:
    return spark.read.parquet(str(folder.matches)).select("id").collect()


def test_a_run_whose_threshold_came_from_labels_can_be_extended_at_that_threshold(spark, tmp_path):
    """``labels.threshold_from_labels``: the run's threshold is the model's learned one, not the tradeoff's.

    At the learned weight 5 one agreement (+2.2) is no match and two (+13) are, so the
    existing records are all alone and new record 12 (eve, e7) joins record 7.
    """
    config = config_for(write_csv(tmp_path / "existing.csv", EXISTING))
    config = config.model_copy(update={"labels": config.labels.model_copy(update={"threshold_from_labels": True})})
    model = hand_made_model(spark, config)
    existing = RunFolder(tmp_path / "existing")
    TrainedModel(model.splink_model, {**model.metadata, "labels": {"threshold_match_weight": 5.0}}).save(existing.model)
    match_task(config, existing, spark)
    out = RunFolder(tmp_path / "incremental")
    summary = match_incremental_task(config, existing, str(write_csv(tmp_path / "new.csv", [(12, "eve", "e7")])), out, spark)
    assert json.loads(existing.summary.read_text())["threshold"]["source"] == "labels"
    assert summary["threshold"] == {"match_weight": 5.0, "match_probability": pytest.approx(32 / 33), "source": "labels"}
    assert {k: v for k, v in clusters(spark, out).items() if len(v) > 1} == {7: [7, 12]}
