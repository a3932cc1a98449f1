"""The change log and the re-clustering of an incremental run, on small explicit frames (no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from matcher.incremental.change_log import change_log
from matcher.incremental.recluster import recluster
from matcher.incremental.stored_pairs import StoredPairs
from matcher.matching.stable_ids import Reassignment

# existing clusters: 1 {1, 2}, 3 {3, 4}, 5 {5}, 7 {7, 8, 9}, 10 {10}
OLD_IDS = pd.Series({1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 7: 7, 8: 7, 9: 7, 10: 10})


@pytest.fixture
def log():
    """2 is updated and leaves cluster 1; 4 and 8 are deleted; new 6 bridges clusters 3 and 5
    (3 survives), deleting 8 splits cluster 7; new 11 matches nothing; cluster 10 is untouched."""
    ids = pd.DataFrame(
        [(1, 1, 1), (2, None, 2), (3, 3, 3), (5, 5, 3), (6, None, 3), (7, 7, 7), (9, 7, 9), (11, None, 11)],
        columns=["record_id", "old_match_id", "match_id"],
    )
    merges = [{"surviving_id": 3, "retired_ids": [5], "sizes": [[3, 1], [5, 1]], "rule": "r", "linked_by": [6]}]
    splits = [{"old_match_id": 7, "match_ids": [7, 9], "kept_by": 7}]
    return change_log(OLD_IDS, Reassignment(ids, merges, splits), {2, 6, 11}, {2}, pd.Series([4, 8]))


def test_each_changed_record_is_listed_once_in_change_order(log):
    assert list(log.records.itertuples(index=False, name=None)) == [
        (11, "new", None, 11), (6, "joined", None, 3), (2, "updated", 1, 2),
        (5, "moved", 5, 3), (9, "moved", 7, 9), (4, "deleted", 3, None), (8, "deleted", 7, None),
    ]
    assert log.counts == {"new": 1, "joined": 1, "updated": 1, "moved": 2, "deleted": 2, "merges": 1, "splits": 1, "retired_ids": 1}


def test_final_ids_keep_untouched_records_and_drop_removed_ones(log):
    assert log.final.sort_index().to_dict() == {1: 1, 2: 2, 3: 3, 5: 3, 6: 3, 7: 7, 9: 9, 10: 10, 11: 11}
    assert log.retired == [5]


def test_a_split_names_the_removed_records_that_caused_it(log):
    assert log.splits == [{"old_match_id": 7, "match_ids": [7, 9], "kept_by": 7, "caused_by": [8]}]


def test_json_and_table_hold_the_same_records(log):
    doc = log.as_json("old", "new.csv", None)
    assert list(doc) == ["existing", "new", "delete", "counts", "records", "merges", "splits", "retired_ids"]
    table = log.as_table(pa.int64())
    assert table.schema.types == [pa.int64(), pa.string(), pa.int64(), pa.int64()]
    assert table.to_pylist() == doc["records"]
    assert doc["records"][0] == {"record_id": 11, "change": "new", "old_match_id": None, "new_match_id": 11}


def pairs(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["record_id_l", "record_id_r", "match_probability"])
    frame = frame.astype({"record_id_l": "int64", "record_id_r": "int64", "match_probability": "float64"})
    return frame.assign(match_weight=np.log2(frame["match_probability"] / (1 - frame["match_probability"])))


def test_recluster_touches_only_linked_and_reweighed_clusters():
    """Threshold 0.5. New 5 links cluster 1; re-weighing lifts 3-4 across the threshold (clusters 3
    and 4 merge, tie: 3 survives); cluster 6's only pair stays below it, so 6 is not re-clustered."""
    old_ids = pd.Series({1: 1, 2: 1, 3: 3, 4: 4, 6: 6})
    stored = StoredPairs(pa.Table.from_pandas(pairs([(1, 2, 0.9), (3, 4, 0.6), (2, 6, 0.1)]), preserve_index=False),
                         np.array([False, True, False]), False, 0.0)
    result = recluster(old_ids, set(), pd.Series([5]), pairs([(1, 5, 0.95)]), stored, 0.5)
    ids = result.reassignment.ids.set_index("record_id")["match_id"].sort_index().to_dict()
    assert ids == {1: 1, 2: 1, 3: 3, 4: 3, 5: 1}
    assert result.flipped == 1 and len(result.nodes) == 5
    assert [m["retired_ids"] for m in result.reassignment.merges] == [[4]]
    assert result.strongest.sort_index().to_dict() == {1: 0.95, 2: 0.9, 3: 0.6, 4: 0.6, 5: 0.95, 6: 0.1}


def test_recluster_splits_a_cluster_that_loses_its_link():
    """Removing 2, the only link between 1 and 3, splits cluster 1: 1 keeps the id, 3 takes its own."""
    old_ids = pd.Series({1: 1, 2: 1, 3: 1})
    stored = StoredPairs(pa.Table.from_pandas(pairs([]), preserve_index=False), np.array([], dtype=bool), False, 0.0)  # 1-2 went with 2
    result = recluster(old_ids, {2}, pd.Series([], dtype="int64"), pairs([]), stored, 0.5)
    assert result.reassignment.ids.set_index("record_id")["match_id"].sort_index().to_dict() == {1: 1, 3: 3}
    assert [s["match_ids"] for s in result.reassignment.splits] == [[1, 3]]
