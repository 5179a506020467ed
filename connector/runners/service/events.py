"""Segment-style behaviour events (track / page / identify) → Event, with field-precise errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.core.models import Event
from connector.runners.service.limits import MAX_EMAIL_CHARS, MAX_NAME_CHARS, BodyFormatError, check_text, check_tree

PAGE_EVENT = "Page Viewed"  # Segment's name for a page call seen as a track event
IDENTIFY_EVENT = "Identify"
CRM_KEY_PREFIXES = ("hubspot:", "salesforce:")


# An event without a messageId is given one derived from what it says, so a re-sent copy is recognised.
DERIVED_ID_PREFIX = "derived:"


class EventFormatError(BodyFormatError):
    """A behaviour event that cannot be used: the message names the field."""


def _email_of(msg: Mapping[str, Any]) -> str | None:
    context = msg.get("context")
    context_traits = context.get("traits") if isinstance(context, Mapping) else None
    for field, holder in (("traits", msg.get("traits")), ("context.traits", context_traits), ("properties", msg.get("properties"))):
        if isinstance(holder, Mapping) and isinstance(holder.get("email"), str) and "@" in holder["email"]:
            return _bounded(str(holder["email"]).strip().lower(), f"{field}.email", MAX_EMAIL_CHARS)
    user_id = msg.get("userId")
    if isinstance(user_id, str) and "@" in user_id:
        return _bounded(user_id.strip().lower(), "userId", MAX_EMAIL_CHARS)
    return None


def _bounded(value: str, field: str, max_chars: int) -> str:
    try:
        return check_text(value, field, max_chars=max_chars)
    except BodyFormatError as exc:
        raise EventFormatError(str(exc)) from None


def derived_event_id(kind: str, lead_key: str, name: str, occurred_at: datetime, properties: Mapping[str, Any]) -> str:
    """A stable id for an event sent without messageId: a hash of its type, user, name, time and properties."""
    canonical = json.dumps([kind, lead_key, name, occurred_at.isoformat(), properties], sort_keys=True, separators=(",", ":"), default=str)
    return DERIVED_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise EventFormatError("timestamp: required, an ISO-8601 date-time such as 2026-11-23T10:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventFormatError(f"timestamp: {value[:64]!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise EventFormatError(f"timestamp: {value!r} has no time zone (add Z or +00:00)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before the first representable instant
        raise EventFormatError(f"timestamp: {value!r} is out of range") from None


def _checked_text(msg: Mapping[str, Any]) -> None:
    for key, value in msg.items():
        try:
            check_text(str(key), "(a key)")
            check_tree(value, str(key))
        except BodyFormatError as exc:
            raise EventFormatError(str(exc)) from None


def parse_segment(msg: Any) -> Event:
    """One Segment message → Event. The lead is found by email (traits/properties/userId) or a CRM key userId."""
    if not isinstance(msg, Mapping):
        raise EventFormatError("(event): must be a JSON object")
    _checked_text(msg)
    kind = msg.get("type")
    if kind not in ("track", "page", "identify"):
        raise EventFormatError(f"type: must be 'track', 'page' or 'identify', got {kind!r}")
    user_id = msg.get("userId")
    lead_key = _email_of(msg)
    if lead_key is None and isinstance(user_id, str) and user_id.startswith(CRM_KEY_PREFIXES):
        lead_key = _bounded(user_id, "userId", MAX_EMAIL_CHARS)
    if lead_key is None:
        raise EventFormatError("userId/traits.email: no email or CRM key (hubspot:contacts:ID) to attach the event to a lead")
    properties = msg.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, Mapping):
        raise EventFormatError("properties: must be an object")
    if kind == "track":
        name = msg.get("event")
        if not isinstance(name, str) or not name.strip():
            raise EventFormatError("event: a track call needs an event name")
        _bounded(name.strip(), "event", MAX_NAME_CHARS)
    elif kind == "page":
        name = PAGE_EVENT
        properties = {**properties, **({"name": msg["name"]} if isinstance(msg.get("name"), str) else {})}
    else:
        name = IDENTIFY_EVENT
        traits = msg.get("traits") or {}
        properties = dict(traits) if isinstance(traits, Mapping) else {}
    message_id = msg.get("messageId")
    occurred_at = _timestamp(msg.get("timestamp") or msg.get("sentAt"))
    properties = dict(properties)
    event_id = (
        _bounded(str(message_id), "messageId", MAX_NAME_CHARS) if message_id
        else derived_event_id(kind, lead_key, name.strip(), occurred_at, properties)
    )
    return Event(lead_key=lead_key, name=name.strip(), occurred_at=occurred_at, properties=properties, kind=kind, event_id=event_id)


def parse_events_file(path: Path) -> tuple[list[Event], list[str]]:
    """Every usable event of a JSONL file, and one problem line (with its line number) per unusable one."""
    parsed: list[Event] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                parsed.append(parse_segment(json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"{path.name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
            except EventFormatError as exc:
                problems.append(f"{path.name}:{number}: {exc}")
    return parsed, problems
