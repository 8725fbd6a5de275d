"""Hostile and odd input: each gets a clear 4xx problem, and nothing is stored."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

PROBLEM = "application/problem+json"


def cursor(kind: str, after: Any) -> str:
    raw = json.dumps({"k": kind, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.usefixtures("definition")
class TestBodies:
    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            pytest.param('{"definition_id": "approval", "context": {"x": "\\ud800"}}',
                         400, "malformed_json", id="unpaired surrogate"),
            pytest.param('{"definition_id": "approval", "context": {"\\udfff": 1}}',
                         400, "malformed_json", id="unpaired surrogate in a key"),
            pytest.param('{"definition_id": "approval", "context": {"a": ' + nested(40) + "}}",
                         400, "malformed_json", id="nested 40 deep"),
            pytest.param('{"definition_id": "approval", "context": {"a": ' + nested(3000)
                         + "}}", 400, "malformed_json", id="nested 3000 deep"),
            pytest.param('{"definition_id": "approval", "context": {"x": NaN}}',
                         400, "malformed_json", id="NaN"),
            pytest.param('{"definition_id": "approval", "context": {"x": -Infinity}}',
                         400, "malformed_json", id="Infinity"),
            pytest.param('{"definition_id": "approval", "context": {"n": ' + "1" * 5000 + "}}",
                         400, "malformed_json", id="5000-digit integer"),
            pytest.param('{"definition_id": "approval", "version": ' + "9" * 20 + "}",
                         422, "validation_failed", id="version past any INTEGER"),
            pytest.param('{"definition_id": "approval", "id": "."}',
                         422, "validation_failed", id="id '.'"),
            pytest.param('{"definition_id": "approval", "id": ".."}',
                         422, "validation_failed", id="id '..'"),
            pytest.param('{"definition_id": "approval", "id": "a/b"}',
                         422, "validation_failed", id="id with a slash"),
            pytest.param('{"definition_id": "approval", "id": "caf\\u00e9"}',
                         422, "validation_failed", id="unicode id"),
        ],
    )
    def test_refused_and_nothing_stored(
        self, client: FlaskClient, body: str, status: int, code: str
    ) -> None:
        response = client.post("/api/instances", data=body, content_type="application/json")
        assert (response.status_code, response.json["code"]) == (status, code)
        assert response.content_type == PROBLEM
        assert client.get("/api/instances").json["items"] == []

    def test_deep_but_reasonable_context_is_fine(self, client: FlaskClient) -> None:
        body = '{"definition_id": "approval", "context": {"a": ' + nested(20) + "}}"
        response = client.post("/api/instances", data=body, content_type="application/json")
        assert response.status_code == 201
        assert client.get(f"/api/instances/{response.json['id']}").status_code == 200


class TestParameters:
    @pytest.mark.parametrize(
        "url",
        [
            "/api/definitions/approval?version=" + "9" * 20,
            "/api/definitions/approval/diagram?version=" + "9" * 20,
            "/api/definitions?cursor=" + cursor("definitions", "x" * 100),
            "/api/instances?cursor=" + cursor("instances", 10**20),
            "/api/instances?cursor=" + cursor("instances", -1),
            "/api/instances/i/history?cursor=" + cursor("history", 10**20),
        ],
    )
    def test_out_of_range_numbers_are_bad_parameters(
        self, client: FlaskClient, definition: dict[str, Any], url: str
    ) -> None:
        client.post("/api/instances", json={"definition_id": "approval", "id": "i"})
        response = client.get(url)
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")


class TestHeaders:
    def test_actor_in_utf8_is_recorded_as_sent(
        self, client: FlaskClient, instance: dict[str, Any]
    ) -> None:
        actor = "Jos\u00e9 \u00f1"
        client.post(f"/api/instances/{instance['id']}/actions/submit",
                    headers={"X-Actor": actor.encode().decode("latin-1")})
        history = client.get(f"/api/instances/{instance['id']}/history").json["items"]
        assert history[-1]["actor"] == actor

    @pytest.mark.parametrize(
        "raw", ["a\x80b", "\xff\xfe", "a\u0085b".encode().decode("latin-1")]
    )
    def test_control_characters_and_bad_utf8_are_refused(
        self, client: FlaskClient, instance: dict[str, Any], raw: str
    ) -> None:
        response = client.post(f"/api/instances/{instance['id']}/actions/submit",
                               headers={"X-Actor": raw})
        assert (response.status_code, response.json["code"]) == (400, "invalid_header")
        assert client.get(f"/api/instances/{instance['id']}").json["version"] == 1
