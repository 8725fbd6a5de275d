"""The record of enrichment jobs: what was submitted, and what came back."""

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
    status: str  # submitted, completed, failed
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

    def submitted(self, key: str, kind: str, task_id: str, now: int) -> None:
        """A submission answered ``task_id``: remember it before anything else happens."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            changed = tx.connection.execute(update(table).where(table.c.key == key).values(
                task_id=task_id, status="submitted", result=None, error=None,
                submitted_at=now, finished_at=None)).rowcount
            if not changed:
                tx.connection.execute(insert(table).values(
                    key=key, kind=kind, task_id=task_id, status="submitted",
                    submitted_at=now))

    def finished(self, key: str, *, result: dict[str, Any] | None, error: str | None,
                 now: int) -> None:
        """The job completed (``result``) or failed (``error``)."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(table.c.key == key).values(
                status="completed" if error is None else "failed", result=result,
                error=error, finished_at=now))
