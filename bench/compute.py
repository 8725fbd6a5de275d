"""The compute block on a large table: ``python bench/compute.py [--rows N]``.

N rows (10,000 by default) of lead-like text columns through ``compute`` with four
expressions (text joined, a comparison, a number parsed and divided, a quoted column
sliced), against a baseline measured in the same run: the same four columns computed by
pandas' own vectorised operations. Reported: the best of 3 runs of each, and the cost per
row and expression.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.blocks import BlockContext  # noqa: E402
from workflow_engine.blocks.compute import Compute, ComputeParams  # noqa: E402
from workflow_engine.storage import LocalArea  # noqa: E402

EXPRESSIONS = {
    "full_name": "first + ' ' + last",
    "is_american": "country == 'United States'",
    "per_head": "1000 / int(employees)",
    "city": "strip(row['company location'][0:6])",
}


def table(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "first": ["Maya", "Jonas", None, "Aiko"] * (rows // 4),
        "last": ["Okafor", "Brandt", "Raman", "Tanaka"] * (rows // 4),
        "country": ["United States", "Germany", "United States", None] * (rows // 4),
        "employees": ["120", "0", "45", "abc"] * (rows // 4),
        "company location": ["Austin, TX", "Berlin", "Seattle, WA", "Lisbon"] * (rows // 4),
    }, dtype="string")


def pandas_baseline(data: pd.DataFrame) -> pd.DataFrame:
    out = data.copy()
    out["full_name"] = data["first"] + " " + data["last"]
    out["is_american"] = (data["country"] == "United States").fillna(False)
    out["per_head"] = 1000 / pd.to_numeric(data["employees"], errors="coerce")
    out["city"] = data["company location"].str.slice(0, 6).str.strip()
    return out


def best(work: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    rows = parser.parse_args().rows
    data = table(rows)
    with tempfile.TemporaryDirectory() as directory:
        area = LocalArea(Path(directory))
        context = BlockContext(files=area, outputs=area)
        block = Compute(ComputeParams.model_validate(
            {"columns": EXPRESSIONS, "max_error_ratio": 1}))
        computed = best(lambda: block(data, context))
        errors = int(block(data, context)["compute_error"].notna().sum())
    baseline = best(lambda: pandas_baseline(data))
    evaluations = len(data) * len(EXPRESSIONS)
    print(f"{len(data):,} rows x {len(EXPRESSIONS)} expressions ({errors:,} rows with errors)")
    print(f"{'run':<22}{'seconds':>10}{'us/evaluation':>16}")
    print(f"{'compute block':<22}{computed:>10.3f}{computed / evaluations * 1e6:>16.1f}")
    print(f"{'pandas (baseline)':<22}{baseline:>10.3f}{baseline / evaluations * 1e6:>16.1f}")


if __name__ == "__main__":
    main()
