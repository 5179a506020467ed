"""The routing SLA: when a routed lead's time runs out, whether it was actioned, and reassignment to the next rep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from connector.core.models import Lead, RoutingDecision, ScoreResult
from connector.engine.routing.compile import CompiledRouting
from connector.engine.routing.route import match_rule, route_in_pools
from connector.engine.routing.snapshot import RoutingContext, snapshot_for
from connector.engine.routing.state import NO_CHANGE, RoutingState, StateChange, release_change


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
    snap = snapshot_for(ctx, compiled, now)
    rule, place = match_rule(lead, score, ctx, compiled)
    exclude = frozenset(x for x in (view.routed_rep, view.routed_owner_id) if x)
    decision, change = route_in_pools(lead, rule, place, ctx, snap, state, reasons, kind="reassigned", exclude=exclude)
    if decision.rep is None or decision.owner_id is None:
        return RoutingDecision(
            lead_key=lead.key, owner_id=None, kind="wait", rule=decision.rule, pool=decision.pool, strategy=decision.strategy,
            reasons=(*decision.reasons, "no other eligible rep: the current owner keeps the lead for now"), candidates=decision.candidates,
            wait_cause=decision.wait_cause, next_available_at=decision.next_available_at, next_available_rep=decision.next_available_rep,
        ), NO_CHANGE
    if view.routed_rep:
        change = change + release_change(view.routed_rep)
    return decision, change
