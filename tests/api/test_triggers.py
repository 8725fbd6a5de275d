"""Triggers through the real app: webhooks that start an instance on the posted rows,
schedules that start one per tick (on a frozen clock, and across processes), their tokens
and their listing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from croniter import croniter
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import DEFINITIONS, BuildApp, close_app, make_settings, open_app
from workflow_engine.api import EXTENSION, SCHEDULES
from workflow_engine.auth import digest
from workflow_engine.blocks.tables import read_csv_table, write_csv_table
from workflow_engine.core import check_definition
from workflow_engine.schedules import ScheduleLoop
from workflow_engine.service import WorkflowService
from workflow_engine.service.triggers import _json_rows
from workflow_engine.settings import Settings
from workflow_engine.storage import LocalArea
from workflow_engine.testing import PostgresServer, running_server

WEBHOOK: dict[str, Any] = json.loads((DEFINITIONS / "leads-webhook.json").read_text())
HOOK = "/api/hooks/leads-webhook/leads"
LEADS_CSV = (b"name,company,email\nAnn Lee,Ariglad Inc,ann@ariglad.example\n"
             b"Bo Kim,Other Co,\nCid Roe,Ariglad Inc,\n")
START = int(datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def ms(text: str) -> int:
    """``HH:MM`` on the test's day, in milliseconds."""
    hours, minutes = (int(part) for part in text.split(":"))
    return int(datetime(2026, 1, 5, hours, minutes, tzinfo=UTC).timestamp() * 1000)


class FrozenClock:
    """The service's clock, moved only by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def set(self, moment: int) -> None:
        self.now = moment


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No schedule loop thread: tests call its tick themselves."""
    return settings.model_copy(update={"schedules": False})


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[Flask]:
    application = open_app(settings, clock=clock)
    yield application
    close_app(application)


def post(client: FlaskClient, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/definitions", json=document)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def token(client: FlaskClient) -> str:
    """The webhook definition stored, and its hook token from the POST answer."""
    tokens = post(client, WEBHOOK)["hook_tokens"]
    assert set(tokens) == {"leads"}
    found: str = tokens["leads"]
    return found


def instance_count(client: FlaskClient, definition_id: str) -> int:
    items = client.get(f"/api/instances?definition_id={definition_id}&limit=200").json["items"]
    return len(items)


def first_event(client: FlaskClient, instance_id: str) -> dict[str, Any]:
    event: dict[str, Any] = client.get(f"/api/instances/{instance_id}/history").json["items"][0]
    return event


def table(client: FlaskClient, instance_id: str, seq: int) -> list[list[str]]:
    text = client.get(f"/api/instances/{instance_id}/history/{seq}/data?format=csv").text
    return list(csv.reader(io.StringIO(text)))


class TestWebhook:
    def test_a_csv_body_starts_an_instance_on_its_rows(self, client: FlaskClient) -> None:
        """201 with the instance; its table is the posted CSV, filtered and saved; the
        webhook is the actor of its start."""
        secret = token(client)
        response = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                               headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 201, response.json
        started = response.json
        assert response.headers["Location"] == f"/api/instances/{started['id']}"
        digest16 = hashlib.sha256(LEADS_CSV).hexdigest()[:16]
        assert started["inputs"] == {"reading": {"file": f"hook-{started['id']}-{digest16}.csv"}}
        done = client.get(f"/api/instances/{started['id']}?wait=10").json
        assert (done["status"], done["current_state"]) == ("completed", "saved")
        assert done["table"]["rows"] == 2
        event = first_event(client, started["id"])
        assert (event["type"], event["actor"]) == ("instance_started", "webhook:leads")
        # The read_csv run's table (seq 3: started, block started, block succeeded).
        assert table(client, started["id"], 3) == [
            ["name", "company", "email"], ["Ann Lee", "Ariglad Inc", "ann@ariglad.example"],
            ["Bo Kim", "Other Co", ""], ["Cid Roe", "Ariglad Inc", ""]]

    @pytest.mark.parametrize("body", [
        {"rows": [{"name": "Ann Lee", "company": "Ariglad Inc", "score": 7},
                  {"name": "Bo Kim", "company": "Other Co", "vip": True}]},
        [{"name": "Ann Lee", "company": "Ariglad Inc", "score": 7},
         {"name": "Bo Kim", "company": "Other Co", "vip": True}],
    ], ids=["rows-object", "list"])
    def test_json_rows_start_an_instance_on_them(self, client: FlaskClient, body: Any) -> None:
        """Keys in order of first appearance become the columns; values become text."""
        secret = token(client)
        response = client.post(HOOK, json=body, headers={"X-Hook-Token": secret})
        assert response.status_code == 201, response.json
        instance_id = response.json["id"]
        done = client.get(f"/api/instances/{instance_id}?wait=10").json
        assert (done["status"], done["table"]["rows"]) == ("completed", 1)
        assert table(client, instance_id, 3) == [
            ["name", "company", "score", "vip"], ["Ann Lee", "Ariglad Inc", "7", ""],
            ["Bo Kim", "Other Co", "", "true"]]
        assert first_event(client, instance_id)["actor"] == "webhook:leads"

    @pytest.mark.parametrize("headers", [
        {}, {"Authorization": "Bearer wrong"}, {"X-Hook-Token": "wrong"},
        {"Authorization": "Basic d3Jvbmc="},
    ], ids=["none", "wrong-bearer", "wrong-header", "not-bearer"])
    def test_a_call_without_the_token_is_refused_and_starts_nothing(
        self, client: FlaskClient, headers: dict[str, str]
    ) -> None:
        token(client)
        response = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == "hook_unauthorized"
        assert instance_count(client, "leads-webhook") == 0
        assert not [f for f in client.get("/api/files").json["items"]
                    if f["name"].startswith("hook-")]

    def test_the_hook_header_wins_over_a_bearer_token(self, client: FlaskClient) -> None:
        """A client that sends its API token on every request names the hook's token in
        X-Hook-Token."""
        secret = token(client)
        response = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers={
            "Authorization": "Bearer some-api-token", "X-Hook-Token": secret})
        assert response.status_code == 201, response.json

    @pytest.mark.parametrize("path", [
        "/api/hooks/nope/leads", "/api/hooks/leads-webhook/nope"])
    def test_an_unknown_address_answers_as_a_wrong_token(
        self, client: FlaskClient, path: str
    ) -> None:
        """Nothing is learnt about definitions without a token."""
        secret = token(client)
        response = client.post(path, data=LEADS_CSV, content_type="text/csv",
                               headers={"X-Hook-Token": secret})
        assert (response.status_code, response.json["code"]) == (401, "hook_unauthorized")

    @pytest.mark.parametrize(("content_type", "body", "status", "code"), [
        ("text/csv", b"name,company\nAnn,Ariglad,extra\n", 422, "csv_invalid"),
        ("text/csv", b"", 422, "csv_invalid"),
        ("application/json", b"{\"rows\": [", 400, "malformed_json"),
        ("application/json", b"{\"rows\": []}", 422, "hook_rows_invalid"),
        ("application/json", b"{\"leads\": []}", 422, "hook_rows_invalid"),
        ("application/json", b"[{\"name\": {\"first\": \"Ann\"}}]", 422, "hook_rows_invalid"),
        ("application/json", b"[1, 2]", 422, "hook_rows_invalid"),
        ("text/plain", b"name\nAnn\n", 415, "unsupported_media_type"),
    ], ids=["csv-width", "csv-empty", "json-syntax", "no-rows", "wrong-key", "nested",
            "not-objects", "media-type"])
    def test_a_body_that_is_not_rows_is_refused_and_starts_nothing(
        self, client: FlaskClient, content_type: str, body: bytes, status: int, code: str
    ) -> None:
        secret = token(client)
        response = client.post(HOOK, data=body, content_type=content_type,
                               headers={"X-Hook-Token": secret})
        assert (response.status_code, response.json["code"]) == (status, code), response.json
        assert instance_count(client, "leads-webhook") == 0
        assert not [f for f in client.get("/api/files").json["items"]
                    if f["name"].startswith("hook-")]

    def test_a_nested_value_is_named_by_its_path(self, client: FlaskClient) -> None:
        secret = token(client)
        response = client.post(HOOK, json={"rows": [{"name": "Ann"}, {"tags": ["a"]}]},
                               headers={"X-Hook-Token": secret})
        assert [e["path"] for e in response.json["errors"]] == ["rows[1].tags"]

    def test_the_same_idempotency_key_starts_one_instance(self, client: FlaskClient) -> None:
        """A retry answers 200 with the first instance; another body with the key is a
        conflict."""
        headers = {"X-Hook-Token": token(client), "Idempotency-Key": "delivery-1"}
        first = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers=headers)
        again = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json["id"] == again.json["id"]
        other = client.post(HOOK, data=b"name,company\nX,Y\n", content_type="text/csv",
                            headers=headers)
        assert (other.status_code, other.json["code"]) == (409, "instance_exists")
        client.put("/api/definitions/leads-webhook", json={**WEBHOOK, "name": "v2"})
        late = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers=headers)
        assert (late.status_code, late.json["id"], late.json["definition_version"]) == (
            200, first.json["id"], 1)
        assert instance_count(client, "leads-webhook") == 1

    def test_calls_racing_with_one_key_start_one_instance_on_the_winner_s_rows(
        self, client: FlaskClient
    ) -> None:
        """Calls with one Idempotency-Key and different rows, sent at once: one starts the
        instance and it reads its own rows, whoever stored last; the others are 409 and
        leave no file."""
        headers = {"X-Hook-Token": token(client), "Idempotency-Key": "delivery-race"}
        # Pairs of alike bodies: a twin of the winner is its retry (200), and two losing
        # twins remove their one file once, answering 409 both.
        bodies = [f"name,company\nP{i // 2},Ariglad Inc\n".encode() for i in range(8)]
        answers: list[Any] = [None] * len(bodies)
        barrier = threading.Barrier(len(bodies))

        def call(index: int) -> None:
            own = client.application.test_client()
            barrier.wait()
            answers[index] = own.post(HOOK, data=bodies[index], content_type="text/csv",
                                      headers=headers)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, answer in enumerate(answers) if answer.status_code == 201]
        assert len(winners) == 1, [a.json for a in answers]
        winner = winners[0]
        for index, answer in enumerate(answers):
            expected = 201 if index == winner else (
                200 if bodies[index] == bodies[winner] else 409)
            assert answer.status_code == expected, answer.json
        instance_id = answers[winner].json["id"]
        done = client.get(f"/api/instances/{instance_id}?wait=10").json
        assert done["status"] == "completed"
        assert table(client, instance_id, 3) == [["name", "company"],
                                                 [f"P{winner // 2}", "Ariglad Inc"]]
        hook_files = [f["name"] for f in client.get("/api/files").json["items"]
                      if f["name"].startswith("hook-")]
        assert hook_files == [answers[winner].json["inputs"]["reading"]["file"]]

    def test_rotating_the_token_retires_the_old_one(self, client: FlaskClient) -> None:
        old = token(client)
        rotated = client.post("/api/definitions/leads-webhook/triggers/leads/token")
        assert rotated.status_code == 200
        new = rotated.json["token"]
        assert new != old
        assert rotated.json["hook_url"] == f"http://localhost{HOOK}"
        refused = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                              headers={"X-Hook-Token": old})
        taken = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                            headers={"X-Hook-Token": new})
        assert (refused.status_code, taken.status_code) == (401, 201)

    def test_rotating_a_trigger_that_is_not_a_webhook_is_not_found(
        self, client: FlaskClient
    ) -> None:
        token(client)
        response = client.post("/api/definitions/leads-webhook/triggers/nope/token")
        assert (response.status_code, response.json["code"]) == (404, "trigger_not_found")

    def test_a_new_version_keeps_the_token_and_shows_none(self, client: FlaskClient) -> None:
        secret = token(client)
        document = {**WEBHOOK, "name": "Leads posted, v2"}
        saved = client.put("/api/definitions/leads-webhook", json=document)
        assert (saved.status_code, saved.json["version"], saved.json["hook_tokens"]) == (
            201, 2, None)
        response = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                               headers={"X-Hook-Token": secret})
        assert (response.status_code, response.json["definition_version"]) == (201, 2)

    def test_a_webhook_removed_then_declared_again_gets_a_new_token(
        self, client: FlaskClient
    ) -> None:
        old = token(client)
        without = {key: value for key, value in WEBHOOK.items() if key != "triggers"}
        assert client.put("/api/definitions/leads-webhook", json=without).status_code == 201
        again = client.put("/api/definitions/leads-webhook", json=WEBHOOK)
        assert again.status_code == 201
        new = again.json["hook_tokens"]["leads"]
        assert new != old
        refused = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                              headers={"X-Hook-Token": old})
        taken = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                            headers={"X-Hook-Token": new})
        assert (refused.status_code, taken.status_code) == (401, 201)

    def test_a_disabled_webhook_starts_nothing(self, client: FlaskClient) -> None:
        secret = token(client)
        document = {**WEBHOOK, "triggers": [{**WEBHOOK["triggers"][0], "enabled": False}]}
        client.put("/api/definitions/leads-webhook", json=document)
        response = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                               headers={"X-Hook-Token": secret})
        assert response.status_code == 401

    def test_the_token_is_never_in_the_definition(self, client: FlaskClient) -> None:
        secret = token(client)
        assert secret not in client.get("/api/definitions/leads-webhook").text
        assert secret not in client.get("/api/triggers").text


_CELLS = st.one_of(st.none(), st.text(max_size=12), st.integers(-10**6, 10**6),
                   st.booleans())


@hypothesis_settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.dictionaries(st.sampled_from(["name", "company"]), _CELLS,
                                     min_size=1), min_size=1, max_size=6))
def test_posted_json_rows_are_the_table_the_run_reads(
    rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever the rows, read_csv reads them back as sent, every row: each value as its
    text, a null or a missing key as an empty cell, formulas untouched."""
    area = LocalArea(tmp_path_factory.mktemp("rows"))
    frame = _json_rows(json.dumps({"rows": rows}).encode())
    with area.file("rows.csv").writing() as out:
        write_csv_table(frame, out, neutralise=False)
    if all(value in (None, "") for row in rows for value in row.values()):
        return  # a CSV of empty cells only has no rows to read back: refused as empty
    read = read_csv_table(area.existing("rows.csv"))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    assert list(read.columns) == columns

    def text(value: Any) -> str | None:
        if value is None or value == "":
            return None
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    expected = [[text(row.get(column)) for column in columns] for row in rows]
    got = [[None if pd.isna(v) or v == "" else v for v in line]
           for line in read.astype(object).values.tolist()]
    assert got == expected


class TestWithApiTokens:
    def test_a_hook_takes_its_own_token_and_the_rest_their_scopes(
        self, tmp_path: Path, database_url: str, build_app: BuildApp
    ) -> None:
        """An API token is no hook token; listing needs read, rotating needs admin."""
        tokens = {"reader": "r-" + "a" * 40, "admin": "d-" + "c" * 40}
        entries = [{"name": "reader", "scopes": ["read"], "sha256": digest(tokens["reader"])},
                   {"name": "admin", "scopes": ["admin"], "sha256": digest(tokens["admin"])}]
        settings = make_settings(tmp_path, database_url=database_url,
                                 api_tokens=json.dumps(entries))
        client = build_app(settings).test_client()
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        saved = client.post("/api/definitions", json=WEBHOOK, headers=admin)
        secret = saved.json["hook_tokens"]["leads"]
        as_admin = client.post(HOOK, data=LEADS_CSV, content_type="text/csv", headers=admin)
        assert (as_admin.status_code, as_admin.json["code"]) == (401, "hook_unauthorized")
        taken = client.post(HOOK, data=LEADS_CSV, content_type="text/csv",
                            headers={"Authorization": f"Bearer {secret}"})
        assert taken.status_code == 201
        assert client.get("/api/triggers").status_code == 401
        assert client.get("/api/triggers", headers=reader).status_code == 200
        rotate = "/api/definitions/leads-webhook/triggers/leads/token"
        assert client.post(rotate, headers=reader).status_code == 403
        assert client.post(rotate, headers=admin).status_code == 200


def schedule(cron: str = "*/5 * * * *", **trigger: Any) -> dict[str, Any]:
    return {
        "id": "every-five", "name": "Every five minutes",
        "triggers": [{"id": "tick", "type": "schedule", "cron": cron, **trigger}],
        "states": [
            {"id": "reading", "name": "Reading", "is_initial": True,
             "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
            {"id": "done", "name": "Done", "is_final": True},
        ],
        "actions": [{"id": "finish", "name": "Finish", "trigger": "auto",
                     "from_states": ["reading"], "to_state": "done"}],
    }


class TestDefinitionChecks:
    @pytest.mark.parametrize(("trigger", "path", "code"), [
        ({"type": "schedule", "cron": "61 * * * *"}, "triggers[0].cron", "invalid_cron"),
        ({"type": "schedule", "cron": "every monday"}, "triggers[0].cron", "invalid_cron"),
        ({"type": "schedule"}, "triggers[0].cron", "missing_field"),
        ({"type": "schedule", "cron": "* * * * *", "timezone": "Mars/Olympus"},
         "triggers[0].timezone", "invalid_timezone"),
        ({"type": "webhook", "cron": "* * * * *"}, "triggers[0].cron", "not_for_webhook"),
        ({"type": "hourly"}, "triggers[0].type", "literal_error"),
    ], ids=["range", "words", "missing", "timezone", "webhook-cron", "type"])
    def test_a_bad_trigger_is_refused_at_its_path(
        self, client: FlaskClient, trigger: dict[str, Any], path: str, code: str
    ) -> None:
        document = schedule()
        document["triggers"] = [{"id": "t", **trigger}]
        response = client.post("/api/definitions", json=document)
        assert (response.status_code, response.json["code"]) == (422, "definition_invalid")
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [(path, code)]

    def test_a_webhook_needs_an_initial_read_csv(self, client: FlaskClient) -> None:
        document = {"id": "plain", "name": "Plain",
                    "states": [{"id": "a", "name": "A", "is_initial": True, "is_final": True}],
                    "triggers": [{"id": "w", "type": "webhook"}]}
        response = client.post("/api/definitions", json=document)
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
            ("triggers[0]", "trigger_needs_read_csv")]

    def test_trigger_ids_are_unique(self, client: FlaskClient) -> None:
        document = schedule()
        document["triggers"] *= 2
        response = client.post("/api/definitions", json=document)
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
            ("triggers[1].id", "duplicate_trigger_id")]


@hypothesis_settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="0123456789*/,- abcJANMON?LW#", max_size=30))
def test_any_cron_text_is_accepted_or_refused_at_its_path(text: str) -> None:
    """Never an exception: croniter accepts the text, or the one problem names
    triggers[0].cron."""
    document = schedule(text)
    document["states"][0]["block"] = None
    checked = check_definition(document)
    assert all(p.path == "triggers[0].cron" for p in checked.errors), checked.errors
    assert checked.valid == croniter.is_valid(text)


def service_of(app: Flask) -> WorkflowService:
    found: WorkflowService = app.extensions[EXTENSION]
    return found


def loop_of(app: Flask) -> ScheduleLoop:
    found: ScheduleLoop = app.extensions[SCHEDULES]
    return found


class TestSchedule:
    def test_each_tick_starts_one_instance_once(
        self, app: Flask, client: FlaskClient, clock: FrozenClock
    ) -> None:
        """Saved at 12:00:30: 12:00 is before it; 12:05 fires once however many rounds
        run; nothing more until 12:10."""
        post(client, schedule())
        loop = loop_of(app)
        assert loop.tick().started == []
        clock.set(ms("12:05"))
        started = loop.tick().started
        assert len(started) == 1
        assert loop.tick().started == []
        clock.set(ms("12:09"))
        assert loop.tick().started == []
        assert instance_count(client, "every-five") == 1
        event = first_event(client, started[0].id)
        assert (event["type"], event["actor"]) == ("instance_started", "schedule:tick")
        assert started[0].context == {"trigger": {"id": "tick", "type": "schedule",
                                                  "tick_at": ms("12:05")}}

    def test_missed_ticks_fire_only_the_latest(
        self, app: Flask, client: FlaskClient, clock: FrozenClock
    ) -> None:
        """Down from 12:06 to 12:31: 12:10 ... 12:30 were missed; only 12:30 fires."""
        post(client, schedule())
        clock.set(ms("12:05"))
        loop_of(app).tick()
        clock.set(ms("12:31"))
        assert len(loop_of(app).tick().started) == 1
        ticks = service_of(app).schedule_ticks("every-five", "tick")
        assert [tick for tick, _ in ticks] == [ms("12:05"), ms("12:30")]

    def test_the_next_tick_is_listed_and_the_round_wakes_for_it(
        self, app: Flask, client: FlaskClient, clock: FrozenClock
    ) -> None:
        post(client, schedule(timezone="Europe/Paris", cron="0 14 * * *"))
        assert loop_of(app).tick().next_at == ms("13:00")  # 14:00 in Paris is 13:00 UTC
        clock.set(ms("13:00"))
        assert len(loop_of(app).tick().started) == 1
        listed = client.get("/api/definitions/every-five/triggers").json["items"]
        assert [(t["id"], t["type"], t["cron"], t["timezone"]) for t in listed] == [
            ("tick", "schedule", "0 14 * * *", "Europe/Paris")]
        assert listed[0]["next_fire_at"] == "2026-01-06T13:00:00.000Z"
        assert listed[0]["last_fired_at"] == "2026-01-05T13:00:00.000Z"
        assert listed[0]["hook_url"] is None

    def test_an_input_file_is_what_the_run_reads(
        self, app: Flask, client: FlaskClient, clock: FrozenClock, settings: Settings
    ) -> None:
        settings.files_dir.mkdir(parents=True, exist_ok=True)
        (settings.files_dir / "nightly.csv").write_text("name\nAnn\nBo\nCid\n")
        (settings.files_dir / "leads.csv").write_text("name\nAnn\n")
        post(client, schedule(input_file="nightly.csv"))
        clock.set(ms("12:05"))
        [started] = loop_of(app).tick().started
        assert started.inputs == {"reading": {"file": "nightly.csv"}}
        done = client.get(f"/api/instances/{started.id}?wait=10").json
        assert (done["status"], done["table"]["rows"]) == ("completed", 3)

    def test_a_disabled_schedule_fires_nothing(
        self, app: Flask, client: FlaskClient, clock: FrozenClock
    ) -> None:
        post(client, schedule(enabled=False))
        clock.set(ms("12:05"))
        assert loop_of(app).tick().started == []

    def test_two_processes_racing_for_one_tick_start_one_instance(
        self, app: Flask, client: FlaskClient, clock: FrozenClock, settings: Settings
    ) -> None:
        """Two apps on one database, both past their read and at the claim at once."""
        post(client, schedule())
        other = open_app(settings, clock=clock)
        try:
            clock.set(ms("12:05"))
            both = threading.Barrier(2, timeout=30)
            services = [service_of(app), service_of(other)]
            for service in services:
                fire_tick = service._fire_tick

                def raced(*args: Any, _fire: Any = fire_tick) -> Any:
                    both.wait()  # each has read that nobody claimed the tick
                    return _fire(*args)

                service._fire_tick = raced  # type: ignore[method-assign]
            rounds: list[int] = []
            errors: list[BaseException] = []

            def tick(loop: ScheduleLoop) -> None:
                try:
                    rounds.append(len(loop.tick().started))
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=tick, args=(loop_of(a),)) for a in (app, other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert sorted(rounds) == [0, 1]
            assert instance_count(client, "every-five") == 1
            assert len(service_of(app).schedule_ticks("every-five", "tick")) == 1
        finally:
            close_app(other)


@pytest.mark.slow
def test_two_server_processes_fire_each_tick_once(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Two real servers on one PostgreSQL database, each with its schedule loop, a
    schedule every second: every tick that started an instance started exactly one."""
    database_url = postgres.create_database()
    document = schedule("* * * * * *")
    document["states"][0]["block"] = None
    with running_server(database_url, data_dir=tmp_path) as first, \
            running_server(database_url, data_dir=tmp_path) as second:
        httpx.post(f"{first.url}/api/definitions", json=document).raise_for_status()
        deadline = time.monotonic() + 30
        items: list[dict[str, Any]] = []
        while len(items) < 4 and time.monotonic() < deadline:
            # Polling the outcome, not synchronising: the ticks come at their own pace.
            time.sleep(0.25)
            items = httpx.get(f"{second.url}/api/instances",
                              params={"definition_id": "every-five"}).json()["items"]
        assert len(items) >= 4
    database = database_url.rsplit("/", 1)[1]
    ticks = postgres.sql("SELECT tick_at, instance_id FROM trigger_ticks ORDER BY tick_at",
                         database).split()
    instances = postgres.sql(
        "SELECT count(*) FROM instances WHERE definition_id = 'every-five'", database).strip()
    claimed = [line.split("|") for line in ticks]
    assert int(instances) == len(claimed)
    assert len({tick for tick, _ in claimed}) == len(claimed)
    assert len({instance for _, instance in claimed}) == len(claimed)
    actors = postgres.sql(
        "SELECT DISTINCT actor FROM events WHERE type = 'instance_started'", database).split()
    assert actors == ["schedule:tick"]


@pytest.mark.slow
def test_a_hook_takes_bodies_as_large_as_an_upload_over_http(
    tmp_path: Path, database_url: str
) -> None:
    """The real front lets a hook's rows past MAX_BODY_BYTES, up to MAX_UPLOAD_BYTES; a
    larger body is refused before it is read whole, and starts nothing."""
    env = {"MAX_BODY_BYTES": "4096", "MAX_UPLOAD_BYTES": "65536"}
    rows = b"name,company\n" + b"Ann Lee,Ariglad Inc\n" * 1000  # 20 KB
    with running_server(database_url, data_dir=tmp_path, definitions=DEFINITIONS,
                        env=env) as server, httpx.Client(base_url=server.url) as client:
        secret = client.post("/api/definitions/leads-webhook/triggers/leads/token").json()[
            "token"]
        headers = {"Content-Type": "text/csv", "X-Hook-Token": secret}
        taken = client.post(HOOK, content=rows, headers=headers)
        assert taken.status_code == 201, taken.text
        refused = client.post(HOOK, content=rows * 4, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (413, "payload_too_large")
        json_too_large = client.post("/api/definitions/validate", content=rows,
                                     headers={"Content-Type": "application/json"})
        assert json_too_large.status_code == 413
        listed = client.get("/api/instances", params={"definition_id": "leads-webhook"})
        assert len(listed.json()["items"]) == 1
