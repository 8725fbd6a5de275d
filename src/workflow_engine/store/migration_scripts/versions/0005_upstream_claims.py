"""Upstream claims: who is sending each enrichment request, and until when.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstream_jobs") as table:
        table.add_column(sa.Column("owner", sa.String(64)))
        table.add_column(sa.Column("claimed_until", sa.BigInteger))
        table.create_index("ix_upstream_jobs_task_id", ["task_id"])


def downgrade() -> None:
    with op.batch_alter_table("upstream_jobs") as table:
        table.drop_index("ix_upstream_jobs_task_id")
        table.drop_column("claimed_until")
        table.drop_column("owner")
