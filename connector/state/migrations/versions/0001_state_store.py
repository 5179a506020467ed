"""State store: cursors, lead state, decisions, routing counters, outbox, dead letters, events, runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_KEY = sa.String(320)  # lead keys and emails (RFC 5321 caps an address at 320 characters)


def upgrade() -> None:
    op.create_table(
        "cursors",
        sa.Column("crm", sa.String(32), primary_key=True),
        sa.Column("object_type", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "lead_states",
        sa.Column("lead_key", _KEY, primary_key=True),
        sa.Column("routed_owner_id", sa.String(64), nullable=True),
        sa.Column("routed_rep", sa.String(320), nullable=True),
        sa.Column("routed_at", _TS, nullable=True),
        sa.Column("written", sa.JSON(), nullable=False),
        sa.Column("written_at", _TS, nullable=True),
        sa.Column("reassignments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sla_due_at", _TS, nullable=True),
        sa.Column("initial_status", sa.String(255), nullable=True),
    )
    op.create_index("ix_lead_states_routed_owner_id", "lead_states", ["routed_owner_id"])
    op.create_index("ix_lead_states_sla_due_at", "lead_states", ["sla_due_at"])
    op.create_table(
        "decisions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("lead_key", _KEY, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("rep", sa.String(320), nullable=True),
        sa.Column("rule", sa.String(255), nullable=True),
        sa.Column("pool", sa.String(255), nullable=True),
        sa.Column("strategy", sa.String(64), nullable=True),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(32), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_decisions_lead_key", "decisions", ["lead_key", "id"])
    op.create_table(
        "routing_locks",
        sa.Column("scope", sa.String(255), primary_key=True),
    )
    op.create_table(
        "routing_counters",
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("patch", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        # A replica's lease on a pending write, so two replicas never send the same write.
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", _TS, nullable=True),
    )
    op.create_index("ix_outbox_crm_status", "outbox", ["crm", "status", "id"])
    op.create_table(
        "dead_letters",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(255), nullable=True),
        sa.Column("code", sa.String(128), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen", _TS, nullable=False),
        sa.Column("last_seen", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_changed_at", _TS, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_dead_letters_status", "dead_letters", ["status", "id"])
    op.create_index("ix_dead_letters_record", "dead_letters", ["crm", "object_type", "record_id"])
    op.create_table(
        "events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("lead_key", _KEY, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
    )
    # NULL event ids never collide (both SQLite and PostgreSQL treat NULLs as distinct).
    op.create_index("ux_events_event_id", "events", ["event_id"], unique=True)
    op.create_index("ix_events_lead_key", "events", ["lead_key", "occurred_at"])
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_table(
        "runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])


def downgrade() -> None:
    for table in ("runs", "events", "dead_letters", "outbox", "routing_counters", "routing_locks", "decisions", "lead_states", "cursors"):
        op.drop_table(table)
