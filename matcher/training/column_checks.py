"""Whether each comparison column can tell records apart, checked before training.

A column with no values cannot be learned from (refused); a column holding one value in
every row, or an exact column that never repeats a value, cannot separate matches from
non-matches (warned). One Spark aggregation over the rows training reads.

Fellegi-Sunter adds the evidence of each comparison as if they were independent; two
comparisons that repeat one fact (the parts of one address) count it twice, so a
``sources:`` config comparing several address parts, or first names as written when
the nicknames-resolved ``first_name_canonical`` is there, is warned about too
(:func:`repeated_evidence`).
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.config.harmonization import ADDRESS_PARTS
from matcher.config.transform import ComparisonKind, TransformConfig
from matcher.runtime.errors import InputDataError

log = logging.getLogger(__name__)

_WHOLE_VALUE_KINDS = frozenset({ComparisonKind.exact, ComparisonKind.numeric})
"""Kinds with no level between "equal" and "different": a value that never repeats never agrees."""


def column_profile(df: DataFrame, config: TransformConfig) -> dict[str, dict[str, float]]:
    """Per comparison column: the share of rows with a value and the (approximate) number of distinct values."""
    columns = config.column_names
    row = df.agg(
        F.count(F.lit(1)).alias("__rows"),
        *(F.count(c).alias(f"n_{i}") for i, c in enumerate(columns)),
        *(F.approx_count_distinct(c, 0.01).alias(f"d_{i}") for i, c in enumerate(columns)),
    ).collect()[0]
    rows = row["__rows"] or 1
    return {
        c: {"non_null_share": round(row[f"n_{i}"] / rows, 4), "non_null": row[f"n_{i}"], "distinct": row[f"d_{i}"]}
        for i, c in enumerate(columns)
    }


def check_columns(df: DataFrame, config: TransformConfig, data: str) -> dict[str, dict[str, float]]:
    """Refuse a comparison column without values; warn about one that cannot tell records apart.

    ``data`` names the inputs in the messages. Returns :func:`column_profile`.
    """
    profile = column_profile(df, config)
    empty = [c for c, p in profile.items() if p["non_null"] == 0]
    if empty:
        raise InputDataError(
            f"{data}: column(s) {', '.join(empty)} have no values in any row: remove them from 'columns' "
            "(nothing can be learned from them)"
        )
    for column in config.columns:
        p = profile[column.name]
        if p["distinct"] <= 1:
            log.warning("column %r holds one value in every row that has one: it cannot tell records apart", column.name)
        elif column.kind in _WHOLE_VALUE_KINDS and p["distinct"] >= 0.99 * p["non_null"] and p["non_null"] > 100:
            log.warning(
                "column %r (kind %s) almost never repeats a value (%d distinct in %d rows): it will rarely agree",
                column.name, column.kind.value, p["distinct"], p["non_null"],
            )
        if p["non_null_share"] < 0.05:
            log.warning("column %r has a value in only %.1f%% of rows", column.name, 100 * p["non_null_share"])
    return profile


def repeated_evidence(config: TransformConfig) -> list[str]:
    """Warnings about comparisons that count one fact twice, or a name that nicknames split (``sources:`` configs)."""
    if config.sources is None:
        return []
    compared = config.column_names
    warnings = []
    parts = [c for c in ADDRESS_PARTS if c in compared]
    if len(parts) > 1:
        warnings.append(
            f"columns {', '.join(parts)} are all compared: the parts of one address repeat one another's evidence "
            f"(household members and neighbours share them all), so pairs at one address weigh as if they agreed "
            f"{len(parts)} times; compare {parts[0]} alone (`matcher init` does)"
        )
    if "first_name" in compared and "first_name_canonical" not in compared:
        warnings.append(
            "first_name is compared as written: a nickname (Bill, William) counts as a different name; "
            "compare first_name_canonical instead (nicknames resolved; `matcher init` does)"
        )
    for warning in warnings:
        log.warning(warning)
    return warnings
