"""The dependence comparison: a correction for comparisons that agree together among non-matches.

:mod:`matcher.training.dependence` measures which comparisons' exact agreements go together
among non-matches (household members share surname, address and phone) and how much more
often than independence says (the *lift*). Each such group becomes one extra Splink
comparison, ``together__<a>__<b>...``: a null level (every member null), one level per
dependent subset of members (the largest first, and among as large the strongest: a pair
takes the first level it agrees on), whose Bayes factor is ``1 / lift`` (m and u
fixed, never trained), and an ``ELSE`` level of factor 1.

A member *agrees* (:func:`agreement`) on its exact level, and on the level just below when
that level is equality of a part of the value: an email's username (``j.smith@a.com`` and
``j.smith@b.org``), the 5-digit ZIP of a ZIP+4. Two namesakes' emails, built from their
names at different providers, agree that way, and the names already counted it. The
comparison's SQL is that equality on plain column names, in functions Spark and DuckDB read
alike, so every engine that scores with the model applies it. Candidate pairs compared
before the comparison existed get its level from their members' levels
(:func:`derived_gamma`, :func:`derived_gamma_sql`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp

from matcher.model.splink_adapter import Comparison, Settings, gamma_column, is_else_level, non_null_levels

PREFIX = "together__"
"""Output column name prefix of a dependence comparison (its members follow, ``__``-separated)."""
NOT_EVALUATED = -2
"""The comparison-vector value of a comparison not evaluated on a pair (a thinned u sample)."""
WHOLE = "{c}"
"""The key of a member that agrees on its whole value."""
_PLACEHOLDER = "__matcher_key__"


def _key(condition: exp.Expression) -> tuple[str, str] | None:
    """``(column, key)`` when ``condition`` is ``f(column_l) = f(column_r)``: ``key`` is ``f`` as a
    template on ``{c}`` (braces of the SQL doubled), in SQL that Spark and DuckDB read alike."""
    if not isinstance(condition, exp.EQ):
        return None
    sides = []
    for side, suffix in ((condition.left, "_l"), (condition.right, "_r")):
        columns = {c.name for c in side.find_all(exp.Column)}
        if len(columns) != 1 or not (name := columns.pop()).endswith(suffix):
            return None
        template = side.transform(lambda n: exp.column(_PLACEHOLDER) if isinstance(n, exp.Column) else n).sql("spark")
        sides.append((name[: -len(suffix)], template.replace("{", "{{").replace("}", "}}").replace(_PLACEHOLDER, WHOLE)))
    return sides[0] if sides[0] == sides[1] else None


def _member_key(condition: exp.Expression) -> tuple[str, str] | None:
    """``(column, key)`` of one member's condition in a dependence level (:func:`agreeing_sql`)."""
    condition = condition.unnest()
    if isinstance(condition, exp.Or):
        whole, part = (_key(c.unnest()) for c in condition.flatten())
        return part if whole and part and whole == (part[0], WHOLE) else None
    return _key(condition)


def _level_keys(sql: str) -> dict[str, str] | None:
    """The members and keys of a dependence level's SQL (:func:`agreeing_sql` of each, ``AND``-ed)."""
    tree = sqlglot.parse_one(sql, read="spark").unnest()
    found = [_member_key(c) for c in (tree.flatten() if isinstance(tree, exp.And) else [tree])]
    return None if any(k is None for k in found) else dict(found)


@dataclass(frozen=True)
class Member:
    """How a comparison agrees in a dependence: ``key`` of the value equal (a template on ``{c}``),
    which its levels ``values`` say."""

    column: str
    key: str
    values: tuple[int, ...]

    @property
    def lowest(self) -> int:
        """Levels count down from the closest: the member agrees at this level or above."""
        return min(self.values)


def agreeing_sql(column: str, key: str) -> str:
    """The SQL of ``column`` agreeing on ``key``: the whole value equal, or the key (which an empty or odd value may lack)."""
    whole = f"{column}_l = {column}_r"
    return whole if key == WHOLE else f"({whole} OR {key.format(c=column + '_l')} = {key.format(c=column + '_r')})"


def agreement(cc: Comparison) -> Member | None:
    """The comparison's agreement (module docstring); None unless its null level is its column's nulls
    and its closest level that column's equality."""
    null = next((lv for lv in cc.comparison_levels if lv.is_null_level), None)
    levels = non_null_levels(cc)
    column = cc.output_column_name
    if null is None or not levels or re.sub(r"[`\"\s]", "", null.sql_condition).lower() != f"{column}_lisnullor{column}_risnull".lower():
        return None
    keys = [None if is_else_level(lv) else _level_keys(lv.sql_condition) for lv in levels[:2]]
    if keys[0] != {column: WHOLE}:
        return None
    if len(keys) > 1 and keys[1] is not None and set(keys[1]) == {column} and keys[1][column] != WHOLE:
        return Member(column, keys[1][column], (levels[0].comparison_vector_value, levels[1].comparison_vector_value))
    return Member(column, WHOLE, (levels[0].comparison_vector_value,))


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
    keys: tuple[str, ...] = ()
    """Each member's key (:class:`Member`); the whole value when empty."""

    @property
    def name(self) -> str:
        return PREFIX + "__".join(self.columns)

    def comparison(self) -> dict[str, Any]:
        """The Splink comparison (as a settings dict) that applies the correction; plain SQL both engines read."""
        fixed = {"fix_m_probability": True, "fix_u_probability": True}
        null = " AND ".join(f"({c}_l IS NULL OR {c}_r IS NULL)" for c in self.columns)
        levels = [{"sql_condition": null, "label_for_charts": "Null", "is_null_level": True}]
        keys = dict(zip(self.columns, self.keys or [WHOLE] * len(self.columns)))
        for level in self.levels:  # measured lifts exceed 1: m = 1 / lift, u = 1
            levels.append({
                "sql_condition": " AND ".join(agreeing_sql(c, keys[c]) for c in level.columns),
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


def _level_members(settings: Settings, cc: Comparison) -> list[tuple[dict[str, int], int]]:
    """Per non-null level of a dependence comparison: each member's lowest level that counts as agreeing
    there (from the member's comparison and the key the level's SQL compares), and the level's value."""
    by_name = {c.output_column_name: c for c in settings.comparisons}
    out = []
    for level in non_null_levels(cc):
        keys = None if is_else_level(level) else _level_keys(level.sql_condition)
        if keys:
            out.append(({c: _lowest_agreeing(by_name[c], key) for c, key in keys.items()}, level.comparison_vector_value))
    return out


def _lowest_agreeing(cc: Comparison, key: str) -> int:
    """The member comparison's lowest level at which ``key`` of its value is equal: the level below
    exact when that compares ``key``, else the exact level."""
    member = agreement(cc)
    if member is None:
        raise ValueError(f"{cc.output_column_name} cannot be a member of a dependence comparison")
    return member.lowest if key == member.key else member.values[0]


def _gammas(settings: Settings, cc: Comparison) -> dict[str, str]:
    """A dependence comparison's members (read from its null level) and their gamma columns."""
    null = next(level for level in cc.comparison_levels if level.is_null_level)
    names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)_l IS NULL", null.sql_condition)
    by_name = {c.output_column_name: c for c in settings.comparisons}
    return {n: gamma_column(by_name[n]) for n in names}


def derived_gamma(settings: Settings, cc: Comparison, vectors: pd.DataFrame) -> np.ndarray:
    """The dependence comparison's level for each row of a frame of the members' gamma columns
    (:data:`NOT_EVALUATED` where a member was not)."""
    gammas = {name: vectors[column].to_numpy(dtype=int) for name, column in _gammas(settings, cc).items()}
    out = np.zeros(len(vectors), dtype=int)
    decided = np.zeros(len(vectors), dtype=bool)
    for lowest, value in _level_members(settings, cc):
        agree = np.all([gammas[c] >= low for c, low in lowest.items()], axis=0) & ~decided
        out[agree] = value
        decided |= agree
    out[np.all([g == -1 for g in gammas.values()], axis=0)] = -1
    out[np.any([g == NOT_EVALUATED for g in gammas.values()], axis=0)] = NOT_EVALUATED
    return out


def derived_gamma_sql(settings: Settings, cc: Comparison) -> str:
    """:func:`derived_gamma` as Spark SQL over the members' gamma columns."""
    column = _gammas(settings, cc)
    whens = [f"WHEN {' AND '.join(f'{g} = -1' for g in column.values())} THEN -1"]
    for lowest, value in _level_members(settings, cc):
        # a comparison, not IN lists: with IN lists the scoring code grew (100k: 11.3 s instead of 4.2 s)
        condition = " AND ".join(f"{column[c]} >= {low}" for c, low in lowest.items())
        whens.append(f"WHEN {condition} THEN {value}")
    return f"CASE {' '.join(whens)} ELSE 0 END"


def dependence_comparisons(settings: Settings) -> list[Comparison]:
    """The model's dependence comparisons."""
    return [cc for cc in settings.comparisons if cc.output_column_name.startswith(PREFIX)]


def with_derived_gammas(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """A pattern-count frame with the dependence comparisons' gamma columns added from their members'."""
    added = {gamma_column(cc): derived_gamma(settings, cc, frame) for cc in dependence_comparisons(settings)}
    return frame.assign(**added) if added else frame
