"""The per-account rate limiter and daily API budget, kept in the state store so every worker and replica shares them."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, tzinfo

from connector.core.clock import Clock
from connector.config import Settings
from connector.core.errors import BudgetExhaustedError
from connector.state.quota import BudgetState, LimiterState
from connector.state.store import Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def epoch_us(now: datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding)."""
    return (now - _EPOCH) // _US


def take(state: LimiterState, *, n: int, now_us: int, capacity: int, window_us: int, stamp_us: int | None = None) -> tuple[LimiterState, int]:
    """Try to take n calls from a sliding window: (new state, microseconds to wait; 0 = taken).

    A sliding-window log rather than a token bucket: HubSpot's burst limit is a rolling window
    (190 per 10 s, [crm-behaviour: HubSpot rate limits: burst and daily]), and a bucket of 190 refilled at 19/s lets ~380 through in 10 s.
    `stamp_us` (default `now_us`): the time the calls are recorded at when taken; later than now for calls the
    CRM may count only once they arrive.
    """
    horizon = now_us - window_us
    calls = tuple((t, k) for t, k in sorted(state.recent_calls) if t > horizon)
    kept = LimiterState(calls, state.blocked_until_us)
    if state.blocked_until_us > now_us:
        return kept, state.blocked_until_us - now_us
    used = sum(k for _, k in calls)
    if used + n <= capacity:
        return LimiterState((*calls, (now_us if stamp_us is None else stamp_us, n)), state.blocked_until_us), 0
    excess = used + n - capacity
    freed = 0
    for t, k in calls:
        freed += k
        if freed >= excess:
            # The call at t leaves the window at t + window_us; after that the n calls fit.
            return kept, t + window_us - now_us
    raise AssertionError("unreachable: n <= capacity, so emptying the window always frees enough")


class RateLimiter:
    """One limiter per CRM account (e.g. "hubspot:portal-123", "hubspot:portal-123:search"), shared through the store."""

    def __init__(
        self, store: Store, account: str, *, capacity: int, per_seconds: float, clock: Clock, in_transit_seconds: float = 0.0,
    ) -> None:
        """`in_transit_seconds` > 0: a call is recorded as counted that long after it leaves (the latest the CRM may
        count it, as far as anyone knows), and `completed()` moves the record to when its answer came back, which
        is after the CRM counted it whatever the network did. A window of the CRM's own length is then exact."""
        if capacity < 1:
            raise ValueError(f"rate limiter {account}: capacity must be at least 1, got {capacity}")
        if per_seconds <= 0:
            raise ValueError(f"rate limiter {account}: per_seconds must be positive, got {per_seconds}")
        self.account = account
        self.capacity = capacity
        self.per_seconds = per_seconds
        self._store = store
        self._clock = clock
        self._window_us = max(1, round(per_seconds * 1_000_000))
        # The CRM's own count seen in the latest response headers, not yet merged into the shared window:
        # (epoch µs when seen, calls used in this limiter's units). The next acquire merges it in the same
        # row update, so a response costs no extra store round trip. Threads share this limiter.
        self._observed: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._transit_us = max(0, round(in_transit_seconds * 1_000_000))
        # Calls answered since the last acquire, (recorded at, answered at): merged in the next acquire's row update,
        # so a call's answer costs no store round trip of its own. Until then the call keeps its in-transit record.
        self._answered: list[tuple[int, int]] = []
        self._sent = threading.local()  # this thread's call in flight: (recorded at, calls)

    def acquire(self, n: int = 1) -> float:
        """Block (via clock.sleep) until n calls are allowed for the account; returns the seconds waited."""
        if not 1 <= n <= self.capacity:
            raise ValueError(f"rate limiter {self.account}: cannot acquire {n} calls at once (capacity {self.capacity})")
        waited = 0.0
        while True:
            with self._lock:
                observed, self._observed = self._observed, None
                answered, self._answered = self._answered, []
            stamped: list[int] = []

            def step(state: LimiterState) -> tuple[LimiterState, int]:
                if observed is not None:
                    state = _with_observed(state, *observed, window_us=self._window_us)
                if answered:
                    state = _with_answered(state, answered)
                # The time is read under the row lock: a stamp read before waiting for the lock could be older
                # than calls another thread or process stamped meanwhile, and leave the window too early.
                now_us = epoch_us(self._clock.now())
                stamped[:] = [now_us + self._transit_us]
                return take(state, n=n, now_us=now_us, capacity=self.capacity, window_us=self._window_us, stamp_us=stamped[0])

            wait_us = self._store.update_limiter(self.account, step)
            if wait_us <= 0:
                if self._transit_us:
                    self._sent.call = (stamped[0], n)
                return waited
            # Sleep outside the row lock; another process may take the slot first, so try again.
            seconds = wait_us / 1_000_000
            self._clock.sleep(seconds)
            waited += seconds

    def completed(self) -> None:
        """This thread's last call was answered: its record moves from the in-transit guess to now (next acquire)."""
        call = getattr(self._sent, "call", None)
        if call is None:
            return
        self._sent.call = None
        with self._lock:
            self._answered.append((call[0], epoch_us(self._clock.now())))

    def penalize(self, retry_after: float) -> None:
        """After a 429: no process calls this account before now + retry_after seconds."""
        until_us = epoch_us(self._clock.now()) + math.ceil(max(0.0, retry_after) * 1_000_000)
        self._store.update_limiter(
            self.account,
            lambda state: (replace(state, blocked_until_us=max(state.blocked_until_us, until_us)), None),
        )

    def observe_remaining(self, remaining: int, max_: int, interval_ms: int) -> None:
        """Correct the shared window from X-HubSpot-RateLimit-Remaining / -Max / -Interval-Milliseconds.

        The CRM counts calls this store never saw (other apps' tokens, calls before a restart), so
        when it reports more used than the window holds, the difference is recorded as calls made
        now. It only ever tightens the view: a generous header never unlocks more than `capacity`.
        """
        if max_ <= 0 or interval_ms <= 0:
            return
        server_used = min(max_, max(0, max_ - remaining))
        # In this limiter's units: capacity may be configured below the CRM's max (a safety share).
        equivalent = math.ceil(server_used * self.capacity / max_)
        now_us = epoch_us(self._clock.now())
        with self._lock:
            # Kept for the next acquire (same row update); the highest count seen meanwhile is the tightest.
            if self._observed is None or equivalent >= self._observed[1]:
                self._observed = (now_us, equivalent)


def _with_answered(state: LimiterState, answered: list[tuple[int, int]]) -> LimiterState:
    """The window with each answered call's record (recorded at → answered at) moved; a record already gone (left
    the window, or the store was reset) is skipped. One record per answer, even when two share a stamp."""
    calls = list(state.recent_calls)
    for recorded, at in answered:
        for i, (t, k) in enumerate(calls):
            if t == recorded:
                calls[i] = (at, k)
                break
    return LimiterState(tuple(calls), state.blocked_until_us)


def _with_observed(state: LimiterState, seen_us: int, equivalent: int, *, window_us: int) -> LimiterState:
    """The window with the calls the CRM counted (as of `seen_us`) but this store never saw, recorded as made then."""
    horizon = seen_us - window_us
    missing = equivalent - sum(k for t, k in state.recent_calls if t > horizon)
    if missing <= 0:
        return state
    return LimiterState((*state.recent_calls, (seen_us, missing)), state.blocked_until_us)


class DailyBudget:
    """Counts an account's API calls per day in the store and stops at daily_limit × share.

    The day rolls at midnight in `tz` (HubSpot resets at midnight in the account's time zone,
    [crm-behaviour: HubSpot rate limits: burst and daily]). Salesforce counts a rolling 24 h
    [crm-behaviour: Salesforce API allocation: rolling 24 hours]; its `Sforce-Limit-Info` usage, fed to
    `observe_usage`, keeps the count honest where calendar days and the rolling window disagree.
    """

    def __init__(
        self, store: Store, account: str, *, daily_limit: int, share: float, clock: Clock, tz: tzinfo = UTC
    ) -> None:
        if daily_limit < 1:
            raise ValueError(f"daily budget {account}: daily_limit must be at least 1, got {daily_limit}")
        if not 0 < share <= 1:
            raise ValueError(f"daily budget {account}: share must be in (0, 1], got {share}")
        self.account = account
        self.daily_limit = daily_limit
        self.share = share
        self._store = store
        self._clock = clock
        self._tz = tz

    def _today(self) -> str:
        return self._clock.now().astimezone(self._tz).date().isoformat()

    def _allowance(self, state: BudgetState) -> int:
        # The CRM's own figure (Sforce-Limit-Info, X-HubSpot-RateLimit-Daily) beats the configured one.
        limit = state.observed_limit if state.observed_limit is not None else self.daily_limit
        return math.floor(limit * self.share)

    def _roll(self, state: BudgetState) -> BudgetState:
        today = self._today()
        return state if state.day == today else BudgetState(day=today, used=0, observed_limit=state.observed_limit)

    def resumes_at(self) -> datetime:
        """When the budget day rolls over (the next midnight in tz), as UTC."""
        tomorrow = self._clock.now().astimezone(self._tz).date() + timedelta(days=1)
        return datetime.combine(tomorrow, time(0), tzinfo=self._tz).astimezone(UTC)

    def spend(self, n: int = 1) -> None:
        """Count n calls, or raise BudgetExhaustedError (nothing counted) if they would pass the allowance."""
        self.reserve(n, at_least=n)

    def reserve(self, up_to: int, *, at_least: int = 1) -> int:
        """Count up to `up_to` calls about to be made (as many as the allowance leaves, at least `at_least`);
        how many were counted. BudgetExhaustedError (nothing counted) when not even `at_least` fit."""

        def charge(state: BudgetState) -> tuple[BudgetState, tuple[int, int, int]]:
            state = self._roll(state)
            allowance = self._allowance(state)
            n = min(up_to, allowance - state.used)
            if n < at_least:
                return state, (0, state.used, allowance)
            return replace(state, used=state.used + n), (n, state.used + n, allowance)

        counted, used, allowance = self._store.update_budget(self.account, charge)
        if counted:
            return counted
        raise BudgetExhaustedError(
                f"{self.account}: daily API budget used up ({used} of {allowance} calls, "
                f"{self.share:.0%} of the daily limit); writing stops and the cursor stays",
                crm=self.account.split(":", 1)[0],
                resumes_at=self.resumes_at().isoformat(),
            )

    def observe_usage(self, used: int, limit: int) -> None:
        """Take the CRM's count as the truth: Salesforce `Sforce-Limit-Info: api-usage=used/limit`,
        or HubSpot's X-HubSpot-RateLimit-Daily minus -Daily-Remaining. Both count every app of the account."""
        if limit <= 0 or used < 0:
            return

        def observe(state: BudgetState) -> tuple[BudgetState, None]:
            return BudgetState(day=self._today(), used=used, observed_limit=limit), None

        self._store.update_budget(self.account, observe)

    def remaining(self) -> int:
        """Calls left today under the allowance (never negative)."""

        def peek(state: BudgetState) -> tuple[BudgetState, int]:
            state = self._roll(state)
            return state, max(0, self._allowance(state) - state.used)

        return self._store.update_budget(self.account, peek)


# A burst-limited call is recorded as counted this long after it leaves until its answer comes back (then as
# counted at the answer): a call whose answer never comes (a dropped connection) keeps the quarter-second guess.
IN_TRANSIT_SECONDS = 0.25
# On the answered record, a margin for the clock reads alone: the CRM counted the call before it answered.
ANSWERED_MARGIN_SECONDS = 0.02
SEARCH_WINDOW_MARGIN_SECONDS = 0.06
USAGE_EVERY_SECONDS = 1.0  # the CRM's daily-usage header is written to the shared budget at most this often
BUDGET_BLOCK = 10  # daily-budget calls counted per store round trip by one guard (see StoreGuard._spend)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class StoreGuard:
    """The CallGuard adapters consult: the account's burst limiter (and search limiter) plus the daily budget.

    `after` reads what the CRM said about its own limits so every replica's shared view is corrected:
    HubSpot's X-HubSpot-RateLimit-* headers (absent on search responses,
    [crm-behaviour: HubSpot search has its own rate limit]) and Salesforce's Sforce-Limit-Info: api-usage=used/limit
    [crm-behaviour: Salesforce API allocation: rolling 24 hours]; a 429's Retry-After blocks every process.
    """

    def __init__(self, *, limiter: RateLimiter | None, budget: DailyBudget, search_limiter: RateLimiter | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.limiter = limiter
        self.search_limiter = search_limiter
        self.budget = budget
        self.waited_seconds = 0.0
        # Reader and writer threads share one guard (pipeline/concurrency.py): counters change under a lock.
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._usage_seen_at: float | None = None
        self._prepaid = 0  # calls counted in the shared budget ahead of being made (see _spend)
        # Held while the shared budget count changes hands (a block counted ahead, or the CRM's own count taken
        # over), so a thread never spends from a block the CRM's figure has just replaced.
        self._budget_lock = threading.Lock()
        self._in_flight = 0  # calls counted and sent, not answered yet: the CRM's figure may not hold them
        self._sending = threading.local()

    def before(self, endpoint: str, kind: str) -> None:
        self._spend()
        with self._lock:
            # One call in flight per thread at most: a call that never got an answer (a dropped connection)
            # is over when its thread makes the next one.
            if not getattr(self._sending, "call", False):
                self._sending.call = True
                self._in_flight += 1
        limiter = self.search_limiter if kind == "search" and self.search_limiter is not None else self.limiter
        if limiter is not None:
            waited = limiter.acquire(1)
            with self._lock:
                self.waited_seconds += waited

    def _spend(self) -> None:
        """Count one call in the daily budget: BUDGET_BLOCK calls are counted in one store round trip and
        used up in turn, never more than the allowance leaves (near the end, one at a time). A block not
        used up by the end of the process stays counted: the budget errs on the side of calls not made."""
        with self._budget_lock:
            if self._prepaid == 0:
                self._prepaid = self.budget.reserve(BUDGET_BLOCK)
            self._prepaid -= 1

    def _usage_due(self, status: int) -> bool:
        """Whether the CRM's daily count is written to the shared budget now: an error answer, the first
        one, or USAGE_EVERY_SECONDS since the last. The budget counts each call itself in between; the CRM's
        figure only corrects it, so one correction a second keeps it honest at a store round trip a second."""
        if status >= 400 or self._monotonic is None:
            return True
        now = self._monotonic()
        with self._lock:
            if self._usage_seen_at is not None and now - self._usage_seen_at < USAGE_EVERY_SECONDS:
                return False
            self._usage_seen_at = now
            return True

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        target = self.search_limiter if "search" in endpoint and self.search_limiter is not None else self.limiter
        if target is not None:
            target.completed()  # answered: the CRM has counted the call by now
        with self._lock:
            if getattr(self._sending, "call", False):
                self._sending.call = False
                self._in_flight -= 1
        retry_after = _header(headers, "Retry-After")
        if status == 429 and retry_after is not None:
            try:
                seconds = float(retry_after)
            except ValueError:
                seconds = 0.0
            if target is not None and seconds > 0:
                target.penalize(seconds)
        remaining = _int(_header(headers, "X-HubSpot-RateLimit-Remaining"))
        max_ = _int(_header(headers, "X-HubSpot-RateLimit-Max"))
        interval = _int(_header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds"))
        if self.limiter is not None and remaining is not None and max_ is not None and interval is not None:
            self.limiter.observe_remaining(remaining, max_, interval)
        daily = _int(_header(headers, "X-HubSpot-RateLimit-Daily"))
        daily_left = _int(_header(headers, "X-HubSpot-RateLimit-Daily-Remaining"))
        usage = _header(headers, "Sforce-Limit-Info")
        if (usage or (daily is not None and daily_left is not None)) and not self._usage_due(status):
            return
        observed = (daily - daily_left, daily) if daily is not None and daily_left is not None else None
        for part in (usage or "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "api-usage" and "/" in value:
                used, limit = (_int(v) for v in value.split("/", 1))
                if used is not None and limit:
                    observed = (used, limit)
        if observed is None:
            return
        with self._budget_lock:
            # The CRM's count replaces ours. Calls counted ahead and not made yet are not in it, so they are
            # counted again; calls other threads have sent may have reached it or not, so they are added (the
            # budget errs on the side of calls not made).
            self._prepaid = 0
            with self._lock:
                others = self._in_flight
            self.budget.observe_usage(observed[0] + others, observed[1])


def budget_remaining(store: Store, settings: Settings, crm: str, clock: Clock) -> int:
    """Calls left today in `crm`'s shared daily budget ([hubspot] / [salesforce] daily limit × share)."""
    limits = settings.crm(crm).call_limits()
    return DailyBudget(store, limits.account, daily_limit=limits.daily_limit, share=limits.daily_share,
                       clock=store.shared_clock(clock)).remaining()


def guard_factory(store: Store, settings: Settings, clock: Clock) -> Callable[[str], StoreGuard]:
    """Build each CRM account's guard from [hubspot] / [salesforce] limits, shared through `store`.

    The shared window and budget day are read on the database's clock (PostgreSQL), so a replica whose
    clock is off by a minute still counts calls in the same window as the others.
    """
    clock = store.shared_clock(clock)

    def for_crm(crm: str) -> StoreGuard:
        limits = settings.crm(crm).call_limits()
        burst = search = None
        if limits.requests_per_window is not None:
            # The CRM counts a call when it arrives, somewhere between sending and the answer: recorded at the
            # answer, a call leaves the shared window no earlier than it leaves the CRM's (no 429 under any jitter
            # or a busy machine), and at 80 ms of latency about 0.15 s sooner than a quarter-second guess would.
            burst = RateLimiter(
                store, limits.account, capacity=limits.requests_per_window, per_seconds=limits.window_seconds + ANSWERED_MARGIN_SECONDS,
                clock=clock, in_transit_seconds=IN_TRANSIT_SECONDS,
            )
        if limits.search_per_second is not None:
            # The same margin for the 1 s search window, scaled to what network jitter spreads: ±20 ms of
            # jitter reorders arrivals by up to 40 ms, and a sixth search landing inside the CRM's second is a 429.
            search = RateLimiter(store, limits.account + ":search", capacity=limits.search_per_second,
                                 per_seconds=1 + SEARCH_WINDOW_MARGIN_SECONDS, clock=clock)
        budget = DailyBudget(store, limits.account, daily_limit=limits.daily_limit, share=limits.daily_share, clock=clock)
        return StoreGuard(limiter=burst, search_limiter=search, budget=budget, monotonic=clock.monotonic)

    return for_crm
