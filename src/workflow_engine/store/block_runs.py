"""Block runs in the database: which worker runs each block, until when, and how far it has
got.

A run is recorded ``pending`` in the transaction that starts its block. A worker claims it
(``running``, with a lease) before it loads the input, and renews the lease with each
heartbeat, which also stores the run's progress. A run whose lease has lapsed, because its
worker died or lost the database, may be claimed by another worker. Whatever settles the
run (success, failure, cancel) ends it in the same transaction that records the outcome,
so a worker whose heartbeat finds its run ended or taken over knows to stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update

from . import schema
from .database import Store, Transaction

__all__ = ["BlockRun", "BlockRunStatus", "BlockRuns", "Claim", "Heartbeat"]


class BlockRunStatus(StrEnum):
    """Where a block run is."""

    PENDING = "pending"  # recorded, no worker has claimed it yet
    RUNNING = "running"  # a worker holds it (until ``lease_until``)
    ENDED = "ended"  # settled: succeeded, failed or cancelled


class Claim(StrEnum):
    """What a worker's claim of a run found."""

    CLAIMED = "claimed"  # the run is this worker's now
    ENDED = "ended"  # the run has settled: nothing to do
    HELD = "held"  # another worker holds it, and its lease has not lapsed

_table = schema.block_runs
_THIS_RUN = and_(_table.c.instance_id == bindparam("b_instance_id"),
                 _table.c.seq == bindparam("b_seq"))
_RENEW = update(_table).where(
    _THIS_RUN, _table.c.status == BlockRunStatus.RUNNING, _table.c.worker == bindparam("b_worker"),
).values(rows_done=bindparam("b_rows_done"), rows_total=bindparam("b_rows_total"),
         rows_sent=bindparam("b_rows_sent"), branches=bindparam("b_branches"),
         lease_until=bindparam("b_lease_until"))


@dataclass(frozen=True)
class BlockRun:
    """One run as stored."""

    instance_id: str
    seq: int
    status: BlockRunStatus
    block: str | None
    worker: str | None
    lease_until: int | None
    rows_done: int
    rows_total: int | None
    attempts: int
    started_at: int | None
    rows_sent: int | None = None
    branches: list[dict[str, Any]] | None = None
    cancelled_branches: dict[str, str | None] | None = None


@dataclass(frozen=True)
class Heartbeat:
    """A running block's progress, as its worker reports it."""

    instance_id: str
    seq: int
    rows_done: int
    rows_total: int | None
    rows_sent: int | None = None
    branches: list[dict[str, Any]] | None = None


class BlockRuns:
    """Claims, leases and progress of block runs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def record(tx: Transaction, instance_id: str, seq: int, *, now: int) -> None:
        """In the transaction that starts the block: the run waits for a worker."""
        tx.connection.execute(insert(_table).values(
            instance_id=instance_id, seq=seq, status=BlockRunStatus.PENDING, rows_done=0,
            attempts=0, created_at=now))

    @staticmethod
    def end(tx: Transaction, instance_id: str, seq: int, *, now: int) -> None:
        """In the transaction that settles the run: nobody runs it any more."""
        tx.connection.execute(update(_table).where(
            _table.c.instance_id == instance_id, _table.c.seq == seq,
        ).values(status=BlockRunStatus.ENDED, ended_at=now, lease_until=None))

    def claim(self, instance_id: str, seq: int, *, worker: str, block: str,
              rows_total: int | None, now: int, lease_ms: int) -> Claim:
        """Take the run for ``worker`` if it is waiting, already this worker's, or its
        lease has lapsed."""
        with self.store.write() as tx:
            taken = tx.connection.execute(update(_table).where(
                _table.c.instance_id == instance_id, _table.c.seq == seq,
                or_(_table.c.status == BlockRunStatus.PENDING, _table.c.worker == worker,
                    and_(_table.c.status == BlockRunStatus.RUNNING, _table.c.lease_until < now)),
                _table.c.status != BlockRunStatus.ENDED,
            ).values(status=BlockRunStatus.RUNNING, worker=worker, block=block,
                     lease_until=now + lease_ms, rows_done=0, rows_total=rows_total, rows_sent=None,
                     branches=None,
                     started_at=now,
                     attempts=_table.c.attempts + 1)).rowcount
            if taken == 1:
                return Claim.CLAIMED
            status = tx.connection.execute(select(_table.c.status).where(
                _table.c.instance_id == instance_id, _table.c.seq == seq)).scalar_one_or_none()
        return Claim.HELD if status == BlockRunStatus.RUNNING else Claim.ENDED

    def release(self, instance_id: str, seq: int, *, worker: str) -> None:
        """``worker`` stops without finishing the run: it waits for another worker."""
        with self.store.write() as tx:
            tx.connection.execute(update(_table).where(
                _table.c.instance_id == instance_id, _table.c.seq == seq,
                _table.c.status == BlockRunStatus.RUNNING, _table.c.worker == worker,
            ).values(status=BlockRunStatus.PENDING, worker=None, lease_until=None))

    def renew(self, beats: Iterable[Heartbeat], *, worker: str, now: int, lease_ms: int
              ) -> set[tuple[str, int]]:
        """Store the progress of ``worker``'s runs and extend their leases; the runs it no
        longer holds (ended, or claimed by another worker after its lease lapsed)."""
        lost: set[tuple[str, int]] = set()
        with self.store.write() as tx:
            for beat in beats:
                renewed = tx.connection.execute(_RENEW, {
                    "b_instance_id": beat.instance_id, "b_seq": beat.seq, "b_worker": worker,
                    "b_rows_done": beat.rows_done, "b_rows_total": beat.rows_total,
                    "b_rows_sent": beat.rows_sent, "b_branches": beat.branches,
                    "b_lease_until": now + lease_ms,
                }).rowcount
                if renewed != 1:
                    lost.add((beat.instance_id, beat.seq))
        return lost

    def get(self, instance_id: str, seq: int) -> BlockRun | None:
        """One run, if it was recorded."""
        with self.store.read() as tx:
            row = tx.connection.execute(select(_table).where(
                _table.c.instance_id == instance_id, _table.c.seq == seq)).mappings().first()
        if row is None:
            return None
        return BlockRun(row["instance_id"], row["seq"], BlockRunStatus(row["status"]), row["block"],
                        row["worker"], row["lease_until"], row["rows_done"], row["rows_total"],
                        row["attempts"], row["started_at"], row["rows_sent"], row["branches"],
                        row["cancelled_branches"])

    @staticmethod
    def cancel_branch(tx: Transaction, instance_id: str, seq: int, branch: str,
                      actor: str | None) -> None:
        """In the transaction that accepts the cancel: ``branch`` of the run is to stop."""
        query = select(_table.c.cancelled_branches).where(
            _table.c.instance_id == instance_id, _table.c.seq == seq)
        if tx.connection.dialect.name == "postgresql":
            query = query.with_for_update()  # two cancels at once both count
        found = dict(tx.connection.execute(query).scalar_one_or_none() or {})
        found.setdefault(branch, actor)
        tx.connection.execute(update(_table).where(
            _table.c.instance_id == instance_id, _table.c.seq == seq,
        ).values(cancelled_branches=found))

    def cancelled_branches(
        self, runs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], set[str]]:
        """The branches cancelled on their own, of each of ``runs`` that has some."""
        keys = list(runs)
        if not keys:
            return {}
        query = select(_table.c.instance_id, _table.c.seq, _table.c.cancelled_branches).where(
            or_(*(and_(_table.c.instance_id == i, _table.c.seq == s) for i, s in keys)),
            _table.c.cancelled_branches.is_not(None))
        with self.store.read() as tx:
            return {(row.instance_id, row.seq): set(row.cancelled_branches)
                    for row in tx.connection.execute(query)}

    def unclaimed(self, *, now: int, pending_before: int, worker: str | None = None,
                  limit: int = 1000) -> list[str]:
        """Instances whose run no live worker holds: its lease has lapsed, it has waited
        since before ``pending_before`` without being claimed, or it is held by ``worker``
        (this worker's earlier life, when it has a stable name)."""
        query = select(_table.c.instance_id).where(or_(
            and_(_table.c.status == BlockRunStatus.RUNNING,
                 or_(_table.c.lease_until < now, _table.c.worker == worker)),
            and_(_table.c.status == BlockRunStatus.PENDING, _table.c.created_at < pending_before),
        )).order_by(_table.c.created_at).limit(limit)
        with self.store.read() as tx:
            return list(tx.connection.execute(query).scalars())
