"""Blocking rules chosen from the data, for a config that leaves ``blocking_rules`` out.

Candidate rules are conjunctions of per-column keys (a column's value, or a part of
it that suits its kind). How many pairs each candidate generates is counted without
making any pair: per key value ``n`` rows give ``n (n - 1) / 2`` pairs, so one Spark
aggregation over the rows counts every candidate at once. The rules are then picked
to cover as many matches as the pair budget allows (:func:`pair_budget`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.config.transform import BlockingRule, ComparisonKind, TransformConfig
from matcher.model.comparisons import SOURCE_DATASET_COLUMN

log = logging.getLogger(__name__)

_NOT_KEYED = frozenset({ComparisonKind.numeric, ComparisonKind.initial})
"""Kinds whose exact value makes no blocking key."""


@dataclass(frozen=True)
class RuleEstimate:
    """A candidate blocking rule and what it is expected to cost and find."""

    rule: BlockingRule
    columns: tuple[str, ...]
    pairs: float
    recall: float | None = None
    largest_block: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "columns": list(self.columns), "pairs": int(self.pairs),
            "recall": None if self.recall is None else round(self.recall, 4), "largest_block": self.largest_block,
        }


@dataclass(frozen=True)
class BlockingChoice:
    """The chosen rules, every candidate's estimate, and a JSON report of the decision."""

    rules: list[BlockingRule]
    candidates: list[RuleEstimate]
    report: dict[str, Any] = field(default_factory=dict)


def pair_budget(rows: int, accuracy_cost_tradeoff: float) -> float:
    """Comparisons the chosen rules may generate: ``max(rows × 10^(0.5 + 2t), 10^(5 + t))``.

    At the default ``t = 0.5`` that is 32 comparisons per record, and at least 316k.
    """
    t = accuracy_cost_tradeoff
    return max(rows * 10 ** (0.5 + 2 * t), 10 ** (5 + t))


def candidate_rules(config: TransformConfig) -> list[tuple[BlockingRule, tuple[str, ...]]]:
    """Exact agreement on one keyable column, or on two."""
    keyed = [c.name for c in config.columns if c.kind not in _NOT_KEYED]
    singles = [([c], (c,)) for c in keyed]
    doubles = [([a, b], (a, b)) for a, b in itertools.combinations(keyed, 2)]
    return [*singles, *doubles]


def _key(rule: BlockingRule) -> F.Column:
    """A hash of the rule's columns, null when any of them is (a null never agrees)."""
    parts = [F.col(c).cast("string") for c in rule]
    return F.when(functools.reduce(operator.or_, (p.isNull() for p in parts)), None).otherwise(F.xxhash64(*parts))


def count_pairs(df: DataFrame, config: TransformConfig, rules: list[BlockingRule]) -> list[tuple[float, int]]:
    """Per column-list rule, the pairs it generates and its largest block, in one Spark job."""
    keys = F.array(*(F.struct(F.lit(i).alias("rule"), _key(r).alias("key")) for i, r in enumerate(rules)))
    link_only = config.resolved_link_type == "link_only"
    exploded = df.select(F.col(SOURCE_DATASET_COLUMN).alias("src"), F.explode(keys).alias("k")).where("k.key IS NOT NULL")
    per_source = exploded.groupBy("k.rule", "k.key", "src").agg(F.count(F.lit(1)).alias("n"))
    per_key = per_source.groupBy("rule", "key").agg(
        F.sum("n").alias("n"), F.sum(F.col("n") * F.col("n")).alias("n2")
    )
    pairs = (F.col("n") * F.col("n") - F.col("n2")) / 2 if link_only else F.col("n") * (F.col("n") - 1) / 2
    totals = per_key.groupBy("rule").agg(F.sum(pairs).alias("pairs"), F.max("n").alias("largest")).collect()
    found = {r["rule"]: (float(r["pairs"] or 0.0), int(r["largest"] or 0)) for r in totals}
    return [found.get(i, (0.0, 0)) for i in range(len(rules))]


def rule_estimates(df: DataFrame, config: TransformConfig) -> list[RuleEstimate]:
    """Every candidate rule with its pair count (recall not estimated here)."""
    candidates = candidate_rules(config)
    counts = count_pairs(df, config, [rule for rule, _ in candidates])
    return [
        RuleEstimate(rule, columns, pairs, None, largest) for (rule, columns), (pairs, largest) in zip(candidates, counts)
    ]


def choose_blocking_rules(df: DataFrame, config: TransformConfig) -> BlockingChoice:
    """The union of candidate rules, most selective first, that fits the pair budget."""
    rows = df.count()
    budget = pair_budget(rows, config.accuracy_cost_tradeoff)
    estimates = rule_estimates(df, config)
    chosen, spent = [], 0.0
    for estimate in sorted(estimates, key=lambda e: (len(e.columns), e.pairs)):
        if estimate.pairs > 0 and spent + estimate.pairs <= budget:
            chosen.append(estimate)
            spent += estimate.pairs
    if not chosen:
        cheapest = min(estimates, key=lambda e: e.pairs)
        chosen, spent = [cheapest], cheapest.pairs
    report = {"rows": rows, "budget_pairs": int(budget), "estimated_pairs": int(spent), "chosen": [e.as_json() for e in chosen]}
    for estimate in chosen:
        log.info("blocking rule %s: about %d pairs", estimate.rule, int(estimate.pairs))
    return BlockingChoice([e.rule for e in chosen], estimates, report)
