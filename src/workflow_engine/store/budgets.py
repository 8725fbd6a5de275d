"""Rate budgets kept in the database, so every process and machine spends one budget.

Each budget is one row holding the time its next request may leave (``next_at``, in
milliseconds since the epoch): a request reserves that slot and moves it on by one
interval, in one short write transaction (the row locked on PostgreSQL; SQLite's write
transactions are serial). That is the generic cell rate algorithm without a burst: the
requests of every process together leave at most one per interval, evenly spread, so a
strict sliding minute on the API's side never sees more than the rate.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import schema
from .database import Store

__all__ = ["RateBudgets"]


class RateBudgets:
    """Reservations against the stored budgets."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def reserve(self, key: str, *, interval_ms: int, now_ms: int) -> int:
        """The earliest free slot of budget ``key`` (never before ``now_ms``), taken."""
        table = schema.rate_budgets
        with self.store.write() as tx:
            next_at = self._locked(tx.connection, key)
            slot = max(next_at, now_ms)
            tx.connection.execute(
                update(table).where(table.c.key == key).values(next_at=slot + interval_ms))
        return slot

    def pause(self, key: str, *, until_ms: int) -> None:
        """No slot of budget ``key`` before ``until_ms`` (the API asked us to wait)."""
        table = schema.rate_budgets
        with self.store.write() as tx:
            next_at = self._locked(tx.connection, key)
            tx.connection.execute(update(table).where(table.c.key == key).values(
                next_at=max(next_at, until_ms)))

    @staticmethod
    def _locked(connection: Connection, key: str) -> int:
        """The budget's ``next_at``, its row locked until the transaction ends (created
        first if this is the budget's first request)."""
        table = schema.rate_budgets
        query = select(table.c.next_at).where(table.c.key == key).with_for_update()
        found = connection.execute(query).scalar_one_or_none()
        if found is None:
            try:
                with connection.begin_nested():
                    connection.execute(insert(table).values(key=key, next_at=0))
            except IntegrityError:
                pass  # created by another process meanwhile: lock and read its row
            found = connection.execute(query).scalar_one()
        return int(found)
