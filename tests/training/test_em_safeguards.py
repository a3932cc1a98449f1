"""matcher.training.em safeguards: implausible EM estimates are detected, recovered from and reported."""

from __future__ import annotations

import itertools
import logging

import numpy as np

from matcher.training.em import (
    SERIOUS, EMResult, check_estimates, checked_expectation_maximisation, expectation_maximisation, log_findings,
)

NAMES = ["surname", "first_name", "dob", "street", "house_number"]
# pairs blocked on a place: a few true matches, many neighbours (same street, different people), the rest
CLASSES = [
    (0.03, [0.95, 0.90, 0.90, 0.90, 0.90]),
    (0.40, [0.002, 0.01, 0.0005, 0.95, 0.30]),
    (0.57, [0.01, 0.02, 0.001, 0.02, 0.10]),
]
U = [{1: 0.01, 0: 0.99}, {1: 0.02, 0: 0.98}, {1: 0.001, 0: 0.999}, {1: 0.001, 0: 0.999}, {1: 0.1, 0: 0.9}]
FLAT = [{1: 0.5, 0: 0.5} for _ in NAMES]


def same_place_table(pairs: float = 1_000_000):
    gammas, counts = [], []
    for combo in itertools.product([1, 0], repeat=len(NAMES)):
        p = sum(share * np.prod([a if g else 1 - a for g, a in zip(combo, agree)]) for share, agree in CLASSES)
        gammas.append(combo)
        counts.append(pairs * p)
    return np.array(gammas, dtype=int), np.array(counts)


def test_naive_em_learns_the_same_place_class_and_the_checks_see_it():
    gammas, counts = same_place_table()
    naive = expectation_maximisation(gammas, counts, FLAT, U, 0.5, max_iterations=200)
    assert naive.m[3][1] > 0.9 and naive.probability_two_random_records_match > 0.3  # "same street" is the class
    assert naive.m[0][0] > 0.9  # a different surname costs (almost) nothing
    problems = {(f.comparison, f.problem) for f in check_estimates(naive, U, NAMES, counts.sum())}
    assert ("surname", "else_near_one") in problems
    assert ("dob", "else_near_one") in problems


def test_checked_em_recovers_a_surname_that_counts_for_a_match():
    gammas, counts = same_place_table()
    checked = checked_expectation_maximisation(gammas, counts, FLAT, U, 0.5, NAMES, max_iterations=200)
    surname = checked.result.m[0]
    assert surname[1] > U[0][1]  # m(exact surname) above u(exact surname) afterwards
    assert surname[0] < 0.5
    assert {f.comparison for f in checked.findings} >= {"surname", "dob"}
    assert checked.recovery and not [f for f in checked.remaining if f.problem == "else_near_one"]
    record = checked.as_json()
    assert record["findings"][0]["comparison"] in NAMES and record["recovery"]


def test_a_plausible_result_passes_unchanged():
    m = [{1: 0.9, 0: 0.1}, {1: 0.85, 0: 0.15}]
    u = [{1: 0.01, 0: 0.99}, {1: 0.05, 0: 0.95}]
    gammas = np.array(list(itertools.product([1, 0], repeat=2)))
    counts = np.array([
        100_000 * (0.2 * np.prod([m[k][g] for k, g in enumerate(row)]) + 0.8 * np.prod([u[k][g] for k, g in enumerate(row)]))
        for row in gammas
    ])
    checked = checked_expectation_maximisation(gammas, counts, m, u, 0.2, ["a", "b"], max_iterations=100, convergence=1e-8)
    assert checked.findings == [] and checked.recovery is None
    assert checked.as_json()["findings"] == []


def test_exact_below_u_levels_out_of_order_lambda_and_convergence_are_named():
    u = [{2: 0.01, 1: 0.01, 0: 0.98}, {1: 0.05, 0: 0.95}]
    m = [{2: 0.1, 1: 0.8, 0: 0.1}, {1: 0.01, 0: 0.99}]  # level 1 outweighs exact; b's exact below its u
    result = EMResult(m, 0.99995, 25, converged=False)
    found = check_estimates(result, u, ["a", "b"], 1_000_000, max_iterations=25)
    problems = {(f.comparison, f.problem) for f in found}
    assert ("a", "levels_out_of_order") in problems
    assert ("b", "exact_below_u") in problems
    assert (None, "lambda_too_high") in problems
    assert (None, "not_converged") in problems
    low = check_estimates(EMResult(m, 1e-6, 3), u, ["a", "b"], 1_000_000)
    assert (None, "lambda_too_low") in {(f.comparison, f.problem) for f in low}


def test_a_session_whose_pairs_are_nearly_all_matches_keeps_its_estimates():
    m, u = [{1: 0.9, 0: 0.1}, {1: 0.8, 0: 0.2}], [{1: 0.01, 0: 0.99}, {1: 0.05, 0: 0.95}]
    gammas = np.array(list(itertools.product([1, 0], repeat=2)))
    counts = np.array([1000 * np.prod([m[k][g] for k, g in enumerate(row)]) for row in gammas])  # matches only
    checked = checked_expectation_maximisation(gammas, counts, m, u, 0.5, ["a", "b"], max_iterations=200)
    assert checked.result.probability_two_random_records_match > 0.9
    assert not {f.problem for f in checked.findings} & SERIOUS
    assert checked.dropped == [] and checked.result.m[0][1] > 0.85


def test_warnings_name_the_comparison_and_the_recovery(caplog):
    gammas, counts = same_place_table()
    checked = checked_expectation_maximisation(gammas, counts, FLAT, U, 0.5, NAMES, max_iterations=200)
    with caplog.at_level(logging.WARNING, logger="matcher.training.em"):
        log_findings("blocked on postcode", checked)
    text = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("surname" in t and "else_near_one" in t for t in text)
    assert any("recovery" in t for t in text)


def test_a_comparison_of_a_few_values_may_count_against_a_match():
    # records from the same source system rarely are the same person: m(same) below u is right there
    u = [{1: 0.01, 0: 0.99}, {1: 0.365, 0: 0.635}]
    m = [{1: 0.9, 0: 0.1}, {1: 0.02, 0: 0.98}]
    assert check_estimates(EMResult(m, 0.3, 5), u, ["surname", "source_system"], 100_000) == []
