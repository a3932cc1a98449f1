"""The labeling tasks of the CLI: label-set, label, import-labels, export-labels, evaluate --labels.

Each reads the config and the run folder (``--run``, default the config's ``output``)
and returns a short human summary; JSON results go into the run folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from matcher.config.transform import TransformConfig
from matcher.evaluation.task import evaluate_task
from matcher.labels.evaluation import blocking_recall_of_matches, label_metrics
from matcher.labels.files import (
    LabelStore,
    decision_label_pairs,
    export_labels,
    import_labels,
    is_decision_log,
    record_ids,
    sets_from_pair_labels,
    source_record_ids,
    store_labels,
    training_pairs,
    write_labeling_file,
)
from matcher.labels.labeling_sets import label_source, labeling_sets, source_rows
from matcher.matching.threshold import resolve_threshold
from matcher.model.artifact import TrainedModel
from matcher.runtime.errors import InputDataError, MatcherError
from matcher.runtime.outputs import write_json
from matcher.runtime.remote_folder import exists
from matcher.runtime.run_folder import RunFolder, task_session
from matcher.training.setup import automatic_setup
from matcher.training.supervision import score_record_pairs

log = logging.getLogger(__name__)

LABEL_METRICS_FILE = "label_metrics.json"


def _model_or_none(config: TransformConfig, folder: RunFolder) -> TrainedModel | None:
    try:
        return TrainedModel.load(folder.model, config)
    except MatcherError:
        return None


def label_set_task(
    config: TransformConfig, folder: RunFolder, output: str | Path, *, sets: int = 10, set_size: int = 10,
    spark: SparkSession | None = None,
) -> str:
    """Write a FindMatches labeling file: around the model's uncertain pairs, or diverse blocked pairs without a model."""
    model = _model_or_none(config, folder)
    store = LabelStore(folder.root)
    taken = set(record_ids(store.rows(), config)) if store.exists() else set()
    with task_session(folder, spark) as spark, label_source(spark, config) as df:
        # without a model, an automatic config's blocking rules are chosen here as training would
        config = model.configure(config) if model is not None else automatic_setup(df, config).config
        rows = labeling_sets(df, config, model, sets=sets, set_size=set_size, already_labeled=taken)
    write_labeling_file(rows, output)
    basis = "the model's most uncertain pairs" if model is not None else "blocked candidate pairs (no trained model yet)"
    return f"labeling file: {output} ({rows['labeling_set_id'].nunique()} sets, {len(rows)} rows, from {basis})"


def _import_decisions(config: TransformConfig, root: Path, path: str | Path, df, replace: bool) -> dict:
    """Store the pairs a decision log judges as labels, one set of two source rows per pair; pairs
    naming a record no longer in the inputs are dropped with a warning."""
    pairs, file = decision_label_pairs(path)
    wanted = set(pairs["id_l"]) | set(pairs["id_r"])
    source = source_rows(df, config, wanted) if wanted else pd.DataFrame({"_rid": []})
    known = set(source["_rid"])
    dropped = sorted(wanted - known)
    if dropped:
        log.warning("%s: %d decided record id(s) are not in the inputs; their pairs are not imported: %s",
                    file, len(dropped), ", ".join(dropped[:10]))
    pairs = pairs[pairs["id_l"].isin(known) & pairs["id_r"].isin(known)].reset_index(drop=True)
    if pairs.empty:
        raise InputDataError(f"{file}: no decision in force judges a pair of records that are in the inputs; nothing to import")
    set_ids = [f"{d}:{a}~{b}" for d, a, b in zip(pairs["decision_id"], pairs["id_l"], pairs["id_r"])]
    rows = sets_from_pair_labels(pairs, source.drop(columns="_rid"), config, set_ids)
    return store_labels(config, root, rows, file, replace=replace)


def import_labels_task(
    config: TransformConfig, folder: RunFolder, labels: str | Path, *, replace: bool = False, spark: SparkSession | None = None
) -> str:
    """Validate a labeling file against the source, or take the pairs of a data stewards' decision
    log (:func:`is_decision_log`), and store the labels in ``RUN/labels``."""
    with task_session(folder, spark) as spark, label_source(spark, config) as df:
        if is_decision_log(labels):
            summary = _import_decisions(config, folder.root, labels, df, replace)
        else:
            summary = import_labels(config, folder.root, labels, source_record_ids(df, config), replace=replace)
    return (f"labels: {summary['rows']} rows in {summary['sets']} sets, {summary['pairs']} pairs "
            f"({summary['match_pairs']} matches) after {summary['imports']} import(s); stored in {LabelStore(folder.root).folder}; "
            f"run 'matcher train' to learn from them")


def export_labels_task(config: TransformConfig, folder: RunFolder, output: str | Path) -> str:
    """Write the labels stored in ``RUN/labels`` back out as one FindMatches labeling file."""
    summary = export_labels(folder.root, output)
    return f"labels: {summary['rows']} rows in {summary['sets']} sets written to {output}"


def evaluate_labels_task(config: TransformConfig, folder: RunFolder, spark: SparkSession | None = None) -> dict:
    """Score the held-out labeled pairs with the run's model; write ``RUN/label_metrics.json``."""
    model = TrainedModel.load(folder.model, config)
    config = model.configure(config)
    _, held, digest = training_pairs(config, folder.root)
    if digest is None:
        raise InputDataError(f"{folder.root}: no labels imported; run 'matcher import-labels' first")
    if held.empty:
        raise InputDataError(
            f"{folder.root}: no labeling set is held out (labels.holdout_share is {config.labels.holdout_share}); "
            "raise labels.holdout_share to evaluate on labels"
        )
    threshold = resolve_threshold(config, model).match_weight
    with task_session(folder, spark) as spark:
        with label_source(spark, config) as df:
            scored = score_record_pairs(df, config, model, held[["id_l", "id_r", "is_match"]]).cache()
            metrics = label_metrics(scored, threshold)
            scored.unpersist()
        if exists(folder.pairs):
            share = blocking_recall_of_matches(held, spark.read.parquet(str(folder.pairs)))
            metrics["blocking_recall_of_labeled_matches"] = share
            metrics["end_to_end_recall"] = None if share is None else metrics["recall"] * share
        trained_on = (model.metadata.get("labels") or {}).get("labels_hash")
        result = {
            "config": config.name,
            "held_out_sets": int(held["labeling_set_id"].nunique()),
            "holdout_share": config.labels.holdout_share,
            "seed": config.seed,
            "labels_hash": digest,
            "model_trained_on_labels_hash": trained_on,
            "labels": metrics,
        }
        if config.truth_column and folder.summary.exists():
            truth = evaluate_task(config, folder, spark)
            result["truth"] = {k: truth[k] for k in ("pairwise", "clusters", "blocking_recall", "true_pairs")}
    write_json(result, folder.root / LABEL_METRICS_FILE)
    return result


def format_label_metrics(result: dict) -> str:
    m = result["labels"]
    cm = m["confusion_matrix"]
    lines = [
        f"held-out labels: {m['pairs']} pairs ({m['match_pairs']} matches) in {result['held_out_sets']} sets",
        f"precision/recall/F1: {m['precision']:.4f} / {m['recall']:.4f} / {m['f1']:.4f}  (threshold weight {m['threshold_match_weight']:.2f})",
        f"AUPRC {m['auprc']:.4f}, max F1 {m['max_f1']:.4f}; TP {cm['tp']} FP {cm['fp']} TN {cm['tn']} FN {cm['fn']}",
        "column importances: " + ", ".join(f"{k} {v:.3f}" for k, v in m["column_importances"].items()),
    ]
    if m.get("end_to_end_recall") is not None:
        lines.append(f"blocking found {m['blocking_recall_of_labeled_matches']:.4f} of the labeled matches; "
                     f"end-to-end recall {m['end_to_end_recall']:.4f}")
    if "truth" in result:
        cl = result["truth"]["clusters"]
        lines.append(f"truth: cluster precision/recall/F1 {cl['precision']:.4f} / {cl['recall']:.4f} / {cl['f1']:.4f}, "
                     f"blocking recall {result['truth']['blocking_recall']:.4f}")
    if result["model_trained_on_labels_hash"] != result["labels_hash"]:
        lines.append("note: the model was not trained on the current labels; run 'matcher train' first")
    return "\n".join(lines)
