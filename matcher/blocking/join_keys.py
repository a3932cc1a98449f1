"""Blocking rules as joins on columns, with each side's computed key evaluated once per record.

Spark joins two large sides by sorting each on the join keys. A key that is an
expression (``substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2)``) is evaluated
again at every comparison of the sort, and a short key such as a two-letter prefix ties
on most of them, so the sort spends its time in substring calls. :class:`JoinKeys` adds
each such expression to the records as a column, once, and writes a rule's join condition
over those columns, with the equalities of plain columns (usually the more distinct
keys, so the sort's prefix settles most comparisons) ahead of the computed ones.
Which pairs a rule finds does not change: the key columns are functions of one record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

KEY_PREFIX = "__blocking_key_"
"""Name prefix of the key columns added to the records."""

_DIALECT = "spark"


def _unqualified(node: exp.Expression) -> exp.Expression:
    return node.transform(lambda n: exp.column(n.name, quoted=True) if isinstance(n, exp.Column) else n)


def _sides(node: exp.Expression) -> set[str]:
    return {column.table for column in node.find_all(exp.Column)}


def _split(rule_sql: str) -> tuple[list[tuple[exp.Expression, exp.Expression]], list[exp.Expression]] | None:
    """The rule's conjuncts that equate an expression of ``l`` with one of ``r`` (as ``(l side, r side)``),
    and its other conjuncts; None when the rule does not parse."""
    try:
        tree = sqlglot.parse_one(rule_sql, read=_DIALECT)
    except sqlglot.errors.ParseError:
        return None
    conjuncts = [c.unnest() for c in (tree.flatten() if isinstance(tree, exp.And) else [tree])]
    equalities, rest = [], []
    for conjunct in conjuncts:
        if isinstance(conjunct, exp.EQ):
            sides = (_sides(conjunct.left), _sides(conjunct.right))
            if sides == ({"l"}, {"r"}):
                equalities.append((conjunct.left, conjunct.right))
                continue
            if sides == ({"r"}, {"l"}):
                equalities.append((conjunct.right, conjunct.left))
                continue
        rest.append(conjunct)
    return equalities, rest


@dataclass(frozen=True)
class JoinKeys:
    """Key columns for the records (``columns``: unqualified expression SQL to column name)
    and the blocking rules' join conditions over them (:meth:`condition`)."""

    columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[str]) -> "JoinKeys":
        """One key column per distinct non-column expression that a side of ``rules``' equalities computes."""
        columns: dict[str, str] = {}
        for rule in rules:
            split = _split(rule)
            for pair in split[0] if split else ():
                for side in pair:
                    if not isinstance(side, exp.Column):
                        columns.setdefault(_unqualified(side).sql(dialect=_DIALECT), f"{KEY_PREFIX}{len(columns)}")
        return cls(columns)

    def definitions(self) -> list[str]:
        """The key columns as SQL select items over one record (``expression as name``)."""
        return [f"{sql} as {name}" for sql, name in self.columns.items()]

    def _key(self, node: exp.Expression, table: str) -> tuple[str, bool]:
        """SQL of one side of an equality, on its key column where there is one; and whether it is a plain column."""
        if isinstance(node, exp.Column):
            return exp.column(node.name, table=table, quoted=True).sql(dialect=_DIALECT), True
        name = self.columns.get(_unqualified(node).sql(dialect=_DIALECT))
        return (f"{table}.{name}", False) if name else (node.sql(dialect=_DIALECT), False)

    def condition(self, rule_sql: str) -> str:
        """``rule_sql`` as a join condition over the key columns: equalities of plain columns first,
        then those of computed keys, then the rule's other conditions; the rule as written when
        it does not parse."""
        split = _split(rule_sql)
        if split is None:
            return rule_sql
        equalities, rest = split
        keyed = []
        for left, right in equalities:
            (l_sql, l_plain), (r_sql, r_plain) = self._key(left, "l"), self._key(right, "r")
            keyed.append((not (l_plain and r_plain), f"{l_sql} = {r_sql}"))
        keyed.sort(key=lambda k: k[0])  # stable: plain columns first, each group in the rule's order
        return " AND ".join([*(sql for _, sql in keyed), *(f"({c.sql(dialect=_DIALECT)})" for c in rest)]) or rule_sql
