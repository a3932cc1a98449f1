"""Standardize canonical fields into comparable forms, keeping each raw value as ``raw_<field>``.

==========  ====================================================================================
kind        standardized value
==========  ====================================================================================
name        transliterated to ASCII (``anyascii``), lower case, letters and single spaces only
            (hyphens become spaces, apostrophes and dots vanish): ``"  José O'Brien-Smith"`` →
            ``"jose obrien smith"``; ``first_name_canonical`` adds the nickname's formal name
            from the ``nicknames`` package (``jim`` → ``james``); with ``placeholder_names``
            a first or last name in :data:`PLACEHOLDER_NAMES` (``mom``, ``unknown``, ``j``)
            becomes null
text        as name, keeping digits (streets, cities, house numbers, units)
date        ISO ``yyyy-MM-dd``: the first of ``date_formats`` (per source, else global) that
            parses the whole value (``pandas.to_datetime``); with ``date_ocr_repair`` a value
            none parses is tried again with OCR look-alikes read as digits (``O1/|5/199S``
            → ``01/15/1995``); else null
timestamp   a Spark timestamp, by ``timestamp_formats``; else null
email       trimmed, lower case, must look like ``local@domain.tld``; with
            ``email_provider_rules`` Gmail addresses lose dots and ``+tags`` in the local part
            and ``googlemail.com`` becomes ``gmail.com``
phone       E.164 (``+14155550123``) by Google's libphonenumber (``phonenumbers``), in the row's
            ``country`` when it is a two-letter code, else ``default_region``; null when the
            number is not possible there
postcode    upper case, single spaces; US ZIP+4 cut to the ZIP, all-digit codes shorter than 5
            (leading zeros lost to a spreadsheet) padded to 5
code        upper case, trimmed (states, countries)
digits      digits only (national ids): ``123-45-6789`` → ``123456789``
==========  ====================================================================================

Empty results are null. Python work runs in pandas UDFs (Arrow batches); the rest is Spark
built-ins. The per-value functions and the patterns live in :mod:`matcher.harmonize.rules`, shared
with the Spark-free per-record path (:mod:`matcher.harmonize.records`).
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from matcher.config.harmonization import CANONICAL_FIELDS, SOURCE_SYSTEM, StandardizeSpec
from matcher.config.transform import TransformConfig
from matcher.harmonize.rules import (  # noqa: F401 - the per-value functions are public here too
    EMAIL,
    GMAIL_DOMAINS,
    NON_DIGITS,
    OCR_DIGITS,
    PLACEHOLDER_NAMES,
    RAW_PREFIX,
    REGION_CODE,
    SHORT_DIGITS,
    WHITESPACE_RUN,
    ZIP_PLUS_4,
    clean_names,
    e164_phones,
    formal_first_names,
    nickname_table,
    parse_calendar_dates,
    parse_dates,
    raw,
    source_date_formats,
    without_placeholders,
)

# --- Spark columns ------------------------------------------------------------------------


@F.pandas_udf(T.StringType())
def _names_udf(values: pd.Series) -> pd.Series:
    return clean_names(values)


@F.pandas_udf(T.StringType())
def _text_udf(values: pd.Series) -> pd.Series:
    return clean_names(values, keep_digits=True)


@F.pandas_udf(T.StringType())
def _formal_udf(values: pd.Series) -> pd.Series:
    return formal_first_names(values)


@F.pandas_udf(T.StringType())
def _phone_udf(values: pd.Series, regions: pd.Series) -> pd.Series:
    return e164_phones(values, regions)


@F.pandas_udf(T.StringType())
def _placeholders_udf(values: pd.Series) -> pd.Series:
    return without_placeholders(values)


def _date_udf(formats: list[str], ocr_repair: bool = False):
    @F.pandas_udf(T.DateType())
    def parse(values: pd.Series) -> pd.Series:
        return parse_calendar_dates(values, formats, ocr_repair)

    return parse


def _timestamp_udf(formats: list[str]):
    @F.pandas_udf(T.TimestampType())
    def parse(values: pd.Series) -> pd.Series:
        return parse_dates(values, formats)

    return parse


def _blank_to_null(c: Column) -> Column:
    return F.when(F.trim(c) != "", c)


def standard_email(c: Column, provider_rules: bool) -> Column:
    """Trimmed, lower-case email; null unless it looks like ``local@domain.tld``."""
    email = F.lower(F.trim(c))
    email = F.when(email.rlike(EMAIL), email)
    if not provider_rules:
        return email
    local, domain = F.substring_index(email, "@", 1), F.substring_index(email, "@", -1)
    gmail = domain.isin(*GMAIL_DOMAINS)
    gmail_local = F.regexp_replace(F.substring_index(local, "+", 1), r"\.", "")
    return F.when(gmail, F.concat(gmail_local, F.lit("@gmail.com"))).otherwise(email)


def standard_postcode(c: Column) -> Column:
    """Upper case with single spaces; ZIP+4 → ZIP; short all-digit codes padded to 5 digits."""
    code = F.upper(F.regexp_replace(F.trim(c), WHITESPACE_RUN, " "))
    code = F.when(code.rlike(ZIP_PLUS_4), F.substring(code, 1, 5)).otherwise(code)
    code = F.when(code.rlike(SHORT_DIGITS), F.lpad(code, 5, "0")).otherwise(code)
    return _blank_to_null(code)


def _parsed_dates(c: Column, config: TransformConfig) -> Column:
    """Dates parsed with each source's own formats (a source may write ``dd/MM`` where another writes ``MM/dd``).

    Each formats' parser is sent only its sources' values (the others as nulls): a value no format
    reads is tried again one by one, which every other source's value would be."""
    by_source = source_date_formats(config)
    repair = config.standardize.date_ocr_repair
    distinct = {tuple(f) for f in by_source.values()} or {tuple(config.standardize.date_formats)}
    if len(distinct) == 1:
        return _date_udf(list(next(iter(distinct))), repair)(c)
    parsed = None
    for formats in distinct:
        names = [s for s, f in by_source.items() if tuple(f) == formats]
        branch = F.col(SOURCE_SYSTEM).isin(names)
        one = _date_udf(list(formats), repair)(F.when(branch, c))
        parsed = F.when(branch, one) if parsed is None else parsed.when(branch, one)
    return parsed


def standardized(field: str, c: Column, config: TransformConfig, *, country: Column | None = None) -> Column:
    """The standardized value of canonical ``field`` whose raw value is ``c`` (``country``: the
    row's raw country, which sets a phone number's region when it is a two-letter code)."""
    spec: StandardizeSpec = config.standardize
    kind = CANONICAL_FIELDS[field]
    if kind == "name":
        return _names_udf(c)
    if kind == "text":
        return _text_udf(c)
    if kind == "date":
        return F.date_format(_parsed_dates(c, config), "yyyy-MM-dd")
    if kind == "timestamp":
        return _timestamp_udf(spec.timestamp_formats)(c)
    if kind == "email":
        return standard_email(c, spec.email_provider_rules)
    if kind == "phone":
        code = F.upper(F.trim(country if country is not None else F.lit(None).cast("string")))
        region = F.when(code.rlike(REGION_CODE), code).otherwise(F.lit(spec.default_region))
        return _phone_udf(c, region)
    if kind == "postcode":
        return standard_postcode(c)
    if kind == "code":
        return _blank_to_null(F.upper(F.trim(c)))
    if kind == "digits":
        return _blank_to_null(F.regexp_replace(c, NON_DIGITS, ""))
    raise ValueError(f"unknown standardization kind {kind!r} for {field}")


def standardize(df: DataFrame, config: TransformConfig) -> DataFrame:
    """Rows from :func:`matcher.harmonize.sources.read_sources` with every canonical field standardized.

    The raw value of each field moves to ``raw_<field>``; the field itself holds the
    standardized value; ``first_name_canonical`` is added (equal to ``first_name`` when
    ``standardize.nicknames`` is off). With ``standardize.placeholder_names``, placeholder
    first and last names are null in the standardized columns (the raw ones keep them).
    """
    present = [f for f in CANONICAL_FIELDS if f in df.columns]
    renamed = df.select(*[F.col(c).alias(raw(c)) if c in present else F.col(c) for c in df.columns])
    country = F.col(raw("country")) if "country" in present else None
    out = renamed.select("*", *[standardized(f, F.col(raw(f)), config, country=country).alias(f) for f in present])
    if config.standardize.placeholder_names:
        for f in ("first_name", "last_name"):
            if f in present:
                out = out.withColumn(f, _placeholders_udf(F.col(f)))
    if "first_name" in present:
        formal = _formal_udf(F.col("first_name")) if config.standardize.nicknames else F.col("first_name")
        out = out.withColumn("first_name_canonical", formal)
    return out
