"""Automatic blocking rules: pair counts equal brute force, skewed keys are excluded without
their values, the chosen rules find the true pairs, labels measure recall, and the rules run
unchanged in Splink on DuckDB."""

from __future__ import annotations

import json
import logging
import random

import pandas as pd
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.blocking import auto
from matcher.config.transform import config_from_dict
from matcher.model.comparisons import SOURCE_DATASET_COLUMN, comparable

_FIRST = ["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth",
          "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen"]
_LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
         "hernandez", "lopez", "gonzalez", "wilson", "anderson", "taylor", "moore", "jackson", "martin", "lee",
         "thompson", "white", "harris", "clark", "lewis", "walker", "young", "allen", "king", "wright"]
_CITIES = ["leeds", "york", "hull", "bath", "derby", "ely", "wells", "truro"]


def _typo(rng: random.Random, word: str) -> str:
    """One letter changed, dropped or doubled, after the first two letters (or anywhere, one time in five)."""
    start = 0 if rng.random() < 0.2 else min(2, len(word) - 1)
    i = rng.randrange(start, len(word))
    edit = rng.choice(["change", "drop", "double"])
    if edit == "change":
        return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1:]
    if edit == "drop":
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def people(entities: int = 150, seed: int = 1) -> pd.DataFrame:
    """Generated people, 1-4 records each, with typos, missing values and moves; ``cluster`` is the truth."""
    rng = random.Random(seed)
    rows = []
    for e in range(entities):
        first, last = rng.choice(_FIRST), rng.choice(_LAST) + rng.choice(["", "s", "son", "er"])
        dob = f"{rng.randint(1930, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        city, phone = rng.choice(_CITIES), f"07{rng.randint(100000000, 999999999)}"
        for _ in range(rng.choice([1, 2, 2, 3, 4])):
            f, s, d, c, p = first, last, dob, city, phone
            if rng.random() < 0.3:
                f = _typo(rng, f)
            if rng.random() < 0.3:
                s = _typo(rng, s)
            if rng.random() < 0.15:
                d = d[:5] + d[8:] + d[4:7]  # month and day swapped
            if rng.random() < 0.1:
                d = None
            if rng.random() < 0.2:
                c = rng.choice(_CITIES)
            if rng.random() < 0.3:
                p = None
            rows.append((f, s, d, c, p, e))
    frame = pd.DataFrame(rows, columns=["first_name", "surname", "dob", "city", "phone", "cluster"])
    frame.insert(0, "pk", [str(i) for i in range(len(frame))])
    return frame


def _config(link_type: str | None = None, inputs: int = 1, **overrides):
    data = {
        "name": "auto",
        "inputs": [{"name": f"in{i}", "path": f"in{i}.csv", "format": "csv"} for i in range(inputs)],
        "primary_key": "pk",
        "columns": [
            {"name": "first_name", "kind": "name"}, {"name": "surname", "kind": "name"},
            {"name": "dob", "kind": "date"}, {"name": "city", "kind": "exact"}, {"name": "phone", "kind": "phone"},
        ],
        "truth_column": "cluster",
        "seed": 7,
        **overrides,
    }
    if link_type:
        data["link_type"] = link_type
    return config_from_dict(data)


def _frame(spark, rows: pd.DataFrame, inputs: int = 1) -> DataFrame:
    """``rows`` as :func:`read_inputs` hands them on: string columns and ``source_dataset``."""
    rows = rows.assign(**{SOURCE_DATASET_COLUMN: [f"in{i % inputs}" for i in range(len(rows))]})
    if inputs > 1:
        rows = rows.assign(pk=rows[SOURCE_DATASET_COLUMN] + ":" + rows["pk"])  # keys unique per input anyway
    return spark.createDataFrame(rows.astype(object).where(rows.notna(), None))


def _brute_pairs(df: DataFrame, config, rules) -> DataFrame:
    """Every pair some rule finds, by joining every row with every row and keeping the pairs a rule's SQL accepts."""
    rows = comparable(df, config)
    left = rows.select(*(F.col(c).alias(f"l_{c}") for c in rows.columns))
    right = rows.select(*(F.col(c).alias(f"r_{c}") for c in rows.columns))
    link_type = config.resolved_link_type
    keep = F.col("l_pk") < F.col("r_pk")
    if link_type == "link_only":
        keep = keep & (F.col(f"l_{SOURCE_DATASET_COLUMN}") != F.col(f"r_{SOURCE_DATASET_COLUMN}"))
    sql = [" AND ".join(f"l.{c} = r.{c}" for c in r) if isinstance(r, list) else r for r in rules]
    found = F.lit(False)
    for s in sql:
        found = found | F.coalesce(F.expr(s.replace("l.", "l_").replace("r.", "r_")), F.lit(False))
    return left.crossJoin(right).where(keep & found).select(F.col("l_pk").alias("id_l"), F.col("r_pk").alias("id_r"),
                                                                (F.col("l_cluster") == F.col("r_cluster")).alias("is_match"))


@pytest.fixture(scope="module")
def generated():
    return people()


@pytest.mark.parametrize("link_type,inputs", [(None, 1), ("link_only", 2), ("link_and_dedupe", 2)])
def test_counts_equal_brute_force(spark, generated, link_type, inputs):
    config = _config(link_type, inputs)
    df = _frame(spark, generated, inputs)
    choice = auto.choose_blocking_rules(df, config)
    estimates = {json.dumps(e.rule): e for e in choice.candidates}
    # every single key, and a spread of pairs and triples
    picked = [e for e in choice.candidates if len(e.columns) == 1] + [e for e in choice.candidates if len(e.columns) > 1][::9]
    for estimate in picked:
        brute = _brute_pairs(df, config, [estimate.rule]).count()
        assert estimates[json.dumps(estimate.rule)].pairs == brute, estimate.rule


def test_sampled_counts_scale(spark, generated):
    """On a sample the counts are scaled by the square of the share: close to the full counts."""
    config = _config()
    df = _frame(spark, generated)
    keys = auto.column_keys(config)
    full = auto.KeyedRows(df, config, keys, 10**9)
    half = auto.KeyedRows(df, config, keys, len(generated) // 2)
    try:
        combos = [(i,) for i, k in enumerate(keys) if k.column == "city" or k.name == "first_1"]
        for (exact, _), (sampled, _) in zip(full.count(combos), half.count(combos)):
            assert sampled == pytest.approx(exact, rel=0.35)
    finally:
        full.close()
        half.close()


def test_the_choice_does_not_depend_on_how_spark_partitions_the_rows(spark):
    """On a sample (``sample_rows`` below the rows) too: the same rows are sampled and drawn from."""
    df, config = _frame(spark, people(entities=400, seed=3)), _config()
    one, many = (auto.choose_blocking_rules(df.repartition(n), config, sample_rows=500) for n in (1, 7))
    assert one.report["candidates"][0]["pairs"] > 0
    assert json.dumps(one.report, sort_keys=True) == json.dumps(many.report, sort_keys=True)
    assert one.rules == many.rules


def test_skewed_placeholder_excluded_and_reported_without_its_value(spark, generated, caplog):
    rows = generated.copy()
    rows.loc[rows.index % 3 == 0, "phone"] = "UNKNOWN"  # a placeholder a third of the records hold
    rows = pd.concat([rows] + [rows.assign(pk=rows["pk"] + f"_{i}", cluster=rows["cluster"] + 1000 * (i + 1)) for i in range(3)])
    config = _config()
    with caplog.at_level(logging.DEBUG, logger="matcher.blocking.auto"):
        choice = auto.choose_blocking_rules(_frame(spark, rows.reset_index(drop=True)), config)
    skewed = {json.dumps(s["rule"]): s for s in choice.report["excluded_skewed"]}
    assert json.dumps(["phone"]) in skewed
    phone = skewed[json.dumps(["phone"])]
    assert phone["largest_block"] == (rows["phone"] == "UNKNOWN").sum()
    assert 0.3 < phone["largest_block_share_of_rows"] < 0.36
    assert ["phone"] not in choice.rules
    assert "UNKNOWN" not in json.dumps(choice.report)
    assert "UNKNOWN" not in caplog.text


def test_chosen_rules_find_the_true_pairs(spark):
    rows = people(entities=400, seed=3)
    config = _config()
    df = _frame(spark, rows)
    choice = auto.choose_blocking_rules(df, config)
    truth = rows.merge(rows, on="cluster").query("pk_x < pk_y")
    found = _brute_pairs(df, config, choice.rules).where("is_match").count()
    recall = found / len(truth)
    assert recall >= 0.95, (recall, choice.rules)
    assert choice.report["estimated_recall"] == pytest.approx(recall, abs=0.05)
    assert choice.report["estimated_pairs"] <= choice.report["budget_pairs"]
    assert all(c["recall"] is not None for c in choice.report["chosen"])
    assert sum(c["new_pairs"] for c in choice.report["chosen"]) == pytest.approx(choice.report["estimated_pairs"], abs=len(choice.rules))
    assert len(choice.report["candidates"]) == choice.report["candidates_considered"] == len(choice.candidates)
    json.dumps(choice.report)  # lands in the model's metadata


def test_a_rule_must_find_matches_worth_its_pairs(spark):
    """A rule joins the union only when the recall it adds is worth its new pairs (``min_yield``):
    raising the yield past a chosen rule's keeps the rules chosen before it and drops that one."""
    df, config = _frame(spark, people(entities=400, seed=3)), _config()
    every = auto.choose_blocking_rules(df, config, min_yield=0.0)
    default = auto.choose_blocking_rules(df, config)
    budget = default.report["budget_pairs"]

    def yields(choice) -> list[float]:
        return [c["adds_recall"] * budget / max(c["new_pairs"], 1) for c in choice.report["chosen"]]

    assert len(every.rules) >= len(default.rules) >= 2
    assert min(yields(default)) >= auto.MIN_YIELD
    weakest = min(range(1, len(default.rules)), key=lambda i: yields(default)[i])
    stricter = yields(default)[weakest] * 1.01
    strict = auto.choose_blocking_rules(df, config, min_yield=stricter)
    assert strict.rules[:weakest] == default.rules[:weakest]
    assert strict.rules[weakest:weakest + 1] != default.rules[weakest:weakest + 1]
    assert min(yields(strict)) >= stricter


def test_recall_from_labels(spark, generated):
    config = _config()
    df = _frame(spark, generated)
    pairs = _brute_pairs(df, config, ["1 = 1"]).toPandas()
    labels = pd.concat([pairs[pairs["is_match"]], pairs[~pairs["is_match"]].head(200)])
    choice = auto.choose_blocking_rules(df, config, labels=labels)
    assert choice.report["recall_from"] == {"labelled_matches": int(pairs["is_match"].sum())}
    matches = set(map(tuple, pairs.loc[pairs["is_match"], ["id_l", "id_r"]].to_numpy()))
    for estimate in [e for e in choice.candidates if len(e.columns) <= 2][::7]:
        found = _brute_pairs(df, config, [estimate.rule]).where("is_match").toPandas()
        assert estimate.recall == pytest.approx(len(found) / len(matches), abs=1e-9), estimate.rule
    union = _brute_pairs(df, config, choice.rules).where("is_match").count()
    assert choice.report["estimated_recall"] == pytest.approx(union / len(matches), abs=1e-4)


def test_rules_run_unchanged_in_splink_on_duckdb(spark, generated):
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator

    from matcher.model.comparisons import blocking_rule

    config = _config()
    df = _frame(spark, generated)
    choice = auto.choose_blocking_rules(df, config)
    rules = list(choice.rules)
    derived = [e.rule for e in choice.candidates if isinstance(e.rule, str) and ("year(" in e.rule or "month(" in e.rule)]
    rules += derived[:2]  # the date parts too, whether or not they were chosen
    assert any(isinstance(r, str) for r in rules)
    frame = generated.assign(dob=pd.to_datetime(generated["dob"], format="%Y-%m-%d", errors="coerce").dt.date)
    frame = frame.drop(columns="pk").assign(unique_id=generated["pk"].astype(int))
    for rule in rules:
        settings = SettingsCreator(
            link_type="dedupe_only", comparisons=[cl.ExactMatch("city")], blocking_rules_to_generate_predictions=[blocking_rule(rule)],
        )
        db_api = DuckDBAPI()
        linker = Linker(db_api.register(frame), settings)
        scored = linker.inference.predict().as_pandas_dataframe()
        spark_pairs = _brute_pairs(df, config, [rule]).count()
        assert len(scored) == spark_pairs, rule
