"""Service fixtures: the app served by uvicorn on a loopback socket, signed HubSpot deliveries, a frozen clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import uvicorn

from connector.core.clock import FrozenClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.service.app import Service
from connector.state.store import Store
from connector.runners.service.webhooks import sign_v3

START = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
CLIENT_SECRET = "hubspot-app-client-secret"
APP_ID = "777001"
EVENTS_SECRET = "segment-shared-secret"
WAIT = 15.0  # seconds a test waits for the worker before failing (never slept)


def service_settings(store_url: str, hubspot_url: str, token: str, *, hubspot: dict[str, Any] | None = None, **service: Any) -> Settings:
    """The example config's scoring with a routing of its own (two always-available sandbox reps, round robin),
    HubSpot pointed at `hubspot_url`, webhook and event secrets set, polling off; `hubspot` and `service` override keys."""
    data = tomllib.loads(example_config_path().read_text(encoding="utf-8"))
    data["routing"] = {
        "reps": [{"email": "ava.sales@example-corp.test"}, {"email": "ben.sales@example-corp.test"}],
        "pools": {"service_test": {"reps": ["ava.sales@example-corp.test", "ben.sales@example-corp.test"]}},
        "fallback_pool": "service_test", "when_unavailable": "fallback",
    }
    data["store"] = {"url": store_url}
    data["hubspot"] = {
        **data.get("hubspot", {}), "enabled": True, "base_url": hubspot_url, "access_token": token, "safety_lag_seconds": 0,
        "client_secret": CLIENT_SECRET, "app_id": APP_ID, **(hubspot or {}),
    }
    data["service"] = {"events_secret": EVENTS_SECRET, "poll": False, "micro_batch_ms": 50, "grace_seconds": 5, **service}
    return load_settings(None, data)


@contextmanager
def serving(service: Service) -> Iterator[str]:
    """Serve the app on a loopback socket bound before uvicorn starts (requests queue in the backlog until it does)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # proxy_headers off, as `connector serve` runs it: the webhook check alone reads forwarding headers.
    config = uvicorn.Config(
        service.app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2, proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only in the main thread; this one runs beside pytest.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def hs_event(event_id: int, object_id: str | int, at: datetime, kind: str = "propertyChange", **extra: Any) -> dict[str, Any]:
    """One HubSpot webhook event [crm-behaviour: HubSpot webhook deliveries]."""
    event: dict[str, Any] = {
        "eventId": event_id, "subscriptionId": 5501, "portalId": 62515, "appId": int(APP_ID),
        "occurredAt": int(at.timestamp() * 1000), "subscriptionType": f"contact.{kind}", "attemptNumber": 0,
        "objectId": int(object_id), "changeFlag": "NEW", "changeSource": "CRM_UI", "sourceId": "userId:31",
    }
    if kind == "propertyChange":
        event |= {"propertyName": "email", "propertyValue": "x@example.com"}
    return event | extra


def post_signed(
    base_url: str, events: Sequence[dict[str, Any]] | bytes, clock: FrozenClock, *, secret: str = CLIENT_SECRET,
    at: datetime | None = None, headers: dict[str, str] | None = None, signed_uri: str | None = None,
) -> requests.Response:
    """POST a delivery signed the way HubSpot signs it (v3, over the URL HubSpot called)."""
    body = events if isinstance(events, bytes) else json.dumps(list(events)).encode()
    uri = signed_uri or f"{base_url}/webhooks/hubspot"
    timestamp = str(int((at or clock.now()).timestamp() * 1000))
    signed = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", uri, body, timestamp),
        "X-HubSpot-Signature-Version": "v3",
        "X-HubSpot-Request-Timestamp": timestamp,
    }
    return requests.post(f"{base_url}/webhooks/hubspot", data=body, headers=signed | (headers or {}), timeout=10)


def basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


class FakeHubSpot:
    """An in-memory CrmAdapter for HTTP-level tests: records what the service asked for; `gate` can hold a batch mid-way."""

    crm = "hubspot"
    object_type = "contacts"

    def __init__(self, owners: Sequence[str] = ("9001", "9002")) -> None:
        from connector.adapters.base import ApiCallCounter

        self.calls = ApiCallCounter()
        self.owner_ids = list(owners)
        self.fetched: list[list[str]] = []
        self.written: list[Any] = []
        self.entered = threading.Event()  # set when fetch_by_ids starts
        self.gate = threading.Event()  # fetch_by_ids waits for it
        self.gate.set()
        self.found_by_email: list[list[str]] = []

    def bootstrap(self) -> None:
        return None

    def fetch_changed(self, cursor: str | None) -> Iterator[Any]:
        return iter(())

    def fetch_all(self, cursor: str | None = None) -> Iterator[Any]:
        return iter(())

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Any]:
        from connector.core.models import Lead

        self.entered.set()
        self.gate.wait(30)
        self.fetched.append(list(ids))
        return [Lead(crm="hubspot", object_type="contacts", id=i, email=f"lead{i}@acme-{i}.example", country="US") for i in ids]

    def fetch_owners(self) -> list[Any]:
        from connector.core.models import Owner

        return [Owner(crm="hubspot", id=o, email=f"rep{o}@seller.example") for o in self.owner_ids]

    def find_accounts(self, domains: Any) -> dict[str, Any]:
        return {}

    def find_contacts_by_email(self, emails: Any) -> dict[str, str]:
        return {}

    def write(self, patches: Sequence[Any], *, fence: Any = None) -> list[Any]:
        from connector.core.models import WriteResult

        self.written.extend(patches)
        return [WriteResult(crm="hubspot", object_type=p.object_type, record_id=p.record_id, ok=True) for p in patches]


class FakeHubSpotWithEmail(FakeHubSpot):
    def find_leads_by_email(self, emails: Sequence[str]) -> list[Any]:
        from connector.core.models import Lead

        self.found_by_email.append(list(emails))
        return [Lead(crm="hubspot", object_type="contacts", id=f"e{n}", email=e) for n, e in enumerate(emails)]


@dataclass
class App:
    service: Service
    store: Store
    crm: FakeHubSpot
    clock: FrozenClock
    url: str

    def done(self) -> bool:
        return self.store.count_pending_intake() == 0

    def wait_done(self) -> None:
        assert self.service.wait_until(self.done, WAIT), self.store.intake_rows()


@contextmanager
def make_app(
    tmp_path: Any, clock: FrozenClock, crm: FakeHubSpot | None = None, *, store_url: str | None = None,
    hubspot: dict[str, Any] | None = None, **service: Any,
) -> Iterator[App]:
    url = store_url or f"sqlite:///{tmp_path / 'state.db'}"
    settings = service_settings(url, "http://127.0.0.1:9", "unused-token", hubspot=hubspot, **service)
    store = Store.open(settings.store.url)
    crm = crm or FakeHubSpot()
    svc = Service(settings, store, {"hubspot": crm}, clock=clock)
    try:
        with serving(svc) as url:
            yield App(svc, store, crm, clock, url)
    finally:
        crm.gate.set()
        store.close()
