"""Branches: a fork's per-branch progress and the branches cancelled on their own.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("block_runs") as table:
        table.add_column(sa.Column("branches", sa.JSON))
        table.add_column(sa.Column("cancelled_branches", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("block_runs") as table:
        table.drop_column("cancelled_branches")
        table.drop_column("branches")
