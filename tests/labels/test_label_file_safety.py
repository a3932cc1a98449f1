"""Labeling files are safe to open in a spreadsheet and to import: formula-like cells are escaped
and read back exactly, control characters are refused naming line and column, files are owner-only."""

from __future__ import annotations

import csv
import stat

import pandas as pd
import pytest
from conftest import minimal_config

from matcher.config.transform import config_from_dict
from matcher.labels.files import export_labels, import_labels, read_labeling_file, write_labeling_file
from matcher.runtime.errors import InputDataError

HEADER = "labeling_set_id,label,pk,first_name,city\n"
KNOWN = {str(i) for i in range(1, 21)} | {"-3", "=7"}


def config():
    return config_from_dict(minimal_config())


def cells(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# each value as it must reach the file, and back
ESCAPED = [
    ("=HYPERLINK(\"http://x\",\"click\")", "'=HYPERLINK(\"http://x\",\"click\")"),
    ("+44 20 7946 0000", "'+44 20 7946 0000"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("'=already quoted", "''=already quoted"),  # a real leading quote is escaped too: the rule is unambiguous
    ("'", "''"),
    ("-", "'-"),
    ("-3", "-3"),  # negative numbers are numbers to a spreadsheet, not formulas: left as they are
    ("-12.5", "-12.5"),
    ("-1e5", "'-1e5"),  # only plain decimals count as numbers
    ("O'Neil", "O'Neil"),
    ("Ann", "Ann"),
    ("Ann\rMarie", "Ann\rMarie"),  # a CR inside a cell is quoted (CRLF rows), not a row break
    ("", ""),
]


def test_formula_like_cells_are_escaped_with_a_quote_and_read_back_exactly(tmp_path):
    rows = pd.DataFrame({
        "labeling_set_id": [f"s{i // 2}" for i in range(len(ESCAPED))],
        "label": ["a"] * len(ESCAPED),
        "pk": [str(i) for i in range(1, len(ESCAPED) + 1)],
        "first_name": [value for value, _ in ESCAPED],
        "city": ["Leeds"] * len(ESCAPED),
    })
    path = tmp_path / "sets.csv"
    write_labeling_file(rows, path)
    assert [row[3] for row in cells(path)[1:]] == [written for _, written in ESCAPED]
    back = read_labeling_file(path, config())
    # reading strips surrounding blanks, which an escaped tab or CR no longer is
    assert back["first_name"].tolist() == [value for value, _ in ESCAPED]
    pd.testing.assert_frame_equal(back, rows)


def test_a_negative_or_formula_like_key_survives_the_round_trip_and_matches_the_source(tmp_path):
    rows = pd.DataFrame({"labeling_set_id": ["s1", "s1"], "label": ["a", "a"], "pk": ["-3", "=7"],
                         "first_name": ["Ann", "Anne"], "city": ["Leeds", "Leeds"]})
    path = tmp_path / "sets.csv"
    write_labeling_file(rows, path)
    assert [row[2] for row in cells(path)] == ["pk", "-3", "'=7"]
    summary = import_labels(config(), tmp_path / "run", path, KNOWN)
    assert summary["pairs"] == 1 and summary["match_pairs"] == 1


def test_export_escapes_what_import_unescaped(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "s1,A,1,'=cmd,Leeds\ns1,A,2,@x,''quoted\n", encoding="utf-8")
    import_labels(config(), tmp_path / "run", path, KNOWN)
    out = tmp_path / "out.csv"
    export_labels(tmp_path / "run", out)
    assert cells(out)[1:] == [["s1", "A", "1", "'=cmd", "Leeds"], ["s1", "A", "2", "'@x", "''quoted"]]
    assert read_labeling_file(out, config())[["first_name", "city"]].values.tolist() == [["=cmd", "Leeds"], ["@x", "'quoted"]]


@pytest.mark.parametrize("writer", ["write_labeling_file", "export_labels"])
def test_labeling_files_are_owner_only(tmp_path, writer):
    out = tmp_path / "out.csv"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o644)  # an existing file is replaced, not reused with its permissions
    if writer == "write_labeling_file":
        write_labeling_file(pd.DataFrame({"labeling_set_id": ["s1"], "label": ["a"], "pk": ["1"]}), out)
    else:
        source = tmp_path / "in.csv"
        source.write_text(HEADER + "s1,A,1,Ann,Leeds\ns1,A,2,Anne,Leeds\n", encoding="utf-8")
        import_labels(config(), tmp_path / "run", source, KNOWN)
        export_labels(tmp_path / "run", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("char, shown", [("\x00", "U+0000 (NUL)"), ("\x1b", "U+001B"), ("\x0c", "U+000C"), ("\x85", "U+0085")])
def test_a_control_character_in_a_cell_is_an_error_naming_file_line_and_column(tmp_path, char, shown):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "s1,A,1,Ann,Leeds\n" + f"s1,A,2,Ro{char}bert,Leeds\n", encoding="utf-8")
    with pytest.raises(InputDataError) as err:
        import_labels(config(), tmp_path / "run", path, KNOWN)
    assert str(err.value) == f"{path}: line 3 (data row 2), column first_name: control character {shown} in a value; remove it"


def test_the_line_of_a_control_character_counts_lines_inside_quoted_cells(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + 's1,A,1,Ann,"Leeds\nnorth"\n' + "s1,A,2,Bob,Yo\x00rk\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"labels.csv: line 4 \(data row 2\), column city: control character U\+0000 \(NUL\)"):
        read_labeling_file(path, config())


def test_a_control_character_in_the_header_is_named_as_such(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("labeling_set_id,label,pk,first\x00name\ns1,A,1,Ann\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"labels.csv: line 1 \(header\): control character U\+0000 \(NUL\)"):
        read_labeling_file(path, config())


def test_tabs_and_line_breaks_inside_quoted_cells_are_not_control_characters(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + 's1,A,1,"Ann\tMarie","Leeds\r\nnorth"\n', encoding="utf-8")
    assert read_labeling_file(path, config())["first_name"].tolist() == ["Ann\tMarie"]
