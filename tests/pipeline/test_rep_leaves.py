"""A rep who leaves between two syncs: the second sync routes every open lead they held to someone else."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from connector.core.clock import FrozenClock
from connector.ops.explain import explain_lead
from connector.runners.jobs import make_adapters, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

from .conftest import Env
from .test_sync_salesforce import open_leads, sf_settings

# A Tuesday mid-afternoon in Europe, morning on the US east coast: most reps are at work.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_hubspot_rep_deactivated_between_syncs_has_no_open_lead_left(store_url: str, hubspot: HubSpotSandbox) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock)
    try:
        assert sync_once(env.settings, env.store, env.adapters, clock).aborted is None
        people = {o["id"]: o["email"] for o in hubspot.owners() if o["type"] == "PERSON" and not o["archived"]}
        held = Counter(
            (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") for rid in hubspot.records_ids("contacts")
        )
        leaving = max(people, key=lambda i: held[i])
        leads = [rid for rid in hubspot.records_ids("contacts") if (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") == leaving]
        assert len(leads) >= 2
        hubspot.deactivate_owner(leaving)  # nothing else changes

        clock.advance(60)
        second = sync_once(env.settings, env.store, env.adapters, clock)
        assert second.aborted is None and second.reassigned >= len(leads)
        for rid in leads:
            assert (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") != leaving, rid
            last = env.store.decisions_for(f"hubspot:contacts:{rid}")[-1]
            assert "reassigned: owner deactivated" in last.explanation["routing"]["reasons"]
        report = explain_lead(env.settings, env.store, env.adapters, "hubspot", leads[0], clock.now())
        assert "reassigned: owner deactivated" in report["routing"]["reasons"]
        with env.store.routing_transaction(["load:open"]) as txn:
            assert txn.counters("load:open").get(people[leaving].lower(), 0) == 0  # the load moved with the leads
        # A third run with nobody else leaving moves nothing.
        clock.advance(60)
        assert sync_once(env.settings, env.store, env.adapters, clock).reassigned == 0
    finally:
        env.close()


def test_hubspot_reassign_from_inactive_none_leaves_the_leads(store_url: str, hubspot: HubSpotSandbox) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "fallback", "reassign_from_inactive": "none"})
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        held = Counter((hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id") for rid in hubspot.records_ids("contacts"))
        leaving = max((o["id"] for o in hubspot.owners() if o["type"] == "PERSON" and not o["archived"]), key=lambda i: held[i])
        hubspot.deactivate_owner(leaving)
        clock.advance(60)
        assert sync_once(env.settings, env.store, env.adapters, clock).reassigned == 0
    finally:
        env.close()


def test_salesforce_rep_deactivated_between_syncs_has_no_open_lead_left(store_url: str) -> None:
    with SalesforceSandbox(seed=7, leads=220) as sf:
        settings = sf_settings(store_url, sf)
        clock = FrozenClock(T0)
        with Store.open(settings.store.url) as store:
            adapters = make_adapters(settings, clock=clock)
            assert sync_once(settings, store, adapters, clock).aborted is None
            users = {u["Id"] for u in sf.users() if u["IsActive"]}
            held = Counter(lead["OwnerId"] for lead in open_leads(sf))
            leaving = max(users - {sf.integration_user_id}, key=lambda i: held[i])
            assert held[leaving] >= 2
            sf.deactivate_user(leaving)  # nothing else changes

            clock.advance(60)
            second = sync_once(settings, store, adapters, clock)
            assert second.aborted is None and second.reassigned >= held[leaving]
            assert not [lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] == leaving]


def test_salesforce_reassign_from_inactive_routed_moves_only_the_connectors_leads(store_url: str) -> None:
    with SalesforceSandbox(seed=7, leads=220) as sf:
        settings = sf_settings(store_url, sf)
        settings = settings.model_copy(update={"routing": settings.routing.model_copy(update={"reassign_from_inactive": "routed"})})
        clock = FrozenClock(T0)
        with Store.open(settings.store.url) as store:
            adapters = make_adapters(settings, clock=clock)
            sync_once(settings, store, adapters, clock)
            held = Counter(lead["OwnerId"] for lead in open_leads(sf))
            leaving = max({u["Id"] for u in sf.users() if u["IsActive"]} - {sf.integration_user_id}, key=lambda i: held[i])
            mine = {lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] == leaving
                    and store.decisions_for(f"salesforce:Lead:{lead['Id']}")[-1].explanation["routing"]["kind"] != "kept"}
            theirs = {lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] == leaving} - mine
            assert mine and theirs
            sf.deactivate_user(leaving)
            clock.advance(60)
            assert sync_once(settings, store, adapters, clock).reassigned == len(mine)
            left = {lead["Id"] for lead in open_leads(sf) if lead["OwnerId"] == leaving}
            assert left == theirs
