"""The service over real HTTP on loopback: webhook checks and statuses, events auth, health, metrics, back-pressure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from connector.core.clock import FrozenClock
from connector.runners.service.app import Service
from connector.state.store import Store

from .conftest import (
    APP_ID,
    EVENTS_SECRET,
    WAIT,
    App,
    FakeHubSpot,
    FakeHubSpotWithEmail,
    basic,
    hs_event,
    make_app,
    post_signed,
    service_settings,
    serving,
    signature,
)



@pytest.fixture
def app(tmp_path: Any, clock: FrozenClock) -> Iterator[App]:
    with make_app(tmp_path, clock) as running:
        yield running


def test_signed_batch_accepted_and_processed(app: App) -> None:
    events = [hs_event(1, 101, app.clock.now()), hs_event(2, 102, app.clock.now(), "creation"), hs_event(3, 101, app.clock.now())]
    response = post_signed(app.url, events, app.clock)
    assert response.status_code == 200, response.text
    assert response.json() == {"events": 3, "accepted_records": 2, "duplicates": 0, "echoes": 0, "ignored": 0}
    app.wait_done()
    assert sorted(i for batch in app.crm.fetched for i in batch) == ["101", "102"]
    assert {p.record_id for p in app.crm.written} == {"101", "102"}
    assert [r["status"] for r in app.store.intake_rows()] == ["done", "done"]


@pytest.mark.parametrize(
    ("how", "status"),
    [("forged", 401), ("stale", 401), ("unsigned", 401), ("malformed", 400), ("not_an_array", 400), ("too_many", 400)],
)
def test_rejected_deliveries_process_nothing(app: App, how: str, status: int) -> None:
    now = app.clock.now()
    if how == "forged":
        response = post_signed(app.url, [hs_event(1, 101, now)], app.clock, secret="guessed-secret")
    elif how == "stale":
        response = post_signed(app.url, [hs_event(1, 101, now)], app.clock, at=now - timedelta(minutes=5, seconds=1))
    elif how == "unsigned":
        response = requests.post(f"{app.url}/webhooks/hubspot", json=[hs_event(1, 101, now)], timeout=10)
    elif how == "malformed":
        response = post_signed(app.url, b'[{"eventId": 1, "objectId":', app.clock)
    elif how == "not_an_array":
        response = post_signed(app.url, json.dumps(hs_event(1, 101, now)).encode(), app.clock)
    else:
        response = post_signed(app.url, [hs_event(i, i, now) for i in range(1, 102)], app.clock)
    assert response.status_code == status, response.text
    assert response.json()["correlation_id"] == response.headers["x-request-id"]
    assert app.store.intake_rows() == []
    assert app.crm.fetched == []


def test_oversized_body_refused_with_413(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock, max_body_bytes=2048) as app:
        events = [hs_event(i, i, clock.now(), propertyValue="x" * 100) for i in range(1, 40)]
        declared = post_signed(app.url, events, clock)
        streamed = requests.post(
            f"{app.url}/webhooks/hubspot", data=iter([b"[" + b" " * 1500, b" " * 1500 + b"]"]), timeout=10,
            headers={"Content-Type": "application/json"},
        )
        assert (declared.status_code, streamed.status_code) == (413, 413)
        assert "max_body_bytes" in declared.json()["detail"]
        assert app.store.intake_rows() == []


def test_replayed_event_id_is_acknowledged_but_not_processed_again(app: App) -> None:
    events = [hs_event(1, 101, app.clock.now())]
    first = post_signed(app.url, events, app.clock)
    app.wait_done()
    again = post_signed(app.url, events, app.clock)
    # 2xx, so HubSpot stops retrying; the event id was already accepted durably.
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1 and again.json()["accepted_records"] == 0
    assert first.json()["accepted_records"] == 1
    assert len(app.store.intake_rows()) == 1
    assert app.crm.fetched == [["101"]]


def test_own_echo_ignored(app: App) -> None:
    echo = hs_event(1, 101, app.clock.now(), changeSource="INTEGRATION", sourceId=APP_ID, propertyName="hubspot_owner_id")
    response = post_signed(app.url, [echo], app.clock)
    assert response.json() == {"events": 1, "accepted_records": 0, "duplicates": 0, "echoes": 1, "ignored": 0}
    assert app.store.intake_rows() == []


def test_signature_over_the_url_hubspot_called_behind_a_proxy(app: App) -> None:
    public = "https://hooks.example.com/webhooks/hubspot"
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    behind_proxy = post_signed(app.url, [hs_event(1, 101, app.clock.now())], app.clock, signed_uri=public, headers=headers)
    without_headers = post_signed(app.url, [hs_event(2, 102, app.clock.now())], app.clock, signed_uri=public)
    assert (behind_proxy.status_code, without_headers.status_code) == (200, 401)


def test_full_queue_answers_503_with_retry_after(tmp_path: Any, clock: FrozenClock) -> None:
    crm = FakeHubSpot()
    crm.gate.clear()
    with make_app(tmp_path, clock, crm, intake_queue_size=2) as app:
        assert post_signed(app.url, [hs_event(1, 101, clock.now())], clock).status_code == 200
        assert crm.entered.wait(WAIT)  # the worker holds row 101 mid-batch; the queue is empty again
        assert post_signed(app.url, [hs_event(2, 102, clock.now()), hs_event(3, 103, clock.now())], clock).status_code == 200
        full = post_signed(app.url, [hs_event(4, 104, clock.now())], clock)
        assert full.status_code == 503
        assert full.headers["Retry-After"] == "5"
        # The refused delivery left no trace: HubSpot's retry will be taken as new.
        assert {r["ref"] for r in app.store.intake_rows()} == {"101", "102", "103"}
        crm.gate.set()
        app.wait_done()
        retried = post_signed(app.url, [hs_event(4, 104, clock.now())], clock)
        assert retried.json()["accepted_records"] == 1


def test_draining_refuses_intake_and_fails_readiness(app: App) -> None:
    assert app.service.wait_until(lambda: app.service.readiness()[0], WAIT)
    app.service.begin_drain()
    webhook = post_signed(app.url, [hs_event(1, 101, app.clock.now())], app.clock)
    event = requests.post(f"{app.url}/events", json={}, headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
    ready = requests.get(f"{app.url}/readyz", timeout=10)
    assert (webhook.status_code, event.status_code, ready.status_code) == (503, 503, 503)
    assert webhook.headers["Retry-After"] == "5"
    assert ready.json()["checks"]["service"] == "shutting down"
    assert requests.get(f"{app.url}/healthz", timeout=10).status_code == 200


def track(user: str, n: int) -> dict[str, Any]:
    return {"type": "track", "event": "Pricing Viewed", "userId": user, "timestamp": "2026-11-23T09:00:00Z", "messageId": f"m{n}"}


def test_events_with_basic_auth_stored_and_lead_rescored(app: App) -> None:
    response = requests.post(f"{app.url}/events", json=track("hubspot:contacts:555", 1), headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "rescoring": 1}
    app.wait_done()
    assert app.crm.fetched == [["555"]]
    assert [e.name for e in app.store.events_for(["hubspot:contacts:555"])["hubspot:contacts:555"]] == ["Pricing Viewed"]


def test_events_batch_with_signature_header(app: App) -> None:
    body = json.dumps({"batch": [track("hubspot:contacts:7", 1), track("hubspot:contacts:8", 2), track("hubspot:contacts:7", 1)]}).encode()
    response = requests.post(
        f"{app.url}/events/batch", data=body, timeout=10,
        headers={"Content-Type": "application/json", "X-Signature": signature(EVENTS_SECRET, body)},
    )
    assert response.json() == {"received": 3, "stored": 2, "duplicates": 1, "rescoring": 2}
    app.wait_done()
    assert sorted(i for batch in app.crm.fetched for i in batch) == ["7", "8"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "detail"),
    [
        ({"Authorization": basic("wrong")}, track("hubspot:contacts:1", 1), 401, "credentials"),
        ({"X-Signature": "00" * 32}, track("hubspot:contacts:1", 1), 401, "credentials"),
        ({}, track("hubspot:contacts:1", 1), 401, "credentials"),
        ({"Authorization": basic(EVENTS_SECRET)}, {**track("x@y.example", 1), "timestamp": "soon"}, 400, "timestamp"),
        ({"Authorization": basic(EVENTS_SECRET)}, {"type": "alias"}, 400, "type"),
    ],
)
def test_bad_events_rejected(app: App, headers: dict[str, str], body: dict[str, Any], status: int, detail: str) -> None:
    response = requests.post(f"{app.url}/events", json=body, headers=headers, timeout=10)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert app.store.intake_rows() == []


def test_email_events_rescore_through_an_adapter_email_lookup(tmp_path: Any, clock: FrozenClock) -> None:
    crm = FakeHubSpotWithEmail()
    with make_app(tmp_path, clock, crm) as app:
        response = requests.post(f"{app.url}/events", json=track("Ann@Acme.example", 1), headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
        assert response.json()["rescoring"] == 1
        app.wait_done()
        assert crm.found_by_email == [["ann@acme.example"]]


def test_health_readiness_metrics_and_correlation_ids(app: App) -> None:
    assert requests.get(f"{app.url}/healthz", timeout=10).json() == {"status": "ok"}
    assert app.service.wait_until(lambda: app.service.readiness()[0], WAIT)
    ready = requests.get(f"{app.url}/readyz", timeout=10)
    # Each supervised background thread by name (polling is off in these tests: the intake worker only).
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "hubspot": "ok", "connector-intake-worker": "ok"}
    post_signed(app.url, [hs_event(1, 101, app.clock.now())], app.clock)
    post_signed(app.url, [hs_event(2, 102, app.clock.now())], app.clock, secret="forged")
    app.wait_done()
    response = requests.get(f"{app.url}/metrics", headers={"X-Request-ID": "trace-abc"}, timeout=10)
    text = response.text
    assert response.headers["x-request-id"] == "trace-abc"
    assert 'connector_webhook_events_total{outcome="accepted"} 1.0' in text
    assert 'connector_rejected_requests_total{endpoint="webhooks.hubspot",status="401"} 1.0' in text
    assert 'connector_leads_processed_total{crm="hubspot"} 1.0' in text
    assert 'connector_writes_total{crm="hubspot",outcome="ok"} 1.0' in text
    assert 'connector_webhook_to_write_seconds_count{crm="hubspot"} 1.0' in text
    assert "connector_intake_queue_depth 0.0" in text
    assert "connector_intake_pending 0.0" in text


def test_each_app_has_its_own_registry(tmp_path: Any, clock: FrozenClock) -> None:
    settings = service_settings(f"sqlite:///{tmp_path / 'a.db'}", "http://127.0.0.1:9", "t")
    with Store.open(settings.store.url) as store:
        a = Service(settings, store, {"hubspot": FakeHubSpot()}, clock=clock)
        b = Service(settings, store, {"hubspot": FakeHubSpot()}, clock=clock)
        a.metrics.webhook_events.labels("accepted").inc()
        assert a.metrics.registry is not b.metrics.registry
        assert b'connector_webhook_events_total{outcome="accepted"} 1.0' in a.metrics.render()[0]
        assert b'connector_webhook_events_total{outcome="accepted"}' not in b.metrics.render()[0]
