"""Property definitions of the HubSpot sandbox: the standard and custom properties per object type, and the properties API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.owners import OWNERS_CREATED
from connector.sandbox.hubspot.wire import abort, flag, iso, to_ms

PROPERTY_TYPES = frozenset({"string", "number", "date", "datetime", "enumeration", "bool"})
FIELD_TYPES = frozenset({
    "text", "textarea", "number", "date", "file", "select", "radio", "checkbox", "booleancheckbox",
    "calculation_equation", "phonenumber", "html",
})
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"), ("lead", "Lead"), ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"), ("customer", "Customer"),
    ("evangelist", "Evangelist"), ("other", "Other"),
)
LEAD_STATUSES = (
    ("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"), ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"), ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"), ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
ANALYTICS_SOURCES = (
    ("ORGANIC_SEARCH", "Organic Search"), ("PAID_SEARCH", "Paid Search"), ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"), ("REFERRALS", "Referrals"), ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"), ("OFFLINE", "Offline Sources"), ("PAID_SOCIAL", "Paid Social"),
)
LEAD_PIPELINE_STAGES = (
    ("new-stage-id", "New"), ("attempting-stage-id", "Attempting"), ("connected-stage-id", "Connected"),
    ("qualified-stage-id", "Qualified"), ("unqualified-stage-id", "Disqualified"),
)
PRODUCT_OPTIONS = (("analytics", "Analytics"), ("crm", "CRM"), ("payments", "Payments"), ("support", "Support"))
BOOL_OPTIONS = (("true", "Yes"), ("false", "No"))
# numemployees on contacts is a dropdown of bands; this portal added 1000-5000 / 5000-10000 / 10000+ after
# years of "1000+".
EMPLOYEE_BANDS = ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+", "1000-5000", "5000-10000", "10000+")
# A part of HubSpot's company industry enumeration (about 150 internal values).
_INDUSTRY_LABELS = {"HOSPITAL_HEALTH_CARE": "Hospital & Health Care", "E_LEARNING": "E-Learning",
                    "TRANSPORTATION_TRUCKING_RAILROAD": "Transportation/Trucking/Railroad"}
COMPANY_INDUSTRIES = tuple((v, _INDUSTRY_LABELS.get(v) or v.replace("_", " ").title().replace(" And ", " and ")) for v in (
    "COMPUTER_SOFTWARE", "INFORMATION_TECHNOLOGY_AND_SERVICES", "INTERNET", "FINANCIAL_SERVICES", "BANKING", "INSURANCE",
    "HOSPITAL_HEALTH_CARE", "MEDICAL_DEVICES", "PHARMACEUTICALS", "RETAIL", "CONSUMER_GOODS", "MACHINERY",
    "INDUSTRIAL_AUTOMATION", "AUTOMOTIVE", "AVIATION_AEROSPACE", "EDUCATION_MANAGEMENT", "HIGHER_EDUCATION", "E_LEARNING",
    "LOGISTICS_AND_SUPPLY_CHAIN", "TRANSPORTATION_TRUCKING_RAILROAD", "ONLINE_MEDIA", "BROADCAST_MEDIA",
    "MARKETING_AND_ADVERTISING", "TELECOMMUNICATIONS", "CONSTRUCTION", "REAL_ESTATE", "GOVERNMENT_ADMINISTRATION",
))
# The portal's own qualification properties (custom selects with the portal's internal values).
BUDGET_OPTIONS = (("under_50k", "Under $50K"), ("50k_250k", "$50K-$250K"), ("over_250k", "Over $250K"))
ROLE_OPTIONS = (("decision_maker", "Decision maker"), ("influencer", "Influencer"), ("evaluator", "Evaluator"),
                ("end_user", "End user"))
TIMELINE_OPTIONS = (("this_quarter", "This quarter"), ("next_quarter", "Next quarter"), ("this_year", "This year"),
                    ("no_plans", "No plans"))
SENIORITY_OPTIONS = (("c_level", "C-Level"), ("vp", "VP"), ("director", "Director"), ("manager", "Manager"),
                     ("individual_contributor", "Individual contributor"), ("other", "Other"))
OWNER_REFERENCE: dict[str, Any] = {"referenced_object_type": "OWNER", "external_options": True}


@dataclass(frozen=True)
class PropertyDef:
    """One property definition, rendered as the properties API's `Property` model."""

    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str
    group_name: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label), in display order
    read_only: bool = False
    hubspot_defined: bool = True
    description: str = ""
    has_unique_value: bool = False
    referenced_object_type: str | None = None
    external_options: bool = False
    created_ms: int = to_ms(OWNERS_CREATED)
    updated_ms: int = to_ms(OWNERS_CREATED)
    archived: bool = False

    @property
    def is_multi(self) -> bool:
        return self.type == "enumeration" and self.field_type == "checkbox"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group_name,
            "options": [
                {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
                for i, (value, label) in enumerate(self.options)
            ],
            "displayOrder": -1, "calculated": False, "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value, "hidden": False, "hubspotDefined": self.hubspot_defined,
            "formField": not self.read_only, "archived": self.archived,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "createdAt": iso(self.created_ms), "updatedAt": iso(self.updated_ms),
        }
        if self.referenced_object_type:
            out["referencedObjectType"] = self.referenced_object_type
        return out


def _p(name: str, label: str, kind: str, field_type: str, group: str, **kw: Any) -> PropertyDef:
    return PropertyDef(name=name, label=label, type=kind, field_type=field_type, group_name=group, **kw)


def _contact_properties() -> list[PropertyDef]:
    ci = "contactinformation"
    return [
        _p("email", "Email", "string", "text", ci, has_unique_value=True),
        _p("firstname", "First Name", "string", "text", ci),
        _p("lastname", "Last Name", "string", "text", ci),
        _p("jobtitle", "Job Title", "string", "text", ci),
        _p("phone", "Phone Number", "string", "phonenumber", ci),
        _p("company", "Company Name", "string", "text", ci),
        _p("website", "Website URL", "string", "text", ci),
        _p("hs_email_domain", "Email Domain", "string", "text", "emailinformation", read_only=True),
        # Free text on contacts (the company's industry is an enumeration).
        _p("industry", "Industry", "string", "text", ci),
        _p("numemployees", "Number of Employees", "enumeration", "select", ci, options=tuple((b, b) for b in EMPLOYEE_BANDS)),
        _p("annualrevenue", "Annual Revenue", "string", "text", ci),
        _p("country", "Country/Region", "string", "text", ci),
        _p("state", "State/Region", "string", "text", ci),
        _p("city", "City", "string", "text", ci),
        _p("zip", "Postal Code", "string", "text", ci),
        _p("hs_analytics_source", "Original Traffic Source", "enumeration", "select", "analyticsinformation",
           options=ANALYTICS_SOURCES, read_only=True),
        _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", ci, options=LIFECYCLE_STAGES),
        _p("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", options=LEAD_STATUSES),
        _p("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties", **OWNER_REFERENCE),
        _p("createdate", "Create Date", "datetime", "date", ci, read_only=True),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", ci, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", ci, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", ci, read_only=True),
        *_contact_activity_properties(),
        # The account's own custom properties (not HubSpot-defined).
        _p("product_interest", "Product interest", "enumeration", "checkbox", ci, options=PRODUCT_OPTIONS, hubspot_defined=False),
        *_qualification_properties(),
        _p("pricing_page_views", "Pricing page views", "number", "number", ci, hubspot_defined=False),
    ]


def _qualification_properties() -> list[PropertyDef]:
    """The portal's own BANT and seniority properties (custom: each portal names and values them its own way)."""
    q = "lead_qualification"
    return [
        _p("budget_range", "Budget range", "enumeration", "select", q, options=BUDGET_OPTIONS, hubspot_defined=False),
        _p("decision_role", "Decision role", "enumeration", "select", q, options=ROLE_OPTIONS, hubspot_defined=False),
        _p("need_confirmed", "Need confirmed", "bool", "booleancheckbox", q, options=BOOL_OPTIONS, hubspot_defined=False),
        _p("purchase_timeline", "Purchase timeline", "enumeration", "select", q, options=TIMELINE_OPTIONS, hubspot_defined=False),
        _p("seniority", "Seniority", "enumeration", "select", q, options=SENIORITY_OPTIONS, hubspot_defined=False),
        _p("estimated_deal_value", "Estimated deal value", "number", "number", q, hubspot_defined=False),
    ]


def _contact_activity_properties() -> list[PropertyDef]:
    return [
        _p("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", "analyticsinformation", read_only=True),
        _p("hs_analytics_num_visits", "Number of Sessions", "number", "number", "analyticsinformation", read_only=True),
        _p("num_conversion_events", "Number of Form Submissions", "number", "number", "conversioninformation", read_only=True),
        _p("hs_email_open", "Marketing emails opened", "number", "number", "emailinformation", read_only=True),
        _p("hs_email_click", "Marketing emails clicked", "number", "number", "emailinformation", read_only=True),
        _p("notes_last_updated", "Last Activity Date", "datetime", "date", "sales_properties", read_only=True),
        _p("hs_last_sales_activity_timestamp", "Last Engagement Date", "datetime", "date", "sales_properties", read_only=True),
        _p("hs_analytics_last_visit_timestamp", "Time of Last Session", "datetime", "date", "analyticsinformation", read_only=True),
        _p("hs_email_last_open_date", "Last marketing email open date", "datetime", "date", "emailinformation", read_only=True),
        _p("hs_email_last_click_date", "Last marketing email click date", "datetime", "date", "emailinformation", read_only=True),
        _p("recent_conversion_date", "Recent Conversion Date", "datetime", "date", "conversioninformation", read_only=True),
    ]


def _company_properties() -> list[PropertyDef]:
    co = "companyinformation"
    return [
        _p("name", "Company name", "string", "text", co),
        _p("domain", "Company Domain Name", "string", "text", co),
        _p("website", "Website URL", "string", "text", co),
        _p("industry", "Industry", "enumeration", "select", co, options=COMPANY_INDUSTRIES),
        _p("numberofemployees", "Number of Employees", "number", "number", co),
        _p("annualrevenue", "Annual Revenue", "number", "number", co),
        _p("country", "Country/Region", "string", "text", co),
        _p("city", "City", "string", "text", co),
        _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", co, options=LIFECYCLE_STAGES),
        _p("hubspot_owner_id", "Company owner", "enumeration", "select", co, **OWNER_REFERENCE),
        _p("hs_parent_company_id", "Parent Company", "number", "number", co, read_only=True),
        _p("createdate", "Create Date", "datetime", "date", co, read_only=True),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", co, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", co, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", co, read_only=True),
    ]


def _lead_properties() -> list[PropertyDef]:
    li = "lead_information"
    return [
        _p("hs_lead_name", "Lead name", "string", "text", li),
        _p("hs_pipeline", "Pipeline", "enumeration", "select", li, options=(("lead-pipeline-id", "Lead pipeline"),)),
        _p("hs_pipeline_stage", "Lead stage", "enumeration", "select", li, options=LEAD_PIPELINE_STAGES),
        _p("hs_lead_label", "Lead label", "enumeration", "select", li, options=(("HOT", "Hot"), ("WARM", "Warm"), ("COLD", "Cold"))),
        _p("hubspot_owner_id", "Lead owner", "enumeration", "select", li, **OWNER_REFERENCE),
        _p("hs_createdate", "Create Date", "datetime", "date", li, read_only=True),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", li, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", li, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", li, read_only=True),
    ]


def standard_properties() -> dict[str, dict[str, PropertyDef]]:
    """Object type → property name → definition, as a fresh account has them."""
    return {"contacts": {p.name: p for p in _contact_properties()}, "companies": {p.name: p for p in _company_properties()},
            "leads": {p.name: p for p in _lead_properties()}}


def parse_options(raw: Any) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise abort(400, "VALIDATION_ERROR", "options must be a list")
    ordered = sorted(enumerate(raw), key=lambda pair: (int((pair[1] or {}).get("displayOrder", pair[0]) or 0), pair[0]))
    out = []
    for _, option in ordered:
        if not isinstance(option, dict) or not option.get("value") or "label" not in option:
            raise abort(400, "VALIDATION_ERROR", "every option needs a label and a value")
        out.append((str(option["value"]), str(option["label"])))
    return tuple(out)


def list_properties(defs: Mapping[str, PropertyDef], query: Mapping[str, list[str]]) -> Reply:
    archived = flag(query, "archived")
    return Reply(200, {"results": [p.to_json() for p in defs.values() if p.archived is archived]})


def get_property(defs: Mapping[str, PropertyDef], name: str, query: Mapping[str, list[str]]) -> Reply:
    pdef = defs.get(name)
    if pdef is None or pdef.archived is not flag(query, "archived"):
        raise abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist", context={"propertyName": [name]})
    return Reply(200, pdef.to_json())


def create_property(defs: dict[str, PropertyDef], body: Any, now_ms: int) -> Reply:
    if not isinstance(body, dict):
        raise abort(400, "VALIDATION_ERROR", "property create body must be a JSON object")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise abort(400, "VALIDATION_ERROR", f"Missing required fields: {missing}")
    name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
    if not PROPERTY_NAME.match(name):
        raise abort(400, "VALIDATION_ERROR", f"Invalid property name {name!r}: lower-case letters, digits and _ only")
    if kind not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
        raise abort(400, "VALIDATION_ERROR", f"Invalid type/fieldType {kind!r}/{field_type!r}")
    if kind == "bool" and field_type != "booleancheckbox":
        raise abort(400, "VALIDATION_ERROR", "bool properties need fieldType booleancheckbox")
    existing = defs.get(name)
    if existing is not None and not existing.archived:
        raise abort(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
    pdef = PropertyDef(
        name=name, label=str(body["label"]), type=kind, field_type=field_type, group_name=str(body["groupName"]),
        options=parse_options(body.get("options")), hubspot_defined=False, description=str(body.get("description") or ""),
        has_unique_value=bool(body.get("hasUniqueValue")), created_ms=now_ms, updated_ms=now_ms,
    )
    defs[name] = pdef
    return Reply(201, pdef.to_json())


def update_property(defs: dict[str, PropertyDef], name: str, body: Any, now_ms: int) -> Reply:
    pdef = defs.get(name)
    if pdef is None or pdef.archived:
        raise abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
    if not isinstance(body, dict):
        raise abort(400, "VALIDATION_ERROR", "property update body must be a JSON object")
    changes: dict[str, Any] = {"updated_ms": now_ms}
    if "label" in body:
        changes["label"] = str(body["label"])
    if "description" in body:
        changes["description"] = str(body["description"])
    if "options" in body:
        changes["options"] = parse_options(body["options"])
    defs[name] = replace(pdef, **changes)
    return Reply(200, defs[name].to_json())


def archive_property(defs: dict[str, PropertyDef], name: str, now_ms: int) -> Reply:
    pdef = defs.get(name)
    if pdef is None or pdef.archived:
        raise abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
    if pdef.hubspot_defined:
        raise abort(400, "VALIDATION_ERROR", f"HubSpot-defined property {name} cannot be archived")
    defs[name] = replace(pdef, archived=True, updated_ms=now_ms)
    return Reply(204)
