"""matcher.matching.threshold: the run's threshold from the tradeoff or from labels, in both forms, recorded and read back."""

from __future__ import annotations

import math

import pytest
from conftest import minimal_config

from matcher.config.transform import config_from_dict
from matcher.matching.threshold import Threshold, probability_to_weight, resolve_threshold, weight_to_probability
from matcher.model.artifact import TrainedModel


def config_with(tradeoff: float = 0.5, *, from_labels: bool = False):
    return config_from_dict(minimal_config(precision_recall_tradeoff=tradeoff, labels={"threshold_from_labels": from_labels}))


def learned(weight: float | None) -> TrainedModel:
    return TrainedModel({}, {"labels": {"threshold_match_weight": weight}})


@pytest.mark.parametrize(("tradeoff", "weight"), [(0.5, 0.0), (1.0, 10.0), (0.0, -10.0), (0.75, 5.0), (0.6, 2.0)])
def test_precision_recall_tradeoff_maps_to_a_match_weight_of_20_times_its_distance_from_half(tradeoff, weight):
    threshold = resolve_threshold(config_with(tradeoff), None)
    assert threshold.match_weight == pytest.approx(weight)
    # the probability is the logistic of the weight in base 2
    assert threshold.match_probability == pytest.approx(2**weight / (1 + 2**weight))
    assert threshold.source == "config"


def test_neutral_precision_recall_tradeoff_is_probability_one_half():
    assert resolve_threshold(config_with(0.5), None).match_probability == 0.5


def test_precision_recall_tradeoff_endpoints_are_about_one_in_a_thousand():
    strict = resolve_threshold(config_with(1.0), None).match_probability
    loose = resolve_threshold(config_with(0.0), None).match_probability
    assert strict == pytest.approx(1024 / 1025)
    assert loose == pytest.approx(1 / 1025)
    assert strict + loose == pytest.approx(1.0)  # symmetric about 0.5


def test_higher_precision_recall_tradeoff_never_lowers_the_threshold():
    probabilities = [resolve_threshold(config_with(t / 10), None).match_probability for t in range(11)]
    assert probabilities == sorted(probabilities)
    assert len(set(probabilities)) == 11
    assert all(0.0 < p < 1.0 and not math.isnan(p) for p in probabilities)


def test_the_learned_threshold_wins_only_when_the_config_asks_for_it_and_the_model_has_one():
    assert resolve_threshold(config_with(0.5, from_labels=True), learned(3.5)) == Threshold(3.5, "labels")
    assert resolve_threshold(config_with(0.5, from_labels=False), learned(3.5)) == Threshold(0.0, "config")
    assert resolve_threshold(config_with(0.75, from_labels=True), learned(None)) == Threshold(5.0, "config")
    assert resolve_threshold(config_with(0.75, from_labels=True), TrainedModel({}, {})) == Threshold(5.0, "config")


@pytest.mark.parametrize("weight", [-10.0, -2.5, 0.0, 3.25, 10.0])
def test_weight_and_probability_convert_both_ways(weight):
    assert probability_to_weight(weight_to_probability(weight)) == pytest.approx(weight, abs=1e-9)


def test_summary_records_both_forms_and_the_source_and_reads_them_back():
    threshold = Threshold(5.0, "labels")
    assert threshold.as_dict() == {"match_weight": 5.0, "match_probability": 32 / 33, "source": "labels"}
    assert Threshold.from_summary({"threshold": threshold.as_dict()}) == threshold
    # a summary written before the threshold was recorded whole: the config's, from the probability
    old = Threshold.from_summary({"threshold_match_probability": 32 / 33})
    assert old.source == "config" and old.match_weight == pytest.approx(5.0) and old.same_as(threshold)
    assert Threshold.from_summary({}) is None


def test_thresholds_are_the_same_when_they_cut_at_the_same_probability():
    assert Threshold(2.0, "config").same_as(Threshold(2.0 + 1e-13, "labels"))
    assert not Threshold(2.0).same_as(Threshold(2.01))
