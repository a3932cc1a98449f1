"""A comparison's level CASE with the similarity calls that several levels repeat computed once.

Splink writes one level per threshold (``jaro_winkler(a, b) >= 0.92``, ``>= 0.88``,
``>= 0.7``), so a pair that fails them all evaluates the same similarity once per level;
on Spark that is a JVM UDF call each time. :func:`gamma_sql` rewrites the CASE so that
each such call is a column computed once per pair, and only where the original CASE
would have evaluated it, so the levels (and any error a call could raise) are unchanged.

Two calls are first made cheaper, to the same values. Edit-distance levels (``levenshtein(a, b) <= 1``,
``<= 2``) become one bounded call, ``levenshtein(a, b, 2)`` (the distance, or -1 beyond 2), which stops
once the bound is passed: on 2,250,000 pairs of generated records a phone comparison's levels took
0.44-0.58 s instead of 1.21-1.33 s, a birth date's 0.72-0.91 s instead of 1.35-1.40 s. An email's user
name, ``regexp_extract(x, '^[^@]+', 0)``, becomes ``substring_index(x, '@', 1)`` (the part before the
first ``@``, empty when there is none before it), without a regular expression: 0.5-0.7 s instead of
1.0-1.2 s (bench/README.md, "Bounded edit distances").
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from matcher.model.splink_adapter import is_else_level


@dataclass(frozen=True)
class GammaSql:
    """``shared``: SQL column definitions to compute first; ``case``: the level CASE that reads them."""

    shared: list[str]
    case: str


def _shares_a_call(node: exp.Expression) -> bool:
    return isinstance(node, exp.Func) and not isinstance(node, (exp.Connector, exp.Not, exp.Predicate)) and bool(
        node.find(exp.Column)
    )


def _edit_threshold(node: exp.Expression) -> int | None:
    """``k`` of a ``levenshtein(a, b) <= k`` condition (two arguments, a whole-number bound), else None."""
    if not (isinstance(node, exp.LTE) and isinstance(node.this, exp.Levenshtein) and isinstance(node.expression, exp.Literal)):
        return None
    call, bound = node.this, node.expression
    if bound.is_string or not str(bound.this).isdigit() or any(call.args.get(a) is not None for a in call.args if a not in ("this", "expression")):
        return None
    return int(bound.this)


def _bounded_edit_distances(trees: list[exp.Expression | None]) -> list[exp.Expression | None]:
    """``levenshtein(a, b) <= k`` as ``levenshtein(a, b, K) BETWEEN 0 AND k``, ``K`` the largest ``k`` any
    level asks of the same ``a`` and ``b``: one call every level can share, and that stops at ``K``."""
    largest: dict[str, int] = {}
    for tree in trees:
        for node in tree.find_all(exp.LTE) if tree is not None else ():
            k = _edit_threshold(node)
            if k is not None:
                key = node.this.sql(dialect="spark")
                largest[key] = max(largest.get(key, 0), k)

    def bounded(node: exp.Expression) -> exp.Expression:
        k = _edit_threshold(node)
        if k is None:
            return node
        call = exp.Anonymous(this="levenshtein", expressions=[
            node.this.this.copy(), node.this.expression.copy(), exp.Literal.number(largest[node.this.sql(dialect="spark")]),
        ])
        return exp.Between(this=call, low=exp.Literal.number(0), high=exp.Literal.number(k))

    return [tree.transform(bounded) if tree is not None and largest else tree for tree in trees]


def _leading_run_before(node: exp.Expression) -> str | None:
    """``c`` of a ``regexp_extract(x, '^[^c]+', 0)`` call (``c`` one character plain inside a class), else None."""
    if not isinstance(node, exp.RegexpExtract) or node.args.get("parameters") is not None:
        return None
    pattern, group = node.expression, node.args.get("group")
    if not (isinstance(pattern, exp.Literal) and pattern.is_string and isinstance(group, exp.Literal) and str(group.this) == "0"):
        return None
    text = str(pattern.this)
    if len(text) == 6 and text.startswith("^[^") and text.endswith("]+") and text[3] not in "\\]^-[":
        return text[3]
    return None


def _plain_prefixes(tree: exp.Expression | None) -> exp.Expression | None:
    """Each ``regexp_extract(x, '^[^c]+', 0)`` as ``substring_index(x, 'c', 1)``: equal on every value."""
    def plain(node: exp.Expression) -> exp.Expression:
        c = _leading_run_before(node)
        if c is None:
            return node
        return exp.Anonymous(this="substring_index", expressions=[node.this.copy(), exp.Literal.string(c), exp.Literal.number(1)])

    return tree.transform(plain) if tree is not None else None


def gamma_sql(cc, name_prefix: str, evaluate_sql: str | None = None) -> GammaSql:
    """Comparison ``cc``'s level CASE; shared columns are named ``<name_prefix>_<n>``.

    A call is shared when two or more levels use it and the levels before its first use
    hold no such call themselves (the guard re-tests them). Where ``evaluate_sql`` (SQL)
    is false, nothing is computed: the caller's CASE does not read the levels there.
    """
    levels = cc.comparison_levels
    parsed = [None if is_else_level(cl) else sqlglot.parse_one(cl.sql_condition, read="spark") for cl in levels]
    trees = _bounded_edit_distances([_plain_prefixes(tree) for tree in parsed])
    # each level's condition: Splink's text unless a call was rewritten
    conditions = [cl.sql_condition if new == old else new.sql(dialect="spark") for cl, new, old in zip(levels, trees, parsed)]
    used_in: dict[str, set[int]] = {}
    for i, tree in enumerate(trees):
        for node in tree.find_all(exp.Func) if tree is not None else ():
            if _shares_a_call(node):
                used_in.setdefault(node.sql(dialect="spark"), set()).add(i)
    costly_before = [any(_shares_a_call(n) for n in tree.find_all(exp.Func)) if tree else False for tree in trees]
    names = {
        sql: f"{name_prefix}_{n}"
        for n, sql in enumerate(sql for sql, used in used_in.items() if len(used) > 1 and not any(costly_before[: min(used)]))
    }
    replaced: dict[str, int] = {}

    def share(node: exp.Expression, level: int) -> exp.Expression:
        sql = node.sql(dialect="spark") if _shares_a_call(node) else None
        if sql in names:
            replaced[sql] = min(replaced.get(sql, level), level)
            return exp.column(names[sql])
        return node

    clauses = []
    for i, (cl, tree) in enumerate(zip(levels, trees)):
        if tree is None:
            clauses.append(f"ELSE {cl.comparison_vector_value}")
        else:
            rewritten = any(i in used_in[sql] for sql in names)
            condition = tree.transform(lambda node, i=i: share(node, i)).sql(dialect="spark") if rewritten else conditions[i]
            clauses.append(f"WHEN {condition} THEN {cl.comparison_vector_value}")
    shared = []
    for sql, first in replaced.items():
        guard = [f"NOT coalesce(({condition}), false)" for condition in conditions[:first]]
        guard = [evaluate_sql] + guard if evaluate_sql else guard
        shared.append(f"CASE WHEN {' AND '.join(guard) or 'true'} THEN {sql} END as {names[sql]}")
    return GammaSql(shared, "CASE " + " ".join(clauses) + " END")
