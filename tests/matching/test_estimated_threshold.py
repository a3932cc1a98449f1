"""matcher.matching.threshold: the threshold estimated at training (``threshold: estimated``),
its default, its precedence, and its record in summary.json."""

from __future__ import annotations

import pytest
from conftest import minimal_config

from matcher.config.transform import config_from_dict
from matcher.matching.summary import run_summary
from matcher.matching.threshold import Threshold, resolve_threshold, threshold_mode
from matcher.model.artifact import TrainedModel

ESTIMATED = {"match_weight": 3.25, "match_probability": 0.905, "expected_precision": 0.97, "expected_recall": 0.88}


def config_with(**overrides):
    return config_from_dict(minimal_config(**overrides))


def model(automatic: list[str], **metadata) -> TrainedModel:
    return TrainedModel({}, {"setup": {"automatic": automatic}, "estimated_threshold": ESTIMATED, **metadata})


def test_the_estimated_threshold_is_the_default_when_training_chose_the_deterministic_rules():
    threshold = resolve_threshold(config_with(), model(["training.deterministic_rules", "training.em_blocking_rules"]))
    assert threshold == Threshold(3.25, "estimated", 0.97, 0.88)
    assert "expected precision 0.970 and recall 0.880" in str(threshold)


def test_hand_written_deterministic_rules_keep_the_tradeoffs_weight_unless_asked():
    hand = model(["training.em_blocking_rules"])
    assert threshold_mode(config_with(), hand) == "weight"
    assert resolve_threshold(config_with(precision_recall_tradeoff=0.75), hand) == Threshold(5.0, "config")
    assert resolve_threshold(config_with(threshold="estimated"), hand).source == "estimated"


def test_weight_asked_for_wins_over_the_default():
    auto = model(["training.deterministic_rules"])
    assert resolve_threshold(config_with(threshold="weight"), auto) == Threshold(0.0, "config")


def test_labels_win_over_the_estimate():
    labeled = model(["training.deterministic_rules"], labels={"threshold_match_weight": 1.5})
    assert resolve_threshold(config_with(labels={"threshold_from_labels": True}), labeled) == Threshold(1.5, "labels")


def test_a_model_without_an_estimate_or_no_model_falls_back_to_the_tradeoff():
    old = TrainedModel({}, {"setup": {"automatic": ["training.deterministic_rules"]}})
    assert resolve_threshold(config_with(threshold="estimated"), old) == Threshold(0.0, "config")
    assert resolve_threshold(config_with(threshold="estimated"), None) == Threshold(0.0, "config")


def test_unknown_threshold_modes_are_refused():
    with pytest.raises(Exception, match="threshold"):
        config_with(threshold="best")


def test_summary_records_the_expectations_and_reads_them_back_for_match_incremental():
    threshold = resolve_threshold(config_with(), model(["training.deterministic_rules"]))
    summary = run_summary(
        config_with(), threshold, rows_in=3, rows_out=3, n_pairs=1, n_clusters=2, outputs={"matches": "m"}, timings_s={},
    )
    assert summary["threshold"]["expected_precision"] == 0.97 and summary["threshold"]["source"] == "estimated"
    back = Threshold.from_summary(summary)
    assert back == threshold and back.same_as(threshold)
    # a threshold without expectations is recorded as before
    assert set(Threshold(1.0).as_dict()) == {"match_weight", "match_probability", "source"}
