"""The generated scorer equals the oracle in tests, score and lines alike."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.engine.scoring import CompiledScoring, aggregate_events, score_lead
from tests.engine.scoring.oracle import score_reference
from tests.engine.scoring.samples import NOW, SCORING, random_events, random_lead


@pytest.mark.parametrize("compiled", SCORING, ids=["example", "other-forms"])
def test_generated_scorer_equals_the_reference_on_random_leads(compiled: CompiledScoring) -> None:
    rng = random.Random(7)
    for i in range(400):
        lead = random_lead(rng, i)
        events = random_events(rng, lead, rng.choice([0, 1, 5, 40, 90]))
        now = NOW + timedelta(days=rng.choice([0, 0.5, 3, 45]))
        agg = aggregate_events(events, compiled, until=NOW)
        fast = score_lead(lead, agg, compiled, now)
        reference = score_reference(lead, agg, compiled, now)
        assert fast == reference, lead
        assert score_lead(lead, events, compiled, NOW) == score_reference(lead, events, compiled, NOW)
        for result in fast.by_model.values():
            assert result.score == round(sum(c.points for c in result.contributions), 2)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    variant=st.sampled_from(range(len(SCORING))),
    n_events=st.sampled_from([0, 1, 3, 20, 70]),
    days_later=st.floats(0, 120, allow_nan=False),
)
def test_scores_and_explanation_lines_match_the_oracle(seed: int, variant: int, n_events: int, days_later: float) -> None:
    compiled = SCORING[variant]
    rng = random.Random(seed)
    lead = random_lead(rng, seed % 1000)
    events = random_events(rng, lead, n_events)
    now = NOW + timedelta(days=days_later)
    fast = score_lead(lead, aggregate_events(events, compiled, until=NOW), compiled, now)
    reference = score_reference(lead, aggregate_events(events, compiled, until=NOW), compiled, now)
    assert fast.primary == reference.primary
    assert fast.is_competitor == reference.is_competitor
    assert list(fast.by_model) == list(reference.by_model)
    for name, result in fast.by_model.items():
        lines = tuple(result.contributions)
        assert lines == tuple(reference.by_model[name].contributions)
        assert result.score == round(sum(c.points for c in lines), 2)


def test_lines_come_with_the_score_and_fit_lines_are_the_configs_own() -> None:
    compiled = SCORING[0]
    lead = random_lead(random.Random(3), 1).replace(country="US", industry="SOFTWARE", employees=300)
    result = score_lead(lead, [], compiled, NOW).by_model["core"]
    lines = result.contributions
    assert type(lines) is tuple and len(lines) > 0
    assert result.score == round(sum(c.points for c in lines), 2)
    fit_lines = {id(fit.line) for m in compiled.models for fit in m.fits}
    assert any(id(line) in fit_lines for line in lines)  # built once with the config, not per lead
