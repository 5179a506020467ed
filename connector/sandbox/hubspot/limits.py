"""HubSpot's rate limits in the sandbox: the daily allowance, the 10-second burst, the search limit, 429s and headers."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from connector.sandbox._http import Reply, SlidingWindow

WINDOW_10S = 10.0
DEFAULT_DAILY_LIMIT = 1_000_000  # Enterprise [crm-behaviour: HubSpot rate limits: burst and daily]


class LimitKnobs(Protocol):
    """The limits as configured, read per request (None: no limit); the sandbox has them as attributes."""

    requests_per_10s: int | None
    search_rate_per_second: int | None
    daily_limit: int


class RateLimits:
    """What the account has used against its limits."""

    def __init__(self, knobs: LimitKnobs) -> None:
        self.knobs = knobs
        self._burst = SlidingWindow(WINDOW_10S)
        self._search = SlidingWindow(1.0)
        self._daily_used = 0
        self._daily_day = ""

    def check(self, now: float, today: datetime, is_search: bool) -> Reply | None:
        """Count one request at monotonic `now` (wall clock `today`); a 429 reply when a limit refuses it."""
        knobs = self.knobs
        day = today.astimezone(UTC).date().isoformat()
        if day != self._daily_day:
            self._daily_day, self._daily_used = day, 0
        if self._daily_used >= knobs.daily_limit:
            tomorrow = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            wait = max(1, math.ceil((tomorrow - today).total_seconds()))
            return _rate_limited("DAILY", "You have reached your daily limit.", wait)
        if is_search:
            # HubSpot's separate search limit (5/s per account); searches do not count toward the burst
            # [crm-behaviour: HubSpot search has its own rate limit].
            if knobs.search_rate_per_second is not None:
                if self._search.count(now) >= knobs.search_rate_per_second:
                    return _rate_limited("SECONDLY", "You have reached your secondly limit.", 1)
                self._search.add(now)
        elif knobs.requests_per_10s is not None:
            if self._burst.count(now) >= knobs.requests_per_10s:
                wait = max(1, math.ceil(self._burst.retry_after(now)))
                return _rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.", wait)
            self._burst.add(now)
        else:
            self._burst.add(now)
        self._daily_used += 1
        return None

    def headers(self, now: float) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers of a (non-search) reply."""
        daily_limit, per_10s = self.knobs.daily_limit, self.knobs.requests_per_10s
        headers = {
            "X-HubSpot-RateLimit-Daily": str(daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily_limit - self._daily_used)),
        }
        used = self._burst.count(now)
        if per_10s is not None:
            # Without a burst limit configured the sandbox says nothing about one.
            headers.update({
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_10S * 1000)),
                "X-HubSpot-RateLimit-Max": str(per_10s),
                "X-HubSpot-RateLimit-Remaining": str(max(0, per_10s - used)),
            })
        return headers


def _rate_limited(policy: str, message: str, retry_after: int) -> Reply:
    # 429 body as HubSpot sends it [crm-behaviour: HubSpot 429 responses].
    body = {"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
            "policyName": policy, "groupName": "api-calls-sandbox"}
    return Reply(429, body, {"Retry-After": str(retry_after)})
