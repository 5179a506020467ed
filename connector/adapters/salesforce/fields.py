"""Salesforce's field map: which Lead field feeds which Lead attribute, how its value is parsed and written back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from connector.canonical import FieldReader, FieldSpec
from connector.canonical.parsers import parse_number
from connector.canonical.reader import latest_counted, parse_counted
from connector.config import SalesforceSettings
from connector.core.models import Crm, Lead, Patch

CRM: Crm = "salesforce"
OBJECT = "Lead"
# Standard Lead fields → Lead attributes, each with its parser: NumberOfEmployees is an integer, AnnualRevenue a
# currency, Country / State free text, Industry a picklist [crm-behaviour: Salesforce Lead field shapes]. BANT,
# seniority and product interest are custom fields named per org: read only when `[salesforce.fields.<field>]`
# maps them. `[salesforce.fields]` entries replace these one by one.
DEFAULT_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec(property="Email"),
    "first_name": FieldSpec(property="FirstName"),
    "last_name": FieldSpec(property="LastName"),
    "title": FieldSpec(property="Title"),
    "phone": FieldSpec(property="Phone"),
    "company_name": FieldSpec(property="Company"),
    "industry": FieldSpec(property="Industry"),
    "employees": FieldSpec(property="NumberOfEmployees", parse="number"),
    "annual_revenue": FieldSpec(property="AnnualRevenue", parse="number"),
    "country": FieldSpec(property="Country"),
    "state": FieldSpec(property="State"),
    "city": FieldSpec(property="City"),
    "postal_code": FieldSpec(property="PostalCode"),
    "lead_source": FieldSpec(property="LeadSource"),
}
# With State and Country/Territory Picklists the org also holds ISO codes beside the text: read them first.
CODE_FIELDS: dict[str, str] = {"Country": "CountryCode", "State": "StateCode"}
STATUS_FIELD = "Status"
OWNER_FIELD = "OwnerId"
STAMP_FIELD = "SystemModstamp"
# Always selected: identity, cursor and lifecycle flags (standard on every org's Lead).
SYSTEM_FIELDS = ("Id", "IsDeleted", "MasterRecordId", "IsConverted", STAMP_FIELD)
OPTIONAL_FIELDS = (*CODE_FIELDS.values(), OWNER_FIELD, "Website", STATUS_FIELD, "CreatedDate", "LastModifiedDate", "LastActivityDate")
NUMBER_TYPES = frozenset({"double", "int", "currency", "percent"})
TEXT_TYPES = frozenset({"picklist", "string"})

Described = Mapping[str, Mapping[str, Any]]  # Lead field name -> its describe entry


def select_fields(described: Described, settings: SalesforceSettings) -> list[str]:
    """The Lead fields every read selects: the system fields, then those of the others this org has."""
    wanted = [*SYSTEM_FIELDS]
    mapped = (spec.property for spec in merged_specs(settings.fields).values())
    for name in (*mapped, *OPTIONAL_FIELDS, settings.score_field, settings.grade_field, settings.stage_field, *settings.extra_fields.values(), *settings.activity_fields):
        if name in described and name not in wanted:
            wanted.append(name)
    return wanted


def merged_specs(configured: Mapping[str, FieldSpec]) -> dict[str, FieldSpec]:
    """The standard Lead fields with `[salesforce.fields]` over them, field by field."""
    return {**DEFAULT_FIELDS, **configured}


def lead_from_record(record: Mapping[str, Any], settings: SalesforceSettings, reader: FieldReader) -> Lead:
    """A Lead record from SOQL or Collections retrieve → Lead; values that do not parse are counted in the
    reader's ParseStats (reported once per run) and leave their attribute empty."""
    s = settings
    stats = reader.stats
    # An ISO code, when the org holds one, stands in for its text field (one dict look-up a field, no closure)
    codes = {name: code for name, code_field in CODE_FIELDS.items() if (code := record.get(code_field))}
    values = reader.read({**record, **codes}.get if codes else record.get)
    values["owner_id"] = _text(record.get(OWNER_FIELD), strip=True)
    values["score"] = parse_counted(stats, "score", record.get(s.score_field), parse_number)
    values["grade"] = _text(record.get(s.grade_field))
    values["stage"] = _text(record.get(s.stage_field))
    values["lead_status"] = _text(record.get(STATUS_FIELD))
    values["company_domain"] = website_domain(record.get("Website"))
    values["created_at"] = parse_counted(stats, "created_at", record.get("CreatedDate"), _datetime)
    values["modified_at"] = (parse_counted(stats, "modified_at", record.get("LastModifiedDate"), _datetime)
                             or parse_counted(stats, "modified_at", record.get(STAMP_FIELD), _datetime, count_empty=False))
    # The latest of LastActivityDate (a date) and the org's own activity fields [crm-behaviour: HubSpot engagement timestamps].
    values["last_activity_at"] = latest_counted(
        stats, "last_activity_at", (record.get(n) for n in ("LastActivityDate", *s.activity_fields)), _datetime)
    master = record.get("MasterRecordId")
    return Lead(
        crm=CRM,
        object_type=OBJECT,
        id=str(record["Id"]),
        is_converted=bool(record.get("IsConverted")),
        is_archived=bool(record.get("IsDeleted")),
        merged_into=str(master) if master else None,
        extra={alias: record.get(name) for alias, name in s.extra_fields.items()},
        **values,
    )


def _datetime(value: Any) -> datetime:
    """A Salesforce datetime (`2024-01-01T00:00:00.000+0000`) or date (`2024-01-01`) → aware UTC; ValueError when
    it is neither (parse_counted hands over non-empty values only)."""
    text = str(value)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is UTC:  # the API's `+0000`: already UTC
        return parsed
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def record_for(patch: Patch, described: Described, settings: SalesforceSettings) -> dict[str, Any]:
    """Patch.changes (model attributes) → a Collections record (Lead field API names and picklist spellings)."""
    s = settings
    record: dict[str, Any] = {"attributes": {"type": OBJECT}, "id": patch.record_id}
    for attr, value in patch.changes.items():
        if attr == "owner_id":
            record[OWNER_FIELD] = value
        elif attr == "score":
            scale = int((described.get(s.score_field) or {}).get("scale") or 0)
            record[s.score_field] = None if value is None else (round(float(value)) if scale == 0 else round(float(value), scale))
        elif attr == "grade":
            record[s.grade_field] = picklist_spelling(described.get(s.grade_field), value)
        elif attr == "stage":
            record[s.stage_field] = picklist_spelling(described.get(s.stage_field), value)
        elif attr == "lead_status":
            # Status is the stage field by default; a stage in the same patch wins.
            if STATUS_FIELD != s.stage_field or "stage" not in patch.changes:
                record[STATUS_FIELD] = picklist_spelling(described.get(STATUS_FIELD), value)
        else:
            raise ValueError(f"salesforce Lead {patch.record_id}: the connector does not write {attr!r}")
    return record


def parse_datetime(value: object) -> datetime | None:
    """Salesforce datetimes (`2024-01-01T00:00:00.000+0000`) and dates (`2024-01-01`) → aware UTC datetimes."""
    if value in (None, ""):
        return None
    return _datetime(value)


def website_domain(website: object) -> str | None:
    """`https://www.Acme.example/path` → `acme.example` (None when there is no host)."""
    if not isinstance(website, str) or not website.strip():
        return None
    return _website_host(website)


@lru_cache(maxsize=16_384)  # a company's leads share its website: urlsplit once per site
def _website_host(website: str) -> str | None:
    text = website.strip().lower()
    host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.")
    return host or None


def active_values(described: Mapping[str, Any]) -> list[str]:
    """The active values of a described picklist field."""
    return [str(v["value"]) for v in described.get("picklistValues") or [] if v.get("active", True)]


def picklist_spelling(described: Mapping[str, Any] | None, value: Any) -> Any:
    """Our value in the picklist's own spelling (grade "hot" → Rating "Hot"); unknown values pass unchanged."""
    if not isinstance(value, str) or not described:
        return value
    for option in active_values(described):
        if option.casefold() == value.casefold():
            return option
    return value


def _text(raw: Any, *, strip: bool = False) -> str | None:
    if raw in (None, ""):
        return None
    return str(raw).strip() if strip else str(raw)
