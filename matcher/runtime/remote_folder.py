"""Remote run folders (``s3://``, any Hadoop URI) through Hadoop's FileSystem.

A remote run folder is staged: its small files (model, JSON, labels, report) are copied
into a local folder before a task and back after it succeeded, while Spark writes the
big tables straight to the URI (:data:`SPARK_WRITTEN`). Hadoop's local FileSystem serves
``file:///`` URIs, so the same code path runs without S3.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from pyspark.sql import SparkSession

from matcher.runtime.errors import InputDataError, MatcherError, StorageError
from matcher.runtime.outputs import is_remote
from matcher.runtime.session import get_session

log = logging.getLogger(__name__)

SPARK_WRITTEN = ("matches", "pairs", "_checkpoints")
"""Run-folder entries that Spark writes straight to a remote run folder (never staged)."""


def hadoop_error(err: Exception) -> str:
    """Hadoop's reason for a failure, on one line (a JVM error's first line only names the call)."""
    java = getattr(err, "java_exception", None)
    text = str(java.toString()) if java is not None else str(err)
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else type(err).__name__
    if "No FileSystem for scheme \"s3" in line:
        line += "; run `matcher s3-server fetch` once to add Spark's S3 connector"
    return line


def _hadoop_fs(spark: SparkSession, uri: str):
    """Hadoop's FileSystem for ``uri`` and the path; for local files the raw one, which neither
    writes nor checks ``.crc`` side files (staged JSON files are rewritten by Python)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(uri)
    if uri.startswith("file:"):
        return jvm.org.apache.hadoop.fs.FileSystem.getLocal(conf).getRaw(), path
    return path.getFileSystem(conf), path


def exists(path: str | Path) -> bool:
    """Whether a run-folder entry exists, local or remote."""
    if not is_remote(path):
        return Path(path).exists()
    fs, hadoop_path = _hadoop_fs(get_session(), str(path))
    return bool(fs.exists(hadoop_path))


def read_bytes(uri: str) -> bytes:
    """The whole file at ``uri`` (small files: a config, a label file) through Hadoop's FileSystem.
    A missing file is :class:`FileNotFoundError`; other failures keep Hadoop's error."""
    spark = get_session()
    fs, path = _hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(uri)
    stream = fs.open(path)
    try:
        return bytes(spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def as_uri(location: str | Path) -> str:
    """A local path as a ``file://`` URI; a URI as it is."""
    return str(location).rstrip("/") if is_remote(location) else Path(location).resolve().as_uri()


def list_entries(uri: str) -> list[tuple[str, bool]]:
    """The entries of folder ``uri`` as (name, is a folder), sorted by name; none when it does not exist."""
    fs, path = _hadoop_fs(get_session(), uri)
    if not fs.exists(path):
        return []
    return sorted((s.getPath().getName(), bool(s.isDirectory())) for s in fs.listStatus(path))


def write_text(uri: str, text: str) -> None:
    """Write a small text file (UTF-8) at ``uri``, replacing it."""
    fs, path = _hadoop_fs(get_session(), uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def move(source: str, target: str) -> None:
    """Move file ``source`` to ``target`` (same file system), replacing it: a rename locally,
    a copy then a delete on S3 (never lost, possibly briefly in both places)."""
    spark = get_session()
    fs, source_path = _hadoop_fs(spark, source)
    _, target_path = _hadoop_fs(spark, target)
    fs.mkdirs(target_path.getParent())
    fs.delete(target_path, False)
    if not fs.rename(source_path, target_path):
        raise StorageError(f"{source}: cannot move it to {target}")


@contextmanager
def readable_locally(location: str | Path) -> Iterator[Path]:
    """``location`` as a local path for the block: itself, or a remote file or folder (``s3://``)
    downloaded to a temporary folder. A missing remote one is a one-line :class:`InputDataError`."""
    if not is_remote(location):
        yield Path(location)
        return
    spark = get_session()
    fs, path = _hadoop_fs(spark, str(location))
    if not fs.exists(path):
        raise InputDataError(f"{location}: does not exist")
    with tempfile.TemporaryDirectory(prefix="matcher-in-") as folder:
        local = Path(folder) / path.getName()
        fs.copyToLocalFile(False, path, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(local.as_uri()), True)
        with _named_as(local, str(location)):
            yield local


@contextmanager
def writable_locally(location: str | Path) -> Iterator[Path]:
    """A local file to write ``location`` through: itself, or a temporary file uploaded to the
    remote ``location`` once the block succeeded."""
    if not is_remote(location):
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="matcher-out-") as folder:
        local = Path(folder) / str(location).rstrip("/").rsplit("/", 1)[-1]
        with _named_as(local, str(location)):
            yield local
        spark = get_session()
        fs, path = _hadoop_fs(spark, str(location))
        fs.copyFromLocalFile(False, True, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(local.as_uri()), path)


@contextmanager
def _named_as(local: Path, location: str) -> Iterator[None]:
    """A matcher error raised in the block names ``location``, not its local copy ``local``."""
    try:
        yield
    except MatcherError as err:
        raise type(err)(relocate(str(err), str(local), location)) from None


def remove(path: str | Path, *, strict: bool = False) -> None:
    """Delete a file or folder, local or remote; quietly, as cleanup must not mask a task's own
    outcome, unless ``strict`` (a one-line :class:`StorageError` naming ``path``)."""
    if not is_remote(path):
        import shutil

        target = Path(path)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=not strict)
        else:
            target.unlink(missing_ok=True)
        return
    try:
        fs, hadoop_path = _hadoop_fs(get_session(), str(path))
        fs.delete(hadoop_path, True)
    except Exception as err:  # noqa: BLE001
        if strict:
            raise StorageError(f"{path}: cannot remove ({hadoop_error(err)})") from None
        log.warning("could not remove %s", path)


def copy_children(spark: SparkSession, source: str, target: str, *, skip: Sequence[str] = (), last: Sequence[str] = ()) -> bool:
    """Copy every entry of folder ``source`` into folder ``target`` through Hadoop's FileSystem,
    replacing entries of the same name, the entries named in ``last`` after all others and in that
    order; False (nothing copied) when ``source`` does not exist."""
    source_fs, source_path = _hadoop_fs(spark, source)
    if not source_fs.exists(source_path):
        return False
    target_fs, target_path = _hadoop_fs(spark, target)
    target_fs.mkdirs(target_path)
    entries = [s for s in source_fs.listStatus(source_path) if s.getPath().getName() not in skip and not s.getPath().getName().startswith(".")]
    order = {name: i + 1 for i, name in enumerate(last)}
    for status in sorted(entries, key=lambda s: order.get(s.getPath().getName(), 0)):
        destination = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(target_path, status.getPath().getName())
        target_fs.delete(destination, True)
        _copy(spark, source_fs, status, target_fs, destination)
    log.info("copied run folder entries from %s to %s", source, target)
    return True


def _copy(spark: SparkSession, source_fs, status, target_fs, destination) -> None:
    """Copy a file, or a folder file by file: a store may keep a deleted folder's name for a while
    (SeaweedFS's S3 does), and Hadoop would then copy the folder *into* it."""
    if not status.isDirectory():
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileUtil.copy(source_fs, status.getPath(), target_fs, destination, False, True, conf)
        return
    target_fs.mkdirs(destination)
    for child in source_fs.listStatus(status.getPath()):
        if not child.getPath().getName().startswith("."):  # Hadoop's .crc side files
            _copy(spark, source_fs, child, target_fs, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(destination, child.getPath().getName()))


def relocate(value: Any, staged: str, uri: str) -> Any:
    """``value`` (JSON-like, or a message) with the staging folder ``staged`` replaced by ``uri`` in every string."""
    if isinstance(value, str):
        return value.replace(staged, uri)
    if isinstance(value, dict):
        return {k: relocate(v, staged, uri) for k, v in value.items()}
    if isinstance(value, list):
        return [relocate(v, staged, uri) for v in value]
    return value


def relocate_json_file(path: Path, staged: str, uri: str) -> None:
    """Rewrite the staging folder's paths in a staged JSON file to the remote run folder."""
    if path.exists():
        data = relocate(json.loads(path.read_text(encoding="utf-8")), staged, uri)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
