"""The state store's tables: the query-side mirror of connector/state/migrations (a test compares the two)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"the state store needs timezone-aware UTC datetimes, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    # The text SQLAlchemy's SQLite DATETIME stores ("%Y-%m-%d %H:%M:%S.%f", microseconds always written), which its
    # result processor parses back and SQLite compares as text; isoformat is that, made in C, before its "+00:00".
    return None if value is None else _utc(value).isoformat(" ", "microseconds")[:26]


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite has no time zones, so it stores naive UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        # SQLite: straight to DATETIME's stored text in one step, not through process_bind_param and then DATETIME's
        # own %-formatting (issue 18 profile: a tenth of a routing batch's CPU).
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = UtcDateTime()
_KEY = sa.String(320)
metadata = sa.MetaData()

cursors_t = sa.Table(
    "cursors",
    metadata,
    sa.Column("crm", sa.String(32), primary_key=True),
    sa.Column("object_type", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(32), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)
lead_states_t = sa.Table(
    "lead_states",
    metadata,
    sa.Column("lead_key", _KEY, primary_key=True),
    sa.Column("routed_owner_id", sa.String(64), nullable=True, index=True),
    sa.Column("routed_rep", sa.String(320), nullable=True),
    sa.Column("routed_at", _TS, nullable=True),
    sa.Column("written", sa.JSON(), nullable=False),
    sa.Column("written_at", _TS, nullable=True),
    sa.Column("reassignments", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("sla_due_at", _TS, nullable=True, index=True),
    sa.Column("initial_status", sa.String(255), nullable=True),
)
decisions_t = sa.Table(
    "decisions",
    metadata,
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
    sa.Index("ix_decisions_lead_key", "lead_key", "id"),
)
routing_locks_t = sa.Table(
    "routing_locks",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
)
routing_counters_t = sa.Table(
    "routing_counters",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(320), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)
outbox_t = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(64), nullable=False),
    sa.Column("patch", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("claimed_until", _TS, nullable=True),
    sa.Index("ix_outbox_crm_status", "crm", "status", "id"),
    # a record's pending writes, oldest first: the claim's "no older pending write" check (migration 0008)
    sa.Index("ix_outbox_record", "crm", "object_type", "record_id", "status", "id"),
)
dead_letters_t = sa.Table(
    "dead_letters",
    metadata,
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
    sa.Index("ix_dead_letters_status", "status", "id"),
    sa.Index("ix_dead_letters_record", "crm", "object_type", "record_id"),
)
events_t = sa.Table(
    "events",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("lead_key", _KEY, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("occurred_at", _TS, nullable=False),
    sa.Column("properties", sa.JSON(), nullable=False),
    sa.Index("ux_events_event_id", "event_id", unique=True),
    sa.Index("ix_events_lead_key", "lead_key", "occurred_at"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
)
runs_t = sa.Table(
    "runs",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.Column("created_at", _TS, nullable=False, index=True),
)
rate_limits_t = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("recent_calls", sa.JSON(), nullable=False),
    sa.Column("blocked_until_us", sa.BigInteger(), nullable=False, server_default="0"),
)
daily_budgets_t = sa.Table(
    "daily_budgets",
    metadata,
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("used", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("observed_limit", sa.BigInteger(), nullable=True),
)

intake_t = sa.Table(
    "intake",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ref", sa.String(320), nullable=False),
    sa.Column("target", sa.String(320), nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", _TS, nullable=True),
    sa.Column("accepted_at", _TS, nullable=False),
    sa.Column("finished_at", _TS, nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_intake_status_id", "status", "id"),
)
leases_t = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
    sa.Column("acquired_at", _TS, nullable=False),
)
event_aggregates_t = sa.Table(
    "event_aggregates",
    metadata,
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
)
waiting_leads_t = sa.Table(
    "waiting_leads",
    metadata,
    sa.Column("lead_key", _KEY, primary_key=True),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("since", _TS, nullable=False),
    sa.Column("checked_at", _TS, nullable=False),
    sa.Column("cause", sa.String(32), nullable=True),
    sa.Column("pool", sa.String(255), nullable=True),
    sa.Column("next_available_at", _TS, nullable=True),
    sa.Column("next_available_rep", sa.String(320), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Index("ix_waiting_leads_crm", "crm", "since"),
)
webhook_deliveries_t = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    sa.Column("received_at", _TS, nullable=False),
    sa.Index("ix_webhook_deliveries_received_at", "received_at"),
)
notifications_t = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(700), nullable=False, unique=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("lead_key", _KEY, nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("claimed_until", _TS, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("sent_at", _TS, nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_notifications_due", "status", "next_attempt_at"),
)
