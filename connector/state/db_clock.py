"""The clock of what replicas share (the rate limiter, leases, outbox claims): PostgreSQL's time, not each host's."""

from __future__ import annotations

import threading
import weakref
from datetime import UTC, datetime, timedelta

from connector.core.clock import Clock, SystemClock
from connector.state.db import Database

# How long one reading of the database's clock is extended with this host's monotonic clock before it is
# read again. Monotonic time cannot jump (an NTP step moves the wall clock, not it), and two clocks drift
# apart by microseconds per minute: every replica still stamps on the database's timeline, without a round
# trip per stamp (a page of 100 leads stamps about ten times: claims, fences, lease renewals, the limiter).
REREAD_SECONDS = 5.0


class _Anchors:
    """Per Database: the last reading of its clock, per local clock (monotonic seconds, database time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_clock: weakref.WeakKeyDictionary[Clock, tuple[float, datetime]] = weakref.WeakKeyDictionary()


_ANCHORS: weakref.WeakKeyDictionary[Database, _Anchors] = weakref.WeakKeyDictionary()
_ANCHORS_LOCK = threading.Lock()


def _hashable(clock: Clock) -> bool:
    """A clock that can key the readings (not a mutable dataclass, not slots without weak references): others
    read the database every time."""
    try:
        weakref.ref(clock)
        hash(clock)
    except TypeError:
        return False
    return True


def _anchors(db: Database) -> _Anchors:
    with _ANCHORS_LOCK:
        found = _ANCHORS.get(db)
        if found is None:
            found = _ANCHORS[db] = _Anchors()
        return found


class DbClock:
    """A Clock whose `now` is the database's on PostgreSQL: one `SELECT clock_timestamp()` every REREAD_SECONDS,
    carried forward in between by this host's monotonic clock.

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
        anchors = _anchors(self._db)
        mono = self.local.monotonic()
        with anchors.lock:
            anchor = anchors.by_clock.get(self.local) if _hashable(self.local) else None
        if anchor is not None and 0 <= mono - anchor[0] < REREAD_SECONDS:
            return anchor[1] + timedelta(seconds=mono - anchor[0])
        with self._db.engine.connect() as conn:
            sent = self.local.monotonic()  # after the connection is checked out (and pinged): the query's own trip
            value = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
            answered = self.local.monotonic()
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"the state store {self._db.url} answered clock_timestamp() with {value!r}, not a timestamptz")
        value = value.astimezone(UTC)
        # The reading was taken somewhere in the round trip: anchor it at the round trip's middle.
        if _hashable(self.local):
            with anchors.lock:
                anchors.by_clock[self.local] = ((sent + answered) / 2, value)
        return value

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
