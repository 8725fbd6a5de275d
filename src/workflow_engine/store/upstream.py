"""The record of enrichment jobs: what was submitted, and what came back.

A record's status, by the identity of its request:

* ``sending``: a submission is about to leave or has left; written and committed right
  before the request goes out, so a process that dies before the answer is stored leaves
  this behind, and the next start knows the outcome is unknown instead of paying again.
* ``not_taken``: the last attempt provably started nothing (refused with a status, or
  never connected); safe to submit.
* ``submitted``: the API answered a task id; poll it, never submit it again.
* ``completed`` / ``failed``: the job ended (its result, or why not).
* ``unknown``: a submission left but its answer never came, and that was reported; it is
  only sent again when a block asks for that (``on_unknown_outcome: resubmit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from . import schema
from .database import Store

__all__ = ["UpstreamJob", "UpstreamJobs"]


@dataclass(frozen=True)
class UpstreamJob:
    """One job, by the identity of its request."""

    key: str
    kind: str
    status: str  # sending, not_taken, submitted, completed, failed, unknown
    task_id: str | None
    result: dict[str, Any] | None
    error: str | None


class UpstreamJobs:
    """Reads and writes job records, each in its own short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_many(self, keys: list[str]) -> dict[str, UpstreamJob]:
        """The records of these keys that exist."""
        table = schema.upstream_jobs
        found: dict[str, UpstreamJob] = {}
        with self.store.read() as tx:
            for start in range(0, len(keys), 500):
                rows = tx.connection.execute(
                    select(table).where(table.c.key.in_(keys[start:start + 500]))
                ).mappings()
                for row in rows:
                    found[row["key"]] = UpstreamJob(
                        row["key"], row["kind"], row["status"], row["task_id"],
                        row["result"], row["error"])
        return found

    def sending(self, key: str, kind: str, now: int) -> None:
        """A submission is about to leave: commit the intent before it does."""
        self._upsert(key, kind, status="sending", task_id=None, result=None, error=None,
                     submitted_at=now, finished_at=None)

    def not_taken(self, key: str) -> None:
        """The submission provably started nothing: withdraw the intent."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(
                table.c.key == key, table.c.status == "sending").values(status="not_taken"))

    def unknown(self, key: str, *, error: str, now: int) -> None:
        """A submission left and its answer never came; that has been reported."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(
                table.c.key == key, table.c.status.in_(("sending", "unknown"))).values(
                status="unknown", error=error, finished_at=now))

    def submitted(self, key: str, kind: str, task_id: str, now: int) -> None:
        """A submission answered ``task_id``: remember it before anything else happens."""
        self._upsert(key, kind, status="submitted", task_id=task_id, result=None, error=None,
                     submitted_at=now, finished_at=None)

    def _upsert(self, key: str, kind: str, **values: Any) -> None:
        table = schema.upstream_jobs
        with self.store.write() as tx:
            changed = tx.connection.execute(
                update(table).where(table.c.key == key).values(**values)).rowcount
            if not changed:
                tx.connection.execute(insert(table).values(key=key, kind=kind, **values))

    def finished(self, key: str, *, result: dict[str, Any] | None, error: str | None,
                 now: int) -> None:
        """The job completed (``result``) or failed (``error``)."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(table.c.key == key).values(
                status="completed" if error is None else "failed", result=result,
                error=error, finished_at=now))
