"""Reference runners: stock Splink 5 on Spark and on DuckDB, with the model spec of a config.

Both build the same untrained model as ``matcher`` (``matcher.model.comparisons.splink_settings``)
and train it with the config's rules, the way Splink's documentation shows::

    db_api = SparkAPI(spark_session=spark)          # or DuckDBAPI()
    linker = Linker([db_api.register(df) ...], settings)
    linker.training.estimate_probability_two_random_records_match(rules, recall=...)
    linker.training.estimate_u_using_random_sampling(max_pairs=..., seed=...)
    linker.training.estimate_parameters_using_expectation_maximisation(rule)  # per EM rule
    predictions = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)

Each runner is timed from reading the input files to having clusters, and returns the
scored pairs and the clustered rows as Spark DataFrames shaped for
:func:`matcher.evaluation.metrics.evaluate` (``match_probability``, ``match_weight``,
``<truth>_l``/``<truth>_r`` and ``mw_*`` on pairs; ``match_id``, the truth column and
``source_dataset`` on rows). Converting DuckDB's results for evaluation is not timed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from splink import DuckDBAPI, Linker, SparkAPI

from matcher.config.transform import ComparisonKind, TransformConfig
from matcher.matching.threshold import resolve_threshold
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, blocking_rule, comparable, splink_settings

log = logging.getLogger(__name__)


@dataclass
class StockRun:
    """What a reference runner produced, and how long each stage took."""

    pairs: DataFrame
    rows: DataFrame
    wall_s: float
    timings_s: dict[str, float] = field(default_factory=dict)


def wanted_columns(config: TransformConfig) -> list[str]:
    """The columns a run reads: key, matching columns, truth."""
    wanted = [config.primary_key, *config.column_names]
    if config.truth_column:
        wanted.append(config.truth_column)
    return list(dict.fromkeys(wanted))


def _string_columns(config: TransformConfig) -> list[str]:
    return [c.name for c in config.columns if c.kind is not ComparisonKind.numeric]


def read_spark_inputs(spark: SparkSession, config: TransformConfig) -> list[DataFrame]:
    """One Spark DataFrame per input, restricted to the run's columns, matching columns as strings."""
    frames = []
    strings = set(_string_columns(config))
    for spec in config.inputs:
        options = {"header": "true", **spec.options} if spec.format == "csv" else dict(spec.options)
        df = spark.read.format(spec.format).options(**options).load(spec.path)
        df = df.select(*[F.col(c).cast("string").alias(c) if c in strings else F.col(c) for c in wanted_columns(config)])
        frames.append(comparable(df, config))  # the model spec compares parsed dates
    return frames


def _iso_date(value: str | None) -> date | None:
    """A ``yyyy-MM-dd`` string as a date (any year 1-9999, unlike pandas' timestamps), else None."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def read_pandas_inputs(config: TransformConfig) -> list[pd.DataFrame]:
    """One pandas DataFrame per input, restricted to the run's columns, matching columns as strings."""
    readers = {"parquet": pd.read_parquet, "csv": lambda p: pd.read_csv(p, dtype=str), "json": lambda p: pd.read_json(p, lines=True)}
    frames = []
    for spec in config.inputs:
        df = readers[spec.format](spec.path)[wanted_columns(config)]
        for c in _string_columns(config):
            df[c] = df[c].astype("string").astype(object).where(df[c].notna(), None)
        for c in config.columns:  # the model spec compares parsed dates (matcher.model.comparisons.comparable)
            if c.kind is ComparisonKind.date:
                df[c.name] = [_iso_date(v) for v in df[c.name]]
        frames.append(df)
    return frames


def harmonized_pandas_inputs(spark: SparkSession, config: TransformConfig) -> list[pd.DataFrame]:
    """For a ``sources:`` config: matcher's harmonization (ingest, standardize, quality gate) on
    Spark, its rows collected as the one pandas input stock Splink sees (dates parsed as for
    :func:`read_spark_inputs`). Stock Splink has no notion of sources; this is the fairest input."""
    from matcher.harmonize.harmonization import harmonize

    harmonized = harmonize(spark, config)
    try:
        return [comparable(harmonized.rows, config).toPandas()]
    finally:
        harmonized.unpersist()


def train_predict_cluster(linker: Linker, config: TransformConfig, timings: dict[str, float]):
    t = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [blocking_rule(r) for r in config.training.deterministic_rules], recall=config.training.deterministic_recall
    )
    timings["lambda"] = time.perf_counter() - t

    t = time.perf_counter()
    linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=config.seed)
    timings["u"] = time.perf_counter() - t

    t = time.perf_counter()
    for rule in config.training.em_blocking_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(blocking_rule(rule))
    timings["m"] = time.perf_counter() - t

    t = time.perf_counter()
    predictions = linker.inference.predict()
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=resolve_threshold(config, None).match_probability
    )
    timings["cluster"] = time.perf_counter() - t
    return predictions, clusters


def stock_linker(db_api, frames: list, config: TransformConfig) -> Linker:
    """Splink's own linker over the inputs (one frame per ``config.inputs``) registered with ``db_api``."""
    tables = [db_api.register(df, dataset_display_name=spec.name) for df, spec in zip(frames, config.inputs)]
    return Linker(tables if len(tables) > 1 else tables[0], splink_settings(config), log_level=logging.WARNING)


def _pair_columns(columns: list[str], config: TransformConfig) -> list[str]:
    keep = ["match_weight", "match_probability"]
    if config.truth_column:
        keep += [f"{config.truth_column}_l", f"{config.truth_column}_r"]
    return keep + [c for c in columns if c.startswith("mw_")]


def _row_columns(columns: list[str], config: TransformConfig) -> list[str]:
    keep = [config.primary_key, "cluster_id"]
    if config.truth_column:
        keep.append(config.truth_column)
    if SOURCE_DATASET_COLUMN in columns:
        keep.append(SOURCE_DATASET_COLUMN)
    return keep


def splink_spark_stock(spark: SparkSession, config: TransformConfig, checkpoint_dir: str | Path) -> StockRun:
    """Stock Splink 5 on Spark: every stage is Splink's own, intermediate tables go to ``checkpoint_dir``."""
    if config.sources is not None:
        raise NotImplementedError("splink_spark_stock is not supported for sources: configs (splink_duckdb is)")
    spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    frames = read_spark_inputs(spark, config)
    db_api = SparkAPI(spark_session=spark)
    for spec in config.inputs:  # an earlier round's temp views share these names
        spark.catalog.dropTempView(spec.name)
    linker = stock_linker(db_api, frames, config)
    timings["setup"] = time.perf_counter() - started
    predictions, clusters = train_predict_cluster(linker, config, timings)
    clustered = clusters.as_spark_dataframe()
    clustered.count()
    wall_s = time.perf_counter() - started

    scored = predictions.as_spark_dataframe()
    pairs = scored.select(*_pair_columns(scored.columns, config))
    rows = clustered.select(*_row_columns(clustered.columns, config)).withColumnRenamed("cluster_id", "match_id")
    return StockRun(pairs=pairs, rows=rows, wall_s=wall_s, timings_s=timings)


def splink_duckdb(spark: SparkSession, config: TransformConfig) -> StockRun:
    """Stock Splink 5 on DuckDB with pandas inputs; results are handed to Spark for evaluation.

    A ``sources:`` config is harmonized by matcher on Spark first (:func:`harmonized_pandas_inputs`,
    timed as ``harmonize`` and included in ``wall_s``)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if config.sources is not None:
        frames = harmonized_pandas_inputs(spark, config)
        timings["harmonize"] = time.perf_counter() - started
    else:
        frames = read_pandas_inputs(config)
    db_api = DuckDBAPI()
    linker = stock_linker(db_api, frames, config)
    timings["setup"] = time.perf_counter() - started
    predictions, clusters = train_predict_cluster(linker, config, timings)
    wall_s = time.perf_counter() - started

    scored, clustered = predictions.as_duckdbpyrelation(), clusters.as_duckdbpyrelation()
    pairs_pd = scored.select(*[f'"{c}"' for c in _pair_columns(scored.columns, config)]).to_df()
    rows_pd = clustered.select(*[f'"{c}"' for c in _row_columns(clustered.columns, config)]).to_df()
    pairs = spark.createDataFrame(pairs_pd)
    rows = spark.createDataFrame(rows_pd).withColumnRenamed("cluster_id", "match_id")
    return StockRun(pairs=pairs, rows=rows, wall_s=wall_s, timings_s=timings)
