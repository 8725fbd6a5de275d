"""Triggers: ``python bench/triggers.py [--calls N] [--definitions K]``.

Two measurements, each against a baseline measured in the same run:

- **a webhook call**: a real server (waitress, SQLite) started on a free port; a CSV of
  R rows POSTed to the shipped ``leads-webhook``'s hook URL (checked, stored, instance
  started: one request) against what a client does without it: upload the same CSV
  (``POST /api/files``) and start an instance reading it (``POST /api/instances`` with
  ``inputs``): two requests. Median and p95 of N calls each, answers only (the runs go on
  in the background and are not timed).
- **a schedule round** with K definitions of a schedule each, none due (what every server
  process does every ``SCHEDULE_POLL_SECONDS``), against a plain read of the same
  definitions list (``GET /api/definitions`` done in-process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.conftest import make_settings  # noqa: E402

from workflow_engine import create_app  # noqa: E402
from workflow_engine.api import EXTENSION, RUNNER  # noqa: E402
from workflow_engine.testing import running_server  # noqa: E402

HOOK = "/api/hooks/leads-webhook/leads"


def leads(rows: int) -> bytes:
    lines = ["name,company,email"] + [
        f"Person {i},{'Ariglad Inc' if i % 8 == 0 else 'Northwind'},p{i}@example.com"
        for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def webhook(calls: int, rows: int) -> None:
    body = leads(rows)
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(tmp) / "bench.db", definitions=ROOT / "definitions",
            data_dir=Path(tmp)) as server, httpx.Client(base_url=server.url) as client:
        token = client.post("/api/definitions/leads-webhook/triggers/leads/token").json()[
            "token"]
        hook, twostep = [], []
        for n in range(calls):
            began = time.perf_counter()
            answer = client.post(HOOK, content=body, headers={
                "Content-Type": "text/csv", "Authorization": f"Bearer {token}"})
            hook.append(time.perf_counter() - began)
            assert answer.status_code == 201, answer.text
            began = time.perf_counter()
            upload = client.post("/api/files", files={
                "file": (f"bench-{n}.csv", body, "text/csv")})
            started = client.post("/api/instances", json={
                "definition_id": "leads-webhook",
                "inputs": {"reading": {"file": f"bench-{n}.csv"}}})
            twostep.append(time.perf_counter() - began)
            assert (upload.status_code, started.status_code) == (201, 201), started.text
    print(f"\n{rows:,} rows per call, {calls} calls each (ms)\n")
    print("| way | median | p95 |")
    print("|---|---|---|")
    for label, samples in (("upload + start (2 requests)", twostep),
                           ("webhook call (1 request)", hook)):
        median, p95 = quantiles(samples)
        print(f"| {label} | {median * 1000:.1f} | {p95 * 1000:.1f} |")


def schedule_round(definitions: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings(Path(tmp)))
        service = app.extensions[EXTENSION]
        client = app.test_client()
        for n in range(definitions):
            client.post("/api/definitions", json={
                "id": f"nightly-{n}", "name": f"Nightly {n}",
                "triggers": [{"id": "nightly", "type": "schedule", "cron": "30 2 * * *"}],
                "states": [{"id": "a", "name": "A", "is_initial": True, "is_final": True}]})
        reads, fires = [], []
        for _ in range(rounds):
            began = time.perf_counter()
            service.list_definitions(after=None, limit=definitions)
            reads.append(time.perf_counter() - began)
            began = time.perf_counter()
            outcome = service.fire_schedules()
            fires.append(time.perf_counter() - began)
            assert outcome.started == []
        app.extensions[RUNNER].close()
        service.store.dispose()
    print(f"\nA schedule round, {definitions} schedules, none due, {rounds} rounds (ms)\n")
    print("| what | median | p95 |")
    print("|---|---|---|")
    for label, samples in (("read the definitions", reads), ("schedule round", fires)):
        median, p95 = quantiles(samples)
        print(f"| {label} | {median * 1000:.2f} | {p95 * 1000:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--definitions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    for rows in args.rows:
        webhook(args.calls, rows)
    schedule_round(args.definitions, args.rounds)


if __name__ == "__main__":
    main()
