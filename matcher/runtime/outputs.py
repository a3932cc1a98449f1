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


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


def write_parquet(df: DataFrame, target: str | Path) -> None:
    """Write ``df`` as a Parquet folder at ``target``, atomically for local paths
    (refused when the folder holds a file the matcher did not write)."""
    if is_remote(target):
        df.write.mode("overwrite").parquet(str(target))
        return
    check_matcher_written(target)
    with atomic_directory(target) as tmp:
        try:
            df.write.mode("overwrite").parquet(str(tmp))
        except Exception as err:  # noqa: BLE001 - Spark's error buries the cause in a Java trace
            if "No space left on device" in str(err):
                raise MatcherError(f"{target}: no space left on the device; the folder was not replaced") from None
            raise


def write_json(obj: Any, target: str | Path) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, target)
