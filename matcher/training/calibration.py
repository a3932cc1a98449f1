"""Calibration without labels: lambda from the candidate pairs' mixture, a threshold from the
model's own expected precision and recall.

**Lambda from the mixture.** Splink estimates lambda (the probability that two random
records match) from deterministic rules and an *assumed* recall
(``training.deterministic_recall``); a wrong guess scales every match probability. Once m
and u are trained, the candidate pairs (those the prediction rules find) say how many
matches they hold: with m and u fixed, EM over lambda alone alternates

* E: the expected matches among the candidates, ``M = Σ n·p(λ)`` over the candidates'
  comparison-vector patterns (``n`` pairs each; ``p`` the Splink match probability at λ);
* M: ``λ = M / blocking recall / all possible pairs``.

Blocking recall (the share of all matches the prediction rules capture) comes from the
model itself, as the larger of two estimates that each tend to fall short:

* the m-probability mass of the patterns the candidates show, ``Σ_patterns Π_k m_k(γ_k)``,
  where a null value has the same probability among matches as among random pairs
  (measured on the u sample). It misses the rare patterns no candidate happens to show
  (and overstates when a pattern is shared by blocked and unblocked pairs);
* the probability under m that a match satisfies some prediction rule, from the exact
  levels each rule implies (:func:`rule_recall`); rules that do not map onto comparison
  levels are left out.

Probabilities here come from patterns: term-frequency adjustments are left out.

**Threshold from the expected precision/recall curve.** With the trained model, a pattern
with probability ``p`` and ``n`` candidate pairs is expected to hold ``p·n`` matches and
``(1 − p)·n`` non-matches. Cutting at ``t`` gives expected ``TP(t) = Σ_{p≥t} p·n``,
``FP(t) = Σ_{p≥t} (1 − p)·n`` and ``FN(t) = Σ_{p<t} p·n`` plus the matches blocking misses;
the threshold maximises F-beta with the beta ``precision_recall_tradeoff`` asks for
(:func:`matcher.training.supervision.f_beta_beta`), midway (in match weight) between the
two patterns it separates. It is computed at training and stored in the model's metadata
(``estimated_threshold``), so that every task uses the same value.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from matcher.model.splink_adapter import (
    Settings, columns_used_by_sql, comparison_input_columns, is_fixed, lambda_of, levels_implied_by_rule,
    non_null_levels, prediction_rules,
)
from matcher.training.em import log2_bayes_factors
from matcher.training.patterns import SKIPPED, gammas
from matcher.training.supervision import f_beta, f_beta_beta

log = logging.getLogger(__name__)

LAMBDA_DISAGREEMENT = 4.0
"""Factor between the deterministic and the mixture lambda beyond which training warns."""
MAX_ITERATIONS = 10_000
TOLERANCE = 1e-9  # relative change of lambda that ends the iterations
_MIN_PROBABILITY = 1e-300


# --- the model's parameters per pattern ---------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """Per comparison, m and u of each non-null level, and the share of null values (-1)."""

    m: list[dict[int, float]]
    u: list[dict[int, float]]
    null_share: list[float]
    fixed: tuple[bool, ...] = ()  # per comparison, whether m and u are held (a dependence correction)

    @classmethod
    def of(cls, settings: Settings, u_sample: pd.DataFrame | None = None) -> "Parameters":
        """The trained m and u in ``settings``; null shares from the u sample's pattern counts (0 without)."""
        m, u = [], []
        for cc in settings.comparisons:
            m_k, u_k = {}, {}
            for level in non_null_levels(cc):
                mp, up = level.m_probability, level.u_probability
                if isinstance(up, (int, float)):  # an untrained m carries no evidence (m = u)
                    value = level.comparison_vector_value
                    u_k[value] = max(float(up), _MIN_PROBABILITY)
                    m_k[value] = max(float(mp), _MIN_PROBABILITY) if isinstance(mp, (int, float)) else u_k[value]
            m.append(m_k)
            u.append(u_k)
        nulls = [0.0] * len(m)
        if u_sample is not None and len(u_sample):
            vectors, counts = gammas(settings, u_sample), u_sample["pattern_count"].to_numpy(float)
            for k in range(len(m)):
                evaluated = counts[vectors[:, k] != SKIPPED].sum()
                nulls[k] = float(counts[vectors[:, k] == -1].sum() / evaluated) if evaluated > 0 else 0.0
        return cls(m, u, nulls, tuple(is_fixed(cc) for cc in settings.comparisons))

    def log2_bayes_factors(self, vectors: np.ndarray) -> np.ndarray:
        """log2(m/u) of each pattern row (nulls and untrained levels carry no evidence)."""
        return np.clip(log2_bayes_factors(vectors, self.m, self.u), -1000.0, 1000.0)

    def m_mass(self, vectors: np.ndarray) -> float:
        """Σ over the distinct pattern rows of their probability among matches (at most 1)."""
        mass = np.ones(vectors.shape[0])
        for k, m_k in enumerate(self.m):
            if self.fixed and self.fixed[k]:  # a correction's factors are no probabilities
                continue
            column = vectors[:, k]
            factor = np.full(vectors.shape[0], self.null_share[k])
            for level, value in m_k.items():
                factor[column == level] = value * (1.0 - self.null_share[k])
            mass *= factor
        distinct = np.unique(vectors, axis=0, return_index=True)[1] if len(vectors) else []
        return float(min(1.0, mass[distinct].sum()))


MAX_RULE_OUTCOMES = 1 << 20  # joint outcomes of the rules' comparisons enumerated at most


def rule_recall(settings: Settings, params: Parameters) -> float | None:
    """The share of matches the prediction rules find, from the exact levels each rule implies.

    Under the model's independence of comparisons, a rule of exact agreements finds a match
    with probability ``Π (1 − null share) · m(exact level)``; the union over the rules is
    enumerated over the comparisons they touch. A rule that does not map onto comparison
    levels (a column no comparison reads, a derived value) is left out, so the result is a
    lower bound then. None when no rule maps.
    """
    index = {id(level): (k, level.comparison_vector_value)
             for k, cc in enumerate(settings.comparisons) for level in non_null_levels(cc)}
    conditions: list[dict[int, int]] = []
    for rule in prediction_rules(settings):
        levels = levels_implied_by_rule(settings, rule)
        found = {index[id(level)] for level in levels if id(level) in index}
        if not found:
            continue
        read = set().union(*(comparison_input_columns(settings.comparisons[k]) for k, _ in found))
        if not set(columns_used_by_sql(rule.blocking_rule_sql, rule.sqlglot_dialect)) <= read:
            continue
        conditions.append(dict(found))
    if not conditions:
        return None
    involved = sorted({k for c in conditions for k in c})
    outcomes = [sorted({c[k] for c in conditions if k in c}) for k in involved]
    if math.prod(len(o) + 1 for o in outcomes) > MAX_RULE_OUTCOMES:
        return None
    total = 0.0
    for combo in itertools.product(*[[*o, None] for o in outcomes]):  # None: any other level, or null
        chosen = dict(zip(involved, combo))
        if not any(all(chosen[k] == level for k, level in c.items()) for c in conditions):
            continue
        probability = 1.0
        for k, level in chosen.items():
            at = {lv: (1.0 - params.null_share[k]) * params.m[k].get(lv, 0.0) for lv in outcomes[involved.index(k)]}
            probability *= at[level] if level is not None else max(0.0, 1.0 - sum(at.values()))
        total += probability
    return float(min(1.0, total))


def probabilities(log2_bf: np.ndarray, lam: float) -> np.ndarray:
    """Match probability of each pattern with prior ``lam`` (a logistic in base 2)."""
    log_odds = math.log2(lam) - math.log2(1.0 - lam) + log2_bf
    return 1.0 / (1.0 + np.exp2(-np.clip(log_odds, -1000.0, 1000.0)))


# --- lambda --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixtureLambda:
    """Lambda over all pairs, the expected matches among the candidates, the recall it assumed, iterations."""

    lam: float
    candidate_matches: float
    blocking_recall: float
    iterations: int


def mixture_lambda(
    log2_bf: np.ndarray, counts: np.ndarray, total_pairs: float, blocking_recall: float = 1.0, start: float = 1e-4,
) -> MixtureLambda:
    """EM over lambda alone (m, u fixed) on the candidates' patterns (``log2_bf`` and ``counts`` per pattern).

    Each step sets ``λ = Σ n·p(λ) / blocking_recall / total_pairs``. λ = 0 is always a
    fixed point; the start sits above it, and any start above it reaches the same answer.
    """
    counts = np.asarray(counts, dtype=float)
    scale = blocking_recall * total_pairs
    if scale <= 0 or counts.sum() == 0:
        return MixtureLambda(0.0, 0.0, blocking_recall, 0)
    lam = min(max(start, 1e-12), 0.5)
    iteration = 0
    for iteration in range(1, MAX_ITERATIONS + 1):
        new = float(min((counts * probabilities(log2_bf, lam)).sum() / scale, 1 - 1e-12))
        if new <= 1e-300:
            lam = 0.0
            break
        done = abs(new - lam) <= TOLERANCE * new
        lam = new
        if done:
            break
    matches = float((counts * probabilities(log2_bf, lam)).sum()) if lam > 0 else 0.0
    return MixtureLambda(lam, matches, blocking_recall, iteration)


def lambda_report(
    deterministic: float, mixture: MixtureLambda, *, use_mixture: bool, candidate_pairs: int, total_pairs: float,
    observed: int | None = None, recall_estimated: bool = True,
) -> dict[str, Any]:
    """The ``metadata['lambda']`` record; logs the choice and warns when the two estimates disagree."""
    used = "mixture" if use_mixture and mixture.lam > 0 else "deterministic"
    report: dict[str, Any] = {
        "deterministic": deterministic,
        "mixture": mixture.lam,
        "used": used,
        "candidate_pairs": int(candidate_pairs),
        "expected_candidate_matches": round(mixture.candidate_matches, 3),
        "blocking_recall": round(mixture.blocking_recall, 6),
        "blocking_recall_source": "model" if recall_estimated else "assumed 1",
        "total_pairs": float(total_pairs),
        "iterations": mixture.iterations,
    }
    low, high = sorted((deterministic, mixture.lam))
    ratio = high / low if low > 0 else math.inf
    report["ratio"] = None if math.isinf(ratio) else round(ratio, 4)
    if use_mixture and mixture.lam <= 0:
        log.warning(
            "the candidate pairs hold no expected matches: lambda stays the deterministic rules' estimate %.3g", deterministic
        )
    elif not use_mixture and ratio > LAMBDA_DISAGREEMENT:
        hint = ""
        if observed and mixture.lam > 0:
            implied = observed / (mixture.lam * total_pairs)
            hint = f" (the mixture implies the deterministic rules find {implied:.0%} of the matches)" if implied <= 1 else ""
        log.warning(
            "lambda from training.deterministic_rules (%.3g) and from the candidate pairs' mixture (%.3g) differ "
            "%.1f-fold%s: probabilities may be off by as much; check training.deterministic_recall, or leave "
            "training.deterministic_rules out to use the mixture estimate",
            deterministic, mixture.lam, ratio, hint,
        )
    log.info(
        "lambda: %.4g from the deterministic rules, %.4g from the candidates' mixture (blocking recall %.3f, %s); using %s",
        deterministic, mixture.lam, mixture.blocking_recall, report["blocking_recall_source"], used,
    )
    return report


def calibrate_lambda(
    settings: Settings, candidates: pd.DataFrame, u_sample: pd.DataFrame | None, total_pairs: float,
    *, use_mixture: bool, observed: int | None = None,
) -> dict[str, Any]:
    """Estimate lambda from the candidates' pattern counts under the trained m and u (``settings``'
    lambda is the deterministic estimate); returns the ``metadata['lambda']`` record, whose
    ``used`` says which of the two the model should carry."""
    params = Parameters.of(settings, u_sample)
    vectors = gammas(settings, candidates)
    counts = candidates["pattern_count"].to_numpy(float)
    # two lower bounds of blocking recall: the m mass of the patterns seen among the candidates
    # (misses the rare patterns no candidate shows) and the rules' implied levels (misses the
    # rules that do not map onto levels); the larger is the nearer
    by_patterns = params.m_mass(vectors) if len(vectors) else 0.0
    by_rules = rule_recall(settings, params)
    recall = max(by_patterns, by_rules or 0.0)
    estimated = recall > 0
    deterministic = lambda_of(settings)
    mixture = mixture_lambda(
        params.log2_bayes_factors(vectors), counts, total_pairs, recall if estimated else 1.0, start=max(deterministic, 1e-12)
    )
    report = lambda_report(
        deterministic, mixture, use_mixture=use_mixture, candidate_pairs=int(counts.sum()), total_pairs=total_pairs,
        observed=observed, recall_estimated=estimated,
    )
    report["blocking_recall_estimates"] = {
        "candidate_patterns": round(by_patterns, 6), "rule_levels": None if by_rules is None else round(by_rules, 6),
    }
    return report


# --- threshold -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimatedThreshold:
    """The match weight (and probability) that maximises expected F-beta, with the expected precision and recall there."""

    match_weight: float
    match_probability: float
    expected_precision: float
    expected_recall: float
    beta: float
    expected_f_beta: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def best_expected_threshold(
    log2_odds: np.ndarray, counts: np.ndarray, beta: float, missed_matches: float = 0.0
) -> EstimatedThreshold | None:
    """The cut through the patterns (match weights ``log2_odds``, ``counts`` pairs) that maximises expected F-beta.

    ``missed_matches`` are expected matches no candidate holds (false negatives at every
    threshold). None when the candidates hold no expected match.
    """
    log2_odds, counts = np.asarray(log2_odds, float), np.asarray(counts, float)
    if not len(counts):
        return None
    weights, inverse = np.unique(-log2_odds, return_inverse=True)  # distinct weights, highest first
    weights = -weights
    p = 1.0 / (1.0 + np.exp2(-np.clip(weights, -1000.0, 1000.0)))
    n = np.bincount(inverse.ravel(), weights=counts, minlength=len(weights))
    expected = p * n
    total = expected.sum() + missed_matches
    if total <= 0:
        return None
    tp, fp = np.cumsum(expected), np.cumsum(n - expected)
    f = f_beta(tp, fp, total - tp, beta)
    i = int(np.argmax(f))
    below = weights[i + 1] if i + 1 < len(weights) else weights[i] - 1.0
    weight = float((weights[i] + below) / 2.0)
    return EstimatedThreshold(
        match_weight=weight,
        match_probability=float(1.0 / (1.0 + 2.0 ** (-weight))),
        expected_precision=float(tp[i] / (tp[i] + fp[i])) if tp[i] + fp[i] > 0 else 0.0,
        expected_recall=float(tp[i] / total),
        beta=float(beta),
        expected_f_beta=float(f[i]),
    )


def estimate_threshold(
    settings: Settings, candidates: pd.DataFrame, precision_recall_tradeoff: float, blocking_recall: float = 1.0
) -> EstimatedThreshold | None:
    """The threshold of best expected F-beta under the trained model (``settings``, its lambda) over the candidates."""
    lam = lambda_of(settings)
    if not len(candidates) or not 0 < lam < 1:
        return None
    params = Parameters.of(settings)
    log2_odds = math.log2(lam) - math.log2(1.0 - lam) + params.log2_bayes_factors(gammas(settings, candidates))
    counts = candidates["pattern_count"].to_numpy(float)
    p = 1.0 / (1.0 + np.exp2(-np.clip(log2_odds, -1000.0, 1000.0)))
    missed = float((p * counts).sum()) * (1.0 / blocking_recall - 1.0) if 0 < blocking_recall < 1 else 0.0
    found = best_expected_threshold(log2_odds, counts, f_beta_beta(precision_recall_tradeoff), missed)
    if found is not None:
        log.info(
            "estimated threshold: match weight %.3g (probability %.4g), expected precision %.3f, recall %.3f (beta %.2f)",
            found.match_weight, found.match_probability, found.expected_precision, found.expected_recall, found.beta,
        )
    return found

