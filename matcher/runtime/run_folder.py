"""Run folders: where one transform's outputs live, and the Spark session a task runs in."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from pyspark.sql import SparkSession

from matcher.runtime.errors import ConfigError
from matcher.runtime.outputs import is_remote
from matcher.runtime.session import get_session

if TYPE_CHECKING:
    from matcher.config.transform import TransformConfig


@dataclass(frozen=True)
class RunFolder:
    """Where one transform's outputs live.

    ``checkpoint_dir``: Splink's scratch tables (default ``root/_checkpoints``).
    ``data_root``: a URI (``s3://...``) where Spark writes ``matches`` and ``pairs`` directly,
    while the small files stay in ``root`` (used by Glue jobs, see :mod:`matcher.glue_job`).
    """

    root: Path
    checkpoint_dir: str | None = None
    data_root: str | None = None

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def matches(self) -> Path | str:
        return f"{self.data_root.rstrip('/')}/matches" if self.data_root else self.root / "matches"

    @property
    def pairs(self) -> Path | str:
        return f"{self.data_root.rstrip('/')}/pairs" if self.data_root else self.root / "pairs"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def customers(self) -> Path:
        return self.root / "customers"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def checkpoints(self) -> Path | str:
        if self.checkpoint_dir:
            return self.checkpoint_dir if is_remote(self.checkpoint_dir) else Path(self.checkpoint_dir)
        return self.root / "_checkpoints"


def run_folder(config: TransformConfig, output: str | Path | None = None) -> RunFolder:
    """The run folder at ``output`` (default the config's ``output``), as an absolute local path."""
    root = output or config.output
    if is_remote(root):
        raise ConfigError(f"output {root}: remote run folders are not supported yet; use a local path")
    return RunFolder(Path(root).resolve())


@contextmanager
def task_session(folder: RunFolder, spark: SparkSession | None) -> Iterator[SparkSession]:
    """The session for one task, with Splink's intermediate tables checkpointed inside the
    run folder and removed when the task ends, whether or not it succeeded."""
    folder.root.mkdir(parents=True, exist_ok=True)
    try:
        if spark is None:
            spark = get_session(checkpoint_dir=folder.checkpoints)
        else:
            spark.sparkContext.setCheckpointDir(str(folder.checkpoints))
        yield spark
    finally:
        shutil.rmtree(folder.checkpoints, ignore_errors=True)
