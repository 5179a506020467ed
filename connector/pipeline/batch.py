"""run_batch, the only place the stages are composed, and BatchResult, what one batch did."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from connector.core.clock import Clock
from connector.core.keys import route_scope, waiting_scope
from connector.core.models import Account, FetchPage, Lead, Patch, RoutingDecision
from connector.engine.routing import required_scopes
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.conversions import credit_conversions, is_converted, release_closed
from connector.pipeline.notify import notify_dead_letters, queue, routed_notifications, waiting_notifications, waits_since
from connector.pipeline.outbox import OUTBOX_LEASE_SECONDS, with_pending_writes
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.stages import agreed_values, diff, lead_events, lookup_context, normalize, route, score, write
from connector.state.store import Store

log = logging.getLogger("connector.pipeline")


@dataclass
class BatchResult:
    """What one batch did; summed into a run summary."""

    fetched: int = 0
    skipped: int = 0
    scored: int = 0
    routed: int = 0
    written: int = 0
    unchanged: int = 0
    dead_lettered: int = 0
    waiting: int = 0
    notifications: int = 0  # notifications decided (a dry run: that it would send)
    grades: Counter[str] = field(default_factory=Counter)
    owners: Counter[str] = field(default_factory=Counter)
    patches: list[Patch] = field(default_factory=list)  # non-empty patches only
    planned: dict[str, Patch] = field(default_factory=dict)  # every lead's patch, empty or not, by lead key
    decisions: dict[str, RoutingDecision] = field(default_factory=dict)
    scores: dict[str, ScoreOutcome] = field(default_factory=dict)


class _DryRun(Exception):
    """Raised inside the routing transaction to roll it back in dry-run mode."""


def run_batch(
    store: Store,
    runtime: CrmRuntime,
    engine: EngineConfig,
    page: FetchPage,
    now: datetime,
    *,
    dry_run: bool = False,
    worker: str | None = None,
    lease_seconds: float = OUTBOX_LEASE_SECONDS,
    whole_batches: bool = False,
    clock: Clock | None = None,
    write_now: bool = True,
) -> BatchResult:
    """One page through normalize → score → route → diff → write. Decisions, counters and the outbox commit together.

    `worker` / `lease_seconds`: whose claim the page's writes are sent under, and for how long a killed
    worker's claim keeps them from other replicas. `clock`: the claims' clock (see stages.write).
    `write_now=False`: the page's writes stay queued in the outbox for writer threads (pipeline/overlap.py).
    """
    result = BatchResult(fetched=len(page.leads) + len(page.rejected), dead_lettered=len(page.rejected))
    if not dry_run:
        _dead_letter_rejected(store, runtime, page, now)
    leads, closed = normalize(page)
    result.skipped = len(closed)
    # Conversions are credited to the routed rep: closed ones (Salesforce) with the load release,
    # open ones (a HubSpot contact now a customer) in the routing transaction.
    converted = [lead for lead in page.leads if is_converted(lead, engine)]
    still_open = {lead.key for lead in leads}
    if closed and not dry_run:
        release_closed(store, runtime, engine, closed, now, [lead for lead in converted if lead.key not in still_open])
    if not leads:
        return result
    scores = score(leads, lead_events(store, leads, engine.scoring, now, save=not dry_run), engine.scoring, now)
    # Leads routed before keep their owner: only the others need account / contact matching.
    known = store.get_lead_states([lead.key for lead in leads])
    unrouted = [lead for lead in leads if lead.key not in known or known[lead.key].routed_at is None]
    accounts, contact_owners = lookup_context(runtime, unrouted, engine, now)
    decisions, patches, result.notifications = _route_and_diff(
        store, runtime, engine, leads, scores, [lead for lead in converted if lead.key in still_open],
        accounts, contact_owners, now, dry_run=dry_run,
    )
    _tally(result, leads, scores, decisions, patches)
    if dry_run or not write_now:
        return result
    results = write(store, runtime.adapter, now, worker=worker, lease_seconds=lease_seconds, whole_batches=whole_batches,
                    person_wins=runtime.rules.person_wins, clock=clock)
    for res in results:
        if res.ok:
            result.written += 1
        elif not res.retryable:
            result.dead_lettered += 1
    result.notifications += notify_dead_letters(store, runtime, engine, leads, scores, decisions, results, now)
    return result


def _dead_letter_rejected(store: Store, runtime: CrmRuntime, page: FetchPage, now: datetime) -> None:
    """Records the adapter could not turn into leads go to the dead letters [architecture: Bad records don't block good ones]."""
    for rej in page.rejected:
        store.add_dead_letter(
            crm=runtime.crm, object_type=runtime.adapter.object_type, record_id=rej.record_id, field=rej.field,
            code=rej.code, message=rej.message, payload={}, now=now,
        )


def _route_and_diff(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, leads: Sequence[Lead], scores: Mapping[str, ScoreOutcome],
    converted: Sequence[Lead], accounts: Mapping[str, Account], contact_owners: Mapping[str, str], now: datetime, *,
    dry_run: bool,
) -> tuple[dict[str, RoutingDecision], list[Patch], int]:
    """Route and diff in one transaction with the conversions credited, the agreed values, the outbox writes and
    the notifications (how many: the third value; sent after the CRM write).

    A dry run rolls the transaction back: the decisions and patches are returned, nothing is kept.
    """
    keys = [lead.key for lead in leads]
    patches: list[Patch] = []
    decisions: dict[str, RoutingDecision] = {}
    notes = 0
    since = waits_since(store, runtime, engine)
    try:
        # The per-CRM scope serialises routing of one CRM's leads across workers and replicas.
        scopes = [route_scope(runtime.crm), waiting_scope(runtime.crm), *required_scopes(engine.routing, now)]
        with store.routing_transaction(scopes) as txn:
            states = txn.lead_states(keys)
            credit_conversions(txn, runtime.crm, states, converted)
            decisions = route(txn, leads, scores, states, runtime, engine, accounts, contact_owners, now)
            patches = diff(leads, scores, decisions, with_pending_writes(states, txn.pending_writes(keys)), runtime.rules)
            notifications = [*routed_notifications(runtime, engine, leads, scores, decisions, now),
                             *waiting_notifications(since, runtime, engine, leads, scores, decisions, now)]
            notes = len(notifications)
            if dry_run:
                for n in notifications:
                    log.info("dry run: would notify %s: %s %s", n.channel, n.event, n.lead_key)
                raise _DryRun
            for lead, patch in zip(leads, patches, strict=True):
                agreed = agreed_values(patch, states.get(lead.key))
                if agreed:
                    txn.remember_values(lead.key, agreed, now)
            for patch in patches:
                if not patch.is_empty:
                    txn.enqueue(patch, now)
            queue(txn, engine, notifications, now)
    except _DryRun:
        pass
    return decisions, patches, notes


def _tally(
    result: BatchResult, leads: Sequence[Lead], scores: dict[str, ScoreOutcome], decisions: dict[str, RoutingDecision],
    patches: list[Patch],
) -> None:
    """Count the batch's scores, decisions and patches into `result`."""
    result.scored = len(scores)
    for lead in leads:
        outcome = scores[lead.key]
        result.grades[outcome.primary.grade] += 1
        decision = decisions.get(lead.key)
        if decision is not None and decision.kind not in ("kept", "none", "wait") and decision.owner_id:
            result.routed += 1
        if decision is not None and decision.kind == "wait":
            result.waiting += 1
        if decision is not None and decision.rep and decision.kind != "kept":
            result.owners[decision.rep] += 1
    result.unchanged = sum(1 for p in patches if p.is_empty)
    result.patches = [p for p in patches if not p.is_empty]
    result.planned = {lead.key: p for lead, p in zip(leads, patches, strict=True)}
    result.decisions = decisions
    result.scores = scores
