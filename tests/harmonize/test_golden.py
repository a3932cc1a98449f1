"""matcher.harmonize.golden: one profile per match_id, each field chosen by its survivorship rule, with provenance."""

from __future__ import annotations

import datetime as dt

import pytest

from matcher.config.transform import config_from_dict
from matcher.harmonize.golden import golden_records

ROWS = [
    # match_id, record_id, source_system, first_name, email, phone, updated_at
    ("m1", "crm:1", "crm", "ann", "old@x.com", "+1", dt.datetime(2020, 1, 1)),
    ("m1", "shop:7", "shop", "anne", "new@x.com", None, dt.datetime(2024, 1, 1)),
    ("m1", "loyalty:3", "loyalty", "anne", None, None, None),
    ("m2", "shop:9", "shop", None, "b@x.com", "+2", dt.datetime(2021, 1, 1)),
]
SCHEMA = "match_id string, record_id string, source_system string, first_name string, email string, phone string, updated_at timestamp"


def config(**golden):
    return config_from_dict({
        "name": "g",
        "sources": [{"name": s, "path": f"{s}.csv", "primary_key": "id",
                     "columns": {"first_name": "fn", "email": "em", "phone": "ph", "updated_at": "ts"}}
                    for s in ("crm", "shop", "loyalty")],
        "columns": [{"name": "first_name", "kind": "name"}],
        "blocking_rules": [["first_name"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["first_name"]]},
        "golden": {"fields": ["first_name", "email", "phone"], **golden},
    })


def profile(spark, **golden) -> dict:
    rows = spark.createDataFrame(ROWS, SCHEMA)
    return {r.match_id: r.asDict() for r in golden_records(rows, config(**golden)).collect()}


@pytest.mark.parametrize(
    "rule, first_name, source",
    [
        ("source_priority", "anne", "loyalty"),   # loyalty ranks first below
        ("most_frequent", "anne", "loyalty"),     # two records say anne; priority breaks the tie
        ("most_recent", "anne", "shop"),          # shop's record is the newest
        ("most_complete", "ann", "crm"),          # crm's record fills all three fields
    ],
)
def test_each_rule_picks_its_value_and_names_where_it_came_from(spark, rule, first_name, source):
    got = profile(spark, default_rule=rule, source_priority=["loyalty", "crm"])["m1"]
    assert (got["first_name"], got["first_name__source"]) == (first_name, source)
    assert got["first_name__record_id"].startswith(f"{source}:")


def test_rules_apply_per_field_and_null_values_never_win(spark):
    got = profile(spark, default_rule="source_priority", source_priority=["crm", "shop"], rules={"email": "most_recent"})
    m1, m2 = got["m1"], got["m2"]
    assert (m1["first_name"], m1["email"], m1["email__record_id"], m1["phone"]) == ("ann", "new@x.com", "shop:7", "+1")
    assert (m2["first_name"], m2["first_name__source"], m2["email"]) == (None, None, "b@x.com")


def test_one_profile_per_match_id_lists_its_records_and_sources(spark):
    got = profile(spark)
    assert sorted(got) == ["m1", "m2"]
    assert got["m1"]["n_records"] == 3
    assert got["m1"]["source_systems"] == ["crm", "loyalty", "shop"]
    assert got["m1"]["record_ids"] == ["crm:1", "loyalty:3", "shop:7"]


def test_golden_without_sources_is_refused():
    from matcher.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="golden: survivorship needs 'sources'"):
        config_from_dict({
            "name": "x", "inputs": [{"name": "a", "path": "a.csv"}], "primary_key": "id",
            "columns": [{"name": "first_name", "kind": "name"}], "blocking_rules": [["first_name"]],
            "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["first_name"]]},
            "golden": {},
        })
