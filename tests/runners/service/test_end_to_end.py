"""Webhook → pipeline → write-back against the HubSpot sandbox with the real client, on SQLite and PostgreSQL;
own-write echoes cause nothing; work interrupted mid-batch is finished by the next start."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.core.clock import FrozenClock
from connector.core.errors import TransientError
from connector.runners.jobs import make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.runners.service.app import Service
from connector.runners.service.worker import CLAIM_LEASE_SECONDS
from connector.state.store import Store

from .conftest import APP_ID, hs_event, post_signed, service_settings, serving

WAIT = 20.0


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=7, contacts=20) as sb:
        yield sb


def new_contact(sandbox: HubSpotSandbox, n: int) -> str:
    return sandbox.create_contact({
        "email": f"buyer{n}@northwind-{n}.example", "firstname": "Dana", "lastname": f"Buyer{n}",
        "jobtitle": "VP Sales", "country": "United States", "lifecyclestage": "lead",
    })


def test_contact_announced_by_webhook_gets_its_owner_written_back(store_url: str, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)
    with Store.open(store_url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service) as url:
            rid = new_contact(sandbox, 1)
            response = post_signed(url, [hs_event(1001, rid, clock.now(), "creation")], clock)
            assert response.status_code == 200, response.text
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
            record = sandbox.get_record("contacts", rid)
            assert record is not None
            assert record.get("hubspot_owner_id") in {o["id"] for o in sandbox.owners()}
            assert record.get(settings.hubspot.score_property) not in (None, "")

            # The connector's own write comes back as INTEGRATION events from our app id: nothing happens.
            writes_before = sandbox.calls["contacts.batch_update"]
            ours = [c for c in sandbox.change_log if c.record_id == rid and c.source == "INTEGRATION"]
            assert ours, "the sandbox recorded the connector's write"
            echoes = [
                hs_event(2000 + n, rid, clock.now(), propertyName=name, propertyValue=value, changeSource="INTEGRATION", sourceId=APP_ID)
                for n, (name, value) in enumerate(ours[-1].properties.items())
            ]
            echoed = post_signed(url, echoes, clock)
            assert echoed.json()["echoes"] == len(echoes) and echoed.json()["accepted_records"] == 0
            assert store.intake_rows(status="pending") == []
            assert sandbox.calls["contacts.batch_update"] == writes_before


def test_stopped_mid_batch_then_restarted_loses_nothing(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = service_settings(store_url, sandbox.base_url, sandbox.token, grace_seconds=1)
    ids = [new_contact(sandbox, n) for n in range(3)]
    with Store.open(store_url) as store:
        adapters = make_adapters(settings, clock=clock)
        first = Service(settings, store, adapters, clock=clock)
        # Hold the first worker inside its re-fetch: the batch is in flight when SIGTERM comes.
        entered, gate = threading.Event(), threading.Event()

        def held(record_ids: Any) -> Any:
            entered.set()
            gate.wait(WAIT)
            raise TransientError("the test ended this batch", crm="hubspot")

        adapters["hubspot"].fetch_by_ids = held  # type: ignore[method-assign]
        with serving(first) as url:
            response = post_signed(url, [hs_event(3000 + n, rid, clock.now(), "creation") for n, rid in enumerate(ids)], clock)
            assert response.json()["accepted_records"] == 3
            assert entered.wait(WAIT)
            assert first.stop(timeout=0.5) is False  # grace ran out mid-batch ...
        assert len(store.intake_rows(status="pending")) == 3  # ... and the claimed work went back to pending

        second = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(second):
            assert second.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
        gate.set()
        assert first.stop(timeout=WAIT) is True
        for rid in ids:
            assert (sandbox.get_record("contacts", rid) or {}).get("hubspot_owner_id"), f"contact {rid} was lost"
        routes = [d for rid in ids for d in store.decisions_for(f"hubspot:contacts:{rid}") if d.kind == "route"]
        assert len(routes) == 3
        assert [r["status"] for r in store.intake_rows()] == ["done"] * 3


def test_a_crashed_workers_claims_are_taken_over_after_the_lease(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)
    rid = new_contact(sandbox, 9)
    with Store.open(store_url) as store:
        from connector.state.store import IntakeRequest

        store.add_intake([IntakeRequest("hubspot", "contacts", "record", rid, None, "webhook", None)], clock.now())
        # A replica claimed the row and was killed (-9): no release, only its lease is left.
        assert len(store.claim_intake("dead-worker", clock.now(), lease_seconds=CLAIM_LEASE_SECONDS)) == 1
        clock.advance(CLAIM_LEASE_SECONDS + 1)
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service):
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
        assert (sandbox.get_record("contacts", rid) or {}).get("hubspot_owner_id")


def test_poll_loop_syncs_every_enabled_crm(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    settings = service_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox.base_url, sandbox.token, poll=True)
    ids = sandbox.records_ids("contacts")
    with Store.open(settings.store.url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service) as url:
            assert service.wait_until(lambda: service.polls_done >= 1, WAIT)
            metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert all((sandbox.get_record("contacts", rid) or {}).get("hubspot_owner_id") for rid in ids)
        assert store.get_cursor("hubspot", "contacts", "changed") is not None
        assert 'connector_polls_total{crm="hubspot",outcome="ok"} 1.0' in metrics
        assert f'connector_leads_processed_total{{crm="hubspot"}} {float(len(ids))}' in metrics
