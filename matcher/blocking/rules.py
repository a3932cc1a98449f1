"""The prediction blocking rules, defined once, and what the driver derives from them.

Full matching blocks with Spark joins on Splink's rules (:func:`matcher.model.comparisons.splink_settings`
turns each configured rule into one with :func:`matcher.model.comparisons.blocking_rule`).
:func:`prediction_rules` builds the very same Splink rules and reads their equi-join
conditions: a condition ``l.c = r.c`` on a plain column makes ``c`` a key column. That is
all match-incremental needs to pre-select, in the driver, the existing records a new
record can pair with (:func:`preselect`); Splink then scores those with the full rules,
so the candidate pairs are exactly a full run's.

A rule without a usable key (no equi-join condition on the same plain column on both
sides: an ``OR``, a function of a column, two different columns) cannot be pre-selected
on: then every existing record is a candidate and Splink's own join does the blocking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlglot
from sqlglot.expressions import Column

from matcher.config.transform import TransformConfig
from matcher.model.comparisons import blocking_rule
from matcher.model.splink_adapter import BlockingRule, equi_join_conditions, to_blocking_rule

_DIALECT = "spark"


@dataclass(frozen=True)
class PredictionRule:
    """One prediction blocking rule: Splink's, and the columns its equi-join keys are (None: no usable key)."""

    splink: BlockingRule
    key_columns: tuple[str, ...] | None


def _key_columns(rule: BlockingRule) -> tuple[str, ...] | None:
    columns = []
    for left, right in equi_join_conditions(rule):
        expression = sqlglot.parse_one(left, read=_DIALECT)
        if left != right or not isinstance(expression, Column):
            return None  # a function of a column, or two different columns: not a key to look up
        columns.append(expression.name)
    return tuple(dict.fromkeys(columns)) or None


def prediction_rules(config: TransformConfig) -> list[PredictionRule]:
    """The rules ``accuracy_cost_tradeoff`` switches on, as Splink blocks with them, with their key columns."""
    rules = [to_blocking_rule(blocking_rule(r), _DIALECT) for r in config.active_blocking_rules]
    return [PredictionRule(rule, _key_columns(rule)) for rule in rules]


def _isin(column: str, values: np.ndarray, schema: pa.Schema) -> ds.Expression:
    return pc.field(column).isin(pa.array(list(values), type=schema.field(column).type))


def preselect(rows: ds.Dataset, rules: list[PredictionRule], new: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of the ``rows`` that share some rule's key values with a record of ``new``.

    Per rule a tuple semi-join on its key columns (a record with a null key value shares
    nothing, as in SQL); all rows when a rule has no key columns. Read with one Parquet
    filter (the union of per-column ``isin`` terms), then narrowed to exact tuples.
    """
    if any(rule.key_columns is None for rule in rules):
        return rows.to_table(columns=columns).to_pandas()
    schema = rows.schema
    keyed = [(list(rule.key_columns), new[list(rule.key_columns)].dropna().drop_duplicates()) for rule in rules]
    keyed = [(key, values) for key, values in keyed if not values.empty]
    if not keyed:
        return pa.schema([schema.field(c) for c in columns]).empty_table().to_pandas()
    expression = None
    for key, values in keyed:
        term = None
        for column in key:
            part = _isin(column, values[column].unique(), schema)
            term = part if term is None else term & part
        expression = term if expression is None else expression | term
    found = rows.to_table(columns=columns, filter=expression).to_pandas()
    keep = np.zeros(len(found), dtype=bool)
    for key, values in keyed:
        keep |= found[key].merge(values.assign(_hit=True), on=key, how="left")["_hit"].notna().to_numpy()
    return found[keep].reset_index(drop=True)
