"""The Sixtyfour blocks in pipelines through the real app, against the sandbox."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import DEFINITIONS, ROOT, BuildApp, make_settings
from tests.sixtyfour.conftest import Sandbox
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.sandbox import simulate_people, simulate_phone


@pytest.fixture
def client(
    tmp_path: Path, sandbox: Sandbox, database_url: str, build_app: BuildApp
) -> Iterator[FlaskClient]:
    (tmp_path / "files").mkdir()
    shutil.copy(ROOT / "data" / "leads.csv", tmp_path / "files" / "leads.csv")
    app = build_app(make_settings(tmp_path, database_url=database_url,
                                   sixtyfour_api_key="sandbox-key",
                                   sixtyfour_base_url=sandbox.url,
                                   sixtyfour_rate_per_minute=6000))
    yield app.test_client()
    app.extensions[RUNNER].close()
    app.extensions[EXTENSION].store.dispose()


def pipeline(*blocks: dict[str, Any], definition_id: str = "p") -> dict[str, Any]:
    states: list[dict[str, Any]] = [
        {"id": "ready", "name": "Ready", "is_initial": True},
        {"id": "read", "name": "Read",
         "block": {"type": "read_csv", "params": {"file": "leads.csv"}}}]
    actions: list[dict[str, Any]] = [
        {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"}]
    previous = "read"
    for index, block in enumerate(blocks):
        states.append({"id": f"s{index}", "name": f"S{index}", "block": block})
        actions.append({"id": f"to{index}", "name": "go", "from_states": [previous],
                        "to_state": f"s{index}", "trigger": "auto"})
        previous = f"s{index}"
    states.append({"id": "done", "name": "Done", "is_final": True})
    actions.append({"id": "finish", "name": "Finish", "from_states": [previous],
                    "to_state": "done", "trigger": "auto"})
    return {"id": definition_id, "name": "P", "states": states, "actions": actions}


def run(client: FlaskClient, document: dict[str, Any]) -> dict[str, Any]:
    created = client.post("/api/definitions", json=document)
    assert created.status_code == 201, created.json
    started = client.post("/api/instances", json={"definition_id": document["id"]}).json
    result: dict[str, Any] = client.post(
        f"/api/instances/{started['id']}/actions/run?wait=30").json
    return result


def rows(client: FlaskClient, instance: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/api/instances/{instance['id']}/data?limit=100").json["rows"]
    return found


EDUCATION = {"type": "enrich_lead", "params": {"struct": {
    "education": "Educational background including undergraduate university",
    "is_american_education": {"description": "Studied in the US?", "type": "bool"}}}}


class TestEnrichLead:
    def test_writes_struct_fields_cast_to_their_types(self, client: FlaskClient) -> None:
        done = run(client, pipeline(EDUCATION))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert len(table) == 15
        assert {type(r["is_american_education"]) for r in table} == {bool}
        assert table[0]["education"] == "Simulated education for Maya Okafor"
        assert table[0]["enrich_notes"].startswith("SIMULATED")
        assert isinstance(table[0]["enrich_confidence_score"], float)
        assert all(r["enrich_error"] is None for r in table)

    def test_a_filter_on_an_enriched_column_passes_the_static_check(
        self, client: FlaskClient
    ) -> None:
        """The issue's pipeline: keep Ariglad, enrich, keep American education, save."""
        document = pipeline(
            {"type": "filter", "params": {"conditions": [
                {"column": "company", "operator": "contains", "value": "Ariglad Inc"}]}},
            EDUCATION,
            {"type": "filter", "params": {"conditions": [
                {"column": "is_american_education", "operator": "is_true"}]}},
            {"type": "save_csv", "params": {"file_name": "american.csv"}})
        done = run(client, document)
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert table
        assert all(r["is_american_education"] is True for r in table)
        assert all("Ariglad Inc" in r["company"] for r in table)

    def test_a_refused_key_fails_the_block_with_one_error(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        sandbox.config.update({"api_key": "rotated"})
        done = run(client, pipeline(EDUCATION))
        assert (done["status"], done["current_state"]) == ("failed", "s0")
        assert done["error"]["code"] == "upstream_unauthorized"
        assert sandbox.stats()["billable_submissions"] == 0

    @pytest.mark.parametrize(("on_row_error", "status", "kept"), [
        ("keep", "completed", 15), ("drop", "completed", 0), ("fail", "failed", None)])
    def test_row_errors(self, client: FlaskClient, sandbox: Sandbox, on_row_error: str,
                        status: str, kept: int | None) -> None:
        sandbox.config.update({"job_failure_rate": 1.0})
        block = {"type": "enrich_lead", "params": {
            "struct": {"x": "y"}, "on_row_error": on_row_error, "max_error_ratio": 1.0}}
        done = run(client, pipeline(block))
        assert done["status"] == status
        if kept is not None:
            table = rows(client, done) if kept else []
            assert len(table) == kept
            assert all(r["enrich_error"].startswith("upstream_job_failed") for r in table)

    def test_too_many_row_errors_fail_the_block(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        sandbox.config.update({"job_failure_rate": 1.0})
        done = run(client, pipeline({"type": "enrich_lead", "params": {"struct": {"x": "y"}}}))
        assert done["status"] == "failed"
        assert "max_error_ratio 0.5" in done["error"]["message"]


    def test_an_unknown_outcome_is_a_row_error_a_retry_keeps_until_resubmit_is_chosen(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        """The answer to one submission is lost on the way: its row fails the block with
        upstream_outcome_unknown; a retry answers the same without sending anything; a run
        with on_unknown_outcome: resubmit sends that one row again and reuses the rest."""
        sandbox.config.update({"hold_submission": 1})
        block = {"type": "enrich_lead", "params": {"struct": {"x": "y"}, "on_row_error": "fail"}}
        document = pipeline(block)
        assert client.post("/api/definitions", json=document).status_code == 201
        instance = client.post("/api/instances", json={"definition_id": "p"}).json["id"]
        outcome: list[dict[str, Any]] = []
        running = threading.Thread(target=lambda: outcome.append(
            client.post(f"/api/instances/{instance}/actions/run?wait=30").json))
        running.start()
        sandbox.settled(held=1)
        sandbox.release(answer=False)
        running.join()
        failed = outcome[0]
        assert (failed["status"], failed["current_state"]) == ("failed", "s0")
        assert "upstream_outcome_unknown" in failed["error"]["message"]

        retried = client.post(f"/api/instances/{instance}/retry?wait=30").json
        assert retried["status"] == "failed"
        assert "upstream_outcome_unknown" in retried["error"]["message"]
        assert sandbox.stats()["billable_submissions"] == 15

        block["params"]["on_unknown_outcome"] = "resubmit"
        done = run(client, pipeline(block, definition_id="p-resubmit"))
        assert done["status"] == "completed"
        assert all(r["enrich_error"] is None for r in rows(client, done))
        stats = sandbox.stats()
        assert (stats["billable_submissions"], list(stats["duplicates"].values())) == (16, [2])

    def test_on_unknown_outcome_is_validated(self, client: FlaskClient) -> None:
        block = {"type": "enrich_lead", "params": {"struct": {"x": "y"},
                                                   "on_unknown_outcome": "pay"}}
        created = client.post("/api/definitions", json=pipeline(block))
        assert created.status_code == 422
        assert "on_unknown_outcome" in created.get_data(as_text=True)


class TestFindEmail:
    def test_fills_missing_addresses_and_keeps_existing_ones(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        done = run(client, pipeline({"type": "find_email", "params": {}}))
        table = rows(client, done)
        existing = [r for r in table if r["email_status"] == "EXISTING"]
        looked_up = [r for r in table if r["email_status"] != "EXISTING"]
        assert len(existing) == 6
        assert sandbox.stats()["billable_submissions"] == len(looked_up) == 9
        assert all(r["email"] for r in looked_up if r["email_status"] != "NOT_FOUND")
        assert {r["email_status"] for r in looked_up} <= {"OK", "UNKNOWN", "RISKY", "NOT_FOUND"}


def write_leads(path: Path, n: int) -> None:
    """``n`` leads without an address, in the sample's shape."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "company", "email", "company_location", "linkedin"])
        for i in range(n):
            writer.writerow([f"Person {i}", f"Company {i % 7}", "", "Austin, TX", ""])


def all_rows(client: FlaskClient, instance: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/api/instances/{instance['id']}/data?limit=1000").json["rows"]
    return found


def reading(file: str, *blocks: dict[str, Any], definition_id: str = "p") -> dict[str, Any]:
    document = pipeline(*blocks, definition_id=definition_id)
    document["states"][1]["block"]["params"]["file"] = file
    return document


EMAIL_COLUMNS = ["name", "email", "email_status", "enrich_error"]


class TestFindEmailInBulk:
    def test_a_few_hundred_rows_take_one_request_per_hundred_and_match_per_row(
        self, client: FlaskClient, sandbox: Sandbox, tmp_path: Path, build_app: BuildApp
    ) -> None:
        """Bulk and per-row mode (on a database of its own, so that nothing is reused)
        write the same columns for the same rows; bulk sends ceil(n / 100) requests."""
        write_leads(tmp_path / "files" / "many.csv", 250)
        done = run(client, reading("many.csv", {"type": "find_email", "params": {}}))
        assert done["status"] == "completed"
        assert sandbox.stats()["requests"]["submissions"] == 3
        bulk = all_rows(client, done)

        other = tmp_path / "per-row"
        (other / "files").mkdir(parents=True)
        shutil.copy(tmp_path / "files" / "many.csv", other / "files" / "many.csv")
        per_row_app = build_app(make_settings(
            other, sixtyfour_api_key="sandbox-key", sixtyfour_base_url=sandbox.url,
            sixtyfour_rate_per_minute=6000))
        per_row_client = per_row_app.test_client()
        try:
            per_row_done = run(per_row_client, reading(
                "many.csv", {"type": "find_email", "params": {"bulk": False}}))
            per_row = all_rows(per_row_client, per_row_done)
        finally:
            per_row_app.extensions[RUNNER].close()
            per_row_app.extensions[EXTENSION].store.dispose()
        stats = sandbox.stats()
        assert stats["requests"]["submissions"] == 3 + 250
        assert stats["requests"]["bulk_submissions"] == 3
        assert len(bulk) == len(per_row) == 250
        assert [{c: r[c] for c in EMAIL_COLUMNS} for r in bulk] == [
            {c: r[c] for c in EMAIL_COLUMNS} for r in per_row]
        assert {r["email_status"] for r in bulk} <= {"OK", "UNKNOWN", "RISKY", "NOT_FOUND"}

    def test_missing_leads_are_row_errors_and_a_retry_sends_only_them(
        self, client: FlaskClient, sandbox: Sandbox, tmp_path: Path
    ) -> None:
        write_leads(tmp_path / "files" / "many.csv", 150)
        sandbox.config.update({"bulk_drop_rate": 0.1})
        block = {"type": "find_email", "params": {"on_row_error": "fail"}}
        assert client.post("/api/definitions", json=reading("many.csv", block)).status_code \
            == 201
        instance = client.post("/api/instances", json={"definition_id": "p"}).json["id"]
        failed = client.post(f"/api/instances/{instance}/actions/run?wait=30").json
        assert (failed["status"], failed["current_state"]) == ("failed", "s0")
        assert "upstream_lead_missing" in failed["error"]["message"]
        missing = 150 - sandbox.stats()["billable_submissions"]
        assert 0 < missing < 30

        sandbox.config.update({"bulk_drop_rate": 0.0})
        retried = client.post(f"/api/instances/{instance}/retry?wait=30").json
        assert retried["status"] == "completed"
        assert all(r["enrich_error"] is None for r in all_rows(client, retried))
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == 2 + 1
        assert (stats["billable_submissions"], stats["duplicates"]) == (150, {})

    def test_personal_mode_asks_per_row(self, client: FlaskClient, sandbox: Sandbox) -> None:
        done = run(client, pipeline({"type": "find_email", "params": {"mode": "PERSONAL"}}))
        assert done["status"] == "completed"
        stats = sandbox.stats()
        assert stats["requests"]["submissions"] == stats["billable_submissions"] == 9
        assert "bulk_submissions" not in stats["requests"]

    @pytest.mark.parametrize(("params", "requests"), [
        ({}, 2), ({"batch_size": 5}, 6), ({"bulk": False}, 30), ({"mode": "PERSONAL"}, 30)])
    def test_the_estimate_counts_one_request_per_batch(
        self, client: FlaskClient, params: dict[str, Any], requests: int
    ) -> None:
        """15 rows (6 with an address: at most), a submission and a poll each."""
        document = pipeline({"type": "find_email", "params": params})
        assert client.post("/api/definitions", json=document).status_code == 201
        found = client.post("/api/definitions/p/estimate", json={}).json
        assert (found["steps"][0]["rows"], found["requests"]) == (15, requests)

    @pytest.mark.parametrize(("batch_size", "code"), [
        (0, "greater_than_equal"), (101, "less_than_equal"), ("ten", "wrong_type")])
    def test_a_batch_size_out_of_range_is_a_definition_error(
        self, client: FlaskClient, batch_size: object, code: str
    ) -> None:
        created = client.post("/api/definitions", json=pipeline(
            {"type": "find_email", "params": {"batch_size": batch_size}}))
        assert created.status_code == 422
        assert created.content_type == "application/problem+json"
        assert [(e["path"], e["code"]) for e in created.json["errors"]] == [
            ("states[2].block.params.batch_size", code)]


def expected_phone(name: str) -> dict[str, Any]:
    """The columns a row gets from the sandbox's answer for its name."""
    found = simulate_phone(name)
    if isinstance(found, str):
        found = [{"number": found, "region": None}] if found else []
    return {"phone": found[0]["number"] if found else None,
            "phone_region": found[0]["region"] if found else None,
            "phones": [f["number"] for f in found] or None,
            "phone_status": "FOUND" if found else "NOT_FOUND", "enrich_error": None}


PHONE_COLUMNS = ["phone", "phone_region", "phones", "phone_status", "enrich_error"]


class TestFindPhone:
    def test_each_answer_shape_lands_in_the_phone_columns(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        """A number as text (no region), a list of {number, region} (the first in phone,
        all in phones), and "" (found nothing: empty columns, not an error)."""
        done = run(client, pipeline({"type": "find_phone", "params": {}}))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert len(table) == 15
        for row in table:
            assert {c: row[c] for c in PHONE_COLUMNS} == expected_phone(row["name"]), row
        answers = [simulate_phone(r["name"]) for r in table]
        assert "" in answers  # every shape is among the sample's answers
        assert any(isinstance(a, str) and a for a in answers)
        assert any(isinstance(a, list) for a in answers)
        assert any(len(r["phones"] or []) > 1 for r in table)
        assert sandbox.stats()["billable_submissions"] == 15

    def test_a_second_run_pays_for_nothing(self, client: FlaskClient, sandbox: Sandbox) -> None:
        first = run(client, pipeline({"type": "find_phone", "params": {}}))
        second = run(client, pipeline({"type": "find_phone", "params": {}}, definition_id="q"))
        assert rows(client, first) == rows(client, second)
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["duplicates"]) == (15, {})

    def test_rows_with_a_number_are_not_looked_up(
        self, client: FlaskClient, sandbox: Sandbox, tmp_path: Path
    ) -> None:
        (tmp_path / "files" / "leads.csv").write_text(
            "name,company,phone\nMaya Okafor,Ariglad Inc,+1 555 0100\n"
            "Aiko Tanaka,Ariglad Inc,\n")
        done = run(client, pipeline({"type": "find_phone", "params": {}}))
        kept, found = rows(client, done)
        assert (kept["phone"], kept["phone_status"], kept["phones"]) == (
            "+1 555 0100", "EXISTING", None)
        assert {c: found[c] for c in PHONE_COLUMNS} == expected_phone("Aiko Tanaka")
        assert sandbox.stats()["billable_submissions"] == 1

    def test_a_failing_job_is_a_row_error(self, client: FlaskClient, sandbox: Sandbox) -> None:
        sandbox.config.update({"job_failure_rate": 1.0})
        done = run(client, pipeline({"type": "find_phone", "params": {"max_error_ratio": 1.0}}))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert len(table) == 15
        for row in table:
            assert row["enrich_error"].startswith("upstream_job_failed"), row
            assert (row["phone"], row["phones"], row["phone_status"]) == (None, None, None)

    def test_the_check_knows_the_columns_it_writes(self, client: FlaskClient) -> None:
        document = pipeline(
            {"type": "find_phone", "params": {"output_column": "mobile"}},
            {"type": "filter", "params": {"conditions": [
                {"column": "mobile_region", "operator": "equals", "value": "GB"}]}},
            {"type": "filter", "params": {"conditions": [
                {"column": "phone", "operator": "is_not_empty"}]}})
        checked = client.post("/api/definitions/validate", json=document).json
        assert checked["states"]["s0"]["columns_out"]["columns"][-5:] == [
            "mobile", "mobile_region", "mobiles", "mobile_status", "enrich_error"]
        assert [(e["path"], e["code"]) for e in checked["errors"]] == [
            ("states[4].block.params", "unknown_column")]

    def test_the_shipped_pipeline_saves_the_numbers(self, client: FlaskClient) -> None:
        document = json.loads((DEFINITIONS / "leads-phones.json").read_text())
        done = run(client, document)
        assert (done["status"], done["current_state"]) == ("completed", "saved"), done["error"]
        with client.get("/api/outputs/leads-phones.csv") as response:
            saved = list(csv.DictReader(io.StringIO(response.text)))
        assert len(saved) == 15
        for row in saved:
            expected = expected_phone(row["name"])
            # A leading + would start a formula in a spreadsheet: save_csv quotes it.
            number = f"'{expected['phone']}" if expected["phone"] else ""
            assert (row["phone"], row["phone_status"]) == (number, expected["phone_status"])
            assert json.loads(row["phones"] or "null") == expected["phones"]


class TestSideBySide:
    def test_the_shipped_fork_finds_emails_and_phones_at_once_and_joins_them(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        """leads-contacts: find_email and find_phone run as two branches of one state on
        the same rows; each row of the saved file has both answers, nothing sent twice."""
        document = json.loads((DEFINITIONS / "leads-contacts.json").read_text())
        done = run(client, document)
        assert (done["status"], done["current_state"]) == ("completed", "saved"), done["error"]
        with client.get("/api/outputs/leads-contacts.csv") as response:
            saved = list(csv.DictReader(io.StringIO(response.text)))
        with (ROOT / "data" / "leads.csv").open(newline="") as source:
            given = list(csv.DictReader(source))
        assert [row["name"] for row in saved] == [row["name"] for row in given]
        for row, lead in zip(saved, given, strict=True):
            expected = expected_phone(row["name"])
            assert row["phone_status"] == expected["phone_status"]
            assert row["email_status"] == ("EXISTING" if lead["email"] else row["email_status"])
            assert row["email_error"] == row["phone_error"] == ""
        assert list(saved[0])[:len(given[0])] == list(given[0])
        looked_up = sum(1 for lead in given if not lead["email"])
        assert sandbox.stats()["billable_submissions"] == looked_up + len(given)
        history = client.get(f"/api/instances/{done['id']}/history?limit=100").json["items"]
        joined = next(e for e in history if e["type"] == "block_succeeded"
                      and e["to_state"] == "contacts")
        assert {b: s["status"] for b, s in joined["data"]["branches"].items()} == {
            "emails": "succeeded", "phones": "succeeded"}


    def test_a_running_fork_shows_each_branch_and_its_table_so_far(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        """While the answers are held, progress lists both branches and progress/data
        has both branches' columns; once they are let through, the run completes."""
        sandbox.config.update({"hold_results": True})
        document = json.loads((DEFINITIONS / "leads-contacts.json").read_text())
        assert client.post("/api/definitions", json=document).status_code == 201
        started = client.post("/api/instances", json={"definition_id": "leads-contacts"}).json
        path = f"/api/instances/{started['id']}"
        assert client.post(f"{path}/actions/run").status_code == 202
        try:
            # 9 leads without an email, 15 for a phone: every request has left.
            progress = sent(client, path, requests=9 + 15)
            assert [(b["id"], b["status"], b["rows_total"]) for b in progress["branches"]] == [
                ("emails", "running", 9), ("phones", "running", 15)]
            so_far = client.get(f"{path}/progress/data?limit=100")
            assert so_far.status_code == 200, so_far.json
            columns = so_far.json["columns"]
            assert {"email_status", "email_error", "phone", "phone_status",
                    "phone_error"} <= {c["name"] if isinstance(c, dict) else c for c in columns}
            assert len(so_far.json["rows"]) == 15
        finally:
            sandbox.config.update({"hold_results": False})
        done = client.get(f"{path}?wait=30").json
        assert done["status"] == "completed", done["error"]


def sent(client: FlaskClient, path: str, *, requests: int) -> dict[str, Any]:
    """The running fork's progress once ``requests`` requests have left (the condition is
    polled: the block reports it only through its progress)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress: dict[str, Any] = client.get(path).json["progress"]
        if progress and progress.get("branches") and progress["rows_sent"] == requests:
            return progress
        time.sleep(0.05)
    raise AssertionError(f"the fork never sent every row: {progress}")


class TestEnrichCompany:
    def test_companies_and_their_people(self, client: FlaskClient) -> None:
        done = run(client, pipeline({"type": "enrich_company", "params": {
            "struct": {"industry": "What the company does"}, "find_people": True}}))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert table[0]["industry"] == "Simulated industry for Ariglad Inc"
        people = table[0]["enrich_people"]
        assert isinstance(people, list)
        assert [p["name"] for p in people] == [p["name"] for p in simulate_people("Ariglad Inc")]


class TestJsonValues:
    """References are an object in JSON answers and JSON text in a CSV, through every
    block after the enrichment."""

    DOCUMENT = pipeline(
        EDUCATION,
        {"type": "filter", "params": {"conditions": [
            {"column": "enrich_references", "operator": "is_not_empty"},
            {"column": "enrich_references", "operator": "contains",
             "value": "sandbox.invalid"}]}},
        {"type": "dedupe", "params": {"columns": ["enrich_references"]}},
        {"type": "select_columns", "params": {"columns": ["name", "enrich_references"],
                                              "rename": {"enrich_references": "sources"}}},
        {"type": "save_csv", "params": {"file_name": "sources.csv"}})

    @staticmethod
    def assert_references(value: Any) -> None:
        assert isinstance(value, dict)
        assert [url.startswith("https://sandbox.invalid/") for url in value] == [True]
        assert list(value.values()) == ["simulated source"]

    def test_json_answers_carry_objects(self, client: FlaskClient) -> None:
        done = run(client, self.DOCUMENT)
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert len(table) == 15
        for row in table:
            self.assert_references(row["sources"])
        history = client.get(f"/api/instances/{done['id']}/history?limit=100").json["items"]
        enriched = next(e["seq"] for e in history
                        if e["type"] == "block_succeeded" and e["to_state"] == "s0")
        after = client.get(f"/api/instances/{done['id']}/history/{enriched}/data").json
        self.assert_references(after["rows"][0]["enrich_references"])

    def test_csv_downloads_carry_json_text(self, client: FlaskClient) -> None:
        done = run(client, self.DOCUMENT)
        with client.get("/api/outputs/sources.csv") as response:
            saved = response.text
        downloaded = client.get(f"/api/instances/{done['id']}/data?format=csv").text
        for text in (saved, downloaded):
            header, first, *_ = csv.reader(io.StringIO(text))
            assert header == ["name", "sources"]
            self.assert_references(json.loads(first[1]))


def test_the_catalog_lists_the_enrichment_blocks(client: FlaskClient) -> None:
    items = {b["type"]: b for b in client.get("/api/blocks").json["items"]}
    assert {"enrich_lead", "enrich_company", "find_email", "find_phone"} <= set(items)
    for kind in ("enrich_lead", "enrich_company", "find_email", "find_phone"):
        choice = items[kind]["params_schema"]["properties"]["on_unknown_outcome"]
        assert (choice["enum"], choice["default"]) == (["error", "resubmit"], "error")
    email = items["find_email"]["params_schema"]["properties"]
    assert (email["bulk"]["default"], email["batch_size"]["default"]) == (True, 100)
    assert (email["batch_size"]["minimum"], email["batch_size"]["maximum"]) == (1, 100)
    phone = items["find_phone"]
    assert phone["needs_table"] is True
    assert set(phone["params_schema"]["properties"]) == {
        "columns", "on_row_error", "on_unknown_outcome", "max_error_ratio", "prefix",
        "output_column", "skip_existing"}
    assert phone["params_schema"]["properties"]["output_column"]["default"] == "phone"


@pytest.mark.parametrize("kind", ["find_email", "find_phone", "enrich_lead"])
def test_a_mapped_column_the_table_lacks_is_flagged_by_the_check(
    client: FlaskClient, kind: str
) -> None:
    params: dict[str, Any] = {"columns": {"name": "full_nam", "company": "company"}}
    if kind == "enrich_lead":
        params["struct"] = {"x": "y"}
    checked = client.post("/api/definitions/validate",
                          json=pipeline({"type": kind, "params": params})).json
    assert [(e["path"], e["code"]) for e in checked["errors"]] == [
        ("states[2].block.params", "unknown_column")]
    assert "'full_nam'" in checked["errors"][0]["message"]


def test_answers_never_overwrite_input_columns(client: FlaskClient) -> None:
    """A struct field named like an input column goes to <prefix>_<field>."""
    done = run(client, pipeline({"type": "enrich_lead", "params": {
        "struct": {"company": "The current employer", "email": "A work address"}}}))
    table = rows(client, done)
    assert table[0]["company"] == "Ariglad Inc"
    assert table[0]["enrich_company"] == "Simulated company for Maya Okafor"
    assert "enrich_email" in table[0]


def test_missing_values_are_empty_whatever_their_kind() -> None:
    import pandas as pd

    from workflow_engine.blocks.enrichment import _empty

    assert all(_empty(v) for v in (None, float("nan"), pd.NA, "", "  ", [], {}))
    assert not any(_empty(v) for v in ("x", 0, False, [1]))
