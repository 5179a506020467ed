"""Service intake: webhook and event work accepted durably (the service answers 2xx only once it is here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connector.core.errors import RejectedDataError
from connector.state.db import Database, chunks
from connector.state.schema import intake_t, webhook_deliveries_t

# The status of a row that failed with a CRM error (5xx, timeout, 429): it waits for claimed_until, no attempt used.
RETRYING = "retrying"


@contextmanager
def rejected_data() -> Iterator[None]:
    """Values the database refuses (PostgreSQL: too long for the column, a NUL, bad Unicode) → RejectedDataError.

    SQLite keeps such values, so without this one sender's bad message reads as "store unavailable" there only.
    """
    try:
        yield
    except sa.exc.DataError as exc:
        raise RejectedDataError(f"the state store refused a value: {type(exc.orig).__name__}") from exc
    except sa.exc.StatementError as exc:
        if isinstance(exc.orig, UnicodeError | ValueError) and not isinstance(exc, sa.exc.DBAPIError):
            raise RejectedDataError(f"the state store refused a value: {type(exc.orig).__name__}") from exc
        raise


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


class Intake:
    """The intake and webhook_deliveries tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, conn: sa.Connection, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
        """Queue `items` inside the caller's transaction; returns the row ids in order."""
        return self._insert(conn, items, now)

    def _insert(self, conn: sa.Connection, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
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

    def add(self, items: Sequence[IntakeRequest], now: datetime) -> list[int]:
        """Durably queue accepted work; returns the row ids in order."""
        if not items:
            return []
        with self._db.write() as conn:
            return self._insert(conn, items, now)

    def accept_deliveries(
        self, delivery_ids: Sequence[str], plan: Callable[[frozenset[str]], Sequence[IntakeRequest]], now: datetime
    ) -> tuple[frozenset[str], list[int]]:
        """Record delivery ids never seen before and the intake rows `plan(new_ids)` derives from them, in one
        transaction: a redelivered event is recognised durably, and never half-accepted. `plan` is pure and quick."""
        wanted = list(dict.fromkeys(delivery_ids))
        with rejected_data(), self._db.write() as conn:
            new: set[str] = set()
            for chunk in chunks(wanted):
                stmt = (
                    self._db.insert(webhook_deliveries_t)
                    .on_conflict_do_nothing(index_elements=["delivery_id"])
                    .returning(webhook_deliveries_t.c.delivery_id)
                )
                new.update(conn.execute(stmt, [{"delivery_id": d, "received_at": now} for d in chunk]).scalars())
            fresh = frozenset(new)
            return fresh, self._insert(conn, plan(fresh) if fresh else [], now)

    def claim(self, worker: str, now: datetime, *, lease_seconds: float, limit: int = 500) -> list[IntakeItem]:
        """Claim pending rows (and rows whose claim lease ran out: a crashed worker's), oldest first.

        PostgreSQL: FOR UPDATE SKIP LOCKED, so replicas claim disjoint rows; SQLite: BEGIN IMMEDIATE serializes.
        """
        claimable = sa.or_(
            intake_t.c.status == "pending",
            # A "retrying" row (a CRM error) waits until claimed_until, its retry time.
            sa.and_(intake_t.c.status.in_(("claimed", RETRYING)), intake_t.c.claimed_until < now),
        )
        query = sa.select(intake_t).where(claimable).order_by(intake_t.c.id).limit(limit)
        if self._db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        until = now + timedelta(seconds=lease_seconds)
        with self._db.write() as conn:
            rows = list(conn.execute(query))
            for chunk in chunks([r.id for r in rows]):
                conn.execute(
                    sa.update(intake_t).where(intake_t.c.id.in_(chunk)).values(status="claimed", claimed_by=worker, claimed_until=until)
                )
            return [
                IntakeItem(r.id, r.crm, r.object_type, r.kind, r.ref, r.target, r.source, r.correlation_id, r.accepted_at, int(r.attempts))
                for r in rows
            ]

    def finish(self, ids: Sequence[int], now: datetime, *, status: str = "done", error: str | None = None) -> None:
        """Mark claimed rows done (or failed, after they were dead-lettered)."""
        if status not in ("done", "failed"):
            raise ValueError(f"intake rows finish as done or failed, got {status!r}")
        with self._db.write() as conn:
            for chunk in chunks(list(ids)):
                conn.execute(
                    sa.update(intake_t)
                    .where(intake_t.c.id.in_(chunk))
                    .values(status=status, finished_at=now, error=error, claimed_by=None, claimed_until=None)
                )

    def release(
        self, ids: Sequence[int], now: datetime, *, error: str | None, count_attempt: bool, retry_at: datetime | None = None,
    ) -> None:
        """Put claimed rows back to pending (a failed or interrupted batch), counting an attempt when it failed;
        with `retry_at`, the rows wait as "retrying" (a CRM error, no attempt used) until then."""
        values: dict[str, Any] = {"status": "pending", "claimed_by": None, "claimed_until": None, "error": error}
        if retry_at is not None:
            values |= {"status": RETRYING, "claimed_until": retry_at}
        if count_attempt:
            values["attempts"] = intake_t.c.attempts + 1
        with self._db.write() as conn:
            for chunk in chunks(list(ids)):
                conn.execute(sa.update(intake_t).where(intake_t.c.id.in_(chunk), intake_t.c.status == "claimed").values(**values))

    def release_claims(self, worker: str, now: datetime) -> int:
        """Shutdown: every row this worker still holds goes back to pending for the next start; returns how many."""
        with self._db.write() as conn:
            result = conn.execute(
                sa.update(intake_t)
                .where(intake_t.c.status == "claimed", intake_t.c.claimed_by == worker)
                .values(status="pending", claimed_by=None, claimed_until=None)
            )
            return int(result.rowcount)

    def count_pending(self) -> int:
        """Intake rows not finished yet (pending or claimed)."""
        with self._db.read() as conn:
            query = sa.select(sa.func.count()).select_from(intake_t).where(intake_t.c.status.in_(("pending", "claimed", RETRYING)))
            return int(conn.scalar(query) or 0)

    def retrying(self) -> tuple[int, datetime | None]:
        """Rows waiting to be retried after a CRM error, and the oldest one's accepted_at."""
        with self._db.read() as conn:
            query = sa.select(sa.func.count(), sa.func.min(intake_t.c.accepted_at)).where(intake_t.c.status == RETRYING)
            count, oldest = conn.execute(query).one()
            return int(count or 0), oldest

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Intake rows (all, or with this status), oldest first: for the CLI and tests."""
        query = sa.select(intake_t).order_by(intake_t.c.id)
        if status is not None:
            query = query.where(intake_t.c.status == status)
        with self._db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def purge(self, before: datetime) -> int:
        """Delete finished (done) intake rows and delivery ids older than `before`; failed rows stay. Returns rows removed."""
        with self._db.write() as conn:
            rows = conn.execute(sa.delete(intake_t).where(intake_t.c.status == "done", intake_t.c.finished_at < before)).rowcount
            rows += conn.execute(sa.delete(webhook_deliveries_t).where(webhook_deliveries_t.c.received_at < before)).rowcount
            return int(rows)
