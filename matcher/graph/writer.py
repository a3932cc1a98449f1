"""Load a run's matches into the identity graph from Spark (``matcher load-graph``).

:func:`cluster_table` turns the matches (plus the above-threshold pairs and the golden
``customers``, when present) into one row per ``match_id``; :func:`load_graph` writes
those rows with Spark ``mapPartitions`` — rows partitioned by ``match_id``, so every
write touching a cluster goes through one worker, each partition with its own Gremlin
connection (:class:`~matcher.graph.gremlin.GremlinGraphWriter`) — and returns the counts
the partitions sent.

Deltas: :func:`load_graph` takes any subset of the matches — the changed records, whole
clusters at a time — and ``removed_record_ids`` to drop; records that changed cluster
move. A full load is the delta that holds every record.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from matcher.config.transform import GraphSpec, TransformConfig
from matcher.graph.gremlin import GremlinGraphWriter, WriteCounts, graph_totals
from matcher.graph.model import Cluster, Record, identifier_columns
from matcher.matching.threshold import resolve_threshold
from matcher.runtime.errors import ConfigError, GraphError, InputDataError
from matcher.runtime.frames import rows_in
from matcher.runtime.outputs import write_json
from matcher.runtime.progress import stage
from matcher.runtime.remote_folder import exists
from matcher.runtime.run_folder import RunFolder, task_session

log = logging.getLogger(__name__)


def resolve_salt(spec: GraphSpec) -> str | None:
    """The salt for hashed identifiers (from the config or its environment variable), or None."""
    if not spec.hash_identifiers:
        return None
    salt = spec.salt or os.environ.get(spec.salt_env or "")
    if not salt:
        raise ConfigError(f"graph.salt_env: environment variable {spec.salt_env!r} is unset or empty")
    return salt


def _record_columns(matches: DataFrame, config: TransformConfig) -> tuple[str, Any]:
    if "record_id" in matches.columns:
        record = F.col("record_id").cast("string")
    else:
        record = F.col(config.primary_key).cast("string")
    source = F.col("source_dataset") if "source_dataset" in matches.columns else F.lit(config.inputs[0].name)
    return record, source


def _raw_identifier_fields(columns: Sequence[str], config: TransformConfig) -> set[str]:
    """Profile columns that hold a raw identifier (an email, phone or address column, or its
    ``raw_`` copy): left out of Customer vertices when identifiers are hashed. Provenance
    columns (``<field>__source``, ``<field>__record_id``) stay."""
    if config.graph is None or not config.graph.hash_identifiers:
        return set()
    names = {name for name, _ in identifier_columns(config)}
    return {c for c in columns if c in names or c.removeprefix("raw_") in names}


def cluster_table(
    matches: DataFrame,
    config: TransformConfig,
    *,
    pairs: DataFrame | None = None,
    customers: DataFrame | None = None,
    threshold: float | None = None,
) -> DataFrame:
    """One row per ``match_id``: ``records`` (id, source, confidence, identifier values),
    ``links`` (pairs at or above ``threshold`` inside the cluster) and ``profile`` (JSON of
    the ``customers`` row, or null)."""
    needed = ["match_id", "match_confidence_score", *[c for c, _ in identifier_columns(config)]]
    missing = [c for c in needed if c not in matches.columns]
    if missing:
        raise InputDataError(f"matches: column(s) {', '.join(missing)} missing (has: {', '.join(matches.columns)})")
    record, source = _record_columns(matches, config)
    identifiers = [F.struct(F.lit(label).alias("label"), F.col(column).cast("string").alias("value"))
                   for column, label in identifier_columns(config)]
    rows = matches.select(
        F.col("match_id").cast("string").alias("match_id"),
        F.struct(
            record.alias("record_id"),
            source.cast("string").alias("source"),
            F.col("match_confidence_score").cast("double").alias("confidence"),
            (F.array(*identifiers) if identifiers else F.array().cast("array<struct<label:string,value:string>>")).alias("ids"),
        ).alias("record"),
    )
    table = rows.groupBy("match_id").agg(F.collect_list("record").alias("records"))
    if pairs is not None:
        threshold = resolve_threshold(config, None).match_probability if threshold is None else threshold
        member = rows.select(F.col("record.record_id").alias("rid"), "match_id")
        links = (
            pairs.where(F.col("match_probability") >= threshold)
            .select(F.col("record_id_l").cast("string").alias("l"), F.col("record_id_r").cast("string").alias("r"),
                    F.col("match_probability").cast("double").alias("p"))
            .join(member.withColumnRenamed("rid", "l").withColumnRenamed("match_id", "ml"), "l")
            .join(member.withColumnRenamed("rid", "r").withColumnRenamed("match_id", "mr"), "r")
            .where("ml = mr")
            .groupBy(F.col("ml").alias("match_id"))
            .agg(F.collect_list(F.struct("l", "r", "p")).alias("links"))
        )
        table = table.join(links, "match_id", "left")
    else:
        table = table.withColumn("links", F.lit(None).cast("array<struct<l:string,r:string,p:double>>"))
    if customers is not None:
        if "match_id" not in customers.columns:
            raise InputDataError(f"customers: column match_id missing (has: {', '.join(customers.columns)})")
        hidden = _raw_identifier_fields(customers.columns, config)
        others = [c for c in customers.columns if c != "match_id" and c not in hidden]
        profiles = customers.select(F.col("match_id").cast("string").alias("match_id"),
                                    F.to_json(F.struct(*others)).alias("profile"))
        table = table.join(profiles, "match_id", "left")
    else:
        table = table.withColumn("profile", F.lit(None).cast("string"))
    return table


def _graph_value(value: Any) -> Any:
    """Graph properties are scalars: nested values (lists, maps) are stored as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def cluster_from_row(row: Any) -> Cluster:
    """A :class:`~matcher.graph.model.Cluster` from a :func:`cluster_table` row."""
    records = tuple(
        Record(r["record_id"], r["source"], r["confidence"],
               tuple((i["label"], i["value"]) for i in r["ids"] if i["value"] is not None))
        for r in row["records"]
    )
    links = tuple((link["l"], link["r"], link["p"]) for link in (row["links"] or ()))
    profile = None
    if row["profile"] is not None:
        profile = {k: _graph_value(v) for k, v in json.loads(row["profile"]).items()}
    return Cluster(row["match_id"], records, links, profile)


def _write_partition(rows: Iterable[Any], spec: GraphSpec, salt: str | None) -> Iterator[dict]:
    """Write one partition's clusters; a graph error comes back as data (Spark would wrap it)."""
    started = time.perf_counter()
    try:
        with GremlinGraphWriter(spec, salt=salt) as writer:
            counts = writer.write_clusters(cluster_from_row(row) for row in rows)
    except GraphError as err:
        yield {"error": str(err)}
        return
    yield {**counts.as_dict(), "seconds": time.perf_counter() - started}


def _remove_partition(ids: Iterable[Any], spec: GraphSpec) -> Iterator[dict]:
    try:
        with GremlinGraphWriter(spec) as writer:
            counts = writer.remove_records([row[0] for row in ids])
    except GraphError as err:
        yield {"error": str(err)}
        return
    yield counts.as_dict()


def _merge(parts: list[dict]) -> WriteCounts:
    """The partitions' counts added up; the first partition's graph error is raised here, in the driver."""
    errors = [part["error"] for part in parts if "error" in part]
    if errors:
        raise GraphError(errors[0] + (f" (and {len(errors) - 1} more partition(s) failed)" if len(errors) > 1 else ""))
    total = WriteCounts()
    for part in parts:
        total.add(WriteCounts(
            vertices=Counter(part["vertices"]),
            edges=Counter(part["edges"]),
            **{k: part[k] for k in ("dropped_edges", "moved_records", "removed_records", "requests", "retries")},
        ))
    return total


def load_graph(
    matches: DataFrame,
    config: TransformConfig,
    *,
    pairs: DataFrame | None = None,
    customers: DataFrame | None = None,
    threshold: float | None = None,
    removed_record_ids: Sequence[str] = (),
    partitions: int | None = None,
) -> dict[str, Any]:
    """Write ``matches`` (all records, or the changed ones — whole clusters) to ``config.graph``,
    then drop ``removed_record_ids``; returns what was sent, the time and elements per second."""
    spec = _spec(config)
    salt = resolve_salt(spec)
    spark = matches.sparkSession
    partitions = partitions or spec.writers or spark.sparkContext.defaultParallelism
    started = time.perf_counter()
    table = cluster_table(matches, config, pairs=pairs, customers=customers, threshold=threshold)
    table = table.repartition(partitions, "match_id")
    with stage("graph load"):  # its heartbeat counts the partitions written (Spark tasks)
        parts = table.rdd.mapPartitions(lambda rows: _write_partition(rows, spec, salt)).collect()
    counts = _merge(parts)
    slowest = max((part["seconds"] for part in parts), default=0.0)
    if removed_record_ids:
        removed = spark.createDataFrame([(str(r),) for r in removed_record_ids], "record_id string")
        counts.add(_merge(removed.rdd.mapPartitions(lambda ids: _remove_partition(ids, spec)).collect()))
    seconds = time.perf_counter() - started
    summary = {
        "endpoint": spec.endpoint,
        **counts.as_dict(),
        "seconds": round(seconds, 3),
        "elements_per_s": round(counts.elements / seconds, 1) if seconds > 0 else None,
        # the writing alone: from a partition's first row to its last reply, the slowest partition
        "write_seconds": round(slowest, 3),
        "write_elements_per_s": round(counts.elements / slowest, 1) if slowest > 0 else None,
        "partitions": partitions,
        "batch_size": spec.batch_size,
    }
    log.info("graph load: %d vertices and %d edges upserted, %d edges dropped, %d records moved, %d removed, "
             "%d requests, %d retries in %.1f s", sum(counts.vertices.values()), sum(counts.edges.values()),
             counts.dropped_edges, counts.moved_records, counts.removed_records, counts.requests, counts.retries, seconds)
    return summary


def _spec(config: TransformConfig) -> GraphSpec:
    if config.graph is None:
        raise ConfigError(f"{config.name}: loading the graph needs a 'graph:' section with an endpoint in the config")
    return config.graph


CHANGES = "changes.json"
CHANGE_RECORDS = "changes/records.parquet"


def changed_clusters(changes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """From an incremental run's change log: the clusters to rewrite, and the records to drop.

    A cluster is rewritten when a record joined, left or entered it (``new_match_id`` and
    ``old_match_id`` of every changed record; an old cluster that was retired simply no
    longer exists in the matches, and the writer removes its emptied customer).
    """
    touched, deleted = set(), []
    for record in changes["records"]:
        if record["change"] == "deleted":
            deleted.append(str(record["record_id"]))
        for key in ("new_match_id", "old_match_id"):
            if record.get(key) is not None:
                touched.add(str(record[key]))
    return sorted(touched), deleted


def load_graph_task(
    config: TransformConfig, folder: RunFolder, spark: SparkSession | None = None, *, changes_only: bool = False
) -> dict[str, Any]:
    """``matcher load-graph``: the run in ``folder`` (matches, pairs, customers when present) into the
    graph; writes ``folder/graph.json`` with what was sent and the graph's totals by label.

    With ``changes_only`` the folder must hold a ``matcher match-incremental`` run: only the
    clusters its change log touches are written and its deleted records dropped. A remote
    folder is read from its staged copy and its URI (:func:`~matcher.runtime.run_folder.open_run_folder`).
    """
    _spec(config)
    if not folder.summary.exists():
        raise InputDataError(f"{folder.location}: no completed match run here (summary.json missing); run 'matcher run' first")
    summary = json.loads(folder.summary.read_text(encoding="utf-8"))
    touched: list[str] | None = None
    removed: list[str] = []
    if changes_only:
        if not (folder.root / CHANGES).exists():
            raise InputDataError(f"{folder.location}: no change log ({CHANGES}); --changes-only needs a 'matcher match-incremental' run")
        touched, removed = changed_clusters(json.loads((folder.root / CHANGES).read_text(encoding="utf-8")))
    with task_session(folder, spark) as spark:
        matches = spark.read.parquet(str(folder.matches))
        if touched is not None:
            matches = rows_in(matches, "match_id", touched, as_text=True)
        pairs = spark.read.parquet(str(folder.pairs)) if exists(folder.pairs) else None
        customers = spark.read.parquet(str(folder.customers)) if exists(folder.customers) else None
        result = load_graph(matches, config, pairs=pairs, customers=customers,
                            threshold=summary.get("threshold_match_probability"), removed_record_ids=removed)
    if touched is not None:
        result["changes"] = {"clusters_written": len(touched), "records_removed": len(removed)}
    result["graph"] = graph_totals(config.graph)
    write_json(result, folder.root / "graph.json")
    return result


def describe(result: dict[str, Any]) -> str:
    """The lines ``matcher load-graph`` prints: what was sent, how fast, and the graph's totals."""
    lines = [
        f"graph: {result['elements']} elements upserted ({sum(result['vertices'].values())} vertices, "
        f"{sum(result['edges'].values())} edges) in {result['seconds']} s, {result['elements_per_s']} elements/s",
        f"moved records: {result['moved_records']}, dropped edges: {result['dropped_edges']}, "
        f"removed records: {result['removed_records']}, requests: {result['requests']}, retries: {result['retries']}",
    ]
    if "graph" in result:
        totals = result["graph"]
        lines.append("graph now: " + ", ".join(f"{k} {v}" for k, v in {**totals["vertices"], **totals["edges"]}.items()))
    return "\n".join(lines)
