"""A HubSpot-compatible CRM v3/v4 HTTP server on loopback: seeded contacts, companies, leads, owners, properties and fault knobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connector.core.clock import Clock
from connector.sandbox._http import Reply, SandboxServer
from connector.sandbox.hubspot import associations, batch, endpoints, owners, properties
from connector.sandbox.hubspot.limits import DEFAULT_DAILY_LIMIT, RateLimits
from connector.sandbox.hubspot.oauth import OAuthApp
from connector.sandbox.hubspot.objects import OBJECT_ALIASES, OBJECT_TYPES, object_type_or_raise
from connector.sandbox.hubspot.records import Change, RecordStore
from connector.sandbox.hubspot.search import search
from connector.sandbox.hubspot.seed import seed_account
from connector.sandbox.hubspot.wire import Abort, abort, as_int, error_body, iso

Action = Callable[[Mapping[str, list[str]], Any], Reply]
Route = tuple[str, Action | None, bool]  # (endpoint label, action, is a search)
LogEntry = tuple[float, str, str, int]  # (monotonic time, method, path, status)
UNAUTHENTICATED = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
                   "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


PORTAL_ID = 24_681_357  # the sandbox account's portal (hub) id, in record links


class HubSpotSandbox(SandboxServer[LogEntry, tuple[str, str]]):
    """A loopback HubSpot account: real v3/v4 paths and shapes, limits, per-record errors and fault knobs.

    The real `hubspot-api-client` works against it unchanged with `hubspot.Client.create(access_token=sb.token,
    host=sb.base_url)` [crm-behaviour: hubspot-api-client: host and retries]. All data helpers are thread-safe.
    Fault knobs besides the shared ones (`latency_seconds`, `latency_jitter_seconds`, `error_rate_5xx`,
    `fail_write_ids`: id → (category, message)): `requests_per_10s`, `search_rate_per_second`, `daily_limit`.
    """

    thread_name = "hubspot-sandbox"

    def __init__(self, seed: int = 42, contacts: int = 300, token: str = "sandbox-token", companies: int = 60, *,
                 leads: int | None = None, host: str = "127.0.0.1", port: int = 0, clock: Clock | None = None,
                 seed_base: datetime | None = None) -> None:
        super().__init__(seed=seed, clock=clock, host=host, port=port)
        self.token = token
        self.oauth: OAuthApp | None = None  # see enable_oauth
        self.requests_per_10s: int | None = None
        self.search_rate_per_second: int | None = None
        self.daily_limit: int = DEFAULT_DAILY_LIMIT
        self.limits = RateLimits(self)
        self._store = RecordStore(self._clock)
        self.change_log: list[Change] = self._store.change_log
        base = seed_base or self._clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        seed_account(self._store, seed, contacts, companies, contacts // 4 if leads is None else leads, base)

    # data helpers (thread-safe)

    def create_record(self, object_type: str, properties: Mapping[str, str], *, source: str = "CRM_UI") -> str:
        """A record made by a person (or an import); stamps created/modified dates; returns its id."""
        object_type = object_type_or_raise(object_type)
        with self._lock:
            return str(self._store.create(object_type, properties, source))

    def create_contact(self, properties: Mapping[str, str], *, source: str = "CRM_UI") -> str:
        """A new contact (e.g. a form fill or a rep typing it in); returns its id."""
        return self.create_record("contacts", properties, source=source)

    def person_update(self, object_type: str, record_id: str, properties: Mapping[str, str]) -> None:
        """A person's edit in HubSpot's UI: no API validation, bumps the modified date, change source CRM_UI."""
        with self._lock:
            record = self._store.require(object_type, record_id)
            self._store.apply(object_type_or_raise(object_type), record, properties, "CRM_UI")

    def get_record(self, object_type: str, record_id: str) -> dict[str, str] | None:
        """Current properties (strings, incl. created/modified dates and hs_object_id); None for an unknown id.

        Archived and merged-away records are still returned (see `is_archived`, `merged_into`).
        """
        object_type = object_type_or_raise(object_type)
        with self._lock:
            record = self._store.records[object_type].get(as_int(record_id))
            return None if record is None else self._store.all_properties(object_type, record)

    def records_ids(self, object_type: str, *, archived: bool = False) -> list[str]:
        """Ids of live records (archived=False) or of archived ones (archived=True), ascending."""
        object_type = object_type_or_raise(object_type)
        with self._lock:
            records = self._store.records[object_type]
            return [str(i) for i in self._store.order[object_type]
                    if (records[i].live if not archived else records[i].archived and records[i].merged_into is None)]

    def is_archived(self, object_type: str, record_id: str) -> bool:
        with self._lock:
            return self._store.require(object_type, record_id).archived

    def merged_into(self, object_type: str, record_id: str) -> str | None:
        """The surviving record's id for a merged-away id (following chains), else None."""
        with self._lock:
            record = self._store.require(object_type, record_id)
            if record.merged_into is None:
                return None
            survivor = self._store.resolve(object_type_or_raise(object_type), record.id)
            return None if survivor is None else str(survivor.id)

    def last_change_source(self, object_type: str, record_id: str) -> str:
        """INTEGRATION (an API write), CRM_UI (a person), or IMPORT (seeded) — the source of the last change."""
        with self._lock:
            return self._store.require(object_type, record_id).change_source

    def archive(self, object_type: str, record_id: str) -> None:
        """Archive (soft-delete); like HubSpot, this does not bump the modified date.

        [crm-behaviour: HubSpot archiving does not bump the modified date]
        """
        with self._lock:
            self._store.archive(self._store.require(object_type, record_id))

    def merge(self, object_type: str, primary_id: str, merged_id: str, *, source: str = "CRM_UI") -> None:
        """Merge `merged_id` into `primary_id`: the old id now reads as the survivor.

        [crm-behaviour: HubSpot merges: the old id reads as the survivor]
        """
        object_type = object_type_or_raise(object_type)
        with self._lock:
            primary, merged = self._store.require(object_type, primary_id), self._store.require(object_type, merged_id)
            if primary.id == merged.id or not primary.live or not merged.live:
                raise ValueError(f"hubspot sandbox: cannot merge {object_type} {merged_id} into {primary_id}")
            self._store.merge(object_type, primary, merged, source)

    def set_all_modified(self, ts_ms: int, object_type: str | None = None) -> None:
        """Stamp every record (of one type, or all) with the same modified date: HubSpot bulk jobs do this.

        [crm-behaviour: Pitfall: many records share one modified time]
        """
        with self._lock:
            for otype in (object_type_or_raise(object_type),) if object_type else OBJECT_TYPES:
                for record in self._store.records[otype].values():
                    record.updated_ms = ts_ms

    def owners(self) -> list[dict[str, Any]]:
        """Every owner as the owners API shapes it, archived (deactivated) ones included, in id order."""
        with self._lock:
            return [dict(o) for _, o in sorted(self._store.owners.items())]

    def deactivate_owner(self, owner_id: str) -> None:
        """The user is deactivated: the owner becomes archived; records keep it as hubspot_owner_id."""
        with self._lock:
            owner = self._store.owners[owner_id]
            owner["archived"] = True
            owner["userId"] = None
            owner["updatedAt"] = iso(self._store.now_ms())

    def associated_ids(self, from_type: str, record_id: str, to_type: str) -> list[str]:
        with self._lock:
            links = self._store.assoc.get((object_type_or_raise(from_type), object_type_or_raise(to_type)), {})
            return [str(t) for t in links.get(as_int(record_id), {})]

    def property_names(self, object_type: str) -> list[str]:
        with self._lock:
            return [n for n, p in self._store.properties[object_type_or_raise(object_type)].items() if not p.archived]

    def enable_oauth(self, client_id: str = "sandbox-client", client_secret: str = "sandbox-secret",
                     refresh_token: str = "sandbox-refresh", *, lifetime_seconds: float = 1800,
                     rotate_refresh_tokens: bool = False) -> OAuthApp:
        """An installed OAuth app: POST /oauth/v1/token issues access tokens living `lifetime_seconds`
        (HubSpot: 1,800), refused with HubSpot's 401 once expired; the static `token` keeps working."""
        self.oauth = OAuthApp(client_id, client_secret, refresh_token, lifetime_seconds=lifetime_seconds,
                              rotate_refresh_tokens=rotate_refresh_tokens, monotonic=self._clock.monotonic)
        return self.oauth

    # HTTP

    def log_entry(self, method: str, raw_path: str, label: str, status: int) -> LogEntry:
        return (self.arrived_at(), method, urlsplit(raw_path).path, status)

    def bounded_logs(self) -> list[list[Any]]:
        return [self.request_log, self.change_log]

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, Reply]:
        """One request → (endpoint label, reply). Order: auth, daily limit, search / burst limits, 5xx, route."""
        split = urlsplit(raw_path)
        path = unquote(split.path).rstrip("/") or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        if path == "/oauth/v1/token" and method == "POST" and self.oauth is not None:
            return "oauth.token", self.oauth.grant(body)
        label, action, is_search = self._route(method, path)
        unauthorised = self._refused(headers.get("authorization", ""))
        if unauthorised is not None:
            return label, unauthorised
        now = self.arrived_at()
        try:
            reply = self._limited_or_failed(now, is_search) or self._run(action, query, body)
        except Abort as refused:
            reply = refused.reply
        if not is_search:
            # Search responses carry no X-HubSpot-RateLimit-* headers [crm-behaviour: HubSpot search has its own rate limit].
            reply.headers.update(self.limits.headers(now))
        return label, reply

    def _refused(self, auth: str) -> Reply | None:
        """None for the static token or a live OAuth access token; else HubSpot's 401."""
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else ""
        if token and token == self.token:
            return None
        if token and self.oauth is not None:
            return self.oauth.refuse(token)
        return Reply(401, error_body("INVALID_AUTHENTICATION", UNAUTHENTICATED))

    def _limited_or_failed(self, now: float, is_search: bool) -> Reply | None:
        limited = self.limits.check(now, self._clock.now(), is_search)
        if limited is not None:
            return limited
        if self.is_failing_5xx():
            status = self._fault_rng.choice((502, 503))
            return Reply(status, error_body("INTERNAL_ERROR", "Bad Gateway" if status == 502 else "Service Unavailable"))
        return None

    @staticmethod
    def _run(action: Action | None, query: Mapping[str, list[str]], body: bytes) -> Reply:
        if action is None:
            return Reply(404, error_body("OBJECT_NOT_FOUND", "Resource not found"))
        payload: Any = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError as exc:
                raise abort(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1: {exc}") from None
        return action(query, payload)

    def _route(self, method: str, path: str) -> Route:
        parts = path.strip("/").split("/")
        if len(parts) >= 4 and parts[:3] == ["crm", "v3", "objects"]:
            return self._object_route(method, parts)
        if len(parts) >= 4 and parts[:3] == ["crm", "v3", "properties"]:
            return self._property_route(method, parts)
        return self._other_route(method, parts)

    def _object_route(self, method: str, parts: list[str]) -> Route:
        store, n = self._store, len(parts)
        otype = OBJECT_ALIASES.get(parts[3])
        if otype is None:
            def unknown(_q: Mapping[str, list[str]], _b: Any) -> Reply:
                raise abort(400, "VALIDATION_ERROR", f"Unable to infer object type from: {parts[3]}")
            return "objects.unknown_type", unknown, False
        routes: dict[tuple[str, ...], tuple[str, Action]] = {
            ("GET",): ("list", lambda q, b: endpoints.list_records(store, otype, q)),
            ("POST",): ("create", lambda q, b: endpoints.create(store, otype, b)),
            ("POST", "search"): ("search", lambda q, b: search(store, otype, b)),
            ("POST", "merge"): ("merge", lambda q, b: endpoints.merge(store, otype, b)),
            ("POST", "batch", "read"): ("batch_read", lambda q, b: batch.batch_read(store, otype, q, b)),
            ("POST", "batch", "update"): ("batch_update", lambda q, b: batch.batch_update(store, otype, b, self.forced_failure)),
            ("POST", "batch", "create"): ("batch_create", lambda q, b: batch.batch_create(store, otype, b)),
            ("POST", "batch", "archive"): ("batch_archive", lambda q, b: batch.batch_archive(store, otype, b)),
        }
        found = routes.get((method, *parts[4:]))
        if found is not None:
            return f"{otype}.{found[0]}", found[1], found[0] == "search"
        if n == 5:
            rid = parts[4]
            by_method: dict[str, tuple[str, Action]] = {
                "GET": ("get", lambda q, b: endpoints.get_record(store, otype, rid, q)),
                "PATCH": ("update", lambda q, b: endpoints.update(store, otype, rid, q, b, self.forced_failure)),
                "DELETE": ("archive", lambda q, b: endpoints.archive(store, otype, rid)),
            }
            if method in by_method:
                return f"{otype}.{by_method[method][0]}", by_method[method][1], False
        return self._other_route(method, parts)

    def _property_route(self, method: str, parts: list[str]) -> Route:
        otype = OBJECT_ALIASES.get(parts[3])
        if otype is None or len(parts) > 5:
            return self._other_route(method, parts)
        defs, now = self._store.properties[otype], self._store.now_ms
        name = parts[4] if len(parts) == 5 else ""
        routes: dict[tuple[str, bool], tuple[str, Action]] = {
            ("GET", False): ("list", lambda q, b: properties.list_properties(defs, q)),
            ("POST", False): ("create", lambda q, b: properties.create_property(defs, b, now())),
            ("GET", True): ("get", lambda q, b: properties.get_property(defs, name, q)),
            ("PATCH", True): ("update", lambda q, b: properties.update_property(defs, name, b, now())),
            ("DELETE", True): ("archive", lambda q, b: properties.archive_property(defs, name, now())),
        }
        found = routes.get((method, bool(name)))
        if found is None:
            return self._other_route(method, parts)
        return f"properties.{found[0]}", found[1], False

    def _other_route(self, method: str, parts: list[str]) -> Route:
        store, n = self._store, len(parts)
        if parts[:3] == ["crm", "v3", "owners"] and method == "GET":
            if n == 3:
                return "owners.list", lambda q, b: owners.list_owners(store.owners, q), False
            if n == 4:
                return "owners.get", lambda q, b: owners.get_owner(store.owners, parts[3], q), False
        if parts == ["account-info", "v3", "details"] and method == "GET":
            return "account.details", lambda q, b: Reply(200, {"portalId": PORTAL_ID, "timeZone": "US/Eastern",
                                                               "companyCurrency": "USD", "uiDomain": "app.hubspot.com"}), False
        if n == 7 and parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"] and method == "POST":
            return "associations.batch_read", lambda q, b: associations.batch_read(store, parts[3], parts[4], b), False
        if n == 7 and parts[:3] == ["crm", "v4", "objects"] and parts[5] == "associations" and method == "GET":
            return "associations.list", lambda q, b: associations.list_associations(store, parts[3], parts[4], parts[6], q), False
        return "unknown", None, False
