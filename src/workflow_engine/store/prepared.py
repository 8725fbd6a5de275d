"""Statements of the hot path (firing an action), compiled once per dialect and run on the
driver's cursor of the transaction's own connection.

A fire reads an instance, updates it and appends an event. Through SQLAlchemy's
``Connection.execute`` each of those statements also pays for the cache lookup of its
compiled form, parameter processing, an execution context, event dispatch and a result
object, which together cost several times what SQLite takes to run it. Here the SQL text
and the order of its parameters are worked out once; a call binds the values, runs the
statement and reads the rows, nothing more. The transaction, its connection and the
pool stay SQLAlchemy's.

What SQLAlchemy's column types did is done here for the only one that needs it: JSON
values are encoded as the JSON type encodes them (``None`` as JSON ``null``) and decoded
where the driver returns text (SQLite; psycopg decodes JSON itself). Driver errors are
wrapped as SQLAlchemy wraps them, so callers see the same exceptions as from any other
statement (an ``OperationalError`` for a lock not granted, an ``IntegrityError`` for a
duplicate key), and a lost connection is invalidated as SQLAlchemy invalidates it, so the
pool never hands it out again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["PreparedStatement"]


class PreparedStatement:
    """One statement, compiled on first use for each dialect."""

    def __init__(self, statement: ClauseElement, *, json_columns: Iterable[str] = (),
                 columns: Iterable[str] | None = None) -> None:
        self.statement = statement
        self.json_columns = frozenset(json_columns)
        # The columns an INSERT or UPDATE sets (all of them if None).
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def _sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
        # By driver too: its parameter style is part of the SQL text.
        flavour = f"{dialect.name}+{dialect.driver}"
        found = self._compiled.get(flavour)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
            assert isinstance(compiled, SQLCompiler), "a statement compiles to SQL"
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[flavour] = (compiled.string, order)
        return found

    def _run(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        sql, order = self._sql(connection.dialect)
        bound = {name: json.dumps(value) if name in self.json_columns else value
                 for name, value in values.items()}
        parameters: Any = [bound[name] for name in order] if order is not None else bound
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection in use has its driver connection"
        cursor = driver.cursor()
        error = connection.dialect.loaded_dbapi.Error
        try:
            cursor.execute(sql, parameters)
        except error as exc:
            lost = connection.dialect.is_disconnect(exc, driver, cursor)
            cursor.close()
            if lost and not connection.invalidated:
                connection.invalidate(exc)
            raise DBAPIError.instance(sql, parameters, exc, error,
                                      connection_invalidated=lost) from exc
        except BaseException:
            cursor.close()
            raise
        return cursor

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Run the statement; how many rows it changed."""
        cursor = self._run(connection, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(self, connection: Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run the query; its first row by column name, if any."""
        cursor = self._run(connection, values)
        try:
            row = cursor.fetchone()
            if row is None:
                return None
            names = [column[0] for column in cursor.description]
        finally:
            cursor.close()
        found = dict(zip(names, row, strict=True))
        if connection.dialect.name == "sqlite":  # JSON comes back as its text
            for name in self.json_columns.intersection(found):
                if isinstance(found[name], str):
                    found[name] = json.loads(found[name])
        return found
