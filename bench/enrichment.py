"""How close does enrichment get to the rate limit's bound? ``python bench/enrichment.py``.

Against the sandbox (a separate process) with per-job latency L and a rate limit R that
counts every request, polls included:

1. **engine** (polling mode): N rows through ``read_csv -> enrich_lead -> save_csv`` in the real app
   (async submit, adaptive polling, one shared budget). Each row needs a submission and
   at least one poll, so the bound is 2N/R + L.
2. **engine in webhook mode**: the same, with the app served on loopback and every
   submission carrying a ``webhook_url``: one request per row, so the bound is N/R + L.
3. **naive**: the take-home client: batches of 10 synchronous calls, 10 at a time, the
   next batch when the slowest of the 10 is back: about N/10 x L.
4. **engine with 10% injected failures** (5xx, 429 and failed jobs): wall time, rows lost
   (must be 0: a failed job is an error in its row's error column) and duplicate
   billable submissions (must be 0).
5. **real scale, time-scaled**: L = 5 min, R = 500/min, N = 10,000, run with every
   duration divided by ``--scale`` (L/scale, R x scale) and the wall time multiplied
   back; the bound is 2N/R + L = 45 min.

Bounded: only 127.0.0.1; everything stops by itself. Defaults take about 15 minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.testing import SandboxProcess  # noqa: E402

STRUCT = {"education": "Educational background including undergraduate university",
          "is_american_education": {"description": "Studied in the US?", "type": "bool"}}


def write_leads(path: Path, rows: int, salt: str) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "company", "email", "company_location", "linkedin"])
        for i in range(rows):
            writer.writerow([f"Person {salt}-{i}", f"Company {i % 97}", "", "Austin, TX", ""])


def engine_run(sandbox: SandboxProcess, rows: int, rate: int, salt: str,
               webhook: bool = False) -> dict[str, Any]:
    """The pipeline through the real app; wall time and what the sandbox saw. In webhook
    mode the app is also served on a loopback port for the sandbox to call back."""
    from flask import Flask
    from werkzeug.serving import make_server

    from workflow_engine import create_app
    from workflow_engine.api import EXTENSION, RUNNER
    from workflow_engine.settings import Settings
    from workflow_engine.sixtyfour import _QuietHandler

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "files").mkdir()
        write_leads(root / "files" / "leads.csv", rows, salt)
        server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True,
                             request_handler=_QuietHandler)
        app = create_app(Settings(
            database_url=f"sqlite:///{root / 'wf.db'}", files_dir=root / "files",
            outputs_dir=root / "outputs", snapshots_dir=root / "snapshots",
            sixtyfour_api_key="sandbox-key", sixtyfour_base_url=sandbox.url,
            sixtyfour_rate_per_minute=rate, log_level="WARNING",
            public_url=f"http://127.0.0.1:{server.port}" if webhook else None,
        ))
        server.app = app
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = app.test_client()
        document = {
            "id": "bench", "name": "Bench",
            "states": [
                {"id": "ready", "name": "Ready", "is_initial": True},
                {"id": "read", "name": "Read",
                 "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
                {"id": "enrich", "name": "Enrich", "block": {
                    "type": "enrich_lead",
                    "params": {"struct": STRUCT, "max_error_ratio": 1.0}}},
                {"id": "saved", "name": "Saved", "is_final": True,
                 "block": {"type": "save_csv", "params": {"file_name": "out.csv"}}}],
            "actions": [
                {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
                {"id": "a", "name": "a", "from_states": ["read"], "to_state": "enrich",
                 "trigger": "auto"},
                {"id": "b", "name": "b", "from_states": ["enrich"], "to_state": "saved",
                 "trigger": "auto"}],
        }
        assert client.post("/api/definitions", json=document).status_code == 201
        client.post("/api/instances", json={"definition_id": "bench", "id": "b"})
        before = sandbox.stats()
        began = time.monotonic()
        client.post("/api/instances/b/actions/run")
        while client.get("/api/instances/b").json["status"] == "running":
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        instance = client.get("/api/instances/b").json
        with (root / "outputs" / "out.csv").open() as handle:
            written = list(csv.DictReader(handle))
        after = sandbox.stats()
        server.shutdown()
        server.server_close()
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()
    requests = after["requests"]
    return {
        "seconds": elapsed, "status": instance["status"], "rows_out": len(written),
        "row_errors": sum(1 for r in written if r.get("enrich_error")),
        "billable": after["billable_submissions"] - before["billable_submissions"],
        "duplicates": len(after["duplicates"]),
        "polls": requests.get("polls", 0) - before["requests"].get("polls", 0),
        "429s": requests.get("429", 0) - before["requests"].get("429", 0),
        "webhooks": requests.get("webhooks", 0) - before["requests"].get("webhooks", 0),
    }


def naive_run(sandbox: SandboxProcess, rows: int, salt: str) -> float:
    """Batches of 10 synchronous calls; the next batch when all 10 are back."""
    leads = [{"lead_info": {"name": f"Person {salt}-{i}", "company": f"Company {i % 97}"},
              "struct": STRUCT} for i in range(rows)]
    began = time.monotonic()
    with httpx.Client(base_url=sandbox.url, headers={"x-api-key": "sandbox-key"},
                      timeout=600) as http, concurrent.futures.ThreadPoolExecutor(10) as pool:
        for start in range(0, rows, 10):
            batch = leads[start:start + 10]
            for response in pool.map(lambda body: http.post("/enrich-lead", json=body), batch):
                response.raise_for_status()
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=1200, help="requests per minute")
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--quick", action="store_true", help="200 rows, scale 120")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.scale = 200, 120.0
    n, latency, rate = args.rows, args.latency, args.rate
    bound = 2 * n / (rate / 60) + latency
    print(f"N = {n:,} rows, L = {latency:g} s, R = {rate:,}/min: bound 2N/R + L = {bound:.1f} s")
    results: list[tuple[str, float, float, dict[str, Any]]] = []

    sandbox = SandboxProcess(rate=rate, latency=latency)
    try:
        outcome = engine_run(sandbox, n, rate, "plain")
        results.append(("engine (submit + adaptive polls)", outcome["seconds"], bound, outcome))
        print("  engine:", outcome)
        outcome = engine_run(sandbox, n, rate, "webhook", webhook=True)
        webhook_bound = n / (rate / 60) + latency
        results.append(("engine, webhook mode (bound N/R + L)", outcome["seconds"],
                        webhook_bound, outcome))
        print("  engine, webhook mode:", outcome)
        if not args.skip_naive:
            seconds = naive_run(sandbox, n, "naive")
            results.append(("naive: batches of 10 sync calls", seconds, bound, {}))
            print(f"  naive: {seconds:.1f} s")
        sandbox.configure(error_5xx_rate=0.0333, error_429_rate=0.0333, job_failure_rate=0.0333)
        outcome = engine_run(sandbox, n, rate, "faulty")
        results.append(("engine, 10% injected failures", outcome["seconds"], bound, outcome))
        print("  engine with failures:", outcome)
    finally:
        sandbox.stop()

    scale, big_n, big_l, big_r = args.scale, 10_000, 300.0, 500
    scaled = SandboxProcess(rate=int(big_r * scale), latency=big_l / scale)
    try:
        outcome = engine_run(scaled, big_n, int(big_r * scale), "scaled")
    finally:
        scaled.stop()
    big_bound = 2 * big_n / (big_r / 60) + big_l
    results.append((f"real scale (N=10,000, L=5 min, R=500/min), time / {scale:g}",
                    outcome["seconds"] * scale, big_bound, outcome))
    print("  scaled:", outcome)

    print()
    print(f"{'run':58}{'wall s':>10}{'bound s':>10}{'÷ bound':>9}{'lost':>6}{'dup':>5}")
    for name, seconds, limit, detail in results:
        lost = (n if "real" not in name else big_n) - detail["rows_out"] if detail else 0
        print(f"{name:58}{seconds:>10.1f}{limit:>10.1f}{seconds / limit:>9.2f}"
              f"{lost if detail else '-':>6}{detail.get('duplicates', '-'):>5}")


if __name__ == "__main__":
    main()
