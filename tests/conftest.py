"""One local SparkSession for the whole test run, and small helpers to write test inputs and run the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from matcher.cli import main
from matcher.session import get_session

REPO = Path(__file__).resolve().parent.parent


def minimal_config(**overrides) -> dict:
    """The smallest valid configuration mapping, with top-level keys replaced by ``overrides``."""
    data = {
        "name": "t",
        "inputs": [{"name": "people", "path": "people.csv", "format": "csv"}],
        "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "exact"}],
        "blocking_rules": [["city"]],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    session = get_session(checkpoint_dir=tmp_path_factory.mktemp("checkpoints"), cores=2, memory="2g")
    yield session
    session.stop()


@pytest.fixture
def write_config(tmp_path):
    """Write a config mapping as YAML under tmp_path and return its path."""

    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def cli(spark, capsys):
    """Run ``matcher`` in this process (reusing the shared Spark session); return code, stdout, stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        code = main(["--log-level", "ERROR", *map(str, args)])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def cluster_sets(result: pd.DataFrame) -> list[set]:
    """The clusters of ``result`` (``record_id``, ``match_id``) as sets of ids, in order of their
    match_id; checks that each match_id is its cluster's smallest member."""
    out = []
    for match_id, group in result.groupby("match_id"):
        assert match_id == group["record_id"].min()
        out.append(set(group["record_id"]))
    return out


def assert_one_line_error(result: CliResult, *fragments: str) -> str:
    """The run failed with exactly one ``matcher: error:`` line on stderr containing every fragment."""
    assert result.code != 0, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("matcher: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


COMPLETE_MARKERS = ("summary.json", "metrics.json", "matches", "pairs")


def assert_nothing_looks_complete(folder: Path) -> None:
    """A failed run leaves no summary, metrics or outputs behind (a partial model is not one either)."""
    if not folder.exists():
        return
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith((".", "_")))
    assert [p for p in present if p in (*COMPLETE_MARKERS, "model")] == [], present


@pytest.fixture(scope="session")
def gremlin_server(tmp_path_factory):
    """A local Gremlin Server for the graph tests on port 8183 with its own saved graph (jars from
    .graph-server/lib, fetched on first use); started through matcher.graph.server, stopped at the end."""
    from matcher.graph.server import LocalGremlinServer

    server = LocalGremlinServer(port=8183, state_dir=tmp_path_factory.mktemp("gremlin-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_1000_run(spark, tmp_path_factory):
    """One completed ``matcher run`` of configs/fake_1000.yaml (model, matches, pairs, metrics, report),
    shared by the tests that only read a run folder. Do not modify it; copy it first."""
    from matcher.config import load_config
    from matcher.pipeline import run_folder, run_task

    config = load_config(REPO / "configs" / "fake_1000.yaml")
    folder = run_folder(config, tmp_path_factory.mktemp("fake_1000_run"))
    run_task(config, folder, spark)
    return folder
