"""Enforced matches: must-links, cannot-links and exact rules that the clusters respect."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import cluster_sets as clusters

from matcher.config.transform import config_from_dict
from matcher.matching.clustering import cluster_edges, cluster_with_constraints
from matcher.matching.matches import assign_matches
from matcher.matching.threshold import Threshold
from matcher.runtime.errors import ConfigError, InputDataError


def edges(*triples) -> pd.DataFrame:
    return pd.DataFrame(triples, columns=["id_l", "id_r", "weight"])


def pairs(*tuples) -> pd.DataFrame:
    return pd.DataFrame(list(tuples), columns=["id_l", "id_r"]) if tuples else pd.DataFrame({"id_l": [], "id_r": []})


def test_without_a_cannot_link_in_one_component_clusters_are_the_connected_components():
    scored = edges((1, 2, 0.9), (2, 3, 0.6), (7, 8, 0.99))
    result = cluster_with_constraints(scored, pairs(), pairs((1, 7)))
    assert clusters(result) == clusters(cluster_edges(scored))
    assert clusters(result) == [{1, 2, 3}, {7, 8}]


def test_a_cannot_link_splits_a_chain_at_its_weakest_edge():
    # 1 -0.9- 2 -0.6- 3 -0.95- 4, cannot-link 1~4: the 0.6 edge goes
    scored = edges((1, 2, 0.9), (2, 3, 0.6), (3, 4, 0.95))
    assert clusters(cluster_with_constraints(scored, pairs(), pairs((1, 4)))) == [{1, 2}, {3, 4}]


def test_a_cannot_link_cuts_every_path_between_the_pair_at_the_bottleneck():
    # two routes from {1,2} to {3,4}: 2-3 (0.5) and 1-3 (0.55); both must go, the strong edges stay
    scored = edges((1, 2, 0.9), (2, 3, 0.5), (1, 3, 0.55), (3, 4, 0.9))
    assert clusters(cluster_with_constraints(scored, pairs(), pairs((4, 1)))) == [{1, 2}, {3, 4}]


def test_a_record_cut_loose_becomes_its_own_cluster():
    # 5 hangs between 1 and 6 by its weaker edge to 6: cannot-link 5~6 leaves 5 with 1
    scored = edges((1, 5, 0.8), (5, 6, 0.7))
    assert clusters(cluster_with_constraints(scored, pairs(), pairs((5, 6)))) == [{1, 5}, {6}]


def test_must_links_join_records_that_no_scored_edge_joins():
    scored = edges((1, 2, 0.9))
    assert clusters(cluster_with_constraints(scored, pairs((2, 3), (8, 9)), pairs())) == [{1, 2, 3}, {8, 9}]


def test_must_links_are_kept_and_the_scored_edge_is_cut_instead():
    # must 1~2; scored 2-3 (0.99) is stronger than anything, but 1~3 cannot link
    scored = edges((1, 2, 0.6), (2, 3, 0.99))
    assert clusters(cluster_with_constraints(scored, pairs((1, 2)), pairs((1, 3)))) == [{1, 2}, {3}]


def test_must_links_that_join_a_cannot_link_pair_are_a_contradiction_naming_the_pair():
    with pytest.raises(InputDataError, match=r"cannot-link pair (1~3|3~1)"):
        cluster_with_constraints(edges((1, 2, 0.5)), pairs((1, 2), (2, 3)), pairs((1, 3)))


def test_string_ids_work_too():
    scored = edges(("a", "b", 0.9), ("b", "c", 0.2))
    assert clusters(cluster_with_constraints(scored, pairs(), pairs(("a", "c")))) == [{"a", "b"}, {"c"}]


# --- wiring: config, files, exact rules, assign_matches ----------------------------------


def config_dict(tmp_path, **enforced) -> dict:
    return {
        "name": "t",
        "inputs": [{"name": "people", "path": str(tmp_path / "people.csv"), "format": "csv"}],
        "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "email", "kind": "email"}],
        "blocking_rules": [["email"]],
        "training": {"deterministic_rules": [["email"]], "em_blocking_rules": [["first_name"]]},
        "enforced": enforced,
    }


def test_exact_rules_must_name_known_columns(tmp_path):
    with pytest.raises(ConfigError, match="enforced.exact_rules name column.*phone"):
        config_from_dict(config_dict(tmp_path, exact_rules=[["phone"]]), source="x.yaml")


def rows_and_pairs(spark):
    rows = spark.createDataFrame(
        [(1, "Ann", "ann@x.org"), (2, "Anne", " ANN@x.org "), (3, "Bob", "bob@y.org"),
         (4, "Bobby", None), (5, "Rob", "bob@y.org"), (6, "Eve", None)],
        "pk bigint, first_name string, email string",
    )
    scored = spark.createDataFrame(
        [(3, 4, 0.97), (4, 5, 0.9), (1, 6, 0.4)],
        "record_id_l bigint, record_id_r bigint, match_probability double",
    )
    return rows, scored


def test_exact_rules_and_cannot_links_shape_the_clusters_and_must_linked_rows_are_certain(spark, tmp_path):
    cannot = tmp_path / "cannot.csv"
    cannot.write_text("id_l,id_r\n4,5\n", encoding="utf-8")
    config = config_from_dict(config_dict(tmp_path, exact_rules=[["email"]], cannot_link=str(cannot)))
    rows, scored = rows_and_pairs(spark)
    out, _ = assign_matches(rows, scored, config, threshold=Threshold(0.0))
    got = {r["pk"]: (r["match_id"], r["match_confidence_score"]) for r in out.collect()}
    # 1~2 by normalised email; 3~5 by email; 4 cannot join {3, 5} (it holds 5), so both its edges go
    assert {k: v[0] for k, v in got.items()} == {1: 1, 2: 1, 3: 3, 4: 4, 5: 3, 6: 6}
    assert got[1][1] == got[2][1] == got[3][1] == got[5][1] == 1.0
    assert got[4][1] == pytest.approx(1 - 0.97)  # a singleton: one minus its best pair's probability
    assert got[6][1] == pytest.approx(1 - 0.4)


def test_enforced_pair_files_naming_unknown_records_list_them(spark, tmp_path):
    must = tmp_path / "must.csv"
    must.write_text("id_l,id_r\n1,2\n77,3\n1,88\n", encoding="utf-8")
    config = config_from_dict(config_dict(tmp_path, must_link=str(must)))
    rows, scored = rows_and_pairs(spark)
    with pytest.raises(InputDataError, match=r"must.csv: 2 record id\(s\) not in the inputs: (77, 88|88, 77)"):
        assign_matches(rows, scored, config, threshold=Threshold(0.0))


def test_a_must_link_file_without_its_columns_is_rejected(spark, tmp_path):
    must = tmp_path / "must.csv"
    must.write_text("a,b\n1,2\n", encoding="utf-8")
    config = config_from_dict(config_dict(tmp_path, must_link=str(must)))
    rows, scored = rows_and_pairs(spark)
    with pytest.raises(InputDataError, match="must.csv: column\\(s\\) id_l, id_r missing"):
        assign_matches(rows, scored, config, threshold=Threshold(0.0))


def test_labeled_pairs_can_be_enforced_as_must_and_cannot_links(spark, tmp_path):
    config = config_from_dict({**config_dict(tmp_path), "enforced": None, "labels": {"enforce_in_clustering": True}})
    rows, scored = rows_and_pairs(spark)
    labeled = pd.DataFrame({"id_l": ["3", "1"], "id_r": ["4", "2"], "is_match": [False, True]})
    out, _ = assign_matches(rows, scored, config, threshold=Threshold(0.0), labeled=labeled)
    got = {r["pk"]: r["match_id"] for r in out.collect()}
    # 3~4 labeled different: the 3-4 edge (0.97) is cut, 4-5 stays; 1~2 labeled the same: joined
    assert got == {1: 1, 2: 1, 3: 3, 4: 4, 5: 4, 6: 6}
