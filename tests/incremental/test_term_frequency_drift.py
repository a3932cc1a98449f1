"""Stored pairs re-weighed for new term frequencies, in the driver, as Splink would score them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from matcher.incremental.term_frequency_drift import TermFrequencyDrift, comparison_vector_values, term_frequencies
from matcher.model.artifact import TrainedModel

U_EXACT = 0.01  # also the exact level's tf_minimum_u_value, as cap_term_frequency_boost sets it
M_EXACT = 0.9


def model() -> TrainedModel:
    """One comparison on ``name``: null, exact (term-frequency adjusted, minimum u = its u), else."""
    levels = [
        {"sql_condition": "name_l IS NULL OR name_r IS NULL", "is_null_level": True},
        {"sql_condition": "name_l = name_r", "m_probability": M_EXACT, "u_probability": U_EXACT,
         "tf_adjustment_column": "name", "tf_adjustment_weight": 1.0, "tf_minimum_u_value": U_EXACT},
        {"sql_condition": "ELSE", "m_probability": 0.1, "u_probability": 0.99},
    ]
    return TrainedModel({"probability_two_random_records_match": 0.5,
                         "comparisons": [{"output_column_name": "name", "comparison_levels": levels}]}, {})


def pairs(gamma: list[int], tf: list[float], adjustment: list[float]) -> pa.Table:
    mw = [math.log2(M_EXACT / U_EXACT) if g == 1 else math.log2(0.1 / 0.99) for g in gamma]
    return pa.table({
        "record_id_l": ["a1", "b1"][: len(gamma)], "record_id_r": ["a2", "b2"][: len(gamma)],
        "match_weight": np.add(mw, adjustment), "match_probability": [0.5] * len(gamma),
        "gamma_name": pa.array(gamma, pa.int32()), "tf_name_l": tf, "tf_name_r": tf, "mw_name": mw, "mw_tf_adj_name": adjustment,
    })


def test_levels_are_numbered_as_splink_numbers_them():
    levels = model().splink_model["comparisons"][0]["comparison_levels"]
    assert [comparison_vector_values(levels)[id(level)] for level in levels] == [-1, 1, 0]


def test_a_value_at_the_minimum_u_before_is_adjusted_once_it_grows_common():
    """'ann' was 1 in 100 names (no adjustment: at the minimum u); now 2 in 50 it weighs less."""
    names = pd.Series(["ann", "ann"] + [f"x{i}" for i in range(48)], name="name")
    drift = TermFrequencyDrift.of(model(), {"name": term_frequencies(names)})
    records = pd.DataFrame({"id": ["a1", "a2", "b1", "b2"], "name": ["ann", "ann", "x1", "x2"]})
    table = drift.reweigh(pairs([1, 0], [U_EXACT, 0.02], [0.0, 0.0]), records, "id")
    adjusted = table["mw_tf_adj_name"].to_pylist()
    assert adjusted[0] == pytest.approx(math.log2(U_EXACT / 0.04))  # exact level: adjusted though it was 0
    assert adjusted[1] == 0.0  # not on the exact level: never adjusted
    assert table["tf_name_l"].to_pylist()[0] == pytest.approx(0.04)
    assert table["match_weight"].to_pylist()[0] == pytest.approx(math.log2(M_EXACT / U_EXACT) + math.log2(U_EXACT / 0.04))


def test_a_rare_value_stays_at_the_minimum_u():
    names = pd.Series(["ann", "ann"] + [f"x{i}" for i in range(998)], name="name")
    drift = TermFrequencyDrift.of(model(), {"name": term_frequencies(names)})
    records = pd.DataFrame({"id": ["a1", "a2"], "name": ["ann", "ann"]})
    table = drift.reweigh(pairs([1], [0.02], [math.log2(U_EXACT / 0.02)]), records, "id")
    assert table["mw_tf_adj_name"].to_pylist() == [0.0]
