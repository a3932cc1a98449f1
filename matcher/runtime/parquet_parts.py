"""Rewrite a folder of Parquet part files with pyarrow: link what did not change, rewrite what did.

The files written here sit beside Spark's and are read back by Spark as one table, so they
store timestamps the way the folder's existing files do: Spark writes INT96 by default
(``spark.sql.parquet.outputTimestampType``), pyarrow INT64, and Spark refuses a folder that
mixes the two for one column.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from matcher.runtime.errors import MatcherError
from matcher.runtime.outputs import atomic_directory, check_matcher_written, sync_directory


def _link_or_copy(source: str, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def writer_options(dataset: ds.Dataset) -> dict:
    """``pq.write_table`` options that store timestamps like ``dataset``'s first part file (INT96 or INT64)."""
    for fragment in dataset.get_fragments():
        schema = fragment.metadata.schema
        int96 = any(schema.column(i).physical_type == "INT96" for i in range(len(schema)))
        return {"use_deprecated_int96_timestamps": int96}
    return {}


def rewrite_parquet_folder(
    dataset: ds.Dataset,
    target: Path,
    key_columns: list[str],
    drop: set,
    update: Callable[[pa.Table], pa.Table] | None,
    touched: set,
    added: list[pa.Table],
) -> None:
    """Write ``target`` from ``dataset``'s part files: untouched files are hard-linked, files holding a
    key in ``drop`` or ``touched`` are rewritten (rows dropped, ``update`` applied), on one thread
    per core; ``added`` become new files."""
    affected = drop | touched
    options = writer_options(dataset)

    def rewrite(fragment: ds.ParquetFileFragment, tmp: Path) -> None:
        name = Path(fragment.path).name
        keys = fragment.to_table(columns=key_columns)
        hits = [pc.is_in(keys[c], value_set=pa.array(list(affected), type=keys.schema.field(c).type)) for c in key_columns] if affected else []
        if not hits or not any(pc.any(h).as_py() for h in hits):
            _link_or_copy(fragment.path, tmp / name)
            return
        table = pq.read_table(fragment.path)
        if drop:
            gone = [pc.is_in(table[c], value_set=pa.array(list(drop), type=table.schema.field(c).type)) for c in key_columns]
            mask = gone[0]
            for g in gone[1:]:
                mask = pc.or_(mask, g)
            table = table.filter(pc.invert(mask))
        if update is not None:
            table = update(table)
        pq.write_table(table, tmp / name, **options)

    check_matcher_written(target)
    with atomic_directory(target) as tmp, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda fragment: rewrite(fragment, tmp), dataset.get_fragments()))
        for i, table in enumerate(added):
            if table.num_rows:
                pq.write_table(table, tmp / f"part-incremental-{i:05d}-{uuid.uuid4().hex[:8]}.parquet", **options)


def write_parquet_parts(table: pa.Table, target: Path, like: ds.Dataset) -> None:
    """Write ``table`` into ``target`` as one Parquet part file per core, on one thread each,
    timestamps stored like ``like``'s (:func:`writer_options`)."""
    parts = os.cpu_count() or 1
    size = -(-table.num_rows // parts) or 1
    options = writer_options(like)

    def write(i: int) -> None:
        pq.write_table(table.slice(i * size, size), tmp / f"part-{i:05d}.parquet", **options)

    check_matcher_written(target)
    with atomic_directory(target) as tmp, ThreadPoolExecutor(max_workers=parts) as pool:
        list(pool.map(write, range(parts)))


def as_table(frame: pd.DataFrame, schema: pa.Schema, what: str) -> pa.Table:
    """``frame``'s columns of ``schema``, cast to it (metadata kept), or an error naming the missing columns."""
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise MatcherError(f"{what}: column(s) {', '.join(missing)} of the existing run are not produced for the new records")
    table = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
    return table.replace_schema_metadata(None).cast(schema.remove_metadata()).replace_schema_metadata(schema.metadata)


def append_durable_part(table: pa.Table, folder: Path, like: ds.Dataset, prefix: str) -> Path:
    """Add ``table`` to the Parquet folder ``folder`` as one more part file, durably: written to a hidden
    temporary file (readers skip hidden files), flushed to disk, renamed into place and the folder
    flushed, so the part is either absent or whole after a crash. Timestamps are stored like ``like``'s."""
    name = f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    temporary, final = folder / f".{name}.tmp", folder / name
    with open(temporary, "wb") as sink:
        pq.write_table(table, sink, **writer_options(like))
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(temporary, final)
    sync_directory(folder)
    return final
