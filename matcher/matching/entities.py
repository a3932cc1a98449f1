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
import math
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.blocking.candidates import free_checkpoint
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


def size_histogram(sizes: np.ndarray, counts: np.ndarray | None = None) -> dict[str, int]:
    """Entities per size bin (:data:`SIZE_BINS`), every bin present (zero when empty); ``counts``
    gives how many entities have each of ``sizes`` (one each when left out)."""
    edges = list(SIZE_BINS)
    binned = np.histogram(sizes, bins=[*edges, np.inf], weights=counts)[0] if len(sizes) else np.zeros(len(edges), int)
    uppers = [*edges[1:], None]
    return {_bin_label(lo, hi): int(c) for lo, hi, c in zip(edges, uppers, binned)}


def _percentile(sizes: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``np.percentile`` (linear) of the sizes repeated ``counts`` times, without repeating them."""
    order = np.argsort(sizes)
    sizes, ends = sizes[order], np.cumsum(counts[order])
    position = q / 100 * (ends[-1] - 1)
    below, above = (sizes[np.searchsorted(ends, k, side="right")] for k in (math.floor(position), math.ceil(position)))
    return float(below + (above - below) * (position - math.floor(position)))


def with_entity_facts(members: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """``members`` (``record_id``, ``match_id``) with their entity's ``size`` and ``linked``: the
    distinct ``links`` (``id_l``, ``id_r``) whose two records ended up in it."""
    entity = pd.Series(members["match_id"].to_numpy(), index=members[RECORD_ID].to_numpy())
    left = entity.reindex(links["id_l"].to_numpy()).to_numpy()
    right = entity.reindex(links["id_r"].to_numpy()).to_numpy()
    same = pd.notna(left) & (left == right)
    a, b = links["id_l"].to_numpy()[same], links["id_r"].to_numpy()[same]
    swap = b < a
    inside = pd.DataFrame({"a": np.where(swap, b, a), "b": np.where(swap, a, b), "match_id": left[same]})
    linked = inside.drop_duplicates(["a", "b"]).groupby("match_id").size()
    out = members.assign(size=members.groupby("match_id")["match_id"].transform("size").astype("int64"))
    return out.assign(linked=out["match_id"].map(linked).fillna(0).astype("int64"))


def python_value(value: Any) -> Any:
    """A numpy scalar as the plain Python value (Spark and JSON accept it)."""
    return value.item() if hasattr(value, "item") else value


def entity_report(members: DataFrame, rows: int) -> dict[str, Any]:
    """Size histogram, largest entities and flagged ones of a clustering.

    ``members`` (``record_id``, ``match_id``, and the entity's ``size`` and ``linked``, see
    :func:`with_entity_facts`) holds the records in clusters; records not in it are entities of
    one. Links are the above-threshold links and must-links. ``rows`` is the number of
    records. Only counts per size and the listed entities reach the driver. Logs one warning
    naming the flagged match_ids (ids and counts only).
    """
    multi = members.where(F.col("size") > 1).groupBy("match_id").agg(F.first("size").alias("size"), F.first("linked").alias("linked"))
    tally = multi.groupBy("size").agg(F.count("*").alias("n")).toPandas()
    singletons = max(rows - int((tally["size"] * tally["n"]).sum()), 0)
    sizes = np.append(tally["size"].to_numpy(np.int64), 1)
    counts = np.append(tally["n"].to_numpy(np.int64), singletons)
    p99 = _percentile(sizes, counts, 99) if counts.sum() else 1.0
    outlier = max(MIN_OUTLIER_SIZE, OUTLIER_FACTOR * p99)
    judged = (
        multi.select("match_id", "size", (F.col("linked") / (F.col("size") * (F.col("size") - 1) / 2)).alias("density"))
        .withColumn("sparse", (F.col("size") >= MIN_SPARSE_SIZE) & (F.col("density") < MIN_DENSITY))
        .withColumn("oversized", F.col("size") > outlier)
        .localCheckpoint(eager=True)
    )
    by_size = [F.col("size").desc(), F.col("match_id").asc()]
    flagged = judged.where(F.col("sparse") | F.col("oversized"))
    flagged_count = flagged.count()
    listed_flagged = flagged.orderBy(*by_size).limit(LISTED).collect()

    def described(entities, with_flags: bool) -> list[dict[str, Any]]:
        return [{"match_id": python_value(e["match_id"]), "size": int(e["size"]), "link_density": round(float(e["density"]), 4),
                 **({"flags": [f for f in ("sparse", "oversized") if e[f]]} if with_flags or e["sparse"] or e["oversized"] else {})}
                for e in entities]

    report = {
        "entities": int(counts.sum()),
        "histogram": size_histogram(sizes, counts),
        "largest": described(judged.orderBy(*by_size).limit(LISTED).collect(), with_flags=False),
        "oversized_above": outlier,
        "flagged": int(flagged_count),
        "flagged_entities": described(listed_flagged, with_flags=True),
    }
    free_checkpoint(judged)
    if flagged_count:
        named = ", ".join(f"{python_value(e['match_id'])} ({int(e['size'])} records, {e['density']:.0%} of pairs linked)" for e in listed_flagged)
        log.warning(
            "%d entities look larger than the data supports (sparse: fewer than %.0f%% of their record pairs linked; "
            "oversized: over %.0f records): %s%s — review them (matcher review) or raise the threshold",
            flagged_count, MIN_DENSITY * 100, outlier, named, ", ..." if flagged_count > LISTED else "",
        )
    return report
