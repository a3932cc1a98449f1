"""The stages around matching for a ``sources:`` config: ingest → standardize → quality gate, and
golden records after matching. :mod:`matcher.pipeline` calls these; a notebook can too::

    harmonized = harmonize(spark, config)           # .rows to match, .quarantined, .counts
    result = find_matches(harmonized.rows, config, model)
    customers = golden_records(result.rows, config)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from matcher.config.transform import TransformConfig
from matcher.harmonize.golden import golden_records
from matcher.harmonize.quality import apply_quality_gate, reconcile, source_counts
from matcher.harmonize.sources import read_sources
from matcher.harmonize.standardize import standardize
from matcher.runtime.outputs import write_parquet

log = logging.getLogger(__name__)


@dataclass
class Harmonized:
    """Rows that passed the quality gate (to match), quarantined rows, and per-source counts."""

    rows: DataFrame
    quarantined: DataFrame
    counts: dict[str, dict]
    standardized: DataFrame

    def unpersist(self) -> None:
        self.rows.unpersist()
        self.standardized.unpersist()


def harmonize(spark: SparkSession, config: TransformConfig) -> Harmonized:
    """Read every source, standardize, and split by the quality gate. The standardized rows
    are cached (standardizing runs Python once per row), and so are the rows that passed the
    gate (training and matching read them in some 40 Spark jobs, each of which would otherwise
    repeat the gate's shuffle and window); call ``unpersist()`` when done."""
    standardized = standardize(read_sources(spark, config), config).cache()
    rows, quarantined = apply_quality_gate(standardized, config)
    rows = rows.cache()
    counts = source_counts(standardized, quarantined, config)
    for name, c in counts.items():
        log.info("source %s: %d rows in, %d quarantined", name, c["rows_in"], c["rows_quarantined"])
    return Harmonized(rows, quarantined, counts, standardized)


def write_harmonization_outputs(
    harmonized: Harmonized, matched: DataFrame, config: TransformConfig, *, quarantine: Path, customers: Path
) -> dict:
    """Write the quarantine table and the golden ``customers`` table; return the reconciled summary."""
    write_parquet(harmonized.quarantined, quarantine)
    write_parquet(golden_records(matched, config), customers)
    spark = matched.sparkSession
    return harmonization_summary(harmonized.counts, matched, spark.read.parquet(str(customers)))


def harmonization_summary(counts: dict[str, dict], matched: DataFrame, customers: DataFrame | None) -> dict:
    """The reconciled per-source counts (raises if a row went missing) and the totals."""
    per_source = reconcile(counts, matched)
    summary = {
        "rows_in": sum(c["rows_in"] for c in per_source.values()),
        "rows_matched": sum(c["rows_matched"] for c in per_source.values()),
        "rows_quarantined": sum(c["rows_quarantined"] for c in per_source.values()),
        "sources": per_source,
    }
    if customers is not None:
        multi = customers.where("size(source_systems) > 1").count()
        summary["customers"] = customers.count()
        summary["customers_in_several_sources"] = multi
    return summary
