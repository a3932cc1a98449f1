"""One local SparkSession for the whole test run, and small helpers to write test inputs and run the CLI."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from matcher.cli import main
from matcher.runtime.s3 import fetch_connector
from matcher.runtime.session import get_session

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


# every comparison kind, with values where the engines' functions could disagree:
# Jaro-Winkler transpositions, accents, characters outside the BMP, dates before 1582,
# impossible dates, nulls, usernames of emails, postcode prefixes, numbers, names swapped (7 and 11)
HARD_ROWS = [
    ("1", "riothamus", "ap gwent", "1439-01-01", "ann.lee@x.com", "+441234567890", "SW1A 1AA", "leeds", 30, "a tall man", "2001-03-04", "J"),
    ("2", "tiothamus", "ap gwent", "1489-01-01", "ann.lee@y.org", "+441234567891", "SW1A 2BB", "leeds", 31, "a tall mna", "2001-04-03", "james"),
    ("3", "toni", "dupré", "2020-01-05", "annlee@x.com", "+441234567809", "SW1 3CC", "leeds", 45, None, "2001-04-03", "J."),
    ("4", "antoinette", "dupre", "2020-5-1", None, "+44123456789", "S1 1AA", "york", None, "short", "1999-12-31", None),
    ("5", "josé", "o'neil", "2020-02-30", "jose@x.com", None, "sw1a 1aa", "york", 30, "shorter", "2001-4-3", "k"),
    ("6", "jose", "oneil", "0999-12-31", "jose@x.co", "+15551234567", None, None, 29, "a tall man", None, "K"),
    ("7", "zoë😀", "smith", "1999-12-31", "zoe@x.com", "+15551234576", "EC1A 1BB", "leeds", 11, "tall", "1931-12-11", "é"),
    ("8", "zoe😀", "smyth", "2000-01-01", "zoe@x.com", "+15551234567", "EC1A 1BB", "York", 12, "tall man", "1931-11-12", "e"),
    ("9", "laursnce", "bootwood", "2000-05-01", "l@x.com", "+15551234567", "EC1 9ZZ", "leeds", 30, "a man", "2001-03-04", ""),
    ("10", "laurence", "boltwood", "1999-11-30 10:00", "l@x.com", "", "EC2 9ZZ", "leeds", 300, "a man", "0999-01-02", "jo"),
    ("11", "smith", "zoë😀", "1999-12-31", "zoe@x.com", "+15551234576", "EC1A 1BB", "leeds", 11, "tall", "1931-12-11", "é"),
]
HARD_COLUMNS = ["pk", "first_name", "surname", "dob", "email", "phone", "postcode", "city", "age", "note", "born", "middle"]




def every_kind_config(path) -> dict:
    """A config comparing every column of :data:`HARD_ROWS` (a CSV at ``path``) with its kind; every pair is a candidate."""
    return {
        "name": "parity",
        "inputs": [{"name": "people", "path": str(path), "format": "csv"}],
        "primary_key": "pk",
        "columns": [
            {"name": "first_name", "kind": "name", "swapped_with": "surname"},
            {"name": "surname", "kind": "name", "swapped_with": "first_name"}, {"name": "dob", "kind": "date"},
            {"name": "email", "kind": "email"}, {"name": "phone", "kind": "phone"}, {"name": "postcode", "kind": "postcode"},
            {"name": "city", "kind": "exact", "term_frequency": True}, {"name": "age", "kind": "numeric"},
            {"name": "note", "kind": "text"}, {"name": "born", "kind": "birth_date"}, {"name": "middle", "kind": "initial"},
        ],
        "blocking_rules": ["1 = 1"],
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
    }


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    fetch_connector()  # Spark's S3 connector joins the classpath only at JVM start (tests/reliability/test_s3.py)
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


def persistent_rdds(spark) -> int:
    """How many RDDs the session keeps (cached or checkpointed locally)."""
    return spark.sparkContext._jsc.sc().getPersistentRDDs().size()


def persistent_rdd_ids(spark) -> set[int]:
    """The ids of the RDDs the session keeps (cached or checkpointed locally)."""
    ids = spark.sparkContext._jsc.sc().getPersistentRDDs().keys().mkString(",")
    return {int(i) for i in ids.split(",") if i}


def rdds_left(spark, kept: set[int], timeout_s: float = 10.0) -> set[int]:
    """The RDDs the session keeps beyond ``kept``, once frees (asynchronous) had up to ``timeout_s`` to land."""
    deadline = time.monotonic() + timeout_s
    while persistent_rdd_ids(spark) - kept and time.monotonic() < deadline:
        time.sleep(0.2)
    return persistent_rdd_ids(spark) - kept


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server for one ASGI ``app`` on a free port, in a thread, and an HTTP client to it."""

    def __init__(self, app) -> None:
        import threading

        import httpx
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def gremlin_server(tmp_path_factory):
    """A local Gremlin Server for the graph tests on a free port with its own saved graph (jars from
    .graph-server/lib, fetched on first use); started through matcher.graph.server, stopped at the end.
    A free port, so a server left behind by a killed run (or another run at once) is not in the way."""
    from matcher.graph.server import LocalGremlinServer

    server = LocalGremlinServer(port=free_port(), state_dir=tmp_path_factory.mktemp("gremlin-server"))
    server.start()
    yield server
    server.stop()


def free_port_block() -> int:
    """A port P on 127.0.0.1 with P..P+4 and P+10000..P+10003 free: the S3 server's ports."""
    while True:
        port = random.randrange(20000, 40000)
        wanted = [*range(port, port + 5), *range(port + 10000, port + 10004)]
        try:
            with contextlib.ExitStack() as stack:
                for p in wanted:
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


@pytest.fixture(scope="session")
def s3_server(spark, tmp_path_factory):
    """A local S3-compatible server (SeaweedFS, through matcher.runtime.s3_server) on free ports with its
    own keys and bucket ``matcher-test``; the shared Spark session is pointed at it. Stopped at the end."""
    from matcher.runtime.s3 import configure_s3
    from matcher.runtime.s3_server import LocalS3Server

    server = LocalS3Server(port=free_port_block(), state_dir=tmp_path_factory.mktemp("s3-server"))
    server.start(buckets=("matcher-test",))
    configure_s3(spark, server.env())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_1000_run(spark, tmp_path_factory):
    """One completed ``matcher run`` of configs/fake_1000.yaml (model, matches, pairs, metrics, report),
    shared by the tests that only read a run folder. Do not modify it; copy it first."""
    from matcher.config.transform import load_config
    from matcher.pipeline import run_task
    from matcher.runtime.run_folder import run_folder

    config = load_config(REPO / "configs" / "fake_1000.yaml")
    folder = run_folder(config, tmp_path_factory.mktemp("fake_1000_run"))
    run_task(config, folder, spark)
    return folder


@pytest.fixture(scope="session")
def demo_run_folder(spark, tmp_path_factory):
    """One completed ``matcher run`` of the multi-source demo (configs/demo.yaml), shared by the tests
    that only read a run folder. Do not modify it; copy it first."""
    from matcher.config.transform import load_config
    from matcher.pipeline import run_task
    from matcher.runtime.run_folder import run_folder

    config = load_config(REPO / "configs" / "demo.yaml")
    folder = run_folder(config, tmp_path_factory.mktemp("demo_run"))
    run_task(config, folder, spark)
    return folder
