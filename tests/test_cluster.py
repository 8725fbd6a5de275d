"""A cluster on one machine: 2 server processes and 2 workers on one PostgreSQL database,
the Sixtyfour sandbox in a process of its own. Every process is a real one, started as
its command starts it; requests go over loopback HTTP."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from tests.conftest import ROOT, approval
from workflow_engine.testing import (
    PostgresServer,
    SandboxProcess,
    ServerProcess,
    free_consecutive_ports,
    free_port,
    running_server,
    running_worker,
)

pytestmark = pytest.mark.slow

RATE = 3000  # requests per minute: the key's budget, and the sandbox's limit
ROWS = 200


@dataclass
class Cluster:
    """What the tests talk to."""

    database_url: str
    postgres: PostgresServer
    sandbox: SandboxProcess
    servers: list[ServerProcess]
    workers: dict[str, ServerProcess]
    data_dir: Path

    def sql(self, statement: str) -> str:
        return self.postgres.sql(statement, self.database_url.rsplit("/", 1)[1]).strip()


@pytest.fixture
def cluster(tmp_path: Path, postgres: PostgresServer) -> Iterator[Cluster]:
    database_url = postgres.create_database()
    sandbox = SandboxProcess(rate=RATE, latency=1.0)
    # A short window makes a budget overrun show within the test (the limit scales).
    sandbox.configure(rate_window_seconds=6.0)
    env = {
        "TASK_ENGINE": "procrastinate", "SIXTYFOUR_API_KEY": "sandbox-key",
        "SIXTYFOUR_BASE_URL": sandbox.url, "SIXTYFOUR_RATE_PER_MINUTE": str(RATE),
        "BLOCK_LEASE_SECONDS": "4", "BLOCK_HEARTBEAT_SECONDS": "1",
    }
    try:
        with ExitStack() as stack:
            servers = [stack.enter_context(running_server(
                database_url, data_dir=tmp_path, env=env)) for _ in range(2)]
            workers = {name: stack.enter_context(running_worker(
                database_url, name=name, data_dir=tmp_path, env=env))
                for name in ("worker-a", "worker-b")}
            yield Cluster(database_url, postgres, sandbox, servers, workers, tmp_path)
    finally:
        sandbox.stop()


def test_concurrent_fires_split_over_two_servers_make_one_transition(
    cluster: Cluster
) -> None:
    first, second = (server.url for server in cluster.servers)
    httpx.post(f"{first}/api/definitions", json=approval()).raise_for_status()
    httpx.post(f"{second}/api/instances", json={"definition_id": "approval", "id": "i"}
               ).raise_for_status()
    before = len(httpx.get(f"{first}/api/instances/i/history").json()["items"])
    start = threading.Barrier(24)
    statuses: list[int] = []

    def fire(n: int) -> None:
        url = cluster.servers[n % 2].url
        with httpx.Client() as client:
            start.wait()
            statuses.append(client.post(f"{url}/api/instances/i/actions/submit").status_code)

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(statuses) == {200: 1, 409: 23}
    for server in cluster.servers:
        body = httpx.get(f"{server.url}/api/instances/i").json()
        assert body["current_state"] == "review"
        history = httpx.get(f"{server.url}/api/instances/i/history").json()["items"]
        assert len(history) == before + 1


def pipeline() -> dict[str, Any]:
    return {
        "id": "cluster-enrich", "name": "Enrich in the cluster",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "read", "name": "Read",
             "block": {"type": "read_csv", "params": {"file": "many.csv"}}},
            {"id": "enrich", "name": "Enrich", "block": {"type": "enrich_lead", "params": {
                "struct": {"education": "Where they studied"}}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": "many-enriched.csv"}}},
        ],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
            {"id": "a", "name": "a", "from_states": ["read"], "to_state": "enrich",
             "trigger": "auto"},
            {"id": "b", "name": "b", "from_states": ["enrich"], "to_state": "saved",
             "trigger": "auto"},
        ],
    }


def write_leads(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "company"])
        writer.writerows([f"Person {n}", f"Company {n % 7}"] for n in range(rows))


def wait_for_task_ids(database_url: str, count: int) -> None:
    """Return once the store has ``count`` task ids (its commits are the signal; read
    until then, within a bound for a broken run)."""
    engine = create_engine(database_url)
    deadline = threading.Event()
    timer = threading.Timer(60, deadline.set)
    timer.start()
    try:
        while True:
            with engine.connect() as connection:
                stored = connection.exec_driver_sql(
                    "SELECT count(*) FROM upstream_jobs WHERE status = 'submitted'"
                ).scalar_one()
            if stored >= count:
                return
            assert not deadline.wait(0.05), f"{stored} of {count} task ids stored in 60 s"
    finally:
        timer.cancel()
        engine.dispose()


def test_an_enrichment_survives_its_worker_killed_and_every_row_is_paid_once(
    cluster: Cluster
) -> None:
    """200 rows through 2 servers and 2 workers: no row submitted twice, no 429 (one
    budget for every process), progress the same from either server; the worker running
    the block is killed with SIGKILL once every row was submitted, and the other one
    takes the run over when its lease lapses and finishes it, polling the stored tasks."""
    write_leads(cluster.data_dir / "files" / "many.csv", ROWS)
    first, second = (server.url for server in cluster.servers)
    cluster.sandbox.configure(hold_results=True)  # every job runs until released
    httpx.post(f"{first}/api/definitions", json=pipeline()).raise_for_status()
    httpx.post(f"{second}/api/instances",
               json={"definition_id": "cluster-enrich", "id": "big"}).raise_for_status()
    httpx.post(f"{first}/api/instances/big/actions/run").raise_for_status()

    wait_for_task_ids(cluster.database_url, ROWS)
    running = cluster.sql(
        "SELECT worker FROM block_runs WHERE instance_id = 'big' AND status = 'running'")
    assert running in cluster.workers, running
    views = [httpx.get(f"{url}/api/instances/big").json() for url in (first, second)]
    assert views[0]["current_state"] == "enrich"
    assert views[0]["progress"] is not None
    assert views[0]["progress"] == views[1]["progress"]
    assert views[0]["progress"]["rows_total"] == ROWS

    cluster.workers[running].stop(signal.SIGKILL)
    cluster.sandbox.configure(hold_results=False)
    done = httpx.get(f"{second}/api/instances/big", params={"wait": 60}, timeout=70).json()
    assert (done["status"], done["current_state"]) == ("completed", "saved"), done
    survivor = cluster.sql(
        "SELECT worker FROM block_runs WHERE instance_id = 'big' AND block = 'enrich_lead'")
    assert survivor != running

    rows = httpx.get(f"{first}/api/instances/big/data", params={"limit": 1000}).json()["rows"]
    assert len(rows) == ROWS
    assert all(row["enrich_error"] is None and row["education"] for row in rows)
    output = (cluster.data_dir / "outputs" / "many-enriched.csv").read_text().splitlines()
    assert len(output) == ROWS + 1
    stats = cluster.sandbox.stats()
    assert (stats["billable_submissions"], stats["distinct_requests"], stats["duplicates"]
            ) == (ROWS, ROWS, {})
    assert stats["requests"].get("429", 0) == 0, stats  # type: ignore[attr-defined]
    final = [httpx.get(f"{url}/api/instances/big").json()["table"] for url in (first, second)]
    assert final[0] == final[1]


@pytest.fixture
def cluster_root() -> Iterator[Path]:
    """A directory PostgreSQL's own user can reach too (pytest's are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="workflow-cluster-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_make_cluster_starts_servers_and_workers_that_run_a_shipped_pipeline(
    cluster_root: Path
) -> None:
    """``scripts/cluster.py`` (``make cluster``) from the local binaries, its files in the
    object store: the shipped enrichment pipeline, started on one server, is run by a
    worker, and its output read on the other; Ctrl-C stops everything and keeps the
    database."""
    tmp_path = cluster_root
    port = free_consecutive_ports(2)  # the cluster's two servers take port and port + 1
    command = [sys.executable, str(ROOT / "scripts" / "cluster.py"), "--servers", "2",
               "--workers", "1", "--port", str(port), "--postgres-port", str(free_port()),
               "--root", str(tmp_path), "--object-store"]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SIXTYFOUR_")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**env, "SIXTYFOUR_RATE_PER_MINUTE": "3000"},
                               start_new_session=True)
    assert process.stdout is not None
    said: list[str] = []
    try:
        for line in process.stdout:  # it says when it is ready; it ends if it fails
            said.append(line)
            if line.startswith("cluster ready"):
                break
        assert said, "it said nothing"
        assert said[-1].startswith("cluster ready"), "".join(said)
        first, second = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
        httpx.post(f"{first}/api/instances", json={"definition_id": "leads-enriched",
                                                   "id": "shipped"}).raise_for_status()
        httpx.post(f"{first}/api/instances/shipped/actions/run").raise_for_status()
        done = httpx.get(f"{second}/api/instances/shipped", params={"wait": 60},
                         timeout=70).json()
        assert (done["status"], done["current_state"]) == ("completed", "saved"), done
        output = httpx.get(f"{second}/api/outputs/leads-enriched.csv")
        assert output.status_code == 200
        assert len(output.text.splitlines()) == 16  # the header and the 15 leads
        assert not (tmp_path / "outputs").exists()  # in the object store, not on disk
    finally:
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(said) + rest
    assert (tmp_path / "postgres" / "data" / "PG_VERSION").exists()


def test_a_server_starting_beside_a_busy_one_leaves_its_running_block_alone(
    tmp_path: Path, database_url: str
) -> None:
    """Threads in each server, one database: a second server's start (or restart) finds
    the first's block run held under a live lease, and does not run it too."""
    sandbox = SandboxProcess(rate=6000, latency=0.5)
    sandbox.configure(hold_results=True)
    write_leads(tmp_path / "files" / "many.csv", 20)
    env = {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_BASE_URL": sandbox.url,
           "SIXTYFOUR_RATE_PER_MINUTE": "6000"}
    try:
        with running_server(database_url, data_dir=tmp_path, env=env) as busy:
            httpx.post(f"{busy.url}/api/definitions", json=pipeline()).raise_for_status()
            httpx.post(f"{busy.url}/api/instances", json={
                "definition_id": "cluster-enrich", "id": "busy"}).raise_for_status()
            httpx.post(f"{busy.url}/api/instances/busy/actions/run").raise_for_status()
            wait_for_task_ids(database_url, 20)  # all submitted: the block is running
            with running_server(database_url, data_dir=tmp_path, env=env) as beside:
                assert "resuming" not in beside.output()
                sandbox.configure(hold_results=False)
                done = httpx.get(f"{beside.url}/api/instances/busy", params={"wait": 60},
                                 timeout=70).json()
            assert (done["status"], done["current_state"]) == ("completed", "saved"), done
            assert "resuming" not in busy.output()
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["duplicates"]) == (20, {})
    finally:
        sandbox.stop()
