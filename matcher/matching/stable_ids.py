"""Stable match_ids for re-clustered records: which old id each new component keeps (see docs/incremental.md).

The rules are numbered in :mod:`matcher.incremental.task`: 0. a component holding records a
data steward decided about takes the id the decisions gave (:mod:`matcher.matching.decisions`);
1. every other old id goes to the component holding most of its surviving records; 2. a
component offered several keeps the biggest contributor's; 3. the others take their smallest
free record id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from matcher.config.base import RECORD_ID
from matcher.matching.clustering import cluster_edges
from matcher.matching.decisions import claimed_ids


@dataclass
class Reassignment:
    """The re-clustered records and what happened to their clusters."""

    ids: pd.DataFrame  # record_id, old_match_id (None for new records), match_id
    merges: list[dict[str, Any]] = field(default_factory=list)
    splits: list[dict[str, Any]] = field(default_factory=list)


def plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def unused_id(smallest: Any, used: set) -> Any:
    """An id for a cluster whose every member id names another cluster (e.g. an updated record that
    named its old cluster, which kept the id): ``<smallest>~2`` (``~3``, ... if taken) for text ids,
    one more than the largest id in use for whole-number ids."""
    if isinstance(smallest, (int, np.integer)):
        return max(int(x) for x in used if isinstance(x, (int, np.integer))) + 1
    n = 2
    while f"{smallest}~{n}" in used:
        n += 1
    return f"{smallest}~{n}"


def _owners(shares: pd.DataFrame) -> pd.DataFrame:
    """Rule 1: each old id's row of ``shares`` for the component holding most of its records, by component then size."""
    owners = shares.sort_values(["old_match_id", "n", "component"], ascending=[True, False, True]).drop_duplicates("old_match_id")
    return owners.sort_values(["component", "n", "old_match_id"], ascending=[True, False, True])


def smallest_free_id(members: Iterable, used: set) -> Any:
    """A cluster's name: its smallest member id that no other cluster uses, else :func:`unused_id`'s."""
    ordered = sorted(members)
    for member in ordered:
        if member not in used:
            return member
    return unused_id(ordered[0], used)


def stable_match_ids(
    nodes: pd.DataFrame, edges: pd.DataFrame | None = None, in_use: set = frozenset(), *, components: pd.DataFrame | None = None,
    decided: dict[str, Any] | None = None,
) -> Reassignment:
    """Cluster ``nodes`` (``record_id``, ``old_match_id``: null for new records) over ``edges`` (``id_l``, ``id_r``),
    or take their clusters from ``components`` (``record_id``, ``match_id``: any cluster label).

    ``in_use`` holds the ids of the clusters left untouched; no new id may equal one.
    ``decided`` (record id as text → the match_id a decision gave it) names the components
    holding decided records first (rule 0). Old ids survive by the rules in this module's
    docstring; the result is deterministic whatever the order of the rows.
    """
    labelled = components if components is not None else cluster_edges(edges)
    components = dict(zip(labelled[RECORD_ID].tolist(), labelled["match_id"].tolist()))
    frame = nodes.copy()
    frame["component"] = [components.get(r, r) for r in frame[RECORD_ID].tolist()]
    # rule 0: a component holding decided records takes the id most of them were given
    claimed = claimed_ids(frame, "component", {r: i for r, i in (decided or {}).items() if i not in in_use})
    decided_ids = set(claimed.values())
    old = frame[frame["old_match_id"].notna()]
    shares = old.groupby(["old_match_id", "component"]).size().rename("n").reset_index()
    # rule 1: each old id goes to the component holding most of its surviving records
    owners = _owners(shares)
    # rule 2: a component offered several old ids keeps the biggest contributor's (tie: smallest id);
    # one that rule 0 named keeps that name, and no other takes an id rule 0 gave
    free = owners[~owners["component"].isin(claimed) & ~owners["old_match_id"].isin(decided_ids)]
    chosen = free.drop_duplicates("component").set_index("component")["old_match_id"]
    assigned: dict[Any, Any] = {**claimed, **dict(chosen.items())}
    used = set(in_use) | set(assigned.values())
    # rule 3: the others take their smallest record id that no other cluster uses (a record id
    # is in one component only, so only an id another cluster already uses needs the search)
    unnamed = frame[~frame["component"].isin(assigned)]
    smallest = unnamed.groupby("component", sort=True)[RECORD_ID].min()
    taken = smallest.isin(used)
    assigned.update(smallest[~taken].items())
    used.update(smallest[~taken])
    for component, members in unnamed[unnamed["component"].isin(smallest.index[taken])].groupby("component", sort=True)[RECORD_ID]:
        assigned[component] = smallest_free_id(members, used)
        used.add(assigned[component])
    frame["match_id"] = frame["component"].map(assigned)
    result = Reassignment(frame[[RECORD_ID, "old_match_id", "match_id"]].reset_index(drop=True))
    several = owners[owners.duplicated("component", keep=False)]  # components offered more than one old id
    joining = frame[frame["old_match_id"].isna() & frame["component"].isin(several["component"])]
    linked_by = {c: sorted(plain(r) for r in ids) for c, ids in joining.groupby("component")[RECORD_ID]}
    for component, offered in several.groupby("component", sort=True):
        surviving = assigned[component]
        retired = [plain(k) for k in offered["old_match_id"] if k != surviving and k not in decided_ids]
        if retired:
            sizes = [[plain(k), int(n)] for k, n in zip(offered["old_match_id"], offered["n"])]
            tie = int(offered["n"].iloc[0]) == int(offered["n"].iloc[1])
            rule = "decision" if component in claimed else "tie on surviving records: smallest id" if tie else "most surviving records"
            result.merges.append({
                "surviving_id": plain(surviving),
                "retired_ids": retired,
                "sizes": sizes,
                "rule": rule,
                "linked_by": linked_by.get(component, []),
            })
    owner_of = owners.set_index("old_match_id")["component"]
    for old_id, spread in shares[shares.duplicated("old_match_id", keep=False)].groupby("old_match_id", sort=True):
        if len(spread) > 1:
            owner = owner_of[old_id]
            kept = assigned[owner] == old_id or any(claimed.get(c) == old_id for c in spread["component"])
            result.splits.append({
                "old_match_id": plain(old_id),
                "match_ids": sorted(plain(assigned[c]) for c in spread["component"]),
                "kept_by": plain(old_id) if kept else None,
            })
    return result
