"""The Salesforce sandbox's seeded org: users, queues, lead statuses, accounts and leads (a few converted)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from connector.sandbox.salesforce.org import Org
from connector.sandbox.salesforce.schema import BANT_FIELDS, LEAD_STATUSES, RATINGS, SEED_BASE
from connector.sandbox.seed import SEED_REPS, SeedCompany, SeedPerson, generate_companies, generate_people


def seed_org(org: Org, seed: int, n_leads: int, admin_username: str) -> None:
    """Fill an empty org: the same data for the same arguments."""
    rng = random.Random(seed * 7919 + 1)
    rep_ids = _seed_users(org, admin_username)
    active_rep_ids = [u for u in rep_ids if org.tables["User"][u]["IsActive"]]
    groups = org.tables["Group"]
    queues = (("Inbound Lead Queue", "Inbound_Lead_Queue"), ("Enterprise Queue", "Enterprise_Queue"), ("EMEA Lead Queue", "EMEA_Lead_Queue"))
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
        created = (SEED_BASE - timedelta(days=person.created_days_ago)).replace(microsecond=0)
        modified = (created + timedelta(days=rng.uniform(0, person.created_days_ago))).replace(microsecond=0)
        modified = min(modified, SEED_BASE)
        lid = org.insert_lead(_lead_fields(org, person, rng, active_rep_ids), created=created, modified=modified)
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
            "Industry": co.industry, "NumberOfEmployees": co.employees,
        }


def _lead_fields(org: Org, person: SeedPerson, rng: random.Random, active_rep_ids: list[str]) -> dict[str, Any]:
    roll = rng.random()
    # Web-to-lead and assignment rules park most new leads in a queue (the default one, some in EMEA's).
    emea = next((g for g, row in org.tables["Group"].items() if row["Name"] == "EMEA Lead Queue"), org.default_queue_id)
    owner = emea if roll < 0.1 else org.default_queue_id if roll < 0.6 else org.integration_user_id if roll < 0.85 else rng.choice(active_rep_ids)
    status_roll = rng.random()
    status = LEAD_STATUSES[0][0] if status_roll < 0.75 else LEAD_STATUSES[1][0] if status_roll < 0.95 else LEAD_STATUSES[3][0]
    lead: dict[str, Any] = {
        "FirstName": person.first_name, "LastName": person.last_name, "Title": person.title,
        "Company": person.company_name or f"{person.last_name} (personal)", "Email": person.email,
        "Phone": person.phone, "Website": person.company_domain if person.company_name else None,
        "Industry": person.industry, "NumberOfEmployees": person.employees,
        "AnnualRevenue": float(person.annual_revenue), "Country": person.country, "State": person.state,
        "City": person.city, "PostalCode": person.postal_code, "LeadSource": person.lead_source,
        "Status": status, "Rating": rng.choice(RATINGS) if rng.random() < 0.3 else None, "OwnerId": owner,
        "Product_Interest__c": person.product_interest, "Seniority__c": person.seniority,
        "LastActivityDate": (SEED_BASE - timedelta(days=person.last_activity_days_ago)).date()
        if person.last_activity_days_ago is not None else None,
    }
    for name, value in zip(BANT_FIELDS, (person.budget, person.authority, person.need, person.timeframe), strict=True):
        lead[name] = None if value is None else ("Yes" if value else "No")
    return lead
