"""End to end: ``matcher`` tasks on the bundled demo (1,000 records, ~250 people) and on small slices of it.

The demo is trained by ``run`` in one folder and by ``train`` in another (module-scoped
fixtures that the tests share); the two must give the same clusters. One test retrains
on request, and two train on 300-row slices, so this module takes a few minutes.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from conftest import assert_one_line_error, persistent_rdd_ids, rdds_left
from pyspark.sql import functions as F
from pyspark.sql import types as T

from matcher.cli import main
from matcher.config.transform import load_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "fake_1000.yaml"
DEMO_CSV = REPO / "data" / "demo" / "fake_1000.csv"
THRESHOLD = 0.5  # the demo's precision_recall_tradeoff is 0.5


def matcher(*args) -> None:
    code = main(["--log-level", "WARNING", *map(str, args)])
    assert code == 0, f"matcher {' '.join(map(str, args))} exited {code}"


@pytest.fixture(scope="module")
def demo_run_cached(spark, tmp_path_factory) -> tuple[Path, set[int]]:
    """``matcher run`` on the demo (trains, matches and evaluates), and the persistent RDDs
    it left in the session."""
    folder = tmp_path_factory.mktemp("demo_run")
    before = persistent_rdd_ids(spark)
    matcher("run", "--config", DEMO, "--output", folder)
    return folder, rdds_left(spark, before)


@pytest.fixture(scope="module")
def demo_run(demo_run_cached) -> Path:
    return demo_run_cached[0]


def test_run_leaves_nothing_cached_in_the_session(demo_run_cached):
    # a notebook or Glue session runs many matches: inputs, term frequencies, candidate
    # vectors and scored pairs must all be released
    _, left = demo_run_cached
    assert not left


@pytest.fixture(scope="module")
def split_run(spark, tmp_path_factory) -> dict:
    """``matcher train``, then ``match``, then ``evaluate`` on the demo, as separate commands."""
    folder = tmp_path_factory.mktemp("split_run")
    matcher("train", "--config", DEMO, "--output", folder)
    checkpoints_after_train = (folder / "_checkpoints").exists()
    metadata = folder / "model" / "metadata.json"
    before = (metadata.read_text(encoding="utf-8"), metadata.stat().st_mtime_ns)
    matcher("match", "--config", DEMO, "--output", folder)
    matcher("evaluate", "--config", DEMO, "--output", folder)
    after = (metadata.read_text(encoding="utf-8"), metadata.stat().st_mtime_ns)
    return {
        "folder": folder,
        "model_before_match": before,
        "model_after_match": after,
        "checkpoints_after_train": checkpoints_after_train,
    }


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def matches(spark, folder: Path):
    return spark.read.parquet(str(folder / "matches"))


def ids(spark, folder: Path):
    return matches(spark, folder).select("unique_id", "match_id").orderBy("unique_id")


# --- the demo run -------------------------------------------------------------------------


def test_run_writes_every_input_row_exactly_once(spark, demo_run):
    metrics = read_json(demo_run / "metrics.json")
    assert metrics["rows_in"] == metrics["rows_out"] == 1000
    rows = matches(spark, demo_run)
    assert rows.count() == 1000
    assert rows.select("unique_id").distinct().count() == 1000


def test_every_row_has_a_match_id_and_a_confidence_between_0_and_1(spark, demo_run):
    rows = matches(spark, demo_run)
    bad = rows.where(
        F.col("match_id").isNull()
        | F.col("match_confidence_score").isNull()
        | (F.col("match_confidence_score") < 0)
        | (F.col("match_confidence_score") > 1)
    )
    assert bad.count() == 0


def test_metrics_json_has_every_documented_key(demo_run):
    metrics = read_json(demo_run / "metrics.json")
    for key in ("blocking_recall", "rows_in", "rows_out", "n_pairs", "n_clusters"):
        assert key in metrics, key
    assert {"precision", "recall", "f1", "auprc", "tp", "fp", "fn"} <= set(metrics["pairwise"])
    assert {"precision", "recall", "f1"} <= set(metrics["clusters"])
    assert {"train", "predict", "cluster", "total"} <= set(metrics["timings_s"])
    assert all(v >= 0 for v in metrics["timings_s"].values())
    assert metrics["timings_s"]["train"] > 0  # this run had to train
    assert metrics["timings_s"]["total"] >= metrics["timings_s"]["train"]


def test_metrics_agree_with_the_written_outputs_and_the_truth(spark, demo_run):
    metrics = read_json(demo_run / "metrics.json")
    rows = matches(spark, demo_run)
    assert metrics["n_clusters"] == rows.select("match_id").distinct().count()
    assert metrics["n_pairs"] == spark.read.parquet(str(demo_run / "pairs")).count()
    # true pairs counted straight from the CSV: n choose 2 per truth cluster
    with DEMO_CSV.open(encoding="utf-8") as f:
        sizes: dict[str, int] = {}
        for record in csv.DictReader(f):
            sizes[record["cluster"]] = sizes.get(record["cluster"], 0) + 1
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    pairwise = metrics["pairwise"]
    assert pairwise["tp"] + pairwise["fn"] == true_pairs
    assert pairwise["recall"] == pytest.approx(pairwise["tp"] / true_pairs)
    assert pairwise["precision"] == pytest.approx(pairwise["tp"] / (pairwise["tp"] + pairwise["fp"]))
    # pairwise recall can never beat what blocking proposed
    assert pairwise["recall"] <= metrics["blocking_recall"] + 1e-12


def test_demo_cluster_f1_is_above_0_8(demo_run):
    clusters = read_json(demo_run / "metrics.json")["clusters"]
    assert clusters["f1"] > 0.8, clusters


def test_match_id_is_the_smallest_primary_key_of_its_cluster(spark, demo_run):
    rows = matches(spark, demo_run)
    assert rows.schema["unique_id"].dataType == T.LongType()  # numeric keys order as numbers
    smallest = rows.groupBy("match_id").agg(F.min("unique_id").alias("smallest"))
    assert_df_equality(
        smallest.select(F.col("match_id").alias("smallest")),
        smallest.select("smallest"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_clusters_are_the_connected_components_of_the_pairs_above_the_threshold(spark, demo_run):
    """Recluster the written pairs with a plain union-find and compare."""
    edges = (
        spark.read.parquet(str(demo_run / "pairs"))
        .where(F.col("match_probability") >= THRESHOLD)
        .select("unique_id_l", "unique_id_r")
        .collect()
    )
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for left, right in edges:
        a, b = find(left), find(right)
        parent[max(a, b)] = min(a, b)  # the root stays the smallest id
    expected = {r.unique_id: find(r.unique_id) for r in ids(spark, demo_run).collect()}
    assert {r.unique_id: r.match_id for r in ids(spark, demo_run).collect()} == expected
    assert len(set(expected.values())) < 1000  # the demo does have duplicates


def test_confidence_is_the_strongest_link_for_members_and_its_complement_for_singletons(spark, demo_run):
    pairs = spark.read.parquet(str(demo_run / "pairs"))
    best = (
        pairs.select(F.col("record_id_l").alias("unique_id"), "match_probability")
        .unionByName(pairs.select(F.col("record_id_r").alias("unique_id"), "match_probability"))
        .groupBy("unique_id")
        .agg(F.max("match_probability").alias("best"))
    )
    rows = matches(spark, demo_run).join(best, "unique_id", "left")
    expected = (
        F.when(F.col("best") >= THRESHOLD, F.col("best")).otherwise(1 - F.coalesce(F.col("best"), F.lit(0.0)))
    )
    off = rows.where(F.abs(F.col("match_confidence_score") - expected) > 1e-9)
    assert off.count() == 0
    # with a neutral threshold, every assignment is at least as likely as not
    assert rows.where(F.col("match_confidence_score") < THRESHOLD).count() == 0


def test_matches_keep_the_input_columns(spark, demo_run):
    columns = set(matches(spark, demo_run).columns)
    assert {"unique_id", "first_name", "surname", "dob", "city", "email", "cluster"} <= columns
    assert {"match_id", "match_confidence_score"} <= columns


def test_run_removes_its_checkpoints_and_saves_a_model_for_this_config(demo_run):
    assert not (demo_run / "_checkpoints").exists()
    metadata = read_json(demo_run / "model" / "metadata.json")
    assert metadata["config_hash"] == load_config(DEMO).model_hash()
    assert metadata["rows"] == 1000
    assert metadata["seed"] == 42
    assert (demo_run / "model" / "splink_model.json").is_file()


# --- train, then match, then evaluate ----------------------------------------------------


def test_match_after_train_uses_the_saved_model_without_retraining(split_run):
    assert split_run["model_after_match"] == split_run["model_before_match"]
    summary = read_json(split_run["folder"] / "summary.json")
    assert summary["timings_s"]["train"] == 0
    assert summary["outputs"]["model"] == str(split_run["folder"] / "model")


def test_evaluate_after_match_writes_metrics_on_top_of_the_summary(split_run):
    summary = read_json(split_run["folder"] / "summary.json")
    metrics = read_json(split_run["folder"] / "metrics.json")
    assert {k: metrics[k] for k in summary} == summary
    assert metrics["clusters"]["f1"] > 0.8


def test_each_task_removes_its_intermediate_tables(split_run):
    assert not split_run["checkpoints_after_train"]
    assert not (split_run["folder"] / "_checkpoints").exists()


def test_two_independent_trainings_give_identical_match_ids(spark, demo_run, split_run):
    assert_df_equality(ids(spark, demo_run), ids(spark, split_run["folder"]), ignore_nullable=True)
    first = probabilities(read_json(demo_run / "model" / "splink_model.json"))
    second = probabilities(read_json(split_run["folder"] / "model" / "splink_model.json"))
    assert list(first) == list(second)
    # the same estimates, up to floating-point summation order
    assert list(second.values()) == pytest.approx(list(first.values()), rel=1e-9)


def probabilities(model: dict) -> dict[str, float]:
    """Every trained number in a Splink model, keyed by where it sits."""
    found = {"lambda": model["probability_two_random_records_match"]}
    for comparison in model["comparisons"]:
        for i, level in enumerate(comparison["comparison_levels"]):
            for key in ("m_probability", "u_probability"):
                if key in level:
                    found[f"{comparison['output_column_name']}.{i}.{key}"] = level[key]
    return found


def test_run_reuses_a_fitting_model_and_retrains_only_on_request(spark, demo_run, split_run, tmp_path):
    folder = tmp_path / "reuse"
    folder.mkdir()
    shutil.copytree(split_run["folder"] / "model", folder / "model")
    metadata = folder / "model" / "metadata.json"
    trained = metadata.read_text(encoding="utf-8")

    matcher("run", "--config", DEMO, "--output", folder)
    assert metadata.read_text(encoding="utf-8") == trained
    assert read_json(folder / "metrics.json")["timings_s"]["train"] == 0
    assert_df_equality(ids(spark, folder), ids(spark, demo_run), ignore_nullable=True)

    matcher("run", "--config", DEMO, "--output", folder, "--retrain")
    assert read_json(folder / "metrics.json")["timings_s"]["train"] > 0
    assert_df_equality(ids(spark, folder), ids(spark, demo_run), ignore_nullable=True)


def test_match_refuses_a_model_trained_for_another_config(split_run, tmp_path, cli):
    other = tmp_path / "other.yaml"
    text = DEMO.read_text(encoding="utf-8").replace("seed: 42", "seed: 7")
    text = text.replace("path: data/demo/fake_1000.csv", f"path: {DEMO_CSV}")
    other.write_text(text, encoding="utf-8")
    folder = tmp_path / "run"
    shutil.copytree(split_run["folder"] / "model", folder / "model")
    result = cli("match", "--config", other, "--output", folder)
    assert_one_line_error(result, str(folder / "model"), "model was trained for config hash", "matcher train")
    assert result.code == 1
    assert_nothing_looks_complete_but_the_model(folder)


def assert_nothing_looks_complete_but_the_model(folder: Path) -> None:
    for name in ("summary.json", "metrics.json", "matches", "pairs"):
        assert not (folder / name).exists(), name


def test_evaluate_without_a_prior_match_fails_with_one_line(split_run, tmp_path, cli):
    folder = tmp_path / "trained_only"
    shutil.copytree(split_run["folder"] / "model", folder / "model")
    result = cli("evaluate", "--config", DEMO, "--output", folder)
    assert_one_line_error(result, str(folder), "no completed match run here", "matcher match")
    assert not (folder / "metrics.json").exists()


# --- small slices of the demo: other key names, several inputs ---------------------------


def demo_slice(tmp_path: Path, name: str, rows: range | slice, *, key: str = "unique_id") -> Path:
    """Some rows of the demo CSV (a range, or a slice such as every other row), with the key renamed."""
    with DEMO_CSV.open(encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    path = tmp_path / f"{name}.csv"
    fields = [key if c == "unique_id" else c for c in records[0]]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        chosen = records[rows] if isinstance(rows, slice) else records[rows.start : rows.stop]
        for record in chosen:
            writer.writerow(record.values())
    return path


def slice_config(inputs: list[tuple[str, Path]], *, key: str = "unique_id", **overrides) -> dict:
    config = {
        "name": "slice",
        "inputs": [{"name": n, "path": str(p), "format": "csv"} for n, p in inputs],
        "primary_key": key,
        "columns": [
            {"name": "first_name", "kind": "name"},
            {"name": "surname", "kind": "name"},
            {"name": "dob", "kind": "date"},
            {"name": "email", "kind": "email"},
        ],
        "blocking_rules": [["first_name"], ["surname"], ["dob"]],
        "training": {"deterministic_rules": [["first_name", "dob"], ["email"]], "em_blocking_rules": [["first_name", "surname"], ["dob"]]},
        "truth_column": "cluster",
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize("key", ["record_key", "id", "record_id"])
def test_any_primary_key_name_works_end_to_end(spark, tmp_path, write_config, key):
    data = demo_slice(tmp_path, "people", range(0, 300), key=key)
    config = write_config(slice_config([("people", data)], key=key))
    matcher("run", "--config", config, "--output", tmp_path / "out")
    rows = spark.read.parquet(str(tmp_path / "out" / "matches"))
    assert rows.count() == 300
    smallest = rows.groupBy("match_id").agg(F.min(key).alias("smallest"))
    assert smallest.where(F.col("smallest") != F.col("match_id")).count() == 0


def test_several_inputs_get_input_prefixed_record_ids_and_clusters_across_them(spark, tmp_path, write_config):
    # alternate rows go to each input, so most people have records in both
    crm = demo_slice(tmp_path, "crm", slice(0, 300, 2))
    web = demo_slice(tmp_path, "web", slice(1, 300, 2))
    config = write_config(slice_config([("crm", crm), ("web", web)]))
    out = tmp_path / "out"
    matcher("run", "--config", config, "--output", out)
    metrics = read_json(out / "metrics.json")
    assert metrics["rows_in"] == metrics["rows_out"] == 300
    rows = spark.read.parquet(str(out / "matches"))
    assert rows.select("record_id").distinct().count() == 300
    assert rows.where(~F.col("record_id").rlike(r"^(crm|web):[0-9]+$")).count() == 0
    # match_id is the smallest record id (as text) of its cluster
    smallest = rows.groupBy("match_id").agg(F.min("record_id").alias("smallest"))
    assert smallest.where(F.col("smallest") != F.col("match_id")).count() == 0
    across = rows.groupBy("match_id").agg(F.countDistinct("source_dataset").alias("n")).where("n > 1")
    assert across.count() > 0
    assert metrics["clusters"]["f1"] > 0.7  # a lower bar than the demo: 300 rows are little to train on
