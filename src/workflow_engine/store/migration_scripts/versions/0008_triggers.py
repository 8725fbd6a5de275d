"""Triggers: webhook tokens and last fires, and the claims of schedule ticks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("definition_id", sa.String(64), primary_key=True),
        sa.Column("trigger_id", sa.String(64), primary_key=True),
        sa.Column("token_sha256", sa.String(64)),
        sa.Column("token_issued_at", sa.BigInteger),
        sa.Column("last_fired_at", sa.BigInteger),
        sa.Column("last_instance_id", sa.String(64)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "trigger_ticks",
        sa.Column("definition_id", sa.String(64), primary_key=True),
        sa.Column("trigger_id", sa.String(64), primary_key=True),
        sa.Column("tick_at", sa.BigInteger, primary_key=True),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_ticks")
    op.drop_table("triggers")
