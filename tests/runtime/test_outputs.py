"""Staged Parquet outputs: written early, read back, moved into place last."""

from __future__ import annotations

import pytest

from matcher.runtime.errors import ConfigError
from matcher.runtime.outputs import StagedParquet, write_parquet


def test_a_staged_folder_is_read_back_and_replaces_the_old_one_only_when_published(spark, tmp_path):
    target = tmp_path / "pairs"
    write_parquet(spark.range(3).toDF("id"), target)  # an earlier run's output
    staged = StagedParquet(target)
    written = staged.write(spark.range(10).toDF("id"))
    assert sorted(r.id for r in written.collect()) == list(range(10))
    assert spark.read.parquet(str(target)).count() == 3, "the old folder stays until published"
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".pairs.tmp-")]
    assert len(hidden) == 1
    staged.publish()
    assert sorted(r.id for r in spark.read.parquet(str(target)).collect()) == list(range(10))
    assert [p.name for p in tmp_path.iterdir()] == ["pairs"]
    staged.discard()  # after publishing: nothing left to remove
    assert spark.read.parquet(str(target)).count() == 10


def test_a_discarded_staged_folder_leaves_the_old_output_and_no_trace(spark, tmp_path):
    target = tmp_path / "pairs"
    write_parquet(spark.range(3).toDF("id"), target)
    staged = StagedParquet(target)
    staged.write(spark.range(10).toDF("id"))
    staged.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["pairs"]
    assert spark.read.parquet(str(target)).count() == 3


def test_a_users_file_in_the_target_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "pairs"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not written by the matcher"):
        StagedParquet(target)
    assert [p.name for p in tmp_path.iterdir()] == ["pairs"]
