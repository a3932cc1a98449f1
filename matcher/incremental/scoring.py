"""Score new records against the existing records that share a blocking key with them, and among themselves.

:func:`matcher.blocking.rules.preselect` picks the existing records in the driver; :func:`score_new_records`
scores with Splink's ``predict_between`` on DuckDB in the driver or on Spark
(:func:`scoring_engine`); both give the same scores (see :mod:`matcher.matching.driver_scoring`).
"""

from __future__ import annotations

import uuid

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType
from splink import Linker, SparkAPI

from matcher.config.transform import TransformConfig
from matcher.matching import driver_scoring
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import comparable
from matcher.model.splink_adapter import register_term_frequencies
from matcher.runtime.session import session_conf


def scoring_engine(config: TransformConfig, rows: int) -> str:
    """``spark`` or ``duckdb``: where :func:`score_new_records` scores ``rows`` candidate and new records."""
    spec = config.incremental
    if spec.scoring != "auto":
        return spec.scoring
    return "duckdb" if rows <= spec.driver_max_rows else "spark"


LOCAL_RELATION_RULE = "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation"
"""Tables as small as the new records and their candidates are local relations, which this optimizer
rule evaluates through every query's projections in the driver, interpreted: at 1M records
(74,185 candidates) that filled a 4 GB heap."""


def _small_tables(spark: SparkSession) -> dict[str, str]:
    """The session's settings while Splink scores the new records on Spark: one shuffle partition,
    and :data:`LOCAL_RELATION_RULE` excluded on top of any rules the session excludes already."""
    excluded = [rule for rule in (spark.conf.get("spark.sql.optimizer.excludedRules", None) or "").split(",") if rule.strip()]
    return {"spark.sql.shuffle.partitions": "1", "spark.sql.optimizer.excludedRules": ",".join([*excluded, LOCAL_RELATION_RULE])}


def predict_between_spark(
    spark: SparkSession,
    config: TransformConfig,
    model: TrainedModel,
    left: pd.DataFrame,
    right: pd.DataFrame,
    schema: StructType,
    frequencies: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """Splink's ``predict_between(left, right)`` on Spark with ``model``."""
    # the tables are small: keep Splink's intermediate tables in memory, in one partition,
    # instead of writing each to the checkpoint folder as Parquet
    db_api = SparkAPI(spark_session=spark, break_lineage_method="persist", num_partitions_on_repartition=1)
    tag = uuid.uuid4().hex[:8]

    def register(frame: pd.DataFrame, name: str):
        table = spark.createDataFrame(frame, schema=schema) if len(frame) else spark.createDataFrame([], schema)
        return db_api.register(comparable(table, config), dataset_display_name=name, table_name=f"__matcher_{name}_{tag}")

    left_table = register(left, "existing_and_new")
    right_table = register(right, "new")
    linker = Linker(right_table, model.splink_model, log_level=None)
    register_term_frequencies(
        linker, lambda column, _: comparable(spark.createDataFrame(driver_scoring.looked_up_frequencies(frequencies[column], left, right)), config))
    with session_conf(spark, _small_tables(spark)):
        return linker.inference.predict_between(left_table, right_table, warning_mode="never").as_spark_dataframe().toPandas()


def score_new_records(
    spark: SparkSession,
    config: TransformConfig,
    model: TrainedModel,
    candidates: pd.DataFrame,
    new: pd.DataFrame,
    schema: StructType,
    frequencies: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """Score the new records against the existing candidates and among themselves with Splink's ``predict_between``.

    One call does both: the left side is candidates + new records, the right side the
    new records; a new-new pair comes back in both orientations and a record with
    itself, so only ``l < r`` is kept among new records (what ``predict_within`` would
    give, in one job instead of two). The engine is :func:`scoring_engine`'s choice.
    ``frequencies`` maps each term-frequency column to its table (value, ``tf_<column>``).
    Returns Splink's prediction columns plus ``record_id_l``/``record_id_r``, each pair
    oriented as a full run orders it (smaller record id left).
    """
    key = config.primary_key
    left = pd.concat([candidates, new], ignore_index=True)
    if scoring_engine(config, len(left)) == "duckdb":
        scored = driver_scoring.predict_between(config, model, left, new, frequencies)
    else:
        scored = predict_between_spark(spark, config, model, left, new, schema, frequencies)
    new_keys = set(new[key])
    both_new = scored[f"{key}_l"].isin(new_keys) & scored[f"{key}_r"].isin(new_keys)
    keep = ~both_new | (scored[f"{key}_l"] < scored[f"{key}_r"])
    scored = scored[keep].reset_index(drop=True)
    if key != "record_id":
        scored.insert(0, "record_id_r", scored[f"{key}_r"])
        scored.insert(0, "record_id_l", scored[f"{key}_l"])
    return _orient(scored)


def _orient(pairs: pd.DataFrame) -> pd.DataFrame:
    """Swap the ``_l``/``_r`` columns of the pairs whose left record id is the larger, as a full run orders them."""
    swap = (pairs["record_id_l"] > pairs["record_id_r"]).to_numpy()
    if not swap.any():
        return pairs
    pairs = pairs.copy()
    for name in [c for c in pairs.columns if c.endswith("_l") and f"{c[:-2]}_r" in pairs.columns]:
        other = f"{name[:-2]}_r"
        left, right = pairs[name].copy(), pairs[other].copy()
        pairs.loc[swap, name] = right[swap]
        pairs.loc[swap, other] = left[swap]
    return pairs
