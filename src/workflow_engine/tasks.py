"""Block runs as jobs of procrastinate, a task queue kept in PostgreSQL itself.

Why procrastinate: the engine's database is the queue, so a cluster needs no other
service, and a job is deferred on the very connection, and in the very transaction, that
records the state change starting its block. Either both commit or neither does: no block
is lost if a process dies between the two, and none runs for a change that rolled back.
(Dramatiq or Celery on Redis would need an outbox table and a relay for the same promise.)

Delivery is at least once, so the job is idempotent: it runs its block run only if the run
is still pending and no live worker holds it (the runner claims it in the database first).
A job whose worker died is found by the other workers (procrastinate's heartbeats) and
retried; its run is claimed again once the dead worker's lease has lapsed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

import procrastinate
from sqlalchemy.engine import make_url

from .errors import RunHeldElsewhere, RunInterrupted
from .store import Transaction

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["QUEUE", "TaskQueue", "conninfo"]

log = logging.getLogger(__name__)

QUEUE = "blocks"
_RUN_BLOCK = "workflow_engine.run_block"


def conninfo(database_url: str) -> str:
    """The libpq connection string of a PostgreSQL SQLAlchemy URL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("The procrastinate task engine needs a PostgreSQL DATABASE_URL.")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class TaskQueue:
    """Defers block runs in the caller's transaction; :meth:`work` runs them."""

    def __init__(self, database_url: str, *, retry_seconds: float = 5.0) -> None:
        self._conninfo = conninfo(database_url)
        self._runner: Runner | None = None
        self._stop: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._working_now = threading.Event()
        # A run held by a worker that still has its lease is tried again later (that
        # worker may be dead, and its lease will lapse), and so is one whose worker stopped.
        retry = procrastinate.RetryStrategy(
            wait=max(1, round(retry_seconds)),
            retry_exceptions={RunHeldElsewhere, RunInterrupted})
        # Deferring only ever uses the transaction's own connection: this app never opens
        # a pool of its own. The worker's app is asynchronous, as procrastinate's worker is.
        self._deferring = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())
        self._working = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=self._conninfo))
        self._defer_task = self._deferring.task(name=_RUN_BLOCK, queue=QUEUE, retry=retry)(
            self._run_block)
        self._working.task(name=_RUN_BLOCK, queue=QUEUE, retry=retry)(self._run_block)

    def defer(self, tx: Transaction, instance_id: str, seq: int) -> None:
        """Queue run ``seq`` of the instance in ``tx`` (committed, or rolled back, with it).
        One instance's jobs run one at a time (their lock is the instance)."""
        connection = tx.connection.connection.driver_connection
        self._defer_task.configure(connection=connection, lock=instance_id).defer(
            instance_id=instance_id, seq=seq)

    def _run_block(self, instance_id: str, seq: int) -> None:
        assert self._runner is not None, "jobs run only in a worker"
        self._runner.run_task(instance_id, seq)

    def work(self, runner: Runner, *, concurrency: int, name: str,
             heartbeat_seconds: float = 2.0, stalled_seconds: float = 10.0,
             wait: bool = True) -> None:
        """Run jobs with ``runner``, ``concurrency`` at a time, until :meth:`stop` (or,
        with ``wait=False``, until the queue is empty)."""
        self._runner = runner
        asyncio.run(self._work(concurrency=concurrency, name=name, wait=wait,
                               heartbeat_seconds=heartbeat_seconds,
                               stalled_seconds=stalled_seconds))

    def stop(self) -> None:
        """Ask :meth:`work`, running in another thread, to stop (it waits for the blocks
        it runs, which the runner's close stops)."""
        if self._working_now.wait(timeout=30) and self._stop is not None:
            loop, stopping = self._stop
            loop.call_soon_threadsafe(stopping.set)

    async def _work(self, *, concurrency: int, name: str, wait: bool,
                    heartbeat_seconds: float, stalled_seconds: float) -> None:
        stopping = asyncio.Event()
        self._stop = (asyncio.get_running_loop(), stopping)
        self._working_now.set()
        async with self._working.open_async():
            recovering = asyncio.create_task(self._recover(stalled_seconds))
            working = asyncio.create_task(self._working.run_worker_async(
                queues=[QUEUE], concurrency=concurrency, name=name, wait=wait,
                install_signal_handlers=False,
                update_heartbeat_interval=heartbeat_seconds,
                stalled_worker_timeout=stalled_seconds,
                fetch_job_polling_interval=1.0, abort_job_polling_interval=1.0,
                delete_jobs="successful",
            ))
            stopped = asyncio.create_task(stopping.wait())
            try:
                await asyncio.wait({working, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                recovering.cancel()
                stopped.cancel()
                if not working.done():
                    working.cancel()  # procrastinate's graceful stop
                await asyncio.gather(working, return_exceptions=True)

    async def _recover(self, stalled_seconds: float) -> None:
        """Retry the jobs of workers whose heartbeat has stopped (killed, or cut off)."""
        manager = self._working.job_manager
        while True:
            await asyncio.sleep(stalled_seconds / 2)
            try:
                for job in await manager.get_stalled_jobs(
                        queue=QUEUE, seconds_since_heartbeat=stalled_seconds):
                    log.warning("retrying block job %s of a stalled worker: %s",
                                job.id, job.task_kwargs)
                    await manager.retry_job(job)
            except Exception:  # the database may be away for a while; look again later
                log.warning("could not look for stalled block jobs", exc_info=True)
