"""The run's matched records in memory, found by the run's blocking keys without a join.

Each prediction rule's equi-join keys (``l.c = r.c``, ``substr(l.c, 1, 3) = substr(r.c, 1, 3)``)
are evaluated once per record by DuckDB, in the same SQL the scoring query blocks with, and
kept in a hash index: the records a new record can pair with are the union of its key
lookups, a few dictionary reads. A rule without such a key (an ``OR``, two different columns)
cannot be looked up: then every record is a candidate, and the scoring query's own join
does the blocking (correct, but slow on a large run; :attr:`ReferenceRecords.unindexed_rules`
names them). The term frequencies of the run's records are kept as counts, so a new record
is scored with the frequencies a full run that includes it would have.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection

import duckdb
import numpy as np
import pyarrow as pa

from matcher.model.splink_adapter import BlockingRule, equi_join_conditions

_KEYS_VIEW = "__matcher_serve_keys"


def rule_key_expressions(rules: list[BlockingRule]) -> list[list[str] | None]:
    """Per rule, the SQL of its equi-join keys over one record; None where a rule has no usable key."""
    keys: list[list[str] | None] = []
    for rule in rules:
        conditions = equi_join_conditions(rule)
        usable = conditions and all(left == right for left, right in conditions)
        keys.append([left for left, _ in conditions] if usable else None)
    return keys


_PLAIN_COLUMN = re.compile(r'^"?([A-Za-z_][A-Za-z0-9_]*)"?$')


def key_tuples(connection: duckdb.DuckDBPyConnection, table: pa.Table, expressions: list[str]) -> list[tuple | None]:
    """Each row's key (``expressions`` evaluated on it) as a tuple; None when a part is null (a null key
    blocks nothing, as in SQL). Plain columns are read directly, other expressions by DuckDB (a cursor
    of ``connection`` per call: calls may come from several threads)."""
    plain = [_PLAIN_COLUMN.match(e) for e in expressions]
    if all(plain):
        columns = [table[m.group(1)] for m in plain]
    else:
        with connection.cursor() as cursor:
            cursor.register(_KEYS_VIEW, table)
            select = ", ".join(f"{e} AS k{i}" for i, e in enumerate(expressions))
            columns = cursor.sql(f"SELECT {select} FROM {_KEYS_VIEW}").to_arrow_table().columns
    values = [c.to_pylist() for c in columns]
    return [None if None in row else row for row in zip(*values)]


@dataclass
class TermFrequencyCounts:
    """Per term-frequency column: each value's count among the non-null values, and their total."""

    counts: dict[str, Counter] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, table: pa.Table, columns: list[str]) -> "TermFrequencyCounts":
        counts = {c: Counter(table[c].drop_null().to_pylist()) for c in columns}
        return cls(counts, {c: sum(n.values()) for c, n in counts.items()})

    def add(self, table: pa.Table) -> None:
        for column, counts in self.counts.items():
            values = table[column].drop_null().to_pylist()
            counts.update(values)
            self.totals[column] += len(values)

    def remove(self, table: pa.Table) -> None:
        for column, counts in self.counts.items():
            values = table[column].drop_null().to_pylist()
            counts.subtract(values)
            self.totals[column] -= len(values)

    def frequencies(self, column: str, values: list[Any], new: list[bool]) -> pa.Array:
        """``tf_<column>`` of ``values``: their share of the column's values, a value of a ``new`` record
        counted once more (as a full run that includes the record counts it); null for a null value."""
        counts, total = self.counts[column], self.totals[column]
        shares = [
            None if v is None else (counts[v] + extra) / (total + extra)
            for v, extra in ((v, int(n)) for v, n in zip(values, new))
        ]
        return pa.array(shares, type=pa.float64())


class ReferenceRecords:
    """The records new records are matched against, with their ``match_id``: the run's Arrow table and
    the added records' (positions count through both, in the order added)."""

    def __init__(self, table: pa.Table, key: str, rules: list[BlockingRule], tf_columns: list[str],
                 connection: duckdb.DuckDBPyConnection) -> None:
        self.key = key
        self.expressions = rule_key_expressions(rules)
        self.unindexed_rules = [i for i, e in enumerate(self.expressions) if e is None]
        self._connection = connection
        self._base: pa.Table | None = None  # the run's records
        self._added: list[pa.Table] = []  # records added since, merged into a few small tables
        self._index: list[dict[tuple, list[int]]] = [{} for _ in self.expressions]
        self._positions: dict[Any, int] = {}
        self._members: dict[Any, list[int]] = {}
        self.frequencies = TermFrequencyCounts.of(table, tf_columns)
        self._add_to_index(table)

    def __len__(self) -> int:
        return len(self._positions)

    def _add_to_index(self, table: pa.Table) -> None:
        start = len(self._positions)
        for offset, (record_id, match_id) in enumerate(zip(table[self.key].to_pylist(), table["match_id"].to_pylist())):
            self._positions[record_id] = start + offset
            self._members.setdefault(match_id, []).append(start + offset)
        for index, expressions in zip(self._index, self.expressions):
            if expressions is None:
                continue
            for offset, key in enumerate(key_tuples(self._connection, table, expressions)):
                if key is not None:
                    index.setdefault(key, []).append(start + offset)
        if self._base is None:
            self._base = table
        else:
            self._added.append(table)
            if len(self._added) > 64:  # keep taking rows cheap: few chunks
                self._added = [pa.concat_tables(self._added).combine_chunks()]

    def add(self, table: pa.Table) -> None:
        """Add matched records (the reference's columns, ``match_id`` set): candidates from now on."""
        self.frequencies.add(table)
        self._add_to_index(table.select(self._base.schema.names).cast(self._base.schema))

    def discard_last(self, count: int) -> None:
        """Take back the last ``count`` added records (when they could not be kept on disk)."""
        if not count:
            return
        added = pa.concat_tables(self._added)
        removed, kept = added.slice(added.num_rows - count), added.slice(0, added.num_rows - count)
        first = len(self._positions) - count
        for record_id, match_id in zip(removed[self.key].to_pylist(), removed["match_id"].to_pylist()):
            del self._positions[record_id]
            self._members[match_id] = [p for p in self._members[match_id] if p < first]
            if not self._members[match_id]:
                del self._members[match_id]
        for index, expressions in zip(self._index, self.expressions):
            if expressions is None:
                continue
            for key in key_tuples(self._connection, removed, expressions):
                if key is not None and key in index:
                    index[key] = [p for p in index[key] if p < first]
                    if not index[key]:
                        del index[key]
        self.frequencies.remove(removed)
        self._added = [kept] if kept.num_rows else []

    def position(self, record_id: Any) -> int | None:
        """A record's position (for :meth:`rows`), None when it is not a reference record."""
        return self._positions.get(record_id)

    def rows(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The records at ``positions`` (sorted), their ``columns`` (default all): taken from the run's
        table and from the added records apart, never from one table of many chunks (slow to take from)."""
        columns = columns or self._base.schema.names
        base = self._base.num_rows
        split = int(np.searchsorted(positions, base))
        parts = [self._base.select(columns).take(positions[:split])]  # select is free, take copies
        if split < len(positions):
            parts.append(pa.concat_tables(self._added).select(columns).take(positions[split:] - base))
        return pa.concat_tables(parts)

    def match_id(self, record_id: Any) -> Any:
        """The entity of a reference record."""
        return self.rows(np.array([self._positions[record_id]]), ["match_id"])["match_id"][0].as_py()

    def members(self, match_id: Any) -> list[int]:
        """The positions of one entity's records (empty when no entity has that id)."""
        return self._members.get(match_id, [])

    @property
    def entity_ids(self) -> Collection[Any]:
        """Every entity's ``match_id``."""
        return self._members.keys()

    def candidates(self, records: pa.Table) -> np.ndarray:
        """The positions of the records some rule's key joins to some record of ``records`` (sorted)."""
        if self.unindexed_rules:
            return np.arange(len(self), dtype=np.int64)
        found: set[int] = set()
        for index, expressions in zip(self._index, self.expressions):
            for key in key_tuples(self._connection, records, expressions):
                if key is not None:
                    found.update(index.get(key, ()))
        return np.fromiter(sorted(found), dtype=np.int64, count=len(found))
