"""Incremental matching: new, updated and deleted records against an already-matched run, with stable ids.

:func:`match_incremental_task` reads an existing run folder (``model/``, ``matches/``,
``pairs/``, ``summary.json``), a file of new records and optionally a delete list, and
writes a complete, updated run folder plus a change log. Only the new records are
scored, with Splink's ``predict_between`` (new against existing and, in the same call,
new among themselves), with the existing run's trained model and term frequencies of
the updated dataset; the existing pairs are re-weighed for those frequencies in the driver
(:class:`TermFrequencyDrift`), as a full re-run would score them. Only the clusters that
new, removed or re-weighed pairs touch are re-clustered, in the driver. The steps live in
:mod:`~matcher.incremental.arguments`, :mod:`~matcher.incremental.existing_run`,
:mod:`~matcher.incremental.delta`, :mod:`~matcher.incremental.stored_pairs`,
:mod:`~matcher.incremental.scoring`, :mod:`~matcher.incremental.recluster`,
:mod:`~matcher.incremental.change_log` and :mod:`~matcher.incremental.write_run`; this module wires them.

**Updates and deletes.** A new record whose primary key already exists is a new version:
the old version is removed (with its scored pairs) and the new one scored like any new
record. A delete list (CSV or Parquet with the primary key column) removes records.
The clusters that lose records are re-clustered from their remaining above-threshold
pairs (``pairs/`` of the existing run), so a cluster can split.

**Decisions.** The existing run's data stewards' decision log (``decisions.jsonl``, see
:mod:`matcher.matching.decisions`) is copied into the output folder as it was read and
applied: every cluster holding a record that a decision in force names is re-clustered,
with the decisions' must- and cannot-links respected (decided records no longer in the
run are dropped with a warning; a contradiction is an error naming the log), and
``summary.json`` gets a ``decisions`` entry. Rows on a decided must-link get
``match_confidence_score`` 1.0.

**Stable ids** (see :func:`stable_match_ids`). Clusters that no new, updated, deleted or
decided record touches keep their ``match_id`` byte for byte. Among the re-clustered
components:

0. a component holding decided records takes the id the decisions gave most of them
   (:func:`~matcher.matching.decisions.claimed_ids`; an id an untouched cluster uses is
   never taken); a merge it makes is listed with ``rule: decision``;
1. every old cluster's id goes to the component that holds most of its surviving
   records (tie: the component whose smallest record id is smallest);
2. a component that receives several old ids (a bridge) keeps the id of the old cluster
   that contributed most records to it (tie: the smallest id); the others are
   **retired** and listed as a merge; a component named by rule 0 keeps that name and
   no other takes an id rule 0 gave;
3. a component that receives no old id (only new records, or the smaller piece of a
   split) takes the full run's rule: its smallest record id that no other cluster uses
   (when all are taken: ``<smallest>~2`` for text ids, the largest id in use + 1 for numbers).

A full run names every cluster by its smallest record id, so the two runs produce the
same partition of records; an id differs only where rule 1–2 kept an older id: a
cluster joined by a record with a smaller id, a merge, or a split piece that does not
hold the old smallest record.

**Change log** (``changes.json`` and, one row per record, ``changes/`` in Parquet):
``record_id``, ``change``, ``old_match_id``, ``new_match_id``, where ``change`` is

* ``new``: a new record in a new cluster; ``joined``: a new record in a cluster that
  existed before (its id kept);
* ``updated``: a new version of an existing record (old and new ``match_id``);
* ``deleted``: a record of the delete list (``new_match_id`` null);
* ``moved``: an existing, unchanged record whose ``match_id`` changed (merge or split).

``changes.json`` also lists ``merges`` (``surviving_id``, ``retired_ids``, ``sizes``,
``rule``, ``linked_by``), ``splits`` (``old_match_id``, ``match_ids`` of the pieces,
``kept_by``, ``caused_by``) and ``retired_ids`` (every id that no longer names a
cluster). An empty ``linked_by``/``caused_by`` means re-weighing (term-frequency drift) did it. Nothing else: records whose ``match_id`` did not change are not listed, even
when their ``match_confidence_score`` did.
"""

from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from pyspark.sql import SparkSession

from matcher.blocking.rules import prediction_rules, preselect
from matcher.config.transform import TransformConfig
from matcher.incremental.arguments import check_arguments, new_source_paths
from matcher.incremental.change_log import CHANGES_JSON, CHANGES_PARQUET, ChangeLog, change_log
from matcher.incremental.delta import Delta, read_delta
from matcher.incremental.existing_run import ExistingRun, open_existing_run
from matcher.incremental.recluster import recluster
from matcher.incremental.scoring import score_new_records
from matcher.incremental.stored_pairs import stored_pairs_now
from matcher.incremental.term_frequency_drift import term_frequencies, term_frequency_columns
from matcher.incremental.write_run import match_rows, write_harmonization_outputs, write_run
from matcher.matching.decisions import DECISIONS, Decision, DecisionLog, ids_named
from matcher.matching.enforced import DecidedLinks, decided_links
from matcher.matching.summary import run_summary
from matcher.runtime.errors import ConfigError
from matcher.runtime.outputs import write_json
from matcher.runtime.run_folder import RunFolder, open_run_folder, task_session

__all__ = ["CHANGES_JSON", "CHANGES_PARQUET", "ERASURES", "apply_delta", "match_incremental_task", "new_source_paths"]

log = logging.getLogger(__name__)

ERASURES = "erasures.jsonl"
"""The erasures a run folder has had (``matcher forget``); every run built on it carries them on."""


class _Laps:
    """Seconds per step (``timings_s`` of the summary), each from the end of the one before."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.timings[name] = round(now - self.last, 3)
        self.last = now
        return self.timings[name]

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def _copy_decisions(existing: RunFolder, output: RunFolder) -> list[Decision] | None:
    """The existing run's decision log, read under its lock and copied into ``output`` as read; None without one."""
    log = DecisionLog(existing.root)
    if not log.path.exists():
        return None
    with log.locked() as decisions:
        log.copy_to(output.root)
    return decisions


def _decided(decisions: list[Decision], where: str, keys: pd.Series, integral: bool) -> DecidedLinks:
    """The links and ids of ``decisions`` on the records with these ``keys`` (the run's after the delta)."""
    wanted = ids_named(decisions)
    as_text = keys.astype(str)
    found = as_text.isin(wanted).to_numpy()
    return decided_links(decisions, where, dict(zip(as_text[found], keys[found])), integral)


def _summary(config: TransformConfig, existing: ExistingRun, output: RunFolder, changes: ChangeLog,
             incremental: dict[str, Any], timings: dict[str, float], **sections: Any) -> dict:
    """``summary.json`` of the incremental run, with the ``incremental`` counts and the change log's."""

    def count(path: Path) -> int:
        return ds.dataset(str(path), format="parquet").count_rows()

    return run_summary(
        config, existing.threshold, rows_in=len(changes.final), n_pairs=count(output.pairs),
        n_clusters=changes.final.nunique(), rows_out=count(output.matches),
        incremental={"existing": existing.folder.location, **incremental, **changes.counts}, **sections,
        outputs={
            "matches": str(output.matches),
            "pairs": str(output.pairs),
            "model": str(output.model),
            "changes": str(output.root / CHANGES_JSON),
        },
        timings_s=timings,
    )


def match_incremental_task(
    config: TransformConfig,
    existing_folder: RunFolder,
    new_path: str | Mapping[str, str],
    output: RunFolder,
    spark: SparkSession | None = None,
    *,
    delete_path: str | None = None,
) -> dict:
    """Match ``new_path`` (and apply ``delete_path``) against the run in ``existing_folder``; write ``output``.

    For a ``sources:`` config ``new_path`` maps source names to their new files (see
    :func:`new_source_paths`); the new rows are harmonized like a full run's and the
    ``quarantine`` and ``customers`` tables are updated too.

    ``output`` receives ``model/`` (a copy), ``matches/``, ``pairs/``, ``changes.json``,
    ``changes/``, the decision log (a copy, applied) and ``summary.json`` (last). Returns the summary.
    """
    check_arguments(config, existing_folder, new_path, output)

    def read(spark: SparkSession, config: TransformConfig, existing: ExistingRun) -> Delta:
        return read_delta(spark, config, new_path, delete_path, existing.key_type, existing.input_columns)

    return apply_delta(config, existing_folder, read, output, spark)


def apply_delta(
    config: TransformConfig,
    existing_folder: RunFolder,
    read: Callable[[SparkSession, TransformConfig, ExistingRun], Delta],
    output: RunFolder,
    spark: SparkSession | None = None,
    *,
    erased_from_quarantine: set = frozenset(),
) -> dict:
    """Apply the delta ``read`` gives to the run in ``existing_folder``; write ``output`` (see
    :func:`match_incremental_task`). A ``sources:`` config's customers are rebuilt for the
    clusters the change log touches; ``erased_from_quarantine``: record ids whose quarantined
    rows go (``matcher forget``)."""
    laps = _Laps()
    existing = open_existing_run(config, existing_folder)
    decisions = _copy_decisions(existing_folder, output)
    config = existing.model.configure(config)  # the rules the run's training chose, for an automatic config
    key, threshold = config.primary_key, existing.threshold.match_probability
    with task_session(output, spark) as spark:
        if (existing_folder.root / ERASURES).exists():  # an erased record stays known as erased
            shutil.copyfile(existing_folder.root / ERASURES, output.root / ERASURES)
        delta = read(spark, config, existing)
        laps.lap("read_new")
        tf_columns = term_frequency_columns(existing.model)
        old = existing.records(key, tf_columns)
        removals = delta.removals(pd.Index(old[key]), key)
        remaining = old[~old[key].isin(removals.keys)]
        frequencies = {c: term_frequencies(pd.concat([remaining[c], delta.new[c]], ignore_index=True).rename(c)) for c in tf_columns}
        if len(delta.new):
            candidates = preselect(existing.matches, prediction_rules(config), delta.new, existing.input_columns)
        else:  # deletes only: nothing to score, nothing to read
            candidates = pd.DataFrame(columns=existing.input_columns)
        candidates = candidates[~candidates[key].isin(removals.keys)]
        laps.lap("read_existing")
        # re-weighing the stored pairs (Arrow, numpy) and scoring (DuckDB or Spark) run side by side
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(stored_pairs_now, existing, frequencies, threshold, removals.keys, old, key)
            if len(delta.new):
                new_pairs = score_new_records(spark, config, existing.model, candidates, delta.new, delta.schema, frequencies)
            else:
                new_pairs = pd.DataFrame(columns=existing.pairs.schema.names)
            laps.lap("score")
            stored = pending.result()
        laps.timings["reweigh"] = stored.seconds
        laps.lap("reweigh_wait")
        old_ids = old.set_index(key)["match_id"]
        decided = None
        if decisions is not None:
            keys = pd.concat([remaining[key], delta.new[key]], ignore_index=True)
            decided = _decided(decisions, existing_folder.where(DECISIONS), keys, pa.types.is_integer(existing.key_type))
        clusters = recluster(
            old_ids, removals.keys, delta.new[key], new_pairs, stored, threshold, existing.clustering(config), decided
        )
        laps.lap("cluster")
        changes = change_log(old_ids, clusters.reassignment, set(delta.new[key]), set(removals.updated), delta.deleted)
        certain = set(decided.must_link["id_l"]) | set(decided.must_link["id_r"]) if decided is not None else set()
        rows = match_rows(changes.final, clusters.strongest, old, delta.new, key, threshold, certain)
        changes_json = changes.as_json(
            existing_folder.location, None if delta.new_path is None else str(delta.new_path),
            str(delta.delete_path) if delta.delete_path else None)
        write_run(existing, output, key, removals.keys, stored, new_pairs, rows, changes, changes_json)
        laps.lap("write")
        incremental = {
            "new_rows": int(len(delta.new)), "candidates": int(len(candidates)), "new_pairs": int(len(new_pairs)),
            "reclustered_records": int(len(clusters.nodes)), "term_frequency_reweighed": stored.reweighed,
            "pairs_across_threshold_after_reweighing": clusters.flipped, "rows_rewritten": int(len(rows.existing)),
        }
        sections = {"decisions": decided.facts} if decided is not None else {}
        summary = _summary(config, existing, output, changes, incremental, {**laps.timings, "match_total": laps.total()}, **sections)
        if config.sources is not None:
            summary["harmonization"] = write_harmonization_outputs(
                spark, config, existing.folder, output, delta.harmonized, changes.records, changes.retired,
                erased=erased_from_quarantine)
            summary["outputs"].update(quarantine=str(output.quarantine), customers=str(output.customers))
            if delta.harmonized is not None:
                delta.harmonized.unpersist()
            summary["timings_s"].update(harmonization_outputs=laps.lap("harmonization_outputs"), match_total=laps.total())
        write_json(summary, output.summary)
    log.info(
        "incremental: %d new rows (%d updates), %d deletes, %d pairs scored, %d records re-clustered, %d merges, %d splits",
        len(delta.new), len(removals.updated), len(delta.deleted), len(new_pairs), len(clusters.nodes),
        len(changes.merges), len(changes.splits),
    )
    return summary


def match_incremental_from(
    config: TransformConfig, existing: str | Path, new_path: str | Mapping[str, str], output: RunFolder,
    *, delete_path: str | None = None,
) -> dict:
    """:func:`match_incremental_task` on the completed run at ``existing`` (a path or URI, staged
    whole when remote); ``output`` must be another folder."""
    if output.uri is not None and output.uri == str(existing).rstrip("/"):
        raise ConfigError(f"{output.uri}: --output must be a new folder, not the existing run (it is read while the output is written)")
    with open_run_folder(existing, whole=True, read_only=True) as existing_folder:
        return match_incremental_task(config, existing_folder, new_path, output, delete_path=delete_path)
