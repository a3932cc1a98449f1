"""clustering.method average_link: merges that the pairs between two clusters must support, learned from labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import cluster_sets as clusters
from conftest import minimal_config

from matcher.config.transform import ClusteringSpec, config_from_dict
from matcher.matching import clustering
from matcher.matching.clustering import cluster_by_average_link
from matcher.matching.components import component_pairs, link_components, links_frame
from matcher.matching.matches import assign_matches
from matcher.matching.threshold import Threshold, min_mean_weight_from_labels
from matcher.runtime.errors import ConfigError, InputDataError


def scored(*rows, threshold: float = 4.0) -> pd.DataFrame:
    """Edges (id_l, id_r, match weight); links are the pairs at or above ``threshold``."""
    edges = pd.DataFrame(rows, columns=["id_l", "id_r", "weight"]).astype({"weight": float})
    return edges.assign(probability=1 / (1 + 2 ** -edges["weight"]), link=edges["weight"] >= threshold)


# two triangles of strong links (1-2-3 and 4-5-6) joined by one weak link 3~4; the pairs across
# the bridge that blocking scored say "different" (-10)
CHAIN = scored(
    (1, 2, 12), (2, 3, 11), (1, 3, 10),
    (4, 5, 12), (5, 6, 11), (4, 6, 10),
    (3, 4, 5), (2, 4, -10), (3, 5, -10),
)


def test_a_bridge_the_pairs_across_it_contradict_does_not_merge_two_clusters():
    assert clusters(cluster_by_average_link(CHAIN, min_mean_weight=0.0)) == [{1, 2, 3}, {4, 5, 6}]


def test_unscored_pairs_count_with_their_configured_weight():
    # only 3~4 (weight 5) is scored between {1,2} + 3 and 4: mean over 3 pairs is (5 + 2u) / 3
    edges = scored((1, 2, 12), (2, 3, 11), (1, 3, 10), (3, 4, 5))
    assert clusters(cluster_by_average_link(edges, min_mean_weight=0.0, unscored_pair_weight=0.0)) == [{1, 2, 3, 4}]
    assert clusters(cluster_by_average_link(edges, min_mean_weight=0.0, unscored_pair_weight=-3.0)) == [{1, 2, 3}, {4}]


def test_with_a_low_enough_mean_it_is_the_connected_components():
    assert clusters(cluster_by_average_link(CHAIN, min_mean_weight=-50.0)) == [{1, 2, 3, 4, 5, 6}]


def test_pairs_below_the_threshold_are_evidence_but_never_links():
    edges = scored((1, 2, 3.9), (2, 3, 9))
    assert clusters(cluster_by_average_link(edges, min_mean_weight=-50.0)) == [{1}, {2, 3}]


def test_strongest_is_the_best_link_inside_the_cluster_not_the_best_pair():
    result = cluster_by_average_link(CHAIN, min_mean_weight=0.0).set_index("record_id")["strongest"]
    # 4's best pair overall is 4~5 (12); its link to 3 (5) was refused
    assert result[4] == pytest.approx(1 / (1 + 2 ** -12))
    assert result[3] == pytest.approx(1 / (1 + 2 ** -11))


def test_results_do_not_depend_on_row_order_or_id_type():
    shuffled = CHAIN.sample(frac=1.0, random_state=3).reset_index(drop=True)
    as_text = CHAIN.assign(id_l=CHAIN["id_l"].map("r{}".format), id_r=CHAIN["id_r"].map("r{}".format))
    assert clusters(cluster_by_average_link(shuffled, min_mean_weight=0.0)) == [{1, 2, 3}, {4, 5, 6}]
    assert clusters(cluster_by_average_link(as_text, min_mean_weight=0.0)) == [{"r1", "r2", "r3"}, {"r4", "r5", "r6"}]


def test_must_links_merge_unconditionally_and_cannot_links_block_merges():
    must = pd.DataFrame({"id_l": [3], "id_r": [5]})
    cannot = pd.DataFrame({"id_l": [1], "id_r": [2]})
    result = cluster_by_average_link(CHAIN, min_mean_weight=0.0, must_link=must, cannot_link=cannot)
    # 1-2 (12) is refused; 4 joins {3, 5} (mean of 5 and 12), 2 joins them (11, -10 and an
    # unscored 0: mean 1/3), 6 follows; 1 would now share a cluster with 2, so it stays alone
    assert clusters(result) == [{1}, {2, 3, 4, 5, 6}]


def test_must_links_joining_a_cannot_link_pair_are_a_contradiction():
    must = pd.DataFrame({"id_l": [1, 2], "id_r": [2, 3]})
    cannot = pd.DataFrame({"id_l": [3], "id_r": [1]})
    with pytest.raises(InputDataError, match="contradict.*cannot-link pair (1~3|3~1)"):
        cluster_by_average_link(CHAIN, min_mean_weight=0.0, must_link=must, cannot_link=cannot)


def test_no_edges_gives_no_rows():
    result = cluster_by_average_link(scored(), min_mean_weight=0.0)
    assert result.empty and list(result.columns) == ["record_id", "match_id", "strongest"]


def random_graph(rng: np.random.Generator, records: int, pairs: int) -> pd.DataFrame:
    """Scored pairs among ``records`` ids, some scored twice, weights rounded so that means can tie the bound."""
    weight = np.round(rng.normal(3, 6, pairs), 1)
    edges = pd.DataFrame({"id_l": rng.integers(0, records, pairs), "id_r": rng.integers(0, records, pairs), "weight": weight})
    return edges.assign(probability=1 / (1 + 2 ** -edges["weight"]), link=edges["weight"] >= 0.5)


@pytest.mark.parametrize("min_mean_weight,unscored_pair_weight", [(0.0, 0.0), (1.5, -3.0), (-2.0, 2.0)])
def test_components_that_skip_the_merge_loop_get_the_clusters_the_loop_gives(monkeypatch, min_mean_weight, unscored_pair_weight):
    rng = np.random.default_rng(7)
    graphs = [random_graph(rng, int(rng.integers(2, 60)), int(rng.integers(1, 150))) for _ in range(300)]
    cannot = pd.DataFrame({"id_l": [1, 5], "id_r": [2, 9]})
    settings = {"min_mean_weight": min_mean_weight, "unscored_pair_weight": unscored_pair_weight, "cannot_link": cannot}
    fast = [cluster_by_average_link(edges, **settings) for edges in graphs]
    monkeypatch.setattr(clustering, "agreeing_components", lambda component, *rest: np.zeros(component.max() + 1, dtype=bool))
    for edges, result in zip(graphs, fast):
        pd.testing.assert_frame_equal(result, cluster_by_average_link(edges, **settings))


def test_only_whole_components_whose_every_pair_clears_the_mean_skip_the_merge_loop():
    # 0-1-2 complete and strong; 3-4-5 strong links with one pair never scored; 6-7 with a weak
    # pair; 8-9 strong but on a cannot-link; 10 only below the threshold
    edges = scored((0, 1, 9), (1, 2, 8), (0, 2, 7), (3, 4, 9), (4, 5, 9), (6, 7, 9), (6, 7, -2), (8, 9, 9), (10, 0, -5))
    a, b = edges["id_l"].to_numpy(), edges["id_r"].to_numpy()
    component = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4])

    def settled(unscored_pair_weight: float) -> list[int]:
        found = clustering.agreeing_components(component, a, b, edges["weight"].to_numpy(), np.array([8]), 0.0, unscored_pair_weight)
        return np.flatnonzero(found).tolist()

    assert settled(unscored_pair_weight=-1.0) == [0]
    assert settled(unscored_pair_weight=1.0) == [0, 1]


def test_the_mean_weight_is_learned_from_labeled_pairs():
    labels = pd.DataFrame({"id_l": ["1", "3", "4"], "id_r": ["2", "4", "6"], "is_match": [True, False, True]})
    spec = ClusteringSpec(method="average_link", min_mean_weight=-40.0)
    learned, facts = min_mean_weight_from_labels(CHAIN, labels, spec, beta=1.0, candidates=(-50.0, 0.0, 11.0))
    # -50 joins 3~4 (a labeled non-match), 11 keeps 6 out of {4, 5} (mean 10.5): 0 is the only perfect fit
    assert learned == 0.0
    assert facts["f_beta"] == {"-50.0": 0.8, "0.0": 1.0, "11.0": 0.6667}


def test_learning_from_labels_needs_average_link():
    data = minimal_config(labels={"clustering_from_labels": True})
    with pytest.raises(ConfigError, match="clustering_from_labels .*average_link"):
        config_from_dict(data, source="x.yaml")
    with pytest.raises(ConfigError, match="clustering.method: unknown value|clustering.method: Input should be"):
        config_from_dict(minimal_config(clustering={"method": "single_link"}), source="x.yaml")


def test_assign_matches_with_average_link_on_spark(spark, tmp_path):
    config = config_from_dict(minimal_config(clustering={"method": "average_link"}))
    rows = spark.createDataFrame([(i, "x", "c") for i in range(1, 8)], "pk bigint, first_name string, city string")
    weights = [(int(a), int(b), float(w)) for a, b, w in CHAIN[["id_l", "id_r", "weight"]].itertuples(index=False)]
    pairs = spark.createDataFrame(
        [(a, b, w, 1 / (1 + 2 ** -w)) for a, b, w in weights],
        "record_id_l bigint, record_id_r bigint, match_weight double, match_probability double",
    )
    threshold = Threshold(4.0)
    components = link_components(links_frame(pairs, threshold.match_probability))
    inside = component_pairs(pairs, threshold.match_probability, components)
    assert inside.count() == len(CHAIN)  # one component: every scored pair counts
    out, _ = assign_matches(rows, pairs, config, threshold=threshold)
    got = {r["pk"]: (r["match_id"], r["match_confidence_score"]) for r in out.collect()}
    assert {k: v[0] for k, v in got.items()} == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 7: 7}
    assert got[4][1] == pytest.approx(1 / (1 + 2 ** -12))  # strongest link inside its cluster
    assert got[7][1] == 1.0  # no candidate pair at all


def weights(probabilities: list[float]) -> np.ndarray:
    p = np.asarray(probabilities)
    return np.log2(p / (1 - p))


def test_match_incremental_with_average_link_does_not_chain_two_entities_through_a_new_record():
    from matcher.incremental.recluster import recluster
    from matcher.incremental.stored_pairs import StoredPairs

    # existing entities {1, 2} and {3, 4}, the pairs across them strongly against; new record 5
    # links to 2 and to 3: connected components chains all five, average link keeps them apart
    stored = pa.table({
        "record_id_l": [1, 3, 1, 1, 2, 2], "record_id_r": [2, 4, 3, 4, 3, 4],
        "match_weight": weights([0.999, 0.999, 1e-6, 1e-6, 1e-6, 1e-6]),
        "match_probability": [0.999, 0.999, 1e-6, 1e-6, 1e-6, 1e-6],
    })
    new_pairs = pd.DataFrame({"record_id_l": [2, 3], "record_id_r": [5, 5], "match_weight": weights([0.99, 0.9]),
                              "match_probability": [0.99, 0.9]})
    old_ids = pd.Series([1, 1, 3, 3], index=[1, 2, 3, 4])
    pairs = StoredPairs(stored, np.zeros(len(stored), dtype=bool), False, 0.0)

    def grouped(spec):
        final = recluster(old_ids, set(), pd.Series([5]), new_pairs, pairs, 0.5, spec).reassignment.ids
        return sorted(sorted(g) for g in final.groupby("match_id")["record_id"].apply(list))

    assert grouped(ClusteringSpec(method="connected_components")) == [[1, 2, 3, 4, 5]]
    assert grouped(ClusteringSpec(method="average_link")) == [[1, 2, 5], [3, 4]]


def test_match_incremental_re_clusters_a_component_whose_mean_re_weighing_moved_across_the_minimum():
    """Threshold 0.45: the link 1-2 weighed -0.05 (a link, but a mean below 0: 1 and 2 stayed
    apart); re-weighing lifted it to +0.05 without crossing the threshold, so a full run would now
    join them. The component {3, 4} changed weight too, but its every pair still clears the mean
    and it was one cluster: it is left as it is. New record 9 touches neither."""
    from matcher.incremental.recluster import recluster
    from matcher.incremental.stored_pairs import StoredPairs

    stored = pa.table({"record_id_l": [1, 3], "record_id_r": [2, 4], "match_weight": [0.05, 6.6],
                       "match_probability": [1 / (1 + 2 ** -0.05), 1 / (1 + 2 ** -6.6)]})
    old_ids = pd.Series([1, 2, 3, 3, 8], index=[1, 2, 3, 4, 8])
    new_pairs = pd.DataFrame({"record_id_l": [8], "record_id_r": [9], "match_weight": [-20.0], "match_probability": [1e-6]})
    pairs = StoredPairs(stored, np.zeros(2, dtype=bool), True, 0.0, changed=np.ones(2, dtype=bool))

    def ids(spec):
        return recluster(old_ids, set(), pd.Series([9]), new_pairs, pairs, 0.45, spec).reassignment.ids.set_index("record_id")["match_id"].to_dict()

    assert ids(ClusteringSpec(method="average_link")) == {1: 1, 2: 1, 9: 9}  # 3 and 4 are not re-clustered
    assert ids(ClusteringSpec(method="connected_components")) == {9: 9}  # only threshold crossings matter there
