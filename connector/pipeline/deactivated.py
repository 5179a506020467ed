"""A rep who leaves: the open leads of owners deactivated since the last run are routed again, in this run.

The owners read at the start of every run tell who is active; the previous run's active set is kept in
the store (routing counters of the scope "owners:active:<crm>": owner id -> 1 active, 0 no longer). An owner in the previous set and not in this one was
deactivated (HubSpot: archived; Salesforce: User.IsActive = false). Their open leads are found in the CRM
(HubSpot search on hubspot_owner_id; SOQL `OwnerId IN (...)` under lead_filter) and go to the next eligible
rep with the reason "owner deactivated"; the leaving rep's open-lead count goes down with each lead.
`[routing] reassign_from_inactive`: "all" open leads (default), "routed" (only those the connector
assigned), "none".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.adapters.base import FindsLeadsByOwner
from connector.core.clock import Clock
from connector.core.keys import OPEN_SCOPE, route_scope
from connector.core.models import Lead, RoutingDecision
from connector.engine.diff import Desired, plan_write
from connector.engine.routing import (
    RoutingContext, apply_change, availability_snapshot, reassign_lead, release_change, required_scopes, state_from_counters,
)
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.batch import BatchResult
from connector.pipeline.conversions import rep_conversion_rates
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.stages import lead_events, record, score, write
from connector.state.store import RoutingTxn, Store

log = logging.getLogger(__name__)

ACTIVE_OWNERS_SCOPE = "owners:active:"  # + crm
REASON = "owner deactivated"


@dataclass(frozen=True, slots=True)
class _NeverRouted:
    """The routing view of a lead the connector never routed (a rep's own lead)."""

    routed_owner_id: str | None = None
    routed_rep: str | None = None
    routed_at: datetime | None = None
    reassignments: int = 0
    initial_status: str | None = None
    written: Mapping[str, Any] = field(default_factory=dict)


def deactivated_owners(store: Store, runtime: CrmRuntime, now: datetime) -> list[str]:
    """Owners active at the previous run and not now; this run's active set is remembered for the next."""
    scope = ACTIVE_OWNERS_SCOPE + runtime.crm
    current = runtime.active_owner_ids - runtime.queue_owner_ids
    with store.routing_transaction([scope]) as txn:
        stored = txn.counters(scope)
        previous = {owner for owner, active in stored.items() if active > 0}
        for owner in previous - current:
            txn.set(scope, owner, 0)
        for owner in current - previous:
            txn.set(scope, owner, 1)
    return sorted(previous - current) if stored else []  # the first run only records who is active


def reroute_deactivated(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, now: datetime, mode: str, clock: Clock | None = None,
) -> BatchResult:
    """Route again, now, the open leads of the owners deactivated since the last run (see the module)."""
    result = BatchResult()
    gone = deactivated_owners(store, runtime, now)
    adapter = runtime.adapter
    if not gone or mode == "none" or not isinstance(adapter, FindsLeadsByOwner):
        return result
    leads = [
        lead for lead in adapter.find_leads_by_owner(gone)
        if lead.owner_id in gone and not (lead.is_converted or lead.is_archived or lead.merged_into)
        and (mode != "routed" or assigned_by_connector(store, lead))
    ]
    log.info("%s: owners deactivated since the last run: %s; %d open leads to route again", runtime.crm, ", ".join(gone), len(leads))
    if not leads:
        return result
    scores = score(leads, lead_events(store, leads, engine.scoring, now), engine.scoring, now)
    scopes = [route_scope(runtime.crm), *required_scopes(engine.routing, now)]
    with store.routing_transaction(scopes) as txn:
        _reroute(txn, scopes, runtime, engine, [lead for lead in leads if lead.key in scores], scores, now, result)
    for res in write(store, adapter, now, person_wins=runtime.rules.person_wins, clock=clock):
        result.written += res.ok
        result.dead_lettered += (not res.ok and not res.retryable)
    return result


def assigned_by_connector(store: Store, lead: Lead) -> bool:
    """The connector's latest owner decision for the lead gave it its current owner (not "kept existing owner")."""
    decisions = store.decisions_for(lead.key)
    last = decisions[-1] if decisions else None
    return last is not None and last.owner_id == lead.owner_id and last.explanation.get("routing", {}).get("kind") != "kept"


def _reroute(
    txn: RoutingTxn, scopes: list[str], runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead],
    scores: Mapping[str, ScoreOutcome], now: datetime, result: BatchResult,
) -> None:
    states = txn.lead_states([lead.key for lead in leads])
    state = state_from_counters({scope: txn.counters(scope) for scope in scopes})
    ctx = RoutingContext(reps=runtime.reps, known_owner_ids=runtime.active_owner_ids,
                         queue_owner_ids=runtime.queue_owner_ids, kept_queue_ids=runtime.kept_queue_ids,
                         availability=availability_snapshot(runtime.reps, engine.routing, now),
                         conversion_rates=rep_conversion_rates(txn, engine))
    for lead in leads:
        known = states.get(lead.key)
        routed_here = known is not None and known.routed_owner_id == lead.owner_id
        view: Any = known if routed_here and known is not None else _NeverRouted()
        if view.routed_rep and state.get(OPEN_SCOPE, view.routed_rep) <= 0:
            # A kept owner never counted in the load counters: nothing to release.
            view = _NeverRouted(routed_owner_id=view.routed_owner_id, reassignments=view.reassignments, written=view.written)
        outcome = scores[lead.key]
        decision, change = reassign_lead(lead, outcome.primary, view, ctx, state, engine.routing, now, REASON)
        if decision.owner_id is None:
            parked = _to_fallback_queue(lead, decision, engine)
            if parked is None:
                log.warning("%s: nobody can take lead %s of a deactivated owner, and no fallback queue", runtime.crm, lead.id)
                continue
            decision, change = parked, release_change(view.routed_rep) if view.routed_rep else change
        state = apply_change(state, change)
        record(txn, lead, decision, change, outcome, engine, now, kind="reassign")
        # A person who is gone cannot keep a lead: the owner lock does not hold for a deactivated owner.
        written = {k: v for k, v in view.written.items() if k != "owner_id"}
        patch = plan_write(lead, Desired(owner_id=decision.owner_id, owner_reason=REASON), written, runtime.rules)
        if not patch.is_empty:
            txn.enqueue(patch, now)
        result.routed += 1
        result.decisions[lead.key] = decision
        if decision.rep:
            result.owners[decision.rep] += 1


def _to_fallback_queue(lead: Lead, decision: RoutingDecision, engine: EngineConfig) -> RoutingDecision | None:
    """Nobody else can take the lead now: the fallback queue (a deactivated owner keeps nothing), if configured."""
    queue = engine.routing.fallback_queue.get(lead.crm)
    if not queue:
        return None
    reasons = (*decision.reasons, f"fallback queue {queue} in {lead.crm}")
    return RoutingDecision(lead_key=lead.key, owner_id=queue, kind="fallback", rule=decision.rule, pool=decision.pool, reasons=reasons)
