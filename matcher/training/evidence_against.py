"""A different value must count against a match: EM estimates that say otherwise, caught and corrected.

EM assumes the comparisons are independent within matches and within non-matches.
Customer data breaks that: emails are built from names, household members share a
surname, an address and a phone. In a session blocked on first and last name, people who
merely share a common name agree on the email too; EM takes many of them for matches, and
a different birth date ends up costing almost nothing. Blocked on an address, household
members look alike, and a different first name stops counting. Such a model links every
John Smith it sees and chains households into one entity.

The check, after EM: for every identifying comparison (exact agreement rarer than
:data:`~matcher.training.em.IDENTIFYING_U` among random pairs) whose lowest ("else")
level weighs more than ``-MIN_EVIDENCE_BITS``, how often matches differ completely is
measured directly, on the candidate pairs that agree exactly on every other comparison
both records fill in, at least :data:`MIN_OTHERS` identifying ones among them. Those
pairs are the same person whatever the model says (two people sharing name, birth date,
email and phone are rare), so the share of them whose values differ completely estimates
m of the else level. When that says at least one bit more against a match than EM did,
it replaces EM's estimate (the comparison's other levels keep their proportions), and the
correction is reported: a warning and ``metadata.json``'s ``evidence_against``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher.model.splink_adapter import (
    Settings, apply_trained_m_u, is_else_level, is_fixed, non_null_levels, replace_trained_m,
)
from matcher.training.em import IDENTIFYING_U, weight_bits
from matcher.training.patterns import gammas

log = logging.getLogger(__name__)

MIN_EVIDENCE_BITS = 1.0
"""A completely different value of an identifying comparison must weigh at most this many bits below zero."""
MIN_OTHERS = 2
"""Identifying comparisons besides the judged one that a pair must fill in (and agree on) to count."""
MIN_PAIRS = 20
"""Fewest such pairs the measurement needs; with fewer, EM's estimate stands and is reported as unchecked."""
CORRECTION_MARGIN_BITS = 1.0
"""How much more against a match the measurement must say before it replaces EM's estimate."""
DESCRIPTION = "else level measured on candidate pairs agreeing on every other comparison"


@dataclass(frozen=True)
class Judged:
    """One comparison's else level: EM's m and weight, and what the agreeing pairs measured."""

    comparison: str
    em_m: float
    u: float
    pairs: int
    measured_m: float | None

    def weight(self, m: float) -> float:
        return weight_bits(m, self.u)

    @property
    def corrected(self) -> bool:
        return self.measured_m is not None and self.weight(self.measured_m) <= self.weight(self.em_m) - CORRECTION_MARGIN_BITS

    def as_json(self) -> dict:
        return {
            "comparison": self.comparison, "em_m": round(self.em_m, 6), "em_weight": round(self.weight(self.em_m), 3),
            "u": round(self.u, 6), "agreeing_pairs": self.pairs,
            "measured_m": None if self.measured_m is None else round(self.measured_m, 6),
            "measured_weight": None if self.measured_m is None else round(self.weight(self.measured_m), 3),
            "action": "corrected" if self.corrected else ("kept" if self.measured_m is not None else "too few pairs to check"),
        }


def _tops(settings: Settings) -> tuple[list[int], list[float]]:
    """Per comparison, its closest level's value and that level's u."""
    tops, u_tops = [], []
    for cc in settings.comparisons:
        top = max(non_null_levels(cc), key=lambda level: level.comparison_vector_value)
        tops.append(top.comparison_vector_value)
        u_tops.append(float(top.u_probability) if isinstance(top.u_probability, (int, float)) else 1.0)
    return tops, u_tops


def measured_else_share(
    vectors: np.ndarray, counts: np.ndarray, k: int, tops: list[int], identifying: list[bool], fixed: list[bool],
) -> tuple[int, float]:
    """Pairs agreeing on every other trained comparison they fill in (:data:`MIN_OTHERS` identifying ones at
    least) with comparison ``k`` filled in, and the share of them at ``k``'s else level (0), with half a pair of prior."""
    others = [j for j in range(vectors.shape[1]) if j != k and not fixed[j]]
    filled = vectors[:, others] >= 0
    agree = vectors[:, others] == np.asarray(tops)[others]
    strong = filled[:, [i for i, j in enumerate(others) if identifying[j]]].sum(axis=1)
    chosen = (agree | ~filled).all(axis=1) & (strong >= MIN_OTHERS) & (vectors[:, k] >= 0)
    pairs = float(counts[chosen].sum())
    differing = float(counts[chosen & (vectors[:, k] == 0)].sum())
    return int(pairs), (differing + 0.5) / (pairs + 1.0)


def judge(settings: Settings, candidate_patterns: pd.DataFrame) -> list[Judged]:
    """The identifying comparisons whose else level EM let weigh more than ``-MIN_EVIDENCE_BITS``, measured."""
    tops, u_tops = _tops(settings)
    identifying = [u <= IDENTIFYING_U for u in u_tops]
    fixed = [is_fixed(cc) for cc in settings.comparisons]
    vectors = gammas(settings, candidate_patterns)
    counts = candidate_patterns["pattern_count"].to_numpy(float)
    judged = []
    for k, cc in enumerate(settings.comparisons):
        else_level = next((lv for lv in non_null_levels(cc) if is_else_level(lv)), None)
        if not identifying[k] or else_level is None or not isinstance(else_level.m_probability, (int, float)):
            continue
        m, u = float(else_level.m_probability), float(else_level.u_probability)
        if weight_bits(m, u) <= -MIN_EVIDENCE_BITS:
            continue
        pairs, share = measured_else_share(vectors, counts, k, tops, identifying, fixed)
        judged.append(Judged(cc.output_column_name, m, u, pairs, share if pairs >= MIN_PAIRS else None))
    return judged


def _correct(settings: Settings, item: Judged) -> None:
    """Give the comparison's else level the measured m; its other levels keep their proportions."""
    cc = next(c for c in settings.comparisons if c.output_column_name == item.comparison)
    scale = (1.0 - item.measured_m) / max(1.0 - item.em_m, 1e-12)
    for level in non_null_levels(cc):
        m = item.measured_m if is_else_level(level) else float(level.m_probability) * scale
        replace_trained_m(level, max(m, 1e-9), DESCRIPTION)


def enforce_evidence_against(linker, settings: Settings, candidate_patterns: pd.DataFrame) -> list[dict]:
    """Check (and correct) every identifying comparison's else level; returns the report, warns per finding."""
    judged = judge(settings, candidate_patterns)
    for item in judged:
        if item.corrected:
            _correct(settings, item)
            log.warning(
                "EM let a completely different %s weigh %+.1f bits; among %d candidate pairs agreeing on every other "
                "comparison, %.1f%% differ on it: corrected to %+.1f bits",
                item.comparison, item.weight(item.em_m), item.pairs, 100 * item.measured_m, item.weight(item.measured_m),
            )
        elif item.measured_m is None:
            log.warning(
                "EM let a completely different %s weigh %+.1f bits; too few candidate pairs (%d) agree on every other "
                "comparison to check it", item.comparison, item.weight(item.em_m), item.pairs,
            )
    if any(item.corrected for item in judged):
        apply_trained_m_u(linker)
    return [item.as_json() for item in judged]
