"""An event keyed by email re-scores and routes its lead at once, through the adapter's email lookup, even a lead no sync has seen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.core.clock import FrozenClock
from connector.runners.jobs import make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.runners.service.app import Service
from connector.state.store import Store

from .conftest import EVENTS_SECRET, basic, service_settings, serving

WAIT = 20.0


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=7, contacts=20) as sb:
        yield sb


def meeting_booked(user: str, n: int) -> dict[str, Any]:
    return {"type": "track", "event": "Meeting Booked", "userId": user, "timestamp": "2026-11-23T09:00:00Z", "messageId": f"mb{n}"}


def test_an_email_keyed_event_routes_a_contact_the_store_never_saw(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)  # polling off: no sync will run
    rid = sandbox.create_contact({
        "email": "casey.buyer@contoso-analytics.example", "firstname": "Casey", "lastname": "Buyer",
        "jobtitle": "VP Sales", "country": "United States", "lifecyclestage": "lead",
    })
    key = f"hubspot:contacts:{rid}"
    with Store.open(store_url) as store:
        assert store.decisions_for(key) == []
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service) as url:
            response = requests.post(f"{url}/events", json=meeting_booked("Casey.Buyer@Contoso-Analytics.example", 1),
                                     headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["rescoring"] == 1
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT), store.intake_rows()
        assert [row["status"] for row in store.intake_rows()] == ["done"]
        decisions = store.decisions_for(key)
        assert any(d.kind == "route" for d in decisions)
        assert any("Meeting booked" in json.dumps(d.explanation) for d in decisions if d.score is not None)
    record = sandbox.get_record("contacts", rid) or {}
    assert record.get("hubspot_owner_id") in {o["id"] for o in sandbox.owners()}
    assert record.get(settings.hubspot.score_property) not in (None, "")
    assert sandbox.calls["contacts.search"] >= 1


def test_an_email_no_crm_knows_finishes_without_writing(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)
    with Store.open(store_url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service) as url:
            response = requests.post(f"{url}/events", json=meeting_booked("stranger@nowhere.example", 2),
                                     headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
            assert response.json()["rescoring"] == 1
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT), store.intake_rows()
        assert [row["status"] for row in store.intake_rows()] == ["done"]
        assert len(store.events_for(["stranger@nowhere.example"])["stranger@nowhere.example"]) == 1
    assert sandbox.calls["contacts.batch_update"] == 0
