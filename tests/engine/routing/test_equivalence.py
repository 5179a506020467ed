"""The planned routing path (generated rule matcher, planned rep picks) equals the straightforward oracle (oracle.py).

The oracle matches rules one predicate at a time and checks and keys every pool member; production
runs only the planned path: new leads, fallbacks, waits, conversion weighting and reassignment.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from connector.core.models import Account, Owner, Rep, ScoreResult
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
from connector.engine.scoring import ScoringConfig, score_lead
from tests.engine.routing import oracle
from tests.engine.scoring.samples import NOW, SCORING, random_lead
from tests.engine.scoring.samples import example_table as _example


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
    reference = replace(fast, batch_memo={}, place_memo={})  # its own memos: the oracle shares nothing with the fast path
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
            for k, (compiled, route) in enumerate(((fast, route_lead), (reference, oracle.route_lead))):
                ctx = RoutingContext(
                    reps=reps, account=account, is_free_mail=bool(lead.email and "gmail" in lead.email), conversion_rates=rates,
                    known_owner_ids=known[lead.crm], is_competitor=bool(lead.email and "rival" in lead.email), availability=snaps[k],
                )
                decision, change = route(lead, score, ctx, states[k], compiled, now)
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
        for compiled, route, reassign in ((fast, route_lead, reassign_lead), (reference, oracle.route_lead, oracle.reassign_lead)):
            ctx = RoutingContext(reps=reps, known_owner_ids=known["hubspot"], availability=availability_snapshot(reps, compiled, NOW))
            first, change = route(lead, score, ctx, RoutingState(), compiled, NOW)
            view = _View(first.owner_id, first.rep, NOW - timedelta(hours=3), 0, lead.stage)
            results.append((first, reassign(lead, score, view, ctx, apply_change(RoutingState(), change), compiled, NOW, "sla")))
        assert results[0] == results[1]


class _View:
    def __init__(self, owner_id: str | None, rep: str | None, at: datetime, reassignments: int, status: str | None) -> None:
        self.routed_owner_id, self.routed_rep, self.routed_at, self.reassignments, self.initial_status = owner_id, rep, at, reassignments, status
