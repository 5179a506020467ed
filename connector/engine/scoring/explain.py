"""Explanation lines: the Contribution each rule form gives, around the points the generated scorer worked out.

The generated scorer (generate.py) appends these lines and sums their points, so a result's lines
always add up to its score: `score == round(sum(c.points for c in lines), 2)`.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.core.models import Contribution
from connector.engine.conditions import Condition, condition_fields
from connector.engine.scoring.compiled import EngagementRule, EventRule
from connector.engine.scoring.decay import InactivityStep, capped
from connector.engine.scoring.frozen import frozen_builder

_line = frozen_builder(Contribution)  # positional: model, rule, points, source, decay


def fit_line(model: str, rule: str, points: float, when: Condition | None) -> Contribution:
    """A fit rule's line (the same for every lead it matches): its source names the fields it reads."""
    return _line(model, rule, round(points, 2), "field:" + ",".join(condition_fields(when)), 0.0)


def count_line(er: EventRule, count: int) -> Contribution:
    """A behaviour rule without half-life over `count` events: its value depends on the count only."""
    source, full = fresh_parts(er, count)
    return _line(er.model, er.name, round(full, 2), source, 0.0)


def fresh_parts(er: EventRule, count: int) -> tuple[str, float]:
    """(source, points) of `count` fresh events of a behaviour rule: its line's text, and its capped points
    before any fading. Prebuilt per count for fading rules (EventRule.fresh_by_count)."""
    return f"event:{er.label} x{count}", capped(er.points * count, er.cap)


def event_line(er: EventRule, count: int, points: float, value: float) -> Contribution:
    """A fading behaviour rule's line: `value` is its capped weighted points, `points` that rounded.

    `decay` is what fading took: the points `count` fresh events would give, less `value`.
    """
    prebuilt = er.fresh_by_count
    source, full = prebuilt[count] if count < len(prebuilt) else fresh_parts(er, count)
    return _line(er.model, er.name, points, source, round(full - value, 2))


def engagement_line(eg: EngagementRule, count: float, points: float) -> Contribution:
    """An engagement rule's line for a counter value of `count`."""
    return _line(eg.model, eg.name, points, f"engagement:{eg.counter} x{count:g}", 0.0)


def inactivity_line(model: str, step: InactivityStep) -> Contribution:
    """The line of the inactivity step a lead reached (its points are all decay)."""
    return _line(model, "inactivity", round(step.points, 2), f"decay:inactivity {step.days:g}d", round(-step.points, 2))


def clamp_line(model: str, which: str, bound: float) -> Callable[[float], Contribution]:
    """The line that brings a model's total to its floor or ceiling, by its points (made once per config and
    clamp: the text is the same for every lead, the points are not)."""
    source = f"clamp:{which} {bound:g}"

    def line(points: float) -> Contribution:
        return _line(model, which, points, source, 0.0)

    return line
