"""The entity size report: histogram, sparse (chained) and oversized entities named by match_id."""

import logging

import numpy as np
import pandas as pd
import pytest

from matcher.matching.entities import _percentile, entity_report, size_histogram


@pytest.fixture
def frames(spark):
    """``members(groups)`` and ``links(pairs)`` as the DataFrames a run reports on."""

    def members(groups: dict[int, list[int]]):
        return spark.createDataFrame([(r, m) for m, records in groups.items() for r in records], "record_id long, match_id long")

    def links(pairs: list[tuple[int, int]]):
        return spark.createDataFrame(pairs, "id_l long, id_r long")

    return members, links


def test_histogram_bins_count_every_entity_once():
    hist = size_histogram(pd.Series([1, 1, 2, 3, 4, 5, 9, 10, 25, 1500]).to_numpy())
    assert hist == {"1": 2, "2": 1, "3": 1, "4": 1, "5-9": 2, "10-19": 1, "20-49": 1, "50-99": 0, "100-999": 0, "1000+": 1}


def test_a_chain_is_flagged_sparse_and_a_clique_is_not(caplog, frames):
    _members, _links = frames
    chain = list(range(10, 16))  # 6 records joined one link at a time: 5 of 15 pairs linked
    clique = [20, 21, 22, 23]
    members = _members({10: chain, 20: clique})
    links = _links([(a, b) for a, b in zip(chain, chain[1:])] + [(a, b) for a in clique for b in clique if a < b])
    with caplog.at_level(logging.WARNING, logger="matcher.matching.entities"):
        report = entity_report(members, links, rows=12)
    assert report["entities"] == 4  # two clusters and two records alone
    assert report["histogram"]["1"] == 2 and report["histogram"]["4"] == 1 and report["histogram"]["5-9"] == 1
    assert report["flagged"] == 1
    (flagged,) = report["flagged_entities"]
    assert flagged == {"match_id": 10, "size": 6, "link_density": round(5 / 15, 4), "flags": ["sparse"]}
    assert [e["match_id"] for e in report["largest"]] == [10, 20]
    assert "10 (6 records, 33% of pairs linked)" in caplog.text


def test_an_entity_far_beyond_the_size_tail_is_oversized_even_when_dense(frames):
    _members, _links = frames
    groups = {1000 + 2 * i: [1000 + 2 * i, 1001 + 2 * i] for i in range(300)}
    big = list(range(1, 13))
    groups[1] = big
    links = [(a, b) for records in groups.values() for a in records for b in records if a < b]
    report = entity_report(_members(groups), _links(links), rows=612)
    assert report["oversized_above"] == 10
    assert [(e["match_id"], e["flags"]) for e in report["flagged_entities"]] == [(1, ["oversized"])]


def test_links_counted_once_and_only_inside_an_entity(frames):
    _members, _links = frames
    members = _members({1: [1, 2, 3, 4], 5: [5, 6]})
    # 1-2 twice (scored from both sides), 2-5 crosses entities: 1 + 2 of 6 pairs inside entity 1
    links = _links([(1, 2), (2, 1), (3, 4), (2, 5), (5, 6), (1, 3)])
    report = entity_report(members, links, rows=6)
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
