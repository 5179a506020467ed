"""Values as a person reads them: no tuples, dicts, `None` or raw JSON cursors in human output."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CRM_TITLES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
STREAM_WORDS = {"changed": "changed", "all": "every record (backfill)", "archived": "archived or deleted"}


def value_words(value: Any, *, empty: str = "") -> str:
    """One value in words: `('analytics',)` → `analytics`, `None` → `empty`, True → yes, times in UTC minutes."""
    if value is None or value == "" or value == () or value == [] or value == {}:
        return empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 10_000 else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, datetime):
        return time_words(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {value_words(v, empty='none')}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(value_words(v) for v in value)
    return str(value)


def time_words(value: datetime | str | None) -> str:
    """`2026-12-05 02:50 UTC` from an aware datetime or an ISO string; "" for none."""
    if value in (None, ""):
        return ""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _ms_words(ms: Any) -> str:
    return time_words(datetime.fromtimestamp(int(ms) / 1000, UTC))


def cursor_words(crm: str, object_type: str, stream: str, value: str | None) -> str:
    """A stored cursor in words: "HubSpot contacts, changed since 2026-12-05 02:50 UTC (resumes after id 1234)"."""
    head = f"{CRM_TITLES.get(crm, crm)} {object_type}, {STREAM_WORDS.get(stream, stream)}"
    try:
        state = json.loads(value) if value else {}
    except ValueError:
        state = None
    if not isinstance(state, dict):
        return f"{head}: unreadable cursor (reset it)"
    if state.get("done"):
        return f"{head}: complete"
    since = next((_ms_words(state[k]) for k in ("watermark_ms", "since_ms") if state.get(k)), None)
    if since is None and state.get("since"):
        since = time_words(state["since"])
    after = state.get("after_id") or state.get("last_id") or state.get("after")
    if isinstance(after, Sequence) and not isinstance(after, str) and len(after) == 2:
        resume = f"resumes after id {after[1]}, changed {time_words(after[0])}"
    else:
        resume = f"resumes after id {value_words(after)}" if after else ""
    if since:
        return f"{head} since {since}" + (f" ({resume})" if resume else "")
    return f"{head}: {resume or 'from the beginning'}"


# A short clause between separators (`dee.sales 39`, `re-sync writes: 0`) stays on one line when wrapped.
_CLAUSE = re.compile(r"(, |; |   )")
_SHORT_CLAUSE = 28
# A figure stays next to its label and its unit: `unchanged 1164`, `499,989 left`, `Tue 2026-12-08 16:00 UTC`.
_GLUED = re.compile(r" (?=\d|UTC\b)|(?<=\d) (?=[a-z]+\b)")


def _glued(text: str) -> str:
    """`text` with non-breaking spaces where a wrap would separate what a person reads as one thing."""
    text = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\u00a0"), text)  # a command stays whole
    parts = _CLAUSE.split(text)
    return "".join(
        p if i % 2 or len(p) > _SHORT_CLAUSE else p.replace(" ", "\u00a0") for i, p in enumerate(_GLUED.sub("\u00a0", q) for q in parts)
    )


def hanging(text: str, width: int, *, hang: int = 4) -> str:
    """`text` wrapped at word boundaries to `width` columns, continuation lines indented `hang` more than the first.

    Never cuts a word (a URL or a cursor stays whole); keeps a figure next to its label, a short clause and a
    `backticked command` on one line.
    """
    lead = text[: len(text) - len(text.lstrip(" "))]
    lines = textwrap.wrap(
        _glued(text.strip(" ")), width=max(width, 40), initial_indent=lead, subsequent_indent=lead + " " * hang,
        break_long_words=False, break_on_hyphens=False,
    )
    return "\n".join(lines).replace("\u00a0", " ")
