"""routing: config checks with key paths, pre-routing matches, rules, strategies, availability, SLA, experiments."""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.engine.routing import (
    OPEN_SCOPE,
    VT_KEY,
    CompiledRouting,
    RoutingConfig,
    RoutingContext,
    RoutingState,
    apply_change,
    availability_snapshot,
    build_reps,
    check_routing,
    compile_routing,
    day_scope,
    place_of,
    reassign_lead,
    required_scopes,
    route_lead,
    sla_check,
    sla_deadline,
    state_from_counters,
)
from connector.engine.scoring import ScoringConfig
from connector.core.models import Account, Lead, Owner, Rep, RoutingDecision, ScoreResult
from connector.sandbox.seed import SEED_REPS

EXAMPLE = Path(__file__).resolve().parents[3] / "config.example.toml"
# Tuesday 2026-03-03 15:00 UTC: 10:00 New York, 07:00 Los Angeles, 15:00 London, 17:00 Helsinki, 22:00 Bangkok.
TUESDAY = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
COLD = ScoreResult(model="core", score=10.0, grade="cold")
HOT = ScoreResult(model="core", score=80.0, grade="hot", is_mql=True)


def lead(lead_id: str = "1", crm: str = "hubspot", **kw: Any) -> Lead:
    return Lead(crm=crm, object_type="contacts" if crm == "hubspot" else "Lead", id=lead_id, **kw)  # type: ignore[arg-type]


def config(**kw: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(kw)


def rep(email: str, **kw: Any) -> dict[str, Any]:
    return {"email": email, **kw}


def reps_for(cfg: RoutingConfig, inactive: frozenset[str] = frozenset()) -> list[Rep]:
    """Reps resolved against owners whose ids are derived from the email (h-<local>, s-<local>)."""
    owners = {
        crm: [Owner(crm=crm, id=f"{crm[0]}-{r.email.split('@')[0]}", email=r.email.upper(), is_active=r.email not in inactive) for r in cfg.reps]
        for crm in ("hubspot", "salesforce")
    }
    reps, _ = build_reps(cfg, owners)  # type: ignore[arg-type]
    return reps


@dataclass
class Router:
    cfg: RoutingConfig
    compiled: CompiledRouting
    reps: list[Rep]
    state: RoutingState

    def route(self, the_lead: Lead, score: ScoreResult = COLD, now: datetime = TUESDAY, **ctx: Any) -> RoutingDecision:
        context = RoutingContext(reps=ctx.pop("reps", self.reps), **ctx)
        decision, change = route_lead(the_lead, score, context, self.state, self.compiled, now)
        self.state = apply_change(self.state, change)
        return decision


def router(cfg: RoutingConfig, inactive: frozenset[str] = frozenset(), counters: dict[str, dict[str, int]] | None = None) -> Router:
    assert check_routing(cfg, ScoringConfig(), "routing") == []
    return Router(cfg, compile_routing(cfg), reps_for(cfg, inactive), state_from_counters(counters or {}))


TEAM = config(
    reps=[rep("a@x.test"), rep("b@x.test"), rep("c@x.test")],
    pools={"p": {"reps": ["a@x.test", "b@x.test", "c@x.test"]}},
    rules=[{"name": "all", "pool": "p"}],
)


def example_routing() -> RoutingConfig:
    return RoutingConfig.model_validate(tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["routing"])


def test_the_example_routing_validates_and_routes() -> None:
    cfg = example_routing()
    scoring = ScoringConfig.model_validate({"models": {"core": {}, "payments": {}}})
    assert check_routing(cfg, scoring, "routing") == []
    assert len(cfg.rules) >= 20
    assert {r.email.split("@")[0] for r in cfg.reps} == {r.email.split("@")[0] for r in SEED_REPS}
    compiled = compile_routing(cfg)
    owners = [Owner("hubspot", str(100 + i), r.email, is_active=r.is_active) for i, r in enumerate(SEED_REPS)]
    reps, warnings = build_reps(compiled, {"hubspot": owners})
    assert warnings == [ConfigProblemLike("routing.reps[7].email")]
    hal = next(r for r in reps if r.email.startswith("hal."))
    assert hal.is_active is False
    r = Router(cfg, compiled, reps, RoutingState())
    finn = r.route(lead("1", country="FI", industry="technology"), now=TUESDAY.replace(hour=10))  # canonical slug
    assert (finn.kind, finn.rule, finn.pool, finn.strategy) == ("rule", "nordics", "emea", "best_match")
    assert finn.rep == "eli.sales@example-corp.test" and finn.owner_id == "104"  # region and industry match
    late = r.route(lead("1b", country="FI", industry="technology"))  # 17:00 in Helsinki: Eli has left
    assert late.rep != "eli.sales@example-corp.test"
    assert next(c for c in late.candidates if c.rep.startswith("eli.")).reason.startswith("outside working hours (Tue 17:00")
    bay = r.route(lead("2", country="US", state="CA", postal_code="94105"))
    assert (bay.rule, bay.pool, bay.strategy) == ("bay-area-territory", "smb", "best_match")
    hot = r.route(lead("3", country="US", employees=20000), HOT)
    assert (hot.rule, hot.pool) == ("hot-large-to-senior", "enterprise")
    assert hot.rep in {"fay.enterprise@example-corp.test", "gus.enterprise@example-corp.test"}
    owners_seen = Counter(r.route(lead(f"n{i}", country="US", state="NY"), now=TUESDAY).rep for i in range(30))
    assert "hal.former@example-corp.test" not in owners_seen
    assert sum(owners_seen.values()) == 30


@dataclass(frozen=True)
class ConfigProblemLike:
    path: str

    def __eq__(self, other: object) -> bool:
        return getattr(other, "path", None) == self.path


def test_empty_config_is_valid_and_routes_nobody() -> None:
    cfg = RoutingConfig()
    assert check_routing(cfg, ScoringConfig(), "routing") == []
    decision, change = route_lead(lead(owner_id="9"), COLD, RoutingContext(), RoutingState(), compile_routing(cfg), TUESDAY)
    assert (decision.kind, decision.owner_id) == ("none", None)
    assert change.ops == ()
    assert build_reps(cfg, {"hubspot": []}) == ([], [])


def test_bad_config_is_reported_with_key_paths() -> None:
    cfg = config(
        reps=[
            rep("a@x.test", timezone="Mars/Olympus", working_hours="9-5", country="XX"),
            rep("A@x.test", working_hours={"funday": "09:00-17:00"}, out_of_office=[{"start": "2026-05-10", "end": "2026-05-01"}]),
            rep("not-an-email"),
        ],
        pools={"p": {"reps": ["a@x.test", "ghost@x.test"], "strategy": "fastest"}, "empty": {"reps": []}},
        territories={
            "t1": {"countries": ["US"], "postal_ranges": [["94000", "94999"]]},
            "t2": {"countries": ["US"], "postal_ranges": [["94500", "95000"], ["9", "1"]]},
        },
        regions={"west": {"countries": ["US"]}, "also_us": {"countries": ["US"]}},
        rules=[
            {"name": "r0", "pool": "p", "when": {"field": "colour", "op": "eq", "value": "red"}},
            {"name": "r1", "pool": "missing"},
            {"name": "r2", "pool": "p", "when": {"field": "region", "op": "eq", "value": "mars"}},
            {"name": "r3", "pool": "p", "when": {"field": "grade", "op": "eq", "value": "lukewarm"}, "strategy": "coin_flip"},
        ],
        experiments=[{"name": "e", "rule": "nope", "treatment": "dice"}],
        fallback_pool="gone",
        day_timezone="Nowhere/Town",
    )
    paths = {p.path for p in check_routing(cfg, ScoringConfig(), "routing")}
    expected = {
        "routing.reps[0].timezone", "routing.reps[0].working_hours", "routing.reps[0].country",
        "routing.reps[1].email", "routing.reps[1].working_hours.funday", "routing.reps[1].out_of_office[0].end",
        "routing.reps[2].email",
        "routing.pools.p.reps[1]", "routing.pools.p.strategy", "routing.pools.empty.reps",
        "routing.territories.t2.postal_ranges[0]", "routing.territories.t2.postal_ranges[1]",
        "routing.regions.also_us",
        "routing.rules[0].when.field", "routing.rules[1].pool", "routing.rules[2]", "routing.rules[2].when.value",
        "routing.rules[3].when.value", "routing.rules[3].strategy",
        "routing.experiments[0].rule", "routing.experiments[0].treatment",
        "routing.fallback_pool", "routing.day_timezone",
    }
    assert expected <= paths, expected - paths


def test_pydantic_rejects_unknown_keys_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="weight"):
        config(reps=[rep("a@x.test", weight=0)])
    with pytest.raises(ValueError, match="extra"):
        config(reps=[rep("a@x.test", colour="red")])


def test_experiment_and_tier_and_skill_checks() -> None:
    cfg = config(
        reps=[rep("a@x.test")],
        pools={"p": {"reps": ["a@x.test"]}},
        rules=[{"name": "r", "pool": "p", "tier": "senior", "require_skills": ["karate"]}],
        experiments=[{"name": "same", "rule": "r", "treatment": "round_robin"}],
    )
    paths = {p.path for p in check_routing(cfg, ScoringConfig(), "routing")}
    assert {"routing.rules[0].tier", "routing.rules[0].require_skills[0]", "routing.experiments[0].treatment"} <= paths


def test_build_reps_resolves_emails_case_insensitively_and_explicit_ids_win() -> None:
    cfg = config(reps=[
        rep("Ava@X.test"),
        rep("ben@x.test", owner_ids={"salesforce": "005EXPLICIT"}),
        rep("gone@x.test"),
        rep("nobody@x.test"),
    ])
    owners = {
        "hubspot": [Owner("hubspot", "1", "ava@x.TEST", "Ava A"), Owner("hubspot", "2", "ben@x.test"), Owner("hubspot", "3", "gone@x.test", is_active=False)],
        "salesforce": [Owner("salesforce", "005AVA", "AVA@x.test"), Owner("salesforce", "005BEN", "ben@x.test"), Owner("salesforce", "00GQUEUE", "ava@x.test", is_queue=True)],
    }
    reps, warnings = build_reps(cfg, owners)  # type: ignore[arg-type]
    by = {r.email: r for r in reps}
    assert by["ava@x.test"].owner_ids == {"hubspot": "1", "salesforce": "005AVA"} and by["ava@x.test"].name == "Ava A"
    assert by["ben@x.test"].owner_ids == {"hubspot": "2", "salesforce": "005EXPLICIT"}
    assert by["gone@x.test"].is_active is False and by["gone@x.test"].owner_ids == {}
    assert by["nobody@x.test"].is_active is False
    assert [w.path for w in warnings] == ["routing.reps[2].email", "routing.reps[3].email"]
    assert "inactive in hubspot" in warnings[0].message and "not an owner" in warnings[1].message


def test_round_robin_rotates_and_records_state() -> None:
    r = router(TEAM)
    picks = [r.route(lead(str(i))).rep for i in range(6)]
    assert picks == ["a@x.test", "b@x.test", "c@x.test"] * 2
    assert r.state.scope(OPEN_SCOPE) == {"a@x.test": 2, "b@x.test": 2, "c@x.test": 2}
    assert r.state.get(day_scope(r.compiled, TUESDAY), "a@x.test") == 2
    assert r.state.get("rr:p", VT_KEY) > 0
    assert required_scopes(r.compiled, TUESDAY) == ["load:day:2026-03-03", "load:open", "rr:p"]


def test_weighted_round_robin_gives_turns_by_weight() -> None:
    cfg = config(reps=[rep("a@x.test", weight=3), rep("b@x.test")], pools={"p": {"reps": ["a@x.test", "b@x.test"]}}, rules=[{"name": "all", "pool": "p"}])
    r = router(cfg)
    picks = Counter(r.route(lead(str(i))).rep for i in range(40))
    assert picks == {"a@x.test": 30, "b@x.test": 10}


def test_a_rep_skipped_while_unavailable_keeps_the_turn() -> None:
    r = router(TEAM)
    assert r.route(lead("1")).rep == "a@x.test"
    away = [Rep(x.email, owner_ids=x.owner_ids, is_active=x.email != "b@x.test") for x in r.reps]
    skipped = r.route(lead("2"), reps=away)
    assert skipped.rep == "c@x.test"
    assert any(c.rep == "b@x.test" and not c.eligible and c.reason == "inactive" for c in skipped.candidates)
    assert r.route(lead("3")).rep == "b@x.test"  # back: b's turn was kept


def test_a_rep_back_from_a_long_absence_gets_one_turn_not_a_backlog() -> None:
    r = router(TEAM)
    without_c = [Rep(x.email, owner_ids=x.owner_ids, is_active=x.email != "c@x.test") for x in r.reps]
    for i in range(40):
        r.route(lead(f"w{i}"), reps=without_c)
    after = [r.route(lead(f"b{i}")).rep for i in range(9)]
    assert after[0] == "c@x.test"
    assert Counter(after) == {"a@x.test": 3, "b@x.test": 3, "c@x.test": 3}


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"out_of_office": [{"start": "2026-03-02", "end": "2026-03-06", "note": "ski trip"}]}, "out of office 2026-03-02 to 2026-03-06 (ski trip)"),
        ({"timezone": "Asia/Tokyo", "working_hours": "09:00-18:00"}, "outside working hours (Wed 00:00 Asia/Tokyo)"),
        ({"country": "US", "timezone": "America/New_York"}, None),
        ({"max_open_leads": 0}, "at capacity: 0/0 open leads"),
        ({"max_leads_per_day": 0}, "at capacity: 0/0 leads today"),
    ],
)
def test_unavailable_reps_are_skipped_with_their_reason(patch: dict[str, Any], reason: str | None) -> None:
    cfg = config(reps=[rep("a@x.test", **patch), rep("b@x.test")], pools={"p": {"reps": ["a@x.test", "b@x.test"]}}, rules=[{"name": "all", "pool": "p"}])
    decision = router(cfg).route(lead(), now=TUESDAY.replace(hour=15))
    a = next(c for c in decision.candidates if c.rep == "a@x.test")
    if reason is None:
        assert decision.rep == "a@x.test" and a.reason == "chosen"
    else:
        assert decision.rep == "b@x.test"
        assert (a.eligible, a.reason) == (False, reason)


def test_public_holiday_of_the_reps_country_blocks_them() -> None:
    cfg = config(reps=[rep("a@x.test", country="FI", timezone="Europe/Helsinki"), rep("b@x.test")], pools={"p": {"reps": ["a@x.test", "b@x.test"]}}, rules=[{"name": "all", "pool": "p"}])
    midsummer = datetime(2026, 6, 19, 9, tzinfo=UTC)  # Juhannusaatto is a Friday holiday in Finland
    decision = router(cfg).route(lead(), now=midsummer)
    assert decision.rep == "b@x.test"
    assert decision.candidates[0].reason.startswith("public holiday in FI")


def test_a_rep_without_an_id_in_the_leads_crm_is_not_a_candidate() -> None:
    cfg = config(reps=[rep("a@x.test", owner_ids={"hubspot": "h1"}), rep("b@x.test", owner_ids={"hubspot": "h2", "salesforce": "005B"})], pools={"p": {"reps": ["a@x.test", "b@x.test"]}}, rules=[{"name": "all", "pool": "p"}])
    r = Router(cfg, compile_routing(cfg), build_reps(cfg, {})[0], RoutingState())
    decision = r.route(lead(crm="salesforce"))
    assert (decision.rep, decision.owner_id) == ("b@x.test", "005B")
    assert decision.candidates[0].reason == "no owner id in salesforce"


def test_nobody_available_waits_or_falls_back_to_the_queue() -> None:
    base = dict(reps=[rep("a@x.test", max_open_leads=0)], pools={"p": {"reps": ["a@x.test"]}}, rules=[{"name": "all", "pool": "p"}], fallback_queue={"salesforce": "00GQ"})
    waiting = router(config(**base)).route(lead(crm="salesforce"))
    assert (waiting.kind, waiting.owner_id, waiting.pool) == ("wait", None, "p")
    assert waiting.candidates[0].reason.startswith("at capacity")
    queued = router(config(**base, when_unavailable="fallback")).route(lead(crm="salesforce"))
    assert (queued.kind, queued.owner_id, queued.rep) == ("fallback", "00GQ", None)
    no_queue = router(config(**base, when_unavailable="fallback")).route(lead(crm="hubspot"))
    assert no_queue.kind == "wait"


def test_fallback_pool_takes_unmatched_leads_and_the_overflow() -> None:
    cfg = config(
        reps=[rep("a@x.test", max_open_leads=1), rep("z@x.test")],
        pools={"p": {"reps": ["a@x.test"]}, "catch": {"reps": ["z@x.test"]}},
        rules=[{"name": "fi", "pool": "p", "when": {"field": "country", "op": "eq", "value": "FI"}}],
        fallback_pool="catch", when_unavailable="fallback",
    )
    r = router(cfg)
    assert (r.route(lead("1", country="US")).kind, r.state.get(OPEN_SCOPE, "z@x.test")) == ("fallback", 1)
    assert r.route(lead("2", country="FI")).rep == "a@x.test"
    overflow = r.route(lead("3", country="FI"))
    assert (overflow.kind, overflow.rep, overflow.rule) == ("fallback", "z@x.test", "fi")


def test_existing_active_owner_is_kept_unless_unknown_inactive_or_unassigned() -> None:
    cfg = config(**{**TEAM.model_dump(), "unassigned_owner_ids": ["h-integration"]})
    r = router(cfg, inactive=frozenset({"b@x.test"}))
    known = frozenset({"h-a", "h-c", "h-integration", "77"})
    kept = r.route(lead(owner_id="77"), known_owner_ids=known)
    assert (kept.kind, kept.owner_id, kept.rep) == ("kept", "77", None)
    assert r.route(lead(owner_id="h-c"), known_owner_ids=known).rep == "c@x.test"
    for owner in ("h-b", "999", "h-integration"):
        decision = r.route(lead(owner_id=owner), known_owner_ids=known)
        assert decision.kind == "rule", owner
    off = router(config(**{**TEAM.model_dump(), "keep_existing_owner": False}))
    assert off.route(lead(owner_id="h-c"), known_owner_ids=known).kind == "rule"


def test_account_matching_uses_the_account_then_the_parent_owner() -> None:
    r = router(TEAM, inactive=frozenset({"a@x.test"}))
    known = frozenset({"h-b", "h-c"})
    acc = Account("hubspot", "co1", "acme.example", "Acme", owner_id="h-c", parent_id="co0", parent_owner_id="h-b")
    matched = r.route(lead(email="x@acme.example"), account=acc, known_owner_ids=known)
    assert (matched.kind, matched.owner_id, matched.rep) == ("account_match", "h-c", "c@x.test")
    assert r.state.get(OPEN_SCOPE, "c@x.test") == 1
    orphan = Account("hubspot", "co2", "beta.example", owner_id="h-a", parent_id="co0", parent_owner_id="h-b")
    parent = r.route(lead(email="x@beta.example"), account=orphan, known_owner_ids=known)
    assert (parent.kind, parent.owner_id) == ("account_match", "h-b")
    assert any("skipped" in why for why in parent.reasons)
    free = r.route(lead(email="x@gmail.com"), account=acc, is_free_mail=True, known_owner_ids=known)
    assert free.kind == "rule" and any("free-mail" in why for why in free.reasons)
    prefer_parent = router(config(**{**TEAM.model_dump(), "account_owner": "parent"}))
    assert prefer_parent.route(lead(), account=acc, known_owner_ids=known).owner_id == "h-b"


def test_duplicate_contact_owner_and_matched_owner_availability() -> None:
    r = router(TEAM)
    known = frozenset({"h-a", "h-b", "h-c"})
    assert r.route(lead(), contact_owner_id="h-b", known_owner_ids=known).kind == "contact_match"
    capped = config(**{**TEAM.model_dump(), "matched_owner_availability": True, "reps": [rep("a@x.test"), rep("b@x.test", max_open_leads=0), rep("c@x.test")]})
    decision = router(capped).route(lead(), contact_owner_id="h-b", known_owner_ids=known)
    assert decision.kind == "rule" and decision.rep != "b@x.test"
    assert any("at capacity" in why for why in decision.reasons)


def test_places_regions_territories_and_postal_ranges() -> None:
    compiled = compile_routing(example_routing())
    assert place_of(lead(country="us", state="ca", postal_code="94105-1234"), compiled) == ("us_west", "bay_area")
    assert place_of(lead(country="US", state="NY", postal_code="10001"), compiled) == ("us_east", "nyc_metro")
    assert place_of(lead(country="CA", postal_code="M5V 2T6"), compiled) == ("canada", "toronto")
    assert place_of(lead(country="CA", postal_code="V6B 1A1"), compiled) == ("canada", None)
    assert place_of(lead(country="DE"), compiled) == ("emea", "dach")
    assert place_of(lead(country="US", state="IA"), compiled) == (None, None)
    assert place_of(lead(), compiled) == (None, None)


def test_rules_are_tried_in_order_over_lead_fields_and_score() -> None:
    cfg = config(
        reps=[rep("a@x.test"), rep("b@x.test")],
        pools={"hot": {"reps": ["a@x.test"]}, "rest": {"reps": ["b@x.test"]}},
        rules=[
            {"name": "hot", "pool": "hot", "when": {"all": [{"field": "score", "op": "gte", "value": 60}, {"field": "stage", "op": "eq", "value": "lead"}]}},
            {"name": "rest", "pool": "rest"},
        ],
    )
    r = router(cfg)
    assert r.route(lead("1", stage="lead"), HOT).rule == "hot"
    assert r.route(lead("2", stage="customer"), HOT).rule == "rest"
    assert r.route(lead("3", stage="lead"), COLD).rule == "rest"


def test_senior_tier_is_preferred_for_hot_leads_and_strict_tier_waits() -> None:
    reps = [rep("a@x.test"), rep("s@x.test", tier="senior", max_open_leads=1)]
    rules = [{"name": "hot", "pool": "p", "tier": "senior"}]
    r = router(config(reps=reps, pools={"p": {"reps": ["a@x.test", "s@x.test"]}}, rules=rules))
    first, second = r.route(lead("1"), HOT), r.route(lead("2"), HOT)
    assert first.rep == "s@x.test" and "tier senior only" in first.reasons
    assert second.rep == "a@x.test" and any("any tier" in why for why in second.reasons)
    strict = router(config(reps=reps, pools={"p": {"reps": ["a@x.test", "s@x.test"]}}, rules=[{**rules[0], "tier_strict": True}]), counters={OPEN_SCOPE: {"s@x.test": 1}})
    assert strict.route(lead("3"), HOT).kind == "wait"


def test_least_loaded_and_best_match_and_required_skills() -> None:
    reps = [rep("a@x.test", industries=["RETAIL"], languages=["fi"]), rep("b@x.test", industries=["SOFTWARE"], products=["crm"], weight=2)]
    pools = {"p": {"reps": ["a@x.test", "b@x.test"], "strategy": "least_loaded"}}
    loaded = router(config(reps=reps, pools=pools, rules=[{"name": "all", "pool": "p"}]), counters={OPEN_SCOPE: {"a@x.test": 3, "b@x.test": 5}})
    decision = loaded.route(lead())
    assert (decision.rep, decision.strategy) == ("b@x.test", "least_loaded")  # 5/2 < 3/1
    best = router(config(reps=reps, pools=pools, rules=[{"name": "all", "pool": "p", "strategy": "best_match"}]))
    assert best.route(lead(industry="software", product_interest=("CRM",))).rep == "b@x.test"
    assert best.route(lead(industry="retail")).rep == "a@x.test"
    required = config(reps=reps, pools=pools, language_field="extra.language", rules=[{"name": "fi", "pool": "p", "require_skills": ["languages"]}])
    fi = router(required).route(lead(extra={"language": "FI"}))
    assert fi.rep == "a@x.test"
    assert next(c for c in fi.candidates if c.rep == "b@x.test").reason == "lacks skill languages: fi"


def test_conversion_weighting_gives_better_converters_more_turns() -> None:
    cfg = config(reps=[rep("a@x.test"), rep("b@x.test")], pools={"p": {"reps": ["a@x.test", "b@x.test"], "weight_by_conversion": True}}, rules=[{"name": "all", "pool": "p"}])
    r = router(cfg)
    picks = Counter(r.route(lead(str(i)), conversion_rates={"a@x.test": 0.30, "b@x.test": 0.10}).rep for i in range(60))
    assert picks == {"a@x.test": 45, "b@x.test": 15}  # factors 1.5 and 0.5 of the pool mean


def test_experiment_split_is_stable_and_recorded_per_decision() -> None:
    cfg = config(**{**TEAM.model_dump(), "experiments": [{"name": "ll", "rule": "all", "treatment": "least_loaded", "treatment_share": 0.5}]})
    decisions = [router(cfg).route(lead(str(i))) for i in range(200)]
    arms = Counter(d.arm for d in decisions)
    assert set(arms) == {"ll:control", "ll:treatment"} and 70 < arms["ll:treatment"] < 130
    assert all((d.strategy == "least_loaded") == (d.arm == "ll:treatment") for d in decisions)
    again = [router(cfg).route(lead(str(i))).arm for i in range(200)]
    assert again == [d.arm for d in decisions]


def test_snapshot_fast_path_decides_like_the_per_lead_path() -> None:
    cfg = example_routing()
    compiled = compile_routing(cfg)
    reps = reps_for(cfg, inactive=frozenset({"hal.former@example-corp.test"}))
    leads = [lead(str(i), country=c, state=s, employees=e) for i, (c, s, e) in enumerate([("US", "CA", 50), ("FI", None, 10), ("US", "NY", 9000), ("TH", None, 30), ("BR", None, 5)] * 4)]
    snap = availability_snapshot(reps, compiled, TUESDAY)
    slow, fast = RoutingState(), RoutingState()
    for the_lead in leads:
        d1, c1 = route_lead(the_lead, COLD, RoutingContext(reps=reps), slow, compiled, TUESDAY)
        d2, c2 = route_lead(the_lead, COLD, RoutingContext(reps=reps, availability=snap), fast, compiled, TUESDAY)
        assert d1 == d2 and c1 == c2
        slow, fast = apply_change(slow, c1), apply_change(fast, c2)


def test_apply_change_is_copy_on_write() -> None:
    before = state_from_counters({"load:open": {"a": 1}})
    r = router(TEAM)
    _, change = route_lead(lead(), COLD, RoutingContext(reps=r.reps), before, r.compiled, TUESDAY)
    after = apply_change(before, change)
    assert before.get("load:open", "a@x.test") == 0 and after.get("load:open", "a@x.test") == 1
    assert after.get("load:open", "a") == 1
    assert {op.kind for op in change.ops} == {"add", "set"}


@dataclass(frozen=True)
class View:
    routed_owner_id: str | None = "h-a"
    routed_rep: str | None = "a@x.test"
    routed_at: datetime | None = TUESDAY
    reassignments: int = 0
    initial_status: str | None = "NEW"


SLA = config(**{**TEAM.model_dump(), "sla": {"minutes": 30, "max_reassignments": 2}})


@pytest.mark.parametrize(
    ("the_lead", "view", "minutes", "status"),
    [
        (lead(owner_id="h-a", lead_status="NEW"), View(), 10, "pending"),
        (lead(owner_id="h-a", lead_status="NEW"), View(), 31, "expired"),
        (lead(owner_id="h-a", lead_status="CONTACTED"), View(), 31, "actioned"),
        (lead(owner_id="h-a", lead_status="NEW", last_activity_at=TUESDAY + timedelta(minutes=5)), View(), 31, "actioned"),
        (lead(owner_id="h-z", lead_status="NEW"), View(), 31, "owner_changed"),
        (lead(owner_id="h-a", lead_status="NEW"), View(reassignments=2), 31, "exhausted"),
        (lead(owner_id="h-a", lead_status="NEW"), View(routed_at=None), 31, "not_routed"),
    ],
)
def test_sla_check(the_lead: Lead, view: View, minutes: int, status: str) -> None:
    verdict = sla_check(the_lead, view, compile_routing(SLA), TUESDAY + timedelta(minutes=minutes))
    assert verdict.status == status
    assert bool(verdict) is (status == "expired")
    assert verdict.stops_clock is (status in ("actioned", "owner_changed", "exhausted"))


def test_sla_is_off_without_minutes_and_deadline_only_for_pool_assignments() -> None:
    assert sla_check(lead(), View(), compile_routing(TEAM), TUESDAY).status == "off"
    r = router(SLA)
    routed = r.route(lead("1"))
    assert sla_deadline(routed, r.compiled, TUESDAY) == TUESDAY + timedelta(minutes=30)
    kept = r.route(lead("2", owner_id="h-b"), known_owner_ids=frozenset({"h-b"}))
    assert sla_deadline(kept, r.compiled, TUESDAY) is None


def test_reassignment_goes_to_the_next_rep_and_moves_the_load() -> None:
    r = router(SLA, counters={OPEN_SCOPE: {"a@x.test": 1}})
    the_lead = lead(owner_id="h-a", lead_status="NEW")
    now = TUESDAY + timedelta(minutes=45)
    verdict = sla_check(the_lead, View(), r.compiled, now)
    decision, change = reassign_lead(the_lead, COLD, View(), RoutingContext(reps=r.reps), r.state, r.compiled, now, verdict.reason)
    assert decision.kind == "reassigned" and decision.rep in {"b@x.test", "c@x.test"}
    assert decision.reasons[0].startswith("reassigned: not actioned by a@x.test within 30 min")
    assert "reassignment 1 of at most 2" in decision.reasons
    state = apply_change(r.state, change)
    assert state.get(OPEN_SCOPE, "a@x.test") == 0 and state.get(OPEN_SCOPE, decision.rep) == 1
    alone = [Rep(x.email, owner_ids=x.owner_ids, is_active=x.email == "a@x.test") for x in r.reps]
    stuck, none = reassign_lead(the_lead, COLD, View(), RoutingContext(reps=alone), r.state, r.compiled, now, verdict.reason)
    assert (stuck.kind, stuck.owner_id, none.ops) == ("wait", None, ())
