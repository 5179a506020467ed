"""`serve`'s notification thread: what a webhook-driven routing queued is sent while serving, once, and counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from connector.core.clock import FrozenClock
from connector.engine.notifications import NotificationChannel, NotificationsConfig
from connector.runners.jobs import make_adapters
from connector.runners.service.app import Service
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.receivers import HttpReceiver
from connector.state.store import Store

from .conftest import hs_event, post_signed, service_settings, serving

WAIT = 20.0


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=7, contacts=20) as sb:
        yield sb


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT  # how long the test waits for the threads, never what it expects
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_the_notify_thread_sends_what_webhook_routing_queued_while_serving(store_url: str, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    with HttpReceiver() as receiver:
        settings = service_settings(store_url, sandbox.base_url, sandbox.token)
        channel = NotificationChannel(name="ops", url=f"{receiver.url}/hook", on=["routed"])
        settings = settings.model_copy(update={"notifications": NotificationsConfig(enabled=True, channels=[channel])})
        with Store.open(store_url) as store:
            service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
            with serving(service) as url:
                rid = sandbox.create_contact({"email": "dana@northwind.example", "firstname": "Dana", "lastname": "Buyer",
                                              "jobtitle": "VP Sales", "country": "United States", "lifecyclestage": "lead"})
                assert post_signed(url, [hs_event(1001, rid, clock.now(), "creation")], clock).status_code == 200
                assert _eventually(lambda: len(receiver.posts) >= 1), "the notify thread sent nothing"
                [message] = receiver.messages()
                assert message["event"] == "routed" and message["lead"]["id"] == rid
                assert message["owner"]["email"] in {"ava.sales@example-corp.test", "ben.sales@example-corp.test"}
                assert _eventually(lambda: store.count_notifications() == {"sent": 1})
                scraped = service.metrics.render()[0].decode()
                assert 'connector_notifications_total{channel="ops",event="routed",outcome="sent"} 1.0' in scraped
            assert len(receiver.posts) == 1
