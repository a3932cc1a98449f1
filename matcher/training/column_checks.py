"""Whether each comparison column can tell records apart, checked before training.

A column with no values cannot be learned from (refused); a column holding one value in
every row, or an exact column that never repeats a value, cannot separate matches from
non-matches (warned). One Spark aggregation over the rows training reads counts every
column's values (:func:`column_profile`), exactly at any size; automatic setup reads how
often two records agree from the same counts (:func:`matcher.training.sessions.agreement_rates`).

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


def compared_value(column: str, kind: ComparisonKind) -> F.Column:
    """The value compared exactly: the first letter for ``initial``, else the value as text."""
    value = F.col(column).cast("string")
    return F.substring(value, 1, 1) if kind is ComparisonKind.initial else value


def column_profile(df: DataFrame, config: TransformConfig, rows: int | None = None) -> dict[str, dict[str, float]]:
    """Per comparison column, its :func:`compared_value`'s counts: rows with a value (``non_null``,
    and their share of ``rows``, counted when not given), ``distinct`` values, and
    ``agreeing_pairs``, the pairs of records holding the same value. One Spark job, exact."""
    columns = config.columns
    values = F.array(*(F.struct(F.lit(i).alias("c"), compared_value(c.name, c.kind).alias("v")) for i, c in enumerate(columns)))
    counted = (
        df.select(F.explode(values).alias("x")).where("x.v IS NOT NULL")
        .groupBy("x.c", "x.v").agg(F.count(F.lit(1)).alias("n"))
        .groupBy("c").agg(
            F.sum("n").alias("n"), F.count(F.lit(1)).alias("distinct"), F.sum(F.col("n") * (F.col("n") - 1) / 2).alias("agree")
        )
        .collect()
    )
    found = {r["c"]: r for r in counted}
    rows = (rows if rows is not None else df.count()) or 1
    profile = {}
    for i, c in enumerate(columns):
        r = found.get(i)
        non_null = int(r["n"]) if r else 0
        profile[c.name] = {
            "non_null_share": round(non_null / rows, 4), "non_null": non_null, "distinct": int(r["distinct"]) if r else 0,
            "agreeing_pairs": float(r["agree"]) if r else 0.0,
        }
    return profile


def check_columns(df: DataFrame, config: TransformConfig, data: str, rows: int | None = None) -> dict[str, dict[str, float]]:
    """Refuse a comparison column without values; warn about one that cannot tell records apart.

    ``data`` names the inputs in the messages; ``rows`` is their row count when known.
    Returns :func:`column_profile`.
    """
    profile = column_profile(df, config, rows)
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
