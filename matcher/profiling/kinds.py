"""What a column holds, from its name and its content: a kind, the canonical field it maps onto and how to compare it.

:func:`detect_kind` looks at a :class:`~matcher.profiling.profile.ColumnProfile`. Content
that is unmistakable (emails, dates, phones written with separators, UK postcodes) decides
on its own; the rest needs the column name to agree (``zip`` holding 5-digit codes, ``first``
holding words). Every decision carries a reason made of counts, shares and formats only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from matcher.profiling.profile import ColumnProfile

DATE_FORMATS = (
    "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y%m%d", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y",
    "%d %b %Y", "%b %d %Y", "%d %B %Y", "%B %d %Y", "%B %d, %Y",
)
"""Date formats tried (``strptime`` codes); on a tie the earlier one wins (US before European day-first)."""

ISO_DATE = "%Y-%m-%d"
MOSTLY = 0.8
"""Share of the values a content test must pass to decide a kind."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?)\s*\d{1,6})?$", re.IGNORECASE)
_PHONE_SEPARATOR = re.compile(r"[\s().\-/+]")
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}/\d{1,2}/\d{4},? \d{1,2}:\d{2}(:\d{2})?( ?[AP]M)?)$",
    re.IGNORECASE,
)
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_ZIP4 = re.compile(r"^\d{5}-\d{4}$")
_UK = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$", re.IGNORECASE)
_CANADA = re.compile(r"^[A-Z]\d[A-Z] ?\d[A-Z]\d$", re.IGNORECASE)
_POSTCODE_ANY = re.compile(r"^(?=.*\d)[A-Z0-9][A-Z0-9 \-]{1,8}[A-Z0-9]$", re.IGNORECASE)
_WORDS = re.compile(r"^[^\W\d_]+(?:[ '\-.,]+[^\W\d_]+)*\.?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_HOUSE_NUMBER = re.compile(r"^\d+[A-Z]?(-\d+[A-Z]?)?$", re.IGNORECASE)
_DIGITS_WITH_SEPARATORS = re.compile(r"^[\d\s\-./]+$")
US_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP", "AA",
    "AE", "AP"
})
"""USPS state, territory and military codes: a column of them is a state, whatever its name (``ST``)."""


@dataclass(frozen=True)
class Kind:
    """What a column is and what becomes of it.

    ``label`` is the detected meaning (``first_name``, ``email``, ``dob``, ``id``, ``category``,
    ``empty`` ...); ``field`` the canonical field it maps onto (None: passed through under its
    own name); ``comparison`` a :class:`~matcher.config.transform.ComparisonKind` value, or
    None when the column is not compared; ``reason`` says why, without values.
    """

    label: str
    field: str | None
    comparison: str | None
    reason: str
    term_frequency: bool = False
    date_formats: tuple[str, ...] = ()
    region: str | None = None


# --- the column name ---------------------------------------------------------------------------

def name_tokens(name: str) -> list[str]:
    """``"dateOfBirth"`` → ``["date", "of", "birth"]``; ``"ship_zip2"`` → ``["ship", "zip"]``."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z]+", spaced.lower()) if t]


_HINTS: tuple[tuple[str, set[str], set[str]], ...] = (
    # label, whole names (tokens joined), single tokens that suffice
    ("email", {"email", "mail", "emailaddress", "emailaddr"}, {"email", "mail", "emails"}),
    ("phone", {"tel", "telno", "phoneno", "phonenumber", "mobile", "cell", "cellphone"},
     {"phone", "telephone", "tel", "mobile", "cell", "fax", "phones"}),
    ("dob", {"dob", "dateofbirth", "birthdate", "birthday", "bday", "born", "birth"}, {"dob", "birth", "birthdate", "born"}),
    ("updated_at", {"updated", "modified", "lastmodified", "updatedat", "modifiedat", "lastupdate", "lastupdated",
                    "changed", "changedat", "enrolledat", "enrolled"}, {"updated", "modified", "changed"}),
    ("event_date", {"created", "createdat", "timestamp", "ts", "time", "eventdate", "eventtime"},
     {"created", "registered", "enrolled", "since", "at", "timestamp", "time", "signup", "order", "ordered", "date"}),
    ("first_name", {"first", "firstname", "fname", "givenname", "given", "forename", "forenames", "fn", "firstnames"},
     {"given", "forename", "forenames", "firstname"}),
    ("middle_name", {"middle", "mname", "mi", "middlename", "middleinitial", "middlenames"}, {"middle"}),
    ("last_name", {"last", "lastname", "lname", "surname", "familyname", "family", "ln", "sn"},
     {"surname", "lastname", "family"}),
    ("full_name", {"name", "fullname", "customername", "personname", "contactname", "clientname"}, set()),
    ("postcode", {"zip", "zipcode", "postcode", "postal", "postalcode", "plz", "pincode", "cap", "eircode"},
     {"zip", "zipcode", "postcode", "postal", "postalcode", "plz"}),
    ("city", {"city", "town", "suburb", "locality", "municipality", "village"},
     {"city", "town", "suburb", "locality", "municipality", "village"}),
    ("state", {"state", "province", "prov", "statecode", "region"}, {"state", "province"}),
    ("country", {"country", "countrycode", "nation"}, {"country"}),
    ("house_number", {"houseno", "housenumber", "housenum", "streetnumber", "streetno", "streetnum", "buildingnumber"}, set()),
    ("unit", {"unit", "apt", "apartment", "suite", "flat", "unitnumber", "aptno"}, {"apt", "apartment", "suite"}),
    ("street", {"street", "streetname", "address", "addr", "road", "addressline", "line", "streetaddress"},
     {"street", "address", "addr", "road"}),
    ("national_id", {"ssn", "nationalid", "sin", "nino", "tfn", "socialsecurity", "socialsecuritynumber", "nin"},
     {"ssn", "nino", "tfn"}),
    ("sex", {"sex", "gender"}, {"sex", "gender"}),
)


OTHER_PARTY = {"employer", "company", "business", "organisation", "organization", "org", "emergency", "spouse",
               "partner", "mother", "father", "parent", "guardian", "referrer", "agent", "manager", "supervisor",
               "beneficiary"}
"""Name tokens of a column that describes another party than the record's person (``employer_zipcode``)."""
OWN = {"home", "mailing", "residential", "residence", "personal", "private", "primary", "main", "current"}
"""Name tokens of a column that describes the record's person (``mailing_address_zipcode``)."""
_ADDRESS_QUALIFIERS = {"address", "addr", "billing", "shipping", "ship", "bill", "mailing", "home", "residential"}
_QUALIFIERS = OWN | _ADDRESS_QUALIFIERS  # whose it is, not what it is


def name_hint(name: str) -> str | None:
    """The meaning a column name suggests (a label of :data:`_HINTS`), or None; whose it is
    (``mailing_address_``, ``employer_``) is left aside (``mailing_address_unit_number``: unit)."""
    tokens = name_tokens(name)
    joined = "".join(tokens)
    if not tokens:
        return None
    plain = "".join(t for t in tokens if t not in _QUALIFIERS)
    for label, whole, single in _HINTS:
        if joined in whole or plain in whole:
            return label
    ts = set(tokens)
    if ts & {"first", "given", "fore"} and ts & {"last", "sur", "surname", "family"}:
        return "full_name"  # first_and_surname, given_family_name: both parts in one column
    if "name" in ts:
        for word, label in (("first", "first_name"), ("given", "first_name"), ("middle", "middle_name"),
                            ("last", "last_name"), ("family", "last_name"), ("sur", "last_name"), ("full", "full_name")):
            if word in ts:
                return label
    numbered = {"number", "no", "num", "nr"}
    if {"house", "street", "building"} & ts and numbered & ts:
        return "house_number"
    if plain in numbered and ts & _ADDRESS_QUALIFIERS:  # ship_number, address_no: the number of an address
        return "house_number"
    for label, _, single in _HINTS:
        if single & ts:
            return label
    return None


KEY_NAMES = {"id", "key", "pk", "uid", "uuid", "recid", "recordid", "rowid", "uniqueid", "guid"}
KEY_TOKENS = {"id", "key", "no", "nr", "num", "number", "code", "ref", "pk", "uuid", "guid"}


def key_name_rank(name: str) -> int:
    """0 for a name that says key (``id``, ``rec_id``, ``unique_id``), 1 for ``*_id``/``*_no``, else 2."""
    tokens = name_tokens(name)
    joined = "".join(tokens)
    if joined in KEY_NAMES or joined.endswith(("recid", "uniqueid", "rowid", "recordid")):
        return 0
    return 1 if tokens and tokens[-1] in KEY_TOKENS else 2


# --- the content ---------------------------------------------------------------------------------

def share(values: pd.Series, pattern: re.Pattern) -> float:
    """Share of ``values`` the whole of which match ``pattern``."""
    return float(values.str.fullmatch(pattern).mean()) if len(values) else 0.0


DATE_SAMPLE = 5_000
"""Values a date format is tried on (``strptime`` reads any year, pandas' nanosecond dates stop at 1677)."""


def _parses(values: pd.Series, fmt: str) -> pd.Series:
    """Whether each value is a date in ``fmt`` with a plausible year: 1000-2100 when the year is set
    apart by separators, 1850-2100 for digits only (``%Y%m%d``: other numbers would pass too)."""
    earliest = 1850 if fmt.isalnum() or fmt.replace("%", "").isalpha() else 1000

    def ok(value: str) -> bool:
        try:
            return earliest <= datetime.strptime(value, fmt).year <= 2100
        except ValueError:
            return False

    return values.map(ok).astype(bool)


def date_formats(values: pd.Series) -> tuple[tuple[str, ...], float]:
    """The formats that read ``values`` (best first, at most three) and the share they read together.

    A second format is kept when it reads values the first does not (``%d/%m/%Y`` beside
    ``%m/%d/%Y`` for days after the 12th).
    """
    if not len(values) or not values.str.contains(r"\d").mean() > 0.5:
        return (), 0.0
    values = values[values.str.len() <= 30].head(DATE_SAMPLE)
    head = values.head(200)
    plausible = [fmt for fmt in DATE_FORMATS if _parses(head, fmt).any()] if len(values) > 200 else DATE_FORMATS
    masks = {fmt: _parses(values, fmt) for fmt in plausible}
    chosen: list[str] = []
    read = pd.Series(False, index=values.index)
    while len(chosen) < 3:
        gains = {fmt: int((m & ~read).sum()) for fmt, m in masks.items() if fmt not in chosen}
        best = max(gains, key=lambda f: (gains[f], -DATE_FORMATS.index(f)), default=None)
        if best is None or gains[best] == 0 or (chosen and gains[best] < max(1, 0.001 * len(values))):
            break
        chosen.append(best)
        read |= masks[best]
    return tuple(chosen), float(read.mean()) if len(values) else 0.0


def _phone_share(values: pd.Series) -> tuple[float, float]:
    """Share that looks like a phone number (7-15 digits, separators allowed) and share with separators."""
    shaped = values.str.fullmatch(_PHONE)
    digits = values.str.count(r"\d")
    phones = shaped & digits.between(7, 15)
    separated = phones & values.str.contains(_PHONE_SEPARATOR)
    return float(phones.mean()), float(separated.mean())


def _pct(x: float) -> str:
    return f"{x:.0%}" if x < 0.995 or x == 1 else "99%"


# --- deciding -------------------------------------------------------------------------------------

def detect_kind(column: ColumnProfile) -> Kind:
    """The kind of one column, from its name and its content (see :class:`Kind`)."""
    hint = name_hint(column.name)
    values = column.sample
    said = f"name '{column.name}'"
    if column.non_null == 0:
        return Kind("empty", None, None, "no values (all null or blank)")
    if column.dtype == "nested":
        return Kind("nested", None, None, "nested values (objects or lists)")
    if column.distinct == 1 and column.non_null > 1:
        return Kind("constant", None, None, f"one value in all {column.non_null} non-null rows")
    if column.dtype == "boolean":
        return Kind("category", None, "exact", "true/false values")

    email = share(values, _EMAIL)
    if email >= MOSTLY or (hint == "email" and email >= 0.5):
        return Kind("email", "email", "email", f"{'name and ' if hint == 'email' else ''}content: {_pct(email)} look like emails")

    if column.dtype == "timestamp":
        return _timestamp(hint, "typed timestamps")
    if column.dtype == "date":
        return _date(hint, said, (ISO_DATE,), 1.0, typed=True)
    dated_by_name = hint in ("dob", "event_date", "updated_at")
    if column.dtype == "string" or (column.dtype == "integer" and dated_by_name):  # 20200115 stored as a number
        stamps = share(values, _TIMESTAMP)
        if stamps >= MOSTLY:
            return _timestamp(hint, f"{_pct(stamps)} look like timestamps")
        formats, dated = date_formats(values)
        digits_only = formats and formats[0] == "%Y%m%d"
        if dated >= MOSTLY and (not digits_only or dated_by_name or dated >= 0.95):
            return _date(hint, said, formats, dated)

    phone, separated = _phone_share(values)
    if (hint == "phone" and phone >= 0.5) or (phone >= MOSTLY and separated >= 0.5 and hint in (None, "phone")):
        why = f"{'name and ' if hint == 'phone' else ''}content: {_pct(phone)} look like phone numbers"
        return Kind("phone", "phone", "phone", why)

    postcode = _postcode(column, hint, values)
    if postcode is not None:
        return postcode

    words = share(values, _WORDS)
    numbers = 1.0 if column.dtype in ("integer", "float") else share(values, _NUMBER)
    why_words = f"{said} and content: {_pct(words)} words"
    if hint in ("first_name", "last_name") and words >= 0.7:
        return Kind(hint, hint, "name", why_words, term_frequency=True)
    if hint == "middle_name" and words >= 0.7:
        initials = float((values.str.replace(".", "", regex=False).str.len() == 1).mean())
        if initials >= 0.5:
            return Kind(hint, hint, "initial", f"{said} and content: {_pct(initials)} initials")
        return Kind(hint, hint, "name", why_words, term_frequency=True)
    if hint == "full_name" and words >= 0.7:
        return Kind("full_name", None, "name", why_words, term_frequency=True)
    if hint == "city" and words >= 0.7:
        return Kind("city", "city", "exact", why_words, term_frequency=True)
    if hint in ("state", "country") and numbers < 0.5:
        return Kind(hint, hint, "exact", f"{said}; {column.distinct} distinct values", term_frequency=True)
    states = float(values.str.strip().str.upper().isin(US_STATES).mean()) if len(values) else 0.0
    if hint is None and states >= MOSTLY and column.distinct <= len(US_STATES):
        return Kind("state", "state", "exact", f"content: {_pct(states)} US state codes", term_frequency=True)
    if hint == "street":
        return Kind("street", "street", "text", f"{said}")
    if hint == "house_number" and share(values, _HOUSE_NUMBER) >= 0.7:
        return Kind("house_number", "house_number", "exact", f"{said} and content: mostly numbers")
    if hint == "unit":
        return Kind("unit", "unit", "exact", said)
    if hint == "national_id" and share(values, _DIGITS_WITH_SEPARATORS) >= 0.7:
        return Kind("national_id", "national_id", "id_number", f"{said} and content: mostly digits (typos get edit-distance levels)")
    if hint == "sex":
        return Kind("category", None, "exact", f"{said}; {column.distinct} distinct values")
    return _generic(column, hint, numbers, words)


def _timestamp(hint: str | None, why: str) -> Kind:
    """A date with a time: when a record changed (``updated_at``, used by survivorship), not compared."""
    if hint in ("updated_at", "event_date", None):
        return Kind("timestamp", "updated_at", None, f"content: {why}; kept as updated_at for survivorship, not compared")
    return Kind("timestamp", None, None, f"content: {why}; a time is not evidence of identity")


def _date(hint: str | None, said: str, formats: tuple[str, ...], dated: float, typed: bool = False) -> Kind:
    content = "typed dates" if typed else f"{_pct(dated)} look like dates {', '.join(formats)}"
    if hint == "dob":
        return Kind("dob", "dob", "birth_date", f"{said} and content: {content}", date_formats=formats)
    if hint == "updated_at":
        return Kind("timestamp", "updated_at", None, f"{said} and content: {content}; kept as updated_at, not compared",
                    date_formats=formats)
    if hint == "event_date":
        return Kind("event_date", None, None, f"{said} and content: {content}; an event date, not evidence of identity")
    return Kind("date", None, "date", f"content: {content}", date_formats=formats)


def _postcode(column: ColumnProfile, hint: str | None, values: pd.Series) -> Kind | None:
    """UK postcodes, US ZIP codes and 4-digit codes are kind ``postcode`` (its levels suit the format,
    decided from the data at training); other codes compare exactly, by frequency."""
    said = f"name '{column.name}' and " if hint == "postcode" else ""
    uk, zips, canada = share(values, _UK), share(values, _ZIP), share(values, _CANADA)
    if uk >= MOSTLY and hint in (None, "postcode"):
        return Kind("postcode", "postcode", "postcode", f"{said}content: {_pct(uk)} look like UK postcodes", region="GB")
    if canada >= MOSTLY and hint in (None, "postcode"):
        return Kind("postcode", "postcode", "exact", f"{said}content: {_pct(canada)} look like Canadian postal codes",
                    term_frequency=True, region="CA")
    if zips >= MOSTLY and (hint == "postcode" or (hint is None and share(values, _ZIP4) >= 0.2)):
        return Kind("postcode", "postcode", "postcode", f"{said}content: {_pct(zips)} look like US ZIP codes (99999 or 99999-9999)",
                    term_frequency=True, region="US")
    if hint == "postcode":
        four = share(values, re.compile(r"^\d{4}$"))
        if four >= MOSTLY:
            return Kind("postcode", "postcode", "postcode", f"{said}content: {_pct(four)} are 4-digit codes", term_frequency=True)
        other = share(values, _POSTCODE_ANY)
        if other >= MOSTLY:
            return Kind("postcode", "postcode", "exact", f"{said}content: {_pct(other)} look like postal codes",
                        term_frequency=True)
    return None


def _generic(column: ColumnProfile, hint: str | None, numbers: float, words: float) -> Kind:
    """Columns no name or pattern identifies: ids, categories, numbers, free text."""
    if hint == "event_date":
        return Kind("event_date", None, None, "name: when something happened to the record, not evidence of identity")
    unique = column.distinct_share >= 0.95
    spaces = float(column.sample.str.contains(r"\s").mean())
    if unique and spaces < 0.05:
        return Kind("id", None, "exact", f"{_pct(column.distinct_share)} of values distinct, no spaces: an identifier")
    if numbers >= 0.95:
        return Kind("numeric", None, "numeric", f"content: {_pct(numbers)} numbers, {column.distinct} distinct")
    few = column.distinct <= 50 or column.distinct_share <= 0.05
    if few and column.distinct_share <= 0.5:
        return Kind("category", None, "exact", f"content: {column.distinct} distinct values")
    mean_words = float(column.sample.str.split().str.len().mean())
    if unique or mean_words >= 4 or column.mean_length >= 40:
        return Kind("free_text", None, "text", f"content: free text, {mean_words:.1f} words on average, "
                    f"{_pct(column.distinct_share)} distinct")
    if few:
        return Kind("category", None, "exact", f"content: {column.distinct} distinct values")
    if spaces < 0.05 and len({p for p, _ in column.patterns[:1]}) and column.patterns[0][1] >= 0.9:
        return Kind("code", None, "exact", f"content: one shape '{column.patterns[0][0]}' in {_pct(column.patterns[0][1])}")
    return Kind("text", None, "text", f"content: {_pct(words)} words, {column.distinct} distinct values")
