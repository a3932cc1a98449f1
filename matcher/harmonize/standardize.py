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
built-ins.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from matcher.config.harmonization import CANONICAL_FIELDS, SOURCE_SYSTEM, StandardizeSpec
from matcher.config.transform import TransformConfig

RAW_PREFIX = "raw_"


def raw(field: str) -> str:
    """The column holding a canonical field's value as the source gave it."""
    return f"{RAW_PREFIX}{field}"


# --- pure Python, one value or one batch at a time (unit-testable without Spark) -----------


def _letters_only(value: str, keep_digits: bool) -> str | None:
    from anyascii import anyascii

    text = anyascii(value).lower().replace("-", " ")
    kept = "".join(ch for ch in text if ch.isalpha() or ch == " " or (keep_digits and ch.isdigit()))
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


def clean_names(values: pd.Series, keep_digits: bool = False) -> pd.Series:
    """ASCII, lower case, letters (and digits) separated by single spaces; blanks become null."""
    return values.map(lambda v: None if v is None or pd.isna(v) else _letters_only(str(v), keep_digits))


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

    def formal(value: str | None) -> str | None:
        if value is None or pd.isna(value):
            return None
        first, _, rest = value.partition(" ")
        return " ".join(filter(None, [table.get(first, first), rest]))

    return values.map(formal)


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


def e164_phones(values: pd.Series, regions: pd.Series) -> pd.Series:
    """Phone numbers as E.164, read in each row's region; null when not a possible number."""
    import phonenumbers

    def one(value, region) -> str | None:
        if value is None or pd.isna(value) or not str(value).strip():
            return None
        try:
            number = phonenumbers.parse(str(value), region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return pd.Series([one(v, r) for v, r in zip(values, regions)], index=values.index, dtype="object")


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
    email = F.when(email.rlike(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"), email)
    if not provider_rules:
        return email
    local, domain = F.substring_index(email, "@", 1), F.substring_index(email, "@", -1)
    gmail = domain.isin("gmail.com", "googlemail.com")
    gmail_local = F.regexp_replace(F.substring_index(local, "+", 1), r"\.", "")
    return F.when(gmail, F.concat(gmail_local, F.lit("@gmail.com"))).otherwise(email)


def standard_postcode(c: Column) -> Column:
    """Upper case with single spaces; ZIP+4 → ZIP; short all-digit codes padded to 5 digits."""
    code = F.upper(F.regexp_replace(F.trim(c), r"\s+", " "))
    code = F.when(code.rlike(r"^[0-9]{5}-[0-9]{4}$"), F.substring(code, 1, 5)).otherwise(code)
    code = F.when(code.rlike(r"^[0-9]{1,4}$"), F.lpad(code, 5, "0")).otherwise(code)
    return _blank_to_null(code)


def _date_formats(config: TransformConfig) -> dict[str, list[str]]:
    return {s.name: s.date_formats or config.standardize.date_formats for s in config.sources or []}


def _parsed_dates(c: Column, config: TransformConfig) -> Column:
    """Dates parsed with each source's own formats (a source may write ``dd/MM`` where another writes ``MM/dd``)."""
    by_source = _date_formats(config)
    repair = config.standardize.date_ocr_repair
    distinct = {tuple(f) for f in by_source.values()} or {tuple(config.standardize.date_formats)}
    if len(distinct) == 1:
        return _date_udf(list(next(iter(distinct))), repair)(c)
    parsed = None
    for formats in distinct:
        names = [s for s, f in by_source.items() if tuple(f) == formats]
        branch = F.col(SOURCE_SYSTEM).isin(names)
        one = _date_udf(list(formats), repair)(c)
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
        region = F.when(code.rlike("^[A-Z]{2}$"), code).otherwise(F.lit(spec.default_region))
        return _phone_udf(c, region)
    if kind == "postcode":
        return standard_postcode(c)
    if kind == "code":
        return _blank_to_null(F.upper(F.trim(c)))
    if kind == "digits":
        return _blank_to_null(F.regexp_replace(c, "[^0-9]", ""))
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
