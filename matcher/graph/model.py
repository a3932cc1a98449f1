"""The identity graph's model: which vertices and edges a match cluster becomes (docs/graph.md).

Pure Python, no Spark and no Gremlin: a :class:`Cluster` (one ``match_id`` with its
records, its above-threshold pairs and its golden profile) becomes :class:`Vertex` and
:class:`Edge` values with deterministic string ids, so the Gremlin writer and the Neptune
bulk-loader CSV describe the same graph and a rerun writes the same ids.

* ``Customer`` ``customer:<match_id>``: the golden profile (or ``size`` and
  ``confidence`` when no ``customers`` output exists), ``match_id``.
* ``SourceRecord`` ``<record id>``: ``record_id``, ``source``, ``match_id``,
  ``match_confidence_score`` (and ``cluster_history`` once it moved, see the writer).
* ``Email`` / ``Phone`` / ``Address`` ``email:<key>``...: one per normalized value; the
  key is the value itself, or ``HMAC-SHA256(salt, value)`` when identifiers are hashed.
* ``member_of`` record → customer (``confidence``), ``has_email`` / ``has_phone`` /
  ``has_address`` record → identifier, ``same_as`` record → record (``probability``),
  each with the id ``<from>|<label>|<to>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from matcher.config.transform import ComparisonKind, TransformConfig

CUSTOMER, RECORD = "Customer", "SourceRecord"
MEMBER_OF, SAME_AS = "member_of", "same_as"
IDENTIFIER_LABELS = {ComparisonKind.email: "Email", ComparisonKind.phone: "Phone", ComparisonKind.postcode: "Address"}
IDENTIFIER_EDGES = {"Email": "has_email", "Phone": "has_phone", "Address": "has_address"}


@dataclass(frozen=True)
class Vertex:
    id: str
    label: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    id: str
    label: str
    out_id: str
    in_id: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """One input row as the graph sees it: ids, confidence and its raw identifier values by label."""

    record_id: str
    source: str
    confidence: float | None
    identifiers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Cluster:
    """One ``match_id``: its records, its ``same_as`` pairs ``(l, r, probability)`` and profile."""

    match_id: str
    records: tuple[Record, ...]
    links: tuple[tuple[str, str, float], ...] = ()
    profile: dict[str, Any] | None = None


def identifier_columns(config: TransformConfig) -> list[tuple[str, str]]:
    """``(column, vertex label)`` for every matching column that identifies a person:
    email-, phone- and postcode-kind columns, and text columns named like ``*address*``."""
    found = []
    for column in config.columns:
        label = IDENTIFIER_LABELS.get(column.kind)
        if label is None and column.kind == ComparisonKind.text and "address" in column.name.lower():
            label = "Address"
        if label is not None:
            found.append((column.name, label))
    return found


def normalize_identifier(label: str, value: Any) -> str | None:
    """The comparable form of an identifier: emails lower-cased, phones as digits,
    addresses upper-cased with single spaces (postcodes without spaces); None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    if label == "Email":
        text = text.lower()
    elif label == "Phone":
        text = re.sub(r"\D", "", text)
    else:
        text = " ".join(text.upper().split())
        if re.fullmatch(r"[A-Z0-9]{1,4} ?[A-Z0-9]{1,4}", text):
            text = text.replace(" ", "")
    return text or None


def identifier_key(label: str, normalized: str, salt: str | None) -> str:
    """The value in the identifier's id: the normalized value, or its salted HMAC-SHA256."""
    if salt is None:
        return normalized
    return hmac.new(salt.encode("utf-8"), f"{label}:{normalized}".encode("utf-8"), hashlib.sha256).hexdigest()


def customer_id(match_id: str) -> str:
    return f"customer:{match_id}"


def identifier_id(label: str, key: str) -> str:
    return f"{label.lower()}:{key}"


def edge_id(out_id: str, label: str, in_id: str) -> str:
    return f"{out_id}|{label}|{in_id}"


def _clean(properties: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in properties.items() if v is not None}


def cluster_elements(cluster: Cluster, *, salt: str | None = None, same_as: bool = True) -> tuple[list[Vertex], list[Edge]]:
    """The vertices and edges of one cluster, vertices before the edges that need them.

    Identifier vertices shared by several clusters come out of each of them, with the
    same id and properties, so writing them twice changes nothing.
    """
    cid = customer_id(cluster.match_id)
    if cluster.profile is not None:
        profile = {k: v for k, v in cluster.profile.items() if k != "match_id"}
    else:
        scores = [r.confidence for r in cluster.records if r.confidence is not None]
        profile = {"size": len(cluster.records), "confidence": min(scores) if scores else None}
    vertices = [Vertex(cid, CUSTOMER, _clean({"match_id": cluster.match_id, **profile}))]
    edges: list[Edge] = []
    identifiers: dict[str, Vertex] = {}
    seen: set[str] = set()
    for record in sorted(cluster.records, key=lambda r: r.record_id):
        vertices.append(Vertex(record.record_id, RECORD, _clean({
            "record_id": record.record_id, "source": record.source,
            "match_id": cluster.match_id, "match_confidence_score": record.confidence,
        })))
        edges.append(Edge(edge_id(record.record_id, MEMBER_OF, cid), MEMBER_OF, record.record_id, cid,
                          _clean({"confidence": record.confidence})))
        for label, value in record.identifiers:
            normalized = normalize_identifier(label, value)
            if normalized is None:
                continue
            key = identifier_key(label, normalized, salt)
            vid = identifier_id(label, key)
            if vid not in identifiers:
                identifiers[vid] = Vertex(vid, label, {"hashed": True} if salt is not None else {"value": normalized})
            edge = Edge(edge_id(record.record_id, IDENTIFIER_EDGES[label], vid), IDENTIFIER_EDGES[label], record.record_id, vid)
            if edge.id not in seen:
                seen.add(edge.id)
                edges.append(edge)
    if same_as:
        for left, right, probability in sorted(cluster.links):
            left, right = sorted((left, right))
            edges.append(Edge(edge_id(left, SAME_AS, right), SAME_AS, left, right, {"probability": probability}))
    return vertices + sorted(identifiers.values(), key=lambda v: v.id), edges


def graph_of(clusters: Iterable[Cluster], *, salt: str | None = None, same_as: bool = True) -> tuple[dict[str, Vertex], dict[str, Edge]]:
    """The whole graph of some clusters, by id (shared identifier vertices once)."""
    vertices: dict[str, Vertex] = {}
    edges: dict[str, Edge] = {}
    for cluster in clusters:
        vs, es = cluster_elements(cluster, salt=salt, same_as=same_as)
        vertices.update((v.id, v) for v in vs)
        edges.update((e.id, e) for e in es)
    return vertices, edges
