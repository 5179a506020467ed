"""Event aggregates: per-key scoring aggregates kept with the events, so scoring does not rescan every event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_aggregates",
        # the key events are stored under: a lower-case email or a lead key (crm:object_type:id)
        sa.Column("key", sa.String(320), primary_key=True),
        # CompiledScoring.signature the aggregates were built for; "" = stale (rebuild from the events)
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    # Every key that already has events starts stale (rebuilt when its lead is next scored): from here on a
    # key without a row has no events.
    empty = "CAST('{}' AS JSON)" if op.get_bind().dialect.name == "postgresql" else "'{}'"
    op.execute(sa.text(f"INSERT INTO event_aggregates (key, signature, data) SELECT k, '', {empty} FROM (SELECT DISTINCT lead_key AS k FROM events) AS keyed"))


def downgrade() -> None:
    op.drop_table("event_aggregates")
