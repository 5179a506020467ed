"""The SLA sweep: leads not actioned within routing.sla.minutes are reassigned to the next eligible rep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from connector.core.clock import Clock
from connector.core.keys import lead_key_prefix, route_scope
from connector.core.models import Lead, RoutingDecision
from connector.engine.diff import Desired, plan_write
from connector.engine.routing import RoutingContext, apply_change, availability_snapshot, reassign_lead, required_scopes, sla_check, state_from_counters
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.batch import BatchResult
from connector.pipeline.conversions import rep_conversion_rates
from connector.pipeline.notify import notifications_for, queue
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.stages import lead_events, record, score, write
from connector.state.store import RoutingTxn, Store


def sla_sweep(store: Store, runtime: CrmRuntime, engine: EngineConfig, now: datetime, clock: Clock | None = None) -> BatchResult:
    """Reassign this CRM's leads not actioned within routing.sla.minutes to the next eligible rep (at most K times)."""
    result = BatchResult()
    prefix = lead_key_prefix(runtime.crm, runtime.adapter.object_type)
    due = [s.lead_key for s in store.leads_past_sla(now) if s.lead_key.startswith(prefix)]
    if not due:
        return result
    found = {lead.key: lead for lead in runtime.adapter.fetch_by_ids([key[len(prefix):] for key in due])}
    leads = [lead for lead in found.values() if not (lead.is_converted or lead.is_archived or lead.merged_into)]
    scores = score(leads, lead_events(store, leads, engine.scoring, now), engine.scoring, now)
    stopped = [key for key in due if key not in scores]
    scopes = [route_scope(runtime.crm), *required_scopes(engine.routing, now)]
    with store.routing_transaction(scopes) as txn:
        stopped += _reassign(txn, scopes, runtime, engine, leads, scores, now, result)
    if stopped:
        store.clear_sla(stopped)
    for res in write(store, runtime.adapter, now, person_wins=runtime.rules.person_wins, clock=clock):
        result.written += res.ok
        result.dead_lettered += (not res.ok and not res.retryable)
    return result


def _reassign(
    txn: RoutingTxn, scopes: list[str], runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead],
    scores: Mapping[str, ScoreOutcome], now: datetime, result: BatchResult,
) -> list[str]:
    """Reassign the leads whose SLA expired (counted in `result`); returns the keys whose SLA clock stops."""
    stopped: list[str] = []
    states = txn.lead_states([lead.key for lead in leads])
    state = state_from_counters({scope: txn.counters(scope) for scope in scopes})
    ctx = RoutingContext(reps=runtime.reps, known_owner_ids=runtime.active_owner_ids,
                         availability=availability_snapshot(runtime.reps, engine.routing, now),
                         conversion_rates=rep_conversion_rates(txn, engine))
    for lead in leads:
        view = states[lead.key]
        verdict = sla_check(lead, view, engine.routing, now)
        if verdict.stops_clock:
            stopped.append(lead.key)
            continue
        if not verdict.expired:
            continue
        outcome = scores[lead.key]
        # An SLA breach is told (to its escalation channels) before the lead moves on, once per breach.
        breach = notifications_for(runtime, engine, "sla_breach", lead, outcome, _current_owner(lead, view.routed_rep), now,
                                   occurrence=str(view.reassignments + 1))
        decision, change = reassign_lead(lead, outcome.primary, view, ctx, state, engine.routing, now, verdict.reason)
        if decision.owner_id is None:
            queue(txn, engine, breach, now)
            result.notifications += len(breach)
            continue  # nobody else is available: the current owner keeps it and the SLA stays due
        state = apply_change(state, change)
        record(txn, lead, decision, change, outcome, engine, now, kind="reassign")
        patch = plan_write(lead, Desired(owner_id=decision.owner_id, owner_reason=verdict.reason), view.written, runtime.rules)
        if not patch.is_empty:
            txn.enqueue(patch, now)
        told = breach + notifications_for(runtime, engine, "reassigned", lead, outcome, decision, now,
                                          occurrence=str(view.reassignments + 1))
        queue(txn, engine, told, now)
        result.notifications += len(told)
        result.routed += 1
        result.decisions[lead.key] = decision
        if decision.rep:
            result.owners[decision.rep] += 1
    return stopped


def _current_owner(lead: Lead, rep: str | None) -> RoutingDecision:
    """The decision an SLA breach is told with: the owner who did not act in time."""
    return RoutingDecision(lead_key=lead.key, owner_id=lead.owner_id, rep=rep, kind="kept")
