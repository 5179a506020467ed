"""A replica that does not hold the poll lease helps with the poller's writes instead of contending for the lease."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from datetime import UTC, datetime

import pytest

from connector.config import example_config_path, load_settings
from connector.core.clock import FrozenClock
from connector.core.models import FieldDecision, Patch
from connector.runners.jobs import make_adapters
from connector.runners.leases import (
    HELP_IDLE_SECONDS, HELP_LEASE_SECONDS, HELPERS_LOOK_SECONDS, Replica, help_lease_name, help_while_held, helpers_present,
    poll_lease_name,
)
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LEASE = poll_lease_name("hubspot", "contacts", "all")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def score_patch(record_id: str) -> Patch:
    return Patch(crm="hubspot", object_type="contacts", record_id=record_id, changes={"score": 55.0}, current={"score": None},
                 reasons={}, decisions={"score": FieldDecision.WRITE})


def test_a_helper_announces_itself_and_sends_whole_write_batches_while_the_poller_holds_the_lease(
    store: Store, store_url: str,
) -> None:
    clock = FrozenClock(T0)
    with HubSpotSandbox(seed=42, contacts=260, clock=clock) as sandbox:
        settings = load_settings(example_config_path(), {"store": {"url": store_url}, "hubspot": {
            "enabled": True, "base_url": sandbox.base_url, "access_token": sandbox.token, "safety_lag_seconds": 0}})
        adapter = make_adapters(settings, clock=clock)["hubspot"]
        assert store.acquire_lease(LEASE, "poller", clock.now(), ttl_seconds=60)
        store.enqueue([score_patch(i) for i in sandbox.records_ids("contacts")[:250]], clock.now())
        announced: list[str | None] = []
        real_write = adapter.write

        def write(*args: Any, **kw: Any) -> Any:
            held = store.get_lease(help_lease_name(LEASE))
            announced.append(held.holder if held is not None else None)
            return real_write(*args, **kw)

        adapter.write = write  # type: ignore[method-assign]
        sent = help_while_held(store, adapter, LEASE, Replica(worker="helper", lease_seconds=60), clock, done=lambda: False)
        writes = sandbox.calls["contacts.batch_update"]
    # A backlog of two whole batches and a tail: the helper, announced while it sent them, sent both batches in
    # one call each (the poller's writers leave the stream's writes to an announced helper); the tail of 50 waits
    # for the poller's last flush (no partial batch while the stream runs). Done, the announcement is withdrawn.
    assert sent == 200 and writes == 2 and announced == ["helper"]
    assert store.count_pending_outbox() == {"hubspot": 50}
    assert store.get_lease(help_lease_name(LEASE)) is None
    # It looked again with growing pauses (no API call while idle), and stopped when the poller's lease ran out,
    # leaving the lease for the caller to take over: it never took it itself.
    assert clock.slept[:3] == [HELP_IDLE_SECONDS[0], HELP_IDLE_SECONDS[0] * 2, HELP_IDLE_SECONDS[0] * 4]
    assert max(clock.slept) == HELP_IDLE_SECONDS[1] and 60 <= sum(clock.slept) < 60 + HELP_IDLE_SECONDS[1] * 2
    lease = store.get_lease(LEASE)
    assert lease is not None and lease.holder == "poller"


def test_a_helper_returns_at_once_when_the_stream_is_complete_or_the_lease_is_free(store: Store, store_url: str) -> None:
    clock = FrozenClock(T0)
    with HubSpotSandbox(seed=42, contacts=10, clock=clock) as sandbox:
        settings = load_settings(example_config_path(), {"store": {"url": store_url}, "hubspot": {
            "enabled": True, "base_url": sandbox.base_url, "access_token": sandbox.token, "safety_lag_seconds": 0}})
        adapter = make_adapters(settings, clock=clock)["hubspot"]
        helper = Replica(worker="helper", lease_seconds=60)
        assert help_while_held(store, adapter, LEASE, helper, clock, done=lambda: False) == 0  # nobody holds it
        assert store.acquire_lease(LEASE, "poller", clock.now(), ttl_seconds=60)
        assert help_while_held(store, adapter, LEASE, helper, clock, done=lambda: True) == 0
        assert sum(sandbox.calls.values()) == 0
    assert clock.slept == []


def test_a_helper_leaves_rows_the_poller_claimed_and_never_sends_a_partial_batch(store: Store, store_url: str) -> None:
    clock = FrozenClock(T0)
    with HubSpotSandbox(seed=42, contacts=160, clock=clock) as sandbox:
        settings = load_settings(example_config_path(), {"store": {"url": store_url}, "hubspot": {
            "enabled": True, "base_url": sandbox.base_url, "access_token": sandbox.token, "safety_lag_seconds": 0}})
        adapter = make_adapters(settings, clock=clock)["hubspot"]
        assert store.acquire_lease(LEASE, "poller", clock.now(), ttl_seconds=60)
        store.enqueue([score_patch(i) for i in sandbox.records_ids("contacts")[:150]], clock.now())
        # The poller's writer has 60 rows in flight: 90 are left, less than one batch of 100.
        assert len(store.claim_outbox("hubspot", "poller", clock.now(), limit=60, lease_seconds=600)) == 60
        assert store.count_claimable_outbox("hubspot", clock.now()) == 90

        sent = help_while_held(store, adapter, LEASE, Replica(worker="helper", lease_seconds=60), clock, done=lambda: False)
        writes = sandbox.calls["contacts.batch_update"]
    assert sent == 0 and writes == 0
    assert store.count_pending_outbox() == {"hubspot": 150}


def test_the_poller_sees_a_helper_announced_by_another_replica_within_a_second_and_only_while_it_is_live(store: Store) -> None:
    clock = FrozenClock(T0)
    present = helpers_present(store, LEASE, Replica(worker="poller"), clock)
    assert present() is False  # nobody announced
    assert store.acquire_lease(help_lease_name(LEASE), "helper", clock.now(), ttl_seconds=HELP_LEASE_SECONDS)
    assert present() is False, "looked up at most every HELPERS_LOOK_SECONDS"
    clock.sleep(HELPERS_LOOK_SECONDS)
    assert present() is True
    clock.sleep(HELP_LEASE_SECONDS)  # the helper was killed: its announcement ran out
    assert present() is False
    mine = helpers_present(store, LEASE, Replica(worker="helper"), clock)
    assert store.acquire_lease(help_lease_name(LEASE), "helper", clock.now(), ttl_seconds=HELP_LEASE_SECONDS)
    assert mine() is False, "a replica does not defer to its own announcement"
