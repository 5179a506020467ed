"""availability: working hours in the rep's zone, night shifts, absences, public holidays, next availability."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connector.engine.routing.availability import OutOfOffice, Schedule, build_week, load_holidays, load_zone, parse_range

HELSINKI = load_zone("Europe/Helsinki")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:00-17:30", (540, 1050)), ("0:00-24:00", (0, 1440)), ("22:00-06:00", (1320, 360))],
)
def test_parse_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["9-5", "09:00-09:00", "25:00-26:00", "09:60-10:00", "24:30-10:00"])
def test_parse_range_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="working hours"):
        parse_range(text)


def test_build_week_forms() -> None:
    assert build_week(None) is None
    week = build_week("09:00-17:00")
    assert week is not None and week[0] == ((540, 1020),) and week[5] == ()
    table = build_week({"mon": ["08:00-12:00", "13:00-17:00"], "sat": "10:00-14:00"})
    assert table is not None and table[0] == ((480, 720), (780, 1020)) and table[1] == () and table[5] == ((600, 840),)
    night = build_week("22:00-06:00", ["fri"])
    assert night is not None and night[4] == ((1320, 1440),) and night[5] == ((0, 360),)


def test_working_hours_are_read_in_the_reps_zone() -> None:
    schedule = Schedule(timezone=HELSINKI, week=build_week("08:00-16:00"))
    assert schedule.is_available(datetime(2026, 3, 3, 6, 0, tzinfo=UTC))  # 08:00 in Helsinki
    assert schedule.unavailable_reason(datetime(2026, 3, 3, 14, 0, tzinfo=UTC)) == "outside working hours (Tue 16:00 Europe/Helsinki)"
    assert not schedule.is_available(datetime(2026, 3, 7, 9, 0, tzinfo=UTC))  # Saturday
    summer = datetime(2026, 7, 7, 5, 30, tzinfo=UTC)  # 08:30 EEST (UTC+3)
    assert schedule.is_available(summer)


def test_out_of_office_dates_are_whole_local_days_and_datetimes_are_instants() -> None:
    days = Schedule(timezone=HELSINKI, out_of_office=(OutOfOffice(date(2026, 3, 2), date(2026, 3, 3), "fair"),))
    assert days.unavailable_reason(datetime(2026, 3, 3, 21, 59, tzinfo=UTC)) == "out of office 2026-03-02 to 2026-03-03 (fair)"
    assert days.is_available(datetime(2026, 3, 3, 22, 0, tzinfo=UTC))  # 00:00 on the 4th in Helsinki
    part = Schedule(timezone=HELSINKI, out_of_office=(OutOfOffice(datetime(2026, 3, 3, 9, 0), datetime(2026, 3, 3, 12, 0)),))
    assert not part.is_available(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))  # 10:00 local
    assert part.is_available(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))  # 12:00 local: over


def test_public_holidays_of_the_country_and_subdivision() -> None:
    fi = Schedule(timezone=HELSINKI, holidays=load_holidays("FI"), country="FI")
    assert fi.unavailable_reason(datetime(2026, 12, 6, 10, tzinfo=UTC)) == "public holiday in FI: Independence Day"
    ca = Schedule(timezone=load_zone("America/Los_Angeles"), holidays=load_holidays("US", "CA"), country="US")
    assert not ca.is_available(datetime(2026, 3, 31, 18, tzinfo=UTC))  # César Chávez Day, California only
    with pytest.raises(ValueError):
        load_holidays("XX")


def test_next_available_skips_nights_weekends_and_absences() -> None:
    schedule = Schedule(timezone=HELSINKI, week=build_week("08:00-16:00"), out_of_office=(OutOfOffice(date(2026, 3, 9), date(2026, 3, 9)),))
    friday_evening = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    assert schedule.next_available(friday_evening) == datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # Tuesday 08:00 local
    assert schedule.next_available(datetime(2026, 3, 3, 7, 0, tzinfo=UTC)) == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    never = Schedule(timezone=HELSINKI, out_of_office=(OutOfOffice(date(2026, 1, 1), date(2027, 1, 1)),))
    assert never.next_available(friday_evening) is None


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        load_zone("Mars/Base")
