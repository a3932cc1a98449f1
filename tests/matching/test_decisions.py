"""The data stewards' decision log: what is in force, the links and ids it enforces, and how runs apply them."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from conftest import persistent_rdd_ids, rdds_left
from matcher.matching.clustering import cluster_with_constraints
from matcher.matching.decisions import (
    Decision,
    DecisionLog,
    contradiction,
    counts,
    decided_ids,
    decided_records,
    decision_links,
    decision_pairs,
    in_force,
    name_clusters,
)
from matcher.matching.enforced import decided_links
from matcher.matching.stable_ids import stable_match_ids, unused_id
from matcher.runtime.errors import InputDataError

_numbers = iter(range(1, 10_000))


def decision(action: str, **fields) -> Decision:
    return Decision(decision_id=f"d{next(_numbers):06d}", action=action, who="ana", when="2026-12-05T10:00:00Z", **fields)


def split(match_id, records, moved, new_match_id) -> Decision:
    return decision("split", match_id=match_id, records=tuple(records), moved=tuple(moved), new_match_id=new_match_id)


def merge(match_id, records, retired) -> Decision:
    return decision("merge", match_id=match_id, records=tuple(records), retired_match_id=retired)


def links(decisions) -> tuple[set, set]:
    must, cannot = decision_links(decisions)
    return set(zip(must["id_l"], must["id_r"])), set(zip(cannot["id_l"], cannot["id_r"]))


def test_a_split_cannot_links_the_moved_records_from_the_kept_ones_and_joins_the_moved():
    must, cannot = links([split("a", ["a", "b", "c", "d"], ["c", "d"], "c")])
    assert must == {("c", "d")}
    assert cannot == {("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")}


def test_per_pair_the_latest_verdict_wins_so_a_merge_after_a_split_rejoins_the_pieces():
    first = split("a", ["a", "b", "c"], ["c"], "c")
    later = merge("a", ["a", "b", "c"], "c")
    must, cannot = links([first, later])
    assert must == {("a", "b"), ("a", "c"), ("b", "c")} and cannot == set()
    pairs = decision_pairs([first, later])
    assert set(pairs["decision_id"]) == {later.decision_id}
    # and the other way round: the split is the latest word on a~c and b~c
    must, cannot = links([later, split("a", ["a", "b", "c"], ["c"], "c")])
    assert must == {("a", "b")} and cannot == {("a", "c"), ("b", "c")}


def test_an_undone_decision_no_longer_counts_and_the_undo_itself_enforces_nothing():
    first = merge("a", ["a", "b"], "b")
    undo = decision("undo", undoes=first.decision_id)
    assert in_force([first, undo]) == []
    assert links([first, undo]) == (set(), set())
    assert counts([first, undo, decision("match", records=("x", "y"))]) == {"match": 1}
    assert decided_ids([first, undo]) == {} and decided_records([first, undo]) == set()


def test_match_and_not_match_speak_about_one_pair():
    assert links([decision("match", records=("b", "a")), decision("not_match", records=("c", "d"))]) == (
        {("a", "b")}, {("c", "d")})


def test_a_cannot_link_that_must_links_join_through_other_records_is_a_contradiction():
    ok = [split("a", ["a", "b", "c"], ["c"], "c")]
    assert contradiction(ok) is None
    joined = ok + [decision("match", records=("c", "x")), decision("match", records=("x", "b"))]
    assert contradiction(joined) in {("b", "c"), ("a", "c")}
    with pytest.raises(InputDataError, match=r"run/decisions.jsonl: the decisions contradict each other"):
        decided_links(joined, "run/decisions.jsonl", {r: r for r in "abcx"}, integral=False)


def test_decided_ids_are_the_latest_id_each_record_was_given():
    decisions = [split("a", ["a", "b", "c"], ["c"], "c~2"), merge("q", ["c", "q", "r"], "c~2")]
    assert decided_ids(decisions) == {"a": "a", "b": "a", "c": "q", "q": "q", "r": "q"}
    assert decided_records(decisions) == {"a", "b", "c", "q", "r"}


def members(clusters: dict) -> pd.DataFrame:
    return pd.DataFrame([(r, m) for m, rs in clusters.items() for r in rs], columns=["record_id", "match_id"])


def named(frame: pd.DataFrame) -> dict:
    return {m: sorted(g["record_id"]) for m, g in frame.groupby("match_id")}


def test_a_split_that_moves_the_smallest_record_keeps_the_id_on_the_kept_part_and_ids_stay_unique():
    # {1, 2, 3} was cluster 1; the steward moved 1 out (new id 4 is taken by an untouched cluster {4, 5})
    decisions = [split("1", ["1", "2", "3"], ["1"], "1~2")]
    clustered = members({1: [1], 2: [2, 3], 4: [4, 5]})  # as smallest-id clustering names them
    ids = {r: (int(i) if i.isdigit() else i) for r, i in decided_ids(decisions).items()}
    out = named(name_clusters(clustered, ids, unused_id))
    assert out == {1: [2, 3], 4: [4, 5], "1~2": [1]}


def test_a_cluster_whose_name_a_decision_gave_away_gets_an_unused_id():
    # the decision names {2, 3} "a"; the cluster that clustering called "a" holds no decided record
    clustered = members({"a": ["a", "z"], "b": ["b", "c"]})
    out = named(name_clusters(clustered, {"b": "a", "c": "a"}, unused_id))
    assert out == {"a": ["b", "c"], "a~2": ["a", "z"]}
    assert out.keys() == set(name_clusters(clustered, {"b": "a", "c": "a"}, unused_id)["match_id"])


def test_an_id_claimed_by_two_clusters_goes_to_the_one_with_most_decided_records():
    # a merge said {a, b, c} is "a"; clustering keeps c apart (say a later cannot-link elsewhere): c's piece gets a new name
    out = named(name_clusters(members({"a": ["a", "b"], "c": ["c"]}), {"a": "a", "b": "a", "c": "a"}, unused_id))
    assert out == {"a": ["a", "b"], "c": ["c"]}


def test_the_decided_links_respect_every_split_and_merge_in_clustering():
    decisions = [split("1", ["1", "2", "3"], ["3"], "3"), merge("7", ["7", "8", "9"], "9")]
    d = decided_links(decisions, "log", {str(i): i for i in range(1, 10)}, integral=True)
    edges = pd.DataFrame({"id_l": [1, 2, 7], "id_r": [2, 3, 8], "weight": [0.99, 0.99, 0.9]})
    clustered = cluster_with_constraints(edges, d.must_link, d.cannot_link)
    assert named(clustered) == {1: [1, 2], 3: [3], 7: [7, 8, 9]}
    assert d.ids == {"1": 1, "2": 1, "3": 3, "7": 7, "8": 7, "9": 7}
    assert d.facts == {"file": "log", "in_force": {"split": 1, "merge": 1}, "must_links": 3, "cannot_links": 2, "ids_dropped": 0}


def test_decided_records_no_longer_in_the_run_are_dropped_with_one_warning(caplog):
    decisions = [merge("1", ["1", "2", "40"], "40"), decision("not_match", records=("41", "2"))]
    with caplog.at_level(logging.WARNING, logger="matcher.matching.enforced"):
        d = decided_links(decisions, "run/decisions.jsonl", {"1": 1, "2": 2}, integral=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["run/decisions.jsonl: 2 decided record id(s) are no longer in the inputs; their links are dropped: 40, 41"]
    assert set(zip(d.must_link["id_l"], d.must_link["id_r"])) == {(1, 2)} and d.cannot_link.empty
    assert d.ids == {"1": 1, "2": 1} and d.records == [1, 2] and d.facts["ids_dropped"] == 2


def test_stable_ids_give_a_component_the_decided_id_before_the_old_ones():
    # old clusters 1 = {1, 2, 3} and 5 = {5, 6}; a steward moved 1 out (new id 9) and merged 5 into 3's entity
    nodes = pd.DataFrame({"record_id": [1, 2, 3, 5, 6], "old_match_id": [1, 1, 1, 5, 5]})
    components = pd.DataFrame({"record_id": [1, 2, 3, 5, 6], "match_id": [1, 2, 2, 2, 2]})
    decided = {"1": 9, "2": 1, "3": 1, "5": 1, "6": 1}
    result = stable_match_ids(nodes, components=components, in_use={7}, decided=decided)
    assert dict(zip(result.ids["record_id"], result.ids["match_id"])) == {1: 9, 2: 1, 3: 1, 5: 1, 6: 1}
    assert result.merges == [{"surviving_id": 1, "retired_ids": [5], "sizes": [[1, 2], [5, 2]], "rule": "decision", "linked_by": []}]
    assert result.splits == [{"old_match_id": 1, "match_ids": [1, 9], "kept_by": 1}]
    # without decisions the same components follow rules 1-3: record 1 alone finds its id taken
    plain = stable_match_ids(nodes, components=components, in_use={7})
    assert dict(zip(plain.ids["record_id"], plain.ids["match_id"])) == {1: 8, 2: 1, 3: 1, 5: 1, 6: 1}


def test_a_decided_id_an_untouched_cluster_uses_is_never_taken():
    nodes = pd.DataFrame({"record_id": [1, 2], "old_match_id": [1, 1]})
    result = stable_match_ids(nodes, components=pd.DataFrame({"record_id": [1, 2], "match_id": [1, 1]}), in_use={7},
                              decided={"1": 7, "2": 7})
    assert set(result.ids["match_id"]) == {1}


def test_the_log_appends_and_reads_back_in_order_and_a_malformed_line_names_its_number(tmp_path):
    log = DecisionLog(tmp_path)
    assert log.read() == []
    written = [merge("a", ["a", "b"], "b"), decision("not_match", records=("a", "c"), why="différent")]
    with log.locked():
        for d in written:
            log.append(d)
    assert log.read() == written
    assert (tmp_path / "decisions.jsonl.lock").exists()
    with log.path.open("a", encoding="utf-8") as out:
        out.write("\n{not json\n")
    with pytest.raises(InputDataError, match=r"decisions.jsonl, line 4: not JSON"):
        log.read()
    log.path.write_text('{"decision_id": "d1", "action": "merge", "who": "a", "when": "t"}\n{"decision_id": "d2", "action": "explode"}\n')
    with pytest.raises(InputDataError, match=r"decisions.jsonl, line 2: not a decision"):
        log.read()
    copy = tmp_path / "copy"
    log.copy_to(copy)
    assert (copy / "decisions.jsonl").read_bytes() == log.path.read_bytes()
    assert DecisionLog.at(copy / "decisions.jsonl").path == copy / "decisions.jsonl"


def test_assign_matches_enforces_the_log_and_names_the_decided_clusters_with_whole_number_ids(spark, tmp_path):
    from pyspark.sql import functions as F

    from matcher.blocking.candidates import free_checkpoint
    from matcher.config.transform import config_from_dict
    from matcher.matching.enforced import run_decisions
    from matcher.matching.matches import assign_matches
    from matcher.matching.threshold import Threshold

    config = config_from_dict({
        "name": "t", "inputs": [{"name": "people", "path": str(tmp_path / "people.csv"), "format": "csv"}],
        "primary_key": "pk", "columns": [{"name": "first_name", "kind": "name"}], "blocking_rules": [["first_name"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["first_name"]]},
    })
    rows = spark.createDataFrame([(i, "x") for i in (1, 2, 3, 4, 5, 6, 20)], "pk bigint, first_name string")
    scored = spark.createDataFrame([(3, 4, 0.97), (4, 5, 0.9), (1, 6, 0.4)], "record_id_l bigint, record_id_r bigint, match_probability double")
    log = DecisionLog(tmp_path)
    with log.locked():
        # cluster 3 = {3, 4, 5} loses 3 (its new id: 10); the singletons 1 and 2 become one customer named 6,
        # so record 6, alone, needs an id no record has (record 20 is alone too: 21)
        log.append(split("3", ["3", "4", "5"], ["3"], "10"))
        log.append(merge("6", ["1", "2"], "2"))
        log.append(split("20", ["20"], ["20"], "30"))  # 20 has no pair at all: decided, yet left alone by clustering
    decided = run_decisions(log, rows.select(F.col("pk").alias("record_id")))
    kept = persistent_rdd_ids(spark)
    out, clustered = assign_matches(rows, scored, config, threshold=Threshold(0.0), decided=decided)
    got = {r["pk"]: (r["match_id"], r["match_confidence_score"]) for r in out.collect()}
    free_checkpoint(clustered.members)  # the renamed clusters must be the only checkpoint left
    assert not rdds_left(spark, kept)
    assert {k: v[0] for k, v in got.items()} == {1: 6, 2: 6, 3: 10, 4: 3, 5: 3, 6: 21, 20: 30}
    assert got[1][1] == got[2][1] == 1.0 and got[3][1] == pytest.approx(1 - 0.97)
    assert decided.facts["in_force"] == {"split": 2, "merge": 1} and decided.facts["ids_dropped"] == 0
