"""Ingest N source systems onto one canonical customer schema.

Each source (CSV, Parquet or JSON lines; local paths or ``s3://``/``s3a://`` URIs read
by Spark) maps its own columns onto the canonical fields of
:data:`~matcher.config.harmonization.CANONICAL_FIELDS`. The stacked result has one row per
source row and these columns:

* ``record_id`` — ``<source>:<primary key>``, the global record id;
* ``source_system`` — the source's name; ``source_key`` — its primary key as a string;
* every canonical field, as the source's raw text (null where a source does not map it);
* every pass-through column named in any source's ``columns``, as text;
* ``source_dataset`` — the single input name the match stage expects (``harmonized``).

Files are read by :func:`~matcher.harmonize.ingest.read_input` (CSV as RFC 4180; a local CSV
in another format or with a row longer than its header is refused). Beyond that only the file
and the mapped columns must exist: keys, encodings and value formats are the quality gate's
job (:mod:`matcher.harmonize.quality`), so a bad row is quarantined with a reason instead of
failing the whole run.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from matcher.config.base import RECORD_ID
from matcher.config.harmonization import CANONICAL_FIELDS, HARMONIZED_INPUT, SOURCE_SYSTEM, SourceSpec
from matcher.config.transform import TransformConfig
from matcher.harmonize.ingest import read_input
from matcher.harmonize.rules import SOURCE_KEY, pass_through_columns
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError

log = logging.getLogger(__name__)


def _as_text(df: DataFrame, column: str) -> F.Column:
    """A source column as text; typed dates and timestamps become ISO strings."""
    kind = df.schema[column].dataType
    if isinstance(kind, T.DateType):
        return F.date_format(F.col(column), "yyyy-MM-dd")
    if isinstance(kind, T.TimestampType):
        return F.date_format(F.col(column), "yyyy-MM-dd HH:mm:ss")
    return F.col(column).cast("string")


def read_source(spark: SparkSession, spec: SourceSpec, pass_through: list[str]) -> DataFrame:
    """One source mapped onto the canonical schema (all text), with its record ids.

    Raises :class:`InputDataError` when the file is missing or unreadable, or when a mapped
    column or the primary key is missing (the quality gate refuses a source without rows,
    :func:`matcher.harmonize.quality.refuse_empty_sources`).
    """
    df = read_input(spark, spec, check_encoding=False)  # the quality gate quarantines bad bytes
    wanted = [spec.primary_key, *spec.columns.values()]
    missing = [c for c in dict.fromkeys(wanted) if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{spec.path}: source {spec.name!r}: column(s) {', '.join(missing)} named in the config are missing "
            f"(it has: {', '.join(df.columns)})"
        )
    key = _as_text(df, spec.primary_key)
    fields = [
        (_as_text(df, spec.columns[f]) if f in spec.columns else F.lit(None).cast("string")).alias(f)
        for f in [*CANONICAL_FIELDS, *pass_through]
    ]
    return df.select(
        F.when(key.isNotNull(), F.concat_ws(":", F.lit(spec.name), key)).alias(RECORD_ID),
        F.lit(spec.name).alias(SOURCE_SYSTEM),
        key.alias(SOURCE_KEY),
        *fields,
        F.lit(HARMONIZED_INPUT).alias(SOURCE_DATASET_COLUMN),
    )


def read_sources(spark: SparkSession, config: TransformConfig) -> DataFrame:
    """Every configured source, mapped and stacked (see the module docstring for the columns)."""
    if not config.sources:
        raise InputDataError(f"{config.name}: no sources configured")
    pass_through = pass_through_columns(config)
    frames = [read_source(spark, spec, pass_through) for spec in config.sources]
    log.info("read %d source(s): %s", len(frames), ", ".join(s.name for s in config.sources))
    return reduce(lambda a, b: a.unionByName(b), frames)
