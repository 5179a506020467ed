"""The HubSpot sandbox's seeded account: owners, companies (with parents), contacts and their leads."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime

from connector.sandbox.hubspot.objects import (
    ASSOC_CHILD_TO_PARENT,
    ASSOC_COMPANY_CONTACT,
    ASSOC_CONTACT_COMPANY,
    ASSOC_CONTACT_LEAD,
    ASSOC_LEAD_CONTACT,
    ASSOC_PARENT_TO_CHILD,
)
from connector.sandbox.hubspot.owners import EMEA_QUEUE_OWNER_ID, OWNER_ID_START, QUEUE_OWNER_ID, seed_owners
from connector.sandbox.hubspot.properties import LEAD_PIPELINE_STAGES
from connector.sandbox.hubspot.records import RecordStore
from connector.sandbox.hubspot.wire import iso, to_ms
from connector.sandbox.seed import SEED_REPS, SeedCompany, SeedPerson, generate_companies, generate_people

DAY_MS = 86_400_000


def seed_account(store: RecordStore, seed: int, n_contacts: int, n_companies: int, n_leads: int, base: datetime) -> None:
    """Fill an empty store: the same data for the same arguments, timestamps before `base`."""
    base_ms = to_ms(base)
    rng = random.Random(seed * 7919 + 1)  # the sandbox's own choices; seed.py's stream stays untouched
    reps = list(SEED_REPS)
    store.owners.update(seed_owners(reps))
    rep_owner = [str(OWNER_ID_START + i) for i in range(len(reps))]
    active = [rep_owner[i] for i, rep in enumerate(reps) if rep.is_active]
    inactive = [rep_owner[i] for i, rep in enumerate(reps) if not rep.is_active]
    seed_companies = generate_companies(n_companies, seed)
    company_ids = _seed_companies(store, seed_companies, rep_owner, rng, base_ms)
    lead_every = max(1, n_contacts // n_leads) if n_leads > 0 else 0
    made_leads = 0
    for i, person in enumerate(generate_people(n_contacts, seed, seed_companies)):
        created = base_ms - int(person.created_days_ago * DAY_MS)
        modified = min(base_ms, created + int(rng.uniform(0, person.created_days_ago) * DAY_MS))
        props = _person_properties(person, rng, active, inactive, base_ms)
        contact_id = store.insert("contacts", props, created, modified, "IMPORT")
        if person.company_key is not None:
            store.link("contacts", contact_id, "companies", company_ids[person.company_key],
                       ASSOC_CONTACT_COMPANY, ASSOC_COMPANY_CONTACT)
        if lead_every and i % lead_every == 0 and made_leads < n_leads:
            made_leads += 1
            _seed_lead(store, person, props, contact_id, created, modified, rng, base_ms)


def _seed_companies(store: RecordStore, companies: Sequence[SeedCompany], rep_owner: Sequence[str], rng: random.Random,
                    base_ms: int) -> dict[str, int]:
    company_ids: dict[str, int] = {}
    for company in companies:
        created = base_ms - int(rng.uniform(200, 800) * DAY_MS)
        modified = min(base_ms, created + int(rng.uniform(0, 150) * DAY_MS))
        props = {
            "name": company.name, "domain": company.domain, "website": f"https://www.{company.domain}",
            "industry": company.industry, "numberofemployees": str(company.employees),
            "annualrevenue": str(company.annual_revenue), "country": company.country,
        }
        if company.owner_index is not None:
            props["hubspot_owner_id"] = rep_owner[company.owner_index]
        cid = store.insert("companies", props, created, modified, "IMPORT")
        company_ids[company.key] = cid
        if company.parent_key is not None:
            parent = company_ids[company.parent_key]
            store.records["companies"][cid].props["hs_parent_company_id"] = str(parent)
            store.link("companies", cid, "companies", parent, ASSOC_CHILD_TO_PARENT, ASSOC_PARENT_TO_CHILD)
    return company_ids


def _seed_lead(store: RecordStore, person: SeedPerson, props: dict[str, str], contact_id: int, created: int, modified: int,
               rng: random.Random, base_ms: int) -> None:
    stage = rng.choices([s for s, _ in LEAD_PIPELINE_STAGES[:4]], weights=[70, 15, 10, 5])[0]
    lead_props = {"hs_lead_name": f"{person.first_name} {person.last_name}",
                  "hs_pipeline": "lead-pipeline-id", "hs_pipeline_stage": stage}
    if props.get("hubspot_owner_id"):
        lead_props["hubspot_owner_id"] = props["hubspot_owner_id"]
    lead_created = min(base_ms, created + int(rng.uniform(0, 2) * DAY_MS))
    lead_id = store.insert("leads", lead_props, lead_created, max(lead_created, modified), "IMPORT")
    store.link("leads", lead_id, "contacts", contact_id, ASSOC_LEAD_CONTACT, ASSOC_CONTACT_LEAD)


def _person_properties(person: SeedPerson, rng: random.Random, active: Sequence[str], inactive: Sequence[str],
                       base_ms: int) -> dict[str, str]:
    domain = person.email.rsplit("@", 1)[1]
    props = {
        "email": person.email, "firstname": person.first_name, "lastname": person.last_name,
        "jobtitle": person.title, "phone": person.phone, "company": person.company_name,
        "website": f"https://{person.company_domain}" if person.company_name else "",
        "hs_email_domain": domain, "industry": person.industry, "numemployees": str(person.employees),
        "annualrevenue": str(person.annual_revenue), "country": person.country, "state": person.state,
        "city": person.city, "zip": person.postal_code, "hs_analytics_source": person.lead_source,
        "hs_analytics_num_page_views": str(person.page_views),
        "hs_analytics_num_visits": str((person.page_views + 1) // 2),
        "num_conversion_events": str(person.form_submissions), "hs_email_open": str(person.email_opens),
        "hs_email_click": str(person.email_clicks), "pricing_page_views": str(person.pricing_page_views),
        "product_interest": person.product_interest,
    }
    for key, value in (("budget", person.budget), ("authority", person.authority), ("need", person.need),
                       ("timeframe", person.timeframe)):
        if value is not None:
            props[f"bant_{key}"] = "true" if value else "false"
    if person.last_activity_days_ago is not None:
        stamp = iso(base_ms - int(person.last_activity_days_ago * DAY_MS))
        props["notes_last_updated"] = stamp
        props["hs_last_sales_activity_timestamp"] = stamp
    props["lifecyclestage"] = rng.choices(
        ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity"], weights=[55, 35, 6, 3, 1])[0]
    props["hs_lead_status"] = rng.choices(["", "NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT"], weights=[60, 20, 10, 5, 5])[0]
    roll = rng.random()
    if roll < 0.12:
        props["hubspot_owner_id"] = rng.choice(list(active))
    elif roll < 0.14 and inactive:
        props["hubspot_owner_id"] = rng.choice(list(inactive))  # owned by a since-deactivated rep
    elif roll < 0.24:
        props["hubspot_owner_id"] = QUEUE_OWNER_ID  # parked in a queue by a form or workflow: nobody's choice yet
    elif roll < 0.30:
        props["hubspot_owner_id"] = EMEA_QUEUE_OWNER_ID
    return {k: v for k, v in props.items() if v != ""}
