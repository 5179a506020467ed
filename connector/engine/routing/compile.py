"""Compiling a checked `[routing]` config: schedules, pools, rules with their generated matcher, place lookups, day scopes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from connector.core.keys import CONVERTED_SCOPE, OPEN_SCOPE, ROUTED_SCOPE, day_scope_of, pool_scope
from connector.core.models import Lead, ScoreResult
from connector.engine.conditions import condition_source, describe
from connector.engine.routing.availability import OutOfOffice, Schedule, build_week, load_holidays, load_zone
from connector.engine.routing.config import STRATEGIES, RepConfig, RoutingConfig, RuleConfig
from connector.engine.routing.config import normalize_code as _up
from connector.engine.routing.config import normalize_email as _email
from connector.engine.routing.config import normalize_postal as _postal

# Per-config memos (places, plans) start over past this many entries.
MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    name: str
    control: str
    treatment: str
    treatment_share: float


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    description: str
    pool: str
    strategy: str | None
    tier: str | None
    tier_strict: bool
    require_skills: tuple[str, ...]
    experiment: CompiledExperiment | None
    # The pools a lead of this rule may go to, in order: its own, then the fallback pool (when_unavailable = "fallback").
    pools_tried: tuple[str, ...] = ()
    matched_reason: str = ""  # the decision's reason line: "rule 'x' matched: <condition>"


@dataclass(frozen=True, slots=True)
class CompiledPool:
    name: str
    members: tuple[str, ...]  # rep emails, lower-case, in tie-break order
    strategy: str
    weight_by_conversion: bool
    scope: str  # the round-robin counter scope
    reason_lines: Mapping[str, str] = field(default_factory=dict)  # strategy -> "pool 'name' (strategy)", the decision's reason



@dataclass(frozen=True)
class CompiledRouting:
    """Everything `route_lead` needs, precomputed once per config (schedules, lookups, the rule matcher)."""

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
    day_zone: ZoneInfo
    language_field: str | None
    sla_minutes: int | None
    max_reassignments: int
    config: RoutingConfig
    # The rules' conditions as one generated function: index of the first matching rule, -1 for none.
    matcher: Matcher
    conversion_min_leads: int = 20
    # The pools a lead no rule matched may go to: the fallback pool, if any.
    fallback_pools: tuple[str, ...] = ()
    # The last availability snapshot: the next one with the same reps and the same verdicts reuses
    # its pool tables instead of rebuilding them (a memo: it never changes a result).
    batch_memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # (country, state, postal code) -> (region, territory): leads repeat places (a memo of place_of).
    place_memo: dict[tuple[str | None, str | None, str | None], Place] = field(
        default_factory=dict, compare=False, repr=False,
    )

    @property
    def is_configured(self) -> bool:
        return bool(self.rep_emails) or bool(self.fallback_queue)

    @property
    def weights_by_conversion(self) -> bool:
        """Some pool scales its reps' weights by their conversion rates (the pipeline then reads them)."""
        return any(p.weight_by_conversion for p in self.pools.values())



class Place(NamedTuple):
    """Where a lead is, for rules and skills: its region and territory (None: none matched)."""

    region: str | None
    territory: str | None


# (lead, score, is_free_mail, is_competitor, region, territory) -> index of the first matching rule, or -1
Matcher = Callable[[Lead, ScoreResult, bool, bool, "str | None", "str | None"], int]
# Where a routing condition reads each context field (the rest are lead attributes), in the generated matcher.
_MATCHER_READS: dict[str, str] = {
    "score": "score.score", "grade": "score.grade", "model": "score.model", "bant": "score.bant", "is_mql": "score.is_mql",
    "region": "region", "territory": "territory", "is_free_mail": "is_free_mail", "is_competitor": "is_competitor",
}


def _generate_matcher(rules: Sequence[RuleConfig]) -> Matcher:
    """The rules' conditions for one config as one generated function (tests/engine/routing/oracle.py matches rule by rule).

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
        elif name.startswith("raw."):
            constants[f"_f{local}"] = name[len("raw."):]
            lines.append(f"    {local} = lead.raw.get(_f{local})")
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


class _Places(NamedTuple):
    region_by_country: dict[str, str]
    region_by_state: dict[tuple[str, str], str]
    territory_by_country: dict[str, str]
    territory_by_state: dict[tuple[str, str], str]
    postal_ranges: dict[str, tuple[tuple[str, str, str], ...]]  # country -> (low, high, territory)


def _compile_places(cfg: RoutingConfig) -> _Places:
    """Region and territory lookups: by (country, state), by country, and postal ranges per country."""
    places = _Places({}, {}, {}, {}, {})
    for name, region in cfg.regions.items():
        for country in region.countries:
            if region.states:
                for state in region.states:
                    places.region_by_state.setdefault((_up(country), _bare_state(country, state)), name)
            else:
                places.region_by_country.setdefault(_up(country), name)
    postal: dict[str, list[tuple[str, str, str]]] = {}
    for name, terr in cfg.territories.items():
        for country in terr.countries:
            c = _up(country)
            for lo, hi in terr.postal_ranges:
                postal.setdefault(c, []).append((_postal(lo), _postal(hi), name))
            for state in terr.states:
                places.territory_by_state.setdefault((c, _bare_state(country, state)), name)
            if not terr.states and not terr.postal_ranges:
                places.territory_by_country.setdefault(c, name)
    places.postal_ranges.update({c: tuple(sorted(v)) for c, v in postal.items()})
    return places


def _bare_state(country: str, state: str) -> str:
    """A configured state as leads hold it: ISO 3166-2 without the country prefix ("US-CA" and "CA" alike)."""
    code = _up(state)
    return code[3:] if code.startswith(_up(country) + "-") else code


def _compile_rules(cfg: RoutingConfig, pools: Mapping[str, CompiledPool]) -> tuple[CompiledRule, ...]:
    experiments = {e.rule: e for e in cfg.experiments if e.enabled}
    fallback = cfg.fallback_pool if cfg.when_unavailable == "fallback" else None
    rules = []
    for rule in cfg.rules:
        exp = experiments.get(rule.name)
        compiled_exp = None
        if exp is not None:
            control = exp.control or rule.strategy or pools[rule.pool].strategy
            compiled_exp = CompiledExperiment(exp.name, control, exp.treatment, exp.treatment_share)
        rules.append(CompiledRule(
            name=rule.name, description=describe(rule.when), pool=rule.pool, strategy=rule.strategy, tier=rule.tier,
            tier_strict=rule.tier_strict, require_skills=tuple(rule.require_skills), experiment=compiled_exp,
            pools_tried=(rule.pool, fallback) if fallback and fallback != rule.pool else (rule.pool,),
            matched_reason=f"rule {rule.name!r} matched: {describe(rule.when)}",
        ))
    return tuple(rules)


def compile_routing(cfg: RoutingConfig) -> CompiledRouting:
    """Precompute schedules, per-pool structures, place lookups and the rule matcher (config already checked)."""
    pools = {
        name: CompiledPool(
            name, tuple(dict.fromkeys(_email(e) for e in p.reps)), p.strategy, p.weight_by_conversion, pool_scope(name),
            {strategy: f"pool {name!r} ({strategy})" for strategy in STRATEGIES},
        )
        for name, p in cfg.pools.items()
    }
    places = _compile_places(cfg)
    shared: dict[tuple[Any, ...], Schedule] = {}
    return CompiledRouting(
        rep_emails=tuple(_email(r.email) for r in cfg.reps),
        schedules={_email(r.email): _schedule(r, shared) for r in cfg.reps},
        pools=pools,
        rules=_compile_rules(cfg, pools),
        fallback_pool=cfg.fallback_pool,
        fallback_queue={str(k): v for k, v in cfg.fallback_queue.items()},
        when_unavailable=cfg.when_unavailable,
        keep_existing_owner=cfg.keep_existing_owner,
        unassigned_owner_ids=frozenset(cfg.unassigned_owner_ids) | frozenset(cfg.fallback_queue.values()),
        account_matching=cfg.account_matching,
        prefer_parent_owner=cfg.account_owner == "parent",
        contact_matching=cfg.contact_matching,
        matched_owner_availability=cfg.matched_owner_availability,
        **places._asdict(),
        day_zone=load_zone(cfg.day_timezone),
        language_field=cfg.language_field,
        sla_minutes=cfg.sla.minutes,
        max_reassignments=cfg.sla.max_reassignments,
        config=cfg,
        matcher=_generate_matcher(cfg.rules),
        conversion_min_leads=cfg.conversion_min_leads,
        fallback_pools=(cfg.fallback_pool,) if cfg.fallback_pool else (),
    )


def place_of(lead: Lead, compiled: CompiledRouting) -> Place:
    """(region, territory) of a lead: the most specific match wins (postal range > state > country)."""
    key = (lead.country, lead.state, lead.postal_code)
    memo = compiled.place_memo
    found = memo.get(key)
    if found is None:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        found = memo[key] = _place(*key, compiled)
    return found


def _place(country_name: str | None, state_name: str | None, postal_code: str | None, compiled: CompiledRouting) -> Place:
    if not country_name:
        return Place(None, None)
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
    return Place(region, territory)


def day_scope(compiled: CompiledRouting, now: datetime) -> str:
    """The scope of today's per-rep lead counts (the day in routing.day_timezone)."""
    return day_scope_of(now.astimezone(compiled.day_zone).date())


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
