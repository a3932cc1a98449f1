"""Train a Fellegi-Sunter model on Spark: lambda, u by random sampling, m by EM.

Stock Splink runs every EM iteration and every u-sampling chunk as its own Spark job.
Here each estimate costs one Spark aggregation: the blocked (or sampled) pairs are
turned into comparison vectors and counted per distinct pattern in Spark, the counts
(a few hundred rows) are collected, and the arithmetic runs in the driver
(:mod:`matcher.training.em`). The estimates are written back into Splink's settings, so the
saved model is an ordinary Splink model. Counting lives in :mod:`matcher.training.patterns`.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from datetime import datetime, timezone

import pandas as pd
from pyspark.sql import DataFrame
from splink import Linker

from matcher.blocking.candidates import (
    SAMPLE_BUCKETS, Candidates, FlaggedCounts, PairSet, count_flagged_patterns, outside_predictions,
)
from matcher.config.harmonization import SOURCE_SYSTEM
from matcher.config.transform import BlockingRule as RuleSpec
from matcher.config.transform import TransformConfig
from matcher.model.artifact import TrainedModel, make_linker, versions
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, blocking_rule
from matcher.model.dependence import with_derived_gammas
from matcher.model.postcode import column_formats, resolve_formats
from matcher.model.splink_adapter import (
    BlockingRule, Settings, add_trained_m, add_trained_u, apply_trained_m_u, bayes_factor, bayes_factor_to_prob,
    columns_used_by_sql, comparison_input_columns, forget_trained_m, gamma_columns, is_fixed, lambda_of,
    levels_implied_by_rule, link_type, model_settings, non_null_levels, prob_to_bayes_factor, set_lambda,
    to_blocking_rule,
)
from matcher.runtime.errors import InputDataError
from matcher.runtime.progress import step
from matcher.training.calibration import calibrate_lambda, estimate_threshold
from matcher.training.column_checks import check_columns, repeated_evidence
from matcher.training.dependence import add_groups, measure, place_columns
from matcher.training.em import checked_expectation_maximisation, log_findings
from matcher.training.evidence_against import enforce_evidence_against
from matcher.training.patterns import add_counts, fixed_bits, gammas, level_counts, of_set, pattern_counts
from matcher.training.setup import automatic_setup

log = logging.getLogger(__name__)

_DIALECT = "spark"
U_MIN_COUNT_PER_LEVEL = 100  # as Splink: each level of a comparison seen this often in the u sample
U_PROBE_SHARE = 0.02  # share of the u sample used to measure how common each level is
U_PROBE_SAFETY = 1.25  # evaluate a quarter more than the share the probe says is needed
MIN_M = 1e-12
"""Least m an EM session records: a level matches never reach (Splink refuses values near float underflow)."""
MIN_TRAINING_RECORDS = 3
"""Fewest records training accepts. Lambda and u are shares of all record pairs, and EM
splits pairs into matches and non-matches, so it needs at least two pairs to tell them
apart: two records make one pair, three make three."""


def _rule(rule: RuleSpec) -> BlockingRule:
    return to_blocking_rule(blocking_rule(rule), _DIALECT)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def describe_inputs(config: TransformConfig, sizes: list[int]) -> str:
    """The input file(s) and their rows, to start an error message: ``data/x.csv: 2 rows``."""
    if config.sources is not None:
        return f"{', '.join(s.path for s in config.sources)}: {_rows(sum(sizes))}"
    if len(sizes) == 1:
        return f"{config.inputs[0].path}: {_rows(sizes[0])}"
    return ", ".join(f"{spec.path} ({_rows(n)})" for spec, n in zip(config.inputs, sizes))


def check_enough_records(config: TransformConfig, sizes: list[int]) -> None:
    """Refuse, naming the input file(s), inputs with fewer than :data:`MIN_TRAINING_RECORDS` records."""
    if sum(sizes) < MIN_TRAINING_RECORDS:
        raise InputDataError(
            f"{describe_inputs(config, sizes)}: training needs at least {MIN_TRAINING_RECORDS} records (pairs to learn from)"
        )


def _total_pairs(sizes: list[int], link_type: str) -> float:
    n = sum(sizes)
    if link_type == "link_only":
        return (n * n - sum(s * s for s in sizes)) / 2
    return n * (n - 1) / 2


def thinning_fractions(probe: list[dict[int, float]], probe_pairs: int, full_pairs: float, min_count: int) -> list[float]:
    """Share of the full sample each comparison needs so its rarest level is seen ``min_count`` times.

    A comparison with a level the probe never saw is evaluated on every pair.
    """
    fractions = []
    for levels in probe:
        expected = [c / probe_pairs * full_pairs for c in levels.values()]
        if not expected or min(expected) == 0:
            fractions.append(1.0)
        else:
            fractions.append(min(1.0, U_PROBE_SAFETY * min_count / min(expected)))
    return fractions


class USampler:
    """Random pairs for u: row samples chosen by a seeded hash of the record id.

    ``full`` holds about ``config.u_max_pairs`` pairs; ``probe`` is a nested sample of
    :data:`U_PROBE_SHARE` of them, used to measure how common each comparison level is.
    """

    def __init__(self, linker: Linker, config: TransformConfig, sizes: list[int]):
        settings = model_settings(linker)
        self.total_pairs = _total_pairs(sizes, link_type(settings))
        self.proportion = min(1.0, math.sqrt(config.u_max_pairs / max(self.total_pairs, 1)))
        uid = settings.column_info_settings.unique_id_input_column.name
        key = f"concat({SOURCE_DATASET_COLUMN}, '-', cast({uid} as string))" if len(sizes) > 1 else f"cast({uid} as string)"
        self._row_hash = f"pmod(xxhash64({key}, {config.seed}), {SAMPLE_BUCKETS})"
        everything = BlockingRule("1=1", _DIALECT)
        self.probe = PairSet("u_probe", everything, self._sample(U_PROBE_SHARE))
        self.full = PairSet("u_sample", everything, self._sample(1.0))

    def _sample(self, share: float) -> str:
        return f"{self._row_hash} < {max(1, int(self.proportion * math.sqrt(share) * SAMPLE_BUCKETS))}"


def estimate_lambda(
    linker: Linker, config: TransformConfig, observed: int, total_pairs: float, *, data: str | None = None
) -> None:
    """Lambda as Splink estimates it: the pairs the deterministic rules find, divided by
    their assumed recall, as a share of all possible pairs (``data`` names the inputs in errors)."""
    recall = config.training.deterministic_recall
    if total_pairs < 1:  # link_only with every record in one input
        raise InputDataError(f"{data or config.name}: no two records can be paired: too little data to learn from")
    if observed > total_pairs * recall:
        raise InputDataError(
            f"{config.name}: training.deterministic_rules find {observed} of {total_pairs:.0f} possible pairs, "
            f"more than training.deterministic_recall {recall} allows; raise it to at least {observed / total_pairs:.2f}"
        )
    if observed == 0:
        log.warning("training.deterministic_rules found no pairs: the model will expect no matches")
    set_lambda(linker, observed / recall / total_pairs)


def u_fractions(linker: Linker, sampler: USampler, probe: pd.DataFrame) -> list[float]:
    """The share of the u sample's pairs each comparison needs (:func:`thinning_fractions`).

    Like Splink, a comparison stops needing pairs once each of its levels has been seen
    ``U_MIN_COUNT_PER_LEVEL`` times; here the ``probe`` counts say how common each level
    is, so the full sample is one Spark job, not one per comparison and chunk.
    """
    settings = model_settings(linker)
    probe_pairs = int(probe["pattern_count"].sum())
    if probe_pairs == 0:
        return [1.0] * len(settings.comparisons)
    full_pairs = sampler.total_pairs * sampler.proportion**2
    return thinning_fractions(level_counts(settings, probe), probe_pairs, full_pairs, U_MIN_COUNT_PER_LEVEL)


def estimate_u(
    linker: Linker, config: TransformConfig, frame: pd.DataFrame, fractions: list[float], probe_pairs: int,
    *, data: str | None = None,
) -> dict:
    """Set u from the pattern counts of the randomly sampled pairs.

    A level never seen gets u = 1 / pairs (an upper bound). ``data`` names the inputs in
    errors (:func:`describe_inputs`; the config's name without it).
    """
    settings = model_settings(linker)
    pairs = int(frame["pattern_count"].sum())
    if pairs == 0:
        raise InputDataError(
            f"{data or config.name}: u estimation sampled no record pairs: too little data to learn from"
        )
    for cc, counts in zip(settings.comparisons, level_counts(settings, frame)):
        denominator = sum(counts.values()) or 1.0
        for level in non_null_levels(cc):
            seen = counts[level.comparison_vector_value]
            add_trained_u(level, max(seen, 1.0) / denominator, "estimate u by random sampling")
    apply_trained_m_u(linker)
    return {
        "sampled_pairs": pairs,
        "probe_pairs": probe_pairs,
        "evaluated_share": {cc.output_column_name: round(f, 4) for cc, f in zip(settings.comparisons, fractions)},
    }


def _blocking_adjusted_lambda(settings: Settings, rule: BlockingRule) -> float:
    """Probability that a pair blocked by ``rule`` matches (lambda times the rule's Bayes factors)."""
    factor = prob_to_bayes_factor(lambda_of(settings))
    for level in levels_implied_by_rule(settings, rule):
        factor *= bayes_factor(level)
    return bayes_factor_to_prob(factor)


def estimate_m(
    linker: Linker, config: TransformConfig, rule: BlockingRule, frame: pd.DataFrame, *, data: str | None = None
) -> dict:
    """One EM session on the pattern counts of the pairs ``rule`` blocks.

    Comparisons that use the rule's columns are not estimated, as in Splink. ``data``
    names the inputs in errors (:func:`describe_inputs`; the config's name without it).
    """
    settings = model_settings(linker)
    used = set(columns_used_by_sql(rule.blocking_rule_sql, _DIALECT))
    active = [k for k, cc in enumerate(settings.comparisons) if not is_fixed(cc) and not used & comparison_input_columns(cc)]
    if frame.empty:
        raise InputDataError(
            f"{data or config.name}: training.em_blocking_rules {rule.blocking_rule_sql!r} finds no record pairs: "
            "too little data to learn from (or a rule too strict for it)"
        )
    comparisons = [settings.comparisons[k] for k in active]
    levels = [non_null_levels(cc) for cc in comparisons]
    names = [cc.output_column_name for cc in comparisons]
    checked = checked_expectation_maximisation(
        gammas(settings, frame)[:, active],
        frame["pattern_count"].to_numpy(),
        [{cl.comparison_vector_value: cl.m_probability for cl in lv} for lv in levels],
        [{cl.comparison_vector_value: cl.u_probability for cl in lv} for lv in levels],
        _blocking_adjusted_lambda(settings, rule),
        names,
        max_iterations=config.training.max_iterations,
        convergence=config.training.em_convergence,
        offset=fixed_bits(settings, frame),
    )
    result = checked.result
    log_findings(f"blocked on {rule.blocking_rule_sql}", checked)
    description = f"EM, blocked on: {rule.blocking_rule_sql}"
    for lv, m in zip(levels, result.m):
        for cl in lv:
            if cl.comparison_vector_value in m:
                add_trained_m(cl, max(m[cl.comparison_vector_value], MIN_M), description)
    apply_trained_m_u(linker)
    return {
        "blocking_rule": rule.blocking_rule_sql,
        "pairs": int(frame["pattern_count"].sum()),
        "patterns": len(frame),
        "iterations": result.iterations,
        "lambda_blocked": result.probability_two_random_records_match,
        "estimated": [n for n in names if n not in checked.dropped],
        **({"checks": checked.as_json()} if checked.findings else {}),
    }


def train(
    df: DataFrame, config: TransformConfig, *, labels: pd.DataFrame | None = None, labels_hash: str | None = None,
    candidates: Candidates | None = None,
) -> TrainedModel:
    """Estimate lambda, u and m for ``df`` (from :func:`matcher.harmonize.ingest.read_inputs`).

    With ``labels`` (labeled pairs: ``id_l``, ``id_r``, ``is_match``; see
    :mod:`matcher.labels.files`), m is then re-estimated from the labeled matches with EM's
    estimate as the prior (:mod:`matcher.training.supervision`); ``labels_hash`` is recorded.
    ``candidates`` keeps the compared candidate pairs for scoring in the same run.

    A ``format: auto`` postcode column gets the format its values have
    (:func:`matcher.model.postcode.resolve_formats`), recorded as
    ``metadata['column_formats']`` so matching compares with the same levels
    (:meth:`TrainedModel.configure`); the config hash stays that of ``config`` as written.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    step("profile inputs")
    config = resolve_formats(df, config)
    by = SOURCE_SYSTEM if config.links_sources else SOURCE_DATASET_COLUMN  # one Splink table per source or input
    sizes_by_input = {r[by]: r["count"] for r in df.groupBy(by).count().collect()}
    sizes = [int(sizes_by_input.get(name, 0)) for name in config.dataset_names]
    check_enough_records(config, sizes)
    data = describe_inputs(config, sizes)
    profile = check_columns(df, config, data, sum(sizes))
    advice = repeated_evidence(config)
    step("automatic setup")
    # what the config leaves to the data
    setup = automatic_setup(df, config, labels if labels is not None and len(labels) else None, profile)
    # lambda from the candidates' mixture replaces the deterministic rules' only when the rules are chosen here
    mixture_lambda_for_model = "training.deterministic_rules" in config.automatic
    config = setup.config
    timings["setup"] = time.perf_counter() - started
    linker = make_linker(df, config, records=sum(sizes))
    # without a run's shared candidates, compare them here and release them when done
    with Candidates() if candidates is None else nullcontext(candidates) as candidates:
        # job 1 compares every candidate pair once and counts the patterns of the training sets
        # among them (deterministic rules, EM sessions) and of the u probe
        t = time.perf_counter()
        step("compare candidate pairs")
        settings = model_settings(linker)
        sampler = USampler(linker, config, sizes)
        deterministic = [PairSet(f"deterministic_{i}", _rule(r)) for i, r in enumerate(config.training.deterministic_rules)]
        em_sets = [PairSet(f"em_{i}", _rule(r)) for i, r in enumerate(config.training.em_blocking_rules)]
        vectors = candidates.get(linker, [*deterministic, *em_sets, sampler.probe])
        counts = count_flagged_patterns(vectors, settings)
        timings["count_patterns"] = time.perf_counter() - t

        # job 2 counts the u sample and the training sets' pairs that no prediction rule finds
        t = time.perf_counter()
        step("u estimation")
        probe = counts.of_set(sampler.probe)
        fractions = u_fractions(linker, sampler, probe)
        outside = [*outside_predictions(settings, deterministic, cumulative=True), *outside_predictions(settings, em_sets)]
        rest = pattern_counts(linker, [sampler.full, *outside], fractions=fractions, seed=config.seed, inputs=vectors.inputs)
        timings["u"] = time.perf_counter() - t

        t = time.perf_counter()
        beyond_candidates = rest.loc[rest["pair_set"].isin([d.name for d in deterministic]), "pattern_count"]
        observed = counts.pairs_in_any(deterministic) + int(beyond_candidates.sum())
        estimate_lambda(linker, config, observed, sampler.total_pairs, data=data)
        timings["lambda"] = time.perf_counter() - t
        u_sampling = estimate_u(
            linker, config, of_set(rest, sampler.full), fractions, int(probe["pattern_count"].sum()), data=data
        )

        t = time.perf_counter()
        step("EM", total=len(em_sets), unit="sessions")

        def em_sessions() -> list[dict]:
            return [estimate_m(linker, config, s.rule, add_counts(counts.of_set(s), of_set(rest, s)), data=data) for s in em_sets]

        sessions = em_sessions()
        timings["m"] = time.perf_counter() - t

        # comparisons that agree together among non-matches: measured with the first estimates, then EM again
        t = time.perf_counter()
        step("dependence")
        groups = measure(df, config, settings, counts.of_predictions()) if config.training.correct_dependence else []
        capped: list[str] = []
        if groups:
            capped = add_groups(settings, groups, place_columns(config))
            counts = FlaggedCounts(with_derived_gammas(settings, counts.frame), tuple(gamma_columns(settings)))
            rest = with_derived_gammas(settings, rest)
            forget_trained_m(settings)
            sessions = em_sessions()
        timings["dependence"] = time.perf_counter() - t

        t = time.perf_counter()
        candidate_patterns = counts.of_predictions()
        evidence_against = enforce_evidence_against(linker, settings, candidate_patterns)
        timings["evidence_against"] = time.perf_counter() - t

        t = time.perf_counter()
        step("lambda")
        lambdas = calibrate_lambda(
            settings, candidate_patterns, of_set(rest, sampler.full), sampler.total_pairs,
            use_mixture=mixture_lambda_for_model, observed=observed,
        )
        if lambdas["used"] == "mixture":
            set_lambda(linker, lambdas["mixture"])
        timings["lambda_mixture"] = time.perf_counter() - t

    supervised = None
    if labels is not None and len(labels):
        from matcher.training.supervision import learn_from_labels

        t = time.perf_counter()
        step("learn from labels")
        supervised = {"labels_hash": labels_hash, **learn_from_labels(df, config, linker, labels)}
        timings["labels"] = time.perf_counter() - t
    step("threshold")
    estimated = estimate_threshold(
        model_settings(linker), candidate_patterns, config.precision_recall_tradeoff, lambdas["blocking_recall"]
    )
    timings["total"] = time.perf_counter() - started

    metadata = {
        "config_hash": config.model_hash(),
        "config_name": config.name,
        "seed": config.seed,
        "rows": sum(sizes),
        "rows_per_input": dict(zip(config.dataset_names, sizes)),
        "column_formats": column_formats(config),
        "probability_two_random_records_match": lambda_of(settings),
        "lambda": lambdas,
        **({"estimated_threshold": estimated.as_dict()} if estimated is not None else {}),
        "u_sampling": u_sampling,
        "em_sessions": sessions,
        **({"evidence_against": evidence_against} if evidence_against else {}),
        **({"dependence": [g.as_json() for g in groups]} if groups else {}),
        **({"term_frequency_capped": capped} if capped else {}),
        "columns": profile,
        **({"column_advice": advice} if advice else {}),
        **({"setup": setup.report} if setup.report else {}),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        **({"labels": supervised} if supervised else {}),
        "versions": versions(),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.info(
        "trained on %d rows in %.1f s (u from %d sampled pairs, %d EM sessions)",
        sum(sizes), timings["total"], u_sampling["sampled_pairs"], len(sessions),
    )
    return TrainedModel(linker.misc.save_model_to_json(), metadata)
