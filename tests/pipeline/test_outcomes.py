"""Lead outcomes: one decision kind and one grade per lead, a re-read lead counted once, routed split by how."""

from __future__ import annotations

import pytest

from connector.core.models import RoutingDecision
from connector.pipeline.outcomes import LeadOutcome, OutcomeTally, outcome_of
from connector.runners.jobs import RunSummary


@pytest.mark.parametrize(("decision", "expected"), [
    (None, LeadOutcome("cold", "unrouted")),
    (RoutingDecision("k", None, kind="none"), LeadOutcome("cold", "unrouted")),
    (RoutingDecision("k", None, kind="wait"), LeadOutcome("cold", "waiting")),
    (RoutingDecision("k", "7", "ava@x.test", kind="kept"), LeadOutcome("cold", "kept")),
    (RoutingDecision("k", "7", "ava@x.test", kind="rule"), LeadOutcome("cold", "routed", "rule", "ava@x.test")),
    (RoutingDecision("k", "7", "ava@x.test", kind="fallback"), LeadOutcome("cold", "routed", "fallback_pool", "ava@x.test")),
    (RoutingDecision("k", "Q1", None, kind="fallback"), LeadOutcome("cold", "routed", "fallback_queue", None)),
    (RoutingDecision("k", "9", None, kind="account_match"), LeadOutcome("cold", "routed", "account_match", None)),
    (RoutingDecision("k", "9", "ben@x.test", kind="contact_match"), LeadOutcome("cold", "routed", "contact_match", "ben@x.test")),
])
def test_each_decision_has_one_kind(decision: RoutingDecision | None, expected: LeadOutcome) -> None:
    assert outcome_of(decision, "cold") == expected


def test_a_lead_read_twice_counts_once_and_stays_routed() -> None:
    tally = OutcomeTally()
    tally.add("a", LeadOutcome("cold", "waiting"))
    tally.add("a", LeadOutcome("warm", "routed", "rule", "ava@x.test"))
    tally.add("a", LeadOutcome("hot", "kept"))  # read again by the changed stream: routed earlier in this run
    tally.add("b", LeadOutcome("cold", "routed", "fallback_queue"))
    assert tally.leads == 2
    assert +tally.grades == {"hot": 1, "cold": 1}
    assert +tally.decisions == {"routed": 2}
    assert +tally.routed_by == {"rule": 1, "fallback_queue": 1} and +tally.leads_per_rep == {"ava@x.test": 1}


def test_a_backfill_summary_streams_without_remembering_each_lead() -> None:
    assert RunSummary(mode="backfill").tally.remember is False
    assert RunSummary(mode="sync").tally.remember is True
    backfill = RunSummary(mode="backfill")
    backfill.tally.add("a", LeadOutcome("cold", "kept"))
    assert backfill.tally.outcomes == {} and backfill.tally.leads == 1
