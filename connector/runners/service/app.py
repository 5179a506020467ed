"""The `connector serve` sidecar: webhook and event intake, the intake worker, poll loops, health, metrics, shutdown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import signal
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.adapters.base import CrmAdapter
from connector.core.clock import Clock, SystemClock
from connector.config import Settings
from connector.core.errors import AuthError, BudgetExhaustedError, ConnectorError, TransientError
from connector.runners.service.events import CRM_KEY_PREFIXES, EventFormatError, parse_segment
from connector.observability.metrics import Metrics
from connector.core.models import Event, FetchPage, Lead
from connector.runners.jobs import compile_engine, prepare, sync_once
from connector.pipeline.batch import CrmRuntime, EngineConfig, aggregate_fold, run_batch
from connector.ops.forget import forget
from connector.state.store import IntakeItem, IntakeRequest, Store
from connector.runners.service.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureVerdict,
    WebhookEvent,
    WebhookPayloadError,
    check_signature,
    parse_payload,
    plan_intake,
    request_uri,
)

if TYPE_CHECKING:  # the subscriber (and grpc) is imported only when CDC is on
    from connector.runners.cdc_subscriber import CdcSubscriber

log = logging.getLogger("connector.service")

# HubSpot retries a 503 honouring Retry-After [crm-behaviour: HubSpot webhook deliveries]; Segment retries 5xx with backoff.
RETRY_AFTER_SECONDS = 5
# A claimed intake row not finished by then is taken over by another worker (a crashed replica's work).
CLAIM_LEASE_SECONDS = 120
# Rows claimed per worker batch (HubSpot batch/read takes 100 ids per call; the adapter splits).
CLAIM_LIMIT = 500
# An idle worker still looks in the store this often: rows left by a restart or another replica.
IDLE_SWEEP_SECONDS = 5.0
# After a failed batch the worker waits before trying again (doubling up to the cap).
FAILURE_BACKOFF_SECONDS = (1.0, 60.0)
# Finished intake rows and delivered event ids are kept this long (HubSpot's retries end well before).
INTAKE_RETENTION = timedelta(days=7)
# stop() returns this long before the grace period ends, leaving time to release claims and exit.
_EXIT_MARGIN_SECONDS = 0.5
EVENTS_SIGNATURE_HEADER = "x-signature"
REQUEST_ID_HEADER = "x-request-id"

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class CorrelationFilter(logging.Filter):
    """Stamps each log record with the current request's correlation id (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        cid = correlation_id.get()
        if cid is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = cid
        return True


@runtime_checkable
class FindsLeadsByEmail(Protocol):
    """An adapter that can find leads by email (behaviour events keyed by email re-score their lead)."""

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]: ...


class IntakeQueue:
    """The bounded hand-off between request handlers and the worker: intake row ids, with reservations.

    A handler reserves room *before* it writes to the store, so a full queue is refused with 503
    before anything is accepted, and an accepted row always finds its place.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[int] = deque()
        self._reserved = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items) + self._reserved

    def try_reserve(self, n: int) -> bool:
        with self._cond:
            if n > 0 and len(self._items) + self._reserved + n > self.capacity:
                return False
            self._reserved += n
            return True

    def push(self, ids: Sequence[int], reserved: int) -> None:
        with self._cond:
            self._reserved -= reserved
            self._items.extend(ids)
            self._cond.notify_all()

    def cancel(self, reserved: int) -> None:
        self.push((), reserved)

    def discard(self, ids: Sequence[int]) -> None:
        """Forget ids the worker claimed straight from the store (they no longer wait)."""
        gone = set(ids)
        with self._cond:
            if gone and self._items:
                self._items = deque(i for i in self._items if i not in gone)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self, *, timeout: float, window: float, stop: threading.Event) -> list[int]:
        """Wait up to `timeout` for a first item, then gather more for `window` seconds (micro-batching)."""
        with self._cond:
            if not self._items:
                self._cond.wait_for(lambda: bool(self._items) or stop.is_set(), timeout=timeout)
            if self._items and window > 0 and not stop.is_set():
                self._cond.wait_for(lambda: stop.is_set(), timeout=window)
            taken = list(self._items)
            self._items.clear()
            return taken


class Problem(BaseModel):
    """An error answer: what failed, and the request's correlation id."""

    detail: str
    correlation_id: str | None = None


class WebhookAccepted(BaseModel):
    """A HubSpot delivery taken in: durably queued work, duplicates and own-write echoes."""

    events: int
    accepted_records: int
    duplicates: int
    echoes: int
    ignored: int


class EventsAccepted(BaseModel):
    """Behaviour events stored, and the leads queued for a re-score."""

    received: int
    stored: int
    duplicates: int
    rescoring: int


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


_HUBSPOT_EVENT_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "items": {
        "type": "object",
        "required": ["eventId", "subscriptionType", "objectId", "occurredAt"],
        "properties": {
            "eventId": {"type": "integer"},
            "subscriptionId": {"type": "integer"},
            "portalId": {"type": "integer"},
            "appId": {"type": "integer"},
            "occurredAt": {"type": "integer", "description": "epoch milliseconds"},
            "subscriptionType": {"type": "string", "example": "contact.propertyChange"},
            "attemptNumber": {"type": "integer"},
            "objectId": {"type": "integer"},
            "objectTypeId": {"type": "string"},
            "changeSource": {"type": "string"},
            "sourceId": {"type": "string"},
            "propertyName": {"type": "string"},
            "propertyValue": {"type": "string"},
            "primaryObjectId": {"type": "integer"},
            "mergedObjectIds": {"type": "array", "items": {"type": "integer"}},
            "newObjectId": {"type": "integer"},
        },
    },
}
_SEGMENT_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "timestamp"],
    "properties": {
        "type": {"type": "string", "enum": ["track", "page", "identify"]},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "userId": {"type": "string"},
        "messageId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
    },
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Malformed body", 401: "Bad or missing signature / credentials", 404: "Not enabled",
            413: "Body too large", 503: "Not accepting work now; retry after Retry-After seconds"}
    return {code: {"model": Problem, "description": text[code]} for code in codes}


def is_authorized_event_request(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Segment-style auth: Basic with the shared secret as username, or X-Signature = hex HMAC-SHA256(secret, body)."""
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), secret.encode())
    signature = headers.get(EVENTS_SIGNATURE_HEADER, "").strip().lower()
    if signature:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())
    return False


def webhook_intake_rows(
    events: Sequence[WebhookEvent], *, app_id: str | None, object_type: str, correlation: str | None
) -> list[IntakeRequest]:
    """The intake rows a set of (new) HubSpot events asks for: re-fetch, delete, re-key after a merge, forget
    (a privacy deletion: queued like the rest, so it is durable before the 2xx and survives a restart)."""
    plan = plan_intake(events, app_id=app_id, object_type=object_type)
    rows = [IntakeRequest("hubspot", object_type, "record", rid, None, "webhook", correlation) for rid in plan.refetch_ids]
    rows += [IntakeRequest("hubspot", object_type, "deleted", rid, None, "webhook", correlation) for rid in plan.deleted_ids]
    rows += [IntakeRequest("hubspot", object_type, "merged", old, new, "webhook", correlation) for old, new in plan.merged.items()]
    rows += [IntakeRequest("hubspot", object_type, "forget", rid, None, "webhook", correlation) for rid in plan.forget_ids]
    return rows


def delivery_id(event: WebhookEvent) -> str:
    return f"hubspot:{event.portal_id or ''}:{event.event_id}"


class _BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, by Content-Length or while reading; the app sees the buffered body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(max_bytes: int) -> JSONResponse:
    cid = correlation_id.get()
    return JSONResponse({"detail": f"request body larger than {max_bytes} bytes ([service] max_body_bytes)", "correlation_id": cid}, 413)


@dataclass
class _CrmState:
    runtime: CrmRuntime | None = None
    problem: str | None = "not prepared yet"
    over_budget_until: datetime | None = None
    prepared_at: float = 0.0


class Service:
    """One `connector serve` instance: the ASGI app, the intake worker, one poll loop per CRM, shutdown."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        adapters: Mapping[str, CrmAdapter],
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        engine: EngineConfig | None = None,
        budgets: Mapping[str, Callable[[], int]] | None = None,
        worker_id: str | None = None,
        poll: bool | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.adapters = dict(adapters)
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.engine = engine or compile_engine(settings)
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.poll = settings.service.poll if poll is None else poll
        self.queue = IntakeQueue(settings.service.intake_queue_size)
        self.draining = False
        self._drain_started = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cdc: CdcSubscriber | None = None  # the running subscriber, for /readyz
        self._crm = {crm: _CrmState() for crm in self.adapters}
        self._crm_locks = {crm: threading.Lock() for crm in self.adapters}
        self._budgets = dict(budgets or {})
        self._last_purge = 0.0
        self._cycle = threading.Condition()
        self.cycles = 0  # worker loop turns completed (wait_until re-checks after each, never on the clock)
        self.polls_done = 0
        self.metrics.on_scrape(self._refresh_gauges)
        self.app = self._build_app()

    # lifecycle

    def start(self) -> None:
        """Start the worker (which first prepares each CRM and finishes intake left by a previous run) and the poll loops."""
        worker = threading.Thread(target=self._work, name="connector-intake-worker", daemon=True)
        self._threads.append(worker)
        worker.start()
        if self.poll:
            for crm in self.adapters:
                poller = threading.Thread(target=self._poll, args=(crm,), name=f"connector-poll-{crm}", daemon=True)
                self._threads.append(poller)
                poller.start()
        if self.settings.salesforce.cdc_enabled and "salesforce" in self.adapters:
            # Salesforce Change Data Capture (issue 10): events route leads within seconds; the poll loop stays the safety net.
            from connector.runners.cdc_subscriber import run_subscriber

            cdc = threading.Thread(
                target=run_subscriber, args=(self.settings, self.store, self.adapters["salesforce"], self._stop),
                kwargs={"runtime": lambda: self._crm["salesforce"].runtime, "engine": self.engine, "clock": self.clock,
                        "lock": self._crm_locks["salesforce"], "registry": self.metrics.registry,
                        "on_start": lambda subscriber: setattr(self, "_cdc", subscriber)},
                name="connector-cdc-salesforce", daemon=True,
            )
            self._threads.append(cdc)
            cdc.start()

    def begin_drain(self) -> None:
        """Stop taking work: intake answers 503 + Retry-After and /readyz fails, so traffic moves elsewhere."""
        if not self.draining:
            self._drain_started = self.clock.monotonic()
            log.info("draining: intake closed, finishing in-flight work", extra={"worker": self.worker_id})
        self.draining = True

    def stop(self, timeout: float | None = None) -> bool:
        """Drain, let the worker finish its batch, and stop within `timeout` ([service] grace_seconds).

        Work the worker could not finish in time is released back to pending in the store, so a restart
        (or another replica) picks it up; nothing accepted is lost. True when every thread ended in time.
        """
        self.begin_drain()
        # The grace period runs from the signal (uvicorn already spent part of it closing connections).
        budget = self.settings.service.grace_seconds if timeout is None else timeout
        deadline = (self._drain_started if timeout is None else self.clock.monotonic()) + budget - _EXIT_MARGIN_SECONDS
        self._stop.set()
        self.queue.wake()
        clean = True
        for thread in self._threads:
            thread.join(max(0.0, deadline - self.clock.monotonic()))
            clean = clean and not thread.is_alive()
        if not clean:
            released = self.store.release_intake_claims(self.worker_id, self.clock.now())
            log.warning(
                "shutdown grace period ended with work in flight; released it for the next start",
                extra={"released_rows": released, "grace_seconds": budget},
            )
        self._threads = [t for t in self._threads if t.is_alive()]
        return clean

    # the worker

    def _work(self) -> None:
        backoff = 0.0
        self._prepare_all(bootstrap=True)
        while not self._stop.is_set():
            # First turn: intake left pending by a previous run (or a crashed replica) goes first.
            ok = self.process_pending()
            backoff = 0.0 if ok else min(FAILURE_BACKOFF_SECONDS[1], max(FAILURE_BACKOFF_SECONDS[0], backoff * 2))
            self._maybe_purge()
            with self._cycle:
                self.cycles += 1
                self._cycle.notify_all()
            if backoff and self._stop.wait(backoff):
                return
            self.queue.take(timeout=IDLE_SWEEP_SECONDS, window=self.settings.service.micro_batch_ms / 1000, stop=self._stop)
            self.metrics.queue_depth.set(len(self.queue))

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds, re-checked after each worker turn and each poll; False on timeout."""
        with self._cycle:
            return self._cycle.wait_for(predicate, timeout)

    def process_pending(self) -> bool:
        """Claim pending intake rows and run them through the pipeline, CRM by CRM; False if a batch failed."""
        ok = True
        while not self._stop.is_set():
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
            if not ok or self._stop.is_set():
                return ok
        return ok

    def _process_group(self, crm: str, items: list[IntakeItem]) -> bool:
        now = self.clock.now()
        ids = [i.id for i in items]
        adapter = self.adapters.get(crm)
        if adapter is None:
            self.store.finish_intake(ids, now, status="failed", error=f"{crm} is not enabled in this configuration")
            return True
        try:
            state = self._crm[crm]
            if state.runtime is None:
                self._prepare(crm, bootstrap=True)
            runtime = state.runtime
            assert runtime is not None
            page = self._page_for(adapter, items)
            with self._crm_locks[crm]:
                batch = run_batch(self.store, runtime, self.engine, page, self.clock.now())
            # After the batch, so decisions it recorded for the same person are erased too.
            self._forget([i for i in items if i.kind == "forget"])
        except BudgetExhaustedError as exc:
            self._crm[crm].over_budget_until = _parse_resume(exc.resumes_at)
            self.store.release_intake(ids, self.clock.now(), error=str(exc), count_attempt=False)
            self.metrics.batches.labels(crm, "over_budget").inc()
            log.warning("intake paused: %s", exc, extra={"crm": crm, "rows": len(ids)})
            return False
        except AuthError as exc:
            self._crm[crm].problem = str(exc)
            self._crm[crm].runtime = None
            self.store.release_intake(ids, self.clock.now(), error=str(exc), count_attempt=False)
            self.metrics.batches.labels(crm, "auth_error").inc()
            log.error("intake paused: %s", exc, extra={"crm": crm, "rows": len(ids)})
            return False
        except Exception as exc:  # the service loop is a process boundary: a bad batch must not stop the worker
            self._fail(crm, items, exc)
            return False
        done = self.clock.now()
        self.store.finish_intake(ids, done)
        self.metrics.batches.labels(crm, "ok").inc()
        self.metrics.observe_batch(crm, batch)
        self.metrics.observe_latency(crm, {i.id: i.accepted_at for i in items if i.source == "webhook"}, done)
        log.info(
            "intake batch processed",
            extra={
                "crm": crm, "rows": len(ids), "fetched": batch.fetched, "written": batch.written,
                "dead_lettered": batch.dead_lettered, "correlation_ids": sorted({i.correlation_id for i in items if i.correlation_id}),
            },
        )
        return True

    def _forget(self, items: Sequence[IntakeItem]) -> None:
        """HubSpot privacy deletions: erase what the store holds about each lead (issue 9), as `connector forget` does."""
        for item in items:
            key = f"{item.crm}:{item.object_type}:{item.ref}"
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

    def _page_for(self, adapter: CrmAdapter, items: Sequence[IntakeItem]) -> FetchPage:
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

    def _prepare_all(self, *, bootstrap: bool) -> None:
        for crm in self.adapters:
            if self._stop.is_set():
                return
            try:
                self._prepare(crm, bootstrap=bootstrap)
            except Exception as exc:  # readiness reports it; the worker retries on the next batch
                log.error("cannot prepare %s: %s", crm, exc, exc_info=not isinstance(exc, ConnectorError), extra={"crm": crm})

    def _prepare(self, crm: str, *, bootstrap: bool) -> None:
        state = self._crm[crm]
        try:
            with self._crm_locks[crm]:
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

    # the poll loop

    def _poll(self, crm: str) -> None:
        interval = self.settings.sync.poll_interval_seconds
        while not self._stop.is_set():
            try:
                with self._crm_locks[crm]:
                    summary = sync_once(
                        self.settings, self.store, {crm: self.adapters[crm]}, self.clock,
                        on_batch=lambda c, batch, _s: self.metrics.observe_batch(c, batch),
                    )
                if summary.aborted:
                    self.metrics.polls.labels(crm, "aborted").inc()
                else:
                    self.metrics.polls.labels(crm, "ok").inc()
                    # A successful sync re-read owners: the worker's runtime is refreshed with it.
                    self._refresh_runtime(crm)
            except AuthError as exc:
                self._crm[crm].problem = str(exc)
                self.metrics.polls.labels(crm, "auth_error").inc()
                log.error("poll failed: %s", exc, extra={"crm": crm})
            except Exception as exc:  # the poll loop is a process boundary: the next interval tries again
                self.metrics.polls.labels(crm, "error").inc()
                log.error("poll failed: %s", exc, exc_info=not isinstance(exc, ConnectorError), extra={"crm": crm})
            with self._cycle:
                self.polls_done += 1
                self._cycle.notify_all()
            self._stop.wait(interval)

    def _refresh_runtime(self, crm: str) -> None:
        try:
            self._prepare(crm, bootstrap=False)
        except Exception as exc:  # keep the previous runtime; readiness shows the problem
            log.warning("could not refresh %s owners: %s", crm, exc, extra={"crm": crm})

    # health and metrics

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Store reachable, every enabled CRM prepared (authenticated) and not over its daily budget.

        The Salesforce CDC subscriber is reported but does not make the service unready: while it
        reconnects the poll loop keeps every lead moving, and webhooks and events still need this pod.
        """
        checks: dict[str, str] = {}
        checks["store"] = "ok" if self.store.ping() else "unreachable"
        now = self.clock.now()
        for crm, state in self._crm.items():
            if state.problem is not None:
                checks[crm] = state.problem
            elif state.over_budget_until is not None and now < state.over_budget_until:
                checks[crm] = f"daily API budget used up until {state.over_budget_until.isoformat()}"
            else:
                checks[crm] = "ok"
        if self.draining:
            checks["service"] = "shutting down"
        ready = all(v == "ok" for v in checks.values())
        cdc = self._cdc
        if cdc is not None:
            problem = cdc.problem
            checks["salesforce_cdc"] = "ok" if problem is None else f"reconnecting after {problem}; the poll loop keeps syncing"
        return ready, checks

    def _refresh_gauges(self) -> None:
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.intake_pending.set(self.store.count_pending_intake())
        for crm, remaining in self._budgets.items():
            self.metrics.budget_remaining.labels(crm).set(remaining())

    # the ASGI app

    def _unavailable(self, reason: str, endpoint: str) -> JSONResponse:
        self.metrics.rejected_requests.labels(endpoint, "503").inc()
        return JSONResponse(
            {"detail": reason, "correlation_id": correlation_id.get()}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    def _problem(self, status: int, detail: str, endpoint: str) -> JSONResponse:
        self.metrics.rejected_requests.labels(endpoint, str(status)).inc()
        return JSONResponse({"detail": detail, "correlation_id": correlation_id.get()}, status)

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            self.start()
            yield
            await run_in_threadpool(self.stop)

        app = FastAPI(
            title="crm-lead-connector sidecar",
            version="1",
            description="HubSpot webhooks and behaviour events in; owner, score, grade and stage written back.",
            lifespan=lifespan,
        )
        # Inside the correlation middleware (so a 413 is logged with its id), before any handler reads a body.
        app.add_middleware(_BodyLimit, max_bytes=self.settings.service.max_body_bytes)

        @app.middleware("http")
        async def correlate(request: Request, call_next: Callable[[Request], Any]) -> Response:
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            cid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
            token = correlation_id.set(cid)
            started = self.clock.monotonic()
            try:
                response: Response = await call_next(request)
            except Exception:  # process boundary: an unexpected error is a 500 with the id to find it in the logs
                log.exception("request failed", extra={"method": request.method, "path": request.url.path})
                response = JSONResponse({"detail": "internal error; see the logs for this correlation id", "correlation_id": cid}, 500)
            finally:
                correlation_id.reset(token)
            response.headers[REQUEST_ID_HEADER] = cid
            log.info(
                "request",
                extra={
                    "method": request.method, "path": request.url.path, "status": response.status_code,
                    "ms": round((self.clock.monotonic() - started) * 1000, 1), "correlation_id": cid,
                },
            )
            return response

        @app.post(
            "/webhooks/hubspot",
            response_model=WebhookAccepted,
            responses=_responses(400, 401, 404, 413, 503),
            summary="HubSpot webhook deliveries (v3 signature)",
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": _HUBSPOT_EVENT_SCHEMA}}},
                "parameters": [
                    {"name": "X-HubSpot-Signature-v3", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "X-HubSpot-Request-Timestamp", "in": "header", "required": True, "schema": {"type": "string"}},
                ],
            },
        )
        async def hubspot_webhook(request: Request) -> Response:
            """Verify, de-duplicate and durably queue a delivery; the records are re-read by id, never trusted from the payload."""
            return await self._hubspot_webhook(request)

        events_doc = {
            "requestBody": {"required": True, "content": {"application/json": {"schema": _SEGMENT_MESSAGE_SCHEMA}}},
            "security": [{"segmentBasic": []}, {"bodySignature": []}],
        }
        batch_doc = {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["batch"],
                    "properties": {"batch": {"type": "array", "items": _SEGMENT_MESSAGE_SCHEMA}},
                }}},
            },
            "security": events_doc["security"],
        }

        @app.post("/events", response_model=EventsAccepted, responses=_responses(400, 401, 413, 503),
                  summary="One behaviour event (Segment track / page / identify)", openapi_extra=events_doc)
        async def post_event(request: Request) -> Response:
            return await self._events(request, batch=False)

        @app.post("/events/batch", response_model=EventsAccepted, responses=_responses(400, 401, 413, 503),
                  summary="Behaviour events in Segment's batch shape", openapi_extra=batch_doc)
        async def post_events_batch(request: Request) -> Response:
            return await self._events(request, batch=True)

        @app.get("/healthz", response_model=Health, summary="The process is alive")
        async def healthz() -> Health:
            return Health(status="ok")

        @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}},
                 summary="Store reachable, CRMs authenticated, not over budget")
        async def readyz() -> Response:
            ready, checks = await run_in_threadpool(self.readiness)
            return JSONResponse(Readiness(ready=ready, checks=checks).model_dump(), 200 if ready else 503)

        @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
                 responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
        async def metrics() -> Response:
            body, content_type = await run_in_threadpool(self.metrics.render)
            return Response(body, media_type=content_type)

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                from fastapi.openapi.utils import get_openapi

                schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
                schema.setdefault("components", {})["securitySchemes"] = {
                    "segmentBasic": {"type": "http", "scheme": "basic", "description": "username = [service] events_secret"},
                    "bodySignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                                      "description": "hex HMAC-SHA256 of the body with [service] events_secret"},
                }
                app.openapi_schema = schema
            return app.openapi_schema

        app.openapi = openapi  # type: ignore[method-assign]
        return app

    async def _hubspot_webhook(self, request: Request) -> Response:
        endpoint = "webhooks.hubspot"
        if self.draining:
            return self._unavailable("shutting down; retry later", endpoint)
        adapter = self.adapters.get("hubspot")
        if adapter is None:
            return self._problem(404, "HubSpot is not enabled in this configuration ([hubspot] enabled)", endpoint)
        secret = self.settings.hubspot.client_secret
        if secret is None:
            log.error("webhook refused: [hubspot] client_secret (or client_secret_file) is not set, signatures cannot be checked")
            return self._unavailable("webhook signing secret not configured ([hubspot] client_secret)", endpoint)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        uri = request_uri(
            request.url.scheme, headers.get("host", request.url.netloc), request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            request.scope.get("query_string", b"").decode("latin-1"), headers,
        )
        verdict = check_signature(
            client_secret=secret.get_secret_value(), method=request.method, uri=uri, body=body,
            signature=headers.get(SIGNATURE_HEADER), timestamp=headers.get(TIMESTAMP_HEADER), now=self.clock.now(),
        )
        if verdict is not SignatureVerdict.VALID:
            log.warning("webhook signature %s", verdict.value, extra={"uri": uri})
            return self._problem(401, f"signature check failed: {verdict.value}", endpoint)
        try:
            events = parse_payload(body)
        except WebhookPayloadError as exc:
            return self._problem(400, str(exc), endpoint)
        app_id, object_type, cid = self.settings.hubspot.app_id, adapter.object_type, correlation_id.get()
        everything = plan_intake(events, app_id=app_id, object_type=object_type)
        room = len(everything.refetch_ids) + len(everything.deleted_ids) + len(everything.merged) + len(everything.forget_ids)
        if not self.queue.try_reserve(room):
            return self._unavailable("intake queue is full; retry later", endpoint)
        by_delivery = {delivery_id(e): e for e in events}

        def rows_for(new: frozenset[str]) -> list[IntakeRequest]:
            fresh = [e for d, e in by_delivery.items() if d in new]
            return webhook_intake_rows(fresh, app_id=app_id, object_type=object_type, correlation=cid)

        try:
            new, row_ids = await run_in_threadpool(self.store.accept_deliveries, list(by_delivery), rows_for, self.clock.now())
        except Exception:  # nothing was accepted: HubSpot retries a 503
            self.queue.cancel(room)
            log.exception("webhook intake could not be stored")
            return self._unavailable("state store unavailable; retry later", endpoint)
        self.queue.push(row_ids, room)
        self.metrics.queue_depth.set(len(self.queue))
        fresh = [e for d, e in by_delivery.items() if d in new]
        plan = plan_intake(fresh, app_id=app_id, object_type=object_type)
        duplicates = len(events) - len(new)
        for outcome, n in (("accepted", len(plan.accepted_event_ids)), ("duplicate", duplicates),
                           ("echo", len(plan.echo_event_ids)), ("ignored", len(plan.ignored_event_ids))):
            if n:
                self.metrics.webhook_events.labels(outcome).inc(n)
        accepted = WebhookAccepted(
            events=len(events), accepted_records=len(row_ids), duplicates=duplicates,
            echoes=len(plan.echo_event_ids), ignored=len(plan.ignored_event_ids),
        )
        log.info("webhook accepted", extra=accepted.model_dump())
        return JSONResponse(accepted.model_dump())

    async def _events(self, request: Request, *, batch: bool) -> Response:
        endpoint = "events.batch" if batch else "events"
        if self.draining:
            return self._unavailable("shutting down; retry later", endpoint)
        secret = self.settings.service.events_secret
        if secret is None:
            log.error("event refused: [service] events_secret (or events_secret_file) is not set")
            return self._unavailable("event receiver secret not configured ([service] events_secret)", endpoint)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not is_authorized_event_request(headers, body, secret.get_secret_value()):
            return self._problem(401, "missing or wrong credentials: Basic auth with the shared secret as username, or X-Signature", endpoint)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._problem(400, f"(body): not valid JSON ({exc})", endpoint)
        if batch:
            messages = payload.get("batch") if isinstance(payload, dict) else payload
            if not isinstance(messages, list):
                return self._problem(400, "batch: must be an array of events ({\"batch\": [...]})", endpoint)
        else:
            messages = [payload]
        parsed: list[Event] = []
        for index, msg in enumerate(messages):
            try:
                parsed.append(parse_segment(msg))
            except EventFormatError as exc:
                return self._problem(400, f"batch[{index}].{exc}" if batch else str(exc), endpoint)
        rows = self._rescore_rows(parsed, correlation_id.get())
        if not self.queue.try_reserve(len(rows)):
            return self._unavailable("intake queue is full; retry later", endpoint)
        try:
            stored, row_ids = await run_in_threadpool(self._store_events, parsed, rows)
        except Exception:  # nothing acknowledged: the sender retries a 503
            self.queue.cancel(len(rows))
            log.exception("events could not be stored")
            return self._unavailable("state store unavailable; retry later", endpoint)
        self.queue.push(row_ids, len(rows))
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.behaviour_events.labels("stored").inc(stored)
        if len(parsed) - stored:
            self.metrics.behaviour_events.labels("duplicate").inc(len(parsed) - stored)
        result = EventsAccepted(received=len(parsed), stored=stored, duplicates=len(parsed) - stored, rescoring=len(row_ids))
        log.info("events accepted", extra=result.model_dump())
        return JSONResponse(result.model_dump())

    def _store_events(self, events: list[Event], rows: list[IntakeRequest]) -> tuple[int, list[int]]:
        stored = self.store.add_events(events, fold=aggregate_fold(self.engine.scoring))
        return stored, self.store.add_intake(rows, self.clock.now())

    def _rescore_rows(self, events: Sequence[Event], cid: str | None) -> list[IntakeRequest]:
        """One intake row per lead the events touch: by CRM key (crm:object:id) or by email in every enabled CRM."""
        rows: dict[tuple[str, str, str], IntakeRequest] = {}
        for event in events:
            key = event.lead_key
            if key.startswith(CRM_KEY_PREFIXES):
                crm, _, rest = key.partition(":")
                object_type, _, record_id = rest.partition(":")
                adapter = self.adapters.get(crm)
                if adapter is not None and object_type == adapter.object_type and record_id:
                    rows[(crm, "record", record_id)] = IntakeRequest(crm, object_type, "record", record_id, None, "events", cid)
                continue
            for crm, adapter in self.adapters.items():
                # Without an email lookup the event still scores at the lead's next sync or webhook.
                if isinstance(adapter, FindsLeadsByEmail):
                    rows[(crm, "email", key)] = IntakeRequest(crm, adapter.object_type, "email", key, None, "events", cid)
        return list(rows.values())


def _parse_resume(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class _Server:
    """uvicorn's Server with SIGTERM / SIGINT first closing intake (503) before uvicorn's own graceful stop."""

    def __init__(self, config: Any, service: Service) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(inner, sig: int, frame: Any) -> None:  # noqa: N805 — uvicorn's signal hook
                service.begin_drain()
                # As uvicorn does, minus re-raising the signal after shutdown: a drained stop exits 0.
                if inner.should_exit and sig == signal.SIGINT:
                    inner.force_exit = True
                else:
                    inner.should_exit = True

            async def startup(inner, sockets: Any = None) -> None:  # noqa: N805
                await super().startup(sockets=sockets)
                for server in inner.servers:
                    for sock in server.sockets:
                        host, port = sock.getsockname()[:2]
                        log.info("listening on http://%s:%d", host, port, extra={"host": host, "port": port})

        self.server = Server(config)

    def run(self) -> None:
        self.server.run()


def run_server(settings: Settings, *, host: str | None = None, port: int | None = None, clock: Clock | None = None) -> None:
    """`connector serve`: open the store and adapters, then serve until SIGTERM (drained within grace_seconds)."""
    import uvicorn

    from connector.core.errors import UsageError
    from connector.runners.jobs import make_adapters
    from connector.observability.metrics import MeteredGuard
    from connector.state.ratelimit import guard_factory

    clock = clock or SystemClock()
    for handler in logging.getLogger("connector").handlers:
        handler.addFilter(CorrelationFilter())
    metrics = Metrics()
    with Store.open(settings.store.url) as store:
        store.claim_process("connector serve", clock.now())  # SQLite: the one process on the file (issue 7)
        shared_guard = guard_factory(store, settings, clock)
        guards = {crm: shared_guard(crm) for crm in settings.enabled_crms}
        adapters = make_adapters(settings, guard_for=lambda crm: MeteredGuard(guards[crm], metrics, crm, clock.monotonic), clock=clock)
        if not adapters:
            raise UsageError("no CRM is enabled: set [hubspot] enabled = true and/or [salesforce] enabled = true")
        budgets = {crm: guard.budget.remaining for crm, guard in guards.items()}
        service = Service(settings, store, adapters, clock=clock, metrics=metrics, budgets=budgets)
        config = uvicorn.Config(
            service.app,
            host=host if host is not None else settings.service.host,
            port=port if port is not None else settings.service.port,
            # Our JSON logging stays in charge; requests are logged with their correlation id by the app.
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            # X-Forwarded-* are read by the webhook check itself (to rebuild the URL HubSpot called).
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, int(settings.service.grace_seconds / 2)),
        )
        _Server(config, service).run()
