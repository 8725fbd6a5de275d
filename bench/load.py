"""Sustained mixed load against the real server: ``python bench/load.py [--seconds 60]``.

N closed-loop clients (threads in a few processes, keep-alive connections) for the given
time, each doing a weighted mix of: start an instance (15%), fire the next action of one
of its instances (35%), read an instance (30%), read a page of an instance's history
(20%). The workflow is a loop (``on`` <-> ``off``) so fires always have a valid action.
Reported: throughput, p50/p95/p99 per operation, errors (any unexpected status; should
be 0), and the server worker's resident memory sampled every second (should be flat).
Everything runs on this machine's 2 cores, the load generator included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from workflow_engine.testing import running_server

LOOP = {
    "id": "loop", "name": "Loop",
    "states": [{"id": "on", "name": "On", "is_initial": True}, {"id": "off", "name": "Off"}],
    "actions": [{"id": "turn_off", "name": "Off", "from_states": ["on"], "to_state": "off"},
                {"id": "turn_on", "name": "On", "from_states": ["off"], "to_state": "on"}],
}
MIX = [("start", 15), ("fire", 35), ("read", 30), ("history", 20)]
NEXT = {"on": "turn_off", "off": "turn_on"}


class Client:
    """One closed-loop client on a keep-alive connection; remembers what was acknowledged."""

    def __init__(self, port: int, seed: int) -> None:
        self.port = port
        self.random = random.Random(seed)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.instances: dict[str, str] = {}  # id -> state
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.acknowledged: list[tuple[str, int, str]] = []  # fires: (instance, version, action)
        self.started: list[str] = []

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        return response.status, json.loads(data) if data else None

    def step(self) -> None:
        kind = self.random.choices([m[0] for m in MIX], [m[1] for m in MIX])[0]
        if kind != "start" and not self.instances:
            kind = "start"
        began = time.perf_counter()
        if kind == "start":
            status, body = self.request("POST", "/api/instances", {"definition_id": "loop"})
            ok = status == 201
            if ok:
                self.instances[body["id"]] = body["current_state"]
                self.started.append(body["id"])
        else:
            instance = self.random.choice(list(self.instances))
            if kind == "fire":
                action = NEXT[self.instances[instance]]
                status, body = self.request("POST", f"/api/instances/{instance}/actions/{action}")
                ok = status == 200
                if ok:
                    self.instances[instance] = body["current_state"]
                    self.acknowledged.append((instance, body["version"], action))
            elif kind == "read":
                status, body = self.request("GET", f"/api/instances/{instance}")
                ok = status == 200
            else:
                status, body = self.request("GET", f"/api/instances/{instance}/history?limit=20")
                ok = status == 200
        self.latencies[kind].append((time.perf_counter() - began) * 1000)
        if not ok:
            self.errors.append(f"{kind}: {status} {str(body)[:200]}")


def _client_process(port: int, threads: int, seconds: float, seed: int, queue: Any) -> None:
    clients = [Client(port, seed * 1000 + i) for i in range(threads)]
    deadline = time.monotonic() + seconds

    def loop(client: Client) -> None:
        while time.monotonic() < deadline:
            try:
                client.step()
            except (OSError, http.client.HTTPException) as exc:
                client.errors.append(f"connection: {exc!r}")
                if time.monotonic() < deadline:
                    time.sleep(0.05)

    workers = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put({
        "latencies": {k: v for c in clients for k, v in c.latencies.items()},
        "all_latencies": [dict(c.latencies) for c in clients],
        "errors": [e for c in clients for e in c.errors],
        "acknowledged": [a for c in clients for a in c.acknowledged],
        "started": [s for c in clients for s in c.started],
    })


def run_load(port: int, clients: int, seconds: float, processes: int = 2,
             seed: int = 1) -> dict[str, Any]:
    """Drive the server; merged latencies, errors and acknowledged writes."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    children = [context.Process(target=_client_process, args=(port, n, seconds, seed + i, queue))
                for i, n in enumerate(per) if n]
    for child in children:
        child.start()
    results = [queue.get() for _ in children]
    for child in children:
        child.join()
    merged: dict[str, Any] = {"latencies": defaultdict(list), "errors": [], "acknowledged": [],
                              "started": []}
    for result in results:
        for per_client in result["all_latencies"]:
            for kind, values in per_client.items():
                merged["latencies"][kind].extend(values)
        merged["errors"] += result["errors"]
        merged["acknowledged"] += result["acknowledged"]
        merged["started"] += result["started"]
    return merged


def worker_pid(server: int) -> int:
    """The process that serves: the server itself (waitress serves in one process)."""
    return server


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory() as scratch,
          running_server(Path(scratch) / "wf.db") as server):
        port = int(server.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("POST", "/api/definitions", body=json.dumps(LOOP),
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 201
        pid = worker_pid(server.process.pid)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            began = time.monotonic()
            while not stop.wait(1.0):
                if pid:
                    samples.append((time.monotonic() - began, rss_mib(pid)))

        sampler = threading.Thread(target=sample)
        rss_before = rss_mib(pid) if pid else 0.0
        sampler.start()
        began = time.monotonic()
        result = run_load(port, args.clients, args.seconds)
        elapsed = time.monotonic() - began
        stop.set()
        sampler.join()

    latencies = result["latencies"]
    total = sum(len(v) for v in latencies.values())
    print(f"{args.clients} clients for {args.seconds:.0f} s on {os.cpu_count()} cores "
          f"(load generator included): {total:,} requests, {total / elapsed:,.0f} req/s, "
          f"errors {len(result['errors'])}")
    print(f"{'operation':10}{'count':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind, _ in MIX:
        values = latencies.get(kind, [])
        print(f"{kind:10}{len(values):>9,}{statistics.median(values) if values else 0:>9.2f}"
              f"{percentile(values, 95):>9.2f}{percentile(values, 99):>9.2f}")
    everything = [v for values in latencies.values() for v in values]
    print(f"{'all':10}{len(everything):>9,}{statistics.median(everything):>9.2f}"
          f"{percentile(everything, 95):>9.2f}{percentile(everything, 99):>9.2f}")
    if samples:
        first = statistics.mean(rss for _, rss in samples[: max(1, len(samples) // 6)])
        last = statistics.mean(rss for _, rss in samples[-max(1, len(samples) // 6):])
        print(f"worker RSS: {rss_before:.0f} MiB idle; first sixth of the run {first:.0f} MiB, "
              f"last sixth {last:.0f} MiB (growth {last - first:+.1f} MiB over "
              f"{samples[-1][0]:.0f} s)")
    for error in result["errors"][:10]:
        print("  error:", error)


if __name__ == "__main__":
    main()
