"""gunicorn with the shipped configuration (``gunicorn -c
python:workflow_engine.gunicorn_conf -w 2``), as an operator starts it: real processes
over loopback HTTP, on a fresh database."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from tests.conftest import DEFINITIONS, ROOT
from tests.test_server import stored_task_ids
from workflow_engine.testing import (
    SandboxProcess,
    ServerProcess,
    free_port,
    running_gunicorn,
    serving_processes,
)

pytestmark = pytest.mark.slow

SAMPLES = {"SAMPLES_DIR": str(ROOT / "data")}
# A sync worker serves one connection at a time: while one is held, the other takes every
# new connection, so the test knows which requests two different processes answered.
SYNC = ["-k", "sync", "--threads", "1"]
TAG = 22  # hex digits of a request id that name the process that made it


def stop_with_sigterm(server: ServerProcess) -> int:
    """SIGTERM to the master alone, as a process manager sends it; its exit status."""
    os.kill(server.process.pid, signal.SIGTERM)
    return server.process.wait(timeout=20)


def held_request(url: str, body: bytes) -> http.client.HTTPConnection:
    """A POST whose headers are sent and whose body is not yet: the worker that took it
    waits for the body, and takes no other connection meanwhile."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.putrequest("POST", "/api/instances")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    return connection


def test_two_workers_on_an_empty_database_serve_as_one(tmp_path: Path, database_url: str
                                                        ) -> None:
    """Both workers build their app on an empty database at once, each under a name of its
    own; instances start and fire through either; 24 concurrent fires on one instance have
    one winner; request ids never repeat across the workers; SIGTERM stops it all with
    status 0, each worker's runner closed."""
    with running_gunicorn(database_url, workers=2, definitions=DEFINITIONS, data_dir=tmp_path,
                          env=SAMPLES, options=SYNC) as server:
        names = serving_processes(server)
        assert len(names) == 2
        assert len(set(names.values())) == 2
        assert all(f":{pid}:" in name for pid, name in names.items())

        listed = httpx.get(f"{server.url}/api/definitions").json()["items"]
        assert {"document-approval", "lead-qualification"} <= {d["id"] for d in listed}
        started = httpx.post(f"{server.url}/api/instances",
                             json={"definition_id": "lead-qualification", "id": "lead"})
        assert started.status_code == 201, started.text
        fired = httpx.post(f"{server.url}/api/instances/lead/actions/start_research")
        assert fired.json()["current_state"] == "researching", fired.text

        httpx.post(f"{server.url}/api/instances", json={
            "definition_id": "document-approval", "id": "race"}).raise_for_status()
        start = threading.Barrier(24)
        statuses: list[int] = []
        ids: list[str] = []
        lock = threading.Lock()

        def fire() -> None:
            with httpx.Client(timeout=30) as client:
                start.wait()
                answer = client.post(f"{server.url}/api/instances/race/actions/"
                                     "submit_for_review")
            with lock:
                statuses.append(answer.status_code)
                ids.append(answer.headers["X-Request-ID"])

        threads = [threading.Thread(target=fire) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert Counter(statuses) == {200: 1, 409: 23}
        history = httpx.get(f"{server.url}/api/instances/race/history").json()["items"]
        assert [event["seq"] for event in history] == [1, 2]

        body = json.dumps({"definition_id": "document-approval", "id": "held"}).encode()
        held = held_request(server.url, body)
        elsewhere = [httpx.get(f"{server.url}/health").headers["X-Request-ID"]
                     for _ in range(5)]
        held.send(body)
        answer = held.getresponse()
        assert answer.status == 201
        first = answer.getheader("X-Request-ID") or ""
        held.close()
        ids += [first, *elsewhere]
        assert len(set(ids)) == len(ids)
        assert all(other[:TAG] != first[:TAG] for other in elsewhere)

        assert stop_with_sigterm(server) == 0
        stopped = server.output()
        assert all(f"process {pid} stopped" in stopped for pid in names)


def test_the_shipped_configuration_runs_blocks_and_stops_them_on_sigterm(
    tmp_path: Path
) -> None:
    """With gunicorn_conf's own workers (gthread), a shipped pipeline runs its blocks in
    the worker that took the fire; SIGTERM in the middle of an enrichment stops the worker
    at once, its run released for the next process (not run on until gunicorn's
    graceful timeout kills the worker), and gunicorn exits with status 0."""
    database_url = f"sqlite:///{tmp_path / 'wf.db'}"
    sandbox = SandboxProcess(rate=6000, latency=0.2)
    leads = len((ROOT / "data" / "leads.csv").read_text().splitlines()) - 1
    env = {**SAMPLES, "SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_BASE_URL": sandbox.url,
           "SIXTYFOUR_RATE_PER_MINUTE": "6000"}
    try:
        with running_gunicorn(database_url, workers=2, definitions=DEFINITIONS,
                              data_dir=tmp_path, env=env) as server:
            httpx.post(f"{server.url}/api/instances", json={
                "definition_id": "ariglad-leads", "id": "leads"}).raise_for_status()
            done = httpx.post(f"{server.url}/api/instances/leads/actions/run",
                              params={"wait": 10}, timeout=20).json()
            assert (done["status"], done["current_state"]) == ("completed", "saved"), done
            saved = httpx.get(f"{server.url}/api/outputs/ariglad-leads.csv")
            assert saved.status_code == 200
            assert "Ariglad" in saved.text

            sandbox.configure(hold_results=True)  # every job runs until released
            httpx.post(f"{server.url}/api/instances", json={
                "definition_id": "leads-enriched", "id": "enriched"}).raise_for_status()
            httpx.post(f"{server.url}/api/instances/enriched/actions/run").raise_for_status()
            # The store's commit of every task id is the signal: waited for, with a deadline.
            deadline = time.monotonic() + 30
            while stored_task_ids(database_url) < leads:
                assert time.monotonic() < deadline, "task ids were not all stored"
                time.sleep(0.02)
            stopping = time.monotonic()
            assert stop_with_sigterm(server) == 0
            assert time.monotonic() - stopping < 10, server.output()
            assert "block enrich_lead of enriched interrupted" in server.output()
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                run = connection.exec_driver_sql(
                    "SELECT status, worker FROM block_runs WHERE instance_id = 'enriched' "
                    "AND block = 'enrich_lead'").one()
        finally:
            engine.dispose()
        assert tuple(run) == ("pending", None)
    finally:
        sandbox.stop()


@pytest.mark.parametrize(("bind", "env", "refusal"), [
    ("0.0.0.0", {}, "refusing to serve on 0.0.0.0"),
    ("", {}, "refusing to serve on "),
    ("127.0.0.1", {"WORKER_NAME": "web"}, "WORKER_NAME='web' would name every process"),
    ("127.0.0.1", {"PUBLIC_URL": "https://engine.example"}, "without WEBHOOK_SECRET"),
], ids=["all-interfaces", "empty-host", "worker-name", "public-url"])
def test_gunicorn_refuses_what_it_cannot_serve_safely(
    tmp_path: Path, bind: str, env: dict[str, str], refusal: str
) -> None:
    """The master refuses before it listens or forks: an open API beyond loopback (``:port``
    is every interface), one name for every worker, a webhook secret each would make up."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:workflow_engine.gunicorn_conf",
         "-b", f"{bind}:{free_port()}"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}", **env},
    )
    assert result.returncode == 1, result.stderr
    assert refusal in result.stderr
    assert "Booting worker" not in result.stderr
    assert not (tmp_path / "wf.db").exists()


def test_a_worker_that_cannot_build_its_app_stops_gunicorn(tmp_path: Path) -> None:
    """A broken start (here, a missing definitions directory) stops gunicorn with status
    3, rather than having the master respawn workers that fail the same way. One worker:
    when two fail at once, gunicorn's master meets the second while halting for the first
    and exits 1 from the exception instead (gunicorn's own race, not the engine's)."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:workflow_engine.gunicorn_conf",
         "-w", "1", "-b", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}",
             "DEFINITIONS_DIR": str(tmp_path / "missing")},
    )
    assert result.returncode == 3, result.stderr
    assert f"The definitions directory {tmp_path / 'missing'} does not exist" in result.stderr
    assert "Worker failed to boot" in result.stderr
