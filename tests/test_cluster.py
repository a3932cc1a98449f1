"""A real multi-process Spark cluster: standalone master + two workers on 127.0.0.1, executors in
their own JVMs. The full pipeline submitted to it must give the same match_ids as a local run:
proof that nothing depends on driver-local state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pyspark
import pytest
from chispa import assert_df_equality
from conftest import REPO, free_port

from matcher.runtime.session import similarity_jar

SPARK_HOME = Path(pyspark.__file__).parent


def cluster_environment() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def start(stack: ExitStack, log: Path, *command: str) -> subprocess.Popen:
    """Start a Spark daemon in the foreground; it is stopped by its pid when ``stack`` closes."""
    stream = stack.enter_context(log.open("w"))
    process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *command], env=cluster_environment(),
                               stdout=stream, stderr=subprocess.STDOUT)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    stack.callback(stop)
    return process


def master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


def wait_for_workers(ui_port: int, count: int, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p.args for p in processes if p.poll() is not None]
        assert not dead, f"Spark daemon exited early: {dead}"
        try:
            if master_state(ui_port)["aliveworkers"] >= count:
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{count} workers did not register with the master within {timeout} s")


@pytest.mark.slow
def test_full_run_on_a_standalone_cluster_gives_the_local_run_s_match_ids(spark, fake_1000_run, tmp_path):
    port, ui_port = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    with ExitStack() as stack:
        master = start(stack, tmp_path / "master.log", "org.apache.spark.deploy.master.Master",
                       "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port))
        workers = [
            start(stack, tmp_path / f"worker{i}.log", "org.apache.spark.deploy.worker.Worker", master_url,
                  "--host", "127.0.0.1", "--port", str(free_port()), "--webui-port", str(free_port()),
                  "--cores", "1", "--memory", "1g", "--work-dir", str(tmp_path / f"worker{i}"))
            for i in (1, 2)
        ]
        wait_for_workers(ui_port, 2, [master, *workers])

        out = tmp_path / "cluster-run"
        completed = subprocess.run(
            [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url, "--jars", similarity_jar(),
             "--driver-memory", "1g", "--executor-memory", "768m", "--total-executor-cores", "2",
             "--conf", f"spark.executorEnv.PYTHONPATH={REPO}", "--conf", f"spark.pyspark.python={sys.executable}",
             str(REPO / "jobs" / "run.py"), "--JOB_NAME", "cluster",
             "--config", str(REPO / "configs" / "fake_1000.yaml"), "--output", str(out)],
            env=cluster_environment(), capture_output=True, text=True, timeout=900, cwd=tmp_path,
        )
        assert completed.returncode == 0, completed.stderr[-4000:]
        apps = master_state(ui_port)["completedapps"] + master_state(ui_port)["activeapps"]

    assert [app["name"] for app in apps] == ["run.py"]  # spark-submit names the app after the script
    for i in (1, 2):  # each worker launched an executor JVM for the application
        executor_logs = list((tmp_path / f"worker{i}").glob("app-*/*/stderr"))
        assert executor_logs, f"worker {i} ran no executor"
    assert all(p.poll() is not None for p in [master, *workers])

    def match_ids(folder: Path):
        return spark.read.parquet(str(folder / "matches")).select("unique_id", "match_id").orderBy("unique_id")

    cluster_metrics = json.loads((out / "metrics.json").read_text())
    assert cluster_metrics["rows_out"] == 1000
    assert_df_equality(match_ids(out), match_ids(fake_1000_run.root))
