"""The clock of what replicas share (the rate limiter, leases, outbox claims): PostgreSQL's time, not each host's."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.core.clock import Clock, SystemClock
from connector.state.db import Database


class DbClock:
    """A Clock whose `now` is the database's on PostgreSQL (one `SELECT clock_timestamp()` per call).

    Each replica stamps and compares shared expiries with `now`; a replica whose clock runs 90 s ahead would
    otherwise see another's calls leave the rate window early, take over a live lease or steal a claimed
    write [architecture: Quota is shared and finite]. On SQLite (one process) `now` is `local`'s.
    Monotonic time and sleeps are always `local`'s.
    """

    def __init__(self, db: Database, local: Clock) -> None:
        self._db = db
        self.local = local

    def now(self) -> datetime:
        if self._db.dialect != "postgresql":
            return self.local.now()
        with self._db.engine.connect() as conn:
            value = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"the state store {self._db.url} answered clock_timestamp() with {value!r}, not a timestamptz")
        return value.astimezone(UTC)

    def monotonic(self) -> float:
        return self.local.monotonic()

    def sleep(self, seconds: float) -> None:
        self.local.sleep(seconds)


def shared_clock(db: Database, clock: Clock) -> Clock:
    """The clock for shared limits: the database's time on PostgreSQL when `clock` tells real time, else `clock`.

    A test's FrozenClock (time moves only when told) is kept: its sleeps would never move the database's time.
    """
    if db.dialect == "postgresql" and isinstance(clock, SystemClock):
        return DbClock(db, clock)
    return clock
