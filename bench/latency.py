"""Webhook latency: a contact created by a person → signed `contact.creation` → `connector serve` → owner written (p95 ≤ 1 s).

The HubSpot sandbox and the service (the same `Service`, shared limiter, metered guards and uvicorn
settings as `connector serve`, on a loopback socket) run in this process beside the sender, so all
three share one interpreter. The sender plays HubSpot: it creates a contact in the sandbox as a
person would, then POSTs the `contact.creation` event, v3-signed, at `--rate` leads per second
(open loop: a slow answer does not slow the arrivals). A lead's latency runs from just before the
POST to the sandbox committing the connector's write of `hubspot_owner_id` (its change log entry,
source INTEGRATION). HubSpot's own delay between the person's click and the delivery is not in it.

Where the time goes is measured per lead by observing the service's calls, not by changing it:
the intake POST (send → 200), the queue (200 → the worker's claim of the intake row: micro-batch
window plus waiting for the batch ahead), the re-fetch (claim → `batch/read` answered), account
matching (company search calls), the engine (score, route, diff and the decision / outbox commit:
the rest between re-fetch and write) and the write call (`batch/update` sent → answered).
Then `bench.cdc_latency` (Salesforce Change Data Capture) runs with `--cdc-leads` leads.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import quantiles
from typing import Any

import requests
import uvicorn

from bench.harness import ROUTING_OVERRIDES, hubspot_overrides, machine, pass_mark, print_table
from connector.core.clock import SystemClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.jobs import make_adapters
from connector.observability.metrics import MeteredGuard, Metrics
from connector.observability.logging import RedactingJsonFormatter
from connector.state.ratelimit import guard_factory
from connector.sandbox.hubspot import HubSpotSandbox
from connector.runners.service.app import Service
from connector.runners.service.http import CorrelationFilter
from connector.state.store import IntakeItem, Store
from connector.runners.service.webhooks import sign_v3

TARGET_P95_MS = 1000.0
CDC_TARGET_P95_MS = 2000.0
CLIENT_SECRET = "bench-hubspot-client-secret"
APP_ID = "4242"
PORTAL_ID = 62515
# Seconds to wait after the last delivery for the last write, before counting leads as missing.
SETTLE_SECONDS = 60.0
STAGES = ("intake", "queue", "fetch", "lookup", "engine", "write")


def settings_for(sb: HubSpotSandbox, store_url: str, micro_batch_ms: int | None) -> Settings:
    """The example config as the other benches use it, plus webhook secrets; polling off (webhooks only)."""
    service: dict[str, Any] = {"poll": False}
    if micro_batch_ms is not None:
        service["micro_batch_ms"] = micro_batch_ms
    return load_settings(example_config_path(), {
        "store": {"url": store_url},
        "logging": {"level": "INFO", "as_json": True},
        "hubspot": hubspot_overrides(sb.base_url, sb.token, client_secret=CLIENT_SECRET, app_id=APP_ID),
        "salesforce": {"enabled": False},
        "routing": dict(ROUTING_OVERRIDES),
        "service": service,
    })


@dataclass
class _Batch:
    """One worker batch as seen from the adapter: when its re-fetch and its calls ran (monotonic seconds)."""

    fetch_started: float
    fetch_ended: float = 0.0
    lookup_seconds: float = 0.0


@dataclass
class Trace:
    """Monotonic timestamps of each lead's path through the service, keyed by HubSpot record id."""

    sent: dict[str, float] = field(default_factory=dict)
    sent_wall_ms: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    claimed: dict[str, float] = field(default_factory=dict)
    batch_of: dict[str, _Batch] = field(default_factory=dict)
    write_started: dict[str, float] = field(default_factory=dict)
    write_ended: dict[str, float] = field(default_factory=dict)
    batches: list[_Batch] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stages(self, rid: str) -> dict[str, float] | None:
        """The lead's time per stage in ms, contiguous from send to write answered; None if a point is missing."""
        batch = self.batch_of.get(rid)
        points = [self.sent.get(rid), self.acked.get(rid), self.claimed.get(rid), batch and batch.fetch_ended,
                  self.write_started.get(rid), self.write_ended.get(rid)]
        if batch is None or any(p is None for p in points):
            return None
        p = [float(x) for x in points]  # type: ignore[arg-type]
        # The worker can claim a row before the 200 reaches the sender: a stage never goes below zero.
        for i in range(1, len(p)):
            p[i] = max(p[i], p[i - 1])
        between = p[4] - p[3]
        lookup = min(batch.lookup_seconds, between)
        return {"intake": p[1] - p[0], "queue": p[2] - p[1], "fetch": p[3] - p[2], "lookup": lookup,
                "engine": between - lookup, "write": p[5] - p[4]}


def instrument(service: Service, trace: Trace) -> None:
    """Wrap the store's claim and the adapter's calls on these instances (the service itself is unchanged)."""
    store, adapter = service.store, service.adapters["hubspot"]
    claim, fetch, find_accounts, write = store.claim_intake, adapter.fetch_by_ids, adapter.find_accounts, adapter.write
    current: list[_Batch] = []

    def claim_intake(*args: Any, **kwargs: Any) -> list[IntakeItem]:
        items = claim(*args, **kwargs)
        now = time.monotonic()
        with trace.lock:
            for item in items:
                trace.claimed.setdefault(item.ref, now)
        return items

    def fetch_by_ids(ids: Sequence[str]) -> Any:
        batch = _Batch(time.monotonic())
        leads = fetch(ids)
        batch.fetch_ended = time.monotonic()
        with trace.lock:
            trace.batches.append(batch)
            for rid in ids:
                trace.batch_of.setdefault(rid, batch)
        current[:] = [batch]
        return leads

    def timed_accounts(domains: Any) -> Any:
        started = time.monotonic()
        try:
            return find_accounts(domains)
        finally:
            if current:
                current[0].lookup_seconds += time.monotonic() - started

    def timed_write(patches: Sequence[Any], *, fence: Any = None) -> Any:
        started = time.monotonic()
        results = write(patches, fence=fence)
        ended = time.monotonic()
        with trace.lock:
            for patch in patches:
                trace.write_started.setdefault(patch.record_id, started)
                trace.write_ended.setdefault(patch.record_id, ended)
        return results

    store.claim_intake = claim_intake  # type: ignore[method-assign]
    adapter.fetch_by_ids = fetch_by_ids  # type: ignore[method-assign]
    adapter.find_accounts = timed_accounts  # type: ignore[method-assign]
    adapter.write = timed_write  # type: ignore[method-assign]


@contextmanager
def connector_serve(settings: Settings, log_file: Path) -> Iterator[tuple[Service, str]]:
    """What `connector serve` builds (run_server), served by uvicorn in a thread on a loopback socket."""
    clock = SystemClock()
    logger = logging.getLogger("connector")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    # Logged as `connector serve` logs (JSON at INFO), to a file: the cost of logging stays in the figures.
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(RedactingJsonFormatter(log_emails=False, as_json=True))
    handler.addFilter(CorrelationFilter())
    logger.handlers[:] = [handler]
    logger.setLevel(settings.logging.level)
    logger.propagate = False
    metrics = Metrics()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with Store.open(settings.store.url) as store:
            store.claim_process("connector serve (bench latency)", clock.now())
            shared_guard = guard_factory(store, settings, clock)
            guards = {crm: shared_guard(crm) for crm in settings.enabled_crms}
            adapters = make_adapters(settings, guard_for=lambda crm: MeteredGuard(guards[crm], metrics, crm, clock.monotonic), clock=clock)
            budgets = {crm: guard.budget.remaining for crm, guard in guards.items()}
            service = Service(settings, store, adapters, clock=clock, metrics=metrics, budgets=budgets)
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            config = uvicorn.Config(service.app, log_config=None, access_log=False, lifespan="on", server_header=False,
                                    proxy_headers=False, timeout_graceful_shutdown=2)
            server = uvicorn.Server(config)
            # uvicorn installs signal handlers only in the main thread; this one serves beside the sender.
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="bench-connector-serve", daemon=True)
            thread.start()
            try:
                url = f"http://127.0.0.1:{sock.getsockname()[1]}"
                _wait_ready(url, service)
                yield service, url
            finally:
                server.should_exit = True
                thread.join(30)
    finally:
        sock.close()
        handler.close()
        logger.handlers[:], logger.level, logger.propagate = saved


def _wait_ready(url: str, service: Service) -> None:
    """Until /readyz says the worker prepared HubSpot (owners read, properties checked)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"bench latency: the service never became ready: {service.readiness()[1]}")


def creation_event(event_id: int, rid: str, occurred_ms: int) -> dict[str, Any]:
    """A `contact.creation` event as HubSpot delivers it [crm-behaviour: HubSpot webhook deliveries]."""
    return {
        "eventId": event_id, "subscriptionId": 9101, "portalId": PORTAL_ID, "appId": int(APP_ID), "occurredAt": occurred_ms,
        "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": int(rid), "changeFlag": "CREATED",
        "changeSource": "CRM_UI", "sourceId": "userId:31",
    }


def _wall_ms() -> float:
    """Epoch milliseconds on the connector's clock seam (SystemClock), so the sender, the service and the sandbox share
    one wall clock even when a test session pins it (tests/conftest.py --now)."""
    return SystemClock().now().timestamp() * 1000


class Sender:
    """Plays HubSpot: deliveries signed with v3 over the URL it calls, one keep-alive session per sending thread."""

    def __init__(self, url: str, sb: HubSpotSandbox, trace: Trace) -> None:
        self.url = url
        self.sb = sb
        self.trace = trace
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._event_id = 0
        self._ids = threading.Lock()

    def person_creates(self, n: int) -> str:
        return self.sb.create_contact({
            "email": f"morgan{n}@tailspin-{n}.example", "firstname": "Morgan", "lastname": f"Bench{n}",
            "jobtitle": "Director of Sales", "company": f"Tailspin {n}", "country": "United States",
            "lifecyclestage": "lead", "numemployees": "120",
        })

    def deliver(self, rids: Sequence[str]) -> None:
        """POST one delivery announcing these new contacts; record send / 200 times for each."""
        with self._ids:
            first = self._event_id + 1
            self._event_id += len(rids)
        now_ms = int(_wall_ms())
        body = json.dumps([creation_event(first + i, rid, now_ms) for i, rid in enumerate(rids)]).encode()
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._ids:
                self._sessions.append(session)
        sent_wall, sent = _wall_ms(), time.monotonic()
        timestamp = str(int(sent_wall))
        headers = {
            "Content-Type": "application/json", "X-HubSpot-Signature-Version": "v3", "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": sign_v3(CLIENT_SECRET, "POST", f"{self.url}/webhooks/hubspot", body, timestamp),
        }
        try:
            response = session.post(f"{self.url}/webhooks/hubspot", data=body, headers=headers, timeout=10)
            ok = response.status_code == 200
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        acked = time.monotonic()
        with self.trace.lock:
            for rid in rids:
                self.trace.sent[rid], self.trace.sent_wall_ms[rid] = sent, sent_wall
                if ok:
                    self.trace.acked[rid] = acked
            if not ok:
                self.trace.failures.append(problem)

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def create_and_deliver(self, n: int) -> str:
        rid = self.person_creates(n)
        self.deliver([rid])
        return rid


def owner_writes(sb: HubSpotSandbox, wanted: set[str], since: int) -> tuple[dict[str, float], int]:
    """Wall ms at which the sandbox committed each wanted record's first INTEGRATION write of hubspot_owner_id."""
    log = sb.change_log[since:]
    found: dict[str, float] = {}
    for change in log:
        if change.source == "INTEGRATION" and change.record_id in wanted and change.properties.get("hubspot_owner_id"):
            found.setdefault(change.record_id, float(change.occurred_ms))
    return found, since + len(log)


def wait_written(sb: HubSpotSandbox, rids: Sequence[str], since: int, deadline: float) -> dict[str, float]:
    """Poll the sandbox's change log until every lead's owner was written or the deadline passes."""
    wanted, written = set(rids), dict[str, float]()
    while True:
        found, since = owner_writes(sb, wanted - written.keys(), since)
        written.update(found)
        if len(written) == len(wanted) or time.monotonic() > deadline:
            return written
        time.sleep(0.02)


def _pct(values: Sequence[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return min(quantiles(values, n=100, method="inclusive")[p - 1], max(values))


def paced_run(sender: Sender, sb: HubSpotSandbox, leads: int, rate: float, offset: int) -> tuple[list[str], dict[str, float]]:
    """`leads` persons create a contact each, 1 / rate s apart, each announced by its own delivery."""
    since = len(sb.change_log)
    rids: list[str] = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="bench-hubspot") as pool:
        futures = []
        for n in range(leads):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(sender.create_and_deliver, offset + n))
        rids = [f.result() for f in futures]
    return rids, wait_written(sb, rids, since, time.monotonic() + SETTLE_SECONDS)


def burst_run(sender: Sender, sb: HubSpotSandbox, leads: int, offset: int) -> tuple[list[str], dict[str, float]]:
    """`leads` contacts created at once (an import), delivered as HubSpot batches them: up to 100 events per request."""
    since = len(sb.change_log)
    rids = [sender.person_creates(offset + n) for n in range(leads)]
    for start in range(0, len(rids), 100):
        sender.deliver(rids[start:start + 100])
    return rids, wait_written(sb, rids, since, time.monotonic() + SETTLE_SECONDS)


def run(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1000, help="leads arriving one by one at --rate (default 1000)")
    parser.add_argument("--rate", type=float, default=20.0, help="arrivals per second (default 20)")
    parser.add_argument("--burst", type=int, default=100, help="leads created at once, delivered in one request (default 100; 0 skips)")
    parser.add_argument("--micro-batch-ms", type=int, default=None, help="[service] micro_batch_ms (default: the example config's)")
    parser.add_argument("--cdc-leads", type=int, default=200, help="leads for bench.cdc_latency (default 200; 0 skips)")
    parser.add_argument("--store", default=None, help="state store URL (default: a temporary SQLite file)")
    parser.add_argument("--latency-ms", type=float, default=80.0, help="network latency of every CRM request (default 80)")
    parser.add_argument("--jitter-ms", type=float, default=20.0, help="± uniform jitter on the latency (default 20)")
    args = parser.parse_args(argv)
    if args.leads < 2 or args.rate <= 0:
        parser.error("--leads must be at least 2 and --rate positive")
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, HubSpotSandbox(seed=5, contacts=50) as sb:
        sb.latency_seconds, sb.latency_jitter_seconds = args.latency_ms / 1000, args.jitter_ms / 1000
        settings = settings_for(sb, args.store or f"sqlite:///{Path(tmp) / 'state.db'}", args.micro_batch_ms)
        trace = Trace()
        with connector_serve(settings, Path(tmp) / "serve.log") as (service, url):
            instrument(service, trace)
            sender = Sender(url, sb, trace)
            try:
                calls_before = dict(sb.calls)
                began = time.monotonic()
                rids, written = paced_run(sender, sb, args.leads, args.rate, 0)
                paced_seconds = time.monotonic() - began
                calls = {k: v - calls_before.get(k, 0) for k, v in sb.calls.items() if v - calls_before.get(k, 0)}
                paced_batches = len(trace.batches)
                limiter_wait = service.metrics.registry.get_sample_value(
                    "connector_rate_limit_wait_seconds_total", {"crm": "hubspot"}) or 0.0
                burst_rids, burst_written = burst_run(sender, sb, args.burst, args.leads) if args.burst > 0 else ([], {})
            finally:
                sender.close()
    latencies = [written[r] - trace.sent_wall_ms[r] for r in rids if r in written and r in trace.sent_wall_ms]
    missing = len(rids) - len(latencies)
    if len(latencies) < 2:
        raise SystemExit(f"bench latency: only {len(latencies)} of {len(rids)} lead(s) were written back; failures: {trace.failures[:3]}")
    per_stage = [s for r in rids if r in written and (s := trace.stages(r)) is not None]
    figures: dict[str, float] = {
        "webhook_leads": float(len(latencies)), "webhook_missing": float(missing), "webhook_rate_per_s": args.rate,
        "webhook_p50_ms": round(_pct(latencies, 50), 1), "webhook_p95_ms": round(_pct(latencies, 95), 1),
        "webhook_max_ms": round(max(latencies), 1), "webhook_batches": float(paced_batches),
        "webhook_limiter_wait_s": round(limiter_wait, 3),
        "limiter_wait_ms_per_batch": round(limiter_wait * 1000 / max(1, paced_batches), 1),
    }
    for stage in STAGES:
        values = [s[stage] * 1000 for s in per_stage]
        figures[f"{stage}_ms_p50"] = round(_pct(values, 50), 1)
        figures[f"{stage}_ms_p95"] = round(_pct(values, 95), 1)
    burst = [burst_written[r] - trace.sent_wall_ms[r] for r in burst_rids if r in burst_written]
    if args.burst > 0:
        figures.update({"burst_leads": float(len(burst)), "burst_missing": float(len(burst_rids) - len(burst)),
                        "burst_p50_ms": round(_pct(burst, 50), 1) if burst else -1.0,
                        "burst_max_ms": round(max(burst), 1) if burst else -1.0})
    _print(args, info, figures, per_stage, calls, paced_seconds, trace.failures)
    if args.cdc_leads > 0:
        from bench import cdc_latency

        print("Salesforce CDC (bench.cdc_latency): a lead created by a person → change event → routed and written", flush=True)
        figures.update(cdc_latency.run(["--leads", str(args.cdc_leads)]))
        print(flush=True)
    return figures


def _print(args: argparse.Namespace, info: dict[str, str], f: dict[str, float], per_stage: list[dict[str, float]],
           calls: dict[str, int], seconds: float, failures: list[str]) -> None:
    print(f"machine: {info['nproc']} CPU(s), {info['cpu']}, Python {info['python']}")
    ok = f["webhook_p95_ms"] <= TARGET_P95_MS and not f["webhook_missing"]
    leads = int(f["webhook_leads"] + f["webhook_missing"])
    print_table(
        f"HubSpot webhook → owner written: {leads} leads at {args.rate:g}/s ({seconds:.1f} s), one event per delivery, "
        f"{args.latency_ms:g} ± {args.jitter_ms:g} ms per CRM request",
        [
            ("p50", f"{f['webhook_p50_ms']:.1f} ms", ""),
            ("p95", f"{f['webhook_p95_ms']:.1f} ms", f"target ≤ {TARGET_P95_MS:.0f} ms: {pass_mark(ok)}"),
            ("max", f"{f['webhook_max_ms']:.1f} ms", ""),
            ("written / missing", f"{int(f['webhook_leads'])} / {int(f['webhook_missing'])}", "every lead must be written"),
            ("worker batches", f"{int(f['webhook_batches'])}", f"{f['webhook_leads'] / max(1.0, f['webhook_batches']):.1f} leads per batch"),
            ("rate limiter waits", f"{f['webhook_limiter_wait_s']:.3f} s",
             f"{f['limiter_wait_ms_per_batch']:.1f} ms per batch; shared limiter: 190 calls / 10 s, searches 5 / s"),
        ],
    )
    means = {stage: sum(s[stage] for s in per_stage) * 1000 / max(1, len(per_stage)) for stage in STAGES}
    total = sum(means.values())
    notes = {
        "intake": "POST sent → 200 (verify, dedupe, intake row committed)",
        "queue": "200 → worker claims the row (micro-batch window + batch ahead)",
        "fetch": "claim → batch/read answered (re-fetch by id)",
        "lookup": "account matching: company search (its wait for the 5 / s search limit included)",
        "engine": "score + route + diff + decision/outbox commit",
        "write": "batch/update sent → answered",
    }
    print_table(
        "where the time goes (per lead; stages are contiguous, send → write answered)",
        [(stage, f"p50 {f[f'{stage}_ms_p50']:7.1f}  p95 {f[f'{stage}_ms_p95']:7.1f}  mean {means[stage]:7.1f} ms",
          f"{means[stage] / total * 100 if total else 0:4.1f} %  {notes[stage]}") for stage in STAGES],
    )
    if "burst_leads" in f:
        print_table(f"burst: {args.burst} contacts created at once (an import), delivered 100 events per request", [
            ("p50", f"{f['burst_p50_ms']:.1f} ms", ""),
            ("max (last lead)", f"{f['burst_max_ms']:.1f} ms", ""),
            ("written / missing", f"{int(f['burst_leads'])} / {int(f['burst_missing'])}", ""),
        ])
    print("sandbox calls during the paced run: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())), flush=True)
    if failures:
        print(f"deliveries refused: {len(failures)} (first: {failures[0]})", flush=True)
    print(flush=True)


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1:]), sort_keys=True))

