"""Waiting leads: why each lead that waits for a rep waits, since when, and who is free first, when.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiting_leads",
        # crm:object_type:id; the row goes when the lead is routed (or closes)
        sa.Column("lead_key", sa.String(320), primary_key=True),
        sa.Column("crm", sa.String(32), nullable=False),
        # the first wait decision of this wait, kept while the lead goes on waiting
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        # the latest wait decision, which wrote the columns below
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        # a models.WaitCause: outside_hours, out_of_office, holiday, at_capacity, inactive, no_one_eligible
        sa.Column("cause", sa.String(32), nullable=True),
        sa.Column("pool", sa.String(255), nullable=True),
        # when the first candidate becomes available, and who (NULL: no known time, e.g. an open-leads cap)
        sa.Column("next_available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_available_rep", sa.String(320), nullable=True),
        # the decision's "waiting: ..." sentence
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_waiting_leads_crm", "waiting_leads", ["crm", "since"])


def downgrade() -> None:
    op.drop_index("ix_waiting_leads_crm", table_name="waiting_leads")
    op.drop_table("waiting_leads")
