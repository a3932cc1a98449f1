"""Re-clustering, in the driver, the clusters an incremental run touches, with stable match_ids.

A cluster is touched when it loses a record (updated or deleted) or one of its records is
linked above the threshold by a new pair or by a stored pair that re-weighing moved across
it; the touched clusters' remaining records and every new record are re-clustered over the
above-threshold pairs among them (:func:`matcher.matching.stable_ids.stable_match_ids`).

With a decision log (:mod:`matcher.matching.decisions`), every cluster holding a record a
decision in force names is touched too, the re-clustering respects the decisions' must- and
cannot-links, and the components holding decided records take the ids the decisions gave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matcher.config.transform import ClusteringSpec
from matcher.incremental.stored_pairs import StoredPairs, is_in
from matcher.matching.clustering import agreeing_components, cluster_by_average_link, cluster_with_constraints, component_labels
from matcher.matching.enforced import DecidedLinks
from matcher.matching.stable_ids import Reassignment, stable_match_ids


@dataclass(frozen=True)
class Reclustering:
    """The re-clustered records, their new ids and every record's strongest link."""

    nodes: pd.DataFrame  # record_id, old_match_id (None for new records): the records re-clustered
    reassignment: Reassignment
    strongest: pd.Series  # by record id: the highest match probability of its pairs, after the run
    flipped: int  # stored pairs that re-weighing moved across the threshold


def _touched_clusters(
    old_ids: pd.Series, removed: set, new_pairs: pd.DataFrame, flipped: pd.DataFrame, threshold: float, decided: list,
) -> set:
    """The old clusters that lose a record or hold a record of a new above-threshold pair, of a ``flipped``
    pair or ``decided`` by a data steward."""
    strong = new_pairs[new_pairs["match_probability"] >= threshold]
    ends = set(strong["record_id_l"]) | set(strong["record_id_r"]) | set(flipped["record_id_l"]) | set(flipped["record_id_r"])
    linked_old = (ends | set(decided)) & set(old_ids.index)
    return set(old_ids.reindex(list(linked_old | removed)).dropna())


def _codes(pairs: pa.Table, *others: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """One code per distinct record id over the pairs' left ends, right ends and ``others``, in that
    order (Arrow's dictionary encoding), and the ids the codes stand for."""
    id_type = pairs.schema.field("record_id_l").type
    ends = [pairs["record_id_l"], pairs["record_id_r"], *(pa.array(o.to_numpy(), from_pandas=True).cast(id_type) for o in others)]
    encoded = pa.chunked_array([chunk for end in ends for chunk in getattr(end, "chunks", [end])], id_type).combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def _whole_components(
    pairs: pa.Table, changed: np.ndarray, threshold: float, old_ids: pd.Series, touched: set, new_keys: pd.Series,
    clustering: ClusteringSpec, decided: DecidedLinks | None,
) -> set:
    """``touched`` grown to the old clusters of whole components, as average link and the decisions'
    cannot-links need them; ``changed`` marks the ``pairs`` whose weight is not the one the old
    clusters were built from (re-weighed, or new).

    The components are those of the links now (and the must-links) joined with the old
    clusters, so each one is re-clustered whole or not at all. A full run clusters every
    component of the links whole, so one is re-clustered when it holds a touched or new record
    or, for average link, when a pair inside it changed weight, unless its every pair still
    clears the mean and it was one cluster (:func:`agreeing_components`): a mean between two of
    its clusters may have crossed ``min_mean_weight`` without any pair crossing the threshold.
    """
    n, must = pairs.num_rows, decided.must_link if decided is not None else pd.DataFrame({"id_l": [], "id_r": []})
    records, record_ids = _codes(pairs, old_ids.index.to_series(), new_keys, must["id_l"], must["id_r"])
    a, b = records[:n], records[n:2 * n]
    old, new, must_ends = np.split(records[2 * n:], np.cumsum([len(old_ids), len(new_keys)]))
    clusters, cluster_ids = pd.Index(old_ids.to_numpy()).factorize()
    link = pairs["match_probability"].to_numpy(zero_copy_only=False) >= threshold
    must_a, must_b = np.split(must_ends, 2)
    component = component_labels(  # a record joins its old cluster's node (codes after the records')
        len(record_ids) + len(cluster_ids), np.concatenate([a[link], must_a, old]),
        np.concatenate([b[link], must_b, clusters + len(record_ids)]))
    of_record = component[:len(record_ids)]
    seeds = np.zeros(int(component.max()) + 1, dtype=bool)
    seeds[of_record[new]] = True
    touched_codes = cluster_ids.get_indexer(list(touched))
    seeds[component[len(record_ids) + touched_codes[touched_codes >= 0]]] = True
    if clustering.method == "average_link":
        inside = of_record[a] == of_record[b]
        reweighed = np.zeros_like(seeds)
        reweighed[of_record[a[inside & changed]]] = True
        # a decided record's cluster is touched already: no constraint is left to weigh here
        settled = agreeing_components(of_record, a, b, pairs["match_weight"].to_numpy(zero_copy_only=False),
                                      np.array([], dtype=np.int64), clustering.min_mean_weight, clustering.unscored_pair_weight)
        one_cluster = np.bincount(component[len(record_ids):], minlength=len(seeds)) == 1
        seeds |= reweighed & ~(settled & one_cluster)
    reached = seeds[component[len(record_ids):]]
    return set(cluster_ids[reached])


def _nodes(affected: pd.Series, new_keys: pd.Series) -> pd.DataFrame:
    """``record_id`` and ``old_match_id`` of the ``affected`` existing records (match_id by record id), then of the new ones."""
    nodes = pd.concat(
        [
            pd.DataFrame({"record_id": affected.index.to_numpy(), "old_match_id": affected.to_numpy()}),
            pd.DataFrame({"record_id": new_keys.to_numpy(), "old_match_id": None}),
        ],
        ignore_index=True,
    )
    nodes["old_match_id"] = nodes["old_match_id"].astype(object).where(nodes["old_match_id"].notna(), None)
    return nodes


def _edges(pairs: pa.Table, nodes: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``id_l``, ``id_r``, ``weight`` (the match probability) of the ``pairs`` at or above ``threshold`` between two of the ``nodes``."""
    members = set(nodes["record_id"])
    edges = pairs.filter(pc.and_(
        pc.greater_equal(pairs["match_probability"], threshold),
        pc.and_(is_in(pairs["record_id_l"], members), is_in(pairs["record_id_r"], members)),
    ))
    edges = pd.DataFrame({
        "id_l": edges["record_id_l"].to_pandas(), "id_r": edges["record_id_r"].to_pandas(),
        "weight": edges["match_probability"].to_pandas(),
    })
    if edges.empty:
        edges = pd.DataFrame({"id_l": nodes["record_id"].iloc[:0], "id_r": nodes["record_id"].iloc[:0], "weight": 0.0})
    return edges


def _strongest(pairs: pa.Table) -> pd.Series:
    """Each record's highest match probability over ``pairs``, by record id."""
    ends = pa.table({
        "record_id": pa.chunked_array(pairs["record_id_l"].chunks + pairs["record_id_r"].chunks),
        "p": pa.chunked_array(pairs["match_probability"].chunks * 2),
    })
    strongest = ends.group_by("record_id").aggregate([("p", "max")])
    return pd.Series(strongest["p_max"].to_numpy(), index=strongest["record_id"].to_pandas())


def _average_link_components(
    pairs: pa.Table, nodes: pd.DataFrame, threshold: float, spec: ClusteringSpec, decided: DecidedLinks | None,
) -> pd.DataFrame:
    """``record_id``, ``match_id`` of the ``nodes`` clustered by average link over every pair among them
    (respecting the ``decided`` links)."""
    members = set(nodes["record_id"])
    among = pairs.filter(pc.and_(is_in(pairs["record_id_l"], members), is_in(pairs["record_id_r"], members)))
    probability = among["match_probability"].to_numpy(zero_copy_only=False)
    edges = pd.DataFrame({
        "id_l": among["record_id_l"].to_pandas(), "id_r": among["record_id_r"].to_pandas(),
        "weight": among["match_weight"].to_numpy(zero_copy_only=False), "probability": probability, "link": probability >= threshold,
    })
    clustered = cluster_by_average_link(
        edges, min_mean_weight=spec.min_mean_weight, unscored_pair_weight=spec.unscored_pair_weight,
        must_link=decided.must_link if decided is not None else None,
        cannot_link=decided.cannot_link if decided is not None else None,
    )
    return clustered[["record_id", "match_id"]]


def recluster(
    old_ids: pd.Series, removed: set, new_keys: pd.Series, new_pairs: pd.DataFrame, stored: StoredPairs, threshold: float,
    clustering: ClusteringSpec | None = None, decided: DecidedLinks | None = None,
) -> Reclustering:
    """Re-cluster the clusters touched by the new records (``new_keys``), the ``removed`` records,
    re-weighing and the ``decided`` records, over the ``stored`` pairs and the ``new_pairs``.

    ``old_ids`` is every existing record's ``match_id`` by record id; the clusters left
    untouched keep theirs, and no new id equals one of them. With ``clustering`` method
    ``average_link``, or with decisions, the touched clusters grow to whole components of the
    links (:func:`_whole_components`), clustered as a full run clusters them: by average link
    over every pair among their records (by match weight), or split by the cannot-links.
    """
    old_pairs = stored.scores
    flipped = old_pairs.filter(pa.array(stored.flipped)).to_pandas()
    touched = _touched_clusters(old_ids, removed, new_pairs, flipped, threshold, decided.records if decided is not None else [])
    remaining = old_ids[~old_ids.index.isin(removed)]
    new_scores = pa.Table.from_pandas(new_pairs[old_pairs.column_names], preserve_index=False).cast(old_pairs.schema)
    pairs_now = pa.concat_tables([old_pairs, new_scores])
    if clustering is None:
        clustering = ClusteringSpec(method="connected_components")
    if clustering.method == "average_link" or decided is not None:
        changed = np.concatenate([stored.changed if stored.changed is not None else np.zeros(old_pairs.num_rows, dtype=bool),
                                  np.ones(new_scores.num_rows, dtype=bool)])
        touched = _whole_components(pairs_now, changed, threshold, remaining, touched, new_keys, clustering, decided)
    nodes = _nodes(remaining[remaining.isin(touched)], new_keys)
    in_use = set(remaining[~remaining.isin(touched)])
    edges, components = _edges(pairs_now, nodes, threshold), None
    if clustering.method == "average_link":
        components = _average_link_components(pairs_now, nodes, threshold, clustering, decided)
    elif decided is not None:
        components = cluster_with_constraints(edges, decided.must_link, decided.cannot_link)
    ids = decided.ids if decided is not None else None
    reassignment = stable_match_ids(nodes, edges, in_use, components=components, decided=ids)
    return Reclustering(nodes, reassignment, _strongest(pairs_now), len(flipped))
