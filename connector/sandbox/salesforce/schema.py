"""What the Salesforce sandbox's org is made of: API versions, limits, sObject field definitions, ids, value formats, errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

API_VERSIONS = ("57.0", "58.0", "59.0", "60.0", "61.0", "62.0", "63.0")
# Seeded timestamps hang off a fixed date so the data is identical on every run.
SEED_BASE = datetime(2024, 6, 1, tzinfo=UTC)
ORG_ID = "00D000000000001AAA"
MAX_COLLECTION_UPDATE = 200  # update limit [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids]
MAX_COLLECTION_RETRIEVE = 2000  # retrieve (POST) ids [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids]
DEFAULT_BATCH = 2000  # query page size; Sforce-Query-Options batchSize clamps to 200..2000
# [crm-behaviour: Salesforce query pages: 200 to 2,000 rows]
# URI + headers of a REST call may not pass 16,384 bytes: 414 URI Too Long for the URI alone, else 431
# [crm-behaviour: Salesforce request URI: 16,384 bytes].
# A SOQL query travels in the GET URL, so a long IN list meets this before SOQL's own 100,000-character cap.
REQUEST_LINE_MAX = 16_384
LEAD_STATUSES = (
    # ApiName, SortOrder, IsConverted, IsDefault [crm-behaviour: Salesforce lead statuses]
    ("Open - Not Contacted", 1, False, True),
    ("Working - Contacted", 2, False, False),
    ("Closed - Converted", 3, True, False),
    ("Closed - Not Converted", 4, False, False),
)
RATINGS = ("Hot", "Warm", "Cold")
# The standard Industry picklist's default values (org-editable).
INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction", "Consulting",
    "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental", "Finance", "Food & Beverage",
    "Government", "Healthcare", "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit",
    "Other", "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation", "Utilities",
)
# State and Country/Territory Picklists are enabled in this org: CountryCode / StateCode hold ISO codes, the
# labels are the names Country / State show. (value, label); states only where Salesforce ships them.
COUNTRY_CODES = (
    ("US", "United States"), ("CA", "Canada"), ("GB", "United Kingdom"), ("DE", "Germany"), ("FI", "Finland"),
    ("TH", "Thailand"), ("BR", "Brazil"), ("JP", "Japan"), ("FR", "France"), ("NL", "Netherlands"), ("SE", "Sweden"),
    ("IE", "Ireland"), ("AU", "Australia"), ("SG", "Singapore"), ("MX", "Mexico"), ("IN", "India"),
)
STATE_CODES = (
    ("CA", "California"), ("NY", "New York"), ("TX", "Texas"), ("WA", "Washington"), ("MA", "Massachusetts"),
    ("ON", "Ontario"), ("BC", "British Columbia"), ("QC", "Quebec"), ("SP", "São Paulo"), ("RJ", "Rio de Janeiro"),
)
# The org's own qualification fields (custom picklists: each org names and values them its own way).
BUDGET_VALUES = ("Under $50K", "$50K-$250K", "Over $250K")
ROLE_VALUES = ("Decision Maker", "Influencer", "Evaluator", "End User")
TIMEFRAME_VALUES = ("This Quarter", "Next Quarter", "This Year", "No Plans")
SENIORITY_VALUES = ("C-Level", "VP", "Director", "Manager", "Individual Contributor", "Other")
PRODUCT_VALUES = ("Analytics", "CRM", "Payments", "Support")
STRINGISH = frozenset({"string", "email", "phone", "url", "picklist", "multipicklist"})
NUMERIC = frozenset({"int", "double", "currency", "percent"})


def sf_id(prefix: str, n: int) -> str:
    """An 18-character, Salesforce-shaped id whose string order is creation order."""
    return f"{prefix}{n:012d}AAA"


def format_value(value: object) -> object:
    """Render a stored value the way the REST API does (datetimes as `…000+0000`) [crm-behaviour: Salesforce datetime format]."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def sf_errors(code: str, message: str, fields: Iterable[str] = ()) -> list[dict[str, Any]]:
    """A REST error body: a list with one error."""
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        body["fields"] = list(fields)
    return [body]


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # id, reference, string, email, phone, url, picklist, multipicklist, boolean, int, double, currency, date, datetime
    updateable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()
    picklist_labels: tuple[str, ...] = ()  # labels when they differ from the values (CountryCode: "US" / "United States")
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    default: str | None = None


def lead_fields() -> dict[str, FieldDef]:
    """The Lead object's fields, standard and the org's custom ones."""
    defs = [
        FieldDef("Id", "id", updateable=False),
        FieldDef("IsDeleted", "boolean", updateable=False),
        FieldDef("MasterRecordId", "reference", updateable=False, reference_to=("Lead",)),
        FieldDef("FirstName", "string"),
        FieldDef("LastName", "string"),
        FieldDef("Name", "string", updateable=False),
        FieldDef("Title", "string"),
        FieldDef("Company", "string"),
        FieldDef("Email", "email"),
        FieldDef("Phone", "phone"),
        FieldDef("Website", "url"),
        FieldDef("Industry", "picklist", picklist=INDUSTRIES),
        FieldDef("NumberOfEmployees", "int"),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("Country", "string"),
        FieldDef("State", "string"),
        _coded("CountryCode", COUNTRY_CODES),
        _coded("StateCode", STATE_CODES),
        FieldDef("City", "string"),
        FieldDef("PostalCode", "string"),
        FieldDef("LeadSource", "picklist"),
        FieldDef("Status", "picklist", picklist=tuple(s[0] for s in LEAD_STATUSES), restricted=True, default=LEAD_STATUSES[0][0]),
        FieldDef("Rating", "picklist", picklist=RATINGS, restricted=True),
        FieldDef("OwnerId", "reference", reference_to=("Group", "User")),
        FieldDef("IsConverted", "boolean", updateable=False),
        FieldDef("ConvertedDate", "date", updateable=False),
        FieldDef("ConvertedContactId", "reference", updateable=False, reference_to=("Contact",)),
        FieldDef("CreatedDate", "datetime", updateable=False),
        FieldDef("LastModifiedDate", "datetime", updateable=False),
        FieldDef("LastModifiedById", "reference", updateable=False, reference_to=("User",)),
        FieldDef("SystemModstamp", "datetime", updateable=False),
        FieldDef("LastActivityDate", "date", updateable=False),
        FieldDef("Connector_Score__c", "double", custom=True),
        FieldDef("Product_Interest__c", "multipicklist", custom=True, picklist=PRODUCT_VALUES),
        FieldDef("Seniority__c", "picklist", custom=True, picklist=SENIORITY_VALUES),
        FieldDef("Budget__c", "picklist", custom=True, picklist=BUDGET_VALUES, restricted=True),
        FieldDef("Buying_Role__c", "picklist", custom=True, picklist=ROLE_VALUES, restricted=True),
        FieldDef("Need_Confirmed__c", "boolean", custom=True),
        FieldDef("Timeframe__c", "picklist", custom=True, picklist=TIMEFRAME_VALUES, restricted=True),
        FieldDef("Estimated_Deal_Value__c", "currency", custom=True),
        FieldDef("Page_Views__c", "double", custom=True),
        FieldDef("Last_Visit__c", "datetime", custom=True),
    ]
    return {d.name: d for d in defs}


def _coded(name: str, pairs: tuple[tuple[str, str], ...]) -> FieldDef:
    return FieldDef(name, "picklist", picklist=tuple(v for v, _ in pairs), picklist_labels=tuple(label for _, label in pairs),
                    restricted=True)


def _simple_fields(spec: str) -> dict[str, FieldDef]:
    out: dict[str, FieldDef] = {}
    for item in spec.split():
        name, _, kind = item.partition(":")
        out[name] = FieldDef(name, kind, updateable=kind not in ("id",))
    return out


SCHEMAS_STATIC: dict[str, dict[str, FieldDef]] = {
    "User": _simple_fields("Id:id Username:string Email:email FirstName:string LastName:string Name:string "
                           "IsActive:boolean UserType:string"),
    "Group": _simple_fields("Id:id Name:string DeveloperName:string Type:string Email:email"),
    "Account": _simple_fields("Id:id IsDeleted:boolean Name:string Website:url OwnerId:reference ParentId:reference "
                              "Industry:string NumberOfEmployees:int"),
    "Contact": _simple_fields("Id:id IsDeleted:boolean FirstName:string LastName:string Email:email OwnerId:reference "
                              "AccountId:reference"),
    "LeadStatus": _simple_fields("Id:id MasterLabel:string ApiName:string SortOrder:int IsConverted:boolean "
                                 "IsDefault:boolean"),
}
KEY_PREFIX = {"Lead": "00Q", "User": "005", "Group": "00G", "Account": "001", "Contact": "003", "LeadStatus": "01J"}


def describe_field(fdef: FieldDef, values: tuple[str, ...]) -> dict[str, Any]:
    """One field of a describe result, with its (current) picklist values."""
    labels = dict(zip(fdef.picklist, fdef.picklist_labels, strict=False))
    return {
        "name": fdef.name, "label": fdef.name.removesuffix("__c").replace("_", " "), "type": fdef.type,
        "updateable": fdef.updateable, "createable": fdef.updateable, "custom": fdef.custom, "nillable": fdef.type != "boolean",
        "length": 255 if fdef.type in STRINGISH else 0, "precision": 18 if fdef.type in ("double", "currency") else 0,
        "scale": 0, "restrictedPicklist": fdef.restricted, "referenceTo": list(fdef.reference_to),
        "picklistValues": [{"active": True, "defaultValue": v == fdef.default, "label": labels.get(v, v), "validFor": None,
                            "value": v} for v in values],
    }


def render_row(sobject: str, row: Mapping[str, Any], fields: Iterable[str], version: str) -> dict[str, Any]:
    """A row as the REST API returns a record: `attributes` and the asked-for fields."""
    out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}"}}
    for name in fields:
        out[name] = format_value(row.get(name))
    return out
