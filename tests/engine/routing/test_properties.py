"""routing properties: one owner per routed lead, never an unavailable rep, weighted round-robin fairness."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.engine.routing.availability import load_zone
from connector.engine.routing import (
    OPEN_SCOPE,
    RoutingConfig,
    RoutingContext,
    RoutingState,
    apply_change,
    build_reps,
    compile_routing,
    day_scope,
    route_lead,
)
from connector.core.models import Lead, Owner, Rep, ScoreResult

SCORE = ScoreResult(model="core", score=50.0, grade="warm")
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


def team(weights: list[int], caps: list[int | None], extra: list[dict[str, object]] | None = None, strategy: str = "round_robin") -> RoutingConfig:
    emails = [f"r{i}@x.test" for i in range(len(weights))]
    reps = [{"email": e, "weight": w, "max_open_leads": c, **((extra or [{}] * len(emails))[i])} for i, (e, w, c) in enumerate(zip(emails, weights, caps, strict=True))]
    return RoutingConfig.model_validate({
        "reps": reps, "pools": {"p": {"reps": emails, "strategy": strategy}}, "rules": [{"name": "all", "pool": "p"}],
    })


def resolved(cfg: RoutingConfig) -> list[Rep]:
    owners = [Owner("hubspot", f"o{i}", r.email) for i, r in enumerate(cfg.reps)]
    return build_reps(cfg, {"hubspot": owners})[0]


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(1, 5), min_size=2, max_size=5),
    steady_count=st.integers(2, 5),
    arrivals=st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=10, max_size=120),
)
def test_weighted_round_robin_fairness_among_continuously_eligible_reps(weights: list[int], steady_count: int, arrivals: list[list[bool]]) -> None:
    """Over every window, |n_a/w_a - n_b/w_b| <= 1 for reps eligible throughout; others come and go at random."""
    n = len(weights)
    steady = set(range(min(steady_count, n)))
    cfg = team(weights, [None] * n)
    compiled = compile_routing(cfg)
    base = resolved(cfg)
    state = RoutingState()
    served: list[int] = []
    for step, flips in enumerate(arrivals):
        reps = [Rep(r.email, owner_ids=r.owner_ids, weight=r.weight, is_active=i in steady or flips[i]) for i, r in enumerate(base)]
        decision, change = route_lead(Lead("hubspot", "contacts", str(step)), SCORE, RoutingContext(reps=reps), state, compiled, START)
        assert decision.rep is not None and decision.owner_id is not None
        chosen = int(decision.rep[1:].split("@")[0])
        assert reps[chosen].is_active
        served.append(chosen)
        state = apply_change(state, change)
    for a in sorted(steady):
        for b in sorted(steady):
            if a >= b:
                continue
            for lo in range(len(served)):
                na = nb = 0
                for who in served[lo:]:
                    na += who == a
                    nb += who == b
                    assert abs(na / weights[a] - nb / weights[b]) <= 1 + 1e-9, (weights, served, lo)


@st.composite
def absences(draw: st.DrawFn) -> list[dict[str, object]]:
    first = draw(st.integers(0, 10))
    days = draw(st.integers(0, 4))
    start = date(2026, 3, 1) + timedelta(days=first)
    return [{"start": start, "end": start + timedelta(days=days)}]


@settings(max_examples=40, deadline=None)
@given(
    caps=st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=2, max_size=5),
    zones=st.lists(st.sampled_from(["UTC", "America/New_York", "Europe/Helsinki", "Asia/Bangkok"]), min_size=5, max_size=5),
    ooo=st.lists(st.one_of(st.just([]), absences()), min_size=5, max_size=5),
    inactive=st.sets(st.integers(0, 4)),
    minutes=st.lists(st.integers(0, 60 * 24 * 14), min_size=1, max_size=40),
    strategy=st.sampled_from(["round_robin", "least_loaded", "best_match"]),
)
def test_never_an_inactive_absent_off_hours_or_full_rep(
    caps: list[int | None], zones: list[str], ooo: list[list[dict[str, object]]], inactive: set[int], minutes: list[int], strategy: str,
) -> None:
    n = len(caps)
    extra: list[dict[str, object]] = [{"timezone": zones[i], "working_hours": "08:00-18:00", "out_of_office": ooo[i]} for i in range(n)]
    cfg = team([1] * n, caps, extra, strategy)
    compiled = compile_routing(cfg)
    reps = [Rep(r.email, owner_ids=r.owner_ids, is_active=i not in inactive, max_open_leads=r.max_open_leads) for i, r in enumerate(resolved(cfg))]
    state = RoutingState()
    for step, offset in enumerate(sorted(minutes)):
        now = START + timedelta(minutes=offset)
        decision, change = route_lead(Lead("hubspot", "contacts", str(step)), SCORE, RoutingContext(reps=reps), state, compiled, now)
        if decision.kind == "wait":
            assert decision.owner_id is None and change.ops == ()
            assert not any(c.eligible for c in decision.candidates)
            continue
        assert decision.kind == "rule" and decision.owner_id is not None and decision.rep is not None
        assert sum(c.reason == "chosen" for c in decision.candidates) == 1
        i = int(decision.rep[1:].split("@")[0])
        rc = cfg.reps[i]
        assert i not in inactive
        local = now.astimezone(load_zone(rc.timezone))
        assert 8 * 60 <= local.hour * 60 + local.minute < 18 * 60 and local.weekday() < 5
        assert not any(a.start <= local.date() <= a.end for a in rc.out_of_office)  # type: ignore[operator]
        if rc.max_open_leads is not None:
            assert state.get(OPEN_SCOPE, decision.rep) < rc.max_open_leads
        assert decision.owner_id == reps[i].owner_ids["hubspot"]
        state = apply_change(state, change)
        assert state.get(day_scope(compiled, now), decision.rep) >= 1
