"""Accuracy on held-out labels, as FindMatches estimates it, plus what blocking loses.

``matcher evaluate --labels`` scores the held-out labeled pairs (the labeling sets that
:func:`matcher.labels.files.held_out` sets aside; training never sees them) with the run's
model, whatever blocking would have proposed, and reports:

* ``precision``, ``recall``, ``f1`` and the confusion matrix (``tp``, ``fp``, ``tn``,
  ``fn``) at the model's threshold;
* ``auprc``: average precision ranking the pairs by match weight (ties grouped);
  ``max_f1``: the best F1 over all thresholds;
* ``column_importances``: mean |match weight| per comparison over the held-out pairs,
  normalised to sum to 1, largest first;
* ``blocking_recall_of_labeled_matches``: the share of held-out labeled matches that the
  run's blocking proposed (from ``RUN/pairs``, when a match run exists), and
  ``end_to_end_recall`` = recall x that share. FindMatches' estimates ignore this loss;
* ``truth``: with a ``truth_column`` and a match run, the full ground-truth metrics of
  :mod:`matcher.evaluation.metrics` (end-to-end recall including blocking).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.evaluation.metrics import average_precision_and_max_f1, column_importances, precision_recall_f1


def ranking_metrics(weights: np.ndarray, is_match: np.ndarray) -> tuple[float, float]:
    """Average precision and max F1 when pairs are ranked by weight (tied weights move together)."""
    frame = pd.DataFrame({"w": weights, "y": is_match.astype(int)})
    buckets = frame.groupby("w", sort=True)["y"].agg(["sum", "count"]).iloc[::-1]
    return average_precision_and_max_f1(buckets["sum"], buckets["count"] - buckets["sum"], int(is_match.sum()))


def label_metrics(scored: DataFrame, threshold_weight: float) -> dict:
    """Metrics of Splink-scored held-out pairs (``is_match``, ``match_weight``, ``mw_*``) at ``threshold_weight``."""
    frame = scored.select("is_match", "match_weight").toPandas()
    y = frame["is_match"].to_numpy(bool)
    w = frame["match_weight"].to_numpy(float)
    predicted = w >= threshold_weight
    tp, fp = int((predicted & y).sum()), int((predicted & ~y).sum())
    fn, tn = int((~predicted & y).sum()), int((~predicted & ~y).sum())
    auprc, max_f1 = ranking_metrics(w, y)
    return {
        "pairs": len(frame),
        "match_pairs": int(y.sum()),
        "threshold_match_weight": threshold_weight,
        **precision_recall_f1(tp, fp, fn),
        "confusion_matrix": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "auprc": auprc,
        "max_f1": max_f1,
        "column_importances": column_importances(scored),
    }


def blocking_recall_of_matches(held_out: pd.DataFrame, candidate_pairs: DataFrame) -> float | None:
    """Share of labeled match pairs (``id_l``, ``id_r`` text) among the candidate pairs (``record_id_l/_r``)."""
    matches = held_out[held_out["is_match"]][["id_l", "id_r"]]
    if matches.empty:
        return None
    spark = candidate_pairs.sparkSession
    found_pairs = candidate_pairs.select(
        F.col("record_id_l").cast("string").alias("a"), F.col("record_id_r").cast("string").alias("b")
    )
    wanted = spark.createDataFrame(matches)
    on = ((wanted["id_l"] == found_pairs["a"]) & (wanted["id_r"] == found_pairs["b"])) | (
        (wanted["id_l"] == found_pairs["b"]) & (wanted["id_r"] == found_pairs["a"])
    )
    found = wanted.join(found_pairs, on, "left_semi").count()
    return found / len(matches)
