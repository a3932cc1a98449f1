"""Scoring a few pairs in a millisecond or two: Splink's prediction SQL, prepared once in DuckDB.

Planning Splink's prediction query (a chain of CTEs, a CASE per comparison level) costs DuckDB
about 12 ms, ten times what running it on a handful of pairs costs. :class:`PairScorer` plans
it once, as a prepared statement over two scratch tables holding only the columns the query
reads, with DuckDB's optimizer switched off (its rewrites pay only on large inputs); each call
refills the tables and executes.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from matcher.matching.driver_scoring import duckdb_connection

_NEW, _CANDIDATES, _INCOMING = "__matcher_serve_new", "__matcher_serve_candidates", "__matcher_serve_incoming"
_SIDE_COLUMN = re.compile(r'(?<![\w.])"?[lr]"?\."?([A-Za-z_]\w*)"?')


def columns_read(sql: str) -> set[str]:
    """The input columns a Splink query reads: every ``l.<column>`` and ``r.<column>`` it names."""
    return set(_SIDE_COLUMN.findall(sql))


class PairScorer:
    """Scores the pairs between new records and candidate records that Splink's rules block."""

    NEW, CANDIDATES = _NEW, _CANDIDATES  # the table names the query must read (``l`` and ``r``)

    def __init__(self, sql: str, schema: pa.Schema) -> None:
        """``sql`` reads tables :attr:`NEW` and :attr:`CANDIDATES`; ``schema`` has the columns both may hold."""
        read = columns_read(sql)
        self.columns = [name for name in schema.names if name in read]
        self._connection: duckdb.DuckDBPyConnection = duckdb_connection()
        self._connection.execute("SET threads = 1")
        self._connection.execute("PRAGMA disable_optimizer")
        # regular tables: DuckDB re-binds a prepared statement whenever a temporary table it reads changes
        for name in (_NEW, _CANDIDATES):
            self._connection.register(_INCOMING, pa.schema([schema.field(c) for c in self.columns]).empty_table())
            self._connection.execute(f"CREATE TABLE {name} AS SELECT * FROM {_INCOMING}")
            self._connection.unregister(_INCOMING)
        self._connection.execute(f"PREPARE score_pairs AS {sql}")

    def _fill(self, name: str, table: pa.Table) -> None:
        self._connection.execute(f"DELETE FROM {name}")
        if table.num_rows:
            self._connection.from_arrow(table.select(self.columns)).insert_into(name)

    def score(self, new: pa.Table, candidates: pa.Table) -> pa.Table:
        """Splink's prediction columns for every blocked pair of ``new`` × ``candidates`` (``_l`` is new)."""
        self._fill(_NEW, new)
        self._fill(_CANDIDATES, candidates)
        return self._connection.sql("EXECUTE score_pairs").to_arrow_table()
