"""Blocking rules chosen from the data, for a config that leaves ``blocking_rules`` out.

**Candidates.** A candidate rule is a conjunction of *keys*, each a part of one
comparison column that suits its kind (:data:`_KEYS`): the whole value of any column;
the first 3, 2 and 1 letters of a ``name`` (keys that survive a typo later in the
word); the first 3 letters of ``text`` and ``postcode`` values; the first letter of an
``initial``; the year, and the month with the day, of ``date``/``birth_date`` columns.
Every key alone, every pair of keys of different columns, and — where every two of its
keys together are still too costly — triples. A rule of whole values only is a column
list (``block_on``, which match-incremental can pre-select on); one with a derived key is
Splink SQL on ``l.``/``r.`` using only ``substr``/``year``/``month``/``day``, which Spark
and DuckDB both define alike (date columns are dates by the time Splink sees them:
:func:`matcher.model.comparisons.comparable`; the counting below reads the same
parsed values through the same SQL, so the count and the rule agree).

**Pairs.** Counted without making a pair: per key value ``n`` rows give
``n (n - 1) / 2`` pairs (``link_only``: only the pairs across inputs). One Spark job
evaluates every key with the rules' own SQL and hashes it; the driver counts every
candidate's key frequencies from those hashes (:class:`KeyedRows`). On more than
``sample_rows`` rows this runs on a seeded sample of share ``f`` (a row is kept when the hash of
its id and the seed falls below ``f``: the same rows however Spark partitions them, taken in
the order of their ids) and the counts are
scaled by ``1 / f²`` (a pair survives sampling with probability ``f²``), the largest block by
``1 / f``.

**Skew.** A rule whose largest block (one key value: a placeholder such as "UNKNOWN", a
shared phone, a very common name) alone holds more than ``skew_share`` of the pair budget is
excluded and reported with the block's size and shares — never its value.

**Recall without labels.** The Fellegi-Sunter view: per column, the share of true matches
whose values agree on each key (m) is estimated, columns taken as conditionally independent
given a match. The pairs of a few tight *anchor* rules are materialised (each at most
``anchor_pairs`` of them); on each anchor's pairs an expectation-maximisation over the
columns the anchor does not use separates matches from non-matches (u, the agreement of
random pairs, measured on random pairs of a sample and held fixed), which estimates those
columns' m without the bias of the anchor's own columns. A rule's recall is then the product
of its keys' m; the union's is measured on matches drawn from the estimated m.
**With labels** (``id_l``, ``id_r``, ``is_match``; record ids as
:func:`matcher.model.comparisons.record_id`) the labelled matches are the match sample
instead, and every recall is measured on them directly.

**Choice.** Greedy: the rule with the most recall gained per new pair (plus one pass over
the rows: every rule is a join), while the union's pairs fit :func:`pair_budget` and a rule
still adds at least ``min_gain`` recall and yields enough: at least ``min_yield`` (default
:data:`MIN_YIELD`, 2%) of the matches per budget's worth of new pairs. Without the yield a
late rule spends most of the budget on pairs that hardly ever match: at a million generated
records the last three rules the budget allowed made 62% of the pairs and 0.14% of the
accepted matches. A rule's new pairs are its pairs less the share of them the rules already
chosen find, measured on a million random pairs of the sampled rows (when it finds at least
30 of them; else all its pairs count as new). The report gives each chosen rule's
``adds_recall`` and ``new_pairs``.

``pair_budget(rows, t) = max(rows × 10^(0.5 + 2t), 10^(5 + t))`` with ``t`` the config's
``accuracy_cost_tradeoff``: 3.2 comparisons per record at ``t = 0``, 32 at the default 0.5
(32M pairs for 1M records), 316 at 1; never fewer than 100k-1M pairs in all.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.blocking.candidates import SAMPLE_BUCKETS
from matcher.config.transform import BlockingRule, ComparisonKind, TransformConfig
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, comparable, record_id

log = logging.getLogger(__name__)


MIN_YIELD = 0.02
"""A chosen rule adds at least this share of the matches per pair budget's worth of new pairs
(its estimated recall gain ≥ MIN_YIELD × new pairs / budget)."""


@dataclass(frozen=True)
class Key:
    """One part of a column's value that two records may agree on: SQL templates on ``{c}``."""

    column: str
    name: str
    parts: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return self.parts == ("{c}",)

    def sql(self) -> str:
        return " AND ".join(f"{p.format(c='l.' + self.column)} = {p.format(c='r.' + self.column)}" for p in self.parts)

    def expression(self) -> F.Column:
        """The key of a row of :func:`comparable` rows, as one string (null when a part is)."""
        parts = [F.expr(p.format(c=f"`{self.column}`")).cast("string") for p in self.parts]
        return parts[0] if len(parts) == 1 else F.concat_ws("\u241f", *parts)  # concat_ws skips nulls: checked below

    def null(self) -> F.Column:
        return functools.reduce(operator.or_, (F.expr(p.format(c=f"`{self.column}`")).isNull() for p in self.parts))


def _prefix(n: int) -> tuple[str, tuple[str, ...]]:
    return f"first_{n}", (f"substr({{c}}, 1, {n})",)


_WHOLE = ("value", ("{c}",))
_DATE_PARTS = [_WHOLE, ("year", ("year({c})",)), ("month_day", ("month({c})", "day({c})"))]
_KEYS: dict[ComparisonKind, list[tuple[str, tuple[str, ...]]]] = {
    ComparisonKind.name: [_WHOLE, _prefix(3), _prefix(2), _prefix(1)],
    ComparisonKind.text: [_WHOLE, _prefix(3)],
    ComparisonKind.postcode: [_WHOLE, _prefix(3)],
    ComparisonKind.initial: [_prefix(1)],
    ComparisonKind.date: _DATE_PARTS,
    ComparisonKind.birth_date: _DATE_PARTS,
}
"""The keys of each kind (the whole value only, for kinds not listed)."""

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def column_keys(config: TransformConfig) -> list[Key]:
    """Every key of every comparison column; a column whose name needs quoting gets only its whole value."""
    keys = []
    for column in config.columns:
        kinds = _KEYS.get(column.kind, [_WHOLE]) if _PLAIN_NAME.match(column.name) else [_WHOLE]
        keys.extend(Key(column.name, name, parts) for name, parts in kinds)
    return keys


@dataclass(frozen=True)
class RuleEstimate:
    """A candidate blocking rule and what it is expected to cost and find.

    ``pairs`` and ``largest_block`` are scaled to all rows when counted on a sample;
    ``recall`` is the estimated share of true matches the rule alone finds.
    """

    rule: BlockingRule
    columns: tuple[str, ...]
    pairs: float
    recall: float | None = None
    largest_block: int = 0
    keys: tuple[str, ...] = ()
    skewed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "columns": list(self.columns), "keys": list(self.keys), "pairs": int(self.pairs),
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


def rule_of(keys: tuple[Key, ...]) -> BlockingRule:
    """A column list when every key is a whole value, else Splink SQL."""
    if all(k.whole for k in keys):
        return [k.column for k in keys]
    return " AND ".join(k.sql() for k in keys)


def candidate_rules(config: TransformConfig) -> list[tuple[BlockingRule, tuple[str, ...]]]:
    """The single keys and pairs of keys of different columns, as rules with their columns."""
    return [(rule_of(c), tuple(k.column for k in c)) for c in _combinations(column_keys(config), 2)]


def _combinations(keys: list[Key], size: int) -> list[tuple[Key, ...]]:
    """Every combination of 1..``size`` keys, each of a different column."""
    out = []
    for n in range(1, size + 1):
        out.extend(c for c in itertools.combinations(keys, n) if len({k.column for k in c}) == n)
    return out


# --- counting ---------------------------------------------------------------------------------


class KeyedRows:
    """The rows' key hashes (one 64-bit hash per key, 0 when the key is null), on a sample when large.

    Spark evaluates every key with the rules' own SQL and hashes it, in one job over the
    (sampled) rows; the hashes come to the driver (``rows × keys`` integers, a few tens of MB at
    most), where every candidate's key frequencies are counted, every anchor's pairs listed and
    random pairs drawn, in numpy: a single Spark aggregation exploding every row into one entry
    per candidate measured ~100 s on 300k rows and 76 candidates on two cores, numpy ~5 s.
    """

    def __init__(self, df: DataFrame, config: TransformConfig, keys: list[Key], sample_rows: int) -> None:
        self.config, self.keys = config, keys
        self.link_only = config.resolved_link_type == "link_only"
        started = time.perf_counter()
        self.rows = df.count()
        self.fraction = min(1.0, sample_rows / max(self.rows, 1))
        parsed = comparable(df, config)
        self.all = parsed.select(
            record_id(config).cast("string").alias("_id"), F.col(SOURCE_DATASET_COLUMN).alias("_src"),
            *(F.when(k.null(), F.lit(0)).otherwise(F.xxhash64(k.expression())).alias(f"_h{i}") for i, k in enumerate(keys)),
        )
        sample = self.all
        if self.fraction < 1.0:
            sample = sample.where(F.pmod(F.xxhash64("_id", F.lit(config.seed)), F.lit(SAMPLE_BUCKETS)) < int(self.fraction * SAMPLE_BUCKETS))
        # in id order: the anchors' and the random pairs' draws below must not depend on Spark's partitions
        frame = sample.toPandas().sort_values("_id", ignore_index=True)
        self.hash = self.hashes(frame, "")
        self.src = pd.factorize(frame["_src"])[0].astype(np.int64)
        self.counted = len(frame)
        log.debug("keyed %d of %d rows in %.1f s", self.counted, self.rows, time.perf_counter() - started)

    def close(self) -> None:
        self.hash = np.zeros((0, len(self.keys)), dtype=np.int64)

    def hashes(self, frame: pd.DataFrame, side: str) -> np.ndarray:
        columns = [frame[f"{side}_h{i}"].to_numpy(dtype=np.int64) for i in range(len(self.keys))]
        # column-major: every candidate reads whole key columns
        return np.stack(columns).T if columns else np.zeros((len(frame), 0), dtype=np.int64)

    def combined(self, combo: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The combination's key per sampled row (wrapping multiply-add of its keys' hashes) and where it is not null."""
        valid = np.ones(self.counted, dtype=bool)
        key = np.zeros(self.counted, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i in combo:
                h = self.hash[:, i].view(np.uint64)
                valid &= h != 0
                key = key * np.uint64(0x9E3779B97F4A7C15) + h
        return key, valid

    def _pairs(self, key: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
        """Pairs of the ``valid`` sampled rows with equal ``key`` (across inputs for ``link_only``) and the largest block."""
        key = key[valid]
        if not len(key):
            return 0.0, 0.0
        n = np.unique(key, return_counts=True)[1].astype(np.float64)  # sorting alone: an inverse costs 3x more
        if self.link_only:  # less each input's pairs within itself
            src = self.src[valid]
            within = sum(float((np.unique(key[src == s], return_counts=True)[1].astype(np.float64) ** 2).sum())
                         for s in np.unique(src))
            return (float((n * n).sum()) - within) / 2, float(n.max())
        return float((n * (n - 1) / 2).sum()), float(n.max())

    def count(self, combos: list[tuple[int, ...]]) -> list[tuple[float, int]]:
        """Per combination of key indexes, its pairs and its largest block, scaled to all rows."""
        out = []
        for combo in combos:
            pairs, largest = self._pairs(*self.combined(combo))
            out.append((pairs / self.fraction**2, int(round(largest / self.fraction))))
        return out

    def agreeing_pairs(self, combo: tuple[int, ...], filled: tuple[int, ...]) -> float:
        """Pairs of rows that fill in every key of ``filled`` and agree on every key of ``combo``
        (all their pairs when ``combo`` is empty), scaled to all rows."""
        valid = np.all(self.hash[:, list(filled)] != 0, axis=1) if filled else np.ones(self.counted, dtype=bool)
        key = self.combined(combo)[0] if combo else np.zeros(self.counted, dtype=np.uint64)
        return self._pairs(key, valid)[0] / self.fraction**2

    def anchor_pairs(self, combo: tuple[int, ...], limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' hashes of up to ``limit`` of the combination's pairs (a random share when it has more)."""
        key, valid = self.combined(combo)
        order = np.flatnonzero(valid)
        order = order[np.argsort(key[order], kind="stable")]
        sorted_key = key[order]
        lefts, rights = [], []
        for d in range(1, len(order)):  # row k pairs with row k + d of the same block
            same = sorted_key[d:] == sorted_key[:-d]
            if not same.any():
                break
            lefts.append(order[:-d][same])
            rights.append(order[d:][same])
        left = np.concatenate(lefts) if lefts else np.zeros(0, dtype=np.int64)
        right = np.concatenate(rights) if rights else np.zeros(0, dtype=np.int64)
        if self.link_only:
            keep = self.src[left] != self.src[right]
            left, right = left[keep], right[keep]
        if len(left) > limit:
            keep = rng.choice(len(left), size=limit, replace=False)
            left, right = left[keep], right[keep]
        return self.hash[left], self.hash[right]

    def random_pairs(self, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' hashes of ``n_pairs`` random pairs of sampled rows (across inputs for ``link_only``)."""
        if self.counted < 2:
            return self.hash[:0], self.hash[:0]
        i, j = rng.integers(0, self.counted, n_pairs), rng.integers(0, self.counted, n_pairs)
        keep = (i != j) & ((self.src[i] != self.src[j]) if self.link_only else True)
        return self.hash[i[keep]], self.hash[j[keep]]

    def labelled_matches(self, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' hashes of the labelled matches found among all the rows (one Spark join)."""
        matches = labels.loc[labels["is_match"].astype(bool), ["id_l", "id_r"]].astype(str).drop_duplicates()
        if matches.empty:
            empty = np.zeros((0, len(self.keys)), dtype=np.int64)
            return empty, empty
        ids = self.all.sparkSession.createDataFrame(matches)
        cols = [f"_h{i}" for i in range(len(self.keys))]
        left = self.all.select(F.col("_id").alias("id_l"), *(F.col(c).alias(f"l{c}") for c in cols))
        right = self.all.select(F.col("_id").alias("id_r"), *(F.col(c).alias(f"r{c}") for c in cols))
        frame = ids.join(left, "id_l").join(right, "id_r").toPandas()
        return self.hashes(frame, "l"), self.hashes(frame, "r")


# --- agreement states and recall --------------------------------------------------------------


class _States:
    """Per column, a pair's agreement state: 0 when either value is null, else 1 + a bit per agreeing key."""

    def __init__(self, keys: list[Key], columns: list[str]) -> None:
        self.columns = columns
        self.members = [[i for i, k in enumerate(keys) if k.column == c] for c in columns]
        self.bit = {i: (ci, 1 << b) for ci, m in enumerate(self.members) for b, i in enumerate(m)}
        self.sizes = [1 + (1 << len(m)) for m in self.members]

    def of(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        out = np.zeros((len(left), len(self.columns)), dtype=np.int64)
        for ci, members in enumerate(self.members):
            null = (left[:, members] == 0).all(1) | (right[:, members] == 0).all(1)
            state = np.ones(len(left), dtype=np.int64)
            for b, i in enumerate(members):
                state += ((left[:, i] == right[:, i]) & (left[:, i] != 0)).astype(np.int64) << b  # null never agrees
            out[:, ci] = np.where(null, 0, state)
        return out

    def fires(self, states: np.ndarray, key_indexes: tuple[int, ...]) -> np.ndarray:
        hit = np.ones(len(states), dtype=bool)
        for i in key_indexes:
            ci, bit = self.bit[i]
            s = states[:, ci]
            hit &= (s > 0) & (((s - 1) & bit) > 0)
        return hit


def _distribution(states: np.ndarray, size: int, weights: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    counts = np.bincount(states, weights=weights, minlength=size).astype(float)
    counts = np.maximum(counts, floor)
    return counts / counts.sum() if counts.sum() > 0 else np.full(size, 1.0 / size)


def _em(states: np.ndarray, u: list[np.ndarray], sizes: list[int], iterations: int = 30) -> tuple[list[np.ndarray], np.ndarray]:
    """m per column (over non-null states, null taking no part) and each pair's match probability.

    u is fixed; m starts with most weight on "every key agrees"; λ is estimated.
    """
    m = []
    for size in sizes:
        start = np.full(size, 0.1 / max(size - 2, 1))
        start[0], start[-1] = 0.0, 0.9
        m.append(start / start.sum())
    lam = 0.5
    post = np.full(len(states), 0.5)
    for _ in range(iterations):
        log_bf = np.zeros(len(states))
        for c, size in enumerate(sizes):
            s = states[:, c]
            ratio = np.log(np.maximum(m[c], 1e-9)) - np.log(np.maximum(u[c], 1e-9))
            ratio[0] = 0.0
            log_bf += ratio[s]
        log_odds = np.clip(np.log(lam / (1 - lam)) + log_bf, -50, 50)
        post = 1.0 / (1.0 + np.exp(-log_odds))
        lam = float(np.clip(post.mean(), 1e-6, 1 - 1e-6))
        for c, size in enumerate(sizes):
            s = states[:, c]
            w = np.where(s > 0, post, 0.0)
            m[c] = _distribution(s, size, w, floor=1e-6)
            m[c][0] = 0.0
            m[c] /= m[c].sum()
    return m, post


def _match_sample_from_anchors(
    rows: KeyedRows, states_of: _States, anchors: list[tuple[int, ...]], anchor_pairs: int, samples: int,
    random_states: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Matches drawn column by column from m estimated on the anchors' pairs (see the module docstring)."""
    columns = states_of.columns
    u = []
    for c, size in enumerate(states_of.sizes):
        s = random_states[:, c]
        dist = _distribution(s[s > 0], size, floor=0.5)
        dist[0] = 0.0
        u.append(dist / dist.sum())
    totals = [np.zeros(size) for size in states_of.sizes]
    used: dict[str, Any] = {"anchors": [], "unestimated_columns": []}
    for combo in anchors:
        started = time.perf_counter()
        left, right = rows.anchor_pairs(combo, anchor_pairs, rng)
        log.debug("%d anchor pairs in %.1f s", len(left), time.perf_counter() - started)
        if len(left) < 20:
            continue
        states = states_of.of(left, right)
        own = {rows.keys[i].column for i in combo}
        free = [c for c, name in enumerate(columns) if name not in own]
        if not free:
            continue
        m, post = _em(states[:, free], [u[c] for c in free], [states_of.sizes[c] for c in free])
        for c in free:
            totals[c] += np.bincount(states[:, c], weights=post, minlength=states_of.sizes[c])
        used["anchors"].append({"keys": [_key_name(rows.keys[i]) for i in combo], "pairs": len(left), "matches": round(float(post.sum()), 1)})
    # which values are missing is taken from random pairs, jointly (a sparse record lacks several):
    # the anchors' pairs are records whose anchor keys are all present, too few of them sparse
    if len(random_states):
        sample = random_states[rng.integers(0, len(random_states), samples)].copy()
    else:
        sample = np.ones((samples, len(columns)), dtype=np.int64)
    for c, size in enumerate(states_of.sizes):
        totals[c][0] = 0.0
        if totals[c].sum() < 5:  # no anchor left this column out: assume it mostly agrees
            used["unestimated_columns"].append(columns[c])
            totals[c] = np.full(size, 0.1 / max(size - 2, 1))
            totals[c][0], totals[c][-1] = 0.0, 0.9
        present = sample[:, c] > 0
        sample[present, c] = rng.choice(size, size=int(present.sum()), p=totals[c] / totals[c].sum())
    return sample, used


def _key_name(key: Key) -> str:
    return key.column if key.whole else f"{key.column}.{key.name}"


# --- the choice ---------------------------------------------------------------------------------


def _estimates(
    df: DataFrame, config: TransformConfig, labels: pd.DataFrame | None, sample_rows: int, anchor_pairs: int,
    skew_share: float, samples: int, random_pairs: int = 1_000_000,
) -> tuple[list[RuleEstimate], list[tuple[int, ...]], np.ndarray, np.ndarray, _States, dict[str, Any]]:
    keys = column_keys(config)
    rows = KeyedRows(df, config, keys, sample_rows)
    try:
        budget = pair_budget(rows.rows, config.accuracy_cost_tradeoff)
        index = {k: i for i, k in enumerate(keys)}
        combos = _combinations(keys, 2)
        started = time.perf_counter()
        counted = dict(zip(combos, rows.count([tuple(index[k] for k in c) for c in combos])))
        log.debug("counted %d candidates in %.1f s", len(combos), time.perf_counter() - started)
        states_of = _States(keys, config.column_names)

        # anchors: tight rules, each the loosest that leaves some column out
        cap = max(3.0 * rows.rows, 1000.0)  # anchors: at most three pairs per record
        tight = [c for c in combos if 0 < counted[c][0] <= cap and not _skewed(counted[c], budget, skew_share)]
        anchors: list[tuple[int, ...]] = []
        for column in config.column_names:
            free = [c for c in tight if all(k.column != column for k in c)]
            if free:
                best = max(free, key=lambda c: (counted[c][0], -len(c)))
                if best not in anchors:
                    anchors.append(best)
        anchors_i = [tuple(index[k] for k in a) for a in anchors]

        details: dict[str, Any] = {"rows": rows.rows, "counted_rows": rows.counted, "sample_share": round(rows.fraction, 4)}
        labelled = None
        if labels is not None and len(labels):
            left, right = rows.labelled_matches(labels)
            if len(left) >= 10:
                labelled = states_of.of(left, right)
                details["recall_from"] = {"labelled_matches": len(labelled)}
            else:
                log.warning("only %d labelled matches found among the rows: blocking recall estimated without labels", len(left))
        started = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        # random pairs: u for the EM, the pattern of missing values, and how much rules overlap
        random_states = np.asfortranarray(np.concatenate(  # column-major: each rule reads whole columns
            [states_of.of(*rows.random_pairs(200_000, rng)).astype(np.int16) for _ in range(random_pairs // 200_000)]
        ))
        if labelled is None:
            match_sample, used = _match_sample_from_anchors(
                rows, states_of, anchors_i, anchor_pairs, samples, random_states, rng
            )
            details["recall_from"] = used
        else:
            match_sample = labelled

        log.debug("match sample in %.1f s", time.perf_counter() - started)

        def estimate(combo: tuple[Key, ...], pairs: float, largest: int) -> RuleEstimate:
            fires = states_of.fires(match_sample, tuple(index[k] for k in combo))
            return RuleEstimate(
                rule_of(combo), tuple(k.column for k in combo), pairs, float(fires.mean()) if len(fires) else None,
                largest, tuple(_key_name(k) for k in combo), _skewed((pairs, largest), budget, skew_share),
            )

        estimates = {c: estimate(c, *counted[c]) for c in combos}
        # triples where every two of their keys are still too costly for the budget
        costly = {frozenset(c) for c in combos if len(c) == 2 and counted[c][0] > budget / 4}
        triples = [
            t for t in _combinations(keys, 3) if len(t) == 3 and all(frozenset(p) in costly for p in itertools.combinations(t, 2))
        ]
        started = time.perf_counter()
        if triples:
            recall = {t: states_of.fires(match_sample, tuple(index[k] for k in t)).mean() for t in triples}
            triples = sorted(triples, key=lambda t: -recall[t])[:100]
            for t, counts in zip(triples, rows.count([tuple(index[k] for k in t) for t in triples])):
                estimates[t] = estimate(t, *counts)
            log.debug("counted %d triples in %.1f s", len(triples), time.perf_counter() - started)
        combos_all = list(estimates)
        combos_i = [tuple(index[k] for k in c) for c in combos_all]
        return [estimates[c] for c in combos_all], combos_i, match_sample, random_states, states_of, details
    finally:
        rows.close()


def _added_json(recall: float, pairs: float) -> dict[str, Any]:
    """What a rule adds to the rules chosen before it: estimated recall and new pairs."""
    return {"adds_recall": round(recall, 6), "new_pairs": int(pairs)}


def _skewed(counted: tuple[float, int], budget: float, share: float) -> bool:
    _, largest = counted
    return largest * (largest - 1) / 2 > share * budget


def rule_estimates(
    df: DataFrame, config: TransformConfig, *, labels: pd.DataFrame | None = None, sample_rows: int = 300_000,
) -> list[RuleEstimate]:
    """Every candidate rule with its pairs, largest block and estimated recall."""
    return choose_blocking_rules(df, config, labels=labels, sample_rows=sample_rows).candidates


def choose_blocking_rules(
    df: DataFrame, config: TransformConfig, *, labels: pd.DataFrame | None = None, sample_rows: int = 300_000,
    anchor_pairs: int = 50_000, skew_share: float = 0.1, min_gain: float = 0.001, min_yield: float = MIN_YIELD,
    samples: int = 20_000,
) -> BlockingChoice:
    """The union of candidate rules with the most estimated recall within the pair budget (module docstring)."""
    estimates, combos, match_sample, random_states, states_of, details = _estimates(
        df, config, labels, sample_rows, anchor_pairs, skew_share, samples
    )
    rows = details["rows"]
    budget = pair_budget(rows, config.accuracy_cost_tradeoff)
    fires = [states_of.fires(match_sample, c) for c in combos]
    usable = [i for i, e in enumerate(estimates) if not e.skewed and e.pairs <= budget and e.recall]
    # the random pairs each usable rule finds: the share of them the chosen rules already find
    # is the share of its pairs the union already has (when it finds enough random pairs to tell)
    hits = {i: np.flatnonzero(states_of.fires(random_states, combos[i])) for i in usable}
    seen = np.zeros(len(random_states), dtype=bool)

    def new_pairs(i: int) -> float:
        found = hits[i]
        return estimates[i].pairs * (1.0 - seen[found].mean()) if len(found) >= 30 else estimates[i].pairs

    covered = np.zeros(len(match_sample), dtype=bool)
    chosen: list[int] = []
    added: dict[int, tuple[float, float]] = {}  # per chosen rule: the recall and the pairs it adds to the rules before it
    spent = 0.0
    floor = float(rows)  # every rule also costs a pass over the rows (a join), however few pairs it makes
    while True:
        best, best_score, best_cost, best_gain = None, 0.0, 0.0, 0.0
        for i in usable:
            cost = new_pairs(i)
            if i in chosen or spent + cost > budget:
                continue
            gain = float((fires[i] & ~covered).mean())
            score = gain / (cost + floor)
            if gain >= max(min_gain, min_yield * cost / budget) and score > best_score:
                best, best_score, best_cost, best_gain = i, score, cost, gain
        if best is None:
            break
        chosen.append(best)
        added[best] = (best_gain, best_cost)
        covered |= fires[best]
        seen[hits[best]] = True
        spent += best_cost

    def alone(i: int) -> tuple[list[int], np.ndarray, float, dict[int, tuple[float, float]]]:
        found = float(fires[i].mean()) if len(fires[i]) else 0.0
        return [i], fires[i].copy(), estimates[i].pairs, {i: (found, estimates[i].pairs)}

    single = max(usable, key=lambda i: estimates[i].recall or 0.0, default=None)
    if single is not None and (estimates[single].recall or 0.0) > covered.mean():
        chosen, covered, spent, added = alone(single)  # greedy by ratio can do worse
    if not chosen:
        chosen, covered, spent, added = alone(
            min((i for i, e in enumerate(estimates) if e.pairs > 0), key=lambda i: estimates[i].pairs, default=0))
    union_recall = float(covered.mean()) if len(covered) else None
    skewed = [
        {**e.as_json(), "largest_block_share_of_rows": round(e.largest_block / max(rows, 1), 4),
         "largest_block_share_of_pairs": round(e.largest_block * (e.largest_block - 1) / 2 / e.pairs, 4) if e.pairs else 0.0}
        for e in estimates if e.skewed
    ]
    report = {
        **details,
        "link_type": config.resolved_link_type,
        "accuracy_cost_tradeoff": config.accuracy_cost_tradeoff,
        "budget_pairs": int(budget),
        "candidates_considered": len(estimates),
        "candidates": [e.as_json() for e in estimates],
        "chosen": [{**estimates[i].as_json(), **_added_json(*added[i])} for i in chosen],
        "estimated_pairs": int(spent),
        "estimated_pairs_without_overlaps_removed": int(sum(estimates[i].pairs for i in chosen)),
        "estimated_recall": None if union_recall is None else round(union_recall, 4),
        "excluded_skewed": skewed,
    }
    for i in chosen:
        e = estimates[i]
        gain, new = added[i]
        log.info("blocking rule %s: about %d pairs (%d new), estimated recall %.3f (adds %.4f)",
                 e.rule, int(e.pairs), int(new), e.recall or 0.0, gain)
    log.info(
        "automatic blocking: %d rules, about %d pairs (budget %d), estimated recall %.3f; %d skewed candidates excluded",
        len(chosen), int(spent), int(budget), union_recall or 0.0, len(skewed),
    )
    return BlockingChoice([estimates[i].rule for i in chosen], estimates, report)
