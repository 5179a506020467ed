"""Compile a checked `[scoring]` once: rule records by form, the event-rule index, lookups and the generated scorer."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from connector.core.models import Lead
from connector.engine.conditions import compile_condition
from connector.engine.freemail import free_mail_domains
from connector.engine.scoring.compiled import (
    PREBUILT_COUNTS,
    CompiledModel,
    CompiledScoring,
    EngagementRule,
    EventRule,
    FitRule,
)
from connector.engine.scoring.config import ModelConfig, Rule, ScoringConfig
from connector.engine.scoring.decay import DAY_SECONDS, ladder
from connector.engine.scoring.explain import count_line, fit_line, fresh_parts
from connector.engine.scoring.generate import generate_scorer
from connector.engine.scoring.outcome import ScoreOutcome


def _event_getter(name: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    if name == "name":
        return lambda ev, ctx: ev.name
    if name == "kind":
        return lambda ev, ctx: ev.kind
    key = name[len("properties."):]
    return lambda ev, ctx: ev.properties.get(key)


def _event_rule(index: int, model: str, rule: Rule) -> EventRule:
    keep = None
    if rule.window_days is not None and rule.half_life_days is None and rule.cap is not None and rule.points:
        # only the latest ceil(cap/points) events in the window can matter once the cap is reached
        keep = max(1, math.ceil(rule.cap / abs(rule.points)))
    names = rule.event_names
    er = EventRule(
        index=index, model=model, name=rule.name, points=rule.points, cap=rule.cap,
        window_seconds=rule.window_days * DAY_SECONDS if rule.window_days else None,
        half_life_seconds=rule.half_life_days * DAY_SECONDS if rule.half_life_days else None,
        kind=rule.kind, where=compile_condition(rule.where, _event_getter) if rule.where else None,
        when=rule.when, label="|".join(names) if names else (rule.kind or "any"), keep=keep,
    )
    if rule.half_life_days is None:
        return replace(er, by_count=tuple(count_line(er, n) for n in range(PREBUILT_COUNTS + 1)))
    return replace(er, fresh_by_count=tuple(fresh_parts(er, n) for n in range(PREBUILT_COUNTS + 1)))


def _compile_model(name: str, mcfg: ModelConfig, event_rules: list[EventRule]) -> CompiledModel:
    """One model's records; its behaviour rules are appended to `event_rules`, the index across models."""
    fits: list[FitRule] = []
    behaviours: list[EventRule] = []
    engagements: list[EngagementRule] = []
    for rule in mcfg.rules:
        if rule.form == "fit":
            fits.append(FitRule(rule.when, fit_line(name, rule.name, rule.points, rule.when)))
        elif rule.form == "engagement":
            engagements.append(EngagementRule(name, rule.name, rule.engagement or "", rule.points, rule.cap, rule.when))
        else:
            er = _event_rule(len(event_rules), name, rule)
            event_rules.append(er)
            behaviours.append(er)
    return CompiledModel(
        name=name, audience=mcfg.audience, fits=tuple(fits), behaviours=tuple(behaviours), engagements=tuple(engagements),
        ladder=ladder((s.days, s.points) for s in mcfg.inactivity), floor=mcfg.floor, ceiling=mcfg.ceiling,
    )


def _not_generated(lead: Lead, rules: Any, latest_at: float | None, now: float) -> ScoreOutcome:
    raise AssertionError("compile_scoring sets the generated scorer before returning")


def compile_scoring(cfg: ScoringConfig, shipped_free_mail: Iterable[str] = ()) -> CompiledScoring:
    """Compile a checked config once; score_lead then does no parsing. Call check_scoring first.

    `shipped_free_mail`: the maintained free-mail / disposable domain lists, loaded outside the engine
    (connector.canonical.domains); the config's free_mail_domains are added to them."""
    event_rules: list[EventRule] = []
    models = tuple(_compile_model(name, mcfg, event_rules) for name, mcfg in cfg.models.items())
    by_event: dict[str, list[EventRule]] = {}
    any_event: list[EventRule] = []
    for er, rule in zip(event_rules, (r for m in cfg.models.values() for r in m.rules if r.form == "behaviour"), strict=True):
        names = rule.event_names
        if names is None:
            any_event.append(er)
        else:
            for n in dict.fromkeys(n.strip().lower() for n in names):
                by_event.setdefault(n, []).append(er)
    free = free_mail_domains(cfg.free_mail_domains, shipped_free_mail, use_shipped=cfg.use_shipped_free_mail)
    compiled = CompiledScoring(
        config=cfg,
        signature=hashlib.sha256(cfg.model_dump_json(by_alias=True).encode()).hexdigest()[:16],
        models=models,
        event_rules=tuple(event_rules),
        rules_by_event={k: tuple(v) for k, v in by_event.items()},
        rules_any_event=tuple(any_event),
        free_mail=free,
        competitors=tuple(d.strip().lower() for d in cfg.competitor_domains),
        region_of={c.strip().upper(): r for r, cs in reversed(cfg.regions.items()) for c in cs},
        stages=dict(cfg.stages),
        scorer=_not_generated,
    )
    return replace(compiled, scorer=generate_scorer(compiled))
