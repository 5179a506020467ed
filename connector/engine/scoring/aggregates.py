"""Per-rule aggregates of a lead's events: fold events in once, score from the aggregates at any later `now`."""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from connector.core.models import Event
from connector.engine.scoring.compiled import CompiledScoring, EventRule
from connector.engine.scoring.decay import epoch, fade


@dataclass(frozen=True, slots=True)
class RuleAggregate:
    """What one behaviour rule needs from a lead's events, whatever `now` is later."""

    count: int = 0
    last_at: float | None = None  # epoch seconds of the latest matching event
    decayed: float = 0.0  # half-life rules: sum of 2^(-(last_at - t_i) / h) over matching events
    times: tuple[float, ...] = ()  # windowed rules: matching timestamps inside the window, sorted


@dataclass(frozen=True, slots=True)
class EventAggregates:
    """Per-rule aggregates of a lead's events: score from these instead of rescanning events.

    Exact for any `now` at or after `latest_at`; for replay at an earlier time pass the raw events.
    """

    signature: str  # CompiledScoring.signature these were built for
    rules: tuple[RuleAggregate, ...] = ()
    latest_at: float | None = None  # latest activity (any non-identify event), epoch seconds
    event_count: int = 0
    newest_at: float | None = None  # the newest event of any kind (scoring before it needs the raw events)



def _matching_rules(event: Event, compiled: CompiledScoring) -> Iterator[EventRule]:
    named = compiled.rules_by_event.get(event.name.strip().lower(), ())
    for er in (*named, *compiled.rules_any_event) if compiled.rules_any_event else named:
        if er.kind is not None and er.kind != event.kind:
            continue
        if er.where is not None and not er.where(event, {}):  # type: ignore[arg-type]
            continue
        yield er


def _fold(agg: RuleAggregate, er: EventRule, t: float, latest: float) -> RuleAggregate:
    """One matching event at time t folded into a rule's aggregate (O(1), or O(keep) for windows)."""
    count = agg.count + 1
    decayed = agg.decayed
    last = agg.last_at
    if er.half_life_seconds is not None:
        h = er.half_life_seconds
        if last is None:
            decayed = 1.0
        elif t > last:
            # sum_i 2^(-(now - t_i)/h) = 2^(-(now - t_ref)/h) * sum_i 2^(-(t_ref - t_i)/h): move t_ref forward
            decayed = decayed * fade(t - last, h) + 1.0
        else:
            decayed += fade(last - t, h)
    times = agg.times
    if er.window_seconds is not None:
        horizon = max(latest, t) - er.window_seconds
        if t > horizon:
            kept = list(times)
            insort(kept, t)
            cut = bisect_right(kept, horizon)
            if er.keep is not None:
                cut = max(cut, len(kept) - er.keep)
            times = tuple(kept[cut:])
    return RuleAggregate(count=count, last_at=t if last is None or t > last else last, decayed=decayed, times=times)


def update_aggregates(agg: EventAggregates, event: Event, compiled: CompiledScoring) -> EventAggregates:
    """`agg` with one more event folded in (a new value; O(matching rules))."""
    check_signature(agg, compiled)
    t = epoch(event.occurred_at)
    rules = list(agg.rules) if agg.rules else [RuleAggregate()] * len(compiled.event_rules)
    latest = agg.latest_at
    if event.kind != "identify":
        latest = t if latest is None or t > latest else latest
    for er in _matching_rules(event, compiled):
        rules[er.index] = _fold(rules[er.index], er, t, latest if latest is not None else t)
    newest = t if agg.newest_at is None or t > agg.newest_at else agg.newest_at
    return EventAggregates(compiled.signature, tuple(rules), latest, agg.event_count + 1, newest)


def aggregate_events(events: Sequence[Event], compiled: CompiledScoring, until: datetime | None = None) -> EventAggregates:
    """Fold a lead's events into per-rule aggregates; events after `until` are left out (they had not happened)."""
    limit = epoch(until) if until is not None else math.inf
    timed = sorted(((epoch(ev.occurred_at), i, ev) for i, ev in enumerate(events)), key=lambda x: (x[0], x[1]))
    rules = [RuleAggregate()] * len(compiled.event_rules)
    latest: float | None = None
    newest: float | None = None
    count = 0
    for t, _, ev in timed:
        if t > limit:
            break
        count += 1
        newest = t
        if ev.kind != "identify":
            latest = t
        for er in _matching_rules(ev, compiled):
            rules[er.index] = _fold(rules[er.index], er, t, latest if latest is not None else t)
    return EventAggregates(compiled.signature, tuple(rules), latest, count, newest)


def fold_events(agg: EventAggregates | None, events: Sequence[Event], compiled: CompiledScoring) -> EventAggregates:
    """`agg` (None: no events yet) with `events` folded in, oldest first: O(new events), not O(all events)."""
    if agg is None:
        return aggregate_events(events, compiled)
    for ev in sorted(events, key=lambda e: epoch(e.occurred_at)):
        agg = update_aggregates(agg, ev, compiled)
    return agg


def _later(a: float | None, b: float | None) -> float | None:
    return a if b is None or (a is not None and a >= b) else b


def _merge_rule(a: RuleAggregate, b: RuleAggregate, er: EventRule, horizon_ref: float | None) -> RuleAggregate:
    if not b.count:
        return a
    if not a.count:
        return b
    last = _later(a.last_at, b.last_at)
    decayed = 0.0
    if er.half_life_seconds is not None and last is not None:
        h = er.half_life_seconds
        for part in (a, b):
            if part.last_at is not None:
                decayed += part.decayed * (fade(last - part.last_at, h) if part.last_at < last else 1.0)
    times: tuple[float, ...] = ()
    if er.window_seconds is not None:
        merged = sorted(a.times + b.times)
        ref = _later(horizon_ref, last)
        cut = bisect_right(merged, ref - er.window_seconds) if ref is not None else 0
        if er.keep is not None:
            cut = max(cut, len(merged) - er.keep)
        times = tuple(merged[cut:])
    return RuleAggregate(count=a.count + b.count, last_at=last, decayed=decayed, times=times)


def merge_aggregates(parts: Sequence[EventAggregates], compiled: CompiledScoring) -> EventAggregates:
    """One lead's aggregates from those of the keys its events are stored under (its CRM key, its email).

    The same counts, last times and windows as folding all the events at once; half-life sums are
    rescaled to the later last time (equal up to float rounding).
    """
    for part in parts:
        check_signature(part, compiled)
    empty = tuple([RuleAggregate()] * len(compiled.event_rules))
    merged = EventAggregates(compiled.signature, empty)
    for part in parts:
        if not part.event_count:
            continue
        if not merged.event_count:
            merged = part if part.rules else replace(part, rules=empty)
            continue
        latest = _later(merged.latest_at, part.latest_at)
        rules = tuple(
            _merge_rule(x, y, er, latest)
            for x, y, er in zip(merged.rules or empty, part.rules or empty, compiled.event_rules, strict=True)
        )
        merged = EventAggregates(
            compiled.signature, rules, latest, merged.event_count + part.event_count, _later(merged.newest_at, part.newest_at)
        )
    return merged


def aggregates_to_json(agg: EventAggregates) -> dict[str, Any]:
    """The stored form of a key's aggregates (plain JSON: lists and numbers)."""
    return {
        "latest_at": agg.latest_at, "newest_at": agg.newest_at, "event_count": agg.event_count,
        "rules": [[r.count, r.last_at, r.decayed, list(r.times)] for r in agg.rules],
    }


def aggregates_from_json(signature: str, data: Mapping[str, Any], compiled: CompiledScoring) -> EventAggregates | None:
    """Stored aggregates back, or None when they were built for another config or do not have its shape."""
    if signature != compiled.signature:
        return None
    try:
        rules = tuple(
            RuleAggregate(int(count), None if last is None else float(last), float(decayed), tuple(float(t) for t in times))
            for count, last, decayed, times in data["rules"]
        )
        latest, newest = data["latest_at"], data["newest_at"]
        agg = EventAggregates(
            signature, rules, None if latest is None else float(latest), int(data["event_count"]), None if newest is None else float(newest)
        )
    except (KeyError, TypeError, ValueError):
        return None
    return agg if len(rules) in (0, len(compiled.event_rules)) else None


def check_signature(agg: EventAggregates, compiled: CompiledScoring) -> None:
    if agg.signature != compiled.signature:
        raise ValueError(
            f"event aggregates were built for scoring config {agg.signature}, not {compiled.signature}; rebuild them with aggregate_events"
        )

