"""Generate the bundled multi-source demo: the same simulated people in three systems.

    python data/demo/generate.py          # rewrites data/demo/{crm.csv,shop.jsonl,loyalty.parquet}
                                          # and the next day's delta, data/demo/day2/

People (names, dates of birth, street addresses) are drawn with a fixed seed from the
``pseudopeople`` package's bundled sample population (BSD-3-Clause, simulated, no real
person), decennial census 2020 without noise; postcodes, cities, phones, emails, timestamps
and every discrepancy below are made here with ``random.Random(SEED)``, so the same package
versions always write the same files. ``person_id`` in every file is the ground truth.

========  ============  ======================================================================
system    file          how it differs
========  ============  ======================================================================
crm       crm.csv       ``customer_no``, ``given_name``/``family_name``, dates ``MM/DD/YYYY``,
                        phones ``(206) 555-0134``, ZIP+4, ``last_modified``
shop      shop.jsonl    ``id``, ``name.first``-style flat keys, ISO dates, Gmail addresses with
                        dots and ``+tags``, ``+1`` phones; some customers registered twice
loyalty   loyalty.      ``member_id`` (integer), UPPER-CASE names, nicknames, accents, dates
          parquet       ``DD.MM.YYYY``, phones ``206.555.0134``, a ``tier`` column
========  ============  ======================================================================

Every system also has typos, blanks, and a few rows the quality gate must reject (an
unreadable date, no contact detail at all).

``day2/`` is the next day, for ``matcher match-incremental`` (its own seed, so the files above
do not change): ``crm.csv`` holds 31 people who were not in the CRM yet (most of them are
customers of the shop or the loyalty programme; like any CRM row, some carry an unreadable
date) and new versions of 5 CRM records (new email address and phone); ``shop.jsonl`` 10 new
registrations;
``delete.csv`` 3 shop record ids (``record_id``, ``shop:<id>``) to remove.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

SEED = 2024
PEOPLE = 600
HERE = Path(__file__).resolve().parent
CITIES = [("Seattle", "98101"), ("Tacoma", "98402"), ("Spokane", "99201"), ("Bellevue", "98004"),
          ("Olympia", "98501"), ("Everett", "98201"), ("Yakima", "98901"), ("Vancouver", "98660"),
          ("Walla Walla", "99362"), ("Auburn", "98001")]
AREA_CODES = ["206", "253", "360", "425", "509"]
DOMAINS = ["gmail.com", "example.com", "mail.example.org", "outlook.example.net"]
NICKNAMES = {"william": "bill", "robert": "bob", "elizabeth": "liz", "margaret": "peggy", "richard": "dick",
             "james": "jim", "jennifer": "jen", "michael": "mike", "katherine": "kate", "thomas": "tom",
             "joseph": "joe", "christopher": "chris", "daniel": "dan", "patricia": "pat", "susan": "sue"}
ACCENTS = {"e": "é", "a": "á", "o": "ö", "u": "ü", "n": "ñ"}


def people(rng: random.Random) -> pd.DataFrame:
    import pseudopeople as psp

    census = psp.generate_decennial_census(seed=0, config="no_noise")
    adults = census[pd.to_numeric(census["age"]) >= 18].drop_duplicates("simulant_id").sort_values("simulant_id")
    chosen = adults.sample(n=PEOPLE, random_state=SEED).reset_index(drop=True)
    rows = []
    for i, p in chosen.iterrows():
        city, zipcode = rng.choice(CITIES)
        first, last = p["first_name"], p["last_name"]
        domain = rng.choice(DOMAINS)
        rows.append({
            "person_id": f"P{i:04d}",
            "first_name": first, "last_name": last,
            "dob": pd.Timestamp(p["date_of_birth"]),
            "house_number": str(p["street_number"] or ""), "street": str(p["street_name"] or ""),
            "unit": None if pd.isna(p["unit_number"]) else str(p["unit_number"]),
            "city": city, "zip": zipcode, "state": "WA",
            "phone": f"{rng.choice(AREA_CODES)}555{rng.randrange(10000):04d}",
            "email": f"{first.lower()}.{last.lower().replace(' ', '')}{rng.randrange(100)}@{domain}",
        })
    return pd.DataFrame(rows)


def typo(rng: random.Random, text: str) -> str:
    """One keyboard-style error: a dropped, doubled or swapped letter."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.choice(["drop", "double", "swap"])
    if kind == "drop":
        return text[:i] + text[i + 1:]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    return text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]


def maybe(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def timestamp(rng: random.Random) -> pd.Timestamp:
    return pd.Timestamp("2022-01-01") + pd.Timedelta(seconds=rng.randrange(3 * 365 * 86400))


def crm(rng: random.Random, base: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for n, p in enumerate(base.sample(frac=0.75, random_state=SEED + 1).itertuples()):
        phone = f"({p.phone[:3]}) {p.phone[3:6]}-{p.phone[6:]}"
        dob = p.dob.strftime("%m/%d/%Y")
        if maybe(rng, 0.01):
            dob = "31/31/" + dob[-4:]  # unreadable date: quarantined (parseable: dob)
        rows.append({
            "customer_no": f"C{10000 + n}", "given_name": typo(rng, p.first_name) if maybe(rng, 0.05) else p.first_name,
            "family_name": typo(rng, p.last_name) if maybe(rng, 0.05) else p.last_name,
            "birth_date": None if maybe(rng, 0.03) else dob,
            "email_address": None if maybe(rng, 0.1) else p.email,
            "phone_number": None if maybe(rng, 0.1) else phone,
            "house_no": p.house_number, "street_name": p.street, "zip": f"{p.zip}-{rng.randrange(10000):04d}",
            "city": p.city, "state": p.state, "last_modified": timestamp(rng).strftime("%Y-%m-%d %H:%M:%S"),
            "person_id": p.person_id,
        })
    return pd.DataFrame(rows)


def shop(rng: random.Random, base: pd.DataFrame) -> list[dict]:
    chosen = base.sample(frac=0.7, random_state=SEED + 2)
    twice = chosen.sample(frac=0.15, random_state=SEED + 3)
    records = []
    for n, p in enumerate(pd.concat([chosen, twice]).itertuples()):
        local, domain = p.email.split("@")
        if domain == "gmail.com" and maybe(rng, 0.5):
            local = local.replace(".", "") + "+shop"
        email = f"{local}@{domain}"
        email = email.upper() if maybe(rng, 0.1) else email
        contactless = maybe(rng, 0.01)  # no email, no phone, no dob: quarantined (require_any)
        records.append({
            "id": f"S-{n:05d}", "first": p.first_name, "last": typo(rng, p.last_name) if maybe(rng, 0.05) else p.last_name,
            "dob": None if contactless or maybe(rng, 0.1) else p.dob.strftime("%Y-%m-%d"),
            "mail": None if contactless else email,
            "mobile": None if contactless or maybe(rng, 0.3) else f"+1 {p.phone[:3]}-{p.phone[3:6]}-{p.phone[6:]}",
            "ship_zip": p.zip, "ship_city": p.city.upper(), "ship_state": p.state.lower(),
            "updated": timestamp(rng).strftime("%Y-%m-%dT%H:%M:%S"), "person_id": p.person_id,
        })
    return records


def accent(rng: random.Random, name: str) -> str:
    letters = [i for i, ch in enumerate(name) if ch.lower() in ACCENTS]
    if not letters:
        return name
    i = rng.choice(letters)
    return name[:i] + ACCENTS[name[i].lower()] + name[i + 1:]


def loyalty(rng: random.Random, base: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for n, p in enumerate(base.sample(frac=0.6, random_state=SEED + 4).itertuples()):
        first = NICKNAMES.get(p.first_name.lower(), p.first_name) if maybe(rng, 0.6) else p.first_name
        first = accent(rng, first) if maybe(rng, 0.1) else first
        rows.append({
            "member_id": 500000 + n, "first": first.upper(), "surname": p.last_name.upper(),
            "birthdate": None if maybe(rng, 0.05) else p.dob.strftime("%d.%m.%Y"),
            "tel": None if maybe(rng, 0.2) else f"{p.phone[:3]}.{p.phone[3:6]}.{p.phone[6:]}",
            "email": None if maybe(rng, 0.4) else p.email,
            "postal_code": p.zip, "town": p.city, "tier": rng.choice(["bronze", "silver", "gold"]),
            "enrolled_at": timestamp(rng).strftime("%Y-%m-%d %H:%M:%S"), "person_id": p.person_id,
        })
    return pd.DataFrame(rows)


def day_two(base: pd.DataFrame, day_one_crm: pd.DataFrame, day_one_shop: list[dict]) -> None:
    """The next day's delta in ``day2/`` (see the module docstring)."""
    rng = random.Random(SEED + 100)
    folder = HERE / "day2"
    folder.mkdir(exist_ok=True)
    newcomers = base[~base["person_id"].isin(day_one_crm["person_id"])].sample(n=41, random_state=SEED + 101)
    joined = crm(rng, newcomers)  # takes 75 % of them: 31 rows
    joined["customer_no"] = [f"C{20000 + n}" for n in range(len(joined))]
    updates = day_one_crm[day_one_crm["email_address"].notna()].sample(n=5, random_state=SEED + 102).copy()
    updates["email_address"] = [e.replace("@", ".new@") for e in updates["email_address"]]
    updates["phone_number"] = [f"(206) 555-{rng.randrange(10000):04d}" for _ in range(len(updates))]
    updates["last_modified"] = "2025-01-02 09:00:00"
    pd.concat([joined, updates]).to_csv(folder / "crm.csv", index=False)
    in_shop = {r["person_id"] for r in day_one_shop}
    shoppers = base[~base["person_id"].isin(in_shop)].sample(n=15, random_state=SEED + 103)
    with open(folder / "shop.jsonl", "w", encoding="utf-8") as f:
        for n, record in enumerate(shop(rng, shoppers)[:10]):
            f.write(json.dumps({**record, "id": f"S-{90000 + n:05d}"}, ensure_ascii=False) + "\n")
    gone = rng.sample([r["id"] for r in day_one_shop], 3)
    pd.DataFrame({"record_id": [f"shop:{i}" for i in sorted(gone)]}).to_csv(folder / "delete.csv", index=False)


def main() -> None:
    rng = random.Random(SEED)
    base = people(rng)
    day_one_crm = crm(rng, base)
    day_one_crm.to_csv(HERE / "crm.csv", index=False)
    day_one_shop = shop(rng, base)
    with open(HERE / "shop.jsonl", "w", encoding="utf-8") as f:
        for record in day_one_shop:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    loyalty(rng, base).to_parquet(HERE / "loyalty.parquet", index=False)
    day_two(base, day_one_crm, day_one_shop)


if __name__ == "__main__":
    main()
