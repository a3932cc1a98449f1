"""matcher.matching.matches: every input row comes out once, with a match_id and a confidence in [0, 1]."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import minimal_config

import matcher.matching.components as components_module
from matcher.config.transform import config_from_dict
from matcher.harmonize.ingest import read_inputs
from matcher.matching.matches import find_matches, with_compared_values
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import splink_settings
from matcher.model.splink_adapter import waterfall_chart

COLUMNS = ["pk", "first_name", "surname", "email", "city"]
ROWS = [
    (1, "ann", "lee", "ann.lee@x.com", "leeds"),
    (2, "ann", "lee", "ann.lee@x.com", "leeds"),  # the same person as 1
    (3, "bob", "stone", "bob@y.org", "leeds"),  # shares only the city with 1 and 2
    (4, "zed", "quinn", "zq@z.net", "york"),  # alone in its block: never a candidate
    (5, "cat", "diaz", "cat@d.com", "hull"),
    (6, "cat", "diaz", "cat@d.com", "hull"),  # the same person as 5
]


def model_favouring_agreement(config) -> TrainedModel:
    """Fixed parameters: agreeing (exact) levels are strong evidence of a match, the rest against."""
    settings = splink_settings(config).get_settings("spark").as_dict()
    settings["probability_two_random_records_match"] = 0.01
    for comparison in settings["comparisons"]:
        levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        for i, level in enumerate(levels):
            exact, last = i == 0, i == len(levels) - 1
            level["m_probability"] = 0.9 if exact else 0.05
            level["u_probability"] = 0.01 if exact else (0.9 if last else 0.09)
    return TrainedModel(settings, {})


@pytest.fixture(scope="module")
def matched(spark, tmp_path_factory):
    path = tmp_path_factory.mktemp("matches") / "people.csv"
    pd.DataFrame(ROWS, columns=COLUMNS).to_csv(path, index=False)
    config = config_from_dict(minimal_config(
        inputs=[{"name": "people", "path": str(path), "format": "csv"}],
        columns=[{"name": "first_name", "kind": "name"}, {"name": "surname", "kind": "name"},
                 {"name": "email", "kind": "email"}, {"name": "city", "kind": "exact"}],
        blocking_rules=[["city"]],
    ))
    result = find_matches(read_inputs(spark, config), config, model_favouring_agreement(config))
    rows = result.rows.toPandas().set_index("pk").sort_index()
    pairs = result.pairs.toPandas()
    threshold = result.threshold.match_probability
    valued = with_compared_values(result.pairs, result.rows, config).toPandas()
    result.release()
    return rows, pairs, threshold, valued, config


def test_every_row_comes_out_once_with_its_columns_a_match_id_and_a_confidence(matched):
    rows, *_ = matched
    assert rows.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert sorted(rows.columns) == sorted([*COLUMNS[1:], "match_id", "match_confidence_score"])
    assert rows["match_id"].notna().all()
    assert rows.loc[3, "first_name"] == "bob"


def test_identical_records_share_the_smallest_key_as_their_match_id(matched):
    rows, *_ = matched
    assert rows.loc[[1, 2], "match_id"].tolist() == [1, 1]
    assert rows.loc[[5, 6], "match_id"].tolist() == [5, 5]


def test_a_singleton_keeps_its_own_key_as_match_id(matched):
    rows, *_ = matched
    assert rows.loc[3, "match_id"] == 3
    assert rows.loc[4, "match_id"] == 4


def test_confidence_is_a_probability_and_follows_the_definition(matched):
    rows, pairs, threshold, *_ = matched
    assert rows["match_confidence_score"].between(0.0, 1.0).all()
    assert rows.loc[4, "match_confidence_score"] == 1.0  # no candidate pair at all
    same = pairs[(pairs["record_id_l"].isin([1, 2])) & (pairs["record_id_r"].isin([1, 2]))]["match_probability"]
    assert same.iloc[0] >= threshold
    assert rows.loc[1, "match_confidence_score"] == pytest.approx(same.iloc[0])  # its strongest link
    best_of_3 = pairs.loc[(pairs["record_id_l"] == 3) | (pairs["record_id_r"] == 3), "match_probability"].max()
    assert best_of_3 < threshold
    assert rows.loc[3, "match_confidence_score"] == pytest.approx(1.0 - best_of_3)  # sure it has no match


def test_rows_come_out_the_same_when_their_lookup_is_too_large_to_broadcast(spark, matched, monkeypatch):
    rows, *_, config = matched
    monkeypatch.setattr(components_module, "BROADCAST_COMPONENT_RECORDS", 0)  # the shuffled join
    result = find_matches(read_inputs(spark, config), config, model_favouring_agreement(config))
    shuffled = result.rows.toPandas().set_index("pk").sort_index()
    result.release()
    pd.testing.assert_frame_equal(shuffled[rows.columns], rows)


def test_the_scored_pairs_are_the_blocked_candidates_only(matched):
    _, pairs, *_ = matched
    found = {tuple(sorted(p)) for p in pairs[["record_id_l", "record_id_r"]].itertuples(index=False)}
    assert found == {(1, 2), (1, 3), (2, 3), (5, 6)}


def test_pairs_leave_the_compared_values_with_the_records_and_a_join_brings_them_back(matched):
    rows, pairs, _, valued, config = matched
    assert not {f"{c}{s}" for c in COLUMNS[1:] for s in ("_l", "_r")} & set(pairs.columns)
    assert {"gamma_first_name", "mw_first_name", "match_weight"} <= set(pairs.columns)
    assert len(valued) == len(pairs)
    for pair in valued.itertuples(index=False):
        for column in COLUMNS[1:]:
            assert getattr(pair, f"{column}_l") == rows.loc[pair.record_id_l, column]
            assert getattr(pair, f"{column}_r") == rows.loc[pair.record_id_r, column]
    # Splink's waterfall shows them
    chart = waterfall_chart(valued.iloc[0].to_dict(), model_favouring_agreement(config).settings(), hide_values=False)
    shown = {(r["column_name"], r["value_l"]) for r in chart["data"]["values"]}
    assert ("first_name", valued.iloc[0]["first_name_l"]) in shown
