"""Salesforce errors: the pure classification table (HTTP status + errorCode → error class) and the connector
error each failed call becomes. Never sleeps, refreshes tokens or logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.core.errors import AuthError, BudgetExhaustedError, ConnectorError, CrmApiError, RateLimitedError, RecordError, TransientError

CRM = "salesforce"
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


def error_of(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) of a Salesforce error body `[{"errorCode","message"}]` (or a dict, or text)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        code = first.get("errorCode") or first.get("statusCode") or first.get("error")
        message = str(first.get("message") or first.get("error_description") or "")
        return (str(code) if code else None), message[:200]
    return None, ""


def translate(status: int, code: str | None, message: str, endpoint: str, *, can_refresh: bool, credential: str) -> ConnectorError:
    """A failed call → the connector error the caller acts on; `credential` is the config key an admin fixes."""
    where = f"salesforce {endpoint}"
    kind = classify(status, code)
    if kind is BudgetExhaustedError:
        return BudgetExhaustedError(
            f"{where}: the org's daily API request limit is reached ({code}); writing stops, the cursor stays, "
            "and work resumes when the rolling 24 h window frees calls", crm=CRM)
    if kind is AuthError:
        if status == 401:
            what = "the static access token expired or was revoked" if not can_refresh else "the access token was rejected"
            return AuthError(f"{what} (HTTP 401 {code or ''}) on {endpoint}", crm=CRM, credential=credential)
        return AuthError(f"the API user may not do this (HTTP {status} {code or ''} on {endpoint}); check its profile "
                         "and permission sets", crm=CRM, credential=credential)
    if kind is RateLimitedError:
        return RateLimitedError(f"{where}: HTTP 429", crm=CRM, endpoint=endpoint, status=status)
    if kind is TransientError:
        return TransientError(f"{where}: HTTP {status}{' ' + code if code else ''}", crm=CRM, endpoint=endpoint, status=status)
    return CrmApiError(message or "request rejected", crm=CRM, endpoint=endpoint, status=status, code=code)
