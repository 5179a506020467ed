"""Rep availability at an instant: working hours in the rep's time zone, out-of-office ranges, public holidays."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKWEEK: tuple[str, ...] = WEEKDAYS[:5]
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60

# What keeps a rep from leads at an instant, by the kind of absence.
Unavailability = Literal["out_of_office", "holiday", "outside_hours"]

# Minutes after local midnight, [start, end).
Interval = tuple[int, int]
Week = tuple[tuple[Interval, ...], ...]  # 7 entries, Monday first


class HolidayCalendar(Protocol):
    """What routing needs from a `holidays` calendar: the holiday's name on a date, or None."""

    def get(self, key: date, default: None = None) -> str | None: ...


def parse_range(text: str) -> tuple[int, int]:
    """`"09:00-17:30"` -> (540, 1050). `24:00` is a valid end; an end before the start runs past midnight.

    Raises ValueError with what is wrong, for config checks.
    """
    m = _RANGE.match(text)
    if m is None:
        raise ValueError(f"working hours {text!r} are not HH:MM-HH:MM (e.g. \"09:00-17:30\")")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"working hours {text!r} name a time that does not exist")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"working hours {text!r} are empty (start equals end)")
    return start, end


def build_week(spec: str | list[str] | Mapping[str, str | list[str]] | None, days: Sequence[str] = WORKWEEK) -> Week | None:
    """Working intervals per weekday from config; None means no restriction (always working).

    `spec` is one range (or a list of ranges) applied to `days`, or a table weekday -> range(s);
    weekdays missing from the table are days off. A range whose end is before its start (a night
    shift, "22:00-06:00") ends on the next weekday.
    """
    if spec is None:
        return None
    per_day: dict[str, list[str]] = {}
    if isinstance(spec, Mapping):
        for day, ranges in spec.items():
            per_day[day.lower()] = [ranges] if isinstance(ranges, str) else list(ranges)
    else:
        ranges = [spec] if isinstance(spec, str) else list(spec)
        per_day = {d.lower(): ranges for d in days}
    week: list[list[Interval]] = [[] for _ in WEEKDAYS]
    for day, ranges in per_day.items():
        i = WEEKDAYS.index(day)
        for text in ranges:
            start, end = parse_range(text)
            if end > start:
                week[i].append((start, end))
            else:  # past midnight: the tail belongs to the next weekday
                week[i].append((start, MINUTES_PER_DAY))
                if end:
                    week[(i + 1) % 7].append((0, end))
    return tuple(tuple(sorted(day)) for day in week)


@dataclass(frozen=True, slots=True)
class OutOfOffice:
    """An absence. Dates are whole local days, both ends included; datetimes are instants, end excluded."""

    start: date | datetime
    end: date | datetime
    note: str = ""

    def covers(self, local: datetime, tz: ZoneInfo) -> bool:
        if isinstance(self.start, datetime) or isinstance(self.end, datetime):
            lo = _instant(self.start, tz, end=False)
            hi = _instant(self.end, tz, end=True)
            return lo <= local < hi
        return self.start <= local.date() <= self.end

    def describe(self) -> str:
        label = f"out of office {_day(self.start)} to {_day(self.end)}"
        return f"{label} ({self.note})" if self.note else label


def _day(value: date | datetime) -> str:
    return value.isoformat(timespec="minutes") if isinstance(value, datetime) else value.isoformat()


def _instant(value: date | datetime, tz: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    # A bare date next to a datetime: the whole day counts (end of day for the end bound).
    day = value + timedelta(days=1) if end else value
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone, or ValueError naming it (zoneinfo reads the packaged tzdata, not the network)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as \"Europe/Helsinki\")") from exc


def load_holidays(country: str, subdivision: str | None = None) -> HolidayCalendar:
    """The public-holiday calendar of a country (ISO 3166-1 alpha-2), optionally one subdivision.

    The calendar fills each year on first lookup (the `holidays` library's `expand` mode), so one
    object per country serves every date; it is built once per compiled config.
    """
    try:
        return holiday_data.country_holidays(country.upper(), subdiv=subdivision)
    except NotImplementedError as exc:  # the library's signal for an unknown country or subdivision
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one rep works: zone, weekly hours (None = always), absences and a holiday calendar."""

    timezone: ZoneInfo
    week: Week | None = None
    out_of_office: tuple[OutOfOffice, ...] = ()
    holidays: HolidayCalendar | None = None
    country: str | None = None

    def unavailable_reason(self, now: datetime) -> str | None:
        """Why the rep cannot take a lead at `now` (aware), or None when they can."""
        found = self._unavailable(now)
        return found[1] if found is not None else None

    def unavailable_cause(self, now: datetime) -> Unavailability | None:
        """Which kind of absence keeps the rep from leads at `now` (the one `unavailable_reason` names), or None."""
        found = self._unavailable(now)
        return found[0] if found is not None else None

    def _unavailable(self, now: datetime) -> tuple[Unavailability, str] | None:
        local = now.astimezone(self.timezone)
        for absence in self.out_of_office:
            if absence.covers(local, self.timezone):
                return "out_of_office", absence.describe()
        if self.holidays is not None:
            name = self.holidays.get(local.date())
            if name is not None:
                return "holiday", f"public holiday in {self.country}: {name}"
        if self.week is not None:
            minute = local.hour * 60 + local.minute
            if not any(start <= minute < end for start, end in self.week[local.weekday()]):
                return "outside_hours", f"outside working hours ({WEEKDAYS[local.weekday()].title()} {local:%H:%M} {self.timezone.key})"
        return None

    def is_available(self, now: datetime) -> bool:
        return self.unavailable_reason(now) is None

    def next_available(self, now: datetime, horizon_days: int = 31) -> datetime | None:
        """The first instant at or after `now` the rep is available (within the horizon), else None.

        Availability can only begin at a working-interval start, a local midnight (holidays and
        whole-day absences end there) or the end of an absence given as an instant.
        """
        if self.is_available(now):
            return now
        local = now.astimezone(self.timezone)
        moments: list[datetime] = [
            _instant(a.end, self.timezone, end=True) for a in self.out_of_office if isinstance(a.end, datetime)
        ]
        for offset in range(horizon_days + 1):
            day = local.date() + timedelta(days=offset)
            starts = {0} | ({s for s, _ in self.week[day.weekday()]} if self.week is not None else set())
            moments += [datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=self.timezone) for m in starts]
        for at in sorted(m for m in moments if m >= local):
            if self.is_available(at):
                return at.astimezone(now.tzinfo)
        return None
