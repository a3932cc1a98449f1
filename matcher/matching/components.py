"""The match graph clustered on the executors: nothing proportional to the pairs reaches the driver.

Connected components (:func:`link_components`): the alternating large-star / small-star
algorithm (Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014)
rewires the links, each round, towards the smallest id of their neighbourhood, until every
component is a star around its smallest id: O(log² n) rounds in the worst case, and a few
on match graphs, whose components are small. After each round the stars that are whole
components already are set aside, and each round is checkpointed, so the plan stays one
round deep however many rounds it takes. Once at most :data:`DRIVER_EDGES` links are left
unfinished, the driver finds their components in one scipy call instead of more rounds.

Clustering (:func:`cluster_components`): every component is hashed to a bucket, and one
pandas call per bucket runs the method of :mod:`matcher.matching.clustering` on the scored
pairs inside its components. A graph of at most :data:`ONE_BUCKET_PAIRS` scored pairs skips
both steps: one pandas call in the driver clusters it whole.
"""

from __future__ import annotations

import logging
import math
from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from matcher.blocking.candidates import free_checkpoint
from matcher.config.base import RECORD_ID
from matcher.config.transform import ClusteringSpec
from matcher.matching.clustering import (
    cluster_by_average_link,
    cluster_edges,
    cluster_with_constraints,
    refuse_contradictions,
)
from matcher.matching.entities import python_value, with_entity_facts
from matcher.runtime.session import broadcasts_allowed

log = logging.getLogger(__name__)

MAX_ROUNDS = 60
"""Rounds after which the algorithm is taken to be broken (it needs O(log² n))."""
BUCKET_RECORDS = 25_000
"""About how many records of whole components one Python call on an executor clusters. A Python
worker keeps the memory of its largest call: at 1,000,000 generated records each of the two
peaked at 0.23-0.24 GB (PSS) with 25,000 and 0.34-0.42 GB with 100,000 (same clusters, about as fast)."""
BROADCAST_COMPONENT_RECORDS = 1_000_000
"""Records on links up to which every task reads the record → component table whole (a broadcast of
tens of MB) to find the component of each pair's two records, instead of shuffling and sorting every
scored pair once per end: at 1,000,000 generated records (527,145 records on links, 6,107,253 scored
pairs) the run's clustering stage took 41.7 and 50.5 s instead of 52.0 and 57.0 s (bench/README.md,
"Pairs without the compared values, components looked up")."""
DRIVER_EDGES = 200_000
"""Links up to which the driver finds the components left, in one scipy call (a bounded collection
of an estimated 10 MB of Arrow), instead of another large-star / small-star round: at 1,000,000
generated records the first round left 53,783 of 1,352,652 links unfinished, and four more rounds
took 7.6 s warm."""
ONE_BUCKET_PAIRS = 500_000
"""Scored pairs up to which the graph is clustered in one pandas call in the driver, without the
search for components: a bounded collection (an estimated 20 MB of Arrow), whatever the data's size."""


def _edge_ends() -> list[F.Column]:
    """The two record ids of a scored pair as an edge's ``id_l`` and ``id_r``."""
    return [F.col(f"{RECORD_ID}_l").alias("id_l"), F.col(f"{RECORD_ID}_r").alias("id_r")]


def _both_ways(edges: DataFrame) -> DataFrame:
    """Each undirected edge ``(a, b)`` as ``u`` → ``v`` in both directions."""
    return edges.select(F.col("a").alias("u"), F.col("b").alias("v")).unionByName(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v"))
    )


def _undirected(u: F.Column, v: F.Column) -> list[F.Column]:
    return [F.least(u, v).alias("a"), F.greatest(u, v).alias("b")]


def _large_star(edges: DataFrame) -> DataFrame:
    """Every neighbour larger than ``u`` is rewired to the smallest id around ``u`` (``u`` included)."""
    arcs = _both_ways(edges).withColumn("m", F.least(F.min("v").over(Window.partitionBy("u")), F.col("u")))
    return arcs.where(F.col("v") > F.col("u")).select(*_undirected(F.col("v"), F.col("m"))).distinct()


def _small_star(edges: DataFrame) -> DataFrame:
    """``u`` and its smaller neighbours are rewired to the smallest of them."""
    down = _both_ways(edges).where(F.col("v") < F.col("u")).withColumn("m", F.min("v").over(Window.partitionBy("u")))
    ends = F.explode(F.array(*(F.struct(F.col(x).alias("x"), F.col("m").alias("y")) for x in ("v", "u"))))
    rewired = down.select(ends.alias("e")).select("e.x", "e.y").where(F.col("x") != F.col("y"))
    return rewired.select(*_undirected(F.col("x"), F.col("y"))).distinct()


def _mark_unfinished(edges: DataFrame) -> DataFrame:
    """``edges`` with ``unfinished``: false on the stars that are whole components already.

    A centre ``a``'s star is a whole component unless ``a`` is someone's leaf, one of its
    leaves has another centre, or one of its leaves is a centre: the only ways an edge can
    leave the star. Every edge of such a centre is unfinished, so they hold whole components.
    """
    leaves = edges.groupBy("b").agg(F.count("*").alias("centres"))
    both = edges.select("a").distinct().join(leaves.select(F.col("b").alias("a")), "a", "left_semi")
    joining = leaves.where(F.col("centres") > 1).select("b").unionByName(both.select(F.col("a").alias("b")))
    unfinished = edges.join(joining, "b", "left_semi").select("a").unionByName(both).distinct()
    return edges.join(unfinished.withColumn("unfinished", F.lit(True)), "a", "left").fillna(False, ["unfinished"])


def link_components(links: DataFrame) -> DataFrame:
    """``record_id`` and ``component`` (the smallest record id it is connected to) of every
    record on one of ``links`` (``id_l``, ``id_r``; both ends of one type), as a local
    checkpoint: free it (:func:`~matcher.blocking.candidates.free_checkpoint`) when done.

    After each round the stars that are whole components are set aside (:func:`_mark_unfinished`),
    so the later rounds rewire only the few components still unfinished; once they hold at
    most :data:`DRIVER_EDGES` links, the driver finishes them (:func:`_stars_in_driver`).
    """
    edges = links.where(F.col("id_l") != F.col("id_r")).select(*_undirected(F.col("id_l"), F.col("id_r"))).distinct()
    edges = edges.localCheckpoint(eager=True)
    rounds: list[DataFrame] = []  # each round's edges, marked
    while edges.limit(DRIVER_EDGES + 1).count() > DRIVER_EDGES:
        if len(rounds) == MAX_ROUNDS:
            raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
        rewired = _small_star(_large_star(edges)).localCheckpoint(eager=True)
        free_checkpoint(edges)
        rounds.append(_mark_unfinished(rewired).localCheckpoint(eager=True))
        free_checkpoint(rewired)
        edges = rounds[-1].where("unfinished").select("a", "b")
    log.debug("connected components in %d large/small-star rounds, then the driver", len(rounds))
    rounds.append(_stars_in_driver(edges))
    free_checkpoint(edges)
    stars = rounds[0]
    for more in rounds[1:]:
        stars = stars.unionByName(more)
    stars = stars.where(~F.col("unfinished"))
    centres = stars.select(F.col("a").alias(RECORD_ID), F.col("a").alias("component")).distinct()
    components = stars.select(F.col("b").alias(RECORD_ID), F.col("a").alias("component")).unionByName(centres)
    components = components.localCheckpoint(eager=True)
    for marked in rounds:
        free_checkpoint(marked)
    return components


def _stars_in_driver(edges: DataFrame) -> DataFrame:
    """The components of a few ``edges`` (``a``, ``b``) found in one scipy call in the driver, as
    finished stars (``a`` the smallest id, ``b`` each other member, ``unfinished`` false)."""
    found = cluster_edges(edges.toPandas().rename(columns={"a": "id_l", "b": "id_r"}))
    leaves = found[found[RECORD_ID] != found["match_id"]]
    stars = pd.DataFrame({"a": leaves["match_id"].to_numpy(), "b": leaves[RECORD_ID].to_numpy(), "unfinished": False})
    id_type = edges.schema["a"].dataType.simpleString()
    return edges.sparkSession.createDataFrame(stars, f"a {id_type}, b {id_type}, unfinished boolean")


def links_frame(pairs: DataFrame, threshold: float, must_link: pd.DataFrame | None = None) -> DataFrame:
    """``id_l``, ``id_r`` of the scored pairs at or above ``threshold``, plus the ``must_link`` pairs."""
    links = pairs.where(pairs["match_probability"] >= threshold).select(*_edge_ends())
    if must_link is not None and len(must_link):
        links = links.unionByName(_id_pairs(pairs, must_link))
    return links


def _id_pairs(pairs: DataFrame, id_pairs: pd.DataFrame, flag: str | None = None) -> DataFrame:
    """``id_pairs`` (``id_l``, ``id_r``, and the boolean column ``flag`` when named) as a DataFrame
    with the record ids' type of ``pairs``."""
    id_type = pairs.schema[f"{RECORD_ID}_l"].dataType.simpleString()
    columns = [id_pairs["id_l"], id_pairs["id_r"], *([id_pairs[flag]] if flag else [])]
    rows = [(python_value(a), python_value(b), *(bool(f) for f in rest)) for a, b, *rest in zip(*columns)]
    return pairs.sparkSession.createDataFrame(rows, f"id_l {id_type}, id_r {id_type}" + (f", {flag} boolean" if flag else ""))


def _looked_up(components: DataFrame, broadcast: bool) -> DataFrame:
    """``components`` as the small side of a join: marked for broadcast when ``broadcast``."""
    return F.broadcast(components) if broadcast else components


def broadcastable(table: DataFrame, records: int) -> bool:
    """Whether a per-record ``table`` of ``records`` rows fits a broadcast (:data:`BROADCAST_COMPONENT_RECORDS`):
    the components here, the matches' lookup of clusters and best probabilities in
    :func:`~matcher.matching.matches.assign_matches`; never when the session turned broadcasts off
    (``spark.sql.autoBroadcastJoinThreshold`` -1)."""
    return broadcasts_allowed(table.sparkSession) and records <= BROADCAST_COMPONENT_RECORDS


def _inside(frame: DataFrame, components: DataFrame, broadcast: bool = False) -> DataFrame:
    """The rows of ``frame`` whose ``id_l`` and ``id_r`` share one of the ``components``, with its ``component``
    (``broadcast``: the components are looked up in a broadcast table, see :func:`broadcastable`)."""
    left, right = (_looked_up(components.select(F.col(RECORD_ID).alias(end), F.col("component").alias(f"_c{end}")), broadcast)
                   for end in ("id_l", "id_r"))
    inside = frame.join(left, "id_l").join(right, "id_r").where(F.col("_cid_l") == F.col("_cid_r"))
    return inside.select(*frame.columns, F.col("_cid_l").alias("component"))


def component_pairs(pairs: DataFrame, threshold: float, components: DataFrame | None = None, broadcast: bool = False) -> DataFrame:
    """The scored pairs whose two records share one of the ``components`` (:func:`link_components`):
    ``id_l``, ``id_r``, ``weight`` (``match_weight``), ``probability``, ``link`` (at or above
    ``threshold``) and ``component``; every pair average link can weigh, and nothing else.
    Without ``components``, every scored pair (and no ``component``). ``broadcast``: see :func:`_inside`."""
    scored = pairs.select(
        *_edge_ends(), F.col("match_weight").alias("weight"), F.col("match_probability").alias("probability"),
        (F.col("match_probability") >= threshold).alias("link"),
    )
    return scored if components is None else _inside(scored, components, broadcast)


def cluster_components(
    pairs: DataFrame, threshold: float, spec: ClusteringSpec,
    must_link: pd.DataFrame | None = None, cannot_link: pd.DataFrame | None = None,
) -> DataFrame:
    """Cluster the scored ``pairs`` on the executors (a small graph in the driver), as a local
    checkpoint (free it when done).

    Returns ``record_id``, ``match_id`` (the smallest id of its cluster), ``strongest``
    (average link's, see :func:`~matcher.matching.clustering.cluster_by_average_link`; NaN
    otherwise), and the cluster's ``size`` and ``linked`` (links inside it, see
    :func:`~matcher.matching.entities.with_entity_facts`) of every record on a link: a pair
    at or above ``threshold`` or a ``must_link`` pair. The clustering runs in one pandas call per
    bucket of whole components (about :data:`BUCKET_RECORDS` records), which gives the clusters
    it gives on the whole graph: no method ever merges across a component. A graph of at most
    :data:`ONE_BUCKET_PAIRS` scored pairs is clustered in one call in the driver instead. A
    must-link chain joining a ``cannot_link`` pair is refused first, on the driver.
    """
    must = must_link if must_link is not None and len(must_link) else None
    cannot = cannot_link if cannot_link is not None and len(cannot_link) else None
    if must is not None and cannot is not None:
        refuse_contradictions(must, cannot)
    id_type = pairs.schema[f"{RECORD_ID}_l"].dataType.simpleString()
    schema = f"{RECORD_ID} {id_type}, match_id {id_type}, strongest double, size long, linked long"
    above = pairs.where(pairs["match_probability"] >= threshold)
    link_edges = above.select(*_edge_ends(), F.col("match_probability").alias("weight"), F.lit(True).alias("link"))
    cluster = partial(
        _cluster_bucket, average_link=spec.method == "average_link",
        min_mean_weight=spec.min_mean_weight, unscored_pair_weight=spec.unscored_pair_weight,
    )
    if pairs.limit(ONE_BUCKET_PAIRS + 1).count() <= ONE_BUCKET_PAIRS:
        # a bounded graph: one pandas call in the driver finds the components itself
        edges = component_pairs(pairs, threshold) if spec.method == "average_link" else link_edges
        edges = edges.toPandas()
        ids = {"id_l": edges["id_l"].dtype, "id_r": edges["id_r"].dtype}
        members = cluster(edges, _constraint_rows(must, cannot).astype(ids))
        return pairs.sparkSession.createDataFrame(members, schema).localCheckpoint(eager=True)
    components = link_components(links_frame(pairs, threshold, must))
    partitions = int(pairs.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    records = components.count()
    buckets = max(partitions, math.ceil(records / BUCKET_RECORDS))
    bucket = F.pmod(F.xxhash64("component"), F.lit(buckets)).alias("_bucket")
    broadcast = broadcastable(components, records)
    if spec.method == "average_link":
        edges = component_pairs(pairs, threshold, components, broadcast)
    else:  # a link's two records share its component: one join finds it
        edges = link_edges.join(_looked_up(components.select(F.col(RECORD_ID).alias("id_l"), "component"), broadcast), "id_l")
    constraints = _inside(_id_pairs(pairs, _constraint_rows(must, cannot), "must"), components, broadcast).select("*", bucket)
    members = edges.select("*", bucket).groupBy("_bucket").cogroup(constraints.groupBy("_bucket")).applyInPandas(
        cluster, schema
    ).localCheckpoint(eager=True)
    free_checkpoint(components)
    return members


def _constraint_rows(must: pd.DataFrame | None, cannot: pd.DataFrame | None) -> pd.DataFrame:
    """``id_l``, ``id_r`` and ``must`` (a must-link, else a cannot-link) of the enforced pairs."""
    empty = pd.DataFrame({"id_l": [], "id_r": []})
    return pd.concat(
        [(links if links is not None else empty)[["id_l", "id_r"]].assign(must=kind) for links, kind in ((must, True), (cannot, False))],
        ignore_index=True,
    )


def _cluster_bucket(
    edges: pd.DataFrame, constraints: pd.DataFrame, *, average_link: bool, min_mean_weight: float, unscored_pair_weight: float,
) -> pd.DataFrame:
    """One bucket of whole components clustered: ``record_id``, ``match_id``, ``strongest``, ``size``, ``linked``."""
    must = constraints.loc[constraints["must"].astype(bool), ["id_l", "id_r"]]
    cannot = constraints.loc[~constraints["must"].astype(bool), ["id_l", "id_r"]]
    if average_link:
        out = cluster_by_average_link(
            edges, min_mean_weight=min_mean_weight, unscored_pair_weight=unscored_pair_weight, must_link=must, cannot_link=cannot,
        )
    else:
        out = cluster_with_constraints(edges[["id_l", "id_r", "weight"]], must, cannot)
        out["strongest"] = np.nan
    links = pd.concat([edges.loc[edges["link"].astype(bool), ["id_l", "id_r"]], must], ignore_index=True)
    on_links = out[RECORD_ID].isin(pd.concat([links["id_l"], links["id_r"]]))  # not a record only scored below
    return with_entity_facts(out.loc[on_links, [RECORD_ID, "match_id", "strongest"]], links)


def labeled_component_pairs(pairs: DataFrame, threshold: float, labeled: pd.DataFrame) -> pd.DataFrame:
    """:func:`component_pairs` of the components that hold a record of a ``labeled`` pair (``id_l``,
    ``id_r`` as text), collected: labels are a few hundred pairs, so these are few components."""
    ids = sorted(set(labeled["id_l"].astype(str)) | set(labeled["id_r"].astype(str)))
    components = link_components(links_frame(pairs, threshold))
    wanted = components.where(F.col(RECORD_ID).cast("string").isin(ids)).select("component").distinct()
    edges = component_pairs(pairs, threshold, components.join(wanted, "component", "left_semi")).drop("component").toPandas()
    free_checkpoint(components)
    return edges
