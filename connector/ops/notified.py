"""What the notifications did: time from routing to sent per channel, pending and failed (report, demo)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.config import Settings
from connector.engine.notifications import NotificationChannel
from connector.state.store import Store


def _rank(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted `values` (p50: share 0.5)."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


def delivery_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by status, and per channel the seconds from the routing that decided a message to its sending:
    p50, p95 and max over the messages sent."""
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in ("sent", "pending", "failed")}
    delays: dict[str, list[float]] = {}
    for r in rows:
        if r["status"] == "sent" and r.get("sent_at") is not None:
            delays.setdefault(r["channel"], []).append(max(0.0, (r["sent_at"] - r["created_at"]).total_seconds()))
    channels = []
    for channel, seconds in sorted(delays.items()):
        seconds.sort()
        channels.append({"channel": channel, "sent": len(seconds), "p50_seconds": round(_rank(seconds, 0.5), 3),
                         "p95_seconds": round(_rank(seconds, 0.95), 3), "max_seconds": round(seconds[-1], 3)})
    failed: dict[str, int] = {}
    for r in rows:
        if r["status"] == "failed":
            failed[r["channel"]] = failed.get(r["channel"], 0) + 1
    return {**counts, "channels": channels, "failed_by_channel": dict(sorted(failed.items()))}


def notification_figures(store: Store) -> dict[str, Any]:
    """The report's notifications: every row of the notifications table."""
    return delivery_figures(store.list_notifications())


def _who(channel: str) -> tuple[str, str]:
    """(who was told, how) for the demo's channels: a rep's own e-mail, or a team webhook."""
    if channel.startswith("rep:"):
        return channel.removeprefix("rep:").split("@")[0], "e-mail"
    if channel.startswith("manager:"):
        return f"{channel.removeprefix('manager:').split('@')[0]}'s manager", "e-mail"
    return f"#{channel}", "webhook"


def story_lines(rows: Sequence[Mapping[str, Any]], received: Mapping[str, int], shown: int = 4) -> list[str]:
    """The demo's notification lines: how many went where, how fast, and the first few (who heard of which lead)."""
    sent = [r for r in rows if r["status"] == "sent"]
    if not sent:
        return ["   notifications: none sent"]
    figures = delivery_figures(rows)
    worst = max(c["max_seconds"] for c in figures["channels"])
    median = _rank(sorted(max(0.0, (r["sent_at"] - r["created_at"]).total_seconds()) for r in sent), 0.5)
    arrived = ", ".join(f"{n} {what}" for what, n in received.items())
    out = [f"   notifications: {len(sent)} sent ({arrived} received on loopback), routing to sent "
           f"median {median:.2f}s, max {worst:.2f}s"]
    for r in sent[:shown]:
        who, how = _who(r["channel"])
        p = r["payload"]
        out.append(f"   {who} told of {p['lead']['name']} ({p['grade']}, {p['score']:g}) by {how} in "
                   f"{(r['sent_at'] - r['created_at']).total_seconds():.2f}s")
    if len(sent) > shown:
        out.append(f"   … and {len(sent) - shown} more")
    return out


def with_demo_channels(settings: Settings, mailto: Callable[[str], str], webhook_url: str) -> Settings:
    """The demo's notifications: each configured rep told of their own leads by e-mail (`mailto(address)` gives the
    apprise URL), and a team webhook hearing of hot and warm leads."""
    channel = NotificationChannel.model_validate({"name": "hot-leads", "url": webhook_url, "secret": "demo-secret", "on": ["routed"],
                                                  "when": {"field": "grade", "op": "in", "value": ["hot", "warm"]}})
    reps = [rep.model_copy(update={"notify": mailto(rep.email)}) for rep in settings.routing.reps]
    return settings.model_copy(update={
        "notifications": settings.notifications.model_copy(update={"enabled": True, "channels": [channel]}),
        "routing": settings.routing.model_copy(update={"reps": reps}),
    })
