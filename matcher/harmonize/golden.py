"""Golden records: one customer profile per ``match_id``, chosen field by field, with provenance.

Survivorship rules (``golden:`` in the config; ``rules`` per field, else ``default_rule``).
Only non-null values compete; ties fall to ``source_priority`` (sources not listed come
after the listed ones), then to the smallest ``record_id``, so the result is deterministic.

==================  ===================================================================
rule                the surviving value is the one from
==================  ===================================================================
source_priority     the record of the highest-priority source
most_recent         the record with the latest ``timestamp_column`` (nulls last)
most_frequent       the value most records of the cluster agree on
most_complete       the record with the most non-null profile fields
==================  ===================================================================

The ``customers`` table (written to ``RUN/customers``) has, per ``match_id``:

* ``match_id``; ``n_records``; ``source_systems`` (sorted distinct sources);
  ``record_ids`` (sorted member record ids);
* one column per profile field (``golden.fields``, default: every canonical field the
  sources map, plus ``first_name_canonical``) holding the surviving standardized value;
* ``<field>__source`` and ``<field>__record_id``: the source system and record the value
  came from (null when no record of the cluster has the field).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from matcher.config.base import RECORD_ID
from matcher.config.harmonization import SOURCE_SYSTEM, GoldenSpec
from matcher.config.transform import TransformConfig
from matcher.harmonize.rules import profile_fields

_COMPLETENESS = "_completeness"
_PRIORITY = "_priority"
_SIZE = "_size"


def _priority(spec: GoldenSpec) -> Column:
    rank = F.lit(len(spec.source_priority))
    for i, name in reversed(list(enumerate(spec.source_priority))):
        rank = F.when(F.col(SOURCE_SYSTEM) == name, F.lit(i)).otherwise(rank)
    return rank


def _sort_key(field: str, rule: str, spec: GoldenSpec) -> list[Column]:
    """Ascending sort key: the smallest struct wins."""
    if rule == "source_priority":
        first: list[Column] = []
    elif rule == "most_recent":
        ts = F.col(spec.timestamp_column).cast("timestamp").cast("double")
        first = [F.coalesce(-ts, F.lit(float("inf")))]
    elif rule == "most_frequent":
        first = [-F.count(F.lit(1)).over(Window.partitionBy("match_id", field))]
    elif rule == "most_complete":
        first = [-F.col(_COMPLETENESS)]
    else:
        raise ValueError(f"unknown survivorship rule {rule!r}")
    return [*first, F.col(_PRIORITY), F.col(RECORD_ID)]


def golden_records(rows: DataFrame, config: TransformConfig) -> DataFrame:
    """One row per ``match_id`` of ``rows`` (the match output) — see the module docstring.

    A record alone in its cluster (most of them) is its own golden record: only the
    clusters of several records are aggregated."""
    spec = config.golden or GoldenSpec()
    fields = profile_fields(config)
    # shuffled as rows, not as the aggregation's partial results (one candidate struct per field:
    # several times wider, and rarely merged, since most clusters hold one or two records)
    sized = rows.repartition("match_id").withColumn(_SIZE, F.count(F.lit(1)).over(Window.partitionBy("match_id")))
    alone = sized.where(F.col(_SIZE) == 1).select(
        "match_id", F.lit(1).cast("long").alias("n_records"), F.array(SOURCE_SYSTEM).alias("source_systems"),
        F.array(RECORD_ID).alias("record_ids"),
        *[c for f in fields for c in _provenance(f, F.col(f), F.col(SOURCE_SYSTEM), F.col(RECORD_ID))],
    )
    return alone.unionByName(_chosen(sized.where(F.col(_SIZE) > 1), fields, spec))


def _provenance(field: str, value: Column, source: Column, record: Column) -> list[Column]:
    """The golden ``field``, its ``__source`` and ``__record_id`` (null with the value)."""
    present = value.isNotNull()
    return [value.alias(field), F.when(present, source).alias(f"{field}__source"),
            F.when(present, record).alias(f"{field}__record_id")]


def _chosen(rows: DataFrame, fields: list[str], spec: GoldenSpec) -> DataFrame:
    """The survivorship rules applied to clusters of several records."""
    completeness = sum((F.col(f).isNotNull().cast("int") for f in fields), F.lit(0))
    ranked = rows.withColumn(_COMPLETENESS, completeness).withColumn(_PRIORITY, _priority(spec))
    candidates = []
    for i, field in enumerate(fields):
        key = _sort_key(field, spec.rules.get(field, spec.default_rule), spec)
        ranked = ranked.withColumn(f"_k{i}", F.struct(*[k.alias(f"k{j}") for j, k in enumerate(key)]))
        candidates.append(
            F.min(F.when(F.col(field).isNotNull(), F.struct(
                F.col(f"_k{i}").alias("key"),
                F.col(field).alias("value"),
                F.col(SOURCE_SYSTEM).alias("source"),
                F.col(RECORD_ID).alias("record"),
            ))).alias(f"_w{i}")
        )
    chosen = ranked.groupBy("match_id").agg(
        F.count(F.lit(1)).alias("n_records"),
        F.array_sort(F.collect_set(SOURCE_SYSTEM)).alias("source_systems"),
        F.array_sort(F.collect_list(RECORD_ID)).alias("record_ids"),
        *candidates,
    )
    profile = [c for i, f in enumerate(fields)
               for c in _provenance(f, F.col(f"_w{i}.value"), F.col(f"_w{i}.source"), F.col(f"_w{i}.record"))]
    return chosen.select("match_id", "n_records", "source_systems", "record_ids", *profile)
