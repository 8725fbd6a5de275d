"""The task queue (TASK_ENGINE=procrastinate) on a real PostgreSQL server: block runs are
jobs deferred in the transaction that starts them, claimed before they run, and watched
by every process through the database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from sqlalchemy import text

from workflow_engine import create_app
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.blocks import BLOCKS, BlockContext
from workflow_engine.blocks.base import Block, BlockParams
from workflow_engine.errors import RunHeldElsewhere
from workflow_engine.runner import Runner
from workflow_engine.service import WorkflowService
from workflow_engine.testing import PostgresServer

from ..conftest import QUEUE_SETTINGS, BuildApp, close_app, make_settings
from .conftest import post_definition

GATES: dict[str, threading.Event] = {}
ENTERED: dict[str, threading.Event] = {}
EXITED: dict[str, threading.Event] = {}
RUNS: dict[str, int] = {}


class GateParams(BlockParams):
    """Which gate the block waits at."""

    gate: str


class Gate(Block[GateParams]):
    """Reports 3 of 10 rows done, then waits until its gate opens or it is cancelled."""

    kind = "gate"
    description = "Waits for the test to open its gate (tests only)."
    Params = GateParams
    needs_table = False

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        name = self.params.gate
        RUNS[name] = RUNS.get(name, 0) + 1
        context.progress(3, 10)
        ENTERED[name].set()
        try:
            while not GATES[name].wait(0.01):
                context.check_cancelled()
        finally:
            EXITED[name].set()
        return pd.DataFrame({"n": ["1"]})


def gated(gate: str) -> dict[str, Any]:
    """A definition whose 'run' enters a state with the gate block."""
    GATES[gate], ENTERED[gate], EXITED[gate] = (
        threading.Event(), threading.Event(), threading.Event())
    RUNS[gate] = 0
    return {
        "id": gate, "name": gate,
        "states": [{"id": "ready", "name": "Ready", "is_initial": True},
                   {"id": "waiting", "name": "Waiting",
                    "block": {"type": "gate", "params": {"gate": gate}}},
                   {"id": "done", "name": "Done", "is_final": True}],
        "actions": [{"id": "run", "name": "Run", "from_states": ["ready"],
                     "to_state": "waiting"},
                    {"id": "finish", "name": "Finish", "from_states": ["waiting"],
                     "to_state": "done", "trigger": "auto"}],
    }


@pytest.fixture
def queue_url(postgres: PostgresServer) -> str:
    """A fresh PostgreSQL database."""
    return postgres.create_database()


@pytest.fixture
def server_only(tmp_path: Path) -> Iterator[Callable[[str, str], Flask]]:
    """Apps with the task queue and no worker: they only defer (closed at the end)."""
    built: list[Flask] = []

    def build(name: str, url: str) -> Flask:
        app = create_app(make_settings(tmp_path / name, database_url=url,
                                       task_engine="procrastinate"))
        app.extensions[RUNNER].catalog.blocks = {**BLOCKS, Gate.kind: Gate}
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app)


def queued_app(build_app: BuildApp, root: Path, url: str, **changes: Any) -> Flask:
    """An app on ``url`` with the task queue (a queue worker runs its blocks), the gate
    block installed."""
    app = build_app(make_settings(root, database_url=url, **{**QUEUE_SETTINGS, **changes}))
    app.extensions[RUNNER].catalog.blocks = {**BLOCKS, Gate.kind: Gate}
    return app


def jobs(app: Flask) -> list[dict[str, Any]]:
    """The task queue's jobs, as procrastinate stores them."""
    service: WorkflowService = app.extensions[EXTENSION]
    with service.store.engine.connect() as connection:
        return [dict(row) for row in connection.execute(text(
            "SELECT task_name, args, status, lock FROM procrastinate_jobs ORDER BY id",
        )).mappings()]


def test_a_block_is_deferred_in_the_transaction_that_starts_it(
    queue_url: str, server_only: Callable[[str, str], Flask]
) -> None:
    """A server without workers: the fire commits the state change, the block run and its
    job together; the run waits for a worker."""
    app = server_only("server", queue_url)
    client = app.test_client()
    post_definition(client, gated("deferred"))
    client.post("/api/instances", json={"definition_id": "deferred", "id": "d1"})
    fired = client.post("/api/instances/d1/actions/run")
    assert (fired.status_code, fired.json["status"]) == (202, "running")
    seq = fired.json["version"]
    assert jobs(app) == [{"task_name": "workflow_engine.run_block",
                          "args": {"instance_id": "d1", "seq": seq}, "status": "todo",
                          "lock": "d1"}]
    service: WorkflowService = app.extensions[EXTENSION]
    run = service.block_runs.get("d1", seq)
    assert run is not None
    assert (run.status, run.worker) == ("pending", None)
    assert RUNS["deferred"] == 0


def test_a_rolled_back_change_defers_nothing(
    tmp_path: Path, queue_url: str, build_app: BuildApp
) -> None:
    app = queued_app(build_app, tmp_path, queue_url)
    runner: Runner = app.extensions[RUNNER]
    service: WorkflowService = app.extensions[EXTENSION]

    def hand_over_then_fail() -> None:
        with service.store.write() as tx:
            runner.enqueue(tx, "ghost", 1)
            raise RuntimeError("the change fails after its block was handed over")

    with pytest.raises(RuntimeError):
        hand_over_then_fail()
    assert jobs(app) == []


def test_a_job_delivered_twice_runs_its_block_once(
    tmp_path: Path, queue_url: str, build_app: BuildApp
) -> None:
    """At-least-once delivery: a second delivery while the block runs finds the run held
    (and is retried later); one after it has settled finds it ended and does nothing."""
    app = queued_app(build_app, tmp_path, queue_url)
    client = app.test_client()
    post_definition(client, gated("twice"))
    client.post("/api/instances", json={"definition_id": "twice", "id": "t1"})
    seq = client.post("/api/instances/t1/actions/run").json["version"]
    assert ENTERED["twice"].wait(30)  # the queue worker runs it
    runner: Runner = app.extensions[RUNNER]
    with pytest.raises(RunHeldElsewhere):
        runner.run_task("t1", seq)
    GATES["twice"].set()
    done = client.get("/api/instances/t1?wait=30").json
    assert (done["status"], done["current_state"]) == ("completed", "done")
    runner.run_task("t1", seq)  # delivered again after the end: nothing runs
    assert RUNS["twice"] == 1


def test_every_server_sees_the_progress_and_a_cancel_from_any_stops_the_block(
    tmp_path: Path, queue_url: str, build_app: BuildApp,
    server_only: Callable[[str, str], Flask],
) -> None:
    """Two processes' worth of apps on one database: the one whose worker runs the block,
    and a server without workers. The server reads the progress the worker stores, and
    its cancel stops the block at the worker's next heartbeat."""
    working = queued_app(build_app, tmp_path / "a", queue_url)
    client = server_only("b", queue_url).test_client()
    post_definition(client, gated("remote"))
    client.post("/api/instances", json={"definition_id": "remote", "id": "r1"})
    seq = client.post("/api/instances/r1/actions/run").json["version"]
    assert ENTERED["remote"].wait(30)
    working.extensions[RUNNER].beat()  # the heartbeat, now rather than at its next turn
    progress = client.get("/api/instances/r1").json["progress"]
    assert (progress["block"], progress["rows_done"], progress["rows_total"],
            progress["percent"]) == ("gate", 3, 10, 30.0)
    assert working.test_client().get("/api/instances/r1").json["progress"] == progress

    cancelled = client.post("/api/instances/r1/cancel")
    assert (cancelled.status_code, cancelled.json["status"]) == (200, "cancelled")
    working.extensions[RUNNER].beat()  # finds its run ended: the block stops
    assert EXITED["remote"].wait(30)
    assert not GATES["remote"].is_set()
    assert RUNS["remote"] == 1
    service: WorkflowService = working.extensions[EXTENSION]
    run = service.block_runs.get("r1", seq)
    assert run is not None
    assert run.status == "ended"
    history = client.get("/api/instances/r1/history").json["items"]
    assert [e["type"] for e in history][-2:] == ["block_started", "block_cancelled"]
