"""The real server, as run_server.py starts it, over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from sqlalchemy import create_engine

from tests.conftest import DEFINITIONS, ROOT, approval
from workflow_engine.testing import (
    SandboxProcess,
    ServerProcess,
    free_port,
    running_server,
    wait_until_up,
)

pytestmark = pytest.mark.slow


def start(base: str, definition_id: str = "approval", **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/api/instances", json={"definition_id": definition_id, **body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_run_server_serves_the_shipped_definitions(tmp_path: Path) -> None:
    """run_server.py itself starts waitress with the shipped definitions loaded."""
    port = free_port()
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_server.py"), "--port", str(port),
             "--db", str(tmp_path / "wf.db"), "--definitions", str(DEFINITIONS)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
        try:
            wait_until_up(server, 30)
            listed = httpx.get(f"{server.url}/api/definitions").json()["items"]
            assert {"document-approval", "lead-qualification"} <= {d["id"] for d in listed}
            assert "with waitress" in server.output()
        finally:
            server.stop()


def test_a_server_on_a_taken_port_stops_before_it_touches_the_database(
    tmp_path: Path,
) -> None:
    """The port is bound before the application takes back block runs: a second server
    on a served port exits at once with the reason, and the first serves on."""
    db = tmp_path / "wf.db"
    with running_server(db, definitions=DEFINITIONS) as first:
        port = first.url.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "workflow_engine.server", "--port", port, "--db",
             str(db)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert second.returncode == 1
        assert f"Cannot serve on 127.0.0.1:{port}" in second.stderr
        assert "resuming" not in second.stderr + second.stdout
        assert httpx.get(f"{first.url}/api/health").status_code == 200


def test_port_zero_serves_on_a_free_port_and_is_named_by_it(tmp_path: Path) -> None:
    """``--port 0`` takes a free port, says which, and names the server by it."""
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workflow_engine.server", "--port", "0",
             "--db", str(tmp_path / "wf.db"), "--log-level", "INFO"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
        server = ServerProcess("http://127.0.0.1:0", process, log)
        try:
            deadline = time.monotonic() + 30  # a deadline for a loaded machine
            while "serving on http" not in server.output() and time.monotonic() < deadline:
                assert process.poll() is None, server.output()
                time.sleep(0.05)
            url = re.search(r"serving on (http://\S+)", server.output())[1]  # type: ignore[index]
            assert not url.endswith(":0")
            assert httpx.get(f"{url}/api/health").status_code == 200
        finally:
            server.stop()


def test_concurrent_fires_have_exactly_one_winner(tmp_path: Path, database_url: str) -> None:
    """50 clients fire the same action at once: one 200, 49 409, one more history event."""
    with running_server(database_url, data_dir=tmp_path, threads=16) as server:
        httpx.post(f"{server.url}/api/definitions", json=approval()).raise_for_status()
        instance = start(server.url)
        url = f"{server.url}/api/instances/{instance['id']}/actions/submit"
        barrier = threading.Barrier(50)
        statuses: list[int] = []
        lock = threading.Lock()

        def fire() -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                status = client.post(url).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=fire) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(statuses) == [200] + [409] * 49
        events = httpx.get(f"{server.url}/api/instances/{instance['id']}/history").json()
        assert [e["seq"] for e in events["items"]] == [1, 2]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_everything_survives_a_restart(
    tmp_path: Path, stop_signal: signal.Signals, database_url: str
) -> None:
    """Definitions, instances and history are intact after a stop, even a SIGKILL."""
    db = database_url
    with running_server(db, data_dir=tmp_path) as server:
        httpx.post(f"{server.url}/api/definitions", json=approval()).raise_for_status()
        instance = start(server.url, id="kept", context={"n": 1})
        for action in ["submit", "rework", "submit"]:
            response = httpx.post(f"{server.url}/api/instances/kept/actions/{action}",
                                  headers={"X-Actor": "ann"})
            assert response.status_code == 200
        before = httpx.get(f"{server.url}/api/instances/kept").json()
        history = httpx.get(f"{server.url}/api/instances/kept/history").json()
        server.stop(stop_signal)

    with running_server(db, data_dir=tmp_path) as server:
        after = httpx.get(f"{server.url}/api/instances/kept").json()
        assert after == before
        assert after["current_state"] == "review"
        assert instance["id"] == "kept"
        assert httpx.get(f"{server.url}/api/instances/kept/history").json() == history
        assert httpx.get(f"{server.url}/api/definitions/approval").json()["version"] == 1
        fired = httpx.post(f"{server.url}/api/instances/kept/actions/approve")
        assert fired.json()["status"] == "completed"


def test_a_chunked_body_over_the_limit_is_refused_not_truncated(
    tmp_path: Path, database_url: str
) -> None:
    """Without Content-Length the size limit still holds: 413, nothing stored."""
    document = json.dumps(approval()).encode() + b" " * (2 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(document), 65536):
            yield document[start:start + 65536]

    with running_server(database_url, data_dir=tmp_path) as server:
        response = httpx.post(f"{server.url}/api/definitions", content=chunks(),
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        listed = httpx.get(f"{server.url}/api/definitions").json()["items"]
        assert "approval" not in {item["id"] for item in listed}


def test_api_script_passes_against_a_real_server(tmp_path: Path, database_url: str) -> None:
    """test_api.sh, the curl walk-through, asserts its way through a real server."""
    with running_server(database_url, data_dir=tmp_path, definitions=DEFINITIONS) as server:
        result = subprocess.run(
            ["bash", str(ROOT / "test_api.sh"), server.url],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout


def test_a_block_killed_mid_run_resumes_on_restart_without_loss_or_duplicates(
    tmp_path: Path, database_url: str,
) -> None:
    """SIGKILL while read_csv runs on a large file; after a restart the run resumes from
    its input and every row arrives exactly once."""
    rows = 1_500_000
    files = tmp_path / "files"
    files.mkdir()
    table = pa.table({"id": pa.array(range(rows)).cast(pa.string()),
                      "company": pa.array(["Ariglad Inc", "Other"] * (rows // 2))})
    pacsv.write_csv(table, files / "big.csv")
    document = {
        "id": "big", "name": "Big",
        "states": [{"id": "ready", "name": "Ready", "is_initial": True},
                   {"id": "reading", "name": "Reading",
                    "block": {"type": "read_csv", "params": {"file": "big.csv"}}},
                   {"id": "saved", "name": "Saved", "is_final": True,
                    "block": {"type": "save_csv", "params": {"file_name": "big-out.csv"}}}],
        "actions": [{"id": "run", "name": "Run", "from_states": ["ready"],
                     "to_state": "reading"},
                    {"id": "save", "name": "Save", "from_states": ["reading"],
                     "to_state": "saved", "trigger": "auto"}],
    }
    db, port = database_url, free_port()
    with running_server(db, data_dir=tmp_path, port=port) as server:
        httpx.post(f"{server.url}/api/definitions", json=document).raise_for_status()
        start(server.url, "big", id="resumed")
        fired = httpx.post(f"{server.url}/api/instances/resumed/actions/run")
        assert fired.status_code == 202
        server.stop(signal.SIGKILL)

    # The same port is the same server: it takes its run back at once.
    with running_server(db, data_dir=tmp_path, port=port) as server:
        deadline = time.monotonic() + 180  # a deadline for a loaded machine, not a pause
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/api/instances/resumed").json()
            if body["status"] != "running":
                break
            time.sleep(0.1)
        assert "resuming 1 block run(s)" in server.output()
        assert (body["status"], body["current_state"]) == ("completed", "saved")
        assert body["table"]["rows"] == rows
        events = httpx.get(f"{server.url}/api/instances/resumed/history").json()["items"]
        assert [e["type"] for e in events].count("block_succeeded") == 2
    written = pacsv.read_csv(tmp_path / "outputs" / "big-out.csv")
    assert written.num_rows == rows
    assert len(set(written.column("id").to_pylist())) == rows


LEADS = 15  # rows of data/leads.csv
ENV = {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_RATE_PER_MINUTE": "6000"}


def enrichment(**params: Any) -> dict[str, Any]:
    """read_csv -> enrich_lead -> save_csv, chained by automatic actions."""
    return {
        "id": "enrich", "name": "Enrich",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "read", "name": "Read",
             "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
            {"id": "enrich", "name": "Enrich", "block": {"type": "enrich_lead", "params": {
                "struct": {"education": "Where they studied"}, **params}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": "enriched.csv"}}}],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
            {"id": "a", "name": "a", "from_states": ["read"], "to_state": "enrich",
             "trigger": "auto"},
            {"id": "b", "name": "b", "from_states": ["enrich"], "to_state": "saved",
             "trigger": "auto"}],
    }


@pytest.fixture
def sandbox() -> Iterator[SandboxProcess]:
    """The Sixtyfour sandbox in its own process: it outlives the server it answers."""
    found = SandboxProcess(rate=6000, latency=1.5)
    yield found
    found.stop()


def stored_task_ids(database_url: str) -> int:
    """How many submissions the server has recorded a task id for."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found: int = connection.exec_driver_sql(
                "SELECT count(*) FROM upstream_jobs WHERE status = 'submitted' "
                "AND task_id IS NOT NULL").scalar_one()
    finally:
        engine.dispose()
    return found


def kill_mid_enrichment(tmp_path: Path, database_url: str, sandbox: SandboxProcess,
                        document: dict[str, Any], *, port: int, held: int, answered: int,
                        stored: int | None = None, billable: int = LEADS) -> dict[str, Any]:
    """Start the pipeline, wait for the sandbox's signal that ``held`` submissions are
    held and the server stored every task id it was answered (each was polled), SIGKILL
    the server at that point; what the sandbox held."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "leads.csv").write_bytes((ROOT / "data" / "leads.csv").read_bytes())
    env = {**ENV, "SIXTYFOUR_BASE_URL": sandbox.url}
    with running_server(database_url, data_dir=tmp_path, env=env, port=port) as server:
        httpx.post(f"{server.url}/api/definitions", json=document).raise_for_status()
        start(server.url, "enrich", id="e")
        httpx.post(f"{server.url}/api/instances/e/actions/run").raise_for_status()
        if stored is None:
            found: dict[str, Any] = sandbox.settled(held=held, answered=answered)
            assert found["settled"], found
        else:
            # The store's commit is the signal: waited for, with a deadline.
            deadline = time.monotonic() + 30
            while stored_task_ids(database_url) < stored:
                assert time.monotonic() < deadline, "task ids were not all stored"
                time.sleep(0.02)
            found = {"held": []}
        server.stop(signal.SIGKILL)
    assert sandbox.stats()["billable_submissions"] == billable
    return found


def finish_after_restart(
    tmp_path: Path, database_url: str, sandbox: SandboxProcess, *, port: int
) -> list[dict[str, Any]]:
    """Restart on the same database and port (so the same server, which takes its runs
    back at once); the resumed run's rows once it settled."""
    env = {**ENV, "SIXTYFOUR_BASE_URL": sandbox.url}
    with running_server(database_url, data_dir=tmp_path, env=env, port=port) as server:
        body = httpx.get(f"{server.url}/api/instances/e", params={"wait": 60},
                         timeout=70).json()
        assert "resuming 1 block run(s)" in server.output()
        assert (body["status"], body["current_state"], body["table"]["rows"]) == (
            "completed", "saved", LEADS), body
        rows: list[dict[str, Any]] = httpx.get(
            f"{server.url}/api/instances/e/data").json()["rows"]
    assert len((tmp_path / "outputs" / "enriched.csv").read_text().splitlines()) == LEADS + 1
    return rows


def test_enrichment_killed_after_every_task_id_was_stored_polls_them_not_resubmits(
    tmp_path: Path, sandbox: SandboxProcess, database_url: str,
) -> None:
    """SIGKILL once every submission was answered and its task id stored (running or
    done by then): after the restart the jobs are polled, each row is paid for once."""
    # No job may finish before the kill (else the block could be done by then), so the
    # signal is the server's own record of every task id, not the sandbox's polls.
    sandbox.configure(hold_results=True)
    port = free_port()
    kill_mid_enrichment(tmp_path, database_url, sandbox, enrichment(), port=port, held=0,
                        answered=LEADS,
                        stored=LEADS)
    sandbox.configure(hold_results=False)
    rows = finish_after_restart(tmp_path, database_url, sandbox, port=port)
    assert all(row["enrich_error"] is None and row["education"] for row in rows)
    stats = sandbox.stats()
    assert (stats["billable_submissions"], stats["distinct_requests"], stats["duplicates"]
            ) == (LEADS, LEADS, {})


def test_enrichment_killed_while_a_submission_awaits_its_answer_reports_it_unknown(
    tmp_path: Path, sandbox: SandboxProcess, database_url: str,
) -> None:
    """SIGKILL while the last submission is sent but unanswered: after the restart that
    row is upstream_outcome_unknown (it may be paid for, so it is not sent again), every
    other row completes, and every row was submitted exactly once."""
    sandbox.configure(hold_submission=LEADS)
    port = free_port()
    found = kill_mid_enrichment(tmp_path, database_url, sandbox, enrichment(), port=port,
                                held=1, answered=LEADS - 1)
    (held,) = found["held"]
    rows = finish_after_restart(tmp_path, database_url, sandbox, port=port)
    unknown = [row for row in rows if row["name"] == held["body"]["lead_info"]["name"]]
    others = [row for row in rows if row not in unknown]
    assert len(unknown) == 1
    assert unknown[0]["enrich_error"].startswith("upstream_outcome_unknown: ")
    assert unknown[0]["education"] is None
    assert len(others) == LEADS - 1
    assert all(row["enrich_error"] is None and row["education"] for row in others)
    stats = sandbox.stats()
    assert (stats["billable_submissions"], stats["distinct_requests"], stats["duplicates"]
            ) == (LEADS, LEADS, {})


def test_enrichment_killed_while_a_submission_awaits_its_answer_resubmits_if_told(
    tmp_path: Path, sandbox: SandboxProcess, database_url: str,
) -> None:
    """The same kill with on_unknown_outcome: resubmit: that row is submitted a second
    time and completes; every other row was submitted once."""
    sandbox.configure(hold_submission=LEADS)
    port = free_port()
    found = kill_mid_enrichment(tmp_path, database_url, sandbox,
                                enrichment(on_unknown_outcome="resubmit"),
                                port=port, held=1, answered=LEADS - 1)
    (held,) = found["held"]
    rows = finish_after_restart(tmp_path, database_url, sandbox, port=port)
    assert all(row["enrich_error"] is None and row["education"] for row in rows)
    stats = sandbox.stats()
    assert (stats["billable_submissions"], stats["distinct_requests"], stats["duplicates"]
            ) == (LEADS + 1, LEADS, {held["canonical"]: 2})


LOOKED_UP = 9  # rows of data/leads.csv without an address


def bulk_emails() -> dict[str, Any]:
    """read_csv -> find_email in bulk batches of 5 (9 rows to look up: 2 batches) ->
    save_csv."""
    document = enrichment()
    document["states"][2]["block"] = {"type": "find_email", "params": {"batch_size": 5}}
    return document


def test_bulk_email_killed_after_its_task_ids_were_stored_polls_them_not_resubmits(
    tmp_path: Path, sandbox: SandboxProcess, database_url: str,
) -> None:
    """SIGKILL once both bulk submissions were answered and each lead's record points at
    its batch's task: after the restart the two bulk jobs are polled, each lead paid once."""
    sandbox.configure(hold_results=True)
    port = free_port()
    kill_mid_enrichment(tmp_path, database_url, sandbox, bulk_emails(), port=port, held=0,
                        answered=2, stored=2 + LOOKED_UP, billable=LOOKED_UP)
    sandbox.configure(hold_results=False)
    rows = finish_after_restart(tmp_path, database_url, sandbox, port=port)
    assert all(row["enrich_error"] is None for row in rows)
    assert sum(row["email_status"] != "EXISTING" for row in rows) == LOOKED_UP
    stats = sandbox.stats()
    assert stats["requests"]["bulk_submissions"] == 2
    assert (stats["billable_submissions"], stats["duplicates"]) == (LOOKED_UP, {})


def test_bulk_email_killed_while_a_batch_awaits_its_answer_reports_its_leads_unknown(
    tmp_path: Path, sandbox: SandboxProcess, database_url: str,
) -> None:
    """SIGKILL while the second batch is sent but unanswered: after the restart each of its
    leads is upstream_outcome_unknown and not sent again; the first batch's leads complete."""
    sandbox.configure(hold_submission=2)
    port = free_port()
    found = kill_mid_enrichment(tmp_path, database_url, sandbox, bulk_emails(), port=port,
                                held=1, answered=1, billable=LOOKED_UP)
    (held,) = found["held"]
    names = {lead["name"] for lead in held["body"]["leads"]}
    # The two batches (5 leads and 4) go out side by side: either may be the held one.
    assert len(names) in (5, LOOKED_UP - 5)
    rows = finish_after_restart(tmp_path, database_url, sandbox, port=port)
    unknown = [row for row in rows if row["name"] in names]
    assert all(row["enrich_error"].startswith("upstream_outcome_unknown: ")
               and row["email"] is None for row in unknown)
    assert all(row["enrich_error"] is None for row in rows if row["name"] not in names)
    stats = sandbox.stats()
    assert stats["requests"]["bulk_submissions"] == 2
    assert (stats["billable_submissions"], stats["duplicates"]) == (LOOKED_UP, {})


def test_the_database_password_never_reaches_the_log(tmp_path: Path, database_url: str) -> None:
    """The start-up line names the database with its password masked."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite URL has no password")
    with_password = database_url.replace("postgres@", "postgres:hunter2-secret@")
    with running_server(with_password, data_dir=tmp_path) as server:
        output = server.output()
    assert "hunter2-secret" not in output
    assert "postgres:***@" in output
