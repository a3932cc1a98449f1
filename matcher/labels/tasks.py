"""The labeling tasks of the CLI: label-set, label, import-labels, export-labels, evaluate --labels.

Each reads the config and the run folder (``--run``, default the config's ``output``)
and returns a short human summary; JSON results go into the run folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import SparkSession

from matcher.config.transform import TransformConfig
from matcher.evaluation.task import evaluate_task
from matcher.harmonize.ingest import read_inputs
from matcher.labels.evaluation import blocking_recall_of_matches, label_metrics
from matcher.labels.files import (
    LabelStore,
    export_labels,
    import_labels,
    record_ids,
    source_record_ids,
    training_pairs,
    write_labeling_file,
)
from matcher.labels.labeling_sets import labeling_sets
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
    with task_session(folder, spark) as spark:
        df = read_inputs(spark, config).cache()
        # without a model, an automatic config's blocking rules are chosen here as training would
        config = model.configure(config) if model is not None else automatic_setup(df, config).config
        rows = labeling_sets(df, config, model, sets=sets, set_size=set_size, already_labeled=taken)
        df.unpersist()
    write_labeling_file(rows, output)
    basis = "the model's most uncertain pairs" if model is not None else "blocked candidate pairs (no trained model yet)"
    return f"labeling file: {output} ({rows['labeling_set_id'].nunique()} sets, {len(rows)} rows, from {basis})"


def import_labels_task(
    config: TransformConfig, folder: RunFolder, labels: str | Path, *, replace: bool = False, spark: SparkSession | None = None
) -> str:
    """Validate a labeling file against the source and store its labels in ``RUN/labels``."""
    with task_session(folder, spark) as spark:
        known = source_record_ids(read_inputs(spark, config), config)
    summary = import_labels(config, folder.root, labels, known, replace=replace)
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
        df = read_inputs(spark, config).cache()
        scored = score_record_pairs(df, config, model, held[["id_l", "id_r", "is_match"]]).cache()
        metrics = label_metrics(scored, threshold)
        scored.unpersist()
        if exists(folder.pairs):
            share = blocking_recall_of_matches(held, spark.read.parquet(str(folder.pairs)))
            metrics["blocking_recall_of_labeled_matches"] = share
            metrics["end_to_end_recall"] = None if share is None else metrics["recall"] * share
        df.unpersist()
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
