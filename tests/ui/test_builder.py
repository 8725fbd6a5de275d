"""Building a pipeline in the browser: drag, set parameters, check, save, run, read."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.ui.conftest import accessibility_problems, screenshot
from workflow_engine.testing import SandboxProcess, ServerProcess

pytestmark = pytest.mark.slow


def drag(page: Page, source: Locator, target: Locator) -> None:
    """Drag as a hand does: press, move in steps, and release once SortableJS has placed
    the block in the target (it looks where the mouse is every 50 ms, so a release
    sooner than that would drop it nowhere)."""
    start, end = source.bounding_box(), target.bounding_box()
    assert start is not None
    assert end is not None
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(start["x"] + 30, start["y"] + 12, steps=4)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] - 6, steps=12)
    expect(target.locator(":scope > .sortable-ghost")).to_have_count(1)
    page.mouse.up()


def settled(page: Page) -> None:
    """Wait for the check of the last change (it may add problems to the steps, which
    moves what is under the mouse)."""
    expect(page.get_by_role("status")).not_to_have_text("Checking…")


def drag_block(page: Page, block: str) -> None:
    settled(page)
    before = page.get_by_test_id("pipeline").locator("li.step").count()
    drag(page, page.locator(f"[data-testid=palette] li[data-type={block}] .grip"),
         page.get_by_test_id("pipeline"))
    expect(page.get_by_test_id("pipeline").locator("li.step")).to_have_count(before + 1)


def test_the_filtered_take_home_pipeline_built_by_drag_and_drop_runs_against_the_sandbox(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess],
) -> None:
    server, sandbox = enriching
    page.set_viewport_size({"width": 1400, "height": 1600})  # palette and pipeline in view
    page.goto(server.url + "/#/builder")
    page.get_by_label("Id", exact=True).fill("built-ariglad")
    page.get_by_label("Name", exact=True).fill("Ariglad education, built")
    for block in ("read_csv", "filter", "enrich_lead", "save_csv"):
        drag_block(page, block)
    steps = page.get_by_test_id("pipeline").locator("li.step")
    expect(steps).to_have_count(4)
    assert [steps.nth(i).get_attribute("data-type") for i in range(4)] == [
        "read_csv", "filter", "enrich_lead", "save_csv"]

    page.get_by_role("button", name="Edit 1. Read CSV").click()
    page.get_by_label("File", exact=True).fill("leads.csv")
    page.get_by_role("button", name="Edit 2. Filter").click()
    page.get_by_role("button", name="Add conditions").click()
    # The column is offered from the file's header, known once the read is set.
    expect(page.locator(".params datalist option[value=company]")).to_have_count(1)
    page.get_by_label("Column", exact=True).fill("company")
    page.get_by_label("Operator", exact=True).select_option("contains")
    page.get_by_label("Value", exact=True).fill("Ariglad Inc")
    page.get_by_role("button", name="Edit 3. Enrich lead").click()
    page.get_by_role("button", name="Add to struct").click()
    page.get_by_label("Name 1").fill("education")
    page.get_by_label("Kind of value of education").select_option(label="text")
    page.get_by_label("Value of education (text)").fill("Educational background")
    page.get_by_role("button", name="Edit 4. Save CSV").click()
    page.get_by_label("File Name", exact=True).fill("built-ariglad.csv")
    expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
    assert accessibility_problems(page) == []
    screenshot(page, "builder")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{server.url}/#/definitions/built-ariglad")

    stored = httpx.get(f"{server.url}/api/definitions/built-ariglad").json()
    assert [s["block"]["type"] for s in stored["states"] if s["block"]] == [
        "read_csv", "filter", "enrich_lead", "save_csv"]
    assert stored["states"][2]["block"]["params"]["conditions"] == [
        {"column": "company", "operator": "contains", "value": "Ariglad Inc"}]

    page.get_by_label("Instance id (optional)").fill("built-1")
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(f"{server.url}/#/instances/built-1")
    # The sandbox holds every answer, so the run stays in its enrichment, progress shown,
    # until the test lets the answers go.
    sandbox.configure(hold_results=True)
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_test_id("progress")).to_contain_text("enrich_lead: 0 of 5 rows",
                                                            timeout=30_000)
    sandbox.configure(hold_results=False)
    expect(page.locator(".badge")).to_have_text("completed", timeout=60_000)
    steps_shown = page.get_by_role("group", name="The table after step").get_by_role("button")
    expect(steps_shown).to_have_count(4)

    history = httpx.get(f"{server.url}/api/instances/built-1/history").json()["items"]
    made = [e["seq"] for e in history if e["type"] == "block_succeeded"]
    for index, (seq, rows, columns) in enumerate(zip(made, (15, 5, 5, 5), (5, 5, 10, 10),
                                                     strict=True)):
        steps_shown.nth(index).click()
        expect(page.get_by_test_id("table-caption")).to_have_text(
            re.compile(rf"^After #{seq} .* · {rows} rows · {columns} columns$"))
        expect(page.get_by_test_id("table").get_by_role("row")).to_have_count(rows + 1)
    expect(page.get_by_test_id("table").locator("[role=columnheader]",
                                                has_text="education")).to_have_count(1)
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download CSV").click()
    got = Path(downloaded.value.path()).read_text()
    served = httpx.get(f"{server.url}/api/instances/built-1/data?format=csv").text
    assert list(csv.reader(io.StringIO(got))) == list(csv.reader(io.StringIO(served)))
    assert sandbox.stats()["billable_submissions"] == 5
    screenshot(page, "run")


def test_a_filter_on_a_column_the_file_lacks_is_flagged_on_its_block_and_cannot_be_saved(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess],
) -> None:
    server, _ = enriching
    page.goto(server.url + "/#/builder")
    page.get_by_label("Id", exact=True).fill("broken")
    page.get_by_role("button", name="Add Read CSV").click()
    page.get_by_label("File", exact=True).fill("leads.csv")
    page.get_by_role("button", name="Add Filter").click()
    page.get_by_role("button", name="Add conditions").click()
    page.get_by_label("Column", exact=True).fill("shoe_size")
    page.get_by_label("Operator", exact=True).select_option("is_not_empty")
    filter_step = page.get_by_test_id("pipeline").locator("li.step").nth(1)
    expect(filter_step).to_have_class(re.compile(r"\bhas-problems\b"))
    expect(filter_step.get_by_test_id("step-problems")).to_contain_text("shoe_size")
    expect(page.get_by_test_id("pipeline").locator("li.step").first).not_to_have_class(
        re.compile(r"\bhas-problems\b"))
    expect(page.get_by_role("status")).to_have_text("1 problem(s) to fix before saving.")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
