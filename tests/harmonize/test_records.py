"""matcher.harmonize.records: one record prepared without Spark equals what the Spark batch gives for it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO
from pyspark.sql import functions as F

from matcher.config.transform import config_from_dict, load_config
from matcher.harmonize.golden import golden_records
from matcher.harmonize.harmonization import harmonize
from matcher.harmonize.ingest import read_input, read_inputs
from matcher.harmonize.records import golden_record, prepare_records
from matcher.harmonize.sources import read_sources
from matcher.runtime.errors import InputDataError

DEMO = load_config(REPO / "configs" / "demo.yaml")
FAKE_1000 = load_config(REPO / "configs" / "fake_1000.yaml")


def file_records(spark, spec) -> list[dict]:
    """A source's rows as Spark reads them, as the dicts a client would send."""
    return [r.asDict() for r in read_input(spark, spec, check_encoding=False).collect()]


def by_record_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("record_id").reset_index(drop=True)


def assert_same_as_spark(spark, config, records_by_source: dict[str | None, list[dict]]) -> pd.DataFrame:
    """prepare_records of every source's records equals harmonize(): rows, quarantined rows and reasons."""
    harmonized = harmonize(spark, config)
    want_rows = by_record_id(harmonized.rows.toPandas())
    want_quarantine = {r.record_id: r.reason for r in harmonized.quarantined.collect()}
    harmonized.unpersist()
    rows, quarantine = [], {}
    for source, records in records_by_source.items():
        prepared = prepare_records(config, records, source)
        assert list(prepared.rows.columns) == list(want_rows.columns)
        assert prepared.rows.index.isin(range(len(records))).all()
        rows.append(prepared.rows)
        for i, reason in prepared.quarantined:
            key = records[i]["source_key"] if source is None else records[i][_spec(config, source).primary_key]
            system = records[i]["source_system"] if source is None else source
            quarantine[f"{system}:{key}"] = reason
    got = by_record_id(pd.concat(rows))
    pd.testing.assert_frame_equal(got, want_rows)
    assert quarantine == want_quarantine
    return got


def _spec(config, name):
    return next(s for s in config.sources if s.name == name)


def test_every_demo_row_prepared_from_its_source_schema_equals_the_spark_batch(spark):
    records = {s.name: file_records(spark, s) for s in DEMO.sources}
    got = assert_same_as_spark(spark, DEMO, records)
    assert len(got) + 4 == sum(map(len, records.values())) == 450 + 483 + 360  # the demo quarantines four rows


def test_records_in_the_harmonized_schema_are_standardized_the_same_way(spark):
    stacked = read_sources(spark, DEMO).drop("record_id", "source_dataset")
    records = [r.asDict() for r in stacked.collect()]
    assert_same_as_spark(spark, DEMO, {None: records})


EDGE_ROWS = [  # values where Spark's built-ins and a naive Python twin would disagree
    {"id": "1", "fn": "  José O'Brien-Smith ", "ln": "O'Neil", "dob": "O1/|5/199S", "mail": " A.B+tag@GoogleMail.com ",
     "tel": "020 7946 0958", "cc": " gb ", "zip": " sw1a\t 1aa ", "st": "ny", "ssn": "123-45-6789", "ts": "2024-01-02T03:04:05"},
    {"id": "2", "fn": "jim", "ln": "unknown", "dob": "31.12.1999", "mail": "x@y.c", "tel": "415 555 0123", "cc": "usa",
     "zip": "123", "st": "", "ssn": "abc", "ts": "bad"},
    {"id": "2", "fn": "J", "ln": "Lee", "dob": "", "mail": "a\t@b.com", "tel": "555", "cc": None,
     "zip": "12345-6789", "st": "  ", "ssn": None, "ts": None},
    {"id": "3", "fn": "Zoë", "ln": "Smith", "dob": "12/31/1999", "mail": "plain@x.org\n", "tel": "+44 20 7946 0958",
     "cc": "DE", "zip": "1234", "st": "ca", "ssn": " 9 ", "ts": "2024-01-02"},
    {"id": "4", "fn": "Bob", "ln": "Dupr\ufffd", "dob": "31.12.1999", "mail": "x@y.co", "tel": None, "cc": None,
     "zip": "12345-6789", "st": " ny\t", "ssn": None, "ts": "bad"},
    {"id": "5", "fn": "Al", "ln": "Mom", "dob": None, "mail": "A@B.CO", "tel": None, "cc": None,
     "zip": " ", "st": None, "ssn": "", "ts": None},
    {"id": None, "fn": "Ann", "ln": "Lee", "dob": "2001-02-03", "mail": None, "tel": None, "cc": None,
     "zip": None, "st": None, "ssn": None, "ts": None},
]


def edge_config(path) -> object:
    return config_from_dict({
        "name": "edge",
        "sources": [{"name": "web", "path": str(path), "format": "json", "primary_key": "id",
                     "date_formats": ["%m/%d/%Y", "%d.%m.%Y"],
                     "columns": {"first_name": "fn", "last_name": "ln", "dob": "dob", "email": "mail", "phone": "tel",
                                 "country": "cc", "postcode": "zip", "state": "st", "national_id": "ssn",
                                 "updated_at": "ts", "tier": "fn"}},
                    {"name": "other", "path": str(path), "format": "json", "primary_key": "id",
                     "columns": {"first_name": "fn"}}],
        "standardize": {"placeholder_names": True, "date_ocr_repair": True},
        "quality": {"required": ["last_name"], "require_any": [["email", "phone"]], "parseable": ["dob", "phone", "updated_at"],
                    "allowed_values": {"state": ["NY", "CA"]}},
        "columns": [{"name": "first_name", "kind": "name"}],
        "blocking_rules": [["first_name"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["first_name"]]},
    })


def test_edge_values_and_every_quality_rule_give_what_spark_gives(spark, tmp_path):
    path = tmp_path / "web.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EDGE_ROWS), encoding="utf-8")
    config = edge_config(path)
    null_key = EDGE_ROWS[-1]
    with pytest.raises(InputDataError, match="record 0: the primary key field 'id' is missing"):
        prepare_records(config, [null_key], "web")  # Spark quarantines it ("primary key is null"); here it is a 4xx
    rows = EDGE_ROWS[:-1]
    harmonized = harmonize(spark, config)
    want = by_record_id(harmonized.rows.toPandas()).astype({"updated_at": "datetime64[us]"})  # toPandas varies
    want_reasons = {r.record_id: r.reason for r in harmonized.quarantined.where(F.col("record_id").isNotNull()).collect()}
    harmonized.unpersist()
    other = [{"id": r["id"], "fn": r["fn"]} for r in rows]  # "other" maps only id and fn of the same file
    got = [prepare_records(config, rows, "web"), prepare_records(config, other, "other")]
    pd.testing.assert_frame_equal(by_record_id(pd.concat([g.rows for g in got])), want)
    reasons = {f"{name}:{rows[i]['id']}": reason for name, g in zip(("web", "other"), got) for i, reason in g.quarantined}
    assert reasons == want_reasons
    assert {k for k in reasons if k.startswith("web:")} == {"web:2", "web:4", "web:5"}
    first = got[0].rows.loc[0]
    assert (first["dob"], first["email"], first["phone"], first["postcode"]) == (
        "1995-01-15", "ab@gmail.com", "+442079460958", "SW1A 1AA")
    assert "state NY\t is not one of the allowed values" in reasons["web:4"]  # Spark's trim leaves the tab


def test_a_single_input_config_gives_what_read_inputs_gives(spark):
    want = read_inputs(spark, FAKE_1000).toPandas().sort_values("unique_id").reset_index(drop=True)
    records = file_records(spark, FAKE_1000.inputs[0])
    prepared = prepare_records(FAKE_1000, records)
    assert prepared.quarantined == []
    pd.testing.assert_frame_equal(prepared.rows.sort_values("unique_id").reset_index(drop=True), want)
    assert str(prepared.rows["unique_id"].dtype) == "int64"
    one = prepare_records(FAKE_1000, [{"unique_id": "A7", "first_name": "Ann", "dob": dt.date(1990, 1, 2)}]).rows
    assert one.iloc[0].to_dict() == {"unique_id": "A7", "cluster": None, "source_dataset": "customers", "first_name": "Ann",
                                     "surname": None, "dob": "1990-01-02", "city": None, "email": None}


def test_golden_record_equals_sparks_golden_records_for_every_cluster(spark):
    harmonized = harmonize(spark, DEMO)
    matched = harmonized.rows.withColumn("match_id", F.col("person_id"))
    want = {r.match_id: r.asDict() for r in golden_records(matched, DEMO).collect()}
    harmonized.unpersist()
    rows = pd.concat([prepare_records(DEMO, file_records(spark, s), s.name).rows for s in DEMO.sources])
    rows["match_id"] = rows["person_id"]
    got = {match_id: golden_record(cluster, DEMO) for match_id, cluster in rows.groupby("match_id")}
    assert got == want
    assert any(g["n_records"] > 2 for g in got.values())


PII = "Fürstenberg-Secret"


@pytest.mark.parametrize(
    "records, source, fragments",
    [
        ([{"customer_no": "C1", "given_name": PII, "nickname": "x"}], "crm", ["record 0", "'nickname'"]),
        ([{"customer_no": "C1", "given_name": PII}], "warehouse", ["'warehouse'"]),
        ([{"customer_no": "C1"}, {"given_name": PII}], "crm", ["record 1", "'customer_no'", "missing"]),
        ([{"customer_no": "C1", "given_name": {"first": PII}}], "crm", ["record 0", "'given_name'", "dict"]),
        ([{"customer_no": "C1", "family_name": [PII]}], "crm", ["record 0", "'family_name'", "list"]),
        ([{"source_system": "erp", "source_key": "1", "first_name": PII}], None, ["record 0", "'source_system'"]),
        ([{"source_system": "crm", "first_name": PII}], None, ["record 0", "'source_key'", "missing"]),
    ],
)
def test_bad_input_raises_input_data_error_naming_the_field_never_the_value(records, source, fragments):
    with pytest.raises(InputDataError) as err:
        prepare_records(DEMO, records, source)
    message = str(err.value)
    assert all(f in message for f in fragments), message
    assert PII not in message and "first" not in message.replace("first_name", "")


def test_bad_input_for_a_single_input_config():
    with pytest.raises(InputDataError, match="'unique_id' is missing"):
        prepare_records(FAKE_1000, [{"unique_id": None, "first_name": PII}])
    with pytest.raises(InputDataError, match="records 0, 1: the primary key field 'unique_id' repeats") as err:
        prepare_records(FAKE_1000, [{"unique_id": 5, "first_name": PII}, {"unique_id": "5"}])
    assert PII not in str(err.value)
    with pytest.raises(InputDataError, match="'city'") as err:
        prepare_records(FAKE_1000, [{"unique_id": 5, "city": {"name": PII}}])
    assert PII not in str(err.value)


def test_the_module_imports_no_spark():
    code = "import sys, matcher.harmonize.records; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
