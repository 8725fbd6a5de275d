"""Where instances' tables are kept: one Parquet file per block run, never rewritten.

A run's output is stored under the seq of its ``block_started`` event, written atomically
before the run is recorded as succeeded. A run that is repeated (after a restart, or a
retry of the same start) writes the same file again, so a table is never duplicated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .blocks.tables import read_snapshot, write_snapshot
from .errors import NoTable

__all__ = ["Snapshots"]


class Snapshots:
    """Parquet snapshots under ``root/<instance id>/<seq>.parquet``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, instance_id: str, seq: int) -> Path:
        """Where a snapshot lives (instance ids are plain identifiers by validation)."""
        return self.root / instance_id / f"{seq:010d}.parquet"

    def save(self, instance_id: str, seq: int, table: pd.DataFrame) -> None:
        """Store the output of the run started at ``seq``."""
        write_snapshot(table, self.path(instance_id, seq))

    def load(self, instance_id: str, seq: int) -> pd.DataFrame:
        """The table stored for ``seq``."""
        path = self.path(instance_id, seq)
        if not path.is_file():
            raise NoTable(
                f"The table of instance '{instance_id}' after run {seq} is missing from the "
                "data directory.", seq=seq,
            )
        return read_snapshot(path)
