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
from matcher.harmonize.quality import check_rows, reconcile, source_counts, split_checked
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
    checked: DataFrame
    """The cached standardized rows with their issues, which ``rows`` and ``quarantined`` filter."""

    def unpersist(self) -> None:
        self.checked.unpersist()


def harmonize(spark: SparkSession, config: TransformConfig) -> Harmonized:
    """Read every source, standardize, and split by the quality gate.

    The standardized rows are cached once, with each row's issues: standardizing runs Python
    once per row, and where a source repeats a key its check is a window over every row. The
    rows that passed the gate (training and matching read them in some 40 Spark jobs) and
    the quarantined ones are filters of that cache. Call ``unpersist()`` when done."""
    checked = check_rows(standardize(read_sources(spark, config), config), config).cache()
    rows, quarantined = split_checked(checked)
    counts = source_counts(checked, quarantined, config)
    for name, c in counts.items():
        log.info("source %s: %d rows in, %d quarantined", name, c["rows_in"], c["rows_quarantined"])
    return Harmonized(rows, quarantined, counts, checked)


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
