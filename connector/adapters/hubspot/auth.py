"""HubSpot auth: a private app's access token or an OAuth app's renewed access tokens (one token source per
account, shared by every thread of the process), and the SDK api objects (host and retries set once; the
token goes on each request, so a renewal never rebuilds them)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import hubspot
import hubspot.oauth as hs_oauth
import urllib3

from connector.adapters.base import unreachable
from connector.adapters.hubspot.errors import ACCESS_TOKEN_KEY, REFRESH_TOKEN_KEY
from connector.config import HubSpotSettings
from connector.core.clock import Clock
from connector.core.errors import AuthError, ConfigError, ConfigProblem, TransientError

log = logging.getLogger("connector.adapters.hubspot")

# Renew this long before `expires_in` runs out: a fifth of the lifetime, at most 5 minutes (HubSpot's 30-minute
# tokens are renewed after 25) [crm-behaviour: HubSpot OAuth access tokens expire].
RENEW_MARGIN_MAX_SECONDS = 300.0
RENEW_MARGIN_SHARE = 0.2
TOKEN_PATH = "/oauth/v1/token"
HTTP_POOL_SIZE = 16  # kept-alive connections per SDK api object: more than a run's reader and writer threads together


@dataclass
class Apis:
    """The SDK api objects, built once: every discovery attribute access builds a new ApiClient and pool."""

    objects_basic: Any
    objects_batch: Any
    objects_search: Any
    owners: Any
    properties: Any
    associations: Any

    def close(self) -> None:
        """Release the connection pools."""
        for name in fields(self):
            getattr(self, name.name).api_client.rest_client.pool_manager.clear()


@dataclass(frozen=True, slots=True)
class Grant:
    """One answer of the refresh-token grant."""

    access_token: str
    refresh_token: str | None
    expires_in: float


class TokenSource(Protocol):
    """Where a request's bearer token comes from."""

    def current(self) -> str:
        """The token to send now (renewed first when it is about to expire)."""
        ...

    def renew(self, rejected: str) -> bool:
        """`rejected` got a 401: True when a different token is now current (renewed here or by another thread)."""
        ...


def access_token(settings: HubSpotSettings) -> str:
    """The configured token; ConfigError naming the key when there is none."""
    if settings.access_token is None:
        raise ConfigError([ConfigProblem(ACCESS_TOKEN_KEY, "is required (or access_token_file)")])
    return settings.access_token.get_secret_value()


def read_secret(path: str | None) -> str | None:
    """A `*_file` secret's current text (None when unset or unreadable: the caller keeps what it has)."""
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        log.warning("hubspot: %s cannot be read (%s)", path, exc.strerror)
        return None


class StaticToken:
    """A private app's access token. On a 401 `access_token_file` is read again: Kubernetes rotates mounted secrets."""

    def __init__(self, token: str, path: str | None) -> None:
        self._token = token
        self._path = path
        self._lock = threading.Lock()

    def current(self) -> str:
        return self._token

    def renew(self, rejected: str) -> bool:
        with self._lock:
            if self._token != rejected:
                return True
            fresh = read_secret(self._path)
            if fresh is None or fresh == rejected:
                return False
            log.info("hubspot: access_token_file changed; using the new token")
            self._token = fresh
            return True


class OAuthTokens:
    """An OAuth app's access tokens, renewed with the refresh-token grant before they expire and on a 401.

    One refresh at a time (a lock); the refresh token an answer carries is kept, in memory and in
    `refresh_token_file` when that file is writable [crm-behaviour: HubSpot OAuth access tokens expire].
    """

    def __init__(self, refresh_token: str, path: str | None, fetch: Callable[[str], Grant], clock: Clock) -> None:
        self._refresh_token = refresh_token
        self._path = path
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._renew_at = 0.0
        self.renewals = 0

    def current(self) -> str:
        with self._lock:
            if self._access is None or self._clock.monotonic() >= self._renew_at:
                return self._refresh()
            return self._access

    def renew(self, rejected: str) -> bool:
        with self._lock:
            if self._access is not None and self._access != rejected:
                return True
            return self._refresh() != rejected

    def _refresh(self) -> str:
        try:
            grant = self._fetch(self._refresh_token)
        except AuthError:
            fresh = read_secret(self._path)  # the refresh token may have been rotated in the mounted secret
            if fresh is None or fresh == self._refresh_token:
                raise
            log.info("hubspot: refresh_token_file changed; using the new refresh token")
            self._refresh_token = fresh
            grant = self._fetch(fresh)
        lifetime = max(0.0, grant.expires_in)
        self._renew_at = self._clock.monotonic() + lifetime - min(RENEW_MARGIN_MAX_SECONDS, lifetime * RENEW_MARGIN_SHARE)
        self._access = grant.access_token
        self.renewals += 1
        if grant.refresh_token and grant.refresh_token != self._refresh_token:
            self._refresh_token = grant.refresh_token
            self._persist(grant.refresh_token)
        log.info("hubspot: access token renewed; valid for %.0f s", lifetime)
        return grant.access_token

    def _persist(self, token: str) -> None:
        """Write a rotated refresh token to refresh_token_file (atomically) so a restart uses it."""
        if not self._path:
            log.warning("hubspot: the refresh token was rotated; set refresh_token_file to keep it across restarts")
            return
        target = Path(self._path)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token + "\n")
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("hubspot: the rotated refresh token is kept in memory only: %s is not writable (%s); "
                        "update the secret before the next restart", self._path, exc.strerror)


def grant_fetcher(settings: HubSpotSettings) -> Callable[[str], Grant]:
    """The refresh-token grant against `{base_url}/oauth/v1/token`, through hubspot-api-client's tokens api."""
    api = hubspot.Client.create(host=settings.base_url.rstrip("/"), retry=_connect_retries()).oauth.tokens_api
    client_id = settings.client_id or ""
    secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
    timeout = settings.timeout_seconds

    def fetch(refresh_token: str) -> Grant:
        try:
            raw = api.create(grant_type="refresh_token", client_id=client_id, client_secret=secret,
                             refresh_token=refresh_token, _preload_content=False, _request_timeout=timeout)
            try:
                body = json.loads(raw.data)
            finally:
                raw.release_conn()
        except hs_oauth.ApiException as exc:
            status = int(exc.status or 0)
            if status == 429 or status >= 500 or status == 0:
                raise TransientError(f"hubspot {TOKEN_PATH}: HTTP {status}", crm="hubspot", endpoint="oauth.token", status=status) from exc
            raise AuthError(f"the refresh token was refused (HTTP {status}) by {TOKEN_PATH}", crm="hubspot",
                            credential=REFRESH_TOKEN_KEY) from exc
        except urllib3.exceptions.HTTPError as exc:
            origin, cause = unreachable(exc)
            raise TransientError(f"hubspot {TOKEN_PATH}: could not reach {origin or settings.base_url}: {cause}",
                                 crm="hubspot", endpoint="oauth.token") from exc
        except ValueError as exc:
            raise TransientError(f"hubspot {TOKEN_PATH}: the answer was not JSON", crm="hubspot", endpoint="oauth.token") from exc
        if not isinstance(body, dict) or not body.get("access_token"):
            raise TransientError(f"hubspot {TOKEN_PATH}: the answer had no access_token", crm="hubspot", endpoint="oauth.token")
        return Grant(str(body["access_token"]), body.get("refresh_token") or None, float(body.get("expires_in") or 0))

    return fetch


_SOURCES: dict[str, TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(settings: HubSpotSettings, clock: Clock) -> TokenSource:
    """The process's one token source for this account and these credentials (every adapter and thread shares it)."""
    secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
    refresh = settings.refresh_token.get_secret_value() if settings.refresh_token else ""
    token = settings.access_token.get_secret_value() if settings.access_token else ""
    parts = (settings.call_limits().account, settings.auth_mode, secret, refresh, token,
             settings.refresh_token_file or "", settings.access_token_file or "")
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = _SOURCES[key] = _new_source(settings, clock)
        return source


def _new_source(settings: HubSpotSettings, clock: Clock) -> TokenSource:
    if settings.auth_mode == "oauth" and settings.refresh_token is not None:
        return OAuthTokens(settings.refresh_token.get_secret_value(), settings.refresh_token_file, grant_fetcher(settings), clock)
    return StaticToken(access_token(settings), settings.access_token_file)


def bearer(token: str) -> dict[str, str]:
    """hubspot-api-client's per-request auth override (`_request_auth`): this token instead of the configured one."""
    return {"in": "header", "key": "Authorization", "type": "oauth2", "value": f"Bearer {token}"}


def _connect_retries() -> urllib3.Retry:
    # urllib3 may retry only connection failures (the request never left); statuses — 429,
    # 5xx — are never retried by urllib3 (it would skip POSTs and ignore our budget,
    # [crm-behaviour: Pitfall: 429s not retried]): call_with_retries owns that policy
    # [crm-behaviour: hubspot-api-client: host and retries].
    return urllib3.Retry(
        total=3, connect=3, read=0, status=0, other=0, redirect=0, allowed_methods=None,
        raise_on_status=False, respect_retry_after_header=False,
    )


def open_apis(settings: HubSpotSettings) -> Apis:
    """The api objects of one account. The token is sent per request (`bearer`), so they serve every renewal."""
    # urllib3 keeps cpu_count × 5 connections per pool by default; the reader and writer threads of a run
    # (pipeline/overlap.py) each hold one while a request is out, so the pool is sized for them.
    client = hubspot.Client.create(host=settings.base_url.rstrip("/"), retry=_connect_retries(),
                                   connection_pool_maxsize=HTTP_POOL_SIZE)
    return Apis(
        objects_basic=client.crm.objects.basic_api,
        objects_batch=client.crm.objects.batch_api,
        objects_search=client.crm.objects.search_api,
        owners=client.crm.owners.owners_api,
        properties=client.crm.properties.core_api,
        associations=client.crm.associations.v4.batch_api,
    )
