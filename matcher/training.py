"""Train a Fellegi-Sunter model on Spark: lambda, u by random sampling, m by EM.

Stock Splink runs every EM iteration and every u-sampling chunk as its own Spark job.
Here each estimate costs one Spark aggregation: the blocked (or sampled) pairs are
turned into comparison vectors and counted per distinct pattern in Spark, the counts
(a few hundred rows) are collected, and the arithmetic runs in the driver
(:mod:`matcher.em`). The estimates are written back into Splink's settings, so the
saved model is an ordinary Splink model.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from splink import Linker
from splink.internals.blocking import BlockingRule, block_using_rules_sqls
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator
from splink.internals.comparison_vector_values import compute_comparison_vector_values_from_id_pairs_sqls
from splink.internals.misc import bayes_factor_to_prob, prob_to_bayes_factor
from splink.internals.parse_sql import get_columns_used_from_sql
from splink.internals.pipeline import CTEPipeline
from splink.internals.settings import Settings
from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf

from matcher.comparisons import SOURCE_DATASET_COLUMN, blocking_rule
from matcher.config import BlockingRule as RuleSpec
from matcher.config import TransformConfig
from matcher.em import expectation_maximisation
from matcher.errors import InputDataError
from matcher.model import TrainedModel, make_linker, versions

log = logging.getLogger(__name__)

_DIALECT = "spark"
_SAMPLE_BUCKETS = 1_000_000


def _rule(rule: RuleSpec) -> BlockingRule:
    return to_blocking_rule_creator(blocking_rule(rule)).get_blocking_rule(_DIALECT)


def pattern_counts(linker: Linker, rule: BlockingRule, *, sample_sql: str | None = None) -> pd.DataFrame:
    """Count blocked pairs per distinct comparison vector, in one Spark job.

    ``sample_sql``, a boolean SQL condition on the input rows, restricts both sides
    of the pairing to a sample (used with a ``1=1`` rule for u estimation).
    """
    settings = linker._settings_obj
    info = settings.column_info_settings
    pipeline = CTEPipeline()
    enqueue_df_concat_with_tf(linker, pipeline)
    source = "__splink__df_concat_with_tf"
    if sample_sql:
        pipeline.enqueue_sql(f"select * from {source} where {sample_sql}", "__matcher__sample")
        source = "__matcher__sample"
    pipeline.enqueue_list_of_sqls(
        block_using_rules_sqls(
            input_tablename_l=source,
            input_tablename_r=source,
            blocking_rules=[rule],
            link_type=settings._link_type,
            source_dataset_input_column=info.source_dataset_input_column,
            unique_id_input_column=info.unique_id_input_column,
        )
    )
    vectors = Settings.columns_to_select_for_comparison_vector_values(
        unique_id_input_columns=info.unique_id_input_columns,
        comparisons=settings.comparisons,
        retain_matching_columns=False,
        additional_columns_to_retain=[],
    )
    pipeline.enqueue_list_of_sqls(
        compute_comparison_vector_values_from_id_pairs_sqls(
            settings._columns_to_select_for_blocking,
            vectors,
            input_tablename_l=source,
            input_tablename_r=source,
            source_dataset_input_column=info.source_dataset_input_column,
            unique_id_input_column=info.unique_id_input_column,
        )
    )
    gammas = ", ".join(cc._gamma_column_name for cc in settings.comparisons)
    pipeline.enqueue_sql(
        f"select {gammas}, count(*) as pattern_count from __splink__df_comparison_vectors group by {gammas}",
        "__matcher__pattern_counts",
    )
    counts = linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
    frame = counts.as_pandas_dataframe()
    counts.drop_table_from_database_and_remove_from_cache()
    # Spark returns groups in no fixed order; sorting makes the float sums (and the model) reproducible
    gamma_columns = [cc._gamma_column_name for cc in settings.comparisons]
    return frame.sort_values(gamma_columns, ignore_index=True)


def _gammas(settings, frame: pd.DataFrame) -> np.ndarray:
    return frame[[cc._gamma_column_name for cc in settings.comparisons]].to_numpy(dtype=int)


def _total_pairs(sizes: list[int], link_type: str) -> float:
    n = sum(sizes)
    if link_type == "link_only":
        return (n * n - sum(s * s for s in sizes)) / 2
    return n * (n - 1) / 2


def estimate_u(linker: Linker, config: TransformConfig, sizes: list[int]) -> int:
    """Estimate u from the comparison vectors of randomly sampled pairs; returns pairs sampled.

    Rows are sampled by a seeded hash of their id, so the same data and seed give the
    same sample. A level never seen in the sample gets u = 1 / pairs (an upper bound).
    """
    settings = linker._settings_obj
    proportion = min(1.0, math.sqrt(config.u_max_pairs / max(_total_pairs(sizes, settings._link_type), 1)))
    uid = settings.column_info_settings.unique_id_input_column.name
    key = f"concat({SOURCE_DATASET_COLUMN}, '-', cast({uid} as string))" if len(sizes) > 1 else f"cast({uid} as string)"
    sample_sql = f"pmod(xxhash64({key}, {config.seed}), {_SAMPLE_BUCKETS}) < {int(proportion * _SAMPLE_BUCKETS)}"
    frame = pattern_counts(linker, BlockingRule("1=1", _DIALECT), sample_sql=sample_sql)
    gammas, counts = _gammas(settings, frame), frame["pattern_count"].to_numpy(dtype=float)
    pairs = int(counts.sum())
    if pairs == 0:
        raise InputDataError(
            f"{config.name}: u estimation sampled no record pairs from {sum(sizes)} rows; "
            "the inputs are too small to train on"
        )
    for k, cc in enumerate(settings.comparisons):
        not_null = gammas[:, k] != -1
        denominator = counts[not_null].sum() or 1.0
        for level in cc._comparison_levels_excluding_null:
            seen = counts[gammas[:, k] == level.comparison_vector_value].sum()
            level._add_trained_u_probability(max(seen, 1.0) / denominator, "estimate u by random sampling")
    return pairs


def _blocking_adjusted_lambda(settings, rule: BlockingRule) -> float:
    """Probability that a pair blocked by ``rule`` matches (lambda times the rule's Bayes factors)."""
    bayes_factor = prob_to_bayes_factor(settings._probability_two_random_records_match)
    for info in Settings._get_comparison_levels_corresponding_to_training_blocking_rule(
        blocking_rule_sql=rule.blocking_rule_sql, sqlglot_dialect=_DIALECT, comparisons=settings.comparisons
    ):
        bayes_factor *= info["level"]._bayes_factor
    return bayes_factor_to_prob(bayes_factor)


def estimate_m(linker: Linker, config: TransformConfig, rule_spec: RuleSpec) -> dict:
    """One EM session blocked on ``rule_spec``: comparisons the rule uses are not estimated."""
    settings = linker._settings_obj
    rule = _rule(rule_spec)
    used = set(get_columns_used_from_sql(rule.blocking_rule_sql, _DIALECT))
    active = [
        k for k, cc in enumerate(settings.comparisons)
        if not used & {c.input_name for c in cc._input_columns_used_by_case_statement}
    ]
    frame = pattern_counts(linker, rule)
    if frame.empty:
        raise InputDataError(
            f"{config.name}: training.em_blocking_rules {rule.blocking_rule_sql!r} produced no record pairs"
        )
    comparisons = [settings.comparisons[k] for k in active]
    levels = [cc._comparison_levels_excluding_null for cc in comparisons]
    result = expectation_maximisation(
        _gammas(settings, frame)[:, active],
        frame["pattern_count"].to_numpy(),
        [{cl.comparison_vector_value: cl.m_probability for cl in lv} for lv in levels],
        [{cl.comparison_vector_value: cl.u_probability for cl in lv} for lv in levels],
        _blocking_adjusted_lambda(settings, rule),
        max_iterations=config.training.max_iterations,
        convergence=config.training.em_convergence,
    )
    description = f"EM, blocked on: {rule.blocking_rule_sql}"
    for lv, m in zip(levels, result.m):
        for cl in lv:
            if cl.comparison_vector_value in m:
                cl._add_trained_m_probability(m[cl.comparison_vector_value], description)
    linker._populate_m_u_from_trained_values()
    return {
        "blocking_rule": rule.blocking_rule_sql,
        "pairs": int(frame["pattern_count"].sum()),
        "patterns": len(frame),
        "iterations": result.iterations,
        "estimated": [cc.output_column_name for cc in comparisons],
    }


def train(df: DataFrame, config: TransformConfig) -> TrainedModel:
    """Estimate lambda, u and m for ``df`` (from :func:`matcher.ingest.read_inputs`)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    sizes_by_input = {r[SOURCE_DATASET_COLUMN]: r["count"] for r in df.groupBy(SOURCE_DATASET_COLUMN).count().collect()}
    sizes = [int(sizes_by_input.get(spec.name, 0)) for spec in config.inputs]
    linker = make_linker(df, config)

    t = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [blocking_rule(r) for r in config.training.deterministic_rules], recall=config.training.deterministic_recall
    )
    timings["lambda"] = time.perf_counter() - t

    t = time.perf_counter()
    u_pairs = estimate_u(linker, config, sizes)
    linker._populate_m_u_from_trained_values()
    timings["u"] = time.perf_counter() - t

    t = time.perf_counter()
    sessions = [estimate_m(linker, config, rule) for rule in config.training.em_blocking_rules]
    timings["m"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    metadata = {
        "config_hash": config.model_hash(),
        "config_name": config.name,
        "seed": config.seed,
        "rows": sum(sizes),
        "rows_per_input": dict(zip([s.name for s in config.inputs], sizes)),
        "probability_two_random_records_match": linker._settings_obj._probability_two_random_records_match,
        "u_sampled_pairs": u_pairs,
        "em_sessions": sessions,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "versions": versions(),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.info("trained on %d rows in %.1f s (u from %d sampled pairs, %d EM sessions)", sum(sizes), timings["total"], u_pairs, len(sessions))
    return TrainedModel(linker.misc.save_model_to_json(), metadata)
