"""Bulk email finding against per-row: ``python bench/bulk_email.py``.

N rows (default 10,000, none with an address) through ``read_csv -> find_email ->
save_csv`` in the real app, against the sandbox (a separate process; find-email jobs take
a median of 0.5 s, bulk jobs 1 s), every run on a fresh database so that nothing is
reused. In the same run:

1. **bulk at the real limit**: ``bulk: true`` (100 leads a request) with the key's budget
   at Sixtyfour's 500 requests/min. Each batch needs a submission and at least one poll,
   so the least time is about 2 x ceil(N/100) / R (or, if longer, the last submission's
   time plus one bulk job's latency L).
2. **bulk, raised budget** and 3. **per-row, raised budget**: the same rows with the
   budget raised (default 30,000/min, the sandbox's own limit higher still) so that the
   per-row mode's 2N requests take a minute or two instead of 40 minutes at 500/min;
   per-row's least time is about 2N / R.

Each cell is the median of ``--runs`` runs; the table gives the requests the sandbox saw
(submissions and polls), the wall time, the bound, and per-row's figures over bulk's.
Bounded: only 127.0.0.1; everything stops by itself.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.testing import SandboxProcess  # noqa: E402

LATENCY = {"find_email": 0.5, "find_email_bulk": 1.0}


def write_leads(path: Path, rows: int, salt: str) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "company", "email", "company_location", "linkedin"])
        for i in range(rows):
            writer.writerow([f"Person {salt}-{i}", f"Company {i % 97}", "", "Austin, TX", ""])


def one_run(sandbox: SandboxProcess, rows: int, rate: int, bulk: bool, salt: str
            ) -> dict[str, Any]:
    """The pipeline through the real app on a fresh database; wall time and what the
    sandbox saw."""
    from workflow_engine import create_app
    from workflow_engine.api import EXTENSION, RUNNER
    from workflow_engine.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "files").mkdir()
        write_leads(root / "files" / "leads.csv", rows, salt)
        app = create_app(Settings(
            database_url=f"sqlite:///{root / 'wf.db'}", files_dir=root / "files",
            outputs_dir=root / "outputs", snapshots_dir=root / "snapshots",
            sixtyfour_api_key="sandbox-key", sixtyfour_base_url=sandbox.url,
            sixtyfour_rate_per_minute=rate, log_level="WARNING"))
        client = app.test_client()
        document = {
            "id": "bench", "name": "Bench",
            "states": [
                {"id": "ready", "name": "Ready", "is_initial": True},
                {"id": "read", "name": "Read",
                 "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
                {"id": "find", "name": "Find", "block": {
                    "type": "find_email", "params": {"bulk": bulk, "max_error_ratio": 1.0}}},
                {"id": "saved", "name": "Saved", "is_final": True,
                 "block": {"type": "save_csv", "params": {"file_name": "out.csv"}}}],
            "actions": [
                {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
                {"id": "a", "name": "a", "from_states": ["read"], "to_state": "find",
                 "trigger": "auto"},
                {"id": "b", "name": "b", "from_states": ["find"], "to_state": "saved",
                 "trigger": "auto"}],
        }
        assert client.post("/api/definitions", json=document).status_code == 201
        client.post("/api/instances", json={"definition_id": "bench", "id": "b"})
        before: dict[str, Any] = sandbox.stats()
        began = time.monotonic()
        client.post("/api/instances/b/actions/run")
        while client.get("/api/instances/b").json["status"] == "running":
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        status = client.get("/api/instances/b").json["status"]
        with (root / "outputs" / "out.csv").open() as handle:
            written = list(csv.DictReader(handle))
        after: dict[str, Any] = sandbox.stats()
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()

    def delta(name: str) -> int:
        return after["requests"].get(name, 0) - before["requests"].get(name, 0)

    return {
        "seconds": elapsed, "status": status, "rows_out": len(written),
        "row_errors": sum(1 for r in written if r.get("enrich_error")),
        "found": sum(1 for r in written if r.get("email")),
        "submissions": delta("submissions"), "polls": delta("polls"),
        "billable": after["billable_submissions"] - before["billable_submissions"],
    }


def cell(sandbox: SandboxProcess, rows: int, rate: int, bulk: bool, runs: int, name: str
         ) -> dict[str, Any]:
    outcomes = []
    for run in range(runs):
        outcome = one_run(sandbox, rows, rate, bulk, f"{name}-{run}")
        assert outcome["status"] == "completed", outcome
        assert outcome["rows_out"] == rows, outcome
        assert outcome["row_errors"] == 0, outcome
        assert outcome["billable"] == rows, outcome  # each lead paid for once
        print(f"  {name} run {run + 1}: {outcome}", flush=True)
        outcomes.append(outcome)
    return {key: statistics.median(o[key] for o in outcomes)
            for key in ("seconds", "submissions", "polls", "found")}


def least(submissions: int, rate: int, latency: float) -> float:
    """The least time ``submissions`` jobs can take at ``rate`` requests a minute: each
    needs a submission and a poll (2s - 1 intervals of the budget), and the last one
    submitted its latency before its poll."""
    interval = 60 / rate
    return max((2 * submissions - 1) * interval, (submissions - 1) * interval + latency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=30_000,
                        help="the raised budget, requests per minute")
    parser.add_argument("--quick", action="store_true", help="1,000 rows, one run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 1_000, 1
    n, raised, real = args.rows, args.rate, 500
    batches = math.ceil(n / 100)
    print(f"N = {n:,} rows, L = {LATENCY['find_email']:g} s per row / "
          f"{LATENCY['find_email_bulk']:g} s per bulk job, median of {args.runs} runs")
    sandbox = SandboxProcess(rate=max(4 * raised, 60_000), latency=2.0)
    try:
        sandbox.configure(latency_median={"find_email": LATENCY["find_email"],
                                          "find_email_bulk": LATENCY["find_email_bulk"]})
        table = [
            ("bulk (100 a request), R = 500/min", real, cell(
                sandbox, n, real, True, args.runs, "bulk-500"),
             least(batches, real, LATENCY["find_email_bulk"])),
            (f"bulk (100 a request), R = {raised:,}/min", raised, cell(
                sandbox, n, raised, True, args.runs, "bulk-raised"),
             least(batches, raised, LATENCY["find_email_bulk"])),
            (f"per-row, R = {raised:,}/min", raised, cell(
                sandbox, n, raised, False, args.runs, "per-row-raised"),
             least(n, raised, LATENCY["find_email"])),
        ]
    finally:
        sandbox.stop()

    print()
    print("rate bound: the requests sent at the budget's pace R; least: the fewest requests "
          "(a submission and a poll per job) at R, or the last submission plus a job's "
          "latency")
    print(f"{'run':40}{'submits':>9}{'polls':>8}{'wall s':>9}{'rate bound s':>14}"
          f"{'÷ rate bound':>14}{'least s':>9}{'÷ least':>9}")
    for name, rate, found, fewest in table:
        bound = (found["submissions"] + found["polls"]) / (rate / 60)
        print(f"{name:40}{found['submissions']:>9,.0f}{found['polls']:>8,.0f}"
              f"{found['seconds']:>9.1f}{bound:>14.1f}{found['seconds'] / bound:>14.2f}"
              f"{fewest:>9.1f}{found['seconds'] / fewest:>9.2f}")
    bulk, per_row = table[1][2], table[2][2]
    print()
    requests = {name: found["submissions"] + found["polls"]
                for name, found in (("bulk", bulk), ("per_row", per_row))}
    print(f"per-row ÷ bulk at R = {raised:,}/min: requests "
          f"{requests['per_row'] / requests['bulk']:.1f}x, "
          f"wall time {per_row['seconds'] / bulk['seconds']:.1f}x")
    print(f"per-row at the real 500/min would take at least 2N/R = {2 * n / (real / 60) / 60:.0f} "
          f"min; bulk took {table[0][2]['seconds']:.1f} s")
    print(f"addresses found (median): bulk {bulk['found']:,.0f}, per-row {per_row['found']:,.0f}")


if __name__ == "__main__":
    main()
