"""Comparisons that agree together among non-matches (households): measured without labels and corrected."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from matcher.blocking.candidates import Candidates
from matcher.config.transform import config_from_dict, load_config
from matcher.harmonize.harmonization import harmonize
from matcher.matching.driver_scoring import duckdb_settings
from matcher.model.artifact import make_linker
from matcher.model.dependence import PREFIX, Agreement, Group, derived_gamma, derived_gamma_sql
from matcher.model.splink_adapter import gamma_column
from matcher.profiling.starting_config import write_starting_config
from matcher.training.dependence import MAX_MEMBERS, _groups, _shareable, add_groups, place_columns
from matcher.training.trainer import train

COLUMNS = ["first_name", "last_name", "dob", "postcode", "house_number"]


def people(households: bool, seed: int = 7, copied_dob: float = 0.0) -> pd.DataFrame:
    """Records of about 1,500 people, 1-3 records each with a few typos and gaps. With ``households``
    people live 1-4 to a household sharing surname, postcode and house number; else each draws their own.
    A record of a household's member gives another member's birth date with probability ``copied_dob``
    (a census form filled in for the whole household)."""
    rng = np.random.default_rng(seed)
    surnames = [f"sur{i}" for i in range(300)]
    firsts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(4, 9)))) for _ in range(400)]
    rows, person = [], 0
    while person < 1500:
        size = int(rng.integers(1, 5)) if households else 1
        home = (rng.choice(surnames), f"{rng.integers(100, 160)}", str(rng.integers(1, 200)))
        births = [pd.Timestamp("1940-01-01") + pd.Timedelta(days=int(rng.integers(0, 23000))) for _ in range(size)]
        for member in range(size):
            last, postcode, house = home
            first, middle = rng.choice(firsts), rng.choice(list("abcdefghijklmnopqrstuvwxyz"))
            for _ in range(int(rng.integers(1, 4))):
                copied = size > 1 and rng.random() < copied_dob
                born = births[(member + int(rng.integers(1, size))) % size] if copied else births[member]
                rows.append({
                    "pk": f"r{len(rows)}", "person": person,
                    "first_name": first + "x" if rng.random() < 0.1 else first, "middle_name": middle, "last_name": last,
                    "dob": born.strftime("%Y-%m-%d"), "postcode": None if rng.random() < 0.05 else postcode,
                    "house_number": house,
                })
            person += 1
    return pd.DataFrame(rows)


def config(*, middle_name: bool = False):
    """The households' config; with ``middle_name``, their middle initials are compared too."""
    return config_from_dict({
        "name": "households", "inputs": [{"name": "people", "path": "unused.csv"}], "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, *([{"name": "middle_name", "kind": "initial"}] if middle_name else []),
                    {"name": "last_name", "kind": "name", "term_frequency": True},
                    {"name": "dob", "kind": "birth_date"}, {"name": "postcode", "kind": "exact"},
                    {"name": "house_number", "kind": "exact"}],
        "blocking_rules": [["last_name"], ["dob"]],
        "training": {"deterministic_rules": [["first_name", "last_name", "dob"]], "em_blocking_rules": [["dob"], ["last_name"]]},
    })


def frame(spark, records: pd.DataFrame):
    return spark.createDataFrame(records[["pk", *COLUMNS]].astype(object).where(records.notna(), None)).withColumn(
        "source_dataset", F.lit("people")
    )


def true_lift(records: pd.DataFrame, columns: list[str]) -> float:
    """P(all of ``columns`` agree | different people) / Π P(each agrees | different people), counted exactly
    over every pair filled in on the columns."""
    filled = records.dropna(subset=columns)

    def agreeing(keys: list[str]) -> tuple[float, float]:
        """Pairs agreeing on ``keys``: all of them, and those of one person."""
        def pairs(groups):
            n = groups.size().to_numpy(float)
            return float((n * (n - 1) / 2).sum())
        everyone = pairs(filled.groupby(keys)) if keys else len(filled) * (len(filled) - 1) / 2
        return everyone, pairs(filled.groupby([*keys, "person"]))

    total, same = agreeing([])
    different = total - same
    together = (lambda a, s: (a - s) / different)(*agreeing(columns))
    alone = np.prod([(lambda a, s: (a - s) / different)(*agreeing([c])) for c in columns])
    return together / alone


@pytest.fixture(scope="module")
def households(spark):
    records = people(households=True)
    df = frame(spark, records).cache()
    model = train(df, config())
    yield records, df, model
    df.unpersist()


def test_households_make_surname_and_address_agree_together_and_the_lift_is_measured_without_labels(households):
    records, _, model = households
    (group,) = [g for g in model.metadata["dependence"] if {"last_name", "postcode"} <= set(g["columns"])]
    assert not [g for g in model.metadata["dependence"] if "dob" in g["columns"]]  # each member's own birth date
    levels = {tuple(level["columns"]): level for level in group["levels"]}
    measured = levels[("last_name", "postcode")]["lift"]
    truth = true_lift(records, ["last_name", "postcode"])
    assert truth > 10
    assert truth / 3 <= measured <= truth * 1.5, (measured, truth)
    assert levels[("last_name", "postcode")]["weight"] == pytest.approx(-np.log2(measured), abs=1e-3)
    # a pair takes the first level it agrees on: the most members first, and among as many the strongest
    order = [(-len(level["columns"]), -level["lift"]) for level in group["levels"]]
    assert order == sorted(order) and len({size for size, _ in order}) > 1
    # the model scores with it: one more comparison, its levels' factor 1 / lift, held in training
    (comparison,) = [c for c in model.splink_model["comparisons"] if c["output_column_name"] == group["comparison"]]
    by_label = {lv["label_for_charts"]: lv for lv in comparison["comparison_levels"]}
    level = by_label["last_name, postcode agree together"]
    assert level["m_probability"] / level["u_probability"] == pytest.approx(1 / measured, rel=1e-3)
    assert level["fix_m_probability"] and level["fix_u_probability"]
    # a member's rare value weighs no more than its exact level's average (relatives share rare surnames)
    assert model.metadata["term_frequency_capped"] == ["last_name"]
    (last,) = [c for c in model.splink_model["comparisons"] if c["output_column_name"] == "last_name"]
    adjusted = [lv for lv in last["comparison_levels"] if lv.get("tf_adjustment_column")]
    assert adjusted and all(lv["tf_minimum_u_value"] == pytest.approx(adjusted[0]["u_probability"]) for lv in adjusted)


def test_only_a_group_holding_a_place_loses_its_term_frequency_boosts(households):
    _, _, model = households
    names = Group(("first_name", "last_name"), (Agreement(("first_name", "last_name"), 3.0, 100.0),))
    assert add_groups(model.settings(), [names], place_columns(config())) == []  # a person's names alone: kept
    assert place_columns(config()) == {"postcode", "house_number"}


def test_birth_dates_copied_within_households_agree_with_the_surname_among_non_matches(spark):
    records = people(households=True, seed=5, copied_dob=0.3)
    columns = ["first_name", "middle_name", *COLUMNS[1:]]
    df = spark.createDataFrame(records[["pk", *columns]].astype(object).where(records.notna(), None)).withColumn(
        "source_dataset", F.lit("people"))
    model = train(df, config(middle_name=True))
    levels = {tuple(level["columns"]): level["lift"] for g in model.metadata["dependence"] for level in g["levels"]}
    truth = true_lift(records, ["last_name", "dob"])
    assert truth > 100
    assert truth / 3 <= levels[("last_name", "dob")] <= truth * 1.5, (levels, truth)
    assert not [c for c in levels if "dob" in c and {"first_name", "middle_name"} & set(c)]  # a person's own: never


def test_a_date_is_measured_together_only_with_the_surname_and_what_a_household_shares():
    shareable = _shareable(config_from_dict({
        "name": "s", "inputs": [{"name": "p", "path": "unused.csv"}], "primary_key": "pk", "blocking_rules": [["dob"]],
        "columns": [{"name": c, "kind": k} for c, k in [("first_name", "name"), ("last_name", "name"), ("dob", "birth_date"),
                                                        ("email", "email"), ("phone", "phone"), ("postcode", "postcode")]],
    }))
    assert [shareable(s) for s in [("last_name", "dob"), ("last_name", "dob", "phone", "postcode"), ("first_name", "email")]] == [True] * 3
    assert [shareable(s) for s in [("first_name", "dob"), ("dob", "email"), ("last_name", "dob", "email"),
                                   ("dob", "postcode"), ("dob", "phone", "postcode")]] == [False] * 5


@pytest.mark.slow
def test_febrl_matches_with_mistyped_names_are_not_taken_for_people_sharing_an_id(spark, tmp_path):
    """Febrl3 has no households, but many records of one person differ on both names. Two classes free on
    every comparison took those matches for two people sharing an id and a postcode (lift 537, 2,271 pairs)."""
    from bench.datasets import paths, prepare

    prepare("febrl3")
    write_starting_config(paths("febrl3"), tmp_path / "febrl3.yaml", truth_column="entity_id")
    febrl = load_config(tmp_path / "febrl3.yaml")
    model = train(harmonize(spark, febrl).rows, febrl)
    assert not [g for g in model.metadata.get("dependence", []) if "soc_sec_id" in g["columns"]], model.metadata["dependence"]


def test_without_households_nothing_is_corrected(spark):
    records = people(households=False)
    model = train(frame(spark, records), config())
    groups = model.metadata.get("dependence", [])
    assert not [g for g in groups if {"last_name", "postcode"} <= set(g["columns"])], groups
    assert true_lift(records, ["last_name", "postcode"]) < 2


def test_it_can_be_turned_off(spark, households):
    _, df, _ = households
    off = config().model_copy(update={"training": config().training.model_copy(update={"correct_dependence": False})})
    model = train(df, off)
    assert "dependence" not in model.metadata
    assert not [c for c in model.splink_model["comparisons"] if c["output_column_name"].startswith(PREFIX)]


def test_the_level_from_the_sql_equals_the_level_from_the_members_levels(spark, households):
    _, df, model = households
    settings = model.settings()
    (cc,) = [c for c in settings.comparisons if c.output_column_name.startswith(PREFIX)]
    with Candidates() as candidates:  # compared with the trained model's SQL, the dependence comparison included
        vectors = candidates.get(make_linker(df, config(), model)).frame
        from_sql = vectors.select(
            *[gamma_column(c) for c in settings.comparisons], F.expr(derived_gamma_sql(settings, cc)).alias("derived")
        ).toPandas()
    assert from_sql[gamma_column(cc)].nunique() > 2  # several levels occur
    assert (from_sql[gamma_column(cc)] == from_sql["derived"]).all()
    assert (derived_gamma(settings, cc, from_sql) == from_sql[gamma_column(cc)].to_numpy()).all()


def test_duckdb_scoring_takes_the_dependence_comparison_as_trained(households):
    _, _, model = households
    settings = duckdb_settings(config(), model)
    names = [c["output_column_name"] for c in settings["comparisons"]]
    assert names[: len(COLUMNS)] == COLUMNS and names[len(COLUMNS):] == [
        c["output_column_name"] for c in model.splink_model["comparisons"] if c["output_column_name"].startswith(PREFIX)
    ]


def test_groups_join_the_strongest_dependences_first_and_stay_small():
    chain = [f"c{i}" for i in range(MAX_MEMBERS + 1)]  # one more than a group holds, joined weakest last
    edges = [(100.0 - i, a, b) for i, (a, b) in enumerate(itertools.pairwise(chain))] + [(3.0, "x", "y"), (1.0, chain[0], chain[-1])]
    groups = sorted(sorted(g) for g in _groups(edges))
    assert groups == [sorted(chain[:-1]), ["x", "y"]]
    assert all(len(g) <= MAX_MEMBERS for g in groups)


def namesakes(seed: int = 11) -> pd.DataFrame:
    """About 1,500 people with names from small pools (many namesakes), each with an email built from their
    names at one of three providers, 1-3 records each; a namesake's email differs only in its domain."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(1500):
        first, last = f"first{rng.integers(0, 50)}", f"sur{rng.integers(0, 50)}"
        email = f"{first}.{last}@{rng.choice(['mail.com', 'post.org', 'inbox.net'])}"
        born = (pd.Timestamp("1940-01-01") + pd.Timedelta(days=int(rng.integers(0, 23000)))).strftime("%Y-%m-%d")
        phone = f"555{rng.integers(1_000_000, 9_999_999)}"
        for _ in range(int(rng.integers(1, 4))):
            rows.append({"pk": f"r{len(rows)}", "person": person, "first_name": first, "last_name": last, "dob": born,
                         "email": None if rng.random() < 0.1 else email, "phone": phone})
    return pd.DataFrame(rows)


def test_emails_built_from_names_agree_with_the_names_by_their_usernames(spark):
    records = namesakes()
    columns = ["first_name", "last_name", "dob", "email", "phone"]
    email_config = config_from_dict({
        "name": "namesakes", "inputs": [{"name": "people", "path": "unused.csv"}], "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "last_name", "kind": "name"},
                    {"name": "dob", "kind": "birth_date"}, {"name": "email", "kind": "email"}, {"name": "phone", "kind": "phone"}],
        "blocking_rules": [["last_name"], ["dob"], ["phone"]],
        "training": {"deterministic_rules": [["dob", "phone"]], "em_blocking_rules": [["dob"], ["phone"]]},
    })
    df = spark.createDataFrame(records[["pk", *columns]].astype(object).where(records.notna(), None)).withColumn(
        "source_dataset", F.lit("people"))
    model = train(df, email_config)
    (group,) = [g for g in model.metadata["dependence"] if "email" in g["columns"]]
    levels = {tuple(level["columns"]): level["lift"] for level in group["levels"]}
    # the names and the username agree together among namesakes: their emails differ only in the domain
    records["username"] = records["email"].str.split("@").str[0]
    truth = true_lift(records, ["first_name", "last_name", "username"])
    assert truth > 100
    assert truth / 3 <= levels[("first_name", "last_name", "email")] <= truth * 1.5, (levels, truth)
    (comparison,) = [c for c in model.splink_model["comparisons"] if c["output_column_name"] == group["comparison"]]
    assert "REGEXP_EXTRACT(email_l" in comparison["comparison_levels"][1]["sql_condition"]
