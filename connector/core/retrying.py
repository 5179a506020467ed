"""The one retry policy: jittered exponential backoff over TransientError, honouring Retry-After, bounded attempts."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import tenacity

from connector.core.errors import RateLimitedError, TransientError

T = TypeVar("T")


def equal_jitter(delay: float) -> float:
    """Half the delay fixed, half random: spreads replicas apart without ever retrying at once."""
    return delay / 2 + random.uniform(0, delay / 2)


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float) -> float:
    """The un-jittered wait after the given failed attempt (1-based): base × 2^(attempt-1), capped."""
    return min(max_delay, base_delay * 2.0 ** (attempt - 1))


def wait_after(failures: int, error: BaseException | None, *, base_delay: float, max_delay: float) -> float:
    """The wait before a loop tries again after `failures` failures in a row: jittered backoff, or the
    CRM's Retry-After when it is longer (a background loop's retry, not one call's)."""
    delay = equal_jitter(backoff_delay(max(1, failures), base_delay=base_delay, max_delay=max_delay))
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return max(0.0, delay)


def call_with_retries(
    fn: Callable[[], T],
    *,
    sleep: Callable[[float], None],
    max_attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    on_retry: Callable[[BaseException, float], None] | None = None,
    jitter: Callable[[float], float] | None = None,
    retry_on: type[TransientError] = TransientError,
) -> T:
    """Call fn, retrying only TransientError (incl. RateLimitedError) up to max_attempts calls in all.

    `retry_on` narrows that to one subclass: a write retries only RateLimitedError, since after a
    5xx or a lost connection the CRM may have applied it (resending would be blind).

    The wait is the jittered backoff, or Retry-After when the CRM sent a longer one (HubSpot does
    not always send it, [crm-behaviour: HubSpot 429 responses]). Record, auth, config and budget errors propagate at once;
    after the last attempt the last TransientError is re-raised unchanged.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    spread = jitter if jitter is not None else equal_jitter

    def wait(state: tenacity.RetryCallState) -> float:
        delay = spread(backoff_delay(state.attempt_number, base_delay=base_delay, max_delay=max_delay))
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            # Retry-After is the CRM's instruction, so it is not capped by max_delay.
            delay = max(delay, exc.retry_after)
        return max(0.0, delay)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is None or state.outcome is None or state.next_action is None:
            return
        exc = state.outcome.exception()
        if exc is not None:
            on_retry(exc, state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
