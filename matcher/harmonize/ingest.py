"""Read the configured inputs into one Spark DataFrame, refusing data that breaks the contract.

The contract (FindMatches'): every input has the primary key column, its values are
non-null and unique within the input, and every configured column exists. Violations
raise :class:`~matcher.runtime.errors.InputDataError` naming the file, column and keys.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path
from typing import Any, Callable

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from matcher.config.transform import DATE_KINDS, ComparisonKind, InputSpec, TransformConfig
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError

log = logging.getLogger(__name__)

_EXAMPLES = 5
# no leading zeros: "007" and "7" are different keys and must stay different after the cast
WHOLE_NUMBER = r"^(0|-?[1-9][0-9]{0,17})$"


def read_input(spark: SparkSession, spec: InputSpec) -> DataFrame:
    """One input file or folder as a DataFrame (CSV is read with a header, all strings)."""
    if "://" not in spec.path and not Path(spec.path).exists():
        raise InputDataError(f"{spec.path}: input {spec.name!r} does not exist")
    options = {"header": "true", **spec.options} if spec.format == "csv" else dict(spec.options)
    try:
        df = spark.read.format(spec.format).options(**options).load(spec.path)
        df.schema  # noqa: B018 - forces Spark to open the file now
    except (PySparkException, Py4JJavaError) as err:
        raise unreadable(spec, err) from None
    if not df.columns:
        raise InputDataError(f"{spec.path}: input {spec.name!r} is empty (no header, no columns)")
    return df


def unreadable(spec: InputSpec, err: Exception) -> InputDataError:
    """The one-line error for an input that opened but whose rows do not parse."""
    return InputDataError(f"{spec.path}: cannot read input {spec.name!r} as {spec.format} ({_reason(err)})")


def _reason(err: Exception) -> str:
    """The first line of the innermost Java cause (a corrupt footer, ...), else of the error itself."""
    text = str(err)
    if isinstance(err, Py4JJavaError):
        cause = err.java_exception
        while cause.getCause() is not None:
            cause = cause.getCause()
        text = str(cause.getMessage() or cause.toString())
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _require_columns(df: DataFrame, spec: InputSpec, wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{spec.path}: column(s) {', '.join(missing)} named in the config are missing "
            f"(input {spec.name!r} has: {', '.join(df.columns) or 'no columns'})"
        )


def check_key_counts(spec: InputSpec, key: str, rows: int, keys: int, distinct: int,
                     repeated: Callable[[], list[tuple[Any, int]]]) -> None:
    """Raise on an empty input, null keys or repeated keys.

    ``keys`` counts the non-null keys, ``distinct`` the distinct ones; ``repeated()`` gives
    the repeated keys with their counts, smallest key first (only called when needed; the
    first six are enough).
    """
    if rows == 0:
        raise InputDataError(f"{spec.path}: input {spec.name!r} has no rows")
    if keys < rows:
        raise InputDataError(f"{spec.path}: primary key {key!r} is null in {rows - keys} row(s)")
    if distinct < rows:
        examples = repeated()
        shown = ", ".join(f"{value!s} (x{count})" for value, count in examples[:_EXAMPLES])
        raise InputDataError(
            f"{spec.path}: primary key {key!r} repeats: {shown}{' ...' if len(examples) > _EXAMPLES else ''}"
        )


def _check_primary_key(df: DataFrame, spec: InputSpec, key: str) -> tuple[int, bool]:
    """Row count of a valid input and whether every key is a whole number (see :func:`check_key_counts`)."""
    stats = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(key).alias("keys"),
        F.countDistinct(key).alias("distinct"),
        F.count(F.when(F.col(key).cast("string").rlike(WHOLE_NUMBER), 1)).alias("numeric"),
    ).first()

    def repeated() -> list[tuple[Any, int]]:
        rows = df.groupBy(key).count().where("count > 1").orderBy(key).limit(_EXAMPLES + 1).collect()
        return [(r[key], r["count"]) for r in rows]

    check_key_counts(spec, key, stats["rows"], stats["keys"], stats["distinct"], repeated)
    return int(stats["rows"]), stats["numeric"] == stats["rows"]


def _uniform_types(df: DataFrame, config: TransformConfig) -> DataFrame:
    """Matching columns get one type whatever the input: dates as ISO strings, numbers as
    they are (numeric columns read as text, e.g. from CSV, as doubles; unparseable → null),
    everything else as strings (:func:`matcher.model.comparisons.comparable` then
    parses the dates for comparison)."""
    exprs = []
    for column in config.columns:
        c = F.col(column.name)
        if column.kind in DATE_KINDS:
            c = F.date_format(c, "yyyy-MM-dd") if dict(df.dtypes)[column.name] in ("date", "timestamp") else c.cast("string")
        elif column.kind is ComparisonKind.numeric:
            c = c.cast("double") if dict(df.dtypes)[column.name] == "string" else c
        else:
            c = c.cast("string")
        exprs.append(c.alias(column.name))
    keep = [c for c in df.columns if c not in config.column_names]
    return df.select(*keep, *exprs)


def _rule_columns(config: TransformConfig) -> list[str]:
    """Columns named by column-list blocking and training rules (raw SQL rules are not parsed)."""
    specs = [getattr(r, "rule", r) for r in config.blocking_rules]
    rules = [*specs, *config.training.deterministic_rules, *config.training.em_blocking_rules]
    return [column for rule in rules if isinstance(rule, list) for column in rule]


def read_inputs(spark: SparkSession, config: TransformConfig, *, check_keys: bool = True) -> DataFrame:
    """All inputs, validated and stacked, with a ``source_dataset`` column naming each row's input.

    A primary key whose values are all whole numbers is read as a number (so the
    smallest key, which names a cluster, is the numerically smallest); with several
    inputs keys are strings.

    Only the primary key, the matching columns, the columns that column-list rules block
    on, the truth column and ``retain_columns`` are kept.

    ``check_keys=False`` skips the Spark job that validates and types the primary key: for a
    caller that collects the rows and checks them itself (:func:`check_key_counts`).
    """
    wanted = [config.primary_key, *config.column_names, *config.retain_columns, *_rule_columns(config)]
    if config.truth_column:
        wanted.append(config.truth_column)
    wanted = list(dict.fromkeys(wanted))
    frames = []
    for spec in config.inputs:
        df = read_input(spark, spec)
        _require_columns(df, spec, wanted)
        df = df.select(*wanted)
        if check_keys:
            try:
                rows, numeric = _check_primary_key(df, spec, config.primary_key)
            except (PySparkException, Py4JJavaError) as err:  # a file that opened but whose rows do not parse
                raise unreadable(spec, err) from None
            log.info("input %s: %d rows", spec.name, rows)
            key = F.col(config.primary_key)
            # whole-number keys (often read from CSV as text) order as numbers; several inputs share a string key
            key = key.cast("string") if len(config.inputs) > 1 else key.cast("long") if numeric else key
            df = df.withColumn(config.primary_key, key)
        frames.append(df.withColumn(SOURCE_DATASET_COLUMN, F.lit(spec.name)))
    stacked = reduce(lambda a, b: a.unionByName(b), frames)
    return _uniform_types(stacked, config)
