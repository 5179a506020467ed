"""One definition per figure: the sync summary, `status`, `report` and the demo say the same numbers for the same run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.core.clock import PinnedClock
from connector.ops.demo import DEMO_AT, run_demo
from connector.sandbox.hubspot import HubSpotSandbox

from .conftest import WEEKDAY_AFTERNOON, Ops

SHARED = ("leads", "routed", "waiting", "decisions", "routed_by", "grades", "leads_per_rep")


def _sync_at(ops: Ops, monkeypatch: pytest.MonkeyPatch, at: str) -> dict[str, Any]:
    """`sync --once --json` on a clock pinned to `at` (sync itself refuses --at: it changes the CRM)."""
    monkeypatch.setattr("connector.cli.command_clock", lambda: PinnedClock(datetime.fromisoformat(at)))
    data: dict[str, Any] = ops.json("sync", "--once")
    monkeypatch.undo()
    return data


def _adds_up(run: Mapping[str, Any]) -> None:
    """Within one summary: every lead has one grade and one decision; routed leads are split by how."""
    assert sum(run["grades"].values()) == run["leads"] == sum(run["decisions"].values())
    assert run["routed"] == run["decisions"]["routed"] == sum(run["routed_by"].values())
    assert run["waiting"] == run["decisions"]["waiting"]
    assert sum(run["leads_per_rep"].values()) <= run["routed"] - run["routed_by"]["fallback_queue"]


def test_sync_status_and_report_agree_on_one_run(ops: Ops, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ops.env["CONNECTOR_ROUTING__WHEN_UNAVAILABLE"] = "wait"
    first = _sync_at(ops, monkeypatch, WEEKDAY_AFTERNOON)
    # A second run re-checks the waiting leads and reads the changed ones again: each lead still counts once.
    sync = _sync_at(ops, monkeypatch, WEEKDAY_AFTERNOON)
    for run in (first, sync):
        _adds_up(run)
    assert first["leads"] == len(ops.ids()) and first["routed"] > 0 and first["waiting"] > 0
    assert sync["rechecked_waiting"] == first["waiting"] and sync["leads"] <= sync["fetched"]

    status = ops.json("--at", WEEKDAY_AFTERNOON, "status")["last_runs"]["sync"]
    report = ops.json("--at", WEEKDAY_AFTERNOON, "report", "--out", str(tmp_path / "report.html"))
    assert {k: status[k] for k in SHARED} == {k: sync[k] for k in SHARED}
    assert {k: report["last_run"][k] for k in SHARED} == {k: sync[k] for k in SHARED}

    # The report's leads per rep are the runs' new leads per rep, summed over both runs.
    per_rep = {r["rep"]: r["leads"] for r in report["fairness"] if r["leads"]}
    summed = {rep: first["leads_per_rep"].get(rep, 0) + sync["leads_per_rep"].get(rep, 0) for rep in per_rep}
    assert per_rep == summed and sum(per_rep.values()) == sum(first["leads_per_rep"].values()) + sum(sync["leads_per_rep"].values())
    # A rep inactive in the CRM is inactive in the report too, with no expected share.
    hal = next(r for r in report["fairness"] if r["rep"] == "hal.former@example-corp.test")
    assert hal["active"] is False and hal["expected"] == 0.0

    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"<td>routed (a new owner)</td><td>{sync['routed']} (" in html
    assert "<td>hal.former@example-corp.test</td><td>no</td>" in html


def test_demo_figures_add_up_and_match_what_it_prints() -> None:
    lines: list[str] = []
    data = run_demo(contacts=30, echo=lines.append, at=DEMO_AT)
    _adds_up(data)
    text = "\n".join(lines)
    # Five live arrivals join the backfilled leads of both CRMs; each lead counts once over the three steps.
    assert data["leads"] in (30 + 5, 2 * 30 + 5)
    assert f"Leads: {data['leads']} (each counted once over the whole story)" in text
    assert f"Decisions: routed {data['routed']} (" in text and f"waiting {data['waiting']}," in text
    steps = data["api_calls_by_step"]
    assert data["api_calls_total"] == sum(steps.values()) == sum(data["api_calls"].values())
    assert f"API calls used (whole demo): {data['api_calls_total']} (backfill {steps['backfill']}, " in text
    # The "nothing new" step only re-checks waiting leads and writes nothing.
    assert data["resync_written"] == 0 and data["resync_rechecked_waiting"] == data["waiting"]
    assert data["dead_letters"] == 1 and "see `connector errors list`" not in text
    assert "the demo's store is deleted when it ends" in text


def test_sync_table_says_how_leads_were_decided(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    ops.env["CONNECTOR_ROUTING__WHEN_UNAVAILABLE"] = "wait"
    monkeypatch.setattr("connector.cli.command_clock", lambda: PinnedClock(datetime.fromisoformat(WEEKDAY_AFTERNOON)))
    out = ops.run("sync", "--once").stdout
    with ops.store() as store:
        data = store.last_runs(1)[0]["summary"]
    how = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in data["routed_by"].items() if n)
    assert f"decided {data['leads']} leads: routed {data['routed']} ({how}), kept {data['decisions']['kept']}, " in out
    assert "fallback_pool" not in out and "{" not in out


def test_report_axes_read_in_percent_and_hours(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from connector.ops.report_html import bar_chart, render_html

    # Rates under 1 % still draw on a 0–10 % axis, not on ticks 0–1 labelled "%".
    chart = bar_chart("c", [("rate", "conversion rate %")], ["a", "b"], [[0.4, 0.6]], y_label="conversion rate %", y_floor=10.0)
    assert ">10</text>" in chart and ">0.25</text>" not in chart
    # Leads routed by a backfill are not speed-to-lead: only the lead that arrives later is, 20 minutes after it came.
    at = datetime.fromisoformat(WEEKDAY_AFTERNOON)
    with HubSpotSandbox(seed=42, contacts=20, clock=PinnedClock(at)) as hubspot:
        ops = Ops(hubspot, f"sqlite:///{tmp_path / 'state.db'}")
        monkeypatch.setattr("connector.cli.command_clock", lambda: PinnedClock(at))
        ops.run("backfill")
        hubspot.create_contact({"email": "fresh@hooli.example", "firstname": "Fresh", "lastname": "Lead", "jobtitle": "VP of Sales",
                                "country": "US", "numemployees": "1200", "industry": "SOFTWARE"})
        monkeypatch.setattr("connector.cli.command_clock", lambda: PinnedClock(at + timedelta(minutes=20)))
        ops.run("sync", "--once")
        monkeypatch.undo()
        report = ops.json("--at", "2026-12-08T15:30:00Z", "report", "--offline", "--out", str(tmp_path / "r.html"))
    [day] = report["sla"]["days"]
    assert day["routed"] > 1 and 19.9 < day["median_minutes_to_route"] < 20.5
    html = render_html(report)
    assert "median minutes to owner" in html and "Backfills are left out" in html
    day["median_minutes_to_route"] = 21_000.0  # two weeks: read in hours
    hours = render_html(report)
    assert "median hours to owner" in hours and ">400</text>" in hours  # 350 hours on a 0–400 axis (a gridline every 100)
