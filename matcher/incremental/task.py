"""Incremental matching: new, updated and deleted records against an already-matched run, with stable ids.

:func:`match_incremental_task` reads an existing run folder (``model/``, ``matches/``,
``pairs/``, ``summary.json``), a file of new records and optionally a delete list, and
writes a complete, updated run folder plus a change log. Only the new records are
scored, with Splink's ``predict_between`` (new against existing and, in the same call,
new among themselves), with the existing run's trained model and term frequencies of
the updated dataset; the existing pairs are re-weighed for those frequencies in the driver
(:class:`TermFrequencyDrift`), as a full re-run would score them. Only the clusters that
new, removed or re-weighed pairs touch are re-clustered, in the driver. The steps live in
:mod:`matcher.incremental.scoring`, :mod:`matcher.incremental.term_frequency_drift`,
:mod:`matcher.matching.stable_ids` and :mod:`matcher.runtime.parquet_parts`; this module reads, wires and
writes the change log.

**Updates and deletes.** A new record whose primary key already exists is a new version:
the old version is removed (with its scored pairs) and the new one scored like any new
record. A delete list (CSV or Parquet with the primary key column) removes records.
The clusters that lose records are re-clustered from their remaining above-threshold
pairs (``pairs/`` of the existing run), so a cluster can split.

**Stable ids** (see :func:`stable_match_ids`). Clusters that no new, updated or deleted
record touches keep their ``match_id`` byte for byte. Among the re-clustered
components:

1. every old cluster's id goes to the component that holds most of its surviving
   records (tie: the component whose smallest record id is smallest);
2. a component that receives several old ids (a bridge) keeps the id of the old cluster
   that contributed most records to it (tie: the smallest id); the others are
   **retired** and listed as a merge;
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

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from matcher.blocking.rules import prediction_rules, preselect
from matcher.config.base import RECORD_ID
from matcher.config.transform import InputSpec, TransformConfig
from matcher.harmonize.golden import golden_records
from matcher.harmonize.harmonization import Harmonized, harmonization_summary, harmonize
from matcher.harmonize.ingest import WHOLE_NUMBER, check_key_counts, read_inputs, unreadable
from matcher.incremental.scoring import score_new_records
from matcher.incremental.term_frequency_drift import TermFrequencyDrift, term_frequencies, term_frequency_columns
from matcher.matching.stable_ids import plain, stable_match_ids
from matcher.matching.summary import run_summary
from matcher.matching.threshold import Threshold, resolve_threshold
from matcher.model.artifact import TrainedModel
from matcher.runtime.errors import ConfigError, InputDataError, MatcherError
from matcher.runtime.outputs import atomic_directory, write_json, write_parquet
from matcher.runtime.parquet_parts import rewrite_parquet_folder, write_parquet_parts
from matcher.runtime.run_folder import RunFolder, task_session

log = logging.getLogger(__name__)

CHANGES_JSON = "changes.json"
CHANGES_PARQUET = "changes"
_OUTPUT_COLUMNS = ("match_id", "match_confidence_score")


# --- the existing run ---------------------------------------------------------------------


@dataclass
class ExistingRun:
    """What an incremental run needs to know about the run it builds on."""

    folder: RunFolder
    model: TrainedModel
    summary: dict[str, Any]
    threshold: Threshold  # the run's, which the incremental run keeps
    matches: ds.Dataset
    pairs: ds.Dataset
    key_type: pa.DataType


def _dataset(path: Path, what: str, root: Path) -> ds.Dataset:
    if not path.is_dir():
        raise InputDataError(f"{root}: existing run has no {what}/ folder; run 'matcher match' (or 'run') there first")
    try:
        return ds.dataset(str(path), format="parquet")
    except (pa.ArrowInvalid, OSError) as err:
        raise InputDataError(f"{path}: cannot read the existing {what} as Parquet ({str(err).splitlines()[0]})") from None


def open_existing_run(config: TransformConfig, folder: RunFolder) -> ExistingRun:
    """Check that ``folder`` holds a completed match run for ``config`` and open its tables.

    The run's recorded threshold must be the one ``config`` resolves to with the run's
    model (from labels, when the model learned one and the config asks for it)."""
    if not folder.root.is_dir():
        raise InputDataError(f"{folder.root}: existing run folder does not exist")
    model = TrainedModel.load(folder.model, config)
    if not folder.summary.exists():
        raise InputDataError(f"{folder.root}: existing run is not complete (summary.json missing); run 'matcher match' there first")
    summary = json.loads(folder.summary.read_text(encoding="utf-8"))
    recorded, threshold = Threshold.from_summary(summary), resolve_threshold(config, model)
    if recorded is None or not recorded.same_as(threshold):
        raise ConfigError(
            f"{folder.summary}: existing run used threshold {recorded or 'unknown'}, the config and model give "
            f"{threshold}; re-run 'matcher match' with this config first"
        )
    matches = _dataset(folder.matches, "matches", folder.root)
    pairs = _dataset(folder.pairs, "pairs", folder.root)
    wanted = {config.primary_key, *_OUTPUT_COLUMNS}
    missing = sorted(wanted - set(matches.schema.names))
    if missing:
        raise InputDataError(f"{folder.matches}: column(s) {', '.join(missing)} missing from the existing matches")
    missing = sorted({"record_id_l", "record_id_r", "match_probability"} - set(pairs.schema.names))
    if missing:
        raise InputDataError(f"{folder.pairs}: column(s) {', '.join(missing)} missing from the existing pairs")
    return ExistingRun(folder, model, summary, threshold, matches, pairs, matches.schema.field(config.primary_key).type)


# --- new records and the delete list ----------------------------------------------------------


def _format_of(path: str, config: TransformConfig) -> str:
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(suffix, config.inputs[0].format)


def read_new_records(
    spark: SparkSession, config: TransformConfig, path: str, key_type: pa.DataType, columns: list[str]
) -> tuple[pd.DataFrame, StructType]:
    """The new records' ``columns``, collected to the driver in one Spark job, and their Spark schema.

    Validated like any input (configured columns present, keys non-null and unique), with
    keys typed like the existing run's.
    """
    spec = config.inputs[0]
    fmt = _format_of(path, config)
    new_spec = InputSpec(name=spec.name, path=str(path), format=fmt, options=spec.options if fmt == spec.format else {})
    df = read_inputs(spark, config.model_copy(update={"inputs": [new_spec]}), check_keys=False).select(*columns)
    try:
        new = df.toPandas()
    except (PySparkException, Py4JJavaError) as err:  # a file that opened but whose rows do not parse
        raise unreadable(new_spec, err) from None
    key = config.primary_key
    keys = new[key]

    def repeated() -> list[tuple[Any, int]]:
        counts = keys.value_counts()
        return list(counts[counts > 1].sort_index().items())

    check_key_counts(new_spec, key, len(new), int(keys.notna().sum()), int(keys.nunique()), repeated)
    text = keys.astype(str)
    if pa.types.is_integer(key_type):
        if not text.str.fullmatch(WHOLE_NUMBER).all():
            raise InputDataError(f"{path}: primary key {key!r} must hold whole numbers, like the existing run's keys")
        new[key], key_field = text.astype("int64"), LongType()
    else:
        new[key], key_field = text, StringType()
    schema = StructType([StructField(key, key_field, True) if f.name == key else f for f in df.schema])
    return new, schema


def read_delete_list(path: str, key: str, key_type: pa.DataType) -> pd.Series:
    """The primary keys to delete (a CSV with a header, or Parquet, holding column ``key``)."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{path}: delete list does not exist")
    try:
        if p.suffix.lower() == ".csv":
            table = pd.read_csv(p, dtype=str, keep_default_na=False)
        else:
            table = pd.read_parquet(p)
    except Exception as err:  # noqa: BLE001 - any parse failure is one input error
        raise InputDataError(f"{path}: cannot read delete list ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if key not in table.columns:
        raise InputDataError(f"{path}: delete list has no column {key!r} (has: {', '.join(map(str, table.columns)) or 'no columns'})")
    keys = table[key]
    if keys.isna().any() or (keys.astype(str).str.strip() == "").any():
        raise InputDataError(f"{path}: delete list has {int((keys.isna() | (keys.astype(str).str.strip() == '')).sum())} empty key(s)")
    if pa.types.is_integer(key_type):
        numbers = pd.to_numeric(keys, errors="coerce")
        bad = keys[numbers.isna() | (numbers != numbers.round())]
        if len(bad):
            raise InputDataError(f"{path}: key(s) {', '.join(map(str, bad[:5]))} are not whole numbers like the existing keys")
        keys = numbers.astype("int64")
    else:
        keys = keys.astype(str)
    repeated = keys[keys.duplicated()]
    if len(repeated):
        raise InputDataError(f"{path}: key(s) {', '.join(map(str, repeated.unique()[:5]))} listed more than once")
    return keys.reset_index(drop=True)


# --- pairs ------------------------------------------------------------------------------------


def _member(values: pa.ChunkedArray, members: set) -> pa.ChunkedArray:
    """Whether each value is in ``members``."""
    return pc.is_in(values, value_set=pa.array(list(members), type=values.type))


def _as_table(frame: pd.DataFrame, schema: pa.Schema, what: str) -> pa.Table:
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise MatcherError(f"{what}: column(s) {', '.join(missing)} of the existing run are not produced for the new records")
    table = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
    return table.replace_schema_metadata(None).cast(schema.remove_metadata()).replace_schema_metadata(schema.metadata)


@dataclass
class StoredPairs:
    """The existing run's pairs as a full re-run would score them now."""

    table: pa.Table  # without the removed records' pairs; every column when re-weighed, else ids and probability
    flipped: np.ndarray  # per row: whether re-weighing moved the pair across the threshold
    reweighed: bool
    seconds: float


def stored_pairs_now(existing: ExistingRun, frequencies: dict[str, pd.DataFrame], threshold: float, removed: set) -> StoredPairs:
    """The existing pairs minus the ``removed`` records', re-weighed for ``frequencies`` (:class:`TermFrequencyDrift`).

    With re-weighing every stored pair gets a new score and is rewritten, so the pairs are read
    whole, once; without it only the ids and probabilities.
    """
    started = time.perf_counter()
    drift = TermFrequencyDrift.of(existing.model, frequencies)
    reweigh = drift.applies_to(existing.pairs.schema)
    table = existing.pairs.to_table(columns=None if reweigh else ["record_id_l", "record_id_r", "match_probability"])
    probability_before = table["match_probability"].to_numpy()
    if reweigh:
        table = drift.reweigh(table)
    flipped = (probability_before >= threshold) != (table["match_probability"].to_numpy() >= threshold)
    if removed:
        kept = pc.invert(pc.or_(_member(table["record_id_l"], removed), _member(table["record_id_r"], removed)))
        table, flipped = table.filter(kept), flipped[kept.to_numpy()]
    return StoredPairs(table, flipped, reweigh, round(time.perf_counter() - started, 3))


# --- writing ------------------------------------------------------------------------------------


def _update_matches(key: str, changes: pd.DataFrame) -> Callable[[pa.Table], pa.Table]:
    """A function that rewrites ``match_id`` and ``match_confidence_score`` of the changed records in a table."""
    lookup = changes.set_index("record_id")

    def update(table: pa.Table) -> pa.Table:
        keys = pa.array(lookup.index.tolist(), type=table.schema.field(key).type)
        positions = pc.index_in(table[key], value_set=keys)
        for column in _OUTPUT_COLUMNS:
            target = table.schema.field(column)
            fresh = pc.take(pa.array(lookup[column].tolist(), type=target.type), positions)
            merged = pc.if_else(pc.is_null(positions), table[column], fresh)
            table = table.set_column(table.schema.get_field_index(column), target, merged)
        return table

    return update


def _confidence(best: pd.Series, threshold: float) -> pd.Series:
    """:mod:`matcher.matching.matches`'s ``match_confidence_score`` from each record's best pair probability."""
    best = best.astype("float64")
    return best.where(best >= threshold, 1.0 - best.fillna(0.0))


def _change_rows(records: pd.DataFrame, key_type: pa.DataType) -> pa.Table:
    def column(name: str, type_: pa.DataType) -> pa.Array:
        return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else plain(v) for v in records[name]], type=type_)

    return pa.table({
        "record_id": column("record_id", key_type),
        "change": column("change", pa.string()),
        "old_match_id": column("old_match_id", key_type),
        "new_match_id": column("new_match_id", key_type),
    })


# --- the task -------------------------------------------------------------------------------------


def new_source_paths(config: TransformConfig, values: Iterable[str]) -> dict[str, str]:
    """``SOURCE=PATH`` values (each may hold several, comma-separated) as {source: path}, for a ``sources:`` config."""
    names = [s.name for s in config.sources or []]
    paths: dict[str, str] = {}
    for item in (part.strip() for value in values for part in value.split(",") if part.strip()):
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--new {item!r}: a config with sources needs SOURCE=PATH (sources: {', '.join(names)})")
        if name not in names:
            raise ConfigError(f"--new {item!r}: no source {name!r} in the config (sources: {', '.join(names)})")
        if name in paths:
            raise ConfigError(f"--new: source {name!r} given twice")
        paths[name] = path
    if not paths:
        raise ConfigError("--new: no SOURCE=PATH given")
    return paths


def harmonize_new_records(spark: SparkSession, config: TransformConfig, paths: Mapping[str, str]) -> Harmonized:
    """The sources named in ``paths``, read from those paths, standardized and split by the quality gate."""
    sources = [s.model_copy(update={"path": paths[s.name]}) for s in config.sources or [] if s.name in paths]
    return harmonize(spark, config.model_copy(update={"sources": sources}))


def _update_harmonization_outputs(
    spark: SparkSession, config: TransformConfig, existing: RunFolder, output: RunFolder,
    harmonized: Harmonized, records: pd.DataFrame, retired: list,
) -> dict:
    """Quarantine: the existing rows plus the new ones. Customers: profiles of every cluster the
    change log touches rebuilt from the updated matches, the others linked. Returns the summary."""
    if existing.quarantine.is_dir():
        stored = ds.dataset(str(existing.quarantine))
        quarantined = harmonized.quarantined.toPandas().reindex(columns=stored.schema.names)  # other sources' columns: null
        added = [_as_table(quarantined, stored.schema, str(output.quarantine))] if len(quarantined) else []
        rewrite_parquet_folder(stored, output.quarantine, [RECORD_ID], set(), None, set(), added)
    else:
        write_parquet(harmonized.quarantined, output.quarantine)
    touched = (set(records["old_match_id"].dropna()) | set(records["new_match_id"].dropna()) | set(retired))
    matched = spark.read.parquet(str(output.matches))
    if not existing.customers.is_dir():  # an existing run without profiles: build them all
        write_parquet(golden_records(matched, config), output.customers)
        return harmonization_summary(harmonized.counts, harmonized.rows, spark.read.parquet(str(output.customers)))
    staging = output.root / ".customers-touched"
    write_parquet(golden_records(matched.where(F.col("match_id").isin([plain(t) for t in touched])), config), staging)
    try:
        customers = ds.dataset(str(existing.customers))
        fresh = pq.read_table(str(staging)).cast(customers.schema)
        rewrite_parquet_folder(customers, output.customers, ["match_id"], touched, None, set(), [fresh])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return harmonization_summary(harmonized.counts, harmonized.rows, spark.read.parquet(str(output.customers)))


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
    ``changes/`` and ``summary.json`` (last). Returns the summary.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    if len(config.inputs) != 1:
        raise ConfigError(f"{config.name}: match-incremental supports single-input (dedupe) and sources: configs; this one has {len(config.inputs)} inputs")
    if config.clustering.method != "connected_components":
        # incremental re-clustering joins components; it would silently undo average link's splits
        raise ConfigError(
            f"{config.name}: match-incremental re-clusters with connected components; "
            f"clustering.method {config.clustering.method!r} needs a full 'matcher match'"
        )
    if (config.sources is not None) != isinstance(new_path, Mapping):
        raise ConfigError(f"{config.name}: --new takes SOURCE=PATH for a config with sources, a path otherwise")
    if output.root == existing_folder.root:
        raise ConfigError(f"{output.root}: --output must be a new folder, not the existing run (it is read while the output is written)")
    existing = open_existing_run(config, existing_folder)
    key, key_type = config.primary_key, existing.key_type
    threshold = existing.threshold.match_probability
    input_columns = [c for c in existing.matches.schema.names if c not in _OUTPUT_COLUMNS]

    with task_session(output, spark) as spark:
        t = time.perf_counter()
        harmonized = None
        if isinstance(new_path, Mapping):
            harmonized = harmonize_new_records(spark, config, new_path)
            # pass-through columns of sources without new rows are null for the new rows
            new_df = harmonized.rows.select(*(
                c if c in harmonized.rows.columns else F.lit(None).cast("string").alias(c) for c in input_columns
            ))
            new, new_schema = new_df.toPandas(), new_df.schema
        else:
            new, new_schema = read_new_records(spark, config, new_path, key_type, input_columns)
        deleted = read_delete_list(delete_path, key, key_type) if delete_path else pd.Series([], dtype=object)
        t = lap("read_new", t)

        tf_columns = term_frequency_columns(existing.model)
        old = existing.matches.to_table(columns=list(dict.fromkeys([key, *_OUTPUT_COLUMNS, *tf_columns]))).to_pandas()
        known = pd.Index(old[key])
        missing = deleted[~deleted.isin(known)]
        if len(missing):
            raise InputDataError(f"{delete_path}: {len(missing)} key(s) to delete are not in the existing run: {', '.join(map(str, missing[:5]))}")
        both = deleted[deleted.isin(new[key])]
        if len(both):
            raise InputDataError(f"{delete_path}: key(s) {', '.join(map(str, both[:5]))} are both deleted and in {new_path}")
        updated = new[key][new[key].isin(known)]
        removed = set(deleted.tolist()) | set(updated.tolist())
        remaining = old[~old[key].isin(removed)]
        frequencies = {
            c: term_frequencies(pd.concat([remaining[c], new[c]], ignore_index=True).rename(c)) for c in tf_columns
        }
        candidates = preselect(existing.matches, prediction_rules(config), new, input_columns)
        candidates = candidates[~candidates[key].isin(removed)]
        t = lap("read_existing", t)

        # re-weighing the stored pairs (Arrow, numpy) and scoring (DuckDB or Spark) run side by side
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(stored_pairs_now, existing, frequencies, threshold, removed)
            new_pairs = score_new_records(spark, config, existing.model, candidates, new, new_schema, frequencies)
            t = lap("score", t)
            stored = pending.result()
        timings["reweigh"] = stored.seconds
        t = lap("reweigh_wait", t)
        reweighed, old_pairs = stored.table, stored.table.select(["record_id_l", "record_id_r", "match_probability"])

    # --- re-cluster the touched clusters in the driver
    old_ids = old.set_index(key)["match_id"]
    strong = new_pairs[new_pairs["match_probability"] >= threshold]
    flipped = old_pairs.filter(pa.array(stored.flipped)).to_pandas()
    linked_old = (set(strong["record_id_l"]) | set(strong["record_id_r"]) | set(flipped["record_id_l"]) | set(flipped["record_id_r"])) & set(known)
    touched_clusters = set(old_ids.reindex(list(linked_old | removed)).dropna())
    affected = remaining[remaining["match_id"].isin(touched_clusters)]
    nodes = pd.concat(
        [
            pd.DataFrame({"record_id": affected[key].to_numpy(), "old_match_id": affected["match_id"].to_numpy()}),
            pd.DataFrame({"record_id": new[key].to_numpy(), "old_match_id": None}),
        ],
        ignore_index=True,
    )
    nodes["old_match_id"] = nodes["old_match_id"].astype(object).where(nodes["old_match_id"].notna(), None)
    new_scores = pa.Table.from_pandas(new_pairs[old_pairs.column_names], preserve_index=False).cast(old_pairs.schema)
    pairs_now = pa.concat_tables([old_pairs, new_scores])
    members = set(nodes["record_id"])
    edges = pairs_now.filter(pc.and_(
        pc.greater_equal(pairs_now["match_probability"], threshold),
        pc.and_(_member(pairs_now["record_id_l"], members), _member(pairs_now["record_id_r"], members)),
    ))
    edges = pd.DataFrame({"id_l": edges["record_id_l"].to_pandas(), "id_r": edges["record_id_r"].to_pandas()})
    if edges.empty:
        edges = pd.DataFrame({"id_l": nodes["record_id"].iloc[:0], "id_r": nodes["record_id"].iloc[:0]})
    untouched_ids = set(remaining.loc[~remaining["match_id"].isin(touched_clusters), "match_id"])
    result = stable_match_ids(nodes, edges, untouched_ids)
    ends = pa.table({
        "record_id": pa.chunked_array(pairs_now["record_id_l"].chunks + pairs_now["record_id_r"].chunks),
        "p": pa.chunked_array(pairs_now["match_probability"].chunks * 2),
    })
    strongest = ends.group_by("record_id").aggregate([("p", "max")])
    best = pd.Series(strongest["p_max"].to_numpy(), index=strongest["record_id"].to_pandas())
    t = lap("cluster", t)

    # --- the change log
    final = old_ids.drop(index=list(removed)).copy()
    reassigned = result.ids.set_index("record_id")["match_id"]
    final = pd.concat([final[~final.index.isin(reassigned.index)], reassigned])
    new_keys = set(new[key])
    updated_keys = set(updated)
    before = set(old_ids)
    log_rows = []
    for record, old_id, match_id in result.ids.itertuples(index=False):
        if record in updated_keys:
            log_rows.append((record, "updated", old_ids[record], match_id))
        elif record in new_keys:
            log_rows.append((record, "joined" if match_id in before else "new", None, match_id))
        elif old_id != match_id:
            log_rows.append((record, "moved", old_id, match_id))
    log_rows += [(record, "deleted", old_ids[record], None) for record in deleted]
    records = pd.DataFrame(log_rows, columns=["record_id", "change", "old_match_id", "new_match_id"], dtype=object)
    order = {"new": 0, "joined": 1, "updated": 2, "moved": 3, "deleted": 4}
    records = records.assign(_o=records["change"].map(order)).sort_values(["_o", "record_id"]).drop(columns="_o")
    retired = sorted(before - set(final))
    causes = old_ids[old_ids.index.isin(removed)]
    for split in result.splits:
        split["caused_by"] = sorted(plain(r) for r in causes[causes == split["old_match_id"]].index)
    counts = {c: int((records["change"] == c).sum()) for c in order}
    counts.update({"merges": len(result.merges), "splits": len(result.splits), "retired_ids": len(retired)})
    changes = {
        "existing": existing_folder.location,
        "new": str(new_path),
        "delete": str(delete_path) if delete_path else None,
        "counts": counts,
        "records": [{k: plain(v) for k, v in row.items()} for row in records.to_dict("records")],
        "merges": result.merges,
        "splits": result.splits,
        "retired_ids": [plain(r) for r in retired],
    }

    # --- write the updated run folder
    changed = pd.DataFrame({"record_id": final.index, "match_id": final.to_numpy()})
    changed["match_confidence_score"] = _confidence(changed["record_id"].map(best), threshold).to_numpy()
    before_rows = old.set_index(key).reindex(changed["record_id"])
    differs = (before_rows["match_id"].to_numpy() != changed["match_id"].to_numpy()) | (
        before_rows["match_confidence_score"].to_numpy() != changed["match_confidence_score"].to_numpy()
    )
    changed = changed[differs | changed["record_id"].isin(new_keys).to_numpy()]
    existing_changed = changed[~changed["record_id"].isin(new_keys)]
    new_rows = new.merge(changed.rename(columns={"record_id": key}), on=key, how="left")
    if output.model.exists():
        shutil.rmtree(output.model)
    shutil.copytree(existing.folder.model, output.model)
    pair_schema = existing.pairs.schema
    new_pair_table = _as_table(new_pairs, pair_schema, str(output.pairs))
    if stored.reweighed:
        write_parquet_parts(pa.concat_tables([reweighed, new_pair_table.cast(reweighed.schema)]), output.pairs, existing.pairs)
    else:
        rewrite_parquet_folder(existing.pairs, output.pairs, ["record_id_l", "record_id_r"], removed, None, set(), [new_pair_table])
    rewrite_parquet_folder(
        existing.matches, output.matches, [key], removed, _update_matches(key, existing_changed),
        set(existing_changed["record_id"]), [_as_table(new_rows, existing.matches.schema, str(output.matches))],
    )
    with atomic_directory(output.root / CHANGES_PARQUET) as tmp:
        pq.write_table(_change_rows(records, key_type), tmp / "records.parquet")
    write_json(changes, output.root / CHANGES_JSON)
    t = lap("write", t)
    n_pairs = ds.dataset(str(output.pairs), format="parquet").count_rows()
    summary = run_summary(
        config, existing.threshold, rows_in=len(final), n_pairs=n_pairs, n_clusters=final.nunique(),
        rows_out=ds.dataset(str(output.matches), format="parquet").count_rows(),
        incremental={"existing": existing_folder.location, "new_rows": int(len(new)), "candidates": int(len(candidates)),
                     "new_pairs": int(len(new_pairs)), "reclustered_records": int(len(nodes)),
                     "term_frequency_reweighed": stored.reweighed, "pairs_across_threshold_after_reweighing": int(len(flipped)),
                     "rows_rewritten": int(len(existing_changed)), **counts},
        outputs={
            "matches": str(output.matches),
            "pairs": str(output.pairs),
            "model": str(output.model),
            "changes": str(output.root / CHANGES_JSON),
        },
        timings_s={**timings, "match_total": round(time.perf_counter() - started, 3)},
    )
    if harmonized is not None:
        summary["harmonization"] = _update_harmonization_outputs(spark, config, existing.folder, output, harmonized, records, retired)
        summary["outputs"].update(quarantine=str(output.quarantine), customers=str(output.customers))
        harmonized.unpersist()
        summary["timings_s"]["harmonization_outputs"] = round(time.perf_counter() - t, 3)
        summary["timings_s"]["match_total"] = round(time.perf_counter() - started, 3)
    write_json(summary, output.summary)
    log.info(
        "incremental: %d new rows (%d updates), %d deletes, %d pairs scored, %d records re-clustered, %d merges, %d splits",
        len(new), len(updated), len(deleted), len(new_pairs), len(nodes), len(result.merges), len(result.splits),
    )
    return summary
