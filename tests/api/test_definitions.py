"""Definitions over HTTP: create, version, read, list, draw."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import approval

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
