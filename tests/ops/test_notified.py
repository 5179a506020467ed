"""Notification figures: time from routing to sent per channel (p50 / p95 / max), pending and failed, in the HTML
report; and the demo's lines about who was told of which lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.config import example_config_path, load_settings
from connector.ops.demo import DEMO_AT, run_demo
from connector.ops.insights import collect_report
from connector.ops.notified import delivery_figures, story_lines
from connector.ops.report_html import render_html
from connector.state.store import Store

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _row(i: int, channel: str, status: str, seconds: float | None = None) -> dict[str, Any]:
    return {"dedupe_key": f"{channel}:routed:hubspot:contacts:{i}:1", "channel": channel, "event": "routed",
            "lead_key": f"hubspot:contacts:{i}", "status": status, "attempts": 1, "next_attempt_at": T0, "created_at": T0,
            "sent_at": T0 + timedelta(seconds=seconds) if seconds is not None else None,
            "payload": {"lead": {"name": f"Lead {i}"}, "grade": "hot", "score": 80.0}}


def test_delivery_figures_are_nearest_rank_percentiles_per_channel() -> None:
    rows = [_row(i, "slack", "sent", float(i)) for i in range(1, 21)] + [_row(30, "mail", "sent", 0.5)]
    rows += [_row(40, "mail", "failed"), _row(41, "slack", "pending")]
    figures = delivery_figures(rows)
    assert (figures["sent"], figures["pending"], figures["failed"]) == (21, 1, 1)
    assert figures["failed_by_channel"] == {"mail": 1}
    assert figures["channels"] == [
        {"channel": "mail", "sent": 1, "p50_seconds": 0.5, "p95_seconds": 0.5, "max_seconds": 0.5},
        {"channel": "slack", "sent": 20, "p50_seconds": 10.0, "p95_seconds": 19.0, "max_seconds": 20.0},
    ]


def test_the_report_shows_time_to_sent_per_channel_and_failed_and_pending(tmp_path: Path) -> None:
    settings = load_settings(example_config_path(), {"store": {"url": f"sqlite:///{tmp_path / 'state.db'}"}})
    with Store.open(settings.store.url) as store:
        rows = [_row(1, "hot-leads", "pending"), _row(2, "hot-leads", "pending"), _row(3, "rep:ava@example.com", "pending")]
        store.add_notifications([{k: v for k, v in r.items() if k != "sent_at"} for r in rows])
        claimed = store.claim_notifications(T0, lease_seconds=60)
        store.settle_notification(claimed[0].id, T0 + timedelta(seconds=2), status="sent")
        store.settle_notification(claimed[2].id, T0 + timedelta(seconds=1), status="failed", error="HTTP 404")
        report = collect_report(settings, store, T0 + timedelta(minutes=1))
    assert report["notifications"]["channels"] == [
        {"channel": "hot-leads", "sent": 1, "p50_seconds": 2.0, "p95_seconds": 2.0, "max_seconds": 2.0}]
    page = render_html(report)
    assert '<h2 id="notifications">' in page and 'id="chart-notifications"' in page
    assert '<b id="notifications-sent">1</b>' in page and '<b id="notifications-failed">1</b> (rep:ava@example.com 1)' in page
    assert '<b id="notifications-pending">1</b>' in page
    assert "<td>hot-leads</td><td>1</td><td>2.0</td><td>2.0</td><td>2.0</td>" in page


def test_story_lines_say_who_heard_of_which_lead_and_how_fast() -> None:
    rows = [_row(1, "rep:ava.sales@example-corp.test", "sent", 0.25), _row(1, "hot-leads", "sent", 0.5)]
    lines = story_lines(rows, {"e-mails": 1, "webhook POSTs": 1})
    assert lines == [
        "   notifications: 2 sent (1 e-mails, 1 webhook POSTs received on loopback), routing to sent median 0.25s, max 0.50s",
        "   ava.sales told of Lead 1 (hot, 80) by e-mail in 0.25s",
        "   #hot-leads told of Lead 1 (hot, 80) by webhook in 0.50s",
    ]


def test_the_demo_tells_reps_by_email_and_the_team_webhook_of_the_leads_its_story_routes() -> None:
    lines: list[str] = []
    data = run_demo(contacts=30, echo=lines.append, at=DEMO_AT)
    figures = data["notifications"]
    assert figures["failed"] == 0 and figures["pending"] == 0
    text = "\n".join(lines)
    told = [line for line in lines if " told of " in line]
    # The live arrivals are routed and their reps told (the backfill notifies nothing: no --notify).
    assert figures["sent"] > 0 and len(told) == min(4, figures["sent"])
    assert f"   notifications: {figures['sent']} sent (" in text and "received on loopback" in text
    assert {c["channel"].split(":")[0] for c in figures["channels"]} <= {"rep", "hot-leads"}
    assert all(line.endswith("s") and (" by e-mail in " in line or " by webhook in " in line) for line in told)
