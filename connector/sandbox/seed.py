"""Deterministic, realistic seed data for the sandbox CRMs: people, companies and sales reps, CRM-neutral."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

FIRST_NAMES = [
    "Anna", "Ben", "Chloe", "Daniel", "Elena", "Felix", "Grace", "Hiro", "Isla", "Jonas", "Kaisa", "Liam",
    "Maya", "Noah", "Olivia", "Pekka", "Quinn", "Ravi", "Sofia", "Tomás", "Uma", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Somchai", "Nattaya", "Aino", "Mikko", "Priya", "Lucas", "Chen", "Fatima", "Oskar",
]
LAST_NAMES = [
    "Smith", "Virtanen", "Garcia", "Müller", "Rossi", "Tanaka", "Kowalski", "Dubois", "Silva", "Nguyen",
    "O'Neil", "Johansson", "Korhonen", "Srisuk", "Patel", "Brown", "Lee", "Martin", "Novak", "Kim",
]
TITLES = [
    ("Chief Executive Officer", "c_level"), ("CTO", "c_level"), ("VP of Sales", "vp"), ("VP Marketing", "vp"),
    ("Head of Revenue Operations", "director"), ("Director of IT", "director"), ("Sales Manager", "manager"),
    ("Marketing Manager", "manager"), ("Software Engineer", "individual"), ("Account Executive", "individual"),
    ("Student", "other"), ("Consultant", "individual"), ("Operations Analyst", "individual"),
]
INDUSTRIES = ["SOFTWARE", "FINANCIAL_SERVICES", "HEALTHCARE", "RETAIL", "MANUFACTURING", "EDUCATION", "LOGISTICS", "MEDIA"]
COUNTRIES = [
    ("US", ["CA", "NY", "TX", "WA", "MA"], ["94105", "10001", "73301", "98101", "02110"]),
    ("CA", ["ON", "BC", "QC"], ["M5V 2T6", "V6B 1A1", "H3B 2Y5"]),
    ("GB", ["England", "Scotland"], ["EC1A 1BB", "EH1 1YZ"]),
    ("DE", ["Berlin", "Bavaria"], ["10115", "80331"]),
    ("FI", ["Uusimaa", "Pirkanmaa"], ["00100", "33100"]),
    ("TH", ["Bangkok", "Chiang Mai"], ["10110", "50000"]),
    ("BR", ["SP", "RJ"], ["01000-000", "20000-000"]),
    ("JP", ["Tokyo", "Osaka"], ["100-0001", "530-0001"]),
]
CITIES = {"US": ["San Francisco", "New York", "Austin", "Seattle", "Boston"], "CA": ["Toronto", "Vancouver", "Montreal"],
          "GB": ["London", "Edinburgh"], "DE": ["Berlin", "Munich"], "FI": ["Helsinki", "Tampere"],
          "TH": ["Bangkok", "Chiang Mai"], "BR": ["São Paulo", "Rio de Janeiro"], "JP": ["Tokyo", "Osaka"]}
LEAD_SOURCES = ["ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS", "SOCIAL_MEDIA", "EMAIL_MARKETING", "DIRECT_TRAFFIC", "OFFLINE"]
PRODUCTS = ["analytics", "crm", "payments", "support"]
FREE_MAIL = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com"]
COMPETITOR_DOMAINS = ["rivalsoft.example", "competitor-crm.example"]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                 "Soylent", "Aperture", "Nakatomi", "Oscorp", "Pied Piper", "Wonka", "Nordic Oy", "Siam Co"]
COMPANY_SUFFIX = ["Inc", "Ltd", "GmbH", "Oy", "Corp", "Group", "Labs"]


@dataclass(frozen=True)
class SeedCompany:
    key: str
    name: str
    domain: str
    industry: str
    employees: int
    annual_revenue: int
    country: str
    owner_index: int | None  # index into SEED_REPS of the account owner, None = unowned
    parent_key: str | None = None


@dataclass(frozen=True)
class SeedPerson:
    key: str
    first_name: str
    last_name: str
    email: str
    title: str
    seniority: str
    phone: str
    company_key: str | None
    company_name: str
    company_domain: str
    industry: str
    employees: int
    annual_revenue: int
    country: str
    state: str
    city: str
    postal_code: str
    lead_source: str
    product_interest: str
    budget: bool | None
    authority: bool | None
    need: bool | None
    timeframe: bool | None
    page_views: int
    pricing_page_views: int
    form_submissions: int
    email_opens: int
    email_clicks: int
    created_days_ago: float
    last_activity_days_ago: float | None
    engagement: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SeedRep:
    email: str
    first_name: str
    last_name: str
    is_active: bool = True


SEED_REPS: tuple[SeedRep, ...] = (
    SeedRep("ava.sales@example-corp.test", "Ava", "Anders"),
    SeedRep("ben.sales@example-corp.test", "Ben", "Brook"),
    SeedRep("cai.sales@example-corp.test", "Cai", "Chen"),
    SeedRep("dee.sales@example-corp.test", "Dee", "Dutta"),
    SeedRep("eli.sales@example-corp.test", "Eli", "Ekholm"),
    SeedRep("fay.enterprise@example-corp.test", "Fay", "Fontaine"),
    SeedRep("gus.enterprise@example-corp.test", "Gus", "Grün"),
    SeedRep("hal.former@example-corp.test", "Hal", "Hollow", is_active=False),
)


def generate_companies(n: int = 60, seed: int = 7) -> list[SeedCompany]:
    """Companies with unique domains; some owned by a rep, a few with a parent company."""
    rng = random.Random(seed)
    companies: list[SeedCompany] = []
    for i in range(n):
        word = COMPANY_WORDS[i % len(COMPANY_WORDS)]
        suffix = COMPANY_SUFFIX[(i // len(COMPANY_WORDS)) % len(COMPANY_SUFFIX)]
        name = f"{word} {suffix}" if i >= len(COMPANY_WORDS) else word
        slug = name.lower().replace(" ", "").replace("'", "")
        domain = f"{slug}{'' if i < len(COMPANY_WORDS) else i}.example"
        if i == 5:  # an apostrophe in a domain-like value (must be escaped in SOQL)
            domain = "o'neil.example"
        country = COUNTRIES[rng.randrange(len(COUNTRIES))][0]
        employees = rng.choice([8, 25, 60, 150, 400, 1200, 5000, 20000])
        owner = rng.randrange(len(SEED_REPS) - 1) if rng.random() < 0.35 else None
        parent = companies[rng.randrange(len(companies))].key if companies and rng.random() < 0.1 else None
        companies.append(SeedCompany(
            key=f"co{i}", name=name, domain=domain, industry=rng.choice(INDUSTRIES), employees=employees,
            annual_revenue=employees * rng.choice([40_000, 90_000, 150_000]), country=country,
            owner_index=owner, parent_key=parent,
        ))
    return companies


def _employer(rng: random.Random, companies: list[SeedCompany], i: int) -> tuple[SeedCompany | None, str, str]:
    """Person `i`'s (seeded company or None, email domain, company name): free mail, a competitor, a seeded or another company."""
    kind = rng.random()
    if kind < 0.15:
        return None, rng.choice(FREE_MAIL), ""
    if kind < 0.18:
        domain = rng.choice(COMPETITOR_DOMAINS)
        return None, domain, "Rival Soft" if domain.startswith("rival") else "Competitor CRM"
    if kind < 0.55:
        company = rng.choice(companies)
        return company, company.domain, company.name
    word = rng.choice(COMPANY_WORDS)
    return None, f"{word.lower().replace(' ', '')}-{i}.example", f"{word} {rng.choice(COMPANY_SUFFIX)}"


def generate_people(n: int, seed: int = 42, companies: list[SeedCompany] | None = None) -> Iterator[SeedPerson]:
    """`n` people, deterministic for a seed: corporate, free-mail and competitor emails, varied fit and engagement."""
    rng = random.Random(seed)
    companies = companies if companies is not None else generate_companies()
    for i in range(n):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().replace("'", "").replace("ü", "u").replace("á", "a").replace("é", "e")
        company, domain, company_name = _employer(rng, companies, i)
        country, states, postals = COUNTRIES[rng.randrange(len(COUNTRIES))]
        if company is not None:
            country = company.country
            states, postals = next((s, p) for c, s, p in COUNTRIES if c == country)
        si = rng.randrange(len(states))
        title, seniority = rng.choice(TITLES)
        employees = company.employees if company else rng.choice([3, 12, 45, 130, 600, 2500])
        engaged = rng.random()
        page_views = int(engaged * rng.choice([0, 2, 5, 15, 40]))
        person = SeedPerson(
            key=f"p{i}",
            first_name=first,
            last_name=last,
            email=f"{local}{i}@{domain}",
            title=title,
            seniority=seniority,
            phone=f"+1-555-{1000 + i % 9000:04d}",
            company_key=company.key if company else None,
            company_name=company_name,
            company_domain=domain,
            industry=company.industry if company else rng.choice(INDUSTRIES),
            employees=employees,
            annual_revenue=company.annual_revenue if company else employees * 80_000,
            country=country,
            state=states[si],
            city=CITIES[country][si % len(CITIES[country])],
            postal_code=postals[si],
            lead_source=rng.choice(LEAD_SOURCES),
            product_interest=rng.choice(PRODUCTS),
            budget=rng.choice([True, False, None]),
            authority=seniority in ("c_level", "vp", "director") if rng.random() < 0.8 else None,
            need=rng.choice([True, True, False, None]),
            timeframe=rng.choice([True, False, None]),
            page_views=page_views,
            pricing_page_views=min(page_views, int(engaged * rng.choice([0, 1, 3, 6]))),
            form_submissions=int(engaged * rng.choice([0, 1, 2])),
            email_opens=rng.randrange(0, 20),
            email_clicks=int(engaged * rng.choice([0, 1, 3])),
            created_days_ago=round(rng.uniform(0.1, 200), 3),
            last_activity_days_ago=round(rng.uniform(0, 120), 3) if page_views else None,
        )
        yield person
