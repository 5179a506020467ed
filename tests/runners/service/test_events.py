"""Segment-style events: track / page / identify parsed; bad lines named by line and field, good lines kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.runners.service.events import EventFormatError, parse_events_file, parse_segment


def test_track_page_identify() -> None:
    track = parse_segment({"type": "track", "event": "Signed Up", "userId": "Ann@Acme.example", "timestamp": "2026-11-20T10:00:00Z", "messageId": "m1"})
    assert (track.lead_key, track.name, track.event_id) == ("ann@acme.example", "Signed Up", "m1")
    assert track.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    page = parse_segment({"type": "page", "name": "Pricing", "properties": {"url": "https://x.example/pricing"},
                          "context": {"traits": {"email": "b@x.example"}}, "timestamp": "2026-11-20T10:00:00+02:00"})
    assert page.name == "Page Viewed"
    assert page.properties["url"].endswith("/pricing")
    assert page.occurred_at.hour == 8
    ident = parse_segment({"type": "identify", "userId": "hubspot:contacts:42", "traits": {"plan": "pro"}, "timestamp": "2026-11-20T10:00:00Z"})
    assert ident.lead_key == "hubspot:contacts:42"


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"type": "alias"}, "type"),
        ({"type": "track", "userId": "a@b.example", "timestamp": "2026-01-01T00:00:00Z"}, "event"),
        ({"type": "track", "event": "X", "timestamp": "2026-01-01T00:00:00Z"}, "userId"),
        ({"type": "track", "event": "X", "userId": "a@b.example"}, "timestamp"),
        ({"type": "track", "event": "X", "userId": "a@b.example", "timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({"type": "track", "event": "X", "userId": "a@b.example", "timestamp": "2026-01-01T00:00:00Z", "properties": []}, "properties"),
    ],
)
def test_bad_events_name_the_field(msg: dict[str, object], field: str) -> None:
    with pytest.raises(EventFormatError) as info:
        parse_segment(msg)
    assert str(info.value).startswith(field)


def test_file_keeps_good_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    good = {"type": "track", "event": "Demo Requested", "userId": "a@b.example", "timestamp": "2026-01-01T00:00:00Z"}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n\n" + json.dumps({"type": "track"}) + "\n")
    events, problems = parse_events_file(path)
    assert len(events) == 1
    assert problems[0].startswith("events.jsonl:2: not valid JSON")
    assert problems[1].startswith("events.jsonl:4: userId")
