"""`connector serve` runs the CDC subscriber beside its worker when [salesforce] cdc_enabled is set, and stops it on shutdown."""

from __future__ import annotations

import threading
import time
from typing import Any

from connector.core.clock import SystemClock
from connector.runners.jobs import make_adapters
from connector.sandbox.pubsub import PublishedEvent
from connector.sandbox.salesforce import SalesforceSandbox
from connector.runners.service.app import Service
from connector.state.store import Store
from tests.cdc_fixtures import REPS, WAIT, cdc_settings


def test_service_starts_the_subscriber_and_stops_it(tmp_path: Any, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox)
    written = threading.Event()
    lead: list[str] = []

    def on_event(event: PublishedEvent) -> None:
        if lead and lead[0] in event.record_ids and event.change_origin.endswith("client=crm-lead-connector"):
            written.set()

    sandbox.pubsub.listeners.append(on_event)
    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock, poll=False)
        before = sandbox.pubsub.streams_started
        service.start()
        try:
            assert sandbox.pubsub.wait_for_streams(before + 1, WAIT)
            lead.append(sandbox.create_lead({"LastName": "Served", "Company": "Served Ltd", "Email": "s@served.example"}))
            assert written.wait(WAIT)
            owner = sandbox.get_lead(lead[0])["OwnerId"]  # type: ignore[index]
            assert owner in {u["Id"] for u in sandbox.users() if u["Email"] in REPS}
            body, _ = service.metrics.render()
            assert b'connector_cdc_events_total{outcome="create"} 1.0' in body
            assert service.readiness()[1]["salesforce_cdc"] == "ok"
            sandbox.pubsub.stop()  # the Pub/Sub API goes away: reported, but the pod stays ready (polling goes on)
            deadline = time.monotonic() + WAIT
            while service.readiness()[1]["salesforce_cdc"] == "ok" and time.monotonic() < deadline:
                time.sleep(0.05)
            ready, checks = service.readiness()
            assert checks["salesforce_cdc"].startswith("reconnecting after ") and ready
        finally:
            assert service.stop(timeout=10)  # every thread, the subscriber's included, ended in time
        assert not [t for t in threading.enumerate() if t.name == "connector-cdc-salesforce"]
