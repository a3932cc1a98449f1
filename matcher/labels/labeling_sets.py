"""Labeling sets: the records a labeler should look at next, in FindMatches' file format.

With a trained model, each set grows around a pair the model is least sure of: first
the weakest above-threshold link of each cluster of three or more records, largest
clusters first (where transitive clustering most likely joined two entities), then the
candidate pairs whose match weight is closest to the threshold weight. A set holds the
two records, then their candidate neighbours, strongest link first, among pairs whose
weight is at least the threshold minus :data:`NEIGHBOUR_MARGIN` (so a set holds the
plausible members of the entities in doubt). Without a model, the seed pairs are spread over the blocking
rules in a seeded random order and sets grow through blocked neighbours in that order:
diverse candidates for a first round of labels.

Sets never share a record and skip records already labeled in the run folder. Every row
is the source row as read (all its columns) or, for a ``sources:`` config, the harmonized
row (``record_id``, ``source_system``, the canonical and pass-through columns), after
``labeling_set_id`` and an empty ``label``. The same data, model, seed and options give
the same file.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from matcher.blocking.candidates import SAMPLE_BUCKETS, Candidates
from matcher.config.base import RECORD_ID
from matcher.config.harmonization import CANONICAL_FIELDS, DERIVED_FIELDS, SOURCE_SYSTEM
from matcher.config.transform import TransformConfig
from matcher.harmonize.harmonization import harmonize
from matcher.harmonize.ingest import read_input, read_inputs
from matcher.harmonize.rules import pass_through_columns
from matcher.labels.files import LABEL, LABELING_SET_ID
from matcher.matching.threshold import resolve_threshold
from matcher.model.artifact import TrainedModel, make_linker
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError

log = logging.getLogger(__name__)

NEIGHBOUR_MARGIN = 10.0
"""Neighbours join a set when their link weight is at least the threshold weight minus this."""

SEED_POOL = 20
"""Seed pairs collected per requested set (most are skipped once their records are taken)."""


def _model_pairs(
    df: DataFrame, config: TransformConfig, model: TrainedModel, candidates: Candidates, threshold: float
) -> DataFrame:
    """Scored candidate pairs: ``id_l``, ``id_r`` (text), ``rank`` (distance from the ``threshold`` weight, lower
    first), ``strength``."""
    from matcher.matching.matches import score_pairs

    pairs = score_pairs(df, config, model, candidates)
    return pairs.select(
        F.col("record_id_l").cast("string").alias("id_l"),
        F.col("record_id_r").cast("string").alias("id_r"),
        F.abs(F.col("match_weight") - F.lit(threshold)).alias("rank"),
        F.col("match_weight").alias("strength"),
    ).where(F.col("strength") >= threshold - NEIGHBOUR_MARGIN)


def _blocked_pairs(df: DataFrame, config: TransformConfig) -> DataFrame:
    """Blocked candidate pairs in a seeded random order, interleaved over the blocking rules."""
    linker = make_linker(df, config)
    blocked = linker.inference.compute_blocked_pairs_for_predict().as_spark_dataframe()

    def text_id(column: str) -> F.Column:
        if config.links_sources:  # <source><sep><record id>: the record id names the source already
            return F.expr(f"substr({column}, instr({column}, '-__-') + 4)").cast("string")
        if len(config.inputs) == 1:
            return F.col(column).cast("string")
        return F.regexp_replace(F.col(column).cast("string"), "-__-", ":")

    shuffled = blocked.select(
        text_id("join_key_l").alias("id_l"), text_id("join_key_r").alias("id_r"), "match_key",
        F.pmod(F.xxhash64("join_key_l", "join_key_r", F.lit(config.seed)), F.lit(SAMPLE_BUCKETS)).alias("h"),
    )
    within_rule = F.row_number().over(Window.partitionBy("match_key").orderBy("h", "id_l", "id_r"))
    return shuffled.select("id_l", "id_r", within_rule.cast("double").alias("rank"), (-F.col("h")).cast("double").alias("strength"))


def _bridge_seeds(pairs: DataFrame, threshold_weight: float) -> pd.DataFrame:
    """The weakest above-threshold link of each cluster of three or more records, largest clusters first.

    Over-merged clusters are the largest, and the weakest link is where two entities are
    most likely joined: a set around it shows the labeler both sides.
    """
    from matcher.matching.clustering import cluster_edges

    above = pairs.where(F.col("strength") >= threshold_weight).select("id_l", "id_r", "strength").toPandas()
    if above.empty:
        return above[["id_l", "id_r"]]
    members = cluster_edges(above[["id_l", "id_r"]])
    cluster = dict(zip(members[RECORD_ID], members["match_id"]))
    above["cluster"] = above["id_l"].map(cluster)
    above["size"] = above["cluster"].map(members["match_id"].value_counts())
    big = above[above["size"] >= 3].sort_values(
        ["size", "cluster", "strength", "id_l", "id_r"], ascending=[False, True, True, True, True], kind="stable"
    )
    return big.drop_duplicates("cluster")[["id_l", "id_r"]].reset_index(drop=True)


def _build_sets(seeds: pd.DataFrame, neighbours: pd.DataFrame, sets: int, set_size: int, taken: set[str]) -> list[list[str]]:
    """Greedy: each seed pair whose records are free starts a set that grows through its strongest neighbours."""
    adjacency: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for a, b, strength in neighbours[["id_l", "id_r", "strength"]].itertuples(index=False):
        adjacency[a].append((strength, b))
        adjacency[b].append((strength, a))
    for links in adjacency.values():
        links.sort(key=lambda sb: (-sb[0], sb[1]))
    taken = set(taken)
    built: list[list[str]] = []
    for a, b in seeds[["id_l", "id_r"]].itertuples(index=False):
        if len(built) == sets:
            break
        if a in taken or b in taken:
            continue
        members = [a, b]
        frontier = [a, b]
        while frontier and len(members) < set_size:
            current = frontier.pop(0)
            for _, other in adjacency.get(current, []):
                if len(members) == set_size:
                    break
                if other not in taken and other not in members:
                    members.append(other)
                    frontier.append(other)
        taken.update(members)
        built.append(members)
    return built


def _set_id(members: list[str], seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{'|'.join(sorted(members))}".encode()).hexdigest()[:10]
    return f"set-{digest}"


@contextmanager
def label_source(spark: SparkSession, config: TransformConfig) -> Iterator[DataFrame]:
    """The rows labels are about, cached while the block runs: for a ``sources:`` config the
    harmonized rows that passed the quality gate (keyed by ``record_id``), else :func:`read_inputs`."""
    if config.sources is not None:
        harmonized = harmonize(spark, config)
        try:
            yield harmonized.rows
        finally:
            harmonized.unpersist()
        return
    df = read_inputs(spark, config).cache()
    try:
        yield df
    finally:
        df.unpersist()


def _wanted(spark: SparkSession, wanted: set[str]) -> DataFrame:
    return F.broadcast(spark.createDataFrame(pd.DataFrame({"_rid": sorted(wanted)})))


def source_rows(df: DataFrame, config: TransformConfig, wanted: set[str]) -> pd.DataFrame:
    """The rows (every value as text) of the wanted record ids, with their record id as ``_rid``.

    ``df`` is :func:`label_source`'s. For a ``sources:`` config: its harmonized ``record_id``,
    ``source_system``, canonical and pass-through columns; otherwise each input's raw rows as
    read (with ``source_dataset`` for several inputs)."""
    spark = df.sparkSession
    if config.sources is not None:
        columns = [RECORD_ID, SOURCE_SYSTEM, *CANONICAL_FIELDS, *DERIVED_FIELDS, *pass_through_columns(config)]
        picked = df.select(F.col(RECORD_ID).alias("_rid"), *[F.col(c).cast("string").alias(c) for c in columns])
        return picked.join(_wanted(spark, wanted), "_rid", "inner").toPandas().fillna("")
    frames = []
    for spec in config.inputs:
        raw = read_input(spark, spec)
        key = F.col(config.primary_key).cast("string")
        rid = key if len(config.inputs) == 1 else F.concat(F.lit(f"{spec.name}:"), key)
        picked = raw.withColumn("_rid", rid).join(_wanted(spark, wanted), "_rid", "inner")
        picked = picked.select("_rid", *[F.col(c).cast("string").alias(c) for c in raw.columns])
        frame = picked.toPandas()
        if len(config.inputs) > 1:
            frame.insert(1, SOURCE_DATASET_COLUMN, spec.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).fillna("")


def labeling_sets(
    df: DataFrame,
    config: TransformConfig,
    model: TrainedModel | None,
    *,
    sets: int = 10,
    set_size: int = 10,
    already_labeled: set[str] = frozenset(),
) -> pd.DataFrame:
    """A FindMatches labeling file as a DataFrame: ``labeling_set_id``, ``label`` (empty), the source columns.

    ``df`` is :func:`label_source`'s; ``already_labeled`` are record
    ids (text) that no set may contain.
    """
    if sets < 1 or set_size < 2:
        raise InputDataError(f"label-set needs at least 1 set of at least 2 rows (got --sets {sets} --set-size {set_size})")
    threshold = resolve_threshold(config, model).match_weight if model is not None else None
    with Candidates() as candidates:  # the model's scored pairs come from them
        pairs = (_model_pairs(df, config, model, candidates, threshold) if model is not None else _blocked_pairs(df, config)).cache()
        seeds = pairs.orderBy("rank", "id_l", "id_r").limit(sets * SEED_POOL + len(already_labeled)).toPandas()
        if model is not None:
            seeds = pd.concat([_bridge_seeds(pairs, threshold), seeds], ignore_index=True)
        seed_ids = set(seeds["id_l"]) | set(seeds["id_r"])
        wanted = df.sparkSession.createDataFrame(pd.DataFrame({"i": sorted(seed_ids) or [""]}))
        near = pairs.join(F.broadcast(wanted), (pairs["id_l"] == wanted["i"]) | (pairs["id_r"] == wanted["i"]), "left_semi")
        # neighbours of neighbours let a set grow past the seed's own links
        second = set(near.select("id_l").toPandas()["id_l"]) | set(near.select("id_r").toPandas()["id_r"])
        wider = df.sparkSession.createDataFrame(pd.DataFrame({"i": sorted(second | seed_ids) or [""]}))
        neighbours = pairs.join(F.broadcast(wider), (pairs["id_l"] == wider["i"]) | (pairs["id_r"] == wider["i"]), "left_semi").toPandas()
        pairs.unpersist()
    built = _build_sets(seeds, neighbours, sets, set_size, set(already_labeled))
    if not built:
        raise InputDataError(f"{config.name}: no candidate pairs left to label (every candidate record is labeled already)")
    log.info("built %d labeling sets (%s rows)", len(built), sum(map(len, built)))
    source = source_rows(df, config, {r for members in built for r in members})
    by_id = source.set_index("_rid")
    out = []
    for members in built:
        set_id = _set_id(members, config.seed)
        block = by_id.loc[members].reset_index(drop=True)
        block.insert(0, LABEL, "")
        block.insert(0, LABELING_SET_ID, set_id)
        out.append(block)
    return pd.concat(out, ignore_index=True)
