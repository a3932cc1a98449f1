"""The evaluate task: a match run's accuracy against the configured truth column.

It reads ``RUN/summary.json``, ``RUN/matches`` and ``RUN/pairs`` and writes
``RUN/metrics.json`` (the summary plus :func:`matcher.evaluation.metrics.evaluate`)
and, unless told not to, ``RUN/report.html``.
"""

from __future__ import annotations

import json

from pyspark.sql import SparkSession

from matcher.config.transform import TransformConfig
from matcher.evaluation.metrics import evaluate
from matcher.evaluation.report import write_run_report
from matcher.runtime.errors import ConfigError, MatcherError
from matcher.runtime.outputs import write_json
from matcher.runtime.progress import stage
from matcher.runtime.run_folder import RunFolder, task_session


def evaluate_task(
    config: TransformConfig, folder: RunFolder, spark: SparkSession | None = None, *, report: bool = True
) -> dict:
    """Compare the written matches and pairs with the truth column; write metrics.json (and report.html)."""
    if not config.truth_column:
        raise ConfigError(f"{config.name}: evaluate needs 'truth_column' in the config")
    if not folder.summary.exists():
        raise MatcherError(f"{folder.location}: no completed match run here (summary.json missing); run 'matcher match' first")
    summary = json.loads(folder.summary.read_text(encoding="utf-8"))
    with task_session(folder, spark) as spark, stage("evaluate"):
        accuracy = evaluate(
            spark.read.parquet(str(folder.matches)),
            spark.read.parquet(str(folder.pairs)),
            truth=config.truth_column,
            threshold=summary["threshold_match_probability"],
            link_type=config.resolved_link_type,
        )
    metrics = {**summary, **accuracy}
    write_json(metrics, folder.metrics)
    if report:
        with stage("report"):
            write_run_report(folder, config, spark)
    return metrics
