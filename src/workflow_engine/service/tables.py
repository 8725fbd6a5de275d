"""An instance's tables: the one it has now, the one it had after each step of its
history, and a running block's table so far.

Any process answers the same: tables are read from the snapshots area, and an enrichment's
answers so far from the database, whichever process runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..blocks import Catalog
from ..errors import NoTable, NotRunning
from ..snapshots import Snapshots
from .runs import Runs

if TYPE_CHECKING:
    from ..sixtyfour import Enrichment

__all__ = ["Tables"]


class Tables:
    """Reads instances' tables over the block runs the service records."""

    def __init__(self, runs: Runs, catalog: Catalog, snapshots: Snapshots, *,
                 enrichment: Enrichment | None = None) -> None:
        self.runs = runs
        self.catalog = catalog
        self.snapshots = snapshots
        self.enrichment = enrichment

    def at(self, instance_id: str, seq: int | None = None) -> tuple[int, pd.DataFrame]:
        """The table the instance had after history event ``seq`` (now, by default), and
        the seq of the run that made it."""
        info = self.runs.table_at(instance_id, seq)
        return info.seq, self.snapshots.load(instance_id, info.seq)

    def so_far(self, instance_id: str) -> tuple[int, pd.DataFrame]:
        """The running block's output as far as it has got, and the seq of its run. Once
        no block runs, the current table: a viewer refreshing as progress arrives may ask
        just after the run ended, and gets the freshest table rather than an error."""
        try:
            return self._running(instance_id)
        except NotRunning:
            return self.at(instance_id)

    def _running(self, instance_id: str) -> tuple[int, pd.DataFrame]:
        run = self.runs.pending_run(instance_id)
        if run is None:
            raise NotRunning(f"Instance '{instance_id}' runs no block now.")
        block = self.catalog.build(run.block_spec)
        if run.input_seq is None:
            raise NoTable(f"The running block ({run.block_spec.type}) makes the first table; "
                          "it shows it when it ends.", block=run.block_spec.type)
        table = self.snapshots.load(instance_id, run.input_seq)
        partial = getattr(block, "partial", None)
        if partial is None or self.enrichment is None:
            # A block that shows its output only when it ends: its input, as it stands (a
            # viewer refreshing as an enrichment ends may ask while the next block runs).
            return run.input_seq, table
        frame: pd.DataFrame = partial(table, self.enrichment.get())
        return run.started.seq, frame
