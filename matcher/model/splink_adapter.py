"""Everything matcher takes from Splink beyond its public API, in one module.

Splink's public API builds, trains and runs a linker. matcher also writes Splink's SQL
into its own Spark jobs, writes the parameters it estimates back into Splink's model
and draws Splink's charts into its report; for that it needs parts of Splink that are
not public (``splink.internals`` and private attributes). Each function here names one
such need and adapts one such part, so that a Splink upgrade is checked against this
module and ``tests/model/test_splink_adapter.py`` alone.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from pyspark.sql import DataFrame
from splink import Linker, SparkAPI
from splink.internals.blocking import BlockingRule, _sql_gen_where_condition
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator
from splink.internals.charts import WaterfallChart
from splink.internals.comparison import Comparison
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.comparison_level import ComparisonLevel
from splink.internals.dialects import SplinkDialect
from splink.internals.html_utils import load_chart_libraries
from splink.internals.input_column import InputColumn
from splink.internals.misc import bayes_factor_to_prob, prob_to_bayes_factor
from splink.internals.parse_sql import get_columns_used_from_sql
from splink.internals.pipeline import CTEPipeline
from splink.internals.predict import predict_from_comparison_vectors_sqls, predict_from_comparison_vectors_sqls_using_settings
from splink.internals.settings import Settings
from splink.internals.splink_dataframe import SplinkDataFrame
from splink.internals.unique_id_concat import CONCAT_SEPARATOR
from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf
from splink.internals.waterfall_chart import records_to_waterfall_data

__all__ = [
    "CONCAT_SEPARATOR", "BlockingRule", "CTEPipeline", "Comparison", "ComparisonCreator", "ComparisonLevel",
    "InputColumn", "Settings", "add_comparison", "add_trained_m", "add_trained_u", "apply_trained_m_u", "bayes_factor",
    "bayes_factor_to_prob", "blocking_columns", "blocking_where_condition", "chart_libraries",
    "columns_used_by_sql", "comparison_case_sql", "comparison_input_columns", "comparison_vector_columns",
    "database_api", "enqueue_records_with_tf", "forget_trained_m", "gamma_column", "gamma_columns", "input_tables",
    "is_else_level", "is_fixed",
    "lambda_of", "levels_implied_by_rule", "link_type", "model_settings", "non_null_levels", "prediction_rules",
    "prediction_sqls", "prob_to_bayes_factor", "register_term_frequencies", "replace_trained_m", "run_pipeline",
    "set_lambda", "term_frequency_columns", "to_blocking_rule", "waterfall_chart",
]


# --- the linker ------------------------------------------------------------------------------


def model_settings(linker: Linker) -> Settings:
    """The linker's live model (``linker._settings_obj``): changes to it change the linker."""
    return linker._settings_obj


def database_api(linker: Linker) -> Any:
    """The database API the linker runs its SQL through (``linker._db_api``)."""
    return linker._db_api


def input_tables(linker: Linker) -> list[SplinkDataFrame]:
    """The input tables the linker was built on, in Splink's order (``linker._input_tables_dict``)."""
    return list(linker._input_tables_dict.values())


def apply_trained_m_u(linker: Linker) -> None:
    """Set every level's m and u from its trained estimates (``linker._populate_m_u_from_trained_values``)."""
    linker._populate_m_u_from_trained_values()


def set_lambda(linker: Linker, value: float) -> None:
    """Set the model's probability that two random records match (``_probability_two_random_records_match``)."""
    model_settings(linker)._probability_two_random_records_match = value


def term_frequency_columns(linker: Linker) -> list[str]:
    """The input columns the model adjusts for term frequency (``_term_frequency_columns``)."""
    return [column.unquote().name for column in model_settings(linker)._term_frequency_columns]


def register_term_frequencies(linker: Linker, lookup: Callable[[str, str], Any]) -> None:
    """Give the linker a term-frequency table per term-frequency column instead of letting Splink compute it.

    ``lookup(column, tf_column)`` returns the table (columns ``column`` and ``tf_column``)
    in a form the linker's database API registers (a Spark DataFrame, an Arrow table ...).
    """
    db_api, tag = database_api(linker), uuid.uuid4().hex[:8]
    for column in model_settings(linker)._term_frequency_columns:
        column = column.unquote()
        table = db_api.register(lookup(column.name, column.tf_name), table_name=f"__matcher_tf_{column.name}_{tag}")
        linker.table_management.register_term_frequency_lookup(table, column.name)


def enqueue_records_with_tf(linker: Linker, pipeline: CTEPipeline) -> CTEPipeline:
    """Add Splink's ``__splink__df_concat_with_tf`` (every input record with its term frequencies) to ``pipeline``."""
    return enqueue_df_concat_with_tf(linker, pipeline)


def run_pipeline(db_api: SparkAPI, pipeline: CTEPipeline) -> DataFrame:
    """The pipeline's SQL as a lazy Spark DataFrame, Splink's dialect fixes applied (``_setup_for_execute_sql``)."""
    return db_api.spark.sql(db_api._setup_for_execute_sql(pipeline.generate_cte_pipeline_sql(), pipeline.output_table_name))


# --- the model's settings --------------------------------------------------------------------


def link_type(settings: Settings) -> str:
    """``dedupe_only``, ``link_only`` or ``link_and_dedupe`` (``settings._link_type``)."""
    return settings._link_type


def lambda_of(settings: Settings) -> float:
    """The model's probability that two random records match (``_probability_two_random_records_match``)."""
    return settings._probability_two_random_records_match


def prediction_rules(settings: Settings) -> list[BlockingRule]:
    """The blocking rules that generate the pairs to score, in order (``_blocking_rules_to_generate_predictions``)."""
    return settings._blocking_rules_to_generate_predictions


def blocking_columns(settings: Settings) -> list[str]:
    """The ``l.``/``r.`` columns Splink selects for a blocked pair (``_columns_to_select_for_blocking``)."""
    return list(settings._columns_to_select_for_blocking)


def comparison_vector_columns(settings: Settings, *, values: bool = True) -> list[str]:
    """The columns Splink selects for a comparison vector, gamma CASEs included
    (``columns_to_select_for_comparison_vector_values``); without ``values``, not the
    compared values themselves (``first_name_l``, ...): ids, levels and term frequencies."""
    return list(Settings.columns_to_select_for_comparison_vector_values(
        unique_id_input_columns=settings.column_info_settings.unique_id_input_columns,
        comparisons=settings.core_model_settings.comparisons,
        retain_matching_columns=values and settings._retain_matching_columns,
        additional_columns_to_retain=settings._additional_columns_to_retain,
    ))


def gamma_columns(settings: Settings) -> list[str]:
    """The comparison-vector column of each comparison, in order."""
    return [gamma_column(cc) for cc in settings.comparisons]


def prediction_sqls(settings: Settings, *, values: bool = True) -> list[dict[str, str]]:
    """Splink's SQL from ``__splink__df_comparison_vectors`` to ``__splink__df_predict`` with the model's
    parameters; without ``values``, over vectors of :func:`comparison_vector_columns` ``(values=False)``,
    keeping each comparison's ``gamma_*`` (Splink's training mode) but no compared value."""
    if values:
        return predict_from_comparison_vectors_sqls_using_settings(settings)
    return predict_from_comparison_vectors_sqls(
        unique_id_input_columns=settings.column_info_settings.unique_id_input_columns,
        core_model_settings=settings.core_model_settings,
        sql_dialect=SplinkDialect.from_string(settings._sql_dialect_str),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=settings._retain_intermediate_calculation_columns,
        training_mode=True,
        additional_columns_to_retain=settings._additional_columns_to_retain,
    )


def levels_implied_by_rule(settings: Settings, rule: BlockingRule) -> list[ComparisonLevel]:
    """The exact-match levels every pair ``rule`` blocks falls in, as Splink's EM reverses a training rule
    (``Settings._get_comparison_levels_corresponding_to_training_blocking_rule``)."""
    found = Settings._get_comparison_levels_corresponding_to_training_blocking_rule(
        blocking_rule_sql=rule.blocking_rule_sql, sqlglot_dialect=rule.sqlglot_dialect, comparisons=settings.comparisons
    )
    return [info["level"] for info in found]


# --- comparisons and their levels ------------------------------------------------------------


def gamma_column(comparison: Comparison) -> str:
    """The comparison's comparison-vector column, ``gamma_<output column>`` (``_gamma_column_name``)."""
    return comparison._gamma_column_name


def comparison_case_sql(comparison: Comparison) -> str:
    """The comparison's ``CASE ... END as gamma_<name>`` exactly as it stands in
    :func:`comparison_vector_columns` (``_case_statement``)."""
    return comparison._case_statement


def comparison_input_columns(comparison: Comparison) -> set[str]:
    """The input columns the comparison's levels read (``_input_columns_used_by_case_statement``)."""
    return {column.input_name for column in comparison._input_columns_used_by_case_statement}


def non_null_levels(comparison: Comparison) -> list[ComparisonLevel]:
    """The levels that have m and u: all but the null level (``_comparison_levels_excluding_null``)."""
    return list(comparison._comparison_levels_excluding_null)


def is_fixed(comparison: Comparison) -> bool:
    """Whether every level's m and u are fixed, never trained (``_fix_m_probability``, ``_fix_u_probability``)."""
    return all(level._fix_m_probability and level._fix_u_probability for level in non_null_levels(comparison))


def add_comparison(settings: Settings, comparison: dict[str, Any]) -> None:
    """Append a comparison given as a settings dict to a model (its levels numbered as Splink does)."""
    built = Comparison(**comparison, sqlglot_dialect=settings._sqlglot_dialect)
    built.column_info_settings = settings.column_info_settings
    settings.comparisons = [*settings.comparisons, built]


def is_else_level(level: ComparisonLevel) -> bool:
    """Whether the level is the catch-all ``ELSE`` (``_is_else_level``)."""
    return bool(level._is_else_level)


def bayes_factor(level: ComparisonLevel) -> float | None:
    """The level's m / u (1 for the null level, None before training; ``_bayes_factor``)."""
    return level._bayes_factor


def cap_term_frequency_boost(comparison: Comparison) -> bool:
    """Let no value's term frequency raise the comparison's weight above its exact level's average:
    each term-frequency-adjusted level gets ``tf_minimum_u_value`` = the exact level's u (a rare value
    still weighs the average, a common one less). Returns whether any level has term frequencies."""
    levels = [level for level in non_null_levels(comparison) if level._has_tf_adjustments]
    for level in levels:
        level._tf_minimum_u_value = float(level._u_probability_corresponding_to_exact_match(comparison.comparison_levels))
    return bool(levels)


def add_trained_u(level: ComparisonLevel, probability: float, description: str) -> None:
    """Record one estimate of the level's u (``_add_trained_u_probability``); :func:`apply_trained_m_u` applies it."""
    level._add_trained_u_probability(probability, description)


def add_trained_m(level: ComparisonLevel, probability: float, description: str) -> None:
    """Record one estimate of the level's m (``_add_trained_m_probability``); Splink applies the median of them."""
    level._add_trained_m_probability(probability, description)


def forget_trained_m(settings: Settings) -> None:
    """Drop every trained m estimate of the model's trainable levels (``_trained_m_probabilities``), to train again."""
    for comparison in settings.comparisons:
        for level in non_null_levels(comparison):
            if not level._fix_m_probability:
                level._trained_m_probabilities = []


def replace_trained_m(level: ComparisonLevel, probability: float, description: str) -> None:
    """Make ``probability`` the level's only m estimate (``_trained_m_probabilities``)."""
    level._trained_m_probabilities = [{"probability": probability, "description": description, "m_or_u": "m"}]


# --- blocking --------------------------------------------------------------------------------


def to_blocking_rule(rule: BlockingRuleCreator | str, dialect: str) -> BlockingRule:
    """A ``block_on(...)`` or SQL string as Splink's blocking rule in ``dialect`` (``to_blocking_rule_creator``)."""
    return to_blocking_rule_creator(rule).get_blocking_rule(dialect)


def equi_join_conditions(rule: BlockingRule) -> list[tuple[str, str]]:
    """The ``(left, right)`` SQL of each equality a rule joins on (``_equi_join_conditions``)."""
    return list(rule._equi_join_conditions)


def blocking_where_condition(link_type: str, unique_id_columns: list[InputColumn]) -> str:
    """Splink's ``where`` clause that keeps each pair of a ``l``/``r`` self-join once (``_sql_gen_where_condition``)."""
    return _sql_gen_where_condition(link_type, unique_id_columns)


def columns_used_by_sql(sql: str, dialect: str) -> list[str]:
    """The input columns a ``l.``/``r.`` SQL condition reads (``get_columns_used_from_sql``)."""
    return get_columns_used_from_sql(sql, dialect)


# --- charts ----------------------------------------------------------------------------------


def chart_libraries() -> dict[str, str]:
    """vega, vega-lite and vega-embed as shipped inside the splink wheel (``load_chart_libraries``)."""
    return load_chart_libraries()


def waterfall_chart(record: dict[str, Any], settings: Settings, *, hide_values: bool) -> dict[str, Any]:
    """Splink's waterfall chart (Vega-Lite spec) for one scored pair (``records_to_waterfall_data``)."""
    return WaterfallChart(records_to_waterfall_data([record], settings, hide_values)).chart_dict
