"""Fault: HubSpot access tokens that live 5 s, refresh tokens rotated on every grant, through a backfill and through
`serve` at the same time in one process: tokens renewed (at least twice), nothing lost, no restart, no 401 left
standing. Both share the account's one token source: with rotation, two sources would refuse each other's refresh
token. The test takes about 10 s of wall time: the token lifetime it is about."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from connector.config import HubSpotSettings, Settings
from connector.core.clock import FrozenClock, PinnedClock
from connector.runners.jobs import RunSummary, backfill, make_adapters
from connector.runners.service.app import Service
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store
from tests.runners.service.conftest import CLIENT_SECRET, START, hs_event, post_signed, service_settings, serving

LIFETIME_SECONDS = 5.0
CONTACTS = 250  # three list pages of at most 100: the backfill's calls come in three rounds
# Between pages: a token is renewed 4 s after its grant (a fifth of its lifetime early), so the three pages'
# calls, 4.2 s apart, need three different tokens.
PAGE_PAUSE_SECONDS = 4.2
RENEWED_AFTER_SECONDS = LIFETIME_SECONDS * 0.8
WAIT = 20.0


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=23, contacts=CONTACTS, companies=10) as sb:
        # One app: its client secret both signs the webhooks and authenticates the refresh-token grant.
        sb.enable_oauth(client_secret=CLIENT_SECRET, lifetime_seconds=LIFETIME_SECONDS, rotate_refresh_tokens=True)
        yield sb


def oauth_service_settings(store_url: str, sandbox: HubSpotSandbox) -> Settings:
    app = sandbox.oauth
    assert app is not None
    base = service_settings(store_url, sandbox.base_url, "unused")
    hubspot = base.hubspot.model_dump() | {
        "access_token": None, "client_id": app.client_id, "client_secret": SecretStr(app.client_secret),
        "refresh_token": SecretStr(app.refresh_token),
    }
    return base.model_copy(update={"hubspot": HubSpotSettings(**hubspot)})


def new_contact(sandbox: HubSpotSandbox, n: int) -> str:
    return sandbox.create_contact({
        "email": f"renewal{n}@tokenco-{n}.example", "firstname": "Rene", "lastname": f"Wal{n}",
        "jobtitle": "Head of Ops", "country": "Finland", "lifecyclestage": "lead",
    })


def paced_backfill(settings: Settings, store_url: str, out: list[RunSummary | BaseException]) -> None:
    """One backfill whose pages are PAGE_PAUSE_SECONDS apart, so the run outlives two tokens."""
    try:
        with Store.open(store_url) as store:
            adapters = make_adapters(settings, clock=PinnedClock(START))
            out.append(backfill(settings, store, adapters, PinnedClock(START),
                                on_batch=lambda crm, result, summary: time.sleep(PAGE_PAUSE_SECONDS * (summary.fetched < CONTACTS))))
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        out.append(exc)


def test_five_second_tokens_through_a_backfill_and_serve(tmp_path: Path, sandbox: HubSpotSandbox) -> None:
    app = sandbox.oauth
    assert app is not None
    settings = oauth_service_settings(f"sqlite:///{tmp_path / 'serve.db'}", sandbox)
    seeded = sandbox.records_ids("contacts")
    backfilled: list[RunSummary | BaseException] = []
    worker = threading.Thread(target=paced_backfill, args=(settings, f"sqlite:///{tmp_path / 'backfill.db'}", backfilled))
    clock = FrozenClock(START)  # the service's clock (webhook signatures); the adapters' tokens age in real time
    announced: list[str] = []
    with Store.open(settings.store.url) as store:
        service = Service(settings, store, make_adapters(settings, clock=PinnedClock(START)), clock=clock)
        with serving(service) as url:
            worker.start()
            while worker.is_alive():
                rid = new_contact(sandbox, len(announced))
                announced.append(rid)
                response = post_signed(url, [hs_event(5000 + len(announced), rid, clock.now(), "creation")], clock)
                assert response.status_code == 200, response.text
                assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT), store.intake_rows()
                if len(announced) == 3:
                    app.revoke_access_tokens()  # a 401 mid-run: the next call renews and goes on
                time.sleep(0.5)
            worker.join(WAIT)
            readiness = requests.get(f"{url}/readyz", timeout=10)
            assert readiness.status_code == 200, readiness.text  # never paused for auth: no restart needed
        assert [row for row in store.intake_rows() if row.get("status") != "done"] == []

    assert len(backfilled) == 1 and isinstance(backfilled[0], RunSummary), backfilled
    summary = backfilled[0]
    assert summary.aborted is None and summary.dead_lettered == 0 and summary.fetched >= len(seeded)
    assert summary.seconds >= 2 * RENEWED_AFTER_SECONDS, "the backfill's calls needed three tokens"
    assert app.grants >= 3, "at least two renewals after the first token"
    assert app.refusals >= 1, "the token revoked mid-run was refused once, then renewed"
    # Nothing lost: every seeded contact (backfill) and every announced one (serve) got its owner and score.
    for rid in seeded + announced:
        record = sandbox.get_record("contacts", rid) or {}
        assert record.get("hubspot_owner_id"), rid
        assert record.get(settings.hubspot.score_property) not in (None, ""), rid
    # Every 401 was followed by a renewal and a success.
    calls = [status for _, _, path, status in sandbox.request_log if not path.startswith("/oauth")]
    assert calls and calls[-1] == 200 and calls.count(401) <= app.grants
