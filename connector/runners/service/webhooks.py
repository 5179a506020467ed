"""HubSpot webhooks, pure: the v3 signature check and a delivery's events → the record ids to re-fetch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from connector.runners.service.limits import BodyFormatError, check_text, check_tree, loads_bounded

SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
# HubSpot sends at most 100 events per request [crm-behaviour: HubSpot webhook deliveries].
MAX_EVENTS_PER_REQUEST = 100
# v3 deliveries older than 5 minutes must be rejected (replay window) [crm-behaviour: HubSpot webhook signatures].
MAX_SIGNATURE_AGE = timedelta(minutes=5)
# HubSpot signs the URI with these characters decoded, whatever the proxy did to them [crm-behaviour: HubSpot webhook signatures].
_DECODED_IN_URI = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
# Generic `object.*` subscriptions name the object by type id instead of a prefix [crm-behaviour: HubSpot object paths].
_OBJECT_TYPE_IDS = {"contacts": "0-1", "leads": "0-136"}
_LEGACY_PREFIXES = {"contacts": "contact."}
_CHANGE_KINDS = ("creation", "propertyChange", "restore", "associationChange")
_DELETE_KINDS = ("deletion", "privacyDeletion")
# HubSpot ids are numbers of at most 19 digits; 64 keeps every stored key (hubspot:portal:event ≤ 200) in its column.
_MAX_ID_CHARS = 64
_ID_FIELDS = ("eventId", "portalId", "objectId", "primaryObjectId", "newObjectId", "subscriptionId", "appId")


# token=token or token="quoted string" pairs of an RFC 7239 Forwarded element.
_FORWARDED_PAIR = re.compile(r'([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=(?:"((?:[^"\\]|\\.)*)"|([^;,\s]*))')


class WebhookPayloadError(BodyFormatError):
    """A delivery body that is not a HubSpot event batch: the message names the event index and field."""


class SignatureVerdict(str, Enum):
    VALID = "valid"
    MISSING = "missing"  # no signature or timestamp header
    STALE = "stale"  # timestamp outside the 5-minute window (or not a number)
    MISMATCH = "mismatch"  # wrong secret, altered body or URI


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event of a HubSpot delivery, as much of it as the connector uses."""

    event_id: str
    subscription_type: str
    object_id: str
    occurred_at: datetime
    subscription_id: str | None = None
    portal_id: str | None = None
    app_id: str | None = None
    object_type_id: str | None = None
    change_source: str | None = None
    source_id: str | None = None
    property_name: str | None = None
    property_value: str | None = None
    primary_object_id: str | None = None
    new_object_id: str | None = None
    merged_object_ids: tuple[str, ...] = ()
    attempt_number: int | None = None

    @property
    def kind(self) -> str:
        """The part after the object: creation, propertyChange, deletion, merge, privacyDeletion, ..."""
        return self.subscription_type.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class WebhookIntake:
    """What a delivery asks the connector to do, after echo filtering."""

    refetch_ids: tuple[str, ...] = ()  # records to re-read by id, oldest change first
    deleted_ids: tuple[str, ...] = ()
    merged: Mapping[str, str] = field(default_factory=dict)  # merged-away id -> surviving id
    # Records whose person asked to be erased (GDPR delete): the connector forgets what it holds about them.
    forget_ids: tuple[str, ...] = ()
    accepted_event_ids: tuple[str, ...] = ()  # events that caused work (deduplicated durably by the caller)
    echo_event_ids: tuple[str, ...] = ()  # changes made by this app's own writes [architecture: No echo loops]
    ignored_event_ids: tuple[str, ...] = ()  # other objects or subscription types


def forwarded_params(value: str) -> dict[str, str]:
    """The first (client-side) element of an RFC 7239 `Forwarded` header: lower-case parameter → value, unquoted."""
    params: dict[str, str] = {}
    for pair in _FORWARDED_PAIR.finditer(_first_element(value)):
        params[pair.group(1).lower()] = pair.group(3) if pair.group(3) is not None else pair.group(2)
    return params


def _first_element(value: str) -> str:
    inside = False
    for position, char in enumerate(value):
        if char == '"':
            inside = not inside
        elif char == "," and not inside:
            return value[:position]
    return value


def request_uri(
    scheme: str, host: str, path: str, query: str, headers: Mapping[str, str], *,
    trust_forwarded: bool = True, webhook_url: str | None = None,
) -> str:
    """The full URL as HubSpot called it: behind a TLS-terminating proxy the scheme and host come from
    X-Forwarded-Proto / X-Forwarded-Host, or else RFC 7239 Forwarded (else the signature fails on http vs
    https) [crm-behaviour: Pitfall: webhook signature behind a TLS proxy]. Those headers count only with
    `trust_forwarded` (the peer is a configured proxy); `webhook_url`, when set, is the URL, whatever the request says.

    `headers` must have lower-case keys. Only the first value of a comma list counts (the client side).
    """
    if webhook_url is not None:
        uri = webhook_url + (f"?{query}" if query and "?" not in webhook_url else "")
        return _decoded(uri)
    proto, forwarded_host = scheme, host
    if trust_forwarded:
        rfc7239 = forwarded_params(headers.get("forwarded", ""))
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() or rfc7239.get("proto", "").lower() or scheme
        forwarded_host = headers.get("x-forwarded-host", "").split(",")[0].strip() or rfc7239.get("host", "") or host
    return _decoded(f"{proto}://{forwarded_host}{path}" + (f"?{query}" if query else ""))


def _decoded(uri: str) -> str:
    for encoded, char in _DECODED_IN_URI.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client_secret, method + uri + body + timestamp)) — HubSpot's v3 signature."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


def check_signature(
    *,
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
) -> SignatureVerdict:
    """Check an X-HubSpot-Signature-v3 delivery; the timestamp (epoch ms) must be within 5 minutes of `now`."""
    if not signature or not timestamp:
        return SignatureVerdict.MISSING
    try:
        sent_at = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return SignatureVerdict.STALE
    # Symmetric window: a timestamp far in the future is as unverifiable as an old one.
    if abs(now - sent_at) > MAX_SIGNATURE_AGE:
        return SignatureVerdict.STALE
    expected = sign_v3(client_secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return SignatureVerdict.MISMATCH
    return SignatureVerdict.VALID


def _text(event: Mapping[str, Any], key: str, index: int, *, required: bool = False) -> str | None:
    value = event.get(key)
    if value is None or value == "":
        if required:
            raise WebhookPayloadError(f"[{index}].{key}: required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WebhookPayloadError(f"[{index}].{key}: must be a string or an integer, got {type(value).__name__}")
    try:
        return check_text(str(value), f"[{index}].{key}", max_chars=_MAX_ID_CHARS if key in _ID_FIELDS else None)
    except BodyFormatError as exc:
        raise WebhookPayloadError(str(exc)) from None


def _event(raw: Any, index: int) -> WebhookEvent:
    if not isinstance(raw, Mapping):
        raise WebhookPayloadError(f"[{index}]: each event must be a JSON object")
    occurred = raw.get("occurredAt")
    if isinstance(occurred, bool) or not isinstance(occurred, int):
        raise WebhookPayloadError(f"[{index}].occurredAt: required, epoch milliseconds as an integer")
    try:
        occurred_at = datetime.fromtimestamp(occurred / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookPayloadError(f"[{index}].occurredAt: {occurred} is not a usable epoch-milliseconds time") from None
    subscription_type = _text(raw, "subscriptionType", index, required=True)
    assert subscription_type is not None
    kind = subscription_type.rsplit(".", 1)[-1]
    merged_raw = raw.get("mergedObjectIds") or []
    if not isinstance(merged_raw, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in merged_raw):
        raise WebhookPayloadError(f"[{index}].mergedObjectIds: must be a list of ids")
    try:
        check_tree(raw.get("propertyValue"), f"[{index}].propertyValue")
        for position, merged_id in enumerate(merged_raw):
            check_text(str(merged_id), f"[{index}].mergedObjectIds[{position}]", max_chars=_MAX_ID_CHARS)
    except BodyFormatError as exc:
        raise WebhookPayloadError(str(exc)) from None
    attempt = raw.get("attemptNumber")
    value = raw.get("propertyValue")
    return WebhookEvent(
        event_id=str(_text(raw, "eventId", index, required=True)),
        subscription_type=subscription_type,
        # A merge names its survivor in primaryObjectId; objectId is still sent but may be either side.
        object_id=str(_text(raw, "objectId", index, required=kind != "merge") or _text(raw, "primaryObjectId", index, required=True)),
        occurred_at=occurred_at,
        subscription_id=_text(raw, "subscriptionId", index),
        portal_id=_text(raw, "portalId", index),
        app_id=_text(raw, "appId", index),
        object_type_id=_text(raw, "objectTypeId", index),
        change_source=_text(raw, "changeSource", index),
        source_id=_text(raw, "sourceId", index),
        property_name=_text(raw, "propertyName", index),
        # Property values are strings in HubSpot; anything else is kept as its JSON text.
        property_value=value if isinstance(value, str) or value is None else json.dumps(value),
        primary_object_id=_text(raw, "primaryObjectId", index),
        new_object_id=_text(raw, "newObjectId", index),
        merged_object_ids=tuple(str(v) for v in merged_raw),
        attempt_number=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
    )


def parse_payload(body: bytes) -> list[WebhookEvent]:
    """A delivery body (a JSON array of 1–100 events) → events; WebhookPayloadError names what is wrong."""
    try:
        raw = loads_bounded(body)
    except BodyFormatError as exc:
        raise WebhookPayloadError(str(exc)) from None
    if not isinstance(raw, list):
        raise WebhookPayloadError("(body): must be a JSON array of events")
    if not raw:
        raise WebhookPayloadError("(body): the event array is empty")
    if len(raw) > MAX_EVENTS_PER_REQUEST:
        raise WebhookPayloadError(f"(body): {len(raw)} events; HubSpot sends at most {MAX_EVENTS_PER_REQUEST} per request")
    return [_event(item, index) for index, item in enumerate(raw)]


def is_own_echo(event: WebhookEvent, app_id: str | None) -> bool:
    """A change caused by this app's own API write: changeSource INTEGRATION with sourceId = our app id.

    [crm-behaviour: HubSpot echo events carry the app id] [architecture: No echo loops]
    """
    return bool(app_id) and event.change_source == "INTEGRATION" and event.source_id == app_id


def _is_for(event: WebhookEvent, object_type: str) -> bool:
    if event.object_type_id is not None:
        return event.object_type_id == _OBJECT_TYPE_IDS.get(object_type)
    prefix = _LEGACY_PREFIXES.get(object_type)
    return prefix is not None and event.subscription_type.startswith(prefix)


def plan_intake(events: Sequence[WebhookEvent], *, app_id: str | None, object_type: str) -> WebhookIntake:
    """Which records to re-read (never trusting the payload's values), delete, re-key or forget; echoes dropped.

    Deliveries arrive out of order, so events are taken by occurredAt; the last word on a record
    wins (a creation after a deletion is a restore → re-fetch; a deletion after a change → deleted).
    """
    state: dict[str, str] = {}  # record id -> "refetch" | "deleted"
    merged: dict[str, str] = {}
    forget: dict[str, None] = {}
    accepted: list[str] = []
    echoes: list[str] = []
    ignored: list[str] = []
    for event in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        if not _is_for(event, object_type):
            ignored.append(event.event_id)
            continue
        if is_own_echo(event, app_id):
            echoes.append(event.event_id)
            continue
        kind = event.kind
        if kind in _CHANGE_KINDS:
            state.pop(event.object_id, None)
            state[event.object_id] = "refetch"
        elif kind in _DELETE_KINDS:
            state.pop(event.object_id, None)
            state[event.object_id] = "deleted"
            if kind == "privacyDeletion":
                # A GDPR delete is permanent and fires beside the plain deletion [crm-behaviour: HubSpot GDPR deletes are permanent]:
                # the record is gone either way; this one also asks for its personal data to be erased.
                forget[event.object_id] = None
        elif kind == "merge":
            survivor = event.new_object_id or event.primary_object_id or event.object_id
            for old in event.merged_object_ids:
                if old != survivor:
                    merged[old] = survivor
                    state.pop(old, None)
            state.pop(survivor, None)
            state[survivor] = "refetch"
        else:
            ignored.append(event.event_id)
            continue
        accepted.append(event.event_id)
    return WebhookIntake(
        refetch_ids=tuple(rid for rid, what in state.items() if what == "refetch"),
        deleted_ids=tuple(rid for rid, what in state.items() if what == "deleted"),
        merged=merged,
        forget_ids=tuple(forget),
        accepted_event_ids=tuple(accepted),
        echo_event_ids=tuple(echoes),
        ignored_event_ids=tuple(ignored),
    )
