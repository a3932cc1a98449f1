"""The quality gate: split standardized rows into rows to match and rows to quarantine, with reasons.

Rules (``quality:`` in the config; the first two are always on):

===============  =========================================================================
rule             a row fails when
===============  =========================================================================
primary_key      its source's primary key is null, or the key repeats in that source
                 (every row sharing it is quarantined: which one is right is unknowable)
encoding         a mapped text value holds U+FFFD, the mark a decoder leaves for bytes that
                 are not valid in the source's ``encoding`` (mixed encodings in one file)
required         a listed field is null after standardization
require_any      every field of a listed group is null (``[[email, phone, dob]]``)
parseable        a listed date/email/phone/timestamp field has a raw value that did not
                 standardize (a malformed date or phone); unlisted fields become null, and
                 for unlisted date fields that is logged (:func:`source_counts`)
allowed_values   a listed field's standardized value is not among the allowed ones
===============  =========================================================================

The quarantine table has one row per rejected input row: ``source_system``, ``record_id``,
``source_key``, ``rule`` (the failed rules, comma-separated), ``reason`` (one explanation
per failed rule, ``; ``-separated) and every raw and standardized column. Nothing is
dropped: rows in = rows passed + rows quarantined, per source (:func:`reconcile`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from matcher.config.base import RECORD_ID
from matcher.config.harmonization import CANONICAL_FIELDS, SOURCE_SYSTEM
from matcher.config.transform import TransformConfig
from matcher.harmonize.rules import (
    NULL_KEY_REASON,
    REPEATED_KEY_REASON,
    REPLACEMENT_CHARACTER,
    SOURCE_KEY,
    allowed_values_reason,
    encoding_columns,
    encoding_reason,
    parseable_reason,
    raw,
    require_any_reason,
    required_reason,
)
from matcher.runtime.errors import InputDataError, MatcherError

log = logging.getLogger(__name__)

_ISSUES = "_issues"
_EXAMPLES = 5


def _issue(failed: Column, rule: str, reason: Column) -> Column:
    return F.when(failed, F.struct(F.lit(rule).alias("rule"), reason.alias("reason")))


def key_repeats(df: DataFrame) -> dict[str, bool]:
    """Per source with rows, whether a primary key repeats in it (one Spark job over the keys
    alone; a source without rows is absent)."""
    keys = df.groupBy(SOURCE_SYSTEM, SOURCE_KEY).count()
    most = keys.groupBy(SOURCE_SYSTEM).agg(F.max(F.when(F.col(SOURCE_KEY).isNotNull(), F.col("count"))).alias("most"))
    return {r[SOURCE_SYSTEM]: (r["most"] or 0) > 1 for r in most.collect()}


def refuse_empty_sources(with_rows: Iterable[str], config: TransformConfig) -> None:
    """Raise on a source not among ``with_rows`` unless it sets ``allow_empty``."""
    for spec in config.sources or []:
        if spec.name not in with_rows and not spec.allow_empty:
            raise InputDataError(f"{spec.path}: source {spec.name!r} has no rows (set allow_empty: true to accept that)")


def rule_checks(df: DataFrame, config: TransformConfig, *, repeated_keys: bool = True) -> list[Column]:
    """One nullable issue struct (rule, reason) per check; null where the row passes it.

    ``repeated_keys=False`` (no source repeats a key, :func:`key_repeats`) leaves out
    the repeated-key check, whose window would shuffle every row.
    """
    spec = config.quality
    checks = [_issue(F.col(SOURCE_KEY).isNull(), "primary_key", F.lit(NULL_KEY_REASON))]
    if repeated_keys:
        repeats = F.count(F.lit(1)).over(Window.partitionBy(SOURCE_SYSTEM, SOURCE_KEY))
        checks.append(_issue(F.col(SOURCE_KEY).isNotNull() & (repeats > 1), "primary_key",
                             F.format_string(REPEATED_KEY_REASON, F.col(SOURCE_KEY), repeats)))
    for column in encoding_columns(df.columns, config):
        checks.append(_issue(F.coalesce(F.instr(F.col(column), REPLACEMENT_CHARACTER) > 0, F.lit(False)), "encoding",
                             F.lit(encoding_reason(column))))
    for field in spec.required:
        checks.append(_issue(F.col(field).isNull(), "required", F.lit(required_reason(field))))
    for group in spec.require_any:
        none = F.lit(True)
        for field in group:
            none = none & F.col(field).isNull()
        checks.append(_issue(none, "require_any", F.lit(require_any_reason(group))))
    for field in spec.parseable:
        given = F.coalesce(F.trim(F.col(raw(field))) != "", F.lit(False))
        checks.append(_issue(given & F.col(field).isNull(), "parseable",
                             F.format_string(parseable_reason(field), F.col(raw(field)))))
    for field, allowed in spec.allowed_values.items():
        bad = F.col(field).isNotNull() & ~F.col(field).isin(allowed)
        checks.append(_issue(bad, "allowed_values",
                             F.format_string(allowed_values_reason(field), F.col(field))))
    return checks


def check_rows(df: DataFrame, config: TransformConfig) -> DataFrame:
    """``df`` with the issues of each row (:func:`rule_checks`; an empty array where it passes them all).

    Runs one Spark job (:func:`key_repeats`), over the key columns alone: uncached, ``df``'s
    plan reads just them, without standardizing; a source without rows is refused
    (:func:`refuse_empty_sources`). Cache the result, not ``df``: :func:`split_checked` then
    filters it twice on the issues without evaluating them again."""
    repeats = key_repeats(df)
    refuse_empty_sources(repeats, config)
    checks = rule_checks(df, config, repeated_keys=any(repeats.values()))
    return df.withColumn(_ISSUES, F.filter(F.array(*checks), lambda x: x.isNotNull()))


def split_checked(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``(passed, quarantined)`` from :func:`check_rows`' rows: those with no issue, and the
    others with ``rule`` and ``reason``."""
    passed = checked.where(F.size(_ISSUES) == 0).drop(_ISSUES)
    quarantined = checked.where(F.size(_ISSUES) > 0).select(
        SOURCE_SYSTEM,
        RECORD_ID,
        SOURCE_KEY,
        F.array_join(F.array_distinct(F.transform(_ISSUES, lambda x: x["rule"])), ",").alias("rule"),
        F.array_join(F.transform(_ISSUES, lambda x: x["reason"]), "; ").alias("reason"),
        *[c for c in checked.columns if c not in (SOURCE_SYSTEM, RECORD_ID, SOURCE_KEY, _ISSUES)],
    )
    return passed, quarantined


def source_counts(rows_in: DataFrame, quarantined: DataFrame, config: TransformConfig) -> dict[str, dict]:
    """Per source: rows in, rows quarantined, and quarantined rows per rule. The same pass over
    ``rows_in`` counts the dates that did not parse (:func:`_warn_unparsed_dates`)."""
    counts = {s.name: {"rows_in": 0, "rows_quarantined": 0, "quarantined_by_rule": {}} for s in config.sources or []}
    fields = _unchecked_date_fields(rows_in, config)
    stats = rows_in.groupBy(SOURCE_SYSTEM).agg(
        F.count(F.lit(1)).alias("count"),
        *(F.count(F.when(_given(f), 1)).alias(f"given_{f}") for f in fields),
        *(F.count(F.when(_given(f) & F.col(f).isNull(), 1)).alias(f"failed_{f}") for f in fields),
    ).collect()
    for r in stats:
        counts[r[SOURCE_SYSTEM]]["rows_in"] = r["count"]
    _warn_unparsed_dates(rows_in, stats, fields, config)
    # one query for both: quarantined rows per source and combination of rules, summed here
    # per source and per rule (a row failing several rules counts once for each)
    for r in sorted(quarantined.groupBy(SOURCE_SYSTEM, "rule").count().collect(), key=lambda r: (r[SOURCE_SYSTEM], r["rule"])):
        mine = counts[r[SOURCE_SYSTEM]]
        mine["rows_quarantined"] += r["count"]
        for rule in r["rule"].split(","):
            mine["quarantined_by_rule"][rule] = mine["quarantined_by_rule"].get(rule, 0) + r["count"]
    return counts


def reconcile(counts: dict[str, dict], matched: DataFrame) -> dict[str, dict]:
    """Add ``rows_matched`` per source (rows in the match output) and check that
    ``rows_in == rows_matched + rows_quarantined`` for each; raises when a row went missing."""
    per_source = {r[SOURCE_SYSTEM]: r["count"] for r in matched.groupBy(SOURCE_SYSTEM).count().collect()}
    out = {}
    for name, c in counts.items():
        c = {**c, "rows_matched": per_source.get(name, 0)}
        if c["rows_in"] != c["rows_matched"] + c["rows_quarantined"]:
            raise MatcherError(
                f"source {name!r}: {c['rows_in']} rows in but {c['rows_matched']} matched + "
                f"{c['rows_quarantined']} quarantined"
            )
        out[name] = {"rows_in": c["rows_in"], "rows_matched": c["rows_matched"],
                     "rows_quarantined": c["rows_quarantined"], "quarantined_by_rule": c["quarantined_by_rule"]}
    return out


def _unchecked_date_fields(df: DataFrame, config: TransformConfig) -> list[str]:
    """The date fields whose unparsed values become null (not under ``quality.parseable``)."""
    return [f for f, kind in CANONICAL_FIELDS.items()
            if kind == "date" and f in df.columns and raw(f) in df.columns and f not in config.quality.parseable]


def _given(field: str) -> Column:
    return F.coalesce(F.trim(F.col(raw(field))) != "", F.lit(False))


def _warn_unparsed_dates(df: DataFrame, stats: list, fields: list[str], config: TransformConfig) -> None:
    """Log a WARNING per source and date field of ``fields`` whose non-empty raw values did not parse
    with the date formats (they become null), from the per-source ``stats``: the file, source column,
    count and up to five record ids, never the values, and how to fix it."""
    sources = {s.name: s for s in config.sources or []}
    for row in sorted(stats, key=lambda r: r[SOURCE_SYSTEM]):
        source = sources[row[SOURCE_SYSTEM]]
        for field in fields:
            bad, total = row[f"failed_{field}"], row[f"given_{field}"]
            if not bad:
                continue
            mine = df.where((F.col(SOURCE_SYSTEM) == source.name) & _given(field) & F.col(field).isNull())
            ids = [r[0] for r in mine.select(RECORD_ID).orderBy(RECORD_ID).limit(_EXAMPLES).collect()]
            log.warning(
                "%s: source %r column %r (%s): %d of %d values (%.1f%%) match none of the date_formats and become "
                "null; add their format to the source's date_formats (or standardize.date_formats), or list %s "
                "under quality.parseable to quarantine them; record ids: %s%s", source.path, source.name,
                source.columns.get(field, field), field, bad, total, 100 * bad / total, field,
                ", ".join(map(str, ids)), " ..." if bad > len(ids) else "",
            )
