"""The review page's API over a copy of a real demo run: queue, entity, decisions, ids, conflicts, token."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from matcher.config.transform import load_config
from matcher.matching.decisions import DecisionLog
from matcher.review import ReviewState, create_review_app
from matcher.runtime.run_folder import run_folder
from tests.conftest import REPO

DEMO = REPO / "configs" / "demo.yaml"
WHO = "test steward"


@pytest.fixture
def review(demo_run_folder, tmp_path):
    """A review state and client over a fresh copy of the demo run."""
    shutil.copytree(demo_run_folder.root, tmp_path / "run")
    state = ReviewState(load_config(DEMO), run_folder(load_config(DEMO), tmp_path / "run"))
    with TestClient(create_review_app(state)) as client:
        yield state, client


def _entity_of_size(state: ReviewState, n: int) -> str:
    return next(m for m in sorted(state.members) if len(state.members[m]) == n)


def _decide(client, **body):
    return client.post("/review/api/decisions", json={"who": WHO, **body})


def test_the_queue_puts_the_most_uncertain_entities_first_and_finds_records(review):
    state, client = review
    body = client.get("/review/api/queue", params={"limit": 1000, "show": "all"}).json()
    scores = [e["uncertainty"] for e in body["entities"]]
    assert body["total"] == len(scores) > 0 and scores == sorted(scores, reverse=True)
    assert all(e["size"] > 1 or e["near_miss"] is not None for e in body["entities"])
    record = state.members_of(body["entities"][0]["match_id"])[-1]
    key = record.split(":", 1)[1]
    found = client.get("/review/api/queue", params={"q": key, "show": "all"}).json()["entities"]
    assert [e["match_id"] for e in found] == [state.entity_of(record)]
    assert client.get("/review/api/queue", params={"show": "reviewed"}).json()["total"] == 0


def test_an_entity_shows_its_records_links_and_the_runs_golden_record(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    entity = client.get(f"/review/api/entities/{match_id}").json()
    assert sorted(r["id"] for r in entity["records"]) == sorted(state.members_of(match_id))
    assert len(entity["links"]) >= 3  # at least a spanning tree of scored pairs holds four records together
    assert all({c["name"] for c in link["comparisons"]} == set(state.comparisons) for link in entity["links"])
    customers = pq.read_table(state.folder.customers).to_pandas().set_index("match_id").loc[match_id]
    for field in ("first_name", "last_name", "email", "postcode"):
        assert entity["golden"][field] == customers[field]
    assert client.get("/review/api/entities/nobody").status_code == 404


def test_a_split_keeps_the_larger_parts_id_and_is_logged_with_who_when_and_why(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    members = state.members_of(match_id)
    answer = _decide(client, action="split", match_id=match_id, moved=[members[-1]], why="different person",
                     version=state.version(match_id))
    assert answer.status_code == 200, answer.text
    assert answer.json()["goto"] == match_id
    assert state.members_of(match_id) == members[:-1]
    assert state.members_of(members[-1]) == [members[-1]]  # the moved part is named by its smallest record id
    logged = DecisionLog(state.folder.root).read()
    assert [(d.action, d.who, d.why, d.moved) for d in logged] == [("split", WHO, "different person", (members[-1],))]
    assert logged[0].when.endswith("Z")


def test_moving_out_the_larger_part_or_the_record_named_like_the_entity(review):
    state, client = review
    first = _entity_of_size(state, 4)
    members = state.members_of(first)
    assert _decide(client, action="split", match_id=first, moved=members[1:]).status_code == 200
    assert state.members_of(first) == members[1:]  # three of four moved: they keep the id
    assert state.entity_of(members[0]) != first
    second = next(m for m in sorted(state.members) if len(state.members[m]) == 3 and m in state.members[m])
    own = state.members_of(second)
    assert _decide(client, action="split", match_id=second, moved=[second]).status_code == 200
    assert state.members_of(second) == [r for r in own if r != second]  # the larger part keeps the id
    assert state.entity_of(second) == f"{second}~2"  # its own record id is taken: the next free name


def test_a_merge_keeps_the_older_id_and_undo_restores_both(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    members = state.members_of(match_id)
    _decide(client, action="split", match_id=match_id, moved=[members[-1]])
    split_off = state.entity_of(members[-1])
    merged = _decide(client, action="merge", match_id=split_off, other_match_id=match_id, why="same person after all")
    assert merged.status_code == 200, merged.text
    assert merged.json()["goto"] == match_id  # an id the run made is older than one a decision made
    assert state.members_of(match_id) == members
    assert split_off not in state.members
    undone = client.post(f"/review/api/decisions/{merged.json()['decision']['decision_id']}/undo", json={"who": WHO})
    assert undone.status_code == 200 and state.members_of(match_id) == members[:-1]
    again = client.post(f"/review/api/decisions/{merged.json()['decision']['decision_id']}/undo", json={"who": WHO})
    assert again.status_code == 409 and "undone already" in again.json()["error"]
    assert client.post("/review/api/decisions/d999999/undo", json={"who": WHO}).status_code == 422


def test_merging_two_of_the_runs_entities_keeps_the_larger_ones_id(review):
    state, client = review
    big, small = _entity_of_size(state, 4), _entity_of_size(state, 2)
    assert _decide(client, action="merge", match_id=small, other_match_id=big).json()["goto"] == big
    assert len(state.members_of(big)) == 6 and small not in state.members


def test_a_stale_page_gets_a_conflict_not_a_silent_overwrite(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    seen = state.version(match_id)
    assert _decide(client, action="confirm", match_id=match_id, version=seen).status_code == 200
    late = _decide(client, action="split", match_id=match_id, version=seen, moved=[state.members_of(match_id)[0]])
    assert late.status_code == 409 and "changed since" in late.json()["error"]
    assert len(DecisionLog(state.folder.root).read()) == 1


def test_a_second_review_process_on_the_same_folder_sees_the_first_ones_decisions(review):
    state, client = review
    other = ReviewState(state.config, state.folder)  # as a second `matcher review` on the same run would
    match_id = _entity_of_size(state, 4)
    seen = other.version(match_id)
    assert _decide(client, action="confirm", match_id=match_id).status_code == 200
    with TestClient(create_review_app(other)) as second:
        late = _decide(second, action="split", match_id=match_id, version=seen, moved=[state.members_of(match_id)[0]])
    assert late.status_code == 409
    assert [d.decision_id for d in other.decisions] == ["d000001"]


def test_decisions_that_contradict_each_other_are_refused(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    a, b, c, _ = state.members_of(match_id)
    assert _decide(client, action="match", match_id=match_id, records=[a, b]).status_code == 200
    assert _decide(client, action="match", match_id=match_id, records=[b, c]).status_code == 200
    refused = _decide(client, action="not_match", match_id=match_id, records=[a, c])
    assert refused.status_code == 409 and "contradicts" in refused.json()["error"]
    assert len(DecisionLog(state.folder.root).read()) == 2


@pytest.mark.parametrize("body, field", [
    ({"action": "split", "moved": []}, "moved"),
    ({"action": "split", "moved": ["crm:nobody"]}, "moved"),
    ({"action": "merge"}, "other_match_id"),
    ({"action": "match", "records": ["crm:nobody", "shop:nobody"]}, "records"),
    ({"action": "delete"}, "action"),
])
def test_bad_requests_name_what_is_wrong(review, body, field):
    state, client = review
    answer = _decide(client, match_id=_entity_of_size(state, 4), **body)
    assert answer.status_code == 422 and answer.json()["error"].startswith(field)


def test_a_decision_needs_a_reviewer_and_json(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    assert client.post("/review/api/decisions", json={"action": "confirm", "match_id": match_id, "who": ""}).status_code == 422
    form = client.post("/review/api/decisions", data={"action": "confirm", "match_id": match_id, "who": WHO})
    assert form.status_code == 422  # a cross-site form cannot post a decision
    assert not DecisionLog(state.folder.root).path.exists()


def _digests(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def test_reviewing_never_changes_the_inputs_or_the_runs_tables(review):
    state, client = review
    watched = [*(REPO / "data" / "demo").rglob("*"), *state.folder.root.rglob("*.parquet")]
    before = _digests(watched)
    match_id = _entity_of_size(state, 4)
    _decide(client, action="split", match_id=match_id, moved=[state.members_of(match_id)[-1]])
    assert _digests(watched) == before
    assert json.loads(DecisionLog(state.folder.root).path.read_text().splitlines()[0])["action"] == "split"


def test_a_token_guards_every_review_route(demo_run_folder, tmp_path):
    shutil.copytree(demo_run_folder.root, tmp_path / "run")
    state = ReviewState(load_config(DEMO), run_folder(load_config(DEMO), tmp_path / "run"))
    with TestClient(create_review_app(state, token="s3cret"), follow_redirects=False) as client:
        assert client.get("/review").status_code == 401
        assert client.get("/review/api/queue", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/review/api/queue", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        entered = client.get("/review", params={"token": "s3cret", "show": "all"})
        assert entered.status_code == 303 and entered.headers["location"] == "/review?show=all"
        assert "httponly" in entered.headers["set-cookie"].lower() and "samesite=strict" in entered.headers["set-cookie"].lower()
        assert client.get("/review").status_code == 200  # the cookie from now on
        assert client.get("/health").status_code == 200  # only /review asks for it


@pytest.mark.slow
def test_matcher_review_prints_its_address_with_a_token_and_serves_only_to_it(demo_run_folder, tmp_path):
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import free_port

    shutil.copytree(demo_run_folder.root, tmp_path / "run")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "matcher", "review", "--config", str(DEMO), "--run", str(tmp_path / "run"),
         "--port", str(port), "--require-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"review page: http://127.0.0.1:{port}/review?token="), line
        address = line.split(": ", 1)[1].strip()
        with httpx.Client(timeout=30) as client:
            for _ in range(100):
                try:
                    opened = client.get(address, follow_redirects=True)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert opened.status_code == 200 and "Entities to review" in opened.text
            assert httpx.get(f"http://127.0.0.1:{port}/review").status_code == 401
    finally:
        process.terminate()
        process.wait(20)


def test_undoing_a_confirm_changes_the_entitys_version_too(review):
    state, client = review
    match_id = _entity_of_size(state, 4)
    confirmed = _decide(client, action="confirm", match_id=match_id).json()["decision"]["decision_id"]
    seen = state.version(match_id)
    client.post(f"/review/api/decisions/{confirmed}/undo", json={"who": WHO})
    assert state.version(match_id) != seen
    assert _decide(client, action="confirm", match_id=match_id, version=seen).status_code == 409


def test_serve_with_review_answers_matching_and_review_on_one_app(demo_run_folder, tmp_path):
    from matcher.serving import MatchService

    shutil.copytree(demo_run_folder.root, tmp_path / "run")
    config = load_config(DEMO)
    folder = run_folder(config, tmp_path / "run")
    app = create_review_app(ReviewState(config, folder), service=MatchService.open(config, folder))
    with TestClient(app) as client:
        matched = client.post("/match", json={"source": "shop", "record": {"id": "S-new", "first": "Ann", "last": "Lee", "dob": "1990-01-02"}})
        assert matched.status_code == 200 and "match_id" in matched.json()
        assert client.get("/review/api/queue").json()["total"] > 0
        assert client.get("/metrics").status_code == 200


def test_an_entity_page_lists_only_its_weakest_links_with_the_total(review, monkeypatch):
    from matcher.review import state as state_module

    state, client = review
    match_id = _entity_of_size(state, 4)
    every = client.get(f"/review/api/entities/{match_id}").json()["links"]
    monkeypatch.setattr(state_module, "SHOWN_LINKS", 2)
    capped = client.get(f"/review/api/entities/{match_id}").json()
    assert capped["links_total"] == len(every) > 2
    assert capped["links"] == every[:2]  # weakest first
    assert f"the 2 weakest of {len(every)}" in client.get(f"/review/entities/{match_id}").text
