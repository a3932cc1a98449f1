"""Bad input files through the real CLI: each is read exactly (rows in = rows out, values intact)
or refused with one ``matcher: error:`` line naming the file, column or row, never a traceback.

The fast path for "read exactly" is ``matcher label-set`` without a model: it reads every input
through the same ingest as ``run`` and writes every record of these tiny files to a CSV.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import assert_one_line_error

HEADER = ["pk", "first_name", "surname", "dob", "city"]
BASE = [
    ("1", "robert", "smith", "1980-01-02", "leeds"), ("2", "robert", "smyth", "1980-01-02", "leeds"),
    ("3", "anna", "jones", "1975-03-04", "york"), ("4", "anna", "jonas", "1975-03-04", "york"),
    ("5", "li", "wei", "1990-05-06", "hull"), ("6", "li", "wie", "1990-05-06", "hull"),
]


def csv_text(rows, header=HEADER, newline: str = "\n") -> str:
    """``rows`` as RFC 4180 text (quoting only where needed)."""
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows([header, *rows])
    return out.getvalue()


def people_config(path: Path, **overrides) -> dict:
    """An ``inputs:`` config over ``path`` comparing first_name, surname, dob (a date) and city."""
    data = {
        "name": "rel",
        "inputs": [{"name": "people", "path": str(path), "format": "csv"}],
        "primary_key": "pk",
        "columns": [
            {"name": "first_name", "kind": "name"}, {"name": "surname", "kind": "name"},
            {"name": "dob", "kind": "date"}, {"name": "city", "kind": "exact"},
        ],
        "blocking_rules": [["city"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
    }
    data.update(overrides)
    return data


@pytest.fixture
def people(tmp_path, write_config):
    """Write ``data`` (text as UTF-8, or bytes) as people.csv; return (csv path, config path)."""

    def make(data: str | bytes, name: str = "people.csv", **overrides) -> tuple[Path, Path]:
        path = tmp_path / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path, write_config(people_config(path, **overrides))

    return make


@pytest.fixture
def read_back(cli, tmp_path):
    """Run ``label-set`` (no model) on a config; return the records it wrote, unescaped, by primary key."""

    def run(config: Path) -> pd.DataFrame:
        out = tmp_path / "labeling.csv"
        result = cli("label-set", "--config", config, "--output", out, "--run", tmp_path / "run", "--sets", "50")
        assert result.code == 0 and result.err == "", result
        rows = pd.read_csv(out, dtype=str, keep_default_na=False).drop(columns=["labeling_set_id", "label"])
        return rows.apply(lambda c: c.map(lambda v: v[1:] if v.startswith("'") else v)).set_index("pk").sort_index()

    return run


def expected(rows, header=HEADER) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header, dtype=str).set_index("pk").sort_index()


# --- 1. quoted line breaks and doubled quotes -------------------------------------------------------------

@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_quoted_line_breaks_and_doubled_quotes_survive(people, read_back, newline):
    rows = [("1", "Rob\nert", 'say "hi", ok', "1980-01-02", "leeds"), ("2", "Rob\r\nert", "smith", "1980-01-02", "leeds"),
            *BASE[2:]]
    text = csv_text(rows, newline=newline)
    assert '""hi""' in text
    _, config = people(text)
    got = read_back(config)
    assert len(got) == len(rows)
    want = expected(rows)
    if newline == "\r\n":  # in a CR LF file Spark's CSV parser (univocity) reads a quoted CR LF as LF
        want.loc["2", "first_name"] = "Rob\nert"
    assert got.loc["1", "first_name"] == "Rob\nert" and got.loc["1", "surname"] == 'say "hi", ok'
    pd.testing.assert_frame_equal(got, want)


# --- 2. encodings -----------------------------------------------------------------------------------------

def test_latin1_csv_is_refused_naming_file_and_line(people, cli):
    rows = [*BASE[:3], ("4", "josé", "müller", "1975-03-04", "york"), *BASE[4:]]
    path, config = people(csv_text(rows).encode("latin-1"))
    line = assert_one_line_error(cli("train", "--config", config, "--output", path.parent / "run"),
                                 str(path), "not UTF-8", "line 5", "encoding")
    assert "josé" not in line and "m\ufffdller" not in line


def test_latin1_csv_with_declared_encoding_reads_exactly(people, read_back):
    rows = [*BASE[:3], ("4", "josé", "müller", "1975-03-04", "york"), *BASE[4:]]
    path, config = people(csv_text(rows).encode("latin-1"))
    config.write_text(config.read_text().replace("format: csv", "format: csv\n  options: {encoding: latin1}"))
    got = read_back(config)
    pd.testing.assert_frame_equal(got, expected(rows))


def test_utf8_bom_header_still_matches(people, read_back):
    _, config = people(b"\xef\xbb\xbf" + csv_text(BASE).encode("utf-8"))
    pd.testing.assert_frame_equal(read_back(config), expected(BASE))


def test_non_latin_scripts_pass_unchanged(people, read_back):
    rows = [("1", "Ольга", "Иванова", "1985-07-08", "Москва"), ("2", "Ольга", "Иваноva", "1985-07-08", "Москва"),
            ("3", "王芳", "李", "1990-05-06", "北京"), ("4", "王芳", "李", "1990-05-06", "北京"),
            ("5", "ذكي", "حسن", "1970-01-01", "القاهرة"), ("6", "zoë😀", "smith", "1970-01-01", "القاهرة")]
    _, config = people(csv_text(rows))
    pd.testing.assert_frame_equal(read_back(config), expected(rows))


def test_one_megabyte_field_passes_unchanged(people, read_back):
    big = "x" * (1 << 20)
    rows = [*BASE[:5], ("6", "li", big, "1990-05-06", "hull")]
    _, config = people(csv_text(rows))
    got = read_back(config)
    assert len(got.loc["6", "surname"]) == 1 << 20
    pd.testing.assert_frame_equal(got, expected(rows))


# --- 3. dates that do not parse -----------------------------------------------------------------------------

def test_mostly_non_iso_dates_are_refused_naming_file_column_count_and_fix(people, cli):
    rows = [(pk, f, s, "02/01/1980", c) for pk, f, s, _, c in BASE[:5]] + [BASE[5]]
    path, config = people(csv_text(rows))
    line = assert_one_line_error(cli("train", "--config", config, "--output", path.parent / "run"),
                                 str(path), "'dob'", "5 of 6", "date_formats")
    assert "02/01/1980" not in line


def test_some_non_iso_dates_warn_naming_file_column_count_and_keys(people, read_back, caplog):
    rows = [*BASE[:5], ("6", "li", "wie", "06.05.1990", "hull")]
    path, config = people(csv_text(rows))
    with caplog.at_level(logging.WARNING, logger="matcher"):
        got = read_back(config)
    assert got.loc["6", "dob"] == "06.05.1990" and len(got) == len(rows)  # kept, compared as null
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "dob" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    for fragment in (str(path), "'dob'", "1 of 6", "primary keys: 6", "date_formats"):
        assert fragment in warnings[0], (fragment, warnings[0])
    assert "06.05.1990" not in caplog.text


# --- 4. rows with more fields than the header -------------------------------------------------------------------

def test_row_with_more_fields_than_header_is_refused_naming_line(people, cli):
    text = csv_text(BASE[:3]) + "4,anna,jonas,1975-03-04,york,EXTRA\n" + csv_text(BASE[4:], header=[])[1:]
    path, config = people(text)
    assert_one_line_error(cli("train", "--config", config, "--output", path.parent / "run"),
                          str(path), "line 5", "6 fields", "header has 5")


# --- 5. too few records to train ------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["train", "run"])
@pytest.mark.parametrize("n", [1, 2])
def test_too_few_records_to_train_is_one_line_naming_input(people, cli, n, task):
    path, config = people(csv_text(BASE[:n]))
    line = assert_one_line_error(cli(task, "--config", config, "--output", path.parent / "run"),
                                 str(path), f"{n} row", "at least 3 records")
    assert "ZeroDivisionError" not in line


# --- 6, 7. labeling files: formula escaping round trip, control characters -------------------------------------

FORMULAS = [("1", "=cmd|' /C calc'!A0", "+smith", "1980-01-02", "leeds"), ("2", "@SUM(A1)", "-smith", "1980-01-02", "leeds"),
            ("3", "'quoted", "-12", "1975-03-04", "york"), ("4", "\tanna", "jones", "1975-03-04", "york"),
            *BASE[4:]]


def _dangerous_cells(path: Path) -> list[str]:
    """The data cells of a CSV file that a spreadsheet would run as a formula."""
    with path.open(encoding="utf-8", newline="") as f:
        cells = [cell for row in list(csv.reader(f))[1:] for cell in row]
    return [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r")) or (c.startswith("-") and c != "-12")]


@pytest.mark.slow
def test_labeling_files_escape_formulas_and_import_undoes_it(people, cli, tmp_path):
    path, config = people(csv_text(FORMULAS))
    run, written, exported = tmp_path / "run", tmp_path / "labeling.csv", tmp_path / "exported.csv"
    result = cli("label-set", "--config", config, "--output", written, "--run", run, "--sets", "50")
    assert result.code == 0, result
    assert _dangerous_cells(written) == []
    labeled = pd.read_csv(written, dtype=str, keep_default_na=False)
    labeled["label"] = labeled["pk"].map(lambda pk: str((int(pk) + 1) // 2))
    labeled.to_csv(written, index=False)
    assert cli("import-labels", "--config", config, "--output", run, "--labels", written).code == 0
    result = cli("export-labels", "--config", config, "--output", exported, "--run", run)
    assert result.code == 0, result
    assert _dangerous_cells(exported) == []
    back = pd.read_csv(exported, dtype=str, keep_default_na=False)
    back = back.drop(columns=[c for c in back.columns if c not in HEADER])
    back = back.apply(lambda c: c.map(lambda v: v[1:] if v.startswith("'") else v)).set_index("pk").sort_index()
    pd.testing.assert_frame_equal(back[HEADER[1:]], expected(FORMULAS))


def test_import_labels_refuses_nul_naming_file_and_row(people, cli, tmp_path):
    _, config = people(csv_text(BASE))
    labels = tmp_path / "labels.csv"
    rows = [("s1", "a", *BASE[0]), ("s1", "a", "2", "Ro\x00bert", *BASE[1][2:])]
    labels.write_text(csv_text(rows, header=["labeling_set_id", "label", *HEADER]), encoding="utf-8")
    assert_one_line_error(cli("import-labels", "--config", config, "--output", tmp_path / "run", "--labels", labels),
                          str(labels), "data row 2", "first_name", "NUL")


# --- 8. other formats declared as CSV ---------------------------------------------------------------------------

def _parquet(spark, path: Path) -> bytes:
    spark.createDataFrame(pd.DataFrame(BASE, columns=HEADER)).coalesce(1).write.parquet(str(path))
    return next(path.glob("part-*.parquet")).read_bytes()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("people.csv", csv_text(BASE))
    return buffer.getvalue()


@pytest.mark.parametrize(("kind", "said"), [("parquet", "looks like a Parquet file (set format: parquet)"),
                                             ("gzip", "looks like gzip-compressed"), ("zip", "looks like a zip archive")])
def test_other_format_declared_as_csv_is_refused(people, cli, spark, tmp_path, kind, said):
    """The file's magic bytes (PAR1, 1f 8b, PK) name its format; its binary header is never listed as column names."""
    data = {"parquet": lambda: _parquet(spark, tmp_path / "pq"), "gzip": lambda: gzip.compress(csv_text(BASE).encode()),
            "zip": _zip}[kind]()
    path, config = people(data)
    line = assert_one_line_error(cli("train", "--config", config, "--output", tmp_path / "run"), str(path), said)
    assert "column" not in line


# --- keys, empty columns, bad configs -------------------------------------------------------------------------------

def test_duplicate_primary_key_is_refused_naming_the_key(people, cli):
    rows = [*BASE[:5], ("3", "li", "wie", "1990-05-06", "hull")]
    path, config = people(csv_text(rows))
    line = assert_one_line_error(cli("train", "--config", config, "--output", path.parent / "run"),
                                 str(path), "primary key 'pk' repeats", "3 (x2)")
    assert "anna" not in line


@pytest.mark.slow
def test_all_null_comparison_column_is_refused_naming_it(people, cli):
    rows = [(pk, f, "", d, c) for pk, f, _, d, c in BASE]
    path, config = people(csv_text(rows))
    assert_one_line_error(cli("train", "--config", config, "--output", path.parent / "run"),
                          str(path), "surname", "no values")


@pytest.mark.parametrize(("change", "fragments"), [
    ({"colums": []}, ("colums",)),
    ({"primary_key": ["pk", "x"]}, ("primary_key",)),
    ({"training": {"deterministic_recall": "high", "deterministic_rules": [["first_name"]]}}, ("deterministic_recall",)),
    ({"columns": [{"name": "first_name", "kind": "fuzzy"}]}, ("kind", "fuzzy")),
])
def test_bad_config_is_one_line_naming_the_key(people, cli, tmp_path, write_config, change, fragments):
    path, _ = people(csv_text(BASE))
    config = write_config({**people_config(path), **change}, name="bad.yaml")
    assert_one_line_error(cli("train", "--config", config, "--output", tmp_path / "run"), str(config), *fragments)


def test_unparseable_yaml_is_one_line_naming_the_file(cli, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("name: x\ninputs: [\n", encoding="utf-8")
    assert_one_line_error(cli("train", "--config", config, "--output", tmp_path / "run"), str(config))


# --- sources: dates outside date_formats, quarantine ------------------------------------------------------------

SOURCE_HEADER = ["id", "fname", "lname", "born", "town"]


def sources_config(path: Path, **quality) -> dict:
    """A ``sources:`` config over one CSV with :data:`SOURCE_HEADER` columns (dates as ``%Y-%m-%d``)."""
    return {
        "name": "rel-sources",
        "sources": [{"name": "crm", "path": str(path), "format": "csv", "primary_key": "id",
                     "columns": {"first_name": "fname", "last_name": "lname", "dob": "born", "city": "town"}}],
        "standardize": {"date_formats": ["%Y-%m-%d"]},
        "quality": quality,
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "last_name", "kind": "name"},
                    {"name": "dob", "kind": "date"}, {"name": "city", "kind": "exact"}],
        "blocking_rules": [["city"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
    }


@pytest.mark.slow
def test_sources_date_outside_date_formats_warns_naming_file_column_and_fix(tmp_path, write_config, cli, caplog):
    path = tmp_path / "crm.csv"
    path.write_text(csv_text([*BASE[:5], ("6", "li", "wie", "06.05.1990", "hull")], header=SOURCE_HEADER), encoding="utf-8")
    config = write_config(sources_config(path))
    with caplog.at_level(logging.WARNING, logger="matcher"):
        result = cli("label-set", "--config", config, "--output", tmp_path / "l.csv", "--run", tmp_path / "run", "--sets", "50")
    assert result.code == 0, result
    warnings = [r.getMessage() for r in caplog.records if "date_formats" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    for fragment in (str(path), "'born'", "1 of 6", "quality.parseable", "record ids: "):
        assert fragment in warnings[0], (fragment, warnings[0])
    assert "06.05.1990" not in caplog.text


@pytest.mark.slow
def test_sources_run_quarantines_unparseable_dates_and_counts_reconcile(tmp_path, write_config, cli):
    path = tmp_path / "crm.csv"
    rows = [*BASE, ("7", "li", "wei", "06.05.1990", "hull"), ("8", "Rob\nert", "smith", "1980-01-02", "leeds")]
    path.write_text(csv_text(rows, header=SOURCE_HEADER), encoding="utf-8")
    config = write_config(sources_config(path, parseable=["dob"]))
    result = cli("run", "--config", config, "--output", tmp_path / "run")
    assert result.code == 0, result
    quarantine = pd.read_parquet(tmp_path / "run" / "quarantine")
    assert list(quarantine["source_key"]) == ["7"] and list(quarantine["rule"]) == ["parseable"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    counts = summary["harmonization"]["sources"]["crm"]
    assert (counts["rows_in"], counts["rows_matched"], counts["rows_quarantined"]) == (8, 7, 1)
    matches = pd.read_parquet(tmp_path / "run" / "matches")
    assert len(matches) == 7 and "Rob\nert" in set(matches["raw_first_name"])
