"""matcher.matching.components: the match graph's components in Spark, clustered per bucket of whole components."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import cluster_sets as clusters

import matcher.matching.components as components_module
from matcher.config.transform import ClusteringSpec
from matcher.matching.clustering import cluster_by_average_link, cluster_edges
from matcher.matching.components import (
    broadcastable,
    cluster_components,
    component_pairs,
    labeled_component_pairs,
    link_components,
    links_frame,
)
from matcher.runtime.errors import InputDataError

PAIRS = "record_id_l long, record_id_r long, match_weight double, match_probability double"


def _random_graph(seed: int, records: int, edges: int) -> pd.DataFrame:
    """Random edges, one 300-record chain (a long diameter) and a self-loop."""
    rng = np.random.default_rng(seed)
    chain = np.arange(records, records + 300)
    return pd.DataFrame({
        "id_l": np.concatenate([rng.integers(0, records, edges), chain[:-1], [7]]),
        "id_r": np.concatenate([rng.integers(0, records, edges), chain[1:], [7]]),
    })


@pytest.mark.parametrize("seed,driver_edges", [(0, 0), (1, 0), (0, 400), (1, 10**6)])
def test_link_components_are_scipys_components_labelled_by_their_smallest_id(spark, monkeypatch, seed, driver_edges):
    # star rounds only, rounds finished in the driver, the driver only
    monkeypatch.setattr(components_module, "DRIVER_EDGES", driver_edges)
    edges = _random_graph(seed, records=3000, edges=2000)
    got = link_components(spark.createDataFrame(edges)).toPandas()
    want = cluster_edges(edges[edges["id_l"] != edges["id_r"]])
    assert len(got) == got["record_id"].nunique() == len(want)
    assert dict(zip(got["record_id"], got["component"])) == dict(zip(want["record_id"], want["match_id"]))


def test_link_components_of_text_ids(spark):
    links = spark.createDataFrame([("c", "b"), ("b", "a"), ("x", "y")], "id_l string, id_r string")
    got = {r["record_id"]: r["component"] for r in link_components(links).collect()}
    assert got == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x"}


def _scored(spark, seed: int, groups: int = 150) -> tuple:
    """Scored pairs of groups of four records, every pair inside a group scored (mostly
    strong) and 80 random bridges between groups (mostly weak)."""
    rng = np.random.default_rng(seed)
    inside = np.array([(4 * g + i, 4 * g + j) for g in range(groups) for i in range(4) for j in range(i + 1, 4)])
    bridges = rng.integers(0, 4 * groups, (80, 2))
    bridges = bridges[bridges[:, 0] // 4 != bridges[:, 1] // 4]
    a, b = np.concatenate([inside, bridges]).T
    weight = np.concatenate([rng.normal(6, 5, len(inside)), rng.normal(-2, 6, len(bridges))])
    probability = 1 / (1 + 2.0 ** -weight)
    rows = [(int(x), int(y), float(w), float(p)) for x, y, w, p in zip(a, b, weight, probability)]
    return spark.createDataFrame(rows, PAIRS), pd.DataFrame({"id_l": a, "id_r": b, "weight": weight, "probability": probability})


@pytest.mark.parametrize("method", ["connected_components", "average_link"])
@pytest.mark.parametrize("one_bucket", [False, True])
def test_cluster_components_places_only_records_on_links_at_or_above_the_threshold(spark, monkeypatch, method, one_bucket):
    monkeypatch.setattr(components_module, "ONE_BUCKET_PAIRS", 10**9 if one_bucket else 0)
    pairs = spark.createDataFrame(
        [(1, 2, 3.2, 0.9), (2, 3, 0.0, 0.5), (3, 4, 0.0, 0.49), (5, 6, -3.2, 0.1)], PAIRS
    )
    members = cluster_components(pairs, 0.5, ClusteringSpec(method=method, min_mean_weight=-1.0))
    got = {r["record_id"]: (r["match_id"], r["size"], r["linked"]) for r in members.collect()}
    assert got == {1: (1, 3, 2), 2: (1, 3, 2), 3: (1, 3, 2)}
    assert cluster_components(pairs, 0.95, ClusteringSpec(method=method)).count() == 0


def _layout(monkeypatch, layout: str) -> None:
    """Cluster in one call in the driver, or in Spark buckets with the components looked up by a broadcast or a shuffle."""
    monkeypatch.setattr(components_module, "BUCKET_RECORDS", 20)  # many buckets, several components in each
    monkeypatch.setattr(components_module, "ONE_BUCKET_PAIRS", 10**9 if layout == "one_call" else 0)
    monkeypatch.setattr(components_module, "BROADCAST_COMPONENT_RECORDS", 0 if layout == "shuffled" else 10**9)


def test_components_are_broadcast_up_to_the_bound_and_never_when_the_session_says_no(spark, monkeypatch):
    components = link_components(links_frame(spark.createDataFrame([(1, 2, 9.0, 0.998)], PAIRS), 0.5))
    monkeypatch.setattr(components_module, "BROADCAST_COMPONENT_RECORDS", 2)
    assert broadcastable(components, 2) and not broadcastable(components, 3)
    key = "spark.sql.autoBroadcastJoinThreshold"
    before = spark.conf.get(key)
    spark.conf.set(key, "-1")
    try:
        assert not broadcastable(components, 2)
    finally:
        spark.conf.set(key, before)


@pytest.mark.parametrize("layout", ["broadcast", "shuffled", "one_call"])
def test_average_link_per_bucket_of_components_is_average_link_on_the_whole_graph(spark, monkeypatch, layout):
    pairs, edges = _scored(spark, seed=3)
    threshold = 0.9
    spec = ClusteringSpec(method="average_link", min_mean_weight=1.0, unscored_pair_weight=-1.0)
    whole = cluster_by_average_link(
        edges.assign(link=edges["probability"] >= threshold), min_mean_weight=1.0, unscored_pair_weight=-1.0
    )
    whole = whole[whole["record_id"].isin(set(edges.loc[edges["probability"] >= threshold, ["id_l", "id_r"]].to_numpy().ravel()))]
    _layout(monkeypatch, layout)
    members = cluster_components(pairs, threshold, spec)
    got = members.toPandas()
    assert len(got) == len(whole) > 100
    assert clusters(got) == clusters(whole)
    assert len(clusters(got)) > len(clusters(link_components(links_frame(pairs, threshold)).toPandas().rename(columns={"component": "match_id"})))
    strongest = dict(zip(whole["record_id"], whole["strongest"]))
    assert all(np.isclose(s, strongest[r], equal_nan=True) for r, s in zip(got["record_id"], got["strongest"]))


def test_component_pairs_are_the_scored_pairs_inside_one_component(spark):
    pairs = spark.createDataFrame(
        [(1, 2, 9.0, 0.998), (2, 3, 9.0, 0.998), (1, 3, -5.0, 0.03), (3, 4, -5.0, 0.03), (5, 6, 9.0, 0.998)], PAIRS
    )
    components = link_components(links_frame(pairs, 0.5))
    inside = component_pairs(pairs, 0.5, components).toPandas()
    assert sorted(zip(inside["id_l"], inside["id_r"], inside["link"])) == [
        (1, 2, True), (1, 3, False), (2, 3, True), (5, 6, True)
    ]


@pytest.mark.parametrize("method", ["connected_components", "average_link"])
def test_enforced_links_bind_alike_in_the_spark_buckets_and_in_one_call(spark, monkeypatch, method):
    pairs, _ = _scored(spark, seed=5, groups=40)
    must = pd.DataFrame({"id_l": [0, 8, 500], "id_r": [4, 12, 501]})  # joins groups 0-1 and 2-3; 500~501 has no pair
    cannot = pd.DataFrame({"id_l": [1, 20], "id_r": [2, 21]})  # splits inside groups 0 and 5
    spec = ClusteringSpec(method=method, min_mean_weight=1.0, unscored_pair_weight=-1.0)
    got = {}
    for layout in ("broadcast", "shuffled", "one_call"):
        _layout(monkeypatch, layout)
        members = cluster_components(pairs, 0.9, spec, must_link=must, cannot_link=cannot).toPandas()
        got[layout] = clusters(members)
    assert got["broadcast"] == got["shuffled"] == got["one_call"]
    together = {frozenset(c) for c in got["one_call"]}
    assert any({0, 4} <= c for c in together) and any({500, 501} <= c for c in together)
    assert not any({1, 2} <= c or {20, 21} <= c for c in together)


def test_must_links_joining_a_cannot_link_pair_are_refused_before_any_spark_work(spark):
    pairs = spark.createDataFrame([(1, 5, 9.0, 0.998)], PAIRS)
    must = pd.DataFrame({"id_l": [1, 2], "id_r": [2, 3]})
    cannot = pd.DataFrame({"id_l": [3], "id_r": [1]})
    with pytest.raises(InputDataError, match="cannot-link pair (3~1|1~3)"):
        cluster_components(pairs, 0.5, ClusteringSpec(method="average_link"), must_link=must, cannot_link=cannot)


def test_labeled_component_pairs_are_the_pairs_of_the_components_holding_a_labeled_record(spark):
    pairs = spark.createDataFrame(
        [(1, 2, 9.0, 0.998), (2, 3, -5.0, 0.03), (1, 3, 9.0, 0.998), (5, 6, 9.0, 0.998), (7, 8, 9.0, 0.998)], PAIRS
    )
    labeled = pd.DataFrame({"id_l": ["3", "6"], "id_r": ["9", "5"], "is_match": [False, True]})
    got = labeled_component_pairs(pairs, 0.5, labeled)
    assert sorted(zip(got["id_l"], got["id_r"], got["link"])) == [(1, 2, True), (1, 3, True), (2, 3, False), (5, 6, True)]
    assert list(got.columns) == ["id_l", "id_r", "weight", "probability", "link"]
