"""Schema migrations (Alembic), applied at start under a lock.

Every server and worker calls :func:`upgrade` when it starts, so several may start at once
on an empty database: the first to take the lock creates or upgrades the schema, the
others wait for it and then find nothing left to do. On PostgreSQL the lock is a
transaction-scoped advisory lock, and the DDL runs in that same transaction; on SQLite
the write transaction (``BEGIN IMMEDIATE``) is the lock.

A database made before migrations existed (tables, but no ``alembic_version``) is
recognised and stamped at the first revision, then upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

__all__ = ["HEAD", "current_revision", "head_revision", "upgrade"]

SCRIPTS = Path(__file__).with_name("migration_scripts")
HEAD = "head"
MIGRATION_WAIT_MS = 120_000
# Any constant shared by every process of the engine: pg_advisory_xact_lock's key.
_LOCK_KEY = 0x776F726B666C6F77  # "workflow"
_BEFORE_MIGRATIONS = "0001"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The latest revision of the shipped migrations."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, "the shipped migrations have a head"
    return found


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Bring the schema to ``revision`` (the latest by default), waiting for any other
    process doing the same."""
    with engine.connect() as connection:
        connection.execution_options(sqlite_begin="IMMEDIATE")
        if connection.dialect.name == "sqlite":
            # Wait as long as another process's migration may take, not a request's while
            # (on the driver's connection: a statement through SQLAlchemy would begin the
            # transaction before BEGIN IMMEDIATE). The pool gets it back as it lent it.
            raw = connection.connection.dbapi_connection
            assert raw is not None
            usual = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
            try:
                _upgrade(connection, revision)
            finally:
                raw.execute(f"PRAGMA busy_timeout={int(usual)}")
        else:
            _upgrade(connection, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _LOCK_KEY})
        config = _config(connection)
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables and "instances" in tables:
            command.stamp(config, _BEFORE_MIGRATIONS)
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    with engine.connect() as connection:
        found: str | None = MigrationContext.configure(connection).get_current_revision()
        return found
