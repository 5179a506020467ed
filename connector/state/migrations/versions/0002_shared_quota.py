"""Shared quota: one rate-limit window and one daily budget row per CRM account, for every replica.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01
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
        "rate_limits",
        sa.Column("account", sa.String(255), primary_key=True),
        # [[epoch_microseconds, calls], ...] inside the current sliding window: exact, and small
        # (one entry per acquire, pruned on every acquire). Integer microseconds, so a wait computed
        # from them is exactly the wait a clock can sleep (no float residue that never expires).
        sa.Column("recent_calls", sa.JSON(), nullable=False),
        sa.Column("blocked_until_us", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "daily_budgets",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("observed_limit", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("daily_budgets")
    op.drop_table("rate_limits")
