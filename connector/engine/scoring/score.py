"""`score_lead`: a lead's score under every model at `now`, by the generated scorer; and the stage a result maps to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connector.core.models import Event, Lead, ScoreResult
from connector.engine.scoring.aggregates import EventAggregates, RuleAggregate, aggregate_events, check_signature
from connector.engine.scoring.compiled import CompiledScoring
from connector.engine.scoring.decay import epoch
from connector.engine.scoring.outcome import ScoreOutcome, StageTarget, stage_target

_NO_EVENTS = RuleAggregate()  # frozen: one value stands for every rule without events


def score_lead(lead: Lead, events: Sequence[Event] | EventAggregates, compiled: CompiledScoring, now: datetime) -> ScoreOutcome:
    """Score a lead under every model whose audience matches, at `now`.

    `events` are the lead's raw events (those after `now` are ignored) or their aggregates
    (`aggregate_events` / `update_aggregates`, same compiled config). Each result's score is
    the sum of its contributions, each rounded to cents: `round(sum(points), 2)`.
    """
    if isinstance(events, EventAggregates):
        check_signature(events, compiled)
        agg = events
    else:
        agg = aggregate_events(events, compiled, until=now)
    rules = agg.rules
    if not rules and compiled.event_rules:
        rules = (_NO_EVENTS,) * len(compiled.event_rules)
    return compiled.scorer(lead, rules, agg.latest_at, epoch(now))


def desired_stage(result: ScoreResult, crm: str, object_type: str, compiled: CompiledScoring) -> StageTarget:
    """The stage / lead status / grade label a CRM should hold for a result (a `crm:object_type` map wins over `crm`).

    Stage: `by_grade[grade]`, else `mql` when the result is an MQL, else `default`. score_lead already fills these
    in for the lead's own CRM; the diff moves stages forward only.
    """
    return stage_target(compiled.stages, result.grade, result.is_mql, crm, object_type)
