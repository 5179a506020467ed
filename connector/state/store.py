"""The state store: one facade over the repositories (one per table group) that every caller goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from connector.core.clock import Clock
from connector.core.models import Event, Patch, WriteResult
from connector.state.cursors import CursorRow, Cursors
from connector.state.db import SQLITE_BUSY_TIMEOUT_SECONDS, Database
from connector.state.db_clock import shared_clock
from connector.state.dead_letters import DEAD_LETTER_STATUSES, DeadLetter, DeadLetters, DeadLetterStatus
from connector.state.decisions import DECISION_KINDS, DecisionKind, DecisionRecord, Decisions
from connector.state.erasure import Erasure
from connector.state.events import AggregateFold, Events
from connector.state.intake import Intake, IntakeItem, IntakeRequest, rejected_data
from connector.state.leads import LeadState, LeadStates
from connector.state.leases import Lease, Leases
from connector.state.notifications import NotificationRow, Notifications
from connector.state.outbox import Outbox, OutboxItem, patch_from_json, patch_to_json
from connector.state.quota import BudgetState, LimiterState, Quota
from connector.state.routing import Routing, RoutingTxn
from connector.state.roundtrips import RoundTrips
from connector.state.runs import Runs
from connector.state.schema import metadata
from connector.state.waiting import WaitingLead, WaitingLeads

__all__ = [
    "DEAD_LETTER_STATUSES", "DECISION_KINDS", "SQLITE_BUSY_TIMEOUT_SECONDS", "AggregateFold", "BudgetState", "CursorRow",
    "DeadLetter", "DeadLetterStatus", "DecisionKind", "DecisionRecord", "IntakeItem", "IntakeRequest", "LeadState", "Lease",
    "LimiterState", "NotificationRow", "OutboxItem", "RoundTrips", "RoutingTxn", "Store", "WaitingLead", "metadata", "patch_from_json", "patch_to_json",
]

T = TypeVar("T")


class Store:
    """One database over SQLite or PostgreSQL; the only way into SQL. Each method hands over to its repository."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._engine = db.engine
        self.dialect: str = db.dialect
        self.url: str = db.url
        self._cursors = Cursors(db)
        self._leads = LeadStates(db)
        self._decisions = Decisions(db)
        self._dead_letters = DeadLetters(db)
        self._outbox = Outbox(db, self._leads, self._dead_letters)
        self._waiting = WaitingLeads(db)
        self._notifications = Notifications(db)
        self._routing = Routing(db, self._leads, self._decisions, self._waiting, self._outbox, self._notifications)
        self._events = Events(db)
        self._intake = Intake(db)
        self._quota = Quota(db)
        self._leases = Leases(db)
        self._runs = Runs(db)
        self._erasure = Erasure(db)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect and (by default) upgrade the schema to head; a bad or unreachable URL is a ConfigError on store.url."""
        return cls(Database.open(url, migrate=migrate, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the database answers (for /healthz)."""
        return self._db.ping()

    def shared_clock(self, clock: Clock) -> Clock:
        """The clock for limits every replica shares: the database's time on PostgreSQL (see db_clock.shared_clock)."""
        return shared_clock(self._db, clock)

    def claim_process(self, purpose: str, now: datetime) -> None:
        """SQLite: make this the only connector process on the file until close() (see Database.claim_process)."""
        self._db.claim_process(purpose, now)

    def round_trips(self) -> RoundTrips:
        """A counter of the statements, transactions and checkouts this store sends, from `attach()` (or `with`) on."""
        return RoundTrips(self._engine)

    def tables_with_rows(self) -> set[str]:
        """The tables holding at least one row (see Database.tables_with_rows)."""
        return self._db.tables_with_rows()

    # cursors

    def get_cursor(self, crm: str, object_type: str, stream: str) -> str | None:
        return self._cursors.get(crm, object_type, stream)

    def set_cursor(self, crm: str, object_type: str, stream: str, value: str, now: datetime) -> None:
        self._cursors.save(crm, object_type, stream, value, now)

    def list_cursors(self) -> list[CursorRow]:
        return self._cursors.all()

    # lead states

    def get_lead_states(self, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        """States of the leads the connector has routed or written; others are absent."""
        return self._leads.get(lead_keys)

    def leads_past_sla(self, now: datetime, limit: int = 1000) -> list[LeadState]:
        """Routed leads whose SLA deadline has passed (earliest first), for SLA reassignment."""
        return self._leads.past_sla(now, limit)

    def clear_sla(self, lead_keys: Sequence[str]) -> None:
        """Stop the SLA clock of leads that were actioned."""
        self._leads.clear_sla(lead_keys)

    def owner_counts(self) -> dict[str, int]:
        """Routed leads per owner id (reports, least-loaded)."""
        return self._leads.owner_counts()

    def count_lead_states(self, prefix: str = "") -> int:
        """Leads the connector has routed or written (whose key starts with `prefix`)."""
        return self._leads.count(prefix)

    # routing

    @contextmanager
    def routing_transaction(self, scopes: Sequence[str]) -> Iterator[RoutingTxn]:
        """Routing for one batch commits together or not at all; one holder per scope at a time (see Routing.transaction)."""
        with self._routing.transaction(scopes) as txn:
            yield txn

    def counters(self, scope: str) -> dict[str, int]:
        """One routing counter scope, read without taking its lock (reports and status only)."""
        return self._routing.counters(scope)

    def waiting_leads(self, crm: str | None = None, *, lead_key: str | None = None) -> list[WaitingLead]:
        """Why and since when leads wait for a rep (one CRM's, one lead, or all), longest waiting first."""
        return self._waiting.find(crm, lead_key=lead_key)

    # decisions

    def record_decision(self, rec: DecisionRecord) -> int:
        """Append a decision outside routing (e.g. a score-only decision); returns its id."""
        return self._decisions.record(rec)

    def decisions_for(self, lead_key: str) -> list[DecisionRecord]:
        """The lead's decision log, oldest first."""
        return self._decisions.for_lead(lead_key)

    def list_decisions(
        self, *, kinds: Sequence[str] | None = None, since: datetime | None = None, limit: int = 200_000
    ) -> list[DecisionRecord]:
        """The decision log, oldest first (optionally some kinds only, or from `since`)."""
        return self._decisions.log(kinds=kinds, since=since, limit=limit)

    # outbox

    def enqueue(self, patches: Sequence[Patch], now: datetime) -> list[int]:
        """Queue writes that no routing decision goes with (score-only patches); ids in order."""
        return self._outbox.enqueue(patches, now)

    def pending_outbox(self, crm: str, limit: int = 1000) -> list[OutboxItem]:
        """Writes still to do for one CRM, oldest first."""
        return self._outbox.pending(crm, limit)

    def claim_outbox(self, crm: str, worker: str, now: datetime, *, limit: int = 1000, lease_seconds: float = 300) -> list[OutboxItem]:
        """Take up to `limit` pending writes no other worker holds a live lease on (see Outbox.claim)."""
        return self._outbox.claim(crm, worker, now, limit=limit, lease_seconds=lease_seconds)

    def hold_outbox(self, ids: Sequence[int], worker: str, now: datetime, *, lease_seconds: float) -> set[int]:
        """Renew this worker's claim on pending rows; returns the ids it still holds (see Outbox.hold)."""
        return self._outbox.hold(ids, worker, now, lease_seconds=lease_seconds)

    def complete_outbox(self, done: Sequence[tuple[int, Patch, WriteResult]], now: datetime, *, max_attempts: int = 5) -> None:
        """Record write outcomes: done, retried or dead-lettered (see Outbox.complete)."""
        self._outbox.complete(done, now, max_attempts=max_attempts)

    def purge_outbox(self, before: datetime) -> int:
        """Delete finished (done) outbox rows last touched before `before`."""
        return self._outbox.purge(before)

    def count_pending_outbox(self) -> dict[str, int]:
        """Writes still to do, per CRM."""
        return self._outbox.count_pending()

    def count_claimable_outbox(self, crm: str, now: datetime) -> int:
        """Writes of one CRM still to do that no worker holds a live claim on at `now`."""
        return self._outbox.count_claimable(crm, now)

    # notifications

    def add_notifications(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue notifications on their own (a dead-lettered write's); a dedupe key already queued adds nothing."""
        self._notifications.add(rows)

    def claim_notifications(self, now: datetime, *, lease_seconds: float, limit: int = 100) -> list[NotificationRow]:
        """Due notifications claimed for this sender (see Notifications.claim)."""
        return self._notifications.claim(now, lease_seconds=lease_seconds, limit=limit)

    def settle_notification(
        self, id: int, now: datetime, *, status: str, error: str | None = None, retry_at: datetime | None = None,
    ) -> None:
        self._notifications.settle(id, now, status=status, error=error, retry_at=retry_at)

    def count_notifications(self) -> dict[str, int]:
        """Notifications per status: pending, sent, failed."""
        return self._notifications.counts()

    def list_notifications(self, status: str | None = None) -> list[dict[str, Any]]:
        return self._notifications.find(status)

    # dead letters

    def add_dead_letter(
        self, *, crm: str, object_type: str, record_id: str, field: str | None, code: str | None, message: str,
        payload: Mapping[str, Any], now: datetime,
    ) -> int:
        """File a record the connector gives up on; the same record + code again counts up that row. Returns its id."""
        return self._dead_letters.add(
            crm=crm, object_type=object_type, record_id=record_id, field=field, code=code, message=message, payload=payload, now=now,
        )

    def list_dead_letters(self, status: str | None = "open", limit: int = 100) -> list[DeadLetter]:
        """Dead letters with this status (None: all), oldest first."""
        return self._dead_letters.find(status, limit)

    def get_dead_letter(self, id: int) -> DeadLetter | None:
        return self._dead_letters.get(id)

    def set_dead_letter_status(self, id: int, status: str, now: datetime) -> None:
        """Move a dead letter to open / retrying / discarded / resolved; unknown ids raise KeyError."""
        self._dead_letters.set_status(id, status, now)

    def count_dead_letters(self, status: str | None = "open") -> int:
        return self._dead_letters.count(status)

    # events

    def add_events(self, events: Sequence[Event], fold: AggregateFold | None = None) -> int:
        """Store events not stored yet and keep their keys' aggregates current; returns how many were new (see Events.add)."""
        return self._events.add(events, fold)

    def accept_events(
        self, events: Sequence[Event], intake: Sequence[IntakeRequest], now: datetime, fold: AggregateFold | None = None,
    ) -> tuple[int, list[int]]:
        """Store events (see `add_events`) and queue the intake rows they cause, in one transaction: (new events, row ids).

        A value the database refuses (too long, a NUL) raises RejectedDataError and nothing is kept.
        """
        with rejected_data(), self._db.write() as conn:
            return self._events.add_in(conn, events, fold), self._intake.insert(conn, intake, now)

    def event_aggregates(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """Stored aggregates of the keys that have them: key -> (signature, data); signature "" = stale."""
        return self._events.aggregates(keys)

    def rebuild_event_aggregates(
        self, keys: Sequence[str], build: Callable[[Sequence[Event]], tuple[str, Mapping[str, Any]]],
    ) -> dict[str, tuple[str, Any]]:
        """Aggregates of `keys` rebuilt from their stored events by `build`, and saved (see Events.rebuild_aggregates)."""
        return self._events.rebuild_aggregates(keys, build)

    def events_for(self, lead_keys: Sequence[str], since: datetime | None = None) -> dict[str, list[Event]]:
        """Every requested key → its events (oldest first; an empty list when none)."""
        return self._events.for_leads(lead_keys, since)

    def purge_events(self, before: datetime) -> int:
        """Delete events that occurred before `before`; their keys' aggregates go stale. Returns how many."""
        return self._events.purge(before)

    # runs

    def record_run(self, kind: str, summary: Mapping[str, Any], now: datetime) -> None:
        self._runs.record(kind, summary, now)

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first: {"id", "kind", "summary", "created_at"}."""
        return self._runs.last(limit)

    # shared quota (the algorithms live in connector/state/ratelimit.py; this is their row lock)

    def update_limiter(self, account: str, fn: Callable[[LimiterState], tuple[LimiterState, T]]) -> T:
        """Read, change and write one account's limiter row under a row lock; `fn` is pure and quick."""
        return self._quota.update_limiter(account, fn)

    def update_budget(self, account: str, fn: Callable[[BudgetState], tuple[BudgetState, T]]) -> T:
        """Read, change and write one account's daily budget row under a row lock; `fn` is pure and quick."""
        return self._quota.update_budget(account, fn)

    def budget_states(self) -> dict[str, BudgetState]:
        """Every account's daily-budget row as last written (read-only: the day is not rolled here)."""
        return self._quota.budget_states()

    # service intake

    def add_intake(self, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
        """Durably queue accepted work; returns the row ids in order."""
        return self._intake.add(items, now)

    def accept_deliveries(
        self, delivery_ids: Sequence[str], plan: Callable[[frozenset[str]], Sequence[IntakeRequest]], now: datetime
    ) -> tuple[frozenset[str], list[int]]:
        """Record new delivery ids and the intake rows `plan(new_ids)` derives from them, in one transaction."""
        return self._intake.accept_deliveries(delivery_ids, plan, now)

    def claim_intake(self, worker: str, now: datetime, *, lease_seconds: float, limit: int = 500) -> list[IntakeItem]:
        """Claim pending rows (and rows whose claim lease ran out), oldest first."""
        return self._intake.claim(worker, now, lease_seconds=lease_seconds, limit=limit)

    def finish_intake(self, ids: Sequence[int], now: datetime, *, status: str = "done", error: str | None = None) -> None:
        """Mark claimed rows done (or failed, after they were dead-lettered)."""
        self._intake.finish(ids, now, status=status, error=error)

    def release_intake(
        self, ids: Sequence[int], now: datetime, *, error: str | None, count_attempt: bool, retry_at: datetime | None = None,
    ) -> None:
        """Put claimed rows back to pending, counting an attempt when it failed; with `retry_at`, retrying until then."""
        self._intake.release(ids, now, error=error, count_attempt=count_attempt, retry_at=retry_at)

    def release_intake_claims(self, worker: str, now: datetime) -> int:
        """Shutdown: every row this worker still holds goes back to pending; returns how many."""
        return self._intake.release_claims(worker, now)

    def count_pending_intake(self) -> int:
        """Intake rows not finished yet (pending, claimed or retrying)."""
        return self._intake.count_pending()

    def retrying_intake(self) -> tuple[int, datetime | None]:
        """Intake rows retrying after a CRM error, and the oldest one's accepted_at."""
        return self._intake.retrying()

    def intake_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Intake rows (all, or with this status), oldest first: for the CLI and tests."""
        return self._intake.rows(status)

    def purge_intake(self, before: datetime) -> int:
        """Delete finished intake rows and delivery ids older than `before`; returns rows removed."""
        return self._intake.purge(before)

    # leases

    def acquire_lease(self, name: str, holder: str, now: datetime, *, ttl_seconds: float) -> bool:
        """Take (or renew) the named lease until now + ttl_seconds; False while another holder's lease is live."""
        return self._leases.acquire(name, holder, now, ttl_seconds=ttl_seconds)

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up (only if this holder has it); True if it did."""
        return self._leases.release(name, holder)

    def get_lease(self, name: str) -> Lease | None:
        """The lease row as stored (it may have expired: compare expires_at with now)."""
        return self._leases.get(name)

    # privacy

    def erase_person(self, *, refs: Sequence[str], lead_keys: Sequence[str], redact: Callable[[str], str], now: datetime) -> dict[str, int]:
        """Erase what the store holds about one person, in one transaction; counts per kind of row (see Erasure)."""
        return self._erasure.erase_person(refs=refs, lead_keys=lead_keys, redact=redact, now=now)
