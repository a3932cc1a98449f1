"""Postcode formats: ``format: auto`` decided from the data, and the levels of each format."""

from __future__ import annotations

import pandas as pd
import pytest
from splink import DuckDBAPI, Linker

from matcher.config.transform import ColumnSpec, ComparisonKind, config_from_dict
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import splink_settings
from matcher.model.postcode import column_format, column_formats, postcode_format, resolve_formats, with_formats
from matcher.runtime.errors import ConfigError
from tests.conftest import minimal_config
from tests.model.test_comparisons import levels_of


# --- detection ------------------------------------------------------------------------
def test_us_zip_codes_and_zip_plus_four_are_us():
    assert postcode_format(["12345", "02139", "90210", None, ""]) == "us"
    assert postcode_format(["12345-6789", "02139", "902101234", "10001-0001"]) == "us"


def test_uk_postcodes_are_uk():
    assert postcode_format(["SW1A 1AA", "m1 1ae", "EC1A1BB", "B33 8TH", "CR2 6XH", None]) == "uk"


def test_australian_four_digit_codes_are_digits():
    assert postcode_format(["2000", "3121", "0800", "6000", "2600"]) == "digits"
    assert postcode_format(pd.Series(["2000", "3121", None, "0800"])) == "digits"


def test_mixed_or_unknown_values_fall_back_to_uk():
    assert postcode_format(["12345", "SW1A 1AA", "2000", "75008 Paris", "H0H 0H0"]) == "uk"
    assert postcode_format([]) == "uk"
    assert postcode_format([None, float("nan")]) == "uk"


def test_a_few_odd_values_do_not_change_a_clear_majority():
    assert postcode_format(["12345"] * 9 + ["n/a"]) == "us"
    assert postcode_format(["2000"] * 9 + ["20000"]) == "digits"


def test_the_spark_helper_reads_a_sample_of_the_non_null_values(spark):
    df = spark.createDataFrame([(str(10000 + i),) for i in range(50)] + [(None,)] * 50, "zip string")
    assert column_format(df, "zip") == "us"
    assert column_format(df, "zip", limit=3) == "us"


# --- configuration ----------------------------------------------------------------------
def _config(**column):
    return config_from_dict(minimal_config(columns=[{"name": "first_name", "kind": "name"}, {"name": "zip", "kind": "postcode", **column}]))


def test_format_is_only_for_postcodes():
    with pytest.raises(ConfigError, match="format is only for kind 'postcode'"):
        config_from_dict(minimal_config(columns=[{"name": "city", "kind": "exact", "format": "us"}]))
    with pytest.raises(ConfigError, match="columns.1.format"):
        _config(format="zip")


def test_resolving_formats_keeps_the_hash_of_what_the_user_wrote(spark):
    written = _config()
    df = spark.createDataFrame([("a", "12345"), ("b", "12345-6789")], "first_name string, zip string")
    resolved = resolve_formats(df, written)
    assert resolved.columns[1].format == "us" and written.columns[1].format is None
    assert resolved.model_hash() == written.model_hash()
    assert resolved.model_copy(update={"seed": 1}).model_hash() == written.model_copy(update={"seed": 1}).model_hash()
    explicit_auto = _config(format="auto")
    assert resolve_formats(df, explicit_auto).model_hash() == explicit_auto.model_hash()
    assert _config(format="us").model_hash() != written.model_hash()  # a format the user chose shapes the model
    assert column_formats(resolved) == {"zip": "us"} and column_formats(written) == {}


def test_a_config_without_format_hashes_as_before_formats_existed():
    column = ColumnSpec(name="zip", kind=ComparisonKind.postcode)
    assert column.as_written() == {"name": "zip", "kind": "postcode", "term_frequency": False}


def test_a_trained_model_gives_back_the_formats_it_was_trained_with():
    written = _config()
    assert TrainedModel({}, {"column_formats": {"zip": "digits"}}).configure(written).columns[1].format == "digits"
    assert TrainedModel({}, {}).configure(written).columns[1].format == "uk"  # saved before formats were recorded
    assert TrainedModel({}, {"column_formats": {"zip": "digits"}}).configure(_config(format="us")).columns[1].format == "us"


# --- levels -------------------------------------------------------------------------------
US_PAIRS = [
    ("12345", "12345"),        # exact
    ("12345", "12345-6789"),   # ZIP+4 against its ZIP
    ("12345", "12346"),        # one-digit typo
    ("12345", "12399"),        # same first three digits
    ("12345", "98765"),        # different
]


def test_us_levels_rank_a_typo_above_a_different_zip_and_zip_plus_four_with_its_zip(spark):
    column = ColumnSpec(name="zip", kind=ComparisonKind.postcode, format="us")
    got = levels_of(spark, column, US_PAIRS, "string")
    assert got[0].lower().startswith("exact")
    assert got[1:4] == ["Same 5-digit ZIP", "5-digit ZIPs within Levenshtein 1", "First 3 digits equal"]
    assert got[4] == "else"


def test_digits_levels(spark):
    column = ColumnSpec(name="pc", kind=ComparisonKind.postcode, format="digits")
    got = levels_of(spark, column, [("2000", "2000"), ("2000", "2001"), ("2000", "2099"), ("2000", "3000"), ("2000", "3121")], "string")
    assert got[0].lower().startswith("exact") and "levenshtein" in got[1].lower()
    assert got[2] == "All but the last two characters equal"
    assert got[3].lower().startswith("levenshtein")  # 2000 / 3000: one edit
    assert got[4] == "else"


def _scored_with_a_tiny_linker(config, pairs, engine: str = "duckdb"):
    """Gamma and match weight (``mw_zip``) of each pair of zips from a DuckDB Splink linker: m falls and u rises level by level."""
    settings = splink_settings(config).get_settings(engine).as_dict()
    settings["probability_two_random_records_match"] = 0.01
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for i, level in enumerate(levels):
            level["m_probability"] = [0.5, 0.2, 0.15, 0.1, 0.05][i] if len(levels) == 5 else 1 / len(levels)
            level["u_probability"] = [0.001, 0.002, 0.01, 0.05, 0.937][i] if len(levels) == 5 else 1 / len(levels)
    # one pair per blocking group: the config blocks on city
    rows = pd.DataFrame(
        [(f"{i}{side}", "ann", zips[k], str(i)) for i, zips in enumerate(pairs) for k, side in enumerate("lr")],
        columns=["pk", "first_name", "zip", "city"],
    )
    linker = Linker(DuckDBAPI().register(rows), settings, log_level=None)
    scored = linker.inference.predict().as_pandas_dataframe()
    scored["pair"] = scored["city_l"].astype(int)
    out = [(int(r.gamma_zip), float(r.mw_zip)) for r in scored.sort_values("pair").itertuples()]
    return out


def test_a_real_linker_scores_a_zip_typo_above_different_zips_and_zip_plus_four_high():
    scored = _scored_with_a_tiny_linker(_config(format="us"), US_PAIRS)
    gammas = [g for g, _ in scored]
    assert gammas == [4, 3, 2, 1, 0]
    weights = [bf for _, bf in scored]
    assert weights == sorted(weights, reverse=True)
    assert weights[1] > 0  # 12345 vs 12345-6789 is evidence for a match
    assert weights[2] > weights[4] and weights[2] > weights[3]  # a typo beats different ZIPs

    # the UK levels (what every postcode got before) cannot tell a typo from a different ZIP
    uk = _scored_with_a_tiny_linker(_config(format="uk"), US_PAIRS)
    assert uk[2][0] == uk[4][0] == 0


def test_model_formats_are_what_a_config_resolved_with_it_builds():
    written = _config()
    model = TrainedModel({}, {"column_formats": {"zip": "us"}})
    comparison = splink_settings(model.configure(written)).get_settings("spark").as_dict()["comparisons"][1]
    assert any("levenshtein" in lv["sql_condition"] for lv in comparison["comparison_levels"])
    assert with_formats(written, {"zip": "digits"}).columns[1].format == "digits"
