"""The scoring oracle: score_lead the straightforward way, rule by rule with predicates and dataclasses.

Production runs only the generated scorer (connector/engine/scoring/generate.py); this reference lives
in tests so that property tests can compare the generated scores and explanation lines against it.
It shares only the inputs with production: the checked config, the compiled rule records and the
event aggregates; conditions are read by the conditions oracle.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.core.models import Contribution, Event, Lead, ScoreResult
from connector.engine.conditions import Condition, Predicate, condition_fields
from connector.engine.scoring import (
    NO_MODEL,
    CompiledModel,
    CompiledScoring,
    EventAggregates,
    EventRule,
    RuleAggregate,
    ScoreOutcome,
    aggregate_events,
)
from tests.engine.conditions.oracle import predicate

DAY_SECONDS = 86_400.0


def _epoch(dt: datetime) -> float:
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def _predicate(cond: Condition | None) -> Predicate | None:
    return predicate(cond) if cond is not None else None


def bant_view(lead: Lead) -> str:
    if lead.need is True:
        return "hot" if lead.budget is True and lead.authority is True and lead.timeframe is True else "warm"
    return "cold"


def _domain_hit(domain: str | None, domains: tuple[str, ...]) -> bool:
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in domains)  # type: ignore[union-attr]


def is_competitor(lead: Lead, compiled: CompiledScoring) -> bool:
    company = lead.company_domain.strip().lower() if lead.company_domain else None
    return _domain_hit(lead.email_domain, compiled.competitors) or _domain_hit(company, compiled.competitors)


def context(lead: Lead, compiled: CompiledScoring) -> dict[str, Any]:
    domain = lead.email_domain
    country = lead.country.strip().upper() if lead.country else None
    return {
        "region": compiled.region_of.get(country) if country else None,
        "is_free_mail": domain in compiled.free_mail if domain else False,
        "is_competitor": is_competitor(lead, compiled),
        "bant": bant_view(lead),
        "model": None,
    }


def _capped(value: float, cap: float | None) -> float:
    if cap is None:
        return value
    return min(value, cap) if value >= 0 else max(value, -cap)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _behaviour(er: EventRule, agg: RuleAggregate, now: float) -> Contribution | None:
    source = "event:{} x{}".format(er.label, "{}")
    if er.window_seconds is not None:
        times = agg.times[bisect_right(agg.times, now - er.window_seconds):]
        count = len(times)
        if not count:
            return None
        if er.half_life_seconds is not None:
            weight = sum(2.0 ** (-max(0.0, now - t) / er.half_life_seconds) for t in times)
        else:
            weight = float(count)
    else:
        count = agg.count
        if not count:
            return None
        if er.half_life_seconds is not None and agg.last_at is not None:
            weight = agg.decayed * 2.0 ** (-max(0.0, now - agg.last_at) / er.half_life_seconds)
        else:
            weight = float(count)
    full = _capped(er.points * count, er.cap)
    value = _capped(er.points * weight, er.cap)
    return Contribution(er.model, er.name, round(value, 2), source.format(count), round(full - value, 2))


def _idle(lead: Lead, latest_at: float | None, now: float) -> float:
    ref = latest_at
    for stamp in (lead.last_activity_at, lead.created_at):
        if stamp is not None:
            ref = _epoch(stamp) if ref is None else max(ref, _epoch(stamp))
    return math.inf if ref is None else now - ref


def _lines(m: CompiledModel, lead: Lead, ctx: Mapping[str, Any], agg: EventAggregates, now: float) -> list[Contribution]:
    name = m.name
    parts: list[Contribution] = []
    for fit in m.fits:
        matches = _predicate(fit.when)
        if matches is None or matches(lead, ctx):
            parts.append(Contribution(name, fit.line.rule, fit.line.points, "field:" + ",".join(condition_fields(fit.when))))
    for er in m.behaviours:
        gate, a = _predicate(er.when), agg.rules[er.index]
        if a.count and (gate is None or gate(lead, ctx)):
            c = _behaviour(er, a, now)
            parts += [c] if c is not None else []
    for eg in m.engagements:
        gate, n = _predicate(eg.when), _number(lead.engagement.get(eg.counter))
        if n and n >= 0 and (gate is None or gate(lead, ctx)):
            parts.append(Contribution(name, eg.name, round(_capped(eg.points * n, eg.cap), 2), f"engagement:{eg.counter} x{n:g}"))
    idle = _idle(lead, agg.latest_at, now)
    for step in sorted(m.ladder, key=lambda s: s.days, reverse=True):
        if idle >= step.days * DAY_SECONDS:
            parts.append(Contribution(name, "inactivity", round(step.points, 2), f"decay:inactivity {step.days:g}d", round(-step.points, 2)))
            break
    return parts


def score_model(m: CompiledModel, lead: Lead, ctx: Mapping[str, Any], agg: EventAggregates, now: float, compiled: CompiledScoring) -> ScoreResult:
    parts = _lines(m, lead, ctx, agg, now)
    subtotal = sum(c.points for c in parts)
    if m.floor is not None and subtotal < m.floor:
        parts.append(Contribution(m.name, "floor", round(m.floor - subtotal, 2), f"clamp:floor {m.floor:g}"))
    elif m.ceiling is not None and subtotal > m.ceiling:
        parts.append(Contribution(m.name, "ceiling", round(m.ceiling - subtotal, 2), f"clamp:ceiling {m.ceiling:g}"))
    return result(m.name, round(sum(c.points for c in parts), 2) + 0.0, tuple(parts), ctx["bant"], lead, compiled)


def grade(score: float, compiled: CompiledScoring) -> str:
    bands = compiled.config.grades
    return next((b.name for b in bands if b.min is None or score >= b.min), bands[-1].name)


def result(model: str, score: float, parts: tuple[Contribution, ...], bant: str, lead: Lead, compiled: CompiledScoring) -> ScoreResult:
    cfg = compiled.config
    g = cfg.bant_grades[bant] if cfg.grade_from == "bant" else grade(score, compiled)  # type: ignore[index]
    is_mql = cfg.mql_threshold is not None and score >= cfg.mql_threshold
    smap = compiled.stages.get(f"{lead.crm}:{lead.object_type}") or compiled.stages.get(lead.crm)
    stage = status = label = None
    if smap is not None:
        stage = smap.by_grade.get(g)
        if stage is None and is_mql:
            stage = smap.mql
        if stage is None:
            stage = smap.default
        status, label = smap.lead_status_by_grade.get(g), smap.grade_labels.get(g)
    return ScoreResult(model, score, g, parts, is_mql, stage, status, bant, label)


def score_reference(lead: Lead, events: Sequence[Event] | EventAggregates, compiled: CompiledScoring, now: datetime) -> ScoreOutcome:
    """What score_lead should return, worked out rule by rule."""
    now_s = _epoch(now)
    agg = events if isinstance(events, EventAggregates) else aggregate_events(events, compiled, until=now)
    if not agg.rules and compiled.event_rules:
        agg = EventAggregates(compiled.signature, tuple([RuleAggregate()] * len(compiled.event_rules)), agg.latest_at, agg.event_count)
    ctx = context(lead, compiled)
    by_model: dict[str, ScoreResult] = {}
    for m in compiled.models:
        ctx["model"] = m.name
        audience = _predicate(m.audience)
        if audience is None or audience(lead, ctx):
            by_model[m.name] = score_model(m, lead, ctx, agg, now_s, compiled)
    write = compiled.config.write_model
    if write == "best":
        primary = max(by_model.values(), key=lambda r: r.score, default=None)  # max keeps the first (config order) on ties
        if primary is None:
            primary = result(NO_MODEL, 0.0, (), ctx["bant"], lead, compiled)
    else:
        primary = by_model.get(write) or result(write, 0.0, (), ctx["bant"], lead, compiled)
    return ScoreOutcome(primary=primary, by_model=by_model, is_competitor=ctx["is_competitor"])
