"""matcher.training.em: Fellegi-Sunter EM with u fixed, on comparison-vector pattern counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matcher.training.em import expectation_maximisation, log2_bayes_factors, match_probabilities

# Three comparisons; levels as Splink numbers them (higher = closer agreement).
TRUE_M = [{2: 0.80, 1: 0.15, 0: 0.05}, {1: 0.90, 0: 0.10}, {2: 0.60, 1: 0.30, 0: 0.10}]
TRUE_U = [{2: 0.01, 1: 0.09, 0: 0.90}, {1: 0.20, 0: 0.80}, {2: 0.05, 1: 0.15, 0: 0.80}]
TRUE_LAMBDA = 0.2
FLAT_START = [{level: 1 / len(m_k) for level in m_k} for m_k in TRUE_M]


def expected_pattern_counts(m, u, lam, pairs=1_000_000, null_rate=None):
    """Every comparison vector with the count the model predicts among ``pairs`` blocked pairs.

    With ``null_rate`` ({comparison: rate}), that comparison is null (-1) at that rate
    for matches and non-matches alike: a missing value that says nothing.
    """
    null_rate = null_rate or {}
    options = []
    for k, (m_k, u_k) in enumerate(zip(m, u)):
        keep = 1.0 - null_rate.get(k, 0.0)
        levels = [(level, keep * m_k[level], keep * u_k[level]) for level in m_k]
        if k in null_rate:
            levels.append((-1, null_rate[k], null_rate[k]))
        options.append(levels)
    gammas, counts = [], []
    for combo in itertools.product(*options):
        p_match = lam * np.prod([c[1] for c in combo])
        p_non = (1 - lam) * np.prod([c[2] for c in combo])
        gammas.append([c[0] for c in combo])
        counts.append(pairs * (p_match + p_non))
    return np.array(gammas, dtype=int), np.array(counts)


def assert_m_close(estimated, expected, tolerance):
    assert [sorted(m_k) for m_k in estimated] == [sorted(m_k) for m_k in expected]
    for m_k, true_k in zip(estimated, expected):
        for level, value in true_k.items():
            assert m_k[level] == pytest.approx(value, abs=tolerance), (level, m_k, true_k)


def test_em_recovers_m_and_lambda_from_counts_generated_with_them():
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA)
    result = expectation_maximisation(
        gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=500, convergence=1e-9
    )
    assert_m_close(result.m, TRUE_M, tolerance=0.01)
    assert result.probability_two_random_records_match == pytest.approx(TRUE_LAMBDA, abs=0.01)


def test_em_recovers_m_from_integer_counts_of_a_finite_sample():
    gammas, expected = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA, pairs=50_000)
    counts = np.random.default_rng(0).poisson(expected)
    result = expectation_maximisation(gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=500, convergence=1e-9)
    assert_m_close(result.m, TRUE_M, tolerance=0.03)


def test_each_estimated_m_distribution_sums_to_one():
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA)
    result = expectation_maximisation(gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=3)
    for m_k in result.m:
        assert sum(m_k.values()) == pytest.approx(1.0)


def test_levels_never_observed_are_left_out_of_m():
    u = [{**TRUE_U[0], 3: 0.0}, *TRUE_U[1:]]
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA)  # level 3 never occurs
    start = [{**FLAT_START[0], 3: 0.25}, *FLAT_START[1:]]
    result = expectation_maximisation(gammas, counts, start, u, 0.5, max_iterations=500, convergence=1e-9)
    assert 3 not in result.m[0]
    assert sorted(result.m[0]) == [0, 1, 2]
    assert_m_close(result.m, TRUE_M, tolerance=0.01)


def test_a_comparison_that_is_always_null_gets_no_m_estimates():
    gammas, counts = expected_pattern_counts(TRUE_M[:2], TRUE_U[:2], TRUE_LAMBDA)
    gammas = np.column_stack([gammas, np.full(len(gammas), -1)])
    result = expectation_maximisation(
        gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=500, convergence=1e-9
    )
    assert result.m[2] == {}
    assert_m_close(result.m[:2], TRUE_M[:2], tolerance=0.01)


def test_null_levels_carry_no_evidence_so_random_nulls_do_not_bias_m():
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA, null_rate={0: 0.3, 2: 0.5})
    assert (gammas == -1).any()
    result = expectation_maximisation(gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=500, convergence=1e-9)
    assert all(-1 not in m_k for m_k in result.m)
    assert_m_close(result.m, TRUE_M, tolerance=0.01)
    assert result.probability_two_random_records_match == pytest.approx(TRUE_LAMBDA, abs=0.01)


def test_em_stops_once_no_parameter_moves_more_than_the_convergence_threshold():
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA)
    # starting at the truth, the first iteration barely moves anything
    at_truth = expectation_maximisation(gammas, counts, TRUE_M, TRUE_U, TRUE_LAMBDA, max_iterations=100, convergence=1e-6)
    assert at_truth.iterations == 1
    from_flat = expectation_maximisation(gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=100, convergence=1e-6)
    assert 1 < from_flat.iterations < 100


def test_em_runs_no_more_than_max_iterations():
    gammas, counts = expected_pattern_counts(TRUE_M, TRUE_U, TRUE_LAMBDA)
    result = expectation_maximisation(gammas, counts, FLAT_START, TRUE_U, 0.5, max_iterations=2, convergence=1e-12)
    assert result.iterations == 2


def test_log2_bayes_factors_sum_log_ratios_and_ignore_nulls():
    gammas = np.array([[2, 1], [0, -1], [-1, -1]])
    m = [{2: 0.8, 0: 0.2}, {1: 0.5}]
    u = [{2: 0.1, 0: 0.4}, {1: 0.125}]
    expected = np.array([np.log2(8) + np.log2(4), np.log2(0.5), 0.0])
    np.testing.assert_allclose(log2_bayes_factors(gammas, m, u), expected)


def test_match_probability_combines_prior_odds_and_bayes_factor():
    gammas = np.array([[1], [0]])
    m, u = [{1: 0.9, 0: 0.1}], [{1: 0.1, 0: 0.9}]
    # prior odds 1:3, Bayes factors 9 and 1/9
    np.testing.assert_allclose(match_probabilities(gammas, m, u, 0.25), [9 / 12, (1 / 27) / (1 + 1 / 27)])
