"""Accuracy against a ground-truth column: pairwise, cluster-level, blocking ceiling.

Definitions (``truth`` is the configured ``truth_column``):

* a **true pair** is two records with the same truth value (for ``link_only``, only
  pairs across inputs count). Recall is always end to end: its denominator is every
  true pair in the data, including those blocking never proposed.
* **pairwise** metrics judge the scored pairs at the run's threshold.
* **auprc** is the average precision of the scorer over all scored pairs, ranking by
  match weight (recall relative to the true pairs blocking found; ties are grouped).
* **clusters** metrics judge the pairs that the clusters imply (two rows sharing a
  ``match_id``) against the true pairs.
* **blocking_recall** is the share of true pairs that blocking proposed: the ceiling
  on pairwise recall.
* **column_importances** are each comparison's mean absolute match weight over the
  scored pairs, normalised to sum to 1.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.config.harmonization import SOURCE_SYSTEM
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.model.dependence import PREFIX as DEPENDENCE_PREFIX


def precision_recall_f1(tp: float, fp: float, fn: float) -> dict[str, float]:
    """``precision``, ``recall`` and ``f1`` from the confusion counts (0.0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def average_precision_and_max_f1(tp: pd.Series, fp: pd.Series, positives: int) -> tuple[float, float]:
    """Average precision and the best F1 over thresholds.

    ``tp`` and ``fp`` count the true and false pairs per weight bucket, strongest bucket
    first (tied weights move together); ``positives`` is the number of true pairs.
    """
    if positives == 0:
        return 0.0, 0.0
    tp, fp = tp.cumsum(), fp.cumsum()
    precision, recall = tp / (tp + fp), tp / positives
    ap = float((recall.diff().fillna(recall) * precision).sum())
    f1 = (2 * precision * recall / (precision + recall)).fillna(0.0)
    return ap, float(f1.max())


def pairs_within_groups(rows: DataFrame, by: list[str], *, link_only: bool = False) -> int:
    """How many record pairs share every column in ``by`` (across inputs only, for ``link_only``)."""
    rows = rows.dropna(subset=by)
    if not link_only:
        counts = rows.groupBy(*by).count()
        total = counts.agg(F.sum(F.col("count") * (F.col("count") - 1) / 2)).first()[0]
        return int(total or 0)
    # the input a record came from; a sources: config's rows name their source in source_system
    source = SOURCE_DATASET_COLUMN if SOURCE_DATASET_COLUMN in rows.columns else SOURCE_SYSTEM
    per_source = rows.groupBy(*by, source).count()
    per_group = per_source.groupBy(*by).agg(
        F.sum("count").alias("n"), F.sum(F.col("count") * F.col("count")).alias("sq")
    )
    total = per_group.agg(F.sum((F.col("n") * F.col("n") - F.col("sq")) / 2)).first()[0]
    return int(total or 0)


def cluster_metrics(
    rows: DataFrame, truth: str, *, cluster: str = "match_id", link_only: bool = False, actual: int | None = None
) -> dict:
    """Precision/recall/F1 of the pairs implied by ``cluster`` against those implied by ``truth``
    (``actual``: the true pairs, :func:`pairs_within_groups` by ``truth``, when already counted)."""
    predicted = pairs_within_groups(rows, [cluster], link_only=link_only)
    if actual is None:
        actual = pairs_within_groups(rows, [truth], link_only=link_only)
    tp = pairs_within_groups(rows, [cluster, truth], link_only=link_only)
    return {**precision_recall_f1(tp, predicted - tp, actual - tp), "tp": tp, "fp": predicted - tp, "fn": actual - tp}


def average_precision(pairs: DataFrame, is_true: F.Column) -> tuple[float, float]:
    """Average precision and the best F1 over thresholds, ranking pairs by match weight."""
    buckets = (
        pairs.groupBy(F.round("match_weight", 3).alias("w"))
        .agg(F.sum(is_true.cast("int")).alias("tp"), F.sum((~is_true).cast("int")).alias("fp"))
        .orderBy(F.desc("w"))
        .toPandas()
    )
    return average_precision_and_max_f1(buckets["tp"], buckets["fp"], int(buckets["tp"].sum()))


def pairwise_metrics(pairs: DataFrame, truth: str, threshold: float, true_pairs: int) -> dict:
    """Precision/recall/F1 of the scored pairs at ``threshold`` plus AUPRC and the blocking ceiling."""
    is_true = F.col(f"{truth}_l") == F.col(f"{truth}_r")
    is_true = F.coalesce(is_true, F.lit(False))
    predicted = F.col("match_probability") >= threshold
    stats = pairs.agg(
        F.sum((predicted & is_true).cast("int")).alias("tp"),
        F.sum((predicted & ~is_true).cast("int")).alias("fp"),
        F.sum(is_true.cast("int")).alias("found"),
    ).first()
    tp, fp, found = (int(stats[k] or 0) for k in ("tp", "fp", "found"))
    auprc, max_f1 = average_precision(pairs, is_true)
    pairwise = {**precision_recall_f1(tp, fp, true_pairs - tp), "tp": tp, "fp": fp, "fn": true_pairs - tp}
    pairwise.update(auprc=auprc, max_f1_of_scored_pairs=max_f1)
    return {"pairwise": pairwise, "blocking_recall": found / true_pairs if true_pairs else 0.0, "true_pairs": true_pairs}


def column_importances(pairs: DataFrame) -> dict[str, float]:
    """Mean |match weight| per comparison column over the scored pairs, normalised to sum to 1
    (dependence corrections, :mod:`matcher.model.dependence`, are no column and are left out)."""
    columns = [c for c in pairs.columns
               if c.startswith("mw_") and not c.startswith(("mw_tf_adj_", f"mw_{DEPENDENCE_PREFIX}"))]
    if not columns:
        return {}
    means = pairs.agg(*[F.avg(F.abs(c)).alias(c) for c in columns]).first().asDict()
    total = sum(v or 0.0 for v in means.values()) or 1.0
    ranked = sorted(((c.removeprefix("mw_"), (v or 0.0) / total) for c, v in means.items()), key=lambda kv: -kv[1])
    return dict(ranked)


def evaluate(rows: DataFrame, pairs: DataFrame, *, truth: str, threshold: float, link_type: str) -> dict:
    """All accuracy metrics for one run (``rows`` with ``match_id``, the scored ``pairs``)."""
    link_only = link_type == "link_only"
    true_pairs = pairs_within_groups(rows, [truth], link_only=link_only)
    metrics = pairwise_metrics(pairs, truth, threshold, true_pairs)
    metrics["clusters"] = cluster_metrics(rows, truth, link_only=link_only, actual=true_pairs)
    metrics["column_importances"] = column_importances(pairs)
    return metrics
