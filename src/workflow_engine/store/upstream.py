"""The record of enrichment jobs (and of http_request's POSTs and PATCHes): what was
submitted, and what came back.

A record's status, by the identity of its request:

* ``sending``: a submission is about to leave or has left; claimed and committed right
  before the request goes out, by its ``owner`` (one process) until ``claimed_until``.
  While the claim holds, no other process sends the request: it waits for the owner's
  outcome. A claim whose lease lapsed belongs to a process that died with the request
  sent and its answer not stored, so the outcome is unknown, and nobody pays again
  silently.
* ``not_taken``: the last attempt provably started nothing (refused with a status, or
  never connected); safe to submit.
* ``submitted``: the API answered a task id; poll it, never submit it again.
* ``completed`` / ``failed``: the job ended (its result, or why not).
* ``unknown``: a submission left but its answer never came, and that was reported; it is
  only sent again when a block asks for that (``on_unknown_outcome: resubmit``).

A bulk request (many subjects in one submission) has a record of its own, and each of
its subjects keeps the record of its own request, as if sent alone: claimed together
with the batch's in one transaction before the batch leaves, ``submitted`` with the
batch's task (``bulk:<task id>``) once it is answered, and ``completed`` with its own
part of the answer. A subject is never paid for twice, however it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

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
    owner: str | None = None
    claimed_until: int | None = None

    def claimed_by_other(self, owner: str, now: int) -> bool:
        """Whether another process holds a live claim to send this request."""
        return (self.status == "sending" and self.owner != owner
                and self.claimed_until is not None and self.claimed_until > now)


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
                    found[row["key"]] = _job(row)
        return found

    def claim(self, key: str, kind: str, *, owner: str, now: int, lease_ms: int,
              resend: bool = False) -> UpstreamJob | None:
        """Claim the request's submission for ``owner``, committed before it leaves: None
        if claimed (or renewed), else the record that stands in the way.

        A request is free to claim when nobody has sent it (no record, or ``not_taken``),
        its last job failed (a later run sends it again), or its owner is renewing; with
        ``resend``, also when its outcome is unknown
        (reported, or a claim whose lease lapsed)."""
        table = schema.upstream_jobs
        values = dict(status="sending", owner=owner, claimed_until=now + lease_ms,
                      task_id=None, result=None, error=None, submitted_at=now,
                      finished_at=None)
        try:
            with self.store.write() as tx:
                claimed = tx.connection.execute(update(table).where(
                    table.c.key == key, _free(owner, now, resend)).values(**values)).rowcount
                if claimed:
                    return None
                row = tx.connection.execute(
                    select(table).where(table.c.key == key)).mappings().first()
                if row is not None:
                    return _job(row)
                tx.connection.execute(insert(table).values(key=key, kind=kind, **values))
                return None
        except IntegrityError:
            # Another process inserted the same request's claim first: it is theirs.
            found = self.get_many([key]).get(key)
            assert found is not None, "a claim that won the insert race is stored"
            return found

    def claim_many(self, key: str, kind: str, subjects: dict[str, bool], subject_kind: str,
                   *, owner: str, now: int, lease_ms: int) -> dict[str, UpstreamJob]:
        """Claim a bulk request (``key``) and its subjects' requests (key -> whether it
        may be resent, as ``claim``'s ``resend``) for ``owner``, in one transaction
        committed before the batch leaves; the records standing in the way of the
        subjects that could not be claimed (leave them out of the batch)."""
        table = schema.upstream_jobs
        values = dict(status="sending", owner=owner, claimed_until=now + lease_ms,
                      task_id=None, result=None, error=None, submitted_at=now,
                      finished_at=None)
        keys = list(subjects)
        try:
            with self.store.write() as tx:
                connection = tx.connection
                for resend in (False, True):
                    chosen = [k for k in keys if subjects[k] is resend]
                    if chosen:
                        connection.execute(update(table).where(
                            table.c.key.in_(chosen), _free(owner, now, resend)
                        ).values(**values))
                found = {row["key"]: _job(row) for row in connection.execute(
                    select(table).where(table.c.key.in_(keys))).mappings()}
                missing = [k for k in keys if k not in found]
                if missing:
                    connection.execute(insert(table), [
                        dict(key=k, kind=subject_kind, **values) for k in missing])
                # The batch's own key is made for it alone: nobody else claims it.
                if not connection.execute(update(table).where(
                        table.c.key == key).values(**values)).rowcount:
                    connection.execute(insert(table).values(key=key, kind=kind, **values))
        except IntegrityError:
            # Another process inserted one of the claims first: claim one by one.
            standing = {k: s for k in keys if (s := self.claim(
                k, subject_kind, owner=owner, now=now, lease_ms=lease_ms,
                resend=subjects[k])) is not None}
            self.claim(key, kind, owner=owner, now=now, lease_ms=lease_ms, resend=True)
            return standing
        return {k: job for k, job in found.items()
                if not (job.status == "sending" and job.owner == owner)}

    def standing(self, key: str, *, owner: str, now: int,
                 resend: bool = False) -> UpstreamJob | None:
        """The record that would stand in the way of ``claim`` now, read without writing:
        a request another process holds or has answered need not wait for a rate slot
        only to find that out."""
        table = schema.upstream_jobs
        with self.store.read() as tx:
            row = tx.connection.execute(select(
                table, _free(owner, now, resend).label("free")).where(
                table.c.key == key)).mappings().first()
        # As in claim's UPDATE, a condition that is NULL (an owner not recorded) is not
        # free.
        return _job(row) if row is not None and not row["free"] else None

    def renew(self, keys: list[str], *, owner: str, until: int) -> None:
        """Extend ``owner``'s claims on ``keys`` (their attempts are still out)."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(
                table.c.key.in_(keys), table.c.status == "sending", table.c.owner == owner,
            ).values(claimed_until=until))

    def not_taken(self, key: str | list[str], owner: str) -> None:
        """The submission provably started nothing: withdraw the claim (of each key of a
        bulk request)."""
        table = schema.upstream_jobs
        keys = [key] if isinstance(key, str) else key
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(
                table.c.key.in_(keys), table.c.status == "sending", table.c.owner == owner,
            ).values(status="not_taken", claimed_until=None))

    def unknown_many(self, keys: list[str], *, owner: str, error: str, now: int) -> None:
        """``unknown`` for each key (a bulk request and its subjects), in one transaction."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(
                table.c.key.in_(keys),
                or_(table.c.status == "unknown",
                    and_(table.c.status == "sending", _mine_or_lapsed(owner, now))),
            ).values(status="unknown", error=error, finished_at=now, claimed_until=None))

    def submitted_many(self, keys: list[str], task_id: str, now: int) -> None:
        """The subjects of a bulk request answered ``task_id`` (``bulk:<id>``)."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            tx.connection.execute(update(table).where(table.c.key.in_(keys)).values(
                status="submitted", task_id=task_id, result=None, error=None,
                submitted_at=now, finished_at=None, claimed_until=None))

    def finished_many(self, outcomes: dict[str, tuple[dict[str, Any] | None, str | None]],
                      *, now: int) -> None:
        """``finished`` for each key -> (result, error), in one transaction."""
        if not outcomes:
            return
        table = schema.upstream_jobs
        statement = update(table).where(table.c.key == bindparam("b_key")).values(
            status=bindparam("b_status"), result=bindparam("b_result"),
            error=bindparam("b_error"), finished_at=now, claimed_until=None)
        with self.store.write() as tx:
            tx.connection.execute(statement, [
                {"b_key": key, "b_status": "completed" if error is None else "failed",
                 "b_result": result, "b_error": error}
                for key, (result, error) in outcomes.items()])

    def unknown(self, key: str, *, owner: str, error: str, now: int) -> bool:
        """A submission left and its answer never came; that has been reported. Only
        ``owner``'s claim or one whose lease lapsed is marked: a live claim of another
        process (a resend, or a slow owner's renewal) stays as it is. Whether it was."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            return bool(tx.connection.execute(update(table).where(
                table.c.key == key,
                or_(table.c.status == "unknown",
                    and_(table.c.status == "sending", _mine_or_lapsed(owner, now))),
            ).values(status="unknown", error=error, finished_at=now,
                     claimed_until=None)).rowcount)

    def submitted(self, key: str, kind: str, task_id: str, now: int) -> None:
        """A submission answered ``task_id``: remember it before anything else happens."""
        table = schema.upstream_jobs
        values = dict(status="submitted", task_id=task_id, result=None, error=None,
                      submitted_at=now, finished_at=None, claimed_until=None)
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
                error=error, finished_at=now, claimed_until=None))

    def finished_task(self, task_id: str, *, result: dict[str, Any] | None,
                      error: str | None, now: int) -> bool | None:
        """A submitted job's end, reported for its task id (by a webhook that reached a
        process other than the one waiting on it): True if a waiting record took it, None
        if the task's record has its outcome already, False if no record has that task."""
        table = schema.upstream_jobs
        with self.store.write() as tx:
            if tx.connection.execute(update(table).where(
                    table.c.task_id == task_id, table.c.status == "submitted").values(
                    status="completed" if error is None else "failed", result=result,
                    error=error, finished_at=now)).rowcount:
                return True
            known = tx.connection.execute(
                select(table.c.key).where(table.c.task_id == task_id).limit(1)).first()
            return None if known is not None else False


def _free(owner: str, now: int, resend: bool) -> Any:
    """Records ``owner`` may claim (see ``UpstreamJobs.claim``)."""
    table = schema.upstream_jobs
    free = [table.c.status.in_(("not_taken", "failed")),
            and_(table.c.status == "sending", table.c.owner == owner)]
    if resend:
        free += [table.c.status == "unknown",
                 and_(table.c.status == "sending", _mine_or_lapsed(owner, now))]
    return or_(*free)


def _mine_or_lapsed(owner: str, now: int) -> Any:
    """A claim of ``owner``'s, or one nobody holds any longer (its lease lapsed, or it was
    written before claims had leases)."""
    table = schema.upstream_jobs
    return or_(table.c.owner == owner, table.c.claimed_until.is_(None),
               table.c.claimed_until <= now)


def _job(row: Any) -> UpstreamJob:
    return UpstreamJob(row["key"], row["kind"], row["status"], row["task_id"],
                       row["result"], row["error"], row["owner"], row["claimed_until"])
