"""Clustering algorithms on one set of whole components of the match graph, in pandas,
with deterministic cluster ids.

A full run applies them on the executors, one bucket of whole components at a time
(:mod:`matcher.matching.components`); an incremental run applies them in the driver to the
records it touches (:mod:`matcher.incremental.recluster`).

``clustering.method: connected_components`` joins every link (a pair at or above the
threshold): :func:`cluster_edges` labels an edge list with scipy's sparse connected
components, and :func:`cluster_with_constraints` splits what ``cannot_link`` pairs forbid.

``clustering.method: average_link`` resists chains: one wrong above-threshold link no
longer joins two entities. Within each connected component of the above-threshold
links, clusters are merged along those links, strongest first, only when the mean
match weight over *every* pair of records between the two clusters reaches
``min_mean_weight``; a pair that blocking never scored counts as
``unscored_pair_weight`` (:func:`cluster_by_average_link`).

A cluster's ``match_id`` is its smallest record id, so the same input always gives the
same ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from matcher.config.base import RECORD_ID
from matcher.runtime.errors import InputDataError


def _smallest_id_clusters(uniques: pd.Index, labels: np.ndarray) -> pd.DataFrame:
    """``record_id`` and ``match_id`` (the smallest id sharing its label) for sorted ``uniques``."""
    # uniques are sorted, so the first code seen per label is the cluster's smallest id
    smallest = pd.Series(np.arange(len(uniques))).groupby(labels).transform("min").to_numpy()
    return pd.DataFrame({RECORD_ID: uniques, "match_id": uniques[smallest]})


def cluster_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """Label the components of an edge list (columns ``id_l``, ``id_r``).

    Returns one row per record that has at least one edge: ``record_id`` and
    ``match_id``, the smallest record id in its component.
    """
    if edges.empty:
        return pd.DataFrame({RECORD_ID: edges["id_l"].iloc[:0], "match_id": edges["id_l"].iloc[:0]})
    codes, uniques = pd.factorize(pd.concat([edges["id_l"], edges["id_r"]], ignore_index=True), sort=True)
    return _smallest_id_clusters(uniques, component_labels(len(uniques), codes[:len(edges)], codes[len(edges):]))


ORDER_DECIMALS = 9
"""Links taken strongest first count weights equal to this many decimals as ties, broken by ids:
Spark, DuckDB and an incremental run's re-weighing sum a pair's weight in different orders,
and their last bits must not reorder equal weights."""


def find_root(parent, x):
    """The root of ``x`` in a union-find ``parent`` map (dict or list), halving the path on the way."""
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
    weight, ties by ids: :data:`ORDER_DECIMALS`) and a link is dropped when accepting it would put a
    cannot-link pair in one cluster. The pair is therefore separated at the weakest
    link of the strongest path between them (the bottleneck of the maximum spanning
    tree) and every other link that would rejoin the two sides is dropped too.
    Components without a cannot-link pair are exactly the connected components. A
    must-link chain joining a cannot-link pair is a contradiction:
    :class:`~matcher.runtime.errors.InputDataError` names the pair.
    """
    must = must_link.assign(weight=np.inf)[["id_l", "id_r", "weight"]]
    every = pd.concat([must, edges[["id_l", "id_r", "weight"]]], ignore_index=True)
    if every.empty:
        return cluster_edges(every)
    plain = cluster_edges(every)
    component = dict(zip(plain[RECORD_ID], plain["match_id"]))
    split = {component[a] for a, b in zip(cannot_link["id_l"], cannot_link["id_r"])
             if a in component and b in component and component[a] == component[b]}
    if not split:
        return plain
    forbidden: dict = {}
    for a, b in zip(cannot_link["id_l"], cannot_link["id_r"]):
        forbidden.setdefault(a, set()).add(b)
        forbidden.setdefault(b, set()).add(a)
    inside = every[every["id_l"].map(component).isin(split)]
    inside = inside.assign(order=inside["weight"].round(ORDER_DECIMALS)).sort_values(
        ["order", "id_l", "id_r"], ascending=[False, True, True], kind="stable")[["id_l", "id_r", "weight"]]
    ids = pd.unique(pd.concat([inside["id_l"], inside["id_r"]]))
    parent = {x: x for x in ids}
    members = {x: {x} for x in ids}
    barred = {x: set(forbidden.get(x, ())) for x in ids}
    for a, b, weight in inside.itertuples(index=False):
        ra, rb = find_root(parent, a), find_root(parent, b)
        if ra == rb:
            continue
        if not barred[ra].isdisjoint(members[rb]):
            if weight == np.inf:
                raise _contradiction(*next((x, y) for x in members[ra] for y in barred[x] & members[rb]))
            continue
        if len(members[ra]) < len(members[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        members[ra] |= members.pop(rb)
        barred[ra] |= barred.pop(rb)
    roots = {x: find_root(parent, x) for x in ids}
    smallest = {root: min(group) for root, group in members.items()}
    resplit = pd.DataFrame({RECORD_ID: list(roots), "match_id": [smallest[r] for r in roots.values()]})
    kept = plain[~plain["match_id"].isin(split)]
    return pd.concat([kept, resplit], ignore_index=True).sort_values(RECORD_ID, ignore_index=True)


def cluster_by_average_link(
    edges: pd.DataFrame,
    *,
    min_mean_weight: float,
    unscored_pair_weight: float = 0.0,
    must_link: pd.DataFrame | None = None,
    cannot_link: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Merge clusters along the links, strongest first, while the pairs between them support it.

    ``edges`` has ``id_l``, ``id_r``, ``weight`` (match weight) and ``link`` (the pair is
    at or above the threshold); pairs that are not links still count as evidence. Every
    record starts alone; ``must_link`` pairs are merged first, unconditionally. Then each
    link, by weight descending (ties by ids: :data:`ORDER_DECIMALS`), merges the clusters A and B of its two
    records when

        (sum of the scored weights between A and B + unscored_pair_weight * unscored pairs) / (|A| * |B|)

    reaches ``min_mean_weight`` and no ``cannot_link`` pair (``id_l``, ``id_r``) would end
    up in one cluster. A pair scored twice counts with its mean weight. A must-link chain
    joining a cannot-link pair is an :class:`~matcher.runtime.errors.InputDataError` naming it.

    A component of the links that no constraint touches and whose every pair clears the
    mean (:func:`agreeing_components`) becomes one cluster without the merge loop: every
    merge in it would pass.

    Returns ``record_id``, ``match_id`` (smallest id of the cluster) and ``strongest``
    (the highest ``probability`` among the record's edges inside its cluster, NaN for
    a record alone or held only by must-links) for every record of ``edges`` and
    ``must_link``.

    >>> edges = pd.DataFrame({"id_l": [1, 2, 1], "id_r": [2, 3, 3], "weight": [9.0, 8.0, -20.0],
    ...                       "probability": [0.998, 0.996, 0.0], "link": [True, True, False]})
    >>> cluster_by_average_link(edges, min_mean_weight=0.0)[["record_id", "match_id"]].values.tolist()
    [[1, 1], [2, 1], [3, 3]]
    """
    must = must_link if must_link is not None else edges[["id_l", "id_r"]].iloc[:0]
    cannot = cannot_link if cannot_link is not None else edges[["id_l", "id_r"]].iloc[:0]
    ends = pd.concat([edges["id_l"], edges["id_r"], must["id_l"], must["id_r"]], ignore_index=True)
    if ends.empty:
        return pd.DataFrame({RECORD_ID: ends, "match_id": ends, "strongest": pd.Series([], dtype=float)})
    codes, uniques = pd.factorize(ends, sort=True)
    n = len(edges)
    a, b = codes[:n], codes[n:2 * n]
    must_a, must_b = codes[2 * n:2 * n + len(must)], codes[2 * n + len(must):]
    weight = edges["weight"].to_numpy(float)
    link = edges["link"].to_numpy(bool)
    found = np.stack([uniques.get_indexer(cannot["id_l"]), uniques.get_indexer(cannot["id_r"])], axis=1).astype(np.int64)
    barred = found[(found >= 0).all(axis=1)]  # the cannot-links between records of these edges
    component = component_labels(len(uniques), np.concatenate([a[link], must_a]), np.concatenate([b[link], must_b]))
    constrained = np.concatenate([must_a, must_b, barred.reshape(-1)])
    settled = agreeing_components(component, a, b, weight, constrained, min_mean_weight, unscored_pair_weight)
    roots = component.copy()  # a settled component is one cluster, named by any of its codes
    loop = ~settled[component[a]] & (component[a] == component[b])  # no merge weighs pairs across components
    if loop.any() or len(must_a):
        unsettled = np.flatnonzero(~settled[component])  # the merge loop numbers their records 0, 1, ...
        code = np.full(len(uniques), -1, dtype=np.int64)
        code[unsettled] = np.arange(len(unsettled))
        state = _AverageLink(len(unsettled), unscored_pair_weight)
        state.add_evidence(code[a[loop]], code[b[loop]], weight[loop])
        for x, y in code[barred].tolist():
            state.bar(x, y)
        for x, y in zip(code[must_a].tolist(), code[must_b].tolist()):
            if not state.merge(x, y, force=True):
                pair = state.barred_pair(x, y)
                raise _contradiction(uniques[unsettled[pair[0]]], uniques[unsettled[pair[1]]])
        merging = loop & link
        order = np.lexsort((b[merging], a[merging], -np.round(weight[merging], ORDER_DECIMALS)))
        state.merge_links(code[a[merging][order]].tolist(), code[b[merging][order]].tolist(), min_mean_weight)
        roots[unsettled] = len(uniques) + np.array([state.find(x) for x in range(len(unsettled))], dtype=np.int64)
    out = _smallest_id_clusters(uniques, roots)
    same = roots[a] == roots[b]
    inside = pd.DataFrame({
        "code": np.concatenate([a[same], b[same]]), "p": np.tile(edges["probability"].to_numpy(float)[same], 2),
    })
    out["strongest"] = inside.groupby("code")["p"].max().reindex(np.arange(len(uniques))).to_numpy()
    return out


def component_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The connected component of each of ``n`` codes joined by the edges ``a``-``b``."""
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


MEAN_MARGIN = 1e-6
"""How far above ``min_mean_weight`` every pair of a component must be for it to skip the merge
loop: far more than the rounding of a mean of up to millions of weights."""


def agreeing_components(
    component: np.ndarray, a: np.ndarray, b: np.ndarray, weight: np.ndarray,
    constrained: np.ndarray, min_mean_weight: float, unscored_pair_weight: float,
) -> np.ndarray:
    """Per component: whether average link would merge it whole, so it needs no merge loop.

    True for a component of two or more records, none on a must-link or cannot-link, whose
    every scored pair weighs at least ``min_mean_weight`` (plus :data:`MEAN_MARGIN`), and
    whose every pair of records was scored unless ``unscored_pair_weight`` clears the mean
    too: then every mean between two of its clusters does, and its links join it whole.
    """
    count = int(component.max()) + 1
    records = np.bincount(component, minlength=count)
    lowest_ok = min_mean_weight + MEAN_MARGIN * max(1.0, abs(min_mean_weight))
    within = (component[a] == component[b]) & (a != b)
    low, high = np.minimum(a[within], b[within]), np.maximum(a[within], b[within])
    lightest = np.full(count, np.inf)
    np.minimum.at(lightest, component[low], weight[within])
    distinct = np.unique(low * np.int64(len(component)) + high) // len(component)
    scored = np.bincount(component[distinct], minlength=count)
    agreeing = (records >= 2) & (lightest >= lowest_ok)  # NaN weights fail here
    if unscored_pair_weight < lowest_ok:
        agreeing &= scored == records * (records - 1) // 2
    agreeing[component[constrained]] = False
    return agreeing


def refuse_contradictions(must_link: pd.DataFrame, cannot_link: pd.DataFrame) -> None:
    """Raise the :class:`~matcher.runtime.errors.InputDataError` naming a ``cannot_link`` pair
    that a chain of ``must_link`` pairs joins (both ``id_l``, ``id_r``)."""
    joined = cluster_edges(must_link[["id_l", "id_r"]])
    group = dict(zip(joined[RECORD_ID], joined["match_id"]))
    for a, b in zip(cannot_link["id_l"], cannot_link["id_r"]):
        if a in group and group.get(b) == group[a]:
            raise _contradiction(a, b)


def _contradiction(x, y) -> InputDataError:
    return InputDataError(f"enforced matches contradict each other: must-links (or exact rules) join cannot-link pair {x}~{y}")


class _AverageLink:
    """Union-find over record codes that keeps, per cluster, the summed weight and count of scored pairs to each other cluster."""

    def __init__(self, n: int, unscored_pair_weight: float):
        self.parent = list(range(n))
        self.between: list[dict[int, list[float]]] = [{} for _ in range(n)]
        self.barred: dict[int, set[int]] = {}  # only records on a cannot-link
        self.constrained: set[int] = set()  # clusters holding one
        self.members: list[list[int]] = [[x] for x in range(n)]
        self.unscored = unscored_pair_weight

    def add_evidence(self, a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> None:
        """Each scored pair once (a pair scored twice keeps its mean weight); self-pairs are ignored."""
        low, high = np.minimum(a, b), np.maximum(a, b)
        keep = low != high
        key = low[keep].astype(np.int64) * np.int64(len(self.parent)) + high[keep]
        mean = pd.Series(weight[keep]).groupby(key, sort=True).mean()  # pandas' compensated sum, as merges compare means to a bound
        distinct = mean.index.to_numpy()
        between = self.between
        for x, y, w in zip((distinct // len(self.parent)).tolist(), (distinct % len(self.parent)).tolist(), mean.tolist()):
            shared = [w, 1]
            between[x][y] = shared
            between[y][x] = shared

    def bar(self, x: int, y: int) -> None:
        self.barred.setdefault(x, set()).add(y)
        self.barred.setdefault(y, set()).add(x)
        self.constrained.update((self.find(x), self.find(y)))

    def find(self, x: int) -> int:
        return find_root(self.parent, x)

    def barred_pair(self, x: int, y: int) -> tuple[int, int]:
        rx, ry = self.find(x), self.find(y)
        inside_y = set(self.members[ry])
        return next((m, o) for m in self.members[rx] for o in sorted(self.barred.get(m, ())) if o in inside_y)

    def merge(self, x: int, y: int, *, force: bool = False, min_mean_weight: float = 0.0) -> bool:
        """Merge the clusters of ``x`` and ``y`` if allowed; False when a cannot-link (or the mean weight) forbids it."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return True
        if self._barred(rx, ry):
            return False
        if not force and not self._supported(rx, ry, min_mean_weight):
            return False
        self._absorb(rx, ry)
        return True

    def merge_links(self, a: list[int], b: list[int], min_mean_weight: float) -> None:
        """:meth:`merge` along each link ``a[i]``-``b[i]`` in turn (the loop of the clustering, kept tight)."""
        parent = self.parent
        for x, y in zip(a, b):
            rx, ry = find_root(parent, x), find_root(parent, y)
            if rx != ry and self._supported(rx, ry, min_mean_weight) and not self._barred(rx, ry):
                self._absorb(rx, ry)

    def _supported(self, rx: int, ry: int, min_mean_weight: float) -> bool:
        """Whether the mean weight over every pair between clusters ``rx`` and ``ry`` reaches ``min_mean_weight``."""
        total, count = self.between[rx].get(ry, (0.0, 0))
        pairs = len(self.members[rx]) * len(self.members[ry])
        return (total + self.unscored * (pairs - count)) / pairs >= min_mean_weight

    def _barred(self, rx: int, ry: int) -> bool:
        if rx not in self.constrained or ry not in self.constrained:
            return False
        small, large = (rx, ry) if len(self.members[rx]) <= len(self.members[ry]) else (ry, rx)
        return any(self.find(o) == large for m in self.members[small] for o in self.barred.get(m, ()))

    def _absorb(self, rx: int, ry: int) -> None:
        """The smaller of two clusters joins the larger: members and the pair sums to every other cluster."""
        if len(self.members[rx]) < len(self.members[ry]):
            rx, ry = ry, rx
        self.parent[ry] = rx
        self.members[rx].extend(self.members[ry])
        self.members[ry] = []
        if ry in self.constrained:
            self.constrained.discard(ry)
            self.constrained.add(rx)
        mine = self.between[rx]
        mine.pop(ry, None)
        for other, stats in self.between[ry].items():
            if other == rx:
                continue
            theirs = self.between[other]
            del theirs[ry]
            known = mine.get(other)
            if known is None:
                mine[other] = stats
                theirs[rx] = stats
            else:
                known[0] += stats[0]
                known[1] += stats[1]
        self.between[ry] = {}
