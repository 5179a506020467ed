"""The generated scorer: score_lead's work for one config as Python source, one function over every model.

Each model appends its explanation lines (explain.py) and its score is the sum of their points, so an
explanation never contradicts its score. The lines are built while scoring, not worked out again when
read: every lead a run routes logs them (the decision log), and a second pass over the rules cost as
much as scoring. Most lines are constants built with the config (fit rules, counts, inactivity steps),
so appending one costs what appending its points would.

Conditions are inlined (`condition_source`) and constants folded in.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any

from connector.core.models import CRMS, ScoreResult
from connector.engine.conditions import Condition, condition_source
from connector.engine.scoring.compiled import CompiledModel, CompiledScoring, EventRule, Scorer
from connector.engine.scoring.config import NO_MODEL, ScoringConfig
from connector.engine.scoring.decay import cap_source, fade_source, idle_seconds
from connector.engine.scoring.explain import clamp_line, count_line, engagement_line, event_line, inactivity_line
from connector.engine.scoring.frozen import frozen_builder
from connector.engine.scoring.outcome import ScoreOutcome, StageTarget, bant_view, stage_target

# Fields worked out in the head of a generated function rather than read from the lead.
_CONTEXT = frozenset({"region", "is_free_mail", "is_competitor", "bant", "model", "score", "grade", "is_mql"})
_score_result = frozen_builder(ScoreResult)
_score_outcome = frozen_builder(ScoreOutcome)


@dataclass(slots=True)
class _Source:
    """Lines of the generated function, its constants and the locals each condition field is read into."""

    constants: dict[str, Any]
    shortest_step: float | None  # the shortest inactivity step of any model
    lines: list[str] = field(default_factory=list)
    reads: dict[str, str] = field(default_factory=dict)  # field -> local name

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

    def condition(self, cond: Condition | None) -> str:
        return condition_source(cond, self.value_of, self.constants)

    def add(self, depth: int, line: str) -> None:
        """Append one contribution line."""
        self.emit(depth, f"append({line})")


def _capped_lines(src: _Source, depth: int, expr: str, cap: float | None) -> None:
    """`value = capped(expr, cap)`, inline."""
    src.emit(depth, f"value = {expr}")
    if cap is not None:
        src.emit(depth, cap_source("value", src.const(cap), src.const(-cap)))


def _behaviour_lines(src: _Source, depth: int, er: EventRule) -> None:
    """One behaviour rule over its aggregate `a`: count the events (in its window), weigh them, cap the points."""
    e, emit = src.const(er), src.emit
    h = src.const(er.half_life_seconds) if er.half_life_seconds is not None else None
    if er.window_seconds is not None:
        emit(depth, "times = a.times")
        emit(depth, f"times = times[_bisect_right(times, now - {src.const(er.window_seconds)}):]")
        emit(depth, "n = len(times)")
        emit(depth, "if n:")
        depth += 1
        weight = f"sum({fade_source('max(0.0, now - t)', h)} for t in times)" if h else "float(n)"
    else:
        emit(depth, "n = a.count")
        if h:
            emit(depth, "last = a.last_at")
        # max(0.0, now - last), inline
        weight = f"a.decayed * {fade_source('(now - last if now > last else 0.0)', h)} if last is not None else float(n)" if h else "float(n)"
    if er.by_count:
        lines, k = src.const(er.by_count), len(er.by_count)
        src.add(depth, f"{lines}[n] if n < {k} else _count_line({e}, n)")
        return
    emit(depth, f"w = {weight}")
    _capped_lines(src, depth, f"{src.const(er.points)} * w", er.cap)
    emit(depth, "p = round(value, 2)")
    src.add(depth, f"_event_line({e}, n, p, value)")


def _rule_lines(src: _Source, depth: int, m: CompiledModel) -> None:
    """Every rule of a model, in the order its lines are listed: fit, behaviour, engagement, inactivity."""
    emit, const = src.emit, src.const
    for fit in m.fits:
        emit(depth, f"if {src.condition(fit.when)}:")
        src.add(depth + 1, const(fit.line))
    for er in m.behaviours:
        emit(depth, f"a = rules[{er.index}]")
        emit(depth, f"if a.count and {src.condition(er.when)}:" if er.when is not None else "if a.count:")
        _behaviour_lines(src, depth + 1, er)
    if m.engagements:
        emit(depth, "eng = lead.engagement")
    for eg in m.engagements:
        emit(depth, f"v = eng.get({const(eg.counter)})")
        emit(depth, "n = (float(v) if _isfinite(v) else None) if type(v) is float or type(v) is int else _number(v)")
        emit(depth, f"if n and not n < 0 and {src.condition(eg.when)}:")
        _capped_lines(src, depth + 1, f"{const(eg.points)} * n", eg.cap)
        emit(depth + 1, "p = round(value, 2)")
        src.add(depth + 1, f"_engagement_line({const(eg)}, n, p)")
    if m.ladder:
        emit(depth, "if idle is None:")
        # Idle time is at most the time since the latest event: when that is shorter than every model's
        # shortest step, no step applies whatever the CRM's timestamps say, and those are not read.
        step = const(src.shortest_step)
        emit(depth + 1, f"idle = now - latest_at if latest_at is not None and now - latest_at < {step} else _idle_seconds(lead, latest_at, now)")
        for i, rung in enumerate(m.ladder):
            line = inactivity_line(m.name, rung)
            emit(depth, f"{'if' if i == 0 else 'elif'} idle >= {const(rung.seconds)}:")
            src.add(depth + 1, const(line))


def _total_lines(src: _Source, depth: int, m: CompiledModel) -> None:
    """The model's `score`: the sum of its lines' points, clamped to its floor or ceiling by one more line."""
    src.emit(depth, "subtotal = sum(map(_points, parts))")
    first = True
    for bound, sign, which in ((m.floor, "<", "floor"), (m.ceiling, ">", "ceiling")):
        if bound is None:
            continue
        b = src.const(bound)
        src.emit(depth, f"{'if' if first else 'elif'} subtotal {sign} {b}:")
        src.add(depth + 1, f"{src.const(clamp_line(m.name, which, bound))}(round({b} - subtotal, 2))")
        src.emit(depth + 1, "score = round(sum(map(_points, parts)), 2) + 0.0")
        first = False
    if first:
        src.emit(depth, "score = round(subtotal, 2) + 0.0")
    else:
        src.emit(depth, "else:")
        src.emit(depth + 1, "score = round(subtotal, 2) + 0.0")


def _result_lines(src: _Source, depth: int, cfg: ScoringConfig, model: str, lines: str) -> None:
    """`result` for `score`: the grade (from the score's band or the BANT view), MQL, and the CRM's stage."""
    emit, const = src.emit, src.const
    if cfg.grade_from == "bant":
        emit(depth, f"grade = {const(cfg.bant_grades)}[bant]")
    else:
        bands = [(b.name, b.min) for b in cfg.grades]
        for i, (grade, low) in enumerate(bands):
            if low is None:
                emit(depth, "else:" if i else "if True:")
                emit(depth + 1, f"grade = {const(grade)}")
                break
            emit(depth, f"{'if' if i == 0 else 'elif'} score >= {const(low)}:")
            emit(depth + 1, f"grade = {const(grade)}")
        else:
            emit(depth, "else:")
            emit(depth + 1, f"grade = {const(bands[-1][0])}")
    emit(depth, "is_mql = False" if cfg.mql_threshold is None else f"is_mql = score >= {const(cfg.mql_threshold)}")
    emit(depth, "target = _targets.get((crm, object_type, grade, is_mql))")
    emit(depth, "if target is None:")
    emit(depth + 1, "target = _target(grade, is_mql, crm, object_type)")
    emit(depth, f"result = _score_result({model}, score, grade, {lines}, is_mql, target.stage, target.lead_status, bant, target.grade_label)")


def _model_body(src: _Source, depth: int, m: CompiledModel) -> str:
    """A model's lines and score; returns the constant naming the model."""
    model = src.const(m.name)
    src.reads.setdefault("model", "m_model")
    src.emit(depth, "parts = []")
    src.emit(depth, "append = parts.append")
    _rule_lines(src, depth, m)
    _total_lines(src, depth, m)
    return model


def _scorer_body(src: _Source, compiled: CompiledScoring) -> None:
    """The models in config order, each under its audience, then the result to write."""
    cfg = compiled.config
    for m in compiled.models:
        src.emit(1, f"m_model = {src.const(m.name)}")
        src.reads.setdefault("model", "m_model")
        src.emit(1, f"if {src.condition(m.audience)}:")
        model = _model_body(src, 2, m)
        _result_lines(src, 2, cfg, model, "tuple(parts)")
        src.emit(2, f"by_model[{model}] = result")
        src.emit(2, "if best is None or score > best.score:")
        src.emit(3, "best = result")
    # No model (or not the write model): score 0 under the write model's name.
    if cfg.write_model == "best":
        src.emit(1, "if best is None:")
        name = src.const(NO_MODEL)
    else:
        name = src.const(cfg.write_model)
        src.emit(1, f"best = by_model.get({name})")
        src.emit(1, "if best is None:")
    src.emit(2, "score = 0.0")
    _result_lines(src, 2, cfg, name, "()")
    src.emit(2, "best = result")
    src.emit(1, "return _outcome(best, by_model, competitor)")


def _context_lines(src: _Source, compiled: CompiledScoring) -> list[str]:
    """The head's context fields: region, free mail, competitor, BANT (the outcome needs the last two)."""
    reads = src.reads
    head: list[str] = []
    if "is_free_mail" in reads or compiled.competitors:
        head.append("domain = lead.email_domain")
    if "region" in reads:
        head += ["country = lead.country", "country = country.strip().upper() if country else None",
                 f"{reads['region']} = _region_of.get(country) if country else None"]
    if "is_free_mail" in reads:
        head.append(f"{reads['is_free_mail']} = domain in _free_mail if domain else False")
    if compiled.competitors:
        # the email's or the company's domain is (a subdomain of) a competitor's, spelled out per competitor domain
        tests = " or ".join(f"{{d}} == {src.const(c)} or {{d}}.endswith({src.const('.' + c)})" for c in compiled.competitors)
        head += ["company = lead.company_domain", "company = company.strip().lower() if company else None",
                 f"competitor = bool(domain and ({tests.format(d='domain')})) or bool(company and ({tests.format(d='company')}))"]
    else:
        head.append("competitor = False")
    if "is_competitor" in reads:
        head.append(f"{reads['is_competitor']} = competitor")
    head.append("bant = _bant_view(lead)")
    if "bant" in reads:
        head.append(f"{reads['bant']} = bant")
    for name in ("score", "grade", "is_mql"):  # outputs of scoring: None while scoring (check_scoring rejects them)
        if name in reads:
            head.append(f"{reads[name]} = None")
    return head


def _field_lines(src: _Source) -> list[str]:
    """The head's reads of the lead fields the conditions name, each once."""
    head: list[str] = []
    for name, local in list(src.reads.items()):
        if name in _CONTEXT:
            continue
        if name.startswith("extra."):
            head.append(f"{local} = lead.extra.get({src.const(name[len('extra.'):])})")
        elif name.startswith("engagement."):
            head.append(f"{local} = lead.engagement.get({src.const(name[len('engagement.'):])})")
        elif name.startswith("raw."):
            head.append(f"{local} = lead.raw.get({src.const(name[len('raw.'):])})")
        else:
            head.append(f"{local} = lead.{name}" if name.isidentifier() else f"{local} = getattr(lead, {src.const(name)})")
    return head


def _function(src: _Source, compiled: CompiledScoring) -> str:
    head = ["crm = lead.crm", "object_type = lead.object_type", *_context_lines(src, compiled), *_field_lines(src),
            "by_model = {}", "best = None", "idle = None"]
    return "\n".join(["def score(lead, rules, latest_at, now):", *("    " + line for line in head), *src.lines]) + "\n"


def _number(v: Any) -> float | None:
    """An engagement counter's value as a number; None for anything else (bools, text, NaN, infinity)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _targets(compiled: CompiledScoring) -> dict[tuple[str, str, str, bool], StageTarget]:
    """Stage targets prebuilt for every CRM, usual object type, grade and MQL flag (others are worked out when met)."""
    cfg = compiled.config
    grades = {b.name for b in cfg.grades} | set(cfg.bant_grades.values())
    object_types = {"contacts", "leads", "Lead"} | {k.split(":", 1)[1] for k in compiled.stages if ":" in k}
    crms = set(CRMS) | {k.split(":", 1)[0] for k in compiled.stages}
    return {
        (crm, ot, g, mql): stage_target(compiled.stages, g, mql, crm, ot)
        for crm in crms for ot in object_types for g in grades for mql in (False, True)
    }


def generate_scorer(compiled: CompiledScoring) -> Scorer:
    """score_lead's work for `compiled` (its `scorer` is not read) as one generated function.

    tests/engine/scoring/test_generate.py checks it against the straightforward oracle (tests/engine/scoring/oracle.py).
    """
    src = _Source({}, min((rung.seconds for m in compiled.models for rung in m.ladder), default=None))
    _scorer_body(src, compiled)
    code = _function(src, compiled)
    ns: dict[str, Any] = {
        **src.constants, "_bisect_right": bisect_right, "_points": attrgetter("points"), "_score_result": _score_result,
        "_outcome": _score_outcome, "_count_line": count_line, "_event_line": event_line, "_engagement_line": engagement_line,
        "_targets": _targets(compiled), "_target": partial(stage_target, compiled.stages),
        "_number": _number, "_isfinite": math.isfinite, "_idle_seconds": idle_seconds, "_region_of": compiled.region_of,
        "_free_mail": compiled.free_mail, "_bant_view": bant_view,
    }
    exec(compile(code, f"<scoring {compiled.signature}>", "exec"), ns)  # noqa: S102 - generated from the checked config
    scorer: Scorer = ns["score"]
    return scorer
