"""The common model: frozen values shared by every pipeline stage (no CRM field names here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from connector.core.keys import lead_key

Crm = Literal["hubspot", "salesforce"]
CRMS: tuple[Crm, ...] = ("hubspot", "salesforce")


def as_crm(name: str) -> Crm | None:
    """`name` as one of the CRMs this connector speaks, or None."""
    return next((crm for crm in CRMS if crm == name), None)


# The lead attributes the connector writes back; Patch.changes keys are drawn from this set.
WRITABLE_FIELDS: tuple[str, ...] = ("owner_id", "score", "grade", "stage", "lead_status")


class _Derived:
    """Where a Lead keeps its key and email domain: slots outside the dataclass fields, so they are not compared,
    pickled or listed by `dataclasses.fields` / `asdict` (`replace` works them out again from the new fields)."""

    __slots__ = ("_key", "_domain")
    _key: str
    _domain: str | None


@dataclass(frozen=True, slots=True)
class Lead(_Derived):
    """One lead as the engine sees it, whichever CRM and object it came from."""

    crm: Crm
    object_type: str
    id: str
    email: str | None = None
    # person
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    seniority: str | None = None
    phone: str | None = None
    # company
    company_name: str | None = None
    company_domain: str | None = None
    company_id: str | None = None
    industry: str | None = None  # a slug of the canonical taxonomy (docs/industries.md)
    employees: int | None = None  # a band's lower bound ("100-500" → 100)
    employees_band: str | None = None  # the band as the CRM holds it ("100-500", "1000+"); None for a plain number
    annual_revenue: float | None = None
    parent_company: str | None = None
    # location: ISO 3166-1 alpha-2 country, ISO 3166-2 subdivision code without its country prefix ("CA")
    country: str | None = None
    state: str | None = None
    country_inferred: bool = False  # the country came from the phone number (the country field was empty)
    city: str | None = None
    postal_code: str | None = None
    # marketing / sales
    lead_source: str | None = None
    product_interest: tuple[str, ...] = ()
    deal_size: float | None = None
    # BANT: None = unknown, True = met, False = explicitly not met
    budget: bool | None = None
    authority: bool | None = None
    need: bool | None = None
    timeframe: bool | None = None
    # what the connector writes back (current CRM values)
    stage: str | None = None
    lead_status: str | None = None
    owner_id: str | None = None
    score: float | None = None
    grade: str | None = None
    # timestamps (timezone-aware UTC)
    created_at: datetime | None = None
    modified_at: datetime | None = None
    last_activity_at: datetime | None = None
    # flags
    is_converted: bool = False
    is_archived: bool = False
    merged_into: str | None = None
    # CRM engagement counters mapped by the adapter (e.g. page views, form submissions)
    engagement: Mapping[str, float] = field(default_factory=dict)
    # any other CRM fields the config asked for, by their configured alias
    extra: Mapping[str, Any] = field(default_factory=dict)
    # the CRM's own text of each mapped field that had a value, by lead field name (rules: raw.country)
    raw: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Worked out once: a run reads the key some 25 times per lead (every stage keys its maps by it) and the
        # email domain several times; both derive from fields a frozen Lead never changes.
        email = self.email
        object.__setattr__(self, "_key", lead_key(self.crm, self.object_type, self.id))
        object.__setattr__(self, "_domain", (email.rsplit("@", 1)[1].strip().lower() or None) if email and "@" in email else None)

    @property
    def key(self) -> str:
        """Stable identity across the connector: `crm:object_type:id`."""
        try:
            return self._key
        except AttributeError:  # a copied or unpickled Lead: __init__ did not run
            self.__post_init__()
            return self._key

    @property
    def email_domain(self) -> str | None:
        try:
            return self._domain
        except AttributeError:
            self.__post_init__()
            return self._domain

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    def replace(self, **changes: Any) -> Lead:
        return dataclasses.replace(self, **changes)


# Field names a condition may name, with the Python type of each (used to validate config).
def lead_field_types() -> dict[str, str]:
    """Map each condition-addressable Lead attribute to a coarse type: str, number, bool, list, datetime."""
    kinds: dict[str, str] = {}
    for f in dataclasses.fields(Lead):
        t = str(f.type)
        if f.name in ("engagement", "extra", "raw"):
            continue
        if "tuple" in t:
            kinds[f.name] = "list"
        elif "datetime" in t:
            kinds[f.name] = "datetime"
        elif "bool" in t:
            kinds[f.name] = "bool"
        elif "int" in t or "float" in t:
            kinds[f.name] = "number"
        else:
            kinds[f.name] = "str"
    kinds["email_domain"] = "str"
    kinds["full_name"] = "str"
    return kinds


@dataclass(frozen=True, slots=True)
class Event:
    """A behaviour event (Segment-style track/page/identify, or mapped from CRM engagement)."""

    lead_key: str  # an email (lower-case) or a Lead.key
    name: str  # e.g. "Page Viewed", "Form Submitted", "Signed Up", "Email Opened"
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["track", "page", "identify"] = "track"
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """A CRM owner / user / queue as read from the CRM."""

    crm: Crm
    id: str
    email: str | None
    name: str = ""
    is_active: bool = True
    is_queue: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """A CRM company/account found by email domain, for account matching."""

    crm: Crm
    id: str
    domain: str
    name: str | None = None
    owner_id: str | None = None
    parent_id: str | None = None
    parent_owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rep:
    """A sales rep as routing sees them: config facts plus CRM owner ids and activity."""

    email: str
    name: str = ""
    owner_ids: Mapping[str, str] = field(default_factory=dict)  # crm -> owner id
    is_active: bool = True
    timezone: str = "UTC"
    country: str | None = None
    weight: int = 1
    tier: str = "standard"
    skills: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_open_leads: int | None = None
    max_leads_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class Contribution:
    """One line of a score's explanation: which rule gave how many points, and from what."""

    model: str
    rule: str
    points: float
    source: str  # "field:country", "event:Page Viewed x5", "decay:inactivity 60d", ...
    decay: float = 0.0  # points removed by decay from this contribution (already netted in points)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The engine's score for one lead under one model; score == round(sum(c.points for c in contributions), 2)."""

    model: str
    score: float
    grade: str
    contributions: tuple[Contribution, ...] = ()
    is_mql: bool = False
    stage: str | None = None  # stage the score maps to (moved forward only by diff)
    lead_status: str | None = None
    bant: str | None = None  # hot / warm / cold BANT view when configured
    grade_label: str | None = None  # the grade as the lead's CRM spells it (e.g. Salesforce Rating "Hot"); None = grade


@dataclass(frozen=True, slots=True)
class Candidate:
    rep: str
    eligible: bool
    reason: str = ""


# Why a lead waits: the dominant reason among the candidates of the pools it tried (a closed set).
WaitCause = Literal["outside_hours", "out_of_office", "holiday", "at_capacity", "inactive", "no_one_eligible"]
# In the order that breaks a tie between equally common causes; the labels are what people read.
WAIT_CAUSES: dict[WaitCause, str] = {
    "outside_hours": "outside working hours",
    "out_of_office": "out of office",
    "holiday": "public holiday",
    "at_capacity": "at capacity",
    "inactive": "inactive or not a CRM owner",
    "no_one_eligible": "nobody eligible (skills, tier)",
}


def wait_cause_words(cause: str) -> str:
    """What people read for a wait cause; a cause this version does not know (a newer database row) reads as itself."""
    return next((words for known, words in WAIT_CAUSES.items() if known == cause), cause)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Who owns the lead and why. owner_id None means 'no decision / wait'.

    A wait says why (`wait_cause`) and until when: the earliest instant one of the candidates becomes
    available (`next_available_at`, None when no time is known, e.g. open-lead caps) and who that is.
    """

    lead_key: str
    owner_id: str | None
    rep: str | None = None
    kind: Literal["kept", "account_match", "contact_match", "rule", "fallback", "reassigned", "wait", "none"] = "rule"
    rule: str | None = None
    pool: str | None = None
    strategy: str | None = None
    arm: str | None = None
    reasons: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    wait_cause: WaitCause | None = None
    next_available_at: datetime | None = None
    next_available_rep: str | None = None


class FieldDecision(str, Enum):
    WRITE = "write"
    UNCHANGED = "unchanged"
    OWNER_LOCKED = "owner_locked"
    STAGE_LOCKED = "stage_locked"
    GRADE_LOCKED = "grade_locked"  # a person set the grade / Rating after the connector's last write
    WOULD_REGRESS = "would_regress"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True, slots=True)
class Patch:
    """The smallest write for one record: field -> new value, with why each field is or isn't written."""

    crm: Crm
    object_type: str
    record_id: str
    changes: Mapping[str, Any]
    current: Mapping[str, Any] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    decisions: Mapping[str, FieldDecision] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.changes


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Per-record outcome of a write call."""

    crm: Crm
    object_type: str
    record_id: str
    ok: bool
    error_code: str | None = None
    message: str | None = None
    field: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class FetchPage:
    """One page of fetched leads plus the cursor that is safe to store once they are handled."""

    leads: tuple[Lead, ...]
    cursor: str | None
    deleted_ids: tuple[str, ...] = ()
    merged: Mapping[str, str] = field(default_factory=dict)  # old id -> surviving id
    rejected: tuple[Rejection, ...] = ()  # records that could not be normalized (dead-lettered, never block the page)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record the adapter could not turn into a Lead: where and why."""

    record_id: str
    field: str | None
    code: str
    message: str
