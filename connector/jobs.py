"""sync_once and backfill: thin loops over pipeline.run_batch, with cursor discipline and run summaries."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.adapters import CallGuard, CrmAdapter, NoGuard
from connector.clock import Clock, SystemClock
from connector.config import Settings
from connector.engine.diff import DiffRules
from connector.engine.routing import build_reps, compile_routing
from connector.engine.scoring import compile_scoring
from connector.errors import BudgetExhaustedError
from connector.models import FetchPage, Patch
from connector.pipeline import BatchResult, CrmRuntime, EngineConfig, fetch, run_batch, sla_sweep, waiting_leads, write
from connector.store import Store

log = logging.getLogger("connector.jobs")

STREAM_CHANGED = "changed"
STREAM_ALL = "all"
STREAM_ARCHIVED = "archived"


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
    waiting: int = 0
    reassigned: int = 0
    pages: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)
    leads_per_rep: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None
    seconds: float = 0.0
    patches: list[Patch] = field(default_factory=list)

    def absorb(self, batch: BatchResult, *, keep_patches: bool) -> None:
        for name in ("fetched", "scored", "routed", "written", "unchanged", "dead_lettered", "skipped", "waiting"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))
        self.grades = dict(Counter(self.grades) + batch.grades)
        self.leads_per_rep = dict(Counter(self.leads_per_rep) + batch.owners)
        self.pages += 1
        if keep_patches:
            self.patches.extend(batch.patches)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "dry_run": self.dry_run, "fetched": self.fetched, "scored": self.scored,
            "routed": self.routed, "written": self.written, "unchanged": self.unchanged,
            "dead_lettered": self.dead_lettered, "skipped": self.skipped, "waiting": self.waiting,
            "reassigned": self.reassigned,
            "pages": self.pages, "api_calls": dict(sorted(self.api_calls.items())), "grades": dict(sorted(self.grades.items())),
            "leads_per_rep": dict(sorted(self.leads_per_rep.items())), "aborted": self.aborted, "seconds": round(self.seconds, 3),
        }


def compile_engine(settings: Settings) -> EngineConfig:
    """Compile scoring and routing once per process."""
    scoring = compile_scoring(settings.scoring)
    return EngineConfig(
        scoring=scoring,
        routing=compile_routing(settings.routing),
        free_mail_domains=scoring.free_mail,
        account_matching=settings.routing.account_matching,
    )


def diff_rules(settings: Settings, crm: str) -> DiffRules:
    if crm == "hubspot":
        return DiffRules(stage_order=tuple(settings.hubspot.stage_order))
    return DiffRules(stage_order=tuple(settings.salesforce.status_order))


def make_adapters(settings: Settings, *, guard_for: Callable[[str], CallGuard] | None = None, clock: Clock | None = None) -> dict[str, CrmAdapter]:
    """One adapter per enabled CRM; `guard_for(crm)` supplies each account's shared limiter."""
    clock = clock or SystemClock()
    guard_for = guard_for or (lambda crm: NoGuard())
    grades = tuple(band.name for band in settings.scoring.grades)
    adapters: dict[str, CrmAdapter] = {}
    if settings.hubspot.enabled:
        from connector.adapters.hubspot import HubSpotAdapter

        adapters["hubspot"] = HubSpotAdapter(settings.hubspot, guard=guard_for("hubspot"), clock=clock, sleep=clock.sleep, grade_options=grades)
    if settings.salesforce.enabled:
        from connector.adapters.salesforce import SalesforceAdapter

        adapters["salesforce"] = SalesforceAdapter(settings.salesforce, guard=guard_for("salesforce"), clock=clock, sleep=clock.sleep, grade_options=grades)
    return adapters


def prepare(settings: Settings, adapters: Mapping[str, CrmAdapter], *, bootstrap: bool = True) -> dict[str, CrmRuntime]:
    """Per CRM: bootstrap the written fields, read owners once per run, resolve reps to owner ids."""
    owners = {crm: adapter.fetch_owners() for crm, adapter in adapters.items()}
    reps, warnings = build_reps(settings.routing, owners)
    for warning in warnings:
        log.warning("routing: %s", warning)
    runtimes = {}
    for crm, adapter in adapters.items():
        if bootstrap:
            adapter.bootstrap()
        runtimes[crm] = CrmRuntime(
            crm=crm,
            adapter=adapter,
            rules=diff_rules(settings, crm),
            reps=reps,
            active_owner_ids=frozenset(o.id for o in owners[crm] if o.is_active),
        )
    return runtimes


def retry_waiting(store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, summary: RunSummary, *, dry_run: bool) -> None:
    """Leads that waited for an available rep are re-read and routed again (they may never change in the CRM)."""
    ids = waiting_leads(store, runtime.crm)
    for start in range(0, len(ids), 100):
        leads = runtime.adapter.fetch_by_ids(ids[start : start + 100])
        batch = run_batch(store, runtime, engine, FetchPage(leads=tuple(leads), cursor=None), clock.now(), dry_run=dry_run)
        summary.absorb(batch, keep_patches=dry_run)


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
) -> RunSummary:
    summary = RunSummary(mode=mode, dry_run=dry_run)
    started = time.monotonic()
    engine = compile_engine(settings)
    runtimes = prepare(settings, adapters, bootstrap=not dry_run)
    stream = STREAM_ALL if full else STREAM_CHANGED
    try:
        for crm, runtime in runtimes.items():
            adapter = runtime.adapter
            if not dry_run:
                # Writes left in the outbox by an interrupted run go first (they were decided already).
                for res in write(store, adapter, clock.now()):
                    summary.written += res.ok
            if not full:
                retry_waiting(store, runtime, engine, clock, summary, dry_run=dry_run)
            cursor = store.get_cursor(crm, adapter.object_type, stream)
            if full and cursor == "":
                cursor = None  # the previous backfill completed: start a new one
            seen = 0
            for page in fetch(adapter, cursor, full=full):
                batch = run_batch(store, runtime, engine, page, clock.now(), dry_run=dry_run)
                summary.absorb(batch, keep_patches=dry_run)
                if on_batch:
                    on_batch(crm, batch, summary)
                # Invariant 6: the cursor moves only after the page is durably handled.
                if not dry_run and page.cursor is not None:
                    store.set_cursor(crm, adapter.object_type, stream, page.cursor, clock.now())
                seen += len(page.leads)
                if limit is not None and seen >= limit:
                    break
            else:
                if full and not dry_run:
                    store.set_cursor(crm, adapter.object_type, stream, "", clock.now())
            if not full and not dry_run:
                for page in adapter.fetch_archived(store.get_cursor(crm, adapter.object_type, STREAM_ARCHIVED)):
                    summary.absorb(run_batch(store, runtime, engine, page, clock.now()), keep_patches=False)
                    if page.cursor is not None:
                        store.set_cursor(crm, adapter.object_type, STREAM_ARCHIVED, page.cursor, clock.now())
                swept = sla_sweep(store, runtime, engine, clock.now())
                summary.reassigned += swept.routed
                summary.written += swept.written
                summary.dead_lettered += swept.dead_lettered
    except BudgetExhaustedError as exc:
        summary.aborted = str(exc)
        log.warning("stopped writing: %s", exc)
    finally:
        summary.api_calls = {f"{crm}.{endpoint}": n for crm, a in adapters.items() for endpoint, n in a.calls.snapshot().items()}
        summary.seconds = time.monotonic() - started
        if not dry_run:
            store.record_run(mode, summary.as_json(), clock.now())
    return summary


def sync_once(settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock | None = None, **kw: Any) -> RunSummary:
    """Incremental: leads changed since each CRM's cursor, then exit."""
    return _run("sync", settings, store, adapters, clock or SystemClock(), full=False, **kw)


def backfill(settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock | None = None, **kw: Any) -> RunSummary:
    """Every lead, resumable from the last handled page; --dry-run writes nothing anywhere."""
    return _run("backfill", settings, store, adapters, clock or SystemClock(), full=True, **kw)
