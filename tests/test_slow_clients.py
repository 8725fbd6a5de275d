"""Clients that connect and then send too little, too slowly or never: the real server
keeps answering everyone else, closes the silent ones, and never executes half a request.

Raw sockets throughout: a client library would complete or abandon the requests itself.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import approval
from workflow_engine.testing import ServerProcess, running_server

pytestmark = pytest.mark.slow

# Long enough that nothing below is answered thanks to a silent client being dropped:
# every "answered" assertion holds well before the first idle connection is closed.
IDLE_TIMEOUT = 30
# "Answered while the silent clients are still connected", with room for a loaded
# machine; how fast it really is belongs to bench/slow_clients.py.
ANSWERED_WITHIN = 5
# For the tests that wait for the server to drop silent clients.
SHORT_IDLE_TIMEOUT = 2
# How long the tests wait for a drop before failing: a deadline, not a pause.
DROP_DEADLINE = 30


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def sockets(port: int, count: int, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent ``first_bytes`` and then nothing."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            if first_bytes:
                connection.sendall(first_bytes)
            opened.append(connection)
        yield opened
    finally:
        for connection in opened:
            connection.close()


def timed_health(server: ServerProcess) -> float:
    """Seconds a fresh client waits for ``GET /health``."""
    began = time.monotonic()
    response = httpx.get(f"{server.url}/health", timeout=IDLE_TIMEOUT)
    assert response.status_code == 200
    return time.monotonic() - began


def dropped(connection: socket.socket) -> bool:
    """Whether the server closes ``connection`` before the deadline (reading what it
    sends on the way, if anything)."""
    connection.settimeout(DROP_DEADLINE)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset by the server: dropped too
        return True
    return True


def instance_ids(server: ServerProcess) -> list[str]:
    return [item["id"] for item in httpx.get(f"{server.url}/api/instances").json()["items"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("slow")
    with running_server(root / "wf.db", env={"HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}) as up:
        httpx.post(f"{up.url}/api/definitions", json=approval()).raise_for_status()
        yield up


@pytest.fixture
def quick_drop_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"HTTP_IDLE_TIMEOUT": str(SHORT_IDLE_TIMEOUT)}
    with running_server(tmp_path / "wf.db", env=env) as up:
        httpx.post(f"{up.url}/api/definitions", json=approval()).raise_for_status()
        yield up


@pytest.mark.parametrize("idle", [8, 300])
def test_idle_connections_do_not_hold_up_a_request(server: ServerProcess, idle: int) -> None:
    """More silent connections than request threads (8), then a normal request: answered
    at once, not after the idle connections time out."""
    with sockets(port_of(server), idle):
        assert timed_health(server) < ANSWERED_WITHIN


def test_half_sent_headers_do_not_hold_up_a_request(server: ServerProcess) -> None:
    """100 clients stop in the middle of their headers: others are still served."""
    with sockets(port_of(server), 100, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A"):
        assert timed_health(server) < ANSWERED_WITHIN


def test_trickled_bodies_do_not_hold_up_a_request(server: ServerProcess) -> None:
    """20 clients send their headers and the start of a body, then stall."""
    head = (b"POST /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"defin")
    with sockets(port_of(server), 20, head):
        assert timed_health(server) < ANSWERED_WITHIN


def test_silent_clients_are_dropped_after_the_idle_timeout(
    quick_drop_server: ServerProcess,
) -> None:
    """Half-sent headers, idle sockets and stalled bodies are closed by the server."""
    port = port_of(quick_drop_server)
    stalled_body = (b"POST /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    with (sockets(port, 100, b"GET /health HTTP/1.1\r\nHo") as half,
          sockets(port, 20) as idle, sockets(port, 20, stalled_body) as stalled):
        assert all(dropped(connection) for connection in half + idle + stalled)
    assert instance_ids(quick_drop_server) == []
    assert httpx.get(f"{quick_drop_server.url}/health").status_code == 200


def truncated_start(instance_id: str) -> bytes:
    """A start whose Content-Length promises 100 bytes and whose body is shorter."""
    body = f'{{"definition_id": "approval", "id": "{instance_id}"}}'.encode()
    assert len(body) < 100
    return (b"POST /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + body)


def test_a_truncated_body_then_a_half_close_is_never_executed(server: ServerProcess) -> None:
    """The client sends 52 of 100 bytes and shuts its side: no answer but a close, and
    no instance is created."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection:
        connection.sendall(truncated_start("half-closed"))
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/1.1 2"), answer
    assert "half-closed" not in instance_ids(server)


def test_a_truncated_body_left_open_is_dropped_not_executed(
    quick_drop_server: ServerProcess,
) -> None:
    """The client sends 52 of 100 bytes and waits: the server closes the connection after
    the idle timeout and creates nothing."""
    port = port_of(quick_drop_server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(truncated_start("left-open"))
        assert dropped(connection)
    assert instance_ids(quick_drop_server) == []


def test_a_body_longer_than_its_content_length_is_not_read_past_it(
    server: ServerProcess,
) -> None:
    """Bytes after the promised length are the next request, not part of this body."""
    body = b'{"definition_id": "approval", "id": "exact"}'
    smuggled = b"POST /api/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    request = (b"POST /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body + smuggled)
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1  # Connection: close ends it after one answer
    assert "exact" in instance_ids(server)


def test_a_request_trickled_in_past_the_request_timeout_is_dropped(tmp_path: Path) -> None:
    """A client that sends its header a byte at a time stays active, so the idle timeout
    never fires; the request timeout closes it all the same."""
    env = {"HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT), "HTTP_REQUEST_TIMEOUT": "2"}
    with running_server(tmp_path / "wf.db", env=env) as up, socket.create_connection(
            ("127.0.0.1", port_of(up)), timeout=DROP_DEADLINE) as connection:
        began = time.monotonic()
        closed = False
        # The client's own pace (the behaviour under test), bounded by the deadline.
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 100:
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if time.monotonic() - began > DROP_DEADLINE:
                break
            time.sleep(0.2)
        assert closed or dropped(connection)
        assert time.monotonic() - began < IDLE_TIMEOUT


def test_a_content_length_over_the_limit_is_refused_before_the_body(
    server: ServerProcess,
) -> None:
    """The front answers 413 from the header alone: no 50 MB are buffered first."""
    head = (b"POST /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection:
        connection.sendall(head + b'{"definition_id": ')
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    problem = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert (problem["code"], problem["instance"]) == ("payload_too_large", "/api/instances")
