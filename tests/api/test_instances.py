"""Instances over HTTP: start, read, list, fire, history."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import approval

PROBLEM = "application/problem+json"


def fire(client: FlaskClient, instance_id: str, action_id: str, **headers: str) -> Any:
    return client.post(f"/api/instances/{instance_id}/actions/{action_id}",
                       headers={k.replace("_", "-"): v for k, v in headers.items()})


def history(client: FlaskClient, instance_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/api/instances/{instance_id}/history").json["items"]
    return items


@pytest.mark.usefixtures("definition")
class TestStart:
    def test_started_in_the_initial_state(self, client: FlaskClient) -> None:
        """201 with Location, ETag, the initial state and what can fire from it."""
        response = client.post("/api/instances", json={"definition_id": "approval",
                                                       "context": {"owner": "ann"}})
        body = response.json
        assert response.status_code == 201
        assert response.headers["Location"] == f"/api/instances/{body['id']}"
        assert response.headers["ETag"] == '"1"'
        assert (body["current_state"], body["status"], body["is_final"], body["version"]) == (
            "draft", "active", False, 1)
        assert [a["id"] for a in body["available_actions"]] == ["submit"]
        assert body["context"] == {"owner": "ann"}
        assert body["created_at"].endswith("Z")

    def test_camel_case_definition_id(self, client: FlaskClient) -> None:
        response = client.post("/api/instances", json={"definitionId": "approval"})
        assert response.status_code == 201

    def test_client_chosen_id_makes_starting_idempotent(self, client: FlaskClient) -> None:
        """Same id and request: 200 and the same instance; another request: 409."""
        request = {"definition_id": "approval", "id": "order-1", "context": {"a": 1}}
        first = client.post("/api/instances", json=request)
        again = client.post("/api/instances", json=request)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json["id"] == "order-1"
        clash = client.post("/api/instances", json={**request, "context": {"a": 2}})
        assert (clash.status_code, clash.json["code"]) == (409, "instance_exists")

    def test_a_retry_may_name_the_version_it_got(self, client: FlaskClient) -> None:
        """Naming the version the instance runs is the same request; another is not."""
        request = {"definition_id": "approval", "id": "pinned"}
        assert client.post("/api/instances", json=request).status_code == 201
        same = client.post("/api/instances", json={**request, "version": 1})
        assert same.status_code == 200
        client.put("/api/definitions/approval", json=approval(name="v2"))
        assert client.post("/api/instances", json=request).status_code == 200
        other = client.post("/api/instances", json={**request, "version": 2})
        assert (other.status_code, other.json["code"]) == (409, "instance_exists")

    def test_stays_on_the_version_it_started_with(self, client: FlaskClient) -> None:
        """A new definition version does not move running instances."""
        old = client.post("/api/instances", json={"definition_id": "approval"}).json
        changed = approval()
        changed["actions"][0]["to_state"] = "approved"
        client.put("/api/definitions/approval", json=changed)
        new = client.post("/api/instances", json={"definition_id": "approval"}).json
        pinned = client.post("/api/instances", json={"definition_id": "approval", "version": 1})
        assert (old["definition_version"], new["definition_version"]) == (1, 2)
        assert pinned.json["definition_version"] == 1
        assert fire(client, old["id"], "submit").json["current_state"] == "review"
        assert fire(client, new["id"], "submit").json["current_state"] == "approved"

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"definition_id": "missing"}, 404, "definition_not_found"),
            ({"definition_id": "approval", "version": 9}, 404, "definition_version_not_found"),
            ({}, 422, "validation_failed"),
            ({"definition_id": 5}, 422, "validation_failed"),
            ({"definition_id": "approval", "version": "1"}, 422, "validation_failed"),
            ({"definition_id": "approval", "id": "../etc"}, 422, "validation_failed"),
            ({"definition_id": "approval", "context": []}, 422, "validation_failed"),
            ({"definition_id": "approval", "extra": True}, 422, "validation_failed"),
        ],
    )
    def test_bad_requests(self, client: FlaskClient, body: Any, status: int, code: str) -> None:
        response = client.post("/api/instances", json=body)
        assert (response.status_code, response.json["code"]) == (status, code)
        assert response.content_type == PROBLEM
        assert client.get("/api/instances").json["items"] == []


class TestRead:
    def test_get_with_etag(self, client: FlaskClient, instance: dict[str, Any]) -> None:
        response = client.get(f"/api/instances/{instance['id']}")
        assert response.json == instance
        assert response.headers["ETag"] == '"1"'

    def test_unknown_instance(self, client: FlaskClient) -> None:
        response = client.get("/api/instances/nope")
        assert (response.status_code, response.json["code"]) == (404, "instance_not_found")

    def test_available_actions(self, client: FlaskClient, instance: dict[str, Any]) -> None:
        """What can fire now, each with its target; nothing once final."""
        fire(client, instance["id"], "submit")
        body = client.get(f"/api/instances/{instance['id']}/actions").json
        assert body["current_state"] == "review"
        assert [(a["id"], a["to_state"]) for a in body["actions"]] == [
            ("approve", "approved"), ("reject", "rejected"), ("rework", "draft")]
        fire(client, instance["id"], "approve")
        done = client.get(f"/api/instances/{instance['id']}/actions").json
        assert (done["is_final"], done["actions"]) == (True, [])


class TestFire:
    def test_fires_and_records(self, client: FlaskClient, instance: dict[str, Any]) -> None:
        """200, the new state and version, and one more history event with the actor."""
        response = fire(client, instance["id"], "submit", X_Actor="bob")
        assert response.status_code == 200
        assert (response.json["current_state"], response.json["version"]) == ("review", 2)
        assert response.headers["ETag"] == '"2"'
        last = history(client, instance["id"])[-1]
        assert {k: last[k] for k in ("seq", "type", "action_id", "from_state", "to_state",
                                     "actor")} == {
            "seq": 2, "type": "action_fired", "action_id": "submit", "from_state": "draft",
            "to_state": "review", "actor": "bob"}

    def test_completes_in_a_final_state(self, client: FlaskClient,
                                        instance: dict[str, Any]) -> None:
        fire(client, instance["id"], "submit")
        body = fire(client, instance["id"], "approve").json
        assert (body["status"], body["is_final"], body["available_actions"]) == (
            "completed", True, [])

    @pytest.mark.parametrize(
        ("path", "action_id", "status", "code"),
        [
            ([], "missing", 404, "action_not_found"),
            ([], "approve", 409, "action_not_available_from_state"),
            (["submit"], "escalate", 409, "action_disabled"),
            ([], "archive", 409, "target_state_disabled"),
            (["submit", "reject"], "rework", 409, "instance_final"),
        ],
    )
    def test_refusals_change_nothing(
        self, client: FlaskClient, instance: dict[str, Any], path: list[str], action_id: str,
        status: int, code: str,
    ) -> None:
        """Each refusal has its status and code, names action and state, and changes nothing."""
        for step in path:
            assert fire(client, instance["id"], step).status_code == 200
        before = client.get(f"/api/instances/{instance['id']}").json
        events = history(client, instance["id"])
        response = fire(client, instance["id"], action_id)
        assert (response.status_code, response.json["code"]) == (status, code)
        assert response.json["current_state"] == before["current_state"]
        assert action_id in response.json["detail"]
        assert before["current_state"] in response.json["detail"]
        assert client.get(f"/api/instances/{instance['id']}").json == before
        assert history(client, instance["id"]) == events

    def test_unknown_instance(self, client: FlaskClient) -> None:
        response = fire(client, "nope", "submit")
        assert (response.status_code, response.json["code"]) == (404, "instance_not_found")

    def test_if_match(self, client: FlaskClient, instance: dict[str, Any]) -> None:
        """The current ETag fires; a stale one is 412 and changes nothing."""
        assert fire(client, instance["id"], "submit", If_Match='"1"').status_code == 200
        stale = fire(client, instance["id"], "approve", If_Match='"1"')
        assert (stale.status_code, stale.json["code"]) == (412, "precondition_failed")
        assert stale.json["current_etag"] == '"2"'
        assert len(history(client, instance["id"])) == 2
        weak = fire(client, instance["id"], "approve", If_Match='W/"2"')
        assert (weak.status_code, weak.json["code"]) == (412, "precondition_failed")
        assert fire(client, instance["id"], "approve", If_Match='"7", "2"').status_code == 200
        assert fire(client, instance["id"], "approve", If_Match="*").json["code"] == (
            "instance_final")

    def test_idempotency_key_replays_the_first_result(
        self, client: FlaskClient, instance: dict[str, Any]
    ) -> None:
        """A retry with the same key answers the first result and fires nothing."""
        first = fire(client, instance["id"], "submit", Idempotency_Key="k-1")
        fire(client, instance["id"], "rework")
        retry = fire(client, instance["id"], "submit", Idempotency_Key="k-1")
        assert retry.status_code == 200
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json == first.json
        assert len(history(client, instance["id"])) == 3
        other = fire(client, instance["id"], "approve", Idempotency_Key="k-1")
        assert (other.status_code, other.json["code"]) == (422, "idempotency_key_reused")

    @pytest.mark.parametrize(
        "headers",
        [{"X-Actor": "a" * 201}, {"X-Actor": "bad\tactor"}, {"Idempotency-Key": ""},
         {"Idempotency-Key": "k" * 201}],
    )
    def test_bad_headers(self, client: FlaskClient, instance: dict[str, Any],
                         headers: dict[str, str]) -> None:
        response = client.post(f"/api/instances/{instance['id']}/actions/submit",
                               headers=headers)
        assert (response.status_code, response.json["code"]) == (400, "invalid_header")
        assert len(history(client, instance["id"])) == 1


@pytest.mark.usefixtures("definition")
class TestList:
    def test_filters_and_pages(self, client: FlaskClient) -> None:
        """Filters by state and status; cursors visit each instance once in start order."""
        ids = [client.post("/api/instances", json={"definition_id": "approval"}).json["id"]
               for _ in range(5)]
        for instance_id in ids[:2]:
            fire(client, instance_id, "submit")
        fire(client, ids[0], "approve")
        in_review = client.get("/api/instances?state=review").json["items"]
        completed = client.get("/api/instances?status=completed&definition_id=approval").json
        assert [i["id"] for i in in_review] == [ids[1]]
        assert [i["id"] for i in completed["items"]] == [ids[0]]

        seen, cursor = [], None
        while True:
            page = client.get("/api/instances?limit=2" + (f"&cursor={cursor}" if cursor else ""))
            seen += [item["id"] for item in page.json["items"]]
            cursor = page.json["next_cursor"]
            if cursor is None:
                break
        assert seen == ids

    @pytest.mark.parametrize("query", ["status=sleeping", "limit=-1", "state=../x",
                                       "cursor=abc"])
    def test_bad_filters(self, client: FlaskClient, query: str) -> None:
        response = client.get(f"/api/instances?{query}")
        assert (response.status_code, response.json["code"]) == (400, "invalid_parameter")


class TestHistory:
    def test_pages_in_order(self, client: FlaskClient, instance: dict[str, Any]) -> None:
        """Events come oldest first with gapless seq, and pages join up."""
        for step in ["submit", "rework", "submit", "rework", "submit"]:
            fire(client, instance["id"], step)
        first = client.get(f"/api/instances/{instance['id']}/history?limit=4").json
        rest = client.get(f"/api/instances/{instance['id']}/history?limit=4"
                          f"&cursor={first['next_cursor']}").json
        seqs = [e["seq"] for e in first["items"] + rest["items"]]
        assert seqs == [1, 2, 3, 4, 5, 6]
        assert rest["next_cursor"] is None
        assert first["items"][0]["type"] == "instance_started"
        assert first["items"][0]["at"].endswith("Z")
        assert len(first["items"][0]["at"]) == len("2026-01-01T00:00:00.000Z")

    def test_unknown_instance(self, client: FlaskClient) -> None:
        response = client.get("/api/instances/nope/history")
        assert (response.status_code, response.json["code"]) == (404, "instance_not_found")
