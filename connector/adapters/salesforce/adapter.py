"""The Salesforce adapter: Leads ⇄ the common model through simple-salesforce, errors translated at the boundary.

Streams and cursors (opaque JSON strings, safe to store after the page that carries them):

- `fetch_changed`: one queryAll stream over Lead ordered by `SystemModstamp, Id`
  [crm-behaviour: Salesforce incremental polling on SystemModstamp], so soft-deleted and
  merged-away rows (IsDeleted, MasterRecordId) arrive in order with the changes and become
  FetchPage.deleted_ids / merged. Cursor `{"v":1,"since","after","started"}`: `since`
  is the inclusive watermark of the scan; mid-scan pages carry `after` = the (SystemModstamp, Id)
  of their last row plus the scan's start time, so a resume continues with the tie-break
  `SystemModstamp > ts OR (SystemModstamp = ts AND Id > id)` and loses no ties; the last page
  carries the next watermark: scan start − lookback_seconds (late commits, see above), never
  lower than the old one. Pages are followed with nextRecordsUrl (`query` + `query_more`).
- `fetch_all` (backfill): query over Lead keyset on Id; cursor `{"v":1,"after_id"}`, `{"v":1,"done":true}`.

Authentication is ours (salesforce_auth); simple-salesforce gets a session id only, so its own
unbounded re-login recursion never runs [crm-behaviour: simple-salesforce re-login recursion]:
a 401 INVALID_SESSION_ID refreshes the token once per failing call, then the call is sent again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connector.adapters.base import ApiCallCounter, CallGuard, NoGuard, WriteFence, claim_lost, maybe_applied
from connector.adapters.salesforce import soql
from connector.adapters.salesforce.auth import SalesforceAuth, SalesforceToken, origin
from connector.core.clock import Clock, SystemClock
from connector.config import SalesforceSettings
from connector.core.errors import (
    AuthError,
    BudgetExhaustedError,
    ConfigError,
    ConfigProblem,
    ConnectorError,
    CrmApiError,
    RateLimitedError,
    RecordError,
    TransientError,
)
from connector.core.models import Account, Crm, FetchPage, Lead, Owner, Patch, Rejection, WriteResult
from connector.core.retrying import call_with_retries

log = logging.getLogger("connector.adapters.salesforce")

CRM: Crm = "salesforce"
OBJECT = "Lead"
# sObject Collections: ≤200 records per update call, ≤2,000 ids per retrieve (POST)
# [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids].
COLLECTION_UPDATE_MAX = 200
COLLECTION_RETRIEVE_MAX = 2000
# Values per IN list and LIKE terms per query: keeps the GET query URL far below the ~16 k limit.
IN_VALUES_MAX = 200
LIKE_TERMS_MAX = 20
# A query travels in the GET URL; URI + headers may not pass 16,384 bytes (414 / 431)
# [crm-behaviour: Salesforce request URI: 16,384 bytes]. Queries
# built from caller values (emails) are split to stay within half of it, leaving room for the path and headers.
QUERY_URL_BUDGET = 8_000
# Query page size must be 200..2,000 (Sforce-Query-Options batchSize) [crm-behaviour: Salesforce query pages: 200 to 2,000 rows].
BATCH_SIZE_RANGE = (200, 2000)
CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

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

# Per-record errors (HTTP 200 inside a Collections response, or 400 on a single-record call) that no
# retry can fix: dead-letter them [crm-behaviour: Salesforce per-record errors].
RECORD_CODES = frozenset({
    "CANNOT_UPDATE_CONVERTED_LEAD", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    "INACTIVE_OWNER_OR_USER", "INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED", "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_ID_FIELD", "INVALID_TYPE_ON_FIELD_IN_RECORD",
    "FIELD_INTEGRITY_EXCEPTION", "REQUIRED_FIELD_MISSING", "STRING_TOO_LONG", "DUPLICATE_VALUE", "ENTITY_IS_LOCKED",
})
LOCK_CODE = "UNABLE_TO_LOCK_ROW"
SESSION_CODE = "INVALID_SESSION_ID"
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"


def classify(status: int, code: str | None) -> type[ConnectorError]:
    """HTTP status + Salesforce errorCode → the connector error class (pure table).

    status 200 means a per-record error inside an sObject Collections answer; status 0 means no
    HTTP response at all (connection reset, timeout). A TransientError for a record means: send
    that record again after a wait.
    """
    if status == 0 or code == LOCK_CODE:
        # Row-lock contention clears when the other transaction ends: retry with backoff [crm-behaviour: Salesforce per-record errors].
        return TransientError
    if 200 <= status < 300:
        return RecordError
    if status == 401:
        return AuthError  # INVALID_SESSION_ID is refreshed first where the mode allows (needs_new_session)
    if status == 403:
        # Over the rolling 24 h allocation: 403 REQUEST_LIMIT_EXCEEDED, no Retry-After; waiting
        # minutes does not help [crm-behaviour: Salesforce API allocation: rolling 24 hours].
        # Any other 403 is a permission problem of the API user.
        return BudgetExhaustedError if code == LIMIT_CODE else AuthError
    if status == 429:
        return RateLimitedError
    if status == 408 or status >= 500:
        return TransientError
    if code in RECORD_CODES:
        return RecordError
    return CrmApiError


def needs_new_session(status: int, code: str | None) -> bool:
    """A 401 INVALID_SESSION_ID: the access token expired (session timeout) — fetch a new one.

    [crm-behaviour: Salesforce session expiry]
    """
    return status == 401 and code == SESSION_CODE


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


def _error_of(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) of a Salesforce error body `[{"errorCode","message"}]` (or a dict, or text)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        code = first.get("errorCode") or first.get("statusCode") or first.get("error")
        message = str(first.get("message") or first.get("error_description") or "")
        return (str(code) if code else None), message[:200]
    return None, ""


def _fmt_cursor_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(CURSOR_TIME_FORMAT)


def _parse_cursor_time(value: object, stream: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), CURSOR_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError([ConfigProblem(f"cursor.salesforce.{stream}", "stored cursor has an unreadable time; reset it")]) from None


def _decode(cursor: str | None, stream: str) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict) or state.get("v") != 1 or state.get("stream") != stream:
        raise ConfigError([ConfigProblem(f"cursor.salesforce.{stream}", "stored cursor is not a Salesforce cursor of this stream and version; reset it")])
    return state


def _encode(state: Mapping[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start: start + size])


class _ApiSession(requests.Session):
    """requests.Session that puts the timeout and CA file on every request (simple-salesforce sets neither).

    `verify` is passed per request because a session-level value loses to REQUESTS_CA_BUNDLE in
    the environment, which would silently ignore salesforce.ca_bundle.
    """

    def __init__(self, *, timeout: float, ca_bundle: str | None) -> None:
        super().__init__()
        self._timeout = timeout
        self._ca_bundle = ca_bundle

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        if self._ca_bundle:
            kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)


class SalesforceAdapter:
    """One Salesforce org's Leads; satisfies connector.adapters.base.CrmAdapter."""

    crm: Crm = CRM
    object_type = OBJECT
    write_batch_size = COLLECTION_UPDATE_MAX  # records per call [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids]

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        guard: CallGuard | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        grade_options: Sequence[str] = ("hot", "warm", "cold"),
        max_attempts: int = 5,
        query_batch_size: int | None = None,
    ) -> None:
        if query_batch_size is not None and not BATCH_SIZE_RANGE[0] <= query_batch_size <= BATCH_SIZE_RANGE[1]:
            raise ValueError(f"query_batch_size must be within {BATCH_SIZE_RANGE}, got {query_batch_size}")
        self.settings = settings
        self.calls = ApiCallCounter()
        self._guard: CallGuard = guard or NoGuard()
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep or self._clock.sleep
        self._grade_options = tuple(grade_options)
        self._max_attempts = max_attempts
        self._query_headers = {"Sforce-Query-Options": f"batchSize={query_batch_size}"} if query_batch_size else {}
        # Every write: no assignment rules (they would overwrite OwnerId,
        # [crm-behaviour: Salesforce assignment rules override OwnerId] [crm-behaviour: Pitfall: assignment rules reassign the owner])
        # and our client id, which change events echo back in changeOrigin for echo suppression
        # [crm-behaviour: Salesforce echo events carry our client id].
        self._write_headers = {
            "Sforce-Auto-Assign": "FALSE",
            "Sforce-Call-Options": f"client={settings.call_options_client}",
        }
        self._http = _ApiSession(timeout=settings.timeout_seconds, ca_bundle=settings.ca_bundle)
        self._http.hooks["response"].append(self._on_response)
        self._auth = SalesforceAuth(settings, _ApiSession(timeout=settings.timeout_seconds, ca_bundle=settings.ca_bundle), self._clock)
        self._sf: Salesforce | None = None
        self._token: SalesforceToken | None = None
        self._endpoint = ""
        self._describe: dict[str, Mapping[str, Any]] | None = None

    def close(self) -> None:
        """Release connection pools."""
        self._http.close()

    def session(self, *, renew: bool = False) -> SalesforceToken:
        """The access token, instance URL and org id the REST calls use (renew: fetch a new token first).

        The Pub/Sub API subscriber authenticates its gRPC calls with this same session [crm-behaviour: Salesforce Pub/Sub API calls].
        """
        if renew and self._auth.can_refresh:
            self._sf = None
        self._client()
        assert self._token is not None
        return self._token

    # the boundary: every REST call goes through _request (one attempt) or _call (retried)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Every REST answer carries Sforce-Limit-Info: api-usage=used/limit; the guard keeps the daily budget
        # honest with it, errors included [crm-behaviour: Salesforce API allocation: rolling 24 hours].
        self.calls.add(self._endpoint)
        self._guard.after(self._endpoint, response.status_code, {k.lower(): v for k, v in response.headers.items()})

    def _client(self) -> Salesforce:
        if self._sf is None:
            token = self._token = self._auth.fetch()
            self._sf = Salesforce(instance_url=token.instance_url, session_id=token.access_token,
                                  version=self.settings.api_version, session=self._http)
        return self._sf

    def _request(self, endpoint: str, kind: str, fn: Callable[[Salesforce], Any]) -> Any:
        """One call (plus one resend after a token refresh); errors come out as connector errors."""
        for first_try in (True, False):
            client = self._client()
            self._guard.before(endpoint, kind)
            self._endpoint = endpoint
            try:
                return fn(client)
            except SalesforceError as exc:
                code, message = _error_of(exc.content)
                if first_try and needs_new_session(exc.status, code) and self._auth.can_refresh:
                    log.info("salesforce %s: session expired; fetching a new access token", endpoint)
                    self._sf = None
                    continue
                raise self._translate(exc.status, code, message, endpoint) from exc
            except requests.exceptions.SSLError as exc:
                raise ConfigError([ConfigProblem("salesforce.ca_bundle", f"TLS verification of {origin(client.base_url)} "
                                                  "failed; set ca_bundle to the CA file that signs it")]) from exc
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise TransientError(f"salesforce {endpoint}: network error ({type(exc).__name__})", crm=CRM,
                                     endpoint=endpoint) from exc
        raise AuthError(f"a fresh access token was rejected too on {endpoint}", crm=CRM, credential=self._auth.credential)

    def _call(self, endpoint: str, kind: str, fn: Callable[[Salesforce], Any]) -> Any:
        return call_with_retries(lambda: self._request(endpoint, kind, fn), sleep=self._sleep,
                                 max_attempts=self._max_attempts, on_retry=self._on_retry)

    def _on_retry(self, exc: BaseException, wait_seconds: float) -> None:
        log.info("%s; retrying in %.1f s", exc, wait_seconds)

    def _translate(self, status: int, code: str | None, message: str, endpoint: str) -> ConnectorError:
        where = f"salesforce {endpoint}"
        kind = classify(status, code)
        if kind is BudgetExhaustedError:
            return BudgetExhaustedError(
                f"{where}: the org's daily API request limit is reached ({code}); writing stops, the cursor stays, "
                "and work resumes when the rolling 24 h window frees calls", crm=CRM)
        if kind is AuthError:
            if status == 401:
                what = "the static access token expired or was revoked" if not self._auth.can_refresh else "the access token was rejected"
                return AuthError(f"{what} (HTTP 401 {code or ''}) on {endpoint}", crm=CRM, credential=self._auth.credential)
            return AuthError(f"the API user may not do this (HTTP {status} {code or ''} on {endpoint}); check its profile "
                             "and permission sets", crm=CRM, credential=self._auth.credential)
        if kind is RateLimitedError:
            return RateLimitedError(f"{where}: HTTP 429", crm=CRM, endpoint=endpoint, status=status)
        if kind is TransientError:
            return TransientError(f"{where}: HTTP {status}{' ' + code if code else ''}", crm=CRM, endpoint=endpoint, status=status)
        return CrmApiError(message or "request rejected", crm=CRM, endpoint=endpoint, status=status, code=code)

    # describe and start-up checks

    def _lead_fields(self) -> dict[str, Mapping[str, Any]]:
        if self._describe is None:
            body = self._call(f"describe.{OBJECT}", "read", lambda sf: sf.restful(f"sobjects/{OBJECT}/describe"))
            self._describe = {str(f["name"]): f for f in (body or {}).get("fields", [])}
        return self._describe

    def bootstrap(self) -> None:
        """Check (describe) that the fields the connector writes exist, are editable and hold our values.

        Salesforce fields cannot be created over the REST API, so a missing field is a ConfigError
        telling the admin what to create; every problem is listed at once.
        """
        s = self.settings
        fields = self._lead_fields()
        problems: list[ConfigProblem] = []

        def check(key: str, name: str, types: frozenset[str], create_hint: str) -> Mapping[str, Any] | None:
            described = fields.get(name)
            if described is None:
                problems.append(ConfigProblem(key, f"Lead field {name!r} does not exist in this org; {create_hint} "
                                                   "(the connector cannot create fields through the REST API)"))
                return None
            if not described.get("updateable"):
                problems.append(ConfigProblem(key, f"Lead field {name!r} is not editable by the API user; grant edit "
                                                   "access in field-level security"))
            if described.get("type") not in types:
                problems.append(ConfigProblem(key, f"Lead field {name!r} is of type {described.get('type')!r}; "
                                                   f"expected one of {', '.join(sorted(types))}"))
            return described

        check("salesforce.score_field", s.score_field, NUMBER_TYPES,
              f"create a Number(5, 1) custom field with API name {s.score_field} on Lead in Setup → Object Manager → "
              "Lead → Fields & Relationships and give the API user edit access")
        grade = check("salesforce.grade_field", s.grade_field, TEXT_TYPES,
                      f"create a Picklist field {s.grade_field} on Lead with the grade values {', '.join(self._grade_options)}")
        if grade is not None and grade.get("type") == "picklist":
            values = {v.casefold() for v in _active_values(grade)}
            missing = [g for g in self._grade_options if g.casefold() not in values]
            if missing:
                problems.append(ConfigProblem("salesforce.grade_field", f"picklist {s.grade_field!r} lacks the grade value(s) "
                                                                        f"{', '.join(missing)}; add them in Setup or change the grades"))
        stage = check("salesforce.stage_field", s.stage_field, TEXT_TYPES, f"create a Picklist field {s.stage_field} on Lead")
        if stage is not None and stage.get("type") == "picklist":
            values = {v.casefold() for v in _active_values(stage)}
            for i, status in enumerate(s.status_order):
                if status.casefold() not in values:
                    problems.append(ConfigProblem(f"salesforce.status_order[{i}]",
                                                  f"{status!r} is not an active value of Lead.{s.stage_field}"))
        for alias, name in s.extra_fields.items():
            if name not in fields:
                problems.append(ConfigProblem(f"salesforce.extra_fields.{alias}", f"Lead field {name!r} does not exist in this org"))
        if s.lead_filter.strip():
            try:
                self._call("query", "read", lambda sf: sf.query(f"SELECT Id FROM {OBJECT} WHERE ({s.lead_filter}) LIMIT 1"))
            except CrmApiError as exc:
                problems.append(ConfigProblem("salesforce.lead_filter", f"Salesforce rejects this filter ({exc.code}): {exc}"))
        if problems:
            raise ConfigError(problems)

    def _select_fields(self) -> list[str]:
        s = self.settings
        described = self._lead_fields()
        wanted = [*SYSTEM_FIELDS]
        for name in (*OPTIONAL_FIELDS, s.score_field, s.grade_field, s.stage_field, *s.extra_fields.values()):
            if name in described and name not in wanted:
                wanted.append(name)
        return wanted

    # reads

    def normalize(self, record: Mapping[str, Any]) -> Lead:
        """A Lead record from SOQL or Collections retrieve → Lead. Unparseable values become None with a warning."""
        s = self.settings
        lead_id = str(record["Id"])
        values: dict[str, Any] = {}

        def parsed(name: str, convert: Callable[[Any], Any], expected: str) -> Any:
            raw = record.get(name)
            if raw in (None, ""):
                return None
            try:
                return convert(raw)
            except (TypeError, ValueError):
                # The value itself may be personal data: the field name is enough to find it.
                log.warning("salesforce Lead %s: field %s is not a valid %s; left empty", lead_id, name, expected)
                return None

        for name, attr in TEXT_FIELDS.items():
            raw = record.get(name)
            values[attr] = str(raw).strip() if raw not in (None, "") else None
        for name, attr in BANT_FIELDS.items():
            values[attr] = parsed(name, _yes_no, "yes/no value")
        interest = record.get(PRODUCT_INTEREST_FIELD)
        values["product_interest"] = tuple(p.strip() for p in str(interest).split(";") if p.strip()) if interest else ()
        values["employees"] = parsed("NumberOfEmployees", _whole_number, "whole number")
        values["annual_revenue"] = parsed("AnnualRevenue", float, "number")
        values["score"] = parsed(s.score_field, float, "number")
        grade = record.get(s.grade_field)
        values["grade"] = str(grade) if grade not in (None, "") else None
        stage = record.get(s.stage_field)
        values["stage"] = str(stage) if stage not in (None, "") else None
        status = record.get(STATUS_FIELD)
        values["lead_status"] = str(status) if status not in (None, "") else None
        values["company_domain"] = website_domain(record.get("Website"))
        values["created_at"] = parsed("CreatedDate", parse_datetime, "datetime")
        values["modified_at"] = parsed("LastModifiedDate", parse_datetime, "datetime") or parsed(STAMP_FIELD, parse_datetime, "datetime")
        values["last_activity_at"] = parsed("LastActivityDate", parse_datetime, "date")
        master = record.get("MasterRecordId")
        return Lead(
            crm=CRM,
            object_type=OBJECT,
            id=lead_id,
            is_converted=bool(record.get("IsConverted")),
            is_archived=bool(record.get("IsDeleted")),
            merged_into=str(master) if master else None,
            extra={alias: record.get(name) for alias, name in s.extra_fields.items()},
            **values,
        )

    def _stream(self, query: str, *, include_deleted: bool) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """Pages of one query: (records, done), following nextRecordsUrl one page at a time (never query_all)."""
        endpoint = "queryAll" if include_deleted else "query"
        headers = dict(self._query_headers)
        result = self._call(endpoint, "read", lambda sf: sf.query(query, include_deleted=include_deleted, headers=headers))
        while True:
            records = [dict(r) for r in result.get("records", [])]
            next_url = result.get("nextRecordsUrl")
            done = bool(result.get("done", True)) or not next_url
            yield records, done
            if done:
                return
            def more(sf: Salesforce) -> Any:  # called at once (and on retries) within this iteration
                return sf.query_more(str(next_url), identifier_is_url=True, headers=headers)  # noqa: B023

            result = self._call("query_more", "read", more)

    def _page(self, records: list[dict[str, Any]], cursor: str) -> FetchPage:
        leads: list[Lead] = []
        deleted: list[str] = []
        merged: dict[str, str] = {}
        rejected: list[Rejection] = []
        for record in records:
            if record.get("IsDeleted"):
                # A merge soft-deletes the loser and points it at the survivor
                # [crm-behaviour: Salesforce queryAll returns deleted and merged rows].
                if record.get("MasterRecordId"):
                    merged[str(record["Id"])] = str(record["MasterRecordId"])
                else:
                    deleted.append(str(record["Id"]))
                continue
            try:
                leads.append(self.normalize(record))
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(Rejection(str(record.get("Id", "")), None, "UNREADABLE_RECORD", f"{type(exc).__name__}: {exc}"))
        return FetchPage(tuple(leads), cursor, tuple(deleted), merged, tuple(rejected))

    def _where(self, *conditions: str | None, include_deleted: bool, include_converted: bool = False) -> str | None:
        parts = [c for c in conditions if c]
        lead_filter = self.settings.lead_filter.strip()
        if lead_filter:
            # The filter is the admin's own SOQL (trusted config). Deleted rows must pass it regardless, and
            # so must leads converted since the last sync: a routed lead's rep has its open load released
            # and the conversion credited, though the default filter is IsConverted = false.
            extra = (" OR IsDeleted = true" if include_deleted else "") + (" OR IsConverted = true" if include_converted else "")
            parts.append(f"(({lead_filter}){extra})" if extra else f"({lead_filter})")
        return " AND ".join(parts) or None

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads changed (and deleted / merged) since the cursor; see the module docstring for the cursor."""
        stream = "fetch_changed"
        state = _decode(cursor, stream)
        since = _parse_cursor_time(state.get("since"), stream)
        after = state.get("after")
        now = self._clock.now()
        if since is not None and since > now and not after:
            return  # a watermark in the future: nothing can have changed yet, and no call is spent
        started = _parse_cursor_time(state.get("started"), stream) or now
        if after:
            after_ts = _parse_cursor_time(after[0], stream)
            assert after_ts is not None
            ts = soql.datetime_literal(after_ts)
            position = f"({STAMP_FIELD} > {ts} OR ({STAMP_FIELD} = {ts} AND Id > {soql.quote(str(after[1]))}))"
        elif since is not None:
            position = f"{STAMP_FIELD} >= {soql.datetime_literal(since)}"
        else:
            position = None
        # A first scan (no watermark yet) leaves out the org's historic conversions: only later ones matter.
        where = self._where(position, include_deleted=True, include_converted=since is not None)
        query = soql.select(self._select_fields(), OBJECT, where, (STAMP_FIELD, "Id"))
        next_since = started - timedelta(seconds=self.settings.lookback_seconds)
        if since is not None:
            next_since = max(since, next_since)
        for records, done in self._stream(query, include_deleted=True):
            if done:
                state_out: dict[str, Any] = {"v": 1, "stream": stream, "since": _fmt_cursor_time(next_since)}
            else:
                last = records[-1]
                stamp = parse_datetime(last[STAMP_FIELD])
                assert stamp is not None
                state_out = {"v": 1, "stream": stream, "since": _fmt_cursor_time(since) if since else None,
                             "after": [_fmt_cursor_time(stamp), str(last["Id"])], "started": _fmt_cursor_time(started)}
            yield self._page(records, _encode(state_out))

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Nothing: deletions and merges already arrive through queryAll in fetch_changed (IsDeleted, MasterRecordId)."""
        return iter(())

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every lead matching lead_filter (backfill), keyset on Id, resumable from any page's cursor."""
        stream = "fetch_all"
        state = _decode(cursor, stream)
        if state.get("done"):
            return
        after_id = state.get("after_id")
        position = f"Id > {soql.quote(str(after_id))}" if after_id else None
        query = soql.select(self._select_fields(), OBJECT, self._where(position, include_deleted=False), ("Id",))
        for records, done in self._stream(query, include_deleted=False):
            out: dict[str, Any] = {"v": 1, "stream": stream}
            if done:
                out["done"] = True
            else:
                out["after_id"] = str(records[-1]["Id"])
            yield self._page(records, _encode(out))

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read leads with sObject Collections retrieve (≤2,000 ids per call); deleted / unknown ids are left out."""
        unique = list(dict.fromkeys(str(i) for i in ids if i))
        if not unique:
            return []
        fields = self._select_fields()
        leads: list[Lead] = []
        for chunk in _chunks(unique, COLLECTION_RETRIEVE_MAX):
            body = {"ids": chunk, "fields": fields}

            def retrieve(sf: Salesforce) -> Any:  # called at once (and on retries) within this iteration
                return sf.restful(f"composite/sobjects/{OBJECT}", method="POST", json=body)  # noqa: B023

            found = self._call("composite.sobjects.retrieve", "read", retrieve)
            for record in found or []:
                if record:
                    leads.append(self.normalize(dict(record)))
        return leads

    def _query_all_pages(self, query: str) -> Iterator[dict[str, Any]]:
        for records, _ in self._stream(query, include_deleted=False):
            yield from records

    def fetch_owners(self) -> list[Owner]:
        """Users (IsActive tells) and lead queues (Group Type = 'Queue', prefix 00G).

        [crm-behaviour: Salesforce lead owners: users and queues]
        """
        owners = [
            Owner(CRM, str(u["Id"]), u.get("Email"), str(u.get("Name") or ""), is_active=bool(u.get("IsActive")))
            for u in self._query_all_pages(soql.select(("Id", "Email", "Name", "IsActive"), "User", order_by=("Id",)))
        ]
        queue_query = soql.select(("Id", "Name", "Email"), "Group", f"Type = {soql.quote('Queue')}", ("Id",))
        owners += [Owner(CRM, str(g["Id"]), g.get("Email"), str(g.get("Name") or ""), is_active=True, is_queue=True)
                   for g in self._query_all_pages(queue_query)]
        return owners

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Accounts whose Website's host is one of the domains (email-domain matching is not built in).

        [crm-behaviour: Salesforce has no email-domain account matching]
        """
        wanted = sorted({d.strip().lower() for d in domains if d and d.strip()})
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, LIKE_TERMS_MAX):
            terms = " OR ".join(f"Website LIKE {soql.like_literal(d, prefix='%', suffix='%')}" for d in chunk)
            query = soql.select(("Id", "Name", "Website", "OwnerId", "ParentId"), "Account", f"({terms})", ("Id",))
            for account in self._query_all_pages(query):
                domain = website_domain(account.get("Website"))
                # LIKE '%acme.example%' also matches notacme.example: keep exact host matches only,
                # the oldest account (lowest Id) per domain.
                if domain is not None and domain in chunk and domain not in found:
                    found[domain] = account
        parent_ids = sorted({str(a["ParentId"]) for a in found.values() if a.get("ParentId")})
        parent_owner: dict[str, str | None] = {}
        for chunk in _chunks(parent_ids, IN_VALUES_MAX):
            query = soql.select(("Id", "OwnerId"), "Account", f"Id IN {soql.in_list(chunk)}")
            parent_owner.update({str(p["Id"]): p.get("OwnerId") for p in self._query_all_pages(query)})
        return {
            domain: Account(CRM, str(a["Id"]), domain, a.get("Name"), a.get("OwnerId"),
                            str(a["ParentId"]) if a.get("ParentId") else None,
                            parent_owner.get(str(a["ParentId"])) if a.get("ParentId") else None)
            for domain, a in found.items()
        }

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing Contacts by email → their OwnerId (duplicate-contact routing)."""
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        owners: dict[str, str] = {}
        for chunk in _chunks(wanted, IN_VALUES_MAX):
            query = soql.select(("Id", "Email", "OwnerId"), "Contact", f"Email IN {soql.in_list(chunk)}", ("Id",))
            for contact in self._query_all_pages(query):
                email = str(contact.get("Email") or "").lower()
                if email and contact.get("OwnerId") and email not in owners:
                    owners[email] = str(contact["OwnerId"])
        return owners

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]:
        """Leads whose Email is one of `emails` (SOQL compares text case-insensitively), normalized as fetch does.

        `SELECT <the fetch fields> FROM Lead WHERE Email IN (...) AND (<lead_filter>)`: the same leads
        the sync would see; `every_lead` drops the lead_filter (erasure must also reach converted
        leads). Values quoted by soql, split so every query URL stays within budget. Unknown emails
        are left out; a record that cannot be read is logged and left out.
        """
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        if not wanted:
            return []
        fields = self._select_fields()

        def render(values: str) -> str:
            where = f"Email IN {values}" if every_lead else self._where(f"Email IN {values}", include_deleted=False)
            return soql.select(fields, OBJECT, where, ("Id",))

        leads: dict[str, Lead] = {}
        for query in soql.split_in(wanted, render, max_values=IN_VALUES_MAX, max_url_length=QUERY_URL_BUDGET):
            for records, _ in self._stream(query, include_deleted=False):
                page = self._page(records, "")
                for rejection in page.rejected:
                    log.warning("salesforce Lead %s: found by email but unreadable (%s); left out", rejection.record_id, rejection.code)
                for lead in page.leads:
                    leads.setdefault(lead.id, lead)
        return list(leads.values())

    # writes

    def _record_for(self, patch: Patch) -> dict[str, Any]:
        """Patch.changes (model attributes) → a Collections record (Lead field API names and picklist spellings)."""
        s = self.settings
        record: dict[str, Any] = {"attributes": {"type": OBJECT}, "id": patch.record_id}
        fields = self._lead_fields()
        for attr, value in patch.changes.items():
            if attr == "owner_id":
                record[OWNER_FIELD] = value
            elif attr == "score":
                scale = int((fields.get(s.score_field) or {}).get("scale") or 0)
                record[s.score_field] = None if value is None else (round(float(value)) if scale == 0 else round(float(value), scale))
            elif attr == "grade":
                record[s.grade_field] = _picklist_spelling(fields.get(s.grade_field), value)
            elif attr == "stage":
                record[s.stage_field] = _picklist_spelling(fields.get(s.stage_field), value)
            elif attr == "lead_status":
                # Status is the stage field by default; a stage in the same patch wins.
                if STATUS_FIELD != s.stage_field or "stage" not in patch.changes:
                    record[STATUS_FIELD] = _picklist_spelling(fields.get(STATUS_FIELD), value)
            else:
                raise ValueError(f"salesforce Lead {patch.record_id}: the connector does not write {attr!r}")
        return record

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """sObject Collections PATCH, ≤200 records per call, allOrNone=false; one WriteResult per patch, in order.

        `fence`: see CrmAdapter.write (Salesforce has no per-second limiter, so it is asked right before each attempt).

        Records failing with UNABLE_TO_LOCK_ROW are sent again (alone) with backoff, up to
        max_attempts; REQUEST_LIMIT_EXCEEDED raises BudgetExhaustedError (nothing after it is sent).
        """
        results: list[WriteResult | None] = [None] * len(patches)
        pending: list[tuple[int, dict[str, Any]]] = []
        for i, patch in enumerate(patches):
            if patch.is_empty:
                results[i] = WriteResult(CRM, OBJECT, patch.record_id, ok=True)
            else:
                pending.append((i, self._record_for(patch)))
        for chunk in _chunks(pending, COLLECTION_UPDATE_MAX):
            self._write_chunk(chunk, patches, results, fence)
        return [r for r in results if r is not None]

    def _write_chunk(
        self, chunk: list[tuple[int, dict[str, Any]]], patches: Sequence[Patch], results: list[WriteResult | None],
        fence: WriteFence | None = None,
    ) -> None:
        todo = list(chunk)
        answered: set[int] = set()

        def attempt() -> None:
            nonlocal todo
            if fence is not None:
                allowed = fence([patches[index] for index, _ in todo], self._clock.now())
                for (index, _), ok in zip(todo, allowed, strict=True):
                    if not ok:
                        answered.add(index)
                        results[index] = claim_lost(patches[index])
                todo = [item for item, ok in zip(todo, allowed, strict=True) if ok]
                if not todo:
                    return
            body = {"allOrNone": False, "records": [record for _, record in todo]}
            try:
                reply = self._request("composite.sobjects.update", "write", lambda sf: sf.restful(
                    "composite/sobjects", method="PATCH", json=body, headers=dict(self._write_headers)))
            except RateLimitedError:
                raise  # refused unapplied: retried here
            except TransientError as exc:
                # A 5xx or a lost connection may have been applied, and a person may change the record right
                # after: no blind resend. The patches go back to the outbox, whose next claim re-reads the leads.
                for index, _ in todo:
                    answered.add(index)
                    results[index] = maybe_applied(patches[index], exc)
                todo = []
                return
            if not isinstance(reply, list) or len(reply) != len(todo):
                raise CrmApiError("answer does not hold one result per record", crm=CRM, endpoint="composite.sobjects.update")
            locked: list[tuple[int, dict[str, Any]]] = []
            for (index, record), item in zip(todo, reply, strict=True):
                answered.add(index)
                results[index] = self._result(patches[index], item)
                if results[index].retryable:  # type: ignore[union-attr]
                    locked.append((index, record))
            todo = locked
            if locked:
                raise TransientError(f"salesforce composite.sobjects.update: {len(locked)} record(s) {LOCK_CODE}",
                                     crm=CRM, endpoint="composite.sobjects.update", status=200)

        try:
            call_with_retries(attempt, sleep=self._sleep, max_attempts=self._max_attempts, on_retry=self._on_retry)
        except TransientError:
            # Records still locked after the last attempt keep their retryable result; a call that never
            # got an answer for some record is a failed call, not a record outcome.
            if any(index not in answered for index, _ in todo):
                raise

    def _result(self, patch: Patch, item: Mapping[str, Any]) -> WriteResult:
        if item.get("success"):
            return WriteResult(CRM, OBJECT, patch.record_id, ok=True)
        errors = item.get("errors") or [{}]
        first = errors[0]
        code = str(first.get("statusCode") or "UNKNOWN_EXCEPTION")
        fields = first.get("fields") or []
        kind = classify(200, code)
        return WriteResult(
            CRM, OBJECT, patch.record_id, ok=False, error_code=code, message=str(first.get("message") or "")[:300],
            field=str(fields[0]) if fields else None, retryable=kind is TransientError,
        )


def _active_values(described: Mapping[str, Any]) -> list[str]:
    return [str(v["value"]) for v in described.get("picklistValues") or [] if v.get("active", True)]


def _picklist_spelling(described: Mapping[str, Any] | None, value: Any) -> Any:
    """Our value in the picklist's own spelling (grade "hot" → Rating "Hot"); unknown values pass unchanged."""
    if not isinstance(value, str) or not described:
        return value
    for option in _active_values(described):
        if option.casefold() == value.casefold():
            return option
    return value


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
