"""How large the entities came out, and which look larger than the data supports.

A run reports the size histogram of its entities (``summary.json``: ``clustering.entities``)
and warns, naming match_ids, about entities that look chained rather than found:

* **sparse**: four or more records of which fewer than half of the record pairs are
  linked (scored at or above the threshold). The records of one person resemble each
  other, so most of their pairs are links; a chain of people joined one weak link at a
  time is mostly unlinked pairs.
* **oversized**: more records than :data:`OUTLIER_FACTOR` times the 99th percentile of
  the run's own entity sizes (and at least :data:`MIN_OUTLIER_SIZE`): far beyond the tail
  of what the other entities of the same data look like.

Both judge an entity against the run's own links and sizes, so no constant encodes one
data set's entity sizes. Only ids and counts are reported, never a record's values.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from matcher.config.base import RECORD_ID

log = logging.getLogger(__name__)

SIZE_BINS = (1, 2, 3, 4, 5, 10, 20, 50, 100, 1000)
"""Lower edges of the histogram's bins: 1, 2, 3, 4, 5-9, 10-19, ..., 1000+."""
MIN_SPARSE_SIZE = 4
"""Fewest records an entity needs before its link density is judged (three records always
have at least two of their three pairs linked)."""
MIN_DENSITY = 0.5
"""Share of an entity's record pairs that must be links for it to look like one person."""
OUTLIER_FACTOR = 4.0
"""An entity this many times the 99th percentile of the entity sizes is oversized."""
MIN_OUTLIER_SIZE = 10
"""Entities smaller than this are never called oversized."""
LISTED = 20
"""How many flagged and largest entities the report names."""


def _bin_label(lower: int, upper: int | None) -> str:
    if upper is None:
        return f"{lower}+"
    return str(lower) if upper == lower + 1 else f"{lower}-{upper - 1}"


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Entities per size bin (:data:`SIZE_BINS`), every bin present (zero when empty)."""
    edges = list(SIZE_BINS)
    counts = np.histogram(sizes, bins=[*edges, np.inf])[0] if len(sizes) else np.zeros(len(edges), int)
    uppers = [*edges[1:], None]
    return {_bin_label(lo, hi): int(c) for lo, hi, c in zip(edges, uppers, counts)}


def _links_inside(members: pd.DataFrame, links: pd.DataFrame) -> pd.Series:
    """Distinct links per match_id whose two records ended up in that entity."""
    entity = pd.Series(members["match_id"].to_numpy(), index=members[RECORD_ID].to_numpy())
    left = entity.reindex(links["id_l"].to_numpy()).to_numpy()
    right = entity.reindex(links["id_r"].to_numpy()).to_numpy()
    same = pd.notna(left) & (left == right)
    a, b = links["id_l"].to_numpy()[same], links["id_r"].to_numpy()[same]
    swap = b < a
    pairs = pd.DataFrame({"a": np.where(swap, b, a), "b": np.where(swap, a, b), "match_id": left[same]})
    return pairs.drop_duplicates(["a", "b"]).groupby("match_id").size()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def entity_report(members: pd.DataFrame, links: pd.DataFrame, rows: int) -> dict[str, Any]:
    """Size histogram, largest entities and flagged ones of a clustering.

    ``members`` (``record_id``, ``match_id``) holds the records in clusters; records not in
    it are entities of one. ``links`` (``id_l``, ``id_r``) are the above-threshold links and
    must-links. ``rows`` is the number of records. Logs one warning naming the flagged
    match_ids (ids and counts only).
    """
    sizes = members.groupby("match_id").size()
    singletons = rows - int(sizes[sizes > 1].sum())
    all_sizes = np.concatenate([sizes[sizes > 1].to_numpy(), np.ones(max(singletons, 0), dtype=np.int64)])
    multi = sizes[sizes > 1]
    linked = _links_inside(members, links).reindex(multi.index, fill_value=0)
    possible = multi * (multi - 1) / 2
    density = (linked / possible).fillna(1.0)
    p99 = float(np.percentile(all_sizes, 99)) if len(all_sizes) else 1.0
    outlier = max(MIN_OUTLIER_SIZE, OUTLIER_FACTOR * p99)
    sparse = (multi >= MIN_SPARSE_SIZE) & (density < MIN_DENSITY)
    oversized = multi > outlier
    flagged = multi[sparse | oversized].sort_values(ascending=False, kind="stable")

    def described(ids) -> list[dict[str, Any]]:
        return [{"match_id": _plain(i), "size": int(multi[i]), "link_density": round(float(density[i]), 4),
                 **({"flags": [f for f, on in (("sparse", sparse[i]), ("oversized", oversized[i])) if on]}
                    if i in flagged.index else {})}
                for i in ids]

    report = {
        "entities": int(len(all_sizes)),
        "histogram": size_histogram(all_sizes),
        "largest": described(multi.sort_values(ascending=False, kind="stable").index[:LISTED]),
        "oversized_above": outlier,
        "flagged": int(len(flagged)),
        "flagged_entities": described(flagged.index[:LISTED]),
    }
    if len(flagged):
        named = ", ".join(f"{_plain(i)} ({int(multi[i])} records, {density[i]:.0%} of pairs linked)" for i in flagged.index[:LISTED])
        log.warning(
            "%d entities look larger than the data supports (sparse: fewer than %.0f%% of their record pairs linked; "
            "oversized: over %.0f records): %s%s — review them (matcher review) or raise the threshold",
            len(flagged), MIN_DENSITY * 100, outlier, named, ", ..." if len(flagged) > LISTED else "",
        )
    return report
