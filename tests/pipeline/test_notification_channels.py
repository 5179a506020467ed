"""Channels through apprise against real loopback receivers: e-mail to an SMTP server (aiosmtpd), Slack Block Kit to
an HTTP receiver, a rep's Slack DM, a manager told of an SLA breach; apprise's failures retried or dead-lettered.

apprise's Slack plugin posts to fixed Slack hosts (hooks.slack.com, slack.com/api) with no setting for another
host, so these tests point its class attributes `webhook_url` / `api_url` at the loopback receiver: apprise still
builds and POSTs the Block Kit payload over real HTTP, only the host differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from connector.core.clock import FrozenClock, PinnedClock
from connector.runners.jobs import sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.hubspot.server import PORTAL_ID
from connector.sandbox.receivers import HttpReceiver, SmtpReceiver
from .conftest import Env

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SLACK_HOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
HOT_WARM = {"field": "grade", "op": "in", "value": ["hot", "warm"]}


@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=240, clock=PinnedClock(T0)) as sb:
        yield sb


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(user="connector", password="s3cret") as receiver:
        yield receiver


@pytest.fixture
def slack_on_loopback(http: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> HttpReceiver:
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{http.url}/services")
    monkeypatch.setattr(NotifySlack, "api_url", f"{http.url}/api/{{}}")
    return http


def _notifications(*channels: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {"notifications": {"enabled": True, "channels": list(channels), **keys}}


def _sent(env: Env, event: str) -> list[dict[str, Any]]:
    return [row for row in env.store.list_notifications("sent") if row["event"] == event]


def test_an_email_channel_reaches_the_smtp_server_once_per_routed_lead(store_url: str, hubspot: HubSpotSandbox, smtp: SmtpReceiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications(
        {"name": "sales-email", "url": smtp.mailto_url("sales-team@example.com"), "on": ["routed"], "when": HOT_WARM}))
    try:
        first = sync_once(env.settings, env.store, env.adapters, clock)
        sent = _sent(env, "routed")
        assert sent and first.as_json()["notifications"]["sent"] == len(sent) == len(smtp.mails)
        for row in sent:
            p = row["payload"]
            [mail] = [m for m in smtp.mails if m.text.rstrip().endswith(f"/record/0-1/{p['lead']['id']}")]
            assert mail.subject == f"New lead for {p['owner']['name'] or p['owner']['email'] or 'a queue'}: {p['lead']['name']}"
            assert mail.rcpt_tos == ["sales-team@example.com"] and mail.mail_from == "connector@example.com"
            assert f"Score {p['score']:g} ({p['grade']})" in mail.text and "Why:" in mail.text
            assert all(reason in mail.text for reason in p["reasons"]) and len(p["reasons"]) <= 3
            assert f"Open in HubSpot: https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-1/{p['lead']['id']}" in mail.text
            if p["sla_due_at"]:
                assert "SLA: act by " in mail.text
        sync_once(env.settings, env.store, env.adapters, clock)
        assert len(smtp.mails) == len(sent)  # a second run sends nothing
    finally:
        env.close()


def test_a_slack_webhook_gets_block_kit_at_one_message_a_second(
    store_url: str, hubspot: HubSpotSandbox, slack_on_loopback: HttpReceiver,
) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "hot-leads", "url": SLACK_HOOK, "on": ["routed"], "when": HOT_WARM}))
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        posts = slack_on_loopback.posts
        sent = _sent(env, "routed")
        assert len(posts) == len(sent) >= 2
        assert {post.path for post in posts} == {"/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"}
        for post, row in zip(posts, sent, strict=True):
            blocks = post.json()["attachments"][0]["blocks"]
            assert blocks[0]["type"] == "header" and row["payload"]["lead"]["name"] in blocks[0]["text"]["text"]
            section = blocks[1]["text"]
            assert blocks[1]["type"] == "section" and section["type"] == "mrkdwn"
            assert f"Score {row['payload']['score']:g} ({row['payload']['grade']})" in section["text"]
            assert f"<{row['payload']['lead']['url']}|Open in HubSpot>" in section["text"]
        # Slack's default rate, 1 message/s: the sender waited about a second before each message after the first.
        paced = [s for s in clock.slept if s > 0]
        assert len(paced) >= len(posts) - 1 and all(0.9 <= s <= 1.0 for s in paced[: len(posts) - 1])
    finally:
        env.close()


def test_a_rep_with_a_slack_member_id_gets_a_direct_message_through_the_bot(
    store_url: str, hubspot: HubSpotSandbox, slack_on_loopback: HttpReceiver,
) -> None:
    clock = FrozenClock(T0)
    base = Env(store_url, hubspot, clock=clock)
    member = {rep.email: f"@U0{i:04d}ABC" for i, rep in enumerate(base.settings.routing.reps)}
    reps = [rep.model_dump(exclude_unset=True) | {"notify": member[rep.email]} for rep in base.settings.routing.reps]
    base.close()
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "fallback", "reps": reps}, **_notifications(
        {"name": "slack-bot", "url": "slack://xoxb-1234-5678-abcdefgh/#leads", "on": []}, slack_dm_channel="slack-bot",
        drain_seconds=300))  # each rep's DMs go at 1/s: room for the busiest rep's
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        posts = slack_on_loopback.posts
        assert summary.routed > 0 and len(posts) == sum(summary.leads_per_rep.values())
        sent = {row["payload"]["lead"]["id"]: row for row in _sent(env, "routed")}
        for post in posts:
            assert post.path == "/api/chat.postMessage" and post.headers["authorization"] == "Bearer xoxb-1234-5678-abcdefgh"
            body = post.json()
            owner = next(row["payload"]["owner"]["email"] for row in sent.values()
                         if f"<{row['payload']['lead']['url']}|" in body["attachments"][0]["blocks"][1]["text"]["text"])
            assert body["channel"] == member[owner]
    finally:
        env.close()


def test_an_sla_breach_tells_the_reps_manager_by_email_before_the_lead_moves_on(
    store_url: str, hubspot: HubSpotSandbox, smtp: SmtpReceiver,
) -> None:
    clock = FrozenClock(T0)
    base = Env(store_url, hubspot, clock=clock)
    manager = smtp.mailto_url("sales-manager@example.com")
    pools = {name: pool.model_dump(exclude_unset=True) | {"manager": manager} for name, pool in base.settings.routing.pools.items()}
    base.close()
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "fallback", "pools": pools}, notifications={"enabled": True})
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        assert smtp.mails == []  # a manager hears of breaches only
        clock.advance(env.settings.routing.sla.minutes * 60 + 60)
        second = sync_once(env.settings, env.store, env.adapters, clock)
        breaches = _sent(env, "sla_breach")
        assert second.reassigned > 0 and breaches and len(smtp.mails) == len(breaches)
        assert all(row["channel"] == f"manager:{row['payload']['owner']['email']}" for row in breaches)
        subjects = sorted(mail.subject for mail in smtp.mails)
        assert subjects == sorted(f"SLA breached: {r['payload']['lead']['name']} not actioned by "
                                  f"{r['payload']['owner']['name'] or r['payload']['owner']['email']}" for r in breaches)
        assert all(mail.rcpt_tos == ["sales-manager@example.com"] for mail in smtp.mails)
        sync_once(env.settings, env.store, env.adapters, clock)
        assert len(smtp.mails) == len(breaches)  # once per breach
    finally:
        env.close()


def test_a_manager_who_is_a_rep_is_told_through_that_reps_notify(store_url: str, hubspot: HubSpotSandbox, http: HttpReceiver) -> None:
    clock = FrozenClock(T0)
    base = Env(store_url, hubspot, clock=clock)
    boss = base.settings.routing.reps[0].email
    reps = [rep.model_dump(exclude_unset=True) | ({"notify": f"{http.url}/boss"} if rep.email == boss else {"manager": boss})
            for rep in base.settings.routing.reps]
    base.close()
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "fallback", "reps": reps}, notifications={"enabled": True})
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        before = len(http.posts)
        clock.advance(env.settings.routing.sla.minutes * 60 + 60)
        sync_once(env.settings, env.store, env.adapters, clock)
        breaches = [p.json() for p in http.posts[before:] if p.json()["event"] == "sla_breach"]
        assert breaches and all(m["owner"]["email"] != boss for m in breaches)
        assert {p.path for p in http.posts} == {"/boss"}
    finally:
        env.close()


@pytest.mark.parametrize(("status", "attempts", "error"), [(404, 1, "error=404"), (500, 2, "gave up after 2 attempts")])
def test_apprise_failures_are_dead_lettered_with_the_reason_permanent_at_once_else_after_max_attempts(
    store_url: str, hubspot: HubSpotSandbox, slack_on_loopback: HttpReceiver, status: int, attempts: int, error: str,
) -> None:
    slack_on_loopback.status = lambda path: status
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications(
        {"name": "hot-leads", "url": SLACK_HOOK, "on": ["routed"], "when": {"field": "grade", "op": "eq", "value": "hot"}},
        max_attempts=2, drain_seconds=600))  # at 1 message/s, every first and second attempt fits the drain
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        failed = env.store.list_notifications("failed")
        assert failed and summary.written > 0  # the CRM writes went on regardless
        assert all(row["attempts"] == attempts and error in row["error"] for row in failed)
        assert env.store.count_notifications() == {"failed": len(failed)}
    finally:
        env.close()


def test_an_unreachable_smtp_server_is_retried_then_dead_lettered(store_url: str, hubspot: HubSpotSandbox) -> None:
    with SmtpReceiver() as gone:
        url = gone.mailto_url("sales-team@example.com")
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications(
        {"name": "mail", "url": url, "on": ["routed"], "when": {"field": "grade", "op": "eq", "value": "hot"}}, max_attempts=3))
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        failed = env.store.list_notifications("failed")
        assert failed and summary.as_json()["notifications"]["retried"] == 2 * len(failed)
        assert all(row["attempts"] == 3 and row["error"].startswith("gave up after 3 attempts: Connection error") for row in failed)
    finally:
        env.close()
