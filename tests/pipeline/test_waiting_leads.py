"""Leads that wait for a rep (routing.when_unavailable = "wait"): the run summary says why and until when, the store
remembers since when, and a sync once reps are back routes them (SQLite and PostgreSQL, time pinned)."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from connector.core.clock import FrozenClock
from connector.runners.jobs import sync_once
from connector.core.models import WAIT_CAUSES
from connector.pipeline.waiting import waiting_leads
from connector.ops.summary import render_summary
from connector.sandbox.hubspot import HubSpotSandbox

from .conftest import Env

SATURDAY = datetime(2026, 12, 5, 2, 50, tzinfo=UTC)  # every example rep is off: weekend or night
TUESDAY = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # New York, London and Berlin at work


def test_an_off_hours_sync_says_why_leads_wait_and_a_weekday_sync_routes_them(store_url: str, hubspot: HubSpotSandbox) -> None:
    clock = FrozenClock(SATURDAY)
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "wait"})
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        assert summary.aborted is None
        assert summary.waiting > 0
        data = summary.as_json()
        assert data["waiting"] == summary.waiting
        assert sum(data["waiting_reasons"].values()) == summary.waiting
        assert set(data["waiting_reasons"]) <= set(WAIT_CAUSES)
        assert max(data["waiting_reasons"], key=data["waiting_reasons"].get) == "outside_hours"
        first = datetime.fromisoformat(data["next_available_at"])
        assert SATURDAY < first <= datetime(2026, 12, 7, 23, 59, tzinfo=UTC)  # Monday, somewhere

        console = Console(record=True, width=240)
        render_summary(summary, console)
        text = console.export_text()
        assert f"waiting {summary.waiting}: outside working hours {data['waiting_reasons']['outside_hours']}" in text
        assert f"— next available {first:%a %Y-%m-%d %H:%M} UTC" in text

        rows = env.store.waiting_leads("hubspot")
        assert len(rows) == summary.waiting == len(waiting_leads(env.store, "hubspot"))
        assert {r.lead_key.rsplit(":", 1)[1] for r in rows} == set(waiting_leads(env.store, "hubspot"))
        for row in rows:
            assert row.since == row.checked_at == SATURDAY
            assert row.cause in WAIT_CAUSES and row.pool
            assert row.reason.startswith(f"waiting: nobody in pool {row.pool!r} is available (")
            if row.next_available_at is not None:
                assert row.next_available_at > SATURDAY and row.next_available_rep
                assert f"({row.next_available_at:%Y-%m-%dT%H:%MZ})" in row.reason
        assert min(r.next_available_at for r in rows if r.next_available_at) == first

        clock.advance((TUESDAY - SATURDAY).total_seconds())
        later = sync_once(env.settings, env.store, env.adapters, clock)
        assert later.routed > 0
        left = env.store.waiting_leads("hubspot")
        still = set(waiting_leads(env.store, "hubspot"))
        assert {r.lead_key.rsplit(":", 1)[1] for r in left} == still
        assert len(left) < len(rows)
        for row in left:  # still waiting (e.g. a pool at its caps): since when stays the first wait's
            assert row.since == SATURDAY and row.checked_at == TUESDAY
    finally:
        env.close()
