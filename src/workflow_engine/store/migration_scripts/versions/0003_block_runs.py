"""Block runs: who runs each block, its lease and its progress, in the database.

Runs left running by a server of an older revision are recorded as pending, so the next
worker claims them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "block_runs",
        sa.Column("instance_id", sa.String(64), sa.ForeignKey("instances.id"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("block", sa.String(64)),
        sa.Column("worker", sa.String(200)),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("rows_done", sa.BigInteger, nullable=False),
        sa.Column("rows_total", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger),
    )
    op.create_index("ix_block_runs_status", "block_runs", ["status", "lease_until"])
    op.execute(
        "INSERT INTO block_runs (instance_id, seq, status, rows_done, attempts, created_at) "
        "SELECT id, version, 'pending', 0, 0, updated_at FROM instances "
        "WHERE status = 'running'"
    )


def downgrade() -> None:
    op.drop_index("ix_block_runs_status", "block_runs")
    op.drop_table("block_runs")
