"""The runner: runs states' blocks off the request thread, in a pool of worker threads.

A committed change that leaves an instance ``running`` is submitted here. A run loads
its input snapshot, calls the block with a progress callback and a cancel flag, stores
the output snapshot, then settles the run through the service (which may fire automatic
actions and submit the next block). After a restart, :meth:`Runner.resume` submits every
instance that was running: each run starts again from its stored input, and its output
replaces the file it would have written, so no row is lost or duplicated.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .blocks import BlockCancelled, BlockContext, Catalog, describe
from .blocks.base import NoInputTable
from .files import FileArea
from .service import PendingRun, WorkflowService
from .snapshots import Snapshots

__all__ = ["Progress", "Runner"]

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """How far a running block has got."""

    block: str
    started_at: int
    rows_total: int | None
    seq: int = 0
    rows_done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def update(self, done: int, total: int | None) -> None:
        """The block's progress callback."""
        self.rows_done = done
        if total is not None:
            self.rows_total = total

    def as_dict(self) -> dict[str, Any]:
        """As shown on the instance (without the run's seq)."""
        total = self.rows_total
        percent = round(100 * self.rows_done / total, 1) if total else None
        return {
            "block": self.block, "rows_done": self.rows_done, "rows_total": total,
            "percent": min(percent, 100.0) if percent is not None else None,
            "started_at": self.started_at,
        }


class Runner:
    """A pool of threads running blocks for every instance of this process."""

    def __init__(
        self,
        service: WorkflowService,
        catalog: Catalog,
        snapshots: Snapshots,
        outputs: FileArea,
        *,
        workers: int = 2,
        enrichment: Any = None,
    ) -> None:
        self.service = service
        self.enrichment = enrichment
        self.catalog = catalog
        self.snapshots = snapshots
        self.outputs = outputs
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="block")
        self._progress: dict[str, Progress] = {}
        self._queued: set[str] = set()
        self._cancel_requested: set[str] = set()
        self._again: set[str] = set()
        self._changed = threading.Condition()
        self._closed = False
        service.scheduler = self

    def submit(self, instance_id: str) -> None:
        """Run the instance's pending block soon."""
        with self._changed:
            if self._closed:
                return
            if instance_id in self._queued:
                # Its worker is busy with an earlier run (say, one just cancelled): have it
                # look again for what is pending before it lets go of the instance.
                self._again.add(instance_id)
                return
            self._queued.add(instance_id)
        self._pool.submit(self._run, instance_id)

    def resume(self) -> list[str]:
        """Submit every instance left running by the last stop."""
        pending = self.service.running_instances()
        for instance_id in pending:
            self.submit(instance_id)
        if pending:
            log.info("resuming %d block run(s) left running: %s", len(pending), pending)
        return pending

    def progress(self, instance_id: str, seq: int | None = None) -> dict[str, Any] | None:
        """The running block's progress, if it runs in this process now (and, given
        ``seq``, only if it is that run: a retried run still queued has none yet)."""
        found = self._progress.get(instance_id)
        if found is None or (seq is not None and found.seq != seq):
            return None
        return found.as_dict()

    def cancel(self, instance_id: str) -> None:
        """Ask the instance's running block to stop (it checks between batches)."""
        with self._changed:
            found = self._progress.get(instance_id)
            if found is not None:
                found.cancel.set()
            elif instance_id in self._queued:
                # Queued, or read as pending just before the cancel was committed: the
                # block must stop as soon as it starts.
                self._cancel_requested.add(instance_id)

    def wait(self, instance_id: str, timeout: float) -> None:
        """Return when no run of the instance is queued or running, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while instance_id in self._queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def close(self, *, wait: bool = True) -> None:
        """Stop taking runs, ask running blocks to stop, and let the pool finish."""
        with self._changed:
            self._closed = True
        for found in list(self._progress.values()):
            found.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        if self.enrichment is not None:
            self.enrichment.close()

    def _run(self, instance_id: str) -> None:
        """Run what the instance has pending, one block after another (an automatic action
        may settle a run into the next block), until nothing new is pending."""
        last_seq: int | None = None
        # The table the last block of this chain produced, to hand to the next one without
        # reading its snapshot back (it is on disk already: this only saves the read).
        recent: tuple[int, pd.DataFrame] | None = None
        while True:
            with self._changed:
                self._again.discard(instance_id)
            try:
                run = self.service.pending_run(instance_id)
                if run is not None and run.started.seq != last_seq and not self._closed:
                    last_seq = run.started.seq
                    recent = self._execute(run, recent)
                    continue
            except Exception:
                log.exception("runner failed on instance %s", instance_id)
            with self._changed:
                if instance_id in self._again and not self._closed:
                    continue
                self._queued.discard(instance_id)
                self._cancel_requested.discard(instance_id)
                self._progress.pop(instance_id, None)
                self._changed.notify_all()
                return

    def _still_pending(self, run: PendingRun) -> bool:
        """Whether ``run`` is still the block its instance waits on."""
        current = self.service.pending_run(run.instance.id)
        return current is not None and current.started.seq == run.started.seq

    def _execute(
        self, run: PendingRun, recent: tuple[int, pd.DataFrame] | None
    ) -> tuple[int, pd.DataFrame] | None:
        """Run one block; the output table and its snapshot seq, if it succeeded."""
        instance = run.instance
        spec = run.workflow.states[instance.current_state].block
        assert spec is not None, "a running instance is in a state with a block"
        started_at = self.service.clock()
        progress = Progress(spec.type, started_at, (run.started.data or {}).get("rows_in"),
                            seq=run.started.seq)
        with self._changed:
            self._progress[instance.id] = progress
            cancel_asked = instance.id in self._cancel_requested
            self._cancel_requested.discard(instance.id)
        # A cancel that came while the instance waited for a worker may have been for an
        # earlier run that a retry has replaced since: the store says whether this run is
        # still the pending one. (A cancel from now on finds its progress and sets it.)
        if cancel_asked and not self._still_pending(run):
            progress.cancel.set()
        context = BlockContext(
            files=self.catalog.files, outputs=self.outputs, progress=progress.update,
            cancel=progress.cancel, enrichment=self.enrichment,
        )
        source = run.input_seq
        try:
            if source is None:
                table = None
            elif recent is not None and recent[0] == source:
                table = recent[1]
            else:
                table = self.snapshots.load(instance.id, source)
            block = self.catalog.build(spec)
            if table is None and block.needs_table:
                raise NoInputTable(
                    f"{spec.type} needs a table, but the instance has none yet: no block "
                    "before it produced one.")
            output = block(table, context)
            # A block that passes its input on unchanged (save_csv) adds no snapshot.
            table_seq = source if output is table and source is not None else run.started.seq
            if table_seq == run.started.seq:
                self.snapshots.save(instance.id, table_seq, output)
        except BlockCancelled:
            log.info("block %s of %s stopped: cancelled", spec.type, instance.id)
            return None
        except Exception as exc:  # every failure of a block is recorded, never raised
            log.info("block %s of %s failed: %s", spec.type, instance.id, exc)
            timing: dict[str, Any] = {"started_at": started_at,
                                      "finished_at": self.service.clock()}
            self.service.settle_failure(run, error=describe(exc), timing=timing)
            return None
        timing = {"started_at": started_at, "finished_at": self.service.clock(),
                  "rows_in": len(table) if table is not None else None}
        settled = self.service.settle_success(
            run, table_seq=table_seq, rows=len(output),
            columns=[str(c) for c in output.columns], timing=timing,
        )
        return (table_seq, output) if settled is not None else None
