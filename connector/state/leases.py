"""Leases: named, expiring holds one replica at a time has (the poll of a CRM object, a backfill)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from connector.state.db import Database
from connector.state.schema import leases_t


@dataclass(frozen=True)
class Lease:
    """Who holds a named lease, and until when (a holder that stops renewing loses it then)."""

    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime


class Leases:
    """The leases table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire(self, name: str, holder: str, now: datetime, *, ttl_seconds: float) -> bool:
        """Take (or renew) the named lease until now + ttl_seconds; False while another holder's lease is live.

        One atomic upsert: insert, or take over the row only if this holder already has it or it expired,
        so two replicas racing for a free lease cannot both win (PostgreSQL re-checks the WHERE after the
        other's commit; SQLite serializes writers).
        """
        until = now + timedelta(seconds=ttl_seconds)
        stmt = self._db.insert(leases_t).values(name=name, holder=holder, expires_at=until, acquired_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": stmt.excluded.holder,
                "expires_at": stmt.excluded.expires_at,
                "acquired_at": sa.case((leases_t.c.holder == stmt.excluded.holder, leases_t.c.acquired_at), else_=stmt.excluded.acquired_at),
            },
            where=sa.or_(leases_t.c.holder == stmt.excluded.holder, leases_t.c.expires_at <= now),
        ).returning(leases_t.c.name)
        with self._db.write() as conn:
            return conn.execute(stmt).first() is not None

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up (only if this holder has it); True if it did."""
        with self._db.write() as conn:
            return int(conn.execute(sa.delete(leases_t).where(leases_t.c.name == name, leases_t.c.holder == holder)).rowcount) > 0

    def get(self, name: str) -> Lease | None:
        """The lease row as stored (it may have expired: compare expires_at with now)."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(leases_t).where(leases_t.c.name == name)).first()
            return None if row is None else Lease(row.name, row.holder, row.expires_at, row.acquired_at)
