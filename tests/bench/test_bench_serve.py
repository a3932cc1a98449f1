"""``python -m bench serve`` on a small reference (2,000 records): the JSON the issue asks for, and
the letter-shifted copies that grow historical_50k."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import serve
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_grown_copies_are_new_people_with_the_same_shape(tmp_path):
    source = tmp_path / "source.parquet"
    pq.write_table(pa.table({"unique_id": ["a-1", "a-2"], "cluster": ["a", "a"], "first_name": ["ann", None],
                             "surname": ["Zed", "zed"], "full_name": ["ann zed", None], "first_and_surname": ["ann zed", None],
                             "dob": ["1900-01-02", None], "birth_place": ["york", "york"], "postcode_fake": ["y1", "y1"],
                             "gender": ["f", "f"], "occupation": ["poet", None]}), source)
    about = serve.grow(source, 5, tmp_path / "grown.parquet")
    grown = pq.read_table(tmp_path / "grown.parquet").to_pylist()
    assert about == {"rows": 5, "copies": 3} and len(grown) == 5
    assert [r["unique_id"] for r in grown] == ["a-1", "a-2", "a-1~1", "a-2~1", "a-1~2"]
    assert [r["cluster"] for r in grown[2:]] == ["a~1", "a~1", "a~2"]
    assert grown[2]["first_name"] == "boo" and grown[2]["surname"] == "Afe" and grown[4]["surname"] == "Bgf"
    assert grown[3]["first_name"] is None and grown[2]["dob"] == "2300-01-02" and grown[4]["dob"] == "2700-01-02"
    assert grown[2]["postcode_fake"] == "z1" and grown[3]["dob"] is None


def test_bench_serve_writes_latency_throughput_start_up_and_memory(tmp_path):
    out = tmp_path / "serve.json"
    code = serve.main(["--rows", "2000", "--seconds", "2", "--clients", "2", "--workdir", str(tmp_path / "work"),
                       "--port", str(free_port()), "--out", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0
    assert report["reference_records"] == 2000 and report["reference"]["rows"] == 2000
    assert report["startup_s"] > 0 and 0 < report["rss_gb"] < 4
    for endpoint in ("match", "records"):
        figures = report[endpoint]
        assert figures["requests"] > 0 and figures["errors"] == 0, figures
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] and figures["rps"] > 0
