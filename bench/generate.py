"""``python -m bench.generate --rows N --sources K --seed S --out DIR``: synthetic multi-source customers.

The model of the data, in the order it is drawn (one ``numpy`` Generator seeded with ``S``):

* **people and their records**: each person gets ``zipf(2.7)`` records (draws above 30
  folded into 10-30: about 78 % one record, 12 % two, a few with 10 or more; mean about 1.5); people are
  drawn until the records reach ``N``. Each record goes to one of ``K`` sources (uneven
  source weights), so a person can appear twice in one source.
* **households**: people are grouped into households of 1-5; members share the surname
  (a spouse keeps their own in 12 %), the address and the landline. Member 0 and 1 are
  adults (a couple of opposite sex, ages close), later members are children; a child has
  the same birth date as the previous one (twins) in 15 %. 25 % of people have no mobile
  and give the landline; 8 % of non-head members give the head's email.
* **names and places**: 1990 US Census first-name (by sex) and surname frequencies, real
  US cities weighted by population with a real ZIP prefix, common US street names and
  suffixes (``bench/generate_data/``).
* **emails** are derived from the name (``first.last@``, ``flast@``, ``firstlast42@``,
  ``first_last@``, ``lastf@``) at common domains, so unrelated namesakes get similar ones.
* **moves**: 20 % of people with 2+ records move; their records from a random point on carry
  a new address and, for half of them, a new phone.
* **record noise**: keyboard typos, deletions, transpositions and doubled letters (names 3 %,
  streets 3 %, emails 2 %), nicknames (8 %), first and last name swapped (1.5 %), day and
  month swapped (2 %, only where both are <= 12), middle names written whole, as an initial or
  not at all, placeholder phones (``000-000-0000``, ``555-555-5555``, 0.3 %) and emails
  (``none@none.com``, ``noemail@...``, 0.2 %), street suffix spelled out or abbreviated, case and
  whitespace variation, and 5-15 % missing values per field, varying by source.

Each source follows one of four templates (cycled when ``K > 4``) with its own column names,
date, phone and ZIP formats, file format (CSV or Parquet), key and missing fields. Outputs:
one file per source, ``truth.parquet`` (source, record_id, person_id), ``config.yaml`` (the
``sources:`` config a new user would write; the automatic setup picks the model),
``spec.yaml`` (the same plus hand-written blocking rules) and ``manifest.json``. The same
arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

GENERATOR_VERSION = "1.0"
DATA = Path(__file__).parent / "generate_data"

STREETS = (
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church "
    "River Willow Highland Jefferson Franklin Center Chestnut Spring Ridge Meadow Forest Madison "
    "Adams Cherry Lakeview Dogwood Hickory Mill Valley Woodland Sycamore First Second Third Fourth "
    "Fifth Sixth Seventh Eighth Ninth Tenth Broadway Market Union Railroad Prospect Grove Locust "
    "Magnolia Birch Spruce Poplar Laurel Jones Smith Wilson Johnson Green Church Liberty Pleasant "
    "Riverside College Academy School Bridge Cherry Orchard Summit Harrison Monroe Hamilton Cleveland"
).split()
SUFFIXES = {"St": "Street", "Ave": "Avenue", "Rd": "Road", "Dr": "Drive", "Ln": "Lane", "Ct": "Court",
            "Blvd": "Boulevard", "Way": "Way", "Pl": "Place", "Cir": "Circle"}
SUFFIX_WEIGHTS = np.array([30, 20, 14, 12, 8, 6, 3, 3, 2, 2], dtype=float)
DOMAINS = np.array(["gmail.com", "yahoo.com", "hotmail.com", "aol.com", "outlook.com", "icloud.com",
                    "comcast.net", "msn.com", "att.net", "verizon.net"])
DOMAIN_WEIGHTS = np.array([38, 18, 10, 6, 9, 6, 5, 3, 3, 2], dtype=float)
PLACEHOLDER_PHONE_RATE = 0.003
PLACEHOLDER_EMAIL_RATE = 0.002
"""Small on purpose: every placeholder record pairs with every other under a ``[phone]`` or
``[email]`` blocking rule (at 1M rows about 1,500 records per placeholder phone, 1.1M pairs each)."""
PLACEHOLDER_PHONES = np.array(["0000000000", "5555555555"])
PLACEHOLDER_EMAILS = np.array(["none@none.com", "noemail@gmail.com", "noemail@none.com", "na@na.com"])
KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


@dataclass(frozen=True)
class Template:
    """One source's layout: column names (canonical field → own name) and value formats."""

    kind: str
    file_format: str
    key: str
    key_style: str
    columns: dict[str, str]
    date_style: str = "iso"
    phone_style: str = "digits"
    zip_style: str = "zip5"
    case: str = "title"
    middle: str = "full"
    suffix_long: float = 0.1
    date_formats: list[str] = field(default_factory=list)


TEMPLATES: tuple[Template, ...] = (
    Template("crm", "csv", "customer_id", "C{:08d}",
             {"first_name": "first_name", "middle_name": "middle_name", "last_name": "last_name",
              "dob": "birth_date", "email": "email", "phone": "phone", "house_number": "house_no",
              "street": "street_name", "unit": "apt", "city": "city", "state": "state", "postcode": "zip"},
             date_style="mdy", phone_style="paren", zip_style="zip5", case="title", middle="full",
             date_formats=["%m/%d/%Y"]),
    Template("shop", "parquet", "account_key", "{:d}",
             {"first_name": "given_name", "last_name": "family_name", "email": "email_address",
              "phone": "mobile", "house_number": "ship_number", "street": "ship_street", "unit": "ship_unit",
              "city": "ship_city", "state": "ship_state", "postcode": "ship_zip"},
             phone_style="e164", zip_style="zip9", case="lower", middle="none", suffix_long=0.5),
    Template("loyalty", "csv", "member_no", "L-{:07d}",
             {"first_name": "FNAME", "middle_name": "MI", "last_name": "LNAME", "dob": "DOB",
              "phone": "PHONE", "house_number": "STREET_NO", "street": "STREET", "city": "CITY",
              "state": "ST", "postcode": "ZIP"},
             date_style="ymd", phone_style="digits", zip_style="zip5", case="upper", middle="initial",
             suffix_long=0.0, date_formats=["%Y%m%d"]),
    Template("billing", "parquet", "billing_id", "B{:x}",
             {"first_name": "first", "middle_name": "middle", "last_name": "last", "dob": "date_of_birth",
              "email": "contact_email", "phone": "contact_phone", "house_number": "addr_number",
              "street": "addr_street", "unit": "addr_unit", "city": "addr_city", "state": "addr_state",
              "postcode": "postal_code"},
             date_style="iso", phone_style="dash", zip_style="mixed", case="title", middle="mixed",
             suffix_long=0.3, date_formats=["%Y-%m-%d"]),
)


# ---------------------------------------------------------------- reference tables

def _load_names(file: str) -> tuple[np.ndarray, np.ndarray]:
    """Names (lower case) and their sampling probabilities from a vendored census table."""
    frame = pd.read_csv(DATA / file, keep_default_na=False)
    weights = frame["percent"].to_numpy(float) + 0.0005
    return frame["name"].to_numpy(object), weights / weights.sum()


def _load_places() -> pd.DataFrame:
    """Real US cities with state, 3-digit ZIP prefix and a population weight."""
    frame = pd.read_csv(DATA / "places.csv", dtype={"zip3": str}, keep_default_na=False)
    frame["p"] = frame["population"] / frame["population"].sum()
    return frame


def _load_nicknames() -> dict[str, list[str]]:
    """First name → its nicknames, from pseudopeople's table (empty when it is not installed)."""
    spec = importlib.util.find_spec("pseudopeople")  # the file only: importing the package is slow
    path = Path(spec.origin).parent / "data" / "nicknames.csv" if spec and spec.origin else None
    if path is None or not path.exists():
        return {}
    table: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        cells = [c.strip().lower() for c in line.split(",") if c.strip()]
        if len(cells) > 1:
            table[cells[0]] = cells[1:]
    return table


# ---------------------------------------------------------------- people

def _record_counts(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Records per person (long-tailed), summing to exactly ``rows``."""
    draws = [_entity_sizes(rng, int(rows / 1.3) + 16)]
    while sum(int(d.sum()) for d in draws) < rows:
        draws.append(_entity_sizes(rng, int(rows / 1.3) + 16))
    counts = np.concatenate(draws)
    total = np.cumsum(counts)
    people = int(np.searchsorted(total, rows) + 1)
    counts = counts[:people].copy()
    counts[-1] -= int(total[people - 1] - rows)
    return counts.astype(np.int64)


def _entity_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of zipf(2.7); draws above 30 are folded into 10-30 (no pile-up at a cap)."""
    sizes = rng.zipf(2.7, size=n)
    return np.where(sizes > 30, 10 + sizes % 21, sizes)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 10-digit US phone numbers (valid-looking area code and exchange)."""
    area = rng.integers(201, 990, n)
    area = np.where(area % 100 == 11, area + 1, area)
    number = area * 10_000_000 + rng.integers(200, 1000, n) * 10_000 + rng.integers(0, 10_000, n)
    return number.astype(str).astype(object)


def _addresses(rng: np.random.Generator, n: int, places: pd.DataFrame) -> dict[str, np.ndarray]:
    """``n`` addresses: house number, street, unit, city, state, ZIP and ZIP+4 extension."""
    city = rng.choice(len(places), n, p=places["p"].to_numpy())
    street = (pd.Series(np.array(STREETS, dtype=object)[rng.integers(0, len(STREETS), n)]) + " "
              + np.array(list(SUFFIXES), dtype=object)[rng.choice(len(SUFFIXES), n, p=SUFFIX_WEIGHTS / SUFFIX_WEIGHTS.sum())])
    house = np.where(rng.random(n) < 0.7, rng.integers(1, 2000, n), rng.integers(2000, 20000, n))
    unit = np.where(rng.random(n) < 0.15, "Apt " + pd.Series(rng.integers(1, 40, n)).astype(str), None)
    zip5 = places["zip3"].to_numpy(object)[city] + pd.Series(rng.integers(0, 100, n)).astype(str).str.zfill(2).to_numpy(object)
    return {"house_number": house.astype(str).astype(object), "street": street.to_numpy(object),
            "unit": unit.astype(object), "city": places["city"].to_numpy(object)[city],
            "state": places["state"].to_numpy(object)[city], "zip5": zip5,
            "zip4": pd.Series(rng.integers(1, 10000, n)).astype(str).str.zfill(4).to_numpy(object)}


def _emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Emails built from the names: a pattern and a domain drawn per person."""
    f, l = pd.Series(first, dtype=object), pd.Series(last, dtype=object).str.replace(" ", "", regex=False)
    n = len(f)
    digits = pd.Series(rng.integers(1, 100, n)).astype(str).str.zfill(2)
    locals_ = [f + "." + l, f.str[0] + l, f + l + digits, f + "_" + l, l + f.str[0], f + l]
    pattern = rng.choice(len(locals_), n, p=[0.3, 0.2, 0.2, 0.08, 0.07, 0.15])
    local = pd.Series(np.select([pattern == i for i in range(len(locals_))], [s.to_numpy(object) for s in locals_], ""))
    domain = DOMAINS[rng.choice(len(DOMAINS), n, p=DOMAIN_WEIGHTS / DOMAIN_WEIGHTS.sum())]
    return (local + "@" + domain).to_numpy(object)


def _household_sizes(rng: np.random.Generator, people: int) -> np.ndarray:
    """Household index of each person (households of 1-5, in person order)."""
    sizes = rng.choice([1, 2, 3, 4, 5], size=people, p=[0.42, 0.3, 0.13, 0.1, 0.05])
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), people) + 1)]
    return np.repeat(np.arange(len(sizes)), sizes)[:people]


def _dates(rng: np.random.Generator, start_year: np.ndarray, span_years: np.ndarray) -> np.ndarray:
    """Random dates (``datetime64[D]``) in ``[start_year, start_year + span_years)``."""
    start = (start_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    return start + (rng.random(len(start_year)) * span_years * 365.25).astype("timedelta64[D]")


def _people(rng: np.random.Generator, people: int) -> pd.DataFrame:
    """One row per person: names, sex, birth date, household address, phones and email."""
    last_names, last_p = _load_names("last_names.csv.gz")
    male, male_p = _load_names("male_first_names.csv.gz")
    female, female_p = _load_names("female_first_names.csv.gz")
    places = _load_places()
    hh = _household_sizes(rng, people)
    households = int(hh.max()) + 1
    starts = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
    position = np.arange(people) - np.repeat(starts, np.diff(np.r_[starts, people]))
    hh_last = last_names[rng.choice(len(last_names), households, p=last_p)]
    last = hh_last[hh]
    own = (position == 1) & (rng.random(people) < 0.12)
    last[own] = last_names[rng.choice(len(last_names), int(own.sum()), p=last_p)]
    head_sex = rng.random(households) < 0.5
    sex_male = np.where(position == 0, head_sex[hh], np.where(position == 1, ~head_sex[hh] ^ (rng.random(people) < 0.1),
                                                                rng.random(people) < 0.5))
    first = np.where(sex_male, male[rng.choice(len(male), people, p=male_p)],
                     female[rng.choice(len(female), people, p=female_p)])
    middle = np.where(sex_male, male[rng.choice(len(male), people, p=male_p)],
                      female[rng.choice(len(female), people, p=female_p)])
    head_year = rng.integers(1935, 2003, households)
    year = np.where(position == 0, head_year[hh], np.where(position == 1,
                    np.clip(head_year[hh] + np.rint(rng.normal(0, 3, people)).astype(int), 1930, 2004),
                    np.maximum(head_year[hh] + 20, 1990) + rng.integers(0, 18, people)))
    year = np.minimum(year, 2020)
    dob = _dates(rng, year, np.ones(people))
    twin = (position >= 3) & (rng.random(people) < 0.15)
    dob[twin] = dob[np.flatnonzero(twin) - 1]
    addr = _addresses(rng, households, places)
    landline = _phones(rng, households)[hh]
    mobile = _phones(rng, people)
    phone = np.where(rng.random(people) < 0.25, landline, mobile)
    email = _emails(rng, first, last)
    share = (position >= 1) & (rng.random(people) < 0.08)
    email[share] = email[starts[hh[share]]]
    frame = pd.DataFrame({"household_id": hh, "first": first, "middle": middle, "last": last,
                          "male": sex_male, "dob": dob, "phone": phone, "email": email})
    for name, values in addr.items():
        frame[name] = values[hh]
    return frame


# ---------------------------------------------------------------- records and noise

def _typo(value: str, rng: np.random.Generator) -> str:
    """One keyboard typo: a neighbouring key, a deleted, swapped or doubled letter."""
    if len(value) < 3:
        return value
    i = int(rng.integers(0, len(value) - 1))
    op = int(rng.integers(0, 4))
    if op == 0:
        ch = value[i].lower()
        for row in KEYBOARD:
            j = row.find(ch)
            if j >= 0:
                near = row[max(j - 1, 0): j + 2].replace(ch, "") or ch
                return value[:i] + near[int(rng.integers(0, len(near)))] + value[i + 1:]
        return value
    if op == 1:
        return value[:i] + value[i + 1:]
    if op == 2:
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    return value[:i] + value[i] + value[i:]


def _apply_typos(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """Put a typo in about ``rate`` of the non-empty values, in place."""
    chosen = np.flatnonzero(rng.random(len(values)) < rate)
    for i in chosen:
        if isinstance(values[i], str):
            values[i] = _typo(values[i], rng)


def _records(rng: np.random.Generator, rows: int, sources: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per record (canonical values, noise applied) with its person and source; and the counts."""
    counts = _record_counts(rng, rows)
    people = _people(rng, len(counts))
    person = np.repeat(np.arange(len(counts)), counts)
    rec = people.iloc[person].reset_index(drop=True)
    rec.insert(0, "person_id", person.astype(np.int64))
    nth = np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts)
    _moves(rng, rec, counts, nth)
    weights = 0.5 + rng.random(sources)
    rec["source"] = rng.choice(sources, rows, p=weights / weights.sum())
    _name_noise(rng, rec)
    return rec, counts


def _moves(rng: np.random.Generator, rec: pd.DataFrame, counts: np.ndarray, nth: np.ndarray) -> None:
    """Some people move: their later records carry a new address and sometimes a new phone."""
    movers = (counts >= 2) & (rng.random(len(counts)) < 0.2)
    move_at = np.where(movers, 1 + (rng.random(len(counts)) * (counts - 1)).astype(np.int64), 1 << 40)
    person = rec["person_id"].to_numpy()
    moved = nth >= move_at[person]
    new = _addresses(rng, len(counts), _load_places())
    for name, values in new.items():
        rec.loc[moved, name] = values[person[moved]]
    new_phone = rng.random(len(counts)) < 0.5
    phones = _phones(rng, len(counts))
    change = moved & new_phone[person]
    rec.loc[change, "phone"] = phones[person[change]]


def _name_noise(rng: np.random.Generator, rec: pd.DataFrame) -> None:
    """Nicknames, swapped names, typos, swapped day/month, placeholders."""
    n = len(rec)
    first = rec["first"].to_numpy(object).copy()
    nick = _load_nicknames()
    for i in np.flatnonzero(rng.random(n) < 0.08):
        options = nick.get(first[i])
        if options:
            first[i] = options[int(rng.integers(0, len(options)))]
    last = rec["last"].to_numpy(object).copy()
    swap = rng.random(n) < 0.015
    first[swap], last[swap] = last[swap], first[swap].copy()
    _apply_typos(first, 0.03, rng)
    _apply_typos(last, 0.03, rng)
    street = rec["street"].to_numpy(object).copy()
    _apply_typos(street, 0.03, rng)
    email = rec["email"].to_numpy(object).copy()
    _apply_typos(email, 0.02, rng)
    placeholder = rng.random(n) < PLACEHOLDER_EMAIL_RATE
    email[placeholder] = PLACEHOLDER_EMAILS[rng.integers(0, len(PLACEHOLDER_EMAILS), int(placeholder.sum()))]
    phone = rec["phone"].to_numpy(object).copy()
    placeholder = rng.random(n) < PLACEHOLDER_PHONE_RATE
    phone[placeholder] = PLACEHOLDER_PHONES[rng.integers(0, 2, int(placeholder.sum()))]
    dob = pd.DatetimeIndex(rec["dob"])
    year, month, day = dob.year.to_numpy(), dob.month.to_numpy(), dob.day.to_numpy()
    swap = (rng.random(n) < 0.02) & (day <= 12) & (day != month)
    month, day = np.where(swap, day, month), np.where(swap, month, day)
    rec["first"], rec["last"], rec["street"], rec["email"], rec["phone"] = first, last, street, email, phone
    rec["year"], rec["month"], rec["day"] = year, month, day


# ---------------------------------------------------------------- formatting per source

def _case(values: pd.Series, style: str, rng: np.random.Generator) -> pd.Series:
    """The template's letter case, with 3 % of values in another case and 2 % with stray spaces."""
    styled = {"title": values.str.title(), "lower": values.str.lower(), "upper": values.str.upper()}[style]
    n = len(values)
    other = rng.random(n) < 0.03
    styled = styled.where(~other, values.str.upper() if style != "upper" else values.str.lower())
    spaced = rng.random(n) < 0.02
    return styled.where(~spaced, " " + styled + " ")


def _format_date(year: np.ndarray, month: np.ndarray, day: np.ndarray, style: str) -> pd.Series:
    """Dates as ``MM/DD/YYYY`` (mdy), ``YYYYMMDD`` (ymd) or ISO."""
    y = pd.Series(year).astype(str)
    m = pd.Series(month).astype(str).str.zfill(2)
    d = pd.Series(day).astype(str).str.zfill(2)
    if style == "mdy":
        return m + "/" + d + "/" + y
    if style == "ymd":
        return y + m + d
    return y + "-" + m + "-" + d


def _format_phone(digits: pd.Series, style: str) -> pd.Series:
    """10-digit phones as ``(555) 123-4567``, ``555-123-4567``, ``+15551234567`` or digits."""
    a, b, c = digits.str[:3], digits.str[3:6], digits.str[6:]
    return {"paren": "(" + a + ") " + b + "-" + c, "dash": a + "-" + b + "-" + c,
            "e164": "+1" + digits, "digits": digits}[style]


def _format_source(rec: pd.DataFrame, template: Template, rng: np.random.Generator) -> pd.DataFrame:
    """The records of one source in the template's layout (key column added by the caller)."""
    n = len(rec)
    out: dict[str, Any] = {}
    middle = pd.Series(rec["middle"].to_numpy(object))
    if template.middle == "initial":
        middle = middle.str[0]
    elif template.middle == "mixed":
        middle = middle.where(rng.random(n) < 0.5, middle.str[0])
    middle = middle.where(rng.random(n) < 0.6)
    long_suffix = rng.random(n) < template.suffix_long
    street = pd.Series(rec["street"].to_numpy(object))
    for short, full in SUFFIXES.items():
        street = street.where(~(long_suffix & street.str.endswith(" " + short).to_numpy()),
                              street.str.slice(0, -len(short)) + full)
    values = {
        "first_name": _case(pd.Series(rec["first"].to_numpy(object)), template.case, rng),
        "middle_name": _case(middle, template.case, rng),
        "last_name": _case(pd.Series(rec["last"].to_numpy(object)), template.case, rng),
        "dob": _format_date(rec["year"].to_numpy(), rec["month"].to_numpy(), rec["day"].to_numpy(), template.date_style),
        "email": pd.Series(rec["email"].to_numpy(object)).where(rng.random(n) < 0.97, rec["email"].str.upper().to_numpy()),
        "phone": _format_phone(pd.Series(rec["phone"].to_numpy(object)), template.phone_style),
        "house_number": pd.Series(rec["house_number"].to_numpy(object)),
        "street": _case(street, template.case, rng),
        "unit": pd.Series(rec["unit"].to_numpy(object)),
        "city": _case(pd.Series(rec["city"].to_numpy(object)), template.case, rng),
        "state": pd.Series(rec["state"].to_numpy(object)),
        "postcode": _format_zip(rec, template.zip_style, rng),
    }
    missing = 0.05 + 0.10 * rng.random(len(values))
    for (canonical, column), rate in zip(((c, template.columns.get(c)) for c in values), missing):
        if column is None:
            continue
        series = values[canonical].reset_index(drop=True)
        if canonical not in ("unit", "middle_name"):
            series = series.where(rng.random(n) >= rate)
        out[column] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(out)


def _format_zip(rec: pd.DataFrame, style: str, rng: np.random.Generator) -> pd.Series:
    """ZIP codes: 5 digits, ZIP+4, or ZIP+4 in half of the records (mixed)."""
    zip5 = pd.Series(rec["zip5"].to_numpy(object))
    zip9 = zip5 + "-" + pd.Series(rec["zip4"].to_numpy(object))
    if style == "zip5":
        return zip5
    if style == "zip9":
        return zip9
    return zip9.where(rng.random(len(zip5)) < 0.5, zip5)


# ---------------------------------------------------------------- files

def _source_names(sources: int) -> list[tuple[str, Template]]:
    """``(name, template)`` of each source: templates cycled, a number added when they repeat."""
    named = []
    for i in range(sources):
        template = TEMPLATES[i % len(TEMPLATES)]
        named.append((template.kind if sources <= len(TEMPLATES) else f"{template.kind}_{i // len(TEMPLATES) + 1}", template))
    return named


def _write_table(frame: pd.DataFrame, path: Path, file_format: str) -> None:
    """CSV (pandas) or Parquet (pyarrow, all-string columns except an integer key), deterministically."""
    if file_format == "csv":
        frame.to_csv(path, index=False, lineterminator="\n")
        return
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="snappy")


def _config(named: list[tuple[str, Template]], files: list[str]) -> dict[str, Any]:
    """The ``sources:`` config a new user would write for these files (no model settings)."""
    sources = []
    for (name, template), file in zip(named, files):
        spec: dict[str, Any] = {"name": name, "path": file, "format": template.file_format,
                                "primary_key": template.key}
        if template.date_formats:
            spec["date_formats"] = list(template.date_formats)
        spec["columns"] = dict(template.columns)
        sources.append(spec)
    return {
        "name": "generated",
        "sources": sources,
        "columns": [
            {"name": "first_name", "kind": "name", "term_frequency": True},
            {"name": "last_name", "kind": "name", "term_frequency": True},
            {"name": "dob", "kind": "birth_date"},
            {"name": "email", "kind": "email"},
            {"name": "phone", "kind": "phone"},
            {"name": "postcode", "kind": "postcode"},
            {"name": "street", "kind": "text"},
        ],
        "output": "run",
    }


BLOCKING_RULES = [["first_name", "last_name"], ["last_name", "dob"], ["first_name", "dob"],
                  ["postcode", "house_number"], ["phone"], ["email"]]


def generate(rows: int, sources: int = 3, seed: int = 0, out: str | Path = "generated") -> dict[str, Any]:
    """Write ``rows`` records over ``sources`` source files into ``out``; return the manifest.

    The manifest (also written as ``manifest.json``) holds the row and person counts, each
    source's file, format, key and row count, the records-per-person histogram and the paths of
    ``truth.parquet``, ``config.yaml`` and ``spec.yaml`` (relative to ``out``).
    """
    if rows < 1 or sources < 1:
        raise ValueError("rows and sources must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rec, counts = _records(rng, rows, sources)
    order = rng.permutation(rows)
    rec = rec.iloc[order].reset_index(drop=True)
    named = _source_names(sources)
    files, truth, source_rows = [], [], {}
    for i, (name, template) in enumerate(named):
        part = rec[rec["source"].to_numpy() == i].reset_index(drop=True)
        frame = _format_source(part, template, rng)
        ids = [template.key_style.format(k + 1_000_001 if template.key_style == "{:d}" else k + 1) for k in range(len(part))]
        frame.insert(0, template.key, np.arange(1_000_001, 1_000_001 + len(part), dtype=np.int64)
                     if template.key_style == "{:d}" else ids)
        file = f"{name}.{template.file_format}"
        _write_table(frame, out / file, template.file_format)
        files.append(file)
        source_rows[name] = len(part)
        truth.append(pd.DataFrame({"source": name, "record_id": ids, "person_id": part["person_id"].to_numpy(np.int64)}))
    truth_frame = pd.concat(truth, ignore_index=True)
    pq.write_table(pa.Table.from_pandas(truth_frame, preserve_index=False).replace_schema_metadata(None),
                   out / "truth.parquet", compression="snappy")
    config = _config(named, files)
    _write_yaml(out / "config.yaml", config, "Written by bench/generate.py: the config a new user would write.")
    _write_yaml(out / "spec.yaml", {**{k: v for k, v in config.items() if k != "output"},
                                    "blocking_rules": BLOCKING_RULES, "output": "run_spec"},
                "Written by bench/generate.py: config.yaml plus hand-written blocking rules.")
    manifest = _manifest(rows, sources, seed, counts, named, files, source_rows)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_yaml(path: Path, data: dict[str, Any], comment: str) -> None:
    """A YAML file with a one-line comment on top."""
    path.write_text(f"# {comment}\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _manifest(rows: int, sources: int, seed: int, counts: np.ndarray, named: list[tuple[str, Template]],
              files: list[str], source_rows: dict[str, int]) -> dict[str, Any]:
    """What was generated: sizes, per-source files, the entity size histogram."""
    sizes, freq = np.unique(counts, return_counts=True)
    return {
        "generator_version": GENERATOR_VERSION,
        "args": {"rows": rows, "sources": sources, "seed": seed},
        "seed": seed,
        "rows": rows,
        "people": int(len(counts)),
        "records_per_person_mean": round(rows / len(counts), 4),
        "records_per_person_histogram": {str(int(s)): int(f) for s, f in zip(sizes, freq)},
        "largest_entity": int(counts.max()),
        "sources": [{"name": name, "template": t.kind, "file": file, "format": t.file_format,
                     "primary_key": t.key, "rows": source_rows[name]}
                    for (name, t), file in zip(named, files)],
        "truth": "truth.parquet",
        "config": "config.yaml",
        "spec": "spec.yaml",
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m bench.generate --rows N --sources K --seed S --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    manifest = generate(args.rows, args.sources, args.seed, args.out)
    print(json.dumps({k: manifest[k] for k in ("rows", "people", "records_per_person_mean", "largest_entity")}))


if __name__ == "__main__":
    main()
