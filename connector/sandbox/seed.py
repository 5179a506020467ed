"""Deterministic, realistic seed data for the sandbox CRMs: people, companies and sales reps, CRM-neutral.

A SeedPerson holds the truth about one person in canonical form (ISO country and subdivision codes, an exact
head count, an industry slug of the connector's taxonomy, BANT answers as the portal's picklist levels) plus
what the person typed into free-text fields (`country_text`, `state_text`: "Deutschland", "USA", "Untied
States"). Each sandbox renders a person in its own CRM's shapes: HubSpot employee bands and industry
enumeration, Salesforce picklist labels and CountryCode/StateCode. A latent `tier` drives fit, BANT and
engagement together, so the example config grades a plausible spread (a minority hot, about a third warm).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
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
# (title, seniority level); the level is canonical, each CRM renders it as its own picklist value.
TITLES = [
    ("Chief Executive Officer", "c_level"), ("CTO", "c_level"), ("CFO", "c_level"), ("VP of Sales", "vp"),
    ("VP Marketing", "vp"), ("Head of Revenue Operations", "director"), ("Director of IT", "director"),
    ("Sales Manager", "manager"), ("Marketing Manager", "manager"), ("Finance Manager", "manager"),
    ("Software Engineer", "individual"), ("Account Executive", "individual"), ("Student", "other"),
    ("Consultant", "individual"), ("Operations Analyst", "individual"),
]
EXEC_TITLES = TITLES[:7]
SENIORITY_LEVELS = ("c_level", "vp", "director", "manager", "individual", "other")
# Canonical industry slugs (the connector's taxonomy: Salesforce's default Industry picklist, slugged).
INDUSTRIES = ["technology", "finance", "healthcare", "retail", "manufacturing", "education", "transportation", "media"]
TARGET_INDUSTRIES = ("technology", "finance", "healthcare")  # what the example config's ICP rule scores


@dataclass(frozen=True)
class Region:
    """A subdivision: ISO 3166-2 code without the country prefix, the spellings people type, a city, a postal code."""

    code: str
    spellings: tuple[str, ...]
    city: str
    postal_code: str


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str  # the name a picklist shows (Salesforce's country label)
    spellings: tuple[tuple[str, int], ...]  # (free text as typed, weight)
    regions: tuple[Region, ...]
    phone: str  # "+49 30 {n:07d}"-style template


COUNTRIES: tuple[Country, ...] = (
    Country("US", "United States", (("United States", 30), ("USA", 20), ("US", 18), ("U.S.", 5), ("United States of America", 8),
                                    ("usa", 4), ("us", 3)), (
        Region("CA", ("CA", "California", "california"), "San Francisco", "94105"),
        Region("NY", ("NY", "New York"), "New York", "10001"),
        Region("TX", ("TX", "Texas"), "Austin", "73301"),
        Region("WA", ("WA", "Washington"), "Seattle", "98101"),
        Region("MA", ("MA", "Massachusetts"), "Boston", "02110"),
    ), "+1 415 555 {n:04d}"),
    Country("CA", "Canada", (("Canada", 70), ("canada", 10), ("CA", 10)), (
        Region("ON", ("ON", "Ontario"), "Toronto", "M5V 2T6"),
        Region("BC", ("BC", "British Columbia"), "Vancouver", "V6B 1A1"),
        Region("QC", ("QC", "Quebec", "Québec"), "Montreal", "H3B 2Y5"),
    ), "+1 416 555 {n:04d}"),
    Country("GB", "United Kingdom", (("United Kingdom", 40), ("UK", 30), ("GB", 10), ("Great Britain", 8), ("uk", 5)), (
        Region("ENG", ("England",), "London", "EC1A 1BB"),
        Region("SCT", ("Scotland",), "Edinburgh", "EH1 1YZ"),
    ), "+44 20 7946 {n:04d}"),
    Country("DE", "Germany", (("Germany", 50), ("Deutschland", 25), ("DE", 10), ("de", 5)), (
        Region("BE", ("Berlin",), "Berlin", "10115"),
        Region("BY", ("Bavaria", "Bayern"), "Munich", "80331"),
    ), "+49 30 {n:07d}"),
    Country("FI", "Finland", (("Finland", 60), ("Suomi", 25), ("FI", 15)), (
        Region("18", ("Uusimaa",), "Helsinki", "00100"),
        Region("11", ("Pirkanmaa",), "Tampere", "33100"),
    ), "+358 9 {n:07d}"),
    Country("TH", "Thailand", (("Thailand", 80), ("TH", 20)), (
        Region("10", ("Bangkok",), "Bangkok", "10110"),
        Region("50", ("Chiang Mai",), "Chiang Mai", "50000"),
    ), "+66 2 {n:07d}"),
    Country("BR", "Brazil", (("Brazil", 55), ("Brasil", 35), ("BR", 10)), (
        Region("SP", ("SP", "São Paulo"), "São Paulo", "01000-000"),
        Region("RJ", ("RJ", "Rio de Janeiro"), "Rio de Janeiro", "20000-000"),
    ), "+55 11 9{n:08d}"),
    Country("JP", "Japan", (("Japan", 85), ("JP", 15)), (
        Region("13", ("Tokyo",), "Tokyo", "100-0001"),
        Region("27", ("Osaka",), "Osaka", "530-0001"),
    ), "+81 3 {n:08d}"),
)
COUNTRY_BY_CODE = {c.code: c for c in COUNTRIES}
ICP_COUNTRIES = ("US", "CA", "GB", "DE", "FI")  # what the example config's ICP rule scores
COUNTRY_WEIGHTS = {"US": 34, "CA": 8, "GB": 12, "DE": 12, "FI": 6, "TH": 10, "BR": 9, "JP": 9}
# What a few people type into a country field that no table maps (a few percent: doctor reports them).
COUNTRY_TYPOS = ("Untied States", "N/A", "Germnay", "unknown", "-")
# Head-count ranges strictly inside one HubSpot band each (so a band is never ambiguous).
SIZE_RANGES = ((2, 4), (6, 24), (26, 49), (51, 99), (101, 499), (501, 999), (1001, 4999), (5001, 9999), (10001, 40000))
LEAD_SOURCES = ["ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS", "SOCIAL_MEDIA", "EMAIL_MARKETING", "DIRECT_TRAFFIC", "OFFLINE"]
PRODUCTS = ["analytics", "crm", "payments", "support"]
BUDGET_RANGES = ("under_50k", "50k_250k", "over_250k")
BUYING_ROLES = ("decision_maker", "influencer", "evaluator", "end_user")
TIMELINES = ("this_quarter", "next_quarter", "this_year", "no_plans")
DEAL_SIZES = {"under_50k": (5_000, 50_000), "50k_250k": (50_000, 250_000), "over_250k": (250_000, 900_000)}
FREE_MAIL = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com"]
COMPETITOR_DOMAINS = ["rivalsoft.example", "competitor-crm.example"]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                 "Soylent", "Aperture", "Nakatomi", "Oscorp", "Pied Piper", "Wonka", "Nordic Oy", "Siam Co"]
COMPANY_SUFFIX = ["Inc", "Ltd", "GmbH", "Oy", "Corp", "Group", "Labs"]
# Engagement timestamps a CRM may hold, by neutral name (HubSpot has a property for each; Salesforce has
# LastActivityDate for sales activity and notes, and the org's Last_Visit__c custom field).
ACTIVITY_KINDS = ("visit", "email_open", "email_click", "conversion", "sales_activity", "note")
TIERS = ("hot", "warm", "cold")
TIER_WEIGHTS = (20, 22, 58)


@dataclass(frozen=True)
class SeedCompany:
    key: str
    name: str
    domain: str
    industry: str  # canonical slug
    employees: int
    annual_revenue: int
    country: str
    owner_index: int | None  # index into SEED_REPS of the account owner, None = unowned
    parent_key: str | None = None


@dataclass(slots=True)  # read-only by convention: not frozen, a frozen 40-field __init__ costs 4x (100,000+ per benchmark)
class SeedPerson:
    key: str
    first_name: str
    last_name: str
    email: str
    title: str
    seniority: str  # one of SENIORITY_LEVELS
    phone: str
    company_key: str | None
    company_name: str
    company_domain: str
    industry: str  # canonical slug
    employees: int
    annual_revenue: int
    country: str  # ISO 3166-1 alpha-2
    state: str  # ISO 3166-2 subdivision code without the country prefix
    city: str
    postal_code: str
    lead_source: str
    product_interest: str  # the main product of interest (canonical, lower-case)
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
    # What the person typed into free-text fields ("" = left empty) and the portal's picklist answers.
    country_text: str = ""
    state_text: str = ""
    products: tuple[str, ...] = ()
    budget_range: str | None = None
    buying_role: str | None = None
    timeline: str | None = None
    activity_days_ago: dict[str, float] = field(default_factory=dict)  # ACTIVITY_KINDS → days before the seed base
    tier: str = "cold"
    deal_size: int | None = None  # the sales team's estimate, in line with the budget range; None = not estimated


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


def hubspot_band(employees: int) -> str:
    """The band HubSpot's numemployees dropdown shows for a head count (default options, "1000+" for big ones)."""
    for low, high, band in ((1, 5, "1-5"), (5, 25, "5-25"), (25, 50, "25-50"), (50, 100, "50-100"), (100, 500, "100-500"),
                            (500, 1000, "500-1000")):
        if low <= employees < high:
            return band
    return "1000+"


def _cumulative(weights: Sequence[int]) -> list[int]:
    return [sum(weights[: i + 1]) for i in range(len(weights))]


# Pre-computed cumulative weights: the generator seeds 100,000+ people for the benchmarks.
_COUNTRY_PICKS = {icp: ([COUNTRY_BY_CODE[c] for c in COUNTRY_WEIGHTS if not icp or c in ICP_COUNTRIES],
                        _cumulative([w for c, w in COUNTRY_WEIGHTS.items() if not icp or c in ICP_COUNTRIES])) for icp in (False, True)}
_SPELLINGS = {c.code: ([t for t, _ in c.spellings], _cumulative([w for _, w in c.spellings])) for c in COUNTRIES}
_TIER_CUM = _cumulative(TIER_WEIGHTS)


def _pick_country(rng: random.Random, icp_only: bool = False) -> Country:
    countries, cum = _COUNTRY_PICKS[icp_only]
    return rng.choices(countries, cum_weights=cum)[0]


def _size(rng: random.Random, big: bool) -> int:
    ranges = SIZE_RANGES[3:] if big else SIZE_RANGES
    low, high = ranges[rng.randrange(len(ranges))]
    return rng.randint(low, high)


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
        country = _pick_country(rng).code
        employees = _size(rng, big=rng.random() < 0.6)
        owner = rng.randrange(len(SEED_REPS) - 1) if rng.random() < 0.35 else None
        parent = companies[rng.randrange(len(companies))].key if companies and rng.random() < 0.1 else None
        companies.append(SeedCompany(
            key=f"co{i}", name=name, domain=domain, industry=rng.choice(INDUSTRIES), employees=employees,
            annual_revenue=employees * rng.choice([40_000, 90_000, 150_000]), country=country,
            owner_index=owner, parent_key=parent,
        ))
    return companies


def _employer(rng: random.Random, companies: Sequence[SeedCompany], i: int, tier: str) -> tuple[SeedCompany | None, str, str]:
    """Person `i`'s (seeded company or None, email domain, company name): free mail, a competitor, a seeded or another company."""
    kind = rng.random()
    if tier == "cold" and kind < 0.3:
        return None, rng.choice(FREE_MAIL), ""
    if tier == "warm" and kind < 0.06:
        return None, rng.choice(FREE_MAIL), ""
    if tier == "cold" and kind < 0.36:
        domain = rng.choice(COMPETITOR_DOMAINS)
        return None, domain, "Rival Soft" if domain.startswith("rival") else "Competitor CRM"
    if kind < 0.55:
        company = rng.choice(companies)
        return company, company.domain, company.name
    word = rng.choice(COMPANY_WORDS)
    return None, f"{word.lower().replace(' ', '')}-{i}.example", f"{word} {rng.choice(COMPANY_SUFFIX)}"


def _typed_country(rng: random.Random, country: Country) -> str:
    """What the person typed into a free-text country field: a spelling of their country, a typo, or nothing."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(COUNTRY_TYPOS)
    if roll < 0.06:
        return ""
    texts, cum = _SPELLINGS[country.code]
    return rng.choices(texts, cum_weights=cum)[0]


def _bant(rng: random.Random, tier: str) -> tuple[str | None, str | None, bool | None, str | None]:
    """(budget range, buying role, need, timeline) as the portal's picklists hold them; None = not asked yet."""
    good = {"hot": 0.9, "warm": 0.55, "cold": 0.1}[tier]
    asked = {"hot": 0.95, "warm": 0.8, "cold": 0.4}[tier]
    budget = (rng.choice(BUDGET_RANGES[1:]) if rng.random() < good else BUDGET_RANGES[0]) if rng.random() < asked else None
    role = ("decision_maker" if rng.random() < good else rng.choice(BUYING_ROLES[1:])) if rng.random() < asked else None
    need = (rng.random() < good + 0.1) if rng.random() < asked else None
    timeline = (rng.choice(TIMELINES[:2]) if rng.random() < good else rng.choice(TIMELINES[2:])) if rng.random() < asked else None
    return budget, role, need, timeline


def _activity(rng: random.Random, tier: str, counts: dict[str, int], owned_by_sales: bool) -> dict[str, float]:
    """Days since each engagement kind the person has (visits, opens, clicks, conversions, sales touches, notes)."""
    recent = {"hot": 10.0, "warm": 40.0, "cold": 200.0}[tier]
    out: dict[str, float] = {}
    for kind, counter in (("visit", "page_views"), ("email_open", "email_opens"), ("email_click", "email_clicks"),
                          ("conversion", "form_submissions")):
        if counts[counter]:
            out[kind] = round(rng.uniform(0.05, recent), 3)
    if owned_by_sales or rng.random() < 0.15:
        out["sales_activity"] = round(rng.uniform(0.5, recent * 1.5), 3)
        if rng.random() < 0.5:
            out["note"] = round(rng.uniform(0.5, recent * 2), 3)
    return out


def _engagement(rng: random.Random, tier: str) -> dict[str, int]:
    level = {"hot": (8, 60), "warm": (2, 20), "cold": (0, 6)}[tier]
    views = rng.randint(*level) if tier != "cold" or rng.random() < 0.5 else 0
    return {
        "page_views": views,
        "pricing_page_views": min(views, rng.randint(0, {"hot": 6, "warm": 3, "cold": 1}[tier])),
        "form_submissions": rng.randint(0, {"hot": 3, "warm": 2, "cold": 1}[tier]) if views else 0,
        "email_opens": rng.randint(0, {"hot": 20, "warm": 12, "cold": 6}[tier]),
        "email_clicks": rng.randint(0, {"hot": 5, "warm": 3, "cold": 1}[tier]),
    }


def _title(rng: random.Random, tier: str) -> tuple[str, str]:
    if rng.random() < {"hot": 0.8, "warm": 0.4, "cold": 0.1}[tier]:
        return rng.choice(EXEC_TITLES)
    return rng.choice(TITLES[len(EXEC_TITLES):])


def _firmographics(rng: random.Random, company: SeedCompany | None, tier: str) -> tuple[Country, str, int, int]:
    """(country, industry slug, head count, annual revenue): the company's, or the tier's kind of company."""
    if company is not None:
        return COUNTRY_BY_CODE[company.country], company.industry, company.employees, company.annual_revenue
    fits = {"hot": 0.9, "warm": 0.5, "cold": 0.1}[tier]
    country = _pick_country(rng, icp_only=rng.random() < fits)
    industry = rng.choice(TARGET_INDUSTRIES) if rng.random() < fits else rng.choice(INDUSTRIES)
    employees = _size(rng, big=rng.random() < fits)
    return country, industry, employees, employees * rng.choice([40_000, 80_000, 150_000])


def _products(rng: random.Random) -> tuple[str, ...]:
    first = rng.choice(PRODUCTS)
    more = [p for p in PRODUCTS if p != first and rng.random() < 0.2]
    return (first, *more)


def generate_people(n: int, seed: int = 42, companies: list[SeedCompany] | None = None) -> Iterator[SeedPerson]:
    """`n` people, deterministic for a seed: corporate, free-mail and competitor emails, varied fit and engagement."""
    rng = random.Random(seed)
    companies = companies if companies is not None else generate_companies()
    for i in range(n):
        yield _person(rng, companies, i)


def _person(rng: random.Random, companies: Sequence[SeedCompany], i: int) -> SeedPerson:
    tier = rng.choices(TIERS, cum_weights=_TIER_CUM)[0]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().replace("'", "").replace("ü", "u").replace("á", "a").replace("é", "e")
    company, domain, company_name = _employer(rng, companies, i, tier)
    country, industry, employees, revenue = _firmographics(rng, company, tier)
    region = country.regions[rng.randrange(len(country.regions))]
    title, seniority = _title(rng, tier)
    counts = _engagement(rng, tier)
    budget, role, need, timeline = _bant(rng, tier)
    created = round(rng.uniform(0.1, 200), 3)
    # Nothing happens before the record exists.
    activity = {k: min(v, created) for k, v in _activity(rng, tier, counts, owned_by_sales=rng.random() < 0.3).items()}
    products = _products(rng)
    low, high = DEAL_SIZES[budget] if budget is not None else (0, 0)
    deal = rng.randrange(low, high, 1000) if high else None
    return SeedPerson(
        key=f"p{i}", first_name=first, last_name=last, email=f"{local}{i}@{domain}", title=title, seniority=seniority,
        phone=country.phone.format(n=1000 + i % 9000), company_key=company.key if company else None,
        company_name=company_name, company_domain=domain, industry=industry, employees=employees,
        annual_revenue=revenue, country=country.code, state=region.code, city=region.city,
        postal_code=region.postal_code, lead_source=rng.choice(LEAD_SOURCES[:3] if tier == "hot" else LEAD_SOURCES), product_interest=products[0],
        budget=None if budget is None else budget != "under_50k", authority=None if role is None else role == "decision_maker",
        need=need, timeframe=None if timeline is None else timeline in TIMELINES[:2],
        created_days_ago=created, last_activity_days_ago=min(activity.values(), default=None),
        engagement=counts, country_text=_typed_country(rng, country), state_text=rng.choice(region.spellings),
        products=products, budget_range=budget, buying_role=role, timeline=timeline, activity_days_ago=activity, tier=tier,
        deal_size=deal, **counts,
    )
