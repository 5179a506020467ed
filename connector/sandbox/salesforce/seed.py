"""The Salesforce sandbox's seeded org: users, queues, lead statuses, accounts and leads (a few converted)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from connector.sandbox.salesforce.org import Org
from connector.sandbox.salesforce.schema import (
    BUDGET_VALUES,
    LEAD_STATUSES,
    PRODUCT_VALUES,
    RATINGS,
    ROLE_VALUES,
    SEED_BASE,
    SENIORITY_VALUES,
    STATE_CODES,
    TIMEFRAME_VALUES,
)
from connector.sandbox.seed import (
    BUDGET_RANGES,
    BUYING_ROLES,
    COUNTRY_BY_CODE,
    SEED_REPS,
    SENIORITY_LEVELS,
    TIMELINES,
    SeedCompany,
    SeedPerson,
    generate_companies,
    generate_people,
)

# Canonical industry slug → the org's Industry picklist value.
SF_INDUSTRY = {
    "technology": "Technology", "finance": "Finance", "healthcare": "Healthcare", "retail": "Retail",
    "manufacturing": "Manufacturing", "education": "Education", "transportation": "Transportation", "media": "Media",
}
# The seed's canonical answers → the org's picklist values.
BUDGET = dict(zip(BUDGET_RANGES, BUDGET_VALUES, strict=True))
ROLE = dict(zip(BUYING_ROLES, ROLE_VALUES, strict=True))
TIMEFRAME = dict(zip(TIMELINES, TIMEFRAME_VALUES, strict=True))
SENIORITY = dict(zip(SENIORITY_LEVELS, SENIORITY_VALUES, strict=True))
PRODUCT = {v.lower(): v for v in PRODUCT_VALUES}
STATE_NAMES = dict(STATE_CODES)


def seed_org(org: Org, seed: int, n_leads: int, admin_username: str, base: datetime = SEED_BASE) -> None:
    """Fill an empty org: the same data for the same arguments, timestamps before `base`."""
    rng = random.Random(seed * 7919 + 1)
    rep_ids = _seed_users(org, admin_username)
    active_rep_ids = [u for u in rep_ids if org.tables["User"][u]["IsActive"]]
    groups = org.tables["Group"]
    queues = (("Inbound Lead Queue", "Inbound_Lead_Queue"), ("Enterprise Queue", "Enterprise_Queue"), ("EMEA Lead Queue", "EMEA_Lead_Queue"),
              ("Unassigned Leads", "Unassigned_Leads"))
    for name, dev in queues:
        gid = org.next_id("Group")
        groups[gid] = {"Id": gid, "Name": name, "DeveloperName": dev, "Type": "Queue", "Email": f"{dev.lower()}@example-corp.test"}
    org.default_queue_id = next(iter(groups))
    for api_name, order, converted, default in LEAD_STATUSES:
        sid = org.next_id("LeadStatus")
        org.tables["LeadStatus"][sid] = {"Id": sid, "MasterLabel": api_name, "ApiName": api_name, "SortOrder": order,
                                         "IsConverted": converted, "IsDefault": default}
    companies = generate_companies()
    _seed_accounts(org, companies, rep_ids)
    for i, person in enumerate(generate_people(n_leads, seed=seed, companies=companies)):
        created = (base - timedelta(days=person.created_days_ago)).replace(microsecond=0)
        modified = (created + timedelta(days=rng.uniform(0, person.created_days_ago))).replace(microsecond=0)
        modified = min(modified, base)
        fields = {**_lead_fields(org, person, rng, active_rep_ids), **_engagement_fields(person, base)}
        lid = org.insert_lead(fields, created=created, modified=modified)
        if i % 40 == 39:  # a few converted leads: updates to them fail [crm-behaviour: Salesforce per-record errors]
            org.convert(lid, modified)


def _seed_users(org: Org, admin_username: str) -> list[str]:
    """The reps, the admin and the integration user; returns the reps' ids."""
    users = org.tables["User"]
    for rep in SEED_REPS:
        uid = org.next_id("User")
        users[uid] = {"Id": uid, "Username": rep.email, "Email": rep.email, "FirstName": rep.first_name,
                      "LastName": rep.last_name, "Name": f"{rep.first_name} {rep.last_name}",
                      "IsActive": rep.is_active, "UserType": "Standard"}
    org.admin_user_id = org.next_id("User")
    users[org.admin_user_id] = {"Id": org.admin_user_id, "Username": admin_username, "Email": admin_username,
                                "FirstName": "Sandbox", "LastName": "Admin", "Name": "Sandbox Admin",
                                "IsActive": True, "UserType": "Standard"}
    org.integration_user_id = org.next_id("User")
    users[org.integration_user_id] = {"Id": org.integration_user_id, "Username": "integration@sandbox.test",
                                      "Email": "integration@sandbox.test", "FirstName": "Lead",
                                      "LastName": "Integration", "Name": "Lead Integration", "IsActive": True,
                                      "UserType": "Standard"}
    return [u for u in users if users[u]["Email"].endswith("example-corp.test")]


def _seed_accounts(org: Org, companies: list[SeedCompany], rep_ids: list[str]) -> None:
    account_ids: dict[str, str] = {}
    for i, co in enumerate(companies):
        aid = org.next_id("Account")
        account_ids[co.key] = aid
        website = (f"https://www.{co.domain}", co.domain, f"http://{co.domain}/")[i % 3]
        org.tables["Account"][aid] = {
            "Id": aid, "IsDeleted": False, "Name": co.name, "Website": website,
            "OwnerId": rep_ids[co.owner_index] if co.owner_index is not None else org.integration_user_id,
            "ParentId": account_ids.get(co.parent_key) if co.parent_key else None,
            "Industry": SF_INDUSTRY[co.industry], "NumberOfEmployees": co.employees,
        }


def _lead_fields(org: Org, person: SeedPerson, rng: random.Random, active_rep_ids: list[str]) -> dict[str, Any]:
    roll = rng.random()
    # Web-to-lead and assignment rules park most new leads in a queue (the default one, some in EMEA's or "Unassigned Leads").
    queue = {row["Name"]: g for g, row in org.tables["Group"].items()}
    emea, unassigned = queue.get("EMEA Lead Queue", org.default_queue_id), queue.get("Unassigned Leads", org.default_queue_id)
    owner = (emea if roll < 0.1 else org.default_queue_id if roll < 0.45 else unassigned if roll < 0.6
             else org.integration_user_id if roll < 0.85 else rng.choice(active_rep_ids))
    status_roll = rng.random()
    status = LEAD_STATUSES[0][0] if status_roll < 0.75 else LEAD_STATUSES[1][0] if status_roll < 0.95 else LEAD_STATUSES[3][0]
    lead: dict[str, Any] = {
        "FirstName": person.first_name, "LastName": person.last_name, "Title": person.title,
        "Company": person.company_name or f"{person.last_name} (personal)", "Email": person.email,
        "Phone": person.phone, "Website": person.company_domain if person.company_name else None,
        "Industry": SF_INDUSTRY[person.industry] if rng.random() < 0.95 else None, "NumberOfEmployees": person.employees,
        "AnnualRevenue": float(person.annual_revenue), "City": person.city, "PostalCode": person.postal_code,
        "LeadSource": person.lead_source, "Status": status, "Rating": rng.choice(RATINGS) if rng.random() < 0.3 else None,
        "OwnerId": owner, **_place(person, rng), **_qualification(person),
    }
    return lead


def _place(person: SeedPerson, rng: random.Random) -> dict[str, Any]:
    """Country and state: most leads through the org's state and country picklists (ISO codes plus their labels),
    some older ones as the free text they were imported with, before the picklists were turned on."""
    if rng.random() < 0.15:
        return {"Country": person.country_text or None, "State": person.state_text if person.country_text else None}
    country = COUNTRY_BY_CODE[person.country]
    region = next(r for r in country.regions if r.code == person.state)
    coded = person.state in STATE_NAMES and person.country in ("US", "CA", "BR")
    return {"Country": country.name, "CountryCode": country.code,
            "State": STATE_NAMES[person.state] if coded else region.spellings[0],
            "StateCode": person.state if coded else None}


def _qualification(person: SeedPerson) -> dict[str, Any]:
    """The org's own BANT, seniority and product-interest fields, in its picklist values."""
    return {
        "Budget__c": BUDGET.get(person.budget_range or ""), "Buying_Role__c": ROLE.get(person.buying_role or ""),
        "Need_Confirmed__c": bool(person.need),  # a checkbox: never empty, unchecked = false
        "Timeframe__c": TIMEFRAME.get(person.timeline or ""), "Seniority__c": SENIORITY[person.seniority],
        "Product_Interest__c": ";".join(PRODUCT[p] for p in person.products),
        "Estimated_Deal_Value__c": None if person.deal_size is None else float(person.deal_size),
    }


def _engagement_fields(person: SeedPerson, base: datetime) -> dict[str, Any]:
    """LastActivityDate (the last task or event: a date) and the org's web-tracking custom fields."""
    days = person.activity_days_ago
    sales = [days[k] for k in ("sales_activity", "note") if k in days]
    visit = days.get("visit")
    return {
        "LastActivityDate": (base - timedelta(days=min(sales))).date() if sales else None,
        "Page_Views__c": float(person.page_views),
        "Last_Visit__c": (base - timedelta(days=visit)).replace(microsecond=0) if visit is not None else None,
    }
