"""The dependence comparison: a correction for comparisons that agree together among non-matches.

:mod:`matcher.training.dependence` measures which comparisons' exact agreements go together
among non-matches (household members share surname, address and phone) and how much more
often than independence says (the *lift*). Each such group becomes one extra Splink
comparison, ``together__<a>__<b>...``: a null level (every member null), one level per
dependent subset of members, the largest first, whose Bayes factor is ``1 / lift`` (m and u
fixed, never trained), and an ``ELSE`` level of factor 1. Its SQL is plain equality on
plain column names, which Spark and DuckDB read alike, so every engine that scores with the
model applies it. Candidate pairs compared before the comparison existed get its level from
their members' levels (:func:`derived_gamma`, :func:`derived_gamma_sql`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matcher.model.splink_adapter import Comparison, Settings, gamma_column, non_null_levels

PREFIX = "together__"
"""Output column name prefix of a dependence comparison (its members follow, ``__``-separated)."""
NOT_EVALUATED = -2
"""The comparison-vector value of a comparison not evaluated on a pair (a thinned u sample)."""


@dataclass(frozen=True)
class Agreement:
    """One level of a dependence comparison: the members that agree, how much more often than independence says."""

    columns: tuple[str, ...]
    lift: float
    pairs: float

    @property
    def bits(self) -> float:
        """The level's match weight: minus the evidence the independent comparisons count twice."""
        return -math.log2(self.lift)

    def as_json(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "lift": round(self.lift, 3), "weight": round(self.bits, 3),
                "non_matching_pairs": int(self.pairs)}


@dataclass(frozen=True)
class Group:
    """Comparisons whose agreement goes together among non-matches, with one level per dependent subset."""

    columns: tuple[str, ...]
    levels: tuple[Agreement, ...]

    @property
    def name(self) -> str:
        return PREFIX + "__".join(self.columns)

    def comparison(self) -> dict[str, Any]:
        """The Splink comparison (as a settings dict) that applies the correction; plain SQL both engines read."""
        fixed = {"fix_m_probability": True, "fix_u_probability": True}
        null = " AND ".join(f"({c}_l IS NULL OR {c}_r IS NULL)" for c in self.columns)
        levels = [{"sql_condition": null, "label_for_charts": "Null", "is_null_level": True}]
        for level in self.levels:  # measured lifts exceed 1: m = 1 / lift, u = 1
            levels.append({
                "sql_condition": " AND ".join(f"{c}_l = {c}_r" for c in level.columns),
                "label_for_charts": f"{', '.join(level.columns)} agree together", "m_probability": 1.0 / level.lift,
                "u_probability": 1.0,
                **fixed,
            })
        levels.append({"sql_condition": "ELSE", "label_for_charts": "All other comparisons", "m_probability": 1.0,
                       "u_probability": 1.0, **fixed})
        return {"output_column_name": self.name, "comparison_levels": levels,
                "comparison_description": f"correction for {', '.join(self.columns)} agreeing together among non-matches"}

    def as_json(self) -> dict[str, Any]:
        return {"comparison": self.name, "columns": list(self.columns), "levels": [level.as_json() for level in self.levels]}


def _members(settings: Settings, cc: Comparison) -> list[tuple[str, str, int]]:
    """A dependence comparison's members (read from its null level): name, gamma column and closest level's value each."""
    null = next(level for level in cc.comparison_levels if level.is_null_level)
    names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)_l IS NULL", null.sql_condition)
    by_name = {c.output_column_name: c for c in settings.comparisons}
    return [(n, gamma_column(by_name[n]), non_null_levels(by_name[n])[0].comparison_vector_value) for n in names]


def _level_columns(level) -> tuple[str, ...]:
    """The members a level's SQL (``a_l = a_r AND ...``) needs to agree."""
    return tuple(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)_l = ", level.sql_condition))


def derived_gamma(settings: Settings, cc: Comparison, vectors: pd.DataFrame) -> np.ndarray:
    """The dependence comparison's level for each row of a frame of the members' gamma columns
    (:data:`NOT_EVALUATED` where a member was not)."""
    members = _members(settings, cc)
    gammas = {name: vectors[column].to_numpy(dtype=int) for name, column, _ in members}
    tops = {name: top for name, _, top in members}
    out = np.zeros(len(vectors), dtype=int)
    decided = np.zeros(len(vectors), dtype=bool)
    for level in non_null_levels(cc):
        columns = _level_columns(level)
        if not columns:
            continue
        agree = np.all([gammas[c] == tops[c] for c in columns], axis=0) & ~decided
        out[agree] = level.comparison_vector_value
        decided |= agree
    out[np.all([g == -1 for g in gammas.values()], axis=0)] = -1
    out[np.any([g == NOT_EVALUATED for g in gammas.values()], axis=0)] = NOT_EVALUATED
    return out


def derived_gamma_sql(settings: Settings, cc: Comparison) -> str:
    """:func:`derived_gamma` as Spark SQL over the members' gamma columns."""
    members = _members(settings, cc)
    column = {name: (gamma, top) for name, gamma, top in members}
    whens = [f"WHEN {' AND '.join(f'{column[n][0]} = -1' for n in column)} THEN -1"]
    for level in non_null_levels(cc):
        columns = _level_columns(level)
        if columns:
            condition = " AND ".join(f"{column[c][0]} = {column[c][1]}" for c in columns)
            whens.append(f"WHEN {condition} THEN {level.comparison_vector_value}")
    return f"CASE {' '.join(whens)} ELSE 0 END"


def dependence_comparisons(settings: Settings) -> list[Comparison]:
    """The model's dependence comparisons."""
    return [cc for cc in settings.comparisons if cc.output_column_name.startswith(PREFIX)]


def with_derived_gammas(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """A pattern-count frame with the dependence comparisons' gamma columns added from their members'."""
    added = {gamma_column(cc): derived_gamma(settings, cc, frame) for cc in dependence_comparisons(settings)}
    return frame.assign(**added) if added else frame
