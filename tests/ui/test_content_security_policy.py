"""The UI's Content-Security-Policy: on the page and its files, strict, and enforced.

Chromium reports every violation as a console error, and every browser test fails on a
console error it did not cause: the whole of tests/ui shows the pages work under it."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT
from tests.ui.conftest import Console
from workflow_engine.testing import ServerProcess

pytestmark = pytest.mark.slow

INDEX = ROOT / "src" / "workflow_engine" / "ui" / "static" / "index.html"


def directives(policy: str) -> dict[str, list[str]]:
    """A policy as its directives, each with its sources."""
    found = {}
    for directive in filter(None, (part.strip() for part in policy.split(";"))):
        name, *sources = directive.split()
        found[name] = sources
    return found


def import_map_hash() -> str:
    """The CSP source that allows the page's inline import map, computed from the page."""
    script = re.search(r'<script type="importmap">(.*?)</script>', INDEX.read_text(),
                       re.DOTALL)
    assert script is not None
    digest = hashlib.sha256(script.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def test_the_page_and_its_files_carry_a_strict_policy(server: ServerProcess) -> None:
    for path in ("/", "/ui/app.js", "/ui/style.css", "/ui/vendor/elk.bundled.js",
                 "/ui/nothing.js"):
        response = httpx.get(server.url + path)
        assert directives(response.headers["Content-Security-Policy"]) == {
            "default-src": ["'self'"],
            "script-src": ["'self'", import_map_hash()],
            "style-src": ["'self'"],
            "img-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "object-src": ["'none'"],
            "base-uri": ["'none'"],
            "frame-ancestors": ["'none'"],
            "form-action": ["'self'"],
        }, path


def test_the_api_and_swagger_are_not_under_the_uis_policy(server: ServerProcess) -> None:
    """Swagger UI's page starts itself with an inline script: it has a page of its own."""
    for path in ("/docs", "/api/definitions", "/openapi.json"):
        assert "Content-Security-Policy" not in httpx.get(server.url + path).headers, path


def test_the_browser_enforces_it(page: Page, server: ServerProcess, console: Console) -> None:
    """A script the page did not ship is refused and reported; the page goes on."""
    console.expect("Content Security Policy")
    page.goto(server.url + "/")
    expect(page.locator("li.card").first).to_be_visible()
    violation = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
          (event) => resolve(event.effectiveDirective), { once: true });
        const script = document.createElement("script");
        script.textContent = "window.injected = true;";
        document.body.append(script);
      })""")
    assert violation == "script-src-elem"
    assert page.evaluate("window.injected") is None
    expect(page.locator("li.card").first).to_be_visible()


def test_swagger_still_works(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Workflow Engine")
    expect(page.locator(".opblock-summary-path", has_text="/api/whoami")).to_be_visible()
