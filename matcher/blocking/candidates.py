"""Candidate pairs and their comparison vectors, evaluated once per run.

A comparison vector (one level per comparison, plus the term frequencies scoring
needs) does not depend on the model's parameters. So one Spark job blocks the records
with the prediction rules (and draws the u probe's small row sample) into pairs of ids,
joins the two records to each pair, evaluates Splink's comparison SQL once per distinct
pair, and keeps the vectors in memory. Comparing after the union of the rules' joins,
not in each of them, keeps the generated code (and its planning) one comparison wide.
Training counts patterns from them (:func:`count_flagged_patterns`); scoring applies
the trained weights to them (:func:`score`). Stock Splink evaluates the comparisons of
most of these pairs two or three times, in separate Spark jobs, and writes each step to
Parquet.

Each training pair set (an EM session's or a deterministic rule's pairs) becomes a
boolean column (:func:`flag`) that says whether a candidate pair belongs to it;
:data:`PREDICT` says whether a prediction rule found it. A pair that several rules find
is one row with several flags. The pairs a training rule finds beyond the prediction
rules (often many: EM may block on a single date) are only counted, never kept
(:func:`outside_predictions`, counted in the u sample's job).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from splink import Linker, SparkAPI

from matcher.blocking.join_keys import JoinKeys
from matcher.model.dependence import dependence_comparisons, derived_gamma_sql
from matcher.model.level_sql import gamma_sql
from matcher.model.splink_adapter import (
    BlockingRule, CTEPipeline, Settings, blocking_columns, blocking_where_condition, comparison_case_sql,
    comparison_vector_columns, database_api, enqueue_records_with_tf, gamma_column, gamma_columns, input_tables,
    link_type, model_settings, prediction_rules, prediction_sqls, run_pipeline,
)
from matcher.runtime.session import shuffle_partitions

SAMPLE_BUCKETS = 1_000_000
"""Hash buckets used to draw seeded samples of rows or pairs."""

RECORDS_PER_PARTITION = 65_536
"""Records per shuffle partition when blocking and comparing them. Each task of the join
that brings the records to their pairs sorts its share of the pairs; at 1,000,000 generated
records the session's 4 partitions spilled 635 MB of that sort to disk (2 GB heap), 16 none."""

ROW = "__matcher_row"
"""A number unique to each record of :class:`JoinInputs`: pairs carry two of them, not the records'
unique ids, to the join that brings both records to each pair. A sort on one long settles each
comparison on its prefix; ids such as ``crm:C00001676`` share their first bytes and fall through
to comparing whole strings."""

PREDICT = "__predict"
"""Flag column: a prediction blocking rule found the pair (it is scored and written)."""


@dataclass(frozen=True)
class PairSet:
    """Record pairs to count: those ``rule`` finds, among the rows ``sample_sql`` keeps (all if
    None), except the pairs any rule in ``exclude`` finds."""

    name: str
    rule: BlockingRule
    sample_sql: str | None = None
    exclude: tuple[BlockingRule, ...] = ()


def free_checkpoint(frame: DataFrame) -> None:
    """Drop the blocks of a local checkpoint now (``unpersist()`` does not reach them; Spark
    would free them only once the JVM garbage-collects the plan)."""
    plan = frame._jdf.queryExecution().logical()
    if plan.nodeName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def _broadcastable(checkpoint: DataFrame) -> bool:
    """Whether a local checkpoint takes no more memory than Spark's ``autoBroadcastJoinThreshold``.

    Spark cannot know (it estimates a checkpoint's size from the plan that computed it),
    so joins against it would otherwise shuffle both sides before adaptive execution
    turns them into broadcasts.
    """
    spark = checkpoint.sparkSession
    threshold = int(spark._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold())
    rdd = checkpoint._jdf.queryExecution().logical().rdd().id()
    stored = next((i.memSize() + i.diskSize() for i in spark.sparkContext._jsc.sc().getRDDStorageInfo() if i.id() == rdd), None)
    return stored is not None and 0 <= stored <= threshold


def _drop_views(spark: SparkSession, views: list[str]) -> None:
    for view in views:
        spark.catalog.dropTempView(view)
    views.clear()


def flag(pair_set: PairSet) -> str:
    """The boolean column saying whether a pair belongs to ``pair_set``."""
    return f"__in_{pair_set.name}"


@dataclass(frozen=True)
class JoinInputs:
    """The cached records with term frequencies, as the two sides of a pair join."""

    left: str
    right: str
    where: str
    concat: DataFrame
    views: list[str] = field(default_factory=list, repr=False)
    broadcast: bool = False
    keys: JoinKeys = field(default_factory=JoinKeys)

    @classmethod
    def of(cls, linker: Linker, rules: list[BlockingRule] = ()) -> "JoinInputs":
        """Splink's ``__splink__df_concat_with_tf`` computed once, cached and named, with the
        join keys (:class:`~matcher.blocking.join_keys.JoinKeys`) of the prediction rules and ``rules``.

        Two-input ``link_only`` jobs join the first input (Splink's order) to the second
        with no further condition, as Splink does; everything else joins the records to
        themselves under Splink's ordering condition.
        """
        settings = model_settings(linker)
        spark: SparkSession = database_api(linker).spark
        pipeline = enqueue_records_with_tf(linker, CTEPipeline())
        keys = JoinKeys.of(r.blocking_rule_sql for r in [*prediction_rules(settings), *rules])
        # computed now, in one job, so the many joins that read it do not each compute it
        concat = (
            run_pipeline(database_api(linker), pipeline)
            .selectExpr("*", *keys.definitions(), f"monotonically_increasing_id() as {ROW}")
            .localCheckpoint(eager=True)
        )
        name = f"__matcher_concat_{uuid.uuid4().hex[:8]}"
        concat.createOrReplaceTempView(name)
        tables = sorted(input_tables(linker), key=lambda t: t.templated_name)
        source = settings.column_info_settings.source_dataset_input_column
        if link_type(settings) == "link_only" and len(tables) == 2 and source is not None:
            sides = []
            for table in tables:
                sides.append(f"{name}_{len(sides)}")
                spark.sql(f"select * from {name} where {source.name} = '{table.dataset_display_name}'").createOrReplaceTempView(sides[-1])
            return cls(sides[0], sides[1], " where 1=1 ", concat, [name, *sides], _broadcastable(concat), keys)
        ids = settings.column_info_settings.unique_id_input_columns
        return cls(name, name, blocking_where_condition(link_type(settings), ids), concat, [name], _broadcastable(concat), keys)

    def on(self, rule: BlockingRule) -> str:
        """The join condition that finds ``rule``'s pairs, on the key columns where it has them."""
        return self.keys.condition(rule.blocking_rule_sql)

    def hint(self, *aliases: str) -> str:
        """A ``BROADCAST`` hint for the joined sides ``aliases`` when the records are small enough."""
        return f"/*+ BROADCAST({', '.join(aliases)}) */ " if self.broadcast else ""

    def sampled(self, sample_sql: str, partitions: str) -> tuple[str, str]:
        """The two sides restricted to the rows ``sample_sql`` keeps, spread over ``partitions``
        so that their cross join uses every core."""
        spark = self.concat.sparkSession
        names = []
        for side in (self.left, self.right):
            names.append(f"{side}_sample_{uuid.uuid4().hex[:6]}")
            spark.sql(f"select /*+ REPARTITION({partitions}) */ * from {side} where {sample_sql}").createOrReplaceTempView(names[-1])
        self.views.extend(names)
        return names[0], names[1]

    def release(self) -> None:
        """Drop the temporary views (they would keep the records alive) and the cached records."""
        _drop_views(self.concat.sparkSession, self.views)
        free_checkpoint(self.concat)


def any_rule(rules: list[BlockingRule]) -> str:
    """SQL true when any of ``rules`` finds the pair (null-safe, as Splink's exclusions)."""
    return " OR ".join(f"coalesce(({r.blocking_rule_sql}), false)" for r in rules) or "false"


def blocked_pairs_sql(
    linker: Linker, inputs: JoinInputs, samples: Sequence[PairSet], partitions: str
) -> str:
    """The records' :data:`ROW` numbers of every distinct pair the prediction rules find, plus the
    pairs of the sampled sets ``samples``, in one query (:func:`with_records_sql` then joins the records to them).

    Each prediction rule's join reads only its keys and the records' ids; a pair that several
    rules find is kept once, with the first rule's position as its ``match_key`` (as in
    Splink, whose rules each exclude the pairs of the rules before them). The pairs are
    spread over ``partitions`` by the left record, which the join to the records then reuses.
    A sampled set is drawn on its own and its rows carry its flag only, so that its counts
    stay a random sample. The other sets' flags are set when the records are joined
    (:func:`with_records_sql`).
    """
    rule_pairs = " union all ".join(
        f"select {inputs.hint('r')}l.{ROW} as {ROW}_l, r.{ROW} as {ROW}_r, {i} as rule "
        f"from {inputs.left} as l inner join {inputs.right} as r on ({inputs.on(rule)}) {inputs.where}"
        for i, rule in enumerate(prediction_rules(model_settings(linker)))
    )

    def sample_flags(drawn: PairSet | None) -> str:
        return "".join(f", {str(s is drawn).lower()} as {flag(s)}" for s in samples)

    selects = [
        f"select {ROW}_l, {ROW}_r, cast(min(rule) as string) as match_key, true as {PREDICT}{sample_flags(None)} "
        f"from (select /*+ REPARTITION({partitions}, {ROW}_l) */ * from ({rule_pairs})) group by {ROW}_l, {ROW}_r"
    ]
    for pair_set in samples:
        left, right = inputs.sampled(pair_set.sample_sql, partitions)
        selects.append(
            f"select l.{ROW} as {ROW}_l, r.{ROW} as {ROW}_r, cast(null as string) as match_key, false as {PREDICT}"
            f"{sample_flags(pair_set)} from {left} as l inner join {right} as r on ({inputs.on(pair_set.rule)}) {inputs.where}"
        )
    return "\nunion all\n".join(selects)


def with_records_sql(settings: Settings, inputs: JoinInputs, pair_ids: str, carried: list[str], flagged: Sequence[PairSet] = ()) -> str:
    """The pairs in table ``pair_ids`` (:data:`ROW` numbers ``*_l``, ``*_r`` and the ``carried``
    columns) joined to both records: the columns Splink's comparison SQL reads, as Splink selects
    them, and the flag of each ``flagged`` set: whether its rule finds a predicted pair."""
    columns = [
        *blocking_columns(settings), *(f"p.{c}" for c in carried),
        *(f"p.{PREDICT} and coalesce(({s.rule.blocking_rule_sql}), false) as {flag(s)}" for s in flagged),
    ]
    return (
        f"select {inputs.hint('l', 'r')}{', '.join(columns)} from {pair_ids} as p "
        f"inner join {inputs.left} as l on p.{ROW}_l = l.{ROW} inner join {inputs.right} as r on p.{ROW}_r = r.{ROW}"
    )


def outside_predictions(settings: Settings, pair_sets: list[PairSet], *, cumulative: bool = False) -> list[PairSet]:
    """The pairs of each blocking set that no prediction rule finds (the rest of the set is
    flagged on the candidate vectors); ``cumulative`` also leaves out the earlier sets' pairs.

    A set whose rule is a prediction rule has no such pairs and is left out.
    """
    predict_rules = prediction_rules(settings)
    covered = {r.blocking_rule_sql for r in predict_rules}
    return [
        PairSet(s.name, s.rule, exclude=(*predict_rules, *(p.rule for p in pair_sets[:i] if cumulative)))
        for i, s in enumerate(pair_sets)
        if s.rule.blocking_rule_sql not in covered
    ]


@dataclass
class CandidateVectors:
    """The comparison vectors of every candidate pair (a local checkpoint), and the sets flagged on them."""

    frame: DataFrame
    pair_sets: tuple[PairSet, ...]
    inputs: JoinInputs = field(repr=False)
    db_api: SparkAPI = field(repr=False)
    views: list[str] = field(default_factory=list, repr=False)

    def release(self) -> None:
        _drop_views(self.frame.sparkSession, self.views)
        free_checkpoint(self.frame)
        self.inputs.release()


def compare_partitions(spark: SparkSession, records: int) -> int:
    """Shuffle partitions for blocking and comparing ``records``: the session's, or one per
    :data:`RECORDS_PER_PARTITION` records when that is more."""
    return max(int(spark.conf.get("spark.sql.shuffle.partitions")), math.ceil(records / RECORDS_PER_PARTITION))


def compute_vectors(linker: Linker, pair_sets: list[PairSet] = ()) -> CandidateVectors:
    """Block and compare every candidate pair, once: one Spark job, with :func:`compare_partitions`."""
    spark: SparkSession = database_api(linker).spark
    inputs = JoinInputs.of(linker, [s.rule for s in pair_sets])
    partitions = compare_partitions(spark, inputs.concat.count())
    with shuffle_partitions(spark, partitions):
        frame = _compared_pairs(linker, inputs, list(pair_sets), str(partitions))
    return CandidateVectors(frame, tuple(pair_sets), inputs, database_api(linker))


def _compared_pairs(linker: Linker, inputs: JoinInputs, pair_sets: list[PairSet], partitions: str) -> DataFrame:
    """The comparison vectors of every candidate pair, with the sets' flags, as a local checkpoint."""
    settings = model_settings(linker)
    spark: SparkSession = database_api(linker).spark
    sampled = [s for s in pair_sets if s.sample_sql is not None]
    flagged = [s for s in pair_sets if s.sample_sql is None]
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(blocked_pairs_sql(linker, inputs, sampled, partitions), "__matcher__pair_ids")
    carried = ["match_key", PREDICT, *(flag(s) for s in sampled)]
    pipeline.enqueue_sql(with_records_sql(settings, inputs, "__matcher__pair_ids", carried, flagged), "__splink__df_blocked")
    columns = comparison_vector_columns(settings, values=False)  # the values stay with the records (1M: 22 columns, not 38)
    shared = []
    for k, cc in enumerate(settings.comparisons):
        gamma = gamma_sql(cc, f"__shared_{k}")
        shared += gamma.shared
        columns[columns.index(comparison_case_sql(cc))] = f"{gamma.case} as {gamma_column(cc)}"
    blocked = "__splink__df_blocked"
    if shared:
        pipeline.enqueue_sql(f"select *, {', '.join(shared)} from {blocked}", "__matcher__blocked_shared")
        blocked = "__matcher__blocked_shared"
    columns += [PREDICT, *(flag(s) for s in pair_sets)]
    pipeline.enqueue_sql(f"select {', '.join(columns)} from {blocked}", "__splink__df_comparison_vectors")
    # kept in the executors' memory (spilling to disk) with the plan cut, so every later query
    # over the vectors plans in milliseconds instead of re-analysing the comparison SQL; one
    # partition per core instead of several per rule keeps the later jobs and files few
    return run_pipeline(database_api(linker), pipeline).coalesce(spark.sparkContext.defaultParallelism).localCheckpoint(eager=True)


@dataclass(frozen=True)
class FlaggedCounts:
    """Pairs per combination of set flags and comparison-vector pattern (a small table)."""

    frame: pd.DataFrame
    gamma_columns: tuple[str, ...]

    def of_set(self, pair_set: PairSet) -> pd.DataFrame:
        """The set's pattern counts, shaped as :func:`matcher.training.patterns.pattern_counts` returns them."""
        keys = list(self.gamma_columns)
        counts = self.frame.loc[self.frame[flag(pair_set)], [*keys, "pattern_count"]]
        # Spark returns groups in no fixed order; sorting makes the float sums (and the model) reproducible
        counts = counts.groupby(keys, as_index=False)["pattern_count"].sum().sort_values(keys, ignore_index=True)
        return counts.assign(pair_set=pair_set.name)[["pair_set", *keys, "pattern_count"]]

    def of_predictions(self) -> pd.DataFrame:
        """The pattern counts of every candidate pair (the pairs a prediction rule finds, :data:`PREDICT`)."""
        keys = list(self.gamma_columns)
        counts = self.frame.loc[self.frame[PREDICT], [*keys, "pattern_count"]]
        return counts.groupby(keys, as_index=False)["pattern_count"].sum().sort_values(keys, ignore_index=True)

    def pairs_in_any(self, pair_sets: list[PairSet]) -> int:
        """How many distinct pairs belong to at least one of ``pair_sets``."""
        found = self.frame[[flag(s) for s in pair_sets]].any(axis=1)
        return int(self.frame.loc[found, "pattern_count"].sum())


def count_flagged_patterns(vectors: CandidateVectors, settings: Settings) -> FlaggedCounts:
    """Count the candidate and flagged pairs per flag combination and pattern: one small Spark
    job over the kept vectors (the candidates' counts calibrate the model, :mod:`matcher.training.calibration`)."""
    gammas = tuple(gamma_columns(settings))
    flags = [flag(s) for s in vectors.pair_sets]
    if not flags:
        raise ValueError("no pair sets are flagged on these candidate vectors")
    frame = (
        vectors.frame.where(" OR ".join([PREDICT, *flags]))
        .groupBy(PREDICT, *flags, *gammas)
        .agg(F.count(F.lit(1)).alias("pattern_count"))
        .toPandas()
    )
    return FlaggedCounts(frame, gammas)


def score(vectors: CandidateVectors, settings: Settings) -> DataFrame:
    """Splink's predictions (``match_weight``, ``match_probability``, ``mw_*`` ...) of the
    prediction candidates, computed with the trained parameters in ``settings``."""
    name = f"__matcher_vectors_{uuid.uuid4().hex[:8]}"
    frame = vectors.frame.where(F.col(PREDICT)).drop(PREDICT, *(flag(s) for s in vectors.pair_sets))
    for cc in dependence_comparisons(settings):  # added by training after these pairs were compared
        if gamma_column(cc) not in frame.columns:
            frame = frame.withColumn(gamma_column(cc), F.expr(derived_gamma_sql(settings, cc)))
    frame.createOrReplaceTempView(name)
    vectors.views.append(name)
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(f"select * from {name}", "__splink__df_comparison_vectors")
    pipeline.enqueue_list_of_sqls(prediction_sqls(settings, values=False))
    return run_pipeline(vectors.db_api, pipeline)


class Candidates:
    """The candidate vectors of one input, shared by training and scoring within one run.

    Training asks first, with the pair sets it counts; scoring then reuses the same
    vectors. Whoever creates it releases it (``with Candidates() as c:`` or :meth:`release`)
    once the scored pairs are written.
    """

    def __init__(self) -> None:
        self._vectors: CandidateVectors | None = None

    @property
    def vectors(self) -> CandidateVectors | None:
        """The vectors computed so far in this run, if any."""
        return self._vectors

    def get(self, linker: Linker, pair_sets: list[PairSet] = ()) -> CandidateVectors:
        if self._vectors is None or not {s.name for s in pair_sets} <= {s.name for s in self._vectors.pair_sets}:
            self.release()
            self._vectors = compute_vectors(linker, pair_sets)
        return self._vectors

    def __enter__(self) -> "Candidates":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._vectors is not None:
            self._vectors.release()
            self._vectors = None
