"""matcher.model.splink_adapter: each function against a real Splink linker (DuckDB where the function is
engine-neutral, the session's Spark otherwise), and the rule that no other module reaches into Splink."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import splink.comparison_library as cl
from pyspark.sql import DataFrame
from splink import DuckDBAPI, Linker, SettingsCreator, SparkAPI, block_on

from matcher.model import splink_adapter as adapter
from tests.conftest import REPO

ROWS = pd.DataFrame({
    "unique_id": [1, 2, 3, 4],
    "first_name": ["ann", "ann", "bob", "bob"],
    "city": ["leeds", "leeds", "leeds", "york"],
})
NAME_M_U = ([0.9, 0.1], [0.2, 0.8])  # exact, else
CITY_M_U = ([0.7, 0.3], [0.4, 0.6])


def settings(link_type: str = "dedupe_only") -> SettingsCreator:
    return SettingsCreator(
        link_type=link_type,
        comparisons=[
            cl.ExactMatch("first_name").configure(m_probabilities=NAME_M_U[0], u_probabilities=NAME_M_U[1]),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True, m_probabilities=CITY_M_U[0], u_probabilities=CITY_M_U[1]),
        ],
        blocking_rules_to_generate_predictions=[block_on("city"), "l.first_name = r.first_name"],
        probability_two_random_records_match=0.1,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
    )


@pytest.fixture
def db_api() -> DuckDBAPI:
    return DuckDBAPI(connection=duckdb.connect())


@pytest.fixture
def linker(db_api) -> Linker:
    return Linker(db_api.register(ROWS, dataset_display_name="people"), settings(), log_level=None)


@pytest.fixture
def model(linker) -> adapter.Settings:
    return adapter.model_settings(linker)


def saved(linker: Linker) -> dict:
    return linker.misc.save_model_to_json()


def exact_level(linker: Linker, comparison: int = 0) -> adapter.ComparisonLevel:
    return adapter.model_settings(linker).comparisons[comparison].comparison_levels[1]


def with_tf_city(rows: pd.DataFrame = ROWS) -> pd.DataFrame:
    """The rows as Splink's ``__splink__df_concat_with_tf`` holds them (term frequencies of ``city`` added)."""
    return rows.assign(tf_city=rows["city"].map(rows["city"].value_counts(normalize=True)))


def blocked(model: adapter.Settings) -> duckdb.DuckDBPyRelation:
    """Every pair of :data:`ROWS` once, with the columns Splink selects for a blocked pair."""
    rows = with_tf_city()  # noqa: F841 (read by DuckDB's replacement scan)
    columns = ", ".join(adapter.blocking_columns(model))
    where = adapter.blocking_where_condition(adapter.link_type(model), model.column_info_settings.unique_id_input_columns)
    return duckdb.sql(f"select {columns}, '0' as match_key from rows as l inner join rows as r on 1=1 {where}")


# --- the linker ------------------------------------------------------------------------------


def test_model_settings_is_the_linkers_live_model(linker, model):
    assert isinstance(model, adapter.Settings)
    assert [c.output_column_name for c in model.comparisons] == ["first_name", "city"]
    model.comparisons[0].comparison_levels[1].m_probability = 0.123
    assert saved(linker)["comparisons"][0]["comparison_levels"][1]["m_probability"] == 0.123


def test_database_api_is_the_api_the_inputs_were_registered_with(linker, db_api):
    assert adapter.database_api(linker) is db_api


def test_input_tables_are_the_registered_inputs_in_order(db_api):
    left, right = db_api.register(ROWS, dataset_display_name="crm"), db_api.register(ROWS, dataset_display_name="shop")
    linker = Linker([left, right], settings("link_only"), log_level=None)
    assert [t.dataset_display_name for t in adapter.input_tables(linker)] == ["crm", "shop"]


def test_apply_trained_m_u_sets_the_median_of_the_trained_estimates(linker):
    level = exact_level(linker)
    for m in (0.2, 0.9, 0.4):
        adapter.add_trained_m(level, m, "test")
    assert level.m_probability == NAME_M_U[0][0]  # recorded, not yet applied
    adapter.apply_trained_m_u(linker)
    assert saved(linker)["comparisons"][0]["comparison_levels"][1]["m_probability"] == 0.4


def test_add_trained_u_records_an_estimate_that_apply_makes_the_u(linker):
    adapter.add_trained_u(exact_level(linker, 1), 0.05, "estimate u by random sampling")
    adapter.apply_trained_m_u(linker)
    assert saved(linker)["comparisons"][1]["comparison_levels"][1]["u_probability"] == 0.05


def test_add_trained_m_keeps_every_estimate(linker):
    level = exact_level(linker)
    adapter.add_trained_m(level, 0.3, "EM, blocked on: a")
    adapter.add_trained_m(level, 0.5, "EM, blocked on: b")
    adapter.apply_trained_m_u(linker)
    assert level.m_probability == pytest.approx(0.4)  # Splink's median of two


def test_replace_trained_m_leaves_one_estimate(linker):
    level = exact_level(linker)
    adapter.add_trained_m(level, 0.3, "EM")
    adapter.replace_trained_m(level, 0.8, "labels")
    adapter.apply_trained_m_u(linker)
    assert level.m_probability == 0.8


def test_set_lambda_is_what_the_saved_model_holds(linker, model):
    adapter.set_lambda(linker, 0.0123)
    assert saved(linker)["probability_two_random_records_match"] == 0.0123
    assert adapter.lambda_of(model) == 0.0123


def test_term_frequency_columns_are_the_adjusted_inputs(linker):
    assert adapter.term_frequency_columns(linker) == ["city"]


def test_registered_term_frequencies_are_the_ones_predictions_use(linker):
    asked = []

    def lookup(column: str, tf_column: str) -> pd.DataFrame:
        asked.append((column, tf_column))
        return pd.DataFrame({column: ["leeds", "york"], tf_column: [0.01, 0.02]})  # not the inputs' own shares

    adapter.register_term_frequencies(linker, lookup)
    predictions = linker.inference.predict(warning_mode="never").as_pandas_dataframe()
    assert asked == [("city", "tf_city")]
    assert set(predictions.loc[predictions["city_l"] == "leeds", "tf_city_l"]) == {0.01}


def test_records_with_tf_and_run_pipeline_give_the_inputs_with_their_term_frequencies_on_spark(spark):
    linker = Linker(SparkAPI(spark_session=spark).register(spark.createDataFrame(ROWS)), settings(), log_level=None)
    adapter.register_term_frequencies(linker, lambda column, tf: spark.createDataFrame(with_tf_city()[[column, tf]].drop_duplicates()))
    pipeline = adapter.enqueue_records_with_tf(linker, adapter.CTEPipeline())
    assert pipeline.output_table_name == "__splink__df_concat_with_tf"
    frame = adapter.run_pipeline(adapter.database_api(linker), pipeline)
    assert {r.unique_id: r.tf_city for r in frame.collect()} == {1: 0.75, 2: 0.75, 3: 0.75, 4: 0.25}


def test_run_pipeline_is_a_lazy_spark_dataframe_of_the_last_step(spark):
    pipeline = adapter.CTEPipeline()
    pipeline.enqueue_sql("select 2 as x", "__first")
    pipeline.enqueue_sql("select x + 1 as y from __first", "__second")
    frame = adapter.run_pipeline(SparkAPI(spark_session=spark), pipeline)
    assert isinstance(frame, DataFrame) and [r.y for r in frame.collect()] == [3]


# --- the model's settings --------------------------------------------------------------------


def test_link_type_is_the_configured_one(linker, db_api, model):
    assert adapter.link_type(model) == "dedupe_only"
    tables = [db_api.register(ROWS, dataset_display_name=n) for n in ("crm", "shop")]
    assert adapter.link_type(adapter.model_settings(Linker(tables, settings("link_only"), log_level=None))) == "link_only"


def test_lambda_of_reads_the_models_prior(model):
    assert adapter.lambda_of(model) == 0.1


def test_prediction_rules_are_the_configured_ones_in_order(model):
    rules = [r.blocking_rule_sql for r in adapter.prediction_rules(model)]
    assert len(rules) == 2 and "city" in rules[0] and rules[1] == "l.first_name = r.first_name"


def test_blocking_columns_select_both_records_of_a_pair(model):
    assert {"unique_id_l", "unique_id_r", "first_name_l", "first_name_r", "tf_city_l", "tf_city_r"} <= set(blocked(model).columns)


def test_comparison_vector_columns_compute_each_comparisons_level(model):
    vectors = blocked(model).select(", ".join(adapter.comparison_vector_columns(model))).df()
    same_name = vectors["first_name_l"] == vectors["first_name_r"]
    assert (vectors["gamma_first_name"] == same_name.astype(int)).all()


def test_gamma_columns_name_each_comparisons_vector_column(model):
    assert adapter.gamma_columns(model) == ["gamma_first_name", "gamma_city"]


def predicted(model: adapter.Settings, *, values: bool = True) -> pd.DataFrame:
    """Every pair of :data:`ROWS` scored by :func:`adapter.prediction_sqls` over :func:`adapter.comparison_vector_columns`."""
    vectors = blocked(model).select(", ".join(adapter.comparison_vector_columns(model, values=values)))  # noqa: F841
    pipeline = adapter.CTEPipeline()
    pipeline.enqueue_sql("select * from vectors", "__splink__df_comparison_vectors")
    pipeline.enqueue_list_of_sqls(adapter.prediction_sqls(model, values=values))
    return duckdb.sql(pipeline.generate_cte_pipeline_sql()).df().sort_values(["unique_id_l", "unique_id_r"], ignore_index=True)


def test_prediction_sqls_score_comparison_vectors_with_the_models_parameters(model):
    scored = predicted(model).set_index(["unique_id_l", "unique_id_r"])
    # records 1 and 4: names and cities differ, so no term-frequency adjustment
    expected = math.log2(0.1 / 0.9) + math.log2(NAME_M_U[0][1] / NAME_M_U[1][1]) + math.log2(CITY_M_U[0][1] / CITY_M_U[1][1])
    assert scored.loc[(1, 4), "match_weight"] == pytest.approx(expected, abs=1e-12)


def test_without_values_vectors_and_predictions_keep_ids_levels_and_term_frequencies_only(model):
    wide = blocked(model).select(", ".join(adapter.comparison_vector_columns(model)))
    narrow = blocked(model).select(", ".join(adapter.comparison_vector_columns(model, values=False)))
    assert set(wide.columns) - set(narrow.columns) == {"first_name_l", "first_name_r", "city_l", "city_r"}
    scored = predicted(model, values=False)
    assert {"gamma_first_name", "gamma_city", "tf_city_l", "mw_city", "mw_tf_adj_city", "match_weight"} <= set(scored.columns)
    assert not {"first_name_l", "city_r"} & set(scored.columns)
    # Splink's own columns, values included, give the same weights
    pd.testing.assert_series_equal(scored["match_weight"], predicted(model)["match_weight"])


def test_levels_implied_by_rule_are_the_exact_levels_of_its_columns(model):
    rule = adapter.to_blocking_rule(block_on("city"), "duckdb")
    assert adapter.levels_implied_by_rule(model, rule) == [model.comparisons[1].comparison_levels[1]]


# --- comparisons and their levels ------------------------------------------------------------


def test_gamma_column_is_the_comparisons_vector_column(model):
    assert adapter.gamma_column(model.comparisons[1]) == "gamma_city"


def test_comparison_case_sql_is_the_case_among_the_vector_columns(model):
    case = adapter.comparison_case_sql(model.comparisons[0])
    assert case in adapter.comparison_vector_columns(model)
    assert blocked(model).select(case).columns == ["gamma_first_name"]


def test_comparison_input_columns_are_the_columns_its_levels_read(model):
    assert [adapter.comparison_input_columns(cc) for cc in model.comparisons] == [{"first_name"}, {"city"}]


def test_non_null_levels_leave_out_the_null_level(model):
    levels = adapter.non_null_levels(model.comparisons[0])
    assert [lv.comparison_vector_value for lv in levels] == [1, 0]
    assert not any(lv.is_null_level for lv in levels)


def test_is_else_level_is_true_for_the_last_level_only(model):
    assert [adapter.is_else_level(lv) for lv in model.comparisons[0].comparison_levels] == [False, False, True]


def test_bayes_factor_is_m_over_u(model):
    null, exact, other = model.comparisons[0].comparison_levels
    assert adapter.bayes_factor(exact) == pytest.approx(NAME_M_U[0][0] / NAME_M_U[1][0])
    assert adapter.bayes_factor(null) == 1.0


def test_bayes_factor_and_probability_convert_both_ways():
    assert adapter.prob_to_bayes_factor(0.2) == pytest.approx(0.25)
    assert adapter.bayes_factor_to_prob(0.25) == pytest.approx(0.2)


# --- blocking --------------------------------------------------------------------------------


def test_to_blocking_rule_turns_block_on_and_sql_into_rules():
    assert adapter.to_blocking_rule("l.a = r.a", "spark").blocking_rule_sql == "l.a = r.a"
    rule = adapter.to_blocking_rule(block_on("city"), "spark")
    assert isinstance(rule, adapter.BlockingRule) and rule.sqlglot_dialect == "spark"
    assert re.fullmatch(r"l\.`?city`? = r\.`?city`?", rule.blocking_rule_sql)


def test_equi_join_conditions_are_the_equalities_a_rule_joins_on():
    rule = adapter.to_blocking_rule("l.city = r.city and substr(l.a, 1, 2) = substr(r.a, 1, 2) and l.b < r.b", "spark")
    assert [(left.replace("`", ""), right.replace("`", "")) for left, right in adapter.equi_join_conditions(rule)] == [
        ("city", "city"), ("SUBSTRING(a, 1, 2)", "SUBSTRING(a, 1, 2)")]


def test_blocking_where_condition_keeps_each_pair_once(model):
    assert len(blocked(model).df()) == len(ROWS) * (len(ROWS) - 1) // 2


def test_columns_used_by_sql_are_the_input_columns():
    assert sorted(adapter.columns_used_by_sql("l.first_name = r.first_name and l.city = r.city", "spark")) == ["city", "first_name"]


# --- charts ----------------------------------------------------------------------------------


def test_chart_libraries_are_the_vega_scripts():
    libraries = adapter.chart_libraries()
    assert set(libraries) == {"vega", "vega-lite", "vega-embed"}
    assert all(len(source) > 1000 for source in libraries.values())


def test_waterfall_chart_shows_record_values_only_when_asked(linker, model):
    pair = linker.inference.predict(warning_mode="never").as_pandas_dataframe().iloc[0].to_dict()
    hidden = json.dumps(adapter.waterfall_chart(pair, model, hide_values=True), default=str)
    shown = json.dumps(adapter.waterfall_chart(pair, model, hide_values=False), default=str)
    assert "gamma_first_name" in hidden or "first_name" in hidden
    assert pair["city_l"] in shown and pair["city_l"] not in hidden


# --- the rule --------------------------------------------------------------------------------

_PRIVATE = re.compile(
    r"splink\.internals|\._(settings_obj|db_api|link_type|gamma_column_name|populate_m_u|input_tables_dict"
    r"|setup_for_execute_sql|probability_two_random|term_frequency_columns|columns_to_select|blocking_rules_to_generate"
    r"|sql_gen_where|comparison_levels_excluding_null|case_statement|input_columns_used_by|is_else_level"
    r"|add_trained_|trained_m_probabilities|trained_u_probabilities|bayes_factor|equi_join_conditions)"
)


def test_only_the_adapter_reaches_into_splink():
    adapter_file = REPO / "matcher" / "model" / "splink_adapter.py"
    assert _PRIVATE.search(adapter_file.read_text(encoding="utf-8"))  # the pattern does find what it looks for
    scanned = [p for folder in ("matcher", "tests", "bench") for p in sorted((REPO / folder).rglob("*.py"))]
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in scanned if path not in (adapter_file, Path(__file__).resolve())
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if _PRIVATE.search(line)
    ]
    assert not found, "Splink internals outside matcher/model/splink_adapter.py:\n" + "\n".join(found)
