"""Atomic outputs: a run writes into a temporary sibling folder, then renames it into place.

A crashed run therefore leaves no folder that looks complete. Remote URIs (``s3://``)
cannot be renamed atomically; there Spark's committer and its ``_SUCCESS`` marker apply.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pyspark.sql import DataFrame


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
    """Write ``df`` as a Parquet folder at ``target``, atomically for local paths."""
    if is_remote(target):
        df.write.mode("overwrite").parquet(str(target))
        return
    with atomic_directory(target) as tmp:
        df.write.mode("overwrite").parquet(str(tmp))


def write_json(obj: Any, target: str | Path) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, target)
