"""Salesforce CDC latency: a lead created by a person → change event → re-read, routed, written back (target p95 < 2 s).

The sandbox (HTTPS REST + Pub/Sub gRPC on loopback) runs in this process beside the subscriber,
so both share one interpreter; a real org adds Salesforce's own event delivery delay (typically
well under a second) on top. Leads are created one at a time: each measures one event's path,
from the sandbox committing the lead to the sandbox committing the connector's write (its echo
event, `client=<call_options_client>`), and the owner on the lead is checked.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from statistics import quantiles
from typing import Any

from connector.runners.cdc_subscriber import CdcSubscriber, run_subscriber
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.core.clock import SystemClock
from connector.config import Settings, example_config_path, load_settings
from connector.sandbox.pubsub import PublishedEvent
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

TARGET_P95_SECONDS = 2.0
REPS = ("ava.sales@example-corp.test", "ben.sales@example-corp.test", "cai.sales@example-corp.test")
WAIT_SECONDS = 30.0


def settings_for(sb: SalesforceSandbox, store_url: str) -> Settings:
    data = tomllib.loads(example_config_path().read_text(encoding="utf-8"))
    data["routing"] = {
        "reps": [{"email": email} for email in REPS], "pools": {"bench": {"reps": list(REPS)}},
        "fallback_pool": "bench", "when_unavailable": "fallback", "fallback_queue": {"salesforce": sb.default_queue_id},
    }
    data["store"] = {"url": store_url}
    data["hubspot"] = {**data.get("hubspot", {}), "enabled": False}
    data["salesforce"] = {
        **data.get("salesforce", {}), "enabled": True, "login_url": sb.instance_url, "client_id": sb.client_id,
        "client_secret": sb.client_secret, "ca_bundle": sb.ca_file, "lookback_seconds": 0,
        "cdc_enabled": True, "pubsub_target": sb.pubsub_target, "pubsub_tls": False,
    }
    return load_settings(None, data)


def run(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench cdc_latency", description=__doc__)
    parser.add_argument("--leads", type=int, default=200, help="leads created by a simulated person (default 200)")
    parser.add_argument("--store", default=None, help="state store URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cdc-") as tmp, SalesforceSandbox(seed=3, leads=50, pubsub=True) as sb:
        settings = settings_for(sb, args.store or f"sqlite:///{Path(tmp) / 'state.db'}")
        client = settings.salesforce.call_options_client
        written: dict[str, float] = {}
        arrived = threading.Condition()

        def on_event(event: PublishedEvent) -> None:
            if event.change_origin.endswith(f";client={client}"):
                with arrived:
                    for rid in event.record_ids:
                        written.setdefault(rid, time.monotonic())
                    arrived.notify_all()

        sb.pubsub.listeners.append(on_event)
        stop = threading.Event()
        ready: list[CdcSubscriber] = []
        with Store.open(settings.store.url) as store:
            adapter = SalesforceAdapter(settings.salesforce, clock=SystemClock())
            thread = threading.Thread(target=run_subscriber, args=(settings, store, adapter, stop),
                                      kwargs={"lock": threading.Lock(), "on_start": ready.append}, daemon=True)
            before = sb.pubsub.streams_started
            thread.start()
            if not sb.pubsub.wait_for_streams(before + 1, WAIT_SECONDS):
                raise SystemExit("bench cdc_latency: the subscriber never opened a stream")
            latencies: list[float] = []
            missing = 0
            rep_ids = {u["Id"] for u in sb.users() if u["Email"] in REPS}
            try:
                for n in range(args.leads):
                    started = time.monotonic()
                    lead_id = sb.create_lead({"FirstName": "Pat", "LastName": f"Bench{n}", "Company": f"Bench {n} GmbH",
                                              "Email": f"pat{n}@bench{n}.example", "Country": "DE", "LeadSource": "Web"})
                    with arrived:
                        arrived.wait_for(lambda lid=lead_id: lid in written, timeout=WAIT_SECONDS)  # type: ignore[misc]
                    lead: Any = sb.get_lead(lead_id)
                    if lead_id not in written or lead["OwnerId"] not in rep_ids:
                        missing += 1
                        continue
                    latencies.append(written[lead_id] - started)
            finally:
                stop.set()
                thread.join(WAIT_SECONDS)
                adapter.close()
        subscriber = ready[0] if ready else None
    if len(latencies) < 2:
        raise SystemExit(f"bench cdc_latency: only {len(latencies)} lead(s) were written back")
    cuts = quantiles(latencies, n=100)
    p50, p95, worst = cuts[49], cuts[94], max(latencies)
    verdict = "PASS" if p95 < TARGET_P95_SECONDS and not missing else "FAIL"
    print(f"leads created by a person: {args.leads}  written back with a rep as owner: {len(latencies)}  missing: {missing}")
    print(f"create → written  p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   max {worst * 1000:7.1f} ms   "
          f"(target p95 < {TARGET_P95_SECONDS:.0f} s: {verdict})")
    if subscriber is not None:
        print(f"events seen: {subscriber.progress.events}  echoes dropped: {subscriber.progress.echoes}  "
              f"reconnects: {subscriber.progress.reconnects}  fallback polls: {subscriber.progress.polls}")
    return {"cdc_p50_ms": round(p50 * 1000, 1), "cdc_p95_ms": round(p95 * 1000, 1), "cdc_max_ms": round(worst * 1000, 1),
            "cdc_leads": float(len(latencies)), "cdc_missing": float(missing)}


if __name__ == "__main__":
    import sys

    run(sys.argv[1:])
