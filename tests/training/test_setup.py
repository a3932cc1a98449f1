"""matcher.training.setup: a config without blocking or training rules, through every task.

The rules are chosen once, at training, saved in the model's metadata and read back by
match, match-incremental and the labeling tasks, so a model is always used with the
rules it was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

from matcher.config.transform import load_config
from matcher.model.artifact import TrainedModel


def automatic_config(tmp_path, rows: pd.DataFrame | None = None):
    """configs/fake_1000.yaml without its blocking and training rules (over ``rows`` when given)."""
    data = yaml.safe_load((REPO / "configs" / "fake_1000.yaml").read_text(encoding="utf-8"))
    del data["blocking_rules"], data["training"]
    if rows is not None:
        rows.to_csv(tmp_path / "people.csv", index=False)
        data["inputs"][0]["path"] = str(tmp_path / "people.csv")
    else:
        data["inputs"][0]["path"] = str(REPO / "data" / "demo" / "fake_1000.csv")
    data["output"] = str(tmp_path / "run")
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spark):
    """``matcher train`` then ``matcher match`` as two separate tasks on the automatic config."""
    from matcher.cli import main

    tmp = tmp_path_factory.mktemp("auto")
    path = automatic_config(tmp)
    assert main(["--log-level", "ERROR", "train", "--config", str(path)]) == 0
    assert main(["--log-level", "ERROR", "match", "--config", str(path)]) == 0
    return path


def test_training_records_the_rules_it_chose_and_why(trained):
    config = load_config(trained)
    metadata = TrainedModel.load(f"{config.output}/model", config).metadata
    setup = metadata["setup"]
    assert setup["automatic"] == ["blocking_rules", "training.deterministic_rules", "training.em_blocking_rules"]
    chosen = setup["chosen"]
    assert chosen["blocking_rules"] and chosen["training"]["em_blocking_rules"] and chosen["training"]["deterministic_rules"]
    assert setup["blocking"]["chosen"] and setup["blocking"]["budget_pairs"] > 0
    assert metadata["em_sessions"]  # EM ran on the chosen sessions


def test_match_reads_the_chosen_rules_back_from_the_model(trained):
    config = load_config(trained)
    model = TrainedModel.load(f"{config.output}/model", config)
    resolved = model.configure(config)
    assert resolved.active_blocking_rules == model.metadata["setup"]["chosen"]["blocking_rules"]
    assert resolved.model_hash() == config.model_hash()  # the model still fits the config the user wrote
    summary = json.loads((Path(config.output) / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_pairs"] > 0 and summary["rows_out"] == 1000


def test_match_incremental_uses_the_rules_of_the_run_it_builds_on(tmp_path, spark):
    from matcher.cli import main

    rows = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv")
    path = automatic_config(tmp_path, rows.iloc[:900])
    assert main(["--log-level", "ERROR", "run", "--config", str(path)]) == 0
    rows.iloc[900:].to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "incremental"
    code = main(["--log-level", "ERROR", "match-incremental", "--config", str(path), "--existing", str(tmp_path / "run"),
                 "--new", str(tmp_path / "new.csv"), "--output", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows_out"] == 1000
    assert summary["incremental"]["new_rows"] == 100


def test_a_labeling_file_is_written_before_any_model_exists(tmp_path, spark):
    from matcher.cli import main

    path = automatic_config(tmp_path)
    output = tmp_path / "labels.csv"
    assert main(["--log-level", "ERROR", "label-set", "--config", str(path), "--output", str(output), "--sets", "3"]) == 0
    labeled = pd.read_csv(output)
    assert labeled["labeling_set_id"].nunique() == 3
