"""The model artifact (Splink JSON + metadata) and the Splink linker built around a DataFrame."""

from __future__ import annotations

import json
import platform
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from splink import Linker, SettingsCreator, SparkAPI

from matcher.config.harmonization import SOURCE_SYSTEM
from matcher.config.transform import TransformConfig
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, comparable, splink_settings
from matcher.model.postcode import resolve_formats, with_formats
from matcher.model.splink_adapter import Settings, register_term_frequencies
from matcher.runtime.errors import ModelError
from matcher.runtime.outputs import atomic_directory
from matcher.runtime.session import broadcasts_allowed

MODEL_FILE = "splink_model.json"
METADATA_FILE = "metadata.json"


def versions() -> dict[str, str]:
    import pyspark
    import splink

    from matcher import __version__

    return {"matcher": __version__, "splink": splink.__version__, "pyspark": pyspark.__version__, "python": platform.python_version()}


@dataclass
class TrainedModel:
    """A trained Splink model with the config hash and training facts that produced it."""

    splink_model: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """Write ``splink_model.json`` and ``metadata.json`` into ``folder`` atomically."""
        with atomic_directory(folder) as tmp:
            (tmp / MODEL_FILE).write_text(json.dumps(self.splink_model, indent=2), encoding="utf-8")
            (tmp / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True), encoding="utf-8")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, config: TransformConfig | None = None) -> "TrainedModel":
        """Read a saved model; with ``config``, refuse a model trained for another configuration."""
        folder = Path(folder)
        try:
            splink_model = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
            metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ModelError(f"{folder}: no trained model here ({Path(err.filename).name} missing); run 'matcher train' first") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"{folder}: model artifact is corrupt ({err})") from None
        model = cls(splink_model, metadata)
        if config is not None and not model.fits(config):
            raise ModelError(
                f"{folder}: model was trained for config hash {metadata.get('config_hash')}, "
                f"this config hashes to {config.model_hash()}; retrain with 'matcher train'"
            )
        return model

    def settings(self) -> Settings:
        """The trained Splink settings object (m, u, lambda, comparisons) for the Spark dialect."""
        return SettingsCreator.from_path_or_dict(self.splink_model).get_settings("spark")

    def fits(self, config: TransformConfig) -> bool:
        return self.metadata.get("config_hash") == config.model_hash()

    @property
    def column_formats(self) -> dict[str, str]:
        """``{postcode column: format}`` the model was trained with (``metadata['column_formats']``)."""
        return dict(self.metadata.get("column_formats") or {})

    def configure(self, config: TransformConfig) -> TransformConfig:
        """``config`` with what this model's training decided from the data: the rules for the parts
        the config leaves out (``setup.chosen``) and every ``format: auto`` postcode's format.

        A model saved before formats were recorded compared postcodes with ``uk`` levels. The
        copy hashes like ``config``; configuring a configured config changes nothing.
        """
        chosen = self.metadata.get("setup", {}).get("chosen")
        if config.automatic and chosen:
            config = config.resolved(chosen.get("blocking_rules"), chosen.get("training"))
        if config.needs_formats:
            recorded = self.column_formats
            config = with_formats(config, {c.name: recorded.get(c.name, "uk") for c in config.columns if c.needs_format})
        return config


BROADCAST_FREQUENCY_RECORDS = 2_000_000
"""Input records up to which each term-frequency table (one row per distinct value, so at most as
many rows) is marked for broadcast: the records then look their frequencies up in one pass instead
of being shuffled once per table, which Spark plans before it knows how small the tables are. At
1,000,000 generated records the candidate records took 7.4-7.5 s instead of 8.7-9.6 s (12.6 s
instead of 16.1 s cold) and skipped a 233 MB shuffle (bench/README.md, "Dates parsed by their own source")."""


def make_linker(
    df: DataFrame, config: TransformConfig, model: TrainedModel | None = None, *, records: int | None = None,
) -> Linker:
    """A Splink linker over ``df`` (from :func:`matcher.harmonize.ingest.read_inputs`).

    Without ``model`` it holds the untrained settings the config describes (a
    ``format: auto`` postcode decided from ``df``, :func:`matcher.model.postcode.resolve_formats`;
    with ``model``, the format it was trained with). Link jobs register one table per
    input so Splink pairs records across inputs; a ``sources:`` config with a link type
    (:attr:`~matcher.config.transform.TransformConfig.links_sources`) registers one table per
    source, named by ``source_dataset`` = the source, so ``link_only`` never pairs two
    records of one source. ``records``, the row count of ``df`` when the caller has it, lets
    the term-frequency tables be broadcast (:data:`BROADCAST_FREQUENCY_RECORDS`).
    """
    db_api = SparkAPI(spark_session=df.sparkSession)
    tag = uuid.uuid4().hex[:8]
    config = model.configure(config) if model is not None else resolve_formats(df, config)
    df = comparable(df, config)
    if config.links_sources:
        df = df.withColumn(SOURCE_DATASET_COLUMN, F.col(SOURCE_SYSTEM))

    def register(table: DataFrame, name: str):
        return db_api.register(table, dataset_display_name=name, table_name=f"__matcher_{name}_{tag}")

    if config.resolved_link_type == "dedupe_only":
        tables = [register(df.drop(SOURCE_DATASET_COLUMN), config.inputs[0].name)]
    else:
        tables = [register(df.where(df[SOURCE_DATASET_COLUMN] == name), name) for name in config.dataset_names]
    settings = model.splink_model if model is not None else splink_settings(config)
    # Splink's own INFO logging is chatty; matcher logs what matters.
    linker = Linker(tables, settings, log_level=None)
    broadcast = records is not None and records <= BROADCAST_FREQUENCY_RECORDS and broadcasts_allowed(df.sparkSession)
    register_term_frequencies(linker, partial(term_frequency_table, df, broadcast=broadcast))
    return linker


def term_frequency_table(df: DataFrame, column: str, tf_column: str, *, broadcast: bool = False) -> DataFrame:
    """Each non-null value of ``column`` with its share of the non-null values as ``tf_column``, lazily
    (``broadcast``: marked as the side a join broadcasts).

    Not cached (Splink would write one Parquet table per column): the candidate records
    (:class:`matcher.blocking.candidates.JoinInputs`) join it once and keep the result, and
    a cache here would outlive the run in a long-lived session (nothing could tell when the
    linker is done with it).
    """
    total = F.sum("n").over(Window.partitionBy())
    table = (
        df.where(F.col(column).isNotNull()).groupBy(column).agg(F.count(F.lit(1)).alias("n"))
        .select(column, (F.col("n") / total).cast("double").alias(tf_column))
    )
    return F.broadcast(table) if broadcast else table
