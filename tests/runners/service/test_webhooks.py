"""HubSpot v3 signatures (window, URI as HubSpot called it, constant-time) and delivery → record ids, echoes dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.runners.service.webhooks import (
    MAX_EVENTS_PER_REQUEST,
    SignatureVerdict,
    WebhookPayloadError,
    check_signature,
    parse_payload,
    plan_intake,
    request_uri,
    sign_v3,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "app-client-secret"
APP_ID = "424242"
URI = "https://connector.example.com/webhooks/hubspot"


def ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def hs_event(event_id: int, object_id: int, kind: str = "propertyChange", **extra: Any) -> dict[str, Any]:
    """One event shaped like HubSpot's webhook payload [crm-behaviour: HubSpot webhook deliveries]."""
    event = {
        "eventId": event_id, "subscriptionId": 9001, "portalId": 62515, "appId": int(APP_ID),
        "occurredAt": int(NOW.timestamp() * 1000) - 10_000 + event_id, "subscriptionType": f"contact.{kind}",
        "attemptNumber": 0, "objectId": object_id, "changeFlag": "NEW", "changeSource": "CRM_UI", "sourceId": "userId:7",
    }
    if kind == "propertyChange":
        event |= {"propertyName": "email", "propertyValue": "ann@acme.example"}
    return event | extra


def verdict(body: bytes, *, signature: str | None = None, timestamp: str | None = None, uri: str = URI, method: str = "POST") -> SignatureVerdict:
    ts = timestamp if timestamp is not None else ms(NOW)
    sig = signature if signature is not None else sign_v3(SECRET, "POST", URI, body, ts)
    return check_signature(client_secret=SECRET, method=method, uri=uri, body=body, signature=sig, timestamp=ts, now=NOW)


def test_sign_v3_matches_the_hubspot_sdk() -> None:
    from hubspot.utils.signature import Signature

    body = json.dumps([hs_event(1, 101)])
    ts = ms(NOW)
    ours = sign_v3(SECRET, "POST", URI, body.encode(), ts)
    assert ours == Signature.get_signature(SECRET, body, "v3", URI, "POST", ts)


def test_valid_signature_accepted() -> None:
    assert verdict(b"[]") is SignatureVerdict.VALID


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"signature": "AAAA" + sign_v3(SECRET, "POST", URI, b"[]", ms(NOW))[4:]}, SignatureVerdict.MISMATCH),
        ({"signature": sign_v3("another-secret", "POST", URI, b"[]", ms(NOW))}, SignatureVerdict.MISMATCH),
        ({"uri": URI.replace("https", "http")}, SignatureVerdict.MISMATCH),
        ({"method": "PUT"}, SignatureVerdict.MISMATCH),
        ({"timestamp": ms(NOW - timedelta(minutes=5, seconds=1))}, SignatureVerdict.STALE),
        ({"timestamp": ms(NOW + timedelta(minutes=6))}, SignatureVerdict.STALE),
        ({"timestamp": "yesterday"}, SignatureVerdict.STALE),
        ({"signature": ""}, SignatureVerdict.MISSING),
        ({"timestamp": ""}, SignatureVerdict.MISSING),
    ],
)
def test_bad_signatures_rejected(kwargs: dict[str, Any], expected: SignatureVerdict) -> None:
    assert verdict(b"[]", **kwargs) is expected


def test_altered_body_rejected() -> None:
    ts = ms(NOW)
    sig = sign_v3(SECRET, "POST", URI, b'[{"objectId":1}]', ts)
    assert verdict(b'[{"objectId":2}]', signature=sig, timestamp=ts) is SignatureVerdict.MISMATCH


def test_signature_within_the_window_accepted() -> None:
    ts = ms(NOW - timedelta(minutes=4, seconds=59))
    assert verdict(b"[]", timestamp=ts) is SignatureVerdict.VALID


@pytest.mark.parametrize(
    ("scheme", "host", "headers", "expected"),
    [
        ("http", "10.0.0.5:8080", {}, "http://10.0.0.5:8080/webhooks/hubspot?x=1"),
        # Behind a TLS-terminating proxy HubSpot called https://public-host
        # [crm-behaviour: Pitfall: webhook signature behind a TLS proxy].
        ("http", "10.0.0.5:8080", {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com"},
         "https://hooks.example.com/webhooks/hubspot?x=1"),
        ("http", "10.0.0.5:8080", {"x-forwarded-proto": "https, http", "x-forwarded-host": "a.example, b.internal"},
         "https://a.example/webhooks/hubspot?x=1"),
    ],
)
def test_request_uri_as_hubspot_called_it(scheme: str, host: str, headers: dict[str, str], expected: str) -> None:
    assert request_uri(scheme, host, "/webhooks/hubspot", "x=1", headers) == expected


def test_request_uri_decodes_the_characters_hubspot_decodes() -> None:
    assert request_uri("https", "h.example", "/webhooks/hubspot", "a=%3A%2F%40%2c", {}) == "https://h.example/webhooks/hubspot?a=:/@,"


def test_payload_parsed_into_events() -> None:
    events = parse_payload(json.dumps([hs_event(1, 101), hs_event(2, 102, "creation")]).encode())
    assert [(e.event_id, e.object_id, e.kind) for e in events] == [("1", "101", "propertyChange"), ("2", "102", "creation")]
    assert events[0].property_value == "ann@acme.example"
    assert events[0].occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{not json", "(body): not valid JSON"),
        (b'{"eventId": 1}', "(body): must be a JSON array"),
        (b"[]", "(body): the event array is empty"),
        (json.dumps([hs_event(i, i) for i in range(MAX_EVENTS_PER_REQUEST + 1)]).encode(), "at most 100"),
        (json.dumps([hs_event(1, 1), "x"]).encode(), "[1]: each event must be a JSON object"),
        (json.dumps([{k: v for k, v in hs_event(1, 1).items() if k != "eventId"}]).encode(), "[0].eventId: required"),
        (json.dumps([hs_event(1, 1, objectId=None)]).encode(), "[0].objectId: required"),
        (json.dumps([hs_event(1, 1, occurredAt="today")]).encode(), "[0].occurredAt"),
        (json.dumps([hs_event(1, 1, subscriptionType=None)]).encode(), "[0].subscriptionType: required"),
        (json.dumps([hs_event(1, 1, objectId={"a": 1})]).encode(), "[0].objectId: must be a string or an integer"),
        (b"\xff\xfe", "(body): not valid JSON"),
    ],
)
def test_malformed_payloads_named(body: bytes, where: str) -> None:
    with pytest.raises(WebhookPayloadError, match=None) as info:
        parse_payload(body)
    assert where in str(info.value)


def test_changes_refetched_once_each_oldest_first() -> None:
    events = parse_payload(json.dumps([hs_event(3, 102), hs_event(1, 101), hs_event(2, 102, "creation")]).encode())
    intake = plan_intake(events, app_id=APP_ID, object_type="contacts")
    assert intake.refetch_ids == ("101", "102")
    assert intake.accepted_event_ids == ("1", "2", "3")


def test_own_echo_ignored_other_integrations_kept() -> None:
    ours = hs_event(1, 101, changeSource="INTEGRATION", sourceId=APP_ID)
    other_app = hs_event(2, 102, changeSource="INTEGRATION", sourceId="999")
    intake = plan_intake(parse_payload(json.dumps([ours, other_app]).encode()), app_id=APP_ID, object_type="contacts")
    assert intake.echo_event_ids == ("1",)
    assert intake.refetch_ids == ("102",)


def test_without_an_app_id_nothing_is_taken_for_an_echo() -> None:
    ours = hs_event(1, 101, changeSource="INTEGRATION", sourceId=APP_ID)
    intake = plan_intake(parse_payload(json.dumps([ours]).encode()), app_id=None, object_type="contacts")
    assert intake.refetch_ids == ("101",)


def test_deletions_merges_and_privacy_deletion() -> None:
    events = [
        hs_event(1, 101),
        hs_event(2, 101, "deletion"),
        hs_event(3, 103, "privacyDeletion"),
        hs_event(4, 104, "merge", primaryObjectId=104, mergedObjectIds=[105, 106], newObjectId=107),
        hs_event(5, 108, "deletion"),
        hs_event(6, 108, "restore"),
    ]
    intake = plan_intake(parse_payload(json.dumps(events).encode()), app_id=APP_ID, object_type="contacts")
    assert set(intake.deleted_ids) == {"101", "103"}
    assert intake.merged == {"105": "107", "106": "107"}
    assert intake.refetch_ids == ("107", "108")


def test_other_objects_and_generic_subscriptions() -> None:
    company = hs_event(1, 201, subscriptionType="company.propertyChange")
    generic_contact = hs_event(2, 202, subscriptionType="object.propertyChange", objectTypeId="0-1")
    generic_lead = hs_event(3, 203, subscriptionType="object.creation", objectTypeId="0-136")
    events = parse_payload(json.dumps([company, generic_contact, generic_lead]).encode())
    contacts = plan_intake(events, app_id=APP_ID, object_type="contacts")
    leads = plan_intake(events, app_id=APP_ID, object_type="leads")
    assert (contacts.refetch_ids, contacts.ignored_event_ids) == (("202",), ("1", "3"))
    assert (leads.refetch_ids, leads.ignored_event_ids) == (("203",), ("1", "2"))
