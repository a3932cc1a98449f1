"""matcher.model.comparisons: the comparison levels each column kind gets, evaluated by Spark on real pairs."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from matcher.config.transform import ColumnSpec, ComparisonKind, config_from_dict
from matcher.model.comparisons import comparable, comparison_for
from matcher.runtime.errors import ConfigError
from tests.conftest import minimal_config


def levels_of(spark, column: ColumnSpec, pairs: list[tuple], kind: str) -> list[str]:
    """The label of the first level each ``(left, right)`` pair meets, as Splink's CASE WHEN picks it."""
    comparison = comparison_for(column).get_comparison("spark")
    case = "CASE " + " ".join(
        f"WHEN {lv.sql_condition} THEN '{lv.label_for_charts}'" for lv in comparison.comparison_levels if lv.sql_condition != "ELSE"
    ) + " ELSE 'else' END"
    frame = spark.createDataFrame(pairs, f"{column.name}_l {kind}, {column.name}_r {kind}")
    return [r.level for r in frame.select(F.expr(case).alias("level")).collect()]


def test_birth_dates_have_a_level_for_month_and_day_swapped_after_exact(spark):
    column = ColumnSpec(name="dob", kind=ComparisonKind.birth_date)
    pairs = [("1990-04-07", "1990-04-07"), ("1990-04-07", "1990-07-04"), ("1990-04-07", "1991-07-04"),
             ("1990-04-07", "1990-04-08"), ("1990-04-07", None)]
    frame = spark.createDataFrame(pairs, "dob_l string, dob_r string").select(
        F.to_date("dob_l").alias("dob_l"), F.to_date("dob_r").alias("dob_r"))
    got = levels_of(spark, column, [tuple(r) for r in frame.collect()], "date")
    assert got[0].lower().startswith("exact")
    assert got[1] == "Month and day swapped"
    assert got[2] != "Month and day swapped"  # another year is not a swap
    assert got[3].lower().startswith("levenshtein")
    assert "null" in got[4].lower()


def test_initials_compare_first_letters_so_a_middle_name_meets_its_initial(spark):
    column = ColumnSpec(name="middle_name", kind=ComparisonKind.initial)
    got = levels_of(spark, column, [("nancy", "n"), ("nancy", "r"), ("n", None)], "string")
    assert got[1] == "else" and got[0] != "else" and got[2] != "else"
    assert "null" in got[2].lower() and "null" not in got[0].lower()


def test_birth_date_columns_are_parsed_once_for_comparison_like_dates(spark):
    config = config_from_dict(minimal_config(columns=[{"name": "dob", "kind": "birth_date"}]))
    rows = spark.createDataFrame([("1990-04-07",), ("not a date",)], "dob string")
    got = comparable(rows, config)
    assert dict(got.dtypes)["dob"] == "date"
    assert [r.dob.isoformat() if r.dob else None for r in got.collect()] == ["1990-04-07", None]


def test_initials_refuse_term_frequency_adjustments():
    with pytest.raises(ValueError, match="term_frequency is not available for kind 'initial'"):
        ColumnSpec(name="middle_name", kind=ComparisonKind.initial, term_frequency=True)


def test_id_numbers_get_levels_for_mistyped_digits(spark):
    column = ColumnSpec(name="national_id", kind=ComparisonKind.id_number)
    got = levels_of(spark, column, [("123456789", "123456789"), ("123456789", "123456788"), ("123456789", "124456788"),
                                    ("123456789", "987654321")], "string")
    assert got[0].lower().startswith("exact") and got[3] == "else"
    assert "1" in got[1] and "2" in got[2] and got[1] != got[2]  # one digit off, two digits off


def test_a_name_swapped_with_another_has_a_level_after_exact(spark):
    first = ColumnSpec(name="first_name", kind=ComparisonKind.name, swapped_with="last_name")
    comparison = comparison_for(first).get_comparison("spark")
    exact, swapped = comparison.comparison_levels[1:3]
    pairs = [("ann", "lee", "ann", "lee"), ("ann", "lee", "lee", "ann"), ("ann", "lee", "lee", "bob"), ("ann", "ann", "ann", "ann")]
    frame = spark.createDataFrame(pairs, "first_name_l string, last_name_l string, first_name_r string, last_name_r string")
    got = [(r.exact, r.swapped) for r in frame.select(F.expr(exact.sql_condition).alias("exact"),
                                                      F.expr(swapped.sql_condition).alias("swapped")).collect()]
    assert got == [(True, False), (False, True), (False, False), (True, True)]  # exact comes first: "ann ann" is exact
    assert swapped.label_for_charts == "first_name and last_name swapped" and exact._has_tf_adjustments
    plain = comparison_for(ColumnSpec(name="first_name", kind=ComparisonKind.name)).get_comparison("spark").comparison_levels
    labels = [lv.label_for_charts for lv in comparison.comparison_levels]
    assert labels == [*(lv.label_for_charts for lv in plain[:2]), swapped.label_for_charts,
                      *(lv.label_for_charts for lv in plain[2:])]  # Splink's name levels otherwise


def test_swapped_with_names_another_compared_name():
    with pytest.raises(ValueError, match="only a kind 'name' column"):
        ColumnSpec(name="city", kind=ComparisonKind.exact, swapped_with="first_name")
    columns = [{"name": "first_name", "kind": "name", "swapped_with": "city"}, {"name": "city", "kind": "exact"}]
    with pytest.raises(ConfigError, match="first_name: swapped_with 'city' is not a compared column of kind 'name'"):
        config_from_dict(minimal_config(columns=columns))
    written = config_from_dict(minimal_config())
    assert "swapped_with" not in written.columns[0].as_written()  # configs without it hash as before
