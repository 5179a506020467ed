"""The straightforward routing implementation, kept in tests only: the oracle the planned path is compared with.

Rules match one by one through their compiled predicates with a context dict; a pool's reps are
checked one by one (had the lead, capacity, skills, tier) and every eligible rep's full key
(primary, finish, start, member order) is compared. Production runs `connector.engine.routing`;
tests/engine/routing/test_equivalence.py checks that both give equal decisions and counter changes.
Pre-routing (kept / account / contact owners) and the wait sentence are shared, not re-derived.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.core.keys import OPEN_SCOPE, VT_KEY
from connector.core.models import Candidate, Lead, Rep, RoutingDecision, ScoreResult
from connector.engine.conditions import Predicate, compile_condition
from connector.engine.routing import (
    NO_CHANGE,
    TURN,
    CompiledPool,
    CompiledRouting,
    CompiledRule,
    CounterOp,
    RoutingContext,
    RoutingState,
    StateChange,
    place_of,
    release_change,
    wait_sentence,
    wait_until,
)
from connector.engine.routing.plan import CONVERSION_FACTOR_BOUNDS
from connector.engine.routing.route import _matched, decision_of
from connector.engine.routing.sla import LeadRoutingView
from connector.engine.routing.snapshot import AvailabilitySnapshot, snapshot_for
from connector.engine.routing.strategies import choose_strategy


def condition_context(lead: Lead, score: ScoreResult, ctx: RoutingContext, compiled: CompiledRouting) -> dict[str, Any]:
    """The context fields rule conditions can read besides lead attributes."""
    region, territory = place_of(lead, compiled)
    return {
        "score": score.score, "grade": score.grade, "model": score.model, "bant": score.bant, "is_mql": score.is_mql,
        "region": region, "territory": territory, "is_free_mail": ctx.is_free_mail, "is_competitor": ctx.is_competitor,
    }


_PREDICATES: dict[int, tuple[CompiledRouting, list[Predicate]]] = {}  # id -> (the config, kept alive; its rules' predicates)


def match_rule(lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting) -> CompiledRule | None:
    """The first rule whose compiled predicate holds."""
    found = _PREDICATES.get(id(compiled))
    if found is None or found[0] is not compiled:
        found = _PREDICATES[id(compiled)] = (compiled, [compile_condition(rule.when) for rule in compiled.config.rules])
    predicates = found[1]
    for rule, predicate in zip(compiled.rules, predicates, strict=True):
        if predicate(lead, fields):
            return rule
    return None


def lead_skills(lead: Lead, fields: Mapping[str, Any], compiled: CompiledRouting) -> dict[str, frozenset[str]]:
    language: Any = None
    name = compiled.language_field
    if name:
        language = lead.extra.get(name[len("extra."):]) if name.startswith("extra.") else getattr(lead, name, None)
    places = {p.strip().lower() for p in (fields.get("region"), fields.get("territory"), lead.country) if p}
    return {
        "industries": frozenset({lead.industry.strip().lower()}) if lead.industry else frozenset(),
        "products": frozenset(p.strip().lower() for p in lead.product_interest if p),
        "languages": frozenset({str(language).strip().lower()}) if language else frozenset(),
        "regions": frozenset(places),
    }


def conversion_factor(email: str, pool: CompiledPool, rates: Mapping[str, float]) -> float:
    known = [rates[m] for m in pool.members if m in rates]
    if email not in rates or not known:
        return 1.0
    mean = sum(known) / len(known)
    if mean <= 0:
        return 1.0
    lo, hi = CONVERSION_FACTOR_BOUNDS
    return min(hi, max(lo, rates[email] / mean))


def verdict(
    email: str, rep: Rep, lead: Lead, exclude: frozenset[str], required: tuple[str, ...], wanted: Mapping[str, frozenset[str]],
    snap: AvailabilitySnapshot, open_counts: Mapping[str, int], day_counts: Mapping[str, int],
) -> str | None:
    """Why an available member cannot take this lead (None: eligible before tier)."""
    if exclude and (email in exclude or rep.owner_ids.get(lead.crm) in exclude):
        return "already had this lead"
    if rep.max_open_leads is not None and open_counts.get(email, 0) >= rep.max_open_leads:
        return f"at capacity: {open_counts.get(email, 0)}/{rep.max_open_leads} open leads"
    if rep.max_leads_per_day is not None and day_counts.get(email, 0) >= rep.max_leads_per_day:
        return f"at capacity: {day_counts.get(email, 0)}/{rep.max_leads_per_day} leads today"
    have = snap.skills(email, rep)
    for skill in required:
        if wanted[skill] and not wanted[skill] & have.get(skill, frozenset()):
            return f"lacks skill {skill}: {', '.join(sorted(wanted[skill]))}"
    return None


def tier_filter(
    rule: CompiledRule, tier: str, eligible: list[tuple[int, str, Rep, int]], cands: list[Candidate], reasons: list[str],
) -> list[tuple[int, str, Rep, int]]:
    """Only the rule's tier, unless nobody of it is eligible and the tier is not strict."""
    in_tier = [e for e in eligible if e[2].tier == tier]
    if not in_tier and not rule.tier_strict:
        reasons.append(f"no eligible {tier} rep; any tier")
        return eligible
    for index, email, rep, _ in eligible:
        if rep.tier != tier:
            cands[index] = Candidate(email, False, f"tier {rep.tier}; rule {rule.name!r} wants {tier}")
    reasons.append(f"tier {tier} only")
    return in_tier


def pick(
    pool: CompiledPool, rule: CompiledRule | None, lead: Lead, fields: Mapping[str, Any], ctx: RoutingContext,
    snap: AvailabilitySnapshot, state: RoutingState, compiled: CompiledRouting, exclude: frozenset[str],
) -> tuple[str | None, Rep | None, str, str | None, tuple[Candidate, ...], list[str], tuple[CounterOp, ...]]:
    """One eligible rep of `pool`, every member checked and every key built: (email, rep, strategy, arm, candidates, reasons, ops)."""
    strategy, arm, reasons = choose_strategy(pool, rule, lead)
    open_counts, day_counts = state.scope(OPEN_SCOPE), state.scope(snap.day)
    required = rule.require_skills if rule is not None else ()
    wanted = lead_skills(lead, fields, compiled)
    cands: list[Candidate] = []
    eligible: list[tuple[int, str, Rep, int]] = []
    for index, (email, rep, why, cand, stride) in enumerate(snap.members(pool, lead.crm, ctx.known_owner_ids)):
        if why is None and rep is not None:
            why = verdict(email, rep, lead, exclude, required, wanted, snap, open_counts, day_counts)
            if why is None:
                eligible.append((index, email, rep, stride))
            else:
                cand = Candidate(email, False, why)
        cands.append(cand)
    if rule is not None and rule.tier is not None:
        eligible = tier_filter(rule, rule.tier, eligible, cands, reasons)
    rr = state.scope(pool.scope)
    vt = rr.get(VT_KEY, 0)
    rates = (ctx.conversion_rates or {}) if pool.weight_by_conversion else {}
    best: tuple[Any, ...] | None = None
    chosen: tuple[int, str, Rep, int] | None = None
    for index, email, rep, stride in eligible:
        weight = rep.weight if rep.weight >= 1 else 1
        if rates:
            stride = max(1, round(TURN / (weight * conversion_factor(email, pool, rates))))
        start = max(rr.get(email, 0), vt - stride)  # back from an absence: next in line, not a backlog
        finish = start + stride
        if strategy == "least_loaded":
            key: tuple[Any, ...] = (open_counts.get(email, 0) * TURN // weight, finish, start, index)
        elif strategy == "best_match":
            have = snap.skills(email, rep)
            key = (-sum(1 for sk, w in wanted.items() if w and w & have.get(sk, frozenset())), finish, start, index)
        else:
            key = (finish, start, index)
        if best is None or key < best:
            best, chosen = key, (index, email, rep, finish)
    if chosen is None or best is None:
        return None, None, strategy, arm, tuple(cands), reasons, ()
    index, email, rep, finish = chosen
    cands[index] = Candidate(email, True, "chosen")
    if strategy == "least_loaded":
        reasons.append(f"{email}: fewest open leads per weight ({open_counts.get(email, 0)} open, weight {rep.weight})")
    elif strategy == "best_match":
        reasons.append(f"{email}: best skills match ({-best[0]} of the lead's needs), next in rotation among ties")
    else:
        reasons.append(f"{email}: next in weighted rotation (weight {rep.weight})")
    ops = (
        CounterOp(pool.scope, email, "set", finish), CounterOp(pool.scope, VT_KEY, "set", max(vt, finish)),
        CounterOp(OPEN_SCOPE, email, "add", 1), CounterOp(snap.day, email, "add", 1),
    )
    return email, rep, strategy, arm, tuple(cands), reasons, ops


def route_in_pools(
    lead: Lead, rule: CompiledRule | None, fields: Mapping[str, Any], ctx: RoutingContext, snap: AvailabilitySnapshot,
    state: RoutingState, compiled: CompiledRouting, reasons: list[str], *, kind: str, exclude: frozenset[str] = frozenset(),
) -> tuple[RoutingDecision, StateChange]:
    pools: list[tuple[str, CompiledRule | None, str]] = []
    fallback_kind = "fallback" if kind == "rule" else kind
    if rule is not None:
        reasons.append(f"rule {rule.name!r} matched: {rule.description}")
        pools.append((rule.pool, rule, kind))
        if compiled.when_unavailable == "fallback" and compiled.fallback_pool and compiled.fallback_pool != rule.pool:
            pools.append((compiled.fallback_pool, None, fallback_kind))
    else:
        reasons.append("no rule matched")
        if compiled.fallback_pool:
            pools.append((compiled.fallback_pool, None, fallback_kind))
    tried = []
    for pool_name, pool_rule, pool_kind in pools:
        email, rep, strategy, arm, cands, pick_reasons, ops = pick(compiled.pools[pool_name], pool_rule, lead, fields, ctx, snap, state, compiled, exclude)
        if rep is not None and email is not None:
            reasons.append(f"pool {pool_name!r} ({strategy})")
            return RoutingDecision(
                lead_key=lead.key, owner_id=rep.owner_ids[lead.crm], rep=email, kind=pool_kind,  # type: ignore[arg-type]
                rule=rule.name if rule is not None else None, pool=pool_name, strategy=strategy, arm=arm,
                reasons=(*reasons, *pick_reasons), candidates=cands,
            ), StateChange(ops)
        reasons.append(f"pool {pool_name!r}: nobody available")
        tried.append((strategy, arm, cands))
    candidates = tuple(c for _, _, cands in tried for c in cands)
    extra: dict[str, Any] = {
        "rule": rule.name if rule is not None else None, "pool": pools[0][0] if pools else None,
        "strategy": tried[0][0] if tried else None, "arm": tried[0][1] if tried else None, "candidates": candidates,
    }
    queue = compiled.fallback_queue.get(lead.crm)
    if tried and (compiled.when_unavailable == "wait" or not queue):
        cause, at, who = wait_until(candidates, lead.crm, ctx, snap, state, exclude)
        head = "waiting: " if compiled.when_unavailable == "wait" else f"waiting: no fallback queue for {lead.crm}; "
        line = head + wait_sentence([name for name, _, _ in pools], cause, at, who, snap)
        return decision_of(lead, "wait", None, None, [*reasons, line], **extra, wait_cause=cause, next_available_at=at, next_available_rep=who), NO_CHANGE
    if queue:
        return decision_of(lead, "fallback", queue, None, [*reasons, f"fallback queue {queue} in {lead.crm}"], **extra), NO_CHANGE
    return decision_of(lead, "none", None, None, [*reasons, "no fallback pool or queue: left unassigned"], **extra), NO_CHANGE


def route_lead(
    lead: Lead, score: ScoreResult, ctx: RoutingContext, state: RoutingState, compiled: CompiledRouting, now: datetime,
) -> tuple[RoutingDecision, StateChange]:
    """`connector.engine.routing.route_lead`, the straightforward way."""
    if not compiled.is_configured:
        return decision_of(lead, "none", None, None, ["routing is not configured (no reps, no fallback queue)"]), NO_CHANGE
    snap = snapshot_for(ctx, compiled, now)
    reasons: list[str] = []
    matched = _matched(lead, ctx, snap, state, compiled, reasons)
    if matched is not None:
        return matched
    fields = condition_context(lead, score, ctx, compiled)
    return route_in_pools(lead, match_rule(lead, fields, compiled), fields, ctx, snap, state, compiled, reasons, kind="rule")


def reassign_lead(
    lead: Lead, score: ScoreResult, view: LeadRoutingView, ctx: RoutingContext, state: RoutingState,
    compiled: CompiledRouting, now: datetime, reason: str,
) -> tuple[RoutingDecision, StateChange]:
    """`connector.engine.routing.reassign_lead`, the straightforward way."""
    reasons = [f"reassigned: {reason}", f"reassignment {view.reassignments + 1} of at most {compiled.max_reassignments}"]
    snap = snapshot_for(ctx, compiled, now)
    fields = condition_context(lead, score, ctx, compiled)
    exclude = frozenset(x for x in (view.routed_rep, view.routed_owner_id) if x)
    decision, change = route_in_pools(
        lead, match_rule(lead, fields, compiled), fields, ctx, snap, state, compiled, reasons, kind="reassigned", exclude=exclude,
    )
    if decision.rep is None or decision.owner_id is None:
        return RoutingDecision(
            lead_key=lead.key, owner_id=None, kind="wait", rule=decision.rule, pool=decision.pool, strategy=decision.strategy,
            reasons=(*decision.reasons, "no other eligible rep: the current owner keeps the lead for now"), candidates=decision.candidates,
            wait_cause=decision.wait_cause, next_available_at=decision.next_available_at, next_available_rep=decision.next_available_rep,
        ), NO_CHANGE
    if view.routed_rep:
        change = change + release_change(view.routed_rep)
    return decision, change
