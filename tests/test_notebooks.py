"""The notebooks run top to bottom on the bundled data, and are committed without outputs."""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pytest
from conftest import REPO, free_port
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["explore_and_train.ipynb", "label_and_evaluate.ipynb", "query_identity_graph.ipynb"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        ids = [cell["id"] for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]  # as stored: nbformat renames repeats
        assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"


def test_notebooks_carry_no_stale_references():
    for path in NOTEBOOKS:
        text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        assert not re.search(r"\bissue \d|DESIGN §|arrives with|\bsoon\b", text), path.name


def execute(path, monkeypatch, **env: str) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel from the notebooks/ folder; raise on the first failing cell."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def text_of(notebook) -> str:
    chunks = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", ""))
            chunks.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(chunks)


@pytest.mark.slow
def test_explore_and_train_runs_top_to_bottom(monkeypatch):
    notebook = execute(REPO / "notebooks" / "explore_and_train.ipynb", monkeypatch)
    text = text_of(notebook)
    assert "1000 rows from 1 input(s)" in text
    assert "'clusters'" in text and "blocking_recall" in text


@pytest.mark.slow
def test_label_and_evaluate_runs_on_an_existing_run_folder(monkeypatch, fake_1000_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(fake_1000_run.root, folder)
    notebook = execute(REPO / "notebooks" / "label_and_evaluate.ipynb", monkeypatch, MATCHER_RUN=str(folder))
    text = text_of(notebook)
    assert "report.html" in text
    assert (folder / "report.html").stat().st_mtime > (fake_1000_run.report).stat().st_mtime
    assert "labeling file:" in text and "4 sets" in text and "after 1 import(s)" in text
    assert (folder / "labels" / "labels.json").exists()


def test_query_identity_graph_skips_its_queries_when_no_gremlin_server_answers(monkeypatch):
    url = f"ws://127.0.0.1:{free_port()}/gremlin"
    notebook = execute(REPO / "notebooks" / "query_identity_graph.ipynb", monkeypatch, GREMLIN_URL=url)
    assert f"Gremlin server at {url}: no answer; the queries below are skipped" in text_of(notebook)


@pytest.fixture
def own_gremlin_server(tmp_path_factory):
    """A local Gremlin Server on a free port with an empty graph, for one test (the shared fixture's port may be taken)."""
    from matcher.graph.server import LocalGremlinServer

    server = LocalGremlinServer(port=free_port(), state_dir=tmp_path_factory.mktemp("notebook-gremlin-server"))
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_query_identity_graph_answers_from_a_loaded_run(monkeypatch, spark, fake_1000_run, own_gremlin_server, tmp_path):
    from matcher import load_config, load_graph_task, run_folder
    from matcher.graph import GraphSpec

    endpoint = own_gremlin_server.endpoint
    shutil.copytree(fake_1000_run.root, tmp_path / "run")
    config = load_config(REPO / "configs" / "fake_1000.yaml")
    config = config.model_copy(update={"graph": GraphSpec(endpoint=endpoint, writers=1)})
    load_graph_task(config, run_folder(config, tmp_path / "run"), spark)

    text = text_of(execute(REPO / "notebooks" / "query_identity_graph.ipynb", monkeypatch, GREMLIN_URL=endpoint))
    assert f"Gremlin server at {endpoint}: answers" in text
    assert "'SourceRecord': 1000" in text
    assert "identifiers shared by two or more customers" in text
