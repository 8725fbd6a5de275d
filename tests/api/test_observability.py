"""Request ids, structured request logs, and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient

from tests.api.conftest import post_definition, run
from tests.api.test_pipelines import ariglad
from workflow_engine import logs
from workflow_engine.logs import configure


def metric(client: FlaskClient, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 if absent)."""
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            body = line[len(name):]
            found = dict(part.split("=", 1) for part in body[1:body.index("}")].split(",")
                         if part) if body.startswith("{") else {}
            if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestRequestIds:
    def test_made_when_not_sent(self, client: FlaskClient) -> None:
        first = client.get("/health").headers["X-Request-ID"]
        second = client.get("/health").headers["X-Request-ID"]
        assert len(first) == 32
        assert first != second

    def test_a_callers_id_is_kept_and_junk_replaced(self, client: FlaskClient) -> None:
        assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers[
            "X-Request-ID"] == "abc-123"
        junk = client.get("/health", headers={"X-Request-ID": "x" * 500}).headers
        assert junk["X-Request-ID"] != "x" * 500

    def test_errors_carry_one_too(self, client: FlaskClient) -> None:
        assert "X-Request-ID" in client.get("/nowhere").headers


def test_one_json_line_per_request(client: FlaskClient, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    configure("INFO")
    try:
        client.get("/api/definitions", headers={"X-Request-ID": "req-1",
                                                "Authorization": "Bearer secret-value"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
                 if line.startswith("{")]
    finally:
        # Back to the defaults: the configured loggers hold pytest's stream, closed later.
        logging.getLogger().handlers[:] = []
        logs._request_log = structlog.get_logger("workflow_engine.request")
    entry = next(line for line in lines if line.get("request_id") == "req-1")
    assert {k: entry[k] for k in ("event", "method", "route", "status", "level")} == {
        "event": "request", "method": "GET", "route": "/api/definitions", "status": 200,
        "level": "info"}
    assert entry["ms"] >= 0
    assert "secret-value" not in json.dumps(lines)


class TestQueueWarnings:
    """waitress's warning of a deep task queue, at most once per interval."""

    def test_one_record_per_interval_and_the_count_held_back(self) -> None:
        now = [100.0]
        sparse = logs.OncePer(10, clock=lambda: now[0])

        def record() -> logging.LogRecord:
            return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1,
                                     "Task queue depth is %d", (3,), None)

        passed = [sparse.filter(record()) for _ in range(50)]
        assert passed == [True] + [False] * 49
        now[0] += 9.9
        assert not sparse.filter(record())
        now[0] += 0.1
        shown = record()
        assert sparse.filter(shown)
        assert shown.getMessage() == "Task queue depth is 3 (50 more held back over 10 s)"
        now[0] += 10
        quiet = record()
        assert sparse.filter(quiet)
        assert quiet.getMessage() == "Task queue depth is 3"

    def test_configure_filters_waitress_s_queue_logger_once(self) -> None:
        queue = logging.getLogger("waitress.queue")
        try:
            configure("INFO")
            configure("INFO")
            assert sum(isinstance(f, logs.OncePer) for f in queue.filters) == 1
        finally:
            logging.getLogger().handlers[:] = []
            logs._request_log = structlog.get_logger("workflow_engine.request")


class TestMetrics:
    def test_requests_by_route_and_status(self, client: FlaskClient) -> None:
        client.get("/api/instances/nope")
        assert metric(client, "workflow_http_requests_total",
                      route="/api/instances/<instance_id>", status="404") == 1
        assert metric(client, "workflow_http_request_duration_seconds_count",
                      route="/api/instances/<instance_id>", method="GET") == 1

    def test_transitions_blocks_and_instances(self, client: FlaskClient) -> None:
        post_definition(client, ariglad())
        run(client, "ariglad-leads")
        assert metric(client, "workflow_transitions_total", definition="ariglad-leads",
                      trigger="manual") == 1
        assert metric(client, "workflow_transitions_total", definition="ariglad-leads",
                      trigger="auto") == 2
        assert metric(client, "workflow_blocks_total", block="filter",
                      outcome="succeeded") == 1
        assert metric(client, "workflow_block_duration_seconds_count", block="read_csv") == 1
        assert metric(client, "workflow_instances", status="completed") == 1

    def test_failed_blocks_are_counted(self, client: FlaskClient, settings: Any) -> None:
        document = ariglad()
        del document["states"][1]["on_error"]
        document["states"][1]["block"]["params"]["file"] = "missing.csv"
        post_definition(client, document)
        run(client, "ariglad-leads")
        assert metric(client, "workflow_blocks_total", block="read_csv",
                      outcome="failed") == 1
        assert metric(client, "workflow_instances", status="failed") == 1

    def test_metrics_declared_for_the_enrichment_client(self, client: FlaskClient) -> None:
        text = client.get("/metrics").text
        for name in ("workflow_upstream_requests", "workflow_rate_budget_wait_seconds",
                     "workflow_rows_enriched"):
            assert f"# TYPE {name}" in text


FORKED_IDS = """
import os
from workflow_engine.api import observability

before = observability._new_request_id()
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.write(write, observability._new_request_id().encode())
    os._exit(0)
os.close(write)
forked = os.read(read, 64).decode()
os.waitpid(child, 0)
print(before, forked, observability._new_request_id())
"""


def test_a_process_forked_after_import_makes_request_ids_of_its_own() -> None:
    """gunicorn forks its workers from a master that may have imported the module: the
    child's ids share neither the parent's tag nor its next ids."""
    done = subprocess.run([sys.executable, "-c", FORKED_IDS], capture_output=True, text=True,
                          check=True)
    before, forked, after = done.stdout.split()
    assert forked != after
    assert forked[:22] not in (before[:22], after[:22])
    assert before[:22] == after[:22]
