"""Outbox claims take each record's oldest pending write, and find it by index lookups rather than a scan of the backlog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connector.core.models import FieldDecision, Patch, WriteResult
from connector.state.store import Store

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def _patch(record_id: str, value: int, object_type: str = "contacts") -> Patch:
    return Patch(
        crm="hubspot", object_type=object_type, record_id=record_id, changes={"score": value},
        current={}, reasons={}, decisions={"score": FieldDecision.WRITE},
    )


def _ok(patch: Patch) -> WriteResult:
    return WriteResult(crm=patch.crm, object_type=patch.object_type, record_id=patch.record_id, ok=True)


def _claimed(store: Store, worker: str, now: datetime) -> list[tuple[str, str, int]]:
    items = store.claim_outbox("hubspot", worker, now, lease_seconds=60)
    return [(i.patch.object_type, i.patch.record_id, i.patch.changes["score"]) for i in items]


def test_a_records_newer_write_waits_for_every_older_one_claimed_or_not(store: Store) -> None:
    ids = store.enqueue([
        _patch("a", 1), _patch("b", 1), _patch("a", 2), _patch("a", 1, object_type="companies"), _patch("b", 2), _patch("a", 3),
    ], NOW)
    first = store.claim_outbox("hubspot", "w1", NOW, lease_seconds=60)
    assert [(i.patch.object_type, i.patch.record_id, i.patch.changes["score"]) for i in first] == [
        ("contacts", "a", 1), ("contacts", "b", 1), ("companies", "a", 1),
    ]
    # The oldest writes are held by w1: their records' newer writes are not claimable by anyone yet.
    assert _claimed(store, "w2", NOW) == []
    store.complete_outbox([(first[0].id, first[0].patch, _ok(first[0].patch))], NOW)
    assert _claimed(store, "w2", NOW) == [("contacts", "a", 2)]
    # A failed (dead-lettered) write no longer holds its record back.
    failed = first[1]
    gave_up = WriteResult(crm="hubspot", object_type="contacts", record_id="b", ok=False, error_code="X", message="no")
    store.complete_outbox([(failed.id, failed.patch, gave_up)], NOW)
    assert _claimed(store, "w3", NOW) == [("contacts", "b", 2)]
    # The leases run out: their writes are claimable again, and a's last write still waits behind a's second.
    again = store.claim_outbox("hubspot", "w4", NOW + timedelta(seconds=61), lease_seconds=60)
    assert [(i.id, i.reclaimed) for i in again] == [(ids[2], True), (ids[3], True), (ids[4], True)]


def test_pending_writes_apply_each_records_writes_oldest_first(store: Store) -> None:
    store.enqueue([_patch("b", 1), _patch("a", 1), _patch("b", 2), _patch("a", 2), _patch("c", 1)], NOW)
    claimed = store.claim_outbox("hubspot", "w1", NOW, limit=1, lease_seconds=60)
    store.complete_outbox([(claimed[0].id, claimed[0].patch, _ok(claimed[0].patch))], NOW)  # b's first write is done
    with store.routing_transaction([]) as txn:
        pending = txn.pending_writes(["hubspot:contacts:a", "hubspot:contacts:b", "hubspot:contacts:z"])
    assert pending == {"hubspot:contacts:a": {"score": 2}, "hubspot:contacts:b": {"score": 2}}


def _plans(store_url: str, run: Callable[[], None]) -> dict[str, list[str]]:
    """SQLite's EXPLAIN QUERY PLAN of every SELECT on the outbox that `run` sends, by its SQL."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM outbox" in statement:
            seen.append((statement, parameters))

    sa.event.listen(sa.Engine, "before_cursor_execute", grab)
    try:
        run()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", grab)
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return {sql: [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)] for sql, params in seen}
    finally:
        engine.dispose()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_claims_and_pending_writes_look_records_up_by_index_instead_of_scanning_the_backlog(store: Store, store_url: str) -> None:
    # Issue 18: grouping every pending row of the CRM on each claim made a 100,000-lead backfill's claims quadratic.
    store.enqueue([_patch(str(i % 50), i) for i in range(200)], NOW)

    def claim_then_read() -> None:
        store.claim_outbox("hubspot", "w1", NOW, limit=10, lease_seconds=60)
        with store.routing_transaction([]) as txn:
            txn.pending_writes(["hubspot:contacts:1", "hubspot:contacts:2"])

    plans = _plans(store_url, claim_then_read)
    claim = next(plan for sql, plan in plans.items() if "LIMIT" in sql)
    read = next(plan for sql, plan in plans.items() if "record_id IN" in sql)
    assert not any("GROUP BY" in step or "ORDER BY" in step for step in claim + read), plans
    assert any("SEARCH older USING INDEX ix_outbox_record" in step for step in claim), claim
    assert any("USING INDEX ix_outbox_record" in step for step in read), read
