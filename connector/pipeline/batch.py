"""The six stages — fetch, normalize, score, route, diff, write — and run_batch(), the only place they are composed."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from connector.adapters.base import CLAIM_LOST, CrmAdapter, WriteFence
from connector.engine.diff import Desired, DiffRules, plan_write
from connector.engine.routing import (
    CONVERTED_SCOPE,
    ROUTED_SCOPE,
    CompiledRouting,
    RoutingContext,
    StateChange,
    apply_change,
    availability_snapshot,
    conversion_rates,
    reassign_lead,
    release_change,
    required_scopes,
    sla_check,
    sla_deadline,
    route_lead,
    state_from_counters,
)
from connector.engine.scoring import (
    CompiledScoring,
    EventAggregates,
    ScoreOutcome,
    aggregate_events,
    aggregates_from_json,
    aggregates_to_json,
    fold_events,
    frozen_builder,
    merge_aggregates,
    score_lead,
)
from connector.core.models import Account, Event, FetchPage, FieldDecision, Lead, Patch, Rep, RoutingDecision, WriteResult
from connector.state.store import AggregateFold, LeadState, OutboxItem, RoutingTxn, Store

log = logging.getLogger("connector.pipeline")

# A write claimed but not completed by then (its worker was killed mid-write) is claimable by any replica.
OUTBOX_LEASE_SECONDS = 120.0
# Fields a person may change in the CRM [architecture: A person's choice wins]: a write replayed after a crash re-checks them first.
PERSON_FIELDS = ("owner_id", "stage", "lead_status")

_worker: tuple[int, str] | None = None


def worker_identity() -> str:
    """This process's name in work claims and leases: "<host>:<pid>:<random>" (new after a fork)."""
    global _worker
    if _worker is None or _worker[0] != os.getpid():
        _worker = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _worker[1]


@dataclass(frozen=True)
class CrmRuntime:
    """Everything one CRM contributes to a run: its adapter, diff rules and the reps resolved against its owners."""

    crm: str
    adapter: CrmAdapter
    rules: DiffRules
    reps: Sequence[Rep]
    active_owner_ids: frozenset[str]
    # domain -> (valid until, account or None): account matching re-used across batches. HubSpot allows
    # 5 searches a second per account, so a search per batch would bound speed-to-lead
    # [crm-behaviour: HubSpot search has its own rate limit].
    account_cache: dict[str, tuple[datetime, Account | None]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class EngineConfig:
    """The compiled engine, shared by every CRM."""

    scoring: CompiledScoring
    routing: CompiledRouting
    free_mail_domains: frozenset[str]
    account_matching: bool = True
    # crm -> stage / status values that mean converted ([reports] converted_stages; Salesforce's IsConverted too)
    converted_stages: Mapping[str, frozenset[str]] = field(default_factory=dict)


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
    grades: Counter[str] = field(default_factory=Counter)
    owners: Counter[str] = field(default_factory=Counter)
    patches: list[Patch] = field(default_factory=list)  # non-empty patches only
    planned: dict[str, Patch] = field(default_factory=dict)  # every lead's patch, empty or not, by lead key
    decisions: dict[str, RoutingDecision] = field(default_factory=dict)
    scores: dict[str, ScoreOutcome] = field(default_factory=dict)



class _DryRun(Exception):
    """Raised inside the routing transaction to roll it back in dry-run mode."""


def fetch(adapter: CrmAdapter, cursor: str | None, *, full: bool) -> Iterator[FetchPage]:
    """Stage 1: pages of leads changed since the cursor (or every lead for a backfill)."""
    return adapter.fetch_all(cursor) if full else adapter.fetch_changed(cursor)


def normalize(page: FetchPage) -> tuple[list[Lead], list[str]]:
    """Stage 2: the page's leads worth processing (latest copy per id), and the ids of closed ones.

    Adapters already translated CRM records to Leads; here converted, archived and merged-away
    leads (and the page's deleted ids) are set aside — never routed or written, but their rep's
    open-lead load is released.
    """
    latest: dict[str, Lead] = {}
    closed: list[str] = list(page.deleted_ids) + list(page.merged)
    for lead in page.leads:
        if lead.is_converted or lead.is_archived or lead.merged_into:
            closed.append(lead.id)
            latest.pop(lead.id, None)
            continue
        latest[lead.id] = lead
    return list(latest.values()), closed


def score(
    leads: Sequence[Lead], events: Mapping[str, Sequence[Event] | EventAggregates], scoring: CompiledScoring, now: datetime,
) -> dict[str, ScoreOutcome]:
    """Stage 3: every lead scored by every model whose audience matches (pure)."""
    return {lead.key: score_lead(lead, events.get(lead.key, ()), scoring, now) for lead in leads}


def aggregate_fold(scoring: CompiledScoring) -> AggregateFold:
    """What the store runs when events arrive: fold them into their key's stored aggregates (O(new events))."""

    def fold(signature: str, data: Any, new_events: Sequence[Event]) -> Mapping[str, Any] | None:
        agg = aggregates_from_json(signature, data, scoring)
        return aggregates_to_json(fold_events(agg, new_events, scoring)) if agg is not None else None

    return fold


def event_refs(lead: Lead) -> list[str]:
    """The keys a lead's events are stored under: its lead key and its lower-case email."""
    email = (lead.email or "").strip().lower()
    return [lead.key, email] if email else [lead.key]


def lead_events(
    store: Store, leads: Sequence[Lead], scoring: CompiledScoring, now: datetime, *, save: bool = True,
) -> dict[str, Sequence[Event] | EventAggregates]:
    """Each lead's scoring input: the aggregates kept with its events (under its key and its email), merged.

    Stale aggregates (new scoring config, purged events) are rebuilt from the events once and saved
    (`save=False`: a dry run keeps them in memory). A lead with events dated after `now` gets its raw
    events instead, so that those are left out exactly as the reference scoring leaves them out.
    """
    refs = {lead.key: event_refs(lead) for lead in leads}
    keys = list(dict.fromkeys(k for ks in refs.values() for k in ks))
    aggs: dict[str, EventAggregates] = {}
    stale: list[str] = []
    for key, (signature, data) in store.event_aggregates(keys).items():
        agg = aggregates_from_json(signature, data, scoring)
        if agg is None:
            stale.append(key)
        else:
            aggs[key] = agg
    if stale:
        def build(evs: Sequence[Event]) -> tuple[str, Mapping[str, Any]]:
            return scoring.signature, aggregates_to_json(aggregate_events(evs, scoring))

        rebuilt = store.rebuild_event_aggregates(stale, build) if save else {
            key: build(evs) for key, evs in store.events_for(stale).items() if evs
        }
        for key, (signature, data) in rebuilt.items():
            agg = aggregates_from_json(signature, data, scoring)
            if agg is not None:
                aggs[key] = agg
    out: dict[str, Sequence[Event] | EventAggregates] = {}
    future: list[Lead] = []
    horizon = now.timestamp()
    for lead in leads:
        parts = [aggs[k] for k in refs[lead.key] if k in aggs]
        merged = parts[0] if len(parts) == 1 else merge_aggregates(parts, scoring)
        if merged.newest_at is not None and merged.newest_at > horizon:
            future.append(lead)
        else:
            out[lead.key] = merged
    if future:
        raw = store.events_for([k for lead in future for k in refs[lead.key]])
        for lead in future:
            out[lead.key] = sorted((e for k in refs[lead.key] for e in raw.get(k, ())), key=lambda e: e.occurred_at)
    return out


def route(
    txn: RoutingTxn,
    leads: Sequence[Lead],
    scores: Mapping[str, ScoreOutcome],
    states: Mapping[str, LeadState],
    runtime: CrmRuntime,
    engine: EngineConfig,
    accounts: Mapping[str, Account],
    contact_owners: Mapping[str, str],
    now: datetime,
) -> dict[str, RoutingDecision]:
    """Stage 4: one owner per lead, decided once [architecture: One owner per lead] and recorded with its counters in `txn`.

    A lead that already has a routing decision keeps it — a re-run, a replay after a crash or a
    second worker never routes it again.
    """
    scopes = [*required_scopes(engine.routing, now), waiting_scope(runtime.crm)]
    state = state_from_counters({scope: txn.counters(scope) for scope in scopes})
    availability = availability_snapshot(runtime.reps, engine.routing, now)  # once per batch, not per lead
    rates = rep_conversion_rates(txn, engine)
    decisions: dict[str, RoutingDecision] = {}
    for lead in leads:
        known = states.get(lead.key)
        if known is not None and known.routed_at is not None:
            decisions[lead.key] = RoutingDecision(
                lead_key=lead.key, owner_id=known.routed_owner_id, rep=known.routed_rep, kind="kept",
                reasons=("routed earlier; a lead is routed once",),
            )
            continue
        domain = lead.email_domain
        outcome = scores[lead.key]
        ctx = RoutingContext(
            reps=runtime.reps,
            account=accounts.get(domain) if domain else None,
            contact_owner_id=contact_owners.get((lead.email or "").lower()),
            is_free_mail=domain in engine.free_mail_domains if domain else False,
            known_owner_ids=runtime.active_owner_ids,
            is_competitor=outcome.is_competitor,
            availability=availability,
            conversion_rates=rates,
        )
        decision, change = route_lead(lead, outcome.primary, ctx, state, engine.routing, now)
        decisions[lead.key] = decision
        if decision.kind == "wait":
            # Nobody available now: remember the lead so the next run re-reads it even if it never changes,
            # and why it waits and until when (status and reports show it).
            txn.set(waiting_scope(runtime.crm), lead.id, 1)
            txn.set_waiting(
                lead.key, runtime.crm, now, cause=decision.wait_cause, pool=decision.pool,
                next_available_at=decision.next_available_at, next_available_rep=decision.next_available_rep,
                reason=next((r for r in reversed(decision.reasons) if r.startswith("waiting:")), ""),
            )
            continue
        if decision.owner_id is None:
            continue
        if state.get(waiting_scope(runtime.crm), lead.id):
            txn.set(waiting_scope(runtime.crm), lead.id, 0)
            txn.clear_waiting(lead.key)
        state = apply_change(state, change)
        record(txn, lead, decision, change, outcome, engine, now, kind="route")
    return decisions


def rep_conversion_rates(txn: RoutingTxn, engine: EngineConfig) -> dict[str, float] | None:
    """Each rep's conversion rate from the store's counts, when some pool weights by conversion (else None: not read)."""
    if not engine.routing.weights_by_conversion:
        return None
    return conversion_rates(txn.counters(ROUTED_SCOPE), txn.counters(CONVERTED_SCOPE), engine.routing.conversion_min_leads)


def is_converted(lead: Lead, engine: EngineConfig) -> bool:
    """Salesforce's IsConverted, or a stage / lead status listed in [reports] converted_stages for the lead's CRM."""
    stages = engine.converted_stages.get(lead.crm, frozenset())
    return lead.is_converted or any(value in stages for value in (lead.stage, lead.lead_status) if value is not None)


def credited_scope(crm: str) -> str:
    """Counter scope marking leads whose conversion was credited to their rep (value 1), so it happens once."""
    return f"credited:{crm}"


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


def record(
    txn: RoutingTxn, lead: Lead, decision: RoutingDecision, change: StateChange, outcome: ScoreOutcome,
    engine: EngineConfig, now: datetime, *, kind: Literal["route", "reassign"],
) -> None:
    """Commit one owner decision with `txn`: its counter changes, the decision log entry and the lead's routed state."""
    for op in change.ops:
        if op.kind == "add":
            txn.add(op.scope, op.key, op.value)
        else:
            txn.set(op.scope, op.key, op.value)
    if decision.rep:
        # Conversion rates count the leads routed to each rep and, later, those of them that convert.
        # A lead already converted when routed says nothing about its rep: neither counted nor credited.
        if is_converted(lead, engine):
            txn.set(credited_scope(lead.crm), lead.id, 1)
        else:
            txn.add(ROUTED_SCOPE, decision.rep, 1)
    txn.record_decision(
        lead_key=lead.key, kind=kind, owner_id=decision.owner_id, rep=decision.rep, rule=decision.rule,
        pool=decision.pool, strategy=decision.strategy, arm=decision.arm, score=outcome.primary.score,
        grade=outcome.primary.grade, model=outcome.primary.model,
        explanation=explanation(decision, outcome) | {"lead_created_at": lead.created_at},  # speed-to-lead in reports
        created_at=now,
    )
    txn.set_routed(
        lead.key, decision.owner_id, decision.rep, now, sla_due_at=sla_deadline(decision, engine.routing, now),
        initial_status=lead.lead_status or lead.stage if kind == "route" else None, reassignment=kind == "reassign",
    )


def waiting_scope(crm: str) -> str:
    """Counter scope listing leads whose routing waits for an available rep (value 1 = waiting)."""
    return f"waiting:{crm}"


def explanation(decision: RoutingDecision, outcome: ScoreOutcome) -> dict[str, Any]:
    """The decision log's JSON: why this score, why this owner."""
    return {
        "routing": {
            "kind": decision.kind,
            "rule": decision.rule,
            "pool": decision.pool,
            "strategy": decision.strategy,
            "arm": decision.arm,
            "reasons": list(decision.reasons),
            "candidates": [{"rep": c.rep, "eligible": c.eligible, "reason": c.reason} for c in decision.candidates],
        },
        "score": {
            name: {
                "score": r.score,
                "grade": r.grade,
                "contributions": [{"rule": c.rule, "points": c.points, "source": c.source, "decay": c.decay} for c in r.contributions],
            }
            for name, r in outcome.by_model.items()
        },
    }


_desired = frozen_builder(Desired)  # positional, in field order: owner_id, score, grade, stage, lead_status, owner_reason


def desired_for(lead: Lead, outcome: ScoreOutcome, decision: RoutingDecision | None) -> Desired:
    """What the engine wants written for one lead."""
    p = outcome.primary
    if decision is None:
        return _desired(None, p.score, p.grade, p.stage, p.lead_status, "")
    reason = f"routed by {decision.kind} rule {decision.rule}" if decision.rule else f"routed by {decision.kind}"
    return _desired(decision.owner_id, p.score, p.grade, p.stage, p.lead_status, reason)


def diff(
    leads: Sequence[Lead],
    scores: Mapping[str, ScoreOutcome],
    decisions: Mapping[str, RoutingDecision],
    states: Mapping[str, LeadState],
    rules: DiffRules,
) -> list[Patch]:
    """Stage 5: the smallest write per lead; unchanged leads produce no patch [architecture: Write only what changed]."""
    patches = []
    for lead in leads:
        state = states.get(lead.key)
        written = state.written if state is not None else {}
        patches.append(plan_write(lead, desired_for(lead, scores[lead.key], decisions.get(lead.key)), written, rules))
    return patches


def with_pending_writes(states: Mapping[str, LeadState], pending: Mapping[str, Mapping[str, Any]]) -> dict[str, LeadState]:
    """Lead states whose written baseline includes writes still in the outbox.

    A write decided but not yet confirmed (its worker was killed after sending it, or it waits for a
    retry) is the connector's value: if the CRM now shows something else, a person changed it, and
    the next batch must neither queue the same write again nor overwrite that person [architecture: A person's choice wins].
    """
    out = dict(states)
    for key, values in pending.items():
        state = out.get(key) or LeadState(lead_key=key)
        out[key] = replace(state, written={**state.written, **values})
    return out


def agreed_values(patch: Patch, state: LeadState | None) -> dict[str, Any]:
    """Fields the CRM already holds as the connector wants them and that are not yet its baseline."""
    known = state.written if state is not None else {}
    return {
        field: patch.current.get(field)
        for field, decision in patch.decisions.items()
        if decision is FieldDecision.UNCHANGED and (field not in known or known[field] != patch.current.get(field))
    }


def write(
    store: Store,
    adapter: CrmAdapter,
    now: datetime,
    *,
    limit: int = 10_000,
    max_attempts: int = 5,
    worker: str | None = None,
    lease_seconds: float = OUTBOX_LEASE_SECONDS,
    whole_batches: bool = False,
) -> list[WriteResult]:
    """Stage 6: flush this CRM's outbox in batches; per-record results are recorded (dead letters for record errors).

    Rows are claimed for this worker with a lease (SKIP LOCKED on PostgreSQL), so replicas flushing
    at once send disjoint writes, and a killed worker's claimed rows return after the lease.
    With `whole_batches`, only full write calls go out and the rest waits in the outbox for the next
    page — pages of 2,000 Salesforce leads would otherwise each end in a partial Collections call.
    """
    worker = worker or worker_identity()
    results: list[WriteResult] = []
    if whole_batches:
        size = adapter.write_batch_size
        limit = min(limit, store.count_pending_outbox().get(adapter.crm, 0) // size * size)
        if limit <= 0:
            return results
    while True:
        items = store.claim_outbox(adapter.crm, worker, now, limit=min(limit, 1000), lease_seconds=lease_seconds)
        if not items:
            return results
        outcomes = send(adapter, items, fence=claim_fence(store, worker, lease_seconds))
        # A row another replica took over while this one waited is that replica's to finish.
        done = [outcome for outcome in outcomes if outcome[2].error_code != CLAIM_LOST]
        store.complete_outbox(done, now, max_attempts=max_attempts)
        results.extend(res for _, _, res in done)
        if all(not res.ok and res.retryable for _, _, res in outcomes):
            # Nothing went through and everything is retryable: leave it pending for the next run.
            return results
        limit -= len(items)
        if limit <= 0:
            return results


def claim_fence(store: Store, worker: str, lease_seconds: float) -> Callable[[Mapping[int, int]], WriteFence]:
    """The check a write request passes right before it leaves: this worker still holds each row's claim.

    A claim's lease runs from when it was taken; a write that then waits for the shared rate limiter
    or a Retry-After can outlive it, and another replica reclaims the row, re-reads the record and
    sends it too. Two senders of one row can overwrite a person's edit made between their writes
    [architecture: A person's choice wins], so each request renews the claims it carries, and drops the rows it lost.
    """

    def for_rows(outbox_ids: Mapping[int, int]) -> WriteFence:
        def fence(patches: Sequence[Patch], now: datetime) -> list[bool]:
            ids = [outbox_ids[id(patch)] for patch in patches]
            held = store.hold_outbox(ids, worker, now, lease_seconds=lease_seconds)
            return [i in held for i in ids]

        return fence

    return for_rows


def send(
    adapter: CrmAdapter, items: Sequence[OutboxItem], *, fence: Callable[[Mapping[int, int]], WriteFence] | None = None
) -> list[tuple[int, Patch, WriteResult]]:
    """Send claimed writes; (outbox id, patch to record as written, result) for each, in order.

    A reclaimed row (its first worker died after claiming it, or a send failed) may already be in the
    CRM, and a person may have changed the record since: those leads are re-read first. A field the
    CRM already holds as wanted is not sent again; an owner or stage that is neither the value seen at
    decision time nor the connector's is a person's change and is left alone [architecture: A person's choice wins]. Either
    way the decided values become the written baseline, so later diffs see a person's change as one.
    A reclaimed lead the re-read did not return is not sent blind: it stays pending for the next claim.
    `fence` (from claim_fence) gives, for the patches sent, the check run right before each request.
    """
    stale = [item for item in items if item.reclaimed]
    now_in_crm = {lead.id: lead for lead in adapter.fetch_by_ids([i.patch.record_id for i in stale])} if stale else {}
    to_send: list[tuple[OutboxItem, Patch]] = []
    settled: dict[int, WriteResult] = {}
    for item in items:
        patch = item.patch
        if item.reclaimed:
            lead = now_in_crm.get(patch.record_id)
            if lead is None:
                settled[item.id] = WriteResult(
                    patch.crm, patch.object_type, patch.record_id, ok=False, retryable=True, error_code="NOT_REREAD",
                    message="the record was not returned when re-read before a replayed write; it stays pending",
                )
                continue
            fresh = {f: v for f, v in patch.changes.items() if not _settled_in_crm(f, v, getattr(lead, f, None), patch.current.get(f))}
            if len(fresh) < len(patch.changes):
                log.info(
                    "%s %s %s: replayed write re-checked; not sending %s (already in the CRM or changed by a person)",
                    patch.crm, patch.object_type, patch.record_id, ", ".join(sorted(set(patch.changes) - set(fresh))),
                )
            if not fresh:
                settled[item.id] = WriteResult(patch.crm, patch.object_type, patch.record_id, ok=True)
                continue
            patch = replace(patch, changes=fresh)
        to_send.append((item, patch))
    patches = [patch for _, patch in to_send]
    check = fence({id(patch): item.id for item, patch in to_send}) if fence is not None else None
    sent = adapter.write(patches, fence=check) if to_send else []
    by_id = {item.id: res for (item, _), res in zip(to_send, sent, strict=True)}
    return [(item.id, item.patch, settled.get(item.id) or by_id[item.id]) for item in items]


def _settled_in_crm(field: str, want: Any, have: Any, at_decision: Any) -> bool:
    """True when a replayed write of `field` must not be sent: the CRM already holds it, or a person changed it."""
    if _same_value(have, want):
        return True
    return field in PERSON_FIELDS and not _same_value(have, at_decision)


def _same_value(a: Any, b: Any) -> bool:
    if a in (None, "") or b in (None, ""):
        return a in (None, "") and b in (None, "")
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        try:
            return abs(float(a) - float(b)) < 0.005
        except (TypeError, ValueError):
            return False
    return str(a).strip().lower() == str(b).strip().lower()


ACCOUNT_CACHE_TTL = timedelta(minutes=10)


def lookup_context(
    runtime: CrmRuntime, leads: Sequence[Lead], engine: EngineConfig, now: datetime
) -> tuple[Mapping[str, Account], Mapping[str, str]]:
    """Accounts by email domain (free-mail domains never match) and existing contacts' owners, one call set per batch.

    Only the leads still to be routed are looked up; accounts found (or not) are remembered for
    ACCOUNT_CACHE_TTL, so a stream of webhook micro-batches does not spend a search on each.
    """
    adapter, cache = runtime.adapter, runtime.account_cache
    if not engine.account_matching or not leads:
        return {}, {}
    domains = {d for lead in leads if (d := lead.email_domain) and d not in engine.free_mail_domains}
    missing = sorted(d for d in domains if d not in cache or cache[d][0] <= now)
    if missing:
        found = adapter.find_accounts(missing)
        for domain in missing:
            cache[domain] = (now + ACCOUNT_CACHE_TTL, found.get(domain))
    accounts = {d: account for d in domains if (account := cache[d][1]) is not None}
    contact_owners: Mapping[str, str] = {}
    if adapter.object_type != "contacts":
        emails = sorted({lead.email.lower() for lead in leads if lead.email})
        contact_owners = adapter.find_contacts_by_email(emails) if emails else {}
    return accounts, contact_owners


def closed_scope(crm: str) -> str:
    """Counter scope marking leads whose open-lead load was released (value 1), so it happens once."""
    return f"closed:{crm}"


def release_closed(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, ids: Sequence[str], now: datetime, converted: Sequence[Lead] = (),
) -> int:
    """Converted, deleted or merged leads stop counting against their rep's open-lead capacity (once each).

    `converted` leads (closed or not: a HubSpot contact that became a customer stays open) are
    credited to the rep they were routed to, once, for conversion weighting.
    """
    keys = {f"{runtime.crm}:{runtime.adapter.object_type}:{rid}": rid for rid in ids}
    released = 0
    scope = closed_scope(runtime.crm)
    waiting = waiting_scope(runtime.crm)
    scopes = [f"route:{runtime.crm}", scope, credited_scope(runtime.crm), waiting, *required_scopes(engine.routing, now)]
    with store.routing_transaction(scopes) as txn:
        states = txn.lead_states(sorted({*keys, *(lead.key for lead in converted)}))
        credit_conversions(txn, runtime.crm, states, converted)
        # A closed lead waits for nobody: it leaves the waiting list instead of being re-read on every run.
        for rid, value in txn.counter_values(waiting, list(keys.values())).items():
            if value:
                txn.set(waiting, rid, 0)
                txn.clear_waiting(f"{runtime.crm}:{runtime.adapter.object_type}:{rid}")
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


def waiting_leads(store: Store, crm: str) -> list[str]:
    """Ids of this CRM's leads still waiting for an available rep."""
    scope = waiting_scope(crm)
    with store.routing_transaction([scope]) as txn:
        return sorted(key for key, value in txn.counters(scope).items() if value > 0)


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
) -> BatchResult:
    """One page through score → route → diff → write. Decisions, counters and the outbox commit together.

    `worker` / `lease_seconds`: whose claim the page's writes are sent under, and for how long a killed
    worker's claim keeps them from other replicas.
    """
    result = BatchResult(fetched=len(page.leads) + len(page.rejected))
    for rej in page.rejected:
        if not dry_run:
            store.add_dead_letter(
                crm=runtime.crm, object_type=runtime.adapter.object_type, record_id=rej.record_id, field=rej.field,
                code=rej.code, message=rej.message, payload={}, now=now,
            )
        result.dead_lettered += 1
    leads, closed = normalize(page)
    result.skipped = len(closed)
    # Conversions are credited to the routed rep: closed ones (Salesforce) with the load release,
    # open ones (a HubSpot contact now a customer) in the routing transaction below.
    converted = [lead for lead in page.leads if is_converted(lead, engine)]
    still_open = {lead.key for lead in leads}
    if closed and not dry_run:
        release_closed(store, runtime, engine, closed, now, [lead for lead in converted if lead.key not in still_open])
    if not leads:
        return result
    keys = [lead.key for lead in leads]
    scores = score(leads, lead_events(store, leads, engine.scoring, now, save=not dry_run), engine.scoring, now)
    result.scored = len(scores)
    # Leads routed before keep their owner: only the others need account / contact matching.
    known = store.get_lead_states(keys)
    unrouted = [lead for lead in leads if lead.key not in known or known[lead.key].routed_at is None]
    accounts, contact_owners = lookup_context(runtime, unrouted, engine, now)

    patches: list[Patch] = []
    decisions: dict[str, RoutingDecision] = {}
    try:
        # The per-CRM scope serialises routing of one CRM's leads across workers and replicas.
        scopes = [f"route:{runtime.crm}", waiting_scope(runtime.crm), *required_scopes(engine.routing, now)]
        with store.routing_transaction(scopes) as txn:
            states = txn.lead_states(keys)
            credit_conversions(txn, runtime.crm, states, [lead for lead in converted if lead.key in still_open])
            decisions = route(txn, leads, scores, states, runtime, engine, accounts, contact_owners, now)
            patches = diff(leads, scores, decisions, with_pending_writes(states, txn.pending_writes(keys)), runtime.rules)
            if dry_run:
                raise _DryRun
            for lead, patch in zip(leads, patches, strict=True):
                agreed = agreed_values(patch, states.get(lead.key))
                if agreed:
                    txn.remember_values(lead.key, agreed, now)
            for patch in patches:
                if not patch.is_empty:
                    txn.enqueue(patch, now)
    except _DryRun:
        pass

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
    if dry_run:
        return result
    for res in write(store, runtime.adapter, now, worker=worker, lease_seconds=lease_seconds, whole_batches=whole_batches):
        if res.ok:
            result.written += 1
        elif not res.retryable:
            result.dead_lettered += 1
    return result


def sla_sweep(store: Store, runtime: CrmRuntime, engine: EngineConfig, now: datetime) -> BatchResult:
    """Reassign this CRM's leads not actioned within routing.sla.minutes to the next eligible rep (at most K times)."""
    result = BatchResult()
    prefix = f"{runtime.crm}:{runtime.adapter.object_type}:"
    due = [s.lead_key for s in store.leads_past_sla(now) if s.lead_key.startswith(prefix)]
    if not due:
        return result
    found = {lead.key: lead for lead in runtime.adapter.fetch_by_ids([key[len(prefix):] for key in due])}
    leads = [lead for lead in found.values() if not (lead.is_converted or lead.is_archived or lead.merged_into)]
    scores = score(leads, lead_events(store, leads, engine.scoring, now), engine.scoring, now)
    stopped = [key for key in due if key not in scores]
    scopes = [f"route:{runtime.crm}", *required_scopes(engine.routing, now)]
    with store.routing_transaction(scopes) as txn:
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
            decision, change = reassign_lead(lead, outcome.primary, view, ctx, state, engine.routing, now, verdict.reason)
            if decision.owner_id is None:
                continue  # nobody else is available: the current owner keeps it and the SLA stays due
            state = apply_change(state, change)
            record(txn, lead, decision, change, outcome, engine, now, kind="reassign")
            patch = plan_write(lead, Desired(owner_id=decision.owner_id, owner_reason=verdict.reason), view.written, runtime.rules)
            if not patch.is_empty:
                txn.enqueue(patch, now)
            result.routed += 1
            result.decisions[lead.key] = decision
            if decision.rep:
                result.owners[decision.rep] += 1
    if stopped:
        store.clear_sla(stopped)
    for res in write(store, runtime.adapter, now):
        result.written += res.ok
        result.dead_lettered += (not res.ok and not res.retryable)
    return result
