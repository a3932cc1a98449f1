"""The entity size report: histogram, sparse (chained) and oversized entities named by match_id."""

import logging

import numpy as np
import pandas as pd
import pytest

from matcher.matching.entities import _percentile, entity_report, size_histogram, with_entity_facts


def _members(groups: dict[int, list[int]]) -> pd.DataFrame:
    return pd.DataFrame([(r, m) for m, records in groups.items() for r in records], columns=["record_id", "match_id"])


def _links(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["id_l", "id_r"])


@pytest.fixture
def report(spark):
    """``entity_report`` of ``groups`` (match_id → record ids) and ``links``, as a run makes it:
    the facts per bucket in pandas, the report over them in Spark."""

    def report(groups: dict[int, list[int]], links: list[tuple[int, int]], rows: int) -> dict:
        members = with_entity_facts(_members(groups), _links(links))
        return entity_report(spark.createDataFrame(members), rows)

    return report


def test_histogram_bins_count_every_entity_once():
    hist = size_histogram(pd.Series([1, 1, 2, 3, 4, 5, 9, 10, 25, 1500]).to_numpy())
    assert hist == {"1": 2, "2": 1, "3": 1, "4": 1, "5-9": 2, "10-19": 1, "20-49": 1, "50-99": 0, "100-999": 0, "1000+": 1}


def test_a_chain_is_flagged_sparse_and_a_clique_is_not(caplog, report):
    chain = list(range(10, 16))  # 6 records joined one link at a time: 5 of 15 pairs linked
    clique = [20, 21, 22, 23]
    links = [(a, b) for a, b in zip(chain, chain[1:])] + [(a, b) for a in clique for b in clique if a < b]
    with caplog.at_level(logging.WARNING, logger="matcher.matching.entities"):
        report = report({10: chain, 20: clique}, links, rows=12)
    assert report["entities"] == 4  # two clusters and two records alone
    assert report["histogram"]["1"] == 2 and report["histogram"]["4"] == 1 and report["histogram"]["5-9"] == 1
    assert report["flagged"] == 1
    (flagged,) = report["flagged_entities"]
    assert flagged == {"match_id": 10, "size": 6, "link_density": round(5 / 15, 4), "flags": ["sparse"]}
    assert [e["match_id"] for e in report["largest"]] == [10, 20]
    assert "10 (6 records, 33% of pairs linked)" in caplog.text


def test_an_entity_far_beyond_the_size_tail_is_oversized_even_when_dense(report):
    groups = {1000 + 2 * i: [1000 + 2 * i, 1001 + 2 * i] for i in range(300)}
    big = list(range(1, 13))
    groups[1] = big
    links = [(a, b) for records in groups.values() for a in records for b in records if a < b]
    report = report(groups, links, rows=612)
    assert report["oversized_above"] == 10
    assert [(e["match_id"], e["flags"]) for e in report["flagged_entities"]] == [(1, ["oversized"])]


def test_links_counted_once_and_only_inside_an_entity(report):
    # 1-2 twice (scored from both sides), 2-5 crosses entities: 1 + 2 of 6 pairs inside entity 1
    report = report({1: [1, 2, 3, 4], 5: [5, 6]}, [(1, 2), (2, 1), (3, 4), (2, 5), (5, 6), (1, 3)], rows=6)
    assert report["largest"][0] == {"match_id": 1, "size": 4, "link_density": 0.5}
    assert report["flagged"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_the_size_percentile_from_counts_per_size_is_numpys_over_every_entity(seed):
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(2.0, rng.integers(1, 400)), 3000)
    values, counts = np.unique(sizes, return_counts=True)
    values, counts = np.append(values, 1), np.append(counts, 0)  # a size with no entity changes nothing
    for q in (50, 90, 99):
        assert _percentile(values, counts, q) == pytest.approx(np.percentile(sizes, q))
    assert size_histogram(values, counts) == size_histogram(sizes)
