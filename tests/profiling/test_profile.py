"""Profiling the first rows of CSV (plain, gzip, Latin-1), JSON lines, JSON arrays and Parquet files."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pandas as pd
import pytest

from matcher.profiling.profile import file_format, profile_file, shape
from matcher.runtime.errors import InputDataError


def test_shapes_hide_values_but_keep_their_form():
    assert [shape(v) for v in ["98201", "98201-4548", "SW1A 1AA", "Anne", "a.b@x.com"]] == [
        "99999", "99999-9999", "AA9A 9AA", "Aaaa", "a.a@a.aaa"]
    assert shape("joshua.hovermale16@mail.example.org") == "a+.a+9+@a+.a+.a+"


def test_csv_columns_get_null_distinct_length_and_pattern_statistics(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("id,zip,note\n1,98201,\n2,98201,x\n3,02134,\n4,10001-1234,y\n", encoding="utf-8")
    profile = profile_file(path)
    assert (profile.format, profile.rows, profile.truncated, profile.options) == ("csv", 4, False, {})
    zip_ = profile.column("zip")
    assert (zip_.null_share, zip_.distinct, zip_.top_share) == (0.0, 3, 0.5)
    assert zip_.patterns[0] == ("99999", 0.75) and (zip_.min_length, zip_.max_length) == (5, 10)
    assert profile.column("zip").sample.tolist()[2] == "02134"  # read as text: leading zeros kept
    note = profile.column("note")
    assert (note.null_share, note.distinct_share) == (0.5, 1.0)


def test_gzip_and_latin1_csv(tmp_path):
    gz = tmp_path / "a.csv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write("id,name\n1,Ann\n2,Bob\n")
    assert (file_format(gz), profile_file(gz).rows) == ("csv", 2)
    latin = tmp_path / "b.csv"
    latin.write_bytes("id,name\n1,Jos\xe9\n2,Zo\xeb\n".encode("latin-1"))
    profile = profile_file(latin)
    assert profile.options == {"encoding": "ISO-8859-1"}  # what matcher run needs to read it


def test_json_lines_json_arrays_and_typed_parquet(tmp_path):
    lines = tmp_path / "a.jsonl"
    lines.write_text("\n".join(json.dumps({"id": i, "dob": "1990-01-0%d" % (i + 1), "tags": [i]}) for i in range(3)))
    profile = profile_file(lines)
    assert (profile.format, profile.rows, profile.options) == ("json", 3, {})
    assert profile.column("tags").dtype == "nested"
    array = tmp_path / "b.json"
    array.write_text(json.dumps([{"id": 1}, {"id": 2}], indent=2))  # one document over several lines
    assert profile_file(array).options == {"multiLine": "true"}
    parquet = tmp_path / "c.parquet"
    pd.DataFrame({"id": [1, 2], "born": [dt.date(1990, 1, 2), None]}).to_parquet(parquet)
    profile = profile_file(parquet)
    assert profile.column("born").dtype == "date" and profile.column("born").sample.tolist() == ["1990-01-02"]
    assert profile.column("id").dtype == "integer"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", None, "missing.csv: source file not found"),
    ("empty.csv", "", "empty.csv: source file is empty"),
    ("header.csv", "id,name\n", "header.csv: source file has no rows"),
    ("data.xlsx", "id\n1\n", "data.xlsx: cannot tell the format from the name"),
    ("bad.parquet", "id\n1\n", "bad.parquet: cannot read as parquet"),
    ("dup.csv", "id,a,a\n1,2,3\n", "dup.csv: column names repeated or blank"),
])
def test_bad_files_raise_one_line_naming_the_file(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputDataError) as err:
        profile_file(tmp_path / name)
    assert message in str(err.value) and "\n" not in str(err.value)
