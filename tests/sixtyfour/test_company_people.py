"""enrich_company with people: the people found as a list column or as rows of their own,
the blocks after it working on them, through the real app against the sandbox."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import DEFINITIONS, ROOT, BuildApp, make_settings
from tests.sixtyfour.conftest import Sandbox
from tests.sixtyfour.test_blocks import rows, run
from workflow_engine.blocks import BLOCKS
from workflow_engine.blocks.companies import EnrichCompany, EnrichCompanyParams
from workflow_engine.sandbox import simulate_people
from workflow_engine.storage import LocalArea

COMPANIES = list(csv.DictReader(io.StringIO((ROOT / "data" / "companies.csv").read_text())))
HEADER = ["company", "website", "company_location"]
PERSON = ["person_name", "person_email", "person_title", "person_phone", "person_linkedin",
          "person_score"]
STRUCT = {"industry": "What the company does"}


@pytest.fixture
def client(
    tmp_path: Path, sandbox: Sandbox, database_url: str, build_app: BuildApp
) -> Iterator[FlaskClient]:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(ROOT / "data" / "companies.csv", files / "companies.csv")
    # A row with nothing to describe its company (only a note): its request is never sent.
    lines = (ROOT / "data" / "companies.csv").read_text().splitlines()
    (files / "with-blank.csv").write_text("\n".join(
        [f"{lines[0]},note", *(f"{line}," for line in lines[1:]), ",,,nobody"]) + "\n")
    app = build_app(make_settings(tmp_path, database_url=database_url,
                                   sixtyfour_api_key="sandbox-key",
                                   sixtyfour_base_url=sandbox.url,
                                   sixtyfour_rate_per_minute=6000))
    return app.test_client()


def pipeline(*blocks: dict[str, Any], file: str = "companies.csv",
             definition_id: str = "p") -> dict[str, Any]:
    """read_csv of ``file``, then the blocks, each in a state of its own."""
    states: list[dict[str, Any]] = [
        {"id": "ready", "name": "Ready", "is_initial": True},
        {"id": "read", "name": "Read", "block": {"type": "read_csv", "params": {"file": file}}}]
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


def company(**params: Any) -> dict[str, Any]:
    return {"type": "enrich_company",
            "params": {"struct": STRUCT, "find_people": True, **params}}


def person_columns(person: dict[str, Any] | None) -> dict[str, Any]:
    """The person columns a row gets for a person the sandbox made up (or none)."""
    if person is None:
        return dict.fromkeys(PERSON)
    return {f"person_{name}": (float(person[name]) if name == "score" else person[name] or None)
            for name in ("name", "email", "title", "phone", "linkedin", "score")}


def checked(client: FlaskClient, document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = client.post("/api/definitions/validate", json=document).json
    return found


class TestPeopleAsAColumn:
    def test_each_company_keeps_its_row_and_its_people_in_a_list(
        self, client: FlaskClient
    ) -> None:
        done = run(client, pipeline(company()))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        assert [r["company"] for r in table] == [c["company"] for c in COMPANIES]
        for row in table:
            expected = simulate_people(row["company"])
            found = row["enrich_people"]
            assert [p["name"] for p in found or []] == [p["name"] for p in expected]
            # The score comes as text and is a number here; an empty email is no email.
            assert [p["score"] for p in found or []] == [float(p["score"]) for p in expected]
            assert [p["email"] for p in found or []] == [p["email"] or None for p in expected]
            assert not {f"person_{c}" for c in ("name", "email")} & set(row)


class TestPeopleAsRows:
    def test_one_row_per_person_with_the_companys_columns_repeated(
        self, client: FlaskClient
    ) -> None:
        done = run(client, pipeline(company(people="rows")))
        assert done["status"] == "completed", done["error"]
        table = client.get(f"/api/instances/{done['id']}/data?limit=100").json
        expected = [(c, p) for c in COMPANIES for p in simulate_people(c["company"]) or [None]]
        assert table["total_rows"] == len(expected) == sum(
            max(1, len(simulate_people(c["company"]))) for c in COMPANIES)
        assert table["columns"] == [*HEADER, "industry", "enrich_confidence_score",
                                    "enrich_notes", "enrich_references", *PERSON,
                                    "enrich_error"]
        for row, (source, person) in zip(table["rows"], expected, strict=True):
            assert {c: row[c] for c in HEADER} == source
            assert row["industry"] == f"Simulated industry for {source['company']}"
            assert {c: row[c] for c in PERSON} == person_columns(person)
            assert row["enrich_error"] is None
        # A company without people keeps its one row, its person columns empty.
        assert any(person is None for _, person in expected)

    def test_the_lead_struct_fields_are_researched_for_each_person(
        self, client: FlaskClient
    ) -> None:
        lead_struct = {"seniority": "How senior", "years": {"description": "Years in the "
                                                            "role", "type": "int"}}
        done = run(client, pipeline(company(people="rows", person_prefix="lead",
                                            lead_struct=lead_struct)))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        people = [p for c in COMPANIES for p in simulate_people(c["company"], lead_struct)]
        found = [r for r in table if r["lead_name"] is not None]
        assert [(r["lead_name"], r["lead_seniority"], r["lead_years"]) for r in found] == [
            (p["name"], p["seniority"], p["years"]) for p in people]
        assert all(isinstance(r["lead_years"], int) for r in found)

    def test_progress_counts_companies_while_the_table_grows(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        """One company's submission is held: the table so far has every answered
        company's people and one empty row for each other; progress counts companies."""
        sandbox.config.update({"hold_submission": len(COMPANIES)})
        assert client.post("/api/definitions",
                           json=pipeline(company(people="rows"))).status_code == 201
        instance = client.post("/api/instances", json={"definition_id": "p"}).json["id"]
        outcome: list[dict[str, Any]] = []
        running = threading.Thread(target=lambda: outcome.append(
            client.post(f"/api/instances/{instance}/actions/run?wait=30").json))
        running.start()
        try:
            held = sandbox.settled(held=1)["held"][0]["body"]["target_company"]["name"]
            progress = client.get(f"/api/instances/{instance}").json["progress"]
            so_far = client.get(f"/api/instances/{instance}/progress/data?limit=100").json
        finally:
            sandbox.release()
            running.join()
        assert progress["rows_total"] == len(COMPANIES)
        assert progress["rows_done"] < len(COMPANIES)
        groups: dict[str, list[str | None]] = {}
        for row in so_far["rows"]:
            groups.setdefault(row["company"], []).append(row["person_name"])
        assert list(groups) == [c["company"] for c in COMPANIES]
        assert groups[held] == [None]
        for name, found in groups.items():
            assert found in ([None], [p["name"] for p in simulate_people(name)] or [None])
        assert so_far["total_rows"] == len(so_far["rows"])

        done = outcome[0]
        assert done["status"] == "completed", done["error"]
        events = client.get(f"/api/instances/{instance}/history").json["items"]
        ended = next(e for e in events if e["type"] == "block_succeeded"
                     and e["data"]["block"] == "enrich_company")["data"]
        people = sum(max(1, len(simulate_people(c["company"]))) for c in COMPANIES)
        assert (ended["rows_in"], ended["rows_out"]) == (len(COMPANIES), people)

    def test_a_companys_row_error_is_on_its_one_row(self, client: FlaskClient) -> None:
        done = run(client, pipeline(company(people="rows"), file="with-blank.csv"))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        errors = [r for r in table if r["enrich_error"] is not None]
        assert len(errors) == 1
        assert (errors[0]["company"], errors[0]["note"]) == (None, "nobody")
        assert len(table) == 1 + sum(max(1, len(simulate_people(c["company"])))
                                     for c in COMPANIES)
        assert errors[0]["enrich_error"].startswith("no_input:")
        assert {c: errors[0][c] for c in PERSON} == dict.fromkeys(PERSON)

    def test_find_email_after_it_looks_up_the_people(
        self, client: FlaskClient, sandbox: Sandbox
    ) -> None:
        find = {"type": "find_email", "params": {
            "output_column": "person_email", "prefix": "email",
            "columns": {"name": "person_name", "company": "company", "domain": "website"}}}
        keep = {"type": "filter", "params": {"conditions": [
            {"column": "person_name", "operator": "is_not_empty"}]}}
        done = run(client, pipeline(company(people="rows"), keep, find))
        assert done["status"] == "completed", done["error"]
        table = rows(client, done)
        people = [p for c in COMPANIES for p in simulate_people(c["company"])]
        assert [r["person_name"] for r in table] == [p["name"] for p in people]
        given_email = [r for r in table if r["person_email_status"] == "EXISTING"]
        assert [r["person_email"] for r in given_email] == [p["email"] for p in people
                                                            if p["email"]]
        looked_up = [r for r in table if r["person_email_status"] != "EXISTING"]
        assert looked_up
        assert sandbox.stats()["billable_submissions"] == len(COMPANIES) + len(looked_up)
        for row in looked_up:
            if row["person_email_status"] != "NOT_FOUND":
                local = row["person_name"].lower().replace(" ", ".")
                assert row["person_email"].startswith(local[0])


class TestShippedDefinition:
    def test_companies_people_saves_the_people_with_their_emails(
        self, client: FlaskClient
    ) -> None:
        document = json.loads((DEFINITIONS / "companies-people.json").read_text())
        done = run(client, document)
        assert (done["status"], done["current_state"]) == ("completed", "saved"), done["error"]
        with client.get("/api/outputs/companies-people.csv") as response:
            saved = list(csv.DictReader(io.StringIO(response.text)))
        people = [(c, p) for c in COMPANIES for p in simulate_people(
            c["company"], {"seniority": "x"})]
        assert [(r["company"], r["person_name"]) for r in saved] == [
            (c["company"], p["name"]) for c, p in people]
        assert all(r["person_seniority"] for r in saved)
        assert all(r["person_email_status"] for r in saved)
        assert all(r["person_email"] for r in saved if r["person_email_status"] in (
            "EXISTING", "OK", "UNKNOWN", "RISKY"))


FIND: dict[str, Any] = {"type": "find_email", "params": {
    "output_column": "person_email", "prefix": "email",
    "columns": {"name": "person_name", "company": "company"}}}


class TestStaticCheck:

    def test_the_blocks_after_see_the_person_columns(self, client: FlaskClient) -> None:
        keep = {"type": "filter", "params": {"conditions": [
            {"column": "person_score", "operator": "gt", "value": 5}]}}
        found = checked(client, pipeline(company(people="rows"), keep, FIND))
        assert (found["valid"], found["errors"]) == (True, [])
        assert set(PERSON) <= set(found["states"]["s0"]["columns_out"]["columns"])

    @pytest.mark.parametrize("people", ["column", "rows"])
    def test_a_column_the_people_do_not_make_is_refused(
        self, client: FlaskClient, people: str
    ) -> None:
        find = {**FIND, "params": {**FIND["params"],
                                        "columns": {"name": "person_nickname"}}}
        response = client.post("/api/definitions", json=pipeline(company(people=people),
                                                                   find))
        assert response.status_code == 422
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
            ("states[3].block.params", "unknown_column")]
        assert "'person_nickname'" in response.json["errors"][0]["message"]

    @pytest.mark.parametrize(("param", "value"), [
        ("people_focus_prompt", "Founders"), ("lead_struct", {"seniority": "How senior"}),
        ("people", "rows")])
    def test_people_params_without_find_people_are_refused_at_their_path(
        self, client: FlaskClient, param: str, value: Any
    ) -> None:
        block = {"type": "enrich_company", "params": {"struct": STRUCT, param: value}}
        response = client.post("/api/definitions", json=pipeline(block))
        assert (response.status_code, response.json["code"]) == (422, "definition_invalid")
        assert response.content_type == "application/problem+json"
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
            (f"states[2].block.params.{param}", "needs_find_people")]

    def test_a_lead_struct_field_is_checked_as_a_struct_field_is(
        self, client: FlaskClient
    ) -> None:
        response = client.post("/api/definitions", json=pipeline(company(
            lead_struct={"2nd": "x", "ok": {"description": "y", "type": "complex"}})))
        assert response.status_code == 422
        paths = {e["path"] for e in response.json["errors"]}
        assert "states[2].block.params.lead_struct.2nd.[key]" in paths
        assert any(p.startswith("states[2].block.params.lead_struct.ok") for p in paths)

    def test_a_fork_branch_cannot_make_people_rows(self, client: FlaskClient) -> None:
        fork = {"type": "branches", "params": {"branches": [
            {"id": "people", "block": company(people="rows")},
            {"id": "plain", "block": {"type": "compute", "params": {
                "columns": {"shout": "upper(company)"}}}}]}}
        found = checked(client, pipeline(fork))
        assert [(e["path"], e["code"]) for e in found["errors"]] == [
            ("states[2].block.params.branches[0].block", "branch_changes_rows")]
        fork["params"]["branches"][0]["block"] = company()
        assert checked(client, pipeline(fork))["valid"]

    def test_the_estimate_says_the_rows_after_people_rows_are_not_known(
        self, client: FlaskClient
    ) -> None:
        document = pipeline(company(people="rows"), FIND)
        assert client.post("/api/definitions", json=document).status_code == 201
        found = client.post("/api/definitions/p/estimate", json={}).json
        assert [(s["block"], s["rows"]) for s in found["steps"]] == [
            ("enrich_company", len(COMPANIES)), ("find_email", None)]
        assert found["requests"] is None


class TestCatalog:
    def test_the_blocks_list_shows_the_people_params(self, client: FlaskClient) -> None:
        listed = {b["type"]: b for b in client.get("/api/blocks").json["items"]}
        schema = listed["enrich_company"]["params_schema"]["properties"]
        assert {"find_people", "people_focus_prompt", "lead_struct", "people",
                "person_prefix"} <= set(schema)
        assert schema["people"]["enum"] == ["column", "rows"]
        assert schema["people"]["default"] == "column"
        assert "person_name" in listed["enrich_company"]["produces"].replace(
            "<person_prefix>", "person")


# -- the block itself: what it sends, and how answers become rows ------------------------------

def block(**params: Any) -> EnrichCompany:
    built = BLOCKS["enrich_company"](EnrichCompanyParams.model_validate(
        {"struct": STRUCT, **params}))
    assert isinstance(built, EnrichCompany)
    return built


class TestBody:
    def test_people_params_are_sent_only_when_set(self) -> None:
        subject = {"name": "Ariglad Inc"}
        assert block().body(subject) == {"target_company": subject, "struct": STRUCT}
        assert block(find_people=True).body(subject) == {
            "target_company": subject, "struct": STRUCT, "find_people": True}
        lead_struct = {"years": {"description": "Years", "type": "int"}}
        assert block(find_people=True, people_focus_prompt="Founders",
                     lead_struct=lead_struct).body(subject) == {
            "target_company": subject, "struct": STRUCT, "find_people": True,
            "people_focus_prompt": "Founders", "lead_struct": lead_struct}

    def test_leads_as_json_text_are_read_as_the_list(self) -> None:
        leads = simulate_people("Kestrel Works")
        assert block(find_people=True).people_of(json.dumps(leads)) == block(
            find_people=True).people_of(leads)
        assert [p["score"] for p in block(find_people=True).people_of(json.dumps(leads))] == [
            float(p["score"]) for p in leads]
        assert block(find_people=True).people_of("not json") == []


class StoredAnswers:
    """What the enricher's store holds for each request (the seam ``partial`` reads)."""

    def __init__(self, answers: dict[int, dict[str, Any]]) -> None:
        self.answers = answers

    def stored_results(self, kind: str, bodies: list[dict[str, Any]]
                       ) -> dict[int, dict[str, Any]]:
        return self.answers


PEOPLE = st.lists(st.fixed_dictionaries({
    "name": st.text(min_size=1, max_size=8),
    "score": st.one_of(st.none(), st.just(""), st.integers(0, 10).map(str)),
}), max_size=4)


class TestExplodedRows:
    # No deadline: a shared machine's load is no property of the block.
    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.one_of(st.none(), PEOPLE), min_size=1, max_size=6))
    def test_rows_are_the_sum_of_people_each_with_its_companys_columns(
        self, found: list[list[dict[str, Any]] | None]
    ) -> None:
        """None: the company's answer is not in yet. A company keeps one row when it has
        no answer or no people; otherwise it has a row per person, in order (a blank
        value is no value)."""
        table = pd.DataFrame({"company": [f"C{i}" for i in range(len(found))],
                              "_people": ["mine"] * len(found)})
        answers = {i: {"structured_data": {"industry": "x", "leads": people}}
                   for i, people in enumerate(found) if people is not None}
        output = block(find_people=True, people="rows").partial(table, StoredAnswers(answers))
        assert len(output) == sum(max(1, len(people or [])) for people in found)
        expected = [(f"C{i}", person) for i, people in enumerate(found)
                    for person in (people or [None])]
        assert list(output["company"]) == [c for c, _ in expected]
        assert list(output["_people"]) == ["mine"] * len(expected)  # the input's, kept
        assert [None if pd.isna(n) else n for n in output["person_name"]] == [
            p["name"] if p and p["name"].strip() else None for _, p in expected]
        assert [None if pd.isna(s) else s for s in output["person_score"]] == [
            float(p["score"]) if p and p["score"] else None for _, p in expected]


class TestPersonColumns:
    def test_a_name_the_input_or_the_struct_has_is_prefixed(self) -> None:
        found = block(struct={"person_title": "A struct field"}, find_people=True,
                      people="rows", lead_struct={"name": "Their name", "years": "Years"}
                      ).columns_after(["company", "person_name"], LocalArea(ROOT / "data"))
        assert found is not None
        assert found[found.index("enrich_references") + 1:] == [
            "enrich_person_name", "person_email", "enrich_person_title", "person_phone",
            "person_linkedin", "person_score", "person_years", "enrich_error"]
