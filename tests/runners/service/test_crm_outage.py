"""A CRM outage (a 502 storm) during webhook processing uses no intake attempts: nothing is dead-lettered, everything
is processed once the storm ends; only work older than [service] intake_max_age_hours becomes a dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.core.clock import FrozenClock
from connector.ops.status import collect_status, render_status
from connector.runners.jobs import make_adapters
from connector.runners.service.app import Service
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.intake import IntakeRequest
from connector.state.store import Store

from .conftest import service_settings


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=5) as sb:
        yield sb


def _contact(sandbox: HubSpotSandbox, n: int) -> str:
    return sandbox.create_contact({"email": f"storm{n}@fabrikam-{n}.example", "firstname": "Kim", "lastname": f"Storm{n}",
                                   "jobtitle": "CTO", "country": "United States", "lifecyclestage": "lead"})


def _queue(store: Store, clock: FrozenClock, ids: list[str]) -> None:
    store.add_intake([IntakeRequest("hubspot", "contacts", "record", rid, None, "webhook", None) for rid in ids], clock.now())


def test_a_502_storm_dead_letters_nothing_and_everything_is_processed_after_it(
    store_url: str, sandbox: HubSpotSandbox, clock: FrozenClock, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)
    with Store.open(settings.store.url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)  # not started: driven turn by turn
        service.worker.prepare_crm("hubspot", bootstrap=True)
        ids = [_contact(sandbox, n) for n in range(3)]
        _queue(store, clock, ids)
        sandbox.error_rate_5xx = 1.0
        # Far more failed turns than [sync] max_dead_letter_attempts (5), each after the rows' retry time: 10 hours.
        for _ in range(settings.sync.max_dead_letter_attempts + 5):
            assert not service.process_pending()
            assert store.list_dead_letters() == []
            clock.advance(3600)
        assert {r["status"] for r in store.intake_rows()} == {"retrying"}
        assert {r["attempts"] for r in store.intake_rows()} == {0}
        status = collect_status(settings, store, clock)
        assert status["intake_retrying"]["items"] == 3
        assert status["intake_retrying"]["oldest_age_seconds"] >= 10 * 3600  # (plus the adapter's retry waits, on the same clock)
        render_status(status)
        assert "intake retrying because of CRM errors: 3" in capsys.readouterr().out

        sandbox.error_rate_5xx = 0.0
        assert service.process_pending()
        assert store.count_pending_intake() == 0 and store.list_dead_letters() == []
        assert {r["status"] for r in store.intake_rows()} == {"done"}
        for rid in ids:
            record = sandbox.get_record("contacts", rid)
            assert record is not None and record.get("hubspot_owner_id")


def test_work_older_than_the_maximum_age_is_dead_lettered_saying_so(tmp_path: Any, sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    settings = service_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox.base_url, sandbox.token, intake_max_age_hours=2)
    with Store.open(settings.store.url) as store:
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        service.worker.prepare_crm("hubspot", bootstrap=True)
        _queue(store, clock, [_contact(sandbox, 1)])
        sandbox.error_rate_5xx = 1.0
        assert not service.process_pending()
        assert store.list_dead_letters() == []
        clock.advance(2 * 3600 + 60)
        assert not service.process_pending()
        [letter] = store.list_dead_letters()
        assert letter.code == "intake_max_age"
        assert "intake_max_age_hours = 2" in letter.message and "the CRM kept failing for 2." in letter.message
        assert store.count_pending_intake() == 0
        assert collect_status(settings, store, clock)["intake_retrying"] == {"items": 0, "oldest_accepted_at": None, "oldest_age_seconds": None}


def test_the_retry_wait_honours_a_longer_retry_after_and_backs_off_otherwise() -> None:
    from connector.core.errors import RateLimitedError, TransientError
    from connector.core.retrying import wait_after

    assert wait_after(1, RateLimitedError("429", retry_after=120), base_delay=5, max_delay=900) == 120
    assert 2.5 <= wait_after(1, TransientError("502"), base_delay=5, max_delay=900) <= 5
    assert 450 <= wait_after(30, TransientError("502"), base_delay=5, max_delay=900) <= 900
