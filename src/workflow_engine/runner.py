"""The runner: runs states' blocks off the request thread.

A committed change that starts a block records a block run in the same transaction and
hands it to the runner. By default (``TASK_ENGINE=threads``) the runner runs it in a pool
of this process's threads once the change has committed; with a task queue
(``TASK_ENGINE=procrastinate``) the hand-over is a job deferred in that same transaction,
and worker processes (``python -m workflow_engine.worker``), on any machine, run it.

Whoever runs a block first claims its run in the database and holds a lease on it,
renewed by a heartbeat that also stores the run's progress: so every process answers the
same progress, a cancel committed by any process stops the block at its worker's next
heartbeat, and a run whose worker died is claimed again once its lease lapses. A run loads
its input snapshot, calls the block with a progress callback and a cancel flag, stores the
output snapshot, then settles through the service (which may fire automatic actions and
start the next block). Running a run again starts from its stored input, and its output
replaces the file it would have written, so no row is lost or duplicated.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .blocks import BlockCancelled, BlockContext, Catalog, describe
from .blocks.base import BranchesCancelled, NoInputTable
from .core import BlockSpec
from .errors import RunHeldElsewhere, RunInterrupted
from .service import PendingRun, WorkflowService, progress_view
from .snapshots import Snapshots
from .storage import FileArea
from .store import Transaction
from .store.block_runs import BlockRuns, Claim, Heartbeat

if TYPE_CHECKING:
    from .tasks import TaskQueue

__all__ = ["Progress", "Runner", "worker_name"]

log = logging.getLogger(__name__)


def worker_name() -> str:
    """This process, as block runs name their worker: host, pid and a random tag (a pid
    may come again after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Progress:
    """How far a block running in this process has got."""

    block: str
    started_at: int
    rows_total: int | None
    seq: int = 0
    rows_done: int = 0
    rows_sent: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    claimed: bool = False  # its run is this worker's in the database: heartbeats renew it
    # A fork's branches: how far each has got, and those cancelled on their own.
    branches: list[dict[str, Any]] | None = None
    stopped_branches: set[str] = field(default_factory=set)

    def update(self, done: int, total: int | None) -> None:
        """The block's progress callback."""
        self.rows_done = done
        if total is not None:
            self.rows_total = total

    def sent(self, rows: int) -> None:
        """The block's callback for rows whose request has left."""
        self.rows_sent = rows

    def set_branches(self, rows: list[dict[str, Any]]) -> None:
        """A fork's callback for its branches' progress."""
        self.branches = rows

    def cancelled_branches(self) -> set[str]:
        """The branches to stop (a fork asks while its branches run)."""
        return set(self.stopped_branches)

    def as_dict(self) -> dict[str, Any]:
        """As shown on the instance."""
        return progress_view(self.block, self.rows_done, self.rows_total, self.started_at,
                             self.rows_sent, self.branches)


class Runner:
    """Runs the blocks of every instance: in this process's threads, or as the task queue's
    jobs (then this process runs only what its worker takes from the queue)."""

    def __init__(
        self,
        service: WorkflowService,
        catalog: Catalog,
        snapshots: Snapshots,
        outputs: FileArea,
        *,
        workers: int = 2,
        enrichment: Any = None,
        http: Any = None,
        queue: TaskQueue | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 2.0,
        worker: str | None = None,
    ) -> None:
        self.service = service
        self.enrichment = enrichment
        self.http = http
        self.catalog = catalog
        self.snapshots = snapshots
        self.outputs = outputs
        self.queue = queue
        self.worker = worker or worker_name()
        self.workers = workers
        self._runs = BlockRuns(service.store)
        self._lease_ms = int(lease_seconds * 1000)
        self._heartbeat_seconds = heartbeat_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="block")
        self._progress: dict[str, Progress] = {}
        self._queued: set[str] = set()
        self._again: set[str] = set()
        self._changed = threading.Condition()
        self._closed = False
        self._stopping = threading.Event()
        # What else of this process stops with the runner (the schedule loop).
        self._also_closing: list[Callable[[], object]] = []
        self._beating: threading.Thread | None = None
        service.scheduler = self

    # -- the scheduler the service hands block runs to ----------------------------------

    def enqueue(self, tx: Transaction, instance_id: str, seq: int) -> None:
        """Hand over the block run that ``tx`` records: as a job deferred in ``tx`` itself,
        or to this process's threads once ``tx`` has committed."""
        if self.queue is not None:
            self.queue.defer(tx, instance_id, seq)
        else:
            tx.after_commit(lambda: self.submit(instance_id))

    def cancel(self, instance_id: str, seq: int) -> None:
        """The run ``seq`` was cancelled: if it runs here, stop it now (a worker elsewhere
        finds out at its next heartbeat)."""
        with self._changed:
            found = self._progress.get(instance_id)
        if found is not None and found.seq == seq:
            found.cancel.set()

    def cancel_branch(self, instance_id: str, seq: int, branch: str) -> None:
        """A branch of run ``seq`` was cancelled: if the run is here, stop the branch now."""
        with self._changed:
            found = self._progress.get(instance_id)
            if found is not None and found.seq == seq:
                found.stopped_branches.add(branch)

    def progress(self, instance_id: str, seq: int) -> dict[str, Any] | None:
        """Run ``seq``'s progress, if it runs in this process now."""
        found = self._progress.get(instance_id)
        if found is None or found.seq != seq or not found.claimed:
            return None
        return found.as_dict()

    def wait(self, instance_id: str, timeout: float) -> None:
        """Return when no run of the instance is queued or running in this process, or
        after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while instance_id in self._queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    # -- threads of this process --------------------------------------------------------

    def submit(self, instance_id: str) -> None:
        """Run the instance's pending block soon, in this process."""
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
        """Submit every run that no live worker holds: those left by the last stop, and
        those of a process that died (their lease has lapsed). Threads only: a task
        queue keeps its jobs, and its workers take over lapsed ones themselves."""
        if self.queue is not None:
            return []
        now = self.service.clock()
        pending = self._runs.unclaimed(now=now, pending_before=now + 1, worker=self.worker)
        for instance_id in pending:
            self.submit(instance_id)
        if pending:
            log.info("resuming %d block run(s) no worker holds: %s", len(pending), pending)
        self._start_heartbeat()
        return pending

    def run_task(self, instance_id: str, seq: int) -> None:
        """Run block run ``seq`` of an instance (a task queue's job); nothing if it has
        ended or another live worker holds it, so a job delivered twice runs once."""
        if self._closed:
            raise RunInterrupted(f"This worker is stopping: run {seq} of instance "
                                 f"'{instance_id}' is left for another.")
        self._execute_pending(instance_id, seq=seq, recent=None)

    def close_with(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the runner closes: whatever stops a process's runner
        stops the other loops of the process with it."""
        self._also_closing.append(callback)

    def close(self, *, wait: bool = True) -> None:
        """Stop taking runs, ask running blocks to stop, and let the pool finish."""
        for callback in self._also_closing:
            callback()
        with self._changed:
            self._closed = True
        for found in list(self._progress.values()):
            found.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._stopping.set()
        if self._beating is not None and wait:
            self._beating.join()
        if self.enrichment is not None:
            self.enrichment.close()
        if self.http is not None:
            self.http.close()

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
                ran = None if self._closed else self._execute_pending(
                    instance_id, seq=None, recent=recent, skip=last_seq)
                if ran is not None:
                    last_seq, recent = ran
                    continue
            except Exception:
                log.exception("runner failed on instance %s", instance_id)
            with self._changed:
                if instance_id in self._again and not self._closed:
                    continue
                self._queued.discard(instance_id)
                self._changed.notify_all()
                return

    # -- one run ------------------------------------------------------------------------

    def _execute_pending(
        self, instance_id: str, *, seq: int | None, recent: tuple[int, pd.DataFrame] | None,
        skip: int | None = None,
    ) -> tuple[int, tuple[int, pd.DataFrame] | None] | None:
        """Claim and run the instance's pending run (only if it is ``seq``, when given, and
        not ``skip``); its seq and output, or None if there was nothing to run here."""
        run = self.service.pending_run(instance_id)
        if run is None or run.started.seq == skip or (seq is not None and run.started.seq != seq):
            return None
        spec = run.workflow.states[run.instance.current_state].block
        assert spec is not None, "a running instance is in a state with a block"
        progress = Progress(spec.type, self.service.clock(),
                            (run.started.data or {}).get("rows_in"), seq=run.started.seq)
        # Registered before the claim: a cancel committed from now on finds the progress
        # and sets its flag; one committed before has ended the run, and the claim fails.
        # A run this process runs already (a job delivered again) is held, not claimed
        # again: the claim would let the same worker through.
        with self._changed:
            here = self._progress.get(instance_id)
            held_here = here is not None and here.seq == run.started.seq
            if not held_here:
                self._progress[instance_id] = progress
        try:
            claim = Claim.HELD if held_here else self._runs.claim(
                instance_id, run.started.seq, worker=self.worker, block=spec.type,
                rows_total=progress.rows_total, now=progress.started_at,
                lease_ms=self._lease_ms)
            if claim is Claim.HELD and seq is not None:
                # A job of the task queue: try again once the holder's lease may have lapsed.
                raise RunHeldElsewhere(
                    f"Run {seq} of instance '{instance_id}' is held by another worker.")
            if claim is not Claim.CLAIMED:
                return None
            progress.claimed = True
            self._start_heartbeat()
            return run.started.seq, self._execute(run, spec, progress, recent)
        finally:
            with self._changed:
                if self._progress.get(instance_id) is progress:
                    del self._progress[instance_id]

    def _execute(
        self, run: PendingRun, spec: BlockSpec, progress: Progress,
        recent: tuple[int, pd.DataFrame] | None,
    ) -> tuple[int, pd.DataFrame] | None:
        """Run one claimed block; the output table and its snapshot seq, if it succeeded."""
        instance = run.instance
        started_at = progress.started_at
        source = run.input_seq
        context = BlockContext(
            files=self.catalog.files, outputs=self.outputs, progress=progress.update,
            sent=progress.sent, cancel=progress.cancel, enrichment=self.enrichment,
            http=self.http, instance_id=instance.id, step=instance.current_state,
            branches=progress.set_branches, cancelled_branches=progress.cancelled_branches,
            checkpoints=self.snapshots.parts(instance.id, source) if source is not None
            else None,
        )
        try:
            if source is None:
                table = None
            elif recent is not None and recent[0] == source:
                table = recent[1]
            else:
                table = self.snapshots.load(instance.id, source)
            # The parameters its block_started event recorded: the definition's under the
            # instance's inputs.
            block = self.catalog.build(run.block_spec)
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
            if not self._closed:
                log.info("block %s of %s stopped: cancelled", spec.type, instance.id)
                return None
            # Stopped because this process stops: the run is not over, and another worker
            # (or this one's next start) runs it again from its input.
            log.info("block %s of %s interrupted: this worker stops", spec.type, instance.id)
            self._runs.release(instance.id, run.started.seq, worker=self.worker)
            if self.queue is not None:
                raise RunInterrupted(
                    f"Run {run.started.seq} of instance '{instance.id}' was interrupted."
                ) from None
            return None
        except BranchesCancelled as exc:
            log.info("block %s of %s stopped: %s", spec.type, instance.id, exc)
            self.service.settle_cancelled(run, error=describe(exc), timing={
                "started_at": started_at, "finished_at": self.service.clock()})
            return None
        except Exception as exc:  # every failure of a block is recorded, never raised
            log.info("block %s of %s failed: %s", spec.type, instance.id, exc)
            timing: dict[str, Any] = {"started_at": started_at,
                                      "finished_at": self.service.clock()}
            self.service.settle_failure(run, error=describe(exc), timing=timing)
            return None
        timing = {"started_at": started_at, "finished_at": self.service.clock(),
                  "rows_in": len(table) if table is not None else None, **context.details}
        settled = self.service.settle_success(
            run, table_seq=table_seq, rows=len(output),
            columns=[str(c) for c in output.columns], timing=timing,
        )
        return (table_seq, output) if settled is not None else None

    # -- the heartbeat ------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        with self._changed:
            if self._beating is not None or self._closed:
                return
            self._beating = threading.Thread(target=self._heartbeat, name="block-heartbeat",
                                             daemon=True)
        self._beating.start()

    def _heartbeat(self) -> None:
        """Until closed: store this process's runs' progress and renew their leases; stop
        the runs it no longer holds (cancelled, or taken over); with threads, also run the
        runs that no live worker holds."""
        sweep_every = max(self._lease_ms / 2000, self._heartbeat_seconds)
        next_sweep = time.monotonic() + sweep_every
        while not self._stopping.wait(self._heartbeat_seconds):
            try:
                self.beat()
                if self.queue is None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    self._sweep()
            except Exception:  # the database may be away for a while; try again next beat
                log.warning("block heartbeat failed", exc_info=True)

    def beat(self) -> None:
        """One heartbeat (the heartbeat thread calls it; tests too)."""
        with self._changed:
            running = [(instance_id, progress) for instance_id, progress
                       in self._progress.items() if progress.claimed]
        if not running:
            return
        lost = self._runs.renew(
            [Heartbeat(instance_id, p.seq, p.rows_done, p.rows_total, p.rows_sent, p.branches)
             for instance_id, p in running],
            worker=self.worker, now=self.service.clock(), lease_ms=self._lease_ms)
        for instance_id, progress in running:
            if (instance_id, progress.seq) in lost:
                progress.cancel.set()
        # A branch cancelled through another process reaches its fork here.
        forks = [(instance_id, p.seq) for instance_id, p in running if p.branches is not None]
        for (instance_id, seq), branches in self._runs.cancelled_branches(forks).items():
            for branch in branches:
                self.cancel_branch(instance_id, seq, branch)

    def _sweep(self) -> None:
        now = self.service.clock()
        for instance_id in self._runs.unclaimed(now=now, pending_before=now - self._lease_ms):
            self.submit(instance_id)
