"""Sending notifications: claimed from the state store, POSTed to their channel, retried, dead-lettered with a reason.

Runs after the CRM writes (never before or in their way): `sync --once` drains what it queued for at most
[notifications] drain_seconds, and what is left goes with the next run or `serve`'s worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.core.clock import Clock
from connector.engine.notifications import NotificationChannel, NotificationsConfig
from connector.state.store import NotificationRow, Store

log = logging.getLogger("connector.notify")

CLAIM_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0
# Hosts whose incoming webhooks take about one message a second (Slack's documented limit; Teams' connectors).
_SLOW_HOSTS = ("hooks.slack.com", "outlook.office.com", "outlook.office365.com", ".webhook.office.com")


def default_rate_per_second(url: str) -> float | None:
    """1 message/s for Slack and Teams incoming webhooks; None (unlimited) for generic webhooks and email."""
    host = (urlsplit(url).hostname or "").lower()
    return 1.0 if any(host == h or (h.startswith(".") and host.endswith(h)) for h in _SLOW_HOSTS) else None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: sent, retry (after `retry_after` seconds, None: back off), or failed (permanent)."""

    outcome: str
    error: str | None = None
    retry_after: float | None = None


def _secret(value: str | None, path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else value


def channel_url(channel: NotificationChannel) -> str:
    url = _secret(channel.url, channel.url_file)
    return url or ""


def body_for(url: str, payload: Mapping[str, Any]) -> bytes:
    """The JSON body: the documented payload for a generic webhook; Slack's incoming webhooks take {"text"}."""
    if (urlsplit(url).hostname or "").lower() == "hooks.slack.com":
        lead, owner = payload.get("lead", {}), payload.get("owner", {})
        text = (f"{payload['event']}: {lead.get('name')} ({lead.get('company') or '-'}), {payload.get('grade')} "
                f"{payload.get('score')} → {owner.get('name') or owner.get('email')} <{lead.get('url')}>")
        return json.dumps({"text": text}).encode()
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """X-Connector-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(channel: NotificationChannel, payload: Mapping[str, Any], now: datetime) -> Attempt:
    """POST one message; 2xx sent, 429 / 5xx / network retry (Retry-After honoured), other 4xx failed."""
    url = channel_url(channel)
    if urlsplit(url).scheme not in ("http", "https"):
        return Attempt("failed", f"unsupported channel URL scheme {urlsplit(url).scheme!r}: use an http(s) webhook")
    body = body_for(url, payload)
    headers = {"Content-Type": "application/json", "User-Agent": "crm-lead-connector"}
    secret = _secret(channel.secret, channel.secret_file)
    if secret:
        headers["X-Connector-Signature"] = signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) checked above
            response.read()
            return Attempt("sent")
    except urllib.error.HTTPError as exc:
        detail = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
        if exc.code == 429 or exc.code >= 500:
            return Attempt("retry", detail, _retry_after(exc.headers.get("Retry-After"), now))
        return Attempt("failed", detail)
    except (urllib.error.URLError, OSError) as exc:
        return Attempt("retry", f"network: {getattr(exc, 'reason', exc)}")


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
        except (TypeError, ValueError):
            return None


def deliver(
    store: Store, config: NotificationsConfig, clock: Clock, *, drain_seconds: float | None = None,
    observe: Callable[[str, str, str], None] | None = None, extra_channels: Sequence[NotificationChannel] = (),
) -> Counter[str]:
    """Send due notifications until none is left, or for at most `drain_seconds` (waiting out retries meanwhile).

    Returns counts by outcome: sent, retried, failed; `observe(channel, event, outcome)` hears each attempt (metrics).
    """
    channels = {c.name: c for c in (*config.channels, *extra_channels)}
    deadline = clock.monotonic() + (config.drain_seconds if drain_seconds is None else drain_seconds)
    counts: Counter[str] = Counter()
    last_sent: dict[str, float] = {}
    while True:  # one claim at least, however short the drain
        rows = store.claim_notifications(clock.now(), lease_seconds=CLAIM_SECONDS)
        if not rows:
            wait = _next_due_in(store, clock.now())
            if wait is None or clock.monotonic() + wait > deadline:
                return counts
            clock.sleep(wait)
            continue
        for row in rows:
            _pace(channels.get(row.channel), last_sent, clock)
            outcome = _deliver_one(store, channels.get(row.channel), row, config.max_attempts, clock)
            counts[outcome] += 1
            if observe is not None:
                observe(row.channel, row.event, outcome)
            last_sent[row.channel] = clock.monotonic()
        if clock.monotonic() > deadline:
            return counts


def _pace(channel: NotificationChannel | None, last_sent: Mapping[str, float], clock: Clock) -> None:
    """Wait out the channel's rate (rate_per_second; 1/s by default for Slack and Teams)."""
    if channel is None or channel.name not in last_sent:
        return
    rate = channel.rate_per_second or default_rate_per_second(channel_url(channel))
    if rate:
        clock.sleep(last_sent[channel.name] + 1.0 / rate - clock.monotonic())


def _deliver_one(store: Store, channel: NotificationChannel | None, row: NotificationRow, max_attempts: int, clock: Clock) -> str:
    now = clock.now()
    attempt = Attempt("failed", f"channel {row.channel!r} is no longer configured") if channel is None else post(channel, row.payload, now)
    if attempt.outcome == "retry" and row.attempts + 1 < max_attempts:
        delay = attempt.retry_after if attempt.retry_after is not None else min(MAX_BACKOFF_SECONDS, 2.0 ** row.attempts)
        store.settle_notification(row.id, now, status="pending", error=attempt.error, retry_at=now + timedelta(seconds=delay))
        log.info("notification %s to %s: %s; retrying in %.0f s", row.dedupe_key, row.channel, attempt.error, delay)
        return "retried"
    if attempt.outcome == "sent":
        store.settle_notification(row.id, now, status="sent")
        return "sent"
    error = attempt.error if attempt.outcome == "failed" else f"gave up after {row.attempts + 1} attempts: {attempt.error}"
    store.settle_notification(row.id, now, status="failed", error=error)
    log.warning("notification %s to %s dead-lettered: %s", row.dedupe_key, row.channel, error)
    return "failed"


def _next_due_in(store: Store, now: datetime) -> float | None:
    """Seconds until the next pending notification is due (None: nothing pending)."""
    pending = [r["next_attempt_at"] for r in store.list_notifications("pending")]
    return max(0.0, (min(pending) - now).total_seconds()) if pending else None


def sample_payload(now: datetime) -> dict[str, Any]:
    """The message `connector notify test` sends: the documented shape, with an obviously made-up lead."""
    return {
        "event": "test", "at": now.isoformat(),
        "lead": {"crm": "hubspot", "id": "0", "name": "Test Lead", "email": "test.lead@example.com", "company": "Example Inc.",
                 "title": "Head of Testing", "url": ""},
        "owner": {"email": "rep@example.com", "name": "Test Rep"}, "score": 80.0, "grade": "hot",
        "reasons": ["a test message from `connector notify test`"], "sla_due_at": None,
    }


def send_test(config: NotificationsConfig, name: str, now: datetime) -> Attempt:
    """Send the sample message to one channel, once (no retry): sent, or why not."""
    channel = next((c for c in config.channels if c.name == name), None)
    if channel is None:
        known = ", ".join(c.name for c in config.channels) or "none configured"
        return Attempt("failed", f"no channel named {name!r} in [[notifications.channels]] ({known})")
    return post(channel, sample_payload(now), now)
