"""Enforced matches: must-link and cannot-link pair lists and exact-match rules, as record-id pairs.

Configured under ``enforced`` (see ``docs/labeling.md``)::

    enforced:
      must_link: data/known_matches.csv        # CSV with columns id_l, id_r (record ids)
      cannot_link: data/known_non_matches.csv  # same format
      exact_rules: [[email]]                   # same normalised email -> same customer

A record id is the primary key, or ``<input>:<key>`` with several inputs. An exact rule
links records whose values, trimmed and lower-cased, agree on every column of the rule
(null or empty values never link). :func:`matcher.matching.clustering.cluster_with_constraints`
makes the clusters respect them.

The data stewards' decisions (``<run>/decisions.jsonl``, :mod:`matcher.matching.decisions`)
are enforced the same way: :func:`run_decisions` turns the decisions in force into must-
and cannot-links and the ids they gave, of the rows' id type; decided records that are no
longer in the inputs are dropped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType

from matcher.config.base import RECORD_ID
from matcher.config.transform import EnforcedSpec, TransformConfig
from matcher.matching.decisions import (
    Decision,
    DecisionLog,
    contradiction,
    counts,
    decided_ids,
    decided_records,
    decision_links,
    ids_named,
)
from matcher.runtime.errors import InputDataError
from matcher.runtime.remote_folder import readable_locally

log = logging.getLogger(__name__)

_SHOWN = 10


@dataclass(frozen=True)
class EnforcedLinks:
    """Must-link and cannot-link pairs (``id_l``, ``id_r``) with record ids of the rows' type."""

    must_link: pd.DataFrame
    cannot_link: pd.DataFrame


def _read_pairs(path: str) -> pd.DataFrame:
    try:
        with readable_locally(path) as local:
            pairs = pd.read_csv(local, dtype=str, keep_default_na=False)
    except (FileNotFoundError, InputDataError):
        raise InputDataError(f"{path}: enforced pair list not found") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputDataError(f"{path}: cannot read enforced pair list ({str(err).splitlines()[0]})") from None
    missing = [c for c in ("id_l", "id_r") if c not in pairs.columns]
    if missing:
        raise InputDataError(f"{path}: column(s) {', '.join(missing)} missing (has: {', '.join(pairs.columns)})")
    pairs = pairs[["id_l", "id_r"]].apply(lambda c: c.str.strip())
    blank = pairs.index[(pairs == "").any(axis=1)]
    if len(blank):
        raise InputDataError(f"{path}: empty record id on data row(s) {', '.join(str(i + 1) for i in blank[:_SHOWN])}")
    return pairs


def _shown(ids: list) -> str:
    return ", ".join(map(str, ids[:_SHOWN])) + (f" (and {len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else "")


def known_ids(wanted: Iterable[str], ids: DataFrame) -> dict[str, Any]:
    """Text id → the rows' record id (``ids`` has ``record_id``), for the ``wanted`` ids the rows hold."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    found = (
        ids.sparkSession.createDataFrame(pd.DataFrame({"text": wanted}))
        .join(ids.select(F.col(RECORD_ID).cast("string").alias("text"), RECORD_ID), "text")
        .toPandas()
    )
    return dict(zip(found["text"], found[RECORD_ID]))


def _typed(pairs: pd.DataFrame, ids: DataFrame, path: str) -> pd.DataFrame:
    """Text ids → the rows' record ids; ids not in the source are an error listing them."""
    if pairs.empty:
        typed = ids.select(RECORD_ID).limit(0).toPandas()[RECORD_ID]
        return pd.DataFrame({"id_l": typed, "id_r": typed})
    wanted = pd.unique(pd.concat([pairs["id_l"], pairs["id_r"]]))
    lookup = known_ids(wanted, ids)
    unknown = [t for t in wanted if t not in lookup]
    if unknown:
        raise InputDataError(f"{path}: {len(unknown)} record id(s) not in the inputs: {_shown(unknown)}")
    return pd.DataFrame({"id_l": pairs["id_l"].map(lookup), "id_r": pairs["id_r"].map(lookup)})


@dataclass(frozen=True)
class DecidedLinks:
    """The decisions in force of a decision log, with record ids of the rows' type."""

    must_link: pd.DataFrame  # id_l, id_r
    cannot_link: pd.DataFrame  # id_l, id_r
    ids: dict[str, Any]  # record id as text → the match_id the decisions gave it
    records: list  # the rows' records that a decision names, or whose id a decision gave
    facts: dict[str, Any]  # for summary.json: in force by action, links, ids dropped


def decided_links(decisions: list[Decision], where: str | Path, lookup: Mapping[str, Any], integral: bool) -> DecidedLinks:
    """The links and ids that ``decisions`` enforce on the records of ``lookup`` (text id → record id).

    ``integral``: record ids are whole numbers (a decided id that names no record is read as
    one). A contradiction is an :class:`InputDataError` naming ``where``; decided records not
    in ``lookup`` are dropped, with their links, and one warning.
    """
    pair = contradiction(decisions)
    if pair is not None:
        raise InputDataError(f"{where}: the decisions contradict each other: must-links join {pair[0]}~{pair[1]}, "
                             "which a decision keeps apart; undo one of them")
    named = decided_records(decisions)
    dropped = sorted(named - set(lookup))
    if dropped:
        log.warning("%s: %d decided record id(s) are no longer in the inputs; their links are dropped: %s",
                    where, len(dropped), _shown(dropped))

    def typed(pairs: pd.DataFrame) -> pd.DataFrame:
        kept = pairs[pairs["id_l"].isin(lookup) & pairs["id_r"].isin(lookup) & (pairs["id_l"] != pairs["id_r"])]
        return pd.DataFrame({"id_l": kept["id_l"].map(lookup), "id_r": kept["id_r"].map(lookup)}).reset_index(drop=True)

    def as_id(text: str) -> Any:
        if text in lookup:
            return lookup[text]
        if not integral:
            return text
        return int(text) if text.lstrip("-").isdigit() else None

    must, cannot = (typed(p) for p in decision_links(decisions))
    ids = {r: as_id(i) for r, i in decided_ids(decisions).items() if r in lookup}
    ids = {r: i for r, i in ids.items() if i is not None}
    records = [lookup[t] for t in sorted((named | {str(i) for i in ids.values()}) & set(lookup))]
    facts = {"file": str(where), "in_force": counts(decisions), "must_links": len(must), "cannot_links": len(cannot),
             "ids_dropped": len(dropped)}
    return DecidedLinks(must, cannot, ids, records, facts)


def run_decisions(decisions: DecisionLog, ids: DataFrame) -> DecidedLinks | None:
    """The links and ids of the log ``decisions`` on the rows ``ids`` (with ``record_id``); None without a log."""
    if not decisions.path.exists():
        return None
    with decisions.locked() as read:  # a line being appended is never read half-written
        decided = list(read)
    wanted = ids_named(decided)
    integral = isinstance(ids.schema[RECORD_ID].dataType, IntegralType)
    return decided_links(decided, decisions.path, known_ids(wanted, ids), integral)


def exact_rule_links(rows: DataFrame, rules: list[list[str]]) -> DataFrame:
    """Must-link pairs from exact rules: each record to the smallest record id sharing its normalised values."""
    links = None
    for rule in rules:
        keys = [F.lower(F.trim(F.col(c).cast("string"))).alias(f"_k{i}") for i, c in enumerate(rule)]
        keyed = rows.select(RECORD_ID, *keys)
        for i in range(len(rule)):
            keyed = keyed.where(F.col(f"_k{i}").isNotNull() & (F.col(f"_k{i}") != ""))
        group = Window.partitionBy(*[f"_k{i}" for i in range(len(rule))])
        pairs = (
            keyed.withColumn("id_l", F.min(RECORD_ID).over(group))
            .where(F.col(RECORD_ID) != F.col("id_l"))
            .select("id_l", F.col(RECORD_ID).alias("id_r"))
        )
        links = pairs if links is None else links.unionByName(pairs)
    return links


def enforced_links(
    rows: DataFrame, config: TransformConfig, labeled: pd.DataFrame | None = None, decided: DecidedLinks | None = None,
) -> EnforcedLinks | None:
    """The configured must-links (pair list + exact rules) and cannot-links; None when nothing is enforced.

    ``rows`` has ``record_id`` and the exact rules' columns. ``labeled`` pairs (``id_l``,
    ``id_r`` as text, ``is_match``; used when ``labels.enforce_in_clustering`` is set)
    add their matches as must-links and their non-matches as cannot-links, and so do the
    ``decided`` links (:func:`run_decisions`).
    """
    spec = config.enforced
    has_labels = labeled is not None and len(labeled) > 0
    has_decided = decided is not None and len(decided.must_link) + len(decided.cannot_link) > 0
    if not (has_labels or has_decided) and (spec is None or not (spec.must_link or spec.cannot_link or spec.exact_rules)):
        return None
    spec = spec or EnforcedSpec()
    ids = rows.select(RECORD_ID)
    empty = _typed(pd.DataFrame({"id_l": [], "id_r": []}), ids, "")
    must = _typed(_read_pairs(spec.must_link), ids, spec.must_link) if spec.must_link else empty
    cannot = _typed(_read_pairs(spec.cannot_link), ids, spec.cannot_link) if spec.cannot_link else empty
    if has_labels:
        typed = _typed(labeled[["id_l", "id_r"]].astype(str).reset_index(drop=True), ids, "labels")
        is_match = labeled["is_match"].to_numpy(bool)
        must = pd.concat([must, typed[is_match]], ignore_index=True)
        cannot = pd.concat([cannot, typed[~is_match]], ignore_index=True)
    if has_decided:
        must = pd.concat([must, decided.must_link], ignore_index=True)
        cannot = pd.concat([cannot, decided.cannot_link], ignore_index=True)
    if spec.exact_rules:
        must = pd.concat([must, exact_rule_links(rows, spec.exact_rules).toPandas()], ignore_index=True)
    selfish = cannot[cannot["id_l"] == cannot["id_r"]]
    if len(selfish):
        raise InputDataError(f"{spec.cannot_link}: a record cannot be cannot-linked to itself: {selfish['id_l'].iloc[0]}")
    return EnforcedLinks(must_link=must, cannot_link=cannot)
