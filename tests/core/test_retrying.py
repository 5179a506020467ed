"""The one retry policy: which errors retry, how long each wait is, and when it gives up (zero real waits)."""

from __future__ import annotations

import random

import pytest

from connector.core.errors import (
    AuthError,
    BudgetExhaustedError,
    ConfigError,
    RateLimitedError,
    RecordError,
    TransientError,
)
from connector.core.retrying import backoff_delay, call_with_retries, equal_jitter


class Flaky:
    """Fails with the given errors in order, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def no_jitter(delay: float) -> float:
    return delay


def test_success_needs_no_wait() -> None:
    sleeps: list[float] = []
    assert call_with_retries(Flaky(), sleep=sleeps.append) == "ok"
    assert sleeps == []


def test_transient_errors_back_off_exponentially_then_succeed() -> None:
    sleeps: list[float] = []
    seen: list[tuple[str, float]] = []
    fn = Flaky(TransientError("502 from /crm/v3/objects/contacts/batch/update", status=502), TransientError("timeout"), TransientError("reset"))
    result = call_with_retries(fn, sleep=sleeps.append, jitter=no_jitter, on_retry=lambda e, w: seen.append((str(e), w)))
    assert result == "ok" and fn.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert seen == [("502 from /crm/v3/objects/contacts/batch/update", 0.5), ("timeout", 1.0), ("reset", 2.0)]


def test_gives_up_after_max_attempts_with_the_last_error_and_capped_waits() -> None:
    sleeps: list[float] = []
    last = TransientError("still down")
    fn = Flaky(*[TransientError(f"down {i}") for i in range(5)], last)
    with pytest.raises(TransientError) as info:
        call_with_retries(fn, sleep=sleeps.append, max_attempts=6, base_delay=1, max_delay=5, jitter=no_jitter)
    assert info.value is last
    assert fn.calls == 6
    assert sleeps == [1, 2, 4, 5, 5]


@pytest.mark.parametrize(("retry_after", "expected"), [(7.0, 7.0), (0.1, 0.5), (None, 0.5), (120.0, 120.0)])
def test_rate_limited_waits_for_retry_after_or_the_backoff_whichever_is_longer(retry_after: float | None, expected: float) -> None:
    sleeps: list[float] = []
    fn = Flaky(RateLimitedError("429 TEN_SECONDLY_ROLLING", retry_after=retry_after, crm="hubspot", status=429))
    assert call_with_retries(fn, sleep=sleeps.append, jitter=no_jitter, max_delay=30) == "ok"
    assert sleeps == [expected]


@pytest.mark.parametrize(
    "error",
    [
        RecordError("converted", crm="salesforce", object_type="Lead", record_id="00Q1", code="CANNOT_UPDATE_CONVERTED_LEAD"),
        AuthError("token expired", crm="hubspot", credential="hubspot.access_token"),
        ConfigError("bad"),
        BudgetExhaustedError("daily budget used", crm="salesforce"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_only_transient_errors_are_retried(error: Exception) -> None:
    sleeps: list[float] = []
    fn = Flaky(error)
    with pytest.raises(type(error)) as info:
        call_with_retries(fn, sleep=sleeps.append)
    assert info.value is error
    assert fn.calls == 1 and sleeps == []


def test_default_jitter_stays_within_half_to_full_delay() -> None:
    random.seed(1234)
    for delay in (0.5, 1.0, 8.0, 30.0):
        for _ in range(50):
            assert delay / 2 <= equal_jitter(delay) <= delay


def test_injected_jitter_is_applied_to_each_backoff() -> None:
    sleeps: list[float] = []
    fn = Flaky(TransientError("a"), TransientError("b"))
    call_with_retries(fn, sleep=sleeps.append, jitter=lambda d: d / 4)
    assert sleeps == [0.125, 0.25]


def test_backoff_delay_and_bad_attempts() -> None:
    assert [backoff_delay(n, base_delay=0.5, max_delay=3) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]
    with pytest.raises(ValueError, match="max_attempts"):
        call_with_retries(Flaky(), sleep=lambda s: None, max_attempts=0)
