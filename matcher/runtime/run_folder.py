"""Run folders: where one transform's outputs live, and the Spark session a task runs in."""

from __future__ import annotations

import functools
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

from pyspark.sql import SparkSession

from matcher.runtime.errors import ConfigError, InputDataError
from matcher.runtime.outputs import check_matcher_written, is_remote, sync_directory
from matcher.runtime.remote_folder import SPARK_WRITTEN, copy_children, hadoop_error, relocate, relocate_json_file, remove
from matcher.runtime.remote_lock import remote_run_folder_lock
from matcher.runtime.run_lock import held_here, run_folder_lock
from matcher.runtime.session import get_session


class HasOutput(Protocol):
    """What a run folder needs of a transform's configuration: its default ``output``."""

    output: str


@dataclass(frozen=True)
class RunFolder:
    """Where one transform's outputs live.

    ``checkpoint_dir``: Splink's scratch tables (default ``root/_checkpoints``).
    ``uri``: for a remote run folder (:func:`open_run_folder`), where it really is; ``root``
    is then its local staging copy.
    ``data_root``: a URI (``s3://...``) where Spark writes ``matches`` and ``pairs`` directly,
    while the small files stay in ``root``.
    """

    root: Path
    checkpoint_dir: str | None = None
    data_root: str | None = None
    uri: str | None = None

    @property
    def location(self) -> str:
        """Where the run folder really is: its URI when remote, else its path (for messages)."""
        return self.uri or str(self.root)

    def where(self, entry: str) -> str:
        """The real location of a run-folder entry (for messages)."""
        return f"{self.uri}/{entry}" if self.uri else str(self.root / entry)

    def located(self, value: Any) -> Any:
        """``value`` (JSON-like) with the staging copy's paths pointing at the real location."""
        return relocate(value, str(self.root), self.uri) if self.uri else value

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
    def completion_markers(self) -> tuple[Path, ...]:
        """What makes the folder look complete, ``summary.json`` first (every reader requires it)."""
        return self.summary, self.metrics, self.report

    @property
    def replaced_tables(self) -> list[Path]:
        """The local Parquet folders a match replaces."""
        return [p for p in (self.matches, self.pairs, self.quarantine, self.customers) if isinstance(p, Path)]

    @property
    def checkpoints(self) -> Path | str:
        if self.checkpoint_dir:
            return self.checkpoint_dir if is_remote(self.checkpoint_dir) else Path(self.checkpoint_dir)
        return self.root / "_checkpoints"


def run_folder(config: HasOutput, output: str | Path | None = None) -> RunFolder:
    """The local run folder ``output`` (default: the config's); open a remote one with :func:`open_run_folder`."""
    root = output or config.output
    if is_remote(root):
        raise ConfigError(f"output {root}: a remote run folder must be opened with open_run_folder")
    return RunFolder(Path(root).resolve())


@contextmanager
def open_run_folder(
    location: str | Path, *, scratch: str | None = None, name: str = "matcher", whole: bool = False, read_only: bool = False,
) -> Iterator[RunFolder]:
    """The run folder at ``location``, local or remote (``s3://``, any Hadoop URI), for one task.

    Remote: the small files are staged in a local folder, copied from ``location`` before the
    task and back after it succeeded (never for ``read_only``); Spark writes ``matches`` and
    ``pairs`` straight to the URI, unless ``whole`` (a task that reads and writes its tables in
    the driver) stages them too. Splink's checkpoints go to a unique ``name-XXXXXXXX`` folder under
    ``scratch`` (default ``location/_checkpoints`` when remote), removed at the end.
    A remote folder that cannot be reached, or a missing ``read_only`` one, is a one-line error.
    """
    remote = is_remote(location)
    uri = str(location).rstrip("/") if remote else None
    scratch = None if read_only else scratch or (f"{uri}/_checkpoints" if remote else None)
    if not remote and scratch is None:
        yield RunFolder(Path(location).resolve())
        return
    spark = get_session()
    checkpoints = f"{scratch.rstrip('/')}/{name}-{uuid.uuid4().hex[:8]}" if scratch else None
    staging = Path(tempfile.mkdtemp(prefix="matcher-run-")) if remote else None
    if remote:
        folder = RunFolder(staging, data_root=None if whole else uri, uri=uri)
    else:
        folder = RunFolder(Path(location).resolve())
    folder = replace(folder, checkpoint_dir=checkpoints)
    try:
        if remote:
            _stage(spark, folder, skip=("_checkpoints",) if whole else SPARK_WRITTEN, read_only=read_only)
        yield folder
        if remote and not read_only:
            for entry in ("summary.json", "metrics.json"):
                relocate_json_file(staging / entry, str(staging), uri)
            # the completion markers last, summary.json at the very end: until then the folder looks incomplete
            markers = [marker.name for marker in reversed(folder.completion_markers)]
            copy_children(spark, f"file://{staging}", uri, skip=("_checkpoints",), last=markers)
    finally:
        if checkpoints:
            remove(checkpoints)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _stage(spark: SparkSession, folder: RunFolder, *, skip: Sequence[str], read_only: bool) -> None:
    try:
        found = copy_children(spark, folder.uri, f"file://{folder.root}", skip=skip)
    except Exception as err:  # noqa: BLE001 - Hadoop's errors are long; one line says it
        raise ConfigError(f"{folder.uri}: cannot open the run folder ({hadoop_error(err)})") from None
    if read_only and not found:
        raise InputDataError(f"{folder.uri}: run folder does not exist")


def _make_root(root: Path) -> None:
    """Create the run folder ``root``, or a one-line error naming what is in the way."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: is a file, not a run folder; choose another --output")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except NotADirectoryError:
        blocking = next(p for p in reversed(root.parents) if p.exists() and not p.is_dir())
        raise ConfigError(f"{root}: cannot create the run folder, {blocking} is a file") from None
    except OSError as err:
        raise ConfigError(f"{root}: cannot create the run folder, not writable ({err.strerror})") from None


@contextmanager
def claim_run_folder(folder: RunFolder, *, replaces: bool = False) -> Iterator[RunFolder]:
    """Create ``folder`` and hold its lock (:mod:`matcher.runtime.run_lock`) while the block runs.

    ``replaces``: the task rewrites the outputs. Unless a task of this process already holds the
    folder, its Parquet folders must hold only the matcher's files, and the completion markers are
    removed before any work, so a run killed half-way never looks complete. A remote folder is
    locked where it is (:mod:`matcher.runtime.remote_lock`), and a replacing task removes the
    markers there too (its local staging copy is private to the task)."""
    if folder.uri:
        with remote_run_folder_lock(folder.uri):
            if replaces:
                retract_completion(folder)
            yield folder
        return
    _make_root(folder.root)
    outermost = not held_here(folder.root)
    with run_folder_lock(folder.root):
        if replaces and outermost:
            for table in folder.replaced_tables:
                check_matcher_written(table)
            retract_completion(folder)
        yield folder


def retract_completion(folder: RunFolder) -> None:
    """Remove the completion markers durably (the folder is flushed) before outputs are rewritten;
    a remote folder's from both its staging copy and its URI."""
    if folder.uri:
        for marker in folder.completion_markers:
            remove(folder.where(marker.name), strict=True)
    removed = False
    for marker in folder.completion_markers:
        try:
            marker.unlink()
            removed = True
        except FileNotFoundError:
            pass
    if removed:
        sync_directory(folder.root)


Task = TypeVar("Task", bound=Callable[..., Any])


def replaces_outputs(task: Task) -> Task:
    """Decorate a task ``task(config, folder, ...)`` that rewrites ``folder``'s outputs:
    it runs under :func:`claim_run_folder` with ``replaces``."""

    @functools.wraps(task)
    def claimed(config: Any, folder: RunFolder, *args: Any, **kwargs: Any) -> Any:
        with claim_run_folder(folder, replaces=True):
            return task(config, folder, *args, **kwargs)

    return claimed  # type: ignore[return-value]


_open_checkpoints: list[str] = []
"""The checkpoint folders of the task sessions open in this process, innermost last."""


@contextmanager
def task_session(folder: RunFolder, spark: SparkSession | None, *, input_bytes: int | None = None) -> Iterator[SparkSession]:
    """The session for one task, with Splink's intermediate tables checkpointed inside the
    run folder and removed when the task ends, whether or not it succeeded. A session started
    here is sized for ``input_bytes`` of input when known (:func:`~matcher.runtime.session.local_session`).

    Tasks nest (``run`` trains and matches): an inner session on the same checkpoint folder
    leaves it to the outermost one, which removes it; an inner session on another folder
    removes its own and points Spark back at the outer one's.

    The folder is claimed (:func:`claim_run_folder`) before Spark starts: another process
    working in it, or a folder that cannot be written, is a one-line error."""
    with claim_run_folder(folder):
        checkpoints = str(folder.checkpoints)
        spark = spark or get_session(input_bytes=input_bytes)
        if not _open_checkpoints or _open_checkpoints[-1] != checkpoints:
            spark.sparkContext.setCheckpointDir(checkpoints)
        _open_checkpoints.append(checkpoints)
        try:
            yield spark
        finally:
            _open_checkpoints.pop()
            if checkpoints not in _open_checkpoints:
                remove(checkpoints)
            if _open_checkpoints and _open_checkpoints[-1] != checkpoints:
                spark.sparkContext.setCheckpointDir(_open_checkpoints[-1])
