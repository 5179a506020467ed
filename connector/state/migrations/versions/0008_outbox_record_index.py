"""An index on each record's outbox rows, so a claim finds a record's oldest pending write without a scan.

Issue 18: claiming the oldest pending write per record grouped every pending row of the CRM on each claim,
so claims grew with the backlog (quadratic over a 100,000-lead backfill); with this index each candidate
row checks for an older pending write of its record with one index lookup. Reading a batch's pending
writes (`Outbox.pending_writes`) looks its records up through it too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_record", "outbox", ["crm", "object_type", "record_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_record", table_name="outbox")
