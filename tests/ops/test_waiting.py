"""Waiting is explained wherever it shows: `rules test`, `explain`, `status` and the HTML report say why a lead waits and
until when (time pinned with --at / CONNECTOR_AT, or a FrozenClock for the sync that leaves leads waiting)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.core.clock import FrozenClock
from connector.config import Settings, example_config_path, load_settings
from connector.ops.report_html import render_html
from connector.ops.insights import collect_report
from connector.runners.jobs import make_adapters, sync_once
from connector.pipeline.waiting import waiting_leads

from .conftest import SATURDAY_NIGHT, Ops

SATURDAY = datetime(2026, 12, 5, 2, 50, tzinfo=UTC)
# Every example rep in the smb pool is off on Saturday night; Dee in London starts first, Monday 08:30.
SMB_WAIT = ("waiting: nobody in pool 'smb' is available (outside working hours); "
            "next available: dee.sales@example-corp.test at Mon 08:30 Europe/London (2026-12-07T08:30Z)")
CSV = """email,first_name,title,country,state,employees,industry
cto@bigcorp.example,Ada,CTO,US,CA,1200,SOFTWARE
someone@gmail.com,Bo,Student,TH,,3,EDUCATION
"""


@pytest.mark.parametrize("how", ["--at", "CONNECTOR_AT"])
def test_rules_test_says_why_a_lead_waits_and_until_when(tmp_path: Path, how: str) -> None:
    pin = {"args": ("--at", SATURDAY_NIGHT), "env": {}} if how == "--at" else {"args": (), "env": {"CONNECTOR_AT": SATURDAY_NIGHT}}
    sample = tmp_path / "leads.csv"
    sample.write_text(CSV, encoding="utf-8")
    runner = CliRunner(env={"CONNECTOR_LOGGING__LEVEL": "WARNING", **pin["env"]})
    base = ["rules", "test", str(sample), *pin["args"], "--config", str(example_config_path())]
    data = json.loads(runner.invoke(main, [*base, "--json"]).stdout)
    lead = {row["lead"]: row for row in data["leads"]}["cto@bigcorp.example"]
    assert (lead["kind"], lead["pool"], lead["rep"]) == ("wait", "smb", None)
    assert (lead["wait_cause"], lead["next_available_rep"], lead["next_available_at"]) == (
        "outside_hours", "dee.sales@example-corp.test", "2026-12-07T08:30:00+00:00",
    )
    assert lead["reasons"][-1] == lead["waiting"] == SMB_WAIT
    thai = {row["lead"]: row for row in data["leads"]}["someone@gmail.com"]
    assert thai["kind"] == "wait" and thai["waiting"].startswith("waiting: nobody in pool 'apac' is available (outside working hours)")
    text = runner.invoke(main, base).stdout
    assert f"row 2 cto@bigcorp.example: {SMB_WAIT}" in text
    assert "row 3 someone@gmail.com: waiting: nobody in pool 'apac'" in text


def _waiting_lead(ops: Ops) -> tuple[str, dict[str, object]]:
    """A sandbox lead that waits on Saturday night (no account or contact owner to fall back on)."""
    for rid in ops.ids()[:20]:
        routing = ops.json("--at", SATURDAY_NIGHT, "explain", f"hubspot:{rid}")["routing"]
        if routing["kind"] == "wait":
            return rid, routing
    raise AssertionError("no lead of the sandbox waits on Saturday night")


def test_explain_says_why_a_lead_waits_until_when_and_since_when(ops: Ops) -> None:
    ops.env["CONNECTOR_ROUTING__WHEN_UNAVAILABLE"] = "wait"
    rid, routing = _waiting_lead(ops)
    assert routing["wait_cause"] == "outside_hours"
    assert routing["next_available_rep"] and routing["next_available_at"]
    at = datetime.fromisoformat(str(routing["next_available_at"]))
    assert datetime(2026, 12, 5, 2, 50, tzinfo=UTC) < at
    waiting = str(routing["waiting"])
    assert waiting.startswith(f"waiting: nobody in pool {routing['pool']!r} is available (outside working hours); next available: ")
    assert f"{routing['next_available_rep']} at " in waiting and f"({at:%Y-%m-%dT%H:%MZ})" in waiting
    assert waiting in routing["reasons"]  # type: ignore[operator]
    assert routing["waiting_since"] is None  # no run has left it waiting yet

    with ops.store() as store:  # a sync on Friday night left it waiting
        with store.routing_transaction(["waiting:hubspot"]) as txn:
            txn.set("waiting:hubspot", rid, 1)
            txn.set_waiting(f"hubspot:contacts:{rid}", "hubspot", datetime(2026, 12, 4, 23, 0, tzinfo=UTC), cause="outside_hours",
                            pool=str(routing["pool"]), next_available_at=at, next_available_rep=str(routing["next_available_rep"]), reason=waiting)
    again = ops.json("--at", SATURDAY_NIGHT, "explain", f"hubspot:{rid}")["routing"]
    assert again["waiting_since"] == "2026-12-04T23:00:00+00:00"
    text = ops.run("--at", SATURDAY_NIGHT, "explain", f"hubspot:{rid}").stdout
    assert f"waits: outside working hours; next available: {routing['next_available_rep']} at {at:%Y-%m-%d %H:%M} UTC" in text
    assert "waiting since 2026-12-04 23:00 UTC" in text
    assert f"({at:%Y-%m-%dT%H:%MZ})" in text


def _waiting_settings(ops: Ops) -> Settings:
    return load_settings(example_config_path(), {
        "store": {"url": ops.store_url},
        "hubspot": {"enabled": True, "base_url": ops.hubspot.base_url, "access_token": ops.hubspot.token, "safety_lag_seconds": 0},
        "routing": {"when_unavailable": "wait"},
    })


def test_status_and_the_report_show_how_many_wait_since_when_and_the_next_available_time(ops_any_store: Ops) -> None:
    ops = ops_any_store
    settings = _waiting_settings(ops)
    clock = FrozenClock(SATURDAY)
    with ops.store() as store:
        summary = sync_once(settings, store, make_adapters(settings, clock=clock), clock)
        waiting = len(waiting_leads(store, "hubspot"))
        first = min(r.next_available_at for r in store.waiting_leads() if r.next_available_at)
    assert summary.waiting == waiting > 0

    data = ops.json("--at", "2026-12-06T04:50:00Z", "status")
    figures = data["waiting"]
    assert figures["leads"] == waiting == data["backlog"]["hubspot"]["waiting_leads"]
    assert figures["by_cause"] == summary.waiting_reasons and sum(figures["by_cause"].values()) == waiting
    assert figures["oldest_since"] == "2026-12-05T02:50:00+00:00"
    assert figures["next_available_at"] == first.isoformat() and figures["next_available_rep"]
    assert figures["due"] == 0
    text = " ".join(ops.run("--at", "2026-12-06T04:50:00Z", "status").stdout.split())  # wrapped at 80 columns
    assert f"waiting leads: {waiting} (outside working hours {figures['by_cause']['outside_hours']}" in text
    assert "oldest waiting since 2026-12-05 02:50 UTC (1d 2h 0m)" in text
    assert f"next available: {figures['next_available_rep']} at {first:%a %Y-%m-%d %H:%M} UTC (in " in text
    # Once that time has passed, the waiting leads are due: the next sync routes them.
    later = ops.json("--at", "2026-12-08T15:00:00Z", "status")["waiting"]
    assert later["due"] > 0 and later["leads"] == waiting

    with ops.store() as store:
        report = collect_report(ops.settings(), store, datetime(2026, 12, 6, 4, 50, tzinfo=UTC))
    assert report["waiting"]["leads"] == waiting and report["waiting"]["oldest_since"] == "2026-12-05T02:50:00+00:00"
    page = render_html(report)
    assert '<h2 id="waiting">Waiting leads</h2>' in page
    assert f'<b id="waiting-count">{waiting}</b>' in page and f'<b id="waiting-next">{first.astimezone(UTC):%Y-%m-%d %H:%M} UTC</b>' in page
    assert "<td>outside working hours</td>" in page


def test_status_and_the_report_say_when_nothing_waits(ops: Ops) -> None:
    data = ops.json("--at", SATURDAY_NIGHT, "status")
    assert data["waiting"]["leads"] == 0 and data["waiting"]["next_available_at"] is None
    assert "waiting leads: none" in ops.run("--at", SATURDAY_NIGHT, "status").stdout
    with ops.store() as store:
        page = render_html(collect_report(ops.settings(), store, SATURDAY))
    assert "No lead is waiting for an available rep." in page
