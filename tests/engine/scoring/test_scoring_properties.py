"""Property tests of the scoring engine over the example config: monotone, decaying, exact and deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.engine.scoring import (
    CompiledScoring,
    EventAggregates,
    ScoreOutcome,
    ScoringConfig,
    aggregate_events,
    aggregates_from_json,
    aggregates_to_json,
    check_scoring,
    compile_scoring,
    fold_events,
    merge_aggregates,
    score_lead,
    update_aggregates,
)
from connector.core.models import Event, Lead
from tests.engine.scoring.test_scoring import example_scoring_table

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _compiled() -> CompiledScoring:
    cfg = ScoringConfig.model_validate(example_scoring_table())
    assert check_scoring(cfg, "scoring") == []
    return compile_scoring(cfg)


COMPILED = _compiled()

# (name, kind, properties): events that only ever add points under the example config
POSITIVE = [
    ("Page Viewed", "page", {"path": "/pricing"}),
    ("Page Viewed", "page", {"path": "/demo"}),
    ("Page Viewed", "page", {"path": "/product/analytics"}),
    ("Page Viewed", "page", {"path": "/about"}),
    ("Form Submitted", "track", {"form_id": "demo-request"}),
    ("Form Submitted", "track", {"form_id": "ebook-crm"}),
    ("Signed Up", "track", {}),
    ("Task Created", "track", {}),
    ("Project Created", "track", {}),
    ("Email Opened", "track", {}),
    ("Email Clicked", "track", {"campaign": "product-launch"}),
    ("Webinar Attended", "track", {}),
    ("Meeting Booked", "track", {}),
    ("API Key Created", "track", {}),
    ("Test Payment Created", "track", {}),
]
NEGATIVE = [
    ("Page Viewed", "page", {"path": "/careers"}),
    ("Unsubscribed", "track", {}),
    ("Meeting Cancelled", "track", {}),
    ("Something Else", "track", {}),
    ("Identify", "identify", {}),
]

days = st.floats(min_value=0, max_value=200, allow_nan=False, allow_infinity=False)


def _event(template: tuple[str, str, dict[str, Any]], days_ago: float) -> Event:
    name, kind, props = template
    return Event("x@acme.example", name, NOW - timedelta(days=days_ago), props, kind)  # type: ignore[arg-type]


positive_events = st.builds(_event, st.sampled_from(POSITIVE), days)
any_events = st.builds(_event, st.sampled_from(POSITIVE + NEGATIVE), days)

leads = st.builds(
    Lead,
    crm=st.sampled_from(["hubspot", "salesforce"]),
    object_type=st.just("contacts"),
    id=st.just("1"),
    email=st.sampled_from(["ana@acme.example", "ana@gmail.com", "ana@rivalsoft.example", None]),
    title=st.sampled_from([None, "CTO", "VP of Sales", "Student", "Finance Manager"]),
    country=st.sampled_from([None, "US", "FI", "TH"]),
    industry=st.sampled_from([None, "SOFTWARE", "RETAIL"]),
    employees=st.one_of(st.none(), st.integers(1, 50_000)),
    company_name=st.sampled_from([None, "Acme"]),
    product_interest=st.sampled_from([(), ("payments",), ("analytics", "payments")]),
    budget=st.sampled_from([None, True, False]),
    need=st.sampled_from([None, True]),
    engagement=st.dictionaries(st.sampled_from(["pricing_page_views", "email_opens", "email_clicks", "form_submissions"]), st.integers(0, 20), max_size=4),
    last_activity_at=st.one_of(st.none(), days.map(lambda d: NOW - timedelta(days=d))),
    created_at=st.one_of(st.none(), days.map(lambda d: NOW - timedelta(days=d + 1))),
)


def _scores(outcome: ScoreOutcome) -> dict[str, float]:
    return {"primary": outcome.primary.score, **{k: v.score for k, v in outcome.by_model.items()}}


@settings(max_examples=150, deadline=None)
@given(leads, st.lists(any_events, max_size=25), positive_events)
def test_a_positive_event_never_lowers_a_score(lead: Lead, events: list[Event], extra: Event) -> None:
    before = _scores(score_lead(lead, events, COMPILED, NOW))
    after = _scores(score_lead(lead, [*events, extra], COMPILED, NOW))
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert after[key] >= value, key


@settings(max_examples=150, deadline=None)
@given(leads, st.lists(any_events, max_size=25), st.floats(0, 400), st.floats(0, 400))
def test_decay_is_monotone_in_now(lead: Lead, events: list[Event], a: float, b: float) -> None:
    early, late = NOW + timedelta(days=min(a, b)), NOW + timedelta(days=max(a, b))
    agg = aggregate_events(events, COMPILED)
    for source in (events, agg):
        first = _scores(score_lead(lead, source, COMPILED, early))
        later = _scores(score_lead(lead, source, COMPILED, late))
        for key, value in first.items():
            assert later[key] <= value, key


@settings(max_examples=150, deadline=None)
@given(leads, st.lists(any_events, max_size=25), st.floats(0, 120))
def test_contributions_sum_to_the_score(lead: Lead, events: list[Event], later: float) -> None:
    outcome = score_lead(lead, events, COMPILED, NOW + timedelta(days=later))
    for result in (outcome.primary, *outcome.by_model.values()):
        total = sum(c.points for c in result.contributions)
        assert result.score == round(total, 2)
        assert abs(result.score - total) < 1e-9
        assert all(c.decay >= 0 for c in result.contributions)


@settings(max_examples=100, deadline=None)
@given(leads, st.lists(any_events, max_size=25), st.randoms(use_true_random=False), st.floats(0, 120))
def test_same_inputs_same_result(lead: Lead, events: list[Event], rnd: Any, later: float) -> None:
    now = NOW + timedelta(days=later)
    first = score_lead(lead, events, COMPILED, now)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert score_lead(lead, events, COMPILED, now) == first
    assert score_lead(lead, shuffled, COMPILED, now) == first
    assert score_lead(lead, aggregate_events(events, COMPILED), COMPILED, now) == first
    incremental = EventAggregates(COMPILED.signature)
    for e in shuffled:
        incremental = update_aggregates(incremental, e, COMPILED)
    via_updates = _scores(score_lead(lead, incremental, COMPILED, now))
    for key, value in _scores(first).items():
        assert abs(via_updates[key] - value) <= 0.011, key  # float summation order only


@settings(max_examples=100, deadline=None)
@given(leads, st.lists(any_events, max_size=30), st.lists(st.integers(0, 2), min_size=30, max_size=30), st.floats(0, 120))
def test_stored_aggregates_score_as_the_raw_events(lead: Lead, events: list[Event], split: list[int], later: float) -> None:
    """Events stored under two keys (CRM key, email), kept as JSON aggregates, folded in late and merged: the raw events' scores."""
    now = NOW + timedelta(days=later)
    by_key: list[list[Event]] = [[], []]
    late: list[Event] = []  # arrive after key 0's aggregates were stored
    for e, where in zip(events, split, strict=False):
        (late if where == 2 else by_key[where]).append(e)
    stored = [aggregates_to_json(aggregate_events(evs, COMPILED)) for evs in by_key]
    first = aggregates_from_json(COMPILED.signature, stored[0], COMPILED)
    assert first is not None
    first = fold_events(first, late, COMPILED)
    second = aggregates_from_json(COMPILED.signature, stored[1], COMPILED)
    assert second is not None
    merged = merge_aggregates([first, second], COMPILED)
    assert merged.event_count == len(events)
    reference = _scores(score_lead(lead, events, COMPILED, now))
    via_store = _scores(score_lead(lead, merged, COMPILED, now))
    for key, value in reference.items():
        assert abs(via_store[key] - value) <= 0.011, key  # float summation order only
    assert aggregates_from_json("another-config", stored[0], COMPILED) is None
    assert aggregates_from_json(COMPILED.signature, {"rules": "garbage"}, COMPILED) is None
