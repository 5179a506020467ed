"""Notifications against a local HTTP receiver: one message per routed lead, no duplicates, retries, escalation."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.core.clock import FrozenClock, PinnedClock
from connector.observability.metrics import Metrics
from connector.runners.jobs import backfill, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.hubspot.server import PORTAL_ID
from .conftest import Env

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SECRET = "s3cret"

@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    """The sandbox on a clock running from T0, like the connector here: its records and events have the same
    age against the connector's `now` whatever hour the suite runs at (the conftest's sandbox reads the wall clock)."""
    with HubSpotSandbox(seed=42, contacts=240, clock=PinnedClock(T0)) as sb:
        yield sb



class Receiver:
    """A loopback webhook receiver: records each POST; answers `failures` 500s first, then 200."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        self.answers: list[int] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 500 if receiver.failures > 0 else 200
                receiver.failures -= status == 500
                if status == 200:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.paths.append(self.path)
                receiver.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _notifications(*channels: dict[str, Any]) -> dict[str, Any]:
    return {"notifications": {"enabled": True, "channels": list(channels)}}


HOT_WARM = {"field": "grade", "op": "in", "value": ["hot", "warm"]}


def test_sync_posts_one_signed_message_per_routed_lead_matching_when(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications(
        {"name": "hot", "url": receiver.url, "secret": SECRET, "on": ["routed"], "when": HOT_WARM}))
    try:
        first = sync_once(env.settings, env.store, env.adapters, clock)
        routed = [d for rid in hubspot.records_ids("contacts") for d in env.store.decisions_for(f"hubspot:contacts:{rid}")
                  if d.kind == "route" and d.owner_id and d.grade in ("hot", "warm") and d.explanation["routing"]["kind"] != "kept"]
        assert routed, "the sandbox routes some hot or warm leads"
        messages = receiver.messages()
        ids = [m["lead"]["id"] for m in messages]
        # Exactly one message per lead given a new owner (a lead that keeps its existing owner is not "routed").
        assert sorted(ids) == sorted(d.lead_key.rsplit(":", 1)[1] for d in routed)
        assert first.as_json()["notifications"] == {"queued": len(ids), "sent": len(ids), "retried": 0, "failed": 0}
        for headers, body in receiver.received:
            assert headers["x-connector-signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        by_id = {d.lead_key.rsplit(":", 1)[1]: d for d in routed}
        for m in messages:
            assert set(m) == {"event", "at", "lead", "owner", "score", "grade", "reasons", "sla_due_at"}
            assert m["event"] == "routed" and m["at"] == T0.isoformat()
            assert set(m["lead"]) >= {"crm", "id", "name", "email", "company", "url"} and m["lead"]["crm"] == "hubspot"
            decision = by_id[m["lead"]["id"]]
            assert m["owner"]["email"] == decision.rep and m["grade"] == decision.grade and m["score"] == decision.score
            assert 0 < len(m["reasons"]) <= 3
            assert m["lead"]["url"] == f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-1/{m['lead']['id']}"

        second = sync_once(env.settings, env.store, env.adapters, clock)
        assert len(receiver.received) == len(ids)  # a second run posts nothing
        assert second.as_json()["notifications"]["sent"] == 0
    finally:
        env.close()


def test_a_receiver_answering_500_three_times_loses_and_duplicates_nothing(store_url: str, hubspot: HubSpotSandbox) -> None:
    receiver = Receiver(failures=3)
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "all", "url": receiver.url, "on": ["routed"]}))
    try:
        metrics = Metrics()
        summary = sync_once(env.settings, env.store, env.adapters, clock,
                            on_notification=lambda c, e, o: metrics.notifications.labels(c, e, o).inc())
        routed = summary.routed
        assert routed > 0
        assert receiver.answers[:3] == [500, 500, 500]
        text = metrics.render()[0].decode()
        assert f'connector_notifications_total{{channel="all",event="routed",outcome="sent"}} {float(routed)}' in text
        assert 'connector_notifications_total{channel="all",event="routed",outcome="retried"} 3.0' in text
        ids = [m["lead"]["id"] for m in receiver.messages()]
        assert len(ids) == routed and len(set(ids)) == routed
        assert env.store.count_notifications() == {"sent": routed}
        assert summary.as_json()["notifications"]["retried"] == 3
    finally:
        env.close()
        receiver.close()


def test_a_permanent_4xx_is_dead_lettered_with_its_reason(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "gone", "url": receiver.url + "/x", "on": ["routed"]}))
    receiver.server.RequestHandlerClass.do_POST = _answer_404  # type: ignore[attr-defined]
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        failed = env.store.list_notifications("failed")
        assert failed and all(row["error"].startswith("HTTP 404") and row["attempts"] == 1 for row in failed)
        assert env.store.count_notifications().get("pending", 0) == 0
    finally:
        env.close()


def _answer_404(self: BaseHTTPRequestHandler) -> None:
    self.rfile.read(int(self.headers.get("Content-Length", "0")))
    self.send_response(404)
    self.send_header("Content-Length", "0")
    self.end_headers()


def test_an_sla_breach_reaches_the_escalation_channel(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "managers", "url": receiver.url, "on": ["sla_breach"]}))
    try:
        sync_once(env.settings, env.store, env.adapters, clock)
        assert receiver.received == []  # routed is not this channel's event
        clock.advance(env.settings.routing.sla.minutes * 60 + 60)
        second = sync_once(env.settings, env.store, env.adapters, clock)
        breaches = receiver.messages()
        assert breaches and all(m["event"] == "sla_breach" for m in breaches)
        assert len({m["lead"]["id"] for m in breaches}) == len(breaches) >= second.reassigned
        sync_once(env.settings, env.store, env.adapters, clock)
        assert len(receiver.messages()) == len(breaches)  # once per breach
    finally:
        env.close()


def test_dry_run_sends_nothing_and_backfill_notifies_only_when_asked(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "all", "url": receiver.url, "on": ["routed"]}))
    try:
        dry = sync_once(env.settings, env.store, env.adapters, clock, dry_run=True)
        assert dry.as_json()["notifications"]["queued"] == dry.routed > 0
        assert receiver.received == []
        full = backfill(env.settings, env.store, env.adapters, clock)
        assert full.routed > 0 and receiver.received == [] and env.store.count_notifications() == {}
    finally:
        env.close()


SATURDAY = datetime(2026, 12, 5, 2, 50, tzinfo=UTC)  # every example rep is off: weekend or night


def test_a_lead_waiting_past_waiting_after_minutes_is_announced_once(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(SATURDAY)
    config = _notifications({"name": "queue-watch", "url": receiver.url, "on": ["waiting"]})
    config["notifications"]["waiting_after_minutes"] = 30
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "wait"}, **config)
    try:
        first = sync_once(env.settings, env.store, env.adapters, clock)
        assert first.waiting > 0 and receiver.received == []  # not waiting long enough yet
        clock.advance(31 * 60)
        second = sync_once(env.settings, env.store, env.adapters, clock)
        ids = [m["lead"]["id"] for m in receiver.messages()]
        assert all(m["event"] == "waiting" for m in receiver.messages())
        assert len(ids) == len(set(ids)) == second.waiting > 0
        clock.advance(31 * 60)
        sync_once(env.settings, env.store, env.adapters, clock)
        assert len(receiver.received) == len(ids)  # once per wait
    finally:
        env.close()


def test_backfill_notify_sends_for_the_leads_it_routes(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "all", "url": receiver.url, "on": ["routed"]}))
    try:
        full = backfill(env.settings, env.store, env.adapters, clock, notify=True)
        assert full.routed > 0 and len(receiver.received) == full.routed
    finally:
        env.close()


def test_a_channel_when_with_an_unknown_field_is_a_config_problem_with_its_key_path() -> None:
    from connector.config import example_config_path, load_settings
    from connector.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(example_config_path(), {"notifications": {"enabled": True, "channels": [
            {"name": "x", "url": "http://127.0.0.1:9/", "when": {"field": "grdae", "op": "eq", "value": "hot"}}]}})
    assert "notifications.channels[0]" in str(caught.value) and "when.field" in str(caught.value)


def test_a_rep_with_notify_hears_only_of_their_own_leads(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    base = Env(store_url, hubspot, clock=clock)
    reps = [rep.model_dump(exclude_unset=True) | {"notify": f"{receiver.url}/{rep.email}"} for rep in base.settings.routing.reps]
    base.close()
    env = Env(store_url, hubspot, clock=clock, routing={"when_unavailable": "fallback", "reps": reps},
              notifications={"enabled": True})
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        messages = receiver.messages()
        assert summary.routed > 0 and len(messages) == sum(1 for m in messages if m["event"] == "routed")
        for path, m in zip(receiver.paths, messages, strict=True):
            assert path == f"/hook/{m['owner']['email']}"
        routed_to_reps = sum(n for rep, n in summary.leads_per_rep.items())
        assert len(messages) == routed_to_reps
    finally:
        env.close()


def test_a_dead_lettered_write_is_told_with_its_error(store_url: str, hubspot: HubSpotSandbox, receiver: Receiver) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock, **_notifications({"name": "ops", "url": receiver.url, "on": ["dead_letter"]}))
    bad = hubspot.records_ids("contacts")[0]
    hubspot.fail_write_ids[bad] = ("VALIDATION_ERROR", "Property values were not valid")
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        assert summary.dead_lettered >= 1
        [message] = receiver.messages()
        assert message["event"] == "dead_letter" and message["lead"]["id"] == bad
        assert message["error"].startswith("VALIDATION_ERROR")
    finally:
        env.close()


def test_quiet_hours_hold_a_message_until_the_rep_is_at_work_and_hot_leads_go_at_once(
    store_url: str, hubspot: HubSpotSandbox, receiver: Receiver,
) -> None:
    clock = FrozenClock(T0)  # mid-afternoon in Europe, morning in New York: reps further west are not at work yet
    config = _notifications({"name": "all", "url": receiver.url, "on": ["routed"]})
    config["notifications"]["quiet_hours"] = "working_hours"
    env = Env(store_url, hubspot, clock=clock, **config)
    try:
        summary = sync_once(env.settings, env.store, env.adapters, clock)
        schedules = env.settings.routing.reps
        held = env.store.list_notifications("pending")
        sent = receiver.messages()
        assert held and sent and len(held) + len(sent) == summary.routed
        for m in sent:
            rep = m["owner"]["email"]
            assert m["grade"] == "hot" or rep not in {r.email for r in schedules} or _at_work(env, rep, T0)
        for row in held:
            assert row["payload"]["grade"] != "hot" and not _at_work(env, row["payload"]["owner"]["email"], T0)
            assert row["next_attempt_at"] > T0
        clock.advance((max(row["next_attempt_at"] for row in held) - T0).total_seconds() + 1)
        sync_once(env.settings, env.store, env.adapters, clock)
        assert len(receiver.messages()) == summary.routed and env.store.count_notifications() == {"sent": summary.routed}
    finally:
        env.close()


def _at_work(env: Env, rep: str, now: datetime) -> bool:
    from connector.runners.jobs import compile_engine

    schedule = compile_engine(env.settings).routing.schedules.get(rep)
    return schedule is None or schedule.is_available(now)
