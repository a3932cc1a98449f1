"""Faults while the identity graph loads: the loader killed half-way, the Gremlin Server killed
half-way. Either way a re-run gives exactly the graph a clean load gives: nothing missing, nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gremlin_python.driver.client import Client

from matcher.graph.server import LocalGremlinServer, clear_graph
from tests.conftest import REPO, free_port

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def count(endpoint: str, what: str) -> int:
    client = Client(endpoint, "g")
    try:
        return client.submit(f"g.{what}().count()").all().result()[0]
    finally:
        client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Gremlin Server of this module's own (the test kills it)."""
    local = LocalGremlinServer(port=free_port(), state_dir=tmp_path_factory.mktemp("gremlin-faults"))
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def loading(fake_1000_run, server, tmp_path_factory, spark):
    """A copy of the fake_1000 run, a config writing it to ``server`` in small batches (a load of
    a few seconds, so it can be stopped half-way), and the graph's totals after a clean load."""
    from matcher.cli import main

    run = tmp_path_factory.mktemp("graph-faults") / "run"
    shutil.copytree(fake_1000_run.root, run)
    config = yaml.safe_load((REPO / "configs" / "fake_1000.yaml").read_text(encoding="utf-8"))
    config["graph"] = {"endpoint": server.endpoint, "batch_size": 10, "writers": 1, "max_retries": 2}
    path = run.parent / "graph.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    clear_graph(server.endpoint)
    assert main(["--log-level", "ERROR", "load-graph", "--config", str(path), "--output", str(run)]) == 0
    return run, path, graph_totals(run)


def load_into_an_empty_graph(endpoint: str, config: Path, run: Path) -> subprocess.Popen:
    """``matcher load-graph`` in a process, returned once it has written some vertices."""
    clear_graph(endpoint)
    loader = subprocess.Popen([sys.executable, "-m", "matcher", "load-graph", "--config", str(config), "--output", str(run)],
                              env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while count(endpoint, "V") == 0:
        assert loader.poll() is None, loader.stderr.read()
        assert time.monotonic() < deadline, "no vertex written in time"
        time.sleep(0.05)
    return loader


def graph_totals(run: Path) -> dict:
    return json.loads((run / "graph.json").read_text(encoding="utf-8"))["graph"]


def assert_reload_gives(cli, config: Path, run: Path, clean: dict, endpoint: str) -> None:
    """``load-graph`` again: the graph a clean load gives, nothing missing, nothing twice."""
    result = cli("load-graph", "--config", config, "--output", run)
    assert result.code == 0, result.err
    assert graph_totals(run) == clean
    assert count(endpoint, "V") == sum(clean["vertices"].values())
    assert count(endpoint, "E") == sum(clean["edges"].values())


@pytest.mark.slow
def test_a_load_killed_half_way_then_re_run_gives_the_clean_graph(cli, server, loading):
    run, config, clean = loading
    loader = load_into_an_empty_graph(server.endpoint, config, run)
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    partial = count(server.endpoint, "V")
    assert 0 < partial < sum(clean["vertices"].values()), "killed half-way"

    assert_reload_gives(cli, config, run, clean, server.endpoint)


@pytest.mark.slow
def test_the_gremlin_server_killed_mid_load_is_one_line_and_a_re_run_after_restart_gives_the_clean_graph(cli, server, loading):
    run, config, clean = loading
    loader = load_into_an_empty_graph(server.endpoint, config, run)
    os.kill(server.pid(), signal.SIGKILL)
    out, err = loader.communicate(timeout=300)
    assert loader.returncode != 0
    lines = err.strip().splitlines()
    assert lines[-1].startswith("matcher: error: ") and server.endpoint.split("/")[2] in lines[-1], err
    assert "Traceback" not in err

    server.start()
    assert_reload_gives(cli, config, run, clean, server.endpoint)
