"""The sandboxes hold data shaped like live portals and orgs, not like the connector's parser
([crm-behaviour: HubSpot contact field shapes], [crm-behaviour: Salesforce Lead field shapes]):
HubSpot employee bands, text revenue, free-text places and industries, the portal's own BANT picklists and the
six engagement timestamps; Salesforce picklist labels, CountryCode / StateCode, custom qualification fields and
queue-owned leads. The properties API and describe report every such field with its real type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from connector.canonical.countries import Places
from connector.canonical.reader import Canonical
from connector.core.clock import FrozenClock
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.hubspot.seed import ACTIVITY_PROPERTIES
from connector.sandbox.salesforce import SalesforceSandbox
from connector.sandbox.seed import COUNTRY_TYPOS, generate_companies, generate_people

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
HS_ENGAGEMENT = (
    "hs_analytics_last_visit_timestamp", "hs_email_last_open_date", "hs_email_last_click_date", "recent_conversion_date",
    "hs_last_sales_activity_timestamp", "notes_last_updated",
)


@pytest.fixture(scope="module")
def hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=1500, clock=FrozenClock(NOW)) as sb:
        yield sb


@pytest.fixture(scope="module")
def salesforce() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=42, leads=1500, clock=FrozenClock(NOW)) as sb:
        yield sb


def _hs_properties(sb: HubSpotSandbox, object_type: str) -> dict[str, dict[str, Any]]:
    reply = requests.get(f"{sb.base_url}/crm/v3/properties/{object_type}", headers={"Authorization": f"Bearer {sb.token}"}, timeout=10)
    assert reply.status_code == 200
    return {p["name"]: p for p in reply.json()["results"]}


def _sf_describe(sb: SalesforceSandbox) -> dict[str, dict[str, Any]]:
    http = requests.Session()
    token = http.post(f"{sb.instance_url}/services/oauth2/token", verify=sb.ca_file, timeout=10, data={
        "grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}).json()["access_token"]
    reply = http.get(f"{sb.instance_url}/services/data/v62.0/sobjects/Lead/describe", verify=sb.ca_file, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    return {f["name"]: f for f in reply.json()["fields"]}


def _options(prop: dict[str, Any]) -> list[str]:
    return [o["value"] for o in prop["options"]]


def test_hubspot_properties_api_reports_the_real_types(hubspot: HubSpotSandbox) -> None:
    contact = _hs_properties(hubspot, "contacts")
    kinds = {name: (p["type"], p["fieldType"]) for name, p in contact.items()}
    assert kinds["numemployees"] == ("enumeration", "select")
    assert _options(contact["numemployees"])[:7] == ["1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+"]
    assert "1000-5000" in _options(contact["numemployees"])  # added by this portal
    assert kinds["annualrevenue"] == ("string", "text") and kinds["industry"] == ("string", "text")
    assert kinds["country"] == kinds["state"] == ("string", "text")
    assert _options(contact["budget_range"]) == ["under_50k", "50k_250k", "over_250k"]
    assert {kinds[n] for n in ("budget_range", "decision_role", "purchase_timeline", "seniority")} == {("enumeration", "select")}
    assert kinds["need_confirmed"] == ("bool", "booleancheckbox") and kinds["product_interest"] == ("enumeration", "checkbox")
    assert kinds["estimated_deal_value"] == ("number", "number")
    assert not any(contact[n]["hubspotDefined"] for n in ("budget_range", "decision_role", "seniority", "product_interest"))
    assert all(kinds[n][0] == "datetime" for n in HS_ENGAGEMENT)
    assert not any(name.startswith("bant_") for name in contact)
    company = _hs_properties(hubspot, "companies")
    assert company["industry"]["type"] == "enumeration" and "COMPUTER_SOFTWARE" in _options(company["industry"])


def test_hubspot_contacts_hold_what_live_portals_hold(hubspot: HubSpotSandbox) -> None:
    records = [hubspot.get_record("contacts", rid) or {} for rid in hubspot.records_ids("contacts")]
    contact = _hs_properties(hubspot, "contacts")
    bands = Counter(r["numemployees"] for r in records)
    assert set(bands) <= set(_options(contact["numemployees"])) and len(bands) >= 8
    countries = Counter(r.get("country") for r in records)
    assert {"United States", "USA", "US", "U.S.", "Deutschland", "Germany", "de", "UK", "Suomi", "Brasil"} <= set(countries)
    typos = sum(countries[t] for t in COUNTRY_TYPOS)
    assert 0.01 * len(records) < typos < 0.05 * len(records)  # a few, as in a live portal
    places = Places()
    given = [c for c in countries.elements() if c]
    assert sum(places.country(c) is not None for c in given) / len(given) >= 0.95
    industries = Counter(r.get("industry") for r in records)
    assert {"Computer Software", "COMPUTER_SOFTWARE", "computer software", "Hospital & Health Care"} <= set(industries)
    canonical = Canonical()
    known = [i for i in industries.elements() if i]
    assert sum(canonical.industry(i) is not None for i in known) / len(known) >= 0.95
    revenue = [r["annualrevenue"] for r in records if r.get("annualrevenue")]
    assert any(v.startswith("$") and v.endswith(("M", "K")) for v in revenue) and any(v.isdigit() for v in revenue)
    allowed = {n: set(_options(contact[n])) for n in ("budget_range", "decision_role", "purchase_timeline", "seniority", "product_interest")}
    for r in records:
        for name, values in allowed.items():
            assert set(filter(None, r.get(name, "").split(";"))) <= values, (name, r.get(name))
    assert any(";" in r["product_interest"] for r in records)
    for prop in HS_ENGAGEMENT:
        assert 0 < sum(prop in r for r in records) < len(records), prop
    queues = {o["id"] for o in hubspot.owners() if o["type"] == "QUEUE"}
    assert sum(r.get("hubspot_owner_id") in queues for r in records) > 0.1 * len(records)


def test_salesforce_describe_reports_the_real_types(salesforce: SalesforceSandbox) -> None:
    fields = _sf_describe(salesforce)
    kinds = {name: f["type"] for name, f in fields.items()}
    assert (kinds["Country"], kinds["State"], kinds["CountryCode"], kinds["StateCode"]) == ("string", "string", "picklist", "picklist")
    country_codes = {v["value"]: v["label"] for v in fields["CountryCode"]["picklistValues"]}
    assert country_codes["US"] == "United States" and country_codes["DE"] == "Germany"
    assert {"Technology", "Finance", "Healthcare", "Not For Profit"} <= {v["value"] for v in fields["Industry"]["picklistValues"]}
    assert (kinds["NumberOfEmployees"], kinds["AnnualRevenue"], kinds["LastActivityDate"]) == ("int", "currency", "date")
    assert kinds["Product_Interest__c"] == "multipicklist" and kinds["Need_Confirmed__c"] == "boolean"
    assert {kinds[n] for n in ("Budget__c", "Buying_Role__c", "Timeframe__c", "Seniority__c")} == {"picklist"}
    assert (kinds["Last_Visit__c"], kinds["Page_Views__c"], kinds["Estimated_Deal_Value__c"]) == ("datetime", "double", "currency")
    assert [v["value"] for v in fields["Budget__c"]["picklistValues"]] == ["Under $50K", "$50K-$250K", "Over $250K"]


def test_salesforce_leads_hold_what_live_orgs_hold(salesforce: SalesforceSandbox) -> None:
    leads = [salesforce.get_lead(i) or {} for i in salesforce.lead_ids()]
    coded = [lead for lead in leads if lead["CountryCode"]]
    assert 0.75 * len(leads) < len(coded) < 0.95 * len(leads)  # the picklists; older leads keep their free text
    assert {lead["Country"] for lead in coded} >= {"United States", "Germany", "Finland"}
    free_text = Counter(lead["Country"] for lead in leads if not lead["CountryCode"])
    assert {"USA", "Deutschland"} & set(free_text)
    assert {lead["StateCode"] for lead in leads if lead["CountryCode"] == "US"} <= {"CA", "NY", "TX", "WA", "MA"}
    assert all(isinstance(lead["NumberOfEmployees"], int) for lead in leads)
    assert {lead["Industry"] for lead in leads} >= {"Technology", "Finance", None}
    multi = [lead["Product_Interest__c"] for lead in leads if ";" in (lead["Product_Interest__c"] or "")]
    assert multi and all(part[0].isupper() for m in multi for part in m.split(";"))  # labels: "Analytics;CRM"
    assert {lead["Budget__c"] for lead in leads} == {"Under $50K", "$50K-$250K", "Over $250K", None}
    assert any(lead["Last_Visit__c"] for lead in leads) and any(lead["LastActivityDate"] for lead in leads)
    queues = {q["Id"]: q["Name"] for q in salesforce.queues()}
    parked = Counter(queues[lead["OwnerId"]] for lead in leads if lead["OwnerId"] in queues)
    assert {"Inbound Lead Queue", "EMEA Lead Queue", "Unassigned Leads"} <= set(parked)


def test_seed_is_deterministic_and_consistent() -> None:
    companies = generate_companies(60, 42)
    first = list(generate_people(300, 42, companies))
    assert first == list(generate_people(300, 42, generate_companies(60, 42)))
    assert first != list(generate_people(300, 43, companies))
    # One person's engagement never predates the record, and its latest timestamp is last_activity.
    for person in first:
        assert all(days <= person.created_days_ago for days in person.activity_days_ago.values())
        assert person.last_activity_days_ago == min(person.activity_days_ago.values(), default=None)
    assert set(ACTIVITY_PROPERTIES) == {k for p in first for k in p.activity_days_ago}
