"""HubSpot's field map: which CRM property feeds which Lead attribute, and how its string value is parsed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.canonical import FieldReader, FieldSpec
from connector.canonical.parsers import parse_number
from connector.canonical.reader import latest_counted, parse_counted
from connector.core.models import Lead

# Standard contact properties → Lead attributes, each with its parser (values are strings in every v3 response,
# numbers, booleans and dates included) [crm-behaviour: HubSpot property values are strings]. `numemployees` is an
# enumeration of bands and `annualrevenue` free text on contacts; country, state and industry are free text
# [crm-behaviour: HubSpot contact field shapes]. BANT, seniority and product interest have no standard property: they
# are read only when `[hubspot.fields.<field>]` maps them. `[hubspot.fields]` entries replace these one by one.
DEFAULT_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec(property="email"),
    "first_name": FieldSpec(property="firstname"),
    "last_name": FieldSpec(property="lastname"),
    "title": FieldSpec(property="jobtitle"),
    "phone": FieldSpec(property="phone"),
    "company_name": FieldSpec(property="company"),
    "industry": FieldSpec(property="industry"),
    "employees": FieldSpec(property="numemployees", parse="number_band"),
    "annual_revenue": FieldSpec(property="annualrevenue", parse="number"),
    "country": FieldSpec(property="country"),
    "state": FieldSpec(property="state"),
    "city": FieldSpec(property="city"),
    "postal_code": FieldSpec(property="zip"),
    "lead_source": FieldSpec(property="hs_analytics_source"),
}
DEFAULT_LEAD_STATUS_PROPERTY = "hs_lead_status"
# Engagement counters the scoring rules read as lead.engagement[KEY].
ENGAGEMENT_PROPERTIES: dict[str, str] = {
    "hs_analytics_num_page_views": "page_views",
    "pricing_page_views": "pricing_page_views",
    "num_conversion_events": "form_submissions",
    "hs_email_open": "email_opens",
    "hs_email_click": "email_clicks",
}
# (property, engagement key, its ParseStats name)
_ENGAGEMENT_TALLIES = tuple((prop, key, f"engagement.{key}") for prop, key in ENGAGEMENT_PROPERTIES.items())
# Contacts stamp `lastmodifieddate`; leads, companies and deals `hs_lastmodifieddate`
# [crm-behaviour: HubSpot modified-date property per object].
CREATED_PROPERTIES = ("createdate", "hs_createdate")
# Every engagement timestamp a contact holds: last activity is the latest of them, never the first present
# [crm-behaviour: HubSpot engagement timestamps].
LAST_ACTIVITY_PROPERTIES = (
    "hs_last_sales_activity_timestamp", "notes_last_updated", "hs_analytics_last_visit_timestamp",
    "hs_email_last_open_date", "hs_email_last_click_date", "recent_conversion_date",
)
EMAIL_DOMAIN_PROPERTY = "hs_email_domain"
OBJECT_ID_PROPERTY = "hs_object_id"
MERGED_IDS_PROPERTY = "hs_merged_object_ids"
OWNER_PROPERTY = "hubspot_owner_id"
LEAD_NAME_PROPERTY = "hs_lead_name"
PIPELINE_STAGE_PROPERTY = "hs_pipeline_stage"
LIFECYCLE_STAGE_PROPERTY = "lifecyclestage"

# Companies, for account matching [crm-behaviour: HubSpot associations].
COMPANY_PROPERTIES = ("domain", "name", OWNER_PROPERTY, "hs_parent_company_id")


def modified_property(object_type: str) -> str:
    """The property HubSpot bumps on every change of this object type [crm-behaviour: HubSpot modified-date property per object]."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


@dataclass(frozen=True, slots=True)
class FieldMap:
    """The account-specific part of the map: where score, grade, stage and lead status live, plus extras."""

    object_type: str
    score_property: str
    grade_property: str
    stage_property: str
    lead_status_property: str | None
    extra_properties: Mapping[str, str]
    specs: Mapping[str, FieldSpec] = field(default_factory=lambda: dict(DEFAULT_FIELDS))

    @staticmethod
    def merged_specs(configured: Mapping[str, FieldSpec]) -> dict[str, FieldSpec]:
        """The standard contact properties with `[hubspot.fields]` over them, field by field."""
        return {**DEFAULT_FIELDS, **configured}

    @property
    def writable(self) -> dict[str, str]:
        """Patch.changes key (model attribute) → property written."""
        props = {
            "owner_id": OWNER_PROPERTY,
            "score": self.score_property,
            "grade": self.grade_property,
            "stage": self.stage_property,
        }
        if self.lead_status_property:
            props["lead_status"] = self.lead_status_property
        return props

    def contact_properties(self) -> list[str]:
        """Every contact property normalize reads (requested explicitly: search returns only a few by default)."""
        names = [
            *(spec.property for spec in self.specs.values()), OWNER_PROPERTY, DEFAULT_LEAD_STATUS_PROPERTY,
            *ENGAGEMENT_PROPERTIES, *CREATED_PROPERTIES, *LAST_ACTIVITY_PROPERTIES,
            modified_property("contacts"), EMAIL_DOMAIN_PROPERTY, OBJECT_ID_PROPERTY, MERGED_IDS_PROPERTY,
            LIFECYCLE_STAGE_PROPERTY,
        ]
        if self.object_type == "contacts":
            names += self._written_properties()
        return _unique(names + list(self.extra_properties.values()))

    def lead_object_properties(self) -> list[str]:
        """Properties read from the Leads object itself (contact fields come from its associated contact)."""
        return _unique([
            LEAD_NAME_PROPERTY, OBJECT_ID_PROPERTY, MERGED_IDS_PROPERTY, modified_property("leads"), "hs_createdate",
            OWNER_PROPERTY, *self._written_properties(), *self.extra_properties.values(),
        ])

    def record_properties(self) -> list[str]:
        """Properties requested from the configured object type."""
        return self.contact_properties() if self.object_type == "contacts" else self.lead_object_properties()

    def _written_properties(self) -> list[str]:
        return [p for p in (self.score_property, self.grade_property, self.stage_property, self.lead_status_property) if p]

    def to_property_values(self, changes: Mapping[str, Any]) -> dict[str, str]:
        """Patch.changes → HubSpot property values (strings; `""` clears a value).

        [crm-behaviour: HubSpot property values are strings]
        """
        writable = self.writable
        out: dict[str, str] = {}
        for attr, value in changes.items():
            if attr not in writable:
                raise ValueError(f"hubspot {self.object_type}: cannot write {attr!r}; writable: {sorted(writable)}")
            out[writable[attr]] = format_value(value)
        return out

    def attribute_for(self, property_name: str | None) -> str | None:
        """The model attribute a written property belongs to (for WriteResult.field), else the property name."""
        if property_name is None:
            return None
        for attr, prop in self.writable.items():
            if prop == property_name:
                return attr
        return property_name


def format_value(value: Any) -> str:
    """A model value as HubSpot's string form: numbers without a trailing '.0', None as '' (clear)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(round(value, 6))
    return str(value)


def lead_from_record(record: Mapping[str, Any], fields: FieldMap, reader: FieldReader) -> Lead:
    """A HubSpot object (`{"id", "properties", "archived"}`) → Lead.

    A malformed value never fails the record: the attribute becomes None and the reader's ParseStats count it
    (reported once per run, never a log line per lead).
    """
    props: Mapping[str, Any] = record.get("properties") or {}
    get = props.get
    stats = reader.stats
    values = reader.read(get)
    values["owner_id"] = _text(get(OWNER_PROPERTY))
    values["lead_status"] = _text(get(fields.lead_status_property or DEFAULT_LEAD_STATUS_PROPERTY))
    values["stage"] = _text(get(fields.stage_property))
    values["score"] = parse_counted(stats, "score", get(fields.score_property), parse_number)
    values["grade"] = _text(get(fields.grade_property))
    # A Leads record carries its contact's properties too: the object's own timestamps win.
    own_first = fields.object_type != "contacts"
    created = ("hs_createdate", "createdate") if own_first else CREATED_PROPERTIES
    modified = ("hs_lastmodifieddate", "lastmodifieddate") if own_first else ("lastmodifieddate", "hs_lastmodifieddate")
    values["created_at"] = parse_counted(stats, "created_at", _first_present(props, created), parse_datetime)
    values["modified_at"] = parse_counted(stats, "modified_at", _first_present(props, modified), parse_datetime)
    values["last_activity_at"] = latest_counted(stats, "last_activity_at", (get(n) for n in LAST_ACTIVITY_PROPERTIES), parse_datetime)
    engagement: dict[str, float] = {}
    for prop, key, tally_name in _ENGAGEMENT_TALLIES:
        raw = get(prop)
        if raw is not None:  # absent counters are not counted (count_empty=False)
            count = parse_counted(stats, tally_name, raw, parse_number, count_empty=False)
            if count is not None:
                engagement[key] = count
    extra = {alias: props.get(prop) for alias, prop in fields.extra_properties.items()}

    email = values["email"]
    domain = props.get(EMAIL_DOMAIN_PROPERTY) or (email.rsplit("@", 1)[1] if email and "@" in email else None)
    return Lead(
        crm="hubspot",
        object_type=fields.object_type,
        id=str(record["id"]),
        company_domain=domain.strip().lower() if domain else None,
        is_archived=bool(record.get("archived", False)),
        engagement=engagement,
        extra=extra,
        **values,
    )


def _first_present(props: Mapping[str, Any], names: Iterable[str]) -> Any:
    """The value of the first of `names` that is set (the first present wins, even when it does not parse)."""
    for name in names:
        if props.get(name):
            return props[name]
    return None


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return (raw if raw.__class__ is str else str(raw)).strip() or None


_EPOCH_MS = re.compile(r"^-?\d{9,}$")


def parse_datetime(raw: str) -> datetime:
    """HubSpot datetimes: v3 ISO-8601 with or without fraction, v1 / date properties epoch ms.

    [crm-behaviour: HubSpot datetime formats] [crm-behaviour: Pitfall: mixed datetime formats]
    """
    if raw[-1:] == "Z" and raw[4:5] == "-":
        # v3's usual `2024-05-31T10:11:12.345Z` (never epoch ms: a '-' after 4 digits) in one call: fromisoformat
        # reads the Z as UTC since Python 3.11 (docs.python.org/3/library/datetime.html#datetime.datetime.fromisoformat)
        try:
            value: datetime | None = datetime.fromisoformat(raw)
        except ValueError:  # what only the "+00:00" spelling reads ("2024-05-31Z") takes the general path
            value = None
        if value is not None and value.tzinfo is UTC:
            return value
    if _EPOCH_MS.match(raw):
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def split_ids(raw: str | None) -> list[str]:
    """`hs_merged_object_ids` is a ';'-separated id list."""
    return [part.strip() for part in (raw or "").split(";") if part.strip()]


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
