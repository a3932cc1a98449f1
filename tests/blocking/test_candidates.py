"""Candidate vectors computed once give what Splink computes step by step: the same scored
pairs as ``linker.inference.predict()``, the same lambda, and per-set pattern counts equal to
counting each set on its own."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import HARD_COLUMNS, HARD_ROWS, REPO, every_kind_config, persistent_rdds
from pyspark.sql import functions as F

import matcher.blocking.candidates as candidates_module
from matcher.blocking.candidates import Candidates, PairSet, count_flagged_patterns, outside_predictions, score
from matcher.config.transform import config_from_dict, load_config
from matcher.harmonize.ingest import read_inputs
from matcher.model.artifact import BROADCAST_FREQUENCY_RECORDS, TrainedModel, make_linker
from matcher.model.comparisons import blocking_rule
from matcher.model.level_sql import gamma_sql
from matcher.model.splink_adapter import (
    BlockingRule, CTEPipeline, comparison_input_columns, database_api, enqueue_records_with_tf, gamma_columns, lambda_of,
    model_settings, run_pipeline,
)
from matcher.training.patterns import add_counts, of_set, pattern_counts
from matcher.training.trainer import USampler, _rule, train


@pytest.fixture(scope="module")
def dedupe():
    return load_config(REPO / "configs" / "fake_1000.yaml")


@pytest.fixture(scope="module")
def link_only(tmp_path_factory):
    """fake_1000 split in two inputs, linked across them only."""
    folder = tmp_path_factory.mktemp("link_only")
    rows = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv", dtype=str)
    rows.iloc[::2].to_parquet(folder / "b.parquet")
    rows.iloc[1::2].to_parquet(folder / "a.parquet")
    data = load_config(REPO / "configs" / "fake_1000.yaml").model_dump(mode="json", exclude_none=True)
    data.update(
        name="fake_1000_link",
        inputs=[{"name": "zeta", "path": str(folder / "b.parquet")}, {"name": "alpha", "path": str(folder / "a.parquet")}],
        link_type="link_only",
    )
    data.pop("output", None)
    return config_from_dict(data)


def _trained(spark, config) -> TrainedModel:
    """A model with Splink's own (non-default) parameters, so the scores exercise every weight."""
    linker = make_linker(read_inputs(spark, config), config)
    linker.training.estimate_probability_two_random_records_match(
        [blocking_rule(r) for r in config.training.deterministic_rules], recall=config.training.deterministic_recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=20_000, seed=1)
    return TrainedModel(linker.misc.save_model_to_json(), {})


def _untrained(spark, config):
    """The inputs, an untrained linker over them, and the row count of each input."""
    df = read_inputs(spark, config)
    sizes = [df.where(F.col("source_dataset") == i.name).count() for i in config.inputs]
    return df, make_linker(df, config), sizes


def _ids(frame, id_columns):
    return frame.select(*id_columns, "match_key", F.round("match_weight", 9).alias("match_weight"))


@pytest.fixture
def broadcast_threshold(spark):
    """Sets ``spark.sql.autoBroadcastJoinThreshold`` for one test."""
    key = "spark.sql.autoBroadcastJoinThreshold"
    before = spark.conf.get(key)
    yield lambda value: spark.conf.set(key, value)
    spark.conf.set(key, before)


@pytest.fixture(scope="module")
def splink_predictions(spark):
    """Per config: a model with Splink's own parameters, and Splink's ``predict()`` with it
    (id columns, match keys and weights, collected), computed once for every join layout."""
    done = {}

    def predictions(config):
        if config.name not in done:
            df = read_inputs(spark, config)
            model = _trained(spark, config)
            expected = make_linker(df, config, model).inference.predict().as_spark_dataframe()
            ids = [c for c in expected.columns if c.startswith("unique_id") or c.startswith("source_dataset")]
            frame = _ids(expected, ids).toPandas().sort_values(ids, ignore_index=True)
            done[config.name] = model, sorted(expected.columns), ids, frame
        return done[config.name]

    return predictions


@pytest.mark.parametrize("joins", ["broadcast", "shuffled", "shuffled_wide"])
@pytest.mark.parametrize("which", ["dedupe", "link_only"])
def test_scores_equal_splinks_predict(spark, request, splink_predictions, broadcast_threshold, monkeypatch, which, joins):
    config = request.getfixturevalue(which)
    df = read_inputs(spark, config)
    model, columns, id_columns, want = splink_predictions(config)
    # small records are broadcast to every join; larger ones (as on Glue) are shuffled, and
    # many records over more partitions than the session's (here 10)
    broadcast_threshold("10MB" if joins == "broadcast" else "-1")
    if joins == "shuffled_wide":
        monkeypatch.setattr(candidates_module, "RECORDS_PER_PARTITION", 100)
    session_partitions = spark.conf.get("spark.sql.shuffle.partitions")
    with Candidates() as candidates:
        # as matching does: vectors from an untrained linker, weights from the saved model
        vectors = candidates.get(make_linker(df, config, records=df.count()))  # term frequencies broadcast when allowed
        assert spark.conf.get("spark.sql.shuffle.partitions") == session_partitions
        assert vectors.inputs.broadcast == (joins == "broadcast")
        ours = score(vectors, model.settings())
        # Splink's columns but the compared values, which stay with the records
        compared = {f"{c}{side}" for cc in model.settings().comparisons for c in comparison_input_columns(cc) for side in ("_l", "_r")}
        assert sorted(ours.columns) == sorted(set(columns) - compared) and compared <= set(columns)
        got = _ids(ours, id_columns).toPandas().sort_values(id_columns, ignore_index=True)
        assert len(want) > 1000
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize(
    ("records", "threshold", "broadcast"),
    [(1000, "1", True), (None, "1", False), (BROADCAST_FREQUENCY_RECORDS + 1, "1", False), (1000, "-1", False)],
    ids=["few_records", "records_unknown", "too_many_records", "broadcasts_off"],
)
def test_term_frequency_tables_are_broadcast_to_the_records_when_they_are_few(
    spark, dedupe, broadcast_threshold, records, threshold, broadcast
):
    df = read_inputs(spark, dedupe)
    broadcast_threshold(threshold)  # 1 byte: Spark would broadcast nothing by itself
    linker = make_linker(df, dedupe, records=records)
    with_tf = run_pipeline(database_api(linker), enqueue_records_with_tf(linker, CTEPipeline()))  # as JoinInputs.of keeps them
    plan = with_tf._jdf.queryExecution().executedPlan().toString()
    assert ("BroadcastHashJoin" in plan) == broadcast
    assert ("SortMergeJoin" in plan) != broadcast
    assert with_tf.count() == df.count()
    assert with_tf.where("city is not null and tf_city is null").count() == 0


@pytest.mark.parametrize("which", ["dedupe", "link_only"])
def test_flagged_counts_and_the_pairs_outside_them_equal_counting_each_set_alone(spark, request, which):
    config = request.getfixturevalue(which)
    _, linker, sizes = _untrained(spark, config)
    settings = model_settings(linker)
    sampler = USampler(linker, config, sizes)
    sets = [PairSet(f"em_{i}", _rule(r)) for i, r in enumerate(config.training.em_blocking_rules)]
    # a rule no prediction rule covers: most of its pairs lie outside the candidates
    sets.append(PairSet("city", BlockingRule("l.city = r.city", "spark")))
    with Candidates() as candidates:
        vectors = candidates.get(linker, [*sets, sampler.probe])
        counts = count_flagged_patterns(vectors, settings)
        outside = pattern_counts(linker, outside_predictions(settings, sets), seed=config.seed)
        alone = pattern_counts(linker, [*sets, sampler.probe], seed=config.seed)
        for pair_set in [*sets, sampler.probe]:
            want = of_set(alone, pair_set).reset_index(drop=True)
            got = add_counts(counts.of_set(pair_set), of_set(outside, pair_set)).reset_index(drop=True)
            assert int(want["pattern_count"].sum()) > 0
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert int(of_set(outside, sets[-1])["pattern_count"].sum()) > 0
        # the candidates are the prediction rules' pairs only
        assert score(vectors, settings).count() == linker.inference.predict().as_spark_dataframe().count()


@pytest.mark.parametrize("which", ["dedupe", "link_only"])
def test_trained_lambda_equals_splinks(spark, request, which):
    config = request.getfixturevalue(which)
    df = read_inputs(spark, config)
    splink_linker = make_linker(df, config)
    splink_linker.training.estimate_probability_two_random_records_match(
        [blocking_rule(r) for r in config.training.deterministic_rules], recall=config.training.deterministic_recall
    )
    model = train(df, config)
    assert model.splink_model["probability_two_random_records_match"] == pytest.approx(
        lambda_of(model_settings(splink_linker)), rel=1e-12
    )


def test_shared_similarity_calls_keep_every_kinds_levels(spark, tmp_path):
    """Every comparison kind on hard values: the vectors (similarity calls computed once per
    pair) give the levels of Splink's own CASE, pair by pair."""
    path = tmp_path / "people.csv"
    pd.DataFrame(HARD_ROWS, columns=HARD_COLUMNS).to_csv(path, index=False)
    config = config_from_dict(every_kind_config(path))
    linker = make_linker(read_inputs(spark, config), config)
    settings = model_settings(linker)
    assert sum(len(gamma_sql(cc, "x").shared) for cc in settings.comparisons) >= 5  # the rewrite is exercised
    # the phone's edit-distance levels (<= 1, <= 2) read one call bounded at 2
    phone = gamma_sql(next(cc for cc in settings.comparisons if cc.output_column_name == "phone"), "x")
    assert [s.lower().count("levenshtein(`phone_l`, `phone_r`, 2)") for s in phone.shared] == [1]
    assert "levenshtein" not in phone.case.lower() and "between 0 and 1" in phone.case.lower()
    # the email's user name is the text before its first @, found without a regular expression
    email = gamma_sql(next(cc for cc in settings.comparisons if cc.output_column_name == "email"), "x")
    assert "regexp_extract" not in " ".join([*email.shared, email.case]).lower()
    assert "substring_index(`email_l`, '@', 1)" in " ".join(email.shared).lower()
    gammas = gamma_columns(settings)
    keys = ["pk_l", "pk_r"]
    want = (
        linker.inference.predict().as_spark_dataframe().select(*keys, *gammas).toPandas()
        .sort_values(keys, ignore_index=True)
    )
    with Candidates() as candidates:
        got = candidates.get(linker).frame.select(*keys, *gammas).toPandas().sort_values(keys, ignore_index=True)
    assert len(want) == len(HARD_ROWS) * (len(HARD_ROWS) - 1) // 2
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_the_rewritten_calls_equal_splinks_on_awkward_values(spark):
    """What gamma_sql's rewrites rely on, in Spark itself: a bounded edit distance is the distance up to
    its bound and -1 past it; the text before the first @ is the regular expression's user name."""
    values = [None, "", "@", "@a", "a@", "a@b@c", "abc", "abd", "zoë😀@x.com", "zoe@x.com", "a\nb@c", " @", "ann.lee@x.com"]
    pairs = spark.createDataFrame([(a, b) for a in values for b in values], "a string, b string")
    checked = pairs.selectExpr(
        "levenshtein(a, b) as d", "levenshtein(a, b, 2) as bounded",
        "regexp_extract(a, '^[^@]+', 0) as user_regex", "substring_index(a, '@', 1) as user_plain",
    ).toPandas()
    distance = checked["d"].dropna()
    expected = distance.where(distance <= 2, -1)
    assert (checked.loc[distance.index, "bounded"] == expected).all() and checked["bounded"].isna().sum() == checked["d"].isna().sum()
    assert (expected == -1).any() and (expected == 1).any()
    assert checked["user_regex"].fillna("<null>").tolist() == checked["user_plain"].fillna("<null>").tolist()


def test_releasing_frees_the_kept_pairs_and_their_views(spark, dedupe):
    _, linker, sizes = _untrained(spark, dedupe)
    probe = USampler(linker, dedupe, sizes).probe

    def kept() -> tuple[int, set[str]]:
        views = {t.name for t in spark.catalog.listTables() if t.isTemporary and t.name.startswith("__matcher_")}
        return persistent_rdds(spark), views

    before = kept()
    with Candidates() as candidates:
        vectors = candidates.get(linker, [probe])
        score(vectors, model_settings(linker)).count()
        during = kept()
    assert during[0] > before[0] and during[1] > before[1]
    assert kept() == before
