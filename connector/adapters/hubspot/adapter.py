"""The HubSpot adapter: contacts or Leads ⇄ the common model through hubspot-api-client, errors translated at the boundary.

Streams and cursors (all cursors are opaque JSON strings, safe to store after the page that carries them):

- `fetch_changed`: search API, `<modified> GTE watermark`, keyset on `hs_object_id`
  [crm-behaviour: HubSpot incremental polling by keyset].
  Cursor `{"v":1,"watermark_ms","scan_started_ms","last_id"}`. Mid-scan pages carry the same
  watermark and scan start with the last id handled; the last page carries the next watermark
  (scan start − safety lag, never lower than the old one) and last_id 0.
- `fetch_all` (backfill): list GET, 100 per page; cursor `{"v":1,"after"}`, `{"v":1,"done":true}` at the end.
- `fetch_archived`: deletes are invisible to search (archiving does not bump the modified date,
  [crm-behaviour: HubSpot archiving does not bump the modified date]), so archived records are
  swept with `GET …?archived=true`; every sweep pages the whole archived list (its `after` is id-ordered, so a resume point would miss newly archived
  low ids) and reports, as FetchPage.deleted_ids, those archived since the previous sweep began
  (minus the safety lag). Cursor `{"v":1,"since_ms","sweep_started_ms","after"}`.
- Merges: a surviving record lists the ids merged into it in `hs_merged_object_ids`
  [crm-behaviour: HubSpot merges: the old id reads as the survivor]; every fetched page reports
  them as FetchPage.merged {old: surviving}.
  `fetch_by_ids` returns, for an id that now resolves to another record, a marker
  `Lead(id=old, merged_into=surviving)` next to the surviving lead.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hubspot
import hubspot.crm.associations.v4 as hs_assoc
import hubspot.crm.objects as hs_objects
import hubspot.crm.owners as hs_owners
import hubspot.crm.properties as hs_properties
import urllib3
from hubspot.crm.associations.v4.models import BatchInputPublicFetchAssociationsBatchRequest, PublicFetchAssociationsBatchRequest
from hubspot.crm.objects.models import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties.models import OptionInput, PropertyCreate

from connector.adapters.base import ApiCallCounter, CallGuard, NoGuard, WriteFence, claim_lost, maybe_applied
from connector.adapters.hubspot.fields import (
    COMPANY_PROPERTIES,
    MERGED_IDS_PROPERTY,
    OBJECT_ID_PROPERTY,
    FieldMap,
    lead_from_record,
    modified_property,
    parse_datetime,
    split_ids,
    to_epoch_ms,
)
from connector.core.clock import Clock, SystemClock
from connector.config import HubSpotSettings
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
from connector.core.models import Account, FetchPage, Lead, Owner, Patch, Rejection, WriteResult
from connector.core.retrying import call_with_retries

log = logging.getLogger("connector.adapters.hubspot")

CRM = "hubspot"
ACCESS_TOKEN_KEY = "hubspot.access_token"
# Search returns at most 10,000 results per query (HTTP 400 beyond), `limit` ≤ 200
# [crm-behaviour: HubSpot search: 10,000 results per query].
SEARCH_RESULT_CAP = 10_000
SEARCH_LIMIT_MAX = 200
# List GET and batch endpoints take at most 100 per call
# [crm-behaviour: HubSpot list pages hold at most 100 records] [crm-behaviour: HubSpot batch calls take at most 100 inputs].
LIST_PAGE_SIZE = 100
BATCH_SIZE = 100
# IN filters and v4 association reads: keep ≤100 values per request
# [crm-behaviour: HubSpot search filters and sorting] [crm-behaviour: HubSpot associations].
IN_VALUES_MAX = 100
# `properties` goes into the GET URL as `&properties=NAME` per name; stay well under the ~2,000
# characters proxies and HubSpot accept (dlt chunks at 2,000)
# [crm-behaviour: Pitfall: too many properties in a GET URL].
URL_PROPERTIES_BUDGET = 1_500
# A 429 body's policyName for the account's daily allocation: waiting seconds does not help
# [crm-behaviour: HubSpot 429 responses].
DAILY_POLICIES = frozenset({"DAILY"})
# Per-record write error categories worth another try later; all others are dead letters.
RETRYABLE_CATEGORIES = frozenset({"RATE_LIMITS", "LOCKED", "TIMEOUT", "SERVER_ERROR"})
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    hs_objects.ApiException,
    hs_owners.ApiException,
    hs_properties.ApiException,
    hs_assoc.ApiException,
)


def classify(status: int, category: str | None, policy: str | None) -> type[ConnectorError]:
    """HTTP status + HubSpot error category + 429 policy name → the connector error class (pure table).

    status 0 means no HTTP response (transport error, TLS failure).
    """
    if status == 429:
        return BudgetExhaustedError if (policy or "").upper() in DAILY_POLICIES else RateLimitedError
    if status == 401 or category in ("INVALID_AUTHENTICATION", "EXPIRED_AUTHENTICATION"):
        return AuthError
    if status == 403 or category == "MISSING_SCOPES":
        return AuthError
    # 530: Cloudflare's answer to a malformed token or an origin hiccup — retried, then surfaced
    # [crm-behaviour: HubSpot HTTP 530 from a malformed token].
    if status == 0 or status == 408 or status >= 500:
        return TransientError
    if status == 404 or category == "OBJECT_NOT_FOUND":
        return RecordError
    if status == 409 or category == "CONFLICT":
        return RecordError
    return CrmApiError


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]


@dataclass
class _Apis:
    """The SDK api objects, built once: every discovery attribute access builds a new ApiClient and pool."""

    objects_basic: Any
    objects_batch: Any
    objects_search: Any
    owners: Any
    properties: Any
    associations: Any


class HubSpotAdapter:
    """One HubSpot account's contacts (or Leads objects) as Leads; satisfies connector.adapters.base.CrmAdapter."""

    crm = "hubspot"
    write_batch_size = BATCH_SIZE  # inputs per batch/update call [crm-behaviour: HubSpot batch calls take at most 100 inputs]

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        guard: CallGuard | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        grade_options: Sequence[str] = ("hot", "warm", "cold"),
        max_attempts: int = 5,
    ) -> None:
        if settings.access_token is None:
            raise ConfigError([ConfigProblem(ACCESS_TOKEN_KEY, "is required (or access_token_file)")])
        self.settings = settings
        self.object_type: str = settings.object_type
        self.calls = ApiCallCounter()
        self._guard: CallGuard = guard or NoGuard()
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep or self._clock.sleep
        self._grade_options = tuple(grade_options)
        self._max_attempts = max_attempts
        self._timeout = settings.timeout_seconds
        self.fields = FieldMap(
            object_type=settings.object_type,
            score_property=settings.score_property,
            grade_property=settings.grade_property,
            stage_property=settings.effective_stage_property,
            lead_status_property=settings.lead_status_property,
            extra_properties=dict(settings.extra_properties),
        )
        client = hubspot.Client.create(
            access_token=settings.access_token.get_secret_value(),
            host=settings.base_url.rstrip("/"),
            # urllib3 may retry only connection failures (the request never left); statuses — 429,
            # 5xx — are never retried by urllib3 (it would skip POSTs and ignore our budget,
            # [crm-behaviour: Pitfall: 429s not retried]): call_with_retries owns that policy
            # [crm-behaviour: hubspot-api-client: host and retries].
            retry=urllib3.Retry(
                total=3, connect=3, read=0, status=0, other=0, redirect=0, allowed_methods=None,
                raise_on_status=False, respect_retry_after_header=False,
            ),
        )
        self._apis = _Apis(
            objects_basic=client.crm.objects.basic_api,
            objects_batch=client.crm.objects.batch_api,
            objects_search=client.crm.objects.search_api,
            owners=client.crm.owners.owners_api,
            properties=client.crm.properties.core_api,
            associations=client.crm.associations.v4.batch_api,
        )

    def close(self) -> None:
        """Release the connection pools."""
        for api in (self._apis.objects_basic, self._apis.objects_batch, self._apis.objects_search,
                    self._apis.owners, self._apis.properties, self._apis.associations):
            api.api_client.rest_client.pool_manager.clear()

    def _call(
        self, endpoint: str, kind: str, fn: Callable[..., Any], *args: Any,
        build: Callable[[], tuple[Any, ...] | None] | None = None,
        retry_on: type[TransientError] = TransientError,
        **kwargs: Any,
    ) -> _Response:
        """One API call: guard, count, send, translate errors; retried by the one retry policy.

        `build`, when given, makes the positional arguments once the rate-limit permit is held, for
        every attempt (None: nothing to send, no request). `retry_on` narrows what is retried in-call.
        """

        def attempt() -> _Response:
            self._guard.before(endpoint, kind)
            call_args = args if build is None else build()
            if call_args is None:
                return _Response(0, {}, {})
            self.calls.add(endpoint)
            try:
                raw = fn(*call_args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
                try:
                    data = raw.data
                finally:
                    raw.release_conn()
            except API_EXCEPTIONS as exc:
                headers = _header_map(getattr(exc, "headers", None))
                status = int(getattr(exc, "status", 0) or 0)
                if status:
                    self._guard.after(endpoint, status, headers)
                raise self._translate(status, headers, getattr(exc, "body", None), endpoint) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise TransientError(
                    f"hubspot {endpoint}: network error ({type(exc).__name__})", crm=CRM, endpoint=endpoint
                ) from exc
            headers = _header_map(raw.headers)
            self._guard.after(endpoint, raw.status, headers)
            try:
                body = json.loads(data) if data else {}
            except ValueError as exc:
                raise TransientError(
                    f"hubspot {endpoint}: response was not JSON (HTTP {raw.status})", crm=CRM, endpoint=endpoint, status=raw.status
                ) from exc
            return _Response(raw.status, body if isinstance(body, dict) else {"results": body}, headers)

        return call_with_retries(attempt, sleep=self._sleep, max_attempts=self._max_attempts, on_retry=self._on_retry, retry_on=retry_on)

    def _on_retry(self, exc: BaseException, wait_seconds: float) -> None:
        log.info("%s; retrying in %.1f s", exc, wait_seconds)

    def _translate(self, status: int, headers: Mapping[str, str], raw_body: Any, endpoint: str) -> ConnectorError:
        body = _json_body(raw_body)
        category = body.get("category") if isinstance(body.get("category"), str) else None
        policy = body.get("policyName") if isinstance(body.get("policyName"), str) else None
        where = f"hubspot {endpoint}"
        ref = f" (correlationId {body['correlationId']})" if body.get("correlationId") else ""
        kind = classify(status, category, policy)
        if kind is BudgetExhaustedError:
            return BudgetExhaustedError(f"{where}: the account's daily API limit is reached{ref}", crm=CRM)
        if kind is RateLimitedError:
            return RateLimitedError(
                f"{where}: rate limited (HTTP 429{', ' + policy if policy else ''})",
                retry_after=self._retry_after(headers), crm=CRM, endpoint=endpoint, status=status,
            )
        if kind is AuthError:
            if status == 401 or category in ("INVALID_AUTHENTICATION", "EXPIRED_AUTHENTICATION"):
                return AuthError(f"the access token was rejected (HTTP {status}) on {endpoint}", crm=CRM, credential=ACCESS_TOKEN_KEY)
            scopes = _required_scopes(body)
            need = f"the token lacks scope {', '.join(scopes)}" if scopes else "the token is not allowed to do this"
            return AuthError(f"{need} (HTTP {status} on {endpoint}); add it to the private app", crm=CRM, credential=ACCESS_TOKEN_KEY)
        if kind is TransientError:
            return TransientError(f"{where}: HTTP {status}{ref}", crm=CRM, endpoint=endpoint, status=status)
        # A RecordError needs the one record it is about; these endpoints address pages and batches,
        # so a 404/409 surfaces as CrmApiError with its status and the caller decides (batch read: missing).
        return CrmApiError(f"request rejected{ref}", crm=CRM, endpoint=endpoint, status=status, code=category)

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        # Retry-After is not always sent on a 429 [crm-behaviour: HubSpot 429 responses]; it may be seconds or an HTTP date.
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - self._clock.now()).total_seconds())

    def normalize(self, record: Mapping[str, Any]) -> Lead:
        """A HubSpot object (`{"id", "properties": {name: str}, "archived"}`) → Lead.

        Unparseable values (e.g. numemployees "lots") never fail the record: the attribute becomes
        None and a warning names the record and property.
        """
        lead, warnings = lead_from_record(record, self.fields)
        for warning in warnings:
            log.warning(
                "hubspot %s %s: property %s is not a valid %s; left empty",
                self.object_type, lead.id, warning.property_name, warning.expected,
            )
        return lead

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads modified since the cursor's watermark, keyset-paged on hs_object_id.

        [crm-behaviour: HubSpot incremental polling by keyset]
        """
        state = _decode(cursor, "fetch_changed")
        now_ms = to_epoch_ms(self._clock.now())
        watermark = int(state.get("watermark_ms", 0))
        if watermark > now_ms:
            # A cursor from the future (clock skew, a copied state store): nothing can have changed since.
            log.warning("hubspot %s: cursor watermark is in the future; nothing fetched", self.object_type)
            return
        last_id = int(state.get("last_id", 0))
        scan_started = int(state["scan_started_ms"]) if last_id and "scan_started_ms" in state else now_ms
        modified = modified_property(self.object_type)
        page_size = self.settings.search_page_size
        endpoint = f"{self.object_type}.search"
        while True:
            filters = [Filter(property_name=modified, operator="GTE", value=str(watermark))]
            if last_id:
                filters.append(Filter(property_name=OBJECT_ID_PROPERTY, operator="GT", value=str(last_id)))
            # Every page restarts `after` and advances the keyset instead: it never meets the 10,000
            # cap even when >10k records share one timestamp
            # [crm-behaviour: Pitfall: HubSpot search past 10,000 results] [crm-behaviour: Pitfall: many records share one modified time],
            # and a record archived
            # mid-scan cannot shift an offset and make us skip a neighbour.
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=filters)],
                sorts=[{"propertyName": OBJECT_ID_PROPERTY, "direction": "ASCENDING"}],
                properties=self.fields.record_properties(),
                limit=page_size,
            )
            response = self._call(endpoint, "search", self._apis.objects_search.do_search, self.object_type, request)
            results = response.body.get("results") or []
            has_more = bool(_next_after(response.body)) and bool(results)
            if results:
                last_id = max(int(r["id"]) for r in results)
            if has_more:
                next_cursor = {"v": 1, "watermark_ms": watermark, "scan_started_ms": scan_started, "last_id": last_id}
            else:
                # Next scan starts from this scan's start minus the safety lag (index lag; records
                # modified while we scanned), never from the newest timestamp seen
                # [crm-behaviour: Pitfall: watermark from the newest record seen].
                next_watermark = max(watermark, scan_started - self.settings.safety_lag_seconds * 1000)
                next_cursor = {"v": 1, "watermark_ms": next_watermark, "last_id": 0}
            yield self._page(results, _encode(next_cursor))
            if not has_more:
                return

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every (unarchived) lead by list GET, one page of 100 at a time; resumable by the page cursor."""
        state = _decode(cursor, "fetch_all")
        if state.get("done"):
            return
        after: str | None = state.get("after")
        endpoint = f"{self.object_type}.list"
        properties = self.fields.record_properties()
        fits_url = _url_cost(properties) <= URL_PROPERTIES_BUDGET
        while True:
            response = self._call(
                endpoint, "read", self._apis.objects_basic.get_page, self.object_type,
                limit=LIST_PAGE_SIZE, after=after, archived=False,
                properties=properties if fits_url else [OBJECT_ID_PROPERTY],
            )
            results = response.body.get("results") or []
            if results and not fits_url:
                # Too many properties for a URL: re-read the page by id, properties in the body
                # [crm-behaviour: Pitfall: too many properties in a GET URL].
                results = self._batch_read([str(r["id"]) for r in results], properties)
            after = _next_after(response.body)
            next_cursor = {"v": 1, "after": after} if after else {"v": 1, "done": True}
            yield self._page(results, _encode(next_cursor))
            if not after:
                return

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Ids archived (deleted) since the previous sweep, from `GET …?archived=true` list pages."""
        state = _decode(cursor, "fetch_archived")
        now_ms = to_epoch_ms(self._clock.now())
        since = state.get("since_ms")
        after: str | None = state.get("after")
        sweep_started = int(state["sweep_started_ms"]) if after and "sweep_started_ms" in state else now_ms
        endpoint = f"{self.object_type}.list_archived"
        while True:
            response = self._call(
                endpoint, "read", self._apis.objects_basic.get_page, self.object_type,
                limit=LIST_PAGE_SIZE, after=after, archived=True, properties=[OBJECT_ID_PROPERTY],
            )
            deleted = tuple(
                str(r["id"]) for r in response.body.get("results") or []
                if since is None or _archived_ms(r) is None or _archived_ms(r) >= int(since)  # type: ignore[operator]
            )
            after = _next_after(response.body)
            if after:
                next_cursor = {"v": 1, "since_ms": since, "sweep_started_ms": sweep_started, "after": after}
            else:
                lagged = sweep_started - self.settings.safety_lag_seconds * 1000
                next_cursor = {"v": 1, "since_ms": lagged if since is None else max(int(since), lagged), "after": None}
            yield FetchPage(leads=(), cursor=_encode(next_cursor), deleted_ids=deleted)
            if not after:
                return

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read by id (batch/read, ≤100 per call); missing or archived ids are left out.

        An id merged into another record comes back as a marker Lead(id=old, merged_into=surviving)
        next to the surviving lead (the id you ask for may not be the id you get)
        [crm-behaviour: HubSpot merges: the old id reads as the survivor].
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        page = self._page(self._batch_read(wanted, self.fields.record_properties()), "")
        leads: dict[str, Lead] = {}
        for lead in page.leads:
            leads.setdefault(lead.id, lead)
        asked = set(wanted)
        markers = [
            Lead(crm="hubspot", object_type=self.object_type, id=old, merged_into=new)
            for old, new in page.merged.items() if old in asked
        ]
        return [*leads.values(), *markers]

    def fetch_owners(self) -> list[Owner]:
        """Active and archived (deactivated) owners; `hubspot_owner_id` takes the owner `id`, never userId.

        [crm-behaviour: HubSpot owners: assign by owner id]
        """
        owners: dict[str, Owner] = {}
        for archived in (False, True):
            after: str | None = None
            while True:
                response = self._call("owners.list", "read", self._apis.owners.get_page, limit=LIST_PAGE_SIZE, after=after, archived=archived)
                for raw in response.body.get("results") or []:
                    owner = Owner(
                        crm="hubspot",
                        id=str(raw["id"]),
                        email=raw.get("email") or None,
                        name=" ".join(p for p in (raw.get("firstName"), raw.get("lastName")) if p),
                        is_active=not (archived or raw.get("archived", False)),
                        is_queue=raw.get("type") == "QUEUE",
                    )
                    owners.setdefault(owner.id, owner)
                after = _next_after(response.body)
                if not after:
                    break
        return list(owners.values())

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Companies by domain (HubSpot's company dedupe key), with their parent's owner for hierarchies."""
        wanted = sorted({d.strip().lower() for d in domains if d and d.strip()})
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, IN_VALUES_MAX):
            for company in self._search_in("companies", "domain", chunk, list(COMPANY_PROPERTIES)):
                domain = ((company.get("properties") or {}).get("domain") or "").strip().lower()
                if domain in found and not _prefer_company(company, found[domain]):
                    continue
                if domain:
                    found[domain] = company
        parent_ids = sorted({p for c in found.values() if (p := (c.get("properties") or {}).get("hs_parent_company_id"))})
        parents = {str(r["id"]): r for r in self._batch_read(parent_ids, list(COMPANY_PROPERTIES), object_type="companies")}
        accounts: dict[str, Account] = {}
        for domain, company in found.items():
            props = company.get("properties") or {}
            parent_id = props.get("hs_parent_company_id") or None
            parent = parents.get(parent_id or "")
            accounts[domain] = Account(
                crm="hubspot",
                id=str(company["id"]),
                domain=domain,
                name=props.get("name") or None,
                owner_id=props.get("hubspot_owner_id") or None,
                parent_id=parent_id,
                parent_owner_id=((parent or {}).get("properties") or {}).get("hubspot_owner_id") or None,
            )
        return accounts

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing contacts' owners by lower-case email (duplicate-contact routing); unowned contacts left out."""
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        owners: dict[str, str] = {}
        for chunk in _chunks(wanted, IN_VALUES_MAX):
            for contact in self._search_in("contacts", "email", chunk, ["email", "hubspot_owner_id"]):
                props = contact.get("properties") or {}
                email_value = (props.get("email") or "").strip().lower()
                if email_value and props.get("hubspot_owner_id"):
                    owners.setdefault(email_value, str(props["hubspot_owner_id"]))
        return owners

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]:
        """Leads whose primary email is one of `emails` (any case), normalized as fetch normalizes them.

        A search `email IN [...]`, ≤100 values per request, values lower-cased: HubSpot's IN matches
        string values only in lower case [crm-behaviour: HubSpot search filters and sorting]. For the Leads object the email lives on
        the associated contact, so contacts are searched and their leads read through v4 associations.
        Unknown emails are left out; a record that cannot be read is logged and left out. Search
        index lag applies: a contact created seconds ago may not be found yet [crm-behaviour: HubSpot search index lag].
        `every_lead` is accepted for the shared signature: HubSpot reads have no lead filter to drop.
        """
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        if not wanted:
            return []
        if self.object_type == "contacts":
            records = [
                record for chunk in _chunks(wanted, IN_VALUES_MAX)
                for record in self._search_in("contacts", "email", chunk, self.fields.record_properties())
            ]
        else:
            contact_ids = [
                str(contact["id"]) for chunk in _chunks(wanted, IN_VALUES_MAX)
                for contact in self._search_in("contacts", "email", chunk, [OBJECT_ID_PROPERTY])
            ]
            records = self._batch_read(self._associated_ids("contacts", self.object_type, contact_ids), self.fields.record_properties())
        page = self._page(records, "")
        for rejection in page.rejected:
            log.warning("hubspot %s %s: found by email but unreadable (%s); left out", self.object_type, rejection.record_id, rejection.message)
        return list({lead.id: lead for lead in page.leads}.values())

    def _associated_ids(self, from_type: str, to_type: str, ids: Sequence[str]) -> list[str]:
        """Ids of `to_type` records associated with the `from_type` records (v4 batch read, ≤100 ids per call)."""
        found: list[str] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), IN_VALUES_MAX):
            # Records without associations come back as per-input errors (NO_ASSOCIATIONS_FOUND): nothing to read.
            response = self._call(
                "associations.batch_read", "read", self._apis.associations.get_page, from_type, to_type,
                BatchInputPublicFetchAssociationsBatchRequest(inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]),
            )
            for row in response.body.get("results") or []:
                found.extend(str(target.get("toObjectId")) for target in row.get("to") or [])
        return list(dict.fromkeys(found))

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """batch/update ≤100 inputs per call; one WriteResult per patch, in input order.

        A 207 carries per-record errors and never fails the other records; a record absent from both
        results and errors is reported failed-retryable. `fence`: see CrmAdapter.write.
        [crm-behaviour: HubSpot batch partial failure is HTTP 207]
        """
        results: list[WriteResult | None] = [None] * len(patches)
        pending: list[tuple[int, Patch]] = []
        for index, patch in enumerate(patches):
            if patch.crm != "hubspot" or patch.object_type != self.object_type:
                raise ValueError(f"hubspot {self.object_type} adapter cannot write a {patch.crm} {patch.object_type} patch")
            if patch.is_empty:
                results[index] = WriteResult("hubspot", self.object_type, patch.record_id, ok=True)
            else:
                pending.append((index, patch))
        for batch in _unique_id_batches(pending, BATCH_SIZE):
            for index, result in self._write_batch(batch, fence):
                results[index] = result
        return [r for r in results if r is not None]

    def _write_batch(self, batch: list[tuple[int, Patch]], fence: WriteFence | None) -> list[tuple[int, WriteResult]]:
        going = list(batch)

        def request() -> tuple[Any, ...] | None:
            # Asked after the rate-limit wait, right before the request leaves: a replica that waited
            # past its claim must not send what another replica now holds [architecture: A person's choice wins].
            nonlocal going
            if fence is not None:
                allowed = fence([patch for _, patch in batch], self._clock.now())
                going = [item for item, ok in zip(batch, allowed, strict=True) if ok]
            if not going:
                return None
            inputs = [
                SimplePublicObjectBatchInput(
                    id=patch.record_id,
                    properties=self.fields.to_property_values(patch.changes),
                    object_write_trace_id=str(index),
                )
                for index, patch in going
            ]
            return (self.object_type, BatchInputSimplePublicObjectBatchInput(inputs=inputs))

        # A per-record problem is a 207 entry [crm-behaviour: HubSpot batch partial failure is HTTP 207];
        # an error status here concerns the whole request (malformed, auth, quota) and propagates: the
        # outbox keeps the patches. Only a 429 is
        # retried here (HubSpot refused it unapplied); a 5xx or a lost connection may have been applied,
        # and a person may change the record right after: those patches go back to the outbox, whose
        # next claim re-reads the records before sending anything again.
        try:
            response = self._call(f"{self.object_type}.batch_update", "write", self._apis.objects_batch.update,
                                  build=request, retry_on=RateLimitedError)
        except RateLimitedError:
            raise
        except TransientError as exc:
            sent = {index for index, _ in going}
            return [(index, maybe_applied(patch, exc) if index in sent else claim_lost(patch)) for index, patch in batch]
        sent = {index for index, _ in going}
        ok_ids = {str(r.get("id")) for r in response.body.get("results") or []}
        errors = self._errors_by_input(response.body.get("errors") or [], batch)
        out: list[tuple[int, WriteResult]] = []
        for index, patch in batch:
            error = errors.get(index)
            if index not in sent:
                out.append((index, claim_lost(patch)))
            elif error is not None:
                category = str(error.get("category") or "ERROR")
                status = _int_or_none(error.get("status"))
                retryable = category in RETRYABLE_CATEGORIES or (status is not None and (status >= 500 or status == 429))
                out.append((index, self._failed(patch, category, str(error.get("message") or category), _error_property(error), retryable=retryable)))
            elif patch.record_id in ok_ids:
                out.append((index, WriteResult("hubspot", self.object_type, patch.record_id, ok=True)))
            else:
                out.append((index, self._failed(patch, "MISSING_RESULT", "HubSpot returned neither a result nor an error for this record", None, retryable=True)))
        return out

    def _failed(self, patch: Patch, code: str, message: str, prop: str | None, *, retryable: bool) -> WriteResult:
        return WriteResult(
            "hubspot", self.object_type, patch.record_id, ok=False, error_code=code,
            message=message[:500], field=self.fields.attribute_for(prop), retryable=retryable,
        )

    @staticmethod
    def _errors_by_input(errors: list[dict[str, Any]], batch: list[tuple[int, Patch]]) -> dict[int, dict[str, Any]]:
        """Match each 207 error to its input: by objectWriteTraceId when echoed, else by the record ids in its context."""
        by_id: dict[str, list[int]] = {}
        for index, patch in batch:
            by_id.setdefault(patch.record_id, []).append(index)
        indexes = {index for index, _ in batch}
        matched: dict[int, dict[str, Any]] = {}
        for error in errors:
            context = error.get("context") or {}
            traces = [str(t) for t in _as_list(error.get("objectWriteTraceId") or context.get("objectWriteTraceId"))]
            hits = [int(t) for t in traces if t.isdigit() and int(t) in indexes]
            if not hits:
                ids = [str(i) for key in ("id", "ids") for i in _as_list(context.get(key))]
                hits = [index for record_id in ids for index in by_id.get(record_id, [])]
            for index in hits:
                matched.setdefault(index, error)
        return matched

    def bootstrap(self) -> None:
        """Check the score, grade and stage properties; create missing ones when allowed; ConfigError otherwise."""
        response = self._call("properties.list", "read", self._apis.properties.get_all, self.object_type)
        existing = {p["name"]: p for p in response.body.get("results") or [] if "name" in p}
        problems: list[ConfigProblem] = []
        group = _property_group(existing.values(), self.object_type)
        score_name, grade_name = self.settings.score_property, self.settings.grade_property

        score = existing.get(score_name)
        if score is None:
            if self.settings.create_properties:
                self._create_property(PropertyCreate(
                    name=score_name, label="Lead score (connector)", group_name=group, type="number", field_type="number",
                    description="Written by the lead connector: the lead's score.",
                ))
            else:
                problems.append(ConfigProblem("hubspot.score_property", _missing(score_name, self.object_type, "number")))
        elif score.get("type") != "number":
            problems.append(ConfigProblem(
                "hubspot.score_property",
                f"property {score_name!r} on {self.object_type} has type {score.get('type')!r}; it must be a number property — "
                "name another property or change its type",
            ))

        grade = existing.get(grade_name)
        if grade is None:
            if self.settings.create_properties:
                self._create_property(PropertyCreate(
                    name=grade_name, label="Lead grade (connector)", group_name=group, type="enumeration", field_type="select",
                    description="Written by the lead connector: the lead's grade.",
                    options=[OptionInput(label=g.title(), value=g, display_order=i, hidden=False) for i, g in enumerate(self._grade_options)],
                ))
            else:
                problems.append(ConfigProblem("hubspot.grade_property", _missing(grade_name, self.object_type, "enumeration (or string)")))
        elif grade.get("type") == "enumeration":
            values = {str(o.get("value")) for o in grade.get("options") or []}
            lacking = [g for g in self._grade_options if g not in values]
            if lacking:
                problems.append(ConfigProblem(
                    "hubspot.grade_property",
                    f"enumeration {grade_name!r} on {self.object_type} has no option(s) {lacking}; add them in HubSpot or use a string property",
                ))
        elif grade.get("type") != "string":
            problems.append(ConfigProblem(
                "hubspot.grade_property",
                f"property {grade_name!r} on {self.object_type} has type {grade.get('type')!r}; it must be an enumeration or string property",
            ))

        stage_name = self.settings.effective_stage_property
        stage = existing.get(stage_name)
        if stage is None:
            problems.append(ConfigProblem("hubspot.stage_property", f"property {stage_name!r} does not exist on {self.object_type}"))
        else:
            # Admins can add and remove lifecycle stages; we must write internal values the account has
            # [crm-behaviour: HubSpot lifecycle stages move forward only].
            options = {str(o.get("value")) for o in stage.get("options") or []}
            unknown = [s for s in self.settings.stage_order if s not in options]
            if options and unknown:
                problems.append(ConfigProblem(
                    "hubspot.stage_order",
                    f"{unknown} are not internal values of {stage_name!r} in this account (it has {sorted(options)})",
                ))
        if problems:
            raise ConfigError(problems)

    def _create_property(self, prop: PropertyCreate) -> None:
        self._call("properties.create", "write", self._apis.properties.create, self.object_type, prop)
        log.info("hubspot: created property %s on %s", prop.name, self.object_type)

    def _page(self, records: list[dict[str, Any]], cursor: str) -> FetchPage:
        """Records of the configured object → a FetchPage (merges reported, unparseable records rejected)."""
        if self.object_type != "contacts":
            records = self._with_contacts(records)
        leads: list[Lead] = []
        rejected: list[Rejection] = []
        merged: dict[str, str] = {}
        for record in records:
            try:
                lead = self.normalize(record)
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(Rejection(str(record.get("id", "?")), None, "UNREADABLE", f"record could not be read ({type(exc).__name__})"))
                continue
            leads.append(lead)
            for old in split_ids((record.get("properties") or {}).get(MERGED_IDS_PROPERTY)):
                if old != lead.id:
                    merged[old] = lead.id
        return FetchPage(leads=tuple(leads), cursor=cursor, merged=merged, rejected=tuple(rejected))

    def _batch_read(self, ids: Sequence[str], properties: list[str], *, object_type: str | None = None) -> list[dict[str, Any]]:
        object_type = object_type or self.object_type
        records: list[dict[str, Any]] = []
        for chunk in _chunks(list(ids), BATCH_SIZE):
            try:
                response = self._call(
                    f"{object_type}.batch_read", "read", self._apis.objects_batch.read, object_type,
                    BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=properties),
                    archived=False,
                )
            except CrmApiError as exc:
                if exc.status != 404:
                    raise
                continue  # none of these ids exist any more: missing ids are left out
            records.extend(response.body.get("results") or [])
        return records

    def _search_in(self, object_type: str, prop: str, values: list[str], properties: list[str]) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=[Filter(property_name=prop, operator="IN", values=values)])],
                sorts=[{"propertyName": OBJECT_ID_PROPERTY, "direction": "ASCENDING"}],
                properties=properties,
                limit=SEARCH_LIMIT_MAX,
                after=after,
            )
            response = self._call(f"{object_type}.search", "search", self._apis.objects_search.do_search, object_type, request)
            yield from response.body.get("results") or []
            after = _next_after(response.body)
            if not after or int(after) >= SEARCH_RESULT_CAP:
                return

    def _with_contacts(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Leads objects carry no person fields: merge in each lead's associated contact (v4 batch read)."""
        contact_of: dict[str, str] = {}
        lead_ids = [str(r["id"]) for r in records]
        for chunk in _chunks(lead_ids, IN_VALUES_MAX):
            response = self._call(
                "associations.batch_read", "read", self._apis.associations.get_page, self.object_type, "contacts",
                BatchInputPublicFetchAssociationsBatchRequest(inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]),
            )
            for row in response.body.get("results") or []:
                targets = row.get("to") or []
                if targets:
                    contact_of[str((row.get("from") or {}).get("id"))] = str(targets[0].get("toObjectId"))
        contacts = {
            str(c["id"]): c.get("properties") or {}
            for c in self._batch_read(sorted(set(contact_of.values())), self.fields.contact_properties(), object_type="contacts")
        }
        merged = []
        for record in records:
            contact_props = contacts.get(contact_of.get(str(record["id"]), ""), {})
            own = {k: v for k, v in (record.get("properties") or {}).items() if v is not None}
            merged.append({**record, "properties": {**contact_props, **own}})
        return merged


def _decode(cursor: str | None, stream: str) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict) or state.get("v") != 1:
        raise ConfigError([ConfigProblem(f"cursor.hubspot.{stream}", "stored cursor is not a HubSpot cursor of this version; reset it")])
    return state


def _encode(state: Mapping[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _next_after(body: Mapping[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _archived_ms(record: Mapping[str, Any]) -> int | None:
    raw = record.get("archivedAt")
    if not raw:
        return None
    try:
        return to_epoch_ms(parse_datetime(str(raw)))
    except ValueError:
        return None


def _url_cost(properties: Sequence[str]) -> int:
    return sum(len("&properties=") + len(p) for p in properties)


def _header_map(headers: Any) -> dict[str, str]:
    if not headers:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _json_body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _required_scopes(body: Mapping[str, Any]) -> list[str]:
    """Scopes a 403 names in its structured context (never parsed from the message)."""
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = (error or {}).get("context") or {}
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes.extend(str(s) for s in _as_list(context.get(key)))
    return list(dict.fromkeys(scopes))


def _error_property(error: Mapping[str, Any]) -> str | None:
    context = error.get("context") or {}
    for key in ("propertyName", "properties"):
        values = _as_list(context.get(key))
        if values:
            return str(values[0])
    for sub in error.get("errors") or []:
        name = ((sub or {}).get("context") or {}).get("propertyName")
        if name:
            return str(_as_list(name)[0])
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _unique_id_batches(items: list[tuple[int, Patch]], size: int) -> Iterator[list[tuple[int, Patch]]]:
    """Batches of ≤size inputs with no record id twice (HubSpot rejects duplicate ids in one batch)."""
    batch: list[tuple[int, Patch]] = []
    ids: set[str] = set()
    for item in items:
        if len(batch) == size or item[1].record_id in ids:
            yield batch
            batch, ids = [], set()
        batch.append(item)
        ids.add(item[1].record_id)
    if batch:
        yield batch


def _prefer_company(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Several companies can share a domain: prefer an owned one, then the oldest (lowest id)."""
    def rank(company: Mapping[str, Any]) -> tuple[int, int]:
        owned = bool((company.get("properties") or {}).get("hubspot_owner_id"))
        return (0 if owned else 1, int(company["id"]))

    return rank(candidate) < rank(current)


def _property_group(properties: Iterable[Mapping[str, Any]], object_type: str) -> str:
    """The property group new properties go into: the object's standard info group when it exists."""
    groups = [str(p.get("groupName")) for p in properties if p.get("groupName")]
    preferred = "contactinformation" if object_type == "contacts" else "lead_information"
    if preferred in groups or not groups:
        return preferred
    return max(set(groups), key=groups.count)


def _missing(name: str, object_type: str, kind: str) -> str:
    return (
        f"property {name!r} does not exist on {object_type}; create it as a {kind} property in HubSpot, "
        "or set hubspot.create_properties = true"
    )
