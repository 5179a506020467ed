"""Lead scoring: the `[scoring]` config, its checks, compilation, event aggregates and `score_lead` (pure)."""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right, insort
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.engine.conditions import Condition, Predicate, check_condition, compile_condition, condition_source
from connector.engine.freemail import FREE_MAIL_DOMAINS
from connector.core.errors import ConfigProblem
from connector.core.models import CRMS, Contribution, Event, LazyContributions, Lead, ScoreResult

DAY_SECONDS = 86_400.0
# Outputs of scoring: a scoring condition cannot read them (they do not exist yet while scoring).
OUTPUT_FIELDS = frozenset({"score", "grade", "is_mql"})
EVENT_FIELDS_HINT = "name, kind, properties.NAME"
NO_MODEL = "none"
PREBUILT_COUNTS = 64
_T = TypeVar("_T")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GradeBand(_Section):
    """One named band over the score: `min` inclusive, `max` exclusive (default: the `min` of the band above)."""

    name: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None


class DecayStep(_Section):
    """One step of the inactivity ladder: after `days` without activity the lead loses `-points`."""

    days: float = Field(gt=0)
    points: float = Field(le=0)


class Rule(_Section):
    """One scoring rule. Its form follows from its keys:

    - fit: `when` only — `points` once when the lead matches;
    - behaviour: `event` / `kind` / `where` — `points` per matching event (optional `cap`,
      `window_days`, `half_life_days`; `when` then gates the rule on the lead);
    - engagement: `engagement = "COUNTER"` — `points` per unit of `lead.engagement[COUNTER]` (optional `cap`).
    """

    name: str = Field(min_length=1)
    points: float
    when: Condition | None = None
    event: str | list[str] | None = None
    kind: Literal["track", "page", "identify"] | None = None
    where: Condition | None = None
    engagement: str | None = Field(default=None, min_length=1)
    cap: float | None = Field(default=None, gt=0)
    window_days: float | None = Field(default=None, gt=0)
    half_life_days: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> Rule:
        behaviour = self.event is not None or self.kind is not None or self.where is not None
        if behaviour and self.engagement is not None:
            raise ValueError("a rule is either behaviour (event / kind / where) or engagement, not both")
        if not behaviour and self.engagement is None and self.when is None:
            raise ValueError("a rule needs `when` (fit), `event` / `kind` / `where` (behaviour) or `engagement`")
        if not behaviour and (self.window_days is not None or self.half_life_days is not None):
            raise ValueError("window_days and half_life_days apply to behaviour (event) rules only")
        if not behaviour and self.engagement is None and self.cap is not None:
            raise ValueError("cap applies to behaviour and engagement rules (a fit rule scores once)")
        names = [self.event] if isinstance(self.event, str) else self.event
        if names is not None and (not names or any(not n.strip() for n in names)):
            raise ValueError("event needs one or more non-empty event names")
        return self

    @property
    def form(self) -> Literal["fit", "behaviour", "engagement"]:
        if self.engagement is not None:
            return "engagement"
        if self.event is not None or self.kind is not None or self.where is not None:
            return "behaviour"
        return "fit"

    @property
    def event_names(self) -> tuple[str, ...] | None:
        if self.event is None:
            return None
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)


class ModelConfig(_Section):
    """One scoring model (e.g. per product line): who it applies to, its rules and its decay."""

    description: str = ""
    audience: Condition | None = None
    rules: list[Rule] = Field(default_factory=list)
    inactivity: list[DecayStep] = Field(default_factory=list)
    floor: float | None = None
    ceiling: float | None = None


class StageMap(_Section):
    """What one CRM (or `crm:object_type`) should hold for a result: stage, lead status, grade label."""

    by_grade: dict[str, str] = Field(default_factory=dict)
    mql: str | None = None  # stage for an MQL whose grade has no by_grade entry
    default: str | None = None  # stage when neither by_grade nor mql gives one
    lead_status_by_grade: dict[str, str] = Field(default_factory=dict)
    grade_labels: dict[str, str] = Field(default_factory=dict)


class LowIntent(_Section):
    """Signals that alone must never make a lead reach the top grade (checked against rule caps).

    `events` are track-event names (a rule limited to `kind = "page"` or `"identify"` cannot count them).
    """

    events: list[str] = Field(default_factory=lambda: ["Email Opened"])
    engagement: list[str] = Field(default_factory=lambda: ["email_opens"])


def _default_grades() -> list[GradeBand]:
    return [GradeBand(name="hot", min=60), GradeBand(name="warm", min=30), GradeBand(name="cold")]


BantLevel = Literal["hot", "warm", "cold"]


def _default_bant_grades() -> dict[BantLevel, str]:
    return {"hot": "hot", "warm": "warm", "cold": "cold"}


class ScoringConfig(_Section):
    """`[scoring]`: models, grades, MQL, BANT, negative-signal lists, stage mapping. Empty = score 0, lowest grade."""

    write_model: str = "best"
    grades: list[GradeBand] = Field(default_factory=_default_grades, min_length=1)
    mql_threshold: float | None = None
    grade_from: Literal["score", "bant"] = "score"
    bant_grades: dict[BantLevel, str] = Field(default_factory=_default_bant_grades)
    use_shipped_free_mail: bool = True
    free_mail_domains: list[str] = Field(default_factory=list)
    competitor_domains: list[str] = Field(default_factory=list)
    regions: dict[str, list[str]] = Field(default_factory=dict)
    low_intent: LowIntent = Field(default_factory=LowIntent)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    stages: dict[str, StageMap] = Field(default_factory=dict)


def _leaves(cond: Condition | None, path: str) -> Iterator[tuple[str, str]]:
    """(field, key path) of every field test in a condition tree."""
    if cond is None:
        return
    if cond.field is not None:
        yield cond.field, path
    for key, subs in (("all", cond.all), ("any", cond.any)):
        for i, sub in enumerate(subs or ()):
            yield from _leaves(sub, f"{path}.{key}[{i}]")
    if cond.not_ is not None:
        yield from _leaves(cond.not_, f"{path}.not")


def _event_field_kind(name: str) -> str | None:
    if name in ("name", "kind"):
        return "str"
    if name.startswith("properties.") and len(name) > len("properties."):
        return "any"
    return None


def _check_lead_condition(cond: Condition | None, path: str) -> list[ConfigProblem]:
    if cond is None:
        return []
    problems = check_condition(cond, path)
    for name, leaf in _leaves(cond, path):
        if name in OUTPUT_FIELDS:
            problems.append(ConfigProblem(f"{leaf}.field", f"{name!r} is a result of scoring; a scoring condition cannot read it"))
    return problems


def _is_domain(value: str) -> bool:
    v = value.strip()
    return "." in v and "@" not in v and " " not in v and not v.startswith(".") and not v.endswith(".")


def _check_grades(cfg: ScoringConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    bands = cfg.grades
    seen: set[str] = set()
    for i, band in enumerate(bands):
        bp = f"{path}.grades[{i}]"
        if band.name in seen:
            problems.append(ConfigProblem(f"{bp}.name", f"grade {band.name!r} is listed twice"))
        seen.add(band.name)
        above = bands[i - 1] if i else None
        if above is None:
            if band.max is not None:
                problems.append(ConfigProblem(f"{bp}.max", "the top band takes no max (scores above it would have no grade)"))
        else:
            if above.min is None:
                problems.append(ConfigProblem(f"{path}.grades[{i - 1}].min", "only the lowest band may omit min; list bands from highest to lowest"))
                continue
            if band.min is not None and band.min >= above.min:
                problems.append(ConfigProblem(
                    f"{bp}.min", f"bands are unordered: min {band.min:g} is not below min {above.min:g} of {above.name!r}; list bands from highest to lowest"
                ))
            if band.max is not None and band.max > above.min:
                problems.append(ConfigProblem(f"{bp}.max", f"band {band.name!r} overlaps {above.name!r}: max {band.max:g} is above its min {above.min:g}"))
            elif band.max is not None and band.max < above.min:
                problems.append(ConfigProblem(f"{bp}.max", f"gap between {band.name!r} and {above.name!r}: scores from {band.max:g} to {above.min:g} have no grade"))
        if band.min is not None and band.max is not None and band.min >= band.max:
            problems.append(ConfigProblem(bp, f"band {band.name!r} is empty: min {band.min:g} is not below max {band.max:g}"))
    if bands[-1].min is not None:
        problems.append(ConfigProblem(f"{path}.grades[{len(bands) - 1}].min", "the lowest band takes no min, so that every score gets a grade"))
    if cfg.grade_from == "bant":
        for level, grade in cfg.bant_grades.items():
            if grade not in seen:
                problems.append(ConfigProblem(f"{path}.bant_grades.{level}", f"grade {grade!r} is not one of the grades ({', '.join(b.name for b in bands)})"))
    return problems


def _check_rule(rule: Rule, rp: str) -> list[ConfigProblem]:
    problems = _check_lead_condition(rule.when, f"{rp}.when")
    if rule.where is not None:
        problems += check_condition(rule.where, f"{rp}.where", kind_of=_event_field_kind, known_hint=EVENT_FIELDS_HINT)
    if rule.points < 0 and rule.half_life_days is not None:
        problems.append(ConfigProblem(f"{rp}.half_life_days", "a negative rule cannot fade: decay never raises a score"))
    if rule.points < 0 and rule.window_days is not None:
        problems.append(ConfigProblem(f"{rp}.window_days", "a negative rule cannot expire: decay never raises a score"))
    return problems


def _check_low_intent(cfg: ScoringConfig, name: str, model: ModelConfig, mp: str) -> list[ConfigProblem]:
    """Low-intent signals (email opens) on their own must stay below the top grade: each needs a cap, and the caps must add up below it."""
    if cfg.grade_from != "score" or cfg.grades[0].min is None:
        return []
    top, top_min = cfg.grades[0].name, cfg.grades[0].min
    low_events = {n.strip().lower() for n in cfg.low_intent.events}
    low_counters = set(cfg.low_intent.engagement)
    problems: list[ConfigProblem] = []
    reach = 0.0
    counted: list[str] = []
    for i, rule in enumerate(model.rules):
        if rule.points <= 0:
            continue
        if rule.form == "behaviour":
            names = rule.event_names
            if names is None:
                # email opens are track events; a rule limited to page or identify calls cannot count them
                hits = sorted(low_events) if rule.kind in (None, "track") else []
            else:
                hits = sorted(low_events & {n.strip().lower() for n in names})
        elif rule.form == "engagement":
            hits = [rule.engagement] if rule.engagement in low_counters else []
        else:
            hits = []
        if not hits:
            continue
        if rule.cap is None:
            problems.append(ConfigProblem(
                f"{mp}.rules[{i}].cap",
                f"rule {rule.name!r} counts low-intent signals ({', '.join(h for h in hits if h)}) without a cap: they alone could make a lead {top!r}; set a cap",
            ))
            continue
        reach += rule.cap
        counted.append(rule.name)
    if reach >= top_min:
        problems.append(ConfigProblem(
            f"{mp}.rules",
            f"low-intent rules ({', '.join(counted)}) can add up to {reach:g} points, reaching {top!r} (min {top_min:g}) on their own; lower their caps",
        ))
    return problems


def _check_model(cfg: ScoringConfig, name: str, model: ModelConfig, path: str) -> list[ConfigProblem]:
    mp = f"{path}.models.{name}"
    problems = _check_lead_condition(model.audience, f"{mp}.audience")
    if not model.rules:
        problems.append(ConfigProblem(f"{mp}.rules", f"model {name!r} has no rules; add at least one or remove the model"))
    seen: set[str] = set()
    for i, rule in enumerate(model.rules):
        rp = f"{mp}.rules[{i}]"
        if rule.name in seen:
            problems.append(ConfigProblem(f"{rp}.name", f"rule name {rule.name!r} is used twice in model {name!r} (explanations need unique names)"))
        seen.add(rule.name)
        problems += _check_rule(rule, rp)
    for i, step in enumerate(model.inactivity[1:], start=1):
        before = model.inactivity[i - 1]
        if step.days <= before.days:
            problems.append(ConfigProblem(f"{mp}.inactivity[{i}].days", f"steps go from fewest to most days: {step.days:g} is not after {before.days:g}"))
        if step.points > before.points:
            problems.append(ConfigProblem(f"{mp}.inactivity[{i}].points", f"a longer inactivity takes at least as many points: {step.points:g} is above {before.points:g}"))
    if model.floor is not None and model.ceiling is not None and model.floor >= model.ceiling:
        problems.append(ConfigProblem(f"{mp}.floor", f"floor {model.floor:g} is not below ceiling {model.ceiling:g}"))
    return problems + _check_low_intent(cfg, name, model, mp)


def _check_stages(cfg: ScoringConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    grades = [b.name for b in cfg.grades]
    for key, smap in cfg.stages.items():
        sp = f"{path}.stages.{key}"
        crm, _, object_type = key.partition(":")
        if crm not in CRMS or (":" in key and not object_type):
            problems.append(ConfigProblem(sp, f"stage maps are keyed by CRM ({', '.join(CRMS)}) or CRM:object_type, got {key!r}"))
        for attr in ("by_grade", "lead_status_by_grade", "grade_labels"):
            for grade, value in getattr(smap, attr).items():
                if grade not in grades:
                    problems.append(ConfigProblem(f"{sp}.{attr}.{grade}", f"{grade!r} is not one of the grades ({', '.join(grades)})"))
                if not value.strip():
                    problems.append(ConfigProblem(f"{sp}.{attr}.{grade}", "value is empty"))
        for attr in ("mql", "default"):
            value = getattr(smap, attr)
            if value is not None and not value.strip():
                problems.append(ConfigProblem(f"{sp}.{attr}", "value is empty (leave the key out instead)"))
    return problems


def check_scoring(cfg: ScoringConfig, path: str) -> list[ConfigProblem]:
    """Every semantic problem in `[scoring]`, each with its key path (pydantic already checked shapes)."""
    problems = _check_grades(cfg, path)
    if cfg.write_model != "best" and cfg.write_model not in cfg.models:
        known = ", ".join(["best", *cfg.models])
        problems.append(ConfigProblem(f"{path}.write_model", f"model {cfg.write_model!r} does not exist; use one of: {known}"))
    for key in ("free_mail_domains", "competitor_domains"):
        for i, domain in enumerate(getattr(cfg, key)):
            if not _is_domain(domain):
                problems.append(ConfigProblem(f"{path}.{key}[{i}]", f"{domain!r} is not a domain (like example.com)"))
    region_of: dict[str, str] = {}
    for region, countries in cfg.regions.items():
        for i, country in enumerate(countries):
            code = country.strip().upper()
            if code in region_of:
                problems.append(ConfigProblem(f"{path}.regions.{region}[{i}]", f"country {code} is already in region {region_of[code]!r}"))
            region_of.setdefault(code, region)
    for name, model in cfg.models.items():
        problems += _check_model(cfg, name, model, path)
    return problems + _check_stages(cfg, path)


@dataclass(frozen=True, slots=True)
class FitRule:
    matches: Predicate
    contribution: Contribution  # built once: a fit rule always gives the same line


@dataclass(frozen=True, slots=True)
class EngagementRule:
    name: str
    counter: str
    points: float
    cap: float | None
    gate: Predicate | None


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
    where: Predicate | None
    gate: Predicate | None
    label: str
    keep: int | None  # windowed rules keep this many latest timestamps (None: all in the window)
    # Lines for 1..PREBUILT_COUNTS events of a rule without half-life (their value depends on the count only).
    by_count: tuple[Contribution, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledModel:
    name: str
    audience: Predicate | None
    fits: tuple[FitRule, ...]
    behaviours: tuple[EventRule, ...]
    engagements: tuple[EngagementRule, ...]
    ladder: tuple[tuple[float, float, float], ...]  # (seconds, points, days), deepest first
    floor: float | None
    ceiling: float | None


@dataclass(frozen=True, slots=True)
class StageTarget:
    """What a CRM should hold for a result (None: nothing configured)."""

    stage: str | None = None
    lead_status: str | None = None
    grade_label: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledScoring:
    """`[scoring]` compiled once: predicates, regexes, event-rule index and lookups."""

    config: ScoringConfig
    signature: str
    models: tuple[CompiledModel, ...]
    event_rules: tuple[EventRule, ...]
    rules_by_event: Mapping[str, tuple[EventRule, ...]]  # lower-case event name -> rules naming it
    rules_any_event: tuple[EventRule, ...]  # rules without an event-name filter
    bands: tuple[tuple[str, float | None], ...]  # (grade, min) highest first
    free_mail: frozenset[str]
    competitors: tuple[str, ...]
    region_of: Mapping[str, str]
    stages: Mapping[str, StageMap]
    # score_lead's body generated for this config (see _generate_scorer); None: the reference path
    scorer: Callable[[Lead, tuple[RuleAggregate, ...], float | None, float], ScoreOutcome] | None = None


def _event_getter(name: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    if name == "name":
        return lambda ev, ctx: ev.name
    if name == "kind":
        return lambda ev, ctx: ev.kind
    key = name[len("properties."):]
    return lambda ev, ctx: ev.properties.get(key)


def _fit_source(cond: Condition | None) -> str:
    return "field:" + ",".join(dict.fromkeys(f for f, _ in _leaves(cond, "")))


def compile_scoring(cfg: ScoringConfig) -> CompiledScoring:
    """Compile a checked config once; score_lead then does no parsing. Call check_scoring first."""
    event_rules: list[EventRule] = []
    models: list[CompiledModel] = []
    for mname, mcfg in cfg.models.items():
        fits: list[FitRule] = []
        behaviours: list[EventRule] = []
        engagements: list[EngagementRule] = []
        for rule in mcfg.rules:
            gate = compile_condition(rule.when) if rule.when is not None else None
            if rule.form == "fit":
                fits.append(FitRule(compile_condition(rule.when), Contribution(mname, rule.name, round(rule.points, 2), _fit_source(rule.when))))
            elif rule.form == "engagement":
                engagements.append(EngagementRule(rule.name, rule.engagement or "", rule.points, rule.cap, gate))
            else:
                keep = None
                if rule.window_days is not None and rule.half_life_days is None and rule.cap is not None and rule.points:
                    # only the latest ceil(cap/points) events in the window can matter once the cap is reached
                    keep = max(1, math.ceil(rule.cap / abs(rule.points)))
                names = rule.event_names
                label = "|".join(names) if names else (rule.kind or "any")
                er = EventRule(
                    index=len(event_rules), model=mname, name=rule.name, points=rule.points, cap=rule.cap,
                    window_seconds=rule.window_days * DAY_SECONDS if rule.window_days else None,
                    half_life_seconds=rule.half_life_days * DAY_SECONDS if rule.half_life_days else None,
                    kind=rule.kind, where=compile_condition(rule.where, _event_getter) if rule.where else None,
                    gate=gate, label=label, keep=keep,
                )
                if rule.half_life_days is None:
                    er = replace(er, by_count=tuple(_count_line(er, n) for n in range(PREBUILT_COUNTS + 1)))
                event_rules.append(er)
                behaviours.append(er)
        ladder = tuple(sorted(((s.days * DAY_SECONDS, s.points, s.days) for s in mcfg.inactivity), reverse=True))
        models.append(CompiledModel(
            name=mname, audience=compile_condition(mcfg.audience) if mcfg.audience else None, fits=tuple(fits),
            behaviours=tuple(behaviours), engagements=tuple(engagements), ladder=ladder,
            floor=mcfg.floor, ceiling=mcfg.ceiling,
        ))
    by_event: dict[str, list[EventRule]] = {}
    any_event: list[EventRule] = []
    for er, rule in zip(event_rules, (r for m in cfg.models.values() for r in m.rules if r.form == "behaviour"), strict=True):
        names = rule.event_names
        if names is None:
            any_event.append(er)
        else:
            for n in dict.fromkeys(n.strip().lower() for n in names):
                by_event.setdefault(n, []).append(er)
    free = {d.strip().lower() for d in cfg.free_mail_domains}
    if cfg.use_shipped_free_mail:
        free |= set(FREE_MAIL_DOMAINS)
    compiled = CompiledScoring(
        config=cfg,
        signature=hashlib.sha256(cfg.model_dump_json(by_alias=True).encode()).hexdigest()[:16],
        models=tuple(models),
        event_rules=tuple(event_rules),
        rules_by_event={k: tuple(v) for k, v in by_event.items()},
        rules_any_event=tuple(any_event),
        bands=tuple((b.name, b.min) for b in cfg.grades),
        free_mail=frozenset(free),
        competitors=tuple(d.strip().lower() for d in cfg.competitor_domains),
        region_of={c.strip().upper(): r for r, cs in reversed(cfg.regions.items()) for c in cs},
        stages=dict(cfg.stages),
    )
    return _with_scorer(compiled)


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


def _epoch(dt: datetime) -> float:
    # The model says timezone-aware UTC; a naive value is read as UTC rather than machine-local time.
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


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
            decayed = decayed * 2.0 ** (-(t - last) / h) + 1.0
        else:
            decayed += 2.0 ** (-(last - t) / h)
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
    _check_signature(agg, compiled)
    t = _epoch(event.occurred_at)
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
    limit = _epoch(until) if until is not None else math.inf
    timed = sorted(((_epoch(ev.occurred_at), i, ev) for i, ev in enumerate(events)), key=lambda x: (x[0], x[1]))
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
    for ev in sorted(events, key=lambda e: _epoch(e.occurred_at)):
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
                decayed += part.decayed * (2.0 ** (-(last - part.last_at) / h) if part.last_at < last else 1.0)
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
        _check_signature(part, compiled)
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


def _check_signature(agg: EventAggregates, compiled: CompiledScoring) -> None:
    if agg.signature != compiled.signature:
        raise ValueError(
            f"event aggregates were built for scoring config {agg.signature}, not {compiled.signature}; rebuild them with aggregate_events"
        )


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    """A lead's score under every model whose audience matched, and the one to write back."""

    primary: ScoreResult
    by_model: Mapping[str, ScoreResult] = field(default_factory=dict)
    # The lead's email or company domain is a configured competitor's. Worked out while scoring
    # (negative-signal rules read it) and handed to routing's context, so it is done once per lead.
    is_competitor: bool = False


def bant_view(lead: Lead) -> str:
    """hot: all four BANT criteria met; warm: need met but not all four (budget, timeframe or authority missing); cold: otherwise."""
    if lead.need is True:
        if lead.budget is True and lead.authority is True and lead.timeframe is True:
            return "hot"
        return "warm"
    return "cold"


def _domain_hit(domain: str | None, domains: tuple[str, ...]) -> bool:
    if not domain:
        return False
    return any(domain == d or domain.endswith("." + d) for d in domains)


def is_competitor(lead: Lead, compiled: CompiledScoring) -> bool:
    """Whether the lead's email or company domain is (a subdomain of) a configured competitor's."""
    if not compiled.competitors:
        return False
    company = lead.company_domain.strip().lower() if lead.company_domain else None
    return _domain_hit(lead.email_domain, compiled.competitors) or _domain_hit(company, compiled.competitors)


def _context(lead: Lead, compiled: CompiledScoring) -> dict[str, Any]:
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


def _count_line(er: EventRule, count: int) -> Contribution:
    value = _capped(er.points * count, er.cap)
    return Contribution(er.model, er.name, round(value, 2), f"event:{er.label} x{count}")


def _behaviour(er: EventRule, agg: RuleAggregate, now: float) -> Contribution | None:
    if er.window_seconds is not None:
        times = agg.times[bisect_right(agg.times, now - er.window_seconds):]
        count = len(times)
        if not count:
            return None
        if er.by_count:
            return er.by_count[count] if count < len(er.by_count) else _count_line(er, count)
        if er.half_life_seconds is not None:
            h = er.half_life_seconds
            weight = sum(2.0 ** (-max(0.0, now - t) / h) for t in times)
        else:
            weight = float(count)
    else:
        count = agg.count
        if not count:
            return None
        if er.by_count:
            return er.by_count[count] if count < len(er.by_count) else _count_line(er, count)
        if er.half_life_seconds is not None and agg.last_at is not None:
            weight = agg.decayed * 2.0 ** (-max(0.0, now - agg.last_at) / er.half_life_seconds)
        else:
            weight = float(count)
    full = _capped(er.points * count, er.cap)
    value = _capped(er.points * weight, er.cap)
    return Contribution(er.model, er.name, round(value, 2), f"event:{er.label} x{count}", round(full - value, 2))


def _score_model(m: CompiledModel, lead: Lead, ctx: Mapping[str, Any], agg: EventAggregates, now: float, compiled: CompiledScoring) -> ScoreResult:
    name = m.name
    parts: list[Contribution] = [r.contribution for r in m.fits if r.matches(lead, ctx)]
    rules = agg.rules
    for er in m.behaviours:
        a = rules[er.index]
        if not a.count or (er.gate is not None and not er.gate(lead, ctx)):
            continue
        c = _behaviour(er, a, now)
        if c is not None:
            parts.append(c)
    for eg in m.engagements:
        n = _number(lead.engagement.get(eg.counter))
        if not n or n < 0 or (eg.gate is not None and not eg.gate(lead, ctx)):
            continue
        parts.append(Contribution(name, eg.name, round(_capped(eg.points * n, eg.cap), 2), f"engagement:{eg.counter} x{n:g}"))
    if m.ladder:
        # Inactivity runs from the latest sign of life: an event, the CRM's last activity, or creation.
        # With none known the lead counts as inactive for ever, so that any later-learnt activity
        # can only lower the decay (an added event never lowers a score).
        ref = agg.latest_at
        for stamp in (lead.last_activity_at, lead.created_at):
            if stamp is not None:
                t = _epoch(stamp)
                ref = t if ref is None or t > ref else ref
        idle = math.inf if ref is None else now - ref
        for seconds, points, days in m.ladder:
            if idle >= seconds:
                parts.append(Contribution(name, "inactivity", round(points, 2), f"decay:inactivity {days:g}d", round(-points, 2)))
                break
    subtotal = sum([c.points for c in parts])
    if m.floor is not None and subtotal < m.floor:
        parts.append(Contribution(name, "floor", round(m.floor - subtotal, 2), f"clamp:floor {m.floor:g}"))
    elif m.ceiling is not None and subtotal > m.ceiling:
        parts.append(Contribution(name, "ceiling", round(m.ceiling - subtotal, 2), f"clamp:ceiling {m.ceiling:g}"))
    else:
        return _result(name, round(subtotal, 2) + 0.0, tuple(parts), ctx["bant"], lead, compiled)
    return _result(name, round(sum([c.points for c in parts]), 2) + 0.0, tuple(parts), ctx["bant"], lead, compiled)


def _explain_model(
    compiled: CompiledScoring, index: int, lead: Lead, rules: tuple[RuleAggregate, ...], latest_at: float | None, now: float,
) -> tuple[Contribution, ...]:
    """The contribution lines of one model's result, by the reference path (what a fast result shows when read)."""
    m = compiled.models[index]
    ctx = _context(lead, compiled)
    ctx["model"] = m.name
    agg = EventAggregates(compiled.signature, rules, latest_at)
    return tuple(_score_model(m, lead, ctx, agg, now, compiled).contributions)


def _grade(score: float, compiled: CompiledScoring) -> str:
    for grade, low in compiled.bands:
        if low is None or score >= low:
            return grade
    return compiled.bands[-1][0]


def _target(grade: str, is_mql: bool, crm: str, object_type: str, compiled: CompiledScoring) -> StageTarget:
    smap = compiled.stages.get(f"{crm}:{object_type}") or compiled.stages.get(crm)
    if smap is None:
        return StageTarget()
    stage = smap.by_grade.get(grade)
    if stage is None and is_mql:
        stage = smap.mql
    if stage is None:
        stage = smap.default
    return StageTarget(stage, smap.lead_status_by_grade.get(grade), smap.grade_labels.get(grade))


def desired_stage(result: ScoreResult, crm: str, object_type: str, compiled: CompiledScoring) -> StageTarget:
    """The stage / lead status / grade label a CRM should hold for a result (a `crm:object_type` map wins over `crm`).

    Stage: `by_grade[grade]`, else `mql` when the result is an MQL, else `default`. score_lead already fills these
    in for the lead's own CRM; the diff moves stages forward only.
    """
    return _target(result.grade, result.is_mql, crm, object_type, compiled)


def _result(model: str, score: float, parts: tuple[Contribution, ...], bant: str, lead: Lead, compiled: CompiledScoring) -> ScoreResult:
    cfg = compiled.config
    grade = cfg.bant_grades[bant] if cfg.grade_from == "bant" else _grade(score, compiled)  # type: ignore[index]
    is_mql = cfg.mql_threshold is not None and score >= cfg.mql_threshold
    target = _target(grade, is_mql, lead.crm, lead.object_type, compiled)
    return ScoreResult(
        model=model, score=score, grade=grade, contributions=parts, is_mql=is_mql, bant=bant,
        stage=target.stage, lead_status=target.lead_status, grade_label=target.grade_label,
    )


def frozen_builder(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen slots dataclass that skips its `__init__`.

    A frozen dataclass's `__init__` sets every field through `object.__setattr__`; setting the slots
    through their descriptors builds the same object in about half the time, which matters for the
    values the engine makes per lead (contributions, results, decisions). Classes with a
    `__post_init__` or without slots get their own constructor.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if "__post_init__" in vars(cls) or not all(isinstance(vars(cls).get(n), _MEMBER) for n in names):
        return cls
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = "".join(f"    _s{i}(o, {n})\n" for i, n in enumerate(names))
    ns.update({f"_s{i}": vars(cls)[n].__set__ for i, n in enumerate(names)})
    exec(f"def build({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", ns)  # noqa: S102 - generated from field names only
    built: Callable[..., _T] = ns["build"]
    return built


_MEMBER = type(vars(Contribution)["model"])  # the slot descriptor type (member_descriptor)
_score_result = frozen_builder(ScoreResult)
_score_outcome = frozen_builder(ScoreOutcome)


def _idle_seconds(lead: Lead, latest_at: float | None, now: float) -> float:
    # Inactivity runs from the latest sign of life: an event, the CRM's last activity, or creation.
    # With none known the lead counts as inactive for ever, so that any later-learnt activity
    # can only lower the decay (an added event never lowers a score).
    ref = latest_at
    for stamp in (lead.last_activity_at, lead.created_at):
        if stamp is not None:
            t = _epoch(stamp)
            ref = t if ref is None or t > ref else ref
    return math.inf if ref is None else now - ref


class _Source:
    """Lines of a generated function, with its constants and the locals each condition field is read into."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.reads: dict[str, str] = {}  # field -> local name
        self.shortest_step: float | None = None  # the shortest inactivity step of any model

    def const(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def value_of(self, name: str) -> str:
        local = self.reads.get(name)
        if local is None:
            local = self.reads[name] = f"_v{len(self.reads)}"
        return local


def _cap_lines(src: _Source, depth: int, out: str, expr: str, cap: float | None) -> None:
    """`out = _capped(expr, cap)`, inline (min / max spelled out with their exact tie and NaN behaviour)."""
    if cap is None:
        src.emit(depth, f"{out} = {expr}")
        return
    c, nc = src.const(cap), src.const(-cap)
    src.emit(depth, f"{out} = {expr}")
    src.emit(depth, f"{out} = ({c} if {c} < {out} else {out}) if {out} >= 0 else ({nc} if {nc} > {out} else {out})")


def _behaviour_lines(src: _Source, depth: int, er: EventRule) -> None:
    """_behaviour's points for one rule, with its constants folded in; appends them to `parts` when it gives a line."""
    e = src.const(er)
    emit = src.emit
    if er.window_seconds is not None:
        emit(depth, "times = a.times")
        emit(depth, f"times = times[_bisect_right(times, now - {src.const(er.window_seconds)}):]")
        emit(depth, "n = len(times)")
        emit(depth, "if n:")
        depth += 1
        if er.by_count:
            bc = src.const(tuple(c.points for c in er.by_count))
            emit(depth, f"append({bc}[n] if n < {len(er.by_count)} else _count_line({e}, n).points)")
            return
        if er.half_life_seconds is not None:
            h = src.const(er.half_life_seconds)
            emit(depth, f"w = sum(2.0 ** (-max(0.0, now - t) / {h}) for t in times)")
        else:
            emit(depth, "w = float(n)")
    else:
        emit(depth, "n = a.count")
        if er.by_count:
            bc = src.const(tuple(c.points for c in er.by_count))
            emit(depth, f"append({bc}[n] if n < {len(er.by_count)} else _count_line({e}, n).points)")
            return
        if er.half_life_seconds is not None:
            h = src.const(er.half_life_seconds)
            emit(depth, "last = a.last_at")
            emit(depth, f"w = a.decayed * 2.0 ** (-(now - last if now > last else 0.0) / {h}) if last is not None else float(n)")  # max(0.0, now - last), inline
        else:
            emit(depth, "w = float(n)")
    _cap_lines(src, depth, "value", f"{src.const(er.points)} * w", er.cap)
    emit(depth, "append(round(value, 2))")


def _model_lines(src: _Source, index: int, m: CompiledModel, mcfg: ModelConfig, cfg: ScoringConfig) -> None:
    emit, const = src.emit, src.const
    model = const(m.name)
    emit(1, f"m_model = {model}")
    src.reads.setdefault("model", "m_model")
    emit(1, f"if {condition_source(mcfg.audience, src.value_of, src.constants)}:")
    emit(2, "parts = []")
    emit(2, "append = parts.append")
    fit_rules = [r for r in mcfg.rules if r.form == "fit"]
    for rule, fit in zip(fit_rules, m.fits, strict=True):
        emit(2, f"if {condition_source(rule.when, src.value_of, src.constants)}:")
        emit(3, f"append({const(fit.contribution.points)})")
    behaviour_rules = [r for r in mcfg.rules if r.form == "behaviour"]
    for rule, er in zip(behaviour_rules, m.behaviours, strict=True):
        gate = condition_source(rule.when, src.value_of, src.constants) if er.gate is not None else "True"
        emit(2, f"a = rules[{er.index}]")
        emit(2, f"if a.count and {gate}:" if gate != "True" else "if a.count:")
        _behaviour_lines(src, 3, er)
    eng_rules = [r for r in mcfg.rules if r.form == "engagement"]
    if m.engagements:
        emit(2, "eng = lead.engagement")
    for rule, eg in zip(eng_rules, m.engagements, strict=True):
        emit(2, f"v = eng.get({const(eg.counter)})")
        emit(2, "n = (float(v) if _isfinite(v) else None) if type(v) is float or type(v) is int else _number(v)")
        gate = condition_source(rule.when, src.value_of, src.constants) if eg.gate is not None else "True"
        emit(2, f"if n and not n < 0 and {gate}:")
        _cap_lines(src, 3, "value", f"{const(eg.points)} * n", eg.cap)
        emit(3, "append(round(value, 2))")
    if m.ladder:
        emit(2, "if idle is None:")
        # Idle time is at most the time since the latest event: when that is shorter than every model's
        # shortest step, no step applies whatever the CRM's timestamps say, and those are not read.
        step = const(src.shortest_step)
        emit(3, f"idle = now - latest_at if latest_at is not None and now - latest_at < {step} else _idle_seconds(lead, latest_at, now)")
        for i, (seconds, points, _) in enumerate(m.ladder):
            emit(2, f"{'if' if i == 0 else 'elif'} idle >= {const(seconds)}:")
            emit(3, f"append({const(round(points, 2))})")
    emit(2, "subtotal = sum(parts)")
    clamps = [(m.floor, "<"), (m.ceiling, ">")]
    first = True
    for bound, sign in clamps:
        if bound is None:
            continue
        b = const(bound)
        emit(2, f"{'if' if first else 'elif'} subtotal {sign} {b}:")
        emit(3, f"append(round({b} - subtotal, 2))")
        emit(3, "score = round(sum(parts), 2) + 0.0")
        first = False
    if first:
        emit(2, "score = round(subtotal, 2) + 0.0")
    else:
        emit(2, "else:")
        emit(3, "score = round(subtotal, 2) + 0.0")
    if cfg.grade_from == "bant":
        emit(2, f"grade = {const(cfg.bant_grades)}[bant]")
    else:
        for i, (grade, low) in enumerate(m_bands := tuple((b.name, b.min) for b in cfg.grades)):
            if low is None:
                emit(2, "else:" if i else "if True:")
                emit(3, f"grade = {const(grade)}")
                break
            emit(2, f"{'if' if i == 0 else 'elif'} score >= {const(low)}:")
            emit(3, f"grade = {const(grade)}")
        else:
            emit(2, "else:")
            emit(3, f"grade = {const(m_bands[-1][0])}")
    emit(2, "is_mql = False" if cfg.mql_threshold is None else f"is_mql = score >= {const(cfg.mql_threshold)}")
    emit(2, "target = _targets.get((crm, object_type, grade, is_mql))")
    emit(2, "if target is None:")
    emit(3, "target = _target(grade, is_mql, crm, object_type, _compiled)")
    lines = f"_lazy(_explain, (_compiled, {const(index)}, lead, rules, latest_at, now))"
    emit(2, f"result = _score_result({model}, score, grade, {lines}, is_mql, target.stage, target.lead_status, bant, target.grade_label)")
    emit(2, f"by_model[{model}] = result")
    emit(2, "if best is None or score > best.score:")
    emit(3, "best = result")


def _generate_scorer(compiled: CompiledScoring) -> Callable[[Lead, tuple[RuleAggregate, ...], float | None, float], ScoreOutcome]:
    """score_lead's work for one config as one generated function: conditions inlined, constants folded.

    It adds up only the points; each result's contribution lines are worked out by the reference
    path when first read (`LazyContributions`, `_explain_model`). Same results as the reference path
    (`_score_reference`), value for value: the same rules in the same order, the same float
    expressions summed in the same order (tests/engine/test_perf_equivalence.py).
    """
    cfg = compiled.config
    src = _Source()
    src.shortest_step = min((seconds for m in compiled.models for seconds, _, _ in m.ladder), default=None)
    for index, (m, mcfg) in enumerate(zip(compiled.models, cfg.models.values(), strict=True)):
        _model_lines(src, index, m, mcfg, cfg)
    body = src.lines
    head: list[str] = ["def score(lead, rules, latest_at, now):", "    crm = lead.crm", "    object_type = lead.object_type"]
    reads = dict(src.reads)
    context = {"region", "is_free_mail", "is_competitor", "bant", "model", "score", "grade", "is_mql"}
    if "is_free_mail" in reads or compiled.competitors:
        head.append("    domain = lead.email_domain")
    if "region" in reads:
        head.append("    country = lead.country")
        head.append("    country = country.strip().upper() if country else None")
        head.append(f"    {reads['region']} = _region_of.get(country) if country else None")
    if "is_free_mail" in reads:
        head.append(f"    {reads['is_free_mail']} = domain in _free_mail if domain else False")
    if compiled.competitors:
        # is_competitor: _domain_hit of the email's and the company's domain, spelled out per competitor domain
        tests = " or ".join(f"{{d}} == {src.const(c)} or {{d}}.endswith({src.const('.' + c)})" for c in compiled.competitors)
        head.append("    company = lead.company_domain")
        head.append("    company = company.strip().lower() if company else None")
        head.append(f"    competitor = bool(domain and ({tests.format(d='domain')})) or bool(company and ({tests.format(d='company')}))")
    else:
        head.append("    competitor = False")
    if "is_competitor" in reads:
        head.append(f"    {reads['is_competitor']} = competitor")
    head.append("    bant = _bant_view(lead)")
    if "bant" in reads:
        head.append(f"    {reads['bant']} = bant")
    for name in ("score", "grade", "is_mql"):  # outputs of scoring: None while scoring (check_scoring rejects them)
        if name in reads:
            head.append(f"    {reads[name]} = None")
    for name, local in reads.items():
        if name in context:
            continue
        if name.startswith("extra."):
            head.append(f"    {local} = lead.extra.get({src.const(name[len('extra.'):])})")
        elif name.startswith("engagement."):
            head.append(f"    {local} = lead.engagement.get({src.const(name[len('engagement.'):])})")
        else:
            head.append(f"    {local} = lead.{name}" if name.isidentifier() else f"    {local} = getattr(lead, {src.const(name)})")
    head += ["    by_model = {}", "    best = None", "    idle = None"]
    tail: list[str] = []
    if cfg.write_model == "best":
        tail += ["    if best is None:", f"        best = _result({src.const(NO_MODEL)}, 0.0, (), bant, lead, _compiled)"]
    else:
        w = src.const(cfg.write_model)
        tail += [f"    best = by_model.get({w}) or _result({w}, 0.0, (), bant, lead, _compiled)"]
    tail.append("    return _outcome(best, by_model, competitor)")
    grades = {b.name for b in cfg.grades} | set(cfg.bant_grades.values())
    object_types = {"contacts", "leads", "Lead"} | {k.split(":", 1)[1] for k in compiled.stages if ":" in k}
    crms = set(CRMS) | {k.split(":", 1)[0] for k in compiled.stages}
    targets = {
        (crm, ot, g, mql): _target(g, mql, crm, ot, compiled)
        for crm in crms for ot in object_types for g in grades for mql in (False, True)
    }
    ns: dict[str, Any] = {
        **src.constants, "_bisect_right": bisect_right, "_count_line": _count_line, "_lazy": LazyContributions,
        "_explain": _explain_model, "_score_result": _score_result, "_outcome": _score_outcome, "_result": _result, "_target": _target,
        "_targets": targets, "_number": _number, "_isfinite": math.isfinite, "_idle_seconds": _idle_seconds,
        "_region_of": compiled.region_of, "_free_mail": compiled.free_mail,
        "_competitors": compiled.competitors, "_domain_hit": _domain_hit, "_bant_view": bant_view,
    }
    code = "\n".join([*head, *body, *tail]) + "\n"
    exec(compile(code, f"<scoring {compiled.signature}>", "exec"), ns)  # noqa: S102 - generated from the checked config
    return ns["score"]  # type: ignore[no-any-return]


def _with_scorer(compiled: CompiledScoring) -> CompiledScoring:
    scorer = _generate_scorer(compiled)
    done = replace(compiled, scorer=scorer)
    scorer.__globals__["_compiled"] = done  # the generated code's fallbacks (_result, _target) take the config
    return done


def score_lead(lead: Lead, events: Sequence[Event] | EventAggregates, compiled: CompiledScoring, now: datetime) -> ScoreOutcome:
    """Score a lead under every model whose audience matches, at `now`.

    `events` are the lead's raw events (those after `now` are ignored) or their aggregates
    (`aggregate_events` / `update_aggregates`, same compiled config). Each result's score is
    the sum of its contributions, each rounded to cents: `round(sum(points), 2)`.
    """
    if compiled.scorer is None:
        return _score_reference(lead, events, compiled, now)
    now_s = _epoch(now)
    if isinstance(events, EventAggregates):
        _check_signature(events, compiled)
        agg = events
    else:
        agg = aggregate_events(events, compiled, until=now)
    rules = agg.rules
    if not rules and compiled.event_rules:
        rules = tuple([RuleAggregate()] * len(compiled.event_rules))
    return compiled.scorer(lead, rules, agg.latest_at, now_s)


def _score_reference(lead: Lead, events: Sequence[Event] | EventAggregates, compiled: CompiledScoring, now: datetime) -> ScoreOutcome:
    """score_lead the straightforward way: predicates and dataclasses, rule by rule (the generated scorer's reference)."""
    now_s = _epoch(now)
    if isinstance(events, EventAggregates):
        _check_signature(events, compiled)
        agg = events
    else:
        agg = aggregate_events(events, compiled, until=now)
    if not agg.rules and compiled.event_rules:
        agg = EventAggregates(compiled.signature, tuple([RuleAggregate()] * len(compiled.event_rules)), agg.latest_at, agg.event_count)
    ctx = _context(lead, compiled)
    by_model: dict[str, ScoreResult] = {}
    for m in compiled.models:
        ctx["model"] = m.name
        if m.audience is None or m.audience(lead, ctx):
            by_model[m.name] = _score_model(m, lead, ctx, agg, now_s, compiled)
    write = compiled.config.write_model
    if write == "best":
        primary = max(by_model.values(), key=lambda r: r.score, default=None)  # max keeps the first (config order) on ties
        if primary is None:
            primary = _result(NO_MODEL, 0.0, (), ctx["bant"], lead, compiled)
    else:
        primary = by_model.get(write) or _result(write, 0.0, (), ctx["bant"], lead, compiled)
    return ScoreOutcome(primary=primary, by_model=by_model, is_competitor=ctx["is_competitor"])
