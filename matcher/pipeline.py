"""The tasks a user runs (train, match, evaluate, run), each reading and writing a run folder.

A run folder holds::

    model/            splink_model.json + metadata.json (config hash, data size, seed, versions, timings)
    matches/          every input row + match_id + match_confidence_score (Parquet)
    pairs/            every scored candidate pair: match_probability, match_weight, mw_* per column (Parquet)
    quarantine/       rows the quality gate rejected, with rule and reason (``sources:`` configs)
    customers/        one golden profile per match_id with provenance (``sources:`` configs)
    summary.json      counts, threshold and timings of the match task
    metrics.json      summary + accuracy metrics (when a truth column is configured)
    report.html       metrics table and charts, self-contained (written by run and evaluate)
    decisions.jsonl   the data stewards' decisions (written by ``matcher review``, never by a task)

Every folder and file is written atomically; ``summary.json`` and ``metrics.json`` come last.
A task that rewrites outputs holds the folder's lock (``.matcher.lock``: one run at a time)
and first removes the old ``summary.json``, ``metrics.json`` and report, so a run killed
half-way never looks complete (:func:`~matcher.runtime.run_folder.claim_run_folder`).
A task replaces only the entries it writes: the decision log and its lock stay, and
``match`` enforces the decisions in force (:mod:`matcher.matching.decisions`).
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from matcher.blocking.candidates import Candidates
from matcher.config.transform import TransformConfig
from matcher.evaluation.report import write_run_report
from matcher.evaluation.task import evaluate_task
from matcher.harmonize.harmonization import Harmonized, harmonize, write_harmonization_outputs
from matcher.harmonize.ingest import local_input_bytes, read_inputs
from matcher.matching.decisions import DecisionLog
from matcher.matching.matches import find_matches
from matcher.matching.summary import run_summary
from matcher.model.artifact import TrainedModel
from matcher.model.comparisons import record_id
from matcher.runtime.errors import MatcherError
from matcher.runtime.outputs import StagedParquet, write_json, write_parquet
from matcher.runtime.progress import stage, step
from matcher.runtime.run_folder import RunFolder, replaces_outputs, task_session
from matcher.training.trainer import train

log = logging.getLogger(__name__)


def _inputs(config: TransformConfig, spark: SparkSession, df: DataFrame | None) -> DataFrame:
    if df is not None:
        return df
    if config.sources is not None:  # ingest, standardize, quality gate (matcher.harmonize.harmonization)
        return harmonize(spark, config).rows
    return read_inputs(spark, config).cache()


def _session(config: TransformConfig, folder: RunFolder, spark: SparkSession | None) -> AbstractContextManager[SparkSession]:
    """:func:`task_session`, a session it starts sized to the config's inputs."""
    return task_session(folder, spark, input_bytes=None if spark is not None else local_input_bytes(config))


@replaces_outputs
def train_task(
    config: TransformConfig, folder: RunFolder, spark: SparkSession | None = None, *, df: DataFrame | None = None,
    candidates: Candidates | None = None,
) -> TrainedModel:
    """Read the inputs (unless given), train, save the model artifact into ``folder.model``.

    ``candidates`` keeps the compared candidate pairs for a match in the same run."""
    from matcher.labels.files import training_pairs

    labeled, _, labels_hash = training_pairs(config, folder.root)
    with _session(config, folder, spark) as spark, stage("train"):
        model = train(
            _inputs(config, spark, df), config, labels=labeled if labels_hash else None, labels_hash=labels_hash,
            candidates=candidates,
        )
    model.save(folder.model)
    log.info("model saved to %s", folder.model)
    return model


def _training_labels(config: TransformConfig, folder: RunFolder):
    """The training labels as pairs when clustering uses them (enforced or to learn from), else None."""
    if not (config.labels.enforce_in_clustering or config.labels.clustering_from_labels):
        return None
    from matcher.labels.files import training_pairs

    labeled, _, labels_hash = training_pairs(config, folder.root)
    return labeled if labels_hash else None


@replaces_outputs
def match_task(
    config: TransformConfig,
    folder: RunFolder,
    spark: SparkSession | None = None,
    *,
    df: DataFrame | None = None,
    train_s: float = 0.0,
    harmonized: Harmonized | None = None,
    candidates: Candidates | None = None,
) -> dict:
    """Score and cluster the inputs with the saved model; write matches, pairs and summary.json.

    The decisions in force of the run folder's ``decisions.jsonl`` are enforced (summary.json's
    ``decisions`` says what they enforced). For a ``sources:`` config also the quarantine and
    the golden ``customers`` tables."""
    started = time.perf_counter()
    model = TrainedModel.load(folder.model, config)
    config = model.configure(config)  # the rules training chose, when the config leaves them to the data
    # the scored pairs are written next to pairs/ as they are scored, and moved into place last
    with _session(config, folder, spark) as spark, stage("match"):
        step("read inputs")
        if config.sources is not None and harmonized is None:
            harmonized = harmonize(spark, config)
        df = harmonized.rows if harmonized is not None else _inputs(config, spark, df)
        rows_in = df.count()
        labeled = _training_labels(config, folder)
        # rows counted as they are written: a cluster is named after its smallest record id, so it
        # has exactly one row whose match_id is its own id (not so for an id a decision gave)
        rows_written = Observation()
        pairs = StagedParquet(folder.pairs)
        try:
            result = find_matches(
                df, config, model, labeled=labeled if config.labels.enforce_in_clustering else None,
                calibration=labeled if config.labels.clustering_from_labels else None, candidates=candidates,
                decisions=DecisionLog(folder.root), records=rows_in, pairs_to=pairs,
            )
            try:
                n_pairs = result.pairs.count()  # from the written files' footers
                own_id = F.col("match_id") == record_id(config)
                step("write matches")
                rows = result.rows.observe(rows_written, F.count(F.lit(1)).alias("rows"), F.count(F.when(own_id, 1)).alias("clusters"))
                write_parquet(rows, folder.matches)  # reads the pairs' confidences: before they move into place
                pairs.publish()
            finally:
                result.release()
        finally:
            pairs.discard()
    rows_out, n_clusters = rows_written.get["rows"], rows_written.get["clusters"]
    decided = {"decisions": result.decisions} if result.decisions is not None else {}
    if decided:
        n_clusters = spark.read.parquet(str(folder.matches)).select("match_id").distinct().count()
    summary = run_summary(
        config, result.threshold, rows_in=rows_in, rows_out=rows_out, n_pairs=n_pairs, n_clusters=n_clusters,
        clustering=result.clustering, **decided,
        outputs={"matches": str(folder.matches), "pairs": str(folder.pairs), "model": str(folder.model)},
        timings_s={
            "train": round(train_s, 3),
            **{k: round(v, 3) for k, v in result.timings_s.items()},
            "match_total": round(time.perf_counter() - started, 3),
        },
    )
    if harmonized is not None:
        with stage("write quarantine and customers"):
            summary["harmonization"] = write_harmonization_outputs(
                harmonized, spark.read.parquet(str(folder.matches)), config, quarantine=folder.quarantine,
                customers=folder.customers,
            )
        summary["outputs"].update(quarantine=str(folder.quarantine), customers=str(folder.customers))
    write_json(summary, folder.summary)
    return summary


@replaces_outputs
def run_task(config: TransformConfig, folder: RunFolder, spark: SparkSession | None = None, *, retrain: bool = False) -> dict:
    """Train when there is no model for this config, match, evaluate when truth is configured,
    and load the identity graph when the config has a ``graph`` section."""
    started = time.perf_counter()
    try:
        existing = TrainedModel.load(folder.model)
        fresh = existing.fits(config) and not retrain
    except MatcherError:
        fresh = False
    if fresh:
        log.info(
            "%s fits this config (trained %s on %s rows): matching with it; --retrain trains a new one",
            folder.model, existing.metadata.get("trained_at", "at an unknown time"), existing.metadata.get("rows", "?"),
        )
    with _session(config, folder, spark) as spark:
        with stage("read inputs"):
            harmonized = harmonize(spark, config) if config.sources is not None else None
            df = harmonized.rows if harmonized is not None else read_inputs(spark, config).cache()
        train_s = 0.0
        with Candidates() as candidates:  # training compares the candidate pairs once; matching scores them
            if not fresh:
                t = time.perf_counter()
                train_task(config, folder, spark, df=df, candidates=candidates)
                train_s = time.perf_counter() - t
            summary = match_task(
                config, folder, spark, df=df, train_s=train_s, harmonized=harmonized, candidates=candidates
            )
        df.unpersist()
        if harmonized is not None:
            harmonized.unpersist()
        metrics = evaluate_task(config, folder, spark, report=False) if config.truth_column else summary
        if config.graph is not None:  # the config names a Gremlin endpoint: load the identity graph too
            from matcher.graph.writer import load_graph_task

            metrics["graph"] = load_graph_task(config, folder, spark)
    metrics["timings_s"]["total"] = round(time.perf_counter() - started, 3)
    write_json(metrics, folder.metrics)
    with stage("report"):
        write_run_report(folder, config, spark)
    return metrics
