"""What a very wide CSV costs now: ``python bench/csv_width.py [--columns N]``.

The width is counted on the header before the parser sees the file, so a file wider than
MAX_CSV_COLUMNS is refused at the cost of reading its header's first bytes. In the same
run, as the baseline, the same file is read with the limit raised above its width: what
every wide file cost before the limit (the parser's cost grows with the columns).
Each figure is the median of a few reads of a file of ``N`` columns and one row.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from workflow_engine.blocks import CsvInvalid
from workflow_engine.blocks.tables import read_csv_table
from workflow_engine.limits import DEFAULT_LIMITS, Limits
from workflow_engine.storage import LocalArea


def _median_seconds(read: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        with contextlib.suppress(CsvInvalid):
            read()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--columns", type=int, default=10_000,
                        help="width of the generated file (the baseline grows with it)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "wide.csv"
        path.write_text(",".join(f"c{i}" for i in range(args.columns)) + "\n"
                        + ",".join("1" for _ in range(args.columns)) + "\n")
        size = path.stat().st_size
        wide = LocalArea(Path(scratch)).file(path.name)
        refused = _median_seconds(lambda: read_csv_table(wide, limits=DEFAULT_LIMITS),
                                  args.runs)
        raised = Limits(max_csv_columns=args.columns)
        parsed = _median_seconds(lambda: read_csv_table(wide, limits=raised), args.runs)
    print(f"{args.columns} columns, one row ({size} bytes), median of {args.runs}")
    print("| read | seconds |\n|---|---|")
    print(f"| refused by MAX_CSV_COLUMNS={DEFAULT_LIMITS.max_csv_columns} | {refused:.4f} |")
    print(f"| parsed with the limit at {args.columns} (baseline) | {parsed:.4f} |")


if __name__ == "__main__":
    main()
