"""The change log of an incremental run: which records are new, joined, updated, moved or deleted,
the merges, splits and retired ids (``changes.json`` and ``changes/``; see :mod:`matcher.incremental.task`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from matcher.matching.stable_ids import Reassignment, plain

CHANGES_JSON = "changes.json"
CHANGES_PARQUET = "changes"
CHANGE_ORDER = {"new": 0, "joined": 1, "updated": 2, "moved": 3, "deleted": 4}


@dataclass(frozen=True)
class ChangeLog:
    """What an incremental run changed, record by record and cluster by cluster."""

    final: pd.Series  # every record's match_id after the run, by record id
    records: pd.DataFrame  # record_id, change, old_match_id, new_match_id: one row per changed record
    merges: list[dict[str, Any]]
    splits: list[dict[str, Any]]  # with caused_by: the removed records of the split cluster
    retired: list  # the old ids that no longer name a cluster, sorted
    counts: dict[str, int]

    def as_json(self, existing: str, new: str, delete: str | None) -> dict[str, Any]:
        """``changes.json``: the log with the run's ``existing`` folder, ``new`` records and ``delete`` list."""
        return {
            "existing": existing,
            "new": new,
            "delete": delete,
            "counts": self.counts,
            "records": [{k: plain(v) for k, v in row.items()} for row in self.records.to_dict("records")],
            "merges": self.merges,
            "splits": self.splits,
            "retired_ids": [plain(r) for r in self.retired],
        }

    def as_table(self, key_type: pa.DataType) -> pa.Table:
        """``changes/``: the records' rows, ids typed ``key_type``."""

        def column(name: str, type_: pa.DataType) -> pa.Array:
            values = self.records[name]
            return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else plain(v) for v in values], type=type_)

        return pa.table({
            "record_id": column("record_id", key_type),
            "change": column("change", pa.string()),
            "old_match_id": column("old_match_id", key_type),
            "new_match_id": column("new_match_id", key_type),
        })


def _record_changes(old_ids: pd.Series, reassignment: Reassignment, new_keys: set, updated: set, deleted: Iterable) -> pd.DataFrame:
    """One row per changed record, ordered by change (:data:`CHANGE_ORDER`) and record id."""
    before = set(old_ids)
    rows = []
    for record, old_id, match_id in reassignment.ids.itertuples(index=False):
        if record in updated:
            rows.append((record, "updated", old_ids[record], match_id))
        elif record in new_keys:
            rows.append((record, "joined" if match_id in before else "new", None, match_id))
        elif old_id != match_id:
            rows.append((record, "moved", old_id, match_id))
    rows += [(record, "deleted", old_ids[record], None) for record in deleted]
    records = pd.DataFrame(rows, columns=["record_id", "change", "old_match_id", "new_match_id"], dtype=object)
    return records.assign(_o=records["change"].map(CHANGE_ORDER)).sort_values(["_o", "record_id"]).drop(columns="_o")


def change_log(old_ids: pd.Series, reassignment: Reassignment, new_keys: set, updated: set, deleted: pd.Series) -> ChangeLog:
    """The change log of re-assigning ``reassignment``'s records, from ``old_ids`` (every existing
    record's ``match_id`` by record id), with the ``new_keys`` (``updated`` among them: new
    versions of existing records) and the ``deleted`` keys."""
    removed = updated | set(deleted.tolist())
    reassigned = reassignment.ids.set_index("record_id")["match_id"]
    final = old_ids.drop(index=list(removed))
    final = pd.concat([final[~final.index.isin(reassigned.index)], reassigned])
    records = _record_changes(old_ids, reassignment, new_keys, updated, deleted)
    retired = sorted(set(old_ids) - set(final))
    causes = old_ids[old_ids.index.isin(removed)]
    splits = [
        {**split, "caused_by": sorted(plain(r) for r in causes[causes == split["old_match_id"]].index)}
        for split in reassignment.splits
    ]
    counts = {c: int((records["change"] == c).sum()) for c in CHANGE_ORDER}
    counts.update({"merges": len(reassignment.merges), "splits": len(splits), "retired_ids": len(retired)})
    return ChangeLog(final, records, reassignment.merges, splits, retired, counts)
