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
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from connector.core.clock import Clock
from connector.engine.notifications import NotificationChannel, NotificationsConfig
from connector.runners.channels import Attempt, default_rate_per_second, is_generic_webhook, is_slack_member, send_apprise
from connector.state.store import NotificationRow, Store

log = logging.getLogger("connector.notify")

CLAIM_SECONDS = 60.0
CLAIM_BATCH = 10  # rows claimed at once: at Slack's 1 message/s a batch is sent well within its claim
TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0


def _secret(value: str | None, path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else value


def channel_url(channel: NotificationChannel) -> str:
    url = _secret(channel.url, channel.url_file)
    return url or ""


def body_for(payload: Mapping[str, Any]) -> bytes:
    """A generic webhook's body: the documented payload as compact JSON (what X-Connector-Signature signs)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """X-Connector-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(channel: NotificationChannel, payload: Mapping[str, Any], now: datetime, dm_url: str | None = None) -> Attempt:
    """Send one message: a generic http(s) webhook gets the signed JSON POST; any other URL goes through apprise;
    a Slack member id is a DM through `dm_url` (the slack_dm_channel's bot URL)."""
    url = channel_url(channel)
    if is_slack_member(url):
        if not dm_url:
            return Attempt("failed", "a Slack member id needs [notifications] slack_dm_channel (a Slack bot URL, slack://xoxb-…)")
        return send_apprise(dm_url, payload, slack_target=url)
    if not is_generic_webhook(url):
        return send_apprise(url, payload)
    return post_json(channel, url, payload, now)


def post_json(channel: NotificationChannel, url: str, payload: Mapping[str, Any], now: datetime) -> Attempt:
    """POST the documented JSON; 2xx sent, 429 / 5xx / network retry (Retry-After honoured), other 4xx failed."""
    body = body_for(payload)
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
    dm = channels.get(config.slack_dm_channel or "")
    dm_url = channel_url(dm) if dm is not None else None
    deadline = clock.monotonic() + (config.drain_seconds if drain_seconds is None else drain_seconds)
    counts: Counter[str] = Counter()
    last_sent: dict[str, float] = {}
    while True:  # one claim at least, however short the drain
        rows = store.claim_notifications(clock.now(), lease_seconds=CLAIM_SECONDS, limit=CLAIM_BATCH)
        if not rows:
            wait = _next_due_in(store, clock.now())
            if wait is None or clock.monotonic() + wait > deadline:
                return counts
            clock.sleep(wait)
            continue
        claimed_at = clock.monotonic()
        while rows:
            # The row whose channel is ready first (ties: oldest first): a slow channel does not hold up the others.
            row = min(rows, key=lambda r: _ready_at(channels.get(r.channel), last_sent))
            rows.remove(row)
            _pace(channels.get(row.channel), last_sent, clock)
            if clock.monotonic() - claimed_at > CLAIM_SECONDS - TIMEOUT_SECONDS - 1:
                break  # the claim is about to lapse (a slow channel): the rest is claimed again, here or by another sender
            outcome = _deliver_one(store, channels.get(row.channel), row, config.max_attempts, clock, dm_url)
            counts[outcome] += 1
            if observe is not None:
                observe(row.channel, row.event, outcome)
            last_sent[row.channel] = clock.monotonic()
        if clock.monotonic() > deadline:
            return counts


def _ready_at(channel: NotificationChannel | None, last_sent: Mapping[str, float]) -> float:
    """The monotonic time the channel may take its next message (its rate_per_second; 1/s by default for Slack
    and Teams); -inf when it may now."""
    if channel is None or channel.name not in last_sent:
        return float("-inf")
    rate = channel.rate_per_second or default_rate_per_second(channel_url(channel))
    return last_sent[channel.name] + 1.0 / rate if rate else float("-inf")


def _pace(channel: NotificationChannel | None, last_sent: Mapping[str, float], clock: Clock) -> None:
    """Wait out the channel's rate."""
    ready = _ready_at(channel, last_sent)
    if ready > clock.monotonic():
        clock.sleep(ready - clock.monotonic())


def _deliver_one(
    store: Store, channel: NotificationChannel | None, row: NotificationRow, max_attempts: int, clock: Clock, dm_url: str | None,
) -> str:
    now = clock.now()
    if channel is None:
        attempt = Attempt("failed", f"channel {row.channel!r} is no longer configured")
    else:
        attempt = post(channel, row.payload, now, dm_url)
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
    """Seconds until a pending notification can be claimed: due, and not held by another sender's live claim
    (None: nothing pending)."""
    pending = [max(r["next_attempt_at"], r["claimed_until"] or r["next_attempt_at"]) for r in store.list_notifications("pending")]
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


def send_test(config: NotificationsConfig, name: str, now: datetime, extra_channels: Sequence[NotificationChannel] = ()) -> Attempt:
    """Send the sample message to one channel (a [[notifications.channels]] name, or a rep's "rep:EMAIL" /
    "manager:EMAIL"), once (no retry): sent, or why not."""
    channels = [*config.channels, *extra_channels]
    channel = next((c for c in channels if c.name == name), None)
    if channel is None:
        known = ", ".join(c.name for c in channels) or "none configured"
        return Attempt("failed", f"no channel named {name!r} in [[notifications.channels]] ({known})")
    dm = next((c for c in config.channels if c.name == config.slack_dm_channel), None)
    return post(channel, sample_payload(now), now, channel_url(dm) if dm is not None else None)
