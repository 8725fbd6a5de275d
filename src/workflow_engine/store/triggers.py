"""Triggers in the database: webhook tokens (as digests), last fires, and schedule ticks'
claims.

A tick is claimed by inserting its row, in the transaction that starts its instance: the
primary key ``(definition_id, trigger_id, tick_at)`` lets one insert commit, on SQLite
(whose writers are serial) as on PostgreSQL (where a second insert of the key waits for
the first transaction and then fails), so one tick starts one instance however many
processes find it due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import schema
from .database import Transaction

__all__ = ["TriggerRow", "TriggerRows"]

_table = schema.triggers
_ticks = schema.trigger_ticks


@dataclass(frozen=True)
class TriggerRow:
    """What is stored of one trigger."""

    definition_id: str
    trigger_id: str
    token_sha256: str | None
    token_issued_at: int | None
    last_fired_at: int | None
    last_instance_id: str | None


class TriggerRows:
    """Reads and writes of the trigger tables, inside the caller's transaction."""

    @staticmethod
    def missing(tx: Transaction, definition_id: str, trigger_ids: Iterable[str]) -> list[str]:
        """Of ``trigger_ids``, those the definition has no row for yet."""
        wanted = list(trigger_ids)
        if not wanted:
            return []
        query = select(_table.c.trigger_id).where(
            _table.c.definition_id == definition_id, _table.c.trigger_id.in_(wanted))
        known = set(tx.connection.execute(query).scalars())
        return [trigger_id for trigger_id in wanted if trigger_id not in known]

    @staticmethod
    def add(tx: Transaction, definition_id: str, trigger_id: str, *, now: int,
            token_sha256: str | None = None) -> None:
        """Record a trigger the definition declares for the first time."""
        tx.connection.execute(insert(_table).values(
            definition_id=definition_id, trigger_id=trigger_id, token_sha256=token_sha256,
            token_issued_at=now if token_sha256 else None, created_at=now))

    @staticmethod
    def set_token(tx: Transaction, definition_id: str, trigger_id: str,
                  token_sha256: str | None, *, now: int) -> None:
        """Replace a trigger's token digest (the row exists); None retires it."""
        tx.connection.execute(update(_table).where(
            _table.c.definition_id == definition_id, _table.c.trigger_id == trigger_id,
        ).values(token_sha256=token_sha256,
                 token_issued_at=now if token_sha256 is not None else None))

    @staticmethod
    def get(tx: Transaction, definition_id: str, trigger_id: str) -> TriggerRow | None:
        """One trigger's row."""
        query = select(_table).where(
            _table.c.definition_id == definition_id, _table.c.trigger_id == trigger_id)
        row = tx.connection.execute(query).mappings().first()
        return _row(row) if row else None

    @staticmethod
    def of(tx: Transaction, definition_id: str | None = None) -> dict[tuple[str, str], TriggerRow]:
        """Every trigger's row (of one definition), by ``(definition_id, trigger_id)``."""
        query = select(_table)
        if definition_id is not None:
            query = query.where(_table.c.definition_id == definition_id)
        return {(row["definition_id"], row["trigger_id"]): _row(row)
                for row in tx.connection.execute(query).mappings()}

    @staticmethod
    def fired(tx: Transaction, definition_id: str, trigger_id: str, instance_id: str,
              *, now: int) -> None:
        """Note that the trigger started an instance."""
        tx.connection.execute(update(_table).where(
            _table.c.definition_id == definition_id, _table.c.trigger_id == trigger_id,
        ).values(last_fired_at=now, last_instance_id=instance_id))

    @staticmethod
    def claim_tick(tx: Transaction, definition_id: str, trigger_id: str, tick_at: int,
                   instance_id: str, *, now: int) -> bool:
        """Claim a schedule's tick for an instance about to start; False if another
        transaction claimed it (this one goes on, and must start nothing)."""
        try:
            with tx.connection.begin_nested():
                tx.connection.execute(insert(_ticks).values(
                    definition_id=definition_id, trigger_id=trigger_id, tick_at=tick_at,
                    instance_id=instance_id, claimed_at=now))
        except IntegrityError:
            return False
        return True

    @staticmethod
    def last_ticks(tx: Transaction) -> dict[tuple[str, str], int]:
        """Each schedule's latest claimed tick, by ``(definition_id, trigger_id)``."""
        query = select(_ticks.c.definition_id, _ticks.c.trigger_id,
                       func.max(_ticks.c.tick_at)).group_by(
            _ticks.c.definition_id, _ticks.c.trigger_id)
        return {(definition_id, trigger_id): int(tick)
                for definition_id, trigger_id, tick in tx.connection.execute(query)}

    @staticmethod
    def ticks(tx: Transaction, definition_id: str, trigger_id: str) -> list[tuple[int, str]]:
        """A schedule's claimed ticks, oldest first, each with the instance it started."""
        query = select(_ticks.c.tick_at, _ticks.c.instance_id).where(
            _ticks.c.definition_id == definition_id, _ticks.c.trigger_id == trigger_id,
        ).order_by(_ticks.c.tick_at)
        return [(int(tick), str(instance)) for tick, instance in tx.connection.execute(query)]


def _row(row: object) -> TriggerRow:
    mapping = dict(row)  # type: ignore[call-overload]
    return TriggerRow(
        definition_id=mapping["definition_id"], trigger_id=mapping["trigger_id"],
        token_sha256=mapping["token_sha256"], token_issued_at=mapping["token_issued_at"],
        last_fired_at=mapping["last_fired_at"], last_instance_id=mapping["last_instance_id"])
