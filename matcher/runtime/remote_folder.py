"""Remote run folders (``s3://``, any Hadoop URI) through Hadoop's FileSystem.

A remote run folder is staged: its small files (model, JSON, labels, report) are copied
into a local folder before a task and back after it succeeded, while Spark writes the
big tables straight to the URI (:data:`SPARK_WRITTEN`). Hadoop's local FileSystem serves
``file:///`` URIs, so the same code path runs without S3.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from pyspark.sql import SparkSession

from matcher.runtime.outputs import is_remote
from matcher.runtime.session import get_session

log = logging.getLogger(__name__)

SPARK_WRITTEN = ("matches", "pairs", "_checkpoints")
"""Run-folder entries that Spark writes straight to a remote run folder (never staged)."""


def hadoop_error(err: Exception) -> str:
    """Hadoop's reason for a failure, on one line (a JVM error's first line only names the call)."""
    java = getattr(err, "java_exception", None)
    text = str(java.toString()) if java is not None else str(err)
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else type(err).__name__


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


def remove(path: str | Path) -> None:
    """Delete a folder, local or remote, quietly: cleanup must not mask a task's own outcome."""
    if not is_remote(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        fs, hadoop_path = _hadoop_fs(get_session(), str(path))
        fs.delete(hadoop_path, True)
    except Exception:  # noqa: BLE001
        log.warning("could not remove %s", path)


def copy_children(spark: SparkSession, source: str, target: str, *, skip: Sequence[str] = ()) -> bool:
    """Copy every entry of folder ``source`` into folder ``target`` through Hadoop's FileSystem,
    replacing entries of the same name; False (nothing copied) when ``source`` does not exist."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    source_fs, source_path = _hadoop_fs(spark, source)
    if not source_fs.exists(source_path):
        return False
    target_fs, target_path = _hadoop_fs(spark, target)
    target_fs.mkdirs(target_path)
    for status in source_fs.listStatus(source_path):
        name = status.getPath().getName()
        if name in skip or name.startswith("."):
            continue
        destination = jvm.org.apache.hadoop.fs.Path(target_path, name)
        target_fs.delete(destination, True)
        jvm.org.apache.hadoop.fs.FileUtil.copy(source_fs, status.getPath(), target_fs, destination, False, True, conf)
    log.info("copied run folder entries from %s to %s", source, target)
    return True


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
