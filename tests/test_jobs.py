"""The Glue-style job scripts run under spark-submit with Glue's argument style."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_find_matches_job_runs_under_spark_submit_with_glue_arguments(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYSPARK_PYTHON": sys.executable}
    out = tmp_path / "run"
    completed = subprocess.run(
        [str(bin_dir / "spark-submit"), "--driver-memory", "1g", str(REPO / "jobs" / "find_matches.py"),
         "--JOB_NAME", "test", "--config", str(REPO / "configs" / "fake_1000.yaml"), "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "find_matches: 1000 rows" in completed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows_in"] == metrics["rows_out"] == 1000
    assert metrics["clusters"]["f1"] > 0.8
