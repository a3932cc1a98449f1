"""Which postcode comparison fits a column: decided from its values (``format: auto``).

:func:`postcode_format` reads a handful of values and names the format most of them have:

* ``us`` — at least :data:`SHARE` of the values are US ZIP codes (``12345``, ``12345-6789``,
  ``123456789``);
* ``uk`` — at least :data:`SHARE` look like UK postcodes (``SW1A 1AA``, ``M1 1AE``);
* ``digits`` — at least :data:`SHARE` are all digits and most of those have one length
  (Australia's ``2000``, India's ``110001``);
* otherwise ``uk``: Splink's postcode comparison, whose first level is an exact match.

:func:`resolve_formats` samples each ``auto`` postcode column of a Spark DataFrame (at
most :data:`SAMPLE_ROWS` non-null values; Spark stops reading once it has them) and
returns the configuration with the concrete formats filled in. Only the format is
logged, never a value.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.config.transform import TransformConfig

log = logging.getLogger(__name__)

SHARE = 0.8
"""Share of the non-null values that must fit a format for it to be chosen."""
SAMPLE_ROWS = 10_000
"""Non-null values read to decide a column's format."""

_US = re.compile(r"^\d{5}(-?\d{4})?$")
# outward code (area letters, district digit(s), optional letter), optional space, inward code (digit, two letters)
_UK = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}$")
_DIGITS = re.compile(r"^\d+$")


def postcode_format(values: Iterable[object]) -> str:
    """``us``, ``uk`` or ``digits``: the format at least :data:`SHARE` of the non-null values have.

    Values are trimmed and upper-cased first; empty strings count as null. With no
    values, or no format shared widely enough, the answer is ``uk`` (Splink's postcode
    comparison, exact match first).
    """
    texts = [str(v).strip().upper() for v in values if v is not None and not _is_nan(v)]
    texts = [t for t in texts if t]
    if not texts:
        return "uk"
    n = len(texts)
    if sum(1 for t in texts if _US.match(t)) >= SHARE * n:
        return "us"
    if sum(1 for t in texts if _UK.match(t)) >= SHARE * n:
        return "uk"
    lengths = Counter(len(t) for t in texts if _DIGITS.match(t))
    if lengths and lengths.most_common(1)[0][1] >= SHARE * n:
        return "digits"
    return "uk"


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and value != value


def column_format(df: DataFrame, column: str, *, limit: int = SAMPLE_ROWS) -> str:
    """:func:`postcode_format` of up to ``limit`` non-null values of ``df[column]`` (no full scan)."""
    rows = df.where(F.col(column).isNotNull()).select(F.col(column).cast("string").alias("v")).limit(limit).collect()
    return postcode_format(r.v for r in rows)


def resolve_formats(df: DataFrame, config: TransformConfig) -> TransformConfig:
    """A copy of ``config`` where every ``format: auto`` postcode column has the format its values in ``df`` have.

    Concrete formats are kept; ``config.model_hash()`` is unchanged (it hashes what the user wrote).
    """
    if not config.needs_formats:
        return config
    formats = {}
    for column in config.columns:
        if column.needs_format:
            formats[column.name] = column_format(df, column.name)
            log.info("postcode column %s: format %s (decided from the data)", column.name, formats[column.name])
    return with_formats(config, formats)


def with_formats(config: TransformConfig, formats: dict[str, str]) -> TransformConfig:
    """A copy of ``config`` with the ``auto`` postcode columns named in ``formats`` given those formats."""
    columns = [c.with_format(formats[c.name]) if c.needs_format and c.name in formats else c for c in config.columns]
    return config.model_copy(update={"columns": columns})


def column_formats(config: TransformConfig) -> dict[str, str]:
    """``{column: format}`` for every postcode column with a concrete format (what a model records)."""
    return {c.name: c.postcode_format for c in config.columns if c.kind.value == "postcode" and not c.needs_format}
