"""End to end: ``matcher run`` on the bundled multi-source demo (configs/demo.yaml, three systems).

One run (module-scoped) is shared by the tests: every source row is matched or
quarantined, the golden customers carry provenance that points at real records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO
from pyspark.sql import functions as F

from matcher.config.transform import load_config

pytestmark = pytest.mark.slow

DEMO = REPO / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory) -> dict:
    import contextlib
    import io

    from matcher.cli import main

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
    largest = demo["metrics"]["clustering"]["entities"]["largest"][0]["size"]
    assert f"largest entity: {largest} records; 0 look larger than the data supports" in out


# --- match-incremental on the multi-source demo ---------------------------------------------------


@pytest.fixture(scope="module")
def demo_incremental(spark, demo, tmp_path_factory) -> dict:
    """Day two for the demo: a CRM duplicate of C10000, a new version of C10001, a shop row the
    quality gate rejects (no last name), and shop:S-00001 deleted."""
    import csv

    from matcher.incremental.task import match_incremental_task
    from matcher.runtime.run_folder import RunFolder

    folder = tmp_path_factory.mktemp("demo_day_two")
    with (REPO / "data" / "demo" / "crm.csv").open(encoding="utf-8", newline="") as f:
        crm = {row["customer_no"]: row for row in csv.DictReader(f)}
    duplicate = {**crm["C10000"], "customer_no": "C99990", "last_modified": "2026-11-27 08:00:00"}
    moved = {**crm["C10001"], "email_address": "roger.new@example.net", "last_modified": "2026-11-27 08:00:00"}
    with (folder / "crm.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(duplicate))
        writer.writeheader()
        writer.writerows([duplicate, moved])
    (folder / "shop.jsonl").write_text(json.dumps(
        {"id": "S-99999", "first": "Ann", "last": None, "dob": "1990-01-01", "mail": "ann@example.com", "mobile": None,
         "ship_zip": "98402", "ship_city": "TACOMA", "ship_state": "wa", "updated": "2026-11-27T08:00:00", "person_id": "P9999"}
    ) + "\n", encoding="utf-8")
    (folder / "delete.csv").write_text("record_id\nshop:S-00001\n", encoding="utf-8")
    output = RunFolder(folder / "run")
    summary = match_incremental_task(
        load_config(DEMO), RunFolder(demo["folder"]), {"crm": str(folder / "crm.csv"), "shop": str(folder / "shop.jsonl")},
        output, spark, delete_path=str(folder / "delete.csv"))
    changes = json.loads((output.root / "changes.json").read_text(encoding="utf-8"))
    return {"output": output, "summary": summary, "changes": {r["record_id"]: r for r in changes["records"]}}


def _match_id(spark, folder: Path, record_id: str):
    return spark.read.parquet(str(folder / "matches")).where(F.col("record_id") == record_id).first()["match_id"]


def test_incremental_new_rows_are_harmonized_and_matched_like_a_full_run(spark, demo, demo_incremental):
    changes = demo_incremental["changes"]
    assert changes["crm:C99990"]["change"] == "joined"
    assert changes["crm:C99990"]["new_match_id"] == _match_id(spark, demo["folder"], "crm:C10000")
    assert changes["crm:C10001"]["change"] == "updated"
    assert changes["shop:S-00001"]["change"] == "deleted"
    assert "shop:S-99999" not in changes  # quarantined, not matched


def test_incremental_rows_reconcile_per_source_and_the_rejected_row_is_quarantined(spark, demo, demo_incremental):
    h = demo_incremental["summary"]["harmonization"]
    assert {name: (s["rows_in"], s["rows_matched"], s["rows_quarantined"]) for name, s in h["sources"].items()} == {
        "crm": (2, 2, 0), "shop": (1, 0, 1)}
    before = spark.read.parquet(str(demo["folder"] / "quarantine"))
    after = spark.read.parquet(str(demo_incremental["output"].quarantine))
    assert after.count() == before.count() + 1
    row = after.where(F.col("record_id") == "shop:S-99999").first()
    assert "last_name" in row["rule"] + row["reason"]


def test_incremental_customers_are_rebuilt_for_touched_clusters_only(spark, demo, demo_incremental):
    output = demo_incremental["output"]
    customers = spark.read.parquet(str(output.customers))
    matches = spark.read.parquet(str(output.matches))
    assert customers.count() == matches.select("match_id").distinct().count()
    joined = customers.where(F.col("match_id") == demo_incremental["changes"]["crm:C99990"]["new_match_id"]).first()
    assert "crm:C99990" in joined["record_ids"]
    assert customers.where(F.array_contains("record_ids", "shop:S-00001")).count() == 0
    # a customer no change touched is the existing row, unchanged
    touched = {v for r in demo_incremental["changes"].values() for v in (r["old_match_id"], r["new_match_id"]) if v}
    before = spark.read.parquet(str(demo["folder"] / "customers")).where(~F.col("match_id").isin(list(touched)))
    assert before.exceptAll(customers).count() == 0


def test_incremental_on_the_bundled_day_two_groups_records_like_a_full_run(spark, demo, tmp_path):
    """data/demo/day2 (new CRM and shop rows, CRM updates, shop deletes) matched incrementally and
    in a full run over day one + day two with the same model: the same records, grouped alike."""
    import shutil

    import pandas as pd

    from matcher.incremental.task import match_incremental_task
    from matcher.pipeline import match_task
    from matcher.runtime.run_folder import RunFolder

    day1, day2 = REPO / "data" / "demo", REPO / "data" / "demo" / "day2"
    config = load_config(DEMO)
    incremental = RunFolder(tmp_path / "incremental")
    match_incremental_task(config, RunFolder(demo["folder"]), {"crm": str(day2 / "crm.csv"), "shop": str(day2 / "shop.jsonl")},
                           incremental, spark, delete_path=str(day2 / "delete.csv"))

    crm = pd.concat([pd.read_csv(day1 / "crm.csv", dtype=str), pd.read_csv(day2 / "crm.csv", dtype=str)])
    crm.drop_duplicates("customer_no", keep="last").to_csv(tmp_path / "crm.csv", index=False)
    deleted = {r.removeprefix("shop:") for r in pd.read_csv(day2 / "delete.csv")["record_id"]}
    shop = [line for f in (day1 / "shop.jsonl", day2 / "shop.jsonl") for line in f.read_text(encoding="utf-8").splitlines()
            if json.loads(line)["id"] not in deleted]
    (tmp_path / "shop.jsonl").write_text("\n".join(shop) + "\n", encoding="utf-8")
    paths = {"crm": str(tmp_path / "crm.csv"), "shop": str(tmp_path / "shop.jsonl")}
    full_config = config.model_copy(update={"sources": [s.model_copy(update={"path": paths.get(s.name, s.path)}) for s in config.sources]})
    full = RunFolder(tmp_path / "full")
    shutil.copytree(demo["folder"] / "model", full.model)
    match_task(full_config, full, spark)

    def partition(folder: RunFolder) -> set[frozenset]:
        rows = spark.read.parquet(str(folder.matches)).select("record_id", "match_id").collect()
        groups: dict = {}
        for r in rows:
            groups.setdefault(r["match_id"], set()).add(r["record_id"])
        return {frozenset(g) for g in groups.values()}

    assert partition(incremental) == partition(full)
    assert spark.read.parquet(str(incremental.quarantine)).count() == spark.read.parquet(str(full.quarantine)).count()
    assert spark.read.parquet(str(incremental.customers)).count() == spark.read.parquet(str(full.customers)).count()
