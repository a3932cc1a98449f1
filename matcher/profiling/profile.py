"""Profile the first rows of a source file: per column, how full, how varied and what shape its values are.

Files are read with pandas/pyarrow (no Spark), at most :data:`MAX_ROWS` rows each. The
format comes from the extension: ``.csv`` (also ``.csv.gz``, ``.tsv``), ``.parquet``/``.pq``
(a file or a folder of part files), ``.json``/``.jsonl``/``.ndjson`` (JSON lines; a JSON
array is read too and flagged ``multiLine``). A CSV that is not UTF-8 is read as
ISO-8859-1 and its ``encoding`` option is set, as ``matcher run`` requires.

Profiles hold counts, shares and value *shapes* (``"99999"``, ``"Aaaa"``); the sampled
values stay inside :class:`ColumnProfile` for kind detection and are never printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from matcher.runtime.errors import InputDataError

MAX_ROWS = 200_000
"""Rows profiled per file (the first ones)."""

SAMPLE_VALUES = 5_000
"""Non-null values per column kept for kind detection (a seeded sample when there are more)."""

_CSV = (".csv", ".tsv", ".txt")
_PARQUET = (".parquet", ".pq")
_JSON = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class ColumnProfile:
    """One column's statistics; ``sample`` holds up to :data:`SAMPLE_VALUES` non-null values as text."""

    name: str
    dtype: str  # string | integer | float | boolean | date | timestamp | nested
    rows: int
    non_null: int
    distinct: int
    top_share: float
    """Share of the non-null values held by the most common value."""
    patterns: tuple[tuple[str, float], ...]
    """The most common value shapes (digits → 9, letters → A/a) with their shares."""
    min_length: int
    max_length: int
    mean_length: float
    sample: pd.Series = field(repr=False, compare=False)

    @property
    def null_share(self) -> float:
        return 1.0 - self.non_null / self.rows if self.rows else 1.0

    @property
    def distinct_share(self) -> float:
        """Distinct values per non-null value (1.0: every value is unique)."""
        return self.distinct / self.non_null if self.non_null else 0.0


@dataclass(frozen=True)
class FileProfile:
    """A source file's profile: its format, reader options and columns."""

    path: Path
    format: str  # csv | parquet | json (the config's formats)
    options: dict[str, str]
    rows: int
    truncated: bool
    """True when the file has more than :data:`MAX_ROWS` rows (only the first ones were profiled)."""
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)


def file_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``json`` from the file name (``.gz`` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _CSV:
        return "csv"
    if last in _PARQUET or (path.is_dir() and any(path.glob("*.parquet"))):
        return "parquet"
    if last in _JSON:
        return "json"
    raise InputDataError(
        f"{path}: cannot tell the format from the name (expected .csv, .csv.gz, .parquet, .json or .jsonl)"
    )


def shape(value: str, limit: int = 14) -> str:
    """A value's shape: digits → ``9``, upper-case letters → ``A``, lower-case → ``a``, other characters
    kept; values longer than ``limit`` have runs collapsed (``Aa+ 9+``) so shapes stay short."""
    out = re.sub(r"\d", "9", value)
    out = re.sub(r"[^\W\d_]", lambda m: "A" if m.group().isupper() else "a", out)
    if len(out) > limit:
        out = re.sub(r"(.)\1+", r"\1+", out)[: limit * 2]
    return out


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    sep = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    options: dict[str, str] = {} if sep == "," else {"sep": "\\t"}
    kwargs = dict(dtype=str, nrows=MAX_ROWS + 1, keep_default_na=False, na_values=[""], sep=sep)
    try:
        encoding, frame = "utf-8", pd.read_csv(path, encoding="utf-8", **kwargs)
    except UnicodeDecodeError:
        encoding, options = "ISO-8859-1", {**options, "encoding": "ISO-8859-1"}
        frame = pd.read_csv(path, encoding=encoding, **kwargs)
    header = pd.read_csv(path, encoding=encoding, sep=sep, header=None, nrows=1, dtype=str).iloc[0].tolist()
    if len(header) == len(frame.columns):  # pandas renames repeated names (a, a.1): keep them as written
        frame.columns = ["" if pd.isna(h) else str(h) for h in header]
    return frame, options


def _read_json(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    try:
        return pd.read_json(path, lines=True, nrows=MAX_ROWS + 1, dtype=False, convert_dates=False), {}
    except ValueError:
        frame = pd.read_json(path, dtype=False, convert_dates=False)  # one JSON document (an array of records)
        return frame.head(MAX_ROWS + 1), {"multiLine": "true"}


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    import pyarrow as pa
    import pyarrow.dataset as ds

    table = ds.dataset(str(path), format="parquet").head(MAX_ROWS + 1)
    types: dict[str, str] = {}
    for f in table.schema:
        t = f.type
        types[f.name] = (
            "date" if pa.types.is_date(t) else "timestamp" if pa.types.is_timestamp(t)
            else "integer" if pa.types.is_integer(t) else "float" if pa.types.is_floating(t)
            else "boolean" if pa.types.is_boolean(t)
            else "nested" if pa.types.is_nested(t) else "string"
        )
    return table.to_pandas(), {}, types


def read_head(path: Path) -> tuple[pd.DataFrame, str, dict[str, str], dict[str, str]]:
    """The first rows of a file (at most ``MAX_ROWS + 1``), its format, reader options and column types.

    Raises :class:`InputDataError` naming the file when it is missing, empty or unreadable.
    """
    if not path.exists():
        raise InputDataError(f"{path}: source file not found")
    fmt = file_format(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputDataError(f"{path}: source file is empty")
    types: dict[str, str] = {}
    try:
        if fmt == "csv":
            frame, options = _read_csv(path)
        elif fmt == "json":
            frame, options = _read_json(path)
        else:
            frame, options, types = _read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: source file is empty (no header)") from None
    except Exception as err:  # noqa: BLE001 - any reader failure is one line naming the file
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise InputDataError(f"{path}: cannot read as {fmt} ({reason})") from None
    if frame.columns.empty:
        raise InputDataError(f"{path}: source file has no columns")
    names = [str(c) for c in frame.columns]
    repeated = sorted({n or "(blank)" for n in names if names.count(n) > 1 or not n.strip()})
    if repeated:
        raise InputDataError(f"{path}: column names repeated or blank: {', '.join(repeated)}")
    if fmt != "parquet":
        types = {str(c): _pandas_type(frame[c]) for c in frame.columns}
    return frame, fmt, options, types


def _pandas_type(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_float_dtype(values):
        return "float"
    first = values.dropna().head(50)
    if len(first) and first.map(lambda v: isinstance(v, (dict, list))).any():
        return "nested"
    return "string"


def _as_text(values: pd.Series, dtype: str) -> pd.Series:
    """Non-null values as stripped text, as Spark would cast them; blanks count as null."""
    values = values.dropna()
    if dtype == "date":
        text = values.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
    elif dtype == "timestamp":
        text = values.map(lambda v: v.isoformat(sep=" ") if hasattr(v, "isoformat") else str(v))
    elif dtype == "float":
        text = values.map(lambda v: str(int(v)) if float(v).is_integer() else str(v))
    elif dtype == "nested":
        text = values.map(str)
    else:
        text = values.astype(str)
    text = text.str.strip()
    return text[text != ""]


def profile_column(name: str, values: pd.Series, dtype: str, rows: int) -> ColumnProfile:
    """Statistics of one column's values (see :class:`ColumnProfile`)."""
    text = _as_text(values, dtype)
    counts = text.value_counts()
    non_null = len(text)
    sample = text if non_null <= SAMPLE_VALUES else text.sample(SAMPLE_VALUES, random_state=0)
    weights = sample.value_counts()  # each distinct value shaped once
    shapes = weights.groupby(weights.index.map(shape)).sum().sort_values(ascending=False, kind="stable")
    shapes = (shapes / max(len(sample), 1)).head(5)
    lengths = text.str.len()
    return ColumnProfile(
        name=name,
        dtype=dtype,
        rows=rows,
        non_null=non_null,
        distinct=len(counts),
        top_share=float(counts.iloc[0] / non_null) if non_null else 0.0,
        patterns=tuple((str(s), float(p)) for s, p in shapes.items()),
        min_length=int(lengths.min()) if non_null else 0,
        max_length=int(lengths.max()) if non_null else 0,
        mean_length=float(lengths.mean()) if non_null else 0.0,
        sample=sample.reset_index(drop=True),
    )


def profile_file(path: str | Path) -> FileProfile:
    """Read the first :data:`MAX_ROWS` rows of ``path`` and profile every column.

    Raises :class:`InputDataError` for a missing, empty or unreadable file, a file with no
    rows, or repeated column names.
    """
    path = Path(path)
    frame, fmt, options, types = read_head(path)
    names = [str(c) for c in frame.columns]
    truncated = len(frame) > MAX_ROWS
    frame = frame.head(MAX_ROWS)
    if len(frame) == 0:
        raise InputDataError(f"{path}: source file has no rows")
    columns = tuple(profile_column(n, frame[c], types.get(n, "string"), len(frame)) for n, c in zip(names, frame.columns))
    return FileProfile(path=path, format=fmt, options=options, rows=len(frame), truncated=truncated, columns=columns)
