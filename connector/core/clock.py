"""The only reader of the wall clock: everything else receives `now` or a Clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time: timezone-aware UTC `now`, monotonic seconds, real sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class PinnedClock(SystemClock):
    """Real time that starts at a pinned instant: `now` is the pin plus the real seconds since; sleeps are real.

    What `connector --at` / CONNECTOR_AT and the demo run on: a what-if evaluated "as at" another
    instant still sees time pass (rate limits, timeouts and sleeps behave as in production).
    """

    def __init__(self, start: datetime, monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("PinnedClock needs a timezone-aware datetime")
        self.start = start.astimezone(UTC)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._monotonic() - self._origin)


class FrozenClock:
    """A test clock: time moves only when told (or when slept on)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start
        self._mono = 0.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self._mono += seconds
            self._now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def parse_instant(text: str, *, what: str = "--at", naive_is_utc: bool = False) -> datetime:
    """An ISO-8601 instant with a zone (`2026-12-07T15:00:00Z`, `…+02:00`) as aware UTC; ValueError says what is wrong.

    `naive_is_utc` keeps the older `rules test --at 2026-12-07T15:00` form working (read as UTC).
    """
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO-8601 date-time (e.g. 2026-12-07T15:00:00Z)") from None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"{what} {text!r} has no time zone: add Z for UTC or an offset such as +02:00")
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
