"""``python -m bench joins``: both ways of each join find the same rows, and the report says so."""

from __future__ import annotations

from bench.joins import joins


def test_both_ways_of_each_join_find_the_same_rows(spark):
    report = joins(spark, records=3000, pairs=4000, rounds=1)
    assert report["blocking"]["result"][0] > 0  # the generated records pair up under the rules
    assert report["pairs_to_records"]["result"][0] == 4000
    for join in ("blocking", "pairs_to_records"):
        assert all(len(s) == 1 for s in report[join]["seconds"].values())
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"  # the session's own setting is back
