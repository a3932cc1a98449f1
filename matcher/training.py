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
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from splink import Linker
from splink.internals.blocking import BlockingRule, _sql_gen_where_condition
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator
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
U_MIN_COUNT_PER_LEVEL = 100  # as Splink: each level of a comparison seen this often in the u sample
U_PROBE_SHARE = 0.02  # share of the u sample used to measure how common each level is
U_PROBE_SAFETY = 2.0  # evaluate twice the share the probe says is needed


def _rule(rule: RuleSpec) -> BlockingRule:
    return to_blocking_rule_creator(blocking_rule(rule)).get_blocking_rule(_DIALECT)


SKIPPED = -2
"""Comparison-vector value of a comparison that a thinned u sample did not evaluate."""


def _gamma_sql(cc, fraction: float, pair_hash: str) -> str:
    """Splink's CASE for one comparison, evaluated only on a ``fraction`` of the pairs."""
    case = "CASE\n" + "\n".join(cl._when_then_comparison_vector_value_sql for cl in cc.comparison_levels) + "\nEND"
    if fraction >= 1.0:
        return f"{case} as {cc._gamma_column_name}"
    return f"CASE WHEN {pair_hash} < {int(fraction * _SAMPLE_BUCKETS)} THEN {case} ELSE {SKIPPED} END as {cc._gamma_column_name}"


@dataclass(frozen=True)
class PairSet:
    """Record pairs to count: those ``rule`` finds, among the rows ``sample_sql`` keeps (all if None)."""

    name: str
    rule: BlockingRule
    sample_sql: str | None = None


def pattern_counts(
    linker: Linker, pair_sets: list[PairSet], *, fractions: list[float] | None = None, seed: int = 0
) -> pd.DataFrame:
    """Count the pairs of each set per distinct comparison vector, all sets in one Spark job.

    Returns one row per (``pair_set``, pattern) with ``pattern_count``. ``fractions``
    (one per comparison) evaluate comparison k on a seeded share of the pairs only;
    elsewhere its value is :data:`SKIPPED`.
    """
    settings = linker._settings_obj
    info = settings.column_info_settings
    pipeline = CTEPipeline()
    enqueue_df_concat_with_tf(linker, pipeline)
    # One join per set straight to the compared columns (Splink's predict materialises id
    # pairs deduplicated across rules, then joins back twice; a single rule needs neither).
    where = _sql_gen_where_condition(settings._link_type, info.unique_id_input_columns)
    columns = ", ".join(settings._columns_to_select_for_blocking)
    partitions = linker._db_api.spark.conf.get("spark.sql.shuffle.partitions")
    selects = []
    for i, pair_set in enumerate(pair_sets):
        source = "__splink__df_concat_with_tf"
        if pair_set.sample_sql:
            # a sample is small: spread it so its cross join uses every core
            pipeline.enqueue_sql(
                f"select /*+ REPARTITION({partitions}) */ * from {source} where {pair_set.sample_sql}",
                f"__matcher__sample_{i}",
            )
            source = f"__matcher__sample_{i}"
        selects.append(
            f"select '{pair_set.name}' as pair_set, {columns} "
            f"from {source} as l inner join {source} as r on ({pair_set.rule.blocking_rule_sql}) {where}"
        )
    pipeline.enqueue_sql("\nunion all\n".join(selects), "__matcher__pairs")
    ids = [name for column in info.unique_id_input_columns for name in column.names_l_r]
    pair_hash = f"pmod(xxhash64({', '.join(f'cast({c} as string)' for c in ids)}, {seed}), {_SAMPLE_BUCKETS})"
    fractions = fractions or [1.0] * len(settings.comparisons)
    vectors = ", ".join(_gamma_sql(cc, f, pair_hash) for cc, f in zip(settings.comparisons, fractions))
    pipeline.enqueue_sql(f"select pair_set, {vectors} from __matcher__pairs", "__matcher__comparison_vectors")
    keys = ["pair_set", *(cc._gamma_column_name for cc in settings.comparisons)]
    pipeline.enqueue_sql(
        f"select {', '.join(keys)}, count(*) as pattern_count from __matcher__comparison_vectors "
        f"group by {', '.join(keys)}",
        "__matcher__pattern_counts",
    )
    counts = linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
    frame = counts.as_pandas_dataframe()
    counts.drop_table_from_database_and_remove_from_cache()
    # Spark returns groups in no fixed order; sorting makes the float sums (and the model) reproducible
    return frame.sort_values(keys, ignore_index=True)


def _of(frame: pd.DataFrame, pair_set: PairSet) -> pd.DataFrame:
    return frame[frame["pair_set"] == pair_set.name]


def _gammas(settings, frame: pd.DataFrame) -> np.ndarray:
    return frame[[cc._gamma_column_name for cc in settings.comparisons]].to_numpy(dtype=int)


def _total_pairs(sizes: list[int], link_type: str) -> float:
    n = sum(sizes)
    if link_type == "link_only":
        return (n * n - sum(s * s for s in sizes)) / 2
    return n * (n - 1) / 2


def level_counts(settings, frame: pd.DataFrame) -> list[dict[int, float]]:
    """Per comparison, how many evaluated non-null pairs fell in each level."""
    gammas, counts = _gammas(settings, frame), frame["pattern_count"].to_numpy(dtype=float)
    return [
        {cl.comparison_vector_value: float(counts[gammas[:, k] == cl.comparison_vector_value].sum())
         for cl in cc._comparison_levels_excluding_null}
        for k, cc in enumerate(settings.comparisons)
    ]


def thinning_fractions(probe: list[dict[int, float]], probe_pairs: int, full_pairs: float, min_count: int) -> list[float]:
    """Share of the full sample each comparison needs so its rarest level is seen ``min_count`` times.

    A comparison with a level the probe never saw is evaluated on every pair.
    """
    fractions = []
    for levels in probe:
        expected = [c / probe_pairs * full_pairs for c in levels.values()]
        if not expected or min(expected) == 0:
            fractions.append(1.0)
        else:
            fractions.append(min(1.0, U_PROBE_SAFETY * min_count / min(expected)))
    return fractions


class USampler:
    """Random pairs for u: row samples chosen by a seeded hash of the record id.

    ``full`` holds about ``config.u_max_pairs`` pairs; ``probe`` is a nested sample of
    :data:`U_PROBE_SHARE` of them, used to measure how common each comparison level is.
    """

    def __init__(self, linker: Linker, config: TransformConfig, sizes: list[int]):
        settings = linker._settings_obj
        self.total_pairs = _total_pairs(sizes, settings._link_type)
        self.proportion = min(1.0, math.sqrt(config.u_max_pairs / max(self.total_pairs, 1)))
        uid = settings.column_info_settings.unique_id_input_column.name
        key = f"concat({SOURCE_DATASET_COLUMN}, '-', cast({uid} as string))" if len(sizes) > 1 else f"cast({uid} as string)"
        self._row_hash = f"pmod(xxhash64({key}, {config.seed}), {_SAMPLE_BUCKETS})"
        everything = BlockingRule("1=1", _DIALECT)
        self.probe = PairSet("u_probe", everything, self._sample(U_PROBE_SHARE))
        self.full = PairSet("u_sample", everything, self._sample(1.0))

    def _sample(self, share: float) -> str:
        return f"{self._row_hash} < {max(1, int(self.proportion * math.sqrt(share) * _SAMPLE_BUCKETS))}"


def estimate_u(linker: Linker, config: TransformConfig, sampler: USampler, probe: pd.DataFrame) -> dict:
    """Estimate u from the comparison vectors of randomly sampled pairs.

    Like Splink, a comparison stops needing pairs once each of its levels has been seen
    ``U_MIN_COUNT_PER_LEVEL`` times; here the ``probe`` counts say how common each level
    is, and the full sample evaluates each comparison on just the share of pairs it
    needs (one Spark job, not one per comparison and chunk). A level never seen gets
    u = 1 / pairs (an upper bound).
    """
    settings = linker._settings_obj
    probe_pairs = int(probe["pattern_count"].sum())
    fractions = [1.0] * len(settings.comparisons)
    if probe_pairs > 0:
        full_pairs = sampler.total_pairs * sampler.proportion**2
        fractions = thinning_fractions(level_counts(settings, probe), probe_pairs, full_pairs, U_MIN_COUNT_PER_LEVEL)
    frame = pattern_counts(linker, [sampler.full], fractions=fractions, seed=config.seed)
    pairs = int(frame["pattern_count"].sum())
    if pairs == 0:
        raise InputDataError(
            f"{config.name}: u estimation sampled no record pairs from the inputs; they are too small to train on"
        )
    for cc, counts in zip(settings.comparisons, level_counts(settings, frame)):
        denominator = sum(counts.values()) or 1.0
        for level in cc._comparison_levels_excluding_null:
            seen = counts[level.comparison_vector_value]
            level._add_trained_u_probability(max(seen, 1.0) / denominator, "estimate u by random sampling")
    linker._populate_m_u_from_trained_values()
    return {
        "sampled_pairs": pairs,
        "probe_pairs": probe_pairs,
        "evaluated_share": {cc.output_column_name: round(f, 4) for cc, f in zip(settings.comparisons, fractions)},
    }


def _blocking_adjusted_lambda(settings, rule: BlockingRule) -> float:
    """Probability that a pair blocked by ``rule`` matches (lambda times the rule's Bayes factors)."""
    bayes_factor = prob_to_bayes_factor(settings._probability_two_random_records_match)
    for info in Settings._get_comparison_levels_corresponding_to_training_blocking_rule(
        blocking_rule_sql=rule.blocking_rule_sql, sqlglot_dialect=_DIALECT, comparisons=settings.comparisons
    ):
        bayes_factor *= info["level"]._bayes_factor
    return bayes_factor_to_prob(bayes_factor)


def estimate_m(linker: Linker, config: TransformConfig, rule: BlockingRule, frame: pd.DataFrame) -> dict:
    """One EM session on the pattern counts of the pairs ``rule`` blocks.

    Comparisons that use the rule's columns are not estimated, as in Splink.
    """
    settings = linker._settings_obj
    used = set(get_columns_used_from_sql(rule.blocking_rule_sql, _DIALECT))
    active = [
        k for k, cc in enumerate(settings.comparisons)
        if not used & {c.input_name for c in cc._input_columns_used_by_case_statement}
    ]
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

    # one Spark job counts the pairs of every EM session and the u probe; one more the u sample
    t = time.perf_counter()
    sampler = USampler(linker, config, sizes)
    em_sets = [PairSet(f"em_{i}", _rule(r)) for i, r in enumerate(config.training.em_blocking_rules)]
    counts = pattern_counts(linker, [sampler.probe, *em_sets], seed=config.seed)
    timings["count_patterns"] = time.perf_counter() - t

    t = time.perf_counter()
    u_sampling = estimate_u(linker, config, sampler, _of(counts, sampler.probe))
    timings["u"] = time.perf_counter() - t

    t = time.perf_counter()
    sessions = [estimate_m(linker, config, s.rule, _of(counts, s)) for s in em_sets]
    timings["m"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    metadata = {
        "config_hash": config.model_hash(),
        "config_name": config.name,
        "seed": config.seed,
        "rows": sum(sizes),
        "rows_per_input": dict(zip([s.name for s in config.inputs], sizes)),
        "probability_two_random_records_match": linker._settings_obj._probability_two_random_records_match,
        "u_sampling": u_sampling,
        "em_sessions": sessions,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "versions": versions(),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.info(
        "trained on %d rows in %.1f s (u from %d sampled pairs, %d EM sessions)",
        sum(sizes), timings["total"], u_sampling["sampled_pairs"], len(sessions),
    )
    return TrainedModel(linker.misc.save_model_to_json(), metadata)
