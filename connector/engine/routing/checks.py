"""Checks of the `[routing]` config: every problem with its key path, before anything compiles it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from connector.core.errors import ConfigProblem
from connector.core.spelling import closest, unknown_name
from connector.engine.conditions import Condition, check_condition, field_kind
from connector.engine.routing.availability import WEEKDAYS, build_week, load_holidays, load_zone
from connector.engine.routing.config import (
    ROUTING_FIELD_KINDS,
    SKILLS,
    STRATEGIES,
    RoutingConfig,
    RuleConfig,
)
from connector.engine.routing.config import normalize_code as _up
from connector.engine.routing.config import normalize_email as _email
from connector.engine.routing.config import normalize_postal as _postal
from connector.engine.scoring import NO_MODEL, ScoringConfig


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
    for i, rule in enumerate(cfg.rules):
        rp = f"{path}.rules[{i}]"
        if rule.name in names:
            problems.append(ConfigProblem(f"{rp}.name", f"duplicate rule name {rule.name!r} (also {path}.rules[{names[rule.name]}])"))
        names.setdefault(rule.name, i)
        if catch_all is not None:
            problems.append(ConfigProblem(rp, f"rule {rule.name!r} can never match: {path}.rules[{catch_all}] has no `when` and matches every lead"))
        if rule.when is None and catch_all is None:
            catch_all = i
        problems += _check_rule_target(cfg, rule, rp)
        if rule.when is not None:
            problems += _check_rule_when(cfg, scoring, rule.when, f"{rp}.when", path)
    return problems


def _check_rule_target(cfg: RoutingConfig, rule: RuleConfig, rp: str) -> list[ConfigProblem]:
    """The rule's pool, strategy, required skills and tier."""
    problems: list[ConfigProblem] = []
    if rule.pool not in cfg.pools:
        problems.append(ConfigProblem(f"{rp}.pool", unknown_name("pool", rule.pool, cfg.pools)))
    if rule.strategy is not None and rule.strategy not in STRATEGIES:
        problems.append(ConfigProblem(f"{rp}.strategy", unknown_name("strategy", rule.strategy, STRATEGIES)))
    for j, skill in enumerate(rule.require_skills):
        if skill not in SKILLS:
            problems.append(ConfigProblem(f"{rp}.require_skills[{j}]", unknown_name("skill", skill, SKILLS)))
    if "languages" in rule.require_skills and not cfg.language_field:
        problems.append(ConfigProblem(f"{rp}.require_skills", "requiring languages needs routing.language_field (the lead field holding the language)"))
    if rule.tier is not None and rule.pool in cfg.pools:
        members = {_email(e) for e in cfg.pools[rule.pool].reps}
        tiers = {r.tier for r in cfg.reps if _email(r.email) in members}
        if rule.tier not in tiers:
            problems.append(ConfigProblem(f"{rp}.tier", f"no rep of tier {rule.tier!r} in pool {rule.pool!r} (tiers there: {', '.join(sorted(tiers)) or 'none'})"))
    return problems


def _check_rule_when(cfg: RoutingConfig, scoring: ScoringConfig, when: Condition, wp: str, path: str) -> list[ConfigProblem]:
    """The rule's condition, and the regions, territories, grades and models it names."""
    grades = {g.name.lower() for g in scoring.grades}
    models = {m.lower() for m in scoring.models} | {NO_MODEL}
    problems = check_condition(when, wp, ROUTING_FIELD_KINDS)
    for value, vp in _condition_values(when, wp, "region"):
        if str(value) not in cfg.regions:
            problems.append(ConfigProblem(vp, unknown_name("region", str(value), cfg.regions, otherwise=f"define it under {path}.regions")))
    for value, vp in _condition_values(when, wp, "territory"):
        if str(value) not in cfg.territories:
            problems.append(ConfigProblem(vp, unknown_name("territory", str(value), cfg.territories, otherwise=f"define it under {path}.territories")))
    for value, vp in _condition_values(when, wp, "grade"):
        if str(value).lower() not in grades:
            problems.append(ConfigProblem(vp, unknown_name("grade", str(value), [g.name for g in scoring.grades])))
    for value, vp in _condition_values(when, wp, "model"):
        if str(value).lower() not in models:
            problems.append(ConfigProblem(vp, unknown_name("model", str(value), scoring.models)))
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
            problems.append(ConfigProblem(f"{ep}.rule", unknown_name("rule", exp.rule, rules)))
        elif exp.enabled:
            if exp.rule in by_rule:
                problems.append(ConfigProblem(f"{ep}.rule", f"rule {exp.rule!r} already has an experiment ({path}.experiments[{by_rule[exp.rule]}])"))
            by_rule.setdefault(exp.rule, i)
        for key in ("control", "treatment"):
            value = getattr(exp, key)
            if value is not None and value not in STRATEGIES:
                problems.append(ConfigProblem(f"{ep}.{key}", unknown_name("strategy", value, STRATEGIES)))
        if exp.rule in rules:
            rule = rules[exp.rule]
            control = exp.control or rule.strategy or (cfg.pools[rule.pool].strategy if rule.pool in cfg.pools else None)
            if control == exp.treatment:
                problems.append(ConfigProblem(f"{ep}.treatment", f"treatment {exp.treatment!r} is the same as the control strategy; nothing to compare"))
    return problems


def _check_pools(cfg: RoutingConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    known = {_email(r.email) for r in cfg.reps}
    for name, pool in cfg.pools.items():
        pp = f"{path}.pools.{name}"
        if not pool.reps:
            problems.append(ConfigProblem(f"{pp}.reps", f"pool {name!r} has no reps"))
        if pool.strategy not in STRATEGIES:
            problems.append(ConfigProblem(f"{pp}.strategy", unknown_name("strategy", pool.strategy, STRATEGIES)))
        seen: set[str] = set()
        for i, email in enumerate(pool.reps):
            if _email(email) not in known:
                near = closest(email, [r.email for r in cfg.reps])
                fix = f"did you mean {near}?" if near else f"add it to {path}.reps"
                problems.append(ConfigProblem(f"{pp}.reps[{i}]", f"{email} is not a rep; {fix}"))
            if _email(email) in seen:
                problems.append(ConfigProblem(f"{pp}.reps[{i}]", f"{email} is listed twice in pool {name!r}"))
            seen.add(_email(email))
    return problems


def check_routing(cfg: RoutingConfig, scoring: ScoringConfig, path: str) -> list[ConfigProblem]:
    """Every problem in `[routing]`, each with its key path (e.g. routing.rules[3].pool); empty when fine."""
    problems = _check_reps(cfg, path)
    problems += _check_pools(cfg, path)
    problems += _check_places(cfg, path)
    problems += _check_rules(cfg, scoring, path)
    problems += _check_experiments(cfg, path)
    if cfg.fallback_pool is not None and cfg.fallback_pool not in cfg.pools:
        problems.append(ConfigProblem(f"{path}.fallback_pool", unknown_name("pool", cfg.fallback_pool, cfg.pools)))
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

