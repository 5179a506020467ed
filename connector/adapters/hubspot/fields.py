"""HubSpot's field map: which CRM property feeds which Lead attribute, and how its string value is parsed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.adapters.base import FieldWarning
from connector.core.models import Lead

# Standard contact properties → Lead attributes. Property values are strings in every v3
# response (numbers, booleans and dates included) [crm-behaviour: HubSpot property values are strings].
TEXT_PROPERTIES: dict[str, str] = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "jobtitle": "title",
    "phone": "phone",
    "company": "company_name",
    "industry": "industry",
    "country": "country",
    "state": "state",
    "city": "city",
    "zip": "postal_code",
    "hs_analytics_source": "lead_source",
    "hs_lead_status": "lead_status",
    "hubspot_owner_id": "owner_id",
}
INT_PROPERTIES: dict[str, str] = {"numemployees": "employees"}
FLOAT_PROPERTIES: dict[str, str] = {"annualrevenue": "annual_revenue"}
BOOL_PROPERTIES: dict[str, str] = {
    "bant_budget": "budget",
    "bant_authority": "authority",
    "bant_need": "need",
    "bant_timeframe": "timeframe",
}
# Multi-checkbox values arrive as one ';'-separated string.
MULTI_PROPERTIES: dict[str, str] = {"product_interest": "product_interest"}
# Engagement counters the scoring rules read as lead.engagement[KEY].
ENGAGEMENT_PROPERTIES: dict[str, str] = {
    "hs_analytics_num_page_views": "page_views",
    "pricing_page_views": "pricing_page_views",
    "num_conversion_events": "form_submissions",
    "hs_email_open": "email_opens",
    "hs_email_click": "email_clicks",
}
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
            *TEXT_PROPERTIES, *INT_PROPERTIES, *FLOAT_PROPERTIES, *BOOL_PROPERTIES, *MULTI_PROPERTIES,
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


# (property, parse, expected kind) -> the parsed value, or None (a warning is noted) when it does not parse
Parser = Callable[[str, Callable[[str], Any], str], Any]


def lead_from_record(record: Mapping[str, Any], fields: FieldMap) -> tuple[Lead, list[FieldWarning]]:
    """A HubSpot object (`{"id", "properties", "archived"}`) → Lead, plus the values that did not parse.

    A malformed value never fails the record: the attribute becomes None and a FieldWarning says which
    property held what kind of bad value (the value itself is not repeated: it may be personal data).
    """
    props: Mapping[str, Any] = record.get("properties") or {}
    warnings: list[FieldWarning] = []
    values: dict[str, Any] = {}

    def parsed(prop: str, parse: Callable[[str], Any], expected: str) -> Any:
        raw = props.get(prop)
        if raw is None or str(raw).strip() == "":
            return None
        try:
            return parse(str(raw).strip())
        except ValueError:
            warnings.append(FieldWarning(prop, expected))
            return None

    values.update(_typed_values(props, parsed))
    values["stage"] = parsed(fields.stage_property, str, "text")
    if fields.lead_status_property:
        values["lead_status"] = parsed(fields.lead_status_property, str, "text")
    values["score"] = parsed(fields.score_property, float, "number")
    values["grade"] = parsed(fields.grade_property, str, "text")
    # A Leads record carries its contact's properties too: the object's own timestamps win.
    own_first = fields.object_type != "contacts"
    created = ("hs_createdate", "createdate") if own_first else CREATED_PROPERTIES
    modified = ("hs_lastmodifieddate", "lastmodifieddate") if own_first else ("lastmodifieddate", "hs_lastmodifieddate")
    values["created_at"] = _first_datetime(props, created, parsed)
    values["modified_at"] = _first_datetime(props, modified, parsed)
    values["last_activity_at"] = _latest_datetime(props, LAST_ACTIVITY_PROPERTIES, parsed)

    engagement: dict[str, float] = {}
    for prop, key in ENGAGEMENT_PROPERTIES.items():
        count = parsed(prop, float, "number")
        if count is not None:
            engagement[key] = count
    extra = {alias: props.get(prop) for alias, prop in fields.extra_properties.items()}

    email = values["email"]
    domain = props.get(EMAIL_DOMAIN_PROPERTY) or (email.rsplit("@", 1)[1] if email and "@" in email else None)
    lead = Lead(
        crm="hubspot",
        object_type=fields.object_type,
        id=str(record["id"]),
        company_domain=domain.strip().lower() if domain else None,
        is_archived=bool(record.get("archived", False)),
        engagement=engagement,
        extra=extra,
        **values,
    )
    return lead, warnings


def _typed_values(props: Mapping[str, Any], parsed: Parser) -> dict[str, Any]:
    """The standard properties, each parsed as its kind (text, integer, number, true/false, multi-checkbox)."""
    values: dict[str, Any] = {}
    for prop, attr in TEXT_PROPERTIES.items():
        values[attr] = parsed(prop, str, "text")
    for prop, attr in INT_PROPERTIES.items():
        values[attr] = parsed(prop, _parse_int, "integer")
    for prop, attr in FLOAT_PROPERTIES.items():
        values[attr] = parsed(prop, float, "number")
    for prop, attr in BOOL_PROPERTIES.items():
        values[attr] = parsed(prop, _parse_bool, "true/false")
    for prop, attr in MULTI_PROPERTIES.items():
        raw = props.get(prop) or ""
        values[attr] = tuple(v.strip() for v in str(raw).split(";") if v.strip())
    return values


def _first_datetime(props: Mapping[str, Any], names: Iterable[str], parsed: Parser) -> datetime | None:
    for name in names:
        if props.get(name):
            return parsed(name, parse_datetime, "datetime")  # type: ignore[no-any-return]
    return None


def _latest_datetime(props: Mapping[str, Any], names: Iterable[str], parsed: Parser) -> datetime | None:
    """The latest of the named timestamps that parse (each bad one noted), None when none is set."""
    stamps = [parsed(name, parse_datetime, "datetime") for name in names if props.get(name)]
    return max((stamp for stamp in stamps if stamp is not None), default=None)


def _parse_int(raw: str) -> int:
    # "1,200" or "250.0" are common hand-typed forms of a number property.
    number = float(raw.replace(",", ""))
    if not number.is_integer():
        raise ValueError(raw)
    return int(number)


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("true", "yes", "1"):
        return True
    if low in ("false", "no", "0"):
        return False
    raise ValueError(raw)


_EPOCH_MS = re.compile(r"^-?\d{9,}$")


def parse_datetime(raw: str) -> datetime:
    """HubSpot datetimes: v3 ISO-8601 with or without fraction, v1 / date properties epoch ms.

    [crm-behaviour: HubSpot datetime formats] [crm-behaviour: Pitfall: mixed datetime formats]
    """
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
