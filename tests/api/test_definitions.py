"""Definitions over HTTP: create, version, check without saving, read, list, draw."""

from __future__ import annotations

import io
import itertools
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from tests.conftest import DEFINITIONS, approval
from workflow_engine.api import EXTENSION

PROBLEM = "application/problem+json"


class TestCreate:
    def test_created_with_warnings_and_location(self, client: FlaskClient) -> None:
        """201, version 1, warnings, and where to find it."""
        response = client.post("/api/definitions", json=approval())
        body = response.json
        assert response.status_code == 201
        assert response.headers["Location"] == "/api/definitions/approval?version=1"
        assert (body["id"], body["version"], len(body["states"])) == ("approval", 1, 5)
        assert {w["code"] for w in body["warnings"]} == {
            "action_into_disabled_state", "unreachable_state"}
        assert body["states"][0] == {"id": "draft", "name": "Draft", "is_initial": True,
                                     "is_final": False, "enabled": True, "description": "",
                                     "block": None, "on_error": None}

    def test_responses_use_snake_case_for_camel_case_input(self, client: FlaskClient) -> None:
        document = {"id": "c", "name": "C",
                    "states": [{"id": "a", "name": "A", "isInitial": True},
                               {"id": "b", "name": "B", "isFinal": True}],
                    "actions": [{"id": "go", "name": "Go", "fromStates": ["a"], "toState": "b"}]}
        body = client.post("/api/definitions", json=document).json
        assert body["actions"][0]["from_states"] == ["a"]
        assert body["actions"][0]["to_state"] == "b"

    def test_identical_repost_is_idempotent(self, client: FlaskClient) -> None:
        """The same content again: 200 and the same version."""
        client.post("/api/definitions", json=approval())
        again = client.post("/api/definitions", json=approval())
        assert (again.status_code, again.json["version"]) == (200, 1)

    def test_different_content_is_a_conflict_with_a_hint(self, client: FlaskClient) -> None:
        client.post("/api/definitions", json=approval())
        response = client.post("/api/definitions", json=approval(name="Changed"))
        assert response.status_code == 409
        assert response.json["code"] == "definition_exists"
        assert "PUT /api/definitions/approval" in response.json["detail"]
        assert client.get("/api/definitions/approval").json["name"] == "Approval"

    def test_invalid_definition_lists_every_problem(self, client: FlaskClient) -> None:
        document = approval()
        document["states"][1]["id"] = "draft"
        document["actions"][0]["to_state"] = "nowhere"
        response = client.post("/api/definitions", json=document)
        assert response.status_code == 422
        assert response.content_type == PROBLEM
        assert response.json["code"] == "definition_invalid"
        paths = {(e["path"], e["code"]) for e in response.json["errors"]}
        assert {("states[1].id", "duplicate_state_id"),
                ("actions[0].to_state", "unknown_state")} <= paths
        assert client.get("/api/definitions/approval").status_code == 404

    def test_strict_refuses_warnings(self, client: FlaskClient) -> None:
        response = client.post("/api/definitions?strict=true", json=approval())
        assert response.status_code == 422
        assert {e["code"] for e in response.json["errors"]} == {
            "action_into_disabled_state", "unreachable_state"}

    @pytest.mark.parametrize(
        ("data", "content_type", "status", "code"),
        [
            ("{bad", "application/json", 400, "malformed_json"),
            ('{"id": "x",', "application/json", 400, "malformed_json"),
            ("", "application/json", 400, "malformed_json"),
            (b"\xff\xfe{}", "application/json", 400, "malformed_json"),
            ("[" * 100_000 + "]" * 100_000, "application/json", 400, "malformed_json"),
            ("{}", "text/plain", 415, "unsupported_media_type"),
            ("id=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
            ("[]", "application/json", 422, "definition_invalid"),
            ("null", "application/json", 422, "definition_invalid"),
        ],
    )
    def test_unreadable_bodies(
        self, client: FlaskClient, data: Any, content_type: str, status: int, code: str
    ) -> None:
        """Each unreadable body gets its own clear problem, never a 500."""
        response = client.post("/api/definitions", data=data, content_type=content_type)
        assert (response.status_code, response.json["code"]) == (status, code)
        assert response.content_type == PROBLEM

    def test_body_over_one_mebibyte(self, client: FlaskClient) -> None:
        document = approval(description="x" * (1024 * 1024))
        response = client.post("/api/definitions", json=document)
        assert (response.status_code, response.json["code"]) == (413, "payload_too_large")

    def test_bad_strict_parameter(self, client: FlaskClient) -> None:
        response = client.post("/api/definitions?strict=maybe", json=approval())
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")


class TestVersions:
    def test_put_creates_the_next_version(self, client: FlaskClient) -> None:
        """PUT stores N+1; reads default to the latest; older versions stay readable."""
        client.post("/api/definitions", json=approval())
        response = client.put("/api/definitions/approval", json=approval(name="Approval 2"))
        assert (response.status_code, response.json["version"]) == (201, 2)
        assert client.get("/api/definitions/approval").json["name"] == "Approval 2"
        old = client.get("/api/definitions/approval?version=1")
        assert (old.json["version"], old.json["name"]) == (1, "Approval")
        assert client.get("/api/definitions/approval/versions").json == {
            "id": "approval", "versions": [1, 2]}

    def test_put_of_the_same_content_stores_nothing(self, client: FlaskClient) -> None:
        client.post("/api/definitions", json=approval())
        response = client.put("/api/definitions/approval", json=approval())
        assert (response.status_code, response.json["version"]) == (200, 1)

    def test_put_may_omit_the_id_but_not_contradict_it(self, client: FlaskClient) -> None:
        document = approval()
        del document["id"]
        assert client.put("/api/definitions/fresh", json=document).status_code == 201
        response = client.put("/api/definitions/other", json=approval())
        assert response.status_code == 422
        assert response.json["errors"][0]["code"] == "id_mismatch"

    def test_unknown_version(self, client: FlaskClient) -> None:
        client.post("/api/definitions", json=approval())
        response = client.get("/api/definitions/approval?version=7")
        assert (response.status_code, response.json["code"]) == (
            404, "definition_version_not_found")
        assert response.json["versions"] == [1]

    def test_unknown_definition(self, client: FlaskClient) -> None:
        response = client.get("/api/definitions/missing")
        assert (response.status_code, response.json["code"]) == (404, "definition_not_found")


class TestList:
    def test_pages_through_every_definition(self, client: FlaskClient) -> None:
        """Cursor pagination visits each definition once, in id order, at its latest version."""
        for index in range(7):
            client.post("/api/definitions", json=approval(id=f"d{index}"))
        client.put("/api/definitions/d3", json=approval(id="d3", name="v2"))
        seen, cursor = [], None
        while True:
            url = "/api/definitions?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(url).json
            seen += [(item["id"], item["version"]) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [(f"d{i}", 2 if i == 3 else 1) for i in range(7)]

    @pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "cursor=%%%",
                                       "cursor=eyJrIjoiaW5zdGFuY2VzIiwiYWZ0ZXIiOjF9",
                                       "unknown=1"])
    def test_bad_paging_parameters(self, client: FlaskClient, query: str) -> None:
        response = client.get(f"/api/definitions?{query}")
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")


class TestDiagram:
    def test_mermaid_text(self, client: FlaskClient) -> None:
        client.post("/api/definitions", json=approval())
        response = client.get("/api/definitions/approval/diagram")
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert response.text.startswith("stateDiagram-v2\n")
        assert "[*] --> s0" in response.text


def leads_pipeline(definition_id: str = "leads", *blocks: dict[str, Any]) -> dict[str, Any]:
    """ready -> reading leads.csv -> each block in turn -> done, every step automatic."""
    states: list[dict[str, Any]] = [
        {"id": "ready", "name": "Ready", "is_initial": True},
        {"id": "reading", "name": "Reading", "block": {"type": "read_csv",
                                                       "params": {"file": "leads.csv"}}},
    ]
    states += [{"id": f"step{i}", "name": f"Step {i}", "block": block}
               for i, block in enumerate(blocks)]
    states.append({"id": "done", "name": "Done", "is_final": True})
    ids = [state["id"] for state in states]
    actions = [{"id": f"to_{target}", "name": "Go", "from_states": [source],
                "to_state": target, "trigger": "manual" if source == "ready" else "auto"}
               for source, target in pairwise(ids)]
    return {"id": definition_id, "name": "Leads", "states": states, "actions": actions}


def keep(column: str) -> dict[str, Any]:
    return {"type": "filter", "params": {"conditions": [
        {"column": column, "operator": "is_not_empty"}]}}


HEADER = ["name", "company", "email", "company_location", "linkedin"]
NO_TABLE = {"columns": None, "no_table": True, "tables": []}


def known(columns: list[str]) -> dict[str, Any]:
    """What the check tells of a table with these columns on every path."""
    return {"columns": columns, "no_table": False, "tables": [columns]}


class TestCheck:
    def test_a_valid_pipeline_with_each_states_columns(self, client: FlaskClient) -> None:
        """200, valid, and the table each state gets and leaves: no table before the
        read, the file's header after it."""
        response = client.post("/api/definitions/validate",
                               json=leads_pipeline("leads", keep("company")))
        assert (response.status_code, response.content_type) == (200, "application/json")
        assert response.json == {
            "valid": True, "errors": [], "warnings": [],
            "states": {
                "ready": {"columns_in": NO_TABLE, "columns_out": NO_TABLE},
                "reading": {"columns_in": NO_TABLE, "columns_out": known(HEADER)},
                "step0": {"columns_in": known(HEADER), "columns_out": known(HEADER)},
                "done": {"columns_in": known(HEADER), "columns_out": known(HEADER)},
            },
        }

    def test_nothing_is_stored(self, client: FlaskClient) -> None:
        """A check stores nothing: the definition is still new to POST afterwards."""
        assert client.post("/api/definitions/validate", json=approval()).json["valid"]
        assert client.post("/api/definitions/approval/validate", json=approval()).json["valid"]
        assert client.get("/api/definitions/approval").status_code == 404
        assert client.get("/api/definitions").json["items"] == []
        assert client.get("/api/health").json["definitions"] == 0
        assert client.post("/api/definitions", json=approval()).status_code == 201

    def test_the_database_is_not_needed(
        self, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A check reads nothing stored: it answers while the database cannot."""
        store = client.application.extensions[EXTENSION].store
        monkeypatch.setattr(store, "engine", create_engine("sqlite:////nonexistent/dir/x.db"))
        assert client.get("/api/definitions").status_code == 503
        checked = client.post("/api/definitions/validate", json=leads_pipeline())
        assert (checked.status_code, checked.json["valid"]) == (200, True)

    def test_warnings_are_those_post_stores(self, client: FlaskClient) -> None:
        checked = client.post("/api/definitions/validate", json=approval()).json
        stored = client.post("/api/definitions", json=approval()).json
        assert checked["valid"]
        assert checked["warnings"] == stored["warnings"] != []

    def test_a_filter_on_a_missing_column_is_an_error_at_its_path(
        self, client: FlaskClient
    ) -> None:
        """The same problems as POST's 422, and the columns the filter could use."""
        document = leads_pipeline("leads", keep("country"))
        checked = client.post("/api/definitions/validate", json=document).json
        refused = client.post("/api/definitions", json=document)
        assert refused.status_code == 422
        assert not checked["valid"]
        assert checked["errors"] == refused.json["errors"]
        assert [(e["path"], e["code"]) for e in checked["errors"]] == [
            ("states[2].block.params", "unknown_column")]
        assert checked["states"]["step0"]["columns_in"]["columns"] == HEADER

    def test_an_enrichment_adds_its_struct_fields(self, client: FlaskClient) -> None:
        enrich = {"type": "enrich_lead", "params": {"prefix": "research", "struct": {
            "education": "Where they studied",
            "is_american_education": {"description": "In the US?", "type": "bool"}}}}
        document = leads_pipeline("leads", enrich, keep("is_american_education"))
        checked = client.post("/api/definitions/validate", json=document).json
        assert checked["valid"], checked["errors"]
        assert checked["states"]["step0"]["columns_out"]["columns"] == [
            *HEADER, "education", "is_american_education", "research_confidence_score",
            "research_notes", "research_references", "research_error"]
        assert checked["states"]["step1"]["columns_in"] == checked["states"]["step0"][
            "columns_out"]

    def test_a_file_that_is_not_there_gives_unknown_columns(self, client: FlaskClient) -> None:
        """Unknown (null) is not empty: a table will be there, its columns are not known."""
        document = leads_pipeline("later", keep("anything"))
        document["states"][1]["block"]["params"]["file"] = "later.csv"
        checked = client.post("/api/definitions/validate", json=document).json
        assert checked["valid"]
        unknown = {"columns": None, "no_table": False, "tables": [None]}
        assert checked["states"]["reading"]["columns_out"] == unknown
        assert checked["states"]["step0"]["columns_in"] == unknown

    def test_an_uploaded_file_gives_its_header(self, client: FlaskClient) -> None:
        upload = client.post("/api/files", data={
            "file": (io.BytesIO(b"lead,score\nAnn,3\n"), "scores.csv", "text/csv")})
        assert upload.status_code == 201
        document = leads_pipeline("scores", keep("score"))
        document["states"][1]["block"]["params"]["file"] = "scores.csv"
        checked = client.post("/api/definitions/validate", json=document).json
        assert checked["states"]["step0"]["columns_in"] == known(["lead", "score"])

    def test_paths_that_differ_give_each_possibility(self, client: FlaskClient) -> None:
        """Reached with and without a narrowing step: both tables, and what is certain."""
        narrow = {"type": "select_columns", "params": {"columns": ["name", "email"]}}
        document = leads_pipeline("paths", narrow, keep("email"))
        document["actions"].append({"id": "skip", "name": "Skip", "from_states": ["reading"],
                                    "to_state": "step1"})
        checked = client.post("/api/definitions/validate", json=document).json
        arriving = checked["states"]["step1"]["columns_in"]
        assert arriving["no_table"] is False
        assert sorted(arriving["tables"]) == sorted([["name", "email"], HEADER])
        assert sorted(arriving["columns"]) == ["email", "name"]

    def test_strict_reports_warnings_as_errors(self, client: FlaskClient) -> None:
        checked = client.post("/api/definitions/validate?strict=true", json=approval()).json
        refused = client.post("/api/definitions?strict=true", json=approval())
        assert checked["valid"] is False
        assert checked["warnings"] == []
        assert checked["errors"] == refused.json["errors"]

    def test_a_broken_graph_has_errors_and_no_tables(self, client: FlaskClient) -> None:
        document = approval()
        document["states"][1]["id"] = "draft"
        checked = client.post("/api/definitions/validate", json=document).json
        assert checked["valid"] is False
        assert ("states[1].id", "duplicate_state_id") in {
            (e["path"], e["code"]) for e in checked["errors"]}
        assert checked["states"] is None

    @pytest.mark.parametrize("data", ["[]", "null", '"approval"', "42"])
    def test_json_that_is_no_definition_is_invalid_not_unreadable(
        self, client: FlaskClient, data: str
    ) -> None:
        """What POST refuses as definition_invalid is a definition that is not valid."""
        response = client.post("/api/definitions/validate", data=data,
                               content_type="application/json")
        assert response.status_code == 200
        assert response.json == {
            "valid": False, "warnings": [], "states": None,
            "errors": client.post("/api/definitions", data=data,
                                  content_type="application/json").json["errors"]}

    @pytest.mark.parametrize("url", ["/api/definitions/validate",
                                     "/api/definitions/approval/validate"])
    @pytest.mark.parametrize(
        ("data", "content_type", "status", "code"),
        [
            ("{bad", "application/json", 400, "malformed_json"),
            ("", "application/json", 400, "malformed_json"),
            ('{"id": "a", "id": "b"}', "application/json", 400, "malformed_json"),
            ("{}", "text/plain", 415, "unsupported_media_type"),
        ],
    )
    def test_unreadable_requests_answer_as_post_does(
        self, client: FlaskClient, url: str, data: str, content_type: str, status: int,
        code: str,
    ) -> None:
        response = client.post(url, data=data, content_type=content_type)
        assert (response.status_code, response.json["code"]) == (status, code)
        assert response.content_type == PROBLEM

    def test_bad_parameters_and_oversized_bodies(self, client: FlaskClient) -> None:
        response = client.post("/api/definitions/validate?strict=maybe", json=approval())
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")
        response = client.post("/api/definitions/validate?dry=1", json=approval())
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")
        response = client.post("/api/definitions/validate",
                               json=approval(description="x" * (1024 * 1024)))
        assert (response.status_code, response.json["code"]) == (413, "payload_too_large")

    def test_as_put_the_id_may_be_left_out_but_not_contradicted(
        self, client: FlaskClient
    ) -> None:
        document = approval()
        del document["id"]
        assert client.post("/api/definitions/fresh/validate", json=document).json["valid"]
        assert not client.post("/api/definitions/validate", json=document).json["valid"]
        checked = client.post("/api/definitions/other/validate", json=approval()).json
        refused = client.put("/api/definitions/other", json=approval())
        assert checked["valid"] is False
        assert checked["errors"] == refused.json["errors"]
        assert [e["code"] for e in checked["errors"]] == ["id_mismatch"]
        assert checked["warnings"] != []

    def test_a_definition_may_be_called_validate(self, client: FlaskClient) -> None:
        """The check's path takes nothing from the definitions' names."""
        assert client.put("/api/definitions/validate",
                          json=approval(id="validate")).status_code == 201
        assert client.get("/api/definitions/validate").json["id"] == "validate"
        checked = client.post("/api/definitions/validate", json=approval(id="validate"))
        assert checked.json["valid"]
        checked = client.post("/api/definitions/validate/validate", json=approval(id="validate"))
        assert checked.json["valid"]
        assert client.get("/api/definitions/validate/versions").json["versions"] == [1]

    @pytest.mark.parametrize("path", sorted(DEFINITIONS.glob("*.json")), ids=lambda p: p.stem)
    def test_every_shipped_definition_checks_valid_with_known_columns(
        self, client: FlaskClient, path: Path
    ) -> None:
        checked = client.post("/api/definitions/validate",
                              data=path.read_bytes(), content_type="application/json").json
        assert (checked["valid"], checked["errors"]) == (True, [])
        for state_id, found in checked["states"].items():
            for side in ("columns_in", "columns_out"):
                assert None not in found[side]["tables"], (state_id, side)
                if found[side]["tables"]:
                    assert found[side]["columns"], (state_id, side)


# -- the check says what saving says, for any document ---------------------------------------

MUTATIONS = ["none", "filter_column", "drop_field", "unknown_field", "bad_type",
             "dangling_target", "duplicate_state", "disable_action", "not_an_object",
             "missing_file", "strip_id", "other_id"]


def _mutate(document: dict[str, Any], mutation: str, data: st.DataObject) -> Any:
    states, actions = document["states"], document["actions"]
    if mutation == "filter_column":
        filters = [s for s in states if (s.get("block") or {}).get("type") == "filter"]
        if filters:
            column = data.draw(st.sampled_from([*HEADER, "country", "phone"]))
            filters[0]["block"]["params"]["conditions"][0]["column"] = column
    elif mutation == "drop_field":
        target = data.draw(st.sampled_from([*states, *actions]))
        target.pop(data.draw(st.sampled_from(sorted(target))))
    elif mutation == "unknown_field":
        data.draw(st.sampled_from(states))["colour"] = "red"
    elif mutation == "bad_type":
        data.draw(st.sampled_from(states))["is_final"] = "yes"
    elif mutation == "dangling_target" and actions:
        data.draw(st.sampled_from(actions))["to_state"] = "nowhere"
    elif mutation == "duplicate_state":
        states.append(dict(data.draw(st.sampled_from(states))))
    elif mutation == "disable_action" and actions:
        data.draw(st.sampled_from(actions))["enabled"] = False
    elif mutation == "not_an_object":
        return data.draw(st.sampled_from([[], None, "x", 1]))
    elif mutation == "missing_file":
        for state in states:
            if (state.get("block") or {}).get("type") == "read_csv":
                state["block"]["params"]["file"] = "later.csv"
    elif mutation == "strip_id":
        del document["id"]
    elif mutation == "other_id":
        document["id"] = "someone-else"
    return document


_SEEN = itertools.count()


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["approval", "pipeline", "education"]),
       mutations=st.lists(st.sampled_from(MUTATIONS), max_size=2),
       put=st.booleans(), strict=st.booleans(), data=st.data())
def test_the_check_answers_what_saving_answers(
    client: FlaskClient, base: str, mutations: list[str], put: bool, strict: bool,
    data: st.DataObject,
) -> None:
    """For any document, the check is valid exactly when POST (or PUT) stores it, with the
    errors of its 422 or the warnings it stores."""
    definition_id = f"d{next(_SEEN)}"
    document: Any = {
        "approval": lambda: approval(id=definition_id),
        "pipeline": lambda: leads_pipeline(definition_id, keep("company")),
        "education": lambda: {**json.loads((DEFINITIONS / "ariglad-education.json")
                                           .read_text()), "id": definition_id},
    }[base]()
    for mutation in mutations:
        if isinstance(document, dict):
            document = _mutate(document, mutation, data)
    query = "?strict=true" if strict else ""
    if put:
        checked = client.post(f"/api/definitions/{definition_id}/validate{query}",
                              json=document)
        saved = client.put(f"/api/definitions/{definition_id}{query}", json=document)
    else:
        checked = client.post(f"/api/definitions/validate{query}", json=document)
        saved = client.post(f"/api/definitions{query}", json=document)
    assert checked.status_code == 200
    assert saved.status_code in (201, 422), saved.json
    assert checked.json["valid"] is (saved.status_code == 201)
    if saved.status_code == 201:
        assert (checked.json["errors"], checked.json["warnings"]) == ([], saved.json["warnings"])
    else:
        assert saved.json["code"] == "definition_invalid"
        assert checked.json["errors"] == saved.json["errors"]
