"""`route_lead`: who should own a lead and why, and the counter changes that decision makes (pure).

Order of decisions for one lead: keep the existing owner → account match (email domain → account
owner, or its parent's) → duplicate contact's owner → the first matching rule's pool → the fallback
pool → the fallback queue, or wait. Within a pool a strategy picks one eligible rep (strategies.py).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from connector.core.keys import OPEN_SCOPE
from connector.core.models import Candidate, Lead, Rep, RoutingDecision, ScoreResult, WaitCause
from connector.engine.routing.compile import CompiledRouting, CompiledRule, Place, place_of
from connector.engine.routing.config import normalize_email
from connector.engine.routing.reps import capacity_reason
from connector.engine.routing.snapshot import AvailabilitySnapshot, RoutingContext, snapshot_for
from connector.engine.routing.state import NO_CHANGE, RoutingState, StateChange, live_counters, new_state_change
from connector.engine.routing.strategies import Pick, pick_rep
from connector.engine.routing.waiting import wait_sentence, wait_until
from connector.engine.scoring import frozen_builder

_routing_decision = frozen_builder(RoutingDecision)


def route_lead(
    lead: Lead, score: ScoreResult, ctx: RoutingContext, state: RoutingState, compiled: CompiledRouting, now: datetime,
) -> tuple[RoutingDecision, StateChange]:
    """Who should own `lead` and why, plus the counter changes that decision makes (pure)."""
    if not compiled.is_configured:
        return decision_of(lead, "none", None, None, ["routing is not configured (no reps, no fallback queue)"]), NO_CHANGE
    snap = ctx.availability
    if snap is None or snap.compiled is not compiled or snap.reps is not ctx.reps or snap.now != now:
        snap = snapshot_for(ctx, compiled, now)
    reasons: list[str] = []
    # Most leads have no owner, account or duplicate contact: nothing to match.
    if lead.owner_id or ctx.account is not None or ctx.contact_owner_id:
        matched = _matched(lead, ctx, snap, state, compiled, reasons)
        if matched is not None:
            return matched
    place = compiled.place_memo.get((lead.country, lead.state, lead.postal_code)) or place_of(lead, compiled)
    index = compiled.matcher(lead, score, ctx.is_free_mail, ctx.is_competitor, place.region, place.territory)  # as match_rule
    return route_in_pools(lead, compiled.rules[index] if index >= 0 else None, place, ctx, snap, state, reasons, kind="rule")


def match_rule(lead: Lead, score: ScoreResult, ctx: RoutingContext, compiled: CompiledRouting) -> tuple[CompiledRule | None, Place]:
    """The first rule whose condition the lead meets (None: no rule), and where the lead is."""
    place = compiled.place_memo.get((lead.country, lead.state, lead.postal_code)) or place_of(lead, compiled)
    index = compiled.matcher(lead, score, ctx.is_free_mail, ctx.is_competitor, place.region, place.territory)
    return (compiled.rules[index] if index >= 0 else None), place


def route_in_pools(
    lead: Lead, rule: CompiledRule | None, place: Place, ctx: RoutingContext, snap: AvailabilitySnapshot,
    state: RoutingState, reasons: list[str], *, kind: str, exclude: Collection[str] = frozenset(),
) -> tuple[RoutingDecision, StateChange]:
    """The rule's pool, then the fallback pool; when nobody there can take the lead: the fallback queue, or wait.

    `kind` is "rule" for a new lead (then "fallback" in the fallback pool) or "reassigned"; `exclude`
    names the reps (emails or owner ids) who had the lead already.
    """
    compiled = snap.compiled
    pools = rule.pools_tried if rule is not None else compiled.fallback_pools
    head = rule.matched_reason if rule is not None else "no rule matched"
    live = state._live
    if live is None or live.tip is not state:
        live = live_counters(state)
    tried: list[Pick] = []
    for n, pool_name in enumerate(pools):
        pool = compiled.pools[pool_name]
        pool_rule = rule if n == 0 and rule is not None else None
        pick = pick_rep(snap, pool, pool_rule, lead, place, ctx, live, exclude)
        if pick.rep is not None and pick.email is not None:
            line = pool.reason_lines.get(pick.strategy) or f"pool {pool_name!r} ({pick.strategy})"
            failed = [f"pool {name!r}: nobody available" for name in pools[:n]] if n else ()
            pool_kind = kind if kind != "rule" else "rule" if pool_rule is not None else "fallback"
            return _routing_decision(
                lead.key, pick.rep.owner_ids[lead.crm], pick.email, pool_kind, rule.name if rule is not None else None, pool_name,
                pick.strategy, pick.arm, (*reasons, head, *failed, line, *pick.reasons), pick.candidates, None, None, None,
            ), new_state_change(pick.ops)
        tried.append(pick)
    reasons += [head, *(f"pool {name!r}: nobody available" for name in pools)]
    return _unrouted(lead, rule, pools, tried, ctx, snap, state, reasons, exclude)


def _unrouted(
    lead: Lead, rule: CompiledRule | None, pools: tuple[str, ...], tried: list[Pick], ctx: RoutingContext,
    snap: AvailabilitySnapshot, state: RoutingState, reasons: list[str], exclude: Collection[str],
) -> tuple[RoutingDecision, StateChange]:
    """Nobody in the pools (or no pool): wait for a rep, the fallback queue, or no owner."""
    compiled = snap.compiled
    candidates = tuple(c for p in tried for c in p.candidates)
    extra: dict[str, Any] = {
        "rule": rule.name if rule is not None else None,
        "pool": pools[0] if pools else None,
        "strategy": tried[0].strategy if tried else None,
        "arm": tried[0].arm if tried else None,
        "candidates": candidates,
    }
    queue = compiled.fallback_queue.get(lead.crm)
    if tried and (compiled.when_unavailable == "wait" or not queue):
        cause, at, who = wait_until(candidates, lead.crm, ctx, snap, state, exclude)
        head = "waiting: " if compiled.when_unavailable == "wait" else f"waiting: no fallback queue for {lead.crm}; "
        line = head + wait_sentence(pools, cause, at, who, snap)
        return decision_of(
            lead, "wait", None, None, [*reasons, line], **extra, wait_cause=cause, next_available_at=at, next_available_rep=who,
        ), NO_CHANGE
    if queue:
        return decision_of(lead, "fallback", queue, None, [*reasons, f"fallback queue {queue} in {lead.crm}"], **extra), NO_CHANGE
    return decision_of(lead, "none", None, None, [*reasons, "no fallback pool or queue: left unassigned"], **extra), NO_CHANGE


def decision_of(
    lead: Lead, kind: Any, owner_id: str | None, rep: str | None, reasons: list[str], *, rule: str | None = None,
    pool: str | None = None, strategy: str | None = None, arm: str | None = None, candidates: tuple[Candidate, ...] = (),
    wait_cause: WaitCause | None = None, next_available_at: datetime | None = None, next_available_rep: str | None = None,
) -> RoutingDecision:
    """A decision with its reasons (rule, pool, candidates and wait details as keywords)."""
    return _routing_decision(
        lead.key, owner_id, rep, kind, rule, pool, strategy, arm, tuple(reasons), candidates, wait_cause, next_available_at,
        next_available_rep,
    )


def _owner_problem(
    owner_id: str, crm: str, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState, *, check_availability: bool,
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
        email = normalize_email(rep.email)
        why = snap.blocked_reason(email) or capacity_reason(rep, state.get(OPEN_SCOPE, email), state.get(snap.day, email))
        if why is not None:
            return f"{rep.email}: {why}", rep
    return None, rep


# Salesforce's Group key prefix: an OwnerId starting with it is a queue, whether or not the owners read listed it.
QUEUE_KEY_PREFIX: dict[str, str] = {"salesforce": "00G"}


def is_queue_owner(crm: str, owner_id: str, ctx: RoutingContext) -> bool:
    """The owner is a queue (the CRM's owners say so, or Salesforce's queue key prefix)."""
    prefix = QUEUE_KEY_PREFIX.get(crm)
    return owner_id in ctx.queue_owner_ids or (prefix is not None and owner_id.startswith(prefix))


def _matched(
    lead: Lead, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState, compiled: CompiledRouting, reasons: list[str],
) -> tuple[RoutingDecision, StateChange] | None:
    """Pre-routing: keep the owner, then account match, then duplicate-contact match."""
    crm = lead.crm
    if lead.owner_id and is_queue_owner(crm, lead.owner_id, ctx) and lead.owner_id not in ctx.kept_queue_ids:
        # A queue is where a lead waits for a person, not an owner a person chose [crm-behaviour: Salesforce lead owners: users and queues].
        if lead.owner_id not in compiled.unassigned_owner_ids:
            reasons.append(f"owner {lead.owner_id} is a queue: routed like an unowned lead")
    elif compiled.keep_existing_owner and lead.owner_id and lead.owner_id not in compiled.unassigned_owner_ids:
        why, rep = _owner_problem(lead.owner_id, crm, ctx, snap, state, check_availability=False)
        if why is None:
            # The owner already counts in the load counters (or is not a configured rep): no change.
            kept = normalize_email(rep.email) if rep else None
            return decision_of(lead, "kept", lead.owner_id, kept, [*reasons, f"kept existing owner {lead.owner_id}"]), NO_CHANGE
        reasons.append(f"existing owner not kept: {why}")
    tries: list[tuple[str, str, str | None]] = []
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
        why, rep = _owner_problem(owner_id, crm, ctx, snap, state, check_availability=compiled.matched_owner_availability)
        if why is not None:
            reasons.append(f"{label} {owner_id} skipped: {why}")
            continue
        email = normalize_email(rep.email) if rep else None
        change = new_state_change(snap.load_ops(email)) if email else NO_CHANGE
        return decision_of(lead, kind, owner_id, email, [*reasons, f"{label} {owner_id}"]), change
    return None
