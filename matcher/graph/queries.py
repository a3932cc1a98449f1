"""Questions users ask the identity graph, as Gremlin traversals (no lambdas, so Neptune runs them).

``g`` is a traversal source, e.g. ``traversal().with_remote(connect(config.graph))``.
"""

from __future__ import annotations

import json
from typing import Any

from gremlin_python.process.graph_traversal import __
from gremlin_python.process.traversal import P, Scope, T

from matcher.graph.model import CUSTOMER, IDENTIFIER_EDGES, MEMBER_OF, RECORD, customer_id

SHARED_KINDS = ("Email", "Phone")


def records_of_customer(g, match_id: str) -> list[dict[str, Any]]:
    """Every source record of the customer ``match_id``: id, source, confidence, sorted by id."""
    return (
        g.V(customer_id(str(match_id))).has_label(CUSTOMER).in_(MEMBER_OF).has_label(RECORD)
        .order().by(T.id)
        .project("record_id", "source", "match_confidence_score")
        .by(T.id).by(__.values("source")).by(__.coalesce(__.values("match_confidence_score"), __.constant(None)))
        .to_list()
    )


def customers_sharing_identifiers(g, kinds: tuple[str, ...] = SHARED_KINDS) -> list[dict[str, Any]]:
    """Identifiers (by default emails and phones) that records of two or more customers share:
    ``{"identifier": id, "kind": label, "match_ids": [...]}``, sorted by identifier id."""
    rows = (
        g.V().has_label(*kinds)
        .project("identifier", "kind", "match_ids")
        .by(T.id).by(T.label)
        .by(__.in_(*[IDENTIFIER_EDGES[k] for k in kinds]).out(MEMBER_OF).values("match_id").dedup().order().fold())
        .where(__.select("match_ids").count(Scope.local).is_(P.gt(1)))
        .order().by(__.select("identifier"))
        .to_list()
    )
    return rows


def customers_sharing_with(g, match_id: str, kinds: tuple[str, ...] = SHARED_KINDS) -> list[str]:
    """The other customers (``match_id``s) whose records share an email or phone with ``match_id``'s records."""
    me = customer_id(str(match_id))
    labels = [IDENTIFIER_EDGES[k] for k in kinds]
    return (
        g.V(me).in_(MEMBER_OF).out(*labels).in_(*labels).out(MEMBER_OF).has_id(P.neq(me))
        .dedup().values("match_id").order().to_list()
    )


def cluster_history(g, record_id: str) -> dict[str, Any]:
    """Where a record belongs now and where it was before: ``{"record_id", "match_id",
    "history": [{"match_id", "until"}, ...]}`` (oldest first); None when the record is unknown."""
    rows = (
        g.V(str(record_id)).has_label(RECORD)
        .project("match_id", "history")
        .by(__.out(MEMBER_OF).values("match_id").fold())
        .by(__.values("cluster_history").fold())
        .to_list()
    )
    if not rows:
        return None
    row = rows[0]
    return {
        "record_id": str(record_id),
        "match_id": row["match_id"][0] if row["match_id"] else None,
        "history": json.loads(row["history"][0]) if row["history"] else [],
    }


def snapshot(g) -> tuple[dict[str, dict], dict[str, dict]]:
    """The whole graph as plain data (for checks on small graphs): vertices and edges by id,
    each with its label, properties (and ``from``/``to`` for edges)."""
    vertices = {}
    for row in g.V().project("id", "label", "props").by(T.id).by(T.label).by(__.value_map()).to_list():
        props = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in row["props"].items()}
        vertices[row["id"]] = {"label": row["label"], "properties": props}
    edges = {}
    rows = g.E().project("id", "label", "from", "to", "props").by(T.id).by(T.label) \
        .by(__.out_v().id_()).by(__.in_v().id_()).by(__.value_map()).to_list()
    for row in rows:
        edges[row["id"]] = {"label": row["label"], "from": row["from"], "to": row["to"], "properties": dict(row["props"])}
    return vertices, edges
