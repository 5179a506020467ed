"""The state store: cursors, lead state, decisions, routing counters, outbox, dead letters, events, runs, quota rows."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from connector.core.errors import ConfigError, ConfigProblem, StoreLockedError
from connector.core.models import Event, FieldDecision, Patch, WriteResult

T = TypeVar("T")
# (signature, stored data, new events) -> the updated data, or None: rebuild from every event (see Store.add_events)
AggregateFold = Callable[[str, Any, Sequence[Event]], "Mapping[str, Any] | None"]

DecisionKind = Literal["route", "reassign", "score", "keep"]
DECISION_KINDS: tuple[str, ...] = ("route", "reassign", "score", "keep")
DeadLetterStatus = Literal["open", "retrying", "discarded", "resolved"]
DEAD_LETTER_STATUSES: tuple[str, ...] = ("open", "retrying", "discarded", "resolved")

# How long an SQLite writer waits for another process's write transaction before giving up.
# Routing and limiter transactions are milliseconds long, so 30 s only runs out when a process hangs.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Two replicas starting at once against a fresh PostgreSQL must not both run the DDL.
_MIGRATION_LOCK_KEY = 0x636F6E6E  # "conn"
# SQLite caps bound parameters per statement (32,766 since 3.32, 999 before); stay well under both.
_CHUNK = 500
_MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class LeadState:
    """What the connector decided and wrote for one lead."""

    lead_key: str
    routed_owner_id: str | None = None
    routed_rep: str | None = None
    routed_at: datetime | None = None
    written: Mapping[str, Any] = field(default_factory=dict)
    written_at: datetime | None = None
    reassignments: int = 0
    sla_due_at: datetime | None = None
    initial_status: str | None = None


@dataclass(frozen=True)
class WaitingLead:
    """A lead waiting for an available rep: since when, why, and who is free first, when (None: not known)."""

    lead_key: str
    crm: str
    since: datetime
    checked_at: datetime
    cause: str | None
    pool: str | None
    next_available_at: datetime | None
    next_available_rep: str | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    """One append-only line of the decision log; id is None until stored."""

    id: int | None = None
    lead_key: str
    kind: str  # one of DECISION_KINDS
    owner_id: str | None = None
    rep: str | None = None
    rule: str | None = None
    pool: str | None = None
    strategy: str | None = None
    arm: str | None = None
    score: float | None = None
    grade: str | None = None
    model: str | None = None
    explanation: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    """A pending write, committed together with the decision that caused it."""

    id: int
    patch: Patch
    created_at: datetime
    attempts: int
    # True when another claim came first (a worker that died mid-write, or a failed attempt): the CRM
    # may already hold the write, or a person may have changed the record since the decision.
    reclaimed: bool = False


@dataclass(frozen=True)
class DeadLetter:
    """A record the connector gave up on, with where and why."""

    id: int
    crm: str
    object_type: str
    record_id: str
    field: str | None
    code: str | None
    message: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    status: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class CursorRow:
    crm: str
    object_type: str
    stream: str
    value: str
    updated_at: datetime


@dataclass(frozen=True)
class LimiterState:
    """One account's shared sliding window: (epoch microseconds, calls) pairs, and a 429 block."""

    recent_calls: tuple[tuple[int, int], ...] = ()
    blocked_until_us: int = 0


@dataclass(frozen=True)
class BudgetState:
    """One account's calls counted for one budget day, plus the CRM's own limit when it told us."""

    day: str
    used: int = 0
    observed_limit: int | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds a named lease, and until when (a holder that stops renewing loses it then)."""

    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime


# SQLite files this process holds the one-process lock of: path -> (open lock file descriptor, holders).
_PROCESS_LOCKS: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True)
class IntakeRequest:
    """Work accepted by the service, to be written to the intake table before the 2xx.

    kind: "record" (re-fetch ref by id), "deleted", "merged" (ref merged into target), "email"
    (find the lead by the email in ref) or "forget" (erase the lead's personal data: a privacy
    deletion). source: "webhook" or "events".
    """

    crm: str
    object_type: str
    kind: str
    ref: str
    target: str | None = None
    source: str = "webhook"
    correlation_id: str | None = None


@dataclass(frozen=True)
class IntakeItem:
    """A claimed intake row."""

    id: int
    crm: str
    object_type: str
    kind: str
    ref: str
    target: str | None
    source: str
    correlation_id: str | None
    accepted_at: datetime
    attempts: int


class _UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite has no time zones, so it stores naive UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the state store needs timezone-aware UTC datetimes, got naive {value.isoformat()}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The query-side mirror of connector/state/migrations (tests compare the two, so they cannot drift).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = _UtcDateTime()
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


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a JSON column of the state store")


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def patch_to_json(patch: Patch) -> dict[str, Any]:
    """A Patch as plain JSON data (FieldDecision by value); `patch_from_json` reverses it exactly."""
    return {
        "crm": patch.crm,
        "object_type": patch.object_type,
        "record_id": patch.record_id,
        "changes": dict(patch.changes),
        "current": dict(patch.current),
        "reasons": dict(patch.reasons),
        "decisions": {k: FieldDecision(v).value for k, v in patch.decisions.items()},
    }


def patch_from_json(data: Mapping[str, Any]) -> Patch:
    """Rebuild a Patch from `patch_to_json` output (an outbox row or a dead letter's payload)."""
    return Patch(
        crm=data["crm"],
        object_type=data["object_type"],
        record_id=data["record_id"],
        changes=dict(data.get("changes", {})),
        current=dict(data.get("current", {})),
        reasons=dict(data.get("reasons", {})),
        decisions={k: FieldDecision(v) for k, v in data.get("decisions", {}).items()},
    )


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lead_state(row: sa.Row[Any]) -> LeadState:
    return LeadState(
        lead_key=row.lead_key,
        routed_owner_id=row.routed_owner_id,
        routed_rep=row.routed_rep,
        routed_at=row.routed_at,
        written=dict(row.written or {}),
        written_at=row.written_at,
        reassignments=row.reassignments,
        sla_due_at=row.sla_due_at,
        initial_status=row.initial_status,
    )


def _dead_letter(row: sa.Row[Any]) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        crm=row.crm,
        object_type=row.object_type,
        record_id=row.record_id,
        field=row.field,
        code=row.code,
        message=row.message,
        attempts=row.attempts,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        status=row.status,
        payload=dict(row.payload or {}),
    )


def _decision(row: sa.Row[Any]) -> DecisionRecord:
    return DecisionRecord(
        id=row.id,
        lead_key=row.lead_key,
        kind=row.kind,
        owner_id=row.owner_id,
        rep=row.rep,
        rule=row.rule,
        pool=row.pool,
        strategy=row.strategy,
        arm=row.arm,
        score=row.score,
        grade=row.grade,
        model=row.model,
        explanation=dict(row.explanation or {}),
        created_at=row.created_at,
    )


def _event(row: sa.Row[Any]) -> Event:
    return Event(
        lead_key=row.lead_key,
        name=row.name,
        occurred_at=row.occurred_at,
        properties=dict(row.properties or {}),
        kind=row.kind,
        event_id=row.event_id,
    )


def _decision_values(rec: DecisionRecord) -> dict[str, Any]:
    if rec.kind not in DECISION_KINDS:
        raise ValueError(f"decision kind must be one of {', '.join(DECISION_KINDS)}, got {rec.kind!r} (lead {rec.lead_key})")
    return {
        "lead_key": rec.lead_key,
        "kind": rec.kind,
        "owner_id": rec.owner_id,
        "rep": rec.rep,
        "rule": rec.rule,
        "pool": rec.pool,
        "strategy": rec.strategy,
        "arm": rec.arm,
        "score": rec.score,
        "grade": rec.grade,
        "model": rec.model,
        "explanation": dict(rec.explanation),
        "created_at": rec.created_at,
    }


def _outbox_values(patch: Patch, now: datetime) -> dict[str, Any]:
    return {
        "crm": patch.crm,
        "object_type": patch.object_type,
        "record_id": patch.record_id,
        "patch": patch_to_json(patch),
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _store_problem(message: str) -> ConfigError:
    return ConfigError([ConfigProblem("store.url", message)])


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (its legacy mode never BEGINs before SELECT), so
    # `_sqlite_on_begin` decides between DEFERRED reads and IMMEDIATE writes.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    # WAL lets readers (CLI, /healthz) run while a sync writes; fine for a local file.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: a DEFERRED transaction that reads, then writes, gets
    # SQLITE_BUSY without waiting when another process wrote in between.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _create_engine(url_text: str) -> sa.Engine:
    try:
        url = sa.make_url(url_text)
    except sa.exc.ArgumentError as exc:
        raise _store_problem(f"not a database URL ({exc}); use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB") from exc
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        # A bare postgresql:// would pick psycopg2, which the connector does not ship; psycopg 3 is the driver.
        url = url.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise _store_problem(f"unsupported database {backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    try:
        if backend == "sqlite":
            engine = sa.create_engine(url, json_serializer=_dumps, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            sa.event.listen(engine, "begin", _sqlite_on_begin)
        else:
            engine = sa.create_engine(url, json_serializer=_dumps, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise _store_problem(f"cannot use {url.drivername}: {exc}") from exc
    return engine


@contextmanager
def _first_open_lock(engine: sa.Engine) -> Iterator[None]:
    """SQLite: one opener at a time per file, so two processes creating a fresh store don't collide.

    Switching a new file to WAL and migrating it both need the write lock; SQLite answers a second
    connection doing the same at that moment with "database is locked" instead of waiting.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    try:
        fd = os.open(str(Path(database).resolve()) + ".open-lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # e.g. a missing directory: connecting fails next with the message that names it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _busy_code(exc: sa.exc.OperationalError) -> bool:
    # sqlite3 exposes the (extended) result code; the low byte is the primary code.
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@dataclass
class _Routed:
    """set_routed calls on one lead within a transaction, folded in call order."""

    owner_id: str | None
    rep: str | None
    at: datetime
    sla_due_at: datetime | None
    initial_status: str | None
    reassignments: int


class RoutingTxn:
    """Everything routing changes for one batch; valid only inside `Store.routing_transaction`.

    Writes are buffered and flushed in bulk (a few statements per batch, not several per lead) before
    the transaction commits; an exception discards them with the rollback. Reads flush the writes they
    could see first, so a transaction always reads its own writes.
    """

    def __init__(self, store: Store, conn: sa.Connection, scopes: Sequence[str] = ()) -> None:
        self._store = store
        self._conn = conn
        self._scopes = tuple(scopes)
        # Counters of every locked scope, read in one query at the first counters() call; dropped by add/set.
        self._read: dict[str, dict[str, int]] | None = None
        # (scope, key) -> (is_set, value): an add after a set stays a set; adds sum up.
        self._counters: dict[tuple[str, str], tuple[bool, int]] = {}
        self._decisions: list[dict[str, Any]] = []
        self._routed: dict[str, _Routed] = {}
        self._waiting: dict[str, dict[str, Any] | None] = {}  # lead key -> its waiting row, or None: no longer waiting
        self._remembered: list[tuple[str, Mapping[str, Any], datetime]] = []
        self._outbox: list[dict[str, Any]] = []
        self._ids: dict[str, _IdAllocator] = {}

    def counters(self, scope: str) -> dict[str, int]:
        """Counters of one scope, e.g. "rr:pool-a" -> {rep_email: turns handed out}."""
        self._flush_counters()
        if self._read is None and scope in self._scopes:
            # Callers read the scopes they locked one after another: one query answers them all.
            self._read = {s: {} for s in self._scopes}
            query = sa.select(routing_counters_t).where(routing_counters_t.c.scope.in_(self._scopes))
            for row in self._conn.execute(query):
                self._read[row.scope][row.key] = int(row.value)
        if self._read is not None and scope in self._read:
            return dict(self._read[scope])
        rows = self._conn.execute(
            sa.select(routing_counters_t.c.key, routing_counters_t.c.value).where(routing_counters_t.c.scope == scope)
        )
        return {row.key: int(row.value) for row in rows}

    def counter_values(self, scope: str, keys: Sequence[str]) -> dict[str, int]:
        """Only these keys of a scope (absent keys are left out): for scopes too large to read whole."""
        self._flush_counters()
        out: dict[str, int] = {}
        for chunk in _chunks(sorted(set(keys))):
            query = sa.select(routing_counters_t.c.key, routing_counters_t.c.value).where(
                routing_counters_t.c.scope == scope, routing_counters_t.c.key.in_(chunk),
            )
            out.update({row.key: int(row.value) for row in self._conn.execute(query)})
        return out

    def add(self, scope: str, key: str, delta: int) -> None:
        self._read = None
        is_set, value = self._counters.get((scope, key), (False, 0))
        self._counters[(scope, key)] = (is_set, value + delta)

    def set(self, scope: str, key: str, value: int) -> None:
        self._read = None
        self._counters[(scope, key)] = (True, value)

    def lead_states(self, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        """Lead states read inside the lock, so a concurrent worker's committed routing is seen."""
        self._flush_lead_states()
        return self._store._lead_states(self._conn, lead_keys)

    def remember_values(self, lead_key: str, values: Mapping[str, Any], now: datetime) -> None:
        """Record CRM values the connector found already as it wanted them, as if it had written them.

        They become the baseline of the owner and stage locks: a later change by anyone else is then
        recognised as a person's choice [architecture: A person's choice wins], even though the connector never wrote the field.
        """
        self._remembered.append((lead_key, dict(values), now))

    def record_decision(self, rec: DecisionRecord | None = None, /, **fields: Any) -> int:
        """Append one decision (a DecisionRecord, its id ignored, or its fields as keywords); returns its id."""
        if rec is None:
            rec = DecisionRecord(**fields)
        elif fields:
            raise TypeError("record_decision takes a DecisionRecord or keyword fields, not both")
        values = _decision_values(rec)
        values["id"] = self._next_id(decisions_t)
        self._decisions.append(values)
        return int(values["id"])

    def set_routed(
        self,
        lead_key: str,
        owner_id: str | None,
        rep: str | None,
        now: datetime,
        *,
        sla_due_at: datetime | None = None,
        initial_status: str | None = None,
        reassignment: bool = False,
    ) -> None:
        """Record the lead's owner; a reassignment counts up. initial_status is kept once known."""
        earlier = self._routed.get(lead_key)
        self._routed[lead_key] = _Routed(
            owner_id=owner_id,
            rep=rep,
            at=now,
            sla_due_at=sla_due_at,
            initial_status=initial_status if initial_status is not None or earlier is None else earlier.initial_status,
            reassignments=(earlier.reassignments if earlier is not None else 0) + (1 if reassignment else 0),
        )

    def set_waiting(
        self, lead_key: str, crm: str, now: datetime, *, cause: str | None, pool: str | None,
        next_available_at: datetime | None, next_available_rep: str | None, reason: str,
    ) -> None:
        """Record that the lead waits for a rep, why and until when; `since` stays that of the first wait."""
        self._waiting[lead_key] = {
            "lead_key": lead_key, "crm": crm, "since": now, "checked_at": now, "cause": cause, "pool": pool,
            "next_available_at": next_available_at, "next_available_rep": next_available_rep, "reason": reason,
        }

    def clear_waiting(self, lead_key: str) -> None:
        """The lead no longer waits (routed, or closed)."""
        self._waiting[lead_key] = None

    def enqueue(self, patch: Patch, now: datetime) -> int:
        """Queue a write; it commits with the decision that caused it (or not at all)."""
        values = _outbox_values(patch, now)
        values["id"] = self._next_id(outbox_t)
        self._outbox.append(values)
        return int(values["id"])

    def pending_writes(self, lead_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per lead key: the field values of its writes still in the outbox (oldest first, later ones win)."""
        self._flush_outbox()
        return self._store._pending_writes(self._conn, lead_keys)

    def flush(self) -> None:
        """Write everything buffered (Store.routing_transaction calls it before committing)."""
        self._flush_counters()
        if self._decisions:
            rows, self._decisions = self._decisions, []
            self._conn.execute(sa.insert(decisions_t), rows)
        self._flush_lead_states()
        self._flush_waiting()
        self._flush_outbox()

    def _next_id(self, table: sa.Table) -> int:
        allocator = self._ids.get(table.name)
        if allocator is None:
            allocator = self._ids[table.name] = _IdAllocator(self._store.dialect, table)
        return allocator.next(self._conn)

    def _flush_counters(self) -> None:
        if not self._counters:
            return
        pending, self._counters = self._counters, {}
        for is_set in (False, True):
            rows = [{"scope": s, "key": k, "value": v} for (s, k), (flag, v) in pending.items() if flag is is_set]
            for chunk in _chunks(rows):
                stmt = self._store._insert(routing_counters_t).values(list(chunk))
                value = stmt.excluded.value if is_set else routing_counters_t.c.value + stmt.excluded.value
                self._conn.execute(stmt.on_conflict_do_update(index_elements=["scope", "key"], set_={"value": value}))

    def _flush_lead_states(self) -> None:
        if self._routed:
            routed, self._routed = self._routed, {}
            rows: list[dict[str, Any]] = [
                {
                    "lead_key": key, "routed_owner_id": r.owner_id, "routed_rep": r.rep, "routed_at": r.at, "written": {},
                    "reassignments": r.reassignments, "sla_due_at": r.sla_due_at, "initial_status": r.initial_status,
                }
                for key, r in sorted(routed.items())  # one lock order for every writer of lead_states
            ]
            for chunk in _chunks(rows, 200):
                stmt = self._store._insert(lead_states_t).values(list(chunk))
                self._conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["lead_key"],
                        set_={
                            "routed_owner_id": stmt.excluded.routed_owner_id,
                            "routed_rep": stmt.excluded.routed_rep,
                            "routed_at": stmt.excluded.routed_at,
                            "reassignments": lead_states_t.c.reassignments + stmt.excluded.reassignments,
                            "sla_due_at": stmt.excluded.sla_due_at,
                            "initial_status": sa.func.coalesce(stmt.excluded.initial_status, lead_states_t.c.initial_status),
                        },
                    )
                )
        if self._remembered:
            remembered, self._remembered = self._remembered, []
            self._store._merge_values(self._conn, remembered)

    def _flush_waiting(self) -> None:
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, {}
        gone = sorted(key for key, row in waiting.items() if row is None)
        for chunk in _chunks(gone):
            self._conn.execute(sa.delete(waiting_leads_t).where(waiting_leads_t.c.lead_key.in_(chunk)))
        rows = [row for _, row in sorted(waiting.items()) if row is not None]
        for chunk in _chunks(rows, 200):
            stmt = self._store._insert(waiting_leads_t).values(list(chunk))
            self._conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["lead_key"],
                    set_={c: stmt.excluded[c] for c in ("crm", "checked_at", "cause", "pool", "next_available_at", "next_available_rep", "reason")},
                )
            )

    def _flush_outbox(self) -> None:
        if self._outbox:
            rows, self._outbox = self._outbox, []
            self._conn.execute(sa.insert(outbox_t), rows)


class _IdAllocator:
    """Ids for rows a RoutingTxn buffers, handed out before the row is inserted.

    SQLite: the transaction holds the file's write lock (BEGIN IMMEDIATE), so max(id)+1 onwards is
    what SQLite itself would assign. PostgreSQL: blocks from the table's own sequence, shared with
    every other writer; ids a transaction leaves unused are gaps, as after any rollback.
    """

    def __init__(self, dialect: str, table: sa.Table) -> None:
        self._dialect = dialect
        self._table = table
        self._free: deque[int] = deque()
        self._next: int | None = None  # SQLite
        self._block = 128  # PostgreSQL: doubles per block, so a batch of n rows costs about log2(n / 128) queries

    def next(self, conn: sa.Connection) -> int:
        if self._dialect != "postgresql":
            if self._next is None:
                self._next = int(conn.scalar(sa.select(sa.func.max(self._table.c.id))) or 0) + 1
            value, self._next = self._next, self._next + 1
            return value
        if not self._free:
            query = sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
            self._free = deque(sorted(int(v) for v in conn.execute(query, {"table": self._table.name, "n": self._block}).scalars()))
            self._block = min(self._block * 2, 4096)
        return self._free.popleft()


class Store:
    """One engine over SQLite or PostgreSQL; the only module that talks SQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self.dialect: str = engine.dialect.name
        self.url: str = engine.url.render_as_string(hide_password=True)
        self._process_lock: str | None = None

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect and (by default) upgrade the schema to head; a bad or unreachable URL is a ConfigError on store.url."""
        engine = _create_engine(url)
        store = cls(engine)
        try:
            with _first_open_lock(engine):
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                if migrate:
                    store._migrate()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise _store_problem(f"cannot open the state store at {store.url}: {reason}") from exc
        except CommandError as exc:
            engine.dispose()
            raise _store_problem(
                f"the state store at {store.url} has a schema this connector version does not know ({exc}); "
                "run the newer connector version or point [store] url at another database"
            ) from exc
        return store

    def _migrate(self) -> None:
        cfg = Config()
        # configparser interpolates '%' in option values.
        cfg.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        cfg.set_main_option("path_separator", "os")
        with self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def close(self) -> None:
        self._release_process()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the database answers (for /healthz)."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError:
            return False
        return True

    def _insert(self, table: sa.Table) -> Any:
        # Both dialects spell upserts as INSERT ... ON CONFLICT; SQLAlchemy exposes them per dialect.
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite_dialect.insert(table)

    @contextmanager
    def _translate_locked(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as exc:
            if _busy_code(exc):
                raise StoreLockedError(
                    f"the state store {self.url} stayed locked by another process for {SQLITE_BUSY_TIMEOUT_SECONDS} s"
                ) from exc
            raise

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._translate_locked(), self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._translate_locked(), self._engine.connect() as conn, conn.begin():
            yield conn


    def get_cursor(self, crm: str, object_type: str, stream: str) -> str | None:
        with self._read() as conn:
            return cast(
                "str | None",
                conn.scalar(
                    sa.select(cursors_t.c.value).where(
                        cursors_t.c.crm == crm, cursors_t.c.object_type == object_type, cursors_t.c.stream == stream
                    )
                ),
            )

    def set_cursor(self, crm: str, object_type: str, stream: str, value: str, now: datetime) -> None:
        stmt = self._insert(cursors_t).values(crm=crm, object_type=object_type, stream=stream, value=value, updated_at=now)
        with self._write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["crm", "object_type", "stream"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )

    def list_cursors(self) -> list[CursorRow]:
        with self._read() as conn:
            rows = conn.execute(sa.select(cursors_t).order_by(cursors_t.c.crm, cursors_t.c.object_type, cursors_t.c.stream))
            return [CursorRow(r.crm, r.object_type, r.stream, r.value, r.updated_at) for r in rows]


    def _lead_states(self, conn: sa.Connection, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        out: dict[str, LeadState] = {}
        for chunk in _chunks(list(dict.fromkeys(lead_keys))):
            for row in conn.execute(sa.select(lead_states_t).where(lead_states_t.c.lead_key.in_(chunk))):
                out[row.lead_key] = _lead_state(row)
        return out

    def get_lead_states(self, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        """States of the leads the connector has routed or written; others are absent."""
        with self._read() as conn:
            return self._lead_states(conn, lead_keys)

    def leads_past_sla(self, now: datetime, limit: int = 1000) -> list[LeadState]:
        """Routed leads whose SLA deadline has passed (earliest first), for SLA reassignment."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(lead_states_t)
                .where(lead_states_t.c.sla_due_at.is_not(None), lead_states_t.c.sla_due_at <= now)
                .order_by(lead_states_t.c.sla_due_at, lead_states_t.c.lead_key)
                .limit(limit)
            )
            return [_lead_state(r) for r in rows]

    def clear_sla(self, lead_keys: Sequence[str]) -> None:
        """Stop the SLA clock of leads that were actioned."""
        with self._write() as conn:
            for chunk in _chunks(list(lead_keys)):
                conn.execute(sa.update(lead_states_t).where(lead_states_t.c.lead_key.in_(chunk)).values(sla_due_at=None))

    @contextmanager
    def routing_transaction(self, scopes: Sequence[str]) -> Iterator[RoutingTxn]:
        """Routing for one batch commits together or not at all; one holder per scope at a time.

        PostgreSQL: a row lock (SELECT ... FOR UPDATE) on each scope's lock row, taken in sorted
        order so two workers with overlapping scopes cannot deadlock. SQLite: BEGIN IMMEDIATE,
        which serializes all writers of the file. Pass a scope covering the leads too (e.g.
        "route:hubspot") when two workers may route the same lead through different pools.
        """
        ordered = sorted(set(scopes))
        with self._write() as conn:
            if self.dialect == "postgresql" and ordered:
                # Rows are inserted, then locked, in sorted order: PostgreSQL locks the rows of a
                # SELECT ... ORDER BY ... FOR UPDATE as the sorted rows come out.
                conn.execute(self._insert(routing_locks_t).values([{"scope": s} for s in ordered]).on_conflict_do_nothing())
                conn.execute(
                    sa.select(routing_locks_t.c.scope)
                    .where(routing_locks_t.c.scope.in_(ordered))
                    .order_by(routing_locks_t.c.scope)
                    .with_for_update()
                )
            txn = RoutingTxn(self, conn, ordered)
            yield txn
            txn.flush()

    def _insert_decision(self, conn: sa.Connection, rec: DecisionRecord) -> int:
        return int(conn.execute(sa.insert(decisions_t).values(**_decision_values(rec)).returning(decisions_t.c.id)).scalar_one())

    def record_decision(self, rec: DecisionRecord) -> int:
        """Append a decision outside routing (e.g. a score-only decision); returns its id."""
        with self._write() as conn:
            return self._insert_decision(conn, rec)

    def decisions_for(self, lead_key: str) -> list[DecisionRecord]:
        """The lead's decision log, oldest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(decisions_t).where(decisions_t.c.lead_key == lead_key).order_by(decisions_t.c.id))
            return [_decision(r) for r in rows]

    def owner_counts(self) -> dict[str, int]:
        """Routed leads per owner id (reports, least-loaded)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(lead_states_t.c.routed_owner_id, sa.func.count())
                .where(lead_states_t.c.routed_owner_id.is_not(None))
                .group_by(lead_states_t.c.routed_owner_id)
            )
            return {owner: int(n) for owner, n in rows}


    def _insert_outbox(self, conn: sa.Connection, patch: Patch, now: datetime) -> int:
        return int(conn.execute(sa.insert(outbox_t).values(**_outbox_values(patch, now)).returning(outbox_t.c.id)).scalar_one())

    def _pending_writes(self, conn: sa.Connection, lead_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        by_target: dict[tuple[str, str], list[str]] = {}
        for key in dict.fromkeys(lead_keys):
            crm, _, rest = key.partition(":")
            object_type, _, record_id = rest.partition(":")
            by_target.setdefault((crm, object_type), []).append(record_id)
        out: dict[str, dict[str, Any]] = {}
        for (crm, object_type), ids in by_target.items():
            for chunk in _chunks(ids):
                rows = conn.execute(
                    sa.select(outbox_t.c.record_id, outbox_t.c.patch)
                    .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending", outbox_t.c.object_type == object_type,
                           outbox_t.c.record_id.in_(chunk))
                    .order_by(outbox_t.c.id)
                )
                for row in rows:
                    out.setdefault(f"{crm}:{object_type}:{row.record_id}", {}).update(dict(row.patch.get("changes", {})))
        return out

    def enqueue(self, patches: Sequence[Patch], now: datetime) -> list[int]:
        """Queue writes that no routing decision goes with (score-only patches); ids in order."""
        with self._write() as conn:
            return [self._insert_outbox(conn, p, now) for p in patches]

    def pending_outbox(self, crm: str, limit: int = 1000) -> list[OutboxItem]:
        """Writes still to do for one CRM, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts)
                .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending")
                .order_by(outbox_t.c.id)
                .limit(limit)
            )
            return [OutboxItem(r.id, patch_from_json(r.patch), r.created_at, r.attempts) for r in rows]

    def claim_outbox(self, crm: str, worker: str, now: datetime, *, limit: int = 1000, lease_seconds: float = 300) -> list[OutboxItem]:
        """Take up to `limit` pending writes for this worker (oldest first) that no other worker holds a live lease on.

        For several replicas: each sends only what it claimed. On PostgreSQL the claim skips rows
        another replica is claiming right now (FOR UPDATE SKIP LOCKED) instead of waiting; a lease
        that runs out (a replica killed mid-write) makes the rows claimable again.
        """
        available = sa.or_(outbox_t.c.claimed_until.is_(None), outbox_t.c.claimed_until <= now)
        query = (
            sa.select(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts, outbox_t.c.claimed_by)
            .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending", available)
            .order_by(outbox_t.c.id)
            .limit(limit)
        )
        claim = {"claimed_by": worker, "claimed_until": now + timedelta(seconds=lease_seconds)}
        with self._write() as conn:
            if self.dialect == "postgresql":
                # One statement: the CTE picks and locks the rows, the UPDATE claims them and returns
                # each row with the holder it had before (RETURNING gives the new values only).
                picked = query.with_only_columns(outbox_t.c.id, outbox_t.c.claimed_by).with_for_update(skip_locked=True).cte("picked")
                stmt = (
                    sa.update(outbox_t)
                    .where(outbox_t.c.id == picked.c.id)
                    .values(**claim)
                    .returning(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts, picked.c.claimed_by)
                )
                rows: Sequence[Any] = sorted(conn.execute(stmt).all(), key=lambda r: int(r.id))
            else:
                # BEGIN IMMEDIATE holds the write lock, so the UPDATE's subquery picks the rows just read.
                rows = conn.execute(query).all()
                if rows:
                    picked_ids = query.with_only_columns(outbox_t.c.id).scalar_subquery()
                    conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_(picked_ids)).values(**claim))
            return [
                OutboxItem(r.id, patch_from_json(r.patch), r.created_at, r.attempts, reclaimed=r.claimed_by is not None) for r in rows
            ]

    def hold_outbox(self, ids: Sequence[int], worker: str, now: datetime, *, lease_seconds: float) -> set[int]:
        """Renew this worker's claim on pending rows until now + lease_seconds; returns the ids it still holds.

        The fence before a write leaves: a row another replica claimed since (this worker's lease ran
        out while it waited for the rate limiter) or finished is not this worker's to send any more.
        """
        held: set[int] = set()
        if not ids:
            return held
        until = now + timedelta(seconds=lease_seconds)
        with self._write() as conn:
            for chunk in _chunks(list(ids)):
                mine = (outbox_t.c.id.in_(chunk), outbox_t.c.claimed_by == worker, outbox_t.c.status == "pending")
                stmt = sa.update(outbox_t).where(*mine).values(claimed_until=until).returning(outbox_t.c.id)
                held.update(int(r.id) for r in conn.execute(stmt))
        return held

    def complete_outbox(
        self, done: Sequence[tuple[int, Patch, WriteResult]], now: datetime, *, max_attempts: int = 5
    ) -> None:
        """Record write outcomes: ok → done and LeadState.written merged; a record error → dead letter;
        retryable → stays pending, until max_attempts (config sync.max_dead_letter_attempts) dead-letters it.
        """
        failing = list(dict.fromkeys(outbox_id for outbox_id, _, result in done if not result.ok))
        with self._write() as conn:
            attempts: dict[int, int] = {}
            for chunk in _chunks(failing):
                attempts.update(
                    (int(i), int(n)) for i, n in conn.execute(sa.select(outbox_t.c.id, outbox_t.c.attempts).where(outbox_t.c.id.in_(chunk)))
                )
            finished: list[int] = []
            written: list[tuple[str, Mapping[str, Any], datetime]] = []
            retry: dict[int, int] = {}
            failed: dict[int, int] = {}
            letters: list[dict[str, Any]] = []
            for outbox_id, patch, result in done:
                if result.ok:
                    finished.append(outbox_id)
                    written.append((f"{patch.crm}:{patch.object_type}:{patch.record_id}", patch.changes, now))
                    continue
                attempts[outbox_id] = attempts.get(outbox_id, 0) + 1
                tries = attempts[outbox_id]
                if result.retryable and tries < max_attempts:
                    retry[outbox_id] = tries
                    continue
                retry.pop(outbox_id, None)
                failed[outbox_id] = tries
                message = result.message or "the CRM rejected the write without a message"
                if result.retryable:
                    message = f"gave up after {tries} attempts: {message}"
                letters.append({
                    "crm": patch.crm, "object_type": patch.object_type, "record_id": patch.record_id, "field": result.field,
                    "code": result.error_code, "message": message, "payload": patch_to_json(patch),
                })
            for chunk in _chunks(finished):
                conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_(chunk)).values(status="done", updated_at=now))
            by_id = outbox_t.c.id == sa.bindparam("b_id")
            if retry:
                # Release the lease so the next claim (by any replica) retries it.
                conn.execute(
                    sa.update(outbox_t).where(by_id).values(attempts=sa.bindparam("b_attempts"), updated_at=now, claimed_until=None),
                    [{"b_id": i, "b_attempts": n} for i, n in retry.items()],
                )
            if failed:
                conn.execute(
                    sa.update(outbox_t).where(by_id).values(status="failed", attempts=sa.bindparam("b_attempts"), updated_at=now),
                    [{"b_id": i, "b_attempts": n} for i, n in failed.items()],
                )
            self._merge_values(conn, written)
            self._add_dead_letters(conn, letters, now)

    def _merge_values(self, conn: sa.Connection, entries: Sequence[tuple[str, Mapping[str, Any], datetime]]) -> None:
        """Merge (lead key, values, now) into LeadState.written in order: one read and one upsert per chunk of leads."""
        merged: dict[str, tuple[dict[str, Any], datetime]] = {}
        for key, values, now in entries:
            known = merged.get(key)
            merged[key] = ({**known[0], **values} if known else dict(values), now)
        keys = sorted(merged)  # one lock order for every writer of lead_states
        for chunk in _chunks(keys, 200):
            query = sa.select(lead_states_t.c.lead_key, lead_states_t.c.written).where(lead_states_t.c.lead_key.in_(chunk))
            current = {row.lead_key: row.written for row in conn.execute(query)}
            rows = [
                {"lead_key": k, "written": {**(current.get(k) or {}), **merged[k][0]}, "written_at": merged[k][1], "reassignments": 0}
                for k in chunk
            ]
            stmt = self._insert(lead_states_t).values(rows)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["lead_key"], set_={"written": stmt.excluded.written, "written_at": stmt.excluded.written_at}
                )
            )

    def purge_outbox(self, before: datetime) -> int:
        """Delete finished (done) outbox rows last touched before `before`; failed rows stay with their dead letters."""
        with self._write() as conn:
            result = conn.execute(sa.delete(outbox_t).where(outbox_t.c.status == "done", outbox_t.c.updated_at < before))
            return int(result.rowcount)


    def _add_dead_letter(
        self,
        conn: sa.Connection,
        *,
        crm: str,
        object_type: str,
        record_id: str,
        field: str | None,
        code: str | None,
        message: str,
        payload: Mapping[str, Any],
        now: datetime,
    ) -> int:
        # The same record failing with the same code is one problem seen again, not a new one.
        existing = conn.execute(
            sa.select(dead_letters_t.c.id, dead_letters_t.c.attempts)
            .where(
                dead_letters_t.c.crm == crm,
                dead_letters_t.c.object_type == object_type,
                dead_letters_t.c.record_id == record_id,
                dead_letters_t.c.code.is_(None) if code is None else dead_letters_t.c.code == code,
                dead_letters_t.c.status.in_(("open", "retrying")),
            )
            .order_by(dead_letters_t.c.id)
            .limit(1)
        ).first()
        if existing is not None:
            conn.execute(
                sa.update(dead_letters_t)
                .where(dead_letters_t.c.id == existing.id)
                .values(
                    attempts=existing.attempts + 1,
                    last_seen=now,
                    message=message,
                    field=field,
                    payload=dict(payload),
                    status="open",
                    status_changed_at=now,
                )
            )
            return int(existing.id)
        stmt = (
            sa.insert(dead_letters_t)
            .values(
                crm=crm,
                object_type=object_type,
                record_id=record_id,
                field=field,
                code=code,
                message=message,
                attempts=1,
                first_seen=now,
                last_seen=now,
                status="open",
                status_changed_at=now,
                payload=dict(payload),
            )
            .returning(dead_letters_t.c.id)
        )
        return int(conn.execute(stmt).scalar_one())

    def _add_dead_letters(self, conn: sa.Connection, letters: Sequence[Mapping[str, Any]], now: datetime) -> None:
        """`_add_dead_letter` for many letters (in order) with one read, one bulk update and one bulk insert per chunk."""
        for chunk in _chunks(list(letters)):
            open_rows: dict[tuple[Any, ...], tuple[int, int]] = {}
            record_ids = sorted({letter["record_id"] for letter in chunk})
            existing = conn.execute(
                sa.select(dead_letters_t.c.id, dead_letters_t.c.crm, dead_letters_t.c.object_type, dead_letters_t.c.record_id,
                          dead_letters_t.c.code, dead_letters_t.c.attempts)
                .where(dead_letters_t.c.record_id.in_(record_ids), dead_letters_t.c.status.in_(("open", "retrying")))
                .order_by(dead_letters_t.c.id)
            )
            for row in existing:
                # The oldest open row of a record + code is the one `_add_dead_letter` counts up.
                open_rows.setdefault((row.crm, row.object_type, row.record_id, row.code), (int(row.id), int(row.attempts)))
            updates: dict[int, dict[str, Any]] = {}
            inserts: dict[tuple[Any, ...], dict[str, Any]] = {}
            for letter in chunk:
                key = (letter["crm"], letter["object_type"], letter["record_id"], letter["code"])
                latest = {"field": letter["field"], "message": letter["message"], "payload": dict(letter["payload"])}
                if key in open_rows:
                    row_id, seen = open_rows[key]
                    before = updates.get(row_id)
                    updates[row_id] = {"b_id": row_id, "b_attempts": (before["b_attempts"] if before else seen) + 1, **latest}
                elif key in inserts:
                    inserts[key].update(latest, attempts=inserts[key]["attempts"] + 1)
                else:
                    inserts[key] = {
                        "crm": letter["crm"], "object_type": letter["object_type"], "record_id": letter["record_id"],
                        "code": letter["code"], "attempts": 1, "first_seen": now, "last_seen": now, "status": "open",
                        "status_changed_at": now, **latest,
                    }
            if updates:
                conn.execute(
                    sa.update(dead_letters_t)
                    .where(dead_letters_t.c.id == sa.bindparam("b_id"))
                    .values(attempts=sa.bindparam("b_attempts"), last_seen=now, status="open", status_changed_at=now),
                    list(updates.values()),
                )
            if inserts:
                conn.execute(sa.insert(dead_letters_t), list(inserts.values()))

    def add_dead_letter(
        self,
        *,
        crm: str,
        object_type: str,
        record_id: str,
        field: str | None,
        code: str | None,
        message: str,
        payload: Mapping[str, Any],
        now: datetime,
    ) -> int:
        """File a record the connector gives up on; the same record + code again counts up that row. Returns its id."""
        with self._write() as conn:
            return self._add_dead_letter(
                conn,
                crm=crm,
                object_type=object_type,
                record_id=record_id,
                field=field,
                code=code,
                message=message,
                payload=payload,
                now=now,
            )

    def list_dead_letters(self, status: str | None = "open", limit: int = 100) -> list[DeadLetter]:
        """Dead letters with this status (None: all), oldest first."""
        query = sa.select(dead_letters_t).order_by(dead_letters_t.c.id).limit(limit)
        if status is not None:
            query = query.where(dead_letters_t.c.status == status)
        with self._read() as conn:
            return [_dead_letter(r) for r in conn.execute(query)]

    def get_dead_letter(self, id: int) -> DeadLetter | None:
        with self._read() as conn:
            row = conn.execute(sa.select(dead_letters_t).where(dead_letters_t.c.id == id)).first()
            return _dead_letter(row) if row is not None else None

    def set_dead_letter_status(self, id: int, status: str, now: datetime) -> None:
        """Move a dead letter to open / retrying / discarded / resolved; unknown ids raise KeyError."""
        if status not in DEAD_LETTER_STATUSES:
            raise ValueError(f"dead letter status must be one of {', '.join(DEAD_LETTER_STATUSES)}, got {status!r}")
        with self._write() as conn:
            result = conn.execute(
                sa.update(dead_letters_t).where(dead_letters_t.c.id == id).values(status=status, status_changed_at=now)
            )
            if result.rowcount == 0:
                raise KeyError(f"no dead letter with id {id}")

    def count_dead_letters(self, status: str | None = "open") -> int:
        query = sa.select(sa.func.count()).select_from(dead_letters_t)
        if status is not None:
            query = query.where(dead_letters_t.c.status == status)
        with self._read() as conn:
            return int(conn.scalar(query) or 0)


    def add_events(self, events: Sequence[Event], fold: AggregateFold | None = None) -> int:
        """Store events, skipping any whose event_id is already stored (or repeated in the batch); returns how many were new.

        Each key's aggregates (see `event_aggregates`) are kept current in the same transaction:
        `fold(signature, data, new_events)` gives the updated data, or None when they must be rebuilt
        (another scoring config); without `fold` the keys' aggregates are marked stale.
        """
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for e in events:
            if e.event_id is not None:
                if e.event_id in seen:
                    continue
                seen.add(e.event_id)
            rows.append(
                {
                    "event_id": e.event_id,
                    "lead_key": e.lead_key,
                    "name": e.name,
                    "kind": e.kind,
                    "occurred_at": e.occurred_at,
                    "properties": dict(e.properties),
                }
            )
        new_ids: set[str] = set()
        inserted = 0
        with self._write() as conn:
            for chunk in _chunks(rows):
                stmt = (
                    self._insert(events_t).on_conflict_do_nothing(index_elements=["event_id"]).returning(events_t.c.event_id)
                )
                done = conn.execute(stmt, list(chunk)).all()
                inserted += len(done)
                new_ids.update(r.event_id for r in done if r.event_id is not None)
            by_key: dict[str, list[Event]] = {}
            for e in events:
                if e.event_id is None or e.event_id in new_ids:
                    by_key.setdefault(e.lead_key, []).append(e)
                    new_ids.discard(e.event_id or "")  # a repeated event_id is folded once
            if by_key:
                self._fold_aggregates(conn, by_key, fold)
        return inserted

    def _lock_aggregates(self, conn: sa.Connection, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """Lock the aggregate rows of `keys` (a stale placeholder first where there is none): key -> (signature, data).

        The placeholder insert waits for another transaction's uncommitted insert of the same key, so an
        event writer and a rebuilder of one key always run one after the other, never interleaved.
        """
        out: dict[str, tuple[str, Any]] = {}
        for chunk in _chunks(sorted(keys)):  # one lock order for everyone: no deadlocks
            conn.execute(
                self._insert(event_aggregates_t).on_conflict_do_nothing(index_elements=["key"]),
                [{"key": k, "signature": "", "data": {}} for k in chunk],
            )
            query = sa.select(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)).order_by(event_aggregates_t.c.key)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            out.update({r.key: (r.signature, r.data) for r in conn.execute(query)})
        return out

    def _fold_aggregates(self, conn: sa.Connection, by_key: Mapping[str, Sequence[Event]], fold: AggregateFold | None) -> None:
        locked = self._lock_aggregates(conn, list(by_key))
        for key, new_events in by_key.items():
            signature, data = locked[key]
            if not signature:
                continue  # stale or new: rebuilt from every event when next needed
            updated = fold(signature, data, new_events) if fold is not None else None
            values = {"signature": "", "data": {}} if updated is None else {"data": dict(updated)}
            conn.execute(sa.update(event_aggregates_t).where(event_aggregates_t.c.key == key).values(**values))

    def event_aggregates(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """Stored aggregates of the keys that have them: key -> (signature, data); signature "" = stale."""
        out: dict[str, tuple[str, Any]] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                query = sa.select(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk))
                out.update({r.key: (r.signature, r.data) for r in conn.execute(query)})
        return out

    def rebuild_event_aggregates(
        self, keys: Sequence[str], build: Callable[[Sequence[Event]], tuple[str, Mapping[str, Any]]],
    ) -> dict[str, tuple[str, Any]]:
        """Aggregates of `keys` rebuilt from their stored events by `build(events) -> (signature, data)`, and saved.

        Keys without events get no row (a later event marks them stale). Runs under the same row locks
        as `add_events`, so an event stored meanwhile is either seen here or folded in after.
        """
        out: dict[str, tuple[str, Any]] = {}
        with self._write() as conn:
            self._lock_aggregates(conn, keys)
            events: dict[str, list[Event]] = {k: [] for k in keys}
            for chunk in _chunks(list(keys)):
                query = sa.select(events_t).where(events_t.c.lead_key.in_(chunk)).order_by(events_t.c.occurred_at, events_t.c.id)
                for row in conn.execute(query):
                    events[row.lead_key].append(_event(row))
            for key, evs in events.items():
                if not evs:
                    conn.execute(sa.delete(event_aggregates_t).where(event_aggregates_t.c.key == key))
                    continue
                signature, data = build(evs)
                out[key] = (signature, data)
                conn.execute(
                    sa.update(event_aggregates_t).where(event_aggregates_t.c.key == key).values(signature=signature, data=dict(data))
                )
        return out

    def events_for(self, lead_keys: Sequence[str], since: datetime | None = None) -> dict[str, list[Event]]:
        """Every requested key → its events (oldest first; an empty list when none)."""
        keys = list(dict.fromkeys(lead_keys))
        out: dict[str, list[Event]] = {k: [] for k in keys}
        with self._read() as conn:
            for chunk in _chunks(keys):
                query = sa.select(events_t).where(events_t.c.lead_key.in_(chunk))
                if since is not None:
                    query = query.where(events_t.c.occurred_at >= since)
                for row in conn.execute(query.order_by(events_t.c.occurred_at, events_t.c.id)):
                    out[row.lead_key].append(_event(row))
        return out

    def purge_events(self, before: datetime) -> int:
        """Delete events that occurred before `before` (beyond every decay horizon); returns how many.

        The aggregates of the keys that lost events are marked stale (rebuilt from what is left).
        """
        with self._write() as conn:
            keys = list(conn.scalars(sa.select(events_t.c.lead_key).where(events_t.c.occurred_at < before).distinct()))
            for chunk in _chunks(keys):
                conn.execute(
                    sa.update(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)).values(signature="", data={})
                )
            return int(conn.execute(sa.delete(events_t).where(events_t.c.occurred_at < before)).rowcount)


    def record_run(self, kind: str, summary: Mapping[str, Any], now: datetime) -> None:
        with self._write() as conn:
            conn.execute(sa.insert(runs_t).values(kind=kind, summary=dict(summary), created_at=now))

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first: {"id", "kind", "summary", "created_at"}."""
        with self._read() as conn:
            rows = conn.execute(sa.select(runs_t).order_by(runs_t.c.id.desc()).limit(limit))
            return [{"id": r.id, "kind": r.kind, "summary": dict(r.summary), "created_at": r.created_at} for r in rows]

    # shared quota (the algorithms live in connector/state/ratelimit.py; this is their row lock)

    def update_limiter(self, account: str, fn: Callable[[LimiterState], tuple[LimiterState, T]]) -> T:
        """Read, change and write one account's limiter row under a row lock (every process sees one window).

        `fn` is pure and quick: it runs inside the lock and must not sleep.
        """
        with self._write() as conn:
            conn.execute(
                self._insert(rate_limits_t).values(account=account, recent_calls=[], blocked_until_us=0).on_conflict_do_nothing()
            )
            row = conn.execute(sa.select(rate_limits_t).where(rate_limits_t.c.account == account).with_for_update()).one()
            state = LimiterState(tuple((int(t), int(n)) for t, n in row.recent_calls), int(row.blocked_until_us))
            new, out = fn(state)
            conn.execute(
                sa.update(rate_limits_t)
                .where(rate_limits_t.c.account == account)
                .values(recent_calls=[[t, n] for t, n in new.recent_calls], blocked_until_us=new.blocked_until_us)
            )
            return out

    def update_budget(self, account: str, fn: Callable[[BudgetState], tuple[BudgetState, T]]) -> T:
        """Read, change and write one account's daily budget row under a row lock (day "" the first time).

        `fn` is pure and quick: it runs inside the lock.
        """
        with self._write() as conn:
            # Insert-then-lock, so two processes starting a fresh account cannot both count from zero.
            conn.execute(self._insert(daily_budgets_t).values(account=account, day="", used=0).on_conflict_do_nothing())
            row = conn.execute(sa.select(daily_budgets_t).where(daily_budgets_t.c.account == account).with_for_update()).one()
            new, out = fn(BudgetState(row.day, int(row.used), None if row.observed_limit is None else int(row.observed_limit)))
            conn.execute(
                sa.update(daily_budgets_t)
                .where(daily_budgets_t.c.account == account)
                .values(day=new.day, used=new.used, observed_limit=new.observed_limit)
            )
            return out

    # service intake (accepted webhook / event work; the service answers 2xx only once it is here)

    def _insert_intake(self, conn: sa.Connection, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
        ids: list[int] = []
        for item in items:
            stmt = (
                sa.insert(intake_t)
                .values(
                    crm=item.crm, object_type=item.object_type, kind=item.kind, ref=item.ref, target=item.target,
                    source=item.source, correlation_id=item.correlation_id, status="pending", attempts=0, accepted_at=now,
                )
                .returning(intake_t.c.id)
            )
            ids.append(int(conn.execute(stmt).scalar_one()))
        return ids

    def add_intake(self, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
        """Durably queue accepted work; returns the row ids in order."""
        if not items:
            return []
        with self._write() as conn:
            return self._insert_intake(conn, items, now)

    def accept_deliveries(
        self, delivery_ids: Sequence[str], plan: Callable[[frozenset[str]], Sequence[IntakeRequest]], now: datetime
    ) -> tuple[frozenset[str], list[int]]:
        """Record delivery ids never seen before and the intake rows `plan(new_ids)` derives from them, in one
        transaction: a redelivered event is recognised durably, and never half-accepted. `plan` is pure and quick."""
        wanted = list(dict.fromkeys(delivery_ids))
        with self._write() as conn:
            new: set[str] = set()
            for chunk in _chunks(wanted):
                stmt = (
                    self._insert(webhook_deliveries_t)
                    .on_conflict_do_nothing(index_elements=["delivery_id"])
                    .returning(webhook_deliveries_t.c.delivery_id)
                )
                new.update(conn.execute(stmt, [{"delivery_id": d, "received_at": now} for d in chunk]).scalars())
            fresh = frozenset(new)
            return fresh, self._insert_intake(conn, plan(fresh) if fresh else [], now)

    def claim_intake(self, worker: str, now: datetime, *, lease_seconds: float, limit: int = 500) -> list[IntakeItem]:
        """Claim pending rows (and rows whose claim lease ran out: a crashed worker's), oldest first.

        PostgreSQL: FOR UPDATE SKIP LOCKED, so replicas claim disjoint rows; SQLite: BEGIN IMMEDIATE serializes.
        """
        claimable = sa.or_(
            intake_t.c.status == "pending",
            sa.and_(intake_t.c.status == "claimed", intake_t.c.claimed_until < now),
        )
        query = sa.select(intake_t).where(claimable).order_by(intake_t.c.id).limit(limit)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        until = now + timedelta(seconds=lease_seconds)
        with self._write() as conn:
            rows = list(conn.execute(query))
            for chunk in _chunks([r.id for r in rows]):
                conn.execute(
                    sa.update(intake_t).where(intake_t.c.id.in_(chunk)).values(status="claimed", claimed_by=worker, claimed_until=until)
                )
            return [
                IntakeItem(r.id, r.crm, r.object_type, r.kind, r.ref, r.target, r.source, r.correlation_id, r.accepted_at, int(r.attempts))
                for r in rows
            ]

    def finish_intake(self, ids: Sequence[int], now: datetime, *, status: str = "done", error: str | None = None) -> None:
        """Mark claimed rows done (or failed, after they were dead-lettered)."""
        if status not in ("done", "failed"):
            raise ValueError(f"intake rows finish as done or failed, got {status!r}")
        with self._write() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute(
                    sa.update(intake_t)
                    .where(intake_t.c.id.in_(chunk))
                    .values(status=status, finished_at=now, error=error, claimed_by=None, claimed_until=None)
                )

    def release_intake(self, ids: Sequence[int], now: datetime, *, error: str | None, count_attempt: bool) -> None:
        """Put claimed rows back to pending (a failed or interrupted batch), counting an attempt when it failed."""
        values: dict[str, Any] = {"status": "pending", "claimed_by": None, "claimed_until": None, "error": error}
        if count_attempt:
            values["attempts"] = intake_t.c.attempts + 1
        with self._write() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute(sa.update(intake_t).where(intake_t.c.id.in_(chunk), intake_t.c.status == "claimed").values(**values))

    def release_intake_claims(self, worker: str, now: datetime) -> int:
        """Shutdown: every row this worker still holds goes back to pending for the next start; returns how many."""
        with self._write() as conn:
            result = conn.execute(
                sa.update(intake_t)
                .where(intake_t.c.status == "claimed", intake_t.c.claimed_by == worker)
                .values(status="pending", claimed_by=None, claimed_until=None)
            )
            return int(result.rowcount)

    def count_pending_intake(self) -> int:
        """Intake rows not finished yet (pending or claimed)."""
        with self._read() as conn:
            query = sa.select(sa.func.count()).select_from(intake_t).where(intake_t.c.status.in_(("pending", "claimed")))
            return int(conn.scalar(query) or 0)

    def intake_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Intake rows (all, or with this status), oldest first: for the CLI and tests."""
        query = sa.select(intake_t).order_by(intake_t.c.id)
        if status is not None:
            query = query.where(intake_t.c.status == status)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def purge_intake(self, before: datetime) -> int:
        """Delete finished (done) intake rows and delivery ids older than `before`; failed rows stay. Returns rows removed."""
        with self._write() as conn:
            rows = conn.execute(sa.delete(intake_t).where(intake_t.c.status == "done", intake_t.c.finished_at < before)).rowcount
            rows += conn.execute(sa.delete(webhook_deliveries_t).where(webhook_deliveries_t.c.received_at < before)).rowcount
            return int(rows)

    # operator views and privacy (status, reports, `connector forget`)

    def counters(self, scope: str) -> dict[str, int]:
        """One routing counter scope, read without taking its lock (reports and status only)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(routing_counters_t.c.key, routing_counters_t.c.value).where(routing_counters_t.c.scope == scope)
            )
            return {row.key: int(row.value) for row in rows}

    def waiting_leads(self, crm: str | None = None, *, lead_key: str | None = None) -> list[WaitingLead]:
        """Why and since when leads wait for a rep (one CRM's, one lead, or all), longest waiting first."""
        query = sa.select(waiting_leads_t).order_by(waiting_leads_t.c.since, waiting_leads_t.c.lead_key)
        if crm is not None:
            query = query.where(waiting_leads_t.c.crm == crm)
        if lead_key is not None:
            query = query.where(waiting_leads_t.c.lead_key == lead_key)
        with self._read() as conn:
            return [
                WaitingLead(
                    lead_key=r.lead_key, crm=r.crm, since=r.since, checked_at=r.checked_at, cause=r.cause, pool=r.pool,
                    next_available_at=r.next_available_at, next_available_rep=r.next_available_rep, reason=r.reason,
                )
                for r in conn.execute(query)
            ]

    def count_pending_outbox(self) -> dict[str, int]:
        """Writes still to do, per CRM."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(outbox_t.c.crm, sa.func.count()).where(outbox_t.c.status == "pending").group_by(outbox_t.c.crm)
            )
            return {crm: int(n) for crm, n in rows}

    def count_lead_states(self, prefix: str = "") -> int:
        """Leads the connector has routed or written (whose key starts with `prefix`, e.g. "hubspot:contacts:")."""
        query = sa.select(sa.func.count()).select_from(lead_states_t)
        if prefix:
            query = query.where(lead_states_t.c.lead_key.startswith(prefix, autoescape=True))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    def budget_states(self) -> dict[str, BudgetState]:
        """Every account's daily-budget row as last written (read-only: the day is not rolled here)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(daily_budgets_t).order_by(daily_budgets_t.c.account))
            return {
                r.account: BudgetState(r.day, int(r.used), None if r.observed_limit is None else int(r.observed_limit))
                for r in rows
            }

    def list_decisions(
        self, *, kinds: Sequence[str] | None = None, since: datetime | None = None, limit: int = 200_000
    ) -> list[DecisionRecord]:
        """The decision log, oldest first (optionally some kinds only, or from `since`)."""
        query = sa.select(decisions_t).order_by(decisions_t.c.id).limit(limit)
        if kinds is not None:
            query = query.where(decisions_t.c.kind.in_(list(kinds)))
        if since is not None:
            query = query.where(decisions_t.c.created_at >= since)
        with self._read() as conn:
            return [_decision(r) for r in conn.execute(query)]

    def erase_person(self, *, refs: Sequence[str], lead_keys: Sequence[str], redact: Callable[[str], str], now: datetime) -> dict[str, int]:
        """Erase what the store holds about one person, in one transaction; returns counts per kind of row.

        refs: the keys their events may be stored under (lower-case emails and lead keys). Events
        and intake rows naming them are deleted; the leads' decisions keep only the audit facts
        (kind, owner, rep, rule, pool, strategy, arm, time); dead letters of the leads lose their
        payload and `redact` rewrites their message; finished outbox rows of the leads are deleted.
        """
        refs = list(dict.fromkeys(refs))
        keys = list(dict.fromkeys(lead_keys))
        counts = {"events": 0, "decisions": 0, "dead_letters": 0, "outbox": 0, "intake": 0}
        with self._write() as conn:
            for chunk in _chunks(refs):
                counts["events"] += int(conn.execute(sa.delete(events_t).where(events_t.c.lead_key.in_(chunk))).rowcount)
                conn.execute(sa.delete(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)))
                counts["intake"] += int(
                    conn.execute(sa.delete(intake_t).where(sa.or_(intake_t.c.ref.in_(chunk), intake_t.c.target.in_(chunk)))).rowcount
                )
            for chunk in _chunks(keys):
                counts["decisions"] += int(
                    conn.execute(
                        sa.update(decisions_t)
                        .where(decisions_t.c.lead_key.in_(chunk))
                        .values(score=None, grade=None, model=None, explanation={"erased_at": now.isoformat()})
                    ).rowcount
                )
            for key in keys:
                crm, _, rest = key.partition(":")
                object_type, _, record_id = rest.partition(":")
                record = sa.and_(
                    dead_letters_t.c.crm == crm, dead_letters_t.c.object_type == object_type, dead_letters_t.c.record_id == record_id
                )
                for row in conn.execute(sa.select(dead_letters_t.c.id, dead_letters_t.c.message).where(record)).all():
                    conn.execute(
                        sa.update(dead_letters_t)
                        .where(dead_letters_t.c.id == row.id)
                        .values(payload={"erased_at": now.isoformat()}, message=redact(row.message))
                    )
                    counts["dead_letters"] += 1
                counts["outbox"] += int(
                    conn.execute(
                        sa.delete(outbox_t).where(
                            outbox_t.c.crm == crm, outbox_t.c.object_type == object_type,
                            outbox_t.c.record_id == record_id, outbox_t.c.status != "pending",
                        )
                    ).rowcount
                )
        return counts


    def claim_process(self, purpose: str, now: datetime) -> None:
        """SQLite: make this the only connector process working on the file, until close(); PostgreSQL: nothing to do.

        An exclusive flock on "<db>.lock" (released by the kernel when the process dies, even by kill -9).
        A second process — `connector sync` while `connector serve` runs — fails fast with StoreLockedError
        naming the holder. Re-entrant within one process (the service's worker and poll loops share it).
        """
        if self.dialect != "sqlite" or self._process_lock is not None:
            return
        database = self._engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        path = str(Path(database).resolve()) + ".lock"
        held = _PROCESS_LOCKS.get(path)
        if held is not None:
            _PROCESS_LOCKS[path] = (held[0], held[1] + 1)
            self._process_lock = path
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock_file(fd)
            os.close(fd)
            raise StoreLockedError(
                f"state store {self.url} is in use by pid {holder.get('pid', '?')} "
                f"({holder.get('purpose', 'a connector process')} on {holder.get('host', '?')} since {holder.get('since', '?')}); "
                "use PostgreSQL for several processes"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "since": now.isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _PROCESS_LOCKS[path] = (fd, 1)
        self._process_lock = path

    def _release_process(self) -> None:
        path, self._process_lock = self._process_lock, None
        if path is None or path not in _PROCESS_LOCKS:
            return
        fd, holders = _PROCESS_LOCKS[path]
        if holders > 1:
            _PROCESS_LOCKS[path] = (fd, holders - 1)
            return
        del _PROCESS_LOCKS[path]
        os.close(fd)  # closing the descriptor drops the flock

    def acquire_lease(self, name: str, holder: str, now: datetime, *, ttl_seconds: float) -> bool:
        """Take (or renew) the named lease until now + ttl_seconds; False while another holder's lease is live.

        One atomic upsert: insert, or take over the row only if this holder already has it or it expired,
        so two replicas racing for a free lease cannot both win (PostgreSQL re-checks the WHERE after the
        other's commit; SQLite serializes writers).
        """
        until = now + timedelta(seconds=ttl_seconds)
        stmt = self._insert(leases_t).values(name=name, holder=holder, expires_at=until, acquired_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": stmt.excluded.holder,
                "expires_at": stmt.excluded.expires_at,
                "acquired_at": sa.case((leases_t.c.holder == stmt.excluded.holder, leases_t.c.acquired_at), else_=stmt.excluded.acquired_at),
            },
            where=sa.or_(leases_t.c.holder == stmt.excluded.holder, leases_t.c.expires_at <= now),
        ).returning(leases_t.c.name)
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up (only if this holder has it); True if it did."""
        with self._write() as conn:
            return int(conn.execute(sa.delete(leases_t).where(leases_t.c.name == name, leases_t.c.holder == holder)).rowcount) > 0

    def get_lease(self, name: str) -> Lease | None:
        """The lease row as stored (it may have expired: compare expires_at with now)."""
        with self._read() as conn:
            row = conn.execute(sa.select(leases_t).where(leases_t.c.name == name)).first()
            return None if row is None else Lease(row.name, row.holder, row.expires_at, row.acquired_at)


def _read_lock_file(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
