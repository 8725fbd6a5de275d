"""The store: an SQLAlchemy engine and the transactions the service works in.

A :class:`Transaction` is the only way to read or change stored state. Writes run in
``BEGIN IMMEDIATE`` on SQLite so that concurrent writers queue on the database lock
instead of failing half-way with ``database is locked``; the optimistic version check
in :meth:`Transaction.update_instance` is what keeps two writers from both winning on
any database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ..core import Event, EventType, Instance, InstanceStatus, TableInfo
from ..errors import ServiceUnavailable
from . import migrations, schema
from .prepared import PreparedStatement

__all__ = ["Store", "StoredDefinition", "Transaction", "make_engine"]


_BEGIN = {"DEFERRED": "BEGIN DEFERRED", "IMMEDIATE": "BEGIN IMMEDIATE"}


def make_engine(url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> Engine:
    """An engine for ``url``: for SQLite, a WAL-mode file with its directory created; for
    PostgreSQL, psycopg 3 (``postgresql://`` means that driver here)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=16, max_overflow=16)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False}, pool_size=16, max_overflow=16
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours (see _begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        statement = _BEGIN[mode]
        # Straight to the driver: BEGIN returns no rows and needs none of the statement
        # machinery, which costs more than the statement itself. Its errors (a lock not
        # granted within busy_timeout) are wrapped as SQLAlchemy would, so that callers
        # see the same OperationalError (503) as from any other statement.
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection in use has its driver connection"
        try:
            driver.execute(statement)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    return engine


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode, once: the mode is stored in the file. A process starting
    beside another may find the file locked by the other's first migration; by then the
    other has switched the mode, which is all this needed."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            raise


@dataclass(frozen=True)
class StoredDefinition:
    """A definition version as stored."""

    id: str
    version: int
    content: dict[str, Any]
    content_hash: str
    warnings: list[dict[str, str]]
    created_at: int


def _instance(row: Mapping[Any, Any]) -> Instance:
    table = None
    if row["table_seq"] is not None:
        table = TableInfo(row["table_seq"], row["table_rows"], tuple(row["table_columns"]))
    return Instance(
        id=row["id"],
        definition_id=row["definition_id"],
        definition_version=row["definition_version"],
        current_state=row["current_state"],
        status=InstanceStatus(row["status"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        context=row["context"],
        inputs=row["inputs"] or {},
        table=table,
        error=row["error"],
    )


def _table_columns(instance: Instance) -> dict[str, Any]:
    table = instance.table
    return {
        "table_seq": table.seq if table else None,
        "table_rows": table.rows if table else None,
        "table_columns": list(table.columns) if table else None,
        "error": instance.error,
    }


def _snapshot(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.id, "definition_id": instance.definition_id,
        "definition_version": instance.definition_version,
        "current_state": instance.current_state, "status": instance.status.value,
        "version": instance.version, "created_at": instance.created_at,
        "updated_at": instance.updated_at, "context": instance.context,
        "inputs": instance.inputs or None,
        **_table_columns(instance),
    }


def _instance_from_snapshot(snapshot: dict[str, Any]) -> Instance:
    return _instance(snapshot)


def _event(row: RowMapping) -> Event:
    return Event(
        instance_id=row["instance_id"],
        seq=row["seq"],
        type=EventType(row["type"]),
        from_state=row["from_state"],
        to_state=row["to_state"],
        at=row["at"],
        action_id=row["action_id"],
        actor=row["actor"],
        data=row["data"],
    )


def _definition(row: RowMapping) -> StoredDefinition:
    return StoredDefinition(
        id=row["id"],
        version=row["version"],
        content=row["content"],
        content_hash=row["content_hash"],
        warnings=row["warnings"],
        created_at=row["created_at"],
    )


# The statements of the hot path (fire an action), compiled once and run on the driver.
_INSTANCE_JSON = ("context", "inputs", "table_columns", "error")
_select_instance = select(schema.instances).where(schema.instances.c.id == bindparam("b_id"))
_SELECT_INSTANCE = PreparedStatement(_select_instance, json_columns=_INSTANCE_JSON)
_SELECT_INSTANCE_FOR_UPDATE = PreparedStatement(
    _select_instance.with_for_update(), json_columns=_INSTANCE_JSON)
_UPDATE_INSTANCE = PreparedStatement(
    update(schema.instances).where(
        schema.instances.c.id == bindparam("b_id"),
        schema.instances.c.version == bindparam("b_version"),
    ),
    columns=("current_state", "status", "version", "updated_at", "table_seq", "table_rows",
             "table_columns", "error"),
    json_columns=("table_columns", "error"),
)
_INSERT_EVENT = PreparedStatement(insert(schema.events), json_columns=("data",))


@contextmanager
def _reachable() -> Iterator[None]:
    """Turn "cannot reach or lock the database" into an error the client can act on."""
    try:
        yield
    except OperationalError as exc:
        raise ServiceUnavailable(
            "The database cannot be reached or stayed locked; retry shortly.",
            reason=type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
        ) from exc


class Store:
    """The database behind the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writers take SQLite's write lock at BEGIN; the option set once on an engine that
        # shares the pool rather than on each connection, which costs an event dispatch.
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        # SQLite has one writer at a time and makes the others poll for its lock with
        # sleeps of up to 100 ms; queueing this process's writers on a lock of our own
        # wakes each as soon as the previous one commits.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # With one writer at a time, SQLite's writers share one connection, held open:
        # checking a connection out of the pool and back in costs more than a fire's
        # statements.
        self._held: Connection | None = None
        self._disposed = False

    def create_schema(self) -> None:
        """Create or upgrade the schema to the latest migration, under a lock shared by
        every process that starts on this database."""
        migrations.upgrade(self.engine)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read-only transaction."""
        with _reachable(), self.engine.connect() as connection, connection.begin():
            yield Transaction(connection)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write_lock, _reachable(), self._writer_connection() as connection, \
                connection.begin():
            tx = Transaction(connection)
            yield tx
        for callback in tx.callbacks:
            callback()

    def _writer_connection(self) -> AbstractContextManager[Connection]:
        """SQLite: the held writer connection (under the write lock), opened again if it
        was lost; other databases, or once disposed: a connection from the pool, for this
        transaction (a late write after ``dispose`` leaves no connection open)."""
        if self.engine.dialect.name != "sqlite" or self._disposed:
            return self._writer.connect()
        held = self._held
        if held is None or held.closed or held.invalidated or held.in_transaction():
            # Never used, lost, or left mid-transaction by a failure: start afresh.
            if held is not None and not held.closed:
                held.close()
            held = self._held = self._writer.connect()
        return nullcontext(held)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        """Close every pooled connection. The store still works afterwards, as an engine
        does, but holds no connection open between writes."""
        with self._write_lock:
            self._disposed = True
            if self._held is not None:
                self._held.close()
                self._held = None
        self.engine.dispose()


class Transaction:
    """Reads and writes inside one database transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.callbacks: list[Callable[[], object]] = []

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the transaction has committed (not if it rolls back)."""
        self.callbacks.append(callback)

    # -- definitions --------------------------------------------------------------------

    def definition(self, definition_id: str, version: int | None = None) -> StoredDefinition | None:
        """One version of a definition, the latest when ``version`` is None."""
        table = schema.definitions
        query = select(table).where(table.c.id == definition_id)
        if version is None:
            query = query.order_by(table.c.version.desc()).limit(1)
        else:
            query = query.where(table.c.version == version)
        row = self.connection.execute(query).mappings().first()
        return _definition(row) if row else None

    def definition_versions(self, definition_id: str) -> list[int]:
        """Every stored version of a definition, oldest first."""
        table = schema.definitions
        query = select(table.c.version).where(table.c.id == definition_id).order_by(table.c.version)
        return list(self.connection.execute(query).scalars())

    def definition_hashes(self, definition_id: str) -> set[str]:
        """The content hashes of every stored version of a definition."""
        table = schema.definitions
        query = select(table.c.content_hash).where(table.c.id == definition_id)
        return set(self.connection.execute(query).scalars())

    def latest_definitions(self, *, after: str | None, limit: int) -> list[StoredDefinition]:
        """The latest version of each definition, ordered by id, after the id ``after``."""
        table = schema.definitions
        latest = (
            select(table.c.id, func.max(table.c.version).label("version"))
            .group_by(table.c.id)
            .subquery()
        )
        query = select(table).join(
            latest, (table.c.id == latest.c.id) & (table.c.version == latest.c.version)
        )
        if after is not None:
            query = query.where(table.c.id > after)
        query = query.order_by(table.c.id).limit(limit)
        return [_definition(row) for row in self.connection.execute(query).mappings()]

    def insert_definition(self, stored: StoredDefinition, name: str) -> bool:
        """Store a new definition version; False if that (id, version) was taken meanwhile."""
        try:
            with self.connection.begin_nested():
                self.connection.execute(insert(schema.definitions).values(
                    id=stored.id, version=stored.version, name=name, content=stored.content,
                    content_hash=stored.content_hash, warnings=stored.warnings,
                    created_at=stored.created_at,
                ))
        except IntegrityError:
            return False
        return True

    def count_definitions(self) -> int:
        """How many distinct definitions are stored."""
        query = select(func.count(func.distinct(schema.definitions.c.id)))
        return int(self.connection.execute(query).scalar_one())

    # -- instances ----------------------------------------------------------------------

    def instance(self, instance_id: str, *, lock: bool = False) -> Instance | None:
        """An instance's current snapshot; with ``lock``, its row stays locked until the
        transaction ends (``FOR UPDATE``: a concurrent locker waits, then reads what this
        one committed; SQLite's write transactions are serial already)."""
        query = _SELECT_INSTANCE_FOR_UPDATE if lock else _SELECT_INSTANCE
        row = query.first(self.connection, {"b_id": instance_id})
        return _instance(row) if row else None

    def start_request_hash(self, instance_id: str) -> str | None:
        """The digest of the request that started an instance, to recognise a retry."""
        table = schema.instances
        query = select(table.c.start_request_hash).where(table.c.id == instance_id)
        return self.connection.execute(query).scalar_one_or_none()

    def insert_instance(self, instance: Instance, request_hash: str) -> bool:
        """Store a new instance; False if its id was taken meanwhile (by a concurrent
        start: the transaction goes on, and reads the winner's row)."""
        try:
            with self.connection.begin_nested():
                self._insert_instance(instance, request_hash)
        except IntegrityError:
            return False
        return True

    def _insert_instance(self, instance: Instance, request_hash: str) -> None:
        self.connection.execute(insert(schema.instances).values(
            id=instance.id, definition_id=instance.definition_id,
            definition_version=instance.definition_version,
            current_state=instance.current_state, status=instance.status.value,
            version=instance.version, context=instance.context,
            inputs=instance.inputs or None, start_request_hash=request_hash,
            created_at=instance.created_at, updated_at=instance.updated_at,
            **_table_columns(instance),
        ))

    def update_instance(self, instance: Instance, *, expected_version: int) -> bool:
        """Write a changed snapshot if the stored one still has ``expected_version``."""
        changed = _UPDATE_INSTANCE.execute(self.connection, {
            "b_id": instance.id, "b_version": expected_version,
            "current_state": instance.current_state, "status": instance.status.value,
            "version": instance.version, "updated_at": instance.updated_at,
            **_table_columns(instance),
        })
        return changed == 1

    def list_instances(
        self,
        *,
        definition_id: str | None,
        state: str | None,
        status: str | None,
        after_pk: int | None,
        limit: int,
    ) -> list[tuple[int, Instance]]:
        """Instances in start order, filtered, after the key ``after_pk``; with their keys."""
        table = schema.instances
        query = select(table)
        if definition_id is not None:
            query = query.where(table.c.definition_id == definition_id)
        if state is not None:
            query = query.where(table.c.current_state == state)
        if status is not None:
            query = query.where(table.c.status == status)
        if after_pk is not None:
            query = query.where(table.c.pk > after_pk)
        query = query.order_by(table.c.pk).limit(limit)
        return [(row["pk"], _instance(row)) for row in self.connection.execute(query).mappings()]

    def count_instances_by_status(self) -> dict[str, int]:
        """How many instances are in each status."""
        table = schema.instances
        query = select(table.c.status, func.count()).group_by(table.c.status)
        return {status: int(count) for status, count in self.connection.execute(query)}

    # -- history ------------------------------------------------------------------------

    def append_events(self, items: list[Event]) -> None:
        """Append events to an instance's history."""
        for item in items:
            _INSERT_EVENT.execute(self.connection, {
                "instance_id": item.instance_id, "seq": item.seq, "type": item.type.value,
                "action_id": item.action_id, "from_state": item.from_state,
                "to_state": item.to_state, "at": item.at, "actor": item.actor,
                "data": item.data,
            })

    def last_event(self, instance_id: str, kind: EventType, *, at_or_before: int | None = None
                   ) -> Event | None:
        """The latest event of a kind (at or before a seq)."""
        table = schema.events
        query = select(table).where(table.c.instance_id == instance_id, table.c.type == kind.value)
        if at_or_before is not None:
            query = query.where(table.c.seq <= at_or_before)
        query = query.order_by(table.c.seq.desc()).limit(1)
        row = self.connection.execute(query).mappings().first()
        return _event(row) if row else None

    def history(
        self, instance_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """An instance's events in order, after ``after_seq``."""
        table = schema.events
        query = (
            select(table)
            .where(table.c.instance_id == instance_id, table.c.seq > after_seq)
            .order_by(table.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [_event(row) for row in self.connection.execute(query).mappings()]

    def event(self, instance_id: str, seq: int) -> Event | None:
        """One event of an instance's history."""
        table = schema.events
        query = select(table).where(table.c.instance_id == instance_id, table.c.seq == seq)
        row = self.connection.execute(query).mappings().first()
        return _event(row) if row else None

    # -- idempotency keys ---------------------------------------------------------------

    def idempotency_key(self, instance_id: str, key: str) -> tuple[str, Instance] | None:
        """``(action_id, instance as the first request left it)`` recorded for a key."""
        table = schema.idempotency_keys
        query = select(table.c.action_id, table.c.snapshot).where(
            table.c.instance_id == instance_id, table.c.key == key
        )
        row = self.connection.execute(query).first()
        return (row[0], _instance_from_snapshot(row[1])) if row else None

    def save_idempotency_key(
        self, key: str, *, action_id: str, result: Instance, now: int
    ) -> None:
        """Remember what a keyed request did, so a retry answers the same."""
        self.connection.execute(insert(schema.idempotency_keys).values(
            instance_id=result.id, key=key, action_id=action_id,
            snapshot=_snapshot(result), created_at=now,
        ))
