"""The engine's fast paths (generated scorer and rule matcher, planned rep picks, unrolled diff) equal the reference paths."""

from __future__ import annotations

import random
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.engine.conditions import Condition, compile_condition, condition_source
from connector.engine.diff import Desired, DiffRules, plan_write
from connector.engine.routing import (
    CompiledRouting,
    RoutingConfig,
    RoutingContext,
    RoutingState,
    apply_change,
    availability_snapshot,
    build_reps,
    check_routing,
    compile_routing,
    reassign_lead,
    route_lead,
)
from connector.engine.scoring import (
    CompiledScoring,
    ScoreOutcome,
    ScoringConfig,
    _score_reference,
    aggregate_events,
    check_scoring,
    compile_scoring,
    frozen_builder,
    score_lead,
)
from connector.core.models import Account, Candidate, Contribution, Event, FieldDecision, Lead, Owner, Patch, Rep, ScoreResult

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # a Tuesday afternoon in Europe, morning in the Americas

# Values of every type a field may hold (adapters give typed values; extras can be anything).
ODD_VALUES: list[Any] = [
    None, "", "  ", "US", " us ", "Gb", "SOFTWARE", "software ", "10", "1e3", "abc", "CTO", "Chief Executive Officer",
    "vp", "VP of Sales", "student", "intern", "payments", "true", "false", "hot", "Warm", 0, 1, 7, 50, 999, 1000, 10**6,
    -3, 0.5, 49.99, 1e7, float("nan"), float("inf"), True, False, ("payments",), ("Payments ", "crm"), (), ["crm"], [],
    ("x", 3),
]


def _expected_values() -> st.SearchStrategy[Any]:
    scalar = st.sampled_from(["US", "gb", " Payments", "hot", "10", "abc", "true", 3, 10.5, 0, -1, True, False])
    return st.one_of(scalar, st.lists(scalar, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(["eq", "ne", "in", "not_in", "contains", "not_contains", "matches", "gt", "gte", "lt", "lte", "between", "present", "missing"]),
    expected=_expected_values(),
    values=st.lists(st.sampled_from(ODD_VALUES), min_size=1, max_size=8),
)
def test_condition_source_agrees_with_the_compiled_predicate(op: str, expected: Any, values: list[Any]) -> None:
    if op in ("present", "missing"):
        expected = None
    elif op == "between":
        expected = sorted(expected[:2] * 2)[:2] if isinstance(expected, list) and all(isinstance(x, int | float) for x in expected) else [1, 100]
    elif op == "matches":
        expected = str(expected[0] if isinstance(expected, list) else expected)
    elif op in ("gt", "gte", "lt", "lte"):
        expected = 5 if isinstance(expected, list | str | bool) else expected
    try:
        leaf = Condition.model_validate({"field": "extra.x", "op": op, "value": expected})
    except ValueError:
        return  # not a valid condition: config checks reject it before anything compiles it
    for cond in (leaf, Condition.model_validate({"not": {"field": "extra.x", "op": op, "value": expected}})):
        constants: dict[str, Any] = {}
        code = compile(f"lambda _v0: {condition_source(cond, lambda name: '_v0', constants)}", "<test>", "eval")
        fast = eval(code, constants)  # noqa: S307 - the expression under test
        pred = compile_condition(cond)
        for value in values:
            lead = Lead(crm="hubspot", object_type="contacts", id="1", extra={"x": value})
            assert bool(fast(value)) == bool(pred(lead, {})), (cond, value)


def _example(section: str) -> dict[str, Any]:
    return dict(tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))[section])


def _scoring_variants() -> list[CompiledScoring]:
    """The example config, plus one with every other compiled form: BANT grades, a named write model, gates,
    windowed half-lives, engagement gates, extra/engagement fields, no clamps and no inactivity."""
    example = ScoringConfig.model_validate(_example("scoring"))
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


SCORING = _scoring_variants()
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
    pick = rng.choice
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


@pytest.mark.parametrize("compiled", SCORING, ids=["example", "other-forms"])
def test_generated_scorer_equals_the_reference_on_random_leads(compiled: CompiledScoring) -> None:
    rng = random.Random(7)
    assert compiled.scorer is not None
    for i in range(400):
        lead = random_lead(rng, i)
        events = random_events(rng, lead, rng.choice([0, 1, 5, 40, 90]))
        now = NOW + timedelta(days=rng.choice([0, 0.5, 3, 45]))
        agg = aggregate_events(events, compiled, until=NOW)
        fast = score_lead(lead, agg, compiled, now)
        reference = _score_reference(lead, agg, compiled, now)
        assert fast == reference, lead
        assert score_lead(lead, events, compiled, NOW) == _score_reference(lead, events, compiled, NOW)
        for result in fast.by_model.values():
            assert result.score == round(sum(c.points for c in result.contributions), 2)


def test_frozen_builder_builds_what_the_constructor_builds() -> None:
    for cls, args in (
        (Contribution, ("m", "r", 1.5, "field:x", 0.25)),
        (ScoreResult, ("m", 3.0, "hot", (), True, "lead", "NEW", "warm", "Hot")),
        (Candidate, ("a@x", True, "chosen")),
        (ScoreOutcome, (ScoreResult("m", 1.0, "cold"), {}, True)),
    ):
        built, constructed = frozen_builder(cls)(*args), cls(*args)  # type: ignore[type-var]
        assert built == constructed and type(built) is cls
        assert repr(built) == repr(constructed)


def _routing_table() -> dict[str, Any]:
    """The example routing plus 40 generated reps: small caps (capacity verdicts), tiers, skills and a strict tier rule."""
    table = _example("routing")
    table["reps"] = list(table["reps"])
    table["pools"] = {k: dict(v, reps=list(v["reps"])) for k, v in table["pools"].items()}
    table["rules"] = [dict(r) for r in table["rules"]]
    zones = [("America/New_York", "US", "09:00-17:00"), ("Europe/Helsinki", "FI", "08:00-16:00"), ("Asia/Tokyo", "JP", None), ("UTC", None, None)]
    pools = list(table["pools"])
    for i in range(40):
        zone, country, hours = zones[i % len(zones)]
        email = f"gen{i}@example-corp.test"
        rep: dict[str, Any] = {
            "email": email, "timezone": zone, "tier": "senior" if i % 3 == 0 else "standard", "weight": 1 + i % 4,
            "industries": [["SOFTWARE"], ["RETAIL", "HEALTHCARE"], []][i % 3], "products": [["payments"], ["crm", "analytics"]][i % 2],
            "regions": [["emea"], ["us_east", "apac"], []][i % 3], "max_open_leads": 3 + i % 5, "max_leads_per_day": 2 + i % 3,
        }
        if country:
            rep["country"] = country
        if hours:
            rep["working_hours"] = hours
        if i % 7 == 3:
            del rep["max_open_leads"], rep["max_leads_per_day"]
        table["reps"].append(rep)
        for pool in dict.fromkeys((pools[i % len(pools)], pools[(i * 3 + 1) % len(pools)])):
            table["pools"][pool]["reps"].append(email)
    table["rules"][2] = dict(table["rules"][2], tier_strict=True)  # big-deal-to-senior: senior only
    table["rules"][4] = dict(table["rules"][4], require_skills=["products"])  # partner-referrals: the general path
    table["when_unavailable"] = "fallback"
    return table


def _routing() -> tuple[CompiledRouting, CompiledRouting, list[Rep]]:
    cfg = RoutingConfig.model_validate(_routing_table())
    assert check_routing(cfg, ScoringConfig.model_validate(_example("scoring")), "routing") == []
    fast = compile_routing(cfg)
    reference = replace(fast, matcher=None, batch_memo={})  # no matcher: predicates and the per-member loop
    owners = {
        crm: [Owner(crm=crm, id=f"{crm[0]}-{r.email.split('@')[0]}", email=r.email, is_active="former" not in r.email) for r in cfg.reps]  # type: ignore[arg-type]
        for crm in ("hubspot", "salesforce")
    }
    reps, _ = build_reps(fast, owners)
    return fast, reference, reps


def test_planned_routing_equals_the_reference_with_capacity_tiers_and_skills() -> None:
    fast, reference, reps = _routing()
    rng = random.Random(11)
    scoring = SCORING[0]
    known = {crm: frozenset(oid for r in reps for c, oid in r.owner_ids.items() if c == crm) for crm in ("hubspot", "salesforce")}
    states = [RoutingState(), RoutingState()]
    routed = 0
    for batch in range(6):
        now = NOW + timedelta(hours=batch * 3)  # the Americas, Europe and Asia take turns being at work
        snaps = [availability_snapshot(reps, c, now) for c in (fast, reference)]
        for i in range(100):
            lead = random_lead(rng, batch * 1000 + i)
            if lead.crm == "salesforce":
                lead = lead.replace(object_type="Lead")
            if rng.random() < 0.1:
                lead = lead.replace(owner_id=rng.choice([r.owner_ids.get(lead.crm) for r in reps] + ["stranger"]))
            score = score_lead(lead, [], scoring, now).primary
            account = Account(lead.crm, "acc", "acme.example", owner_id=rng.choice(list(known[lead.crm]))) if rng.random() < 0.1 else None
            rates = {r.email: rng.random() for r in reps} if rng.random() < 0.3 else {}
            results = []
            for k, compiled in enumerate((fast, reference)):
                ctx = RoutingContext(
                    reps=reps, account=account, is_free_mail=bool(lead.email and "gmail" in lead.email), conversion_rates=rates,
                    known_owner_ids=known[lead.crm], is_competitor=bool(lead.email and "rival" in lead.email), availability=snaps[k],
                )
                decision, change = route_lead(lead, score, ctx, states[k], compiled, now)
                states[k] = apply_change(states[k], change)
                results.append((decision, change))
            assert results[0] == results[1], lead
            routed += results[0][0].rep is not None
            assert states[0] == states[1]
    assert routed > 100  # the comparison covered real picks, not only waits


def test_planned_reassignment_equals_the_reference() -> None:
    fast, reference, reps = _routing()
    rng = random.Random(5)
    known = {crm: frozenset(oid for r in reps for c, oid in r.owner_ids.items() if c == crm) for crm in ("hubspot", "salesforce")}
    for i in range(150):
        lead = random_lead(rng, i).replace(crm="hubspot", object_type="contacts")
        score = ScoreResult("core", rng.choice([10.0, 45.0, 80.0]), rng.choice(["hot", "warm", "cold"]), is_mql=rng.random() < 0.5)
        results = []
        for compiled in (fast, reference):
            ctx = RoutingContext(reps=reps, known_owner_ids=known["hubspot"], availability=availability_snapshot(reps, compiled, NOW))
            first, change = route_lead(lead, score, ctx, RoutingState(), compiled, NOW)
            view = _View(first.owner_id, first.rep, NOW - timedelta(hours=3), 0, lead.stage)
            results.append((first, reassign_lead(lead, score, view, ctx, apply_change(RoutingState(), change), compiled, NOW, "sla")))
        assert results[0] == results[1]


class _View:
    def __init__(self, owner_id: str | None, rep: str | None, at: datetime, reassignments: int, status: str | None) -> None:
        self.routed_owner_id, self.routed_rep, self.routed_at, self.reassignments, self.initial_status = owner_id, rep, at, reassignments, status


def test_unrolled_plan_write_keeps_field_order_and_decisions() -> None:
    rules = DiffRules(stage_order=("subscriber", "lead", "marketingqualifiedlead"), lead_status_order=("NEW", "OPEN"))
    lead = Lead(crm="hubspot", object_type="contacts", id="1", owner_id="9", score=10.0, grade="cold", stage="lead", lead_status="OPEN")
    patch = plan_write(lead, Desired("7", 42.0, "hot", "subscriber", "NEW", "routed by rule"), {"owner_id": "9"}, rules)
    assert isinstance(patch, Patch)
    assert list(patch.decisions) == ["owner_id", "score", "grade", "stage", "lead_status"] == list(patch.current)
    assert patch.changes == {"owner_id": "7", "score": 42.0, "grade": "hot"}
    assert patch.reasons["owner_id"] == "routed by rule"
    assert patch.decisions["stage"] is FieldDecision.WOULD_REGRESS and patch.decisions["lead_status"] is FieldDecision.WOULD_REGRESS
