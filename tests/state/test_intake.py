"""The store's intake table: durable acceptance, event-id de-duplication, claims with leases, release, purge."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connector.state.store import IntakeRequest, Store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def req(ref: str, kind: str = "record") -> IntakeRequest:
    return IntakeRequest("hubspot", "contacts", kind, ref, None, "webhook", "cid-1")


def test_deliveries_deduplicated_durably(store: Store) -> None:
    seen: list[frozenset[str]] = []

    def plan(new: frozenset[str]) -> list[IntakeRequest]:
        seen.append(new)
        return [req(d.rsplit(":", 1)[1]) for d in sorted(new)]

    new, rows = store.accept_deliveries(["hubspot:1:a", "hubspot:1:b"], plan, NOW)
    again, rows_again = store.accept_deliveries(["hubspot:1:b", "hubspot:1:c"], plan, NOW)
    assert (new, len(rows)) == (frozenset({"hubspot:1:a", "hubspot:1:b"}), 2)
    assert (again, len(rows_again)) == (frozenset({"hubspot:1:c"}), 1)
    assert [r["ref"] for r in store.intake_rows()] == ["a", "b", "c"]


def test_a_failed_plan_accepts_nothing(store: Store) -> None:
    def broken(new: frozenset[str]) -> list[IntakeRequest]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.accept_deliveries(["hubspot:1:a"], broken, NOW)
    new, _ = store.accept_deliveries(["hubspot:1:a"], lambda n: [req("a")], NOW)
    assert new == frozenset({"hubspot:1:a"})


def test_claims_are_exclusive_until_the_lease_runs_out(store: Store) -> None:
    store.add_intake([req("1"), req("2"), req("3")], NOW)
    first = store.claim_intake("w1", NOW, lease_seconds=60, limit=2)
    second = store.claim_intake("w2", NOW, lease_seconds=60)
    assert [i.ref for i in first] == ["1", "2"]
    assert [i.ref for i in second] == ["3"]
    assert store.claim_intake("w3", NOW + timedelta(seconds=59), lease_seconds=60) == []
    # w1 died: its lease ran out, another worker takes over.
    taken_over = store.claim_intake("w3", NOW + timedelta(seconds=61), lease_seconds=60)
    assert sorted(i.ref for i in taken_over) == ["1", "2", "3"]
    assert taken_over[0].correlation_id == "cid-1" and taken_over[0].accepted_at == NOW


def test_finish_release_and_shutdown_release(store: Store) -> None:
    store.add_intake([req("1"), req("2"), req("3")], NOW)
    items = store.claim_intake("w1", NOW, lease_seconds=60)
    store.finish_intake([items[0].id], NOW)
    store.release_intake([items[1].id], NOW, error="TransientError: 503", count_attempt=True)
    assert store.release_intake_claims("w1", NOW) == 1
    assert store.count_pending_intake() == 2
    again = {i.ref: i for i in store.claim_intake("w2", NOW, lease_seconds=60)}
    assert sorted(again) == ["2", "3"]
    assert (again["2"].attempts, again["3"].attempts) == (1, 0)
    store.finish_intake([again["2"].id], NOW, status="failed", error="gave up")
    store.finish_intake([again["3"].id], NOW)
    assert [r["status"] for r in store.intake_rows()] == ["done", "failed", "done"]
    assert store.count_pending_intake() == 0


def test_purge_removes_old_done_rows_and_delivery_ids(store: Store) -> None:
    store.accept_deliveries(["hubspot:1:a"], lambda n: [req("a")], NOW)
    item = store.claim_intake("w", NOW, lease_seconds=60)[0]
    store.finish_intake([item.id], NOW)
    assert store.purge_intake(NOW) == 0
    assert store.purge_intake(NOW + timedelta(days=8)) == 2
    new, _ = store.accept_deliveries(["hubspot:1:a"], lambda n: [], NOW + timedelta(days=8))
    assert new == frozenset({"hubspot:1:a"})
