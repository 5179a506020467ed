"""Same person, same score: one person in both sandbox CRMs, each in its own CRM's shapes, normalizes to the same
lead and gets the same score and grade from the example config.

HubSpot holds free text and the portal's own picklists ("United States", "California", the "100-500" band,
"Computer Software", "$25M", budget_range = 50k_250k, multi-checkbox "analytics;crm"); Salesforce holds its own
labels and codes (Country "USA" with CountryCode "US", StateCode "CA", NumberOfEmployees 250, Industry
"Technology", Budget__c "$50K-$250K", multi-select "Analytics;CRM").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.core.clock import FrozenClock
from connector.core.models import Lead
from connector.ops.demo import demo_settings
from connector.runners.jobs import backfill, make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

# A Tuesday afternoon in Europe, morning in New York.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LAST_VISIT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

HUBSPOT_CONTACT = {
    "email": "dana.kovacs@lumenworks.example", "firstname": "Dana", "lastname": "Kovacs", "jobtitle": "VP of Sales",
    "phone": "+1 415 555 0199", "company": "Lumenworks Inc", "website": "https://lumenworks.example",
    "industry": "Computer Software", "numemployees": "100-500", "annualrevenue": "$25M",
    "country": "United States", "state": "California", "city": "San Francisco", "zip": "94105",
    "hs_analytics_source": "REFERRALS", "budget_range": "50k_250k", "decision_role": "decision_maker",
    "need_confirmed": "true", "purchase_timeline": "this_quarter", "seniority": "vp", "product_interest": "analytics;crm",
    "estimated_deal_value": "120000", "hs_analytics_num_page_views": "14", "hs_email_open": "3",
    "hs_last_sales_activity_timestamp": "2026-11-20T00:00:00.000Z", "hs_analytics_last_visit_timestamp": "2026-11-23T09:30:00.000Z",
}
SALESFORCE_LEAD = {
    "FirstName": "Dana", "LastName": "Kovacs", "Title": "VP of Sales", "Email": "dana.kovacs@lumenworks.example",
    "Phone": "+1 415 555 0199", "Company": "Lumenworks Inc", "Website": "lumenworks.example", "Industry": "Technology",
    "NumberOfEmployees": 250, "AnnualRevenue": 25_000_000.0, "Country": "USA", "CountryCode": "US",
    "State": "California", "StateCode": "CA", "City": "San Francisco", "PostalCode": "94105", "LeadSource": "REFERRALS",
    "Budget__c": "$50K-$250K", "Buying_Role__c": "Decision Maker", "Need_Confirmed__c": True, "Timeframe__c": "This Quarter",
    "Seniority__c": "VP", "Product_Interest__c": "Analytics;CRM", "Estimated_Deal_Value__c": 120_000.0, "Page_Views__c": 14.0,
    "LastActivityDate": date(2026, 11, 20), "Last_Visit__c": LAST_VISIT,
}
# The lead fields both CRMs hold for this person, which must come out the same.
COMMON = (
    "email", "first_name", "last_name", "title", "seniority", "phone", "company_name", "company_domain", "industry",
    "annual_revenue", "deal_size", "country", "state", "city", "postal_code", "lead_source", "product_interest",
    "budget", "authority", "need", "timeframe", "last_activity_at", "country_inferred",
)


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[dict[str, Lead], dict[str, Any]]]:
    """The person's normalized lead and backfill score explanation, by CRM."""
    clock = FrozenClock(T0)
    with HubSpotSandbox(seed=5, contacts=0, clock=clock) as hs, SalesforceSandbox(seed=5, leads=0, clock=clock) as sf:
        hs_id = hs.create_contact(HUBSPOT_CONTACT)
        sf_id = sf.create_lead(SALESFORCE_LEAD)
        settings = demo_settings(tmp_path, hs, sf)
        with Store.open(settings.store.url) as store:
            adapters = make_adapters(settings, clock=clock)
            summary = backfill(settings, store, adapters, clock)
            assert summary.aborted is None and summary.dead_lettered == 0
            leads = {"hubspot": adapters["hubspot"].fetch_by_ids([hs_id])[0],
                     "salesforce": adapters["salesforce"].fetch_by_ids([sf_id])[0]}
            scores = {crm: store.decisions_for(lead.key)[-1].explanation["score"] for crm, lead in leads.items()}
            written = {"hubspot": (hs.get_record("contacts", hs_id) or {}).get("connector_lead_grade"),
                       "salesforce": (sf.get_lead(sf_id) or {}).get("Rating")}
            yield leads, {"scores": scores, "written": written}


def test_same_person_normalizes_to_the_same_lead(both: tuple[dict[str, Lead], dict[str, Any]]) -> None:
    leads, _ = both
    hs, sf = leads["hubspot"], leads["salesforce"]
    assert {f: getattr(hs, f) for f in COMMON} == {f: getattr(sf, f) for f in COMMON}
    assert (hs.country, hs.state, hs.industry) == ("US", "CA", "technology")
    assert hs.product_interest == ("analytics", "crm")
    assert (hs.budget, hs.authority, hs.need, hs.timeframe) == (True, True, True, True)
    assert hs.seniority == "vp" and hs.annual_revenue == 25_000_000 and hs.deal_size == 120_000
    assert hs.last_activity_at == LAST_VISIT  # the latest engagement timestamp, in both CRMs
    # Sizes: HubSpot holds a band (its lower bound is the number), Salesforce the head count; both in one band.
    assert (hs.employees, hs.employees_band) == (100, "100-500")
    assert sf.employees == 250 and 100 <= sf.employees < 500
    assert hs.raw["country"] == "United States"


def test_same_person_gets_the_same_score_and_grade(both: tuple[dict[str, Lead], dict[str, Any]]) -> None:
    _, result = both
    scores = result["scores"]
    assert scores["hubspot"] == scores["salesforce"]
    core = scores["hubspot"]["core"]
    fired = {c["rule"] for c in core["contributions"]}
    assert {"ICP country", "Target industry", "Mid-market size", "Revenue over 10M", "VP or director", "BANT qualified"} <= fired
    assert core["grade"] == "hot"
    assert result["written"] == {"hubspot": "hot", "salesforce": "Hot"}
