"""``matcher forget``: a person's records leave every output of a run folder and the graph, and
the erasure is recorded without values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml
from conftest import REPO, assert_one_line_error
from gremlin_python.process.anonymous_traversal import traversal

from matcher.config.transform import load_config
from matcher.graph.connection import connect
from matcher.graph.queries import snapshot
from matcher.graph.server import clear_graph
from matcher.incremental import forget
from matcher.incremental.forget import forget_task
from matcher.runtime.run_folder import RunFolder

pytestmark = pytest.mark.slow


def demo_config_with_graph(tmp_path: Path, endpoint: str) -> Path:
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    for source in data["sources"]:
        source["path"] = str(REPO / source["path"])
    data["graph"] = {"endpoint": endpoint, "writers": 1}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def table(path: Path) -> pd.DataFrame:
    return ds.dataset(str(path), format="parquet").to_table().to_pandas()


def everything_written(run: Path) -> str:
    """Every Parquet table (all columns as text) and every text file under ``run``, as one text."""
    parts = []
    for path in sorted(run.rglob("*")):
        if path.suffix == ".parquet" and path.name[0] not in "._":
            parts.append(pd.read_parquet(path).astype(str).to_csv())
        elif path.is_file() and path.suffix in (".json", ".jsonl", ".html", ".csv"):
            parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts)


def distinctive_values(run: Path, ids: set[str]) -> set[str]:
    """Values (5+ characters) the records ``ids`` hold, in matches or quarantine, that no other record holds."""
    rows = pd.concat([table(run / "matches"), table(run / "quarantine")], ignore_index=True).astype(str)
    mine = rows["record_id"].isin(ids)
    columns = [c for c in rows.columns if c not in ("record_id", "source_key", "match_id", "match_confidence_score", "source_system")]

    def values(frame: pd.DataFrame) -> set[str]:
        return {v for c in columns for v in frame[c] if len(v) >= 5 and v not in ("None", "nan", "NaT")}

    return values(rows[mine]) - values(rows[~mine])


def graph_text(endpoint_config) -> tuple[str, dict, dict]:
    vertices, edges = snapshot(traversal().with_remote(connect(endpoint_config.graph)))
    return json.dumps([vertices, edges], default=str), vertices, edges


def test_forget_erases_a_person_from_the_run_folder_and_the_graph(cli, demo_run_folder, gremlin_server, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run_folder.root, run)
    config_path = demo_config_with_graph(tmp_path, gremlin_server.endpoint)
    config = load_config(config_path)
    clear_graph(gremlin_server.endpoint)
    assert cli("load-graph", "--config", config_path, "--output", run).code == 0

    matches, quarantine = table(run / "matches"), table(run / "quarantine")
    sizes = matches.groupby("match_id")["record_id"].agg(list)
    person = sorted(next(ids for ids in sizes if len(ids) == 3 and len({i.split(":")[0] for i in ids}) == 3))
    quarantined = sorted(quarantine["record_id"].dropna())[0]
    erased = {*person, quarantined}
    values = distinctive_values(run, erased)
    assert len(values) >= 5
    before, _, _ = graph_text(config)
    written = everything_written(run)
    assert {v for v in values if v in written} == values  # the check below can fail
    assert any(v in before for v in values)

    result = cli("--log-level", "INFO", "forget", "--config", config_path, "--run", run,
                 "--key", ",".join(person[:2]), "--key", person[2], "--key", quarantined)
    assert result.code == 0, result.err
    assert "erased: 3 record(s) from matches and pairs, 1 from the quarantine" in result.out
    assert not {v for v in values if v in result.out + result.err}

    # gone from every output and from the graph, with nothing else lost
    after = table(run / "matches")
    assert len(after) == len(matches) - 3 and not after["record_id"].isin(erased).any()
    assert len(table(run / "quarantine")) == len(quarantine) - 1
    pairs = table(run / "pairs")
    assert not (pairs["record_id_l"].isin(erased) | pairs["record_id_r"].isin(erased)).any()
    assert set(table(run / "customers")["match_id"]) == set(after["match_id"])
    assert not (run / "metrics.json").exists() and not (run / "report.html").exists()
    assert not {v for v in values if v in everything_written(run)}
    text, vertices, edges = graph_text(config)
    assert not {v for v in values if v in text}
    labels = pd.Series([v["label"] for v in vertices.values()]).value_counts()
    assert labels["SourceRecord"] == len(after) and labels["Customer"] == after["match_id"].nunique()

    # the erasure record: ids and counts, no values; the summary says what went
    record = json.loads((run / "erasures.jsonl").read_text(encoding="utf-8"))
    assert sorted(record["records"]) == sorted(erased) and record["matched_records"] == 3
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["erasure"] == {"records": 3, "quarantined_records": 1, "labeled_rows": 0}
    assert summary["rows_out"] == len(after)

    # the graph equals a fresh load of the erased run
    clear_graph(gremlin_server.endpoint)
    assert cli("load-graph", "--config", config_path, "--output", run).code == 0
    _, fresh_vertices, fresh_edges = graph_text(config)
    assert set(fresh_vertices) == set(vertices) and set(fresh_edges) == set(edges)

    # asked again: reported as erased before; an unknown key changes nothing
    again = cli("forget", "--config", config_path, "--run", run, "--key", person[0], "--no-graph")
    assert again.code == 0 and f"erased before (erasures.jsonl): {person[0]}" in again.out
    unknown = cli("forget", "--config", config_path, "--run", run, "--key", "crm:NOPE", "--key", person[0])
    assert_one_line_error(unknown, "1 key(s) are not records of this run: crm:NOPE")
    assert (run / "summary.json").exists() and len(table(run / "matches")) == len(after)
    bad = cli("forget", "--config", config_path, "--run", run, "--key", "C10003")
    assert_one_line_error(bad, "'C10003': a config with sources takes SOURCE:PK")


def label_file(path: Path, matches: pd.DataFrame, ids: list) -> Path:
    """Two labeling sets over ``ids`` (the first three in one set, labeled alike, the rest in another)."""
    rows = matches.set_index("unique_id").loc[ids].reset_index()
    rows = rows[["unique_id", "first_name", "surname", "dob", "city", "email", "cluster"]].astype(str)
    rows.insert(0, "label", ["A", "A", "A"] + ["B"] * (len(ids) - 3))
    rows.insert(0, "labeling_set_id", ["s1"] * 3 + ["s2"] * (len(ids) - 3))
    rows.to_csv(path, index=False)
    return path


def test_a_forget_stopped_during_its_swap_is_finished_by_the_next_and_labels_are_erased(
    spark, cli, fake_1000_run, tmp_path, monkeypatch,
):
    config = load_config(REPO / "configs" / "fake_1000.yaml")
    runs = [tmp_path / "stopped", tmp_path / "straight"]
    matches = table(fake_1000_run.root / "matches")
    ids = [int(i) for i in matches.sort_values("unique_id")["unique_id"][:5]]
    for run in runs:
        shutil.copytree(fake_1000_run.root, run)
        labels = label_file(tmp_path / "labels.csv", matches, ids)
        assert cli("import-labels", "--config", REPO / "configs" / "fake_1000.yaml", "--output", run, "--labels", labels).code == 0

    real_replace, calls = forget.os.replace, []

    def stopping_replace(source, target):  # the process "dies" after the first entry of the swap
        if Path(target).parent == runs[0]:
            calls.append(target)  # the first: the complete erased run renamed to RUN/.forget
            if len(calls) == 3:
                raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(forget.os, "replace", stopping_replace)
    with pytest.raises(KeyboardInterrupt):
        forget_task(config, RunFolder(runs[0]), [str(ids[0])], spark, graph=False)
    monkeypatch.undo()
    assert not (runs[0] / "summary.json").exists() and (runs[0] / forget.STAGING).is_dir()

    resumed = cli("forget", "--config", REPO / "configs" / "fake_1000.yaml", "--run", runs[0], "--key", str(ids[0]))
    assert resumed.code == 0 and f"erased before (erasures.jsonl): {ids[0]}" in resumed.out
    straight = cli("forget", "--config", REPO / "configs" / "fake_1000.yaml", "--run", runs[1], "--key", str(ids[0]))
    assert straight.code == 0 and "erased: 1 record(s) from matches and pairs, 0 from the quarantine, 1 labeled row(s)" in straight.out
    for run in runs:
        assert not (run / forget.STAGING).exists() and (run / "summary.json").exists()
        assert len(table(run / "matches")) == len(matches) - 1
        stored = pd.read_parquet(run / "labels" / "labels.parquet")
        assert sorted(stored["unique_id"].astype(int)) == ids[1:]
        assert json.loads((run / "labels" / "labels.json").read_text())["erased_rows"] == 1
    key = ["unique_id"]
    pd.testing.assert_frame_equal(table(runs[0] / "matches").sort_values(key, ignore_index=True),
                                  table(runs[1] / "matches").sort_values(key, ignore_index=True))
    stale = runs[1] / forget.STAGING  # an erased run left behind, the run completed again since: dropped, not swapped in
    stale.mkdir()
    (stale / "summary.json").write_text("{}", encoding="utf-8")
    again = cli("forget", "--config", REPO / "configs" / "fake_1000.yaml", "--run", runs[1], "--key", str(ids[0]))
    assert again.code == 0 and not stale.exists() and json.loads((runs[1] / "summary.json").read_text())["erasure"]["records"] == 1
    # a run built on the erased one carries the erasures on: the key is still known as erased there
    delta = tmp_path / "delta.csv"
    pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv").iloc[20:25].assign(unique_id=lambda f: f["unique_id"] + 100_000).to_csv(delta, index=False)
    built = cli("match-incremental", "--config", REPO / "configs" / "fake_1000.yaml", "--existing", runs[1], "--new", delta,
                "--output", tmp_path / "next")
    assert built.code == 0, built.err
    assert (tmp_path / "next" / "erasures.jsonl").read_text() == (runs[1] / "erasures.jsonl").read_text()
    later = cli("forget", "--config", REPO / "configs" / "fake_1000.yaml", "--run", tmp_path / "next", "--key", str(ids[0]))
    assert later.code == 0 and f"erased before (erasures.jsonl): {ids[0]}" in later.out
    not_integer = cli("forget", "--config", REPO / "configs" / "fake_1000.yaml", "--run", runs[1], "--key", "abc")
    assert_one_line_error(not_integer, "1 key(s) are not records of this run: abc")
