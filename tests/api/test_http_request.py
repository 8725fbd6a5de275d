"""The http_request block through the real app, against the tests' own HTTP API on the
loopback: checked when a definition is saved, run per row, its secrets kept out of every
record, its address guard on, and a POST never sent twice, even across a kill."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from tests.api.conftest import post_definition, run
from tests.conftest import BuildApp
from tests.http_api import HttpApi
from tests.sse import messages
from workflow_engine.settings import Settings
from workflow_engine.testing import free_port, running_server

LEADS = 15  # rows of data/leads.csv
SECRET = "s3cr3t-7f1e-token"


def pipeline(params: dict[str, Any], *, file: str = "leads.csv") -> dict[str, Any]:
    """read_csv -> http_request -> save_csv, chained by automatic actions."""
    return {
        "id": "called", "name": "Called",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "reading", "name": "Reading",
             "block": {"type": "read_csv", "params": {"file": file}}},
            {"id": "calling", "name": "Calling",
             "block": {"type": "http_request", "params": {"rate_per_minute": 60_000,
                                                          **params}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": "called.csv"}}},
        ],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
            {"id": "call", "name": "Call", "trigger": "auto", "from_states": ["reading"],
             "to_state": "calling"},
            {"id": "save", "name": "Save", "trigger": "auto", "from_states": ["calling"],
             "to_state": "saved"},
        ],
    }


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app's settings: the loopback allowed (the tests' API lives there), a secret."""
    return settings.model_copy(update={"http_allowed_networks": "127.0.0.1/32",
                                       "http_secrets": {"API_TOKEN": SECRET}})


def rows(client: FlaskClient, instance_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/api/instances/{instance_id}/data?limit=1000").json["rows"]
    return found


def endpoints_file(settings: Settings, name: str, endpoints: list[str]) -> None:
    (settings.files_dir / name).write_text(
        "name,endpoint\n" + "".join(f"row{i},{e}\n" for i, e in enumerate(endpoints)))


class TestSaving:
    """Definitions are checked before anything runs."""

    def test_the_block_is_listed_with_its_params_and_columns(self, client: FlaskClient
                                                             ) -> None:
        entry = next(b for b in client.get("/api/blocks").json["items"]
                     if b["type"] == "http_request")
        assert {"url", "method", "headers", "body", "extract"} <= set(
            entry["params_schema"]["properties"])
        assert entry["params_schema"]["required"] == ["url"]
        assert "<prefix>_status" in entry["produces"]

    @pytest.mark.parametrize(("params", "path", "code"), [
        ({"url": "http://127.0.0.1/companies/{company_name}"},
         "states[2].block.params.url", "unknown_column"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-Who": "{who}"}},
         "states[2].block.params.headers.X-Who", "unknown_column"),
        ({"url": "http://127.0.0.1/x", "method": "POST", "body": {"a": ["{gone}"]}},
         "states[2].block.params.body", "unknown_column"),
        ({"url": "http://127.0.0.1/x", "extract": {"n": "employees[?"}},
         "states[2].block.params.extract.n", "jmespath_invalid"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-Key": "{secret.MISSING}"}},
         "states[2].block.params.headers.X-Key", "unknown_secret"),
        ({"url": "http://{company}/x"}, "states[2].block.params.url", "url_invalid"),
        ({"url": "http://127.0.0.1/{company!r}"}, "states[2].block.params.url",
         "template_invalid"),
    ])
    def test_bad_params_are_refused_at_their_path(
            self, client: FlaskClient, params: dict[str, Any], path: str, code: str) -> None:
        response = client.post("/api/definitions", json=pipeline(params))
        assert (response.status_code, response.json["code"]) == (422, "definition_invalid")
        assert response.mimetype == "application/problem+json"
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [(path, code)]


class TestRunning:
    """A pipeline that calls the API per row."""

    def test_every_row_is_called_and_its_answer_mapped_into_columns(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        post_definition(client, pipeline({
            "url": f"{http_api.url}/companies/{{company}}",
            "extract": {"employees": "employees", "city": "address.city", "tags": "tags"}}))
        body = run(client, "called", id="c1")
        assert (body["status"], body["current_state"]) == ("completed", "saved"), body
        found = rows(client, "c1")
        assert len(found) == LEADS
        for row in found:
            assert row["employees"] == 10 * len(row["company"])
            assert (row["city"], row["tags"], row["http_status"], row["http_error"]) == (
                "Berlin", ["b2b", "saas"], 200, None)
        paths = {seen.path for seen in http_api.requests()}
        assert "/companies/Ariglad Inc" in paths  # percent-encoded, decoded by the API
        assert len(http_api.requests()) == LEADS
        saved = (settings.outputs_dir / "called.csv").read_text()
        assert saved.splitlines()[0].endswith('"tags","http_status","http_error"')

    def test_the_host_s_rate_budget_paces_the_rows(self, client: FlaskClient,
                                                   http_api: HttpApi) -> None:
        """15 rows at 900 a minute, 4 at once: never in a burst; the first and the last
        are at least 14 intervals apart (paced 2% under the rate)."""
        post_definition(client, pipeline({"url": f"{http_api.url}/companies/{{company}}",
                                          "rate_per_minute": 900}))
        assert run(client, "called", id="b1")["status"] == "completed"
        times = sorted(s.at for s in http_api.requests())
        interval = 60 / (900 * 0.98)
        assert len(times) == LEADS
        # 14 slots apart; the first may leave late, so one interval of slack.
        assert times[-1] - times[0] >= (LEADS - 2) * interval

    def test_the_secret_reaches_the_api_and_no_record_of_ours(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings,
            caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        post_definition(client, pipeline({
            "url": f"{http_api.url}/echo?company={{company}}",
            "headers": {"Authorization": "Bearer {secret.API_TOKEN}", "X-Company": "{company}"},
            "extract": {"company_seen": "query.company"}}))
        assert run(client, "called", id="s1")["status"] == "completed"
        seen = http_api.requests("/echo")
        assert len(seen) == LEADS
        assert {s.headers["authorization"] for s in seen} == {f"Bearer {SECRET}"}
        assert {s.headers["x-company"] for s in seen} == {s.query["company"] for s in seen}
        assert all(row["company_seen"] == row["company"] for row in rows(client, "s1"))
        records = [
            client.get("/api/definitions/called").get_data(as_text=True),
            client.get("/api/instances/s1").get_data(as_text=True),
            client.get("/api/instances/s1/history?limit=200").get_data(as_text=True),
            client.get("/api/instances/s1/events").get_data(as_text=True),
            client.get("/api/instances/s1/data?limit=1000").get_data(as_text=True),
            (settings.outputs_dir / "called.csv").read_text(),
            caplog.text,
        ]
        events = list(messages(records[3].splitlines()))
        assert any(m.event == "history" for m in events)
        assert "{secret.API_TOKEN}" in records[0]
        for text in records:
            assert SECRET not in text

    def test_answers_that_cannot_be_used_are_row_errors(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        endpoints_file(settings, "endpoints.csv", ["echo", "text", "huge", "nowhere"])
        post_definition(client, pipeline({
            "url": f"{http_api.url}/{{endpoint}}", "extract": {"method": "method"},
            "max_error_ratio": 1}, file="endpoints.csv"))
        body = run(client, "called", id="e1")
        assert body["status"] == "completed", body
        found = {row["endpoint"]: row for row in rows(client, "e1")}
        assert (found["echo"]["method"], found["echo"]["http_error"]) == ("GET", None)
        assert found["text"]["http_error"].startswith("answer_not_json: GET ")
        assert found["huge"]["http_error"].startswith("answer_too_large: ")
        assert found["nowhere"]["http_error"].startswith("http_status: GET ")
        assert "404" in found["nowhere"]["http_error"]

    def test_a_column_missing_at_run_time_is_a_row_error(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        """The file was not there when the definition was saved, so its columns were not
        known: each row says what its template lacks."""
        post_definition(client, pipeline({"url": f"{http_api.url}/companies/{{company}}",
                                          "max_error_ratio": 1}, file="later.csv"))
        endpoints_file(settings, "later.csv", ["echo", "echo"])
        assert run(client, "called", id="m1")["status"] == "completed"
        assert [row["http_error"] for row in rows(client, "m1")] == [
            "template_missing_column: url names column 'company', which the table does not "
            "have."] * 2
        assert http_api.requests() == []

    def test_a_retried_block_does_not_post_twice(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        """One row's 404 fails the block; the retry sends that row again (refused, it did
        nothing) and reuses the stored answers of the others."""
        endpoints_file(settings, "posts.csv", ["echo", "echo", "nowhere"])
        post_definition(client, pipeline({
            "method": "POST", "url": f"{http_api.url}/{{endpoint}}",
            "body": {"name": "{name}"}, "extract": {"posted": "json.name"},
            "on_row_error": "fail"}, file="posts.csv"))
        body = run(client, "called", id="p1")
        assert (body["status"], body["error"]["code"]) == ("failed", "block_failed"), body
        assert len(http_api.requests("/echo")) == 2
        retried = client.post("/api/instances/p1/retry?wait=10").json
        assert retried["status"] == "failed"
        assert len(http_api.requests("/echo")) == 2
        assert len(http_api.requests("/nowhere")) == 2
        assert sorted(s.json["name"] for s in http_api.requests("/echo")) == ["row0", "row1"]


    def test_progress_counts_rows_and_a_cancel_stops_the_calls(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        """One row answered, the next held by the API: progress says 1 of 3; a cancel
        ends the block once the held request times out, and the last row is never sent."""
        endpoints_file(settings, "held.csv", ["echo", "hold", "echo"])
        post_definition(client, pipeline({
            "url": f"{http_api.url}/{{endpoint}}", "concurrency": 1, "timeout_seconds": 1,
            "max_retries": 0}, file="held.csv"))
        client.post("/api/instances", json={"definition_id": "called", "id": "h1"})
        client.post("/api/instances/h1/actions/run")
        http_api.wait_for(1, "/hold")
        deadline = time.monotonic() + 10  # progress is stored by the heartbeat elsewhere
        while (progress := client.get("/api/instances/h1").json["progress"]) is None or \
                progress["rows_done"] < 1:
            assert time.monotonic() < deadline, progress
            time.sleep(0.02)
        assert (progress["rows_done"], progress["rows_total"]) == (1, 3)
        cancelled = client.post("/api/instances/h1/cancel")
        assert (cancelled.status_code, cancelled.json["status"]) == (200, "cancelled")
        client.application.extensions["workflow_engine.runner"].wait("h1", 20)
        assert client.get("/api/instances/h1?wait=20").json["status"] == "cancelled"
        assert len(http_api.requests("/echo")) == 1


class TestAddressGuard:
    """Without the allowance, loopback and private addresses are refused per row."""

    @pytest.mark.parametrize("host", ["127.0.0.1:{port}", "10.0.0.7", "169.254.169.254",
                                      "[::1]:{port}"])
    def test_refused_rows_say_why_and_nothing_is_sent(
            self, build_app: BuildApp, settings: Settings, http_api: HttpApi, host: str
            ) -> None:
        guarded = build_app(settings.model_copy(update={"http_allowed_networks": ""}))
        client = guarded.test_client()
        port = http_api.url.rsplit(":", 1)[1]
        post_definition(client, pipeline({"url": f"http://{host.format(port=port)}/echo",
                                          "max_error_ratio": 1}))
        assert run(client, "called", id="g1")["status"] == "completed"
        errors = {row["http_error"].split(" resolves")[0] for row in rows(client, "g1")}
        assert len(errors) == 1
        assert errors.pop().startswith("address_refused: ")
        assert http_api.requests() == []

    def test_a_redirect_to_the_loopback_is_refused(
            self, client: FlaskClient, http_api: HttpApi, settings: Settings) -> None:
        """The API's own address is allowed; where it redirects (another loopback
        address) is not."""
        port = http_api.url.rsplit(":", 1)[1]
        post_definition(client, pipeline({
            "url": f"{http_api.url}/redirect?to=http://127.0.0.2:{port}/echo",
            "max_error_ratio": 1}))
        assert run(client, "called", id="r1")["status"] == "completed"
        assert all(row["http_error"].startswith("address_refused: 127.0.0.2")
                   for row in rows(client, "r1"))
        assert {s.path for s in http_api.requests()} == {"/redirect"}


@pytest.mark.slow
@pytest.mark.parametrize("on_unknown", ["error", "resend"])
def test_a_post_caught_in_flight_by_a_kill_is_not_sent_again(
        tmp_path: Path, http_api: HttpApi, on_unknown: str) -> None:
    """SIGKILL while the third row's POST is held by the API (its answer never comes):
    after a restart on the same database the two answered rows reuse their stored
    answers, and the third is http_outcome_unknown, not posted again (or, told to
    resend, posted once more)."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "posts.csv").write_text("name,endpoint\na,echo\nb,echo\nc,hold\n")
    database = tmp_path / "workflow.db"
    env = {"HTTP_ALLOWED_NETWORKS": "127.0.0.1/32",
           "HTTP_SECRETS": json.dumps({"API_TOKEN": SECRET})}
    port = free_port()
    document = pipeline({"method": "POST", "url": f"{http_api.url}/{{endpoint}}",
                         "body": {"name": "{name}"}, "extract": {"posted": "json.name"},
                         "headers": {"Authorization": "Bearer {secret.API_TOKEN}"},
                         "concurrency": 1, "max_error_ratio": 1,
                         "on_unknown_outcome": on_unknown}, file="posts.csv")
    with running_server(database, env=env, port=port) as server:
        httpx.post(f"{server.url}/api/definitions", json=document).raise_for_status()
        httpx.post(f"{server.url}/api/instances",
                   json={"definition_id": "called", "id": "k1"}).raise_for_status()
        httpx.post(f"{server.url}/api/instances/k1/actions/run").raise_for_status()
        http_api.wait_for(1, "/hold")
        server.stop(signal.SIGKILL)
        assert SECRET not in server.output()
    http_api.released.set()  # from now on the API answers at once
    with running_server(database, env=env, port=port) as server:
        body = httpx.get(f"{server.url}/api/instances/k1", params={"wait": 30},
                         timeout=40).json()
        assert (body["status"], body["current_state"]) == ("completed", "saved"), body
        found = {row["name"]: row for row in httpx.get(
            f"{server.url}/api/instances/k1/data").json()["rows"]}
        events = httpx.get(f"{server.url}/api/instances/k1/history?limit=200").json()
        done = next(e for e in events["items"] if e["type"] == "block_succeeded"
                    and e["data"].get("block") == "http_request")
        assert SECRET not in server.output()
    assert [found[name]["posted"] for name in ("a", "b")] == ["a", "b"]
    assert done["data"]["http_request"]["reused"] == 2
    assert len(http_api.requests("/echo")) == 2
    if on_unknown == "error":
        assert found["c"]["http_error"].startswith("http_outcome_unknown: ")
        assert len(http_api.requests("/hold")) == 1
    else:
        assert (found["c"]["posted"], found["c"]["http_error"]) == ("c", None)
        assert len(http_api.requests("/hold")) == 2
