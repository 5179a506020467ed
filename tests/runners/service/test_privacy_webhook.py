"""HubSpot privacy deletions (issue 9): a signed `contact.privacyDeletion` erases the lead's personal data, durably."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import connector.runners.service.worker as worker_module
from connector.core.clock import FrozenClock
from connector.runners.jobs import make_adapters
from connector.core.models import Event
from connector.ops.forget import ForgetReport, forget
from connector.sandbox.hubspot import HubSpotSandbox
from connector.runners.service.app import Service
from connector.runners.service.intake import webhook_intake_rows
from connector.runners.service.webhooks import parse_payload
from connector.state.store import Store

from .conftest import WAIT, FakeHubSpot, hs_event, post_signed, service_settings, serving


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=10) as sb:
        yield sb


@pytest.fixture
def forget_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every lead key the service asks `forget` to erase (the real function still runs)."""
    calls: list[str] = []

    def spy(store: Store, **kwargs: Any) -> ForgetReport:
        calls.append(kwargs["lead_key"])
        return forget(store, **kwargs)

    monkeypatch.setattr(worker_module, "forget", spy)
    return calls


def _new_contact(sandbox: HubSpotSandbox, n: int) -> str:
    return sandbox.create_contact({
        "email": f"erin{n}@fabrikam-{n}.example", "firstname": "Erin", "lastname": f"Private{n}",
        "jobtitle": "Head of Operations", "country": "Germany", "lifecyclestage": "lead",
    })


def test_privacy_deletion_erases_events_and_decision_details(
    store_url: str, sandbox: HubSpotSandbox, clock: FrozenClock, forget_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(store_url, sandbox.base_url, sandbox.token)
    gone, kept = _new_contact(sandbox, 1), _new_contact(sandbox, 2)
    gone_key, kept_key = f"hubspot:contacts:{gone}", f"hubspot:contacts:{kept}"
    email = sandbox.get_record("contacts", gone)["email"]  # type: ignore[index]
    with Store.open(store_url) as store:
        store.add_events([
            Event(lead_key=key, name="Form Submitted", occurred_at=clock.now() - timedelta(hours=n + 1), event_id=f"{key}-{n}",
                  properties={"form": "demo"})
            for key in (gone_key, kept_key) for n in range(2)
        ])
        service = Service(settings, store, make_adapters(settings, clock=clock), clock=clock)
        with serving(service) as url:
            created = [hs_event(10, gone, clock.now(), "creation"), hs_event(11, kept, clock.now(), "creation")]
            assert post_signed(url, created, clock).status_code == 200
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
            routed = store.decisions_for(gone_key)
            assert routed and all(d.score is not None and d.explanation for d in routed)

            # A GDPR delete in HubSpot: the record goes, and both deletion events arrive
            # [crm-behaviour: HubSpot GDPR deletes are permanent].
            sandbox.archive("contacts", gone)
            caplog.set_level(logging.INFO, logger="connector.service")
            deletion = [
                hs_event(20, gone, clock.now(), "deletion"),
                hs_event(21, gone, clock.now(), "privacyDeletion"),
            ]
            response = post_signed(url, deletion, clock)
            assert response.status_code == 200, response.text
            assert response.json()["accepted_records"] == 2  # the deletion and the erasure, queued durably
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)

        assert forget_calls == [gone_key]
        assert store.events_for([gone_key])[gone_key] == []
        assert len(store.events_for([kept_key])[kept_key]) == 2
        erased = store.decisions_for(gone_key)
        assert [(d.kind, d.owner_id) for d in erased] == [(d.kind, d.owner_id) for d in routed]  # the audit facts stay
        assert all(d.score is None and d.grade is None and set(d.explanation) == {"erased_at"} for d in erased)
        assert all(d.score is not None and d.explanation.keys() - {"erased_at"} for d in store.decisions_for(kept_key))
        assert {(r["kind"], r["status"]) for r in store.intake_rows() if r["ref"] == gone} >= {("forget", "done")}
        logged = [r for r in caplog.records if r.getMessage() == "privacy deletion: personal data erased"]
        assert [(r.lead_key, r.events, r.decisions) for r in logged] == [(gone_key, 2, len(routed))]  # type: ignore[attr-defined]
        assert email.lower() not in caplog.text.lower()


def test_plain_deletion_forgets_nothing(tmp_path: Any, clock: FrozenClock, forget_calls: list[str]) -> None:
    settings = service_settings(f"sqlite:///{tmp_path / 'state.db'}", "http://127.0.0.1:9", "unused-token")
    key = "hubspot:contacts:301"
    with Store.open(settings.store.url) as store:
        store.add_events([Event(lead_key=key, name="Page Viewed", occurred_at=clock.now(), event_id="p1")])
        service = Service(settings, store, {"hubspot": FakeHubSpot()}, clock=clock)
        with serving(service) as url:
            response = post_signed(url, [hs_event(30, 301, clock.now(), "deletion")], clock)
            assert response.json()["accepted_records"] == 1
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
        assert forget_calls == []
        assert len(store.events_for([key])[key]) == 1
        assert [r["kind"] for r in store.intake_rows()] == ["deleted"]


def test_generic_object_privacy_deletion_left_by_a_previous_run_is_erased_at_start(
    tmp_path: Any, clock: FrozenClock, forget_calls: list[str]
) -> None:
    settings = service_settings(f"sqlite:///{tmp_path / 'state.db'}", "http://127.0.0.1:9", "unused-token")
    key = "hubspot:contacts:402"
    rows = webhook_intake_rows(
        parse_payload(
            json.dumps([hs_event(40, 402, clock.now(), subscriptionType="object.privacyDeletion", objectTypeId="0-1")]).encode()
        ),
        app_id=settings.hubspot.app_id, object_type="contacts", correlation=None,
    )
    assert [(r.kind, r.ref) for r in rows] == [("deleted", "402"), ("forget", "402")]
    with Store.open(settings.store.url) as store:
        store.add_events([Event(lead_key=key, name="Signed Up", occurred_at=clock.now(), event_id="s1")])
        # Accepted (2xx sent) by a run that stopped before its worker got to it.
        store.add_intake(rows, clock.now())
        assert store.intake_rows()[1]["kind"] == "forget"
        service = Service(settings, store, {"hubspot": FakeHubSpot()}, clock=clock)
        with serving(service):
            assert service.wait_until(lambda: store.count_pending_intake() == 0, WAIT)
        assert forget_calls == [key]
        assert store.events_for([key])[key] == []
        assert [r["status"] for r in store.intake_rows()] == ["done", "done"]

