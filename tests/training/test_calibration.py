"""matcher.training.calibration: lambda from the candidates' mixture and the threshold of best
expected F-beta, on pattern tables generated from known m, u and lambda (numpy only), and
end to end on the demo (real Spark: training records both lambdas and the threshold that
``matcher match`` then uses)."""

from __future__ import annotations

import itertools
import json
import logging
import math

import numpy as np
import pytest
import yaml

from conftest import REPO
from matcher.training.calibration import (
    LAMBDA_DISAGREEMENT, MixtureLambda, Parameters, best_expected_threshold, lambda_report, mixture_lambda,
)
from matcher.training.supervision import f_beta

# three comparisons: levels 2 (exact), 1 (close), 0 (else)
M = [{2: 0.85, 1: 0.10, 0: 0.05}, {2: 0.80, 1: 0.15, 0: 0.05}, {2: 0.90, 1: 0.05, 0: 0.05}]
U = [{2: 0.004, 1: 0.02, 0: 0.976}, {2: 0.002, 1: 0.01, 0: 0.988}, {2: 0.003, 1: 0.03, 0: 0.967}]
TOTAL_PAIRS = 20_000_000
TRUE_LAMBDA = 3e-4


def population(lam: float = TRUE_LAMBDA, seed: int = 0):
    """Every pattern with its pairs among ``TOTAL_PAIRS`` drawn from the model; blocking keeps the
    pairs exact on the first or the second comparison. Returns (patterns, counts, matches, blocked)."""
    rng = np.random.default_rng(seed)
    patterns = np.array(list(itertools.product([2, 1, 0], repeat=3)))
    m = np.prod([[M[k][g] for k, g in enumerate(row)] for row in patterns], axis=1)
    u = np.prod([[U[k][g] for k, g in enumerate(row)] for row in patterns], axis=1)
    matches = rng.poisson(TOTAL_PAIRS * lam * m)
    non_matches = rng.poisson(TOTAL_PAIRS * (1 - lam) * u)
    blocked = (patterns[:, 0] == 2) | (patterns[:, 1] == 2)
    return patterns, (matches + non_matches).astype(float), matches.astype(float), blocked


def test_em_over_lambda_alone_recovers_the_lambda_that_generated_the_candidates():
    patterns, counts, matches, blocked = population()
    params = Parameters(M, U, [0.0, 0.0, 0.0])
    recall = params.m_mass(patterns[blocked])
    # the model's blocking recall is the m mass of the blocked patterns, and the data agree with it
    assert recall == pytest.approx(matches[blocked].sum() / matches.sum(), rel=0.02)
    found = mixture_lambda(params.log2_bayes_factors(patterns[blocked]), counts[blocked], TOTAL_PAIRS, recall)
    assert found.lam == pytest.approx(TRUE_LAMBDA, rel=0.05)
    assert found.candidate_matches == pytest.approx(matches[blocked].sum(), rel=0.05)
    # any start above zero reaches the same fixed point
    far = mixture_lambda(params.log2_bayes_factors(patterns[blocked]), counts[blocked], TOTAL_PAIRS, recall, start=0.3)
    assert far.lam == pytest.approx(found.lam, rel=1e-4)


def test_without_a_recall_estimate_lambda_counts_only_the_candidates_matches():
    patterns, counts, matches, blocked = population()
    params = Parameters(M, U, [0.0, 0.0, 0.0])
    found = mixture_lambda(params.log2_bayes_factors(patterns[blocked]), counts[blocked], TOTAL_PAIRS)
    assert found.lam == pytest.approx(matches[blocked].sum() / TOTAL_PAIRS, rel=0.05)


def test_nulls_are_as_likely_among_matches_as_among_random_pairs():
    params = Parameters([{1: 0.9, 0: 0.1}], [{1: 0.01, 0: 0.99}], [0.25])
    patterns = np.array([[1], [0], [-1]])
    assert params.m_mass(patterns) == pytest.approx(1.0)
    assert params.m_mass(patterns[:1]) == pytest.approx(0.9 * 0.75)
    assert params.log2_bayes_factors(patterns)[2] == 0.0


def expected_f(log2_odds, counts, cut, beta=1.0, missed=0.0):
    p = 1 / (1 + np.exp2(-log2_odds))
    above = log2_odds >= cut
    tp, fp = (p * counts)[above].sum(), ((1 - p) * counts)[above].sum()
    fn = (p * counts)[~above].sum() + missed
    return float(f_beta(tp, fp, fn, beta))


@pytest.mark.parametrize(("beta", "missed"), [(1.0, 0.0), (0.5, 0.0), (2.0, 0.0), (1.0, 40.0)])
def test_the_estimated_threshold_maximises_expected_f_beta(beta, missed):
    rng = np.random.default_rng(1)
    log2_odds = np.round(rng.normal(-4, 8, 300), 2)
    counts = rng.integers(1, 500, 300).astype(float)
    found = best_expected_threshold(log2_odds, counts, beta, missed)
    cuts = np.unique(log2_odds)
    best = max(expected_f(log2_odds, counts, c, beta, missed) for c in cuts)
    assert found.expected_f_beta == pytest.approx(best)
    assert expected_f(log2_odds, counts, found.match_weight, beta, missed) == pytest.approx(best)
    # the threshold falls between two observed weights, and its expectations are those of the cut
    assert found.match_weight not in set(log2_odds)
    p = 1 / (1 + np.exp2(-log2_odds))
    above = log2_odds >= found.match_weight
    assert found.expected_precision == pytest.approx((p * counts)[above].sum() / counts[above].sum())
    assert found.expected_recall == pytest.approx((p * counts)[above].sum() / ((p * counts).sum() + missed))
    assert found.match_probability == pytest.approx(1 / (1 + 2 ** -found.match_weight))


def test_a_constructed_table_puts_the_threshold_where_f1_peaks():
    # weights 10 (90 pairs), 2 (10 pairs), -1 (50 pairs), -8 (1000 pairs): cutting under weight 2
    # keeps 98.9 expected matches at 2.6 false; under -1 would add 16.7 matches but 33.3 false
    log2_odds, counts = np.array([10.0, 2.0, -1.0, -8.0]), np.array([90.0, 10.0, 50.0, 1000.0])
    found = best_expected_threshold(log2_odds, counts, 1.0)
    assert found.match_weight == pytest.approx(0.5)
    assert found.expected_precision == pytest.approx((90 * 1024 / 1025 + 10 * 0.8) / 100)


def test_no_expected_matches_give_no_threshold():
    assert best_expected_threshold(np.array([]), np.array([]), 1.0) is None
    assert best_expected_threshold(np.array([-2000.0]), np.array([0.0]), 1.0) is None


def test_a_badly_assumed_deterministic_recall_warns_and_the_mixture_stays_near_the_truth(caplog):
    patterns, counts, matches, blocked = population()
    params = Parameters(M, U, [0.0, 0.0, 0.0])
    # deterministic rule: exact on all three comparisons (true recall 0.85 * 0.80 * 0.90 = 0.61);
    # the config assumes recall 0.1, so lambda comes out six times too high
    found_by_rule = counts[(patterns == 2).all(axis=1)].sum()
    deterministic = found_by_rule / 0.1 / TOTAL_PAIRS
    assert deterministic > TRUE_LAMBDA * LAMBDA_DISAGREEMENT
    recall = params.m_mass(patterns[blocked])
    mixture = mixture_lambda(params.log2_bayes_factors(patterns[blocked]), counts[blocked], TOTAL_PAIRS, recall)
    assert mixture.lam == pytest.approx(TRUE_LAMBDA, rel=0.05)
    with caplog.at_level(logging.WARNING, logger="matcher.training.calibration"):
        report = lambda_report(
            deterministic, mixture, use_mixture=False, candidate_pairs=int(counts[blocked].sum()),
            total_pairs=TOTAL_PAIRS, observed=int(found_by_rule),
        )
    assert report["used"] == "deterministic" and report["mixture"] == mixture.lam
    assert report["ratio"] > LAMBDA_DISAGREEMENT
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "deterministic_recall" in warning.getMessage() and f"{deterministic:.3g}" in warning.getMessage()
    # estimates that agree do not warn; with the mixture in use, there is nothing to warn about
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="matcher.training.calibration"):
        lambda_report(mixture.lam * 2, mixture, use_mixture=False, candidate_pairs=1, total_pairs=TOTAL_PAIRS)
        assert lambda_report(deterministic, mixture, use_mixture=True, candidate_pairs=1, total_pairs=TOTAL_PAIRS)["used"] == "mixture"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_mixture_with_no_matches_leaves_the_deterministic_lambda(caplog):
    empty = MixtureLambda(0.0, 0.0, 1.0, 3)
    with caplog.at_level(logging.WARNING, logger="matcher.training.calibration"):
        assert lambda_report(1e-4, empty, use_mixture=True, candidate_pairs=10, total_pairs=1e6)["used"] == "deterministic"
    assert caplog.records


# --- end to end on the demo ---------------------------------------------------------------

DEMO = REPO / "configs" / "fake_1000.yaml"
DEMO_TRUE_LAMBDA = 2031 / 499500  # pairs sharing the truth column 'cluster' / all pairs


def demo_config(tmp_path, name: str, **changes):
    """configs/fake_1000.yaml written to ``tmp_path`` with ``changes`` (``training=None`` drops it)."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    data["inputs"][0]["path"] = str(REPO / data["inputs"][0]["path"])
    data["output"] = str(tmp_path / name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def matcher(*args) -> None:
    from matcher.cli import main

    assert main(["--log-level", "WARNING", *map(str, args)]) == 0


@pytest.mark.slow
def test_training_with_automatic_rules_uses_the_mixture_lambda_and_match_uses_the_estimated_threshold(spark, tmp_path):
    config = demo_config(tmp_path, "auto", training=None)
    matcher("train", "--config", config)
    metadata = json.loads((tmp_path / "auto" / "model" / "metadata.json").read_text())
    model = json.loads((tmp_path / "auto" / "model" / "splink_model.json").read_text())
    lam = metadata["lambda"]
    assert lam["used"] == "mixture" and lam["deterministic"] > 0
    assert model["probability_two_random_records_match"] == lam["mixture"]
    assert lam["mixture"] == pytest.approx(DEMO_TRUE_LAMBDA, rel=0.5)
    # the demo's prediction rules are column equalities: their implied levels give a recall
    assert 0 < lam["blocking_recall_estimates"]["rule_levels"] <= 1
    assert lam["blocking_recall"] == max(lam["blocking_recall_estimates"].values())
    estimated = metadata["estimated_threshold"]
    assert 0 < estimated["expected_precision"] <= 1 and 0 < estimated["expected_recall"] <= 1
    matcher("match", "--config", config)
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["threshold"]["source"] == "estimated"
    assert summary["threshold"]["match_weight"] == estimated["match_weight"]
    assert summary["threshold"]["expected_recall"] == estimated["expected_recall"]
    # the same model, asked for today's mapping, cuts at the tradeoff's weight
    weight = demo_config(tmp_path, "auto", training=None, threshold="weight")
    matcher("match", "--config", weight)
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["threshold"]["source"] == "config" and summary["threshold"]["match_weight"] == 0.0


@pytest.mark.slow
def test_hand_written_rules_keep_their_lambda_but_record_the_mixture_and_warn_when_far_apart(spark, tmp_path, caplog):
    from matcher.config.transform import load_config
    from matcher.harmonize.ingest import read_inputs
    from matcher.matching.threshold import resolve_threshold
    from matcher.training.trainer import train

    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    training = {**data["training"], "deterministic_recall": 0.05}  # far too low: lambda many times too high
    config = load_config(demo_config(tmp_path, "hand", training=training))
    with caplog.at_level(logging.WARNING, logger="matcher.training.calibration"):
        model = train(read_inputs(spark, config), config)
    lam = model.metadata["lambda"]
    assert lam["used"] == "deterministic"
    assert model.splink_model["probability_two_random_records_match"] == lam["deterministic"]
    assert lam["mixture"] == pytest.approx(DEMO_TRUE_LAMBDA, rel=0.5)
    assert lam["deterministic"] > LAMBDA_DISAGREEMENT * lam["mixture"]
    assert any("deterministic_recall" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # hand-written rules keep today's threshold unless the config asks for the estimated one
    assert resolve_threshold(config, model).source == "config"
    assert math.isfinite(model.metadata["estimated_threshold"]["match_weight"])
    asked = config.model_copy(update={"threshold": "estimated"})
    assert resolve_threshold(asked, model).source == "estimated"
