"""matcher.training.sessions: EM sessions and deterministic rules chosen from the data (real Spark, small data)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from matcher.blocking.auto import RuleEstimate, rule_estimates
from matcher.config.transform import config_from_dict
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.training.sessions import Measured, choose_sessions, choose_training_rules, match_share

FIRST = ["anna", "ben", "carla", "dmitri", "eva", "femi", "gus", "hana", "ivan", "jade", "kofi", "lena", "milo", "nora",
         "omar", "pia", "quin", "rosa", "sami", "tove"]
LAST = [f"{a}{b}" for a in ["mor", "kel", "vas", "oduy", "lin", "fer", "nak", "ols"] for b in ["ton", "ski", "ez", "ova", "berg"]]
CITIES = ["northby", "southam", "westford"]  # three places: nearly every pair of records shares one


def _typo(value: str, rng: random.Random) -> str:
    i = rng.randrange(len(value))
    return value[:i] + rng.choice("aeiouxyz") + value[i + 1:]


def people_frame(n: int = 240, seed: int = 1) -> pd.DataFrame:
    """``n`` people with two records each; one record in three has a typo in one name."""
    rng = random.Random(seed)
    rows = []
    for person in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dob = f"19{rng.randrange(40, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        city = rng.choice(CITIES)
        for copy in range(2):
            f, s = first, last
            if copy and rng.random() < 0.33:
                if rng.random() < 0.5:
                    f = _typo(f, rng)
                else:
                    s = _typo(s, rng)
            rows.append({"pk": 2 * person + copy, "first_name": f, "surname": s, "dob": dob, "city": city,
                         SOURCE_DATASET_COLUMN: "people"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def chosen(spark):
    config = config_from_dict({
        "name": "sessions",
        "inputs": [{"name": "people", "path": "people.csv", "format": "csv"}],
        "primary_key": "pk",
        "columns": [
            {"name": "first_name", "kind": "name"}, {"name": "surname", "kind": "name"},
            {"name": "dob", "kind": "exact"}, {"name": "city", "kind": "exact"},
        ],
    })
    df = spark.createDataFrame(people_frame()).cache()
    candidates = rule_estimates(df, config)
    return config, candidates, choose_training_rules(df, config, candidates)


def _columns(rule) -> set[str]:
    return set(rule)


def test_every_comparison_is_estimated_by_a_session_that_does_not_block_on_it(chosen):
    config, _, choice = chosen
    assert choice.em_blocking_rules
    estimated = set()
    for rule, session in zip(choice.em_blocking_rules, choice.report["em_sessions"]):
        assert not _columns(rule) & set(session["estimates"])  # never estimates what it blocks on
        assert set(session["estimates"]) == set(config.column_names) - _columns(rule)
        estimated |= set(session["estimates"])
    assert estimated == set(config.column_names)


def test_a_rule_on_the_weak_place_column_alone_is_rejected_with_its_reason(chosen):
    _, _, choice = chosen
    assert ["city"] not in choice.em_blocking_rules
    reason = choice.report["rejected"]["['city']"]
    assert "city" in reason and "non-matches" in reason
    city = next(c for c in choice.report["candidates"] if c["columns"] == ["city"])
    assert city["match_share"] < 0.05


def test_sessions_are_rules_where_matches_are_a_recognisable_share(chosen):
    _, _, choice = chosen
    for session in choice.report["em_sessions"]:
        assert 0.05 <= session["match_share"] <= 0.99


def test_deterministic_rules_are_precise_and_the_choice_is_json(chosen):
    import json

    _, _, choice = chosen
    assert choice.deterministic_rules
    for rule in choice.report["deterministic"]:
        assert rule["match_share"] >= 0.9
    json.dumps(choice.report)
    assert choice.as_training()["em_blocking_rules"] == choice.em_blocking_rules


def test_match_share_counts_pairs_agreeing_on_half_the_evidence_of_the_other_columns():
    names = ["first_name", "surname", "city"]
    bits = {"first_name": 5.0, "surname": 6.0, "city": 1.0}
    patterns = [((1, 1, 1), 10), ((0, 1, 1), 10), ((0, 0, 1), 80)]  # blocked on city: a surname alone is > half
    sampled, share = match_share(patterns, names, {"city"}, bits)
    assert sampled == 100 and share == pytest.approx(0.2)
    assert match_share([((1, 1, 1), 3)], names, {"city"}, bits) == (3, None)  # too few to tell


def test_a_comparison_no_sound_rule_estimates_is_reported_uncovered():
    names = ["a", "b"]
    only_a = Measured(RuleEstimate(["b"], ("b",), 1000.0), 1000, 0.5)
    weak = Measured(RuleEstimate(["a"], ("a",), 1000.0), 1000, 0.01)
    sessions, reasons, uncovered = choose_sessions([only_a, weak], names, {"a": 3.0, "b": 9.0})
    assert sessions == [only_a] and uncovered == ["b"]
    assert "['a']" in reasons


def test_capture_recapture_estimates_the_matches_and_the_deterministic_rules_recall():
    from matcher.training.sessions import deterministic_recall, estimated_true_pairs

    # 1000 matching pairs; a match agrees on a with 0.8, on b with 0.5, independently
    a = Measured(RuleEstimate(["a"], ("a",), 1000.0), 1000, 0.8)
    b = Measured(RuleEstimate(["b"], ("b",), 1000.0), 1000, 0.5)
    ab = Measured(RuleEstimate(["a", "b"], ("a", "b"), 400.0), 400, 1.0)
    assert estimated_true_pairs([a, b, ab]) == pytest.approx(1000.0)
    assert estimated_true_pairs([a, b]) is None
    assert deterministic_recall([ab], 1000.0) == pytest.approx(0.4)
    assert deterministic_recall([ab, a], 1000.0) == pytest.approx(1 - 0.6 * 0.2)
    assert deterministic_recall([ab], None) is None


def test_the_recall_estimate_is_reported_but_the_config_recall_stays(chosen):
    _, _, choice = chosen
    assert "deterministic_recall" not in choice.as_training()
    estimate = choice.report["deterministic_recall_estimate"]
    assert estimate is None or 0.05 <= estimate <= 0.99


def test_capture_recapture_leaves_out_columns_of_a_few_values():
    from matcher.training.sessions import estimated_true_pairs

    a = Measured(RuleEstimate(["a"], ("a",), 1000.0), 1000, 0.8)
    source = Measured(RuleEstimate(["source"], ("source",), 100_000.0), 20_000, 0.01)  # matches rarely share it
    both = Measured(RuleEstimate(["a", "source"], ("a", "source"), 200.0), 200, 0.1)
    assert estimated_true_pairs([a, source, both]) == pytest.approx(800 * 1000 / 20)
    assert estimated_true_pairs([a, source, both], {"a": 9.0, "source": 1.5}) is None
