"""The HubSpot call boundary: every request guarded, counted, sent through hubspot-api-client and retried, its
errors translated here; plus the request shapes every read shares (batch read, IN search, associations)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hubspot.crm.associations.v4 as hs_assoc
import hubspot.crm.objects as hs_objects
import hubspot.crm.owners as hs_owners
import hubspot.crm.properties as hs_properties
import urllib3
from hubspot.crm.associations.v4.models import BatchInputPublicFetchAssociationsBatchRequest, PublicFetchAssociationsBatchRequest
from hubspot.crm.objects.models import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)

from connector.adapters.base import CallPolicy, chunks
from connector.adapters.hubspot.auth import TokenSource, bearer, open_apis, token_source
from connector.adapters.hubspot.errors import ACCESS_TOKEN_KEY, REFRESH_TOKEN_KEY, TokenRejectedError, translate
from connector.adapters.hubspot.fields import OBJECT_ID_PROPERTY
from connector.config import HubSpotSettings
from connector.core.clock import Clock
from connector.core.errors import ConnectorError, CrmApiError, TransientError

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
# Filter groups are OR'd, at most 5 per search: one `IN` of 100 values in each covers 500 values a request
# [crm-behaviour: HubSpot search filters and sorting].
FILTER_GROUPS_MAX = 5
IN_VALUES_PER_SEARCH = FILTER_GROUPS_MAX * IN_VALUES_MAX
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    hs_objects.ApiException,
    hs_owners.ApiException,
    hs_properties.ApiException,
    hs_assoc.ApiException,
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]


class HubSpotClient:
    """One account's SDK api objects behind one guarded, counted, retried call, authenticated by the
    account's shared token source (renewed before expiry; a 401 renews it and the call is sent once more)."""

    def __init__(self, settings: HubSpotSettings, *, policy: CallPolicy, clock: Clock, tokens: TokenSource | None = None) -> None:
        self.apis = open_apis(settings)
        self.tokens = tokens or token_source(settings, clock)
        self._policy = policy
        self._clock = clock
        self._timeout = settings.timeout_seconds
        self._credential = REFRESH_TOKEN_KEY if settings.auth_mode == "oauth" else ACCESS_TOKEN_KEY

    def close(self) -> None:
        self.apis.close()

    def call(
        self, endpoint: str, kind: str, fn: Callable[..., Any], *args: Any,
        build: Callable[[], tuple[Any, ...] | None] | None = None,
        retry_on: type[TransientError] = TransientError,
        **kwargs: Any,
    ) -> Response:
        """One API call: guard, count, send, translate errors; retried by the one retry policy.

        `build`, when given, makes the positional arguments once the rate-limit permit is held, for
        every attempt (None: nothing to send, no request). `retry_on` narrows what is retried in-call.
        """

        def attempt() -> Response:
            self._policy.guard.before(endpoint, kind)
            call_args = args if build is None else build()
            if call_args is None:
                return Response(0, {}, {})
            self._policy.calls.add(endpoint)
            token = self.tokens.current()
            try:
                return self._send(endpoint, fn, call_args, {**kwargs, "_request_auth": bearer(token)})
            except TokenRejectedError:
                # A 401 renews the token (or re-reads the mounted secret) and sends once more
                # [crm-behaviour: HubSpot OAuth access tokens expire].
                if not self.tokens.renew(token):
                    raise
            self._policy.guard.before(endpoint, kind)
            self._policy.calls.add(endpoint)
            return self._send(endpoint, fn, call_args, {**kwargs, "_request_auth": bearer(self.tokens.current())})

        return self._policy.retried(attempt, retry_on=retry_on)

    def _send(self, endpoint: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Response:
        try:
            raw = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            try:
                data = raw.data
            finally:
                raw.release_conn()
        except API_EXCEPTIONS as exc:
            headers = header_map(getattr(exc, "headers", None))
            status = int(getattr(exc, "status", 0) or 0)
            if status:
                self._policy.guard.after(endpoint, status, headers)
            raise self.translate(status, headers, getattr(exc, "body", None), endpoint) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise self._policy.network_error(endpoint, exc) from exc
        headers = header_map(raw.headers)
        self._policy.guard.after(endpoint, raw.status, headers)
        try:
            body = json.loads(data) if data else {}
        except ValueError as exc:
            raise TransientError(
                f"hubspot {endpoint}: response was not JSON (HTTP {raw.status})", crm="hubspot", endpoint=endpoint, status=raw.status
            ) from exc
        return Response(raw.status, body if isinstance(body, dict) else {"results": body}, headers)

    def translate(self, status: int, headers: Mapping[str, str], raw_body: Any, endpoint: str) -> ConnectorError:
        return translate(status, headers, raw_body, endpoint, now=self._clock.now, credential=self._credential)

    def batch_read(self, object_type: str, ids: Sequence[str], properties: list[str]) -> list[dict[str, Any]]:
        """Records by id (batch/read, ≤100 per call); ids that no longer exist are left out."""
        records: list[dict[str, Any]] = []
        for chunk in chunks(list(ids), BATCH_SIZE):
            try:
                response = self.call(
                    f"{object_type}.batch_read", "read", self.apis.objects_batch.read, object_type,
                    BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=properties),
                    archived=False,
                )
            except CrmApiError as exc:
                if exc.status != 404:
                    raise
                continue  # none of these ids exist any more: missing ids are left out
            records.extend(response.body.get("results") or [])
        return records

    def search(self, object_type: str, request: PublicObjectSearchRequest) -> Response:
        return self.call(f"{object_type}.search", "search", self.apis.objects_search.do_search, object_type, request)

    def search_in(self, object_type: str, prop: str, values: list[str], properties: list[str]) -> Iterator[dict[str, Any]]:
        """Records whose `prop` is one of `values` (≤500: an `IN` of ≤100 per filter group), id-ordered, every page
        up to the search cap."""
        if len(values) > IN_VALUES_PER_SEARCH:
            raise ValueError(f"search_in takes at most {IN_VALUES_PER_SEARCH} values, got {len(values)}")
        groups = [FilterGroup(filters=[Filter(property_name=prop, operator="IN", values=part)])
                  for part in chunks(values, IN_VALUES_MAX)]
        after: str | None = None
        while True:
            request = PublicObjectSearchRequest(
                filter_groups=groups, sorts=id_order(), properties=properties, limit=SEARCH_LIMIT_MAX, after=after,
            )
            response = self.search(object_type, request)
            yield from response.body.get("results") or []
            after = next_after(response.body)
            if not after or int(after) >= SEARCH_RESULT_CAP:
                return

    def search_pages(self, object_type: str, present: Sequence[str], properties: list[str]) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Every record that has all the `present` properties, id-ordered, a page of 200 per request, with the first
        page's `total`. Keyset paging (`hs_object_id GT` the last id) restarts the query each page, so the
        10,000-result cap never applies [crm-behaviour: HubSpot incremental polling by keyset]."""
        last = "0"
        while True:
            filters = [Filter(property_name=name, operator="HAS_PROPERTY") for name in present]
            filters.append(Filter(property_name=OBJECT_ID_PROPERTY, operator="GT", value=last))
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=filters)], sorts=id_order(), properties=properties, limit=SEARCH_LIMIT_MAX,
            )
            body = self.search(object_type, request).body
            results = body.get("results") or []
            yield results, int(body.get("total") or len(results))
            if not results or next_after(body) is None:
                return
            last = str(results[-1]["id"])

    def associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """v4 association rows `{"from": {"id"}, "to": [{"toObjectId"}]}`, ≤100 ids per call.

        Records without associations come back as per-input errors (NO_ASSOCIATIONS_FOUND): nothing to read.
        """
        for chunk in chunks(list(ids), IN_VALUES_MAX):
            response = self.call(
                "associations.batch_read", "read", self.apis.associations.get_page, from_type, to_type,
                BatchInputPublicFetchAssociationsBatchRequest(inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]),
            )
            yield from response.body.get("results") or []

    def associated_ids(self, from_type: str, to_type: str, ids: Sequence[str]) -> list[str]:
        """Ids of `to_type` records associated with the `from_type` records."""
        found = [
            str(target.get("toObjectId"))
            for row in self.associations(from_type, to_type, list(dict.fromkeys(ids)))
            for target in row.get("to") or []
        ]
        return list(dict.fromkeys(found))


def next_after(body: Mapping[str, Any]) -> str | None:
    """The `after` token of the next page, None on the last page."""
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def id_order() -> list[dict[str, str]]:
    """Search results sorted by record id: the keyset every paged search follows."""
    return [{"propertyName": OBJECT_ID_PROPERTY, "direction": "ASCENDING"}]


def header_map(headers: Any) -> dict[str, str]:
    if not headers:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}
