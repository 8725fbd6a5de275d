"""Where the keyboard's focus goes when what it was on changes or goes away."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import accessibility_problems, tab_to
from workflow_engine.testing import ServerProcess

pytestmark = pytest.mark.slow


def step_types(page: Page) -> list[str | None]:
    steps = page.get_by_test_id("pipeline").locator("li.step")
    return [steps.nth(i).get_attribute("data-type") for i in range(steps.count())]


def test_a_new_page_takes_the_focus_to_its_heading_but_the_first_page_loaded_does_not(
    page: Page, server: ServerProcess,
) -> None:
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "document-approval", "id": "focus-1"}).raise_for_status()
    page.goto(server.url + "/#/runs")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Runs")
    expect(page.get_by_role("link", name="focus-1")).to_be_visible()
    # Nothing took the focus on the first load: the first Tab lands on the first link.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Workflow engine")).to_be_focused()

    tab_to(page, page.get_by_role("link", name="focus-1"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/#/instances/focus-1")
    expect(heading).to_have_text("Instance focus-1")
    expect(heading).to_be_focused()
    expect(heading).to_have_attribute("tabindex", "-1")
    assert accessibility_problems(page) == []

    page.keyboard.press("Tab")  # from the heading on: the page's next link
    tab_to(page, page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Pipelines"), backwards=True)
    page.keyboard.press("Enter")
    expect(heading).to_have_text("Pipelines")
    expect(heading).to_be_focused()

    page.go_back()  # the browser's history is a route change too
    expect(heading).to_have_text("Instance focus-1")
    expect(heading).to_be_focused()
    page.close()  # before the server stops under its open event stream


def test_the_builders_move_and_remove_buttons_keep_the_focus_on_the_step_they_acted_on(
    page: Page, server: ServerProcess,
) -> None:
    page.goto(server.url + "/#/builder")
    expect(page.get_by_role("heading", level=1)).to_have_text("New pipeline")
    for block in ("Read CSV", "Filter", "Save CSV"):
        tab_to(page, page.get_by_role("button", name=f"Add {block}", exact=True))
        page.keyboard.press("Enter")
    expect(page.get_by_test_id("pipeline").locator("li.step")).to_have_count(3)
    assert step_types(page) == ["read_csv", "filter", "save_csv"]

    tab_to(page, page.get_by_role("button", name="Move 1. Read CSV down"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Move 2. Read CSV down")).to_be_focused()
    assert step_types(page) == ["filter", "read_csv", "save_csv"]
    page.keyboard.press("Enter")
    # At the bottom its ↓ is disabled, so the focus is on its ↑.
    expect(page.get_by_role("button", name="Move 3. Read CSV up")).to_be_focused()
    assert step_types(page) == ["filter", "save_csv", "read_csv"]
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Move 2. Read CSV up")).to_be_focused()
    assert step_types(page) == ["filter", "read_csv", "save_csv"]
    assert accessibility_problems(page) == []

    # Removed: the focus goes to the next step's Remove, then the previous one's, then
    # (nothing left) the palette.
    tab_to(page, page.get_by_role("button", name="Remove 1. Filter"), backwards=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Remove 1. Read CSV")).to_be_focused()
    assert step_types(page) == ["read_csv", "save_csv"]
    tab_to(page, page.get_by_role("button", name="Remove 2. Save CSV"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Remove 1. Read CSV")).to_be_focused()
    assert step_types(page) == ["read_csv"]
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("pipeline").locator("li.step")).to_have_count(0)
    expect(page.get_by_test_id("palette").get_by_role("button").first).to_be_focused()


def test_an_action_fired_from_the_keyboard_leaves_the_focus_on_what_comes_next(
    page: Page, server: ServerProcess,
) -> None:
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "document-approval", "id": "focus-2"}).raise_for_status()
    page.goto(server.url + "/#/instances/focus-2")
    tab_to(page, page.get_by_role("button", name="Submit for review"))
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("current-state")).to_have_text("In review")
    offered = httpx.get(f"{server.url}/api/instances/focus-2").json()["available_actions"]
    buttons = page.locator("button[data-action]")
    expect(buttons).to_have_count(len(offered))
    # The pressed button is gone: the first of the new ones has the focus.
    expect(page.locator(f"button[data-action={offered[0]['id']}]")).to_be_focused()

    tab_to(page, page.get_by_role("button", name="Approve"))
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("current-state")).to_have_text("Approved")
    assert httpx.get(f"{server.url}/api/instances/focus-2").json()["available_actions"] == []
    # No button is left: the focus is on the sentence naming the new state.
    expect(page.get_by_test_id("current-state-summary")).to_be_focused()
    assert accessibility_problems(page) == []
