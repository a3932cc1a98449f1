"""The Glue-style job scripts: Glue's argument contract, and each script under spark-submit."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from matcher.config.transform import load_config
from matcher.glue_job import _cli_arguments, _task_parser, local_resolved_options, override_inputs, resolve_options
from matcher.runtime.errors import ConfigError

GLUE_ARGV = [
    "script.py", "--JOB_NAME", "nightly", "--config", "c.yaml", "--checkpoint-dir", "s3://bucket/tmp",
    "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://bucket/glue-temp", "--enable-metrics", "true",
]


def test_local_parser_resolves_what_glue_resolves_and_ignores_glue_s_own_arguments():
    assert local_resolved_options(GLUE_ARGV, ["JOB_NAME", "config", "checkpoint-dir"]) == {
        "JOB_NAME": "nightly", "config": "c.yaml", "checkpoint_dir": "s3://bucket/tmp",
    }


def test_awsglue_getresolvedoptions_agrees_with_the_local_parser():
    utils = pytest.importorskip("awsglue.utils", reason="awsglue-dev (the test extra) carries Glue's parser")
    options = ["JOB_NAME", "config", "checkpoint-dir"]
    glue = utils.getResolvedOptions(GLUE_ARGV, options)
    local = local_resolved_options(GLUE_ARGV, options)
    assert {key: glue[key] for key in local} == local


def test_optional_options_are_none_when_absent_and_required_ones_must_be_given():
    resolved = resolve_options(GLUE_ARGV, ["JOB_NAME", "config"], ["output", "checkpoint-dir"])
    assert resolved == {"JOB_NAME": "nightly", "config": "c.yaml", "output": None, "checkpoint_dir": "s3://bucket/tmp"}
    with pytest.raises((SystemExit, Exception)):
        resolve_options(["script.py", "--JOB_NAME", "x"], ["JOB_NAME", "config"])


def test_job_options_become_the_cli_task_s_arguments_with_glue_style_flags():
    _, sub = _task_parser("run")
    options = {"config": "c.yaml", "output": "out", "retrain": "true"}
    assert _cli_arguments("run", sub, options) == ["run", "--config", "c.yaml", "--output", "out", "--retrain"]
    assert _cli_arguments("run", sub, {**options, "retrain": "false"}) == ["run", "--config", "c.yaml", "--output", "out"]
    with pytest.raises(ConfigError, match="--retrain maybe: expected true or false"):
        _cli_arguments("run", sub, {**options, "retrain": "maybe"})


def test_input_option_replaces_the_input_path_by_position_or_by_name():
    config = load_config(REPO / "configs" / "fake_1000.yaml")
    assert override_inputs(config, "s3://b/new.csv").inputs[0].path == "s3://b/new.csv"
    assert override_inputs(config, "customers=/data/x.csv").inputs[0].path == "/data/x.csv"
    assert override_inputs(config, None) is config
    with pytest.raises(ConfigError, match="no input named crm"):
        override_inputs(config, "crm=/data/x.csv")


def job_environment() -> dict[str, str]:
    """spark-submit from this venv, executors on this Python, Glue's real parser on the path when installed."""
    bin_dir = Path(sys.executable).parent
    paths = [str(REPO)]
    awsglue = importlib.util.find_spec("awsglue")
    if awsglue is not None:
        paths.append(str(Path(awsglue.submodule_search_locations[0]).parent))
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
    }


def spark_submit(script: str, *args: str, cwd: Path, options: tuple[str, ...] = ("--driver-memory", "1g")) -> str:
    command = [str(Path(sys.executable).parent / "spark-submit"), *options, str(REPO / "jobs" / script), *map(str, args)]
    completed = subprocess.run(command, env=job_environment(), capture_output=True, text=True, timeout=900, cwd=cwd)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout


@pytest.mark.slow
def test_every_job_script_runs_under_spark_submit_with_glue_arguments_and_a_remote_run_folder(tmp_path):
    people = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv").iloc[:300]
    people.to_csv(tmp_path / "sample.csv", index=False)
    out, scratch = tmp_path / "run", tmp_path / "scratch"
    # file:// URIs take the same path through Hadoop's FileSystem as s3:// ones on Glue
    glue = ["--config", (REPO / "configs" / "fake_1000.yaml").as_uri(), "--output", out.as_uri(),
            "--input", tmp_path / "sample.csv", "--checkpoint-dir", scratch.as_uri(),
            "--job-bookmark-option", "job-bookmark-disable", "--TempDir", tmp_path / "glue-temp"]

    assert "t: train done" in spark_submit("train.py", "--JOB_NAME", "t", *glue, cwd=tmp_path)
    model_written = (out / "model" / "splink_model.json").read_bytes()
    assert "t: match done: 300 rows" in spark_submit("find_matches.py", "--JOB_NAME", "t", *glue, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_out"] == 300
    assert summary["outputs"]["matches"] == f"{out.as_uri()}/matches"
    assert summary["outputs"]["model"] == f"{out.as_uri()}/model"
    assert "t: evaluate done" in spark_submit("evaluate.py", "--JOB_NAME", "t", *glue, cwd=tmp_path)
    assert json.loads((out / "metrics.json").read_text())["clusters"]["f1"] > 0.5
    assert "t: run done: 300 rows" in spark_submit("run.py", "--JOB_NAME", "t", *glue, "--retrain", "false", cwd=tmp_path)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timings_s"]["train"] == 0.0  # the run reused the train job's model
    assert (out / "model" / "splink_model.json").read_bytes() == model_written
    assert (out / "report.html").exists()
    assert list(scratch.iterdir()) == []  # each job removed its checkpoint folder
    assert not (out / "_checkpoints").exists()


@pytest.mark.slow
def test_labeling_and_graph_job_scripts_run_under_spark_submit(tmp_path, fake_1000_run, gremlin_server):
    import shutil

    import yaml

    from matcher.graph.server import clear_graph

    run = tmp_path / "run"
    shutil.copytree(fake_1000_run.root, run)
    config = yaml.safe_load((REPO / "configs" / "fake_1000.yaml").read_text())
    config["inputs"][0]["path"] = str(REPO / "data" / "demo" / "fake_1000.csv")
    config["graph"] = {"endpoint": gremlin_server.endpoint, "writers": 1}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))

    sets = tmp_path / "sets.csv"
    out = spark_submit("label_set.py", "--JOB_NAME", "t", "--config", config_path, "--run", run,
                       "--output", sets, "--sets", "2", "--set-size", "4", cwd=tmp_path)
    assert "t: label-set done:" in out
    labeled = pd.read_csv(sets)
    assert list(labeled.columns[:2]) == ["labeling_set_id", "label"] and labeled["labeling_set_id"].nunique() == 2
    labeled.assign(label="same").to_csv(sets, index=False)
    assert "t: import-labels done:" in spark_submit(
        "import_labels.py", "--JOB_NAME", "t", "--config", config_path, "--labels", sets, "--output", run, cwd=tmp_path)
    assert (run / "labels").exists()

    clear_graph(gremlin_server.endpoint)
    assert "t: load-graph done:" in spark_submit("load_graph.py", "--JOB_NAME", "t", "--config", config_path, "--output", run, cwd=tmp_path)
    graph = json.loads((run / "graph.json").read_text())
    assert graph["graph"]["vertices"]["SourceRecord"] == 1000
    assert graph["graph"]["edges"]["member_of"] == 1000
