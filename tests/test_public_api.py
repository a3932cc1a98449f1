"""The public API: what ``matcher`` and ``matcher.graph`` export, and that notebooks and jobs use only that."""

from __future__ import annotations

import ast
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

import matcher
import matcher.graph

PUBLIC = {"matcher": set(matcher.__all__), "matcher.graph": set(matcher.graph.__all__)}


def private_imports(source: str) -> list[str]:
    """The imports of ``matcher`` in ``source`` that are not ``from matcher[.graph] import <public name>``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("matcher.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "matcher":
            public = PUBLIC.get(node.module, set())
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name not in public]
    return found


def code_of_notebook(path) -> str:
    cells = nbformat.read(path, as_version=4).cells
    return "\n".join(cell.source for cell in cells if cell.cell_type == "code")


@pytest.mark.parametrize("module", [matcher, matcher.graph], ids=lambda m: m.__name__)
def test_every_public_name_resolves_and_has_its_own_docstring(module):
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    undocumented = [name for name in module.__all__ if not (getattr(module, name).__doc__ or "").strip()]
    assert undocumented == []
    assert set(module.__all__) <= set(dir(module))


def test_the_stage_function_harmonize_is_public_under_a_name_its_subpackage_cannot_shadow():
    import matcher.harmonize.harmonization  # binds matcher.harmonize to the subpackage

    assert callable(matcher.harmonize_sources) and matcher.harmonize_sources.__name__ == "harmonize"
    assert "harmonize" not in matcher.__all__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        matcher.trian  # noqa: B018


def test_import_matcher_loads_neither_spark_nor_splink():
    code = "import sys, matcher; print(sorted(m for m in ('pyspark', 'splink', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_the_scan_tells_public_from_private_imports():
    source = "import os\nimport matcher\nfrom matcher import train, run_job\nfrom matcher.graph import connect\n"
    assert private_imports(source) == []
    source = ("import matcher.pipeline\nfrom matcher.pipeline import run_task\nfrom matcher import make_session\n"
              "from matcher.graph.queries import snapshot\n")
    assert private_imports(source) == [
        "matcher.pipeline", "matcher.pipeline.run_task", "matcher.make_session", "matcher.graph.queries.snapshot",
    ]


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_import_only_public_names(path):
    source = code_of_notebook(path)
    assert "from matcher" in source
    assert private_imports(source) == []


@pytest.mark.parametrize("path", sorted((REPO / "jobs").glob("*.py")), ids=lambda p: p.name)
def test_job_scripts_import_only_public_names(path):
    source = path.read_text(encoding="utf-8")
    assert "from matcher import run_job" in source
    assert private_imports(source) == []
