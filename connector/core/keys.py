"""Lead keys and the names of the routing counters' scopes (one place for each; the store keeps counters by these names)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

# Per rep email: open leads (`load:open`) and leads routed on one day (`load:day:YYYY-MM-DD`, in routing.day_timezone).
OPEN_SCOPE = "load:open"
DAY_PREFIX = "load:day:"
# Per pool: each rep's round-robin pass and the pool clock under VT_KEY.
RR_PREFIX = "rr:"
VT_KEY = "~vt"  # not an email, so it cannot collide with a rep key
# Per rep email: leads the connector routed to them, and how many of those converted (conversion weighting).
ROUTED_SCOPE = "conv:routed"
CONVERTED_SCOPE = "conv:converted"


def pool_scope(pool: str) -> str:
    """The round-robin counters of one pool."""
    return f"{RR_PREFIX}{pool}"


def day_scope_of(day: date) -> str:
    """The per-rep lead counts of one routing day."""
    return f"{DAY_PREFIX}{day.isoformat()}"


def route_scope(crm: str) -> str:
    """A lock-only scope: two workers routing leads of one CRM serialize on it."""
    return f"route:{crm}"


def waiting_scope(crm: str) -> str:
    """Per record id of `crm`: 1 while the lead waits for a rep (counted by `connector status`)."""
    return f"waiting:{crm}"


def credited_scope(crm: str) -> str:
    """Per record id of `crm`: 1 once the lead's conversion was credited to its rep (credited once)."""
    return f"credited:{crm}"


def closed_scope(crm: str) -> str:
    """Per record id of `crm`: 1 once the lead's open-lead count was released (released once)."""
    return f"closed:{crm}"


def lead_key(crm: str, object_type: str, record_id: str) -> str:
    """The key a lead is stored and logged under: `crm:object_type:record id` (`Lead.key`)."""
    return f"{crm}:{object_type}:{record_id}"


def lead_key_prefix(crm: str, object_type: str) -> str:
    """What every lead key of one CRM object starts with."""
    return f"{crm}:{object_type}:"


def account_key(crm: str, *parts: str | None) -> str:
    """A stable, secret-free name for one CRM account (the shared limiter's and budget's rows are keyed by it)."""
    digest = hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:12]
    return f"{crm}:{digest}"


@dataclass(frozen=True, slots=True)
class CallLimits:
    """One CRM account's API limits as configured: what its shared guard paces calls by.

    `requests_per_window` None: no burst limit (Salesforce); `search_per_second` None: no separate
    search limit (HubSpot has one).
    """

    account: str
    daily_limit: int
    daily_share: float
    requests_per_window: int | None = None
    window_seconds: float = 10.0
    search_per_second: int | None = None
