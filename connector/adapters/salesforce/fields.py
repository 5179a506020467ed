"""Salesforce's field map: which Lead field feeds which Lead attribute, how its value is parsed and written back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from connector.adapters.base import FieldWarning
from connector.config import SalesforceSettings
from connector.core.models import Crm, Lead, Patch

CRM: Crm = "salesforce"
OBJECT = "Lead"
# Lead field → Lead attribute, copied as text.
TEXT_FIELDS: dict[str, str] = {
    "Email": "email", "FirstName": "first_name", "LastName": "last_name", "Title": "title", "Phone": "phone",
    "Company": "company_name", "Industry": "industry", "Country": "country", "State": "state", "City": "city",
    "PostalCode": "postal_code", "LeadSource": "lead_source", "OwnerId": "owner_id", "Seniority__c": "seniority",
}
# BANT custom picklists (Yes/No; checkboxes are read too) → Lead.budget/authority/need/timeframe.
BANT_FIELDS: dict[str, str] = {
    "Budget_Confirmed__c": "budget", "Decision_Maker__c": "authority",
    "Need_Confirmed__c": "need", "Timeframe_Confirmed__c": "timeframe",
}
PRODUCT_INTEREST_FIELD = "Product_Interest__c"  # multi-select picklist, values joined with ";"
STATUS_FIELD = "Status"
OWNER_FIELD = "OwnerId"
STAMP_FIELD = "SystemModstamp"
# Always selected: identity, cursor and lifecycle flags (standard on every org's Lead).
SYSTEM_FIELDS = ("Id", "IsDeleted", "MasterRecordId", "IsConverted", STAMP_FIELD)
OPTIONAL_FIELDS = (
    *TEXT_FIELDS, *BANT_FIELDS, PRODUCT_INTEREST_FIELD, "Website", "NumberOfEmployees", "AnnualRevenue",
    STATUS_FIELD, "CreatedDate", "LastModifiedDate", "LastActivityDate",
)
NUMBER_TYPES = frozenset({"double", "int", "currency", "percent"})
TEXT_TYPES = frozenset({"picklist", "string"})

Described = Mapping[str, Mapping[str, Any]]  # Lead field name -> its describe entry


def select_fields(described: Described, settings: SalesforceSettings) -> list[str]:
    """The Lead fields every read selects: the system fields, then those of the others this org has."""
    wanted = [*SYSTEM_FIELDS]
    for name in (*OPTIONAL_FIELDS, settings.score_field, settings.grade_field, settings.stage_field, *settings.extra_fields.values(), *settings.activity_fields):
        if name in described and name not in wanted:
            wanted.append(name)
    return wanted


def lead_from_record(record: Mapping[str, Any], settings: SalesforceSettings) -> tuple[Lead, list[FieldWarning]]:
    """A Lead record from SOQL or Collections retrieve → Lead, plus the fields whose values did not parse."""
    s = settings
    warnings: list[FieldWarning] = []
    lead_id = str(record["Id"])

    def parsed(name: str, convert: Callable[[Any], Any], expected: str) -> Any:
        raw = record.get(name)
        if raw in (None, ""):
            return None
        try:
            return convert(raw)
        except (TypeError, ValueError):
            warnings.append(FieldWarning(name, expected))
            return None

    values: dict[str, Any] = {attr: _text(record.get(name), strip=True) for name, attr in TEXT_FIELDS.items()}
    for name, attr in BANT_FIELDS.items():
        values[attr] = parsed(name, _yes_no, "yes/no value")
    interest = record.get(PRODUCT_INTEREST_FIELD)
    values["product_interest"] = tuple(p.strip() for p in str(interest).split(";") if p.strip()) if interest else ()
    values["employees"] = parsed("NumberOfEmployees", _whole_number, "whole number")
    values["annual_revenue"] = parsed("AnnualRevenue", float, "number")
    values["score"] = parsed(s.score_field, float, "number")
    values["grade"] = _text(record.get(s.grade_field))
    values["stage"] = _text(record.get(s.stage_field))
    values["lead_status"] = _text(record.get(STATUS_FIELD))
    values["company_domain"] = website_domain(record.get("Website"))
    values["created_at"] = parsed("CreatedDate", parse_datetime, "datetime")
    values["modified_at"] = parsed("LastModifiedDate", parse_datetime, "datetime") or parsed(STAMP_FIELD, parse_datetime, "datetime")
    # The latest of LastActivityDate (a date) and the org's own activity fields [crm-behaviour: HubSpot engagement timestamps].
    stamps = [parsed(name, parse_datetime, "date or datetime") for name in ("LastActivityDate", *s.activity_fields)]
    values["last_activity_at"] = max((stamp for stamp in stamps if stamp is not None), default=None)
    master = record.get("MasterRecordId")
    lead = Lead(
        crm=CRM,
        object_type=OBJECT,
        id=lead_id,
        is_converted=bool(record.get("IsConverted")),
        is_archived=bool(record.get("IsDeleted")),
        merged_into=str(master) if master else None,
        extra={alias: record.get(name) for alias, name in s.extra_fields.items()},
        **values,
    )
    return lead, warnings


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
    text = str(value)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def website_domain(website: object) -> str | None:
    """`https://www.Acme.example/path` → `acme.example` (None when there is no host)."""
    if not isinstance(website, str) or not website.strip():
        return None
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


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "1"):
        return True
    if text in ("no", "false", "0"):
        return False
    raise ValueError(value)


def _whole_number(value: Any) -> int:
    number = float(value)
    if number != int(number):
        raise ValueError(value)
    return int(number)
