"""Starting a run in the browser: its input file, a trial on the first rows, what it will
ask of the upstream API before it starts, and its table filling in while it runs."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT
from tests.ui.conftest import accessibility_problems, screenshot
from workflow_engine.testing import SandboxProcess, ServerProcess

pytestmark = pytest.mark.slow


def column_texts(page: Page, column: str) -> list[str]:
    """The cells of one column of the table shown, top to bottom."""
    table = page.get_by_test_id("table")
    headers = table.locator("[role=columnheader]").all_inner_texts()
    position = next(n for n, text in enumerate(headers) if text.strip() == column)
    return [row.locator("[role=cell]").nth(position).inner_text()
            for row in table.locator(".grid-body [role=row]").all()]


def test_a_trial_on_an_uploaded_file_is_costed_first_and_its_table_fills_in_as_it_runs(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess],
) -> None:
    server, sandbox = enriching
    # The first two leads were enriched before: their answers are stored, never paid again.
    first = httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "leads-enriched", "id": "before",
        "inputs": {"reading": {"max_rows": 2}}}).json()
    httpx.post(f"{server.url}/api/instances/{first['id']}/actions/run",
               params={"wait": 50}, timeout=60).raise_for_status()
    assert sandbox.stats()["billable_submissions"] == 2

    page.goto(server.url + "/#/definitions/leads-enriched")
    estimate = page.get_by_test_id("estimate")
    shipped = httpx.post(f"{server.url}/api/definitions/leads-enriched/estimate",
                         json={}).json()
    expect(estimate).to_contain_text(f"This run sends {shipped['requests']} upstream requests")

    lines = (ROOT / "data" / "leads.csv").read_text().splitlines()
    upload = "\n".join([lines[0], *lines[1:4], *[f"New Person {n},Ariglad Inc,,,"
                                                  for n in range(3)]]) + "\n"
    page.get_by_label("Or upload a CSV").set_input_files(
        files=[{"name": "six.csv", "mimeType": "text/csv", "buffer": upload.encode()}])
    expect(page.get_by_label("Input file")).to_have_value("six.csv")
    expect(page.get_by_test_id("file-preview").locator("caption")).to_contain_text(
        "six.csv: 5 columns, 6 rows")
    expect(page.get_by_test_id("file-preview").locator("tbody tr")).to_have_count(5)
    expect(estimate).to_contain_text("This run sends 12 upstream requests")

    page.get_by_label("Trial run on the first rows only").check()
    page.get_by_label("Rows", exact=True).fill("4")
    expect(estimate).to_contain_text("This run sends 8 upstream requests")
    assert accessibility_problems(page) == []
    screenshot(page, "start")
    page.get_by_label("Instance id (optional)").fill("trial-1")
    page.get_by_role("button", name="Start trial").click()
    expect(page).to_have_url(f"{server.url}/#/instances/trial-1")
    started = httpx.get(f"{server.url}/api/instances/trial-1").json()
    assert started["inputs"] == {"reading": {"file": "six.csv", "max_rows": 4}}

    sandbox.configure(hold_results=True)
    try:
        page.get_by_role("button", name="Run").click()
        # Two answers were stored already; the other two are sent and held.
        expect(page.get_by_test_id("progress")).to_contain_text("enrich_lead: 2 of 4 rows",
                                                                timeout=30_000)
        expect(page.get_by_test_id("upstream")).to_contain_text("2 sent, awaiting answers",
                                                                timeout=30_000)
        expect(page.get_by_test_id("table-caption")).to_have_text(
            re.compile(r"^Running #\d+ enrich_lead .*answers so far · 4 rows"))
        so_far = httpx.get(f"{server.url}/api/instances/trial-1/progress/data").json()
        titles = [row["title"] or "" for row in so_far["rows"]]
        assert [bool(t) for t in titles] == [True, True, False, False]
        expect(page.get_by_test_id("table").locator(".grid-body [role=row]")).to_have_count(4)
        assert column_texts(page, "title") == titles
        assert accessibility_problems(page) == []
    finally:
        sandbox.configure(hold_results=False)
    expect(page.locator(".badge")).to_have_text("completed", timeout=60_000)
    expect(page.get_by_test_id("table-caption")).to_have_text(re.compile(r"^After #\d+ save_csv"))
    final = httpx.get(f"{server.url}/api/instances/trial-1/data").json()
    assert column_texts(page, "title") == [row["title"] for row in final["rows"]]
    assert all(row["title"] for row in final["rows"])
    assert sandbox.stats()["billable_submissions"] == 4
