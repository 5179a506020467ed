"""The routing path's memos: lineage states, capacity versions, snapshot reuse and place lookups equal plain recomputation."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.engine.routing import (
    OPEN_SCOPE,
    CompiledRouting,
    CounterOp,
    RoutingConfig,
    RoutingContext,
    RoutingState,
    StateChange,
    apply_change,
    availability_snapshot,
    build_reps,
    check_routing,
    compile_routing,
    day_scope,
    place_of,
    release_change,
    route_lead,
    state_from_counters,
)
from connector.engine.scoring import ScoringConfig
from connector.core.models import Account, Lead, Owner, Rep, ScoreResult
from tests.engine.routing import oracle

TUESDAY = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
COLD = ScoreResult(model="core", score=10.0, grade="cold")
HOT = ScoreResult(model="core", score=80.0, grade="hot", is_mql=True)

_op = st.builds(
    CounterOp,
    scope=st.sampled_from(["rr:a", OPEN_SCOPE, "load:day:2026-03-03", "new"]),
    key=st.sampled_from(["a@x.test", "b@x.test", "~vt"]),
    kind=st.sampled_from(["add", "set"]),
    value=st.integers(-3, 5),
)


def _model_apply(counters: dict[str, dict[str, int]], change: StateChange) -> dict[str, dict[str, int]]:
    """apply_change as a plain copy of every scope: what every state must read as."""
    out = {scope: dict(values) for scope, values in counters.items()}
    for op in change.ops:
        values = out.setdefault(op.scope, {})
        values[op.key] = values.get(op.key, 0) + op.value if op.kind == "add" else op.value
    return out


@settings(max_examples=150, deadline=None)
@given(
    start=st.dictionaries(st.sampled_from([OPEN_SCOPE, "rr:a"]), st.dictionaries(st.sampled_from(["a@x.test", "c@x.test"]), st.integers(0, 9))),
    steps=st.lists(st.tuples(st.integers(0, 1000), st.lists(_op, max_size=4), st.booleans()), max_size=25),
)
def test_every_state_of_a_lineage_reads_as_if_each_change_copied(
    start: dict[str, dict[str, int]], steps: list[tuple[int, list[CounterOp], bool]],
) -> None:
    states = [state_from_counters(start)]
    models = [{scope: dict(values) for scope, values in start.items()}]
    for branch, ops, read_now in steps:
        # Mostly the newest state (a batch), sometimes an older one (a branch of the lineage).
        at = len(states) - 1 if branch % 3 else branch % len(states)
        if read_now:
            assert states[at].counters == models[at]
        change = StateChange(tuple(ops))
        states.append(apply_change(states[at], change))
        models.append(_model_apply(models[at], change))
        newest = states[-1]
        assert newest.get(OPEN_SCOPE, "a@x.test") == models[-1].get(OPEN_SCOPE, {}).get("a@x.test", 0)
        assert dict(newest.scope("rr:a")) == models[-1].get("rr:a", {})
    for state, model in reversed(list(zip(states, models, strict=True))):
        assert state.counters == model
        assert state == RoutingState(model) == state_from_counters(model)
        for scope in ("rr:a", OPEN_SCOPE, "new", "missing"):
            assert dict(state.scope(scope)) == model.get(scope, {})
            assert state.get(scope, "b@x.test") == model.get(scope, {}).get("b@x.test", 0)


def test_a_scope_read_from_the_newest_state_does_not_move_with_later_changes() -> None:
    state = state_from_counters({OPEN_SCOPE: {"a@x.test": 1}})
    state = apply_change(state, StateChange((CounterOp(OPEN_SCOPE, "a@x.test", "add", 1),)))
    seen = state.scope(OPEN_SCOPE)
    after = apply_change(state, StateChange((CounterOp(OPEN_SCOPE, "a@x.test", "add", 5), CounterOp("rr:p", "~vt", "set", 7))))
    assert seen == {"a@x.test": 2} and state.scope(OPEN_SCOPE) == {"a@x.test": 2} and "rr:p" not in state.counters
    assert after.get(OPEN_SCOPE, "a@x.test") == 7 and after.get("rr:p", "~vt") == 7
    assert repr(state) == "RoutingState(counters={'load:open': {'a@x.test': 2}})"


def _capped_routing() -> tuple[CompiledRouting, CompiledRouting, list[Rep]]:
    """Small caps, so reps fill up, account matches push full reps past their caps and releases free them; a rule requiring skills."""
    cfg = RoutingConfig.model_validate({
        "reps": [
            {"email": "a@x.test", "max_open_leads": 3, "tier": "senior", "industries": ["Software"]},
            {"email": "b@x.test", "max_leads_per_day": 2, "weight": 2, "industries": ["retail"]},
            {"email": "c@x.test", "max_open_leads": 4, "max_leads_per_day": 3, "industries": ["software", "retail"]},
            {"email": "d@x.test", "max_open_leads": 2, "tier": "senior", "weight": 3},
            {"email": "e@x.test"},
        ],
        "pools": {
            "rr": {"reps": ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]},
            "ll": {"reps": ["c@x.test", "d@x.test", "e@x.test"], "strategy": "least_loaded"},
            "bm": {"reps": ["a@x.test", "b@x.test", "e@x.test"], "strategy": "best_match"},
        },
        "rules": [
            {"name": "hot-senior", "when": {"field": "grade", "op": "eq", "value": "hot"}, "pool": "rr", "tier": "senior"},
            {"name": "big", "when": {"field": "employees", "op": "gte", "value": 500}, "pool": "ll"},
            {"name": "skilled", "when": {"field": "industry", "op": "present"}, "pool": "rr", "require_skills": ["industries"]},
            {"name": "us", "when": {"field": "country", "op": "eq", "value": "US"}, "pool": "bm"},
            {"name": "rest", "pool": "rr"},
        ],
        "fallback_pool": "ll",
        "when_unavailable": "fallback",
    })
    assert check_routing(cfg, ScoringConfig(), "routing") == []
    fast = compile_routing(cfg)
    reference = replace(fast, batch_memo={}, place_memo={})  # its own memos, routed by the oracle
    owners = {"hubspot": [Owner("hubspot", f"h-{r.email.split('@')[0]}", r.email) for r in cfg.reps]}
    reps, _ = build_reps(fast, owners)
    return fast, reference, reps


def test_capacity_memos_follow_caps_filled_by_picks_matches_and_releases() -> None:
    fast, reference, reps = _capped_routing()
    rng = random.Random(7)
    states = [RoutingState(), RoutingState()]
    owner_ids = [r.owner_ids["hubspot"] for r in reps]
    kinds: set[str] = set()
    verdicts: set[str] = set()
    for batch in range(4):
        now = TUESDAY + timedelta(hours=batch)
        snaps = [availability_snapshot(reps, c, now) for c in (fast, reference)]
        for i in range(60):
            the_lead = Lead(
                crm="hubspot", object_type="contacts", id=f"{batch}-{i}", country=rng.choice(["US", "FI", None]),
                employees=rng.choice([10, 800]), industry=rng.choice(["software", "Retail", "mining", None]),
            )
            account = Account("hubspot", "acc", "acme.example", owner_id=rng.choice(owner_ids)) if rng.random() < 0.3 else None
            score = rng.choice([COLD, HOT])
            results = []
            for k, (compiled, route) in enumerate(((fast, route_lead), (reference, oracle.route_lead))):
                ctx = RoutingContext(reps=reps, account=account, availability=snaps[k], known_owner_ids=frozenset(owner_ids))
                results.append(route(the_lead, score, ctx, states[k], compiled, now))
            assert results[0] == results[1], the_lead
            kinds.add(results[0][0].kind)
            verdicts.update(c.reason.split(":")[0] for c in results[0][0].candidates)
            for k in (0, 1):
                states[k] = apply_change(states[k], results[k][1])
            if rng.random() < 0.4:  # a routed lead closes: its rep has one open lead fewer (a full rep is free again)
                release = release_change(rng.choice(reps[:4]).email)
                states = [apply_change(s, release) for s in states]
            assert states[0] == states[1]
    assert {"rule", "account_match"} <= kinds
    assert {"chosen", "at capacity", "lacks skill industries"} <= verdicts
    assert states[0].get(OPEN_SCOPE, "a@x.test") >= 3  # caps were reached (and passed, by account matches)


def test_a_snapshot_at_the_same_instant_is_reused_and_a_later_one_is_not() -> None:
    cfg = RoutingConfig.model_validate({
        "reps": [{"email": "ny@x.test", "timezone": "America/New_York", "working_hours": "09:00-17:00"}, {"email": "any@x.test"}],
        "pools": {"p": {"reps": ["ny@x.test", "any@x.test"]}},
        "rules": [{"name": "all", "pool": "p"}],
    })
    compiled = compile_routing(cfg)
    reps, _ = build_reps(compiled, {"hubspot": [Owner("hubspot", f"h-{r.email.split('@')[0]}", r.email) for r in cfg.reps]})
    morning, night = TUESDAY, TUESDAY + timedelta(hours=9)  # 10:00 and 19:00 in New York
    first = availability_snapshot(reps, compiled, morning)
    again = availability_snapshot(reps, compiled, morning)
    later = availability_snapshot(reps, compiled, night)
    assert first.blocked_reason("ny@x.test") is None and again.blocked_reason("ny@x.test") is None
    assert later.blocked_reason("ny@x.test") is not None and later.day == day_scope(compiled, night)
    for snap, now in ((first, morning), (again, morning), (later, night)):
        routed = []
        for use in (snap, None):
            state = RoutingState()
            picks = []
            for i in range(4):
                decision, change = route_lead(
                    Lead(crm="hubspot", object_type="contacts", id=str(i)), COLD, RoutingContext(reps=reps, availability=use), state, compiled, now,
                )
                state = apply_change(state, change)
                picks.append((decision, change))
            routed.append(picks)
        assert routed[0] == routed[1]


def test_remembered_places_equal_looked_up_places() -> None:
    base: dict[str, Any] = {
        "reps": [{"email": "a@x.test"}], "pools": {"p": {"reps": ["a@x.test"]}}, "rules": [{"name": "all", "pool": "p"}],
        "regions": {"west": {"countries": ["US"], "states": ["CA", "WA"]}, "europe": {"countries": ["FI", "DE"]}},
        "territories": {"bay": {"countries": ["US"], "postal_ranges": [["940", "951"]]}, "canada": {"countries": ["CA"]}},
    }
    compiled = compile_routing(RoutingConfig.model_validate(base))
    places = [(c, s, p) for c in (None, "US", " us", "FI", "CA") for s in (None, "CA", "ny") for p in (None, "94105", "10001", "M5V 2T6")]
    for _ in range(2):  # the second round reads the memo
        for country, state, postal in places:
            fresh = compile_routing(RoutingConfig.model_validate(base))
            the_lead = Lead(crm="hubspot", object_type="contacts", id="1", country=country, state=state, postal_code=postal)
            assert place_of(the_lead, compiled) == place_of(the_lead, fresh)
    assert place_of(Lead(crm="hubspot", object_type="contacts", id="1", country="US", state="CA", postal_code="94105"), compiled) == ("west", "bay")


def test_a_full_rep_freed_by_a_release_is_eligible_at_once() -> None:
    cfg = RoutingConfig.model_validate({
        "reps": [{"email": "a@x.test", "max_open_leads": 1}, {"email": "e@x.test"}],
        "pools": {"p": {"reps": ["a@x.test", "e@x.test"]}},
        "rules": [{"name": "all", "pool": "p"}],
    })
    compiled = compile_routing(cfg)
    reps, _ = build_reps(compiled, {"hubspot": [Owner("hubspot", f"h-{r.email.split('@')[0]}", r.email) for r in cfg.reps]})
    snap = availability_snapshot(reps, compiled, TUESDAY)
    state = state_from_counters({OPEN_SCOPE: {"a@x.test": 1}})
    picks = []
    for i, release in enumerate((False, False, True, False)):
        if release:
            state = apply_change(state, release_change("a@x.test"))
        decision, change = route_lead(Lead(crm="hubspot", object_type="contacts", id=str(i)), COLD, RoutingContext(reps=reps, availability=snap), state, compiled, TUESDAY)
        state = apply_change(state, change)
        picks.append((decision.rep, decision.candidates[0].reason))
    assert picks == [
        ("e@x.test", "at capacity: 1/1 open leads"), ("e@x.test", "at capacity: 1/1 open leads"),
        ("a@x.test", "chosen"), ("e@x.test", "at capacity: 1/1 open leads"),
    ]
