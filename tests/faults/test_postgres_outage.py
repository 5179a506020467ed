"""PostgreSQL unreachable mid-run (the test's own database: connections refused and every backend terminated):
the intake worker survives, /readyz names it while the outage lasts, and every accepted webhook and event is
processed after recovery."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from connector.core.clock import FrozenClock
from connector.runners.service.app import Service
from connector.runners.service.worker import INTAKE_THREAD
from connector.state.store import Store
from tests.runners.service.conftest import (
    EVENTS_SECRET,
    START,
    FakeHubSpotWithEmail,
    basic,
    hs_event,
    post_signed,
    service_settings,
    serving,
)

WAIT = 30.0


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Re-check every 50 ms (the service's threads move on their own) until true; False on timeout."""
    done = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if check():
            return True
        done.wait(0.05)
    return check()


def set_connections(admin_url: str, database: str, *, allowed: bool) -> None:
    """Refuse (and cut) or allow again connections to one database, from an admin connection to `postgres`."""
    engine = sa.create_engine(sa.engine.make_url(admin_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))
            if not allowed:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"), {"db": database})
    finally:
        engine.dispose()


def post_event(url: str, email: str, message_id: str, clock: FrozenClock) -> requests.Response:
    body = {"type": "track", "event": "Pricing Viewed", "userId": email, "messageId": message_id,
            "timestamp": clock.now().isoformat(), "context": {"traits": {"email": email}}}
    return requests.post(f"{url}/events", data=json.dumps(body), timeout=10,
                         headers={"Authorization": basic(EVENTS_SECRET), "Content-Type": "application/json"})


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json()


@pytest.mark.slow
@pytest.mark.postgres
def test_the_worker_survives_a_database_outage_and_processes_everything_accepted(pg_store: str) -> None:
    clock = FrozenClock(START)
    settings = service_settings(pg_store, "http://127.0.0.1:9", "unused-token")
    database = sa.engine.make_url(pg_store).database
    assert database is not None
    crm = FakeHubSpotWithEmail()
    with Store.open(pg_store) as store:
        service = Service(settings, store, {"hubspot": crm}, clock=clock)
        with serving(service) as url:
            crm.gate.clear()  # the worker will hold its first batch mid-way, as the database goes away
            assert post_signed(url, [hs_event(1, 101, clock.now())], clock).status_code == 200
            assert crm.entered.wait(WAIT)
            assert post_signed(url, [hs_event(2, 102, clock.now())], clock).status_code == 200
            assert post_event(url, "early@contoso.example", "m-1", clock).status_code == 200
            set_connections(pg_store, database, allowed=False)
            try:
                crm.gate.set()  # the held batch now fails on the store, then the worker itself
                assert eventually(lambda: readyz(url)[1]["checks"].get(INTAKE_THREAD, "ok").startswith("failing")), readyz(url)
                status, body = readyz(url)
                assert status == 503 and body["checks"]["store"] == "unreachable"
                assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # alive: a restart would not help
                # Refused while the store is away (503: the senders retry), never half-accepted.
                assert post_signed(url, [hs_event(3, 103, clock.now())], clock).status_code == 503
                assert post_event(url, "late@contoso.example", "m-2", clock).status_code == 503
            finally:
                set_connections(pg_store, database, allowed=True)
            # The senders' retries, after the outage.
            assert post_signed(url, [hs_event(3, 103, clock.now())], clock).status_code == 200
            assert post_event(url, "late@contoso.example", "m-2", clock).status_code == 200
            assert eventually(lambda: readyz(url)[0] == 200), readyz(url)
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT), store.intake_rows()
            fetched = {rid for batch in crm.fetched for rid in batch}
            assert {"101", "102", "103"} <= fetched
            assert {e for batch in crm.found_by_email for e in batch} >= {"early@contoso.example", "late@contoso.example"}
            assert {r["status"] for r in store.intake_rows()} == {"done"}
            assert store.list_dead_letters() == []
            assert readyz(url)[1]["checks"][INTAKE_THREAD] == "ok"
