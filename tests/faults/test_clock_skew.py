"""Shared limits run on PostgreSQL's clock: a replica whose clock is 90 s off still shares one rate window,
respects another's poll lease and leaves another's outbox claim alone.

Each replica used to stamp the shared window with its own clock: one running 90 s ahead saw the other's calls
as long gone and spent a second window's worth of calls at once (issue 19, should-fix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connector.adapters.base import NoGuard
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.config import HubSpotSettings, example_config_path, load_settings
from connector.core.clock import Clock, SystemClock
from connector.core.models import Patch
from connector.pipeline.stages import write
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.ratelimit import guard_factory
from connector.state.store import Store
from tests.pipeline.conftest import settings_for

CAPACITY = 5
SKEW = timedelta(seconds=90)


class WouldWaitError(Exception):
    pass


class SkewedClock(SystemClock):
    """This host's real clock, `offset` off; a process that would have to wait records the wait and stops."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset
        self.waits: list[float] = []

    def now(self) -> datetime:
        return super().now() + self.offset

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        raise WouldWaitError


def test_a_replica_90_s_ahead_shares_the_rate_window_with_the_others(pg_store: str) -> None:
    settings = load_settings(example_config_path(), {
        "store": {"url": pg_store},
        "hubspot": {"enabled": True, "base_url": "https://127.0.0.1:9", "access_token": "t", "requests_per_10s": CAPACITY},
    })
    on_time, ahead = SkewedClock(timedelta(0)), SkewedClock(SKEW)
    with Store.open(pg_store) as store_a, Store.open(pg_store, migrate=False) as store_b:
        replica_a = guard_factory(store_a, settings, on_time)("hubspot")
        replica_b = guard_factory(store_b, settings, ahead)("hubspot")
        for _ in range(CAPACITY):
            replica_a.before("/crm/v3/objects/contacts/batch/read", "read")
        try:
            replica_b.before("/crm/v3/objects/contacts/batch/read", "read")
        except WouldWaitError:
            pass
    assert on_time.waits == []
    # B must wait for A's calls to leave the (10 s + margin) window: not a call more than CAPACITY in it.
    assert len(ahead.waits) == 1 and ahead.waits[0] > 5, ahead.waits


def test_a_replica_90_s_ahead_does_not_take_over_a_live_poll_lease(pg_store: str) -> None:
    from connector.runners.leases import Replica, take_poll_lease

    name = "poll:hubspot:contacts:changed"
    with Store.open(pg_store) as store_a, Store.open(pg_store, migrate=False) as store_b:
        assert take_poll_lease(store_a, name, Replica(worker="a", lease_seconds=60), SkewedClock(timedelta(0)))
        # B's clock says A's 60 s lease ran out 30 s ago; the database's says it has a minute to go.
        assert not take_poll_lease(store_b, name, Replica(worker="b", lease_seconds=60), SkewedClock(SKEW))
        lease = store_b.get_lease(name)
    assert lease is not None and lease.holder == "a"


# --- outbox claims and the claim fence ----------------------------------------------------------------------

OWNER = "hubspot_owner_id"
LEASE = 60


class Hooks(NoGuard):
    """A guard that runs the other replica while this one's write request waits to leave (`before`) or right after
    its response, before the outcome is recorded (`after`); `die` makes the request never leave (a killed worker)."""

    def __init__(self, *, before: Callable[[], Any] | None = None, after: Callable[[], Any] | None = None, die: bool = False) -> None:
        self.hooks = {"before": before, "after": after}
        self.die = die

    def _run(self, when: str) -> None:
        hook, self.hooks[when] = self.hooks[when], None
        if hook is not None:
            hook()

    def before(self, endpoint: str, kind: str) -> None:
        if kind == "write":
            if self.die:
                raise KilledError
            self._run("before")

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        if "batch_update" in endpoint:
            self._run("after")


class KilledError(Exception):
    pass


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=5, contacts=4, companies=1, leads=0) as sb:
        yield sb


def _queue_owner_write(store: Store, sandbox: HubSpotSandbox, now: datetime) -> str:
    rid = next(r for r in sandbox.records_ids("contacts") if not (sandbox.get_record("contacts", r) or {}).get(OWNER))
    owner = next(o["id"] for o in sandbox.owners() if not o["archived"])
    store.enqueue([Patch("hubspot", "contacts", rid, changes={"owner_id": owner}, current={"owner_id": None})], now)
    return rid


def _flush(store: Store, settings: HubSpotSettings, clock: Clock, worker: str, guard: NoGuard | None = None) -> int:
    """One replica's outbox flush (stages.write, as the runners call it); the number of results it recorded."""
    adapter = HubSpotAdapter(settings, guard=guard, clock=clock)
    return len(write(store, adapter, clock.now(), worker=worker, lease_seconds=LEASE, clock=clock))


def _sent(sandbox: HubSpotSandbox, rid: str) -> int:
    return sum(1 for c in sandbox.change_log if c.record_id == rid and OWNER in c.properties)


def test_a_replica_90_s_ahead_does_not_take_a_claimed_write(pg_store: str, sandbox: HubSpotSandbox) -> None:
    settings = settings_for(pg_store, sandbox).hubspot
    on_time, ahead = SkewedClock(timedelta(0)), SkewedClock(SKEW)
    b_results: list[int] = []
    with Store.open(pg_store) as store_a, Store.open(pg_store, migrate=False) as store_b:
        rid = _queue_owner_write(store_a, sandbox, on_time.now())
        # A claimed the write for 60 s; while its request waits to leave, B flushes. B's clock says the claim ran
        # out 30 s ago, the database's that it has a minute to go: B claims nothing and sends nothing.
        hooks = Hooks(before=lambda: b_results.append(_flush(store_b, settings, ahead, "b")))
        assert _flush(store_a, settings, on_time, "a", hooks) == 1
        assert store_a.count_pending_outbox() == {}
    assert b_results == [0]
    assert _sent(sandbox, rid) == 1


def test_a_replica_90_s_behind_keeps_its_claim_through_the_fence(pg_store: str, sandbox: HubSpotSandbox) -> None:
    settings = settings_for(pg_store, sandbox).hubspot
    behind, on_time = SkewedClock(-SKEW), SkewedClock(timedelta(0))
    b_results: list[int] = []
    with Store.open(pg_store) as store_a, Store.open(pg_store, migrate=False) as store_b:
        rid = _queue_owner_write(store_a, sandbox, on_time.now())
        # A's claim and the fence's renewal right before its request leaves run on the database's time: on A's
        # own clock both would end 30 s in the past, and B would take the write A is sending.
        hooks = Hooks(after=lambda: b_results.append(_flush(store_b, settings, on_time, "b")))
        assert _flush(store_a, settings, behind, "a", hooks) == 1
    assert b_results == [0]
    assert _sent(sandbox, rid) == 1


def test_a_killed_replicas_claim_is_taken_over_when_it_runs_out_on_the_databases_time(
    pg_store: str, sandbox: HubSpotSandbox
) -> None:
    settings = settings_for(pg_store, sandbox).hubspot
    on_time, ahead = SkewedClock(timedelta(0)), SkewedClock(SKEW)
    with Store.open(pg_store) as store_a, Store.open(pg_store, migrate=False) as store_b:
        rid = _queue_owner_write(store_a, sandbox, on_time.now())
        with pytest.raises(KilledError):  # A claimed the write and died before its request left
            _flush(store_a, settings, on_time, "a", Hooks(die=True))
        assert _flush(store_b, settings, ahead, "b") == 0
        assert _sent(sandbox, rid) == 0
        # 61 s pass on the database (the claim's expiry moved back, not a 61 s sleep): now B takes the write over.
        engine = sa.create_engine(pg_store)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET claimed_until = claimed_until - interval '61 seconds'"))
        engine.dispose()
        assert _flush(store_b, settings, ahead, "b") == 1
        assert store_b.count_pending_outbox() == {}
    assert _sent(sandbox, rid) == 1
