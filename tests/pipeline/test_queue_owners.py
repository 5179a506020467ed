"""Queue-owned leads on both CRMs: routed like unowned leads, unless `[routing] keep_queue_owners` lists the queue.

The sandboxes park leads the way real orgs do: Salesforce web-to-lead in "Inbound Lead Queue" (the example's
fallback queue) and "EMEA Lead Queue"; HubSpot forms in the QUEUE owners "Inbound Queue" and "EMEA Lead Queue".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.clock import FrozenClock, PinnedClock
from connector.runners.jobs import backfill, make_adapters, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.hubspot.owners import EMEA_QUEUE_OWNER_ID
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

from .conftest import Env
from .test_sync_salesforce import open_leads, sf_settings

# A Tuesday mid-afternoon in Europe, morning on the US east coast: most reps are at work.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
# A Sunday night: nobody works, every lead goes to the fallback queue.
SUNDAY_NIGHT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)

@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    """The sandbox on a clock running from T0, like the connector here: its records and events have the same
    age against the connector's `now` whatever hour the suite runs at (the conftest's sandbox reads the wall clock)."""
    with HubSpotSandbox(seed=42, contacts=240, clock=PinnedClock(T0)) as sb:
        yield sb



def _emea_queue(sf: SalesforceSandbox) -> str:
    return next(q["Id"] for q in sf.queues() if q["Name"] == "EMEA Lead Queue")


def _hs_owned_by(hubspot: HubSpotSandbox, owner_id: str) -> list[str]:
    return [rid for rid in hubspot.records_ids("contacts") if (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") == owner_id]


def test_salesforce_backfill_routes_every_queue_owned_lead(store_url: str) -> None:
    with SalesforceSandbox(seed=7, leads=220) as sf:
        queues = {q["Id"] for q in sf.queues()}
        parked = [lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] in queues]
        assert any(lead["OwnerId"] == _emea_queue(sf) for lead in open_leads(sf))
        settings = sf_settings(store_url, sf)
        clock = FrozenClock(T0)
        with Store.open(settings.store.url) as store:
            summary = backfill(settings, store, make_adapters(settings, clock=clock), clock)
            assert summary.aborted is None
            for lead_id in parked:
                decisions = store.decisions_for(f"salesforce:Lead:{lead_id}")
                assert decisions and all("kept existing owner" not in " ".join(d.explanation["routing"]["reasons"]) for d in decisions)
        fallback = settings.routing.fallback_queue["salesforce"]
        for lead_id in parked:
            owner = (sf.get_lead(lead_id) or {})["OwnerId"]
            assert owner not in queues or owner == fallback, lead_id  # a rep, or the fallback queue as decided


def test_salesforce_listed_queue_is_kept(store_url: str) -> None:
    with SalesforceSandbox(seed=7, leads=220) as sf:
        emea = _emea_queue(sf)
        kept = [lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] == emea]
        settings = sf_settings(store_url, sf)
        settings = settings.model_copy(update={"routing": settings.routing.model_copy(update={"keep_queue_owners": ["EMEA Lead Queue"]})})
        clock = FrozenClock(T0)
        with Store.open(settings.store.url) as store:
            backfill(settings, store, make_adapters(settings, clock=clock), clock)
        assert kept and all((sf.get_lead(i) or {})["OwnerId"] == emea for i in kept)


def test_hubspot_backfill_routes_every_queue_owned_lead(store_url: str, hubspot: HubSpotSandbox) -> None:
    queues = [o["id"] for o in hubspot.owners() if o["type"] == "QUEUE"]
    parked = [rid for q in queues for rid in _hs_owned_by(hubspot, q)]
    assert _hs_owned_by(hubspot, EMEA_QUEUE_OWNER_ID)
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock)
    try:
        assert backfill(env.settings, env.store, env.adapters, clock).aborted is None
        fallback = env.settings.routing.fallback_queue["hubspot"]
        for rid in parked:
            owner = (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id")
            assert owner not in queues or owner == fallback, rid
        assert not _hs_owned_by(hubspot, EMEA_QUEUE_OWNER_ID)
    finally:
        env.close()


def test_hubspot_listed_queue_is_kept(store_url: str, hubspot: HubSpotSandbox) -> None:
    kept = _hs_owned_by(hubspot, EMEA_QUEUE_OWNER_ID)
    clock = FrozenClock(T0)
    routing: dict[str, Any] = {"when_unavailable": "fallback", "keep_queue_owners": ["emea lead queue"]}
    env = Env(store_url, hubspot, clock=clock, routing=routing)
    try:
        backfill(env.settings, env.store, env.adapters, clock)
        assert kept and _hs_owned_by(hubspot, EMEA_QUEUE_OWNER_ID) == kept
    finally:
        env.close()


def test_leads_the_connector_parked_in_the_fallback_queue_are_not_routed_again(store_url: str, hubspot: HubSpotSandbox) -> None:
    clock = FrozenClock(SUNDAY_NIGHT)
    env = Env(store_url, hubspot, clock=clock)
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        fallback = env.settings.routing.fallback_queue["hubspot"]
        parked = [
            rid for rid in hubspot.records_ids("contacts")
            if any(d.owner_id == fallback and not d.rep for d in env.store.decisions_for(f"hubspot:contacts:{rid}"))
        ]
        assert parked
        clock.advance((T0 - SUNDAY_NIGHT).total_seconds())
        for rid in parked[:5]:
            hubspot.person_update("contacts", rid, {"jobtitle": "Head of Things"})  # changed: read again
        second = sync_once(env.settings, env.store, env.adapters, clock)
        assert second.fetched >= 5
        for rid in parked:
            assert (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") == fallback, rid
    finally:
        env.close()
