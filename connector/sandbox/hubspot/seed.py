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
from connector.sandbox.hubspot.properties import COMPANY_INDUSTRIES, LEAD_PIPELINE_STAGES
from connector.sandbox.hubspot.records import RecordStore
from connector.sandbox.hubspot.wire import iso, to_ms
from connector.sandbox.seed import (
    COUNTRY_BY_CODE,
    SEED_REPS,
    SeedCompany,
    SeedPerson,
    generate_companies,
    generate_people,
    hubspot_band,
)

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
            "industry": company_industry(company.industry, rng), "numberofemployees": str(company.employees),
            "annualrevenue": str(company.annual_revenue), "country": COUNTRY_BY_CODE[company.country].name,
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


# Canonical industry slug → HubSpot company industry values (the enumeration) that mean it.
HS_INDUSTRY: dict[str, tuple[str, ...]] = {
    "technology": ("COMPUTER_SOFTWARE", "INFORMATION_TECHNOLOGY_AND_SERVICES"), "finance": ("FINANCIAL_SERVICES",),
    "healthcare": ("HOSPITAL_HEALTH_CARE",), "retail": ("RETAIL",), "manufacturing": ("AUTOMOTIVE", "AVIATION_AEROSPACE"),
    "education": ("EDUCATION_MANAGEMENT", "HIGHER_EDUCATION"),
    "transportation": ("LOGISTICS_AND_SUPPLY_CHAIN", "TRANSPORTATION_TRUCKING_RAILROAD"), "media": ("ONLINE_MEDIA", "BROADCAST_MEDIA"),
}
# The words people type into the contact's free-text industry besides HubSpot's labels (the connector ships most of
# them; "Cloud" and "Payments" are this portal's own: the example config's [canonical] industry_map maps them).
HS_INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "technology": ("Software", "SaaS", "IT", "Cloud"), "finance": ("Fintech", "Finance", "Payments"), "healthcare": ("Healthcare", "Health care"),
    "retail": ("E-commerce", "retail"), "manufacturing": ("Manufacturing",), "education": ("Education", "EdTech"),
    "transportation": ("Logistics",), "media": ("Media", "Publishing"),
}
INDUSTRY_JUNK = ("n/a", "Various", "-", "tbd")
INDUSTRY_LABELS = dict(COMPANY_INDUSTRIES)
# Engagement timestamp property per neutral activity kind [crm-behaviour: HubSpot engagement timestamps].
ACTIVITY_PROPERTIES = {
    "visit": "hs_analytics_last_visit_timestamp", "email_open": "hs_email_last_open_date",
    "email_click": "hs_email_last_click_date", "conversion": "recent_conversion_date",
    "sales_activity": "hs_last_sales_activity_timestamp", "note": "notes_last_updated",
}
SENIORITY_VALUES = {"individual": "individual_contributor"}  # canonical level → the portal's internal value, when they differ


def company_industry(slug: str, rng: random.Random) -> str:
    """A company's industry as HubSpot's enumeration holds it."""
    return rng.choice(HS_INDUSTRY[slug])


def contact_industry(slug: str, rng: random.Random) -> str:
    """A contact's free-text industry: mostly HubSpot's labels, some enumeration values and own words, a little junk."""
    roll = rng.random()
    value = company_industry(slug, rng)
    if roll < 0.55:
        return INDUSTRY_LABELS[value]
    if roll < 0.65:
        return INDUSTRY_LABELS[value].lower()
    if roll < 0.8:
        return value  # set by a workflow copying the company's value
    if roll < 0.95:
        return rng.choice(HS_INDUSTRY_WORDS[slug])
    return rng.choice(INDUSTRY_JUNK) if roll < 0.98 else ""


def employee_band(employees: int, rng: random.Random) -> str:
    """numemployees: the default bands; big companies in the portal-added 1000-5000 / 5000-10000 / 10000+ or the old 1000+."""
    band = hubspot_band(employees)
    if band != "1000+" or rng.random() < 0.45:
        return band
    return "1000-5000" if employees < 5000 else "5000-10000" if employees < 10000 else "10000+"


def revenue_text(revenue: int, rng: random.Random) -> str:
    """annualrevenue is text on contacts: digits mostly, sometimes "$12M" or "$800K", sometimes nothing."""
    roll = rng.random()
    if roll < 0.8:
        return str(revenue)
    if roll < 0.92:
        for scale, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
            if revenue >= scale:
                return f"${round(revenue / scale, 1):g}{suffix}"
    return ""


def _qualification(person: SeedPerson) -> dict[str, str]:
    """The portal's own BANT, seniority and product-interest properties, in its internal values."""
    props = {
        "budget_range": person.budget_range or "", "decision_role": person.buying_role or "",
        "purchase_timeline": person.timeline or "",
        "need_confirmed": "" if person.need is None else str(person.need).lower(),
        "seniority": SENIORITY_VALUES.get(person.seniority, person.seniority),
        "product_interest": ";".join(person.products),
        "estimated_deal_value": "" if person.deal_size is None else str(person.deal_size),
    }
    return props


def _person_properties(person: SeedPerson, rng: random.Random, active: Sequence[str], inactive: Sequence[str],
                       base_ms: int) -> dict[str, str]:
    domain = person.email.rsplit("@", 1)[1]
    props = {
        "email": person.email, "firstname": person.first_name, "lastname": person.last_name,
        "jobtitle": person.title, "phone": person.phone, "company": person.company_name,
        "website": f"https://{person.company_domain}" if person.company_name else "",
        "hs_email_domain": domain, "industry": contact_industry(person.industry, rng),
        "numemployees": employee_band(person.employees, rng), "annualrevenue": revenue_text(person.annual_revenue, rng),
        "country": person.country_text, "state": person.state_text if person.country_text else "",
        "city": person.city, "zip": person.postal_code, "hs_analytics_source": person.lead_source,
        "hs_analytics_num_page_views": str(person.page_views),
        "hs_analytics_num_visits": str((person.page_views + 1) // 2),
        "num_conversion_events": str(person.form_submissions), "hs_email_open": str(person.email_opens),
        "hs_email_click": str(person.email_clicks), "pricing_page_views": str(person.pricing_page_views),
        **_qualification(person),
    }
    for kind, days in person.activity_days_ago.items():
        props[ACTIVITY_PROPERTIES[kind]] = iso(base_ms - int(days * DAY_MS))
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
