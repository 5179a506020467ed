"""The compiled form of `[scoring]`: named records the generated scorer and the event aggregates read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connector.core.models import Contribution, Lead
from connector.engine.conditions import Condition, Predicate
from connector.engine.scoring.config import ScoringConfig, StageMap
from connector.engine.scoring.decay import InactivityStep

if TYPE_CHECKING:
    from connector.engine.scoring.aggregates import RuleAggregate
    from connector.engine.scoring.outcome import ScoreOutcome

PREBUILT_COUNTS = 64  # explanation lines (or their count-only parts, for fading rules) prebuilt for 0..PREBUILT_COUNTS events

# score_lead's body for one config: (lead, per-rule aggregates, latest activity, now) in epoch seconds.
Scorer = Callable[[Lead, "tuple[RuleAggregate, ...]", "float | None", float], "ScoreOutcome"]


@dataclass(frozen=True, slots=True)
class FitRule:
    """A fit rule: a fixed line when the lead matches `when`."""

    when: Condition | None
    line: Contribution  # built once: a fit rule always gives the same line


@dataclass(frozen=True, slots=True)
class EngagementRule:
    """An engagement rule: `points` per unit of `lead.engagement[counter]`, capped, gated by `when`."""

    model: str
    name: str
    counter: str
    points: float
    cap: float | None
    when: Condition | None


@dataclass(frozen=True, slots=True)
class EventRule:
    """A behaviour rule, indexed across all models so one pass over events feeds every model."""

    index: int
    model: str
    name: str
    points: float
    cap: float | None
    window_seconds: float | None
    half_life_seconds: float | None
    kind: str | None
    where: Predicate | None  # over the event (aggregation), not the lead
    when: Condition | None  # gates the rule on the lead
    label: str
    keep: int | None  # windowed rules keep this many latest timestamps (None: all in the window)
    # Lines for 0..PREBUILT_COUNTS events of a rule without half-life (their value depends on the count only).
    by_count: tuple[Contribution, ...] = ()
    # A fading rule's (source, points before fading) for 0..PREBUILT_COUNTS events: only its decay varies per lead.
    fresh_by_count: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """One model's rules by form, in config order within each form, and its ladder and clamps."""

    name: str
    audience: Condition | None
    fits: tuple[FitRule, ...]
    behaviours: tuple[EventRule, ...]
    engagements: tuple[EngagementRule, ...]
    ladder: tuple[InactivityStep, ...]  # deepest first
    floor: float | None
    ceiling: float | None


@dataclass(frozen=True, slots=True)
class CompiledScoring:
    """`[scoring]` compiled once: the generated scorer, the event-rule index and lookups."""

    config: ScoringConfig
    signature: str
    models: tuple[CompiledModel, ...]
    event_rules: tuple[EventRule, ...]
    rules_by_event: Mapping[str, tuple[EventRule, ...]]  # lower-case event name -> rules naming it
    rules_any_event: tuple[EventRule, ...]  # rules without an event-name filter
    free_mail: frozenset[str]
    competitors: tuple[str, ...]
    region_of: Mapping[str, str]
    stages: Mapping[str, StageMap]
    scorer: Scorer  # score_lead's body generated for this config (generate.py)
