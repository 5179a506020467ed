"""Intake: HubSpot webhook deliveries and behaviour events verified, durably queued, and handed to the worker."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from connector.adapters.base import CrmAdapter
from connector.config import Settings
from connector.core.clock import Clock
from connector.core.errors import RejectedDataError
from connector.core.models import Event, Lead
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import EngineConfig
from connector.pipeline.stages import aggregate_fold
from connector.runners.service.events import CRM_KEY_PREFIXES, EventFormatError, parse_segment
from connector.runners.service.http import correlation_id, problem, unavailable
from connector.runners.service.intake_config import EVENTS_NOT_CONFIGURED, WEBHOOKS_NOT_CONFIGURED
from connector.runners.service.limits import BodyFormatError, loads_bounded
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
from connector.state.store import IntakeRequest, Store

log = logging.getLogger("connector.service")

EVENTS_SIGNATURE_HEADER = "x-signature"


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
        # Rows the worker claimed from the store while a handler was between its store write and its push:
        # that handler must not count them as waiting. Emptied whenever no handler holds room.
        self._claimed_before_push: set[int] = set()
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
            early = self._claimed_before_push
            self._items.extend(i for i in ids if i not in early)
            if not self._reserved:
                early.clear()
            self._cond.notify_all()

    def cancel(self, reserved: int) -> None:
        self.push((), reserved)

    def discard(self, ids: Sequence[int]) -> None:
        """Forget ids the worker claimed straight from the store (they no longer wait)."""
        gone = set(ids)
        with self._cond:
            if self._reserved:
                self._claimed_before_push |= gone
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


def is_authorized_event_request(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Segment-style auth: Basic with the shared secret as username, or X-Signature = hex HMAC of the raw body:
    HMAC-SHA1 (what Segment's webhook destination sends [crm-behaviour: Segment webhook signatures]) or HMAC-SHA256."""
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), secret.encode())
    signature = headers.get(EVENTS_SIGNATURE_HEADER, "").strip().lower()
    if signature:
        # The digest's length says which: 40 hex digits for SHA-1, 64 for SHA-256.
        digest = hashlib.sha1 if len(signature) == 2 * hashlib.sha1().digest_size else hashlib.sha256
        expected = hmac.new(secret.encode(), body, digest).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())
    return False


def is_trusted_proxy(peer: str | None, networks: Sequence[str]) -> bool:
    """The peer's address is in one of `networks` (so its X-Forwarded-* / Forwarded headers are believed)."""
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # e.g. a Unix socket peer or a test client's made-up name
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


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


def rescore_rows(events: Sequence[Event], adapters: Mapping[str, CrmAdapter], cid: str | None) -> list[IntakeRequest]:
    """One intake row per lead the events touch: by CRM key (crm:object:id) or by email in every enabled CRM."""
    rows: dict[tuple[str, str, str], IntakeRequest] = {}
    for event in events:
        key = event.lead_key
        if key.startswith(CRM_KEY_PREFIXES):
            crm, _, rest = key.partition(":")
            object_type, _, record_id = rest.partition(":")
            adapter = adapters.get(crm)
            if adapter is not None and object_type == adapter.object_type and record_id:
                rows[(crm, "record", record_id)] = IntakeRequest(crm, object_type, "record", record_id, None, "events", cid)
            continue
        for crm, adapter in adapters.items():
            # Without an email lookup the event still scores at the lead's next sync or webhook.
            if isinstance(adapter, FindsLeadsByEmail):
                rows[(crm, "email", key)] = IntakeRequest(crm, adapter.object_type, "email", key, None, "events", cid)
    return list(rows.values())


class Intake:
    """The request handlers that take work in: each answers only once the work is durable in the store."""

    def __init__(
        self, settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], *, clock: Clock, metrics: Metrics,
        engine: EngineConfig, queue: IntakeQueue, is_draining: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self.metrics = metrics
        self.engine = engine
        self.queue = queue
        self.is_draining = is_draining

    async def hubspot_webhook(self, request: Request) -> Response:
        """Verify, de-duplicate and durably queue a delivery; the records are re-read by id, never trusted from the payload."""
        endpoint = "webhooks.hubspot"
        checked = await self._verified_delivery(request, endpoint)
        if isinstance(checked, Response):
            return checked
        events, object_type = checked
        app_id, cid = self.settings.hubspot.app_id, correlation_id.get()
        everything = plan_intake(events, app_id=app_id, object_type=object_type)
        room = len(everything.refetch_ids) + len(everything.deleted_ids) + len(everything.merged) + len(everything.forget_ids)
        refused = self._reserve(room, endpoint)
        if refused is not None:
            return refused
        by_delivery = {delivery_id(e): e for e in events}

        def rows_for(new: frozenset[str]) -> list[IntakeRequest]:
            fresh = [e for d, e in by_delivery.items() if d in new]
            return webhook_intake_rows(fresh, app_id=app_id, object_type=object_type, correlation=cid)

        try:
            new, row_ids = await run_in_threadpool(self.store.accept_deliveries, list(by_delivery), rows_for, self.clock.now())
        except RejectedDataError as exc:  # a retry would be refused the same way: 400, not an endless 503
            self.queue.cancel(room)
            return problem(self.metrics, 400, f"(body): {exc}", endpoint)
        except Exception:  # nothing was accepted: HubSpot retries a 503
            self.queue.cancel(room)
            log.exception("webhook intake could not be stored")
            return unavailable(self.metrics, "state store unavailable; retry later", endpoint)
        self.queue.push(row_ids, room)
        self.metrics.queue_depth.set(len(self.queue))
        plan = plan_intake([e for d, e in by_delivery.items() if d in new], app_id=app_id, object_type=object_type)
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

    def _reserve(self, room: int, endpoint: str) -> Response | None:
        """Reserve queue room for `room` intake rows: None, or 413 for work that can never fit, 503 while the queue is full."""
        capacity = self.queue.capacity
        if room > capacity:
            detail = (f"(body): needs {room} intake rows but the intake queue holds {capacity} "
                      "([service] intake_queue_size); send fewer leads per request")
            return problem(self.metrics, 413, detail, endpoint)
        if not self.queue.try_reserve(room):
            return unavailable(self.metrics, "intake queue is full; retry later", endpoint)
        return None

    async def _verified_delivery(self, request: Request, endpoint: str) -> tuple[list[WebhookEvent], str] | Response:
        """A delivery's events and HubSpot's object type, once signed and well-formed; else the error answer."""
        if self.is_draining():
            return unavailable(self.metrics, "shutting down; retry later", endpoint)
        adapter = self.adapters.get("hubspot")
        if adapter is None:
            return problem(self.metrics, 404, "HubSpot is not enabled in this configuration ([hubspot] enabled)", endpoint)
        secret = self.settings.hubspot.client_secret
        if secret is None:  # a 404, not a 503: HubSpot would retry a 503 for as long as nobody sets the secret
            log.error("webhook refused: [hubspot] client_secret (or client_secret_file) is not set, signatures cannot be checked")
            return problem(self.metrics, 404, WEBHOOKS_NOT_CONFIGURED, endpoint)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        uri = request_uri(
            request.url.scheme, headers.get("host", request.url.netloc), request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            request.scope.get("query_string", b"").decode("latin-1"), headers,
            trust_forwarded=is_trusted_proxy(request.client.host if request.client else None, self.settings.service.trusted_proxies),
            webhook_url=self.settings.hubspot.webhook_url,
        )
        verdict = check_signature(
            client_secret=secret.get_secret_value(), method=request.method, uri=uri, body=body,
            signature=headers.get(SIGNATURE_HEADER), timestamp=headers.get(TIMESTAMP_HEADER), now=self.clock.now(),
        )
        if verdict is not SignatureVerdict.VALID:
            log.warning("webhook signature %s", verdict.value, extra={"uri": uri})
            return problem(self.metrics, 401, f"signature check failed: {verdict.value}", endpoint)
        try:
            return parse_payload(body), adapter.object_type
        except WebhookPayloadError as exc:
            return problem(self.metrics, 400, str(exc), endpoint)

    async def events(self, request: Request, *, batch: bool) -> Response:
        """Store behaviour events (de-duplicated by message id) and queue a re-score of the leads they touch."""
        endpoint = "events.batch" if batch else "events"
        parsed = await self._verified_events(request, endpoint, batch=batch)
        if isinstance(parsed, Response):
            return parsed
        rows = rescore_rows(parsed, self.adapters, correlation_id.get())
        refused = self._reserve(len(rows), endpoint)
        if refused is not None:
            return refused
        try:
            stored, row_ids = await run_in_threadpool(self._store_events, parsed, rows)
        except RejectedDataError as exc:  # a retry would be refused the same way: 400, not an endless 503
            self.queue.cancel(len(rows))
            return problem(self.metrics, 400, f"(body): {exc}", endpoint)
        except Exception:  # nothing acknowledged: the sender retries a 503
            self.queue.cancel(len(rows))
            log.exception("events could not be stored")
            return unavailable(self.metrics, "state store unavailable; retry later", endpoint)
        self.queue.push(row_ids, len(rows))
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.behaviour_events.labels("stored").inc(stored)
        if len(parsed) - stored:
            self.metrics.behaviour_events.labels("duplicate").inc(len(parsed) - stored)
        result = EventsAccepted(received=len(parsed), stored=stored, duplicates=len(parsed) - stored, rescoring=len(row_ids))
        log.info("events accepted", extra=result.model_dump())
        return JSONResponse(result.model_dump())

    async def _verified_events(self, request: Request, endpoint: str, *, batch: bool) -> list[Event] | Response:
        """The request's events, once authorized and well-formed; else the error answer."""
        if self.is_draining():
            return unavailable(self.metrics, "shutting down; retry later", endpoint)
        secret = self.settings.service.events_secret
        if secret is None:  # a 404, not a 503: Segment would retry a 503 for as long as nobody sets the secret
            log.error("event refused: [service] events_secret (or events_secret_file) is not set")
            return problem(self.metrics, 404, EVENTS_NOT_CONFIGURED, endpoint)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not is_authorized_event_request(headers, body, secret.get_secret_value()):
            return problem(self.metrics, 401, "missing or wrong credentials: Basic auth with the shared secret as username, or X-Signature", endpoint)
        try:
            payload: Any = loads_bounded(body)
        except BodyFormatError as exc:
            return problem(self.metrics, 400, str(exc), endpoint)
        if batch:
            messages = payload.get("batch") if isinstance(payload, dict) else payload
            if not isinstance(messages, list):
                return problem(self.metrics, 400, "batch: must be an array of events ({\"batch\": [...]})", endpoint)
        else:
            messages = [payload]
        parsed: list[Event] = []
        for index, msg in enumerate(messages):
            try:
                parsed.append(parse_segment(msg))
            except EventFormatError as exc:
                return problem(self.metrics, 400, f"batch[{index}].{exc}" if batch else str(exc), endpoint)
        return parsed

    def _store_events(self, events: list[Event], rows: list[IntakeRequest]) -> tuple[int, list[int]]:
        return self.store.accept_events(events, rows, self.clock.now(), fold=aggregate_fold(self.engine.scoring))
