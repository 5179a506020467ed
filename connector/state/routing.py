"""Routing transactions: one batch's counters, decisions, lead states, waits and writes, committed together under scope locks."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.core.models import Patch
from connector.state.db import Database, chunks
from connector.state.decisions import DecisionRecord, Decisions, decision_values
from connector.state.leads import LeadState, LeadStates
from connector.state.notifications import Notifications
from connector.state.outbox import Outbox, outbox_values
from connector.state.schema import decisions_t, outbox_t, routing_counters_t, routing_locks_t
from connector.state.waiting import WaitingLeads


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
    """Everything routing changes for one batch; valid only inside `Routing.transaction`.

    Writes are buffered and flushed in bulk (a few statements per batch, not several per lead) before
    the transaction commits; an exception discards them with the rollback. Reads flush the writes they
    could see first, so a transaction always reads its own writes.
    """

    def __init__(
        self, conn: sa.Connection, scopes: Sequence[str], *,
        db: Database, leads: LeadStates, decisions: Decisions, waiting: WaitingLeads, outbox: Outbox,
        notifications: Notifications | None = None,
    ) -> None:
        self._db = db
        self._notification_rows = notifications
        self._notifications: list[dict[str, Any]] = []
        self._leads = leads
        self._decision_log = decisions
        self._waiting_leads = waiting
        self._outbox_rows = outbox
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
        for chunk in chunks(sorted(set(keys))):
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
        return self._leads.read(self._conn, lead_keys)

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
        values = decision_values(rec)
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
        values = outbox_values(patch, now)
        values["id"] = self._next_id(outbox_t)
        self._outbox.append(values)
        return int(values["id"])

    def notify(self, values: Mapping[str, Any]) -> None:
        """Queue a notification (a notifications row's values); it commits with the decision that caused it."""
        self._notifications.append(dict(values))

    def pending_writes(self, lead_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per lead key: the field values of its writes still in the outbox (oldest first, later ones win)."""
        self._flush_outbox()
        return self._outbox_rows.pending_writes(self._conn, lead_keys)

    def flush(self) -> None:
        """Write everything buffered (Routing.transaction calls it before committing)."""
        self._flush_counters()
        if self._decisions:
            rows, self._decisions = self._decisions, []
            self._decision_log.save(self._conn, rows)
        self._flush_lead_states()
        self._flush_waiting()
        self._flush_outbox()
        if self._notifications and self._notification_rows is not None:
            rows, self._notifications = self._notifications, []
            self._notification_rows.save(self._conn, rows)

    def _next_id(self, table: sa.Table) -> int:
        allocator = self._ids.get(table.name)
        if allocator is None:
            allocator = self._ids[table.name] = _IdAllocator(self._db.dialect, table)
        return allocator.next(self._conn)

    def _flush_counters(self) -> None:
        if not self._counters:
            return
        pending, self._counters = self._counters, {}
        for is_set in (False, True):
            rows = [{"scope": s, "key": k, "value": v} for (s, k), (flag, v) in pending.items() if flag is is_set]
            for chunk in chunks(rows):
                stmt = self._db.insert(routing_counters_t).values(list(chunk))
                value = stmt.excluded.value if is_set else routing_counters_t.c.value + stmt.excluded.value
                self._conn.execute(stmt.on_conflict_do_update(index_elements=["scope", "key"], set_={"value": value}))

    def _flush_lead_states(self) -> None:
        if self._routed or self._remembered:
            routed, self._routed = self._routed, {}
            remembered, self._remembered = self._remembered, []
            rows = {
                key: {
                    "routed_owner_id": r.owner_id, "routed_rep": r.rep, "routed_at": r.at, "reassignments": r.reassignments,
                    "sla_due_at": r.sla_due_at, "initial_status": r.initial_status,
                }
                for key, r in routed.items()
            }
            self._leads.save(self._conn, rows, remembered)

    def _flush_waiting(self) -> None:
        if self._waiting:
            waiting, self._waiting = self._waiting, {}
            self._waiting_leads.save(self._conn, waiting)

    def _flush_outbox(self) -> None:
        if self._outbox:
            rows, self._outbox = self._outbox, []
            self._outbox_rows.save(self._conn, rows)


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


class Routing:
    """The routing_locks and routing_counters tables, and the transaction that routes one batch."""

    def __init__(
        self, db: Database, leads: LeadStates, decisions: Decisions, waiting: WaitingLeads, outbox: Outbox,
        notifications: Notifications | None = None,
    ) -> None:
        self._db = db
        self._notifications = notifications
        self._leads = leads
        self._decisions = decisions
        self._waiting = waiting
        self._outbox = outbox

    @contextmanager
    def transaction(self, scopes: Sequence[str]) -> Iterator[RoutingTxn]:
        """Routing for one batch commits together or not at all; one holder per scope at a time.

        PostgreSQL: a row lock (SELECT ... FOR UPDATE) on each scope's lock row, taken in sorted
        order so two workers with overlapping scopes cannot deadlock. SQLite: BEGIN IMMEDIATE,
        which serializes all writers of the file. Pass a scope covering the leads too (e.g.
        "route:hubspot") when two workers may route the same lead through different pools.
        """
        ordered = sorted(set(scopes))
        with self._db.write() as conn:
            if self._db.dialect == "postgresql" and ordered:
                # Rows are inserted, then locked, in sorted order: PostgreSQL locks the rows of a
                # SELECT ... ORDER BY ... FOR UPDATE as the sorted rows come out.
                conn.execute(self._db.insert(routing_locks_t).values([{"scope": s} for s in ordered]).on_conflict_do_nothing())
                conn.execute(
                    sa.select(routing_locks_t.c.scope)
                    .where(routing_locks_t.c.scope.in_(ordered))
                    .order_by(routing_locks_t.c.scope)
                    .with_for_update()
                )
            txn = RoutingTxn(
                conn, ordered, db=self._db, leads=self._leads, decisions=self._decisions, waiting=self._waiting, outbox=self._outbox,
                notifications=self._notifications,
            )
            yield txn
            txn.flush()

    def counters(self, scope: str) -> dict[str, int]:
        """One routing counter scope, read without taking its lock (reports and status only)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(routing_counters_t.c.key, routing_counters_t.c.value).where(routing_counters_t.c.scope == scope)
            )
            return {row.key: int(row.value) for row in rows}
