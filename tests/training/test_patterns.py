"""Pattern counting in Spark agrees with counting the pairs by hand."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pandas as pd
import pytest

from matcher.config.transform import config_from_dict
from matcher.harmonize.ingest import read_inputs
from matcher.model.artifact import make_linker
from matcher.model.splink_adapter import BlockingRule, model_settings
from matcher.training.patterns import SKIPPED, PairSet, level_counts, of_set, pattern_counts
from matcher.training.trainer import U_PROBE_SAFETY, thinning_fractions

ROWS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6, 7],
        "city": ["leeds", "leeds", "york", None, "york", "leeds", "hull"],
        "colour": ["red", "blue", "red", "red", None, "blue", "red"],
    }
)


@pytest.fixture(scope="module")
def linker(spark, tmp_path_factory):
    path = tmp_path_factory.mktemp("patterns") / "rows.parquet"
    ROWS.to_parquet(path)
    config = config_from_dict(
        {
            "name": "patterns",
            "inputs": [{"name": "rows", "path": str(path)}],
            "primary_key": "id",
            "columns": [{"name": "city", "kind": "exact"}, {"name": "colour", "kind": "exact"}],
            "blocking_rules": [["city"]],
            "training": {"deterministic_rules": [["city"]], "em_blocking_rules": [["city"]]},
        }
    )
    return make_linker(read_inputs(spark, config), config)


def _level(a, b) -> int:
    return -1 if a is None or b is None else int(a == b)


def by_hand(keep=lambda left, right: True) -> Counter:
    records = ROWS.astype(object).where(ROWS.notna(), None).to_dict("records")
    return Counter(
        (_level(l["city"], r["city"]), _level(l["colour"], r["colour"]))
        for l, r in combinations(records, 2)
        if keep(l, r)
    )


def as_counter(frame: pd.DataFrame) -> Counter:
    return Counter({(r.gamma_city, r.gamma_colour): r.pattern_count for r in frame.itertuples()})


def test_every_pair_is_counted_once_under_its_comparison_vector(linker):
    everything = PairSet("all", BlockingRule("1=1", "spark"))
    assert as_counter(of_set(pattern_counts(linker, [everything]), everything)) == by_hand()


def test_several_pair_sets_are_counted_apart_in_one_job(linker):
    everything = PairSet("all", BlockingRule("1=1", "spark"))
    same_city = PairSet("city", BlockingRule("l.city = r.city", "spark"))
    counts = pattern_counts(linker, [everything, same_city])
    assert as_counter(of_set(counts, everything)) == by_hand()
    assert as_counter(of_set(counts, same_city)) == by_hand(lambda l, r: l["city"] is not None and l["city"] == r["city"])


def test_a_row_sample_restricts_both_sides_of_the_pairs(linker):
    sample = PairSet("sample", BlockingRule("1=1", "spark"), sample_sql="id <= 4")
    expected = by_hand(lambda l, r: l["id"] <= 4 and r["id"] <= 4)
    assert as_counter(of_set(pattern_counts(linker, [sample]), sample)) == expected


def test_a_zero_fraction_skips_a_comparison_on_every_sampled_pair_only(linker):
    sampled = PairSet("sampled", BlockingRule("1=1", "spark"), sample_sql="id > 0")
    everything = PairSet("all", BlockingRule("1=1", "spark"))
    counts = pattern_counts(linker, [sampled, everything], fractions=[1.0, 0.0])
    thinned = of_set(counts, sampled)
    assert set(thinned["gamma_colour"]) == {SKIPPED}
    city_levels = level_counts(model_settings(linker), thinned)[0]
    hand = by_hand()
    assert city_levels == {level: float(sum(n for (c, _), n in hand.items() if c == level)) for level in (1, 0)}
    # a blocking set in the same job is evaluated whole
    assert as_counter(of_set(counts, everything)) == hand


def test_excluded_rules_leave_their_pairs_out(linker):
    outside_city = PairSet("rest", BlockingRule("1=1", "spark"), exclude=(BlockingRule("l.city = r.city", "spark"),))
    expected = by_hand(lambda l, r: not (l["city"] is not None and l["city"] == r["city"]))
    assert as_counter(of_set(pattern_counts(linker, [outside_city]), outside_city)) == expected


def test_thinning_evaluates_only_the_share_each_comparison_needs():
    probe = [{1: 10.0, 0: 990.0}, {1: 1.0, 0: 999.0}, {1: 0.0, 0: 1000.0}]
    fractions = thinning_fractions(probe, probe_pairs=1000, full_pairs=100_000, min_count=100)
    # level 1 of comparison 0 is expected 1,000 times in the full sample: a tenth is enough (plus the safety margin)
    assert fractions[0] == pytest.approx(0.1 * U_PROBE_SAFETY)
    # expected only 100 times: needs everything; never seen in the probe: needs everything
    assert fractions[1:] == [1.0, 1.0]
