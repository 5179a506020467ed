"""Segment-style behaviour events (track / page / identify) → Event, with field-precise errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.core.models import Event

PAGE_EVENT = "Page Viewed"  # Segment's name for a page call seen as a track event
IDENTIFY_EVENT = "Identify"
CRM_KEY_PREFIXES = ("hubspot:", "salesforce:")


class EventFormatError(ValueError):
    """A behaviour event that cannot be used: the message names the field."""


def _email_of(msg: Mapping[str, Any]) -> str | None:
    for holder in (msg.get("traits"), (msg.get("context") or {}).get("traits"), msg.get("properties")):
        if isinstance(holder, Mapping) and isinstance(holder.get("email"), str) and "@" in holder["email"]:
            return str(holder["email"]).strip().lower()
    user_id = msg.get("userId")
    if isinstance(user_id, str) and "@" in user_id:
        return user_id.strip().lower()
    return None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise EventFormatError("timestamp: required, an ISO-8601 date-time such as 2026-11-23T10:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventFormatError(f"timestamp: {value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise EventFormatError(f"timestamp: {value!r} has no time zone (add Z or +00:00)")
    return parsed.astimezone(UTC)


def parse_segment(msg: Any) -> Event:
    """One Segment message → Event. The lead is found by email (traits/properties/userId) or a CRM key userId."""
    if not isinstance(msg, Mapping):
        raise EventFormatError("(event): must be a JSON object")
    kind = msg.get("type")
    if kind not in ("track", "page", "identify"):
        raise EventFormatError(f"type: must be 'track', 'page' or 'identify', got {kind!r}")
    user_id = msg.get("userId")
    lead_key = _email_of(msg)
    if lead_key is None and isinstance(user_id, str) and user_id.startswith(CRM_KEY_PREFIXES):
        lead_key = user_id
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
    elif kind == "page":
        name = PAGE_EVENT
        properties = {**properties, **({"name": msg["name"]} if isinstance(msg.get("name"), str) else {})}
    else:
        name = IDENTIFY_EVENT
        traits = msg.get("traits") or {}
        properties = dict(traits) if isinstance(traits, Mapping) else {}
    event_id = msg.get("messageId")
    return Event(
        lead_key=lead_key,
        name=name.strip(),
        occurred_at=_timestamp(msg.get("timestamp") or msg.get("sentAt")),
        properties=dict(properties),
        kind=kind,
        event_id=str(event_id) if event_id else None,
    )


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
