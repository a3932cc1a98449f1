"""Score a small batch of records in the driver: Splink on DuckDB, with the Spark model's exact scores.

A Spark job costs a fixed second or two however few rows it touches, which is most of an
incremental run's time when a day's delta is a few hundred records. Splink's models are
engine-independent: :func:`duckdb_settings` builds the configured comparisons for
DuckDB (:func:`matcher.model.comparisons.splink_settings`) and copies the trained parameters
level by level from the Spark model, and :func:`predict_between` scores in an in-process
DuckDB database. Where the engines' functions differ, the Spark definition is used:

* ``jaro_winkler_similarity`` is replaced by :func:`matcher.model.similarity.jaro_winkler`
  (Commons Text's definition, which Splink's Spark UDF uses);
* dates are parsed from ``yyyy-MM-dd`` strings as :func:`matcher.model.comparisons.comparable`
  does on Spark (unparseable → null).

The comparison levels that remain are SQL both engines define alike (equality, Levenshtein,
absolute differences, regular-expression prefixes, date differences in days);
``tests/test_driver_scoring.py`` compares every comparison kind's levels and weights with a
Spark run.
"""

from __future__ import annotations

import os
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from splink import DuckDBAPI, Linker, SettingsCreator

from matcher.config.transform import DATE_KINDS, TransformConfig
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import splink_settings
from matcher.model.dependence import PREFIX as DEPENDENCE_PREFIX
from matcher.model.similarity import jaro_winkler_arrow
from matcher.model.splink_adapter import (
    CTEPipeline,
    Settings,
    blocking_columns,
    comparison_vector_columns,
    prediction_rules,
    prediction_sqls,
    register_term_frequencies,
)
from matcher.runtime.errors import MatcherError

JARO_WINKLER_UDF = "matcher_jaro_winkler"
_TRAINED_LEVEL_KEYS = ("m_probability", "u_probability", "tf_minimum_u_value", "tf_adjustment_weight")


def duckdb_settings(config: TransformConfig, model: TrainedModel) -> dict[str, Any]:
    """The configured comparisons in DuckDB's SQL with ``model``'s trained λ, m and u."""
    settings = splink_settings(model.configure(config)).get_settings("duckdb").as_dict()
    trained = model.splink_model
    settings["probability_two_random_records_match"] = trained["probability_two_random_records_match"]
    # dependence corrections are the model's own, in SQL both engines read
    fitted_columns = [c for c in trained["comparisons"] if not c["output_column_name"].startswith(DEPENDENCE_PREFIX)]
    if len(settings["comparisons"]) != len(fitted_columns):
        raise MatcherError(f"{config.name}: the model's comparisons do not match the config's; retrain with 'matcher train'")
    for comparison, fitted in zip(settings["comparisons"], fitted_columns):
        levels, fitted_levels = comparison["comparison_levels"], fitted["comparison_levels"]
        if comparison["output_column_name"] != fitted["output_column_name"] or len(levels) != len(fitted_levels):
            raise MatcherError(
                f"{config.name}: comparison {comparison['output_column_name']!r} differs from the model's; retrain with 'matcher train'"
            )
        for level, fitted_level in zip(levels, fitted_levels):
            level.update({k: fitted_level[k] for k in _TRAINED_LEVEL_KEYS if k in fitted_level})
            level["sql_condition"] = level["sql_condition"].replace("jaro_winkler_similarity(", f"{JARO_WINKLER_UDF}(")
    settings["comparisons"] += [c for c in trained["comparisons"] if c not in fitted_columns]
    return settings


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB database with the Spark definition of ``jaro_winkler_similarity`` registered."""
    connection = duckdb.connect()
    connection.execute(f"SET threads = {os.cpu_count() or 1}")
    connection.create_function(
        JARO_WINKLER_UDF, jaro_winkler_arrow, ["VARCHAR", "VARCHAR"], "DOUBLE", type="arrow", null_handling="special"
    )
    return connection


def comparable_table(frame: pd.DataFrame | pa.Table, config: TransformConfig) -> pa.Table:
    """``frame`` as Arrow, date columns parsed from ISO strings (null when unparseable), like Spark's ``to_date``."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    for column in (c.name for c in config.columns if c.kind in DATE_KINDS and c.name in table.column_names):
        values = table[column]
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            continue
        parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True).cast(pa.date32())
        # strptime rolls impossible dates over (2020-02-30 → 2020-03-01); Spark makes them null
        parsed = pc.if_else(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), values), parsed, pa.scalar(None, pa.date32()))
        table = table.set_column(table.schema.get_field_index(column), column, parsed)
    return table


def looked_up_frequencies(frequencies: pd.DataFrame, *frames: pd.DataFrame) -> pd.DataFrame:
    """The rows of a term-frequency table (value, ``tf_<column>``) whose value one of ``frames`` holds:
    the only ones a prediction on them looks up (at 1M records, 10% of the email table)."""
    column = frequencies.columns[0]
    held = pd.concat([frame[column] for frame in frames if column in frame], ignore_index=True)
    return frequencies[frequencies[column].isin(held)]


def predict_between(
    config: TransformConfig,
    model: TrainedModel,
    left: pd.DataFrame,
    right: pd.DataFrame,
    frequencies: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """Splink's ``predict_between(left, right)`` on DuckDB with ``model``; ``frequencies`` maps each
    term-frequency column to its table (value, ``tf_<column>``). Returns Splink's prediction columns."""
    connection = duckdb_connection()
    try:
        db_api = DuckDBAPI(connection=connection)
        left_table = db_api.register(comparable_table(left, config), dataset_display_name="existing_and_new")
        right_table = db_api.register(comparable_table(right, config), dataset_display_name="new")
        linker = Linker(right_table, duckdb_settings(config, model), log_level=None)
        register_term_frequencies(linker, lambda column, _: comparable_table(looked_up_frequencies(frequencies[column], left, right), config))
        scored = linker.inference.predict_between(left_table, right_table, warning_mode="never")
        return scored.as_pyarrow_table().to_pandas()
    finally:
        connection.close()


def duckdb_model(config: TransformConfig, model: TrainedModel) -> Settings:
    """Splink's model object for :func:`duckdb_settings` (its rules and comparisons in DuckDB's SQL)."""
    return SettingsCreator.from_path_or_dict(duckdb_settings(config, model)).get_settings("duckdb")


def pair_scoring_sql(config: TransformConfig, model: TrainedModel, left: str, right: str) -> str:
    """One DuckDB query that scores the pairs of tables ``left`` × ``right`` some prediction rule blocks.

    The query is Splink's: its blocked-pair columns, comparison vectors and prediction with
    ``model``'s parameters (:func:`duckdb_settings`); ``match_key`` is the first rule that
    holds, as a full run numbers them. Both tables hold the comparison columns as
    :func:`comparable_table` gives them and every ``tf_<column>`` the model adjusts on (Splink
    reads term frequencies from the records). Built once, it runs in milliseconds per call.
    """
    settings = duckdb_model(config, model)
    rules = [f"({rule.blocking_rule_sql})" for rule in prediction_rules(settings)]
    match_key = "CASE " + " ".join(f"WHEN {rule} THEN {i}" for i, rule in enumerate(rules)) + " END"
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(
        f"SELECT {', '.join(blocking_columns(settings))}, {match_key} AS match_key "
        f"FROM {left} AS l JOIN {right} AS r ON {' OR '.join(rules)}",
        "__splink__blocked",
    )
    pipeline.enqueue_sql(
        f"SELECT {', '.join(comparison_vector_columns(settings))} FROM __splink__blocked", "__splink__df_comparison_vectors"
    )
    pipeline.enqueue_list_of_sqls(prediction_sqls(settings))
    return pipeline.generate_cte_pipeline_sql()
