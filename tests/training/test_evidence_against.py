"""A completely different value of an identifying comparison must count against a match."""

import logging

import numpy as np
import pandas as pd
import pytest

from matcher.config.transform import config_from_dict
from matcher.model.artifact import make_linker
from matcher.model.splink_adapter import (
    add_trained_u, apply_trained_m_u, gamma_column, is_else_level, model_settings, non_null_levels, replace_trained_m,
)
from matcher.training.evidence_against import enforce_evidence_against, measured_else_share


def test_the_else_share_is_measured_on_pairs_agreeing_on_every_other_comparison():
    # columns: judged, other1, other2, other3 (top level 2 for each; -1 null; 0 else)
    vectors = np.array([
        [2, 2, 2, 2],   # agrees everywhere: counts
        [0, 2, 2, -1],  # differs on the judged one, agrees on the two others it fills in: counts
        [0, 2, 0, 2],   # an other differs: left out
        [0, 2, -1, -1],  # only one other filled in: left out
        [-1, 2, 2, 2],  # judged one missing: left out
    ])
    counts = np.array([90.0, 10.0, 500.0, 400.0, 70.0])
    pairs, share = measured_else_share(vectors, counts, 0, [2, 2, 2, 2], [True, True, True, True], [False] * 4)
    assert pairs == 100
    assert share == pytest.approx(10.5 / 101)


@pytest.fixture(scope="module")
def linker(spark):
    """An untrained linker over four records comparing first name, date of birth and email."""
    config = config_from_dict({
        "name": "evidence", "inputs": [{"name": "people", "path": "unused.csv"}], "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "dob", "kind": "birth_date"},
                    {"name": "email", "kind": "email"}],
        "blocking_rules": [["first_name"]],
        "training": {"deterministic_rules": [["email"]], "em_blocking_rules": [["first_name"]]},
    })
    rows = spark.createDataFrame(
        [("1", "ann", "1980-01-02", "a@x.com"), ("2", "ann", "1980-01-02", "a@x.com"), ("3", "bob", None, None),
         ("4", "cy", "1990-03-04", "c@y.org")],
        "pk string, first_name string, dob string, email string",
    ).withColumn("source_dataset", __import__("pyspark.sql.functions", fromlist=["lit"]).lit("people"))
    return make_linker(rows, config)


def _train(linker, dob_else_m: float) -> None:
    """m and u for every level: close levels likely among matches; dob's else level at ``dob_else_m``."""
    for cc in model_settings(linker).comparisons:
        levels = sorted(non_null_levels(cc), key=lambda lv: -lv.comparison_vector_value)
        for i, level in enumerate(levels):
            if is_else_level(level):
                m = dob_else_m if cc.output_column_name == "dob" else 0.05
                u = 0.99
            else:
                m = (1.0 - (dob_else_m if cc.output_column_name == "dob" else 0.05)) / (len(levels) - 1)
                u = 0.01 / (len(levels) - 1)
            replace_trained_m(level, m, "test")
            add_trained_u(level, u, "test")
    apply_trained_m_u(linker)


def _patterns(settings, dob_differs: int, dob_agrees: int) -> pd.DataFrame:
    """Candidate pattern counts: pairs agreeing on first name and email, dob agreeing or completely different."""
    tops = {cc.output_column_name: max(lv.comparison_vector_value for lv in non_null_levels(cc)) for cc in settings.comparisons}
    rows = []
    for dob, count in ((0, dob_differs), (tops["dob"], dob_agrees)):
        rows.append({gamma_column(cc): (dob if cc.output_column_name == "dob" else tops[cc.output_column_name])
                     for cc in settings.comparisons} | {"pattern_count": count})
    return pd.DataFrame(rows)


def _dob_else(settings) -> tuple[float, float]:
    cc = next(c for c in settings.comparisons if c.output_column_name == "dob")
    level = next(lv for lv in non_null_levels(cc) if is_else_level(lv))
    return level.m_probability, sum(lv.m_probability for lv in non_null_levels(cc))


def test_an_else_level_that_costs_nothing_is_corrected_and_reported(linker, caplog):
    _train(linker, dob_else_m=0.85)  # log2(0.85 / 0.99): a different birth date costs -0.2 bits
    settings = model_settings(linker)
    with caplog.at_level(logging.WARNING, logger="matcher.training.evidence_against"):
        report = enforce_evidence_against(linker, settings, _patterns(settings, dob_differs=20, dob_agrees=980))
    (dob,) = [r for r in report if r["comparison"] == "dob"]
    assert dob["action"] == "corrected" and dob["agreeing_pairs"] == 1000
    assert dob["em_weight"] == pytest.approx(np.log2(0.85 / 0.99), abs=1e-3)
    assert dob["measured_weight"] < -5
    m_else, m_total = _dob_else(settings)
    assert m_else == pytest.approx(20.5 / 1001)
    assert m_total == pytest.approx(1.0)  # the closer levels were scaled up to keep the distribution whole
    assert "different dob weigh -0.2 bits" in caplog.text and "corrected to" in caplog.text


def test_an_else_level_that_already_counts_against_is_left_alone(linker):
    _train(linker, dob_else_m=0.02)
    settings = model_settings(linker)
    assert [r for r in enforce_evidence_against(linker, settings, _patterns(settings, 500, 500)) if r["comparison"] == "dob"] == []
    assert _dob_else(settings)[0] == pytest.approx(0.02)


def test_too_few_agreeing_pairs_leave_em_alone_and_say_so(linker, caplog):
    _train(linker, dob_else_m=0.85)
    settings = model_settings(linker)
    with caplog.at_level(logging.WARNING, logger="matcher.training.evidence_against"):
        report = enforce_evidence_against(linker, settings, _patterns(settings, dob_differs=1, dob_agrees=5))
    (dob,) = [r for r in report if r["comparison"] == "dob"]
    assert dob["action"] == "too few pairs to check" and dob["agreeing_pairs"] == 6
    assert _dob_else(settings)[0] == pytest.approx(0.85)
    assert "too few candidate pairs (6)" in caplog.text
