"""Rate budgets shared by every process: one row per API key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
