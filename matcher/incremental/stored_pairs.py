"""The existing run's pairs as a full re-run would score them now: removed records' pairs dropped, re-weighed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matcher.incremental.existing_run import PAIR_SCORE_COLUMNS, ExistingRun
from matcher.incremental.term_frequency_drift import TermFrequencyDrift


def is_in(values: pa.ChunkedArray, members: set) -> pa.ChunkedArray:
    """Whether each value is in ``members``."""
    return pc.is_in(values, value_set=pa.array(list(members), type=values.type))


@dataclass
class StoredPairs:
    """The existing run's pairs as a full re-run would score them now."""

    table: pa.Table  # without the removed records' pairs; every column when re-weighed, else ids and probability
    flipped: np.ndarray  # per row: whether re-weighing moved the pair across the threshold
    reweighed: bool
    seconds: float
    changed: np.ndarray | None = None  # per row: whether re-weighing changed the pair's weight at all (None: nothing re-weighed)

    @property
    def scores(self) -> pa.Table:
        """The pairs' ids and match probability."""
        return self.table.select(PAIR_SCORE_COLUMNS)


def stored_pairs_now(
    existing: ExistingRun, frequencies: dict[str, pd.DataFrame], threshold: float, removed: set, records: pd.DataFrame, key: str,
) -> StoredPairs:
    """The existing pairs minus the ``removed`` records', re-weighed for ``frequencies`` (:class:`TermFrequencyDrift`);
    ``records`` holds every existing record's ``key`` and term-frequency columns (the pairs name records by id).

    With re-weighing every stored pair gets a new score and is rewritten, so the pairs are read
    whole, once; without it only the ids and probabilities.
    """
    started = time.perf_counter()
    drift = TermFrequencyDrift.of(existing.model, frequencies)
    reweigh = drift.applies_to(existing.pairs.schema)
    table = existing.pairs.to_table(columns=None if reweigh else PAIR_SCORE_COLUMNS)
    probability_before, weight_before = table["match_probability"].to_numpy(), table["match_weight"].to_numpy()
    if reweigh:
        table = drift.reweigh(table, records, key)
    flipped = (probability_before >= threshold) != (table["match_probability"].to_numpy() >= threshold)
    changed = weight_before != table["match_weight"].to_numpy() if reweigh else None
    if removed:
        kept = pc.invert(pc.or_(is_in(table["record_id_l"], removed), is_in(table["record_id_r"], removed))).to_numpy()
        table, flipped = table.filter(kept), flipped[kept]
        changed = changed[kept] if changed is not None else None
    return StoredPairs(table, flipped, reweigh, round(time.perf_counter() - started, 3), changed)
