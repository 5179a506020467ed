"""A Salesforce-compatible HTTPS server on loopback: OAuth, SOQL subset, describe, sObject Collections, seeded data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connector.core.clock import Clock
from connector.sandbox._http import Reply, SandboxServer
from connector.sandbox.salesforce import composite
from connector.sandbox.salesforce.auth import Credentials, Sessions
from connector.sandbox.salesforce.org import Org
from connector.sandbox.salesforce.query import Queries, describe
from connector.sandbox.salesforce.schema import API_VERSIONS, ORG_ID, REQUEST_LINE_MAX, SEED_BASE, render_row, sf_errors
from connector.sandbox.salesforce.seed import seed_org

LogEntry = tuple[str, str, str, int]  # (method, path with query, endpoint label, status)
Failure = composite.Failure
HTML = "text/html;charset=iso-8859-1"
NOT_FOUND = "The requested resource does not exist"


class SalesforceSandbox(SandboxServer[LogEntry, Failure]):
    """A loopback Salesforce org: real paths, shapes, paging, batch limits, per-record errors and knobs for failures.

    Fault knobs besides the shared ones (`latency_seconds`, `latency_jitter_seconds`, `error_rate_5xx`,
    `fail_write_ids`: id → (status code, message, fields)): `lock_row_rate`, `daily_api_limit`,
    `token_ttl_seconds`, `assignment_rule_active`.
    """

    thread_name = "salesforce-sandbox"
    json_content_type = "application/json;charset=UTF-8"

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
        seed_base: datetime | None = None,
    ) -> None:
        super().__init__(seed=seed, clock=clock, tls=True)
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self.last_headers: dict[str, str] = {}
        # knobs
        self.token_ttl_seconds = 7200
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
        self._org = Org(self._clock)
        self._org.on_change = self._publish_change
        self._sessions = Sessions(self._org)
        self._queries = Queries(self._org)
        # Seeded timestamps hang off `seed_base`: by default the given clock's day, like the HubSpot sandbox (records
        # and engagement as old against the connector's `now` on the shared clock); without a clock a fixed date.
        if seed_base is None and clock is not None:
            seed_base = clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        seed_org(self._org, seed, leads, username, seed_base or SEED_BASE)

    @property
    def instance_url(self) -> str:
        """The org's https URL once started ("" before)."""
        return self.base_url

    @property
    def admin_user_id(self) -> str:
        return self._org.admin_user_id

    @property
    def integration_user_id(self) -> str:
        return self._org.integration_user_id

    @property
    def default_queue_id(self) -> str:
        return self._org.default_queue_id

    def start(self) -> str:
        """Generate a loopback certificate, serve HTTPS on 127.0.0.1 (a free port); return the instance URL."""
        super().start()
        if self._pubsub_wanted:
            from connector.sandbox.pubsub import PubSubSandbox

            self.pubsub = PubSubSandbox(self, tls=self._pubsub_tls)
            self.pubsub_target = self.pubsub.start()
        return self.instance_url

    def stop(self) -> None:
        if self.pubsub is not None:
            self.pubsub.stop()
            self.pubsub = None
        super().stop()

    # test/demo API (direct, no HTTP)

    def create_lead(self, fields: Mapping[str, Any]) -> str:
        """Insert a lead as a web form would (default owner: the default queue); returns its id."""
        with self._lock:
            self._org.check_fields("Lead", fields)
            now = self._org.now()
            lid = self._org.insert_lead(fields, created=now, modified=now)
            self._org.emit_change("CREATE", lid, None)
            return lid

    def person_update(self, lead_id: str, fields: Mapping[str, Any]) -> None:
        """A human edits a lead in the UI: fields change, stamps move, no API client recorded."""
        with self._lock:
            self._org.check_fields("Lead", fields)
            row = self._org.tables["Lead"][lead_id]
            before = dict(row)
            row.update(fields)
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
            self._org.touch(row)
            self._org.write_clients[lead_id] = None
            self._org.emit_change("UPDATE", lead_id, before)

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._org.tables["Lead"].get(lead_id)
            return dict(row) if row is not None else None

    def lead_ids(self, *, include_deleted: bool = False) -> list[str]:
        with self._lock:
            return [lid for lid, row in self._org.tables["Lead"].items() if include_deleted or not row["IsDeleted"]]

    def delete(self, lead_id: str) -> None:
        """Soft-delete (Recycle Bin): visible to queryAll with IsDeleted = true.

        [crm-behaviour: Salesforce queryAll returns deleted and merged rows]
        """
        with self._lock:
            row = self._org.tables["Lead"][lead_id]
            row["IsDeleted"] = True
            self._org.touch(row)
            self._org.emit_change("DELETE", lead_id, None)

    def merge(self, master_id: str, loser_id: str) -> None:
        """Merge: the loser is soft-deleted with MasterRecordId = master.

        [crm-behaviour: Salesforce queryAll returns deleted and merged rows]
        """
        with self._lock:
            loser, master = self._org.tables["Lead"][loser_id], self._org.tables["Lead"][master_id]
            loser["IsDeleted"] = True
            loser["MasterRecordId"] = master_id
            before = dict(master)
            self._org.touch(loser)
            self._org.touch(master)
            self._org.emit_change("DELETE", loser_id, None)
            self._org.emit_change("UPDATE", master_id, before)

    def convert(self, lead_id: str) -> None:
        with self._lock:
            before = dict(self._org.tables["Lead"][lead_id])
            self._org.convert(lead_id)
            self._org.emit_change("UPDATE", lead_id, before)

    def deactivate_user(self, user_id: str) -> None:
        with self._lock:
            self._org.tables["User"][user_id]["IsActive"] = False

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(u) for u in self._org.tables["User"].values()]

    def queues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(g) for g in self._org.tables["Group"].values() if g["Type"] == "Queue"]

    def accounts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._org.tables["Account"].values()]

    def create_account(self, fields: Mapping[str, Any]) -> str:
        with self._lock:
            self._org.check_fields("Account", fields)
            return self._org.insert("Account", fields)

    def create_contact(self, fields: Mapping[str, Any]) -> str:
        with self._lock:
            self._org.check_fields("Contact", fields)
            return self._org.insert("Contact", fields)

    def drop_field(self, name: str) -> None:
        """Remove a Lead field from the org (e.g. the connector's custom score field) to test start-up checks."""
        with self._lock:
            del self._org.schemas["Lead"][name]
            for row in self._org.tables["Lead"].values():
                row.pop(name, None)

    def last_write_client(self, lead_id: str) -> str | None:
        """The Sforce-Call-Options client of the last API write to a lead (None: a person or never written)."""
        with self._lock:
            return self._org.write_clients.get(lead_id)

    def set_stamp(self, lead_ids: Iterable[str], stamp: datetime) -> None:
        """Give leads one SystemModstamp (ties, late commits) without any other change."""
        with self._lock:
            for lid in lead_ids:
                self._org.tables["Lead"][lid]["SystemModstamp"] = stamp.astimezone(UTC)

    def expire_tokens(self) -> None:
        """Invalidate every issued access token: the next REST calls get 401 INVALID_SESSION_ID."""
        with self._lock:
            self._sessions.tokens.clear()

    def register_jwt_key(self, public_pem: bytes | str, client_id: str, username: str) -> None:
        with self._lock:
            key = public_pem.encode() if isinstance(public_pem, str) else public_pem
            self._sessions.jwt_keys[client_id] = (key, username)

    def lead_field_types(self) -> dict[str, str]:
        """Lead field name -> sandbox field type (the change event schema is built from it)."""
        with self._lock:
            return {name: fdef.type for name, fdef in self._org.schemas["Lead"].items()}

    def user_for_token(self, token: str) -> str | None:
        """The user a live access token belongs to (None: unknown or expired)."""
        with self._lock:
            return self._sessions.authenticate({"authorization": f"Bearer {token}"}, self.token_ttl_seconds)

    def clock_now(self) -> datetime:
        return self._clock.now()

    def is_locking_row(self) -> bool:
        """Roll the UNABLE_TO_LOCK_ROW switch for one record write."""
        return bool(self.lock_row_rate) and self._fault_rng.random() < self.lock_row_rate

    def _publish_change(self, change_type: str, lead_id: str, before: Mapping[str, Any] | None, client: str | None,
                        api: bool, user_id: str | None) -> None:
        """Publish a LeadChangeEvent for a change just made (called with the lock held); no-op without pubsub."""
        if self.pubsub is not None:
            self.pubsub.publish_change(change_type, lead_id, before, dict(self._org.tables["Lead"][lead_id]), client=client,
                                       api=api, user_id=user_id or self._org.admin_user_id, now=self._clock.now())

    # HTTP dispatch (called with the lock held)

    def log_entry(self, method: str, raw_path: str, label: str, status: int) -> LogEntry:
        return (method, raw_path, label, status)

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, Reply]:
        too_large = _too_large(raw_path, headers)
        if too_large is not None:
            return too_large
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        creds = Credentials(self.client_id, self.client_secret, self.password, self.security_token)
        if path == "/services/oauth2/token" and method == "POST":
            return "token", self._sessions.token(headers, body, creds, self.instance_url)
        if re.fullmatch(r"/services/Soap/u/\d+\.\d", path) and method == "POST":
            return "soap_login", self._sessions.soap_login(body, creds, self.instance_url)
        if path == "/services/data" and method == "GET":
            return "versions", Reply(200, [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS])
        m = re.fullmatch(r"/services/data/v(\d+\.\d)(/.*)?", path)
        if m is None:
            return "unknown", Reply(404, sf_errors("NOT_FOUND", NOT_FOUND))
        version, rest = m.group(1), (m.group(2) or "").lstrip("/")
        label = _label(method, rest)
        if version not in API_VERSIONS:
            return label, Reply(404, sf_errors("NOT_FOUND", NOT_FOUND))
        user_id = self._sessions.authenticate(headers, self.token_ttl_seconds)
        if user_id is None:
            return label, Reply(401, sf_errors("INVALID_SESSION_ID", "Session expired or invalid"))
        if self.api_usage >= self.daily_api_limit:
            # Over the rolling 24 h allocation: 403, no Retry-After [crm-behaviour: Salesforce API allocation: rolling 24 hours].
            return label, self._with_usage(Reply(403, sf_errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")))
        self.api_usage += 1
        if self.is_failing_5xx():
            return label, self._with_usage(Reply(503, sf_errors("SERVER_UNAVAILABLE", "Server temporarily unavailable")))
        try:
            reply = self._route(method, version, rest, parse_qs(parts.query), headers, body, user_id)
        except json.JSONDecodeError:
            reply = Reply(400, sf_errors("JSON_PARSER_ERROR", "The request body is not valid JSON"))
        return label, self._with_usage(reply)

    def _with_usage(self, reply: Reply) -> Reply:
        reply.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_api_limit}"
        return reply

    def _route(self, method: str, version: str, rest: str, query: Mapping[str, list[str]],
               headers: Mapping[str, str], body: bytes, user_id: str) -> Reply:
        segs = rest.split("/") if rest else []
        if segs and segs[0] in ("query", "queryAll") and method == "GET":
            if len(segs) == 2:
                return self._queries.query_more(segs[1])
            if "q" not in query:
                return Reply(400, sf_errors("MALFORMED_QUERY", "A query string has to be specified"))
            return self._queries.query(query["q"][0], segs[0] == "queryAll", headers, version, segs[0])
        if segs == ["limits"] and method == "GET":
            return Reply(200, {"DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": max(0, self.daily_api_limit - self.api_usage)}})
        if len(segs) == 3 and segs[0] == "sobjects" and segs[2] == "describe" and method == "GET":
            return describe(self._org, segs[1])
        if segs == ["composite", "sobjects"] and method == "PATCH":
            self.last_headers = dict(headers)
            return composite.collections_update(self._org, json.loads(body or b"{}"), headers, user_id, self._write_policy())
        if len(segs) == 3 and segs[:2] == ["composite", "sobjects"] and method == "POST":
            return composite.collections_retrieve(self._org, segs[2], json.loads(body or b"{}"), version)
        if len(segs) == 3 and segs[0] == "sobjects" and segs[1] == "Lead" and method in ("PATCH", "GET"):
            return self._lead(method, segs[2], version, headers, body, user_id)
        return Reply(404, sf_errors("NOT_FOUND", NOT_FOUND))

    def _lead(self, method: str, lead_id: str, version: str, headers: Mapping[str, str], body: bytes, user_id: str) -> Reply:
        """PATCH or GET /sobjects/Lead/{id}."""
        if method == "GET":
            row = self._org.tables["Lead"].get(lead_id)
            if row is None or row["IsDeleted"]:
                return Reply(404, sf_errors("NOT_FOUND", NOT_FOUND))
            return Reply(200, render_row("Lead", row, list(self._org.schemas["Lead"]), version))
        record = {"attributes": {"type": "Lead"}, "id": lead_id, **json.loads(body or b"{}")}
        self.last_headers = dict(headers)
        result = composite.update_records(self._org, [record], headers, user_id, self._write_policy())[0]
        if result["success"]:
            return Reply(204)
        return Reply(400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in result["errors"]])

    def _write_policy(self) -> composite.WritePolicy:
        return composite.WritePolicy(self.forced_failure, self.is_locking_row, self.assignment_rule_active)


def _too_large(raw_path: str, headers: Mapping[str, str]) -> tuple[str, Reply] | None:
    if len(raw_path.encode()) > REQUEST_LINE_MAX:
        return "uri_too_long", Reply(414, "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>", content_type=HTML)
    header_bytes = sum(len(k) + len(v) + 4 for k, v in headers.items())
    if len(raw_path.encode()) + header_bytes > REQUEST_LINE_MAX:
        return "headers_too_large", Reply(431, "<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>",
                                          content_type=HTML)
    return None


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
