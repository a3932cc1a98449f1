"""``python -m bench.graph --out FILE.json``: elements per second into the local Gremlin Server.

For each dataset (``fake_1000``: the demo's 1,000 records; ``historical_50k``: 50,578
records) it makes a ``matcher run`` into ``--runs DIR/<dataset>`` (reused when that folder
already holds a finished run), starts a local Gremlin Server (port 8184, its own folder,
empty graph), and times :func:`matcher.graph.writer.load_graph` twice: the first load into
the empty graph, then the rerun (every element matched, nothing added). Elements are the
vertex and edge upserts sent (an identifier shared by several clusters counts once per
cluster). ``elements_per_s`` is end to end (Spark grouping the matches by cluster, joining
the pairs, starting Python workers, writing); ``write_elements_per_s`` counts only the
writing (the slowest partition's time from its first row to its last reply). The JSON holds the machine, its load average, every timing and the graph's
totals. Target: 5,000 elements/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from bench.datasets import ROOT, prepare
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench.graph")

CONFIGS = {"fake_1000": ROOT / "configs" / "fake_1000.yaml", "historical_50k": ROOT / "configs" / "historical_50k.yaml"}
PORT = 8184
TARGET_ELEMENTS_PER_S = 5000


def _run_folder(name: str, runs: Path, spark) -> Path:
    from matcher.config.transform import load_config
    from matcher.pipeline import run_task
    from matcher.runtime.run_folder import run_folder

    folder = runs / name
    if not (folder / "summary.json").exists():
        if name != "fake_1000":
            prepare(name)
        started = time.perf_counter()
        run_task(load_config(CONFIGS[name]), run_folder(load_config(CONFIGS[name]), folder), spark)
        log.info("%s: matcher run in %.1f s", name, time.perf_counter() - started)
    return folder


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_cost(clusters, server, spec) -> dict[str, Any]:
    """One writer in this process over collected clusters, into an empty graph: CPU seconds of
    the client and of the server per element. The machine is shared, so wall time says little;
    CPU time does not depend on the other load (much), and ``2 / cpu_s_per_element`` projects
    the elements/s of two writers on an idle 2-core machine."""
    from matcher.graph.gremlin import GremlinGraphWriter
    from matcher.graph.server import clear_graph

    clear_graph(server.endpoint)
    client0, server0, wall0 = time.process_time(), _cpu_seconds(server.pid()), time.perf_counter()
    with GremlinGraphWriter(spec) as writer:
        counts = writer.write_clusters(clusters)
    client_s, server_s = time.process_time() - client0, _cpu_seconds(server.pid()) - server0
    wall = time.perf_counter() - wall0
    per_element = (client_s + server_s) / counts.elements
    return {"elements": counts.elements, "wall_s": round(wall, 3), "elements_per_s_wall": round(counts.elements / wall, 1),
            "client_cpu_s": round(client_s, 3), "server_cpu_s": round(server_s, 3),
            "cpu_ms_per_element": round(1000 * per_element, 4),
            "projected_elements_per_s_2_idle_cores": round(2 / per_element, 1)}


def bench_dataset(name: str, runs: Path, spark, server, *, writers: int | None, batch_size: int) -> dict[str, Any]:
    from matcher.config.transform import GraphSpec, load_config
    from matcher.graph.gremlin import graph_totals
    from matcher.graph.server import clear_graph
    from matcher.graph.writer import load_graph

    folder = _run_folder(name, runs, spark)
    spec = GraphSpec(endpoint=server.endpoint, batch_size=batch_size, writers=writers)
    config = load_config(CONFIGS[name]).model_copy(update={"graph": spec})
    threshold = json.loads((folder / "summary.json").read_text())["threshold_match_probability"]
    matches = spark.read.parquet(str(folder / "matches"))
    pairs = spark.read.parquet(str(folder / "pairs"))
    clear_graph(server.endpoint)
    result: dict[str, Any] = {"records": matches.count(), "writers": writers or spark.sparkContext.defaultParallelism,
                              "batch_size": batch_size}
    for phase in ("first_load", "rerun"):
        load = os.getloadavg()[0]
        summary = load_graph(matches, config, pairs=pairs, threshold=threshold)
        result[phase] = {k: summary[k] for k in ("elements", "seconds", "elements_per_s", "write_seconds",
                                                 "write_elements_per_s", "requests", "retries")}
        result[phase]["load_average_1m_before"] = round(load, 2)
    result["graph"] = graph_totals(spec)
    from matcher.graph.writer import cluster_from_row, cluster_table

    clusters = [cluster_from_row(r) for r in cluster_table(matches, config, pairs=pairs, threshold=threshold).toLocalIterator()]
    result["single_writer_cpu"] = cpu_cost(clusters, server, spec)
    result["graph_elements"] = sum(result["graph"]["vertices"].values()) + sum(result["graph"]["edges"].values())
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.graph", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--datasets", default="fake_1000,historical_50k", help="comma-separated (default: both)")
    parser.add_argument("--runs", help="folder for the matcher runs (default: a temporary folder)")
    parser.add_argument("--writers", type=int, help="parallel writers (default: Spark's default parallelism)")
    parser.add_argument("--batch-size", type=int, default=200, help="Neptune records per request (default 200)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("INFO")
    logging.getLogger("gremlinpython").setLevel(logging.WARNING)
    from bench.environment import machine
    from matcher.graph.server import LocalGremlinServer
    from matcher.runtime.session import get_session

    spark = get_session(memory="2g")
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        runs = Path(args.runs) if args.runs else Path(tmp) / "runs"
        server = LocalGremlinServer(port=PORT, state_dir=Path(tmp) / "server")
        server.start()
        try:
            results = {name: bench_dataset(name, runs, spark, server, writers=args.writers, batch_size=args.batch_size)
                       for name in args.datasets.split(",")}
        finally:
            server.stop()
    report = {"machine": machine(spark), "target_elements_per_s": TARGET_ELEMENTS_PER_S, "datasets": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    for name, r in results.items():
        first, rerun = r["first_load"], r["rerun"]
        print(f"{name}: {r['records']} records -> {r['graph_elements']} graph elements, {first['elements']} upserts; "
              f"first load {first['elements_per_s']} elements/s end to end ({first['write_elements_per_s']} writing), "
              f"rerun {rerun['elements_per_s']} ({rerun['write_elements_per_s']}); "
              f"load average {first['load_average_1m_before']}; one writer: {r['single_writer_cpu']['cpu_ms_per_element']} "
              f"CPU ms/element -> {r['single_writer_cpu']['projected_elements_per_s_2_idle_cores']} elements/s projected "
              f"on 2 idle cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
