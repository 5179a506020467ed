"""Bad data gets a 4xx naming the field and index, never an endless 503 or a 500 (issue 19), on SQLite and PostgreSQL;
events without messageId are de-duplicated, and stored in one transaction with their intake rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from connector.core.clock import FrozenClock
from connector.core.errors import RejectedDataError
from connector.core.models import Event
from connector.runners.service.events import DERIVED_ID_PREFIX, parse_segment
from connector.runners.service.limits import MAX_JSON_DEPTH
from connector.state.store import IntakeRequest, Store

from .conftest import EVENTS_SECRET, START, FakeHubSpotWithEmail, basic, hs_event, make_app, post_signed

GOOD = {"type": "track", "event": "Pricing Viewed", "userId": "ann@acme.example", "timestamp": "2026-11-23T09:00:00Z"}


def post_batch(url: str, messages: list[dict[str, Any]] | bytes) -> requests.Response:
    body = messages if isinstance(messages, bytes) else json.dumps({"batch": messages}).encode()
    return requests.post(f"{url}/events/batch", data=body, headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)


BAD_MESSAGES = [
    pytest.param({"event": "x" * 256}, "batch[1].event: 256 characters", id="name-over-255"),
    pytest.param({"messageId": "m" * 256}, "batch[1].messageId: 256 characters", id="message-id-over-255"),
    pytest.param({"userId": "a" * 310 + "@acme.example"}, "batch[1].userId: 323 characters", id="email-over-320"),
    pytest.param({"traits": {"email": "a" * 310 + "@acme.example"}}, "batch[1].traits.email: 323", id="traits-email-over-320"),
    pytest.param({"event": "Pricing\x00Viewed"}, "batch[1].event: contains a NUL", id="nul-in-name"),
    pytest.param({"properties": {"plan": "pro\x00"}}, "batch[1].properties.plan: contains a NUL", id="nul-in-property"),
    pytest.param({"messageId": "m\x00"}, "batch[1].messageId: contains a NUL", id="nul-in-message-id"),
    pytest.param({"properties": {"plan": "\ud800"}}, "batch[1].properties.plan: not valid Unicode", id="lone-surrogate"),
]


@pytest.mark.parametrize(("change", "detail"), BAD_MESSAGES)
def test_a_value_the_store_cannot_keep_is_400_naming_field_and_index(
    tmp_path: Any, clock: FrozenClock, store_url: str, change: dict[str, Any], detail: str,
) -> None:
    with make_app(tmp_path, clock, FakeHubSpotWithEmail(), store_url=store_url) as app:
        response = post_batch(app.url, [GOOD | {"messageId": "ok-0"}, GOOD | change])
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(detail)
        assert response.json()["correlation_id"]
        # Nothing of the batch was kept, so the sender can fix it and send it again.
        assert app.store.intake_rows() == [] and app.store.events_for(["ann@acme.example"]) == {"ann@acme.example": []}


def test_a_value_the_database_refuses_is_rejected_data_and_keeps_nothing(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        event = Event(lead_key="ann@acme.example", name="n" * 300, occurred_at=FrozenClock(START).now(), event_id="long-name")
        row = IntakeRequest("hubspot", "contacts", "email", "ann@acme.example", None, "events", None)
        if store.dialect == "postgresql":
            with pytest.raises(RejectedDataError):
                store.accept_events([event], [row], FrozenClock(START).now())
            assert store.intake_rows() == [] and store.events_for(["ann@acme.example"])["ann@acme.example"] == []
        else:  # SQLite keeps any length; the edge check (above) makes both stores answer alike
            assert store.accept_events([event], [row], FrozenClock(START).now())[0] == 1
    finally:
        store.close()


def test_a_refused_value_that_reaches_the_store_is_400_not_503(tmp_path: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_app(tmp_path, clock, FakeHubSpotWithEmail()) as app:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RejectedDataError("the state store refused a value: StringDataRightTruncation")

        monkeypatch.setattr(app.store, "accept_events", refuse)
        response = post_batch(app.url, [GOOD])
        assert (response.status_code, "Retry-After" in response.headers) == (400, False)
        assert "refused a value" in response.json()["detail"]
        assert len(app.service.queue) == 0  # the reservation was given back


def test_a_batch_that_can_never_fit_the_queue_is_413_naming_the_capacity(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock, FakeHubSpotWithEmail(), intake_queue_size=3) as app:
        emails = [GOOD | {"userId": f"p{n}@acme.example", "messageId": f"m{n}"} for n in range(4)]
        too_many = post_batch(app.url, emails)
        assert too_many.status_code == 413, too_many.text
        assert "needs 4 intake rows" in too_many.json()["detail"] and "holds 3 ([service] intake_queue_size)" in too_many.json()["detail"]
        assert post_batch(app.url, emails[:3]).status_code == 200  # a batch that fits is taken


def test_a_delivery_that_can_never_fit_the_queue_is_413(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock, intake_queue_size=2) as app:
        response = post_signed(app.url, [hs_event(n, 100 + n, clock.now()) for n in range(3)], clock)
        assert response.status_code == 413 and "holds 2" in response.json()["detail"]


def test_deeply_nested_json_is_400_not_500(tmp_path: Any, clock: FrozenClock) -> None:
    deep = b'{"type": "track", "properties": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with make_app(tmp_path, clock) as app:
        event = requests.post(f"{app.url}/events", data=deep, headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
        webhook = post_signed(app.url, b"[" * 5000 + b"]" * 5000, clock)
        for response in (event, webhook):
            assert response.status_code == 400, response.text
            assert f"at most {MAX_JSON_DEPTH}" in response.json()["detail"]
        # Brackets inside strings are text, not nesting.
        bracketed = GOOD | {"messageId": "b1", "properties": {"note": "[" * 5000}}
        assert post_batch(app.url, [bracketed]).status_code == 200


def test_webhook_ids_the_store_cannot_keep_are_400_naming_the_event(tmp_path: Any, clock: FrozenClock) -> None:
    with make_app(tmp_path, clock) as app:
        long_id = post_signed(app.url, [hs_event(1, 101, clock.now()), hs_event(2, 102, clock.now(), eventId="9" * 300)], clock)
        nul = post_signed(app.url, [hs_event(3, 103, clock.now(), objectId="10\x003")], clock)
        assert (long_id.status_code, nul.status_code) == (400, 400)
        assert long_id.json()["detail"].startswith("[1].eventId: 300 characters")
        assert nul.json()["detail"].startswith("[0].objectId: contains a NUL")


def test_an_event_without_message_id_gets_a_stable_derived_id() -> None:
    first, again = parse_segment(dict(GOOD)), parse_segment(json.loads(json.dumps(GOOD)))
    assert first.event_id is not None and first.event_id.startswith(DERIVED_ID_PREFIX)
    assert first.event_id == again.event_id
    assert parse_segment(GOOD | {"properties": {"plan": "pro"}}).event_id != first.event_id
    assert parse_segment(GOOD | {"timestamp": "2026-11-23T09:00:01Z"}).event_id != first.event_id
    assert parse_segment(GOOD | {"messageId": "given"}).event_id == "given"


def test_the_same_event_without_message_id_posted_twice_is_stored_once(tmp_path: Any, clock: FrozenClock, store_url: str) -> None:
    with make_app(tmp_path, clock, FakeHubSpotWithEmail(), store_url=store_url) as app:
        first, second = post_batch(app.url, [GOOD]).json(), post_batch(app.url, [GOOD]).json()
        assert (first["stored"], second["stored"], second["duplicates"]) == (1, 0, 1)
        assert len(app.store.events_for(["ann@acme.example"])["ann@acme.example"]) == 1


def test_events_and_their_intake_rows_commit_together(tmp_path: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_app(tmp_path, clock, FakeHubSpotWithEmail()) as app:
        intake = app.store._intake  # noqa: SLF001 — the one seam between the events and the intake insert
        real_insert = intake._insert  # noqa: SLF001

        def fail_once(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(intake, "_insert", real_insert)
            raise ConnectionError("connection lost mid-transaction")

        monkeypatch.setattr(intake, "_insert", fail_once)
        message = GOOD | {"messageId": "once"}
        assert post_batch(app.url, [message]).status_code == 503
        # The events of the failed request were rolled back with it: the retry stores and re-scores them.
        retried = post_batch(app.url, [message])
        assert (retried.status_code, retried.json()["stored"], retried.json()["rescoring"]) == (200, 1, 1)
