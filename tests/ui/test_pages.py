"""What a user sees and does in the browser, page by page."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import DEFINITIONS
from tests.ui.conftest import Console, accessibility_problems, screenshot
from workflow_engine.testing import ServerProcess, running_server

pytestmark = pytest.mark.slow


def test_the_pipelines_page_shows_every_definition_with_its_diagram(
    page: Page, server: ServerProcess,
) -> None:
    page.goto(server.url + "/")
    listed = httpx.get(f"{server.url}/api/definitions?limit=100").json()["items"]
    cards = page.locator("li.card")
    expect(cards).to_have_count(len(listed))
    for definition in listed:
        card = cards.filter(has=page.get_by_role("link", name=definition["name"], exact=True))
        expect(card.locator("svg[role=img] g.node")).to_have_count(definition["state_count"])
    approval = cards.filter(has_text="Document approval")
    expect(approval.locator("svg[role=img]")).to_have_attribute(
        "aria-label", "Diagram of Document approval: states Draft, In review, Approved, Rejected")
    assert accessibility_problems(page) == []
    screenshot(page, "pipelines")


def test_document_approval_is_driven_by_its_buttons_and_its_history_grows(
    page: Page, server: ServerProcess,
) -> None:
    page.goto(server.url + "/#/definitions/document-approval")
    page.get_by_label("Instance id (optional)").fill("memo-1")
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(f"{server.url}/#/instances/memo-1")
    expect(page.get_by_test_id("current-state")).to_have_text("Draft")
    expect(page.locator("g.node.current")).to_have_attribute("data-state", "draft")
    assert accessibility_problems(page) == []

    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_test_id("current-state")).to_have_text("In review")
    page.get_by_role("button", name="Request changes").click()
    expect(page.get_by_test_id("current-state")).to_have_text("Draft")
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("current-state")).to_have_text("Approved")
    expect(page.locator("g.node.current")).to_have_attribute("data-state", "approved")
    expect(page.get_by_text("No action is available in this state.")).to_be_visible()

    history = httpx.get(f"{server.url}/api/instances/memo-1/history").json()["items"]
    assert [e["action_id"] for e in history] == [
        None, "submit_for_review", "request_changes", "submit_for_review", "approve"]
    items = page.get_by_test_id("history").locator("li")
    expect(items).to_have_count(len(history))
    expect(items.last).to_contain_text("Action fired: Approve")
    assert accessibility_problems(page) == []
    screenshot(page, "instance")


def test_two_tabs_fire_the_same_action_one_wins_the_other_says_why(
    context: BrowserContext, server: ServerProcess, console: Console,
) -> None:
    """Tab B does not hear of tab A's fire (its live stream is held back), so it still
    offers the button; its click loses and it shows the server's reason."""
    console.expect("net::ERR_FAILED")  # tab B's stream, refused by the test
    console.expect("status of 409")  # tab B's lost fire
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "document-approval", "id": "race"}).raise_for_status()
    httpx.post(f"{server.url}/api/instances/race/actions/submit_for_review").raise_for_status()
    first, second = context.new_page(), context.new_page()
    second.route("**/events*", lambda route: route.abort())
    for tab in (first, second):
        tab.goto(server.url + "/#/instances/race")
        expect(tab.get_by_role("button", name="Approve")).to_be_visible()
    first.get_by_role("button", name="Approve").click()
    expect(first.get_by_test_id("current-state")).to_have_text("Approved")
    second.get_by_role("button", name="Approve").click()
    alert = second.get_by_role("alert")
    expect(alert).to_contain_text("Approve was not done")
    expect(alert.locator("[data-code]")).to_have_attribute("data-code", "instance_final")
    history = httpx.get(f"{server.url}/api/instances/race/history").json()["items"]
    assert [e["action_id"] for e in history].count("approve") == 1


def test_a_page_refused_a_stream_opens_one_later_and_misses_nothing(
    context: BrowserContext, tmp_path: Path, console: Console,
) -> None:
    """With one stream per process, a second tab is refused (503) while the first
    watches; once the first closes, the second opens its stream again and follows."""
    console.expect("status of 503")
    with running_server(tmp_path / "wf.db", definitions=DEFINITIONS,
                        env={"MAX_EVENT_STREAMS": "1"}) as server:
        httpx.post(f"{server.url}/api/instances", json={
            "definition_id": "document-approval", "id": "capped"}).raise_for_status()
        first, second = context.new_page(), context.new_page()
        first.goto(server.url + "/#/instances/capped")
        expect(first.get_by_text("live: live")).to_be_visible()
        second.goto(server.url + "/#/instances/capped")
        expect(second.get_by_text("live: reconnecting")).to_be_visible()
        first.close()
        expect(second.get_by_text("live: live")).to_be_visible(timeout=20_000)
        httpx.post(f"{server.url}/api/instances/capped/actions/submit_for_review"
                   ).raise_for_status()
        expect(second.get_by_test_id("current-state")).to_have_text("In review")
        expect(second.get_by_test_id("history").locator("li")).to_have_count(2)
        second.close()  # before the server stops under its open stream


def test_a_definition_page_lists_its_triggers_and_makes_a_webhook_token(
    page: Page, server: ServerProcess,
) -> None:
    """The hook URL is shown; a new token, shown once, starts an instance on posted rows."""
    page.goto(server.url + "/#/definitions/leads-webhook")
    triggers = page.get_by_test_id("triggers")
    expect(triggers).to_contain_text(f"{server.url}/api/hooks/leads-webhook/leads")
    triggers.get_by_role("button", name="New token").click()
    token = page.get_by_test_id("hook-token")
    expect(token).to_be_visible()
    assert accessibility_problems(page) == []
    answer = httpx.post(f"{server.url}/api/hooks/leads-webhook/leads",
                        content=b"name,company\nAnn,Ariglad Inc\n",
                        headers={"Content-Type": "text/csv",
                                 "Authorization": f"Bearer {token.inner_text()}"})
    assert answer.status_code == 201
    page.reload()
    expect(page.get_by_test_id("triggers")).to_contain_text("last started")
    page.wait_for_load_state("networkidle")  # nothing left to ask of the server
