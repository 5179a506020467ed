"""Routing transactions and outbox completion buffer their writes and flush them in bulk, with unchanged semantics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connector.core.clock import FrozenClock
from connector.config import example_config_path, load_settings
from connector.runners.jobs import compile_engine, make_adapters, prepare
from connector.core.models import FetchPage, FieldDecision, Lead, Patch, WriteResult
from connector.pipeline.batch import run_batch
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import DecisionRecord, Store

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
# A Tuesday mid-afternoon in Europe, morning on the US east coast: most reps are at work.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
# Statements one run_batch may issue for a page, whatever its size: the lock rows, one read per counter
# scope, the lead states, the pending writes, a few bulk writes, then one claim and completion.
STATEMENTS_PER_PAGE = 30


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs (executemany counts once: one round trip)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)


def make_patch(record_id: str, **changes: object) -> Patch:
    return Patch(
        crm="hubspot", object_type="contacts", record_id=record_id, changes=changes or {"score": 42.5},
        current={"score": 10}, reasons={}, decisions={"score": FieldDecision.WRITE},
    )


def test_counter_updates_fold_in_call_order_and_are_read_back_inside_the_transaction(store: Store) -> None:
    with store.routing_transaction(["rr:pool-a"]) as txn:
        txn.set("rr:pool-a", "kept", 5)
    with store.routing_transaction(["rr:pool-a"]) as txn:
        txn.add("rr:pool-a", "sum", 1)
        txn.add("rr:pool-a", "sum", 2)
        txn.add("rr:pool-a", "set-after-add", 4)
        txn.set("rr:pool-a", "set-after-add", 9)
        txn.set("rr:pool-a", "add-after-set", 3)
        txn.add("rr:pool-a", "add-after-set", 2)
        txn.add("rr:pool-a", "kept", 1)  # adds to the stored value, not to zero
        txn.add("rr:pool-a", "kept", 1)
        assert txn.counters("rr:pool-a") == {"kept": 7, "sum": 3, "set-after-add": 9, "add-after-set": 5}
        txn.add("rr:pool-a", "sum", 10)  # after a read: flushed again at commit
        txn.add("not-locked", "x", 2)
        assert txn.counters("not-locked") == {"x": 2}  # a scope the transaction did not lock is read on its own
    assert store.counters("rr:pool-a") == {"kept": 7, "sum": 13, "set-after-add": 9, "add-after-set": 5}
    assert store.counters("not-locked") == {"x": 2}


def test_remembered_values_and_routing_of_one_lead_merge_over_the_stored_row(store: Store) -> None:
    key = "hubspot:contacts:7"
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.set_routed(key, "o-1", "ana@example.com", NOW, initial_status="new")
        txn.remember_values(key, {"owner_id": "o-1", "stage": "lead"}, NOW)
    later = NOW + timedelta(minutes=5)
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.remember_values(key, {"stage": "mql", "score": 10}, later)
        txn.set_routed(key, "o-2", "ben@example.com", later, reassignment=True, sla_due_at=later + timedelta(minutes=30))
        txn.remember_values(key, {"score": 20}, later)
        txn.set_routed(key, "o-3", "cy@example.com", later, reassignment=True)
        txn.remember_values("hubspot:contacts:8", {"grade": "B"}, later)  # a lead with no row yet
    states = store.get_lead_states([key, "hubspot:contacts:8"])
    state = states[key]
    assert state.written == {"owner_id": "o-1", "stage": "mql", "score": 20}
    assert state.written_at == later
    assert (state.routed_owner_id, state.routed_rep, state.routed_at) == ("o-3", "cy@example.com", later)
    assert state.reassignments == 2
    assert state.sla_due_at is None  # the last set_routed gave none
    assert state.initial_status == "new"
    other = states["hubspot:contacts:8"]
    assert (other.written, other.routed_owner_id, other.reassignments) == ({"grade": "B"}, None, 0)


def test_reads_inside_the_transaction_see_its_buffered_writes(store: Store) -> None:
    key = "hubspot:contacts:101"
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.set_routed(key, "o-1", "ana@example.com", NOW)
        txn.remember_values(key, {"grade": "A"}, NOW)
        state = txn.lead_states([key])[key]
        assert (state.routed_owner_id, state.written) == ("o-1", {"grade": "A"})
        txn.enqueue(make_patch("101", score=50), NOW)
        txn.enqueue(make_patch("101", grade="B"), NOW)
        assert txn.pending_writes([key]) == {key: {"score": 50, "grade": "B"}}


def test_ids_handed_out_before_the_flush_are_the_stored_ids(store: Store) -> None:
    key = "hubspot:contacts:5"
    [before] = store.enqueue([make_patch("4")], NOW)
    with store.routing_transaction(["route:hubspot"]) as txn:
        decision_ids = [txn.record_decision(lead_key=key, kind="route", owner_id=f"o-{i}", created_at=NOW) for i in range(3)]
        outbox_ids = [txn.enqueue(make_patch(str(i)), NOW) for i in range(5, 8)]
    [after] = store.enqueue([make_patch("9")], NOW)
    assert [d.id for d in store.decisions_for(key)] == decision_ids
    assert [d.owner_id for d in store.decisions_for(key)] == ["o-0", "o-1", "o-2"]
    assert before < outbox_ids[0] < outbox_ids[1] < outbox_ids[2] < after
    assert [item.id for item in store.pending_outbox("hubspot")] == [before, *outbox_ids, after]
    assert store.record_decision(DecisionRecord(lead_key=key, kind="keep", created_at=NOW)) > decision_ids[-1]


def test_an_exception_discards_buffered_and_flushed_writes_alike(store: Store) -> None:
    key = "hubspot:contacts:3"
    with pytest.raises(RuntimeError, match="engine bug"), store.routing_transaction(["rr:pool-a"]) as txn:
        txn.add("rr:pool-a", "ana", 1)
        txn.counters("rr:pool-a")  # flushed to the open transaction, not committed
        txn.add("rr:pool-a", "ana", 1)
        txn.set_routed(key, "o-1", "ana", NOW)
        txn.remember_values(key, {"score": 1}, NOW)
        txn.enqueue(make_patch("3"), NOW)
        txn.pending_writes([key])
        txn.record_decision(lead_key=key, kind="route", created_at=NOW)
        raise RuntimeError("engine bug")
    assert store.counters("rr:pool-a") == {}
    assert store.get_lead_states([key]) == {}
    assert store.decisions_for(key) == []
    assert store.pending_outbox("hubspot") == []


def test_a_bad_decision_kind_fails_at_the_call_not_at_commit(store: Store) -> None:
    with pytest.raises(ValueError, match="decision kind must be one of"), store.routing_transaction(["route:hubspot"]) as txn:
        txn.record_decision(lead_key="hubspot:contacts:1", kind="guess", created_at=NOW)
    assert store.list_decisions() == []


def test_complete_outbox_records_mixed_outcomes_of_one_call(store: Store) -> None:
    patches = [make_patch("1", score=1), make_patch("1", grade="A"), make_patch("2"), make_patch("3"), make_patch("4"), make_patch("4")]
    ids = store.enqueue(patches, NOW)
    ok = WriteResult("hubspot", "contacts", "1", ok=True)
    retry = WriteResult("hubspot", "contacts", "2", ok=False, error_code="RATE_LIMIT", message="slow down", retryable=True)
    bad = WriteResult("hubspot", "contacts", "3", ok=False, error_code="INVALID_OWNER", message="owner gone", field="owner_id")
    store.add_dead_letter(crm="hubspot", object_type="contacts", record_id="3", field=None, code="INVALID_OWNER",
                          message="seen before", payload={}, now=NOW)
    first = WriteResult("hubspot", "contacts", "4", ok=False, error_code="X", message="first")
    second = WriteResult("hubspot", "contacts", "4", ok=False, error_code="X", message="second")
    results = [ok, ok, retry, bad, first, second]
    store.complete_outbox(list(zip(ids, patches, results, strict=True)), NOW, max_attempts=5)

    assert store.get_lead_states(["hubspot:contacts:1"])["hubspot:contacts:1"].written == {"score": 1, "grade": "A"}
    pending = store.pending_outbox("hubspot")
    assert [(item.id, item.attempts) for item in pending] == [(ids[2], 1)]
    letters = {(d.record_id, d.code): d for d in store.list_dead_letters()}
    assert set(letters) == {("3", "INVALID_OWNER"), ("4", "X")}
    assert (letters["3", "INVALID_OWNER"].attempts, letters["3", "INVALID_OWNER"].message) == (2, "owner gone")
    assert letters["3", "INVALID_OWNER"].field == "owner_id"
    assert (letters["4", "X"].attempts, letters["4", "X"].message) == (2, "second")
    assert letters["4", "X"].payload["record_id"] == "4"


def test_claim_outbox_is_one_statement_on_postgresql_and_keeps_the_reclaimed_flag(store: Store) -> None:
    ids = store.enqueue([make_patch(str(i)) for i in range(3)], NOW)
    with counting_statements() as seen:
        claimed = store.claim_outbox("hubspot", "a", NOW, limit=2, lease_seconds=60)
    assert [(i.id, i.reclaimed) for i in claimed] == [(ids[0], False), (ids[1], False)]
    work = [s for s in seen if not s.startswith("BEGIN")]
    assert len(work) == (1 if store.dialect == "postgresql" else 2)
    later = store.claim_outbox("hubspot", "b", NOW + timedelta(seconds=61), lease_seconds=60)
    assert [(i.id, i.reclaimed) for i in later] == [(ids[0], True), (ids[1], True), (ids[2], False)]


def _leads(store_url: str, sandbox: HubSpotSandbox) -> tuple[Any, ...]:
    settings = load_settings(example_config_path(), {
        "store": {"url": store_url},
        "hubspot": {"enabled": True, "base_url": sandbox.base_url, "access_token": sandbox.token, "safety_lag_seconds": 0},
        "routing": {"when_unavailable": "fallback"},
    })
    clock = FrozenClock(T0)
    adapters = make_adapters(settings, clock=clock)
    runtime = prepare(settings, adapters)["hubspot"]
    leads: list[Lead] = [lead for page in adapters["hubspot"].fetch_all(None) for lead in page.leads]
    return runtime, compile_engine(settings), leads


def test_a_page_costs_a_bounded_number_of_statements_whatever_its_size(store: Store, store_url: str) -> None:
    with HubSpotSandbox(seed=42, contacts=240) as sandbox:
        runtime, engine, leads = _leads(store_url, sandbox)
        counts = []
        for page in (leads[:40], leads[40:240]):
            with counting_statements() as seen:
                result = run_batch(store, runtime, engine, FetchPage(leads=tuple(page), cursor=None), T0)
            assert result.written > 0 and result.fetched == len(page)
            counts.append(len(seen))
    assert max(counts) <= STATEMENTS_PER_PAGE
    # Five times the leads: at most one more id block per table on PostgreSQL, and one claim check
    # (hold_outbox) per extra batch/update request of 100.
    assert counts[1] - counts[0] <= 2 + (-(-200 // 100) - -(-40 // 100))
    assert store.count_lead_states("hubspot:contacts:") == 240
