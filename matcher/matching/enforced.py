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
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from matcher.config.base import RECORD_ID
from matcher.config.transform import EnforcedSpec, TransformConfig
from matcher.runtime.errors import InputDataError

_SHOWN = 10


@dataclass(frozen=True)
class EnforcedLinks:
    """Must-link and cannot-link pairs (``id_l``, ``id_r``) with record ids of the rows' type."""

    must_link: pd.DataFrame
    cannot_link: pd.DataFrame


def _read_pairs(path: str) -> pd.DataFrame:
    try:
        pairs = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
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


def _typed(pairs: pd.DataFrame, ids: DataFrame, path: str) -> pd.DataFrame:
    """Text ids → the rows' record ids; ids not in the source are an error listing them."""
    if pairs.empty:
        typed = ids.select(RECORD_ID).limit(0).toPandas()[RECORD_ID]
        return pd.DataFrame({"id_l": typed, "id_r": typed})
    spark = ids.sparkSession
    wanted = pd.unique(pd.concat([pairs["id_l"], pairs["id_r"]]))
    found = (
        spark.createDataFrame(pd.DataFrame({"text": wanted}))
        .join(ids.select(F.col(RECORD_ID).cast("string").alias("text"), RECORD_ID), "text", "left")
        .toPandas()
    )
    unknown = found.loc[found[RECORD_ID].isna(), "text"].tolist()
    if unknown:
        shown = ", ".join(unknown[:_SHOWN]) + (f" (and {len(unknown) - _SHOWN} more)" if len(unknown) > _SHOWN else "")
        raise InputDataError(f"{path}: {len(unknown)} record id(s) not in the inputs: {shown}")
    lookup = dict(zip(found["text"], found[RECORD_ID]))
    return pd.DataFrame({"id_l": pairs["id_l"].map(lookup), "id_r": pairs["id_r"].map(lookup)})


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


def enforced_links(rows: DataFrame, config: TransformConfig, labeled: pd.DataFrame | None = None) -> EnforcedLinks | None:
    """The configured must-links (pair list + exact rules) and cannot-links; None when nothing is enforced.

    ``rows`` has ``record_id`` and the exact rules' columns. ``labeled`` pairs (``id_l``,
    ``id_r`` as text, ``is_match``; used when ``labels.enforce_in_clustering`` is set)
    add their matches as must-links and their non-matches as cannot-links.
    """
    spec = config.enforced
    has_labels = labeled is not None and len(labeled) > 0
    if not has_labels and (spec is None or not (spec.must_link or spec.cannot_link or spec.exact_rules)):
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
    if spec.exact_rules:
        must = pd.concat([must, exact_rule_links(rows, spec.exact_rules).toPandas()], ignore_index=True)
    selfish = cannot[cannot["id_l"] == cannot["id_r"]]
    if len(selfish):
        raise InputDataError(f"{spec.cannot_link}: a record cannot be cannot-linked to itself: {selfish['id_l'].iloc[0]}")
    return EnforcedLinks(must_link=must, cannot_link=cannot)
