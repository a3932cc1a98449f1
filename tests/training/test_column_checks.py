"""matcher.training.column_checks: columns that cannot tell records apart, named before training."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from conftest import minimal_config

from matcher.config.transform import config_from_dict
from matcher.runtime.errors import InputDataError
from matcher.training.column_checks import check_columns


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
