"""The Salesforce call boundary: every REST call guarded, counted, sent through simple-salesforce and retried, its
errors translated here; the session it authenticates with, the Lead describe and paged queries.

Authentication is ours (auth.py); simple-salesforce gets a session id only, so its own
unbounded re-login recursion never runs [crm-behaviour: simple-salesforce re-login recursion]:
a 401 INVALID_SESSION_ID refreshes the token once per failing call, then the call is sent again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import requests.adapters
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connector.adapters.base import CallPolicy
from connector.adapters.salesforce.auth import SalesforceAuth, SalesforceToken, origin
from connector.adapters.salesforce.errors import error_of, needs_new_session, translate
from connector.adapters.salesforce.fields import OBJECT, Described
from connector.config import SalesforceSettings
from connector.core.clock import Clock
from connector.core.errors import AuthError, ConfigError, ConfigProblem, ConnectorError

log = logging.getLogger("connector.adapters.salesforce")
HTTP_POOL_SIZE = 16  # kept-alive connections to the org: more than a run's reader and writer threads together


class ApiSession(requests.Session):
    """requests.Session that puts the timeout and CA file on every request (simple-salesforce sets neither).

    `verify` is passed per request because a session-level value loses to REQUESTS_CA_BUNDLE in
    the environment, which would silently ignore salesforce.ca_bundle.
    """

    def __init__(self, *, timeout: float, ca_bundle: str | None) -> None:
        super().__init__()
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        # requests keeps 10 connections per host by default; the reader and writer threads of a run
        # (pipeline/overlap.py) each hold one while a request is out, so the pool is sized for them.
        for prefix in ("https://", "http://"):
            self.mount(prefix, requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=HTTP_POOL_SIZE))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        if self._ca_bundle:
            kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)


class SalesforceClient:
    """One org's REST API behind one guarded, counted, retried call, on a session we refresh ourselves."""

    def __init__(self, settings: SalesforceSettings, *, policy: CallPolicy, clock: Clock, query_batch_size: int | None) -> None:
        self.settings = settings
        self._policy = policy
        self.query_headers = {"Sforce-Query-Options": f"batchSize={query_batch_size}"} if query_batch_size else {}
        # Every write: no assignment rules (they would overwrite OwnerId,
        # [crm-behaviour: Salesforce assignment rules override OwnerId] [crm-behaviour: Pitfall: assignment rules reassign the owner])
        # and our client id, which change events echo back in changeOrigin for echo suppression
        # [crm-behaviour: Salesforce echo events carry our client id].
        self.write_headers = {
            "Sforce-Auto-Assign": "FALSE",
            "Sforce-Call-Options": f"client={settings.call_options_client}",
        }
        self._http = ApiSession(timeout=settings.timeout_seconds, ca_bundle=settings.ca_bundle)
        self._http.hooks["response"].append(self._on_response)
        self._auth = SalesforceAuth(settings, ApiSession(timeout=settings.timeout_seconds, ca_bundle=settings.ca_bundle), clock)
        self._sf: Salesforce | None = None
        self._token: SalesforceToken | None = None
        # The endpoint label of the request in flight, per thread: reader and writer threads share this client.
        self._local = threading.local()
        self._described: Described | None = None

    def close(self) -> None:
        """Release connection pools."""
        self._http.close()

    def session(self, *, renew: bool = False) -> SalesforceToken:
        """The access token, instance URL and org id the REST calls use (renew: fetch a new token first)."""
        if renew and self._auth.can_refresh:
            self._sf = None
        self._client()
        assert self._token is not None
        return self._token

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Every REST answer carries Sforce-Limit-Info: api-usage=used/limit; the guard keeps the daily budget
        # honest with it, errors included [crm-behaviour: Salesforce API allocation: rolling 24 hours].
        endpoint = getattr(self._local, "endpoint", "")
        self._policy.calls.add(endpoint)
        self._policy.guard.after(endpoint, response.status_code, {k.lower(): v for k, v in response.headers.items()})

    def _client(self) -> Salesforce:
        if self._sf is None:
            token = self._token = self._auth.fetch()
            self._sf = Salesforce(instance_url=token.instance_url, session_id=token.access_token,
                                  version=self.settings.api_version, session=self._http)
        return self._sf

    def request(self, endpoint: str, kind: str, fn: Callable[[Salesforce], Any]) -> Any:
        """One call (plus one resend after a token refresh); errors come out as connector errors."""
        for first_try in (True, False):
            client = self._client()
            self._policy.guard.before(endpoint, kind)
            self._local.endpoint = endpoint
            try:
                return fn(client)
            except SalesforceError as exc:
                code, message = error_of(exc.content)
                if first_try and needs_new_session(exc.status, code) and self._auth.can_refresh:
                    log.info("salesforce %s: session expired; fetching a new access token", endpoint)
                    self._sf = None
                    continue
                raise self.translate(exc.status, code, message, endpoint) from exc
            except requests.exceptions.SSLError as exc:
                raise ConfigError([ConfigProblem("salesforce.ca_bundle", f"TLS verification of {origin(client.base_url)} "
                                                  "failed; set ca_bundle to the CA file that signs it")]) from exc
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise self._policy.network_error(endpoint, exc) from exc
        raise AuthError(f"a fresh access token was rejected too on {endpoint}", crm="salesforce", credential=self._auth.credential)

    def call(self, endpoint: str, kind: str, fn: Callable[[Salesforce], Any]) -> Any:
        """`request` under the one retry policy."""
        return self._policy.retried(lambda: self.request(endpoint, kind, fn))

    def translate(self, status: int, code: str | None, message: str, endpoint: str) -> ConnectorError:
        return translate(status, code, message, endpoint, can_refresh=self._auth.can_refresh, credential=self._auth.credential)

    def lead_fields(self) -> Described:
        """The Lead describe, by field name (read once)."""
        if self._described is None:
            body = self.call(f"describe.{OBJECT}", "read", lambda sf: sf.restful(f"sobjects/{OBJECT}/describe"))
            self._described = {str(f["name"]): f for f in (body or {}).get("fields", [])}
        return self._described

    def stream(self, query: str, *, include_deleted: bool) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """Pages of one query: (records, done), following nextRecordsUrl one page at a time (never query_all)."""
        for records, done, _ in self.pages(query, include_deleted=include_deleted):
            yield records, done

    def pages(self, query: str, *, include_deleted: bool = False) -> Iterator[tuple[list[dict[str, Any]], bool, int]]:
        """`stream` with each page's totalSize (the rows the whole query returns): a look-up index can tell from
        the first page how many calls the rest would take."""
        endpoint = "queryAll" if include_deleted else "query"
        headers = dict(self.query_headers)
        result = self.call(endpoint, "read", lambda sf: sf.query(query, include_deleted=include_deleted, headers=headers))
        while True:
            records = [dict(r) for r in result.get("records", [])]
            next_url = result.get("nextRecordsUrl")
            done = bool(result.get("done", True)) or not next_url
            yield records, done, int(result.get("totalSize") or len(records))
            if done:
                return

            def more(sf: Salesforce) -> Any:  # called at once (and on retries) within this iteration
                return sf.query_more(str(next_url), identifier_is_url=True, headers=headers)  # noqa: B023

            result = self.call("query_more", "read", more)

    def records(self, query: str) -> Iterator[dict[str, Any]]:
        """Every record of a query (deleted rows left out), page by page."""
        for records, _ in self.stream(query, include_deleted=False):
            yield from records

