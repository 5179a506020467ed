"""The helpers both adapters share: cursor codec, chunking, look-up keys and the batch-write outline with its fence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import pytest

from connector.adapters.base import (
    CLAIM_LOST,
    CursorCodec,
    PendingWrite,
    chunks,
    fenced,
    unique_lower,
    unsent,
    write_in_batches,
)
from connector.core.errors import ConfigError, TransientError
from connector.core.models import Patch, WriteResult

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def patch(record_id: str, **changes: object) -> Patch:
    return Patch("hubspot", "contacts", record_id, changes)


def test_a_cursor_reads_back_as_its_state_and_is_the_same_string_for_the_same_state() -> None:
    codec = CursorCodec("hubspot", "HubSpot")
    cursor = codec.encode("fetch_all", {"b": 2, "a": 1})
    assert cursor == '{"a":1,"b":2,"v":1}' == codec.encode("fetch_all", {"a": 1, "b": 2})
    assert codec.decode(cursor, "fetch_all") == {"a": 1, "b": 2, "v": 1}
    assert codec.decode(None, "fetch_all") == {} and codec.decode("", "fetch_all") == {}


@pytest.mark.parametrize("cursor", ["not json", "[1]", '{"v":2}', '{"a":1}'])
def test_a_cursor_of_another_kind_or_version_names_its_key(cursor: str) -> None:
    with pytest.raises(ConfigError, match=r"cursor\.hubspot\.fetch_changed.*HubSpot cursor of this version; reset it"):
        CursorCodec("hubspot", "HubSpot").decode(cursor, "fetch_changed")


def test_a_stream_tagged_cursor_is_refused_by_another_stream() -> None:
    codec = CursorCodec("salesforce", "Salesforce", tags_stream=True)
    cursor = codec.encode("fetch_all", {"done": True})
    assert codec.decode(cursor, "fetch_all") == {"v": 1, "stream": "fetch_all", "done": True}
    with pytest.raises(ConfigError, match=r"cursor\.salesforce\.fetch_changed.*of this stream and version"):
        codec.decode(cursor, "fetch_changed")


@pytest.mark.parametrize(("n", "size", "sizes"), [(0, 3, []), (3, 3, [3]), (7, 3, [3, 3, 1]), (2, 100, [2])])
def test_chunks_keep_order_and_size(n: int, size: int, sizes: list[int]) -> None:
    parts = list(chunks(list(range(n)), size))
    assert [len(p) for p in parts] == sizes and [x for p in parts for x in p] == list(range(n))


def test_lookup_keys_are_stripped_lower_unique_and_sorted() -> None:
    assert unique_lower([" B@x.example", "b@X.example", "", "  ", "a@x.example"]) == ["a@x.example", "b@x.example"]


def test_write_outline_answers_every_patch_in_order_and_sends_empty_ones_nowhere() -> None:
    sent: list[list[str]] = []

    def send(batch: list[PendingWrite[str]]) -> Mapping[int, WriteResult]:
        sent.append([item.payload for item in batch])
        return {item.index: WriteResult("hubspot", "contacts", item.patch.record_id, ok=item.patch.record_id != "3") for item in batch}

    def batches(pending: list[PendingWrite[str]]) -> Iterable[list[PendingWrite[str]]]:
        return chunks(pending, 2)

    patches = [patch("1", score=1), patch("2"), patch("3", score=3), patch("4", score=4)]
    results = write_in_batches(patches, prepare=lambda p: f"body-{p.record_id}", batches=batches, send=send)
    assert [(r.record_id, r.ok) for r in results] == [("1", True), ("2", True), ("3", False), ("4", True)]
    assert sent == [["body-1", "body-3"], ["body-4"]]


def test_the_fence_holds_back_what_another_replica_now_holds() -> None:
    batch = [PendingWrite(i, patch(str(i), score=i), None) for i in range(3)]
    asked: list[Sequence[Patch]] = []

    def fence(patches: Sequence[Patch], now: datetime) -> Sequence[bool]:
        asked.append(patches)
        return [p.record_id != "1" for p in patches]

    assert [item.index for item in fenced(fence, batch, NOW)] == [0, 2]
    assert [p.record_id for p in asked[0]] == ["0", "1", "2"]
    assert fenced(None, batch, NOW) == batch


def test_an_ambiguous_failure_returns_what_was_sent_for_a_re_read_and_the_rest_as_claim_lost() -> None:
    batch = [PendingWrite(i, patch(str(i), score=i), None) for i in range(3)]
    results = unsent(batch, [batch[0], batch[2]], TransientError("HTTP 502"))
    assert {i: (r.error_code, r.retryable) for i, r in results.items()} == {
        0: ("AMBIGUOUS_FAILURE", True), 1: (CLAIM_LOST, True), 2: ("AMBIGUOUS_FAILURE", True)}
