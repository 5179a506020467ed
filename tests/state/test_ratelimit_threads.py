"""The shared limiter under a run's reader and writer threads: never more than R in any window, on a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.core.clock import FrozenClock
from connector.state import ratelimit
from connector.state.ratelimit import DailyBudget, RateLimiter, StoreGuard
from connector.state.store import LimiterState, Store

START = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
S = 1_000_000


class SharedClock(FrozenClock):
    """One fake time for every thread: a sleep moves it on for all (never backwards), under a lock."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return super().now()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            FrozenClock.sleep(self, max(seconds, 0.0))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def test_threads_sharing_one_limiter_never_pass_capacity_in_any_window(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    capacity, window, threads, each = 7, 2.0, 6, 12
    clock = SharedClock(START)
    limiter = RateLimiter(store, "hubspot:portal-9", capacity=capacity, per_seconds=window, clock=clock)
    taken: list[int] = []
    lock = threading.Lock()
    real_take = ratelimit.take

    def recording_take(
        state: LimiterState, *, n: int, now_us: int, capacity: int, window_us: int, stamp_us: int | None = None,
    ) -> tuple[LimiterState, int]:
        new, wait = real_take(state, n=n, now_us=now_us, capacity=capacity, window_us=window_us, stamp_us=stamp_us)
        if wait == 0:
            with lock:
                taken.append(now_us)
        return new, wait

    monkeypatch.setattr(ratelimit, "take", recording_take)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(each):
                limiter.acquire()
        except BaseException as exc:  # collected for the assertion on the main thread
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert len(taken) == threads * each
    times = sorted(taken)
    window_us = round(window * S)
    assert all(times[i + capacity] - times[i] >= window_us for i in range(len(times) - capacity)), "never more than R per window"


def test_observed_remaining_is_merged_into_the_next_acquire_without_a_round_trip_of_its_own(store: Store) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:1", capacity=10, per_seconds=10, clock=clock)
    rounds: list[int] = []
    real = store.update_limiter

    def counted(account: str, fn):  # type: ignore[no-untyped-def]
        rounds.append(1)
        return real(account, fn)

    store.update_limiter = counted  # type: ignore[method-assign]
    limiter.observe_remaining(remaining=2, max_=10, interval_ms=10_000)  # the CRM counted 8 calls we never saw
    assert rounds == []
    assert limiter.acquire() == 0.0 and limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(10.0), "the 8 calls the CRM saw fill the window with ours"


def test_the_guard_writes_the_crms_daily_usage_at_most_once_a_second(store: Store) -> None:
    clock = FrozenClock(START)
    budget = DailyBudget(store, "salesforce:org", daily_limit=1000, share=1.0, clock=clock)
    guard = StoreGuard(limiter=None, budget=budget, monotonic=clock.monotonic)
    guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=100/1000"})
    guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=400/1000"})  # within the second: not written
    assert budget.remaining() == 900
    clock.advance(1.0)
    guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=450/1000"})
    assert budget.remaining() == 550
    guard.after("composite", 403, {"Sforce-Limit-Info": "api-usage=1000/1000"})  # an error answer: at once
    assert budget.remaining() == 0


def test_waited_seconds_add_up_across_threads(store: Store) -> None:
    clock = SharedClock(START)
    limiter = RateLimiter(store, "hubspot:w", capacity=1, per_seconds=1.0, clock=clock)
    guard = StoreGuard(limiter=limiter, budget=DailyBudget(store, "hubspot:w", daily_limit=10_000, share=1.0, clock=clock))
    pool = [threading.Thread(target=lambda: [guard.before("contacts.list", "read") for _ in range(5)]) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    # 20 calls, one a second: time moved ≥ 19 s, only by the threads' waits, and every wait was counted.
    moved = (clock.now() - START).total_seconds()
    assert moved >= 19.0 - 1e-6
    assert guard.waited_seconds == pytest.approx(moved)


def test_searches_keep_a_margin_for_jitter_inside_hubspots_one_second_window(store: Store) -> None:
    """Calls 80 ± 20 ms in transit arrive up to 40 ms out of step: a sixth search 1.0 s after the first could land
    inside the CRM's second (a 429), so the connector spaces them by the window plus a margin."""
    from connector.config import example_config_path, load_settings
    from connector.state.ratelimit import SEARCH_WINDOW_MARGIN_SECONDS, guard_factory

    settings = load_settings(example_config_path(), {"store": {"url": store.url}, "hubspot": {
        "enabled": True, "base_url": "http://127.0.0.1:9", "access_token": "t", "search_requests_per_second": 5}})
    clock = FrozenClock(START)
    guard = guard_factory(store, settings, clock)("hubspot")
    stamps = []
    for _ in range(15):
        guard.before("contacts.search", "search")
        stamps.append(clock.monotonic())
    assert SEARCH_WINDOW_MARGIN_SECONDS >= 0.04
    assert all(stamps[i + 5] - stamps[i] >= 1.0 + SEARCH_WINDOW_MARGIN_SECONDS - 1e-9 for i in range(len(stamps) - 5))


def test_an_answered_call_leaves_the_window_counted_from_its_answer_not_a_guess(store: Store) -> None:
    """Recorded at send + the in-transit guess until answered, then at the answer: the next window's first call
    goes a window after the answer (never earlier: the CRM counted the call before answering), and a call that is
    never answered keeps the guess."""
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:t", capacity=2, per_seconds=10, clock=clock, in_transit_seconds=0.25)
    limiter.acquire()  # t = 0, answered at 0.08
    clock.advance(0.08)
    limiter.completed()
    limiter.acquire()  # t = 0.08, never answered: recorded at 0.33
    clock.advance(1.0)
    waited = limiter.acquire()  # the first call leaves the window at 0.08 + 10
    assert waited == pytest.approx(10.08 - 1.08)
    assert limiter.acquire() == pytest.approx(10.33 - 10.08)  # the unanswered one at 0.08 + 0.25 + 10


def test_answers_are_merged_into_the_next_acquire_without_a_round_trip_of_their_own(store: Store) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(store, "hubspot:u", capacity=5, per_seconds=10, clock=clock, in_transit_seconds=0.25)
    limiter.acquire()
    clock.advance(0.1)
    with store.round_trips() as trips:
        limiter.completed()
        limiter.completed()  # a second answer for the same call changes nothing
    assert trips.round_trips == 0
    limiter.acquire()
    state = store.update_limiter("hubspot:u", lambda s: (s, s))
    assert sorted(t for t, _ in state.recent_calls) == [
        (int((START.timestamp() + 0.1) * S)), int((START.timestamp() + 0.1) * S) + int(0.25 * S)]


def test_the_crms_daily_count_is_taken_over_with_the_calls_other_threads_still_have_in_flight(store: Store) -> None:
    """A CRM figure read from one answer cannot hold another thread's call sent but not arrived: it is added, and a
    block counted ahead is dropped (counted again from the CRM's figure), so the shared budget never undercounts."""
    clock = FrozenClock(START)
    budget = DailyBudget(store, "salesforce:org-9", daily_limit=1000, share=1.0, clock=clock)
    guard = StoreGuard(limiter=None, budget=budget)
    started = threading.Event()
    go_on = threading.Event()

    def other_thread() -> None:
        guard.before("query", "read")  # sent; its answer comes after the main thread's
        started.set()
        go_on.wait(5)
        guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=42/1000"})

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert started.wait(5)
    guard.before("query", "read")
    guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=40/1000"})
    assert budget.remaining() == 1000 - 41  # the CRM's 40, plus the other thread's call in flight
    go_on.set()
    worker.join()
    assert budget.remaining() == 1000 - 42  # its own answer: the CRM's figure, nothing in flight


def test_a_call_that_never_got_an_answer_is_not_in_flight_forever(store: Store) -> None:
    clock = FrozenClock(START)
    budget = DailyBudget(store, "salesforce:org-8", daily_limit=1000, share=1.0, clock=clock)
    guard = StoreGuard(limiter=None, budget=budget)
    guard.before("query", "read")  # a dropped connection: no answer, no `after`
    guard.before("query", "read")  # the retry
    guard.after("query", 200, {"Sforce-Limit-Info": "api-usage=7/1000"})
    assert budget.remaining() == 1000 - 7
