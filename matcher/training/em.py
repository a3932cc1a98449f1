"""Fellegi-Sunter expectation maximisation on comparison-vector pattern counts.

EM needs only how often each distinct comparison vector (one level per comparison)
occurs among the blocked pairs, so the counting runs as one Spark aggregation and the
iterations run here, in numpy, on a table of a few hundred rows. This mirrors Splink's
own EM without term-frequency adjustments: the null level (-1) carries no evidence, u
stays fixed, and m and lambda are re-estimated until no parameter moves by more than
``convergence``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EMResult:
    """Estimated m per (comparison, level), lambda within the blocked pairs, iterations run."""

    m: list[dict[int, float]]
    probability_two_random_records_match: float
    iterations: int


def log2_bayes_factors(gammas: np.ndarray, m: list[dict[int, float]], u: list[dict[int, float]]) -> np.ndarray:
    """Sum over comparisons of log2(m/u) for each pattern row; null levels contribute 0."""
    total = np.zeros(gammas.shape[0])
    for k, (m_k, u_k) in enumerate(zip(m, u)):
        column = gammas[:, k]
        for level, m_value in m_k.items():
            with np.errstate(divide="ignore"):
                total[column == level] += np.log2(m_value) - np.log2(u_k[level])
    return total


def match_probabilities(gammas: np.ndarray, m, u, lam: float) -> np.ndarray:
    """Posterior match probability of each pattern under the current parameters."""
    with np.errstate(divide="ignore"):
        log_odds = np.log2(lam) - np.log2(1.0 - lam) + log2_bayes_factors(gammas, m, u)
    return 1.0 / (1.0 + np.exp2(-np.clip(log_odds, -1000, 1000)))


def expectation_maximisation(
    gammas: np.ndarray,
    counts: np.ndarray,
    m_start: list[dict[int, float]],
    u: list[dict[int, float]],
    lam_start: float,
    *,
    max_iterations: int = 25,
    convergence: float = 1e-4,
) -> EMResult:
    """Run EM with u fixed.

    Args:
        gammas: ``(patterns, comparisons)`` comparison-vector values, -1 for null.
        counts: how many blocked pairs show each pattern.
        m_start, u: per comparison, ``{level: probability}`` for the non-null levels.
        lam_start: starting probability that a blocked pair is a match.

    Levels that never occur in ``gammas`` keep no estimate (they are left out of the
    returned ``m``), as Splink does.
    """
    counts = counts.astype(float)
    m = [dict(m_k) for m_k in m_start]
    lam = lam_start
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        p = match_probabilities(gammas, m, u, lam)
        weighted = counts * p
        new_m = []
        for k, m_k in enumerate(m):
            column = gammas[:, k]
            level_counts = {level: weighted[column == level].sum() for level in m_k if (column == level).any()}
            total = sum(level_counts.values())
            new_m.append({level: float(c / total) if total > 0 else m_k[level] for level, c in level_counts.items()})
        new_lam = float(weighted.sum() / counts.sum())
        change = max(
            [abs(new_lam - lam)]
            + [abs(new_m[k][level] - m[k][level]) for k in range(len(m)) for level in new_m[k]]
        )
        # keep unobserved levels at their start value so the next E-step can use them
        m = [{**m[k], **new_m[k]} for k in range(len(m))]
        lam = min(max(new_lam, 1e-12), 1 - 1e-12)
        if change < convergence:
            break
    observed = [{level: m[k][level] for level in m[k] if (gammas[:, k] == level).any()} for k in range(len(m))]
    return EMResult(observed, lam, iteration)
