"""Closed and converted leads: conversions credited to the routed rep once, and closed leads' load released once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from connector.core.keys import CONVERTED_SCOPE, ROUTED_SCOPE, closed_scope, credited_scope, lead_key, route_scope, waiting_scope
from connector.core.models import Lead
from connector.engine.routing import conversion_rates, release_change, required_scopes
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.waiting import clear_waiting
from connector.state.store import LeadState, RoutingTxn, Store


def is_converted(lead: Lead, engine: EngineConfig) -> bool:
    """Salesforce's IsConverted, or a stage / lead status listed in [reports] converted_stages for the lead's CRM."""
    stages = engine.converted_stages.get(lead.crm, frozenset())
    return lead.is_converted or any(value in stages for value in (lead.stage, lead.lead_status) if value is not None)


def rep_conversion_rates(txn: RoutingTxn, engine: EngineConfig) -> dict[str, float] | None:
    """Each rep's conversion rate from the store's counts, when some pool weights by conversion (else None: not read)."""
    if not engine.routing.weights_by_conversion:
        return None
    return conversion_rates(txn.counters(ROUTED_SCOPE), txn.counters(CONVERTED_SCOPE), engine.routing.conversion_min_leads)


def count_routed(txn: RoutingTxn, lead: Lead, rep: str, engine: EngineConfig) -> None:
    """Count a lead routed to `rep` for its conversion rate.

    Conversion rates count the leads routed to each rep and, later, those of them that convert.
    A lead already converted when routed says nothing about its rep: neither counted nor credited.
    """
    if is_converted(lead, engine):
        txn.set(credited_scope(lead.crm), lead.id, 1)
    else:
        txn.add(ROUTED_SCOPE, rep, 1)


def credit_conversions(txn: RoutingTxn, crm: str, states: Mapping[str, LeadState], converted: Sequence[Lead]) -> int:
    """Credit each converted lead, once, to the rep it was routed to; returns how many were credited."""
    reps: dict[str, str] = {}  # lead id -> the rep it was routed to (a page may hold a lead twice)
    for lead in converted:
        state = states.get(lead.key)
        if state is not None and state.routed_rep:
            reps[lead.id] = state.routed_rep
    if not reps:
        return 0
    scope = credited_scope(crm)
    done = txn.counter_values(scope, list(reps))
    credited = [lead_id for lead_id in reps if not done.get(lead_id)]
    for lead_id in credited:
        txn.add(CONVERTED_SCOPE, reps[lead_id], 1)
        txn.set(scope, lead_id, 1)
    return len(credited)


def release_closed(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, ids: Sequence[str], now: datetime, converted: Sequence[Lead] = (),
) -> int:
    """Converted, deleted or merged leads stop counting against their rep's open-lead capacity (once each).

    `converted` leads (closed or not: a HubSpot contact that became a customer stays open) are
    credited to the rep they were routed to, once, for conversion weighting.
    """
    keys = {lead_key(runtime.crm, runtime.adapter.object_type, rid): rid for rid in ids}
    released = 0
    scope = closed_scope(runtime.crm)
    waiting = waiting_scope(runtime.crm)
    scopes = [route_scope(runtime.crm), scope, credited_scope(runtime.crm), waiting, *required_scopes(engine.routing, now)]
    with store.routing_transaction(scopes) as txn:
        states = txn.lead_states(sorted({*keys, *(lead.key for lead in converted)}))
        credit_conversions(txn, runtime.crm, states, converted)
        # A closed lead waits for nobody: it leaves the waiting list instead of being re-read on every run.
        for rid, value in txn.counter_values(waiting, list(keys.values())).items():
            if value:
                clear_waiting(txn, runtime.crm, rid, lead_key(runtime.crm, runtime.adapter.object_type, rid))
        done = txn.counter_values(scope, list(keys.values()))
        for key, state in states.items():
            if key not in keys:
                continue
            rid = keys[key]
            if state.routed_rep is None or done.get(rid):
                continue
            for op in release_change(state.routed_rep).ops:
                txn.add(op.scope, op.key, op.value)
            txn.set(scope, rid, 1)
            released += 1
    return released
