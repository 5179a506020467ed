"""Lead routing: the `[routing]` config, its checks, compilation, routing state and `route_lead` (pure).

Order of decisions for one lead: keep the existing owner → account match (email domain → account
owner, or its parent's) → duplicate contact's owner → the first matching rule's pool → the fallback
pool → the fallback queue. Within a pool a strategy picks one eligible rep.

Round robin is weighted "earliest virtual finish" scheduling (stride scheduling). Each pool keeps,
per rep, a *pass* (virtual time at which the rep's turns so far are used up) and a pool clock
(`~vt`, the virtual finish of the last turn handed out). Serving a rep of weight w moves its pass
by TURN / w; the eligible rep with the smallest `pass + stride` gets the lead. Consequences:

* A rep skipped for being unavailable keeps its pass, so it is first in line when it is back:
  it does not lose its turn.
* A rep back after a long absence (or newly added) has a pass far behind the others. Its pass is
  lifted to `~vt - stride` when it is considered, so it gets the next turn — one turn, then it
  rotates normally — instead of a week's backlog in one burst. It never gets ahead of its place.
* Among reps continuously eligible over any window of decisions, turns per unit weight differ
  by at most one: |n_a / w_a - n_b / w_b| <= 1 (tested as a property).

Passes and load counters are integer counters held by the store (`RoutingState`); `route_lead`
returns the decision and the `StateChange` to apply in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import compress, repeat
from operator import add, floordiv, ge, mul, sub
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from connector.engine.availability import (
    WEEKDAYS,
    WORKWEEK,
    OutOfOffice,
    Schedule,
    Unavailability,
    build_week,
    load_holidays,
    load_zone,
)
from connector.engine.conditions import Condition, Predicate, check_condition, compile_condition, condition_source, describe, field_kind
from connector.engine.experiments import assign_arm
from connector.engine.scoring import NO_MODEL, ScoringConfig, frozen_builder
from connector.core.errors import ConfigProblem
from connector.core.models import WAIT_CAUSES, Account, Candidate, Crm, Lead, Owner, Rep, RoutingDecision, ScoreResult, WaitCause

STRATEGIES: tuple[str, ...] = ("round_robin", "least_loaded", "best_match")
SKILLS: tuple[str, ...] = ("industries", "products", "languages", "regions")
MAX_WEIGHT = 20
# One full turn in virtual time: divisible by every allowed weight, so strides are exact integers.
TURN = math.lcm(*range(1, MAX_WEIGHT + 1))
# Conversion-rate weighting scales a rep's weight by rate / pool mean, kept within these bounds
# so one lucky week cannot starve or flood a rep.
CONVERSION_FACTOR_BOUNDS = (0.5, 2.0)
# Per-plan memos (verdict variants, chosen tuples, skill matches) start over past this many entries.
PLAN_MEMO_LIMIT = 4096
# Shared pass / clock ops per plan: they repeat only while the pool clock stands still, so keep few.
SET_OP_MEMO_LIMIT = 256
VT_KEY = "~vt"  # not an email, so it cannot collide with a rep key
RR_PREFIX = "rr:"
OPEN_SCOPE = "load:open"
DAY_PREFIX = "load:day:"
# Per rep email: leads the connector routed to them, and how many of those converted (conversion weighting).
ROUTED_SCOPE = "conv:routed"
CONVERTED_SCOPE = "conv:converted"
# Context fields routing adds to the condition universe beyond conditions.CONTEXT_FIELD_KINDS.
ROUTING_FIELD_KINDS: dict[str, str] = {"territory": "str"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutOfOfficeConfig(_Section):
    """An absence: dates are whole days in the rep's time zone (both included); datetimes are instants."""

    start: date | datetime  # date first: "2026-03-02" stays a whole day, not midnight
    end: date | datetime
    note: str = ""


class RepConfig(_Section):
    """One rep, named by the email of their CRM user (resolved to owner ids per CRM at start-up)."""

    email: str = Field(min_length=3)
    name: str = ""
    owner_ids: dict[Crm, str] = Field(default_factory=dict)  # explicit ids win over the email lookup
    active: bool = True
    timezone: str = "UTC"
    working_hours: str | list[str] | dict[str, str | list[str]] | None = None
    working_days: list[str] = Field(default_factory=lambda: list(WORKWEEK))
    out_of_office: list[OutOfOfficeConfig] = Field(default_factory=list)
    country: str | None = None
    holiday_subdivision: str | None = None
    observe_holidays: bool = True
    tier: str = "standard"
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    industries: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    max_open_leads: int | None = Field(default=None, ge=0)
    max_leads_per_day: int | None = Field(default=None, ge=0)


class PoolConfig(_Section):
    """A team: its reps (emails, in tie-break order) and the strategy that picks one of them."""

    description: str = ""
    reps: list[str] = Field(default_factory=list)
    strategy: str = "round_robin"
    weight_by_conversion: bool = False


class RegionConfig(_Section):
    """A named region: countries, optionally narrowed to states (then the countries' states listed)."""

    countries: list[str] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)


class TerritoryConfig(_Section):
    """A territory: countries, states, or postal-code ranges ([low, high] prefixes, inclusive)."""

    countries: list[str] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)
    postal_ranges: list[tuple[str, str]] = Field(default_factory=list)


class RuleConfig(_Section):
    """A routing rule: when `when` matches (always, when omitted), the lead goes to `pool`."""

    name: str = Field(min_length=1)
    when: Condition | None = None
    pool: str
    strategy: str | None = None  # overrides the pool's strategy for this rule
    tier: str | None = None  # prefer reps of this tier (e.g. "senior" for hot or large leads)
    tier_strict: bool = False  # only that tier: wait / fall back rather than use other tiers
    require_skills: list[str] = Field(default_factory=list)


class ExperimentConfig(_Section):
    """A split of one rule's leads between two strategies (stable per lead)."""

    name: str = Field(min_length=1)
    rule: str
    control: str | None = None  # default: the rule's (or its pool's) strategy
    treatment: str
    treatment_share: float = Field(default=0.5, gt=0, lt=1)
    enabled: bool = True


class SlaConfig(_Section):
    """Reassign a lead nobody actioned: no status change and no activity within `minutes`."""

    minutes: int | None = Field(default=None, ge=1)
    max_reassignments: int = Field(default=2, ge=0)


class RoutingConfig(_Section):
    """`[routing]`: reps, pools, regions, territories, ordered rules, fallback, SLA, experiments. Empty = route nobody."""

    keep_existing_owner: bool = True
    unassigned_owner_ids: list[str] = Field(default_factory=list)
    account_matching: bool = True
    account_owner: Literal["account", "parent"] = "account"
    contact_matching: bool = True
    matched_owner_availability: bool = False
    reps: list[RepConfig] = Field(default_factory=list)
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    regions: dict[str, RegionConfig] = Field(default_factory=dict)
    territories: dict[str, TerritoryConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    fallback_pool: str | None = None
    fallback_queue: dict[Crm, str] = Field(default_factory=dict)
    when_unavailable: Literal["wait", "fallback"] = "wait"
    day_timezone: str = "UTC"
    language_field: str | None = None
    # Pools with weight_by_conversion use a rep's conversion rate once this many leads were routed to them.
    conversion_min_leads: int = Field(default=20, ge=1)
    sla: SlaConfig = Field(default_factory=SlaConfig)
    experiments: list[ExperimentConfig] = Field(default_factory=list)


def _email(value: str) -> str:
    return value.strip().lower()


def _up(value: str) -> str:
    return value.strip().upper()


def _postal(value: str) -> str:
    """Postal codes compare without spaces or dashes, upper-case ("M5V 2T6" -> "M5V2T6", "01000-000" -> "01000000")."""
    return value.replace(" ", "").replace("-", "").upper()


def _field_kind(name: str) -> str | None:
    return field_kind(name, ROUTING_FIELD_KINDS)


def _condition_values(cond: Condition | None, path: str, name: str) -> Iterable[tuple[Any, str]]:
    """(value, key path) of every eq / ne / in / not_in test of field `name`."""
    if cond is None:
        return
    if cond.field == name and cond.op in ("eq", "ne", "in", "not_in"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        for i, v in enumerate(values):
            yield v, f"{path}.value" + (f"[{i}]" if isinstance(cond.value, list) else "")
    for key, subs in (("all", cond.all), ("any", cond.any)):
        for i, sub in enumerate(subs or ()):
            yield from _condition_values(sub, f"{path}.{key}[{i}]", name)
    if cond.not_ is not None:
        yield from _condition_values(cond.not_, f"{path}.not", name)


def _check_reps(cfg: RoutingConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: dict[str, int] = {}
    for i, rep in enumerate(cfg.reps):
        rp = f"{path}.reps[{i}]"
        email = _email(rep.email)
        if "@" not in email:
            problems.append(ConfigProblem(f"{rp}.email", f"{rep.email!r} is not an email address (reps are named by their CRM user's email)"))
        if email in seen:
            problems.append(ConfigProblem(f"{rp}.email", f"duplicate rep {email} (also {path}.reps[{seen[email]}])"))
        seen.setdefault(email, i)
        try:
            load_zone(rep.timezone)
        except ValueError as exc:
            problems.append(ConfigProblem(f"{rp}.timezone", str(exc)))
        for j, day in enumerate(rep.working_days):
            if day.lower() not in WEEKDAYS:
                problems.append(ConfigProblem(f"{rp}.working_days[{j}]", f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}"))
        if isinstance(rep.working_hours, dict):
            for day, ranges in rep.working_hours.items():
                if day.lower() not in WEEKDAYS:
                    problems.append(ConfigProblem(f"{rp}.working_hours.{day}", f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}"))
                    continue
                for text in [ranges] if isinstance(ranges, str) else ranges:
                    problems += _check_range(text, f"{rp}.working_hours.{day}")
        elif rep.working_hours is not None:
            for text in [rep.working_hours] if isinstance(rep.working_hours, str) else rep.working_hours:
                problems += _check_range(text, f"{rp}.working_hours")
        for j, absence in enumerate(rep.out_of_office):
            if _comparable(absence.end) < _comparable(absence.start):
                problems.append(ConfigProblem(f"{rp}.out_of_office[{j}].end", f"end {absence.end} is before start {absence.start}"))
        if rep.country and rep.observe_holidays:
            try:
                load_holidays(rep.country, rep.holiday_subdivision)
            except ValueError as exc:
                key = "holiday_subdivision" if rep.holiday_subdivision else "country"
                problems.append(ConfigProblem(f"{rp}.{key}", f"no public-holiday calendar: {exc} (use an ISO 3166 code, or observe_holidays = false)"))
    return problems


def _comparable(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _check_range(text: str, path: str) -> list[ConfigProblem]:
    try:
        build_week(text, ("mon",))
    except ValueError as exc:
        return [ConfigProblem(path, str(exc))]
    return []


def _check_places(cfg: RoutingConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    covered: dict[tuple[str, str | None], str] = {}
    for name, region in cfg.regions.items():
        rp = f"{path}.regions.{name}"
        if not region.countries:
            problems.append(ConfigProblem(f"{rp}.countries", "a region needs at least one country"))
        for country in region.countries:
            states: list[str | None] = [_up(s) for s in region.states] or [None]
            for state in states:
                place = (_up(country), state)
                if place in covered:
                    where = f"{place[0]}" + (f"/{state}" if state else "")
                    problems.append(ConfigProblem(rp, f"{where} is already in region {covered[place]!r} (a place belongs to one region)"))
                covered.setdefault(place, name)
    ranges: list[tuple[str, str, str, frozenset[str], str]] = []
    for name, terr in cfg.territories.items():
        tp = f"{path}.territories.{name}"
        if not (terr.countries or terr.states or terr.postal_ranges):
            problems.append(ConfigProblem(tp, "a territory needs countries, states or postal_ranges"))
        if (terr.states or terr.postal_ranges) and not terr.countries:
            problems.append(ConfigProblem(f"{tp}.countries", "states and postal ranges need the countries they belong to"))
        for i, (lo, hi) in enumerate(terr.postal_ranges):
            plo, phi = _postal(lo), _postal(hi)
            if not plo or len(plo) != len(phi):
                problems.append(ConfigProblem(f"{tp}.postal_ranges[{i}]", f"[{lo!r}, {hi!r}]: low and high must be prefixes of the same length"))
                continue
            if plo > phi:
                problems.append(ConfigProblem(f"{tp}.postal_ranges[{i}]", f"[{lo!r}, {hi!r}]: low is above high"))
                continue
            countries = frozenset(_up(c) for c in terr.countries)
            for olo, ohi, oname, ocountries, opath in ranges:
                if countries & ocountries and _overlaps(plo, phi, olo, ohi):
                    problems.append(ConfigProblem(f"{tp}.postal_ranges[{i}]", f"[{lo!r}, {hi!r}] overlaps {opath} of territory {oname!r}"))
            ranges.append((plo, phi, name, countries, f"{tp}.postal_ranges[{i}]"))
    return problems


def _overlaps(lo1: str, hi1: str, lo2: str, hi2: str) -> bool:
    """Prefix ranges overlap when, compared at the shorter prefix length, their spans intersect."""
    n = min(len(lo1), len(lo2))
    return lo1[:n] <= hi2[:n] and lo2[:n] <= hi1[:n]


def _check_rules(cfg: RoutingConfig, scoring: ScoringConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    names: dict[str, int] = {}
    catch_all: int | None = None
    grades = {g.name.lower() for g in scoring.grades}
    models = {m.lower() for m in scoring.models} | {NO_MODEL}
    for i, rule in enumerate(cfg.rules):
        rp = f"{path}.rules[{i}]"
        if rule.name in names:
            problems.append(ConfigProblem(f"{rp}.name", f"duplicate rule name {rule.name!r} (also {path}.rules[{names[rule.name]}])"))
        names.setdefault(rule.name, i)
        if catch_all is not None:
            problems.append(ConfigProblem(rp, f"rule {rule.name!r} can never match: {path}.rules[{catch_all}] has no `when` and matches every lead"))
        if rule.when is None and catch_all is None:
            catch_all = i
        if rule.pool not in cfg.pools:
            problems.append(ConfigProblem(f"{rp}.pool", f"unknown pool {rule.pool!r}; pools: {', '.join(cfg.pools) or '(none defined)'}"))
        if rule.strategy is not None and rule.strategy not in STRATEGIES:
            problems.append(ConfigProblem(f"{rp}.strategy", f"unknown strategy {rule.strategy!r}; use one of {', '.join(STRATEGIES)}"))
        for j, skill in enumerate(rule.require_skills):
            if skill not in SKILLS:
                problems.append(ConfigProblem(f"{rp}.require_skills[{j}]", f"unknown skill {skill!r}; use one of {', '.join(SKILLS)}"))
        if "languages" in rule.require_skills and not cfg.language_field:
            problems.append(ConfigProblem(f"{rp}.require_skills", "requiring languages needs routing.language_field (the lead field holding the language)"))
        if rule.tier is not None and rule.pool in cfg.pools:
            members = {_email(e) for e in cfg.pools[rule.pool].reps}
            tiers = {r.tier for r in cfg.reps if _email(r.email) in members}
            if rule.tier not in tiers:
                problems.append(ConfigProblem(f"{rp}.tier", f"no rep of tier {rule.tier!r} in pool {rule.pool!r} (tiers there: {', '.join(sorted(tiers)) or 'none'})"))
        if rule.when is not None:
            wp = f"{rp}.when"
            problems += check_condition(rule.when, wp, ROUTING_FIELD_KINDS)
            for value, vp in _condition_values(rule.when, wp, "region"):
                if str(value) not in cfg.regions:
                    problems.append(ConfigProblem(vp, f"unknown region {value!r}; define it under {path}.regions (known: {', '.join(cfg.regions) or 'none'})"))
            for value, vp in _condition_values(rule.when, wp, "territory"):
                if str(value) not in cfg.territories:
                    problems.append(ConfigProblem(vp, f"unknown territory {value!r}; define it under {path}.territories (known: {', '.join(cfg.territories) or 'none'})"))
            for value, vp in _condition_values(rule.when, wp, "grade"):
                if str(value).lower() not in grades:
                    problems.append(ConfigProblem(vp, f"unknown grade {value!r}; scoring.grades are {', '.join(g.name for g in scoring.grades)}"))
            for value, vp in _condition_values(rule.when, wp, "model"):
                if str(value).lower() not in models:
                    problems.append(ConfigProblem(vp, f"unknown model {value!r}; scoring.models are {', '.join(scoring.models) or 'none'}"))
    return problems


def _check_experiments(cfg: RoutingConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    rules = {r.name: r for r in cfg.rules}
    by_rule: dict[str, int] = {}
    names: set[str] = set()
    for i, exp in enumerate(cfg.experiments):
        ep = f"{path}.experiments[{i}]"
        if exp.name in names:
            problems.append(ConfigProblem(f"{ep}.name", f"duplicate experiment name {exp.name!r}"))
        names.add(exp.name)
        if ":" in exp.name:
            problems.append(ConfigProblem(f"{ep}.name", "an experiment name cannot contain ':' (decisions record the arm as NAME:ARM)"))
        if exp.rule not in rules:
            problems.append(ConfigProblem(f"{ep}.rule", f"unknown rule {exp.rule!r}; rules: {', '.join(rules) or '(none defined)'}"))
        elif exp.enabled:
            if exp.rule in by_rule:
                problems.append(ConfigProblem(f"{ep}.rule", f"rule {exp.rule!r} already has an experiment ({path}.experiments[{by_rule[exp.rule]}])"))
            by_rule.setdefault(exp.rule, i)
        for key in ("control", "treatment"):
            value = getattr(exp, key)
            if value is not None and value not in STRATEGIES:
                problems.append(ConfigProblem(f"{ep}.{key}", f"unknown strategy {value!r}; use one of {', '.join(STRATEGIES)}"))
        if exp.rule in rules:
            rule = rules[exp.rule]
            control = exp.control or rule.strategy or (cfg.pools[rule.pool].strategy if rule.pool in cfg.pools else None)
            if control == exp.treatment:
                problems.append(ConfigProblem(f"{ep}.treatment", f"treatment {exp.treatment!r} is the same as the control strategy; nothing to compare"))
    return problems


def check_routing(cfg: RoutingConfig, scoring: ScoringConfig, path: str) -> list[ConfigProblem]:
    """Every problem in `[routing]`, each with its key path (e.g. routing.rules[3].pool); empty when fine."""
    problems = _check_reps(cfg, path)
    known = {_email(r.email) for r in cfg.reps}
    for name, pool in cfg.pools.items():
        pp = f"{path}.pools.{name}"
        if not pool.reps:
            problems.append(ConfigProblem(f"{pp}.reps", f"pool {name!r} has no reps"))
        if pool.strategy not in STRATEGIES:
            problems.append(ConfigProblem(f"{pp}.strategy", f"unknown strategy {pool.strategy!r}; use one of {', '.join(STRATEGIES)}"))
        seen: set[str] = set()
        for i, email in enumerate(pool.reps):
            if _email(email) not in known:
                problems.append(ConfigProblem(f"{pp}.reps[{i}]", f"{email} is not a rep; add it to {path}.reps"))
            if _email(email) in seen:
                problems.append(ConfigProblem(f"{pp}.reps[{i}]", f"{email} is listed twice in pool {name!r}"))
            seen.add(_email(email))
    problems += _check_places(cfg, path)
    problems += _check_rules(cfg, scoring, path)
    problems += _check_experiments(cfg, path)
    if cfg.fallback_pool is not None and cfg.fallback_pool not in cfg.pools:
        problems.append(ConfigProblem(f"{path}.fallback_pool", f"unknown pool {cfg.fallback_pool!r}; pools: {', '.join(cfg.pools) or '(none defined)'}"))
    if cfg.when_unavailable == "fallback" and cfg.fallback_pool is None and not cfg.fallback_queue:
        problems.append(ConfigProblem(f"{path}.when_unavailable", "\"fallback\" needs a fallback_pool or a fallback_queue"))
    if cfg.rules and not cfg.reps:
        problems.append(ConfigProblem(f"{path}.reps", "rules are defined but there are no reps to route to"))
    try:
        load_zone(cfg.day_timezone)
    except ValueError as exc:
        problems.append(ConfigProblem(f"{path}.day_timezone", str(exc)))
    if cfg.language_field is not None and _field_kind(cfg.language_field) is None:
        problems.append(ConfigProblem(f"{path}.language_field", f"unknown lead field {cfg.language_field!r} (a lead attribute or extra.NAME)"))
    return problems


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    name: str
    control: str
    treatment: str
    treatment_share: float


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    predicate: Predicate
    description: str
    pool: str
    strategy: str | None
    tier: str | None
    tier_strict: bool
    require_skills: tuple[str, ...]
    experiment: CompiledExperiment | None


@dataclass(frozen=True, slots=True)
class CompiledPool:
    name: str
    members: tuple[str, ...]  # rep emails, lower-case, in tie-break order
    strategy: str
    weight_by_conversion: bool
    scope: str  # the round-robin counter scope


@dataclass(frozen=True)
class CompiledRouting:
    """Everything `route_lead` needs, precomputed once per config (schedules, lookups, predicates)."""

    rep_emails: tuple[str, ...]
    schedules: Mapping[str, Schedule]
    pools: Mapping[str, CompiledPool]
    rules: tuple[CompiledRule, ...]
    fallback_pool: str | None
    fallback_queue: Mapping[str, str]
    when_unavailable: Literal["wait", "fallback"]
    keep_existing_owner: bool
    unassigned_owner_ids: frozenset[str]
    account_matching: bool
    prefer_parent_owner: bool
    contact_matching: bool
    matched_owner_availability: bool
    region_by_country: Mapping[str, str]
    region_by_state: Mapping[tuple[str, str], str]
    territory_by_country: Mapping[str, str]
    territory_by_state: Mapping[tuple[str, str], str]
    postal_ranges: Mapping[str, tuple[tuple[str, str, str], ...]]  # country -> (low, high, territory)
    day_zone: Any  # ZoneInfo
    language_field: str | None
    sla_minutes: int | None
    max_reassignments: int
    config: RoutingConfig
    conversion_min_leads: int = 20
    # The rules' conditions as one generated function: index of the first matching rule, -1 for none.
    matcher: Matcher | None = None
    # The last availability snapshot: the next one with the same reps and the same verdicts reuses
    # its pool tables instead of rebuilding them (a memo: it never changes a result).
    batch_memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # (country, state, postal code) -> (region, territory): leads repeat places (a memo of place_of).
    place_memo: dict[tuple[str | None, str | None, str | None], tuple[str | None, str | None]] = field(
        default_factory=dict, compare=False, repr=False,
    )

    @property
    def is_configured(self) -> bool:
        return bool(self.rep_emails) or bool(self.fallback_queue)

    @property
    def weights_by_conversion(self) -> bool:
        """Some pool scales its reps' weights by their conversion rates (the pipeline then reads them)."""
        return any(p.weight_by_conversion for p in self.pools.values())


# (lead, score, is_free_mail, is_competitor, region, territory) -> index of the first matching rule, or -1
Matcher = Callable[[Lead, ScoreResult, bool, bool, "str | None", "str | None"], int]
# Where a routing condition reads each context field (the rest are lead attributes), in the generated matcher.
_MATCHER_READS: dict[str, str] = {
    "score": "score.score", "grade": "score.grade", "model": "score.model", "bant": "score.bant", "is_mql": "score.is_mql",
    "region": "region", "territory": "territory", "is_free_mail": "is_free_mail", "is_competitor": "is_competitor",
}


def _generate_matcher(rules: Sequence[RuleConfig]) -> Matcher:
    """`_match_rule` for one config as a generated function (same answers; tests/engine/test_perf_equivalence.py).

    Each field is read once per lead and every condition is inlined (conditions.condition_source), so
    a lead that matches the 15th rule costs 15 inline tests, not 15 predicate calls with a context dict.
    """
    constants: dict[str, Any] = {}
    reads: dict[str, str] = {}

    def value_of(name: str) -> str:
        local = reads.get(name)
        if local is None:
            local = reads[name] = f"_v{len(reads)}"
        return local

    tests = [condition_source(rule.when, value_of, constants) for rule in rules]
    lines = ["def match(lead, score, is_free_mail, is_competitor, region, territory):"]
    for name, local in reads.items():
        if name in _MATCHER_READS:
            lines.append(f"    {local} = {_MATCHER_READS[name]}")
        elif name.startswith("extra."):
            constants[f"_f{local}"] = name[len("extra."):]
            lines.append(f"    {local} = lead.extra.get(_f{local})")
        elif name.startswith("engagement."):
            constants[f"_f{local}"] = name[len("engagement."):]
            lines.append(f"    {local} = lead.engagement.get(_f{local})")
        else:
            constants[f"_f{local}"] = name
            lines.append(f"    {local} = getattr(lead, _f{local})")
    for i, test in enumerate(tests):
        lines += [f"    if {test}:", f"        return {i}"]
    lines.append("    return -1")
    ns: dict[str, Any] = dict(constants)
    exec(compile("\n".join(lines) + "\n", "<routing rules>", "exec"), ns)  # noqa: S102 - generated from the checked config
    matcher: Matcher = ns["match"]
    return matcher


def _schedule(rep: RepConfig, shared: dict[tuple[Any, ...], Schedule]) -> Schedule:
    """The rep's schedule; reps with the same zone, hours, absences and holidays share one (and its verdicts)."""
    zone = load_zone(rep.timezone)
    absences = tuple(OutOfOffice(a.start, a.end, a.note) for a in rep.out_of_office)
    week = build_week(rep.working_hours, rep.working_days)
    country = _up(rep.country) if rep.country else None
    observed = (country, rep.holiday_subdivision) if rep.country and rep.observe_holidays else None
    key = (rep.timezone, week, absences, country, observed)
    schedule = shared.get(key)
    if schedule is None:
        calendar = next((s.holidays for k, s in shared.items() if observed is not None and k[4] == observed), None)
        if calendar is None and observed is not None:
            calendar = load_holidays(rep.country or "", rep.holiday_subdivision)
        schedule = shared[key] = Schedule(timezone=zone, week=week, out_of_office=absences, holidays=calendar, country=country)
    return schedule


def compile_routing(cfg: RoutingConfig) -> CompiledRouting:
    """Precompute schedules, per-pool structures, place lookups and rule predicates (config already checked)."""
    pools = {
        name: CompiledPool(name, tuple(dict.fromkeys(_email(e) for e in p.reps)), p.strategy, p.weight_by_conversion, f"{RR_PREFIX}{name}")
        for name, p in cfg.pools.items()
    }
    experiments = {e.rule: e for e in cfg.experiments if e.enabled}
    rules = []
    for rule in cfg.rules:
        exp = experiments.get(rule.name)
        compiled_exp = None
        if exp is not None:
            control = exp.control or rule.strategy or pools[rule.pool].strategy
            compiled_exp = CompiledExperiment(exp.name, control, exp.treatment, exp.treatment_share)
        rules.append(CompiledRule(
            name=rule.name, predicate=compile_condition(rule.when), description=describe(rule.when), pool=rule.pool,
            strategy=rule.strategy, tier=rule.tier, tier_strict=rule.tier_strict,
            require_skills=tuple(rule.require_skills), experiment=compiled_exp,
        ))
    region_by_country: dict[str, str] = {}
    region_by_state: dict[tuple[str, str], str] = {}
    for name, region in cfg.regions.items():
        for country in region.countries:
            if region.states:
                for state in region.states:
                    region_by_state.setdefault((_up(country), _up(state)), name)
            else:
                region_by_country.setdefault(_up(country), name)
    territory_by_country: dict[str, str] = {}
    territory_by_state: dict[tuple[str, str], str] = {}
    postal: dict[str, list[tuple[str, str, str]]] = {}
    shared: dict[tuple[Any, ...], Schedule] = {}
    for name, terr in cfg.territories.items():
        for country in terr.countries:
            c = _up(country)
            for lo, hi in terr.postal_ranges:
                postal.setdefault(c, []).append((_postal(lo), _postal(hi), name))
            for state in terr.states:
                territory_by_state.setdefault((c, _up(state)), name)
            if not terr.states and not terr.postal_ranges:
                territory_by_country.setdefault(c, name)
    return CompiledRouting(
        rep_emails=tuple(_email(r.email) for r in cfg.reps),
        schedules={_email(r.email): _schedule(r, shared) for r in cfg.reps},
        pools=pools,
        rules=tuple(rules),
        fallback_pool=cfg.fallback_pool,
        fallback_queue={str(k): v for k, v in cfg.fallback_queue.items()},
        when_unavailable=cfg.when_unavailable,
        keep_existing_owner=cfg.keep_existing_owner,
        unassigned_owner_ids=frozenset(cfg.unassigned_owner_ids) | frozenset(cfg.fallback_queue.values()),
        account_matching=cfg.account_matching,
        prefer_parent_owner=cfg.account_owner == "parent",
        contact_matching=cfg.contact_matching,
        matched_owner_availability=cfg.matched_owner_availability,
        region_by_country=region_by_country,
        region_by_state=region_by_state,
        territory_by_country=territory_by_country,
        territory_by_state=territory_by_state,
        postal_ranges={c: tuple(sorted(v)) for c, v in postal.items()},
        day_zone=load_zone(cfg.day_timezone),
        language_field=cfg.language_field,
        sla_minutes=cfg.sla.minutes,
        max_reassignments=cfg.sla.max_reassignments,
        config=cfg,
        conversion_min_leads=cfg.conversion_min_leads,
        matcher=_generate_matcher(cfg.rules),
    )


def build_reps(cfg: RoutingConfig | CompiledRouting, owners_by_crm: Mapping[str, Sequence[Owner]]) -> tuple[list[Rep], list[ConfigProblem]]:
    """Resolve each configured rep to owner ids per CRM (email, case-insensitive; explicit ids win).

    A rep whose CRM user is inactive or archived gets no id in that CRM; a rep with no active
    owner anywhere is inactive; a rep found in no CRM is a warning (it receives no leads).
    """
    config = cfg.config if isinstance(cfg, CompiledRouting) else cfg
    by_email: dict[str, dict[str, Owner]] = {}
    by_id: dict[str, dict[str, Owner]] = {}
    for crm, owners in owners_by_crm.items():
        by_email[crm] = {}
        by_id[crm] = {o.id: o for o in owners}
        for user in owners:
            if user.email and not user.is_queue:
                # An active user wins over an archived one with the same email.
                key = _email(user.email)
                if key not in by_email[crm] or (user.is_active and not by_email[crm][key].is_active):
                    by_email[crm][key] = user
    reps: list[Rep] = []
    warnings: list[ConfigProblem] = []
    for i, rc in enumerate(config.reps):
        email = _email(rc.email)
        path = f"routing.reps[{i}]"
        ids: dict[str, str] = {}
        found_any = False
        inactive_in: list[str] = []
        names: list[str] = []
        for crm in owners_by_crm:
            explicit = {str(k): v for k, v in rc.owner_ids.items()}.get(crm)
            owner: Owner | None = by_id[crm].get(explicit) if explicit else by_email[crm].get(email)
            if explicit and owner is None:
                # Explicit ids are trusted even when the owner list does not show them (e.g. a queue).
                ids[crm] = explicit
                found_any = True
                continue
            if owner is None:
                continue
            found_any = True
            names.append(owner.name)
            if owner.is_active:
                ids[crm] = owner.id
            else:
                inactive_in.append(crm)
        for crm, explicit in rc.owner_ids.items():
            if crm not in owners_by_crm:
                ids[crm] = explicit
                found_any = True
        if not found_any:
            crms = ", ".join(owners_by_crm) or "no CRM"
            warnings.append(ConfigProblem(f"{path}.email", f"rep {email} is not an owner in {crms}; this rep receives no leads"))
        for crm in inactive_in:
            warnings.append(ConfigProblem(f"{path}.email", f"rep {email} is inactive in {crm}; this rep receives no {crm} leads"))
        is_active = rc.active and bool(ids)
        reps.append(Rep(
            email=email,
            name=rc.name or next((n for n in names if n), ""),
            owner_ids=ids,
            is_active=is_active,
            timezone=rc.timezone,
            country=rc.country,
            weight=rc.weight,
            tier=rc.tier,
            skills={k: tuple(getattr(rc, k)) for k in SKILLS if getattr(rc, k)},
            max_open_leads=rc.max_open_leads,
            max_leads_per_day=rc.max_leads_per_day,
        ))
    return reps, warnings


@dataclass(frozen=True, slots=True)
class CounterOp:
    """One counter change the store applies: `add` a delta or `set` a value of scope/key."""

    scope: str
    key: str
    kind: Literal["add", "set"]
    value: int


@dataclass(frozen=True, slots=True)
class StateChange:
    ops: tuple[CounterOp, ...] = ()

    def __add__(self, other: StateChange) -> StateChange:
        return StateChange(self.ops + other.ops)


NO_CHANGE = StateChange()
_counter_op = frozen_builder(CounterOp)
_state_change = frozen_builder(StateChange)


class RoutingState:
    """A snapshot of the routing counters: scope -> key -> value (an immutable value; equal when the counters are).

    Scopes: "rr:<pool>" -> {rep email: pass, "~vt": pool clock}; "load:open" -> {rep email: open
    leads}; "load:day:<YYYY-MM-DD>" -> {rep email: leads assigned that day (in routing.day_timezone)}.

    A batch applies hundreds of small changes, each to the newest state. So the states of one batch
    share one set of counters (`_Live`) changed in place: the newest state reads them directly, an
    older one is rebuilt when read, by undoing the changes made since (each state keeps the undo
    of the change applied to it). Reads of any state give what they gave before; only the cost moves.
    """

    __slots__ = ("_counters", "_live", "_next", "_undo")

    _counters: dict[str, dict[str, int]] | None  # built (or given) counters; None until read
    _live: _Live | None  # the lineage's shared counters: ours while we are its tip
    _next: RoutingState | None  # the state the change after us made, and how to undo it
    _undo: _Undo | None

    def __init__(self, counters: Mapping[str, Mapping[str, int]] | None = None) -> None:
        _set_counters(self, {scope: dict(values) for scope, values in counters.items()} if counters else {})
        _set_live(self, None)
        _set_next(self, None)
        _set_undo(self, None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RoutingState is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RoutingState is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoutingState):
            return NotImplemented
        return self is other or self.counters == other.counters

    __hash__ = None  # type: ignore[assignment]  # a mutable-looking mapping inside: not hashable, as before

    def __repr__(self) -> str:
        return f"RoutingState(counters={self.counters!r})"

    @property
    def counters(self) -> Mapping[str, Mapping[str, int]]:
        counters = self._counters
        if counters is None:
            counters = _rebuild(self)
        return counters

    def get(self, scope: str, key: str) -> int:
        live = self._live
        values = (live.values if live is not None and live.tip is self else self.counters).get(scope)
        return values.get(key, 0) if values is not None else 0

    def scope(self, scope: str) -> Mapping[str, int]:
        live = self._live
        if live is not None and live.tip is self and self._counters is None:
            return dict(live.values.get(scope, ()))  # a copy: the live counters move on with the batch
        return self.counters.get(scope, {})


# How to undo one change: its ops, each key's value before (None: absent), the scopes it created.
_Undo = tuple[tuple[CounterOp, ...], list[int | None], list[str]]


class _Live:
    """The counters of the newest state of a lineage, changed in place, plus what capacity memos need.

    `cap_version` moves whenever a change touches a capped rep at or over its cap (or takes one
    there); `bumps[v - 1]` is the rep that made version v. A plan's capacity verdicts computed at
    one version hold until one of its capped reps is bumped (or `epoch`, a new caps table or day).
    """

    __slots__ = ("values", "tip", "caps", "day", "cap_version", "bumps", "epoch")

    def __init__(self, values: dict[str, dict[str, int]], tip: RoutingState) -> None:
        self.values = values
        self.tip = tip
        self.caps: Mapping[str, tuple[int | None, int | None]] | None = None  # rep email -> (open cap, day cap)
        self.day: str | None = None
        self.cap_version = 0
        self.bumps: list[str] = []
        self.epoch = 0

    def watch(self, caps: Mapping[str, tuple[int | None, int | None]], day: str) -> None:
        """Track capacity for these caps and this day's scope (a new table or day starts a new version)."""
        if self.caps is not caps or self.day != day:
            self.caps, self.day = caps, day
            self.bumps.append("")  # no rep: the epoch says it all
            self.cap_version = self.epoch = len(self.bumps)


# Slot setters: states are immutable to everyone else; these build and link them.
_new_state = object.__new__
_set_counters = vars(RoutingState)["_counters"].__set__
_set_live = vars(RoutingState)["_live"].__set__
_set_next = vars(RoutingState)["_next"].__set__
_set_undo = vars(RoutingState)["_undo"].__set__


def _rebuild(state: RoutingState) -> dict[str, dict[str, int]]:
    """An older state's counters: the newest built ones, with the changes made since undone (newest first)."""
    undos: list[_Undo] = []
    cur = state
    while cur._counters is None and cur._next is not None and cur._undo is not None:
        undos.append(cur._undo)
        cur = cur._next
    if cur._counters is not None:
        base: Mapping[str, dict[str, int]] = cur._counters
    else:
        live = cur._live
        assert live is not None and live.tip is cur, "a lazy routing state is the tip of its lineage or has a successor"
        base = live.values
    counters = {scope: dict(values) for scope, values in base.items()}
    for ops, olds, created in reversed(undos):
        for op, old in zip(reversed(ops), reversed(olds), strict=True):
            if old is None:
                del counters[op.scope][op.key]
            else:
                counters[op.scope][op.key] = old
        for scope in created:
            del counters[scope]
    _set_counters(state, counters)
    return counters


def _read(state: RoutingState) -> Mapping[str, Mapping[str, int]]:
    """The state's counters for reading within one call: the shared live ones when it is the tip (no copy)."""
    live = state._live
    if live is not None and live.tip is state:
        return live.values
    return state.counters


def _live(state: RoutingState) -> _Live:
    """The shared counters with `state` as their tip (a copy of its counters when it is not the tip)."""
    live = state._live
    if live is not None and live.tip is state:
        return live
    live = _Live({scope: dict(values) for scope, values in state.counters.items()}, state)
    _set_live(state, live)
    return live


def state_from_counters(counters: Mapping[str, Mapping[str, int]]) -> RoutingState:
    """The snapshot the store's counters describe (copied, so later store writes do not leak in)."""
    return RoutingState(counters)


def apply_change(state: RoutingState, change: StateChange) -> RoutingState:
    """The state after `change`: lets a batch route many leads in memory against an evolving snapshot.

    `state` stays as it was (it keeps how to undo the change); the new state is the lineage's tip.
    """
    ops = change.ops
    if not ops:
        return state
    live = state._live
    if live is None or live.tip is not state:
        live = _live(state)
    values = live.values
    caps, day = live.caps, live.day
    olds: list[int | None] = []
    created: list[str] = []
    last_scope: str | None = None
    scope_values: dict[str, int] = {}
    for op in ops:
        scope, key = op.scope, op.key
        if scope is not last_scope:  # a change's ops come grouped by scope (rr, rr, open, day)
            last_scope = scope
            found = values.get(scope)
            if found is None:
                found = values[scope] = {}
                created.append(scope)
            scope_values = found
        old = scope_values.get(key)
        new = scope_values[key] = (old or 0) + op.value if op.kind == "add" else op.value
        olds.append(old)
        if caps is not None and (scope == OPEN_SCOPE or scope == day):
            limits = caps.get(key)
            if limits is not None:
                cap = limits[0] if scope == OPEN_SCOPE else limits[1]
                if cap is not None and (new >= cap or (old or 0) >= cap):
                    live.bumps.append(key)
                    live.cap_version = len(live.bumps)
    child = _new_state(RoutingState)
    _set_counters(child, None)
    _set_live(child, live)
    _set_next(child, None)
    _set_undo(child, None)
    _set_next(state, child)
    _set_undo(state, (ops, olds, created))
    live.tip = child
    return child


def day_scope(compiled: CompiledRouting, now: datetime) -> str:
    """The scope of today's per-rep lead counts (the day in routing.day_timezone)."""
    return f"{DAY_PREFIX}{now.astimezone(compiled.day_zone).date().isoformat()}"


def next_day_start(compiled: CompiledRouting, now: datetime) -> datetime:
    """When the next routing day begins (midnight in routing.day_timezone): leads-per-day counts start over."""
    local = now.astimezone(compiled.day_zone).date() + timedelta(days=1)
    return datetime(local.year, local.month, local.day, tzinfo=compiled.day_zone).astimezone(now.tzinfo)


def required_scopes(compiled: CompiledRouting, now: datetime) -> list[str]:
    """Every counter scope `route_lead` may read or change at `now` (lock and load these).

    With conversion weighting, also the per-rep routed / converted counts its rates come from.
    """
    conversion = {ROUTED_SCOPE, CONVERTED_SCOPE} if compiled.weights_by_conversion else set()
    return sorted({p.scope for p in compiled.pools.values()} | {OPEN_SCOPE, day_scope(compiled, now)} | conversion)


def release_change(rep_email: str) -> StateChange:
    """One open lead fewer for a rep (the pipeline applies it when a routed lead closes or converts)."""
    return StateChange((CounterOp(OPEN_SCOPE, _email(rep_email), "add", -1),))


# A pool member as a batch sees it: email, rep, why not eligible (None: eligible), candidate, stride.
_Member = tuple[str, "Rep | None", "str | None", Candidate, int]


# rows, their emails, strides and weights, every member's verdict, tier reasons
_Variant = tuple[tuple[int, ...], tuple[str, ...], tuple[int, ...], tuple[int, ...], tuple[Candidate, ...], tuple[str, ...]]


class _Rotation(NamedTuple):
    """Reps in a round-robin race: their emails and strides, and (email, stride, position) in tie order (see _earliest)."""

    emails: tuple[str, ...]
    strides: tuple[int, ...]
    ranked: tuple[tuple[str, int, int], ...]  # by stride, largest first, then position


def _rotation(emails: Sequence[str], strides: Sequence[int]) -> _Rotation:
    order = sorted(range(len(strides)), key=lambda j: (-strides[j], j))
    return _Rotation(tuple(emails), tuple(strides), tuple((emails[j], strides[j], j) for j in order))


# The reps best_match ties on for one lead's skill needs: (-matched, their positions in sel, their race).
_Group = tuple[int, tuple[int, ...], _Rotation]


# What stays the same whenever one member is chosen: the verdicts with it chosen, its load ops, its rotation reason.
_Chosen = tuple[tuple[Candidate, ...], tuple["CounterOp", "CounterOp"], str]


# A plan's rows and verdicts for one set of blocked rows (reps at capacity, then lacking a required skill):
# _Variant, per chosen position its _Chosen, the rows' race, best_match's tie groups per skill needs,
# the blocked rows with why, and per (required skills, skill needs) the entry with those reps blocked too.
_Entry = tuple[
    tuple[int, ...], tuple[str, ...], tuple[int, ...], tuple[int, ...], tuple[Candidate, ...], tuple[str, ...],
    dict[int, _Chosen], _Rotation, dict[tuple[Any, ...], _Group], Mapping[int, str], dict[tuple[Any, ...], "_Entry"],
]


def _earliest(race: _Rotation, rr: Mapping[str, int], vt: int) -> tuple[int, int]:
    """(position, finish) of the smallest (finish, start, position) in round robin.

    finish = max(end, vt) with end = pass + stride, start = finish - stride: every rep with end <= vt
    finishes at vt and beats those with end > vt; among those, the largest stride starts first.
    So the first rep in tie order with end <= vt wins (usually near the front: races are small,
    and a plain loop stops there); only when there is none are all ends compared.
    """
    get = rr.get
    for email, stride, j in race.ranked:
        if get(email, 0) + stride <= vt:
            return j, vt
    strides = race.strides
    ends = list(map(add, map(get, race.emails, repeat(0)), strides))
    first = min(ends)
    if ends.count(first) == 1:
        return ends.index(first), first
    return min(zip(ends, map(sub, ends, strides), range(len(ends))))[-1], first


def _earliest_among(race: _Rotation, rr: Mapping[str, int], vt: int, primary: Sequence[int], low: int) -> tuple[int, int]:
    """`_earliest` among the positions whose `primary` is `low` (least_loaded's ties on load)."""
    get = rr.get
    for email, stride, j in race.ranked:
        if primary[j] == low and get(email, 0) + stride <= vt:
            return j, vt
    best: tuple[int, int, int] | None = None
    for j, (email, stride) in enumerate(zip(race.emails, race.strides)):
        if primary[j] == low:
            end = get(email, 0) + stride
            key = (end, end - stride, j)
            if best is None or key < best:
                best = key
    assert best is not None, "low is one of the primaries"
    return best[2], best[0]


class _Plan:
    """A pool as one rule sees it for a whole batch: its eligible reps (rows) and their verdicts before capacity.

    Built once per snapshot; `_pick_planned` then picks a rep for each lead without a Python loop
    over every member. Rows are the members eligible before capacity and tier, in member order.
    """

    __slots__ = ("base", "candidates", "tier_reasons", "tier", "tier_strict", "rule_name", "emails", "positions", "reps",
                 "strides", "weights", "in_tier", "sel", "sel_emails", "sel_strides", "sel_weights", "open_cap_rows",
                 "open_cap_emails", "open_caps", "day_cap_rows", "day_cap_emails", "day_caps", "skill_rows", "variants",
                 "unmatched", "sel_race", "base_entry", "all_caps", "cap_emails", "capacity", "heads", "set_ops")

    def __init__(self, snap: AvailabilitySnapshot, members: Sequence[_Member], rule: CompiledRule | None) -> None:
        self.base = tuple(m[3] for m in members)  # every member's verdict before capacity and tier
        eligible = [(index, m) for index, m in enumerate(members) if m[2] is None and m[1] is not None]
        reps: list[Rep] = [m[1] for _, m in eligible]  # type: ignore[misc]
        self.emails = tuple(m[0] for _, m in eligible)
        self.positions = tuple(index for index, _ in eligible)
        self.reps = tuple(reps)
        self.strides = tuple(m[4] for _, m in eligible)
        self.weights = tuple(rep.weight if rep.weight >= 1 else 1 for rep in reps)  # what least_loaded divides by
        self.tier = rule.tier if rule is not None else None
        self.tier_strict = rule.tier_strict if rule is not None else False
        self.rule_name = rule.name if rule is not None else None
        self.in_tier = tuple(self.tier is None or rep.tier == self.tier for rep in reps)
        # Without anyone at capacity (the usual case) the tier filter gives the same answer for every lead.
        sel = list(range(len(reps)))
        cands = list(self.base)
        tier_reasons: tuple[str, ...] = ()
        if self.tier is not None:
            in_tier = [r for r in sel if self.in_tier[r]]
            if in_tier or self.tier_strict:
                for r in sel:
                    if not self.in_tier[r]:
                        cands[self.positions[r]] = snap.candidate(self.emails[r], False, self.tier_verdict(reps[r]))
                sel = in_tier
                tier_reasons = (f"tier {self.tier} only",)
            else:
                tier_reasons = (f"no eligible {self.tier} rep; any tier",)
        self.candidates = tuple(cands)
        self.tier_reasons = tier_reasons
        self.sel = tuple(sel)
        self.sel_emails = tuple(self.emails[r] for r in sel)
        self.sel_strides = tuple(self.strides[r] for r in sel)
        self.sel_weights = tuple(self.weights[r] for r in sel)
        self.sel_race = _rotation(self.sel_emails, self.sel_strides)
        opens = [(r, rep.max_open_leads) for r, rep in enumerate(reps) if rep.max_open_leads is not None]
        days = [(r, rep.max_leads_per_day) for r, rep in enumerate(reps) if rep.max_leads_per_day is not None]
        self.open_cap_rows = tuple(r for r, _ in opens)
        self.open_cap_emails = tuple(self.emails[r] for r, _ in opens)
        self.open_caps: tuple[int, ...] = tuple(c for _, c in opens if c is not None)
        self.day_cap_rows = tuple(r for r, _ in days)
        self.day_cap_emails = tuple(self.emails[r] for r, _ in days)
        self.day_caps: tuple[int, ...] = tuple(c for _, c in days if c is not None)
        self.all_caps = (*self.open_caps, *self.day_caps)
        self.cap_emails = frozenset((*self.open_cap_emails, *self.day_cap_emails))
        # The lineage, its capacity version and the entry its counts gave (see _Live.cap_version).
        self.capacity: tuple[_Live, int, _Entry] | None = None
        self.heads: dict[tuple[str | None, str], tuple[str, str]] = {}  # (rule, strategy) -> the rule and pool reasons
        self.set_ops: dict[tuple[str, int], CounterOp] = {}  # (key, value) -> the op setting it in the pool's scope
        self.skill_rows: dict[str, dict[str, frozenset[int]]] | None = None  # built on first best_match
        # No one at capacity: rows, emails, strides, weights, verdicts, tier reasons, position -> what
        # choosing that rep gives, the rows' race, best_match's tie groups.
        self.base_entry: _Entry = (
            self.sel, self.sel_emails, self.sel_strides, self.sel_weights, self.candidates, self.tier_reasons, {}, self.sel_race, {}, {}, {},
        )
        # Which capped rows (open caps, then day caps) are full, and their counts -> their entry.
        self.variants: dict[tuple[tuple[bool, ...], tuple[int, ...]], _Entry] = {}
        self.unmatched: dict[tuple[Any, ...], list[int]] = {}  # a lead's skill needs -> per row, minus the needs it meets

    def variant(self, snap: AvailabilitySnapshot, blocked: Mapping[int, str]) -> _Variant:
        """Rows, verdicts and tier reasons when the `blocked` rows are at capacity (the tier filter then looks again)."""
        cand_list = list(self.base)
        for row, why in blocked.items():
            cand_list[self.positions[row]] = snap.candidate(self.emails[row], False, why)
        open_rows = [row for row in range(len(self.emails)) if row not in blocked]
        tier_reasons: tuple[str, ...] = ()
        if self.tier is not None:
            in_tier = [row for row in open_rows if self.in_tier[row]]
            if in_tier or self.tier_strict:
                for row in open_rows:
                    if not self.in_tier[row]:
                        cand_list[self.positions[row]] = snap.candidate(self.emails[row], False, self.tier_verdict(self.reps[row]))
                open_rows = in_tier
                tier_reasons = (f"tier {self.tier} only",)
            else:
                tier_reasons = (f"no eligible {self.tier} rep; any tier",)
        return (
            tuple(open_rows), tuple(self.emails[r] for r in open_rows), tuple(self.strides[r] for r in open_rows),
            tuple(self.weights[r] for r in open_rows), tuple(cand_list), tier_reasons,
        )

    def tier_verdict(self, rep: Rep) -> str:
        return f"tier {rep.tier}; rule {self.rule_name!r} wants {self.tier}"

    def skills_index(self, snap: AvailabilitySnapshot) -> Mapping[str, Mapping[str, frozenset[int]]]:
        """skill -> value -> rows whose rep has it, so a lead's matches are counted per value, not per rep."""
        if self.skill_rows is None:
            index: dict[str, dict[str, set[int]]] = {}
            for row, (email, rep) in enumerate(zip(self.emails, self.reps, strict=True)):
                for skill, values in snap.skills(email, rep).items():
                    for value in values:
                        index.setdefault(skill, {}).setdefault(value, set()).add(row)
            self.skill_rows = {k: {v: frozenset(rows) for v, rows in by_value.items()} for k, by_value in index.items()}
        return self.skill_rows


class AvailabilitySnapshot:
    """Reps by email and owner id, and why each one cannot take leads at `now` (inactive, absent, off hours).

    Build it once per batch with `availability_snapshot` and pass it in `RoutingContext.availability`;
    without one, `route_lead` works out only the reps it looks at, lead by lead. Capacity is not
    part of it: that depends on the evolving routing state.
    """

    __slots__ = ("now", "reps", "day", "_compiled", "_by_email", "_by_owner", "_blocked", "_skills", "_cands", "_members", "_plans", "_load_ops",
                 "_by_schedule", "_rep_values", "_caps", "_free")

    def __init__(self, reps: Sequence[Rep], compiled: CompiledRouting, now: datetime, *, eager: bool = True) -> None:
        self.now = now
        self.reps = reps
        self._compiled = compiled
        self._rep_values = tuple(reps)
        last = compiled.batch_memo.get("snapshot") if eager else None
        if isinstance(last, AvailabilitySnapshot) and last._rep_values == self._rep_values and last.now == now:
            # The same reps at the same instant (a replay, or batches routed at one `now`): the same snapshot.
            self._share(last, verdicts=True)
            compiled.batch_memo["snapshot"] = self
            return
        self._by_email = {_email(r.email): r for r in reps}
        self._by_owner: dict[tuple[str, str], Rep] | None = None
        self._blocked: dict[str, str | None] = {}
        self._skills: dict[str, Mapping[str, frozenset[str]]] = {}
        self._cands: dict[tuple[str, bool, str], Candidate] = {}
        self._members: dict[tuple[str, str], tuple[object, tuple[_Member, ...]]] = {}
        self._plans: dict[tuple[str, str, str | None], tuple[object, _Plan]] = {}
        self._load_ops: dict[str, tuple[CounterOp, CounterOp]] = {}
        self._by_schedule: dict[int, str | None] = {}  # reps sharing a schedule share its verdict at `now`
        self._free: dict[tuple[str, bool], tuple[Unavailability | None, datetime | None]] = {}  # see free_at
        self.day = day_scope(compiled, now)
        self._caps: dict[str, tuple[int | None, int | None]] | None = None
        if eager:
            for email in self._by_email:
                self.blocked_reason(email)
            if (
                isinstance(last, AvailabilitySnapshot) and last.day == self.day and last._blocked == self._blocked
                and last._rep_values == self._rep_values
            ):
                # Same reps, same verdicts, same day: the pool tables and plans come out the same.
                self._share(last, verdicts=False)
            compiled.batch_memo["snapshot"] = self

    def _share(self, last: AvailabilitySnapshot, *, verdicts: bool) -> None:
        """Take `last`'s tables (all of them with `verdicts`: same reps and same instant)."""
        if verdicts:
            self._by_email, self._blocked, self._by_schedule, self.day = last._by_email, last._blocked, last._by_schedule, last.day
            self._free = last._free
        self._by_owner, self._skills, self._cands = last._by_owner, last._skills, last._cands
        self._members, self._plans, self._load_ops = last._members, last._plans, last._load_ops
        self._caps = last._caps

    def rep(self, email: str) -> Rep | None:
        return self._by_email.get(email)

    def rep_for_owner(self, crm: str, owner_id: str) -> Rep | None:
        if self._by_owner is None:
            self._by_owner = {(c, oid): r for r in self.reps for c, oid in r.owner_ids.items()}
        return self._by_owner.get((crm, owner_id))

    def blocked_reason(self, email: str) -> str | None:
        """Inactive, out of office, holiday or outside working hours; None when the rep can work now."""
        if email in self._blocked:
            return self._blocked[email]
        rep = self._by_email.get(email)
        reason: str | None
        if rep is None:
            reason = "not resolved to a CRM owner"
        elif not rep.is_active:
            reason = "inactive"
        else:
            schedule = self._compiled.schedules.get(email)
            if schedule is None:
                reason = Schedule(timezone=load_zone(rep.timezone)).unavailable_reason(self.now)
            else:
                key = id(schedule)  # schedules live as long as the compiled config
                if key in self._by_schedule:
                    reason = self._by_schedule[key]
                else:
                    reason = self._by_schedule[key] = schedule.unavailable_reason(self.now)
        self._blocked[email] = reason
        return reason

    def schedule(self, email: str, rep: Rep) -> Schedule:
        """The rep's schedule (a rep missing from the config works at any hour in its zone)."""
        return self._compiled.schedules.get(email) or Schedule(timezone=load_zone(rep.timezone))

    def free_at(self, email: str, rep: Rep, *, next_day: bool = False) -> tuple[Unavailability | None, datetime | None]:
        """What keeps the rep away at `now` by their schedule (None: nothing), and the first instant they are free.

        With `next_day`, the first instant from the start of the next routing day (a leads-per-day cap
        frees then). None as the instant: not within the schedule's horizon. Worked out once per rep.
        """
        key = (email, next_day)
        found = self._free.get(key)
        if found is None:
            schedule = self.schedule(email, rep)
            start = next_day_start(self._compiled, self.now) if next_day else self.now
            found = self._free[key] = (schedule.unavailable_cause(self.now), schedule.next_available(start))
        return found

    def members(self, pool: CompiledPool, crm: str, known: Collection[str] | None) -> tuple[_Member, ...]:
        """(email, rep, why not, candidate, stride) per pool member: what does not change within the batch."""
        cached = self._members.get((pool.name, crm))
        if cached is not None and cached[0] is known:
            return cached[1]
        rows: list[_Member] = []
        for email in pool.members:
            rep = self._by_email.get(email)
            why = self.blocked_reason(email)
            if why is None and rep is not None:
                owner_id = rep.owner_ids.get(crm)
                if owner_id is None:
                    why = f"no owner id in {crm}"
                elif known is not None and owner_id not in known:
                    why = f"owner {owner_id} is not an active owner in {crm}"
            weight = rep.weight if rep is not None and 1 <= rep.weight <= MAX_WEIGHT else 1
            rows.append((email, rep, why, self.candidate(email, why is None, why or "eligible"), TURN // weight))
        table = tuple(rows)
        self._members[(pool.name, crm)] = (known, table)
        return table

    def plan(self, pool: CompiledPool, rule: CompiledRule | None, crm: str, known: Collection[str] | None) -> _Plan:
        """The pool's rows and verdicts for leads of `crm` under `rule` (its tier), built once per batch."""
        tiered = rule if rule is not None and rule.tier is not None else None
        key = (pool.name, crm, tiered.name if tiered is not None else None)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is known:
            return cached[1]
        plan = _Plan(self, self.members(pool, crm, known), tiered)
        self._plans[key] = (known, plan)
        return plan

    def caps(self) -> Mapping[str, tuple[int | None, int | None]]:
        """rep email -> (max open leads, max leads per day), for the reps with a cap."""
        if self._caps is None:
            self._caps = {
                _email(r.email): (r.max_open_leads, r.max_leads_per_day)
                for r in self.reps if r.max_open_leads is not None or r.max_leads_per_day is not None
            }
        return self._caps

    def load_ops(self, email: str) -> tuple[CounterOp, CounterOp]:
        """One more open lead and one more lead today for a rep: the same two ops for every lead of the batch."""
        ops = self._load_ops.get(email)
        if ops is None:
            ops = self._load_ops[email] = (CounterOp(OPEN_SCOPE, email, "add", 1), CounterOp(self.day, email, "add", 1))
        return ops

    def skills(self, email: str, rep: Rep) -> Mapping[str, frozenset[str]]:
        cached = self._skills.get(email)
        if cached is None:
            cached = {k: frozenset(v.strip().lower() for v in values) for k, values in rep.skills.items()}
            self._skills[email] = cached
        return cached

    def candidate(self, email: str, eligible: bool, reason: str) -> Candidate:
        """Candidates repeat across a batch; share the values."""
        key = (email, eligible, reason)
        cand = self._cands.get(key)
        if cand is None:
            cand = self._cands[key] = Candidate(email, eligible, reason)
        return cand


def availability_snapshot(reps: Sequence[Rep], compiled: CompiledRouting, now: datetime) -> AvailabilitySnapshot:
    """Every rep's availability at `now`, computed once and reused for a batch routed at that instant."""
    return AvailabilitySnapshot(reps, compiled, now, eager=True)


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What the pipeline looked up for one lead: reps, the matched account, a duplicate contact's owner."""

    reps: Sequence[Rep] = ()
    account: Account | None = None
    contact_owner_id: str | None = None
    is_free_mail: bool = False
    conversion_rates: Mapping[str, float] | None = None  # rep email -> past conversion rate (pools with weight_by_conversion)
    known_owner_ids: Collection[str] | None = None  # active owner ids of the lead's CRM; None = not known
    is_competitor: bool = False
    availability: AvailabilitySnapshot | None = None


class LeadRoutingView(Protocol):
    """What SLA checks need from the store's record of a routed lead (store.LeadState fits)."""

    @property
    def routed_owner_id(self) -> str | None: ...
    @property
    def routed_rep(self) -> str | None: ...
    @property
    def routed_at(self) -> datetime | None: ...
    @property
    def reassignments(self) -> int: ...
    @property
    def initial_status(self) -> str | None: ...


def _snapshot(ctx: RoutingContext, compiled: CompiledRouting, now: datetime) -> AvailabilitySnapshot:
    snap = ctx.availability
    if snap is not None and snap.now == now and snap.reps is ctx.reps and snap._compiled is compiled:
        return snap
    return AvailabilitySnapshot(ctx.reps, compiled, now, eager=False)


def place_of(lead: Lead, compiled: CompiledRouting) -> tuple[str | None, str | None]:
    """(region, territory) of a lead: the most specific match wins (postal range > state > country)."""
    key = (lead.country, lead.state, lead.postal_code)
    memo = compiled.place_memo
    found = memo.get(key)
    if found is None:
        if len(memo) >= PLAN_MEMO_LIMIT:
            memo.clear()
        found = memo[key] = _place(*key, compiled)
    return found


def _place(country_name: str | None, state_name: str | None, postal_code: str | None, compiled: CompiledRouting) -> tuple[str | None, str | None]:
    if not country_name:
        return None, None
    country = _up(country_name)
    state = _up(state_name) if state_name else None
    region = (compiled.region_by_state.get((country, state)) if state else None) or compiled.region_by_country.get(country)
    territory = None
    ranges = compiled.postal_ranges.get(country)
    if ranges and postal_code:
        code = _postal(postal_code)
        for lo, hi, name in ranges:
            prefix = code[: len(lo)]
            if len(prefix) == len(lo) and lo <= prefix <= hi:
                territory = name
                break
    if territory is None and state:
        territory = compiled.territory_by_state.get((country, state))
    if territory is None:
        territory = compiled.territory_by_country.get(country)
    return region, territory


def condition_context(lead: Lead, score: ScoreResult, ctx: RoutingContext, compiled: CompiledRouting) -> dict[str, Any]:
    """The context fields rule conditions can read besides lead attributes."""
    region, territory = place_of(lead, compiled)
    return {
        "score": score.score,
        "grade": score.grade,
        "model": score.model,
        "bant": score.bant,
        "is_mql": score.is_mql,
        "region": region,
        "territory": territory,
        "is_free_mail": ctx.is_free_mail,
        "is_competitor": ctx.is_competitor,
    }


def _match_rule(lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting) -> CompiledRule | None:
    for rule in compiled.rules:
        if rule.predicate(lead, fields):
            return rule
    return None


def _owner_problem(
    owner_id: str, crm: str, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState,
    compiled: CompiledRouting, now: datetime, *, check_availability: bool,
) -> tuple[str | None, Rep | None]:
    """Why an existing / account / contact owner cannot take the lead (None: they can), and their rep."""
    rep = snap.rep_for_owner(crm, owner_id)
    if ctx.known_owner_ids is None:
        if rep is None:
            return f"owner {owner_id} is not a known active owner in {crm}", None
    elif owner_id not in ctx.known_owner_ids:
        return f"owner {owner_id} is not an active owner in {crm}", rep
    if rep is None:
        return None, None
    if not rep.is_active:
        return f"{rep.email} is inactive", rep
    if check_availability:
        why = snap.blocked_reason(_email(rep.email)) or _capacity_problem(rep, state, compiled, now)
        if why is not None:
            return f"{rep.email}: {why}", rep
    return None, rep


def _capacity_problem(rep: Rep, state: RoutingState, compiled: CompiledRouting, now: datetime, day: str | None = None) -> str | None:
    email = _email(rep.email)
    if rep.max_open_leads is not None:
        n = state.get(OPEN_SCOPE, email)
        if n >= rep.max_open_leads:
            return f"at capacity: {n}/{rep.max_open_leads} open leads"
    if rep.max_leads_per_day is not None:
        n = state.get(day or day_scope(compiled, now), email)
        if n >= rep.max_leads_per_day:
            return f"at capacity: {n}/{rep.max_leads_per_day} leads today"
    return None


def _lead_skills(lead: Lead, region: str | None, territory: str | None, compiled: CompiledRouting) -> dict[str, frozenset[str]]:
    """What the lead asks of a rep, per skill (lower-case); empty sets are not asked for."""
    language: Any = None
    name = compiled.language_field
    if name:
        language = lead.extra.get(name[len("extra."):]) if name.startswith("extra.") else getattr(lead, name, None)
    places = {p.strip().lower() for p in (region, territory, lead.country) if p}
    return {
        "industries": frozenset({lead.industry.strip().lower()}) if lead.industry else frozenset(),
        "products": frozenset(p.strip().lower() for p in lead.product_interest if p),
        "languages": frozenset({str(language).strip().lower()}) if language else frozenset(),
        "regions": frozenset(places),
    }


@dataclass(frozen=True, slots=True)
class _Pick:
    email: str | None
    rep: Rep | None
    strategy: str
    arm: str | None
    candidates: tuple[Candidate, ...]
    reasons: tuple[str, ...]
    ops: tuple[CounterOp, ...]


def conversion_rates(routed: Mapping[str, int], converted: Mapping[str, int], min_leads: int) -> dict[str, float]:
    """rep email -> converted / routed, for reps with at least `min_leads` routed leads.

    Reps with fewer have no rate yet and keep their configured weight: a handful of leads says
    little about a rep. A rep credited with more conversions than routed leads (leads routed
    before the counts began) counts as 1.0.
    """
    return {email: min(1.0, converted.get(email, 0) / n) for email, n in routed.items() if n >= min_leads}


def _conversion_factor(email: str, pool: CompiledPool, rates: Mapping[str, float]) -> float:
    known = [rates[m] for m in pool.members if m in rates]
    if email not in rates or not known:
        return 1.0
    mean = sum(known) / len(known)
    if mean <= 0:
        return 1.0
    lo, hi = CONVERSION_FACTOR_BOUNDS
    return min(hi, max(lo, rates[email] / mean))


def _strategy(pool: CompiledPool, rule: CompiledRule | None, lead: Lead) -> tuple[str, str | None, list[str]]:
    """The strategy a lead is picked by (the rule's, its experiment arm's, or the pool's), the arm, and why."""
    strategy = (rule.strategy if rule is not None else None) or pool.strategy
    if rule is None or rule.experiment is None:
        return strategy, None, []
    exp = rule.experiment
    which = assign_arm(exp.name, lead.key, exp.treatment_share)
    strategy = exp.treatment if which == "treatment" else exp.control
    return strategy, f"{exp.name}:{which}", [f"experiment {exp.name!r}: arm {which} ({strategy})"]


def _pick(
    pool: CompiledPool, rule: CompiledRule | None, lead: Lead, fields: Mapping[str, Any], ctx: RoutingContext,
    snap: AvailabilitySnapshot, state: RoutingState, compiled: CompiledRouting, now: datetime,
    exclude: frozenset[str] = frozenset(),
) -> _Pick:
    """One eligible rep of `pool` by the rule's (or experiment arm's, or pool's) strategy, with every candidate's verdict."""
    strategy, arm, reasons = _strategy(pool, rule, lead)
    day = snap.day
    counters = _read(state)
    empty: Mapping[str, int] = {}
    open_counts = counters.get(OPEN_SCOPE, empty)
    day_counts = counters.get(day, empty)
    required = rule.require_skills if rule is not None else ()
    # The planned path needs no per-lead exclusions or conversion weights (matcher None: the reference path).
    if compiled.matcher is not None and not exclude and not (pool.weight_by_conversion and ctx.conversion_rates):
        plan = snap.plan(pool, rule, lead.crm, ctx.known_owner_ids)
        email, rep, candidates, ops = _pick_planned(snap, plan, pool, strategy, reasons, lead, fields, compiled, _live(state), required)
        return _new_pick(email, rep, strategy, arm, candidates, tuple(reasons), ops)
    need_skills = bool(required) or strategy == "best_match"
    wanted = _lead_skills(lead, fields.get("region"), fields.get("territory"), compiled) if need_skills else {}
    cands: list[Candidate] = []
    eligible: list[tuple[int, str, Rep, int]] = []
    for index, (email, rep, why, cand, stride) in enumerate(snap.members(pool, lead.crm, ctx.known_owner_ids)):
        if why is None and rep is not None:
            if exclude and (email in exclude or rep.owner_ids.get(lead.crm) in exclude):
                why = "already had this lead"
            elif rep.max_open_leads is not None and open_counts.get(email, 0) >= rep.max_open_leads:
                why = f"at capacity: {open_counts.get(email, 0)}/{rep.max_open_leads} open leads"
            elif rep.max_leads_per_day is not None and day_counts.get(email, 0) >= rep.max_leads_per_day:
                why = f"at capacity: {day_counts.get(email, 0)}/{rep.max_leads_per_day} leads today"
            elif required:
                have = snap.skills(email, rep)
                for skill in required:
                    if wanted[skill] and not wanted[skill] & have.get(skill, frozenset()):
                        why = f"lacks skill {skill}: {', '.join(sorted(wanted[skill]))}"
                        break
            if why is None:
                eligible.append((index, email, rep, stride))
            else:
                cand = snap.candidate(email, False, why)
        cands.append(cand)
    if rule is not None and rule.tier is not None:
        in_tier = [e for e in eligible if e[2].tier == rule.tier]
        if in_tier or rule.tier_strict:
            for index, email, rep, _ in eligible:
                if rep.tier != rule.tier:
                    cands[index] = snap.candidate(email, False, f"tier {rep.tier}; rule {rule.name!r} wants {rule.tier}")
            eligible = in_tier
            reasons.append(f"tier {rule.tier} only")
        else:
            reasons.append(f"no eligible {rule.tier} rep; any tier")
    rr = counters.get(pool.scope, empty)
    vt = rr.get(VT_KEY, 0)
    rates = (ctx.conversion_rates or {}) if pool.weight_by_conversion else {}
    best: tuple[Any, ...] | None = None
    chosen: tuple[int, str, Rep, int, int] | None = None
    for index, email, rep, stride in eligible:
        weight = rep.weight if rep.weight >= 1 else 1
        if rates:
            stride = max(1, round(TURN / (weight * _conversion_factor(email, pool, rates))))
        start = rr.get(email, 0)
        if start < vt - stride:
            start = vt - stride  # back from an absence: next in line, not a backlog
        finish = start + stride
        if strategy == "least_loaded":
            key: tuple[Any, ...] = (open_counts.get(email, 0) * TURN // weight, finish, start, index)
        elif strategy == "best_match":
            have = snap.skills(email, rep)
            matched = sum(1 for sk, w in wanted.items() if w and w & have.get(sk, frozenset()))
            key = (-matched, finish, start, index)
        else:
            key = (finish, start, index)
        if best is None or key < best:
            best, chosen = key, (index, email, rep, start, finish)
    if chosen is not None:
        cands[chosen[0]] = Candidate(chosen[1], True, "chosen")
    candidates = tuple(cands)
    if chosen is None or best is None:
        return _Pick(None, None, strategy, arm, candidates, tuple(reasons), ())
    _, email, rep, start, finish = chosen
    if strategy == "least_loaded":
        reasons.append(f"{email}: fewest open leads per weight ({state.get(OPEN_SCOPE, email)} open, weight {rep.weight})")
    elif strategy == "best_match":
        reasons.append(f"{email}: best skills match ({-best[0]} of the lead's needs), next in rotation among ties")
    else:
        reasons.append(f"{email}: next in weighted rotation (weight {rep.weight})")
    ops = (
        CounterOp(pool.scope, email, "set", finish),
        CounterOp(pool.scope, VT_KEY, "set", max(vt, finish)),
        CounterOp(OPEN_SCOPE, email, "add", 1),
        CounterOp(day, email, "add", 1),
    )
    return _Pick(email, rep, strategy, arm, candidates, tuple(reasons), ops)


_new_pick = frozen_builder(_Pick)
_routing_decision = frozen_builder(RoutingDecision)
_candidate = frozen_builder(Candidate)


def _pick_planned(
    snap: AvailabilitySnapshot, plan: _Plan, pool: CompiledPool, strategy: str, reasons: list[str],
    lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting, live: _Live, required: tuple[str, ...],
) -> tuple[str | None, Rep | None, tuple[Candidate, ...], tuple[CounterOp, ...]]:
    """`_pick` from the batch's plan: the same verdicts and the same keys, compared in the same order.

    Returns (email, rep, candidates, ops), email and rep None when nobody is eligible; the
    reasons go to `reasons`.

    No loop over every member: loads run as C-level `map`s over the plan's rows, and the race
    stops at its first eligible rep (_earliest). The key compared is (strategy's primary, finish,
    start, member order); finish = max(pass + stride, vt) (the pass lifted to vt - stride, plus
    the stride) and start = finish - stride, so a unique smallest primary (or finish) decides
    without building the keys. Capacity verdicts are read once per capacity version of the
    lineage (see _Live).
    """
    values = live.values
    empty: Mapping[str, int] = {}
    open_counts = values.get(OPEN_SCOPE, empty)
    if not plan.all_caps:
        entry = plan.base_entry
    else:
        memo = plan.capacity
        if memo is not None and memo[0] is live and memo[1] == live.cap_version and live.caps is snap._caps and live.day == snap.day:
            entry = memo[2]
        else:
            entry = _plan_capacity(snap, plan, live)
    needs = _needs_key(lead, fields, compiled) if required or strategy == "best_match" else ()
    if required:
        entry = _skill_entry(snap, plan, entry, lead, fields, compiled, required, needs)
    sel, emails, strides, weights, cands, tier_reasons, chosen_memo, race, groups, _, _ = entry
    if tier_reasons:
        reasons += tier_reasons
    if not sel:
        return None, None, cands, ()
    scope = pool.scope
    rr = values.get(scope, empty)
    vt = rr.get(VT_KEY, 0)
    # Positions in sel are member order, so they break ties as the member index does.
    if strategy == "least_loaded":
        open_get = open_counts.get
        primary = list(map(floordiv, map(mul, map(open_get, emails, repeat(0)), repeat(TURN)), weights))
        low = min(primary)
        if primary.count(low) == 1:
            i = primary.index(low)
            finish = max(rr.get(emails[i], 0) + strides[i], vt)
        else:
            i, finish = _earliest_among(race, rr, vt, primary, low)
        email, rep = emails[i], plan.reps[sel[i]]
        reasons.append(f"{email}: fewest open leads per weight ({open_get(email, 0)} open, weight {rep.weight})")
    elif strategy == "best_match":
        group = groups.get(needs)
        if group is None:
            group = _tie_group(list(map(_unmatched(plan, snap, lead, fields, compiled, needs).__getitem__, sel)), race)
            if len(groups) >= PLAN_MEMO_LIMIT:
                groups.clear()
            groups[needs] = group
        low, positions, tied = group
        k, finish = _earliest(tied, rr, vt)
        i = positions[k]
        email, rep = emails[i], plan.reps[sel[i]]
        reasons.append(f"{email}: best skills match ({-low} of the lead's needs), next in rotation among ties")
    else:
        i, finish = _earliest(race, rr, vt)
        email, rep = emails[i], plan.reps[sel[i]]
    row = sel[i]
    position = plan.positions[row]
    chosen = chosen_memo.get(position)
    if chosen is None:
        chosen = chosen_memo[position] = (
            (*cands[:position], _candidate(email, True, "chosen"), *cands[position + 1:]),
            snap.load_ops(email),  # the plan serves snapshots of one day only
            f"{email}: next in weighted rotation (weight {rep.weight})",
        )
    candidates, (open_op, day_op), rotation = chosen
    if strategy != "least_loaded" and strategy != "best_match":
        reasons.append(rotation)
    # While reps come back behind the pool clock, picks set passes to the same vt: share those ops.
    set_ops = plan.set_ops
    pass_op = set_ops.get((email, finish))
    if pass_op is None:
        if len(set_ops) >= SET_OP_MEMO_LIMIT:
            set_ops.clear()
        pass_op = set_ops[(email, finish)] = _counter_op(scope, email, "set", finish)
    clock = finish if finish > vt else vt
    clock_op = set_ops.get((VT_KEY, clock))
    if clock_op is None:
        clock_op = set_ops[(VT_KEY, clock)] = _counter_op(scope, VT_KEY, "set", clock)
    return email, rep, candidates, (pass_op, clock_op, open_op, day_op)


def _plan_capacity(snap: AvailabilitySnapshot, plan: _Plan, live: _Live) -> _Entry:
    """The plan's entry for the lineage's counts, recomputed only after a change touched one of its capped reps at a cap."""
    live.watch(snap.caps(), snap.day)
    memo = plan.capacity
    version = live.cap_version
    if memo is not None and memo[0] is live:
        if memo[1] == version:
            return memo[2]
        if memo[1] >= live.epoch and plan.cap_emails.isdisjoint(live.bumps[memo[1]:version]):
            plan.capacity = (live, version, memo[2])
            return memo[2]
    empty: Mapping[str, int] = {}
    entry = _capacity_entry(snap, plan, live.values.get(OPEN_SCOPE, empty), live.values.get(snap.day, empty))
    plan.capacity = (live, version, entry)
    return entry


def _capacity_entry(snap: AvailabilitySnapshot, plan: _Plan, open_counts: Mapping[str, int], day_counts: Mapping[str, int]) -> _Entry:
    """The plan's entry for the capped reps' current counts: who is full, at what count (the verdicts quote it)."""
    counts = [*map(open_counts.get, plan.open_cap_emails, repeat(0)), *map(day_counts.get, plan.day_cap_emails, repeat(0))]
    full = tuple(map(ge, counts, plan.all_caps))
    if True not in full:
        return plan.base_entry
    key = (full, tuple(compress(counts, full)))
    found = plan.variants.get(key)
    if found is not None:
        return found
    n_open = len(plan.open_caps)
    blocked: dict[int, str] = {}
    for row, n, cap, is_full in zip(plan.open_cap_rows, counts[:n_open], plan.open_caps, full[:n_open], strict=True):
        if is_full:
            blocked[row] = f"at capacity: {n}/{cap} open leads"
    for row, n, cap, is_full in zip(plan.day_cap_rows, counts[n_open:], plan.day_caps, full[n_open:], strict=True):
        if is_full and row not in blocked:
            blocked[row] = f"at capacity: {n}/{cap} leads today"
    if len(plan.variants) >= PLAN_MEMO_LIMIT:
        plan.variants.clear()
    variant = plan.variant(snap, blocked)
    found = plan.variants[key] = (*variant, {}, _rotation(variant[1], variant[2]), {}, blocked, {})
    return found


def _skill_entry(
    snap: AvailabilitySnapshot, plan: _Plan, entry: _Entry, lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting,
    required: tuple[str, ...], needs: tuple[Any, ...],
) -> _Entry:
    """`entry` with the reps lacking one of the rule's required skills blocked too, as _pick checks them (after capacity, before tier)."""
    memo = entry[10]
    key = (required, needs)
    found = memo.get(key)
    if found is not None:
        return found
    wanted = _lead_skills(lead, fields.get("region"), fields.get("territory"), compiled)
    blocked = dict(entry[9])
    for row, (email, rep) in enumerate(zip(plan.emails, plan.reps, strict=True)):
        if row in blocked:
            continue
        have = snap.skills(email, rep)
        for skill in required:
            if wanted[skill] and not wanted[skill] & have.get(skill, frozenset()):
                blocked[row] = f"lacks skill {skill}: {', '.join(sorted(wanted[skill]))}"
                break
    if len(blocked) == len(entry[9]):
        found = entry
    else:
        variant = plan.variant(snap, blocked)
        found = (*variant, {}, _rotation(variant[1], variant[2]), {}, blocked, {})
    if len(memo) >= PLAN_MEMO_LIMIT:
        memo.clear()
    memo[key] = found
    return found


def _tie_group(primary: Sequence[int], race: _Rotation) -> _Group:
    """The positions with the smallest primary and their own race (member order kept, so ties break alike)."""
    low = min(primary)
    positions = tuple(j for j, value in enumerate(primary) if value == low)
    return low, positions, _rotation([race.emails[j] for j in positions], [race.strides[j] for j in positions])


def _needs_key(lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting) -> tuple[Any, ...]:
    """Exactly what _lead_skills reads: the language only as text, the products as given."""
    language: Any = None
    name = compiled.language_field
    if name:
        language = lead.extra.get(name[len("extra."):]) if name.startswith("extra.") else getattr(lead, name, None)
    return (lead.industry, tuple(lead.product_interest), str(language) if language else None, fields.get("region"), fields.get("territory"), lead.country)


def _unmatched(plan: _Plan, snap: AvailabilitySnapshot, lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting, key: tuple[Any, ...]) -> list[int]:
    """Per plan row, minus the number of the lead's skill needs the rep meets (leads with the same needs, `key`, share it)."""
    unmatched = plan.unmatched.get(key)
    if unmatched is not None:
        return unmatched
    unmatched = [0] * len(plan.emails)
    index = plan.skills_index(snap)
    for skill, values in _lead_skills(lead, fields.get("region"), fields.get("territory"), compiled).items():
        by_value = index.get(skill)
        if values and by_value:
            hit: set[int] = set()
            for value in values:
                hit.update(by_value.get(value, ()))
            for row in hit:
                unmatched[row] -= 1
    if len(plan.unmatched) >= PLAN_MEMO_LIMIT:
        plan.unmatched.clear()
    plan.unmatched[key] = unmatched
    return unmatched


def _decision(lead: Lead, kind: Any, owner_id: str | None, rep: str | None, reasons: list[str], **kw: Any) -> RoutingDecision:
    if not kw:  # the kept / matched owners: no rule, pool or candidates
        return _routing_decision(lead.key, owner_id, rep, kind, None, None, None, None, tuple(reasons), (), None, None, None)
    return RoutingDecision(lead_key=lead.key, owner_id=owner_id, rep=rep, kind=kind, reasons=tuple(reasons), **kw)


def _matched(
    lead: Lead, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState, compiled: CompiledRouting,
    now: datetime, reasons: list[str],
) -> tuple[RoutingDecision, StateChange] | None:
    """Pre-routing: keep the owner, then account match, then duplicate-contact match."""
    crm = lead.crm
    if compiled.keep_existing_owner and lead.owner_id and lead.owner_id not in compiled.unassigned_owner_ids:
        why, rep = _owner_problem(lead.owner_id, crm, ctx, snap, state, compiled, now, check_availability=False)
        if why is None:
            # The owner already counts in the load counters (or is not a configured rep): no change.
            return _decision(lead, "kept", lead.owner_id, _email(rep.email) if rep else None, [*reasons, f"kept existing owner {lead.owner_id}"]), NO_CHANGE
        reasons.append(f"existing owner not kept: {why}")
    tries: list[tuple[Any, str, str | None]] = []
    if compiled.account_matching and ctx.account is not None:
        if ctx.is_free_mail:
            reasons.append(f"no account matching: {lead.email_domain} is a free-mail domain")
        else:
            acc = ctx.account
            label = f"account {acc.name or acc.id} ({acc.domain})"
            own = ("account_match", f"{label} owner", acc.owner_id)
            parent = ("account_match", f"parent account {acc.parent_id} owner of {label}", acc.parent_owner_id)
            tries += [parent, own] if compiled.prefer_parent_owner else [own, parent]
    if compiled.contact_matching and ctx.contact_owner_id:
        tries.append(("contact_match", "existing contact with the same email: owner", ctx.contact_owner_id))
    for kind, label, owner_id in tries:
        if not owner_id:
            continue
        why, rep = _owner_problem(owner_id, crm, ctx, snap, state, compiled, now, check_availability=compiled.matched_owner_availability)
        if why is not None:
            reasons.append(f"{label} {owner_id} skipped: {why}")
            continue
        email = _email(rep.email) if rep else None
        change = _state_change(snap.load_ops(email)) if email else NO_CHANGE  # snap.day is day_scope(compiled, now)
        return _decision(lead, kind, owner_id, email, [*reasons, f"{label} {owner_id}"]), change
    return None


def route_lead(
    lead: Lead, score: ScoreResult, ctx: RoutingContext, state: RoutingState, compiled: CompiledRouting, now: datetime,
) -> tuple[RoutingDecision, StateChange]:
    """Who should own `lead` and why, plus the counter changes that decision makes (pure)."""
    if not compiled.is_configured:
        return _decision(lead, "none", None, None, ["routing is not configured (no reps, no fallback queue)"]), NO_CHANGE
    snap = ctx.availability
    if snap is None or snap._compiled is not compiled or snap.reps is not ctx.reps or snap.now != now:
        snap = _snapshot(ctx, compiled, now)
    reasons: list[str] = []
    # Most leads have no owner, account or duplicate contact: nothing to match.
    if lead.owner_id or ctx.account is not None or ctx.contact_owner_id:
        matched = _matched(lead, ctx, snap, state, compiled, now, reasons)
        if matched is not None:
            return matched
    if compiled.matcher is None:
        fields = condition_context(lead, score, ctx, compiled)
        rule = _match_rule(lead, fields, compiled)
    else:
        place = compiled.place_memo.get((lead.country, lead.state, lead.postal_code))
        region, territory = place if place is not None else place_of(lead, compiled)
        index = compiled.matcher(lead, score, ctx.is_free_mail, ctx.is_competitor, region, territory)
        rule = compiled.rules[index] if index >= 0 else None
        fields = {"region": region, "territory": territory}  # all that picking a rep reads of the context
        routed = _route_planned(lead, rule, fields, ctx, snap, state, compiled, reasons)
        if routed is not None:
            return routed
    return _route_in_pools(lead, rule, fields, ctx, snap, state, compiled, now, reasons, kind="rule")


def _route_planned(
    lead: Lead, rule: CompiledRule | None, fields: Mapping[str, Any], ctx: RoutingContext, snap: AvailabilitySnapshot,
    state: RoutingState, compiled: CompiledRouting, reasons: list[str],
) -> tuple[RoutingDecision, StateChange] | None:
    """`_route_in_pools` for the usual lead, in fewer steps: the first pool, on the plan, has someone.

    None (and `reasons` untouched) when the lead needs the general path: conversion weights,
    no pool, or nobody available there (the fallback pool, queue or wait).
    """
    if rule is not None:
        pool_name, kind, rule_name = rule.pool, "rule", rule.name
    else:
        if compiled.fallback_pool is None:
            return None
        pool_name, kind, rule_name = compiled.fallback_pool, "fallback", None
    pool = compiled.pools[pool_name]
    if pool.weight_by_conversion and ctx.conversion_rates:
        return None
    strategy, arm, pick_reasons = _strategy(pool, rule, lead)
    plan = snap.plan(pool, rule, lead.crm, ctx.known_owner_ids)
    live = state._live
    if live is None or live.tip is not state:
        live = _live(state)
    email, rep, candidates, ops = _pick_planned(
        snap, plan, pool, strategy, pick_reasons, lead, fields, compiled, live, rule.require_skills if rule is not None else (),
    )
    if rep is None or email is None:
        return None
    heads = plan.heads.get((rule_name, strategy))
    if heads is None:
        heads = plan.heads[(rule_name, strategy)] = (
            f"rule {rule_name!r} matched: {rule.description}" if rule is not None else "no rule matched", f"pool {pool_name!r} ({strategy})",
        )
    return _routing_decision(
        lead.key, rep.owner_ids[lead.crm], email, kind, rule_name, pool_name, strategy, arm, (*reasons, *heads, *pick_reasons), candidates,
        None, None, None,
    ), _state_change(ops)


def _route_in_pools(
    lead: Lead, rule: CompiledRule | None, fields: Mapping[str, Any], ctx: RoutingContext, snap: AvailabilitySnapshot,
    state: RoutingState, compiled: CompiledRouting, now: datetime, reasons: list[str], *, kind: str,
    exclude: frozenset[str] = frozenset(),
) -> tuple[RoutingDecision, StateChange]:
    tried: list[_Pick] = []
    pools: list[tuple[str, CompiledRule | None, str]] = []
    if rule is not None:
        reasons.append(f"rule {rule.name!r} matched: {rule.description}")
        pools.append((rule.pool, rule, kind))
        if compiled.when_unavailable == "fallback" and compiled.fallback_pool and compiled.fallback_pool != rule.pool:
            pools.append((compiled.fallback_pool, None, "fallback" if kind == "rule" else kind))
    else:
        reasons.append("no rule matched")
        if compiled.fallback_pool:
            pools.append((compiled.fallback_pool, None, "fallback" if kind == "rule" else kind))
    for pool_name, pool_rule, pool_kind in pools:
        pool = compiled.pools[pool_name]
        pick = _pick(pool, pool_rule, lead, fields, ctx, snap, state, compiled, now, exclude)
        if pick.rep is not None and pick.email is not None:
            reasons.append(f"pool {pool_name!r} ({pick.strategy})")
            return _routing_decision(
                lead.key, pick.rep.owner_ids[lead.crm], pick.email, pool_kind, rule.name if rule is not None else None,
                pool_name, pick.strategy, pick.arm, (*reasons, *pick.reasons), pick.candidates, None, None, None,
            ), _state_change(pick.ops)
        reasons.append(f"pool {pool_name!r}: nobody available")
        tried.append(pick)
    last = tried[-1] if tried else None
    candidates = tuple(c for p in tried for c in p.candidates)
    extra = {
        "rule": rule.name if rule is not None else None,
        "pool": pools[0][0] if pools else None,
        "strategy": tried[0].strategy if tried else None,
        "arm": tried[0].arm if tried else None,
        "candidates": candidates,
    }
    nobody_available = last is not None
    queue = compiled.fallback_queue.get(lead.crm)
    if nobody_available and (compiled.when_unavailable == "wait" or not queue):
        cause, at, who = wait_until(candidates, lead.crm, ctx, snap, state, exclude)
        head = "waiting: " if compiled.when_unavailable == "wait" else f"waiting: no fallback queue for {lead.crm}; "
        line = head + wait_sentence([name for name, _, _ in pools], cause, at, who, snap)
        return _decision(
            lead, "wait", None, None, [*reasons, line], **extra, wait_cause=cause, next_available_at=at, next_available_rep=who,
        ), NO_CHANGE
    if queue:
        return _decision(lead, "fallback", queue, None, [*reasons, f"fallback queue {queue} in {lead.crm}"], **extra), NO_CHANGE
    return _decision(lead, "none", None, None, [*reasons, "no fallback pool or queue: left unassigned"], **extra), NO_CHANGE


def wait_until(
    candidates: Sequence[Candidate], crm: str, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState,
    exclude: Collection[str] = frozenset(),
) -> tuple[WaitCause, datetime | None, str | None]:
    """Why nobody among `candidates` can take a lead of `crm` at `snap.now`, and who is free first, when.

    The cause is the most common one among the candidates (ties: the order of WAIT_CAUSES). The
    checks follow `_pick`'s order: inactive, schedule (out of office, holiday, working hours), owner
    id in the CRM, capacity, then skills and tier; a rep who had the lead already (`exclude`, SLA
    reassignment) is never its next owner, so it counts as not eligible. A schedule frees a
    rep at their next working instant; a leads-per-day cap at the next routing day (and their
    schedule then); an open-leads cap has no known time, nor has a rep who lacks a skill.
    """
    counters = _read(state)
    empty: Mapping[str, int] = {}
    open_counts = counters.get(OPEN_SCOPE, empty)
    day_counts = counters.get(snap.day, empty)
    causes: dict[WaitCause, int] = {}
    best: tuple[datetime, str] | None = None
    for cand in candidates:
        if cand.eligible:
            continue
        email = cand.rep
        rep = snap.rep(email)
        at: datetime | None = None
        cause: WaitCause
        if rep is None or not rep.is_active:
            cause = "inactive"
        elif exclude and (email in exclude or rep.owner_ids.get(crm) in exclude):
            cause = "no_one_eligible"  # had the lead already: never its next owner
        else:
            owner_id = rep.owner_ids.get(crm)
            open_full = rep.max_open_leads is not None and open_counts.get(email, 0) >= rep.max_open_leads
            day_full = rep.max_leads_per_day is not None and day_counts.get(email, 0) >= rep.max_leads_per_day
            away, free = snap.free_at(email, rep)
            if away is not None:
                cause = away
                if open_full:
                    free = None
                elif day_full and free is not None and free < next_day_start(snap._compiled, snap.now):
                    free = snap.free_at(email, rep, next_day=True)[1]
                at = free
            elif owner_id is None or (ctx.known_owner_ids is not None and owner_id not in ctx.known_owner_ids):
                cause = "inactive"
            elif open_full:
                cause = "at_capacity"
            elif day_full:
                cause, at = "at_capacity", snap.free_at(email, rep, next_day=True)[1]
            else:
                cause = "no_one_eligible"
        causes[cause] = causes.get(cause, 0) + 1
        if at is not None and (best is None or at < best[0]):
            best = (at, email)
    order = list(WAIT_CAUSES)
    dominant = min(causes, key=lambda c: (-causes[c], order.index(c))) if causes else "no_one_eligible"
    return dominant, best[0] if best else None, best[1] if best else None


def wait_sentence(pools: Sequence[str], cause: WaitCause, at: datetime | None, who: str | None, snap: AvailabilitySnapshot) -> str:
    """Why and until when, as people read it: `nobody in pool 'smb' is available (outside working hours); next
    available: ben@x at Mon 09:00 America/New_York (2026-12-07T14:00Z)` (the rep's local time, then UTC)."""
    names = " or ".join(repr(p) for p in pools)
    text = f"nobody in pool{'s' if len(pools) > 1 else ''} {names} is available ({WAIT_CAUSES[cause]})"
    if at is None or who is None:
        if cause == "at_capacity":
            return text + "; next available: when a rep's open leads close (max_open_leads)"
        return text + "; next available: unknown"
    rep = snap.rep(who)
    zone = snap.schedule(who, rep).timezone if rep is not None else load_zone("UTC")
    return text + f"; next available: {who} at {at.astimezone(zone):%a %H:%M} {zone.key} ({at.astimezone(UTC):%Y-%m-%dT%H:%MZ})"


SlaStatus = Literal["off", "not_routed", "pending", "actioned", "owner_changed", "exhausted", "expired"]


@dataclass(frozen=True, slots=True)
class SlaVerdict:
    """Where a routed lead stands against the SLA; `expired` means reassign now."""

    status: SlaStatus
    reason: str

    @property
    def expired(self) -> bool:
        return self.status == "expired"

    @property
    def stops_clock(self) -> bool:
        """The SLA no longer applies (actioned, a person changed the owner, limit reached, off)."""
        return self.status in ("off", "actioned", "owner_changed", "exhausted")

    def __bool__(self) -> bool:
        return self.expired


def sla_deadline(decision: RoutingDecision, compiled: CompiledRouting, now: datetime) -> datetime | None:
    """When the SLA of a fresh pool assignment runs out (None: no SLA, or not a pool assignment)."""
    if compiled.sla_minutes is None or decision.rep is None or decision.pool is None:
        return None
    if decision.kind not in ("rule", "fallback", "reassigned"):
        return None
    return now + timedelta(minutes=compiled.sla_minutes)


def sla_check(lead: Lead, view: LeadRoutingView, compiled: CompiledRouting, now: datetime) -> SlaVerdict:
    """Has the routed lead gone unactioned past the SLA? Any status change or activity stops the clock."""
    if compiled.sla_minutes is None:
        return SlaVerdict("off", "no SLA configured (routing.sla.minutes)")
    if view.routed_at is None:
        return SlaVerdict("not_routed", "the lead was not routed by the connector")
    if lead.owner_id != view.routed_owner_id:
        return SlaVerdict("owner_changed", f"owner changed to {lead.owner_id} by a person; the SLA stops")
    status = lead.lead_status or lead.stage
    if view.initial_status is not None and status != view.initial_status:
        return SlaVerdict("actioned", f"status moved from {view.initial_status!r} to {status!r}")
    if lead.last_activity_at is not None and lead.last_activity_at > view.routed_at:
        return SlaVerdict("actioned", f"activity at {lead.last_activity_at.isoformat()} after routing")
    if view.reassignments >= compiled.max_reassignments:
        return SlaVerdict("exhausted", f"already reassigned {view.reassignments} time(s), the maximum (routing.sla.max_reassignments)")
    due = view.routed_at + timedelta(minutes=compiled.sla_minutes)
    if now < due:
        return SlaVerdict("pending", f"SLA runs until {due.isoformat()}")
    who = view.routed_rep or view.routed_owner_id
    return SlaVerdict("expired", f"not actioned by {who} within {compiled.sla_minutes} min (status still {status!r}, no activity since routing)")


def reassign_lead(
    lead: Lead, score: ScoreResult, view: LeadRoutingView, ctx: RoutingContext, state: RoutingState,
    compiled: CompiledRouting, now: datetime, reason: str,
) -> tuple[RoutingDecision, StateChange]:
    """The next eligible rep of the lead's pool (the rules decide the pool again), never the current owner.

    Kind "reassigned" with `reason` and the count; kind "wait" (owner None: keep the current owner)
    when nobody else is available. The previous rep's open-lead count goes down by one.
    """
    number = view.reassignments + 1
    reasons = [f"reassigned: {reason}", f"reassignment {number} of at most {compiled.max_reassignments}"]
    snap = _snapshot(ctx, compiled, now)
    fields = condition_context(lead, score, ctx, compiled)
    rule = _match_rule(lead, fields, compiled)
    exclude = frozenset(x for x in (view.routed_rep, view.routed_owner_id) if x)
    decision, change = _route_in_pools(lead, rule, fields, ctx, snap, state, compiled, now, reasons, kind="reassigned", exclude=exclude)
    if decision.rep is None or decision.owner_id is None:
        return RoutingDecision(
            lead_key=lead.key, owner_id=None, kind="wait", rule=decision.rule, pool=decision.pool, strategy=decision.strategy,
            reasons=(*decision.reasons, "no other eligible rep: the current owner keeps the lead for now"), candidates=decision.candidates,
            wait_cause=decision.wait_cause, next_available_at=decision.next_available_at, next_available_rep=decision.next_available_rep,
        ), NO_CHANGE
    if view.routed_rep:
        change = change + release_change(view.routed_rep)
    return decision, change
