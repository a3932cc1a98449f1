"""matcher.training.trainer: lambda, u and m estimated on a small real data set (configs/fake_1000.yaml)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import REPO
from matcher.config.transform import config_from_dict
from matcher.harmonize.ingest import read_inputs
from matcher.runtime.errors import InputDataError
from matcher.training.trainer import MIN_TRAINING_RECORDS, train

CONFIG = REPO / "configs" / "fake_1000.yaml"


def fake_1000_config(**training):
    """configs/fake_1000.yaml with ``training`` keys replaced."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    data["training"].update(training)
    return config_from_dict(data, source=str(CONFIG), base_dir=REPO)


@pytest.fixture(scope="module")
def trained(spark):
    config = fake_1000_config()
    df = read_inputs(spark, config).cache()
    model = train(df, config)
    df.unpersist()
    return config, model


def levels(model, comparison: str) -> pd.DataFrame:
    """The non-null levels of one trained comparison: label, m and u."""
    (found,) = [c for c in model.splink_model["comparisons"] if c["output_column_name"] == comparison]
    rows = [lv for lv in found["comparison_levels"] if not lv.get("is_null_level")]
    return pd.DataFrame({
        "label": [lv["label_for_charts"] for lv in rows],
        "m": [lv.get("m_probability") for lv in rows],
        "u": [lv.get("u_probability") for lv in rows],
    })


def test_the_prior_match_probability_is_a_probability(trained):
    _, model = trained
    assert 0.0 < model.metadata["probability_two_random_records_match"] < 1.0
    assert model.splink_model["probability_two_random_records_match"] == model.metadata[
        "probability_two_random_records_match"
    ]


@pytest.mark.parametrize("comparison", ["email", "dob", "surname"])
def test_an_exact_match_on_a_strong_identifier_is_far_likelier_among_matches(trained, comparison):
    _, model = trained
    exact = levels(model, comparison)
    exact = exact[exact["label"].str.contains("exact", case=False)].iloc[0]
    assert 0.0 < exact["u"] < exact["m"] <= 1.0
    assert exact["m"] / exact["u"] > 10, exact


def test_every_level_has_m_and_u_that_sum_to_one_per_comparison(trained):
    _, model = trained
    for comparison in ("first_name", "surname", "dob", "city", "email"):
        table = levels(model, comparison)
        assert table["m"].sum() == pytest.approx(1.0, abs=1e-6), comparison
        assert table["u"].sum() == pytest.approx(1.0, abs=1e-6), comparison


def test_the_metadata_records_one_em_session_per_rule_that_leaves_out_the_rule_columns(trained):
    config, model = trained
    sessions = model.metadata["em_sessions"]
    assert len(sessions) == len(config.training.em_blocking_rules) == 2
    by_rule = {s["blocking_rule"]: s for s in sessions}
    names_blocked = next(s for rule, s in by_rule.items() if "first_name" in rule and "surname" in rule)
    dob_blocked = next(s for rule, s in by_rule.items() if "dob" in rule)
    assert set(names_blocked["estimated"]) == {"dob", "city", "email"}
    assert set(dob_blocked["estimated"]) == {"first_name", "surname", "city", "email"}
    for session in sessions:
        assert session["pairs"] > 0 and session["patterns"] > 0 and session["iterations"] >= 1


def test_the_metadata_ties_the_model_to_its_config_and_data(trained):
    config, model = trained
    meta = model.metadata
    assert model.fits(config)
    assert meta["config_name"] == "fake_1000" and meta["seed"] == config.seed
    assert meta["rows"] == 1000 and meta["rows_per_input"] == {"customers": 1000}
    assert meta["u_sampling"]["sampled_pairs"] > 0
    assert meta["timings_s"]["total"] > 0


def test_an_em_rule_that_blocks_no_pairs_is_a_one_line_error_naming_it(spark):
    rule = "l.email = r.email AND l.city = 'Atlantis'"
    config = fake_1000_config(em_blocking_rules=[["dob"], rule])
    df = read_inputs(spark, config)
    with pytest.raises(InputDataError) as err:
        train(df, config)
    message = str(err.value)
    assert "\n" not in message
    assert "training.em_blocking_rules" in message and "Atlantis" in message and "no record pairs" in message


def test_a_training_rule_on_a_column_the_input_lacks_stops_before_training_naming_it(spark):
    config = fake_1000_config(em_blocking_rules=[["dob"], ["loyalty_tier"]])
    with pytest.raises(InputDataError, match=r"fake_1000.csv: column\(s\) loyalty_tier named in the config are missing"):
        read_inputs(spark, config)


def fake_1000_head(tmp_path, rows: int, **training):
    """configs/fake_1000.yaml on the first ``rows`` records of its data, written to a real CSV."""
    source = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv", dtype=str, keep_default_na=False)
    path = tmp_path / f"head_{rows}.csv"
    source.head(rows).to_csv(path, index=False)
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    data["inputs"][0]["path"] = str(path)
    data["training"].update(training)
    return config_from_dict(data, source=str(CONFIG), base_dir=REPO), path


@pytest.mark.parametrize("rows, counted", [(1, "1 row"), (2, "2 rows")])
def test_too_few_records_to_train_on_is_a_one_line_error_naming_the_file(spark, tmp_path, rows, counted):
    config, path = fake_1000_head(tmp_path, rows)
    with pytest.raises(InputDataError) as err:
        train(read_inputs(spark, config), config)
    assert str(err.value) == (
        f"{path}: {counted}: training needs at least {MIN_TRAINING_RECORDS} records (pairs to learn from)"
    )


def test_records_that_no_training_rule_pairs_are_a_one_line_error_naming_the_file_and_the_cause(spark, tmp_path):
    # five records, every one a different person: no two share a first name and surname
    config, path = fake_1000_head(tmp_path, 5)
    with pytest.raises(InputDataError) as err:
        train(read_inputs(spark, config), config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: 5 rows: training.em_blocking_rules ")
    assert message.endswith("finds no record pairs: too little data to learn from (or a rule too strict for it)")
