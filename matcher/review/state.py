"""A run folder as a data steward reviews it: entities with the decisions made so far applied.

The run's ``matches/`` and ``pairs/`` are read once; the decision log
(:class:`~matcher.matching.decisions.DecisionLog`) is re-read under its lock before every
change, so two review pages on one folder never lose each other's decisions. Entities are
the run's clusters with every decision in force applied (a record takes the id its latest
decision gave it); the next ``matcher run`` or ``match-incremental`` makes the same
entities for good.

Ids, as ``match-incremental`` keeps them: a **split** keeps the larger part's ``match_id``
(tie: the part that is not moved) and names the other part by its smallest record id that
no entity uses; a **merge** keeps the **older** id: an id the run made is older than one a
decision made (decisions in the order written), and between two of the run's ids the larger
entity's (tie: the smaller id), the rule match-incremental applies to a bridge.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matcher.config.base import RECORD_ID
from matcher.config.transform import TransformConfig
from matcher.harmonize.records import golden_record
from matcher.harmonize.rules import profile_fields
from matcher.matching.decisions import (
    Decision, DecisionLog, contradiction, decided_ids, in_force, next_id, now,
)
from matcher.matching.stable_ids import smallest_free_id
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError
from matcher.runtime.run_folder import RunFolder

SOURCE_SYSTEM = "source_system"
LARGE = 10  # an entity of this many records is "large" in the queue
SHOWN_LINKS = 200  # an entity page lists its weakest links, up to this many


class ReviewConflict(InputDataError):
    """A decision that no longer fits: the entity changed since the page showed it, or it contradicts another decision."""


@dataclass(frozen=True)
class Action:
    """A steward's request, as the page sends it."""

    action: str
    who: str
    match_id: str | None = None
    version: str | None = None
    why: str = ""
    moved: tuple[str, ...] = ()
    other_match_id: str | None = None
    records: tuple[str, ...] = ()
    undoes: str | None = None


def _text(column: pa.ChunkedArray) -> pd.Series:
    """A column of ids as text (Arrow's cast: fast at millions of rows)."""
    return column.cast(pa.string()).to_pandas()


def _schema(table: str | Path) -> pa.Schema:
    """The schema of the run's Parquet folder ``table``; a one-line error when it holds no part."""
    part = next(iter(sorted(Path(table).rglob("*.parquet"))), None)
    if part is None:
        raise InputDataError(f"{table}: no Parquet part here; review a folder that 'matcher run' completed")
    return pq.read_schema(part)


class ReviewState:
    """Entities of one run folder with the decision log applied; every change goes through :meth:`decide`."""

    def __init__(self, config: TransformConfig, folder: RunFolder, *, large: int = LARGE):
        self.config, self.folder, self.large = config, folder, large
        self.log = DecisionLog(folder.root)
        self._lock = threading.Lock()
        summary = json.loads(Path(folder.summary).read_text(encoding="utf-8")) if Path(folder.summary).exists() else {}
        self.threshold = float(summary.get("threshold_match_probability", 0.5))
        self.records = self._read_records()
        self.pairs = self._read_pairs()
        self.comparisons = [c[len("mw_"):] for c in self.pairs.column_names if c.startswith("mw_") and not c.startswith("mw_tf_adj_")]
        self.base_ids = self.records["match_id"]
        self._run_ids = set(self.base_ids)
        self._refresh(self.log.read())

    # -- loading -------------------------------------------------------------------------------

    def _read_records(self) -> pd.DataFrame:
        """The run's rows with text ``id`` (record id) and ``match_id`` as the index and a column."""
        schema = _schema(self.folder.matches)
        key = RECORD_ID if RECORD_ID in schema.names else self.config.primary_key
        shown = self.columns_shown(schema.names, key)
        self.source_column = next((c for c in (SOURCE_SYSTEM, SOURCE_DATASET_COLUMN) if c in shown), None)
        table = pq.read_table(self.folder.matches, columns=[key, "match_id", *shown])
        records = table.drop_columns([key, "match_id"]).to_pandas()
        self._ids = table[key].cast(pa.string()).combine_chunks()
        records.insert(0, "id", self._ids.to_pandas())
        records["match_id"] = _text(table["match_id"])
        self.key_values = dict(zip(records["id"], table[key].to_pylist()))  # the run's own id type, for new ids
        return records.set_index("id", drop=False)

    def columns_shown(self, names: list[str], key: str) -> list[str]:
        """The columns a steward compares: the source, then the profile fields (sources) or the model's columns."""
        source = [c for c in (SOURCE_SYSTEM, SOURCE_DATASET_COLUMN) if c in names][:1]
        wanted = profile_fields(self.config) if self.config.sources else list(self.config.column_names)
        hidden = {key, "match_id", self.config.truth_column, *source}
        return source + [c for c in wanted if c in names and c not in hidden]

    def _read_pairs(self) -> pa.Table:
        """The scored pairs (Arrow, ids dropped); :attr:`pair_l`, :attr:`pair_r` hold the positions of their
        records in :attr:`records`, :attr:`pair_probability` their match probabilities."""
        names = _schema(self.folder.pairs).names
        weights = [c for c in names if c.startswith(("mw_", "gamma_"))]
        table = pq.read_table(self.folder.pairs, columns=["record_id_l", "record_id_r", "match_probability", "match_weight", *weights])
        codes = [pc.index_in(table[f"record_id{side}"].cast(pa.string()), value_set=self._ids) for side in ("_l", "_r")]
        table = table.drop_columns(["record_id_l", "record_id_r"])
        if codes[0].null_count or codes[1].null_count:  # keep the pairs whose two records are in matches/
            known = pc.and_(pc.is_valid(codes[0]), pc.is_valid(codes[1]))
            table, codes = table.filter(known), [c.filter(known) for c in codes]
        table = table.combine_chunks()
        self.pair_l, self.pair_r = (c.to_numpy(zero_copy_only=False).astype(np.int64) for c in codes)
        self.pair_probability = table["match_probability"].to_numpy()
        # every pair under each of its two records, sorted by record: a record's pairs by binary search
        ends = np.concatenate([self.pair_l, self.pair_r])
        order = np.argsort(ends, kind="stable")
        self._ends, self._pair_of_end = ends[order], np.tile(np.arange(len(table)), 2)[order]
        return table

    def pairs_of(self, records: list[str]) -> pd.DataFrame:
        """Every scored pair with one or both ends in ``records``, with the record ids as ``id_l`` and ``id_r``."""
        codes = self.records.index.get_indexer(records)
        starts, stops = np.searchsorted(self._ends, codes, "left"), np.searchsorted(self._ends, codes, "right")
        positions = np.unique(np.concatenate([self._pair_of_end[a:b] for a, b in zip(starts, stops)] or [np.array([], int)]))
        ids = self.records.index.to_numpy()
        return self.pairs.take(positions).to_pandas().assign(id_l=ids[self.pair_l[positions]], id_r=ids[self.pair_r[positions]])

    # -- entities ------------------------------------------------------------------------------

    def _refresh(self, decisions: list[Decision]) -> None:
        """Apply ``decisions`` (the whole log) to the run's clusters."""
        self.decisions = decisions
        current = self.base_ids.copy()
        self.decided = decided_ids(decisions)
        decided = pd.Series(self.decided, dtype=object)
        decided = decided[decided.index.isin(current.index)]
        current.loc[decided.index] = decided.to_numpy()
        if getattr(self, "current", None) is None:
            self.members = current.groupby(current).groups
        else:  # only the entities whose records changed are regrouped (a decision touches a few)
            changed = current.to_numpy() != self.current.to_numpy()
            touched = set(self.current[changed]) | set(current[changed])
            for match_id in touched:
                self.members.pop(match_id, None)
            regrouped = current[current.isin(touched)]
            self.members.update(regrouped.groupby(regrouped).groups)
        self.current = current
        self._queue: pd.DataFrame | None = None

    def entity_of(self, record: str) -> str | None:
        return self.current.get(record)

    def members_of(self, match_id: str) -> list[str]:
        if match_id not in self.members:
            raise KeyError(match_id)
        return sorted(self.members[match_id], key=lambda r: self.key_values[r])

    def version(self, match_id: str) -> str:
        """Changes whenever the entity's records change or a decision names one of them (or undoes one that did)."""
        members = self.members_of(match_id)
        named = set(members)
        touching = {d.decision_id for d in self.decisions if named & (set(d.records) | set(d.moved))}
        touching |= {d.decision_id for d in self.decisions if d.undoes in touching}
        return hashlib.sha1(json.dumps([members, sorted(touching)]).encode()).hexdigest()[:12]

    def reviewed(self, match_id: str) -> bool:
        """Every record of the entity is on a decision in force that gave it this id."""
        return all(self.decided.get(r) == match_id for r in self.members_of(match_id))

    def queue(self) -> pd.DataFrame:
        """Entities worth a look, most uncertain first (see :func:`matcher.review.queue.uncertainty`)."""
        if self._queue is None:
            from matcher.review.queue import uncertainty

            self._queue = uncertainty(self)
        return self._queue

    def entity(self, match_id: str) -> dict[str, Any]:
        """Everything the entity page shows: records, links with their waterfall, near candidates, golden record, decisions."""
        members = self.members_of(match_id)
        rows = self.records.loc[members].assign(match_id=match_id)
        pairs = self.pairs_of(members)
        inside = pairs["id_l"].isin(members) & pairs["id_r"].isin(members)
        links = pairs[inside].sort_values("match_probability")
        near = pairs[~inside].sort_values("match_probability", ascending=False).head(5)
        undone = {d.undoes for d in self.decisions if d.action == "undo"}
        return {
            "match_id": match_id,
            "version": self.version(match_id),
            "reviewed": self.reviewed(match_id),
            "columns": [c for c in rows.columns if c not in ("id", "match_id")],
            "records": [self._record(r) for r in rows.to_dict("records")],
            "golden": self._golden(rows),
            "links": [self._link(p) for p in links.head(SHOWN_LINKS).to_dict("records")],
            "links_total": int(len(links)),
            "candidates": [
                {**self._link(p), "other_match_id": self.current[p["id_r"] if p["id_l"] in members else p["id_l"]]}
                for p in near.to_dict("records")
            ],
            "decisions": [
                {**d.as_json(), "undone": d.decision_id in undone}
                for d in self.decisions
                if d.action != "undo" and (set(d.records) | set(d.moved)) & set(members)
            ],
        }

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(v) for k, v in row.items() if k != "match_id"}

    def _link(self, pair: dict[str, Any]) -> dict[str, Any]:
        return {
            "id_l": pair["id_l"], "id_r": pair["id_r"],
            "match_probability": float(pair["match_probability"]), "match_weight": float(pair["match_weight"]),
            "comparisons": [
                {"name": c, "level": _plain(pair.get(f"gamma_{c}")),
                 "weight": float(pair[f"mw_{c}"]) + float(pair.get(f"mw_tf_adj_{c}", 0.0) or 0.0)}
                for c in self.comparisons
            ],
        }

    def _golden(self, rows: pd.DataFrame) -> dict[str, Any]:
        """The golden record (the run's survivorship rules with ``sources:``, else each column's most common value)."""
        shown = [c for c in rows.columns if c not in ("id", "match_id")]
        if self.config.sources and SOURCE_SYSTEM in rows.columns and set(profile_fields(self.config)) <= set(rows.columns):
            golden = golden_record(rows.assign(**{RECORD_ID: rows["id"], "match_id": rows["match_id"].iloc[0]}), self.config)
            return {c: _plain(golden.get(c)) for c in shown if c in golden}
        return {c: _plain(rows[c].dropna().mode().iloc[0]) if rows[c].notna().any() else None for c in shown}

    # -- decisions -----------------------------------------------------------------------------

    def decide(self, action: Action) -> Decision:
        """Check ``action`` against the latest log, append it as a decision and apply it; :class:`ReviewConflict` if it no longer fits."""
        if not action.who.strip():
            raise InputDataError("who: a reviewer name is required")
        with self._lock, self.log.locked() as latest:
            if latest != self.decisions:
                self._refresh(latest)
            decision = self._decision(action, next_id(latest))
            problem = contradiction([*latest, decision])
            if problem is not None:
                raise ReviewConflict(
                    f"this {decision.action} contradicts earlier decisions: records {problem[0]} and {problem[1]} would have "
                    "to be together and apart; undo one of those decisions first"
                )
            self.log.append(decision)
            self._refresh([*latest, decision])
            return decision

    def _checked(self, match_id: str | None, version: str | None) -> list[str]:
        if match_id is None or match_id not in self.members:
            raise KeyError(match_id)
        if version is not None and version != self.version(match_id):
            raise ReviewConflict(f"entity {match_id} changed since this page was loaded (another reviewer's decision); reload it")
        return self.members_of(match_id)

    def _decision(self, action: Action, decision_id: str) -> Decision:
        base = {"decision_id": decision_id, "action": action.action, "who": action.who.strip(), "when": now(),
                "why": action.why.strip()}
        if action.action == "undo":
            return Decision(**base, undoes=self._undoable(action.undoes))
        members = self._checked(action.match_id, action.version)
        if action.action == "confirm":
            return Decision(**base, match_id=action.match_id, records=tuple(members))
        if action.action == "split":
            return self._split(base, action.match_id, members, action.moved)
        if action.action == "merge":
            return self._merge(base, action.match_id, members, action.other_match_id)
        if action.action in ("match", "not_match"):
            pair = tuple(dict.fromkeys(action.records))
            if len(pair) != 2 or not all(r in self.current.index for r in pair) or not set(pair) & set(members):
                raise InputDataError(f"records: a pair label needs two different records, one of them in entity {action.match_id}")
            return Decision(**base, match_id=action.match_id, records=pair)
        raise InputDataError(f"action: unknown action {action.action!r}")

    def _undoable(self, decision_id: str | None) -> str:
        found = {d.decision_id: d for d in self.decisions}
        if decision_id not in found or found[decision_id].action == "undo":
            raise InputDataError(f"undoes: no decision {decision_id!r} to undo")
        if decision_id not in {d.decision_id for d in in_force(self.decisions)}:
            raise ReviewConflict(f"decision {decision_id} is undone already")
        return decision_id

    def _new_id(self, part: list[str], taken: set[str]) -> str:
        """A part's name, by the rule every run names a cluster (:func:`smallest_free_id`), in the run's id type."""
        typed = {self.key_values.get(m, m) for m in taken}
        return str(smallest_free_id([self.key_values[r] for r in part], typed))

    def _split(self, base: dict, match_id: str, members: list[str], moved: tuple[str, ...]) -> Decision:
        moved_set = set(moved)
        if not moved_set or not moved_set < set(members):
            raise InputDataError(f"moved: choose some, not all, of the records of entity {match_id}")
        kept = [r for r in members if r not in moved_set]
        out = [r for r in members if r in moved_set]
        taken = set(self.members) - {match_id}
        if len(out) > len(kept):  # the larger part keeps the id
            kept_id, moved_id = self._new_id(kept, taken | {match_id}), match_id
        else:
            kept_id, moved_id = match_id, self._new_id(out, taken | {match_id})
        return Decision(**base, match_id=kept_id, records=tuple(members), moved=tuple(out), new_match_id=moved_id)

    def _merge(self, base: dict, match_id: str, members: list[str], other: str | None) -> Decision:
        if other is None or other not in self.members or other == match_id:
            raise InputDataError(f"other_match_id: name another entity to merge with {match_id}")
        others = self.members_of(other)
        survivor, retired = sorted([match_id, other], key=lambda m: self._age(m, len(self.members[m])))
        return Decision(**base, match_id=survivor, records=tuple(members + others), retired_match_id=retired)

    def _age(self, match_id: str, size: int) -> tuple:
        """Sort key, oldest first: the run's ids before decisions' (in log order), then the larger entity, then the id."""
        if match_id in self._run_ids:
            return (0, 0, -size, match_id)
        made = [i for i, d in enumerate(self.decisions) if match_id == d.new_match_id]
        return (1, made[0] if made else len(self.decisions), -size, match_id)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value if isinstance(value, (str, int, float, bool)) else str(value)
