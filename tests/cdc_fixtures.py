"""CDC helpers shared by the subscriber tests (tests/runners/cdc/) and the Pub/Sub client tests
(tests/adapters/salesforce/cdc/): settings pointed at a Salesforce sandbox and its Pub/Sub server, a subscriber thread."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.config import Settings, example_config_path, load_settings
from connector.core.clock import SystemClock
from connector.runners.cdc_subscriber import CdcSubscriber, run_subscriber
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

WAIT = 15.0  # seconds a test waits for the subscriber before failing (never slept)
REPS = ("ava.sales@example-corp.test", "ben.sales@example-corp.test")


def cdc_settings(store_url: str, sb: SalesforceSandbox, **salesforce: Any) -> Settings:
    """The example scoring, two always-available reps in round robin, Salesforce + CDC pointed at the sandbox."""
    data = tomllib.loads(example_config_path().read_text(encoding="utf-8"))
    data["routing"] = {
        "reps": [{"email": email} for email in REPS],
        "pools": {"cdc_test": {"reps": list(REPS)}},
        "fallback_pool": "cdc_test", "when_unavailable": "fallback",
        # New web leads land in the default queue: "nobody yet", so they are routed.
        "fallback_queue": {"salesforce": sb.default_queue_id},
    }
    data["store"] = {"url": store_url}
    data["hubspot"] = {**data.get("hubspot", {}), "enabled": False}
    data["salesforce"] = {
        **data.get("salesforce", {}), "enabled": True, "login_url": sb.instance_url, "client_id": sb.client_id,
        "client_secret": sb.client_secret, "ca_bundle": sb.ca_file, "lookback_seconds": 0,
        "cdc_enabled": True, "pubsub_target": sb.pubsub_target, "pubsub_tls": False, "cdc_batch_size": 100, **salesforce,
    }
    return load_settings(None, data)


@dataclass
class Running:
    """One connector process's CDC side: its store, adapter, subscriber thread and the sleeps it asked for."""

    settings: Settings
    store: Store
    adapter: SalesforceAdapter
    stop: threading.Event
    thread: threading.Thread
    subscriber: CdcSubscriber
    sleeps: list[float] = field(default_factory=list)

    def wait(self, predicate: Any, timeout: float = WAIT) -> None:
        assert self.subscriber.wait_until(predicate, timeout), f"subscriber did not get there: {self.subscriber.progress}"


@contextmanager
def subscribed(settings: Settings, sb: SalesforceSandbox, *, streams: int = 1) -> Iterator[Running]:
    """Open the store and adapter, run run_subscriber in a thread until the block ends (then stop and join).

    Waits until the sandbox has `streams` more Subscribe streams positioned, so changes made next are seen.
    """
    clock = SystemClock()
    sleeps: list[float] = []
    started = threading.Event()
    holder: list[CdcSubscriber] = []
    before = sb.pubsub.streams_started
    with Store.open(settings.store.url) as store:
        adapter = SalesforceAdapter(settings.salesforce, clock=clock)
        stop = threading.Event()

        def on_start(sub: CdcSubscriber) -> None:
            holder.append(sub)
            started.set()

        thread = threading.Thread(
            target=run_subscriber, args=(settings, store, adapter, stop),
            kwargs={"clock": clock, "sleep": sleeps.append, "lock": threading.Lock(), "on_start": on_start},
            name="test-cdc", daemon=True,
        )
        thread.start()
        assert started.wait(WAIT)
        running = Running(settings, store, adapter, stop, thread, holder[0], sleeps)
        try:
            if streams:
                assert sb.pubsub.wait_for_streams(before + streams, WAIT), "no Subscribe stream reached the sandbox"
            yield running
        finally:
            stop.set()
            thread.join(WAIT)
            adapter.close()
            assert not thread.is_alive(), "the subscriber did not stop"
