"""GET /api/instances/{id}/events through the app: what a stream of a completed instance
holds, where it resumes, its errors and who may watch. (Live streams, limits and dropped
clients are tested against the real server: tests/test_event_streams.py.)"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient

from tests.api.test_access import TOKENS, bearer, entries
from tests.conftest import BuildApp, approval, make_settings
from tests.sse import Message, messages
from workflow_engine import logs
from workflow_engine.api import STREAMS
from workflow_engine.logs import configure

PROBLEM = "application/problem+json"


def completed(client: FlaskClient, instance_id: str = "doc") -> None:
    """An instance of the test definition, submitted and approved (3 events)."""
    assert client.post("/api/instances", json={"definition_id": "approval",
                                               "id": instance_id}).status_code == 201
    for action in ("submit", "approve"):
        assert client.post(f"/api/instances/{instance_id}/actions/{action}").status_code == 200


def stream(client: FlaskClient, url: str, **headers: str) -> tuple[Any, list[Message]]:
    response = client.get(url, headers=headers)
    found = list(messages(response.get_data(as_text=True).splitlines()))
    return response, found


def summary(found: list[Message]) -> list[tuple[str | None, str | None]]:
    return [(message.event, message.id) for message in found if message.event]


@pytest.mark.usefixtures("definition")
class TestACompletedInstance:
    def test_streams_its_history_its_snapshot_and_the_end(self, client: FlaskClient) -> None:
        completed(client)
        response, found = stream(client, "/api/instances/doc/events")
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert found[0].retry == 1000
        assert summary(found) == [("history", "1"), ("history", "2"), ("history", "3"),
                                  ("instance", "3.0"), ("end", "3.0")]
        history = client.get("/api/instances/doc/history").json["items"]
        assert [message.data for message in found if message.event == "history"] == history
        instance = next(message.data for message in found if message.event == "instance")
        assert instance == client.get("/api/instances/doc").json
        end = next(message.data for message in found if message.event == "end")
        assert end == {"instance_id": "doc", "status": "completed",
                       "current_state": "approved", "version": 3}

    def test_a_cross_origin_stream_gets_its_cors_headers_and_all_its_events(
        self, client: FlaskClient
    ) -> None:
        """The response hooks only add headers: the body streams as it would without."""
        completed(client)
        response, found = stream(client, "/api/instances/doc/events",
                                 Origin="https://ui.example")
        assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://ui.example")
        assert "X-Request-ID" in response.headers
        assert summary(found)[-1] == ("end", "3.0")

    def test_a_browser_may_send_last_event_id_across_origins(
        self, client: FlaskClient
    ) -> None:
        response = client.options("/api/instances/doc/events", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Last-Event-ID"})
        assert "last-event-id" in response.headers["Access-Control-Allow-Headers"].lower()

    @pytest.mark.parametrize(("after", "expected"), [
        ("1", [("history", "2"), ("history", "3"), ("instance", "3.0"), ("end", "3.0")]),
        ("2.0", [("history", "3"), ("instance", "3.0"), ("end", "3.0")]),
        ("3", [("instance", "3.0"), ("end", "3.0")]),
        ("0", [("history", "1"), ("history", "2"), ("history", "3"), ("instance", "3.0"),
               ("end", "3.0")]),
    ])
    def test_resumes_right_after_the_last_event_id(
        self, client: FlaskClient, after: str, expected: list[tuple[str, str]]
    ) -> None:
        completed(client)
        _, by_header = stream(client, "/api/instances/doc/events", **{"Last-Event-ID": after})
        _, by_query = stream(client, f"/api/instances/doc/events?after={after}")
        assert summary(by_header) == summary(by_query) == expected

    def test_the_header_wins_over_the_query(self, client: FlaskClient) -> None:
        """An EventSource reconnects to the same URL, ?after= and all, with the header."""
        completed(client)
        _, found = stream(client, "/api/instances/doc/events?after=1", **{"Last-Event-ID": "3"})
        assert summary(found) == [("instance", "3.0"), ("end", "3.0")]

    def test_answers_204_once_the_client_has_everything(self, client: FlaskClient) -> None:
        """204 is what stops an EventSource from reconnecting."""
        completed(client)
        response = client.get("/api/instances/doc/events", headers={"Last-Event-ID": "3.0"})
        assert (response.status_code, response.data) == (204, b"")

    @pytest.mark.parametrize("after", ["4", "99.5"])
    def test_an_id_past_the_end_replays_from_the_start(
        self, client: FlaskClient, after: str
    ) -> None:
        completed(client)
        _, found = stream(client, "/api/instances/doc/events", **{"Last-Event-ID": after})
        assert [message.id for message in found if message.event == "history"] == ["1", "2", "3"]


class TestErrors:
    def test_an_unknown_instance_is_404(self, client: FlaskClient) -> None:
        response = client.get("/api/instances/nobody/events")
        assert response.status_code == 404
        assert response.mimetype == PROBLEM
        assert response.json["code"] == "instance_not_found"

    @pytest.mark.usefixtures("instance")
    @pytest.mark.parametrize("value", ["x", "1.", "-3", "1.2.3", "12345678901", "٣"])
    def test_a_malformed_last_event_id_is_400(
        self, client: FlaskClient, instance: dict[str, Any], value: str
    ) -> None:
        response = client.get(f"/api/instances/{instance['id']}/events",
                              headers={"Last-Event-ID": value.encode().decode("latin-1")})
        assert (response.status_code, response.mimetype) == (400, PROBLEM)
        assert response.json["code"] == "invalid_event_id"
        assert response.json["errors"][0]["path"] == "Last-Event-ID"

    def test_a_malformed_after_is_400_naming_it(
        self, client: FlaskClient, instance: dict[str, Any]
    ) -> None:
        response = client.get(f"/api/instances/{instance['id']}/events?after=soon")
        assert (response.status_code, response.json["code"]) == (400, "invalid_event_id")
        assert response.json["errors"][0]["path"] == "after"

    def test_an_unknown_parameter_is_400(
        self, client: FlaskClient, instance: dict[str, Any]
    ) -> None:
        response = client.get(f"/api/instances/{instance['id']}/events?since=1")
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")


@pytest.fixture
def secured(tmp_path: Path, database_url: str, build_app: BuildApp) -> FlaskClient:
    """An app with tokens, and a completed instance."""
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps({"tokens": entries()}))
    client = build_app(make_settings(tmp_path, database_url=database_url,
                                     tokens_file=tokens_file)).test_client()
    assert client.post("/api/definitions", json=approval(),
                       headers=bearer("admin")).status_code == 201
    assert client.post("/api/instances", json={"definition_id": "approval", "id": "doc"},
                       headers=bearer("runner")).status_code == 201
    return client


class TestAccess:
    def test_needs_a_token(self, secured: FlaskClient) -> None:
        response = secured.get("/api/instances/doc/events")
        assert (response.status_code, response.json["code"]) == (401, "unauthenticated")

    def test_a_read_token_may_watch(self, secured: FlaskClient) -> None:
        response = secured.get("/api/instances/doc/events", headers=bearer("reader"),
                               buffered=False)
        assert (response.status_code, response.mimetype) == (200, "text/event-stream")
        response.close()

    def test_the_token_may_come_in_the_query_for_an_event_source(
        self, secured: FlaskClient
    ) -> None:
        response = secured.get(f"/api/instances/doc/events?access_token={TOKENS['reader']}",
                               buffered=False)
        assert response.status_code == 200
        response.close()

    @pytest.mark.parametrize("token", ["wrong", ""])
    def test_a_wrong_token_in_the_query_is_401(self, secured: FlaskClient, token: str) -> None:
        response = secured.get(f"/api/instances/doc/events?access_token={token}")
        assert (response.status_code, response.json["code"]) == (401, "unauthenticated")

    def test_not_both_ways_at_once(self, secured: FlaskClient) -> None:
        response = secured.get(f"/api/instances/doc/events?access_token={TOKENS['reader']}",
                               headers=bearer("reader"))
        assert (response.status_code, response.json["code"]) == (400, "invalid_request")

    @pytest.mark.parametrize("url", ["/api/instances/doc", "/api/instances/doc/history"])
    def test_no_other_endpoint_takes_the_token_in_the_query(
        self, secured: FlaskClient, url: str
    ) -> None:
        response = secured.get(f"{url}?access_token={TOKENS['reader']}")
        assert (response.status_code, response.json["code"]) == (401, "unauthenticated")

    def test_the_query_token_never_reaches_the_log(
        self, secured: FlaskClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The request line logs the path without its query; the stream's end is a second
        line of the same request."""
        configure("INFO")
        try:
            response = secured.get(
                f"/api/instances/doc/events?access_token={TOKENS['reader']}", buffered=False)
            response.close()
            logged = capsys.readouterr().err
        finally:
            logging.getLogger().handlers[:] = []
            logs._request_log = structlog.get_logger("workflow_engine.request")
        lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
        request, ended = (next(line for line in lines if line["event"] == name)
                          for name in ("request", "stream ended"))
        assert (request["path"], request["token"]) == ("/api/instances/doc/events", "reader")
        assert (ended["request_id"], ended["reason"]) == (request["request_id"], "disconnected")
        assert TOKENS["reader"] not in logged


class TestSlots:
    @pytest.fixture
    def capped(self, tmp_path: Path, database_url: str, build_app: BuildApp) -> FlaskClient:
        client = build_app(make_settings(tmp_path, database_url=database_url,
                                         max_event_streams=1)).test_client()
        assert client.post("/api/definitions", json=approval()).status_code == 201
        assert client.post("/api/instances", json={"definition_id": "approval",
                                                   "id": "doc"}).status_code == 201
        return client

    def test_one_past_the_limit_is_503_until_a_stream_closes(self, capped: FlaskClient) -> None:
        first = capped.get("/api/instances/doc/events", buffered=False)
        refused = capped.get("/api/instances/doc/events")
        assert (refused.status_code, refused.json["code"]) == (503, "too_many_streams")
        assert refused.headers["Retry-After"] == "5"
        assert refused.json["max_streams"] == 1
        first.close()
        again = capped.get("/api/instances/doc/events", buffered=False)
        assert again.status_code == 200
        again.close()

    def test_a_response_dropped_unclosed_frees_its_slot_when_collected(
        self, capped: FlaskClient
    ) -> None:
        streams = capped.application.extensions[STREAMS]
        response = capped.get("/api/instances/doc/events", buffered=False)
        assert streams.open_count == 1
        del response
        gc.collect()
        assert streams.open_count == 0
