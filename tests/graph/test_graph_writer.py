"""The Gremlin writer against a real TinkerPop Gremlin Server: exact graphs, reruns, moves, removals, faults."""

from __future__ import annotations

import threading
import time

import pytest
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.traversal import Merge, T

from matcher.config.transform import config_from_dict
from matcher.graph.connection import _close, connect
from matcher.graph.gremlin import GremlinGraphWriter
from matcher.graph.model import graph_of
from matcher.graph.queries import (
    cluster_history,
    customers_sharing_identifiers,
    customers_sharing_with,
    records_of_customer,
    snapshot,
)
from matcher.graph.server import clear_graph
from matcher.graph.writer import cluster_from_row, cluster_table, load_graph
from matcher.runtime.errors import GraphError

MATCHES = "unique_id long, email string, phone string, postcode string, first_name string, match_id long, match_confidence_score double"
PAIRS = "record_id_l long, record_id_r long, match_probability double"

# r1 and r2 are one customer (same email once normalized); r4's phone is r1's in another format
ROWS = [
    (1, "a@x.com", "+44 7700 900001", "AB1 2CD", "ann", 1, 0.99),
    (2, " A@X.com", "07700 900002", None, "anne", 1, 0.99),
    (3, "b@y.com", None, "ab1 2cd", "bob", 3, 0.8),
    (4, None, "447700900001", "ZZ9 9ZZ", "zed", 4, 1.0),
]
PAIR_ROWS = [(1, 2, 0.99), (1, 3, 0.2), (3, 4, 0.01)]


def make_config(endpoint: str, **graph):
    return config_from_dict({
        "name": "graph_test",
        "inputs": [{"name": "people", "path": "unused.csv", "format": "csv"}],
        "primary_key": "unique_id",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "email", "kind": "email"},
                    {"name": "phone", "kind": "phone"}, {"name": "postcode", "kind": "postcode"}],
        "blocking_rules": [["first_name"]],
        "training": {"deterministic_rules": [["email"]], "em_blocking_rules": [["first_name"]]},
        # one writer keeps these small tests free of write conflicts (and their retries); docs/graph.md
        "graph": {"endpoint": endpoint, "writers": 1, **graph},
    })


@pytest.fixture
def config(gremlin_server):
    return make_config(gremlin_server.endpoint, batch_size=20)


@pytest.fixture
def g(gremlin_server):
    clear_graph(gremlin_server.endpoint)
    connection = connect(make_config(gremlin_server.endpoint).graph)
    source = traversal().with_remote(connection)
    yield source
    _close(connection)


def counts_by_label(g) -> tuple[dict, dict]:
    vertices, edges = snapshot(g)
    by_label = lambda items: {label: sum(1 for x in items.values() if x["label"] == label) for label in {x["label"] for x in items.values()}}  # noqa: E731
    return by_label(vertices), by_label(edges)


def test_known_input_gives_exact_vertices_and_edges_by_label(spark, config, g):
    summary = load_graph(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    vertices, edges = counts_by_label(g)
    assert vertices == {"Customer": 3, "SourceRecord": 4, "Email": 2, "Phone": 2, "Address": 2}
    assert edges == {"member_of": 4, "has_email": 3, "has_phone": 3, "has_address": 3, "same_as": 1}
    # upserts sent: 27 elements, and the two identifiers shared by two clusters are sent by each
    assert summary["elements"] == 13 + 14 + 2
    v, e = snapshot(g)
    assert v["customer:1"]["properties"] == {"match_id": "1", "size": 2, "confidence": 0.99}
    assert v["email:a@x.com"]["properties"] == {"value": "a@x.com"}
    assert e["1|same_as|2"] == {"label": "same_as", "from": "1", "to": "2", "properties": {"probability": 0.99}}
    assert e["4|has_phone|phone:447700900001"]["to"] == "phone:447700900001"


def test_rerun_adds_nothing_and_changes_nothing(spark, config, g):
    matches, pairs = spark.createDataFrame(ROWS, MATCHES), spark.createDataFrame(PAIR_ROWS, PAIRS)
    load_graph(matches, config, pairs=pairs, threshold=0.5)
    first = snapshot(g)
    again = load_graph(matches, config, pairs=pairs, threshold=0.5)
    assert snapshot(g) == first
    assert again["dropped_edges"] == again["moved_records"] == 0


def test_graph_equals_the_model_of_the_clusters(spark, config, g):
    table = cluster_table(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    clusters = [cluster_from_row(r) for r in table.collect()]
    load_graph(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    expected_v, expected_e = graph_of(clusters)
    actual_v, actual_e = snapshot(g)
    assert {k: (v.label, v.properties) for k, v in expected_v.items()} == {k: (v["label"], v["properties"]) for k, v in actual_v.items()}
    assert {k: (e.label, e.out_id, e.in_id, e.properties) for k, e in expected_e.items()} == {
        k: (e["label"], e["from"], e["to"], e["properties"]) for k, e in actual_e.items()}


def test_moved_records_keep_exactly_one_membership_and_their_history(spark, config, g):
    load_graph(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    # a later run: record 2 joins record 3, so their cluster is now "2"; customer 3 empties, customer 1 keeps record 1
    changed = [ROWS[0][:5] + (1, 1.0), ROWS[1][:5] + (2, 0.9), ROWS[2][:5] + (2, 0.9)]
    summary = load_graph(spark.createDataFrame(changed, MATCHES), config,
                         pairs=spark.createDataFrame([(2, 3, 0.9)], PAIRS), threshold=0.5)
    assert summary["moved_records"] == 2
    v, e = snapshot(g)
    memberships = sorted((x["from"], x["to"]) for x in e.values() if x["label"] == "member_of")
    assert memberships == [("1", "customer:1"), ("2", "customer:2"), ("3", "customer:2"), ("4", "customer:4")]
    assert "customer:3" not in v
    assert "1|same_as|2" not in e and "2|same_as|3" in e
    history = cluster_history(g, "2")
    assert history["match_id"] == "2"
    assert [h["match_id"] for h in history["history"]] == ["1"]
    assert [h["match_id"] for h in cluster_history(g, "3")["history"]] == ["3"]
    assert cluster_history(g, "1")["history"] == []
    assert [r["record_id"] for r in records_of_customer(g, "2")] == ["2", "3"]


def test_removed_records_go_with_emptied_customers_and_orphaned_identifiers(spark, config, g):
    load_graph(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    summary = load_graph(spark.createDataFrame([], MATCHES), config, removed_record_ids=["3", "4"])
    assert summary["removed_records"] == 2
    v, e = snapshot(g)
    assert sorted(k for k, x in v.items() if x["label"] != "SourceRecord") == [
        "address:AB12CD", "customer:1", "email:a@x.com", "phone:07700900002", "phone:447700900001"]
    assert sorted(k for k, x in v.items() if x["label"] == "SourceRecord") == ["1", "2"]


def test_queries_find_records_and_customers_sharing_a_phone_or_email(spark, config, g):
    load_graph(spark.createDataFrame(ROWS, MATCHES), config, pairs=spark.createDataFrame(PAIR_ROWS, PAIRS), threshold=0.5)
    assert [r["record_id"] for r in records_of_customer(g, "1")] == ["1", "2"]
    assert customers_sharing_identifiers(g) == [{"identifier": "phone:447700900001", "kind": "Phone", "match_ids": ["1", "4"]}]
    assert customers_sharing_with(g, "4") == ["1"]
    assert customers_sharing_with(g, "3") == []
    assert cluster_history(g, "404") is None


def test_hashed_identifiers_put_no_raw_value_in_the_graph_not_even_in_golden_profiles(spark, gremlin_server, g):
    config = make_config(gremlin_server.endpoint, hash_identifiers=True, salt="pepper")
    customers = spark.createDataFrame(
        [(1, "ann", "a@x.com", "crm:1", "+44 7700 900001", "AB1 2CD"), (3, "bob", "b@y.com", "crm:3", None, "ab1 2cd"),
         (4, "zed", None, None, "447700900001", "ZZ9 9ZZ")],
        "match_id long, first_name string, email string, email__record_id string, phone string, postcode string")
    load_graph(spark.createDataFrame(ROWS, MATCHES), config, customers=customers)
    v, e = snapshot(g)
    text = repr((v, e)).lower()
    for raw in ("a@x.com", "b@y.com", "447700900001", "7700 900001", "07700900002", "ab12cd", "ab1 2cd", "zz99zz", "zz9 9zz"):
        assert raw not in text
    assert counts_by_label(g)[0]["Email"] == 2
    # the profile keeps what does not identify (names, provenance)
    assert v["customer:1"]["properties"]["first_name"] == "ann"
    assert v["customer:1"]["properties"]["email__record_id"] == "crm:1"


def test_unreachable_endpoint_fails_with_one_line_after_retries(spark):
    config = make_config("ws://127.0.0.1:9/gremlin", max_retries=1)
    with pytest.raises(GraphError, match="127.0.0.1:9/gremlin: cannot connect, still failing after 1 retries"):
        load_graph(spark.createDataFrame(ROWS[:1], MATCHES), config)


def synthetic_clusters(n_records: int) -> tuple[list[tuple], list[tuple]]:
    """Deterministic clusters of 1-4 records with shared emails inside a cluster."""
    rows, pairs = [], []
    uid = 0
    while uid < n_records:
        size = 1 + uid % 4
        first = uid + 1
        for k in range(size):
            uid += 1
            rows.append((uid, f"p{first}@mail.test", f"0770{uid:07d}", f"AB{first % 97} {k}CD", "x", first, 0.95))
            if k:
                pairs.append((first, uid, 0.95))
    return rows[:n_records], [p for p in pairs if p[1] <= n_records]


@pytest.mark.slow
def test_server_stopped_mid_load_then_rerun_gives_the_exact_graph(spark, gremlin_server, g):
    rows, pairs = synthetic_clusters(1500)
    config = make_config(gremlin_server.endpoint, batch_size=100, max_retries=2)
    matches, pair_df = spark.createDataFrame(rows, MATCHES), spark.createDataFrame(pairs, PAIRS)
    clusters = [cluster_from_row(r) for r in cluster_table(matches, config, pairs=pair_df, threshold=0.5).collect()]
    expected_v, expected_e = graph_of(clusters)
    outcome: dict = {}

    def first_load():
        try:
            outcome["summary"] = load_graph(matches, config, pairs=pair_df, threshold=0.5)
        except Exception as err:  # noqa: BLE001 - the point is that it may fail
            outcome["error"] = err

    loader = threading.Thread(target=first_load)
    loader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and g.V().count().next() < 300:
        time.sleep(0.2)
    written_before_stop = g.V().count().next()
    gremlin_server.stop()  # a clean stop saves what was committed; in-flight requests fail
    loader.join()
    gremlin_server.start()
    assert 0 < written_before_stop < len(expected_v)
    load_graph(matches, config, pairs=pair_df, threshold=0.5)
    g2 = traversal().with_remote(connect(config.graph))
    actual_v, actual_e = snapshot(g2)
    assert set(actual_v) == set(expected_v) and set(actual_e) == set(expected_e)
    assert {k: (e["from"], e["to"]) for k, e in actual_e.items()} == {k: (e.out_id, e.in_id) for k, e in expected_e.items()}
    assert g2.V().count().next() == len(expected_v) and g2.E().count().next() == len(expected_e)


def test_a_create_that_lost_a_race_for_an_existing_id_is_retried(config, g):
    """TinkerGraph's answer when two writers' mergeV create one shared identifier: the loser's
    addV finds the id taken. The retry (here, a mergeV) then finds the vertex."""
    g.addV("Email").property(T.id, "email:shared").iterate()
    attempts = []

    def write():
        attempts.append(1)
        if len(attempts) == 1:  # as the losing writer sent it: a create of an id another writer just created
            return g.addV("Email").property(T.id, "email:shared").iterate()
        return g.merge_v({T.id: "email:shared", T.label: "Email"}).option(Merge.on_create, {}).iterate()

    with GremlinGraphWriter(config.graph, sleep=lambda _: None) as writer:
        writer._with_retries(write)
        assert writer.counts.retries == 1
    assert len(attempts) == 2
    assert g.V("email:shared").count().next() == 1
