"""HubSpot's wire forms in the sandbox: datetimes, numbers and ids, error bodies, query parameters."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from connector.sandbox._http import Reply

EPOCH_MS = re.compile(r"^-?\d{1,16}$")


@lru_cache(maxsize=262_144)
def iso(ms: int) -> str:
    """Epoch milliseconds → HubSpot's v3 datetime form, e.g. `2024-05-31T10:11:12.345Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@lru_cache(maxsize=262_144)
def time_ms(raw: str) -> int | None:
    """A datetime/date property or filter value (epoch ms or ISO-8601) → epoch ms; None when unparseable."""
    text = raw.strip()
    if not text:
        return None
    if EPOCH_MS.match(text):
        return int(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return to_ms(value)


def float_or_none(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def as_int(raw: str | None) -> int:
    """A record id from a path or body; -1 (no record has it) when it is not a number."""
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return -1


class Abort(Exception):
    """Internal control flow of the sandbox: carries the HTTP reply for a refused request."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def abort(status: int, category: str, message: str, **extra: Any) -> Abort:
    return Abort(Reply(status, error_body(category, message, **extra)))


def flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[-1].strip().lower() == "true"


def multi(query: Mapping[str, list[str]], name: str) -> list[str]:
    """A list query parameter: repeated (`properties=a&properties=b`, the SDK's form) or comma-separated."""
    out: list[str] = []
    for value in query.get(name) or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    raw = (query.get(name) or [""])[-1]
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise abort(400, "VALIDATION_ERROR", f"Invalid value for query parameter {name}: {raw!r}") from None
