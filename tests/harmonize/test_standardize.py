"""matcher.harmonize.standardize: raw values become comparable ones, and the raw values stay beside them."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
from chispa import assert_df_equality
from pyspark.sql import functions as F

from matcher.config.transform import config_from_dict
from matcher.harmonize.rules import NANP_WRITTEN, _e164, e164_phone, per_distinct
from matcher.harmonize.standardize import (
    clean_names,
    e164_phones,
    formal_first_names,
    parse_calendar_dates,
    parse_dates,
    standard_email,
    standard_postcode,
    standardize,
    without_placeholders,
)


def harmonized_config(**overrides) -> object:
    data = {
        "name": "t",
        "sources": [
            {"name": "a", "path": "a.csv", "format": "csv", "primary_key": "id",
             "columns": {"first_name": "fn", "dob": "birth", "phone": "tel", "email": "mail", "postcode": "zip"}},
            {"name": "b", "path": "b.csv", "format": "csv", "primary_key": "id", "date_formats": ["%d/%m/%Y"],
             "columns": {"first_name": "fn", "dob": "birth"}},
        ],
        "columns": [{"name": "first_name_canonical", "kind": "name"}, {"name": "dob", "kind": "date"}],
        "blocking_rules": [["dob"]],
        "training": {"deterministic_rules": [["dob"]], "em_blocking_rules": [["dob"]]},
    }
    data.update(overrides)
    return config_from_dict(data)


def test_names_are_transliterated_lowercased_and_stripped_of_punctuation():
    got = clean_names(pd.Series(["  José  O'Brien-Smith ", "ZOË", "...", None]))
    assert got.tolist() == ["jose obrien smith", "zoe", None, None]


def test_text_keeps_digits_and_drops_other_characters_between_words():
    got = clean_names(pd.Series(["Apt\t4-B", "Nº 12  Rue d'Élan", "#"]), keep_digits=True)
    assert got.tolist() == ["apt4 b", "no 12 rue delan", None]


def test_a_function_runs_once_per_distinct_combination_and_null_first_values_stay_null():
    calls = []

    def joined(value, region):
        calls.append((value, region))
        return f"{value}/{region}"

    got = per_distinct(joined, pd.Series(["a", "a", "b", None, "a", float("nan")]), pd.Series(["x", "y", "x", "x", "x", "y"]))
    assert got.tolist() == ["a/x", "a/y", "b/x", None, "a/x", None]
    assert sorted(calls) == [("a", "x"), ("a", "y"), ("b", "x")]
    assert per_distinct(joined, pd.Series([], dtype=object)).tolist() == []


def test_unambiguous_nicknames_resolve_to_their_formal_name_and_the_rest_stay():
    # bill is listed under william and robert: ambiguous, so it is left alone
    got = formal_first_names(pd.Series(["jim", "james", "liz", "bill", "zebedee", "bob smith", None]))
    assert got.tolist() == ["james", "james", "elizabeth", "bill", "zebedee", "robert smith", None]


def test_dates_parse_by_the_first_format_that_reads_the_whole_value():
    got = parse_dates(pd.Series(["1994-05-06", "19940506", "05/06/1994", "31/31/1990", "1994-05-06 10:00", "", None]),
                      ["%Y-%m-%d", "%Y%m%d", "%m/%d/%Y"])
    assert [None if pd.isna(d) else d.date().isoformat() for d in got] == [
        "1994-05-06", "1994-05-06", "1994-05-06", None, None, None, None]


def test_calendar_dates_include_years_before_1677():
    got = parse_calendar_dates(pd.Series(["1630-08-01", "1994-05-06", "1630-02-30", None]), ["%Y-%m-%d"])
    assert [None if d is None else d.isoformat() for d in got] == ["1630-08-01", "1994-05-06", None, None]


def test_dates_written_with_ocr_lookalikes_parse_only_when_repair_is_on():
    values = pd.Series(["O1/|5/199S", "12/O4/2OZO", "l2/3l/1990", "05/06/1994", "ab/cd/efgh", None])
    as_text = lambda got: [None if pd.isna(d) else d.date().isoformat() for d in got]  # noqa: E731
    assert as_text(parse_dates(values, ["%m/%d/%Y"])) == [None, None, None, "1994-05-06", None, None]
    assert as_text(parse_dates(values, ["%m/%d/%Y"], ocr_repair=True)) == [
        "1995-01-15", "2020-12-04", "1990-12-31", "1994-05-06", None, None]


def test_placeholder_names_and_lone_initials_become_null():
    got = without_placeholders(pd.Series(["mom", "son of", "unknown", "j", "jo", "mary", None]))
    assert got.tolist() == [None, None, None, None, "jo", "mary", None]


def test_phones_become_e164_in_their_region_and_impossible_ones_become_null():
    got = e164_phones(pd.Series(["(206) 555-0134", "+44 20 7946 0958", "020 7946 0958", "12", "call me", None]),
                      pd.Series(["US", "US", "GB", "US", "US", "US"]))
    assert got.tolist() == ["+12065550134", "+442079460958", "+442079460958", None, None, None]


def _written_phones(n: int, seed: int = 5) -> list[str]:
    """US-looking phone numbers written in many ways: about half plainly, the rest with one oddity or more."""
    rng = random.Random(seed)

    def pick(plain: list[str], odd: list[str]) -> str:
        return rng.choice(odd if rng.random() < 0.15 else plain)

    out = []
    for _ in range(n):
        area = pick([str(rng.randrange(200, 1000))], [f"{rng.randrange(200):03d}", "55", "2065"])
        local = f"{rng.randrange(1000):03d}{rng.randrange(10000):04d}"
        split = int(pick(["3"], ["2", "4"]))
        opened, closed = rng.choice([("", ""), ("(", ")")]) if rng.random() > 0.15 else rng.choice([("(", ""), ("", ")")])
        seps = ["", " ", "-", "."]
        number = f"{opened}{area}{closed}{pick(seps, ['  ', '/', ' - '])}{local[:split]}{pick(seps, ['  ', '/'])}{local[split:]}"
        prefix = pick(["", "1", "1 ", "1-", "+1", "+1 ", "+1-", "+1."], ["+ 1 ", "001 ", "011 1 ", "+44 ", "2", "11"])
        out.append(pick(["", " "], ["\t", "  "]) + prefix + number + pick([""], [" ", " x12", " ext. 7", "#", "a"]))
    return out


def test_plainly_written_us_phones_read_as_phonenumbers_reads_them():
    written = _written_phones(4000)
    plain = [w for w in written if NANP_WRITTEN.fullmatch(w.strip())]
    assert len(plain) > len(written) / 4, "the fast path is exercised"
    for region in ("US", "CA", "GB"):
        slow = [_e164(w, region) if w.strip() else None for w in written]  # as before the fast path
        assert [e164_phone(w, region) for w in written] == slow


def test_emails_are_trimmed_lowercased_and_gmail_dots_and_tags_dropped(spark):
    df = spark.createDataFrame(
        [(" John.Smith+shop@GMail.com ",), ("j.smith@googlemail.com",), ("a.b+c@example.com",), ("not-an-email",), (None,)],
        "raw string")
    got = df.select(standard_email(F.col("raw"), True).alias("with"), standard_email(F.col("raw"), False).alias("without"))
    assert [tuple(r) for r in got.collect()] == [
        ("johnsmith@gmail.com", "john.smith+shop@gmail.com"),
        ("jsmith@gmail.com", "j.smith@googlemail.com"),
        ("a.b+c@example.com", "a.b+c@example.com"),
        (None, None),
        (None, None),
    ]


def test_postcodes_lose_zip4_and_regain_leading_zeros(spark):
    df = spark.createDataFrame([("98101-1234",), ("2134",), (" sw1a   1aa ",), ("",)], "raw string")
    got = [r[0] for r in df.select(standard_postcode(F.col("raw"))).collect()]
    assert got == ["98101", "02134", "SW1A 1AA", None]


def test_standardize_keeps_raw_values_and_parses_dates_with_each_sources_formats(spark):
    config = harmonized_config()
    rows = spark.createDataFrame(
        [("a:1", "a", "Jim", "03/04/1990", "206-555-0134", "X@Y.COM", "98101-0001"),
         ("b:1", "b", "Zoë", "03/04/1990", None, None, None)],
        "record_id string, source_system string, first_name string, dob string, phone string, email string, postcode string",
    )
    got = standardize(rows, config).select(
        "record_id", "raw_first_name", "first_name", "first_name_canonical", "raw_dob", "dob", "phone", "email", "postcode")
    expected = spark.createDataFrame(
        [("a:1", "Jim", "jim", "james", "03/04/1990", "1990-03-04", "+12065550134", "x@y.com", "98101"),
         ("b:1", "Zoë", "zoe", "zoe", "03/04/1990", "1990-04-03", None, None, None)],
        got.schema,
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_timestamps_parse_to_spark_timestamps(spark):
    config = harmonized_config()
    rows = spark.createDataFrame([("a", "2024-01-02 03:04:05"), ("a", "2024-01-02T03:04:05"), ("a", "yesterday")],
                                 "source_system string, updated_at string")
    got = [r.updated_at for r in standardize(rows, config).collect()]
    assert got == [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5), None]


def test_placeholder_first_and_last_names_are_null_only_when_configured(spark):
    rows = spark.createDataFrame([("a", "MOM", "Smith"), ("a", "Mary", "Unknown"), ("a", "J", "Doe")],
                                 "source_system string, first_name string, last_name string")
    plain = harmonized_config(columns=[{"name": "first_name", "kind": "name"}])
    config = harmonized_config(columns=[{"name": "first_name", "kind": "name"}], standardize={"placeholder_names": True})
    columns = ["raw_first_name", "first_name", "first_name_canonical", "raw_last_name", "last_name"]
    got = standardize(rows, config).select(*columns)
    expected = spark.createDataFrame(
        [("MOM", None, None, "Smith", "smith"), ("Mary", "mary", "mary", "Unknown", None), ("J", None, None, "Doe", "doe")],
        got.schema,
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    untouched = [r.first_name for r in standardize(rows, plain).collect()]
    assert untouched == ["mom", "mary", "j"]
