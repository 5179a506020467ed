"""find_leads_by_email on both adapters against the sandboxes: found, not found, any case, chunked, bad records left out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pydantic import SecretStr

from connector.adapters.salesforce import soql
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.client import IN_VALUES_MAX
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.adapters.salesforce.adapter import QUERY_URL_BUDGET
from connector.core.clock import FrozenClock
from connector.config import HubSpotSettings, SalesforceSettings
from connector.core.models import Lead
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import REQUEST_LINE_MAX, SalesforceSandbox

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class RecordingGuard:
    def __init__(self) -> None:
        self.kinds: list[tuple[str, str]] = []

    def before(self, endpoint: str, kind: str) -> None:
        self.kinds.append((endpoint, kind))

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        return None


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture(scope="module")
def hs(clock: FrozenClock) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=300, companies=30, clock=clock) as sb:
        hubspot(sb, clock).bootstrap()
        yield sb


def hubspot(sb: HubSpotSandbox, clock: FrozenClock, **kw: Any) -> HubSpotAdapter:
    guard = kw.pop("guard", None)
    settings = HubSpotSettings(enabled=True, access_token=SecretStr(sb.token), base_url=sb.base_url + "/", **kw)
    return HubSpotAdapter(settings, guard=guard, clock=clock, sleep=clock.sleep)


def contacts(sb: HubSpotSandbox) -> dict[str, dict[str, str]]:
    return {i: sb.get_record("contacts", i) or {} for i in sb.records_ids("contacts")}


def test_hubspot_finds_contacts_by_email_in_any_case_normalized_as_fetch_does(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    people = list(contacts(hs).items())[:3]
    guard = RecordingGuard()
    adapter = hubspot(hs, clock, guard=guard)
    asked = [people[0][1]["email"].upper(), f"  {people[1][1]['email'].title()} ", people[2][1]["email"], "nobody@nowhere.example"]
    found = adapter.find_leads_by_email(asked)
    assert sorted(lead.id for lead in found) == sorted(i for i, _ in people)
    assert adapter.calls.snapshot() == {"contacts.search": 1}
    assert guard.kinds == [("contacts.search", "search")]  # the search limiter (5/s per account) is consulted
    by_id = {lead.id: lead for lead in adapter.fetch_by_ids([i for i, _ in people])}
    assert {lead.id: lead for lead in found} == by_id


def test_hubspot_unknown_or_blank_emails_find_nothing(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = hubspot(hs, clock)
    assert adapter.find_leads_by_email([]) == []
    assert adapter.find_leads_by_email(["", "  "]) == []
    assert adapter.calls.total == 0
    assert adapter.find_leads_by_email(["nobody@nowhere.example"]) == []
    assert adapter.calls.snapshot() == {"contacts.search": 1}


def test_hubspot_more_emails_than_one_in_filter_takes_are_chunked(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    everyone = contacts(hs)
    emails = [r["email"] for r in everyone.values()][: IN_VALUES_MAX + 50]
    adapter = hubspot(hs, clock)
    found = adapter.find_leads_by_email(emails)
    wanted = {i for i, r in everyone.items() if r["email"] in set(emails)}
    assert {lead.id for lead in found} == wanted and len(found) == len(wanted)
    assert adapter.calls.snapshot() == {"contacts.search": 2}


def test_hubspot_a_record_that_cannot_be_read_is_left_out(hs: HubSpotSandbox, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    people = list(contacts(hs).items())[:3]
    adapter = hubspot(hs, clock)
    bad_id = people[1][0]
    normalize = adapter.normalize

    def strict(record: Mapping[str, Any]) -> Lead:
        if str(record["id"]) == bad_id:
            raise ValueError("unreadable")
        return normalize(record)

    monkeypatch.setattr(adapter, "normalize", strict)
    found = adapter.find_leads_by_email([r["email"] for _, r in people])
    assert sorted(lead.id for lead in found) == sorted([people[0][0], people[2][0]])
    assert bad_id in caplog.text and people[1][1]["email"] not in caplog.text


def test_hubspot_leads_object_is_found_through_its_contacts_email(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    lead_id = hs.records_ids("leads")[0]
    contact_id = hs.associated_ids("leads", lead_id, "contacts")[0]
    email = (hs.get_record("contacts", contact_id) or {})["email"]
    adapter = hubspot(hs, clock, object_type="leads")
    found = adapter.find_leads_by_email([email.upper(), "nobody@nowhere.example"])
    expected = set(hs.associated_ids("contacts", contact_id, "leads"))
    assert lead_id in expected and {lead.id for lead in found} == expected
    assert all(lead.object_type == "leads" and lead.email == email for lead in found)
    assert adapter.fetch_by_ids([lead_id]) == [lead for lead in found if lead.id == lead_id]


def test_hubspot_sandbox_in_filter_matches_string_values_in_lower_case_only(hs: HubSpotSandbox, clock: FrozenClock) -> None:
    email = next(iter(contacts(hs).values()))["email"].lower()

    def search(values: list[str]) -> int:
        body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN", "values": values}]}]}
        response = requests.post(f"{hs.base_url}/crm/v3/objects/contacts/search", json=body,
                                 headers={"Authorization": f"Bearer {hs.token}"}, timeout=10)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert search([email]) == 1
    assert search([email.upper()]) == 0
    assert search(["nobody@nowhere.example"]) == 0


@pytest.fixture
def sf(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=42, leads=300, clock=clock) as sb:
        yield sb


def salesforce(sb: SalesforceSandbox, clock: FrozenClock, **kw: Any) -> SalesforceAdapter:
    settings = SalesforceSettings(enabled=True, login_url=sb.instance_url, client_id="sandbox-client",
                                  client_secret=SecretStr("sandbox-secret"), ca_bundle=sb.ca_file, **kw)
    return SalesforceAdapter(settings, clock=clock, sleep=clock.sleep)


def open_leads(sb: SalesforceSandbox) -> dict[str, dict[str, Any]]:
    rows = {i: sb.get_lead(i) or {} for i in sb.lead_ids()}
    return {i: r for i, r in rows.items() if not r["IsConverted"] and r.get("Email")}


def queries(sb: SalesforceSandbox) -> list[str]:
    return [parse_qs(urlsplit(path).query)["q"][0] for method, path, label, _ in sb.request_log if label == "query"]


def test_salesforce_finds_leads_by_email_in_any_case_normalized_as_fetch_does(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    people = list(open_leads(sf).items())[:3]
    adapter = salesforce(sf, clock)
    asked = [people[0][1]["Email"].upper(), people[1][1]["Email"].swapcase(), people[2][1]["Email"], "nobody@nowhere.example"]
    found = adapter.find_leads_by_email(asked)
    assert sorted(lead.id for lead in found) == sorted(i for i, _ in people)
    by_id = {lead.id: lead for lead in adapter.fetch_by_ids([i for i, _ in people])}
    assert {lead.id: lead for lead in found} == by_id
    [query] = queries(sf)
    assert query.startswith("SELECT Id, IsDeleted, MasterRecordId, IsConverted, SystemModstamp, ")
    assert " FROM Lead WHERE Email IN (" in query and query.endswith("AND (IsConverted = false) ORDER BY Id")


def test_salesforce_keeps_the_lead_filter_and_quotes_every_value(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    quoted = sf.create_lead({"LastName": "O'Neil", "Company": "Quote Co", "Email": "o'neil\\x@quote.example"})
    converted = sf.create_lead({"LastName": "Gone", "Company": "Converted Co", "Email": "gone@converted.example"})
    sf.convert(converted)
    adapter = salesforce(sf, clock)
    found = adapter.find_leads_by_email(["O'Neil\\x@Quote.example", "gone@converted.example", "x') OR (Email != 'y"])
    assert [lead.id for lead in found] == [quoted]  # converted: outside the default lead_filter, as in a sync
    everything = salesforce(sf, clock, lead_filter="")
    assert sorted(lead.id for lead in everything.find_leads_by_email(["gone@converted.example"])) == [converted]
    # Erasure (connector forget EMAIL) asks for every lead with the email, converted ones included.
    assert [lead.id for lead in adapter.find_leads_by_email(["Gone@Converted.example"], every_lead=True)] == [converted]


def test_salesforce_unknown_or_blank_emails_find_nothing(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = salesforce(sf, clock)
    assert adapter.find_leads_by_email(["", " "]) == []
    assert adapter.calls.total == 0
    assert adapter.find_leads_by_email(["nobody@nowhere.example"]) == []
    assert adapter.calls.by_endpoint["query"] == 1


def test_salesforce_a_long_email_list_is_split_into_queries_within_the_url_budget(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    leads = open_leads(sf)
    emails = [r["Email"] for r in leads.values()]
    # Long addresses: the URL budget, not the value count, decides how the list is split.
    padded = [f"{'x' * 60}.{n}@very-long-domain-name-for-testing.example" for n in range(150)]
    adapter = salesforce(sf, clock)
    found = adapter.find_leads_by_email(emails + padded)
    assert {lead.id for lead in found} == set(leads)
    sent = queries(sf)
    assert len(sent) >= 3
    assert all(soql.url_length(q) <= QUERY_URL_BUDGET for q in sent)
    assert sum(q.count("@") for q in sent) == len(set(e.lower() for e in emails)) + len(padded)


def test_salesforce_a_record_that_cannot_be_read_is_left_out(sf: SalesforceSandbox, clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> None:
    good = sf.create_lead({"LastName": "Good", "Company": "Fine Co", "Email": "good@fine.example"})
    bad = sf.create_lead({"LastName": "Bad", "Company": "Broken Co", "Email": "bad@broken.example", "Website": "http://[broken"})
    adapter = salesforce(sf, clock)
    found = adapter.find_leads_by_email(["good@fine.example", "bad@broken.example"])
    assert [lead.id for lead in found] == [good]
    assert bad in caplog.text and "bad@broken.example" not in caplog.text


def test_salesforce_sandbox_refuses_a_uri_over_16384_bytes_as_salesforce_does(sf: SalesforceSandbox, clock: FrozenClock) -> None:
    token = salesforce(sf, clock).session().access_token
    url = f"{sf.instance_url}/services/data/v62.0/query"
    auth = {"Authorization": f"Bearer {token}"}
    values = soql.in_list([f"{n:05d}-{'y' * 40}@example.test" for n in range(400)])
    query = f"SELECT Id FROM Lead WHERE Email IN {values}"
    assert soql.url_length(query) > REQUEST_LINE_MAX
    assert requests.get(url, params={"q": query}, headers=auth, verify=sf.ca_file, timeout=10).status_code == 414
    fits = "SELECT Id FROM Lead LIMIT 1"
    padding = {"X-Padding": "p" * REQUEST_LINE_MAX}
    assert requests.get(url, params={"q": fits}, headers=auth | padding, verify=sf.ca_file, timeout=10).status_code == 431
    assert requests.get(url, params={"q": fits}, headers=auth, verify=sf.ca_file, timeout=10).status_code == 200


@pytest.mark.parametrize("max_values", [1, 2, 5])
def test_split_in_covers_every_value_once_within_both_limits(max_values: int) -> None:
    values = [f"v{n}'{'z' * (n % 7)}" for n in range(23)]

    def render(items: str) -> str:
        return f"SELECT Id FROM Lead WHERE Email IN {items}"

    budget = soql.url_length(render(soql.in_list(values[:3]))) + 5
    parts = list(soql.split_in(values, render, max_values=max_values, max_url_length=budget))
    assert all(soql.url_length(p) <= budget for p in parts)
    assert all(p.count("'v") <= max_values for p in parts)
    assert "".join(parts).count("'v") == len(values)
    assert soql.url_length(render(soql.in_list(values[:2]))) == soql.url_length(render("()")) + sum(
        soql.url_length(soql.literal(v)) for v in values[:2]) + soql.url_length(", ")
    with pytest.raises(ValueError, match="URL bytes"):
        list(soql.split_in(["a" * 500], render, max_values=10, max_url_length=100))
