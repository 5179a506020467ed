"""Service intake: accepted webhook / event work, durable before the 2xx, and delivered webhook event ids.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intake",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        # record (re-fetch by id) | deleted | merged (ref merged into target) | email (find the lead by email)
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(320), nullable=False),
        sa.Column("target", sa.String(320), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),  # webhook | events
        sa.Column("correlation_id", sa.String(64), nullable=True),
        # pending → claimed (by a worker, until claimed_until) → done | failed
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_intake_status_id", "intake", ["status", "id"])
    op.create_table(
        "webhook_deliveries",
        # "<source>:<portal>:<eventId>": HubSpot may deliver an event more than once [crm-behaviour: HubSpot webhook deliveries].
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_intake_status_id", table_name="intake")
    op.drop_table("intake")
