"""Scoring in the driver (Splink on DuckDB) gives the Spark model's scores, level for level."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest
from conftest import HARD_COLUMNS, HARD_ROWS, every_kind_config

from matcher.config.transform import config_from_dict
from matcher.harmonize.ingest import read_inputs
from matcher.incremental.scoring import predict_between_spark, scoring_engine
from matcher.incremental.term_frequency_drift import term_frequencies
from matcher.matching.driver_scoring import duckdb_settings, predict_between
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import splink_settings
from matcher.model.dependence import Agreement, Group, agreement, derived_gamma, derived_gamma_sql
from matcher.model.similarity import jaro_winkler


@pytest.fixture(scope="module")
def scored_both_ways(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("driver_scoring")
    path = folder / "people.csv"
    pd.DataFrame(HARD_ROWS, columns=HARD_COLUMNS).to_csv(path, index=False)
    config = config_from_dict(every_kind_config(path))
    settings = splink_settings(config).get_settings("spark").as_dict()
    settings["probability_two_random_records_match"] = 0.01
    for comparison in settings["comparisons"]:
        levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        for i, level in enumerate(levels):  # distinct m and u per level, so any level mix-up shows in the weight
            level["m_probability"], level["u_probability"] = 0.9 ** i / 2, 0.5 ** (len(levels) - i) + 0.001 * i
    # a dependence comparison whose members agree on a part of the value: an email's username, a postcode's sector
    members = {cc.output_column_name: agreement(cc) for cc in splink_settings(config).get_settings("spark").comparisons}
    assert members["email"].values == (4, 3) and members["postcode"].values == (4, 3)
    columns = ("first_name", "email", "postcode", "city")
    group = Group(columns, (Agreement(("email", "postcode"), 8.0, 1), Agreement(("email", "city"), 3.0, 1),
                            Agreement(("postcode", "city"), 2.0, 1)), tuple(members[c].key for c in columns))
    settings["comparisons"].append(group.comparison())
    model = TrainedModel(settings, {})
    df = read_inputs(spark, config).drop("source_dataset")
    records = df.toPandas()
    frequencies = {c: term_frequencies(records[c]) for c in ("first_name", "surname", "email", "city")}
    via_spark = predict_between_spark(spark, config, model, records, records, df.schema, frequencies)
    via_duckdb = predict_between(config, model, records, records, frequencies)
    return config, model, via_spark, via_duckdb


def _by_pair(scored: pd.DataFrame) -> pd.DataFrame:
    return scored.set_index(["pk_l", "pk_r"]).sort_index()


def test_both_engines_score_the_same_pairs_at_the_same_levels(scored_both_ways):
    _, model, via_spark, via_duckdb = scored_both_ways
    spark_pairs, duckdb_pairs = _by_pair(via_spark), _by_pair(via_duckdb)
    assert len(spark_pairs) == len(HARD_ROWS) ** 2  # "1 = 1" blocks every ordered pair, a record with itself too
    assert list(duckdb_pairs.index) == list(spark_pairs.index)
    gammas = [c for c in spark_pairs.columns if c.startswith("gamma_")]
    assert len(gammas) == 12
    differences = {c: int((spark_pairs[c] != duckdb_pairs[c]).sum()) for c in gammas}
    assert differences == dict.fromkeys(gammas, 0)
    # records 7 and 11 hold one name in each other's fields: the level after exact, in both comparisons
    swapped = spark_pairs["gamma_first_name"] == 4
    assert swapped.sum() == 2 and set(spark_pairs.loc[swapped, "gamma_surname"]) == {4}
    # usernames and sectors agree where the whole values do not (ann.lee@x.com, ann.lee@y.org)
    together = spark_pairs["gamma_together__first_name__email__postcode__city"]
    assert set(spark_pairs.loc[together == 2, "gamma_email"]) == {3, 4}  # email and city agree together
    # and pairs compared before the comparison existed get the same level from their members' levels
    settings = model.settings()
    assert (derived_gamma(settings, settings.comparisons[-1], spark_pairs) == together.to_numpy()).all()
    gammas_only = spark_pairs[gammas].reset_index(drop=True)  # the SQL form, read by DuckDB here
    derived = duckdb.sql(f"select {derived_gamma_sql(settings, settings.comparisons[-1])} as g from gammas_only").df()
    assert (derived["g"].to_numpy() == together.to_numpy()).all()
    # the data reaches several levels of every comparison, so equal gammas say something
    assert all(spark_pairs[c].nunique() >= 3 for c in gammas)


def test_both_engines_give_the_same_weights_and_term_frequencies(scored_both_ways):
    _, _, via_spark, via_duckdb = scored_both_ways
    spark_pairs, duckdb_pairs = _by_pair(via_spark), _by_pair(via_duckdb)
    for column in ["match_weight", "match_probability", "tf_city_l", "tf_first_name_r", "mw_tf_adj_city"]:
        pd.testing.assert_series_equal(duckdb_pairs[column], spark_pairs[column], check_dtype=False, rtol=1e-12, atol=1e-12)


def test_duckdb_settings_carry_the_trained_parameters_and_spark_jaro_winkler(scored_both_ways):
    config, model, _, _ = scored_both_ways
    settings = duckdb_settings(config, model)
    sql = " ".join(level["sql_condition"] for c in settings["comparisons"] for level in c["comparison_levels"])
    assert "matcher_jaro_winkler(" in sql and "jaro_winkler_similarity(" not in sql
    fitted = [level.get("m_probability") for c in model.splink_model["comparisons"] for level in c["comparison_levels"]]
    assert [level.get("m_probability") for c in settings["comparisons"] for level in c["comparison_levels"]] == fitted


def test_jaro_winkler_follows_commons_text_not_duckdb():
    # Commons Text does not round half transpositions: 8 matches, 3 half transpositions
    assert jaro_winkler("riothamus", "tiothamus") == pytest.approx((8 / 9 + 8 / 9 + (8 - 1.5) / 8) / 3)
    assert jaro_winkler("same", "same") == 1.0
    assert jaro_winkler("", "abc") == 0.0
    assert jaro_winkler("martha", "marhta") == pytest.approx(0.9611111111)
    # a character outside the BMP is two UTF-16 units in Java
    assert jaro_winkler("a😀", "a") == pytest.approx(jaro_winkler("axy", "a"))
    rng = random.Random(7)
    words = ["".join(rng.choice("abcde") for _ in range(rng.randint(1, 8))) for _ in range(200)]
    assert all(0.0 <= jaro_winkler(a, b) <= 1.0 for a, b in zip(words, reversed(words)))


def test_auto_scores_in_the_driver_up_to_the_configured_size(scored_both_ways):
    config = scored_both_ways[0]
    assert scoring_engine(config, 1_000_000) == "duckdb"
    assert scoring_engine(config, 1_000_001) == "spark"
    small = config.model_copy(update={"incremental": config.incremental.model_copy(update={"driver_max_rows": 10})})
    assert scoring_engine(small, 11) == "spark"
    forced = config.model_copy(update={"incremental": config.incremental.model_copy(update={"scoring": "spark"})})
    assert scoring_engine(forced, 1) == "spark"
