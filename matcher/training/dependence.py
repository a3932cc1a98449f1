"""Comparisons that agree together among non-matches, measured (the correction: :mod:`matcher.model.dependence`).

Fellegi-Sunter adds up the evidence of the comparisons as if two different people agreed on
each independently. Customer data breaks that where it matters most: household members
share a surname, an address, a postcode and a landline, so two of them agree on all four
far more often than the product of the four agreement rates says. The model then counts
the household four times over and a different first name or birth date cannot outweigh it:
household members become one entity.

Here the dependence is measured without labels, after a first round of EM. For a set ``S``
of comparisons (each agreeing on its value, or a part of it: :func:`~matcher.model.dependence.agreement`):

* all pairs agreeing on ``S`` are counted without making them, from the key frequencies of
  the rows' values (:class:`~matcher.blocking.auto.KeyedRows`), and so is each member alone;
* the true matches among them are estimated on the candidate pairs that agree on ``S``, from
  the comparisons *outside* ``S``: two latent classes are fitted to those pairs, the match
  class started from the pairs that agree on most evidence, the other free to agree on what
  non-matches share (a household agrees on surname and address, and on its house number
  too; a person who moved agrees on name and birth date) but not on what is a person's own
  (:func:`own_columns`: first and middle name, dates, id numbers), where non-matches agree
  as rarely as the first round of EM says. Left free there too, the second class took the
  matches whose names were mistyped (Febrl) for two people sharing an id and a postcode.
  Matches that no blocking rule finds are not seen there: blocking recall bounds the error;
* the non-matches agreeing on ``S`` are the rest; ``lift(S) = P(S agrees | non-match) /
  Π P(each member agrees)``, the count taken two standard errors low.

A date takes part only beside the surname, and beside nothing a household does not share
(:func:`household_columns`: surname, place, phone): two people share a birth date and a
surname as twins, or where one form gave a relative's date (census returns), but two people
sharing a birth date and an email or an id, or a birth date and a postcode under different
surnames, are matches the latent classes misjudged (Febrl: ``dob + postcode`` measured
175-319x among pairs that were nearly all matches with mistyped names). A set never has more
non-matches than any of its subsets (the estimate for a large set has few comparisons left to
tell them apart), and is measured only when its non-matches are at least :data:`MIN_PAIRS`
counted pairs and :data:`MIN_NON_MATCH_SHARE` (5%) of the pairs agreeing on it: where nearly
every agreeing pair is a match, the matches that look like two people (a nickname, names
swapped) would decide the lift. At 20%, the households of census_2020_2040 (surname and
birth date) and of the generated million (surname, email, phone, postcode) went unmeasured;
5% cost historical_50k 0.01-0.05 F1 before the non-matching class was held to u on a
person's own comparisons, and Febrl and fake_1000 0.0006-0.0043 before a date needed the
surname beside it, and costs neither now. Pairs lifting at least
:data:`MIN_LIFT` join comparisons into groups (the strongest first, at most
:data:`MAX_MEMBERS` each); every subset of two or more members of a group gets its own lift.
Each group becomes one comparison of the model whose levels take the doubly counted evidence
off (:mod:`matcher.model.dependence`).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from typing import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from matcher.blocking.auto import Key, KeyedRows
from matcher.config.harmonization import ADDRESS_PARTS, DERIVED_FIELDS
from matcher.config.transform import DATE_KINDS, ComparisonKind, TransformConfig
from matcher.model.dependence import Agreement, Group, Member, agreement
from matcher.model.splink_adapter import Settings, add_comparison, cap_term_frequency_boost, is_fixed, non_null_levels
from matcher.training.em import agreement_start, expectation_maximisation
from matcher.training.patterns import gammas

log = logging.getLogger(__name__)

MIN_LIFT = 2.0
"""Two comparisons are dependent when non-matches agree on both at least this many times more often than independence says."""
MIN_PAIRS = 50
"""Fewest non-matching pairs (counted, before scaling a sample up) agreeing on a set for its lift to be measured."""
MIN_NON_MATCH_SHARE = 0.05
"""Least share of non-matches among the pairs agreeing on a set for its lift to be measured (module docstring)."""
MAX_MEMBERS = 4
"""Most comparisons in one group (a group of k has up to 2^k - k - 1 levels)."""
SAMPLE_ROWS = 300_000
"""Rows counted at most (a seeded sample beyond, counts scaled as in automatic blocking)."""
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OWN_NAMES = ("first_name", *DERIVED_FIELDS, "middle_name")


class _Evidence:
    """The candidate pairs' patterns and the model's u, to count the matches agreeing on a set."""

    def __init__(self, settings: Settings, candidate_patterns: pd.DataFrame, own: set[str]) -> None:
        trained = [k for k, cc in enumerate(settings.comparisons) if not is_fixed(cc)]
        self.vectors = gammas(settings, candidate_patterns)[:, trained]
        self.counts = candidate_patterns["pattern_count"].to_numpy(float)
        self.names = [settings.comparisons[k].output_column_name for k in trained]
        self.own = [name in own for name in self.names]
        self.lowest = [m.lowest if (m := agreement(settings.comparisons[k])) else
                       non_null_levels(settings.comparisons[k])[0].comparison_vector_value for k in trained]
        self.u = [{lv.comparison_vector_value: max(float(lv.u_probability), 1e-12)
                   for lv in non_null_levels(settings.comparisons[k]) if isinstance(lv.u_probability, (int, float))}
                  for k in trained]

    def matches_agreeing(self, columns: tuple[str, ...]) -> float:
        """Expected true matches among the candidate pairs agreeing on ``columns``: two latent classes
        fitted on those pairs over the comparisons outside ``columns``, the match class started from the
        pairs that agree on most evidence, the other free to agree (a household shares a house number)."""
        members = [self.names.index(c) for c in columns]
        agree = np.all([self.vectors[:, k] >= self.lowest[k] for k in members], axis=0)
        if not agree.any():
            return 0.0
        outside = [k for k in range(len(self.names)) if k not in members]
        vectors, counts, u = self.vectors[agree][:, outside], self.counts[agree], [self.u[k] for k in outside]
        m, share = agreement_start(vectors, counts, u)
        fitted = expectation_maximisation(vectors, counts, m, u, share, free_u=[not self.own[k] for k in outside],
                                          max_iterations=200)
        return fitted.probability_two_random_records_match * float(counts.sum())


class _Lifts:
    """Lifts of sets of comparisons among non-matches: key-frequency counts less the estimated matches."""

    def __init__(self, rows: KeyedRows, columns: list[str], evidence: _Evidence,
                 shareable: Callable[[tuple[str, ...]], bool]) -> None:
        self.rows, self.evidence, self.shareable = rows, evidence, shareable
        self.index = {c: i for i, c in enumerate(columns)}
        self._lifts: dict[tuple[str, ...], Agreement | None] = {}
        self._counts: dict[tuple[str, ...], tuple[float, float]] = {}

    def _pairs(self, agree: tuple[str, ...], filled: tuple[str, ...]) -> float:
        return self.rows.agreeing_pairs(tuple(self.index[c] for c in agree), tuple(self.index[c] for c in filled))

    def lift(self, columns: tuple[str, ...]) -> Agreement | None:
        """``columns``' lift among non-matches (module docstring); None when it cannot be measured or two
        people cannot share them (a date beside a person's own identifier)."""
        if columns not in self._lifts:
            self._lifts[columns] = self._measure(columns) if self.shareable(columns) else None
        return self._lifts[columns]

    def _counted(self, columns: tuple[str, ...]) -> tuple[float, float]:
        """All pairs agreeing on ``columns``, and the non-matches among them: no more than on any subset."""
        if columns not in self._counts:
            together = self._pairs(columns, columns)
            non_matches = together - min(self.evidence.matches_agreeing(columns), together)
            if len(columns) > 2:
                non_matches = min(non_matches, *(self._counted(s)[1] for s in itertools.combinations(columns, len(columns) - 1)))
            self._counts[columns] = (together, non_matches)
        return self._counts[columns]

    def _measure(self, columns: tuple[str, ...]) -> Agreement | None:
        together, non_matches = self._counted(columns)
        matches = together - non_matches
        raw = non_matches * self.rows.fraction**2
        if raw < MIN_PAIRS or non_matches < MIN_NON_MATCH_SHARE * together:
            return None
        # each member's agreement among the same pairs (filled in on the whole set): which sources fill a
        # column in is no dependence of the values
        everything = self._pairs((), columns)
        pairs = everything - matches
        alone = [(self._pairs((c,), columns) - matches) / pairs for c in columns] if pairs > 0 else [0.0]
        if min(alone) <= 0:
            return None
        low = max(raw - 2.0 * math.sqrt(raw), 0.0) / self.rows.fraction**2
        return Agreement(columns, (low / pairs) / math.prod(alone), non_matches)


def _groups(edges: list[tuple[float, str, str]]) -> list[list[str]]:
    """Connected groups of at most :data:`MAX_MEMBERS`, joining the strongest edges first."""
    group_of: dict[str, list[str]] = {}
    for _, a, b in sorted(edges, reverse=True):
        ga, gb = group_of.get(a, [a]), group_of.get(b, [b])
        if ga is gb or len(ga) + len(gb) > MAX_MEMBERS:
            continue
        merged = ga + gb
        for c in merged:
            group_of[c] = merged
    unique = {id(g): g for g in group_of.values()}
    return [g for g in unique.values() if len(g) > 1]


def measure(
    df: DataFrame, config: TransformConfig, settings: Settings, candidate_patterns: pd.DataFrame,
    *, sample_rows: int = SAMPLE_ROWS,
) -> list[Group]:
    """The groups of dependent comparisons in ``df``'s :func:`~matcher.model.comparisons.comparable` rows,
    with ``settings`` trained once and ``candidate_patterns`` the candidate pairs' pattern counts."""
    agreeing: dict[str, Member] = {
        m.column: m for cc in settings.comparisons
        if not is_fixed(cc) and (m := agreement(cc)) and _PLAIN.match(m.column) and m.column in config.column_names
    }
    compared = list(agreeing)
    if len(compared) < 2 or candidate_patterns.empty:
        return []
    rows = KeyedRows(df, config, [Key(c, "value", (agreeing[c].key,)) for c in compared], sample_rows)
    try:
        lifts = _Lifts(rows, compared, _Evidence(settings, candidate_patterns, own_columns(config)),
                       _shareable(config))
        edges = [(found.lift, *pair) for pair in itertools.combinations(compared, 2)
                 if (found := lifts.lift(pair)) is not None and found.lift >= MIN_LIFT]
        groups = []
        for members in _groups(edges):
            members = [c for c in compared if c in members]  # the config's order
            # a pair takes the first level it agrees on: the most members, and among as many the strongest
            measured = [found for size in range(len(members), 1, -1) for subset in itertools.combinations(members, size)
                        if (found := lifts.lift(subset)) is not None and found.lift > 1.0]
            levels = sorted(measured, key=lambda level: (-len(level.columns), -level.lift))
            if levels:
                groups.append(Group(tuple(members), tuple(levels), tuple(agreeing[c].key for c in members)))
        return groups
    finally:
        rows.close()


def _shareable(config: TransformConfig) -> Callable[[tuple[str, ...]], bool]:
    """Whether two people may agree on a set of columns together: a date only beside the surname, and
    beside nothing but what a household shares."""
    dates = {c.name for c in config.columns if c.kind in DATE_KINDS}
    household = household_columns(config)
    return lambda columns: not dates & set(columns) or "last_name" in columns and set(columns) - dates <= household


def household_columns(config: TransformConfig) -> set[str]:
    """The compared columns a household shares: the surname, the place (:func:`place_columns`) and phones."""
    return place_columns(config) | {c.name for c in config.columns if c.name == "last_name" or c.kind == ComparisonKind.phone}


def own_columns(config: TransformConfig) -> set[str]:
    """The compared columns that are a person's own: first and middle names, dates, id numbers."""
    return {c.name for c in config.columns if c.kind in DATE_KINDS or c.kind == ComparisonKind.id_number
            or c.name in _OWN_NAMES}


def place_columns(config: TransformConfig) -> set[str]:
    """The compared columns that say where a person lives: postcodes and the address parts."""
    return {c.name for c in config.columns if c.kind == ComparisonKind.postcode or c.name in ADDRESS_PARTS}


def add_groups(settings: Settings, groups: list[Group], places: set[str] = frozenset()) -> list[str]:
    """Append each group's comparison to the model, and say what it corrects (column names and numbers
    only). Returns the comparisons whose term-frequency boosts were capped.

    The lifts are averages over all values, and values held by few people depart most from them
    where a place takes part: the other holders of a rare surname are mostly relatives, living
    at the same address. So the members of a level that holds a place (one of ``places``) and
    lifts at least :data:`MIN_LIFT` get no more than their exact levels' average weight for a
    rare value (:func:`cap_term_frequency_boost`).
    """
    by_name = {cc.output_column_name: cc for cc in settings.comparisons}
    household = {c for group in groups for level in group.levels
                 if level.lift >= MIN_LIFT and places & set(level.columns) for c in level.columns}
    capped = [c for group in groups for c in group.columns if c in household and cap_term_frequency_boost(by_name[c])]
    for group in groups:
        add_comparison(settings, group.comparison())
        strongest = max(group.levels, key=lambda level: level.lift)
        log.info(
            "%s agree together %.0fx more often among non-matches than independence says: "
            "the model takes %.1f bits off when they all agree", "+".join(strongest.columns), strongest.lift, -strongest.bits,
        )
    if capped:
        log.info("term frequencies of %s no longer raise a rare value above the average: they agree together "
                 "with a place among non-matches (households)", ", ".join(capped))
    return capped
