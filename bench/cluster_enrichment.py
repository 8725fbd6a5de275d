"""Enrichment in a cluster against the rate bound: ``python bench/cluster_enrichment.py``.

N rows (2,000 by default) through ``read_csv -> enrich_lead -> save_csv`` against the
sandbox in a process of its own, with per-job latency L (2 s) and a rate limit R
(1,200/min) that counts every request, polls included. Each row needs a submission and
at least one poll, so no schedule beats the bound 2N/R + L.

1. **one process** (the embedded default): one server on SQLite, blocks in its threads,
   one instance of N rows;
2. **a cluster**: PostgreSQL (from the local binaries), 2 servers and 2 workers
   (``TASK_ENGINE=procrastinate``), the rows split over 2 instances started on different
   servers, so both workers enrich at once and share the one budget.

Reported: wall time from the first fire to the last instance completed, ÷ the bound,
rows out, row errors, what the sandbox saw (billable submissions, duplicates, polls, 429
answers). The sandbox counts its limit over a 6 s window here, so a budget overrun by the
cluster's processes shows up as 429s. About 8 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.testing import (  # noqa: E402
    PostgresServer,
    SandboxProcess,
    running_server,
    running_worker,
)

STRUCT = {"education": "Educational background including undergraduate university"}


def pipeline(name: str) -> dict[str, Any]:
    return {
        "id": f"bench-{name}", "name": f"Bench {name}",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "read", "name": "Read",
             "block": {"type": "read_csv", "params": {"file": f"{name}.csv"}}},
            {"id": "enrich", "name": "Enrich", "block": {
                "type": "enrich_lead", "params": {"struct": STRUCT, "max_error_ratio": 1.0}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": f"{name}-out.csv"}}}],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
            {"id": "a", "name": "a", "from_states": ["read"], "to_state": "enrich",
             "trigger": "auto"},
            {"id": "b", "name": "b", "from_states": ["enrich"], "to_state": "saved",
             "trigger": "auto"}],
    }


def write_leads(path: Path, rows: range, salt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "company"])
        writer.writerows([f"Person {salt}-{i}", f"Company {i % 97}"] for i in rows)


def run(urls: list[str], parts: list[str], data_dir: Path) -> dict[str, Any]:
    """Post one pipeline per part, start each on its server, fire them at once; wall time
    until all completed."""
    for name, url in zip(parts, urls, strict=False):
        httpx.post(f"{url}/api/definitions", json=pipeline(name)).raise_for_status()
        httpx.post(f"{url}/api/instances", json={
            "definition_id": f"bench-{name}", "id": name}).raise_for_status()
    began = time.monotonic()
    for name, url in zip(parts, urls, strict=False):
        httpx.post(f"{url}/api/instances/{name}/actions/run").raise_for_status()
    done: dict[str, Any] = {}

    def wait(name: str, url: str) -> None:
        while True:
            body = httpx.get(f"{url}/api/instances/{name}", params={"wait": 60},
                             timeout=70).json()
            if body["status"] != "running":
                done[name] = (time.monotonic() - began, body["status"])
                return

    threads = [threading.Thread(target=wait, args=(name, urls[-1])) for name in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows_out = errors = 0
    for name in parts:
        output = httpx.get(f"{urls[0]}/api/outputs/{name}-out.csv", timeout=60)
        output.raise_for_status()
        written = list(csv.DictReader(output.text.splitlines()))
        rows_out += len(written)
        errors += sum(1 for row in written if row.get("enrich_error"))
    return {"seconds": max(seconds for seconds, _ in done.values()),
            "statuses": sorted({status for _, status in done.values()}),
            "rows_out": rows_out, "row_errors": errors}


def seen(sandbox: SandboxProcess, before: dict[str, Any]) -> dict[str, Any]:
    after: dict[str, Any] = sandbox.stats()
    requests, earlier = after["requests"], before["requests"]
    return {
        "billable": after["billable_submissions"] - before["billable_submissions"],
        "duplicates": len(after["duplicates"]) - len(before["duplicates"]),
        "polls": requests.get("polls", 0) - earlier.get("polls", 0),
        "429s": requests.get("429", 0) - earlier.get("429", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=1200, help="requests per minute")
    args = parser.parse_args()
    n, rate = args.rows, args.rate
    bound = 2 * n / (rate / 60) + args.latency
    print(f"N = {n:,} rows, L = {args.latency:g} s, R = {rate:,}/min: "
          f"bound 2N/R + L = {bound:.1f} s", flush=True)
    env = {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_RATE_PER_MINUTE": str(rate),
           "LOG_LEVEL": "WARNING"}
    results: list[tuple[str, dict[str, Any]]] = []
    sandbox = SandboxProcess(rate=rate, latency=args.latency)
    sandbox.configure(rate_window_seconds=6.0)
    env["SIXTYFOUR_BASE_URL"] = sandbox.url
    try:
        with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
            root = Path(scratch) / "one"
            write_leads(root / "files" / "one.csv", range(n), "one")
            server = stack.enter_context(running_server(
                f"sqlite:///{root / 'wf.db'}", data_dir=root, env=env))
            before = sandbox.stats()
            outcome = run([server.url], ["one"], root)
            results.append(("1 process, SQLite, threads", {**outcome, **seen(sandbox, before)}))
            print("  one process:", results[-1][1], flush=True)
        with ExitStack() as stack:
            cluster_root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            cluster_root.chmod(0o755)
            postgres = PostgresServer()
            stack.callback(postgres.stop)
            database_url = postgres.create_database("bench")
            half = n // 2
            write_leads(cluster_root / "files" / "left.csv", range(half), "cluster")
            write_leads(cluster_root / "files" / "right.csv", range(half, n), "cluster")
            queued = {**env, "TASK_ENGINE": "procrastinate"}
            urls = [stack.enter_context(running_server(
                database_url, data_dir=cluster_root, env=queued)).url for _ in range(2)]
            for name in ("worker-1", "worker-2"):
                stack.enter_context(running_worker(
                    database_url, name=name, data_dir=cluster_root, env=queued))
            before = sandbox.stats()
            outcome = run(urls, ["left", "right"], cluster_root)
            results.append(("2 servers + 2 workers, PostgreSQL, 2 instances",
                            {**outcome, **seen(sandbox, before)}))
            print("  cluster:", results[-1][1], flush=True)
    finally:
        sandbox.stop()

    print()
    print("| run | wall s | bound s | ÷ bound | rows out | row errors | billable | "
          "duplicates | polls | 429 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, found in results:
        print(f"| {name} | {found['seconds']:.1f} | {bound:.1f} | "
              f"{found['seconds'] / bound:.2f} | {found['rows_out']:,} | "
              f"{found['row_errors']} | {found['billable']:,} | {found['duplicates']} | "
              f"{found['polls']:,} | {found['429s']} |")


if __name__ == "__main__":
    main()
