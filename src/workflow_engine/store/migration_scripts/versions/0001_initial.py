"""The tables as they were before migrations: definitions, instances, events,
idempotency keys and upstream jobs.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(ID), nullable=False, unique=True),
        sa.Column("definition_id", sa.String(ID), nullable=False),
        sa.Column("definition_version", sa.Integer, nullable=False),
        sa.Column("current_state", sa.String(ID), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("table_seq", sa.Integer),
        sa.Column("table_rows", sa.BigInteger),
        sa.Column("table_columns", sa.JSON),
        sa.Column("error", sa.JSON),
        sa.Column("start_request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_instances_definition", "instances", ["definition_id", "pk"])
    op.create_index("ix_instances_status", "instances", ["status", "pk"])
    op.create_table(
        "events",
        sa.Column("instance_id", sa.String(ID), sa.ForeignKey("instances.id"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("action_id", sa.String(ID)),
        sa.Column("from_state", sa.String(ID)),
        sa.Column("to_state", sa.String(ID), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("data", sa.JSON),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("instance_id", sa.String(ID), sa.ForeignKey("instances.id"),
                  primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("action_id", sa.String(ID), nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "upstream_jobs",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("submitted_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("upstream_jobs", "idempotency_keys", "events", "instances", "definitions"):
        op.drop_table(table)
