"""Run inputs: parameters an instance's start gave its blocks, and how many of a running
block's rows have been sent upstream.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as table:
        table.add_column(sa.Column("inputs", sa.JSON))
    with op.batch_alter_table("block_runs") as table:
        table.add_column(sa.Column("rows_sent", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("block_runs") as table:
        table.drop_column("rows_sent")
    with op.batch_alter_table("instances") as table:
        table.drop_column("inputs")
