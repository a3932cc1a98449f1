"""matcher.blocking.rules: the prediction rules' key columns, read from Splink's rules, and the driver's pre-selection."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import minimal_config

from matcher.blocking.rules import prediction_rules, preselect
from matcher.config.transform import config_from_dict

EXISTING = pd.DataFrame({
    "pk": [1, 2, 3, 4, 5],
    "first_name": ["ann", "ann", "bob", None, "cy"],
    "city": ["york", "leeds", "york", "york", None],
})


def rules_for(*rules):
    return prediction_rules(config_from_dict(minimal_config(blocking_rules=list(rules))))


@pytest.fixture
def existing(tmp_path) -> ds.Dataset:
    pq.write_table(pa.Table.from_pandas(EXISTING, preserve_index=False), tmp_path / "part-0.parquet")
    return ds.dataset(str(tmp_path), format="parquet")


@pytest.mark.parametrize(("rule", "keys"), [
    (["first_name"], ("first_name",)),
    (["first_name", "city"], ("first_name", "city")),
    ("l.city = r.city and levenshtein(l.first_name, r.first_name) < 2", ("city",)),  # the filter is left to Splink
    ("l.first_name = r.first_name or l.city = r.city", None),
    ("substr(l.city, 1, 2) = substr(r.city, 1, 2)", None),
    ("l.first_name = r.city", None),
])
def test_key_columns_are_the_equi_join_columns_of_the_rule_splink_blocks_with(rule, keys):
    (only,) = rules_for(rule)
    assert only.key_columns == keys
    assert only.splink.blocking_rule_sql  # the same Splink rule the Spark join uses


def test_a_record_shares_a_key_tuple_with_the_rows_it_can_pair_with(existing):
    new = pd.DataFrame({"pk": [9], "first_name": ["ann"], "city": ["york"]})
    assert sorted(preselect(existing, rules_for(["first_name", "city"]), new, list(EXISTING))["pk"]) == [1]
    # either rule suffices; a null key value shares nothing
    assert sorted(preselect(existing, rules_for(["first_name"], ["city"]), new, list(EXISTING))["pk"]) == [1, 2, 3, 4]


def test_tuples_are_matched_whole_not_column_by_column(existing):
    new = pd.DataFrame({"pk": [8, 9], "first_name": ["ann", "bob"], "city": ["leeds", "leeds"]})
    # (bob, york) and (ann, york) pass each column's filter but are no new record's tuple
    assert sorted(preselect(existing, rules_for(["first_name", "city"]), new, list(EXISTING))["pk"]) == [2]


def test_a_sql_rule_with_an_equi_join_preselects_on_it_and_one_without_takes_every_row(existing):
    new = pd.DataFrame({"pk": [9], "first_name": ["zed"], "city": ["leeds"]})
    keyed = rules_for("l.city = r.city and l.first_name <> r.first_name")
    assert sorted(preselect(existing, keyed, new, list(EXISTING))["pk"]) == [2]
    unkeyed = rules_for(["city"], "l.first_name = r.first_name or l.city = r.city")
    assert sorted(preselect(existing, unkeyed, new, list(EXISTING))["pk"]) == [1, 2, 3, 4, 5]


def test_new_records_without_key_values_select_nothing(existing):
    new = pd.DataFrame({"pk": [9], "first_name": [None], "city": [None]}, dtype=object)
    selected = preselect(existing, rules_for(["first_name"], ["city"]), new, ["pk", "city"])
    assert selected.empty and list(selected.columns) == ["pk", "city"]


def test_a_rule_joined_on_expressions_preselects_by_its_own_sql(existing):
    """Automatic blocking writes rules like ``substr(l.c, 1, 2) = substr(r.c, 1, 2)``: DuckDB runs
    each rule's join, so the rows are exactly those a rule pairs with a new record."""
    rules = rules_for("substr(l.city, 1, 2) = substr(r.city, 1, 2)", ["first_name"])
    new = pd.DataFrame({"pk": [9], "first_name": ["cy"], "city": ["yorkshire"]})
    selected = preselect(existing, rules, new, list(EXISTING))
    assert list(selected["pk"]) == [1, 3, 4, 5]  # 'yo...' cities, and cy by name; leeds is not
    assert list(selected.columns) == list(EXISTING)
    nobody = pd.DataFrame({"pk": [9], "first_name": [None], "city": [None]}, dtype=object)
    assert preselect(existing, rules, nobody, ["pk", "city"]).empty
