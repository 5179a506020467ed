"""Intake configuration and auth: a missing secret is a 404 reported by /readyz and check-config (issue 19, item 7);
Segment's HMAC-SHA1 X-Signature; the webhook URL from [hubspot] webhook_url or trusted proxies' forwarding headers."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from connector.cli import main
from connector.core.clock import FrozenClock
from connector.runners.service.intake import is_authorized_event_request
from connector.runners.service.webhooks import forwarded_params, request_uri

from .conftest import EVENTS_SECRET, WAIT, hs_event, make_app, post_signed, signature

EVENT = {"type": "track", "event": "Demo Requested", "userId": "ann@acme.example", "timestamp": "2026-11-23T09:00:00Z", "messageId": "a1"}


def test_an_intake_without_its_secret_is_404_and_readyz_names_the_key(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock, events_secret=None, hubspot={"client_secret": None}) as app:
        event = requests.post(f"{app.url}/events", json=EVENT, timeout=10)
        webhook = post_signed(app.url, [hs_event(1, 101, clock.now())], clock)
        assert (event.status_code, "Retry-After" in event.headers) == (404, False)
        assert event.json()["detail"] == "not configured: [service] events_secret"
        assert (webhook.status_code, webhook.json()["detail"]) == (404, "not configured: [hubspot] client_secret")
        assert app.service.wait_until(lambda: app.service.readiness()[0], WAIT)
        ready = requests.get(f"{app.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["checks"]["events"] == "not configured: [service] events_secret"
        assert ready.json()["checks"]["webhooks"] == "not configured: [hubspot] client_secret"


def test_readyz_reports_no_intake_problem_when_both_secrets_are_set(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock) as app:
        assert app.service.wait_until(lambda: app.service.readiness()[0], WAIT)
        checks = requests.get(f"{app.url}/readyz", timeout=10).json()["checks"]
        assert "events" not in checks and "webhooks" not in checks


def test_check_config_warns_about_a_serve_intake_without_its_secret(tmp_path: Path) -> None:
    config = tmp_path / "connector.toml"
    config.write_text('[hubspot]\nenabled = true\naccess_token = "pat-test"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(config)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert "warning: for `connector serve`, POST /events answers 404: not configured: [service] events_secret" in result.output
    assert "POST /webhooks/hubspot answers 404: not configured: [hubspot] client_secret" in result.output
    config.write_text(
        '[hubspot]\nenabled = true\naccess_token = "pat-test"\nclient_secret = "s"\n[service]\nevents_secret = "e"\n', encoding="utf-8"
    )
    assert "warning" not in CliRunner().invoke(main, ["check-config", str(config)]).output


def sha1_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        pytest.param(sha1_signature(EVENTS_SECRET, b"{}"), True, id="segment-hmac-sha1"),
        pytest.param(sha1_signature(EVENTS_SECRET, b"{}").upper(), True, id="sha1-upper-case-hex"),
        pytest.param(signature(EVENTS_SECRET, b"{}"), True, id="hmac-sha256"),
        pytest.param(sha1_signature("wrong", b"{}"), False, id="sha1-wrong-secret"),
        pytest.param(sha1_signature(EVENTS_SECRET, b"{ }"), False, id="sha1-other-body"),
        pytest.param(hashlib.sha1(b"{}").hexdigest(), False, id="plain-sha1"),
    ],
)
def test_segment_signature_schemes(header: str, accepted: bool) -> None:
    assert is_authorized_event_request({"x-signature": header}, b"{}", EVENTS_SECRET) is accepted


def test_an_event_signed_the_way_segment_signs_is_accepted(tmp_path: Any, clock: FrozenClock) -> None:
    body = json.dumps(EVENT).encode()
    with make_app(tmp_path, clock) as app:
        response = requests.post(f"{app.url}/events", data=body, headers={"X-Signature": sha1_signature(EVENTS_SECRET, body)}, timeout=10)
        assert response.status_code == 200, response.text


def test_webhook_url_is_the_url_checked_when_a_proxy_strips_a_prefix(tmp_path: Any, clock: FrozenClock) -> None:
    public = "https://connector.example.com/crm/webhooks/hubspot"
    with make_app(tmp_path, clock, hubspot={"webhook_url": public}) as app:
        signed_public = post_signed(app.url, [hs_event(1, 101, clock.now())], clock, signed_uri=public)
        signed_local = post_signed(app.url, [hs_event(2, 102, clock.now())], clock)
        assert (signed_public.status_code, signed_local.status_code) == (200, 401)


def test_rfc7239_forwarded_alone_rebuilds_the_url(tmp_path: Any, clock: FrozenClock) -> None:
    public = "https://hooks.example.com/webhooks/hubspot"
    forwarded = {"Forwarded": 'for="10.1.2.3:4711";proto=https;host="hooks.example.com", for=10.0.0.9;proto=http'}
    with make_app(tmp_path, clock) as app:
        response = post_signed(app.url, [hs_event(1, 101, clock.now())], clock, signed_uri=public, headers=forwarded)
        assert response.status_code == 200, response.text


def test_forwarding_headers_from_an_untrusted_peer_are_ignored(tmp_path: Any, clock: FrozenClock) -> None:
    public = "https://hooks.example.com/webhooks/hubspot"
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    with make_app(tmp_path, clock, trusted_proxies=["10.0.0.0/8"]) as app:  # the test client is 127.0.0.1
        believed = post_signed(app.url, [hs_event(1, 101, clock.now())], clock, signed_uri=public, headers=headers)
        as_received = post_signed(app.url, [hs_event(2, 102, clock.now())], clock, headers=headers)
        assert (believed.status_code, as_received.status_code) == (401, 200)


def test_forwarded_header_parsing_and_precedence() -> None:
    assert forwarded_params('For="[2001:db8::1]:80";Proto=HTTPS;host="a.example, b"') == {
        "for": "[2001:db8::1]:80", "proto": "HTTPS", "host": "a.example, b",
    }
    headers = {"forwarded": "proto=https;host=rfc.example", "x-forwarded-host": "x.example"}
    assert request_uri("http", "internal:8080", "/webhooks/hubspot", "", headers) == "https://x.example/webhooks/hubspot"
    assert request_uri("http", "internal:8080", "/w", "a=1", headers, trust_forwarded=False) == "http://internal:8080/w?a=1"
    assert request_uri("http", "i", "/w", "a=1", headers, webhook_url="https://p.example/x/w") == "https://p.example/x/w?a=1"
