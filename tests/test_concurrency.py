"""Concurrent requests that must agree, over a real server on each database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import approval
from workflow_engine.testing import ServerProcess, running_server

CLIENTS = 24


def at_once(count: int, request: Callable[[httpx.Client], httpx.Response]
            ) -> list[httpx.Response]:
    """``count`` clients, each on its own connection, send ``request`` at one moment."""
    barrier = threading.Barrier(count)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            answer = request(client)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    with running_server(database_url, data_dir=tmp_path, threads=CLIENTS) as running:
        httpx.post(f"{running.url}/api/definitions", json=approval()).raise_for_status()
        yield running


def test_concurrent_starts_with_one_client_id_all_get_the_instance(
    server: ServerProcess,
) -> None:
    """24 identical starts naming one id at once: one 201, 23 x 200 with the same
    instance, never a 500; one instance and one history event stored."""
    body = {"definition_id": "approval", "id": "same", "context": {"n": 1}}
    answers = at_once(CLIENTS, lambda c: c.post(f"{server.url}/api/instances", json=body))
    assert sorted(a.status_code for a in answers) == [200] * (CLIENTS - 1) + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert all(a.json()["version"] == 1 for a in answers)
    history = httpx.get(f"{server.url}/api/instances/same/history").json()["items"]
    assert len(history) == 1


def test_concurrent_starts_with_one_id_and_different_bodies_conflict(
    server: ServerProcess,
) -> None:
    """Starts naming one id with different contexts: one 201, the others 409
    instance_exists (or 200 if they repeat the winner's body)."""
    def start(client: httpx.Client, n: list[int] = [0]) -> httpx.Response:  # noqa: B006
        n[0] += 1
        return client.post(f"{server.url}/api/instances",
                           json={"definition_id": "approval", "id": "x",
                                 "context": {"n": n[0] % 2}})

    answers = at_once(CLIENTS, start)
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}, statuses
    assert all(a.json()["code"] == "instance_exists" for a in answers if a.status_code == 409)


def test_concurrent_fires_with_one_idempotency_key_all_get_the_replay(
    server: ServerProcess,
) -> None:
    """24 fires with one Idempotency-Key at once: one transition recorded, and every
    answer is the same 200 (23 of them marked as replays)."""
    httpx.post(f"{server.url}/api/instances",
               json={"definition_id": "approval", "id": "k"}).raise_for_status()
    answers = at_once(CLIENTS, lambda c: c.post(
        f"{server.url}/api/instances/k/actions/submit", headers={"Idempotency-Key": "once"}))
    assert [a.status_code for a in answers] == [200] * CLIENTS, [
        (a.status_code, a.text[:200]) for a in answers if a.status_code != 200]
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == CLIENTS - 1
    bodies: list[dict[str, Any]] = [a.json() for a in answers]
    assert len({(b["current_state"], b["version"]) for b in bodies}) == 1
    history = httpx.get(f"{server.url}/api/instances/k/history").json()["items"]
    assert [e["type"] for e in history].count("action_fired") == 1
