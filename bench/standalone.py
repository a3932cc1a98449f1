"""``python -m bench standalone --rows N --out FILE.json``: the same run on a Spark standalone cluster and locally.

Generates ``N`` records (:func:`bench.generate.generate`, 4 sources), starts a local Spark
standalone cluster from pyspark's bundled launcher (one master, ``--workers`` workers of one
core and ``--worker-memory`` each, everything bound to 127.0.0.1), runs ``jobs/run.py`` (the
Glue / ``spark-submit`` entry point, ``--retrain true``) on it with ``spark-submit --master
spark://...``, stops the cluster (always: also on failure, Ctrl-C or SIGTERM, by process group), runs
the same job with ``--master local[CORES]`` and compares the two run folders: the match_id of
every record (``matches/``) and the m/u probabilities of ``model/splink_model.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyspark

from bench.datasets import ROOT
from bench.environment import load_average, machine, source_version

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("bench.standalone")

SPARK_HOME = Path(pyspark.__file__).parent
LOOPBACK = "127.0.0.1"
JOB = ROOT / "jobs" / "run.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def spark_env(scratch: Path) -> dict[str, str]:
    """Environment for every Spark process: JDK 17, loopback only, this Python and checkout."""
    env = dict(os.environ)
    env.setdefault("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
    env.update({
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_LOCAL_DIRS": str(scratch / "local"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        "MATCHER_PROGRESS": "off",
    })
    return env


def _spawn(args: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen:
    """Start ``args`` in its own process group (so stopping it stops its children), output to ``log_file``."""
    with open(log_file, "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL it if it outlives ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Cluster:
    """A running local standalone cluster: its master URL, web UI and processes."""

    port: int
    webui_port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def state(self) -> dict[str, Any]:
        """The master's JSON status (``/json/``)."""
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.webui_port}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            return 0

    def stop(self) -> None:
        """Stop the workers, then the master (each by process group)."""
        for proc in reversed(self.processes):
            stop_group(proc)


def _spark_class(main_class: str, *args: str) -> list[str]:
    return [str(SPARK_HOME / "bin" / "spark-class"), main_class, *args]


def _wait(condition, what: str, timeout: float, processes: Sequence[subprocess.Popen]) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` s or as soon as a process exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p.args[1] for p in processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"waiting for {what}: {', '.join(dead)} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {what}: not within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def standalone_cluster(scratch: Path, *, workers: int = 2, cores: int = 1, memory: str = "2g",
                       timeout: float = 180.0) -> Iterator[Cluster]:
    """A master and ``workers`` workers on 127.0.0.1, stopped when the block ends, however it ends."""
    env = spark_env(scratch)
    cluster = Cluster(port=free_port(), webui_port=free_port())
    try:
        cluster.processes.append(_spawn(_spark_class(
            "org.apache.spark.deploy.master.Master", "--host", LOOPBACK, "--port", str(cluster.port),
            "--webui-port", str(cluster.webui_port)), env, scratch / "master.log"))
        _wait(lambda: _answers(cluster), "the master's web UI", timeout, cluster.processes)
        for i in range(workers):
            work_dir = scratch / f"worker-{i}"
            work_dir.mkdir(parents=True, exist_ok=True)
            cluster.processes.append(_spawn(_spark_class(
                "org.apache.spark.deploy.worker.Worker", cluster.master, "--cores", str(cores), "--memory", memory,
                "--host", LOOPBACK, "--webui-port", str(free_port()), "--work-dir", str(work_dir)),
                env, scratch / f"worker-{i}.log"))
        _wait(lambda: cluster.alive_workers() >= workers, f"{workers} alive workers", timeout, cluster.processes)
        log.info("cluster %s up with %d workers", cluster.master, workers)
        yield cluster
    finally:
        cluster.stop()
        log.info("cluster %s stopped", cluster.master)


def _answers(cluster: Cluster) -> bool:
    try:
        cluster.state()
        return True
    except OSError:
        return False


def submit_args(master: str, config: Path, output: Path, *, executor_memory: str, partitions: int,
                cores: int) -> list[str]:
    """``spark-submit`` of ``jobs/run.py`` (retrain) on ``master``; the same settings for cluster and local."""
    from matcher.runtime.session import similarity_jar

    conf = {
        "spark.cores.max": str(cores),
        "spark.executor.cores": "1",
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.executor.memory": executor_memory,
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.pyspark.python": sys.executable,
        "spark.executorEnv.PYTHONPATH": str(ROOT),
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        "spark.ui.enabled": "false",
    }
    args = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master, "--driver-memory", "2g",
            "--jars", similarity_jar()]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args + [str(JOB), "--JOB_NAME", "run", "--config", str(config), "--output", str(output), "--retrain", "true"]


def timed_submit(args: list[str], env: dict[str, str], log_file: Path) -> float:
    """Run ``spark-submit`` to completion in its own process group; wall seconds. Killed on any interruption."""
    started = time.perf_counter()
    proc = _spawn(args, env, log_file)
    try:
        code = proc.wait()
    finally:
        stop_group(proc)
    if code != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"spark-submit exited with {code}; last lines of {log_file}:\n" + "\n".join(tail))
    return round(time.perf_counter() - started, 2)


def match_ids(run: Path) -> pd.Series:
    """``match_id`` by ``record_id`` from a run folder's ``matches/``."""
    import pandas as pd

    frame = pd.read_parquet(run / "matches", columns=["record_id", "match_id"])
    return frame.set_index("record_id")["match_id"].sort_index()


def compare_matches(a: Path, b: Path) -> dict[str, Any]:
    """Records whose match_id differs between run folders ``a`` and ``b`` (and records only one has)."""
    left, right = match_ids(a), match_ids(b)
    joined = left.to_frame("a").join(right.to_frame("b"), how="outer")
    differing = joined[joined["a"] != joined["b"]]
    return {
        "records": int(len(joined)),
        "clusters": [int(left.nunique()), int(right.nunique())],
        "differing_records": int(len(differing)),
        "same_match_ids": bool(len(differing) == 0),
        "differing_examples": differing.head(10).reset_index().astype(str).values.tolist(),
    }


def model_parameters(run: Path) -> dict[str, float]:
    """Every m/u probability of the trained model (and lambda), keyed by comparison, level and kind."""
    model = json.loads((run / "model" / "splink_model.json").read_text(encoding="utf-8"))
    params = {"lambda": model["probability_two_random_records_match"]}
    for comparison in model["comparisons"]:
        for i, level in enumerate(comparison["comparison_levels"]):
            for kind in ("m_probability", "u_probability"):
                if level.get(kind) is not None:
                    params[f"{comparison['output_column_name']}[{i}].{kind}"] = level[kind]
    return params


def compare_models(a: Path, b: Path) -> dict[str, Any]:
    """Largest absolute difference between the two models' parameters, and the parameter it is on."""
    pa, pb = model_parameters(a), model_parameters(b)
    if pa.keys() != pb.keys():
        return {"max_parameter_diff": None, "parameter_keys_differ": sorted(pa.keys() ^ pb.keys())}
    diffs = {k: abs(pa[k] - pb[k]) for k in pa}
    worst = max(diffs, key=diffs.get)
    return {"max_parameter_diff": diffs[worst], "max_parameter_diff_at": worst if diffs[worst] else None,
            "parameters_differing": sum(1 for d in diffs.values() if d > 0)}


def _run_pair(data: Path, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The cluster run, then the local run, of ``data/config.yaml``; their wall times and load averages."""
    env, config = spark_env(scratch), data / "config.yaml"
    sizes = {"executor_memory": args.worker_memory, "partitions": args.partitions, "cores": args.workers}
    runs: dict[str, Any] = {}
    with standalone_cluster(scratch, workers=args.workers, memory=args.worker_memory) as cluster:
        runs["cluster"] = {"master": cluster.master, "load_avg_before": load_average()}
        runs["cluster"]["wall_s"] = timed_submit(submit_args(cluster.master, config, scratch / "run_cluster", **sizes),
                                                 env, scratch / "submit_cluster.log")
        runs["cluster"]["load_avg_after"] = load_average()
    local_master = f"local[{args.workers}]"
    runs["local"] = {"master": local_master, "load_avg_before": load_average()}
    runs["local"]["wall_s"] = timed_submit(submit_args(local_master, config, scratch / "run_local", **sizes),
                                           env, scratch / "submit_local.log")
    runs["local"]["load_avg_after"] = load_average()
    return runs


def run_figures(run: Path) -> dict[str, Any]:
    """Pairs, clusters and stage timings the run wrote (``metrics.json``, ``model/metadata.json``)."""
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    training = json.loads((run / "model" / "metadata.json").read_text(encoding="utf-8"))
    return {"n_pairs": metrics.get("n_pairs"), "n_clusters": metrics.get("n_clusters"),
            "timings_s": metrics.get("timings_s"), "training_timings_s": training.get("timings_s")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench standalone", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="records to generate (default 2000)")
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="workers of one core each; local runs local[WORKERS]")
    parser.add_argument("--worker-memory", default="2g", help="each worker's memory and the executor memory (default 2g)")
    parser.add_argument("--partitions", type=int, default=4, help="spark.sql.shuffle.partitions for both runs (default 4)")
    parser.add_argument("--workdir", metavar="DIR", help="keep data, logs and run folders here (default: temporary, removed)")
    return parser


def standalone(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, run on the cluster and locally, compare; the report."""
    from bench.generate import generate

    scratch = Path(args.workdir or tempfile.mkdtemp(prefix="bench-standalone-")).resolve()
    (scratch / "local").mkdir(parents=True, exist_ok=True)
    try:
        generate(args.rows, sources=4, seed=args.seed, out=scratch / "data")
        runs = _run_pair(scratch / "data", scratch, args)
        for name, run in runs.items():
            run.update(run_figures(scratch / f"run_{name}"))
        return {
            "rows": args.rows, "workers": args.workers, "worker_cores": 1, "worker_memory": args.worker_memory,
            "shuffle_partitions": args.partitions, "machine": machine(java=str(Path(spark_env(scratch)["JAVA_HOME"]) / "bin" / "java")),
            "source": source_version(), "load_avg": load_average(),
            "wall_s": {name: run["wall_s"] for name, run in runs.items()}, "runs": runs,
            **compare_matches(scratch / "run_cluster", scratch / "run_local"),
            **compare_models(scratch / "run_cluster", scratch / "run_local"),
        }
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)


def _exit(signum: int, frame: object) -> None:
    """SIGTERM as ``SystemExit``, so the ``finally`` blocks stop the cluster and the job."""
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        report = standalone(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    keys = ("rows", "wall_s", "same_match_ids", "differing_records", "max_parameter_diff", "load_avg")
    print(json.dumps({k: report.get(k) for k in keys}, indent=2))
    return 0 if report["same_match_ids"] else 1


if __name__ == "__main__":
    sys.exit(main())
