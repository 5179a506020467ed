"""A Salesforce-compatible HTTPS server on loopback: OAuth, SOQL subset, describe, sObject Collections, seeded data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connector.core.clock import Clock, SystemClock
from connector.sandbox.seed import SEED_REPS, generate_companies, generate_people

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
YES_NO = ("Yes", "No")
BANT_FIELDS = ("Budget_Confirmed__c", "Decision_Maker__c", "Need_Confirmed__c", "Timeframe_Confirmed__c")


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


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # id, reference, string, email, phone, url, picklist, multipicklist, boolean, int, double, currency, date, datetime
    updateable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    default: str | None = None


def _lead_fields() -> dict[str, FieldDef]:
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
        FieldDef("Industry", "picklist"),
        FieldDef("NumberOfEmployees", "int"),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("Country", "string"),
        FieldDef("State", "string"),
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
        FieldDef("Product_Interest__c", "multipicklist", custom=True, picklist=("analytics", "crm", "payments", "support")),
        FieldDef("Seniority__c", "picklist", custom=True,
                 picklist=("c_level", "vp", "director", "manager", "individual", "other")),
        *(FieldDef(name, "picklist", custom=True, picklist=YES_NO, restricted=True) for name in BANT_FIELDS),
    ]
    return {d.name: d for d in defs}


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


# SOQL subset. Malformed text raises ValueError (→ MALFORMED_QUERY); unknown names raise LookupError (→ INVALID_FIELD).

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
     |(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
     |(?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
     |(?P<num>-?\d+(?:\.\d+)?)
     |(?P<op><=|>=|!=|<>|=|<|>)
     |(?P<punct>[(),])
     |(?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "LIMIT",
             "NULL", "TRUE", "FALSE", "NULLS", "FIRST", "LAST"}
_STRINGISH = {"string", "email", "phone", "url", "picklist", "multipicklist"}
_NUMERIC = {"int", "double", "currency", "percent"}
_RAW_ORDER = {"id", "reference"}  # Ids compare byte-wise; text compares case-insensitively


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected text at position {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def decode_string_literal(token: str) -> str:
    """The value of a quoted SOQL string literal (`'o\\'neil'` → `o'neil`); bad escapes are malformed."""
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise ValueError(f"not a string literal: {token!r}")
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _UNESCAPE:
                raise ValueError(f"invalid escape sequence \\{nxt} in {token!r}")
            out.append(_UNESCAPE[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def like_regex(token: str) -> re.Pattern[str]:
    """Compile a LIKE literal: `%` any run, `_` one char, `\\%` / `\\_` literal; case-insensitive like SOQL."""
    body, parts, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in ("%", "_"):
                parts.append(re.escape(nxt))
            elif nxt in _UNESCAPE:
                parts.append(re.escape(_UNESCAPE[nxt]))
            else:
                raise ValueError(f"invalid escape sequence \\{nxt} in {token!r}")
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _parse_datetime_literal(text: str) -> datetime:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).astimezone(UTC)


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Soql:
    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None


class _Parser:
    def __init__(self, text: str, schemas: Mapping[str, Mapping[str, FieldDef]]) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.schemas = schemas
        self.schema: Mapping[str, FieldDef] = {}
        self.sobject = ""

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end of query")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() in words:
            self.pos += 1
            return tok[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            raise ValueError(f"expected {word} at token {self.pos}")

    def expect_punct(self, ch: str) -> None:
        tok = self.next()
        if tok != ("punct", ch):
            raise ValueError(f"expected {ch!r}, got {tok[1]!r}")

    def field(self, name: str) -> FieldDef:
        for key, fdef in self.schema.items():
            if key.lower() == name.lower():
                return fdef
        raise LookupError(f"No such column '{name}' on entity '{self.sobject}'.")

    def parse(self) -> Soql:
        self.expect_keyword("SELECT")
        raw_fields = []
        while True:
            kind, text = self.next()
            if kind != "word" or text.upper() in _KEYWORDS:
                raise ValueError(f"expected a field name, got {text!r}")
            raw_fields.append(text)
            if self.peek() == ("punct", ","):
                self.pos += 1
                continue
            break
        self.expect_keyword("FROM")
        kind, obj = self.next()
        match = next((name for name in self.schemas if name.lower() == obj.lower()), None)
        if kind != "word" or match is None:
            raise LookupError(f"sObject type '{obj}' is not supported.")
        self.sobject, self.schema = match, self.schemas[match]
        fields = tuple(self.field(f).name for f in raw_fields)
        where = self.expression() if self.keyword("WHERE") else None
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                kind, text = self.next()
                if kind != "word":
                    raise ValueError(f"expected a field in ORDER BY, got {text!r}")
                name = self.field(text).name
                desc = self.keyword("ASC", "DESC") == "DESC"
                if self.keyword("NULLS"):
                    if self.keyword("FIRST", "LAST") is None:
                        raise ValueError("expected FIRST or LAST after NULLS")
                order.append((name, desc))
                if self.peek() == ("punct", ","):
                    self.pos += 1
                    continue
                break
        limit = None
        if self.keyword("LIMIT"):
            kind, text = self.next()
            if kind != "num" or not text.isdigit():
                raise ValueError("LIMIT needs a whole number")
            limit = int(text)
        if self.peek() is not None:
            raise ValueError(f"unexpected token {self.peek()[1]!r}")  # type: ignore[index]
        return Soql(fields, self.sobject, where, tuple(order), limit)

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("AND"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def negation(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.negation()
            return lambda row: not inner(row)
        if self.peek() == ("punct", "("):
            self.pos += 1
            inner = self.expression()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def value(self, fdef: FieldDef) -> object:
        kind, text = self.next()
        upper = text.upper() if kind == "word" else ""
        if upper == "NULL":
            return None
        ftype = fdef.type
        if ftype == "boolean":
            if upper not in ("TRUE", "FALSE"):
                raise ValueError(f"value for {fdef.name} must be true or false")
            return upper == "TRUE"
        if ftype == "datetime":
            if kind != "dt":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be of type dateTime "
                                 "and should not be enclosed in quotes")
            return _parse_datetime_literal(text)
        if ftype == "date":
            if kind != "date":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be of type date")
            return date.fromisoformat(text)
        if ftype in _NUMERIC:
            if kind != "num":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be a number")
            return float(text) if "." in text else int(text)
        if kind != "str":
            raise ValueError(f"value of filter criterion for field '{fdef.name}' must be a quoted string")
        return decode_string_literal(text)

    def comparison(self) -> Predicate:
        kind, text = self.next()
        if kind != "word":
            raise ValueError(f"expected a field name, got {text!r}")
        fdef = self.field(text)
        name, raw = fdef.name, fdef.type in _RAW_ORDER or fdef.type not in _STRINGISH
        negated = self.keyword("NOT") is not None
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.value(fdef)]
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.append(self.value(fdef))
            self.expect_punct(")")
            keys = {_fold(v, raw) for v in values}
            return lambda row: (_fold(row.get(name), raw) in keys) != negated
        if self.keyword("LIKE"):
            kind, text = self.next()
            if kind != "str":
                raise ValueError("LIKE needs a quoted pattern")
            pattern = like_regex(text)
            return lambda row: (isinstance(row.get(name), str) and pattern.fullmatch(row[name]) is not None) != negated
        if negated:
            raise ValueError("NOT must be followed by IN or LIKE here")
        kind, op = self.next()
        if kind != "op":
            raise ValueError(f"expected an operator after {name}, got {op!r}")
        value = self.value(fdef)
        return _compare_predicate(name, op, value, raw)


def _fold(value: object, raw: bool) -> object:
    return value.casefold() if isinstance(value, str) and not raw else value


def _compare_predicate(name: str, op: str, value: object, raw: bool) -> Predicate:
    target = _fold(value, raw)

    def check(row: Mapping[str, Any]) -> bool:
        current = _fold(row.get(name), raw)
        if op == "=":
            return current == target
        if op in ("!=", "<>"):
            return current != target
        if current is None or target is None:
            return False
        try:
            if op == "<":
                return bool(current < target)  # type: ignore[operator]
            if op == "<=":
                return bool(current <= target)  # type: ignore[operator]
            if op == ">":
                return bool(current > target)  # type: ignore[operator]
            return bool(current >= target)  # type: ignore[operator]
        except TypeError:
            return False

    return check


def parse_soql(text: str, schemas: Mapping[str, Mapping[str, FieldDef]]) -> Soql:
    """Parse the supported SOQL subset against object schemas (ValueError: malformed, LookupError: unknown name)."""
    return _Parser(text, schemas).parse()


def _sort_rows(rows: list[dict[str, Any]], order: Iterable[tuple[str, bool]], schema: Mapping[str, FieldDef]) -> None:
    # Stable sorts from the last key to the first give a multi-key order with mixed directions;
    # SOQL puts nulls first for ASC and last for DESC by default.
    for name, desc in reversed(list(order)):
        raw = schema[name].type in _RAW_ORDER or schema[name].type not in _STRINGISH

        def key(row: Mapping[str, Any], name: str = name, raw: bool = raw) -> tuple[int, Any]:
            value = row.get(name)
            return (1, _fold(value, raw)) if value is not None else (0, "")

        rows.sort(key=key, reverse=desc)


def _sf_errors(code: str, message: str, fields: Iterable[str] = ()) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        body["fields"] = list(fields)
    return [body]


@dataclass
class _Reply:
    status: int
    body: Any = None
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class SalesforceSandbox:
    """A loopback Salesforce org: real paths, shapes, paging, batch limits, per-record errors and knobs for failures."""

    def __init__(
        self,
        *,
        seed: int = 42,
        leads: int = 300,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        username: str = "admin@sandbox.test",
        password: str = "pw",
        security_token: str = "sandbox-token",
        clock: Clock | None = None,
        pubsub: bool = False,
        pubsub_tls: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self._clock: Clock = clock or SystemClock()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.request_log: list[tuple[str, str, str, int]] = []  # method, path, label, status
        self.last_headers: dict[str, str] = {}
        # knobs
        self.token_ttl_seconds = 7200
        self.fail_write_ids: dict[str, tuple[str, str, list[str]]] = {}
        self.error_rate_5xx = 0.0
        self.lock_row_rate = 0.0
        self.daily_api_limit = 100_000
        self.api_usage = 0
        self.assignment_rule_active = True
        # Change Data Capture over the Pub/Sub API (connector/sandbox/pubsub.py): started with the server when asked.
        self.retention_seconds = 72 * 3600  # older events cannot be replayed [crm-behaviour: Salesforce Change Data Capture events]
        self.org_id = ORG_ID
        self.pubsub: Any = None  # the PubSubSandbox while running
        self.pubsub_target = ""
        self._pubsub_wanted = pubsub
        self._pubsub_tls = pubsub_tls
        self._tokens: dict[str, tuple[datetime, str]] = {}  # token -> (issued_at, user id)
        self._jwt_keys: dict[str, tuple[bytes, str]] = {}
        self._locators: dict[str, tuple[list[dict[str, Any]], int, str]] = {}
        self._write_clients: dict[str, str | None] = {}
        self._schemas: dict[str, dict[str, FieldDef]] = {"Lead": _lead_fields(), **{k: dict(v) for k, v in SCHEMAS_STATIC.items()}}
        self._tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self._schemas}
        self._counters: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.ca_file = ""
        self.instance_url = ""
        self._seed(seed, leads)

    # lifecycle

    def start(self) -> str:
        """Generate a loopback certificate, serve HTTPS on 127.0.0.1 (a free port); return the instance URL."""
        self._tmpdir = tempfile.mkdtemp(prefix="sf-sandbox-")
        cert_file, key_file = _write_certificate(Path(self._tmpdir))
        self.ca_file = str(cert_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server = _TlsServer(("127.0.0.1", 0), _Handler, context)
        server.sandbox = self
        self._server = server
        self.instance_url = f"https://127.0.0.1:{server.server_address[1]}"
        # A short poll interval keeps stop() fast (shutdown waits for the serve loop to notice).
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="salesforce-sandbox", daemon=True)
        self._thread.start()
        if self._pubsub_wanted:
            from connector.sandbox.pubsub import PubSubSandbox

            self.pubsub = PubSubSandbox(self, tls=self._pubsub_tls)
            self.pubsub_target = self.pubsub.start()
        return self.instance_url

    def stop(self) -> None:
        if self.pubsub is not None:
            self.pubsub.stop()
            self.pubsub = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> SalesforceSandbox:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # seed

    def _next_id(self, sobject: str) -> str:
        self._counters[sobject] += 1
        return sf_id(KEY_PREFIX[sobject], self._counters[sobject])

    def _seed(self, seed: int, n_leads: int) -> None:
        rng = random.Random(seed * 7919 + 1)
        users = self._tables["User"]
        for rep in SEED_REPS:
            uid = self._next_id("User")
            users[uid] = {"Id": uid, "Username": rep.email, "Email": rep.email, "FirstName": rep.first_name,
                          "LastName": rep.last_name, "Name": f"{rep.first_name} {rep.last_name}",
                          "IsActive": rep.is_active, "UserType": "Standard"}
        self.admin_user_id = self._next_id("User")
        users[self.admin_user_id] = {"Id": self.admin_user_id, "Username": self.username, "Email": self.username,
                                     "FirstName": "Sandbox", "LastName": "Admin", "Name": "Sandbox Admin",
                                     "IsActive": True, "UserType": "Standard"}
        self.integration_user_id = self._next_id("User")
        users[self.integration_user_id] = {"Id": self.integration_user_id, "Username": "integration@sandbox.test",
                                           "Email": "integration@sandbox.test", "FirstName": "Lead",
                                           "LastName": "Integration", "Name": "Lead Integration", "IsActive": True,
                                           "UserType": "Standard"}
        rep_ids = [u for u in users if users[u]["Email"].endswith("example-corp.test")]
        active_rep_ids = [u for u in rep_ids if users[u]["IsActive"]]
        groups = self._tables["Group"]
        for name, dev in (("Inbound Lead Queue", "Inbound_Lead_Queue"), ("Enterprise Queue", "Enterprise_Queue")):
            gid = self._next_id("Group")
            groups[gid] = {"Id": gid, "Name": name, "DeveloperName": dev, "Type": "Queue",
                           "Email": f"{dev.lower()}@example-corp.test"}
        self.default_queue_id = next(iter(groups))
        for api_name, order, converted, default in LEAD_STATUSES:
            sid = self._next_id("LeadStatus")
            self._tables["LeadStatus"][sid] = {"Id": sid, "MasterLabel": api_name, "ApiName": api_name, "SortOrder": order,
                                               "IsConverted": converted, "IsDefault": default}
        companies = generate_companies()
        account_ids: dict[str, str] = {}
        for i, co in enumerate(companies):
            aid = self._next_id("Account")
            account_ids[co.key] = aid
            website = (f"https://www.{co.domain}", co.domain, f"http://{co.domain}/")[i % 3]
            self._tables["Account"][aid] = {
                "Id": aid, "IsDeleted": False, "Name": co.name, "Website": website,
                "OwnerId": rep_ids[co.owner_index] if co.owner_index is not None else self.integration_user_id,
                "ParentId": account_ids.get(co.parent_key) if co.parent_key else None,
                "Industry": co.industry, "NumberOfEmployees": co.employees,
            }
        for i, person in enumerate(generate_people(n_leads, seed=seed, companies=companies)):
            created = (SEED_BASE - timedelta(days=person.created_days_ago)).replace(microsecond=0)
            modified = (created + timedelta(days=rng.uniform(0, person.created_days_ago))).replace(microsecond=0)
            modified = min(modified, SEED_BASE)
            roll = rng.random()
            owner = self.default_queue_id if roll < 0.6 else self.integration_user_id if roll < 0.85 else rng.choice(active_rep_ids)
            status_roll = rng.random()
            status = LEAD_STATUSES[0][0] if status_roll < 0.75 else LEAD_STATUSES[1][0] if status_roll < 0.95 else LEAD_STATUSES[3][0]
            lead = {
                "FirstName": person.first_name, "LastName": person.last_name, "Title": person.title,
                "Company": person.company_name or f"{person.last_name} (personal)", "Email": person.email,
                "Phone": person.phone, "Website": person.company_domain if person.company_name else None,
                "Industry": person.industry, "NumberOfEmployees": person.employees,
                "AnnualRevenue": float(person.annual_revenue), "Country": person.country, "State": person.state,
                "City": person.city, "PostalCode": person.postal_code, "LeadSource": person.lead_source,
                "Status": status, "Rating": rng.choice(RATINGS) if rng.random() < 0.3 else None, "OwnerId": owner,
                "Product_Interest__c": person.product_interest, "Seniority__c": person.seniority,
                "LastActivityDate": (SEED_BASE - timedelta(days=person.last_activity_days_ago)).date()
                if person.last_activity_days_ago is not None else None,
            }
            for name, value in zip(BANT_FIELDS, (person.budget, person.authority, person.need, person.timeframe), strict=True):
                lead[name] = None if value is None else ("Yes" if value else "No")
            lid = self._insert_lead(lead, created=created, modified=modified)
            if i % 40 == 39:  # a few converted leads: updates to them fail [crm-behaviour: Salesforce per-record errors]
                self._convert(lid, modified)

    def _insert_lead(self, fields: Mapping[str, Any], *, created: datetime, modified: datetime) -> str:
        lid = self._next_id("Lead")
        row: dict[str, Any] = {name: None for name in self._schemas["Lead"]}
        row.update({"Id": lid, "IsDeleted": False, "IsConverted": False, "Status": LEAD_STATUSES[0][0],
                    "OwnerId": self.default_queue_id, "CreatedDate": created, "LastModifiedById": self.admin_user_id})
        row.update({k: v for k, v in fields.items() if k in self._schemas["Lead"]})
        row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
        row["LastModifiedDate"] = row["SystemModstamp"] = modified
        self._tables["Lead"][lid] = row
        return lid

    def _now(self) -> datetime:
        # SystemModstamp has second precision in practice (responses end in .000+0000) → ties are common.
        return self._clock.now().astimezone(UTC).replace(microsecond=0)

    def _touch(self, row: dict[str, Any], when: datetime | None = None, user_id: str | None = None) -> None:
        stamp = when or self._now()
        row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["LastModifiedById"] = user_id or self.admin_user_id

    def _convert(self, lead_id: str, when: datetime | None = None) -> None:
        row = self._tables["Lead"][lead_id]
        cid = self._next_id("Contact")
        self._tables["Contact"][cid] = {"Id": cid, "IsDeleted": False, "FirstName": row["FirstName"],
                                        "LastName": row["LastName"], "Email": row["Email"],
                                        "OwnerId": row["OwnerId"] if str(row["OwnerId"]).startswith("005") else self.admin_user_id,
                                        "AccountId": None}
        row.update({"IsConverted": True, "Status": "Closed - Converted", "ConvertedContactId": cid,
                    "ConvertedDate": (when or self._now()).date()})
        self._touch(row, when)

    # test/demo API (direct, no HTTP)

    def create_lead(self, fields: Mapping[str, Any]) -> str:
        """Insert a lead as a web form would (default owner: the default queue); returns its id."""
        with self._lock:
            self._check_fields("Lead", fields)
            now = self._now()
            lid = self._insert_lead(fields, created=now, modified=now)
            self._emit_change("CREATE", lid, None)
            return lid

    def person_update(self, lead_id: str, fields: Mapping[str, Any]) -> None:
        """A human edits a lead in the UI: fields change, stamps move, no API client recorded."""
        with self._lock:
            self._check_fields("Lead", fields)
            row = self._tables["Lead"][lead_id]
            before = dict(row)
            row.update(fields)
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
            self._touch(row)
            self._write_clients[lead_id] = None
            self._emit_change("UPDATE", lead_id, before)

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._tables["Lead"].get(lead_id)
            return dict(row) if row is not None else None

    def lead_ids(self, *, include_deleted: bool = False) -> list[str]:
        with self._lock:
            return [lid for lid, row in self._tables["Lead"].items() if include_deleted or not row["IsDeleted"]]

    def delete(self, lead_id: str) -> None:
        """Soft-delete (Recycle Bin): visible to queryAll with IsDeleted = true.

        [crm-behaviour: Salesforce queryAll returns deleted and merged rows]
        """
        with self._lock:
            row = self._tables["Lead"][lead_id]
            row["IsDeleted"] = True
            self._touch(row)
            self._emit_change("DELETE", lead_id, None)

    def merge(self, master_id: str, loser_id: str) -> None:
        """Merge: the loser is soft-deleted with MasterRecordId = master.

        [crm-behaviour: Salesforce queryAll returns deleted and merged rows]
        """
        with self._lock:
            loser, master = self._tables["Lead"][loser_id], self._tables["Lead"][master_id]
            loser["IsDeleted"] = True
            loser["MasterRecordId"] = master_id
            before = dict(master)
            self._touch(loser)
            self._touch(master)
            self._emit_change("DELETE", loser_id, None)
            self._emit_change("UPDATE", master_id, before)

    def convert(self, lead_id: str) -> None:
        with self._lock:
            before = dict(self._tables["Lead"][lead_id])
            self._convert(lead_id)
            self._emit_change("UPDATE", lead_id, before)

    def deactivate_user(self, user_id: str) -> None:
        with self._lock:
            self._tables["User"][user_id]["IsActive"] = False

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(u) for u in self._tables["User"].values()]

    def queues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(g) for g in self._tables["Group"].values() if g["Type"] == "Queue"]

    def accounts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._tables["Account"].values()]

    def create_account(self, fields: Mapping[str, Any]) -> str:
        with self._lock:
            self._check_fields("Account", fields)
            aid = self._next_id("Account")
            self._tables["Account"][aid] = {**{n: None for n in self._schemas["Account"]}, "IsDeleted": False,
                                            **fields, "Id": aid}
            return aid

    def create_contact(self, fields: Mapping[str, Any]) -> str:
        with self._lock:
            self._check_fields("Contact", fields)
            cid = self._next_id("Contact")
            self._tables["Contact"][cid] = {**{n: None for n in self._schemas["Contact"]}, "IsDeleted": False,
                                            **fields, "Id": cid}
            return cid

    def drop_field(self, name: str) -> None:
        """Remove a Lead field from the org (e.g. the connector's custom score field) to test start-up checks."""
        with self._lock:
            del self._schemas["Lead"][name]
            for row in self._tables["Lead"].values():
                row.pop(name, None)

    def last_write_client(self, lead_id: str) -> str | None:
        """The Sforce-Call-Options client of the last API write to a lead (None: a person or never written)."""
        with self._lock:
            return self._write_clients.get(lead_id)

    def set_stamp(self, lead_ids: Iterable[str], stamp: datetime) -> None:
        """Give leads one SystemModstamp (ties, late commits) without any other change."""
        with self._lock:
            for lid in lead_ids:
                self._tables["Lead"][lid]["SystemModstamp"] = stamp.astimezone(UTC)

    def expire_tokens(self) -> None:
        """Invalidate every issued access token: the next REST calls get 401 INVALID_SESSION_ID."""
        with self._lock:
            self._tokens.clear()

    def register_jwt_key(self, public_pem: bytes | str, client_id: str, username: str) -> None:
        with self._lock:
            key = public_pem.encode() if isinstance(public_pem, str) else public_pem
            self._jwt_keys[client_id] = (key, username)

    def _emit_change(self, change_type: str, lead_id: str, before: Mapping[str, Any] | None, *, client: str | None = None,
                     api: bool = False, user_id: str | None = None) -> None:
        """Publish a LeadChangeEvent for a change just made (called with the lock held); no-op without pubsub."""
        if self.pubsub is not None:
            self.pubsub.publish_change(change_type, lead_id, before, dict(self._tables["Lead"][lead_id]), client=client,
                                       api=api, user_id=user_id or self.admin_user_id, now=self._clock.now())

    def lead_field_types(self) -> dict[str, str]:
        """Lead field name -> sandbox field type (the change event schema is built from it)."""
        with self._lock:
            return {name: fdef.type for name, fdef in self._schemas["Lead"].items()}

    def user_for_token(self, token: str) -> str | None:
        """The user a live access token belongs to (None: unknown or expired)."""
        with self._lock:
            return self._authenticate({"authorization": f"Bearer {token}"})

    def clock_now(self) -> datetime:
        return self._clock.now()

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.request_log.clear()

    def _check_fields(self, sobject: str, fields: Mapping[str, Any]) -> None:
        unknown = [k for k in fields if k not in self._schemas[sobject]]
        if unknown:
            raise KeyError(f"no such {sobject} field(s): {', '.join(unknown)}")

    # HTTP dispatch (called by the handler with the lock held)

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, _Reply]:
        if len(raw_path.encode()) > REQUEST_LINE_MAX:
            return "uri_too_long", _Reply(414, "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>", "text/html;charset=iso-8859-1")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in headers.items())
        if len(raw_path.encode()) + header_bytes > REQUEST_LINE_MAX:
            return "headers_too_large", _Reply(431, "<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>",
                                               "text/html;charset=iso-8859-1")
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query)
        if path == "/services/oauth2/token" and method == "POST":
            return "token", self._token(headers, body)
        if re.fullmatch(r"/services/Soap/u/\d+\.\d", path) and method == "POST":
            return "soap_login", self._soap_login(body)
        if path == "/services/data" and method == "GET":
            return "versions", _Reply(200, [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS])
        m = re.fullmatch(r"/services/data/v(\d+\.\d)(/.*)?", path)
        if m is None:
            return "unknown", _Reply(404, _sf_errors("NOT_FOUND", "The requested resource does not exist"))
        version, rest = m.group(1), (m.group(2) or "").lstrip("/")
        label = _label(method, rest)
        if version not in API_VERSIONS:
            return label, _Reply(404, _sf_errors("NOT_FOUND", "The requested resource does not exist"))
        user_id = self._authenticate(headers)
        if user_id is None:
            return label, _Reply(401, _sf_errors("INVALID_SESSION_ID", "Session expired or invalid"))
        if self.api_usage >= self.daily_api_limit:
            # Over the rolling 24 h allocation: 403, no Retry-After [crm-behaviour: Salesforce API allocation: rolling 24 hours].
            return label, self._with_usage(_Reply(403, _sf_errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")))
        self.api_usage += 1
        if self.error_rate_5xx and self._rng.random() < self.error_rate_5xx:
            return label, self._with_usage(_Reply(503, _sf_errors("SERVER_UNAVAILABLE", "Server temporarily unavailable")))
        try:
            reply = self._route(method, version, rest, query, headers, body, user_id)
        except json.JSONDecodeError:
            reply = _Reply(400, _sf_errors("JSON_PARSER_ERROR", "The request body is not valid JSON"))
        return label, self._with_usage(reply)

    def _with_usage(self, reply: _Reply) -> _Reply:
        reply.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_api_limit}"
        return reply

    def _authenticate(self, headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.startswith(("Bearer ", "OAuth ")):
            return None
        entry = self._tokens.get(auth.split(" ", 1)[1].strip())
        if entry is None:
            return None
        issued, user_id = entry
        if self._clock.now() >= issued + timedelta(seconds=self.token_ttl_seconds):
            return None
        return user_id

    def _route(self, method: str, version: str, rest: str, query: Mapping[str, list[str]],
               headers: Mapping[str, str], body: bytes, user_id: str) -> _Reply:
        segs = rest.split("/") if rest else []
        if segs and segs[0] in ("query", "queryAll") and method == "GET":
            include_deleted = segs[0] == "queryAll"
            if len(segs) == 2:
                return self._query_more(segs[1])
            if "q" not in query:
                return _Reply(400, _sf_errors("MALFORMED_QUERY", "A query string has to be specified"))
            return self._query(query["q"][0], include_deleted, headers, version, segs[0])
        if segs == ["limits"] and method == "GET":
            return _Reply(200, {"DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": max(0, self.daily_api_limit - self.api_usage)}})
        if len(segs) == 3 and segs[0] == "sobjects" and segs[2] == "describe" and method == "GET":
            return self._describe(segs[1])
        if segs == ["composite", "sobjects"] and method == "PATCH":
            return self._collections_update(json.loads(body or b"{}"), headers, version, user_id)
        if len(segs) == 3 and segs[:2] == ["composite", "sobjects"] and method == "POST":
            return self._collections_retrieve(segs[2], json.loads(body or b"{}"), version)
        if len(segs) == 3 and segs[0] == "sobjects" and segs[1] == "Lead":
            if method == "PATCH":
                results = self._update_records([{"attributes": {"type": "Lead"}, "id": segs[2], **json.loads(body or b"{}")}],
                                               headers, user_id)
                if results[0]["success"]:
                    return _Reply(204)
                return _Reply(400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
                                    for e in results[0]["errors"]])
            if method == "GET":
                row = self._tables["Lead"].get(segs[2])
                if row is None or row["IsDeleted"]:
                    return _Reply(404, _sf_errors("NOT_FOUND", "The requested resource does not exist"))
                return _Reply(200, self._render("Lead", row, list(self._schemas["Lead"]), version))
        return _Reply(404, _sf_errors("NOT_FOUND", "The requested resource does not exist"))

    # OAuth / SOAP login

    def _issue(self, user_id: str) -> dict[str, Any]:
        token = f"00D!{secrets.token_urlsafe(24)}"
        issued = self._clock.now()
        self._tokens[token] = (issued, user_id)
        issued_ms = str(int(issued.timestamp() * 1000))
        signature = base64.b64encode(hmac.new(self.client_secret.encode(), f"{self.instance_url}{issued_ms}".encode(),
                                              hashlib.sha256).digest()).decode()
        return {"access_token": token, "instance_url": self.instance_url,
                "id": f"{self.instance_url}/id/{ORG_ID}/{user_id}", "token_type": "Bearer",
                "issued_at": issued_ms, "signature": signature}

    def _user_by_username(self, username: str) -> dict[str, Any] | None:
        return next((u for u in self._tables["User"].values() if u["Username"].lower() == username.lower()), None)

    def _token(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        bad_client = _Reply(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        bad_grant = _Reply(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        if grant == "client_credentials":
            if client_id != self.client_id or client_secret != self.client_secret:
                return bad_client
            return _Reply(200, self._issue(self.admin_user_id))
        if grant == "password":
            if client_id != self.client_id or client_secret != self.client_secret:
                return bad_client
            user = self._user_by_username(form.get("username", ""))
            if user is None or form.get("password") not in (self.password, self.password + self.security_token):
                return bad_grant
            return _Reply(200, self._issue(user["Id"]))
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        return _Reply(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})

    def _jwt_grant(self, assertion: str) -> _Reply:
        bad = _Reply(400, {"error": "invalid_grant", "error_description": "invalid assertion"})
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return bad
        entry = self._jwt_keys.get(str(claims.get("iss")))
        if entry is None:
            return _Reply(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        key, username = entry
        try:
            # Expiry is checked against the sandbox clock (tests freeze it), not the wall clock.
            verified = jwt.decode(assertion, key, algorithms=["RS256"], audience=self.instance_url,
                                  issuer=claims["iss"], options={"verify_exp": False, "require": ["exp", "iss", "sub", "aud"]})
        except jwt.PyJWTError:
            return bad
        if verified["sub"] != username or float(verified["exp"]) <= self._clock.now().timestamp():
            return bad
        user = self._user_by_username(username)
        if user is None:
            return bad
        return _Reply(200, self._issue(user["Id"]))

    def _soap_login(self, body: bytes) -> _Reply:
        ns = {"n": "urn:partner.soap.sforce.com"}
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return _soap_fault("INVALID_LOGIN", "INVALID_LOGIN: malformed request")
        username = root.findtext(".//n:username", default="", namespaces=ns)
        password = root.findtext(".//n:password", default="", namespaces=ns)
        user = self._user_by_username(username)
        if user is None or password != self.password + self.security_token:
            return _soap_fault("INVALID_LOGIN", "INVALID_LOGIN: Invalid username, password, security token; or user locked out.")
        token = self._issue(user["Id"])["access_token"]
        server_url = f"{self.instance_url}/services/Soap/u/62.0/{ORG_ID}"
        xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
               'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
               f"<passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>{xml_escape(server_url)}</serverUrl>"
               f"<sessionId>{xml_escape(token)}</sessionId><userId>{user['Id']}</userId>"
               "</result></loginResponse></soapenv:Body></soapenv:Envelope>")
        return _Reply(200, xml, content_type="text/xml;charset=UTF-8")

    # query

    def _query(self, text: str, include_deleted: bool, headers: Mapping[str, str], version: str, endpoint: str) -> _Reply:
        try:
            soql = parse_soql(text, self._schemas)
        except LookupError as exc:
            return _Reply(400, _sf_errors("INVALID_FIELD", str(exc.args[0])))
        except ValueError as exc:
            return _Reply(400, _sf_errors("MALFORMED_QUERY", str(exc)))
        table = self._tables[soql.sobject]
        rows = [r for r in table.values() if (include_deleted or not r.get("IsDeleted")) and (soql.where is None or soql.where(r))]
        _sort_rows(rows, soql.order_by, self._schemas[soql.sobject])
        if soql.limit is not None:
            rows = rows[: soql.limit]
        records = [self._render(soql.sobject, r, soql.fields, version) for r in rows]
        page = DEFAULT_BATCH
        m = re.search(r"batchSize\s*=\s*(\d+)", headers.get("sforce-query-options", ""))
        if m:
            page = min(DEFAULT_BATCH, max(200, int(m.group(1))))
        locator = f"01g{secrets.token_hex(6).upper()}"
        self._locators[locator] = (records, page, f"/services/data/v{version}/{endpoint}")
        return self._page(locator, 0)

    def _page(self, locator: str, offset: int) -> _Reply:
        records, size, base = self._locators[locator]
        chunk = records[offset: offset + size]
        body: dict[str, Any] = {"totalSize": len(records), "done": offset + size >= len(records), "records": chunk}
        if not body["done"]:
            body["nextRecordsUrl"] = f"{base}/{locator}-{offset + size}"
        return _Reply(200, body)

    def _query_more(self, ident: str) -> _Reply:
        locator, _, offset = ident.rpartition("-")
        if locator not in self._locators or not offset.isdigit():
            return _Reply(400, _sf_errors("INVALID_QUERY_LOCATOR", "invalid query locator"))
        return self._page(locator, int(offset))

    def _render(self, sobject: str, row: Mapping[str, Any], fields: Iterable[str], version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}"}}
        for name in fields:
            out[name] = format_value(row.get(name))
        return out

    def _describe(self, sobject: str) -> _Reply:
        schema = self._schemas.get(sobject)
        if schema is None:
            return _Reply(404, _sf_errors("NOT_FOUND", f"The requested resource does not exist: {sobject}"))
        fields = []
        for f in schema.values():
            values = f.picklist
            if f.name == "Status" and sobject == "Lead":
                values = tuple(s["ApiName"] for s in sorted(self._tables["LeadStatus"].values(), key=lambda s: s["SortOrder"]))
            fields.append({
                "name": f.name, "label": f.name.removesuffix("__c").replace("_", " "), "type": f.type,
                "updateable": f.updateable, "createable": f.updateable, "custom": f.custom, "nillable": f.type != "boolean",
                "length": 255 if f.type in _STRINGISH else 0, "precision": 18 if f.type in ("double", "currency") else 0,
                "scale": 0, "restrictedPicklist": f.restricted, "referenceTo": list(f.reference_to),
                "picklistValues": [{"active": True, "defaultValue": v == f.default, "label": v, "validFor": None, "value": v}
                                   for v in values],
            })
        return _Reply(200, {"name": sobject, "label": sobject, "keyPrefix": KEY_PREFIX[sobject], "custom": False,
                            "updateable": True, "queryable": True, "fields": fields})

    # writes

    def _collections_update(self, body: Mapping[str, Any], headers: Mapping[str, str], version: str, user_id: str) -> _Reply:
        self.last_headers = dict(headers)
        records = body.get("records") or []
        if len(records) > MAX_COLLECTION_UPDATE:
            return _Reply(400, _sf_errors("EXCEEDED_ID_LIMIT",
                                          f"record limit reached. cannot submit more than {MAX_COLLECTION_UPDATE} records into this call"))
        if body.get("allOrNone"):
            return _Reply(400, _sf_errors("INVALID_FIELD", "the sandbox implements allOrNone=false only"))
        return _Reply(200, self._update_records(records, headers, user_id))

    def _update_records(self, records: list[Mapping[str, Any]], headers: Mapping[str, str], user_id: str) -> list[dict[str, Any]]:
        self.last_headers = dict(headers)
        auto_assign = headers.get("sforce-auto-assign", "TRUE").strip().upper() not in ("FALSE", "0")
        client = None
        m = re.search(r"client=([^,;\s]+)", headers.get("sforce-call-options", ""))
        if m:
            client = m.group(1)
        return [self._update_one(rec, auto_assign, client, user_id) for rec in records]

    def _update_one(self, rec: Mapping[str, Any], auto_assign: bool, client: str | None, user_id: str) -> dict[str, Any]:
        rid = str(rec.get("id") or rec.get("Id") or "")

        def fail(code: str, message: str, fields: Iterable[str] = ()) -> dict[str, Any]:
            return {"id": rid, "success": False, "errors": [{"statusCode": code, "message": message, "fields": list(fields)}]}

        sobject = (rec.get("attributes") or {}).get("type")
        if sobject != "Lead":
            return fail("INVALID_TYPE", f"the sandbox updates Lead records only, got {sobject!r}")
        schema = self._schemas["Lead"]
        row = self._tables["Lead"].get(rid)
        if row is None:
            return fail("INVALID_ID_FIELD", f"invalid record id: {rid}", ["Id"])
        if row["IsDeleted"]:
            return fail("ENTITY_IS_DELETED", "entity is deleted")
        if row["IsConverted"]:
            return fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        if rid in self.fail_write_ids:
            code, message, fields = self.fail_write_ids[rid]
            return fail(code, message, fields)
        if self.lock_row_rate and self._rng.random() < self.lock_row_rate:
            return fail("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
        changes = {k: v for k, v in rec.items() if k not in ("attributes", "id", "Id")}
        for name, value in changes.items():
            fdef = schema.get(name)
            if fdef is None:
                return fail("INVALID_FIELD", f"No such column '{name}' on sobject of type Lead", [name])
            if not fdef.updateable:
                return fail("INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}.", [name])
            if fdef.type == "picklist" and fdef.restricted:
                allowed = self._picklist_values(fdef)
                if value is None or value not in allowed:
                    return fail("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{fdef.name}: bad value for restricted picklist field: {value}", [name])
            if fdef.type in _NUMERIC and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                return fail("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value}", [name])
            if name == "OwnerId":
                owner = self._tables["User"].get(str(value)) or self._tables["Group"].get(str(value))
                if owner is None:
                    return fail("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", ["OwnerId"])
                if owner.get("IsActive") is False:
                    return fail("INACTIVE_OWNER_OR_USER", "operation performed with inactive user")
        before = dict(row)
        row.update(changes)
        if auto_assign and self.assignment_rule_active:
            # The org's active lead assignment rule runs on API updates unless Sforce-Auto-Assign: FALSE
            # [crm-behaviour: Salesforce assignment rules override OwnerId].
            row["OwnerId"] = self.default_queue_id
        self._touch(row, user_id=user_id)
        self._write_clients[rid] = client
        self._emit_change("UPDATE", rid, before, client=client, api=True, user_id=user_id)
        return {"id": rid, "success": True, "errors": []}

    def _picklist_values(self, fdef: FieldDef) -> tuple[str, ...]:
        if fdef.name == "Status":
            return tuple(s["ApiName"] for s in self._tables["LeadStatus"].values())
        return fdef.picklist

    def _collections_retrieve(self, sobject: str, body: Mapping[str, Any], version: str) -> _Reply:
        schema = self._schemas.get(sobject)
        if schema is None:
            return _Reply(404, _sf_errors("NOT_FOUND", f"The requested resource does not exist: {sobject}"))
        ids, fields = list(body.get("ids") or []), list(body.get("fields") or [])
        if len(ids) > MAX_COLLECTION_RETRIEVE:
            return _Reply(400, _sf_errors("EXCEEDED_ID_LIMIT", f"cannot retrieve more than {MAX_COLLECTION_RETRIEVE} records"))
        unknown = [f for f in fields if f not in schema]
        if unknown or not fields:
            return _Reply(400, _sf_errors("INVALID_FIELD", f"No such column '{unknown[0] if unknown else ''}' on entity '{sobject}'."))
        out: list[dict[str, Any] | None] = []
        for rid in ids:
            row = self._tables[sobject].get(rid)
            out.append(None if row is None or row.get("IsDeleted") else self._render(sobject, row, fields, version))
        return _Reply(200, out)


def _label(method: str, rest: str) -> str:
    segs = rest.split("/") if rest else []
    if not segs:
        return "resources"
    head = segs[0]
    if head in ("query", "queryAll"):
        return "query_more" if len(segs) == 2 else head
    if head == "limits":
        return "limits"
    if head == "sobjects" and len(segs) == 3 and segs[2] == "describe":
        return f"describe_{segs[1].lower()}"
    if head == "composite" and segs[1:2] == ["sobjects"]:
        return "collections_update" if method == "PATCH" else "collections_retrieve"
    if head == "sobjects" and len(segs) == 3:
        return "sobject_update" if method == "PATCH" else "sobject_get"
    return "other"


def _soap_fault(code: str, message: str) -> _Reply:
    xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
           'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
           f"<faultcode>sf:{code}</faultcode><faultstring>{xml_escape(message)}</faultstring>"
           "</soapenv:Fault></soapenv:Body></soapenv:Envelope>")
    return _Reply(500, xml, content_type="text/xml;charset=UTF-8")


def _write_certificate(directory: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 / localhost; it is also the CA file clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "salesforce-sandbox.localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "sandbox-cert.pem", directory / "sandbox-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SalesforceSandbox

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # The TLS handshake runs in the request thread, so one slow client cannot stall accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsServer

    def setup(self) -> None:
        # Headers and body go out as separate writes; without TCP_NODELAY every keep-alive
        # request waits ~40 ms on Nagle + delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with sandbox._lock:
            label, reply = sandbox.handle(self.command, self.path, headers, body)
            sandbox.calls[label] += 1
            sandbox.request_log.append((self.command, self.path, label, reply.status))
        payload = b""
        if reply.body is not None:
            payload = reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve
