"""Prometheus metrics of one service instance (its own registry, never the process-global default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connector.adapters.base import CallGuard
from connector.pipeline.batch import BatchResult
from connector.pipeline.outcomes import outcome_of

# A limiter wait shorter than this is lock bookkeeping, not throttling.
_WAIT_THRESHOLD_SECONDS = 0.005
# Webhook → write latency: the goal is well under a second; HubSpot itself times out at 10 s [crm-behaviour: HubSpot webhook deliveries].
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """Every metric `connector serve` exports; one instance (and registry) per app, so tests never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.leads_processed = Counter(
            "connector_leads_processed", "Lead records fetched into a pipeline batch (the summaries' `fetched`).", ["crm"], registry=r
        )
        self.leads_routed = Counter(
            "connector_leads_routed", "Leads given a new owner, by how (the summaries' `routed_by`).", ["crm", "routed_by"], registry=r
        )
        self.decisions = Counter(
            "connector_routing_decisions", "Owners decided, by routing rule and rep.", ["crm", "kind", "rule", "rep"], registry=r
        )
        self.writes = Counter("connector_writes", "Records written back to the CRM, by outcome.", ["crm", "outcome"], registry=r)
        self.api_calls = Counter("connector_api_calls", "CRM API calls by endpoint and HTTP status.", ["crm", "endpoint", "status"], registry=r)
        self.api_errors = Counter(
            "connector_api_errors", "CRM API calls answered with an HTTP error status.", ["crm", "endpoint", "status"], registry=r
        )
        self.rate_limit_waits = Counter("connector_rate_limit_waits", "Calls that waited for the shared rate limiter.", ["crm"], registry=r)
        self.rate_limit_wait_seconds = Counter(
            "connector_rate_limit_wait_seconds", "Seconds spent waiting for the shared rate limiter.", ["crm"], registry=r
        )
        self.budget_remaining = Gauge("connector_budget_remaining_calls", "API calls left today under the daily budget.", ["crm"], registry=r)
        self.queue_depth = Gauge("connector_intake_queue_depth", "Accepted intake items waiting for the worker.", registry=r)
        self.intake_pending = Gauge("connector_intake_pending", "Intake rows in the store not yet processed.", registry=r)
        self.webhook_to_write = Histogram(
            "connector_webhook_to_write_seconds", "Seconds from accepting a webhook to its records being written.",
            ["crm"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.dead_letters = Counter("connector_dead_letters", "Records dead-lettered (given up on).", ["crm"], registry=r)
        self.webhook_events = Counter(
            "connector_webhook_events", "HubSpot webhook events received, by outcome.", ["outcome"], registry=r
        )
        self.behaviour_events = Counter("connector_behaviour_events", "Behaviour events received, by outcome.", ["outcome"], registry=r)
        self.rejected_requests = Counter(
            "connector_rejected_requests", "Intake requests refused, by endpoint and HTTP status.", ["endpoint", "status"], registry=r
        )
        self.batches = Counter("connector_worker_batches", "Worker batches by outcome.", ["crm", "outcome"], registry=r)
        self.polls = Counter("connector_polls", "Poll-loop syncs by outcome.", ["crm", "outcome"], registry=r)
        self.notifications = Counter(
            "connector_notifications", "Notification delivery attempts by channel, event and outcome (sent, retried, failed).",
            ["channel", "event", "outcome"], registry=r,
        )
        self._refreshers: list[Callable[[], None]] = []

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Run `refresh` before each render (gauges read from the store: pending intake, budget left)."""
        self._refreshers.append(refresh)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        for refresh in self._refreshers:
            refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe_batch(self, crm: str, batch: BatchResult) -> None:
        """Count what one pipeline batch did."""
        self.leads_processed.labels(crm).inc(batch.fetched)
        for decision in batch.decisions.values():
            if decision.owner_id and decision.kind not in ("kept", "none", "wait"):
                self.decisions.labels(crm, decision.kind, decision.rule or "", decision.rep or "").inc()
            how = outcome_of(decision, "").routed_by
            if how is not None:
                self.leads_routed.labels(crm, how).inc()
        if batch.written:
            self.writes.labels(crm, "ok").inc(batch.written)
        if batch.dead_lettered:
            self.dead_letters.labels(crm).inc(batch.dead_lettered)

    def observe_latency(self, crm: str, accepted_at: Mapping[int, datetime], now: datetime) -> None:
        """One observation per accepted webhook intake row, from acceptance to the end of its batch."""
        for at in accepted_at.values():
            self.webhook_to_write.labels(crm).observe(max(0.0, (now - at).total_seconds()))


class MeteredGuard:
    """A CallGuard that counts calls, errors and limiter waits, then defers to the account's real guard."""

    def __init__(self, inner: CallGuard, metrics: Metrics, crm: str, monotonic: Callable[[], float]) -> None:
        self._inner = inner
        self._metrics = metrics
        self._crm = crm
        self._monotonic = monotonic

    def before(self, endpoint: str, kind: str) -> None:
        started = self._monotonic()
        self._inner.before(endpoint, kind)
        waited = self._monotonic() - started
        if waited >= _WAIT_THRESHOLD_SECONDS:
            self._metrics.rate_limit_waits.labels(self._crm).inc()
            self._metrics.rate_limit_wait_seconds.labels(self._crm).inc(waited)

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        self._metrics.api_calls.labels(self._crm, endpoint, str(status)).inc()
        if status >= 400 or status == 0:
            self._metrics.api_errors.labels(self._crm, endpoint, str(status)).inc()
        self._inner.after(endpoint, status, headers)
