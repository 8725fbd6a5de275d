"""Durable fires/s with one and two server processes: ``python bench/cluster_fires.py``.

Configurations, each served by ``python -m workflow_engine.server`` (waitress, as
``run_server.py`` serves) and measured in the same run as its ceiling:

* **1 process, SQLite** (the embedded default, ``SQLITE_SYNCHRONOUS=FULL``);
* **2 processes, SQLite WAL**: two servers on one SQLite file;
* **2 processes, PostgreSQL**: two servers on one database of a PostgreSQL server started
  from the local binaries (``workflow_engine.testing.PostgresServer``: a throwaway one,
  ``fsync=off``, which flatters PostgreSQL's commits: say so when quoting it);
* **the ceiling**: ``bench/noop_app.py`` (a Flask route of the same shape that answers a
  small JSON) served by the same front with the same options, by 1 and by 2 processes.

Load: `wrk <https://github.com/wg/wrk>`_ (C; ``apt-get install wrk``) through
``bench/wrk_load.py`` (shared with ``bench/fires.py``), closed loop, one keep-alive
connection per wrk thread, so each connection fires on an instance of its own and
alternates its two actions (a toggle: every request is a transition committed with its
history row). N clients over 2 processes are two wrk runs side by side, N/2 connections
each, one per server. Every answer must be 200 (wrk's Lua counts the others), and after
each cell every instance's version is read back and checked against the 200s its
connection got (give or take the one request per connection and wrk run that wrk cuts
off when its time is up).

Each cell is the median of ``--runs`` runs of ``--duration`` seconds (after a warm-up);
the table gives req/s and p50/p99 latency, and the ratio to the no-op ceiling with the
same number of processes in the same run. wrk runs on the same 2 cores as the servers,
but as C it takes a small share of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

import wrk_load
from wrk_load import Result as Cell

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.testing import (  # noqa: E402
    PostgresServer,
    ServerProcess,
    free_port,
    running_server,
    wait_until_up,
)

DEFINITION: dict[str, Any] = {
    "id": "bench-switch", "name": "Benchmark switch",
    "states": [{"id": "on", "name": "On", "is_initial": True}, {"id": "off", "name": "Off"}],
    # Either action fires from either state, so a connection that alternates them never
    # meets a 409, whichever state the previous run left its instance in.
    "actions": [
        {"id": "toggle_off", "name": "Toggle off", "from_states": ["on", "off"],
         "to_state": "off"},
        {"id": "toggle_on", "name": "Toggle on", "from_states": ["on", "off"],
         "to_state": "on"},
    ],
}

def start_noop(stack: ExitStack, threads: int) -> ServerProcess:
    port = free_port()
    log = stack.enter_context(tempfile.NamedTemporaryFile(prefix="noop-", suffix=".log"))  # noqa: SIM115 - closed by the stack
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "noop_app.py"), "--host", "127.0.0.1",
         "--port", str(port), "--threads", str(threads)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    stack.callback(server.stop)
    wait_until_up(server, 30)
    return server


def prepare(urls: list[str], prefix: str, count: int) -> None:
    """The definition and one instance per client, started through the first server."""
    with httpx.Client(base_url=urls[0], timeout=30) as client:
        if client.get(f"/api/definitions/{DEFINITION['id']}").status_code == 404:
            client.post("/api/definitions", json=DEFINITION).raise_for_status()
        for n in range(count):
            client.post("/api/instances", json={
                "definition_id": DEFINITION["id"], "id": f"{prefix}{n}"}).raise_for_status()


def versions(url: str, prefix: str, count: int) -> dict[int, int]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return {n: client.get(f"/api/instances/{prefix}{n}").json()["version"]
                for n in range(count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds (wrk takes whole ones)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8, help="request threads per server")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    wrk_load.require_wrk()

    with ExitStack() as stack:
        script = stack.enter_context(wrk_load.lua_script())
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        postgres = PostgresServer()
        stack.callback(postgres.stop)
        pg_url = postgres.create_database("bench")
        sqlite_1, sqlite_2 = f"sqlite:///{root}/one.db", f"sqlite:///{root}/two.db"

        def servers(url: str, count: int, name: str) -> list[str]:
            return [stack.enter_context(running_server(
                url, data_dir=root / f"{name}-{n}", threads=args.threads)).url
                for n in range(count)]

        setups: dict[str, list[str]] = {
            "fires, 1 process, SQLite": servers(sqlite_1, 1, "s1"),
            "fires, 2 processes, SQLite WAL": servers(sqlite_2, 2, "s2"),
            "fires, 2 processes, PostgreSQL": servers(pg_url, 2, "pg"),
            "no-op, 1 process": [start_noop(stack, args.threads).url],
            "no-op, 2 processes": [start_noop(stack, args.threads).url for _ in range(2)],
        }
        most = max(clients)
        for label, urls in setups.items():
            if label.startswith("fires"):
                prepare(urls, "c", most)
        results: dict[tuple[str, int], list[Cell]] = {}
        for run in range(args.runs):
            for n in clients:
                for label, urls in setups.items():
                    fires = label.startswith("fires")
                    before = versions(urls[0], "c", n) if fires else {}
                    warm = wrk_load.run(urls, n, args.warmup, script, "c")
                    cell = wrk_load.run(urls, n, args.duration, script, "c")
                    assert warm.failed == cell.failed == 0, (label, n, warm, cell)
                    if fires:
                        # Each 200 is one transition; a request wrk cut off at the end
                        # may have committed unreported (at most one per connection).
                        after = versions(urls[0], "c", n)
                        problems = wrk_load.check_versions(
                            {k: after[k] - before[k] for k in after}, [warm, cell])
                        assert not problems, (label, n, problems)
                    results.setdefault((label, n), []).append(cell)
                    print(f"run {run + 1} {label:32} N={n:<3} {cell.rate:8.0f} req/s "
                          f"p50 {cell.p50_ms:.2f} ms, {cell.failed} failed", flush=True)

    def median(label: str, n: int) -> Cell:
        cells = sorted(results[(label, n)], key=lambda c: c.rate)
        return cells[len(cells) // 2]

    print(f"\nmedian of {args.runs} runs of {args.duration:g} s; wrk, 1 connection per "
          "thread; every answer checked\n")
    print("| server | N | req/s | p50 ms | p99 ms | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in setups:
        for n in clients:
            cell = median(label, n)
            print(f"| {label if n == clients[0] else ''} | {n} | {cell.rate:,.0f} | "
                  f"{cell.p50_ms:.2f} | {cell.p99_ms:.2f} | {cell.failed} |")
    print("\n| fires/s ÷ no-op req/s, same processes, same run | "
          + " | ".join(f"N={n}" for n in clients) + " |")
    print("|---|" + "---:|" * len(clients))
    for label in setups:
        if not label.startswith("fires"):
            continue
        ceiling = "no-op, 1 process" if "1 process" in label else "no-op, 2 processes"
        ratios = [median(label, n).rate / statistics.median(
            c.rate for c in results[(ceiling, n)]) for n in clients]
        print(f"| {label[7:]} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    print("\n| fires/s ÷ the best no-op (the ceiling of the stack) | "
          + " | ".join(f"N={n}" for n in clients) + " |")
    print("|---|" + "---:|" * len(clients))
    for label in setups:
        if not label.startswith("fires"):
            continue
        best = [max(median("no-op, 1 process", n).rate, median("no-op, 2 processes", n).rate)
                for n in clients]
        print(f"| {label[7:]} | " + " | ".join(
            f"{median(label, n).rate / b:.2f}" for n, b in zip(clients, best, strict=True))
            + " |")


if __name__ == "__main__":
    main()
