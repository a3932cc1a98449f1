"""Writing clusters to a Gremlin endpoint: batched ``mergeV``/``mergeE``, moves, retries.

:class:`GremlinGraphWriter` upserts whole clusters (see :mod:`matcher.graph.model`). For
each batch it first reads what the graph holds for the batch's records, so it can drop
what no longer holds — a ``member_of`` edge to the customer a record left (the record
*moves*: its ``cluster_history`` gains the old ``match_id``), identifier and ``same_as``
edges that changed — and remove customers and identifiers left without edges. Then it
sends the batch as one traversal per ~``batch_size`` Neptune "records" (a label or a
property each): ``inject(rows).unfold().mergeV(select('s'))`` with ``onCreate`` and
``onMatch`` (single cardinality), then the same for ``mergeE``. Every id is
deterministic, so a rerun matches everything and adds nothing. A batch that fails with a
concurrent-modification conflict or a lost connection is retried from its read, with
exponential backoff and full jitter.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence, TypeVar

from gremlin_python.driver.protocol import GremlinServerError
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.graph_traversal import __
from gremlin_python.process.traversal import CardinalityValue, Direction, Merge, T

from matcher.config.transform import GraphSpec
from matcher.graph.connection import GraphConnectionError, _close, _first_line, connect
from matcher.graph.model import (
    CUSTOMER,
    IDENTIFIER_EDGES,
    MEMBER_OF,
    RECORD,
    SAME_AS,
    Cluster,
    Edge,
    Vertex,
    cluster_elements,
)
from matcher.runtime.errors import GraphError

log = logging.getLogger(__name__)

_RETRYABLE_SERVER_ERRORS = (
    "ConcurrentModification", "Conflict", "TransactionException", "ReadOnlyViolation",
    # TinkerGraph has no transactions: two writers' mergeV of one shared identifier can both find it
    # missing, and the second create fails; the retry's mergeV then finds it (every id is deterministic)
    "with id already exists",
)
_IDENTIFIER_LABELS = tuple(IDENTIFIER_EDGES)
_IDENTIFIER_EDGE_LABELS = frozenset(IDENTIFIER_EDGES.values())
_READ_CHUNK = 1000
R = TypeVar("R")


@dataclass
class WriteCounts:
    """What a writer sent: upserted vertices and edges by label, dropped edges, moves, retries."""

    vertices: Counter = field(default_factory=Counter)
    edges: Counter = field(default_factory=Counter)
    dropped_edges: int = 0
    moved_records: int = 0
    removed_records: int = 0
    requests: int = 0
    retries: int = 0

    def add(self, other: "WriteCounts") -> "WriteCounts":
        self.vertices.update(other.vertices)
        self.edges.update(other.edges)
        for name in ("dropped_edges", "moved_records", "removed_records", "requests", "retries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def elements(self) -> int:
        return sum(self.vertices.values()) + sum(self.edges.values())

    def as_dict(self) -> dict[str, Any]:
        return {"vertices": dict(self.vertices), "edges": dict(self.edges), "elements": self.elements,
                "dropped_edges": self.dropped_edges, "moved_records": self.moved_records,
                "removed_records": self.removed_records, "requests": self.requests, "retries": self.retries}


@dataclass
class _RecordState:
    out_edges: dict[str, tuple[str, str]]  # edge id -> (label, in-vertex id)
    in_same_as: set[str]
    match_id: str | None
    history: str | None


def _cost(element: Vertex | Edge) -> int:
    """Neptune counts a label and each property as one "record" of a request."""
    return 1 + len(element.properties)


def _vertex_row(v: Vertex, extra: dict[str, Any] | None = None, *, update: bool = True) -> dict:
    """A ``mergeV`` row: search by id and label, create with the properties, and on a match set
    them with single cardinality — unless ``update`` is False (nothing to update: the vertex is
    new, or its properties follow from its id), which spares serializing them twice."""
    props = {**v.properties, **(extra or {})}
    on_match = {k: CardinalityValue.single(x) for k, x in props.items()} if update else {}
    return {"s": {T.id: v.id, T.label: v.label}, "c": props, "m": on_match}


def _edge_row(e: Edge, *, update: bool = True) -> dict:
    return {"s": {T.id: e.id, T.label: e.label, Direction.OUT: e.out_id, Direction.IN: e.in_id},
            "c": dict(e.properties), "m": dict(e.properties) if update else {}}


class GremlinGraphWriter:
    """Upserts clusters and removes records through one connection (a context manager)."""

    def __init__(self, spec: GraphSpec, *, salt: str | None = None, sleep: Callable[[float], None] = time.sleep):
        self.spec = spec
        self.salt = salt
        self.counts = WriteCounts()
        self._sleep = sleep
        self._connection = None

    def __enter__(self) -> "GremlinGraphWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            _close(self._connection)
            self._connection = None

    @property
    def g(self):
        if self._connection is None:
            self._connection = connect(self.spec)
        return traversal().with_remote(self._connection)

    # --- public operations -----------------------------------------------------------
    def write_clusters(self, clusters: Iterable[Cluster]) -> WriteCounts:
        """Upsert every cluster (whole: all its records), batching about ``batch_size`` records per request."""
        pending: list[tuple[Cluster, list[Vertex], list[Edge]]] = []
        cost = 0
        for cluster in clusters:
            vertices, edges = cluster_elements(cluster, salt=self.salt, same_as=self.spec.same_as)
            pending.append((cluster, vertices, edges))
            cost += sum(map(_cost, vertices)) + sum(map(_cost, edges))
            if cost >= self.spec.batch_size:
                self._with_retries(lambda items=pending: self._write_batch(items))
                pending, cost = [], 0
        if pending:
            self._with_retries(lambda: self._write_batch(pending))
        return self.counts

    def remove_records(self, record_ids: Sequence[str]) -> WriteCounts:
        """Drop these SourceRecord vertices with their edges, then customers and identifiers left empty."""
        ids = sorted(set(map(str, record_ids)))
        for start in range(0, len(ids), _READ_CHUNK):
            self._with_retries(lambda chunk=ids[start:start + _READ_CHUNK]: self._remove_batch(chunk))
        return self.counts

    # --- one batch ---------------------------------------------------------------------
    def _write_batch(self, items: list[tuple[Cluster, list[Vertex], list[Edge]]]) -> None:
        records = [r.record_id for cluster, _, _ in items for r in cluster.records]
        state = self._read_state(records)
        new_edges: dict[str, set[str]] = {}
        for _, _, edges in items:
            for e in edges:
                new_edges.setdefault(e.out_id, set()).add(e.id)
                if e.label == SAME_AS:
                    new_edges.setdefault(e.in_id, set()).add(e.id)
        stale: set[str] = set()
        emptied: set[str] = set()
        history: dict[str, str] = {}
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for record_id, st in state.items():
            keep = new_edges.get(record_id, set())
            for eid, (label, in_id) in st.out_edges.items():
                if eid in keep:
                    continue
                stale.add(eid)
                emptied.add(in_id)
                if label == MEMBER_OF:
                    past = json.loads(st.history) if st.history else []
                    past.append({"match_id": st.match_id, "until": now})
                    history[record_id] = json.dumps(past)
            stale.update(eid for eid in st.in_same_as if eid not in keep)
        vertices = [v for _, vs, _ in items for v in vs]
        edges = [e for _, _, es in items for e in es]
        self.counts.vertices.update(v.label for v in vertices)
        self.counts.edges.update(e.label for e in edges)
        # identifier edges carry no properties: one that exists already needs no write
        edges = [e for e in edges if not (e.label in _IDENTIFIER_EDGE_LABELS and e.out_id in state
                                          and e.id in state[e.out_id].out_edges)]
        owners = sorted(r for r, st in state.items() if (set(st.out_edges) | st.in_same_as) & stale)
        drops = (sorted(stale), owners, sorted(emptied))
        updates = {v.id for v in vertices if v.label == CUSTOMER or (v.label == RECORD and v.id in state)}
        first = True
        for chunk in self._chunks(vertices, edges):
            self._send(chunk, history, drops if first else None, updates, set(state))
            first = False
        self.counts.dropped_edges += len(stale)
        self.counts.moved_records += len(history)

    def _chunks(self, vertices: list[Vertex], edges: list[Edge]) -> Iterable[tuple[list[Vertex], list[Edge]]]:
        """Consecutive slices of about ``batch_size`` records; vertices go before the edges that need them."""
        chunk_v: list[Vertex] = []
        chunk_e: list[Edge] = []
        cost = 0
        for element in [*vertices, *edges]:
            (chunk_v if isinstance(element, Vertex) else chunk_e).append(element)
            cost += _cost(element)
            if cost >= self.spec.batch_size:
                yield chunk_v, chunk_e
                chunk_v, chunk_e, cost = [], [], 0
        if chunk_v or chunk_e:
            yield chunk_v, chunk_e

    def _send(self, chunk: tuple[list[Vertex], list[Edge]], history: dict[str, str],
              drops: tuple[list[str], list[str], list[str]] | None, updates: set[str], existing: set[str]) -> None:
        vertices, edges = chunk
        t = self.g.inject(0)
        if drops and drops[0]:
            stale, owners, emptied = drops
            t = t.side_effect(__.V(*owners).both_e().has_id(*stale).drop())
            t = t.side_effect(__.V(*emptied).has_label(CUSTOMER).not_(__.in_e(MEMBER_OF)).drop())
            t = t.side_effect(__.V(*emptied).has_label(*_IDENTIFIER_LABELS).not_(__.in_e()).drop())
        if vertices:
            rows = [_vertex_row(v, {"cluster_history": history[v.id]} if v.id in history else None, update=v.id in updates)
                    for v in vertices]
            t = t.side_effect(__.constant(rows).unfold().merge_v(__.select("s"))
                              .option(Merge.on_create, __.select("c")).option(Merge.on_match, __.select("m")))
        if edges:
            # an edge from a record new to the graph is new: nothing to update on a match
            rows = [_edge_row(e, update=e.out_id in existing or e.in_id in existing) for e in edges]
            t = t.side_effect(__.constant(rows).unfold().merge_e(__.select("s"))
                              .option(Merge.on_create, __.select("c")).option(Merge.on_match, __.select("m")))
        t.iterate()
        self.counts.requests += 1

    def _read_state(self, record_ids: list[str]) -> dict[str, _RecordState]:
        state: dict[str, _RecordState] = {}
        for start in range(0, len(record_ids), _READ_CHUNK):
            chunk = record_ids[start:start + _READ_CHUNK]
            rows = (
                self.g.V(*chunk).has_label(RECORD)
                .project("id", "out", "same", "match_id", "history")
                .by(T.id)
                .by(__.out_e().project("e", "l", "v").by(T.id).by(T.label).by(__.in_v().id_()).fold())
                .by(__.in_e(SAME_AS).id_().fold())
                .by(__.out(MEMBER_OF).values("match_id").fold())
                .by(__.values("cluster_history").fold())
                .to_list()
            )
            self.counts.requests += 1
            for row in rows:
                state[row["id"]] = _RecordState(
                    out_edges={e["e"]: (e["l"], e["v"]) for e in row["out"]},
                    in_same_as=set(row["same"]),
                    match_id=row["match_id"][0] if row["match_id"] else None,
                    history=row["history"][0] if row["history"] else None,
                )
        return state

    def _remove_batch(self, record_ids: list[str]) -> None:
        state = self._read_state(record_ids)
        if not state:
            return
        neighbours = sorted({in_id for st in state.values() for _, in_id in st.out_edges.values()})
        (
            self.g.inject(0)
            .side_effect(__.V(*state).has_label(RECORD).drop())
            .side_effect(__.V(*neighbours).has_label(CUSTOMER).not_(__.in_e(MEMBER_OF)).drop())
            .side_effect(__.V(*neighbours).has_label(*_IDENTIFIER_LABELS).not_(__.in_e()).drop())
            .iterate()
        ) if neighbours else self.g.V(*state).has_label(RECORD).drop().iterate()
        self.counts.requests += 1
        self.counts.removed_records += len(state)

    # --- retries -----------------------------------------------------------------------
    def _with_retries(self, action: Callable[[], R]) -> R:
        attempt = 0
        while True:
            try:
                return action()
            except GremlinServerError as err:
                if not any(word in str(err) for word in _RETRYABLE_SERVER_ERRORS):
                    raise GraphError(f"{self.spec.endpoint}: the server refused a write ({_first_line(err)})") from err
                reason, error = "concurrent modification", err
            except GraphError as err:
                if not isinstance(err, GraphConnectionError):
                    raise
                self.close()
                reason, error = "cannot connect", err
            except Exception as err:  # noqa: BLE001 - aiohttp, asyncio and OS errors: the connection is gone
                self.close()
                reason, error = f"connection lost ({type(err).__name__})", err
            if attempt >= self.spec.max_retries:
                raise GraphError(f"{self.spec.endpoint}: {reason}, still failing after {attempt} retries "
                                 f"({_first_line(error)})") from error
            delay = random.uniform(0, min(10.0, 0.2 * 2 ** attempt))
            attempt += 1
            self.counts.retries += 1
            log.warning("graph write: %s; retry %d/%d in %.2f s", reason, attempt, self.spec.max_retries, delay)
            self._sleep(delay)


def graph_totals(spec: GraphSpec) -> dict[str, dict[str, int]]:
    """Vertex and edge counts by label in the whole graph (one full scan each)."""
    connection = connect(spec)
    try:
        g = traversal().with_remote(connection)
        vertices = g.V().group_count().by(T.label).next()
        edges = g.E().group_count().by(T.label).next()
    finally:
        _close(connection)
    return {"vertices": dict(sorted(vertices.items())), "edges": dict(sorted(edges.items()))}
