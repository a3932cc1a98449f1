"""Fellegi-Sunter expectation maximisation on comparison-vector pattern counts.

EM needs only how often each distinct comparison vector (one level per comparison)
occurs among the blocked pairs, so the counting runs as one Spark aggregation and the
iterations run here, in numpy, on a table of a few hundred rows. This mirrors Splink's
own EM without term-frequency adjustments: the null level (-1) carries no evidence, u
stays fixed, and m and lambda are re-estimated until no parameter moves by more than
``convergence``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EMResult:
    """Estimated m per (comparison, level), lambda within the blocked pairs, iterations run."""

    m: list[dict[int, float]]
    probability_two_random_records_match: float
    iterations: int
    converged: bool = True


def log2_bayes_factors(gammas: np.ndarray, m: list[dict[int, float]], u: list[dict[int, float]]) -> np.ndarray:
    """Sum over comparisons of log2(m/u) for each pattern row; null levels contribute 0."""
    total = np.zeros(gammas.shape[0])
    for k, (m_k, u_k) in enumerate(zip(m, u)):
        column = gammas[:, k]
        for level, m_value in m_k.items():
            with np.errstate(divide="ignore"):
                total[column == level] += np.log2(m_value) - np.log2(u_k[level])
    return total


def match_probabilities(gammas: np.ndarray, m, u, lam: float, offset: np.ndarray | None = None) -> np.ndarray:
    """Posterior match probability of each pattern under the current parameters (``offset``: fixed bits per pattern)."""
    with np.errstate(divide="ignore"):
        log_odds = np.log2(lam) - np.log2(1.0 - lam) + log2_bayes_factors(gammas, m, u)
    if offset is not None:
        log_odds = log_odds + offset
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
    prior: list[dict[int, float]] | None = None,
    prior_pairs: float = 0.0,
    fixed_lambda: bool = False,
    offset: np.ndarray | None = None,
    free_u: bool | Sequence[bool] = False,
) -> EMResult:
    """Run EM with u fixed.

    Args:
        gammas: ``(patterns, comparisons)`` comparison-vector values, -1 for null.
        counts: how many blocked pairs show each pattern.
        m_start, u: per comparison, ``{level: probability}`` for the non-null levels.
        lam_start: starting probability that a blocked pair is a match.

    Levels that never occur in ``gammas`` keep no estimate (they are left out of the
    returned ``m``), as Splink does. With ``prior`` (per comparison, ``{level: m}``) each
    M-step adds ``prior_pairs`` pseudo-matches spread as the prior says (a Dirichlet
    prior: the estimate shrinks towards ``prior``, the more the fewer matches there are).
    ``fixed_lambda`` keeps lambda at ``lam_start`` (only m moves). ``offset`` adds fixed
    evidence (bits) to each pattern: the comparisons whose m and u are not trained.
    ``free_u`` re-estimates u too (of every comparison, or of those flagged ``True``), from the
    pairs EM takes for non-matches: a latent two-class model whose non-matches need not look
    like random pairs.
    """
    free = [free_u] * len(u) if isinstance(free_u, bool) else list(free_u)
    counts = counts.astype(float)
    converged = True
    u = [dict(u_k) for u_k in u]
    m = [dict(m_k) for m_k in m_start]
    lam = lam_start
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        p = match_probabilities(gammas, m, u, lam, offset)
        weighted = counts * p
        new_m = []
        for k, m_k in enumerate(m):
            column = gammas[:, k]
            level_counts = {level: weighted[column == level].sum() for level in m_k if (column == level).any()}
            if prior is not None and prior_pairs > 0 and level_counts:
                seen = sum(prior[k].get(level, 0.0) for level in level_counts) or 1.0
                level_counts = {
                    level: c + prior_pairs * prior[k].get(level, 0.0) / seen for level, c in level_counts.items()
                }
            total = sum(level_counts.values())
            new_m.append({level: float(c / total) if total > 0 else m_k[level] for level, c in level_counts.items()})
        if any(free):
            u = [_level_shares(gammas[:, k], counts * (1.0 - p), u_k) if free[k] else u_k for k, u_k in enumerate(u)]
        new_lam = lam if fixed_lambda else float(weighted.sum() / counts.sum())
        change = max(
            [abs(new_lam - lam)]
            + [abs(new_m[k][level] - m[k][level]) for k in range(len(m)) for level in new_m[k]]
        )
        # keep unobserved levels at their start value so the next E-step can use them
        m = [{**m[k], **new_m[k]} for k in range(len(m))]
        lam = min(max(new_lam, 1e-12), 1 - 1e-12)
        if change < convergence:
            break
    else:
        converged = False
    observed = [{level: m[k][level] for level in m[k] if (gammas[:, k] == level).any()} for k in range(len(m))]
    return EMResult(observed, lam, iteration, converged)


def _level_shares(column: np.ndarray, weights: np.ndarray, levels: dict[int, float]) -> dict[int, float]:
    """Each level's share of ``weights`` (half a pair of prior each), for the levels of ``levels``."""
    found = {level: float(weights[column == level].sum()) + 0.5 for level in levels}
    total = sum(found.values())
    return {level: c / total for level, c in found.items()}


def log_likelihood(gammas: np.ndarray, counts: np.ndarray, m, u, lam: float, offset: np.ndarray | None = None) -> float:
    """Log-likelihood of the pattern counts under the two-class model (nulls carry no evidence;
    ``offset`` bits count on the match side)."""
    log_m = np.zeros(gammas.shape[0])
    log_u = np.zeros(gammas.shape[0])
    for k, (m_k, u_k) in enumerate(zip(m, u)):
        column = gammas[:, k]
        for level, u_value in u_k.items():
            at = column == level
            if at.any():
                log_m[at] += np.log(max(m_k.get(level, 0.0), 1e-300))
                log_u[at] += np.log(max(u_value, 1e-300))
    if offset is not None:
        log_m = log_m + offset * np.log(2.0)
    mixed = np.logaddexp(np.log(lam) + log_m, np.log1p(-lam) + log_u)
    return float((counts * mixed).sum())


# --- safeguards: implausible estimates detected, recovered from, and reported ---------------

IDENTIFYING_U = 0.1
"""Exact agreement rarer than this among random pairs makes a comparison identifying: matches
must agree on it more often than random pairs do, and less similar levels must not weigh more.
A comparison of a few values (the record's source system, where one source rarely lists a person
twice) can rightly count against a match, so the order checks leave it alone."""
STRONG_U = 0.01
"""A comparison whose exact level two random records reach less often than this is a strong identifier."""
ELSE_NEAR_ONE = 0.9
"""m of a strong identifier's 'else' level at or above this says matches rarely agree on it: implausible."""
ORDER_TOLERANCE_BITS = 1.0
"""How far (log2 m/u) a less similar level may rise above a more similar one before it counts as out of order."""
ORDER_MIN_MATCHES = 5.0
"""Expected matches a level needs before its place in the order is judged (rarer levels are noise)."""
LAMBDA_RANGE = (1e-4, 0.999)
"""Plausible share of matches among a session's blocked pairs."""
MORE_ITERATIONS = 4
"""A session that does not converge runs on up to this many times ``max_iterations``."""
SERIOUS = frozenset({"exact_below_u", "else_near_one", "lambda_too_low"})
"""Problems that make a result implausible (the others are reported, not disqualifying: a rule whose
pairs are nearly all matches gives lambda near 1 and still sound m)."""


@dataclass(frozen=True)
class Finding:
    """One implausible aspect of an EM result: the comparison (None: the whole session) and the problem."""

    comparison: str | None
    problem: str
    detail: str

    def as_json(self) -> dict:
        return {"comparison": self.comparison, "problem": self.problem, "detail": self.detail}


@dataclass(frozen=True)
class CheckedEM:
    """An EM result after the checks: what was found first, how it was recovered, what is still wrong."""

    result: EMResult
    findings: list[Finding]
    recovery: str | None
    remaining: list[Finding]
    dropped: list[str]
    start: str

    def as_json(self) -> dict:
        return {
            "findings": [f.as_json() for f in self.findings],
            "recovery": self.recovery,
            "remaining": [f.as_json() for f in self.remaining],
            "not_estimated": self.dropped,
            "start": self.start,
        }


def weight_bits(m: float, u: float) -> float:
    """A level's match weight, log2(m / u), finite for zero m or u."""
    return float(np.log2(max(m, 1e-300)) - np.log2(max(u, 1e-300)))


def check_estimates(
    result: EMResult, u: list[dict[int, float]], names: list[str], pairs: float, *, max_iterations: int | None = None
) -> list[Finding]:
    """The implausible parts of ``result`` (levels numbered as Splink does: higher = more similar, 0 = else)."""
    findings = []
    lam = result.probability_two_random_records_match
    if lam < LAMBDA_RANGE[0]:
        findings.append(Finding(None, "lambda_too_low", f"share of matches among the blocked pairs {lam:.2g} "
                                f"below {LAMBDA_RANGE[0]}: EM found almost no match class"))
    elif lam > LAMBDA_RANGE[1]:
        findings.append(Finding(None, "lambda_too_high", f"share of matches among the blocked pairs {lam:.4g} "
                                f"above {LAMBDA_RANGE[1]}: m is the rule's pairs as they are"))
    if not result.converged:
        findings.append(Finding(None, "not_converged", f"no convergence within {max_iterations or result.iterations} iterations"))
    for name, m_k, u_k in zip(names, result.m, u):
        if not m_k:
            continue
        order = sorted(m_k, reverse=True)
        top = order[0]
        if u_k[top] > IDENTIFYING_U:
            continue
        if m_k[top] < u_k[top]:
            findings.append(Finding(name, "exact_below_u", f"m of the closest level {m_k[top]:.3g} below its u {u_k[top]:.3g}"))
        if 0 in m_k and u_k[top] <= STRONG_U and m_k[0] >= ELSE_NEAR_ONE:
            findings.append(Finding(name, "else_near_one", f"m of the 'else' level {m_k[0]:.3g} for a strong identifier"))
        judged = [lv for lv in order if m_k[lv] * lam * pairs >= ORDER_MIN_MATCHES]
        for i, level in enumerate(judged[1:], start=1):
            closer = min(weight_bits(m_k[c], u_k[c]) for c in judged[:i])
            if weight_bits(m_k[level], u_k[level]) > closer + ORDER_TOLERANCE_BITS:
                findings.append(Finding(name, "levels_out_of_order", f"level {level} weighs more than a more similar level"))
                break
    return findings


def sensible_m(u_k: dict[int, float]) -> dict[int, float]:
    """A default m for one comparison: 0.9 at the closest level, the rest spread over the others."""
    levels = sorted(u_k, reverse=True)
    if len(levels) == 1:
        return {levels[0]: 1.0}
    return {level: (0.9 if i == 0 else 0.1 / (len(levels) - 1)) for i, level in enumerate(levels)}


def agreement_start(gammas: np.ndarray, counts: np.ndarray, u: list[dict[int, float]]) -> tuple[list[dict[int, float]], float]:
    """m and lambda from the pairs that agree on most evidence.

    A pair is match-like when the comparisons at their closest level carry at least half of
    the evidence (``log2 1/u`` of the closest level) of its non-null comparisons; m is the
    level distribution among those pairs (with half a pair per level), lambda their share.
    """
    available = np.zeros(gammas.shape[0])
    agreed = np.zeros(gammas.shape[0])
    for k, u_k in enumerate(u):
        if not u_k:
            continue
        top = max(u_k)
        bits = -np.log2(max(u_k[top], 1e-12))
        column = gammas[:, k]
        available += np.where(column >= 0, bits, 0.0)
        agreed += np.where(column == top, bits, 0.0)
    like = (available > 0) & (agreed >= available / 2)
    weights = counts.astype(float) * like
    m = [_level_shares(gammas[:, k], weights, u_k) for k, u_k in enumerate(u)]
    share = float(weights.sum() / max(counts.sum(), 1.0))
    return m, float(min(max(share, 0.01), 0.99))


def checked_expectation_maximisation(
    gammas: np.ndarray,
    counts: np.ndarray,
    m_start: list[dict[int, float]],
    u: list[dict[int, float]],
    lam_start: float,
    names: list[str],
    *,
    max_iterations: int = 25,
    convergence: float = 1e-4,
    offset: np.ndarray | None = None,
) -> CheckedEM:
    """EM with safeguards: check the result (:func:`check_estimates`) and recover when it is implausible.

    Recovery, in order: run on when it did not converge; several starts (the given one,
    the pairs that agree on most evidence, sensible defaults), keeping the best likelihood
    among plausible results (no :data:`SERIOUS` finding); else, for the comparisons with a
    serious finding (all of them when lambda is too low), m as it is among the pairs
    that agree on most evidence (:func:`agreement_start`), or no estimate from this session
    when even that is implausible (other sessions or the defaults decide).
    """
    pairs = float(counts.sum())

    def run(m0, lam0, iterations=max_iterations, **kw) -> tuple[EMResult, list[Finding]]:
        r = expectation_maximisation(gammas, counts, m0, u, lam0, max_iterations=iterations, convergence=convergence,
                                     offset=offset, **kw)
        return r, check_estimates(r, u, names, pairs, max_iterations=iterations)

    def serious(found: list[Finding]) -> bool:
        return any(f.problem in SERIOUS for f in found)

    first, findings = run(m_start, lam_start)
    if not findings:
        return CheckedEM(first, [], None, [], [], "given")
    recovery = []
    if not first.converged:
        longer, longer_found = run(m_start, lam_start, max_iterations * MORE_ITERATIONS)
        recovery.append(f"ran up to {max_iterations * MORE_ITERATIONS} iterations")
        first, remaining = longer, longer_found
    else:
        remaining = findings
    if not serious(remaining):
        return CheckedEM(first, findings, "; ".join(recovery) or "kept (no serious problem)", remaining, [], "given")

    agree_m, agree_lam = agreement_start(gammas, counts, u)
    defaults = [sensible_m(u_k) for u_k in u]
    tried = [("given", first, remaining)]
    for start, (m0, lam0, fixed) in {
        "agreeing pairs": (agree_m, agree_lam, False),
        "agreeing pairs, their match share held": (agree_m, agree_lam, True),
        "defaults": (defaults, 0.5, False),
    }.items():
        r, found = run(m0, lam0, max_iterations * MORE_ITERATIONS, fixed_lambda=fixed)
        tried.append((start, r, found))
    plausible = [t for t in tried if not serious(t[2])]
    if plausible:
        start, best, found = max(plausible, key=lambda t: log_likelihood(gammas, counts, t[1].m, u, t[1].probability_two_random_records_match, offset))
        recovery.append(f"restarted from {len(tried)} starting points; best likelihood among plausible results: start from {start}")
        return CheckedEM(best, findings, "; ".join(recovery), found, [], start)

    start, best, found = max(tried, key=lambda t: log_likelihood(gammas, counts, t[1].m, u, t[1].probability_two_random_records_match, offset))
    if any(f.problem == "lambda_too_low" for f in found):
        replaced = [n for n, m_k in zip(names, best.m) if m_k]
    else:
        replaced = sorted({f.comparison for f in found if f.problem in SERIOUS and f.comparison})
    dropped = []
    kept = []
    for n, m_k, a_k in zip(names, best.m, agree_m):
        if n in replaced:
            observed = {level: a_k[level] for level in m_k}
            total = sum(observed.values())
            fallback = {level: v / total for level, v in observed.items()} if total > 0 else {}
            if fallback and fallback[max(fallback)] > u[names.index(n)][max(fallback)]:
                kept.append(fallback)
                continue
            dropped.append(n)
            kept.append({})
        else:
            kept.append(m_k)
    recovery.append(
        f"no start gave a plausible result; m of {', '.join(sorted(set(replaced) - set(dropped))) or 'none'} taken from "
        f"the pairs agreeing on most evidence{'; not estimated: ' + ', '.join(dropped) if dropped else ''}"
    )
    found = check_estimates(EMResult(kept, best.probability_two_random_records_match, best.iterations, best.converged),
                            u, names, pairs, max_iterations=max_iterations * MORE_ITERATIONS)
    return CheckedEM(EMResult(kept, best.probability_two_random_records_match, best.iterations, best.converged),
                     findings, "; ".join(recovery), found, dropped, start)


def log_findings(session: str, checked: CheckedEM) -> None:
    """Warn about each finding, naming the comparison, and about the recovery (names and numbers only)."""
    for finding in checked.findings:
        log.warning("EM %s: %s: %s (%s)", session, finding.comparison or "whole session", finding.problem, finding.detail)
    if checked.findings:
        log.warning("EM %s: recovery: %s", session, checked.recovery)
