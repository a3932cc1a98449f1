"""Labeling sets, training and evaluation from labels, on the fake_1000 data through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, assert_one_line_error

from matcher.config.transform import load_config
from matcher.labels.evaluation import ranking_metrics
from matcher.labels.files import pairs_from_sets, read_labeling_file, sets_from_pair_labels, write_labeling_file
from matcher.training.supervision import best_threshold, f_beta_beta

CONFIG = REPO / "configs" / "fake_1000.yaml"
SOURCE = REPO / "data" / "demo" / "fake_1000.csv"


def test_the_threshold_from_labels_separates_matches_from_non_matches_where_f_beta_peaks():
    weights = np.array([9.0, 7.0, 5.0, 3.0, 1.0, -2.0])
    is_match = np.array([True, True, True, False, True, False])
    # F1: cut after 5 -> P 1, R .75 (F .857); after 1 -> P .8, R 1 (F .889): the cut lies between 1 and -2
    assert best_threshold(weights, is_match, 1.0) == pytest.approx(-0.5)
    # precision-heavy beta prefers the clean cut between 5 and 3
    assert best_threshold(weights, is_match, 0.25) == pytest.approx(4.0)
    assert best_threshold(weights, np.zeros(6, bool), 1.0) is None


def test_tied_weights_are_never_cut_apart():
    weights = np.array([5.0, 5.0, 1.0])
    assert best_threshold(weights, np.array([True, False, False]), 1.0) == pytest.approx(3.0)


def test_the_precision_recall_tradeoff_sets_beta():
    assert (f_beta_beta(0.5), f_beta_beta(1.0), f_beta_beta(0.0)) == (1.0, 0.5, 2.0)


def test_ranking_metrics_are_perfect_for_a_perfect_ranking_and_lower_otherwise():
    assert ranking_metrics(np.array([3.0, 2.0, 1.0]), np.array([True, True, False])) == (1.0, 1.0)
    ap, f1 = ranking_metrics(np.array([3.0, 2.0, 1.0]), np.array([False, True, True]))
    assert ap == pytest.approx((0.5 + 2 / 3) / 2) and f1 == pytest.approx(0.8)


@pytest.mark.slow
def test_label_set_without_a_model_writes_disjoint_sets_of_real_source_rows_deterministically(cli, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (first, second):
        result = cli("label-set", "--config", CONFIG, "--run", tmp_path / "run", "--output", out, "--sets", "4", "--set-size", "5")
        assert result.code == 0, result.err
        assert "4 sets, 20 rows, from blocked candidate pairs" in result.out
    assert first.read_bytes() == second.read_bytes()
    assert not first.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = pd.read_csv(first, dtype=str, keep_default_na=False)
    source = pd.read_csv(SOURCE, dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["labeling_set_id", "label", *source.columns]
    assert (rows["label"] == "").all()
    assert rows["unique_id"].is_unique  # sets share no record
    assert rows.groupby("labeling_set_id").size().tolist() == [5, 5, 5, 5]
    # every row is the source row, unchanged
    merged = rows.drop(columns=["labeling_set_id", "label"]).merge(source, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


@pytest.mark.slow
def test_labels_train_the_model_and_are_evaluated_on_held_out_sets(cli, tmp_path):
    config = load_config(CONFIG)
    run = tmp_path / "run"
    clerical = pd.read_csv(REPO / "data" / "demo" / "fake_1000_labels.csv").iloc[:600]
    pairs = pd.DataFrame({"id_l": clerical["unique_id_l"], "id_r": clerical["unique_id_r"],
                          "is_match": clerical["clerical_match_score"] >= 0.5})
    labeled = tmp_path / "labeled.csv"
    write_labeling_file(sets_from_pair_labels(pairs, pd.read_csv(SOURCE, dtype=str, keep_default_na=False), config), labeled)

    result = cli("import-labels", "--config", CONFIG, "--output", run, "--labels", labeled)
    assert result.code == 0, result.err
    assert "1200 rows in 600 sets, 600 pairs" in result.out
    info = json.loads((run / "labels" / "labels.json").read_text())

    assert cli("train", "--config", CONFIG, "--output", run).code == 0
    metadata = json.loads((run / "model" / "metadata.json").read_text())
    assert metadata["labels"]["labels_hash"] == info["labels_hash"]
    assert 0 < metadata["labels"]["training_pairs"] < 600  # the held-out sets were left out
    model = json.loads((run / "model" / "splink_model.json").read_text())
    first_name_levels = next(c for c in model["comparisons"] if c["output_column_name"] == "first_name")["comparison_levels"]
    assert any(level.get("m_probability") is not None for level in first_name_levels)

    result = cli("evaluate", "--config", CONFIG, "--output", run, "--labels")
    assert result.code == 0, result.err
    metrics = json.loads((run / "label_metrics.json").read_text())
    m = metrics["labels"]
    cm = m["confusion_matrix"]
    assert cm["tp"] + cm["fp"] + cm["tn"] + cm["fn"] == m["pairs"] == 600 - metadata["labels"]["training_pairs"]
    assert m["auprc"] > 0.9 and m["max_f1"] >= m["f1"] > 0.7
    assert set(m["column_importances"]) == set(config.column_names)
    assert "AUPRC" in result.out and "column importances" in result.out

    # a model exists now: the next sets grow around its uncertain pairs and skip labeled records
    result = cli("label-set", "--config", CONFIG, "--run", run, "--output", tmp_path / "next.csv", "--sets", "3")
    assert result.code == 0, result.err
    assert "from the model's most uncertain pairs" in result.out
    nxt = read_labeling_file(tmp_path / "next.csv", config)
    assert not set(nxt["unique_id"]) & (set(pairs["id_l"].astype(str)) | set(pairs["id_r"].astype(str)))

    # conflicting labels are refused on one line naming the pair
    flipped = sets_from_pair_labels(pairs.iloc[:1].assign(is_match=~pairs["is_match"].iloc[:1]),
                                    pd.read_csv(SOURCE, dtype=str, keep_default_na=False), config)
    flipped["labeling_set_id"] = "again-0"
    write_labeling_file(flipped, tmp_path / "flipped.csv")
    result = cli("import-labels", "--config", CONFIG, "--output", run, "--labels", tmp_path / "flipped.csv")
    assert_one_line_error(result, "labeled both match and non-match", f"{pairs['id_l'][0]}~{pairs['id_r'][0]}")

    result = cli("export-labels", "--config", CONFIG, "--run", run, "--output", tmp_path / "export.csv")
    assert result.code == 0, result.err
    assert len(pairs_from_sets(read_labeling_file(tmp_path / "export.csv", config), config)) == 600


def test_evaluate_with_labels_but_none_imported_is_a_one_line_error(cli, tmp_path):
    result = cli("evaluate", "--config", CONFIG, "--output", tmp_path / "run", "--labels")
    assert_one_line_error(result, "no trained model here")


LABEL_TASK_OPTIONS = {
    "label-set": {"--config", "--output", "--run", "--sets", "--set-size", "--help"},
    "label": {"--config", "--output", "--input", "--help"},
    "import-labels": {"--config", "--output", "--labels", "--replace", "--help"},
    "export-labels": {"--config", "--output", "--run", "--help"},
}


@pytest.mark.parametrize("task", sorted(LABEL_TASK_OPTIONS))
def test_each_labeling_task_declares_exactly_its_documented_options(task):
    from matcher.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "task").choices[task]
    assert {s for action in sub._actions for s in action.option_strings if s.startswith("--")} == LABEL_TASK_OPTIONS[task]


def test_label_set_needs_an_output_file(cli, capsys):
    with pytest.raises(SystemExit) as exited:
        cli("label-set", "--config", CONFIG)
    assert exited.value.code == 2
