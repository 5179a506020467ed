"""HubSpot errors: the pure classification table (HTTP status + error category + 429 policy → error class) and
the connector error each failed response becomes. Never sleeps, refreshes tokens or logs."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from connector.core.errors import AuthError, BudgetExhaustedError, ConnectorError, CrmApiError, RateLimitedError, RecordError, TransientError

CRM = "hubspot"
ACCESS_TOKEN_KEY = "hubspot.access_token"
REFRESH_TOKEN_KEY = "hubspot.refresh_token"
# A 429 body's policyName for the account's daily allocation: waiting seconds does not help
# [crm-behaviour: HubSpot 429 responses].
DAILY_POLICIES = frozenset({"DAILY"})
# Per-record write error categories worth another try later; all others are dead letters.
RETRYABLE_CATEGORIES = frozenset({"RATE_LIMITS", "LOCKED", "TIMEOUT", "SERVER_ERROR"})
TOKEN_CATEGORIES = ("INVALID_AUTHENTICATION", "EXPIRED_AUTHENTICATION")


class TokenRejectedError(AuthError):
    """HTTP 401: the token sent was rejected (expired, revoked, rotated); renewing it may fix the call."""


def classify(status: int, category: str | None, policy: str | None) -> type[ConnectorError]:
    """HTTP status + HubSpot error category + 429 policy name → the connector error class (pure table).

    status 0 means no HTTP response (transport error, TLS failure).
    """
    if status == 429:
        return BudgetExhaustedError if (policy or "").upper() in DAILY_POLICIES else RateLimitedError
    if status == 401 or category in TOKEN_CATEGORIES:
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


def is_retryable_record_error(error: Mapping[str, Any]) -> bool:
    """A per-record entry of a 207 answer that another try later may fix (rate limit, lock, timeout, 5xx)."""
    category = str(error.get("category") or "ERROR")
    status = int_or_none(error.get("status"))
    return category in RETRYABLE_CATEGORIES or (status is not None and (status >= 500 or status == 429))


def translate(status: int, headers: Mapping[str, str], raw_body: Any, endpoint: str, *,
              now: Callable[[], datetime], credential: str = ACCESS_TOKEN_KEY) -> ConnectorError:
    """A failed response → the connector error the caller acts on (messages carry no body text or token).

    `credential` is the key an AuthError names (an OAuth app's: hubspot.refresh_token)."""
    body = json_body(raw_body)
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
            retry_after=retry_after(headers, now), crm=CRM, endpoint=endpoint, status=status,
        )
    if kind is AuthError:
        if status == 401 or category in TOKEN_CATEGORIES:
            rejected = TokenRejectedError if status == 401 else AuthError
            return rejected(f"the access token was rejected (HTTP {status}) on {endpoint}", crm=CRM, credential=credential)
        scopes = required_scopes(body)
        need = f"the token lacks scope {', '.join(scopes)}" if scopes else "the token is not allowed to do this"
        return AuthError(f"{need} (HTTP {status} on {endpoint}); add it to the app", crm=CRM, credential=credential)
    if kind is TransientError:
        return TransientError(f"{where}: HTTP {status}{ref}", crm=CRM, endpoint=endpoint, status=status)
    # A RecordError needs the one record it is about; these endpoints address pages and batches,
    # so a 404/409 surfaces as CrmApiError with its status and the caller decides (batch read: missing).
    return CrmApiError(f"request rejected{ref}", crm=CRM, endpoint=endpoint, status=status, code=category)


def retry_after(headers: Mapping[str, str], now: Callable[[], datetime]) -> float | None:
    """Seconds to wait from Retry-After, which may be seconds or an HTTP date.

    It is not always sent on a 429 [crm-behaviour: HubSpot 429 responses].
    """
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
    return max(0.0, (when - now()).total_seconds())


def json_body(raw: Any) -> dict[str, Any]:
    """An error body as a dict ({} when it is not a JSON object)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def required_scopes(body: Mapping[str, Any]) -> list[str]:
    """Scopes a 403 names in its structured context (never parsed from the message)."""
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = (error or {}).get("context") or {}
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes.extend(str(s) for s in as_list(context.get(key)))
    return list(dict.fromkeys(scopes))


def error_property(error: Mapping[str, Any]) -> str | None:
    """The property a per-record error is about, from its structured context."""
    context = error.get("context") or {}
    for key in ("propertyName", "properties"):
        values = as_list(context.get(key))
        if values:
            return str(values[0])
    for sub in error.get("errors") or []:
        name = ((sub or {}).get("context") or {}).get("propertyName")
        if name:
            return str(as_list(name)[0])
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
