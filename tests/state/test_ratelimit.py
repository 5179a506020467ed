"""Shared rate limiter and daily budget: one window per CRM account across stores (processes), FrozenClock only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.core.clock import FrozenClock
from connector.core.errors import BudgetExhaustedError
from connector.state.ratelimit import DailyBudget, RateLimiter, epoch_us, take
from connector.state.store import LimiterState, Store

START = datetime(2025, 3, 10, 23, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


@pytest.fixture
def second_store(store: Store, store_url: str) -> Iterator[Store]:
    """Another process's view of the same database."""
    with Store.open(store_url, migrate=False) as s:
        yield s


S = 1_000_000  # microseconds per second


@pytest.mark.parametrize(
    ("calls", "blocked", "n", "now", "wait"),
    [
        ((), 0, 1, 100 * S, 0),
        (((95 * S, 2),), 0, 1, 100 * S, 0),
        (((95 * S, 3),), 0, 1, 100 * S, 5 * S),  # full: wait for the 95 s calls to leave the 10 s window
        (((91 * S, 1), (95 * S, 2)), 0, 1, 100 * S, 1 * S),
        (((91 * S, 1), (95 * S, 2)), 0, 2, 100 * S, 5 * S),
        (((89 * S, 3),), 0, 3, 100 * S, 0),  # expired calls are pruned
        ((), 130 * S, 1, 100 * S, 30 * S),  # a 429 block wins over free capacity
    ],
)
def test_take_is_an_exact_sliding_window(calls: tuple[tuple[int, int], ...], blocked: int, n: int, now: int, wait: int) -> None:
    state, got = take(LimiterState(calls, blocked), n=n, now_us=now, capacity=3, window_us=10 * S)
    assert got == wait
    assert all(t > now - 10 * S for t, _ in state.recent_calls)
    if wait == 0:
        assert (now, n) in state.recent_calls


def test_acquire_within_capacity_never_waits(store: Store) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:1", capacity=3, per_seconds=10, clock=clock)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []


def test_acquire_blocks_until_the_oldest_call_leaves_the_window(store: Store) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:1", capacity=3, per_seconds=10, clock=clock)
    limiter.acquire(3)
    clock.advance(4)
    assert limiter.acquire() == pytest.approx(6.0)
    assert clock.now() == START + timedelta(seconds=10)


def test_no_window_ever_holds_more_than_capacity(store: Store) -> None:
    """A token bucket of 190 refilled at 19/s would let ~380 through in 10 s; HubSpot's window is rolling."""
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:1", capacity=4, per_seconds=1.5, clock=clock)
    times = []
    for _ in range(20):
        limiter.acquire()
        times.append(epoch_us(clock.now()))
    assert all(times[i + 4] - times[i] >= 1_500_000 for i in range(len(times) - 4))
    assert times[-1] - times[0] == 4 * 1_500_000  # and it never waits longer than it must


def test_two_processes_share_one_window(store: Store, second_store: Store) -> None:
    clock_a, clock_b = FrozenClock(START), FrozenClock(START)
    a = RateLimiter(store, "hubspot:portal-1", capacity=3, per_seconds=10, clock=clock_a)
    b = RateLimiter(second_store, "hubspot:portal-1", capacity=3, per_seconds=10, clock=clock_b)
    other_account = RateLimiter(second_store, "salesforce:org-1", capacity=3, per_seconds=10, clock=clock_b)
    a.acquire(2)
    b.acquire()
    assert other_account.acquire(3) == 0.0
    assert b.acquire() == pytest.approx(10.0)
    assert clock_b.slept == [pytest.approx(10.0)]
    clock_a.advance(10)
    assert a.acquire(2) == pytest.approx(0.0)


def test_a_429_penalty_holds_every_process(store: Store, second_store: Store) -> None:
    clock_a, clock_b = FrozenClock(START), FrozenClock(START)
    a = RateLimiter(store, "hubspot:portal-1", capacity=100, per_seconds=10, clock=clock_a)
    b = RateLimiter(second_store, "hubspot:portal-1", capacity=100, per_seconds=10, clock=clock_b)
    a.penalize(30)
    a.penalize(5)  # a shorter Retry-After never shortens a block already in force
    assert b.acquire() == pytest.approx(30.0)
    assert a.acquire() == pytest.approx(30.0)


def test_observed_remaining_tightens_but_never_loosens(store: Store) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:1", capacity=10, per_seconds=10, clock=clock)
    limiter.observe_remaining(remaining=100, max_=100, interval_ms=10_000)  # generous: no change
    limiter.observe_remaining(remaining=10, max_=100, interval_ms=10_000)  # 90 % used elsewhere
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(10.0)
    limiter.observe_remaining(remaining=0, max_=0, interval_ms=10_000)  # a header without a max is ignored
    assert limiter.acquire() == 0.0


def test_limiter_rejects_impossible_requests(store: Store) -> None:
    clock = FrozenClock(START)
    with pytest.raises(ValueError, match="capacity"):
        RateLimiter(store, "hubspot:1", capacity=0, per_seconds=10, clock=clock)
    limiter = RateLimiter(store, "hubspot:1", capacity=3, per_seconds=10, clock=clock)
    with pytest.raises(ValueError, match="cannot acquire 4"):
        limiter.acquire(4)


def test_daily_budget_stops_at_the_share_and_resumes_next_day(store: Store) -> None:
    clock = FrozenClock(START)
    budget = DailyBudget(store, "salesforce:org-1", daily_limit=11, share=0.5, clock=clock)
    for _ in range(5):
        budget.spend()
    assert budget.remaining() == 0
    with pytest.raises(BudgetExhaustedError) as info:
        budget.spend()
    assert info.value.crm == "salesforce"
    assert info.value.resumes_at == "2025-03-11T00:00:00+00:00"
    assert "5 of 5 calls" in str(info.value)
    clock.advance(3600)
    budget.spend()
    assert budget.remaining() == 4


def test_daily_budget_is_shared_and_counts_nothing_when_refused(store: Store, second_store: Store) -> None:
    clock = FrozenClock(START)
    a = DailyBudget(store, "hubspot:portal-1", daily_limit=10, share=1.0, clock=clock)
    b = DailyBudget(second_store, "hubspot:portal-1", daily_limit=10, share=1.0, clock=clock)
    a.spend(6)
    b.spend(2)
    with pytest.raises(BudgetExhaustedError):
        b.spend(3)
    assert a.remaining() == 2
    b.spend(2)
    assert a.remaining() == 0


def test_observed_usage_from_the_crm_is_the_truth(store: Store) -> None:
    clock = FrozenClock(START)
    budget = DailyBudget(store, "salesforce:org-1", daily_limit=1000, share=0.5, clock=clock)
    budget.spend(3)
    budget.observe_usage(used=40, limit=100)  # Sforce-Limit-Info: api-usage=40/100
    assert budget.remaining() == 10
    budget.spend(10)
    with pytest.raises(BudgetExhaustedError):
        budget.spend()


def test_budget_day_rolls_at_midnight_in_the_account_time_zone(store: Store) -> None:
    clock = FrozenClock(START)  # 19:00 in New York
    budget = DailyBudget(store, "hubspot:portal-2", daily_limit=2, share=1.0, clock=clock, tz=ZoneInfo("America/New_York"))
    budget.spend(2)
    clock.advance(2 * 3600)  # 01:00 UTC next day, still 21:00 in New York
    with pytest.raises(BudgetExhaustedError) as info:
        budget.spend()
    assert info.value.resumes_at == "2025-03-11T04:00:00+00:00"
    clock.advance(3 * 3600)  # 00:00 in New York
    budget.spend()
    assert budget.remaining() == 1



class WouldWaitError(Exception):
    pass


class StoppedClock(FrozenClock):
    """Time stands still, and a process that would have to wait stops instead."""

    def sleep(self, seconds: float) -> None:
        raise WouldWaitError


def test_concurrent_processes_never_overspend_the_window(store: Store, store_url: str) -> None:
    """Two processes racing for one account at one instant: exactly `capacity` calls go through in all."""
    import threading

    capacity = 10
    taken: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        count = 0
        try:
            with Store.open(store_url, migrate=False) as s:
                limiter = RateLimiter(s, "hubspot:portal-1", capacity=capacity, per_seconds=10, clock=StoppedClock(START))
                while True:
                    limiter.acquire()
                    count += 1
        except WouldWaitError:
            taken.append(count)
        except BaseException as exc:  # collected for the assertion in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(taken) == 2 and sum(taken) == capacity
