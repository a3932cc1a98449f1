"""``python -m bench serve --out FILE.json``: ``matcher serve`` against a large run, driven by concurrent clients.

1. (untimed, kept in ``--workdir``) the reference run: historical_50k grown to ``--rows``
   records (default 1,000,000) by copies. Copy *k* of the 50,578 records shifts every letter
   of the names, birth place, occupation and postcode *k* places along the alphabet and
   moves every date of birth 400·*k* years on (the Gregorian calendar repeats every 400
   years): new people whose name frequencies, typos and block sizes have the original's
   shape. Blocks therefore stay the original's size while the records grow (what a larger
   population of distinct people gives); no block grows quadratically. ``matcher run`` with
   ``configs/historical_50k.yaml`` (input and output replaced) trains and matches it. A run
   folder already in ``--workdir`` is reused.
2. ``matcher serve`` starts as a subprocess on a copy of that run: ``startup_s`` is from
   launch to the first answer of ``/health``; ``rss_gb`` is the process's peak resident
   memory (``VmHWM``) at the end.
3. ``match``: ``--clients`` concurrent clients (processes with keep-alive connections) send
   ``POST /match`` for ``--seconds``, each record a reference record with one letter of its
   surname changed and a new id; ``records``: the same through ``POST /records`` (each
   record is kept, appended to the run folder). The clients measure each request's latency;
   ``rps`` is completed requests per second of wall clock; ``errors`` counts non-200 answers.

The clients share the machine with the server (2 cores here): the figures include that load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml

from bench.datasets import ROOT, paths, prepare
from bench.environment import load_average, source_version

log = logging.getLogger("bench.serve")

DATASET = "historical_50k"
SHIFTED = ("first_name", "surname", "full_name", "first_and_surname", "birth_place", "occupation", "postcode_fake")
YEARS_PER_COPY = 400


def _shift(values: pa.ChunkedArray, k: int) -> pa.Array:
    """Every letter moved ``k`` places along the alphabet (``k = 0``: unchanged)."""
    lower, upper = string.ascii_lowercase, string.ascii_uppercase
    table = str.maketrans(lower + upper, lower[k:] + lower[:k] + upper[k:] + upper[:k])
    return pa.array([None if v is None else v.translate(table) for v in values.to_pylist()], type=pa.string())


def _later(dates: pa.ChunkedArray, years: int) -> pa.Array:
    """``yyyy-MM-dd`` texts ``years`` later (other texts unchanged)."""

    def one(value: str | None) -> str | None:
        if value is None or len(value) < 5 or not value[:4].isdigit() or value[4] != "-":
            return value
        return f"{int(value[:4]) + years:04d}{value[4:]}"

    return pa.array([one(v) for v in dates.to_pylist()], type=pa.string())


def grow(source: Path, rows: int, target: Path) -> dict[str, int]:
    """Write ``rows`` records: the source's, then letter-shifted copies (new ids and entities), cut at ``rows``."""
    base = pq.read_table(source)
    copies = []
    for k in range(-(-rows // base.num_rows)):
        copy = base
        if k:
            for column in SHIFTED:
                copy = copy.set_column(copy.schema.get_field_index(column), column, _shift(copy[column], k % 26))
            copy = copy.set_column(copy.schema.get_field_index("dob"), "dob", _later(copy["dob"], YEARS_PER_COPY * k))
            for column in ("unique_id", "cluster"):
                suffixed = pc.binary_join_element_wise(pc.cast(copy[column], pa.string()), pa.scalar(f"~{k}"), "")
                copy = copy.set_column(copy.schema.get_field_index(column), column, suffixed)
        copies.append(copy)
    grown = pa.concat_tables(copies).slice(0, rows)
    pq.write_table(grown, target)
    return {"rows": grown.num_rows, "copies": len(copies)}


def reference_run(rows: int, workdir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The config and run folder of the grown data set, made with ``matcher run`` unless already there."""
    workdir = workdir.resolve()  # the config's paths are read relative to the config's folder
    data, config_path, folder = workdir / f"records_{rows}.parquet", workdir / f"serve_{rows}.yaml", workdir / f"run_{rows}"
    about: dict[str, Any] = {"rows": rows, "reused": (folder / "summary.json").exists()}
    if not about["reused"]:
        prepare(DATASET)
        about.update(grow(paths(DATASET)[0], rows, data))
        config = yaml.safe_load((ROOT / "configs" / f"{DATASET}.yaml").read_text(encoding="utf-8"))
        config["inputs"][0]["path"] = str(data)
        config.update(name=f"serve_{rows}", output=str(folder))
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "matcher", "--log-level", "WARNING", "run", "--config", str(config_path)],
                       cwd=ROOT, check=True)
        about["matcher_run_s"] = round(time.perf_counter() - started, 1)
    return config_path, folder, about


def _peak_rss_gb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024**2, 3)
    except OSError:
        pass
    return None


def _records(data: Path, columns: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` reference records (their ``columns``) with one surname letter changed and a new id each."""
    table = pq.read_table(data, columns=columns)
    rng = random.Random(seed)
    picked = table.take(pa.array(sorted(rng.sample(range(table.num_rows), count)))).to_pylist()
    for i, record in enumerate(picked):
        surname = record.get("surname") or "x"
        at = rng.randrange(len(surname))
        record["surname"] = surname[:at] + rng.choice(string.ascii_lowercase) + surname[at + 1:]
        record["unique_id"] = f"bench-{seed}-{i}"
        record["dob"] = None if record.get("dob") is None else str(record["dob"])
    return picked


def _client(base_url: str, path: str, bodies: list[dict], start: float, deadline: float) -> tuple[list[float], int, float]:
    """One client on one keep-alive connection (the standard library's, the lightest on CPU: the
    clients share the machine with the server): from ``start`` to ``deadline`` (``time.time()``),
    POST ``bodies`` one after the other; returns the latencies, the number of non-200 answers and
    when the last answer came."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    latencies, errors = [], 0
    payloads = [json.dumps(body).encode() for body in bodies]
    time.sleep(max(0.0, start - time.time()))
    for payload in payloads:
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        connection.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 200
    connection.close()
    return latencies, errors, time.time()


def drive(base_url: str, path: str, bodies: list[dict], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` processes (not threads: clients must not wait for each other's interpreter lock)
    POST their share of ``bodies`` to ``path`` for ``seconds``, all starting together once spawned."""
    start = time.time() + 5  # time for the processes to start
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        shares = [(base_url, path, bodies[i::clients], start, start + seconds) for i in range(clients)]
        results = pool.starmap(_client, shares)
    wall = max(end for _, _, end in results) - start
    ms = np.array([x for latencies, _, _ in results for x in latencies]) * 1000
    return {
        "requests": len(ms), "errors": sum(e for _, e, _ in results), "clients": clients, "wall_s": round(wall, 2),
        "rps": round(len(ms) / wall, 1),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) if len(ms) else None for q in (50, 95, 99)},
    }


def serve_and_drive(config: Path, folder: Path, data: Path, clients: int, seconds: float, port: int) -> dict[str, Any]:
    """Start ``matcher serve`` on a copy of ``folder``, drive /match then /records, stop it."""
    served = folder.with_name(folder.name + "_served")
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(folder, served)
    command = [sys.executable, "-m", "matcher", "--log-level", "WARNING", "serve", "--config", str(config),
               "--run", str(served), "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        while True:
            if process.poll() is not None:
                raise RuntimeError(f"matcher serve exited with {process.returncode}")
            try:
                health = httpx.get(f"{base_url}/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        startup = time.perf_counter() - started
        budget = int(seconds * 400) + 100  # more records than the clients can send in the time
        columns = [c for c in ds.dataset(str(folder / "matches"), format="parquet").schema.names
                   if c not in ("match_id", "match_confidence_score")]  # what the run keeps of an input record
        match = drive(base_url, "/match", [{"record": r} for r in _records(data, columns, budget, seed=1)], clients, seconds)
        records = drive(base_url, "/records", [{"records": [r]} for r in _records(data, columns, budget, seed=2)],
                        clients, seconds)
        return {"reference_records": health.json()["records"], "startup_s": round(startup, 2),
                "rss_gb": _peak_rss_gb(process.pid), "match": match, "records": records}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(served, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--rows", type=int, default=1_000_000, help="reference records (default 1,000,000)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent client processes (default 2: on a 2-core machine more clients take the cores the server needs)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each endpoint is driven (default 30)")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "results" / "serve"),
                        help="where the reference run is made and kept (default bench/results/serve)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config, folder, about = reference_run(args.rows, workdir)
    log.info("reference run ready: %s", folder)
    result = serve_and_drive(config, folder, workdir / f"records_{args.rows}.parquet", args.clients, args.seconds, args.port)
    report = {"command": "serve", "cores": os.cpu_count(), "source": source_version(), "load_average": load_average(),
              "reference": about, **result}
    Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("match p95 %s ms at %s req/s; records p95 %s ms at %s req/s; start-up %s s; peak RSS %s GB",
             result["match"]["p95_ms"], result["match"]["rps"], result["records"]["p95_ms"], result["records"]["rps"],
             result["startup_s"], result["rss_gb"])
    return 0

