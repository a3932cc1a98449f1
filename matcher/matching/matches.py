"""Find matches: blocking, scoring, threshold, clusters, ids and confidence on every row.

``match_confidence_score`` (in [0, 1]) says how sure the model is about a row's
assignment:

* a row in a cluster of two or more: the highest match probability among the scored
  pairs that tie it to its cluster (its strongest link);
* a singleton: one minus the highest match probability among its scored pairs (how
  sure we are that none of its candidates is the same entity), or 1.0 when blocking
  produced no candidate for it;
* a row on an enforced must-link (pair list or exact rule, ``enforced`` in the config,
  or a data steward's decision) in a cluster of two or more: 1.0.

A cluster's ``match_id`` is its smallest record id, except for the clusters that hold
records a data steward decided about (``<run>/decisions.jsonl``, see
:mod:`matcher.matching.decisions`): their decisions are enforced as must- and cannot-links
and those clusters take the ids the decisions gave them (:func:`~matcher.matching.decisions.name_clusters`).

The threshold is resolved once per run (:func:`matcher.matching.threshold.resolve_threshold`):
the config's ``precision_recall_tradeoff``'s, the one estimated at training from the model's
expected precision and recall (``threshold: estimated``), or the one learned from labels when
``labels.threshold_from_labels`` is set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.blocking.candidates import Candidates, free_checkpoint, score
from matcher.config.base import RECORD_ID
from matcher.config.transform import ClusteringSpec, TransformConfig
from matcher.matching.components import broadcastable, cluster_components, labeled_component_pairs
from matcher.matching.decisions import DecisionLog, name_clusters
from matcher.matching.entities import entity_report, python_value
from matcher.matching.enforced import DecidedLinks, enforced_links, run_decisions
from matcher.matching.stable_ids import unused_id
from matcher.model.artifact import TrainedModel, make_linker
from matcher.matching.threshold import Threshold, clustering_spec, min_mean_weight_from_labels, resolve_threshold
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, record_id
from matcher.runtime.outputs import StagedParquet
from matcher.runtime.progress import step
from matcher.training.supervision import f_beta_beta

log = logging.getLogger(__name__)


def score_pairs(
    df: DataFrame, config: TransformConfig, model: TrainedModel, candidates: Candidates, records: int | None = None,
) -> DataFrame:
    """Every candidate pair from blocking with ``match_weight``, ``match_probability`` and per-column ``gamma_*``
    and ``mw_*``, not the compared values (:func:`with_compared_values` joins them for a few pairs).

    ``record_id_l`` and ``record_id_r`` name the two records (see :func:`record_id`).
    The pairs are compared once, in ``candidates`` (reused when training compared them
    already), and the result is lazy: each action re-applies the weights to the kept vectors.
    ``records``: the row count of ``df`` when known (see :func:`~matcher.model.artifact.make_linker`).
    """
    # comparison vectors do not depend on the parameters: a run that trained has them already
    # the model's postcode formats (format: auto), so the vectors have the levels it was trained on
    vectors = candidates.vectors or candidates.get(make_linker(df, model.configure(config), records=records))
    predictions = score(vectors, model.settings())
    if config.primary_key == RECORD_ID:
        return predictions
    ids = [record_id(config, side).alias(f"{RECORD_ID}{side}") for side in ("_l", "_r")]
    return predictions.select(*ids, *predictions.columns)


def with_compared_values(pairs: DataFrame, rows: DataFrame, config: TransformConfig) -> DataFrame:
    """``pairs`` with both records' value of each configured column (``first_name_l``, ``first_name_r``, ...),
    joined from ``rows`` (the match output, or the input rows) by record id: what Splink's waterfall
    charts show. Scored pairs leave the values with the records (:func:`score_pairs`); join them
    back for the few pairs a person looks at."""
    compared = [c.name for c in config.columns if c.name in rows.columns]
    ids = rows.select(record_id(config).alias(RECORD_ID), *compared)
    for side in ("_l", "_r"):
        ids_side = ids.select(*(F.col(c).alias(f"{c}{side}") for c in ids.columns))
        pairs = pairs.join(ids_side, f"{RECORD_ID}{side}", "left")
    return pairs


@dataclass
class MatchResult:
    """The rows with ``match_id``/``match_confidence_score``, the scored pairs, the threshold, and what it took."""

    rows: DataFrame
    pairs: DataFrame
    threshold: Threshold
    timings_s: dict[str, float] = field(default_factory=dict)
    clustering: dict = field(default_factory=dict)
    decisions: dict | None = None  # what the run folder's decision log enforced (summary.json's ``decisions``)
    members: DataFrame | None = field(default=None, repr=False)  # the clusters the rows read

    def release(self) -> None:
        """Free the scored pairs and the clusters; call it once they are written."""
        free_checkpoint(self.pairs)
        if self.members is not None:
            free_checkpoint(self.members)


def _best_probability(pairs: DataFrame) -> DataFrame:
    ends = pairs.select(F.col(f"{RECORD_ID}_l").alias(RECORD_ID), "match_probability").unionByName(
        pairs.select(F.col(f"{RECORD_ID}_r").alias(RECORD_ID), "match_probability")
    )
    return ends.groupBy(RECORD_ID).agg(F.max("match_probability").alias("best_probability"))


@dataclass(frozen=True)
class Clustered:
    """What clustering took (``seconds``) and found (``entities``: :func:`~matcher.matching.entities.entity_report`);
    ``members`` is the local checkpoint the rows read their ``match_id`` from (the clusters' members and every
    scored record's best probability): free it once they are written."""

    seconds: float
    entities: dict
    members: DataFrame


def _named_by_decisions(members: DataFrame, decided: DecidedLinks, rows: DataFrame) -> DataFrame:
    """``members`` plus the decided records the clustering left alone (as their own clusters),
    the clusters holding decided records named as the decisions named them.

    Only the clusters a renaming can touch reach the driver: those holding a decided record,
    those named by an id the decisions give, and (text ids) those whose name looks like one
    :func:`~matcher.matching.stable_ids.unused_id` makes.
    """
    spark = members.sparkSession
    schema = members.schema
    clustered = members
    decided_ids = [python_value(r) for r in decided.records]
    placed = {r[RECORD_ID] for r in members.where(F.col(RECORD_ID).isin(decided_ids)).select(RECORD_ID).collect()}
    alone = [r for r in decided_ids if r not in placed]
    if alone:
        members = members.unionByName(spark.createDataFrame([(r, r, None, 1, 0) for r in alone], schema))
    given = {python_value(v) for v in decided.ids.values()}
    text = schema["match_id"].dataType.simpleString() == "string"
    holding = members.where(F.col(RECORD_ID).isin(decided_ids)).select("match_id")
    touched = members.where(F.col("match_id").isin(list(given)) | (F.col("match_id").contains("~") if text else F.lit(False)))
    reach = touched.select("match_id").unionByName(holding).distinct()
    local = members.join(reach, "match_id", "left_semi").select(RECORD_ID, "match_id").toPandas()
    largest: list = []  # the largest record id, looked up once when needed

    def unused(smallest, used: set):
        if isinstance(smallest, (int, np.integer)):  # above every record id too: a singleton is named by its own
            if not largest:
                largest.append(rows.agg(F.max(RECORD_ID)).first()[0])
            used = used | set(largest)
        return unused_id(smallest, used)

    renamed = name_clusters(local, decided.ids, unused)
    moved = renamed[renamed["match_id"] != local["match_id"]]
    if moved.empty and not alone:
        return members
    as_id = str if text else int  # pandas may hold whole-number ids as floats
    changes = spark.createDataFrame(
        [(as_id(r), as_id(m)) for r, m in zip(moved[RECORD_ID], moved["match_id"])],
        f"{RECORD_ID} {schema[RECORD_ID].dataType.simpleString()}, _named {schema['match_id'].dataType.simpleString()}",
    )
    result = (
        members.join(F.broadcast(changes), RECORD_ID, "left")
        .withColumn("match_id", F.coalesce("_named", "match_id")).drop("_named")
        .localCheckpoint(eager=True)
    )
    free_checkpoint(clustered)
    return result


def assign_matches(
    df: DataFrame, pairs: DataFrame, config: TransformConfig, threshold: Threshold | None = None,
    labeled: pd.DataFrame | None = None, clustering: ClusteringSpec | None = None, decided: DecidedLinks | None = None,
    records: int | None = None,
) -> tuple[DataFrame, Clustered]:
    """Attach ``match_id`` and ``match_confidence_score`` to every row of ``df``; returns the rows and
    what clustering took and found (:class:`Clustered`).

    ``threshold`` defaults to the config's (no model), ``clustering`` to
    ``config.clustering``; ``config.enforced`` must-links and cannot-links are respected,
    and so are ``labeled`` pairs (matches as must-links, non-matches as cannot-links)
    and the ``decided`` links when given; the clusters holding decided records take
    the ids the decisions gave them. ``records`` is the row count of ``df`` when the caller
    has it (counted otherwise, for the entity report and for whether the rows' lookup is broadcast).
    """
    threshold = (threshold or resolve_threshold(config, None)).match_probability
    spec = clustering or config.clustering
    spark = df.sparkSession
    rows = df.withColumn(RECORD_ID, record_id(config))
    started = time.perf_counter()
    links = enforced_links(rows, config, labeled, decided)
    members = cluster_components(
        pairs, threshold, spec,
        must_link=links.must_link if links is not None else None, cannot_link=links.cannot_link if links is not None else None,
    )
    if decided is not None and decided.ids:
        members = _named_by_decisions(members, decided, rows)
    records = records if records is not None else df.count()
    entities = entity_report(members, records)
    cluster_s = time.perf_counter() - started
    average_link = spec.method == "average_link"
    best = _best_probability(pairs)
    placed = members
    if average_link:
        # a row's strongest link inside its cluster: its best pair may lead to a cluster it was kept out of
        confidence = F.when(F.col("strongest").isNotNull() & ~F.isnan("strongest"), F.col("strongest")).otherwise(
            1.0 - F.coalesce(F.col("best_probability"), F.lit(0.0))
        )
    else:
        confidence = (
            F.when(F.col("best_probability") >= threshold, F.col("best_probability"))
            .otherwise(1.0 - F.coalesce(F.col("best_probability"), F.lit(0.0)))
        )
    if links is not None or average_link:
        # a must-link is never dropped, so a row on one is in a cluster of two or more: certain;
        # a row that a cannot-link (or average link) kept alone is a singleton whatever its best pair says
        placed = members.withColumn("_alone", F.col("size") == 1)
        on_must = set(links.must_link["id_l"]) | set(links.must_link["id_r"]) if links is not None else set()
        if on_must:
            enforced = spark.createDataFrame(
                [(python_value(i), True) for i in sorted(on_must)], f"{RECORD_ID} {rows.schema[RECORD_ID].dataType.simpleString()}, _enforced boolean"
            )
            rows = rows.join(F.broadcast(enforced), RECORD_ID, "left")
        confidence = (
            F.when(F.col("_enforced") if on_must else F.lit(False), F.lit(1.0))
            .when(F.col("_alone"), 1.0 - F.coalesce(F.col("best_probability"), F.lit(0.0)))
            .otherwise(confidence)
        )
    lookup = placed.join(best, RECORD_ID, "full").localCheckpoint(eager=True)  # one row per record with a pair or a link
    free_checkpoint(members)
    rows = (
        rows.join(F.broadcast(lookup) if broadcastable(lookup, records) else lookup, RECORD_ID, "left")  # at most a row per record
        .withColumn("match_id", F.coalesce(F.col("match_id"), F.col(RECORD_ID)))
        .withColumn("match_confidence_score", confidence)
        .drop("best_probability", "_enforced", "_alone", "strongest", "size", "linked")
    )
    if len(config.inputs) == 1:
        rows = rows.drop(SOURCE_DATASET_COLUMN)
        if config.primary_key != RECORD_ID:
            rows = rows.drop(RECORD_ID)
    return rows, Clustered(cluster_s, entities, lookup)


def _clustering(
    pairs: DataFrame, config: TransformConfig, model: TrainedModel, threshold: Threshold, calibration: pd.DataFrame | None
) -> tuple[ClusteringSpec, dict]:
    """The clustering to use and what describes it; ``min_mean_weight`` learned from ``calibration`` labels when configured."""
    spec = clustering_spec(config, model)
    facts: dict = {"method": spec.method}
    if spec.method != "average_link":
        return spec, facts
    if config.labels.clustering_from_labels and calibration is not None and len(calibration):
        edges = labeled_component_pairs(pairs, threshold.match_probability, calibration)
        learned, label_facts = min_mean_weight_from_labels(edges, calibration, spec, f_beta_beta(config.precision_recall_tradeoff))
        spec = spec.model_copy(update={"min_mean_weight": learned})
        facts["from_labels"] = label_facts
    facts.update(min_mean_weight=spec.min_mean_weight, unscored_pair_weight=spec.unscored_pair_weight)
    return spec, facts


def find_matches(
    df: DataFrame, config: TransformConfig, model: TrainedModel, *, labeled: pd.DataFrame | None = None,
    calibration: pd.DataFrame | None = None, candidates: Candidates | None = None, decisions: DecisionLog | None = None,
    records: int | None = None, pairs_to: StagedParquet | None = None,
) -> MatchResult:
    """Score, threshold and cluster ``df`` (from :func:`matcher.harmonize.ingest.read_inputs`) with ``model``.

    ``labeled`` pairs and the ``decisions`` of a data stewards' log (when its file exists)
    are enforced (see :func:`assign_matches`); ``calibration`` pairs
    (training labels: ``id_l``, ``id_r`` as text, ``is_match``) choose
    ``clustering.min_mean_weight`` when ``labels.clustering_from_labels`` is set.
    ``candidates`` holds the pairs training compared in this run; it is released once the
    pairs are scored. Call :meth:`MatchResult.release` after writing the outputs.
    ``records``: the row count of ``df`` when known (saves counting it again).
    ``pairs_to``: where the scored pairs are written as they are scored (a run's ``pairs/``);
    ``MatchResult.pairs`` then reads them from there. Without it they are kept in the
    session (a local checkpoint).
    """
    started = time.perf_counter()
    candidates = candidates or Candidates()
    # scored once and kept: clustering, the confidence scores and the written pairs all read them
    scored = score_pairs(df, config, model, candidates, records)
    if pairs_to is None:
        step("score pairs")
        pairs = scored.localCheckpoint(eager=True)
    else:
        step("score and write pairs")
        pairs = pairs_to.write(scored)
    candidates.release()  # the scored pairs are kept: the vectors' memory goes to clustering
    predict_s = time.perf_counter() - started
    step("cluster")
    threshold = resolve_threshold(config, model)
    log.info("threshold: %s", threshold)
    clustering, facts = _clustering(pairs, config, model, threshold, calibration)
    decided = run_decisions(decisions, df.select(record_id(config).alias(RECORD_ID))) if decisions is not None else None
    rows, clustered = assign_matches(df, pairs, config, threshold, labeled, clustering, decided, records)
    log.info("scored the candidate pairs in %.1f s, clustered in %.1f s", predict_s, clustered.seconds)
    return MatchResult(
        rows=rows,
        pairs=pairs,
        threshold=threshold,
        timings_s={"predict": predict_s, "cluster": time.perf_counter() - started - predict_s},
        clustering={**facts, "entities": clustered.entities},
        decisions=decided.facts if decided is not None else None,
        members=clustered.members,
    )
