"""The labels workflow on a ``sources:`` config (the multi-source demo): labeling files hold the
harmonized rows keyed by ``record_id``; label files and decision logs import, train and evaluate."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml
from conftest import REPO, persistent_rdds

from matcher.config.harmonization import CANONICAL_FIELDS
from matcher.config.transform import config_from_dict
from matcher.labels.files import LabelStore, pairs_from_sets, read_labeling_file, write_labeling_file
from matcher.labels.tasks import evaluate_labels_task, export_labels_task, import_labels_task, label_set_task
from matcher.matching.decisions import DECISIONS, Decision, DecisionLog
from matcher.model.artifact import TrainedModel
from matcher.pipeline import train_task
from matcher.runtime.run_folder import RunFolder

CONFIG = REPO / "configs" / "demo.yaml"


def demo_config(**labels):
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return config_from_dict({**data, "labels": labels}, source=str(CONFIG), base_dir=REPO)


@pytest.mark.slow
def test_label_files_and_decision_logs_of_a_sources_config_import_train_and_evaluate(spark, cli, demo_run_folder, tmp_path):
    folder = RunFolder(tmp_path / "run")
    shutil.copytree(demo_run_folder.root, folder.root)
    config = demo_config(holdout_share=0.5)
    cached = persistent_rdds(spark)

    # label-set: harmonized rows, record_id first, no raw_ or internal columns
    sets_file = tmp_path / "sets.csv"
    label_set_task(config, folder, sets_file, sets=4, set_size=5, spark=spark)
    rows = read_labeling_file(sets_file, config)
    assert list(rows.columns[:4]) == ["labeling_set_id", "label", "record_id", "source_system"]
    assert {*CANONICAL_FIELDS, "first_name_canonical", "person_id", "loyalty_tier"} <= set(rows.columns)
    assert not [c for c in rows.columns if c.startswith("raw_") or c in ("source_key", "source_dataset")]
    assert rows["record_id"].is_unique and (rows["record_id"].str.split(":").str[0] == rows["source_system"]).all()
    assert persistent_rdds(spark) == cached  # the harmonized rows are released

    # labeled by the ground truth and imported back
    write_labeling_file(rows.assign(label=rows["person_id"]), sets_file)
    n_rows, n_pairs = len(rows), int(sum(k * (k - 1) // 2 for k in rows.groupby("labeling_set_id").size()))
    assert f"{n_rows} rows in 4 sets, {n_pairs} pairs" in import_labels_task(config, folder, sets_file, spark=spark)
    stored = pairs_from_sets(LabelStore(folder.root).rows(), config)
    truth = dict(zip(rows["record_id"], rows["person_id"]))
    assert len(stored) == n_pairs and (stored["is_match"] == [truth[a] == truth[b] for a, b in zip(stored["id_l"], stored["id_r"])]).all()

    # a steward's split of a 3+ record cluster none of whose records was labeled: moved x kept are non-matches
    matches = spark.read.parquet(str(folder.matches)).select("record_id", "match_id").toPandas()
    members = matches.groupby("match_id")["record_id"].agg(sorted)
    match_id, records = next((m, r) for m, r in members.items() if len(r) >= 3 and not set(r) & set(truth))
    moved = records[-1]
    log = DecisionLog(folder.root)
    with log.locked():
        log.append(Decision(decision_id="d000001", action="split", who="t", when="2026-01-01T00:00:00Z", match_id=match_id,
                            records=tuple(records), moved=(moved,), new_match_id=moved))
    result = cli("import-labels", "--config", CONFIG, "--output", folder.root, "--labels", folder.root / DECISIONS)
    assert result.code == 0, result.err
    kept = len(records) - 1
    assert f"{n_rows + 2 * kept} rows in {4 + kept} sets, {n_pairs + kept} pairs" in result.out
    decided = pairs_from_sets(LabelStore(folder.root).rows().query("labeling_set_id.str.startswith('d000001:')"), config)
    assert not decided["is_match"].any()
    assert sorted(map(frozenset, zip(decided["id_l"], decided["id_r"]))) == sorted(
        frozenset((moved, r)) for r in records[:-1])

    # exported, trained on and evaluated on the held-out sets
    export_labels_task(config, folder, tmp_path / "all.csv")
    exported = pd.read_csv(tmp_path / "all.csv", dtype=str, keep_default_na=False)
    assert len(exported) == n_rows + 2 * kept and "record_id" in exported.columns
    train_task(config, folder, spark)
    digest = LabelStore(folder.root).info()["labels_hash"]
    assert TrainedModel.load(folder.model, config).metadata["labels"]["labels_hash"] == digest
    metrics = evaluate_labels_task(config, folder, spark)
    assert metrics["held_out_sets"] > 0 and metrics["labels"]["pairs"] > 0
    assert metrics["labels_hash"] == metrics["model_trained_on_labels_hash"] == digest
    assert persistent_rdds(spark) == cached
