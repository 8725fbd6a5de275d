"""The browser UI in a real Chromium (Debian's, driven by Playwright), against a real
server on loopback started with the shipped definitions."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.conftest import DEFINITIONS, ROOT
from workflow_engine.testing import SandboxProcess, ServerProcess, running_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a container, with nothing reaching out to the network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Screenshots land here; `make screenshots` points it at docs/screenshots.
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: run scripts/system-packages (Debian's "
                    "chromium package) or set CHROMIUM.")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the shipped definitions, with the sample leads file to read."""
    (tmp_path / "files").mkdir()
    shutil.copy(ROOT / "data" / "leads.csv", tmp_path / "files" / "leads.csv")
    with running_server(tmp_path / "wf.db", definitions=DEFINITIONS, data_dir=tmp_path) as found:
        yield found


@pytest.fixture
def enriching(tmp_path: Path) -> Iterator[tuple[ServerProcess, SandboxProcess]]:
    """A server whose enrichment goes to a sandbox of the test's own, quick to answer."""
    sandbox = SandboxProcess(rate=6000, latency=0.3)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "leads.csv").write_bytes((ROOT / "data" / "leads.csv").read_bytes())
    env = {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_BASE_URL": sandbox.url,
           "SIXTYFOUR_RATE_PER_MINUTE": "6000"}
    try:
        with running_server(tmp_path / "wf.db", definitions=DEFINITIONS, data_dir=tmp_path,
                            env=env) as server:
            yield server, sandbox
    finally:
        sandbox.stop()


class Console:
    """What pages printed to their console as errors, and errors they threw."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        return page

    def expect(self, text: str) -> None:
        """An error the test causes on purpose (Chromium logs every refused request)."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser: Browser, console: Console) -> Iterator[BrowserContext]:
    """A fresh browser profile; every page opened in it must log no error."""
    found = browser.new_context(viewport={"width": 1280, "height": 900})
    found.on("page", console.watch)
    yield found
    found.close()
    assert console.unexpected() == [], console.errors


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def accessibility_problems(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is."""
    results = Axe().run(page)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def screenshot(page: Page, name: str) -> None:
    """A full-page picture for the docs, when screenshots are asked for."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def tab_to(page: Page, target: Locator, *, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (Shift+Tab) until ``target`` has the focus, as a keyboard user would."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press(key)
    pytest.fail(f"{limit} presses of {key} never reached {target}")


def start_form_settled(page: Page) -> None:
    """Wait until a definition page's start form has its files and its estimate (so no
    request of the page is still out when the test's server stops)."""
    expect(page.locator("form.start-form")).to_have_attribute("data-settled", "true")
