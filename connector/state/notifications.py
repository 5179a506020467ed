"""The notifications table: messages decided with routing, claimed and sent by workers, one row per dedupe key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connector.state.db import Database, chunks
from connector.state.schema import notifications_t

t = notifications_t


@dataclass(frozen=True)
class NotificationRow:
    """A queued notification as a sender sees it."""

    id: int
    dedupe_key: str
    channel: str
    event: str
    lead_key: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime


class Notifications:
    """Queue, claim and settle notifications."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert new notifications; a dedupe key already queued (or sent) is left alone."""
        for chunk in chunks(list(rows), 200):
            conn.execute(self._db.insert(t).values(list(chunk)).on_conflict_do_nothing(index_elements=["dedupe_key"]))

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue notifications outside a routing transaction (e.g. a write dead-lettered after it)."""
        if rows:
            with self._db.write() as conn:
                self.save(conn, rows)

    def claim(self, now: datetime, *, lease_seconds: float, limit: int = 100) -> list[NotificationRow]:
        """Due pending rows no live claim holds, claimed until now + lease_seconds (SKIP LOCKED on PostgreSQL)."""
        query = (
            sa.select(t).where(t.c.status == "pending", t.c.next_attempt_at <= now)
            .where(sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now)).order_by(t.c.id).limit(limit)
        )
        if self._db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._db.write() as conn:
            rows = list(conn.execute(query))
            if rows:
                conn.execute(sa.update(t).where(t.c.id.in_([r.id for r in rows]))
                             .values(claimed_until=now + timedelta(seconds=lease_seconds)))
        return [NotificationRow(r.id, r.dedupe_key, r.channel, r.event, r.lead_key, r.payload, r.attempts, r.created_at) for r in rows]

    def settle(self, id: int, now: datetime, *, status: str, error: str | None = None, retry_at: datetime | None = None) -> None:
        """sent; failed (dead-lettered with `error`); or pending again at `retry_at` after a failed attempt."""
        values: dict[str, Any] = {"status": status, "error": error, "claimed_until": None, "attempts": t.c.attempts + 1}
        if status == "sent":
            values["sent_at"] = now
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        with self._db.write() as conn:
            conn.execute(sa.update(t).where(t.c.id == id).values(**values))

    def counts(self) -> dict[str, int]:
        """Rows per status: pending, sent, failed."""
        with self._db.read() as conn:
            return {r.status: int(r.n) for r in conn.execute(sa.select(t.c.status, sa.func.count().label("n")).group_by(t.c.status))}

    def find(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row (of one status), oldest first, as plain dicts (status, tests)."""
        query = sa.select(t).order_by(t.c.id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self._db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
