"""State store: cursors, routing transactions, outbox, dead letters, events, decisions, runs (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.core.models import Event, FieldDecision, Patch, WriteResult
from connector.state.store import DecisionRecord, LeadState, Store, patch_from_json, patch_to_json

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def make_patch(record_id: str = "101", **changes: object) -> Patch:
    return Patch(
        crm="hubspot",
        object_type="contacts",
        record_id=record_id,
        changes=changes or {"owner_id": "o-1", "score": 42.5, "grade": "B"},
        current={"owner_id": None, "score": 10, "grade": "C", "stage": "lead"},
        reasons={"owner_id": "rule enterprise-emea", "stage": "would move back"},
        decisions={"owner_id": FieldDecision.WRITE, "score": FieldDecision.WRITE, "stage": FieldDecision.WOULD_REGRESS},
    )


def test_cursors_upsert_and_list(store: Store) -> None:
    assert store.get_cursor("salesforce", "Lead", "changed") is None
    store.set_cursor("salesforce", "Lead", "changed", "2025-03-10T09:00:00Z", NOW)
    store.set_cursor("salesforce", "Lead", "changed", "2025-03-10T09:05:00Z", NOW + timedelta(minutes=5))
    store.set_cursor("hubspot", "contacts", "archived", "abc", NOW)
    assert store.get_cursor("salesforce", "Lead", "changed") == "2025-03-10T09:05:00Z"
    rows = store.list_cursors()
    assert [(r.crm, r.object_type, r.stream, r.value) for r in rows] == [
        ("hubspot", "contacts", "archived", "abc"),
        ("salesforce", "Lead", "changed", "2025-03-10T09:05:00Z"),
    ]
    assert rows[1].updated_at == NOW + timedelta(minutes=5)


def test_patch_round_trips_through_json_and_the_outbox(store: Store) -> None:
    patch = make_patch()
    assert patch_from_json(patch_to_json(patch)) == patch
    ids = store.enqueue([patch, make_patch("102", stage="marketingqualifiedlead")], NOW)
    pending = store.pending_outbox("hubspot")
    assert [item.id for item in pending] == ids
    assert pending[0].patch == patch
    assert isinstance(next(iter(pending[0].patch.decisions.values())), FieldDecision)
    assert pending[0].created_at == NOW and pending[0].attempts == 0
    assert store.pending_outbox("salesforce") == []
    assert len(store.pending_outbox("hubspot", limit=1)) == 1


def test_claims_split_pending_writes_between_replicas_until_the_lease_runs_out(store: Store, store_url: str) -> None:
    ids = store.enqueue([make_patch(str(i)) for i in range(5)], NOW)
    with Store.open(store_url, migrate=False) as other:
        mine = store.claim_outbox("hubspot", "replica-a", NOW, limit=3, lease_seconds=60)
        theirs = other.claim_outbox("hubspot", "replica-b", NOW, limit=10, lease_seconds=60)
        assert [i.id for i in mine] == ids[:3] and [i.id for i in theirs] == ids[3:]
        assert other.claim_outbox("hubspot", "replica-b", NOW + timedelta(seconds=30)) == []
        locked = WriteResult("hubspot", "contacts", "0", ok=False, error_code="UNABLE_TO_LOCK_ROW", retryable=True)
        store.complete_outbox([(mine[0].id, mine[0].patch, locked)], NOW)
        assert [i.id for i in other.claim_outbox("hubspot", "replica-b", NOW + timedelta(seconds=30))] == [ids[0]]
        # replica-a died holding ids[1:3]: its lease runs out and another replica takes them over.
        assert [i.id for i in other.claim_outbox("hubspot", "replica-b", NOW + timedelta(seconds=61))] == [ids[1], ids[2], ids[3], ids[4]]
    assert len(store.pending_outbox("hubspot")) == 5


def test_routing_transaction_commits_everything_together(store: Store) -> None:
    key = "hubspot:contacts:101"
    with store.routing_transaction(["rr:pool-a"]) as txn:
        assert txn.counters("rr:pool-a") == {}
        txn.add("rr:pool-a", "ana@example.com", 1)
        txn.add("rr:pool-a", "ana@example.com", 2)
        txn.set("rr:pool-a", "ben@example.com", 7)
        decision_id = txn.record_decision(
            lead_key=key, kind="route", owner_id="o-1", rep="ana@example.com", rule="emea", pool="pool-a",
            strategy="round_robin", explanation={"reasons": ["matched emea"], "at": NOW}, created_at=NOW,
        )
        txn.set_routed(key, "o-1", "ana@example.com", NOW, sla_due_at=NOW + timedelta(minutes=30), initial_status="new")
        outbox_id = txn.enqueue(make_patch(), NOW)
        assert txn.lead_states([key])[key].routed_owner_id == "o-1"  # visible inside its own transaction
    with store.routing_transaction(["rr:pool-a"]) as txn:
        assert txn.counters("rr:pool-a") == {"ana@example.com": 3, "ben@example.com": 7}
    state = store.get_lead_states([key, "hubspot:contacts:999"])
    assert list(state) == [key]
    assert state[key] == LeadState(
        lead_key=key, routed_owner_id="o-1", routed_rep="ana@example.com", routed_at=NOW, written={},
        written_at=None, reassignments=0, sla_due_at=NOW + timedelta(minutes=30), initial_status="new",
    )
    [decision] = store.decisions_for(key)
    assert decision.id == decision_id and decision.kind == "route" and decision.pool == "pool-a"
    assert decision.explanation == {"reasons": ["matched emea"], "at": NOW.isoformat()}
    assert [item.id for item in store.pending_outbox("hubspot")] == [outbox_id]


def test_routing_transaction_rolls_back_everything_on_error(store: Store) -> None:
    key = "hubspot:contacts:101"
    with pytest.raises(RuntimeError, match="engine bug"), store.routing_transaction(["rr:pool-a"]) as txn:
        txn.add("rr:pool-a", "ana@example.com", 1)
        txn.record_decision(DecisionRecord(lead_key=key, kind="route", owner_id="o-1", created_at=NOW))
        txn.set_routed(key, "o-1", "ana@example.com", NOW)
        txn.enqueue(make_patch(), NOW)
        raise RuntimeError("engine bug")
    with store.routing_transaction(["rr:pool-a"]) as txn:
        assert txn.counters("rr:pool-a") == {}
    assert store.get_lead_states([key]) == {}
    assert store.decisions_for(key) == []
    assert store.pending_outbox("hubspot") == []


def test_two_workers_never_hand_out_the_same_turn(store_url: str) -> None:
    """Read-modify-write of a round-robin pointer from two stores (two processes) at once loses no turn."""
    per_worker = 15
    turns: list[int] = []
    turns_lock = threading.Lock()
    errors: list[BaseException] = []
    Store.open(store_url).close()

    def worker() -> None:
        try:
            with Store.open(store_url, migrate=False) as s:
                for _ in range(per_worker):
                    with s.routing_transaction(["rr:pool-a", "route:hubspot"]) as txn:
                        turn = txn.counters("rr:pool-a").get("pointer", 0)
                        txn.set("rr:pool-a", "pointer", turn + 1)
                    with turns_lock:
                        turns.append(turn)
        except BaseException as exc:  # collected for the assertion in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(turns) == list(range(2 * per_worker))


def test_reassignment_counts_and_keeps_the_initial_status(store: Store) -> None:
    key = "salesforce:Lead:00Q1"
    with store.routing_transaction(["route:salesforce"]) as txn:
        txn.set_routed(key, "005A", "ana@example.com", NOW, sla_due_at=NOW + timedelta(minutes=15), initial_status="Open - Not Contacted")
    later = NOW + timedelta(minutes=20)
    with store.routing_transaction(["route:salesforce"]) as txn:
        txn.record_decision(lead_key=key, kind="reassign", owner_id="005B", rep="ben@example.com", explanation={"reason": "sla expired"}, created_at=later)
        txn.set_routed(key, "005B", "ben@example.com", later, sla_due_at=later + timedelta(minutes=15), reassignment=True)
    state = store.get_lead_states([key])[key]
    assert (state.routed_owner_id, state.routed_rep, state.routed_at) == ("005B", "ben@example.com", later)
    assert state.reassignments == 1
    assert state.initial_status == "Open - Not Contacted"
    assert state.sla_due_at == later + timedelta(minutes=15)
    assert [d.kind for d in store.decisions_for(key)] == ["reassign"]


def test_leads_past_sla_and_clearing_the_clock(store: Store) -> None:
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.set_routed("hubspot:contacts:1", "o-1", "a", NOW, sla_due_at=NOW + timedelta(minutes=10))
        txn.set_routed("hubspot:contacts:2", "o-2", "b", NOW, sla_due_at=NOW + timedelta(minutes=60))
        txn.set_routed("hubspot:contacts:3", "o-1", "a", NOW)
    due = store.leads_past_sla(NOW + timedelta(minutes=30))
    assert [s.lead_key for s in due] == ["hubspot:contacts:1"]
    store.clear_sla(["hubspot:contacts:1"])
    assert store.leads_past_sla(NOW + timedelta(minutes=90)) == [store.get_lead_states(["hubspot:contacts:2"])["hubspot:contacts:2"]]
    assert store.owner_counts() == {"o-1": 2, "o-2": 1}


def test_complete_outbox_ok_merges_what_was_written(store: Store) -> None:
    first = make_patch("101", owner_id="o-1", score=42.5)
    second = make_patch("101", score=50, grade="A")
    [a, b] = store.enqueue([first, second], NOW)
    ok = WriteResult("hubspot", "contacts", "101", ok=True)
    store.complete_outbox([(a, first, ok)], NOW)
    store.complete_outbox([(b, second, ok)], NOW + timedelta(seconds=5))
    state = store.get_lead_states(["hubspot:contacts:101"])["hubspot:contacts:101"]
    assert state.written == {"owner_id": "o-1", "score": 50, "grade": "A"}
    assert state.written_at == NOW + timedelta(seconds=5)
    assert state.routed_owner_id is None
    assert store.pending_outbox("hubspot") == []
    assert store.purge_outbox(NOW + timedelta(days=1)) == 2


def test_complete_outbox_record_error_dead_letters_once_per_record_and_code(store: Store) -> None:
    patch = make_patch("00Q1", owner_id="005X")
    bad = WriteResult("hubspot", "contacts", "00Q1", ok=False, error_code="INACTIVE_OWNER_OR_USER", message="owner is inactive", field="owner_id")
    [first] = store.enqueue([patch], NOW)
    store.complete_outbox([(first, patch, bad)], NOW)
    [second] = store.enqueue([patch], NOW + timedelta(hours=1))
    store.complete_outbox([(second, patch, bad)], NOW + timedelta(hours=1))
    assert store.pending_outbox("hubspot") == []
    [letter] = store.list_dead_letters()
    assert (letter.crm, letter.object_type, letter.record_id, letter.field, letter.code) == (
        "hubspot", "contacts", "00Q1", "owner_id", "INACTIVE_OWNER_OR_USER",
    )
    assert letter.attempts == 2 and letter.first_seen == NOW and letter.last_seen == NOW + timedelta(hours=1)
    assert patch_from_json(letter.payload) == patch
    assert store.get_lead_states(["hubspot:contacts:00Q1"]) == {}


def test_complete_outbox_retryable_stays_pending_until_max_attempts(store: Store) -> None:
    patch = make_patch("7")
    locked = WriteResult("hubspot", "contacts", "7", ok=False, error_code="UNABLE_TO_LOCK_ROW", message="row locked", retryable=True)
    [item] = store.enqueue([patch], NOW)
    for attempt in range(1, 3):
        store.complete_outbox([(item, patch, locked)], NOW)
        [pending] = store.pending_outbox("hubspot")
        assert pending.attempts == attempt
    assert store.count_dead_letters() == 0
    store.complete_outbox([(item, patch, locked)], NOW, max_attempts=3)
    assert store.pending_outbox("hubspot") == []
    [letter] = store.list_dead_letters()
    assert letter.code == "UNABLE_TO_LOCK_ROW" and letter.message.startswith("gave up after 3 attempts")


def test_dead_letter_lifecycle(store: Store) -> None:
    def file(now: datetime, code: str = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") -> int:
        return store.add_dead_letter(
            crm="salesforce", object_type="Lead", record_id="00Q9", field="Status", code=code,
            message="bad picklist value", payload={"changes": {"stage": "x"}}, now=now,
        )

    first = file(NOW)
    assert file(NOW + timedelta(minutes=1)) == first
    other = file(NOW, code="ENTITY_IS_DELETED")
    assert other != first
    assert store.count_dead_letters() == 2
    store.set_dead_letter_status(first, "resolved", NOW)
    assert store.count_dead_letters() == 1 and store.count_dead_letters("resolved") == 1 and store.count_dead_letters(None) == 2
    assert [d.id for d in store.list_dead_letters("open")] == [other]
    letter = store.get_dead_letter(first)
    assert letter is not None and letter.status == "resolved" and letter.attempts == 2
    # Failing again after a resolution is a new problem, not the old one.
    again = file(NOW + timedelta(days=1))
    assert again not in (first, other)
    assert store.get_dead_letter(123456) is None
    with pytest.raises(ValueError, match="dead letter status"):
        store.set_dead_letter_status(first, "gone", NOW)
    with pytest.raises(KeyError):
        store.set_dead_letter_status(123456, "discarded", NOW)


def test_events_are_deduplicated_by_event_id_and_read_in_order(store: Store) -> None:
    t = NOW - timedelta(days=3)
    events = [
        Event("ana@example.com", "Page Viewed", t + timedelta(hours=2), {"url": "/pricing"}, "page", "e-2"),
        Event("ana@example.com", "Form Submitted", t, {"form": "demo"}, "track", "e-1"),
        Event("ana@example.com", "Page Viewed", t + timedelta(hours=2), {"url": "/pricing"}, "page", "e-2"),
        Event("ana@example.com", "Email Opened", t + timedelta(hours=1)),
        Event("ana@example.com", "Email Opened", t + timedelta(hours=1)),
        Event("hubspot:contacts:5", "Signed Up", t + timedelta(days=1), event_id="e-3"),
    ]
    assert store.add_events(events) == 5
    assert store.add_events(events[:3]) == 0
    got = store.events_for(["ana@example.com", "nobody@example.com"])
    assert [e.name for e in got["ana@example.com"]] == ["Form Submitted", "Email Opened", "Email Opened", "Page Viewed"]
    assert got["ana@example.com"][3] == events[0]
    assert got["nobody@example.com"] == []
    recent = store.events_for(["ana@example.com"], since=t + timedelta(minutes=90))
    assert [e.event_id for e in recent["ana@example.com"]] == ["e-2"]
    assert store.purge_events(t + timedelta(hours=1, minutes=30)) == 3
    assert [e.event_id for e in store.events_for(["ana@example.com", "hubspot:contacts:5"])["ana@example.com"]] == ["e-2"]


def test_decisions_are_appended_in_order_and_kinds_are_checked(store: Store) -> None:
    key = "hubspot:contacts:9"
    store.record_decision(DecisionRecord(lead_key=key, kind="score", score=71.5, grade="A", model="default", explanation={"rules": [["pricing", 20]]}, created_at=NOW))
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.record_decision(DecisionRecord(lead_key=key, kind="keep", owner_id="o-7", created_at=NOW + timedelta(seconds=1)))
    log = store.decisions_for(key)
    assert [(d.kind, d.score, d.owner_id) for d in log] == [("score", 71.5, None), ("keep", None, "o-7")]
    assert log[0].explanation == {"rules": [["pricing", 20]]}
    with pytest.raises(ValueError, match="decision kind"):
        store.record_decision(DecisionRecord(lead_key=key, kind="teleport", created_at=NOW))


def test_runs_newest_first(store: Store) -> None:
    store.record_run("sync", {"fetched": 10, "written": 2}, NOW)
    store.record_run("backfill", {"fetched": 500}, NOW + timedelta(hours=1))
    runs = store.last_runs()
    assert [(r["kind"], r["summary"]) for r in runs] == [("backfill", {"fetched": 500}), ("sync", {"fetched": 10, "written": 2})]
    assert runs[0]["created_at"] == NOW + timedelta(hours=1)
    assert len(store.last_runs(limit=1)) == 1


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        store.set_cursor("hubspot", "contacts", "changed", "1", datetime(2025, 1, 1))
