"""sync_once and backfill: thin loops over pipeline.run_batch, with cursor discipline and run summaries."""

from __future__ import annotations

import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connector.adapters.base import CallGuard, CrmAdapter, NoGuard
from connector.adapters.crms import DESCRIPTORS, descriptor_for
from connector.canonical import HasFieldReport, report_parse_stats
from connector.canonical.domains import shipped_free_mail_domains
from connector.core.clock import Clock, SystemClock
from connector.config import Settings, SyncSettings
from connector.engine.diff import DiffRules, person_fields
from connector.engine.routing import build_reps, compile_routing, kept_queues
from connector.engine.scoring import compile_scoring
from connector.core.errors import AuthError, BudgetExhaustedError, ConnectorError, CrmApiError, TransientError
from connector.core.models import FetchPage, Patch
from connector.state.erasure import purge_expired_events
from connector.state.ratelimit import budget_remaining
from connector.pipeline.batch import BatchResult, run_batch
from connector.pipeline.overlap import WritePool, read_ahead
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.deactivated import reroute_deactivated
from connector.pipeline.sla import sla_sweep
from connector.pipeline.stages import fetch, write
from connector.pipeline.waiting import waiting_leads
from connector.pipeline.outcomes import DECISION_KINDS, ROUTED_BY, OutcomeTally, outcome_of, positive
from connector.engine.notifications import RepTarget, compile_channels, rep_channels, rep_targets
from connector.runners.notify import deliver
from connector.runners.leases import Replica, help_while_held, helpers_present, keep_leases, poll_lease_name, take_poll_lease
from connector.state.store import Store

log = logging.getLogger("connector.jobs")

STREAM_CHANGED = "changed"
STREAM_ALL = "all"
STREAM_ARCHIVED = "archived"
# Reads ahead and writes in flight spend a few calls before they are needed; below this many calls left in the
# day's budget a run goes page by page instead (and its start-up reads one after another).
OVERLAP_MIN_BUDGET = 1000
# The most calls one page costs (its read, writes and look-ups): a reader thread looks at the budget again only
# after as many pages as could bring it under OVERLAP_MIN_BUDGET at this rate.
CALLS_PER_PAGE_AT_MOST = 100
@dataclass
class RunSummary:
    """The JSON summary a run prints with --json (public interface: keep the key names)."""

    mode: str
    dry_run: bool = False
    fetched: int = 0
    scored: int = 0
    routed: int = 0
    written: int = 0
    unchanged: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    waiting: int = 0  # leads still waiting at the end of the run (a lead re-read by two passes counts once)
    waiting_reasons: dict[str, int] = field(default_factory=dict)  # wait cause -> leads (models.WAIT_CAUSES)
    reassigned: int = 0
    pages: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)
    leads_per_rep: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None
    aborted_reason: str | None = None  # auth | network | budget | crm (abort_reason)
    aborted_crm: str | None = None
    seconds: float = 0.0
    patches: list[Patch] = field(default_factory=list)
    held_elsewhere: list[str] = field(default_factory=list)  # "crm object stream" polled by another replica
    rechecked_waiting: int = 0  # waiting leads re-read (they are in `fetched` too)
    notifications: Counter[str] = field(default_factory=Counter)  # queued (a dry run: would send), sent, retried, failed
    # each lead's grade and decision, counted once per lead (pipeline/outcomes.py has the definitions)
    tally: OutcomeTally = field(default_factory=lambda: OutcomeTally(remember=None), repr=False)

    def __post_init__(self) -> None:
        if self.tally.remember is None:
            # A backfill reads each lead once: it counts them without remembering each one (its memory stays flat).
            self.tally.remember = self.mode != "backfill"
    # lead key -> (wait cause, next available) of each lead whose latest decision in this run is a wait; a run that
    # reads each lead once (a backfill, tally.remember off) keeps only their count and earliest instant instead
    waits: dict[str, tuple[str | None, datetime | None]] = field(default_factory=dict, repr=False)
    waited_once: int = field(default=0, repr=False)
    waited_once_next: datetime | None = field(default=None, repr=False)

    @property
    def next_available_at(self) -> datetime | None:
        """The earliest instant someone becomes available for a lead still waiting (None: none known)."""
        known = [at for _, at in self.waits.values() if at is not None]
        return min([*known, self.waited_once_next] if self.waited_once_next is not None else known, default=None)

    def absorb(self, batch: BatchResult, *, keep_patches: bool) -> None:
        for name in ("fetched", "written", "unchanged", "dead_lettered", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))
        for key, outcome in batch.scores.items():
            self.tally.add(key, outcome_of(batch.decisions.get(key), outcome.primary.grade))
        self.scored, self.routed = self.tally.leads, self.tally.decisions["routed"]
        # The waiting pass re-reads waiting leads and the changed stream may bring them again: a lead
        # counts once, as its latest decision in the run has it.
        reasons = Counter(self.waiting_reasons)
        for key, decision in batch.decisions.items():
            before = self.waits.pop(key, None)
            if before is not None and before[0] is not None:
                reasons[before[0]] -= 1
            if decision.kind == "wait":
                if self.tally.remember:
                    self.waits[key] = (decision.wait_cause, decision.next_available_at)
                else:  # read once: nothing to correct later, so nothing kept per lead (flat memory)
                    self.waited_once += 1
                    at = decision.next_available_at
                    if at is not None and (self.waited_once_next is None or at < self.waited_once_next):
                        self.waited_once_next = at
                if decision.wait_cause is not None:
                    reasons[decision.wait_cause] += 1
        self.waiting = len(self.waits) + self.waited_once
        self.waiting_reasons = {cause: n for cause, n in reasons.items() if n > 0}
        self.grades = positive(self.tally.grades)
        self.leads_per_rep = positive(self.tally.leads_per_rep)
        self.pages += 1
        self.notifications["queued"] += batch.notifications
        if keep_patches:
            self.patches.extend(batch.patches)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "dry_run": self.dry_run, "fetched": self.fetched, "scored": self.scored,
            "routed": self.routed, "written": self.written, "unchanged": self.unchanged,
            "dead_lettered": self.dead_lettered, "skipped": self.skipped, "waiting": self.waiting,
            "waiting_reasons": dict(sorted(self.waiting_reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "next_available_at": self.next_available_at.astimezone(UTC).isoformat() if self.next_available_at else None,
            "reassigned": self.reassigned,
            "pages": self.pages, "api_calls": dict(sorted(self.api_calls.items())), "grades": dict(sorted(self.grades.items())),
            "leads_per_rep": dict(sorted(self.leads_per_rep.items())), "aborted": self.aborted, "seconds": round(self.seconds, 3),
            "held_elsewhere": list(self.held_elsewhere),
            "aborted_reason": self.aborted_reason, "aborted_crm": self.aborted_crm,
            "leads": self.tally.leads, "rechecked_waiting": self.rechecked_waiting,
            "decisions": {kind: self.tally.decisions[kind] for kind in DECISION_KINDS},
            "routed_by": {how: self.tally.routed_by[how] for how in ROUTED_BY},
            "notifications": {k: self.notifications[k] for k in ("queued", "sent", "retried", "failed")},
        }

    def abort(self, exc: ConnectorError, message: str | None = None) -> None:
        """Record why the run stopped early: the message, its reason word and the CRM it concerns."""
        self.aborted = message or str(exc)
        self.aborted_reason = abort_reason(exc)
        crm = getattr(exc, "crm", None)
        self.aborted_crm = crm if isinstance(crm, str) else None


def abort_reason(exc: BaseException) -> str:
    """The word a script branches on when a run stops early: auth, network, budget or crm (store: the state store)."""
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, BudgetExhaustedError):
        return "budget"
    if isinstance(exc, TransientError):
        return "network"
    if isinstance(exc, CrmApiError):
        return "crm"
    return "store"


def compile_engine(settings: Settings) -> EngineConfig:
    """Compile scoring and routing once per process (free-mail domains from their maintained packages)."""
    scoring = compile_scoring(settings.scoring, shipped_free_mail_domains())
    return EngineConfig(
        scoring=scoring,
        routing=compile_routing(settings.routing),
        free_mail_domains=scoring.free_mail,
        account_matching=settings.routing.account_matching,
        converted_stages={crm: frozenset(stages) for crm, stages in settings.reports.converted_stages.items()},
        channels=compile_channels(settings.notifications, rep_urls(settings)),
        waiting_after_minutes=settings.notifications.waiting_after_minutes,
        quiet_hours=settings.notifications.quiet_hours == "working_hours",
        urgent_grades=frozenset(settings.notifications.urgent_grades),
    )


@contextmanager
def start_up_kept_out_of_gc() -> Iterator[None]:
    """For `sync` and `backfill`: what start-up built (modules, config, the store, the adapters) lives as long as
    the run, so it leaves the cyclic collector's view (gc.freeze), and the young generation is collected every
    10,000 allocations instead of 700: a run allocates a few dozen objects per lead, nearly all freed by reference
    counting. Collections cost 0.6 s of the 3.5 s a 10,000-lead page loop spent (issue 18 profile)
    (https://docs.python.org/3/library/gc.html#gc.freeze). Both are undone afterwards (a test process goes on)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def rep_urls(settings: Settings) -> list[RepTarget]:
    """Each configured rep's notify target (the owner is told directly) and manager target (told of SLA breaches)."""
    return rep_targets(settings.routing)


def diff_rules(settings: Settings, crm: str) -> DiffRules:
    return DiffRules(stage_order=descriptor_for(crm).stages(settings), person_wins=person_fields(settings.sync.person_wins))


def make_adapters(settings: Settings, *, guard_for: Callable[[str], CallGuard] | None = None, clock: Clock | None = None) -> dict[str, CrmAdapter]:
    """One adapter per enabled CRM; `guard_for(crm)` supplies each account's shared limiter."""
    clock = clock or SystemClock()
    guard_for = guard_for or (lambda crm: NoGuard())
    grades = tuple(band.name for band in settings.scoring.grades)
    return {
        crm: descriptor.open(settings, guard=guard_for(crm), clock=clock, sleep=clock.sleep, grade_options=grades)
        for crm, descriptor in DESCRIPTORS.items() if descriptor.is_enabled(settings)
    }


def prepare(
    settings: Settings, adapters: Mapping[str, CrmAdapter], *, bootstrap: bool = True, at_once: bool = True,
) -> dict[str, CrmRuntime]:
    """Per CRM: bootstrap the written fields, read owners once per run, resolve reps to owner ids.

    The owners and the fields' schema are independent reads: every CRM's run at once (through the same shared
    limiter), so start-up waits for the slowest of them instead of their sum. `at_once=False` (the day's budget
    nearly used up): one after another, so each call is counted against the budget, and the CRM's count in its
    answer corrects it, before the next call leaves.
    """
    with ThreadPoolExecutor(max_workers=2 * max(len(adapters), 1) if at_once else 1, thread_name_prefix="prepare") as pool:
        booted = [pool.submit(_bootstrap, crm, adapter) for crm, adapter in adapters.items()] if bootstrap else []
        reads = {crm: pool.submit(adapter.fetch_owners) for crm, adapter in adapters.items()}
        owners = {crm: read.result() for crm, read in reads.items()}
        for done in booted:
            done.result()
    reps, warnings = build_reps(settings.routing, owners)
    for warning in warnings:
        log.warning("routing: %s", warning)
    runtimes = {}
    for crm, adapter in adapters.items():
        kept, queue_warnings = kept_queues(settings.routing, owners[crm])
        for warning in queue_warnings:
            log.warning("routing (%s): %s", crm, warning)
        runtimes[crm] = CrmRuntime(
            crm=crm,
            adapter=adapter,
            rules=diff_rules(settings, crm),
            reps=reps,
            active_owner_ids=frozenset(o.id for o in owners[crm] if o.is_active),
            queue_owner_ids=frozenset(o.id for o in owners[crm] if o.is_queue),
            kept_queue_ids=kept,
            record_url=record_url(settings, adapter),
        )
    return runtimes


def _bootstrap(crm: str, adapter: CrmAdapter) -> None:
    try:
        adapter.bootstrap()
    except CrmApiError as exc:
        if exc.status != 409:
            raise
        # Two replicas starting at once both saw a field missing and both created it: the
        # other one won (HTTP 409 already exists); checking again finds it in place.
        log.info("%s: a field was created by another replica meanwhile; checking again", crm)
        adapter.bootstrap()


def record_url(settings: Settings, adapter: CrmAdapter) -> str:
    """The CRM record page notifications link, "{id}" for the record id ("" when not known)."""
    if adapter.crm == "salesforce" and settings.salesforce.instance_url:
        return settings.salesforce.instance_url.rstrip("/") + "/lightning/r/Lead/{id}/view"
    portal_id = getattr(adapter, "portal_id", None)  # HubSpot: GET /account-info/v3/details, only when notifications are on
    portal = portal_id() if adapter.crm == "hubspot" and settings.notifications.enabled and callable(portal_id) else None
    return f"https://app.hubspot.com/contacts/{portal}/record/0-1/{{id}}" if portal else ""


def retry_waiting(store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, summary: RunSummary, *, dry_run: bool) -> None:
    """Leads that waited for an available rep are re-read and routed again (they may never change in the CRM)."""
    ids = waiting_leads(store, runtime.crm)
    for start in range(0, len(ids), 100):
        leads = runtime.adapter.fetch_by_ids(ids[start : start + 100])
        summary.rechecked_waiting += len(leads)
        batch = run_batch(store, runtime, engine, FetchPage(leads=tuple(leads), cursor=None), clock.now(), dry_run=dry_run,
                          clock=clock)
        summary.absorb(batch, keep_patches=dry_run)


def _stream(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, summary: RunSummary, stream: str, *,
    full: bool, dry_run: bool, limit: int | None, replica: Replica,
    on_batch: Callable[[str, BatchResult, RunSummary], None] | None, read_ahead_pages: int = 0, pool: WritePool | None = None,
    ahead: Callable[[], bool] | None = None,
) -> bool:
    """One CRM object's pages since its cursor; True when the stream was read to its end (or to `limit`).

    `read_ahead_pages`: a reader thread fetches that many pages ahead (not with `limit`: no page is read in
    vain) while `ahead()` allows; `pool`: writer threads send the queued writes while the next pages are routed
    (pipeline/overlap.py).
    """
    crm, adapter = runtime.crm, runtime.adapter
    cursor = store.get_cursor(crm, adapter.object_type, stream)
    if full and cursor == "":
        cursor = None  # the previous backfill completed: start a new one
    pages, reader = read_ahead(fetch(adapter, cursor, full=full), read_ahead_pages if limit is None else 0,
                               ahead=ahead)
    try:
        return _pages(store, runtime, engine, clock, summary, stream, pages, full=full, dry_run=dry_run, limit=limit,
                      replica=replica, on_batch=on_batch, pool=pool)
    finally:
        if reader is not None:
            reader.close()


def _pages(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, summary: RunSummary, stream: str,
    pages: Iterable[FetchPage], *, full: bool, dry_run: bool, limit: int | None, replica: Replica,
    on_batch: Callable[[str, BatchResult, RunSummary], None] | None, pool: WritePool | None,
) -> bool:
    """_stream's loop: each page routed, its writes sent (or handed to `pool`), then its cursor saved."""
    crm, adapter = runtime.crm, runtime.adapter
    lease = poll_lease_name(crm, adapter.object_type, stream)
    seen = 0
    for page in pages:
        batch = run_batch(store, runtime, engine, page, clock.now(), dry_run=dry_run, worker=replica.worker,
                          lease_seconds=replica.lease_seconds, whole_batches=True, clock=clock, write_now=pool is None)
        if pool is not None:
            pool.remember(page.leads, batch)
            pool.nudge(len(batch.patches))
            _take_writes(pool, batch)
        summary.absorb(batch, keep_patches=dry_run)
        if on_batch:
            on_batch(crm, batch, summary)
        held = dry_run or store.acquire_lease(lease, replica.worker, store.shared_clock(clock).now(), ttl_seconds=replica.lease_seconds)
        if not held:
            # This process stalled past its lease and another replica took the object over from the
            # last cursor: leave the cursor to it (the page's routing and writes are durable either way).
            log.warning("lost the poll lease of %s to another replica; stopping this stream", lease)
            return False
        # The cursor moves only after the page is durably handled [architecture: Nothing lost].
        if not dry_run and page.cursor is not None:
            store.set_cursor(crm, adapter.object_type, stream, page.cursor, clock.now())
        seen += len(page.leads)
        if limit is not None and seen >= limit:
            return True
    if full and not dry_run:
        store.set_cursor(crm, adapter.object_type, stream, "", clock.now())
    return True


def _overlap(settings: Settings, store: Store, crm: str, clock: Clock) -> SyncSettings | None:
    """[sync]'s read-ahead and writes in flight, unless the day's API budget is nearly used up: then no call is
    made ahead of need, and the last calls go to the writes of pages already routed (as in a sequential run)."""
    if not _ample_budget(settings, store, [crm], clock):
        log.info("%s: under %d API calls left today; reading and writing one page at a time", crm, OVERLAP_MIN_BUDGET)
        return None
    return settings.sync


def _ample_budget(settings: Settings, store: Store, crms: Iterable[str], clock: Clock) -> bool:
    """Whether every one of `crms` has OVERLAP_MIN_BUDGET calls or more left in the day's budget."""
    return all(budget_remaining(store, settings, crm, clock) >= OVERLAP_MIN_BUDGET for crm in crms)


def _ahead_while_budget(settings: Settings, store: Store, crm: str, clock: Clock) -> Callable[[], bool]:
    """The reader thread's `ahead()`: True while the day's budget keeps OVERLAP_MIN_BUDGET calls, so no page is read
    before it is needed once the budget may not cover routing and writing it (a page read and never routed is a
    call spent for nothing, read again the next day). The budget is read again only when CALLS_PER_PAGE_AT_MOST
    calls a page since the last look could have brought it that low (each page, near the end)."""
    unlooked = 0  # pages that may still be read ahead without looking

    def ahead() -> bool:
        nonlocal unlooked
        if unlooked > 0:
            unlooked -= 1
            return True
        margin = budget_remaining(store, settings, crm, clock) - OVERLAP_MIN_BUDGET
        unlooked = max(0, margin // CALLS_PER_PAGE_AT_MOST)
        return margin >= 0

    return ahead


def _take_writes(pool: WritePool, batch: BatchResult, *, check: bool = True) -> None:
    """The writer threads' results since the last page, counted with this page (a writer's error is raised here)."""
    if check:
        pool.check()
    results, notified = pool.take_results()
    batch.written += sum(1 for res in results if res.ok)
    batch.dead_lettered += sum(1 for res in results if not res.ok and not res.retryable)
    batch.notifications += notified


def _poll_streams(
    store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, summary: RunSummary, *,
    full: bool, dry_run: bool, limit: int | None, replica: Replica,
    on_batch: Callable[[str, BatchResult, RunSummary], None] | None, settings: Settings | None = None,
) -> None:
    """Waiting leads, the changed (or all) stream, then archived leads and the SLA sweep (incremental runs).

    `settings`: [sync] read_ahead_pages / writes_in_flight overlap the stream's reads and writes with its work."""
    crm, adapter = runtime.crm, runtime.adapter
    if not dry_run:
        # A rep who left since the last run: their open leads are routed again now (pipeline/deactivated.py).
        moved = reroute_deactivated(store, runtime, engine, clock.now(), engine.routing.config.reassign_from_inactive, clock)
        summary.reassigned += moved.routed
        summary.written += moved.written
        summary.dead_lettered += moved.dead_lettered
    if not full:
        retry_waiting(store, runtime, engine, clock, summary, dry_run=dry_run)
    stream = STREAM_ALL if full else STREAM_CHANGED
    sync = _overlap(settings, store, crm, clock) if settings is not None and not dry_run else None
    writers = sync.writes_in_flight if sync is not None else 0
    pool = WritePool(store, runtime, engine, clock, threads=writers, worker=replica.worker, lease_seconds=replica.lease_seconds,
                     defer=helpers_present(store, poll_lease_name(crm, adapter.object_type, stream), replica, clock)) if writers > 0 else None
    try:
        done = _stream(store, runtime, engine, clock, summary, stream, full=full, dry_run=dry_run, limit=limit,
                       replica=replica, on_batch=on_batch, read_ahead_pages=sync.read_ahead_pages if sync else 0, pool=pool,
                       ahead=_ahead_while_budget(settings, store, crm, clock) if settings is not None else None)
        if pool is not None:
            pool.finish()  # what the pages left (partial batches too), like the sequential flush below
    finally:
        if pool is not None:
            pool.close()
            # Counted even when the run stops on an error: what was written was written.
            last = BatchResult()
            _take_writes(pool, last, check=False)
            summary.written, summary.dead_lettered = summary.written + last.written, summary.dead_lettered + last.dead_lettered
            summary.notifications["queued"] += last.notifications
    if not dry_run and pool is None:
        # Pages wrote whole batches only; the remainder goes now, in one last (possibly partial) call.
        for res in write(store, adapter, clock.now(), worker=replica.worker, lease_seconds=replica.lease_seconds,
                         person_wins=runtime.rules.person_wins, clock=clock):
            summary.written += res.ok
            summary.dead_lettered += not res.ok and not res.retryable
    if done and not full and not dry_run:
        for page in adapter.fetch_archived(store.get_cursor(crm, adapter.object_type, STREAM_ARCHIVED)):
            summary.absorb(run_batch(store, runtime, engine, page, clock.now(), worker=replica.worker,
                                     lease_seconds=replica.lease_seconds, clock=clock), keep_patches=False)
            if page.cursor is not None:
                store.set_cursor(crm, adapter.object_type, STREAM_ARCHIVED, page.cursor, clock.now())
        swept = sla_sweep(store, runtime, engine, clock.now(), clock)
        summary.reassigned += swept.routed
        summary.written += swept.written
        summary.dead_lettered += swept.dead_lettered


def _run(
    mode: str,
    settings: Settings,
    store: Store,
    adapters: Mapping[str, CrmAdapter],
    clock: Clock,
    *,
    full: bool,
    dry_run: bool = False,
    limit: int | None = None,
    on_batch: Callable[[str, BatchResult, RunSummary], None] | None = None,
    replica: Replica | None = None,
    restart_completed: bool = True,
    summary: RunSummary | None = None,
    notify: bool = True,
    on_notification: Callable[[str, str, str], None] | None = None,
) -> RunSummary:
    """One sync or backfill pass. `restart_completed=False` (backfill): resume only; a completed backfill is left as is.

    `summary`: the caller's, filled as the run goes, so a run stopped by an error still reports what it did."""
    summary = summary or RunSummary(mode=mode, dry_run=dry_run)
    started = time.monotonic()
    replica = replica or Replica()
    stream = STREAM_ALL if full else STREAM_CHANGED
    if not dry_run:
        # SQLite is for one process: a second one (sync while serve runs) fails here, before any API call.
        store.claim_process(f"connector {mode}", clock.now())
    engine = compile_engine(settings)
    if not notify:
        engine = replace(engine, channels=())  # a backfill notifies nothing unless --notify
    leases: dict[str, str] = {}
    try:
        polled = dict(adapters) if dry_run else _take_polls(store, adapters, clock, summary, stream, replica, leases,
                                                            restart_completed=restart_completed)
        with keep_leases(store, list(leases.values()), replica, clock):
            # Owners and fields are read only for CRMs this replica polls: a replica that skips spends no API calls.
            runtimes = prepare(settings, polled, bootstrap=not dry_run, at_once=_ample_budget(settings, store, polled, clock)) if polled else {}
            if not dry_run:
                purge_expired_events(store, settings, clock.now())  # [privacy] event_retention_days
            for runtime in runtimes.values():
                _poll_streams(store, runtime, engine, clock, summary, full=full, dry_run=dry_run, limit=limit,
                              replica=replica, on_batch=on_batch, settings=settings)
    except BudgetExhaustedError as exc:
        # The CRM's own daily-limit 429 does not say when it resets; the shared budget's error does.
        summary.abort(exc, str(exc) if exc.resumes_at else f"{exc}; resumes when the CRM's daily limit resets")
        log.warning("stopped writing: %s", summary.aborted)
    except (AuthError, TransientError, CrmApiError) as exc:
        summary.abort(exc)  # recorded with the run below; the caller decides what the error means
        raise
    finally:
        for lease in leases.values():
            store.release_lease(lease, replica.worker)
        summary.api_calls = {f"{crm}.{endpoint}": n for crm, a in adapters.items() for endpoint, n in a.calls.snapshot().items()}
        _report_parsing(adapters)
        summary.seconds = time.monotonic() - started
        if not dry_run and settings.notifications.enabled:
            _drain_notifications(settings, store, clock, summary, on_notification)
        if not dry_run:
            store.record_run(mode, summary.as_json(), clock.now())
    return summary


def _report_parsing(adapters: Mapping[str, CrmAdapter]) -> None:
    """Values that did not parse this run: one aggregated warning per CRM (never a line per lead)."""
    for crm, adapter in adapters.items():
        if isinstance(adapter, HasFieldReport):
            report_parse_stats(crm, adapter.parse_stats, log)


def _drain_notifications(
    settings: Settings, store: Store, clock: Clock, summary: RunSummary, observe: Callable[[str, str, str], None] | None,
) -> None:
    """After the CRM writes, never in their way: send for at most [notifications] drain_seconds; the rest goes later."""
    summary.notifications.update(deliver(store, settings.notifications, clock, observe=observe,
                                         extra_channels=rep_channels(rep_urls(settings))))


def _take_polls(
    store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock, summary: RunSummary, stream: str, replica: Replica,
    leases: dict[str, str], *, restart_completed: bool = True,
) -> dict[str, CrmAdapter]:
    """Per CRM: flush its outbox, then take its poll lease; returns the adapters of the CRMs this replica polls.

    Taken leases are added to `leases` (crm -> name) as they are taken, so the caller releases them.
    """
    polled: dict[str, CrmAdapter] = {}
    for crm, adapter in adapters.items():
        # Writes left in the outbox by an interrupted run (or a killed replica) go first: they were
        # decided already. Claims keep replicas from sending the same row twice.
        for res in write(store, adapter, clock.now(), worker=replica.worker, lease_seconds=replica.lease_seconds, clock=clock):
            summary.written += res.ok
        name = poll_lease_name(crm, adapter.object_type, stream)
        at_start = store.get_cursor(crm, adapter.object_type, stream)
        if not take_poll_lease(store, name, replica, clock):
            summary.held_elsewhere.append(f"{crm} {adapter.object_type} {stream}")
            continue
        leases[crm] = name
        if stream == STREAM_ALL and store.get_cursor(crm, adapter.object_type, stream) == "" and (at_start != "" or not restart_completed):
            # Another replica completed this very backfill while we waited for its lease: not again.
            log.info("%s %s: the backfill is complete (done by another replica meanwhile, or resume only)", crm, adapter.object_type)
            continue
        polled[crm] = adapter
    return polled


def sync_once(settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock | None = None, **kw: Any) -> RunSummary:
    """Incremental: leads changed since each CRM's cursor, then exit."""
    return _run("sync", settings, store, adapters, clock or SystemClock(), full=False, **kw)


def backfill(
    settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock | None = None, *, join: bool = False,
    **kw: Any,
) -> RunSummary:
    """Every lead, resumable from the last handled page; --dry-run writes nothing anywhere.

    `join` (`connector backfill --join`): a backfill another replica runs is not left to it alone: this one sends
    the writes it queues (runners/leases.py help_while_held) until it is complete, and takes it over from its
    cursor if that replica stops (its lease runs out)."""
    kw.setdefault("notify", False)  # a first backfill of 50,000 leads must not flood a channel
    clock = clock or SystemClock()
    replica = kw.pop("replica", None) or Replica()
    summary = _run("backfill", settings, store, adapters, clock, full=True, replica=replica, **kw)
    if not join or kw.get("dry_run"):
        return summary
    kw.pop("summary", None)
    while summary.held_elsewhere and not summary.aborted:
        held, summary.held_elsewhere = summary.held_elsewhere, []
        for crm, adapter in adapters.items():
            if f"{crm} {adapter.object_type} {STREAM_ALL}" in held:
                summary.written += _help_backfill(settings, store, crm, adapter, replica, clock)
        # Complete now, or its replica stopped: resume from the cursor (a completed backfill is left as it is).
        _run("backfill", settings, store, adapters, clock, full=True, replica=replica, summary=summary, **{**kw, "restart_completed": False})
    return summary


def _help_backfill(settings: Settings, store: Store, crm: str, adapter: CrmAdapter, replica: Replica, clock: Clock) -> int:
    """Send the writes of `crm`'s backfill another replica runs, until it is complete or that replica's lease is gone."""
    return help_while_held(
        store, adapter, poll_lease_name(crm, adapter.object_type, STREAM_ALL), replica, clock,
        done=lambda: store.get_cursor(crm, adapter.object_type, STREAM_ALL) == "", person_wins=diff_rules(settings, crm).person_wins,
    )
