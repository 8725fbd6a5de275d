"""Forks through the real app: branches run side by side on the state's table, their
columns are joined by row, and cancel and retry work branch by branch."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import post_definition
from workflow_engine.api import RUNNER
from workflow_engine.blocks import BLOCKS, Block, BlockContext, BlockError
from workflow_engine.blocks.base import BlockParams
from workflow_engine.service import WorkflowService
from workflow_engine.storage import FileArea

WAIT = 10  # seconds a test waits for what it has made happen, at most


class GateParams(BlockParams):
    """Parameters of the test block."""

    column: str
    value: str = "x"


class Gates:
    """What the test block does, told by the test: wait until a gate opens, fail."""

    def __init__(self) -> None:
        self.open: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.failing: set[str] = set()
        self.calls: Counter[str] = Counter()

    def hold(self, *columns: str) -> None:
        for column in columns:
            self.open[column] = threading.Event()
            self.started[column] = threading.Event()

    def wait_started(self, *columns: str) -> None:
        for column in columns:
            assert self.started[column].wait(WAIT), f"branch writing {column} never started"


GATES = Gates()


class Gate(Block[GateParams]):
    """Writes ``value`` into ``column`` of every row, once its gate (if held) opens."""

    kind = "gate"
    description = "Writes a column once the test lets it (tests only)."
    Params = GateParams

    def keeps_rows(self) -> bool:
        return True

    def produced_columns(self) -> list[str]:
        return [self.params.column]

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        return None if columns is None else [*columns, self.params.column]

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        column = self.params.column
        GATES.calls[column] += 1
        if column in GATES.started:
            GATES.started[column].set()
            while not GATES.open[column].wait(0.01):
                context.check_cancelled()
        if column in GATES.failing:
            raise BlockError(f"{column}: asked to fail")
        out = table.copy()
        out[column] = self.params.value
        context.progress(len(out), len(out))
        return out


@pytest.fixture
def gates(app: Flask) -> Iterator[Gates]:
    """The test block, available to this app's definitions; every gate opened at the end
    (a branch never outlives its test)."""
    global GATES
    GATES = Gates()
    app.extensions[RUNNER].catalog.blocks = {**BLOCKS, Gate.kind: Gate}
    yield GATES
    for gate in GATES.open.values():
        gate.set()


def branch(branch_id: str, block: str, **params: Any) -> dict[str, Any]:
    return {"id": branch_id, "block": {"type": block, "params": params}}


def forked(*branches: dict[str, Any], after: dict[str, Any] | None = None) -> dict[str, Any]:
    """read_csv -> a fork of ``branches`` -> ``after`` (save_csv by default)."""
    return {
        "id": "forked", "name": "Forked leads",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "reading", "name": "Reading",
             "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
            {"id": "contacts", "name": "Contacts",
             "block": {"type": "branches", "params": {"branches": list(branches)}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": after or {"type": "save_csv", "params": {"file_name": "forked.csv"}}},
        ],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
            {"id": "fork", "name": "Fork", "trigger": "auto",
             "from_states": ["reading"], "to_state": "contacts"},
            {"id": "save", "name": "Save", "trigger": "auto",
             "from_states": ["contacts"], "to_state": "saved"},
        ],
    }


def start(client: FlaskClient, document: dict[str, Any]) -> str:
    post_definition(client, document)
    started = client.post("/api/instances", json={"definition_id": document["id"]})
    assert started.status_code == 201, started.json
    instance_id: str = started.json["id"]  # type: ignore[index]
    assert client.post(f"/api/instances/{instance_id}/actions/run").status_code in (200, 202)
    return instance_id


def settled(client: FlaskClient, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(
        f"/api/instances/{instance_id}?wait={WAIT}").json  # type: ignore[assignment]
    assert found["status"] != "running", found
    return found


def events(client: FlaskClient, instance_id: str, kind: str) -> list[dict[str, Any]]:
    history = client.get(f"/api/instances/{instance_id}/history?limit=200").json
    return [e for e in history["items"] if e["type"] == kind]  # type: ignore[index]


def leads(client: FlaskClient, instance_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get(
        f"/api/instances/{instance_id}/data?limit=100").json["rows"]  # type: ignore[index]
    return rows


class TestRunning:
    def test_branches_run_side_by_side_and_their_columns_are_joined_by_row(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail", value="m"),
                                           branch("phones", "gate", column="phone", value="p")))
        gates.wait_started("mail", "phone")  # both at once: neither has been let through
        progress = client.get(f"/api/instances/{instance_id}").json["progress"]
        assert progress["block"] == "branches"
        assert [(b["id"], b["status"]) for b in progress["branches"]] == [
            ("emails", "running"), ("phones", "running")]

        gates.open["mail"].set()
        gates.open["phone"].set()
        found = settled(client, instance_id)
        assert found["status"] == "completed"
        rows = leads(client, instance_id)
        assert rows
        assert all((r["mail"], r["phone"]) == ("m", "p") for r in rows)
        assert found["table"]["columns"][-2:] == ["mail", "phone"]
        contacts = next(e for e in events(client, instance_id, "block_succeeded")
                    if e["to_state"] == "contacts")
        assert {b: (s["status"], s["reused"], s["rows_out"])
                for b, s in contacts["data"]["branches"].items()} == {
            "emails": ("succeeded", False, len(rows)), "phones": ("succeeded", False, len(rows))}

    def test_a_branch_that_writes_a_column_of_the_input_fills_it(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        instance_id = start(client, forked(
            branch("emails", "compute", columns={"email": "'found@example.com'"},
                   prefix="mails"),
            branch("phones", "gate", column="phone")))
        assert settled(client, instance_id)["status"] == "completed"
        rows = leads(client, instance_id)
        assert {r["email"] for r in rows} == {"found@example.com"}
        assert list(rows[0])[:5] == ["name", "company", "email", "company_location", "linkedin"]


class TestRetry:
    def test_a_failed_branch_fails_the_state_and_retry_runs_only_that_branch(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        gates.failing.add("mail")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        failed = settled(client, instance_id)
        assert (failed["status"], failed["current_state"]) == ("failed", "contacts")
        assert failed["error"]["code"] == "branch_failed"
        assert {b: s["status"] for b, s in failed["error"]["branches"].items()} == {
            "emails": "failed", "phones": "succeeded"}
        assert failed["error"]["branches"]["emails"]["error"]["message"] == "mail: asked to fail"

        gates.failing.clear()
        assert client.post(f"/api/instances/{instance_id}/retry").status_code in (200, 202)
        assert settled(client, instance_id)["status"] == "completed"
        assert (gates.calls["mail"], gates.calls["phone"]) == (2, 1)
        joined = next(e for e in events(client, instance_id, "block_succeeded")
                  if e["to_state"] == "contacts")
        assert {b: s["reused"] for b, s in joined["data"]["branches"].items()} == {
            "emails": False, "phones": True}
        assert all(r["phone"] == "x" for r in leads(client, instance_id))


class TestCancel:
    def test_cancelling_one_branch_lets_the_other_finish_and_retry_runs_it_alone(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        gates.wait_started("mail", "phone")
        cancelled = client.post(f"/api/instances/{instance_id}/cancel?branch=emails")
        assert cancelled.status_code == 202, cancelled.json
        assert cancelled.json["status"] == "running"

        gates.open["phone"].set()  # the other branch goes on to the end
        found = settled(client, instance_id)
        assert (found["status"], found["error"]["code"]) == ("cancelled", "branch_cancelled")
        assert {b: s["status"] for b, s in found["error"]["branches"].items()} == {
            "emails": "cancelled", "phones": "succeeded"}
        assert events(client, instance_id, "block_cancelled")[-1]["data"]["error"][
            "code"] == "branch_cancelled"

        gates.open["mail"].set()
        assert client.post(f"/api/instances/{instance_id}/retry").status_code in (200, 202)
        assert settled(client, instance_id)["status"] == "completed"
        assert (gates.calls["mail"], gates.calls["phone"]) == (2, 1)

    def test_a_branch_cancelled_through_another_process_stops_at_the_next_heartbeat(
        self, app: Flask, client: FlaskClient, service: WorkflowService, gates: Gates,
    ) -> None:
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        gates.wait_started("mail", "phone")
        running = client.get(f"/api/instances/{instance_id}").json
        # As another server process records it: in the database only.
        with service.store.write() as tx:
            service.block_runs.cancel_branch(tx, instance_id, running["version"], "phones",
                                             "elsewhere")
        app.extensions[RUNNER].beat()
        gates.open["mail"].set()
        found = settled(client, instance_id)
        assert {b: s["status"] for b, s in found["error"]["branches"].items()} == {
            "emails": "succeeded", "phones": "cancelled"}

    def test_cancelling_the_whole_fork_stops_every_branch(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        gates.wait_started("mail", "phone")
        assert client.post(f"/api/instances/{instance_id}/cancel").status_code == 200
        found = settled(client, instance_id)
        assert (found["status"], found["error"]["code"]) == ("cancelled", "block_cancelled")

    def test_the_table_so_far_of_a_running_block_that_shows_none_is_its_input(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        """A viewer that refreshes the live table while blocks that show their output only
        at their end run (here a fork of two) gets the table they read, not an error."""
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        gates.wait_started("mail", "phone")
        current = client.get(f"/api/instances/{instance_id}/data?limit=100").json
        so_far = client.get(f"/api/instances/{instance_id}/progress/data?limit=100")
        assert so_far.status_code == 200, so_far.json
        assert (so_far.json["columns"], so_far.json["rows"]) == (
            current["columns"], current["rows"])
        gates.open["mail"].set()
        gates.open["phone"].set()
        assert settled(client, instance_id)["status"] == "completed"

    @pytest.mark.parametrize(("branch_id", "why"), [
        ("faxes", "its branches are 'emails', 'phones'"),
        ("emails..x", "is not"),
    ])
    def test_an_unknown_branch_is_refused(
        self, client: FlaskClient, gates: Gates, branch_id: str, why: str,
    ) -> None:
        gates.hold("mail", "phone")
        instance_id = start(client, forked(branch("emails", "gate", column="mail"),
                                           branch("phones", "gate", column="phone")))
        gates.wait_started("mail", "phone")
        refused = client.post(f"/api/instances/{instance_id}/cancel?branch={branch_id}")
        assert refused.status_code in (400, 404)
        assert refused.json["code"] in ("branch_not_found", "invalid_parameter")
        assert client.get(f"/api/instances/{instance_id}").json["status"] == "running"

    def test_a_branch_of_a_state_that_is_not_a_fork_is_not_found(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        gates.hold("mail")
        document = forked(branch("emails", "gate", column="mail"),
                          branch("phones", "gate", column="phone"))
        document["states"][2]["block"] = {"type": "gate", "params": {"column": "mail"}}
        instance_id = start(client, document)
        gates.wait_started("mail")
        refused = client.post(f"/api/instances/{instance_id}/cancel?branch=emails")
        assert (refused.status_code, refused.json["code"]) == (404, "branch_not_found")
        assert "not a fork" in refused.json["detail"]


class TestChecks:
    def problems(self, client: FlaskClient, document: dict[str, Any]) -> list[dict[str, str]]:
        response = client.post("/api/definitions", json=document)
        assert (response.status_code, response.json["code"]) == (422, "definition_invalid")
        errors: list[dict[str, str]] = response.json["errors"]  # type: ignore[index]
        return errors

    def test_two_branches_writing_one_column_is_a_definition_error(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        errors = self.problems(client, forked(branch("a", "gate", column="mail"),
                                              branch("b", "gate", column="mail")))
        assert [(e["path"], e["code"]) for e in errors] == [
            ("states[2].block.params.branches[1].block.params", "branch_column_conflict")]
        assert "'a' and 'b' both write column 'mail'" in errors[0]["message"]

    def test_find_email_and_find_phone_side_by_side_need_their_own_error_columns(
        self, client: FlaskClient,
    ) -> None:
        errors = self.problems(client, forked(branch("a", "find_email"),
                                              branch("b", "find_phone")))
        assert [e["code"] for e in errors] == ["branch_column_conflict"]
        assert "'enrich_error'" in errors[0]["message"]
        post_definition(client, forked(branch("a", "find_email", prefix="email"),
                                       branch("b", "find_phone", prefix="phone")))

    @pytest.mark.parametrize(("block", "code"), [
        ({"type": "filter", "params": {"conditions": [
            {"column": "company", "operator": "equals", "value": "Ariglad Inc"}]}},
         "branch_changes_rows"),
        ({"type": "compute", "params": {"columns": {"n": "1"}, "on_row_error": "drop"}},
         "branch_changes_rows"),
        ({"type": "branches", "params": {"branches": [
            branch("x", "compute", columns={"n": "1"}),
            branch("y", "compute", columns={"m": "1"}, prefix="other")]}}, "nested_branches"),
        ({"type": "no_such_block"}, "unknown_block_type"),
    ])
    def test_a_branch_must_keep_its_rows_and_run_one_known_block(
        self, client: FlaskClient, block: dict[str, Any], code: str,
    ) -> None:
        document = forked({"id": "odd", "block": block}, branch("b", "compute", columns={
            "k": "1"}, prefix="kept"))
        errors = self.problems(client, document)
        assert [e["code"] for e in errors] == [code]
        assert errors[0]["path"].startswith("states[2].block.params.branches[0].block")

    def test_the_columns_after_a_fork_are_known_to_the_blocks_after_it(
        self, client: FlaskClient, gates: Gates,
    ) -> None:
        def keeping(column: str) -> dict[str, Any]:
            return {"type": "filter", "params": {"conditions": [
                {"column": column, "operator": "equals", "value": "x"}]}}
        fork = (branch("a", "gate", column="mail"), branch("b", "gate", column="phone"))
        post_definition(client, forked(*fork, after=keeping("phone")))
        document = forked(*fork, after=keeping("fax"))
        document["id"] = "forked-2"
        errors = self.problems(client, document)
        assert [(e["path"], e["code"]) for e in errors] == [
            ("states[3].block.params", "unknown_column")]
        assert "'mail', 'phone'" in errors[0]["message"]

    def test_two_branches_with_one_id_are_refused(self, client: FlaskClient) -> None:
        errors = self.problems(client, forked(branch("a", "compute", columns={"n": "1"}),
                                              branch("a", "compute", columns={"m": "1"},
                                                     prefix="other")))
        assert errors[0]["path"] == "states[2].block.params.branches"
        assert "two branches have the id 'a'" in errors[0]["message"]

    def test_the_diagram_shows_each_branch(self, client: FlaskClient) -> None:
        post_definition(client, forked(branch("emails", "find_email", prefix="email"),
                                       branch("phones", "find_phone", prefix="phone")))
        diagram = client.get("/api/definitions/forked/diagram").get_data(as_text=True)
        assert "s2_b0 : emails (find_email)" in diagram
        assert "s2_b1 : phones (find_phone)" in diagram
        assert "--" in diagram.split("state s2 {")[1]
