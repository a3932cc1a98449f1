"""Training rules chosen from the data: the deterministic rules for lambda and the EM sessions.

**What an EM session needs.** EM splits a session's blocked pairs into two classes and
hopes the smaller, tighter one is "the same person". That only works when true matches
are a recognisable share of the pairs: blocked on a weak column (a place shared by
thousands), the matches are a sliver and EM happily learns another class instead
("lives in the same place"), in which a different surname costs nothing.

**Measuring a rule's match share.** For every candidate rule, a seeded row sample is
paired under the rule (row sampling keeps the share of matches among the pairs: matched
and unmatched pairs both survive at the sample share squared) and each pair is compared
exactly on the columns the rule does not use. A column's *evidence* is how unlikely two
random records are to share its value, ``log2(1 / u)`` bits (``u`` measured on the data:
the chance two random non-null values are equal). A pair counts as *match-like* when the
columns it agrees on carry at least half of the evidence of the columns both records
fill in. Pairs that share only a place agree on little evidence; true matches agree on
most of it, typos included. The match-like share of a rule's sampled pairs estimates its
match share.

**Choosing.** EM sessions: rules whose match share is within
[:data:`MIN_MATCH_SHARE`, :data:`MAX_MATCH_SHARE`], with at least
:data:`MIN_MATCH_PAIRS` expected matches and at most :data:`MAX_EM_PAIRS` pairs (training
counts patterns over every pair of an EM rule), picked greedily so that every comparison is
estimated at least once (a session never estimates the comparisons its rule uses, as
:func:`matcher.training.trainer.estimate_m` does), and by a second session where one is
available (Splink takes the median of the sessions' estimates). Ties go to the higher match
share, then to the rule on stronger columns. Deterministic rules (for lambda): the rules whose
pairs are nearly all matches (:data:`DETERMINISTIC_MIN_SHARE`), the ones finding most matches,
and their recall estimated by capture-recapture (:func:`estimated_true_pairs`) for the report
only: it is not reliable enough to replace the config's ``deterministic_recall`` (measured: 3x
the true matching pairs on the pseudopeople census; 0.45x on fake_1000).
Every candidate's measurement and the reason it was taken or left land in
:attr:`TrainingChoice.report` (model metadata ``setup.training``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.blocking.auto import RuleEstimate
from matcher.config.transform import BlockingRule, TransformConfig
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError
from matcher.training.column_checks import column_profile, compared_value
from matcher.training.em import IDENTIFYING_U

log = logging.getLogger(__name__)

SAMPLE_PAIRS = 20_000
"""Pairs each candidate rule is measured on (about; a row sample keeps this many on average)."""
MIN_MATCH_SHARE = 0.05
"""Fewest matches among an EM session's pairs: below one in twenty, structure among the
non-matches (households, streets, families) is a bigger class than the matches."""
MAX_MATCH_SHARE = 0.99
"""Most matches among an EM session's pairs: EM needs some non-matches to contrast."""
MIN_MATCH_PAIRS = 20
"""Fewest expected matches in an EM session (rule pairs × match share)."""
MAX_EM_PAIRS = 3_000_000
"""Most pairs an EM session may block: training compares every one of them."""
DETERMINISTIC_MIN_SHARE = 0.9
"""Share of a deterministic rule's pairs that must look like matches (lambda counts them all)."""
MIN_MEASURED_PAIRS = 10
"""Sampled pairs below which a rule's match share is not measured (too few to tell)."""
WEAK_BITS = 7.0
"""A column shared by more than one random pair in 2**7 = 128 is named weak in the reasons."""
MAX_EVIDENCE_BITS = 20.0
"""Cap on one column's evidence (a unique id would otherwise outweigh everything)."""
MIN_RECALL, MAX_RECALL = 0.05, 0.99
"""Bounds on the estimated recall of the deterministic rules (lambda divides by it)."""
_HASH_BUCKETS = 1_000_000


@dataclass(frozen=True)
class TrainingChoice:
    """The chosen training rules and a JSON report of the decision."""

    deterministic_rules: list[BlockingRule]
    em_blocking_rules: list[BlockingRule]
    report: dict[str, Any] = field(default_factory=dict)
    deterministic_recall: float | None = None
    """Estimated share of the matches the deterministic rules find (None: the config's)."""

    def as_training(self) -> dict[str, Any]:
        """The ``training`` section these rules make (:meth:`TransformConfig.resolved`)."""
        training = {"deterministic_rules": self.deterministic_rules, "em_blocking_rules": self.em_blocking_rules}
        if self.deterministic_recall is not None:
            training["deterministic_recall"] = self.deterministic_recall
        return training


@dataclass(frozen=True)
class Measured:
    """A candidate rule with its measured match share (None: too few sampled pairs)."""

    estimate: RuleEstimate
    sampled_pairs: int
    match_share: float | None

    @property
    def columns(self) -> set[str]:
        return set(self.estimate.columns)

    @property
    def expected_matches(self) -> float:
        return (self.match_share or 0.0) * self.estimate.pairs

    def as_json(self) -> dict[str, Any]:
        share = None if self.match_share is None else round(self.match_share, 4)
        return {**self.estimate.as_json(), "sampled_pairs": self.sampled_pairs, "match_share": share}


def agreement_rates(profile: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per column, the chance that two random records with a value share it, from its
    :func:`~matcher.training.column_checks.column_profile`."""
    rates = {}
    for name, p in profile.items():
        pairs = p["non_null"] * (p["non_null"] - 1) / 2
        rates[name] = p["agreeing_pairs"] / pairs if pairs > 0 else 1.0
    return rates


def evidence_bits(rates: dict[str, float]) -> dict[str, float]:
    """``log2(1 / u)`` per column, at most :data:`MAX_EVIDENCE_BITS` (a column no two records share gets the cap)."""
    return {c: min(MAX_EVIDENCE_BITS, -math.log2(u)) if u > 0 else MAX_EVIDENCE_BITS for c, u in rates.items()}


def _block_key(rule: list[str], sampled: F.Column) -> F.Column:
    """A hash of the rule's columns for a sampled row, null when not sampled or any column is null."""
    parts = [F.col(c).cast("string") for c in rule]
    missing = ~sampled
    for p in parts:
        missing = missing | p.isNull()
    return F.when(missing, None).otherwise(F.xxhash64(*parts))


def _rule_sql(rule: BlockingRule) -> str:
    return " AND ".join(f"l.`{c}` = r.`{c}`" for c in rule) if isinstance(rule, list) else rule


def sample_agreements(
    df: DataFrame, config: TransformConfig, candidates: list[RuleEstimate], seed: int = 0
) -> dict[int, list[tuple[tuple[int, ...], int]]]:
    """For each candidate (by index), the sampled pairs' exact-agreement patterns with their counts.

    A pattern holds one value per configured column: 1 agree, 0 differ, -1 either null.
    Each rule gets its own row-sample share, so that it yields about :data:`SAMPLE_PAIRS` pairs.
    The joins carry a row number and a 64-bit hash of each compared value, not the values.
    """
    columns = config.columns
    uid = F.concat_ws(":", F.col(SOURCE_DATASET_COLUMN), F.col(config.primary_key).cast("string"))
    row_hash = F.pmod(F.xxhash64(uid, F.lit(config.seed + seed)), F.lit(_HASH_BUCKETS))
    shares = {i: min(1.0, math.sqrt(SAMPLE_PAIRS / c.pairs)) for i, c in enumerate(candidates) if c.pairs > 0}
    if not shares:
        return {}
    rows = df.select(
        # candidates block on parts of the comparison columns: only those are kept
        F.col(SOURCE_DATASET_COLUMN).alias("__src"), row_hash.alias("__h"), *config.column_names
    ).where(F.col("__h") < int(max(shares.values()) * _HASH_BUCKETS)).withColumn("__id", F.monotonically_increasing_id()).cache()
    # each pair once: across inputs for link_only, else by row number (the patterns are symmetric)
    link_only = config.resolved_link_type == "link_only"
    pair_condition = "l.__src < r.__src" if link_only else "l.__id < r.__id"
    values = []
    for k, c in enumerate(columns):
        value = compared_value(c.name, c.kind)
        values.append(F.when(value.isNotNull(), F.xxhash64(value)).alias(f"__v{k}"))
    carried = ["__src" if link_only else "__id", *values]
    agreement = [
        F.when(F.col(f"l.__v{k}").isNull() | F.col(f"r.__v{k}").isNull(), F.lit(-1))
        .when(F.col(f"l.__v{k}") == F.col(f"r.__v{k}"), F.lit(1)).otherwise(F.lit(0)).alias(f"a{k}")
        for k in range(len(columns))
    ]
    parts = []
    keyed = [i for i in shares if isinstance(candidates[i].rule, list)]
    if keyed:  # rules on columns: one join on (rule, key) for all of them
        keys = F.array(*(
            F.struct(F.lit(i).alias("rule"), _block_key(candidates[i].rule, F.col("__h") < int(shares[i] * _HASH_BUCKETS)).alias("key"))
            for i in keyed
        ))
        exploded = rows.select(*carried, F.explode(keys).alias("__k")).where("__k.key IS NOT NULL")
        exploded = exploded.select("*", F.col("__k.rule").alias("__rule"), F.col("__k.key").alias("__key")).drop("__k")
        pairs = exploded.alias("l").join(
            exploded.alias("r"), F.expr(f"l.__key = r.__key AND l.__rule = r.__rule AND {pair_condition}")  # the hash first: it sorts by prefix
        )
        parts.append(pairs.select(F.col("l.__rule").alias("rule"), *agreement))
    for i in (i for i in shares if i not in keyed):  # a rule in SQL: its own join
        sampled = rows.where(F.col("__h") < int(shares[i] * _HASH_BUCKETS)).select("*", *values)
        pairs = sampled.alias("l").join(sampled.alias("r"), F.expr(f"({_rule_sql(candidates[i].rule)}) AND {pair_condition}"))
        parts.append(pairs.select(F.lit(i).alias("rule"), *agreement))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    keys = ["rule", *(f"a{k}" for k in range(len(columns)))]
    collected = union.groupBy(*keys).count().collect()
    rows.unpersist()
    patterns: dict[int, list[tuple[tuple[int, ...], int]]] = {}
    for r in collected:
        patterns.setdefault(r["rule"], []).append((tuple(r[k] for k in keys[1:]), int(r["count"])))
    return patterns


def match_share(
    patterns: list[tuple[tuple[int, ...], int]], names: list[str], rule_columns: set[str], bits: dict[str, float]
) -> tuple[int, float | None]:
    """Sampled pairs and the share of them that are match-like (agree on half the evidence of the other columns)."""
    total = matched = 0
    for pattern, count in patterns:
        available = agreed = 0.0
        for name, value in zip(names, pattern):
            if name in rule_columns or value < 0:
                continue
            available += bits[name]
            agreed += bits[name] if value == 1 else 0.0
        total += count
        if available > 0 and agreed >= available / 2:
            matched += count
    return total, (matched / total if total >= MIN_MEASURED_PAIRS else None)


def _em_verdict(m: Measured, bits: dict[str, float]) -> str | None:
    """Why a measured rule cannot be an EM session (None if it can)."""
    if m.estimate.pairs > MAX_EM_PAIRS:
        return f"more than {MAX_EM_PAIRS} pairs"
    if m.match_share is None:
        return "too few pairs to measure its match share"
    if m.match_share < MIN_MATCH_SHARE:
        weak = sorted(c for c in m.columns if bits.get(c, 0.0) < WEAK_BITS)
        what = f"weak column(s) {', '.join(weak)}: " if weak else ""
        return f"{what}mostly non-matches (estimated match share {m.match_share:.3f} < {MIN_MATCH_SHARE})"
    if m.match_share > MAX_MATCH_SHARE:
        return f"almost only matches (estimated match share {m.match_share:.3f} > {MAX_MATCH_SHARE})"
    if m.expected_matches < MIN_MATCH_PAIRS:
        return f"about {m.expected_matches:.0f} matches, fewer than {MIN_MATCH_PAIRS}"
    return None


def choose_sessions(
    measured: list[Measured], names: list[str], bits: dict[str, float]
) -> tuple[list[Measured], dict[str, str], list[str]]:
    """EM sessions covering every comparison (twice where possible); the reasons rules were left; comparisons left uncovered."""
    reasons = {}
    eligible = []
    for m in measured:
        verdict = _em_verdict(m, bits)
        if verdict:
            reasons[str(m.estimate.rule)] = verdict
        else:
            eligible.append(m)

    def strength(m: Measured) -> float:
        return sum(bits.get(c, 0.0) for c in m.columns)

    sessions: list[Measured] = []
    covered = {name: 0 for name in names}
    for wanted in (1, 2):
        while True:
            def gain(m: Measured) -> int:
                return sum(1 for n in names if n not in m.columns and covered[n] < wanted)

            options = [m for m in eligible if m not in sessions and gain(m) > 0]
            if not options:
                break
            best = max(options, key=lambda m: (gain(m), m.match_share, strength(m)))
            sessions.append(best)
            for n in names:
                if n not in best.columns:
                    covered[n] += 1
    uncovered = [n for n in names if covered[n] == 0]
    return sessions, reasons, uncovered


def choose_deterministic(measured: list[Measured]) -> list[Measured]:
    """Up to two rules whose pairs are nearly all matches, finding most matches, on different columns."""
    precise = [m for m in measured if m.match_share is not None and m.match_share >= DETERMINISTIC_MIN_SHARE]
    chosen: list[Measured] = []
    for m in sorted(precise, key=lambda m: -m.expected_matches):
        if len(chosen) < 2 and all(m.columns != c.columns for c in chosen):
            chosen.append(m)
    if not chosen:  # nothing looks precise enough: the most precise rule measured
        scored = [m for m in measured if m.match_share is not None]
        if scored:
            chosen = [max(scored, key=lambda m: (m.match_share, -m.estimate.pairs))]
    return chosen


def estimated_true_pairs(measured: list[Measured], bits: dict[str, float] | None = None) -> float | None:
    """How many record pairs are matches, by capture-recapture on pairs of one-column rules.

    For columns A and B, the matches rule A finds (``n_A``), rule B finds (``n_B``) and both
    find (the rule on A and B, ``n_AB``) give ``n_A n_B / n_AB`` matches in all, if a match's
    agreement on A says nothing about its agreement on B. The median over every such pair
    of identifying columns (``bits`` at least ``log2 1/IDENTIFYING_U``: a column of a few
    values, such as a source system that matches rarely share, breaks the independence)
    whose three rules each show at least :data:`MIN_MEASURED_PAIRS` match-like pairs in
    their samples; None without one.
    """
    identifying = -math.log2(IDENTIFYING_U)

    def counted(m: Measured) -> bool:
        return m.match_share is not None and m.match_share * m.sampled_pairs >= MIN_MEASURED_PAIRS

    singles = {
        m.estimate.columns[0]: m for m in measured
        if len(m.estimate.columns) == 1 and counted(m) and (bits is None or bits.get(m.estimate.columns[0], 0.0) >= identifying)
    }
    found = []
    for m in measured:
        if len(m.estimate.columns) != 2 or not counted(m):
            continue
        a, b = m.estimate.columns
        if a in singles and b in singles:
            found.append(singles[a].expected_matches * singles[b].expected_matches / m.expected_matches)
    if not found:
        return None
    found.sort()
    mid = len(found) // 2
    return found[mid] if len(found) % 2 else (found[mid - 1] + found[mid]) / 2


def deterministic_recall(chosen: list[Measured], true_pairs: float | None) -> float | None:
    """Share of the matches the deterministic rules find together (rules taken as independent), or None."""
    if not true_pairs or not chosen:
        return None
    missed = 1.0
    for m in chosen:
        missed *= 1.0 - min(1.0, m.expected_matches / true_pairs)
    return min(MAX_RECALL, max(MIN_RECALL, 1.0 - missed))


def choose_training_rules(
    df: DataFrame, config: TransformConfig, candidates: list[RuleEstimate], profile: dict[str, dict[str, float]] | None = None,
) -> TrainingChoice:
    """Deterministic rules and EM sessions measured on ``df`` (see the module docstring);
    ``profile``: ``df``'s :func:`~matcher.training.column_checks.column_profile`, when already counted."""
    names = config.column_names
    # training rules on whole values: conventional for EM, and measured in one join (a rule in SQL needs its own)
    pairing = [c for c in candidates if c.pairs > 0]
    usable = [c for c in pairing if isinstance(c.rule, list)] or pairing
    if not usable:
        raise InputDataError(
            f"{config.name}: no two records agree on any comparison column: no training rules can be chosen from the data"
        )
    rates = agreement_rates(profile if profile is not None else column_profile(df, config))
    bits = evidence_bits(rates)
    patterns = sample_agreements(df, config, usable)
    measured = []
    for i, candidate in enumerate(usable):
        sampled, share = match_share(patterns.get(i, []), names, set(candidate.columns), bits)
        measured.append(Measured(candidate, sampled, share))

    sessions, reasons, uncovered = choose_sessions(measured, names, bits)
    relaxed = []
    for name in uncovered:  # no eligible rule estimates it: the best-looking rule that does not block on it
        options = [m for m in measured if name not in m.columns and m.match_share is not None and m not in sessions]
        options = [m for m in options if m.estimate.pairs <= MAX_EM_PAIRS] or options
        if options:
            best = max(options, key=lambda m: (m.match_share, -m.estimate.pairs))
            sessions.append(best)
            relaxed.append({"comparison": name, "rule": best.estimate.rule, "reason": reasons.get(str(best.estimate.rule))})
            log.warning(
                "no candidate rule is a sound EM session for comparison %s; using %s anyway (%s)",
                name, best.estimate.rule, reasons.get(str(best.estimate.rule)),
            )
    if not sessions:  # nothing measurable at all: the simplest cover
        sessions = [min(measured, key=lambda m: m.estimate.pairs)]
    chosen_deterministic = choose_deterministic(measured)
    deterministic = chosen_deterministic or [min(measured, key=lambda m: m.estimate.pairs)]
    true_pairs = estimated_true_pairs(measured, bits)
    recall = deterministic_recall(chosen_deterministic, true_pairs)

    for s in sessions:
        log.info(
            "EM session blocked on %s: about %d pairs, estimated match share %s, estimates %s",
            list(s.estimate.columns), int(s.estimate.pairs),
            "unknown" if s.match_share is None else f"{s.match_share:.3f}", [n for n in names if n not in s.columns],
        )
    for d in deterministic:
        log.info("deterministic rule %s: about %d pairs, estimated match share %.3f",
                 list(d.estimate.columns), int(d.estimate.pairs), d.match_share or 0.0)
    if recall is not None:
        log.info("deterministic rules find an estimated %.2f of about %d matching pairs (reported, not used)",
                 recall, int(true_pairs))
    report = {
        "method": "match share of each candidate rule measured on a row sample; sessions cover every comparison",
        "min_match_share": MIN_MATCH_SHARE,
        "max_em_pairs": MAX_EM_PAIRS,
        "evidence_bits": {c: round(b, 2) for c, b in bits.items()},
        "em_sessions": [
            {**s.as_json(), "estimates": [n for n in names if n not in s.columns]} for s in sessions
        ],
        "deterministic": [d.as_json() for d in deterministic],
        "estimated_true_pairs": None if true_pairs is None else int(true_pairs),
        "deterministic_recall_estimate": None if recall is None else round(recall, 4),
        "rejected": reasons,
        **({"relaxed": relaxed} if relaxed else {}),
        "candidates": [m.as_json() for m in measured],
    }
    # the recall estimate is reported, not used: on the pseudopeople census it counted three times
    # the true matching pairs (cluster F1 0.916 -> 0.872), so lambda keeps the config's recall
    return TrainingChoice([d.estimate.rule for d in deterministic], [s.estimate.rule for s in sessions], report)
