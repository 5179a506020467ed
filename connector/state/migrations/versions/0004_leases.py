"""Leases: named, expiring claims (one poller per CRM object across replicas).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        # e.g. "poll:hubspot:contacts:changed"
        sa.Column("name", sa.String(255), primary_key=True),
        # "<host>:<pid>:<random>" of the process holding it
        sa.Column("holder", sa.String(200), nullable=False),
        # a holder that stops renewing (killed) loses the lease at this time
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
