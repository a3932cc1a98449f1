"""Writing an incremental run's folder: the model (a copy), pairs, matches and change log, and for a
``sources:`` config the quarantine and customer profiles; untouched Parquet parts are linked, not rewritten."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from matcher.config.base import RECORD_ID
from matcher.config.transform import TransformConfig
from matcher.harmonize.golden import golden_records
from matcher.harmonize.harmonization import Harmonized, harmonization_summary
from matcher.incremental.change_log import CHANGES_JSON, CHANGES_PARQUET, ChangeLog
from matcher.incremental.existing_run import OUTPUT_COLUMNS, ExistingRun
from matcher.incremental.stored_pairs import StoredPairs
from matcher.matching.stable_ids import plain
from matcher.matching.threshold import match_confidence
from matcher.runtime.frames import rows_in
from matcher.runtime.outputs import atomic_directory, write_json, write_parquet
from matcher.runtime.parquet_parts import (
    as_table,
    rewrite_parquet_folder,
    write_parquet_parts,
)
from matcher.runtime.run_folder import RunFolder


@dataclass(frozen=True)
class MatchRows:
    """The rows of ``matches/`` an incremental run writes anew."""

    existing: pd.DataFrame  # record_id, match_id, match_confidence_score of existing records whose output changed
    new: pd.DataFrame  # the new records with their match_id and match_confidence_score


def match_rows(
    final: pd.Series, strongest: pd.Series, old: pd.DataFrame, new: pd.DataFrame, key: str, threshold: float,
    certain: set = frozenset(),
) -> MatchRows:
    """The ``new`` records and the ``old`` ones whose ``match_id`` or ``match_confidence_score`` changed,
    given every record's ``final`` match_id and ``strongest`` pair probability (both by record id);
    the ``certain`` records (on a decided must-link) have confidence 1.0."""
    changed = pd.DataFrame({"record_id": final.index, "match_id": final.to_numpy()})
    confidence = match_confidence(changed["record_id"].map(strongest), threshold)
    changed["match_confidence_score"] = np.where(changed["record_id"].isin(list(certain)), 1.0, confidence)
    before = old.set_index(key).reindex(changed["record_id"])
    differs = (before["match_id"].to_numpy() != changed["match_id"].to_numpy()) | (
        before["match_confidence_score"].to_numpy() != changed["match_confidence_score"].to_numpy()
    )
    is_new = changed["record_id"].isin(new[key]).to_numpy()
    rewritten = changed[differs | is_new].rename(columns={"record_id": key})
    return MatchRows(changed[differs & ~is_new], new.merge(rewritten, on=key, how="left"))


def _update_matches(key: str, changes: pd.DataFrame) -> Callable[[pa.Table], pa.Table]:
    """A function that rewrites ``match_id`` and ``match_confidence_score`` of the changed records in a table."""
    lookup = changes.set_index("record_id")

    def update(table: pa.Table) -> pa.Table:
        keys = pa.array(lookup.index.tolist(), type=table.schema.field(key).type)
        positions = pc.index_in(table[key], value_set=keys)
        for column in OUTPUT_COLUMNS:
            target = table.schema.field(column)
            fresh = pc.take(pa.array(lookup[column].tolist(), type=target.type), positions)
            merged = pc.if_else(pc.is_null(positions), table[column], fresh)
            table = table.set_column(table.schema.get_field_index(column), target, merged)
        return table

    return update


def write_run(
    existing: ExistingRun, output: RunFolder, key: str, removed: set, stored: StoredPairs, new_pairs: pd.DataFrame,
    rows: MatchRows, log: ChangeLog, changes: dict[str, Any],
) -> None:
    """Write ``output``'s ``model/`` (a copy of the existing one), ``pairs/`` (the ``stored`` pairs and
    the ``new_pairs``), ``matches/`` (without the ``removed`` records, with ``rows``), ``changes/``
    (``log``) and ``changes.json`` (``changes``)."""
    if output.model.exists():
        shutil.rmtree(output.model)
    shutil.copytree(existing.folder.model, output.model)
    new_pair_table = as_table(new_pairs, existing.pairs.schema, str(output.pairs))
    if stored.reweighed:
        write_parquet_parts(pa.concat_tables([stored.table, new_pair_table.cast(stored.table.schema)]), output.pairs, existing.pairs)
    else:
        rewrite_parquet_folder(existing.pairs, output.pairs, ["record_id_l", "record_id_r"], removed, None, set(), [new_pair_table])
    rewrite_parquet_folder(
        existing.matches, output.matches, [key], removed, _update_matches(key, rows.existing),
        set(rows.existing["record_id"]), [as_table(rows.new, existing.matches.schema, str(output.matches))],
    )
    with atomic_directory(output.root / CHANGES_PARQUET) as tmp:
        pq.write_table(log.as_table(existing.key_type), tmp / "records.parquet")
    write_json(changes, output.root / CHANGES_JSON)


def write_harmonization_outputs(
    spark: SparkSession, config: TransformConfig, existing: RunFolder, output: RunFolder,
    harmonized: Harmonized | None, records: pd.DataFrame, retired: list, *, erased: set = frozenset(),
) -> dict:
    """Quarantine: the existing rows plus the new ones (``harmonized``; None for no new rows),
    without the ``erased`` record ids. Customers: profiles of every cluster the change log touches
    rebuilt from the updated matches, the others linked. Returns the summary."""
    quarantined = harmonized.quarantined if harmonized is not None else None
    _update_quarantine(existing, output, quarantined, erased)
    touched = (set(records["old_match_id"].dropna()) | set(records["new_match_id"].dropna()) | set(retired))
    customers = _update_customers(spark, config, existing, output, touched)
    if harmonized is not None:
        return harmonization_summary(harmonized.counts, harmonized.rows, customers)
    multi = customers.where("size(source_systems) > 1").count()
    return {"customers": customers.count(), "customers_in_several_sources": multi, "customers_rebuilt": len(touched)}


def _update_quarantine(existing: RunFolder, output: RunFolder, new: DataFrame | None, erased: set) -> None:
    """``output``'s quarantine: ``existing``'s rows without the ``erased`` record ids, plus ``new`` rows."""
    if not existing.quarantine.is_dir():
        if new is not None:
            write_parquet(new, output.quarantine)
        return
    stored = ds.dataset(str(existing.quarantine))
    added = []
    if new is not None:
        rows = new.toPandas().reindex(columns=stored.schema.names)  # other sources' columns: null
        added = [as_table(rows, stored.schema, str(output.quarantine))] if len(rows) else []
    rewrite_parquet_folder(stored, output.quarantine, [RECORD_ID], set(erased), None, set(), added)


def _update_customers(spark: SparkSession, config: TransformConfig, existing: RunFolder, output: RunFolder,
                      touched: set) -> DataFrame:
    """``output``'s customers: the ``touched`` clusters' profiles rebuilt from ``output``'s matches,
    the others as ``existing`` has them (all rebuilt when it has none); the table, read back."""
    matched = spark.read.parquet(str(output.matches))
    if not existing.customers.is_dir():  # an existing run without profiles: build them all
        write_parquet(golden_records(matched, config), output.customers)
        return spark.read.parquet(str(output.customers))
    staging = output.root / ".customers-touched"
    write_parquet(golden_records(rows_in(matched, "match_id", [plain(t) for t in touched]), config), staging)
    try:
        customers = ds.dataset(str(existing.customers))
        fresh = pq.read_table(str(staging)).cast(customers.schema)
        rewrite_parquet_folder(customers, output.customers, ["match_id"], touched, None, set(), [fresh])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return spark.read.parquet(str(output.customers))
