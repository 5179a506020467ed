"""The service's background work: the intake worker loop (claimed rows through run_batch) and the poll loops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.adapters.base import CrmAdapter
from connector.config import Settings
from connector.core.clock import Clock
from connector.core.errors import AuthError, BudgetExhaustedError, ConnectorError, RateLimitedError, TransientError
from connector.core.keys import lead_key
from connector.core.models import FetchPage, Lead
from connector.core.retrying import wait_after
from connector.observability.metrics import Metrics
from connector.pipeline.batch import BatchResult, run_batch
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.engine.notifications import rep_channels
from connector.runners.jobs import prepare, rep_urls, sync_once
from connector.runners.notify import deliver
from connector.runners.service.intake import FindsLeadsByEmail, IntakeQueue
from connector.state.erasure import forget
from connector.state.store import IntakeItem, Store

log = logging.getLogger("connector.service")

# A claimed intake row not finished by then is taken over by another worker (a crashed replica's work).
CLAIM_LEASE_SECONDS = 120
# Rows claimed per worker batch (HubSpot batch/read takes 100 ids per call; the adapter splits).
CLAIM_LIMIT = 500
# An idle worker still looks in the store this often: rows left by a restart or another replica.
IDLE_SWEEP_SECONDS = 5.0
# After a failed batch the worker waits before trying again (doubling up to the cap).
FAILURE_BACKOFF_SECONDS = (1.0, 60.0)
# Intake rows that failed with a CRM error (5xx, timeout, 429) wait this long before the next try (doubling up to the cap).
CRM_RETRY_BACKOFF_SECONDS = (5.0, 900.0)
# Finished intake rows and delivered event ids are kept this long (HubSpot's retries end well before).
INTAKE_RETENTION = timedelta(days=7)


INTAKE_THREAD = "connector-intake-worker"


NOTIFY_THREAD = "connector-notify"
NOTIFY_INTERVAL_SECONDS = 1.0


def poll_thread(crm: str) -> str:
    """The name of a CRM's poll loop thread."""
    return f"connector-poll-{crm}"


@dataclass
class CrmState:
    """One CRM as the worker sees it: its prepared runtime, or why it has none, and its budget pause."""

    runtime: CrmRuntime | None = None
    problem: str | None = "not prepared yet"
    over_budget_until: datetime | None = None
    prepared_at: float = 0.0


def _parse_resume(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def page_for(adapter: CrmAdapter, items: Sequence[IntakeItem]) -> FetchPage:
    """The FetchPage a group of intake rows stands for: leads re-read by id (never the payload's values)."""
    ids: list[str] = []
    deleted: list[str] = []
    merged: dict[str, str] = {}
    emails: list[str] = []
    for item in items:
        if item.kind == "record":
            ids.append(item.ref)
        elif item.kind == "deleted":
            deleted.append(item.ref)
        elif item.kind == "merged" and item.target:
            merged[item.ref] = item.target
            ids.append(item.target)
        elif item.kind == "email":
            emails.append(item.ref)
    leads: list[Lead] = adapter.fetch_by_ids(list(dict.fromkeys(ids))) if ids else []
    if emails and isinstance(adapter, FindsLeadsByEmail):
        known = {lead.id for lead in leads}
        leads += [lead for lead in adapter.find_leads_by_email(sorted(set(emails))) if lead.id not in known]
    return FetchPage(leads=tuple(leads), cursor=None, deleted_ids=tuple(deleted), merged=merged)


class Worker:
    """The intake worker and the poll loops of one service, sharing each CRM's runtime and lock."""

    def __init__(
        self, settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], *, clock: Clock, metrics: Metrics,
        engine: EngineConfig, queue: IntakeQueue, worker_id: str, stop: threading.Event,
        on_turn: Callable[[str], None] = lambda _thread: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self.metrics = metrics
        self.engine = engine
        self.queue = queue
        self.worker_id = worker_id
        self.stop = stop
        self.on_turn = on_turn  # told the thread's name after each completed loop turn (the supervisor's heartbeat)
        self.crm = {crm: CrmState() for crm in adapters}
        self.locks = {crm: threading.Lock() for crm in adapters}
        self._last_purge = 0.0
        self._cycle = threading.Condition()
        self.cycles = 0  # worker loop turns completed (wait_until re-checks after each, never on the clock)
        self.polls_done = 0
        self.crm_failures: dict[str, int] = {}  # intake batches failed with a CRM error in a row, per CRM (the backoff)

    def run(self) -> None:
        """The intake worker: prepare each CRM, then claim and process pending rows until stopped.

        Supervised: after an exception (the store unreachable) it is started again, and first puts back
        what it had claimed, so nothing waits for the claim lease to run out."""
        backoff = 0.0
        self.store.release_intake_claims(self.worker_id, self.clock.now())
        self.prepare_all(bootstrap=True)
        while not self.stop.is_set():
            # First turn: intake left pending by a previous run (or a crashed replica) goes first.
            ok = self.process_pending()
            backoff = 0.0 if ok else min(FAILURE_BACKOFF_SECONDS[1], max(FAILURE_BACKOFF_SECONDS[0], backoff * 2))
            self._maybe_purge()
            self.on_turn(INTAKE_THREAD)
            with self._cycle:
                self.cycles += 1
                self._cycle.notify_all()
            if backoff and self.stop.wait(backoff):
                return
            self.queue.take(timeout=IDLE_SWEEP_SECONDS, window=self.settings.service.micro_batch_ms / 1000, stop=self.stop)
            self.metrics.queue_depth.set(len(self.queue))

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds, re-checked after each worker turn and each poll; False on timeout."""
        with self._cycle:
            return self._cycle.wait_for(predicate, timeout)

    def process_pending(self) -> bool:
        """Claim pending intake rows and run them through the pipeline, CRM by CRM; False if a batch failed."""
        ok = True
        while not self.stop.is_set():
            items = self.store.claim_intake(self.worker_id, self.clock.now(), lease_seconds=CLAIM_LEASE_SECONDS, limit=CLAIM_LIMIT)
            if not items:
                return ok
            self.queue.discard([i.id for i in items])
            self.metrics.queue_depth.set(len(self.queue))
            by_crm: dict[str, list[IntakeItem]] = {}
            for item in items:
                by_crm.setdefault(item.crm, []).append(item)
            for crm, group in by_crm.items():
                ok = self._process_group(crm, group) and ok
            if not ok or self.stop.is_set():
                return ok
        return ok

    def _process_group(self, crm: str, items: list[IntakeItem]) -> bool:
        ids = [i.id for i in items]
        adapter = self.adapters.get(crm)
        if adapter is None:
            self.store.finish_intake(ids, self.clock.now(), status="failed", error=f"{crm} is not enabled in this configuration")
            return True
        try:
            batch = self._run_group(crm, adapter, items)
        except BudgetExhaustedError as exc:
            self.crm[crm].over_budget_until = _parse_resume(exc.resumes_at)
            self.store.release_intake(ids, self.clock.now(), error=str(exc), count_attempt=False)
            self.metrics.batches.labels(crm, "over_budget").inc()
            log.warning("intake paused: %s", exc, extra={"crm": crm, "rows": len(ids)})
            return False
        except AuthError as exc:
            self.crm[crm].problem = str(exc)
            self.crm[crm].runtime = None
            self.store.release_intake(ids, self.clock.now(), error=str(exc), count_attempt=False)
            self.metrics.batches.labels(crm, "auth_error").inc()
            log.error("intake paused: %s", exc, extra={"crm": crm, "rows": len(ids)})
            return False
        except Exception as exc:  # the service loop is a process boundary: a bad batch must not stop the worker
            self._fail(crm, items, exc)
            return False
        self._finish(crm, items, batch)
        return True

    def _run_group(self, crm: str, adapter: CrmAdapter, items: list[IntakeItem]) -> BatchResult:
        """One CRM's claimed rows as one batch through the pipeline, then their privacy deletions."""
        state = self.crm[crm]
        if state.runtime is None:
            self.prepare_crm(crm, bootstrap=True)
        runtime = state.runtime
        assert runtime is not None
        page = page_for(adapter, items)
        with self.locks[crm]:
            batch = run_batch(self.store, runtime, self.engine, page, self.clock.now(), clock=self.clock)
        # After the batch, so decisions it recorded for the same person are erased too.
        self._forget([i for i in items if i.kind == "forget"])
        return batch

    def _finish(self, crm: str, items: list[IntakeItem], batch: BatchResult) -> None:
        done = self.clock.now()
        self.crm_failures[crm] = 0
        self.store.finish_intake([i.id for i in items], done)
        self.metrics.batches.labels(crm, "ok").inc()
        self.metrics.observe_batch(crm, batch)
        self.metrics.observe_latency(crm, {i.id: i.accepted_at for i in items if i.source == "webhook"}, done)
        log.info(
            "intake batch processed",
            extra={
                "crm": crm, "rows": len(items), "fetched": batch.fetched, "written": batch.written,
                "dead_lettered": batch.dead_lettered, "correlation_ids": sorted({i.correlation_id for i in items if i.correlation_id}),
            },
        )

    def _forget(self, items: Sequence[IntakeItem]) -> None:
        """HubSpot privacy deletions: erase what the store holds about each lead (issue 9), as `connector forget` does."""
        for item in items:
            key = lead_key(item.crm, item.object_type, item.ref)
            report = forget(self.store, lead_key=key, now=self.clock.now())
            # Counts and the lead key only: the person's email is never logged.
            log.info(
                "privacy deletion: personal data erased",
                extra={"crm": item.crm, "lead_key": key, "events": report.events, "decisions": report.decisions,
                       "dead_letters": report.dead_letters, "outbox": report.outbox, "intake": report.intake,
                       "correlation_id": item.correlation_id},
            )

    def _fail(self, crm: str, items: list[IntakeItem], exc: Exception) -> None:
        now = self.clock.now()
        if isinstance(exc, TransientError):
            self._retry_later(crm, items, exc, now)
            return
        max_attempts = self.settings.sync.max_dead_letter_attempts
        give_up = [i for i in items if i.attempts + 1 >= max_attempts]
        retry = [i for i in items if i.attempts + 1 < max_attempts]
        kind = "transient" if isinstance(exc, TransientError) else "error"
        message = f"{type(exc).__name__}: {exc}"
        if retry:
            self.store.release_intake([i.id for i in retry], now, error=message, count_attempt=True)
        for item in give_up:
            # Never retried forever; the record is visible in the dead-letter list [architecture: Bad records don't block good ones].
            self.store.add_dead_letter(
                crm=crm, object_type=item.object_type, record_id=item.ref, field=None, code=f"intake_{kind}",
                message=f"gave up after {item.attempts + 1} attempts: {message}", payload={"intake": item.kind, "source": item.source},
                now=now,
            )
        if give_up:
            self.store.finish_intake([i.id for i in give_up], now, status="failed", error=message)
            self.metrics.dead_letters.labels(crm).inc(len(give_up))
        self.metrics.batches.labels(crm, kind).inc()
        log.error(
            "intake batch failed; %d row(s) will be retried, %d dead-lettered", len(retry), len(give_up),
            exc_info=not isinstance(exc, ConnectorError), extra={"crm": crm, "error": message},
        )

    def _retry_later(self, crm: str, items: list[IntakeItem], exc: TransientError, now: datetime) -> None:
        """A CRM outage or slow-down (5xx, timeout, 429) uses no attempt: the rows wait with backoff (or the CRM's
        Retry-After) and are dead-lettered only once older than [service] intake_max_age_hours."""
        self.crm_failures[crm] = self.crm_failures.get(crm, 0) + 1
        delay = wait_after(self.crm_failures[crm], exc, base_delay=CRM_RETRY_BACKOFF_SECONDS[0], max_delay=CRM_RETRY_BACKOFF_SECONDS[1])
        max_age_hours = self.settings.service.intake_max_age_hours
        too_old = [i for i in items if now - i.accepted_at >= timedelta(hours=max_age_hours)]
        retry = [i for i in items if now - i.accepted_at < timedelta(hours=max_age_hours)]
        message = f"{type(exc).__name__}: {exc}"
        if retry:
            self.store.release_intake([i.id for i in retry], now, error=message, count_attempt=False, retry_at=now + timedelta(seconds=delay))
        for item in too_old:
            hours = (now - item.accepted_at).total_seconds() / 3600
            self.store.add_dead_letter(
                crm=crm, object_type=item.object_type, record_id=item.ref, field=None, code="intake_max_age",
                message=f"gave up: the CRM kept failing for {hours:.1f} h, past [service] intake_max_age_hours = {max_age_hours:g}: {message}",
                payload={"intake": item.kind, "source": item.source}, now=now,
            )
        if too_old:
            self.store.finish_intake([i.id for i in too_old], now, status="failed", error=message)
            self.metrics.dead_letters.labels(crm).inc(len(too_old))
        self.metrics.batches.labels(crm, "rate_limited" if isinstance(exc, RateLimitedError) else "transient").inc()
        log.warning(
            "intake batch failed with a CRM error; %d row(s) retried in %.0f s, %d past the maximum age dead-lettered",
            len(retry), delay, len(too_old), extra={"crm": crm, "error": message},
        )

    def prepare_all(self, *, bootstrap: bool) -> None:
        for crm in self.adapters:
            if self.stop.is_set():
                return
            if self.crm[crm].runtime is not None:  # a restarted worker keeps what it prepared
                continue
            try:
                self.prepare_crm(crm, bootstrap=bootstrap)
            except Exception as exc:  # readiness reports it; the worker retries on the next batch
                log.error("cannot prepare %s: %s", crm, exc, exc_info=not isinstance(exc, ConnectorError), extra={"crm": crm})

    def prepare_crm(self, crm: str, *, bootstrap: bool) -> None:
        """Read the CRM's owners (and bootstrap its fields) into a fresh runtime; the problem is kept for readiness."""
        state = self.crm[crm]
        try:
            with self.locks[crm]:
                runtime = prepare(self.settings, {crm: self.adapters[crm]}, bootstrap=bootstrap)[crm]
        except AuthError as exc:
            state.problem = str(exc)
            state.runtime = None
            raise
        except Exception as exc:
            state.problem = f"{type(exc).__name__}: {exc}"
            raise
        state.runtime = runtime
        state.problem = None
        state.prepared_at = self.clock.monotonic()

    def _maybe_purge(self) -> None:
        if self.clock.monotonic() - self._last_purge < 3600:
            return
        self._last_purge = self.clock.monotonic()
        removed = self.store.purge_intake(self.clock.now() - INTAKE_RETENTION)
        if removed:
            log.info("purged finished intake rows and delivery ids", extra={"rows": removed})

    def notify(self) -> None:
        """The notification loop: send what routing queued (webhook- and poll-driven alike) about once a second."""
        extra = rep_channels(rep_urls(self.settings))
        while not self.stop.is_set():
            deliver(self.store, self.settings.notifications, self.clock, drain_seconds=0, extra_channels=extra,
                    observe=lambda channel, event, outcome: self.metrics.notifications.labels(channel, event, outcome).inc())
            self.on_turn(NOTIFY_THREAD)
            self.stop.wait(NOTIFY_INTERVAL_SECONDS)

    def poll(self, crm: str) -> None:
        """One CRM's poll loop: an incremental sync every [sync] poll_interval_seconds until stopped."""
        interval = self.settings.sync.poll_interval_seconds
        while not self.stop.is_set():
            try:
                with self.locks[crm]:
                    summary = sync_once(
                        self.settings, self.store, {crm: self.adapters[crm]}, self.clock,
                        on_batch=lambda c, batch, _s: self._observe_poll_batch(c, batch),
                        on_notification=lambda channel, event, outcome: self.metrics.notifications.labels(channel, event, outcome).inc(),
                    )
                if summary.aborted:
                    self.metrics.polls.labels(crm, "aborted").inc()
                else:
                    self.metrics.polls.labels(crm, "ok").inc()
                    # A successful sync re-read owners: the worker's runtime is refreshed with it.
                    self._refresh_runtime(crm)
            except AuthError as exc:
                self.crm[crm].problem = str(exc)
                self.metrics.polls.labels(crm, "auth_error").inc()
                log.error("poll failed: %s", exc, extra={"crm": crm})
            except ConnectorError as exc:  # a CRM error: the next interval tries again
                self.metrics.polls.labels(crm, "error").inc()
                log.error("poll failed: %s", exc, extra={"crm": crm})
            except Exception:  # the store or a bug: the supervisor logs it, reports it in /readyz and restarts the loop
                self.metrics.polls.labels(crm, "error").inc()
                raise
            self.on_turn(poll_thread(crm))
            with self._cycle:
                self.polls_done += 1
                self._cycle.notify_all()
            self.stop.wait(interval)

    def _observe_poll_batch(self, crm: str, batch: BatchResult) -> None:
        self.metrics.observe_batch(crm, batch)
        self.on_turn(poll_thread(crm))  # a long sync is progress, not a hang

    def _refresh_runtime(self, crm: str) -> None:
        try:
            self.prepare_crm(crm, bootstrap=False)
        except Exception as exc:  # keep the previous runtime; readiness shows the problem
            log.warning("could not refresh %s owners: %s", crm, exc, extra={"crm": crm})
