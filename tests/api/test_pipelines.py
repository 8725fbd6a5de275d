"""Data pipelines through the real app: blocks run as states are entered."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Sleep, post_definition, run
from tests.conftest import DEFINITIONS, BuildApp, make_settings
from workflow_engine.api import RUNNER
from workflow_engine.blocks import BLOCKS

ARIGLAD: dict[str, Any] = json.loads((DEFINITIONS / "ariglad-leads.json").read_text())


def ariglad(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(ARIGLAD)
    document.update(changes)
    return document


def history(client: FlaskClient, instance_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        f"/api/instances/{instance_id}/history?limit=200").json["items"]
    return items


def sleeper(seconds: float = 5, fail: bool = False, on_error: str | None = None
            ) -> dict[str, Any]:
    state: dict[str, Any] = {"id": "sleeping", "name": "Sleeping",
                             "block": {"type": "sleep",
                                       "params": {"seconds": seconds, "fail": fail}}}
    if on_error:
        state["on_error"] = on_error
    return {
        "id": "sleeper", "name": "Sleeper",
        "states": [{"id": "ready", "name": "Ready", "is_initial": True}, state,
                   {"id": "done", "name": "Done", "is_final": True},
                   {"id": "broken", "name": "Broken", "is_final": True}],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "sleeping"},
            {"id": "finish", "name": "Finish", "from_states": ["sleeping"], "to_state": "done"},
        ],
    }


def wait_for(client: FlaskClient, instance_id: str, status: str,
             with_progress: bool = False) -> dict[str, Any]:
    """Poll until the instance has the status (and, if asked, its block has reported
    progress)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/instances/{instance_id}").json
        begun = body["progress"] is not None and body["progress"]["rows_total"] is not None
        if body["status"] == status and (begun or not with_progress):
            return body
        time.sleep(0.02)
    raise AssertionError(f"{instance_id} never became {status}")


class TestPipeline:
    def test_one_fire_runs_read_filter_save_to_the_end(self, client: FlaskClient) -> None:
        """Automatic actions chain the blocks; history records each step with its rows."""
        post_definition(client, ariglad())
        done = run(client, "ariglad-leads", id="p1")
        assert (done["status"], done["current_state"], done["is_final"]) == (
            "completed", "saved", True)
        # save_csv passes the filtered table on unchanged: no snapshot of its own.
        assert (done["table"]["rows"], done["table"]["seq"]) == (5, 6)
        events = history(client, "p1")
        assert [(e["type"], e["to_state"]) for e in events] == [
            ("instance_started", "ready"), ("action_fired", "reading"),
            ("block_started", "reading"), ("block_succeeded", "reading"),
            ("action_fired", "filtering"), ("block_started", "filtering"),
            ("block_succeeded", "filtering"), ("action_fired", "saved"),
            ("block_started", "saved"), ("block_succeeded", "saved")]
        filtered = events[6]["data"]
        assert (filtered["rows_in"], filtered["rows_out"]) == (15, 5)
        assert events[5]["data"]["params"]["conditions"][0]["value"] == "Ariglad"
        assert events[4]["data"] == {"trigger": "auto"}
        assert filtered["finished_at"] >= filtered["started_at"]

    def test_answers_at_once_with_202_while_a_block_runs(
        self, client: FlaskClient, slow: type[Sleep]
    ) -> None:
        post_definition(client, sleeper(seconds=0.5))
        client.post("/api/instances", json={"definition_id": "sleeper", "id": "s1"})
        fired = client.post("/api/instances/s1/actions/run")
        assert (fired.status_code, fired.json["status"]) == (202, "running")
        progress = wait_for(client, "s1", "running", with_progress=True)["progress"]
        assert progress["block"] == "sleep"
        assert progress["rows_total"] == 25
        busy = client.post("/api/instances/s1/actions/finish")
        assert (busy.status_code, busy.json["code"]) == (409, "instance_busy")
        assert client.get("/api/instances/s1").status_code == 200
        assert wait_for(client, "s1", "active")["progress"] is None

    def test_reading_with_wait_answers_once_the_block_settled(
        self, client: FlaskClient, slow: type[Sleep]
    ) -> None:
        post_definition(client, sleeper(seconds=0.3))
        client.post("/api/instances", json={"definition_id": "sleeper", "id": "s2"})
        assert client.post("/api/instances/s2/actions/run").status_code == 202
        settled = client.get("/api/instances/s2?wait=10")
        assert (settled.status_code, settled.json["status"]) == (200, "active")
        assert client.get("/api/instances/s2?wait=61").status_code == 400

    def test_the_table_now_and_after_each_step(self, client: FlaskClient) -> None:
        post_definition(client, ariglad())
        run(client, "ariglad-leads", id="p2")
        page = client.get("/api/instances/p2/data?limit=2&offset=1").json
        assert (page["total_rows"], page["offset"], len(page["rows"])) == (5, 1, 2)
        assert page["columns"] == ["name", "company", "email", "company_location", "linkedin"]
        assert page["rows"][0]["company"].startswith("Ariglad")
        after_read = client.get("/api/instances/p2/history/4/data?limit=100").json
        assert after_read["total_rows"] == 15
        csv = client.get("/api/instances/p2/history/7/data?format=csv")
        assert csv.mimetype == "text/csv"
        assert len(csv.text.strip().splitlines()) == 6
        early = client.get("/api/instances/p2/history/2/data")
        assert (early.status_code, early.json["code"]) == (404, "no_table")
        missing = client.get("/api/instances/p2/history/99/data")
        assert (missing.status_code, missing.json["code"]) == (404, "event_not_found")
        bad = client.get("/api/instances/p2/data?format=xml")
        assert (bad.status_code, bad.json["code"]) == (400, "invalid_parameter")

    def test_no_table_yet(self, client: FlaskClient) -> None:
        post_definition(client, ariglad())
        client.post("/api/instances", json={"definition_id": "ariglad-leads", "id": "p3"})
        response = client.get("/api/instances/p3/data")
        assert (response.status_code, response.json["code"]) == (404, "no_table")


class TestGuards:
    def test_a_guard_holds_the_instance_and_explains_why(self, client: FlaskClient) -> None:
        """Nothing passes the filter, so 'save' (row_count > 0) never fires."""
        document = ariglad()
        document["states"][2]["block"]["params"]["conditions"][0]["value"] = "Nobody"
        document["actions"] = [a for a in document["actions"] if a["id"] != "none_found"]
        post_definition(client, document)
        stopped = run(client, "ariglad-leads", id="g1")
        assert (stopped["status"], stopped["current_state"]) == ("active", "filtering")
        assert stopped["available_actions"] == []
        explained = client.get("/api/instances/g1/actions?explain=true").json
        assert explained["unavailable"] == [{
            "id": "save", "name": "Save", "description": "", "to_state": "saved",
            "reason": "its condition does not hold (row_count gt 0)"}]
        refused = client.post("/api/instances/g1/actions/save")
        assert (refused.status_code, refused.json["code"]) == (409, "condition_not_met")
        assert "row_count gt 0" in refused.json["detail"]

    def test_the_shipped_pipeline_ends_when_nothing_matches(self, client: FlaskClient) -> None:
        document = ariglad()
        document["states"][2]["block"]["params"]["conditions"][0]["value"] = "Nobody"
        post_definition(client, document)
        done = run(client, "ariglad-leads")
        assert (done["status"], done["current_state"]) == ("completed", "nothing_to_save")
        assert client.get("/api/outputs").json["items"] == []

    def test_guards_on_context(self, client: FlaskClient) -> None:
        document = {
            "id": "gate", "name": "Gate",
            "states": [{"id": "a", "name": "A", "is_initial": True},
                       {"id": "b", "name": "B", "is_final": True}],
            "actions": [{"id": "go", "name": "Go", "from_states": ["a"], "to_state": "b",
                         "condition": {"conditions": [
                             {"fact": "context.tier", "operator": "in",
                              "value": ["gold", "platinum"]}]}}],
        }
        post_definition(client, document)
        gold = client.post("/api/instances", json={"definition_id": "gate",
                                                   "context": {"tier": "Gold"}}).json
        free = client.post("/api/instances", json={"definition_id": "gate",
                                                   "context": {"tier": "free"}}).json
        assert [a["id"] for a in gold["available_actions"]] == ["go"]
        assert free["available_actions"] == []

    @staticmethod
    def looping(guarded: bool, first_block: dict[str, Any] | None = None) -> dict[str, Any]:
        condition = {"condition": {"conditions": [
            {"fact": "context.loop", "operator": "is_true"}]}} if guarded else {}
        first: dict[str, Any] = {"id": "a", "name": "A", "is_initial": True}
        states = [first, {"id": "b", "name": "B"}, {"id": "c", "name": "C"}]
        if first_block:
            states.insert(1, {"id": "read", "name": "Read", "block": first_block})
        actions: list[dict[str, Any]] = [
            {"id": "go", "name": "Go", "from_states": ["a"],
             "to_state": "read" if first_block else "b"},
            {"id": "bc", "name": "bc", "from_states": ["b"], "to_state": "c",
             "trigger": "auto", **condition},
            {"id": "cb", "name": "cb", "from_states": ["c"], "to_state": "b",
             "trigger": "auto", **condition}]
        if first_block:
            actions.append({"id": "rb", "name": "rb", "from_states": ["read"],
                            "to_state": "b", "trigger": "auto"})
        return {"id": "loop", "name": "Loop", "states": states, "actions": actions}

    def test_unguarded_automatic_loops_are_refused_when_defined(
        self, client: FlaskClient
    ) -> None:
        response = client.post("/api/definitions", json=self.looping(guarded=False))
        assert response.status_code == 422
        assert {(e["path"], e["code"]) for e in response.json["errors"]} == {
            ("states[1]", "auto_transition_loop"), ("states[2]", "auto_transition_loop")}

    def test_a_guarded_loop_that_never_rests_is_refused_when_fired(
        self, client: FlaskClient
    ) -> None:
        post_definition(client, self.looping(guarded=True))
        instance = client.post("/api/instances", json={
            "definition_id": "loop", "context": {"loop": True}}).json
        response = client.post(f"/api/instances/{instance['id']}/actions/go")
        assert (response.status_code, response.json["code"]) == (409, "auto_transition_loop")
        assert len(history(client, instance["id"])) == 1

    def test_a_loop_after_a_block_fails_the_instance_instead_of_hanging(
        self, client: FlaskClient
    ) -> None:
        read = {"type": "read_csv", "params": {"file": "leads.csv"}}
        post_definition(client, self.looping(guarded=True, first_block=read))
        started = client.post("/api/instances", json={
            "definition_id": "loop", "id": "l3", "context": {"loop": True}})
        assert started.status_code == 201
        failed = client.post("/api/instances/l3/actions/go?wait=10").json
        assert (failed["status"], failed["current_state"]) == ("failed", "read")
        assert failed["error"]["code"] == "auto_transition_loop"


class TestFailures:
    def test_a_failed_block_is_recorded_and_retried_from_the_same_input(
        self, client: FlaskClient, settings: Any
    ) -> None:
        document = ariglad()
        del document["states"][1]["on_error"]
        document["states"][1]["block"]["params"]["file"] = "later.csv"
        post_definition(client, document)
        failed = run(client, "ariglad-leads", id="f1")
        assert (failed["status"], failed["current_state"]) == ("failed", "reading")
        assert failed["error"]["code"] == "file_not_found"
        last = history(client, "f1")[-1]
        assert (last["type"], last["data"]["error"]["code"]) == ("block_failed", "file_not_found")

        (settings.files_dir / "later.csv").write_text(
            (settings.files_dir / "leads.csv").read_text())
        skipped = client.post("/api/instances/f1/actions/filter")
        assert (skipped.status_code, skipped.json["code"]) == (409, "block_not_succeeded")
        explained = client.get("/api/instances/f1/actions?explain=true").json["unavailable"]
        assert explained[0]["reason"] == "the state's block failed; retry it first"
        retried = client.post("/api/instances/f1/retry?wait=10")
        assert (retried.status_code, retried.json["status"]) == (200, "completed")
        assert retried.json["table"]["rows"] == 5
        again = client.post("/api/instances/f1/retry")
        assert (again.status_code, again.json["code"]) == (409, "nothing_to_retry")

    def test_on_error_moves_to_its_state(self, client: FlaskClient) -> None:
        document = ariglad()
        document["states"][1]["block"]["params"]["file"] = "later.csv"
        post_definition(client, document)
        moved = run(client, "ariglad-leads", id="f2")
        assert (moved["status"], moved["current_state"]) == ("active", "needs_attention")
        assert moved["error"]["code"] == "file_not_found"
        assert [a["id"] for a in moved["available_actions"]] == ["read_again"]
        failed_event = history(client, "f2")[-1]
        assert (failed_event["from_state"], failed_event["to_state"]) == (
            "reading", "needs_attention")

    def test_a_missing_column_at_run_time_names_the_columns(
        self, client: FlaskClient, settings: Any
    ) -> None:
        """The file was not there when the definition was posted, so the static pass could
        not know its columns; the run says what is missing and what is there."""
        document = ariglad()
        document["states"][1]["block"]["params"]["file"] = "later.csv"
        document["states"][2]["block"]["params"]["conditions"][0]["column"] = "employer"
        post_definition(client, document)
        (settings.files_dir / "later.csv").write_text(
            (settings.files_dir / "leads.csv").read_text())
        failed = run(client, "ariglad-leads", id="f4")
        assert (failed["status"], failed["current_state"]) == ("failed", "filtering")
        assert failed["error"]["code"] == "missing_column"
        assert failed["error"]["message"] == (
            "filter: no column 'employer'; the table has 'name', 'company', 'email', "
            "'company_location', 'linkedin'.")

    def test_an_unexpected_exception_is_recorded_not_raised(
        self, client: FlaskClient, slow: type[Sleep]
    ) -> None:
        post_definition(client, sleeper(seconds=0.02, fail=True))
        failed = run(client, "sleeper", id="f3")
        assert failed["status"] == "failed"
        assert failed["error"] == {"code": "block_crashed",
                                   "message": "RuntimeError: asked to fail"}


class TestCancel:
    def test_cancel_stops_the_block_and_is_recorded(
        self, client: FlaskClient, slow: type[Sleep]
    ) -> None:
        post_definition(client, sleeper(seconds=30))
        client.post("/api/instances", json={"definition_id": "sleeper", "id": "c1"})
        client.post("/api/instances/c1/actions/run")
        began = time.monotonic()
        cancelled = client.post("/api/instances/c1/cancel", headers={"X-Actor": "ops"})
        assert (cancelled.status_code, cancelled.json["status"]) == (200, "cancelled")
        runner = client.application.extensions["workflow_engine.runner"]
        # The block would sleep 30 s: ending well before that is the cancel's doing, with
        # room for a loaded machine.
        runner.wait("c1", 20)
        assert time.monotonic() - began < 20
        assert client.get("/api/instances/c1").json["progress"] is None
        last = history(client, "c1")[-1]
        assert (last["type"], last["actor"]) == ("block_cancelled", "ops")
        again = client.post("/api/instances/c1/cancel")
        assert (again.status_code, again.json["code"]) == (409, "not_running")
        skipped = client.post("/api/instances/c1/actions/finish")
        assert (skipped.status_code, skipped.json["code"]) == (409, "block_not_succeeded")

    def test_a_cancelled_block_can_be_retried(
        self, client: FlaskClient, slow: type[Sleep]
    ) -> None:
        post_definition(client, sleeper(seconds=0.2))
        client.post("/api/instances", json={"definition_id": "sleeper", "id": "c2"})
        client.post("/api/instances/c2/actions/run")
        client.post("/api/instances/c2/cancel")
        retried = client.post("/api/instances/c2/retry?wait=5")
        assert (retried.status_code, retried.json["status"]) == (200, "active")
        types = [e["type"] for e in history(client, "c2")]
        assert types[-3:] == ["block_cancelled", "block_started", "block_succeeded"]

    def test_a_cancel_before_the_block_started_does_not_cancel_its_retry(
        self, tmp_path: Path, database_url: str, build_app: BuildApp
    ) -> None:
        """With the only block worker busy, a run is cancelled and retried while it waits
        for the worker: the cancel stops the cancelled run, and the retried run still
        runs to its end instead of being taken for the cancelled one."""
        app = build_app(make_settings(tmp_path, database_url=database_url, block_workers=1))
        app.extensions[RUNNER].catalog.blocks = {**BLOCKS, Sleep.kind: Sleep}
        client = app.test_client()
        post_definition(client, {**sleeper(seconds=60), "id": "blocker"})
        post_definition(client, sleeper(seconds=0.1))
        client.post("/api/instances", json={"definition_id": "blocker", "id": "b"})
        client.post("/api/instances/b/actions/run")
        wait_for(client, "b", "running", with_progress=True)  # the worker is taken
        client.post("/api/instances", json={"definition_id": "sleeper", "id": "c3"})
        client.post("/api/instances/c3/actions/run")
        client.post("/api/instances/c3/cancel")
        client.post("/api/instances/c3/retry")
        client.post("/api/instances/b/cancel")  # frees the worker for c3's runs
        retried = client.get("/api/instances/c3?wait=10").json
        assert retried["status"] == "active", retried
        types = [e["type"] for e in history(client, "c3")]
        assert types[-3:] == ["block_cancelled", "block_started", "block_succeeded"]


@pytest.mark.usefixtures("definition")
def test_block_catalog(client: FlaskClient) -> None:
    catalog = client.get("/api/blocks").json["items"]
    kinds = {entry["type"]: entry for entry in catalog}
    assert set(kinds) >= {"read_csv", "filter", "dedupe", "select_columns", "save_csv"}
    assert kinds["read_csv"]["needs_table"] is False
    assert "file" in kinds["read_csv"]["params_schema"]["properties"]
    assert kinds["filter"]["requires"] == "the columns the conditions name"
    condition = kinds["filter"]["params_schema"]["$defs"]["ColumnCondition"]["properties"]
    assert "case_sensitive" in condition


def test_csv_downloads_neutralise_formulas(client: FlaskClient, settings: Any) -> None:
    (settings.files_dir / "risky.csv").write_text("name,note\nAnn,=HYPERLINK(1)\nBo,-5\n")
    document = ariglad()
    document["states"][1]["block"]["params"]["file"] = "risky.csv"
    document["states"][2]["block"]["params"]["conditions"][0] = {
        "column": "name", "operator": "is_not_empty"}
    post_definition(client, document)
    run(client, "ariglad-leads", id="csv1")
    safe = client.get("/api/instances/csv1/data?format=csv").text
    raw = client.get("/api/instances/csv1/data?format=csv&neutralise_formulas=false").text
    assert "'=HYPERLINK(1)" in safe
    assert "'-5" not in safe
    assert "'=" not in raw


def test_a_table_is_paged_in_the_order_asked_for(client: FlaskClient, settings: Any) -> None:
    """``sort`` orders the whole table before paging: numbers as numbers (CSV cells are
    text), descending with ``-``, missing values last; an unknown column is a 400."""
    (settings.files_dir / "scores.csv").write_text(
        "name,score\nAnn,72\nBo,9\nCid,\nDee,50\nEve,100\n")
    document = ariglad()
    document["states"][1]["block"]["params"]["file"] = "scores.csv"
    document["states"][2]["block"]["params"]["conditions"][0] = {
        "column": "name", "operator": "is_not_empty"}
    post_definition(client, document)
    run(client, "ariglad-leads", id="sorted")

    def names(sort: str, **extra: Any) -> list[str]:
        page = client.get("/api/instances/sorted/data", query_string={"sort": sort, **extra})
        assert page.status_code == 200, page.json
        return [row["name"] for row in page.json["rows"]]

    assert names("score") == ["Bo", "Dee", "Ann", "Eve", "Cid"]
    assert names("-score") == ["Eve", "Ann", "Dee", "Bo", "Cid"]
    assert names("-score", offset=1, limit=2) == ["Ann", "Dee"]
    assert names("name") == ["Ann", "Bo", "Cid", "Dee", "Eve"]
    csv = client.get("/api/instances/sorted/data?format=csv&sort=-score").text
    assert [line.split(",")[0] for line in csv.splitlines()[1:]] == [
        "Eve", "Ann", "Dee", "Bo", "Cid"]
    unknown = client.get("/api/instances/sorted/data?sort=-nope")
    assert (unknown.status_code, unknown.json["code"]) == (400, "invalid_parameter")
    assert "no column 'nope'" in unknown.json["detail"]


def test_an_idempotent_replay_answers_the_first_result(
    client: FlaskClient, slow: type[Sleep]
) -> None:
    post_definition(client, sleeper(seconds=0.1))
    client.post("/api/instances", json={"definition_id": "sleeper", "id": "k1"})
    first = client.post("/api/instances/k1/actions/run", headers={"Idempotency-Key": "k"})
    again = client.post("/api/instances/k1/actions/run?wait=5",
                        headers={"Idempotency-Key": "k"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json["version"] == first.json["version"]
    assert again.headers["Idempotent-Replayed"] == "true"


class TestRunInputs:
    """Block parameters given at the start, by state id, over the definition's."""

    def test_a_run_reads_another_file_and_the_history_records_it(
        self, client: FlaskClient, settings: Any,
    ) -> None:
        post_definition(client, ariglad())
        rows = (settings.files_dir / "leads.csv").read_text().splitlines()
        other = [rows[0], *[r for r in rows[1:] if "Ariglad" in r][:2]]
        (settings.files_dir / "two.csv").write_text("\n".join(other) + "\n")
        done = run(client, "ariglad-leads", id="other-file",
                   inputs={"reading": {"file": "two.csv"}})
        assert done["status"] == "completed"
        assert done["inputs"] == {"reading": {"file": "two.csv"}}
        assert done["table"]["rows"] == 2
        started = [e for e in history(client, "other-file") if e["type"] == "block_started"]
        assert started[0]["data"]["params"] == {"file": "two.csv"}
        # The definition's own parameters are untouched for the next run.
        assert run(client, "ariglad-leads", id="own-file")["table"]["rows"] == sum(
            "Ariglad" in r for r in rows[1:])

    def test_a_trial_run_reads_the_first_rows_only(self, client: FlaskClient,
                                                   settings: Any) -> None:
        post_definition(client, ariglad())
        rows = (settings.files_dir / "leads.csv").read_text().splitlines()[1:]
        done = run(client, "ariglad-leads", id="trial",
                   inputs={"reading": {"max_rows": 3}})
        read = next(e for e in history(client, "trial") if e["type"] == "block_succeeded")
        assert read["data"]["rows_out"] == 3
        assert done["table"]["rows"] == sum("Ariglad" in r for r in rows[:3])

    @pytest.mark.parametrize(("inputs", "path", "code"), [
        ({"nowhere": {"file": "x.csv"}}, "inputs.nowhere", "not_a_block_state"),
        ({"ready": {"file": "x.csv"}}, "inputs.ready", "not_a_block_state"),
        ({"reading": {"max_rows": 0}}, "inputs.reading.max_rows", "greater_than_equal"),
        ({"reading": {"colour": "red"}}, "inputs.reading.colour", "unknown_field"),
        ({"reading": {"file": "../etc/passwd"}}, "inputs.reading.file", None),
    ])
    def test_inputs_that_do_not_fit_are_refused_and_nothing_starts(
        self, client: FlaskClient, inputs: dict[str, Any], path: str, code: str | None,
    ) -> None:
        post_definition(client, ariglad())
        response = client.post("/api/instances", json={
            "definition_id": "ariglad-leads", "id": "refused", "inputs": inputs})
        assert response.status_code == 422, response.json
        assert response.content_type == "application/problem+json"
        assert response.json["code"] == "inputs_invalid"
        assert response.json["errors"][0]["path"] == path
        if code is not None:
            assert response.json["errors"][0]["code"] == code
        assert client.get("/api/instances/refused").status_code == 404

    def test_the_same_start_with_other_inputs_is_a_conflict(self, client: FlaskClient) -> None:
        post_definition(client, ariglad())
        body = {"definition_id": "ariglad-leads", "id": "again",
                "inputs": {"reading": {"max_rows": 2}}}
        assert client.post("/api/instances", json=body).status_code == 201
        assert client.post("/api/instances", json=body).status_code == 200
        body["inputs"] = {"reading": {"max_rows": 3}}
        assert client.post("/api/instances", json=body).json["code"] == "instance_exists"


class TestEstimate:
    """What a run will ask of the upstream API, before it starts."""

    def enrichment(self) -> dict[str, Any]:
        return json.loads((DEFINITIONS / "ariglad-education.json").read_text())

    def test_the_rows_of_the_file_give_requests_and_the_least_time(
        self, client: FlaskClient, settings: Any,
    ) -> None:
        document = self.enrichment()
        post_definition(client, document)
        rows = len((settings.files_dir / "leads.csv").read_text().splitlines()) - 1
        found = client.post(f"/api/definitions/{document['id']}/estimate", json={}).json
        paid = [s for s in document["states"] if s.get("block", {}).get("type") == "enrich_lead"]
        # A filter comes first: the file's rows are at most what the enrichment is given.
        assert found["steps"] == [{"state_id": paid[0]["id"], "block": "enrich_lead",
                                   "rows": rows, "exact": False, "requests": 2 * rows}]
        per_second = settings.sixtyfour_rate_per_minute * 0.98 / 60
        assert found["requests"] == 2 * rows
        assert found["least_seconds"] == round(2 * rows / per_second, 1)
        assert (found["per_minute"], found["credits"]) == (settings.sixtyfour_rate_per_minute,
                                                           None)
        reading = next(s["id"] for s in document["states"]
                       if s.get("block", {}).get("type") == "read_csv")
        trial = client.post(f"/api/definitions/{document['id']}/estimate",
                            json={"inputs": {reading: {"max_rows": 4}}}).json
        assert (trial["steps"][0]["rows"], trial["requests"]) == (4, 8)

    def test_an_estimate_is_checked_as_a_start_and_stores_nothing(
        self, client: FlaskClient,
    ) -> None:
        document = self.enrichment()
        post_definition(client, document)
        refused = client.post(f"/api/definitions/{document['id']}/estimate",
                              json={"inputs": {"nowhere": {}}})
        assert (refused.status_code, refused.json["code"]) == (422, "inputs_invalid")
        missing = client.post("/api/definitions/nothing-here/estimate", json={})
        assert (missing.status_code, missing.json["code"]) == (404, "definition_not_found")
        assert client.get("/api/instances").json["items"] == []

    def test_a_file_that_cannot_be_read_leaves_the_figures_unknown(
        self, client: FlaskClient,
    ) -> None:
        document = self.enrichment()
        post_definition(client, document)
        reading = next(s["id"] for s in document["states"]
                       if s.get("block", {}).get("type") == "read_csv")
        found = client.post(f"/api/definitions/{document['id']}/estimate",
                            json={"inputs": {reading: {"file": "absent.csv"}}}).json
        assert found["steps"][0]["rows"] is None
        assert (found["requests"], found["least_seconds"]) == (None, None)
