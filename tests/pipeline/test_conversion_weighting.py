"""Conversion weighting end to end: routed and converted leads are counted per rep, and pools with
`weight_by_conversion` hand more leads to reps who convert more."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from connector.core.clock import SystemClock
from connector.core.keys import CONVERTED_SCOPE, ROUTED_SCOPE
from connector.runners.jobs import make_adapters, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import DecisionRecord, Store

from .conftest import Env
from .test_sync_salesforce import open_leads, salesforce, sf_settings  # noqa: F401 - salesforce is a fixture

STRONG, WEAK = "ava.sales@example-corp.test", "ben.sales@example-corp.test"
POOLS = ("smb", "enterprise", "emea", "apac", "partners")


def weighted_routing(weight_by_conversion: bool, min_leads: int = 50) -> dict[str, Any]:
    """Two reps without office hours in every pool, one rule: every routed lead is a round-robin pick."""
    return {
        "when_unavailable": "fallback", "account_matching": False, "contact_matching": False, "keep_existing_owner": False,
        "reps": [{"email": STRONG}, {"email": WEAK}],
        "pools": {p: {"reps": [STRONG, WEAK], "strategy": "round_robin", "weight_by_conversion": weight_by_conversion} for p in POOLS},
        "rules": [{"name": "everyone", "pool": "smb"}], "fallback_pool": "smb", "experiments": [],
        "conversion_min_leads": min_leads,
    }


def first_decisions(store: Store, hubspot: HubSpotSandbox) -> list[DecisionRecord]:
    """Each sandbox contact's first decision (contacts never routed left out)."""
    return [ds[0] for ds in (store.decisions_for(f"hubspot:contacts:{rid}") for rid in hubspot.records_ids("contacts")) if ds]


def counts(store: Store, scope: str) -> dict[str, int]:
    with store.routing_transaction([]) as txn:
        return {k: v for k, v in txn.counters(scope).items() if v}


def test_each_conversion_is_credited_once_to_the_routed_rep(store_url: str, hubspot: HubSpotSandbox) -> None:
    env = Env(store_url, hubspot)
    try:
        converted_stages = set(env.settings.reports.converted_stages["hubspot"])
        # Contacts already past the converted line when routed count for nobody.
        already = {rid for rid in hubspot.records_ids("contacts") if hubspot.get_record("contacts", rid)["lifecyclestage"] in converted_stages}  # type: ignore[index]
        assert already
        sync_once(env.settings, env.store, env.adapters, env.clock)
        with_rep = [d for d in first_decisions(env.store, hubspot) if d.rep and d.lead_key.rsplit(":", 1)[1] not in already]
        assert with_rep
        assert counts(env.store, ROUTED_SCOPE) == dict(Counter(d.rep for d in with_rep))
        sync_once(env.settings, env.store, env.adapters, env.clock)
        assert counts(env.store, CONVERTED_SCOPE) == {}

        # A person moves one routed contact to customer (a [reports] converted_stages value for HubSpot).
        won = with_rep[0]
        hubspot.person_update("contacts", won.lead_key.rsplit(":", 1)[1], {"lifecyclestage": "customer"})
        sync_once(env.settings, env.store, env.adapters, env.clock)
        sync_once(env.settings, env.store, env.adapters, env.clock)  # seen again: not credited twice
        assert counts(env.store, CONVERTED_SCOPE) == {won.rep: 1}
    finally:
        env.close()


def test_converted_salesforce_lead_is_credited_and_released(store_url: str, salesforce: SalesforceSandbox) -> None:
    settings = sf_settings(store_url, salesforce)
    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, clock=clock)
        sync_once(settings, store, adapters, clock)
        decision = next(
            ds[0] for ds in (store.decisions_for(f"salesforce:Lead:{lead['Id']}") for lead in open_leads(salesforce)) if ds and ds[0].rep
        )
        open_before = counts(store, "load:open").get(decision.rep, 0)
        time.sleep(1.1)  # SystemModstamp has whole seconds and these settings look back 0 s: convert in a later second
        salesforce.convert(decision.lead_key.rsplit(":", 1)[1])
        assert sync_once(settings, store, adapters, clock).skipped == 1
        sync_once(settings, store, adapters, clock)
        assert counts(store, CONVERTED_SCOPE) == {decision.rep: 1}
        assert counts(store, "load:open").get(decision.rep, 0) == open_before - 1


def test_pool_weighted_by_conversion_favours_the_rep_who_converts_more(store_url: str, hubspot: HubSpotSandbox) -> None:
    env = Env(store_url, hubspot, routing=weighted_routing(True))
    try:
        # History: both reps were routed 100 leads; STRONG converted 30, WEAK 10 (rates 0.3 and 0.1,
        # factors 1.5× and 0.5× of the pool's mean): STRONG's turns come three times as often.
        with env.store.routing_transaction([ROUTED_SCOPE, CONVERTED_SCOPE]) as txn:
            for rep, won in ((STRONG, 30), (WEAK, 10)):
                txn.add(ROUTED_SCOPE, rep, 100)
                txn.add(CONVERTED_SCOPE, rep, won)
        sync_once(env.settings, env.store, env.adapters, env.clock)
        picks = Counter(d.rep for d in first_decisions(env.store, hubspot) if d.kind == "route")
        assert picks[STRONG] + picks[WEAK] > 100
        assert 2.5 * picks[WEAK] <= picks[STRONG] <= 3.5 * picks[WEAK] + 1, picks
    finally:
        env.close()


def test_reps_below_the_minimum_keep_their_configured_weight(store_url: str, hubspot: HubSpotSandbox) -> None:
    env = Env(store_url, hubspot, routing=weighted_routing(True, min_leads=1_000))
    try:
        with env.store.routing_transaction([ROUTED_SCOPE, CONVERTED_SCOPE]) as txn:
            for rep, won in ((STRONG, 30), (WEAK, 0)):
                txn.add(ROUTED_SCOPE, rep, 400)  # with this run's leads still below 1,000: no rate yet
                txn.add(CONVERTED_SCOPE, rep, won)
        sync_once(env.settings, env.store, env.adapters, env.clock)
        picks = Counter(d.rep for d in first_decisions(env.store, hubspot) if d.kind == "route")
        assert picks[STRONG] > 100 and abs(picks[STRONG] - picks[WEAK]) <= 1, picks
    finally:
        env.close()
