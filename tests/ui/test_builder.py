"""Building a pipeline in the browser: drag, set parameters, check, save, run, read."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import DEFINITIONS, ROOT
from tests.http_api import HttpApi
from tests.ui.conftest import accessibility_problems, screenshot, start_form_settled
from workflow_engine.testing import SandboxProcess, ServerProcess, running_server

pytestmark = pytest.mark.slow


def drag(page: Page, source: Locator, target: Locator, *, placed: Locator | None = None,
         ) -> None:
    """Drag as a hand does: press, move in steps, and release once SortableJS has placed
    the block in the target (it looks where the mouse is every 50 ms, so a release
    sooner than that would drop it nowhere). The target is a list to drop at the end of,
    or, with ``placed`` (where the placeholder must be before the release), a step of
    the pipeline to drop onto the upper part of."""
    start, end = source.bounding_box(), target.bounding_box()
    assert start is not None
    assert end is not None
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(start["x"] + 30, start["y"] + 12, steps=4)
    y = end["y"] + end["height"] - 6 if placed is None else end["y"] + end["height"] / 4
    page.mouse.move(end["x"] + end["width"] / 2, y, steps=12)
    expect(placed if placed is not None else target.locator(":scope > .sortable-ghost")
           ).to_have_count(1)
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


def test_an_http_request_step_is_built_from_its_schema_and_runs_against_an_api(
    page: Page, tmp_path: Path, http_api: HttpApi,
) -> None:
    """The builder's form for http_request, made from its schema: the URL, the method, a
    header naming a secret and an extraction; the pipeline passes the check, is saved with
    those params and runs against the tests' own API."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "leads.csv").write_bytes((ROOT / "data" / "leads.csv").read_bytes())
    env = {"HTTP_ALLOWED_NETWORKS": "127.0.0.1/32", "HTTP_SECRETS": '{"API_TOKEN": "t0k"}'}
    with running_server(tmp_path / "wf.db", definitions=DEFINITIONS, data_dir=tmp_path,
                        env=env) as server:
        page.set_viewport_size({"width": 1400, "height": 1600})
        page.goto(server.url + "/#/builder")
        page.get_by_label("Id", exact=True).fill("called")
        page.get_by_label("Name", exact=True).fill("Companies called")
        for block in ("Read CSV", "HTTP request"):  # the palette's buttons, not a drag
            settled(page)
            page.get_by_role("button", name=f"Add {block}", exact=True).click()
        page.get_by_role("button", name="Edit 1. Read CSV").click()
        page.get_by_label("File", exact=True).fill("leads.csv")
        page.get_by_role("button", name="Edit 2. HTTP request").click()
        page.get_by_label("Url", exact=True).fill(f"{http_api.url}/companies/{{company}}")
        page.get_by_label("Method", exact=True).select_option("GET")
        page.get_by_label("Rate Per Minute", exact=True).fill("6000")
        headers = page.locator("fieldset.map", has_text="Headers")
        headers.get_by_role("button", name="Add to headers").click()
        headers.get_by_label("Name 1").fill("Authorization")
        headers.get_by_label("Value of Authorization").fill("Bearer {secret.API_TOKEN}")
        extract = page.locator("fieldset.map", has_text="Extract")
        extract.get_by_role("button", name="Add to extract").click()
        extract.get_by_label("Name 1").fill("employees")
        extract.get_by_label("Value of employees").fill("employees")
        expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
        assert accessibility_problems(page) == []
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page).to_have_url(f"{server.url}/#/definitions/called")
        stored = httpx.get(f"{server.url}/api/definitions/called").json()
        params = next(s["block"]["params"] for s in stored["states"]
                      if s["block"] and s["block"]["type"] == "http_request")
        assert params == {"url": f"{http_api.url}/companies/{{company}}", "method": "GET",
                          "rate_per_minute": 6000,
                          "headers": {"Authorization": "Bearer {secret.API_TOKEN}"},
                          "extract": {"employees": "employees"}}

        page.get_by_label("Instance id (optional)").fill("called-1")
        page.get_by_role("button", name="Start").click()
        expect(page).to_have_url(f"{server.url}/#/instances/called-1")
        page.get_by_role("button", name="Run").click()
        expect(page.locator(".badge")).to_have_text("completed", timeout=60_000)
        expect(page.get_by_test_id("table").locator("[role=columnheader]",
                                                    has_text="employees")).to_have_count(1)
    assert {s.headers["authorization"] for s in http_api.requests()} == {"Bearer t0k"}
    assert len(http_api.requests()) == 15


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


def saved_files(definition: dict[str, Any]) -> list[str]:
    """The files a pipeline's save_csv steps write, in the order they run."""
    return [s["block"]["params"]["file_name"] for s in definition["states"]
            if s.get("block") and s["block"]["type"] == "save_csv"]


def test_steps_reordered_by_drag_and_by_the_arrow_buttons_are_saved_in_their_new_order(
    page: Page, server: ServerProcess,
) -> None:
    page.set_viewport_size({"width": 1400, "height": 1600})  # palette and pipeline in view
    page.goto(server.url + "/#/builder")
    page.get_by_label("Id", exact=True).fill("reordered")
    page.get_by_role("button", name="Add Read CSV").click()
    page.get_by_label("File", exact=True).fill("leads.csv")
    for name in ("first.csv", "second.csv", "third.csv"):
        page.get_by_role("button", name="Add Save CSV").click()
        page.get_by_label("File Name", exact=True).fill(name)
    settled(page)
    shown = page.get_by_test_id("definition-json")

    def expect_order(*names: str) -> None:
        """The JSON view names the saved files in this order (waiting for it to)."""
        expect(shown).to_have_text(re.compile(".*".join(
            f'"file_name": "{re.escape(n)}"' for n in names), re.S))
        assert saved_files(json.loads(shown.text_content() or "{}")) == list(names)

    expect_order("first.csv", "second.csv", "third.csv")
    pipeline = page.get_by_test_id("pipeline")
    steps = pipeline.locator("li.step")
    # The last save dragged by its grip onto the first save: it takes that place.
    drag(page, steps.nth(3).locator(".grip"), steps.nth(1),
         placed=pipeline.locator(":scope > li.step:nth-child(2).sortable-ghost"))
    expect(steps).to_have_count(4)
    expect_order("third.csv", "first.csv", "second.csv")
    settled(page)

    page.get_by_role("button", name="Move 2. Save CSV down").click()
    expect_order("first.csv", "third.csv", "second.csv")
    page.get_by_role("button", name="Move 4. Save CSV up").click()
    expect_order("first.csv", "second.csv", "third.csv")
    page.get_by_role("button", name="Move 2. Save CSV down").click()
    expect_order("second.csv", "first.csv", "third.csv")
    assert [steps.nth(i).get_attribute("data-type") for i in range(4)] == [
        "read_csv", "save_csv", "save_csv", "save_csv"]
    expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
    assert accessibility_problems(page) == []

    with page.expect_request("**/api/definitions") as posting:
        page.get_by_role("button", name="Save", exact=True).click()
    assert saved_files(posting.value.post_data_json) == ["second.csv", "first.csv", "third.csv"]
    expect(page).to_have_url(f"{server.url}/#/definitions/reordered")
    start_form_settled(page)
    stored = httpx.get(f"{server.url}/api/definitions/reordered").json()
    assert saved_files(stored) == ["second.csv", "first.csv", "third.csv"]


def test_a_stored_pipeline_edited_in_the_builder_is_saved_as_a_new_version_beside_the_old(
    page: Page, server: ServerProcess,
) -> None:
    before = httpx.get(f"{server.url}/api/definitions/leads-copy").json()
    versions = httpx.get(f"{server.url}/api/definitions/leads-copy/versions").json()["versions"]
    page.goto(server.url + "/#/definitions/leads-copy")
    page.get_by_role("link", name="Edit in the builder").click()
    expect(page).to_have_url(f"{server.url}/#/builder/leads-copy")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Edit {before['name']}")
    expect(page.get_by_label("Id", exact=True)).to_have_value("leads-copy")
    last = [s for s in before["states"] if s.get("block")][-1]
    page.get_by_role("button", name=f"Edit 2. {last['name']}").click()
    field = page.get_by_label("File Name", exact=True)
    expect(field).to_have_value(last["block"]["params"]["file_name"])
    field.fill("leads-copy-edited.csv")
    expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
    assert accessibility_problems(page) == []
    page.get_by_role("button", name="Save as a new version").click()
    expect(page).to_have_url(f"{server.url}/#/definitions/leads-copy")
    expect(page.get_by_text(f"leads-copy · version {before['version'] + 1}")).to_be_visible()
    start_form_settled(page)

    after = httpx.get(f"{server.url}/api/definitions/leads-copy/versions").json()["versions"]
    assert after == [*versions, before["version"] + 1]
    old = httpx.get(f"{server.url}/api/definitions/leads-copy",
                    params={"version": before["version"]}).json()
    assert old == before
    new = httpx.get(f"{server.url}/api/definitions/leads-copy").json()
    assert new["version"] == before["version"] + 1
    assert saved_files(new) == ["leads-copy-edited.csv"]
    assert [s["block"] for s in new["states"]][:-1] == [s["block"] for s in before["states"]][:-1]


def test_a_fork_is_not_offered_by_the_builder_nor_its_pipeline_edited_there(
    page: Page, server: ServerProcess,
) -> None:
    """The builder writes a single line of steps: a fork, whose branches are blocks inside
    a block, is not in its palette, and a pipeline with one links to no builder."""
    page.goto(server.url + "/#/builder")
    palette = page.get_by_test_id("palette")
    expect(palette.locator("li[data-type=find_phone]")).to_have_count(1)
    expect(palette.locator("li[data-type=branches]")).to_have_count(0)
    page.goto(server.url + "/#/definitions/leads-contacts")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Find emails and phone numbers side by side")
    expect(page.locator("g.node[data-state=contacts]")).to_contain_text("Emails (find_email)")
    expect(page.get_by_role("link", name="Edit in the builder")).to_have_count(0)
    page.goto(server.url + "/#/definitions/leads-phones")
    expect(page.get_by_role("link", name="Edit in the builder")).to_have_count(1)
    page.close()  # before the server stops under its requests


def test_enrich_company_with_people_as_rows_is_built_and_find_email_is_offered_their_columns(
    page: Page, enriching: tuple[ServerProcess, SandboxProcess], tmp_path: Path,
) -> None:
    """The people params render from the block's schema; once people are rows, the
    person columns are offered to the block after it and pass the check."""
    server, _ = enriching
    (tmp_path / "files" / "companies.csv").write_bytes((ROOT / "data" / "companies.csv")
                                                       .read_bytes())
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(server.url + "/#/builder")
    page.get_by_label("Id", exact=True).fill("built-people")
    for block in ("Read CSV", "Enrich company", "Find email"):
        page.get_by_role("button", name=f"Add {block}").click()
    page.get_by_role("button", name="Edit 1. Read CSV").click()
    page.get_by_label("File", exact=True).fill("companies.csv")
    page.get_by_role("button", name="Edit 2. Enrich company").click()
    page.get_by_role("button", name="Add to struct").click()
    page.get_by_label("Name 1").fill("industry")
    page.get_by_label("Kind of value of industry").select_option(label="text")
    page.get_by_label("Value of industry (text)").fill("The company's industry")
    page.get_by_label("Find People", exact=True).check()
    page.get_by_label("Kind of people focus prompt").select_option(label="text")
    page.get_by_label("People Focus Prompt (text)").fill("Heads of sales")
    page.get_by_label("Kind of lead struct").select_option(label="object")
    page.get_by_role("button", name="Add to lead struct").click()
    page.get_by_label("Name 1").nth(1).fill("seniority")
    page.get_by_label("Kind of value of seniority").select_option(label="text")
    page.get_by_label("Value of seniority (text)").fill("How senior")
    page.get_by_label("People", exact=True).select_option("rows")
    expect(page.get_by_label("Person Prefix", exact=True)).to_have_attribute(
        "placeholder", "person")
    page.get_by_role("button", name="Edit 3. Find email").click()
    page.get_by_label("Output Column", exact=True).fill("person_email")
    page.get_by_label("Kind of columns").select_option(label="object")
    page.get_by_role("button", name="Add to columns").click()
    page.get_by_label("Name 1").fill("name")
    expect(page.locator(".params datalist option[value=person_name]")).to_have_count(1)
    page.get_by_label("Value of name").fill("person_name")
    expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{server.url}/#/definitions/built-people")
    start_form_settled(page)
    # How many people will be found is not known: nor are the emails' requests.
    expect(page.get_by_test_id("estimate")).to_contain_text(
        "The requests are not known before the run (enrich_company: 7 rows; find_email: "
        "rows not known)")

    stored = httpx.get(f"{server.url}/api/definitions/built-people").json()
    company = next(s["block"]["params"] for s in stored["states"]
                   if (s["block"] or {}).get("type") == "enrich_company")
    assert company == {"struct": {"industry": "The company's industry"}, "find_people": True,
                       "people_focus_prompt": "Heads of sales",
                       "lead_struct": {"seniority": "How senior"}, "people": "rows"}


def test_the_find_email_form_offers_bulk_and_its_batch_size(
    page: Page, server: ServerProcess,
) -> None:
    """The form is built from the block's JSON schema: bulk on and 100 leads a batch by
    default; what is set there is what is saved."""
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(server.url + "/#/builder")
    page.get_by_label("Id", exact=True).fill("built-emails")
    page.get_by_label("Name", exact=True).fill("Emails, built")
    for block in ("read_csv", "find_email"):
        drag_block(page, block)
    page.get_by_role("button", name="Edit 1. Read CSV").click()
    page.get_by_label("File", exact=True).fill("leads.csv")
    page.get_by_role("button", name="Edit 2. Find email").click()
    bulk = page.get_by_label("Bulk", exact=True)
    size = page.get_by_label("Batch Size", exact=True)
    expect(bulk).to_be_checked()
    expect(size).to_have_attribute("placeholder", "100")  # the default, shown, not sent
    size.fill("40")
    expect(page.get_by_role("status")).to_have_text("The pipeline passes the check.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{server.url}/#/definitions/built-emails")
    expect(page.get_by_text("built-emails · version 1")).to_be_visible()
    start_form_settled(page)
    stored = httpx.get(f"{server.url}/api/definitions/built-emails").json()
    params = next(s["block"]["params"] for s in stored["states"]
                  if s["block"] and s["block"]["type"] == "find_email")
    assert params["batch_size"] == 40
    assert params.get("bulk", True) is True
