"""Connected components of the match graph, with deterministic cluster ids.

The edges above the threshold are collected to the driver (two id columns through
Arrow) and labelled with scipy's sparse connected components; this is linear in the
number of edges and avoids Splink's one-Spark-job-per-iteration clustering. A cluster's
``match_id`` is its smallest record id, so the same input always gives the same ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def cluster_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """Label the components of an edge list (columns ``id_l``, ``id_r``).

    Returns one row per record that has at least one edge: ``record_id`` and
    ``match_id``, the smallest record id in its component.
    """
    if edges.empty:
        return pd.DataFrame({"record_id": edges["id_l"].iloc[:0], "match_id": edges["id_l"].iloc[:0]})
    codes, uniques = pd.factorize(pd.concat([edges["id_l"], edges["id_r"]], ignore_index=True), sort=True)
    n = len(uniques)
    half = len(edges)
    graph = coo_matrix((np.ones(half, dtype=np.int8), (codes[:half], codes[half:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # uniques are sorted, so the first code seen per label is the component's smallest id
    smallest = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    return pd.DataFrame({"record_id": uniques, "match_id": uniques[smallest]})


def clusters_from_pairs(
    pairs: DataFrame,
    threshold: float,
    *,
    must_link: pd.DataFrame | None = None,
    cannot_link: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cluster the scored pairs (``record_id_l``, ``record_id_r``) whose ``match_probability`` reaches ``threshold``.

    With ``must_link`` / ``cannot_link`` (``id_l``, ``id_r``) the clusters respect them
    (:func:`cluster_with_constraints`).
    """
    edges = pairs.where(pairs["match_probability"] >= threshold)
    if must_link is None and cannot_link is None:
        edges = edges.select(F.col("record_id_l").alias("id_l"), F.col("record_id_r").alias("id_r")).toPandas()
        return cluster_edges(edges)
    edges = edges.select(
        F.col("record_id_l").alias("id_l"), F.col("record_id_r").alias("id_r"), F.col("match_probability").alias("weight")
    ).toPandas()
    empty = pd.DataFrame({"id_l": edges["id_l"].iloc[:0], "id_r": edges["id_r"].iloc[:0]})
    return cluster_with_constraints(
        edges, must_link if must_link is not None else empty, cannot_link if cannot_link is not None else empty
    )


def _find(parent: dict, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def cluster_with_constraints(edges: pd.DataFrame, must_link: pd.DataFrame, cannot_link: pd.DataFrame) -> pd.DataFrame:
    """Connected components of ``edges`` plus ``must_link``, split so that no ``cannot_link`` pair shares one.

    ``edges`` has ``id_l``, ``id_r`` and ``weight`` (e.g. the match probability);
    ``must_link`` and ``cannot_link`` have ``id_l`` and ``id_r``. Returns ``record_id`` and
    ``match_id`` (smallest id of the cluster) for every record on an edge or a must-link.

    How a cannot-link splits a cluster: within a component holding a cannot-link pair,
    links are accepted strongest first (must-links before any scored edge, then by
    weight, ties by ids) and a link is dropped when accepting it would put a
    cannot-link pair in one cluster. The pair is therefore separated at the weakest
    link of the strongest path between them (the bottleneck of the maximum spanning
    tree) and every other link that would rejoin the two sides is dropped too.
    Components without a cannot-link pair are exactly the connected components. A
    must-link chain joining a cannot-link pair is a contradiction:
    :class:`~matcher.errors.InputDataError` names the pair.
    """
    from matcher.errors import InputDataError

    must = must_link.assign(weight=np.inf)[["id_l", "id_r", "weight"]]
    every = pd.concat([must, edges[["id_l", "id_r", "weight"]]], ignore_index=True)
    if every.empty:
        return cluster_edges(every)
    plain = cluster_edges(every)
    component = dict(zip(plain["record_id"], plain["match_id"]))
    split = {component[a] for a, b in zip(cannot_link["id_l"], cannot_link["id_r"])
             if a in component and b in component and component[a] == component[b]}
    if not split:
        return plain
    forbidden: dict = {}
    for a, b in zip(cannot_link["id_l"], cannot_link["id_r"]):
        forbidden.setdefault(a, set()).add(b)
        forbidden.setdefault(b, set()).add(a)
    inside = every[every["id_l"].map(component).isin(split)]
    inside = inside.sort_values(["weight", "id_l", "id_r"], ascending=[False, True, True], kind="stable")
    ids = pd.unique(pd.concat([inside["id_l"], inside["id_r"]]))
    parent = {x: x for x in ids}
    members = {x: {x} for x in ids}
    barred = {x: set(forbidden.get(x, ())) for x in ids}
    for a, b, weight in inside.itertuples(index=False):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra == rb:
            continue
        if not barred[ra].isdisjoint(members[rb]):
            if weight == np.inf:
                pair = next((x, y) for x in members[ra] for y in barred[x] & members[rb])
                raise InputDataError(
                    f"enforced matches contradict each other: must-links (or exact rules) join cannot-link pair {pair[0]}~{pair[1]}"
                )
            continue
        if len(members[ra]) < len(members[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        members[ra] |= members.pop(rb)
        barred[ra] |= barred.pop(rb)
    roots = {x: _find(parent, x) for x in ids}
    smallest = {root: min(group) for root, group in members.items()}
    resplit = pd.DataFrame({"record_id": list(roots), "match_id": [smallest[r] for r in roots.values()]})
    kept = plain[~plain["match_id"].isin(split)]
    return pd.concat([kept, resplit], ignore_index=True).sort_values("record_id", ignore_index=True)
