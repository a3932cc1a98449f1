"""The harmonization rules in plain Python: one definition shared by the Spark stages
(:mod:`~matcher.harmonize.sources`, :mod:`~matcher.harmonize.standardize`,
:mod:`~matcher.harmonize.quality`, :mod:`~matcher.harmonize.golden`, :mod:`~matcher.harmonize.ingest`)
and the per-record path without Spark (:mod:`~matcher.harmonize.records`).

It holds the column names and column lists a config implies, the per-value standardization
functions (pandas Series in, Series out), the regular expressions the Spark built-ins use (Java
syntax kept to what Python's :mod:`re` reads the same way; :func:`java_regex` compiles one for
Python with Java's meaning of ``$`` and ``\\s``), and the quality gate's reason texts.
No pyspark here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from matcher.config.harmonization import CANONICAL_FIELDS, DERIVED_FIELDS, GoldenSpec
from matcher.config.transform import AUTO, TransformConfig

RAW_PREFIX = "raw_"


def raw(field: str) -> str:
    """The column holding a canonical field's value as the source gave it."""
    return f"{RAW_PREFIX}{field}"


SOURCE_KEY = "source_key"

WHOLE_NUMBER = r"^(0|-?[1-9][0-9]{0,17})$"
"""A primary key read as a number (no leading zeros: "007" and "7" are different keys)."""

EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
"""A standardized (trimmed, lower-case) email address must match this."""
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
WHITESPACE_RUN = r"\s+"
ZIP_PLUS_4 = r"^[0-9]{5}-[0-9]{4}$"
SHORT_DIGITS = r"^[0-9]{1,4}$"
"""An all-digit postcode that lost its leading zeros (padded to 5)."""
REGION_CODE = r"^[A-Z]{2}$"
NON_DIGITS = "[^0-9]"
REPLACEMENT_CHARACTER = "\ufffd"
"""What a decoder leaves for bytes that are not valid in the source's encoding."""

_JAVA_LINE_END = "(?:\r\n|[\n\r\u0085\u2028\u2029])?\\Z"


def java_regex(pattern: str) -> re.Pattern:
    """``pattern`` compiled as Spark's ``rlike``/``regexp_replace`` read it: ``\\s`` and ``[0-9]`` are
    ASCII only, and a final ``$`` also matches before a final line terminator."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + _JAVA_LINE_END
    return re.compile(pattern, re.ASCII)


def spark_trim(value: str) -> str:
    """Spark's ``trim``: leading and trailing spaces (only U+0020) removed."""
    return value.strip(" ")


# --- what a config implies ----------------------------------------------------------------


def pass_through_columns(config: TransformConfig) -> list[str]:
    """The non-canonical column names the sources map, in first-seen order."""
    names = (c for s in config.sources or [] for c in s.columns if c not in CANONICAL_FIELDS)
    return list(dict.fromkeys(names))


def source_date_formats(config: TransformConfig) -> dict[str, list[str]]:
    """Each source's date formats (its own, else the global ones)."""
    return {s.name: s.date_formats or config.standardize.date_formats for s in config.sources or []}


def encoding_columns(columns: list[str], config: TransformConfig) -> list[str]:
    """The columns of ``columns`` the quality gate's encoding rule checks: raw canonical values,
    pass-through columns, the source key."""
    present = [raw(f) for f in CANONICAL_FIELDS if raw(f) in columns]
    return [*present, *(c for c in pass_through_columns(config) if c in columns), SOURCE_KEY]


def profile_fields(config: TransformConfig) -> list[str]:
    """The fields a customer profile carries: configured, or every mapped canonical field."""
    spec = config.golden or GoldenSpec()
    if spec.fields:
        return list(spec.fields)
    mapped = {c for s in config.sources or [] for c in s.columns}
    fields = [f for f in CANONICAL_FIELDS if f in mapped]
    return [*fields, *(d for d in DERIVED_FIELDS if "first_name" in mapped)]


def rule_columns(config: TransformConfig) -> list[str]:
    """Columns named by column-list blocking and training rules (raw SQL rules are not parsed)."""
    lists = [config.blocking_rules, config.training.deterministic_rules, config.training.em_blocking_rules]
    rules = [getattr(r, "rule", r) for rules in lists if rules != AUTO for r in rules]
    return [column for rule in rules if isinstance(rule, list) for column in rule]


def input_columns(config: TransformConfig) -> list[str]:
    """The columns :func:`~matcher.harmonize.ingest.read_inputs` keeps from an input, in order: the primary
    key, the matching columns, ``retain_columns``, the columns rules block on, the truth column."""
    wanted = [config.primary_key, *config.column_names, *config.retain_columns, *rule_columns(config)]
    if config.truth_column:
        wanted.append(config.truth_column)
    return list(dict.fromkeys(wanted))


# --- the quality gate's reasons (``%s``/``%d``: the row's value, filled by Spark's format_string or ``%``)

NULL_KEY_REASON = "primary key is null"
REPEATED_KEY_REASON = "primary key %s repeats %d times in the source"
_DESCRIBED = {"date": "a date in the configured formats", "timestamp": "a timestamp in the configured formats",
              "email": "an email address", "phone": "a phone number possible in its region"}


def encoding_reason(column: str) -> str:
    return f"{column} has bytes that are not valid in the source's encoding"


def required_reason(field: str) -> str:
    return f"{field} is missing"


def require_any_reason(group: list[str]) -> str:
    return f"none of {', '.join(group)} is present"


def parseable_reason(field: str) -> str:
    """A template: ``%s`` is the raw value."""
    return f"{field} %s is not {_DESCRIBED[CANONICAL_FIELDS[field]]}"


def allowed_values_reason(field: str) -> str:
    """A template: ``%s`` is the standardized value."""
    return f"{field} %s is not one of the allowed values"


# --- standardization, one value or one batch at a time ------------------------------------


_NOT_LETTERS = re.compile("[^a-z ]+")
_NOT_LETTERS_OR_DIGITS = re.compile("[^a-z0-9 ]+")


def _letters_only(value: str, keep_digits: bool) -> str | None:
    if not value.isascii():
        from anyascii import anyascii

        value = anyascii(value)
    text = value.lower().replace("-", " ")
    kept = (_NOT_LETTERS_OR_DIGITS if keep_digits else _NOT_LETTERS).sub("", text)
    return " ".join(kept.split()) or None


PLACEHOLDER_NAMES: frozenset[str] = frozenset({
    # no name given
    "unknown", "unk", "none", "na", "n a", "no name", "no first name", "no last name", "not known", "dont know",
    "declined", "refused", "refuse", "anonymous", "anon", "apellido", "last name", "first name",
    # a role in the household instead of a name (and census shorthand: hh = householder,
    # hhm = household member, coh/doh/soh/moh/goh/loh = child/daughter/son/mother/... of householder)
    "mom", "mother", "dad", "father", "parent", "son", "son of", "daughter", "daughter of", "dau", "child",
    "child f", "child m", "female child", "male child", "kid", "baby", "boy", "girl", "minor", "brother", "sister",
    "wife", "husband", "grandchild", "grandson", "granddaughter", "nephew", "niece", "friend", "hijo", "hija",
    "nino", "nina", "adult", "adult male", "adult female", "male", "female", "man", "woman", "lady", "gent",
    "gentleman", "gentlemen", "mr", "mrs", "ms", "miss", "senor", "senora", "person", "resident", "respondent",
    "respondant", "resp", "occupant", "owner", "inmate", "householder", "household", "house", "home", "casa",
    "de casa", "de la casa", "lady of house", "lady of the house", "man of the house", "of the house",
    "of house", "the house", "lady of", "lady of the", "lady in the", "man of", "man of the", "man in the",
    "gentleman of", "gentelman", "oldest", "youngest", "one", "two", "three", "four",
    "hh", "hhm", "coh", "doh", "soh", "moh", "goh", "loh", "ref",
    # a lone initial
    *"abcdefghijklmnopqrstuvwxyz",
})
"""Cleaned first or last names that stand for no name: what people write on forms when the
name is unknown, refused or replaced by a role (placeholder names found on US census returns)."""

OCR_DIGITS = str.maketrans({
    "O": "0", "o": "0", "D": "0", "Q": "0", "|": "1", "l": "1", "I": "1", "i": "1", "!": "1",
    "Z": "2", "z": "2", "S": "5", "s": "5", "G": "6", "b": "6", "T": "7", "B": "8", "g": "9", "q": "9",
})
"""Characters that optical character recognition (or a hurried typist) writes for digits."""


def per_distinct(function: Callable[..., str | None], *columns: pd.Series) -> pd.Series:
    """``function`` of each row's values in ``columns``, called once per distinct combination
    (names, cities and shared phones repeat across rows); None where the first column is null."""
    values = [c.to_numpy(dtype=object) for c in columns]
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for v in values:  # one code per distinct combination, kept below len(rows)
        own, distinct = pd.factorize(v, use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(distinct) + own)
    _, first = np.unique(codes, return_index=True)  # a row of each code, codes being 0, 1, ...
    present = columns[0].notna().to_numpy()
    results = np.empty(len(first), dtype=object)  # None
    for code, row in enumerate(first.tolist()):
        if present[row]:
            results[code] = function(*(v[row] for v in values))
    return pd.Series(results[codes], index=columns[0].index, dtype="object")


def clean_names(values: pd.Series, keep_digits: bool = False) -> pd.Series:
    """ASCII, lower case, letters (and digits) separated by single spaces; blanks become null."""
    return per_distinct(lambda v: _letters_only(str(v), keep_digits), values)


@lru_cache(maxsize=1)
def nickname_table() -> dict[str, str]:
    """Every nickname the ``nicknames`` package knows whose formal name is unambiguous → that name.

    The package's relation is a graph (``bill`` is listed under william, robert and will;
    ``will`` under william). A *formal* name is one that no name with more nicknames lists
    as a nickname (``william``, ``robert``; not ``will``). A name maps to the formal name
    it belongs to when there is exactly one (``liz`` → ``elizabeth``); a formal name and
    an ambiguous nickname (``bill``) stay as they are, so no two people are merged on a guess.
    """
    from nicknames import NickNamer

    namer = NickNamer()
    nicks, formals_of = namer.nickname_lookup, namer.canonical_lookup

    def size(name: str) -> int:
        return len(nicks.get(name, ()))

    def is_formal(name: str) -> bool:
        return all(size(c) <= size(name) for c in formals_of.get(name, ()))

    table = {}
    for name, formals in formals_of.items():
        if is_formal(name):
            continue
        candidates = sorted(c for c in formals if is_formal(c))
        if len(candidates) == 1:
            table[name] = candidates[0]
    return table


def formal_first_names(values: pd.Series) -> pd.Series:
    """Cleaned first names with nicknames replaced by their formal name (first token only)."""
    table = nickname_table()

    def formal(value: str) -> str:
        first, _, rest = value.partition(" ")
        return " ".join(filter(None, [table.get(first, first), rest]))

    return per_distinct(formal, values)


def without_placeholders(values: pd.Series) -> pd.Series:
    """Cleaned names with :data:`PLACEHOLDER_NAMES` (``mom``, ``unknown``, ``j``) made null."""
    return values.where(~values.isin(PLACEHOLDER_NAMES), None)


def parse_dates(values: pd.Series, formats: list[str], ocr_repair: bool = False) -> pd.Series:
    """Each value parsed by the first format that matches it whole; NaT when none does.

    With ``ocr_repair``, values no format reads are tried once more with the characters of
    :data:`OCR_DIGITS` read as digits (``O1/|5/199S`` → ``01/15/1995``).
    """
    text = values.astype("string").str.strip()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for attempt in (text, text.str.translate(OCR_DIGITS)) if ocr_repair else (text,):
        for fmt in formats:
            todo = parsed.isna() & attempt.notna()
            if not todo.any():
                break
            parsed[todo] = pd.to_datetime(attempt[todo], format=fmt, errors="coerce", exact=True)
    return parsed


def parse_calendar_dates(values: pd.Series, formats: list[str], ocr_repair: bool = False) -> pd.Series:
    """:func:`parse_dates` as ``datetime.date`` objects (None when no format reads a value), including
    the years pandas' nanosecond timestamps cannot hold (before 1677, after 2262), read one by one."""
    parsed = parse_dates(values, formats, ocr_repair)
    out = pd.Series(parsed.dt.date, index=values.index, dtype=object).where(parsed.notna(), None)
    for i in parsed.index[parsed.isna() & values.notna()]:
        text = str(values[i]).strip()
        for fmt in formats:
            try:
                out[i] = datetime.strptime(text, fmt).date()
                break
            except ValueError:
                continue
    return out


NANP_WRITTEN = re.compile(r"(?:\+?1[ .-]?)?\(?([2-9][0-9]{2})\)?[ .-]?([0-9]{3})[ .-]?([0-9]{4})")
"""A ten-digit North American number written plainly (``(206) 555-0134``, ``1-206-555-0134``,
``+1 206.555.0134``): in the US region ``phonenumbers`` reads it as ``+1`` and its ten digits."""


def _e164(value: str, region: str) -> str | None:
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def e164_phone(value: object, region: str) -> str | None:
    """``value`` as E.164, read in ``region``; None when it is not a possible number.

    A plainly written US number is read by :data:`NANP_WRITTEN` (ten times faster than
    ``phonenumbers``, with the same result); every other value by ``phonenumbers``.
    """
    text = str(value).strip()
    if not text:
        return None
    if region == "US" and (plain := NANP_WRITTEN.fullmatch(text)):
        return "+1" + "".join(plain.groups())
    return _e164(text, region)


def e164_phones(values: pd.Series, regions: pd.Series) -> pd.Series:
    """Phone numbers as E.164, read in each row's region (:func:`e164_phone`)."""
    return per_distinct(e164_phone, values, regions)
