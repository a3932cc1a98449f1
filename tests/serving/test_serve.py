"""``matcher serve``: a real HTTP server (uvicorn on a free port) over a real run folder.

The demo run (three sources, text ids) and the fake_1000 run (one input, whole-number ids)
are served; records are sent as their source files hold them and must get the batch's
scores and match_ids.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml

from matcher.config.transform import load_config
from matcher.runtime.run_folder import run_folder
from matcher.serving import MatchService, create_app
from tests.conftest import REPO, LiveServer, free_port

DEMO = REPO / "configs" / "demo.yaml"
FAKE = REPO / "configs" / "fake_1000.yaml"


class Served(LiveServer):
    """A uvicorn server for one service, in a thread, and an HTTP client to it."""

    def __init__(self, service: MatchService) -> None:
        self.service = service
        super().__init__(create_app(service))


def _serve(config_path: Path, folder) -> Served:
    return Served(MatchService.open(load_config(config_path), folder))


@pytest.fixture(scope="module")
def demo_api(demo_run_folder):
    served = _serve(DEMO, demo_run_folder)
    yield served
    served.stop()


@pytest.fixture
def demo_copy(demo_run_folder, tmp_path):
    """A copy of the demo run that a test may add records to."""
    shutil.copytree(demo_run_folder.root, tmp_path / "run")
    return run_folder(load_config(DEMO), tmp_path / "run")


def _source_rows(name: str) -> list[dict]:
    """The demo source's rows as its file holds them (CSV values as text)."""
    path = REPO / "data" / "demo" / {"crm": "crm.csv", "shop": "shop.jsonl", "loyalty": "loyalty.parquet"}[name]
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in frame.to_dict("records")]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = pd.read_parquet(path)
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _batch_pairs(folder) -> pd.DataFrame:
    pairs = ds.dataset(str(folder.pairs), format="parquet").to_table(
        columns=["record_id_l", "record_id_r", "match_probability"]).to_pandas()
    return pd.concat([pairs, pairs.rename(columns={"record_id_l": "record_id_r", "record_id_r": "record_id_l"})])


def _matches(folder, key: str) -> pd.Series:
    table = ds.dataset(str(folder.matches), format="parquet").to_table(columns=[key, "match_id"]).to_pandas()
    return table.set_index(key)["match_id"]


def _assert_same_as_batch(results: list[dict], folder, key: str) -> int:
    """Every answer's candidates are the batch's pairs of that record with equal probabilities, and
    its match_id is the batch's; returns the number of pairs compared."""
    batch, match_ids = _batch_pairs(folder), _matches(folder, key)
    compared = 0
    for result in results:
        assert "quarantined" not in result, result
        record = result["record_id"]
        expected = batch[batch["record_id_l"] == record].set_index("record_id_r")["match_probability"]
        got = {c["record_id"]: c["match_probability"] for c in result["candidates"]}
        assert set(got) == set(expected.index), record
        for other, probability in got.items():
            assert abs(probability - expected[other]) <= 1e-9, (record, other)
        compared += len(got)
        assert result["match_id"] == match_ids[record], record
    return compared


def test_a_thousand_demo_records_sent_as_their_sources_hold_them_get_the_batchs_scores_and_match_ids(demo_api, demo_run_folder):
    results = []
    for source in ("crm", "shop", "loyalty"):
        rows = _source_rows(source)
        for start in range(0, len(rows), 500):
            response = demo_api.client.post("/match/batch", json={"source": source, "records": rows[start:start + 500], "top": 100})
            assert response.status_code == 200, response.text
            results += response.json()["results"]
    matched = [r for r in results if "quarantined" not in r]
    assert len(matched) >= 1000
    assert len(matched) == ds.dataset(str(demo_run_folder.matches), format="parquet").count_rows()
    assert _assert_same_as_batch(matched, demo_run_folder, "record_id") > 900


def test_whole_number_ids_of_a_single_input_run_get_the_batchs_scores(fake_1000_run):
    served = _serve(FAKE, fake_1000_run)
    try:
        rows = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv", dtype=str, keep_default_na=False)
        records = [{k: (v if v != "" else None) for k, v in row.items()} for row in rows.head(300).to_dict("records")]
        response = served.client.post("/match/batch", json={"records": records, "top": 100})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert _assert_same_as_batch(results, fake_1000_run, "unique_id") > 100
        one = served.client.get(f"/entities/{results[0]['match_id']}")
        assert one.status_code == 200 and results[0]["record_id"] in [r["unique_id"] for r in one.json()["records"]]
    finally:
        served.stop()


def test_records_added_to_a_single_input_run_are_kept_with_the_runs_pair_columns(fake_1000_run, tmp_path):
    shutil.copytree(fake_1000_run.root, tmp_path / "run")
    folder = run_folder(load_config(FAKE), tmp_path / "run")
    served = _serve(FAKE, folder)
    try:
        rows = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv", dtype=str, keep_default_na=False).head(1)
        record = {k: (v if v != "" else None) for k, v in rows.to_dict("records")[0].items()}
        answer = served.client.post("/records", json={"records": [{**record, "unique_id": "5000"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["match_id"] == _matches(folder, "unique_id")[int(record["unique_id"])]
    finally:
        served.stop()
    pairs = ds.dataset(str(folder.pairs), format="parquet").to_table().to_pandas()
    added = pairs[(pairs["unique_id_r"] == 5000) | (pairs["unique_id_l"] == 5000)]
    assert len(added) > 0 and (added["record_id_l"] < added["record_id_r"]).all()
    assert (added["record_id_r"] == added["unique_id_r"]).all()


def test_the_answer_explains_each_candidate_by_comparison(demo_api):
    record = _source_rows("crm")[0]
    answer = demo_api.client.post("/match", json={"source": "crm", "record": record}).json()
    best = answer["candidates"][0]
    assert set(best["comparisons"]) == {c.name for c in demo_api.service.config.columns}
    weights = sum(c["match_weight"] for c in best["comparisons"].values())
    prior = best["match_weight"] - weights  # the remaining term is the prior, the same for every pair
    for other in answer["candidates"][1:]:
        assert abs(other["match_weight"] - sum(c["match_weight"] for c in other["comparisons"].values()) - prior) < 1e-9


def test_a_record_of_an_unknown_person_is_a_new_entity_named_by_its_record_id(demo_api):
    record = {"customer_no": "C99999", "given_name": "Zebulon", "family_name": "Quaxworth", "birth_date": "01/02/1903",
              "email_address": "zq@example.org", "phone_number": "(509) 555-0000"}
    answer = demo_api.client.post("/match", json={"source": "crm", "record": record}).json()
    assert answer["new_entity"] is True and answer["match_id"] == "crm:C99999"
    assert answer["match_confidence_score"] > 0.5


def test_added_records_join_an_entity_at_once_and_are_on_disk_before_the_answer(demo_copy):
    served = _serve(DEMO, demo_copy)
    try:
        original = _source_rows("crm")[2]
        twin = {**original, "customer_no": "C20002", "email_address": None}
        newcomer = {**twin, "customer_no": "C20003", "given_name": "Zebulon", "family_name": "Quaxworth",
                    "birth_date": "01/02/1903", "phone_number": "(509) 555-0000"}
        copy_of_newcomer = {**newcomer, "customer_no": "C20004"}
        response = served.client.post("/records", json={"source": "crm", "records": [twin, newcomer, copy_of_newcomer]})
        assert response.status_code == 200, response.text
        twin_answer, new_answer, copy_answer = response.json()["results"]
        assert twin_answer["match_id"] == _matches(demo_copy, "record_id")["crm:C10002"]
        assert new_answer["new_entity"] and new_answer["match_id"] == "crm:C20003"
        # the second newcomer is matched against the first, added a moment before
        assert not copy_answer["new_entity"] and copy_answer["match_id"] == "crm:C20003"
        entity = served.client.get("/entities/crm:C20003").json()
        assert sorted(r["record_id"] for r in entity["records"]) == ["crm:C20003", "crm:C20004"]
        assert entity["golden_record"]["last_name"] == "quaxworth"
        again = served.client.post("/records", json={"source": "crm", "records": [twin]})
        assert again.status_code == 409 and "crm:C20002" in again.json()["error"]
    finally:
        served.stop()
    on_disk = _matches(demo_copy, "record_id")
    assert on_disk["crm:C20002"] == twin_answer["match_id"] and on_disk["crm:C20004"] == "crm:C20003"
    reopened = MatchService.open(load_config(DEMO), demo_copy)
    assert reopened.reference.position("crm:C20004") is not None


def test_match_incremental_keeps_the_ids_the_service_gave(spark, demo_copy, tmp_path):
    from matcher.incremental.task import match_incremental_task

    served = _serve(DEMO, demo_copy)
    try:
        twin = {**_source_rows("crm")[2], "customer_no": "C20002", "email_address": None}
        given = served.client.post("/records", json={"source": "crm", "records": [twin]}).json()["results"][0]
    finally:
        served.stop()
    delta = tmp_path / "delta.csv"
    rows = pd.read_csv(REPO / "data" / "demo" / "crm.csv", dtype=str, keep_default_na=False).head(1)
    rows.assign(customer_no="C30000").to_csv(delta, index=False)
    output = run_folder(load_config(DEMO), tmp_path / "after")
    summary = match_incremental_task(load_config(DEMO), demo_copy, {"crm": str(delta)}, output, spark)
    after = _matches(output, "record_id")
    assert after["crm:C20002"] == given["match_id"]
    assert after["crm:C30000"] == after["crm:C10000"]
    assert summary["incremental"]["new_rows"] == 1


def test_an_added_record_survives_a_kill_right_after_the_answer(demo_copy, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "matcher", "serve", "--config", str(DEMO), "--run", str(demo_copy.root), "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "matcher serve did not start"
            time.sleep(0.2)
        record = {**_source_rows("shop")[0], "id": "S-90000"}
        answer = httpx.post(f"http://127.0.0.1:{port}/records", json={"source": "shop", "records": [record]}, timeout=30)
        assert answer.status_code == 200
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(10)
    assert _matches(demo_copy, "record_id")["shop:S-90000"] == answer.json()["results"][0]["match_id"]


@pytest.mark.parametrize("body, status, field", [
    ({"source": "crm", "record": {"customer_no": "C1", "favourite_colour": "Crimson"}}, 422, "favourite_colour"),
    ({"source": "nowhere", "record": {"customer_no": "C1"}}, 422, "source"),
    ({"source": "crm", "record": {"customer_no": "C1", "given_name": {"first": "Annabelle"}}}, 422, "given_name"),
    ({"source": "crm"}, 422, "record"),
    ({"source": "crm", "record": "C1"}, 422, "record"),
    ({"source": "crm", "record": {"customer_no": "C1"}, "top": -1}, 422, "top"),
])
def test_bad_input_gets_a_4xx_naming_the_field_and_the_service_keeps_serving(demo_api, body, status, field):
    response = demo_api.client.post("/match", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert field in (error.get("field") or "") + error["error"]
    assert "Crimson" not in error["error"] and "Annabelle" not in error["error"]
    assert demo_api.client.get("/health").status_code == 200


def test_malformed_json_oversize_bodies_and_big_batches_are_refused(demo_api):
    malformed = demo_api.client.post("/match", content=b'{"record": {', headers={"content-type": "application/json"})
    assert malformed.status_code == 422 and "error" in malformed.json()
    huge = demo_api.client.post("/match", json={"source": "crm", "record": {"customer_no": "C1", "given_name": "x" * 5_000_000}})
    assert huge.status_code == 413 and huge.json()["field"] == "body"
    many = demo_api.client.post("/match/batch", json={"source": "crm", "records": [{"customer_no": f"C{i}"} for i in range(1001)]})
    assert many.status_code == 422 and many.json()["field"] == "records"
    assert demo_api.client.get("/entities/crm:nobody").status_code == 404
    assert demo_api.client.get("/health").json()["status"] == "ok"


def test_metrics_count_requests_and_time_them(demo_api):
    demo_api.client.post("/match", json={"source": "shop", "record": _source_rows("shop")[1]})
    text = demo_api.client.get("/metrics").text
    assert 'matcher_requests_total{route="POST /match",status="200"}' in text
    assert 'matcher_request_seconds_bucket{route="POST /match",le="+Inf"}' in text
    assert f"matcher_records {len(demo_api.service.reference)}" in text
    assert demo_api.client.get("/openapi.json").json()["paths"].keys() >= {"/match", "/match/batch", "/records", "/entities/{match_id}"}


def test_the_api_page_works_offline(demo_api):
    page = demo_api.client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs-assets/{asset}" in page.text
        assert demo_api.client.get(f"/docs-assets/{asset}").status_code == 200


def test_no_record_value_reaches_the_logs_at_info(demo_copy, caplog):
    served = _serve(DEMO, demo_copy)
    record = {**_source_rows("crm")[5], "customer_no": "C40000"}
    try:
        with caplog.at_level(logging.INFO):
            served.client.post("/match", json={"source": "crm", "record": record})
            served.client.post("/records", json={"source": "crm", "records": [record]})
            served.client.post("/match", json={"source": "crm", "record": {**record, "favourite": "x"}})
    finally:
        served.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "added 1 records" in logged
    for value in ("given_name", "family_name", "email_address", "phone_number"):
        if record[value]:
            assert record[value] not in logged


def test_a_record_that_cannot_be_written_is_not_kept_and_the_service_keeps_serving(demo_copy):
    served = _serve(DEMO, demo_copy)
    try:
        shutil.rmtree(demo_copy.pairs)  # a real write failure: the folder the pairs go to is gone
        twin = {**_source_rows("crm")[2], "customer_no": "C20002"}
        failed = served.client.post("/records", json={"source": "crm", "records": [twin]})
        assert failed.status_code == 500 and "nothing was kept" in failed.json()["error"]
        assert served.service.reference.position("crm:C20002") is None
        assert "crm:C20002" not in served.service.reference.entity_ids
        again = served.client.post("/match", json={"source": "crm", "record": twin, "top": 100})
        assert again.status_code == 200 and "crm:C20002" not in [c["record_id"] for c in again.json()["candidates"]]
        assert served.client.get("/health").status_code == 200
    finally:
        served.stop()
    assert "crm:C20002" not in _matches(demo_copy, "record_id").index  # nor on disk


def test_function_and_or_blocking_rules_give_the_batchs_pairs(spark, write_config, tmp_path, caplog):
    """A rule keyed on a function of a column (looked up by DuckDB) and an OR rule (no key: every
    record a candidate, with a warning) still give exactly the batch's pairs."""
    from matcher.pipeline import run_task

    data = yaml.safe_load(FAKE.read_text(encoding="utf-8"))
    data["inputs"][0]["path"] = str(REPO / "data" / "demo" / "fake_1000.csv")
    data["blocking_rules"] = ["substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2) and l.dob = r.dob",
                              "l.surname = r.surname or l.email = r.email"]
    config_path = write_config(data)
    config = load_config(config_path)
    folder = run_folder(config, tmp_path / "run")
    run_task(config, folder, spark)
    with caplog.at_level(logging.WARNING):
        service = MatchService.open(config, folder)
    assert "have no equi-join key" in caplog.text
    assert [e is None for e in service.reference.expressions] == [False, True]
    rows = pd.read_csv(REPO / "data" / "demo" / "fake_1000.csv", dtype=str, keep_default_na=False).head(200)
    records = [{k: (v if v != "" else None) for k, v in row.items()} for row in rows.to_dict("records")]
    results = service.match(records, top=1000)
    assert _assert_same_as_batch(results, folder, "unique_id") > 50
