"""Blocking rules joined on key columns find exactly the pairs the rules as written find."""

from __future__ import annotations

import pytest

from matcher.blocking.join_keys import KEY_PREFIX, JoinKeys

RULES = [
    "substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2) AND l.email = r.email",
    "(l.`phone` = r.`phone`) AND (l.`postcode` = r.`postcode`)",
    "substr(r.first_name, 1, 2) = substr(l.first_name, 1, 2) AND lower(l.surname) = lower(r.surname)",
    "l.first_name = r.surname AND l.dob = r.dob",
    "l.dob = r.dob AND levenshtein(l.surname, r.surname) <= 2",
    "l.email = r.email OR l.phone = r.phone",
    "1 = 1",
]


def test_computed_keys_become_columns_and_follow_the_plain_columns():
    keys = JoinKeys.of(RULES)
    assert sorted(keys.columns) == ["LOWER(`surname`)", "SUBSTRING(`first_name`, 1, 2)"]  # one column per distinct expression
    substr = keys.columns["SUBSTRING(`first_name`, 1, 2)"]
    assert keys.condition(RULES[0]) == f"`l`.`email` = `r`.`email` AND l.{substr} = r.{substr}"
    assert keys.condition(RULES[2]).startswith(f"l.{substr} = r.{substr} AND l.{KEY_PREFIX}")  # sides put back in order
    assert keys.condition(RULES[3]) == "`l`.`first_name` = `r`.`surname` AND `l`.`dob` = `r`.`dob`"
    assert keys.condition(RULES[4]) == "`l`.`dob` = `r`.`dob` AND (LEVENSHTEIN(l.surname, r.surname) <= 2)"
    assert keys.condition(RULES[5]) == "(l.email = r.email OR l.phone = r.phone)"


def test_a_rule_with_keys_not_computed_or_not_parsed_stays_a_working_condition():
    keys = JoinKeys()
    assert keys.condition(RULES[0]) == "`l`.`email` = `r`.`email` AND SUBSTRING(l.first_name, 1, 2) = SUBSTRING(r.first_name, 1, 2)"
    assert keys.condition("l.a = = r.a") == "l.a = = r.a"


@pytest.mark.parametrize("rule", RULES)
def test_the_keyed_join_finds_the_same_pairs(spark, rule):
    rows = [
        (i, first, surname, email, phone, postcode, dob)
        for i, (first, surname, email, phone, postcode, dob) in enumerate([
            ("Maria", "Lopez", "ml@x.org", "555", "98101", "1990-01-02"),
            ("Mario", "lopez", "ml@x.org", "555", "98101", "1990-01-02"),
            ("Marta", "LOPEZ", None, "555", None, "1990-01-02"),
            (None, "Lopez", "ml@x.org", None, "98101", None),
            ("Lopez", "Maria", "ml@x.org", "556", "98101", "1990-01-02"),
            ("Jo", "Lopes", "jo@y.com", "555", "98102", "1990-01-02"),
            ("M", "Lopez", "ml@x.org", "555", "98101", "1991-01-02"),
            ("Maria", None, None, None, None, None),
        ])
    ]
    records = spark.createDataFrame(rows, "id int, first_name string, surname string, email string, phone string, "
                                          "postcode string, dob string")
    keys = JoinKeys.of([rule])
    records.createOrReplaceTempView("join_keys_plain")
    records.selectExpr("*", *keys.definitions()).createOrReplaceTempView("join_keys_keyed")

    def pairs(table: str, condition: str) -> set[tuple[int, int]]:
        query = f"select l.id, r.id from {table} as l join {table} as r on ({condition}) where l.id < r.id"
        return {(a, b) for a, b in spark.sql(query).collect()}

    expected = pairs("join_keys_plain", rule)
    assert expected  # every rule finds some pair in these rows
    assert pairs("join_keys_keyed", keys.condition(rule)) == expected
