"""The instance page's buttons while their request is in flight: the server's answer is
held by the test, and the buttons stay disabled and busy until it is let through."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.ui.conftest import accessibility_problems, screenshot
from workflow_engine.testing import SandboxProcess, ServerProcess

pytestmark = pytest.mark.slow


def hold(page: Page, pattern: str) -> list[Route]:
    """Requests to ``pattern``, kept unanswered until the test continues them."""
    held: list[Route] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def test_an_action_button_is_busy_while_its_fire_is_in_flight_and_sends_a_key(
    page: Page, server: ServerProcess,
) -> None:
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "document-approval", "id": "busy-1"}).raise_for_status()
    page.goto(server.url + "/#/instances/busy-1")
    held = hold(page, "**/api/instances/busy-1/actions/*")
    button = page.get_by_role("button", name="Submit for review")
    button.click()
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-busy", "true")
    assert len(held) == 1
    assert held[0].request.headers.get("idempotency-key")
    held[0].continue_()
    expect(page.get_by_test_id("current-state")).to_have_text("In review")
    found = httpx.get(f"{server.url}/api/instances/busy-1").json()
    assert found["current_state"] == "review"
    for action in found["available_actions"]:
        expect(page.locator(f"button[data-action={action['id']}]")).to_be_enabled()
        expect(page.locator(f"button[data-action={action['id']}]")).not_to_have_attribute(
            "aria-busy", "true")
    page.close()  # before the server stops under its open event stream


def test_cancel_and_retry_are_busy_while_their_request_is_in_flight(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess],
) -> None:
    server, sandbox = enriching
    sandbox.configure(hold_results=True)  # the enrichment runs until the test lets it go
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "leads-enriched", "id": "ctl-1"}).raise_for_status()
    httpx.post(f"{server.url}/api/instances/ctl-1/actions/run").raise_for_status()
    sent: list[Request] = []
    page.on("request", lambda r: re.search(r"/ctl-1/(cancel|retry)$", r.url) and sent.append(r))
    page.goto(server.url + "/#/instances/ctl-1")
    expect(page.get_by_test_id("progress")).to_contain_text("enrich_lead: 0 of",
                                                            timeout=30_000)

    held = hold(page, "**/api/instances/ctl-1/cancel")
    cancel = page.get_by_role("button", name="Cancel the running block")
    cancel.click()
    expect(cancel).to_be_disabled()
    expect(cancel).to_have_attribute("aria-busy", "true")
    assert httpx.get(f"{server.url}/api/instances/ctl-1").json()["status"] == "running"
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator(".badge")).to_have_text("cancelled")
    assert httpx.get(f"{server.url}/api/instances/ctl-1").json()["status"] == "cancelled"
    retry = page.get_by_role("button", name="Retry the cancelled block")
    expect(retry).to_be_focused()  # the pressed button is gone; what undoes it has focus
    assert accessibility_problems(page) == []

    held = hold(page, "**/api/instances/ctl-1/retry")
    retry.click()
    expect(retry).to_be_disabled()
    expect(retry).to_have_attribute("aria-busy", "true")
    for action in page.locator("button[data-action]").all():
        expect(action).to_be_disabled()
    assert httpx.get(f"{server.url}/api/instances/ctl-1").json()["status"] == "cancelled"
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator(".badge")).to_have_text("running")
    assert httpx.get(f"{server.url}/api/instances/ctl-1").json()["status"] == "running"
    expect(page.get_by_role("button", name="Cancel the running block")).to_be_enabled()
    assert [r.url.rsplit("/", 1)[1] for r in sent] == ["cancel", "retry"]

    sandbox.configure(hold_results=False)
    expect(page.locator(".badge")).to_have_text("completed", timeout=60_000)
    assert httpx.get(f"{server.url}/api/instances/ctl-1").json()["status"] == "completed"


def test_a_fork_shows_each_branch_and_one_branch_is_cancelled_and_retried_alone(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess],
) -> None:
    server, sandbox = enriching
    sandbox.configure(hold_results=True)  # both branches run until the test lets them go
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "leads-contacts", "id": "fork-1"}).raise_for_status()
    httpx.post(f"{server.url}/api/instances/fork-1/actions/run").raise_for_status()
    page.goto(server.url + "/#/instances/fork-1")
    fork = page.locator("g.node[data-state=contacts]")
    expect(fork).to_contain_text("Emails (find_email)")
    expect(fork).to_contain_text("Phones (find_phone)")
    branches = page.get_by_test_id("branches")
    expect(branches.locator("li[data-branch=emails]")).to_have_attribute(
        "data-status", "running", timeout=30_000)
    expect(branches.locator("li[data-branch=phones]")).to_contain_text("of 15 rows")
    assert accessibility_problems(page) == []

    page.get_by_role("button", name="Cancel branch Phones").click()
    expect(branches.locator("li[data-branch=phones]")).to_have_attribute(
        "data-status", "cancelled")
    expect(page.get_by_role("button", name="Cancel branch Emails")).to_be_enabled()
    screenshot(page, "branches")
    assert httpx.get(f"{server.url}/api/instances/fork-1").json()["status"] == "running"

    sandbox.configure(hold_results=False)  # emails finishes; the state ends cancelled
    expect(page.locator(".badge")).to_have_text("cancelled", timeout=60_000)
    found = httpx.get(f"{server.url}/api/instances/fork-1").json()
    assert found["error"]["code"] == "branch_cancelled"
    assert {b: s["status"] for b, s in found["error"]["branches"].items()} == {
        "emails": "succeeded", "phones": "cancelled"}

    page.get_by_role("button", name="Retry the cancelled block").click()
    expect(page.locator(".badge")).to_have_text("completed", timeout=60_000)
    history = httpx.get(f"{server.url}/api/instances/fork-1/history?limit=100").json()
    joined = next(e for e in history["items"]
                  if e["type"] == "block_succeeded" and e["to_state"] == "contacts")
    assert {b: s["reused"] for b, s in joined["data"]["branches"].items()} == {
        "emails": True, "phones": False}
    page.close()  # before the server stops under its open event stream
