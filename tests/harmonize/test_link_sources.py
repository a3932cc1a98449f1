"""``link_type`` with ``sources:``: the demo's three systems linked (``link_only``), never paired within a source.

The same run compares postcodes with ``kind: postcode`` and ``format: auto``: the demo's
ZIP codes make it ``us``, recorded in the model and used by matching.
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO
from pyspark.sql import functions as F

from matcher.config.transform import config_from_dict, load_config
from matcher.matching.matches import with_compared_values
from matcher.runtime.errors import ConfigError

pytestmark = pytest.mark.slow

DEMO = REPO / "configs" / "demo.yaml"


def _demo_dict(**overrides) -> dict:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for source in data["sources"]:
        source["path"] = str(REPO / source["path"])
    data.update(overrides)
    return data


def test_link_only_with_sources_needs_two_sources():
    data = _demo_dict(link_type="link_only")
    data["sources"] = data["sources"][:1]
    data["golden"]["source_priority"] = ["crm"]
    data["retain_columns"] = []
    with pytest.raises(ConfigError, match="link_type 'link_only' needs at least two sources"):
        config_from_dict(data)


def test_sources_default_to_dedupe_over_the_stacked_rows():
    config = load_config(DEMO)
    assert config.resolved_link_type == "dedupe_only" and not config.links_sources
    assert config.dataset_names == ["harmonized"]
    linked = config_from_dict(_demo_dict(link_type="link_only"))
    assert linked.links_sources and linked.dataset_names == ["crm", "shop", "loyalty"]


@pytest.fixture(scope="module")
def linked_demo(spark, tmp_path_factory) -> dict:
    import contextlib
    import io

    from matcher.cli import main

    folder = tmp_path_factory.mktemp("linked_demo")
    columns = [c if c["name"] != "postcode" else {"name": "postcode", "kind": "postcode"} for c in _demo_dict()["columns"]]
    config = folder / "linked.yaml"
    config.write_text(yaml.safe_dump(_demo_dict(link_type="link_only", columns=columns, output=str(folder / "run"))), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--log-level", "WARNING", "run", "--config", str(config), "--output", str(folder / "run")])
    assert code == 0
    run = folder / "run"
    return {"folder": run, "config": load_config(config),
            "metrics": json.loads((run / "metrics.json").read_text(encoding="utf-8")),
            "metadata": json.loads((run / "model" / "metadata.json").read_text(encoding="utf-8"))}


def test_link_only_never_pairs_two_records_of_one_source(spark, linked_demo):
    pairs = spark.read.parquet(str(linked_demo["folder"] / "pairs"))
    source = lambda c: F.substring_index(F.col(c), ":", 1)  # noqa: E731
    assert pairs.count() > 0
    assert pairs.where(source("record_id_l") == source("record_id_r")).count() == 0
    # every pair of sources meets
    met = {tuple(sorted((r[0], r[1]))) for r in pairs.select(source("record_id_l"), source("record_id_r")).distinct().collect()}
    assert met == {("crm", "shop"), ("crm", "loyalty"), ("loyalty", "shop")}


def test_every_row_in_is_matched_or_quarantined_with_record_ids_unchanged(spark, linked_demo):
    h = linked_demo["metrics"]["harmonization"]
    matches = spark.read.parquet(str(linked_demo["folder"] / "matches"))
    quarantine = spark.read.parquet(str(linked_demo["folder"] / "quarantine"))
    assert h["rows_in"] == 450 + 483 + 360 == matches.count() + quarantine.count()
    assert matches.count() == h["rows_matched"]
    assert matches.where(~F.col("record_id").startswith(F.concat("source_system", F.lit(":")))).count() == 0
    assert matches.select("record_id").distinct().count() == matches.count()
    assert linked_demo["metadata"]["rows_per_input"] == {
        name: c["rows_matched"] for name, c in h["sources"].items()
    }
    assert linked_demo["metrics"]["clusters"]["f1"] > 0.9


def test_the_postcode_format_chosen_at_training_is_the_one_matching_uses(spark, linked_demo):
    from matcher.matching.driver_scoring import duckdb_settings
    from matcher.model.artifact import TrainedModel

    config = linked_demo["config"]
    assert linked_demo["metadata"]["column_formats"] == {"postcode": "us"}  # the demo's ZIP codes
    assert config.columns[-1].format is None  # the config as written says auto ...
    model = TrainedModel.load(linked_demo["folder"] / "model", config)  # ... and still fits the model
    labels = lambda comparison: [lv.get("label_for_charts") for lv in comparison["comparison_levels"]]  # noqa: E731
    trained = labels(model.splink_model["comparisons"][-1])
    assert "Same 5-digit ZIP" in trained and "5-digit ZIPs within Levenshtein 1" in trained
    # driver scoring (incremental runs) builds its comparisons from the config: the model's format
    assert labels(duckdb_settings(config, model)["comparisons"][-1]) == trained
    scored = spark.read.parquet(str(linked_demo["folder"] / "pairs"))
    pairs = with_compared_values(scored, spark.read.parquet(str(linked_demo["folder"] / "matches")), config)
    assert pairs.count() == scored.count()
    pairs = pairs.where("postcode_l is not null and postcode_r is not null")
    assert pairs.count() > 0
    assert pairs.where((F.col("postcode_l") == F.col("postcode_r")) != (F.col("gamma_postcode") == 4)).count() == 0


def test_incremental_runs_refuse_sources_linked_per_source():
    from matcher.incremental.arguments import check_arguments

    config = config_from_dict(_demo_dict(link_type="link_and_dedupe"))
    with pytest.raises(ConfigError, match="needs a full 'matcher match'"):
        check_arguments(config, None, {"crm": "x.csv"}, None)


def test_labeling_and_label_scoring_name_records_by_record_id_when_sources_are_linked(spark):
    import pandas as pd

    from matcher.labels.labeling_sets import _blocked_pairs
    from matcher.model.artifact import TrainedModel
    from matcher.model.comparisons import splink_settings
    from matcher.training.supervision import score_record_pairs

    mapping = {"first_name": "fn", "last_name": "ln"}
    config = config_from_dict({
        "name": "t", "link_type": "link_only",
        "sources": [{"name": n, "path": f"{n}.csv", "format": "csv", "primary_key": "id", "columns": mapping} for n in ("a", "b")],
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "last_name", "kind": "name"}],
        "blocking_rules": [["last_name"]],
        "training": {"deterministic_rules": [["first_name", "last_name"]], "em_blocking_rules": [["last_name"]]},
    })
    rows = [("a:1", "a", "ann", "lee"), ("a:2", "a", "anne", "lee"), ("b:1", "b", "ann", "lee"), ("b:9", "b", "bob", "lee")]
    df = spark.createDataFrame(rows, "record_id string, source_system string, first_name string, last_name string").withColumn(
        "source_dataset", F.lit("harmonized"))
    blocked = {(r.id_l, r.id_r) for r in _blocked_pairs(df, config).collect()}
    assert blocked and all(l.split(":")[0] != r.split(":")[0] for l, r in blocked)  # across sources only
    assert {tuple(sorted(p)) for p in blocked} == {(a, b) for a in ("a:1", "a:2") for b in ("b:1", "b:9")}

    settings = splink_settings(config).get_settings("spark").as_dict()
    settings["probability_two_random_records_match"] = 0.1
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for i, level in enumerate(levels):
            level["m_probability"], level["u_probability"] = 1 / len(levels), 1 / len(levels)
    scored = score_record_pairs(df, config, TrainedModel(settings, {}), pd.DataFrame({"id_l": ["a:1"], "id_r": ["b:1"], "is_match": [1]}))
    assert [(r.id_l, r.id_r, r.gamma_first_name) for r in scored.collect()] == [("a:1", "b:1", 4)]
