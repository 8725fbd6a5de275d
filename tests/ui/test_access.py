"""A server with API tokens, in the browser: the page asks for a token, keeps a good one
for the tab's session, and offers only what the token may do."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import DEFINITIONS, ROOT
from tests.ui.conftest import Console, accessibility_problems
from workflow_engine.auth import digest
from workflow_engine.testing import ServerProcess, running_server

pytestmark = pytest.mark.slow

TOKENS = {"reader": "r-" + "a" * 40, "runner": "u-" + "b" * 40, "admin": "d-" + "c" * 40}
SCOPES = {"reader": ["read"], "runner": ["run"], "admin": ["admin"]}
TOKEN_KEY = "workflow-engine.token"  # where api.js keeps the session's token


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the shipped definitions that needs a token, with one instance."""
    (tmp_path / "files").mkdir()
    shutil.copy(ROOT / "data" / "leads.csv", tmp_path / "files" / "leads.csv")
    tokens = [{"name": name, "scopes": SCOPES[name], "sha256": digest(secret)}
              for name, secret in TOKENS.items()]
    with running_server(tmp_path / "wf.db", definitions=DEFINITIONS, data_dir=tmp_path,
                        env={"API_TOKENS": json.dumps(tokens)}) as server:
        httpx.post(f"{server.url}/api/instances", json={
            "definition_id": "document-approval", "id": "memo-1"},
            headers={"Authorization": f"Bearer {TOKENS['runner']}"}).raise_for_status()
        yield server


def signed_in(page: Page, name: str) -> Page:
    """The page with ``name``'s token already in its session, as if it had been entered."""
    page.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {TOKENS[name]!r})")
    return page


class TestTheTokenPrompt:
    def test_a_wrong_token_is_refused_and_a_right_one_is_kept_for_the_session(
        self, secured: ServerProcess, browser: Browser, context: BrowserContext, page: Page,
        console: Console,
    ) -> None:
        console.expect("status of 401")  # the page's first requests, and the wrong token
        page.goto(secured.url + "/")
        prompt = page.get_by_role("heading", name="This server needs an API token")
        expect(prompt).to_be_visible()
        page.get_by_role("textbox", name="API token").fill("not-a-token")
        page.get_by_role("button", name="Use token").click()
        expect(page.get_by_role("alert")).to_have_text(
            "The server refused this token: check it and enter it again.")
        expect(prompt).to_be_visible()
        assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
        assert accessibility_problems(page) == []

        page.get_by_role("textbox", name="API token").fill(TOKENS["reader"])
        page.get_by_role("button", name="Use token").click()
        expect(page.get_by_test_id("who")).to_have_text("Token reader: read")
        expect(page.locator("li.card").first).to_be_visible()
        expect(prompt).to_have_count(0)

        page.reload()
        expect(page.get_by_test_id("who")).to_have_text("Token reader: read")
        expect(page.locator("li.card").first).to_be_visible()
        expect(prompt).to_have_count(0)

        other = browser.new_context()
        try:
            fresh = console.watch(other.new_page())
            fresh.goto(secured.url + "/")
            expect(fresh.get_by_role("heading", name="This server needs an API token")
                   ).to_be_visible()
        finally:
            other.close()

    def test_forgetting_the_token_asks_for_another(
        self, secured: ServerProcess, page: Page,
    ) -> None:
        signed_in(page, "reader").goto(secured.url + "/")
        expect(page.get_by_test_id("who")).to_have_text("Token reader: read")
        page.get_by_role("button", name="Forget token").click()
        expect(page.get_by_text("Enter another token.")).to_be_visible()
        page.get_by_role("textbox", name="API token").fill(TOKENS["admin"])
        page.get_by_role("button", name="Use token").click()
        expect(page.get_by_test_id("who")).to_have_text("Token admin: read, run, admin")


class TestWhatATokenMayDo:
    def test_a_read_only_token_sees_everything_but_no_button_that_changes_anything(
        self, secured: ServerProcess, page: Page,
    ) -> None:
        signed_in(page, "reader").goto(secured.url + "/#/definitions/document-approval")
        expect(page.get_by_role("heading", name="Document approval", level=1)).to_be_visible()
        expect(page.get_by_role("link", name="memo-1")).to_be_visible()
        expect(page.get_by_test_id("read-only")).to_have_text(
            "Your token can read only. To start an instance, a token needs the run scope.")
        expect(page.get_by_role("button", name="Start")).to_have_count(0)
        assert accessibility_problems(page) == []

        page.get_by_role("link", name="memo-1").click()
        expect(page.get_by_test_id("current-state")).to_have_text("Draft")
        expect(page.get_by_text("live: live")).to_be_visible()
        expect(page.get_by_test_id("available-actions")).to_have_text(
            "Available in this state: Submit for review.")
        expect(page.get_by_test_id("read-only")).to_contain_text("Your token can read only.")
        expect(page.locator("button[data-action]")).to_have_count(0)
        expect(page.get_by_role("button", name="Submit for review")).to_have_count(0)
        assert accessibility_problems(page) == []

        page.goto(secured.url + "/#/definitions/leads-copy")
        expect(page.get_by_test_id("read-only")).to_be_visible()
        expect(page.get_by_role("link", name="Edit in the builder")).to_have_count(0)
        page.goto(secured.url + "/#/builder")
        expect(page.get_by_role("heading", name="New pipeline", level=1)).to_be_visible()
        expect(page.get_by_test_id("read-only")).to_have_text(
            "Your token can read only. To save definitions, a token needs the admin scope.")
        expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)

    def test_a_run_token_starts_and_fires_but_does_not_save_definitions(
        self, secured: ServerProcess, page: Page,
    ) -> None:
        signed_in(page, "runner").goto(secured.url + "/#/definitions/document-approval")
        expect(page.get_by_role("button", name="Start")).to_be_visible()
        expect(page.get_by_test_id("read-only")).to_have_count(0)
        page.goto(secured.url + "/#/instances/memo-1")
        page.get_by_role("button", name="Submit for review").click()
        expect(page.get_by_test_id("current-state")).to_have_text("In review")
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        page.goto(secured.url + "/#/builder")
        expect(page.get_by_test_id("read-only")).to_have_text(
            "Your token cannot save definitions: that needs the admin scope.")
        expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)

    def test_an_admin_token_sees_every_control(
        self, secured: ServerProcess, page: Page,
    ) -> None:
        signed_in(page, "admin").goto(secured.url + "/#/definitions/leads-copy")
        expect(page.get_by_role("button", name="Start")).to_be_visible()
        page.get_by_role("link", name="Edit in the builder").click()
        expect(page.get_by_test_id("pipeline").locator("li.step").first).to_be_visible()
        expect(page.get_by_role("button", name="Save as a new version")).to_be_visible()
        expect(page.get_by_test_id("read-only")).to_have_count(0)
