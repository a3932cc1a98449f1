"""Read the configured inputs into one Spark DataFrame, refusing data that breaks the contract.

The contract (FindMatches'): every input has the primary key column, its values are
non-null and unique within the input, and every configured column exists. Violations
raise :class:`~matcher.runtime.errors.InputDataError` naming the file, column and keys.

CSV is read as RFC 4180 (:data:`CSV_DEFAULTS`) and nothing is dropped silently: a CSV
file, local or on S3, is first scanned in Python (:func:`check_csv_file`), so a file in another format, bytes
that are not UTF-8 and a row with more fields than the header are refused with the file and
line; date values that do not parse are counted and reported (:func:`check_dates`).
"""

from __future__ import annotations

import codecs
import csv
import logging
import sys
from contextlib import contextmanager
from functools import reduce
from pathlib import Path
from typing import Any, Callable, Iterator

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from matcher.config.transform import DATE_KINDS, ComparisonKind, InputSpec, TransformConfig
from matcher.harmonize.rules import WHOLE_NUMBER, input_columns
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, comparable
from matcher.runtime.errors import InputDataError
from matcher.runtime.s3 import S3File, s3_files

log = logging.getLogger(__name__)

_EXAMPLES = 5

CSV_DEFAULTS = {"header": "true", "multiLine": "true", "escape": '"'}
"""RFC 4180: a header line, quoted values may hold line breaks and doubled quotes (``""``).
An input's own ``options`` win (keys compared without case, as Spark does)."""

DATE_FORMATS = "yyyy-MM-dd, or a date or timestamp column of a Parquet input"
"""What a ``date``/``birth_date`` column of ``inputs:`` may hold (``sources:`` have ``date_formats``)."""
DATE_FIX = ("convert them to yyyy-MM-dd, or list the file under 'sources:' with its date_formats "
            "(strptime codes, e.g. date_formats: ['%d/%m/%Y'])")
"""How to make other date formats readable: ``inputs:`` take ISO dates only."""

_MAGIC = {
    b"PAR1": "a Parquet file (set format: parquet)",
    b"\x1f\x8b": "gzip-compressed (name it *.gz so Spark decompresses it)",
    b"PK\x03\x04": "a zip archive (unzip it first)",
}
_COMPRESSED = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")  # Spark decompresses these by name
_CHUNK = 1 << 20


@contextmanager
def csv_fields_unlimited() -> Iterator[None]:
    """Lift Python's :mod:`csv` field size limit (128 KiB) for the block: a long value is data,
    and Spark reads it whole."""
    before = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _option(options: dict[str, str], *names: str) -> str | None:
    """The value of the first of ``names`` set in ``options`` (case-insensitive keys), else None."""
    lowered = {k.lower(): v for k, v in options.items()}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def csv_options(spec: InputSpec) -> dict[str, str]:
    """:data:`CSV_DEFAULTS` under the input's own options."""
    given = {k.lower() for k in spec.options}
    return {**{k: v for k, v in CSV_DEFAULTS.items() if k.lower() not in given}, **spec.options}


def _local_files(path: Path) -> list[Path]:
    """The files Spark reads for a local path: the file, or a folder's files that are not hidden."""
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )


def local_input_bytes(config: TransformConfig) -> int | None:
    """How many bytes the config's sources (or inputs) hold on disk; ``None`` when one is remote, missing or
    cannot be read (reading it reports that, naming the file)."""
    total = 0
    for spec in config.sources or config.inputs:
        path = Path(spec.path)
        if "://" in spec.path or not path.exists():
            return None
        try:
            total += sum(file.stat().st_size for file in _local_files(path))
        except OSError:
            return None
    return total


def check_csv_file(file: Path | S3File, spec: InputSpec, options: dict[str, str], *, check_encoding: bool = True) -> None:
    """Refuse a CSV file (local, or on S3) that would be misread: another format's magic bytes, bytes that
    are not UTF-8 (unless an ``encoding``/``charset`` option names the encoding, or
    ``check_encoding`` is off), or a row with more fields than the header (Spark would drop
    the extra ones). Compressed files (``*.gz``, ...) are left to Spark."""
    if file.suffix.lower() in _COMPRESSED:
        return
    with file.open("rb") as f:
        head = f.read(4)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            raise InputDataError(f"{file}: input {spec.name!r} is declared as csv but looks like {kind}")
    encoding = _option(options, "encoding", "charset")
    if encoding is None and check_encoding:
        _require_utf8(file, spec)
    _check_field_counts(file, spec, options, encoding or "utf-8")


def _require_utf8(file: Path | S3File, spec: InputSpec) -> None:
    """Refuse a file with bytes that are not UTF-8, naming the first one's offset and line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with file.open("rb") as f:
        while chunk := f.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                at = offset + err.start
                line = lines + chunk.count(b"\n", 0, err.start) + 1
                raise InputDataError(
                    f"{file}: input {spec.name!r} is not UTF-8 (byte 0x{chunk[err.start]:02x} at offset {at}, "
                    f"line {line}); name its encoding in the config, e.g. options: {{encoding: latin1}}"
                ) from None
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputDataError(
            f"{file}: input {spec.name!r} is not UTF-8 (it ends inside a character, offset {offset}); "
            f"name its encoding in the config, e.g. options: {{encoding: latin1}}"
        ) from None


def _check_field_counts(file: Path | S3File, spec: InputSpec, options: dict[str, str], encoding: str) -> None:
    """Refuse the first record with more fields than the first record (the header), by its 1-based line."""
    sep = _option(options, "sep", "delimiter") or ","
    sep = "\t" if sep == "\\t" else sep
    quote = _option(options, "quote") or '"'
    escape = _option(options, "escape") or "\\"
    comment = _option(options, "comment")
    try:
        codecs.lookup(encoding)
    except LookupError:  # a charset only Java knows: Spark reads it, this scan cannot
        return
    if len(sep) != 1 or len(quote) != 1 or len(escape) != 1:
        return
    dialect = {"delimiter": sep, "quotechar": quote, "doublequote": escape == quote,
               "escapechar": None if escape == quote else escape}
    with file.open(encoding=encoding, errors="replace", newline="") as f, csv_fields_unlimited():
        reader = csv.reader(f, **dialect)
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        for row in reader:
            if len(row) > len(header) and not (comment and row[0].startswith(comment)):
                raise InputDataError(
                    f"{file}: line {start} has {len(row)} fields but the header has {len(header)} "
                    f"(input {spec.name!r}); quote values that hold the separator {sep!r}"
                )
            start = reader.line_num + 1


def read_input(spark: SparkSession, spec: InputSpec, *, check_encoding: bool = True) -> DataFrame:
    """One input file or folder as a DataFrame (CSV: :data:`CSV_DEFAULTS`, all strings).

    A CSV is scanned first (:func:`check_csv_file`; ``check_encoding=False`` lets bytes
    that are not UTF-8 through, for a caller that quarantines them), on S3 too (streamed);
    on other remote file systems (``hdfs://``, ...) Spark's reading is all the checking.
    """
    if "://" not in spec.path and not Path(spec.path).exists():
        raise InputDataError(f"{spec.path}: input {spec.name!r} does not exist")
    options = csv_options(spec) if spec.format == "csv" else dict(spec.options)
    if spec.format == "csv":
        remote = "://" in spec.path
        for file in s3_files(spark, spec.path) if remote else _local_files(Path(spec.path)):
            check_csv_file(file, spec, options, check_encoding=check_encoding)
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


def check_dates(df: DataFrame, config: TransformConfig) -> None:
    """Count, per input, the non-empty ``date``/``birth_date`` values that do not parse as the
    comparisons parse them (:func:`~matcher.model.comparisons.comparable`): they compare as null.

    Any: a WARNING with the column, file, count, share and up to five primary keys (never the
    values). More than half of a column's values: :class:`InputDataError` naming the accepted
    formats. ``df`` is :func:`read_inputs`' stacked frame, with ``source_dataset``.
    """
    dates = [c.name for c in config.columns if c.kind in DATE_KINDS]
    if not dates:
        return
    raws = [f"_raw_{i}" for i in range(len(dates))]
    parsed = comparable(df.select("*", *(F.col(d).alias(r) for d, r in zip(dates, raws))), config)
    given = [F.coalesce(F.trim(F.col(r)) != "", F.lit(False)) for r in raws]
    failed = [g & F.col(d).isNull() for g, d in zip(given, dates)]
    stats = parsed.groupBy(SOURCE_DATASET_COLUMN).agg(
        *(F.count(F.when(g, 1)).alias(f"given_{i}") for i, g in enumerate(given)),
        *(F.count(F.when(f, 1)).alias(f"failed_{i}") for i, f in enumerate(failed)),
    ).collect()
    specs = {s.name: s for s in config.inputs}
    for row in sorted(stats, key=lambda r: r[SOURCE_DATASET_COLUMN]):
        spec = specs[row[SOURCE_DATASET_COLUMN]]
        for i, column in enumerate(dates):
            bad, total = row[f"failed_{i}"], row[f"given_{i}"]
            if not bad:
                continue
            if 2 * bad > total:
                raise InputDataError(
                    f"{spec.path}: date column {column!r}: {bad} of {total} values ({bad / total:.0%}) are not "
                    f"dates in an accepted format ({DATE_FORMATS}); {DATE_FIX}"
                )
            mine = parsed.where((F.col(SOURCE_DATASET_COLUMN) == spec.name) & failed[i])
            keys = [r[0] for r in mine.select(config.primary_key).orderBy(config.primary_key).limit(_EXAMPLES).collect()]
            log.warning(
                "%s: date column %r: %d of %d values (%.1f%%) are not dates in an accepted format (%s) and "
                "compare as null (%s); primary keys: %s%s", spec.path, column, bad, total, 100 * bad / total,
                DATE_FORMATS, DATE_FIX, ", ".join(map(str, keys)), " ..." if bad > len(keys) else "",
            )


def read_inputs(spark: SparkSession, config: TransformConfig, *, check_keys: bool = True) -> DataFrame:
    """All inputs, validated and stacked, with a ``source_dataset`` column naming each row's input.

    A primary key whose values are all whole numbers is read as a number (so the
    smallest key, which names a cluster, is the numerically smallest); with several
    inputs keys are strings.

    Only the primary key, the matching columns, the columns that column-list rules block
    on, the truth column and ``retain_columns`` are kept.

    ``check_keys=False`` skips the Spark job that validates and types the primary key: for a
    caller that collects the rows and checks them itself (:func:`check_key_counts`).

    Date columns are checked (:func:`check_dates`) either way.
    """
    wanted = input_columns(config)
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
    stacked = _uniform_types(reduce(lambda a, b: a.unionByName(b), frames), config)
    check_dates(stacked, config)
    return stacked
