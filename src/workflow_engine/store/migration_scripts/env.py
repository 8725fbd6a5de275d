"""Alembic's environment: migrations run on the connection that ``store.migrations``
hands over, inside its transaction and under its lock."""

from __future__ import annotations

from alembic import context

from workflow_engine.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
