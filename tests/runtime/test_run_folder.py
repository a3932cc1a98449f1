"""Run folders: the task session's checkpoint folder, and remote (``scheme://``) run folders staged through Hadoop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.runtime.errors import ConfigError, InputDataError
from matcher.runtime.run_folder import RunFolder, open_run_folder, task_session


def checkpoint_dir(spark) -> str:
    return spark.sparkContext._jsc.sc().getCheckpointDir().get()


def test_a_nested_task_session_on_the_same_folder_leaves_the_outer_checkpoints_alone(spark, tmp_path):
    folder = RunFolder(tmp_path / "run")
    with task_session(folder, spark) as outer:
        kept = outer.range(1000).checkpoint()  # a reliable checkpoint: Parquet-like files in the checkpoint folder
        with task_session(folder, outer):
            pass
        assert kept.count() == 1000  # read after the inner task returned
        assert folder.checkpoints.exists()
    assert not folder.checkpoints.exists()


def test_a_nested_task_session_on_another_folder_restores_the_outer_checkpoint_folder(spark, tmp_path):
    outer_folder, inner_folder = RunFolder(tmp_path / "outer"), RunFolder(tmp_path / "inner")
    with task_session(outer_folder, spark):
        with task_session(inner_folder, spark):
            assert Path(checkpoint_dir(spark).removeprefix("file:")).is_relative_to(inner_folder.checkpoints)
        assert not inner_folder.checkpoints.exists()
        assert Path(checkpoint_dir(spark).removeprefix("file:")).is_relative_to(outer_folder.checkpoints)
        assert spark.range(10).checkpoint().count() == 10
    assert not outer_folder.checkpoints.exists()


def test_a_remote_run_folder_stages_small_files_and_lets_spark_write_matches_to_the_uri(spark, tmp_path):
    remote = tmp_path / "remote"
    (remote / "model").mkdir(parents=True)
    (remote / "model" / "splink_model.json").write_text("{}")
    uri = remote.as_uri()
    with open_run_folder(uri) as folder:
        assert folder.location == uri
        assert folder.root != remote and (folder.root / "model" / "splink_model.json").read_text() == "{}"
        assert folder.matches == f"{uri}/matches"
        spark.range(3).write.parquet(str(folder.matches))
        (folder.root / "summary.json").write_text(json.dumps({"outputs": {"matches": str(folder.matches), "model": str(folder.model)}}))
        staged = folder.root
    assert not staged.exists()
    assert spark.read.parquet(f"{uri}/matches").count() == 3
    assert json.loads((remote / "summary.json").read_text())["outputs"] == {"matches": f"{uri}/matches", "model": f"{uri}/model"}
    assert not (remote / "_checkpoints").exists() or list((remote / "_checkpoints").iterdir()) == []


def test_a_whole_staged_folder_holds_its_tables_locally_and_a_read_only_one_is_never_copied_back(spark, tmp_path):
    remote = tmp_path / "remote"
    spark.range(4).write.parquet(str(remote / "matches"))
    with open_run_folder(remote.as_uri(), whole=True, read_only=True) as folder:
        assert isinstance(folder.matches, Path) and folder.matches.is_dir()
        (folder.root / "summary.json").write_text("{}")
    assert not (remote / "summary.json").exists()


def test_a_failed_task_copies_nothing_back(spark, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    with pytest.raises(RuntimeError), open_run_folder(remote.as_uri()) as folder:
        (folder.root / "summary.json").write_text("{}")
        raise RuntimeError("task failed")
    assert not (remote / "summary.json").exists()


def test_a_missing_read_only_remote_folder_and_an_unknown_scheme_are_one_line_errors(spark, tmp_path):
    with pytest.raises(InputDataError, match=r"missing: run folder does not exist"), \
            open_run_folder((tmp_path / "missing").as_uri(), read_only=True):
        pass
    with pytest.raises(ConfigError, match=r"^nosuch://bucket/run: cannot open the run folder \("):
        with open_run_folder("nosuch://bucket/run"):
            pass


def test_a_local_run_folder_is_the_folder_itself(tmp_path):
    with open_run_folder(tmp_path / "run") as folder:
        assert folder.root == (tmp_path / "run").resolve() and folder.location == str(folder.root)
        assert folder.matches == folder.root / "matches"
