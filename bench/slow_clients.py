"""Slow and silent clients against both HTTP fronts: ``python bench/slow_clients.py``.

For each front (the server as ``run_server.py`` starts it, waitress; and the previous one,
gunicorn 1 worker ``gthread`` 8 threads, via ``bench/gunicorn_front.py``), on a fresh
SQLite file, in the same run:

- ``idle N``: N TCP connections that send nothing, then a fresh client's ``GET /health``;
- ``half headers``: 100 connections that sent half a request header, then the same;
- ``trickled bodies``: 20 connections that sent headers and 7 bytes of a 1,000-byte body;
- ``truncated body``: ``POST /api/instances`` with ``Content-Length: 100``, a 52-byte
  body and a half-close; whether the instance was created.

Each latency is the median of ``--runs`` runs (connections opened afresh each run); a
request unanswered after ``--cap`` seconds counts as ``> cap``. Everything binds to
127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START = b'{"definition_id": "bench", "id": "truncated-1"}'
DEFINITION = {
    "id": "bench", "name": "Bench",
    "states": [{"id": "a", "name": "A", "is_initial": True}, {"id": "b", "name": "B"}],
    "actions": [{"id": "go", "name": "Go", "from_states": ["a"], "to_state": "b"}],
}


@contextlib.contextmanager
def waitress_front(workdir: Path) -> Iterator[str]:
    from workflow_engine.testing import running_server

    with running_server(workdir / "waitress.db") as server:
        yield server.url


@contextlib.contextmanager
def gunicorn_front(workdir: Path) -> Iterator[str]:
    from workflow_engine.testing import ServerProcess, free_port, wait_until_up

    port = free_port()
    env = {**os.environ, "FILES_DIR": str(workdir / "g-files"),
           "OUTPUTS_DIR": str(workdir / "g-outputs"), "SNAPSHOTS_DIR": str(workdir / "g-snap")}
    with (workdir / "gunicorn.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "gunicorn_front.py"), "--host", HOST,
             "--port", str(port), "--db", str(workdir / "gunicorn.db"), "--threads", "8"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        server = ServerProcess(f"http://{HOST}:{port}", process, log)
        try:
            wait_until_up(server, 30)
            yield server.url
        finally:
            server.stop()


@contextlib.contextmanager
def connections(port: int, count: int, first: bytes = b"") -> Iterator[None]:
    opened = []
    try:
        for _ in range(count):
            connection = socket.create_connection((HOST, port), timeout=10)
            if first:
                connection.sendall(first)
            opened.append(connection)
        yield
    finally:
        for connection in opened:
            connection.close()


def health_latency(url: str, cap: float) -> float:
    """Seconds from connecting to a whole ``GET /health`` answer, on a raw socket (no
    client library's set-up in the figure); ``inf`` past ``cap``."""
    port = int(url.rsplit(":", 1)[1])
    began = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=cap) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
                if time.monotonic() - began > cap:
                    return float("inf")
    except TimeoutError:
        return float("inf")
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/health answered {answer[:80]!r}")
    return time.monotonic() - began


def truncated_created(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    head = (b"POST /api/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    with socket.create_connection((HOST, port), timeout=10) as connection:
        connection.sendall(head + START)
        connection.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while connection.recv(65536):
                pass
    return httpx.get(f"{url}/api/instances/truncated-1").status_code == 200


Load = Callable[[int], contextlib.AbstractContextManager[None]]


def probes() -> list[tuple[str, Load]]:
    half = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A"
    body = (b"POST /api/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{\"defin")
    return [
        ("no other client", lambda port: connections(port, 0)),
        ("8 idle connections", lambda port: connections(port, 8)),
        ("200 idle connections", lambda port: connections(port, 200)),
        ("300 idle connections", lambda port: connections(port, 300)),
        ("100 half-sent headers", lambda port: connections(port, 100, half)),
        ("20 trickled bodies", lambda port: connections(port, 20, body)),
    ]


def fmt(seconds: float, cap: float) -> str:
    if seconds == float("inf"):
        return f"> {cap:g} s"
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per cell (default 5)")
    parser.add_argument("--cap", type=float, default=15.0,
                        help="seconds a request may wait before it counts as unanswered")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 20 or not 1 <= args.cap <= 60:
        parser.error("bounded: 1 <= runs <= 20, 1 <= cap <= 60")
    fronts = {"waitress (now)": waitress_front, "gunicorn gthread (before)": gunicorn_front}
    results: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
        for front, start in fronts.items():
            with start(Path(tmp)) as url:
                httpx.post(f"{url}/api/definitions", json=DEFINITION).raise_for_status()
                port = int(url.rsplit(":", 1)[1])
                for name, load in probes():
                    samples = []
                    for _ in range(args.runs):
                        with load(port):
                            samples.append(health_latency(url, args.cap))
                        if samples[-1] == float("inf"):
                            break  # one unanswered run is the answer; do not wait 5 times
                    results[(front, name)] = fmt(statistics.median(samples), args.cap)
                    print(f"  {front:<26} {name:<24} {results[(front, name)]}", flush=True)
                created = truncated_created(url)
                results[(front, "truncated body")] = ("instance CREATED" if created
                                                      else "nothing created")
    names = [name for name, _ in probes()]
    print(f"\nGET /health while other clients misbehave (median of {args.runs} runs)\n")
    print(f"| probe | {' | '.join(fronts)} |")
    print(f"|---|{'---:|' * len(fronts)}")
    for name in [*names, "truncated body"]:
        print(f"| {name} | {' | '.join(results[(front, name)] for front in fronts)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
