"""``matcher forget``: erase people's records from a completed run folder and from the graph.

What a GDPR/CCPA erasure request needs. Given record keys (``SOURCE:PK`` for a ``sources:``
config, the primary key otherwise), :func:`forget_task`:

1. checks every key: in the run's matches, in its quarantine, or erased before (listed in
   ``erasures.jsonl``: then it is reported, not an error, so a repeated request is harmless);
   any other key is a one-line error and nothing changes;
2. builds the erased run in ``RUN/.forget/`` with the incremental machinery
   (:func:`~matcher.incremental.task.apply_delta`, a delta of deletes only): matches and pairs
   without the records, the clusters they were in re-clustered from their remaining pairs (a
   cluster can split; untouched clusters keep their ``match_id``), the golden records of the
   touched clusters rebuilt, the quarantined rows and the labeled rows of the keys dropped, a
   change log (``changes.json``, ``changes/``) listing the erased records as ``deleted``;
3. swaps it into the run folder: the completion markers go first (``summary.json``,
   ``metrics.json`` and ``report.html``, which may show values of the erased records), then
   each entry is replaced, ``summary.json`` last. A forget killed during the swap is finished
   by the next ``matcher forget`` on the folder (before anything else), unless the run was
   completed again since (then the stale erased run is dropped);
4. appends the erasure record to ``erasures.jsonl``: when, the record ids, the clusters
   rebuilt and retired; never a value;
5. updates the graph (config with a ``graph:`` section, unless ``graph=False``) as
   ``matcher load-graph --changes-only`` does: the records' vertices and edges dropped, with
   the identifier vertices (email, phone, address) and customers no one else has; the touched
   customers rewritten from their rebuilt golden records.

The sources themselves are not touched: a full re-run from sources that still hold the
records brings them back. Copies outside this folder (other run folders, ``watch``
generations, labeling files, Neptune snapshots, S3 object versions) are not either.
A remote (``s3://``) run folder is erased in its staged copy and copied back, ``summary.json``
last; a forget killed during that copy leaves the folder incomplete (readers refuse it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyspark.sql import SparkSession

from matcher.config.base import RECORD_ID
from matcher.config.transform import TransformConfig
from matcher.incremental.change_log import CHANGES_JSON
from matcher.incremental.delta import Delta, typed_keys
from matcher.incremental.existing_run import ExistingRun
from matcher.incremental.task import ERASURES, apply_delta
from matcher.labels.files import erase_labels
from matcher.runtime.errors import InputDataError, MatcherError
from matcher.runtime.outputs import sync_directory, write_json
from matcher.runtime.remote_folder import relocate
from matcher.runtime.run_folder import RunFolder, claim_run_folder, retract_completion

log = logging.getLogger(__name__)

STAGING, BUILDING = ".forget", ".forget-build"  # the erased run, complete; and while it is built


def record_keys(config: TransformConfig, keys: Sequence[str]) -> list[str]:
    """The run's record ids for ``keys``: ``SOURCE:PK`` (a known source) for a ``sources:`` config,
    the primary key otherwise; a malformed key is a one-line error naming it."""
    if not keys:
        raise InputDataError("forget: no --key given")
    if config.sources is None:
        return [str(k) for k in keys]
    names = {s.name for s in config.sources}
    for key in keys:
        source, sep, pk = str(key).partition(":")
        if not sep or not pk or source not in names:
            raise InputDataError(f"--key {key!r}: a config with sources takes SOURCE:PK (sources: {', '.join(sorted(names))})")
    return [str(k) for k in keys]


def erased_before(root: Path) -> set[str]:
    """The record ids ``root/erasures.jsonl`` lists (text)."""
    path = root / ERASURES
    if not path.exists():
        return set()
    return {str(r) for line in path.read_text(encoding="utf-8").splitlines() if line.strip() for r in json.loads(line)["records"]}


def _quarantined(folder: RunFolder, ids: set[str]) -> set[str]:
    """Which of ``ids`` name quarantined rows of the run."""
    if not ids or not folder.quarantine.is_dir():
        return set()
    table = ds.dataset(str(folder.quarantine)).to_table(columns=[RECORD_ID])
    found = table.filter(pc.is_in(table[RECORD_ID].cast(pa.string()), value_set=pa.array(sorted(ids))))
    return {str(v) for v in found[RECORD_ID].to_pylist()}


def _matched(folder: RunFolder, key: str, ids: set[str]) -> set[str]:
    """Which of ``ids`` (text) are records of the run's matches."""
    table = ds.dataset(str(folder.matches), format="parquet").to_table(columns=[key])
    found = table.filter(pc.is_in(table[key].cast(pa.string()), value_set=pa.array(sorted(ids))))
    return {str(v) for v in found[key].to_pylist()}


def _swap(folder: RunFolder) -> None:
    """Move the complete erased run (``RUN/.forget``) into the run folder: the completion markers
    go first, then entry by entry, ``summary.json`` last."""
    staged = folder.root / STAGING
    retract_completion(folder)
    entries = [e for e in staged.iterdir() if not e.name.startswith(".")]  # not the staged folder's lock
    for entry in sorted(entries, key=lambda p: p.name == "summary.json"):
        target = folder.root / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(entry, target)
        sync_directory(folder.root)
    shutil.rmtree(staged)
    sync_directory(folder.root)


def finish_interrupted(folder: RunFolder) -> bool:
    """Finish the swap a stopped forget left (the run lacks ``summary.json``: the swap had begun);
    drop what is stale (a half-built erased run, or one the run has been completed again since).
    True when a swap was finished."""
    shutil.rmtree(folder.root / BUILDING, ignore_errors=True)
    if not (folder.root / STAGING).is_dir():
        return False
    if folder.summary.exists():
        shutil.rmtree(folder.root / STAGING)
        return False
    _swap(folder)
    return True


def _erasure_record(records: list[str], quarantined: list[str], labeled: int, changes: dict) -> dict[str, Any]:
    """One line of ``erasures.jsonl``: ids and counts, no values."""
    touched = sorted({str(r[k]) for r in changes["records"] for k in ("old_match_id", "new_match_id") if r.get(k) is not None})
    return {
        "erased_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": records + quarantined,
        "matched_records": len(records),
        "quarantined_records": len(quarantined),
        "labeled_rows": labeled,
        "clusters_touched": touched,
        "retired_match_ids": [str(r) for r in changes["retired_ids"]],
    }


def forget_task(
    config: TransformConfig, folder: RunFolder, keys: Sequence[str], spark: SparkSession | None = None, *, graph: bool = True,
) -> dict:
    """Erase the records ``keys`` name from the run in ``folder`` and, unless ``graph`` is False,
    from the config's graph (see the module docstring). Returns the erasure's summary."""
    ids = record_keys(config, keys)
    with claim_run_folder(folder):
        if finish_interrupted(folder):
            log.warning("finished the erasure a stopped 'matcher forget' left in %s", folder.location)
        if not folder.summary.exists():
            raise InputDataError(f"{folder.location}: no completed run here (summary.json missing); run 'matcher run' first")
        before = erased_before(folder.root)
        wanted = set(ids) - before
        matched = _matched(folder, config.primary_key, wanted) if wanted else set()
        quarantined = _quarantined(folder, wanted - matched)
        unknown = sorted(wanted - matched - quarantined)
        if unknown:
            raise InputDataError(f"{folder.location}: {len(unknown)} key(s) are not records of this run: {', '.join(unknown[:5])}")
        result: dict[str, Any] = {"run": folder.location, "erased": sorted(matched), "erased_quarantined": sorted(quarantined),
                                  "erased_before": sorted(set(ids) & before)}
        if not matched and not quarantined:
            return result
        staged = RunFolder(folder.root / BUILDING)

        def read(spark: SparkSession, config: TransformConfig, existing: ExistingRun) -> Delta:
            deleted = typed_keys(pd.Series(sorted(matched), dtype=object), existing.key_type, "--key")
            return Delta.erasing(deleted, config.primary_key, existing.key_type, existing.input_columns,
                                 f"forget ({len(matched)} record(s))")

        try:
            summary = apply_delta(config, folder, read, staged, spark, erased_from_quarantine=quarantined)
            labeled = erase_labels(config, folder.root, staged.root, matched | quarantined)
            changes = json.loads((staged.root / CHANGES_JSON).read_text(encoding="utf-8"))
            summary["erasure"] = {"records": len(matched), "quarantined_records": len(quarantined), "labeled_rows": labeled}
            record = _erasure_record(sorted(matched), sorted(quarantined), labeled, changes)
            earlier = (folder.root / ERASURES).read_text(encoding="utf-8") if (folder.root / ERASURES).exists() else ""
            (staged.root / ERASURES).write_text(earlier + json.dumps(record) + "\n", encoding="utf-8")
            summary["outputs"] = relocate(summary["outputs"], str(staged.root), str(folder.root))
            write_json(summary, staged.summary)
        except BaseException:
            shutil.rmtree(staged.root, ignore_errors=True)  # the run is as it was
            raise
        os.replace(staged.root, folder.root / STAGING)  # complete: from here on the erasure goes through
        sync_directory(folder.root)
        _swap(folder)
        log.info("forget: %d matched and %d quarantined record(s) erased, %d labeled rows, %d cluster(s) rebuilt",
                 len(matched), len(quarantined), labeled, len(record["clusters_touched"]))
        result.update(clusters_touched=len(record["clusters_touched"]), retired_match_ids=record["retired_match_ids"],
                      labeled_rows=labeled, changes=summary["incremental"])
    if graph and config.graph is not None and matched:
        from matcher.graph.writer import load_graph_task

        try:
            result["graph"] = load_graph_task(config, folder, spark, changes_only=True)
        except MatcherError as err:
            raise MatcherError(
                f"{folder.location}: the records are erased from the run folder, not yet from the graph ({err}); "
                f"finish with 'matcher load-graph --changes-only --output {folder.location}'") from None
    return result


def describe_forget(result: dict[str, Any]) -> str:
    """The lines ``matcher forget`` prints: counts and ids, never values."""
    lines = [f"erased: {len(result['erased'])} record(s) from matches and pairs, "
             f"{len(result['erased_quarantined'])} from the quarantine, {result.get('labeled_rows', 0)} labeled row(s)"]
    if result["erased_before"]:
        lines.append(f"erased before (erasures.jsonl): {', '.join(result['erased_before'])}")
    if "clusters_touched" in result:
        lines.append(f"clusters rebuilt: {result['clusters_touched']}, match_ids retired: {len(result['retired_match_ids'])}")
        lines.append(f"erasure record: {result['run']}/{ERASURES}")
    if "graph" in result:
        graph = result["graph"]
        lines.append(f"graph: {graph['removed_records']} record vertices removed, "
                     f"{graph['changes']['clusters_written']} customer(s) rewritten")
    lines.append("the sources still hold these records: delete them there too, or a full re-run brings them back")
    return "\n".join(lines)
