"""Prepare single customer records for matching as the Spark batch does, without Spark.

For a service that takes records in a source's own schema (JSON objects as Python dicts):

* :func:`prepare_records` gives the rows the match stage would get for them: for a
  ``sources:`` config what :func:`~matcher.harmonize.harmonization.harmonize` gives
  (read_sources → standardize → quality gate), for an ``inputs:`` config what
  :func:`~matcher.harmonize.ingest.read_inputs` gives;
* :func:`golden_record` gives one matched entity's golden customer record, as
  :func:`~matcher.harmonize.golden.golden_records` does.

The rules themselves (patterns, per-value functions, reason texts) are those of
:mod:`matcher.harmonize.rules`, shared with the Spark stages; what Spark does with built-ins
is repeated here value by value (Spark's ``trim`` removes spaces only, its regexes read ``\\s``
as ASCII, a number cast to text is written as Java writes it). Problems with the input itself
(unknown column, unknown source, missing primary key, a value that is not a scalar) raise
:class:`~matcher.runtime.errors.InputDataError` naming the record and field, never the value.
No pyspark here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from matcher.config.base import RECORD_ID, SOURCE_DATASET_COLUMN
from matcher.config.harmonization import CANONICAL_FIELDS, HARMONIZED_INPUT, SOURCE_SYSTEM, GoldenSpec
from matcher.config.transform import DATE_KINDS, ComparisonKind, TableSpec, TransformConfig
from matcher.harmonize import rules
from matcher.harmonize.rules import SOURCE_KEY, raw
from matcher.runtime.errors import InputDataError

_EMAIL = rules.java_regex(rules.EMAIL)
_ZIP_PLUS_4 = rules.java_regex(rules.ZIP_PLUS_4)
_SHORT_DIGITS = rules.java_regex(rules.SHORT_DIGITS)
_REGION_CODE = rules.java_regex(rules.REGION_CODE)
_WHITESPACE_RUN = rules.java_regex(rules.WHITESPACE_RUN)
_NON_DIGITS = rules.java_regex(rules.NON_DIGITS)
_WHOLE_NUMBER = rules.java_regex(rules.WHOLE_NUMBER)
_JAVA_DOUBLE = rules.java_regex(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[dDfF]?$")
_SPECIAL_DOUBLES = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}


@dataclass
class PreparedRecords:
    """The records that pass, as the match stage's rows (index: their positions in the input list),
    and the quarantined ones as ``(position, reason)``."""

    rows: pd.DataFrame
    quarantined: list[tuple[int, str]] = field(default_factory=list)


# --- values as Spark reads them -----------------------------------------------------------


def _java_double(x: float) -> str:
    """A double as Spark casts it to text (Java's ``Double.toString``)."""
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        return repr(x)
    sign, digits, exponent = Decimal(repr(x)).as_tuple()
    text = "".join(map(str, digits))
    kept = text.rstrip("0")
    return f"{'-' if sign else ''}{kept[0]}.{kept[1:] or '0'}E{exponent + len(text) - 1}"


def _iso_date(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _scalar(value: Any, where: Callable[[], str]) -> Any:
    """``value`` as a plain Python scalar (numpy scalars unwrapped, NaN/NaT → None); a value that is
    not text, a number, a boolean, a date or a timestamp raises :class:`InputDataError`."""
    if isinstance(value, np.generic):
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else value.item()
    if value is None or (isinstance(value, (float, datetime)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, (str, bool, int, float, date)):
        return value
    raise InputDataError(f"{where()} is a {type(value).__name__}; expected text, a number, a boolean or a date")


def _text(value: Any) -> str | None:
    """A scalar as Spark's ``cast("string")`` writes it (dates ``yyyy-MM-dd``, timestamps ``yyyy-MM-dd HH:mm:ss``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, datetime):
        return f"{_iso_date(value)} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    return _iso_date(value)


def _double(value: Any) -> float | None:
    """Spark's ``cast("double")``: a number as it is; text trimmed, in Java's number syntax or inf/nan; else None."""
    if not isinstance(value, str):
        return float(value) if isinstance(value, (int, float)) else None
    text = value.strip()
    if text.lower() in _SPECIAL_DOUBLES:
        return float(text)
    return float(text.rstrip("dDfF")) if _JAVA_DOUBLE.search(text) else None


def _null_value(spec: TableSpec) -> str | None:
    """The text a CSV reader reads as null (Spark's ``nullValue``, default empty); None for other formats."""
    if spec.format != "csv":
        return None
    return next((v for k, v in spec.options.items() if k.lower() == "nullvalue"), "")


def _read(records: list[dict], known: list[str], key: str, spec: TableSpec | None) -> list[dict[str, Any]]:
    """Each record as ``{column: scalar}`` over ``known`` (absent → None), CSV null text → None;
    raises on a record that is not a dict, an unknown column, a missing key or a non-scalar value."""
    null = _null_value(spec) if spec is not None else None
    out = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputDataError(f"record {i} is a {type(record).__name__}, not an object of fields")
        unknown = [str(c) for c in record if c not in known]
        if unknown:
            raise InputDataError(f"record {i}: unknown field(s) {', '.join(map(repr, unknown))} "
                                 f"(known: {', '.join(known)})")
        row = {c: _scalar(record.get(c), lambda c=c, i=i: f"record {i}: field {c!r}") for c in known}
        if null is not None:
            row = {c: None if v == null else v for c, v in row.items()}
        if row[key] is None or (isinstance(row[key], str) and not row[key].strip()):
            raise InputDataError(f"record {i}: the primary key field {key!r} is missing")
        out.append(row)
    return out


# --- sources: harmonized rows -------------------------------------------------------------


def _harmonized(config: TransformConfig, records: list[dict], source: str | None) -> pd.DataFrame:
    """The records as :func:`~matcher.harmonize.sources.read_sources` stacks them (all text)."""
    specs = {s.name: s for s in config.sources}
    pass_through = rules.pass_through_columns(config)
    fields = [*CANONICAL_FIELDS, *pass_through]
    if source is None:
        rows = _read(records, [SOURCE_SYSTEM, SOURCE_KEY, *fields], SOURCE_KEY, None)
        for i, row in enumerate(rows):
            if row[SOURCE_SYSTEM] not in specs:
                raise InputDataError(f"record {i}: field {SOURCE_SYSTEM!r} is not one of the configured sources "
                                     f"({', '.join(specs)})")
        mapped = [{c: _text(v) for c, v in row.items()} for row in rows]
    else:
        if source not in specs:
            raise InputDataError(f"source {source!r} is not in config {config.name!r} (it has: {', '.join(specs)})")
        spec = specs[source]
        rows = _read(records, list(dict.fromkeys([spec.primary_key, *spec.columns.values()])), spec.primary_key, spec)
        mapped = [{SOURCE_SYSTEM: source, SOURCE_KEY: _text(row[spec.primary_key]),
                   **{f: _text(row[spec.columns[f]]) if f in spec.columns else None for f in fields}} for row in rows]
    for row in mapped:
        row[RECORD_ID] = f"{row[SOURCE_SYSTEM]}:{row[SOURCE_KEY]}"
        row[SOURCE_DATASET_COLUMN] = HARMONIZED_INPUT
    columns = [RECORD_ID, SOURCE_SYSTEM, SOURCE_KEY, *fields, SOURCE_DATASET_COLUMN]
    return pd.DataFrame(mapped, columns=columns, dtype=object)


def _map(values: pd.Series, rule: Callable[[str], str | None]) -> pd.Series:
    return values.map(lambda v: None if v is None else rule(v)).astype(object)


def _email(value: str, provider_rules: bool) -> str | None:
    email = rules.spark_trim(value).lower()
    if not _EMAIL.search(email):
        return None
    local, domain = email.split("@", 1)
    if provider_rules and domain in rules.GMAIL_DOMAINS:
        return local.split("+", 1)[0].replace(".", "") + "@gmail.com"
    return email


def _postcode(value: str) -> str | None:
    code = _WHITESPACE_RUN.sub(" ", rules.spark_trim(value)).upper()
    code = code[:5] if _ZIP_PLUS_4.search(code) else code
    code = code.rjust(5, "0") if _SHORT_DIGITS.search(code) else code
    return code if rules.spark_trim(code) else None


def _code(value: str) -> str | None:
    return rules.spark_trim(value).upper() or None


def _digits(value: str) -> str | None:
    return _NON_DIGITS.sub("", value) or None


def _region(country: str | None, default: str) -> str:
    code = None if country is None else rules.spark_trim(country).upper()
    return code if code is not None and _REGION_CODE.search(code) else default


def _dates(values: pd.Series, sources: pd.Series, config: TransformConfig) -> pd.Series:
    """Dates parsed with each row's source's formats, as ``yyyy-MM-dd`` (a row of an unknown source: null
    when the sources' formats differ, as in :func:`~matcher.harmonize.standardize._parsed_dates`)."""
    by_source = rules.source_date_formats(config)
    distinct = {tuple(f) for f in by_source.values()} or {tuple(config.standardize.date_formats)}
    formats = sources.map(lambda s: next(iter(distinct)) if len(distinct) == 1 else tuple(by_source.get(s, ())))
    out = pd.Series(None, index=values.index, dtype=object)
    for fmts in set(formats) - {()}:
        rows = formats.map(lambda f, fmts=fmts: f == fmts)
        parsed = rules.parse_calendar_dates(values[rows], list(fmts), config.standardize.date_ocr_repair)
        out[rows] = parsed.map(lambda d: None if d is None else _iso_date(d))
    return out


def _standardized(field: str, values: pd.Series, frame: pd.DataFrame, config: TransformConfig) -> pd.Series:
    """The twin of :func:`matcher.harmonize.standardize.standardized` for a column of raw text."""
    spec = config.standardize
    kind = CANONICAL_FIELDS[field]
    if kind in ("name", "text"):
        return rules.clean_names(values, keep_digits=kind == "text").astype(object)
    if kind == "date":
        return _dates(values, frame[SOURCE_SYSTEM], config)
    if kind == "timestamp":
        return rules.parse_dates(values, spec.timestamp_formats).astype("datetime64[us]")  # Spark's precision
    if kind == "email":
        return _map(values, lambda v: _email(v, spec.email_provider_rules))
    if kind == "phone":
        regions = frame[raw("country")].map(lambda c: _region(c, spec.default_region))
        return rules.e164_phones(values, regions)
    rule = {"postcode": _postcode, "code": _code, "digits": _digits}[kind]
    return _map(values, rule)


def standardize_frame(frame: pd.DataFrame, config: TransformConfig) -> pd.DataFrame:
    """The twin of :func:`matcher.harmonize.standardize.standardize`: raw values to ``raw_<field>``,
    standardized ones appended in canonical order, then ``first_name_canonical``."""
    present = [f for f in CANONICAL_FIELDS if f in frame.columns]
    out = frame.rename(columns={f: raw(f) for f in present})
    for f in present:
        out[f] = _standardized(f, out[raw(f)], out, config)
    if config.standardize.placeholder_names:
        for f in ("first_name", "last_name"):
            if f in present:
                out[f] = rules.without_placeholders(out[f]).astype(object)
    if "first_name" in present:
        formal = rules.formal_first_names(out["first_name"]) if config.standardize.nicknames else out["first_name"]
        out["first_name_canonical"] = formal.astype(object)
    return out


def quality_issues(frame: pd.DataFrame, config: TransformConfig) -> pd.Series:
    """The twin of :func:`matcher.harmonize.quality.rule_checks`: per row, the reasons it fails
    (``; ``-joined, in the gate's order), or None. Keys repeat only within ``frame``."""
    spec = config.quality
    issues: list[list[str]] = [[] for _ in range(len(frame))]

    def check(failed: pd.Series, reason: Callable[[int], str]) -> None:
        for n, bad in enumerate(failed.tolist()):
            if bad:
                issues[n].append(reason(n))

    keys = list(zip(frame[SOURCE_SYSTEM], frame[SOURCE_KEY]))
    repeats = Counter(keys)
    check(frame[SOURCE_KEY].isna(), lambda n: rules.NULL_KEY_REASON)
    check(pd.Series([k[1] is not None and repeats[k] > 1 for k in keys]),
          lambda n: rules.REPEATED_KEY_REASON % (keys[n][1], repeats[keys[n]]))
    for column in rules.encoding_columns(list(frame.columns), config):
        check(frame[column].map(lambda v: v is not None and rules.REPLACEMENT_CHARACTER in v),
              lambda n, column=column: rules.encoding_reason(column))
    for f in spec.required:
        check(frame[f].isna(), lambda n, f=f: rules.required_reason(f))
    for group in spec.require_any:
        check(frame[group].isna().all(axis=1), lambda n, group=group: rules.require_any_reason(group))
    for f in spec.parseable:
        given = frame[raw(f)].map(lambda v: v is not None and rules.spark_trim(v) != "")
        check(given & frame[f].isna(), lambda n, f=f: rules.parseable_reason(f) % frame[raw(f)].iloc[n])
    for f, allowed in spec.allowed_values.items():
        check(frame[f].notna() & ~frame[f].isin(allowed),
              lambda n, f=f: rules.allowed_values_reason(f) % frame[f].iloc[n])
    return pd.Series(["; ".join(i) or None for i in issues], index=frame.index, dtype=object)


# --- inputs: rows as read_inputs gives them ------------------------------------------------


def _input_rows(config: TransformConfig, records: list[dict], source: str | None) -> pd.DataFrame:
    """The records as :func:`~matcher.harmonize.ingest.read_inputs` gives them (see :func:`prepare_records`)."""
    specs = {s.name: s for s in config.inputs}
    name = source if source is not None else next(iter(specs)) if len(specs) == 1 else None
    if name not in specs:
        raise InputDataError(f"input {source!r} is not in config {config.name!r} (it has: {', '.join(specs)})")
    spec, key = specs[name], config.primary_key
    rows = _read(records, rules.input_columns(config), key, spec)
    if spec.format == "csv":  # a CSV input is all text
        rows = [{c: _text(v) for c, v in row.items()} for row in rows]
    repeated = [k for k, n in Counter(_text(r[key]) for r in rows).items() if n > 1]
    if repeated:
        where = [str(i) for i, r in enumerate(rows) if _text(r[key]) == repeated[0]]
        raise InputDataError(f"records {', '.join(where)}: the primary key field {key!r} repeats")
    keys = [r[key] for r in rows]
    if len(specs) > 1:
        keys = [_text(k) for k in keys]
    elif all(_WHOLE_NUMBER.search(_text(k)) for k in keys):
        keys = [int(_text(k)) for k in keys]
    kinds = {c.name: c.kind for c in config.columns}
    # column by column in plain Python, one DataFrame at the end: a record at a time is the common case
    data = {c: [r.get(c) for r in rows] for c in (list(rows[0]) if rows else rules.input_columns(config))}
    data[key] = pd.Series(keys, dtype="int64" if keys and all(type(k) is int for k in keys) else object)
    data[SOURCE_DATASET_COLUMN] = [name] * len(rows)
    for column, kind in kinds.items():
        if kind is ComparisonKind.numeric:
            data[column] = pd.Series([_double(v) for v in data[column]], dtype="float64")
        else:  # dates as yyyy-MM-dd (a timestamp loses its time), all else as text
            as_date = kind in DATE_KINDS
            data[column] = [_iso_date(v) if as_date and isinstance(v, date) else _text(v) for v in data[column]]
    keep = [c for c in data if c not in kinds]
    return pd.DataFrame({c: data[c] for c in [*keep, *config.column_names]}).astype(
        {c: object for c in [*keep, *config.column_names] if not isinstance(data[c], pd.Series)})


def prepare_records(config: TransformConfig, records: list[dict], source: str | None = None) -> PreparedRecords:
    """The rows the Spark batch gives the match stage for ``records`` (see the module docstring).

    ``sources:`` config: ``source`` names the source and the records use its column names; with
    ``source=None`` the records are in the harmonized schema (``source_system``, ``source_key``,
    canonical fields, pass-through columns; raw values). The rows are standardized and gated;
    a repeated key counts as repeated only among ``records``.

    ``inputs:`` config: ``source`` names the input (None: the only one); the records use its
    column names. A null or repeated key raises, as ``read_inputs`` does; the key is an int64
    column when every key is a whole number and there is one input.

    ``rows`` is indexed by the records' positions in ``records``.
    """
    if not config.sources:
        return PreparedRecords(_input_rows(config, records, source))
    frame = standardize_frame(_harmonized(config, records, source), config)
    issues = quality_issues(frame, config)
    rows = frame[issues.isna()]
    return PreparedRecords(rows, [(i, reason) for i, reason in enumerate(issues) if reason is not None])


# --- golden record ------------------------------------------------------------------------


def _native(value: Any) -> Any:
    """A frame's value as Spark's ``collect()`` gives it (Python scalars, None for missing)."""
    return _scalar(value, lambda: "a golden value")


def _rule_key(rows: pd.DataFrame, field: str, rule: str, spec: GoldenSpec, completeness: pd.Series) -> pd.Series:
    """The first part of :func:`~matcher.harmonize.golden._sort_key` (smallest wins) for each row."""
    if rule == "source_priority":
        return pd.Series(0, index=rows.index)
    if rule == "most_recent":
        return pd.to_datetime(rows[spec.timestamp_column]).map(lambda t: math.inf if pd.isna(t) else -t.value)
    if rule == "most_frequent":
        return -rows[field].map(rows[field].value_counts())
    if rule == "most_complete":
        return -completeness
    raise ValueError(f"unknown survivorship rule {rule!r}")


def golden_record(rows: pd.DataFrame, config: TransformConfig) -> dict:
    """The golden customer of one entity (``rows``: its matched rows, one ``match_id``), equal to its
    row of :func:`~matcher.harmonize.golden.golden_records` as ``collect()`` gives it: the same fields,
    survivorship rules and tie-breaks (``source_priority`` order, then the smallest ``record_id``)."""
    spec = config.golden or GoldenSpec()
    fields = rules.profile_fields(config)
    ids = sorted(set(rows["match_id"]))
    if len(ids) != 1:
        raise ValueError(f"golden_record takes the rows of one match_id; got {len(ids)}")
    priority = rows[SOURCE_SYSTEM].map(
        lambda s: spec.source_priority.index(s) if s in spec.source_priority else len(spec.source_priority))
    completeness = rows[fields].notna().sum(axis=1)
    out: dict[str, Any] = {"match_id": _native(ids[0]), "n_records": len(rows),
                           "source_systems": sorted(set(rows[SOURCE_SYSTEM])), "record_ids": sorted(rows[RECORD_ID])}
    for f in fields:
        key = _rule_key(rows, f, spec.rules.get(f, spec.default_rule), spec, completeness)
        ranked = [(k, p, r, n) for n, (k, p, r, v) in enumerate(zip(key, priority, rows[RECORD_ID], rows[f]))
                  if not pd.isna(v)]
        n = min(ranked)[3] if ranked else None
        out[f] = None if n is None else _native(rows[f].iloc[n])
        out[f"{f}__source"] = None if n is None else rows[SOURCE_SYSTEM].iloc[n]
        out[f"{f}__record_id"] = None if n is None else rows[RECORD_ID].iloc[n]
    return out
