"""Atomic outputs: a run writes into a temporary sibling folder, then renames it into place.

A crashed run therefore leaves no folder that looks complete. Remote URIs (``s3://``)
cannot be renamed atomically; there Spark's committer and its ``_SUCCESS`` marker apply.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pyspark.sql import DataFrame

from matcher.runtime.errors import ConfigError, MatcherError

_MATCHER_PART = re.compile(r"\.?(part-.+|_SUCCESS(\.crc)?)")
"""What the matcher writes into a Parquet folder: Spark's and the service's part files
(``part-*``, ``part-serve-*``), ``_SUCCESS``, their ``.crc`` files and a crashed append's hidden
``.part-*.tmp``."""


def check_matcher_written(target: str | Path) -> None:
    """Refuse to replace the local Parquet folder ``target`` when it holds anything the matcher
    did not write (a user's own file would be deleted with it): a one-line error naming it."""
    target = Path(target)
    if is_remote(target) or not target.is_dir():
        return
    for entry in sorted(target.iterdir()):
        if not (_MATCHER_PART.fullmatch(entry.name) and entry.is_file()):
            raise ConfigError(
                f"{entry}: not written by the matcher; move it out of {target} (a run replaces that folder)"
            )


def sync_directory(path: str | Path) -> None:
    """Flush a local folder's entries (creations, renames, removals) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def is_remote(path: str | Path) -> bool:
    return "://" in str(path)


def _temporary_sibling(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _move_into_place(tmp: Path, target: Path) -> None:
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it replaces ``target``."""
    target = Path(target)
    tmp = _temporary_sibling(target)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _move_into_place(tmp, target)


def _write(df: DataFrame, path: str | Path, target: str | Path) -> None:
    try:
        df.write.mode("overwrite").parquet(str(path))
    except Exception as err:  # noqa: BLE001 - Spark's error buries the cause in a Java trace
        if "No space left on device" in str(err):
            raise MatcherError(f"{target}: no space left on the device; the folder was not replaced") from None
        raise


def write_parquet(df: DataFrame, target: str | Path) -> None:
    """Write ``df`` as a Parquet folder at ``target``, atomically for local paths
    (refused when the folder holds a file the matcher did not write)."""
    if is_remote(target):
        _write(df, target, target)
        return
    check_matcher_written(target)
    with atomic_directory(target) as tmp:
        _write(df, tmp, target)


class StagedParquet:
    """A Parquet output written early and read back, then moved into place once the outputs
    that read it are written: the scored pairs are written as they are scored, and clustering
    reads its few columns from the files instead of from a copy of every column in memory.

    Locally the folder is written next to ``target`` (hidden) and :meth:`publish` renames it
    into place, so a crash still leaves no folder that looks complete; a remote ``target`` is
    written in place. :meth:`discard` removes what was not published.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = target
        self._staged: Path | None = None
        if not is_remote(target):
            check_matcher_written(target)

    def write(self, df: DataFrame) -> DataFrame:
        """Write ``df`` to the staging folder; the written rows, read back."""
        if is_remote(self.target):
            _write(df, self.target, self.target)
            return df.sparkSession.read.parquet(str(self.target))
        self._staged = _temporary_sibling(Path(self.target))
        _write(df, self._staged, self.target)
        return df.sparkSession.read.parquet(str(self._staged))

    def publish(self) -> None:
        """Replace ``target`` with the written folder (a frame read back from it no longer reads)."""
        if self._staged is not None:
            _move_into_place(self._staged, Path(self.target))
            self._staged = None

    def discard(self) -> None:
        """Remove the written folder unless it was published."""
        if self._staged is not None:
            shutil.rmtree(self._staged, ignore_errors=True)
            self._staged = None


def write_json(obj: Any, target: str | Path) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, target)
