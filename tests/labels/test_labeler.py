"""matcher.labels.labeler: the terminal labeler, driven through its input stream and through stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from conftest import REPO, minimal_config
from rich.console import Console

from matcher.config.transform import config_from_dict
from matcher.labels.labeler import label_file, similarity

CONFIG = minimal_config()
FILE = (
    "labeling_set_id,label,pk,first_name,city\n"
    "s1,,1,Ann,Leeds\n"
    "s1,,2,Anne,Leeds\n"
    "s1,,3,Bob,York\n"
    "s1,,4,Bobby,York\n"
    "s2,,5,Cy,Hull\n"
    "s2,,6,Di,Hull\n"
)


def labels(path: Path) -> list[str]:
    return pd.read_csv(path, dtype=str, keep_default_na=False)["label"].tolist()


def drive(path: Path, answers: str) -> tuple[str, str]:
    screen = io.StringIO()
    summary = label_file(config_from_dict(CONFIG), path, answers=io.StringIO(answers), console=Console(file=screen, width=100))
    return summary, screen.getvalue()


def test_similarity_is_one_for_equal_values_ignoring_case_and_none_for_blanks():
    assert similarity("Ann ", "ann") == 1.0
    assert 0.5 < similarity("Ann", "Anne") < 1.0
    assert similarity("", "x") is None


def test_answers_group_the_records_of_each_set(tmp_path):
    path = tmp_path / "sets.csv"
    path.write_text(FILE, encoding="utf-8")
    # 1 starts e1; 2: match e1; 3: non-match e1 -> e2; 4: e1? no, e2? yes; 5 starts e1 in s2; 6: non-match -> e2
    summary, screen = drive(path, "m\nn\nn\nm\nn\n")
    assert labels(path) == ["e1", "e1", "e2", "e2", "e1", "e2"]
    assert "labeled 6 of 6 rows" in summary
    assert "similarity" in screen and "[m]atch" in screen and "Anne" in screen


def test_undo_takes_back_the_last_answer_and_skip_leaves_a_row_unlabeled(tmp_path):
    path = tmp_path / "sets.csv"
    path.write_text(FILE, encoding="utf-8")
    # 2: non-match (-> e2), undo, match (-> e1); 3: skip; 4: non-match (-> e2); then quit
    drive(path, "n\nu\nm\ns\nn\nq\n")
    assert labels(path) == ["e1", "e1", "", "e2", "e1", ""]


def test_progress_is_saved_after_each_answer_and_labeling_resumes_there(tmp_path):
    path = tmp_path / "sets.csv"
    path.write_text(FILE, encoding="utf-8")
    drive(path, "m\n")  # input ends: the labeler stops, 1 and 2 are saved
    assert labels(path) == ["e1", "e1", "", "", "", ""]
    summary, screen = drive(path, "n\nn\nm\nm\n")
    assert labels(path) == ["e1", "e1", "e2", "e2", "e1", "e1"]
    assert "record (line 2)" not in screen and "record (line 3)" not in screen  # labeled rows are not asked again
    assert screen.index("record (line 4)") < screen.index("record (line 5)")
    assert "0 left" in summary


def test_the_cli_labeler_reads_answers_from_stdin(tmp_path):
    path = tmp_path / "sets.csv"
    path.write_text(FILE, encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "label", "--config", str(config), "--input", str(path)],
        input="m\nn\nn\nm\nq\n", capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert labels(path) == ["e1", "e1", "e2", "e2", "e1", ""]
    assert "labeled 5 of 6 rows" in done.stdout


def test_the_cli_labeler_rejects_a_bad_file_on_one_line(tmp_path, cli):
    path = tmp_path / "sets.csv"
    path.write_bytes(b"\xef\xbb\xbf" + FILE.encode())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    result = cli("label", "--config", config, "--input", path)
    assert result.code == 2
    assert result.err_lines == [f"matcher: error: {path}: starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"]
