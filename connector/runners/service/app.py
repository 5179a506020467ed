"""The `connector serve` sidecar: the Service (worker, poll loops, CDC, shutdown) and its FastAPI app, by route group."""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from connector.adapters.base import CrmAdapter
from connector.config import Settings
from connector.core.clock import Clock, SystemClock
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import EngineConfig
from connector.runners.jobs import compile_engine
from connector.runners.service.http import BodyLimit, CorrelationFilter, correlate, responses
from connector.runners.service.intake import EventsAccepted, Intake, IntakeQueue, WebhookAccepted
from connector.runners.service.intake_config import unconfigured_intakes
from connector.runners.service.supervision import Supervisor
from connector.runners.service.worker import INTAKE_THREAD, NOTIFY_THREAD, Worker, poll_thread
from connector.state.store import Store

if TYPE_CHECKING:  # the subscriber (and grpc) is imported only when CDC is on
    from connector.runners.cdc_subscriber import CdcSubscriber

log = logging.getLogger("connector.service")

# /healthz fails when the intake worker completes no loop turn for this long (one turn is at most one claimed batch),
# or a poll loop no turn or batch for [sync] poll_interval_seconds plus this long: a hang a restart cures.
INTAKE_STUCK_SECONDS = 900.0
POLL_STUCK_SECONDS = 1800.0
# stop() returns this long before the grace period ends, leaving time to release claims and exit.
_EXIT_MARGIN_SECONDS = 0.5


class Health(BaseModel):
    status: str
    threads: dict[str, str] | None = None  # when not ok: each dead or stuck background thread, and why


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
        self._budgets = dict(budgets or {})
        self.supervisor = Supervisor(self.clock, self._stop, self.metrics.registry)
        self.worker = Worker(
            settings, store, self.adapters, clock=self.clock, metrics=self.metrics, engine=self.engine, queue=self.queue,
            worker_id=self.worker_id, stop=self._stop, on_turn=self.supervisor.turn,
        )
        self.intake = Intake(
            settings, store, self.adapters, clock=self.clock, metrics=self.metrics, engine=self.engine, queue=self.queue,
            is_draining=lambda: self.draining,
        )
        self.metrics.on_scrape(self._refresh_gauges)
        self.app = build_app(self)

    @property
    def cycles(self) -> int:
        """Worker loop turns completed."""
        return self.worker.cycles

    @property
    def polls_done(self) -> int:
        """Poll loop turns completed (every CRM's)."""
        return self.worker.polls_done

    def start(self) -> None:
        """Start the worker (which first prepares each CRM and finishes intake left by a previous run) and the poll loops."""
        # Every loop is supervised: restarted with backoff after any exception, its state in /readyz and /healthz.
        self._spawn(self.worker.run, INTAKE_THREAD, INTAKE_STUCK_SECONDS)
        if self.poll:
            for crm in self.adapters:
                self._spawn(partial(self.worker.poll, crm), poll_thread(crm),
                            self.settings.sync.poll_interval_seconds + POLL_STUCK_SECONDS)
        if self.settings.notifications.enabled:
            # Sent after the writes, never in their way: a slow channel delays only this loop.
            self._spawn(self.worker.notify, NOTIFY_THREAD, INTAKE_STUCK_SECONDS)
        if self.settings.salesforce.cdc_enabled and "salesforce" in self.adapters:
            # Salesforce Change Data Capture (issue 10): events route leads within seconds; the poll loop stays the safety net.
            from connector.runners.cdc_subscriber import run_subscriber

            cdc = partial(
                run_subscriber, self.settings, self.store, self.adapters["salesforce"], self._stop,
                runtime=lambda: self.worker.crm["salesforce"].runtime, engine=self.engine, clock=self.clock,
                lock=self.worker.locks["salesforce"], registry=self.metrics.registry,
                on_start=lambda subscriber: setattr(self, "_cdc", subscriber),
            )
            # The subscriber may wait for events for long: only its death counts for /healthz, not a quiet stream.
            self._spawn(cdc, "connector-cdc-salesforce", None)

    def _spawn(self, target: Callable[[], None], name: str, stuck_after_seconds: float | None) -> None:
        self._threads.append(self.supervisor.spawn(name, target, stuck_after_seconds=stuck_after_seconds))

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

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds, re-checked after each worker turn and each poll; False on timeout."""
        return self.worker.wait_until(predicate, timeout)

    def process_pending(self) -> bool:
        """Claim pending intake rows and run them through the pipeline, CRM by CRM; False if a batch failed."""
        return self.worker.process_pending()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Store reachable, every enabled CRM prepared (authenticated) and not over its daily budget.

        The Salesforce CDC subscriber is reported but does not make the service unready: while it
        reconnects the poll loop keeps every lead moving, and webhooks and events still need this pod.
        """
        checks: dict[str, str] = {}
        checks["store"] = "ok" if self.store.ping() else "unreachable"
        now = self.clock.now()
        for crm, state in self.worker.crm.items():
            if state.problem is not None:
                checks[crm] = state.problem
            elif state.over_budget_until is not None and now < state.over_budget_until:
                checks[crm] = f"daily API budget used up until {state.over_budget_until.isoformat()}"
            else:
                checks[crm] = "ok"
        if self.draining:
            checks["service"] = "shutting down"
        checks |= self.supervisor.readiness()  # each background loop by thread name: ok, failing (why), dead or stuck
        ready = all(v == "ok" for v in checks.values())
        cdc = self._cdc
        if cdc is not None:
            problem = cdc.problem
            checks["salesforce_cdc"] = "ok" if problem is None else f"reconnecting after {problem}; the poll loop keeps syncing"
        checks.update(unconfigured_intakes(self.settings))  # reported, stays ready: that route answers 404 everywhere
        return ready, checks

    def _refresh_gauges(self) -> None:
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.intake_pending.set(self.store.count_pending_intake())
        for crm, remaining in self._budgets.items():
            self.metrics.budget_remaining.labels(crm).set(remaining())


def build_app(service: Service) -> FastAPI:
    """The service's ASGI app: intake routes, health and metrics, with correlation ids and a body limit."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await run_in_threadpool(service.stop)

    app = FastAPI(
        title="crm-lead-connector sidecar",
        version="1",
        description="HubSpot webhooks and behaviour events in; owner, score, grade and stage written back.",
        lifespan=lifespan,
    )
    # Inside the correlation middleware (so a 413 is logged with its id), before any handler reads a body.
    app.add_middleware(BodyLimit, max_bytes=service.settings.service.max_body_bytes)
    app.middleware("http")(correlate(service.clock.monotonic))
    _webhook_routes(app, service.intake)
    _event_routes(app, service.intake)
    _health_routes(app, service)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


def _webhook_routes(app: FastAPI, intake: Intake) -> None:
    @app.post(
        "/webhooks/hubspot",
        response_model=WebhookAccepted,
        responses=responses(400, 401, 404, 413, 503),
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
        return await intake.hubspot_webhook(request)


def _event_routes(app: FastAPI, intake: Intake) -> None:
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

    @app.post("/events", response_model=EventsAccepted, responses=responses(400, 401, 404, 413, 503),
              summary="One behaviour event (Segment track / page / identify)", openapi_extra=events_doc)
    async def post_event(request: Request) -> Response:
        return await intake.events(request, batch=False)

    @app.post("/events/batch", response_model=EventsAccepted, responses=responses(400, 401, 404, 413, 503),
              summary="Behaviour events in Segment's batch shape", openapi_extra=batch_doc)
    async def post_events_batch(request: Request) -> Response:
        return await intake.events(request, batch=True)


def _health_routes(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "A background thread is dead or stuck"}},
             summary="The process is alive: every background thread running and completing its loop turns")
    async def healthz() -> Response:
        dead = service.supervisor.liveness()
        if dead:
            return JSONResponse(Health(status="unhealthy", threads=dead).model_dump(), 503)
        return JSONResponse(Health(status="ok").model_dump(exclude_none=True))

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}},
             summary="Store reachable, CRMs authenticated, not over budget")
    async def readyz() -> Response:
        ready, checks = await run_in_threadpool(service.readiness)
        return JSONResponse(Readiness(ready=ready, checks=checks).model_dump(), 200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
    async def metrics() -> Response:
        body, content_type = await run_in_threadpool(service.metrics.render)
        return Response(body, media_type=content_type)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the events routes' two security schemes."""

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

    return openapi


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
