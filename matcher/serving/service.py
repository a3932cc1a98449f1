"""Real-time matching against a run: one record, or a thousand, scored exactly as the batch scores them.

:class:`MatchService` opens a completed run folder (its model, threshold and matched records)
and answers in milliseconds, without Spark:

1. a record in a source's own schema (or the harmonized one) is prepared as the batch prepares
   it (:func:`matcher.harmonize.records.prepare_records`: mapping, standardization, quality gate);
2. its candidates are the run's records that share a prediction rule's key with it
   (:class:`~matcher.serving.reference.ReferenceRecords`);
3. the pairs are scored by one DuckDB query, Splink's own SQL with the run's model
   (:func:`~matcher.matching.driver_scoring.pair_scoring_sql`), term frequencies as a full
   run with the record in it would count them;
4. the record joins the entity of its best candidate when that pair reaches the run's
   threshold, else it is a new entity named as a full run names one (its own record id).

:meth:`MatchService.add` also keeps the records: they become candidates at once and are
appended to the run folder (:class:`~matcher.serving.journal.RunJournal`) before the answer.
The service never merges two existing entities: a record that links two is added to the one
it links best, and the next ``matcher match-incremental`` or full run re-clusters.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from matcher.config.transform import TransformConfig
from matcher.harmonize.records import golden_record, prepare_records
from matcher.incremental.existing_run import OUTPUT_COLUMNS, ExistingRun, open_existing_run
from matcher.incremental.term_frequency_drift import term_frequency_columns
from matcher.matching.driver_scoring import comparable_table, duckdb_connection, duckdb_model, pair_scoring_sql
from matcher.matching.stable_ids import plain, unused_id
from matcher.matching.threshold import match_confidence
from matcher.model.splink_adapter import prediction_rules
from matcher.runtime.errors import InputDataError
from matcher.runtime.run_folder import RunFolder
from matcher.serving.journal import RunJournal
from matcher.serving.reference import ReferenceRecords
from matcher.serving.scorer import PairScorer

log = logging.getLogger(__name__)

MAX_BATCH = 1000


class ConflictError(InputDataError):
    """A request that contradicts the run's state (a record id that is already matched)."""


@dataclass(frozen=True)
class Decision:
    """One record's answer: its entity, how sure the model is, and the candidates that decided it."""

    record_id: Any
    match_id: Any
    new_entity: bool
    match_confidence_score: float
    candidates: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _other_side(name: str, pair: dict[str, Any]) -> str:
    """``x_r`` for ``x_l`` and ``x_l`` for ``x_r`` when the pair has both; else ``name``."""
    for side, other in (("_l", "_r"), ("_r", "_l")):
        if name.endswith(side) and f"{name[:-2]}{other}" in pair:
            return f"{name[:-2]}{other}"
    return name


def _number(value: Any) -> float | None:
    """A float JSON can hold: None for NaN and ±inf (a level with m = 0 has weight -inf)."""
    number = float(value)
    return number if np.isfinite(number) else None


def _json_value(value: Any) -> Any:
    """A table value as JSON holds it (dates as ISO text, NaN and ±inf as null)."""
    value = plain(value)
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class MatchService:
    """Matches records against a run's matched records with the run's model and threshold."""

    def __init__(self, config: TransformConfig, existing: ExistingRun) -> None:
        self.config = config
        self.run = existing.folder.location
        self.key = config.primary_key
        self.threshold = existing.threshold.match_probability
        self.comparisons = [c.name for c in config.columns]
        self._lock = threading.Lock()
        self._input_columns = existing.input_columns
        self._schema = existing.matches.schema.remove_metadata()
        self._tf_columns = term_frequency_columns(existing.model)
        self._journal = RunJournal(existing.matches, existing.pairs, existing.folder.matches, existing.folder.pairs)
        records = comparable_table(existing.matches.to_table(), config).combine_chunks()  # one chunk: rows taken fast
        rules = prediction_rules(duckdb_model(config, existing.model))
        self.reference = ReferenceRecords(records, self.key, rules, self._tf_columns, duckdb_connection())
        schema = self._with_frequencies(records.select(self._input_columns).slice(0, 0), []).schema
        self._scorer = PairScorer(pair_scoring_sql(config, existing.model, PairScorer.NEW, PairScorer.CANDIDATES), schema)
        self._scored_columns = [c for c in self._input_columns if c in self._scorer.columns]  # what blocking and scoring read
        if self.reference.unindexed_rules:
            log.warning(
                "prediction rule(s) %s have no equi-join key to look up: every record is a candidate for them (slow on a large run)",
                ", ".join(str(i) for i in self.reference.unindexed_rules),
            )

    @classmethod
    def open(cls, config: TransformConfig, folder: RunFolder) -> "MatchService":
        """The service for the completed run in ``folder`` (checked like an incremental run's base)."""
        started = time.perf_counter()
        existing = open_existing_run(config, folder)
        service = cls(existing.model.configure(config), existing)
        log.info("serving %d records of %s (%.1f s to load)", len(service.reference), folder.location, time.perf_counter() - started)
        return service

    # --- preparing and scoring ----------------------------------------------------------------

    def prepare(self, records: list[dict[str, Any]], source: str | None) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
        """The records as the batch matches them, and the ones its quality gate quarantines (index, reason)."""
        if not records:
            raise InputDataError("records: at least one record is needed")
        if len(records) > MAX_BATCH:
            raise InputDataError(f"records: at most {MAX_BATCH} records per request, got {len(records)}")
        prepared = prepare_records(self.config, records, source)
        return prepared.rows, prepared.quarantined

    def _comparable(self, rows: pd.DataFrame, columns: list[str]) -> pa.Table:
        """``rows``' ``columns`` typed as the run's matches and compared as the batch compares them."""
        table = pa.Table.from_pandas(rows[columns], preserve_index=False)
        return comparable_table(table.cast(pa.schema([self._schema.field(c) for c in columns])), self.config)

    def _with_frequencies(self, table: pa.Table, new: list[bool]) -> pa.Table:
        for column in self._tf_columns:
            shares = self.reference.frequencies.frequencies(column, table[column].to_pylist(), new=new)
            table = table.append_column(f"tf_{column}", shares)
        return table

    def score(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """Every pair a prediction rule blocks between ``rows`` and the reference records, scored; a
        record already in the reference is not paired with itself. ``_l`` is the new record."""
        table = self._comparable(rows, self._scored_columns)
        new = [self.reference.position(k) is None for k in table[self.key].to_pylist()]
        positions = self.reference.candidates(table)
        candidates = self.reference.rows(positions, self._scored_columns)
        scored = self._scorer.score(self._with_frequencies(table, new),
                                    self._with_frequencies(candidates, [False] * len(candidates)))
        return [pair for pair in scored if pair[f"{self.key}_l"] != pair[f"{self.key}_r"]]

    # --- deciding ---------------------------------------------------------------------------

    def _new_match_id(self, record_id: Any) -> Any:
        """A new entity's id as a full run names it: its record id, unless another entity uses it."""
        members = self.reference.members(record_id)
        own = self.reference.position(record_id)
        if not members or members == [own]:
            return record_id
        return unused_id(record_id, self.reference.entity_ids)

    def _candidate(self, pair: dict[str, Any]) -> dict[str, Any]:
        """One scored pair as the answer shows a candidate: ids, probability, weight per comparison."""
        other = pair[f"{self.key}_r"]
        comparisons = {
            name: {"level": int(pair[f"gamma_{name}"]),
                   "match_weight": _number(float(pair[f"mw_{name}"]) + float(pair.get(f"mw_tf_adj_{name}", 0.0)))}
            for name in self.comparisons
        }
        return {
            "record_id": _json_value(other),
            "match_id": _json_value(self.reference.match_id(other)),
            "match_probability": _number(pair["match_probability"]),
            "match_weight": _number(pair["match_weight"]),
            "comparisons": comparisons,
        }

    def decide(self, rows: pd.DataFrame, scored: list[dict[str, Any]], top: int) -> list[Decision]:
        """Each record's entity: its best candidate's when that pair reaches the threshold, else a new one."""
        by_record: dict[Any, list[dict[str, Any]]] = {}
        for pair in scored:
            by_record.setdefault(pair[f"{self.key}_l"], []).append(pair)
        for pairs in by_record.values():
            pairs.sort(key=lambda p: (-p["match_probability"], p[f"{self.key}_r"]))
        decisions = []
        for record_id in rows[self.key].tolist():
            pairs = by_record.get(record_id, [])
            best = pairs[0]["match_probability"] if pairs else np.nan
            candidates = [self._candidate(p) for p in pairs[:max(top, 1)]]
            joins = bool(pairs) and best >= self.threshold
            match_id = candidates[0]["match_id"] if joins else _json_value(self._new_match_id(record_id))
            confidence = float(match_confidence(best, self.threshold))
            decisions.append(Decision(_json_value(record_id), match_id, not joins, confidence, candidates[:top]))
        return decisions

    # --- the service's operations -------------------------------------------------------------

    def match(self, records: list[dict[str, Any]], source: str | None = None, top: int = 5) -> list[dict[str, Any]]:
        """Match ``records`` without keeping them; a quarantined record's answer names its reason."""
        rows, quarantined = self.prepare(records, source)
        with self._lock:
            decisions = self.decide(rows, self.score(rows), top) if len(rows) else []
        return self._answers(len(records), rows, decisions, quarantined)

    def add(self, records: list[dict[str, Any]], source: str | None = None, top: int = 5) -> list[dict[str, Any]]:
        """Match ``records`` one after the other, keep each (a candidate for the next at once) and append
        them to the run folder before returning. Record ids already matched are refused (an update
        is ``match-incremental``'s work)."""
        rows, quarantined = self.prepare(records, source)
        keys = rows[self.key].tolist()
        if len(set(keys)) != len(keys):
            raise InputDataError(f"records: primary key {self.key!r} repeats within the request")
        with self._lock:
            known = [k for k in keys if self.reference.position(k) is not None]
            if known:
                raise ConflictError(
                    f"record {_json_value(known[0])!r}: already in the run; updates go through 'matcher match-incremental'")
            decisions, matched, pairs = [], [], []
            try:
                for i in range(len(rows)):
                    row = rows.iloc[[i]].reset_index(drop=True)
                    scored = self.score(row)
                    decision = self.decide(row, scored, top)[0]
                    row = row.assign(match_id=[decision.match_id], match_confidence_score=[decision.match_confidence_score])
                    self.reference.add(self._comparable(row, [*self._input_columns, *OUTPUT_COLUMNS]))
                    decisions.append(decision)
                    matched.append(row)
                    pairs.extend(scored)
                self._journal.append(pd.concat(matched, ignore_index=True), self._pair_rows(pairs))
            except BaseException:
                self.reference.discard_last(len(matched))  # nothing half-kept: not on disk, not a candidate
                raise
        log.info("added %d records (%d new entities)", len(decisions), sum(d.new_entity for d in decisions))
        return self._answers(len(records), rows, decisions, quarantined)

    def _pair_rows(self, pairs: list[dict[str, Any]]) -> pd.DataFrame:
        """Scored pairs as ``pairs/`` holds them: ``record_id_l``/``_r`` beside the key's, each pair
        oriented as a full run orients it (smaller record id left: every ``_l``/``_r`` swapped)."""
        rows = []
        for pair in pairs:
            pair = {**pair, "record_id_l": pair[f"{self.key}_l"], "record_id_r": pair[f"{self.key}_r"]}
            if pair["record_id_l"] > pair["record_id_r"]:
                pair = {_other_side(name, pair): value for name, value in pair.items()}
            rows.append(pair)
        return pd.DataFrame(rows)

    def _answers(self, n: int, rows: pd.DataFrame, decisions: list[Decision],
                 quarantined: list[tuple[int, str]]) -> list[dict[str, Any]]:
        """One answer per request record, in request order: a decision, or the quarantine reason."""
        reasons = dict(quarantined)
        answers, decided = [], iter(decisions)
        for i in range(n):
            answers.append({"quarantined": reasons[i]} if i in reasons else next(decided).as_dict())
        return answers

    def entity(self, match_id: str) -> dict[str, Any]:
        """One entity's records and golden record; ``match_id`` as the URL gives it (text)."""
        members = self.reference.members(match_id)
        if not members and match_id.lstrip("-").isdigit():
            members = self.reference.members(int(match_id))
        if not members:
            raise KeyError(match_id)
        rows = self.reference.rows(np.array(sorted(members), dtype=np.int64)).to_pandas()
        records = [{k: _json_value(v) for k, v in row.items()} for row in rows.to_dict("records")]
        golden = golden_record(rows, self.config) if self.config.sources else None
        return {"match_id": records[0]["match_id"], "records": records,
                "golden_record": {k: _json_value(v) for k, v in golden.items()} if golden else None}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "run": str(self.run), "records": len(self.reference), "threshold": self.threshold}
