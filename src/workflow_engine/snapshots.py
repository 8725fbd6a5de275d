"""Where instances' tables are kept: one Parquet file per block run, never rewritten.

A run's output is stored under the seq of its ``block_started`` event, written atomically
before the run is recorded as succeeded. A run that is repeated (after a restart, or a
retry of the same start) writes the same file again, so a table is never duplicated.
"""

from __future__ import annotations

import pandas as pd

from .blocks.tables import read_snapshot, write_snapshot
from .errors import FileNotFound, NoTable
from .storage import FileArea, StoredFile

__all__ = ["Parts", "Snapshots"]


class Snapshots:
    """Parquet snapshots as ``<instance id>/<seq>.parquet`` in the snapshots area."""

    def __init__(self, area: FileArea) -> None:
        self.area = area

    def file(self, instance_id: str, seq: int) -> StoredFile:
        """Where a snapshot lives (instance ids are plain identifiers by validation)."""
        return self.area.directory(instance_id).file(f"{seq:010d}.parquet")

    def save(self, instance_id: str, seq: int, table: pd.DataFrame) -> None:
        """Store the output of the run started at ``seq``."""
        with self.file(instance_id, seq).writing() as out:
            write_snapshot(table, out)

    def load(self, instance_id: str, seq: int) -> pd.DataFrame:
        """The table stored for ``seq``."""
        try:
            with self.file(instance_id, seq).open() as stream:
                return read_snapshot(stream)
        except FileNotFound:
            raise NoTable(
                f"The table of instance '{instance_id}' after run {seq} is missing from the "
                "snapshots storage.", seq=seq,
            ) from None

    def parts(self, instance_id: str, input_seq: int) -> Parts:
        """Where the blocks that read snapshot ``input_seq`` keep parts of their work (a
        fork's branches), for any later run from the same table to reuse."""
        return Parts(self.area.directory(instance_id), f"{input_seq:010d}")


class Parts:
    """Parts of blocks' work from one input table, as ``<input seq>-<name>.parquet``."""

    def __init__(self, area: FileArea, prefix: str) -> None:
        self.area = area
        self.prefix = prefix

    def load(self, name: str) -> pd.DataFrame | None:
        """The part stored under ``name``, if any."""
        stored = self.area.find(f"{self.prefix}-{name}.parquet")
        if stored is None:
            return None
        with stored.open() as stream:
            return read_snapshot(stream)

    def save(self, name: str, table: pd.DataFrame) -> None:
        """Store a part under ``name`` (atomically: a part is whole or absent)."""
        with self.area.file(f"{self.prefix}-{name}.parquet").writing() as out:
            write_snapshot(table, out)
