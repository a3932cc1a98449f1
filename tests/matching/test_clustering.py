"""matcher.matching.clustering: connected components with match_id = the smallest record id."""

from __future__ import annotations

import pandas as pd

from matcher.matching.clustering import cluster_edges


def components(edges: pd.DataFrame) -> dict:
    """record_id -> match_id, ignoring row order."""
    result = cluster_edges(edges)
    assert list(result.columns) == ["record_id", "match_id"]
    assert result["record_id"].is_unique
    return dict(zip(result["record_id"], result["match_id"]))


def test_components_of_integer_ids_are_named_by_their_smallest_id():
    # a chain 9-5-3-7, a pair 12-10, a self-loop on 4; 1 and 2 have no edge
    edges = pd.DataFrame({"id_l": [9, 5, 7, 12, 4], "id_r": [5, 3, 3, 10, 4]})
    assert components(edges) == {3: 3, 5: 3, 7: 3, 9: 3, 10: 10, 12: 10, 4: 4}


def test_integer_ids_order_numerically_not_as_text():
    edges = pd.DataFrame({"id_l": [10], "id_r": [9]})
    assert components(edges) == {9: 9, 10: 9}


def test_string_ids_order_as_text():
    edges = pd.DataFrame({"id_l": ["b", "10", "x"], "id_r": ["a", "9", "y"]})
    assert components(edges) == {"a": "a", "b": "a", "10": "10", "9": "10", "x": "x", "y": "x"}


def test_multi_input_record_ids_cluster_across_inputs():
    edges = pd.DataFrame({"id_l": ["crm:7", "crm:7"], "id_r": ["web:1", "erp:3"]})
    assert components(edges) == {"crm:7": "crm:7", "erp:3": "crm:7", "web:1": "crm:7"}


def test_ids_are_returned_with_their_own_type():
    result = cluster_edges(pd.DataFrame({"id_l": pd.Series([2], dtype="int64"), "id_r": pd.Series([1], dtype="int64")}))
    assert result["record_id"].dtype == "int64"
    assert result["match_id"].dtype == "int64"


def test_repeated_and_reversed_edges_change_nothing():
    once = pd.DataFrame({"id_l": [1, 2], "id_r": [2, 3]})
    messy = pd.DataFrame({"id_l": [1, 2, 2, 3, 1], "id_r": [2, 1, 3, 2, 2]})
    assert components(once) == components(messy) == {1: 1, 2: 1, 3: 1}


def test_no_edges_gives_no_rows_with_the_same_columns():
    for dtype in ("int64", "object"):
        empty = pd.DataFrame({"id_l": pd.Series([], dtype=dtype), "id_r": pd.Series([], dtype=dtype)})
        result = cluster_edges(empty)
        assert result.empty
        assert list(result.columns) == ["record_id", "match_id"]
        assert result["record_id"].dtype == dtype
