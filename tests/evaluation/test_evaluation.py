"""matcher.evaluation.metrics: pair counting, cluster and pairwise metrics, average precision.

Every expected number below is counted by hand from the rows in the test.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from matcher.evaluation.metrics import (
    average_precision,
    cluster_metrics,
    column_importances,
    evaluate,
    pairs_within_groups,
    pairwise_metrics,
)

ROWS_SCHEMA = "pk long, truth string, match_id long, source_dataset string"
# truth A = {1, 2, 3}, B = {4, 5}, row 6 has no truth; clusters {1, 2}, {3, 4}, {5}, {6}
ROWS = [
    (1, "A", 1, "s1"),
    (2, "A", 1, "s2"),
    (3, "A", 3, "s1"),
    (4, "B", 3, "s2"),
    (5, "B", 5, "s1"),
    (6, None, 6, "s1"),
]


@pytest.fixture
def rows(spark):
    return spark.createDataFrame(ROWS, ROWS_SCHEMA)


def test_dedupe_pairs_within_groups_count_n_choose_2_per_group(rows):
    # A: 3 rows -> 3 pairs, B: 2 rows -> 1 pair; the null truth value forms no group
    assert pairs_within_groups(rows, ["truth"]) == 4
    # clusters {1,2} and {3,4}: one pair each
    assert pairs_within_groups(rows, ["match_id"]) == 2
    # sharing both: only (1, 2)
    assert pairs_within_groups(rows, ["match_id", "truth"]) == 1


def test_link_only_pairs_within_groups_count_only_pairs_across_inputs(rows):
    # A: s1 {1, 3} x s2 {2} -> 2 pairs; B: s1 {5} x s2 {4} -> 1 pair
    assert pairs_within_groups(rows, ["truth"], link_only=True) == 3
    # {1 s1, 2 s2} and {3 s1, 4 s2}
    assert pairs_within_groups(rows, ["match_id"], link_only=True) == 2


def test_link_only_ignores_groups_within_a_single_input(spark):
    rows = spark.createDataFrame([(1, "A", 1, "s1"), (2, "A", 1, "s1"), (3, "A", 1, "s1")], ROWS_SCHEMA)
    assert pairs_within_groups(rows, ["truth"]) == 3
    assert pairs_within_groups(rows, ["truth"], link_only=True) == 0


def test_pairs_within_groups_of_no_rows_is_zero(spark):
    assert pairs_within_groups(spark.createDataFrame([], ROWS_SCHEMA), ["truth"]) == 0
    assert pairs_within_groups(spark.createDataFrame([], ROWS_SCHEMA), ["truth"], link_only=True) == 0


def test_cluster_metrics_dedupe(rows):
    metrics = cluster_metrics(rows, "truth")
    # predicted pairs (1,2) (3,4); true pairs (1,2) (1,3) (2,3) (4,5); tp = (1,2)
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (1, 1, 3)
    assert metrics["precision"] == pytest.approx(1 / 2)
    assert metrics["recall"] == pytest.approx(1 / 4)
    assert metrics["f1"] == pytest.approx(2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4))


def test_cluster_metrics_link_only(rows):
    metrics = cluster_metrics(rows, "truth", link_only=True)
    # predicted cross pairs (1,2) (3,4); true cross pairs (1,2) (3,2) (5,4); tp = (1,2)
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (1, 1, 2)
    assert metrics["precision"] == pytest.approx(1 / 2)
    assert metrics["recall"] == pytest.approx(1 / 3)
    assert metrics["f1"] == pytest.approx(0.4)


def test_perfect_clusters_score_one(spark):
    rows = spark.createDataFrame([(1, "A", 1, "s"), (2, "A", 1, "s"), (3, "B", 3, "s"), (4, "B", 3, "s")], ROWS_SCHEMA)
    metrics = cluster_metrics(rows, "truth")
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (1.0, 1.0, 1.0)


def test_all_singletons_score_zero_without_dividing_by_zero(spark):
    rows = spark.createDataFrame([(1, "A", 1, "s"), (2, "A", 2, "s")], ROWS_SCHEMA)
    metrics = cluster_metrics(rows, "truth")
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (0, 0, 1)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.0, 0.0, 0.0)


def scored(spark, data):
    return spark.createDataFrame(data, "match_weight double, is_true boolean")


def test_average_precision_of_a_small_ranking(spark):
    # ranked by weight: T, F, T, F -> precision at each true hit: 1/1, 2/3
    pairs = scored(spark, [(5.0, True), (4.0, False), (3.0, True), (1.0, False)])
    ap, best_f1 = average_precision(pairs, F.col("is_true"))
    assert ap == pytest.approx((1 + 2 / 3) / 2)
    # best cut after the third pair: precision 2/3, recall 1
    assert best_f1 == pytest.approx(0.8)


def test_average_precision_is_one_when_every_true_pair_outranks_every_false_one(spark):
    pairs = scored(spark, [(9.0, True), (8.0, True), (-2.0, False)])
    assert average_precision(pairs, F.col("is_true")) == pytest.approx((1.0, 1.0))


def test_average_precision_groups_tied_weights_instead_of_using_row_order(spark):
    pairs = scored(spark, [(2.0, True), (2.0, False)])
    ap, best_f1 = average_precision(pairs, F.col("is_true"))
    assert ap == pytest.approx(0.5)
    assert best_f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_average_precision_without_true_pairs_is_zero(spark):
    assert average_precision(scored(spark, [(3.0, False)]), F.col("is_true")) == (0.0, 0.0)


PAIRS_SCHEMA = "truth_l string, truth_r string, match_probability double, match_weight double, mw_a double, mw_b double"


@pytest.fixture
def pairs(spark):
    return spark.createDataFrame(
        [
            ("A", "A", 0.9, 3.0, 2.0, 1.0),  # true, predicted
            ("A", "B", 0.5, 0.0, 1.0, -1.0),  # false, predicted (the threshold is inclusive)
            ("B", "B", 0.3, -1.0, -1.0, 0.0),  # true, missed
            (None, "B", 0.95, 4.0, 4.0, 0.0),  # unknown truth counts as false, predicted
        ],
        PAIRS_SCHEMA,
    )


def test_pairwise_metrics_count_against_every_true_pair_not_just_the_scored_ones(pairs):
    metrics = pairwise_metrics(pairs, "truth", threshold=0.5, true_pairs=4)
    pairwise = metrics["pairwise"]
    assert (pairwise["tp"], pairwise["fp"], pairwise["fn"]) == (1, 2, 3)
    assert pairwise["precision"] == pytest.approx(1 / 3)
    assert pairwise["recall"] == pytest.approx(1 / 4)
    # blocking proposed 2 of the 4 true pairs
    assert metrics["blocking_recall"] == pytest.approx(0.5)
    assert metrics["true_pairs"] == 4
    # ranking by weight: F(4), T(3), F(0), T(-1): precision at the true hits 1/2 and 2/4
    assert pairwise["auprc"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_column_importances_are_mean_absolute_weights_normalised_and_ranked(spark):
    pairs = spark.createDataFrame([(2.0, -1.0, 9.0), (-4.0, 0.0, 9.0)], "mw_a double, mw_b double, mw_tf_adj_a double")
    importances = column_importances(pairs)
    # mean |mw|: a = 3, b = 0.5; tf adjustments are not comparisons
    assert list(importances) == ["a", "b"]
    assert importances["a"] == pytest.approx(3 / 3.5)
    assert importances["b"] == pytest.approx(0.5 / 3.5)


def test_evaluate_reports_every_metric_group(rows, pairs):
    metrics = evaluate(rows, pairs, truth="truth", threshold=0.5, link_type="dedupe_only")
    assert metrics["true_pairs"] == 4  # from the rows, not the pairs
    assert metrics["clusters"]["tp"] == 1
    assert set(metrics) == {"pairwise", "blocking_recall", "true_pairs", "clusters", "column_importances"}
