"""End to end: ``matcher run`` on the bundled multi-source demo (configs/demo.yaml, three systems).

One run (module-scoped) is shared by the tests: every source row is matched or
quarantined, the golden customers carry provenance that points at real records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conftest import REPO
from matcher.config import load_config

pytestmark = pytest.mark.slow

DEMO = REPO / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory) -> dict:
    from matcher.cli import main
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("harmonized_demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--log-level", "WARNING", "run", "--config", str(DEMO), "--output", str(folder)])
    assert code == 0
    return {"folder": folder, "stdout": out.getvalue(),
            "metrics": json.loads((folder / "metrics.json").read_text(encoding="utf-8"))}


def test_the_demo_config_reads_three_systems_from_the_bundled_files():
    config = load_config(DEMO)
    assert [s.name for s in config.sources] == ["crm", "shop", "loyalty"]
    assert [s.format for s in config.sources] == ["csv", "json", "parquet"]
    assert all(Path(s.path).exists() for s in config.sources)


def test_every_source_row_is_matched_or_quarantined(spark, demo):
    h = demo["metrics"]["harmonization"]
    quarantine = spark.read.parquet(str(demo["folder"] / "quarantine"))
    matches = spark.read.parquet(str(demo["folder"] / "matches"))
    for name, c in h["sources"].items():
        assert c["rows_in"] == c["rows_matched"] + c["rows_quarantined"]
        assert matches.where(F.col("source_system") == name).count() == c["rows_matched"]
        assert quarantine.where(F.col("source_system") == name).count() == c["rows_quarantined"]
    assert h["rows_in"] == 450 + 483 + 360  # the rows of crm.csv, shop.jsonl and loyalty.parquet
    assert quarantine.where(F.col("rule").isNull() | F.col("reason").isNull()).count() == 0
    assert h["rows_quarantined"] > 0  # the demo carries rows the gate must reject


def test_record_ids_are_global_and_raw_values_stay_beside_standardized_ones(spark, demo):
    matches = spark.read.parquet(str(demo["folder"] / "matches"))
    assert matches.select("record_id").distinct().count() == matches.count()
    assert matches.where(~F.col("record_id").startswith(F.concat("source_system", F.lit(":")))).count() == 0
    phones = matches.where(F.col("phone").isNotNull())
    assert phones.where(~F.col("phone").rlike(r"^\+1[0-9]{10}$")).count() == 0
    assert phones.where(F.col("raw_phone") != F.col("phone")).count() == phones.count()  # none was E.164 already


def test_the_demo_finds_the_people_behind_the_records(demo):
    metrics = demo["metrics"]
    assert metrics["clusters"]["f1"] > 0.95
    assert metrics["harmonization"]["customers_in_several_sources"] > 300


def test_one_golden_customer_per_match_id_with_provenance_pointing_at_its_records(spark, demo):
    customers = spark.read.parquet(str(demo["folder"] / "customers"))
    matches = spark.read.parquet(str(demo["folder"] / "matches"))
    assert customers.count() == matches.select("match_id").distinct().count() == demo["metrics"]["harmonization"]["customers"]
    # the surviving email came from a record of the same cluster, and it is that record's email
    chosen = customers.where(F.col("email").isNotNull()).select("match_id", "email", F.col("email__record_id").alias("record_id"))
    joined = chosen.join(matches.select("record_id", "match_id", F.col("email").alias("record_email")), ["record_id", "match_id"])
    assert joined.count() == chosen.count()
    assert joined.where(F.col("email") != F.col("record_email")).count() == 0


def test_run_prints_the_harmonization_summary(demo):
    out = demo["stdout"]
    assert "harmonization: 1293 rows from 3 sources" in out
    assert "  crm: 450 in = " in out
    assert "golden customers: " in out
