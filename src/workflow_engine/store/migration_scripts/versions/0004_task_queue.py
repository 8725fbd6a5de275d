"""The task queue's tables and functions (procrastinate), on PostgreSQL only.

Procrastinate ships its schema and, with each version that changes it, delta scripts: a
new revision here applies those when the pinned version moves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    # Its own SQL, functions and all: one script, sent as it is (no parameters, so no
    # placeholders to parse), in the migration's transaction.
    driver = connection.connection.driver_connection
    assert driver is not None, "a migration runs on an open connection"
    driver.execute(SchemaManager.get_schema())


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
        "procrastinate_jobs, procrastinate_workers CASCADE")
