"""import-labels takes a data stewards' decision log: its decided pairs become labeling sets, on fake_1000."""

from __future__ import annotations

import json

import pandas as pd
from conftest import REPO, assert_one_line_error

from matcher.config.transform import load_config
from matcher.labels.files import LabelStore, pairs_from_sets, training_pairs
from matcher.matching.decisions import Decision, DecisionLog

CONFIG = REPO / "configs" / "fake_1000.yaml"
SOURCE = REPO / "data" / "demo" / "fake_1000.csv"


def write_log(folder, *decisions: tuple[str, dict]) -> DecisionLog:
    log = DecisionLog(folder)
    with log.locked():
        for n, (action, fields) in enumerate(decisions, start=1):
            log.append(Decision(decision_id=f"d{n:06d}", action=action, who="ana", when="2026-12-05T10:00:00Z", **fields))
    return log


def test_the_decided_pairs_are_imported_as_labels_with_the_latest_verdict_and_source_rows(cli, tmp_path):
    log = write_log(
        tmp_path / "review",
        ("merge", {"match_id": "0", "records": ("0", "1", "2"), "retired_match_id": "2"}),
        ("split", {"match_id": "0", "records": ("0", "1", "2"), "moved": ("2",), "new_match_id": "2"}),  # 0~2, 1~2 now differ
        ("not_match", {"records": ("5", "9999")}),  # 9999 is not in the source: dropped
    )
    run = tmp_path / "run"
    result = cli("import-labels", "--config", CONFIG, "--output", run, "--labels", log.path)
    assert result.code == 0, result.err
    assert "6 rows in 3 sets, 3 pairs (1 matches)" in result.out

    config = load_config(CONFIG)
    rows = LabelStore(run).rows()
    pairs = pairs_from_sets(rows, config).sort_values(["id_l", "id_r"]).reset_index(drop=True)
    assert pairs[["id_l", "id_r", "is_match"]].values.tolist() == [["0", "1", True], ["0", "2", False], ["1", "2", False]]
    assert sorted(set(rows["labeling_set_id"])) == ["d000001:0~1", "d000002:0~2", "d000002:1~2"]
    source = pd.read_csv(SOURCE, dtype=str, keep_default_na=False).set_index("unique_id")
    first = rows[rows["unique_id"] == "1"].iloc[0]
    assert first["surname"] == source.loc["1", "surname"] and first["email"] == source.loc["1", "email"]
    training, held, digest = training_pairs(config, run)
    assert len(training) + len(held) == 3 and digest == json.loads((run / "labels" / "labels.json").read_text())["labels_hash"]

    # appending the same log again reuses its set ids; --replace starts over; a run folder names its log too
    again = cli("import-labels", "--config", CONFIG, "--output", run, "--labels", log.path)
    assert_one_line_error(again, "labeling set id(s) already imported", "--replace")
    replaced = cli("import-labels", "--config", CONFIG, "--output", run, "--labels", log.path.parent, "--replace")
    assert replaced.code == 0, replaced.err
    assert "6 rows in 3 sets, 3 pairs (1 matches) after 1 import(s)" in replaced.out


def test_a_decision_log_with_nothing_to_import_is_a_one_line_error(cli, tmp_path):
    log = write_log(tmp_path, ("match", {"records": ("0", "9999")}))
    result = cli("import-labels", "--config", CONFIG, "--output", tmp_path / "run", "--labels", log.path)
    assert_one_line_error(result, "decisions.jsonl: no decision in force judges a pair")
