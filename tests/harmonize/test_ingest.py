"""matcher.harmonize.ingest: reading inputs, and refusing bad ones with one line that names the fault.

The refusals are checked through the CLI (exit code, one stderr line, nothing in the
run folder that looks complete) and the accepted shapes by calling ``read_inputs``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from chispa import assert_df_equality
from conftest import assert_nothing_looks_complete, assert_one_line_error
from pyspark.sql import types as T

from matcher.config.harmonization import SourceSpec
from matcher.config.transform import config_from_dict
from matcher.harmonize.ingest import local_input_bytes, read_inputs
from matcher.harmonize.sources import read_source
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError

GOOD_CSV = "pk,first_name,city,cluster\n1,ann,leeds,a\n2,anne,leeds,a\n3,bob,york,b\n"


def config_dict(*paths: str | Path, fmt: str = "csv", **overrides) -> dict:
    data = {
        "name": "tiny",
        "inputs": [{"name": f"in{i}", "path": str(p), "format": fmt} for i, p in enumerate(paths)],
        "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "exact"}],
        "blocking_rules": [["city"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
        "truth_column": "cluster",
    }
    data.update(overrides)
    return data


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- refusals, through the CLI ---------------------------------------------------------


@pytest.fixture
def refused(tmp_path, write_config, cli):
    """Run ``matcher run`` on one input; assert it fails cleanly and return the error line."""

    def run(input_path: Path, *fragments: str, fmt: str = "csv", **overrides) -> str:
        config = write_config(config_dict(input_path, fmt=fmt, **overrides))
        out = tmp_path / "run"
        line = assert_one_line_error(cli("run", "--config", config, "--output", out), *fragments)
        assert_nothing_looks_complete(out)
        return line

    return run


def test_missing_primary_key_column_is_refused_naming_file_and_column(tmp_path, refused):
    data = write(tmp_path / "people.csv", "first_name,city,cluster\nann,leeds,a\n")
    refused(data, f"{data}: column(s) pk named in the config are missing", "has: first_name, city, cluster")


def test_null_primary_keys_are_refused_with_their_count(tmp_path, refused):
    data = write(tmp_path / "people.csv", "pk,first_name,city,cluster\n1,ann,leeds,a\n,bob,york,b\n,cy,york,b\n")
    refused(data, str(data), "primary key 'pk' is null in 2 row(s)")


def test_duplicate_primary_keys_are_rejected_with_their_values(tmp_path, refused):
    rows = ["1,ann,leeds,a", *["7,bo,york,b"] * 4, *["3,cy,hull,c"] * 4]
    data = write(tmp_path / "people.csv", "pk,first_name,city,cluster\n" + "\n".join(rows) + "\n")
    line = refused(data, str(data), "primary key 'pk' repeats: 3 (x4), 7 (x4)")
    assert not line.endswith("...")  # both repeated values are listed, so nothing is left out


def test_many_duplicate_primary_keys_list_the_first_five_then_an_ellipsis(tmp_path, refused):
    rows = [f"{k},n{k},c,x" for k in range(1, 8) for _ in range(2)]
    data = write(tmp_path / "people.csv", "pk,first_name,city,cluster\n" + "\n".join(rows) + "\n")
    line = refused(data, "repeats: 1 (x2), 2 (x2), 3 (x2), 4 (x2), 5 (x2) ...")
    assert "6 (x2)" not in line


def test_a_matching_column_the_data_lacks_is_named(tmp_path, refused):
    data = write(tmp_path / "people.csv", "pk,first_name,town,cluster\n1,ann,leeds,a\n")
    refused(data, str(data), "column(s) city named in the config are missing", "has: pk, first_name, town, cluster")


def test_a_blocking_column_the_data_lacks_is_named(tmp_path, refused):
    data = write(tmp_path / "people.csv", GOOD_CSV)
    refused(data, str(data), "column(s) postcode named in the config are missing", blocking_rules=[["postcode"]])


def test_a_truth_column_the_data_lacks_is_named(tmp_path, refused):
    data = write(tmp_path / "people.csv", GOOD_CSV)
    refused(data, str(data), "column(s) person named in the config are missing", truth_column="person")


def test_a_nonexistent_input_file_is_named(tmp_path, refused):
    missing = tmp_path / "nowhere" / "people.csv"
    refused(missing, f"{missing}: input 'in0' does not exist")


def test_a_directory_of_garbage_read_as_parquet_is_refused_naming_the_file(tmp_path, refused):
    folder = tmp_path / "people"
    folder.mkdir()
    (folder / "part-00000.parquet").write_bytes(b"this is not parquet\n" * 20)
    refused(folder, str(folder), "cannot read input 'in0' as parquet", "part-00000.parquet", fmt="parquet")


def test_a_corrupt_parquet_file_is_refused(tmp_path, refused):
    broken = tmp_path / "people.parquet"
    broken.write_bytes(b"PAR1" + b"\x00\x17garbage" * 30 + b"PAR1")
    refused(broken, str(broken), "cannot read input 'in0' as parquet", fmt="parquet")


def test_a_truncated_parquet_file_is_refused(spark, tmp_path, refused):
    good = tmp_path / "good"
    spark.createDataFrame([(1, "ann", "leeds", "a")], "pk long, first_name string, city string, cluster string").coalesce(
        1
    ).write.parquet(str(good))
    part = next(good.glob("*.parquet"))
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(part.read_bytes()[:-40])
    refused(truncated, str(truncated), "cannot read input 'in0' as parquet", fmt="parquet")


def test_a_csv_with_only_a_header_is_refused_as_having_no_rows(tmp_path, refused):
    data = write(tmp_path / "people.csv", "pk,first_name,city,cluster\n")
    refused(data, f"{data}: input 'in0' has no rows")


def test_a_zero_byte_csv_is_refused_as_empty(tmp_path, refused):
    data = write(tmp_path / "people.csv", "")
    refused(data, f"{data}: input 'in0' is empty")


def test_an_unknown_comparison_kind_is_refused_before_reading_anything(tmp_path, refused):
    data = write(tmp_path / "people.csv", GOOD_CSV)
    columns = [{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "nmae"}]
    line = refused(data, "columns.1.kind", "'nmae'", columns=columns)
    assert "config.yaml" in line


def test_the_second_input_is_named_when_it_is_the_bad_one(tmp_path, write_config, cli):
    good = write(tmp_path / "a.csv", GOOD_CSV)
    bad = write(tmp_path / "b.csv", "pk,first_name,city,cluster\n5,x,y,z\n5,x,y,z\n")
    config = write_config(config_dict(good, bad))
    out = tmp_path / "run"
    assert_one_line_error(cli("run", "--config", config, "--output", out), str(bad), "repeats: 5 (x2)")
    assert_nothing_looks_complete(out)


def test_a_column_name_with_a_line_break_still_gives_a_one_line_error(tmp_path, refused):
    data = write(tmp_path / "people.csv", 'pk,"first\nname",city,cluster\n1,ann,leeds,a\n')
    inputs = [{"name": "in0", "path": str(data), "format": "csv", "options": {"multiLine": "true"}}]
    refused(data, "column(s) first_name named in the config are missing", "first name", inputs=inputs)


# --- what is accepted, through read_inputs -----------------------------------------------


def read(spark, *paths, fmt="csv", **overrides):
    return read_inputs(spark, config_from_dict(config_dict(*paths, fmt=fmt, **overrides)))


def test_numeric_looking_keys_are_read_as_numbers(spark, tmp_path):
    data = write(tmp_path / "p.csv", "pk,first_name,city,cluster\n10,a,x,1\n9,b,x,1\n-3,c,y,2\n0,d,y,2\n")
    df = read(spark, data)
    assert df.schema["pk"].dataType == T.LongType()
    assert sorted(r.pk for r in df.collect()) == [-3, 0, 9, 10]


def test_keys_with_leading_zeros_stay_text_so_distinct_keys_stay_distinct(spark, tmp_path):
    data = write(tmp_path / "p.csv", "pk,first_name,city,cluster\n7,a,x,1\n007,b,x,1\n")
    df = read(spark, data)
    assert df.schema["pk"].dataType == T.StringType()
    assert sorted(r.pk for r in df.collect()) == ["007", "7"]


def test_text_keys_stay_text(spark, tmp_path):
    data = write(tmp_path / "p.csv", "pk,first_name,city,cluster\nC-1,a,x,1\n2,b,x,1\n")
    assert read(spark, data).schema["pk"].dataType == T.StringType()


def test_integer_keys_from_parquet_are_longs(spark, tmp_path):
    path = tmp_path / "p.parquet"
    spark.createDataFrame([(3, "a", "x", "1"), (1, "b", "x", "1")], "pk int, first_name string, city string, cluster string").write.parquet(
        str(path)
    )
    assert read(spark, path, fmt="parquet").schema["pk"].dataType == T.LongType()


def test_several_inputs_share_text_keys_and_may_reuse_a_key(spark, tmp_path):
    a = write(tmp_path / "a.csv", "pk,first_name,city,cluster\n1,ann,leeds,a\n2,bob,york,b\n")
    b = write(tmp_path / "b.csv", "pk,first_name,city,cluster\n1,anne,leeds,a\n")
    df = read(spark, a, b)
    assert df.schema["pk"].dataType == T.StringType()
    rows = sorted((r[SOURCE_DATASET_COLUMN], r.pk) for r in df.collect())
    assert rows == [("in0", "1"), ("in0", "2"), ("in1", "1")]


def test_only_key_matching_blocking_truth_and_retained_columns_are_kept(spark, tmp_path):
    data = write(
        tmp_path / "p.csv",
        "notes,city,pk,first_name,cluster,postcode,phone\nhi,leeds,1,ann,a,LS1,555\n",
    )
    df = read(spark, data, retain_columns=["phone"], blocking_rules=[["city"], ["postcode"]])
    expected = spark.createDataFrame(
        [(1, "LS1", "a", "555", "in0", "ann", "leeds")],
        "pk long, postcode string, cluster string, phone string, source_dataset string, first_name string, city string",
    )
    assert sorted(df.columns) == sorted(expected.columns)
    assert_df_equality(df, expected, ignore_column_order=True, ignore_nullable=True)


def test_date_columns_become_iso_strings_and_numeric_columns_keep_their_type(spark, tmp_path):
    path = tmp_path / "p.parquet"
    spark.createDataFrame(
        [(1, dt.date(1990, 1, 31), 42.5, "a")], "pk long, dob date, income double, cluster string"
    ).write.parquet(str(path))
    columns = [{"name": "dob", "kind": "date"}, {"name": "income", "kind": "numeric"}]
    df = read(spark, path, fmt="parquet", columns=columns, blocking_rules=[["dob"]],
              training={"deterministic_rules": [["dob"]], "em_blocking_rules": [["dob"]]})
    row = df.first()
    assert row.dob == "1990-01-31"
    assert df.schema["income"].dataType == T.DoubleType()


def test_read_inputs_raises_input_data_error_for_a_missing_file(spark, tmp_path):
    with pytest.raises(InputDataError, match="input 'in0' does not exist"):
        read(spark, tmp_path / "gone.csv")


# --- CSV read as RFC 4180, and nothing dropped silently -------------------------------------


def test_quoted_line_breaks_and_doubled_quotes_survive_and_every_row_is_kept(spark, tmp_path):
    rows = [(k, f"name{k}", "leeds", "a") for k in range(1, 11)]
    rows[2] = (3, "Rob\nert", "leeds", "a")
    rows[5] = (6, 'Ann "Nan" Lee', 'york, "north"', "b")
    lines = [",".join('"' + str(v).replace('"', '""') + '"' if isinstance(v, str) else str(v) for v in r) for r in rows]
    data = write(tmp_path / "p.csv", "pk,first_name,city,cluster\n" + "\n".join(lines) + "\n")
    df = read(spark, data)
    got = {r.pk: (r.first_name, r.city) for r in df.collect()}
    assert len(got) == df.count() == 10
    assert got[3] == ("Rob\nert", "leeds")
    assert got[6] == ('Ann "Nan" Lee', 'york, "north"')


def test_a_users_csv_option_wins_over_the_defaults(spark, tmp_path):
    data = write(tmp_path / "p.csv", "pk;first_name;city;cluster\n1;'ann; jo';leeds;a\n")
    inputs = [{"name": "in0", "path": str(data), "format": "csv", "options": {"sep": ";", "QUOTE": "'"}}]
    assert read(spark, data, inputs=inputs).first().first_name == "ann; jo"


def test_a_latin1_csv_is_refused_naming_the_line_and_the_option(tmp_path, refused):
    data = tmp_path / "p.csv"
    data.write_bytes("pk,first_name,city,cluster\n1,ann,leeds,a\n2,Zoë,york,b\n".encode("latin-1"))
    refused(data, f"{data}: input 'in0' is not UTF-8", "byte 0xeb at offset 45, line 3", "options: {encoding: latin1}")


def test_a_latin1_csv_reads_correctly_with_its_encoding_option(spark, tmp_path):
    data = tmp_path / "p.csv"
    data.write_bytes("pk,first_name,city,cluster\n1,ann,leeds,a\n2,Zoë,Köln,b\n".encode("latin-1"))
    inputs = [{"name": "in0", "path": str(data), "format": "csv", "options": {"encoding": "latin1"}}]
    assert sorted((r.first_name, r.city) for r in read(spark, data, inputs=inputs).collect()) == [
        ("Zoë", "Köln"), ("ann", "leeds")]


def test_a_row_with_more_fields_than_the_header_is_refused_naming_its_line(tmp_path, refused):
    # the quoted line break makes record 3 start on line 4 of the file
    data = write(tmp_path / "p.csv", 'pk,first_name,city,cluster\n1,"ann\nlee",leeds,a\n2,bob,york,b\n3,cy,hull,c,extra\n')
    refused(data, f"{data}: line 5 has 5 fields but the header has 4", "input 'in0'")


@pytest.mark.parametrize(("magic", "likely"), [
    (b"PAR1\x15\x04\x15\x10", "a Parquet file (set format: parquet)"),
    (b"\x1f\x8b\x08\x00", "gzip-compressed"),
    (b"PK\x03\x04", "a zip archive"),
])
def test_a_binary_file_declared_as_csv_is_refused_naming_its_likely_format(tmp_path, refused, magic, likely):
    data = tmp_path / "p.csv"
    data.write_bytes(magic + bytes(range(256)) * 4)
    refused(data, f"{data}: input 'in0' is declared as csv but looks like {likely}")


def test_a_real_parquet_folder_declared_as_csv_is_refused(spark, tmp_path, refused):
    folder = tmp_path / "people"
    spark.createDataFrame([(1, "ann", "leeds", "a")], "pk long, first_name string, city string, cluster string").coalesce(
        1).write.parquet(str(folder))
    [part] = folder.glob("part-*")
    refused(folder, f"{part}: input 'in0' is declared as csv but looks like a Parquet file")


DATED = {"columns": [{"name": "first_name", "kind": "name"}, {"name": "dob", "kind": "birth_date"}],
         "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["first_name"]]},
         "blocking_rules": [["first_name"]], "truth_column": None}


def test_dates_that_do_not_parse_are_warned_about_with_keys_not_values(spark, tmp_path, caplog):
    dobs = ["1990-01-31"] * 7 + ["31/01/1990", "1990-1-31", "yesterday"] + [""]
    data = write(tmp_path / "p.csv", "pk,first_name,dob\n" + "".join(f"{k},n{k},{d}\n" for k, d in enumerate(dobs, 1)))
    with caplog.at_level("WARNING", logger="matcher.harmonize.ingest"):
        df = read(spark, data, **DATED)
    assert df.count() == 11
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    message = record.getMessage()
    assert f"{data}: date column 'dob': 3 of 10 values (30.0%)" in message
    assert "yyyy-MM-dd" in message and message.endswith("primary keys: 8, 9, 10")
    assert "31/01/1990" not in message and "yesterday" not in message


def test_dates_mostly_in_another_format_are_refused_naming_column_and_formats(tmp_path, refused):
    dobs = ["31/01/1990"] * 6 + ["1990-01-31"] * 4
    data = write(tmp_path / "p.csv", "pk,first_name,dob\n" + "".join(f"{k},n{k},{d}\n" for k, d in enumerate(dobs, 1)))
    refused(data, f"{data}: date column 'dob': 6 of 10 values (60%) are not dates in an accepted format",
            "(yyyy-MM-dd, or a date or timestamp column of a Parquet input)", **DATED)


def test_a_source_reads_through_the_same_checks_but_leaves_bad_bytes_to_the_quality_gate(spark, tmp_path):
    def source(path: Path) -> SourceSpec:
        return SourceSpec(name="crm", path=str(path), format="csv", primary_key="id", columns={"first_name": "fname"})

    long_row = write(tmp_path / "long.csv", "id,fname\n1,ann\n2,bob,extra\n")
    with pytest.raises(InputDataError, match=f"{long_row}: line 3 has 3 fields but the header has 2"):
        read_source(spark, source(long_row), [])
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"id,fname\n1,\"Rob\nert\"\n" + "2,Zoë\n".encode("latin-1"))
    rows = sorted(read_source(spark, source(mixed), []).select("source_key", "first_name").collect())
    assert [tuple(r) for r in rows] == [("1", "Rob\nert"), ("2", "Zo\ufffd")]


def test_the_input_size_counts_every_local_file_and_is_unknown_for_a_remote_or_missing_one(tmp_path):
    # it sizes the JVM a run starts (matcher.runtime.session.jit_options)
    single = tmp_path / "one.csv"
    single.write_text(GOOD_CSV)
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD_CSV)
    (folder / "b.csv").write_text(GOOD_CSV + "4,cy,hull,c\n")
    (folder / "_SUCCESS").write_text("")
    (folder / ".a.csv.crc").write_text("not read by Spark")
    sizes = [len(GOOD_CSV), len(GOOD_CSV), len(GOOD_CSV) + len("4,cy,hull,c\n")]
    assert local_input_bytes(config_from_dict(config_dict(single, folder))) == sum(sizes)
    assert local_input_bytes(config_from_dict(config_dict(single, "s3://bucket/customers.csv"))) is None
    assert local_input_bytes(config_from_dict(config_dict(single, tmp_path / "missing.csv"))) is None
