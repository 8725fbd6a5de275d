"""A step's table in the browser: sorted by the server when a header is clicked, and
read page by page as it scrolls, checked against the API's own pages."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import accessibility_problems, tab_to
from workflow_engine.testing import ServerProcess

pytestmark = pytest.mark.slow

ROWS = 1000  # five of the table's pages of 200
COMPANIES = ["Ariglad Inc", "Brightwell", "Corvid Labs", "Dunmore & Co", "Elm Street Works"]


@pytest.fixture
def many(server: ServerProcess, tmp_path: Path) -> tuple[ServerProcess, str]:
    """``server`` with an instance that read a CSV of ROWS leads and saved it: the server
    and the path of the saved step's table."""
    with (tmp_path / "files" / "many-leads.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "company", "email", "company_location", "linkedin"])
        for n in range(ROWS):
            company = COMPANIES[n * 7 % len(COMPANIES)]
            writer.writerow([f"Lead {n}", company,
                             "" if n % 3 == 0 else f"lead{n}@{company.split()[0].lower()}.example",
                             f"City {n % 13}", f"https://www.linkedin.com/in/lead-{n}-example"])
    httpx.post(f"{server.url}/api/definitions", json={
        "id": "many", "name": "Many leads", "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "reading", "name": "Reading", "block": {
                "type": "read_csv", "params": {"file": "many-leads.csv"}}},
            {"id": "saved", "name": "Saved", "is_final": True, "block": {
                "type": "save_csv", "params": {"file_name": "many-out.csv"}}}],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
            {"id": "save", "name": "Save", "trigger": "auto", "from_states": ["reading"],
             "to_state": "saved"}]}).raise_for_status()
    httpx.post(f"{server.url}/api/instances", json={
        "definition_id": "many", "id": "many-1"}).raise_for_status()
    fired = httpx.post(f"{server.url}/api/instances/many-1/actions/run",
                       params={"wait": 60}, timeout=90)
    fired.raise_for_status()
    assert fired.json()["status"] == "completed"
    history = httpx.get(f"{server.url}/api/instances/many-1/history").json()["items"]
    seq = [e["seq"] for e in history if e["type"] == "block_succeeded"][-1]
    return server, f"{server.url}/api/instances/many-1/history/{seq}/data"


def cell_text(value: Any) -> str:
    """A value as the table writes it in a cell."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def expect_row(page: Page, index: int, row: dict[str, Any], columns: list[str]) -> None:
    """Row ``index`` (0-based) of the table shows ``row``, after its number."""
    shown = page.get_by_test_id("table").locator(f"[role=row][aria-rowindex='{index + 2}']")
    expect(shown.get_by_role("cell")).to_have_text(
        [str(index + 1), *(cell_text(row[c]) for c in columns)])


def test_a_column_header_sorts_the_whole_table_as_the_api_does_then_descending(
    page: Page, many: tuple[ServerProcess, str],
) -> None:
    server, data = many
    first = httpx.get(data, params={"limit": 1}).json()
    page.goto(server.url + "/#/instances/many-1")
    expect(page.get_by_test_id("table-caption")).to_contain_text(
        f"{first['total_rows']} rows · {len(first['columns'])} columns")
    header = page.get_by_test_id("table").get_by_role("columnheader").filter(
        has=page.get_by_title("Sort by name"))
    expect(header).to_have_attribute("aria-sort", "none")
    for order, label in (("name", "ascending"), ("-name", "descending")):
        header.get_by_role("button").click()
        expect(header).to_have_attribute("aria-sort", label)
        answer = httpx.get(data, params={"sort": order, "limit": 5}).json()
        for index, row in enumerate(answer["rows"]):
            expect_row(page, index, row, answer["columns"])
    assert accessibility_problems(page) == []


def test_the_table_scrolled_to_its_end_from_the_keyboard_shows_the_last_row_of_the_api(
    page: Page, many: tuple[ServerProcess, str],
) -> None:
    server, data = many
    total = httpx.get(data, params={"limit": 1}).json()["total_rows"]
    assert total == ROWS
    last = httpx.get(data, params={"offset": total - 1, "limit": 1}).json()
    asked: list[str] = []
    page.on("request", lambda r: "/data?" in r.url and asked.append(r.url))
    page.goto(server.url + "/#/instances/many-1")
    expect(page.get_by_test_id("table-caption")).to_contain_text(f"{total} rows")
    scroller = page.get_by_role("rowgroup", name="Rows (scroll)")
    tab_to(page, scroller)
    page.keyboard.press("End")
    expect_row(page, total - 1, last["rows"][0], last["columns"])
    # Only the rows in view are drawn; the last rows came in a page of their own.
    assert scroller.get_by_role("row").count() < 100
    assert f"offset={(total - 1) // 200 * 200}&limit=200" in " ".join(asked)
    assert accessibility_problems(page) == []
