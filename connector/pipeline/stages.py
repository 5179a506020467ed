"""The six stages, one function each: fetch, normalize, score, route, diff, write (run_batch composes them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from connector.adapters.base import CLAIM_LOST, CrmAdapter
from connector.core.clock import Clock
from connector.core.keys import waiting_scope
from connector.core.models import (
    Account,
    Candidate,
    Contribution,
    Event,
    FetchPage,
    FieldDecision,
    Lead,
    Patch,
    RoutingDecision,
    WriteResult,
)
from connector.engine.diff import PERSON_FIELDS, Desired, DiffRules, plan_write
from connector.engine.routing import (
    AvailabilitySnapshot,
    RoutingContext,
    StateChange,
    apply_change,
    availability_snapshot,
    required_scopes,
    route_lead,
    sla_deadline,
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
from connector.pipeline.conversions import count_routed, rep_conversion_rates
from connector.pipeline.outbox import OUTBOX_LEASE_SECONDS, claim_fence, send, worker_identity
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.waiting import clear_waiting, mark_waiting
from connector.state.store import AggregateFold, LeadState, RoutingTxn, Store


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
    aggs = _stored_aggregates(store, list(dict.fromkeys(k for ks in refs.values() for k in ks)), scoring, save=save)
    out: dict[str, Sequence[Event] | EventAggregates] = {}
    future: list[Lead] = []
    horizon = now.timestamp()
    none = merge_aggregates([], scoring)  # frozen: shared by the leads without events
    for lead in leads:
        parts = [aggs[k] for k in refs[lead.key] if k in aggs]
        merged = parts[0] if len(parts) == 1 else merge_aggregates(parts, scoring) if parts else none
        if merged.newest_at is not None and merged.newest_at > horizon:
            future.append(lead)
        else:
            out[lead.key] = merged
    if future:
        raw = store.events_for([k for lead in future for k in refs[lead.key]])
        for lead in future:
            out[lead.key] = sorted((e for k in refs[lead.key] for e in raw.get(k, ())), key=lambda e: e.occurred_at)
    return out


def _stored_aggregates(store: Store, keys: list[str], scoring: CompiledScoring, *, save: bool) -> dict[str, EventAggregates]:
    """The stored aggregates of these event keys, stale ones rebuilt from their events (and saved unless `save=False`)."""
    aggs: dict[str, EventAggregates] = {}
    stale: list[str] = []
    for key, (signature, data) in store.event_aggregates(keys).items():
        agg = aggregates_from_json(signature, data, scoring)
        if agg is None:
            stale.append(key)
        else:
            aggs[key] = agg
    if not stale:
        return aggs

    def build(evs: Sequence[Event]) -> tuple[str, Mapping[str, Any]]:
        return scoring.signature, aggregates_to_json(aggregate_events(evs, scoring))

    rebuilt = store.rebuild_event_aggregates(stale, build) if save else {
        key: build(evs) for key, evs in store.events_for(stale).items() if evs
    }
    for key, (signature, data) in rebuilt.items():
        agg = aggregates_from_json(signature, data, scoring)
        if agg is not None:
            aggs[key] = agg
    return aggs


def lookup_context(
    runtime: CrmRuntime, leads: Sequence[Lead], engine: EngineConfig, now: datetime
) -> tuple[Mapping[str, Account], Mapping[str, str]]:
    """Accounts by email domain (free-mail domains never looked up) and existing contacts' owners, for these leads.

    Only the leads still to be routed are looked up. The runtime's LookupCache answers across batches: key by
    key (each answer re-used for LOOKUP_MAX_AGE), or from the whole account / contact table read once when
    that costs fewer calls — the same answers either way.
    """
    adapter, cache = runtime.adapter, runtime.account_cache
    if not engine.account_matching or not leads:
        return {}, {}
    domains = {d for lead in leads if (d := lead.email_domain) and d not in engine.free_mail_domains}
    accounts = cache.accounts(adapter, domains, now) if domains else {}
    contact_owners: Mapping[str, str] = {}
    if adapter.object_type != "contacts":
        contact_owners = cache.contact_owners(adapter, {lead.email.lower() for lead in leads if lead.email}, now)
    return accounts, contact_owners


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
    waiting = waiting_scope(runtime.crm)
    scopes = [*required_scopes(engine.routing, now), waiting]
    state = state_from_counters({scope: txn.counters(scope) for scope in scopes})
    context = _contexts(runtime, availability_snapshot(runtime.reps, engine.routing, now), rep_conversion_rates(txn, engine))
    decisions: dict[str, RoutingDecision] = {}
    entries = log_entries()
    for lead in leads:
        key = lead.key
        known = states.get(key)
        if known is not None and known.routed_at is not None:
            decisions[key] = RoutingDecision(
                lead_key=key, owner_id=known.routed_owner_id, rep=known.routed_rep, kind="kept",
                reasons=("routed earlier; a lead is routed once",),
            )
            continue
        domain = lead.email_domain
        outcome = scores[key]
        ctx = context(
            accounts.get(domain) if domain else None, contact_owners.get((lead.email or "").lower()),
            domain in engine.free_mail_domains if domain else False, outcome.is_competitor,
        )
        decision, change = route_lead(lead, outcome.primary, ctx, state, engine.routing, now)
        decisions[key] = decision
        if decision.kind == "wait":
            mark_waiting(txn, runtime.crm, lead, decision, now)
        elif decision.owner_id is not None:
            if state.get(waiting, lead.id):
                clear_waiting(txn, runtime.crm, lead.id, lead.key)
            state = apply_change(state, change)
            record(txn, lead, decision, change, outcome, engine, now, kind="route", entries=entries)
    return decisions


def _contexts(
    runtime: CrmRuntime, availability: AvailabilitySnapshot, rates: Mapping[str, float] | None,
) -> Callable[[Account | None, str | None, bool, bool], RoutingContext]:
    """One batch's routing contexts: (account, contact owner, free mail, competitor) -> the lead's context.

    Most leads have no account and no duplicate contact, so four contexts serve them all (a context is frozen).
    """
    shared: dict[tuple[bool, bool], RoutingContext] = {}

    def context(account: Account | None, contact_owner_id: str | None, is_free_mail: bool, is_competitor: bool) -> RoutingContext:
        plain = account is None and contact_owner_id is None
        ctx = shared.get((is_free_mail, is_competitor)) if plain else None
        if ctx is None:
            ctx = RoutingContext(
                reps=runtime.reps, account=account, contact_owner_id=contact_owner_id, is_free_mail=is_free_mail,
                known_owner_ids=runtime.active_owner_ids, queue_owner_ids=runtime.queue_owner_ids,
                kept_queue_ids=runtime.kept_queue_ids, is_competitor=is_competitor, availability=availability,
                conversion_rates=rates,
            )
            if plain:
                shared[(is_free_mail, is_competitor)] = ctx
        return ctx

    return context


def record(
    txn: RoutingTxn, lead: Lead, decision: RoutingDecision, change: StateChange, outcome: ScoreOutcome,
    engine: EngineConfig, now: datetime, *, kind: Literal["route", "reassign"], entries: LogEntries | None = None,
) -> None:
    """Commit one owner decision with `txn`: its counter changes, the decision log entry and the lead's routed state.

    `entries`: the batch's LogEntries (None: this decision's own).
    """
    for op in change.ops:
        if op.kind == "add":
            txn.add(op.scope, op.key, op.value)
        else:
            txn.set(op.scope, op.key, op.value)
    if decision.rep:
        count_routed(txn, lead, decision.rep, engine)
    why = explanation(decision, outcome, entries or log_entries())
    why["lead_created_at"] = lead.created_at  # speed-to-lead in reports
    primary = outcome.primary
    txn.record_decision(
        lead_key=lead.key, kind=kind, owner_id=decision.owner_id, rep=decision.rep, rule=decision.rule,
        pool=decision.pool, strategy=decision.strategy, arm=decision.arm, score=primary.score,
        grade=primary.grade, model=primary.model, explanation=why, created_at=now,
    )
    txn.set_routed(
        lead.key, decision.owner_id, decision.rep, now, sla_due_at=sla_deadline(decision, engine.routing, now),
        initial_status=lead.lead_status or lead.stage if kind == "route" else None, reassignment=kind == "reassign",
    )


_T = TypeVar("_T")


def _shared(entry: Callable[[_T], dict[str, Any]]) -> Callable[[Sequence[_T]], list[dict[str, Any]]]:
    """`entry` of each item, built once per item object and then shared (the entries are only serialized)."""
    seen: dict[int, tuple[_T, dict[str, Any]]] = {}  # by id: holding the item keeps its id its own

    def entries(items: Sequence[_T]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            known = seen.get(id(item))
            if known is None:
                known = seen[id(item)] = (item, entry(item))
            out.append(known[1])
        return out

    return entries


@dataclass(frozen=True, slots=True)
class LogEntries:
    """How the decision log lists score lines and candidates, for one batch.

    Most are the same objects lead after lead (the config's fit and inactivity lines, the routing plan's
    candidates): their entries are built once and shared, which saves building and collecting them per lead.
    """

    lines: Callable[[Sequence[Contribution]], list[dict[str, Any]]]
    candidates: Callable[[Sequence[Candidate]], list[dict[str, Any]]]


def log_entries() -> LogEntries:
    """A batch's LogEntries."""
    return LogEntries(
        _shared(lambda c: {"rule": c.rule, "points": c.points, "source": c.source, "decay": c.decay}),
        _shared(lambda c: {"rep": c.rep, "eligible": c.eligible, "reason": c.reason}),
    )


def explanation(decision: RoutingDecision, outcome: ScoreOutcome, entries: LogEntries) -> dict[str, Any]:
    """The decision log's JSON: why this score, why this owner."""
    return {
        "routing": {
            "kind": decision.kind,
            "rule": decision.rule,
            "pool": decision.pool,
            "strategy": decision.strategy,
            "arm": decision.arm,
            "reasons": list(decision.reasons),
            "candidates": entries.candidates(decision.candidates),
        },
        "score": {
            name: {
                "score": r.score,
                "grade": r.grade,
                "contributions": entries.lines(r.contributions),
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
    # "routed by rule emea", "routed by fallback rule emea", "routed by account match" (never "rule rule emea").
    kind = "" if decision.kind == "rule" else f"{decision.kind.replace('_', ' ')} "
    reason = f"routed by {kind}rule {decision.rule}" if decision.rule else f"routed by {decision.kind.replace('_', ' ')}"
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
    person_wins: frozenset[str] = PERSON_FIELDS,
    clock: Clock | None = None,
) -> list[WriteResult]:
    """Stage 6: flush this CRM's outbox in batches; per-record results are recorded (dead letters for record errors).

    Rows are claimed for this worker with a lease (SKIP LOCKED on PostgreSQL), so replicas flushing
    at once send disjoint writes, and a killed worker's claimed rows return after the lease.
    With `whole_batches`, only full write calls go out and the rest waits in the outbox for the next
    page — pages of 2,000 Salesforce leads would otherwise each end in a partial Collections call.
    `person_wins` ([sync] person_wins) is re-checked on replayed writes.
    With `clock`, claims and their renewals take `now` from `store.shared_clock(clock)` (PostgreSQL's time), so
    a replica whose clock runs ahead does not see another's live claim as run out and send its write too.
    """
    worker = worker or worker_identity()
    results: list[WriteResult] = []
    if whole_batches:
        size = adapter.write_batch_size
        limit = min(limit, store.count_pending_outbox().get(adapter.crm, 0) // size * size)
        if limit <= 0:
            return results
    while True:
        at = store.shared_clock(clock).now() if clock is not None else now
        items = store.claim_outbox(adapter.crm, worker, at, limit=min(limit, 1000), lease_seconds=lease_seconds)
        if not items:
            return results
        outcomes = send(adapter, items, fence=claim_fence(store, worker, lease_seconds, clock), person_wins=person_wins)
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
