"""The review page in a real browser (Debian's chromium, driven by Playwright; no browser download):
review → split → merge → undo, a stale page's conflict, then a full re-run that holds the decisions.

``MATCHER_SCREENSHOT_DIR=docs/images`` makes the test keep its screenshots there (how the ones
in docs/review.md are made). Without chromium the test is skipped, unless
``MATCHER_REQUIRE_BROWSER=1`` (CI sets it) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from matcher.config.transform import load_config
from matcher.matching.decisions import DecisionLog
from matcher.review import ReviewState, create_review_app
from matcher.runtime.run_folder import run_folder
from tests.conftest import REPO, LiveServer

DEMO = REPO / "configs" / "demo.yaml"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("MATCHER_REQUIRE_BROWSER"):
            pytest.fail(f"no chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _shot(page, name: str, tmp_path: Path) -> None:
    """A screenshot of the page, kept in MATCHER_SCREENSHOT_DIR when set."""
    path = tmp_path / f"review-{name}.png"
    page.screenshot(path=str(path), full_page=name != "queue")
    if os.environ.get("MATCHER_SCREENSHOT_DIR"):
        target = Path(os.environ["MATCHER_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def _clusters(folder) -> dict[str, str]:
    matches = pq.read_table(folder.matches, columns=["record_id", "match_id"]).to_pandas()
    return dict(zip(matches["record_id"], matches["match_id"]))


def test_review_split_merge_undo_in_a_browser_then_a_rerun_holds_the_decisions(demo_run_folder, tmp_path, browser, spark):
    from matcher.pipeline import match_task

    config = load_config(DEMO)
    shutil.copytree(demo_run_folder.root, tmp_path / "demo")
    folder = run_folder(config, tmp_path / "demo")
    state = ReviewState(config, folder)
    entity = next(m for m in state.queue()["match_id"] if len(state.members[m]) == 4)
    other = next(m for m in state.queue()["match_id"] if len(state.members[m]) == 2)
    members = state.members_of(entity)
    server = LiveServer(create_review_app(state, who=""))
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    stale = browser.new_page()
    try:
        page.goto(f"{server.url}/review")
        assert page.locator("#queue tbody tr").count() > 0
        _shot(page, "queue", tmp_path)
        page.fill("input[name=q]", members[-1].split(":", 1)[1])
        page.click("form.filters button")
        assert page.locator("#queue tbody tr").count() == 1
        page.click(f"#queue a:text-is('{entity}')")
        page.wait_for_url(f"**/review/entities/{entity}")
        stale.goto(page.url)  # a second reviewer's page, open before the split
        assert page.locator("#records tbody tr[data-record]").count() == 4

        # a decision needs a name: typed once, remembered by the browser
        page.click(f"input.pick[value='{members[-1]}']")
        page.click("button[data-do=split]")
        assert "Type your name" in page.locator("#message").inner_text()
        page.fill("#who", "Ana Steward")
        page.dispatch_event("#who", "change")
        page.fill("input[name=why]", "different date of birth and email")
        page.click("button[data-do=split]")
        page.wait_for_url("**done=d000001")
        assert page.locator("#records tbody tr[data-record]").count() == 3
        assert "Decision d000001 recorded" in page.inner_text("main")
        _shot(page, "entity", tmp_path)

        # the stale page is told, and nothing is written
        stale.fill("#who", "Bo")
        stale.click("button[data-do=confirm]")
        stale.wait_for_selector("#message.error")
        assert "changed since" in stale.inner_text("#message")
        assert len(DecisionLog(folder.root).read()) == 1

        # merge the other entity into this one from its page, by match_id
        page.goto(f"{server.url}/review/entities/{other}")
        assert page.input_value("#who") == "Ana Steward"  # remembered
        page.fill("input[name=other]", entity)
        page.click(".actions button[data-do=merge]")
        page.wait_for_url("**done=d000002")
        survivor = page.url.split("/entities/")[1].split("?")[0]
        assert survivor == entity  # both ids are the run's: the larger entity's survives
        assert page.locator("#records tbody tr[data-record]").count() == 5

        # undo the merge from the decision log page
        page.goto(f"{server.url}/review/decisions")
        _shot(page, "decisions", tmp_path)
        page.click("#decisions button[data-do=undo][data-decision=d000002]")
        page.wait_for_url("**done=d000003")
        page.goto(f"{server.url}/review/decisions")
        assert page.locator("#decisions tr.undone").count() == 1
    finally:
        page.close()
        stale.close()
        server.stop()

    log = DecisionLog(folder.root).read()
    assert [(d.action, d.who) for d in log] == [("split", "Ana Steward"), ("merge", "Ana Steward"), ("undo", "Ana Steward")]

    # a full re-run of the same folder enforces what is in force: the split, not the undone merge
    before = _clusters(folder)
    assert before[members[-1]] == entity  # the run's own tables were not touched by the review
    match_task(config, folder, spark)
    after = _clusters(folder)
    assert {r for r, m in after.items() if m == entity} == set(members[:-1])
    assert after[members[-1]] == members[-1]
    assert after[state.members_of(other)[0]] == other
    assert DecisionLog(folder.root).read() == log  # the log survives the re-run
