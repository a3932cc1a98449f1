"""matcher.harmonize.sources + matcher.harmonize.quality: bad sources fail with one line; bad rows are quarantined with a reason.

Nothing is dropped: every test that quarantines also checks that the rows reconcile.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_nothing_looks_complete, assert_one_line_error
from pyspark.sql import functions as F

from matcher.config.transform import config_from_dict
from matcher.harmonize.harmonization import harmonize
from matcher.harmonize.quality import reconcile
from matcher.runtime.errors import MatcherError

HEADER = "id,fn,ln,birth,tel\n"


def source(path: Path, name: str = "crm", **extra) -> dict:
    return {"name": name, "path": str(path), "format": "csv", "primary_key": "id",
            "columns": {"first_name": "fn", "last_name": "ln", "dob": "birth", "phone": "tel"}, **extra}


def config_dict(*sources: dict, **quality) -> dict:
    return {
        "name": "q",
        "sources": list(sources),
        "quality": quality,
        "columns": [{"name": "last_name", "kind": "name"}, {"name": "dob", "kind": "date"}],
        "blocking_rules": [["last_name"]],
        "training": {"deterministic_rules": [["last_name", "dob"]], "em_blocking_rules": [["dob"]]},
    }


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def gate(spark, *sources: dict, **quality):
    h = harmonize(spark, config_from_dict(config_dict(*sources, **quality)))
    quarantined = {r.record_id: (r.rule, r.reason) for r in h.quarantined.collect()}
    passed = sorted(r.record_id for r in h.rows.collect())
    reconcile(h.counts, h.rows)  # raises if a row went missing
    return passed, quarantined, h


# --- refused sources: one line, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    "make, fragments",
    [
        (lambda d: source(d / "absent.csv"), ["absent.csv", "does not exist"]),
        (lambda d: {**source(write(d / "a.csv", "id,fn,ln,birth\n1,a,b,2000-01-01\n")), }, ["a.csv", "crm", "tel", "missing"]),
        (lambda d: source(write(d / "empty.csv", HEADER)), ["empty.csv", "crm", "no rows"]),
    ],
    ids=["missing_file", "missing_mapped_column", "empty_source"],
)
def test_a_bad_source_fails_with_one_line_naming_the_file(cli, write_config, tmp_path, make, fragments):
    config = write_config(config_dict(make(tmp_path)) | {"output": str(tmp_path / "run")})
    result = cli("run", "--config", config)
    assert result.code == 2
    assert_one_line_error(result, *fragments)
    assert_nothing_looks_complete(tmp_path / "run")


def test_an_empty_source_is_accepted_when_allowed(spark, tmp_path):
    passed, quarantined, h = gate(
        spark,
        source(write(tmp_path / "a.csv", HEADER + "1,ann,lee,2000-01-01,2065550134\n")),
        source(write(tmp_path / "b.csv", HEADER), name="shop", allow_empty=True),
    )
    assert passed == ["crm:1"] and quarantined == {}
    assert h.counts["shop"]["rows_in"] == 0


# --- quarantined rows --------------------------------------------------------------------------


def test_repeated_primary_keys_quarantine_every_row_sharing_them(spark, tmp_path):
    csv = HEADER + "1,ann,lee,2000-01-01,\n1,anne,lee,2000-01-01,\n2,bob,ray,1990-02-02,\n,cy,ho,1980-01-01,\n"
    passed, _, h = gate(spark, source(write(tmp_path / "a.csv", csv)))
    assert passed == ["crm:2"]
    rows = sorted((r.record_id or "", r.raw_first_name, r.rule, r.reason) for r in h.quarantined.collect())
    assert rows == [
        ("", "cy", "primary_key", "primary key is null"),
        ("crm:1", "ann", "primary_key", "primary key 1 repeats 2 times in the source"),
        ("crm:1", "anne", "primary_key", "primary key 1 repeats 2 times in the source"),
    ]
    assert h.counts["crm"] == {"rows_in": 4, "rows_quarantined": 3, "quarantined_by_rule": {"primary_key": 3}}


def test_a_key_repeated_only_across_sources_passes_and_no_row_is_shuffled_for_it(spark, tmp_path):
    row = "1,ann,lee,2000-01-01,2065550134\n"
    passed, quarantined, h = gate(
        spark, source(write(tmp_path / "a.csv", HEADER + row)), source(write(tmp_path / "b.csv", HEADER + row), name="shop"),
    )
    assert passed == ["crm:1", "shop:1"] and quarantined == {}
    # without repeated keys the gate has no window over every row
    assert "Window" not in h.rows._jdf.queryExecution().executedPlan().toString()


def test_rows_with_bytes_of_another_encoding_are_quarantined_naming_the_column(spark, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(HEADER.encode() + "1,José,lee,2000-01-01,\n".encode("utf-8") + "2,José,ray,2000-01-01,\n".encode("latin-1"))
    passed, quarantined, _ = gate(spark, source(path))
    assert passed == ["crm:1"]
    assert quarantined == {"crm:2": ("encoding", "raw_first_name has bytes that are not valid in the source's encoding")}


def test_a_latin1_source_reads_cleanly_with_its_encoding_option(spark, tmp_path):
    path = write(tmp_path / "latin.csv", HEADER + "1,José,lee,2000-01-01,\n", encoding="latin-1")
    passed, quarantined, h = gate(spark, source(path, options={"encoding": "ISO-8859-1"}))
    assert passed == ["crm:1"] and quarantined == {}
    assert h.rows.first().first_name == "jose"


def test_malformed_dates_and_phones_are_quarantined_when_parseable_is_required(spark, tmp_path):
    csv = HEADER + "1,ann,lee,2000-13-45,2065550134\n2,bob,ray,1990-02-02,12\n3,cy,ho,1980-01-01,206-555-0134\n"
    passed, quarantined, _ = gate(spark, source(write(tmp_path / "a.csv", csv)), parseable=["dob", "phone"])
    assert passed == ["crm:3"]
    assert quarantined == {
        "crm:1": ("parseable", "dob 2000-13-45 is not a date in the configured formats"),
        "crm:2": ("parseable", "phone 12 is not a phone number possible in its region"),
    }


def test_malformed_dates_and_phones_become_null_beside_their_raw_value_when_not_required(spark, tmp_path):
    csv = HEADER + "1,ann,lee,2000-13-45,12\n"
    passed, quarantined, h = gate(spark, source(write(tmp_path / "a.csv", csv)))
    assert passed == ["crm:1"] and quarantined == {}
    row = h.rows.first()
    assert (row.raw_dob, row.dob, row.raw_phone, row.phone) == ("2000-13-45", None, "12", None)


def test_required_require_any_and_allowed_values_each_name_their_rule(spark, tmp_path):
    csv = HEADER + "1,ann,,2000-01-01,\n2,bob,ray,,\n3,cy,zz,1980-01-01,\n4,di,ho,1980-01-01,\n"
    passed, quarantined, h = gate(
        spark, source(write(tmp_path / "a.csv", csv)),
        required=["last_name"], require_any=[["dob", "phone"]], allowed_values={"last_name": ["lee", "ray", "ho"]},
    )
    assert passed == ["crm:4"]
    assert quarantined == {
        "crm:1": ("required", "last_name is missing"),
        "crm:2": ("require_any", "none of dob, phone is present"),
        "crm:3": ("allowed_values", "last_name zz is not one of the allowed values"),
    }


def test_a_row_failing_several_rules_is_quarantined_once_with_every_reason(spark, tmp_path):
    csv = HEADER + "1,ann,,bad-date,\n"
    _, quarantined, h = gate(spark, source(write(tmp_path / "a.csv", csv)), required=["last_name"], parseable=["dob"])
    assert quarantined == {"crm:1": ("required,parseable", "last_name is missing; dob bad-date is not a date in the configured formats")}
    assert h.counts["crm"]["quarantined_by_rule"] == {"required": 1, "parseable": 1}


def test_reconcile_refuses_counts_that_lost_a_row(spark, tmp_path):
    csv = HEADER + "1,ann,lee,2000-01-01,\n2,bob,ray,1990-02-02,\n"
    _, _, h = gate(spark, source(write(tmp_path / "a.csv", csv)))
    with pytest.raises(MatcherError, match="source 'crm': 2 rows in but 1 matched \\+ 0 quarantined"):
        reconcile(h.counts, h.rows.where(F.col("record_id") == "crm:1"))
