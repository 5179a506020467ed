"""The run summary's memory: a backfill keeps O(1) per lead (counts only), a sync still counts a re-read lead once."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from connector.core.models import RoutingDecision, ScoreResult
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.batch import BatchResult
from connector.runners.jobs import RunSummary

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # night: nobody works, leads wait


def page(start: int, size: int, *, kind: str = "wait") -> BatchResult:
    """One page of `size` leads, every one waiting (off hours) or routed."""
    keys = [f"hubspot:contacts:{start + i}" for i in range(size)]
    decisions = {
        key: RoutingDecision(key, None, kind="wait", wait_cause="off_hours", next_available_at=T0 + timedelta(hours=5, seconds=i))
        if kind == "wait" else RoutingDecision(key, "7", "ava@x.test", kind="rule")
        for i, key in enumerate(keys)
    }
    scores = {key: ScoreOutcome(primary=ScoreResult(model="m", score=10.0, grade="cold")) for key in keys}
    return BatchResult(fetched=size, scored=size, decisions=decisions, scores=scores)


def summary_size(summary: RunSummary) -> int:
    """Bytes held by the summary's per-lead containers (the dicts themselves and what they hold)."""
    total = sys.getsizeof(summary.waits) + sys.getsizeof(summary.tally.outcomes)
    for key, value in summary.waits.items():
        total += sys.getsizeof(key) + sys.getsizeof(value)
    return total


def test_a_backfill_summary_keeps_nothing_per_waiting_lead() -> None:
    summary = RunSummary(mode="backfill")
    sizes = []
    for n in range(20):
        summary.absorb(page(n * 100, 100), keep_patches=False)
        sizes.append(summary_size(summary))
    assert summary.waiting == 2000 and summary.waiting_reasons == {"off_hours": 2000}
    assert summary.next_available_at == T0 + timedelta(hours=5)
    assert summary.as_json()["waiting"] == 2000 and summary.as_json()["decisions"]["waiting"] == 2000
    # O(1) per lead: the summary is the same size after 100 leads as after 2,000.
    assert sizes[-1] == sizes[0], sizes


def test_a_sync_summary_counts_a_lead_read_twice_once_by_its_latest_decision() -> None:
    summary = RunSummary(mode="sync")
    summary.absorb(page(0, 10), keep_patches=False)  # the waiting pass: ten leads wait
    summary.absorb(page(0, 4, kind="route"), keep_patches=False)  # four of them read again and routed
    assert summary.waiting == 6 and summary.waiting_reasons == {"off_hours": 6}
    assert summary.next_available_at == T0 + timedelta(hours=5, seconds=4)
    assert summary.tally.leads == 10 and summary.routed == 4
