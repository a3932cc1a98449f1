"""Runs apply the data stewards' decision log: a full re-run of the demo and match-incremental on top of it.

The demo run (the session's ``demo_run_folder``) is copied; a steward splits the smallest
record out of a cluster of three or more and merges two other clusters (and matches a record
that no longer exists); ``matcher match`` runs again in the copy.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml
from conftest import REPO

from matcher.config.transform import load_config
from matcher.incremental.task import match_incremental_task
from matcher.matching.clustering import cluster_edges
from matcher.matching.decisions import Decision, DecisionLog, next_id
from matcher.pipeline import match_task
from matcher.runtime.run_folder import RunFolder

pytestmark = pytest.mark.slow

DEMO = REPO / "configs" / "demo.yaml"


def matches(folder: Path) -> pd.DataFrame:
    return ds.dataset(str(folder / "matches"), format="parquet").to_table(
        columns=["record_id", "match_id", "match_confidence_score"]).to_pandas()


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def append(folder: Path, action: str, **fields) -> Decision:
    log = DecisionLog(folder)
    with log.locked() as before:
        decision = Decision(decision_id=next_id(before), action=action, who="ana", when="2026-12-05T10:00:00Z", **fields)
        log.append(decision)
    return decision


def clusters_of(rows: pd.DataFrame) -> dict[str, list[str]]:
    return {m: sorted(g["record_id"]) for m, g in rows.groupby("match_id") if len(g) > 1}


@dataclass
class Decided:
    base: Path
    folder: Path
    split: list[str]  # the split cluster's records, the moved (smallest) one first
    merged: tuple[str, str]  # the two merged clusters' ids, the surviving one first
    merged_records: list[str]


@pytest.fixture(scope="module")
def decided(spark, demo_run_folder, tmp_path_factory) -> Decided:
    folder = tmp_path_factory.mktemp("decided") / "run"
    shutil.copytree(demo_run_folder.root, folder)
    before = matches(folder)
    threshold = summary(folder)["threshold_match_probability"]
    pairs = ds.dataset(str(folder / "pairs"), format="parquet").to_table(
        columns=["record_id_l", "record_id_r", "match_probability"]).to_pandas()
    links = pairs[pairs["match_probability"] >= threshold].rename(columns={"record_id_l": "id_l", "record_id_r": "id_r"})

    def still_one(records: list[str]) -> bool:  # the records stay one cluster without the first
        inside = links[links["id_l"].isin(records[1:]) & links["id_r"].isin(records[1:])]
        return cluster_edges(inside)["match_id"].nunique() == 1 and set(inside["id_l"]) | set(inside["id_r"]) == set(records[1:])

    clusters = clusters_of(before)
    split = next(records for records in clusters.values() if len(records) >= 3 and still_one(records))
    kept_id, other_id = [m for m, records in clusters.items() if records != split][:2]
    merged_records = sorted(clusters[kept_id] + clusters[other_id])
    append(folder, "split", match_id=split[0], records=tuple(split), moved=(split[0],), new_match_id=f"{split[0]}~2")
    append(folder, "merge", match_id=kept_id, records=tuple(merged_records), retired_match_id=other_id)
    append(folder, "match", records=(kept_id, "crm:C00000-gone"))
    match_task(load_config(DEMO), RunFolder(folder), spark)
    return Decided(demo_run_folder.root, folder, split, (kept_id, other_id), merged_records)


def test_a_rerun_holds_the_split_and_the_merge_with_the_ids_the_steward_saw(decided):
    after = matches(decided.folder).set_index("record_id")
    moved, kept = decided.split[0], decided.split[1:]
    assert set(after.loc[kept, "match_id"]) == {moved}  # the larger part keeps the id, though its record left
    assert after.loc[moved, "match_id"] == f"{moved}~2"
    assert (after["match_id"] == f"{moved}~2").sum() == 1
    survivor, retired = decided.merged
    assert set(after.loc[decided.merged_records, "match_id"]) == {survivor}
    assert not (after["match_id"] == retired).any()
    assert (after.loc[decided.merged_records, "match_confidence_score"] == 1.0).all()  # on a decided must-link


def test_everything_else_is_clustered_as_before(decided):
    before, after = matches(decided.base), matches(decided.folder)
    touched = set(decided.split) | set(decided.merged_records)
    assert clusters_of(before[~before["record_id"].isin(touched)]) == clusters_of(after[~after["record_id"].isin(touched)])


def test_the_summary_counts_the_clusters_by_their_ids_and_says_what_the_decisions_enforced(decided):
    after, result = matches(decided.folder), summary(decided.folder)
    assert result["n_clusters"] == after["match_id"].nunique() == summary(decided.base)["n_clusters"]
    assert (after["match_id"] == after["record_id"]).sum() == result["n_clusters"] - 2  # the smallest-id count would be off
    n = len(decided.merged_records)
    assert result["decisions"] == {
        "file": str(decided.folder / "decisions.jsonl"), "in_force": {"split": 1, "merge": 1, "match": 1},
        "must_links": n * (n - 1) // 2, "cannot_links": len(decided.split) - 1, "ids_dropped": 1,
    }


def test_the_decision_log_and_its_lock_survive_the_rerun(decided):
    assert (decided.folder / "decisions.jsonl.lock").exists()
    assert [d.action for d in DecisionLog(decided.folder).read()] == ["split", "merge", "match"]


def test_match_incremental_applies_a_decision_made_after_the_base_run_and_lists_it(spark, decided, tmp_path):
    existing = tmp_path / "existing"
    shutil.copytree(decided.folder, existing)
    before = matches(existing)
    touched = set(decided.split) | set(decided.merged_records)
    pair = next(records for match_id, records in clusters_of(before).items()
                if len(records) == 2 and not touched & set(records) and "crm:C10000" not in records)
    append(existing, "split", match_id=pair[0], records=tuple(pair), moved=(pair[1],), new_match_id=pair[1])
    with (REPO / "data" / "demo" / "crm.csv").open(encoding="utf-8", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["customer_no"] == "C10000")
    with (tmp_path / "crm.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow({**row, "customer_no": "C99990"})
    output = RunFolder(tmp_path / "day-two")
    result = match_incremental_task(load_config(DEMO), RunFolder(existing), {"crm": str(tmp_path / "crm.csv")}, output, spark)

    assert (output.root / "decisions.jsonl").read_bytes() == (existing / "decisions.jsonl").read_bytes()
    after = matches(output.root).set_index("record_id")
    assert after.loc[pair[0], "match_id"] == pair[0] and after.loc[pair[1], "match_id"] == pair[1]
    changes = json.loads((output.root / "changes.json").read_text(encoding="utf-8"))
    assert {"old_match_id": pair[0], "match_ids": sorted(pair), "kept_by": pair[0], "caused_by": []} in changes["splits"]
    assert {"record_id": pair[1], "change": "moved", "old_match_id": pair[0], "new_match_id": pair[1]} in changes["records"]
    # the earlier decisions still hold, with their ids
    moved = decided.split[0]
    assert set(after.loc[decided.split[1:], "match_id"]) == {moved} and after.loc[moved, "match_id"] == f"{moved}~2"
    assert set(after.loc[decided.merged_records, "match_id"]) == {decided.merged[0]}
    assert not {r["record_id"] for r in changes["records"]} & touched  # nothing the earlier decisions settled moved
    assert result["decisions"]["in_force"] == {"split": 2, "merge": 1, "match": 1}
    assert result["n_clusters"] == after["match_id"].nunique() == summary(decided.folder)["n_clusters"] + 1


def test_the_identity_graph_follows_the_decisions_after_the_rerun(spark, decided, gremlin_server):
    from gremlin_python.process.anonymous_traversal import traversal

    from matcher.config.transform import config_from_dict
    from matcher.graph.connection import connect
    from matcher.graph.server import clear_graph
    from matcher.graph.writer import load_graph_task

    clear_graph(gremlin_server.endpoint)
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config = config_from_dict({**raw, "graph": {"endpoint": gremlin_server.endpoint}}, base_dir=DEMO.parent)
    load_graph_task(config, RunFolder(decided.base), spark)  # the graph as the run before the decisions made it
    load_graph_task(config, RunFolder(decided.folder), spark)  # then the re-run that holds them
    g = traversal().with_remote(connect(config.graph))
    moved = decided.split[0]
    customer_of = lambda record: g.V(record).out("member_of").id_().to_list()  # noqa: E731
    assert customer_of(moved) == [f"customer:{moved}~2"]
    assert {c for r in decided.split[1:] for c in customer_of(r)} == {f"customer:{moved}"}
    survivor, retired = decided.merged
    assert {c for r in decided.merged_records for c in customer_of(r)} == {f"customer:{survivor}"}
    assert g.V(f"customer:{retired}").count().next() == 0  # the retired entity's customer is gone
