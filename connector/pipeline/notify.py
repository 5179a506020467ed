"""The notify decision: which notifications a batch's routing produces, queued in its routing transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from connector.core.models import Lead, RoutingDecision, WriteResult
from connector.engine.notifications import Notification, decide_notifications
from connector.engine.routing import sla_deadline
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.state.store import RoutingTxn, Store


def is_routed(decision: RoutingDecision | None) -> bool:
    """The connector set a new owner: the same definition as the run summary's `routed`."""
    return decision is not None and decision.kind not in ("kept", "none", "wait") and decision.owner_id is not None


def notifications_for(
    runtime: CrmRuntime, engine: EngineConfig, event: str, lead: Lead, outcome: ScoreOutcome, decision: RoutingDecision,
    now: datetime, *, occurrence: str = "1", error: str | None = None,
) -> list[Notification]:
    """The notifications of one event on one lead (none when notifications are off or no channel listens)."""
    if not engine.channels:
        return []
    names = {rep.email: rep.name for rep in runtime.reps}
    return decide_notifications(
        engine.channels, event, lead, outcome.primary, decision, now=now, occurrence=occurrence,
        record_url=runtime.record_url.format(id=lead.id) if runtime.record_url else "",
        owner_name=names.get(decision.rep or "", ""), sla_due_at=sla_deadline(decision, engine.routing, now), error=error,
    )


def send_at(engine: EngineConfig, n: Notification, now: datetime) -> datetime:
    """When to send: now, or with quiet hours on, when the lead's rep is next at work (urgent grades: now)."""
    if not engine.quiet_hours or n.payload.get("grade") in engine.urgent_grades:
        return now
    schedule = engine.routing.schedules.get(str(n.payload.get("owner", {}).get("email") or ""))
    if schedule is None or schedule.is_available(now):
        return now
    return schedule.next_available(now) or now


def row(engine: EngineConfig, n: Notification, now: datetime) -> dict[str, Any]:
    """A notification as its pending notifications row (held until send_at)."""
    return {
        "dedupe_key": n.dedupe_key, "channel": n.channel, "event": n.event, "lead_key": n.lead_key,
        "payload": dict(n.payload), "status": "pending", "attempts": 0, "next_attempt_at": send_at(engine, n, now),
        "created_at": now,
    }


def queue(txn: RoutingTxn, engine: EngineConfig, notifications: Sequence[Notification], now: datetime) -> None:
    """Queue notifications with the routing transaction; a dedupe key already queued adds nothing."""
    for n in notifications:
        txn.notify(row(engine, n, now))


def notify_dead_letters(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead], scores: Mapping[str, ScoreOutcome],
    decisions: Mapping[str, RoutingDecision], results: Sequence[WriteResult], now: datetime,
) -> int:
    """Queue a `dead_letter` notification for each of this batch's leads whose write was given up on; how many."""
    if not any("dead_letter" in c.on for c in engine.channels):
        return 0
    by_id = {lead.id: lead for lead in leads}
    out: list[Notification] = []
    for res in results:
        lead = by_id.get(res.record_id)
        if res.ok or res.retryable or lead is None:
            continue
        decision = decisions.get(lead.key) or RoutingDecision(lead_key=lead.key, owner_id=lead.owner_id, kind="kept")
        out += notifications_for(runtime, engine, "dead_letter", lead, scores[lead.key], decision, now,
                                 occurrence=f"{res.error_code}:{now.isoformat()}", error=f"{res.error_code}: {res.message}")
    store.add_notifications([row(engine, n, now) for n in out])
    return len(out)


def routed_notifications(
    runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead], scores: Mapping[str, ScoreOutcome],
    decisions: Mapping[str, RoutingDecision], now: datetime,
) -> list[Notification]:
    """A `routed` notification per lead this batch gave a new owner, for each channel whose `when` it matches."""
    out: list[Notification] = []
    for lead in leads:
        decision = decisions.get(lead.key)
        if decision is not None and is_routed(decision):
            out += notifications_for(runtime, engine, "routed", lead, scores[lead.key], decision, now)
    return out


def waits_since(store: Store, runtime: CrmRuntime, engine: EngineConfig) -> dict[str, datetime]:
    """When each of this CRM's waiting leads began waiting; read (before the routing transaction) only when a channel listens."""
    if not any("waiting" in c.on for c in engine.channels):
        return {}
    return {w.lead_key: w.since for w in store.waiting_leads(runtime.crm)}


def waiting_notifications(
    since: Mapping[str, datetime], runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead],
    scores: Mapping[str, ScoreOutcome], decisions: Mapping[str, RoutingDecision], now: datetime,
) -> list[Notification]:
    """A `waiting` notification for each lead still waiting [notifications] waiting_after_minutes after its wait began
    (`since`: from waits_since). Once per wait: the wait's start is the dedupe key's occurrence.
    """
    waits = [lead for lead in leads if (d := decisions.get(lead.key)) is not None and d.kind == "wait"]
    if not waits or not since:
        return []
    horizon = now - timedelta(minutes=engine.waiting_after_minutes)
    out: list[Notification] = []
    for lead in waits:
        began = since.get(lead.key)
        if began is not None and began <= horizon:
            out += notifications_for(runtime, engine, "waiting", lead, scores[lead.key], decisions[lead.key], now,
                                     occurrence=began.isoformat())
    return out
