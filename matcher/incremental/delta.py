"""The delta of an incremental run: the new records and the delete list, read, validated and checked
against the existing run's keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from matcher.config.transform import InputSpec, TransformConfig
from matcher.harmonize.harmonization import Harmonized, harmonize
from matcher.harmonize.ingest import WHOLE_NUMBER, check_key_counts, read_inputs, unreadable
from matcher.runtime.errors import InputDataError
from matcher.runtime.remote_folder import readable_locally


def _format_of(path: str, config: TransformConfig) -> str:
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(suffix, config.inputs[0].format)


def read_new_records(
    spark: SparkSession, config: TransformConfig, path: str, key_type: pa.DataType, columns: list[str]
) -> tuple[pd.DataFrame, StructType]:
    """The new records' ``columns``, collected to the driver in one Spark job, and their Spark schema.

    Validated like any input (configured columns present, keys non-null and unique), with
    keys typed like the existing run's.
    """
    spec = config.inputs[0]
    fmt = _format_of(path, config)
    new_spec = InputSpec(name=spec.name, path=str(path), format=fmt, options=spec.options if fmt == spec.format else {})
    df = read_inputs(spark, config.model_copy(update={"inputs": [new_spec]}), check_keys=False).select(*columns)
    try:
        new = df.toPandas()
    except (PySparkException, Py4JJavaError) as err:  # a file that opened but whose rows do not parse
        raise unreadable(new_spec, err) from None
    key = config.primary_key
    keys = new[key]

    def repeated() -> list[tuple[Any, int]]:
        counts = keys.value_counts()
        return list(counts[counts > 1].sort_index().items())

    check_key_counts(new_spec, key, len(new), int(keys.notna().sum()), int(keys.nunique()), repeated)
    text = keys.astype(str)
    if pa.types.is_integer(key_type):
        if not text.str.fullmatch(WHOLE_NUMBER).all():
            raise InputDataError(f"{path}: primary key {key!r} must hold whole numbers, like the existing run's keys")
        new[key], key_field = text.astype("int64"), LongType()
    else:
        new[key], key_field = text, StringType()
    schema = StructType([StructField(key, key_field, True) if f.name == key else f for f in df.schema])
    return new, schema


def harmonize_new_records(spark: SparkSession, config: TransformConfig, paths: Mapping[str, str]) -> Harmonized:
    """The sources named in ``paths``, read from those paths, standardized and split by the quality gate."""
    sources = [s.model_copy(update={"path": paths[s.name]}) for s in config.sources or [] if s.name in paths]
    return harmonize(spark, config.model_copy(update={"sources": sources}))


def read_delete_list(path: str, key: str, key_type: pa.DataType) -> pd.Series:
    """The primary keys to delete (a CSV with a header, or Parquet, holding column ``key``)."""
    if "://" not in path and not Path(path).exists():
        raise InputDataError(f"{path}: delete list does not exist")
    try:
        with readable_locally(path) as local:  # a list on S3 is read from a local copy
            if local.suffix.lower() == ".csv":
                table = pd.read_csv(local, dtype=str, keep_default_na=False)
            else:
                table = pd.read_parquet(local)
    except InputDataError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure is one input error
        raise InputDataError(f"{path}: cannot read delete list ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if key not in table.columns:
        raise InputDataError(f"{path}: delete list has no column {key!r} (has: {', '.join(map(str, table.columns)) or 'no columns'})")
    return typed_keys(table[key], key_type, path)


def typed_keys(keys: pd.Series, key_type: pa.DataType, where: str) -> pd.Series:
    """Primary keys to remove, typed like the run's ``key_type``: none empty, whole numbers for
    integer keys, none twice; ``where`` names their origin in errors."""
    if keys.isna().any() or (keys.astype(str).str.strip() == "").any():
        raise InputDataError(f"{where}: {int((keys.isna() | (keys.astype(str).str.strip() == '')).sum())} empty key(s)")
    if pa.types.is_integer(key_type):
        numbers = pd.to_numeric(keys, errors="coerce")
        bad = keys[numbers.isna() | (numbers != numbers.round())]
        if len(bad):
            raise InputDataError(f"{where}: key(s) {', '.join(map(str, bad[:5]))} are not whole numbers like the existing keys")
        keys = numbers.astype("int64")
    else:
        keys = keys.astype(str)
    repeated = keys[keys.duplicated()]
    if len(repeated):
        raise InputDataError(f"{where}: key(s) {', '.join(map(str, repeated.unique()[:5]))} listed more than once")
    return keys.reset_index(drop=True)


@dataclass(frozen=True)
class Removals:
    """The existing records whose current version goes, with their pairs."""

    updated: pd.Series  # keys of new records that are new versions of existing records
    keys: set  # the updated and the deleted keys


@dataclass(frozen=True)
class Delta:
    """The new records (new versions of existing ones among them) and the keys to delete."""

    new_path: str | Mapping[str, str] | None  # None: no new records (an erasure)
    delete_path: str | None
    new: pd.DataFrame  # the existing run's input columns, keys typed like its keys
    schema: StructType  # the new records' Spark schema
    deleted: pd.Series  # the keys to delete
    harmonized: Harmonized | None  # the harmonized new rows, for a ``sources:`` config

    @classmethod
    def erasing(cls, keys: pd.Series, key: str, key_type: pa.DataType, columns: list[str], what: str) -> Delta:
        """A delta of no new records that deletes ``keys`` (typed like ``key_type``); ``what`` names them in errors."""
        integral = pa.types.is_integer(key_type)
        new = pd.DataFrame({c: pd.Series(dtype="int64" if c == key and integral else object) for c in columns})
        return cls(None, what, new, StructType([]), keys, None)

    def removals(self, known: pd.Index, key: str) -> Removals:
        """The existing records (``known`` keys) this delta removes; every key to delete must be
        known and not also a new record's."""
        missing = self.deleted[~self.deleted.isin(known)]
        if len(missing):
            raise InputDataError(f"{self.delete_path}: {len(missing)} key(s) to delete are not in the existing run: {', '.join(map(str, missing[:5]))}")
        both = self.deleted[self.deleted.isin(self.new[key])]
        if len(both):
            raise InputDataError(f"{self.delete_path}: key(s) {', '.join(map(str, both[:5]))} are both deleted and in {self.new_path}")
        updated = self.new[key][self.new[key].isin(known)]
        return Removals(updated, set(self.deleted.tolist()) | set(updated.tolist()))


def read_delta(
    spark: SparkSession, config: TransformConfig, new_path: str | Mapping[str, str], delete_path: str | None,
    key_type: pa.DataType, columns: list[str],
) -> Delta:
    """Read the new records' ``columns`` (harmonized for a ``sources:`` config, whose ``new_path``
    maps source names to files) and the delete list, with keys typed like ``key_type``."""
    harmonized = None
    if isinstance(new_path, Mapping):
        harmonized = harmonize_new_records(spark, config, new_path)
        # pass-through columns of sources without new rows are null for the new rows
        new_df = harmonized.rows.select(*(
            c if c in harmonized.rows.columns else F.lit(None).cast("string").alias(c) for c in columns
        ))
        new, schema = new_df.toPandas(), new_df.schema
    else:
        new, schema = read_new_records(spark, config, new_path, key_type, columns)
    deleted = read_delete_list(delete_path, config.primary_key, key_type) if delete_path else pd.Series([], dtype=object)
    return Delta(new_path, delete_path, new, schema, deleted, harmonized)
