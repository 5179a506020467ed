"""Values in words for explain / status: no tuples, dicts, `None` or raw cursor JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connector.ops.words import cursor_words, time_words, value_words

AT_MS = int(datetime(2026, 12, 5, 2, 50, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("value", "words"), [
    (("analytics",), "analytics"),
    (("analytics", "crm"), "analytics, crm"),
    (None, "none"),
    (True, "yes"),
    (200000000.0, "200,000,000"),
    (42.5, "42.5"),
    ({"page_views": 3.0, "email_opens": 17.0}, "page views 3, email opens 17"),
    (datetime(2026, 12, 5, 2, 50, 7, 123, tzinfo=UTC), "2026-12-05 02:50 UTC"),
])
def test_values_read_as_words(value: object, words: str) -> None:
    assert value_words(value, empty="none") == words


@pytest.mark.parametrize(("crm", "obj", "stream", "state", "words"), [
    ("hubspot", "contacts", "changed", {"v": 1, "watermark_ms": AT_MS, "last_id": 1234},
     "HubSpot contacts, changed since 2026-12-05 02:50 UTC (resumes after id 1234)"),
    ("hubspot", "contacts", "changed", {"v": 1, "watermark_ms": AT_MS, "last_id": 0}, "HubSpot contacts, changed since 2026-12-05 02:50 UTC"),
    ("hubspot", "contacts", "all", {"v": 1, "done": True}, "HubSpot contacts, every record (backfill): complete"),
    ("salesforce", "Lead", "changed", {"v": 1, "stream": "changed", "since": "2026-12-05T02:50:00.000+0000",
                                       "after": ["2026-12-05T03:10:00.000+0000", "00Q5"], "started": "2026-12-05T03:00:00.000+0000"},
     "Salesforce Lead, changed since 2026-12-05 02:50 UTC (resumes after id 00Q5, changed 2026-12-05 03:10 UTC)"),
    ("salesforce", "Lead", "all", {"v": 1, "stream": "all", "after_id": "00Q9"},
     "Salesforce Lead, every record (backfill): resumes after id 00Q9"),
])
def test_cursors_read_as_words(crm: str, obj: str, stream: str, state: dict[str, object], words: str) -> None:
    assert cursor_words(crm, obj, stream, json.dumps(state)) == words


def test_time_words_accepts_iso_text() -> None:
    assert time_words("2026-12-05T02:50:59.999+00:00") == "2026-12-05 02:50 UTC" and time_words(None) == ""
