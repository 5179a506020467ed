"""Checks of `[scoring]` beyond its shape: grade bands, rule conditions, low-intent caps, decay steps, stage maps."""

from __future__ import annotations

from connector.core.errors import ConfigProblem
from connector.core.spelling import unknown_name
from connector.core.models import CRMS
from connector.engine.conditions import Condition, check_condition, condition_leaves
from connector.engine.scoring.config import ModelConfig, Rule, ScoringConfig

# Outputs of scoring: a scoring condition cannot read them (they do not exist yet while scoring).
OUTPUT_FIELDS = frozenset({"score", "grade", "is_mql"})
EVENT_FIELDS_HINT = "name, kind, properties.NAME"


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
    for name, leaf in condition_leaves(cond, path):
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
        problems.append(ConfigProblem(f"{path}.write_model", unknown_name("model", cfg.write_model, ["best", *cfg.models])))
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
