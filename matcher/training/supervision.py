"""Learning from labeled pairs: score given pairs, m from labels combined with EM, a threshold from labels.

**m from labels.** After EM, each comparison level's m is replaced by the posterior
mean of a Dirichlet whose prior is EM's estimate worth ``labels.prior_pairs`` pairs::

    m(level) = (labeled matches at level + prior_pairs * m_EM(level)) / (labeled matches + prior_pairs)

(labeled matches with a null value for the comparison are not counted). With no
labeled match the EM estimate stays; with many, the labels win. u stays as estimated
by random sampling: labeled non-matches are chosen near the decision boundary, not at
random, so they would bias u.

**Threshold from labels** (``labels.threshold_from_labels: true``): the match weight
that maximises F-beta on the training labels, with ``beta = 2 ** (1 - 2 *
precision_recall_tradeoff)`` (0.5 → F1, 1 → beta 0.5 favours precision, 0 → beta 2
favours recall). It is stored in the model's metadata; matching resolves the run's
threshold from it (:func:`matcher.matching.threshold.resolve_threshold`). The F-beta
helpers live here because training learns with them; matching reuses them to learn
``clustering.min_mean_weight`` (:func:`matcher.matching.threshold.min_mean_weight_from_labels`).
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from splink import Linker

from matcher.config.transform import TransformConfig
from matcher.model.artifact import TrainedModel, make_linker
from matcher.model.splink_adapter import (
    CONCAT_SEPARATOR, apply_trained_m_u, database_api, gamma_column, is_fixed, model_settings, non_null_levels,
    replace_trained_m,
)

LABELS_DESCRIPTION = "labels combined with EM"


def _join_key(config: TransformConfig, column: str, key_type) -> F.Column:
    """Splink's join key of a record id: ``<table><sep><unique id>`` when Splink has several tables."""
    parts = F.split(F.col(column), ":", 2)
    if config.links_sources:  # one table per source; the unique id is the whole record id
        return F.concat(parts[0], F.lit(CONCAT_SEPARATOR), F.col(column))
    if len(config.inputs) == 1:
        return F.col(column).cast(key_type)
    return F.concat(parts[0], F.lit(CONCAT_SEPARATOR), parts[1])


def score_record_pairs(df: DataFrame, config: TransformConfig, model: TrainedModel, pairs: pd.DataFrame) -> DataFrame:
    """Splink's scores (``match_weight``, ``mw_*``, ``gamma_*``) for exactly the given pairs.

    ``pairs`` has ``id_l``, ``id_r`` (record ids as text) and whatever else should be
    carried along (``is_match``); blocking rules play no part. Rows come back with the
    pair's columns plus Splink's output.
    """
    from matcher.model.comparisons import record_id

    spark = df.sparkSession
    key_type = df.schema[config.primary_key].dataType
    given = spark.createDataFrame(pairs.astype({"id_l": str, "id_r": str}))
    blocked = given.select(
        F.lit("0").alias("match_key"),
        _join_key(config, "id_l", key_type).alias("join_key_l"),
        _join_key(config, "id_r", key_type).alias("join_key_r"),
    ).distinct()
    linker = make_linker(df, config, model)
    registered = database_api(linker).register(blocked, table_name=f"__matcher_given_pairs_{uuid.uuid4().hex[:8]}")
    linker.table_management.register_blocked_pairs_for_predict(registered)
    scored = linker.inference.predict(warning_mode="never").as_spark_dataframe()
    scored = scored.select(
        record_id(config, "_l").cast("string").alias("id_l"), record_id(config, "_r").cast("string").alias("id_r"),
        *[c for c in scored.columns if c.startswith(("gamma_", "mw_", "match_")) or c == "match_key"],
    ).drop("match_key")
    return given.join(scored, ["id_l", "id_r"], "inner")


def m_from_labels(linker: Linker, scored: pd.DataFrame, prior_pairs: float) -> dict[str, int]:
    """Set each level's m from the labeled matches in ``scored`` (``is_match``, ``gamma_*``), EM as the prior.

    Returns, per comparison, how many labeled matches informed it.
    """
    settings = model_settings(linker)
    matches = scored[scored["is_match"]]
    used = {}
    for cc in (c for c in settings.comparisons if not is_fixed(c)):
        levels = non_null_levels(cc)
        gamma = matches[gamma_column(cc)].to_numpy(dtype=int)
        counts = {cl.comparison_vector_value: float((gamma == cl.comparison_vector_value).sum()) for cl in levels}
        n = sum(counts.values())
        used[cc.output_column_name] = int(n)
        if n == 0:
            continue
        priors = {cl.comparison_vector_value: cl.m_probability for cl in levels}
        known = [p for p in priors.values() if isinstance(p, (int, float))]
        fallback = 1.0 / len(levels)
        for cl in levels:
            prior = priors[cl.comparison_vector_value]
            prior = prior if isinstance(prior, (int, float)) else (fallback if not known else min(known))
            m = (counts[cl.comparison_vector_value] + prior_pairs * prior) / (n + prior_pairs)
            # replaces EM's per-session estimates (Splink would take their median): labels win
            replace_trained_m(cl, max(m, 1e-9), LABELS_DESCRIPTION)
    apply_trained_m_u(linker)
    return used


def f_beta_beta(precision_recall_tradeoff: float) -> float:
    """The beta of F-beta that a ``precision_recall_tradeoff`` asks for: 1 at 0.5, 0.5 at 1, 2 at 0."""
    return 2.0 ** (1.0 - 2.0 * precision_recall_tradeoff)


def f_beta(tp, fp, fn, beta: float):
    """F-beta from counts (scalars or numpy arrays); 0 where nothing was found."""
    b2 = beta * beta
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp > 0, (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp), 0.0)


def best_threshold(weights: np.ndarray, is_match: np.ndarray, beta: float) -> float | None:
    """The match weight (midway between two observed weights) that maximises F-beta; None without matches."""
    if not is_match.any():
        return None
    order = np.argsort(-weights, kind="stable")
    w, y = weights[order], is_match[order].astype(float)
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    last = np.r_[w[1:] != w[:-1], True]  # a cut is only possible after the last pair of a tied weight
    f = np.where(last, f_beta(tp, fp, y.sum() - tp, beta), -1.0)
    i = int(np.argmax(f))
    below = w[i + 1] if i + 1 < len(w) else w[i] - 1.0
    return float((w[i] + below) / 2.0)


def learn_from_labels(df: DataFrame, config: TransformConfig, linker: Linker, pairs: pd.DataFrame) -> dict:
    """Update ``linker``'s m from labeled ``pairs`` and (when configured) learn the threshold; returns facts for metadata."""
    columns = ["id_l", "id_r", "is_match"]
    current = TrainedModel(linker.misc.save_model_to_json())
    scored = score_record_pairs(df, config, current, pairs[columns]).toPandas()
    used = m_from_labels(linker, scored, config.labels.prior_pairs)
    facts: dict = {
        "training_pairs": len(pairs),
        "training_match_pairs": int(pairs["is_match"].sum()),
        "scored_pairs": len(scored),
        "matches_per_comparison": used,
        "prior_pairs": config.labels.prior_pairs,
    }
    if config.labels.threshold_from_labels:
        rescored = score_record_pairs(df, config, TrainedModel(linker.misc.save_model_to_json()), pairs[columns]).toPandas()
        beta = f_beta_beta(config.precision_recall_tradeoff)
        weight = best_threshold(rescored["match_weight"].to_numpy(float), rescored["is_match"].to_numpy(bool), beta)
        facts.update(threshold_match_weight=weight, threshold_beta=beta)
    return facts
