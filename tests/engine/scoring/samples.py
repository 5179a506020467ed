"""Sample scoring configs, leads and events for comparing the generated scorer with the oracle (and routing's fast paths)."""

from __future__ import annotations

import random
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.core.models import Event, Lead
from connector.engine.scoring import CompiledScoring, ScoringConfig, check_scoring, compile_scoring

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # a Tuesday afternoon in Europe, morning in the Americas


def example_table(section: str) -> dict[str, Any]:
    return dict(tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))[section])


def scoring_variants() -> list[CompiledScoring]:
    """The example config, plus one with every other compiled form: BANT grades, a named write model, gates,
    windowed half-lives, engagement gates, extra/engagement fields, no clamps and no inactivity."""
    example = ScoringConfig.model_validate(example_table("scoring"))
    other = ScoringConfig.model_validate({
        "write_model": "b", "grade_from": "bant", "mql_threshold": 20,
        "grades": [{"name": "A", "min": 40}, {"name": "B", "min": 10}, {"name": "C"}],
        "bant_grades": {"hot": "A", "warm": "B", "cold": "C"},
        "regions": {"NA": ["US", "CA"]}, "competitor_domains": ["rival.example"], "use_shipped_free_mail": False,
        "free_mail_domains": ["gmail.com"],
        "models": {
            "a": {"rules": [
                {"name": "na", "when": {"field": "region", "op": "eq", "value": "NA"}, "points": 5},
                {"name": "persona", "when": {"field": "extra.persona", "op": "in", "value": ["buyer", "Champion"]}, "points": 7},
                {"name": "visits", "when": {"field": "engagement.page_views", "op": "gte", "value": 3}, "points": 2.5},
                {"name": "windowed decay", "event": "Page Viewed", "points": 3, "cap": 9, "window_days": 20, "half_life_days": 5},
                {"name": "window no cap", "event": ["Signed Up", "Email Clicked"], "points": 1.5, "window_days": 40},
                {"name": "gated", "event": "Email Clicked", "points": 4, "half_life_days": 10,
                 "when": {"field": "title", "op": "matches", "value": "chief|vp"}},
                {"name": "any page", "kind": "page", "where": {"field": "properties.path", "op": "contains", "value": "pric"}, "points": 2},
                {"name": "churn", "event": "Unsubscribed", "points": -7},
                {"name": "clicks", "engagement": "email_clicks", "points": 1.25, "cap": 6,
                 "when": {"field": "is_free_mail", "op": "eq", "value": False}},
            ]},
            "b": {"audience": {"any": [{"field": "country", "op": "in", "value": ["US", "GB"]}, {"field": "employees", "op": "gt", "value": 100}]},
                  "ceiling": 30, "rules": [
                {"name": "big", "when": {"not": {"field": "employees", "op": "lt", "value": 50}}, "points": 25},
                {"name": "competitor", "when": {"field": "is_competitor", "op": "eq", "value": True}, "points": -40},
                {"name": "opens", "engagement": "email_opens", "points": 0.5},
                {"name": "events", "event": "Page Viewed", "points": 1, "half_life_days": 3},
            ]},
        },
        "stages": {"hubspot": {"by_grade": {"A": "marketingqualifiedlead"}, "mql": "lead", "default": "subscriber"},
                   "salesforce:Lead": {"default": "Open", "grade_labels": {"A": "Hot"}}},
    })
    compiled = []
    for cfg in (example, other):
        assert check_scoring(cfg, "scoring") == []
        compiled.append(compile_scoring(cfg))
    return compiled


SCORING = scoring_variants()
EVENTS = [
    ("Page Viewed", "page", {"path": "/pricing"}), ("Page Viewed", "page", {"path": "/demo"}),
    ("Page Viewed", "page", {"path": "/product/x"}), ("Page Viewed", "page", {"path": "/about"}),
    ("Page Viewed", "page", {"path": "/careers"}), ("Form Submitted", "track", {"form_id": "demo-request"}),
    ("Form Submitted", "track", {"form_id": "webinar-q1"}), ("Signed Up", "track", {}), ("Task Created", "track", {}),
    ("Email Opened", "track", {}), ("Email Clicked", "track", {"campaign": "product-launch"}),
    ("Email Clicked", "track", {}), ("Webinar Attended", "track", {}), ("Meeting Booked", "track", {}),
    ("Meeting Cancelled", "track", {}), ("Unsubscribed", "track", {}), ("API Key Created", "track", {}),
    ("Test Payment Created", "track", {}), ("", "identify", {}),
]


def random_lead(rng: random.Random, i: int) -> Lead:
    def pick(options: list[Any]) -> Any:  # Any: the engine must take every odd value a field may hold
        return rng.choice(options)

    return Lead(
        crm=pick(["hubspot", "salesforce"]), object_type=pick(["contacts", "Lead", "leads"]), id=str(i),
        email=pick([None, f"a{i}@acme.example", f"b{i}@gmail.com", f"c{i}@rival.example", f"d{i}@rivalsoft.example", "no-at"]),
        title=pick([None, "", "CTO", "VP of Sales", "Student", "Director of IT", "Head of Finance", "chief of staff"]),
        seniority=pick([None, "vp", "Director", "manager"]),
        company_name=pick([None, "", " ", "Acme"]), company_domain=pick([None, "acme.example", "x.rival.example"]),
        industry=pick([None, "SOFTWARE", " retail", "HEALTHCARE", "LOGISTICS"]),
        employees=pick([None, 3, 9, 10, 60, 999, 1000, 5000, 20000]),
        annual_revenue=pick([None, 1e5, 5e6, 1e7, 6e8]), country=pick([None, "US", "ca", " GB", "DE", "FI", "TH", "BR", "JP", "SE"]),
        state=pick([None, "CA", "NY", "WA", "ON"]), postal_code=pick([None, "94105", "10001", "M5V 2T6", "00100"]),
        lead_source=pick([None, "REFERRALS", "paid_search", "PARTNER", "ORGANIC_SEARCH"]),
        product_interest=pick([(), ("payments",), ("crm", "Payments "), ("analytics",)]),
        deal_size=pick([None, 1000.0, 50_000.0, 150_000]), budget=pick([None, True, False]),
        authority=pick([None, True, False]), need=pick([None, True, False]), timeframe=pick([None, True, False]),
        stage=pick([None, "subscriber", "lead", "Open - Not Contacted"]), lead_status=pick([None, "NEW"]),
        owner_id=None, score=pick([None, 10.0, 55.5]), grade=pick([None, "hot", "cold"]),
        created_at=pick([None, NOW - timedelta(days=rng.uniform(0, 300))]),
        last_activity_at=pick([None, NOW - timedelta(days=rng.uniform(0, 120))]),
        engagement={k: pick([0, 1, 4, 12, 2.5, -1, True, "3", float("nan")]) for k in ("page_views", "pricing_page_views", "form_submissions", "email_opens", "email_clicks") if rng.random() < 0.7},
        extra={"persona": pick([None, "buyer", " champion", 3])},
    )


def random_events(rng: random.Random, lead: Lead, n: int) -> list[Event]:
    out = []
    for _ in range(n):
        name, kind, props = rng.choice(EVENTS)
        out.append(Event(lead.key, name, NOW - timedelta(days=rng.uniform(-2, 130)), props, kind))  # type: ignore[arg-type]
    return out
