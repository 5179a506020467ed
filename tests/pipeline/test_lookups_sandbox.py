"""Account / contact matching on the seeded sandboxes: ≤ 2 look-up calls per 1,000 leads, the same matches as per-batch look-ups."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from connector.adapters.base import CrmAdapter
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.config import HubSpotSettings, SalesforceSettings, example_config_path, load_settings
from connector.core.clock import FrozenClock
from connector.core.models import Account
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.stages import lookup_context
from connector.runners.jobs import backfill, make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FREE_MAIL = frozenset({"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "proton.me", "icloud.com", "gmx.de", "web.de"})


class PerBatch:
    """The adapter as per-batch look-ups saw it: find_accounts / find_contacts_by_email only, no index."""

    def __init__(self, inner: CrmAdapter) -> None:
        self.inner, self.crm, self.object_type = inner, inner.crm, inner.object_type

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        return self.inner.find_accounts(domains)

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        return self.inner.find_contacts_by_email(emails)


def runtime(adapter: Any) -> CrmRuntime:
    return CrmRuntime(crm=adapter.crm, adapter=adapter, rules=cast(Any, None), reps=(), active_owner_ids=frozenset())


def engine() -> EngineConfig:
    return cast(EngineConfig, SimpleNamespace(account_matching=True, free_mail_domains=FREE_MAIL))


def same_matches_in_fewer_calls(adapter: CrmAdapter, lookup_calls: Any) -> tuple[int, int]:
    """Every fetched page matched through the index and per batch: equal answers; (index calls, leads)."""
    pages = [list(page.leads) for page in adapter.fetch_all(None)]
    indexed, per_batch = runtime(adapter), runtime(PerBatch(adapter))
    before = lookup_calls()
    answers = [lookup_context(indexed, leads, engine(), NOW) for leads in pages]
    spent = lookup_calls() - before
    for leads, answer in zip(pages, answers, strict=True):
        assert lookup_context(per_batch, leads, engine(), NOW) == answer
    assert any(accounts for accounts, _ in answers)
    return spent, sum(len(leads) for leads in pages)


def test_salesforce_matches_equal_per_batch_look_ups_at_under_2_calls_per_1000_leads() -> None:
    clock = FrozenClock(NOW)
    with SalesforceSandbox(seed=11, leads=2500, clock=clock) as sf:
        reps = [u["Id"] for u in sf.users() if u["IsActive"] and u["Email"].endswith("example-corp.test")]
        for n, lead_id in enumerate(sf.lead_ids()[:300:3]):  # some leads already exist as contacts
            sf.create_contact({"LastName": f"C{n}", "Email": str((sf.get_lead(lead_id) or {})["Email"]), "OwnerId": reps[n % len(reps)]})
        settings = SalesforceSettings(enabled=True, login_url=sf.instance_url, client_id=sf.client_id,
                                      client_secret=SecretStr(sf.client_secret), ca_bundle=sf.ca_file)
        adapter = SalesforceAdapter(settings, clock=clock, sleep=clock.sleep)

        def lookups() -> int:
            return sum(1 for _m, path, label, _s in sf.request_log if label == "query"
                       and re.search(r"FROM (Account|Contact)\b", (parse_qs(urlsplit(path).query).get("q") or [""])[0]))

        spent, leads = same_matches_in_fewer_calls(adapter, lookups)
    assert spent * 1000 / leads <= 2.0 and spent == 2  # the Account and the Contact table, one page each


def test_hubspot_matches_equal_per_batch_look_ups_at_under_2_calls_per_1000_leads() -> None:
    clock = FrozenClock(NOW)
    with HubSpotSandbox(seed=11, contacts=2500, clock=clock) as hs:
        settings = HubSpotSettings(enabled=True, access_token=SecretStr(hs.token), base_url=hs.base_url + "/")
        adapter = HubSpotAdapter(settings, clock=clock, sleep=clock.sleep)

        def lookups() -> int:
            return sum(n for label, n in hs.calls.items() if label.startswith("companies."))

        spent, leads = same_matches_in_fewer_calls(adapter, lookups)
    assert spent * 1000 / leads <= 2.0 and spent == 1  # 60 companies: one search page


def test_a_salesforce_backfill_spends_under_2_look_up_calls_per_1000_leads(store_url: str) -> None:
    clock = FrozenClock(NOW)  # one clock for the sandbox and the connector: the same at any hour
    with SalesforceSandbox(seed=7, leads=2000, clock=clock) as sf:
        settings = load_settings(example_config_path(), {
            "store": {"url": store_url}, "routing": {"when_unavailable": "fallback", "account_matching": True},
            "salesforce": {"enabled": True, "login_url": sf.instance_url, "client_id": sf.client_id,
                           "client_secret": sf.client_secret, "ca_bundle": str(sf.ca_file), "lookback_seconds": 0},
        })
        with Store.open(settings.store.url) as store:
            summary = backfill(settings, store, make_adapters(settings, clock=clock), clock)
        queries = [(parse_qs(urlsplit(path).query).get("q") or [""])[0] for _m, path, label, _s in sf.request_log if label == "query"]
    looked_up = [q for q in queries if re.search(r"FROM (Account|Contact)\b", q)]
    assert summary.routed > 0 and summary.aborted is None
    assert len(looked_up) * 1000 / 2000 <= 2.0, looked_up
