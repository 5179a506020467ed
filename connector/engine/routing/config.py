"""The `[routing]` config schema (pydantic), its closed sets and the normal forms of emails, codes and postal codes."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.core.models import Crm
from connector.engine.conditions import Condition
from connector.engine.routing.availability import WORKWEEK

STRATEGIES: tuple[str, ...] = ("round_robin", "least_loaded", "best_match")
SKILLS: tuple[str, ...] = ("industries", "products", "languages", "regions")
MAX_WEIGHT = 20
# One full turn in virtual time: divisible by every allowed weight, so strides are exact integers.
TURN = math.lcm(*range(1, MAX_WEIGHT + 1))
# Context fields routing adds to the condition universe beyond conditions.CONTEXT_FIELD_KINDS.
ROUTING_FIELD_KINDS: dict[str, str] = {"territory": "str"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutOfOfficeConfig(_Section):
    """An absence: dates are whole days in the rep's time zone (both included); datetimes are instants."""

    start: date | datetime  # date first: "2026-03-02" stays a whole day, not midnight
    end: date | datetime
    note: str = ""


class RepConfig(_Section):
    """One rep, named by the email of their CRM user (resolved to owner ids per CRM at start-up)."""

    email: str = Field(min_length=3)
    name: str = ""
    owner_ids: dict[Crm, str] = Field(default_factory=dict)  # explicit ids win over the email lookup
    active: bool = True
    timezone: str = "UTC"
    working_hours: str | list[str] | dict[str, str | list[str]] | None = None
    working_days: list[str] = Field(default_factory=lambda: list(WORKWEEK))
    out_of_office: list[OutOfOfficeConfig] = Field(default_factory=list)
    country: str | None = None
    holiday_subdivision: str | None = None
    observe_holidays: bool = True
    tier: str = "standard"
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    industries: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    max_open_leads: int | None = Field(default=None, ge=0)
    max_leads_per_day: int | None = Field(default=None, ge=0)
    # Where this rep hears of each lead routed (or reassigned) to them ([notifications]): an apprise URL
    # (mailto://…, slack://…, https://hooks.slack.com/…, a Teams workflow URL, …), a plain http(s) webhook
    # (the signed JSON POST), or a Slack member id "@U0123ABCD" (a DM through [notifications] slack_dm_channel).
    notify: str | None = None
    # Who hears of this rep's SLA breaches (before the lead moves on): another rep's email (told through that
    # rep's notify) or a target written like notify. Unset: the manager of the first pool listing this rep.
    manager: str | None = None


class PoolConfig(_Section):
    """A team: its reps (emails, in tie-break order) and the strategy that picks one of them."""

    description: str = ""
    reps: list[str] = Field(default_factory=list)
    strategy: str = "round_robin"
    weight_by_conversion: bool = False
    # Who hears of SLA breaches on this pool's reps' leads when a rep has no manager of their own (as rep manager).
    manager: str | None = None


class RegionConfig(_Section):
    """A named region: countries, optionally narrowed to states (then the countries' states listed)."""

    countries: list[str] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)


class TerritoryConfig(_Section):
    """A territory: countries, states, or postal-code ranges ([low, high] prefixes, inclusive)."""

    countries: list[str] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)
    postal_ranges: list[tuple[str, str]] = Field(default_factory=list)


class RuleConfig(_Section):
    """A routing rule: when `when` matches (always, when omitted), the lead goes to `pool`."""

    name: str = Field(min_length=1)
    when: Condition | None = None
    pool: str
    strategy: str | None = None  # overrides the pool's strategy for this rule
    tier: str | None = None  # prefer reps of this tier (e.g. "senior" for hot or large leads)
    tier_strict: bool = False  # only that tier: wait / fall back rather than use other tiers
    require_skills: list[str] = Field(default_factory=list)


class ExperimentConfig(_Section):
    """A split of one rule's leads between two strategies (stable per lead)."""

    name: str = Field(min_length=1)
    rule: str
    control: str | None = None  # default: the rule's (or its pool's) strategy
    treatment: str
    treatment_share: float = Field(default=0.5, gt=0, lt=1)
    enabled: bool = True


class SlaConfig(_Section):
    """Reassign a lead nobody actioned: no status change and no activity within `minutes`."""

    minutes: int | None = Field(default=None, ge=1)
    max_reassignments: int = Field(default=2, ge=0)


class RoutingConfig(_Section):
    """`[routing]`: reps, pools, regions, territories, ordered rules, fallback, SLA, experiments. Empty = route nobody."""

    keep_existing_owner: bool = True
    unassigned_owner_ids: list[str] = Field(default_factory=list)
    # Queues (names or ids) that are a deliberate parking place: their leads are kept. Other queues are routed.
    keep_queue_owners: list[str] = Field(default_factory=list)
    # Owners deactivated since the last run: route again "all" their open leads, only those the connector "routed", or "none".
    reassign_from_inactive: Literal["all", "routed", "none"] = "all"
    account_matching: bool = True
    account_owner: Literal["account", "parent"] = "account"
    contact_matching: bool = True
    matched_owner_availability: bool = False
    reps: list[RepConfig] = Field(default_factory=list)
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    regions: dict[str, RegionConfig] = Field(default_factory=dict)
    territories: dict[str, TerritoryConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    fallback_pool: str | None = None
    fallback_queue: dict[Crm, str] = Field(default_factory=dict)
    when_unavailable: Literal["wait", "fallback"] = "wait"
    day_timezone: str = "UTC"
    language_field: str | None = None
    # Pools with weight_by_conversion use a rep's conversion rate once this many leads were routed to them.
    conversion_min_leads: int = Field(default=20, ge=1)
    sla: SlaConfig = Field(default_factory=SlaConfig)
    experiments: list[ExperimentConfig] = Field(default_factory=list)



def normalize_email(value: str) -> str:
    """Reps are keyed by their email, case-insensitively."""
    return value.strip().lower()


def normalize_code(value: str) -> str:
    """Country and state codes compare upper-case."""
    return value.strip().upper()


def normalize_postal(value: str) -> str:
    """Postal codes compare without spaces or dashes, upper-case ("M5V 2T6" -> "M5V2T6", "01000-000" -> "01000000")."""
    return value.replace(" ", "").replace("-", "").upper()
