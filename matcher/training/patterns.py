"""Count record pairs per distinct comparison vector (pattern), in one Spark job.

Fellegi-Sunter estimation needs only how often each combination of comparison levels
occurs among a set of pairs. :func:`pattern_counts` builds the pairs of several sets
(a blocking rule, optionally among a row sample), evaluates Splink's comparison SQL on
them and groups by the levels, so that what reaches the driver is a small table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from splink import Linker

from matcher.blocking.candidates import SAMPLE_BUCKETS, JoinInputs, PairSet, any_rule
from matcher.model.dependence import NOT_EVALUATED
from matcher.model.level_sql import gamma_sql
from matcher.model.splink_adapter import (
    CTEPipeline, Settings, blocking_columns, database_api, gamma_column, gamma_columns, is_fixed, model_settings,
    non_null_levels, run_pipeline,
)
from matcher.training.em import log2_bayes_factors

SKIPPED = NOT_EVALUATED
"""Comparison-vector value of a comparison that a thinned u sample did not evaluate."""


def pattern_counts(
    linker: Linker, pair_sets: list[PairSet], *, fractions: list[float] | None = None, seed: int = 0,
    inputs: JoinInputs | None = None,
) -> pd.DataFrame:
    """Count the pairs of each set per distinct comparison vector, all sets in one Spark job.

    Returns one row per (``pair_set``, pattern) with ``pattern_count``. ``fractions``
    (one per comparison) evaluate comparison k on a seeded share of the sampled sets'
    pairs only (elsewhere its value is :data:`SKIPPED`); blocking sets are evaluated whole.
    ``inputs`` are the cached records to join (computed, and released again, when not given).
    """
    settings = model_settings(linker)
    info = settings.column_info_settings
    own_inputs = inputs is None
    inputs = inputs or JoinInputs.of(linker, [s.rule for s in pair_sets])
    columns = ", ".join(blocking_columns(settings))
    partitions = database_api(linker).spark.conf.get("spark.sql.shuffle.partitions")
    selects = []
    for pair_set in pair_sets:
        # one join per set straight to the compared columns; a sample is cross joined on its own
        sides = inputs.sampled(pair_set.sample_sql, partitions) if pair_set.sample_sql else (inputs.left, inputs.right)
        exclude = f" AND NOT ({any_rule(list(pair_set.exclude))})" if pair_set.exclude else ""
        selects.append(
            f"select {inputs.hint('r')}'{pair_set.name}' as pair_set, {columns} "
            f"from {sides[0]} as l inner join {sides[1]} as r on ({inputs.on(pair_set.rule)}) {inputs.where}{exclude}"
        )
    ids = [name for column in info.unique_id_input_columns for name in column.names_l_r]
    pair_hash = f"pmod(xxhash64({', '.join(f'cast({c} as string)' for c in ids)}, {seed}), {SAMPLE_BUCKETS})"
    pipeline = CTEPipeline()
    pipeline.enqueue_sql("\nunion all\n".join(selects), "__matcher__pairs_unhashed")
    # hashed once per pair here, not once per thinned comparison
    pipeline.enqueue_sql(f"select *, {pair_hash} as __pair_hash from __matcher__pairs_unhashed", "__matcher__pairs")
    fractions = fractions or [1.0] * len(settings.comparisons)
    shared, vectors = [], []
    sampled = ", ".join(f"'{s.name}'" for s in pair_sets if s.sample_sql is not None)
    for k, (cc, fraction) in enumerate(zip(settings.comparisons, fractions)):
        thinned = fraction < 1.0 and sampled
        evaluate = f"(pair_set NOT IN ({sampled}) OR __pair_hash < {int(fraction * SAMPLE_BUCKETS)})" if thinned else None
        gamma = gamma_sql(cc, f"__shared_{k}", evaluate)
        shared += gamma.shared
        case = gamma.case if evaluate is None else f"CASE WHEN {evaluate} THEN {gamma.case} ELSE {SKIPPED} END"
        vectors.append(f"{case} as {gamma_column(cc)}")
    pipeline.enqueue_sql(f"select *{''.join(', ' + s for s in shared)} from __matcher__pairs", "__matcher__pairs_shared")
    pipeline.enqueue_sql(
        f"select pair_set, {', '.join(vectors)} from __matcher__pairs_shared", "__matcher__comparison_vectors"
    )
    keys = ["pair_set", *gamma_columns(settings)]
    pipeline.enqueue_sql(
        f"select {', '.join(keys)}, count(*) as pattern_count from __matcher__comparison_vectors "
        f"group by {', '.join(keys)}",
        "__matcher__pattern_counts",
    )
    frame = run_pipeline(database_api(linker), pipeline).toPandas()
    if own_inputs:
        inputs.release()
    # Spark returns groups in no fixed order; sorting makes the float sums (and the model) reproducible
    return frame.sort_values(keys, ignore_index=True)


def of_set(frame: pd.DataFrame, pair_set: PairSet) -> pd.DataFrame:
    """The rows of a :func:`pattern_counts` frame that belong to ``pair_set``."""
    return frame[frame["pair_set"] == pair_set.name]


def add_counts(*frames: pd.DataFrame) -> pd.DataFrame:
    """Pattern counts of the same set from several parts, summed per pattern (sorted, so float sums are reproducible)."""
    frame = pd.concat(frames, ignore_index=True)
    keys = [c for c in frame.columns if c != "pattern_count"]
    return frame.groupby(keys, as_index=False)["pattern_count"].sum().sort_values(keys, ignore_index=True)


def gammas(settings: Settings, frame: pd.DataFrame) -> np.ndarray:
    """The comparison-vector columns of a pattern-count frame as a ``(patterns, comparisons)`` array."""
    return frame[gamma_columns(settings)].to_numpy(dtype=int)


def level_counts(settings: Settings, frame: pd.DataFrame) -> list[dict[int, float]]:
    """Per comparison, how many evaluated non-null pairs fell in each level."""
    vectors, counts = gammas(settings, frame), frame["pattern_count"].to_numpy(dtype=float)
    return [
        {cl.comparison_vector_value: float(counts[vectors[:, k] == cl.comparison_vector_value].sum())
         for cl in non_null_levels(cc)}
        for k, cc in enumerate(settings.comparisons)
    ]


def fixed_bits(settings: Settings, frame: pd.DataFrame) -> np.ndarray | None:
    """Per pattern row, the evidence (bits) of the comparisons whose m and u are fixed; None when none are."""
    fixed = [k for k, cc in enumerate(settings.comparisons) if is_fixed(cc)]
    if not fixed:
        return None
    levels = [non_null_levels(settings.comparisons[k]) for k in fixed]
    return log2_bayes_factors(
        gammas(settings, frame)[:, fixed],
        [{lv.comparison_vector_value: lv.m_probability for lv in lv_k} for lv_k in levels],
        [{lv.comparison_vector_value: lv.u_probability for lv in lv_k} for lv_k in levels],
    )
