"""matcher.cli: help for every task, and one ``matcher: error:`` line with a non-zero exit on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import assert_nothing_looks_complete, assert_one_line_error

from matcher.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
TASKS = ["train", "match", "evaluate", "run"]
TASK_OPTIONS = {
    "train": {"--config", "--output", "--help"},
    "match": {"--config", "--output", "--help"},
    "evaluate": {"--config", "--output", "--labels", "--help"},
    "run": {"--config", "--output", "--retrain", "--help"},
}


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def declared_options(task: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "task").choices[task]
    return {s for action in sub._actions for s in action.option_strings if s.startswith("--")}


@pytest.mark.parametrize("task", TASKS)
def test_each_task_declares_exactly_the_documented_options(task):
    assert declared_options(task) == TASK_OPTIONS[task]


@pytest.mark.parametrize("task", TASKS)
def test_help_for_each_task_mentions_every_option(task, capsys):
    text = help_text(capsys, task)
    assert text.startswith(f"usage: matcher {task}")
    for option in TASK_OPTIONS[task]:
        assert option in text
    assert "OUTPUT/" in text  # the description says what the task reads or writes


def test_top_level_help_lists_every_task_and_the_log_level(capsys):
    text = help_text(capsys)
    for task in TASKS:
        assert task in text
    assert "--log-level" in text
    for level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        assert level in text


def test_python_dash_m_matcher_prints_help():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "--help"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: matcher")
    for task in TASKS:
        assert task in done.stdout


def test_a_task_without_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 2
    assert "the following arguments are required: --config" in capsys.readouterr().err


def test_an_unknown_task_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["dedupe", "--config", "x.yaml"])
    assert exited.value.code == 2
    assert "invalid choice: 'dedupe'" in capsys.readouterr().err


# --- failures: one line, non-zero ----------------------------------------------------


def tiny_config(tmp_path: Path, **overrides) -> dict:
    data = tmp_path / "people.csv"
    data.write_text("pk,first_name,city,cluster\n1,ann,leeds,a\n2,anne,leeds,a\n3,bob,york,b\n", encoding="utf-8")
    config = {
        "name": "tiny",
        "inputs": [{"name": "people", "path": str(data), "format": "csv"}],
        "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "exact"}],
        "blocking_rules": [["city"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
        "truth_column": "cluster",
        "output": str(tmp_path / "default_out"),
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize("task", TASKS)
def test_a_missing_config_file_fails_every_task_with_exit_code_2(task, tmp_path, cli):
    missing = tmp_path / "nope.yaml"
    result = cli(task, "--config", missing)
    line = assert_one_line_error(result, f"{missing}: config file not found")
    assert result.code == 2
    assert line == f"matcher: error: {missing}: config file not found"
    assert result.out == ""


def test_bad_yaml_fails_with_one_line_naming_file_and_line(tmp_path, cli):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ninputs:\n  - name: a\n   path: x\n", encoding="utf-8")
    result = cli("run", "--config", path, "--output", tmp_path / "out")
    assert_one_line_error(result, str(path), "invalid YAML", "line 4")
    assert result.code == 2
    assert not (tmp_path / "out").exists()


def test_a_config_validation_error_fails_with_every_problem_on_one_line(tmp_path, write_config, cli):
    columns = [{"name": "first_name", "kind": "nmae"}, {"name": "city", "kind": "exact"}]
    config = tiny_config(tmp_path, columns=columns, seed="forty-two")
    result = cli("train", "--config", write_config(config))
    line = assert_one_line_error(result, "seed: Input should be a valid integer", "columns.0.kind: unknown value 'nmae'")
    assert line.count("; ") >= 1
    assert result.code == 2


def test_a_run_folder_hadoop_cannot_open_fails_with_one_line_naming_it(tmp_path, write_config, cli):
    result = cli("run", "--config", write_config(tiny_config(tmp_path)), "--output", "gs://bucket/run")
    assert_one_line_error(result, "gs://bucket/run: cannot open the run folder", 'No FileSystem for scheme "gs"')
    assert result.code == 2


def test_a_missing_s3_connector_is_named_with_its_fix():
    from matcher.runtime.remote_folder import hadoop_error

    missing = Exception('org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "s3"\n\tat ...')
    assert hadoop_error(missing).endswith('"s3"; run `matcher s3-server fetch` once to add Spark\'s S3 connector')


def sample_config(tmp_path: Path, rows: int = 200) -> dict:
    """configs/fake_1000.yaml on its first ``rows`` records."""
    sample = tmp_path / "sample.csv"
    pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv").iloc[:rows].to_csv(sample, index=False)
    config = yaml.safe_load((REPO / "configs" / "fake_1000.yaml").read_text(encoding="utf-8"))
    config["inputs"][0]["path"] = str(sample)
    return config


def test_a_remote_run_folder_works_like_a_local_one_for_run_evaluate_and_match_incremental(spark, tmp_path, write_config, cli):
    # file:// URIs take the remote path (staged small files, tables written through Hadoop) without S3
    config = write_config(sample_config(tmp_path))
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert cli("run", "--config", config, "--output", local).code == 0
    result = cli("run", "--config", config, "--output", remote.as_uri())
    assert result.code == 0, result.err
    assert f"matches: {remote.as_uri()}/matches" in result.out.splitlines()

    def matches(run: str) -> list[tuple]:
        return sorted(map(tuple, spark.read.parquet(f"{run}/matches").select("unique_id", "match_id", "match_confidence_score").collect()))

    assert matches(remote.as_uri()) == matches(str(local))
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["outputs"]["model"] == f"{remote.as_uri()}/model"
    assert {p.name for p in remote.iterdir()} >= {"model", "matches", "pairs", "summary.json", "metrics.json", "report.html"}

    (remote / "metrics.json").unlink()
    result = cli("evaluate", "--config", config, "--output", remote.as_uri())
    assert result.code == 0, result.err
    assert json.loads((remote / "metrics.json").read_text())["clusters"] == json.loads((local / "metrics.json").read_text())["clusters"]

    new = tmp_path / "new.csv"
    pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv").iloc[200:220].to_csv(new, index=False)
    incremental = tmp_path / "incremental"
    result = cli("match-incremental", "--config", config, "--existing", remote.as_uri(), "--new", new, "--output", incremental.as_uri())
    assert result.code == 0, result.err
    summary = json.loads((incremental / "summary.json").read_text())
    assert summary["rows_out"] == 220 and summary["incremental"]["existing"] == remote.as_uri()
    assert summary["outputs"]["changes"] == f"{incremental.as_uri()}/changes.json"
    assert spark.read.parquet(f"{incremental.as_uri()}/matches").count() == 220
    assert (incremental / "changes" / "records.parquet").exists()
    assert len(spark.read.parquet(str(remote / "matches")).collect()) == 200  # the existing run is only read


def test_match_without_a_trained_model_says_to_train_first(tmp_path, write_config, cli):
    out = tmp_path / "out"
    result = cli("match", "--config", write_config(tiny_config(tmp_path)), "--output", out)
    assert_one_line_error(result, str(out / "model"), "no trained model here", "matcher train")
    assert result.code == 1
    assert_nothing_looks_complete(out)


def test_evaluate_without_a_prior_match_fails_with_one_line(tmp_path, write_config, cli):
    out = tmp_path / "out"
    result = cli("evaluate", "--config", write_config(tiny_config(tmp_path)), "--output", out)
    assert_one_line_error(result, str(out), "summary.json missing", "matcher match")
    assert result.code == 1
    assert not (out / "metrics.json").exists()


def test_evaluate_without_a_truth_column_is_a_config_error(tmp_path, write_config, cli):
    config = tiny_config(tmp_path, truth_column=None)
    result = cli("evaluate", "--config", write_config(config), "--output", tmp_path / "out")
    assert_one_line_error(result, "tiny: evaluate needs 'truth_column'")
    assert result.code == 2


def test_the_output_defaults_to_the_configs_output(tmp_path, write_config, cli):
    config = tiny_config(tmp_path)
    result = cli("evaluate", "--config", write_config(config))
    assert_one_line_error(result, f"{tmp_path / 'default_out'}: no completed match run here")


def test_a_blocking_rule_that_is_not_sql_is_refused_naming_the_rule(tmp_path, write_config, cli):
    config = tiny_config(tmp_path, blocking_rules=["l.city = = r.city"])
    out = tmp_path / "out"
    result = cli("run", "--config", write_config(config), "--output", out)
    assert_one_line_error(result, "blocking_rules: rule 0 'l.city = = r.city' is not valid SQL")
    assert result.code == 2
    assert not out.exists()


def test_an_unexpected_failure_is_still_one_line_with_its_type_and_a_hint(tmp_path, write_config, cli):
    # SQL that parses but calls a function Spark does not have only fails deep inside Splink
    config = tiny_config(tmp_path, blocking_rules=["no_such_function(l.city) = r.city"])
    out = tmp_path / "out"
    result = cli("run", "--config", write_config(config), "--output", out)
    line = assert_one_line_error(result, "(rerun with --log-level DEBUG for details)")
    assert result.code == 1
    assert line.split(": ")[2].isidentifier()  # the exception type comes first: "matcher: error: ParseError: ..."
    assert not (out / "summary.json").exists() and not (out / "matches").exists()


def test_a_config_path_that_is_a_directory_fails_with_one_line(tmp_path, cli):
    result = cli("run", "--config", tmp_path)
    assert_one_line_error(result, f"{tmp_path}: cannot read config")
    assert result.code == 2



def test_a_failure_inside_a_python_worker_names_what_the_worker_raised(spark):
    # e.g. a pandas UDF of the standardization stage: Spark's message is the worker's traceback
    from pyspark.sql import functions as F

    from matcher.cli import failure_reason

    @F.udf("string")
    def broken(value):
        raise ValueError(f"cannot parse row {value}")

    with pytest.raises(Exception) as caught:
        spark.range(1).select(broken("id")).collect()
    assert failure_reason(caught.value) == "PythonException: ValueError: cannot parse row 0"
