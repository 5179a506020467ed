"""A lead that waits says why and until when: the wait cause, the first rep to become available and the reason line.

Every case pins `now`; nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.engine.routing import (
    OPEN_SCOPE,
    RoutingContext,
    RoutingState,
    availability_snapshot,
    compile_routing,
    day_scope,
    next_day_start,
    route_lead,
    state_from_counters,
)
from connector.core.models import WAIT_CAUSES
from tests.engine.routing import oracle
from tests.engine.routing.test_routing import COLD, config, lead, rep, reps_for, router

SATURDAY = datetime(2026, 12, 5, 2, 50, tzinfo=UTC)  # 21:50 Friday in New York, 18:50 in Los Angeles
SUNDAY_LA = datetime(2026, 12, 7, 7, 59, tzinfo=UTC)  # Sunday 23:59 in Los Angeles, Monday 02:59 in New York
WEEKDAY = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
CHRISTMAS = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
ALL = [{"name": "all", "pool": "p"}]
BEN = rep("ben@x.test", timezone="America/New_York", working_hours="09:00-17:30")
AVA = rep("ava@x.test", timezone="America/Los_Angeles", working_hours="08:00-17:00")


def pool(*emails: str) -> dict[str, Any]:
    return {"p": {"reps": list(emails)}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# id, reps, now, counters, inactive reps -> cause, next available at, who, the reason line's tail
CASES: list[tuple[str, list[dict[str, Any]], datetime, dict[str, dict[str, int]], frozenset[str], str, datetime | None, str | None, str]] = [
    (
        "weekend: New York opens first", [BEN, AVA], SATURDAY, {}, frozenset(),
        "outside_hours", at("2026-12-07T14:00+00:00"), "ben@x.test",
        "waiting: nobody in pool 'p' is available (outside working hours); "
        "next available: ben@x.test at Mon 09:00 America/New_York (2026-12-07T14:00Z)",
    ),
    (
        "Sunday 23:59 in Los Angeles", [BEN, AVA], SUNDAY_LA, {}, frozenset(),
        "outside_hours", at("2026-12-07T14:00+00:00"), "ben@x.test",
        "next available: ben@x.test at Mon 09:00 America/New_York (2026-12-07T14:00Z)",
    ),
    (
        "out of office all week", [rep("ben@x.test", out_of_office=[{"start": "2026-12-07", "end": "2026-12-11", "note": "trip"}])],
        WEEKDAY, {}, frozenset(),
        "out_of_office", at("2026-12-12T00:00+00:00"), "ben@x.test",
        "waiting: nobody in pool 'p' is available (out of office); next available: ben@x.test at Sat 00:00 UTC (2026-12-12T00:00Z)",
    ),
    (
        "Finnish Christmas: back after Boxing Day", [rep("ben@x.test", timezone="Europe/Helsinki", country="FI")], CHRISTMAS, {}, frozenset(),
        "holiday", at("2026-12-26T22:00+00:00"), "ben@x.test",
        "(public holiday); next available: ben@x.test at Sun 00:00 Europe/Helsinki (2026-12-26T22:00Z)",
    ),
    (
        "day cap: free at the next routing day", [rep("ben@x.test", max_leads_per_day=2)], WEEKDAY,
        {"load:day:2026-12-08": {"ben@x.test": 2}}, frozenset(),
        "at_capacity", at("2026-12-09T00:00+00:00"), "ben@x.test",
        "waiting: nobody in pool 'p' is available (at capacity); next available: ben@x.test at Wed 00:00 UTC (2026-12-09T00:00Z)",
    ),
    (
        "open-leads cap: no known time", [rep("ben@x.test", max_open_leads=3)], WEEKDAY, {OPEN_SCOPE: {"ben@x.test": 3}}, frozenset(),
        "at_capacity", None, None,
        "waiting: nobody in pool 'p' is available (at capacity); next available: when a rep's open leads close (max_open_leads)",
    ),
    (
        "inactive in the CRM", [rep("ben@x.test")], WEEKDAY, {}, frozenset({"ben@x.test"}),
        "inactive", None, None, "waiting: nobody in pool 'p' is available (inactive or not a CRM owner); next available: unknown",
    ),
    (
        "off hours and full today: the day cap moves it to tomorrow",
        [rep("ben@x.test", working_hours="13:00-17:00", max_leads_per_day=1)], at("2026-12-08T10:00+00:00"),
        {"load:day:2026-12-08": {"ben@x.test": 1}}, frozenset(),
        "outside_hours", at("2026-12-09T13:00+00:00"), "ben@x.test", "next available: ben@x.test at Wed 13:00 UTC (2026-12-09T13:00Z)",
    ),
    (
        "the most common cause wins; the first free rep is named", [BEN, AVA, rep("cy@x.test", max_open_leads=0)], SATURDAY, {}, frozenset(),
        "outside_hours", at("2026-12-07T14:00+00:00"), "ben@x.test", "(outside working hours); next available: ben@x.test",
    ),
    (
        "a tie goes to the cause listed first", [BEN, rep("cy@x.test", max_leads_per_day=1)], SATURDAY,
        {"load:day:2026-12-05": {"cy@x.test": 1}}, frozenset(),
        "outside_hours", at("2026-12-06T00:00+00:00"), "cy@x.test",
        "(outside working hours); next available: cy@x.test at Sun 00:00 UTC (2026-12-06T00:00Z)",
    ),
]


@pytest.mark.parametrize(
    ("reps", "now", "counters", "inactive", "cause", "next_at", "who", "line"),
    [case[1:] for case in CASES], ids=[case[0] for case in CASES],
)
def test_a_waiting_lead_says_why_and_until_when(
    reps: list[dict[str, Any]], now: datetime, counters: dict[str, dict[str, int]], inactive: frozenset[str],
    cause: str, next_at: datetime | None, who: str | None, line: str,
) -> None:
    cfg = config(reps=reps, pools=pool(*(r["email"] for r in reps)), rules=ALL)
    decision = router(cfg, inactive=inactive, counters=counters).route(lead(), now=now)
    assert (decision.kind, decision.owner_id, decision.pool) == ("wait", None, "p")
    assert (decision.wait_cause, decision.next_available_at, decision.next_available_rep) == (cause, next_at, who)
    assert decision.reasons[-1].startswith("waiting: nobody in pool 'p' is available (")
    assert line in decision.reasons[-1]
    assert decision.wait_cause in WAIT_CAUSES
    if next_at is not None:
        assert next_at > now


@pytest.mark.parametrize("now", [SATURDAY, SUNDAY_LA, at("2026-12-31T23:30+00:00"), at("2026-03-29T00:30+00:00"), at("2026-10-25T00:30+00:00")])
def test_the_named_rep_is_available_at_the_named_instant_and_not_before(now: datetime) -> None:
    helsinki = rep("eli@x.test", timezone="Europe/Helsinki", working_hours="08:00-16:00", country="FI")
    cfg = config(reps=[BEN, AVA, helsinki], pools=pool("ben@x.test", "ava@x.test", "eli@x.test"), rules=ALL)
    r = router(cfg)
    decision = r.route(lead(), now=now)
    if decision.kind != "wait":  # someone works at this instant: nothing to wait for
        assert decision.rep in ("ben@x.test", "ava@x.test", "eli@x.test")
        return
    assert decision.next_available_at is not None and decision.next_available_rep is not None
    ready = r.route(lead("2"), now=decision.next_available_at)
    assert (ready.kind, ready.rep) == ("rule", decision.next_available_rep)
    just_before = decision.next_available_at - timedelta(minutes=1)
    assert just_before > now
    assert r.route(lead("3"), now=just_before).kind == "wait"


def test_no_fallback_queue_says_so_and_names_both_pools() -> None:
    cfg = config(
        reps=[BEN, AVA], pools={"p": {"reps": ["ben@x.test"]}, "catch": {"reps": ["ava@x.test"]}}, rules=ALL,
        fallback_pool="catch", when_unavailable="fallback", fallback_queue={"salesforce": "00GQ"},
    )
    r = router(cfg)
    waiting = r.route(lead(crm="hubspot"), now=SATURDAY)
    assert (waiting.kind, waiting.wait_cause, waiting.next_available_rep) == ("wait", "outside_hours", "ben@x.test")
    assert waiting.reasons[-1] == (
        "waiting: no fallback queue for hubspot; nobody in pools 'p' or 'catch' is available (outside working hours); "
        "next available: ben@x.test at Mon 09:00 America/New_York (2026-12-07T14:00Z)"
    )
    queued = r.route(lead(crm="salesforce"), now=SATURDAY)
    assert (queued.kind, queued.owner_id, queued.wait_cause, queued.next_available_at) == ("fallback", "00GQ", None, None)


def test_routed_leads_carry_no_wait_fields() -> None:
    decision = router(config(reps=[BEN, AVA], pools=pool("ben@x.test", "ava@x.test"), rules=ALL)).route(lead(), now=WEEKDAY)
    assert decision.rep == "ben@x.test"
    assert (decision.wait_cause, decision.next_available_at, decision.next_available_rep) == (None, None, None)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_the_planned_path_and_the_reference_path_wait_alike(case: tuple[Any, ...]) -> None:
    _, reps, now, counters, inactive, cause, _, _, _ = case
    cfg = config(reps=reps, pools=pool(*(r["email"] for r in reps)), rules=ALL)
    fast = compile_routing(cfg)
    reference = replace(fast, batch_memo={})
    resolved = reps_for(cfg, inactive)
    results = []
    for compiled, route in ((fast, route_lead), (reference, oracle.route_lead)):
        ctx = RoutingContext(reps=resolved, availability=availability_snapshot(resolved, compiled, now))
        results.append(route(lead(), COLD, ctx, state_from_counters(counters), compiled, now))
    assert results[0] == results[1]
    assert results[0][0].wait_cause == cause


def test_the_next_routing_day_starts_at_midnight_in_the_day_time_zone() -> None:
    compiled = compile_routing(config(reps=[BEN], pools=pool("ben@x.test"), rules=ALL, day_timezone="America/New_York"))
    assert next_day_start(compiled, SATURDAY) == at("2026-12-05T05:00+00:00")  # Friday 21:50 in New York: Saturday begins at 05:00Z
    assert day_scope(compiled, SATURDAY) == "load:day:2026-12-04"
    assert next_day_start(compiled, WEEKDAY) == at("2026-12-09T05:00+00:00")


def test_a_reassignment_with_nobody_else_keeps_the_wait_details() -> None:
    from connector.engine.routing import reassign_lead

    cfg = config(reps=[BEN, AVA], pools=pool("ben@x.test", "ava@x.test"), rules=ALL, sla={"minutes": 30})
    compiled = compile_routing(cfg)
    reps = reps_for(cfg)

    class View:
        routed_owner_id, routed_rep, routed_at, reassignments, initial_status = "h-ben", "ben@x.test", SATURDAY, 0, None

    ctx = RoutingContext(reps=reps)
    decision, change = reassign_lead(lead(owner_id="h-ben"), COLD, View(), ctx, RoutingState(), compiled, SATURDAY, "sla")
    assert change.ops == ()
    assert (decision.kind, decision.owner_id) == ("wait", None)
    assert (decision.wait_cause, decision.next_available_rep) == ("outside_hours", "ava@x.test")
    assert decision.next_available_at == at("2026-12-07T16:00+00:00")  # Monday 08:00 in Los Angeles; Ben already had it
