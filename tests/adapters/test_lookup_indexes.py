"""Look-up indexes and bulk look-ups on both sandboxes: the same answers as key-by-key look-ups, in few calls."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from connector.adapters.base import ReadsLookupIndexes
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.salesforce.adapter import QUERY_URL_BUDGET, SalesforceAdapter
from connector.adapters.salesforce.fields import website_domain
from connector.config import HubSpotSettings, SalesforceSettings
from connector.core.clock import FrozenClock
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sf(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=42, leads=600, clock=clock) as sandbox:
        yield sandbox


def salesforce(sb: SalesforceSandbox, clock: FrozenClock, batch: int | None = None) -> SalesforceAdapter:
    settings = SalesforceSettings(enabled=True, login_url=sb.instance_url, client_id="sandbox-client",
                                  client_secret=SecretStr("sandbox-secret"), ca_bundle=sb.ca_file)
    return SalesforceAdapter(settings, clock=clock, sleep=clock.sleep, query_batch_size=batch)


def hubspot(sb: HubSpotSandbox, clock: FrozenClock, **kw: object) -> HubSpotAdapter:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr(sb.token), base_url=sb.base_url + "/", **kw)  # type: ignore[arg-type]
    return HubSpotAdapter(settings, clock=clock, sleep=clock.sleep)


def lead_domains(sb: SalesforceSandbox) -> list[str]:
    return sorted({str(lead["Email"]).rsplit("@", 1)[1] for i in sb.lead_ids() if (lead := sb.get_lead(i)) and lead.get("Email")})


def lookup_calls(sb: SalesforceSandbox) -> list[str]:
    return [label for _m, _p, label, _s in sb.request_log if label in ("query", "query_more")]


def test_salesforce_account_index_answers_as_find_accounts_does(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    rep = next(u["Id"] for u in sf.users() if u["IsActive"] and u["Email"].endswith("example-corp.test"))
    parent = sf.create_account({"Name": "Parent without a website", "OwnerId": rep})
    sf.create_account({"Name": "Child", "Website": "https://child.example/x", "ParentId": parent})
    sf.create_account({"Name": "Second of a host", "Website": "www.child.example"})  # the older one wins either way
    sf.create_account({"Name": "Substring", "Website": "notchild.example"})
    adapter = salesforce(sf, clock)
    sf.reset_calls()
    index = adapter.account_index(max_pages=10)
    assert index.entries is not None and (index.pages, index.calls) == (1, 2)  # one page + the parent without a website
    assert len(lookup_calls(sf)) == 2
    domains = sorted({*lead_domains(sf), *index.entries, "missing.example"})
    assert dict(adapter.find_accounts(domains)) == dict(index.entries)
    child = index.entries["child.example"]
    assert (child.name, child.parent_id, child.parent_owner_id) == ("Child", parent, rep)


def test_salesforce_contact_index_answers_as_find_contacts_by_email_does(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    reps = [u["Id"] for u in sf.users() if u["IsActive"] and u["Email"].endswith("example-corp.test")]
    emails = [str(lead["Email"]) for i in sf.lead_ids()[:40] if (lead := sf.get_lead(i)) and lead.get("Email")]
    for n, email in enumerate(emails):
        sf.create_contact({"LastName": f"C{n}", "Email": email.upper() if n % 3 else email, "OwnerId": reps[n % len(reps)]})
    sf.create_contact({"LastName": "Later duplicate", "Email": emails[0], "OwnerId": reps[-1]})
    adapter = salesforce(sf, clock)
    index = adapter.contact_index(max_pages=10)
    assert index.entries is not None and index.calls == 1
    # Converted leads left contacts of their own: ask for those too.
    assert dict(adapter.find_contacts_by_email([*emails, *index.entries, "nobody@nowhere.example"])) == dict(index.entries)
    assert index.entries[emails[0].lower()] == reps[0]


def test_salesforce_index_past_its_page_budget_is_only_probed(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    for n in range(450):
        sf.create_account({"Name": f"Extra {n}", "Website": f"https://extra{n}.example"})
    adapter = salesforce(sf, clock, batch=200)
    sf.reset_calls()
    probe = adapter.account_index(max_pages=2)
    total = len([a for a in sf.accounts() if a.get("Website")])
    assert (probe.entries, probe.pages, probe.calls) == (None, math.ceil(total / 200), 1)
    assert len(lookup_calls(sf)) == 1
    assert adapter.account_index(max_pages=probe.pages).entries is not None


def test_salesforce_bulk_look_ups_fill_the_url_budget(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    known = sorted({d for a in sf.accounts() if (d := website_domain(a.get("Website")))})[:5]
    domains = [f"company-number-{n}.example" for n in range(300)] + known
    adapter = salesforce(sf, clock)
    sf.reset_calls()
    found = adapter.find_accounts(domains)
    queries = [p for _m, p, label, _s in sf.request_log if label == "query"]
    assert len(queries) <= 3  # 20 LIKE terms a query made this 16 calls
    assert all(len(urlsplit(p).query) <= QUERY_URL_BUDGET for p in queries)
    assert sorted(found) == known


@pytest.fixture
def hs() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=300, companies=450) as sandbox:
        yield sandbox


def test_hubspot_account_index_answers_as_find_accounts_does(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = hubspot(hs, clock)
    assert isinstance(adapter, ReadsLookupIndexes)
    probe = adapter.account_index(max_pages=1)
    assert (probe.entries, probe.pages, probe.calls) == (None, 3, 1)  # 450 companies: 3 searches of 200
    hs.reset_calls()
    index = adapter.account_index(max_pages=3)
    assert index.entries is not None and hs.calls.get("companies.search") == 3 and not hs.calls.get("companies.batch_read")
    contact_domains = {str(r["email"]).rsplit("@", 1)[1] for i in hs.records_ids("contacts") if (r := hs.get_record("contacts", i))}
    domains = sorted({*index.entries, *contact_domains, "missing.example"})
    assert dict(adapter.find_accounts(domains)) == dict(index.entries)
    assert any(a.parent_owner_id for a in index.entries.values())


def test_hubspot_contact_index_answers_as_find_contacts_by_email_does(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = hubspot(hs, clock, object_type="leads")
    index = adapter.contact_index(max_pages=5)
    assert index.entries is not None and index.calls == math.ceil(max(len(index.entries), 1) / 200)
    emails = [str(r["email"]) for i in hs.records_ids("contacts") if (r := hs.get_record("contacts", i))]
    assert dict(adapter.find_contacts_by_email(emails)) == dict(index.entries)
    assert len(index.entries) < len(emails)  # unowned contacts are left out either way


def test_hubspot_find_accounts_sends_500_domains_a_search(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    domains = [f"nobody-{n}.example" for n in range(490)] + ["o'neil.example"]
    adapter = hubspot(hs, clock)
    found = adapter.find_accounts(domains)
    assert list(found) == ["o'neil.example"]
    assert adapter.calls.snapshot().get("companies.search") == 1  # 100 values an IN filter made this 5 searches
