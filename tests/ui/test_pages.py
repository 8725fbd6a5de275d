"""What a user sees and does in the browser, page by page."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import accessibility_problems, screenshot
from workflow_engine.testing import ServerProcess

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
