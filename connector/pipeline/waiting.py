"""Leads waiting for an available rep: listing them, and marking them in and out of the waiting scope."""

from __future__ import annotations

from datetime import datetime

from connector.core.keys import waiting_scope
from connector.core.models import Lead, RoutingDecision
from connector.state.store import RoutingTxn, Store


def waiting_leads(store: Store, crm: str) -> list[str]:
    """Ids of this CRM's leads still waiting for an available rep."""
    scope = waiting_scope(crm)
    with store.routing_transaction([scope]) as txn:
        return sorted(key for key, value in txn.counters(scope).items() if value > 0)


def mark_waiting(txn: RoutingTxn, crm: str, lead: Lead, decision: RoutingDecision, now: datetime) -> None:
    """Remember a lead nobody can take now, so the next run re-reads it even if it never changes,
    and why it waits and until when (status and reports show it)."""
    txn.set(waiting_scope(crm), lead.id, 1)
    txn.set_waiting(
        lead.key, crm, now, cause=decision.wait_cause, pool=decision.pool,
        next_available_at=decision.next_available_at, next_available_rep=decision.next_available_rep,
        reason=next((r for r in reversed(decision.reasons) if r.startswith("waiting:")), ""),
    )


def clear_waiting(txn: RoutingTxn, crm: str, record_id: str, lead_key: str) -> None:
    """Take a lead off the waiting list (it was routed, or closed)."""
    txn.set(waiting_scope(crm), record_id, 0)
    txn.clear_waiting(lead_key)
