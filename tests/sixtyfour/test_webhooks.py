"""Webhook mode: results arrive at our endpoint; polls are only the fallback."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import ROOT, BuildApp, make_settings
from tests.sixtyfour.conftest import Sandbox
from tests.sixtyfour.test_blocks import EDUCATION, pipeline
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.sixtyfour import _QuietHandler


@dataclass
class Served:
    url: str
    app: Flask


@pytest.fixture
def served(
    tmp_path: Path, sandbox: Sandbox, database_url: str, build_app: BuildApp
) -> Iterator[Served]:
    """The app on a real loopback port, telling the sandbox to call it back."""
    (tmp_path / "files").mkdir()
    shutil.copy(ROOT / "data" / "leads.csv", tmp_path / "files" / "leads.csv")
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True,
                         request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.port}"
    app = build_app(make_settings(
        tmp_path, database_url=database_url, sixtyfour_api_key="sandbox-key",
        sixtyfour_base_url=sandbox.url,
        sixtyfour_rate_per_minute=6000, public_url=url, webhook_secret="s3cret"))
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(url, app)
    server.shutdown()
    server.server_close()
    app.extensions[RUNNER].close()
    app.extensions[EXTENSION].store.dispose()


def test_results_arrive_by_webhook_without_polls(served: Served, sandbox: Sandbox) -> None:
    http = httpx.Client(base_url=served.url, timeout=60)
    http.post("/api/definitions", json=pipeline(EDUCATION)).raise_for_status()
    http.post("/api/instances", json={"definition_id": "p", "id": "w"}).raise_for_status()
    done = http.post("/api/instances/w/actions/run?wait=30").json()
    assert done["status"] == "completed", done
    rows: list[dict[str, Any]] = http.get("/api/instances/w/data").json()["rows"]
    assert len(rows) == 15
    assert all(r["education"] and r["enrich_error"] is None for r in rows)
    stats = sandbox.stats()
    assert stats["requests"].get("polls", 0) == 0
    assert stats["requests"]["webhooks"] == stats["billable_submissions"] == 15


def test_a_bulk_answer_arrives_by_webhook_as_a_list_split_per_lead(
    served: Served, sandbox: Sandbox
) -> None:
    """The bulk job's webhook carries the bare list of per-lead answers: each row gets its
    own, with one submission, one webhook and no poll."""
    http = httpx.Client(base_url=served.url, timeout=60)
    http.post("/api/definitions", json=pipeline(
        {"type": "find_email", "params": {}})).raise_for_status()
    http.post("/api/instances", json={"definition_id": "p", "id": "w"}).raise_for_status()
    done = http.post("/api/instances/w/actions/run?wait=30").json()
    assert done["status"] == "completed", done
    rows: list[dict[str, Any]] = http.get("/api/instances/w/data").json()["rows"]
    looked_up = [r for r in rows if r["email_status"] != "EXISTING"]
    assert len(looked_up) == 9
    assert all(r["enrich_error"] is None for r in rows)
    assert all(r["email"] for r in looked_up if r["email_status"] != "NOT_FOUND")
    stats = sandbox.stats()
    assert stats["requests"].get("polls", 0) == 0
    assert (stats["requests"]["bulk_submissions"], stats["requests"]["webhooks"],
            stats["billable_submissions"]) == (1, 1, 9)


@pytest.mark.parametrize(("path", "body"), [
    ("/api/webhooks/sixtyfour/wrong", {"task_id": "t", "status": "completed", "result": {}}),
    ("/api/webhooks/sixtyfour/s3cret", {"task_id": "not-ours", "status": "completed",
                                        "result": {}}),
    ("/api/webhooks/sixtyfour/s3cret", ["not", "an", "object"]),
])
def test_calls_we_did_not_ask_for_are_refused(
    served: Served, path: str, body: Any
) -> None:
    response = httpx.post(served.url + path, json=body)
    assert (response.status_code, response.json()["code"]) == (404, "unknown_webhook")


def test_a_task_finished_already_is_acknowledged_without_taking_it(
    served: Served, sandbox: Sandbox
) -> None:
    http = httpx.Client(base_url=served.url, timeout=60)
    http.post("/api/definitions", json=pipeline(EDUCATION)).raise_for_status()
    http.post("/api/instances", json={"definition_id": "p", "id": "w2"}).raise_for_status()
    http.post("/api/instances/w2/actions/run?wait=30").raise_for_status()
    enricher = served.app.extensions[RUNNER].enrichment.get()
    finished = next(iter(enricher._recently_finished))
    again = httpx.post(f"{served.url}/api/webhooks/sixtyfour/s3cret", json={
        "task_id": finished, "status": "completed", "result": {"structured_data": {}}})
    assert (again.status_code, again.json()) == (200, {"accepted": False})


def test_a_task_another_process_finished_is_acknowledged_too(
    served: Served, sandbox: Sandbox, database_url: str, build_app: BuildApp, tmp_path: Path,
) -> None:
    """A server that never waited on the task (another process's, finished already) still
    knows it from the database: 200 accepted false, so the API stops calling."""
    http = httpx.Client(base_url=served.url, timeout=60)
    http.post("/api/definitions", json=pipeline(EDUCATION)).raise_for_status()
    http.post("/api/instances", json={"definition_id": "p", "id": "w3"}).raise_for_status()
    http.post("/api/instances/w3/actions/run?wait=30").raise_for_status()
    finished = next(iter(served.app.extensions[RUNNER].enrichment.get()._recently_finished))
    other = build_app(make_settings(
        tmp_path / "other", database_url=database_url, sixtyfour_api_key="sandbox-key",
        sixtyfour_base_url=sandbox.url, webhook_secret="s3cret"))
    again = other.test_client().post("/api/webhooks/sixtyfour/s3cret", json={
        "task_id": finished, "status": "completed", "result": {"structured_data": {}}})
    assert (again.status_code, again.json) == (200, {"accepted": False})
