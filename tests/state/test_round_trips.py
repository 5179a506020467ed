"""What coordination costs in round trips to the state store: a backfill page, the shared clock, the quota rows.

Issue 18: replicas on one PostgreSQL share the poll lease, outbox claims, the rate limiter and the daily budget
through the store, and each of those used to cost its own transactions per call. These bounds make a regression
show as a number, not as a slower benchmark on a busy machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.config import example_config_path, load_settings
from connector.core.clock import PinnedClock, SystemClock
from connector.runners.jobs import backfill, make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state import db as db_module
from connector.state.db_clock import REREAD_SECONDS, DbClock
from connector.state.quota import LimiterState
from connector.state.ratelimit import guard_factory
from connector.state.store import Store

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday afternoon: the pinned instant of the run
LEADS = 600  # six list pages of 100
# Per page of 100 leads, everything included: the list call's and the batch update's limiter and budget rows,
# the lease renewal and cursor, the page's event aggregates and lead states, the routing transaction (locks,
# counters, decisions, lead states, outbox), the write's claim, fence and completion, and the run's start-up
# spread over its six pages. Measured 2026-12-05: 43 statements and 21 transactions per page on PostgreSQL and
# on SQLite; before the shared clock was carried forward and the quota rows locked in one statement, ≈ 58 and 31.
STATEMENTS_PER_PAGE = 52
TRANSACTIONS_PER_PAGE = 26


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def test_a_backfill_page_costs_a_bounded_number_of_statements_and_transactions(store: Store, store_url: str) -> None:
    clock = PinnedClock(T0)  # real time from a pinned start: on PostgreSQL the shared clock is the database's
    with HubSpotSandbox(seed=42, contacts=LEADS, clock=clock) as sandbox:
        settings = load_settings(example_config_path(), {
            "store": {"url": store_url}, "routing": {"when_unavailable": "fallback"},
            "hubspot": {"enabled": True, "base_url": sandbox.base_url, "access_token": sandbox.token, "safety_lag_seconds": 0,
                        "requests_per_10s": 1000},  # the shared limiter and budget run on every call, and never wait
        })
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        with store.round_trips() as trips:
            summary = backfill(settings, store, adapters, clock)
    assert summary.fetched == LEADS and summary.written > 0 and summary.aborted is None
    assert summary.pages == LEADS // 100
    per_page = trips.statements / summary.pages, trips.transactions / summary.pages
    assert per_page[0] <= STATEMENTS_PER_PAGE and per_page[1] <= TRANSACTIONS_PER_PAGE, (per_page, trips.by_kind.most_common(12))
    # The shared clock is read once per REREAD_SECONDS, not at every claim, fence and limiter call.
    assert trips.by_kind["SELECT clock_timestamp()"] <= 3, trips.by_kind


def test_the_database_clock_is_read_once_and_carried_forward_by_the_monotonic_clock(pg_url: str) -> None:
    class Ahead(SystemClock):
        """This host's clock, 90 s ahead of the database's."""

        def now(self) -> datetime:
            return super().now() + timedelta(seconds=90)

    local = Ahead()
    with Store.open(pg_url) as store, store.round_trips() as trips:
        shared = store.shared_clock(local)
        assert isinstance(shared, DbClock)
        stamps = [shared.now() for _ in range(50)]
        truth = store.shared_clock(SystemClock()).now()  # another local clock has no reading yet: it reads the database
    assert trips.by_kind["SELECT clock_timestamp()"] == 2  # one for the 50 stamps, one for `truth`
    assert stamps == sorted(stamps)
    # On the database's timeline (not 90 s ahead), to within a round trip and the time the stamps took.
    assert abs(truth - stamps[-1]) < timedelta(milliseconds=200), (truth, stamps[-1])
    assert REREAD_SECONDS <= 10


def test_the_database_clock_is_read_again_after_the_reread_interval(pg_url: str) -> None:
    class Stepped(SystemClock):
        """Monotonic time moved on by hand: how long ago the last reading was."""

        def __init__(self) -> None:
            self.mono = 1000.0

        def monotonic(self) -> float:
            return self.mono

    local = Stepped()
    with Store.open(pg_url) as store, store.round_trips() as trips:
        shared = store.shared_clock(local)
        first = shared.now()
        local.mono += REREAD_SECONDS / 2
        carried = shared.now()
        local.mono += REREAD_SECONDS
        shared.now()
    assert carried - first == timedelta(seconds=REREAD_SECONDS / 2)
    assert trips.by_kind["SELECT clock_timestamp()"] == 2


def test_a_quota_row_costs_a_lock_and_an_update_and_no_update_when_nothing_changed(store: Store) -> None:
    def spend(state: LimiterState) -> tuple[LimiterState, int]:
        return LimiterState((*state.recent_calls, (len(state.recent_calls), 1)), state.blocked_until_us), len(state.recent_calls)

    assert store.update_limiter("hubspot:acct", spend) == 0  # the first call creates the row
    with store.round_trips() as trips:
        assert store.update_limiter("hubspot:acct", spend) == 1
    assert trips.statements == 2 and trips.transactions == 1, trips.by_kind  # SELECT ... FOR UPDATE, UPDATE
    with store.round_trips() as trips:
        assert store.update_limiter("hubspot:acct", lambda state: (state, len(state.recent_calls))) == 2
    assert trips.statements == 1 and trips.by_kind["UPDATE rate_limits"] == 0


def test_a_clock_that_cannot_key_a_reading_reads_the_database_every_time(pg_url: str) -> None:
    @dataclass
    class Unhashable(SystemClock):
        """A mutable dataclass: no hash, so no remembered reading."""

        name: str = "local"

    with Store.open(pg_url) as store, store.round_trips() as trips:
        shared = store.shared_clock(Unhashable())
        first, second = shared.now(), shared.now()
    assert first <= second
    assert trips.by_kind["SELECT clock_timestamp()"] == 2


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(pg_url) as store:
        store.get_cursor("hubspot", "contacts", "all")  # a pooled connection, just used
        with store.round_trips() as trips:
            for _ in range(5):
                store.get_cursor("hubspot", "contacts", "all")
        assert trips.checkouts == 5 and trips.pings == 0  # in use a moment ago: no ping
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every reuse now counts as idle
        with store.round_trips() as trips:
            store.get_cursor("hubspot", "contacts", "all")
        assert trips.pings == 1
        assert trips.round_trips == trips.statements + 2 * trips.transactions + 1


def test_a_dead_connection_found_by_the_idle_ping_is_replaced_without_an_error(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with Store.open(pg_url) as store:
            store.set_cursor("hubspot", "contacts", "all", "42", T0)
            with admin.connect() as conn:  # cut every other connection to the database (a restart, a proxy timeout)
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            assert store.get_cursor("hubspot", "contacts", "all") == "42"
    finally:
        admin.dispose()
