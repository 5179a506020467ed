"""The CDC subscriber: LeadChangeEvents → re-read leads → pipeline.run_batch, with a durable replay id and fallback polls.

Guarantees [architecture: No echo loops] [architecture: Nothing lost]:
- The replay id of a batch is stored (cursor salesforce/Lead/cdc, hex) only after run_batch
  returned for its leads; a restart resumes after it (ReplayPreset CUSTOM), so a crash re-delivers
  at most the unfinished batch, and run_batch is idempotent (a routed lead keeps its owner).
- A stored replay id the server refuses (older than the 72-hour retention, or invalid) is cleared,
  an incremental poll (jobs.sync_once, Salesforce only) catches up from the poll cursor, and the
  stream restarts at LATEST; the log line and connector_cdc_fallback_polls{reason} say so.
- Events caused by the connector's own writes (changeOrigin `client=<call_options_client>`) are
  dropped; GAP_* events re-read their records; GAP_OVERFLOW runs a poll.
- Stream failures reconnect with retrying.py's jittered exponential backoff through the given sleeper.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connector.adapters.base import CrmAdapter
from connector.adapters.salesforce.cdc import pubsub_api_pb2 as pb
from connector.adapters.salesforce.cdc.events import CdcPlan, ChangeEvent, plan_events
from connector.adapters.salesforce.cdc.client import REPLAY_CODES, PubSubClient, PubSubSession, open_channel
from connector.core.clock import Clock, SystemClock
from connector.config import Settings
from connector.core.errors import AuthError, BudgetExhaustedError, ConfigError, ConnectorError, CrmApiError, TransientError
from connector.core.models import FetchPage
from connector.pipeline.batch import run_batch
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.core.retrying import backoff_delay, equal_jitter
from connector.state.store import Store

log = logging.getLogger("connector.cdc")

CRM = "salesforce"
OBJECT = "Lead"
REPLAY_STREAM = "cdc"
RECONNECT_BACKOFF = (1.0, 60.0)  # base and cap of the wait between reconnects, in seconds
_LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class CdcMetrics:
    """The subscriber's metrics, registered on the service's registry (or a private one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.registry = r
        self.events = Counter("connector_cdc_events", "Salesforce change events received, by outcome.", ["outcome"], registry=r)
        self.commit_to_write = Histogram(
            "connector_cdc_commit_to_write_seconds", "Seconds from a change event's commit in Salesforce to its batch being written.",
            buckets=_LAG_BUCKETS, registry=r,
        )
        self.reconnects = Counter("connector_cdc_reconnects", "Subscribe streams re-opened after a failure, by reason.", ["reason"], registry=r)
        self.fallback_polls = Counter(
            "connector_cdc_fallback_polls", "Incremental polls run because events could not be replayed, by reason.", ["reason"], registry=r
        )
        self.connected = Gauge("connector_cdc_connected", "1 while the Subscribe stream is open.", registry=r)


@dataclass
class CdcProgress:
    """Counts for tests and logs (the metrics hold the same, labelled)."""

    events: int = 0
    batches: int = 0
    routed_batches: int = 0
    echoes: int = 0
    polls: int = 0
    reconnects: int = 0
    subscriptions: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def replay_to_text(replay_id: bytes) -> str:
    return replay_id.hex()


def replay_from_text(text: str | None) -> bytes | None:
    """The stored replay id, or None (never stored, or cleared after a refusal)."""
    if not text:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        log.warning("stored CDC replay id is not hex; starting from LATEST after a poll")
        return None


class CdcSubscriber:
    """One org's LeadChangeEvent subscription, run in its own thread until `stop` is set.

    `runtime()` gives the CrmRuntime to route with (the service's, refreshed by its poll loop);
    `lock` is held around each batch so the subscriber, the intake worker and the poll loop never
    route the same CRM at once; `poll()` is the fallback incremental sync.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        adapter: CrmAdapter,
        *,
        runtime: Callable[[], CrmRuntime],
        engine: EngineConfig,
        poll: Callable[[], object],
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        lock: AbstractContextManager[Any] | None = None,
        metrics: CdcMetrics | None = None,
        client: PubSubClient | None = None,
    ) -> None:
        self.settings = settings
        self.sf = settings.salesforce
        self.store = store
        self.adapter = adapter
        self._runtime = runtime
        self.engine = engine
        self._poll = poll
        self.clock = clock or SystemClock()
        self._sleep = sleep
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.metrics = metrics or CdcMetrics()
        self._client = client
        self.progress = CdcProgress()
        self.problem: str | None = None
        self._streamed = False  # the current stream delivered a response (so a later failure is a new one)
        self._cond = threading.Condition()

    # replay ids in the state store

    def stored_replay(self) -> bytes | None:
        return replay_from_text(self.store.get_cursor(CRM, OBJECT, REPLAY_STREAM))

    def _store_replay(self, replay_id: bytes) -> None:
        self.store.set_cursor(CRM, OBJECT, REPLAY_STREAM, replay_to_text(replay_id), self.clock.now())

    def _clear_replay(self) -> None:
        self.store.set_cursor(CRM, OBJECT, REPLAY_STREAM, "", self.clock.now())

    # the client

    def client(self) -> PubSubClient:
        if self._client is None:
            self._client = PubSubClient(open_channel(self.sf.pubsub_target, tls=self.sf.pubsub_tls, ca_file=self.sf.ca_bundle),
                                        self._session, monotonic=self.clock.monotonic)
        return self._client

    def _session(self, renew: bool) -> PubSubSession:
        session = getattr(self.adapter, "session", None)
        if session is None:
            raise ConfigError("salesforce.cdc_enabled: the Salesforce adapter in use cannot lend its session to the Pub/Sub API")
        token = session(renew=renew)
        if not token.org_id:
            raise AuthError("the login answer names no org id, which the Pub/Sub API needs as tenantid", crm=CRM,
                            credential="salesforce auth settings (use an OAuth flow or a session id that starts with the org id)")
        return PubSubSession(token.access_token, token.instance_url, token.org_id)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # the loop

    def run(self, stop: threading.Event) -> None:
        """Subscribe until `stop` is set: reconnect with backoff after failures, fall back to polling when replay is refused."""
        sleep = self._sleep or (lambda seconds: None if stop.wait(seconds) else None)
        failures = 0
        renewed = False
        try:
            while not stop.is_set():
                self._streamed = False
                try:
                    self.subscribe_once(stop, renew=renewed)
                    return
                except Exception as exc:  # the subscriber thread is a process boundary: classify, log, back off, go on
                    error: BaseException = exc
                if self._streamed:
                    failures, renewed = 0, False  # the stream worked for a while: this is a new failure, not a repeat
                if isinstance(error, CrmApiError) and error.code in REPLAY_CODES:
                    self._fall_back("replay_invalid", f"the stored replay id was refused ({error.code})")
                    continue
                if isinstance(error, AuthError) and not renewed:
                    # A token that expired (mid-stream or before): one immediate retry with a fresh one.
                    renewed = True
                    self._note_reconnect("auth")
                    continue
                reason = {AuthError: "auth", ConfigError: "config", BudgetExhaustedError: "budget"}.get(type(error), "error")
                if isinstance(error, TransientError):
                    reason = "transient"
                failures += 1
                self.problem = f"{type(error).__name__}: {error}"
                delay = equal_jitter(backoff_delay(failures, base_delay=RECONNECT_BACKOFF[0], max_delay=RECONNECT_BACKOFF[1]))
                log.log(logging.WARNING if reason == "transient" else logging.ERROR,
                        "salesforce CDC subscription failed (%s); reconnecting in %.1f s", error, delay,
                        exc_info=not isinstance(error, ConnectorError), extra={"crm": CRM, "reason": reason})
                self._note_reconnect(reason)
                sleep(delay)
        finally:
            self.metrics.connected.set(0)
            self.close()

    def _note_reconnect(self, reason: str) -> None:
        self.metrics.reconnects.labels(reason).inc()
        with self._cond:
            self.progress.reconnects += 1
            self._cond.notify_all()

    def subscribe_once(self, stop: threading.Event, *, renew: bool = False) -> None:
        """One stream: from the stored replay id (CUSTOM) or LATEST; returns when `stop` is set, raises on failure."""
        client = self.client()
        topic = self.sf.cdc_topic
        if renew:
            client.session(renew=True)
        client.get_topic(topic)
        replay = self.stored_replay()
        batch_size = self.sf.cdc_batch_size
        sub = client.subscribe(topic, replay_id=replay, num_requested=batch_size, stop=stop)
        log.info("salesforce CDC subscribed to %s from %s", topic, "the stored replay id" if replay else "LATEST",
                 extra={"crm": CRM, "topic": topic})
        self.metrics.connected.set(1)
        with self._cond:
            self.progress.subscriptions += 1
            self._cond.notify_all()
        try:
            for response in sub:
                self._streamed = True
                self.problem = None
                self.handle(response, client, topic)
                if response.pending_num_requested == 0:
                    sub.request(batch_size)
        finally:
            self.metrics.connected.set(0)
            sub.close()

    def handle(self, response: pb.FetchResponse, client: PubSubClient, topic: str) -> None:
        """One FetchResponse: decode, plan, re-read and route; then store its replay id."""
        if not response.events:
            # A keepalive: everything before it is handled, so its latest replay id is a safe resume
            # point (and keeps the stored one inside the retention window on a quiet org).
            if response.latest_replay_id:
                self._store_replay(response.latest_replay_id)
            return
        events = [client.decode(e, topic) for e in response.events]
        plan = plan_events(events, client=self.sf.call_options_client, entity=OBJECT)
        for outcome, n in plan.outcomes.items():
            self.metrics.events.labels(outcome).inc(n)
        self.process(plan, events)
        self._store_replay(events[-1].replay_id)
        with self._cond:
            self.progress.events += len(events)
            self.progress.batches += 1
            self.progress.echoes += plan.outcomes.get("echo", 0)
            for outcome, n in plan.outcomes.items():
                self.progress.outcomes[outcome] = self.progress.outcomes.get(outcome, 0) + n
            self._cond.notify_all()

    def process(self, plan: CdcPlan, events: list[ChangeEvent]) -> None:
        """The plan's work, durably: a poll for GAP_OVERFLOW, re-read + run_batch for the named records."""
        if plan.poll:
            self._fall_back("gap_overflow", "a GAP_OVERFLOW event said more changes happened than events could carry")
        if not plan.refetch_ids and not plan.deleted_ids:
            return
        runtime = self._runtime()
        size = self.sf.cdc_batch_size
        ids = list(plan.refetch_ids)
        # Deletes first, then re-reads in chunks: a lead missing from the re-read is gone (deleted / merged away).
        chunks = [ids[i: i + size] for i in range(0, len(ids), size)] or [[]]
        for n, chunk in enumerate(chunks):
            with self._lock:
                leads = self.adapter.fetch_by_ids(chunk) if chunk else []
                found = {lead.id for lead in leads}
                gone = [rid for rid in chunk if rid not in found] + (list(plan.deleted_ids) if n == 0 else [])
                page = FetchPage(leads=tuple(leads), cursor=None, deleted_ids=tuple(gone))
                batch = run_batch(self.store, runtime, self.engine, page, self.clock.now(), clock=self.clock)
            log.info("salesforce CDC batch routed", extra={"crm": CRM, "events": len(events), "fetched": batch.fetched,
                                                            "written": batch.written, "deleted": len(gone)})
        done = self.clock.now()
        for committed in plan.commit_times:
            self.metrics.commit_to_write.observe(max(0.0, (done - committed).total_seconds()))
        with self._cond:
            self.progress.routed_batches += 1
            self._cond.notify_all()

    def _fall_back(self, reason: str, why: str) -> None:
        """Catch up with an incremental poll instead of events; a refused replay id is cleared (next stream: LATEST)."""
        log.warning("salesforce CDC: %s; running an incremental poll from the poll cursor, then subscribing from LATEST", why,
                    extra={"crm": CRM, "reason": reason})
        self.metrics.fallback_polls.labels(reason).inc()
        if reason == "replay_invalid":
            self._clear_replay()
        with self._lock:
            self._poll()
        with self._cond:
            self.progress.polls += 1
            self._cond.notify_all()

    def wait_until(self, predicate: Callable[[CdcProgress], bool], timeout: float) -> bool:
        """Block until predicate(progress) holds (re-checked after every batch, poll and reconnect); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.progress), timeout)


def run_subscriber(
    settings: Settings,
    store: Store,
    adapter: CrmAdapter,
    stop: threading.Event,
    *,
    runtime: Callable[[], CrmRuntime | None] | None = None,
    engine: EngineConfig | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    lock: AbstractContextManager[Any] | None = None,
    registry: CollectorRegistry | None = None,
    on_start: Callable[[CdcSubscriber], None] | None = None,
) -> None:
    """Run the Salesforce CDC subscriber until `stop` is set (the body of `connector serve`'s CDC thread).

    runtime: the service's prepared Salesforce runtime (None until prepared: then one is prepared here);
    lock: the service's per-CRM lock; registry: the service's metrics registry.
    """
    from connector.runners.jobs import compile_engine, prepare, sync_once

    clock = clock or SystemClock()
    engine = engine or compile_engine(settings)
    own: dict[str, CrmRuntime] = {}

    def current_runtime() -> CrmRuntime:
        found = runtime() if runtime is not None else None
        if found is not None:
            return found
        if "runtime" not in own:
            own["runtime"] = prepare(settings, {CRM: adapter}, bootstrap=False)[CRM]
        return own["runtime"]

    def poll() -> object:
        return sync_once(settings, store, {CRM: adapter}, clock)

    subscriber = CdcSubscriber(settings, store, adapter, runtime=current_runtime, engine=engine, poll=poll, clock=clock,
                               sleep=sleep, lock=lock, metrics=CdcMetrics(registry))
    if on_start is not None:
        on_start(subscriber)
    subscriber.run(stop)

