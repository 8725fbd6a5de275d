"""How much does the engine add to a pandas pipeline? ``python bench/pipeline.py [--quick]``.

The same job two ways, in the same run, on the same generated CSV (1,000,000 rows of
``name,company,email,company_location,linkedin`` by default):

- **bare pandas**: a script that reads the CSV (pyarrow engine), keeps the rows whose
  company contains "ariglad" (case-insensitive) and writes them as CSV;
- **engine**: the real application (SQLite store, runner, snapshots) running the shipped
  kind of pipeline ``read_csv -> filter -> save_csv`` after one fired action, durable:
  every step's table is stored as a Parquet snapshot and recorded in history.

Each run is a fresh process (so peak memory is that run's own, read from
``ru_maxrss``); runs alternate between the two and the table shows medians. Time is
wall time of the job inside the process (imports and app start-up excluded, the same
for both). Both use the 2 cores of this machine as they like.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = """
import resource, sys, time
import pandas as pd
source, target = sys.argv[1], sys.argv[2]
began = time.perf_counter()
table = pd.read_csv(source, engine="pyarrow", dtype="string[pyarrow]")
kept = table[table["company"].str.contains("ariglad", case=False, regex=False, na=False)]
kept.to_csv(target, index=False)
elapsed = time.perf_counter() - began
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(kept))
"""


def generate(path: Path, rows: int) -> None:
    """A leads-shaped CSV; about one row in eight at an Ariglad company."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    companies = ["Ariglad Inc", "Northwind Analytics", "Lumen Harbor", "Kestrel Works",
                 "Cedar Point Labs", "Quillstone", "Bramble & Finch", "Ariglad Labs"]
    cities = ["Austin, TX", "Seattle, WA", "Lisbon, Portugal", "Nairobi, Kenya"]
    index = pa.array(range(rows))
    table = pa.table({
        "name": pa.array([f"Person {i}" for i in range(rows)]),
        "company": pa.array([companies[i % 7 if i % 16 else 7] for i in range(rows)]),
        "email": pa.array([f"p{i}@example.com" if i % 3 else "" for i in range(rows)]),
        "company_location": pa.array([cities[i % 4] for i in range(rows)]),
        "linkedin": pa.array([f"https://www.linkedin.com/in/p{i}" if i % 2 else ""
                              for i in range(rows)]),
    })
    del index
    pacsv.write_csv(table, path)


def engine_run(source: Path, work: Path) -> tuple[float, int, int, dict[str, float]]:
    """Run the pipeline in this process through the real app; (seconds, peak KiB, rows out,
    seconds per block)."""
    from workflow_engine import create_app
    from workflow_engine.settings import Settings

    files = work / "files"
    files.mkdir()
    os.link(source, files / "leads.csv")
    app = create_app(Settings(
        database_url=f"sqlite:///{work / 'wf.db'}", files_dir=files,
        outputs_dir=work / "outputs", snapshots_dir=work / "snapshots",
    ))
    client = app.test_client()
    definition = json.loads((ROOT / "definitions" / "ariglad-leads.json").read_text())
    definition["states"][2]["block"]["params"]["conditions"][0]["value"] = "ariglad"
    assert client.post("/api/definitions", json=definition).status_code == 201
    client.post("/api/instances", json={"definition_id": "ariglad-leads", "id": "bench"})
    began = time.perf_counter()
    answer = client.post("/api/instances/bench/actions/run?wait=60").json
    elapsed = time.perf_counter() - began
    assert answer["status"] == "completed", answer
    history = client.get("/api/instances/bench/history").json["items"]
    blocks = {}
    for event in history:
        if event["type"] == "block_succeeded":
            data = event["data"]
            start = _ms(data["started_at"])
            blocks[event["to_state"]] = (_ms(data["finished_at"]) - start) / 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return elapsed, peak, answer["table"]["rows"], blocks


def _ms(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _child(kind: str, source: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        if kind == "bare":
            out = subprocess.run(
                [sys.executable, "-c", BARE, str(source), str(Path(scratch) / "out.csv")],
                capture_output=True, text=True, check=True,
            ).stdout.split()
            return {"seconds": float(out[0]), "peak_kib": int(out[1]), "rows": int(out[2])}
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(source), scratch],
            capture_output=True, text=True, check=True,
        ).stdout
        result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 3 runs")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds, peak, rows, blocks = engine_run(Path(args.child[0]), Path(args.child[1]))
        print(json.dumps({"seconds": seconds, "peak_kib": peak, "rows": rows,
                          "blocks": blocks}))
        return
    if args.quick:
        args.rows, args.runs = 200_000, 3

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "leads.csv"
        generate(source, args.rows)
        size = source.stat().st_size / 1e6
        print(f"input: {args.rows:,} rows, {size:.1f} MB; {args.runs} runs each, alternating")
        results: dict[str, list[dict[str, object]]] = {"bare": [], "engine": []}
        for run in range(args.runs):
            for kind in ("bare", "engine"):
                outcome = _child(kind, source)
                results[kind].append(outcome)
                print(f"  run {run + 1} {kind:6} {outcome['seconds']:.3f} s  "
                      f"peak {int(outcome['peak_kib']) / 1024:,.0f} MiB  rows {outcome['rows']}"
                      + (f"  blocks {outcome['blocks']}" if kind == "engine" else ""))

    def median(kind: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[kind])  # type: ignore[arg-type]

    bare_s, engine_s = median("bare", "seconds"), median("engine", "seconds")
    bare_m, engine_m = median("bare", "peak_kib") / 1024, median("engine", "peak_kib") / 1024
    assert {r["rows"] for r in results["bare"]} == {r["rows"] for r in results["engine"]}
    print()
    print(f"{'':24}{'seconds':>10}{'peak MiB':>12}")
    print(f"{'bare pandas':24}{bare_s:>10.3f}{bare_m:>12,.0f}")
    print(f"{'engine (durable)':24}{engine_s:>10.3f}{engine_m:>12,.0f}")
    print(f"{'engine / bare':24}{engine_s / bare_s:>10.2f}{engine_m / bare_m:>12.2f}")
    per_block = {
        state: statistics.median(float(r["blocks"][state]) for r in results["engine"])  # type: ignore[index]
        for state in results["engine"][0]["blocks"]  # type: ignore[union-attr]
    }
    print("engine, median seconds per block: "
          + ", ".join(f"{state} {value:.3f}" for state, value in per_block.items()))


if __name__ == "__main__":
    main()
