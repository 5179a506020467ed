"""How points fade and stop: half-life fading, caps, inactivity steps and idle time, each written once.

A rule here is a function (for the event aggregates and the config-time tables) and, where the generated
scorer inlines it, the source of the same expression next to it, so the two cannot be read apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from connector.core.models import Lead

DAY_SECONDS = 86_400.0


def epoch(dt: datetime) -> float:
    """Epoch seconds; the model says timezone-aware UTC, and a naive value is read as UTC rather than machine-local time."""
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def fade(elapsed: float, half_life: float) -> float:
    """The weight left of one event after `elapsed` seconds with a half-life: 2^(-elapsed / half_life)."""
    weight: float = 2.0 ** (-elapsed / half_life)
    return weight


def fade_source(elapsed: str, half_life: str) -> str:
    """`fade(elapsed, half_life)` as an inline expression of two names or parenthesised expressions."""
    return f"2.0 ** (-{elapsed} / {half_life})"


def capped(value: float, cap: float | None) -> float:
    """A rule's points limited to `cap` either way (None: no cap)."""
    if cap is None:
        return value
    return min(value, cap) if value >= 0 else max(value, -cap)


def cap_source(out: str, cap: str, negated_cap: str) -> str:
    """`out = capped(out, cap)` as one statement: min / max spelled out with their exact tie and NaN behaviour."""
    return f"{out} = ({cap} if {cap} < {out} else {out}) if {out} >= 0 else ({negated_cap} if {negated_cap} > {out} else {out})"


class InactivityStep(NamedTuple):
    """One step of a model's inactivity ladder, compiled: idle for `seconds` or more takes `points` (≤ 0)."""

    seconds: float
    points: float
    days: float


def ladder(steps: Iterable[tuple[float, float]]) -> tuple[InactivityStep, ...]:
    """The steps `(days, points)` as a ladder, deepest first (the first step reached is the one that applies)."""
    return tuple(sorted((InactivityStep(days * DAY_SECONDS, points, days) for days, points in steps), reverse=True))


def idle_seconds(lead: Lead, latest_at: float | None, now: float) -> float:
    """Seconds since the lead's latest sign of life: an event, the CRM's last activity, or creation.

    With none known the lead counts as inactive for ever, so that any later-learnt activity can only
    lower the decay (an added event never lowers a score).
    """
    ref = latest_at
    for stamp in (lead.last_activity_at, lead.created_at):
        if stamp is not None:
            t = epoch(stamp)
            ref = t if ref is None or t > ref else ref
    return math.inf if ref is None else now - ref
