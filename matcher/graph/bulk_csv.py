"""Neptune bulk-loader CSV: the same graph the Gremlin writer produces, as files for an initial load.

``export_bulk_csv`` writes into a folder, per label, ``vertices-<Label>.csv`` (``~id``,
``~label``, then ``name:Type`` columns) and ``edges-<label>.csv`` (``~id``, ``~from``,
``~to``, ``~label``, ``name:Type``). Types: ``String``, ``Long``, ``Double``, ``Bool``; an
empty cell is a missing property. Copy the folder to S3 and start a Neptune bulk load
(format ``csv``). The loader only inserts: later changes go through the Gremlin writer.

Cells are written verbatim, not escaped against spreadsheet formulas as labeling files are
(:func:`matcher.labels.files.escape_cell`): Neptune reads RFC 4180 CSV and stores each cell
as it is, with no convention that drops a leading ``'``, so an escape would change the
loaded ids and values (record ``-5`` would become ``'-5``, a value ``+447700900001``
``'+447700900001``) and break ``~from``/``~to`` references. These files are for the loader;
open one in a spreadsheet only as text, with formulas off.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from pyspark.sql import DataFrame

from matcher.graph.model import cluster_elements
from matcher.graph.writer import cluster_from_row
from matcher.runtime.outputs import atomic_directory

_TYPES = {bool: "Bool", int: "Long", float: "Double", str: "String"}
_RANK = {"Bool": 0, "Long": 1, "Double": 2, "String": 3}


def _elements(rows: Iterator[Any], salt: str | None, same_as: bool) -> Iterator[tuple]:
    for row in rows:
        vertices, edges = cluster_elements(cluster_from_row(row), salt=salt, same_as=same_as)
        for v in vertices:
            yield ("vertex", v.label, v.id, None, None, json.dumps(v.properties, sort_keys=True))
        for e in edges:
            yield ("edge", e.label, e.id, e.out_id, e.in_id, json.dumps(e.properties, sort_keys=True))


def _type_of(value: Any) -> str:
    return _TYPES.get(type(value), "String")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_bulk_csv(table: DataFrame, folder: str | Path, *, salt: str | None = None, same_as: bool = True) -> dict[str, int]:
    """Write the graph of a :func:`~matcher.graph.writer.cluster_table` as Neptune CSV files; rows per file."""
    spark = table.sparkSession
    elements = spark.createDataFrame(
        table.rdd.mapPartitions(lambda rows: _elements(rows, salt, same_as)),
        "kind string, label string, id string, out_id string, in_id string, props string",
    ).dropDuplicates(["kind", "id"])
    elements = elements.cache()
    # one pass for the property names and types per label (small: labels x properties)
    types: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    keys = elements.rdd.flatMap(
        lambda r: [((r.kind, r.label), (k, _type_of(v))) for k, v in json.loads(r.props).items() if v is not None] or
        [((r.kind, r.label), None)]
    ).distinct().collect()
    for group, entry in keys:
        types[group]
        if entry is not None:
            name, kind = entry
            known = types[group].get(name)
            types[group][name] = kind if known is None or _RANK[kind] > _RANK[known] else known
    counts: dict[str, int] = {}
    with atomic_directory(folder) as tmp:
        for (kind, label), props in sorted(types.items()):
            names = sorted(props)
            if kind == "vertex":
                name, header = f"vertices-{label}.csv", ["~id", "~label"]
            else:
                name, header = f"edges-{label}.csv", ["~id", "~from", "~to", "~label"]
            header += [f"{p}:{props[p]}" for p in names]
            rows = elements.where((elements.kind == kind) & (elements.label == label)).orderBy("id")
            n = 0
            with open(tmp / name, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(header)
                for r in rows.toLocalIterator():
                    values = json.loads(r.props)
                    ends = [r.id, r.label] if kind == "vertex" else [r.id, r.out_id, r.in_id, r.label]
                    writer.writerow(ends + [_cell(values.get(p)) for p in names])
                    n += 1
            counts[name] = n
    elements.unpersist()
    return counts


def read_bulk_csv(folder: str | Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Read Neptune CSV files back: vertices and edges by id, with typed properties (for checks)."""
    parse = {"String": str, "Long": int, "Double": float, "Bool": lambda s: s == "true"}
    vertices: dict[str, dict] = {}
    edges: dict[str, dict] = {}
    for path in sorted(Path(folder).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            for row in reader:
                cells = dict(zip(header, row))
                props = {}
                for column, cell in cells.items():
                    if column.startswith("~") or cell == "":
                        continue
                    name, kind = column.rsplit(":", 1)
                    props[name] = parse[kind](cell)
                if "~from" in cells:
                    edges[cells["~id"]] = {"label": cells["~label"], "from": cells["~from"], "to": cells["~to"], "properties": props}
                else:
                    vertices[cells["~id"]] = {"label": cells["~label"], "properties": props}
    return vertices, edges
