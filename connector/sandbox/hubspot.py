"""A HubSpot-compatible CRM v3/v4 HTTP server on loopback: seeded contacts, companies, leads, owners, properties and fault knobs."""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
import uuid
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connector.core.clock import Clock, SystemClock
from connector.sandbox.seed import SEED_REPS, SeedPerson, generate_companies, generate_people

OBJECT_TYPES = ("contacts", "companies", "leads")
# Paths accept the plural name, the singular and the object type id [crm-behaviour: HubSpot object paths].
OBJECT_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "leads": "leads", "lead": "leads", "0-136": "leads",
}
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "leads": "LEAD"}
# Distinct id ranges per object type, so an id used against the wrong object type is a 404, not a silent hit.
ID_START = {"contacts": 101, "companies": 20_000_001, "leads": 400_000_001}
CREATED_PROPERTY = {"contacts": "createdate", "companies": "createdate", "leads": "hs_createdate"}
# Contacts stamp `lastmodifieddate`; companies and leads `hs_lastmodifieddate` [crm-behaviour: HubSpot modified-date property per object].
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "leads": "hs_lastmodifieddate"}
# Properties a search / list returns when none are asked for [crm-behaviour: HubSpot search default properties].
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "leads": ("hs_createdate", "hs_lastmodifieddate", "hs_lead_name", "hs_object_id"),
}
# Free-text `query` searches these properties.
QUERY_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname", "phone", "company"),
    "companies": ("name", "domain", "website"),
    "leads": ("hs_lead_name",),
}
LIST_LIMIT_MAX = 100  # list GET page size [crm-behaviour: HubSpot list pages hold at most 100 records]
BATCH_MAX = 100  # batch read / update / create inputs [crm-behaviour: HubSpot batch calls take at most 100 inputs]
SEARCH_LIMIT_MAX = 200  # search page size [crm-behaviour: HubSpot search: 10,000 results per query]
SEARCH_RESULT_CAP = 10_000  # per query; beyond → HTTP 400 [crm-behaviour: HubSpot search: 10,000 results per query]
FILTER_GROUPS_MAX, FILTERS_PER_GROUP_MAX, FILTERS_TOTAL_MAX = 5, 10, 25  # [crm-behaviour: HubSpot search filters and sorting]
ASSOCIATION_BATCH_MAX = 1_000  # v4 batch read ids per request [crm-behaviour: HubSpot associations]
WINDOW_10S = 10.0
# request_log / change_log keep the newest entries only, so a long-running `connector sandbox` stays bounded.
LOG_MAX = 1_000_000
DEFAULT_DAILY_LIMIT = 1_000_000  # Enterprise [crm-behaviour: HubSpot rate limits: burst and daily]
OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})
PROPERTY_TYPES = frozenset({"string", "number", "date", "datetime", "enumeration", "bool"})
FIELD_TYPES = frozenset({
    "text", "textarea", "number", "date", "file", "select", "radio", "checkbox", "booleancheckbox",
    "calculation_equation", "phonenumber", "html",
})
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
EPOCH_MS = re.compile(r"^-?\d{1,16}$")
TOKEN_SPLIT = re.compile(r"[\s@.,;:/\\\-_()'\"]+")

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
COMPANY_INDUSTRIES = tuple((v, v.replace("_", " ").title()) for v in (
    "SOFTWARE", "FINANCIAL_SERVICES", "HEALTHCARE", "RETAIL", "MANUFACTURING", "EDUCATION", "LOGISTICS", "MEDIA",
))

# Association type ids (HUBSPOT_DEFINED) [crm-behaviour: HubSpot associations]: contact→company primary 1 / unlabeled 279,
# company→contact primary 2 / unlabeled 280, company child→parent 14 / parent→child 13.
# Lead↔contact 578/579 are product knowledge, not verified against the docs.
ASSOC_CONTACT_COMPANY = ((1, "Primary"), (279, None))
ASSOC_COMPANY_CONTACT = ((2, "Primary"), (280, None))
ASSOC_CHILD_TO_PARENT = ((14, "Parent Company"),)
ASSOC_PARENT_TO_CHILD = ((13, "Child Company"),)
ASSOC_LEAD_CONTACT = ((578, "Primary"),)
ASSOC_CONTACT_LEAD = ((579, "Primary"),)
# v3 `associations=` names on a single-record GET.
ASSOC_V3_NAMES = {1: "contact_to_company", 279: "contact_to_company_unlabeled", 2: "company_to_contact",
                  280: "company_to_contact_unlabeled", 13: "parent_to_child_company", 14: "child_to_parent_company",
                  578: "lead_to_primary_contact", 579: "contact_to_lead"}

OWNER_ID_START = 70_000_001
USER_ID_START = 9_100_001
QUEUE_OWNER_ID = "70000100"
OWNERS_CREATED = datetime(2023, 1, 16, 9, 0, tzinfo=UTC)
TEAMS = {"SMB": "4001", "Enterprise": "4002"}


@lru_cache(maxsize=262_144)
def iso(ms: int) -> str:
    """Epoch milliseconds → HubSpot's v3 datetime form, e.g. `2024-05-31T10:11:12.345Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@lru_cache(maxsize=262_144)
def time_ms(raw: str) -> int | None:
    """A datetime/date property or filter value (epoch ms or ISO-8601) → epoch ms; None when unparseable."""
    text = raw.strip()
    if not text:
        return None
    if EPOCH_MS.match(text):
        return int(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return to_ms(value)


def _float_or_none(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        return None


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


def _standard_properties() -> dict[str, dict[str, PropertyDef]]:
    ci, co, li = "contactinformation", "companyinformation", "lead_information"
    owner = dict(referenced_object_type="OWNER", external_options=True)
    contacts = [
        _p("email", "Email", "string", "text", ci, has_unique_value=True),
        _p("firstname", "First Name", "string", "text", ci),
        _p("lastname", "Last Name", "string", "text", ci),
        _p("jobtitle", "Job Title", "string", "text", ci),
        _p("phone", "Phone Number", "string", "phonenumber", ci),
        _p("company", "Company Name", "string", "text", ci),
        _p("website", "Website URL", "string", "text", ci),
        _p("hs_email_domain", "Email Domain", "string", "text", "emailinformation", read_only=True),
        _p("industry", "Industry", "string", "text", ci),
        # HubSpot's own numemployees is a range dropdown; the sandbox keeps the exact number the seed has.
        _p("numemployees", "Number of Employees", "number", "number", ci),
        _p("annualrevenue", "Annual Revenue", "number", "number", ci),
        _p("country", "Country/Region", "string", "text", ci),
        _p("state", "State/Region", "string", "text", ci),
        _p("city", "City", "string", "text", ci),
        _p("zip", "Postal Code", "string", "text", ci),
        _p("hs_analytics_source", "Original Traffic Source", "enumeration", "select", "analyticsinformation",
           options=ANALYTICS_SOURCES, read_only=True),
        _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", ci, options=LIFECYCLE_STAGES),
        _p("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", options=LEAD_STATUSES),
        _p("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties", **owner),
        _p("createdate", "Create Date", "datetime", "date", ci, read_only=True),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", ci, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", ci, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", ci, read_only=True),
        _p("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", "analyticsinformation", read_only=True),
        _p("hs_analytics_num_visits", "Number of Sessions", "number", "number", "analyticsinformation", read_only=True),
        _p("num_conversion_events", "Number of Form Submissions", "number", "number", "conversioninformation", read_only=True),
        _p("hs_email_open", "Marketing emails opened", "number", "number", "emailinformation", read_only=True),
        _p("hs_email_click", "Marketing emails clicked", "number", "number", "emailinformation", read_only=True),
        _p("notes_last_updated", "Last Activity Date", "datetime", "date", "sales_properties", read_only=True),
        _p("hs_last_sales_activity_timestamp", "Last Engagement Date", "datetime", "date", "sales_properties", read_only=True),
        # The account's own custom properties (not HubSpot-defined).
        _p("product_interest", "Product interest", "enumeration", "checkbox", ci, options=PRODUCT_OPTIONS, hubspot_defined=False),
        *(_p(f"bant_{k}", f"BANT: {k}", "bool", "booleancheckbox", ci, options=BOOL_OPTIONS, hubspot_defined=False)
          for k in ("budget", "authority", "need", "timeframe")),
        _p("pricing_page_views", "Pricing page views", "number", "number", ci, hubspot_defined=False),
    ]
    companies = [
        _p("name", "Company name", "string", "text", co),
        _p("domain", "Company Domain Name", "string", "text", co),
        _p("website", "Website URL", "string", "text", co),
        _p("industry", "Industry", "enumeration", "select", co, options=COMPANY_INDUSTRIES),
        _p("numberofemployees", "Number of Employees", "number", "number", co),
        _p("annualrevenue", "Annual Revenue", "number", "number", co),
        _p("country", "Country/Region", "string", "text", co),
        _p("city", "City", "string", "text", co),
        _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", co, options=LIFECYCLE_STAGES),
        _p("hubspot_owner_id", "Company owner", "enumeration", "select", co, **owner),
        _p("hs_parent_company_id", "Parent Company", "number", "number", co, read_only=True),
        _p("createdate", "Create Date", "datetime", "date", co, read_only=True),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", co, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", co, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", co, read_only=True),
    ]
    leads = [
        _p("hs_lead_name", "Lead name", "string", "text", li),
        _p("hs_pipeline", "Pipeline", "enumeration", "select", li, options=(("lead-pipeline-id", "Lead pipeline"),)),
        _p("hs_pipeline_stage", "Lead stage", "enumeration", "select", li, options=LEAD_PIPELINE_STAGES),
        _p("hs_lead_label", "Lead label", "enumeration", "select", li, options=(("HOT", "Hot"), ("WARM", "Warm"), ("COLD", "Cold"))),
        _p("hubspot_owner_id", "Lead owner", "enumeration", "select", li, **owner),
        _p("hs_createdate", "Create Date", "datetime", "date", li, read_only=True),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", li, read_only=True),
        _p("hs_object_id", "Record ID", "number", "number", li, read_only=True),
        _p("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", li, read_only=True),
    ]
    return {"contacts": {p.name: p for p in contacts}, "companies": {p.name: p for p in companies},
            "leads": {p.name: p for p in leads}}


@dataclass(slots=True)
class _Record:
    id: int
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    change_source: str = "IMPORT"
    archived: bool = False
    archived_ms: int | None = None
    merged_into: int | None = None

    @property
    def live(self) -> bool:
        return not self.archived and self.merged_into is None


@dataclass(frozen=True)
class Change:
    """One change to a record, in order: API writes carry source INTEGRATION, person edits CRM_UI.

    [crm-behaviour: HubSpot echo events carry the app id]
    """

    object_type: str
    record_id: str
    properties: Mapping[str, str]
    source: str
    occurred_ms: int


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _Abort(Exception):
    """Internal control flow of the sandbox: carries the HTTP reply for a refused request."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _abort(status: int, category: str, message: str, **extra: Any) -> _Abort:
    return _Abort(_Reply(status, _error_body(category, message, **extra)))


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[-1].strip().lower() == "true"


def _multi(query: Mapping[str, list[str]], name: str) -> list[str]:
    """A list query parameter: repeated (`properties=a&properties=b`, the SDK's form) or comma-separated."""
    out: list[str] = []
    for value in query.get(name) or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    raw = (query.get(name) or [""])[-1]
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _abort(400, "VALIDATION_ERROR", f"Invalid value for query parameter {name}: {raw!r}") from None


class HubSpotSandbox:
    """A loopback HubSpot account: real v3/v4 paths and shapes, limits, per-record errors and fault knobs.

    The real `hubspot-api-client` works against it unchanged with `hubspot.Client.create(access_token=sb.token,
    host=sb.base_url)` [crm-behaviour: hubspot-api-client: host and retries]. All data helpers are thread-safe.
    """

    def __init__(
        self,
        seed: int = 42,
        contacts: int = 300,
        token: str = "sandbox-token",
        companies: int = 60,
        *,
        leads: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed_base: datetime | None = None,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.base_url = ""
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.request_log: list[tuple[float, str, str, int]] = []
        self.change_log: list[Change] = []
        # Fault knobs: attributes, changeable while the server runs.
        self.requests_per_10s: int | None = None
        self.search_rate_per_second: int | None = None
        self.daily_limit: int = DEFAULT_DAILY_LIMIT
        self.fail_write_ids: dict[str, tuple[str, str]] = {}
        self.error_rate_5xx: float = 0.0
        self.latency_seconds: float = 0.0
        self._fault_rng = random.Random(seed)
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily_used = 0
        self._daily_day = ""
        self._properties = _standard_properties()
        self._records: dict[str, dict[int, _Record]] = {t: {} for t in OBJECT_TYPES}
        # Ids ascending (= creation order) and the records in the same order, for bisecting on id.
        self._order: dict[str, list[int]] = {t: [] for t in OBJECT_TYPES}
        self._rows: dict[str, list[_Record]] = {t: [] for t in OBJECT_TYPES}
        self._next_id = dict(ID_START)
        # (from type, to type) → from id → to id → [(typeId, label)]
        self._assoc: dict[tuple[str, str], dict[int, dict[int, list[tuple[int, str | None]]]]] = {}
        self._owners: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        base = seed_base or self._clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self._seed(seed, contacts, companies, contacts // 4 if leads is None else leads, base)

    # lifecycle

    def start(self) -> str:
        """Serve on host:port (0 = a free port) in a daemon thread; returns the base URL."""
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.base_url = f"http://{self.host}:{server.server_address[1]}"
        # A short poll interval keeps stop() (shutdown waits for the next poll) fast.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="hubspot-sandbox", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubSpotSandbox:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # seed

    def _seed(self, seed: int, n_contacts: int, n_companies: int, n_leads: int, base: datetime) -> None:
        base_ms = to_ms(base)
        day_ms = 86_400_000
        rng = random.Random(seed * 7919 + 1)  # the sandbox's own choices; seed.py's stream stays untouched
        reps = list(SEED_REPS)
        for i, rep in enumerate(reps):
            team = "Enterprise" if "enterprise" in rep.email else "SMB"
            owner_id = str(OWNER_ID_START + i)
            self._owners[owner_id] = {
                "id": owner_id, "email": rep.email, "firstName": rep.first_name, "lastName": rep.last_name,
                "userId": USER_ID_START + i if rep.is_active else None, "userIdIncludingInactive": USER_ID_START + i,
                "type": "PERSON", "teams": [{"id": TEAMS[team], "name": team, "primary": True}],
                "archived": not rep.is_active, "createdAt": iso(to_ms(OWNERS_CREATED) + i * 1000),
                "updatedAt": iso(to_ms(OWNERS_CREATED) + i * 1000),
            }
        self._owners[QUEUE_OWNER_ID] = {
            "id": QUEUE_OWNER_ID, "email": None, "firstName": "Inbound", "lastName": "Queue", "userId": None,
            "userIdIncludingInactive": None, "type": "QUEUE", "teams": [], "archived": False,
            "createdAt": iso(to_ms(OWNERS_CREATED)), "updatedAt": iso(to_ms(OWNERS_CREATED)),
        }
        rep_owner = [str(OWNER_ID_START + i) for i in range(len(reps))]
        active = [rep_owner[i] for i, rep in enumerate(reps) if rep.is_active]
        inactive = [rep_owner[i] for i, rep in enumerate(reps) if not rep.is_active]

        seed_companies = generate_companies(n_companies, seed)
        company_ids: dict[str, int] = {}
        for company in seed_companies:
            created = base_ms - int(rng.uniform(200, 800) * day_ms)
            modified = min(base_ms, created + int(rng.uniform(0, 150) * day_ms))
            props = {
                "name": company.name, "domain": company.domain, "website": f"https://www.{company.domain}",
                "industry": company.industry, "numberofemployees": str(company.employees),
                "annualrevenue": str(company.annual_revenue), "country": company.country,
            }
            if company.owner_index is not None:
                props["hubspot_owner_id"] = rep_owner[company.owner_index]
            cid = self._insert("companies", props, created, modified, "IMPORT")
            company_ids[company.key] = cid
            if company.parent_key is not None:
                parent = company_ids[company.parent_key]
                self._records["companies"][cid].props["hs_parent_company_id"] = str(parent)
                self._link("companies", cid, "companies", parent, ASSOC_CHILD_TO_PARENT, ASSOC_PARENT_TO_CHILD)

        lead_every = max(1, n_contacts // n_leads) if n_leads > 0 else 0
        made_leads = 0
        for i, person in enumerate(generate_people(n_contacts, seed, seed_companies)):
            created = base_ms - int(person.created_days_ago * day_ms)
            modified = min(base_ms, created + int(rng.uniform(0, person.created_days_ago) * day_ms))
            props = self._person_properties(person, rng, active, inactive, base_ms, day_ms)
            contact_id = self._insert("contacts", props, created, modified, "IMPORT")
            if person.company_key is not None:
                self._link("contacts", contact_id, "companies", company_ids[person.company_key],
                           ASSOC_CONTACT_COMPANY, ASSOC_COMPANY_CONTACT)
            if lead_every and i % lead_every == 0 and made_leads < n_leads:
                made_leads += 1
                stage = rng.choices([s for s, _ in LEAD_PIPELINE_STAGES[:4]], weights=[70, 15, 10, 5])[0]
                lead_props = {"hs_lead_name": f"{person.first_name} {person.last_name}",
                              "hs_pipeline": "lead-pipeline-id", "hs_pipeline_stage": stage}
                if props.get("hubspot_owner_id"):
                    lead_props["hubspot_owner_id"] = props["hubspot_owner_id"]
                lead_created = min(base_ms, created + int(rng.uniform(0, 2) * day_ms))
                lead_id = self._insert("leads", lead_props, lead_created, max(lead_created, modified), "IMPORT")
                self._link("leads", lead_id, "contacts", contact_id, ASSOC_LEAD_CONTACT, ASSOC_CONTACT_LEAD)

    @staticmethod
    def _person_properties(
        person: SeedPerson, rng: random.Random, active: Sequence[str], inactive: Sequence[str], base_ms: int, day_ms: int,
    ) -> dict[str, str]:
        domain = person.email.rsplit("@", 1)[1]
        props = {
            "email": person.email, "firstname": person.first_name, "lastname": person.last_name,
            "jobtitle": person.title, "phone": person.phone, "company": person.company_name,
            "website": f"https://{person.company_domain}" if person.company_name else "",
            "hs_email_domain": domain, "industry": person.industry, "numemployees": str(person.employees),
            "annualrevenue": str(person.annual_revenue), "country": person.country, "state": person.state,
            "city": person.city, "zip": person.postal_code, "hs_analytics_source": person.lead_source,
            "hs_analytics_num_page_views": str(person.page_views),
            "hs_analytics_num_visits": str((person.page_views + 1) // 2),
            "num_conversion_events": str(person.form_submissions), "hs_email_open": str(person.email_opens),
            "hs_email_click": str(person.email_clicks), "pricing_page_views": str(person.pricing_page_views),
            "product_interest": person.product_interest,
        }
        for key, value in (("budget", person.budget), ("authority", person.authority), ("need", person.need),
                           ("timeframe", person.timeframe)):
            if value is not None:
                props[f"bant_{key}"] = "true" if value else "false"
        if person.last_activity_days_ago is not None:
            stamp = iso(base_ms - int(person.last_activity_days_ago * day_ms))
            props["notes_last_updated"] = stamp
            props["hs_last_sales_activity_timestamp"] = stamp
        props["lifecyclestage"] = rng.choices(
            ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity"], weights=[55, 35, 6, 3, 1])[0]
        props["hs_lead_status"] = rng.choices(["", "NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT"], weights=[60, 20, 10, 5, 5])[0]
        roll = rng.random()
        if roll < 0.12:
            props["hubspot_owner_id"] = rng.choice(list(active))
        elif roll < 0.14 and inactive:
            props["hubspot_owner_id"] = rng.choice(list(inactive))  # owned by a since-deactivated rep
        return {k: v for k, v in props.items() if v != ""}

    def _insert(self, object_type: str, props: Mapping[str, str], created_ms: int, modified_ms: int, source: str) -> int:
        rid = self._next_id[object_type]
        self._next_id[object_type] = rid + 1
        record = _Record(rid, {k: v for k, v in props.items() if v != ""}, created_ms, modified_ms, source)
        self._records[object_type][rid] = record
        self._order[object_type].append(rid)
        self._rows[object_type].append(record)
        return rid

    def _link(self, a_type: str, a_id: int, b_type: str, b_id: int,
              forward: Iterable[tuple[int, str | None]], backward: Iterable[tuple[int, str | None]]) -> None:
        for (ft, fid, tt, tid, kinds) in ((a_type, a_id, b_type, b_id, forward), (b_type, b_id, a_type, a_id, backward)):
            existing = self._assoc.setdefault((ft, tt), {}).setdefault(fid, {}).setdefault(tid, [])
            for kind in kinds:
                if kind not in existing:
                    existing.append(kind)

    # data helpers (thread-safe)

    def _now_ms(self) -> int:
        return to_ms(self._clock.now())

    def create_record(self, object_type: str, properties: Mapping[str, str], *, source: str = "CRM_UI") -> str:
        """A record made by a person (or an import); stamps created/modified dates; returns its id."""
        object_type = self._type_or_raise(object_type)
        with self._lock:
            now = self._now_ms()
            props = dict(properties)
            if object_type == "contacts" and "@" in props.get("email", ""):
                props.setdefault("hs_email_domain", props["email"].rsplit("@", 1)[1].lower())
            rid = self._insert(object_type, props, now, now, source)
            self.change_log.append(Change(object_type, str(rid), dict(props), source, now))
            if object_type == "contacts":
                # HubSpot's "auto-associate companies" setting links a new contact to the company with its email domain.
                company = self._company_by_domain(props.get("hs_email_domain", ""))
                if company is not None:
                    self._link("contacts", rid, "companies", company, ASSOC_CONTACT_COMPANY, ASSOC_COMPANY_CONTACT)
            return str(rid)

    def create_contact(self, properties: Mapping[str, str], *, source: str = "CRM_UI") -> str:
        """A new contact (e.g. a form fill or a rep typing it in); returns its id."""
        return self.create_record("contacts", properties, source=source)

    def person_update(self, object_type: str, record_id: str, properties: Mapping[str, str]) -> None:
        """A person's edit in HubSpot's UI: no API validation, bumps the modified date, change source CRM_UI."""
        with self._lock:
            record = self._require(object_type, record_id)
            self._apply(self._type_or_raise(object_type), record, properties, "CRM_UI")

    def get_record(self, object_type: str, record_id: str) -> dict[str, str] | None:
        """Current properties (strings, incl. created/modified dates and hs_object_id); None for an unknown id.

        Archived and merged-away records are still returned (see `is_archived`, `merged_into`).
        """
        object_type = self._type_or_raise(object_type)
        with self._lock:
            record = self._records[object_type].get(_as_int(record_id))
            return None if record is None else self._all_properties(object_type, record)

    def records_ids(self, object_type: str, *, archived: bool = False) -> list[str]:
        """Ids of live records (archived=False) or of archived ones (archived=True), ascending."""
        object_type = self._type_or_raise(object_type)
        with self._lock:
            records = self._records[object_type]
            return [str(i) for i in self._order[object_type]
                    if (records[i].live if not archived else records[i].archived and records[i].merged_into is None)]

    def is_archived(self, object_type: str, record_id: str) -> bool:
        with self._lock:
            return self._require(object_type, record_id).archived

    def merged_into(self, object_type: str, record_id: str) -> str | None:
        """The surviving record's id for a merged-away id (following chains), else None."""
        with self._lock:
            record = self._require(object_type, record_id)
            if record.merged_into is None:
                return None
            survivor = self._resolve(self._type_or_raise(object_type), record.id)
            return None if survivor is None else str(survivor.id)

    def last_change_source(self, object_type: str, record_id: str) -> str:
        """INTEGRATION (an API write), CRM_UI (a person), or IMPORT (seeded) — the source of the last change."""
        with self._lock:
            return self._require(object_type, record_id).change_source

    def archive(self, object_type: str, record_id: str) -> None:
        """Archive (soft-delete); like HubSpot, this does not bump the modified date.

        [crm-behaviour: HubSpot archiving does not bump the modified date]
        """
        with self._lock:
            record = self._require(object_type, record_id)
            record.archived = True
            record.archived_ms = self._now_ms()

    def merge(self, object_type: str, primary_id: str, merged_id: str, *, source: str = "CRM_UI") -> None:
        """Merge `merged_id` into `primary_id`: the old id now reads as the survivor.

        [crm-behaviour: HubSpot merges: the old id reads as the survivor]
        """
        object_type = self._type_or_raise(object_type)
        with self._lock:
            primary, merged = self._require(object_type, primary_id), self._require(object_type, merged_id)
            if primary.id == merged.id or not primary.live or not merged.live:
                raise ValueError(f"hubspot sandbox: cannot merge {object_type} {merged_id} into {primary_id}")
            self._merge(object_type, primary, merged, source)

    def set_all_modified(self, ts_ms: int, object_type: str | None = None) -> None:
        """Stamp every record (of one type, or all) with the same modified date: HubSpot bulk jobs do this.

        [crm-behaviour: Pitfall: many records share one modified time]
        """
        with self._lock:
            for otype in (self._type_or_raise(object_type),) if object_type else OBJECT_TYPES:
                for record in self._records[otype].values():
                    record.updated_ms = ts_ms

    def owners(self) -> list[dict[str, Any]]:
        """Every owner as the owners API shapes it, archived (deactivated) ones included, in id order."""
        with self._lock:
            return [dict(o) for _, o in sorted(self._owners.items())]

    def deactivate_owner(self, owner_id: str) -> None:
        """The user is deactivated: the owner becomes archived; records keep it as hubspot_owner_id."""
        with self._lock:
            owner = self._owners[owner_id]
            owner["archived"] = True
            owner["userId"] = None
            owner["updatedAt"] = iso(self._now_ms())

    def associated_ids(self, from_type: str, record_id: str, to_type: str) -> list[str]:
        with self._lock:
            links = self._assoc.get((self._type_or_raise(from_type), self._type_or_raise(to_type)), {})
            return [str(t) for t in links.get(_as_int(record_id), {})]

    def property_names(self, object_type: str) -> list[str]:
        with self._lock:
            return [n for n, p in self._properties[self._type_or_raise(object_type)].items() if not p.archived]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.request_log.clear()

    # internals: records

    @staticmethod
    def _type_or_raise(object_type: str) -> str:
        try:
            return OBJECT_ALIASES[object_type]
        except KeyError:
            raise ValueError(f"hubspot sandbox has no object type {object_type!r}; it has {list(OBJECT_TYPES)}") from None

    def _require(self, object_type: str, record_id: str) -> _Record:
        record = self._records[self._type_or_raise(object_type)].get(_as_int(record_id))
        if record is None:
            raise KeyError(f"hubspot sandbox: no {object_type} record {record_id}")
        return record

    def _resolve(self, object_type: str, rid: int, *, follow_merges: bool = True) -> _Record | None:
        record = self._records[object_type].get(rid)
        hops = 0
        while record is not None and record.merged_into is not None and follow_merges and hops < 100:
            record = self._records[object_type].get(record.merged_into)
            hops += 1
        return record

    def _company_by_domain(self, domain: str) -> int | None:
        if not domain:
            return None
        for record in self._records["companies"].values():
            if record.live and record.props.get("domain", "").lower() == domain.lower():
                return record.id
        return None

    def _apply(self, object_type: str, record: _Record, properties: Mapping[str, str], source: str) -> dict[str, str]:
        """Set values (`""` clears); bumps the modified date only when something changed; returns what changed."""
        changed: dict[str, str] = {}
        for name, value in properties.items():
            value = "" if value is None else str(value)
            if record.props.get(name, "") == value:
                continue
            changed[name] = value
            if value == "":
                record.props.pop(name, None)
            else:
                record.props[name] = value
            if object_type == "contacts" and name == "email" and "@" in value:
                record.props["hs_email_domain"] = value.rsplit("@", 1)[1].lower()
        if changed:
            now = self._now_ms()
            record.updated_ms = now
            record.change_source = source
            self.change_log.append(Change(object_type, str(record.id), changed, source, now))
        return changed

    def _merge(self, object_type: str, primary: _Record, merged: _Record, source: str) -> None:
        now = self._now_ms()
        merged.merged_into = primary.id
        old = [i for i in (primary.props.get("hs_merged_object_ids") or "").split(";") if i]
        old += [str(merged.id)] + [i for i in (merged.props.get("hs_merged_object_ids") or "").split(";") if i]
        primary.props["hs_merged_object_ids"] = ";".join(dict.fromkeys(old))
        for key, value in merged.props.items():
            primary.props.setdefault(key, value)  # the primary's values win; blanks are filled from the merged record
        for (ft, tt), links in list(self._assoc.items()):
            if ft == object_type and merged.id in links:
                for target, kinds in list(links[merged.id].items()):
                    back = self._assoc.get((tt, ft), {}).get(target, {}).get(merged.id, [])
                    self._link(ft, primary.id, tt, target, kinds, back)
        primary.updated_ms = now
        primary.change_source = source
        self.change_log.append(Change(object_type, str(primary.id), {"hs_merged_object_ids": primary.props["hs_merged_object_ids"]}, source, now))

    def _all_properties(self, object_type: str, record: _Record) -> dict[str, str]:
        props = dict(record.props)
        props[CREATED_PROPERTY[object_type]] = iso(record.created_ms)
        props[MODIFIED_PROPERTY[object_type]] = iso(record.updated_ms)
        props["hs_object_id"] = str(record.id)
        return props

    def _property_value(self, object_type: str, record: _Record, name: str) -> str | None:
        if name == "hs_object_id":
            return str(record.id)
        if name == CREATED_PROPERTY[object_type]:
            return iso(record.created_ms)
        if name == MODIFIED_PROPERTY[object_type]:
            return iso(record.updated_ms)
        return record.props.get(name)

    def _render(self, object_type: str, record: _Record, properties: Sequence[str] | None) -> dict[str, Any]:
        """A record as the SimplePublicObject model: requested known properties, `null` when they have no value."""
        defs = self._properties[object_type]
        names = [n for n in (properties or DEFAULT_PROPERTIES[object_type]) if n in defs]
        out: dict[str, Any] = {
            "id": str(record.id),
            "properties": {n: self._property_value(object_type, record, n) for n in names},
            "createdAt": iso(record.created_ms),
            "updatedAt": iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms is not None:
            out["archivedAt"] = iso(record.archived_ms)
        return out

    # internals: HTTP

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, _Reply]:
        """One request → (endpoint label, reply). Order: auth, daily limit, search / burst limits, 5xx, route."""
        split = urlsplit(raw_path)
        path = unquote(split.path).rstrip("/") or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        label, action, is_search = self._route(method, path)
        reply = self._serve(label, action, is_search, query, headers, body)
        return label, reply

    def _serve(self, label: str, action: Callable[[Mapping[str, list[str]], Any], _Reply] | None, is_search: bool,
               query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes) -> _Reply:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):].strip() != self.token:
            return _Reply(401, _error_body(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
                "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ))
        now = self._clock.monotonic()
        try:
            limited = self._check_limits(now, is_search)
            if limited is not None:
                reply = limited
            elif self.error_rate_5xx > 0 and self._fault_rng.random() < self.error_rate_5xx:
                status = self._fault_rng.choice((502, 503))
                reply = _Reply(status, _error_body("INTERNAL_ERROR", "Bad Gateway" if status == 502 else "Service Unavailable"))
            elif action is None:
                reply = _Reply(404, _error_body("OBJECT_NOT_FOUND", "Resource not found"))
            else:
                payload: Any = None
                if body:
                    try:
                        payload = json.loads(body)
                    except ValueError as exc:
                        raise _abort(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1: {exc}") from None
                reply = action(query, payload)
        except _Abort as abort:
            reply = abort.reply
        if not is_search:
            # Search responses carry no X-HubSpot-RateLimit-* headers [crm-behaviour: HubSpot search has its own rate limit].
            reply.headers.update(self._limit_headers(now))
        return reply

    def _check_limits(self, now: float, is_search: bool) -> _Reply | None:
        day = self._clock.now().astimezone(UTC).date().isoformat()
        if day != self._daily_day:
            self._daily_day, self._daily_used = day, 0
        if self._daily_used >= self.daily_limit:
            tomorrow = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            wait = max(1, math.ceil((tomorrow - self._clock.now()).total_seconds()))
            return self._rate_limited("DAILY", "You have reached your daily limit.", wait, now)
        if is_search:
            # HubSpot's separate search limit (5/s per account); searches do not count toward the burst
            # [crm-behaviour: HubSpot search has its own rate limit].
            if self.search_rate_per_second is not None:
                window = self._search_window
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= self.search_rate_per_second:
                    return self._rate_limited("SECONDLY", "You have reached your secondly limit.", 1, now)
                window.append(now)
        elif self.requests_per_10s is not None:
            window = self._window
            while window and window[0] <= now - WINDOW_10S:
                window.popleft()
            if len(window) >= self.requests_per_10s:
                wait = max(1, math.ceil(window[0] + WINDOW_10S - now))
                return self._rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.", wait, now)
            window.append(now)
        else:
            self._window.append(now)
        self._daily_used += 1
        return None

    def _rate_limited(self, policy: str, message: str, retry_after: int, now: float) -> _Reply:
        # 429 body as HubSpot sends it [crm-behaviour: HubSpot 429 responses].
        body = {"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                "policyName": policy, "groupName": "api-calls-sandbox"}
        return _Reply(429, body, {"Retry-After": str(retry_after)})

    def _limit_headers(self, now: float) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
        }
        window = self._window
        while window and window[0] <= now - WINDOW_10S:
            window.popleft()
        if self.requests_per_10s is not None:
            # Without a burst limit configured the sandbox says nothing about one.
            headers.update({
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_10S * 1000)),
                "X-HubSpot-RateLimit-Max": str(self.requests_per_10s),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.requests_per_10s - len(window))),
            })
        return headers

    def _route(self, method: str, path: str) -> tuple[str, Callable[[Mapping[str, list[str]], Any], _Reply] | None, bool]:
        parts = path.strip("/").split("/")
        n = len(parts)
        if n >= 4 and parts[:3] == ["crm", "v3", "objects"]:
            otype = OBJECT_ALIASES.get(parts[3])
            if otype is None:
                def unknown(_q: Mapping[str, list[str]], _b: Any) -> _Reply:
                    raise _abort(400, "VALIDATION_ERROR", f"Unable to infer object type from: {parts[3]}")
                return "objects.unknown_type", unknown, False
            if n == 4:
                if method == "GET":
                    return f"{otype}.list", lambda q, b: self._list(otype, q), False
                if method == "POST":
                    return f"{otype}.create", lambda q, b: self._create(otype, b), False
            elif n == 5 and parts[4] == "search" and method == "POST":
                return f"{otype}.search", lambda q, b: self._search(otype, b), True
            elif n == 5 and parts[4] == "merge" and method == "POST":
                return f"{otype}.merge", lambda q, b: self._merge_api(otype, b), False
            elif n == 6 and parts[4] == "batch" and method == "POST":
                handlers = {"read": self._batch_read, "update": self._batch_update, "create": self._batch_create,
                            "archive": self._batch_archive}
                handler = handlers.get(parts[5])
                if handler is not None:
                    return f"{otype}.batch_{parts[5]}", lambda q, b: handler(otype, q, b), False
            elif n == 5:
                rid = parts[4]
                if method == "GET":
                    return f"{otype}.get", lambda q, b: self._get(otype, rid, q), False
                if method == "PATCH":
                    return f"{otype}.update", lambda q, b: self._update(otype, rid, q, b), False
                if method == "DELETE":
                    return f"{otype}.archive", lambda q, b: self._archive_api(otype, rid), False
        if parts[:3] == ["crm", "v3", "owners"] and method == "GET":
            if n == 3:
                return "owners.list", lambda q, b: self._owners_list(q), False
            if n == 4:
                return "owners.get", lambda q, b: self._owner_get(parts[3], q), False
        if n >= 4 and parts[:3] == ["crm", "v3", "properties"]:
            otype = OBJECT_ALIASES.get(parts[3])
            if otype is not None:
                if n == 4 and method == "GET":
                    return "properties.list", lambda q, b: self._properties_list(otype, q), False
                if n == 4 and method == "POST":
                    return "properties.create", lambda q, b: self._property_create(otype, b), False
                if n == 5 and method == "GET":
                    return "properties.get", lambda q, b: self._property_get(otype, parts[4], q), False
                if n == 5 and method == "PATCH":
                    return "properties.update", lambda q, b: self._property_update(otype, parts[4], b), False
                if n == 5 and method == "DELETE":
                    return "properties.archive", lambda q, b: self._property_archive(otype, parts[4]), False
        if n == 7 and parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"] and method == "POST":
            return "associations.batch_read", lambda q, b: self._assoc_batch_read(parts[3], parts[4], b), False
        if n == 7 and parts[:3] == ["crm", "v4", "objects"] and parts[5] == "associations" and method == "GET":
            return "associations.list", lambda q, b: self._assoc_list(parts[3], parts[4], parts[6], q), False
        return "unknown", None, False

    # endpoints: objects

    def _list(self, otype: str, query: Mapping[str, list[str]]) -> _Reply:
        limit = _int_param(query, "limit", 10)
        if limit < 1 or limit > LIST_LIMIT_MAX:
            # HubSpot caps list pages at 100 [crm-behaviour: HubSpot list pages hold at most 100 records];
            # the sandbox refuses rather than silently clamping.
            raise _abort(400, "VALIDATION_ERROR", f"limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
        archived = _flag(query, "archived")
        after = _int_param(query, "after", 0)
        properties = _multi(query, "properties") or None
        order, rows = self._order[otype], self._rows[otype]
        results: list[dict[str, Any]] = []
        next_after: int | None = None
        for index in range(bisect_left(order, after), len(rows)):
            record = rows[index]
            rid = record.id
            wanted = (record.archived and record.merged_into is None) if archived else record.live
            if not wanted:
                continue
            if len(results) == limit:
                next_after = rid
                break
            results.append(self._render(otype, record, properties))
        body: dict[str, Any] = {"results": results}
        if next_after is not None:
            body["paging"] = {"next": {"after": str(next_after), "link": f"?after={next_after}"}}
        return _Reply(200, body)

    def _get(self, otype: str, rid: str, query: Mapping[str, list[str]]) -> _Reply:
        archived = _flag(query, "archived")
        id_property = (query.get("idProperty") or [""])[-1]
        record = self._lookup(otype, rid, id_property, archived=archived)
        if record is None:
            raise _abort(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [rid]})
        out = self._render(otype, record, _multi(query, "properties") or None)
        assoc_types = [OBJECT_ALIASES.get(a) for a in _multi(query, "associations")]
        if any(assoc_types):
            out["associations"] = {}
            for to_type in filter(None, assoc_types):
                links = self._assoc.get((otype, to_type), {}).get(record.id, {})
                out["associations"][to_type] = {"results": [
                    {"id": str(target), "type": ASSOC_V3_NAMES.get(type_id, f"association_{type_id}")}
                    for target, kinds in links.items() for type_id, _ in kinds
                ]}
        return _Reply(200, out)

    def _lookup(self, otype: str, key: str, id_property: str, *, archived: bool) -> _Record | None:
        """An id (following merges: a merged-away id reads as the survivor) or a unique-property value.

        [crm-behaviour: HubSpot merges: the old id reads as the survivor]
        """
        if id_property and id_property != "hs_object_id":
            if id_property not in self._properties[otype]:
                raise _abort(400, "VALIDATION_ERROR", f"Property {id_property!r} does not exist")
            wanted = key.strip().lower()
            for candidate in self._rows[otype]:
                if candidate.live and candidate.props.get(id_property, "").strip().lower() == wanted:
                    return candidate
            return None
        record = self._resolve(otype, _as_int(key))
        if record is None or (record.archived and not archived):
            return None
        return record

    def _search(self, otype: str, body: Any) -> _Reply:
        if not isinstance(body, dict):
            raise _abort(400, "VALIDATION_ERROR", "Search request body must be a JSON object")
        groups = body.get("filterGroups") or []
        if len(groups) > FILTER_GROUPS_MAX:
            raise _abort(400, "VALIDATION_ERROR", f"Too many filter groups ({len(groups)}). Max allowed is {FILTER_GROUPS_MAX}")
        total_filters = 0
        predicates: list[Callable[[_Record], bool]] = []
        lowest_id: int | None = 0 if not groups else None
        for group in groups:
            filters = (group or {}).get("filters") or []
            if len(filters) > FILTERS_PER_GROUP_MAX:
                raise _abort(400, "VALIDATION_ERROR",
                             f"Too many filters in a group ({len(filters)}). Max allowed is {FILTERS_PER_GROUP_MAX}")
            total_filters += len(filters)
            predicates.append(_all_of([self._compile_filter(otype, f) for f in filters]))
            floor = _id_floor(filters)
            lowest_id = floor if lowest_id is None else min(lowest_id, floor)
        if total_filters > FILTERS_TOTAL_MAX:
            raise _abort(400, "VALIDATION_ERROR", f"Too many filters ({total_filters}). Max allowed is {FILTERS_TOTAL_MAX}")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            # The search schema allows one sort rule (maxItems 1) [crm-behaviour: HubSpot search filters and sorting].
            raise _abort(400, "VALIDATION_ERROR", f"Only one sort is allowed, got {len(sorts)}")
        limit = body.get("limit", 10)
        after_raw = body.get("after") or 0
        try:
            limit, after = int(limit), int(after_raw)
        except (TypeError, ValueError):
            raise _abort(400, "VALIDATION_ERROR", "limit and after must be whole numbers") from None
        if limit < 0 or limit > SEARCH_LIMIT_MAX:
            raise _abort(400, "VALIDATION_ERROR", f"limit must be between 0 and {SEARCH_LIMIT_MAX}, got {limit}")
        if after < 0 or after + limit > SEARCH_RESULT_CAP:
            # The 10,000-result cap: paging beyond it is an HTTP 400 [crm-behaviour: HubSpot search: 10,000 results per query].
            raise _abort(400, "VALIDATION_ERROR",
                         f"Search results are limited to {SEARCH_RESULT_CAP}; after ({after}) + limit ({limit}) is beyond it")
        query_text = str(body.get("query") or "").strip().lower()
        text_props = QUERY_PROPERTIES[otype]

        def text_match(record: _Record) -> bool:
            values = [record.props.get(name, "").lower() for name in text_props]
            tokens = [t for value in values for t in TOKEN_SPLIT.split(value) if t]
            return any(t.startswith(query_text) for t in tokens) or any(query_text in v for v in values)

        # Groups are OR'd, filters within a group AND'd [crm-behaviour: HubSpot search filters and sorting].
        # An hs_object_id lower bound in every group (the keyset form,
        # [crm-behaviour: HubSpot incremental polling by keyset]) lets the scan start there: records are kept in id order.
        start = bisect_left(self._order[otype], lowest_id or 0)
        candidates = self._rows[otype][start:] if start else self._rows[otype]
        matcher = _any_of(predicates)
        found = [r for r in candidates if r.merged_into is None and not r.archived and matcher(r)]
        if query_text:
            found = [r for r in found if text_match(r)]
        if sorts:
            spec = sorts[0]
            name = spec if isinstance(spec, str) else str((spec or {}).get("propertyName") or "")
            descending = not isinstance(spec, str) and str((spec or {}).get("direction") or "ASCENDING").upper() == "DESCENDING"
            if isinstance(spec, str) and name.startswith("-"):
                name, descending = name[1:], True
            if name not in self._properties[otype]:
                raise _abort(400, "VALIDATION_ERROR", f"Cannot sort by unknown property {name!r}")
            if name != "hs_object_id" or descending:  # records are kept in id order already
                key, _ = self._getter(otype, name)
                present = [r for r in found if key(r) is not None]
                missing = [r for r in found if key(r) is None]
                present.sort(key=lambda r: (key(r), r.id), reverse=descending)
                found = present + missing  # records without a value come last either way
        page = found[after:after + limit]
        properties = body.get("properties") or None
        out: dict[str, Any] = {"total": len(found), "results": [self._render(otype, r, properties) for r in page]}
        if after + len(page) < len(found) and page:
            out["paging"] = {"next": {"after": str(after + len(page))}}
        return _Reply(200, out)

    def _getter(self, otype: str, name: str) -> tuple[Callable[[_Record], Any], str]:
        """A value reader for filters / sorts and its comparison kind: number, time or text (case-insensitive)."""
        pdef = self._properties[otype].get(name)
        if pdef is None or pdef.archived:
            raise _abort(400, "VALIDATION_ERROR", f"Property {name!r} does not exist on {otype}")
        if name == "hs_object_id":
            return (lambda r: r.id), "number"
        if name == CREATED_PROPERTY[otype]:
            return (lambda r: r.created_ms), "time"
        if name == MODIFIED_PROPERTY[otype]:
            return (lambda r: r.updated_ms), "time"
        if pdef.type == "number":
            return (lambda r: _float_or_none(r.props.get(name))), "number"
        if pdef.type in ("datetime", "date"):
            return (lambda r: time_ms(r.props[name]) if r.props.get(name) else None), "time"
        return (lambda r: (r.props.get(name) or "").lower() or None), "text"

    def _compile_filter(self, otype: str, spec: Any) -> Callable[[_Record], bool]:
        if not isinstance(spec, dict):
            raise _abort(400, "VALIDATION_ERROR", "Each filter must be an object")
        name = str(spec.get("propertyName") or "")
        op = str(spec.get("operator") or "EQ").upper()
        if op not in OPERATORS:
            raise _abort(400, "VALIDATION_ERROR", f"Unknown filter operator {op!r}")
        getter, kind = self._getter(otype, name)
        multi = self._properties[otype][name].is_multi

        def convert(raw: Any) -> Any:
            if raw is None:
                raise _abort(400, "VALIDATION_ERROR", f"Filter on {name} with operator {op} needs a value")
            text = str(raw).lower() if not isinstance(raw, bool) else ("true" if raw else "false")
            if kind == "number":
                value = _float_or_none(text)
            elif kind == "time":
                value = time_ms(text)  # epoch ms strings (the documented form) or ISO-8601 [crm-behaviour: HubSpot datetime formats]
            else:
                return text
            if value is None:
                raise _abort(400, "VALIDATION_ERROR", f"Filter value {raw!r} for {name} is not a valid {kind}")
            return value

        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            want = op == "HAS_PROPERTY"
            return lambda r: (getter(r) is not None) is want
        if op in ("IN", "NOT_IN"):
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise _abort(400, "VALIDATION_ERROR", f"Operator {op} on {name} needs a non-empty `values` list")
            if self._properties[otype][name].type == "string":
                # HubSpot's IN / NOT_IN match string properties against lower-case values only: an upper-case
                # value matches nothing (EQ, by contrast, ignores case) [crm-behaviour: HubSpot search filters and sorting].
                wanted = {str(v) for v in values}
            else:
                wanted = {convert(v) for v in values}
            inside = op == "IN"
            if multi:
                return lambda r: (bool(set((getter(r) or "").split(";")) & wanted)) is inside
            return lambda r: (getter(r) in wanted) is inside if getter(r) is not None else not inside
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = re.compile("^" + re.escape(str(spec.get("value") or "").lower()).replace(r"\*", ".*") + "$")
            contains = op == "CONTAINS_TOKEN"

            def token_match(r: _Record) -> bool:
                raw = r.props.get(name, "")
                return any(pattern.match(t) for t in TOKEN_SPLIT.split(raw.lower()) if t) or bool(pattern.match(raw.lower()))

            return lambda r: token_match(r) is contains
        value = convert(spec.get("value"))
        if op == "BETWEEN":
            high = convert(spec.get("highValue"))
            return lambda r: (v := getter(r)) is not None and value <= v <= high
        if op == "EQ":
            if multi:
                return lambda r: value in (getter(r) or "").split(";")
            return lambda r: getter(r) == value
        if op == "NEQ":
            return lambda r: getter(r) != value
        # One lambda per operator: searches scan up to ~100k records per request.
        if op == "LT":
            return lambda r: (v := getter(r)) is not None and v < value
        if op == "LTE":
            return lambda r: (v := getter(r)) is not None and v <= value
        if op == "GT":
            return lambda r: (v := getter(r)) is not None and v > value
        return lambda r: (v := getter(r)) is not None and v >= value

    def _inputs(self, body: Any, what: str) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _abort(400, "VALIDATION_ERROR", f"{what} body needs an `inputs` list")
        inputs: list[Any] = body["inputs"]
        if len(inputs) > BATCH_MAX:
            raise _abort(400, "VALIDATION_ERROR", f"Too many inputs: {len(inputs)} > {BATCH_MAX} (batch limit)")
        return inputs

    def _batch_reply(self, started: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok_status: int) -> _Reply:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                                "completedAt": iso(self._now_ms())}
        if errors:
            # Partial failure is HTTP 207 with errors[] and numErrors [crm-behaviour: HubSpot batch partial failure is HTTP 207].
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return _Reply(207, body)
        return _Reply(ok_status, body)

    def _not_found_error(self, otype: str, ids: list[str]) -> dict[str, Any]:
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {SINGULAR[otype]} objects, they may be deleted or not exist. Check that ids are valid.",
                "context": {"ids": ids}, "links": {}, "errors": []}

    def _batch_read(self, otype: str, query: Mapping[str, list[str]], body: Any) -> _Reply:
        started = self._now_ms()
        inputs = self._inputs(body, "batch/read")
        id_property = str(body.get("idProperty") or "")
        properties = body.get("properties") or None
        archived = _flag(query, "archived")
        results: list[dict[str, Any]] = []
        seen: set[int] = set()
        missing: list[str] = []
        for item in inputs:
            key = str((item or {}).get("id") or "")
            record = self._lookup(otype, key, id_property, archived=archived) if key else None
            if record is None:
                missing.append(key)
            elif record.id not in seen:
                seen.add(record.id)
                results.append(self._render(otype, record, properties))
        errors = [self._not_found_error(otype, missing)] if missing else []
        return self._batch_reply(started, results, errors, 200)

    def _batch_update(self, otype: str, query: Mapping[str, list[str]], body: Any) -> _Reply:
        started = self._now_ms()
        inputs = self._inputs(body, "batch/update")
        id_property = str(body.get("idProperty") or "")
        ids = [str((item or {}).get("id") or "") for item in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise _abort(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        missing: list[str] = []
        for item, key in zip(inputs, ids, strict=True):
            properties = (item or {}).get("properties")
            trace = (item or {}).get("objectWriteTraceId")
            if not isinstance(properties, dict):
                raise _abort(400, "VALIDATION_ERROR", f"Input {key!r} has no `properties` object")
            record = self._lookup(otype, key, id_property, archived=False) if key else None
            if record is None:
                missing.append(key)
                continue
            error = self._write_error(otype, record, key, {str(k): v for k, v in properties.items()}, trace)
            if error is not None:
                errors.append(error)
                continue
            changed = self._apply(otype, record, {k: "" if v is None else str(v) for k, v in properties.items()}, "INTEGRATION")
            rendered = self._render(otype, record, [*DEFAULT_PROPERTIES[otype], *changed, *properties])
            if trace is not None:
                rendered["objectWriteTraceId"] = str(trace)
            results.append(rendered)
        if missing:
            errors.append(self._not_found_error(otype, missing))
        return self._batch_reply(started, results, errors, 200)

    def _write_error(self, otype: str, record: _Record, key: str, properties: Mapping[str, Any], trace: Any) -> dict[str, Any] | None:
        """The per-record error of one write input (a configured failure or invalid values), or None if it is fine."""
        context: dict[str, list[str]] = {"ids": [key]}
        if trace is not None:
            context["objectWriteTraceId"] = [str(trace)]
        forced = self.fail_write_ids.get(key) or self.fail_write_ids.get(str(record.id))
        if forced is not None:
            category, message = forced
            return {"status": "error", "category": category, "message": message, "context": context, "links": {}, "errors": []}
        problems = self._validate(otype, properties, record)
        if not problems:
            return None
        detail = [{"isValid": False, "message": msg, "error": code, "name": name} for name, code, msg in problems]
        context["propertyName"] = [name for name, _, _ in problems]
        return {
            "status": "error", "category": "VALIDATION_ERROR",
            "message": f"Property values were not valid: {json.dumps(detail)}",
            "context": context, "links": {},
            "errors": [{"message": msg, "code": code, "context": {"propertyName": [name]}} for name, code, msg in problems],
        }

    def _validate(self, otype: str, properties: Mapping[str, Any], record: _Record | None) -> list[tuple[str, str, str]]:
        """(property, code, message) for every value HubSpot would refuse on an API write.

        [crm-behaviour: HubSpot owners: assign by owner id] [crm-behaviour: HubSpot lifecycle stages move forward only]
        """
        problems: list[tuple[str, str, str]] = []
        defs = self._properties[otype]
        for name, raw in properties.items():
            value = "" if raw is None else str(raw)
            pdef = defs.get(name)
            if pdef is None or pdef.archived:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if pdef.read_only:
                problems.append((name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'))
                continue
            if value == "":
                continue  # "" clears any writable property [crm-behaviour: HubSpot property values are strings]
            if name == "hubspot_owner_id":
                owner = self._owners.get(value)
                if owner is None or owner["archived"]:
                    # Owner ids only: a userId or a deactivated owner is refused [crm-behaviour: HubSpot owners: assign by owner id].
                    problems.append((name, "INVALID_OWNER_ID", f"{value} is not a valid owner id"))
                continue
            if pdef.type == "enumeration" and not pdef.external_options:
                allowed = {v for v, _ in pdef.options}
                chosen = value.split(";") if pdef.is_multi else [value]
                bad = [v for v in chosen if v not in allowed]
                if bad:
                    problems.append((name, "INVALID_OPTION",
                                     f"{bad[0]!r} was not one of the allowed options: {sorted(allowed)}"))
                    continue
            elif pdef.type == "number" and _float_or_none(value) is None:
                problems.append((name, "INVALID_DECIMAL", f"{value!r} is not a valid number"))
                continue
            elif pdef.type == "bool" and value.lower() not in ("true", "false"):
                problems.append((name, "INVALID_BOOLEAN", f"{value!r} is not a valid boolean (true or false)"))
                continue
            elif pdef.type in ("date", "datetime") and time_ms(value) is None:
                problems.append((name, "INVALID_DATE", f"{value!r} is not a valid {pdef.type} (epoch milliseconds or ISO-8601)"))
                continue
            if name == "lifecyclestage" and record is not None:
                order = [v for v, _ in pdef.options]
                current = record.props.get(name, "")
                if current in order and order.index(value) < order.index(current):
                    # Lifecycle stage only moves forward through the API: clear it ("") first, then set the
                    # earlier stage in a separate request. The sandbox refuses the backward set
                    # [crm-behaviour: HubSpot lifecycle stages move forward only].
                    problems.append((name, "INVALID_LIFECYCLE_STAGE",
                                     f"lifecyclestage cannot move backwards from {current!r} to {value!r}; clear it first"))
        return problems

    def _create(self, otype: str, body: Any) -> _Reply:
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise _abort(400, "VALIDATION_ERROR", "create body needs a `properties` object")
        error, record = self._create_one(otype, body["properties"], body.get("associations"))
        if error is not None:
            status = 409 if error["category"] == "CONFLICT" else 400
            raise _Abort(_Reply(status, _error_body(error["category"], error["message"], context=error.get("context"),
                                                    errors=error.get("errors") or None)))
        assert record is not None
        return _Reply(201, self._render(otype, record, [*DEFAULT_PROPERTIES[otype], *body["properties"]]))

    def _create_one(self, otype: str, properties: Mapping[str, Any], associations: Any) -> tuple[dict[str, Any] | None, _Record | None]:
        props = {str(k): "" if v is None else str(v) for k, v in properties.items()}
        problems = self._validate(otype, props, None)
        if problems:
            name, code, msg = problems[0]
            detail = [{"isValid": False, "message": m, "error": c, "name": n} for n, c, m in problems]
            return {"status": "error", "category": "VALIDATION_ERROR",
                    "message": f"Property values were not valid: {json.dumps(detail)}",
                    "context": {"propertyName": [n for n, _, _ in problems]}, "links": {},
                    "errors": [{"message": m, "code": c, "context": {"propertyName": [n]}} for n, c, m in problems]}, None
        if otype == "contacts" and props.get("email"):
            email = props["email"].strip().lower()
            for other in self._records["contacts"].values():
                if other.live and other.props.get("email", "").strip().lower() == email:
                    # Contacts are unique by email: 409 CONFLICT naming the existing id
                    # [crm-behaviour: HubSpot contacts are unique by email].
                    return {"status": "error", "category": "CONFLICT",
                            "message": f"Contact already exists. Existing ID: {other.id}",
                            "context": {"id": [str(other.id)]}, "links": {}, "errors": []}, None
        rid = int(self.create_record(otype, props, source="INTEGRATION"))
        for assoc in associations or []:
            to = (assoc or {}).get("to") or {}
            types = (assoc or {}).get("types") or []
            target = _as_int(str(to.get("id") or ""))
            to_type = self._assoc_target_type(otype, [int(t.get("associationTypeId") or 0) for t in types])
            if to_type and target in self._records[to_type]:
                kinds = [(int(t.get("associationTypeId") or 0), None) for t in types]
                self._link(otype, rid, to_type, target, kinds, [])
        return None, self._records[otype][rid]

    @staticmethod
    def _assoc_target_type(otype: str, type_ids: list[int]) -> str | None:
        for type_id in type_ids:
            if type_id in (1, 279):
                return "companies"
            if type_id in (2, 280, 578):
                return "contacts"
            if type_id in (13, 14):
                return "companies"
            if type_id == 579:
                return "leads"
        return None

    def _batch_create(self, otype: str, query: Mapping[str, list[str]], body: Any) -> _Reply:
        started = self._now_ms()
        inputs = self._inputs(body, "batch/create")
        results, errors = [], []
        for item in inputs:
            properties = (item or {}).get("properties")
            if not isinstance(properties, dict):
                raise _abort(400, "VALIDATION_ERROR", "Every input needs a `properties` object")
            error, record = self._create_one(otype, properties, (item or {}).get("associations"))
            if error is not None:
                errors.append(error)
            elif record is not None:
                results.append(self._render(otype, record, [*DEFAULT_PROPERTIES[otype], *properties]))
        return self._batch_reply(started, results, errors, 201)

    def _batch_archive(self, otype: str, query: Mapping[str, list[str]], body: Any) -> _Reply:
        for item in self._inputs(body, "batch/archive"):
            record = self._resolve(otype, _as_int(str((item or {}).get("id") or "")), follow_merges=False)
            if record is not None and record.live:
                record.archived, record.archived_ms = True, self._now_ms()
        return _Reply(204)

    def _update(self, otype: str, rid: str, query: Mapping[str, list[str]], body: Any) -> _Reply:
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise _abort(400, "VALIDATION_ERROR", "update body needs a `properties` object")
        id_property = (query.get("idProperty") or [""])[-1]
        record = self._lookup(otype, rid, id_property, archived=False)
        if record is None:
            raise _abort(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [rid]})
        error = self._write_error(otype, record, rid, body["properties"], None)
        if error is not None:
            raise _Abort(_Reply(400, _error_body(error["category"], error["message"], context=error["context"],
                                                 errors=error["errors"] or None)))
        changed = self._apply(otype, record, {k: "" if v is None else str(v) for k, v in body["properties"].items()}, "INTEGRATION")
        return _Reply(200, self._render(otype, record, [*DEFAULT_PROPERTIES[otype], *changed, *body["properties"]]))

    def _archive_api(self, otype: str, rid: str) -> _Reply:
        record = self._resolve(otype, _as_int(rid), follow_merges=False)
        if record is not None and record.live:
            record.archived, record.archived_ms = True, self._now_ms()
        return _Reply(204)

    def _merge_api(self, otype: str, body: Any) -> _Reply:
        if not isinstance(body, dict):
            raise _abort(400, "VALIDATION_ERROR", "merge body needs primaryObjectId and objectIdToMerge")
        primary = self._resolve(otype, _as_int(str(body.get("primaryObjectId") or "")), follow_merges=False)
        merged = self._resolve(otype, _as_int(str(body.get("objectIdToMerge") or "")), follow_merges=False)
        if primary is None or merged is None or not primary.live or not merged.live:
            raise _abort(404, "OBJECT_NOT_FOUND", "One of the objects to merge does not exist or is archived")
        if primary.id == merged.id:
            raise _abort(400, "VALIDATION_ERROR", "Cannot merge an object into itself")
        self._merge(otype, primary, merged, "INTEGRATION")
        return _Reply(200, self._render(otype, primary, [*DEFAULT_PROPERTIES[otype], "hs_merged_object_ids"]))

    # endpoints: owners, properties, associations

    def _owners_list(self, query: Mapping[str, list[str]]) -> _Reply:
        limit = _int_param(query, "limit", 100)
        if limit < 1 or limit > 500:
            raise _abort(400, "VALIDATION_ERROR", f"limit must be between 1 and 500, got {limit}")
        after = _int_param(query, "after", 0)
        archived = _flag(query, "archived")
        email = (query.get("email") or [""])[-1].strip().lower()
        # archived=true lists only the archived (deactivated) owners; the default lists only active ones
        # [crm-behaviour: HubSpot owners: assign by owner id].
        owners = [o for _, o in sorted(self._owners.items(), key=lambda kv: int(kv[0]))
                  if o["archived"] is archived and (not email or (o["email"] or "").lower() == email)]
        owners = [o for o in owners if int(o["id"]) >= after]
        body: dict[str, Any] = {"results": [_owner_json(o) for o in owners[:limit]]}
        if len(owners) > limit:
            body["paging"] = {"next": {"after": owners[limit]["id"], "link": f"?after={owners[limit]['id']}"}}
        return _Reply(200, body)

    def _owner_get(self, key: str, query: Mapping[str, list[str]]) -> _Reply:
        id_property = (query.get("idProperty") or ["id"])[-1]
        archived = _flag(query, "archived")
        for owner in self._owners.values():
            value = owner["id"] if id_property == "id" else str(owner.get("userIdIncludingInactive"))
            if value == key and owner["archived"] is archived:
                return _Reply(200, _owner_json(owner))
        raise _abort(404, "OBJECT_NOT_FOUND", f"Owner {key} not found")

    def _properties_list(self, otype: str, query: Mapping[str, list[str]]) -> _Reply:
        archived = _flag(query, "archived")
        return _Reply(200, {"results": [p.to_json() for p in self._properties[otype].values() if p.archived is archived]})

    def _property_get(self, otype: str, name: str, query: Mapping[str, list[str]]) -> _Reply:
        pdef = self._properties[otype].get(name)
        if pdef is None or pdef.archived is not _flag(query, "archived"):
            raise _abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist", context={"propertyName": [name]})
        return _Reply(200, pdef.to_json())

    def _property_create(self, otype: str, body: Any) -> _Reply:
        if not isinstance(body, dict):
            raise _abort(400, "VALIDATION_ERROR", "property create body must be a JSON object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise _abort(400, "VALIDATION_ERROR", f"Missing required fields: {missing}")
        name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not PROPERTY_NAME.match(name):
            raise _abort(400, "VALIDATION_ERROR", f"Invalid property name {name!r}: lower-case letters, digits and _ only")
        if kind not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
            raise _abort(400, "VALIDATION_ERROR", f"Invalid type/fieldType {kind!r}/{field_type!r}")
        if kind == "bool" and field_type != "booleancheckbox":
            raise _abort(400, "VALIDATION_ERROR", "bool properties need fieldType booleancheckbox")
        existing = self._properties[otype].get(name)
        if existing is not None and not existing.archived:
            raise _abort(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
        now = self._now_ms()
        pdef = PropertyDef(
            name=name, label=str(body["label"]), type=kind, field_type=field_type, group_name=str(body["groupName"]),
            options=_options(body.get("options")), hubspot_defined=False, description=str(body.get("description") or ""),
            has_unique_value=bool(body.get("hasUniqueValue")), created_ms=now, updated_ms=now,
        )
        self._properties[otype][name] = pdef
        return _Reply(201, pdef.to_json())

    def _property_update(self, otype: str, name: str, body: Any) -> _Reply:
        pdef = self._properties[otype].get(name)
        if pdef is None or pdef.archived:
            raise _abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
        if not isinstance(body, dict):
            raise _abort(400, "VALIDATION_ERROR", "property update body must be a JSON object")
        changes: dict[str, Any] = {"updated_ms": self._now_ms()}
        if "label" in body:
            changes["label"] = str(body["label"])
        if "description" in body:
            changes["description"] = str(body["description"])
        if "options" in body:
            changes["options"] = _options(body["options"])
        self._properties[otype][name] = replace(pdef, **changes)
        return _Reply(200, self._properties[otype][name].to_json())

    def _property_archive(self, otype: str, name: str) -> _Reply:
        pdef = self._properties[otype].get(name)
        if pdef is None or pdef.archived:
            raise _abort(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
        if pdef.hubspot_defined:
            raise _abort(400, "VALIDATION_ERROR", f"HubSpot-defined property {name} cannot be archived")
        self._properties[otype][name] = replace(pdef, archived=True, updated_ms=self._now_ms())
        return _Reply(204)

    def _assoc_types(self, from_raw: str, to_raw: str) -> tuple[str, str]:
        from_type, to_type = OBJECT_ALIASES.get(from_raw), OBJECT_ALIASES.get(to_raw)
        if from_type is None or to_type is None or (from_type, to_type) not in self._assoc:
            raise _abort(400, "VALIDATION_ERROR", f"Unsupported association pair {from_raw} → {to_raw}")
        return from_type, to_type

    def _assoc_targets(self, from_type: str, to_type: str, rid: int) -> list[dict[str, Any]]:
        links = self._assoc[(from_type, to_type)].get(rid, {})
        targets = self._records[to_type]
        return [
            {"toObjectId": target, "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label} for type_id, label in kinds]}
            for target, kinds in links.items() if target in targets and targets[target].live
        ]

    def _assoc_batch_read(self, from_raw: str, to_raw: str, body: Any) -> _Reply:
        started = self._now_ms()
        from_type, to_type = self._assoc_types(from_raw, to_raw)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _abort(400, "VALIDATION_ERROR", "batch/read body needs an `inputs` list")
        if len(body["inputs"]) > ASSOCIATION_BATCH_MAX:
            raise _abort(400, "VALIDATION_ERROR", f"Too many inputs: {len(body['inputs'])} > {ASSOCIATION_BATCH_MAX}")
        results, errors = [], []
        for item in body["inputs"]:
            key = str((item or {}).get("id") or "")
            record = self._resolve(from_type, _as_int(key), follow_merges=False)
            targets = self._assoc_targets(from_type, to_type, record.id) if record is not None and record.live else []
            if targets:
                results.append({"from": {"id": key}, "to": targets})
            else:
                errors.append({
                    "status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type} is associated with {SINGULAR[from_type].lower()} {key}.",
                    "context": {"fromObjectId": [key]}, "links": {}, "errors": [],
                })
        return self._batch_reply(started, results, errors, 200)

    def _assoc_list(self, from_raw: str, rid: str, to_raw: str, query: Mapping[str, list[str]]) -> _Reply:
        from_type, to_type = self._assoc_types(from_raw, to_raw)
        record = self._resolve(from_type, _as_int(rid), follow_merges=False)
        if record is None or not record.live:
            raise _abort(404, "OBJECT_NOT_FOUND", f"{SINGULAR[from_type].title()} {rid} does not exist")
        return _Reply(200, {"results": self._assoc_targets(from_type, to_type, record.id)})


def _all_of(predicates: list[Callable[[_Record], bool]]) -> Callable[[_Record], bool]:
    if not predicates:
        return lambda r: True
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda r: first(r) and second(r)
    return lambda r: all(p(r) for p in predicates)


def _any_of(predicates: list[Callable[[_Record], bool]]) -> Callable[[_Record], bool]:
    if not predicates:
        return lambda r: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda r: any(p(r) for p in predicates)


def _id_floor(filters: Iterable[Any]) -> int:
    """The lowest hs_object_id a filter group can match (0 when it has no lower bound on the id)."""
    floor = 0
    for spec in filters:
        if not isinstance(spec, dict) or spec.get("propertyName") != "hs_object_id":
            continue
        value = _float_or_none(str(spec.get("value", "")))
        if value is None:
            continue
        op = str(spec.get("operator") or "").upper()
        if op == "GT":
            floor = max(floor, math.floor(value) + 1)
        elif op in ("GTE", "EQ", "BETWEEN"):
            floor = max(floor, math.ceil(value))
    return floor


def _options(raw: Any) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise _abort(400, "VALIDATION_ERROR", "options must be a list")
    ordered = sorted(enumerate(raw), key=lambda pair: (int((pair[1] or {}).get("displayOrder", pair[0]) or 0), pair[0]))
    out = []
    for _, option in ordered:
        if not isinstance(option, dict) or not option.get("value") or "label" not in option:
            raise _abort(400, "VALIDATION_ERROR", "every option needs a label and a value")
        out.append((str(option["value"]), str(option["label"])))
    return tuple(out)


def _owner_json(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in owner.items() if v is not None or k in ("email",)}


def _as_int(raw: str | None) -> int:
    """A record id from a path or body; -1 (no record has it) when it is not a number."""
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return -1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: HubSpotSandbox


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive so urllib3 pools connections (every reply carries Content-Length).
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes; without TCP_NODELAY each keep-alive request waits on Nagle.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if sandbox.latency_seconds > 0:
            time.sleep(sandbox.latency_seconds)  # simulated network latency, outside the data lock
        with sandbox._lock:
            label, reply = sandbox.handle(self.command, self.path, headers, body)
            sandbox.calls[label] += 1
            sandbox.request_log.append((sandbox._clock.monotonic(), self.command, urlsplit(self.path).path, reply.status))
            for log in (sandbox.request_log, sandbox.change_log):
                if len(log) > LOG_MAX:
                    del log[: LOG_MAX // 2]
        payload = b"" if reply.body is None else json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
