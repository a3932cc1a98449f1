"""Kind detection from a column's name and content: names, emails, phones, dates, postcodes, ids."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher.profiling.kinds import (
    date_formats,
    detect_kind,
    key_name_rank,
    name_hint,
    name_tokens,
)
from matcher.profiling.profile import profile_column

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Élodie",
         "Anne-Marie", "O'Neil", None, "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Van der Berg"]


def kind(name: str, values: list, dtype: str = "string"):
    return detect_kind(profile_column(name, pd.Series(values, dtype=object), dtype, len(values)))


def test_column_names_split_into_tokens_and_hint_a_meaning():
    assert name_tokens("dateOfBirth") == ["date", "of", "birth"]
    assert name_tokens("Ship_ZIP2") == ["ship", "zip"]
    hints = {n: name_hint(n) for n in ["given_name", "fname", "FirstName", "surname", "family_name", "last",
                                       "last_modified", "DOB", "date_of_birth", "zip", "postal_code", "suburb",
                                       "town", "e_mail", "mobile", "street_number", "house_no", "ssn", "Gender",
                                       "middle_initial", "full_name", "tier"]}
    assert hints == {
        "given_name": "first_name", "fname": "first_name", "FirstName": "first_name", "surname": "last_name",
        "family_name": "last_name", "last": "last_name", "last_modified": "updated_at", "DOB": "dob",
        "date_of_birth": "dob", "zip": "postcode", "postal_code": "postcode", "suburb": "city", "town": "city",
        "e_mail": "email", "mobile": "phone", "street_number": "house_number", "house_no": "house_number",
        "ssn": "national_id", "Gender": "sex", "middle_initial": "middle_name", "full_name": "full_name", "tier": None,
    }


def test_key_names_rank_id_first_then_suffixes():
    assert [key_name_rank(n) for n in ["id", "rec_id", "unique_id", "member_id", "customer_no", "first_name"]] == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize(("column", "values", "field", "comparison"), [
    ("given_name", FIRST, "first_name", "name"),
    ("first", FIRST, "first_name", "name"),
    ("surname", LAST, "last_name", "name"),
    ("lname", LAST, "last_name", "name"),
])
def test_names_need_a_name_and_words(column, values, field, comparison):
    k = kind(column, values)
    assert (k.field, k.comparison, k.term_frequency) == (field, comparison, True)
    assert "100% words" in k.reason or "95% words" in k.reason


def test_a_name_column_of_numbers_is_not_a_name():
    assert kind("surname", [str(i * 7919) for i in range(40)]).field is None


def test_full_names_are_compared_as_names_under_their_own_name_and_middle_initials_by_first_letter():
    full = [f"{f} {l}" for f, l in zip(FIRST, LAST) if f]
    k = kind("customer_name", full)
    assert (k.label, k.field, k.comparison) == ("full_name", None, "name")
    k = kind("middle_initial", ["A", "B.", "C", "D", None, "E", "F", "Jo"] * 3)
    assert (k.field, k.comparison) == ("middle_name", "initial")


def test_emails_by_content_whatever_the_name():
    emails = [f"{f.lower()}.{i}@example.com" for i, f in enumerate(["ann", "bob", "cy", "di", "ed"] * 4)] + ["not-an-email"]
    k = kind("contact", emails)
    assert (k.field, k.comparison) == ("email", "email")
    assert "95% look like emails" in k.reason


def test_phones_with_separators_by_content_and_bare_digits_only_with_a_phone_name():
    phones = ["(509) 555-0616", "+1 425-555-2677", "253.555.3972", "+44 20 7946 0958", "206 555 4451"] * 6
    assert kind("contact_2", phones).field == "phone"
    bare = [str(2065550000 + i * 37) for i in range(30)]
    assert kind("tel", bare).field == "phone"
    ids = kind("account", bare)  # ten digits, no separators, no phone name: an identifier
    assert (ids.field, ids.label) == (None, "id")


@pytest.mark.parametrize(("values", "formats"), [
    (["1969-10-19", "1944-10-07", "1938-02-17", "1963-12-05", "2001-01-31"] * 4, ("%Y-%m-%d",)),
    (["10/19/1969", "10/07/1944", "02/17/1938", "12/05/1963", "1/31/2001"] * 4, ("%m/%d/%Y",)),
    (["19691019", "19441007", "19380217", "19631205", "20010131"] * 4, ("%Y%m%d",)),
    (["19.10.1969", "07.10.1944", "17.02.1938", "05.12.1963", "31.01.2001"] * 4, ("%d.%m.%Y",)),
    (["10/19/1969", "10/07/1944", "02/17/1938", "12/05/1963", "31/01/2001"] * 4, ("%m/%d/%Y", "%d/%m/%Y")),
])
def test_dates_and_their_formats(values, formats):
    k = kind("date_of_birth", values)
    assert (k.field, k.comparison, k.date_formats) == ("dob", "birth_date", formats)
    assert date_formats(pd.Series(values))[0] == formats


def test_eight_digit_numbers_are_dates_only_when_named_so_or_nearly_all_parse():
    ids = [str(20240000 + i) for i in range(1, 60)]  # 20240001 ... many are not dates
    assert kind("order_ref", ids).label != "date"


def test_a_timestamp_is_updated_at_and_not_compared():
    k = kind("last_modified", ["2024-01-15 01:37:47", "2022-05-04T04:15:31", "2023-07-27 20:24:24"] * 5)
    assert (k.field, k.comparison) == ("updated_at", None)


def test_a_date_named_for_an_event_is_not_compared_a_birth_date_is():
    days = [f"2019-0{m}-1{d}" for m in range(1, 10) for d in range(10)]
    survey = kind("survey_date", days)  # household members interviewed on one day share it
    assert (survey.label, survey.comparison) == ("event_date", None)
    assert kind("date_of_birth", days).comparison == "birth_date"
    assert kind("visited", days).comparison == "date"  # no name says what it is: compared


def test_us_zip_codes_and_uk_postcodes_are_kind_postcode_with_levels_by_format():
    zips = ["98201-4548", "99201", "98101-0679", "02134", "10001"] * 5
    k = kind("zip", zips)
    assert (k.field, k.comparison, k.term_frequency, k.region) == ("postcode", "postcode", True, "US")
    assert "US ZIP" in k.reason
    uk = ["SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "LS1 4AP"] * 3
    k = kind("pc", uk)  # the content alone is enough
    assert (k.field, k.comparison, k.region) == ("postcode", "postcode", "GB")
    plain = [str(10000 + 37 * i) for i in range(30)]  # five digits without a postcode name: not a postcode
    assert kind("amount", plain).field is None
    four = ["2000", "3000", "2600", "0800", "6000"] * 5
    assert kind("postcode", four).field == "postcode"


def test_places_numbers_ids_text_and_columns_to_skip():
    cities = ["Seattle", "Spokane", "Tacoma", "Walla Walla", "Yakima", "Everett"] * 5
    assert (kind("suburb", cities).field, kind("suburb", cities).comparison) == ("city", "exact")
    assert kind("state", ["WA", "OR", "CA", "WA"] * 5).field == "state"
    assert kind("house_no", ["2", "51", "197", "11731", "4B"] * 5).field == "house_number"
    assert kind("ship_number", ["2", "51", "197", "11731", "4B"] * 5).field == "house_number"  # the shipping address's
    assert kind("ST", ["WA", "or", "CA", "NY", "TX"] * 5).field == "state"  # USPS codes decide, the name cannot
    assert kind("language", ["EN", "FR", "ES", "IT", "PT"] * 5).field is None  # two-letter codes, not states
    assert kind("street_name", ["dougherty rd", "e 49th st", "penn ave"] * 5).field == "street"
    assert kind("age", [str(20 + i % 50) for i in range(200)]).comparison == "numeric"
    assert kind("ref", [f"X{i:05d}" for i in range(50)]).label == "id"
    notes = [f"called on day {i} about the order and asked for a refund" for i in range(30)]
    assert kind("notes", notes).label == "free_text"
    assert kind("tier", ["gold", "silver", "bronze"] * 10).comparison == "exact"
    assert (kind("empty", [None, "", "  "]).label, kind("empty", [None, "", "  "]).comparison) == ("empty", None)
    assert kind("country", ["US"] * 10).label == "constant"
    assert kind("flag", [True, False] * 5, "boolean").comparison == "exact"


def test_typed_parquet_dates_need_no_formats():
    import datetime as dt

    k = kind("birthdate", [dt.date(1990, 1, 2), dt.date(1985, 5, 6)] * 3, "date")
    assert (k.field, k.comparison, k.date_formats) == ("dob", "birth_date", ("%Y-%m-%d",))


def test_a_column_holding_first_and_last_name_together_is_a_full_name():
    assert kind("first_and_surname", ["ann smith", "bob jones", "cy lee"] * 10).label == "full_name"


def test_dates_before_1850_are_dates_when_the_year_is_set_apart():
    values = ["1630-08-01", "1712-11-30", "1801-02-03"] * 10
    k = kind("born", values)
    assert k.comparison == "birth_date" and k.date_formats == ("%Y-%m-%d",)  # "born": a date of birth
