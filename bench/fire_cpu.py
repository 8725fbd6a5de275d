"""CPU per durable fire: ``python bench/fire_cpu.py [--postgres] [--profile]``.

What is measured
----------------
The CPU time the server's own process spends on one durable fire (``POST
/api/instances/{id}/actions/{action}``: a real transition committed with its history row),
not wall time: on SQLite with ``synchronous=FULL`` a fire mostly waits for fsync, which
costs the process no CPU, and on PostgreSQL the database server's CPU is another process's.

The application is built in this process with ``create_app`` on a fresh SQLite file (and,
with ``--postgres``, on a database of a throwaway PostgreSQL server started on a free port,
or ``--postgres-url``), logging configured as the server configures it (the JSON access
line per request, written to a file), and served by the real front
(``workflow_engine.server.build_server``: waitress, 8 threads) on loopback. A client in a
separate process (spawned, so its CPU is not ours) fires the two actions of a two-state
loop (bench/fires.py's definition) alternately on one instance over one keep-alive
connection, one request at a time. The figure is ``time.process_time()`` of this process
(every thread: waitress's I/O loop, the request thread, the idle runner) over the run,
divided by the fires; every answer must be 200.

Rows:
- ``HTTP``: as above. Variants (``--variants``): with ``If-Match`` (the ETag of the last
  answer), with a fresh ``Idempotency-Key`` per fire (one more row written), and with an
  ``Origin`` header (the CORS headers are added).
- ``WSGI``: the same app through werkzeug's test client in this thread
  (``time.thread_time``): no sockets, but the test client's own environ building.
- ``service``: ``WorkflowService.fire`` alone (the transaction, no Flask).
- ``core``: ``core.fire`` alone (the pure transition).

Each figure is the median over ``--runs`` runs of ``--fires`` fires, after a warm-up.
``--profile`` then profiles the HTTP request thread (cProfile around the WSGI app, for
``--fires`` fires) and prints where its CPU goes by package and the top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import multiprocessing
import multiprocessing.connection
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
DEFINITION_ID = "bench-toggle"
DEFINITION: dict[str, Any] = {
    "id": DEFINITION_ID,
    "name": "Benchmark toggle",
    "description": "Two states and two actions that loop forever: every fire is a change.",
    "states": [
        {"id": "on", "name": "On", "is_initial": True},
        {"id": "off", "name": "Off"},
    ],
    "actions": [
        {"id": "toggle_off", "name": "Toggle off", "from_states": ["on"], "to_state": "off"},
        {"id": "toggle_on", "name": "Toggle on", "from_states": ["off"], "to_state": "on"},
    ],
}
ACTIONS = ("toggle_off", "toggle_on")  # an instance starts in "on"
VARIANTS = ("plain", "if-match", "idempotency-key", "origin")


# -- the client (a spawned process) -------------------------------------------------------


def _client(port: int, pipe: multiprocessing.connection.Connection) -> None:
    """Fire on request, one at a time on one keep-alive connection; report the statuses."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    while True:
        command = pipe.recv()
        if command is None:
            break
        instance_id, count, step, variant, etag = command
        paths = [f"/api/instances/{instance_id}/actions/{action}" for action in ACTIONS]
        statuses: Counter[int] = Counter()
        for i in range(step, step + count):
            headers: dict[str, str] = {}
            if variant == "if-match":
                headers["If-Match"] = etag
            elif variant == "idempotency-key":
                headers["Idempotency-Key"] = uuid.uuid4().hex
            elif variant == "origin":
                headers["Origin"] = "https://app.example"
            conn.request("POST", paths[i & 1], headers=headers)
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
            etag = response.getheader("ETag") or etag
        pipe.send((dict(statuses), etag))
    conn.close()


# -- the server (this process) ------------------------------------------------------------


class Target:
    """The app over one database, served on loopback, with its client process."""

    def __init__(self, name: str, url: str, workdir: Path) -> None:
        from workflow_engine import create_app, logs
        from workflow_engine.api import EXTENSION
        from workflow_engine.server import SWITCH_INTERVAL, build_server
        from workflow_engine.settings import Settings
        from workflow_engine.testing import free_port

        self.name = name
        settings = Settings(
            database_url=url, files_dir=workdir / "files", outputs_dir=workdir / "outputs",
            snapshots_dir=workdir / "snapshots", samples_dir=None, log_level="INFO",
        )
        # The server's logging, with its stderr (the access log) going to a file.
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = (workdir / "access.log").open("w")
        with contextlib.redirect_stderr(self.log):
            logs.configure(settings.log_level)
        sys.setswitchinterval(SWITCH_INTERVAL)  # as server.main sets it
        self.app = create_app(settings)
        self.service = self.app.extensions[EXTENSION]
        self.profiler: cProfile.Profile | None = None
        wsgi_app = self.app.wsgi_app

        def profiled(environ: Any, start_response: Any) -> Any:
            if self.profiler is None:
                return wsgi_app(environ, start_response)
            return self.profiler.runcall(wsgi_app, environ, start_response)

        self.app.wsgi_app = profiled  # type: ignore[method-assign]
        self.port = free_port()
        self.server = build_server(self.app, settings, host=HOST, port=self.port, threads=8)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.client = context.Process(target=_client, args=(self.port, child), daemon=True)
        self.client.start()
        self.test_client = self.app.test_client()
        answer = self.test_client.post("/api/definitions", json=DEFINITION)
        assert answer.status_code == 201, answer.json
        self.instances = 0

    def new_instance(self) -> str:
        """A fresh instance (in state "on"), so every run starts at the same place."""
        self.instances += 1
        instance_id = f"{self.name}-{self.instances}"
        answer = self.test_client.post(
            "/api/instances", json={"definition_id": DEFINITION_ID, "id": instance_id})
        assert answer.status_code == 201, answer.json
        return instance_id

    def http(self, count: int, variant: str) -> float:
        """Seconds of this process's CPU per fire over HTTP."""
        instance_id = self.new_instance()
        cpu = -time.process_time()
        self.pipe.send((instance_id, count, 0, variant, '"1"'))
        statuses, _ = self.pipe.recv()  # waiting for the answer costs no CPU
        cpu += time.process_time()
        return self._checked(instance_id, count, statuses, cpu)

    def wsgi(self, count: int) -> float:
        """Seconds of this thread's CPU per fire through werkzeug's test client."""
        instance_id = self.new_instance()
        paths = [f"/api/instances/{instance_id}/actions/{action}" for action in ACTIONS]
        post = self.test_client.post
        statuses: Counter[int] = Counter()
        cpu = -time.thread_time()
        for i in range(count):
            statuses[post(paths[i & 1]).status_code] += 1
        cpu += time.thread_time()
        return self._checked(instance_id, count, dict(statuses), cpu)

    def service_fire(self, count: int) -> float:
        """Seconds of this thread's CPU per ``WorkflowService.fire``."""
        instance_id = self.new_instance()
        fire = self.service.fire
        cpu = -time.thread_time()
        for i in range(count):
            fire(instance_id, ACTIONS[i & 1])
        cpu += time.thread_time()
        return self._checked(instance_id, count, {200: count}, cpu)

    def _checked(self, instance_id: str, count: int, statuses: dict[int, int],
                 cpu: float) -> float:
        if statuses != {200: count}:
            raise RuntimeError(f"{self.name}: expected {count} answers 200, got {statuses}")
        instance, _ = self.service.get_instance(instance_id)
        if instance.version != count + 1:
            raise RuntimeError(f"{self.name}: version {instance.version} after {count} fires")
        return cpu / count

    def close(self) -> None:
        """Stop the client, the server and the app."""
        from workflow_engine.api import RUNNER

        self.pipe.send(None)
        self.client.join(10)
        self.server.close()
        self.app.extensions[RUNNER].close()
        self.service.store.dispose()
        self.log.close()


def core_fire(count: int) -> float:
    """Seconds of CPU per pure ``core.fire``."""
    from workflow_engine import core

    workflow = core.Workflow(core.validate_definition(DEFINITION).spec, version=1)
    instance = core.start(workflow, "i", now=0).instance
    cpu = -time.thread_time()
    for i in range(count):
        instance = core.fire(workflow, instance, ACTIONS[i & 1], now=i).instance
    cpu += time.thread_time()
    return cpu / count


# -- the report ---------------------------------------------------------------------------


def median_us(measure: Callable[[], float], runs: int) -> tuple[float, float, float]:
    """(median, min, max) µs over ``runs`` runs of ``measure``."""
    values = [measure() * 1e6 for _ in range(runs)]
    return statistics.median(values), min(values), max(values)


_PACKAGES = (
    ("sqlalchemy", "SQLAlchemy"), ("psycopg", "psycopg"), ("sqlite3", "sqlite3"),
    ("flask_cors", "flask-cors"), ("flask", "Flask"), ("werkzeug", "Werkzeug"),
    ("prometheus_client", "prometheus_client"), ("structlog", "structlog"),
    ("pydantic", "pydantic"), ("workflow_engine/core", "engine core"),
    ("workflow_engine/store", "engine store"), ("workflow_engine/service", "engine service"),
    ("workflow_engine/api", "engine api"), ("workflow_engine", "engine (other)"),
    ("waitress", "waitress"), ("json", "json"),
)


def _package(filename: str, function: str) -> str:
    if filename == "~":  # a built-in: name it by what it is
        if "sqlite3" in function:
            return "sqlite3"
        if "psycopg" in function:
            return "psycopg"
        return "built-ins (other)"
    for needle, name in _PACKAGES:
        if f"/{needle}/" in filename or f"/{needle}.py" in filename:
            return name
    return "stdlib/other"


def print_profile(profiler: cProfile.Profile, fires: int, top: int) -> None:
    """CPU of the profiled request thread by package (own time), and the top functions."""
    stats = pstats.Stats(profiler)
    by_package: Counter[str] = Counter()
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_package[_package(filename, function)] += tottime
    total = sum(by_package.values())
    print(f"\nProfile of the request thread over {fires} fires (cProfile inflates small "
          "calls; read the shares, not the µs)")
    print(f"{'package (own time)':<24}{'µs/fire':>10}{'share':>8}")
    for name, seconds in by_package.most_common():
        print(f"{name:<24}{seconds / fires * 1e6:>10.1f}{seconds / total:>8.1%}")
    print()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


@contextlib.contextmanager
def targets(args: argparse.Namespace, workdir: Path) -> Iterator[list[Target]]:
    """The app on SQLite, and on PostgreSQL if asked."""
    from workflow_engine.testing import PostgresServer

    made: list[Target] = []
    postgres: PostgresServer | None = None
    try:
        made.append(Target("sqlite", f"sqlite:///{workdir / 'bench.db'}", workdir / "sqlite"))
        url = args.postgres_url
        if args.postgres and url is None:
            postgres = PostgresServer()
            url = postgres.create_database("bench")
        if url is not None:
            made.append(Target("postgresql", url, workdir / "postgresql"))
        yield made
    finally:
        for target in made:
            target.close()
        if postgres is not None:
            postgres.stop()


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fires", type=int, default=2000, help="fires per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--postgres", action="store_true",
                        help="also on a throwaway PostgreSQL server")
    parser.add_argument("--postgres-url", help="also on this (empty) PostgreSQL database")
    parser.add_argument("--variants", action="store_true",
                        help="also If-Match, Idempotency-Key and Origin over HTTP")
    parser.add_argument("--profile", action="store_true", help="profile the request thread")
    parser.add_argument("--top", type=int, default=25, help="functions in the profile")
    args = parser.parse_args(argv)

    print(f"CPU per durable fire: {args.fires} fires per run, median of {args.runs} runs; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="fire-cpu-") as tmp, \
            targets(args, Path(tmp)) as made:
        rows: list[tuple[str, str, tuple[float, float, float]]] = []
        for target in made:
            variants = VARIANTS if args.variants else VARIANTS[:1]
            target.http(min(500, args.fires), "plain")  # warm-up: pool, caches, file
            target.wsgi(min(200, args.fires))
            for variant in variants:
                rows.append((target.name, f"HTTP, {variant}", median_us(
                    lambda t=target, v=variant: t.http(args.fires, v), args.runs)))
            rows.append((target.name, "WSGI test client", median_us(
                lambda t=target: t.wsgi(args.fires), args.runs)))
            rows.append((target.name, "WorkflowService.fire", median_us(
                lambda t=target: t.service_fire(args.fires), args.runs)))
        rows.append(("-", "core.fire (pure)", median_us(
            lambda: core_fire(args.fires * 10), args.runs)))

        print(f"\n{'database':<12}{'path':<28}{'µs CPU/fire':>12}{'min-max':>16}")
        for database, path, (median, low, high) in rows:
            print(f"{database:<12}{path:<28}{median:>12.0f}{f'{low:.0f}-{high:.0f}':>16}")

        if args.profile:
            for target in made:
                # CPU time, not wall: a commit waiting for fsync costs the process nothing.
                target.profiler = cProfile.Profile(time.thread_time)
                target.http(args.fires, "plain")
                print(f"\n== {target.name} ==")
                print_profile(target.profiler, args.fires, args.top)
                target.profiler = None


if __name__ == "__main__":
    main()
