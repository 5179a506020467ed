"""`sync --once` end to end on the Salesforce sandbox, and both CRMs at once, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.core.clock import SystemClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.jobs import make_adapters, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store


@pytest.fixture
def salesforce() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=7, leads=220) as sb:
        yield sb


def sf_settings(store_url: str, sf: SalesforceSandbox, hubspot: HubSpotSandbox | None = None) -> Settings:
    overrides: dict[str, Any] = {
        "store": {"url": store_url},
        "routing": {"when_unavailable": "fallback"},
        "salesforce": {
            "enabled": True, "login_url": sf.instance_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
            "ca_bundle": str(sf.ca_file), "lookback_seconds": 0,
        },
    }
    if hubspot is not None:
        overrides["hubspot"] = {"enabled": True, "base_url": hubspot.base_url, "access_token": hubspot.token, "safety_lag_seconds": 0}
    return load_settings(example_config_path(), overrides)


def open_leads(sf: SalesforceSandbox) -> list[dict[str, Any]]:
    leads = [sf.get_lead(i) for i in sf.lead_ids()]
    return [lead for lead in leads if lead and not lead.get("IsConverted")]


def test_salesforce_sync_routes_scores_and_is_idempotent(store_url: str, salesforce: SalesforceSandbox) -> None:
    settings = sf_settings(store_url, salesforce)
    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, clock=clock)
        first = sync_once(settings, store, adapters, clock)
        assert first.aborted is None and first.routed > 0
        valid_owners = {u["Id"] for u in salesforce.users() if u["IsActive"]} | {q["Id"] for q in salesforce.queues()}
        for lead in open_leads(salesforce):
            assert lead["OwnerId"] in valid_owners, lead["Id"]
            assert lead[settings.salesforce.score_field] is not None, lead["Id"]
            assert lead["Rating"] in ("Hot", "Warm", "Cold"), lead["Id"]
        # Owners were written with assignment rules off and tagged as the connector's own change.
        assert salesforce.last_headers.get("sforce-auto-assign") == "FALSE"
        assert settings.salesforce.call_options_client in (salesforce.last_headers.get("sforce-call-options") or "")

        salesforce.reset_calls()
        again = sync_once(settings, store, adapters, clock)
        assert again.written == 0 and again.routed == 0
        assert salesforce.calls["collections_update"] == 0


def test_converted_lead_is_never_written(store_url: str, salesforce: SalesforceSandbox) -> None:
    settings = sf_settings(store_url, salesforce)
    target = open_leads(salesforce)[0]["Id"]
    salesforce.convert(target)
    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        summary = sync_once(settings, store, make_adapters(settings, clock=clock), clock)
    assert summary.aborted is None
    assert summary.written > 0
    assert salesforce.last_write_client(target) is None


def test_both_crms_at_once_write_each_lead_only_to_its_own_crm(store_url: str, salesforce: SalesforceSandbox) -> None:
    with HubSpotSandbox(seed=3, contacts=120) as hubspot:
        settings = sf_settings(store_url, salesforce, hubspot)
        clock = SystemClock()
        with Store.open(settings.store.url) as store:
            summary = sync_once(settings, store, make_adapters(settings, clock=clock), clock)
        assert summary.aborted is None
        assert summary.api_calls.get("hubspot.contacts.batch_update", 0) >= 1
        assert summary.api_calls.get("salesforce.composite.sobjects.update", 0) >= 1
        hs_owner_ids = {o["id"] for o in hubspot.owners()}
        sf_owner_ids = {u["Id"] for u in salesforce.users()} | {q["Id"] for q in salesforce.queues()}
        for rid in hubspot.records_ids("contacts"):
            owner = (hubspot.get_record("contacts", rid) or {}).get("hubspot_owner_id")
            assert owner in hs_owner_ids, f"hubspot contact {rid} got {owner!r}"
        for lead in open_leads(salesforce):
            assert lead["OwnerId"] in sf_owner_ids, f"salesforce lead {lead['Id']} got {lead['OwnerId']!r}"
