"""matcher.training.column_checks: columns that cannot tell records apart, named before training."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from conftest import REPO, minimal_config

from matcher.config.transform import config_from_dict
from matcher.runtime.errors import InputDataError
from matcher.training.column_checks import check_columns, repeated_evidence
from matcher.training.sessions import agreement_rates


def frame(spark, rows):
    return spark.createDataFrame(pd.DataFrame(rows, columns=["pk", "first_name", "city"]).astype(object))


def test_a_column_without_values_is_refused_naming_it_and_the_data(spark):
    config = config_from_dict(minimal_config())
    df = frame(spark, [(1, "ann", None), (2, "bob", None), (3, "cy", None)])
    with pytest.raises(InputDataError, match=r"^people.csv: column\(s\) city have no values in any row"):
        check_columns(df, config, "people.csv")


def test_a_column_holding_one_value_is_warned_about_without_the_value(spark, caplog):
    config = config_from_dict(minimal_config())
    df = frame(spark, [(1, "ann", "Leeds"), (2, "bob", "Leeds"), (3, "cy", "Leeds")])
    with caplog.at_level(logging.WARNING, logger="matcher.training.column_checks"):
        profile = check_columns(df, config, "people.csv")
    assert profile["city"]["distinct"] == 1 and profile["first_name"]["non_null_share"] == 1.0
    assert "'city' holds one value in every row" in caplog.text
    assert "Leeds" not in caplog.text


def test_the_profile_counts_agreeing_pairs_as_each_kind_compares_values(spark):
    config = config_from_dict(minimal_config(columns=[{"name": "first_name", "kind": "initial"}, {"name": "city", "kind": "exact"}]))
    df = frame(spark, [(1, "ann", "leeds"), (2, "amy", "leeds"), (3, "bob", "leeds"), (4, "al", "york"), (5, None, None)])
    profile = check_columns(df, config, "people.csv", rows=5)
    # initials a, a, b, a: three pairs agree; cities leeds x3, york: three pairs agree
    assert profile["first_name"] == {"non_null_share": 0.8, "non_null": 4, "distinct": 2, "agreeing_pairs": 3.0}
    assert profile["city"] == {"non_null_share": 0.8, "non_null": 4, "distinct": 2, "agreeing_pairs": 3.0}
    assert agreement_rates(profile) == {"first_name": 0.5, "city": 0.5}
    assert check_columns(df, config, "people.csv")["city"] == profile["city"]  # rows counted when not given


def _sources_config(columns: list[dict]):
    from matcher.config.transform import load_config

    data = load_config(REPO / "configs" / "demo.yaml").model_dump(mode="json", exclude_none=True)
    for key in ("inputs", "primary_key", "blocking_rules", "training"):
        data.pop(key, None)
    data["columns"] = columns
    return config_from_dict(data)


def test_several_address_parts_and_first_names_as_written_are_warned_about(caplog):
    config = _sources_config([
        {"name": "first_name", "kind": "name"}, {"name": "street", "kind": "text"},
        {"name": "postcode", "kind": "postcode"}, {"name": "city", "kind": "exact"},
    ])
    with caplog.at_level(logging.WARNING, logger="matcher.training.column_checks"):
        advice = repeated_evidence(config)
    assert len(advice) == 2
    assert advice[0].startswith("columns postcode, city, street are all compared") and "compare postcode alone" in advice[0]
    assert "compare first_name_canonical instead" in advice[1]
    assert caplog.text.count("WARNING") == 2


def test_one_address_part_and_canonical_first_names_need_no_advice():
    config = _sources_config([{"name": "first_name_canonical", "kind": "name"}, {"name": "postcode", "kind": "postcode"}])
    assert repeated_evidence(config) == []
    assert repeated_evidence(config_from_dict(minimal_config())) == []  # not a sources: config
