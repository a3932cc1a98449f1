"""The prediction blocking rules, defined once, and what the driver derives from them.

Full matching blocks with Spark joins on Splink's rules (:func:`matcher.model.comparisons.splink_settings`
turns each configured rule into one with :func:`matcher.model.comparisons.blocking_rule`).
:func:`prediction_rules` builds the very same Splink rules and reads their equi-join
conditions: a condition ``l.c = r.c`` on a plain column makes ``c`` a key column. That is
all match-incremental needs to pre-select, in the driver, the existing records a new
record can pair with (:func:`preselect`); Splink then scores those with the full rules,
so the candidate pairs are exactly a full run's.

A rule that joins on an equality of expressions instead (``substr(l.c, 1, 3) =
substr(r.c, 1, 3)``, as automatic blocking writes them) pre-selects by its own SQL: DuckDB
joins the existing records to the new ones with each rule (:func:`preselect`). A rule
without any equi-join condition (an ``OR`` of equalities) cannot be pre-selected on: then
every existing record is a candidate and Splink's own join does the blocking.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlglot
from sqlglot.expressions import Column

from matcher.config.transform import TransformConfig
from matcher.model.comparisons import blocking_rule
from matcher.model.splink_adapter import BlockingRule, columns_used_by_sql, equi_join_conditions, to_blocking_rule

_DIALECT = "spark"
_ROW = "__matcher_row"


@dataclass(frozen=True)
class PredictionRule:
    """One prediction blocking rule: Splink's, and the columns its equi-join keys are (None: no usable key)."""

    splink: BlockingRule
    key_columns: tuple[str, ...] | None

    @property
    def joins(self) -> bool:
        """Whether the rule has an equi-join condition (on columns or on expressions of them)."""
        return bool(equi_join_conditions(self.splink))


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
    if not all(rule.joins for rule in rules):
        return rows.to_table(columns=columns).to_pandas()
    if any(rule.key_columns is None for rule in rules):
        return _joined_by_rules(rows, rules, new, columns)
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


def _joined_by_rules(rows: ds.Dataset, rules: list[PredictionRule], new: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of the ``rows`` that some rule pairs with a record of ``new``: each rule's SQL
    (in DuckDB's dialect) joins the two, as Splink's blocking would, in one DuckDB query."""
    used = {c for rule in rules for c in columns_used_by_sql(rule.splink.blocking_rule_sql, _DIALECT)}
    shared = [c for c in rows.schema.names if c in used]
    table = rows.to_table(columns=list(dict.fromkeys(columns + shared)))
    table = table.append_column(_ROW, pa.array(np.arange(table.num_rows)))
    incoming = pa.Table.from_pandas(new[shared], schema=pa.schema([table.schema.field(c) for c in shared]), preserve_index=False)
    conditions = [sqlglot.transpile(rule.splink.blocking_rule_sql, read=_DIALECT, write="duckdb")[0] for rule in rules]
    connection = duckdb.connect()
    try:
        connection.execute(f"SET threads = {os.cpu_count() or 1}")
        connection.register("existing_rows", table)
        connection.register("new_rows", incoming)
        query = " UNION ".join(f"SELECT l.{_ROW} FROM existing_rows AS l JOIN new_rows AS r ON {c}" for c in conditions)
        found = connection.sql(query).to_arrow_table()[_ROW].to_numpy()
    finally:
        connection.close()
    return table.take(np.sort(found)).select(columns).to_pandas()
